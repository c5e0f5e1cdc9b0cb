package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/idmcp/idmcp/auth/jwt/jwttest"
	"github.com/idmcp/idmcp/tools"
)

// bearerServer is `idmcp serve --http` running as a child process, on the
// port the kernel picked (read from its start-up log line).
type bearerServer struct {
	cmd      *exec.Cmd
	stderr   *lockedBuffer
	resource string
	done     chan error
}

var bearerResourceRE = regexp.MustCompile(`msg="serving MCP over HTTP".*? resource=(\S+)`)

// startBearerServer starts the binary with serve args and waits (bounded) until
// it logs that it serves; it is stopped with SIGTERM when the test ends.
func startBearerServer(t *testing.T, args ...string) *bearerServer {
	t.Helper()
	return startBearerServerWith(t, nil, args...)
}

// startBearerServerWith is startBearerServer with env added to the clean
// environment.
func startBearerServerWith(t *testing.T, env []string, args ...string) *bearerServer {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"serve"}, args...)...)
	cmd.Env = cleanEnv(env...)
	s := &bearerServer{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = io.Discard, s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := bearerResourceRE.FindStringSubmatch(s.stderr.String()); m != nil {
			s.resource = m[1]
			return s
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("server exited: %v\nstderr:\n%s", err, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start within 20s; stderr:\n%s", s.stderr.String())
		}
	}
}

// stop sends SIGTERM and waits at most 15 s (then kills); it returns the
// exit error.
func (s *bearerServer) stop(t *testing.T) error {
	t.Helper()
	if s.cmd.ProcessState != nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		return err
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("server did not stop within 15s after SIGTERM; stderr:\n%s", s.stderr.String())
		return nil
	}
}

// post sends one JSON-RPC request to the MCP endpoint with an optional
// bearer token.
func (s *bearerServer) post(t *testing.T, token string, body string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.resource, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, b
}

// bearerClient is an initialized mcp-go Streamable HTTP client sending token.
func bearerClient(t *testing.T, url, token string, legacy bool) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	tr, err := transport.NewStreamableHTTP(url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		t.Fatal(err)
	}
	var opts []client.ClientOption
	if legacy {
		opts = append(opts, client.WithLegacyProtocolOnly())
	}
	c := client.NewClient(tr, opts...)
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "http-itest", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return c
}

// TestServeHTTP_ResourceServer runs `idmcp serve --http` against an issuer
// served on loopback (RFC 8414 metadata discovered from --issuer, a JWKS,
// RS256 tokens) and drives it with mcp-go's Streamable HTTP client.
func TestServeHTTP_ResourceServer(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	dataDir := t.TempDir()
	s := startBearerServer(t, "--http", "127.0.0.1:0", "--issuer", iss.URL, "--data-dir", dataDir, "--audit-sync", "normal")
	if !strings.HasPrefix(s.resource, "http://127.0.0.1:") || !strings.HasSuffix(s.resource, "/mcp") {
		t.Fatalf("default resource %q, want http://127.0.0.1:PORT/mcp", s.resource)
	}
	if iss.MetadataFetches() == 0 {
		t.Fatal("the JWKS location was not discovered from the issuer's metadata")
	}
	token := func(sub, scope string, extra ...any) string {
		return iss.Token(t, jwttest.Edit(iss.Claims(sub, s.resource, scope, time.Now()), extra...))
	}
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`

	t.Run("401WithoutToken", func(t *testing.T) {
		status, hdr, _ := s.post(t, "", list)
		if status != http.StatusUnauthorized {
			t.Fatalf("status=%d, want 401", status)
		}
		// The challenge names the metadata and the scopes the tools need
		// (MCP authorization: clients request what the 401 names).
		m := regexp.MustCompile(`^Bearer resource_metadata="([^"]+)", scope="([^"]+)"$`).FindStringSubmatch(hdr.Get("WWW-Authenticate"))
		if m == nil || !slices.Contains(strings.Fields(m[2]), "todo:write") {
			t.Fatalf("WWW-Authenticate=%q", hdr.Get("WWW-Authenticate"))
		}
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var md struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			ScopesSupported      []string `json:"scopes_supported"`
			BearerMethods        []string `json:"bearer_methods_supported"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || md.Resource != s.resource || !slices.Equal(md.AuthorizationServers, []string{iss.URL}) ||
			!slices.Contains(md.ScopesSupported, "todo:write") || !slices.Equal(md.BearerMethods, []string{"header"}) {
			t.Fatalf("metadata at %s: %d %+v", m[1], resp.StatusCode, md)
		}
		status, hdr, _ = s.post(t, token("alice", "todo:read", "aud", "https://other.example/mcp"), list)
		if status != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), `Bearer error="invalid_token", resource_metadata=`) ||
			!strings.Contains(hdr.Get("WWW-Authenticate"), `error_description="the access token was not issued for this resource (audience)"`) {
			t.Fatalf("wrong audience: %d %q", status, hdr.Get("WWW-Authenticate"))
		}
	})

	t.Run("ToolsListPerScopes", func(t *testing.T) {
		cases := []struct {
			name       string
			scope      string
			roles      []string
			legacy     bool
			want, hide []string
		}{
			{name: "ReadOnly", scope: "todo:read", want: []string{"todo_list", "whoami"}, hide: []string{"todo_create", "todo_delete"}},
			{name: "ReadOnlyLegacy", scope: "todo:read", legacy: true, want: []string{"todo_list", "whoami"}, hide: []string{"todo_create"}},
			{name: "Writer", scope: "todo:read todo:write", want: []string{"todo_create", "todo_list", "whoami"}, hide: []string{"todo_delete"}},
			{name: "Admin", scope: "todo:read todo:write", roles: []string{"admin"}, want: []string{"todo_create", "todo_delete"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var extra []any
				if tc.roles != nil {
					extra = []any{"roles", tc.roles}
				}
				names := listToolNames(t, bearerClient(t, s.resource, token("bob", tc.scope, extra...), tc.legacy))
				for _, w := range tc.want {
					if !slices.Contains(names, w) {
						t.Fatalf("tools=%v, missing %s", names, w)
					}
				}
				for _, h := range tc.hide {
					if slices.Contains(names, h) {
						t.Fatalf("tools=%v, shows %s", names, h)
					}
				}
			})
		}
	})

	t.Run("403InsufficientScope", func(t *testing.T) {
		tok := token("carol", "todo:read")
		status, hdr, body := s.post(t, tok, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"todo_create","arguments":{"title":"x"}}}`)
		want := `Bearer error="insufficient_scope", scope="todo:write", resource_metadata="`
		if status != http.StatusForbidden || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), want) {
			t.Fatalf("status=%d WWW-Authenticate=%q", status, hdr.Get("WWW-Authenticate"))
		}
		if !bytes.Contains(body, []byte(`"todo:write"`)) || !bytes.Contains(body, []byte(`"id":3`)) {
			t.Fatalf("JSON-RPC body does not name the scope: %s", body)
		}
		c := bearerClient(t, s.resource, tok, false)
		req := mcp.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = "todo_create", map[string]any{"title": "x"}
		if _, err := c.CallTool(context.Background(), req); err == nil || !strings.Contains(err.Error(), "todo:write") {
			t.Fatalf("client call: %v, want an error naming todo:write", err)
		}
	})

	t.Run("ActChain", func(t *testing.T) {
		act := map[string]any{"sub": "agent-b", "act": map[string]any{"sub": "agent-a"}}
		c := bearerClient(t, s.resource, token("dave", "todo:read", "act", act), false)
		req := mcp.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = "whoami", map[string]any{}
		res, err := c.CallTool(context.Background(), req)
		if err != nil || res.IsError {
			t.Fatalf("whoami: %v %+v", err, res)
		}
		b, _ := json.Marshal(res.StructuredContent)
		var who tools.WhoamiResult
		if err := json.Unmarshal(b, &who); err != nil {
			t.Fatal(err)
		}
		if who.Subject != "dave" || who.ClientID != "test-client" || !slices.Equal(who.Actors, []string{"agent-b", "agent-a"}) ||
			who.AuthMethod != "jwt" || who.Transport != "http" || who.Issuer != iss.URL {
			t.Fatalf("whoami %+v", who)
		}
		var found bool
		for _, row := range auditRows(t, dataDir, "--tool", "whoami", "--subject", "dave") {
			if row["decision"] == "allow" && row["transport"] == "http" {
				actors, _ := row["actors"].([]any)
				found = len(actors) == 2 && actors[0] == "agent-b" && actors[1] == "agent-a"
			}
		}
		if !found {
			t.Fatal("no audit row for dave's whoami with actors [agent-b agent-a]")
		}
	})

	t.Run("AuditHasNoTokens", func(t *testing.T) {
		out := mustIdmcp(t, nil, "audit", "query", "--json", "--data-dir", dataDir)
		if strings.Contains(out, "eyJ") {
			t.Fatal("a JWT reached the audit log")
		}
		if !strings.Contains(out, `"event":"auth"`) || !strings.Contains(out, "token has invalid audience") {
			t.Fatal("no auth deny row with the precise reason")
		}
		if strings.Contains(s.stderr.String(), "eyJ") {
			t.Fatal("a JWT reached the server log")
		}
	})

	t.Run("SIGTERMDrains", func(t *testing.T) {
		if err := s.stop(t); err != nil {
			t.Fatalf("exit after SIGTERM: %v\nstderr:\n%s", err, s.stderr.String())
		}
		rows := auditRows(t, dataDir, "--event", "server/stop")
		if len(rows) != 1 || rows[0]["transport"] != "http" {
			t.Fatalf("server/stop rows: %v", rows)
		}
	})
}

// TestServeHTTP_Refuses checks start-up refusals: non-loopback without TLS,
// no issuer, a plain-http issuer off loopback.
func TestServeHTTP_Refuses(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{name: "NoIssuer", args: []string{"--http", "127.0.0.1:0"}, want: "--issuer"},
		{name: "NonLoopbackWithoutTLS", args: []string{"--http", "0.0.0.0:0", "--issuer", "https://issuer.test"}, want: "not a loopback address"},
		{name: "UpstreamNeedsResource", args: []string{"--http", "0.0.0.0:0", "--issuer", "https://issuer.test", "--tls-terminated-upstream"}, want: "--resource"},
		{name: "PlainHTTPIssuer", args: []string{"--http", "127.0.0.1:0", "--issuer", "http://issuer.example.com"}, want: "plain http is accepted only on loopback"},
		{name: "BadTrustedProxy", args: []string{"--http", "127.0.0.1:0", "--issuer", "https://issuer.test", "--trusted-proxy", "proxy.internal"}, want: `--trusted-proxy: "proxy.internal" is not an address or CIDR prefix`},
		{name: "TrustedProxyOnStdio", args: []string{"--trusted-proxy", "10.0.0.0/8"}, want: "--trusted-proxy: HTTP mode only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", t.TempDir(), "--sandbox", "off"}, tc.args...)
			_, stderr, code := runIdmcp(t, nil, args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 mentioning %q", code, stderr, tc.want)
			}
		})
	}
}

// TestServeStdio_AcceptsJWT: with --issuer, stdio takes a user's access token
// (here in IDMCP_TOKEN) as the host credential; the delegation chain shows in
// whoami. A token for another audience is refused.
func TestServeStdio_AcceptsJWT(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	const aud = "https://mcp.example.com/mcp"
	act := map[string]any{"sub": "agent-b", "act": map[string]any{"sub": "agent-a"}}
	good := iss.Token(t, jwttest.Edit(iss.Claims("erin", aud, "todo:read", time.Now()), "act", act))
	wrongAud := iss.Token(t, iss.Claims("erin", "https://other.example/mcp", "todo:read", time.Now()))
	whoami := map[string]any{"name": "whoami", "arguments": map[string]any{}}
	for _, tc := range []struct {
		name, token, wantErr string
	}{
		{name: "OK", token: good},
		{name: "WrongAudience", token: wrongAud, wantErr: "invalid token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			s := startRaw(t, []string{"IDMCP_TOKEN=" + tc.token}, "--issuer", iss.URL, "--audience", aud, "--data-dir", dataDir, "--audit-sync", "normal")
			params := map[string]any{"_meta": modernMeta("")}
			maps.Copy(params, whoami)
			r := s.call("tools/call", params)
			if tc.wantErr != "" {
				if r.Error == nil || r.Error.Message != tc.wantErr {
					t.Fatalf("error %+v, want %q", r.Error, tc.wantErr)
				}
				return
			}
			if r.Error != nil {
				t.Fatalf("%s\nstderr:\n%s", r.Error.Message, s.stderr.String())
			}
			var res struct {
				StructuredContent tools.WhoamiResult `json:"structuredContent"`
			}
			if err := json.Unmarshal(r.Result, &res); err != nil {
				t.Fatal(err)
			}
			w := res.StructuredContent
			if w.Subject != "erin" || w.AuthMethod != "jwt" || w.Transport != "stdio" || !slices.Equal(w.Actors, []string{"agent-b", "agent-a"}) {
				t.Fatalf("whoami %+v", w)
			}
		})
	}
}

// TestServeHTTP_TrustedProxy: with --trusted-proxy 127.0.0.1, the failed
// authentications of one client behind the "proxy" (this test, on loopback)
// do not use up another's budget; without it they share the loopback
// address's budget.
func TestServeHTTP_TrustedProxy(t *testing.T) {
	const burst = 20 // server.DefaultFailedAuthBurst
	send := func(t *testing.T, resource, client string) int {
		t.Helper()
		req, err := http.NewRequest("POST", resource, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer not-a-token")
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name    string
		args    []string
		policy  string // a policy file's contents, passed with --policy
		another int    // what a second client gets once the first is over its budget
	}{
		{"Trusted", []string{"--trusted-proxy", "127.0.0.1"}, "", http.StatusUnauthorized},
		{"TrustedByPolicy", nil, "version = 1\n[http]\ntrusted_proxies = [\"127.0.0.0/8\"]\n", http.StatusUnauthorized},
		{"NotTrusted", nil, "", http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--http", "127.0.0.1:0", "--dev", "--data-dir", t.TempDir(), "--sandbox", "off"}, tc.args...)
			if tc.policy != "" {
				path := filepath.Join(t.TempDir(), "policy.toml")
				if err := os.WriteFile(path, []byte(tc.policy), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--policy", path)
			}
			s := startBearerServer(t, args...)
			// Until its keys are loaded the server answers 503, which is no
			// failed authentication.
			waitReady(t, s.resource)
			for range burst {
				if got := send(t, s.resource, "198.51.100.7"); got != http.StatusUnauthorized {
					t.Fatalf("failure within the budget: %d, want 401", got)
				}
			}
			if got := send(t, s.resource, "198.51.100.7"); got != http.StatusTooManyRequests {
				t.Fatalf("first client past its budget: %d, want 429", got)
			}
			if got := send(t, s.resource, "198.51.100.8"); got != tc.another {
				t.Fatalf("second client: %d, want %d", got, tc.another)
			}
		})
	}
}

// TestServeHTTP_RateLimitSettings drives the operator's rate-limit knobs
// through the binary: past the failed-authentication budget junk gets 429
// but a token signed by the issuer's key that is only expired or for
// another audience still gets its 401 invalid_token (clients behind one NAT
// learn to refresh); the per-subject limit follows --subject-rate/-burst
// and the policy, and 0 turns it off.
func TestServeHTTP_RateLimitSettings(t *testing.T) {
	t.Parallel()
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`

	t.Run("FailedAuthBudget", func(t *testing.T) {
		t.Parallel()
		s := startBearerServer(t, "--http", "127.0.0.1:0", "--issuer", iss.URL, "--data-dir", t.TempDir(),
			"--failed-auth-rate", "0.001", "--failed-auth-burst", "2")
		now := time.Now()
		expired := iss.Token(t, jwttest.Edit(iss.Claims("alice", s.resource, "todo:read", now), "exp", now.Add(-time.Hour).Unix(), "iat", now.Add(-2*time.Hour).Unix()))
		otherAud := iss.Token(t, iss.Claims("alice", "https://other.example/mcp", "todo:read", now))
		for i := range 2 {
			if status, _, _ := s.post(t, "junk-"+strconv.Itoa(i), list); status != http.StatusUnauthorized {
				t.Fatalf("junk %d within the budget: %d, want 401", i, status)
			}
		}
		status, hdr, _ := s.post(t, "junk-3", list)
		if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
			t.Fatalf("junk past the budget: %d (Retry-After %q), want 429", status, hdr.Get("Retry-After"))
		}
		for name, c := range map[string]struct{ tok, desc string }{
			"Expired": {expired, "expired"}, "OtherAudience": {otherAud, "audience"},
		} {
			status, hdr, _ := s.post(t, c.tok, list)
			if ch := hdr.Get("WWW-Authenticate"); status != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, c.desc) {
				t.Errorf("%s genuine token past the budget: %d %q, want 401 invalid_token (%s)", name, status, ch, c.desc)
			}
		}
		// A forged token with the issuer's kid is junk, not genuine.
		forged := jwttest.SignWith(t, jwttest.NewRSAKey(t, "rsa-1"), iss.Claims("alice", s.resource, "todo:read", now), nil)
		if status, _, _ := s.post(t, forged, list); status != http.StatusTooManyRequests {
			t.Errorf("forged token past the budget: %d, want 429", status)
		}
		if status, _, _ := s.post(t, iss.Token(t, iss.Claims("bob", s.resource, "todo:read", now)), list); status != http.StatusOK {
			t.Errorf("good token from the same address: %d, want 200", status)
		}
	})
	t.Run("SubjectRateFlag", func(t *testing.T) {
		t.Parallel()
		s := startBearerServer(t, "--http", "127.0.0.1:0", "--issuer", iss.URL, "--data-dir", t.TempDir(),
			"--subject-rate", "0.001", "--subject-burst", "3")
		tok := iss.Token(t, iss.Claims("carol", s.resource, "todo:read", time.Now()))
		for i := range 3 {
			if status, _, body := s.post(t, tok, list); status != http.StatusOK {
				t.Fatalf("request %d within the burst: %d %s", i, status, body)
			}
		}
		if status, hdr, _ := s.post(t, tok, list); status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
			t.Fatalf("4th request: %d, want 429 with Retry-After", status)
		}
	})
	t.Run("SubjectRateOffInPolicy", func(t *testing.T) {
		t.Parallel()
		pol := filepath.Join(t.TempDir(), "policy.toml")
		if err := os.WriteFile(pol, []byte("version = 1\n[http]\nsubject_rate = 0\nsubject_burst = 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s := startBearerServer(t, "--http", "127.0.0.1:0", "--issuer", iss.URL, "--data-dir", t.TempDir(), "--policy", pol)
		tok := iss.Token(t, iss.Claims("dave", s.resource, "todo:read", time.Now()))
		for i := range 60 {
			if status, _, body := s.post(t, tok, list); status != http.StatusOK {
				t.Fatalf("request %d with subject_rate = 0: %d %s", i, status, body)
			}
		}
	})
	t.Run("BadFlag", func(t *testing.T) {
		t.Parallel()
		_, errOut, code := runIdmcp(t, nil, "serve", "--http", "127.0.0.1:0", "--issuer", iss.URL, "--subject-rate", "-1")
		if code == 0 || !strings.Contains(errOut, "want requests per second") {
			t.Fatalf("--subject-rate -1: exit %d, stderr %q", code, errOut)
		}
	})
}

// TestServe_ProviderFlagsOnStdio: HTTP-only knobs are refused on stdio
// (they would be silently ignored), an unknown provider is a usage error.
func TestServe_ProviderFlagsOnStdio(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--introspection-url", "https://idp.example.com/introspect"}, "--introspection-url: HTTP mode only"},
		{[]string{"--subject-rate", "5"}, "HTTP mode only"},
		{[]string{"--http", "127.0.0.1:0", "--issuer", "https://idp.example.com", "--provider", "ping"}, `provider "ping": want one of generic, cognito`},
	} {
		_, errOut, code := runIdmcp(t, nil, append([]string{"serve", "--data-dir", t.TempDir()}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("serve %v: exit %d, stderr %q; want 2 and %q", c.args, code, errOut, c.want)
		}
	}
}
