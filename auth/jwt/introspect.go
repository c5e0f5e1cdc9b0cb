package jwt

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/idmcp/idmcp/auth"
)

// Opaque-token checkers.
const (
	// IntrospectRFC7662 is OAuth 2.0 Token Introspection (RFC 7662): Okta,
	// Keycloak, Ory Hydra, Auth0 (no), Cognito (no).
	IntrospectRFC7662 = "rfc7662"
	// IntrospectGoogle is Google's tokeninfo endpoint
	// (GET https://oauth2.googleapis.com/tokeninfo?access_token=…), which
	// answers 200 with aud, azp, sub, scope, exp, expires_in (numbers or
	// numeric strings) for a live token and 400 for any other.
	IntrospectGoogle = "google"
	// IntrospectGitHub is GitHub's "Check a token" API
	// (POST https://api.github.com/applications/{client_id}/token, the app's
	// client id and secret as basic auth, {"access_token": …} as body), which
	// answers 200 with scopes, user, app and expires_at for a token of that
	// app and 404 (or 422) for any other.
	IntrospectGitHub = "github"
)

// Client authentication methods at the introspection endpoint (RFC 7662 §2.1
// leaves it to the authorization server; these are RFC 6749 §2.3.1 and
// RFC 7523 §2.2).
const (
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
	PrivateKeyJWT     = "private_key_jwt"
)

// Defaults for IntrospectionConfig.
const (
	// DefaultIntrospectionCacheTTL is how long an active answer is reused:
	// a revoked token keeps working at most this long.
	DefaultIntrospectionCacheTTL = 30 * time.Second
	// MaxIntrospectionCacheTTL bounds CacheTTL.
	MaxIntrospectionCacheTTL = 10 * time.Minute
	// NegativeCacheTTL is how long an inactive answer is reused, so that one
	// client repeating a dead token does not hammer the endpoint.
	NegativeCacheTTL = 5 * time.Second
	// GoogleTokenInfoURL is Google's tokeninfo endpoint.
	GoogleTokenInfoURL = "https://oauth2.googleapis.com/tokeninfo"
	// GitHubAPIURL is GitHub's REST API.
	GitHubAPIURL = "https://api.github.com"
)

// errInactive is the reason of a token its provider says is not active.
var errInactive = errors.New("token is not active")

// IntrospectionConfig configures an Introspector.
type IntrospectionConfig struct {
	// Kind is IntrospectRFC7662 (default), IntrospectGoogle or IntrospectGitHub.
	Kind string
	// URL is the endpoint: the RFC 7662 introspection endpoint (required for
	// that kind), Google's tokeninfo (GoogleTokenInfoURL when empty) or
	// GitHub's API base (GitHubAPIURL when empty). https, or http on loopback.
	URL string
	// Issuer is the authorization server; an answer naming another iss is
	// refused, and principals carry it.
	Issuer string
	// Audiences are accepted audiences, looked for in AudienceClaim of the
	// answer. Required except for GitHub, whose API only knows the tokens of
	// the app that asks.
	Audiences []string
	// AudienceClaim is "aud" (default) or "client_id" (accept the tokens
	// issued to the listed clients, for servers without resource indicators).
	AudienceClaim string
	// ClientID and ClientSecret authenticate idmcp at the endpoint.
	ClientID     string
	ClientSecret string
	// ClientAuth is ClientSecretBasic (default), ClientSecretPost or
	// PrivateKeyJWT (RFC 7523 client assertion signed with PrivateKey).
	ClientAuth string
	// PrivateKey signs client assertions (RSA: RS256, P-256: ES256,
	// Ed25519: EdDSA); KeyID is its kid.
	PrivateKey crypto.Signer
	KeyID      string
	// CacheTTL is how long an active answer is reused, never past the
	// token's exp; DefaultIntrospectionCacheTTL when 0, at most
	// MaxIntrospectionCacheTTL.
	CacheTTL time.Duration
	// CacheSize bounds the cache; DefaultCacheSize when 0, none when negative.
	CacheSize int
	// MaxTokenLifetime refuses tokens whose exp − iat exceeds it; 0 is off.
	MaxTokenLifetime time.Duration
	// Claims maps the answer's members to scopes and roles, as for JWTs.
	Claims ClaimMapping
	// HTTPClient, HTTPTimeout and MaxResponseBytes as in Config.
	HTTPClient       *http.Client
	HTTPTimeout      time.Duration
	MaxResponseBytes int64
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives operational logs, never tokens.
	Logger *slog.Logger
}

func (c IntrospectionConfig) withDefaults() IntrospectionConfig {
	c.Kind = cmp.Or(c.Kind, IntrospectRFC7662)
	switch {
	case c.URL == "" && c.Kind == IntrospectGoogle:
		c.URL = GoogleTokenInfoURL
	case c.URL == "" && c.Kind == IntrospectGitHub:
		c.URL = GitHubAPIURL
	}
	c.AudienceClaim = cmp.Or(c.AudienceClaim, "aud")
	c.ClientAuth = cmp.Or(c.ClientAuth, ClientSecretBasic)
	c.CacheTTL = cmp.Or(c.CacheTTL, DefaultIntrospectionCacheTTL)
	c.CacheSize = cmp.Or(c.CacheSize, DefaultCacheSize)
	c.HTTPTimeout = cmp.Or(c.HTTPTimeout, DefaultHTTPTimeout)
	c.MaxResponseBytes = cmp.Or(c.MaxResponseBytes, DefaultMaxResponseBytes)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Claims = c.Claims.withDefaults(ClaimMapping{})
	return c
}

// Validate checks the configuration; errors name the field and wrap
// auth.ErrInvalidConfig.
func (c IntrospectionConfig) Validate() error {
	c = c.withDefaults()
	switch c.Kind {
	case IntrospectRFC7662, IntrospectGoogle, IntrospectGitHub:
	default:
		return fmt.Errorf("field \"introspection\": %q: want rfc7662, google or github: %w", c.Kind, auth.ErrInvalidConfig)
	}
	if c.URL == "" {
		return fmt.Errorf("field \"introspection_url\": required for RFC 7662 introspection: %w", auth.ErrInvalidConfig)
	}
	if err := checkURL(c.URL); err != nil {
		return fmt.Errorf("field \"introspection_url\": %w", err)
	}
	if err := checkURL(c.Issuer); err != nil {
		return fmt.Errorf("field \"issuer\": %w", err)
	}
	if c.Kind != IntrospectGitHub && len(c.Audiences) == 0 {
		return fmt.Errorf("field \"audiences\": at least one accepted audience is required: %w", auth.ErrInvalidConfig)
	}
	if c.CacheTTL < 0 || c.CacheTTL > MaxIntrospectionCacheTTL {
		return fmt.Errorf("field \"introspection_cache_ttl\": %s is outside 0..%s: %w", c.CacheTTL, MaxIntrospectionCacheTTL, auth.ErrInvalidConfig)
	}
	if c.MaxTokenLifetime < 0 {
		return fmt.Errorf("field \"max_token_lifetime\": negative: %w", auth.ErrInvalidConfig)
	}
	switch c.ClientAuth {
	case ClientSecretBasic, ClientSecretPost:
		if c.Kind == IntrospectGitHub && (c.ClientID == "" || c.ClientSecret == "") {
			return fmt.Errorf("field \"client_id\"/\"client_secret\": GitHub's token API needs the app's client id and secret: %w", auth.ErrInvalidConfig)
		}
	case PrivateKeyJWT:
		if c.ClientID == "" || c.PrivateKey == nil {
			return fmt.Errorf("field \"client_key\": private_key_jwt needs client_id and a private key: %w", auth.ErrInvalidConfig)
		}
		if _, err := assertionMethod(c.PrivateKey); err != nil {
			return fmt.Errorf("field \"client_key\": %w: %w", err, auth.ErrInvalidConfig)
		}
	default:
		return fmt.Errorf("field \"client_auth\": %q: want client_secret_basic, client_secret_post or private_key_jwt: %w", c.ClientAuth, auth.ErrInvalidConfig)
	}
	return c.Claims.Validate()
}

// Introspector checks opaque access tokens by asking the provider: RFC 7662
// introspection, Google's tokeninfo or GitHub's token API. It implements the
// HTTP transport's TokenVerifier like Verifier does. Answers are cached
// (keyed by the token's SHA-256, never the token) for CacheTTL and never
// past the token's exp. It is safe for concurrent use.
type Introspector struct {
	cfg    IntrospectionConfig
	client *http.Client
	cache  *tokenCache
	neg    *tokenCache

	mu   sync.Mutex
	down bool
}

// NewIntrospector returns an Introspector for cfg. It does not contact the
// endpoint: an endpoint that is down is found per request (503).
func NewIntrospector(cfg IntrospectionConfig) (*Introspector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Introspector{
		cfg:    cfg,
		client: newHTTPClient(cfg.HTTPClient, cfg.HTTPTimeout, cfg.MaxResponseBytes),
		cache:  newTokenCache(cfg.CacheSize, cfg.CacheTTL),
		neg:    newTokenCache(cfg.CacheSize, NegativeCacheTTL),
	}, nil
}

// Ready reports whether the last call to the endpoint got an answer (true
// before the first one).
func (i *Introspector) Ready() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return !i.down
}

func (i *Introspector) setDown(down bool) {
	i.mu.Lock()
	i.down = down
	i.mu.Unlock()
}

// URL returns the endpoint in use.
func (i *Introspector) URL() string { return i.cfg.URL }

// Verify asks the provider about raw and returns its principal. It refuses
// (KindInvalidToken) a token the provider says is not active or does not
// know, one whose answer names another issuer, no accepted audience, no
// subject, an exp in the past or a lifetime over MaxTokenLifetime. When the
// endpoint cannot be reached or answers with an error, it returns
// KindUnavailable (HTTP 503 with Retry-After): the token may be good.
func (i *Introspector) Verify(ctx context.Context, raw string) (*auth.Principal, error) {
	if len(raw) > MaxTokenBytes {
		return nil, invalid(fmt.Errorf("token of %d bytes exceeds the %d-byte limit", len(raw), MaxTokenBytes))
	}
	if raw == "" || strings.ContainsAny(raw, " \t\r\n") {
		return nil, invalid(errors.New("empty or malformed token"))
	}
	now := i.cfg.Now()
	key := sha256.Sum256([]byte(raw))
	if p := i.cache.get(key, now); p != nil {
		return p, nil
	}
	if i.neg.has(key, now) {
		return nil, invalid(fmt.Errorf("%w (cached answer)", errInactive))
	}
	claims, err := i.ask(ctx, raw)
	if err != nil {
		if auth.KindOf(err) == auth.KindInvalidToken {
			i.neg.put(key, nil, now.Add(NegativeCacheTTL), now)
		}
		return nil, err
	}
	p, exp, err := i.principal(claims, now)
	if err != nil {
		i.neg.put(key, nil, now.Add(NegativeCacheTTL), now)
		return nil, invalid(claimsRefused{err})
	}
	i.cache.put(key, p, exp, now)
	return clonePrincipal(p), nil
}

// ask sends one request and returns the answer as claims, or a typed error.
func (i *Introspector) ask(ctx context.Context, raw string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, i.cfg.HTTPTimeout)
	defer cancel()
	req, err := i.request(ctx, raw)
	if err != nil {
		return nil, &auth.Error{Kind: auth.KindUnavailable, Msg: "token introspection unavailable; retry later", Err: err}
	}
	res, err := i.client.Do(req)
	if err != nil {
		i.setDown(true)
		i.cfg.Logger.Warn("token introspection failed", "kind", i.cfg.Kind, "url", i.cfg.URL, "err", scrub(err, raw))
		return nil, &auth.Error{Kind: auth.KindUnavailable, Msg: "token introspection unavailable; retry later", Err: fmt.Errorf("introspection endpoint: %w", scrub(err, raw))}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		i.setDown(true)
		return nil, &auth.Error{Kind: auth.KindUnavailable, Msg: "token introspection unavailable; retry later", Err: fmt.Errorf("introspection answer: %w", err)}
	}
	// The provider's "I do not know this token" answers.
	switch {
	case i.cfg.Kind == IntrospectGoogle && res.StatusCode == http.StatusBadRequest,
		i.cfg.Kind == IntrospectGitHub && (res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusUnprocessableEntity):
		i.setDown(false)
		return nil, invalid(fmt.Errorf("%w: %s answered HTTP %d", errInactive, i.cfg.Kind, res.StatusCode))
	case res.StatusCode != http.StatusOK:
		// 401/403 (our credentials), 429, 5xx: nothing the client can fix.
		i.setDown(true)
		i.cfg.Logger.Error("token introspection endpoint refused the request", "kind", i.cfg.Kind, "url", i.cfg.URL, "status", res.StatusCode)
		return nil, &auth.Error{Kind: auth.KindUnavailable, Msg: "token introspection unavailable; retry later", Err: fmt.Errorf("introspection endpoint answered HTTP %d", res.StatusCode)}
	}
	i.setDown(false)
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, &auth.Error{Kind: auth.KindUnavailable, Msg: "token introspection unavailable; retry later", Err: fmt.Errorf("introspection answer is not a JSON object: %w", err)}
	}
	switch i.cfg.Kind {
	case IntrospectGoogle:
		return googleClaims(m, i.cfg.Now()), nil
	case IntrospectGitHub:
		return githubClaims(m), nil
	}
	// RFC 7662 §2.2: active is REQUIRED; anything but true is inactive.
	if active, _ := m["active"].(bool); !active {
		return nil, invalid(fmt.Errorf("%w: introspection answered active=false", errInactive))
	}
	return m, nil
}

// request builds the provider's request for raw.
func (i *Introspector) request(ctx context.Context, raw string) (*http.Request, error) {
	switch i.cfg.Kind {
	case IntrospectGoogle:
		u := i.cfg.URL + "?" + url.Values{"access_token": {raw}}.Encode()
		return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	case IntrospectGitHub:
		body, _ := json.Marshal(map[string]string{"access_token": raw})
		u := strings.TrimSuffix(i.cfg.URL, "/") + "/applications/" + url.PathEscape(i.cfg.ClientID) + "/token"
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(body)))
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(i.cfg.ClientID, i.cfg.ClientSecret)
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	}
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	switch i.cfg.ClientAuth {
	case ClientSecretPost:
		form.Set("client_id", i.cfg.ClientID)
		form.Set("client_secret", i.cfg.ClientSecret)
	case PrivateKeyJWT:
		a, err := i.assertion()
		if err != nil {
			return nil, err
		}
		form.Set("client_id", i.cfg.ClientID)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", a)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, i.cfg.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if i.cfg.ClientAuth == ClientSecretBasic && i.cfg.ClientID != "" {
		// RFC 6749 §2.3.1: both parts form-urlencoded before base64.
		req.SetBasicAuth(url.QueryEscape(i.cfg.ClientID), url.QueryEscape(i.cfg.ClientSecret))
	}
	return req, nil
}

// assertion is an RFC 7523 §3 client assertion: iss = sub = client_id, aud
// the endpoint and the issuer, a minute long, a fresh jti.
func (i *Introspector) assertion() (string, error) {
	m, err := assertionMethod(i.cfg.PrivateKey)
	if err != nil {
		return "", err
	}
	now := i.cfg.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	t := gojwt.NewWithClaims(m, gojwt.MapClaims{
		"iss": i.cfg.ClientID, "sub": i.cfg.ClientID, "aud": []string{i.cfg.URL, i.cfg.Issuer},
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": hex.EncodeToString(jti),
	})
	if i.cfg.KeyID != "" {
		t.Header["kid"] = i.cfg.KeyID
	}
	return t.SignedString(i.cfg.PrivateKey)
}

func assertionMethod(k crypto.Signer) (gojwt.SigningMethod, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is below %d", k.N.BitLen(), minRSABits)
		}
		return gojwt.SigningMethodRS256, nil
	case *ecdsa.PrivateKey:
		return gojwt.SigningMethodES256, nil
	case ed25519.PrivateKey:
		return gojwt.SigningMethodEdDSA, nil
	}
	return nil, fmt.Errorf("unsupported client key type %T (want RSA, P-256 or Ed25519)", k)
}

// principal maps an active answer to a principal, with the checks a JWT's
// claims get, and returns the token's expiry (zero if it has none).
func (i *Introspector) principal(claims map[string]any, now time.Time) (*auth.Principal, time.Time, error) {
	if iss, ok := claims["iss"].(string); ok && iss != "" && iss != i.cfg.Issuer {
		return nil, time.Time{}, fmt.Errorf("token has invalid issuer %q", iss)
	}
	if i.cfg.Kind != IntrospectGitHub {
		if err := checkAudience(claims, i.cfg.AudienceClaim, i.cfg.Audiences); err != nil {
			return nil, time.Time{}, err
		}
	}
	exp, err := numericClaim(claims, "exp")
	if err != nil {
		return nil, time.Time{}, err
	}
	if !exp.IsZero() && !now.Before(exp) {
		return nil, time.Time{}, fmt.Errorf("%w: token is expired", errInactive)
	}
	if max := i.cfg.MaxTokenLifetime; max > 0 {
		iat, err := numericClaim(claims, "iat")
		if err != nil || iat.IsZero() || exp.IsZero() {
			return nil, time.Time{}, fmt.Errorf("answer has no iat/exp; max_token_lifetime (%s) needs them", max)
		}
		if life := exp.Sub(iat); life > max {
			return nil, time.Time{}, fmt.Errorf("token lifetime %s exceeds max_token_lifetime %s", life, max)
		}
	}
	// RFC 7662 names the resource owner "username" when there is no sub.
	if s, _ := claims["sub"].(string); s == "" {
		if u, ok := claims["username"].(string); ok {
			claims["sub"] = u
		}
	}
	p, err := principalFrom(claims, i.cfg.Issuer, i.cfg.Claims)
	if err != nil {
		return nil, time.Time{}, err
	}
	p.Method = auth.MethodIntrospection
	if exp.IsZero() {
		exp = now.Add(i.cfg.CacheTTL)
	}
	return p, exp, nil
}

// checkAudience requires claim (a string or an array of strings) to hold
// one of audiences.
func checkAudience(claims map[string]any, claim string, audiences []string) error {
	v, ok := claims[claim]
	if !ok || v == nil {
		return fmt.Errorf("%s claim is required (audience_claim = %q)", claim, claim)
	}
	for _, a := range stringsOf(v) {
		for _, want := range audiences {
			if a == want {
				return nil
			}
		}
	}
	return fmt.Errorf("token has invalid audience: %s is not an accepted audience", claim)
}

// numericClaim reads a NumericDate that may be a JSON number or a numeric
// string (Google's tokeninfo sends strings); absent is the zero time.
func numericClaim(claims map[string]any, name string) (time.Time, error) {
	var n int64
	switch v := claims[name].(type) {
	case nil:
		return time.Time{}, nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return time.Time{}, fmt.Errorf("claim %q is not a number", name)
		}
		n = int64(f)
	case float64:
		n = int64(v)
	case string:
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("claim %q is not a number", name)
		}
		n = x
	default:
		return time.Time{}, fmt.Errorf("claim %q is not a number", name)
	}
	return time.Unix(n, 0), nil
}

// googleClaims maps a tokeninfo answer: sub (or email for tokens without
// openid), aud (the OAuth client the token was issued to), azp, scope, exp.
func googleClaims(m map[string]any, now time.Time) map[string]any {
	c := map[string]any{"aud": m["aud"], "scope": m["scope"], "exp": m["exp"]}
	if az, ok := m["azp"]; ok {
		c["client_id"] = az
	} else {
		c["client_id"] = m["aud"]
	}
	for _, k := range []string{"sub", "user_id", "email"} {
		if s, ok := m[k].(string); ok && s != "" {
			c["sub"] = s
			break
		}
	}
	if c["exp"] == nil {
		if in, err := numericClaim(m, "expires_in"); err == nil && !in.IsZero() {
			c["exp"] = json.Number(strconv.FormatInt(now.Unix()+in.Unix(), 10))
		}
	}
	return c
}

// githubClaims maps a "Check a token" answer: the user's login as sub, the
// app's client id, scopes as scope, expires_at (RFC 3339, absent for tokens
// that do not expire) as exp.
func githubClaims(m map[string]any) map[string]any {
	c := map[string]any{}
	if u, ok := m["user"].(map[string]any); ok {
		c["sub"] = u["login"]
	}
	if a, ok := m["app"].(map[string]any); ok {
		c["client_id"] = a["client_id"]
	}
	if s, ok := m["scopes"].([]any); ok {
		c["scope"] = s
	}
	if e, ok := m["expires_at"].(string); ok && e != "" {
		if t, err := time.Parse(time.RFC3339, e); err == nil {
			c["exp"] = json.Number(strconv.FormatInt(t.Unix(), 10))
		}
	}
	return c
}

// scrub removes raw from an error's text (a URL with the token in its query
// appears in *url.Error).
func scrub(err error, raw string) error {
	s := err.Error()
	if raw != "" && strings.Contains(s, raw) {
		return errors.New(strings.ReplaceAll(s, raw, "[redacted]"))
	}
	if q := url.QueryEscape(raw); raw != "" && strings.Contains(s, q) {
		return errors.New(strings.ReplaceAll(s, q, "[redacted]"))
	}
	return err
}
