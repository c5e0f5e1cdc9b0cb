package jwttest

import (
	"crypto"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The committed token corpus in auth/jwt/testdata is minted for this issuer,
// audience and clock, so time-dependent cases (expired, not yet valid) stay
// what they are whenever a test runs it.
const (
	CorpusIssuer   = "https://issuer.test"
	CorpusAudience = "https://mcp.test/mcp"
)

// CorpusNow is the clock the corpus was minted for.
func CorpusNow() time.Time { return time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) }

// CorpusKeys are the committed keys of the corpus.
type CorpusKeys struct {
	// Published are served in the JWKS, by kid.
	Published map[string]Key
	// Foreign is never published; it signs under a published kid ("rsa-1").
	Foreign Key
	// Attacker is never published; an attacker's own key ("attacker-1").
	Attacker Key
}

// LoadCorpusKeys reads the corpus keys from dir (auth/jwt/testdata/keys),
// creating missing ones when create is true.
func LoadCorpusKeys(tb testing.TB, dir string, create bool) CorpusKeys {
	tb.Helper()
	key := func(name, kind string) crypto.Signer {
		return LoadOrCreateKey(tb, filepath.Join(dir, name+".pem"), kind, create)
	}
	return CorpusKeys{
		Published: map[string]Key{
			"rsa-1":     {KID: "rsa-1", Alg: "RS256", Use: "sig", Signer: key("rsa-1", "rsa")},
			"rsa-ps":    {KID: "rsa-ps", Alg: "PS256", Use: "sig", Signer: key("rsa-ps", "rsa")},
			"rsa-nouse": {KID: "rsa-nouse", Alg: "RS256", NoAlg: true, Signer: key("rsa-nouse", "rsa")},
			"rsa-enc":   {KID: "rsa-enc", Alg: "RS256", Use: "enc", Signer: key("rsa-enc", "rsa")},
			"rsa-weak":  {KID: "rsa-weak", Alg: "RS256", Use: "sig", Signer: key("rsa-weak", "rsa1024")},
			"ec-1":      {KID: "ec-1", Alg: "ES256", Use: "sig", Signer: key("ec-1", "ec")},
			"ed-1":      {KID: "ed-1", Alg: "EdDSA", Use: "sig", Signer: key("ed-1", "ed")},
			// A symmetric key published by mistake: an HS256 token signed
			// with it must still be refused.
			"oct-1": {KID: "oct-1", Alg: "HS256", Use: "sig", Secret: []byte("published-hmac-secret-published-hmac-secret")},
		},
		Foreign:  Key{KID: "rsa-1", Alg: "RS256", Signer: key("foreign", "rsa")},
		Attacker: Key{KID: "attacker-1", Alg: "RS256", Use: "sig", Signer: key("attacker", "rsa")},
	}
}

// Keys returns the published keys, ordered by kid.
func (c CorpusKeys) Keys() []Key {
	out := make([]Key, 0, len(c.Published))
	for _, k := range c.Published {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Key) int {
		switch {
		case a.KID < b.KID:
			return -1
		case a.KID > b.KID:
			return 1
		}
		return 0
	})
	return out
}
