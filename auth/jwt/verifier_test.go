package jwt_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth"
	jwtauth "github.com/idmcp/idmcp/auth/jwt"
	"github.com/idmcp/idmcp/auth/jwt/jwttest"
)

const aud = "https://mcp.test/mcp"

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// MustVerifier returns a Verifier for iss with cfg's other fields.
func MustVerifier(tb testing.TB, iss *jwttest.Issuer, cfg jwtauth.Config) *jwtauth.Verifier {
	tb.Helper()
	cfg.Issuer = iss.URL
	if cfg.Audiences == nil {
		cfg.Audiences = []string{aud}
	}
	v, err := jwtauth.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return v
}

// kindOf returns the auth.Kind of err (0 when nil).
func kindOf(err error) auth.Kind { return auth.KindOf(err) }

// eventually polls cond every 20 ms for at most d.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNew_Discovery(t *testing.T) {
	cases := []struct {
		name    string
		opts    jwttest.Options
		wantErr error
	}{
		{name: "RFC8414"},
		{name: "OIDCFallback", opts: jwttest.Options{OIDCOnly: true}},
		{name: "ErrIssuerMismatch", opts: jwttest.Options{MetadataIssuer: "https://evil.test"}, wantErr: jwtauth.ErrDiscovery},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			iss := jwttest.NewIssuer(t, tc.opts)
			v, err := jwtauth.New(context.Background(), jwtauth.Config{Issuer: iss.URL, Audiences: []string{aud}})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err=%v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if !v.Ready() {
				t.Fatal("not ready after New")
			}
			if got, want := v.JWKSURL(), iss.JWKSURL(); got != want {
				t.Fatalf("jwks=%q, want %q", got, want)
			}
			tok := iss.Token(t, iss.Claims("alice", aud, "todo:read", time.Now()))
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConfig_Validate(t *testing.T) {
	ok := jwtauth.Config{Issuer: "https://issuer.test", Audiences: []string{aud}}
	cases := []struct {
		name  string
		edit  func(*jwtauth.Config)
		field string
	}{
		{name: "OK", edit: func(*jwtauth.Config) {}},
		{name: "OKLoopbackHTTP", edit: func(c *jwtauth.Config) { c.Issuer = "http://127.0.0.1:9999" }},
		{name: "OKLocalhostHTTP", edit: func(c *jwtauth.Config) { c.Issuer = "http://localhost:9999/realms/x" }},
		{name: "ErrPlainHTTPIssuer", edit: func(c *jwtauth.Config) { c.Issuer = "http://issuer.example.com" }, field: `"issuer"`},
		{name: "ErrRelativeIssuer", edit: func(c *jwtauth.Config) { c.Issuer = "/issuer" }, field: `"issuer"`},
		{name: "ErrIssuerQuery", edit: func(c *jwtauth.Config) { c.Issuer = "https://issuer.test/?a=b" }, field: `"issuer"`},
		{name: "ErrNoAudience", edit: func(c *jwtauth.Config) { c.Audiences = nil }, field: `"audiences"`},
		{name: "ErrEmptyAudience", edit: func(c *jwtauth.Config) { c.Audiences = []string{""} }, field: `"audiences"`},
		{name: "ErrPlainHTTPJWKS", edit: func(c *jwtauth.Config) { c.JWKSURL = "http://keys.example.com/jwks" }, field: `"jwks_url"`},
		{name: "ErrLeewayTooLarge", edit: func(c *jwtauth.Config) { c.Leeway = 2 * time.Minute }, field: `"leeway"`},
		{name: "ErrEmptyScopeClaim", edit: func(c *jwtauth.Config) { c.Claims.ScopeClaims = []string{""} }, field: `"claims.scope_claims"`},
		{name: "ErrBadRolePath", edit: func(c *jwtauth.Config) { c.Claims.RoleClaims = []string{"realm_access."} }, field: `"claims.role_claims"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) || !errors.Is(err, auth.ErrInvalidConfig) {
				t.Fatalf("err=%v, want a %s field error wrapping ErrInvalidConfig", err, tc.field)
			}
		})
	}
}

// TestVerifier_KeyRotation: the identity provider starts signing with a new
// key; tokens under the new kid are accepted without a restart (one
// rate-limited refetch), and a key the provider withdraws stops verifying
// after the next periodic refresh.
func TestVerifier_KeyRotation(t *testing.T) {
	k1 := jwttest.NewRSAKey(t, "rsa-1")
	iss := jwttest.NewIssuer(t, jwttest.Options{Keys: []jwttest.Key{k1}})
	v := MustVerifier(t, iss, jwtauth.Config{RefreshInterval: 100 * time.Millisecond, CacheSize: -1})
	now := time.Now()
	ctx := context.Background()
	if _, err := v.Verify(ctx, jwttest.SignWith(t, k1, iss.Claims("alice", aud, "", now), nil)); err != nil {
		t.Fatal(err)
	}

	k2 := jwttest.NewECKey(t, "ec-2")
	iss.SetKeys(k1, k2)
	if _, err := v.Verify(ctx, jwttest.SignWith(t, k2, iss.Claims("alice", aud, "", now), nil)); err != nil {
		t.Fatalf("token under the new kid refused: %v (%v)", err, errors.Unwrap(err))
	}

	iss.SetKeys(k2)
	eventually(t, 5*time.Second, "withdrawn key stops verifying", func() bool {
		_, err := v.Verify(ctx, jwttest.SignWith(t, k1, iss.Claims("alice", aud, "", time.Now()), nil))
		return kindOf(err) == auth.KindInvalidToken
	})
	if _, err := v.Verify(ctx, jwttest.SignWith(t, k2, iss.Claims("alice", aud, "", now), nil)); err != nil {
		t.Fatalf("current key refused after rotation: %v", err)
	}
}

// TestVerifier_UnknownKIDRateLimited: a burst of tokens under unknown kids
// causes one JWKS refetch, not one per token, and each is refused at once.
func TestVerifier_UnknownKIDRateLimited(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	v := MustVerifier(t, iss, jwtauth.Config{UnknownKIDInterval: time.Minute})
	before := iss.JWKSFetches()
	junk := jwttest.NewRSAKey(t, "x")
	start := time.Now()
	for i := range 20 {
		junk.KID = fmt.Sprintf("junk-%d", i)
		_, err := v.Verify(context.Background(), jwttest.SignWith(t, junk, iss.Claims("mallory", aud, "", time.Now()), nil))
		if got, want := kindOf(err), auth.KindInvalidToken; got != want {
			t.Fatalf("kind=%v, want %v (%v)", got, want, err)
		}
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("20 junk tokens took %s; refusals must not wait for the limiter", elapsed)
	}
	if got, want := iss.JWKSFetches()-before, 1; got != want {
		t.Fatalf("JWKS refetches=%d, want %d", got, want)
	}
	t.Logf("20 unknown-kid tokens: %d refetch, %s", iss.JWKSFetches()-before, time.Since(start))
}

// TestVerifier_JWKSDownKeepsKeys: once loaded, keys keep working while the
// identity provider is down, and the Verifier stays ready.
func TestVerifier_JWKSDownKeepsKeys(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	v := MustVerifier(t, iss, jwtauth.Config{RefreshInterval: 50 * time.Millisecond, CacheSize: -1})
	iss.SetDown(true)
	before := iss.JWKSFetches()
	eventually(t, 5*time.Second, "failed refreshes", func() bool { return iss.JWKSFetches() >= before+2 })
	tok := iss.Token(t, iss.Claims("alice", aud, "", time.Now()))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("known key refused while the JWKS is down: %v", err)
	}
	if !v.Ready() {
		t.Fatal("not ready while old keys are loaded")
	}
}

// TestVerifier_UnavailableAtStart: an identity provider that is down when the
// server starts gives KindUnavailable (HTTP 503), not KindInvalidToken, until
// the keys load in the background.
func TestVerifier_UnavailableAtStart(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	iss.SetDown(true)
	v := MustVerifier(t, iss, jwtauth.Config{JWKSURL: iss.JWKSURL(), HTTPTimeout: time.Second})
	if v.Ready() {
		t.Fatal("ready without keys")
	}
	tok := iss.Token(t, iss.Claims("alice", aud, "", time.Now()))
	_, err := v.Verify(context.Background(), tok)
	if got, want := kindOf(err), auth.KindUnavailable; got != want {
		t.Fatalf("kind=%v, want %v (%v)", got, want, err)
	}
	iss.SetDown(false)
	eventually(t, 10*time.Second, "keys load after the provider comes back", v.Ready)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}

// TestVerifier_ResponseSizeCap: a JWKS larger than MaxResponseBytes is not
// loaded.
func TestVerifier_ResponseSizeCap(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", 64<<10) + `"}`))
	}))
	defer srv.Close()
	v, err := jwtauth.New(context.Background(), jwtauth.Config{
		Issuer: srv.URL, Audiences: []string{aud}, JWKSURL: srv.URL + "/jwks", MaxResponseBytes: 4 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.Ready() {
		t.Fatal("ready from an oversized JWKS")
	}
}

// TestVerifier_Cache: a verified token is served from the cache (still
// accepted after its key was withdrawn) for at most MaxCacheTTL, and never
// beyond its exp.
func TestVerifier_Cache(t *testing.T) {
	clk := newClock()
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	v := MustVerifier(t, iss, jwtauth.Config{RefreshInterval: 50 * time.Millisecond, Now: clk.Now, Leeway: time.Second})
	ctx := context.Background()
	long := iss.Token(t, iss.Claims("alice", aud, "", clk.Now()))
	short := iss.Token(t, jwttest.Edit(iss.Claims("bob", aud, "", clk.Now()), "exp", clk.Now().Add(10*time.Second).Unix()))
	for _, tok := range []string{long, short} {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	iss.SetKeys(jwttest.NewRSAKey(t, "rsa-2"))
	eventually(t, 5*time.Second, "old key withdrawn", func() bool {
		_, err := v.Verify(ctx, iss.Token(t, iss.Claims("carol", aud, "", clk.Now())))
		return err == nil // signed with the new key: the refresh happened
	})
	if _, err := v.Verify(ctx, long); err != nil {
		t.Fatalf("cached token refused within its TTL: %v", err)
	}
	clk.Advance(12 * time.Second)
	if _, err := v.Verify(ctx, short); err == nil {
		t.Fatal("cached token accepted past its exp")
	}
	clk.Advance(jwtauth.MaxCacheTTL)
	if _, err := v.Verify(ctx, long); err == nil {
		t.Fatal("token accepted after the cache TTL although its key is gone")
	}
}

// TestVerifier_ClaimMapping covers the claim layouts of common identity providers.
func TestVerifier_ClaimMapping(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	cases := []struct {
		name       string
		mapping    jwtauth.ClaimMapping
		claims     []any
		wantScopes []string
		wantRoles  []string
		wantClient string
		wantActors []string
	}{
		{name: "ScopeString", claims: []any{"scope", "todo:read  todo:write"}, wantScopes: []string{"todo:read", "todo:write"}},
		{name: "EntraSCPAndRoles", claims: []any{"scope", nil, "scp", "todo:read", "roles", []string{"admin"}, "azp", "entra-app", "client_id", nil},
			wantScopes: []string{"todo:read"}, wantRoles: []string{"admin"}, wantClient: "entra-app"},
		{name: "SCPArray", claims: []any{"scope", nil, "scp", []string{"todo:read", "todo:write"}}, wantScopes: []string{"todo:read", "todo:write"}},
		{name: "Auth0Permissions", claims: []any{"scope", "openid", "permissions", []string{"todo:write"}}, wantScopes: []string{"openid", "todo:write"}},
		{name: "KeycloakRealmRoles", mapping: jwtauth.ClaimMapping{RoleClaims: []string{"realm_access.roles"}},
			claims: []any{"realm_access", map[string]any{"roles": []string{"admin", "user"}}}, wantRoles: []string{"admin", "user"}},
		{name: "Auth0NamespacedRoles", mapping: jwtauth.ClaimMapping{RoleClaims: []string{"https://idmcp.test/roles"}},
			claims: []any{"https://idmcp.test/roles", []string{"admin"}}, wantRoles: []string{"admin"}},
		{name: "GroupsAsRoles", mapping: jwtauth.ClaimMapping{RoleClaims: []string{"groups", "roles"}},
			claims: []any{"groups", []string{"eng"}, "roles", "admin"}, wantRoles: []string{"eng", "admin"}},
		{name: "ScopePrefix", mapping: jwtauth.ClaimMapping{ScopePrefix: "https://api.test/"},
			claims: []any{"scope", "https://api.test/todo:read https://api.test/todo:write openid"}, wantScopes: []string{"todo:read", "todo:write", "openid"}},
		{name: "ActChainTwoLevels", claims: []any{"act", map[string]any{"sub": "agent-b", "act": map[string]any{"sub": "agent-a"}}},
			wantActors: []string{"agent-b", "agent-a"}},
		{name: "NoScopes", claims: []any{"scope", nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := MustVerifier(t, iss, jwtauth.Config{Claims: tc.mapping})
			c := jwttest.Edit(iss.Claims("alice", aud, "", time.Now()), tc.claims...)
			p, err := v.Verify(context.Background(), iss.Token(t, c))
			if err != nil {
				t.Fatal(err)
			}
			want := func(s []string) []string {
				if s == nil {
					return []string{}
				}
				return s
			}
			if got, want := p.Scopes, want(tc.wantScopes); !slices.Equal(got, want) {
				t.Fatalf("scopes=%q, want %q", got, want)
			}
			if got, want := p.Roles, want(tc.wantRoles); !slices.Equal(got, want) {
				t.Fatalf("roles=%q, want %q", got, want)
			}
			if got, want := p.Actors, want(tc.wantActors); !slices.Equal(got, want) {
				t.Fatalf("actors=%q, want %q", got, want)
			}
			wantClient := tc.wantClient
			if wantClient == "" {
				wantClient = "test-client"
			}
			if got := p.ClientID; got != wantClient {
				t.Fatalf("client=%q, want %q", got, wantClient)
			}
			if p.Subject != "alice" || p.Transport != "http" || p.Method != auth.MethodJWT || p.Issuer != iss.URL {
				t.Fatalf("principal %+v", p)
			}
		})
	}
}

// TestVerifier_PrincipalIsACopy: changing a returned principal does not
// change what later calls return for the same (cached) token.
func TestVerifier_PrincipalIsACopy(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	v := MustVerifier(t, iss, jwtauth.Config{})
	tok := iss.Token(t, iss.Claims("alice", aud, "todo:read", time.Now()))
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	p.Scopes[0], p.ClientName = "admin", "evil"
	q, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if q.Scopes[0] != "todo:read" || q.ClientName != "" {
		t.Fatalf("cached principal was changed through a returned copy: %+v", q)
	}
}

// BenchmarkVerify measures one Verify of an RS256 token: with the
// verified-token cache (the hot path) and without it (a signature check).
func BenchmarkVerify(b *testing.B) {
	iss := jwttest.NewIssuer(b, jwttest.Options{})
	for _, bc := range []struct {
		name  string
		cache int
	}{{"Cached", 0}, {"Uncached", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			v := MustVerifier(b, iss, jwtauth.Config{CacheSize: bc.cache})
			tok := iss.Token(b, iss.Claims("alice", aud, "todo:read todo:write", time.Now()))
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
