package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/tailscale/hujson"

	"github.com/idmcp/idmcp/store"
)

// The host installers, end to end: `idmcp host add NAME --install HOST`
// through the built binary into a temporary HOME, then the host's own CLI
// (Claude Code, Gemini CLI, Codex CLI from scripts/hosts, npm) or, for hosts
// that have no CLI here, a launch exactly as the host would do it from the
// written entry.

// hostCLI returns the path of a host CLI installed by scripts/hosts/setup.
// Without it the test skips, unless IDMCP_TEST_HOSTS=1 or CI=true, where a
// missing CLI (npm unreachable, setup not run) is a failure.
func hostCLI(t *testing.T, name string) string {
	t.Helper()
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("the host CLIs are run on Unix only")
	}
	p, _ := filepath.Abs(filepath.Join("..", "..", "scripts", "hosts", "node_modules", ".bin", name))
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("IDMCP_TEST_HOSTS") == "1" || os.Getenv("CI") == "true" {
			t.Fatalf("host CLI %s missing (%v): run scripts/hosts/setup (npm ci)", name, err)
		}
		t.Skipf("host CLI %s not installed: run scripts/hosts/setup, or set IDMCP_TEST_HOSTS=1 to make this a failure", name)
	}
	return p
}

// hostEnv is the environment a host CLI runs with: an isolated HOME, no
// idmcp variables, no update checks or telemetry.
func hostEnv(home string, extra ...string) []string {
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8",
		"DISABLE_AUTOUPDATER=1", "DISABLE_TELEMETRY=1", "GEMINI_CLI_NO_RELAUNCH=true", "NO_COLOR=1"}
	return append(env, extra...)
}

// runHostCLI runs a host CLI to completion (bounded) in dir.
func runHostCLI(t *testing.T, dir string, env []string, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v: no answer within 3 minutes:\n%s", filepath.Base(bin), args, out)
	}
	_ = err // `mcp list` exits 0 whether or not a server connects; the output says
	return string(out)
}

// installHost runs `idmcp host add PROFILE --install HOST …` with HOME set
// and returns its stdout and the token it printed once.
func installHost(t *testing.T, home, dataDir, profile, host string, extra ...string) (string, string) {
	t.Helper()
	args := append([]string{"host", "add", profile, "--install", host, "--data-dir", dataDir,
		"--no-keyring", "--secret-file", filepath.Join(dataDir, profile+".secret"), "--scopes", "todo:read,todo:write"}, extra...)
	out := mustIdmcp(t, []string{"HOME=" + home}, args...)
	return out, tokenFromHostAdd(t, out)
}

// replaceInFile rewrites a host file with old replaced by new: a wrong token.
func replaceInFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not hold %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), old, new)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// authRows returns the audit log's auth rows for profile.
func authRows(t *testing.T, dataDir, profile string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range auditRows(t, dataDir) {
		if r["event"] == "auth" && r["client_id"] == profile {
			out = append(out, r)
		}
	}
	return out
}

// wrongToken is a well-formed token that matches no profile.
const wrongToken = "idmcp_WRONGwrongWRONGwrongWRONGwrongWRONGwrong12"

func TestHosts_ClaudeCode(t *testing.T) {
	claude := hostCLI(t, "claude")
	home, ws, dataDir := t.TempDir(), t.TempDir(), t.TempDir()
	out, tok := installHost(t, home, dataDir, "cc", "claude-code")
	cfg := filepath.Join(home, ".claude.json")
	if !strings.Contains(out, cfg) || !strings.Contains(out, "0600") {
		t.Fatalf("install output names neither the file nor its mode:\n%s", out)
	}
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, %v; want mode 0600", cfg, fi, err)
	}
	list := runHostCLI(t, ws, hostEnv(home), claude, "mcp", "list")
	if !regexp.MustCompile(`idmcp-cc: .*` + regexp.QuoteMeta(binPath) + ` serve --profile cc .*✔ Connected`).MatchString(list) {
		t.Fatalf("claude mcp list does not show idmcp-cc connected:\n%s", list)
	}
	rows := authRows(t, dataDir, "cc")
	if len(rows) == 0 || rows[0]["decision"] != "allow" || !strings.HasPrefix(rows[0]["client_name"].(string), "claude-code/") {
		t.Fatalf("audit auth rows for cc = %v; want an allow from claude-code/…", rows)
	}

	// A wrong token in the host's file: not connected, and the audit log
	// says why.
	replaceInFile(t, cfg, tok, wrongToken)
	list = runHostCLI(t, ws, hostEnv(home), claude, "mcp", "list")
	// Claude Code shows the server's refusal, which names what was wrong.
	if !regexp.MustCompile(`idmcp-cc: .*✘ Failed to connect.*credential does not match profile "cc"`).MatchString(list) {
		t.Fatalf("claude mcp list with a wrong token:\n%s", list)
	}
	rows = authRows(t, dataDir, "cc")
	if last := rows[len(rows)-1]; last["decision"] != "deny" || !strings.Contains(last["reason"].(string), `credential does not match profile "cc"`) {
		t.Fatalf("last auth row %v; want the deny with its reason", last)
	}

	// Local scope: projects[ws].mcpServers in ~/.claude.json, seen only in ws.
	mustIdmcp(t, []string{"HOME=" + home}, "host", "add", "loc", "--install", "claude-code", "--scope", "local", "--workspace", ws,
		"--data-dir", dataDir, "--no-keyring", "--secret-file", filepath.Join(dataDir, "loc.secret"), "--scopes", "todo:read")
	if list = runHostCLI(t, ws, hostEnv(home), claude, "mcp", "list"); !regexp.MustCompile(`idmcp-loc: .*✔ Connected`).MatchString(list) {
		t.Fatalf("claude mcp list in the workspace (local scope):\n%s", list)
	}
	if list = runHostCLI(t, t.TempDir(), hostEnv(home), claude, "mcp", "list"); strings.Contains(list, "idmcp-loc") {
		t.Fatalf("a local-scope server shows outside its workspace:\n%s", list)
	}

	// Project scope: .mcp.json references ${IDMCP_TOKEN_PRJ} and never
	// holds the token; Claude Code expands it from its environment.
	out = mustIdmcp(t, []string{"HOME=" + home}, "host", "add", "prj", "--install", "claude-code", "--scope", "project", "--workspace", ws,
		"--data-dir", dataDir, "--no-keyring", "--secret-file", filepath.Join(dataDir, "prj.secret"), "--scopes", "todo:read")
	ptok := tokenFromHostAdd(t, out)
	b, err := os.ReadFile(filepath.Join(ws, ".mcp.json"))
	if err != nil || strings.Contains(string(b), ptok) || !strings.Contains(string(b), "${IDMCP_TOKEN_PRJ}") || !strings.Contains(out, "export IDMCP_TOKEN_PRJ=") {
		t.Fatalf(".mcp.json (%v):\n%s\noutput:\n%s", err, b, out)
	}
	list = runHostCLI(t, ws, hostEnv(home, "IDMCP_TOKEN_PRJ="+ptok), claude, "mcp", "list")
	if !strings.Contains(list, "idmcp-prj") || !strings.Contains(out, "approve") {
		t.Fatalf("claude mcp list in the project:\n%s\ninstall output (should say Claude Code asks for approval):\n%s", list, out)
	}
	// What trusting the folder and approving the server at Claude Code's
	// prompts records in ~/.claude.json.
	var state map[string]any
	if err := json.Unmarshal([]byte(mustRead(t, cfg)), &state); err != nil {
		t.Fatal(err)
	}
	projects, _ := state["projects"].(map[string]any)
	if projects == nil {
		projects = map[string]any{}
	}
	p, _ := projects[ws].(map[string]any)
	if p == nil {
		p = map[string]any{}
	}
	p["hasTrustDialogAccepted"], p["enabledMcpjsonServers"] = true, []string{"idmcp-prj"}
	projects[ws], state["projects"] = p, projects
	b, _ = json.Marshal(state)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	list = runHostCLI(t, ws, hostEnv(home, "IDMCP_TOKEN_PRJ="+ptok), claude, "mcp", "list")
	if !regexp.MustCompile(`idmcp-prj: .*✔ Connected`).MatchString(list) {
		t.Fatalf("claude mcp list in the project:\n%s", list)
	}
}

func TestHosts_GeminiCLI(t *testing.T) {
	gemini := hostCLI(t, "gemini")
	home, ws, dataDir := t.TempDir(), t.TempDir(), t.TempDir()
	_, tok := installHost(t, home, dataDir, "gem", "gemini")
	cfg := filepath.Join(home, ".gemini", "settings.json")
	// Gemini CLI lists servers as Disabled until the folder is trusted.
	trusted, _ := json.Marshal(map[string]string{ws: "TRUST_FOLDER"})
	if err := os.WriteFile(filepath.Join(home, ".gemini", "trustedFolders.json"), trusted, 0o600); err != nil {
		t.Fatal(err)
	}
	list := runHostCLI(t, ws, hostEnv(home), gemini, "mcp", "list")
	if !regexp.MustCompile(`✓ idmcp-gem: .*serve --profile gem .*- Connected`).MatchString(list) {
		t.Fatalf("gemini mcp list does not show idmcp-gem connected:\n%s", list)
	}
	rows := authRows(t, dataDir, "gem")
	if len(rows) == 0 || rows[0]["decision"] != "allow" || rows[0]["client_name"] == "" {
		t.Fatalf("audit auth rows for gem = %v; want an allow that names Gemini's client", rows)
	}
	t.Logf("Gemini CLI introduced itself as %v", rows[0]["client_name"])

	replaceInFile(t, cfg, tok, wrongToken)
	list = runHostCLI(t, ws, hostEnv(home), gemini, "mcp", "list")
	if !regexp.MustCompile(`✗ idmcp-gem: .*Disconnected`).MatchString(list) {
		t.Fatalf("gemini mcp list with a wrong token:\n%s", list)
	}
	rows = authRows(t, dataDir, "gem")
	if last := rows[len(rows)-1]; last["decision"] != "deny" || !strings.Contains(last["reason"].(string), `credential does not match profile "gem"`) {
		t.Fatalf("last auth row %v; want the deny with its reason", last)
	}

	// Project scope: .gemini/settings.json references ${IDMCP_TOKEN_GPRJ},
	// which Gemini CLI expands from its environment.
	out := mustIdmcp(t, []string{"HOME=" + home}, "host", "add", "gprj", "--install", "gemini", "--scope", "project", "--workspace", ws,
		"--data-dir", dataDir, "--no-keyring", "--secret-file", filepath.Join(dataDir, "gprj.secret"), "--scopes", "todo:read")
	ptok := tokenFromHostAdd(t, out)
	if b := mustRead(t, filepath.Join(ws, ".gemini", "settings.json")); strings.Contains(b, ptok) || !strings.Contains(b, "${IDMCP_TOKEN_GPRJ}") {
		t.Fatalf("project settings.json:\n%s", b)
	}
	list = runHostCLI(t, ws, hostEnv(home, "IDMCP_TOKEN_GPRJ="+ptok), gemini, "mcp", "list")
	if !regexp.MustCompile(`✓ idmcp-gprj: .*- Connected`).MatchString(list) {
		t.Fatalf("gemini mcp list in the project:\n%s", list)
	}
}

// TestHosts_CodexCLI: `codex mcp list` reads the file without connecting, so
// the test takes the server as Codex parsed it (`codex mcp get --json`) and
// launches exactly that.
func TestHosts_CodexCLI(t *testing.T) {
	codex := hostCLI(t, "codex")
	home, ws, dataDir := t.TempDir(), t.TempDir(), t.TempDir()
	// Codex keeps comments and other tables: start from a config with both.
	if err := os.MkdirAll(filepath.Join(home, ".codex"), 0o700); err != nil {
		t.Fatal(err)
	}
	orig := "# my codex settings\nmodel = \"gpt-5-codex\"\n\n[mcp_servers.docs]\ncommand = \"docs-server\" # keep me\n"
	if err := os.WriteFile(filepath.Join(home, ".codex", "config.toml"), []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	_, tok := installHost(t, home, dataDir, "cx", "codex")
	cfgBytes, _ := os.ReadFile(filepath.Join(home, ".codex", "config.toml"))
	if !strings.HasPrefix(string(cfgBytes), orig) {
		t.Fatalf("config.toml lost what was there:\n%s", cfgBytes)
	}
	list := runHostCLI(t, ws, hostEnv(home), codex, "mcp", "list")
	if !regexp.MustCompile(`idmcp-cx\s+`+regexp.QuoteMeta(binPath)+`\s+serve --profile cx .*IDMCP_TOKEN=\*+.*enabled`).MatchString(list) || !strings.Contains(list, "docs") {
		t.Fatalf("codex mcp list:\n%s", list)
	}
	raw := runHostCLI(t, ws, hostEnv(home), codex, "mcp", "get", "idmcp-cx", "--json")
	var got struct {
		Enabled   bool `json:"enabled"`
		Transport struct {
			Type    string            `json:"type"`
			Command string            `json:"command"`
			Args    []string          `json:"args"`
			Env     map[string]string `json:"env"`
		} `json:"transport"`
	}
	if err := json.Unmarshal([]byte(raw[strings.Index(raw, "{"):]), &got); err != nil {
		t.Fatalf("codex mcp get --json: %v\n%s", err, raw)
	}
	if !got.Enabled || got.Transport.Type != "stdio" || got.Transport.Env["IDMCP_TOKEN"] != tok {
		t.Fatalf("codex parsed %+v", got)
	}
	who := launchAsHost(t, got.Transport.Command, got.Transport.Args, got.Transport.Env, "codex-test")
	if who.ClientID != "cx" || who.AuthMethod != "host-secret" {
		t.Fatalf("whoami = %+v", who)
	}
}

// whoamiResult is the part of whoami's answer the tests check.
type whoamiResult struct {
	ClientID   string   `json:"client_id"`
	ClientName string   `json:"client_name"`
	Scopes     []string `json:"scopes"`
	AuthMethod string   `json:"auth_method"`
}

// launchAsHost starts command with args and the host's env block on top of a
// clean environment, as a desktop host does (standard initialize, no
// capability token), and calls whoami through the mcp-go client.
func launchAsHost(t *testing.T, command string, args []string, env map[string]string, clientName string) whoamiResult {
	t.Helper()
	full := cleanEnv()
	for k, v := range env {
		full = append(full, k+"="+v)
	}
	tr := transport.NewStdioWithOptions(command, nil, args,
		transport.WithCommandFunc(func(ctx context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
			cmd := exec.CommandContext(ctx, command, args...)
			cmd.Env = full
			return cmd, nil
		}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, client.WithLegacyProtocolOnly())
	defer c.Close()
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: clientName, Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize as %s: %v", clientName, err)
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = "whoami"
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("whoami as %s: %v", clientName, err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("whoami as %s: %+v", clientName, res)
	}
	text, ok := res.Content[0].(mcp.TextContent)
	if !ok {
		t.Fatalf("whoami content %T", res.Content[0])
	}
	var who whoamiResult
	if err := json.Unmarshal([]byte(text.Text), &who); err != nil {
		t.Fatalf("whoami %q: %v", text.Text, err)
	}
	return who
}

// hostEntry reads server name from a host file the way the host does (JSON
// with comments for VS Code and Zed) under the container key.
func hostEntry(t *testing.T, path, container, name string) (command string, args []string, env map[string]string, doc map[string]any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	std, err := hujson.Standardize(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := json.Unmarshal(std, &doc); err != nil {
		t.Fatal(err)
	}
	var e struct {
		Type    string            `json:"type"`
		Source  string            `json:"source"`
		Command string            `json:"command"`
		Args    []string          `json:"args"`
		Env     map[string]string `json:"env"`
	}
	servers, _ := doc[container].(map[string]any)
	raw, _ := json.Marshal(servers[name])
	if err := json.Unmarshal(raw, &e); err != nil || e.Command == "" {
		t.Fatalf("%s: no %s.%s (%v):\n%s", path, container, name, err, b)
	}
	return e.Command, e.Args, e.Env, doc
}

// TestHosts_LaunchFromEntry: for the hosts without a CLI here, the entry
// `host add --install` writes is launched exactly as the host would launch
// it (command, args, env; VS Code's ${input:…} substituted with what the
// user types at its prompt) and completes an authenticated tool call.
func TestHosts_LaunchFromEntry(t *testing.T) {
	home, dataDir := t.TempDir(), t.TempDir()
	desktopCfg := filepath.Join(t.TempDir(), "claude_desktop_config.json")
	cases := []struct {
		host, profile, path, container string
		extra                          []string
	}{
		// Claude Desktop has no Linux build: --config stands in for its
		// macOS/Windows location (Locate's test covers those paths).
		{"claude-desktop", "dsk", desktopCfg, "mcpServers", []string{"--config", desktopCfg}},
		{"vscode", "vsc", filepath.Join(home, ".config", "Code", "User", "mcp.json"), "servers", nil},
		{"cursor", "cur", filepath.Join(home, ".cursor", "mcp.json"), "mcpServers", nil},
		{"windsurf", "wsf", filepath.Join(home, ".codeium", "windsurf", "mcp_config.json"), "mcpServers", nil},
		{"zed", "zed", filepath.Join(home, ".config", "zed", "settings.json"), "context_servers", nil},
	}
	if runtime.GOOS != "linux" {
		t.Skip("the paths above are the Linux ones")
	}
	for _, c := range cases {
		t.Run(c.host, func(t *testing.T) {
			out, tok := installHost(t, home, dataDir, c.profile, c.host, c.extra...)
			if !strings.Contains(out, c.path) {
				t.Fatalf("install output does not name %s:\n%s", c.path, out)
			}
			command, args, env, doc := hostEntry(t, c.path, c.container, "idmcp-"+c.profile)
			if !filepath.IsAbs(command) || command != binPath {
				t.Fatalf("command %q, want the absolute path of the binary %q", command, binPath)
			}
			fi, err := os.Stat(c.path)
			if err != nil {
				t.Fatal(err)
			}
			if c.host == "vscode" {
				// VS Code: the file holds a reference to a password input,
				// never the token; VS Code substitutes what the user typed.
				want := "${input:idmcp-token-vsc}"
				if env["IDMCP_TOKEN"] != want || strings.Contains(mustRead(t, c.path), tok) {
					t.Fatalf("env %v; want %s and no token in the file", env, want)
				}
				inputs, _ := json.Marshal(doc["inputs"])
				if !strings.Contains(string(inputs), `"id":"idmcp-token-vsc"`) || !strings.Contains(string(inputs), `"password":true`) {
					t.Fatalf("inputs %s", inputs)
				}
				env["IDMCP_TOKEN"] = tok
			} else if env["IDMCP_TOKEN"] != tok || fi.Mode().Perm() != 0o600 {
				t.Fatalf("env %v, mode %v; want the token and 0600", env, fi.Mode().Perm())
			}
			who := launchAsHost(t, command, args, env, c.host)
			if who.ClientID != c.profile || who.ClientName != c.host || strings.Join(who.Scopes, " ") != "todo:read todo:write" {
				t.Fatalf("whoami = %+v", who)
			}
		})
	}
	// Without --config, Claude Desktop on Linux is refused up front, saying why.
	o, e, code := runIdmcp(t, []string{"HOME=" + home}, "host", "add", "dsk2", "--install", "claude-desktop", "--data-dir", dataDir, "--no-keyring", "--secret-file", filepath.Join(dataDir, "dsk2.secret"))
	if code == 0 || !strings.Contains(e, "no linux build") {
		t.Fatalf("claude-desktop on linux: exit %d\n%s%s", code, o, e)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHostInstall_Rules drives the installer's rules through the built
// binary: a dry run changes nothing and shows a masked diff; an invalid host
// file is refused with its line before any profile exists; an existing
// entry needs --force; --print writes no file; `host install` rotates the
// token and says which other host file still holds the old one; a
// --no-keyring install needs --secret-file; without a Secret Service a
// keyring install is refused up front; remove --uninstall takes the entry
// out of every host file.
func TestHostInstall_Rules(t *testing.T) {
	home, dataDir := t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home}
	sf := filepath.Join(dataDir, "r.secret")
	cursorCfg := filepath.Join(home, ".cursor", "mcp.json")
	gemCfg := filepath.Join(home, ".gemini", "settings.json")
	base := []string{"--data-dir", dataDir, "--no-keyring", "--secret-file", sf}

	// Dry run: a diff, nothing written, no profile, no secret file.
	out := mustIdmcp(t, env, append([]string{"host", "add", "r", "--install", "cursor", "--dry-run"}, base...)...)
	if !strings.Contains(out, "+++ "+cursorCfg) || !strings.Contains(out, `"idmcp-r"`) || strings.Contains(out, "idmcp_") && !strings.Contains(out, "idmcp_<new token") {
		t.Fatalf("dry run output:\n%s", out)
	}
	for _, p := range []string{cursorCfg, sf, filepath.Join(dataDir, "hosts.json")} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("dry run created %s", p)
		}
	}

	// An invalid file: refused with its line, unchanged, no profile created.
	if err := os.MkdirAll(filepath.Dir(gemCfg), 0o700); err != nil {
		t.Fatal(err)
	}
	bad := "{\n  \"theme\": \"x\"\n  \"mcpServers\": {}\n}\n"
	if err := os.WriteFile(gemCfg, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	o, e, code := runIdmcp(t, env, append([]string{"host", "add", "r", "--install", "gemini"}, base...)...)
	if code == 0 || !strings.Contains(e, "line 3") || !strings.Contains(e, "nothing was written") {
		t.Fatalf("invalid file: exit %d\n%s%s", code, o, e)
	}
	if mustRead(t, gemCfg) != bad {
		t.Fatal("invalid file changed")
	}
	if _, err := store.NewHosts(dataDir).Get("r"); err == nil {
		t.Fatal("profile created despite the refusal")
	}
	if err := os.Remove(gemCfg); err != nil {
		t.Fatal(err)
	}

	// Install into Cursor, then into Gemini with `host install` (rotates).
	_, tok1 := installHost(t, home, dataDir, "r", "cursor")
	out = mustIdmcp(t, env, "host", "install", "r", "gemini", "--data-dir", dataDir, "--secret-file", sf)
	tok2 := tokenFromHostAdd(t, out)
	if tok1 == tok2 || !strings.Contains(out, cursorCfg+" (cursor) also starts profile \"r\" with its old token") {
		t.Fatalf("host install output:\n%s", out)
	}
	if strings.TrimSpace(mustRead(t, sf)) != tok2 {
		t.Fatal("the secret file does not hold the new token")
	}
	// The existing Cursor entry needs --force; with it, the entry is
	// replaced and the previous file backed up.
	o, e, code = runIdmcp(t, env, "host", "install", "r", "cursor", "--data-dir", dataDir, "--secret-file", sf)
	if code == 0 || !strings.Contains(e, "--force") {
		t.Fatalf("install over an existing entry without --force: exit %d\n%s%s", code, o, e)
	}
	out = mustIdmcp(t, env, "host", "install", "r", "cursor", "--force", "--data-dir", dataDir, "--secret-file", sf)
	tok3 := tokenFromHostAdd(t, out)
	if !strings.Contains(out, "replaced in "+cursorCfg) || !strings.Contains(out, "backed up to "+cursorCfg+".idmcp-backup-") || !strings.Contains(mustRead(t, cursorCfg), tok3) {
		t.Fatalf("forced install:\n%s", out)
	}

	// --print: the entry for a host, no file written.
	out = mustIdmcp(t, env, "host", "add", "p", "--print", "codex", "--data-dir", dataDir, "--no-keyring", "--secret-file", filepath.Join(dataDir, "p.secret"))
	ptok := tokenFromHostAdd(t, out)
	if !strings.Contains(out, "[mcp_servers.idmcp-p]") || !strings.Contains(out, `IDMCP_TOKEN = "`+ptok+`"`) {
		t.Fatalf("--print codex:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(home, ".codex", "config.toml")); err == nil {
		t.Fatal("--print wrote a file")
	}

	// A --no-keyring install without --secret-file would put the secret in
	// the host file twice: refused.
	o, e, code = runIdmcp(t, env, "host", "add", "n", "--install", "cursor", "--data-dir", dataDir, "--no-keyring")
	if code != 2 || !strings.Contains(e, "--secret-file") {
		t.Fatalf("--no-keyring without --secret-file: exit %d\n%s%s", code, o, e)
	}
	// Without a Secret Service (no session bus here), a keyring install is
	// refused up front and points at --no-keyring --secret-file.
	o, e, code = runIdmcp(t, []string{"HOME=" + home, "DBUS_SESSION_BUS_ADDRESS="}, "host", "add", "k", "--install", "cursor", "--data-dir", dataDir)
	if runtime.GOOS == "linux" && os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		if code == 0 || !strings.Contains(e, "no usable OS keyring") || !strings.Contains(e, "--no-keyring --secret-file") {
			t.Fatalf("keyring install without a keyring: exit %d\n%s%s", code, o, e)
		}
	}

	// remove --uninstall: both entries go, other content stays, profile gone.
	out = mustIdmcp(t, env, "host", "remove", "r", "--uninstall", "--data-dir", dataDir)
	if !strings.Contains(out, "removed from "+cursorCfg) || !strings.Contains(out, "removed from "+gemCfg) {
		t.Fatalf("remove --uninstall:\n%s", out)
	}
	for _, p := range []string{cursorCfg, gemCfg} {
		if strings.Contains(mustRead(t, p), "idmcp-r") {
			t.Fatalf("%s still has the entry", p)
		}
	}
	if _, err := store.NewHosts(dataDir).Get("r"); err == nil {
		t.Fatal("profile still there after remove --uninstall")
	}
}

// TestHostInstall_ExitStatus: help exits 0 and lists the installer flags;
// usage errors exit 2; an unknown host exits 2 naming the eight.
func TestHostInstall_ExitStatus(t *testing.T) {
	dataDir := t.TempDir()
	for _, c := range []struct {
		args     []string
		want     int
		wantText string
	}{
		{[]string{"host", "add", "-h"}, 0, "-install HOST"},
		{[]string{"host", "install", "-h"}, 0, "-dry-run"},
		{[]string{"host", "remove", "-h"}, 0, "-uninstall"},
		{[]string{"doctor", "-h"}, 0, "-json"},
		{[]string{"host", "install", "x"}, 2, "usage: idmcp host install NAME HOST"},
		{[]string{"host", "add", "x", "--install", "notepad", "--data-dir", dataDir}, 2, "claude-desktop, claude-code, vscode, cursor, windsurf, gemini, codex, zed"},
		{[]string{"host", "add", "x", "--install", "cursor", "--scope", "galaxy", "--data-dir", dataDir, "--no-keyring", "--secret-file", filepath.Join(dataDir, "s")}, 2, "unknown --scope"},
		{[]string{"doctor", "extra"}, 2, "doctor takes no arguments"},
	} {
		out, errOut, code := runIdmcp(t, []string{"HOME=" + t.TempDir()}, c.args...)
		if code != c.want || !strings.Contains(out+errOut, c.wantText) {
			t.Errorf("idmcp %v: exit %d (want %d), output lacks %q:\n%s%s", c.args, code, c.want, c.wantText, out, errOut)
		}
	}
}

// TestHostInstall_Concurrent: eight `host add --install` processes at once
// into one host file; each reads, merges and rewrites it, so without the
// data dir's lock around the whole command most entries would be lost.
func TestHostInstall_Concurrent(t *testing.T) {
	home, dataDir := t.TempDir(), t.TempDir()
	const n = 8
	done := make(chan error, n)
	for i := range n {
		go func() {
			name := "c" + string(rune('a'+i))
			_, errOut, code := runIdmcp(t, []string{"HOME=" + home}, "host", "add", name, "--install", "cursor", "--data-dir", dataDir,
				"--no-keyring", "--secret-file", filepath.Join(dataDir, name+".secret"))
			if code != 0 {
				done <- errors.New(name + ": " + errOut)
				return
			}
			done <- nil
		}()
	}
	for range n {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	_, _, _, doc := hostEntry(t, filepath.Join(home, ".cursor", "mcp.json"), "mcpServers", "idmcp-ca")
	if servers, _ := doc["mcpServers"].(map[string]any); len(servers) != n {
		t.Fatalf("%d entries after %d concurrent installs, want all", len(servers), n)
	}
}
