// Package devissuer is idmcp's embedded development authorization server: an
// ES256 signing key kept in the data dir, RFC 8414 metadata, a JWKS, and a
// token endpoint with client_credentials for built-in demo clients and RFC
// 8693 token exchange, so that HTTP mode and policies can be tried locally
// with no identity provider.
//
// It is for development only and says so everywhere: its metadata carries
// "idmcp_dev_issuer": true, every token it mints carries "idmcp_dev": true,
// and the server refuses to run it on anything but loopback.
package devissuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// KeyFile is the signing key's file name in the data dir.
const KeyFile = "dev-issuer-key.pem"

// MaxTTL is the longest lifetime of a minted token.
const MaxTTL = 24 * time.Hour

// DefaultTTL is the lifetime of tokens from the token endpoint.
const DefaultTTL = 15 * time.Minute

// ErrInvalid is wrapped by errors about bad requests or configuration.
var ErrInvalid = errors.New("invalid")

// Key is the issuer's signing key with its key id.
type Key struct {
	Private *ecdsa.PrivateKey
	// KID is the RFC 7638 thumbprint of the public key.
	KID string
}

// LoadOrCreateKey reads the ES256 key at path, creating it (mode 0600) on
// first use.
func LoadOrCreateKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("dev issuer key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateKey(path) // another process won the race
		}
		if err != nil {
			return nil, fmt.Errorf("dev issuer key: %w", err)
		}
		if err := pem.Encode(f, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("dev issuer key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("dev issuer key: %w", err)
		}
		return newKey(priv), nil
	}
	if err != nil {
		return nil, fmt.Errorf("dev issuer key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("dev issuer key %s has mode %04o; it must be 0600 (anyone who reads it can mint tokens): %w", path, fi.Mode().Perm(), ErrInvalid)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "EC PRIVATE KEY" {
		return nil, fmt.Errorf("dev issuer key %s: not an EC PRIVATE KEY PEM: %w", path, ErrInvalid)
	}
	priv, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("dev issuer key %s: want a P-256 key: %w", path, ErrInvalid)
	}
	return newKey(priv), nil
}

func newKey(priv *ecdsa.PrivateKey) *Key {
	x, y := coord(priv), coordY(priv)
	// RFC 7638: members in lexicographic order, no white space.
	thumb := fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, x, y)
	sum := sha256.Sum256([]byte(thumb))
	return &Key{Private: priv, KID: base64.RawURLEncoding.EncodeToString(sum[:])}
}

func pubBytes(priv *ecdsa.PrivateKey) []byte {
	b, _ := priv.PublicKey.Bytes() // uncompressed: 0x04 || X || Y
	return b
}

func coord(priv *ecdsa.PrivateKey) string {
	return base64.RawURLEncoding.EncodeToString(pubBytes(priv)[1:33])
}

func coordY(priv *ecdsa.PrivateKey) string {
	return base64.RawURLEncoding.EncodeToString(pubBytes(priv)[33:65])
}

// JWK returns the public key as a JWK (use sig, alg ES256).
func (k *Key) JWK() map[string]string {
	return map[string]string{"kty": "EC", "crv": "P-256", "x": coord(k.Private), "y": coordY(k.Private), "kid": k.KID, "use": "sig", "alg": "ES256"}
}

// Claims are the claims of a dev token (RFC 9068 access token profile).
type Claims struct {
	jwt.RegisteredClaims
	ClientID string   `json:"client_id,omitempty"`
	Scope    string   `json:"scope,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Act      *Actor   `json:"act,omitempty"`
	Dev      bool     `json:"idmcp_dev"`
}

// Actor is an RFC 8693 act claim: the current actor, and the one before.
type Actor struct {
	Sub string `json:"sub"`
	Act *Actor `json:"act,omitempty"`
}

// NewActor builds a nested act claim from a chain, current actor first.
func NewActor(chain []string) *Actor {
	var a *Actor
	for i := len(chain) - 1; i >= 0; i-- {
		a = &Actor{Sub: chain[i], Act: a}
	}
	return a
}

// Chain flattens an act claim, current actor first.
func (a *Actor) Chain() []string {
	var out []string
	for n := 0; a != nil && n < 16; n++ {
		out = append(out, a.Sub)
		a = a.Act
	}
	return out
}

// MintRequest describes a token to sign.
type MintRequest struct {
	Issuer   string
	Subject  string
	Audience []string
	ClientID string
	Scopes   []string
	Roles    []string
	// Actors is the delegation chain, current actor first.
	Actors []string
	TTL    time.Duration
	Now    time.Time
}

// Validate checks the request.
func (r MintRequest) Validate() error {
	switch {
	case r.Issuer == "":
		return fmt.Errorf("issuer is empty: %w", ErrInvalid)
	case r.Subject == "":
		return fmt.Errorf("subject is empty: %w", ErrInvalid)
	case len(r.Audience) == 0:
		return fmt.Errorf("audience is empty: %w", ErrInvalid)
	case r.TTL <= 0:
		return fmt.Errorf("ttl must be positive: %w", ErrInvalid)
	case r.TTL > MaxTTL:
		return fmt.Errorf("ttl %s is over the %s limit: %w", r.TTL, MaxTTL, ErrInvalid)
	}
	for _, s := range r.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\n\"\\") {
			return fmt.Errorf("scope %q: %w", s, ErrInvalid)
		}
	}
	return nil
}

// Mint signs an access token (typ at+jwt, ES256, kid).
func (k *Key) Mint(r MintRequest) (string, error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: r.Issuer, Subject: r.Subject, Audience: jwt.ClaimStrings(r.Audience),
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(r.TTL)), ID: base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		ClientID: r.ClientID, Scope: strings.Join(r.Scopes, " "), Roles: slices.Clone(r.Roles), Act: NewActor(r.Actors), Dev: true,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["kid"] = k.KID
	t.Header["typ"] = "at+jwt"
	return t.SignedString(k.Private)
}

// Parse verifies a token this key signed for issuer and returns its claims.
// It is used by token exchange to accept only its own subject tokens.
func (k *Key) Parse(raw, issuer string, now time.Time) (*Claims, error) {
	var c Claims
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(issuer), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	).ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != k.KID {
			return nil, errors.New("unknown kid")
		}
		return &k.Private.PublicKey, nil
	})
	if err != nil {
		return nil, fmt.Errorf("subject token: %v: %w", err, ErrInvalid)
	}
	return &c, nil
}
