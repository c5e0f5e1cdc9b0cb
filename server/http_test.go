package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"golang.org/x/time/rate"

	"github.com/idmcp/idmcp/auth"
	jwtauth "github.com/idmcp/idmcp/auth/jwt"
	"github.com/idmcp/idmcp/auth/jwt/jwttest"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

var _ server.TokenVerifier = (*jwtauth.Verifier)(nil)

// fakeVerifier accepts the tokens it knows.
type fakeVerifier struct {
	mu          sync.Mutex
	tokens      map[string]*auth.Principal
	unavailable bool
}

var _ server.TokenVerifier = (*fakeVerifier)(nil)

func (f *fakeVerifier) Verify(_ context.Context, raw string) (*auth.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unavailable {
		return nil, &auth.Error{Kind: auth.KindUnavailable, Msg: "signing keys are not available yet; retry later", Err: errors.New("test: keys down")}
	}
	p, ok := f.tokens[raw]
	if !ok {
		return nil, &auth.Error{Kind: auth.KindInvalidToken, Msg: "invalid token", Err: errors.New("test: unknown token")}
	}
	q := *p
	q.Scopes, q.Roles, q.Actors = slices.Clone(p.Scopes), slices.Clone(p.Roles), slices.Clone(p.Actors)
	return &q, nil
}

func (f *fakeVerifier) Ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.unavailable
}

func (f *fakeVerifier) setUnavailable(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unavailable = v
}

func principal(sub string, scopes, roles, actors []string) *auth.Principal {
	return &auth.Principal{Subject: sub, ClientID: "agent-" + sub, Scopes: scopes, Roles: roles, Actors: actors,
		Method: auth.MethodJWT, Transport: "http", Issuer: "https://issuer.test"}
}

// Test tokens of the fake verifier.
const (
	tokReader    = "tok-reader"    // todo:read
	tokWriter    = "tok-writer"    // todo:read todo:write, no role
	tokAdmin     = "tok-admin"     // todo:read todo:write, role admin
	tokDelegated = "tok-delegated" // todo:read, act chain agent-b → agent-a
)

func newFakeVerifier() *fakeVerifier {
	return &fakeVerifier{tokens: map[string]*auth.Principal{
		tokReader:    principal("reader", []string{"todo:read"}, nil, nil),
		tokWriter:    principal("writer", []string{"todo:read", "todo:write"}, nil, nil),
		tokAdmin:     principal("admin", []string{"todo:read", "todo:write"}, []string{"admin"}, nil),
		tokDelegated: principal("alice", []string{"todo:read"}, nil, []string{"agent-b", "agent-a"}),
	}}
}

// lockedBuffer collects logs written concurrently.
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

// harness is an HTTP transport on a loopback httptest server with a temp
// data dir.
type harness struct {
	t         *testing.T
	h         *server.HTTP
	srv       *httptest.Server
	url       string
	auditPath string
	logs      *lockedBuffer
}

// MustHarness starts the HTTP transport with verifier v; edit adjusts the
// config before NewHTTP.
func MustHarness(t *testing.T, v server.TokenVerifier, edit func(*server.HTTPConfig)) *harness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	auditPath := filepath.Join(dir, store.AuditDBName)
	alog, err := audit.Open(ctx, audit.Config{Path: auditPath, Sync: store.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close(context.Background()) })
	specs := append([]tools.Spec{tools.Whoami(func() tools.ServerInfo { return tools.ServerInfo{Name: "idmcp", Version: "test"} })}, tools.Todos(st)...)
	specs = append(specs, slowTool())
	authz, err := tools.NewAuthorizer(specs)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	srv := httptest.NewUnstartedServer(nil)
	resource := "http://" + srv.Listener.Addr().String() + "/mcp"
	cfg := server.HTTPConfig{
		Config: server.Config{Version: "test", Tools: specs, Authorizer: authz, Audit: alog,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		Verifier:             v,
		Resource:             resource,
		AuthorizationServers: []string{"https://issuer.test"},
		AllowedOrigins:       []string{"https://app.example.com"},
	}
	if edit != nil {
		edit(&cfg)
	}
	h, err := server.NewHTTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return &harness{t: t, h: h, srv: srv, url: resource, auditPath: auditPath, logs: logs}
}

// slowTool sleeps for the milliseconds it is given (graceful shutdown test).
func slowTool() tools.Spec {
	return tools.Spec{
		Name: "slow", Description: "Sleep.", Scopes: []string{"todo:read"},
		InputSchema: json.RawMessage(`{"type":"object","properties":{"ms":{"type":"integer"}}}`),
		Handler: func(ctx context.Context, _ *auth.Principal, args json.RawMessage) (*tools.Result, error) {
			var a struct {
				MS int `json:"ms"`
			}
			_ = json.Unmarshal(args, &a)
			select {
			case <-time.After(time.Duration(a.MS) * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &tools.Result{Text: "slept"}, nil
		},
	}
}

// reply is one HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// rpc decodes a JSON-RPC body (an SSE body's first data line too).
func (r reply) rpc(t *testing.T) (result json.RawMessage, code int, message string, data map[string]any) {
	t.Helper()
	b := r.body
	if i := bytes.Index(b, []byte("data: ")); i >= 0 {
		b = b[i+6:]
		if j := bytes.IndexByte(b, '\n'); j >= 0 {
			b = b[:j]
		}
	}
	var m struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int            `json:"code"`
			Message string         `json:"message"`
			Data    map[string]any `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if m.Error != nil {
		return nil, m.Error.Code, m.Error.Message, m.Error.Data
	}
	return m.Result, 0, "", nil
}

// do sends one request to the MCP endpoint, with the headers in hdr set
// (Host sets the request's host).
func (hs *harness) do(method, token string, body []byte, hdr map[string]string) reply {
	hs.t.Helper()
	return hs.send(method, token, body, func(req *http.Request) {
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
	})
}

// send sends one request to the MCP endpoint after edit has changed it.
func (hs *harness) send(method, token string, body []byte, edit func(*http.Request)) reply {
	hs.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, hs.url, bytes.NewReader(body))
	if err != nil {
		hs.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	edit(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		hs.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// callBody is a tools/call request; modern adds the 2026-07-28 _meta.
func callBody(tool string, args map[string]any, modern bool) ([]byte, map[string]string) {
	params := map[string]any{"name": tool, "arguments": args}
	var hdr map[string]string
	if modern {
		params["_meta"] = map[string]any{
			"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
			"io.modelcontextprotocol/clientCapabilities": map[string]any{},
			"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "raw-test", "version": "1"},
		}
		hdr = map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool}
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params})
	return b, hdr
}

func listBody() []byte {
	return []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`)
}

// auditRows returns every audit row.
func (hs *harness) auditRows() []audit.Row {
	hs.t.Helper()
	r, err := audit.OpenReader(context.Background(), hs.auditPath)
	if err != nil {
		hs.t.Fatal(err)
	}
	defer r.Close()
	rows, err := r.Query(context.Background(), audit.Filter{})
	if err != nil {
		hs.t.Fatal(err)
	}
	return rows
}

// TestHTTP_Answers is the table of how each refusal and success looks on the wire.
func TestHTTP_Answers(t *testing.T) {
	v := newFakeVerifier()
	hs := MustHarness(t, v, nil)
	prm := `resource_metadata="` + hs.h.PRMURL() + `"`
	// The scopes the tools need (MCP authorization: a client requests what
	// the 401 names).
	scope := `, scope="todo:read todo:write"`
	createBody, _ := callBody("todo_create", map[string]any{"title": "x"}, false)
	deleteBody, _ := callBody("todo_delete", map[string]any{"id": 1}, false)
	deleteModern, deleteModernHdr := callBody("todo_delete", map[string]any{"id": 1}, true)
	whoamiModern, whoamiModernHdr := callBody("whoami", map[string]any{}, true)
	unknownBody, _ := callBody("no_such_tool", nil, false)
	cases := []struct {
		name       string
		method     string
		token      string
		body       []byte
		hdr        map[string]string
		unavail    bool
		status     int
		challenge  string // exact WWW-Authenticate; "-" for none
		retryAfter bool
		inMessage  string // substring of the JSON-RPC error message
	}{
		{name: "NoToken", method: "POST", body: listBody(), status: 401, challenge: "Bearer " + prm + scope},
		{name: "InvalidToken", method: "POST", token: "forged", body: listBody(), status: 401,
			challenge: `Bearer error="invalid_token", ` + prm + `, error_description="the access token could not be verified"` + scope, inMessage: "invalid token"},
		{name: "BasicScheme", method: "POST", body: listBody(), hdr: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, status: 401, challenge: "Bearer " + prm + scope},
		{name: "GETWithoutToken", method: "GET", status: 401, challenge: "Bearer " + prm + scope},
		{name: "DELETEWithoutToken", method: "DELETE", status: 401, challenge: "Bearer " + prm + scope},
		{name: "GETWithToken", method: "GET", token: tokReader, status: 405, challenge: "-"},
		{name: "KeysUnavailable", method: "POST", token: tokReader, body: listBody(), unavail: true, status: 503, challenge: "-", retryAfter: true},
		{name: "BadOrigin", method: "POST", token: tokReader, body: listBody(), hdr: map[string]string{"Origin": "https://evil.example"}, status: 403, challenge: "-", inMessage: "origin"},
		{name: "ForeignHost", method: "POST", token: tokReader, body: listBody(), hdr: map[string]string{"Host": "evil.example:80"}, status: 403, challenge: "-", inMessage: "Host"},
		{name: "AllowedOrigin", method: "POST", token: tokReader, body: listBody(), hdr: map[string]string{"Origin": "https://app.example.com"}, status: 200, challenge: "-"},
		{name: "ListOK", method: "POST", token: tokReader, body: listBody(), status: 200, challenge: "-"},
		{name: "InsufficientScope", method: "POST", token: tokReader, body: createBody, status: 403,
			challenge: `Bearer error="insufficient_scope", scope="todo:write", ` + prm, inMessage: "requires scope todo:write"},
		{name: "MissingRoleLegacy", method: "POST", token: tokWriter, body: deleteBody, status: 200, challenge: "-", inMessage: "requires role admin"},
		{name: "MissingRoleModern", method: "POST", token: tokWriter, body: deleteModern, hdr: deleteModernHdr, status: 400, challenge: "-", inMessage: "requires role admin"},
		{name: "UnknownTool", method: "POST", token: tokAdmin, body: unknownBody, status: 200, challenge: "-", inMessage: "not found"},
		{name: "CallOKModern", method: "POST", token: tokReader, body: whoamiModern, hdr: whoamiModernHdr, status: 200, challenge: "-"},
		{name: "BodyTooLarge", method: "POST", token: tokReader, body: []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"` + strings.Repeat("x", 2<<20) + `"}}`), status: 413, challenge: "-"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v.setUnavailable(tc.unavail)
			defer v.setUnavailable(false)
			r := hs.do(tc.method, tc.token, tc.body, tc.hdr)
			if got, want := r.status, tc.status; got != want {
				t.Fatalf("status=%d, want %d; body %s", got, want, r.body)
			}
			got := r.header.Get("WWW-Authenticate")
			switch tc.challenge {
			case "":
			case "-":
				if got != "" {
					t.Fatalf("WWW-Authenticate=%q, want none", got)
				}
			default:
				if got != tc.challenge {
					t.Fatalf("WWW-Authenticate=%q, want %q", got, tc.challenge)
				}
			}
			if tc.retryAfter && r.header.Get("Retry-After") == "" {
				t.Fatal("no Retry-After")
			}
			if tc.inMessage != "" {
				_, _, msg, _ := r.rpc(t)
				if !strings.Contains(msg, tc.inMessage) {
					t.Fatalf("message=%q, want it to contain %q", msg, tc.inMessage)
				}
			}
		})
	}
	t.Run("CORSOnAllowedOrigin", func(t *testing.T) {
		r := hs.do("POST", "", listBody(), map[string]string{"Origin": "https://app.example.com"})
		if got, want := r.header.Get("Access-Control-Allow-Origin"), "https://app.example.com"; got != want {
			t.Fatalf("ACAO=%q, want %q", got, want)
		}
		if !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
			t.Fatal("WWW-Authenticate not exposed to browsers")
		}
		r = hs.do("OPTIONS", "", nil, map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
		if r.status != 204 || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("preflight: %d %v", r.status, r.header)
		}
	})
	t.Run("InsufficientScopeBodyNamesScopes", func(t *testing.T) {
		r := hs.do("POST", tokReader, createBody, nil)
		_, code, _, data := r.rpc(t)
		if code != mcp.INVALID_REQUEST || data["tool"] != "todo_create" || !slices.Equal(toStrings(data["required_scopes"]), []string{"todo:write"}) {
			t.Fatalf("code=%d data=%v", code, data)
		}
	})
	t.Run("MissingRoleBodyNamesRole", func(t *testing.T) {
		r := hs.do("POST", tokWriter, deleteBody, nil)
		_, _, _, data := r.rpc(t)
		if got, want := toStrings(data["required_roles"]), []string{"admin"}; !slices.Equal(got, want) {
			t.Fatalf("required_roles=%v, want %v", got, want)
		}
	})
}

func toStrings(v any) []string {
	a, _ := v.([]any)
	var out []string
	for _, e := range a {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// TestHTTP_Metadata checks RFC 9728 metadata at both well-known paths, and
// the health endpoints.
func TestHTTP_Metadata(t *testing.T) {
	v := newFakeVerifier()
	hs := MustHarness(t, v, nil)
	base := hs.srv.URL
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		t.Run(path, func(t *testing.T) {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var md struct {
				Resource             string   `json:"resource"`
				AuthorizationServers []string `json:"authorization_servers"`
				ScopesSupported      []string `json:"scopes_supported"`
				BearerMethods        []string `json:"bearer_methods_supported"`
				ResourceName         string   `json:"resource_name"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
				t.Fatal(err)
			}
			if md.Resource != hs.url || !slices.Equal(md.AuthorizationServers, []string{"https://issuer.test"}) ||
				!slices.Equal(md.ScopesSupported, []string{"todo:read", "todo:write"}) || !slices.Equal(md.BearerMethods, []string{"header"}) ||
				md.ResourceName != "idmcp" {
				t.Fatalf("metadata %+v", md)
			}
		})
	}
	if got, want := hs.h.PRMURL(), base+"/.well-known/oauth-protected-resource/mcp"; got != want {
		t.Fatalf("PRM URL=%q, want %q", got, want)
	}
	get := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/healthz"); got != 200 {
		t.Fatalf("healthz=%d", got)
	}
	if got := get("/readyz"); got != 200 {
		t.Fatalf("readyz=%d with keys loaded", got)
	}
	v.setUnavailable(true)
	if got := get("/readyz"); got != 503 {
		t.Fatalf("readyz=%d without keys, want 503", got)
	}
}

// TestHTTP_Audit: refusals are audit rows with the precise reason, the
// delegation chain is recorded, and the bearer token reaches neither the
// audit log nor the logs.
func TestHTTP_Audit(t *testing.T) {
	v := newFakeVerifier()
	hs := MustHarness(t, v, nil)
	hs.do("POST", "forged-token-value", listBody(), nil)
	createBody, _ := callBody("todo_create", map[string]any{"title": "x"}, false)
	hs.do("POST", tokReader, createBody, nil)
	whoami, _ := callBody("whoami", map[string]any{}, false)
	r := hs.do("POST", tokDelegated, whoami, nil)
	res, code, msg, _ := r.rpc(t)
	if code != 0 {
		t.Fatalf("whoami: %d %s", code, msg)
	}
	var out struct {
		StructuredContent tools.WhoamiResult `json:"structuredContent"`
	}
	if err := json.Unmarshal(res, &out); err != nil {
		t.Fatal(err)
	}
	if got, want := out.StructuredContent.Actors, []string{"agent-b", "agent-a"}; !slices.Equal(got, want) {
		t.Fatalf("whoami actors=%q, want %q", got, want)
	}
	rows := hs.auditRows()
	find := func(pred func(audit.Row) bool) *audit.Row {
		for i := range rows {
			if pred(rows[i]) {
				return &rows[i]
			}
		}
		return nil
	}
	if row := find(func(r audit.Row) bool {
		return r.Event == audit.EventAuth && r.Decision == audit.Deny && strings.Contains(r.Reason, "test: unknown token")
	}); row == nil || row.Transport != "http" {
		t.Fatalf("no auth deny row with the precise reason in %+v", rows)
	}
	if row := find(func(r audit.Row) bool {
		return r.Event == audit.EventToolsCall && r.Tool == "todo_create" && r.Decision == audit.Deny
	}); row == nil || row.Subject != "reader" || !strings.Contains(row.Reason, "todo:write") {
		t.Fatalf("no tools/call deny row for todo_create: %+v", row)
	}
	if row := find(func(r audit.Row) bool {
		return r.Event == audit.EventToolsCall && r.Tool == "whoami" && r.Decision == audit.Allow
	}); row == nil || !slices.Equal(row.Actors, []string{"agent-b", "agent-a"}) || row.Subject != "alice" {
		t.Fatalf("whoami row: %+v", row)
	}
	all, _ := json.Marshal(rows)
	for _, tok := range []string{"forged-token-value", tokReader, tokDelegated} {
		if bytes.Contains(all, []byte(tok)) {
			t.Fatalf("token %q in the audit log", tok)
		}
		if strings.Contains(hs.logs.String(), tok) {
			t.Fatalf("token %q in the logs", tok)
		}
	}
}

// TestHTTP_RateLimit: a subject over its rate gets 429 with Retry-After; an
// address over its failed-authentication budget gets 429 for further
// failures (without audit rows) while good tokens from it are still served.
func TestHTTP_RateLimit(t *testing.T) {
	v := newFakeVerifier()
	hs := MustHarness(t, v, func(c *server.HTTPConfig) {
		c.RateLimit = server.RateLimit{PerSubject: rate.Every(time.Hour), SubjectBurst: 2, FailedAuthPerAddr: rate.Every(time.Hour), FailedAuthBurst: 3}
	})
	t.Run("PerSubject", func(t *testing.T) {
		for i := range 2 {
			if r := hs.do("POST", tokAdmin, listBody(), nil); r.status != 200 {
				t.Fatalf("request %d: %d", i, r.status)
			}
		}
		r := hs.do("POST", tokAdmin, listBody(), nil)
		if r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Fatalf("3rd request: %d Retry-After=%q, want 429 with Retry-After", r.status, r.header.Get("Retry-After"))
		}
		if r := hs.do("POST", tokReader, listBody(), nil); r.status != 200 {
			t.Fatalf("another subject: %d", r.status)
		}
	})
	t.Run("FailedAuthPerAddress", func(t *testing.T) {
		for i := range 3 {
			if r := hs.do("POST", "bad", listBody(), nil); r.status != 401 {
				t.Fatalf("failure %d: %d", i, r.status)
			}
		}
		before := len(hs.auditRows())
		r := hs.do("POST", "bad", listBody(), nil)
		if r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Fatalf("4th failure: %d, want 429 with Retry-After", r.status)
		}
		// A request with no token is a new client's discovery step: it still
		// gets the 401 challenge (no row), so clients behind a shared address
		// can find the authorization server.
		if r := hs.do("POST", "", listBody(), nil); r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), "resource_metadata=") {
			t.Fatalf("no token after the budget: %d %q, want 401 with the challenge", r.status, r.header.Get("WWW-Authenticate"))
		}
		if got := len(hs.auditRows()); got != before {
			t.Fatalf("%d audit rows added past the failure budget, want 0", got-before)
		}
		if r := hs.do("POST", tokWriter, listBody(), nil); r.status != 200 {
			t.Fatalf("good token from a limited address: %d", r.status)
		}
	})
}

// TestHTTP_MCPClient drives the endpoint with mcp-go's Streamable HTTP
// client in both protocol eras: tools/list shows exactly what the token's
// scopes allow, a call beyond them is an error naming the scope.
func TestHTTP_MCPClient(t *testing.T) {
	hs := MustHarness(t, newFakeVerifier(), nil)
	for _, legacy := range []bool{false, true} {
		name := map[bool]string{false: "Modern", true: "Legacy"}[legacy]
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tr, err := transport.NewStreamableHTTP(hs.url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + tokReader}))
			if err != nil {
				t.Fatal(err)
			}
			var opts []client.ClientOption
			if legacy {
				opts = append(opts, client.WithLegacyProtocolOnly())
			}
			c := client.NewClient(tr, opts...)
			defer c.Close()
			if err := c.Start(ctx); err != nil {
				t.Fatal(err)
			}
			init := mcp.InitializeRequest{}
			init.Params.ClientInfo = mcp.Implementation{Name: "http-test", Version: "1"}
			res, err := c.Initialize(ctx, init)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.ProtocolVersion == "2026-07-28"; got == legacy {
				t.Fatalf("negotiated %s", res.ProtocolVersion)
			}
			lt, err := c.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tool := range lt.Tools {
				names = append(names, tool.Name)
			}
			slices.Sort(names)
			if want := []string{"slow", "todo_list", "whoami"}; !slices.Equal(names, want) {
				t.Fatalf("tools=%v, want %v", names, want)
			}
			req := mcp.CallToolRequest{}
			req.Params.Name, req.Params.Arguments = "todo_create", map[string]any{"title": "x"}
			_, err = c.CallTool(ctx, req)
			if err == nil || !strings.Contains(err.Error(), "todo:write") {
				t.Fatalf("todo_create with todo:read: %v, want an error naming todo:write", err)
			}
			req.Params.Name, req.Params.Arguments = "whoami", map[string]any{}
			out, err := c.CallTool(ctx, req)
			if err != nil || out.IsError {
				t.Fatalf("whoami: %v %+v", err, out)
			}
		})
	}
	t.Run("NoToken", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := client.NewStreamableHttpClient(hs.url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		_, err = c.Initialize(ctx, mcp.InitializeRequest{})
		var are *transport.AuthorizationRequiredError
		if !errors.As(err, &are) || are.ResourceMetadataURL != hs.h.PRMURL() {
			t.Fatalf("initialize without token: %v, want AuthorizationRequiredError with the PRM URL", err)
		}
	})
}

// TestHTTP_JWTCorpus runs the committed token corpus of auth/jwt through the
// HTTP endpoint with the real verifier: every corpus token gets 401 with
// error="invalid_token", every positive control is served.
func TestHTTP_JWTCorpus(t *testing.T) {
	keys := jwttest.LoadCorpusKeys(t, filepath.Join("..", "auth", "jwt", "testdata", "keys"), false)
	iss := jwttest.NewIssuer(t, jwttest.Options{Issuer: jwttest.CorpusIssuer, Keys: keys.Keys()})
	ver, err := jwtauth.New(context.Background(), jwtauth.Config{
		Issuer: jwttest.CorpusIssuer, Audiences: []string{jwttest.CorpusAudience}, JWKSURL: iss.JWKSURL(), Now: jwttest.CorpusNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ver.Close()
	hs := MustHarness(t, ver, func(c *server.HTTPConfig) {
		c.RateLimit = server.RateLimit{FailedAuthBurst: 1000}
		c.Now = jwttest.CorpusNow
	})
	read := func(dir string) map[string]string {
		files, _ := filepath.Glob(filepath.Join("..", "auth", "jwt", "testdata", dir, "*.jwt"))
		out := map[string]string{}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out[strings.TrimSuffix(filepath.Base(f), ".jwt")] = string(b)
		}
		return out
	}
	neg, pos := read("corpus"), read("valid")
	if len(neg) < 25 || len(pos) == 0 {
		t.Fatalf("corpus: %d negative, %d positive", len(neg), len(pos))
	}
	for _, name := range slices.Sorted(maps.Keys(pos)) {
		t.Run("Valid/"+name, func(t *testing.T) {
			if r := hs.do("POST", pos[name], listBody(), nil); r.status != 200 {
				t.Fatalf("status=%d body=%s", r.status, r.body)
			}
		})
	}
	for _, name := range slices.Sorted(maps.Keys(neg)) {
		t.Run("Refused/"+name, func(t *testing.T) {
			tok := neg[name]
			if tok == "" || strings.TrimSpace(tok) != tok {
				// An empty or space-padded header value is not a token the
				// client can send as such; the verifier test covers them.
				t.Skip("not sendable as a bearer header")
			}
			r := hs.do("POST", tok, listBody(), nil)
			if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
				t.Fatalf("status=%d WWW-Authenticate=%q", r.status, r.header.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestHTTP_Serve_Drains: cancelling Serve's context lets an in-flight call
// finish, then Serve returns nil and the port is closed.
func TestHTTP_Serve_Drains(t *testing.T) {
	hs := MustHarness(t, newFakeVerifier(), nil)
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- hs.h.Serve(ctx, ln, nil) }()
	body, _ := callBody("slow", map[string]any{"ms": 400}, false)
	type result struct {
		status int
		err    error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/mcp", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tokReader)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got <- result{status: resp.StatusCode}
	}()
	time.Sleep(150 * time.Millisecond) // the call is in flight
	cancel()
	select {
	case r := <-got:
		if r.err != nil || r.status != 200 {
			t.Fatalf("in-flight call: %d %v", r.status, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight call did not finish")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("port still accepting after Serve returned")
	}
}

func TestHTTPConfig_Validate(t *testing.T) {
	base := func() server.HTTPConfig {
		return server.HTTPConfig{Verifier: newFakeVerifier(), Resource: "https://mcp.example.com/mcp", AuthorizationServers: []string{"https://issuer.test"}}
	}
	cases := []struct {
		name  string
		edit  func(*server.HTTPConfig)
		field string
	}{
		{name: "OK", edit: func(*server.HTTPConfig) {}},
		{name: "OKLoopbackHTTP", edit: func(c *server.HTTPConfig) { c.Resource = "http://127.0.0.1:8080/mcp" }},
		{name: "ErrNoVerifier", edit: func(c *server.HTTPConfig) { c.Verifier = nil }, field: `"verifier"`},
		{name: "ErrPlainHTTPResource", edit: func(c *server.HTTPConfig) { c.Resource = "http://mcp.example.com/mcp" }, field: `"resource"`},
		{name: "ErrResourceFragment", edit: func(c *server.HTTPConfig) { c.Resource = "https://mcp.example.com/mcp#x" }, field: `"resource"`},
		{name: "ErrNoAuthorizationServer", edit: func(c *server.HTTPConfig) { c.AuthorizationServers = nil }, field: `"authorization_servers"`},
		{name: "ErrOriginWithPath", edit: func(c *server.HTTPConfig) { c.AllowedOrigins = []string{"https://app.example.com/x"} }, field: `"allowed_origins"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) || !errors.Is(err, auth.ErrInvalidConfig) {
				t.Fatalf("err=%v, want a %s field error", err, tc.field)
			}
		})
	}
}

// TestHTTP_TrustedProxies: behind a trusted proxy, failed authentications
// count against the client X-Forwarded-For names, so one client past its
// budget does not lock out the others; from an untrusted peer the header is
// ignored, so a client cannot escape its budget by making one up.
func TestHTTP_TrustedProxies(t *testing.T) {
	exhaust := func(t *testing.T, hs *harness, hdr map[string]string) {
		t.Helper()
		for i := range 2 {
			if r := hs.do("POST", "bad", listBody(), hdr); r.status != 401 {
				t.Fatalf("failure %d: %d", i, r.status)
			}
		}
		if r := hs.do("POST", "bad", listBody(), hdr); r.status != 429 {
			t.Fatalf("failure past the budget: %d, want 429", r.status)
		}
	}
	limits := server.RateLimit{FailedAuthPerAddr: rate.Every(time.Hour), FailedAuthBurst: 2}
	t.Run("Trusted", func(t *testing.T) {
		hs := MustHarness(t, newFakeVerifier(), func(c *server.HTTPConfig) {
			c.RateLimit = limits
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
		})
		exhaust(t, hs, map[string]string{"X-Forwarded-For": "198.51.100.7"})
		for _, xff := range []string{
			"198.51.100.8",                 // another client
			"203.0.113.1, 198.51.100.9",    // a made-up first entry: the proxy appended the real one
			"198.51.100.10:5000, 10.1.2.3", // through a second trusted proxy
			"[2001:db8::1]:443",            // IPv6 with a port
		} {
			if r := hs.do("POST", "bad", listBody(), map[string]string{"X-Forwarded-For": xff}); r.status != 401 {
				t.Errorf("X-Forwarded-For %q: %d, want 401 (its own budget)", xff, r.status)
			}
		}
		// Two header lines (two proxies that each added their own) read as
		// one list, in order.
		twoLines := func(req *http.Request) {
			req.Header.Add("X-Forwarded-For", "198.51.100.11")
			req.Header.Add("X-Forwarded-For", "10.1.1.1")
		}
		if r := hs.send("POST", "bad", listBody(), twoLines); r.status != 401 {
			t.Errorf("X-Forwarded-For in two lines: %d, want 401 (198.51.100.11's own budget)", r.status)
		}
		// The same client however its proxy chain spells it: still limited.
		for _, xff := range []string{"198.51.100.7", "junk, 198.51.100.7", "198.51.100.7, 10.9.9.9"} {
			if r := hs.do("POST", "bad", listBody(), map[string]string{"X-Forwarded-For": xff}); r.status != 429 {
				t.Errorf("X-Forwarded-For %q: %d, want 429", xff, r.status)
			}
		}
	})
	t.Run("Untrusted", func(t *testing.T) {
		hs := MustHarness(t, newFakeVerifier(), func(c *server.HTTPConfig) {
			c.RateLimit = limits
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		})
		exhaust(t, hs, map[string]string{"X-Forwarded-For": "198.51.100.7"})
		if r := hs.do("POST", "bad", listBody(), map[string]string{"X-Forwarded-For": "198.51.100.8"}); r.status != 429 {
			t.Fatalf("made-up X-Forwarded-For from an untrusted peer: %d, want 429 (counted by the peer)", r.status)
		}
	})
}
