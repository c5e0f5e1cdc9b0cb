package jwt

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// AdviseConfig is what Advise looks at.
type AdviseConfig struct {
	// Issuer is the authorization server to check.
	Issuer string
	// JWKSURL skips discovery when set.
	JWKSURL string
	// Token is a sample access token (JWT), optional. It is decoded and its
	// signature checked against the issuer's keys; it is never printed.
	Token string
	// Audiences are the audiences the deployment accepts, if known.
	Audiences []string
	// HTTPClient as in Config; nil: a dedicated client with timeouts.
	HTTPClient *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Finding is one line of advice. Level is "ok", "warn" (works, but should
// change) or "need" (a setting is required for such tokens to be accepted).
type Finding struct {
	Level string
	Text  string
}

// Advice is what Advise found.
type Advice struct {
	Issuer      string
	MetadataURL string
	JWKSURL     string
	// Keys counts the signing keys in the JWKS, by kty/alg.
	Keys     []string
	Provider Provider
	Findings []Finding
}

// Advise fetches the issuer's metadata and JWKS and, given a sample token,
// says which settings tokens like it need ("no typ header: provider cognito
// or accept_untyped_tokens = true"). The token's contents are described by
// claim names and non-secret values (aud, iss, client ids, claim names),
// never echoed whole. An error means the issuer itself could not be checked.
func Advise(ctx context.Context, cfg AdviseConfig) (*Advice, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := checkURL(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("--issuer: %w", err)
	}
	c := newHTTPClient(cfg.HTTPClient, DefaultHTTPTimeout, DefaultMaxResponseBytes)
	a := &Advice{Issuer: cfg.Issuer, Provider: guessProvider(cfg.Issuer, nil, nil)}
	add := func(level, format string, args ...any) {
		a.Findings = append(a.Findings, Finding{Level: level, Text: fmt.Sprintf(format, args...)})
	}
	a.JWKSURL = cfg.JWKSURL
	if a.JWKSURL == "" {
		urls, _ := metadataURLs(cfg.Issuer)
		var errs []error
		for _, u := range urls {
			md, err := fetchMetadata(ctx, c, u)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			a.MetadataURL = u
			if md.Issuer != cfg.Issuer {
				return a, fmt.Errorf("%s names issuer %q, not %q: set issuer to exactly what the metadata says (RFC 8414 §3.3)", u, md.Issuer, cfg.Issuer)
			}
			if md.JWKSURI == "" {
				return a, fmt.Errorf("%s has no jwks_uri: its tokens cannot be verified by signature; use introspection_url", u)
			}
			a.JWKSURL = md.JWKSURI
			break
		}
		if a.JWKSURL == "" {
			return a, fmt.Errorf("no authorization server metadata for %s: %w", cfg.Issuer, errors.Join(errs...))
		}
		add("ok", "metadata at %s; jwks_uri %s", a.MetadataURL, a.JWKSURL)
		if strings.HasSuffix(a.MetadataURL, "openid-configuration") {
			add("warn", "no RFC 8414 metadata, only OpenID Connect discovery: MCP clients find it (they try both), idmcp too")
		}
	}
	keys, err := fetchJWKS(ctx, c, a.JWKSURL)
	if err != nil {
		return a, err
	}
	a.Keys = keys
	if len(keys) == 0 {
		return a, fmt.Errorf("%s holds no keys", a.JWKSURL)
	}
	add("ok", "%d signing key(s): %s", len(keys), strings.Join(keys, ", "))
	if cfg.Token == "" {
		add("warn", "no sample token given (--token FILE): cannot say which typ, audience, scope and role settings its tokens need")
		return a, nil
	}
	adviseToken(ctx, a, cfg, add)
	return a, nil
}

// fetchJWKS returns "kid (kty alg use)" for each key.
func fetchJWKS(ctx context.Context, c *http.Client, u string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", u, res.StatusCode)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		return nil, fmt.Errorf("%s: not a JWKS: %w", u, err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, fmt.Sprintf("%v (%v %v %v)", k["kid"], k["kty"], orDash(k["alg"]), orDash(k["use"])))
	}
	return out, nil
}

func orDash(v any) any {
	if v == nil {
		return "-"
	}
	return v
}

// adviseToken reads the sample token and says what it needs.
func adviseToken(ctx context.Context, a *Advice, cfg AdviseConfig, add func(level, format string, args ...any)) {
	raw := strings.TrimSpace(cfg.Token)
	if !LooksLikeJWT(raw) {
		add("need", "the token is not a JWT (opaque): it can only be checked by its issuer; set introspection_url (RFC 7662), or provider = \"google\"/\"github\" for theirs")
		return
	}
	parts := strings.Split(raw, ".")
	var header, claims map[string]any
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			add("need", "the token's %s is not base64url JSON", []string{"header", "payload"}[i])
			return
		}
	}
	a.Provider = guessProvider(cfg.Issuer, header, claims)
	prov := a.Provider
	conv := ConventionsFor(prov, cfg.Issuer)

	// typ
	switch typ, ok := header["typ"].(string); {
	case !ok:
		add("need", "no typ header: provider = \"cognito\" (or \"okta\"), or accept_untyped_tokens = true")
	case slices.Contains([]string{"at+jwt", "jwt"}, strings.TrimPrefix(strings.ToLower(typ), "application/")):
		add("ok", "typ %q is accepted", typ)
	default:
		add("need", "typ %q is not at+jwt or JWT: accepted_types = [%q] (only if it really is an access token)", typ, typ)
	}
	// issuer
	iss, _ := claims["iss"].(string)
	switch {
	case iss == cfg.Issuer:
		add("ok", "iss matches the issuer")
	case iss == "":
		add("need", "the token has no iss: it cannot be accepted")
	case slices.Contains(ConventionsFor(ProviderEntra, cfg.Issuer).ExtraIssuers, iss):
		add("need", "iss is %q, the tenant's other issuer form: provider = \"entra\" accepts both", iss)
	default:
		add("need", "iss is %q, not %q: use that issuer, or extra_issuers = [%q] if both are really the same server", iss, cfg.Issuer, iss)
	}
	// audience
	aud := stringsOf(claims["aud"])
	clientID, _ := claims["client_id"].(string)
	switch {
	case len(aud) == 0 && clientID != "":
		add("need", "aud missing; client_id = %q: provider = \"cognito\" or audience_claim = \"client_id\", with audiences = [%q] (or have the authorization server put the resource in aud: RFC 8707 resource=, or audience= for Hydra)", clientID, clientID)
	case len(aud) == 0:
		add("need", "aud missing and no client_id: configure the authorization server to put the resource in aud (RFC 8707 resource or an audience setting)")
	case slices.Equal(aud, []string{"account"}):
		add("need", "aud is only \"account\" (Keycloak's default): add an Audience mapper for the MCP server's client, then audiences = [\"<that client id>\"]")
	case len(cfg.Audiences) > 0 && !slices.ContainsFunc(aud, func(x string) bool { return slices.Contains(cfg.Audiences, x) }):
		add("need", "aud is %q, none of the accepted audiences %q: audiences = [%q]", aud, cfg.Audiences, aud[0])
	default:
		add("ok", "aud %q: audiences = [%q] accepts it", aud, aud[0])
	}
	// token kind
	if r := idTokenReason(claims); r != "" {
		add("need", "%s; request an access token for the MCP server instead", r)
	}
	// client
	for _, c := range []string{"client_id", "azp", "cid", "appid"} {
		if v, ok := claims[c].(string); ok && v != "" {
			if !slices.Contains(conv.Claims.withDefaults(ClaimMapping{}).ClientClaims, c) {
				add("need", "the client is in %s (%q): [claims] client_claims = [%q] (provider = %q reads it)", c, v, c, map[string]string{"cid": "okta", "appid": "entra"}[c])
			}
			break
		}
	}
	// scopes
	var scopeAt []string
	for _, c := range []string{"scope", "scp", "permissions"} {
		if _, ok := claims[c]; ok {
			scopeAt = append(scopeAt, c)
		}
	}
	if len(scopeAt) == 0 {
		add("warn", "no scope, scp or permissions claim: the token grants no scope; tools that need one are hidden")
	} else {
		add("ok", "scopes are in %s (read by default)", strings.Join(scopeAt, ", "))
		for _, s := range scopesFrom(claims, ClaimMapping{ScopeClaims: scopeAt}) {
			if i := strings.LastIndex(s, "/"); i > 0 && strings.HasPrefix(s, "http") {
				add("warn", "scope %q carries a prefix: [claims] scope_prefix = %q", s, s[:i+1])
				break
			}
		}
	}
	// roles
	var roleAt []string
	for _, c := range []string{"roles", "groups", "cognito:groups"} {
		if _, ok := claims[c]; ok {
			roleAt = append(roleAt, c)
		}
	}
	if ra, ok := claims["realm_access"].(map[string]any); ok && ra["roles"] != nil {
		roleAt = append(roleAt, "realm_access.roles")
	}
	if rs, ok := claims["resource_access"].(map[string]any); ok {
		names := make([]string, 0, len(rs))
		for n := range rs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			roleAt = append(roleAt, "resource_access."+n+".roles")
		}
	}
	names := make([]string, 0, len(claims))
	for n := range claims {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.Contains(n, "://") && (strings.HasSuffix(n, "/roles") || strings.HasSuffix(n, "/groups")) {
			roleAt = append(roleAt, n)
		}
	}
	switch {
	case len(roleAt) == 0:
		add("warn", "no roles claim found: tools that need a role are refused")
	case slices.Equal(roleAt, []string{"roles"}):
		add("ok", "roles are in roles (read by default)")
	default:
		q := make([]string, len(roleAt))
		for i, r := range roleAt {
			q[i] = fmt.Sprintf("%q", r)
		}
		add("need", "roles are in %s: [claims] role_claims = [%s]", strings.Join(roleAt, ", "), strings.Join(q, ", "))
	}
	// lifetime
	now := cfg.Now()
	exp, _ := numericClaim(claims, "exp")
	iat, _ := numericClaim(claims, "iat")
	switch {
	case exp.IsZero():
		add("need", "the token has no exp: it cannot be accepted")
	case !now.Before(exp):
		add("warn", "the token expired at %s (fine for this check; a live one is needed to test a call)", exp.UTC().Format(time.RFC3339))
	}
	if !exp.IsZero() && !iat.IsZero() {
		life := exp.Sub(iat)
		if life > time.Hour {
			add("warn", "tokens live %s: consider max_token_lifetime = \"1h\" (off by default; hardening guides ask for 15–60 minutes)", life)
		} else {
			limit := life
			if limit > time.Minute {
				limit = limit.Round(time.Minute)
			}
			add("ok", "tokens live %s; max_token_lifetime = %q would hold them to that", life, limit.String())
		}
	}
	// signature, checked at a time the token was valid (an expired sample
	// still tells whether the keys are right)
	at := now
	switch {
	case !iat.IsZero():
		at = iat.Add(time.Second)
	case !exp.IsZero():
		at = exp.Add(-time.Second)
	}
	v, err := New(ctx, Config{Issuer: cfg.Issuer, JWKSURL: a.JWKSURL, Audiences: []string{"-"}, AudienceClaim: "-",
		AllowUntypedTokens: new(true), AcceptedTypes: []string{fmt.Sprint(header["typ"]), "at+jwt", "jwt"},
		RefuseIDTokens: new(false), ExtraIssuers: []string{firstNonEmpty(iss, cfg.Issuer)}, CacheSize: -1, Leeway: MaxLeeway,
		Now: func() time.Time { return at }})
	if err == nil {
		defer v.Close()
		_, verr := v.Verify(ctx, raw)
		switch reason := adviceReason(verr); {
		case verr == nil, strings.Contains(reason, "claim is required"), strings.Contains(reason, "invalid audience"):
			add("ok", "signature verifies with the issuer's keys")
		default:
			add("need", "signature check failed: %s", reason)
		}
	}
	if prov != ProviderGeneric {
		add("ok", "looks like %s: provider = %q sets these conventions", prov, prov)
	}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func adviceReason(err error) string {
	if err == nil {
		return ""
	}
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		return u.Error()
	}
	return err.Error()
}

// guessProvider names the provider an issuer and token look like.
func guessProvider(issuer string, header, claims map[string]any) Provider {
	switch {
	case strings.Contains(issuer, "cognito-idp.") && strings.Contains(issuer, ".amazonaws.com"):
		return ProviderCognito
	case entraV1.MatchString(issuer) || entraV2.MatchString(issuer):
		return ProviderEntra
	case strings.Contains(issuer, ".okta.com") || strings.Contains(issuer, ".oktapreview.com"):
		return ProviderOkta
	case strings.Contains(issuer, ".auth0.com"):
		return ProviderAuth0
	case strings.Contains(issuer, "/realms/"):
		return ProviderKeycloak
	case issuer == "https://accounts.google.com":
		return ProviderGoogle
	}
	if claims != nil {
		if _, ok := claims["token_use"]; ok {
			return ProviderCognito
		}
		if _, ok := claims["cid"]; ok {
			return ProviderOkta
		}
		if _, ok := claims["realm_access"]; ok {
			return ProviderKeycloak
		}
	}
	return ProviderGeneric
}
