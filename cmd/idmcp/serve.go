package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"runtime"
	"syscall"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/auth/keyring"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

type serveFlags struct {
	dataDir      string
	profile      string
	secretFile   string
	auditSync    string
	listAllTools bool
	logLevel     string
	sandbox      string
	policy       string
	workspace    string
	noKeyring    bool
	auditKeyFile string
	// shutdownTimeout bounds how long stdio requests in flight may finish
	// after stdin EOF or a signal.
	shutdownTimeout time.Duration
	http            httpFlags // serve_http.go
}

const serveUsage = `usage: idmcp serve [--profile NAME] [flags]                  MCP on stdin/stdout, launched by a host
       idmcp serve --http ADDR (--issuer URL | --dev) [flags]  an OAuth 2.1 resource server

On stdio the host authenticates with the token that 'idmcp host add NAME' printed, in one of:
  IDMCP_TOKEN=TOKEN in the server's environment (the host config's "env" block), or
  capabilities.experimental["io.idmcp/auth"].token in initialize (or per request, protocol 2026-07-28).
The server compares it with the profile's secret: the OS keyring, or for a --no-keyring profile
  IDMCP_SHARED_SECRET=SECRET in the server's environment, or --secret-file FILE (mode 0600).
Environment: IDMCP_DATA_DIR, IDMCP_SANDBOX and the other [$VAR]s below stand for their flags.

Flags:
`

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.dataDir, "data-dir", "", "data dir (default $IDMCP_DATA_DIR or the per-user state dir)")
	fs.StringVar(&f.profile, "profile", "default", "host profile to authenticate the host against")
	fs.StringVar(&f.secretFile, "secret-file", "", "file holding the profile's shared secret (mode 0600 or stricter)")
	fs.StringVar(&f.auditSync, "audit-sync", "full", "audit durability: full (survives power loss) or normal (survives crashes)")
	fs.BoolVar(&f.listAllTools, "list-all-tools", false, "list every enabled tool to every caller (debugging policies; calls are still checked)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.policy, "policy", "", "policy file (TOML): enabled tools, overrides, host grants, claim mapping; see examples/policy.toml")
	fs.StringVar(&f.workspace, "workspace", "", "directory the files_* tools are confined to (without it they are not registered)")
	fs.StringVar(&f.sandbox, "sandbox", envOr("IDMCP_SANDBOX", "auto"), "self-sandboxing on Linux: auto (all the kernel supports), strict (refuse to start without Landlock files+network and seccomp), off [$IDMCP_SANDBOX]")
	fs.BoolVar(&f.noKeyring, "no-keyring", false, "keep the audit key in a file (--audit-key-file) instead of the OS keyring; protects the chain less")
	fs.StringVar(&f.auditKeyFile, "audit-key-file", os.Getenv("IDMCP_AUDIT_KEY_FILE"), "the audit key file, outside the data dir, used with --no-keyring or when the OS keyring is unavailable (default DATA_DIR.audit-key) [$IDMCP_AUDIT_KEY_FILE]")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", server.DefaultStdioShutdownTimeout, "stdio: after stdin closes or SIGTERM/SIGINT, how long requests in flight may finish before they are cancelled (a second signal ends at once); positive")
	f.http.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("serve takes no arguments, got %q", fs.Args())}
	}
	// Secrets given through the environment are read once and removed, so
	// nothing this process starts could inherit them.
	envToken := os.Getenv("IDMCP_TOKEN")
	sharedSecret := os.Getenv("IDMCP_SHARED_SECRET")
	_ = os.Unsetenv("IDMCP_TOKEN")
	_ = os.Unsetenv("IDMCP_SHARED_SECRET")
	if f.http.wanted(f.policy) {
		return serveHTTP(ctx, f, stderr)
	}
	if f.shutdownTimeout <= 0 {
		return &exitError{code: 2, err: fmt.Errorf("--shutdown-timeout %s: must be positive", f.shutdownTimeout)}
	}
	if err := f.http.stdioOnly(); err != nil {
		return &exitError{code: 2, err: err}
	}
	return serveStdio(ctx, f, envToken, sharedSecret, os.Stdin, os.Stdout, stderr)
}

func serveStdio(ctx context.Context, f serveFlags, envToken, sharedSecret string, in io.Reader, out io.Writer, stderr io.Writer) error {
	if err := auth.ValidateProfileName(f.profile); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--profile: %w", err)}
	}
	c, err := f.common()
	if err != nil {
		return err
	}
	pol, dir := c.pol, c.dir
	redactor := &audit.Redactor{Keys: policyRedactKeys(pol)}
	if envToken != "" {
		redactor.Secrets = append(redactor.Secrets, envToken)
	}
	if sharedSecret != "" {
		redactor.Secrets = append(redactor.Secrets, sharedSecret)
	}
	logger := server.NewLogger(stderr, c.level, redactor)

	// Everything that needs wide access happens first: the profile, the
	// secret (keyring over D-Bus), the databases.
	profile, err := store.NewHosts(dir).Get(f.profile)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil {
		profile = nil
	}
	// The policy's [hosts.NAME] grant takes precedence over hosts.json.
	profile, fromPolicy := pol.HostProfile(f.profile, profile)
	switch {
	case profile == nil:
		logger.Warn("host profile does not exist; every request will be refused", "profile", f.profile, "fix", "idmcp host add "+f.profile)
	case fromPolicy:
		logger.Info("host profile grants from the policy", "profile", f.profile, "policy", pol.Name, "scopes", profile.Scopes, "roles", profile.Roles)
	}
	secret, source, problem, err := expectedSecret(ctx, logger, profile, f.secretFile, sharedSecret)
	if err != nil {
		return err
	}
	if len(secret) > 0 {
		redactor.Secrets = append(redactor.Secrets, string(secret))
	}
	human := osUser()
	host, err := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{
		ProfileName: f.profile, Profile: profile, Secret: secret, SecretSource: source, SecretProblem: problem, Human: human,
	})
	if err != nil {
		return err
	}

	info := tools.ServerInfo{Name: server.Name, Version: version, Profile: f.profile, SecretSource: source}
	b, err := openBackend(ctx, c, f.workspace, redactor, logger, func() tools.ServerInfo { return info })
	if err != nil {
		return err
	}
	defer b.Close()
	alog, ts := b.alog, b.ts
	specs, authz := ts.Specs, ts.Authorizer
	tokens, idp, err := stdioTokens(ctx, f.http, pol, logger) // serve_http.go: --issuer on stdio
	if err != nil {
		return err
	}
	if profile != nil && !profile.Keyring && len(secret) == 0 && tokens == nil {
		// Serving would refuse every request with nothing in the log but
		// secret_source=-: refuse to start, saying what to set.
		return fmt.Errorf("host profile %q keeps its secret outside the keyring (--no-keyring) and none was given: set IDMCP_SHARED_SECRET in the server's environment (the host config's env block) or pass --secret-file FILE", f.profile)
	}
	srv, err := server.NewStdio(server.StdioConfig{
		Config: server.Config{
			Version: version, Tools: specs, Authorizer: authz, Audit: alog, Logger: logger, ListAllTools: f.listAllTools,
		},
		Host:            host,
		EnvToken:        envToken,
		Tokens:          tokens,
		ShutdownTimeout: f.shutdownTimeout,
	})
	if err != nil {
		return err
	}
	// Everything wide is open: restrict the process before reading the first
	// request.
	sbPolicy, err := sandboxPolicy(sandboxInputs{Mode: c.sbMode, DataDir: dir, Workspace: ts.WorkspaceDir, Tools: specs, IdentityProvider: idp})
	if err != nil {
		return err
	}
	sb, err := applySandbox(logger, sbPolicy)
	if err != nil {
		return err
	}
	info.Sandbox = sb
	startEv := audit.Event{Transport: "stdio", Event: audit.EventServerStart, Subject: human, ClientID: f.profile,
		Decision: "", Reason: fmt.Sprintf("idmcp %s (%s/%s) serving profile %s; secret from %s; %s", version, runtime.GOOS, runtime.GOARCH, f.profile, dash(source), sb)}
	if err := alog.Append(ctx, startEv); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	logger.Info("serving MCP on stdio", "version", version, "profile", f.profile, "data_dir", dir, "secret_source", dash(source))
	if stdinIsTerminal(in) {
		fmt.Fprintf(stderr, "idmcp serve speaks MCP (JSON-RPC) on stdin/stdout and is meant to be launched by a host such as\n"+
			"Claude Desktop, Claude Code or VS Code: `idmcp host add NAME` prints the entry to put in its config.\n"+
			"Waiting for JSON-RPC lines on stdin; Ctrl-D or Ctrl-C ends it.\n")
	}
	// The first SIGTERM/SIGINT cancels ctx and starts a graceful stop; from
	// then on the signals have their default action again, so a second one
	// ends the process even if a tool hangs. A host that closed our stdout
	// must not kill us with SIGPIPE before the remaining rows are written.
	signal.Ignore(syscall.SIGPIPE)
	defer context.AfterFunc(ctx, func() { signal.Reset(os.Interrupt, syscall.SIGTERM) })()
	err = srv.Listen(ctx, in, out)
	reason := "stdin closed"
	if ctx.Err() != nil {
		reason = context.Cause(ctx).Error()
	}
	if err != nil {
		reason += "; " + err.Error()
	}
	stopEv := audit.Event{Transport: "stdio", Event: audit.EventServerStop, Subject: human, ClientID: f.profile, Reason: reason}
	if aerr := alog.Append(context.WithoutCancel(ctx), stopEv); aerr != nil {
		logger.Error("audit stop row", "err", aerr)
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
		return err // exit 1: a line too long, or requests cancelled at the deadline
	}
	logger.Info("stopped")
	return nil
}

// expectedSecret finds the profile's secret. A keyring profile's secret is
// in the OS keyring and nowhere else: it never falls back to a secret the
// launching process chooses (IDMCP_SHARED_SECRET, --secret-file), or a
// launcher that breaks D-Bus could pick its own. A --no-keyring profile's
// secret comes from the file, then the variable. An empty result, with the
// problem in words, makes every request fail closed.
func expectedSecret(ctx context.Context, logger *slog.Logger, p *auth.HostProfile, secretFile, shared string) ([]byte, string, string, error) {
	if p == nil {
		return nil, "", "", nil
	}
	if p.Keyring {
		if secretFile != "" || shared != "" {
			logger.Warn("profile keeps its secret in the OS keyring; --secret-file and IDMCP_SHARED_SECRET are ignored for it", "profile", p.Name)
		}
		s, err := hostKeyring().Get(ctx, p.Name)
		if err == nil && s != "" {
			return []byte(s), "keyring", "", nil
		}
		if errors.Is(err, keyring.ErrNotFound) {
			return nil, "", "its keyring entry is missing", nil
		}
		logger.Warn("no secret from the OS keyring", "profile", p.Name, "err", err)
		return nil, "", "the OS keyring is unavailable: " + err.Error(), nil
	}
	if secretFile != "" {
		b, err := auth.ReadSecretFile(secretFile)
		if err != nil {
			return nil, "", "", fmt.Errorf("--secret-file refused: %w", err)
		}
		return b, "secret-file", "", nil
	}
	if shared != "" {
		return []byte(shared), "IDMCP_SHARED_SECRET", "", nil
	}
	return nil, "", "", nil
}

func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, k := range []string{"USER", "USERNAME"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return fmt.Sprintf("uid:%d", os.Getuid())
}

// stdinIsTerminal reports whether r is a terminal (a person ran serve by
// hand), not the pipe a host launches it with.
func stdinIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
