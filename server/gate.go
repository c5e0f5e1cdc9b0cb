package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store/audit"
)

// StdioGateConfig configures the gate of a stdio session.
type StdioGateConfig struct {
	// Host authenticates the host that launched the process. Required.
	Host *auth.HostAuthenticator
	// EnvToken is the credential the host put in the process environment
	// (IDMCP_TOKEN); empty when none.
	EnvToken string
	// Tokens, when set, verifies credentials that are JWTs (a desktop host
	// carrying a user's access token, serve --issuer): they are checked
	// against the issuer instead of the host secret. Nil: only the host
	// secret is accepted.
	Tokens TokenVerifier
	// Audit receives the auth rows: every refusal, the first success and a
	// change of what the identity holds. Required.
	Audit *audit.Log
	// Logger gets one line per refusal (stderr, where hosts keep a server's
	// log), with the words of the refusal and no secret. Nil: discarded.
	Logger *slog.Logger
	// Transport names the transport in audit rows and on the principal;
	// "stdio" when empty.
	Transport string
	// Session is the audit rows' session id; a random one when empty.
	Session string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Validate checks the configuration.
func (c StdioGateConfig) Validate() error {
	if c.Host == nil {
		return fmt.Errorf("field \"host\": nil: %w", auth.ErrInvalidConfig)
	}
	if c.Audit == nil {
		return fmt.Errorf("field \"audit\": nil: %w", auth.ErrInvalidConfig)
	}
	return nil
}

// StdioGate answers "who is this?" for every request of one stdio session,
// the same way for `idmcp serve` and for any other transport that speaks for
// one host over a pair of pipes (`idmcp wrap`). One process serves one
// identity: the first request that authenticates binds the session, and a
// request that authenticates as someone else is refused. It is safe for
// concurrent use.
type StdioGate struct {
	cfg   StdioGateConfig
	log   *slog.Logger
	bound atomic.Pointer[binding]
}

// binding is the session's identity, and the access token a legacy session
// authenticated with: requests that ride on the session re-verify it, since
// a token expires. It is replaced as a whole, never edited.
type binding struct {
	p   *auth.Principal
	jwt string
}

// NewStdioGate builds a gate.
func NewStdioGate(cfg StdioGateConfig) (*StdioGate, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Transport == "" {
		cfg.Transport = "stdio"
	}
	if cfg.Session == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.Session = hex.EncodeToString(b[:])
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &StdioGate{cfg: cfg, log: l}, nil
}

// Session is the id the gate's audit rows carry; a transport that writes
// rows of its own uses it too, so that one session reads as one.
func (g *StdioGate) Session() string { return g.cfg.Session }

// Bound returns the identity the session is bound to, or nil before the
// first request authenticated.
func (g *StdioGate) Bound() *auth.Principal {
	if b := g.bound.Load(); b != nil {
		return b.p
	}
	return nil
}

// errAuditDown is the refusal when a decision could not be recorded.
func errAuditDown(err error) *auth.Error {
	return &auth.Error{Kind: auth.KindUnavailable, Msg: "authentication failed: audit log unavailable", Err: err}
}

// Authenticate decides who sent the request f and returns the principal to
// serve it as. A refusal is an *auth.Error whose message is the JSON-RPC
// error's (KindUnauthenticated, KindInvalidToken, KindUnavailable when the
// audit log or the issuer is down); its audit row is committed and its
// stderr line written before Authenticate returns. Authentication only:
// whether the principal may call a tool is the caller's decision.
func (g *StdioGate) Authenticate(ctx context.Context, f *Frame) (*auth.Principal, error) {
	p, jwt, err := g.credential(ctx, f)
	if err != nil {
		ev := g.event(nil, audit.EventAuth)
		ev.ClientID, ev.Decision, ev.Reason = g.cfg.Host.ProfileName(), audit.Deny, auditReason(err)
		if f.Client.Name != "" {
			ev.ClientName = f.Client.Name + "/" + f.Client.Version
		}
		ev.Reason += " (" + f.Method + ")"
		return nil, g.refuse(ctx, f, ev, err)
	}
	return g.bind(ctx, f, p, jwt)
}

// bind makes "is the session bound to someone else?" and "bind it to p" one
// atomic step: two first requests with different credentials cannot both
// pass the check. A change of what the same identity holds (client version,
// a refreshed token's scopes) replaces the binding and is recorded; an
// unchanged one records nothing, so not every request is a row.
func (g *StdioGate) bind(ctx context.Context, f *Frame, p *auth.Principal, jwt string) (*auth.Principal, error) {
	next := &binding{p: p, jwt: jwt}
	for {
		prev := g.bound.Load()
		if prev != nil && !sameIdentity(prev.p, p) {
			// Tool handlers and the tools/list filter serve the request's
			// principal, but the session is one host's: a request that
			// authenticates as someone else is refused rather than served.
			err := auth.Unauthenticated("this stdio session is bound to %s; a credential of %s needs its own server process", describe(prev.p), describe(p))
			ev := g.event(p, audit.EventAuth)
			ev.Decision, ev.Reason = audit.Deny, err.Error()
			return nil, g.refuse(ctx, f, ev, err)
		}
		if prev != nil && !changed(prev, next) {
			return p, nil
		}
		if !g.bound.CompareAndSwap(prev, next) {
			continue // another request bound or rebound the session meanwhile: look again
		}
		ev := g.event(p, audit.EventAuth)
		ev.Decision, ev.Reason = audit.Allow, "host secret matches profile "+p.Profile+" ("+g.cfg.Host.SecretSource()+")"
		if p.Method == auth.MethodJWT {
			ev.Reason = "access token of " + p.Issuer + " verified"
		}
		ev.Reason += " (" + f.Method + ")"
		if err := g.record(ev); err != nil {
			return nil, g.refuse(ctx, f, audit.Event{}, errAuditDown(err))
		}
		return p, nil
	}
}

func changed(prev, next *binding) bool {
	a, b := prev.p, next.p
	return a.ClientName != b.ClientName || a.ClientVersion != b.ClientVersion ||
		!slices.Equal(a.Scopes, b.Scopes) || !slices.Equal(a.Roles, b.Roles) ||
		(next.jwt != "" && next.jwt != prev.jwt)
}

// refuse records ev (unless it is empty), writes the refusal's stderr line
// and returns the error to answer with: err, or the audit failure when the
// row could not be committed (fail closed).
func (g *StdioGate) refuse(ctx context.Context, f *Frame, ev audit.Event, err error) error {
	if ev.Event != "" {
		if rerr := g.record(ev); rerr != nil {
			err = errAuditDown(rerr)
		}
	}
	logRefusal(ctx, g.log, f, err)
	return err
}

// logRefusal writes the one stderr line of a refusal: the same words as the
// JSON-RPC error (hosts show a server's stderr, not its protocol errors),
// the method and the request id. No credential is ever in an error message;
// the logger scrubs known secrets as a last line of defence.
func logRefusal(ctx context.Context, l *slog.Logger, f *Frame, err error) {
	l.LogAttrs(ctx, slog.LevelWarn, "refused: "+err.Error(),
		slog.String("method", f.Method), slog.String("id", string(f.ID)), slog.String("kind", auth.KindOf(err).String()))
}

// credential finds the credential of one request and checks it. A request
// that carries its own credential is always checked; a legacy request without
// one rides on the session once it authenticated (re-verifying the session's
// JWT, if that is what it used); otherwise the credential from the
// environment is used. It returns the credential when it was a JWT.
func (g *StdioGate) credential(ctx context.Context, f *Frame) (*auth.Principal, string, error) {
	token, client := f.Token, f.Client
	if token == "" && !f.Modern {
		if b := g.bound.Load(); b != nil {
			if b.p.Method != auth.MethodJWT || b.jwt == "" {
				return b.p, "", nil
			}
			token, client = b.jwt, auth.ClientInfo{Name: b.p.ClientName, Version: b.p.ClientVersion}
		}
	}
	if token == "" {
		token = g.cfg.EnvToken
	}
	if g.cfg.Tokens != nil && isJWT(token) {
		p, err := g.cfg.Tokens.Verify(ctx, token)
		if err != nil {
			return nil, "", err
		}
		p.Transport, p.ClientName, p.ClientVersion = g.cfg.Transport, client.Name, client.Version
		return p, token, nil
	}
	p, err := g.cfg.Host.Authenticate(token, f.Client)
	if p != nil {
		p.Transport = g.cfg.Transport
	}
	return p, "", err
}

// event fills the identity columns of an audit event from p.
func (g *StdioGate) event(p *auth.Principal, kind string) audit.Event {
	ev := audit.Event{Time: g.cfg.Now(), Transport: g.cfg.Transport, Session: g.cfg.Session, Event: kind}
	if p != nil {
		ev.Subject, ev.ClientID, ev.Actors, ev.AuthMethod = p.Subject, p.ClientID, p.Actors, string(p.Method)
		if p.ClientName != "" {
			ev.ClientName = p.ClientName + "/" + p.ClientVersion
		}
	}
	return ev
}

func (g *StdioGate) record(ev audit.Event) error {
	if err := g.cfg.Audit.Append(context.Background(), ev); err != nil {
		g.log.Error("audit write failed", "event", ev.Event, "err", err)
		return err
	}
	return nil
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
