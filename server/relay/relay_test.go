package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/server/relay"
	"github.com/idmcp/idmcp/store/audit"
)

// These tests run the relay in-process against a real mcp-go server on
// io.Pipes: the built binary with a real child process is covered by
// cmd/idmcp's TestWrap_* tests; here the point is hostile and concurrent
// input at a rate a process per case could not reach (and fuzzing).

type allowGate struct{ deny atomic.Bool }

func (g *allowGate) Check(_ context.Context, raw json.RawMessage) (*auth.Principal, error) {
	if g.deny.Load() {
		return nil, auth.Unauthenticated("no credential")
	}
	return &auth.Principal{Subject: "alice", ClientID: "host", Scopes: []string{"demo:read"}}, nil
}

var _ relay.Gate = (*allowGate)(nil)

type memAudit struct {
	mu   sync.Mutex
	rows []audit.Event
	fail atomic.Bool
}

func (m *memAudit) Append(_ context.Context, ev audit.Event) error {
	if m.fail.Load() {
		return audit.ErrUnavailable
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, ev)
	return nil
}

func (m *memAudit) events(kind, tool string) []audit.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.Event
	for _, r := range m.rows {
		if r.Event == kind && (tool == "" || r.Tool == tool) {
			out = append(out, r)
		}
	}
	return out
}

var _ relay.Auditor = (*memAudit)(nil)

// childServer is an mcp-go server with echo (slow when asked) and a
// counter of the calls it received.
func childServer(calls *atomic.Int64) relay.Starter {
	return func(ctx context.Context, _ int) (*relay.Process, error) {
		s := mcpserver.NewMCPServer("child", "1", mcpserver.WithToolCapabilities(true))
		s.AddTool(mcp.NewTool("echo", mcp.WithString("message")), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			calls.Add(1)
			if req.GetString("message", "") == "slow" {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(5 * time.Second):
				}
			}
			return mcp.NewToolResultText(req.GetString("message", "")), nil
		})
		s.AddTool(mcp.NewTool("secret_tool"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			calls.Add(1000)
			return mcp.NewToolResultText("ran"), nil
		})
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		cctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			err := mcpserver.NewStdioServer(s).Listen(cctx, inR, outW)
			_ = outW.Close()
			done <- err
		}()
		return &relay.Process{
			Stdin: inW, Stdout: outR, Pid: 1,
			Wait:      func() error { <-done; return nil },
			Terminate: func() error { cancel(); _ = inR.Close(); return nil },
			Kill:      func() error { cancel(); _ = inR.Close(); return nil },
		}, nil
	}
}

type harness struct {
	t     *testing.T
	in    *io.PipeWriter
	out   *bufio.Scanner
	audit *memAudit
	gate  *allowGate
	calls *atomic.Int64
	done  chan error
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, audit: &memAudit{}, gate: &allowGate{}, calls: &atomic.Int64{}, done: make(chan error, 1)}
	r, err := relay.New(relay.Config{
		Gate: h.gate, Audit: h.audit, Start: childServer(h.calls), Command: "child", ShutdownGrace: time.Second,
		Rules: &auth.WrapPolicy{Tools: []auth.WrapRule{{Pattern: "echo", Requirement: auth.Requirement{Scopes: []string{"demo:read"}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h.in = inW
	h.out = bufio.NewScanner(outR)
	h.out.Buffer(nil, 1<<20)
	go func() { h.done <- r.Serve(context.Background(), inR, outW); _ = outW.Close() }()
	t.Cleanup(func() {
		_ = inW.Close()
		go func() {
			for h.out.Scan() {
			}
		}()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			t.Error("relay did not stop")
		}
	})
	return h
}

func (h *harness) send(msg string) {
	h.t.Helper()
	if _, err := io.WriteString(h.in, msg+"\n"); err != nil {
		h.t.Fatal(err)
	}
}

type resp struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// next returns the next response (skipping notifications).
func (h *harness) next() resp {
	h.t.Helper()
	for h.out.Scan() {
		var r resp
		if err := json.Unmarshal(h.out.Bytes(), &r); err != nil {
			h.t.Fatalf("relay wrote invalid JSON: %q", h.out.Text())
		}
		if r.Method == "" {
			return r
		}
	}
	h.t.Fatal("relay closed its output")
	return resp{}
}

const initLine = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"experimental":{"io.idmcp/auth":{"token":"t"}}},"clientInfo":{"name":"c","version":"1"}}}`

func TestRelay_ConcurrentCallsKeepTheirIDs(t *testing.T) {
	h := newHarness(t)
	h.send(initLine)
	if r := h.next(); r.Error != nil {
		t.Fatal(r.Error.Message)
	}
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// String and number ids, both of which the host may use.
			id := fmt.Sprintf("%d", i+1)
			if i%2 == 0 {
				id = fmt.Sprintf("%q", fmt.Sprintf("s-%d", i))
			}
			_, _ = io.WriteString(h.in, fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m%d"}}}`+"\n", id, i))
		}()
	}
	seen := map[string]bool{}
	for range n {
		r := h.next()
		if r.Error != nil {
			t.Fatalf("call %s: %s", r.ID, r.Error.Message)
		}
		var res struct {
			Content []struct{ Text string } `json:"content"`
		}
		_ = json.Unmarshal(r.Result, &res)
		want := "m" + strings.Trim(strings.TrimPrefix(strings.Trim(string(r.ID), `"`), "s-"), `"`)
		if len(res.Content) != 1 {
			t.Fatalf("id %s: result %s", r.ID, r.Result)
		}
		if !strings.HasPrefix(string(r.ID), `"`) {
			var k int
			_ = json.Unmarshal(r.ID, &k)
			want = fmt.Sprintf("m%d", k-1)
		}
		if res.Content[0].Text != want {
			t.Errorf("id %s answered with %q, want %q", r.ID, res.Content[0].Text, want)
		}
		seen[string(r.ID)] = true
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d distinct ids answered, want %d", len(seen), n)
	}
	if got := len(h.audit.events(audit.EventToolsCall, "echo")); got != 2*n {
		t.Errorf("%d echo rows, want %d (intent + outcome per call)", got, 2*n)
	}
}

func TestRelay_AuditDownRefusesBeforeTheChild(t *testing.T) {
	h := newHarness(t)
	h.send(initLine)
	h.next()
	h.audit.fail.Store(true)
	h.send(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}`)
	r := h.next()
	if r.Error == nil || !strings.Contains(r.Error.Message, "audit log unavailable") {
		t.Fatalf("response %+v, want a refusal", r)
	}
	if n := h.calls.Load(); n != 0 {
		t.Errorf("the child ran %d calls while the audit log was down", n)
	}
}

func TestRelay_UnauthenticatedNeverStartsTheChild(t *testing.T) {
	h := newHarness(t)
	h.gate.deny.Store(true)
	h.send(initLine)
	if r := h.next(); r.Error == nil || r.Error.Code != -32600 || !strings.Contains(r.Error.Message, "authentication failed") {
		t.Fatalf("response %+v", r)
	}
	h.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	h.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secret_tool"}}`)
	h.next()
	if n := len(h.audit.events(relay.EventChildStart, "")); n != 0 {
		t.Errorf("%d child starts for an unauthenticated host", n)
	}
}

func TestRelay_HiddenToolRefused(t *testing.T) {
	h := newHarness(t)
	h.send(initLine)
	h.next()
	h.send(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	r := h.next()
	if strings.Contains(string(r.Result), "secret_tool") || !strings.Contains(string(r.Result), "echo") {
		t.Errorf("tools/list = %s", r.Result)
	}
	h.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"secret_tool"}}`)
	if r := h.next(); r.Error == nil || r.Error.Message != "tool not found" {
		t.Errorf("secret_tool: %+v", r)
	}
	h.send(`{"jsonrpc":"2.0","id":4,"method":"sampling/createMessage","params":{}}`)
	if r := h.next(); r.Error == nil || r.Error.Code != -32601 {
		t.Errorf("an unknown method from the host: %+v, want method not found", r)
	}
	if n := h.calls.Load(); n != 0 {
		t.Errorf("child ran %d", n)
	}
}

func TestRelay_CancelFollowsTheIDMap(t *testing.T) {
	h := newHarness(t)
	h.send(initLine)
	h.next()
	h.send(`{"jsonrpc":"2.0","id":"slow-1","method":"tools/call","params":{"name":"echo","arguments":{"message":"slow"}}}`)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	h.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow-1","reason":"user"}}`)
	// mcp-go answers a cancelled call with nothing; the next call proves
	// the child is free again well before the slow one's 5 s.
	h.send(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"after"}}}`)
	r := h.next()
	for string(r.ID) != "9" {
		r = h.next()
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("cancellation did not reach the child")
	}
}

// FuzzRelay_HostLines: any bytes from the host give valid JSON-RPC lines
// back and never panic the relay.
func FuzzRelay_HostLines(f *testing.F) {
	f.Add([]byte(initLine + "\n" + `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}` + "\n" + `{"method":"notifications/cancelled","params":{"requestId":null}}`))
	f.Add([]byte("\x00\xff{\n[]\nnull\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		calls := &atomic.Int64{}
		r, err := relay.New(relay.Config{Gate: &allowGate{}, Audit: &memAudit{}, Start: childServer(calls), ShutdownGrace: 100 * time.Millisecond,
			Rules: &auth.WrapPolicy{Tools: []auth.WrapRule{{Pattern: "*"}}}})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		var mu sync.Mutex
		w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Serve(ctx, bytes.NewReader(in), w)
		mu.Lock()
		defer mu.Unlock()
		for _, line := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
			if len(line) > 0 && !json.Valid(line) {
				t.Fatalf("invalid JSON out: %q", line)
			}
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
