package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// BenchmarkWrap_Echo is sequential tools/call round trips of a bare Go echo
// server (examples/wrapdemo), called directly over pipes and through
// `idmcp wrap` (gate, policy, intent and outcome rows, id remapping, the
// confined child), in the same run. scripts/wrap/bench prints the ratio.
func BenchmarkWrap_Echo(b *testing.B) {
	bin := wrapdemo(b)
	run := func(b *testing.B, c *client.Client) {
		req := mcp.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = "echo", map[string]any{"message": "ping"}
		ctx := context.Background()
		b.ResetTimer()
		for b.Loop() {
			if _, err := c.CallTool(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		tr := transport.NewStdio(bin, nil)
		c := client.NewClient(tr)
		ctx := context.Background()
		if err := c.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		init := mcp.InitializeRequest{}
		init.Params.ProtocolVersion = "2025-11-25"
		if _, err := c.Initialize(ctx, init); err != nil {
			b.Fatal(err)
		}
		run(b, c)
	})
	for _, sync := range []string{"full", "normal"} {
		b.Run("wrapped/audit-sync="+sync, func(b *testing.B) {
			dataDir := b.TempDir()
			tok := addSharedProfileTB(b, dataDir, "host", "demo:read")
			pol := writePolicyTB(b, wrapdemoPolicy(""))
			env := cleanEnv("IDMCP_SHARED_SECRET="+tok, "IDMCP_TOKEN="+tok)
			tr := transport.NewStdioWithOptions(binPath, nil, []string{"wrap", "--data-dir", dataDir, "--profile", "host", "--audit-sync", sync, "--log-level", "warn", "--policy", pol, "--", bin},
				transport.WithCommandFunc(func(ctx context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
					cmd := exec.CommandContext(ctx, command, args...)
					cmd.Env = env
					return cmd, nil
				}))
			c := client.NewClient(tr, client.WithLegacyProtocolOnly())
			ctx := context.Background()
			if err := c.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
				b.Fatal(err)
			}
			run(b, c)
		})
	}
}

func addSharedProfileTB(tb testing.TB, dataDir, name, scopes string) string {
	tb.Helper()
	return tokenFromHostAdd(tb, mustIdmcp(tb, nil, "host", "add", name, "--no-keyring", "--data-dir", dataDir, "--scopes", scopes))
}

func writePolicyTB(tb testing.TB, doc string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "policy.toml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}
