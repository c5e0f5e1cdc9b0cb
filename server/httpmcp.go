package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"unicode"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/idmcp/idmcp/auth"
)

// This file is the Streamable HTTP transport proper, behind the gate of
// serveMCP: what mcp-go v1.2.1's StreamableHTTPServer does for a stateless
// server without a standalone GET stream (WithStateLess, WithDisableStreaming),
// in both protocol eras, driving (*MCPServer).HandleMessage directly. The
// request is parsed once, by the gate (message), where mcp-go's handler parsed
// it three more times, started a goroutine and made four channels per POST.
// Each behaviour below cites the mcp-go function it reproduces
// (server/streamable_http.go, streamable_http_modern.go); the answers are
// byte for byte the same, which httpmcp_internal_test.go checks against a
// StreamableHTTPServer in the same process. Two differences: notifications a
// handler sends reach the client when the handler returns (idmcp's tools send
// none), and a caller's notifications/cancelled reaches only its own calls
// (sessionKey).

// message is one POSTed JSON-RPC message: the gate's frame and the envelope
// mcp-go's handlePost reads, from one decoding of the body.
type message struct {
	body  []byte
	frame frame
	// ok is false when the body is not a JSON object with fields of the
	// right types (mcp-go: "request body is not valid json").
	ok      bool
	JSONRPC string
	Method  string
	ID      json.RawMessage
	Result  json.RawMessage
	Error   json.RawMessage
}

// wireMessage is the wire form of a message.
type wireMessage struct {
	wireRequest
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// parseMessage decodes body once for the gate and the transport.
func parseMessage(body []byte) *message {
	var w wireMessage
	err := json.Unmarshal(body, &w)
	m := &message{body: body, frame: w.wireRequest.frame(), ok: err == nil,
		JSONRPC: w.JSONRPC, Method: w.Method, ID: w.ID, Result: w.Result, Error: w.Error}
	if err != nil {
		// The gate's view has more fields than mcp-go's envelope: a field of
		// the wrong type there (params.name a number, say) is for mcp-go to
		// answer, not a parse error. Decide as handlePost does.
		var env struct {
			ID     json.RawMessage `json:"id"`
			Result json.RawMessage `json:"result,omitempty"`
			Error  json.RawMessage `json:"error,omitempty"`
			Method mcp.MCPMethod   `json:"method,omitempty"`
		}
		if json.Unmarshal(body, &env) == nil {
			m.ok, m.ID, m.Result, m.Error, m.Method = true, env.ID, env.Result, env.Error, string(env.Method)
			var jv struct {
				JSONRPC string `json:"jsonrpc"`
			}
			_ = json.Unmarshal(body, &jv)
			m.JSONRPC = jv.JSONRPC
		}
	}
	return m
}

// httpSession is the ephemeral session of one request (mcp-go's
// streamableHttpSession in stateless mode): nothing outlives the request.
// Notifications a handler sends while the request runs are buffered and the
// answer becomes an SSE stream (idmcp's tools send none; see servePost).
type httpSession struct {
	id      string
	upgrade atomic.Bool

	mu    sync.Mutex
	ch    chan mcp.JSONRPCNotification // made on first use
	info  mcp.Implementation
	caps  mcp.ClientCapabilities
	close bool
}

var (
	_ mcpserver.ClientSession                   = (*httpSession)(nil)
	_ mcpserver.SessionWithClientInfo           = (*httpSession)(nil)
	_ mcpserver.SessionWithStreamableHTTPConfig = (*httpSession)(nil)
)

// httpNotificationBuffer is how many notifications one request may send (mcp-go
// buffers 100 per session; past it, mcp-go drops them and reports to OnError).
const httpNotificationBuffer = 100

func (s *httpSession) SessionID() string { return s.id }
func (s *httpSession) Initialize()       {}
func (s *httpSession) Initialized() bool { return true }

func (s *httpSession) NotificationChannel() chan<- mcp.JSONRPCNotification {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan mcp.JSONRPCNotification, httpNotificationBuffer)
	}
	return s.ch
}

func (s *httpSession) UpgradeToSSEWhenReceiveNotification() { s.upgrade.Store(true) }

func (s *httpSession) GetClientInfo() mcp.Implementation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

func (s *httpSession) SetClientInfo(i mcp.Implementation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info = i
}

func (s *httpSession) GetClientCapabilities() mcp.ClientCapabilities {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caps
}

func (s *httpSession) SetClientCapabilities(c mcp.ClientCapabilities) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.caps = c
}

// pending returns the notifications queued so far.
func (s *httpSession) pending() []mcp.JSONRPCNotification {
	s.mu.Lock()
	ch := s.ch
	s.mu.Unlock()
	if ch == nil {
		return nil
	}
	var out []mcp.JSONRPCNotification
	for {
		select {
		case n := <-ch:
			out = append(out, n)
		default:
			return out
		}
	}
}

// serveTransport answers a request the gate let through (StreamableHTTPServer.ServeHTTP
// without its localhost, CORS and metadata steps, which the gate replaces).
func (h *HTTP) serveTransport(w http.ResponseWriter, r *http.Request, m *message) {
	switch r.Method {
	case http.MethodPost:
		h.servePost(w, r, m)
	case http.MethodGet:
		// handleGet: 2026-07-28 has no GET stream; older eras could have
		// one, but this server does not stream.
		if mcp.IsModernProtocol(r.Header.Get(mcp.HeaderProtocolVersion)) {
			rejectModernSessionMethod(w, http.MethodGet)
			return
		}
		if rejectUnsupportedProtocolVersion(w, r.Header.Get(mcp.HeaderProtocolVersion)) {
			return
		}
		h.core.log.Info("Rejected GET request: streaming is disabled", "session", r.Header.Get(mcpserver.HeaderKeySessionID))
		writeHTTPError(w, "Streaming is disabled on this server", http.StatusMethodNotAllowed)
	case http.MethodDelete:
		// handleDelete: a stateless server has no session to end, and
		// says it did.
		if mcp.IsModernProtocol(r.Header.Get(mcp.HeaderProtocolVersion)) {
			rejectModernSessionMethod(w, http.MethodDelete)
			return
		}
		if rejectUnsupportedProtocolVersion(w, r.Header.Get(mcp.HeaderProtocolVersion)) {
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodHead:
		w.WriteHeader(http.StatusOK)
	default:
		http.NotFound(w, r)
	}
}

// servePost is handlePost for one JSON-RPC message (a batch is not a JSON
// object, so it is a parse error, as in mcp-go).
func (h *HTTP) servePost(w http.ResponseWriter, r *http.Request, m *message) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		writeHTTPError(w, "Invalid content type: must be 'application/json'", http.StatusBadRequest)
		return
	}
	if !m.ok {
		writeRPC(w, h, errorMessage(nil, mcp.PARSE_ERROR, "request body is not valid json"), http.StatusBadRequest)
		return
	}
	isInitialize := m.Method == string(mcp.MethodInitialize)
	headerVersion := r.Header.Get(mcp.HeaderProtocolVersion)
	metaVersion := m.frame.Version
	modern := mcp.IsModernProtocol(metaVersion) || mcp.IsModernProtocol(headerVersion)
	if !modern && !isInitialize && rejectUnsupportedProtocolVersion(w, headerVersion) {
		return
	}

	// A response from the client: to a ping (or empty), accepted; any other
	// answers a server-initiated request, which this server never sends.
	if m.Method == "" && m.ID != nil {
		if isJSONEmpty(m.Result) && isJSONEmpty(m.Error) {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		if m.Result != nil || m.Error != nil {
			h.clientResponse(w, r, m, modern)
			return
		}
	}
	var id any
	if len(m.ID) > 0 {
		_ = json.Unmarshal(m.ID, &id)
	}

	var clientSession string
	if modern {
		if !validateModern(w, h, r, metaVersion, headerVersion, id) {
			return
		}
	} else if !isInitialize {
		// Stateless: any session ID is accepted, none is minted.
		clientSession = r.Header.Get(mcpserver.HeaderKeySessionID)
	}
	session := &httpSession{id: sessionKey(auth.PrincipalFromContext(r.Context()), clientSession)}
	kept := &keptResult{}
	ctx := context.WithValue(h.srv.WithContext(r.Context(), session), keptResultKey{}, kept)
	ctx = mcpserver.WithSupportedProtocolVersions(ctx, mcp.ValidProtocolVersions)

	var response mcp.JSONRPCMessage
	if modern {
		// mcp-go checks the 2026-07-28 headers inside HandleMessage, from
		// request headers in a context key only its own transport can set.
		response = h.checkModernHeaders(ctx, r.Header, m, id)
	}
	if response == nil {
		response = h.srv.HandleMessage(ctx, m.body)
	}
	notes := session.pending()
	if response == nil && len(notes) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if r.Context().Err() != nil {
		return // the client is gone
	}
	if len(notes) > 0 || session.upgrade.Load() {
		// The handler sent notifications: the answer is an SSE stream of
		// them, then the response. mcp-go streams them as they come;
		// here they are written when the handler returns.
		hd := w.Header()
		hd.Set("Content-Type", "text/event-stream")
		hd.Set("Connection", "keep-alive")
		hd.Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		for _, n := range notes {
			_ = writeSSEEvent(w, n)
		}
		if response != nil {
			if err := writeSSEEvent(w, response); err != nil {
				h.core.log.Error("Failed to write final SSE response event", "err", err)
			}
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		return
	}
	status := http.StatusOK
	if e, ok := response.(mcp.JSONRPCError); ok && modern {
		status = jsonrpcStatus(e.Error.Code)
	}
	if b := kept.response(response); b != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(b)
		return
	}
	writeRPC(w, h, response, status)
}

// keptResult is a tool result and its JSON encoding, which the tool handler
// hashed for the audit row (core.handler): the transport sends those bytes
// rather than encoding the result again.
type keptResult struct {
	res  *mcp.CallToolResult
	body []byte
}

type keptResultKey struct{}

// keepResult hands res and its encoding to the transport serving ctx, if it
// takes them.
func keepResult(ctx context.Context, res *mcp.CallToolResult, body []byte) {
	if k, ok := ctx.Value(keptResultKey{}).(*keptResult); ok {
		k.res, k.body = res, body
	}
}

// response is the wire form of resp (what json.Encoder writes) when resp
// answers with the kept result, unchanged since it was encoded; else nil.
func (k *keptResult) response(resp mcp.JSONRPCMessage) []byte {
	r, ok := resp.(mcp.JSONRPCResponse)
	if !ok || k.res == nil || r.JSONRPC != mcp.JSONRPC_VERSION {
		return nil
	}
	if res, ok := r.Result.(*mcp.CallToolResult); !ok || res != k.res {
		return nil
	}
	id, err := json.Marshal(r.ID)
	if err != nil {
		return nil
	}
	b := make([]byte, 0, len(k.body)+len(id)+len(`{"jsonrpc":"2.0","id":,"result":}`)+1)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, k.body...)
	return append(b, "}\n"...)
}

// sessionKey is the ID of a request's ephemeral session, which mcp-go keys
// in-flight requests on for notifications/cancelled (with the JSON-RPC id).
// mcp-go's stateless sessions take the client's Mcp-Session-Id, or none, so
// any caller could cancel another's call by sending the same id (the ids are
// small counters): here the key names the principal, so a caller reaches only
// its own calls. This is the one deliberate difference from mcp-go.
func sessionKey(p *auth.Principal, clientSession string) string {
	if p == nil {
		return clientSession
	}
	return "idmcp\x00" + p.Issuer + "\x00" + p.Subject + "\x00" + clientSession
}

// clientResponse is handleSamplingResponse for a server that never sends a
// request to the client: the answer names what is missing, in mcp-go's words.
func (h *HTTP) clientResponse(w http.ResponseWriter, r *http.Request, m *message, modern bool) {
	if modern {
		var id any
		_ = json.Unmarshal(m.ID, &id)
		writeRPC(w, h, errorMessage(id, mcp.INVALID_REQUEST,
			"client-to-server responses are not supported in protocol version "+mcp.ProtocolVersion20260728+
				": server-initiated requests were replaced by multi round-trip requests"), http.StatusBadRequest)
		return
	}
	sessionID := r.Header.Get(mcpserver.HeaderKeySessionID)
	if sessionID == "" {
		writeHTTPError(w, "Missing session ID for sampling response", http.StatusBadRequest)
		return
	}
	var n int64
	if err := json.Unmarshal(m.ID, &n); err != nil {
		writeHTTPError(w, "Invalid request ID in sampling response", http.StatusBadRequest)
		return
	}
	writeHTTPError(w, "No active session found for the given session ID", http.StatusNotFound)
}

// validateModern is validateModernRequest: a 2026-07-28 POST states its
// version in the header and in _meta, the same one, and one this server serves.
func validateModern(w http.ResponseWriter, h *HTTP, r *http.Request, metaVersion, headerVersion string, id any) bool {
	fail := func(code int, msg string) bool {
		writeRPC(w, h, errorMessage(id, code, msg), http.StatusBadRequest)
		return false
	}
	switch {
	case r.Header.Get(mcp.HeaderLastEventID) != "":
		return fail(mcp.HEADER_MISMATCH, "Last-Event-ID is not supported in protocol version "+mcp.ProtocolVersion20260728+
			": streams are not resumable, re-issue the request with a new ID")
	case headerVersion == "":
		return fail(mcp.HEADER_MISMATCH, mcp.HeaderProtocolVersion+" header is required for requests carrying "+mcp.MetaKeyProtocolVersion)
	case metaVersion == "":
		return fail(mcp.INVALID_PARAMS, "missing or invalid _meta field "+mcp.MetaKeyProtocolVersion)
	case headerVersion != metaVersion:
		return fail(mcp.HEADER_MISMATCH, mcp.HeaderProtocolVersion+" header "+headerVersion+" does not match request "+
			mcp.MetaKeyProtocolVersion+" "+metaVersion)
	case !mcp.IsValidProtocolVersion(metaVersion):
		resp := mcp.UnsupportedProtocolVersionError{Version: metaVersion, Supported: slices.Clone(mcp.ValidProtocolVersions)}.JSONRPCError()
		resp.ID = mcp.NewRequestId(id)
		writeRPC(w, h, resp, http.StatusBadRequest)
		return false
	}
	return true
}

// checkModernHeaders is what HandleMessage checks of a 2026-07-28 request's
// headers (validateStandardHeadersForMessage: Mcp-Method, Mcp-Name and the
// tool's Mcp-Param-* headers against the body), at the point HandleMessage
// would: only for a request it would get that far with (JSON-RPC 2.0, an id,
// no result, valid client capabilities). It returns the error response, or
// nil.
func (h *HTTP) checkModernHeaders(ctx context.Context, hdr http.Header, m *message, id any) mcp.JSONRPCMessage {
	if r := bytes.TrimSpace(m.Result); m.JSONRPC != mcp.JSONRPC_VERSION || id == nil || (len(r) > 0 && string(r) != "null") {
		return nil
	}
	if m.frame.meta.ClientCapabilities() == nil {
		return nil // HandleMessage answers: missing or invalid capabilities
	}
	var wrapper struct {
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(m.body, &wrapper) != nil {
		return nil
	}
	err := mcp.ValidateStandardHeaders(hdr.Get, m.frame.Version, mcp.MCPMethod(m.Method), wrapper.Params)
	if err == nil && m.Method == string(mcp.MethodToolsCall) {
		var call struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(wrapper.Params, &call) == nil && call.Name != "" {
			if t := h.srv.GetTool(call.Name); t != nil {
				err = mcp.ValidateParamHeadersLookup(func(name string) (string, bool) {
					v := hdr.Values(name)
					if len(v) == 0 {
						return "", false
					}
					return v[0], true
				}, &t.Tool, wrapper.Params)
			}
		}
	}
	if err == nil {
		return nil
	}
	var mismatch mcp.HeaderMismatchError
	if errors.As(err, &mismatch) {
		return errorMessage(id, mcp.HEADER_MISMATCH, mismatch.Error())
	}
	return errorMessage(id, mcp.INVALID_PARAMS, err.Error())
}

// errorMessage is mcp-go's createErrorResponse.
func errorMessage(id any, code int, msg string) mcp.JSONRPCError {
	return mcp.JSONRPCError{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(id), Error: mcp.NewJSONRPCErrorDetails(code, msg, nil)}
}

// jsonrpcStatus is httpStatusForJSONRPCError: the HTTP status of a JSON-RPC
// error in 2026-07-28.
func jsonrpcStatus(code int) int {
	switch code {
	case mcp.METHOD_NOT_FOUND:
		return http.StatusNotFound
	case mcp.HEADER_MISMATCH, mcp.MISSING_REQUIRED_CLIENT_CAPABILITY, mcp.UNSUPPORTED_PROTOCOL_VERSION,
		mcp.INVALID_REQUEST, mcp.INVALID_PARAMS, mcp.PARSE_ERROR:
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// writeRPC writes one JSON-RPC message as application/json.
func writeRPC(w http.ResponseWriter, h *HTTP, msg any, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(msg); err != nil {
		h.core.log.Error("Failed to write response", "err", err)
	}
}

// writeSSEEvent writes one SSE event carrying msg.
func writeSSEEvent(w io.Writer, msg any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("failed to marshal data: %w", err)
	}
	_, err = fmt.Fprintf(w, "event: message\ndata: %s\n\n", b)
	return err
}

// writeHTTPError is mcp-go's plain-text error (like http.Error).
func writeHTTPError(w http.ResponseWriter, msg string, code int) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// rejectModernSessionMethod answers GET or DELETE from a 2026-07-28 client.
func rejectModernSessionMethod(w http.ResponseWriter, verb string) {
	w.Header().Set("Allow", http.MethodPost)
	writeHTTPError(w, verb+" is not supported in protocol version "+mcp.ProtocolVersion20260728+
		": server-to-client messages use subscriptions/listen", http.StatusMethodNotAllowed)
}

// rejectUnsupportedProtocolVersion answers 400 to an Mcp-Protocol-Version
// mcp-go does not know (a missing header is accepted: 2025-03-26 clients do
// not send it).
func rejectUnsupportedProtocolVersion(w http.ResponseWriter, version string) bool {
	if version == "" || mcp.IsValidProtocolVersion(version) {
		return false
	}
	writeHTTPError(w, "Unsupported protocol version: "+version, http.StatusBadRequest)
	return true
}

// isJSONEmpty is mcp-go's: absent, whitespace, {}, [] or null.
func isJSONEmpty(data json.RawMessage) bool {
	t := bytes.TrimSpace(data)
	if len(t) == 0 {
		return true
	}
	switch t[0] {
	case '{', '[':
		closer := byte('}')
		if t[0] == '[' {
			closer = ']'
		}
		for i := 1; i < len(t); i++ {
			if !unicode.IsSpace(rune(t[i])) {
				return t[i] == closer
			}
		}
	case 'n':
		return string(t) == "null"
	}
	return false
}
