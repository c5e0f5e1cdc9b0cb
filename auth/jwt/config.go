package jwt

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/idmcp/idmcp/auth"
)

// Defaults for Config.
const (
	// DefaultRefreshInterval is how often the JWKS is refetched in the background.
	DefaultRefreshInterval = 15 * time.Minute
	// DefaultUnknownKIDInterval is the least time between two refetches caused by
	// tokens whose kid is not in the key set: rotation is picked up fast, while
	// junk tokens cannot flood the identity provider.
	DefaultUnknownKIDInterval = 10 * time.Second
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway is the largest accepted Leeway (RFC 8725 asks for little skew).
	MaxLeeway = 60 * time.Second
	// DefaultHTTPTimeout bounds one request to the identity provider.
	DefaultHTTPTimeout = 10 * time.Second
	// DefaultMaxResponseBytes caps a metadata or JWKS response body.
	DefaultMaxResponseBytes = 1 << 20
	// DefaultVerifyTimeout bounds one Verify call, including a JWKS refetch.
	DefaultVerifyTimeout = 5 * time.Second
	// DefaultCacheSize bounds the verified-token cache.
	DefaultCacheSize = 4096
	// MaxCacheTTL is the longest a verified token is trusted without
	// re-checking its signature; never beyond its exp either.
	MaxCacheTTL = 60 * time.Second
	// MaxTokenBytes is the largest token accepted; larger ones are refused
	// before any parsing.
	MaxTokenBytes = 16 << 10
	// MaxActDepth bounds the RFC 8693 delegation chain.
	MaxActDepth = 8
)

// Algorithms lists the only signature algorithms accepted: never "none", never
// HMAC (which would let anyone holding the public key forge tokens).
var algorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

// Algorithms returns the accepted signature algorithms.
func Algorithms() []string { return append([]string(nil), algorithms...) }

// ClaimMapping says where scopes and roles live in a token. Identity providers
// disagree: OAuth's "scope" is a space-separated string (RFC 9068, Okta,
// Keycloak, Cognito), Entra ID uses "scp" (string) and "roles" (array), Auth0
// puts RBAC permissions in "permissions" (array), Keycloak puts roles in
// "realm_access.roles". The policy file's [claims] (auth.ClaimMapping) fills
// it; the zero value means the defaults below.
type ClaimMapping struct {
	// ScopeClaims are the claims scopes are read from, all of them, in order;
	// a string value is split on spaces, an array contributes its strings.
	// Default: "scope", "scp", "permissions".
	ScopeClaims []string
	// RoleClaims are the claims roles are read from: a top-level claim name
	// (which may itself contain dots or slashes, as Auth0's namespaced
	// "https://example.com/roles" does), or a dotted path into nested objects
	// such as "realm_access.roles". A string value is one role, an array
	// contributes its strings. Default: "roles".
	RoleClaims []string
	// ScopePrefix is removed from the start of every scope that has it, for
	// providers that qualify scopes with the API's identifier (Entra ID's
	// "api://…/todo:read", Cognito's "https://api.example.com/todo:read").
	ScopePrefix string
	// ClientClaims are the claims the agent (OAuth client) is read from, the
	// first present one wins. Default: "client_id" (RFC 9068 §2.2), "azp"
	// (OpenID Connect); Okta uses "cid", Entra v1 "appid".
	ClientClaims []string
}

// Default claim names.
var (
	defaultScopeClaims  = []string{"scope", "scp", "permissions"}
	defaultRoleClaims   = []string{"roles"}
	defaultClientClaims = []string{"client_id", "azp"}
)

// withDefaults returns m with empty lists replaced by those of def, then by
// the generic defaults.
func (m ClaimMapping) withDefaults(def ClaimMapping) ClaimMapping {
	m.ScopeClaims = cmpOr(m.ScopeClaims, def.ScopeClaims, defaultScopeClaims)
	m.RoleClaims = cmpOr(m.RoleClaims, def.RoleClaims, defaultRoleClaims)
	m.ClientClaims = cmpOr(m.ClientClaims, def.ClientClaims, defaultClientClaims)
	m.ScopePrefix = cmp.Or(m.ScopePrefix, def.ScopePrefix)
	return m
}

// cmpOr returns the first non-empty list.
func cmpOr(lists ...[]string) []string {
	for _, l := range lists {
		if len(l) > 0 {
			return l
		}
	}
	return nil
}

// Validate checks that no claim name is empty.
func (m ClaimMapping) Validate() error {
	for _, c := range m.ScopeClaims {
		if strings.TrimSpace(c) == "" {
			return fmt.Errorf("field \"claims.scope_claims\": empty claim name: %w", auth.ErrInvalidConfig)
		}
	}
	for _, c := range m.ClientClaims {
		if strings.TrimSpace(c) == "" {
			return fmt.Errorf("field \"claims.client_claims\": empty claim name: %w", auth.ErrInvalidConfig)
		}
	}
	for _, c := range m.RoleClaims {
		if strings.TrimSpace(c) == "" || strings.HasPrefix(c, ".") || strings.HasSuffix(c, ".") {
			return fmt.Errorf("field \"claims.role_claims\": invalid claim path %q: %w", c, auth.ErrInvalidConfig)
		}
	}
	return nil
}

// Config configures a Verifier.
type Config struct {
	// Issuer is the authorization server's issuer identifier; a token's iss
	// must equal it exactly, and so must the discovered metadata's issuer.
	// https, or http on a loopback host only.
	Issuer string
	// Audiences are the accepted audiences: a token's aud must contain one of
	// them (RFC 8707: normally the resource's canonical URL). Required.
	Audiences []string
	// JWKSURL is where the signing keys are. Empty: discover it from the
	// issuer's metadata (RFC 8414 /.well-known/oauth-authorization-server,
	// then OpenID Connect discovery).
	JWKSURL string
	// HTTPClient talks to the identity provider. Nil: a dedicated client with
	// timeouts. Either way every response body is capped at MaxResponseBytes.
	HTTPClient *http.Client
	// HTTPTimeout bounds one request to the identity provider; DefaultHTTPTimeout when 0.
	HTTPTimeout time.Duration
	// MaxResponseBytes caps metadata and JWKS bodies; DefaultMaxResponseBytes when 0.
	MaxResponseBytes int64
	// RefreshInterval is the background JWKS refresh period; DefaultRefreshInterval when 0.
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between refetches triggered by an
	// unknown kid; DefaultUnknownKIDInterval when 0.
	UnknownKIDInterval time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat, at most MaxLeeway;
	// DefaultLeeway when 0.
	Leeway time.Duration
	// VerifyTimeout bounds one Verify call; DefaultVerifyTimeout when 0.
	VerifyTimeout time.Duration
	// CacheSize bounds the verified-token cache; DefaultCacheSize when 0,
	// no cache when negative.
	CacheSize int
	// Provider selects an identity provider's conventions (ConventionsFor);
	// ProviderGeneric when empty. Each field below that is left unset takes
	// the provider's value; a set one overrides it.
	Provider Provider
	// AcceptedTypes are the accepted typ header values (case and an
	// "application/" prefix ignored); nil: the provider's (generic: at+jwt,
	// JWT).
	AcceptedTypes []string
	// AllowUntypedTokens accepts tokens without a typ header (Amazon Cognito's
	// and Okta's access tokens have none); nil: the provider's (generic:
	// refused). Tokens whose typ is present must still be an accepted type.
	AllowUntypedTokens *bool
	// AudienceClaim is the claim that must contain one of Audiences: "aud"
	// (RFC 9068), or "client_id" for Cognito, whose access tokens have no aud
	// (Audiences then lists the app client ids). Empty: the provider's.
	AudienceClaim string
	// ExtraIssuers are issuers accepted besides Issuer, signed by the same
	// keys (Entra ID's v1 form https://sts.windows.net/{tid}/ next to the
	// v2 form); nil: the provider's.
	ExtraIssuers []string
	// RefuseIDTokens refuses ID tokens (and refresh tokens) replayed as
	// access tokens: nonce/at_hash/c_hash/s_hash present, token_use other
	// than "access", a typ claim of ID or Refresh. nil: the provider's (on
	// for every provider).
	RefuseIDTokens *bool
	// MaxTokenLifetime refuses tokens whose exp − iat exceeds it (and those
	// without iat); 0 is off. Hardening guides ask for 15–60 minutes.
	MaxTokenLifetime time.Duration
	// Claims maps token claims to scopes and roles; empty lists take the
	// provider's.
	Claims ClaimMapping
	// Now is the clock that decides expiry; time.Now when nil.
	Now func() time.Time
	// Logger receives operational logs (key refresh failures); never tokens.
	Logger *slog.Logger
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	c.HTTPTimeout = cmp.Or(c.HTTPTimeout, DefaultHTTPTimeout)
	c.MaxResponseBytes = cmp.Or(c.MaxResponseBytes, DefaultMaxResponseBytes)
	c.RefreshInterval = cmp.Or(c.RefreshInterval, DefaultRefreshInterval)
	c.UnknownKIDInterval = cmp.Or(c.UnknownKIDInterval, DefaultUnknownKIDInterval)
	c.Leeway = cmp.Or(c.Leeway, DefaultLeeway)
	c.VerifyTimeout = cmp.Or(c.VerifyTimeout, DefaultVerifyTimeout)
	c.CacheSize = cmp.Or(c.CacheSize, DefaultCacheSize)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	conv := ConventionsFor(c.Provider, c.Issuer)
	c.Provider = cmp.Or(c.Provider, ProviderGeneric)
	if c.AcceptedTypes == nil {
		c.AcceptedTypes = conv.AcceptedTypes
	}
	if c.AllowUntypedTokens == nil {
		c.AllowUntypedTokens = &conv.AllowUntyped
	}
	c.AudienceClaim = cmp.Or(c.AudienceClaim, conv.AudienceClaim)
	if c.ExtraIssuers == nil {
		c.ExtraIssuers = conv.ExtraIssuers
	}
	if c.RefuseIDTokens == nil {
		c.RefuseIDTokens = &conv.RefuseIDTokens
	}
	c.Claims = c.Claims.withDefaults(conv.Claims)
	return c
}

// Validate checks the configuration. Errors name the field and wrap
// auth.ErrInvalidConfig.
func (c Config) Validate() error {
	if err := checkURL(c.Issuer); err != nil {
		return fmt.Errorf("field \"issuer\": %w", err)
	}
	if len(c.Audiences) == 0 {
		return fmt.Errorf("field \"audiences\": at least one accepted audience is required (normally the resource URL): %w", auth.ErrInvalidConfig)
	}
	for _, a := range c.Audiences {
		if strings.TrimSpace(a) == "" {
			return fmt.Errorf("field \"audiences\": empty audience: %w", auth.ErrInvalidConfig)
		}
	}
	if c.JWKSURL != "" {
		if err := checkURL(c.JWKSURL); err != nil {
			return fmt.Errorf("field \"jwks_url\": %w", err)
		}
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		return fmt.Errorf("field \"leeway\": %s is outside 0..%s: %w", c.Leeway, MaxLeeway, auth.ErrInvalidConfig)
	}
	for name, d := range map[string]time.Duration{
		"http_timeout": c.HTTPTimeout, "refresh_interval": c.RefreshInterval,
		"unknown_kid_interval": c.UnknownKIDInterval, "verify_timeout": c.VerifyTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("field %q: negative duration %s: %w", name, d, auth.ErrInvalidConfig)
		}
	}
	if c.Provider != "" {
		if _, err := ParseProvider(string(c.Provider)); err != nil {
			return fmt.Errorf("field \"provider\": %w", err)
		}
	}
	for _, iss := range c.ExtraIssuers {
		if err := checkURL(iss); err != nil {
			return fmt.Errorf("field \"extra_issuers\": %w", err)
		}
	}
	for _, t := range c.AcceptedTypes {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("field \"accepted_types\": empty type: %w", auth.ErrInvalidConfig)
		}
	}
	if c.MaxTokenLifetime < 0 {
		return fmt.Errorf("field \"max_token_lifetime\": negative duration %s: %w", c.MaxTokenLifetime, auth.ErrInvalidConfig)
	}
	if c.MaxResponseBytes < 0 {
		return fmt.Errorf("field \"max_response_bytes\": negative: %w", auth.ErrInvalidConfig)
	}
	return c.Claims.Validate()
}

// checkURL accepts an absolute https URL, or an http URL whose host is
// loopback (a plain-http identity provider anywhere else would let anyone on
// the path substitute keys).
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q must be an absolute https URL: %w", raw, auth.ErrInvalidConfig)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must not have a query, fragment or user info: %w", raw, auth.ErrInvalidConfig)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q: plain http is accepted only on loopback; use https: %w", raw, auth.ErrInvalidConfig)
	}
	return fmt.Errorf("%q must be an https URL: %w", raw, auth.ErrInvalidConfig)
}

// IsLoopbackHost reports whether host (without port) names the loopback
// interface: "localhost" or a loopback IP literal.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
