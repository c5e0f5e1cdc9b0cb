package jwt_test

//go:generate go test -run TestVerifier_Corpus -update .

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/idmcp/idmcp/auth"
	jwtauth "github.com/idmcp/idmcp/auth/jwt"
	"github.com/idmcp/idmcp/auth/jwt/jwttest"
)

var update = flag.Bool("update", false, "regenerate testdata/corpus and testdata/valid (and any missing key in testdata/keys)")

// corpusNow is the clock the corpus was minted for.
var corpusNow = jwttest.CorpusNow()

const (
	corpusIssuer   = jwttest.CorpusIssuer
	corpusAudience = jwttest.CorpusAudience
)

// fixture holds the committed test keys.
type fixture struct {
	published map[string]jwttest.Key // served in the JWKS
	foreign   jwttest.Key            // never published; signs under others' kids
	attacker  jwttest.Key            // never published; an attacker's own key
}

func loadFixture(tb testing.TB, create bool) fixture {
	tb.Helper()
	k := jwttest.LoadCorpusKeys(tb, filepath.Join("testdata", "keys"), create)
	return fixture{published: k.Published, foreign: k.Foreign, attacker: k.Attacker}
}

func (f fixture) keys() []jwttest.Key {
	return jwttest.CorpusKeys{Published: f.published}.Keys()
}

// goodClaims are valid claims at corpusNow.
func goodClaims() map[string]any {
	return map[string]any{
		"iss": corpusIssuer, "aud": corpusAudience, "sub": "alice", "client_id": "agent-1",
		"iat": corpusNow.Add(-time.Minute).Unix(), "exp": corpusNow.Add(time.Hour).Unix(),
		"scope": "todo:read", "jti": "corpus",
	}
}

// signAs signs with method m but writes alg into the header verbatim.
func signAs(tb testing.TB, alg string, m gojwt.SigningMethod, kid string, claims map[string]any, key any) string {
	tb.Helper()
	tok := jwttest.Sign(tb, map[string]any{"alg": m.Alg(), "kid": kid, "typ": "at+jwt"}, claims, key)
	parts := strings.Split(tok, ".")
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","kid":"` + kid + `","typ":"at+jwt"}`))
	sig, err := m.Sign(h+"."+parts[1], key)
	if err != nil {
		tb.Fatal(err)
	}
	return h + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// negativeCorpus returns every token that must be refused, by name.
func negativeCorpus(tb testing.TB, f fixture) map[string]string {
	tb.Helper()
	g := goodClaims()
	rsa1 := f.published["rsa-1"]
	sign := func(k jwttest.Key, c map[string]any, hdr ...any) string {
		extra := map[string]any{}
		for i := 0; i+1 < len(hdr); i += 2 {
			extra[hdr[i].(string)] = hdr[i+1]
		}
		if len(hdr) == 0 {
			extra = nil
		}
		return jwttest.SignWith(tb, k, c, extra)
	}
	good := sign(rsa1, g)
	gp := strings.Split(good, ".")
	other := strings.Split(sign(rsa1, jwttest.Edit(g, "sub", "mallory")), ".")
	// The same claims with more scopes, under the original signature.
	elevated := strings.Split(sign(rsa1, jwttest.Edit(g, "scope", "todo:read todo:write admin")), ".")[1]
	deep := map[string]any{"sub": "a9"}
	for i := 8; i >= 1; i-- {
		deep = map[string]any{"sub": "a" + string(rune('0'+i)), "act": deep}
	}
	pad := strings.Repeat("x", jwtauth.MaxTokenBytes)
	attackerJWK := f.attacker.JWK()
	return map[string]string{
		"alg-none":                 jwttest.Sign(tb, map[string]any{"alg": "none", "kid": "rsa-1", "typ": "at+jwt"}, g, nil),
		"alg-none-capitalised":     jwttest.Sign(tb, map[string]any{"alg": "None", "kid": "rsa-1", "typ": "at+jwt"}, g, nil),
		"alg-none-no-kid":          jwttest.Sign(tb, map[string]any{"alg": "none", "typ": "JWT"}, g, nil),
		"alg-lowercase-rs256":      signAs(tb, "rs256", gojwt.SigningMethodRS256, "rsa-1", g, rsa1.Signer),
		"hs256-rsa-public-key":     jwttest.Sign(tb, map[string]any{"alg": "HS256", "kid": "rsa-1", "typ": "at+jwt"}, g, rsa1.PublicPEM(tb)),
		"hs256-published-oct-key":  sign(f.published["oct-1"], g),
		"hs256-oct-key-no-kid":     sign(f.published["oct-1"], g, "kid", nil),
		"ps384-not-allowed":        sign(jwttest.Key{KID: "rsa-nouse", Alg: "PS384", Signer: f.published["rsa-nouse"].Signer}, g),
		"rs512-not-allowed":        sign(jwttest.Key{KID: "rsa-nouse", Alg: "RS512", Signer: f.published["rsa-nouse"].Signer}, g),
		"rs256-under-ec-kid":       sign(jwttest.Key{KID: "ec-1", Alg: "RS256", Signer: rsa1.Signer}, g),
		"ps256-under-rs256-key":    sign(jwttest.Key{KID: "rsa-1", Alg: "PS256", Signer: rsa1.Signer}, g),
		"wrong-aud":                sign(rsa1, jwttest.Edit(g, "aud", "https://other.test/mcp")),
		"aud-prefix-only":          sign(rsa1, jwttest.Edit(g, "aud", "https://mcp.test/")),
		"no-aud":                   sign(rsa1, jwttest.Edit(g, "aud", nil)),
		"aud-empty-array":          sign(rsa1, jwttest.Edit(g, "aud", []string{})),
		"expired":                  sign(rsa1, jwttest.Edit(g, "exp", corpusNow.Add(-2*time.Minute).Unix(), "iat", corpusNow.Add(-time.Hour).Unix())),
		"no-exp":                   sign(rsa1, jwttest.Edit(g, "exp", nil)),
		"exp-string":               sign(rsa1, jwttest.Edit(g, "exp", "2099-01-01T00:00:00Z")),
		"not-yet-valid":            sign(rsa1, jwttest.Edit(g, "nbf", corpusNow.Add(2*time.Minute).Unix())),
		"iat-in-future":            sign(rsa1, jwttest.Edit(g, "iat", corpusNow.Add(2*time.Minute).Unix())),
		"wrong-issuer":             sign(rsa1, jwttest.Edit(g, "iss", "https://evil.test")),
		"issuer-trailing-slash":    sign(rsa1, jwttest.Edit(g, "iss", corpusIssuer+"/")),
		"no-issuer":                sign(rsa1, jwttest.Edit(g, "iss", nil)),
		"unknown-kid":              sign(jwttest.Key{KID: "rsa-9", Alg: "RS256", Signer: rsa1.Signer}, g),
		"no-kid":                   sign(rsa1, g, "kid", nil),
		"empty-kid":                sign(rsa1, g, "kid", ""),
		"kid-not-string":           sign(rsa1, g, "kid", 1),
		"foreign-key-right-kid":    sign(f.foreign, g),
		"embedded-jwk":             sign(f.attacker, g, "jwk", attackerJWK),
		"embedded-jwk-right-kid":   sign(jwttest.Key{KID: "rsa-1", Alg: "RS256", Signer: f.attacker.Signer}, g, "jwk", attackerJWK),
		"jku-header":               sign(f.attacker, g, "jku", "https://attacker.test/jwks"),
		"jku-header-right-kid":     sign(jwttest.Key{KID: "rsa-1", Alg: "RS256", Signer: f.attacker.Signer}, g, "jku", "https://attacker.test/jwks"),
		"x5u-header":               sign(f.attacker, g, "x5u", "https://attacker.test/cert.pem"),
		"x5c-header":               sign(jwttest.Key{KID: "rsa-1", Alg: "RS256", Signer: f.attacker.Signer}, g, "x5c", []string{"MIIBszCCAVmgAwIBAgIUAttacker"}),
		"edited-payload":           gp[0] + "." + elevated + "." + gp[2],
		"signature-of-other-token": gp[0] + "." + gp[1] + "." + other[2],
		"empty-signature":          gp[0] + "." + gp[1] + ".",
		"truncated-signature":      gp[0] + "." + gp[1] + "." + gp[2][:len(gp[2])-8],
		"base64-padding":           gp[0] + "=." + gp[1] + "." + gp[2],
		"oversized":                sign(rsa1, jwttest.Edit(g, "pad", pad)),
		"garbage":                  "this is not a token",
		"two-segments":             gp[0] + "." + gp[1],
		"jwe-five-segments":        gp[0] + "." + gp[1] + "." + gp[2] + ".AAAA.BBBB",
		"leading-space":            " " + good,
		"empty":                    "",
		"typ-wrong":                sign(rsa1, g, "typ", "dpop+jwt"),
		"typ-id-token":             sign(rsa1, g, "typ", "id_token+jwt"),
		"typ-missing":              sign(rsa1, g, "typ", nil),
		"typ-not-string":           sign(rsa1, g, "typ", 9),
		"crit-header":              sign(rsa1, g, "crit", []string{"b64"}, "b64", false),
		"use-enc-key":              sign(f.published["rsa-enc"], g),
		"weak-rsa-key":             sign(f.published["rsa-weak"], g),
		"no-sub":                   sign(rsa1, jwttest.Edit(g, "sub", nil)),
		"sub-not-string":           sign(rsa1, jwttest.Edit(g, "sub", 42)),
		"act-not-object":           sign(rsa1, jwttest.Edit(g, "act", "agent-b")),
		"act-without-sub":          sign(rsa1, jwttest.Edit(g, "act", map[string]any{"iss": "x"})),
		"act-too-deep":             sign(rsa1, jwttest.Edit(g, "act", deep)),
	}
}

// positiveControls are tokens that must pass, by name.
func positiveControls(tb testing.TB, f fixture) map[string]string {
	tb.Helper()
	g := goodClaims()
	p := f.published
	return map[string]string{
		"rs256":                 jwttest.SignWith(tb, p["rsa-1"], g, nil),
		"ps256":                 jwttest.SignWith(tb, p["rsa-ps"], g, nil),
		"es256":                 jwttest.SignWith(tb, p["ec-1"], g, nil),
		"eddsa":                 jwttest.SignWith(tb, p["ed-1"], g, nil),
		"key-without-use":       jwttest.SignWith(tb, p["rsa-nouse"], g, nil),
		"typ-jwt":               jwttest.SignWith(tb, p["rsa-1"], g, map[string]any{"typ": "JWT"}),
		"typ-application":       jwttest.SignWith(tb, p["rsa-1"], g, map[string]any{"typ": "application/AT+JWT"}),
		"aud-array":             jwttest.SignWith(tb, p["rsa-1"], jwttest.Edit(g, "aud", []string{"https://other.test", corpusAudience}), nil),
		"expired-within-leeway": jwttest.SignWith(tb, p["rsa-1"], jwttest.Edit(g, "exp", corpusNow.Add(-10*time.Second).Unix()), nil),
		"act-chain":             jwttest.SignWith(tb, p["rsa-1"], jwttest.Edit(g, "act", map[string]any{"sub": "agent-b", "act": map[string]any{"sub": "agent-a"}}), nil),
		"azp-no-client-id":      jwttest.SignWith(tb, p["rsa-1"], jwttest.Edit(g, "client_id", nil, "azp", "agent-azp"), nil),
		// jku is ignored, not followed: a good token that carries one passes
		// on the issuer's own key.
		"jku-ignored": jwttest.SignWith(tb, p["rsa-1"], g, map[string]any{"jku": "https://attacker.test/jwks"}),
	}
}

// writeSet replaces dir's *.jwt files with tokens.
func writeSet(tb testing.TB, dir string, tokens map[string]string) {
	tb.Helper()
	old, _ := filepath.Glob(filepath.Join(dir, "*.jwt"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for name, tok := range tokens {
		if err := os.WriteFile(filepath.Join(dir, name+".jwt"), []byte(tok), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// readSet reads dir's *.jwt files, by name.
func readSet(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.jwt"))
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".jwt")] = string(b)
	}
	return out
}

// corpusVerifier serves the fixture's JWKS on loopback and returns a
// Verifier for the corpus issuer, audience and clock.
func corpusVerifier(tb testing.TB, f fixture) *jwtauth.Verifier {
	tb.Helper()
	iss := jwttest.NewIssuer(tb, jwttest.Options{Issuer: corpusIssuer, Keys: f.keys()})
	v, err := jwtauth.New(context.Background(), jwtauth.Config{
		Issuer: corpusIssuer, Audiences: []string{corpusAudience}, JWKSURL: iss.JWKSURL(),
		Now: func() time.Time { return corpusNow }, UnknownKIDInterval: time.Hour,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return v
}

// TestVerifier_Corpus runs the committed negative corpus (each token refused
// as an invalid token, with a reason for the audit log) and, in the same
// Verifier, the positive controls (each accepted).
func TestVerifier_Corpus(t *testing.T) {
	f := loadFixture(t, *update)
	if *update {
		writeSet(t, filepath.Join("testdata", "corpus"), negativeCorpus(t, f))
		writeSet(t, filepath.Join("testdata", "valid"), positiveControls(t, f))
	}
	neg := readSet(t, filepath.Join("testdata", "corpus"))
	pos := readSet(t, filepath.Join("testdata", "valid"))
	if got, want := slices.Sorted(maps.Keys(neg)), slices.Sorted(maps.Keys(negativeCorpus(t, f))); !slices.Equal(got, want) {
		t.Fatalf("testdata/corpus is stale (run go generate ./auth/jwt):\n got %v\nwant %v", got, want)
	}
	if len(neg) < 25 {
		t.Fatalf("negative corpus has %d tokens, want at least 25", len(neg))
	}
	if len(pos) == 0 {
		t.Fatal("no positive controls in testdata/valid")
	}
	v := corpusVerifier(t, f)
	ctx := context.Background()

	for _, name := range slices.Sorted(maps.Keys(pos)) {
		t.Run("Valid/"+name, func(t *testing.T) {
			p, err := v.Verify(ctx, pos[name])
			if err != nil {
				t.Fatalf("positive control refused: %v (%v)", err, errors.Unwrap(err))
			}
			if got, want := p.Subject, "alice"; got != want {
				t.Fatalf("subject=%q, want %q", got, want)
			}
			if got, want := p.Issuer, corpusIssuer; got != want {
				t.Fatalf("issuer=%q, want %q", got, want)
			}
		})
	}
	for _, name := range slices.Sorted(maps.Keys(neg)) {
		t.Run("Refused/"+name, func(t *testing.T) {
			p, err := v.Verify(ctx, neg[name])
			if err == nil {
				t.Fatalf("accepted, principal %+v", p)
			}
			var ae *auth.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %T %v, want *auth.Error", err, err)
			}
			if got, want := ae.Kind, auth.KindInvalidToken; got != want {
				t.Fatalf("kind=%v, want %v (%v)", got, want, ae.Err)
			}
			if got, want := ae.Error(), "invalid token"; got != want {
				t.Fatalf("caller message=%q, want %q", got, want)
			}
			if ae.Err == nil || ae.Err.Error() == "" {
				t.Fatal("no precise reason for the audit log")
			}
			t.Logf("reason: %v", ae.Err)
		})
	}
}

// TestVerifier_Corpus_Principal checks the claim mapping on positive controls.
func TestVerifier_Corpus_Principal(t *testing.T) {
	f := loadFixture(t, false)
	pos := readSet(t, filepath.Join("testdata", "valid"))
	v := corpusVerifier(t, f)
	cases := []struct {
		name   string
		client string
		actors []string
	}{
		{"rs256", "agent-1", []string{}},
		{"act-chain", "agent-1", []string{"agent-b", "agent-a"}},
		{"azp-no-client-id", "agent-azp", []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), pos[tc.name])
			if err != nil {
				t.Fatal(err)
			}
			if got, want := p.ClientID, tc.client; got != want {
				t.Fatalf("client_id=%q, want %q", got, want)
			}
			if got, want := p.Actors, tc.actors; !slices.Equal(got, want) {
				t.Fatalf("actors=%q, want %q", got, want)
			}
			if got, want := p.Method, auth.MethodJWT; got != want {
				t.Fatalf("method=%q, want %q", got, want)
			}
			if got, want := p.Scopes, []string{"todo:read"}; !slices.Equal(got, want) {
				t.Fatalf("scopes=%q, want %q", got, want)
			}
		})
	}
}
