package server

import (
	"context"
	"encoding/json"

	"github.com/idmcp/idmcp/auth"
)

// Gate is the stdio gate in the shape the relay of `idmcp wrap` consumes
// (relay.Gate): one raw JSON-RPC request in, the caller or the refusal out.
// It is a thin adapter over StdioGate, so it accepts and refuses exactly
// what `idmcp serve` on stdio does, writes the same auth rows and stderr
// lines, and binds the process to one identity atomically.
type Gate struct {
	g *StdioGate
}

// NewGate returns the gate of a stdio session. Of cfg it uses Host,
// EnvToken, Tokens, and Config's Audit, Logger and Now; no tools and no
// authorizer are needed (a relay decides calls against its own rules).
func NewGate(cfg StdioConfig) (*Gate, error) {
	l := cfg.Logger
	if l != nil {
		l = l.With("transport", "stdio")
	}
	g, err := NewStdioGate(StdioGateConfig{
		Host: cfg.Host, EnvToken: cfg.EnvToken, Tokens: cfg.Tokens, Audit: cfg.Audit, Logger: l, Now: cfg.Now,
	})
	if err != nil {
		return nil, err
	}
	return &Gate{g: g}, nil
}

// Session is the random id the gate's audit rows carry.
func (g *Gate) Session() string { return g.g.Session() }

// Check authenticates one raw JSON-RPC request from the host, in either
// protocol era: see StdioGate.Authenticate. A message that is not JSON is
// checked with what could be read (nothing), so it is refused unless the
// environment's credential authenticates the session.
func (g *Gate) Check(ctx context.Context, raw json.RawMessage) (*auth.Principal, error) {
	f := parseFrame(raw)
	return g.g.Authenticate(ctx, &f)
}

// Principal is the identity the session is bound to, nil before the first
// success.
func (g *Gate) Principal() *auth.Principal { return g.g.Bound() }
