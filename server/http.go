package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"golang.org/x/time/rate"

	"github.com/idmcp/idmcp/auth"
	jwtauth "github.com/idmcp/idmcp/auth/jwt"
	"github.com/idmcp/idmcp/store/audit"
)

// TokenVerifier authenticates the bearer token of an HTTP request.
// *jwt.Verifier (package auth/jwt) implements it.
type TokenVerifier interface {
	// Verify returns the principal of an acceptable token. Errors are
	// *auth.Error of KindInvalidToken (refused; Err holds the precise reason,
	// which goes to the audit log only) or KindUnavailable (no signing keys
	// yet; the client should retry, not re-authorize).
	Verify(ctx context.Context, raw string) (*auth.Principal, error)
	// Ready reports whether tokens can be verified at all (keys loaded).
	Ready() bool
}

// Defaults for HTTPConfig.
const (
	DefaultMaxBodyBytes    = 1 << 20
	DefaultRequestTimeout  = 2 * time.Minute
	DefaultShutdownTimeout = 30 * time.Second
	DefaultResourceName    = "idmcp"
	// DefaultSubjectRate and DefaultSubjectBurst limit one subject's
	// requests: 20/s sustained is far above what an agent driving tools
	// through a model needs (each call waits for a model turn), while a
	// runaway loop or a leaked token is slowed to a rate the audit log and
	// the tools absorb; the burst of 40 lets a client list tools and fire a
	// parallel batch at once. A service account shared by a team may need
	// more: [http] subject_rate / --subject-rate (0 turns it off).
	DefaultSubjectRate  rate.Limit = 20
	DefaultSubjectBurst            = 40
	// DefaultFailedAuthRate and DefaultFailedAuthBurst limit the failed
	// authentications (no token, bad token, bad Origin) of one client
	// address; beyond them its failures get 429 and no audit row. One a
	// second with a burst of 20 is more than a client that refreshes an
	// expired token ever causes, and keeps a token-guessing or log-filling
	// client to 86,400 audit rows a day.
	DefaultFailedAuthRate  rate.Limit = 1
	DefaultFailedAuthBurst            = 20
	// maxLimiters bounds each rate limiter table.
	maxLimiters = 10000
)

// RateLimit configures request rate limits (golang.org/x/time/rate token
// buckets). Zero fields take the defaults; a rate of rate.Inf turns that
// limit off.
type RateLimit struct {
	// PerSubject is the sustained request rate of one subject (per issuer).
	PerSubject rate.Limit
	// SubjectBurst is how many requests a subject may make at once.
	SubjectBurst int
	// FailedAuthPerAddr is the sustained rate of failed authentications from
	// one client address (IPv6 addresses count per /64). Past it, failures
	// are answered 429 without an audit row; requests with a good token are
	// still served (behind a proxy every client shares its address).
	FailedAuthPerAddr rate.Limit
	// FailedAuthBurst is how many failed authentications an address may cause at once.
	FailedAuthBurst int
}

// HTTPConfig configures the Streamable HTTP transport, an OAuth 2.1 resource
// server (MCP authorization 2025-11-25).
type HTTPConfig struct {
	Config
	// Verifier authenticates bearer tokens. Required.
	Verifier TokenVerifier
	// Resource is the canonical URL of the MCP endpoint (RFC 8707, RFC 9728
	// resource); the endpoint is served at its path. Required; https, or http
	// on a loopback host.
	Resource string
	// AuthorizationServers are the issuers clients get tokens from (RFC 9728
	// authorization_servers). Required.
	AuthorizationServers []string
	// AllowedOrigins are the browser origins ("https://app.example.com")
	// allowed to call the endpoint; a request with any other Origin header is
	// refused with 403 (DNS-rebinding defence). The resource's own origin is
	// always allowed. Requests without Origin (non-browser clients) pass.
	AllowedOrigins []string
	// ResourceName is RFC 9728 resource_name; DefaultResourceName when empty.
	ResourceName string
	// MaxBodyBytes caps a request body; DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
	// RateLimit configures per-subject and per-address limits.
	RateLimit RateLimit
	// TrustedProxies are the reverse proxies in front of the server. When a
	// request comes from one, the address its limits count against is the
	// one X-Forwarded-For names: the rightmost entry that is not itself a
	// trusted proxy. Requests from anywhere else are counted by their peer
	// address, whatever headers they send. Empty: no proxy is trusted.
	TrustedProxies []netip.Prefix
	// RequestTimeout bounds one request; DefaultRequestTimeout when 0.
	RequestTimeout time.Duration
	// ShutdownTimeout bounds the drain of in-flight requests in Serve;
	// DefaultShutdownTimeout when 0.
	ShutdownTimeout time.Duration
	// Mounts are extra routes (http.ServeMux pattern → handler) served beside
	// the MCP endpoint, outside its bearer gate: the embedded development
	// authorization server uses it.
	Mounts map[string]http.Handler
}

func (c *HTTPConfig) setDefaults() {
	if c.ResourceName == "" {
		c.ResourceName = DefaultResourceName
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	rl := &c.RateLimit
	if rl.PerSubject == 0 {
		rl.PerSubject = DefaultSubjectRate
	}
	if rl.SubjectBurst == 0 {
		rl.SubjectBurst = DefaultSubjectBurst
	}
	if rl.FailedAuthPerAddr == 0 {
		rl.FailedAuthPerAddr = DefaultFailedAuthRate
	}
	if rl.FailedAuthBurst == 0 {
		rl.FailedAuthBurst = DefaultFailedAuthBurst
	}
}

// Validate checks the HTTP-specific fields; errors name the field and wrap
// auth.ErrInvalidConfig.
func (c HTTPConfig) Validate() error {
	if c.Verifier == nil {
		return fmt.Errorf("field \"verifier\": nil: %w", auth.ErrInvalidConfig)
	}
	u, err := url.Parse(c.Resource)
	if err != nil || !u.IsAbs() || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("field \"resource\": %q must be an absolute https URL without query or fragment: %w", c.Resource, auth.ErrInvalidConfig)
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !jwtauth.IsLoopbackHost(u.Hostname())) {
		return fmt.Errorf("field \"resource\": %q must be an https URL (http only on loopback): %w", c.Resource, auth.ErrInvalidConfig)
	}
	if len(c.AuthorizationServers) == 0 {
		return fmt.Errorf("field \"authorization_servers\": at least one issuer is required: %w", auth.ErrInvalidConfig)
	}
	for _, s := range c.AuthorizationServers {
		if u, err := url.Parse(s); err != nil || !u.IsAbs() || u.Host == "" {
			return fmt.Errorf("field \"authorization_servers\": %q is not an absolute URL: %w", s, auth.ErrInvalidConfig)
		}
	}
	for _, o := range c.AllowedOrigins {
		if _, err := normalizeOrigin(o); err != nil {
			return fmt.Errorf("field \"allowed_origins\": %w", err)
		}
	}
	if c.MaxBodyBytes < 0 || c.RequestTimeout < 0 || c.ShutdownTimeout < 0 {
		return fmt.Errorf("field \"max_body_bytes\"/timeouts: negative: %w", auth.ErrInvalidConfig)
	}
	return nil
}

// HTTP is the Streamable HTTP transport: stateless (every request carries
// its own bearer token, so there is no session to hijack and instances scale
// horizontally), serving both protocol eras on the resource path, RFC 9728
// metadata, /healthz and /readyz.
type HTTP struct {
	cfg          HTTPConfig
	core         *core
	srv          *mcpserver.MCPServer
	prm          http.Handler
	prmURL       string
	resourcePath string
	resourceHost string
	origins      map[string]bool
	subjects     *limiterSet
	failures     *limiterSet
	suppressed   suppressedAuth // authsummary.go
}

// NewHTTP builds the HTTP transport.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := newCore(cfg.Config, "http")
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.Resource)
	h := &HTTP{
		cfg:          cfg,
		core:         c,
		resourcePath: u.EscapedPath(),
		resourceHost: u.Hostname(),
		origins:      map[string]bool{},
		subjects:     newLimiterSet(cfg.RateLimit.PerSubject, cfg.RateLimit.SubjectBurst),
		failures:     newLimiterSet(cfg.RateLimit.FailedAuthPerAddr, cfg.RateLimit.FailedAuthBurst),
	}
	if h.resourcePath == "" {
		h.resourcePath = "/"
	}
	own, _ := normalizeOrigin(u.Scheme + "://" + u.Host)
	h.origins[own] = true
	for _, o := range cfg.AllowedOrigins {
		n, _ := normalizeOrigin(o)
		h.origins[n] = true
	}
	prmPath := mcpserver.ProtectedResourceMetadataPath(cfg.Resource)
	h.prmURL = u.Scheme + "://" + u.Host + prmPath
	h.prm = mcpserver.NewProtectedResourceMetadataHandler(mcpserver.ProtectedResourceMetadataConfig{
		Resource:               cfg.Resource,
		AuthorizationServers:   cfg.AuthorizationServers,
		ScopesSupported:        cfg.Authorizer.Scopes(),
		BearerMethodsSupported: []string{"header"},
		ResourceName:           cfg.ResourceName,
	})

	hooks := &mcpserver.Hooks{}
	// Defence in depth: the middleware authenticates every request before
	// mcp-go sees it; should a route ever bypass it, mcp-go still refuses.
	hooks.AddOnRequestInitialization(func(ctx context.Context, _ any, _ any) error {
		if auth.PrincipalFromContext(ctx) == nil {
			return auth.Unauthenticated("no bearer token")
		}
		return nil
	})
	// Served by serveTransport (httpmcp.go): stateless, no GET stream.
	h.srv = c.newMCPServer("http", auth.PrincipalFromContext, hooks)
	return h, nil
}

// PRMURL returns the URL of the protected resource metadata (RFC 9728 §3.1),
// as sent in WWW-Authenticate.
func (h *HTTP) PRMURL() string { return h.prmURL }

// Handler returns the routes: the MCP endpoint at the resource's path, RFC
// 9728 metadata at its well-known path and at the root well-known path,
// /healthz and /readyz.
func (h *HTTP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(h.resourcePath, http.HandlerFunc(h.serveMCP))
	mux.Handle(mcpserver.ProtectedResourceMetadataPath(h.cfg.Resource), h.prm)
	mux.Handle(mcpserver.WellKnownProtectedResourcePath, h.prm)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", h.serveReady)
	for pattern, handler := range h.cfg.Mounts {
		mux.Handle(pattern, handler)
	}
	return mux
}

// serveReady answers 200 when signing keys are loaded and the audit log is
// healthy, else 503.
func (h *HTTP) serveReady(w http.ResponseWriter, _ *http.Request) {
	keys := h.cfg.Verifier.Ready()
	auditOK := h.cfg.Audit.Healthy() == nil
	if keys && auditOK {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "keys": true, "audit": true})
		return
	}
	w.Header().Set("Retry-After", "5")
	writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "keys": keys, "audit": auditOK})
}

// Serve serves HTTP (or HTTPS when tlsConfig is not nil) on ln until ctx is
// cancelled, then stops accepting and drains in-flight requests for at most
// ShutdownTimeout. The audit log is the caller's to close afterwards. It
// returns nil after a clean drain.
func (h *HTTP) Serve(ctx context.Context, ln net.Listener, tlsConfig *tls.Config) error {
	srv := &http.Server{
		Handler:           h.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      h.cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         tlsConfig,
		ErrorLog:          log.New(slogWriter{h.core.log}, "", 0),
	}
	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	fctx, stopFlush := context.WithCancel(ctx)
	flushed := make(chan struct{})
	go func() { defer close(flushed); h.flushSuppressed(fctx) }()
	defer func() { stopFlush(); <-flushed }() // the last summaries before the caller closes the log
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
		err = fmt.Errorf("http: drain did not finish within %s: %w", h.cfg.ShutdownTimeout, err)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("http: %w", serr)
	}
	return err
}

// Refusals that are not auth.Error kinds.
var (
	errOrigin   = errors.New("origin not allowed")
	errHost     = errors.New("host not allowed")
	errTooLarge = errors.New("request body too large")
)

// rateLimited is a 429 with the seconds after which to retry.
type rateLimited struct{ retryAfter int }

func (e *rateLimited) Error() string { return "rate limit exceeded" }

// serveMCP is the gate in front of mcp-go, one request one way:
// Origin/Host → body limit → bearer auth (per-address failure limit) →
// per-subject limit → tools/call decision → MCP.
func (h *HTTP) serveMCP(w http.ResponseWriter, r *http.Request) {
	now := h.core.now()
	addr := h.clientAddr(r)

	origin := r.Header.Get("Origin")
	if origin != "" {
		n, err := normalizeOrigin(origin)
		if err != nil || !h.origins[n] {
			h.refuseAuth(w, r, addr, now, fmt.Errorf("%w: %q", errOrigin, origin))
			return
		}
		corsHeaders(w.Header(), origin)
	}
	if err := h.checkHost(r); err != nil {
		h.refuseAuth(w, r, addr, now, err)
		return
	}
	if r.Method == http.MethodOptions {
		preflight(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.RequestTimeout)
	defer cancel()
	r = r.WithContext(ctx)
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)

	raw, present, berr := bearerToken(r)
	var p *auth.Principal
	switch {
	case berr != nil:
		h.refuseAuth(w, r, addr, now, berr)
		return
	case !present:
		h.refuseAuth(w, r, addr, now, auth.Unauthenticated("no bearer token"))
		return
	default:
		var err error
		if p, err = h.cfg.Verifier.Verify(ctx, raw); err != nil {
			h.refuseAuth(w, r, addr, now, err)
			return
		}
	}
	// The token has done its job: nothing downstream (mcp-go hands headers
	// to tool handlers) may see or forward it.
	r.Header.Del("Authorization")

	if d, ok := h.subjects.reserve(p.Issuer+" "+p.Subject, now); !ok {
		h.write(w, h.answerFor(&rateLimited{retryAfter: d}, false), nil)
		return
	}

	var f frame
	var id json.RawMessage
	m := &message{}
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = errTooLarge
			}
			h.write(w, h.answerFor(err, false), nil)
			return
		}
		m = parseMessage(body)
		f, id = m.frame, m.ID
		if f.Client.Name != "" {
			p.ClientName, p.ClientVersion = f.Client.Name, f.Client.Version
		}
	}
	if p.ClientName == "" {
		// Stateless HTTP sees clientInfo only at initialize (and in modern
		// requests' _meta); other rows name the client by its User-Agent,
		// marked as such (self-reported like clientInfo, never decided on).
		if ua := r.Header.Get("User-Agent"); ua != "" {
			p.ClientName, p.ClientVersion = "User-Agent: "+ua, ""
		}
	}
	if f.Method == "tools/call" {
		// Decided here, before mcp-go, so that a scope problem can be an
		// HTTP 403 challenge. The tool handler decides again.
		if err := h.core.decideCall(ctx, p, "http", f.Tool, f.Arguments); err != nil && auth.KindOf(err) != auth.KindNotFound {
			h.write(w, h.answerFor(err, f.Modern), id)
			return
		}
		// Unknown tools fall through: mcp-go answers "tool not found" in
		// the request's era, exactly as for a tool that never existed.
	}
	h.serveTransport(w, r.WithContext(auth.WithPrincipal(ctx, p)), m)
}

// refuseAuth answers a failed authentication: an audit row with the precise
// reason (never the token), one strike against the client address, and the
// mapped answer. If the row cannot be written the answer is 503: nothing is
// refused or allowed without a record.
func (h *HTTP) refuseAuth(w http.ResponseWriter, r *http.Request, addr string, now time.Time, err error) {
	if auth.KindOf(err) != auth.KindUnavailable {
		// Past its failure budget an address gets 429 and no audit row, so
		// junk cannot fill the audit log; good tokens from the same address
		// (a proxy's) are still served.
		if h.failures.exhausted(addr, now) {
			// Counted, not dropped: one summary row per address per minute.
			h.recordSuppressed(r.Context(), h.suppressed.count(addr, now))
			if auth.KindOf(err) == auth.KindUnauthenticated || errors.Is(err, jwtauth.ErrClaimsRefused) {
				// A request with no token is every client's first step of
				// discovery, and a token signed by the issuer's key that is
				// expired or for another audience comes from a genuine
				// client that must learn to refresh: both still get their
				// 401 challenge (so clients behind a shared address are not
				// locked out by someone else's junk), just no row.
				h.write(w, h.answerFor(err, false), nil)
				return
			}
			h.write(w, h.answerFor(&rateLimited{retryAfter: h.failures.retryAfter(addr, now)}, false), nil)
			return
		}
		h.failures.strike(addr, now)
	}
	ev := h.core.event(nil, "http", audit.EventAuth)
	ev.Decision = audit.Deny
	ev.Reason = fmt.Sprintf("%s (%s %s from %s)", auditReason(err), r.Method, r.URL.Path, addr)
	if rerr := h.core.record(r.Context(), ev); rerr != nil {
		err = &auth.Error{Kind: auth.KindUnavailable, Msg: "authentication failed: audit log unavailable", Err: rerr}
	}
	h.core.log.Debug("request refused", "kind", auth.KindOf(err).String(), "method", r.Method, "addr", addr)
	h.write(w, h.answerFor(err, false), nil)
}

// auditReason is the precise reason of err for the audit log.
func auditReason(err error) string {
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Err != nil {
		return ae.Msg + ": " + ae.Err.Error()
	}
	return err.Error()
}

// answer is how one refusal goes on the wire.
type answer struct {
	status     int
	challenge  string
	retryAfter int
	code       int
	message    string
	data       any
}

// answerFor is the one table that maps refusals to HTTP: 401 with a
// WWW-Authenticate Bearer challenge pointing at the metadata (error=
// invalid_token when a token was sent), 403 insufficient_scope naming the
// scopes the tool needs (RFC 6750 §3.1, so clients can step up), a JSON-RPC
// error naming the role for a missing role (no new token fixes that), 503
// with Retry-After when keys are not loaded (never a 401 that would send
// clients into re-authorization loops), 403 for a foreign Origin or Host,
// 429 with Retry-After, 413; anything else is a logged 500.
func (h *HTTP) answerFor(err error, modern bool) answer {
	rm := `resource_metadata="` + h.prmURL + `"`
	var ae *auth.Error
	var rl *rateLimited
	switch {
	case errors.As(err, &ae):
		switch ae.Kind {
		case auth.KindUnauthenticated:
			return answer{status: http.StatusUnauthorized, challenge: "Bearer " + rm + h.scopeParam(), code: mcp.INVALID_REQUEST, message: ae.Msg}
		case auth.KindInvalidToken:
			// RFC 6750 §3: error_description is a fixed sentence about what
			// was wrong (jwtauth.Description), never the token or the
			// precise reason, which only the audit row gets.
			desc := jwtauth.Description(err)
			return answer{status: http.StatusUnauthorized,
				challenge: `Bearer error="invalid_token", ` + rm + `, error_description="` + desc + `"` + h.scopeParam(),
				code:      mcp.INVALID_REQUEST, message: "invalid token: " + desc}
		case auth.KindInsufficientScope:
			return answer{
				status:    http.StatusForbidden,
				challenge: `Bearer error="insufficient_scope", scope="` + strings.Join(ae.Required, " ") + `", ` + rm,
				code:      mcp.INVALID_REQUEST, message: ae.Msg,
				data: map[string]any{"tool": ae.Tool, "required_scopes": ae.Required, "missing_scopes": ae.Scopes},
			}
		case auth.KindMissingRole:
			return answer{status: rpcStatus(mcp.INVALID_REQUEST, modern), code: mcp.INVALID_REQUEST, message: ae.Msg,
				data: map[string]any{"tool": ae.Tool, "required_roles": ae.Roles}}
		case auth.KindNotFound:
			return answer{status: rpcStatus(mcp.INVALID_PARAMS, modern), code: mcp.INVALID_PARAMS, message: ae.Msg}
		case auth.KindUnavailable:
			return answer{status: http.StatusServiceUnavailable, retryAfter: 5, code: mcp.INTERNAL_ERROR, message: ae.Msg}
		}
	case errors.As(err, &rl):
		return answer{status: http.StatusTooManyRequests, retryAfter: rl.retryAfter, code: mcp.INVALID_REQUEST, message: "rate limit exceeded; retry later"}
	case errors.Is(err, errOrigin):
		return answer{status: http.StatusForbidden, code: mcp.INVALID_REQUEST, message: "forbidden: origin not allowed"}
	case errors.Is(err, errHost):
		return answer{status: http.StatusForbidden, code: mcp.INVALID_REQUEST, message: "forbidden: invalid Host header"}
	case errors.Is(err, errTooLarge):
		return answer{status: http.StatusRequestEntityTooLarge, code: mcp.INVALID_REQUEST, message: fmt.Sprintf("request body exceeds %d bytes", h.cfg.MaxBodyBytes)}
	}
	h.core.log.Error("internal error", "err", err)
	return answer{status: http.StatusInternalServerError, code: mcp.INTERNAL_ERROR, message: "internal error; see the server log"}
}

// scopeParam is the challenge's scope parameter: the scopes the server's
// tools need (MCP authorization 2025-11-25, "Scope Selection Strategy": a
// client requests what the 401 names), preceded by ", "; empty when no tool
// needs a scope.
func (h *HTTP) scopeParam() string {
	sc := h.cfg.Authorizer.Scopes()
	if len(sc) == 0 {
		return ""
	}
	return `, scope="` + strings.Join(sc, " ") + `"`
}

// rpcStatus is the HTTP status of a JSON-RPC error answer: 200 in the legacy
// era; in 2026-07-28 the status mcp-go uses for that code.
func rpcStatus(code int, modern bool) int {
	if !modern {
		return http.StatusOK
	}
	switch code {
	case mcp.INVALID_REQUEST, mcp.INVALID_PARAMS, mcp.PARSE_ERROR:
		return http.StatusBadRequest
	case mcp.METHOD_NOT_FOUND:
		return http.StatusNotFound
	}
	return http.StatusOK
}

// write sends a as a JSON-RPC error response for request id (null if unknown).
func (h *HTTP) write(w http.ResponseWriter, a answer, id json.RawMessage) {
	hd := w.Header()
	if a.challenge != "" {
		hd.Set("WWW-Authenticate", a.challenge)
	}
	if a.retryAfter > 0 {
		hd.Set("Retry-After", strconv.Itoa(a.retryAfter))
	}
	hd.Set("Cache-Control", "no-store")
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	writeJSON(w, a.status, map[string]any{
		"jsonrpc": "2.0", "id": id,
		"error": map[string]any{"code": a.code, "message": a.message, "data": a.data},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// bearerToken extracts an RFC 6750 §2.1 bearer token. A missing header is
// (no token, not present); any other scheme is an Unauthenticated error
// (there is no token to call invalid); a malformed bearer header is an
// invalid token.
func bearerToken(r *http.Request) (string, bool, error) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", true, &auth.Error{Kind: auth.KindInvalidToken, Msg: "invalid token", Err: errors.New("more than one Authorization header")}
	}
	scheme, tok, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false, auth.Unauthenticated("authorization scheme is not Bearer")
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", true, &auth.Error{Kind: auth.KindInvalidToken, Msg: "invalid token", Err: errors.New("empty bearer token")}
	}
	return tok, true, nil
}

// checkHost refuses a request that arrived on a loopback connection with a
// Host that is neither loopback nor the resource's host: a DNS-rebinding
// attempt (MCP security best practices, "local MCP server compromise").
func (h *HTTP) checkHost(r *http.Request) error {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return nil
	}
	ta, ok := la.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return nil
	}
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	if jwtauth.IsLoopbackHost(host) || strings.EqualFold(host, h.resourceHost) {
		return nil
	}
	return fmt.Errorf("%w: %q", errHost, r.Host)
}

// normalizeOrigin returns scheme://host[:port] in lower case, or an error
// when o is not an origin.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q is not an origin (scheme://host[:port]): %w", o, auth.ErrInvalidConfig)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// corsHeaders lets an allowed browser origin read answers, including the
// challenge a client needs to start authorization. No credentials: bearer
// tokens are sent explicitly, never as cookies.
func corsHeaders(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Retry-After, Mcp-Session-Id, Mcp-Protocol-Version")
}

// preflight answers a CORS preflight (the Origin was already checked).
func preflight(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "600")
	h.Set("Allow", "GET, POST, DELETE, OPTIONS")
	w.WriteHeader(http.StatusNoContent)
}

// clientKey is the rate-limit key of a client address: the IP, or its /64
// for IPv6 (one host usually owns a whole /64).
// clientAddr is the address a request's failed authentications count
// against: its peer's, or, when the peer is a trusted proxy, the client's
// that X-Forwarded-For names (see HTTPConfig.TrustedProxies).
func (h *HTTP) clientAddr(r *http.Request) string {
	client, ok := parseHop(r.RemoteAddr)
	if !ok || !h.trustedProxy(client) {
		return clientKey(r.RemoteAddr)
	}
	// Right to left, over the header's lines and their entries: each
	// trusted proxy vouches for the hop before it; the first address that
	// is not a trusted proxy is the client. An entry that is not an address
	// ends the walk at the last good one, and so does the maxHops-th.
	lines := r.Header.Values("X-Forwarded-For")
	hops := 0
walk:
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		for {
			j := strings.LastIndexByte(line, ',')
			hops++
			a, ok := parseHop(line[j+1:])
			if !ok || hops > maxHops {
				break walk
			}
			client = a
			if !h.trustedProxy(a) {
				break walk
			}
			if j < 0 {
				break
			}
			line = line[:j]
		}
	}
	return clientKey(client.String())
}

// maxHops is the most X-Forwarded-For entries clientAddr looks at.
const maxHops = 16

// trustedProxy reports whether a is one of the configured proxies.
func (h *HTTP) trustedProxy(a netip.Addr) bool {
	for _, p := range h.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop parses an address as X-Forwarded-For and RemoteAddr write it:
// "192.0.2.1", "2001:db8::1", "[2001:db8::1]:443" or "192.0.2.1:80".
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// clientKey is the key of an address in the failed-auth limiter: the IPv4
// address, or the /64 of an IPv6 one.
func clientKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// limiterSet is a bounded table of token buckets, one per key.
type limiterSet struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	m     map[string]*rate.Limiter
}

func newLimiterSet(limit rate.Limit, burst int) *limiterSet {
	return &limiterSet{limit: limit, burst: burst, m: map[string]*rate.Limiter{}}
}

// get returns key's limiter. When the table is full it first forgets
// limiters that have refilled (their keys have been quiet), then arbitrary
// ones, so memory stays bounded whatever the number of keys.
func (s *limiterSet) get(key string, now time.Time) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.m[key]; ok {
		return l
	}
	if len(s.m) >= maxLimiters {
		for k, l := range s.m {
			if l.TokensAt(now) >= float64(s.burst) {
				delete(s.m, k)
			}
		}
		for k := range s.m {
			if len(s.m) < maxLimiters {
				break
			}
			delete(s.m, k)
		}
	}
	l := rate.NewLimiter(s.limit, s.burst)
	s.m[key] = l
	return l
}

// reserve takes one token for key; when none is left it returns false and
// the seconds until one will be.
func (s *limiterSet) reserve(key string, now time.Time) (int, bool) {
	if s.limit == rate.Inf {
		return 0, true
	}
	r := s.get(key, now).ReserveN(now, 1)
	if !r.OK() {
		return 60, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return int(math.Ceil(d.Seconds())), false
	}
	return 0, true
}

// exhausted reports whether key has no token left (without taking one).
func (s *limiterSet) exhausted(key string, now time.Time) bool {
	if s.limit == rate.Inf {
		return false
	}
	s.mu.Lock()
	l, ok := s.m[key]
	s.mu.Unlock()
	return ok && l.TokensAt(now) < 1
}

// retryAfter is the seconds until key has a token again (at least 1).
func (s *limiterSet) retryAfter(key string, now time.Time) int {
	l := s.get(key, now)
	missing := 1 - l.TokensAt(now)
	if missing <= 0 || l.Limit() <= 0 {
		return 1
	}
	return max(1, int(math.Ceil(missing/float64(l.Limit()))))
}

// strike takes one token from key, if there is one.
func (s *limiterSet) strike(key string, now time.Time) {
	if s.limit == rate.Inf {
		return
	}
	s.get(key, now).AllowN(now, 1)
}
