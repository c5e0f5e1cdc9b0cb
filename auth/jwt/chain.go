package jwt

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/idmcp/idmcp/auth"
)

// Chain verifies a token by its shape: a JWT (three base64url segments whose
// header is a JSON object with alg) goes to JWT, anything else to Opaque.
// Either may be nil: a JWT-shaped token without a JWT verifier is asked
// about at the introspection endpoint (RFC 7662 works for JWTs too), an
// opaque one without an Introspector is refused by JWT.
type Chain struct {
	JWT    *Verifier
	Opaque *Introspector
}

// Verify dispatches raw to the verifier for its shape; see Verifier.Verify
// and Introspector.Verify for the errors.
func (c *Chain) Verify(ctx context.Context, raw string) (*auth.Principal, error) {
	if c.JWT != nil && (c.Opaque == nil || LooksLikeJWT(raw)) {
		return c.JWT.Verify(ctx, raw)
	}
	return c.Opaque.Verify(ctx, raw)
}

// Ready reports whether the JWT verifier has keys (when there is one) and
// the introspection endpoint answered last time (when there is one).
func (c *Chain) Ready() bool {
	ok := true
	if c.JWT != nil {
		ok = ok && c.JWT.Ready()
	}
	if c.Opaque != nil {
		ok = ok && c.Opaque.Ready()
	}
	return ok
}

// Close stops the JWT verifier's background refreshes.
func (c *Chain) Close() {
	if c.JWT != nil {
		c.JWT.Close()
	}
}

// LooksLikeJWT reports whether raw has the shape of a JWS compact
// serialization: three segments, the first a base64url JSON object with an
// alg member. Nothing is verified.
func LooksLikeJWT(raw string) bool {
	if len(raw) > MaxTokenBytes || strings.Count(raw, ".") != 2 {
		return false
	}
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return false
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	_, ok := m["alg"]
	return ok
}
