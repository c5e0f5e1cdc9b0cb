package jwt

import (
	"errors"
	"strings"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/idmcp/idmcp/auth"
)

// Description returns an RFC 6750 §3 error_description for a refused token:
// one of a fixed set of sentences saying what was wrong with it, never text
// taken from the token or the identity provider (so no secret and nothing an
// attacker chose reaches the response).
func Description(err error) string {
	reason := ""
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Err != nil {
		reason = ae.Err.Error()
	} else if err != nil {
		reason = err.Error()
	}
	has := func(s ...string) bool {
		for _, x := range s {
			if strings.Contains(reason, x) {
				return true
			}
		}
		return false
	}
	switch {
	case errors.Is(err, gojwt.ErrTokenExpired), errors.Is(err, errInactive) && has("expired"):
		return "the access token has expired"
	case errors.Is(err, errInactive):
		return "the access token is not active"
	case errors.Is(err, gojwt.ErrTokenInvalidAudience), has("invalid audience", "aud claim is required", "audience_claim"):
		return "the access token was not issued for this resource (audience)"
	case errors.Is(err, gojwt.ErrTokenInvalidIssuer), has("invalid issuer", "iss claim is required"):
		return "the access token was issued by another authorization server"
	case errors.Is(err, gojwt.ErrTokenNotValidYet), errors.Is(err, gojwt.ErrTokenUsedBeforeIssued):
		return "the access token is not valid yet"
	case has("ID token", "typ claim"):
		return "an ID token or refresh token is not an access token"
	case has("max_token_lifetime"):
		return "the access token lives longer than this server accepts (max_token_lifetime)"
	case has("token header has no typ", "accepted_types", "typ is not a string"):
		return "the access token's type (typ header) is not accepted"
	case errors.Is(err, gojwt.ErrTokenSignatureInvalid), errors.Is(err, gojwt.ErrTokenUnverifiable):
		return "the access token's signature could not be verified"
	case errors.Is(err, gojwt.ErrTokenMalformed):
		return "the access token is malformed"
	}
	return "the access token could not be verified"
}
