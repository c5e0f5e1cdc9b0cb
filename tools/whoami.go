package tools

import (
	"context"
	"encoding/json"

	"github.com/idmcp/idmcp/auth"
)

// ServerInfo is the server's own identity, shown by whoami.
type ServerInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Profile is the stdio host profile the server was started for.
	Profile string `json:"profile,omitempty"`
	// SecretSource says where the host secret came from (stdio).
	SecretSource string `json:"secret_source,omitempty"`
	// Sandbox describes what the sandbox enforces.
	Sandbox any `json:"sandbox,omitempty"`
	// DevIssuer is true when tokens come from the embedded development
	// issuer (serve --dev): never a production identity.
	DevIssuer bool `json:"dev_issuer,omitempty"`
}

// WhoamiResult is whoami's structured output.
type WhoamiResult struct {
	Subject       string      `json:"subject"`
	ClientID      string      `json:"client_id"`
	ClientName    string      `json:"client_name,omitempty"`
	ClientVersion string      `json:"client_version,omitempty"`
	Actors        []string    `json:"actors"`
	Scopes        []string    `json:"scopes"`
	Roles         []string    `json:"roles"`
	AuthMethod    auth.Method `json:"auth_method"`
	Transport     string      `json:"transport"`
	Issuer        string      `json:"issuer,omitempty"`
	Server        ServerInfo  `json:"server"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Whoami returns the whoami tool: any authenticated caller may see who the
// server thinks it is.
func Whoami(server func() ServerInfo) Spec {
	return Spec{
		Name:        "whoami",
		Title:       "Who am I",
		Description: "Show who the server thinks is calling: the human (subject), the agent (client id), the delegation chain, scopes, roles, how the caller authenticated, and the server's own identity.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{},"additionalProperties":false}`),
		ReadOnly:    true,
		Idempotent:  true,
		Handler: func(_ context.Context, p *auth.Principal, args json.RawMessage) (*Result, error) {
			if err := Decode(args, &struct{}{}); err != nil {
				return nil, err
			}
			return JSONResult(WhoamiResult{
				Subject: p.Subject, ClientID: p.ClientID, ClientName: p.ClientName, ClientVersion: p.ClientVersion,
				Actors: nonNil(p.Actors), Scopes: nonNil(p.Scopes), Roles: nonNil(p.Roles),
				AuthMethod: p.Method, Transport: p.Transport, Issuer: p.Issuer, Server: server(),
			})
		},
	}
}
