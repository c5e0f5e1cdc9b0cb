package hostconfig_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/store/hostconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// testToken is a fake token of the real shape, so redaction applies to it.
const testToken = "idmcp_TESTtokenTESTtokenTESTtokenTESTtoken123"

func testEntry() hostconfig.Entry {
	return hostconfig.Entry{
		Name: hostconfig.EntryName("cc"), Profile: "cc", Token: testToken,
		Command: "/usr/local/bin/idmcp", Args: []string{"serve", "--profile", "cc", "--data-dir", "/home/u/.local/state/idmcp"},
	}
}

// inputFor is the testdata file with other servers, unknown keys and (where
// the format has them) comments, for each host.
func inputFor(h hostconfig.Host) string {
	switch h {
	case hostconfig.VSCode:
		return "vscode.jsonc"
	case hostconfig.Zed:
		return "zed.jsonc"
	case hostconfig.Codex:
		return "codex.toml"
	}
	return "mcpservers.json"
}

func invalidFor(h hostconfig.Host) string {
	if h == hostconfig.Codex {
		return "invalid.toml"
	}
	return "invalid.json"
}

// scopesFor lists the scopes each host's golden files cover.
func scopesFor(h hostconfig.Host) []hostconfig.Scope {
	switch h {
	case hostconfig.ClaudeCode:
		return []hostconfig.Scope{hostconfig.User, hostconfig.Project, hostconfig.Local}
	case hostconfig.VSCode, hostconfig.Cursor, hostconfig.Gemini:
		return []hostconfig.Scope{hostconfig.User, hostconfig.Project}
	}
	return []hostconfig.Scope{hostconfig.User}
}

// target places h's file for scope inside a temp dir (Claude Desktop as on
// macOS, which has a build; the others as on Linux).
func target(t *testing.T, h hostconfig.Host, scope hostconfig.Scope) hostconfig.Target {
	t.Helper()
	dir := t.TempDir()
	env := hostconfig.Env{GOOS: "linux", Home: filepath.Join(dir, "home"), Workspace: filepath.Join(dir, "proj")}
	if h == hostconfig.ClaudeDesktop {
		env.GOOS = "darwin"
	}
	tg, err := hostconfig.Locate(h, scope, env)
	if err != nil {
		t.Fatal(err)
	}
	if scope == hostconfig.Local {
		// The workspace key is part of the file: make it stable for the golden.
		tg.Workspace = "/home/u/project"
	}
	return tg
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./store/hostconfig -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func writeInput(t *testing.T, tg hostconfig.Target, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "in", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(tg.Path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tg.Path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func install(t *testing.T, tg hostconfig.Target, e hostconfig.Entry, force bool) *hostconfig.Change {
	t.Helper()
	c, err := hostconfig.Install(tg, e, hostconfig.Options{Force: force})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	return c
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInstall_Golden covers, for every host and scope: a fresh file, a file
// with other servers, unknown keys and comments (all kept, byte for byte
// outside idmcp's entry: removing the entry gives back the original file),
// an invalid file (refused with its line, unchanged, no backup), an
// existing entry (refused without Force, replaced with it), the backup and
// the file modes.
func TestInstall_Golden(t *testing.T) {
	for _, h := range hostconfig.Hosts() {
		for _, scope := range scopesFor(h) {
			base := string(h) + "." + string(scope)
			t.Run(base+"/Fresh", func(t *testing.T) {
				tg := target(t, h, scope)
				c := install(t, tg, testEntry(), false)
				got := readFile(t, tg.Path)
				golden(t, base+".fresh.golden", got)
				checkMode(t, tg.Path, c)
				if matches, _ := filepath.Glob(tg.Path + ".idmcp-backup-*"); len(matches) != 0 {
					t.Fatalf("backup of a file that did not exist: %v", matches)
				}
			})
			t.Run(base+"/MergeKeepsOthers", func(t *testing.T) {
				tg := target(t, h, scope)
				orig := writeInput(t, tg, inputFor(h))
				c := install(t, tg, testEntry(), false)
				got := readFile(t, tg.Path)
				golden(t, base+".merge.golden", got)
				checkMode(t, tg.Path, c)
				backups, _ := filepath.Glob(tg.Path + ".idmcp-backup-*")
				if len(backups) != 1 || !bytes.Equal(readFile(t, backups[0]), orig) {
					t.Fatalf("backups %v: want one copy of the original", backups)
				}
				found, err := hostconfig.Inspect(tg)
				if err != nil || len(found) != 1 || found[0].Profile() != "cc" || found[0].Flag("data-dir") != "/home/u/.local/state/idmcp" {
					t.Fatalf("Inspect = %+v, %v; want the one idmcp entry for profile cc", found, err)
				}
				if c.HoldsToken != (found[0].Token == testToken) {
					t.Fatalf("HoldsToken=%v but the file's token is %q", c.HoldsToken, found[0].Token)
				}
				// Removing the entry gives back the original bytes: nothing
				// else (comments, order, whitespace) was touched.
				u, err := hostconfig.Uninstall(tg, testEntry().Name)
				if err != nil || !u.Existed {
					t.Fatalf("Uninstall: existed=%v err=%v", u != nil && u.Existed, err)
				}
				if !bytes.Equal(u.New, orig) {
					t.Fatalf("install then uninstall changed the file:\n--- got\n%s\n--- original\n%s", u.New, orig)
				}
			})
			t.Run(base+"/InvalidRefusedUnchanged", func(t *testing.T) {
				tg := target(t, h, scope)
				orig := writeInput(t, tg, invalidFor(h))
				_, err := hostconfig.Install(tg, testEntry(), hostconfig.Options{Force: true})
				if !errors.Is(err, hostconfig.ErrInvalidFile) {
					t.Fatalf("err = %v, want ErrInvalidFile", err)
				}
				wantLine := "line 4"
				if h == hostconfig.Codex {
					wantLine = "line 3"
				}
				if !strings.Contains(err.Error(), wantLine) || !strings.Contains(err.Error(), "nothing was written") {
					t.Fatalf("err = %v; want the line (%s) and that nothing was written", err, wantLine)
				}
				if got := readFile(t, tg.Path); !bytes.Equal(got, orig) {
					t.Fatal("invalid file changed")
				}
			})
			t.Run(base+"/ExistingNeedsForce", func(t *testing.T) {
				tg := target(t, h, scope)
				writeInput(t, tg, inputFor(h))
				install(t, tg, testEntry(), false)
				before := readFile(t, tg.Path)
				e := testEntry()
				e.Token = "idmcp_ROTATEDrotatedROTATEDrotatedROTATED456"
				e.Args = append(e.Args, "--workspace", "/home/u/project")
				if _, err := hostconfig.Install(tg, e, hostconfig.Options{}); !errors.Is(err, hostconfig.ErrExists) || !strings.Contains(err.Error(), "--force") {
					t.Fatalf("err = %v, want ErrExists naming --force", err)
				}
				if !bytes.Equal(readFile(t, tg.Path), before) {
					t.Fatal("file changed without --force")
				}
				c := install(t, tg, e, true)
				if !c.Existed {
					t.Fatal("Existed = false for a replaced entry")
				}
				golden(t, base+".force.golden", readFile(t, tg.Path))
			})
		}
	}
}

func checkMode(t *testing.T, path string, c *hostconfig.Change) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	holds := bytes.Contains(readFile(t, path), []byte(testToken))
	if holds != c.HoldsToken {
		t.Fatalf("file holds the token: %v, Change.HoldsToken %v", holds, c.HoldsToken)
	}
	if holds && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v for a file that holds a token, want 0600", fi.Mode().Perm())
	}
	if !holds && (c.EnvVar == "" && c.Input == "") {
		t.Fatal("the file holds no token but the Change names no env var or input")
	}
}

// TestLocate_ClaudeDesktopLinux: there is no Linux build, and the error says so.
func TestLocate_ClaudeDesktopLinux(t *testing.T) {
	_, err := hostconfig.Locate(hostconfig.ClaudeDesktop, hostconfig.User, hostconfig.Env{GOOS: "linux", Home: "/home/u"})
	if !errors.Is(err, hostconfig.ErrUnsupported) || !strings.Contains(err.Error(), "no linux build") {
		t.Fatalf("err = %v", err)
	}
	for goos, want := range map[string]string{
		"darwin":  "/home/u/Library/Application Support/Claude/claude_desktop_config.json",
		"windows": filepath.Join(`C:\Users\u\AppData\Roaming`, "Claude", "claude_desktop_config.json"),
	} {
		tg, err := hostconfig.Locate(hostconfig.ClaudeDesktop, hostconfig.User, hostconfig.Env{GOOS: goos, Home: "/home/u", AppData: `C:\Users\u\AppData\Roaming`})
		if err != nil || tg.Path != filepath.FromSlash(want) && tg.Path != want {
			t.Fatalf("%s: %q, %v; want %q", goos, tg.Path, err, want)
		}
	}
}

// TestChange_DiffRedacts: a dry run's diff never shows a token or another
// server's secret.
func TestChange_DiffRedacts(t *testing.T) {
	for _, h := range []hostconfig.Host{hostconfig.ClaudeCode, hostconfig.Codex} {
		tg := target(t, h, hostconfig.User)
		writeInput(t, tg, inputFor(h))
		c, err := hostconfig.Install(tg, testEntry(), hostconfig.Options{})
		if err != nil {
			t.Fatal(err)
		}
		d := c.Diff()
		if !strings.Contains(d, "+") || !strings.Contains(d, "idmcp-cc") {
			t.Fatalf("%s: diff lacks the entry:\n%s", h, d)
		}
		for _, secret := range []string{testToken, "sk-other-server-secret", "other-server-secret"} {
			if strings.Contains(d, secret) {
				t.Fatalf("%s: diff shows a secret:\n%s", h, d)
			}
		}
	}
}

// TestSnippet: --print's document for every host parses as that host's file
// and holds the entry.
func TestSnippet(t *testing.T) {
	for _, h := range hostconfig.Hosts() {
		s, err := hostconfig.Snippet(h, hostconfig.User, testEntry())
		if err != nil {
			t.Fatal(err)
		}
		tg := target(t, h, hostconfig.User)
		if err := os.MkdirAll(filepath.Dir(tg.Path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tg.Path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		found, err := hostconfig.Inspect(tg)
		if err != nil || len(found) != 1 || found[0].Command != "/usr/local/bin/idmcp" {
			t.Fatalf("%s: snippet reads back as %+v, %v:\n%s", h, found, err, s)
		}
	}
}

// TestLocate_Paths pins every host's file per platform and scope, as the
// README lists them.
func TestLocate_Paths(t *testing.T) {
	const home, appData, ws = "/h", `C:\AppData`, "/p"
	j := filepath.Join
	cases := []struct {
		goos  string
		host  hostconfig.Host
		scope hostconfig.Scope
		want  string
	}{
		{"darwin", hostconfig.ClaudeDesktop, hostconfig.User, j(home, "Library", "Application Support", "Claude", "claude_desktop_config.json")},
		{"windows", hostconfig.ClaudeDesktop, hostconfig.User, j(appData, "Claude", "claude_desktop_config.json")},
		{"linux", hostconfig.ClaudeCode, hostconfig.User, j(home, ".claude.json")},
		{"linux", hostconfig.ClaudeCode, hostconfig.Local, j(home, ".claude.json")},
		{"linux", hostconfig.ClaudeCode, hostconfig.Project, j(ws, ".mcp.json")},
		{"linux", hostconfig.VSCode, hostconfig.User, j(home, ".config", "Code", "User", "mcp.json")},
		{"darwin", hostconfig.VSCode, hostconfig.User, j(home, "Library", "Application Support", "Code", "User", "mcp.json")},
		{"windows", hostconfig.VSCode, hostconfig.User, j(appData, "Code", "User", "mcp.json")},
		{"linux", hostconfig.VSCode, hostconfig.Project, j(ws, ".vscode", "mcp.json")},
		{"linux", hostconfig.Cursor, hostconfig.User, j(home, ".cursor", "mcp.json")},
		{"linux", hostconfig.Cursor, hostconfig.Project, j(ws, ".cursor", "mcp.json")},
		{"linux", hostconfig.Windsurf, hostconfig.User, j(home, ".codeium", "windsurf", "mcp_config.json")},
		{"linux", hostconfig.Gemini, hostconfig.User, j(home, ".gemini", "settings.json")},
		{"linux", hostconfig.Gemini, hostconfig.Project, j(ws, ".gemini", "settings.json")},
		{"linux", hostconfig.Codex, hostconfig.User, j(home, ".codex", "config.toml")},
		{"linux", hostconfig.Zed, hostconfig.User, j(home, ".config", "zed", "settings.json")},
		{"darwin", hostconfig.Zed, hostconfig.User, j(home, ".config", "zed", "settings.json")},
		{"windows", hostconfig.Zed, hostconfig.User, j(appData, "Zed", "settings.json")},
	}
	for _, c := range cases {
		tg, err := hostconfig.Locate(c.host, c.scope, hostconfig.Env{GOOS: c.goos, Home: home, AppData: appData, Workspace: ws})
		if err != nil || tg.Path != c.want {
			t.Errorf("%s %s %s: %q, %v; want %q", c.goos, c.host, c.scope, tg.Path, err, c.want)
		}
	}
	tg, err := hostconfig.Locate(hostconfig.Codex, hostconfig.User, hostconfig.Env{GOOS: "linux", Home: home, CodexHome: "/c"})
	if err != nil || tg.Path != j("/c", "config.toml") {
		t.Errorf("CODEX_HOME: %q, %v", tg.Path, err)
	}
	for _, h := range []hostconfig.Host{hostconfig.Windsurf, hostconfig.Codex, hostconfig.Zed, hostconfig.ClaudeDesktop} {
		if _, err := hostconfig.Locate(h, hostconfig.Project, hostconfig.Env{GOOS: "darwin", Home: home, Workspace: ws}); !errors.Is(err, hostconfig.ErrUnsupported) {
			t.Errorf("%s project scope: %v, want ErrUnsupported", h, err)
		}
	}
}
