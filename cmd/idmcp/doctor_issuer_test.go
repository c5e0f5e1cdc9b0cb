package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth/jwt/jwttest"
)

// TestDoctorIssuer runs `idmcp doctor --issuer URL --token FILE` against a
// loopback issuer: it names the settings a Cognito-shaped token needs, exits
// 1 for them and 0 for a token that needs nothing, and never prints the token.
func TestDoctorIssuer(t *testing.T) {
	t.Parallel()
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	now := time.Now()
	dir := t.TempDir()
	write := func(name, tok string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cognito := jwttest.SignWith(t, iss.Key(t, "rsa-1"), map[string]any{"iss": iss.URL, "sub": "u", "client_id": "app1",
		"token_use": "access", "scope": "todo:read", "cognito:groups": []any{"ops"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()},
		map[string]any{"typ": nil})
	out, errOut, code := runIdmcp(t, nil, "doctor", "--issuer", iss.URL, "--token", write("cognito.jwt", cognito))
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, w := range []string{`no typ header: provider = "cognito" (or "okta"), or accept_untyped_tokens = true`,
		`aud missing; client_id = "app1"`, `role_claims = ["cognito:groups"]`, "signing key(s)"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out+errOut, cognito) {
		t.Error("doctor printed the token")
	}
	good := iss.Token(t, jwttest.Edit(iss.Claims("alice", "https://mcp.test/mcp", "todo:read", now), "roles", []any{"admin"}))
	if out, errOut, code := runIdmcp(t, nil, "doctor", "--issuer", iss.URL, "--token", write("good.jwt", good)); code != 0 {
		t.Errorf("good token: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, _, code := runIdmcp(t, nil, "doctor", "--issuer", "http://127.0.0.1:1"); code != 1 {
		t.Errorf("unreachable issuer: exit %d, want 1", code)
	}
}
