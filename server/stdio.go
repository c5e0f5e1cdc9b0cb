package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"slices"
	"strings"
	"sync/atomic"

	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store/audit"
)

// StdioConfig configures the stdio transport.
type StdioConfig struct {
	Config
	// Host authenticates the host that launched the process.
	Host *auth.HostAuthenticator
	// EnvToken is the credential the host put in the process environment
	// (IDMCP_TOKEN); empty when none.
	EnvToken string
	// Tokens, when set, verifies credentials that are JWTs (a desktop host
	// carrying a user's access token, serve --issuer): they are checked
	// against the issuer instead of the host secret. Nil: only the host
	// secret is accepted.
	Tokens TokenVerifier
	// MaxLineBytes bounds one JSON-RPC line on stdin (mcp-go reads lines
	// without a bound); DefaultMaxLineBytes when 0.
	MaxLineBytes int
}

// DefaultMaxLineBytes is the longest stdin line accepted: 4 MiB.
const DefaultMaxLineBytes = 4 << 20

// ErrLineTooLong ends a stdio session whose client sent an oversized line.
var ErrLineTooLong = errors.New("stdin: JSON-RPC line too long")

// lineLimitReader fails once a line grows past max bytes, so a client
// cannot make the server buffer without bound.
type lineLimitReader struct {
	r   io.Reader
	max int
	cur int
}

func (l *lineLimitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for i, b := range p[:n] {
		if b == '\n' {
			l.cur = 0
			continue
		}
		l.cur++
		if l.cur > l.max {
			// Hand over the complete lines before the long one, then fail.
			return i, fmt.Errorf("%w: over %d bytes", ErrLineTooLong, l.max)
		}
	}
	return n, err
}

// stdioState is the one stdio session's authentication state. Requests are
// handled concurrently (mcp-go runs tool calls on a worker pool), so it is
// atomic.
type stdioState struct {
	principal atomic.Pointer[auth.Principal]
	// jwt is the access token a legacy session authenticated with: requests
	// that ride on the session re-verify it, since a token expires.
	jwt atomic.Pointer[string]
}

type stdioStateKey struct{}

// Stdio is an MCP server on a pair of pipes.
type Stdio struct {
	cfg   StdioConfig
	core  *core
	state *stdioState
	mcp   *mcpserver.MCPServer
}

// NewStdio builds the stdio server.
func NewStdio(cfg StdioConfig) (*Stdio, error) {
	c, err := newCore(cfg.Config, "stdio")
	if err != nil {
		return nil, err
	}
	s := &Stdio{cfg: cfg, core: c, state: &stdioState{}}
	hooks := &mcpserver.Hooks{}
	// The gate: mcp-go calls this for every request that has an id, before
	// dispatch, in both protocol eras (a 2026-07-28 client never sends
	// initialize, so authenticating at initialize alone would not hold).
	hooks.AddOnRequestInitialization(s.gate)
	s.mcp = c.newMCPServer("stdio", s.principal, hooks)
	return s, nil
}

func (s *Stdio) principal(ctx context.Context) *auth.Principal {
	if st, ok := ctx.Value(stdioStateKey{}).(*stdioState); ok {
		return st.principal.Load()
	}
	return nil
}

// authenticate finds the credential of one request and checks it. A request
// that carries its own credential is always checked; a legacy request without
// one rides on the session once it authenticated (re-verifying the session's
// JWT, if that is what it used); otherwise the credential from the
// environment is used. It returns the credential when it was a JWT.
func (s *Stdio) authenticate(ctx context.Context, f frame) (*auth.Principal, string, error) {
	token, client := f.Token, f.Client
	if token == "" {
		if p := s.state.principal.Load(); p != nil && !f.Modern {
			t := s.state.jwt.Load()
			if p.Method != auth.MethodJWT || t == nil {
				return p, "", nil
			}
			token, client = *t, auth.ClientInfo{Name: p.ClientName, Version: p.ClientVersion}
		}
	}
	if token == "" {
		token = s.cfg.EnvToken
	}
	if s.cfg.Tokens != nil && isJWT(token) {
		p, err := s.cfg.Tokens.Verify(ctx, token)
		if err != nil {
			return nil, "", err
		}
		p.Transport, p.ClientName, p.ClientVersion = "stdio", client.Name, client.Version
		return p, token, nil
	}
	p, err := s.cfg.Host.Authenticate(token, f.Client)
	return p, "", err
}

// sameIdentity reports whether a and b are the same caller: the same human,
// through the same agent and delegation chain, vouched for the same way.
func sameIdentity(a, b *auth.Principal) bool {
	return a.Subject == b.Subject && a.ClientID == b.ClientID && a.Issuer == b.Issuer &&
		a.Method == b.Method && a.Profile == b.Profile && slices.Equal(a.Actors, b.Actors)
}

// describe names a principal for a refusal: subject and agent, no secrets.
func describe(p *auth.Principal) string {
	d := fmt.Sprintf("%q via %q", p.Subject, p.ClientID)
	if len(p.Actors) > 0 {
		d += fmt.Sprintf(" (actors %s)", strings.Join(p.Actors, ">"))
	}
	return d
}

// isJWT reports whether a credential has the shape of a compact JWS (host
// tokens are idmcp_… without dots).
func isJWT(token string) bool {
	return strings.HasPrefix(token, "eyJ") && strings.Count(token, ".") == 2
}

func (s *Stdio) gate(ctx context.Context, _ any, message any) error {
	raw, _ := message.(json.RawMessage)
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
			return &auth.Error{Kind: auth.KindUnavailable, Msg: "authentication failed: audit log unavailable"}
		}
		return err
	}
	// One stdio process serves one identity: tool handlers and the tools/list
	// filter read the session's principal (mcp-go's hook cannot hand them the
	// request's), so a request that authenticates as someone else is refused
	// rather than served and audited under the session's name.
	if prev := s.state.principal.Load(); prev != nil && !sameIdentity(prev, p) {
		err := auth.Unauthenticated("this stdio session is bound to %s; a credential of %s needs its own server process", describe(prev), describe(p))
		ev := s.core.event(p, "stdio", audit.EventAuth)
		ev.Decision, ev.Reason = audit.Deny, err.Error()
		if rerr := s.core.record(ctx, ev); rerr != nil {
			return &auth.Error{Kind: auth.KindUnavailable, Msg: "authentication failed: audit log unavailable"}
		}
		return err
	}
	// Record the first success, and a change of what the same identity holds
	// (client version, a refreshed token's scopes); not every request.
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
				return &auth.Error{Kind: auth.KindUnavailable, Msg: "authentication failed: audit log unavailable"}
			}
		}
	}
	if f.Method == "tools/call" {
		return s.core.decideCall(ctx, p, "stdio", f.Tool, f.Arguments)
	}
	return nil
}

// Listen serves MCP on in/out until in reaches EOF or ctx is cancelled.
func (s *Stdio) Listen(ctx context.Context, in io.Reader, out io.Writer) error {
	srv := mcpserver.NewStdioServer(s.mcp)
	srv.SetErrorLogger(log.New(slogWriter{s.core.log}, "", 0))
	srv.SetContextFunc(func(ctx context.Context) context.Context {
		return context.WithValue(ctx, stdioStateKey{}, s.state)
	})
	max := s.cfg.MaxLineBytes
	if max <= 0 {
		max = DefaultMaxLineBytes
	}
	err := srv.Listen(ctx, &lineLimitReader{r: in, max: max}, out)
	if errors.Is(err, ErrLineTooLong) {
		s.core.log.Error("closing stdio session", "err", err)
	}
	return err
}

// slogWriter sends mcp-go's log.Logger output to slog (stderr).
type slogWriter struct {
	l interface{ Warn(string, ...any) }
}

func (w slogWriter) Write(b []byte) (int, error) {
	w.l.Warn("mcp-go", "msg", string(b))
	return len(b), nil
}
