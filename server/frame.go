package server

import (
	"encoding/json"

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
		Meta         struct {
			ProtocolVersion    string          `json:"io.modelcontextprotocol/protocolVersion"`
			ClientCapabilities *wireCaps       `json:"io.modelcontextprotocol/clientCapabilities"`
			ClientInfo         *wireClientInfo `json:"io.modelcontextprotocol/clientInfo"`
		} `json:"_meta"`
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
	f := frame{Method: w.Method}
	if w.Method == "tools/call" {
		f.Tool, f.Arguments = w.Params.Name, w.Params.Arguments
	}
	m := w.Params.Meta
	// Versions are dates in YYYY-MM-DD form, so they compare as strings.
	f.Modern = m.ProtocolVersion >= firstEra
	caps := w.Params.Capabilities
	info := w.Params.ClientInfo
	if f.Modern {
		caps, info = m.ClientCapabilities, m.ClientInfo
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
