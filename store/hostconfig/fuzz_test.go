package hostconfig_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/idmcp/idmcp/store/hostconfig"
)

// FuzzInstall feeds arbitrary host files (a user's file is untrusted input
// to the editor) to Install and Uninstall for a JSON-with-comments host and
// for Codex's TOML: no panic; either a typed refusal or an edit after which
// removing the entry gives back the original bytes.
func FuzzInstall(f *testing.F) {
	for _, name := range []string{"mcpservers.json", "vscode.jsonc", "zed.jsonc", "codex.toml", "invalid.json", "invalid.toml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "in", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, name[len(name)-4:] == "toml")
	}
	f.Add([]byte(`{"mcpServers": {"idmcp-cc": 1}}`), false)
	f.Add([]byte("[mcp_servers]\nidmcp-cc = { command = \"x\" }\n"), true)
	f.Fuzz(func(t *testing.T, src []byte, toml bool) {
		h := hostconfig.Zed
		if toml {
			h = hostconfig.Codex
		}
		dir := t.TempDir()
		tg, err := hostconfig.Locate(h, hostconfig.User, hostconfig.Env{GOOS: "linux", Home: dir})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(tg.Path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tg.Path, src, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := hostconfig.Install(tg, testEntry(), hostconfig.Options{})
		if err != nil {
			if !errors.Is(err, hostconfig.ErrInvalidFile) && !errors.Is(err, hostconfig.ErrExists) && !errors.Is(err, hostconfig.ErrUnsupported) && !bytes.Contains([]byte(err.Error()), []byte("internal error")) {
				t.Fatalf("untyped refusal: %v", err)
			}
			return
		}
		if err := os.WriteFile(tg.Path, c.New, 0o600); err != nil {
			t.Fatal(err)
		}
		u, err := hostconfig.Uninstall(tg, testEntry().Name)
		if err != nil || !u.Existed {
			t.Fatalf("uninstall after install: existed=%v err=%v\n%s", u != nil && u.Existed, err, c.New)
		}
	})
}
