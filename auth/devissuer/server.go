package devissuer

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Client is a built-in demo client of the dev issuer.
type Client struct {
	ID     string `json:"client_id"`
	Secret string `json:"-"`
	// Persona describes who the client stands for, for display.
	Persona string `json:"persona"`
	// Scopes and Roles are what its client_credentials tokens may carry.
	Scopes []string `json:"scopes"`
	Roles  []string `json:"roles"`
	// Exchange allows the client to use RFC 8693 token exchange: it acts as
	// an agent on behalf of the subject of a token it presents.
	Exchange bool `json:"exchange"`
}

// DefaultClients returns the demo personas with fresh random secrets:
// alice (developer: reads), bob (admin: everything), carol (contractor:
// nothing), and two agents that may exchange a person's token for a
// delegated one.
func DefaultClients(allScopes []string) []Client {
	return []Client{
		{ID: "alice", Persona: "developer", Scopes: []string{"todo:read", "files:read"}, Roles: []string{"developer"}},
		{ID: "bob", Persona: "admin", Scopes: slices.Clone(allScopes), Roles: []string{"admin"}},
		{ID: "carol", Persona: "contractor", Scopes: []string{}, Roles: []string{"contractor"}},
		{ID: "agent", Persona: "an AI agent acting for a person (token exchange)", Scopes: []string{}, Exchange: true},
		{ID: "sub-agent", Persona: "an agent the first agent delegates to", Scopes: []string{}, Exchange: true},
	}
}

// NewSecret returns a random client secret.
func NewSecret() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "dev_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Config configures the dev issuer's HTTP endpoints.
type Config struct {
	// Issuer is the issuer URL (http://127.0.0.1:PORT); endpoints live below it.
	Issuer string
	// Resource is the protected resource; tokens are issued only for it.
	Resource string
	Key      *Key
	Clients  []Client
	// TTL of issued tokens; DefaultTTL when 0.
	TTL time.Duration
	Now func() time.Time
}

// Validate checks the configuration.
func (c Config) Validate() error {
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Scheme == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("field \"issuer\": %q is not an absolute URL: %w", c.Issuer, ErrInvalid)
	}
	if c.Resource == "" {
		return fmt.Errorf("field \"resource\": empty: %w", ErrInvalid)
	}
	if c.Key == nil {
		return fmt.Errorf("field \"key\": nil: %w", ErrInvalid)
	}
	for _, cl := range c.Clients {
		if cl.ID == "" || len(cl.Secret) < 16 {
			return fmt.Errorf("field \"clients\": client %q needs an id and a secret of 16+ bytes: %w", cl.ID, ErrInvalid)
		}
	}
	if c.TTL > MaxTTL {
		return fmt.Errorf("field \"ttl\": over %s: %w", MaxTTL, ErrInvalid)
	}
	return nil
}

// Issuer serves the dev authorization server.
type Issuer struct {
	cfg Config
}

// New returns a dev issuer.
func New(cfg Config) (*Issuer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	return &Issuer{cfg: cfg}, nil
}

// Paths of the issuer's endpoints, relative to the issuer URL.
const (
	PathMetadata     = "/.well-known/oauth-authorization-server"
	PathOIDC         = "/.well-known/openid-configuration"
	PathJWKS         = "/oauth/jwks"
	PathToken        = "/oauth/token"
	PathAuthorize    = "/oauth/authorize"
	GrantClientCreds = "client_credentials"
	GrantExchange    = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccess  = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT     = "urn:ietf:params:oauth:token-type:jwt"
)

// Metadata returns the RFC 8414 authorization server metadata.
func (i *Issuer) Metadata() map[string]any {
	iss := i.cfg.Issuer
	return map[string]any{
		"issuer":                                iss,
		"token_endpoint":                        iss + PathToken,
		"jwks_uri":                              iss + PathJWKS,
		"authorization_endpoint":                iss + PathAuthorize,
		"grant_types_supported":                 []string{GrantClientCreds, GrantExchange},
		"response_types_supported":              []string{"code"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      i.scopes(),
		"idmcp_dev_issuer":                      true,
	}
}

func (i *Issuer) scopes() []string {
	var out []string
	for _, c := range i.cfg.Clients {
		for _, s := range c.Scopes {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Handler serves metadata, JWKS and the token endpoint under the issuer's
// path. Mount it at the issuer URL's path (usually the root).
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	meta := func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, i.Metadata()) }
	mux.HandleFunc("GET "+PathMetadata, meta)
	mux.HandleFunc("GET "+PathOIDC, meta)
	mux.HandleFunc("GET "+PathJWKS, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"keys": []any{i.cfg.Key.JWK()}})
	})
	mux.HandleFunc("GET "+PathAuthorize, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the idmcp dev issuer has no interactive login; use client_credentials or `idmcp token mint`", http.StatusNotImplemented)
	})
	mux.HandleFunc("POST "+PathToken, i.token)
	return mux
}

// tokenError is an RFC 6749 §5.2 error response.
func tokenError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="idmcp-dev"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// authenticate finds the client from HTTP Basic or the form (RFC 6749 §2.3.1),
// comparing secrets in constant time.
func (i *Issuer) authenticate(r *http.Request) (*Client, error) {
	id, secret, ok := r.BasicAuth()
	if ok {
		// RFC 6749 §2.3.1: Basic credentials are form-urlencoded.
		if u, err := url.QueryUnescape(id); err == nil {
			id = u
		}
		if u, err := url.QueryUnescape(secret); err == nil {
			secret = u
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	for k := range i.cfg.Clients {
		c := &i.cfg.Clients[k]
		if c.ID == id {
			if subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) == 1 {
				return c, nil
			}
			break
		}
	}
	return nil, errors.New("unknown client or wrong secret")
}

func (i *Issuer) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	client, err := i.authenticate(r)
	if err != nil {
		tokenError(w, http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	// RFC 8707: a resource parameter, when sent, must name this resource.
	aud := []string{i.cfg.Resource}
	if res := r.PostForm["resource"]; len(res) > 0 {
		for _, rr := range res {
			if rr != i.cfg.Resource {
				tokenError(w, http.StatusBadRequest, "invalid_target", fmt.Sprintf("this issuer only issues tokens for %s", i.cfg.Resource))
				return
			}
		}
	}
	requested := strings.Fields(r.PostForm.Get("scope"))
	req := MintRequest{Issuer: i.cfg.Issuer, Audience: aud, ClientID: client.ID, TTL: i.cfg.TTL, Now: i.cfg.Now()}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case GrantClientCreds:
		granted, ok := subset(requested, client.Scopes)
		if !ok {
			msg := fmt.Sprintf("client %s may request only: %s", client.ID, strings.Join(client.Scopes, " "))
			if len(client.Scopes) == 0 {
				msg = fmt.Sprintf("client %s may not request any scope", client.ID)
			}
			tokenError(w, http.StatusBadRequest, "invalid_scope", msg)
			return
		}
		req.Subject, req.Scopes, req.Roles = client.ID, granted, client.Roles
	case GrantExchange:
		if !client.Exchange {
			tokenError(w, http.StatusBadRequest, "unauthorized_client", fmt.Sprintf("client %s may not use token exchange", client.ID))
			return
		}
		if tt := r.PostForm.Get("subject_token_type"); tt != TokenTypeAccess && tt != TokenTypeJWT {
			tokenError(w, http.StatusBadRequest, "invalid_request", "subject_token_type must be "+TokenTypeAccess)
			return
		}
		subj, err := i.cfg.Key.Parse(r.PostForm.Get("subject_token"), i.cfg.Issuer, i.cfg.Now())
		if err != nil {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "subject_token is not a valid token of this issuer")
			return
		}
		// The subject token must be one this issuer minted for this
		// resource: a token for another audience is not exchanged into one
		// for this server (RFC 8693 §2.1 leaves the check to the issuer).
		if !slices.Contains(subj.Audience, i.cfg.Resource) {
			tokenError(w, http.StatusBadRequest, "invalid_grant", fmt.Sprintf("subject_token was not issued for %s", i.cfg.Resource))
			return
		}
		// An exchanged token never outlives its subject token, so a chain of
		// exchanges cannot renew a token indefinitely.
		if left := subj.ExpiresAt.Sub(req.Now); left < req.TTL {
			req.TTL = left
		}
		if req.TTL <= 0 {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "subject_token has expired")
			return
		}
		// The delegated token never carries more than the subject's scopes.
		granted, ok := subset(requested, strings.Fields(subj.Scope))
		if !ok {
			tokenError(w, http.StatusBadRequest, "invalid_scope", "requested scopes exceed the subject token's")
			return
		}
		req.Subject, req.Scopes, req.Roles = subj.Subject, granted, subj.Roles
		req.Actors = append([]string{client.ID}, subj.Act.Chain()...)
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q; this issuer supports %s and %s", gt, GrantClientCreds, GrantExchange))
		return
	}
	tok, err := i.cfg.Key.Mint(req)
	if err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	resp := map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(req.TTL.Seconds()), "scope": strings.Join(req.Scopes, " ")}
	if r.PostForm.Get("grant_type") == GrantExchange {
		resp["issued_token_type"] = TokenTypeAccess
	}
	writeJSON(w, http.StatusOK, resp)
}

// subset returns requested if every element is allowed, or allowed when
// nothing was requested.
func subset(requested, allowed []string) ([]string, bool) {
	if len(requested) == 0 {
		return slices.Clone(allowed), true
	}
	for _, s := range requested {
		if !slices.Contains(allowed, s) {
			return nil, false
		}
	}
	return requested, true
}
