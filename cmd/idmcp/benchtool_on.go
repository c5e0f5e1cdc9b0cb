//go:build benchecho

package main

import (
	"context"
	"encoding/json"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/tools"
)

// benchEchoScope is what the echo tool requires, so that a benchmark pays
// for the scope check as a real tool call does.
const benchEchoScope = "bench:echo"

// benchTools returns the echo tool that scripts/bench compares with a bare
// mcp-go server serving the same tool. It exists only in builds with
// -tags benchecho, never in the shipped tool list.
func benchTools() []tools.Spec {
	return []tools.Spec{{
		Name:        "echo",
		Title:       "Echo (benchmark builds only)",
		Description: "Returns its message.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]}`),
		Scopes:      []string{benchEchoScope},
		ReadOnly:    true,
		Idempotent:  true,
		Handler: func(_ context.Context, _ *auth.Principal, args json.RawMessage) (*tools.Result, error) {
			var in struct {
				Message string `json:"message"`
			}
			if err := tools.Decode(args, &in); err != nil {
				return nil, err
			}
			return &tools.Result{Text: in.Message}, nil
		},
	}}
}
