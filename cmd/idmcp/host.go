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
	"strings"
	"text/tabwriter"
	"time"

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

func cmdHost(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &exitError{code: 2, err: errors.New("usage: idmcp host add|list|rotate|remove|install")}
	}
	// host_install.go: --install, --print, install, --uninstall.
	if wantsInstaller(args) {
		return cmdHostInstall(ctx, args, stdout, stderr)
	}
	fs := flag.NewFlagSet("host "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dd := fs.String("data-dir", "", "data dir (default $IDMCP_DATA_DIR or the per-user state dir)")
	scopes := fs.String("scopes", "", "space-separated scopes granted to the host (add)")
	roles := fs.String("roles", "", "space-separated roles granted to the host (add)")
	noKeyring := fs.Bool("no-keyring", false, "do not use the OS keyring: the secret comes from IDMCP_SHARED_SECRET or --secret-file (add)")
	secretFile := fs.String("secret-file", "", "with --no-keyring: write the new secret to this file, mode 0600 (add, rotate)")
	force := fs.Bool("force", false, "replace an existing profile (add)")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
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
		p := &auth.HostProfile{Name: name, Scopes: strings.Fields(*scopes), Roles: strings.Fields(*roles), Keyring: !*noKeyring, Created: time.Now().UTC()}
		if p.Scopes == nil {
			p.Scopes = []string{}
		}
		if p.Roles == nil {
			p.Roles = []string{}
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
	return &exitError{code: 2, err: fmt.Errorf("unknown host command %q; want add, list, rotate or remove", args[0])}
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
