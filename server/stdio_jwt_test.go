package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

// stdioPipe is a stdio server on in-memory pipes, driven with raw JSON-RPC lines.
type stdioPipe struct {
	t      *testing.T
	in     *io.PipeWriter
	out    *bufio.Reader
	id     int
	audit  string
	cancel context.CancelFunc
	done   chan error
}

func startStdio(t *testing.T, tokens server.TokenVerifier, envToken string) *stdioPipe {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	auditPath := filepath.Join(dir, store.AuditDBName)
	alog, err := audit.Open(ctx, audit.Config{Path: auditPath, Sync: store.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	specs := []tools.Spec{tools.Whoami(func() tools.ServerInfo { return tools.ServerInfo{Name: "idmcp"} })}
	authz, err := tools.NewAuthorizer(specs)
	if err != nil {
		t.Fatal(err)
	}
	host, err := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{
		ProfileName: "laptop", Profile: &auth.HostProfile{Name: "laptop", Scopes: []string{"todo:read"}},
		Secret: []byte("idmcp_hostsecrethostsecret"), SecretSource: "test", Human: "tester",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewStdio(server.StdioConfig{
		Config: server.Config{Version: "test", Tools: specs, Authorizer: authz, Audit: alog},
		Host:   host, EnvToken: envToken, Tokens: tokens,
	})
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &stdioPipe{t: t, in: inW, out: bufio.NewReader(outR), audit: auditPath, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- srv.Listen(ctx, inR, outW); _ = outW.Close() }()
	t.Cleanup(func() {
		_ = inW.Close()
		cancel()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Error("stdio server did not stop")
		}
		_ = alog.Close(context.Background())
	})
	return p
}

// call sends one request and returns its result or error message (bounded wait).
func (p *stdioPipe) call(method string, params map[string]any) (json.RawMessage, string) {
	p.t.Helper()
	p.id++
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": p.id, "method": method, "params": params})
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		p.t.Fatal(err)
	}
	type line struct {
		b   []byte
		err error
	}
	ch := make(chan line, 1)
	go func() {
		for {
			l, err := p.out.ReadBytes('\n')
			if err != nil || strings.Contains(string(l), fmt.Sprintf(`"id":%d`, p.id)) {
				ch <- line{l, err}
				return
			}
		}
	}()
	select {
	case l := <-ch:
		if l.err != nil {
			p.t.Fatal(l.err)
		}
		var r struct {
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(l.b, &r); err != nil {
			p.t.Fatal(err)
		}
		if r.Error != nil {
			return nil, r.Error.Message
		}
		return r.Result, ""
	case <-time.After(10 * time.Second):
		p.t.Fatalf("no answer to %s", method)
	}
	return nil, ""
}

func capsWith(token string) map[string]any {
	return map[string]any{"experimental": map[string]any{server.AuthCapability: map[string]any{"token": token}}}
}

func modernParams(token string, extra map[string]any) map[string]any {
	p := map[string]any{"_meta": map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientCapabilities": capsWith(token),
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "desk", "version": "1"},
	}}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func whoamiOf(t *testing.T, res json.RawMessage) tools.WhoamiResult {
	t.Helper()
	var r struct {
		StructuredContent tools.WhoamiResult `json:"structuredContent"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	return r.StructuredContent
}

// JWT-shaped test tokens the fake verifier knows.
const (
	jwtAlice = "eyJhbGciOiJSUzI1NiJ9.alice.sig"
	jwtBad   = "eyJhbGciOiJSUzI1NiJ9.forged.sig"
)

// TestStdio_JWTCredential: with Tokens set, a host can present a user's
// access token instead of the host secret, in both eras and from the
// environment; a legacy session re-verifies its token on every request.
func TestStdio_JWTCredential(t *testing.T) {
	newVerifier := func() *fakeVerifier {
		v := newFakeVerifier()
		v.tokens[jwtAlice] = principal("alice", []string{"todo:read"}, nil, []string{"agent-b", "agent-a"})
		return v
	}
	call := map[string]any{"name": "whoami", "arguments": map[string]any{}}

	t.Run("Modern", func(t *testing.T) {
		p := startStdio(t, newVerifier(), "")
		res, msg := p.call("tools/call", modernParams(jwtAlice, call))
		if msg != "" {
			t.Fatal(msg)
		}
		w := whoamiOf(t, res)
		if w.Subject != "alice" || w.AuthMethod != auth.MethodJWT || w.Transport != "stdio" || len(w.Actors) != 2 || w.ClientName != "desk" {
			t.Fatalf("whoami %+v", w)
		}
		_, msg = p.call("tools/call", modernParams(jwtBad, call))
		if msg != "invalid token" {
			t.Fatalf("forged token: %q, want \"invalid token\"", msg)
		}
		r, err := audit.OpenReader(context.Background(), p.audit)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rows, err := r.Query(context.Background(), audit.Filter{Event: audit.EventAuth, Decision: audit.Deny})
		if err != nil || len(rows) != 1 || !strings.Contains(rows[0].Reason, "test: unknown token") {
			t.Fatalf("deny rows %+v %v; want one with the precise reason", rows, err)
		}
	})
	t.Run("EnvToken", func(t *testing.T) {
		p := startStdio(t, newVerifier(), jwtAlice)
		res, msg := p.call("tools/call", modernParams("", call))
		if msg != "" || whoamiOf(t, res).Subject != "alice" {
			t.Fatalf("%q %s", msg, res)
		}
	})
	t.Run("LegacySessionReverifies", func(t *testing.T) {
		v := newVerifier()
		p := startStdio(t, v, "")
		if _, msg := p.call("initialize", map[string]any{"protocolVersion": "2025-11-25", "capabilities": capsWith(jwtAlice),
			"clientInfo": map[string]any{"name": "desk", "version": "1"}}); msg != "" {
			t.Fatal(msg)
		}
		res, msg := p.call("tools/call", call)
		if w := whoamiOf(t, res); msg != "" || w.Subject != "alice" || w.ClientName != "desk" {
			t.Fatalf("%q %+v", msg, w)
		}
		v.mu.Lock()
		delete(v.tokens, jwtAlice) // the token expired, or its key was withdrawn
		v.mu.Unlock()
		if _, msg := p.call("tools/call", call); msg != "invalid token" {
			t.Fatalf("after the token stopped verifying: %q, want \"invalid token\"", msg)
		}
	})
	t.Run("HostSecretStillWorks", func(t *testing.T) {
		p := startStdio(t, newVerifier(), "")
		res, msg := p.call("tools/call", modernParams("idmcp_hostsecrethostsecret", call))
		if w := whoamiOf(t, res); msg != "" || w.AuthMethod != auth.MethodHostSecret {
			t.Fatalf("%q %+v", msg, w)
		}
	})
	t.Run("OneIdentityPerSession", func(t *testing.T) {
		v := newVerifier()
		const jwtBob = "eyJbob.eyJbob.sig"
		v.tokens[jwtBob] = principal("bob", []string{"todo:read", "todo:write"}, []string{"admin"}, nil)
		p := startStdio(t, v, "")
		if res, msg := p.call("tools/call", modernParams(jwtAlice, call)); msg != "" || whoamiOf(t, res).Subject != "alice" {
			t.Fatalf("alice: %q %s", msg, res)
		}
		// Bob's token is valid, but the session serves alice: served as bob it
		// would be audited as alice; so it is refused, and that is a row.
		_, msg := p.call("tools/call", modernParams(jwtBob, call))
		if !strings.HasPrefix(msg, "authentication failed: this stdio session is bound to \"alice\"") || !strings.Contains(msg, `"bob"`) {
			t.Fatalf("bob on alice's session: %q", msg)
		}
		r, err := audit.OpenReader(context.Background(), p.audit)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rows, err := r.Query(context.Background(), audit.Filter{Subject: "bob", Event: audit.EventAuth, Decision: audit.Deny})
		if err != nil || len(rows) != 1 {
			t.Fatalf("bob's refusal rows %+v %v, want 1", rows, err)
		}
		if res, msg := p.call("tools/call", modernParams(jwtAlice, call)); msg != "" || whoamiOf(t, res).Subject != "alice" {
			t.Fatalf("alice after bob: %q %s", msg, res)
		}
	})
	t.Run("WithoutTokensAJWTIsNoHostSecret", func(t *testing.T) {
		p := startStdio(t, nil, "")
		if _, msg := p.call("tools/call", modernParams(jwtAlice, call)); !strings.Contains(msg, "does not match") {
			t.Fatalf("%q, want the host secret mismatch", msg)
		}
	})
}
