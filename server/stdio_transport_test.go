package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

const hostSecret = "idmcp_transporttestsecret0123456789"

// wire is a stdio server on in-memory pipes, driven line by line.
type wire struct {
	t     *testing.T
	in    *io.PipeWriter
	lines chan string
	done  chan error
	audit string
}

func startWire(t *testing.T, extra []tools.Spec, tune func(*server.StdioConfig)) *wire {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	path := filepath.Join(t.TempDir(), store.AuditDBName)
	alog, err := audit.Open(ctx, audit.Config{Path: path, Sync: store.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	specs := append([]tools.Spec{tools.Whoami(func() tools.ServerInfo { return tools.ServerInfo{Name: "idmcp"} })}, extra...)
	authz, err := tools.NewAuthorizer(specs)
	if err != nil {
		t.Fatal(err)
	}
	host, err := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{
		ProfileName: "laptop", Profile: &auth.HostProfile{Name: "laptop"}, Secret: []byte(hostSecret), SecretSource: "test", Human: "tester",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.StdioConfig{Config: server.Config{Version: "test", Tools: specs, Authorizer: authz, Audit: alog}, Host: host}
	if tune != nil {
		tune(&cfg)
	}
	srv, err := server.NewStdio(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	w := &wire{t: t, in: inW, lines: make(chan string, 1024), done: make(chan error, 1), audit: path}
	go func() { w.done <- srv.Listen(ctx, inR, outW); _ = outW.Close() }()
	go func() {
		br := bufio.NewReader(outR)
		for {
			l, err := br.ReadString('\n')
			if l != "" {
				w.lines <- l
			}
			if err != nil {
				close(w.lines)
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = inW.Close()
		cancel()
		select {
		case <-w.done:
		case <-time.After(20 * time.Second):
			t.Error("stdio server did not stop")
		}
		_ = alog.Close(context.Background())
	})
	return w
}

func (w *wire) send(line string) {
	w.t.Helper()
	if _, err := w.in.Write([]byte(line + "\n")); err != nil {
		w.t.Fatal(err)
	}
}

// next returns the next line the server wrote, decoded.
func (w *wire) next() map[string]any {
	w.t.Helper()
	select {
	case l, ok := <-w.lines:
		if !ok {
			w.t.Fatal("server closed stdout")
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			w.t.Fatalf("line %q: %v", l, err)
		}
		m["_line"] = l
		return m
	case <-time.After(10 * time.Second):
		w.t.Fatal("no line from the server")
	}
	return nil
}

func legacyInitLine(id string, caps string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":` + caps +
		`,"clientInfo":{"name":"wire","version":"1"}}}`
}

const authCaps = `{"sampling":{},"roots":{},"experimental":{"io.idmcp/auth":{"token":"` + hostSecret + `"}}}`

func toolText(t *testing.T, m map[string]any) string {
	t.Helper()
	res, _ := m["result"].(map[string]any)
	content, _ := res["content"].([]any)
	if len(content) == 0 {
		t.Fatalf("no content in %s", m["_line"])
	}
	c, _ := content[0].(map[string]any)
	return c["text"].(string)
}

// TestStdio_ServerInitiatedRequests: a tool asks the client for sampling and
// for its roots; the requests go out on stdout, the client's answers come
// back on stdin and are routed to the waiting tool, also an error answer.
func TestStdio_ServerInitiatedRequests(t *testing.T) {
	ask := tools.Spec{Name: "ask", Description: "asks the client", InputSchema: json.RawMessage(`{"type":"object"}`),
		Handler: func(ctx context.Context, _ *auth.Principal, _ json.RawMessage) (*tools.Result, error) {
			s := mcpserver.ServerFromContext(ctx)
			res, err := s.RequestSampling(ctx, mcp.CreateMessageRequest{CreateMessageParams: mcp.CreateMessageParams{
				Messages: []mcp.SamplingMessage{{Role: mcp.RoleUser, Content: mcp.NewTextContent("6*7?")}}, MaxTokens: 5}})
			if err != nil {
				return &tools.Result{Text: "sampling failed: " + err.Error()}, nil
			}
			roots, err := s.RequestRoots(ctx, mcp.ListRootsRequest{})
			if err != nil {
				return &tools.Result{Text: "roots failed: " + err.Error()}, nil
			}
			return &tools.Result{Text: res.Content.(mcp.TextContent).Text + " " + roots.Roots[0].URI}, nil
		}}
	w := startWire(t, []tools.Spec{ask}, nil)
	w.send(legacyInitLine("1", authCaps))
	if m := w.next(); m["error"] != nil {
		t.Fatalf("initialize: %s", m["_line"])
	}
	w.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	w.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ask","arguments":{}}}`)
	req := w.next()
	if req["method"] != "sampling/createMessage" {
		t.Fatalf("want a sampling request, got %s", req["_line"])
	}
	id, _ := json.Marshal(req["id"])
	w.send(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"role":"assistant","content":{"type":"text","text":"42"},"model":"m"}}`)
	req = w.next()
	if req["method"] != "roots/list" {
		t.Fatalf("want a roots request, got %s", req["_line"])
	}
	id, _ = json.Marshal(req["id"])
	// A second answer to an id nobody waits for any more is dropped.
	w.send(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"roots":[{"uri":"file:///work","name":"work"}]}}`)
	w.send(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"roots":[]}}`)
	if m := w.next(); toolText(t, m) != "42 file:///work" || m["id"] != 2.0 {
		t.Fatalf("tool answer %s, want the sampled text and the root", m["_line"])
	}

	// The client refuses sampling: the tool sees the client's error.
	w.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ask","arguments":{}}}`)
	req = w.next()
	id, _ = json.Marshal(req["id"])
	w.send(`{"jsonrpc":"2.0","id":` + string(id) + `,"error":{"code":-1,"message":"user declined"}}`)
	if m := w.next(); !strings.Contains(toolText(t, m), "sampling failed: sampling/createMessage request failed: user declined") {
		t.Fatalf("tool answer %s, want the client's refusal", m["_line"])
	}
}

// TestStdio_NotificationsReachClient: a notification mcp-go queues on the
// session (a log message from a tool) is written to stdout.
func TestStdio_NotificationsReachClient(t *testing.T) {
	logs := tools.Spec{Name: "logs", Description: "logs", InputSchema: json.RawMessage(`{"type":"object"}`),
		Handler: func(ctx context.Context, _ *auth.Principal, _ json.RawMessage) (*tools.Result, error) {
			n := mcp.NewLoggingMessageNotification(mcp.LoggingLevelError, "tool", "disk nearly full")
			if err := mcpserver.ServerFromContext(ctx).SendLogMessageToClient(ctx, n); err != nil {
				return nil, err
			}
			return &tools.Result{Text: "done"}, nil
		}}
	w := startWire(t, []tools.Spec{logs}, nil)
	w.send(legacyInitLine("1", authCaps))
	w.next()
	w.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	w.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"logs","arguments":{}}}`)
	// The notification and the answer are written by different goroutines:
	// either may come first.
	var sawLog, sawAnswer bool
	for range 2 {
		m := w.next()
		switch {
		case m["method"] == "notifications/message" && strings.Contains(m["_line"].(string), "disk nearly full"):
			sawLog = true
		case m["id"] == 2.0 && toolText(t, m) == "done":
			sawAnswer = true
		default:
			t.Fatalf("unexpected line %s", m["_line"])
		}
	}
	if !sawLog || !sawAnswer {
		t.Fatalf("log notification %v, answer %v; want both", sawLog, sawAnswer)
	}
}

// TestStdio_WireEdges: what a client can put on a line.
func TestStdio_WireEdges(t *testing.T) {
	w := startWire(t, nil, nil)
	// Not JSON: a parse error with a null id.
	w.send(`{"id":`)
	if m := w.next(); m["id"] != nil || m["error"].(map[string]any)["code"] != -32700.0 {
		t.Fatalf("garbage: %s", m["_line"])
	}
	// Blank lines and an answer to a request never sent get no reply; the
	// next reply is the refusal of the string-id request, its id echoed
	// byte for byte.
	w.send(``)
	w.send(`   `)
	w.send(`{"jsonrpc":"2.0","id":99,"result":{}}`)
	w.send(`{"jsonrpc":"2.0","id":"a\"b","method":"tools/list"}`)
	m := w.next()
	if !strings.Contains(m["_line"].(string), `"id":"a\"b"`) || !strings.HasPrefix(m["error"].(map[string]any)["message"].(string), "authentication failed: ") {
		t.Fatalf("string id refusal: %s", m["_line"])
	}
	// A batch is not MCP: mcp-go answers it with a parse error.
	w.send(`[{"jsonrpc":"2.0","id":5,"method":"ping"}]`)
	if m := w.next(); m["error"] == nil {
		t.Fatalf("batch: %s", m["_line"])
	}
	// Authenticated, a big id survives exactly (mcp-go's float64 would round it).
	w.send(legacyInitLine("12345678901234567890", authCaps))
	if m := w.next(); !strings.Contains(m["_line"].(string), `"id":12345678901234567890`) || m["error"] != nil {
		t.Fatalf("initialize with a big id: %s", m["_line"])
	}
}

// TestStdio_LineTooLong: an oversized line ends the session with
// ErrLineTooLong after the requests before it are answered.
func TestStdio_LineTooLong(t *testing.T) {
	w := startWire(t, nil, func(c *server.StdioConfig) { c.MaxLineBytes = 1024 })
	w.send(legacyInitLine("1", authCaps))
	if m := w.next(); m["error"] != nil {
		t.Fatal(m["_line"])
	}
	go w.send(`{"jsonrpc":"2.0","id":2,"method":"ping","params":{"pad":"` + strings.Repeat("x", 2048) + `"}}`)
	select {
	case err := <-w.done:
		w.done <- err // for the cleanup
		if !errors.Is(err, server.ErrLineTooLong) {
			t.Fatalf("Listen returned %v, want ErrLineTooLong", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return on an oversized line")
	}
}

// TestStdio_ShutdownCancelsAtDeadline: with ctx cancelled (a signal) and a
// call that honours cancellation in flight, Listen waits ShutdownTimeout,
// cancels it with the shutdown as the cause, writes its answer, and reports
// ErrShutdownDeadline; the call's row says it was cancelled.
func TestStdio_ShutdownCancelsAtDeadline(t *testing.T) {
	started := make(chan struct{})
	wait := tools.Spec{Name: "wait", Description: "waits", InputSchema: json.RawMessage(`{"type":"object"}`),
		Handler: func(ctx context.Context, _ *auth.Principal, _ json.RawMessage) (*tools.Result, error) {
			close(started)
			<-ctx.Done()
			return nil, context.Cause(ctx)
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), store.AuditDBName)
	alog, err := audit.Open(ctx, audit.Config{Path: path, Sync: store.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	defer alog.Close(context.Background())
	specs := []tools.Spec{wait}
	authz, _ := tools.NewAuthorizer(specs)
	host, _ := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{ProfileName: "laptop", Profile: &auth.HostProfile{Name: "laptop"}, Secret: []byte(hostSecret), Human: "tester"})
	srv, err := server.NewStdio(server.StdioConfig{Config: server.Config{Tools: specs, Authorizer: authz, Audit: alog}, Host: host,
		EnvToken: hostSecret, ShutdownTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	defer inW.Close()
	done := make(chan error, 1)
	go func() { done <- srv.Listen(ctx, inR, outW); _ = outW.Close() }()
	go func() {
		_, _ = inW.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"wait","arguments":{}}}` + "\n"))
	}()
	<-started
	cancel()
	out, _ := io.ReadAll(outR)
	if err := <-done; !errors.Is(err, server.ErrShutdownDeadline) {
		t.Fatalf("Listen: %v, want ErrShutdownDeadline", err)
	}
	if !strings.Contains(string(out), `tool \"wait\" was cancelled: server shutting down`) {
		t.Fatalf("answer %s, want the cancellation", out)
	}
	r, err := audit.OpenReader(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, err := r.Query(context.Background(), audit.Filter{Event: audit.EventToolsCall})
	// The intent row (wait is not read-only), then the cancelled outcome.
	if err != nil || len(rows) != 2 || rows[0].Outcome != audit.Started || rows[1].IntentID != rows[0].ID ||
		!strings.HasPrefix(rows[1].Reason, "allowed; cancelled: server shutting down") {
		t.Fatalf("rows %+v %v, want an intent and its cancelled outcome", rows, err)
	}
}

// TestStdio_HostileConcurrentLoad: 300 tools/call pipelined with garbage,
// stray responses and notifications between them, a third of them
// cancelled by the client (notifications/cancelled) while they wait, then
// EOF. Every request is answered exactly once, every call has exactly one
// row, and the cancelled ones say so.
func TestStdio_HostileConcurrentLoad(t *testing.T) {
	const n = 300
	wait := tools.Spec{Name: "wait", Description: "waits for cancellation, or returns at once with quick", InputSchema: json.RawMessage(`{"type":"object"}`),
		Handler: func(ctx context.Context, _ *auth.Principal, raw json.RawMessage) (*tools.Result, error) {
			var a struct{ Quick bool }
			_ = json.Unmarshal(raw, &a)
			if a.Quick {
				return &tools.Result{Text: "quick"}, nil
			}
			select {
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			case <-time.After(30 * time.Second):
				return &tools.Result{Text: "never cancelled"}, nil
			}
		}}
	w := startWire(t, []tools.Spec{wait}, func(c *server.StdioConfig) { c.EnvToken = hostSecret; c.Workers = 4 })
	var b strings.Builder
	for i := 1; i <= n; i++ {
		quick := i%3 != 0
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"wait","arguments":{"quick":%v}}}`+"\n", i, quick)
		switch i % 7 {
		case 0:
			b.WriteString("not json at all\n")
		case 1:
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"result":{}}`+"\n", 100000+i)
		case 2:
			b.WriteString(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}` + "\n")
		}
		if !quick {
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%d,"reason":"user"}}`+"\n", i)
		}
	}
	go func() {
		_, _ = w.in.Write([]byte(b.String()))
		_ = w.in.Close()
	}()
	answers := map[float64]int{}
	parseErrors := 0
	for l := range w.lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		id, ok := m["id"].(float64)
		if !ok {
			parseErrors++
			continue
		}
		answers[id]++
	}
	select {
	case err := <-w.done:
		w.done <- err
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Listen did not return after EOF")
	}
	for i := 1; i <= n; i++ {
		if answers[float64(i)] != 1 {
			t.Errorf("id %d answered %d times", i, answers[float64(i)])
		}
	}
	if len(answers) != n || parseErrors != n/7 {
		t.Errorf("%d ids answered, %d parse errors; want %d and %d", len(answers), parseErrors, n, n/7)
	}
	r, err := audit.OpenReader(context.Background(), w.audit)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, err := r.Query(context.Background(), audit.Filter{Event: audit.EventToolsCall, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	cancelled := 0
	for _, row := range rows {
		// Running when cancelled: the tool's own row; still queued for a
		// worker: the transport's (mcp-go alone would not have seen it).
		if strings.HasPrefix(row.Reason, "allowed; cancelled: cancelled by the client") || strings.HasPrefix(row.Reason, "not run; cancelled: cancelled before it started: cancelled by the client") {
			cancelled++
		}
	}
	// One outcome row per call; a call that reached its tool also has its
	// write-ahead intent row, and every intent has its outcome.
	outcomes, unfinished := 0, 0
	for _, row := range rows {
		if row.Outcome != audit.Started {
			outcomes++
		} else if row.Unfinished {
			unfinished++
		}
	}
	if outcomes != n || cancelled != n/3 || unfinished != 0 {
		t.Fatalf("%d outcome rows (%d rows), %d cancelled, %d unfinished intents; want %d, %d cancelled, 0 unfinished", outcomes, len(rows), cancelled, unfinished, n, n/3)
	}
}
