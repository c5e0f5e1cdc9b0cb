package jwt_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/idmcp/idmcp/auth"
	jwtauth "github.com/idmcp/idmcp/auth/jwt"
	"github.com/idmcp/idmcp/auth/jwt/jwttest"
)

// standIn is a loopback stand-in for an opaque-token endpoint: RFC 7662
// introspection, Google's tokeninfo or GitHub's token API, answering as
// their documentation says they do (the real ones are not reachable here).
type standIn struct {
	srv   *httptest.Server
	hits  atomic.Int64
	mu    sync.Mutex
	down  bool
	clock *clock
	// tokens maps a token to its answer (RFC 7662 members); absent is
	// unknown (inactive).
	tokens map[string]map[string]any
	// client authentication the stand-in demands.
	clientID, secret string
	pub              *rsa.PublicKey // private_key_jwt
	gotAuth          string         // method of the last request
}

const (
	introspectionClient = "idmcp-rs"
	introspectionSecret = "s3cr3t/with+chars"
)

func newStandIn(t *testing.T, kind string, c *clock) *standIn {
	t.Helper()
	s := &standIn{clock: c, tokens: map[string]map[string]any{}, clientID: introspectionClient, secret: introspectionSecret}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /introspect", s.rfc7662)
	mux.HandleFunc("GET /tokeninfo", s.google)
	mux.HandleFunc("POST /applications/{client}/token", s.github)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *standIn) set(tok string, answer map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = answer
}

func (s *standIn) setDown(d bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = d
}

func (s *standIn) lookup(w http.ResponseWriter, tok string) (map[string]any, bool) {
	s.hits.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		http.Error(w, "down", http.StatusBadGateway)
		return nil, false
	}
	a, ok := s.tokens[tok]
	if !ok {
		return nil, true
	}
	return a, true
}

// rfc7662 answers as RFC 7662 §2.2 says, after authenticating the caller
// by client_secret_basic, client_secret_post or private_key_jwt.
func (s *standIn) rfc7662(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", 400)
		return
	}
	ok := false
	if id, sec, basic := r.BasicAuth(); basic {
		ok, s.gotAuth = id == s.clientID && sec == strings.ReplaceAll(strings.ReplaceAll(s.secret, "/", "%2F"), "+", "%2B"), "basic"
	} else if a := r.PostForm.Get("client_assertion"); a != "" && s.pub != nil {
		t, err := gojwt.Parse(a, func(*gojwt.Token) (any, error) { return s.pub, nil }, gojwt.WithValidMethods([]string{"RS256"}),
			gojwt.WithAudience(s.srv.URL+"/introspect"), gojwt.WithIssuer(s.clientID), gojwt.WithSubject(s.clientID))
		ok, s.gotAuth = err == nil && t.Valid && r.PostForm.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "private_key_jwt"
	} else if r.PostForm.Get("client_id") != "" {
		ok, s.gotAuth = r.PostForm.Get("client_id") == s.clientID && r.PostForm.Get("client_secret") == s.secret, "post"
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="introspection"`)
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	a, served := s.lookup(w, r.PostForm.Get("token"))
	if !served {
		return
	}
	if a == nil {
		a = map[string]any{"active": false}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(a)
}

// google answers as https://oauth2.googleapis.com/tokeninfo does: 200 with
// string-valued numbers for a live token, 400 invalid_token otherwise.
func (s *standIn) google(w http.ResponseWriter, r *http.Request) {
	a, served := s.lookup(w, r.URL.Query().Get("access_token"))
	if !served {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if a == nil {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_token","error_description":"Invalid Value"}`))
		return
	}
	_ = json.NewEncoder(w).Encode(a)
}

// github answers as POST /applications/{client_id}/token does: basic auth
// with the app's credentials, 200 with the token's authorization, 404 for a
// token the app does not know.
func (s *standIn) github(w http.ResponseWriter, r *http.Request) {
	id, sec, _ := r.BasicAuth()
	if id != s.clientID || sec != s.secret || r.PathValue("client") != s.clientID {
		http.Error(w, `{"message":"Requires authentication"}`, http.StatusUnauthorized)
		return
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	a, served := s.lookup(w, body.AccessToken)
	if !served {
		return
	}
	if a == nil {
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(a)
}

const opaqueIssuer = "https://as.example.com"

func mustIntrospector(t *testing.T, cfg jwtauth.IntrospectionConfig) *jwtauth.Introspector {
	t.Helper()
	i, err := jwtauth.NewIntrospector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestIntrospector_RFC7662(t *testing.T) {
	c := newClock()
	s := newStandIn(t, "rfc7662", c)
	now := c.Now()
	s.set("good-opaque-token", map[string]any{
		"active": true, "sub": "alice", "client_id": "agent-1", "aud": []any{aud, "other"}, "scope": "tools.read tools.write",
		"iss": opaqueIssuer, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "token_type": "Bearer", "roles": []any{"admin"},
	})
	s.set("other-aud", map[string]any{"active": true, "sub": "bob", "aud": "https://other.test", "exp": now.Add(time.Hour).Unix()})
	s.set("other-iss", map[string]any{"active": true, "sub": "bob", "aud": aud, "iss": "https://evil.test", "exp": now.Add(time.Hour).Unix()})
	s.set("soon", map[string]any{"active": true, "sub": "carol", "aud": aud, "exp": now.Add(10 * time.Second).Unix()})
	s.set("no-sub", map[string]any{"active": true, "aud": aud, "exp": now.Add(time.Hour).Unix()})
	s.set("username", map[string]any{"active": true, "username": "dave", "aud": aud, "exp": now.Add(time.Hour).Unix()})

	var logs bytes.Buffer
	base := jwtauth.IntrospectionConfig{URL: s.srv.URL + "/introspect", Issuer: opaqueIssuer, Audiences: []string{aud},
		ClientID: introspectionClient, ClientSecret: introspectionSecret, Now: c.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	t.Run("OK", func(t *testing.T) {
		i := mustIntrospector(t, base)
		p, err := i.Verify(context.Background(), "good-opaque-token")
		if err != nil {
			t.Fatalf("refused: %v", reasonOf(err))
		}
		if p.Subject != "alice" || p.ClientID != "agent-1" || p.Issuer != opaqueIssuer || p.Method != auth.MethodIntrospection {
			t.Errorf("principal = %+v", p)
		}
		if !slices.Equal(p.Scopes, []string{"tools.read", "tools.write"}) || !slices.Equal(p.Roles, []string{"admin"}) {
			t.Errorf("scopes, roles = %v, %v", p.Scopes, p.Roles)
		}
		if s.gotAuth != "basic" {
			t.Errorf("client auth = %q, want basic", s.gotAuth)
		}
	})
	t.Run("Refusals", func(t *testing.T) {
		i := mustIntrospector(t, base)
		for tok, want := range map[string]string{
			"unknown-token": "active=false",
			"other-aud":     "invalid audience",
			"other-iss":     "invalid issuer",
			"no-sub":        "no sub",
			"":              "empty",
			"two words":     "malformed",
		} {
			_, err := i.Verify(context.Background(), tok)
			if kindOf(err) != auth.KindInvalidToken || !strings.Contains(reasonOf(err), want) {
				t.Errorf("%q: %v (%s), want invalid_token containing %q", tok, kindOf(err), reasonOf(err), want)
			}
		}
		if _, err := i.Verify(context.Background(), "username"); err != nil {
			t.Errorf("username without sub refused: %v", reasonOf(err))
		}
	})
	t.Run("CacheNeverPastExp", func(t *testing.T) {
		i := mustIntrospector(t, jwtauth.IntrospectionConfig{URL: base.URL, Issuer: base.Issuer, Audiences: base.Audiences,
			ClientID: base.ClientID, ClientSecret: base.ClientSecret, Now: c.Now, CacheTTL: time.Minute})
		before := s.hits.Load()
		for range 3 {
			if _, err := i.Verify(context.Background(), "soon"); err != nil {
				t.Fatal(reasonOf(err))
			}
		}
		if got := s.hits.Load() - before; got != 1 {
			t.Errorf("endpoint asked %d times for 3 verifications within the TTL, want 1", got)
		}
		c.Advance(11 * time.Second) // past exp, within the TTL
		_, err := i.Verify(context.Background(), "soon")
		if kindOf(err) != auth.KindInvalidToken || !strings.Contains(reasonOf(err), "expired") {
			t.Fatalf("after exp: %v (%s), want refused as expired", kindOf(err), reasonOf(err))
		}
		if got := s.hits.Load() - before; got != 2 {
			t.Errorf("endpoint asked %d times, want 2 (the cache must not outlive exp)", got)
		}
		if d := jwtauth.Description(err); d != "the access token has expired" {
			t.Errorf("description = %q", d)
		}
	})
	t.Run("CacheTTL", func(t *testing.T) {
		i := mustIntrospector(t, jwtauth.IntrospectionConfig{URL: base.URL, Issuer: base.Issuer, Audiences: base.Audiences,
			ClientID: base.ClientID, ClientSecret: base.ClientSecret, Now: c.Now, CacheTTL: 2 * time.Second})
		before := s.hits.Load()
		_, _ = i.Verify(context.Background(), "good-opaque-token")
		_, _ = i.Verify(context.Background(), "good-opaque-token")
		c.Advance(3 * time.Second)
		if _, err := i.Verify(context.Background(), "good-opaque-token"); err != nil {
			t.Fatal(reasonOf(err))
		}
		if got := s.hits.Load() - before; got != 2 {
			t.Errorf("endpoint asked %d times, want 2 (once, then again after the 2s TTL)", got)
		}
	})
	t.Run("ClientSecretPost", func(t *testing.T) {
		cfg := base
		cfg.ClientAuth = jwtauth.ClientSecretPost
		if _, err := mustIntrospector(t, cfg).Verify(context.Background(), "good-opaque-token"); err != nil || s.gotAuth != "post" {
			t.Fatalf("err %v, auth %q", reasonOf(err), s.gotAuth)
		}
	})
	t.Run("PrivateKeyJWT", func(t *testing.T) {
		k := jwttest.NewRSAKey(t, "client-key-1")
		s.pub = &k.Signer.(*rsa.PrivateKey).PublicKey
		cfg := base
		cfg.ClientAuth, cfg.ClientSecret, cfg.PrivateKey, cfg.KeyID = jwtauth.PrivateKeyJWT, "", k.Signer, k.KID
		if _, err := mustIntrospector(t, cfg).Verify(context.Background(), "good-opaque-token"); err != nil || s.gotAuth != "private_key_jwt" {
			t.Fatalf("err %v, auth %q", reasonOf(err), s.gotAuth)
		}
		// Another key's assertion is refused by the endpoint: our problem, not the client's.
		cfg.PrivateKey = jwttest.NewRSAKey(t, "other").Signer
		_, err := mustIntrospector(t, cfg).Verify(context.Background(), "good-opaque-token")
		if kindOf(err) != auth.KindUnavailable {
			t.Fatalf("wrong client key: %v, want unavailable", kindOf(err))
		}
	})
	t.Run("WrongClientSecretIsUnavailable", func(t *testing.T) {
		cfg := base
		cfg.ClientSecret = "wrong"
		_, err := mustIntrospector(t, cfg).Verify(context.Background(), "good-opaque-token")
		if kindOf(err) != auth.KindUnavailable || !strings.Contains(reasonOf(err), "HTTP 401") {
			t.Fatalf("%v %s, want unavailable (HTTP 401)", kindOf(err), reasonOf(err))
		}
	})
	t.Run("EndpointDown", func(t *testing.T) {
		i := mustIntrospector(t, base)
		s.setDown(true)
		defer s.setDown(false)
		_, err := i.Verify(context.Background(), "fresh-token-while-down")
		if kindOf(err) != auth.KindUnavailable {
			t.Fatalf("down: %v, want unavailable", kindOf(err))
		}
		if i.Ready() {
			t.Error("Ready() = true while the endpoint is down")
		}
		s.setDown(false)
		if _, err := i.Verify(context.Background(), "good-opaque-token"); err != nil || !i.Ready() {
			t.Fatalf("after recovery: %v, ready %v", reasonOf(err), i.Ready())
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		cfg := base
		cfg.URL = dead.URL + "/introspect"
		_, err := mustIntrospector(t, cfg).Verify(context.Background(), "secret-token-value")
		if kindOf(err) != auth.KindUnavailable {
			t.Fatalf("unreachable: %v", kindOf(err))
		}
		if strings.Contains(reasonOf(err), "secret-token-value") {
			t.Errorf("reason leaks the token: %s", reasonOf(err))
		}
	})
	for _, tok := range []string{"good-opaque-token", "secret-token-value", "unknown-token"} {
		if strings.Contains(logs.String(), tok) {
			t.Errorf("log contains token %q:\n%s", tok, logs.String())
		}
	}
}

func TestIntrospector_Google(t *testing.T) {
	c := newClock()
	s := newStandIn(t, "google", c)
	now := c.Now()
	// As tokeninfo answers: numbers as strings, aud/azp the OAuth client.
	s.set("ya29.good", map[string]any{
		"azp": "123-agent.apps.googleusercontent.com", "aud": "123-agent.apps.googleusercontent.com",
		"sub": "110169484474386276334", "scope": "openid https://www.googleapis.com/auth/userinfo.email",
		"exp": fmt.Sprint(now.Add(time.Hour).Unix()), "expires_in": "3599", "email": "alice@example.com",
		"email_verified": "true", "access_type": "online",
	})
	s.set("ya29.otherclient", map[string]any{"aud": "999-other.apps.googleusercontent.com", "sub": "1", "exp": fmt.Sprint(now.Add(time.Hour).Unix())})
	i := mustIntrospector(t, jwtauth.IntrospectionConfig{Kind: jwtauth.IntrospectGoogle, URL: s.srv.URL + "/tokeninfo",
		Issuer: "https://accounts.google.com", Audiences: []string{"123-agent.apps.googleusercontent.com"}, Now: c.Now,
		Claims: jwtauth.ClaimMapping{ScopePrefix: "https://www.googleapis.com/auth/"}})
	p, err := i.Verify(context.Background(), "ya29.good")
	if err != nil {
		t.Fatal(reasonOf(err))
	}
	if p.Subject != "110169484474386276334" || p.ClientID != "123-agent.apps.googleusercontent.com" || !slices.Equal(p.Scopes, []string{"openid", "userinfo.email"}) {
		t.Errorf("principal = %+v", p)
	}
	for tok, want := range map[string]string{"ya29.revoked": "HTTP 400", "ya29.otherclient": "invalid audience"} {
		if _, err := i.Verify(context.Background(), tok); kindOf(err) != auth.KindInvalidToken || !strings.Contains(reasonOf(err), want) {
			t.Errorf("%s: %v %s, want invalid_token %q", tok, kindOf(err), reasonOf(err), want)
		}
	}
}

func TestIntrospector_GitHub(t *testing.T) {
	c := newClock()
	s := newStandIn(t, "github", c)
	// As "Check a token" answers (docs.github.com/rest/apps/oauth-applications#check-a-token).
	s.set("gho_good", map[string]any{
		"id": 1, "url": "https://api.github.com/authorizations/1", "scopes": []any{"repo", "user"},
		"token": "gho_good", "token_last_eight": "gho_good", "hashed_token": "x",
		"app":  map[string]any{"url": "https://example.com", "name": "idmcp", "client_id": introspectionClient},
		"user": map[string]any{"login": "octocat", "id": 1}, "expires_at": c.Now().Add(8 * time.Hour).UTC().Format(time.RFC3339),
	})
	i := mustIntrospector(t, jwtauth.IntrospectionConfig{Kind: jwtauth.IntrospectGitHub, URL: s.srv.URL,
		Issuer: "https://github.com", ClientID: introspectionClient, ClientSecret: introspectionSecret, Now: c.Now})
	p, err := i.Verify(context.Background(), "gho_good")
	if err != nil {
		t.Fatal(reasonOf(err))
	}
	if p.Subject != "octocat" || p.ClientID != introspectionClient || !slices.Equal(p.Scopes, []string{"repo", "user"}) {
		t.Errorf("principal = %+v", p)
	}
	if _, err := i.Verify(context.Background(), "gho_revoked"); kindOf(err) != auth.KindInvalidToken || !strings.Contains(reasonOf(err), "HTTP 404") {
		t.Errorf("revoked: %v %s", kindOf(err), reasonOf(err))
	}
	bad := mustIntrospector(t, jwtauth.IntrospectionConfig{Kind: jwtauth.IntrospectGitHub, URL: s.srv.URL,
		Issuer: "https://github.com", ClientID: introspectionClient, ClientSecret: "wrong", Now: c.Now})
	if _, err := bad.Verify(context.Background(), "gho_good"); kindOf(err) != auth.KindUnavailable {
		t.Errorf("wrong app secret: %v, want unavailable", kindOf(err))
	}
}

func TestIntrospectionConfig_Validate(t *testing.T) {
	for name, cfg := range map[string]jwtauth.IntrospectionConfig{
		"NoURL":       {Issuer: opaqueIssuer, Audiences: []string{aud}},
		"PlainHTTP":   {URL: "http://as.example.com/introspect", Issuer: opaqueIssuer, Audiences: []string{aud}},
		"NoAudience":  {URL: "https://as.example.com/introspect", Issuer: opaqueIssuer},
		"BadAuth":     {URL: "https://as.example.com/introspect", Issuer: opaqueIssuer, Audiences: []string{aud}, ClientAuth: "tls_client_auth"},
		"KeyJWTNoKey": {URL: "https://as.example.com/introspect", Issuer: opaqueIssuer, Audiences: []string{aud}, ClientAuth: jwtauth.PrivateKeyJWT, ClientID: "x"},
		"TTLTooLong":  {URL: "https://as.example.com/introspect", Issuer: opaqueIssuer, Audiences: []string{aud}, CacheTTL: time.Hour},
		"GitHubNoApp": {Kind: jwtauth.IntrospectGitHub, Issuer: "https://github.com"},
		"UnknownKind": {Kind: "saml", URL: "https://as.example.com/introspect", Issuer: opaqueIssuer, Audiences: []string{aud}},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzIntrospectionAnswer feeds arbitrary answer bodies, as a hostile or
// broken introspection endpoint could send them, to each kind of
// Introspector: it must never panic, must answer with a principal or a typed
// refusal, and must accept only answers that name an accepted audience (or,
// for GitHub, the app's own token) and a subject.
func FuzzIntrospectionAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"active":true,"sub":"a","aud":"` + aud + `","exp":99999999999}`,
		`{"active":true,"sub":"a","aud":["` + aud + `"],"exp":"99999999999","scope":["x",1,null]}`,
		`{"active":"true"}`, `{"active":false}`, `[]`, `null`, `{"aud":{"x":1}}`,
		`{"sub":"1","aud":"` + aud + `","exp":"1e400","expires_in":"-5"}`,
		`{"user":{"login":["x"]},"app":{"client_id":7},"scopes":"repo","expires_at":"yesterday"}`,
		`{"active":true,"sub":"a","aud":"` + aud + `","act":{"act":{"act":1}}}`,
	} {
		f.Add(seed)
	}
	var body atomic.Value
	body.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body.Load().(string)))
	}))
	f.Cleanup(srv.Close)
	var ins []*jwtauth.Introspector
	for _, cfg := range []jwtauth.IntrospectionConfig{
		{Kind: jwtauth.IntrospectRFC7662, URL: srv.URL + "/introspect", Issuer: opaqueIssuer, Audiences: []string{aud}, CacheSize: -1},
		{Kind: jwtauth.IntrospectGoogle, URL: srv.URL + "/tokeninfo", Issuer: "https://accounts.google.com", Audiences: []string{aud}, CacheSize: -1},
		{Kind: jwtauth.IntrospectGitHub, URL: srv.URL, Issuer: "https://github.com", ClientID: "c", ClientSecret: "s", CacheSize: -1},
	} {
		i, err := jwtauth.NewIntrospector(cfg)
		if err != nil {
			f.Fatal(err)
		}
		ins = append(ins, i)
	}
	n := 0
	f.Fuzz(func(t *testing.T, answer string) {
		body.Store(answer)
		for _, i := range ins {
			n++
			// A fresh token each time: the negative cache must not answer.
			p, err := i.Verify(context.Background(), fmt.Sprintf("tok-%d", n))
			if err != nil {
				if p != nil || kindOf(err) == 0 {
					t.Fatalf("bad refusal %v / %+v", err, p)
				}
				continue
			}
			if p == nil || p.Subject == "" {
				t.Fatalf("accepted without a subject: %+v", p)
			}
		}
	})
}

// BenchmarkIntrospector measures one verification of an opaque token: a
// cache hit (the common case), and a miss that asks a loopback RFC 7662
// endpoint (the real HTTP round trip, JSON decoding and claim mapping).
func BenchmarkIntrospector(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"active":true,"sub":"alice","client_id":"agent","aud":%q,"scope":"todo:read todo:write","exp":%d}`, aud, time.Now().Add(time.Hour).Unix())
	}))
	b.Cleanup(srv.Close)
	for _, c := range []struct {
		name string
		size int
	}{{"CacheHit", 0}, {"Miss", -1}} {
		b.Run(c.name, func(b *testing.B) {
			i, err := jwtauth.NewIntrospector(jwtauth.IntrospectionConfig{URL: srv.URL, Issuer: opaqueIssuer, Audiences: []string{aud}, CacheSize: c.size})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for b.Loop() {
				if _, err := i.Verify(ctx, "opaque-token"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
