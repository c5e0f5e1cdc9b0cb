package main

import (
	"context"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// TestRun checks that the program's own tools get idmcp's gate, policy and
// audit: tools/list shows what the policy's grant allows, a call without the
// required scope is refused with the scope named, and both land in the log.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	secret := auth.NewHostToken()
	cfg := config{DataDir: t.TempDir(), Profile: "deployer", Policy: "policy.toml", Secret: secret, Token: secret, Human: "alice"}
	toServerR, toServerW := io.Pipe()
	toClientR, toClientW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, toServerR, toClientW) }()
	c := client.NewClient(transport.NewIO(toClientR, toServerW, nil))
	defer func() {
		_ = c.Close()
		_ = toServerW.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("run did not return")
		}
	}()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "example-test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	lt, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range lt.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{"deploy_status", "whoami"}; !slices.Equal(names, want) {
		t.Fatalf("tools/list = %q, want %q", names, want)
	}
	call := func(name string) (*mcp.CallToolResult, error) {
		req := mcp.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = name, map[string]any{"env": "staging"}
		return c.CallTool(ctx, req)
	}
	if res, err := call("deploy_status"); err != nil || res.IsError {
		t.Fatalf("deploy_status: %v %+v", err, res)
	}
	if _, err := call("deploy_rollback"); err == nil || !strings.Contains(err.Error(), `requires scope deploy:write`) {
		t.Fatalf("deploy_rollback: err=%v, want the missing scope named", err)
	}
	r, err := audit.OpenReader(ctx, filepath.Join(cfg.DataDir, store.AuditDBName))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, err := r.Query(ctx, audit.Filter{Event: audit.EventToolsCall})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, row := range rows {
		got = append(got, row.Tool+":"+row.Decision+":"+row.Subject)
	}
	if want := []string{"deploy_status:allow:alice", "deploy_rollback:deny:alice"}; !slices.Equal(got, want) {
		t.Fatalf("audit rows = %q, want %q", got, want)
	}
}
