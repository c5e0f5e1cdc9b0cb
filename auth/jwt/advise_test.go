package jwt_test

import (
	"context"
	"strings"
	"testing"
	"time"

	jwtauth "github.com/idmcp/idmcp/auth/jwt"
	"github.com/idmcp/idmcp/auth/jwt/jwttest"
)

func TestAdvise(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	key := iss.Key(t, "rsa-1")
	now := time.Now()
	cases := []struct {
		name   string
		token  string
		want   []string // substrings of findings
		noNeed bool
	}{
		{name: "CognitoShape", token: jwttest.SignWith(t, key, map[string]any{
			"iss": iss.URL, "sub": "u", "client_id": "app1", "token_use": "access", "scope": "https://mcp.example.com/todo:read",
			"cognito:groups": []any{"ops"}, "iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(),
		}, map[string]any{"typ": nil}), want: []string{
			`[need] no typ header: provider = "cognito"`,
			`[need] aud missing; client_id = "app1": provider = "cognito" or audience_claim = "client_id", with audiences = ["app1"]`,
			`[need] roles are in cognito:groups: [claims] role_claims = ["cognito:groups"]`,
			`scope_prefix = "https://mcp.example.com/"`,
			`consider max_token_lifetime = "1h"`,
			`[ok] signature verifies`,
			`looks like cognito`,
		}},
		{name: "KeycloakShape", token: jwttest.SignWith(t, key, map[string]any{
			"iss": iss.URL, "sub": "u", "aud": "account", "typ": "Bearer", "azp": "c", "scope": "openid",
			"realm_access": map[string]any{"roles": []any{"r"}}, "resource_access": map[string]any{"idmcp": map[string]any{"roles": []any{"a"}}},
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		}, map[string]any{"typ": "JWT"}), want: []string{
			`[need] aud is only "account"`,
			`role_claims = ["realm_access.roles", "resource_access.idmcp.roles"]`,
		}},
		{name: "GoodRFC9068", token: iss.Token(t, jwttest.Edit(iss.Claims("alice", aud, "todo:read", now), "roles", []any{"admin"})),
			want: []string{`[ok] typ "at+jwt" is accepted`, `[ok] aud ["https://mcp.test/mcp"]`, "[ok] roles are in roles", "[ok] signature verifies"}, noNeed: true},
		{name: "ForeignSignature", token: jwttest.SignWith(t, jwttest.NewRSAKey(t, "rsa-1"), iss.Claims("a", aud, "x", now), nil),
			want: []string{"[need] signature check failed"}},
		{name: "IDToken", token: iss.Token(t, jwttest.Edit(iss.Claims("a", aud, "x", now), "nonce", "n")),
			want: []string{"[need] token carries nonce"}},
		{name: "Opaque", token: "ya29.opaque", want: []string{"[need] the token is not a JWT (opaque)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := jwtauth.Advise(context.Background(), jwtauth.AdviseConfig{Issuer: iss.URL, Token: c.token})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			need := false
			for _, f := range a.Findings {
				b.WriteString("[" + f.Level + "] " + f.Text + "\n")
				need = need || f.Level == "need"
			}
			for _, w := range c.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("missing %q in:\n%s", w, b.String())
				}
			}
			if c.noNeed && need {
				t.Errorf("a good token got [need] findings:\n%s", b.String())
			}
			if strings.Contains(b.String(), c.token) {
				t.Error("the advice prints the token")
			}
		})
	}
	t.Run("IssuerMismatch", func(t *testing.T) {
		bad := jwttest.NewIssuer(t, jwttest.Options{MetadataIssuer: "https://evil.test"})
		if _, err := jwtauth.Advise(context.Background(), jwtauth.AdviseConfig{Issuer: bad.URL}); err == nil || !strings.Contains(err.Error(), "names issuer") {
			t.Fatalf("err = %v", err)
		}
	})
}
