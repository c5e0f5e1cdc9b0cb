package jwt_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth"
	jwtauth "github.com/idmcp/idmcp/auth/jwt"
	"github.com/idmcp/idmcp/auth/jwt/jwttest"
)

// Fixture tokens in each provider's documented shape (header and claims as
// the provider issues them), signed by a test key that a loopback JWKS
// serves as that provider's. The issuers are the providers' real issuer
// forms: the verifier never contacts them because jwks_url is given.
const (
	tenant      = "9188040d-6c67-4c5b-b112-36a304b66dad"
	cognitoIss  = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example1"
	entraV2Iss  = "https://login.microsoftonline.com/" + tenant + "/v2.0"
	entraV1Iss  = "https://sts.windows.net/" + tenant + "/"
	oktaIss     = "https://dev-123456.okta.com/oauth2/default"
	auth0Iss    = "https://my-tenant.eu.auth0.com/"
	keycloakIss = "https://sso.example.com/realms/acme"
)

// providerCase is one provider's fixture: its configuration, the header
// and claims of a good access token, and the principal it must yield.
type providerCase struct {
	provider  jwtauth.Provider
	issuer    string
	audiences []string
	claims    jwtauth.ClaimMapping
	header    map[string]any // merged over {alg, kid, typ: at+jwt}; nil value removes
	good      map[string]any
	wantSub   string
	wantAgent string
	wantScope []string
	wantRoles []string
	// refusals: a name, the edit to the header/claims, and a substring of
	// the reason.
	refusals []refusal
}

type refusal struct {
	name   string
	header map[string]any
	edit   []any // jwttest.Edit pairs on the good claims
	reason string
}

func providerCases(now time.Time) []providerCase {
	iat, exp := now.Unix(), now.Add(time.Hour).Unix()
	return []providerCase{
		{
			// docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html
			provider: jwtauth.ProviderCognito, issuer: cognitoIss, audiences: []string{"1example23456789"},
			header: map[string]any{"typ": nil},
			good: map[string]any{
				"sub": "aaaaaaaa-bbbb-cccc-dddd-example", "cognito:groups": []any{"admin", "ops"},
				"iss": cognitoIss, "version": 2, "client_id": "1example23456789", "origin_jti": "a1b2",
				"token_use": "access", "scope": "https://mcp.example.com/tools.read openid", "auth_time": iat,
				"exp": exp, "iat": iat, "jti": "c3d4", "username": "alice",
			},
			claims:  jwtauth.ClaimMapping{ScopePrefix: "https://mcp.example.com/"},
			wantSub: "aaaaaaaa-bbbb-cccc-dddd-example", wantAgent: "1example23456789",
			wantScope: []string{"tools.read", "openid"}, wantRoles: []string{"admin", "ops"},
			refusals: []refusal{
				{name: "IDToken", edit: []any{"token_use", "id", "aud", "1example23456789", "client_id", nil}, reason: "client_id claim is required"},
				{name: "IDTokenWithClientID", edit: []any{"token_use", "id"}, reason: `token_use is "id"`},
				{name: "OtherAppClient", edit: []any{"client_id", "9other"}, reason: "token has invalid audience"},
				{name: "NoClientID", edit: []any{"client_id", nil}, reason: "client_id claim is required"},
				{name: "OtherUserPool", edit: []any{"iss", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"}, reason: "token has invalid issuer"},
				{name: "TypWrong", header: map[string]any{"typ": "id+jwt"}, reason: "is not at+jwt or jwt"},
				{name: "Expired", edit: []any{"exp", now.Add(-time.Hour).Unix(), "iat", now.Add(-2 * time.Hour).Unix()}, reason: "token is expired"},
			},
		},
		{
			// learn.microsoft.com/entra/identity-platform/access-token-claims-reference (v2.0)
			provider: jwtauth.ProviderEntra, issuer: entraV2Iss, audiences: []string{"6e74172b-be56-4843-9ff4-e66a39bb12e3", "api://idmcp"},
			header: map[string]any{"typ": "JWT"},
			good: map[string]any{
				"aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "iss": entraV2Iss, "iat": iat, "nbf": iat, "exp": exp,
				"aio": "AWQAm/8T", "azp": "a0a1b2c3-client", "azpacr": "1", "name": "Abe Lincoln",
				"oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474", "preferred_username": "abeli@microsoft.com",
				"rh": "I", "scp": "tools.read tools.write", "roles": []any{"Tools.Admin"},
				"sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ", "tid": tenant, "uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "2.0",
			},
			wantSub: "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ", wantAgent: "a0a1b2c3-client",
			wantScope: []string{"tools.read", "tools.write"}, wantRoles: []string{"Tools.Admin"},
			refusals: []refusal{
				{name: "OtherTenantV1", edit: []any{"iss", "https://sts.windows.net/00000000-0000-0000-0000-000000000000/"}, reason: "token has invalid issuer"},
				{name: "OtherAPI", edit: []any{"aud", "00000003-0000-0000-c000-000000000000"}, reason: "token has invalid audience"},
				{name: "IDTokenNonce", edit: []any{"nonce", "n-0S6_WzA2Mj"}, reason: "carries nonce"},
				{name: "NoTyp", header: map[string]any{"typ": nil}, reason: "token header has no typ"},
			},
		},
		{
			// developer.okta.com access token: header {kid, alg}; claims ver, jti, iss, aud, iat, exp, cid, uid, scp (array), sub
			provider: jwtauth.ProviderOkta, issuer: oktaIss, audiences: []string{"api://default"},
			header: map[string]any{"typ": nil},
			good: map[string]any{
				"ver": 1, "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE", "iss": oktaIss, "aud": "api://default",
				"iat": iat, "exp": exp, "cid": "0oa1example", "uid": "00u1example", "scp": []any{"tools.read", "openid"},
				"auth_time": iat, "sub": "alice@example.com", "groups": []any{"Everyone", "mcp-admins"},
			},
			wantSub: "alice@example.com", wantAgent: "0oa1example",
			wantScope: []string{"tools.read", "openid"}, wantRoles: []string{"Everyone", "mcp-admins"},
			refusals: []refusal{
				{name: "OrgServer", edit: []any{"iss", "https://dev-123456.okta.com"}, reason: "token has invalid issuer"},
				{name: "OtherAudience", edit: []any{"aud", "api://other"}, reason: "token has invalid audience"},
				{name: "IDToken", edit: []any{"at_hash", "x", "aud", "api://default"}, reason: "carries at_hash"},
			},
		},
		{
			// auth0.com/docs/secure/tokens/access-tokens/access-token-profiles (Auth0 profile, typ JWT)
			provider: jwtauth.ProviderAuth0, issuer: auth0Iss, audiences: []string{"https://mcp.example.com/mcp"},
			header: map[string]any{"typ": "JWT"},
			good: map[string]any{
				"iss": auth0Iss, "sub": "auth0|123456", "aud": []any{"https://mcp.example.com/mcp", "https://my-tenant.eu.auth0.com/userinfo"},
				"azp": "my_client_id", "exp": exp, "iat": iat, "scope": "openid profile tools.read",
				"permissions": []any{"tools.write"}, "https://my-tenant.eu.auth0.com/roles": []any{"admin"},
			},
			wantSub: "auth0|123456", wantAgent: "my_client_id",
			wantScope: []string{"openid", "profile", "tools.read", "tools.write"}, wantRoles: []string{"admin"},
			refusals: []refusal{
				{name: "UserinfoOnly", edit: []any{"aud", "https://my-tenant.eu.auth0.com/userinfo"}, reason: "token has invalid audience"},
				{name: "IssuerWithoutSlash", edit: []any{"iss", "https://my-tenant.eu.auth0.com"}, reason: "token has invalid issuer"},
				{name: "IDToken", edit: []any{"nonce", "abc"}, reason: "carries nonce"},
			},
		},
		{
			// Keycloak access token: header typ JWT; claims typ "Bearer", azp, realm_access, resource_access
			provider: jwtauth.ProviderKeycloak, issuer: keycloakIss, audiences: []string{"idmcp"},
			claims: jwtauth.ClaimMapping{RoleClaims: []string{"realm_access.roles", "resource_access.idmcp.roles"}},
			header: map[string]any{"typ": "JWT"},
			good: map[string]any{
				"exp": exp, "iat": iat, "jti": "onrtac:1", "iss": keycloakIss, "aud": []any{"idmcp", "account"},
				"sub": "f:1234:alice", "typ": "Bearer", "azp": "mcp-client", "sid": "s1", "acr": "1",
				"realm_access":    map[string]any{"roles": []any{"offline_access", "default-roles-acme"}},
				"resource_access": map[string]any{"idmcp": map[string]any{"roles": []any{"operator"}}, "account": map[string]any{"roles": []any{"manage-account"}}},
				"scope":           "openid tools.read", "preferred_username": "alice",
			},
			wantSub: "f:1234:alice", wantAgent: "mcp-client",
			wantScope: []string{"openid", "tools.read"}, wantRoles: []string{"offline_access", "default-roles-acme", "operator"},
			refusals: []refusal{
				{name: "AccountAudienceOnly", edit: []any{"aud", "account"}, reason: "token has invalid audience"},
				{name: "IDTokenTypClaim", edit: []any{"typ", "ID"}, reason: `typ claim is "ID"`},
				{name: "RefreshToken", edit: []any{"typ", "Refresh"}, reason: `typ claim is "Refresh"`},
				{name: "OtherRealm", edit: []any{"iss", "https://sso.example.com/realms/master"}, reason: "token has invalid issuer"},
			},
		},
		{
			// RFC 9068 as written: what generic accepts, and generic stays strict.
			provider: jwtauth.ProviderGeneric, issuer: "https://as.example.com", audiences: []string{aud},
			good: map[string]any{
				"iss": "https://as.example.com", "sub": "alice", "aud": aud, "client_id": "c1", "exp": exp, "iat": iat,
				"jti": "j1", "scope": "tools.read", "roles": []any{"admin"},
			},
			wantSub: "alice", wantAgent: "c1", wantScope: []string{"tools.read"}, wantRoles: []string{"admin"},
			refusals: []refusal{
				{name: "CognitoShapeNoTyp", header: map[string]any{"typ": nil}, reason: "token header has no typ"},
				{name: "CognitoShapeNoAud", edit: []any{"aud", nil}, reason: "aud claim is required"},
				{name: "IDToken", edit: []any{"nonce", "n"}, reason: "carries nonce"},
				{name: "CognitoIDToken", edit: []any{"token_use", "id"}, reason: `token_use is "id"`},
			},
		},
	}
}

func TestVerifier_Providers(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	key := iss.Key(t, "rsa-1")
	now := time.Now()
	for _, pc := range providerCases(now) {
		t.Run(string(pc.provider), func(t *testing.T) {
			v, err := jwtauth.New(context.Background(), jwtauth.Config{
				Provider: pc.provider, Issuer: pc.issuer, Audiences: pc.audiences, JWKSURL: iss.JWKSURL(),
				Claims: pc.claims, CacheSize: -1,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(v.Close)
			t.Run("OK", func(t *testing.T) {
				p, err := v.Verify(context.Background(), jwttest.SignWith(t, key, pc.good, pc.header))
				if err != nil {
					t.Fatalf("good %s token refused: %v", pc.provider, reasonOf(err))
				}
				if p.Subject != pc.wantSub || p.ClientID != pc.wantAgent {
					t.Errorf("subject, agent = %q, %q; want %q, %q", p.Subject, p.ClientID, pc.wantSub, pc.wantAgent)
				}
				if !slices.Equal(p.Scopes, pc.wantScope) {
					t.Errorf("scopes = %v, want %v", p.Scopes, pc.wantScope)
				}
				if !slices.Equal(p.Roles, pc.wantRoles) {
					t.Errorf("roles = %v, want %v", p.Roles, pc.wantRoles)
				}
			})
			for _, r := range pc.refusals {
				t.Run(r.name, func(t *testing.T) {
					h := map[string]any{}
					for k, val := range pc.header {
						h[k] = val
					}
					for k, val := range r.header {
						h[k] = val
					}
					_, err := v.Verify(context.Background(), jwttest.SignWith(t, key, jwttest.Edit(pc.good, r.edit...), h))
					if got := kindOf(err); got != auth.KindInvalidToken {
						t.Fatalf("kind = %v (%v), want invalid_token", got, err)
					}
					if !strings.Contains(reasonOf(err), r.reason) {
						t.Errorf("reason = %q, want it to contain %q", reasonOf(err), r.reason)
					}
				})
			}
		})
	}
}

// TestVerifier_EntraV1Issuer: an Entra deployment configured with the v2
// issuer also accepts the tenant's v1 tokens (iss https://sts.windows.net/{tid}/,
// scp, appid as the client), and the principal carries the token's issuer.
func TestVerifier_EntraV1Issuer(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	now := time.Now()
	v := MustVerifierAt(t, jwtauth.Config{Provider: jwtauth.ProviderEntra, Issuer: entraV2Iss, Audiences: []string{"api://idmcp"}, JWKSURL: iss.JWKSURL()})
	tok := jwttest.SignWith(t, iss.Key(t, "rsa-1"), map[string]any{
		"aud": "api://idmcp", "iss": entraV1Iss, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"appid": "a0a1b2c3-client", "scp": "tools.read", "sub": "s1", "tid": tenant, "ver": "1.0",
	}, map[string]any{"typ": "JWT"})
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("v1 token refused: %v", reasonOf(err))
	}
	if p.Issuer != entraV1Iss || p.ClientID != "a0a1b2c3-client" {
		t.Errorf("issuer, agent = %q, %q", p.Issuer, p.ClientID)
	}
}

// TestVerifier_Overrides: every convention can be set against the provider's.
func TestVerifier_Overrides(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	key := iss.Key(t, "rsa-1")
	now := time.Now()
	claims := map[string]any{"iss": cognitoIss, "sub": "s", "client_id": "app1", "token_use": "access",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scope": "a"}
	no, yes := false, true
	cases := []struct {
		name   string
		cfg    jwtauth.Config
		header map[string]any
		claims map[string]any
		reason string // "" accepted
	}{
		{name: "CognitoUntypedRefusedByOverride", cfg: jwtauth.Config{Provider: jwtauth.ProviderCognito, AllowUntypedTokens: &no},
			header: map[string]any{"typ": nil}, claims: claims, reason: "token header has no typ"},
		{name: "GenericUntypedAllowed", cfg: jwtauth.Config{AllowUntypedTokens: &yes, AudienceClaim: "client_id"},
			header: map[string]any{"typ": nil}, claims: claims},
		{name: "AcceptedTypesNarrowed", cfg: jwtauth.Config{AcceptedTypes: []string{"at+jwt"}, AudienceClaim: "client_id"},
			header: map[string]any{"typ": "JWT"}, claims: claims, reason: `"JWT" is not at+jwt (accepted_types)`},
		{name: "IDTokensAllowedByOverride", cfg: jwtauth.Config{Provider: jwtauth.ProviderCognito, RefuseIDTokens: &no},
			header: map[string]any{"typ": nil}, claims: jwttest.Edit(claims, "token_use", "id")},
		{name: "MaxLifetime", cfg: jwtauth.Config{Provider: jwtauth.ProviderCognito, MaxTokenLifetime: 30 * time.Minute},
			header: map[string]any{"typ": nil}, claims: claims, reason: "exceeds max_token_lifetime 30m0s"},
		{name: "MaxLifetimeOK", cfg: jwtauth.Config{Provider: jwtauth.ProviderCognito, MaxTokenLifetime: time.Hour},
			header: map[string]any{"typ": nil}, claims: claims},
		{name: "MaxLifetimeNoIat", cfg: jwtauth.Config{Provider: jwtauth.ProviderCognito, MaxTokenLifetime: time.Hour},
			header: map[string]any{"typ": nil}, claims: jwttest.Edit(claims, "iat", nil), reason: "token has no iat"},
		{name: "RoleClaimOverride", cfg: jwtauth.Config{Provider: jwtauth.ProviderCognito, Claims: jwtauth.ClaimMapping{RoleClaims: []string{"custom:role"}}},
			header: map[string]any{"typ": nil}, claims: jwttest.Edit(claims, "custom:role", "x")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Issuer, cfg.Audiences, cfg.JWKSURL, cfg.CacheSize = cognitoIss, []string{"app1"}, iss.JWKSURL(), -1
			v := MustVerifierAt(t, cfg)
			p, err := v.Verify(context.Background(), jwttest.SignWith(t, key, c.claims, c.header))
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", reasonOf(err))
				}
				if c.name == "RoleClaimOverride" && !slices.Equal(p.Roles, []string{"x"}) {
					t.Errorf("roles = %v", p.Roles)
				}
				return
			}
			if err == nil || !strings.Contains(reasonOf(err), c.reason) {
				t.Fatalf("err = %v, want reason containing %q", reasonOf(err), c.reason)
			}
		})
	}
}

// TestVerifier_ClaimsRefusedMarker: a genuine token refused for its claims
// carries ErrClaimsRefused (the transport answers it 401 even past the
// failure budget); a forged one does not.
func TestVerifier_ClaimsRefusedMarker(t *testing.T) {
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	v := MustVerifier(t, iss, jwtauth.Config{CacheSize: -1})
	now := time.Now()
	good := iss.Claims("alice", aud, "", now)
	for _, c := range []struct {
		name    string
		tok     string
		genuine bool
		desc    string
	}{
		{"Expired", iss.Token(t, jwttest.Edit(good, "exp", now.Add(-time.Hour).Unix(), "iat", now.Add(-2*time.Hour).Unix())), true, "expired"},
		{"WrongAudience", iss.Token(t, jwttest.Edit(good, "aud", "https://other.test")), true, "audience"},
		{"IDToken", iss.Token(t, jwttest.Edit(good, "nonce", "x")), true, "ID token"},
		{"ForeignKey", jwttest.SignWith(t, jwttest.NewRSAKey(t, "rsa-1"), good, nil), false, "signature"},
		{"Garbage", "abc.def.ghi", false, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), c.tok)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := errorsIs(err, jwtauth.ErrClaimsRefused); got != c.genuine {
				t.Errorf("ErrClaimsRefused in chain = %v, want %v (%v)", got, c.genuine, reasonOf(err))
			}
			if d := jwtauth.Description(err); !strings.Contains(d, c.desc) {
				t.Errorf("Description = %q, want it to mention %q", d, c.desc)
			}
		})
	}
}

// MustVerifierAt returns a Verifier for cfg as given.
func MustVerifierAt(tb testing.TB, cfg jwtauth.Config) *jwtauth.Verifier {
	tb.Helper()
	v, err := jwtauth.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return v
}

// reasonOf is the audit reason of a refusal: the *auth.Error's cause.
func reasonOf(err error) string {
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Err != nil {
		return ae.Err.Error()
	}
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
