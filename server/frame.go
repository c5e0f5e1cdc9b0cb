package server

import (
	"encoding/json"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/idmcp/idmcp/auth"
)

// AuthCapability is the experimental client capability that carries a host
// credential: capabilities.experimental["io.idmcp/auth"].token.
const AuthCapability = "io.idmcp/auth"

// frame is what the gate needs from one JSON-RPC request. It is parsed from
// the raw message because mcp-go's typed initialize request drops _meta and
// the hook runs before mcp-go parses anything.
type frame struct {
	Method string
	// Tool and Arguments are set for tools/call.
	Tool      string
	Arguments json.RawMessage
	// Modern is true for 2026-07-28 requests (protocol version in _meta).
	Modern bool
	// Token is the credential in the request's client capabilities, if any.
	Token  string
	Client auth.ClientInfo
	// Version is the protocol version in _meta, if any.
	Version string
	// meta is the request's _meta, if any.
	meta *mcp.Meta
}

type wireCaps struct {
	Experimental map[string]json.RawMessage `json:"experimental"`
}

type wireClientInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type wireRequest struct {
	Method string `json:"method"`
	Params struct {
		Name         string          `json:"name"`
		Arguments    json.RawMessage `json:"arguments"`
		Capabilities *wireCaps       `json:"capabilities"`
		ClientInfo   *wireClientInfo `json:"clientInfo"`
		Meta         json.RawMessage `json:"_meta"`
	} `json:"params"`
}

// firstEra is the first protocol version without initialize (2026-07-28).
const firstEra = "2026-07-28"

// parseFrame extracts the gate's view of a request. A message that does not
// parse yields a frame with only what could be read; mcp-go then answers the
// parse error itself, after the gate has refused or allowed it.
func parseFrame(raw []byte) frame {
	var w wireRequest
	_ = json.Unmarshal(raw, &w)
	return w.frame()
}

// frame is the gate's view of a decoded request.
func (w *wireRequest) frame() frame {
	f := frame{Method: w.Method}
	if w.Method == "tools/call" {
		f.Tool, f.Arguments = w.Params.Name, w.Params.Arguments
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

func clientInfo(name, version string) auth.ClientInfo {
	return auth.ClientInfo{Name: name, Version: version}
}
