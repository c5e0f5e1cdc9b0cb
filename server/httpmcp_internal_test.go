package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

// oneVerifier accepts one token; the transport tests never reach it.
type oneVerifier struct{ p *auth.Principal }

func (v oneVerifier) Verify(context.Context, string) (*auth.Principal, error) { return v.p, nil }
func (v oneVerifier) Ready() bool                                             { return true }

// MustTransport builds an HTTP transport with an echo tool and a tool that
// sends a notification before it answers, on a real audit log.
func MustTransport(t *testing.T) (*HTTP, *auth.Principal) {
	h, p, _ := MustTransportAudit(t)
	return h, p
}

// MustTransportAudit is MustTransport with the extra tools, also returning
// the audit log's path.
func MustTransportAudit(t *testing.T, extra ...tools.Spec) (*HTTP, *auth.Principal, string) {
	t.Helper()
	ctx := context.Background()
	auditPath := filepath.Join(t.TempDir(), "audit.db")
	alog, err := audit.Open(ctx, audit.Config{Path: auditPath, Sync: store.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close(context.Background()) })
	schema := json.RawMessage(`{"type":"object","properties":{"message":{"type":"string"}}}`)
	specs := []tools.Spec{
		{Name: "echo", Description: "Echo.", InputSchema: schema, Scopes: []string{"t:echo"},
			Handler: func(_ context.Context, _ *auth.Principal, args json.RawMessage) (*tools.Result, error) {
				var in struct{ Message string }
				if err := json.Unmarshal(args, &in); err != nil {
					return nil, err
				}
				return &tools.Result{Text: in.Message}, nil
			}},
		{Name: "chatty", Description: "Notifies, then answers.", InputSchema: schema, Scopes: []string{"t:echo"},
			Handler: func(ctx context.Context, _ *auth.Principal, _ json.RawMessage) (*tools.Result, error) {
				s := mcpserver.ServerFromContext(ctx)
				if s == nil {
					return nil, errors.New("no server in context")
				}
				if err := s.SendNotificationToClient(ctx, "notifications/message", map[string]any{"level": "info", "data": "working"}); err != nil {
					return nil, err
				}
				return &tools.Result{Text: "done"}, nil
			}},
	}
	specs = append(specs, extra...)
	authz, err := tools.NewAuthorizer(specs)
	if err != nil {
		t.Fatal(err)
	}
	p := &auth.Principal{Subject: "s", ClientID: "c", Scopes: []string{"t:echo"}, Method: auth.MethodJWT, Transport: "http", Issuer: "https://issuer.test"}
	h, err := NewHTTP(HTTPConfig{
		Config:               Config{Version: "test", Tools: specs, Authorizer: authz, Audit: alog},
		Verifier:             oneVerifier{p},
		Resource:             "http://127.0.0.1:1/mcp",
		AuthorizationServers: []string{"https://issuer.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, p, auditPath
}

// TestServeTransport_SameAsMCPGo sends each request to serveTransport and to
// mcp-go's StreamableHTTPServer (configured as idmcp configured it before it
// served the endpoint itself) on the same MCPServer, and compares the status,
// the headers a client reads, and the body byte for byte.
func TestServeTransport_SameAsMCPGo(t *testing.T) {
	h, p := MustTransport(t)
	ref := mcpserver.NewStreamableHTTPServer(h.srv,
		mcpserver.WithStateLess(true), mcpserver.WithDisableStreaming(true), mcpserver.WithDisableLocalhostProtection(true))

	modernMeta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}`
	modernHdr := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
	legacyHdr := map[string]string{"Mcp-Protocol-Version": "2025-11-25"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
				continue
			}
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	call := func(tool, meta string) string {
		if meta != "" {
			meta = "," + meta
		}
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"message":"hi"}` + meta + `}}`
	}
	tests := []struct {
		name, method, body string
		hdr                map[string]string
		wantStatus         int
	}{
		{"LegacyInitialize", "POST", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, nil, 200},
		{"LegacyInitializeBadHeaderVersion", "POST", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, with(legacyHdr, "Mcp-Protocol-Version", "1999-01-01"), 200},
		{"LegacyList", "POST", `{"jsonrpc":"2.0","id":"a","method":"tools/list"}`, legacyHdr, 200},
		{"LegacyCall", "POST", call("echo", ""), legacyHdr, 200},
		{"LegacyCallSessionID", "POST", call("echo", ""), with(legacyHdr, "Mcp-Session-Id", "mcp-session-x"), 200},
		{"LegacyCallNoHeader", "POST", call("echo", ""), nil, 200},
		{"LegacyUnknownTool", "POST", call("nope", ""), legacyHdr, 200},
		{"LegacyPing", "POST", `{"jsonrpc":"2.0","id":2,"method":"ping"}`, legacyHdr, 200},
		{"LegacyUnknownMethod", "POST", `{"jsonrpc":"2.0","id":2,"method":"nope/nope"}`, legacyHdr, 200},
		{"LegacyBadVersionHeader", "POST", call("echo", ""), with(legacyHdr, "Mcp-Protocol-Version", "1999-01-01"), 400},
		{"JSONRPC1", "POST", `{"jsonrpc":"1.0","id":2,"method":"ping"}`, legacyHdr, 200},
		{"NameNotAString", "POST", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":5}}`, legacyHdr, 200},
		{"Notification", "POST", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, legacyHdr, 202},
		{"NullID", "POST", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, legacyHdr, 202},
		{"PingResponse", "POST", `{"jsonrpc":"2.0","id":1,"result":{}}`, legacyHdr, 202},
		{"EmptyResponse", "POST", `{"jsonrpc":"2.0","id":1}`, legacyHdr, 202},
		{"ClientResponseNoSession", "POST", `{"jsonrpc":"2.0","id":1,"result":{"x":1}}`, legacyHdr, 400},
		{"ClientResponseBadID", "POST", `{"jsonrpc":"2.0","id":"x","result":{"x":1}}`, with(legacyHdr, "Mcp-Session-Id", "s1"), 400},
		{"ClientResponseNoSuchSession", "POST", `{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}`, with(legacyHdr, "Mcp-Session-Id", "s1"), 404},
		{"ClientResponseModern", "POST", `{"jsonrpc":"2.0","id":1,"result":{"x":1}}`, with(modernHdr, "Mcp-Method", ""), 400},
		{"ContentTypeText", "POST", call("echo", ""), with(legacyHdr, "Content-Type", "text/plain"), 400},
		{"ContentTypeCharset", "POST", call("echo", ""), with(legacyHdr, "Content-Type", "application/json; charset=utf-8"), 200},
		{"NotJSON", "POST", `{"jsonrpc":`, legacyHdr, 400},
		{"Batch", "POST", `[` + call("echo", "") + `]`, legacyHdr, 400},
		{"MethodNotAString", "POST", `{"jsonrpc":"2.0","id":1,"method":5}`, legacyHdr, 400},
		{"ModernCall", "POST", call("echo", modernMeta), modernHdr, 200},
		{"ModernUnknownTool", "POST", call("nope", modernMeta), with(modernHdr, "Mcp-Name", "nope"), 400},
		{"ModernNoMethodHeader", "POST", call("echo", modernMeta), with(modernHdr, "Mcp-Method", ""), 400},
		{"ModernMethodMismatch", "POST", call("echo", modernMeta), with(modernHdr, "Mcp-Method", "tools/list"), 400},
		{"ModernNoNameHeader", "POST", call("echo", modernMeta), with(modernHdr, "Mcp-Name", ""), 400},
		{"ModernNameMismatch", "POST", call("echo", modernMeta), with(modernHdr, "Mcp-Name", "chatty"), 400},
		{"ModernNoVersionHeader", "POST", call("echo", modernMeta), with(modernHdr, "Mcp-Protocol-Version", ""), 400},
		{"ModernVersionMismatch", "POST", call("echo", modernMeta), with(modernHdr, "Mcp-Protocol-Version", "2099-01-01"), 400},
		{"ModernHeaderOnly", "POST", call("echo", ""), modernHdr, 400},
		{"ModernLastEventID", "POST", call("echo", modernMeta), with(modernHdr, "Last-Event-ID", "1"), 400},
		{"ModernUnknownVersion", "POST", call("echo", strings.ReplaceAll(modernMeta, "2026-07-28", "2099-01-01")), with(modernHdr, "Mcp-Protocol-Version", "2099-01-01"), 400},
		{"ModernNoCapabilities", "POST", call("echo", `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}`), with(modernHdr, "Mcp-Name", ""), 400},
		{"ModernCapabilitiesNotObject", "POST", call("echo", `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":"x"}`), modernHdr, 400},
		{"ModernKeyCase", "POST", call("echo", `"_meta":{"IO.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`), legacyHdr, 200},
		{"ModernInitialize", "POST", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{` + modernMeta + `}}`, with(modernHdr, "Mcp-Method", "initialize", "Mcp-Name", ""), 404},
		{"ModernList", "POST", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + modernMeta + `}}`, with(modernHdr, "Mcp-Method", "tools/list", "Mcp-Name", ""), 200},
		{"ModernDiscover", "POST", `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{` + modernMeta + `}}`, with(modernHdr, "Mcp-Method", "server/discover", "Mcp-Name", ""), 200},
		{"ModernNotification", "POST", `{"jsonrpc":"2.0","method":"notifications/initialized","params":{` + modernMeta + `}}`, with(modernHdr, "Mcp-Method", "", "Mcp-Name", ""), 202},
		{"LegacyNotificationSSE", "POST", call("chatty", ""), legacyHdr, 200},
		{"ModernNotificationSSE", "POST", call("chatty", modernMeta), with(modernHdr, "Mcp-Name", "chatty"), 200},
		{"GetLegacy", "GET", "", legacyHdr, 405},
		{"GetModern", "GET", "", modernHdr, 405},
		{"GetBadVersion", "GET", "", with(legacyHdr, "Mcp-Protocol-Version", "1999-01-01"), 400},
		{"DeleteLegacy", "DELETE", "", with(legacyHdr, "Mcp-Session-Id", "s1"), 200},
		{"DeleteModern", "DELETE", "", modernHdr, 405},
		{"DeleteBadVersion", "DELETE", "", with(legacyHdr, "Mcp-Protocol-Version", "1999-01-01"), 400},
		{"Head", "HEAD", "", nil, 200},
		{"Put", "PUT", "{}", nil, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := func() *http.Request {
				r := httptest.NewRequest(tc.method, "http://127.0.0.1:1/mcp", strings.NewReader(tc.body))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Accept", "application/json, text/event-stream")
				for k, v := range tc.hdr {
					r.Header.Set(k, v)
				}
				return r.WithContext(auth.WithPrincipal(r.Context(), p))
			}
			got, want := httptest.NewRecorder(), httptest.NewRecorder()
			m := &message{}
			if tc.method == http.MethodPost {
				m = parseMessage([]byte(tc.body))
			}
			h.serveTransport(got, req(), m)
			ref.ServeHTTP(want, req())
			if got.Code != want.Code || got.Code != tc.wantStatus {
				t.Fatalf("status %d, mcp-go %d, want %d\nbody %s\nmcp-go %s", got.Code, want.Code, tc.wantStatus, got.Body, want.Body)
			}
			for _, k := range []string{"Content-Type", "Allow", "Cache-Control", "X-Content-Type-Options", "Mcp-Session-Id", "Connection"} {
				if g, w := got.Header().Get(k), want.Header().Get(k); g != w {
					t.Errorf("header %s = %q, mcp-go %q", k, g, w)
				}
			}
			if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
				t.Fatalf("body\n%s\nmcp-go\n%s", got.Body, want.Body)
			}
		})
	}
}

// TestServeTransport_NotificationsBecomeSSE checks the one behaviour that
// differs from mcp-go in timing only: a handler's notifications arrive, in
// order, before the response on an SSE answer.
func TestServeTransport_NotificationsBecomeSSE(t *testing.T) {
	h, p := MustTransport(t)
	body := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"chatty","arguments":{}}}`
	r := httptest.NewRequest("POST", "http://127.0.0.1:1/mcp", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.serveTransport(w, r.WithContext(auth.WithPrincipal(r.Context(), p)), parseMessage([]byte(body)))
	if got, want := w.Header().Get("Content-Type"), "text/event-stream"; got != want {
		t.Fatalf("Content-Type %q, want %q", got, want)
	}
	events := strings.Split(strings.TrimSpace(w.Body.String()), "\n\n")
	if len(events) != 2 || !strings.Contains(events[0], `"method":"notifications/message"`) || !strings.Contains(events[1], `"id":9`) {
		t.Fatalf("events %q, want the notification then the response", events)
	}
	var resp struct {
		Result mcp.CallToolResult `json:"result"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(strings.SplitN(events[1], "\n", 2)[1], "data: ")), &resp); err != nil || resp.Result.IsError {
		t.Fatalf("response %q: %v", events[1], err)
	}
}

// TestServeTransport_AuditHashesWireBytes checks that a call's audit row
// hashes the result exactly as the client received it, in both eras (in
// 2026-07-28 mcp-go adds resultType and serverInfo after the handler).
func TestServeTransport_AuditHashesWireBytes(t *testing.T) {
	h, p, auditPath := MustTransportAudit(t)
	meta := `,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	for i, era := range []struct {
		name, meta string
		hdr        map[string]string
	}{
		{"Legacy", "", map[string]string{"Mcp-Protocol-Version": "2025-11-25"}},
		{"Modern", meta, map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"}},
	} {
		t.Run(era.name, func(t *testing.T) {
			body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"<b>&"}` + era.meta + `}}`
			r := httptest.NewRequest("POST", "http://127.0.0.1:1/mcp", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			for k, v := range era.hdr {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.serveTransport(w, r.WithContext(auth.WithPrincipal(r.Context(), p)), parseMessage([]byte(body)))
			var resp struct {
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || len(resp.Result) == 0 {
				t.Fatalf("HTTP %d %s: %v", w.Code, w.Body, err)
			}
			rd, err := audit.OpenReader(context.Background(), auditPath)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			rows, err := rd.Query(context.Background(), audit.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != i+1 {
				t.Fatalf("%d rows, want %d", len(rows), i+1)
			}
			sum := sha256.Sum256(resp.Result)
			row := rows[len(rows)-1]
			if got, want := row.ResultSHA256, hex.EncodeToString(sum[:]); got != want {
				t.Fatalf("result_sha256 %s, want %s (of %s)", got, want, resp.Result)
			}
			if got, want := row.ResultBytes, int64(len(resp.Result)); got != want {
				t.Fatalf("result_bytes %d, want %d", got, want)
			}
		})
	}
}

// TestServeTransport_CancelReachesOwnCallsOnly: notifications/cancelled from
// one caller must not cancel another caller's call that has the same JSON-RPC
// id (with mcp-go's stateless sessions it did: every session had the same ID),
// and still cancels the caller's own.
func TestServeTransport_CancelReachesOwnCallsOnly(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{}, 1)
	wait := tools.Spec{Name: "wait", Description: "Waits to be released.", Scopes: []string{"t:echo"},
		InputSchema: json.RawMessage(`{"type":"object"}`),
		Handler: func(ctx context.Context, _ *auth.Principal, _ json.RawMessage) (*tools.Result, error) {
			started <- struct{}{}
			<-release
			if ctx.Err() != nil {
				return &tools.Result{Text: "cancelled"}, nil
			}
			return &tools.Result{Text: "finished"}, nil
		}}
	h, alice, _ := MustTransportAudit(t, wait)
	mallory := &auth.Principal{Subject: "mallory", ClientID: "m", Scopes: []string{"t:echo"}, Method: auth.MethodJWT, Transport: "http", Issuer: alice.Issuer}
	post := func(p *auth.Principal, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "http://127.0.0.1:1/mcp", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		w := httptest.NewRecorder()
		h.serveTransport(w, r.WithContext(auth.WithPrincipal(r.Context(), p)), parseMessage([]byte(body)))
		return w
	}
	call := `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"wait","arguments":{}}}`
	cancel := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}`
	for _, tc := range []struct {
		name      string
		canceller *auth.Principal
		want      string
	}{
		{"OtherCaller", mallory, `"text":"finished"`},
		{"SameCaller", alice, `"text":"cancelled"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan *httptest.ResponseRecorder)
			go func() { done <- post(alice, call) }()
			<-started
			if w := post(tc.canceller, cancel); w.Code != http.StatusAccepted {
				t.Fatalf("cancel: HTTP %d %s", w.Code, w.Body)
			}
			release <- struct{}{}
			if w := <-done; !strings.Contains(w.Body.String(), tc.want) {
				t.Fatalf("call answered %s, want %s", w.Body, tc.want)
			}
		})
	}
}

// FuzzParseMessage: the one decoding of a body gives the gate the frame it
// got before (parseFrame), and calls a body a parse error exactly when
// mcp-go's handlePost does (its envelope does not decode).
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":5,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	f.Add([]byte(`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`))
	f.Add([]byte(`{"method":5}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := parseMessage(raw)
		var env struct {
			ID     json.RawMessage `json:"id"`
			Result json.RawMessage `json:"result,omitempty"`
			Error  json.RawMessage `json:"error,omitempty"`
			Method mcp.MCPMethod   `json:"method,omitempty"`
		}
		envErr := json.Unmarshal(raw, &env)
		if m.ok != (envErr == nil) {
			t.Fatalf("ok=%v, mcp-go's envelope error %v", m.ok, envErr)
		}
		if m.ok && (m.Method != string(env.Method) || !bytes.Equal(m.ID, env.ID) || !bytes.Equal(m.Result, env.Result) || !bytes.Equal(m.Error, env.Error)) {
			t.Fatalf("envelope %q %q %q %q, mcp-go %q %q %q %q", m.Method, m.ID, m.Result, m.Error, env.Method, env.ID, env.Result, env.Error)
		}
		g := parseFrame(raw)
		if m.frame.Method != g.Method || m.frame.Tool != g.Tool || !bytes.Equal(m.frame.Arguments, g.Arguments) ||
			m.frame.Modern != g.Modern || m.frame.Version != g.Version || m.frame.Token != g.Token || m.frame.Client != g.Client {
			t.Fatalf("frame %+v, parseFrame %+v", m.frame, g)
		}
	})
}
