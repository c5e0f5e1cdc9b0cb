package server

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/idmcp/idmcp/auth"
)

// AuthCapability is the experimental client capability that carries a host
// credential: capabilities.experimental["io.idmcp/auth"].token.
const AuthCapability = "io.idmcp/auth"

// FrameKind says what a JSON-RPC message is.
type FrameKind int

const (
	// KindRequest has a method and an id: it gets one answer.
	KindRequest FrameKind = iota + 1
	// KindNotification has no id (or a null one): it gets no answer.
	KindNotification
	// KindResponse has an id, a result or an error, and no method: the
	// client's answer to a request the server sent (sampling, elicitation,
	// roots).
	KindResponse
)

// Frame is one JSON-RPC message as the gate and the transport see it,
// parsed once from the raw line: mcp-go's typed initialize request drops
// _meta, and the gate must run before mcp-go parses anything.
type Frame struct {
	Kind FrameKind
	// ID is the request's id exactly as sent (nil for a notification), so an
	// answer echoes it byte for byte.
	ID     json.RawMessage
	Method string
	// Tool and Arguments are set for tools/call.
	Tool      string
	Arguments json.RawMessage
	// Modern is true for 2026-07-28 requests (protocol version in _meta).
	Modern bool
	// Token is the credential in the request's client capabilities, if any.
	// It is a secret: never log it or put it in an error.
	Token  string
	Client auth.ClientInfo
	// Version is the protocol version in _meta, if any.
	Version string
	// meta is the request's _meta, if any.
	meta *mcp.Meta
	// CancelID is the requestId of a notifications/cancelled.
	CancelID json.RawMessage
	// Result and Error are a response's members (KindResponse only).
	Result json.RawMessage
	Error  *FrameError
	// Raw is the message as received, for mcp-go's HandleMessage.
	Raw json.RawMessage
}

// FrameError is the error member of a JSON-RPC response.
type FrameError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// frame is the name http.go knows the parse by.
type frame = Frame

type wireCaps struct {
	Experimental map[string]json.RawMessage `json:"experimental"`
}

type wireClientInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// wireRequest is what the gate reads of a request's members.
type wireRequest struct {
	Method string `json:"method"`
	Params struct {
		Name         string          `json:"name"`
		Arguments    json.RawMessage `json:"arguments"`
		RequestID    json.RawMessage `json:"requestId"`
		Capabilities *wireCaps       `json:"capabilities"`
		ClientInfo   *wireClientInfo `json:"clientInfo"`
		Meta         json.RawMessage `json:"_meta"`
	} `json:"params"`
}

// wireFrame is a whole message: a request's members and a response's.
type wireFrame struct {
	wireRequest
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *FrameError     `json:"error"`
}

// firstEra is the first protocol version without initialize (2026-07-28).
const firstEra = "2026-07-28"

// ErrNotJSON is returned by ParseFrame for a message that is not JSON at all;
// the answer is a JSON-RPC parse error (-32700) with a null id.
var ErrNotJSON = errors.New("not a JSON value")

// ParseFrame parses one JSON-RPC message once, for the gate and the
// transport. Only a message that is not JSON fails (ErrNotJSON): a member of
// the wrong type leaves its field empty and the rest is still read, so a
// request is gated by what could be read and mcp-go then answers the shape
// error itself.
func ParseFrame(raw []byte) (Frame, error) {
	var w wireFrame
	if err := json.Unmarshal(raw, &w); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || !json.Valid(raw) {
			return Frame{Raw: raw}, ErrNotJSON
		}
	}
	switch {
	case len(w.ID) == 0 || bytes.Equal(w.ID, []byte("null")):
		f := w.frame()
		f.Kind, f.Raw = KindNotification, raw
		return f, nil
	case w.Method == "" && (w.Result != nil || w.Error != nil):
		return Frame{Kind: KindResponse, ID: w.ID, Result: w.Result, Error: w.Error, Raw: raw}, nil
	default:
		f := w.frame()
		f.Kind, f.ID, f.Raw = KindRequest, w.ID, raw
		return f, nil
	}
}

// frame is the gate's view of a decoded request.
func (w *wireRequest) frame() Frame {
	f := Frame{Method: w.Method}
	switch w.Method {
	case "tools/call":
		f.Tool, f.Arguments = w.Params.Name, w.Params.Arguments
	case "notifications/cancelled":
		f.CancelID = w.Params.RequestID
	}
	caps := w.Params.Capabilities
	info := w.Params.ClientInfo
	if len(w.Params.Meta) > 0 {
		// Decoded as mcp-go decodes it (a map, not a struct, whose field
		// names would match keys in any letter case), so that the gate and
		// mcp-go agree on the era of every request.
		var m mcp.Meta
		if json.Unmarshal(w.Params.Meta, &m) == nil {
			f.meta = &m
			f.Version = m.ProtocolVersion()
		}
	}
	// Versions are dates in YYYY-MM-DD form, so they compare as strings.
	f.Modern = f.Version >= firstEra
	if f.Modern {
		caps, info = nil, nil
		if c := f.meta.ClientCapabilities(); c != nil {
			caps = &wireCaps{}
			if t, ok := c.Experimental[AuthCapability]; ok {
				b, _ := json.Marshal(t)
				caps.Experimental = map[string]json.RawMessage{AuthCapability: b}
			}
		}
		if i := f.meta.ClientInfo(); i != nil {
			info = &wireClientInfo{Name: i.Name, Version: i.Version}
		}
	}
	if caps != nil {
		if c, ok := caps.Experimental[AuthCapability]; ok {
			var v struct {
				Token string `json:"token"`
			}
			_ = json.Unmarshal(c, &v)
			f.Token = v.Token
		}
	}
	if info != nil {
		f.Client = clientInfo(info.Name, info.Version)
	}
	return f
}

// parseFrame is ParseFrame for callers that gate whatever could be read.
func parseFrame(raw []byte) frame {
	f, _ := ParseFrame(raw)
	return f
}

func clientInfo(name, version string) auth.ClientInfo {
	return auth.ClientInfo{Name: name, Version: version}
}
