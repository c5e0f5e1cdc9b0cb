package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
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
	// MaxLineBytes bounds one JSON-RPC line on stdin; DefaultMaxLineBytes
	// when 0.
	MaxLineBytes int
	// Workers bounds the tools/call requests that run at once;
	// DefaultWorkers when 0.
	Workers int
	// MaxInFlight bounds the requests read and not yet answered: past it the
	// read loop waits (back-pressure on the host's pipe); DefaultMaxInFlight
	// when 0.
	MaxInFlight int
	// ShutdownTimeout is how long requests in flight may still run once
	// stdin is closed or ctx is cancelled (a signal); then they are
	// cancelled. DefaultStdioShutdownTimeout when 0.
	ShutdownTimeout time.Duration
	// CancelGrace is how long a cancelled call has to return and write its
	// own row before the transport answers it, and writes its row, on its
	// behalf; DefaultCancelGrace when 0.
	CancelGrace time.Duration
}

// Defaults of StdioConfig.
const (
	// DefaultMaxLineBytes is the longest stdin line accepted: 4 MiB.
	DefaultMaxLineBytes         = 4 << 20
	DefaultWorkers              = 8
	DefaultMaxInFlight          = 256
	DefaultStdioShutdownTimeout = 10 * time.Second
	DefaultCancelGrace          = time.Second
)

// ErrLineTooLong ends a stdio session whose client sent an oversized line.
var ErrLineTooLong = errors.New("stdin: JSON-RPC line too long")

// ErrShutdownDeadline is returned by Listen when requests were still running
// at the shutdown deadline and had to be cancelled.
var ErrShutdownDeadline = errors.New("requests cancelled at the shutdown deadline")

// Stdio is an MCP server on a pair of pipes: our own transport in front of
// mcp-go's protocol core (MCPServer.HandleMessage). Every line is parsed
// once; a request is gated (who is this? may they?) before mcp-go sees it;
// answers, notifications and server-initiated requests go out one message
// per write.
type Stdio struct {
	cfg  StdioConfig
	core *core
	gate *StdioGate
	mcp  *mcpserver.MCPServer
}

// NewStdio builds the stdio server.
func NewStdio(cfg StdioConfig) (*Stdio, error) {
	c, err := newCore(cfg.Config, "stdio")
	if err != nil {
		return nil, err
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = DefaultMaxLineBytes
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	cfg.MaxInFlight = max(cfg.MaxInFlight, cfg.Workers)
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultStdioShutdownTimeout
	}
	if cfg.CancelGrace <= 0 {
		cfg.CancelGrace = DefaultCancelGrace
	}
	g, err := NewStdioGate(StdioGateConfig{
		Host: cfg.Host, EnvToken: cfg.EnvToken, Tokens: cfg.Tokens, Audit: cfg.Audit,
		Logger: c.log, Transport: "stdio", Session: c.session, Now: c.now,
	})
	if err != nil {
		return nil, err
	}
	s := &Stdio{cfg: cfg, core: c, gate: g}
	// Handlers and the tools/list filter serve the principal the gate put
	// in the request's context.
	s.mcp = c.newMCPServer("stdio", auth.PrincipalFromContext, &mcpserver.Hooks{})
	return s, nil
}

// Listen serves MCP on in/out until in reaches EOF, a line is too long, or
// ctx is cancelled (a signal). Then it stops reading, lets the requests in
// flight finish for ShutdownTimeout, cancels the rest, and returns once
// every tools/call has its audit row and, while the pipe is open, its
// answer. It returns nil after a clean stop, ErrLineTooLong or a read error,
// or ErrShutdownDeadline when requests had to be cancelled.
func (s *Stdio) Listen(ctx context.Context, in io.Reader, out io.Writer) error {
	w := &lineWriter{out: out}
	sess := newStdioSession(w)
	if err := s.mcp.RegisterSession(ctx, sess); err != nil {
		return fmt.Errorf("register session: %w", err)
	}
	defer s.mcp.UnregisterSession(context.WithoutCancel(ctx), sess.SessionID())
	// Requests run on a context of their own: a signal stops the reading,
	// not the calls in flight; those are cancelled at the deadline.
	base, cancelAll := context.WithCancelCause(s.mcp.WithContext(context.WithoutCancel(ctx), sess))
	defer cancelAll(nil)
	l := &loop{
		s: s, w: w, sess: sess, base: base,
		slots: make(chan struct{}, s.cfg.MaxInFlight), queue: make(chan *call, s.cfg.MaxInFlight),
		stopping: make(chan struct{}), idle: make(chan struct{}), calls: map[*call]struct{}{}, byID: map[string]*call{},
	}
	// tools/call runs on long-lived workers, as in mcp-go: a goroutine per
	// call paid for growing its stack on every call (about a seventh of the
	// CPU of a round trip). A worker stuck in a tool that ignores its
	// context is left behind at shutdown.
	for range s.cfg.Workers {
		go l.work()
	}
	stopPump, pumped := make(chan struct{}), make(chan struct{})
	go l.pump(stopPump, pumped)
	readErr := make(chan error, 1)
	go func() { readErr <- l.read(in) }()

	var err error
	why := "stdin closed"
	select {
	case err = <-readErr:
		if err != nil {
			why = err.Error()
			s.core.log.Error("closing stdio session", "err", err)
		}
	case <-ctx.Done():
		// The reader may be blocked in a read of stdin: it is left there,
		// and nothing it reads from now on is served.
		why = context.Cause(ctx).Error()
	}
	if derr := l.shutdown(why, cancelAll); derr != nil {
		err = errors.Join(err, derr)
	}
	close(stopPump)
	<-pumped
	sess.close()
	return err
}

// loop is one Listen: the reader, the requests in flight, the writer.
type loop struct {
	s    *Stdio
	w    *lineWriter
	sess *stdioSession
	base context.Context

	slots    chan struct{} // requests in flight (MaxInFlight)
	queue    chan *call    // tools/call waiting for a worker; never full, as slots bound it
	stopping chan struct{} // closed when shutdown begins

	mu      sync.Mutex
	stopped bool
	calls   map[*call]struct{}
	byID    map[string]*call // the calls by their id's bytes, for notifications/cancelled
	idle    chan struct{}    // closed when stopped and no call is left
	idleSet bool

	writeFailed sync.Once
}

// call is one request in flight.
type call struct {
	f Frame
	// ctx is the request's context: cancelled at the shutdown deadline, or
	// at once for a long-lived request.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// p is set once a tools/call is allowed: the principal its row names.
	p atomic.Pointer[auth.Principal]
	// row is claimed by whoever writes the call's outcome row: the tool
	// handler, or the transport for a call that did not return in time.
	row atomic.Bool
	// answered is claimed by whoever writes the answer.
	answered atomic.Bool
	// intent is the id of the call's write-ahead intent row, once written:
	// the row abandon writes names it.
	intent atomic.Int64
}

type callKey struct{}

// claimOutcomeRow reports whether the tool handler running under ctx may
// write its call's outcome row: false when the stdio transport already wrote
// it for a call that did not return after its cancellation. Outside the
// stdio transport it is always true.
func claimOutcomeRow(ctx context.Context) bool {
	c, ok := ctx.Value(callKey{}).(*call)
	return !ok || c.row.CompareAndSwap(false, true)
}

// noteIntent records the id of the intent row of the call running under ctx
// (stdio transport only), so that a row abandon writes completes it.
func noteIntent(ctx context.Context, id int64) {
	if c, ok := ctx.Value(callKey{}).(*call); ok {
		c.intent.Store(id)
	}
}

// read reads lines until EOF, a read error, an oversized line, or shutdown.
func (l *loop) read(in io.Reader) error {
	br := bufio.NewReaderSize(in, 64<<10)
	for {
		line, err := readLine(br, l.s.cfg.MaxLineBytes)
		if len(line) > 0 && !l.dispatch(line) {
			return nil
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLine returns the next line (a fresh slice, without the newline), or
// ErrLineTooLong once a line grows past max bytes, so a client cannot make
// the server buffer without bound.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		n := len(line) + len(chunk)
		if err == nil {
			n-- // the newline
		}
		if n > max {
			return nil, fmt.Errorf("%w: over %d bytes", ErrLineTooLong, max)
		}
		if line == nil && err == nil {
			return bytes.Clone(chunk[:len(chunk)-1]), nil
		}
		line = append(line, chunk...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == nil:
			return line[:len(line)-1], nil
		default:
			return line, err // the last line may lack its newline
		}
	}
}

// dispatch serves one line; false once shutdown has begun.
func (l *loop) dispatch(line []byte) bool {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return true
	}
	f, err := ParseFrame(line)
	if err != nil {
		l.write(newRPCError(nil, mcp.PARSE_ERROR, "Parse error"))
		return true
	}
	switch f.Kind {
	case KindResponse:
		// An answer to a request the server sent; one to nothing is dropped
		// (JSON-RPC never answers a response).
		l.sess.deliver(&f)
		return true
	case KindNotification:
		// A cancellation reaches a request still queued for a worker too;
		// mcp-go knows only those it is running.
		if f.Method == "notifications/cancelled" && len(f.CancelID) > 0 {
			l.cancelByID(f.CancelID)
		}
		// Notifications (initialized, cancelled) are served in order on the
		// read loop, as mcp-go does: they are short and carry no answer. They
		// reach no tool and change nothing the gate decides.
		if resp := l.s.handle(l.base, &f); resp != nil {
			l.write(resp)
		}
		return true
	}
	c := &call{f: f}
	if !l.admit(c) {
		return false
	}
	if f.Method == "tools/call" {
		l.queue <- c
	} else {
		go l.serve(c)
	}
	return true
}

// admit takes a slot for c (waiting while MaxInFlight requests are out) and
// registers it; false once shutdown has begun.
func (l *loop) admit(c *call) bool {
	select {
	case l.slots <- struct{}{}:
	case <-l.stopping:
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		<-l.slots
		return false
	}
	c.ctx, c.cancel = context.WithCancelCause(l.base)
	l.calls[c] = struct{}{}
	l.byID[string(c.f.ID)] = c
	return true
}

// work serves queued tools/call requests until Listen returns.
func (l *loop) work() {
	for {
		select {
		case c := <-l.queue:
			l.serve(c)
		case <-l.base.Done():
			return
		}
	}
}

// serve runs one request: the gate, then mcp-go. Requests other than
// tools/call run at once on their own goroutine, as in mcp-go's stdio
// transport, so a blocking one (subscriptions/listen) cannot stall the rest.
func (l *loop) serve(c *call) {
	defer l.finish(c)
	defer c.cancel(nil)
	ctx := c.ctx
	if ctx.Err() != nil {
		l.abandon(c, "cancelled before it started: "+context.Cause(ctx).Error())
		return
	}
	p, err := l.s.gate.Authenticate(ctx, &c.f)
	if err == nil && c.f.Method == "tools/call" {
		if err = l.s.core.decideCall(ctx, p, "stdio", c.f.Tool, c.f.Arguments); err != nil {
			logRefusal(ctx, l.s.core.log, &c.f, err)
		} else {
			c.p.Store(p)
		}
	}
	if err != nil {
		c.row.Store(true) // the refusal is the call's row
		l.answer(c, refusal(l.s.core, c.f.ID, err))
		return
	}
	ctx = context.WithValue(auth.WithPrincipal(ctx, p), callKey{}, c)
	if resp := l.s.handle(ctx, &c.f); resp != nil {
		l.answer(c, resp)
	}
}

// refusal maps a gate error to its JSON-RPC answer: the one table of the
// stdio transport. Every auth refusal is -32600 with the refusal's own words
// (what was missing and what to do; never a secret), as mcp-go's
// request-initialization hook answered before; anything else is an internal
// error, logged.
func refusal(c *core, id json.RawMessage, err error) rpcError {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return newRPCError(id, mcp.INVALID_REQUEST, ae.Error())
	}
	c.log.Error("request failed", "err", err)
	return newRPCError(id, mcp.INTERNAL_ERROR, "internal error; see the server log")
}

// handle runs one message through mcp-go, turning a panic outside a tool
// handler (WithRecovery covers those) into an internal error.
func (s *Stdio) handle(ctx context.Context, f *Frame) (resp any) {
	defer func() {
		if r := recover(); r != nil {
			s.core.log.Error("panic in request handling", "method", f.Method)
			if f.Kind == KindRequest {
				resp = newRPCError(f.ID, mcp.INTERNAL_ERROR, "internal error; see the server log")
			}
		}
	}()
	m := s.mcp.HandleMessage(ctx, f.Raw)
	if m == nil {
		return nil
	}
	if f.Kind == KindRequest {
		// mcp-go decodes the id into an any (a float64 for numbers): echo
		// the client's bytes instead, so a large id comes back unrounded.
		id := mcp.NewRequestId(f.ID)
		switch r := m.(type) {
		case mcp.JSONRPCResponse:
			r.ID = id
			return r
		case mcp.JSONRPCError:
			r.ID = id
			return r
		}
	}
	return m
}

// answer writes c's answer unless the transport already answered it.
func (l *loop) answer(c *call, msg any) {
	if c.answered.CompareAndSwap(false, true) {
		l.write(msg)
	}
}

func (l *loop) write(msg any) {
	if err := l.w.write(msg); err != nil {
		// The host closed the pipe: answers are lost, rows are not.
		l.writeFailed.Do(func() {
			l.s.core.log.Warn("cannot write to the host; answers are dropped, calls still audited", "err", err)
		})
	}
}

// finish releases c's slot.
func (l *loop) finish(c *call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.calls[c]; !ok {
		return
	}
	delete(l.calls, c)
	if l.byID[string(c.f.ID)] == c {
		delete(l.byID, string(c.f.ID))
	}
	<-l.slots
	l.checkIdle()
}

// errClientCancelled is the cause of a request the client cancelled. The
// client's reason text is not used: it is the client's words, not ours, and
// would land in the audit log unredacted.
var errClientCancelled = errors.New("cancelled by the client (notifications/cancelled)")

// cancelByID cancels the request in flight with the id the client named.
func (l *loop) cancelByID(id json.RawMessage) {
	var buf bytes.Buffer
	if json.Compact(&buf, id) != nil {
		return
	}
	l.mu.Lock()
	c := l.byID[buf.String()]
	l.mu.Unlock()
	if c != nil {
		c.cancel(errClientCancelled)
	}
}

func (l *loop) checkIdle() {
	if l.stopped && len(l.calls) == 0 && !l.idleSet {
		l.idleSet = true
		close(l.idle)
	}
}

// pump writes the notifications mcp-go queues on the session until stop,
// then what is still queued.
func (l *loop) pump(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case n := <-l.sess.notifications:
			l.write(n)
		case <-stop:
			for {
				select {
				case n := <-l.sess.notifications:
					l.write(n)
				default:
					return
				}
			}
		}
	}
}

// errStreamEnd ends long-lived requests (subscriptions/listen) at shutdown:
// they never finish by themselves.
var errStreamEnd = errors.New("server shutting down")

// shutdown stops admitting requests, waits ShutdownTimeout for those in
// flight, cancels the rest, waits CancelGrace for them to return, and
// answers and records on their behalf those that still have not.
func (l *loop) shutdown(why string, cancelAll context.CancelCauseFunc) error {
	l.mu.Lock()
	l.stopped = true
	close(l.stopping)
	for c := range l.calls {
		if c.f.Method == "subscriptions/listen" {
			c.cancel(errStreamEnd)
		}
	}
	n := len(l.calls)
	l.checkIdle()
	l.mu.Unlock()
	if n > 0 {
		l.s.core.log.Info("stopping: waiting for requests in flight", "reason", why, "in_flight", n, "deadline", l.s.cfg.ShutdownTimeout)
	}
	t := time.NewTimer(l.s.cfg.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-l.idle:
		return nil
	case <-t.C:
	}
	l.mu.Lock()
	n = len(l.calls)
	l.mu.Unlock()
	cause := fmt.Errorf("server shutting down (%s): still running after the %s shutdown deadline", why, l.s.cfg.ShutdownTimeout)
	l.s.core.log.Warn("shutdown deadline: cancelling requests in flight", "in_flight", n, "deadline", l.s.cfg.ShutdownTimeout)
	cancelAll(cause)
	g := time.NewTimer(l.s.cfg.CancelGrace)
	defer g.Stop()
	select {
	case <-l.idle:
	case <-g.C:
		l.mu.Lock()
		left := make([]*call, 0, len(l.calls))
		for c := range l.calls {
			left = append(left, c)
		}
		l.mu.Unlock()
		for _, c := range left {
			l.abandon(c, fmt.Sprintf("%v; did not return within %s of its cancellation", cause, l.s.cfg.CancelGrace))
		}
	}
	return fmt.Errorf("%w: %d request(s) still running after %s", ErrShutdownDeadline, n, l.s.cfg.ShutdownTimeout)
}

// abandon answers c with an error and, for a tools/call, writes its row,
// unless its handler got there first. The handler's goroutine may still be
// running; whatever it produces later is dropped.
func (l *loop) abandon(c *call, reason string) {
	if c.f.Method == "tools/call" && c.row.CompareAndSwap(false, true) {
		p := c.p.Load()
		ev := l.s.core.event(p, "stdio", audit.EventToolsCall)
		ev.Tool, ev.Arguments, ev.Outcome = c.f.Tool, c.f.Arguments, audit.Failed
		ev.IntentID = c.intent.Load() // its write-ahead intent row, if any
		if len(ev.Arguments) == 0 {
			ev.Arguments = json.RawMessage("{}")
		}
		if p != nil {
			ev.Decision, ev.Reason, ev.Outcome = audit.Allow, "allowed; cancelled: "+reason, audit.Cancelled
		} else {
			ev.ClientID, ev.Reason = l.s.cfg.Host.ProfileName(), "not run; cancelled: "+reason
		}
		_ = l.s.core.record(context.Background(), ev)
	}
	l.answer(c, newRPCError(c.f.ID, mcp.REQUEST_INTERRUPTED, "request cancelled: "+reason))
}

// slogWriter sends a log.Logger's output (net/http's) to slog (stderr).
type slogWriter struct {
	l interface{ Warn(string, ...any) }
}

func (w slogWriter) Write(b []byte) (int, error) {
	w.l.Warn("mcp-go", "msg", string(b))
	return len(b), nil
}
