package tools_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/tools"
)

const secret = "TOP SECRET outside the workspace"

// fixture is a workspace with a sibling directory it must never reach.
type fixture struct {
	ws      *tools.Workspace
	specs   []tools.Spec
	dir     string // the workspace
	outside string // its sibling
}

// newFixture builds:
//
//	outside/secret.txt
//	ws/hello.txt, ws/sub/a.go, ws/sub/deep/b.txt, ws/.git/config, ws/bin.dat
//	ws/link_in -> hello.txt, ws/link_out -> ../outside/secret.txt,
//	ws/link_outdir -> ../outside, ws/sub/link_up -> ../.. (symlinks, where supported)
func newFixture(tb testing.TB, cfg tools.WorkspaceConfig) *fixture {
	tb.Helper()
	base := tb.TempDir()
	fx := &fixture{dir: filepath.Join(base, "ws"), outside: filepath.Join(base, "outside")}
	files := map[string]string{
		"outside/secret.txt": secret,
		"ws/hello.txt":       "hello\nworld\nHello again\n",
		"ws/sub/a.go":        "package a\n\n// needle in a go file\n",
		"ws/sub/deep/b.txt":  "deep needle\nNEEDLE upper\n",
		"ws/.git/config":     "needle in git\n",
		"ws/bin.dat":         "needle\x00\xff\xfebinary",
	}
	for name, content := range files {
		p := filepath.Join(base, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"ws/link_in":      "hello.txt",
		"ws/link_out":     "../outside/secret.txt",
		"ws/link_outdir":  "../outside",
		"ws/sub/link_up":  "../..",
		"ws/link_abs":     filepath.Join(base, "outside", "secret.txt"),
		"ws/link_dangler": "nowhere",
	} {
		_ = os.Symlink(target, filepath.Join(base, filepath.FromSlash(link))) // not on every Windows setup
	}
	cfg.Dir = fx.dir
	ws, err := tools.OpenWorkspace(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ws.Close() })
	fx.ws, fx.specs = ws, tools.Files(ws)
	return fx
}

func (fx *fixture) hasSymlinks() bool {
	_, err := os.Lstat(filepath.Join(fx.dir, "link_out"))
	return err == nil
}

// call runs tool name with args and returns its structured result.
func (fx *fixture) call(tb testing.TB, name string, args any) (map[string]any, error) {
	tb.Helper()
	i := slices.IndexFunc(fx.specs, func(s tools.Spec) bool { return s.Name == name })
	if i < 0 {
		tb.Fatalf("no tool %q", name)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := fx.specs[i].Handler(context.Background(), &auth.Principal{Subject: "alice"}, raw)
	if err != nil {
		return nil, err
	}
	// Round-trip through JSON, as the client sees it.
	var out map[string]any
	if err := json.Unmarshal([]byte(res.Text), &out); err != nil {
		tb.Fatalf("%s result is not JSON: %v", name, err)
	}
	return out, nil
}

// outsideUnchanged fails if anything outside the workspace was created or
// changed.
func (fx *fixture) outsideUnchanged(tb testing.TB) {
	tb.Helper()
	entries, err := os.ReadDir(fx.outside)
	if err != nil {
		tb.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "secret.txt" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		tb.Fatalf("outside dir now holds %q", names)
	}
	b, err := os.ReadFile(filepath.Join(fx.outside, "secret.txt"))
	if err != nil || string(b) != secret {
		tb.Fatalf("outside file changed: %q, %v", b, err)
	}
	parent, err := os.ReadDir(filepath.Dir(fx.outside))
	if err != nil {
		tb.Fatal(err)
	}
	if len(parent) != 2 {
		tb.Fatalf("the workspace's parent now holds %d entries, want 2", len(parent))
	}
}

func TestFiles_PathConfinement(t *testing.T) {
	fx := newFixture(t, tools.WorkspaceConfig{})
	for _, tc := range []struct {
		name    string
		path    string
		symlink bool   // needs symlinks
		err     string // "" means allowed
		content string // when allowed
	}{
		{name: "Plain", path: "hello.txt", content: "hello\n"},
		{name: "DotSlash", path: "./hello.txt", content: "hello\n"},
		{name: "Nested", path: "sub/a.go", content: "package a"},
		{name: "DotDot", path: "../outside/secret.txt", err: "leaves the workspace"},
		{name: "DotDotInside", path: "sub/../hello.txt", err: "leaves the workspace"},
		{name: "DotDotDeep", path: "sub/deep/../../../outside/secret.txt", err: "leaves the workspace"},
		{name: "Absolute", path: "/etc/passwd", err: "is absolute"},
		{name: "AbsoluteToWorkspace", path: filepath.ToSlash(filepath.Join(fx.dir, "hello.txt")), err: "is absolute"},
		{name: "Backslash", path: `..\outside\secret.txt`, err: "contains '\\'"},
		{name: "NUL", path: "hello.txt\x00.png", err: "NUL byte"},
		{name: "TooLong", path: strings.Repeat("a/", tools.MaxPathLen), err: "the limit is"},
		{name: "Missing", path: "nope.txt", err: "no such file"},
		{name: "Directory", path: "sub", err: "is a directory"},
		{name: "SymlinkInside", path: "link_in", symlink: true, content: "hello\n"},
		{name: "SymlinkOutside", path: "link_out", symlink: true, err: "outside the workspace"},
		{name: "SymlinkDirOutside", path: "link_outdir/secret.txt", symlink: true, err: "outside the workspace"},
		{name: "SymlinkUpAndOut", path: "sub/link_up/outside/secret.txt", symlink: true, err: "outside the workspace"},
		{name: "SymlinkAbsolute", path: "link_abs", symlink: true, err: "outside the workspace"},
		{name: "SymlinkDangling", path: "link_dangler", symlink: true, err: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.symlink && !fx.hasSymlinks() {
				t.Skip("symlinks unavailable")
			}
			out, err := fx.call(t, "files_read", map[string]any{"path": tc.path})
			if tc.err != "" {
				if err == nil || !errors.Is(err, tools.ErrInput) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("files_read(%q) err=%v, out=%v; want an input error containing %q", tc.path, err, out, tc.err)
				}
				if strings.Contains(err.Error(), fx.dir) && !strings.Contains(tc.path, fx.dir) {
					t.Fatalf("error %q reveals the workspace's location", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("files_read(%q): %v", tc.path, err)
			}
			if got := out["content"].(string); !strings.HasPrefix(got, tc.content) {
				t.Fatalf("content=%q, want prefix %q", got, tc.content)
			}
		})
	}
	fx.outsideUnchanged(t)
}

func TestFiles_WriteConfinement(t *testing.T) {
	fx := newFixture(t, tools.WorkspaceConfig{})
	for _, tc := range []struct {
		name    string
		path    string
		symlink bool
		err     string
	}{
		{name: "DotDot", path: "../outside/new.txt", err: "leaves the workspace"},
		{name: "Absolute", path: filepath.ToSlash(filepath.Join(fx.outside, "new.txt")), err: "is absolute"},
		{name: "WorkspaceItself", path: ".", err: "the workspace itself"},
		{name: "SymlinkFile", path: "link_out", symlink: true, err: "symbolic link"},
		{name: "SymlinkDir", path: "link_outdir/new.txt", symlink: true, err: "outside the workspace"},
		{name: "SymlinkDirCreateDirs", path: "link_outdir/x/y/new.txt", symlink: true, err: "outside the workspace"},
		{name: "SymlinkUp", path: "sub/link_up/outside/new.txt", symlink: true, err: "outside the workspace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.symlink && !fx.hasSymlinks() {
				t.Skip("symlinks unavailable")
			}
			_, err := fx.call(t, "files_write", map[string]any{"path": tc.path, "content": "pwned", "overwrite": true, "create_dirs": true})
			if err == nil || !errors.Is(err, tools.ErrInput) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("files_write(%q) err=%v; want an input error containing %q", tc.path, err, tc.err)
			}
			fx.outsideUnchanged(t)
		})
	}
}

func TestFiles_Read(t *testing.T) {
	fx := newFixture(t, tools.WorkspaceConfig{MaxReadBytes: 16})
	if err := os.WriteFile(filepath.Join(fx.dir, "big.txt"), []byte("0123456789abcdefghijklmnopqrstuvwxyz"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("OverLimit", func(t *testing.T) {
		_, err := fx.call(t, "files_read", map[string]any{"path": "big.txt"})
		if err == nil || !strings.Contains(err.Error(), "is 36 bytes from offset 0, more than the read limit of 16 bytes; read it in parts") {
			t.Fatalf("err=%v, want the read limit error", err)
		}
	})
	t.Run("LengthOverLimit", func(t *testing.T) {
		_, err := fx.call(t, "files_read", map[string]any{"path": "big.txt", "length": 17})
		if err == nil || !strings.Contains(err.Error(), "length 17 exceeds the read limit of 16 bytes") {
			t.Fatalf("err=%v, want the length limit error", err)
		}
	})
	t.Run("Range", func(t *testing.T) {
		out, err := fx.call(t, "files_read", map[string]any{"path": "big.txt", "offset": 10, "length": 6})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := out["content"], "abcdef"; got != want {
			t.Fatalf("content=%q, want %q", got, want)
		}
		if got, want := out["eof"], false; got != want {
			t.Fatalf("eof=%v, want %v", got, want)
		}
	})
	t.Run("TailFitsLimit", func(t *testing.T) {
		out, err := fx.call(t, "files_read", map[string]any{"path": "big.txt", "offset": 30})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := out["content"], "uvwxyz"; got != want {
			t.Fatalf("content=%q, want %q", got, want)
		}
		if got, want := out["eof"], true; got != want {
			t.Fatalf("eof=%v, want %v", got, want)
		}
	})
	t.Run("OffsetPastEnd", func(t *testing.T) {
		_, err := fx.call(t, "files_read", map[string]any{"path": "big.txt", "offset": 99})
		if err == nil || !strings.Contains(err.Error(), "past the end") {
			t.Fatalf("err=%v, want past the end", err)
		}
	})
	t.Run("Binary", func(t *testing.T) {
		out, err := fx.call(t, "files_read", map[string]any{"path": "bin.dat"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.StdEncoding.DecodeString(out["content"].(string))
		if out["encoding"] != "base64" || err != nil || string(b) != "needle\x00\xff\xfebinary" {
			t.Fatalf("encoding=%v content=%q (%v), want the bytes in base64", out["encoding"], b, err)
		}
	})
	t.Run("UnknownArgument", func(t *testing.T) {
		_, err := fx.call(t, "files_read", map[string]any{"path": "big.txt", "lenght": 1})
		if !errors.Is(err, tools.ErrInput) {
			t.Fatalf("err=%v, want an input error for a misspelt argument", err)
		}
	})
}

func TestFiles_Write(t *testing.T) {
	fx := newFixture(t, tools.WorkspaceConfig{MaxWriteBytes: 8})
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(fx.dir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	out, err := fx.call(t, "files_write", map[string]any{"path": "new.txt", "content": "one"})
	if err != nil || out["created"] != true || read("new.txt") != "one" {
		t.Fatalf("create: out=%v err=%v content=%q", out, err, read("new.txt"))
	}
	if _, err := fx.call(t, "files_write", map[string]any{"path": "new.txt", "content": "two"}); err == nil || !strings.Contains(err.Error(), "exists; set overwrite") {
		t.Fatalf("second write without overwrite: err=%v, want refusal", err)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(filepath.Join(fx.dir, "new.txt"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err = fx.call(t, "files_write", map[string]any{"path": "new.txt", "content": "two", "overwrite": true})
	if err != nil || out["created"] != false || read("new.txt") != "two" {
		t.Fatalf("overwrite: out=%v err=%v content=%q", out, err, read("new.txt"))
	}
	if fi, err := os.Stat(filepath.Join(fx.dir, "new.txt")); runtime.GOOS != "windows" && (err != nil || fi.Mode().Perm() != 0o600) {
		t.Fatalf("overwrite changed the mode to %v (%v), want 0600 kept", fi.Mode(), err)
	}
	if _, err := fx.call(t, "files_write", map[string]any{"path": "a/b/c.txt", "content": "x"}); err == nil || !strings.Contains(err.Error(), "set create_dirs") {
		t.Fatalf("missing parent: err=%v, want a hint to set create_dirs", err)
	}
	if _, err := fx.call(t, "files_write", map[string]any{"path": "a/b/c.txt", "content": "x", "create_dirs": true}); err != nil || read("a/b/c.txt") != "x" {
		t.Fatalf("create_dirs: err=%v", err)
	}
	if _, err := fx.call(t, "files_write", map[string]any{"path": "big.txt", "content": "123456789"}); err == nil || !strings.Contains(err.Error(), "content is 9 bytes; the write limit is 8") {
		t.Fatalf("over the limit: err=%v, want the write limit error", err)
	}
	if _, err := fx.call(t, "files_write", map[string]any{"path": "sub", "content": "x", "overwrite": true}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("onto a directory: err=%v", err)
	}
	entries, _ := os.ReadDir(fx.dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestFiles_List(t *testing.T) {
	fx := newFixture(t, tools.WorkspaceConfig{})
	names := func(out map[string]any) []string {
		var n []string
		for _, e := range out["entries"].([]any) {
			n = append(n, e.(map[string]any)["path"].(string)+":"+e.(map[string]any)["type"].(string))
		}
		slices.Sort(n)
		return n
	}
	out, err := fx.call(t, "files_list", map[string]any{"path": "sub"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"sub/a.go:file", "sub/deep:dir"}
	if fx.hasSymlinks() {
		want = append(want, "sub/link_up:symlink")
	}
	if got := names(out); !slices.Equal(got, want) {
		t.Fatalf("entries=%q, want %q", got, want)
	}
	out, err = fx.call(t, "files_list", map[string]any{"path": "sub", "recursive": true})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"sub/a.go:file", "sub/deep/b.txt:file", "sub/deep:dir"}
	if fx.hasSymlinks() {
		want = append(want, "sub/link_up:symlink") // listed, not followed
	}
	slices.Sort(want)
	if got := names(out); !slices.Equal(got, want) {
		t.Fatalf("recursive entries=%q, want %q", got, want)
	}
	if _, err := fx.call(t, "files_list", map[string]any{"path": "hello.txt"}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("listing a file: err=%v", err)
	}
	small := newFixture(t, tools.WorkspaceConfig{MaxListEntries: 2})
	for _, recursive := range []bool{false, true} {
		out, err := small.call(t, "files_list", map[string]any{"recursive": recursive})
		if err != nil {
			t.Fatal(err)
		}
		if out["count"] != 2.0 || out["truncated"] != true || !strings.Contains(out["note"].(string), "stopped at 2 entries") {
			t.Fatalf("recursive=%v: out=%v, want 2 entries and a truncation note", recursive, out)
		}
	}
}

func TestFiles_Search(t *testing.T) {
	fx := newFixture(t, tools.WorkspaceConfig{})
	matches := func(out map[string]any) []string {
		var m []string
		for _, e := range out["matches"].([]any) {
			e := e.(map[string]any)
			m = append(m, e["path"].(string)+":"+jsonNum(e["line"]))
		}
		slices.Sort(m)
		return m
	}
	for _, tc := range []struct {
		name string
		args map[string]any
		want []string
	}{
		{"Literal", map[string]any{"query": "needle"}, []string{"sub/a.go:3", "sub/deep/b.txt:1"}},
		{"IgnoreCase", map[string]any{"query": "needle", "ignore_case": true}, []string{"sub/a.go:3", "sub/deep/b.txt:1", "sub/deep/b.txt:2"}},
		{"Glob", map[string]any{"query": "needle", "glob": "*.go"}, []string{"sub/a.go:3"}},
		{"Path", map[string]any{"query": "needle", "path": "sub/deep"}, []string{"sub/deep/b.txt:1"}},
		{"SingleFile", map[string]any{"query": "Hello", "path": "hello.txt"}, []string{"hello.txt:3"}},
		{"NoMatch", map[string]any{"query": "absent"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := fx.call(t, "files_search", tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if got := matches(out); !slices.Equal(got, tc.want) {
				t.Fatalf("matches=%q, want %q (skipping .git, binary files and symlinks)", got, tc.want)
			}
			if out["truncated"] != false {
				t.Fatalf("truncated=%v", out["truncated"])
			}
		})
	}
	for _, tc := range []struct {
		name string
		cfg  tools.WorkspaceConfig
		by   string
		note string
	}{
		{"MaxMatches", tools.WorkspaceConfig{MaxSearchMatches: 1}, "max_matches", "stopped at 1 matches"},
		{"MaxFiles", tools.WorkspaceConfig{MaxSearchFiles: 1}, "max_files", "stopped after 1 files"},
		{"MaxBytes", tools.WorkspaceConfig{MaxSearchBytes: 10}, "max_bytes", "stopped after reading 10 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := newFixture(t, tc.cfg).call(t, "files_search", map[string]any{"query": "e"})
			if err != nil {
				t.Fatal(err)
			}
			if out["truncated"] != true || out["stopped_by"] != tc.by || !strings.Contains(out["note"].(string), tc.note) {
				t.Fatalf("out=%v, want truncated by %s with note %q", out, tc.by, tc.note)
			}
		})
	}
	for _, args := range []map[string]any{{"query": ""}, {"query": "a\nb"}, {"query": "x", "glob": "["}, {"query": "x", "path": "../"}} {
		if _, err := fx.call(t, "files_search", args); !errors.Is(err, tools.ErrInput) {
			t.Fatalf("files_search(%v) err=%v, want an input error", args, err)
		}
	}
}

func jsonNum(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestFiles_NoWorkspace(t *testing.T) {
	for _, s := range tools.Files(nil) {
		if _, err := s.Handler(context.Background(), &auth.Principal{}, json.RawMessage(`{}`)); err == nil || !strings.Contains(err.Error(), "no workspace") {
			t.Fatalf("%s without a workspace: err=%v", s.Name, err)
		}
	}
}

func TestOpenWorkspace_Errors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []tools.WorkspaceConfig{{}, {Dir: f}, {Dir: filepath.Join(f, "missing")}, {Dir: t.TempDir(), MaxReadBytes: -1}} {
		if ws, err := tools.OpenWorkspace(cfg); err == nil {
			ws.Close()
			t.Fatalf("OpenWorkspace(%+v) succeeded", cfg)
		}
	}
}

// FuzzWorkspacePath throws arbitrary paths at files_read, files_list and
// files_write (with create_dirs): nothing outside the workspace may be read,
// created or changed, whatever the path.
func FuzzWorkspacePath(f *testing.F) {
	for _, p := range []string{
		"hello.txt", "../outside/secret.txt", "..", "../", "./../outside", "sub/../../outside/secret.txt",
		"/etc/passwd", "//etc/passwd", `\\?\C:\Windows`, `C:\Windows\win.ini`, "C:/Windows", `..\outside\secret.txt`,
		"hello.txt\x00", "\x00", "link_out", "link_outdir/secret.txt", "link_outdir/../outside/secret.txt",
		"sub/link_up/outside/secret.txt", "link_abs", "link_in", "sub/./deep/../../..", ".../outside",
		"sub//deep///b.txt", "NUL", "CON", "COM1.txt", "a/b/c/d/e", "%2e%2e/outside", "\u2024\u2024/outside",
	} {
		f.Add(p)
	}
	fx := newFixture(f, tools.WorkspaceConfig{MaxListEntries: 50})
	f.Fuzz(func(t *testing.T, p string) {
		if out, err := fx.call(t, "files_read", map[string]any{"path": p}); err == nil {
			if c, _ := out["content"].(string); strings.Contains(c, "TOP SECRET") {
				t.Fatalf("files_read(%q) returned the outside file", p)
			}
		} else if !errors.Is(err, tools.ErrInput) {
			t.Fatalf("files_read(%q): internal error %v", p, err)
		}
		if out, err := fx.call(t, "files_list", map[string]any{"path": p, "recursive": true}); err == nil {
			// Everything listed is inside the workspace, under the name shown.
			for _, e := range out["entries"].([]any) {
				name := e.(map[string]any)["path"].(string)
				if !filepath.IsLocal(filepath.FromSlash(name)) {
					t.Fatalf("files_list(%q) listed %q", p, name)
				}
				if _, err := os.Lstat(filepath.Join(fx.dir, filepath.FromSlash(name))); err != nil {
					t.Fatalf("files_list(%q) listed %q, which is not in the workspace: %v", p, name, err)
				}
			}
		}
		_, _ = fx.call(t, "files_write", map[string]any{"path": p, "content": "fuzz", "overwrite": true, "create_dirs": true})
		fx.outsideUnchanged(t)
	})
}
