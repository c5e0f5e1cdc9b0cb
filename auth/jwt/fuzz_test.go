package jwt_test

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzVerify feeds arbitrary strings, seeded with the corpus and the positive
// controls, to a Verifier: it must never panic, must answer every input with
// either a principal or a typed refusal, and must accept only tokens that
// carry a subject and the corpus issuer.
func FuzzVerify(f *testing.F) {
	fx := loadFixture(f, false)
	for _, dir := range []string{"corpus", "valid"} {
		set := readSet(f, filepath.Join("testdata", dir))
		for _, name := range slices.Sorted(maps.Keys(set)) {
			f.Add(set[name])
		}
	}
	v := corpusVerifier(f, fx)
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.Verify(context.Background(), raw)
		if err != nil {
			if p != nil {
				t.Fatal("principal returned with an error")
			}
			if kindOf(err) == 0 {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if p == nil || p.Subject == "" || p.Issuer != corpusIssuer {
			t.Fatalf("accepted with principal %+v", p)
		}
	})
}
