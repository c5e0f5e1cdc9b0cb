package hostconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/aymanbagabas/go-udiff"
)

// Options tunes Install.
type Options struct {
	// Force replaces an existing entry of the same name.
	Force bool
}

// Change is a computed edit of one host file; nothing is written until
// Write.
type Change struct {
	Target Target
	// Old is the file as read (nil when it does not exist); New is the file
	// to write.
	Old, New []byte
	// Existed: the file had an entry of that name (replaced, or removed).
	Existed bool
	// HoldsToken: the new file holds the token itself, so Write leaves it 0600.
	HoldsToken bool
	// EnvVar is the environment variable the host expands for the token
	// (project files of Claude Code, Cursor, Gemini CLI).
	EnvVar string
	// Input is the VS Code input id the host prompts for.
	Input string
	// realPath is the file written (Target.Path with symlinks resolved).
	realPath string
	mode     fs.FileMode
}

// Unchanged reports whether the edit changes nothing.
func (c *Change) Unchanged() bool { return c.Old != nil && bytes.Equal(c.Old, c.New) }

// read returns the file's content (nil when missing), the path to write
// (symlinks resolved, so a dotfile manager's link keeps pointing at the
// edited file) and its mode.
func read(path string) ([]byte, string, fs.FileMode, error) {
	real := path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		real = r
	}
	b, err := os.ReadFile(real)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, real, 0, nil
	}
	if err != nil {
		return nil, real, 0, fmt.Errorf("read %s: %w", path, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, real, 0, err
	}
	return b, real, fi.Mode().Perm(), nil
}

// Install computes the edit that puts e into t's file. It refuses a file
// that does not parse (ErrInvalidFile) and an existing entry without
// o.Force (ErrExists); it writes nothing.
func Install(t Target, e Entry, o Options) (*Change, error) {
	if e.Name == "" || e.Command == "" || e.Profile == "" {
		return nil, errors.New("hostconfig: entry needs a name, a command and a profile")
	}
	old, real, mode, err := read(t.Path)
	if err != nil {
		return nil, err
	}
	pl := placement(t, e)
	c := &Change{Target: t, Old: old, HoldsToken: pl.literal, EnvVar: pl.envVar, Input: pl.input, realPath: real, mode: mode}
	switch defs()[t.Host].format {
	case fmtCodex:
		c.New, c.Existed, err = editTOML(t, old, e.Name, codexBlock(e, pl.value), o.Force)
	default:
		var input orderedObject
		if pl.input != "" {
			input = orderedObject{
				{"type", "promptString"}, {"id", pl.input},
				{"description", fmt.Sprintf("idmcp token for host profile %s", e.Profile)}, {"password", true},
			}
		}
		c.New, c.Existed, err = editJSON(t, old, e.Name, serverObject(t.Host, e, pl.value), o.Force, input)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Uninstall computes the edit that removes the entry name from t's file.
// A missing file or entry gives an unchanged Change with Existed false.
func Uninstall(t Target, name string) (*Change, error) {
	old, real, mode, err := read(t.Path)
	if err != nil {
		return nil, err
	}
	c := &Change{Target: t, Old: old, New: old, realPath: real, mode: mode}
	if old == nil {
		return c, nil
	}
	switch defs()[t.Host].format {
	case fmtCodex:
		c.New, c.Existed, err = editTOML(t, old, name, "", false)
	default:
		c.New, c.Existed, err = editJSON(t, old, name, nil, false, nil)
	}
	if err != nil {
		return nil, err
	}
	if !c.Existed {
		c.New = old
	}
	// The token left with the entry; the file keeps the mode it had.
	return c, nil
}

// secretish masks values that look like secrets in a diff: idmcp tokens,
// and the values of keys named like TOKEN, SECRET, KEY or PASSWORD (other
// servers' credentials in the same file).
var (
	tokenRE   = regexp.MustCompile(`idmcp_[A-Za-z0-9_-]{20,}`)
	secretKey = regexp.MustCompile(`(?i)((?:"[A-Z0-9_]*(?:TOKEN|SECRET|KEY|PASSWORD|PASSWD|AUTH)[A-Z0-9_]*"\s*:|\b[A-Z0-9_]*(?:TOKEN|SECRET|KEY|PASSWORD|PASSWD|AUTH)[A-Z0-9_]*\s*=)\s*)"[^"$]+"`)
)

// Redact masks secrets in text shown to the user (diffs, entries).
func Redact(s string) string {
	s = secretKey.ReplaceAllString(s, `$1"…redacted…"`)
	return tokenRE.ReplaceAllString(s, "idmcp_…redacted…")
}

// Diff returns the change as a unified diff, with secrets masked.
func (c *Change) Diff() string {
	oldLabel := c.Target.Path
	if c.Old == nil {
		oldLabel = "/dev/null"
	}
	d := udiff.Unified(oldLabel, c.Target.Path, string(c.Old), string(c.New))
	return Redact(d)
}

// Write writes the new file: the previous one is first copied beside it
// (PATH.idmcp-backup-TIMESTAMP, same mode) and the new one replaces it
// atomically. A file that holds a token is left 0600; otherwise the file
// keeps its mode (0644 when new). It returns the backup's path ("" when there
// was no file).
func (c *Change) Write(now time.Time) (backup string, err error) {
	if c.Unchanged() {
		return "", nil
	}
	dir := filepath.Dir(c.realPath)
	dirMode := fs.FileMode(0o700)
	if c.Target.Scope == Project {
		dirMode = 0o755
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	mode := c.mode
	if c.Old == nil {
		mode = 0o644
	}
	if c.HoldsToken {
		mode = 0o600
	}
	if c.Old != nil {
		backup = fmt.Sprintf("%s.idmcp-backup-%s", c.realPath, now.UTC().Format("20060102T150405Z"))
		for n := 2; ; n++ { // two edits in one second keep both backups
			if _, err := os.Lstat(backup); errors.Is(err, fs.ErrNotExist) {
				break
			}
			backup = fmt.Sprintf("%s.idmcp-backup-%s-%d", c.realPath, now.UTC().Format("20060102T150405Z"), n)
		}
		if err := writeFile(backup, c.Old, c.mode, true); err != nil {
			return "", fmt.Errorf("back up %s: %w", c.Target.Path, err)
		}
	}
	if err := writeFile(c.realPath, c.New, mode, false); err != nil {
		return backup, fmt.Errorf("write %s: %w", c.Target.Path, err)
	}
	return backup, nil
}

// writeFile writes b to path through a temporary file in the same directory
// and a rename, so a crash leaves the old or the new file, never half of one.
func writeFile(path string, b []byte, mode fs.FileMode, exclusive bool) error {
	if exclusive {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s exists", path)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Snippet returns the entry as the host's file would hold it, alone, for
// `--print HOST` (a whole document a user can merge by hand).
func Snippet(h Host, scope Scope, e Entry) (string, error) {
	t := Target{Host: h, Scope: scope, Path: "(print)", Workspace: "/your/project"}
	if scope == Local {
		t.Scope = User
	}
	pl := placement(t, e)
	switch defs()[h].format {
	case fmtCodex:
		return codexBlock(e, pl.value), nil
	case fmtVSCode:
		doc := orderedObject{
			{"servers", orderedObject{{e.Name, serverObject(h, e, pl.value)}}},
			{"inputs", []any{orderedObject{{"type", "promptString"}, {"id", pl.input}, {"description", "idmcp token for host profile " + e.Profile}, {"password", true}}}},
		}
		b, err := json.MarshalIndent(doc, "", "  ")
		return string(b) + "\n", err
	}
	key := "mcpServers"
	if defs()[h].format == fmtZed {
		key = "context_servers"
	}
	b, err := json.MarshalIndent(orderedObject{{key, orderedObject{{e.Name, serverObject(h, e, pl.value)}}}}, "", "  ")
	return string(b) + "\n", err
}

// Hint says, for the user, how the token reaches the host after Write.
func (c *Change) Hint() string {
	switch {
	case c.Input != "":
		return fmt.Sprintf("VS Code prompts for input %q once (paste the token above) and keeps it in its secret storage; %s does not hold the token", c.Input, c.Target.Path)
	case c.EnvVar != "":
		h := fmt.Sprintf("%s references ${%s} and never holds the token: export %s=<the token above> in the environment that starts %s", c.Target.Path, c.EnvVar, c.EnvVar, c.Target.Host.DisplayName())
		if c.Target.Host == ClaudeCode {
			h += "; Claude Code asks you to approve a project's servers the first time it starts there: approve this one"
		}
		return h
	case c.HoldsToken:
		return fmt.Sprintf("%s holds the token: it is left mode 0600; do not commit or share it", c.Target.Path)
	}
	return ""
}
