package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store/audit"
)

// child is one run of the wrapped server and the relay's client session
// with it. Ids of requests to it are the relay's own (integers), mapped
// back to the host's in pending.
type child struct {
	r    *Relay
	proc *Process

	wmu sync.Mutex // serialises writes to proc.Stdin

	mu      sync.Mutex
	nextID  int64
	pending map[int64]*pending
	byHost  map[string]int64 // host id → relay id, for cancellation
	gone    bool

	initResult json.RawMessage
	exitedCh   chan struct{}
	exitErr    error
}

// pending is a request the child has not answered. done runs once, with
// the response, or with nil when the child exited first.
type pending struct {
	hostID json.RawMessage
	done   func(resp *wireMsg)
}

func (c *child) exited() bool {
	select {
	case <-c.exitedCh:
		return true
	default:
		return false
	}
}

// exitText names how the child ended: "exit status 1", "signal: killed".
func (c *child) exitText() string {
	if c.exitErr == nil {
		return "exit status 0"
	}
	return c.exitErr.Error()
}

func (c *child) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.proc.Stdin.Write(append(b, '\n'))
	return err
}

// send writes a request with a fresh relay id; done gets the answer.
func (c *child) send(method string, params json.RawMessage, hostID json.RawMessage, done func(*wireMsg)) error {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return fmt.Errorf("%w (%s)", ErrChildGone, c.exitText())
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = &pending{hostID: hostID, done: done}
	if hostID != nil {
		c.byHost[idKey(hostID)] = id
	}
	c.mu.Unlock()
	b, _ := json.Marshal(wireMsg{JSONRPC: "2.0", ID: itoa(id), Method: method, Params: params})
	if err := c.write(b); err != nil {
		c.take(id)
		return fmt.Errorf("writing to the wrapped server: %w", err)
	}
	return nil
}

// take removes and returns the pending request id.
func (c *child) take(id int64) *pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[id]
	delete(c.pending, id)
	if p != nil && p.hostID != nil {
		delete(c.byHost, idKey(p.hostID))
	}
	return p
}

// startChild starts and initializes a child: its own initialize, with the
// capabilities the host declared that the policy lets through.
func (r *Relay) startChild(ctx context.Context, p *auth.Principal, attempt int) (*child, error) {
	proc, err := r.cfg.Start(ctx, attempt)
	if err != nil {
		ev := r.event(p, EventChildStart)
		ev.Tool, ev.Decision, ev.Outcome, ev.Reason = r.cfg.Command, audit.Allow, audit.Failed, "start failed: "+err.Error()
		_ = r.record(ctx, ev)
		return nil, err
	}
	c := &child{r: r, proc: proc, pending: map[int64]*pending{}, byHost: map[string]int64{}, exitedCh: make(chan struct{})}
	go c.readLoop(p)
	ev := r.event(p, EventChildStart)
	ev.Tool, ev.Decision, ev.Outcome, ev.Reason = r.cfg.Command, audit.Allow, audit.OK, fmt.Sprintf("pid %d, attempt %d", proc.Pid, attempt)
	if err := r.record(ctx, ev); err != nil {
		c.kill()
		return nil, fmt.Errorf("audit log unavailable; the wrapped server was not started")
	}

	r.mu.Lock()
	caps := r.childCaps()
	r.mu.Unlock()
	params, _ := json.Marshal(map[string]any{
		"protocolVersion": ChildProtocolVersion,
		"capabilities":    caps,
		"clientInfo":      map[string]string{"name": "idmcp-wrap", "version": r.cfg.Version},
	})
	resp := make(chan *wireMsg, 1)
	if err := c.send("initialize", params, nil, func(m *wireMsg) { resp <- m }); err != nil {
		c.kill()
		return nil, err
	}
	t := time.NewTimer(r.cfg.InitTimeout)
	defer t.Stop()
	select {
	case m := <-resp:
		if m == nil {
			<-c.exitedCh
			return nil, fmt.Errorf("%w during initialize (%s)", ErrChildGone, c.exitText())
		}
		if m.Error != nil {
			c.kill()
			return nil, fmt.Errorf("the wrapped server refused initialize: %s", truncate(m.Error.Message, 200))
		}
		c.initResult = m.Result
	case <-t.C:
		c.kill()
		return nil, fmt.Errorf("the wrapped server did not answer initialize within %s", r.cfg.InitTimeout)
	case <-ctx.Done():
		c.kill()
		return nil, ctx.Err()
	}
	b, _ := json.Marshal(wireMsg{JSONRPC: "2.0", Method: "notifications/initialized"})
	if err := c.write(b); err != nil {
		c.kill()
		return nil, err
	}
	r.log.Info("wrapped server initialized", "pid", proc.Pid, "attempt", attempt)
	return c, nil
}

// childCaps is what the relay declares to the child: the host's
// capabilities without idmcp's credential, and without sampling,
// elicitation or roots unless the policy allows them (so the child never
// believes it can ask for what will be refused). Call with r.mu held.
func (r *Relay) childCaps() map[string]json.RawMessage {
	caps := map[string]json.RawMessage{}
	_ = json.Unmarshal(r.hostCaps, &caps)
	delete(caps, "experimental")
	if !r.rules.AllowSampling {
		delete(caps, "sampling")
	}
	if !r.rules.AllowElicitation {
		delete(caps, "elicitation")
	}
	if !r.rules.AllowRoots {
		delete(caps, "roots")
	}
	return caps
}

// readLoop reads the child's stdout until it closes, then records the exit.
func (c *child) readLoop(p *auth.Principal) {
	r := c.r
	sc := bufio.NewScanner(c.proc.Stdout)
	sc.Buffer(make([]byte, 0, 64<<10), DefaultChildMaxLine)
	for sc.Scan() {
		line := sc.Bytes()
		var m wireMsg
		if err := json.Unmarshal(line, &m); err != nil {
			r.log.Warn("wrapped server wrote a line that is not JSON-RPC; dropped", "bytes", len(line))
			continue
		}
		switch {
		case m.Method != "" && m.ID != nil:
			r.childRequest(c, &m)
		case m.Method != "":
			r.childNotification(c, &m, append([]byte(nil), line...))
		case m.ID != nil:
			n, err := strconv.ParseInt(string(m.ID), 10, 64)
			if err != nil {
				continue
			}
			if pd := c.take(n); pd != nil {
				pd.done(&m)
			}
		}
	}
	if err := sc.Err(); err != nil {
		r.log.Warn("reading the wrapped server", "err", err)
		_ = c.proc.Kill()
	}
	c.exitErr = c.proc.Wait()
	c.mu.Lock()
	c.gone = true
	left := c.pending
	c.pending, c.byHost = map[int64]*pending{}, map[string]int64{}
	c.mu.Unlock()

	ev := r.event(p, EventChildExit)
	ev.Tool, ev.Decision, ev.Reason = r.cfg.Command, audit.Allow, fmt.Sprintf("pid %d: %s; %d request(s) in flight", c.proc.Pid, c.exitText(), len(left))
	ev.Outcome = audit.OK
	if c.exitErr != nil {
		ev.Outcome = audit.Failed
	}
	_ = r.record(context.Background(), ev)
	close(c.exitedCh) // after the row: shutdown waits for it
	r.log.Info("wrapped server exited", "pid", c.proc.Pid, "status", c.exitText(), "in_flight", len(left))
	r.mu.Lock()
	if r.child == c && r.dead == nil && r.restarts >= r.cfg.Restart {
		r.dead = fmt.Errorf("%w (%s)", ErrChildGone, c.exitText())
		if r.cfg.Restart > 0 {
			r.dead = fmt.Errorf("%w (%s) after %d restart(s)", ErrChildGone, c.exitText(), r.restarts)
		}
		close(r.done)
	}
	r.mu.Unlock()
	for _, pd := range left {
		pd.done(nil)
	}
}

// kill ends a child that failed to start properly.
func (c *child) kill() {
	_ = c.proc.Stdin.Close()
	_ = c.proc.Kill()
	<-c.exitedCh
}

// shutdown closes the child's stdin, then sends SIGTERM after grace and
// SIGKILL after as long again (MCP stdio transport, "Shutdown").
func (c *child) shutdown(grace time.Duration) {
	_ = c.proc.Stdin.Close()
	select {
	case <-c.exitedCh:
		return
	case <-time.After(grace):
	}
	if err := c.proc.Terminate(); err != nil {
		c.r.log.Warn("SIGTERM to the wrapped server failed", "err", err)
	}
	select {
	case <-c.exitedCh:
		return
	case <-time.After(grace):
	}
	if err := c.proc.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.r.log.Warn("SIGKILL to the wrapped server failed", "err", err)
	}
	select {
	case <-c.exitedCh:
	case <-time.After(5 * time.Second):
	}
}
