package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/examples/wrapdemo/demoserver"
	"github.com/idmcp/idmcp/store"
)

// wrapDemoArg runs examples/wrapdemo's server (hidden; the demo wraps it
// so that it stays offline and needs no second binary).
const wrapDemoArg = "__wrapdemo"

func cmdWrapDemoServer() error { return demoserver.Run() }

// wrapDemo is the demo's idmcp wrap part: one wrapped server, a call that
// is allowed, one the policy refuses, and one the kernel refuses.
type wrapDemo struct {
	Policy  string         `json:"policy"`
	Listed  []string       `json:"listed"`
	Calls   []wrapDemoCall `json:"calls"`
	Sandbox string         `json:"sandbox"`
}

type wrapDemoCall struct {
	Tool    string `json:"tool"`
	Args    string `json:"args"`
	Outcome string `json:"outcome"`
}

const wrapDemoPolicy = `# idmcp wrap's demo policy: what callers may reach of the wrapped server.
[wrap.tools]
echo = { scopes = ["demo:read"] }
read_file = { scopes = ["demo:read"] }
upgrade = { scopes = ["demo:admin"] }
# crash, connect, calls: not named, so hidden from everyone.

[wrap.sandbox]
read = ["%s"]   # the only folder the server may read beyond the system defaults
`

// runWrapDemo wraps idmcp's own demo server for a host profile with
// demo:read, as a desktop host would launch it, and drives it with the
// mcp-go client.
func runWrapDemo(ctx context.Context, exe, dir string) (*wrapDemo, error) {
	if runtime.GOOS == "windows" {
		return nil, nil // idmcp wrap is not available there yet
	}
	shared := filepath.Join(filepath.Dir(dir), "shared")
	if err := store.EnsureDir(shared); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(shared, "hello.txt"), []byte("a file the policy shares"), 0o600); err != nil {
		return nil, err
	}
	pol := fmt.Sprintf(wrapDemoPolicy, shared)
	polPath := filepath.Join(filepath.Dir(dir), "wrap-policy.toml")
	if err := os.WriteFile(polPath, []byte(pol), 0o600); err != nil {
		return nil, err
	}
	hosts := store.NewHosts(dir)
	unlock, err := lockHosts(ctx, hosts)
	if err != nil {
		return nil, err
	}
	err = hosts.Put(&auth.HostProfile{Name: "wrapper", Scopes: []string{"demo:read"}, Roles: []string{}, Created: time.Now().UTC()})
	unlock()
	if err != nil {
		return nil, err
	}
	secret := auth.NewHostToken()
	tr := transport.NewStdioWithOptions(exe, nil, []string{"wrap", "--profile", "wrapper", "--data-dir", dir, "--policy", polPath, "--no-keyring", "--", exe, wrapDemoArg},
		transport.WithCommandFunc(func(ctx context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
			cmd := exec.CommandContext(ctx, command, args...)
			cmd.Env = []string{"IDMCP_SHARED_SECRET=" + secret, "IDMCP_TOKEN=" + secret, "PATH=" + os.Getenv("PATH")}
			return cmd, nil
		}))
	if err := tr.Start(ctx); err != nil {
		return nil, err
	}
	c := client.NewClient(tr)
	defer c.Close()
	go func() { _, _ = io.Copy(io.Discard, tr.Stderr()) }()
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "idmcp-demo", Version: version}
	if _, err := c.Initialize(ctx, init); err != nil {
		return nil, fmt.Errorf("wrap demo: initialize: %w", err)
	}
	d := &wrapDemo{Policy: pol, Sandbox: "Landlock and seccomp applied by the helper before exec"}
	lt, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, err
	}
	for _, t := range lt.Tools {
		d.Listed = append(d.Listed, t.Name)
	}
	for _, call := range []struct {
		tool string
		args map[string]any
	}{
		{"echo", map[string]any{"message": "hello through idmcp wrap"}},
		{"upgrade", nil},
		{"read_file", map[string]any{"path": filepath.Join(shared, "hello.txt")}},
		{"read_file", map[string]any{"path": filepath.Join(dir, store.AuditDBName)}},
	} {
		req := mcp.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = call.tool, call.args
		res, err := c.CallTool(ctx, req)
		var out string
		switch {
		case err != nil:
			out = "refused by idmcp: " + cleanErr(err)
		case res.IsError:
			out = "tool error from the server: " + resultText(res)
		default:
			out = "ok: " + resultText(res)
		}
		a := ""
		if p, ok := call.args["path"].(string); ok {
			a = p
		}
		d.Calls = append(d.Calls, wrapDemoCall{Tool: call.tool, Args: a, Outcome: out})
	}
	return d, nil
}

// printWrapDemo prints the wrap part of the demo.
func printWrapDemo(w io.Writer, paint func(code, s string) string, d *wrapDemo) {
	if d == nil {
		return
	}
	fmt.Fprintln(w, "\n"+paint("1", "7. Protect a server you already use")+" — `idmcp wrap --profile wrapper --policy wrap-policy.toml -- wrapdemo`")
	for _, line := range strings.Split(strings.TrimSpace(d.Policy), "\n") {
		fmt.Fprintln(w, "  "+line)
	}
	fmt.Fprintf(w, "  the wrapped server has echo, read_file, upgrade, connect, calls, crash; profile wrapper (demo:read) sees: %s\n", strings.Join(d.Listed, ", "))
	for _, c := range d.Calls {
		label := c.Tool
		if c.Args != "" {
			label += " " + c.Args
		}
		color := "32"
		if !strings.HasPrefix(c.Outcome, "ok") {
			color = "31"
		}
		fmt.Fprintf(w, "  %-60s %s\n", label, paint(color, c.Outcome))
	}
}
