package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/auth/keyring"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/hostconfig"
)

// The host installers: `host add NAME --install HOST`, `host install NAME
// HOST`, `host add NAME --print HOST` and `host remove NAME --uninstall`.
// The files' locations, formats and edits live in store/hostconfig; this
// file parses flags, issues the token with host add/rotate's code and
// prints what was done.

// wantsInstaller reports whether args (after "host") are an installer
// command, which cmdHostInstall handles.
func wantsInstaller(args []string) bool {
	if len(args) == 0 {
		return false
	}
	has := func(flags ...string) bool {
		for _, a := range args[1:] {
			if a == "--" {
				return false
			}
			for _, f := range flags {
				if a == "-"+f || a == "--"+f || strings.HasPrefix(a, "-"+f+"=") || strings.HasPrefix(a, "--"+f+"=") {
					return true
				}
			}
		}
		return false
	}
	switch args[0] {
	case "install":
		return true
	case "add":
		// -h too: add's help lists --install and --print.
		return has("install", "print", "h", "help")
	case "remove":
		return has("uninstall", "h", "help")
	}
	return false
}

type installFlags struct {
	dataDir, scopes, roles, secretFile  string
	install, print, scope, workspace    string
	config, policy                      string
	noKeyring, force, dryRun, uninstall bool
}

const installUsage = `usage:
  idmcp host add NAME --install HOST [--scope user|project|local] [--workspace DIR] [--scopes S] [--roles R]
                 [--no-keyring --secret-file F] [--config FILE] [--dry-run] [--force]
  idmcp host add NAME --print HOST [--scopes S] [--roles R]   create the profile, print the host's entry, write nothing
  idmcp host install NAME HOST [--scope …] [--workspace DIR] [--secret-file F] [--config FILE] [--dry-run] [--force]
                 install an existing profile (its token is rotated: tokens are shown only once)
  idmcp host remove NAME --uninstall [--workspace DIR] [--dry-run]
                 remove the profile and its entry from every host file idmcp knows

HOST is one of claude-desktop, claude-code, vscode, cursor, windsurf, gemini, codex, zed.
`

func cmdHostInstall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f installFlags
	fs := flag.NewFlagSet("host "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, installUsage); fs.PrintDefaults() }
	sub := args[0]
	fs.StringVar(&f.dataDir, "data-dir", "", "data dir (default $IDMCP_DATA_DIR or the per-user state dir)")
	// Each subcommand declares only the flags it takes (as host.go does).
	if sub == "add" {
		fs.StringVar(&f.scopes, "scopes", "", "scopes granted to the host, separated by spaces or commas")
		fs.StringVar(&f.roles, "roles", "", "roles granted to the host, separated by spaces or commas")
		fs.StringVar(&f.policy, "policy", "", "the policy `FILE` the server runs with, to warn about scopes no enabled tool requires")
		fs.BoolVar(&f.noKeyring, "no-keyring", false, "do not use the OS keyring; with --install it needs --secret-file")
		fs.StringVar(&f.install, "install", "", "write the profile's entry into this `HOST`'s configuration file")
		fs.StringVar(&f.print, "print", "", "print this `HOST`'s entry instead of writing a file")
	}
	if sub != "remove" {
		fs.StringVar(&f.secretFile, "secret-file", "", "with --no-keyring: the file (mode 0600) the server reads the secret from")
		fs.StringVar(&f.scope, "scope", "user", "which of the host's files: user, project (in --workspace) or local (Claude Code)")
		fs.StringVar(&f.config, "config", "", "edit this `FILE` instead of the host's default location")
		fs.BoolVar(&f.force, "force", false, "replace an existing profile (add) and an existing entry in the host's file")
	} else {
		fs.BoolVar(&f.uninstall, "uninstall", false, "also remove the profile's entry from every host file idmcp knows")
	}
	fs.StringVar(&f.workspace, "workspace", "", "the project directory for --scope project|local and --uninstall (default: the working directory)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the change as a unified diff (secrets masked) and change nothing")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if args[0] == "install" {
		if len(pos) != 2 {
			return &exitError{code: 2, err: errors.New("usage: idmcp host install NAME HOST")}
		}
		f.install, pos = pos[1], pos[:1]
	}
	if len(pos) != 1 {
		return &exitError{code: 2, err: fmt.Errorf("usage: idmcp host %s NAME …", args[0])}
	}
	name := pos[0]
	if err := auth.ValidateProfileName(name); err != nil {
		return err
	}
	dir, explicit, err := dataDir(f.dataDir)
	if err != nil {
		return err
	}
	env, err := hostconfig.EnvFromOS(f.workspace)
	if err != nil {
		return err
	}
	in := &installer{f: f, name: name, dir: dir, explicitDir: explicit, env: env, hosts: store.NewHosts(dir), kr: hostKeyring(), stdout: stdout, stderr: stderr}
	switch {
	case args[0] == "remove":
		return in.remove(ctx)
	case f.print != "":
		return in.addAndPrint(ctx)
	}
	return in.install(ctx, args[0] == "add")
}

type installer struct {
	f           installFlags
	name, dir   string
	explicitDir bool
	env         hostconfig.Env
	hosts       *store.Hosts
	kr          *keyring.Keyring
	stdout      io.Writer
	stderr      io.Writer
}

// newProfile is the profile `host add` would create from the flags, with
// add's checks: a valid profile, and a warning for a scope no enabled tool
// requires.
func (in *installer) newProfile(ctx context.Context) (*auth.HostProfile, error) {
	p := &auth.HostProfile{Name: in.name, Scopes: splitList(in.f.scopes), Roles: splitList(in.f.roles), Keyring: !in.f.noKeyring, Created: time.Now().UTC()}
	if err := p.Validate(); err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	unused, known, err := unusedScopes(ctx, in.f.policy, p.Scopes)
	if err != nil {
		return nil, err
	}
	for _, sc := range unused {
		fmt.Fprintf(in.stderr, "warning: no enabled tool requires scope %q (known scopes: %s); check the spelling\n", termSafe(sc), strings.Join(known, " "))
	}
	return p, nil
}

// target is the host file the command edits.
func (in *installer) target(hostName string) (hostconfig.Target, error) {
	h, err := hostconfig.ParseHost(hostName)
	if err != nil {
		return hostconfig.Target{}, &exitError{code: 2, err: err}
	}
	scope := hostconfig.Scope(in.f.scope)
	switch scope {
	case hostconfig.User, hostconfig.Project, hostconfig.Local:
	default:
		return hostconfig.Target{}, &exitError{code: 2, err: fmt.Errorf("unknown --scope %q; want user, project or local", in.f.scope)}
	}
	if in.f.config != "" {
		p, err := filepath.Abs(in.f.config)
		if err != nil {
			return hostconfig.Target{}, err
		}
		if scope == hostconfig.Local && h != hostconfig.ClaudeCode {
			return hostconfig.Target{}, &exitError{code: 2, err: errors.New("--scope local is Claude Code's only")}
		}
		return hostconfig.Target{Host: h, Scope: scope, Path: p, Workspace: in.env.Workspace}, nil
	}
	return hostconfig.Locate(h, scope, in.env)
}

// entry is how the host launches `idmcp serve` for profile p: the absolute
// path of this binary, the profile, the data dir when it is not the
// default, and the secret file of a --no-keyring profile.
func (in *installer) entry(p *auth.HostProfile, token, secretFile string) (hostconfig.Entry, error) {
	exe, err := os.Executable()
	if err != nil {
		return hostconfig.Entry{}, fmt.Errorf("find this binary's path for the host's command: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	args := []string{"serve", "--profile", p.Name}
	if in.explicitDir {
		args = append(args, "--data-dir", in.dir)
	}
	if secretFile != "" {
		abs, err := filepath.Abs(secretFile)
		if err != nil {
			return hostconfig.Entry{}, err
		}
		args = append(args, "--secret-file", abs)
	}
	return hostconfig.Entry{Name: hostconfig.EntryName(p.Name), Profile: p.Name, Command: exe, Args: args, Token: token}, nil
}

// checkSecretPlacement refuses what would put a secret twice into a host
// file, and says up front when there is no keyring to hold it.
func (in *installer) checkSecretPlacement(ctx context.Context, keyringProfile bool) error {
	if !keyringProfile {
		if in.f.secretFile == "" {
			return &exitError{code: 2, err: errors.New("a --no-keyring profile needs --secret-file FILE to be installed: the server then reads the secret from FILE and the host's file holds only the token (without it, the secret would be in the host's file twice)")}
		}
		return nil
	}
	if in.f.secretFile != "" {
		return &exitError{code: 2, err: errors.New("--secret-file goes with --no-keyring")}
	}
	if _, err := in.kr.Get(ctx, in.name); err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return fmt.Errorf("no usable OS keyring on this machine (%v); on a headless machine without a Secret Service, use --no-keyring --secret-file FILE: the server reads the secret from FILE (0600) and the host's file holds only the token", err)
	}
	return nil
}

// dryRunToken stands in for the token a dry run does not issue.
const dryRunToken = "idmcp_<new token: issued when you run without --dry-run>"

func (in *installer) install(ctx context.Context, create bool) error {
	t, err := in.target(in.f.install)
	if err != nil {
		return err
	}
	u, err := lockHosts(ctx, in.hosts)
	if err != nil {
		return err
	}
	defer u()
	existing, getErr := in.hosts.Get(in.name)
	var p *auth.HostProfile
	switch {
	case create && getErr == nil && !in.f.force:
		return fmt.Errorf("host profile %q exists; use `idmcp host install %s %s` to install it, or --force to replace it", in.name, in.name, t.Host)
	case create:
		if p, err = in.newProfile(ctx); err != nil {
			return err
		}
	case getErr != nil:
		return fmt.Errorf("%w; create it with `idmcp host add %s --install %s`", getErr, in.name, t.Host)
	default:
		p = existing
	}
	if err := in.checkSecretPlacement(ctx, p.Keyring); err != nil {
		return err
	}
	// Check the host's file before anything changes: an invalid file or an
	// entry that needs --force leaves the profile and its token as they were.
	e, err := in.entry(p, dryRunToken, in.f.secretFile)
	if err != nil {
		return err
	}
	c, err := hostconfig.Install(t, e, hostconfig.Options{Force: in.f.force})
	if err != nil {
		return err
	}
	if in.f.dryRun {
		fmt.Fprintf(in.stdout, "dry run: nothing was changed; %s (%s scope) would be edited:\n\n%s", t.Host.DisplayName(), t.Scope, c.Diff())
		if create {
			fmt.Fprintf(in.stdout, "\nand host profile %q would be created (scopes: %s; roles: %s).\n", in.name, dash(strings.Join(p.Scopes, " ")), dash(strings.Join(p.Roles, " ")))
		} else {
			fmt.Fprintf(in.stdout, "\nand host profile %q would get a new token (the old one stops working).\n", in.name)
		}
		return nil
	}
	token := auth.NewHostToken()
	if err := storeSecret(ctx, in.kr, p, token, in.f.secretFile, create && (existing == nil || !in.f.force)); err != nil {
		return err
	}
	if !create {
		p.Rotated = time.Now().UTC()
	}
	if err := in.hosts.Put(p); err != nil {
		return err
	}
	e.Token = token
	c, err = hostconfig.Install(t, e, hostconfig.Options{Force: in.f.force})
	if err != nil {
		return fmt.Errorf("%w (the profile's token was issued; rerun `idmcp host install %s %s` once the file is fixed)", err, in.name, t.Host)
	}
	backup, err := c.Write(time.Now())
	if err != nil {
		return err
	}
	what := "created"
	if !create {
		what = "given a new token (the old one no longer works)"
	}
	fmt.Fprintf(in.stdout, "host profile %q %s (scopes: %s; roles: %s)\n\n", p.Name, what, dash(strings.Join(p.Scopes, " ")), dash(strings.Join(p.Roles, " ")))
	fmt.Fprintf(in.stdout, "Token (shown once, keep it secret):\n  %s\n\n", token)
	verb := "added to"
	if c.Existed {
		verb = "replaced in"
	}
	fmt.Fprintf(in.stdout, "%s entry %q %s %s (%s scope)\n", t.Host.DisplayName(), e.Name, verb, t.Path, t.Scope)
	if backup != "" {
		fmt.Fprintf(in.stdout, "previous file backed up to %s\n", backup)
	}
	if h := c.Hint(); h != "" {
		fmt.Fprintln(in.stdout, h)
	}
	if !create {
		// The token was rotated: other hosts installed for this profile now
		// hold the old one.
		for _, o := range hostconfig.KnownTargets(in.env) {
			found, _ := hostconfig.Inspect(o)
			for _, f := range found {
				if f.Profile() == p.Name && f.TokenRef == "" && (o.Path != t.Path || o.Scope != t.Scope) {
					fmt.Fprintf(in.stdout, "warning: %s (%s) also starts profile %q with its old token, which no longer works; give each host its own profile, or reinstall it there\n", o.Path, o.Host, p.Name)
				}
			}
		}
	}
	switch {
	case p.Keyring:
		fmt.Fprintf(in.stdout, "The server reads the expected secret from the OS keyring (service %q, account %q).\n", keyringService(), p.Name)
	default:
		fmt.Fprintf(in.stdout, "The server reads the expected secret from %s (mode 0600); the host's file holds only the token.\n", in.f.secretFile)
	}
	if strings.Contains(e.Command, string(filepath.Separator)+"go-build") {
		fmt.Fprintln(in.stdout, "Note: this binary was started by `go run` and will be deleted; install it (go install ./cmd/idmcp) and rerun with --force.")
	}
	return nil
}

func keyringService() string {
	if s := os.Getenv("IDMCP_KEYRING_SERVICE"); s != "" {
		return s
	}
	return keyring.Service
}

// addAndPrint creates the profile like `host add` and prints the host's
// entry, writing no host file.
func (in *installer) addAndPrint(ctx context.Context) error {
	h, err := hostconfig.ParseHost(in.f.print)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	u, err := lockHosts(ctx, in.hosts)
	if err != nil {
		return err
	}
	defer u()
	existing, _ := in.hosts.Get(in.name)
	if existing != nil && !in.f.force {
		return fmt.Errorf("host profile %q exists; use `idmcp host rotate %s` for a new secret, or --force to replace it", in.name, in.name)
	}
	p, err := in.newProfile(ctx)
	if err != nil {
		return err
	}
	if err := in.checkSecretPlacement(ctx, p.Keyring); err != nil {
		return err
	}
	token := auth.NewHostToken()
	if err := storeSecret(ctx, in.kr, p, token, in.f.secretFile, existing == nil); err != nil {
		return err
	}
	if err := in.hosts.Put(p); err != nil {
		return err
	}
	e, err := in.entry(p, token, in.f.secretFile)
	if err != nil {
		return err
	}
	snip, err := hostconfig.Snippet(h, hostconfig.Scope(in.f.scope), e)
	if err != nil {
		return err
	}
	fmt.Fprintf(in.stdout, "host profile %q created (scopes: %s; roles: %s)\n\n", p.Name, dash(strings.Join(p.Scopes, " ")), dash(strings.Join(p.Roles, " ")))
	fmt.Fprintf(in.stdout, "Token (shown once, keep it secret):\n  %s\n\n", token)
	where := "its configuration file"
	if t, err := hostconfig.Locate(h, hostconfig.Scope(in.f.scope), in.env); err == nil {
		where = t.Path
	}
	fmt.Fprintf(in.stdout, "%s entry (merge into %s, or run `idmcp host install %s %s` to have idmcp do it):\n%s", h.DisplayName(), where, in.name, h, snip)
	return nil
}

// remove removes the profile and, with --uninstall, its entry from every
// host file idmcp knows (user files, Claude Code's local scope and the
// project files in --workspace).
func (in *installer) remove(ctx context.Context) error {
	u, err := lockHosts(ctx, in.hosts)
	if err != nil {
		return err
	}
	defer u()
	p, err := in.hosts.Get(in.name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	name := hostconfig.EntryName(in.name)
	var changes []*hostconfig.Change
	for _, t := range hostconfig.KnownTargets(in.env) {
		c, err := hostconfig.Uninstall(t, name)
		if err != nil {
			if errors.Is(err, hostconfig.ErrInvalidFile) {
				fmt.Fprintf(in.stderr, "warning: %v\n", err)
				continue
			}
			return err
		}
		if c.Existed {
			changes = append(changes, c)
		}
	}
	if in.f.dryRun {
		fmt.Fprintln(in.stdout, "dry run: nothing was changed.")
		for _, c := range changes {
			fmt.Fprintf(in.stdout, "\n%s", c.Diff())
		}
		if p != nil {
			fmt.Fprintf(in.stdout, "\nhost profile %q would be removed.\n", in.name)
		}
		return nil
	}
	for _, c := range changes {
		backup, err := c.Write(time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(in.stdout, "%s entry %q removed from %s (backup: %s)\n", c.Target.Host.DisplayName(), name, c.Target.Path, backup)
	}
	if len(changes) == 0 {
		fmt.Fprintf(in.stdout, "no host file idmcp knows has an entry %q\n", name)
	}
	if p == nil {
		return fmt.Errorf("host profile %q: %w", in.name, store.ErrNotFound)
	}
	if p.Keyring {
		if err := in.kr.Delete(ctx, in.name); err != nil {
			fmt.Fprintf(in.stderr, "warning: could not remove the keyring entry (service %q, account %q): %v\n", keyringService(), in.name, err)
		}
	}
	if err := in.hosts.Remove(in.name); err != nil {
		return err
	}
	fmt.Fprintf(in.stdout, "host profile %q removed\n", in.name)
	return nil
}
