package main_test

// The example policies in testdata/providers, one per identity provider,
// run through the built binary: a token in the provider's documented shape
// (signed by a test key served as that provider's JWKS on loopback, or, for
// Google and GitHub, whose tokens are opaque, vouched for by a loopback
// stand-in answering as their documented endpoints do, since neither is
// reachable here) lists the tools its scopes allow; one wrong field at a time
// is refused with 401 and an error_description that says which.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth/jwt/jwttest"
)

// providerFixture is one example policy and the tokens it is tested with.
type providerFixture struct {
	name   string
	header map[string]any // over {alg, kid, typ: at+jwt}
	good   map[string]any
	// wrong: name → (claim edits, expected error_description substring)
	wrong map[string]wrongField
	// opaque providers: the stand-in's answers for "good-opaque"
	opaque map[string]any
}

type wrongField struct {
	edit []any
	desc string
}

const listRequest = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`

func providerFixtures(now time.Time) []providerFixture {
	iat, exp := now.Unix(), now.Add(30*time.Minute).Unix()
	return []providerFixture{
		{name: "cognito", header: map[string]any{"typ": nil},
			good: map[string]any{"sub": "u-1", "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example1",
				"client_id": "1example23456789", "token_use": "access", "scope": "https://mcp.example.com/todo:read",
				"cognito:groups": []any{"ops"}, "iat": iat, "exp": exp, "jti": "j", "username": "alice", "version": 2},
			wrong: map[string]wrongField{
				"IDToken":         {[]any{"token_use", "id", "aud", "1example23456789"}, "ID token"},
				"OtherAppClient":  {[]any{"client_id", "other"}, "audience"},
				"TooLongLifetime": {[]any{"exp", now.Add(2 * time.Hour).Unix()}, "max_token_lifetime"},
				"OtherUserPool":   {[]any{"iss", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"}, "another authorization server"},
				"ExpiredGenuine":  {[]any{"exp", now.Add(-time.Hour).Unix(), "iat", now.Add(-90 * time.Minute).Unix()}, "expired"},
			}},
		{name: "entra", header: map[string]any{"typ": "JWT"},
			good: map[string]any{"aud": "api://idmcp", "iss": "https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/",
				"iat": iat, "nbf": iat, "exp": exp, "appid": "client-app", "scp": "todo:read", "roles": []any{"Tools.Admin"},
				"sub": "s-1", "tid": "9188040d-6c67-4c5b-b112-36a304b66dad", "ver": "1.0"},
			wrong: map[string]wrongField{
				"OtherTenant": {[]any{"iss", "https://sts.windows.net/00000000-0000-0000-0000-000000000000/"}, "another authorization server"},
				"GraphToken":  {[]any{"aud", "00000003-0000-0000-c000-000000000000"}, "audience"},
			}},
		{name: "okta", header: map[string]any{"typ": nil},
			good: map[string]any{"ver": 1, "jti": "AT.x", "iss": "https://dev-123456.okta.com/oauth2/default", "aud": "api://idmcp",
				"iat": iat, "exp": exp, "cid": "0oa1", "uid": "00u1", "scp": []any{"todo:read"}, "sub": "alice@example.com"},
			wrong: map[string]wrongField{
				"OrgAuthorizationServer": {[]any{"iss", "https://dev-123456.okta.com"}, "another authorization server"},
				"IDToken":                {[]any{"nonce", "n"}, "ID token"},
			}},
		{name: "auth0", header: map[string]any{"typ": "JWT"},
			good: map[string]any{"iss": "https://my-tenant.eu.auth0.com/", "sub": "auth0|1", "aud": []any{"https://mcp.example.com/mcp", "https://my-tenant.eu.auth0.com/userinfo"},
				"azp": "c1", "iat": iat, "exp": exp, "scope": "openid", "permissions": []any{"todo:read"}, "https://mcp.example.com/roles": []any{"admin"}},
			wrong: map[string]wrongField{
				"UserinfoAudienceOnly": {[]any{"aud", "https://my-tenant.eu.auth0.com/userinfo"}, "audience"},
			}},
		{name: "keycloak", header: map[string]any{"typ": "JWT"},
			good: map[string]any{"iss": "https://sso.example.com/realms/acme", "aud": []any{"idmcp", "account"}, "sub": "k-1", "typ": "Bearer",
				"azp": "mcp-client", "iat": iat, "exp": exp, "scope": "openid todo:read",
				"realm_access": map[string]any{"roles": []any{"user"}}, "resource_access": map[string]any{"idmcp": map[string]any{"roles": []any{"admin"}}}},
			wrong: map[string]wrongField{
				"AccountAudience": {[]any{"aud", "account"}, "audience"},
				"RefreshToken":    {[]any{"typ", "Refresh"}, "refresh token"},
			}},
		{name: "google",
			opaque: map[string]any{"aud": "123-agent.apps.googleusercontent.com", "azp": "123-agent.apps.googleusercontent.com",
				"sub": "1101", "scope": "openid https://www.googleapis.com/auth/userinfo.email",
				"exp": fmt.Sprint(exp), "expires_in": "1799", "email": "alice@example.com"}},
		{name: "github",
			opaque: map[string]any{"id": 1, "scopes": []any{"read:user"}, "app": map[string]any{"client_id": "Iv1.0123456789abcdef"},
				"user": map[string]any{"login": "octocat", "id": 1}, "expires_at": now.Add(8 * time.Hour).UTC().Format(time.RFC3339)}},
	}
}

// opaqueStandIn answers as Google's tokeninfo (GET ?access_token=, 400 for
// unknown tokens) and GitHub's "Check a token" (POST
// /applications/{id}/token with the app's basic auth, 404 for unknown
// tokens) do, for the one token "good-opaque".
func opaqueStandIn(t *testing.T, answer map[string]any, secret string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	write := func(w http.ResponseWriter, ok bool, notFound int) {
		if !ok {
			http.Error(w, `{"error":"invalid_token"}`, notFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tokeninfo", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		write(w, r.URL.Query().Get("access_token") == "good-opaque", http.StatusBadRequest)
	})
	mux.HandleFunc("POST /applications/{id}/token", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if id, sec, _ := r.BasicAuth(); id != r.PathValue("id") || sec != secret {
			http.Error(w, `{"message":"Requires authentication"}`, http.StatusUnauthorized)
			return
		}
		var b struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		write(w, b.AccessToken == "good-opaque", http.StatusNotFound)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s, &hits
}

func TestServeHTTP_Providers(t *testing.T) {
	t.Parallel()
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	key := iss.Key(t, "rsa-1")
	now := time.Now()
	for _, f := range providerFixtures(now) {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			policy, err := filepath.Abs(filepath.Join("testdata", "providers", f.name+".toml"))
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"--http", "127.0.0.1:0", "--data-dir", t.TempDir(), "--policy", policy}
			var env []string
			var hits *atomic.Int64
			if f.opaque != nil {
				const secret = "github-app-secret"
				var srv *httptest.Server
				srv, hits = opaqueStandIn(t, f.opaque, secret)
				u := srv.URL + "/tokeninfo"
				if f.name == "github" {
					u = srv.URL
				}
				args = append(args, "--introspection-url", u)
				env = []string{"IDMCP_INTROSPECTION_SECRET=" + secret}
			} else {
				args = append(args, "--jwks-url", iss.JWKSURL())
			}
			s := startBearerServerWith(t, env, args...)

			good := "good-opaque"
			if f.opaque == nil {
				good = jwttest.SignWith(t, key, f.good, f.header)
			}
			for range 2 {
				status, _, body := s.post(t, good, listRequest)
				if status != http.StatusOK || !strings.Contains(string(body), `"todo_list"`) {
					t.Fatalf("good %s token: %d %s\nstderr:\n%s", f.name, status, body, s.stderr.String())
				}
			}
			if hits != nil && hits.Load() != 1 {
				t.Errorf("%s endpoint asked %d times for two requests, want 1 (cached)", f.name, hits.Load())
			}
			if f.opaque != nil {
				status, hdr, _ := s.post(t, "revoked-opaque", listRequest)
				if status != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), `error_description="the access token is not active"`) {
					t.Errorf("unknown opaque token: %d %q", status, hdr.Get("WWW-Authenticate"))
				}
			}
			for name, w := range f.wrong {
				status, hdr, _ := s.post(t, jwttest.SignWith(t, key, jwttest.Edit(f.good, w.edit...), f.header), listRequest)
				ch := hdr.Get("WWW-Authenticate")
				if status != http.StatusUnauthorized || !strings.HasPrefix(ch, `Bearer error="invalid_token"`) || !strings.Contains(ch, w.desc) {
					t.Errorf("%s: %d %q, want 401 invalid_token mentioning %q", name, status, ch, w.desc)
				}
			}
		})
	}
}
