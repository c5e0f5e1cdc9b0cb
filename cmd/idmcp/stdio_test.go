package main_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/tools"
)

// addSharedProfile creates a --no-keyring profile and returns its token.
func addSharedProfile(t *testing.T, dataDir, name, scopes, roles string) string {
	t.Helper()
	args := []string{"host", "add", name, "--no-keyring", "--data-dir", dataDir, "--scopes", scopes}
	if roles != "" {
		args = append(args, "--roles", roles)
	}
	return tokenFromHostAdd(t, mustIdmcp(t, nil, args...))
}

// requestsBothEras sends the requests a client of each era would send and
// returns every response.
func requestsBothEras(s *rawServer, token string) map[string]rpcResponse {
	out := map[string]rpcResponse{}
	out["legacy initialize"] = s.call("initialize", legacyInit(token))
	out["legacy tools/list"] = s.call("tools/list", map[string]any{})
	out["legacy tools/call"] = s.call("tools/call", map[string]any{"name": "whoami", "arguments": map[string]any{}})
	out["legacy ping"] = s.call("ping", nil)
	meta := modernMeta(token)
	out["modern server/discover"] = s.call("server/discover", map[string]any{"_meta": meta})
	out["modern tools/list"] = s.call("tools/list", map[string]any{"_meta": meta})
	out["modern tools/call"] = s.call("tools/call", map[string]any{"name": "whoami", "arguments": map[string]any{}, "_meta": meta})
	return out
}

func TestStdio_BadCredentialRefusedOnEveryRequest(t *testing.T) {
	dataDir := t.TempDir()
	good := addSharedProfile(t, dataDir, "laptop", "todo:read todo:write", "admin")
	cases := []struct {
		name    string
		env     []string // IDMCP_TOKEN etc.
		token   string   // in capabilities
		profile string
		want    string
	}{
		{name: "Missing", want: `no credential presented for profile "laptop"`},
		{name: "EmptyCapability", token: "", env: []string{"IDMCP_TOKEN="}, want: "no credential presented"},
		{name: "Wrong", token: auth.NewHostToken(), want: `credential does not match profile "laptop"`},
		{name: "Prefix", token: good[:len(good)-1], want: `credential does not match profile "laptop"`},
		{name: "Suffix", token: good + "x", want: `credential does not match profile "laptop"`},
		{name: "WrongEnv", env: []string{"IDMCP_TOKEN=" + good[:20]}, want: `credential does not match profile "laptop"`},
		{name: "NoSuchProfile", token: good, profile: "ghost", want: `profile "ghost" does not exist; run ` + "`idmcp host add ghost`"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			profile := tc.profile
			if profile == "" {
				profile = "laptop"
			}
			env := []string{"IDMCP_SHARED_SECRET=" + good}
			env = append(env, tc.env...)
			before := len(auditRows(t, dataDir, "--event", "auth", "--decision", "deny"))
			s := startRaw(t, env, "--profile", profile, "--data-dir", dataDir)
			resps := requestsBothEras(s, tc.token)
			for what, r := range resps {
				want := tc.want
				// A legacy request after initialize carries no credential of
				// its own; only the environment's would apply.
				if strings.HasPrefix(what, "legacy ") && what != "legacy initialize" && tc.token != "" && !slices.ContainsFunc(tc.env, func(e string) bool { return strings.HasPrefix(e, "IDMCP_TOKEN=") }) && tc.profile == "" && !strings.Contains(tc.want, "no secret") {
					want = "no credential presented"
				}
				if r.Error == nil {
					t.Errorf("%s: got a result %s, want an authentication error", what, r.Result)
					continue
				}
				if !strings.HasPrefix(r.Error.Message, "authentication failed: ") || !strings.Contains(r.Error.Message, want) {
					t.Errorf("%s: message %q, want it to start with %q and contain %q", what, r.Error.Message, "authentication failed: ", want)
				}
				if strings.Contains(r.Error.Message, good) || (len(tc.token) > 8 && strings.Contains(r.Error.Message, tc.token)) {
					t.Errorf("%s: message leaks a credential", what)
				}
			}
			s.Close()
			after := auditRows(t, dataDir, "--event", "auth", "--decision", "deny")
			if got, want := len(after)-before, len(resps); got != want {
				t.Errorf("auth deny rows added = %d, want %d (one per refused request)", got, want)
			}
			for _, row := range after[before:] {
				if !strings.HasPrefix(row["reason"].(string), "authentication failed: ") {
					t.Errorf("audit reason %q is not the refusal", row["reason"])
				}
			}
		})
	}
}

// personas are host profiles with the tools their scopes and roles allow.
var personas = []struct {
	name, scopes, roles string
}{
	{"readonly", "todo:read", ""},
	{"writer", "todo:read todo:write", ""},
	{"full", "todo:read todo:write", "admin"},
	{"none", "", ""},
}

// expectedTools is what a principal with scopes and roles may call on a
// server without a workspace, computed by the authorizer from the tools' own
// declarations, so a change to a tool's requirements cannot leave the tests
// checking a stale table.
func expectedTools(t *testing.T, scopes, roles string) []string {
	t.Helper()
	info := func() tools.ServerInfo { return tools.ServerInfo{} }
	specs := append([]tools.Spec{tools.Whoami(info), tools.AuditQuery(tools.AuditQueryConfig{})}, tools.Todos(nil)...)
	a, err := tools.NewAuthorizer(specs)
	if err != nil {
		t.Fatal(err)
	}
	return a.Visible(&auth.Principal{Scopes: strings.Fields(scopes), Roles: strings.Fields(roles)})
}

func toolNames(raw json.RawMessage) []string {
	var res struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	_ = json.Unmarshal(raw, &res)
	var names []string
	for _, t := range res.Tools {
		names = append(names, t.Name)
	}
	sort.Strings(names)
	return names
}

func TestStdio_RightTokenSeesExactlyProfileTools(t *testing.T) {
	dataDir := t.TempDir()
	for _, p := range personas {
		tok := addSharedProfile(t, dataDir, p.name, p.scopes, p.roles)
		t.Run(p.name, func(t *testing.T) {
			want := expectedTools(t, p.scopes, p.roles)
			// The desktop-host path: IDMCP_TOKEN in the environment, 2025 client.
			s := startRaw(t, []string{"IDMCP_SHARED_SECRET=" + tok, "IDMCP_TOKEN=" + tok}, "--profile", p.name, "--data-dir", dataDir)
			if r := s.call("initialize", legacyInit("")); r.Error != nil {
				t.Fatalf("initialize: %s", r.Error.Message)
			}
			s.notify("notifications/initialized")
			r := s.call("tools/list", map[string]any{})
			if r.Error != nil {
				t.Fatalf("tools/list: %s", r.Error.Message)
			}
			if got := toolNames(r.Result); !slices.Equal(got, want) {
				t.Errorf("legacy tools/list = %v, want %v", got, want)
			}
			// Every tool not listed is refused with its missing scope or role.
			for _, tool := range []string{"todo_list", "todo_create", "todo_delete"} {
				r := s.call("tools/call", map[string]any{"name": tool, "arguments": map[string]any{"id": 1, "title": "x"}})
				listed := slices.Contains(want, tool)
				switch {
				case listed && r.Error != nil:
					t.Errorf("%s: listed but refused: %s", tool, r.Error.Message)
				case !listed && r.Error == nil:
					t.Errorf("%s: not listed but ran", tool)
				case !listed && !strings.HasPrefix(r.Error.Message, "forbidden: "):
					t.Errorf("%s: message %q, want forbidden", tool, r.Error.Message)
				case !listed && tool == "todo_delete" && strings.Contains(p.scopes, "todo:write") && !strings.Contains(r.Error.Message, "requires role admin"):
					t.Errorf("%s: message %q, want it to name role admin", tool, r.Error.Message)
				case !listed && tool == "todo_list" && !strings.Contains(r.Error.Message, "missing: todo:read"):
					t.Errorf("%s: message %q, want it to name todo:read", tool, r.Error.Message)
				}
			}
			if r := s.call("tools/call", map[string]any{"name": "no_such_tool", "arguments": map[string]any{}}); r.Error == nil || !strings.Contains(r.Error.Message, "not found") {
				t.Errorf("unknown tool: %+v, want not found", r.Error)
			}
			s.Close()

			// The programmatic path: an mcp-go client negotiating 2026-07-28
			// with the token in its capabilities (sent on every request).
			c := mcpClient(t, dataDir, p.name, tok, tok, false)
			lt, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
			if err != nil {
				t.Fatalf("modern tools/list: %v", err)
			}
			var got []string
			for _, tl := range lt.Tools {
				got = append(got, tl.Name)
			}
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Errorf("modern tools/list = %v, want %v", got, want)
			}
			req := mcp.CallToolRequest{}
			req.Params.Name = "whoami"
			res, err := c.CallTool(context.Background(), req)
			if err != nil {
				t.Fatalf("whoami: %v", err)
			}
			var who struct {
				AuthMethod string   `json:"auth_method"`
				Transport  string   `json:"transport"`
				Scopes     []string `json:"scopes"`
			}
			b, _ := json.Marshal(res.StructuredContent)
			_ = json.Unmarshal(b, &who)
			if who.Transport != "stdio" || who.AuthMethod != "host-secret" || !slices.Equal(who.Scopes, strings.Fields(p.scopes)) {
				t.Errorf("whoami = %s", b)
			}
		})
	}
}

// mcpClient starts `idmcp serve` for profile through the mcp-go client's own
// stdio transport (a real subprocess over pipes). With legacy it pins
// 2025-11-25; otherwise it negotiates 2026-07-28 (no initialize is sent).
func mcpClient(t *testing.T, dataDir, profile, secret, capToken string, legacy bool) *client.Client {
	t.Helper()
	env := cleanEnv("IDMCP_SHARED_SECRET=" + secret)
	tr := transport.NewStdioWithOptions(binPath, nil, []string{"serve", "--profile", profile, "--data-dir", dataDir},
		transport.WithCommandFunc(func(ctx context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
			cmd := exec.CommandContext(ctx, command, args...)
			cmd.Env = env
			return cmd, nil
		}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	opts := []client.ClientOption{client.WithClientCapabilities(mcp.ClientCapabilities{
		Experimental: map[string]any{"io.idmcp/auth": map[string]any{"token": capToken}},
	})}
	if legacy {
		opts = append(opts, client.WithLegacyProtocolOnly())
	}
	c := client.NewClient(tr, opts...)
	t.Cleanup(func() { _ = c.Close() })
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "idmcp-test", Version: "1"}
	res, err := c.Initialize(ctx, init)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if want := modernVersion; !legacy && res.ProtocolVersion != want {
		t.Fatalf("negotiated %s, want %s", res.ProtocolVersion, want)
	}
	return c
}

func TestAuditQuery_WhileServerRuns(t *testing.T) {
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "todo:read todo:write", "")
	s := startRaw(t, []string{"IDMCP_SHARED_SECRET=" + tok}, "--profile", "host", "--data-dir", dataDir)
	if r := s.call("initialize", legacyInit(tok)); r.Error != nil {
		t.Fatal(r.Error.Message)
	}
	r := s.call("tools/call", map[string]any{"name": "todo_create", "arguments": map[string]any{"title": "buy milk", "api_key": "sk-live-123456"}})
	if r.Error != nil {
		t.Fatal(r.Error.Message)
	}
	if r := s.call("tools/call", map[string]any{"name": "todo_create", "arguments": map[string]any{"title": "walk dog"}}); r.Error != nil {
		t.Fatal(r.Error.Message)
	}
	s.call("tools/call", map[string]any{"name": "todo_delete", "arguments": map[string]any{"id": 1}})
	// The server is still running: the CLI reads the live database.
	rows := auditRows(t, dataDir)
	keys := []string{"ts", "transport", "session", "event", "subject", "client_id", "actors", "tool", "arguments", "decision", "reason", "outcome", "duration_us"}
	var sawCall, sawOK, sawDeny bool
	for _, row := range rows {
		for _, k := range keys {
			if _, ok := row[k]; !ok {
				t.Fatalf("row %v lacks key %q", row, k)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, row["ts"].(string)); err != nil || !strings.Contains(row["ts"].(string), ".") {
			t.Errorf("ts %q is not RFC 3339 with sub-second precision", row["ts"])
		}
		if row["tool"] == "todo_create" && strings.Contains(row["arguments"].(string), "buy milk") {
			sawCall = true
			if args := row["arguments"].(string); !strings.Contains(args, "buy milk") || strings.Contains(args, "sk-live") || !strings.Contains(args, "[REDACTED]") {
				t.Errorf("arguments %s: want title kept and api_key redacted", args)
			}
			// todo_create takes no api_key: the tool refuses the unknown argument.
			if row["outcome"] != "error" || !strings.Contains(row["reason"].(string), "api_key") {
				t.Errorf("outcome %v reason %v, want a tool error naming api_key", row["outcome"], row["reason"])
			}
		}
		if row["tool"] == "todo_create" && strings.Contains(row["arguments"].(string), "walk dog") && row["outcome"] == "ok" {
			sawOK = true
		}
		if row["tool"] == "todo_delete" && row["decision"] == "deny" && strings.Contains(row["reason"].(string), "missing role admin") {
			sawDeny = true
		}
	}
	if !sawCall || !sawOK || !sawDeny {
		t.Errorf("rows lack the refused-argument todo_create (%v), the ok todo_create (%v) or the denied todo_delete (%v): %v", sawCall, sawOK, sawDeny, rows)
	}
	filtered := auditRows(t, dataDir, "--decision", "deny", "--tool", "todo_delete", "--since", "1h", "--limit", "5")
	if len(filtered) != 1 {
		t.Errorf("filtered query returned %d rows, want 1", len(filtered))
	}
	if out := mustIdmcp(t, nil, "audit", "verify", "--data-dir", dataDir); !strings.HasPrefix(out, "ok: ") {
		t.Errorf("verify: %s", out)
	}
}

func TestSecretFile_ModeChecked(t *testing.T) {
	dataDir := t.TempDir()
	path := filepath.Join(t.TempDir(), "secret")
	out := mustIdmcp(t, nil, "host", "add", "ci", "--no-keyring", "--secret-file", path, "--scopes", "todo:read", "--data-dir", dataDir)
	tok := tokenFromHostAdd(t, out)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v, err %v; want 0600", fi.Mode().Perm(), err)
	}
	s := startRaw(t, nil, "--profile", "ci", "--data-dir", dataDir, "--secret-file", path)
	if r := s.call("initialize", legacyInit(tok)); r.Error != nil {
		t.Fatalf("initialize with the file's secret: %s", r.Error.Message)
	}
	s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runIdmcp(t, nil, "serve", "--profile", "ci", "--data-dir", dataDir, "--secret-file", path)
	if code == 0 || !strings.Contains(stderr, "must be 0600 or stricter") {
		t.Errorf("serve with a 0644 secret file: exit %d, stderr %q; want a refusal naming the mode", code, stderr)
	}
	if strings.Contains(stderr, tok) {
		t.Error("stderr leaks the secret")
	}
}

// A keyring profile never takes a secret from the launcher's environment:
// with the keyring out of reach, IDMCP_SHARED_SECRET must not stand in.
func TestStdio_KeyringProfileRefusesEnvironmentSecret(t *testing.T) {
	dataDir := t.TempDir()
	if err := store.NewHosts(dataDir).Put(&auth.HostProfile{Name: "admin", Scopes: []string{"todo:write"}, Roles: []string{"admin"}, Keyring: true}); err != nil {
		t.Fatal(err)
	}
	s := startRaw(t, []string{"IDMCP_SHARED_SECRET=chosen-by-launcher", "IDMCP_TOKEN=chosen-by-launcher", "DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/bus"},
		"--profile", "admin", "--data-dir", dataDir)
	r := s.call("initialize", legacyInit(""))
	if r.Error == nil {
		t.Fatal("a keyring profile accepted a secret from the environment")
	}
	if !strings.Contains(r.Error.Message, `no secret configured for profile "admin"`) || !strings.Contains(r.Error.Message, "only from the OS keyring") {
		t.Errorf("message %q: want it to say the keyring profile has no secret and why", r.Error.Message)
	}
	if strings.Contains(r.Error.Message, "chosen-by-launcher") {
		t.Error("message leaks the offered secret")
	}
}

// --list-all-tools shows every enabled tool with what it requires, and calls
// are still decided.
func TestStdio_ListAllToolsShowsRequirements(t *testing.T) {
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "none", "", "")
	s := startRaw(t, []string{"IDMCP_SHARED_SECRET=" + tok, "IDMCP_TOKEN=" + tok}, "--profile", "none", "--data-dir", dataDir, "--list-all-tools")
	r := s.call("tools/list", map[string]any{})
	if r.Error != nil {
		t.Fatal(r.Error.Message)
	}
	var res struct {
		Tools []struct {
			Name        string `json:"name"`
			Description string `json:"description"`
			Meta        map[string]struct {
				Scopes []string `json:"scopes"`
				Roles  []string `json:"roles"`
			} `json:"_meta"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatal(err)
	}
	want := expectedTools(t, "todo:read todo:write audit:read", "admin") // every tool
	if len(res.Tools) != len(want) {
		t.Fatalf("listed %d tools, want all %d", len(res.Tools), len(want))
	}
	for _, tl := range res.Tools {
		req := tl.Meta["io.idmcp/requires"]
		if tl.Name == "todo_delete" && (!slices.Equal(req.Scopes, []string{"todo:write"}) || !slices.Equal(req.Roles, []string{"admin"}) ||
			!strings.HasSuffix(tl.Description, "Requires scope todo:write and role admin.")) {
			t.Errorf("todo_delete: requires %+v, description %q", req, tl.Description)
		}
	}
	if r := s.call("tools/call", map[string]any{"name": "todo_list", "arguments": map[string]any{}}); r.Error == nil || !strings.Contains(r.Error.Message, "missing: todo:read") {
		t.Errorf("listed but not allowed: %+v", r.Error)
	}
}
