// Package doctor checks an idmcp installation and explains what is wrong,
// each finding with a one-line fix: the keyring, each profile's secret, the
// data dir's modes, the audit chain, every host file that launches idmcp
// (binary, profile, token), recent refusals per host, and the sandbox.
//
// It reads and never changes anything, and never prints a secret: a token
// is compared in constant time and reported only as matching or not. It
// does not own the checks of an HTTP issuer (`doctor --issuer`, issue 17) nor
// any printing: `idmcp doctor` renders the Report.
package doctor

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/auth/keyring"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/store/hostconfig"
)

// Status is how bad a finding is.
type Status string

// Statuses. Broken makes `idmcp doctor` exit non-zero.
const (
	OK     Status = "ok"
	Info   Status = "info"
	Warn   Status = "warn"
	Broken Status = "broken"
)

// Finding is one result: what was checked, what was found, how to fix it.
type Finding struct {
	Check   string `json:"check"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Report is every finding, in check order.
type Report struct {
	Findings []Finding `json:"findings"`
	Broken   int       `json:"broken"`
	Warnings int       `json:"warnings"`
}

func (r *Report) add(check string, st Status, fix string, format string, a ...any) {
	r.Findings = append(r.Findings, Finding{Check: check, Status: st, Message: fmt.Sprintf(format, a...), Fix: fix})
	switch st {
	case Broken:
		r.Broken++
	case Warn:
		r.Warnings++
	}
}

// SecretStore is where keyring profiles keep their secrets
// (*keyring.Keyring). Get returns keyring.ErrNotFound or
// keyring.ErrUnavailable.
type SecretStore interface {
	Get(ctx context.Context, account string) (string, error)
}

var _ SecretStore = (*keyring.Keyring)(nil)

// DefaultRefusalWindow is how far back refusals are counted.
const DefaultRefusalWindow = time.Hour

// Config configures Run.
type Config struct {
	// DataDir is the data dir to check (and the one a host entry without
	// --data-dir uses).
	DataDir string
	// Keyring holds keyring profiles' secrets; KeyringService names its
	// service in messages.
	Keyring        SecretStore
	KeyringService string
	// Hosts is where to look for host files (home, platform, workspace).
	Hosts hostconfig.Env
	// Sandbox reports what this kernel would enforce: a one-line summary and
	// whether anything is enforceable.
	Sandbox func() (summary string, available bool)
	// Now is the clock for the refusal window; time.Now when nil.
	Now func() time.Time
	// RefusalWindow is DefaultRefusalWindow when 0.
	RefusalWindow time.Duration
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		return fmt.Errorf("field \"data_dir\": must be an absolute path: %w", auth.ErrInvalidConfig)
	}
	if c.Keyring == nil {
		return fmt.Errorf("field \"keyring\": nil: %w", auth.ErrInvalidConfig)
	}
	return nil
}

// Run runs every check. It fails only when cfg is invalid; everything it
// finds is in the Report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RefusalWindow == 0 {
		cfg.RefusalWindow = DefaultRefusalWindow
	}
	if cfg.KeyringService == "" {
		cfg.KeyringService = keyring.Service
	}
	d := &doctor{cfg: cfg, r: &Report{Findings: []Finding{}}, profiles: map[string][]*auth.HostProfile{}}
	d.dataDir(ctx)
	d.keyringAndProfiles(ctx)
	d.auditChain(ctx)
	d.hostFiles(ctx)
	d.refusals(ctx)
	d.sandbox()
	return d.r, nil
}

type doctor struct {
	cfg Config
	r   *Report
	// profiles caches each data dir's profiles.
	profiles map[string][]*auth.HostProfile
	// keyringErr is the keyring probe's error (nil: reachable).
	keyringErr error
}

func (d *doctor) loadProfiles(dir string) ([]*auth.HostProfile, error) {
	if ps, ok := d.profiles[dir]; ok {
		return ps, nil
	}
	ps, err := store.NewHosts(dir).List()
	if err != nil {
		return nil, err
	}
	d.profiles[dir] = ps
	return ps, nil
}

// backend names the OS keyring of this platform.
func backend() string {
	switch runtime.GOOS {
	case "darwin":
		return "macOS Keychain"
	case "windows":
		return "Windows Credential Manager"
	}
	return "Secret Service over D-Bus"
}

func (d *doctor) dataDir(_ context.Context) {
	const check = "data dir"
	dir := d.cfg.DataDir
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		d.r.add(check, Info, "idmcp host add NAME --install HOST", "%s does not exist yet: no profile has been added", dir)
		return
	}
	if err != nil {
		d.r.add(check, Broken, "check the path and its permissions", "%s: %v", dir, err)
		return
	}
	if runtime.GOOS == "windows" {
		d.r.add(check, OK, "", "%s exists (modes are not checked on Windows: access is by ACL)", dir)
		return
	}
	bad := false
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		d.r.add(check, Broken, "chmod 700 "+shellQuote(dir), "%s is mode %04o: other users can reach host profiles and the audit log (want 0700)", dir, perm)
		bad = true
	}
	entries, _ := os.ReadDir(dir)
	var loose []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if info.Mode().Perm()&0o077 != 0 {
			loose = append(loose, fmt.Sprintf("%s (%04o)", e.Name(), info.Mode().Perm()))
		}
	}
	if len(loose) > 0 {
		d.r.add(check, Broken, "chmod 600 "+shellQuote(dir)+"/*", "files in %s readable by other users: %s (want 0600)", dir, strings.Join(loose, ", "))
		bad = true
	}
	if !bad {
		d.r.add(check, OK, "", "%s is 0700 and its files 0600", dir)
	}
}

func (d *doctor) keyringAndProfiles(ctx context.Context) {
	ps, err := d.loadProfiles(d.cfg.DataDir)
	if err != nil {
		d.r.add("profiles", Broken, "restore hosts.json from a backup, or move it aside and add the profiles again", "%v", err)
	}
	needs := 0
	for _, p := range ps {
		if p.Keyring {
			needs++
		}
	}
	_, d.keyringErr = d.cfg.Keyring.Get(ctx, "idmcp-doctor-probe")
	if errors.Is(d.keyringErr, keyring.ErrNotFound) {
		d.keyringErr = nil
	}
	switch {
	case d.keyringErr == nil:
		d.r.add("keyring", OK, "", "the OS keyring is reachable (%s, service %q)", backend(), d.cfg.KeyringService)
	case needs > 0:
		d.r.add("keyring", Broken, keyringFix(), "the OS keyring (%s) is unavailable and %d profile(s) keep their secret there: %v", backend(), needs, d.keyringErr)
	default:
		d.r.add("keyring", Info, keyringFix(), "the OS keyring (%s) is unavailable; no profile needs it: %v", backend(), d.keyringErr)
	}
	if len(ps) == 0 && err == nil {
		d.r.add("profiles", Info, "idmcp host add NAME --install HOST", "no host profiles in %s", d.cfg.DataDir)
	}
	for _, p := range ps {
		check := "profile " + p.Name
		if !p.Keyring {
			d.r.add(check, OK, "", "profile %q takes its secret from IDMCP_SHARED_SECRET or --secret-file (no keyring)", p.Name)
			continue
		}
		if d.keyringErr != nil {
			d.r.add(check, Warn, keyringFix(), "profile %q: its secret could not be checked (the keyring is unavailable)", p.Name)
			continue
		}
		switch _, err := d.cfg.Keyring.Get(ctx, p.Name); {
		case err == nil:
			d.r.add(check, OK, "", "profile %q has its secret in the keyring", p.Name)
		case errors.Is(err, keyring.ErrNotFound):
			d.r.add(check, Broken, fmt.Sprintf("idmcp host install %s HOST --force (issues a new secret and writes it into the host's file)", p.Name),
				"profile %q has no secret in the keyring (service %q, account %q): every request from its host is refused", p.Name, d.cfg.KeyringService, p.Name)
		default:
			d.r.add(check, Warn, keyringFix(), "profile %q: %v", p.Name, err)
		}
	}
}

func keyringFix() string {
	if runtime.GOOS == "linux" {
		return "start a Secret Service in your session (e.g. gnome-keyring-daemon), or use profiles made with --no-keyring --secret-file FILE"
	}
	return "unlock the OS keyring"
}

func (d *doctor) auditChain(ctx context.Context) {
	const check = "audit log"
	path := filepath.Join(d.cfg.DataDir, store.AuditDBName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		d.r.add(check, Info, "", "no audit log yet (%s is created when a server first starts)", path)
		return
	}
	r, err := audit.OpenReader(ctx, path)
	if err != nil {
		d.r.add(check, Broken, "check the file's permissions; if it is damaged, move it aside (keep it as evidence) and restart the servers", "open %s: %v", path, err)
		return
	}
	defer r.Close()
	res, err := r.Verify(ctx)
	switch {
	case errors.Is(err, audit.ErrTampered):
		d.r.add(check, Broken, "keep "+path+" as evidence (idmcp audit export), find who changed it, then move it aside to start a new chain",
			"the hash chain is broken at row %d (%s): %s", res.BadID, res.Kind, res.Problem)
	case err != nil:
		d.r.add(check, Broken, "run idmcp audit verify for details", "verify %s: %v", path, err)
	default:
		d.r.add(check, OK, "", "the hash chain verifies: %d rows, head %d", res.Rows, res.HeadID)
	}
}

// hostFiles checks every idmcp entry in every host file idmcp knows.
func (d *doctor) hostFiles(ctx context.Context) {
	seen := 0
	for _, t := range hostconfig.KnownTargets(d.cfg.Hosts) {
		found, err := hostconfig.Inspect(t)
		if err != nil {
			if errors.Is(err, hostconfig.ErrInvalidFile) {
				d.r.add("host "+string(t.Host), Warn, "fix the file's syntax at that line (the host itself cannot read it either)", "%v", err)
			}
			continue
		}
		for _, f := range found {
			seen++
			d.hostEntry(ctx, f)
		}
	}
	if seen == 0 {
		d.r.add("hosts", Info, "idmcp host add NAME --install HOST", "no host file idmcp knows launches idmcp")
	}
}

func (d *doctor) hostEntry(ctx context.Context, f hostconfig.Found) {
	check := fmt.Sprintf("host %s (%s)", f.Target.Host, f.Target.Scope)
	where := fmt.Sprintf("%s entry %q in %s", f.Target.Host.DisplayName(), f.Name, f.Target.Path)
	profile := f.Profile()
	reinstall := fmt.Sprintf("idmcp host install %s %s --force", profile, f.Target.Host)
	if f.Target.Scope != hostconfig.User {
		reinstall += " --scope " + string(f.Target.Scope)
	}
	if sf := f.Flag("secret-file"); sf != "" {
		reinstall += " --secret-file " + shellQuote(sf)
	}
	if dd := f.Flag("data-dir"); dd != "" {
		reinstall += " --data-dir " + shellQuote(dd)
	}
	problems := 0
	broken := func(fix, format string, a ...any) {
		problems++
		d.r.add(check, Broken, fix, "%s: "+format, append([]any{where}, a...)...)
	}
	if fi, err := os.Stat(f.Command); err != nil || fi.IsDir() || (runtime.GOOS != "windows" && fi.Mode().Perm()&0o111 == 0) {
		broken(reinstall+" (run it with the idmcp you want the host to start)", "command %s does not exist or is not executable (binary moved or deleted?)", f.Command)
	}
	dir := d.cfg.DataDir
	if dd := f.Flag("data-dir"); dd != "" {
		dir = dd
	}
	ps, err := d.loadProfiles(dir)
	if err != nil {
		broken("check "+filepath.Join(dir, store.HostsName), "cannot read the profiles: %v", err)
		return
	}
	var p *auth.HostProfile
	for _, q := range ps {
		if q.Name == profile {
			p = q
		}
	}
	if p == nil {
		broken(fmt.Sprintf("idmcp host add %s --install %s --force", profile, f.Target.Host), "profile %q does not exist in %s", profile, dir)
		return
	}
	if f.SharedSecret {
		problems++
		d.r.add(check, Warn, reinstall, "%s: the file also sets IDMCP_SHARED_SECRET, so it holds the profile's secret as well as the token; reinstall with --secret-file", where)
	}
	switch {
	case f.TokenRef != "":
		d.r.add(check, Info, "", "%s: the token comes from %s at launch; not checked", where, f.TokenRef)
	case f.Token == "":
		broken(reinstall, "no %s in the entry's env: the host presents no credential", hostconfig.TokenEnv)
	default:
		secret, why := d.expectedSecret(ctx, p, f)
		sf := f.Flag("secret-file")
		switch {
		case why != "" && !p.Keyring && sf != "" && secret == "":
			// The server started from this entry has no secret: it refuses
			// every request.
			broken(reinstall, "the token could not be checked: %s; the server it starts refuses every request", why)
		case why != "":
			problems++
			d.r.add(check, Warn, "", "%s: the token could not be checked: %s", where, why)
		case !sameSecret(secret, f.Token):
			broken(reinstall, "the token does not match profile %q's secret: the host will be refused", profile)
		}
	}
	if problems == 0 {
		d.r.add(check, OK, "", "%s: starts %s for profile %q; the token matches", where, f.Command, profile)
	}
}

// expectedSecret is what the server launched from f would expect, or why it
// cannot be known.
func (d *doctor) expectedSecret(ctx context.Context, p *auth.HostProfile, f hostconfig.Found) (string, string) {
	if p.Keyring {
		if d.keyringErr != nil {
			return "", "the keyring is unavailable"
		}
		s, err := d.cfg.Keyring.Get(ctx, p.Name)
		if err != nil {
			return "", fmt.Sprintf("profile %q has no secret in the keyring", p.Name)
		}
		return s, ""
	}
	sf := f.Flag("secret-file")
	if sf == "" {
		return "", "the profile has no keyring and the entry passes no --secret-file (the secret comes from IDMCP_SHARED_SECRET)"
	}
	b, err := os.ReadFile(sf)
	if err != nil {
		return "", fmt.Sprintf("secret file: %v", err)
	}
	return strings.TrimSpace(string(b)), ""
}

// sameSecret compares in constant time over digests, like the server.
func sameSecret(a, b string) bool {
	x, y := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

// refusals counts the audit log's refusals in the window, per host and
// reason.
func (d *doctor) refusals(ctx context.Context) {
	const check = "refusals"
	path := filepath.Join(d.cfg.DataDir, store.AuditDBName)
	if _, err := os.Stat(path); err != nil {
		return
	}
	r, err := audit.OpenReader(ctx, path)
	if err != nil {
		return // reported by the audit check
	}
	defer r.Close()
	rows, err := r.Query(ctx, audit.Filter{Since: d.cfg.Now().Add(-d.cfg.RefusalWindow), Decision: "deny"})
	if err != nil {
		d.r.add(check, Warn, "run idmcp audit query --decision deny", "read refusals: %v", err)
		return
	}
	type key struct{ who, reason string }
	counts := map[key]int{}
	for _, row := range rows {
		who, _, _ := strings.Cut(row.ClientName, "/")
		if who == "" {
			who = "a host of profile " + row.ClientID
		}
		counts[key{who, strings.TrimPrefix(row.Reason, "authentication failed: ")}]++
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if counts[keys[i]] != counts[keys[j]] {
			return counts[keys[i]] > counts[keys[j]]
		}
		return keys[i].who+keys[i].reason < keys[j].who+keys[j].reason
	})
	window := d.cfg.RefusalWindow.String()
	if d.cfg.RefusalWindow == time.Hour {
		window = "hour"
	}
	if len(keys) == 0 {
		d.r.add(check, OK, "", "no refusals in the last %s", window)
	}
	for _, k := range keys {
		times := "times"
		if counts[k] == 1 {
			times = "time"
		}
		d.r.add(check, Warn, refusalFix(k.reason), "%s was refused %d %s in the last %s: %s", k.who, counts[k], times, window, k.reason)
	}
}

func refusalFix(reason string) string {
	switch {
	case strings.Contains(reason, "does not match"), strings.Contains(reason, "no credential"):
		return "reinstall the host's entry: idmcp host install PROFILE HOST --force"
	case strings.Contains(reason, "does not exist"):
		return "idmcp host add PROFILE --install HOST"
	case strings.Contains(reason, "no secret"):
		return "idmcp host rotate PROFILE, then reinstall the host's entry"
	}
	return "see idmcp audit query --decision deny --since 1h"
}

func (d *doctor) sandbox() {
	if d.cfg.Sandbox == nil {
		return
	}
	summary, ok := d.cfg.Sandbox()
	switch {
	case ok:
		d.r.add("sandbox", OK, "", "%s", summary)
	case runtime.GOOS == "linux":
		d.r.add("sandbox", Warn, "use a kernel with Landlock (5.13+) and seccomp enabled", "%s", summary)
	default:
		d.r.add("sandbox", Info, "", "%s", summary)
	}
}

// shellQuote quotes s for a fix line a user pastes into a shell.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == ':' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
