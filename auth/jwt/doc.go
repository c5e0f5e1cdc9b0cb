// Package jwt verifies OAuth 2.1 bearer access tokens that are JWTs (RFC 9068)
// and turns them into an auth.Principal: the HTTP transport's authenticator.
//
// It owns token validation as RFC 8725 and RFC 9068 ask (an algorithm
// allow-list, kid required, exact issuer, audience, expiry with bounded leeway,
// explicit typing, a size limit before parsing), fetching the issuer's signing
// keys (authorization server metadata discovery, then a JWKS cached and
// refreshed by github.com/MicahParks/keyfunc/v3), the claim mapping that
// yields scopes, roles and the RFC 8693 delegation chain, and a small cache of
// verified tokens. Identity providers that issue other shapes (Cognito,
// Entra ID, Okta, Auth0, Keycloak) are met by named conventions (provider.go),
// each overridable; opaque tokens are checked by their issuer (RFC 7662
// introspection, Google's tokeninfo, GitHub's token API: introspect.go);
// Advise says which settings a sample token needs (idmcp doctor --issuer).
//
// It does not decide what a principal may do (package auth's Authorizer does),
// and it knows nothing about HTTP requests or MCP: the transport extracts the
// bearer token and maps the typed *auth.Error this package returns.
//
// Import it under another name, since it shadows golang-jwt's package name:
//
//	import jwtauth "github.com/idmcp/idmcp/auth/jwt"
package jwt
