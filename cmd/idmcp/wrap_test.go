package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// wrapdemoBin is examples/wrapdemo, built once next to the idmcp binary.
var (
	wrapdemoOnce sync.Once
	wrapdemoBin  string
	wrapdemoErr  error
)

func wrapdemo(t testing.TB) string {
	t.Helper()
	wrapdemoOnce.Do(func() {
		wrapdemoBin = filepath.Join(filepath.Dir(binPath), "wrapdemo")
		cmd := exec.Command("go", "build", "-o", wrapdemoBin, "../../examples/wrapdemo")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			wrapdemoErr = err
			t.Logf("%s", out)
		}
	})
	if wrapdemoErr != nil {
		t.Fatalf("build wrapdemo: %v", wrapdemoErr)
	}
	return wrapdemoBin
}

// everythingJS is @modelcontextprotocol/server-everything's entry point as
// scripts/wrap/setup installs it; the test fails when IDMCP_TEST_WRAP=1 (CI)
// and it is missing, and skips otherwise.
func everythingJS(t *testing.T) (node, js string) {
	t.Helper()
	js, _ = filepath.Abs("../../scripts/wrap/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	node, err := exec.LookPath("node")
	if _, serr := os.Stat(js); err != nil || serr != nil {
		if os.Getenv("IDMCP_TEST_WRAP") == "1" {
			t.Fatalf("wrap harness missing (run scripts/wrap/setup): node %v, %s: %v", err, js, serr)
		}
		t.Skip("wrap harness not installed (scripts/wrap/setup)")
	}
	return node, js
}

// wrapSession is `idmcp wrap` driven by the mcp-go client over its own
// stdio transport (a real subprocess over pipes).
type wrapSession struct {
	c   *client.Client
	cmd *exec.Cmd
	tr  *transport.Stdio
}

// startWrap starts idmcp wrap with args (flags, "--", CMD…) and
// initializes a client presenting token. legacy pins 2025-11-25; else the
// client negotiates 2026-07-28 through server/discover.
func startWrap(t *testing.T, dataDir, token string, legacy bool, env []string, args ...string) (*wrapSession, error) {
	t.Helper()
	return startWrapWith(t, nil, dataDir, token, legacy, env, args...)
}

// startWrapWith is startWrap with extra client options (a sampling handler).
func startWrapWith(t *testing.T, extra []client.ClientOption, dataDir, token string, legacy bool, env []string, args ...string) (*wrapSession, error) {
	t.Helper()
	s := &wrapSession{}
	fullEnv := cleanEnv(append([]string{"IDMCP_SHARED_SECRET=" + token}, env...)...)
	s.tr = transport.NewStdioWithOptions(binPath, nil, append([]string{"wrap", "--data-dir", dataDir}, args...),
		transport.WithCommandFunc(func(ctx context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
			cmd := exec.CommandContext(ctx, command, args...)
			cmd.Env = fullEnv
			s.cmd = cmd
			return cmd, nil
		}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	if err := s.tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	opts := []client.ClientOption{client.WithClientCapabilities(mcp.ClientCapabilities{
		Experimental: map[string]any{"io.idmcp/auth": map[string]any{"token": token}},
	})}
	if legacy {
		opts = append(opts, client.WithLegacyProtocolOnly())
	}
	opts = append(opts, extra...)
	s.c = client.NewClient(s.tr, opts...)
	t.Cleanup(func() { _ = s.c.Close() })
	if err := s.c.Start(ctx); err != nil { // installs the notification handler
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "idmcp-wrap-test", Version: "1"}
	res, err := s.c.Initialize(ctx, init)
	if err != nil {
		return s, err
	}
	if !legacy && res.ProtocolVersion != modernVersion {
		t.Fatalf("negotiated %s, want %s", res.ProtocolVersion, modernVersion)
	}
	return s, nil
}

func mustWrap(t *testing.T, dataDir, token string, legacy bool, env []string, args ...string) *wrapSession {
	t.Helper()
	s, err := startWrap(t, dataDir, token, legacy, env, args...)
	if err != nil {
		_ = s.c.Close()
		t.Fatalf("initialize through idmcp wrap: %v\nstderr:\n%s", err, s.stderr())
	}
	return s
}

// stderr returns what idmcp (and the child) wrote to stderr; call it
// after the client is closed.
func (s *wrapSession) stderr() string {
	b, _ := io.ReadAll(io.LimitReader(s.tr.Stderr(), 64<<10))
	return string(b)
}

// exit closes the client (stdin of idmcp) and returns idmcp's exit code;
// the transport waits for the process.
func (s *wrapSession) exit(t *testing.T) int {
	t.Helper()
	_ = s.c.Close()
	if s.cmd.ProcessState == nil {
		t.Fatal("idmcp wrap still running after the client closed")
	}
	return s.cmd.ProcessState.ExitCode()
}

func (s *wrapSession) tools(t *testing.T) []string {
	t.Helper()
	lt, err := s.c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range lt.Tools {
		names = append(names, tl.Name)
	}
	sort.Strings(names)
	return names
}

// call returns the text of a tool result, whether it is an error result,
// and the JSON-RPC error (a refusal).
func (s *wrapSession) call(t *testing.T, name string, args map[string]any) (string, bool, error) {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = name, args
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.c.CallTool(ctx, req)
	if err != nil {
		return "", false, err
	}
	var text []string
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	return strings.Join(text, "\n"), res.IsError, nil
}

// rowsOf returns the audit rows of one event kind (and tool, when given).
func rowsOf(rows []map[string]any, event, tool string) []map[string]any {
	var out []map[string]any
	for _, r := range rows {
		if r["event"] == event && (tool == "" || r["tool"] == tool) {
			out = append(out, r)
		}
	}
	return out
}

func wrapdemoPolicy(extra string) string {
	return `[wrap.tools]
echo = { scopes = ["demo:read"] }
calls = {}
upgrade = { scopes = ["demo:admin"] }
crash = {}
read_file = { scopes = ["demo:read"] }
"write_*" = { scopes = ["demo:write"] }
` + extra
}

func TestWrap_Everything(t *testing.T) {
	node, js := everythingJS(t)
	pkg := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(js)))) // node_modules
	for _, era := range []struct {
		name   string
		legacy bool
	}{{"Legacy", true}, {"Modern", false}} {
		t.Run(era.name, func(t *testing.T) {
			dataDir := t.TempDir()
			tok := addSharedProfile(t, dataDir, "host", "ev:read", "")
			pol := writePolicy(t, `
[wrap.tools]
echo = { scopes = ["ev:read"] }
get-env = { scopes = ["ev:read"] }
get-sum = { scopes = ["ev:math"] }
[wrap.sandbox]
read = ["`+pkg+`"]
[wrap.env]
WRAP_GREETING = "hello from the policy"
`)
			s := mustWrap(t, dataDir, tok, era.legacy, nil, "--profile", "host", "--policy", pol, "--", node, js)
			if got, want := s.tools(t), []string{"echo", "get-env"}; !slices.Equal(got, want) {
				t.Fatalf("tools/list = %v, want %v (get-sum needs ev:math, the rest is not named)", got, want)
			}
			text, isErr, err := s.call(t, "echo", map[string]any{"message": "hi there"})
			if err != nil || isErr || !strings.Contains(text, "hi there") {
				t.Fatalf("echo = %q, %v, %v", text, isErr, err)
			}
			if _, _, err := s.call(t, "get-sum", map[string]any{"a": 1, "b": 2}); err == nil || !strings.Contains(err.Error(), "requires scope ev:math") {
				t.Fatalf("get-sum without ev:math: err = %v, want a refusal naming the scope", err)
			}
			if _, _, err := s.call(t, "get-tiny-image", nil); err == nil || !strings.Contains(err.Error(), "tool not found") {
				t.Fatalf("get-tiny-image (not named): err = %v, want tool not found", err)
			}
			// The child's environment is the minimal one, plus the policy's.
			text, isErr, err = s.call(t, "get-env", map[string]any{})
			if err != nil || isErr {
				t.Fatalf("get-env: %v %v %s", err, isErr, text)
			}
			var env map[string]string
			if err := json.Unmarshal([]byte(text), &env); err != nil {
				t.Fatalf("get-env result %q: %v", text, err)
			}
			var keys []string
			for k := range env {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if want := []string{"HOME", "LANG", "PATH", "TMPDIR", "WRAP_GREETING"}; !slices.Equal(keys, want) {
				t.Errorf("child environment has %v, want exactly %v", keys, want)
			}
			if env["WRAP_GREETING"] != "hello from the policy" || !strings.HasPrefix(env["HOME"], os.TempDir()) {
				t.Errorf("child environment = %v", env)
			}
			if code := s.exit(t); code != 0 {
				t.Errorf("idmcp wrap exit %d after EOF", code)
			}

			rows := auditRows(t, dataDir)
			if n := len(rowsOf(rows, "wrap/child-start", "")); n != 1 {
				t.Errorf("%d child-start rows, want 1", n)
			}
			deny := rowsOf(rows, "tools/call", "get-sum")
			if len(deny) != 1 || deny[0]["decision"] != "deny" || !strings.Contains(deny[0]["reason"].(string), "missing scope ev:math") {
				t.Errorf("get-sum rows = %v, want one deny row (and no allow row: it never reached the child)", deny)
			}
			echo := rowsOf(rows, "tools/call", "echo")
			if len(echo) != 2 || echo[0]["outcome"] != "started" || echo[1]["outcome"] != "ok" || echo[1]["result_sha256"] == "" {
				t.Errorf("echo rows = %v, want an intent row then an ok row with the result's hash", echo)
			}
			if l := rowsOf(rows, "tools/list", ""); len(l) != 1 || !strings.Contains(l[0]["reason"].(string), "2 of ") {
				t.Errorf("tools/list rows = %v", l)
			}
			if x := rowsOf(rows, "wrap/child-exit", ""); len(x) != 1 {
				t.Errorf("child-exit rows = %v, want 1", x)
			}
		})
	}
}

func TestWrap_RefusedCallNeverReachesChild(t *testing.T) {
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "demo:read", "")
	pol := writePolicy(t, wrapdemoPolicy(""))
	s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", wrapdemo(t))
	if got, want := s.tools(t), []string{"calls", "crash", "echo", "read_file"}; !slices.Equal(got, want) {
		t.Fatalf("tools/list = %v, want %v", got, want)
	}
	if _, _, err := s.call(t, "upgrade", nil); err == nil || !strings.Contains(err.Error(), "requires scope demo:admin") {
		t.Fatalf("upgrade without demo:admin: %v", err)
	}
	if _, _, err := s.call(t, "echo", map[string]any{"message": "x"}); err != nil {
		t.Fatal(err)
	}
	text, _, err := s.call(t, "calls", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The child counted the echo and never saw the refused upgrade.
	if text != `{"echo":1}` {
		t.Errorf("calls the child received = %s, want {\"echo\":1}", text)
	}
}

func TestWrap_NewToolHiddenUntilNamed(t *testing.T) {
	bin := wrapdemo(t)
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "demo:read demo:admin", "")
	pol := writePolicy(t, wrapdemoPolicy(""))
	t.Run("UpdateAtRuntime", func(t *testing.T) {
		s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", bin)
		changed := make(chan struct{}, 4)
		s.c.OnNotification(func(n mcp.JSONRPCNotification) {
			if n.Method == "notifications/tools/list_changed" {
				changed <- struct{}{}
			}
		})
		before := s.tools(t)
		if _, _, err := s.call(t, "upgrade", nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changed:
		case <-time.After(20 * time.Second):
			t.Fatal("no notifications/tools/list_changed relayed")
		}
		if after := s.tools(t); !slices.Equal(before, after) || slices.Contains(after, "delete_everything") {
			t.Errorf("after the update tools/list = %v, want unchanged %v", after, before)
		}
		if _, _, err := s.call(t, "delete_everything", nil); err == nil || !strings.Contains(err.Error(), "tool not found") {
			t.Errorf("delete_everything: %v, want tool not found", err)
		}
		text, _, _ := s.call(t, "calls", nil)
		if strings.Contains(text, "delete_everything") {
			t.Errorf("child received delete_everything: %s", text)
		}
	})
	t.Run("NamedByPolicy", func(t *testing.T) {
		pol2 := writePolicy(t, wrapdemoPolicy(`delete_everything = { scopes = ["demo:admin"] }
[wrap.env]
WRAPDEMO_V2 = "1"
`))
		s := mustWrap(t, dataDir, tok, false, nil, "--profile", "host", "--policy", pol2, "--", bin)
		if !slices.Contains(s.tools(t), "delete_everything") {
			t.Fatal("delete_everything not listed once the policy names it")
		}
		if text, isErr, err := s.call(t, "delete_everything", nil); err != nil || isErr || !strings.Contains(text, "deleted") {
			t.Fatalf("delete_everything = %q %v %v", text, isErr, err)
		}
	})
}

func TestWrap_Unauthenticated(t *testing.T) {
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "demo:read", "")
	pol := writePolicy(t, wrapdemoPolicy(""))
	for _, legacy := range []bool{true, false} {
		s, err := startWrap(t, dataDir, tok[:len(tok)-2]+"xx", legacy, []string{"IDMCP_SHARED_SECRET=" + tok}, "--profile", "host", "--policy", pol, "--", wrapdemo(t))
		if err == nil {
			t.Fatal("initialize with a wrong token succeeded")
		}
		if !strings.Contains(err.Error(), "authentication failed") {
			t.Errorf("error %v, want authentication failed", err)
		}
		_ = s.c.Close()
	}
	rows := auditRows(t, dataDir)
	if n := len(rowsOf(rows, "wrap/child-start", "")); n != 0 {
		t.Errorf("%d child-start rows: the child was started for an unauthenticated host", n)
	}
	if n := len(rowsOf(rows, "auth", "")); n == 0 {
		t.Error("no auth deny rows")
	}
}

func TestWrap_SandboxKeepsChildInside(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the child sandbox is Linux-only")
	}
	dataDir := t.TempDir()
	granted := t.TempDir()
	if err := os.WriteFile(filepath.Join(granted, "ok.txt"), []byte("granted content"), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("not for the child"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := addSharedProfile(t, dataDir, "host", "demo:read", "")
	pol := writePolicy(t, wrapdemoPolicy(`
[wrap.sandbox]
read = ["`+granted+`"]
`))
	s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", wrapdemo(t))
	if text, isErr, err := s.call(t, "read_file", map[string]any{"path": filepath.Join(granted, "ok.txt")}); err != nil || isErr || text != "granted content" {
		t.Fatalf("read granted file = %q %v %v", text, isErr, err)
	}
	for _, p := range []string{outside, filepath.Join(dataDir, "audit.db"), "/etc/passwd", "/proc/1/environ"} {
		text, isErr, err := s.call(t, "read_file", map[string]any{"path": p})
		if err != nil || !isErr || !strings.Contains(text, "permission denied") {
			t.Errorf("read %s = %q (isError %v, err %v), want EACCES from the kernel", p, text, isErr, err)
		}
	}
	s.exit(t)
	rows := rowsOf(auditRows(t, dataDir), "tools/call", "read_file")
	var failed int
	for _, r := range rows {
		if r["outcome"] == "error" && strings.Contains(r["reason"].(string), "tool error") {
			failed++
		}
	}
	if failed != 4 {
		t.Errorf("%d read_file rows with a tool error, want 4: %v", failed, rows)
	}
}

func TestWrap_ChildExit(t *testing.T) {
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "demo:read", "")
	pol := writePolicy(t, wrapdemoPolicy(""))
	s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", wrapdemo(t))
	_, _, err := s.call(t, "crash", nil)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("crash: %v, want an error naming exit status 3", err)
	}
	if code := s.exit(t); code != 1 {
		t.Errorf("idmcp wrap exit %d, want 1 (the session ends with the child)\n%s", code, s.stderr())
	}
	rows := auditRows(t, dataDir)
	x := rowsOf(rows, "wrap/child-exit", "")
	if len(x) != 1 || !strings.Contains(x[0]["reason"].(string), "exit status 3") || x[0]["outcome"] != "error" {
		t.Errorf("child-exit rows = %v", x)
	}
	c := rowsOf(rows, "tools/call", "crash")
	if len(c) != 2 || c[1]["outcome"] != "error" || !strings.Contains(c[1]["reason"].(string), "exit status 3") {
		t.Errorf("crash rows = %v, want intent + an error outcome naming the exit", c)
	}
}

// TestWrap_FilesystemServerStaysInside gives server-filesystem a broad
// directory; the policy grants only one folder inside it, and the kernel
// holds the server to that even though its own arguments allow more.
func TestWrap_FilesystemServerStaysInside(t *testing.T) {
	node, js := everythingJS(t)
	modules := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(js))))
	fsJS := filepath.Join(modules, "@modelcontextprotocol", "server-filesystem", "dist", "index.js")
	if runtime.GOOS != "linux" {
		t.Skip("the child sandbox is Linux-only")
	}
	broad := t.TempDir()
	granted := filepath.Join(broad, "granted")
	private := filepath.Join(broad, "private")
	for _, d := range []string{granted, private} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// new.txt exists: server-filesystem lists every directory from its
	// allowed one down to a file that does not exist yet (Unicode path
	// matching), which needs a read grant on broad itself.
	for name, content := range map[string]string{"notes.txt": "granted notes", "new.txt": ""} {
		if err := os.WriteFile(filepath.Join(granted, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(private, "secret.txt"), []byte("private data"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "fs:read fs:write", "")
	pol := writePolicy(t, `
[wrap.tools]
"read_*" = { scopes = ["fs:read"] }
list_allowed_directories = {}
write_file = { scopes = ["fs:write"] }
move_file = { deny = true }
[wrap.sandbox]
read = ["`+modules+`"]
write = ["`+granted+`"]
`)
	s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", node, fsJS, broad)
	tools := s.tools(t)
	if slices.Contains(tools, "move_file") || slices.Contains(tools, "directory_tree") || !slices.Contains(tools, "read_text_file") {
		t.Errorf("tools/list = %v: want read_* and write_file, no move_file (denied) or directory_tree (not named)", tools)
	}
	if text, isErr, err := s.call(t, "read_text_file", map[string]any{"path": filepath.Join(granted, "notes.txt")}); err != nil || isErr || !strings.Contains(text, "granted notes") {
		t.Fatalf("read inside the grant = %q %v %v", text, isErr, err)
	}
	if text, isErr, err := s.call(t, "write_file", map[string]any{"path": filepath.Join(granted, "new.txt"), "content": "written"}); err != nil || isErr {
		t.Fatalf("write inside the grant = %q %v %v", text, isErr, err)
	}
	// The server's own argument allows broad; the kernel does not.
	text, isErr, err := s.call(t, "read_text_file", map[string]any{"path": filepath.Join(private, "secret.txt")})
	if err != nil || !isErr || !strings.Contains(text, "EACCES") || strings.Contains(text, "private data") {
		t.Fatalf("read outside the grant = %q (isError %v, err %v), want EACCES as a tool error", text, isErr, err)
	}
	if _, isErr, _ := s.call(t, "write_file", map[string]any{"path": filepath.Join(private, "x.txt"), "content": "x"}); !isErr {
		t.Error("write outside the grant succeeded")
	}
	if _, err := os.Stat(filepath.Join(private, "x.txt")); err == nil {
		t.Error("the child created a file outside its grant")
	}
	s.exit(t)
	var sawEACCES bool
	for _, r := range rowsOf(auditRows(t, dataDir), "tools/call", "read_text_file") {
		if r["outcome"] == "error" && strings.Contains(r["arguments"].(string), "secret.txt") {
			sawEACCES = true
		}
	}
	if !sawEACCES {
		t.Error("no audit row records the refused read as an error outcome")
	}
}

// TestWrap_GoSDKEverything wraps a server from another SDK and runtime (a
// static Go binary built from the module proxy by scripts/wrap/setup) with
// the default sandbox rules.
func TestWrap_GoSDKEverything(t *testing.T) {
	bin, _ := filepath.Abs("../../scripts/wrap/bin/go-sdk-everything")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("IDMCP_TEST_WRAP") == "1" {
			t.Fatalf("go-sdk everything missing (run scripts/wrap/setup): %v", err)
		}
		t.Skip("go-sdk everything not built (scripts/wrap/setup)")
	}
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "sdk:use", "")
	pol := writePolicy(t, `
[wrap.tools]
greet = { scopes = ["sdk:use"] }
"*" = { scopes = ["sdk:everything"] }
[wrap.prompts]
greet = {}
`)
	for _, legacy := range []bool{true, false} {
		s := mustWrap(t, dataDir, tok, legacy, nil, "--profile", "host", "--policy", pol, "--", bin)
		if got := s.tools(t); !slices.Equal(got, []string{"greet"}) {
			t.Errorf("tools/list = %v, want [greet] (the rest needs sdk:everything)", got)
		}
		// go-sdk marks its lists public; filtered, they are the caller's own.
		if lt, err := s.c.ListTools(context.Background(), mcp.ListToolsRequest{}); err != nil || lt.CacheScope != mcp.CacheScopePrivate {
			t.Errorf("tools/list cacheScope = %q, %v; want private", lt.CacheScope, err)
		}
		if text, isErr, err := s.call(t, "greet", map[string]any{"name": "wrap"}); err != nil || isErr || !strings.Contains(text, "wrap") {
			t.Errorf("greet = %q %v %v", text, isErr, err)
		}
		pl, err := s.c.ListPrompts(context.Background(), mcp.ListPromptsRequest{})
		if err != nil || len(pl.Prompts) != 1 || pl.Prompts[0].Name != "greet" {
			t.Errorf("prompts/list = %+v, %v; want only greet", pl, err)
		}
		if code := s.exit(t); code != 0 {
			t.Errorf("exit %d", code)
		}
	}
}

// TestKeyring_WrapEnvSecret: `idmcp secret set` puts a secret in the real
// Secret Service; [wrap.env] hands it to the child's environment only, and
// it never appears in an audit row or in idmcp's stderr. Runs where
// TestKeyring_HostLifecycle runs (scripts/ci's keyring step).
func TestKeyring_WrapEnvSecret(t *testing.T) {
	if os.Getenv("IDMCP_TEST_KEYRING") != "1" {
		t.Skip("set IDMCP_TEST_KEYRING=1 under a Secret Service session (scripts/ci does) to run the keyring tests")
	}
	node, js := everythingJS(t)
	modules := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(js))))
	const secret = "ghp_wrapTestSecret0123456789abcdefABCDEF"
	set := exec.Command(binPath, "secret", "set", "wraptest-gh")
	set.Env = cleanEnv()
	set.Stdin = strings.NewReader(secret + "\n")
	if out, err := set.CombinedOutput(); err != nil || strings.Contains(string(out), secret) {
		t.Fatalf("secret set: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(binPath, "secret", "remove", "wraptest-gh").Run() })
	if lookup, err := exec.Command("secret-tool", "lookup", "service", "idmcp-secrets", "username", "wraptest-gh").Output(); err != nil || strings.TrimSpace(string(lookup)) != secret {
		t.Fatalf("secret-tool lookup: %v", err)
	}
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "ev:read", "")
	pol := writePolicy(t, `
[wrap.tools]
echo = { scopes = ["ev:read"] }
get-env = { scopes = ["ev:read"] }
[wrap.sandbox]
read = ["`+modules+`"]
[wrap.env]
GITHUB_TOKEN = { keyring = "wraptest-gh" }
`)
	s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", node, js)
	text, _, err := s.call(t, "get-env", map[string]any{})
	if err != nil || !strings.Contains(text, `"GITHUB_TOKEN": "`+secret+`"`) {
		t.Fatalf("the child did not get the secret: %v %q", err, text)
	}
	// A model that echoes the secret back: the row keeps the call, not the secret.
	if _, _, err := s.call(t, "echo", map[string]any{"message": "token is " + secret}); err != nil {
		t.Fatal(err)
	}
	s.exit(t)
	if errOut := s.stderr(); strings.Contains(errOut, secret) {
		t.Error("the secret reached idmcp's stderr")
	}
	export := mustIdmcp(t, nil, "audit", "export", "--format", "jsonl", "--data-dir", dataDir)
	if strings.Contains(export, secret) {
		t.Error("the secret is in the audit log")
	}
	if !strings.Contains(export, "token is ") {
		t.Error("the echo call's arguments are not in the audit log at all")
	}
}

type fakeModel struct{ asked atomic.Int32 }

func (m *fakeModel) CreateMessage(_ context.Context, req mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	m.asked.Add(1)
	return &mcp.CreateMessageResult{SamplingMessage: mcp.SamplingMessage{Role: mcp.RoleAssistant, Content: mcp.NewTextContent("the host's model answers")}, Model: "test-model"}, nil
}

// TestWrap_EverythingSamplingAndProgress: the child's sampling request
// reaches the host only when the policy allows it (otherwise the child is
// not even told the host can sample), each is audited, and progress
// notifications come back with the host's token.
func TestWrap_EverythingSamplingAndProgress(t *testing.T) {
	node, js := everythingJS(t)
	modules := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(js))))
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "ev:read", "")
	policy := func(allow bool) string {
		return writePolicy(t, fmt.Sprintf(`
[wrap]
allow_sampling = %v
[wrap.tools]
"trigger-*" = { scopes = ["ev:read"] }
[wrap.sandbox]
read = ["%s"]
`, allow, modules))
	}
	model := &fakeModel{}
	opts := []client.ClientOption{client.WithSamplingHandler(model)}

	for _, legacy := range []bool{true, false} {
		s, err := startWrapWith(t, opts, dataDir, tok, legacy, nil, "--profile", "host", "--policy", policy(true), "--", node, js)
		if err != nil {
			t.Fatalf("start: %v\n%s", err, s.stderr())
		}
		if !slices.Contains(s.tools(t), "trigger-sampling-request") {
			t.Fatalf("tools %v: the child was not told the host can sample", s.tools(t))
		}
		text, isErr, err := s.call(t, "trigger-sampling-request", map[string]any{"prompt": "hello", "maxTokens": 10})
		if err != nil || isErr || !strings.Contains(text, "the host's model answers") || model.asked.Load() == 0 {
			t.Fatalf("sampling through the relay = %q %v %v (asked %d)", text, isErr, err, model.asked.Load())
		}
		progress := make(chan mcp.JSONRPCNotification, 16)
		s.c.OnNotification(func(n mcp.JSONRPCNotification) {
			if n.Method == "notifications/progress" {
				progress <- n
			}
		})
		req := mcp.CallToolRequest{}
		req.Params.Name = "trigger-long-running-operation"
		req.Params.Arguments = map[string]any{"duration": 1, "steps": 2}
		req.Params.Meta = &mcp.Meta{ProgressToken: "tok-42"}
		if _, err := s.c.CallTool(context.Background(), req); err != nil {
			t.Fatalf("long-running operation: %v", err)
		}
		select {
		case n := <-progress:
			if b, _ := json.Marshal(n.Params); !strings.Contains(string(b), "tok-42") {
				t.Errorf("progress %s lacks the host's token", b)
			}
		case <-time.After(10 * time.Second):
			t.Error("no progress notification relayed")
		}
		s.exit(t)
	}

	s2, err := startWrapWith(t, opts, dataDir, tok, true, nil, "--profile", "host", "--policy", policy(false), "--", node, js)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(s2.tools(t), "trigger-sampling-request") {
		t.Error("allow_sampling = false, yet the child was told the host can sample")
	}
	s2.exit(t)
	rows := rowsOf(auditRows(t, dataDir), "sampling/createMessage", "")
	if len(rows) != 4 || rows[0]["decision"] != "allow" || rows[0]["outcome"] != "started" || rows[1]["outcome"] != "ok" || rows[3]["outcome"] != "ok" {
		t.Errorf("sampling rows = %v, want per era an allow row before and an ok row after", rows)
	}
}

// TestWrap_RestartBounded: [wrap] restart = 1 restarts a crashed child
// once (audited), then the session ends with the second crash.
func TestWrap_RestartBounded(t *testing.T) {
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "demo:read", "")
	pol := writePolicy(t, "[wrap]\nrestart = 1\n"+wrapdemoPolicy(""))
	s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", wrapdemo(t))
	if _, _, err := s.call(t, "crash", nil); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("first crash: %v", err)
	}
	if text, _, err := s.call(t, "echo", map[string]any{"message": "again"}); err != nil || text != "again" {
		t.Fatalf("echo after the restart = %q, %v", text, err)
	}
	if _, _, err := s.call(t, "crash", nil); err == nil {
		t.Fatal("second crash answered")
	}
	if code := s.exit(t); code != 1 {
		t.Errorf("exit %d after the restarts ran out, want 1", code)
	}
	rows := auditRows(t, dataDir)
	if n := len(rowsOf(rows, "wrap/child-start", "")); n != 2 {
		t.Errorf("%d child starts, want 2", n)
	}
	if r := rowsOf(rows, "wrap/child-restart", ""); len(r) != 1 || !strings.Contains(r[0]["reason"].(string), "restart 1 of 1") {
		t.Errorf("restart rows = %v", r)
	}
}

func TestPolicyCheck_WrapCommand(t *testing.T) {
	pol := writePolicy(t, wrapdemoPolicy(""))
	out := mustIdmcp(t, []string{"IDMCP_DATA_DIR=" + t.TempDir()}, "policy", "check", pol, "--", wrapdemo(t))
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			rows[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for tool, want := range map[string]string{
		"echo":    `yes "echo" demo:read -`,
		"upgrade": `yes "upgrade" demo:admin -`,
		"connect": `no (not named: hidden) - -`,
	} {
		if rows[tool] != want {
			t.Errorf("policy check -- CMD: %s = %q, want %q\n%s", tool, rows[tool], want, out)
		}
	}
	if !strings.Contains(out, "1 tool(s) hidden") {
		t.Errorf("no hidden count:\n%s", out)
	}
}

// TestDemo_Wrap: the demo's wrap part shows an allowed call, a call the
// policy refuses, and (on Linux) a read the kernel refuses.
func TestDemo_Wrap(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("idmcp wrap is not available on windows")
	}
	out := mustIdmcp(t, nil, "demo", "--json")
	var rep struct {
		Wrap struct {
			Listed []string `json:"listed"`
			Calls  []struct{ Tool, Args, Outcome string }
		} `json:"wrap"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Wrap.Listed, []string{"echo", "read_file"}) && !slices.Equal(rep.Wrap.Listed, []string{"read_file", "echo"}) {
		t.Errorf("listed %v", rep.Wrap.Listed)
	}
	if len(rep.Wrap.Calls) != 4 {
		t.Fatalf("calls %+v", rep.Wrap.Calls)
	}
	want := []string{"ok: hello", "refused by idmcp: forbidden", "ok: a file the policy shares", "tool error from the server"}
	if runtime.GOOS != "linux" {
		want[3] = ""
	}
	for i, w := range want {
		if !strings.HasPrefix(rep.Wrap.Calls[i].Outcome, w) {
			t.Errorf("call %d %s = %q, want %q…", i, rep.Wrap.Calls[i].Tool, rep.Wrap.Calls[i].Outcome, w)
		}
	}
}

// TestWrap_EverythingPromptsAndResources: prompts by name and resources by
// URI prefix get the same treatment as tools: lists filtered, the rest
// refused before the child, every get and read audited.
func TestWrap_EverythingPromptsAndResources(t *testing.T) {
	node, js := everythingJS(t)
	modules := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(js))))
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "ev:read", "")
	pol := writePolicy(t, `
[wrap.prompts]
simple-prompt = { scopes = ["ev:read"] }
args-prompt = { scopes = ["ev:admin"] }
[wrap.resources]
"demo://resource/dynamic/text/" = { scopes = ["ev:read"] }
[wrap.sandbox]
read = ["`+modules+`"]
`)
	s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", node, js)
	ctx := context.Background()
	pl, err := s.c.ListPrompts(ctx, mcp.ListPromptsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var prompts []string
	for _, p := range pl.Prompts {
		prompts = append(prompts, p.Name)
	}
	if !slices.Equal(prompts, []string{"simple-prompt"}) {
		t.Errorf("prompts/list = %v, want [simple-prompt]", prompts)
	}
	gp := mcp.GetPromptRequest{}
	gp.Params.Name = "simple-prompt"
	if _, err := s.c.GetPrompt(ctx, gp); err != nil {
		t.Errorf("prompts/get simple-prompt: %v", err)
	}
	gp.Params.Name, gp.Params.Arguments = "args-prompt", map[string]string{"city": "Paris"}
	if _, err := s.c.GetPrompt(ctx, gp); err == nil || !strings.Contains(err.Error(), "requires scope ev:admin") {
		t.Errorf("prompts/get args-prompt without ev:admin: %v", err)
	}
	rl, err := s.c.ListResources(ctx, mcp.ListResourcesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rl.Resources) != 0 {
		t.Errorf("resources/list shows %d static resources the policy does not grant", len(rl.Resources))
	}
	tl, err := s.c.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.ResourceTemplates) != 1 || !strings.HasPrefix(tl.ResourceTemplates[0].URITemplate.Raw(), "demo://resource/dynamic/text/") {
		t.Errorf("templates = %+v, want only the dynamic text one", tl.ResourceTemplates)
	}
	rr := mcp.ReadResourceRequest{}
	rr.Params.URI = "demo://resource/dynamic/text/1"
	if res, err := s.c.ReadResource(ctx, rr); err != nil || len(res.Contents) == 0 {
		t.Errorf("read a granted resource: %v", err)
	}
	rr.Params.URI = "demo://resource/dynamic/blob/1"
	if _, err := s.c.ReadResource(ctx, rr); err == nil || !strings.Contains(err.Error(), "resource not found") {
		t.Errorf("read an ungranted resource: %v, want resource not found", err)
	}
	s.exit(t)
	rows := auditRows(t, dataDir)
	if r := rowsOf(rows, "prompts/get", "args-prompt"); len(r) != 1 || r[0]["decision"] != "deny" {
		t.Errorf("args-prompt rows %v", r)
	}
	if r := rowsOf(rows, "resources/read", "demo://resource/dynamic/text/1"); len(r) != 2 || r[1]["outcome"] != "ok" {
		t.Errorf("granted read rows %v", r)
	}
	if r := rowsOf(rows, "resources/read", "demo://resource/dynamic/blob/1"); len(r) != 1 || r[0]["decision"] != "deny" {
		t.Errorf("refused read rows %v", r)
	}
}

// TestWrap_ChildStderrRedacted: what the wrapped server prints to stderr
// reaches the host's log through idmcp's redaction.
func TestWrap_ChildStderrRedacted(t *testing.T) {
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "demo:read", "")
	leak := "idmcp_" + strings.Repeat("Zq9", 14) + "x"
	pol := writePolicy(t, wrapdemoPolicy("[wrap.env]\nWRAPDEMO_SAY = \"LEAKY\"\nLEAKY = \""+leak+"\"\n"))
	s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", wrapdemo(t))
	if _, _, err := s.call(t, "echo", map[string]any{"message": "x"}); err != nil {
		t.Fatal(err)
	}
	s.exit(t)
	errOut := s.stderr()
	if !strings.Contains(errOut, "wrapdemo: starting with LEAKY=") {
		t.Fatalf("the child's stderr line is not in idmcp's log:\n%s", errOut)
	}
	if strings.Contains(errOut, leak) {
		t.Errorf("the child's token reached the log unredacted:\n%s", errOut)
	}
}

type fakeUser struct{ asked atomic.Int32 }

func (u *fakeUser) Elicit(context.Context, mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	u.asked.Add(1)
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionDecline}}, nil
}

// TestWrap_EverythingElicitation: elicitation reaches the user only with
// allow_elicitation, and is audited.
func TestWrap_EverythingElicitation(t *testing.T) {
	node, js := everythingJS(t)
	modules := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(js))))
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "ev:read", "")
	user := &fakeUser{}
	for _, allow := range []bool{false, true} {
		pol := writePolicy(t, fmt.Sprintf("[wrap]\nallow_elicitation = %v\n[wrap.tools]\n\"trigger-*\" = {}\n[wrap.sandbox]\nread = [%q]\n", allow, modules))
		s, err := startWrapWith(t, []client.ClientOption{client.WithElicitationHandler(user)}, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", node, js)
		if err != nil {
			t.Fatal(err)
		}
		listed := slices.Contains(s.tools(t), "trigger-elicitation-request")
		if listed != allow {
			t.Fatalf("allow_elicitation = %v: trigger-elicitation-request listed = %v", allow, listed)
		}
		if allow {
			if _, _, err := s.call(t, "trigger-elicitation-request", map[string]any{}); err != nil || user.asked.Load() != 1 {
				t.Errorf("elicitation through the relay: %v (asked %d)", err, user.asked.Load())
			}
		}
		s.exit(t)
	}
	if rows := rowsOf(auditRows(t, dataDir), "elicitation/create", ""); len(rows) != 2 || rows[1]["outcome"] != "ok" {
		t.Errorf("elicitation rows = %v", rows)
	}
}
