package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// toolsetPersona is a caller of the decision matrix.
type toolsetPersona struct {
	name   string
	scopes []string
	roles  []string
}

var (
	personaReadOnly = toolsetPersona{"read-only", []string{"todo:read", "files:read"}, nil}
	personaAdmin    = toolsetPersona{"full-admin", []string{"todo:read", "todo:write", "files:read", "files:write", "audit:read"}, []string{"admin"}}
	personaWriter   = toolsetPersona{"write-no-admin", []string{"todo:read", "todo:write", "files:read", "files:write"}, nil}
	personaNobody   = toolsetPersona{"no-scopes", []string{}, nil}
)

func (p toolsetPersona) principal() *auth.Principal {
	return &auth.Principal{Subject: "alice", ClientID: p.name, Scopes: p.scopes, Roles: p.roles, Method: auth.MethodHostSecret, Transport: "stdio"}
}

// mustBuildTools builds the serving tool set with a workspace and policy doc
// ("" for none).
func mustBuildTools(t *testing.T, policyDoc string) *toolset {
	t.Helper()
	var pol *auth.Policy
	if policyDoc != "" {
		var err error
		if pol, err = auth.ParsePolicy("policy.toml", []byte(policyDoc)); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := buildTools(context.Background(), toolsetOptions{Policy: pol, Workspace: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Close() })
	return ts
}

// decisionText renders a decision the way the table below spells it.
func decisionText(d auth.Decision) string {
	if d.Allow {
		return "allow"
	}
	switch d.Err.Kind {
	case auth.KindInsufficientScope:
		return "missing scope " + strings.Join(d.Err.Scopes, " ")
	case auth.KindMissingRole:
		return "missing role " + strings.Join(d.Err.Roles, "|")
	case auth.KindNotFound:
		return "not found"
	}
	return d.Err.Kind.String()
}

// TestBuildTools_DecisionMatrix is persona × tool → decision for the tool set
// serve builds, with and without a policy.
func TestBuildTools_DecisionMatrix(t *testing.T) {
	const (
		allow  = "allow"
		nf     = "not found"
		tRead  = "missing scope todo:read"
		tWrite = "missing scope todo:write"
		fRead  = "missing scope files:read"
		fWrite = "missing scope files:write"
		aRead  = "missing scope audit:read"
		admin  = "missing role admin"
	)
	names := []string{"whoami", "todo_list", "todo_create", "todo_complete", "todo_delete",
		"files_list", "files_read", "files_search", "files_write", "audit_query", "no_such_tool"}
	for _, tc := range []struct {
		name   string
		policy string
		want   map[string][]string // persona → one decision per tool above
	}{
		{
			name: "BuiltinRequirements",
			want: map[string][]string{
				personaReadOnly.name: {allow, allow, tWrite, tWrite, tWrite, allow, allow, allow, fWrite, aRead, nf},
				personaAdmin.name:    {allow, allow, allow, allow, allow, allow, allow, allow, allow, allow, nf},
				personaWriter.name:   {allow, allow, allow, allow, admin, allow, allow, allow, allow, aRead, nf},
				personaNobody.name:   {allow, tRead, tWrite, tWrite, tWrite, fRead, fRead, fRead, fWrite, aRead, nf},
			},
		},
		{
			// files_write needs the admin role too, todo_delete accepts
			// "owner" as well, files_search and todo_complete are disabled.
			name: "Policy",
			policy: `
[tools]
enabled = ["whoami", "todo_list", "todo_create", "todo_delete", "files_list", "files_read", "files_write", "audit_query"]

[tools.override.files_write]
roles = ["admin"]

[tools.override.todo_delete]
roles = ["admin", "owner"]

[tools.override.audit_query]
scopes = ["todo:read"]
`,
			want: map[string][]string{
				personaReadOnly.name: {allow, allow, tWrite, nf, tWrite, allow, allow, nf, fWrite, allow, nf},
				personaAdmin.name:    {allow, allow, allow, nf, allow, allow, allow, nf, allow, allow, nf},
				personaWriter.name:   {allow, allow, allow, nf, "missing role admin|owner", allow, allow, nf, admin, allow, nf},
				personaNobody.name:   {allow, tRead, tWrite, nf, tWrite, fRead, fRead, nf, fWrite, tRead, nf},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := mustBuildTools(t, tc.policy)
			for _, p := range []toolsetPersona{personaReadOnly, personaAdmin, personaWriter, personaNobody} {
				for i, tool := range names {
					got := decisionText(ts.Authorizer.Decide(p.principal(), tool))
					if want := tc.want[p.name][i]; got != want {
						t.Errorf("%s × %s = %q, want %q", p.name, tool, got, want)
					}
				}
			}
		})
	}
}

func TestBuildTools_Workspace(t *testing.T) {
	ts, err := buildTools(context.Background(), toolsetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	for _, s := range ts.Specs {
		if strings.HasPrefix(s.Name, "files_") {
			t.Fatalf("%s registered without --workspace", s.Name)
		}
	}
	if ts.WorkspaceDir != "" || ts.WorkspaceWritable {
		t.Fatalf("workspace %q writable=%v without --workspace", ts.WorkspaceDir, ts.WorkspaceWritable)
	}
	pol, err := auth.ParsePolicy("p.toml", []byte(`[tools]`+"\n"+`enabled = ["whoami", "files_read"]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := buildTools(context.Background(), toolsetOptions{Policy: pol}); err == nil || !strings.Contains(err.Error(), "p.toml enables files_read; the files tools need --workspace DIR") {
		t.Fatalf("err=%v, want a refusal naming files_read and --workspace", err)
	}
	dir := t.TempDir()
	ro, err := buildTools(context.Background(), toolsetOptions{Policy: pol, Workspace: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if ro.WorkspaceDir != dir || ro.WorkspaceWritable {
		t.Fatalf("workspace %q writable=%v, want %q read-only (files_write disabled)", ro.WorkspaceDir, ro.WorkspaceWritable, dir)
	}
	rw := mustBuildTools(t, "")
	if !rw.WorkspaceWritable {
		t.Fatal("files_write enabled but the workspace is not writable for the sandbox")
	}
}

// stdioSession is the real stdio server for one persona, driven by the
// mcp-go client over in-process pipes.
type stdioSession struct {
	client *client.Client
	authz  *auth.Authorizer
	names  []string // every tool of the catalog, enabled or not
}

func startStdioSession(t *testing.T, p toolsetPersona, policyDoc string) *stdioSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	alog, err := audit.Open(ctx, audit.Config{Path: filepath.Join(dir, store.AuditDBName), Sync: store.SyncNormal})
	if err != nil {
		t.Fatal(err)
	}
	var pol *auth.Policy
	if policyDoc != "" {
		if pol, err = auth.ParsePolicy("policy.toml", []byte(policyDoc)); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := buildTools(ctx, toolsetOptions{Policy: pol, Store: st, Workspace: t.TempDir(), AuditPath: filepath.Join(dir, store.AuditDBName)})
	if err != nil {
		t.Fatal(err)
	}
	secret := auth.NewHostToken()
	host, err := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{
		ProfileName: "persona", Profile: &auth.HostProfile{Name: "persona", Scopes: p.scopes, Roles: p.roles},
		Secret: []byte(secret), SecretSource: "test", Human: "alice",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewStdio(server.StdioConfig{
		Config:   server.Config{Version: "test", Tools: ts.Specs, Authorizer: ts.Authorizer, Audit: alog},
		Host:     host,
		EnvToken: secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	toServerR, toServerW := io.Pipe()
	toClientR, toClientW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- srv.Listen(ctx, toServerR, toClientW) }()
	c := client.NewClient(transport.NewIO(toClientR, toServerW, nil))
	t.Cleanup(func() {
		_ = c.Close()
		_ = toServerW.Close()
		cancel()
		select { // the stdio session is process-global in mcp-go: wait for it to end
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("stdio server did not stop")
		}
		_ = toClientW.Close()
		_ = ts.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = alog.Close(cctx)
		_ = st.Close()
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "toolset-test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	s := &stdioSession{client: c, authz: ts.Authorizer}
	for _, rt := range ts.Resolution.Tools {
		s.names = append(s.names, rt.Name)
	}
	return s
}

// TestServe_ListEqualsCallable asserts, for every persona, with and without
// a policy, that tools/list shows exactly the tools tools/call lets run,
// through the real stdio server and a real MCP client.
func TestServe_ListEqualsCallable(t *testing.T) {
	const policy = `
[tools]
enabled = ["whoami", "todo_list", "todo_delete", "files_read", "files_write", "audit_query"]

[tools.override.files_write]
roles = ["admin"]

[tools.override.todo_list]
scopes = ["files:read"]
`
	for _, pol := range []struct{ name, doc string }{{"Builtin", ""}, {"Policy", policy}} {
		for _, p := range []toolsetPersona{personaReadOnly, personaAdmin, personaWriter, personaNobody} {
			t.Run(pol.name+"/"+p.name, func(t *testing.T) {
				s := startStdioSession(t, p, pol.doc)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				lt, err := s.client.ListTools(ctx, mcp.ListToolsRequest{})
				if err != nil {
					t.Fatal(err)
				}
				var listed []string
				for _, tool := range lt.Tools {
					listed = append(listed, tool.Name)
				}
				slices.Sort(listed)
				var callable []string
				for _, name := range append(slices.Clone(s.names), "no_such_tool") {
					req := mcp.CallToolRequest{}
					req.Params.Name = name
					req.Params.Arguments = map[string]any{}
					// Empty arguments: a tool that runs refuses them itself
					// (a tool error), so nothing changes; a denial is a
					// JSON-RPC error.
					_, err := s.client.CallTool(ctx, req)
					switch {
					case err == nil:
						callable = append(callable, name)
					case !strings.Contains(err.Error(), "forbidden") && !strings.Contains(err.Error(), "not found"):
						t.Fatalf("tools/call %s: unexpected error %v", name, err)
					}
				}
				slices.Sort(callable)
				if !slices.Equal(listed, callable) {
					t.Fatalf("tools/list = %q\ncallable   = %q", listed, callable)
				}
				if want := s.authz.Visible(p.principal()); !slices.Equal(listed, want) {
					t.Fatalf("tools/list = %q, authorizer says %q", listed, want)
				}
				if len(listed) == 0 || !slices.Contains(listed, "whoami") {
					t.Fatalf("tools/list = %q: whoami needs no scope and must be there", listed)
				}
			})
		}
	}
}

func TestLoadPolicy_Empty(t *testing.T) {
	p, err := loadPolicy("")
	if p != nil || err != nil {
		t.Fatalf("loadPolicy(\"\") = %v, %v; want the default policy (nil)", p, err)
	}
	if _, err := loadPolicy(filepath.Join(t.TempDir(), "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err=%v", err)
	}
}

func TestCheckApart(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "state")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link-to-root")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ws string
		ok       bool
	}{
		{"Sibling", filepath.Join(root, "ws"), true},
		{"ContainsDataDir", root, false},
		{"ContainsDataDirThroughSymlink", link, false},
		{"SameDir", data, false},
		{"InsideDataDir", filepath.Join(data, "ws"), false},
		{"PrefixNameOnly", data + "-ws", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkApart(tc.ws, data); (err == nil) != tc.ok {
				t.Fatalf("checkApart(%s) = %v, want ok=%v", tc.ws, err, tc.ok)
			}
		})
	}
}
