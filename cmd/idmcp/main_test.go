package main_test

import (
	"slices"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// binPath is the idmcp binary built once for every integration test.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "idmcp-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "idmcp")
	if runtime.GOOS == "windows" {
		binPath += ".exe"
	}
	cmd := exec.Command("go", "build", "-o", binPath, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build idmcp:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// cleanEnv is the environment for the binary: the test's, without any idmcp
// variable that could leak in from the developer's shell.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "IDMCP_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// runIdmcp runs the binary to completion and returns stdout, stderr and the
// exit code.
func runIdmcp(t testing.TB, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = cleanEnv(env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run idmcp %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustIdmcp runs the binary and fails the test on a non-zero exit.
func mustIdmcp(t testing.TB, env []string, args ...string) string {
	t.Helper()
	out, errOut, code := runIdmcp(t, env, args...)
	if code != 0 {
		t.Fatalf("idmcp %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// tokenFromHostAdd extracts the token `idmcp host add|rotate` prints.
func tokenFromHostAdd(t testing.TB, out string) string {
	t.Helper()
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "idmcp_") && len(f) > 40 {
			return f
		}
	}
	t.Fatalf("no token in host add output:\n%s", out)
	return ""
}

// lockedBuffer is a bytes.Buffer safe for a process's writer goroutine and
// the test reading it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rawServer is `idmcp serve` driven with raw JSON-RPC lines, for tests that
// need byte-level control of what a client sends.
type rawServer struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *lockedBuffer
	nextID int
}

// startRaw starts `idmcp serve` with args and env.
func startRaw(t testing.TB, env []string, args ...string) *rawServer {
	t.Helper()
	return startRawBin(t, binPath, env, args...)
}

// startRawBin starts `bin serve` (the product binary or a test build of it)
// with args and env.
func startRawBin(t testing.TB, bin string, env []string, args ...string) *rawServer {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = cleanEnv(env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{t: t, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), stderr: &lockedBuffer{}}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Close ends stdin and waits (bounded) for the server to exit.
func (s *rawServer) Close() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.stdin.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// rpcResponse is a JSON-RPC response.
type rpcResponse struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// call sends one request and returns its response (bounded wait).
func (s *rawServer) call(method string, params any) rpcResponse {
	s.t.Helper()
	s.nextID++
	msg := map[string]any{"jsonrpc": "2.0", "id": s.nextID, "method": method}
	if params != nil {
		msg["params"] = params
	}
	b, _ := json.Marshal(msg)
	if _, err := s.stdin.Write(append(b, '\n')); err != nil {
		s.t.Fatalf("write %s: %v (stderr: %s)", method, err, s.stderr.String())
	}
	type lineErr struct {
		line []byte
		err  error
	}
	ch := make(chan lineErr, 1)
	go func() {
		for {
			line, err := s.out.ReadBytes('\n')
			if err != nil {
				ch <- lineErr{nil, err}
				return
			}
			var probe struct {
				ID json.RawMessage `json:"id"`
			}
			// Skip notifications the server may send.
			if json.Unmarshal(line, &probe) == nil && len(probe.ID) > 0 {
				ch <- lineErr{line, nil}
				return
			}
		}
	}()
	select {
	case le := <-ch:
		if le.err != nil {
			s.t.Fatalf("read response to %s: %v (stderr: %s)", method, le.err, s.stderr.String())
		}
		var r rpcResponse
		if err := json.Unmarshal(le.line, &r); err != nil {
			s.t.Fatalf("bad response line %q: %v", le.line, err)
		}
		if string(r.ID) != fmt.Sprint(s.nextID) {
			s.t.Fatalf("response id %s, want %d", r.ID, s.nextID)
		}
		return r
	case <-time.After(20 * time.Second):
		s.t.Fatalf("no response to %s within 20s (stderr: %s)", method, s.stderr.String())
	}
	return rpcResponse{}
}

// notify sends a notification (no response).
func (s *rawServer) notify(method string) {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method})
	_, _ = s.stdin.Write(append(b, '\n'))
}

// Protocol versions of the two eras.
const (
	legacyVersion = "2025-11-25"
	modernVersion = "2026-07-28"
)

// authCaps returns client capabilities carrying token (none when empty).
func authCaps(token string) map[string]any {
	if token == "" {
		return map[string]any{}
	}
	return map[string]any{"experimental": map[string]any{"io.idmcp/auth": map[string]any{"token": token}}}
}

// modernMeta is the _meta a 2026-07-28 client puts on every request.
func modernMeta(token string) map[string]any {
	return map[string]any{
		"io.modelcontextprotocol/protocolVersion":    modernVersion,
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "raw-test", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": authCaps(token),
	}
}

// legacyInit is a 2025-11-25 initialize's params.
func legacyInit(token string) map[string]any {
	return map[string]any{
		"protocolVersion": legacyVersion,
		"capabilities":    authCaps(token),
		"clientInfo":      map[string]any{"name": "raw-test", "version": "1"},
	}
}

// auditRows returns every audit row of dataDir through `idmcp audit query
// --json`, with arguments (a JSON value there) re-encoded as JSON text
// (keys sorted, as stored; numbers through float64), so tests can search it
// as a string.
func auditRows(t testing.TB, dataDir string, extra ...string) []map[string]any {
	t.Helper()
	out := mustIdmcp(t, nil, append([]string{"audit", "query", "--json", "--data-dir", dataDir}, extra...)...)
	var rows []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit query --json line %q: %v", line, err)
		}
		if args, ok := m["arguments"]; ok {
			text, err := json.Marshal(args)
			if err != nil {
				t.Fatal(err)
			}
			m["arguments"] = string(text)
		}
		rows = append(rows, m)
	}
	return rows
}

// listToolNames returns the sorted names of the tools c's tools/list shows.
func listToolNames(t *testing.T, c *client.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lt, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range lt.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}
