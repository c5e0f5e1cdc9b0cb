package server

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store/audit"
)

// Gate is the stdio transport's host authentication, exported for
// transports that are not an mcp-go server (the relay of idmcp wrap). It
// accepts and refuses exactly what `idmcp serve` on stdio does, writes the
// same auth rows, and binds the process to one identity.
//
// It is built on the Stdio server with no tools: Check is Stdio.gate
// without the built-in tools/call decision, which a relay makes itself
// against its own rules. When server/stdio.go exports its gate, Check
// becomes a call to it.
type Gate struct {
	s *Stdio
}

// NewGate returns the gate of a stdio session. cfg.Config needs only
// Audit (an Authorizer with no tools is supplied when nil).
func NewGate(cfg StdioConfig) (*Gate, error) {
	cfg.Tools = nil
	if cfg.Authorizer == nil {
		a, err := auth.NewAuthorizer(auth.AuthorizerConfig{})
		if err != nil {
			return nil, err
		}
		cfg.Authorizer = a
	}
	s, err := NewStdio(cfg)
	if err != nil {
		return nil, err
	}
	return &Gate{s: s}, nil
}

// Session is the random id the gate's audit rows carry; a relay writes its
// own rows with it so that one session reads as one.
func (g *Gate) Session() string { return g.s.core.session }

// Check authenticates one raw JSON-RPC request from the host, in either
// protocol era. It returns the caller, or the typed *auth.Error to answer
// with (KindUnauthenticated, KindInvalidToken, KindUnavailable when the
// refusal could not be recorded). Every refusal and every first success is
// an audit row.
func (g *Gate) Check(ctx context.Context, raw json.RawMessage) (*auth.Principal, error) {
	s := g.s
	f := parseFrame(raw)
	p, jwt, err := s.authenticate(ctx, f)
	if err != nil {
		ev := s.core.event(nil, "stdio", audit.EventAuth)
		ev.ClientID, ev.Decision, ev.Reason = s.cfg.Host.ProfileName(), audit.Deny, auditReason(err)
		if f.Client.Name != "" {
			ev.ClientName = f.Client.Name + "/" + f.Client.Version
		}
		ev.Reason += " (" + f.Method + ")"
		if rerr := s.core.record(ctx, ev); rerr != nil {
			return nil, &auth.Error{Kind: auth.KindUnavailable, Msg: "authentication failed: audit log unavailable"}
		}
		return nil, err
	}
	if prev := s.state.principal.Load(); prev != nil && !sameIdentity(prev, p) {
		err := auth.Unauthenticated("this stdio session is bound to %s; a credential of %s needs its own server process", describe(prev), describe(p))
		ev := s.core.event(p, "stdio", audit.EventAuth)
		ev.Decision, ev.Reason = audit.Deny, err.Error()
		if rerr := s.core.record(ctx, ev); rerr != nil {
			return nil, &auth.Error{Kind: auth.KindUnavailable, Msg: "authentication failed: audit log unavailable"}
		}
		return nil, err
	}
	if prev := s.state.principal.Load(); prev == nil || prev.ClientName != p.ClientName || prev.ClientVersion != p.ClientVersion ||
		!slices.Equal(prev.Scopes, p.Scopes) || !slices.Equal(prev.Roles, p.Roles) {
		if s.state.principal.CompareAndSwap(prev, p) {
			if jwt != "" {
				s.state.jwt.Store(&jwt)
			}
			ev := s.core.event(p, "stdio", audit.EventAuth)
			ev.Decision, ev.Reason = audit.Allow, "host secret matches profile "+p.Profile+" ("+s.cfg.Host.SecretSource()+")"
			if p.Method == auth.MethodJWT {
				ev.Reason = "access token of " + p.Issuer + " verified"
			}
			ev.Reason += " (" + f.Method + ")"
			if err := s.core.record(ctx, ev); err != nil {
				return nil, &auth.Error{Kind: auth.KindUnavailable, Msg: "authentication failed: audit log unavailable"}
			}
		}
	}
	return p, nil
}

// Principal is the identity the session is bound to, nil before the first
// success (for requests a relay answers without a credential check, such as
// notifications).
func (g *Gate) Principal() *auth.Principal { return g.s.state.principal.Load() }
