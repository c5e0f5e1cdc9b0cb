package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
)

// lineWriter writes one JSON-RPC message per line to the protocol channel:
// each message is encoded into a pooled buffer and goes out in one Write
// under the mutex, so concurrent answers, notifications and server-initiated
// requests never interleave. After a write fails (the host closed the pipe)
// every later write fails at once with the same error.
type lineWriter struct {
	mu  sync.Mutex
	out io.Writer
	err error
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (w *lineWriter) write(msg any) error {
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 {
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	buf.Reset()
	// Encode appends the newline that ends the message.
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(msg); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if _, err := w.out.Write(buf.Bytes()); err != nil {
		w.err = fmt.Errorf("stdout: %w", err)
		return w.err
	}
	return nil
}

// rpcError is a JSON-RPC error answer the transport writes itself; the id is
// echoed exactly as the client sent it.
type rpcError struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   rpcErrorBody    `json:"error"`
}

type rpcErrorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func newRPCError(id json.RawMessage, code int, msg string) rpcError {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	return rpcError{JSONRPC: mcp.JSONRPC_VERSION, ID: id, Error: rpcErrorBody{Code: code, Message: msg}}
}

// stdioSession is the one client session of a stdio server, as mcp-go's own
// stdio transport implements it: notifications, log level, client info and
// protocol version, and the server-initiated requests of the 2025 era
// (sampling, elicitation, roots) whose answers the read loop routes back.
type stdioSession struct {
	w             *lineWriter
	notifications chan mcp.JSONRPCNotification
	initialized   atomic.Bool
	logLevel      atomic.Value // mcp.LoggingLevel
	clientInfo    atomic.Value // mcp.Implementation
	clientCaps    atomic.Value // mcp.ClientCapabilities
	version       atomic.Value // string

	nextID  atomic.Int64
	mu      sync.Mutex
	pending map[int64]chan *frameResponse
}

// frameResponse is the client's answer to a server-initiated request.
type frameResponse struct {
	Result json.RawMessage
	Error  *FrameError
}

var (
	_ mcpserver.ClientSession              = (*stdioSession)(nil)
	_ mcpserver.SessionWithLogging         = (*stdioSession)(nil)
	_ mcpserver.SessionWithClientInfo      = (*stdioSession)(nil)
	_ mcpserver.SessionWithProtocolVersion = (*stdioSession)(nil)
	_ mcpserver.SessionWithSampling        = (*stdioSession)(nil)
	_ mcpserver.SessionWithElicitation     = (*stdioSession)(nil)
	_ mcpserver.SessionWithRoots           = (*stdioSession)(nil)
)

// stdioNotificationBuffer is how many notifications may wait for the writer;
// mcp-go drops (and reports) one that does not fit.
const stdioNotificationBuffer = 100

func newStdioSession(w *lineWriter) *stdioSession {
	return &stdioSession{w: w, notifications: make(chan mcp.JSONRPCNotification, stdioNotificationBuffer), pending: map[int64]chan *frameResponse{}}
}

func (s *stdioSession) SessionID() string { return "stdio" }

func (s *stdioSession) NotificationChannel() chan<- mcp.JSONRPCNotification {
	return s.notifications
}

func (s *stdioSession) Initialize() {
	s.logLevel.Store(mcp.LoggingLevelError)
	s.initialized.Store(true)
}

func (s *stdioSession) Initialized() bool { return s.initialized.Load() }

func (s *stdioSession) SetLogLevel(level mcp.LoggingLevel) { s.logLevel.Store(level) }

func (s *stdioSession) GetLogLevel() mcp.LoggingLevel {
	if l, ok := s.logLevel.Load().(mcp.LoggingLevel); ok {
		return l
	}
	return mcp.LoggingLevelError
}

func (s *stdioSession) GetClientInfo() mcp.Implementation {
	v, _ := s.clientInfo.Load().(mcp.Implementation)
	return v
}

func (s *stdioSession) SetClientInfo(v mcp.Implementation) { s.clientInfo.Store(v) }

func (s *stdioSession) GetClientCapabilities() mcp.ClientCapabilities {
	v, _ := s.clientCaps.Load().(mcp.ClientCapabilities)
	return v
}

func (s *stdioSession) SetClientCapabilities(v mcp.ClientCapabilities) { s.clientCaps.Store(v) }

func (s *stdioSession) ProtocolVersion() string {
	v, _ := s.version.Load().(string)
	return v
}

// SetProtocolVersion records the version negotiated at initialize (mcp-go
// calls it through an unexported interface).
func (s *stdioSession) SetProtocolVersion(v string) { s.version.Store(v) }

// errSessionClosed answers server-initiated requests still waiting when the
// session ends.
var errSessionClosed = errors.New("stdio session closed")

// request sends a server-initiated request and waits for the client's answer
// (or ctx).
func (s *stdioSession) request(ctx context.Context, method mcp.MCPMethod, params any) (json.RawMessage, error) {
	id := s.nextID.Add(1)
	ch := make(chan *frameResponse, 1)
	s.mu.Lock()
	if s.pending == nil {
		s.mu.Unlock()
		return nil, errSessionClosed
	}
	s.pending[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	msg := struct {
		JSONRPC string `json:"jsonrpc"`
		ID      int64  `json:"id"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
	}{mcp.JSONRPC_VERSION, id, string(method), params}
	if err := s.w.write(msg); err != nil {
		return nil, fmt.Errorf("send %s: %w", method, err)
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r == nil {
			return nil, errSessionClosed
		}
		if r.Error != nil {
			return nil, fmt.Errorf("%s request failed: %s", method, r.Error.Message)
		}
		return r.Result, nil
	}
}

// deliver routes a response from the client to the request waiting for it;
// false when none is (mcp-go ignores such responses too).
func (s *stdioSession) deliver(f *Frame) bool {
	id, err := strconv.ParseInt(string(f.ID), 10, 64)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.pending[id]
	if ok {
		select {
		case ch <- &frameResponse{Result: f.Result, Error: f.Error}:
		default: // a second answer to the same id is dropped
		}
	}
	return ok
}

// close fails every server-initiated request still waiting.
func (s *stdioSession) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ch := range s.pending {
		close(ch)
		delete(s.pending, id)
	}
	s.pending = nil
}

func (s *stdioSession) RequestSampling(ctx context.Context, req mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	raw, err := s.request(ctx, mcp.MethodSamplingCreateMessage, req.CreateMessageParams)
	if err != nil {
		return nil, err
	}
	var res mcp.CreateMessageResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("sampling response: %w", err)
	}
	content, err := mcp.ParseSamplingContent(res.Content)
	if err != nil {
		return nil, fmt.Errorf("sampling response content: %w", err)
	}
	res.Content = content
	return &res, nil
}

func (s *stdioSession) RequestElicitation(ctx context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	raw, err := s.request(ctx, mcp.MethodElicitationCreate, req.Params)
	if err != nil {
		return nil, err
	}
	var res mcp.ElicitationResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("elicitation response: %w", err)
	}
	return &res, nil
}

func (s *stdioSession) ListRoots(ctx context.Context, _ mcp.ListRootsRequest) (*mcp.ListRootsResult, error) {
	raw, err := s.request(ctx, mcp.MethodListRoots, nil)
	if err != nil {
		return nil, err
	}
	var res mcp.ListRootsResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("roots response: %w", err)
	}
	return &res, nil
}
