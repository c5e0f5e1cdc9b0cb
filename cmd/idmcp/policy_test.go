package main_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// writePolicy writes doc to a policy file in a temp dir and returns its path.
func writePolicy(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// policyClient starts `idmcp serve --profile profile` with extra serve args
// and returns an initialized mcp-go client over the process's pipes.
func policyClient(t *testing.T, dataDir, profile, secret string, args ...string) *client.Client {
	t.Helper()
	env := cleanEnv("IDMCP_SHARED_SECRET="+secret, "IDMCP_TOKEN="+secret)
	argv := append([]string{"serve", "--profile", profile, "--data-dir", dataDir, "--log-level", "warn"}, args...)
	tr := transport.NewStdioWithOptions(binPath, nil, argv,
		transport.WithCommandFunc(func(ctx context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
			cmd := exec.CommandContext(ctx, command, args...)
			cmd.Env = env
			return cmd, nil
		}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr)
	t.Cleanup(func() { _ = c.Close() })
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "policy-test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return c
}

// policyOutcome calls tool and returns "allowed" or the server's denial.
func policyOutcome(t *testing.T, c *client.Client, tool string, args map[string]any) (string, *mcp.CallToolResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = tool, args
	res, err := c.CallTool(ctx, req)
	if err != nil {
		return err.Error(), nil
	}
	return "allowed", res
}

// TestPolicy_OverrideEndToEnd runs the built binary three times for the same
// host profile (todo:read todo:write, no role): without a policy, with a
// policy that disables todo_delete and makes todo_create need the role
// "editor", and with the same policy granting the profile that role.
func TestPolicy_OverrideEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	secret := addSharedProfile(t, dataDir, "laptop", "todo:read todo:write", "")
	const restrict = `
[tools]
enabled = ["whoami", "todo_list", "todo_create"]

[tools.override.todo_create]
roles = ["editor"]
`
	create := map[string]any{"title": "written under a policy"}

	t.Run("NoPolicy", func(t *testing.T) {
		c := policyClient(t, dataDir, "laptop", secret)
		// audit_query needs audit:read and todo_delete the admin role, which
		// laptop lacks; the files tools need --workspace.
		if got, want := listToolNames(t, c), []string{"todo_complete", "todo_create", "todo_list", "whoami"}; !slices.Equal(got, want) {
			t.Fatalf("tools/list = %q, want %q", got, want)
		}
		if got, _ := policyOutcome(t, c, "todo_create", create); got != "allowed" {
			t.Fatalf("todo_create: %s", got)
		}
		if got, _ := policyOutcome(t, c, "todo_delete", map[string]any{"id": 1}); !strings.Contains(got, `forbidden: tool "todo_delete" requires role admin`) {
			t.Fatalf("todo_delete: %s", got)
		}
	})

	t.Run("Restrict", func(t *testing.T) {
		c := policyClient(t, dataDir, "laptop", secret, "--policy", writePolicy(t, restrict))
		if got, want := listToolNames(t, c), []string{"todo_list", "whoami"}; !slices.Equal(got, want) {
			t.Fatalf("tools/list = %q, want %q", got, want)
		}
		if got, _ := policyOutcome(t, c, "todo_create", create); !strings.Contains(got, `forbidden: tool "todo_create" requires role editor`) {
			t.Fatalf("todo_create: %s, want the override's role", got)
		}
		if got, _ := policyOutcome(t, c, "todo_delete", map[string]any{"id": 1}); !strings.Contains(got, "tool not found") {
			t.Fatalf("todo_delete: %s, want not found (disabled)", got)
		}
	})

	t.Run("RestrictAndGrant", func(t *testing.T) {
		doc := restrict + "\n[hosts.laptop]\nroles = [\"editor\"]\n"
		c := policyClient(t, dataDir, "laptop", secret, "--policy", writePolicy(t, doc))
		if got, want := listToolNames(t, c), []string{"todo_create", "todo_list", "whoami"}; !slices.Equal(got, want) {
			t.Fatalf("tools/list = %q, want %q", got, want)
		}
		got, res := policyOutcome(t, c, "whoami", nil)
		if got != "allowed" {
			t.Fatalf("whoami: %s", got)
		}
		var who struct {
			Scopes []string `json:"scopes"`
			Roles  []string `json:"roles"`
		}
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, &who); err != nil || !slices.Equal(who.Roles, []string{"editor"}) || !slices.Equal(who.Scopes, []string{"todo:read", "todo:write"}) {
			t.Fatalf("whoami = %s (%v), want hosts.json scopes and the policy's role", b, err)
		}
		if got, _ := policyOutcome(t, c, "todo_create", create); got != "allowed" {
			t.Fatalf("todo_create: %s", got)
		}
	})

	// The denial under the policy is on the record, with its reason.
	var found bool
	for _, r := range auditRows(t, dataDir, "--tool", "todo_create", "--decision", "deny") {
		if r["reason"] == "missing role editor" {
			found = true
		}
	}
	if !found {
		t.Fatal("no audit row for the todo_create denial with reason \"missing role editor\"")
	}
}

// TestPolicy_BrokenFile checks that a broken policy is refused with its file,
// line, key and reason, both by `policy check` and by `serve` at start.
func TestPolicy_BrokenFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want string // after "idmcp: PATH:"
	}{
		{"WrongType", "version = 1\n\n[tools.override.todo_create]\nroles = \"editor\"\n",
			`4: tools.override.todo_create.roles: wrong type: found a string where an array is expected`},
		{"UnknownKey", "[tools]\nenabled = [\"whoami\"]\ndisable = [\"todo_delete\"]\n",
			`3: tools.disable: unknown key "disable"; known keys here: enabled, override`},
		{"UnknownTool", "[tools]\nenabled = [\n  \"whoami\",\n  \"todo_lst\",\n]\n",
			`2: tools.enabled: no tool named "todo_lst"`},
		{"Syntax", "[tools]\nenabled = [\"whoami\"\n",
			`2: syntax error:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writePolicy(t, tc.doc)
			want := "idmcp: " + path + ":" + tc.want
			out, errOut, code := runIdmcp(t, nil, "policy", "check", path)
			if code == 0 || !strings.Contains(errOut, want) {
				t.Fatalf("policy check: exit %d\nstdout: %s\nstderr: %s\nwant stderr containing %q", code, out, errOut, want)
			}
			dataDir := t.TempDir()
			_, errOut, code = runIdmcp(t, []string{"IDMCP_SHARED_SECRET=x"}, "serve", "--data-dir", dataDir, "--policy", path, "--sandbox", "off")
			if code == 0 || !strings.Contains(errOut, want) {
				t.Fatalf("serve: exit %d\nstderr: %s\nwant %q", code, errOut, want)
			}
		})
	}
}

func TestPolicy_Check(t *testing.T) {
	path := writePolicy(t, `
[tools]
enabled = ["whoami", "todo_list", "todo_create", "files_read"]

[tools.override.todo_create]
roles = ["editor"]

[tools.override.todo_list]
scopes = ["todo:raed"]

[hosts.ci]
scopes = ["todo:write"]
`)
	out := mustIdmcp(t, nil, "policy", "check", path)
	for _, re := range []string{
		`(?m)^TOOL\s+ENABLED\s+SCOPES\s+ROLES\s+NOTE$`,
		`(?m)^todo_create\s+yes\s+todo:write\s+editor\s+override at ` + regexp.QuoteMeta(path) + `:5$`,
		`(?m)^todo_delete\s+no\s+todo:write\s+admin\s+-$`,
		`(?m)^files_read\s+yes\s+files:read\s+-\s+needs --workspace$`,
		`(?m)^whoami\s+yes\s+-\s+-\s+-$`,
		`(?m)^  ci\s+todo:write\s+\(from hosts.json\)$`,
		`warning: ` + regexp.QuoteMeta(path) + `:9: tools.override.todo_list.scopes: scope "todo:raed" is declared by no tool`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("policy check output lacks %s:\n%s", re, out)
		}
	}
	_, errOut, code := runIdmcp(t, nil, "policy", "check", "--strict", path)
	if code == 0 || !strings.Contains(errOut, "warning(s) with --strict") {
		t.Fatalf("--strict with warnings: exit %d, stderr %s", code, errOut)
	}
	if _, errOut, code := runIdmcp(t, nil, "policy", "check"); code != 2 || !strings.Contains(errOut, "usage: idmcp policy check") {
		t.Fatalf("no file: exit %d, stderr %s", code, errOut)
	}
}

// TestPolicy_ExampleIsValid keeps the documented example policy valid and
// free of warnings.
func TestPolicy_ExampleIsValid(t *testing.T) {
	out := mustIdmcp(t, nil, "policy", "check", "--strict", filepath.Join("..", "..", "examples", "policy.toml"))
	if !strings.Contains(out, "policy.toml: ok") || strings.Contains(out, "warning:") {
		t.Fatalf("policy check of the example:\n%s", out)
	}
}
