package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/auth/keyring"
	"github.com/idmcp/idmcp/store"
)

// hostLockTimeout is how long a host command waits for another one to finish.
const hostLockTimeout = 30 * time.Second

// lockHosts takes the data dir's profile lock, waiting at most hostLockTimeout.
func lockHosts(ctx context.Context, hosts *store.Hosts) (unlock func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, hostLockTimeout)
	defer cancel()
	return hosts.Lock(ctx)
}

const hostUsage = `usage: idmcp host COMMAND [flags]

  add NAME [--scopes S] [--roles R] [--no-keyring [--secret-file F]] [--force] [--policy FILE]
                 create a profile and print its token (shown once)
  list           the profiles, their scopes and roles, and where each secret lives
  rotate NAME [--secret-file F]   a new token for a profile; the old one stops working
  remove NAME    delete a profile and its keyring entry
  add NAME --install HOST [--scope user|project|local] [--workspace DIR] [--dry-run] [--force]
                 create a profile and write it into HOST's configuration file
  add NAME --print HOST          create a profile and print HOST's entry (no file written)
  install NAME HOST              write an existing profile into HOST's file (rotates its token)
  remove NAME --uninstall        also remove its entry from every host file idmcp knows
                 HOST: claude-desktop, claude-code, vscode, cursor, windsurf, gemini, codex, zed

Scopes and roles are separated by spaces or commas. Every command takes --data-dir DIR (else
$IDMCP_DATA_DIR, else the per-user state dir). Run 'idmcp host COMMAND -h' for its flags.
`

// hostFlags are the flags of one host subcommand; those it does not take
// stay at their zero values.
type hostFlags struct {
	dataDir, scopes, roles, secretFile, policy string
	noKeyring, force                           bool
}

// newHostFlagSet declares the flags sub takes, and only those, so that
// `host list -h` does not offer add's flags.
func newHostFlagSet(sub string, stderr io.Writer) (*flag.FlagSet, *hostFlags) {
	var f hostFlags
	fs := flag.NewFlagSet("host "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.dataDir, "data-dir", "", "data dir (default $IDMCP_DATA_DIR or the per-user state dir)")
	switch sub {
	case "add":
		fs.StringVar(&f.scopes, "scopes", "", "scopes granted to the host, separated by spaces or commas")
		fs.StringVar(&f.roles, "roles", "", "roles granted to the host, separated by spaces or commas")
		fs.BoolVar(&f.noKeyring, "no-keyring", false, "do not use the OS keyring: the secret comes from IDMCP_SHARED_SECRET or --secret-file")
		fs.StringVar(&f.secretFile, "secret-file", "", "with --no-keyring: write the new secret to this file, mode 0600")
		fs.BoolVar(&f.force, "force", false, "replace an existing profile")
		fs.StringVar(&f.policy, "policy", "", "the policy `FILE` the server runs with, to warn about scopes no enabled tool requires (default: the built-in tools)")
	case "rotate":
		fs.StringVar(&f.secretFile, "secret-file", "", "for a --no-keyring profile: write the new secret to this file, mode 0600")
	}
	return fs, &f
}

// splitList splits a --scopes or --roles value on spaces and commas, so
// that "todo:read,todo:write" is two scopes, not one that no tool requires.
func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// unusedScopes returns the scopes of granted that no tool enabled by the
// policy at path (the built-in defaults when empty) requires: most often a
// misspelling, which would otherwise fail only at the first tool call.
func unusedScopes(ctx context.Context, policyPath string, granted []string) ([]string, []string, error) {
	pol, err := loadPolicy(policyPath)
	if err != nil {
		return nil, nil, err
	}
	ts, err := buildTools(ctx, toolsetOptions{Policy: pol, Catalog: true})
	if err != nil {
		return nil, nil, err
	}
	defer ts.Close()
	var known []string
	for _, spec := range ts.Specs {
		for _, sc := range spec.Scopes {
			if !slices.Contains(known, sc) {
				known = append(known, sc)
			}
		}
	}
	slices.Sort(known)
	var unused []string
	for _, sc := range granted {
		if !slices.Contains(known, sc) {
			unused = append(unused, sc)
		}
	}
	return unused, known, nil
}

func cmdHost(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, hostUsage)
		return &exitError{code: 2, err: errors.New("usage: idmcp host add|list|rotate|remove|install"), quiet: true}
	}
	// host_install.go: --install, --print, install, --uninstall.
	if wantsInstaller(args) {
		return cmdHostInstall(ctx, args, stdout, stderr)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, hostUsage)
		return nil
	case "add", "list", "rotate", "remove":
	default:
		fmt.Fprint(stderr, hostUsage)
		return &exitError{code: 2, err: fmt.Errorf("unknown host command %q; want add, list, rotate, remove or install", termSafe(args[0]))}
	}
	fs, hf := newHostFlagSet(args[0], stderr)
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if args[0] == "list" && len(pos) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("host list takes no arguments, got %q", pos)}
	}
	dd, scopes, roles, noKeyring, secretFile, force := &hf.dataDir, &hf.scopes, &hf.roles, &hf.noKeyring, &hf.secretFile, &hf.force
	dir, explicit, err := dataDir(*dd)
	if err != nil {
		return err
	}
	hosts := store.NewHosts(dir)
	kr := hostKeyring()
	unlock := func() {}
	defer func() { unlock() }()
	// needName checks the NAME argument of add, rotate and remove, then
	// takes the data dir's lock: each reads, decides, writes the keyring and
	// writes hosts.json, one command at a time.
	needName := func() (string, error) {
		if len(pos) != 1 {
			return "", &exitError{code: 2, err: fmt.Errorf("usage: idmcp host %s NAME", args[0])}
		}
		if err := auth.ValidateProfileName(pos[0]); err != nil {
			return "", err
		}
		u, err := lockHosts(ctx, hosts)
		if err != nil {
			return "", err
		}
		unlock = u
		return pos[0], nil
	}
	switch args[0] {
	case "add":
		name, err := needName()
		if err != nil {
			return err
		}
		if _, err := hosts.Get(name); err == nil && !*force {
			return fmt.Errorf("host profile %q exists; use `idmcp host rotate %s` for a new secret, or --force to replace it", name, name)
		}
		p := &auth.HostProfile{Name: name, Scopes: splitList(*scopes), Roles: splitList(*roles), Keyring: !*noKeyring, Created: time.Now().UTC()}
		if err := p.Validate(); err != nil {
			return &exitError{code: 2, err: err}
		}
		unused, known, err := unusedScopes(ctx, hf.policy, p.Scopes)
		if err != nil {
			return err
		}
		for _, sc := range unused {
			fmt.Fprintf(stderr, "warning: no enabled tool requires scope %q (known scopes: %s); check the spelling\n", termSafe(sc), strings.Join(known, " "))
		}
		token := auth.NewHostToken()
		if err := storeSecret(ctx, kr, p, token, *secretFile, true); err != nil {
			return err
		}
		if err := hosts.Put(p); err != nil {
			return err
		}
		printToken(stdout, p, token, dir, explicit, *secretFile, "created")
		return nil
	case "rotate":
		name, err := needName()
		if err != nil {
			return err
		}
		p, err := hosts.Get(name)
		if err != nil {
			return fmt.Errorf("%w; run `idmcp host add %s`", err, name)
		}
		token := auth.NewHostToken()
		if err := storeSecret(ctx, kr, p, token, *secretFile, false); err != nil {
			return err
		}
		p.Rotated = time.Now().UTC()
		if err := hosts.Put(p); err != nil {
			return err
		}
		what := "rotated; the old secret no longer works"
		if !p.Keyring && *secretFile == "" {
			// Nothing on the server side changed: the expected secret is
			// whatever IDMCP_SHARED_SECRET or --secret-file says.
			what = "given a new token; the server keeps accepting the old one until you put the new one in its IDMCP_SHARED_SECRET or --secret-file"
		}
		printToken(stdout, p, token, dir, explicit, *secretFile, what)
		return nil
	case "remove":
		name, err := needName()
		if err != nil {
			return err
		}
		p, err := hosts.Get(name)
		if err != nil {
			return err
		}
		if p.Keyring {
			if err := kr.Delete(ctx, name); err != nil {
				fmt.Fprintf(stderr, "warning: could not remove the keyring entry (service %q, account %q): %v\n", keyring.Service, name, err)
			}
		}
		if err := hosts.Remove(name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "host profile %q removed\n", name)
		return nil
	case "list":
		ps, err := hosts.List()
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			fmt.Fprintf(stdout, "no host profiles in %s; add one with `idmcp host add NAME --scopes \"todo:read\"`\n", dir)
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PROFILE\tSCOPES\tROLES\tSECRET\tCREATED")
		for _, p := range ps {
			secret := "IDMCP_SHARED_SECRET / --secret-file"
			if p.Keyring {
				switch _, err := kr.Get(ctx, p.Name); {
				case err == nil:
					secret = "keyring"
				case errors.Is(err, keyring.ErrNotFound):
					secret = "keyring (entry missing: run host rotate)"
				default:
					secret = "keyring (unavailable)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, dash(strings.Join(p.Scopes, " ")), dash(strings.Join(p.Roles, " ")), secret, p.Created.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return nil // unreachable: args[0] was checked above
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// storeSecret puts token where the profile's secret lives: the keyring, or,
// for --no-keyring profiles, the given secret file (created 0600).
func storeSecret(ctx context.Context, kr *keyring.Keyring, p *auth.HostProfile, token, secretFile string, create bool) error {
	if p.Keyring {
		if secretFile != "" {
			return errors.New("--secret-file goes with --no-keyring")
		}
		if err := kr.Set(ctx, p.Name, token); err != nil {
			return fmt.Errorf("store the secret in the OS keyring: %w (on a headless machine use --no-keyring)", err)
		}
		return nil
	}
	if secretFile == "" {
		return nil
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if create {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(secretFile, flags, 0o600)
	if err != nil {
		return fmt.Errorf("secret file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		_ = f.Close()
		return fmt.Errorf("secret file: %w", err)
	}
	if _, err := io.WriteString(f, token+"\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("secret file: %w", err)
	}
	return f.Close()
}

// printToken shows the token once, with a ready-to-paste Claude Desktop entry.
func printToken(w io.Writer, p *auth.HostProfile, token, dir string, explicitDir bool, secretFile, what string) {
	exe, err := os.Executable()
	if err == nil {
		exe, _ = filepath.EvalSymlinks(exe)
	}
	if exe == "" {
		exe = "idmcp"
	}
	args := []string{"serve", "--profile", p.Name}
	if explicitDir {
		args = append(args, "--data-dir", dir)
	}
	if secretFile != "" {
		abs, _ := filepath.Abs(secretFile)
		args = append(args, "--secret-file", abs)
	}
	env := map[string]string{"IDMCP_TOKEN": token}
	if !p.Keyring && secretFile == "" {
		// Without a keyring or a secret file the server expects the secret in
		// its own environment, which here is the host's env block too.
		env["IDMCP_SHARED_SECRET"] = token
	}
	type serverEntry struct { // field order is the order hosts' docs show
		Command string            `json:"command"`
		Args    []string          `json:"args"`
		Env     map[string]string `json:"env"`
	}
	entry := map[string]any{"mcpServers": map[string]serverEntry{
		"idmcp-" + p.Name: {Command: exe, Args: args, Env: env},
	}}
	b, _ := json.MarshalIndent(entry, "", "  ")
	fmt.Fprintf(w, "host profile %q %s (scopes: %s; roles: %s)\n\n", p.Name, what, dash(strings.Join(p.Scopes, " ")), dash(strings.Join(p.Roles, " ")))
	fmt.Fprintf(w, "Token (shown once, keep it secret):\n  %s\n\n", token)
	switch {
	case p.Keyring:
		fmt.Fprintf(w, "The server reads the expected secret from the OS keyring (service %q, account %q).\n", keyring.Service, p.Name)
	case secretFile != "":
		fmt.Fprintf(w, "The server reads the expected secret from %s (mode 0600).\n", secretFile)
	default:
		fmt.Fprintln(w, "No keyring: the server expects this token in IDMCP_SHARED_SECRET (set in the entry below), or in a")
		fmt.Fprintln(w, "--secret-file FILE (mode 0600; pass --secret-file to `host add` to write one), which keeps it out of the host's config.")
	}
	fmt.Fprintf(w, "\nClaude Desktop (claude_desktop_config.json):\n%s\n", b)
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		fmt.Fprintln(w, "\nNote: this binary was started by `go run`; install it (go install ./cmd/idmcp) and use that path in \"command\".")
	}
}
