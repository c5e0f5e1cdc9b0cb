package jwt_test

//go:generate go test -run TestVerifier_Corpus -update .

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
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

var update = flag.Bool("update", false, "regenerate testdata/corpus (tokens and reasons.json) and testdata/valid (and any missing key in testdata/keys)")

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

// Expected refusal reasons: a substring of the audit reason (the Err of the
// *auth.Error Verify returns) that names the check a corpus entry is made to
// fail. Each is precise enough that no entry refused by another check
// matches it (TestVerifier_Corpus_WrongReasonFails).
const (
	reasonTooLarge     = "exceeds the 16384-byte limit" // before parsing
	reasonEmpty        = "empty token"
	reasonSegments     = "token contains an invalid number of segments"
	reasonHeaderBase64 = "could not base64 decode header"
	reasonAlgUnknown   = "signing method (alg) is unavailable" // not a registered alg at all
	reasonNoKID        = "token header has no kid"
	reasonNoTyp        = "token header has no typ"
	reasonTypNotString = "token header typ is not a string"
	reasonCrit         = "token header has crit"
	reasonUseEnc       = `JWK "use" parameter value "enc" is not in whitelist`
	reasonWeakRSA      = "RSA key of 1024 bits is below 2048"
	reasonSignature    = "token signature is invalid: crypto/rsa: verification error"
	reasonAudMismatch  = "token has invalid audience"
	reasonAudMissing   = "aud claim is required"
	reasonExpired      = "token is expired"
	reasonExpMissing   = "exp claim is required"
	reasonExpType      = "invalid type for claim: exp is invalid"
	reasonNotYetValid  = "token is not valid yet"
	reasonIATFuture    = "token used before issued"
	reasonIssMismatch  = "token has invalid issuer"
	reasonIssMissing   = "iss claim is required"
	reasonNoSub        = "token has no sub claim"
	reasonSubNotString = `claim "sub" is not a string`
	reasonActNotObject = "act claim is not an object"
	reasonActNoSub     = "act claim has no sub"
	reasonActTooDeep   = "act chain is deeper than 8"
)

// reasonNotAllowed is the refusal of a registered algorithm that is not on
// the allow-list (RS256, PS256, ES256, EdDSA).
func reasonNotAllowed(alg string) string { return "signing method " + alg + " is invalid" }

// reasonUnknownKID is the refusal of a kid the JWKS does not have (after the
// refetch it may trigger).
func reasonUnknownKID(kid string) string { return fmt.Sprintf("kid %q: key not found", kid) }

// reasonAlgMismatch is keyfunc's refusal of a token alg other than the JWK's.
func reasonAlgMismatch(jwkAlg, tokAlg string) string {
	return fmt.Sprintf(`JWK "alg" parameter value %q does not match token "alg" parameter value %q`, jwkAlg, tokAlg)
}

// corpusEntry is a token that must be refused and the reason it must be
// refused for. The token differs from a valid one only in what its name says,
// so that the first check it fails is the one it is named for.
type corpusEntry struct {
	token  string
	reason string
}

// negativeCorpus returns every token that must be refused, by name.
func negativeCorpus(tb testing.TB, f fixture) map[string]corpusEntry {
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
	goodSig, err := base64.RawURLEncoding.DecodeString(gp[2])
	if err != nil {
		tb.Fatal(err)
	}
	other := strings.Split(sign(rsa1, jwttest.Edit(g, "sub", "mallory")), ".")
	// The same claims with more scopes, under the original signature.
	elevated := strings.Split(sign(rsa1, jwttest.Edit(g, "scope", "todo:read todo:write admin")), ".")[1]
	deep := map[string]any{"sub": "a9"}
	for i := 8; i >= 1; i-- {
		deep = map[string]any{"sub": "a" + string(rune('0'+i)), "act": deep}
	}
	pad := strings.Repeat("x", jwtauth.MaxTokenBytes)
	attackerJWK := f.attacker.JWK()
	return map[string]corpusEntry{
		"alg-none":                 {jwttest.Sign(tb, map[string]any{"alg": "none", "kid": "rsa-1", "typ": "at+jwt"}, g, nil), reasonNotAllowed("none")},
		"alg-none-capitalised":     {jwttest.Sign(tb, map[string]any{"alg": "None", "kid": "rsa-1", "typ": "at+jwt"}, g, nil), reasonAlgUnknown},
		"alg-none-no-kid":          {jwttest.Sign(tb, map[string]any{"alg": "none", "typ": "JWT"}, g, nil), reasonNotAllowed("none")},
		"alg-lowercase-rs256":      {signAs(tb, "rs256", gojwt.SigningMethodRS256, "rsa-1", g, rsa1.Signer), reasonAlgUnknown},
		"hs256-rsa-public-key":     {jwttest.Sign(tb, map[string]any{"alg": "HS256", "kid": "rsa-1", "typ": "at+jwt"}, g, rsa1.PublicPEM(tb)), reasonNotAllowed("HS256")},
		"hs256-published-oct-key":  {sign(f.published["oct-1"], g), reasonNotAllowed("HS256")},
		"hs256-oct-key-no-kid":     {sign(f.published["oct-1"], g, "kid", nil), reasonNotAllowed("HS256")},
		"ps384-not-allowed":        {sign(jwttest.Key{KID: "rsa-nouse", Alg: "PS384", Signer: f.published["rsa-nouse"].Signer}, g), reasonNotAllowed("PS384")},
		"rs512-not-allowed":        {sign(jwttest.Key{KID: "rsa-nouse", Alg: "RS512", Signer: f.published["rsa-nouse"].Signer}, g), reasonNotAllowed("RS512")},
		"rs256-under-ec-kid":       {sign(jwttest.Key{KID: "ec-1", Alg: "RS256", Signer: rsa1.Signer}, g), reasonAlgMismatch("ES256", "RS256")},
		"ps256-under-rs256-key":    {sign(jwttest.Key{KID: "rsa-1", Alg: "PS256", Signer: rsa1.Signer}, g), reasonAlgMismatch("RS256", "PS256")},
		"wrong-aud":                {sign(rsa1, jwttest.Edit(g, "aud", "https://other.test/mcp")), reasonAudMismatch},
		"aud-prefix-only":          {sign(rsa1, jwttest.Edit(g, "aud", "https://mcp.test/")), reasonAudMismatch},
		"no-aud":                   {sign(rsa1, jwttest.Edit(g, "aud", nil)), reasonAudMissing},
		"aud-empty-array":          {sign(rsa1, jwttest.Edit(g, "aud", []string{})), reasonAudMissing},
		"expired":                  {sign(rsa1, jwttest.Edit(g, "exp", corpusNow.Add(-2*time.Minute).Unix(), "iat", corpusNow.Add(-time.Hour).Unix())), reasonExpired},
		"no-exp":                   {sign(rsa1, jwttest.Edit(g, "exp", nil)), reasonExpMissing},
		"exp-string":               {sign(rsa1, jwttest.Edit(g, "exp", "2099-01-01T00:00:00Z")), reasonExpType},
		"not-yet-valid":            {sign(rsa1, jwttest.Edit(g, "nbf", corpusNow.Add(2*time.Minute).Unix())), reasonNotYetValid},
		"iat-in-future":            {sign(rsa1, jwttest.Edit(g, "iat", corpusNow.Add(2*time.Minute).Unix())), reasonIATFuture},
		"wrong-issuer":             {sign(rsa1, jwttest.Edit(g, "iss", "https://evil.test")), reasonIssMismatch},
		"issuer-trailing-slash":    {sign(rsa1, jwttest.Edit(g, "iss", corpusIssuer+"/")), reasonIssMismatch},
		"no-issuer":                {sign(rsa1, jwttest.Edit(g, "iss", nil)), reasonIssMissing},
		"unknown-kid":              {sign(jwttest.Key{KID: "rsa-9", Alg: "RS256", Signer: rsa1.Signer}, g), reasonUnknownKID("rsa-9")},
		"no-kid":                   {sign(rsa1, g, "kid", nil), reasonNoKID},
		"empty-kid":                {sign(rsa1, g, "kid", ""), reasonNoKID},
		"kid-not-string":           {sign(rsa1, g, "kid", 1), reasonNoKID},
		"foreign-key-right-kid":    {sign(f.foreign, g), reasonSignature},
		"embedded-jwk":             {sign(f.attacker, g, "jwk", attackerJWK), reasonUnknownKID("attacker-1")},
		"embedded-jwk-right-kid":   {sign(jwttest.Key{KID: "rsa-1", Alg: "RS256", Signer: f.attacker.Signer}, g, "jwk", attackerJWK), reasonSignature},
		"jku-header":               {sign(f.attacker, g, "jku", "https://attacker.test/jwks"), reasonUnknownKID("attacker-1")},
		"jku-header-right-kid":     {sign(jwttest.Key{KID: "rsa-1", Alg: "RS256", Signer: f.attacker.Signer}, g, "jku", "https://attacker.test/jwks"), reasonSignature},
		"x5u-header":               {sign(f.attacker, g, "x5u", "https://attacker.test/cert.pem"), reasonUnknownKID("attacker-1")},
		"x5c-header":               {sign(jwttest.Key{KID: "rsa-1", Alg: "RS256", Signer: f.attacker.Signer}, g, "x5c", []string{"MIIBszCCAVmgAwIBAgIUAttacker"}), reasonSignature},
		"edited-payload":           {gp[0] + "." + elevated + "." + gp[2], reasonSignature},
		"signature-of-other-token": {gp[0] + "." + gp[1] + "." + other[2], reasonSignature},
		"empty-signature":          {gp[0] + "." + gp[1] + ".", reasonSignature},
		// Cut whole bytes, not base64 characters: cutting characters leaves
		// non-zero trailing bits, refused by strict decoding before the
		// signature is ever checked.
		"truncated-signature": {gp[0] + "." + gp[1] + "." + base64.RawURLEncoding.EncodeToString(goodSig[:len(goodSig)-8]), reasonSignature},
		"base64-padding":      {gp[0] + "=." + gp[1] + "." + gp[2], reasonHeaderBase64},
		"oversized":           {sign(rsa1, jwttest.Edit(g, "pad", pad)), reasonTooLarge},
		"garbage":             {"this is not a token", reasonSegments},
		"two-segments":        {gp[0] + "." + gp[1], reasonSegments},
		"jwe-five-segments":   {gp[0] + "." + gp[1] + "." + gp[2] + ".AAAA.BBBB", reasonSegments},
		"leading-space":       {" " + good, reasonHeaderBase64},
		"empty":               {"", reasonEmpty},
		"typ-wrong":           {sign(rsa1, g, "typ", "dpop+jwt"), `token typ "dpop+jwt" is not at+jwt`},
		"typ-id-token":        {sign(rsa1, g, "typ", "id_token+jwt"), `token typ "id_token+jwt" is not at+jwt`},
		"typ-missing":         {sign(rsa1, g, "typ", nil), reasonNoTyp},
		"typ-not-string":      {sign(rsa1, g, "typ", 9), reasonTypNotString},
		"crit-header":         {sign(rsa1, g, "crit", []string{"b64"}, "b64", false), reasonCrit},
		"use-enc-key":         {sign(f.published["rsa-enc"], g), reasonUseEnc},
		"weak-rsa-key":        {sign(f.published["rsa-weak"], g), reasonWeakRSA},
		"no-sub":              {sign(rsa1, jwttest.Edit(g, "sub", nil)), reasonNoSub},
		"sub-not-string":      {sign(rsa1, jwttest.Edit(g, "sub", 42)), reasonSubNotString},
		"act-not-object":      {sign(rsa1, jwttest.Edit(g, "act", "agent-b")), reasonActNotObject},
		"act-without-sub":     {sign(rsa1, jwttest.Edit(g, "act", map[string]any{"iss": "x"})), reasonActNoSub},
		"act-too-deep":        {sign(rsa1, jwttest.Edit(g, "act", deep)), reasonActTooDeep},
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

// reasonsFile maps each corpus token's name to its expected refusal reason.
var reasonsFile = filepath.Join("testdata", "corpus", "reasons.json")

// writeReasons writes the expected reasons of entries to reasonsFile.
func writeReasons(tb testing.TB, entries map[string]corpusEntry) {
	tb.Helper()
	m := make(map[string]string, len(entries))
	for name, e := range entries {
		m[name] = e.reason
	}
	b, err := json.MarshalIndent(m, "", "  ") // keys sorted
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(reasonsFile, append(b, '\n'), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// readReasons reads reasonsFile.
func readReasons(tb testing.TB) map[string]string {
	tb.Helper()
	b, err := os.ReadFile(reasonsFile)
	if err != nil {
		tb.Fatalf("%v (run go generate ./auth/jwt)", err)
	}
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatalf("%s: %v", reasonsFile, err)
	}
	return m
}

// corpusJWKS serves the fixture's JWKS on loopback and returns its URL.
func corpusJWKS(tb testing.TB, f fixture) string {
	tb.Helper()
	return jwttest.NewIssuer(tb, jwttest.Options{Issuer: corpusIssuer, Keys: f.keys()}).JWKSURL()
}

// newCorpusVerifier returns a Verifier for the corpus issuer, audience and
// clock, on the keys at jwksURL.
func newCorpusVerifier(tb testing.TB, jwksURL string) *jwtauth.Verifier {
	tb.Helper()
	v, err := jwtauth.New(context.Background(), jwtauth.Config{
		Issuer: corpusIssuer, Audiences: []string{corpusAudience}, JWKSURL: jwksURL,
		Now: func() time.Time { return corpusNow }, UnknownKIDInterval: time.Hour,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return v
}

// corpusVerifier serves the fixture's JWKS on loopback and returns a
// Verifier for the corpus issuer, audience and clock.
func corpusVerifier(tb testing.TB, f fixture) *jwtauth.Verifier {
	tb.Helper()
	return newCorpusVerifier(tb, corpusJWKS(tb, f))
}

// checkRefusal returns nil when err refuses tok as an invalid token for the
// reason want: KindInvalidToken, the generic caller message (which never
// contains the token), and an audit reason that contains want and not the
// token. Otherwise it says what is wrong.
func checkRefusal(err error, tok, want string) error {
	if want == "" {
		return errors.New("no expected reason")
	}
	if err == nil {
		return errors.New("accepted")
	}
	var ae *auth.Error
	if !errors.As(err, &ae) {
		return fmt.Errorf("error %T %v, want *auth.Error", err, err)
	}
	if ae.Kind != auth.KindInvalidToken {
		return fmt.Errorf("kind=%v, want %v (reason: %v)", ae.Kind, auth.KindInvalidToken, ae.Err)
	}
	for _, msg := range []string{err.Error(), ae.Error()} {
		if msg != "invalid token" {
			return fmt.Errorf("caller message=%q, want %q", msg, "invalid token")
		}
		if tok != "" && strings.Contains(msg, tok) {
			return errors.New("caller message contains the token")
		}
	}
	if ae.Err == nil {
		return errors.New("no reason for the audit log")
	}
	reason := ae.Err.Error()
	if tok != "" && strings.Contains(reason, tok) {
		return errors.New("audit reason contains the token")
	}
	if !strings.Contains(reason, want) {
		return fmt.Errorf("refused for %q, want a reason containing %q", reason, want)
	}
	return nil
}

// corpusRefusals verifies each negative corpus token, each in a Verifier of
// its own (so that no entry's outcome depends on another's: the unknown-kid
// refetch limiter is per Verifier), and returns the errors by name.
func corpusRefusals(t *testing.T, f fixture, neg map[string]string) map[string]error {
	t.Helper()
	jwks := corpusJWKS(t, f)
	out := make(map[string]error, len(neg))
	for name, tok := range neg {
		v := newCorpusVerifier(t, jwks)
		p, err := v.Verify(context.Background(), tok)
		if err == nil && p == nil {
			err = errors.New("nil principal without an error")
		}
		out[name] = err
	}
	return out
}

// TestVerifier_Corpus runs the committed negative corpus, each token refused
// as an invalid token for the reason it is named for (testdata/corpus/
// reasons.json), and the positive controls, each accepted.
func TestVerifier_Corpus(t *testing.T) {
	f := loadFixture(t, *update)
	gen := negativeCorpus(t, f)
	if *update {
		tokens := make(map[string]string, len(gen))
		for name, e := range gen {
			tokens[name] = e.token
		}
		writeSet(t, filepath.Join("testdata", "corpus"), tokens)
		writeReasons(t, gen)
		writeSet(t, filepath.Join("testdata", "valid"), positiveControls(t, f))
	}
	neg := readSet(t, filepath.Join("testdata", "corpus"))
	pos := readSet(t, filepath.Join("testdata", "valid"))
	reasons := readReasons(t)
	names := slices.Sorted(maps.Keys(gen))
	if got := slices.Sorted(maps.Keys(neg)); !slices.Equal(got, names) {
		t.Fatalf("testdata/corpus is stale (run go generate ./auth/jwt):\n got %v\nwant %v", got, names)
	}
	for _, name := range names {
		if got, want := reasons[name], gen[name].reason; got != want {
			t.Errorf("%s: %s has reason %q, the generator %q (run go generate ./auth/jwt)", name, reasonsFile, got, want)
		}
	}
	if got := slices.Sorted(maps.Keys(reasons)); !slices.Equal(got, names) {
		t.Errorf("%s names %v, want %v", reasonsFile, got, names)
	}
	if t.Failed() {
		t.FailNow()
	}
	if len(neg) < 55 {
		t.Fatalf("negative corpus has %d tokens, want at least 55", len(neg))
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
	refusals := corpusRefusals(t, f, neg)
	for _, name := range names {
		t.Run("Refused/"+name, func(t *testing.T) {
			if err := checkRefusal(refusals[name], neg[name], reasons[name]); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestVerifier_Corpus_WrongReasonFails shows that the corpus test fails when
// an entry's expected reason is wrong: for every entry, checkRefusal rejects
// each expected reason of the other checks, an empty one, and the caller
// message. A reason too vague to tell two checks apart fails here.
func TestVerifier_Corpus_WrongReasonFails(t *testing.T) {
	f := loadFixture(t, false)
	neg := readSet(t, filepath.Join("testdata", "corpus"))
	reasons := readReasons(t)
	distinct := slices.Compact(slices.Sorted(maps.Values(reasons)))
	if len(distinct) < 20 {
		t.Fatalf("only %d distinct expected reasons", len(distinct))
	}
	refusals := corpusRefusals(t, f, neg)
	for _, name := range slices.Sorted(maps.Keys(neg)) {
		err, tok, want := refusals[name], neg[name], reasons[name]
		if e := checkRefusal(err, tok, want); e != nil {
			t.Errorf("%s: %v", name, e)
			continue
		}
		for _, wrong := range append([]string{"", "invalid token"}, distinct...) {
			if wrong == want {
				continue
			}
			if checkRefusal(err, tok, wrong) == nil {
				t.Errorf("%s: a wrong expected reason %q passes too (reason: %v)", name, wrong, errors.Unwrap(err))
			}
		}
	}
	// And the token checks: a message or reason that carried the token fails.
	leaky := &auth.Error{Kind: auth.KindInvalidToken, Msg: "invalid token", Err: errors.New("bad: " + neg["expired"])}
	if checkRefusal(leaky, neg["expired"], "bad") == nil {
		t.Error("a reason containing the token passes")
	}
	if checkRefusal(&auth.Error{Kind: auth.KindInvalidToken, Msg: "invalid token: " + neg["expired"], Err: errors.New("expired")}, neg["expired"], "expired") == nil {
		t.Error("a caller message containing the token passes")
	}
	if checkRefusal(&auth.Error{Kind: auth.KindUnavailable, Msg: "invalid token", Err: errors.New("expired")}, neg["expired"], "expired") == nil {
		t.Error("another kind passes")
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
