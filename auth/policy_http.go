package auth

import (
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// HTTPSettings mirrors the HTTP transport's flags so that a deployment can
// live in one reviewed file. Empty fields are unset; pointer fields are nil
// when unset, so that an explicit false or 0 overrides a provider's default.
type HTTPSettings struct {
	Addr           string
	Issuer         string
	Resource       string
	Audiences      []string
	JWKSURL        string
	AllowedOrigins []string
	TrustedProxies []string // addresses or CIDR prefixes

	// Provider names the identity provider whose token conventions apply
	// (generic, cognito, entra, okta, auth0, keycloak, google, github).
	Provider string
	// AcceptedTypes overrides the accepted typ header values.
	AcceptedTypes []string
	// AcceptUntypedTokens overrides whether a token without typ is accepted.
	AcceptUntypedTokens *bool
	// AudienceClaim overrides where the audience is ("aud", "client_id").
	AudienceClaim string
	// ExtraIssuers are issuers accepted besides Issuer.
	ExtraIssuers []string
	// RefuseIDTokens overrides whether ID tokens are refused.
	RefuseIDTokens *bool
	// MaxTokenLifetime refuses tokens whose exp − iat exceeds it; 0 is off.
	MaxTokenLifetime time.Duration

	// Introspection is how opaque tokens are checked: "rfc7662" (with
	// IntrospectionURL), "google", "github"; empty: by the provider.
	Introspection string
	// IntrospectionURL is the RFC 7662 endpoint (or a stand-in's URL).
	IntrospectionURL string
	// IntrospectionAuth is client_secret_basic, client_secret_post or
	// private_key_jwt.
	IntrospectionAuth string
	// IntrospectionClientID identifies idmcp at the endpoint; the secret is
	// never in the policy: it comes from IntrospectionSecretFile or the
	// IDMCP_INTROSPECTION_SECRET environment variable.
	IntrospectionClientID   string
	IntrospectionSecretFile string
	// IntrospectionKeyFile is the PEM private key for private_key_jwt.
	IntrospectionKeyFile string
	// IntrospectionKeyID is its kid.
	IntrospectionKeyID string
	// IntrospectionCacheTTL is how long an active answer is reused; 0: the default.
	IntrospectionCacheTTL time.Duration

	// SubjectRate is one subject's sustained requests per second; 0 turns
	// the limit off. nil: the default.
	SubjectRate *float64
	// SubjectBurst is how many requests a subject may make at once.
	SubjectBurst *int
	// FailedAuthRate is one address's sustained failed authentications per
	// second; 0 turns the limit off.
	FailedAuthRate *float64
	// FailedAuthBurst is how many failed authentications an address may
	// cause at once.
	FailedAuthBurst *int
}

// httpFile is the [http] table of the TOML schema.
type httpFile struct {
	Addr           string   `toml:"addr"`
	Issuer         string   `toml:"issuer"`
	Resource       string   `toml:"resource"`
	Audiences      []string `toml:"audiences"`
	JWKSURL        string   `toml:"jwks_url"`
	AllowedOrigins []string `toml:"allowed_origins"`
	TrustedProxies []string `toml:"trusted_proxies"`

	Provider            string   `toml:"provider"`
	AcceptedTypes       []string `toml:"accepted_types"`
	AcceptUntypedTokens *bool    `toml:"accept_untyped_tokens"`
	AudienceClaim       string   `toml:"audience_claim"`
	ExtraIssuers        []string `toml:"extra_issuers"`
	RefuseIDTokens      *bool    `toml:"refuse_id_tokens"`
	MaxTokenLifetime    string   `toml:"max_token_lifetime"`

	Introspection           string `toml:"introspection"`
	IntrospectionURL        string `toml:"introspection_url"`
	IntrospectionAuth       string `toml:"introspection_auth"`
	IntrospectionClientID   string `toml:"introspection_client_id"`
	IntrospectionSecretFile string `toml:"introspection_client_secret_file"`
	IntrospectionKeyFile    string `toml:"introspection_client_key_file"`
	IntrospectionKeyID      string `toml:"introspection_client_key_id"`
	IntrospectionCacheTTL   string `toml:"introspection_cache_ttl"`

	SubjectRate     *float64 `toml:"subject_rate"`
	SubjectBurst    *int     `toml:"subject_burst"`
	FailedAuthRate  *float64 `toml:"failed_auth_rate"`
	FailedAuthBurst *int     `toml:"failed_auth_burst"`
}

// KnownProviders are the values [http] provider accepts.
var KnownProviders = []string{"generic", "cognito", "entra", "okta", "auth0", "keycloak", "google", "github"}

// parseHTTP checks the [http] table.
func (p *Policy) parseHTTP(h *httpFile) (*HTTPSettings, error) {
	key := func(k string) toml.Key { return toml.Key{"http", k} }
	if h.Addr != "" {
		if _, _, err := net.SplitHostPort(h.Addr); err != nil {
			return nil, p.errorf(key("addr"), "%q is not host:port (e.g. \"127.0.0.1:8080\")", h.Addr)
		}
	}
	for _, u := range []struct{ key, val string }{{"issuer", h.Issuer}, {"resource", h.Resource}, {"jwks_url", h.JWKSURL}, {"introspection_url", h.IntrospectionURL}} {
		if err := validURL(u.val, false); u.val != "" && err != nil {
			return nil, p.errorf(key(u.key), "%v", err)
		}
	}
	if err := p.checkList(key("audiences"), h.Audiences, validAudience, "audience"); err != nil {
		return nil, err
	}
	if err := p.checkList(key("allowed_origins"), h.AllowedOrigins, func(s string) error { return validURL(s, true) }, "origin"); err != nil {
		return nil, err
	}
	if err := p.checkList(key("trusted_proxies"), h.TrustedProxies, func(s string) error { _, err := ParsePrefix(s); return err }, "proxy"); err != nil {
		return nil, err
	}
	if err := p.checkList(key("extra_issuers"), h.ExtraIssuers, func(s string) error { return validURL(s, false) }, "issuer"); err != nil {
		return nil, err
	}
	if err := p.checkList(key("accepted_types"), h.AcceptedTypes, func(s string) error {
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' }) || len(s) > maxTokenLen {
			return fmt.Errorf("%q is not a media type such as \"at+jwt\"", s)
		}
		return nil
	}, "type"); err != nil {
		return nil, err
	}
	prov := strings.ToLower(h.Provider)
	if h.Provider != "" && !slices.Contains(KnownProviders, prov) {
		return nil, p.errorf(key("provider"), "unknown provider %q; known: %s", h.Provider, strings.Join(KnownProviders, ", "))
	}
	if h.AudienceClaim != "" {
		if err := validClaimPath(h.AudienceClaim); err != nil {
			return nil, p.errorf(key("audience_claim"), "%v", err)
		}
	}
	switch h.Introspection {
	case "", "rfc7662", "google", "github":
	default:
		return nil, p.errorf(key("introspection"), "%q: want rfc7662, google or github", h.Introspection)
	}
	switch h.IntrospectionAuth {
	case "", "client_secret_basic", "client_secret_post", "private_key_jwt":
	default:
		return nil, p.errorf(key("introspection_auth"), "%q: want client_secret_basic, client_secret_post or private_key_jwt", h.IntrospectionAuth)
	}
	if h.Introspection == "rfc7662" && h.IntrospectionURL == "" {
		return nil, p.errorf(key("introspection"), "rfc7662 needs introspection_url")
	}
	s := &HTTPSettings{Addr: h.Addr, Issuer: h.Issuer, Resource: h.Resource, Audiences: slices.Clone(h.Audiences),
		JWKSURL: h.JWKSURL, AllowedOrigins: slices.Clone(h.AllowedOrigins), TrustedProxies: slices.Clone(h.TrustedProxies),
		Provider: prov, AcceptedTypes: slices.Clone(h.AcceptedTypes), AcceptUntypedTokens: h.AcceptUntypedTokens,
		AudienceClaim: h.AudienceClaim, ExtraIssuers: slices.Clone(h.ExtraIssuers), RefuseIDTokens: h.RefuseIDTokens,
		Introspection: h.Introspection, IntrospectionURL: h.IntrospectionURL, IntrospectionAuth: h.IntrospectionAuth,
		IntrospectionClientID: h.IntrospectionClientID, IntrospectionSecretFile: h.IntrospectionSecretFile,
		IntrospectionKeyFile: h.IntrospectionKeyFile, IntrospectionKeyID: h.IntrospectionKeyID,
		SubjectRate: h.SubjectRate, SubjectBurst: h.SubjectBurst, FailedAuthRate: h.FailedAuthRate, FailedAuthBurst: h.FailedAuthBurst}
	var err error
	if s.MaxTokenLifetime, err = p.duration(key("max_token_lifetime"), h.MaxTokenLifetime); err != nil {
		return nil, err
	}
	if s.IntrospectionCacheTTL, err = p.duration(key("introspection_cache_ttl"), h.IntrospectionCacheTTL); err != nil {
		return nil, err
	}
	if s.MaxTokenLifetime > 0 && s.MaxTokenLifetime < time.Minute {
		p.warnf(key("max_token_lifetime"), "%s is shorter than a minute; clients will refresh constantly", s.MaxTokenLifetime)
	}
	for _, r := range []struct {
		k string
		v *float64
	}{{"subject_rate", h.SubjectRate}, {"failed_auth_rate", h.FailedAuthRate}} {
		if r.v != nil && (*r.v < 0 || math.IsNaN(*r.v) || math.IsInf(*r.v, 0)) {
			return nil, p.errorf(key(r.k), "%v: want a rate per second ≥ 0 (0 turns the limit off)", *r.v)
		}
	}
	for _, b := range []struct {
		k string
		v *int
	}{{"subject_burst", h.SubjectBurst}, {"failed_auth_burst", h.FailedAuthBurst}} {
		if b.v != nil && (*b.v < 1 || *b.v > 1_000_000) {
			return nil, p.errorf(key(b.k), "%d: want 1..1000000", *b.v)
		}
	}
	if h.FailedAuthRate != nil && *h.FailedAuthRate == 0 {
		p.warnf(key("failed_auth_rate"), "0 turns off the failed-authentication limit: junk tokens can fill the audit log")
	}
	return s, nil
}

// duration parses a Go duration ("15m", "1h"); empty is 0.
func (p *Policy) duration(k toml.Key, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, p.errorf(k, "%q is not a duration such as \"30m\" or \"1h\"", s)
	}
	return d, nil
}
