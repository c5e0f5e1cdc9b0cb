package jwt

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	gojwt "github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/idmcp/idmcp/auth"
)

// ErrClaimsRefused is in the chain of a refusal whose token was signed by
// one of the issuer's keys (or that the provider's endpoint recognised) but
// whose claims are not acceptable: expired, another audience or issuer, an ID
// token. Such a client is genuine and should refresh its token; the HTTP
// transport answers it 401 even past an address's failure budget.
var ErrClaimsRefused = errors.New("token genuine, claims refused")

// errKeysUnavailable marks a verification that failed because no signing key
// is loaded at all: the server cannot decide, so the caller gets "try later"
// (HTTP 503), never "your token is bad" (which sends clients into
// re-authorization loops).
var errKeysUnavailable = errors.New("no signing keys loaded")

// minRSABits is the smallest RSA modulus accepted (RFC 8725 §3.5 via RFC 7518 §3.3).
const minRSABits = 2048

// Verifier checks bearer access tokens against one issuer's signing keys.
// It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	client *http.Client
	parser *gojwt.Parser
	cache  *tokenCache

	// kf is nil until the keys were fetched once.
	kf     atomic.Pointer[keyfuncHolder]
	jwks   atomic.Pointer[string]
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// keyfuncHolder is the loaded key source; stop ends its refresh goroutine
// (it also ends with the Verifier's context).
type keyfuncHolder struct {
	kf   keyfunc.Keyfunc
	stop context.CancelFunc
}

// New returns a Verifier for cfg. It discovers the JWKS location (unless
// cfg.JWKSURL is set) and fetches the keys before returning. When the
// identity provider is unreachable, New still succeeds: it keeps retrying in
// the background (bounded backoff) while Verify answers KindUnavailable and
// Ready reports false. Metadata that cannot be right (another issuer, no or an
// insecure jwks_uri) is an error wrapping ErrDiscovery. ctx bounds the
// background work; Close ends it too.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{
		cfg:    cfg,
		client: newHTTPClient(cfg.HTTPClient, cfg.HTTPTimeout, cfg.MaxResponseBytes),
		cache:  newTokenCache(cfg.CacheSize, MaxCacheTTL),
		parser: gojwt.NewParser(parserOptions(cfg)...),
	}
	v.ctx, v.cancel = context.WithCancel(ctx)
	err := v.load()
	switch {
	case err == nil:
	case errors.Is(err, ErrDiscovery):
		v.cancel()
		return nil, err
	default:
		cfg.Logger.Warn("signing keys not loaded; tokens are answered 'unavailable' until they are", "issuer", cfg.Issuer, "err", err)
		v.wg.Go(v.retryLoad)
	}
	return v, nil
}

// parserOptions are golang-jwt's checks for cfg. The issuer and audience
// are left to golang-jwt when they are the plain RFC 9068 ones (one issuer,
// aud) and checked by checkClaims otherwise.
func parserOptions(cfg Config) []gojwt.ParserOption {
	opts := []gojwt.ParserOption{
		gojwt.WithValidMethods(algorithms),
		gojwt.WithExpirationRequired(),
		gojwt.WithIssuedAt(),
		gojwt.WithLeeway(cfg.Leeway),
		gojwt.WithTimeFunc(cfg.Now),
		gojwt.WithStrictDecoding(),
	}
	if len(cfg.ExtraIssuers) == 0 {
		opts = append(opts, gojwt.WithIssuer(cfg.Issuer))
	}
	if cfg.AudienceClaim == "aud" {
		opts = append(opts, gojwt.WithAudience(cfg.Audiences...))
	}
	return opts
}

// Close stops background refreshes. Verify keeps working with the keys it has.
func (v *Verifier) Close() {
	v.cancel()
	v.wg.Wait()
}

// Ready reports whether signing keys are loaded (for /readyz).
func (v *Verifier) Ready() bool {
	h := v.kf.Load()
	if h == nil {
		return false
	}
	keys, err := h.kf.Storage().KeyReadAll(context.Background())
	return err == nil && len(keys) > 0
}

// JWKSURL returns the JWKS location in use, once known.
func (v *Verifier) JWKSURL() string {
	if p := v.jwks.Load(); p != nil {
		return *p
	}
	return ""
}

// load discovers the JWKS and fetches it once; on success the keyfunc is
// installed and keyfunc's goroutine refreshes it every RefreshInterval.
func (v *Verifier) load() error {
	ctx, cancel := context.WithTimeout(v.ctx, 2*v.cfg.HTTPTimeout)
	defer cancel()
	jwksURL := v.cfg.JWKSURL
	if jwksURL == "" {
		u, err := discoverJWKS(ctx, v.client, v.cfg.Issuer)
		if err != nil {
			return err
		}
		jwksURL = u
	}
	v.jwks.Store(&jwksURL)
	// The refresh goroutine keyfunc starts lives on kctx; a failed first
	// fetch cancels it so retries do not pile up goroutines.
	kctx, kcancel := context.WithCancel(v.ctx)
	log := v.cfg.Logger
	base, err := keyfunc.NewDefaultOverrideCtx(kctx, []string{jwksURL}, keyfunc.Override{
		Client:      v.client,
		HTTPTimeout: v.cfg.HTTPTimeout,
		// Fail the first fetch loudly; New turns it into a background retry
		// with our own readiness state instead of an empty key set that would
		// only be refilled 15 minutes later.
		NoErrorReturnFirstHTTPReq: new(false),
		RefreshInterval:           v.cfg.RefreshInterval,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(v.cfg.UnknownKIDInterval), 1),
		// A request never waits for the limiter (and the refetch) longer
		// than this, nor past its own deadline: while the limiter is empty,
		// junk kids get an immediate refusal.
		RateLimitWaitMax: 3 * time.Second,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				log.Warn("JWKS refresh failed; keeping the keys already loaded", "jwks_url", u, "err", err)
			}
		},
	})
	if err != nil {
		kcancel()
		return fmt.Errorf("fetch signing keys: %w", err)
	}
	// Only keys whose use is sig (or unstated, RFC 7517 §4.2) ever verify.
	kf, err := keyfunc.New(keyfunc.Options{
		Ctx:          kctx,
		Storage:      base.Storage(),
		UseWhitelist: []jwkset.USE{jwkset.UseSig, jwkset.USE("")},
	})
	if err != nil {
		kcancel()
		return fmt.Errorf("keyfunc: %w", err)
	}
	v.kf.Store(&keyfuncHolder{kf: kf, stop: kcancel})
	log.Info("signing keys loaded", "issuer", v.cfg.Issuer, "jwks_url", jwksURL)
	return nil
}

// retryLoad retries load with capped exponential backoff until it succeeds,
// the metadata proves unusable, or the Verifier is closed.
func (v *Verifier) retryLoad() {
	delay := time.Second
	for {
		t := time.NewTimer(delay)
		select {
		case <-v.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := v.load()
		if err == nil {
			return
		}
		if errors.Is(err, ErrDiscovery) {
			v.cfg.Logger.Error("authorization server metadata unusable; tokens will be answered 'unavailable'", "issuer", v.cfg.Issuer, "err", err)
		} else {
			v.cfg.Logger.Warn("signing keys still not loaded", "issuer", v.cfg.Issuer, "retry_in", delay, "err", err)
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// invalid is the error for a refused token: a generic message for the caller,
// the precise reason for the audit log.
func invalid(reason error) *auth.Error {
	return &auth.Error{Kind: auth.KindInvalidToken, Msg: "invalid token", Err: reason}
}

func unavailable(reason error) *auth.Error {
	return &auth.Error{Kind: auth.KindUnavailable, Msg: "signing keys are not available yet; retry later", Err: reason}
}

// Verify checks raw and returns its principal. It refuses, with a
// *auth.Error of KindInvalidToken whose Err says why: tokens over
// MaxTokenBytes (before parsing), algorithms other than RS256, PS256, ES256
// and EdDSA, a missing kid, a crit header, a typ other than at+jwt or JWT
// (RFC 9068 §4; "application/" prefix and case ignored), an unknown kid (after
// at most one rate-limited JWKS refetch), a key whose use is not sig, a bad
// signature, an iss other than the issuer, an aud without an accepted
// audience, no exp, exp/nbf/iat outside the leeway, no sub, a malformed act
// chain; and, by the provider's conventions (Config): a typ outside
// AcceptedTypes, a missing typ unless AllowUntypedTokens, an iss that is
// neither Issuer nor one of ExtraIssuers, an AudienceClaim other than aud
// without an accepted audience, an ID or refresh token (RefuseIDTokens), a
// lifetime over MaxTokenLifetime. A refusal of a token whose signature
// verified carries ErrClaimsRefused. jku, x5u, x5c and jwk headers are never looked at: keys come only
// from the issuer's JWKS. When no signing key is loaded it returns
// KindUnavailable. The wait is bounded by ctx and VerifyTimeout.
func (v *Verifier) Verify(ctx context.Context, raw string) (*auth.Principal, error) {
	if len(raw) > MaxTokenBytes {
		return nil, invalid(fmt.Errorf("token of %d bytes exceeds the %d-byte limit", len(raw), MaxTokenBytes))
	}
	if raw == "" {
		return nil, invalid(errors.New("empty token"))
	}
	now := v.cfg.Now()
	key := sha256.Sum256([]byte(raw))
	if p := v.cache.get(key, now); p != nil {
		return p, nil
	}
	h := v.kf.Load()
	if h == nil {
		return nil, unavailable(errKeysUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.VerifyTimeout)
	defer cancel()
	claims := gojwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(raw, claims, v.keyfunc(ctx, h.kf))
	if err != nil {
		if errors.Is(err, errKeysUnavailable) {
			return nil, unavailable(err)
		}
		if errors.Is(err, gojwt.ErrTokenInvalidClaims) {
			// The signature verified (golang-jwt checks claims only after
			// it): a genuine token of this issuer, expired or for another
			// resource.
			err = claimsRefused{err}
		}
		return nil, invalid(err)
	}
	if !tok.Valid {
		return nil, invalid(errors.New("token not valid"))
	}
	iss, err := v.checkClaims(claims)
	if err != nil {
		return nil, invalid(claimsRefused{err})
	}
	p, err := principalFrom(claims, iss, v.cfg.Claims)
	if err != nil {
		return nil, invalid(claimsRefused{err})
	}
	exp, err := claims.GetExpirationTime()
	if err == nil && exp != nil {
		v.cache.put(key, p, exp.Time, now)
	}
	return clonePrincipal(p), nil
}

// keyfunc checks the header (kid, typ, crit) and then asks keyfunc/v3 for
// the key, with the request's ctx so that an unknown-kid refetch is bounded
// by it.
func (v *Verifier) keyfunc(ctx context.Context, kf keyfunc.Keyfunc) gojwt.Keyfunc {
	inner := kf.KeyfuncCtx(ctx)
	return func(t *gojwt.Token) (any, error) {
		kid, ok := t.Header["kid"].(string)
		if !ok || kid == "" {
			return nil, errors.New("token header has no kid")
		}
		if len(kid) > 256 {
			return nil, errors.New("kid longer than 256 bytes")
		}
		if err := v.checkTyp(t.Header); err != nil {
			return nil, err
		}
		// RFC 7515 §4.1.11: an extension we do not understand must not be
		// ignored (b64=false would change what is signed).
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("token header has crit; no extension is supported")
		}
		key, err := inner(t)
		if err != nil {
			if keys, kerr := kf.Storage().KeyReadAll(ctx); kerr == nil && len(keys) == 0 {
				return nil, fmt.Errorf("%w: %w", errKeysUnavailable, err)
			}
			if strings.Contains(err.Error(), "rate limiter") {
				// keyfunc could not refetch within the request's time: the kid
				// is unknown to the keys we have, which is what the audit row
				// should say.
				return nil, fmt.Errorf("kid %q: key not found (unknown kid; JWKS refetch rate-limited): %w", kid, err)
			}
			return nil, fmt.Errorf("kid %q: %w", kid, err)
		}
		if pk, ok := key.(*rsa.PublicKey); ok && pk.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("kid %q: RSA key of %d bits is below %d", kid, pk.N.BitLen(), minRSABits)
		}
		return key, nil
	}
}

// checkTyp enforces explicit typing (RFC 8725 §3.11, RFC 9068 §4).
func (v *Verifier) checkTyp(h map[string]any) error {
	raw, present := h["typ"]
	if !present {
		if *v.cfg.AllowUntypedTokens {
			return nil
		}
		return errors.New("token header has no typ; want at+jwt")
	}
	typ, ok := raw.(string)
	if !ok {
		return errors.New("token header typ is not a string")
	}
	t := strings.ToLower(typ)
	t = strings.TrimPrefix(t, "application/")
	for _, a := range v.cfg.AcceptedTypes {
		if t == strings.TrimPrefix(strings.ToLower(a), "application/") {
			return nil
		}
	}
	return fmt.Errorf("token typ %q is not %s (accepted_types)", typ, strings.Join(v.cfg.AcceptedTypes, " or "))
}

// checkClaims runs the checks golang-jwt does not: the issuer when more
// than one form is accepted, an audience held in another claim than aud, ID
// tokens replayed as access tokens, and the longest lifetime. It returns
// the token's issuer.
func (v *Verifier) checkClaims(claims gojwt.MapClaims) (string, error) {
	iss, _ := claims["iss"].(string)
	if len(v.cfg.ExtraIssuers) > 0 {
		if iss == "" {
			return "", errors.New("iss claim is required")
		}
		if iss != v.cfg.Issuer && !slices.Contains(v.cfg.ExtraIssuers, iss) {
			return "", fmt.Errorf("token has invalid issuer %q", iss)
		}
	}
	if iss == "" {
		iss = v.cfg.Issuer
	}
	if c := v.cfg.AudienceClaim; c != "aud" {
		got, err := stringClaim(claims, c)
		if err != nil {
			return "", err
		}
		if got == "" {
			return "", fmt.Errorf("%s claim is required (audience_claim = %q)", c, c)
		}
		if !slices.Contains(v.cfg.Audiences, got) {
			return "", fmt.Errorf("token has invalid audience: %s %q is not an accepted audience", c, got)
		}
	}
	if *v.cfg.RefuseIDTokens {
		if r := idTokenReason(claims); r != "" {
			return "", errors.New(r)
		}
	}
	if max := v.cfg.MaxTokenLifetime; max > 0 {
		iat, err := claims.GetIssuedAt()
		if err != nil || iat == nil {
			return "", fmt.Errorf("token has no iat; max_token_lifetime (%s) needs it", max)
		}
		exp, _ := claims.GetExpirationTime()
		if life := exp.Sub(iat.Time); life > max {
			return "", fmt.Errorf("token lifetime %s exceeds max_token_lifetime %s", life, max)
		}
	}
	return iss, nil
}

// claimsRefused marks the refusal of a token whose signature verified with
// one of the issuer's keys: ErrClaimsRefused is in its chain, its message is
// the reason's.
type claimsRefused struct{ err error }

func (e claimsRefused) Error() string   { return e.err.Error() }
func (e claimsRefused) Unwrap() []error { return []error{e.err, ErrClaimsRefused} }
