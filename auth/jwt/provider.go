package jwt

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/idmcp/idmcp/auth"
)

// Provider names an identity provider whose token conventions the verifier
// follows. Providers disagree on the typ header, on where the audience is,
// on the issuer's form and on where scopes and roles live; Conventions says
// what each one does, and every convention stays individually overridable
// (Config's fields win over the provider's).
type Provider string

// Known providers.
const (
	// ProviderGeneric is RFC 9068 as written: typ at+jwt (or JWT), aud holds
	// the resource, scope/scp/permissions, roles. The strictest, and the
	// default.
	ProviderGeneric Provider = "generic"
	// ProviderCognito is Amazon Cognito user pools. Its access tokens carry no
	// typ header and no aud; the app client is in client_id, groups in
	// cognito:groups, and token_use says "access" or "id" ("Understanding the
	// access token", docs.aws.amazon.com/cognito/latest/developerguide/
	// amazon-cognito-user-pools-using-the-access-token.html: header has only
	// kid and alg).
	ProviderCognito Provider = "cognito"
	// ProviderEntra is Microsoft Entra ID. typ is "JWT"; scopes are in scp
	// (space-separated), app roles in roles; the issuer is
	// https://login.microsoftonline.com/{tid}/v2.0 for v2 tokens and
	// https://sts.windows.net/{tid}/ for v1 ones, both signed by the tenant's
	// keys (learn.microsoft.com/entra/identity-platform/access-token-claims-reference).
	ProviderEntra Provider = "entra"
	// ProviderOkta is an Okta custom authorization server: scp is an array,
	// the client is in cid, groups come from a "groups" claim the admin adds
	// (developer.okta.com/docs/api/openapi/okta-oauth/guides/overview,
	// help.okta.com "Create API access claims").
	ProviderOkta Provider = "okta"
	// ProviderAuth0 is Auth0: typ "JWT" under the default "Auth0 token
	// profile" and at+jwt under the RFC 9068 profile; aud is an array with
	// the API identifier; roles only in namespaced custom claims such as
	// "https://example.com/roles", RBAC permissions in permissions
	// (auth0.com/docs/secure/tokens/access-tokens/access-token-profiles,
	// auth0.com/docs/secure/tokens/json-web-tokens/create-custom-claims).
	ProviderAuth0 Provider = "auth0"
	// ProviderKeycloak is Keycloak: typ "JWT", the token kind in a "typ"
	// claim ("Bearer", "ID", "Refresh"), realm roles in realm_access.roles
	// and client roles in resource_access.<client>.roles; aud is "account"
	// unless an Audience mapper adds the resource (phasetwo.io
	// "Keycloak Audience: Get the aud Claim Right").
	ProviderKeycloak Provider = "keycloak"
	// ProviderGoogle is Google: access tokens are opaque and only Google's
	// tokeninfo endpoint can check them (see Introspector); its JWTs are ID
	// tokens, which are refused as access tokens.
	ProviderGoogle Provider = "google"
	// ProviderGitHub is GitHub: OAuth and GitHub App user tokens are opaque
	// and checked with the "Check a token" API (see Introspector).
	ProviderGitHub Provider = "github"
)

// Providers lists the known providers.
func Providers() []Provider {
	return []Provider{ProviderGeneric, ProviderCognito, ProviderEntra, ProviderOkta, ProviderAuth0, ProviderKeycloak, ProviderGoogle, ProviderGitHub}
}

// ParseProvider returns the provider named s ("" is generic).
func ParseProvider(s string) (Provider, error) {
	if s == "" {
		return ProviderGeneric, nil
	}
	p := Provider(strings.ToLower(s))
	if slices.Contains(Providers(), p) {
		return p, nil
	}
	names := make([]string, 0, 8)
	for _, q := range Providers() {
		names = append(names, string(q))
	}
	return "", fmt.Errorf("provider %q: want one of %s: %w", s, strings.Join(names, ", "), auth.ErrInvalidConfig)
}

// Opaque reports whether p's access tokens are opaque (checked by the
// provider's endpoint, not by signature).
func (p Provider) Opaque() bool { return p == ProviderGoogle || p == ProviderGitHub }

// Conventions are the token conventions of a provider.
type Conventions struct {
	// AcceptedTypes are the typ header values accepted, lower case without
	// "application/".
	AcceptedTypes []string
	// AllowUntyped accepts a token without typ.
	AllowUntyped bool
	// AudienceClaim is the claim that must hold an accepted audience: "aud",
	// or "client_id" for providers that leave aud out (Cognito).
	AudienceClaim string
	// ExtraIssuers are accepted besides the configured issuer (Entra's other
	// issuer form).
	ExtraIssuers []string
	// Claims are where scopes, roles and the client are.
	Claims ClaimMapping
	// RefuseIDTokens refuses tokens that are OpenID Connect ID tokens (or
	// refresh tokens) presented as access tokens; see idTokenReason.
	RefuseIDTokens bool
}

// entraIssuer matches the two issuer forms of an Entra tenant.
var (
	entraV2 = regexp.MustCompile(`^https://login\.microsoftonline\.com/([0-9a-fA-F-]{36})/v2\.0$`)
	entraV1 = regexp.MustCompile(`^https://sts\.windows\.net/([0-9a-fA-F-]{36})/$`)
)

// ConventionsFor returns p's conventions for a deployment whose issuer is
// issuer. An unknown provider gets the generic ones.
func ConventionsFor(p Provider, issuer string) Conventions {
	c := Conventions{
		AcceptedTypes:  []string{"at+jwt", "jwt"},
		AudienceClaim:  "aud",
		RefuseIDTokens: true,
	}
	switch p {
	case ProviderCognito:
		c.AllowUntyped = true
		c.AudienceClaim = "client_id"
		c.Claims = ClaimMapping{ScopeClaims: []string{"scope"}, RoleClaims: []string{"cognito:groups"}}
	case ProviderEntra:
		c.Claims = ClaimMapping{ScopeClaims: []string{"scp"}, RoleClaims: []string{"roles"}, ClientClaims: []string{"azp", "appid"}}
		if m := entraV2.FindStringSubmatch(issuer); m != nil {
			c.ExtraIssuers = []string{"https://sts.windows.net/" + m[1] + "/"}
		} else if m := entraV1.FindStringSubmatch(issuer); m != nil {
			c.ExtraIssuers = []string{"https://login.microsoftonline.com/" + m[1] + "/v2.0"}
		}
	case ProviderOkta:
		c.AllowUntyped = true
		c.Claims = ClaimMapping{ScopeClaims: []string{"scp", "scope"}, RoleClaims: []string{"groups"}, ClientClaims: []string{"cid", "client_id"}}
	case ProviderAuth0:
		c.Claims = ClaimMapping{ScopeClaims: []string{"scope", "permissions"}, RoleClaims: []string{"roles"}}
		if u, err := url.Parse(issuer); err == nil && u.Host != "" {
			// Auth0 recommends namespacing custom claims with a URL the
			// tenant controls; its own domain is the usual choice.
			c.Claims.RoleClaims = []string{"https://" + u.Host + "/roles", "roles"}
		}
	case ProviderKeycloak:
		c.Claims = ClaimMapping{ScopeClaims: []string{"scope"}, RoleClaims: []string{"realm_access.roles"}}
	}
	return c
}

// idTokenReason says why claims are an ID token (or another non-access
// token) rather than an access token, or "" when they are not:
// nonce, at_hash, c_hash and s_hash exist only in ID tokens (OpenID Connect
// Core §2, §3.1.3.6, §3.3.2.11; FAPI), Cognito marks its tokens with
// token_use, Keycloak with a typ claim.
func idTokenReason(claims map[string]any) string {
	for _, c := range []string{"nonce", "at_hash", "c_hash", "s_hash"} {
		if _, ok := claims[c]; ok {
			return "token carries " + c + ": it is an OpenID Connect ID token, not an access token"
		}
	}
	if v, ok := claims["token_use"]; ok {
		if s, _ := v.(string); s != "access" {
			return fmt.Sprintf("token_use is %q, not \"access\": an ID token is not an access token", fmt.Sprint(v))
		}
	}
	if v, ok := claims["typ"].(string); ok {
		switch strings.ToLower(v) {
		case "id", "refresh", "offline", "logout":
			return fmt.Sprintf("token typ claim is %q: only access tokens (\"Bearer\") are accepted", v)
		}
	}
	return ""
}
