package auth

import (
	"context"
	"slices"
)

// Method says how a principal proved who it is.
type Method string

// Authentication methods.
const (
	// MethodHostSecret is a stdio host presenting the secret of its profile.
	MethodHostSecret Method = "host-secret"
	// MethodJWT is a bearer JWT verified against an issuer's keys.
	MethodJWT Method = "jwt"
	// MethodIntrospection is an opaque bearer token its issuer vouched for
	// (RFC 7662 introspection, Google tokeninfo, GitHub's token API).
	MethodIntrospection Method = "introspection"
)

// Principal is an authenticated caller. It carries three identities: the
// human on whose behalf the request is made (Subject), the agent that made it
// (ClientID, with the client's self-reported name and version), and the chain
// of actors in between when a token was delegated (RFC 8693 act claim).
type Principal struct {
	// Subject is the human: the OS user running a stdio server, or a JWT's sub.
	Subject string `json:"subject"`
	// ClientID is the agent: the host profile on stdio, a JWT's client_id or azp.
	ClientID string `json:"client_id"`
	// ClientName and ClientVersion are what the client said about itself in
	// clientInfo; they are self-reported and never used for decisions.
	ClientName    string `json:"client_name,omitempty"`
	ClientVersion string `json:"client_version,omitempty"`
	// Actors is the delegation chain, current actor first.
	Actors []string `json:"actors"`
	// Scopes and Roles come from the server side (host profile, or the token
	// through the policy's claim mapping), never from what a client claims.
	Scopes []string `json:"scopes"`
	Roles  []string `json:"roles"`
	// Method is how the principal authenticated.
	Method Method `json:"auth_method"`
	// Transport is "stdio" or "http".
	Transport string `json:"transport"`
	// Profile is the host profile a stdio principal authenticated as.
	Profile string `json:"profile,omitempty"`
	// Issuer is the token issuer for JWT principals.
	Issuer string `json:"issuer,omitempty"`
}

// HasScope reports whether p holds scope s.
func (p *Principal) HasScope(s string) bool { return p != nil && slices.Contains(p.Scopes, s) }

// HasRole reports whether p holds role r.
func (p *Principal) HasRole(r string) bool { return p != nil && slices.Contains(p.Roles, r) }

// Agent names the agent for display: the client id, with the client's
// self-reported name when it sent one.
func (p *Principal) Agent() string {
	if p == nil {
		return ""
	}
	if p.ClientName == "" {
		return p.ClientID
	}
	name := p.ClientName
	if p.ClientVersion != "" {
		name += "/" + p.ClientVersion
	}
	return p.ClientID + " (" + name + ")"
}

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the principal stored by WithPrincipal, or nil.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
