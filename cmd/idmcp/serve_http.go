package main

import (
	"cmp"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/auth/devissuer"
	jwtauth "github.com/idmcp/idmcp/auth/jwt"
	"github.com/idmcp/idmcp/sandbox"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

// httpFlags are serve's HTTP-mode flags. Each takes its default from an
// IDMCP_… environment variable; an empty value then falls back to the
// policy file's [http] table.
type httpFlags struct {
	addr           string
	issuer         string
	resource       string
	jwksURL        string
	tlsCert        string
	tlsKey         string
	audiences      listFlag
	allowedOrigins listFlag
	trustedProxies listFlag
	tlsUpstream    bool
	dev            bool
	envErr         error

	// Identity provider conventions and opaque tokens (issue 17).
	provider         string
	introspectionURL string
	maxTokenLifetime time.Duration
	// Rate limits; nil when not given (the policy's, then the defaults).
	subjectRate     *float64
	subjectBurst    *int
	failedAuthRate  *float64
	failedAuthBurst *int
}

// register adds the HTTP flags to fs.
func (h *httpFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.addr, "http", os.Getenv("IDMCP_HTTP"), "serve MCP over Streamable HTTP on `ADDR` (host:port; a bare port or :port binds 127.0.0.1) instead of stdio [$IDMCP_HTTP]")
	fs.StringVar(&h.issuer, "issuer", os.Getenv("IDMCP_ISSUER"), "HTTP: the authorization server's issuer `URL`; tokens must come from it (https, or http on loopback) [$IDMCP_ISSUER]")
	fs.StringVar(&h.resource, "resource", os.Getenv("IDMCP_RESOURCE"), "HTTP: canonical `URL` of the MCP endpoint (default http(s)://ADDR/mcp) [$IDMCP_RESOURCE]")
	fs.StringVar(&h.jwksURL, "jwks-url", os.Getenv("IDMCP_JWKS_URL"), "HTTP: signing keys `URL` (default: discovered from the issuer's metadata) [$IDMCP_JWKS_URL]")
	fs.StringVar(&h.tlsCert, "tls-cert", os.Getenv("IDMCP_TLS_CERT"), "HTTP: TLS certificate `FILE` (PEM) [$IDMCP_TLS_CERT]")
	fs.StringVar(&h.tlsKey, "tls-key", os.Getenv("IDMCP_TLS_KEY"), "HTTP: TLS private key `FILE` (PEM) [$IDMCP_TLS_KEY]")
	h.audiences = listFlag{vals: envList("IDMCP_AUDIENCE")}
	fs.Var(&h.audiences, "audience", "HTTP: accepted token audience `URL`, repeatable (default: the resource) [$IDMCP_AUDIENCE, comma-separated]")
	h.allowedOrigins = listFlag{vals: envList("IDMCP_ALLOWED_ORIGIN")}
	fs.Var(&h.allowedOrigins, "allowed-origin", "HTTP: browser `ORIGIN` allowed to call the server, repeatable; other Origin headers get 403 [$IDMCP_ALLOWED_ORIGIN, comma-separated]")
	h.trustedProxies = listFlag{vals: envList("IDMCP_TRUSTED_PROXY")}
	fs.Var(&h.trustedProxies, "trusted-proxy", "HTTP: reverse proxy `CIDR` (or address) whose X-Forwarded-For names the client for per-address limits, repeatable [$IDMCP_TRUSTED_PROXY, comma-separated]")
	upstream := false
	if v, ok := os.LookupEnv("IDMCP_TLS_TERMINATED_UPSTREAM"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			h.envErr = fmt.Errorf("IDMCP_TLS_TERMINATED_UPSTREAM=%q: want true or false", v)
		}
		upstream = b
	}
	dev := false
	if v, ok := os.LookupEnv("IDMCP_DEV"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			h.envErr = fmt.Errorf("IDMCP_DEV=%q: want true or false", v)
		}
		dev = b
	}
	fs.BoolVar(&h.dev, "dev", dev, "HTTP: run an embedded development issuer next to /mcp (loopback only, never with --issuer; prints demo client secrets) [$IDMCP_DEV]")
	fs.BoolVar(&h.tlsUpstream, "tls-terminated-upstream", upstream, "HTTP: a proxy in front terminates TLS, so a non-loopback ADDR may serve plain HTTP [$IDMCP_TLS_TERMINATED_UPSTREAM]")
	fs.StringVar(&h.provider, "provider", os.Getenv("IDMCP_PROVIDER"), "HTTP: identity provider `NAME` whose token conventions apply: generic (strict RFC 9068), cognito, entra, okta, auth0, keycloak, google, github; each convention can be overridden in the policy's [http] table [$IDMCP_PROVIDER]")
	fs.StringVar(&h.introspectionURL, "introspection-url", os.Getenv("IDMCP_INTROSPECTION_URL"), "HTTP: RFC 7662 token introspection endpoint `URL` for opaque tokens (client credentials: [http] introspection_client_id and $IDMCP_INTROSPECTION_SECRET) [$IDMCP_INTROSPECTION_URL]")
	// envFunc registers a flag parsed by set whose default comes from the
	// environment variable env (a bad value there is reported like the
	// other IDMCP_… errors).
	envFunc := func(name, env, usage string, set func(string) error) {
		if v := os.Getenv(env); v != "" {
			if err := set(v); err != nil {
				h.envErr = fmt.Errorf("%s: %w", env, err)
			}
		}
		fs.Func(name, usage+" [$"+env+"]", set)
	}
	envFunc("max-token-lifetime", "IDMCP_MAX_TOKEN_LIFETIME", "HTTP: refuse access tokens whose exp − iat exceeds `DURATION` (e.g. 1h); off by default", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%q is not a duration such as 30m or 1h", v)
		}
		h.maxTokenLifetime = d
		return nil
	})
	rateFlag := func(dst **float64) func(string) error {
		return func(v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
				return fmt.Errorf("%q: want requests per second ≥ 0 (0 turns the limit off)", v)
			}
			*dst = &f
			return nil
		}
	}
	burstFlag := func(dst **int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1_000_000 {
				return fmt.Errorf("%q: want 1..1000000", v)
			}
			*dst = &n
			return nil
		}
	}
	envFunc("subject-rate", "IDMCP_SUBJECT_RATE", fmt.Sprintf("HTTP: sustained requests per second of one subject, `RATE` (0 = no limit; default %v)", server.DefaultSubjectRate), rateFlag(&h.subjectRate))
	envFunc("subject-burst", "IDMCP_SUBJECT_BURST", fmt.Sprintf("HTTP: requests one subject may make at once, `N` (default %d)", server.DefaultSubjectBurst), burstFlag(&h.subjectBurst))
	envFunc("failed-auth-rate", "IDMCP_FAILED_AUTH_RATE", fmt.Sprintf("HTTP: sustained failed authentications per second of one client address, `RATE`; past it junk gets 429 (0 = no limit; default %v)", server.DefaultFailedAuthRate), rateFlag(&h.failedAuthRate))
	envFunc("failed-auth-burst", "IDMCP_FAILED_AUTH_BURST", fmt.Sprintf("HTTP: failed authentications one address may cause at once, `N` (default %d)", server.DefaultFailedAuthBurst), burstFlag(&h.failedAuthBurst))
}

// wanted reports whether serve should speak HTTP: --http (or IDMCP_HTTP), or
// an addr in the policy file's [http] table. A policy that does not load is
// reported by the stdio path, which loads it again.
func (h *httpFlags) wanted(policyPath string) bool {
	if h.addr != "" {
		return true
	}
	pol, err := loadPolicy(policyPath)
	return err == nil && pol != nil && pol.HTTP != nil && pol.HTTP.Addr != ""
}

// stdioOnly refuses HTTP-only flags when serving stdio, where they would be
// silently ignored (--issuer, --audience, --resource and --jwks-url do apply
// on stdio: they let a host present an access token).
func (h *httpFlags) stdioOnly() error {
	var set []string
	if h.dev {
		set = append(set, "--dev")
	}
	if h.tlsCert != "" || h.tlsKey != "" {
		set = append(set, "--tls-cert/--tls-key")
	}
	if len(h.allowedOrigins.vals) > 0 {
		set = append(set, "--allowed-origin")
	}
	if len(h.trustedProxies.vals) > 0 {
		set = append(set, "--trusted-proxy")
	}
	if h.tlsUpstream {
		set = append(set, "--tls-terminated-upstream")
	}
	if h.introspectionURL != "" {
		set = append(set, "--introspection-url")
	}
	if h.subjectRate != nil || h.subjectBurst != nil || h.failedAuthRate != nil || h.failedAuthBurst != nil {
		set = append(set, "--subject-rate/--subject-burst/--failed-auth-rate/--failed-auth-burst")
	}
	if len(set) > 0 {
		return fmt.Errorf("%s: HTTP mode only; add --http ADDR (e.g. --http 127.0.0.1:8080)", strings.Join(set, ", "))
	}
	return nil
}

// listFlag is a repeatable flag whose default (from the environment) is
// replaced, not extended, by the first value given on the command line.
type listFlag struct {
	vals []string
	set  bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }

func (l *listFlag) Set(v string) error {
	if !l.set {
		l.vals, l.set = nil, true
	}
	l.vals = append(l.vals, v)
	return nil
}

// envList splits a comma-separated environment variable.
func envList(k string) []string {
	var out []string
	for v := range strings.SplitSeq(os.Getenv(k), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// httpSettings is the resolved HTTP configuration.
type httpSettings struct {
	bind      string // host:port to listen on
	host      string // host as given (for the default resource)
	issuer    string
	resource  string
	audiences []string
	jwksURL   string
	origins   []string
	proxies   []netip.Prefix
	tlsCert   string
	tlsKey    string
	upstream  bool
	dev       bool

	provider         jwtauth.Provider
	introspectionURL string
	maxTokenLifetime time.Duration
	rateLimit        server.RateLimit
}

// resolveHTTP merges flags (and their environment defaults) over the policy's
// [http] table and checks the combination. The listener does not exist yet,
// so an empty resource is derived later from the bound address.
func resolveHTTP(h httpFlags, pol *auth.Policy) (httpSettings, error) {
	if h.envErr != nil {
		return httpSettings{}, &exitError{code: 2, err: h.envErr}
	}
	s := httpSettings{issuer: h.issuer, resource: h.resource, jwksURL: h.jwksURL, tlsCert: h.tlsCert, tlsKey: h.tlsKey,
		audiences: h.audiences.vals, origins: h.allowedOrigins.vals, upstream: h.tlsUpstream}
	addr := h.addr
	if pol != nil && pol.HTTP != nil {
		p := pol.HTTP
		addr = cmp.Or(addr, p.Addr)
		s.issuer, s.resource, s.jwksURL = cmp.Or(s.issuer, p.Issuer), cmp.Or(s.resource, p.Resource), cmp.Or(s.jwksURL, p.JWKSURL)
		if len(s.audiences) == 0 {
			s.audiences = slices.Clone(p.Audiences)
		}
		if len(s.origins) == 0 {
			s.origins = slices.Clone(p.AllowedOrigins)
		}
	}
	proxies := h.trustedProxies.vals
	if len(proxies) == 0 && pol != nil && pol.HTTP != nil {
		proxies = pol.HTTP.TrustedProxies
	}
	for _, v := range proxies {
		pfx, err := auth.ParsePrefix(v)
		if err != nil {
			return httpSettings{}, &exitError{code: 2, err: fmt.Errorf("--trusted-proxy: %w", err)}
		}
		s.proxies = append(s.proxies, pfx)
	}
	usage := func(format string, args ...any) (httpSettings, error) {
		return httpSettings{}, &exitError{code: 2, err: fmt.Errorf(format, args...)}
	}
	var ph *auth.HTTPSettings
	if pol != nil {
		ph = pol.HTTP
	}
	prov, err := jwtauth.ParseProvider(cmp.Or(h.provider, httpField(ph, func(p *auth.HTTPSettings) string { return p.Provider })))
	if err != nil {
		return usage("--provider: %v", err)
	}
	s.provider = prov
	s.introspectionURL = cmp.Or(h.introspectionURL, httpField(ph, func(p *auth.HTTPSettings) string { return p.IntrospectionURL }))
	s.maxTokenLifetime = h.maxTokenLifetime
	if s.maxTokenLifetime == 0 && ph != nil {
		s.maxTokenLifetime = ph.MaxTokenLifetime
	}
	s.rateLimit = rateLimit(h, ph)
	if s.issuer == "" && !h.dev {
		// Google and GitHub have one issuer each; their tokens are opaque.
		switch prov {
		case jwtauth.ProviderGoogle:
			s.issuer = "https://accounts.google.com"
		case jwtauth.ProviderGitHub:
			s.issuer = "https://github.com"
		}
	}
	s.dev = h.dev
	switch {
	case s.dev && s.issuer != "":
		return usage("--dev never combines with --issuer: in dev mode the embedded development issuer is the only issuer")
	case s.dev && s.jwksURL != "":
		return usage("--dev never combines with --jwks-url: the development issuer serves its own keys")
	case !s.dev && s.issuer == "":
		return usage("--http needs --issuer URL: the authorization server whose tokens are accepted (or --dev for a local development issuer)")
	}
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return usage("--tls-cert and --tls-key go together")
	}
	// "8080" and ":8080" bind loopback: exposing the server is a decision.
	if _, err := strconv.Atoi(addr); err == nil {
		addr = ":" + addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usage("--http %q: want host:port, :port or port", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	s.host, s.bind = host, net.JoinHostPort(host, port)
	loopback := isLoopbackName(host)
	if s.dev && !loopback {
		return usage("--dev runs only on a loopback address (127.0.0.1, ::1, localhost), not %s: its issuer hands out tokens to anyone who asks", s.bind)
	}
	if !loopback && s.tlsCert == "" && !s.upstream {
		return usage("--http %s is not a loopback address: serving bearer tokens over plain HTTP there would expose them; give --tls-cert/--tls-key, or --tls-terminated-upstream when a proxy terminates TLS", s.bind)
	}
	if s.resource == "" && (s.upstream || isWildcard(host)) {
		return usage("--resource URL is required with %s: the public URL of the MCP endpoint cannot be derived from %s", map[bool]string{true: "--tls-terminated-upstream", false: "a wildcard address"}[s.upstream], s.bind)
	}
	return s, nil
}

// httpField returns f(p), or "" when there is no [http] table.
func httpField(p *auth.HTTPSettings, f func(*auth.HTTPSettings) string) string {
	if p == nil {
		return ""
	}
	return f(p)
}

// rateLimit resolves the rate limits: flag, then policy, then default
// (zero fields, which server.HTTPConfig fills). 0 given anywhere turns a
// limit off (rate.Inf).
func rateLimit(h httpFlags, p *auth.HTTPSettings) server.RateLimit {
	pick := func(flag, pol *float64) rate.Limit {
		v := flag
		if v == nil {
			v = pol
		}
		switch {
		case v == nil:
			return 0
		case *v == 0:
			return rate.Inf
		}
		return rate.Limit(*v)
	}
	pickN := func(flag, pol *int) int {
		if flag != nil {
			return *flag
		}
		if pol != nil {
			return *pol
		}
		return 0
	}
	var pr, pf *float64
	var pb, pfb *int
	if p != nil {
		pr, pb, pf, pfb = p.SubjectRate, p.SubjectBurst, p.FailedAuthRate, p.FailedAuthBurst
	}
	return server.RateLimit{
		PerSubject: pick(h.subjectRate, pr), SubjectBurst: pickN(h.subjectBurst, pb),
		FailedAuthPerAddr: pick(h.failedAuthRate, pf), FailedAuthBurst: pickN(h.failedAuthBurst, pfb),
	}
}

// jwtConfig is the verifier configuration for issuer and audiences with the
// provider's conventions and the policy's overrides of them.
func jwtConfig(hs httpSettings, pol *auth.Policy, logger *slog.Logger) jwtauth.Config {
	cfg := jwtauth.Config{Issuer: hs.issuer, Audiences: hs.audiences, JWKSURL: hs.jwksURL, Logger: logger,
		Claims: claimMapping(pol), Provider: hs.provider, MaxTokenLifetime: hs.maxTokenLifetime}
	if pol != nil && pol.HTTP != nil {
		p := pol.HTTP
		cfg.AcceptedTypes = p.AcceptedTypes
		cfg.AllowUntypedTokens = p.AcceptUntypedTokens
		cfg.AudienceClaim = p.AudienceClaim
		cfg.ExtraIssuers = p.ExtraIssuers
		cfg.RefuseIDTokens = p.RefuseIDTokens
	}
	return cfg
}

// tokenVerifier builds what checks bearer tokens: the JWT verifier, an
// Introspector for opaque tokens (Google, GitHub, or RFC 7662 when an
// introspection URL is set), or a Chain of both. It returns the URLs it
// will fetch (for the sandbox) and a func that stops it.
func tokenVerifier(ctx context.Context, hs httpSettings, pol *auth.Policy, logger *slog.Logger) (server.TokenVerifier, []string, func(), error) {
	vcfg := jwtConfig(hs, pol, logger)
	var ph auth.HTTPSettings
	if pol != nil && pol.HTTP != nil {
		ph = *pol.HTTP
	}
	kind := ph.Introspection
	switch {
	case hs.provider == jwtauth.ProviderGoogle || hs.provider == jwtauth.ProviderGitHub:
		kind = cmp.Or(kind, string(hs.provider))
	case kind == "" && hs.introspectionURL != "":
		kind = jwtauth.IntrospectRFC7662
	}
	var (
		jv  *jwtauth.Verifier
		ins *jwtauth.Introspector
		idp = []string{hs.issuer}
	)
	if kind != "" {
		icfg := jwtauth.IntrospectionConfig{
			Kind: kind, URL: hs.introspectionURL, Issuer: hs.issuer, Audiences: hs.audiences, AudienceClaim: vcfg.AudienceClaim,
			ClientID: ph.IntrospectionClientID, ClientAuth: ph.IntrospectionAuth, KeyID: ph.IntrospectionKeyID,
			CacheTTL: ph.IntrospectionCacheTTL, MaxTokenLifetime: hs.maxTokenLifetime, Claims: vcfg.Claims, Logger: logger,
		}
		if vcfg.AudienceClaim == "" && hs.provider == jwtauth.ProviderCognito {
			icfg.AudienceClaim = "client_id"
		}
		secret := os.Getenv("IDMCP_INTROSPECTION_SECRET")
		if ph.IntrospectionSecretFile != "" {
			b, err := os.ReadFile(ph.IntrospectionSecretFile)
			if err != nil {
				return nil, nil, nil, &exitError{code: 2, err: fmt.Errorf("[http] introspection_client_secret_file: %w", err)}
			}
			secret = strings.TrimSpace(string(b))
		}
		icfg.ClientSecret = secret
		if ph.IntrospectionKeyFile != "" {
			k, err := loadPrivateKey(ph.IntrospectionKeyFile)
			if err != nil {
				return nil, nil, nil, &exitError{code: 2, err: fmt.Errorf("[http] introspection_client_key_file: %w", err)}
			}
			icfg.PrivateKey = k
		}
		var err error
		if ins, err = jwtauth.NewIntrospector(icfg); err != nil {
			return nil, nil, nil, &exitError{code: 2, err: fmt.Errorf("introspection: %w", err)}
		}
		idp = append(idp, ins.URL())
	}
	if !hs.provider.Opaque() {
		if err := vcfg.Validate(); err != nil {
			return nil, nil, nil, &exitError{code: 2, err: fmt.Errorf("--issuer/--audience/--jwks-url/[http]: %w", err)}
		}
		var err error
		if jv, err = jwtauth.New(ctx, vcfg); err != nil {
			return nil, nil, nil, err
		}
		if u := cmp.Or(hs.jwksURL, jv.JWKSURL()); u != "" {
			idp = append(idp, u)
		}
	}
	ch := &jwtauth.Chain{JWT: jv, Opaque: ins}
	return ch, idp, ch.Close, nil
}

// loadPrivateKey reads a PKCS#8 (or PKCS#1 / SEC 1) PEM private key.
func loadPrivateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS#8, PKCS#1 or SEC 1 private key")
}

// isLoopbackName reports whether host is "localhost" or a loopback IP.
func isLoopbackName(host string) bool {
	return jwtauth.IsLoopbackHost(host)
}

func isWildcard(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// serveHTTP is `idmcp serve --http ADDR`: an OAuth 2.1 resource server on
// Streamable HTTP. Start-up order: flags and policy, listener, databases,
// tools, signing keys, then the sandbox, then serving until SIGTERM/SIGINT,
// which drains in-flight requests and then the audit queue.
func serveHTTP(ctx context.Context, f serveFlags, stderr io.Writer) error {
	c, err := f.common()
	if err != nil {
		return err
	}
	pol, dir := c.pol, c.dir
	hs, err := resolveHTTP(f.http, pol)
	if err != nil {
		return err
	}
	redactor := &audit.Redactor{Keys: policyRedactKeys(pol)}
	logger := server.NewLogger(stderr, c.level, redactor)

	var tlsConfig *tls.Config
	if hs.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(hs.tlsCert, hs.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	// Listen before the sandbox (which grants no bind), without MPTCP (which
	// Landlock does not restrict).
	ln, err := sandbox.Listen(ctx, "tcp", hs.bind)
	if err != nil {
		return fmt.Errorf("--http: %w", err)
	}
	defer ln.Close()
	if hs.resource == "" {
		scheme := "http"
		if tlsConfig != nil {
			scheme = "https"
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		hs.resource = scheme + "://" + net.JoinHostPort(hs.host, port) + "/mcp"
	}
	if len(hs.audiences) == 0 {
		hs.audiences = []string{hs.resource}
	}
	if hs.dev {
		// The dev issuer lives on this listener, under the same host name
		// clients use for the resource (iss must match exactly).
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		hs.issuer = "http://" + net.JoinHostPort(hs.host, port)
	}

	// DevIssuer marks, in whoami, that every token here is a development one.
	info := tools.ServerInfo{Name: server.Name, Version: version, DevIssuer: hs.dev}
	b, err := openBackend(ctx, c, f.workspace, redactor, logger, func() tools.ServerInfo { return info })
	if err != nil {
		return err
	}
	defer b.Close()
	alog, ts := b.alog, b.ts

	vcfg := jwtConfig(hs, pol, logger)
	if err := vcfg.Validate(); err != nil && !hs.provider.Opaque() {
		return &exitError{code: 2, err: fmt.Errorf("--issuer/--audience/--jwks-url: %w", err)}
	}
	var (
		verifier server.TokenVerifier
		late     *lateVerifier
		dev      *devIssuer
		mounts   map[string]http.Handler
		idp      []string
	)
	if hs.dev {
		var reqs []auth.Requirement
		for _, sp := range ts.Specs {
			reqs = append(reqs, sp.Requirement())
		}
		if dev, err = newDevIssuer(dir, hs.issuer, hs.resource, allScopes(reqs)); err != nil {
			return err
		}
		for _, c := range dev.clients {
			redactor.AddSecrets(c.Secret) // the audit log and the logs never keep them
		}
		vcfg.JWKSURL = hs.issuer + devissuer.PathJWKS
		late = &lateVerifier{}
		defer late.close()
		verifier, mounts = late, dev.mounts()
		logger.Warn("DEVELOPMENT ISSUER enabled: tokens are handed to anyone on this machine who asks; never use --dev in production", "issuer", hs.issuer)
	} else {
		ver, urls, stop, err := tokenVerifier(ctx, hs, pol, logger)
		if err != nil {
			return err
		}
		defer stop()
		verifier, idp = ver, urls
	}

	h, err := server.NewHTTP(server.HTTPConfig{
		Config: server.Config{
			Version: version, Tools: ts.Specs, Authorizer: ts.Authorizer, Audit: alog, Logger: logger, ListAllTools: f.listAllTools,
		},
		Verifier:             verifier,
		Mounts:               mounts,
		Resource:             hs.resource,
		AuthorizationServers: []string{hs.issuer},
		AllowedOrigins:       hs.origins,
		TrustedProxies:       hs.proxies,
		RateLimit:            hs.rateLimit,
	})
	if err != nil {
		if errors.Is(err, auth.ErrInvalidConfig) {
			return &exitError{code: 2, err: err}
		}
		return err
	}

	// Everything wide is open; after this the process reaches only the
	// identity provider (metadata, keys).
	if hs.dev {
		idp = []string{hs.issuer, vcfg.JWKSURL}
	}
	sbPolicy, err := sandboxPolicy(sandboxInputs{Mode: c.sbMode, DataDir: dir, Workspace: ts.WorkspaceDir, Tools: ts.Specs, IdentityProvider: idp})
	if err != nil {
		return err
	}
	sb, err := applySandbox(logger, sbPolicy)
	if err != nil {
		return err
	}
	info.Sandbox = sb

	startEv := audit.Event{Transport: "http", Event: audit.EventServerStart,
		Reason: fmt.Sprintf("idmcp %s (%s/%s) serving HTTP on %s; resource %s; issuer %s; %s", version, runtime.GOOS, runtime.GOARCH, ln.Addr(), hs.resource, hs.issuer, sb)}
	if err := alog.Append(ctx, startEv); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if hs.dev {
		dev.printClients(stderr, hs.issuer, hs.resource)
		// The keys are served by this listener: fetch them once it serves.
		go func() {
			v, err := jwtauth.New(ctx, vcfg)
			if err != nil {
				logger.Error("dev issuer keys", "err", err)
				return
			}
			late.v.Store(v)
		}()
	}
	logger.Info("serving MCP over HTTP", "addr", ln.Addr().String(), "resource", hs.resource, "issuer", hs.issuer,
		"resource_metadata", h.PRMURL(), "tls", tlsConfig != nil, "keys_loaded", verifier.Ready(), "dev_issuer", hs.dev)
	err = h.Serve(ctx, ln, tlsConfig)
	stopEv := audit.Event{Transport: "http", Event: audit.EventServerStop, Reason: "signal; in-flight requests drained"}
	if err != nil {
		stopEv.Reason = "stopped: " + err.Error()
	}
	if aerr := alog.Append(context.WithoutCancel(ctx), stopEv); aerr != nil {
		logger.Error("audit stop row", "err", aerr)
	}
	if err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// stdioTokens is the JWT verifier of stdio mode: with --issuer, a desktop
// host may present a user's access token (in IDMCP_TOKEN or the auth
// capability) instead of the profile's secret. It returns nil without
// --issuer, and the URLs the verifier fetches (for the sandbox).
func stdioTokens(ctx context.Context, h httpFlags, pol *auth.Policy, logger *slog.Logger) (server.TokenVerifier, []string, error) {
	if h.envErr != nil {
		return nil, nil, &exitError{code: 2, err: h.envErr}
	}
	issuer, resource, jwks, audiences := h.issuer, h.resource, h.jwksURL, h.audiences.vals
	if pol != nil && pol.HTTP != nil {
		issuer, resource, jwks = cmp.Or(issuer, pol.HTTP.Issuer), cmp.Or(resource, pol.HTTP.Resource), cmp.Or(jwks, pol.HTTP.JWKSURL)
		if len(audiences) == 0 {
			audiences = slices.Clone(pol.HTTP.Audiences)
		}
	}
	if issuer == "" {
		return nil, nil, nil
	}
	if len(audiences) == 0 && resource != "" {
		audiences = []string{resource}
	}
	if len(audiences) == 0 {
		return nil, nil, &exitError{code: 2, err: errors.New("--issuer on stdio needs --audience (or --resource): the audience the host's access tokens are issued for")}
	}
	var ph *auth.HTTPSettings
	if pol != nil {
		ph = pol.HTTP
	}
	prov, err := jwtauth.ParseProvider(cmp.Or(h.provider, httpField(ph, func(p *auth.HTTPSettings) string { return p.Provider })))
	if err != nil {
		return nil, nil, &exitError{code: 2, err: fmt.Errorf("--provider: %w", err)}
	}
	if prov.Opaque() {
		return nil, nil, &exitError{code: 2, err: fmt.Errorf("--provider %s: its tokens are opaque; stdio accepts JWT access tokens only", prov)}
	}
	hs := httpSettings{issuer: issuer, audiences: audiences, jwksURL: jwks, provider: prov, maxTokenLifetime: h.maxTokenLifetime}
	if hs.maxTokenLifetime == 0 && ph != nil {
		hs.maxTokenLifetime = ph.MaxTokenLifetime
	}
	cfg := jwtConfig(hs, pol, logger)
	if err := cfg.Validate(); err != nil {
		return nil, nil, &exitError{code: 2, err: fmt.Errorf("--issuer/--audience/--jwks-url: %w", err)}
	}
	v, err := jwtauth.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	idp := []string{issuer}
	if u := cmp.Or(jwks, v.JWKSURL()); u != "" {
		idp = append(idp, u)
	}
	logger.Info("stdio accepts access tokens as host credentials", "issuer", issuer, "audiences", audiences)
	return v, idp, nil
}
