package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/auth/keyring"
	"github.com/idmcp/idmcp/sandbox"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/server/relay"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

var _ relay.Gate = (*server.Gate)(nil)
var _ relay.Auditor = (*audit.Log)(nil)

// wrapChildArg is the hidden command the wrap helper runs as.
const wrapChildArg = "__wrap-child"

// cmdWrapChild is the helper: it confines itself and becomes CMD.
func cmdWrapChild() error {
	err := sandbox.RunChild()
	return &exitError{code: 126, err: fmt.Errorf("wrap: the wrapped server was not started: %w", err)}
}

// cmdWrap implements `idmcp wrap [flags] -- CMD [ARGS…]`.
func cmdWrap(ctx context.Context, args []string, stderr io.Writer) error {
	var f serveFlags
	fs := flag.NewFlagSet("wrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: idmcp wrap [--profile NAME] [--policy FILE] [--sandbox auto|strict|off] -- CMD [ARGS…]")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.dataDir, "data-dir", "", "data dir (default $IDMCP_DATA_DIR or the per-user state dir)")
	fs.StringVar(&f.profile, "profile", "default", "host profile to authenticate the host against")
	fs.StringVar(&f.secretFile, "secret-file", "", "file holding the profile's shared secret (mode 0600 or stricter)")
	fs.StringVar(&f.auditSync, "audit-sync", "full", "audit durability: full or normal")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.policy, "policy", "", "policy file (TOML); its [wrap] section decides what of CMD callers reach (without one every tool is hidden)")
	fs.StringVar(&f.sandbox, "sandbox", envOr("IDMCP_SANDBOX", "auto"), "confinement of CMD and of idmcp itself on Linux: auto, strict or off [$IDMCP_SANDBOX]")
	fs.BoolVar(&f.noKeyring, "no-keyring", false, "keep the audit key in a file (--audit-key-file) instead of the OS keyring; protects the chain less")
	fs.StringVar(&f.auditKeyFile, "audit-key-file", os.Getenv("IDMCP_AUDIT_KEY_FILE"), "the audit key file, outside the data dir (default DATA_DIR.audit-key) [$IDMCP_AUDIT_KEY_FILE]")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cmdArgs := fs.Args()
	if len(cmdArgs) == 0 {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("wrap: no command given after --")}
	}
	// A host that closes idmcp's stderr (mcp-go's client does, before it
	// waits for the process) must not kill it with SIGPIPE before the
	// child is stopped and the last audit rows are written: writes then
	// fail with EPIPE instead. Notify, not Ignore: an ignored signal would
	// stay ignored in the child.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	envToken := os.Getenv("IDMCP_TOKEN")
	sharedSecret := os.Getenv("IDMCP_SHARED_SECRET")
	_ = os.Unsetenv("IDMCP_TOKEN")
	_ = os.Unsetenv("IDMCP_SHARED_SECRET")
	if err := auth.ValidateProfileName(f.profile); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--profile: %w", err)}
	}
	c, err := f.common()
	if err != nil {
		return err
	}
	var rules *auth.WrapPolicy
	if c.pol != nil {
		rules = c.pol.Wrap
	}
	redactor := &audit.Redactor{Keys: policyRedactKeys(c.pol)}
	for _, s := range []string{envToken, sharedSecret} {
		if s != "" {
			redactor.Secrets = append(redactor.Secrets, s)
		}
	}
	logger := server.NewLogger(stderr, c.level, redactor)
	if rules == nil {
		logger.Warn("no [wrap] section in the policy: every tool, prompt and resource of the wrapped server is hidden", "policy", dash(f.policy))
	}

	// Wide access first: profile, secrets (keyring over D-Bus), the audit
	// log, the child's secrets, the helpers.
	profile, err := store.NewHosts(c.dir).Get(f.profile)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil {
		profile = nil
	}
	profile, _ = c.pol.HostProfile(f.profile, profile)
	if profile == nil {
		logger.Warn("host profile does not exist; every request will be refused", "profile", f.profile, "fix", "idmcp host add "+f.profile)
	}
	secret, source, problem, err := expectedSecret(ctx, logger, profile, f.secretFile, sharedSecret)
	if err != nil {
		return err
	}
	if len(secret) > 0 {
		redactor.Secrets = append(redactor.Secrets, string(secret))
	}
	if profile != nil && !profile.Keyring && len(secret) == 0 {
		// As serve: refuse to start, saying what to set, rather than
		// refuse every request.
		return fmt.Errorf("host profile %q keeps its secret outside the keyring (--no-keyring) and none was given: set IDMCP_SHARED_SECRET in the server's environment (the host config's env block) or pass --secret-file FILE", f.profile)
	}
	human := osUser()
	host, err := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{
		ProfileName: f.profile, Profile: profile, Secret: secret, SecretSource: source, SecretProblem: problem, Human: human,
	})
	if err != nil {
		return err
	}
	env, err := wrapEnv(ctx, rules, redactor)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "idmcp-wrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	spec, err := wrapSpec(c.sbMode, c.dir, tmp, rules, env, cmdArgs)
	if err != nil {
		return &exitError{code: 2, err: err}
	}

	alog, err := openAuditLog(ctx, c, redactor, logger) // keyed, as serve's
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), defaultDrain)
		defer cancel()
		if err := alog.Close(cctx); err != nil {
			logger.Error("audit log did not drain", "err", err)
		}
	}()
	gate, err := server.NewGate(server.StdioConfig{
		Config: server.Config{Version: version, Audit: alog, Logger: logger},
		Host:   host, EnvToken: envToken,
	})
	if err != nil {
		return err
	}

	// The helpers are started before idmcp confines itself (its seccomp
	// filter denies execve): one per run of CMD the policy allows.
	restart := 0
	if rules != nil {
		restart = rules.Restart
	}
	helpers, err := startHelpers(1+restart, &childStderr{log: logger})
	if err != nil {
		return err
	}
	defer helpers.abandon()

	sbPolicy, err := sandboxPolicy(sandboxInputs{Mode: c.sbMode, DataDir: c.dir})
	if err != nil {
		return err
	}
	sb, err := applySandbox(logger, sbPolicy)
	if err != nil {
		return err
	}
	command := filepath.Base(cmdArgs[0])
	r, err := relay.New(relay.Config{
		Gate: gate, Audit: alog, Rules: rules, Logger: logger, Version: version, Session: gate.Session(),
		Command: command, Restart: restart, Start: helpers.starter(spec),
	})
	if err != nil {
		return err
	}
	startEv := audit.Event{Transport: "stdio", Session: gate.Session(), Event: audit.EventServerStart, Subject: human, ClientID: f.profile, Tool: command,
		Reason: fmt.Sprintf("idmcp %s (%s/%s) wrapping %s for profile %s; secret from %s; %s; child %s", version, runtime.GOOS, runtime.GOARCH, command, f.profile, dash(source), sb, childSandboxText(spec))}
	if err := alog.Append(ctx, startEv); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	logger.Info("wrapping on stdio", "command", command, "profile", f.profile, "data_dir", c.dir)
	err = r.Serve(ctx, os.Stdin, os.Stdout)
	stopEv := audit.Event{Transport: "stdio", Session: gate.Session(), Event: audit.EventServerStop, Subject: human, ClientID: f.profile, Tool: command, Reason: "stdin closed or signal"}
	if err != nil {
		stopEv.Reason = err.Error()
	}
	if aerr := alog.Append(context.WithoutCancel(ctx), stopEv); aerr != nil {
		logger.Error("audit stop row", "err", aerr)
	}
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("wrap: %w", err)}
	}
	return nil
}

// defaultDrain bounds the audit log's drain on exit.
const defaultDrain = 10 * time.Second

// childSandboxText names the child's confinement for the start row.
func childSandboxText(s sandbox.ChildSpec) string {
	if s.Mode == sandbox.ModeOff {
		return "unconfined (--sandbox off)"
	}
	return fmt.Sprintf("confined (%s): read %d, write %d, exec %d paths, tcp ports %v", s.Mode, len(s.Read), len(s.Write), len(s.Exec), s.ConnectTCP)
}

// secretKeyring holds the secrets [wrap.env] names (idmcp secret set):
// service "idmcp-secrets", or $IDMCP_KEYRING_SERVICE-secrets in tests.
func secretKeyring() *keyring.Keyring {
	svc := keyring.Service
	if s := os.Getenv("IDMCP_KEYRING_SERVICE"); s != "" {
		svc = s
	}
	return keyring.New(keyring.Config{Service: svc + "-secrets"})
}

// wrapEnv builds the child's environment: PATH, HOME and LANG (HOME and
// TMPDIR are set by wrapSpec), and [wrap.env], whose keyring values are
// read now and redacted from every row and log line.
func wrapEnv(ctx context.Context, rules *auth.WrapPolicy, redactor *audit.Redactor) ([]string, error) {
	lang := os.Getenv("LANG")
	if lang == "" {
		lang = "C.UTF-8"
	}
	env := []string{"PATH=" + defaultChildPath, "LANG=" + lang}
	if rules == nil {
		return env, nil
	}
	for _, e := range rules.Env {
		v := e.Value
		if e.Keyring != "" {
			s, err := secretKeyring().Get(ctx, e.Keyring)
			if errors.Is(err, keyring.ErrNotFound) {
				return nil, &exitError{code: 2, err: fmt.Errorf("[wrap.env] %s: no secret %q in the OS keyring (idmcp secret set %s)", e.Name, e.Keyring, e.Keyring)}
			}
			if err != nil {
				return nil, fmt.Errorf("[wrap.env] %s: the OS keyring is unavailable: %w", e.Name, err)
			}
			v = s
			redactor.Secrets = append(redactor.Secrets, s)
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

// defaultChildPath is the child's PATH.
const defaultChildPath = "/usr/local/bin:/usr/bin:/bin"

// wrapSpec builds the child's confinement from the policy, or the
// defaults, plus the private directory tmp as HOME and TMPDIR.
func wrapSpec(mode sandbox.Mode, dataDir, tmp string, rules *auth.WrapPolicy, env, cmdArgs []string) (sandbox.ChildSpec, error) {
	s := sandbox.ChildSpec{Mode: mode, Path: cmdArgs[0], Args: cmdArgs, Env: append(env, "HOME="+tmp, "TMPDIR="+tmp),
		Read: sandbox.DefaultChildRead, Write: sandbox.DefaultChildWrite, Exec: sandbox.DefaultChildExec}
	if wd, err := os.Getwd(); err == nil {
		s.Dir = wd
	}
	var sb auth.WrapSandbox
	if rules != nil {
		sb = rules.Sandbox
	}
	// The policy's lists add to the defaults, which hold nothing private.
	s.Read = append(slices.Clone(s.Read), sb.Read...)
	s.Write = append(slices.Clone(s.Write), sb.Write...)
	s.Exec = append(slices.Clone(s.Exec), sb.Exec...)
	s.Write = append(s.Write, tmp)
	for _, c := range sb.Connect {
		_, port, _ := net.SplitHostPort(c)
		n, _ := strconv.ParseUint(port, 10, 16)
		s.ConnectTCP = append(s.ConnectTCP, uint16(n))
	}
	s.Deny = []string{dataDir}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("[wrap.sandbox]: %w", err)
	}
	return s, nil
}

// helperPool holds the helpers started before idmcp confined itself.
type helperPool struct {
	mu   sync.Mutex
	free []*sandbox.Helper
}

func startHelpers(n int, stderr io.Writer) (*helperPool, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("wrap: finding idmcp's own binary: %w", err)
	}
	hp := &helperPool{}
	for range n {
		h, err := sandbox.StartHelper(exe, stderr, wrapChildArg)
		if err != nil {
			hp.abandon()
			return nil, err
		}
		hp.free = append(hp.free, h)
	}
	return hp, nil
}

func (hp *helperPool) abandon() {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	for _, h := range hp.free {
		h.Abandon()
	}
	hp.free = nil
}

// starter releases the next helper into CMD.
func (hp *helperPool) starter(spec sandbox.ChildSpec) relay.Starter {
	return func(_ context.Context, attempt int) (*relay.Process, error) {
		hp.mu.Lock()
		if len(hp.free) == 0 {
			hp.mu.Unlock()
			return nil, fmt.Errorf("no helper left for start %d", attempt)
		}
		h := hp.free[0]
		hp.free = hp.free[1:]
		hp.mu.Unlock()
		if err := h.Release(spec); err != nil {
			h.Abandon()
			return nil, fmt.Errorf("releasing the wrap helper: %w", err)
		}
		// The helper supervises CMD: it is in CMD's Landlock domain and may
		// signal it, which this process may not (see sandbox.ChildSpec).
		return &relay.Process{
			Stdin: h.Stdin, Stdout: h.Stdout, Wait: h.Cmd.Wait, Pid: h.Cmd.Process.Pid,
			Terminate: h.Terminate, Kill: h.Kill,
		}, nil
	}
}

// childStderr passes what CMD writes to stderr on to idmcp's log, one
// record per line, through the logger's redaction: a server that prints
// the token [wrap.env] gave it does not put it in the host's log file.
type childStderr struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

// maxChildLogLine bounds one logged line of CMD's stderr.
const maxChildLogLine = 16 << 10

func (w *childStderr) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > maxChildLogLine {
				w.emit(w.buf[:maxChildLogLine])
				w.buf = w.buf[:0]
			}
			return len(p), nil
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *childStderr) emit(line []byte) {
	if len(line) > maxChildLogLine {
		line = line[:maxChildLogLine]
	}
	w.log.Info("wrapped server", "stderr", string(bytes.TrimRight(line, "\r")))
}
