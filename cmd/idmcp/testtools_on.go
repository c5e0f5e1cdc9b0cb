//go:build idmcptest

package main

import (
	"context"
	"encoding/json"
	"os"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/tools"
)

// testTools returns tools that exist only in builds with -tags idmcptest,
// never in the product binary: test_hang, which blocks until its call is
// cancelled (or forever, with ignore_cancel), so tests can stop a server
// with a call in flight. It requires no scope. (The benchmarks' echo tool is
// in -tags benchecho builds, benchtool_on.go.)
func testTools() []tools.Spec {
	return []tools.Spec{{
		Name:        "test_hang",
		Title:       "Hang (test builds only)",
		Description: "Block until the call is cancelled, or forever with ignore_cancel. Creates started_file, when given, once running. Test builds only.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"started_file":{"type":"string"},"ignore_cancel":{"type":"boolean"}},"additionalProperties":false}`),
		ReadOnly:    true,
		Handler: func(ctx context.Context, _ *auth.Principal, raw json.RawMessage) (*tools.Result, error) {
			var a struct {
				StartedFile  string `json:"started_file"`
				IgnoreCancel bool   `json:"ignore_cancel"`
			}
			if err := tools.Decode(raw, &a); err != nil {
				return nil, err
			}
			if a.StartedFile != "" {
				if err := os.WriteFile(a.StartedFile, nil, 0o600); err != nil {
					return nil, err
				}
			}
			if a.IgnoreCancel {
				select {} // a tool stuck in a call that knows no context
			}
			<-ctx.Done()
			return nil, context.Cause(ctx)
		},
	}}
}
