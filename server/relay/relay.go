// Package relay is the transport of idmcp wrap: seen from the host it is an
// MCP server on stdio, seen from the wrapped server (the child) it is an MCP
// client. Every message crosses one rule: requests of the host are
// authenticated by the same gate as idmcp serve, tools, prompts and
// resources are decided against the policy's [wrap] rules and audited, ids
// are remapped per direction, and the child's own requests to the host
// (sampling, elicitation, roots) are decided and audited too.
//
// It does not start or confine the child (the caller's Start does, with
// package sandbox), does not parse policy files (package auth) and does not
// write audit rows itself beyond building them (the Auditor does).
package relay

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store/audit"
)

// Gate authenticates one raw request of the host. It returns the caller, or
// the typed *auth.Error to answer with (KindUnauthenticated,
// KindInvalidToken, KindUnavailable), having recorded the refusal.
type Gate interface {
	Check(ctx context.Context, raw json.RawMessage) (*auth.Principal, error)
}

// Auditor commits one audit row; an error means the row is not on disk.
type Auditor interface {
	Append(ctx context.Context, ev audit.Event) error
}

// Process is a started child: its stdio pipes and how to end it.
type Process struct {
	Stdin  io.WriteCloser
	Stdout io.ReadCloser
	// Wait waits for the exit and returns it as os/exec does (nil, or an
	// *exec.ExitError whose String names the code or signal).
	Wait func() error
	// Terminate asks the child to stop (SIGTERM); Kill forces it (SIGKILL).
	Terminate, Kill func() error
	// Pid is for logs and audit rows.
	Pid int
}

// Starter starts the child; attempt counts from 0 (restarts are 1, 2, …).
type Starter func(ctx context.Context, attempt int) (*Process, error)

// Defaults.
const (
	DefaultMaxLineBytes  = 4 << 20
	DefaultChildMaxLine  = 16 << 20
	DefaultInitTimeout   = 30 * time.Second
	DefaultShutdownGrace = 2 * time.Second
	// ChildProtocolVersion is the version the relay asks the child for: the
	// newest with initialize, which every SDK in use speaks.
	ChildProtocolVersion = "2025-11-25"
	// ModernProtocolVersion is the first version without initialize.
	ModernProtocolVersion = "2026-07-28"
)

// Audit event kinds the relay adds to the log's own.
const (
	EventChildStart   = "wrap/child-start"
	EventChildExit    = "wrap/child-exit"
	EventChildRestart = "wrap/child-restart"
	EventPromptsGet   = "prompts/get"
	EventResourceRead = "resources/read"
	// OutcomeStarted marks the intent row written before a call reaches the
	// child; the outcome row follows.
	OutcomeStarted = "started"
)

// Config configures a Relay.
type Config struct {
	Gate    Gate
	Audit   Auditor
	Rules   *auth.WrapPolicy
	Start   Starter
	Logger  *slog.Logger
	Version string
	// Session is the audit session id (the gate's).
	Session string
	// Command names the child in rows and messages (no arguments: they may
	// hold anything).
	Command string
	// Restart is how many times an exited child is started again.
	Restart       int
	MaxLineBytes  int
	InitTimeout   time.Duration
	ShutdownGrace time.Duration
	// Backoff is the wait before restart n (1-based); 250ms·2^(n-1), at most 5s, when nil.
	Backoff func(n int) time.Duration
	Now     func() time.Time
}

// ErrInvalidConfig is wrapped by Config.Validate's errors.
var ErrInvalidConfig = errors.New("invalid relay config")

// Validate checks the required fields.
func (c Config) Validate() error {
	switch {
	case c.Gate == nil:
		return fmt.Errorf("field \"gate\": nil: %w", ErrInvalidConfig)
	case c.Audit == nil:
		return fmt.Errorf("field \"audit\": nil: %w", ErrInvalidConfig)
	case c.Start == nil:
		return fmt.Errorf("field \"start\": nil: %w", ErrInvalidConfig)
	case c.Restart < 0:
		return fmt.Errorf("field \"restart\": negative: %w", ErrInvalidConfig)
	}
	return nil
}

// Relay relays one host session to one child.
type Relay struct {
	cfg   Config
	log   *slog.Logger
	rules *auth.WrapPolicy

	outMu sync.Mutex
	out   io.Writer

	mu       sync.Mutex
	child    *child
	starting chan struct{} // closed when the current start attempt ends
	restarts int
	hostCaps json.RawMessage // what the host declared, for the child's initialize
	dead     error           // set when the session must end
	done     chan struct{}   // closed with dead
	// hostReqs maps the ids the relay used for the child's requests to the
	// host back to the child's ids.
	nextHostID int64
	hostReqs   map[int64]childRequest
	// principal is the caller the gate last let through (one per session).
	principal atomic.Pointer[auth.Principal]
}

type childRequest struct {
	child  *child
	id     json.RawMessage
	method string
	ev     audit.Event
	start  time.Time
}

// New builds a relay.
func New(cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = DefaultMaxLineBytes
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = DefaultInitTimeout
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func(n int) time.Duration {
			return min(250*time.Millisecond<<(n-1), 5*time.Second)
		}
	}
	rules := cfg.Rules
	if rules == nil {
		rules = &auth.WrapPolicy{}
	}
	return &Relay{cfg: cfg, log: cfg.Logger.With("transport", "wrap"), rules: rules, hostReqs: map[int64]childRequest{}, done: make(chan struct{})}, nil
}

// ErrChildGone ends a session whose child exited with no restart left.
var ErrChildGone = errors.New("wrapped server exited")

// Serve relays until the host closes in, ctx ends, or the child is gone for
// good. It then stops the child: stdin closed, SIGTERM after the shutdown
// grace (2 s by default; 200 ms when ctx ended, i.e. idmcp got SIGTERM),
// SIGKILL after as long again.
func (r *Relay) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	r.out = out
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 64<<10), r.cfg.MaxLineBytes)
		for sc.Scan() {
			b := append([]byte(nil), sc.Bytes()...)
			select {
			case lines <- b:
			case <-ctx.Done():
				return
			case <-r.done:
				return
			}
		}
		err := sc.Err()
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("stdin: JSON-RPC line over %d bytes", r.cfg.MaxLineBytes)
		}
		if err == nil {
			err = io.EOF
		}
		readErr <- err
	}()
	var err error
loop:
	for {
		select {
		case line := <-lines:
			r.fromHost(ctx, line)
		case err = <-readErr:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		case <-r.done:
			err = r.dead
			break loop
		}
	}
	r.mu.Lock()
	if r.dead != nil {
		err = r.dead // the child ended the session, whatever the host did next
	}
	r.mu.Unlock()
	grace := r.cfg.ShutdownGrace
	if ctx.Err() != nil {
		// idmcp itself was asked to stop (SIGTERM from the host): the host
		// will not wait long, so neither does the child get long.
		grace = 200 * time.Millisecond
	}
	r.stop(grace)
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// stop ends the current child, if any, and waits for its exit row.
func (r *Relay) stop(grace time.Duration) {
	r.mu.Lock()
	c := r.child
	r.dead = errors.Join(r.dead, errors.New("session ended"))
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	r.mu.Unlock()
	if c != nil {
		c.shutdown(grace)
	}
}

// ---- writing ----

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type wireMsg struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

// JSON-RPC error codes.
const (
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeInternal       = -32603
)

func (r *Relay) toHost(b []byte) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	if _, err := r.out.Write(append(b, '\n')); err != nil {
		r.log.Debug("write to host failed", "err", err)
	}
}

func (r *Relay) hostResult(id, result json.RawMessage) {
	b, _ := json.Marshal(wireMsg{JSONRPC: "2.0", ID: id, Result: result})
	r.toHost(b)
}

func (r *Relay) hostError(id json.RawMessage, code int, msg string) {
	b, _ := json.Marshal(wireMsg{JSONRPC: "2.0", ID: id, Error: &rpcError{Code: code, Message: msg}})
	r.toHost(b)
}

// authCode maps a typed auth error to the JSON-RPC code idmcp serve's stdio
// transport answers with (mcp-go's request hook: -32600, the message
// verbatim); anything else is an internal error with a generic message.
func authCode(err error) (int, string) {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return codeInvalidRequest, ae.Msg
	}
	return codeInternal, "internal error"
}

// ---- audit ----

func (r *Relay) event(p *auth.Principal, kind string) audit.Event {
	ev := audit.Event{Time: r.cfg.Now(), Transport: "stdio", Session: r.cfg.Session, Event: kind}
	if p != nil {
		ev.Subject, ev.ClientID, ev.Actors, ev.AuthMethod = p.Subject, p.ClientID, p.Actors, string(p.Method)
		if p.ClientName != "" {
			ev.ClientName = p.ClientName + "/" + p.ClientVersion
		}
	}
	return ev
}

// record commits ev on a context detached from the request, so that a
// host that goes away does not drop the row.
func (r *Relay) record(ctx context.Context, ev audit.Event) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.cfg.Audit.Append(ctx, ev); err != nil {
		r.log.Error("audit write failed", "event", ev.Event, "err", err)
		return err
	}
	return nil
}

// intentWriter is the audit log's write-ahead intent (audit.Log.Intent):
// it commits the intent row and returns its id, which the outcome row names.
type intentWriter interface {
	Intent(ctx context.Context, ev audit.Event) (int64, error)
}

var _ intentWriter = (*audit.Log)(nil)

// intent commits the row written before a call reaches the child: decision
// allow, outcome started. With the audit log's Intent it returns the row's
// id for the outcome row's IntentID; an Auditor without it (a test's) gets
// the row through Append and 0.
func (r *Relay) intent(ctx context.Context, ev audit.Event) (int64, error) {
	iw, ok := r.cfg.Audit.(intentWriter)
	if !ok {
		ev.Decision, ev.Outcome = audit.Allow, OutcomeStarted
		return 0, r.record(ctx, ev)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	id, err := iw.Intent(ctx, ev)
	if err != nil {
		r.log.Error("audit write failed", "event", ev.Event, "err", err)
	}
	return id, err
}

// outcome commits the row written when the child answered: ok, or error
// for a JSON-RPC error or a tool result with isError, with the result's
// size, hash and the call's duration.
func (r *Relay) outcome(ctx context.Context, ev audit.Event, start time.Time, resp *wireMsg) error {
	ev.Time = r.cfg.Now()
	ev.Decision, ev.Duration = audit.Allow, ev.Time.Sub(start)
	switch {
	case resp == nil:
		ev.Outcome = audit.Failed
	case resp.Error != nil:
		ev.Outcome = audit.Failed
		ev.Reason += "; error from the wrapped server: " + truncate(resp.Error.Message, 200)
	default:
		ev.Outcome = audit.OK
		var res struct {
			IsError bool `json:"isError"`
		}
		if json.Unmarshal(resp.Result, &res) == nil && res.IsError {
			ev.Outcome = audit.Failed
			ev.Reason += "; tool error"
		}
		sum := sha256.Sum256(resp.Result)
		ev.ResultBytes, ev.ResultSHA256 = int64(len(resp.Result)), hex.EncodeToString(sum[:])
	}
	return r.record(ctx, ev)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// idKey is a map key for a JSON-RPC id: numbers and strings never collide.
func idKey(id json.RawMessage) string { return string(id) }

func itoa(n int64) json.RawMessage { return json.RawMessage(strconv.FormatInt(n, 10)) }

// ensureStarted starts the child when none runs, waiting for an attempt in
// progress. It returns the running child or why there is none.
func (r *Relay) ensureStarted(ctx context.Context, p *auth.Principal) (*child, error) {
	for {
		r.mu.Lock()
		if r.dead != nil {
			r.mu.Unlock()
			return nil, r.dead
		}
		if c := r.child; c != nil && !c.exited() {
			r.mu.Unlock()
			return c, nil
		}
		if ch := r.starting; ch != nil {
			r.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		attempt := 0
		if r.child != nil {
			r.restarts++
			attempt = r.restarts
			if attempt > r.cfg.Restart {
				err := fmt.Errorf("%w (%s) and is not restarted: %d restart(s) allowed by [wrap] restart", ErrChildGone, r.child.exitText(), r.cfg.Restart)
				r.dead = err
				close(r.done)
				r.mu.Unlock()
				return nil, err
			}
		}
		ch := make(chan struct{})
		r.starting = ch
		r.mu.Unlock()
		if attempt > 0 {
			wait := r.cfg.Backoff(attempt)
			ev := r.event(p, EventChildRestart)
			ev.Tool, ev.Decision, ev.Reason = r.cfg.Command, audit.Allow, fmt.Sprintf("restart %d of %d after %s", attempt, r.cfg.Restart, wait)
			_ = r.record(ctx, ev)
			time.Sleep(wait)
		}
		c, err := r.startChild(ctx, p, attempt)
		r.mu.Lock()
		r.starting = nil
		if err == nil {
			r.child = c
		} else if attempt == 0 || r.restarts >= r.cfg.Restart {
			r.dead = fmt.Errorf("wrapped server could not be started: %w", err)
			close(r.done)
		}
		r.mu.Unlock()
		close(ch)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// failHost answers a request that could not reach the child.
func (r *Relay) failHost(id json.RawMessage, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	r.hostError(id, codeInternal, err.Error())
}

// stripMeta removes what the host put in _meta for the relay (protocol
// version, client capabilities with the credential, client info) before a
// request goes to the child, which the relay initialized itself.
func stripMeta(params json.RawMessage) json.RawMessage {
	if len(params) == 0 || !strings.Contains(string(params), "io.modelcontextprotocol/") && !strings.Contains(string(params), "io.idmcp/") {
		return params
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(params, &m) != nil {
		return params
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(m["_meta"], &meta) != nil {
		return params
	}
	for k := range meta {
		if strings.HasPrefix(k, "io.modelcontextprotocol/") || strings.HasPrefix(k, "io.idmcp/") {
			delete(meta, k)
		}
	}
	if len(meta) == 0 {
		delete(m, "_meta")
	} else {
		m["_meta"], _ = json.Marshal(meta)
	}
	out, _ := json.Marshal(m)
	return out
}

// nopGate is the gate of a relay that never serves a host (ListTools).
type nopGate struct{}

func (nopGate) Check(context.Context, json.RawMessage) (*auth.Principal, error) {
	return nil, auth.Unauthenticated("no host")
}
