// Package jwttest is a test identity provider: an httptest server on loopback
// that serves RFC 8414 authorization server metadata and a JWKS of real RSA,
// ECDSA and Ed25519 keys, and mints tokens, well-formed or deliberately not.
// It is for tests only.
package jwttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
)

// Key is a signing key: a private key (or an HMAC secret) and the JWK
// parameters it is published with.
type Key struct {
	KID string
	// Alg is the JWS algorithm tokens signed with it use, also published as
	// the JWK's alg unless NoAlg.
	Alg string
	// Use is the JWK's use; empty leaves it out.
	Use string
	// NoAlg leaves alg out of the JWK.
	NoAlg bool
	// Signer is an *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey;
	// nil for HMAC keys.
	Signer crypto.Signer
	// Secret is an HMAC key (published as kty oct).
	Secret []byte
}

// NewRSAKey returns a fresh 2048-bit RS256 key.
func NewRSAKey(tb testing.TB, kid string) Key {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return Key{KID: kid, Alg: "RS256", Use: "sig", Signer: k}
}

// NewECKey returns a fresh P-256 ES256 key.
func NewECKey(tb testing.TB, kid string) Key {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return Key{KID: kid, Alg: "ES256", Use: "sig", Signer: k}
}

// NewEdKey returns a fresh Ed25519 EdDSA key.
func NewEdKey(tb testing.TB, kid string) Key {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return Key{KID: kid, Alg: "EdDSA", Use: "sig", Signer: k}
}

// LoadOrCreateKey reads the PKCS#8 PEM key at path, or, when it does not
// exist and create is true, generates one of kind "rsa", "ec" or "ed" and
// writes it there (for committed test fixtures); "rsa1024" makes a key too
// weak to be accepted.
func LoadOrCreateKey(tb testing.TB, path, kind string, create bool) crypto.Signer {
	tb.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		var k Key
		switch kind {
		case "rsa":
			k = NewRSAKey(tb, "")
		case "rsa1024":
			rk, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				tb.Fatal(err)
			}
			k = Key{Signer: rk}
		case "ec":
			k = NewECKey(tb, "")
		case "ed":
			k = NewEdKey(tb, "")
		default:
			tb.Fatalf("unknown key kind %q", kind)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k.Signer)
		if err != nil {
			tb.Fatal(err)
		}
		b = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	} else if err != nil {
		tb.Fatalf("read test key: %v (regenerate with go generate ./auth/jwt)", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		tb.Fatalf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return k.(crypto.Signer)
}

// PublicPEM returns the PEM of k's public key (what an attacker signs HS256
// tokens with in an algorithm-confusion attack).
func (k Key) PublicPEM(tb testing.TB) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.Signer.Public())
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// JWK returns k's public JWK.
func (k Key) JWK() map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	m := map[string]any{"kid": k.KID}
	if !k.NoAlg && k.Alg != "" {
		m["alg"] = k.Alg
	}
	if k.Use != "" {
		m["use"] = k.Use
	}
	switch s := k.Signer.(type) {
	case *rsa.PrivateKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(s.N.Bytes()), b64(big.NewInt(int64(s.E)).Bytes())
	case *ecdsa.PrivateKey:
		pub, err := s.PublicKey.ECDH()
		if err != nil {
			panic(err)
		}
		pt := pub.Bytes() // 0x04 || X || Y
		n := (len(pt) - 1) / 2
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", b64(pt[1:1+n]), b64(pt[1+n:])
	case ed25519.PrivateKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(s.Public().(ed25519.PublicKey))
	case nil:
		m["kty"], m["k"] = "oct", b64(k.Secret)
	}
	return m
}

// Sign builds a compact JWS from header and claims, signed with key under
// header["alg"] ("none" gives an empty signature). key is a private key, an
// HMAC secret ([]byte) or nil for none. Nothing is checked: this is how the
// negative corpus is made.
func Sign(tb testing.TB, header, claims map[string]any, key any) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc(h) + "." + enc(c)
	alg, _ := header["alg"].(string)
	if strings.EqualFold(alg, "none") {
		return signing + "."
	}
	m := gojwt.GetSigningMethod(alg)
	if m == nil {
		tb.Fatalf("unknown alg %q", alg)
	}
	sig, err := m.Sign(signing, key)
	if err != nil {
		tb.Fatalf("sign %s: %v", alg, err)
	}
	return signing + "." + enc(sig)
}

// SignWith signs claims with k under a header of alg, kid and typ "at+jwt",
// with extra merged over it (a nil value removes a field).
func SignWith(tb testing.TB, k Key, claims map[string]any, extra map[string]any) string {
	tb.Helper()
	h := map[string]any{"alg": k.Alg, "kid": k.KID, "typ": "at+jwt"}
	for name, v := range extra {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	var key any = k.Signer
	if k.Signer == nil {
		key = k.Secret
	}
	return Sign(tb, h, claims, key)
}

// Options configures an Issuer.
type Options struct {
	// Issuer is the issuer identifier in metadata and minted tokens; the
	// server's own URL when empty.
	Issuer string
	// MetadataIssuer, when set, is the issuer the metadata claims instead
	// (to test the exact-match rule).
	MetadataIssuer string
	// OIDCOnly serves only /.well-known/openid-configuration.
	OIDCOnly bool
	// Keys are published in the JWKS; one fresh RSA key "rsa-1" when empty.
	Keys []Key
}

// Issuer is a test authorization server on loopback.
type Issuer struct {
	// URL is the issuer identifier.
	URL string
	// ServerURL is the base URL of the httptest server.
	ServerURL string

	opts    Options
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []Key
	down    bool
	fetches atomic.Int64
	mdHits  atomic.Int64
}

// NewIssuer starts an Issuer; it stops when the test ends.
func NewIssuer(tb testing.TB, opts Options) *Issuer {
	tb.Helper()
	i := &Issuer{opts: opts, keys: opts.Keys}
	if len(i.keys) == 0 {
		i.keys = []Key{NewRSAKey(tb, "rsa-1")}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks", i.serveJWKS)
	mux.HandleFunc("GET /.well-known/openid-configuration", i.serveMetadata)
	if !opts.OIDCOnly {
		mux.HandleFunc("GET /.well-known/oauth-authorization-server", i.serveMetadata)
	}
	i.srv = httptest.NewUnstartedServer(mux) // binds 127.0.0.1
	i.ServerURL = "http://" + i.srv.Listener.Addr().String()
	i.URL = opts.Issuer
	if i.URL == "" {
		i.URL = i.ServerURL
	}
	i.srv.Start()
	tb.Cleanup(i.srv.Close)
	return i
}

func (i *Issuer) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	i.mdHits.Add(1)
	iss := i.URL
	if i.opts.MetadataIssuer != "" {
		iss = i.opts.MetadataIssuer
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                iss,
		"jwks_uri":                              i.JWKSURL(),
		"token_endpoint":                        i.ServerURL + "/token",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.fetches.Add(1)
	i.mu.Lock()
	down, keys := i.down, append([]Key(nil), i.keys...)
	i.mu.Unlock()
	if down {
		http.Error(w, "identity provider down", http.StatusServiceUnavailable)
		return
	}
	set := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		set = append(set, k.JWK())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
}

// JWKSURL is where the keys are served.
func (i *Issuer) JWKSURL() string { return i.ServerURL + "/jwks" }

// JWKSFetches counts JWKS requests served so far (including failed ones).
func (i *Issuer) JWKSFetches() int { return int(i.fetches.Load()) }

// MetadataFetches counts metadata requests served so far.
func (i *Issuer) MetadataFetches() int { return int(i.mdHits.Load()) }

// SetKeys replaces the published keys (rotation).
func (i *Issuer) SetKeys(keys ...Key) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = keys
}

// SetDown makes the JWKS endpoint answer 503 (down) or serve keys again.
func (i *Issuer) SetDown(down bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.down = down
}

// Key returns the published key with kid.
func (i *Issuer) Key(tb testing.TB, kid string) Key {
	tb.Helper()
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, k := range i.keys {
		if k.KID == kid {
			return k
		}
	}
	tb.Fatalf("no key %q", kid)
	return Key{}
}

// Claims returns a good set of access-token claims for sub and aud, issued
// now and valid for an hour, with scope (space-separated) when not empty.
func (i *Issuer) Claims(sub, aud, scope string, now time.Time) map[string]any {
	c := map[string]any{
		"iss": i.URL, "sub": sub, "aud": aud, "client_id": "test-client",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": fmt.Sprintf("jti-%d", now.UnixNano()),
	}
	if scope != "" {
		c["scope"] = scope
	}
	return c
}

// Edit returns a copy of claims with name/value pairs set; a nil value
// deletes the claim.
func Edit(claims map[string]any, kv ...any) map[string]any {
	out := maps.Clone(claims)
	for i := 0; i+1 < len(kv); i += 2 {
		name := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, name)
		} else {
			out[name] = kv[i+1]
		}
	}
	return out
}

// Token signs claims with the first published key, typ at+jwt.
func (i *Issuer) Token(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	i.mu.Lock()
	k := i.keys[0]
	i.mu.Unlock()
	return SignWith(tb, k, claims, nil)
}
