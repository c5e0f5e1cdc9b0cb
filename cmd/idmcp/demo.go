package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// persona is one host profile of the demo and how its host presents the
// credential.
type persona struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	Roles  []string `json:"roles"`
	// How is the credential path shown in the demo.
	How string `json:"how"`
	// wrongToken makes the host present a credential that does not match.
	wrongToken bool
	// capability presents the token as capabilities.experimental["io.idmcp/auth"]
	// instead of IDMCP_TOKEN; modern negotiates protocol 2026-07-28.
	capability bool
	modern     bool
}

// demoCell is one persona × tool outcome.
type demoCell struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
}

// demoReport is what `idmcp demo --json` prints, for tests.
type demoReport struct {
	Personas []persona                      `json:"personas"`
	Tools    []string                       `json:"tools"`
	Listed   map[string][]string            `json:"listed"`
	Matrix   map[string]map[string]demoCell `json:"matrix"`
	Verify   string                         `json:"verify"`
	DataDir  string                         `json:"data_dir"`
}

var demoPersonas = []persona{
	{Name: "admin", Scopes: []string{"todo:read", "todo:write"}, Roles: []string{"admin"}, How: "token in capabilities, protocol 2026-07-28", capability: true, modern: true},
	{Name: "writer", Scopes: []string{"todo:read", "todo:write"}, How: "token in capabilities at initialize, protocol 2025-11-25", capability: true},
	{Name: "reader", Scopes: []string{"todo:read"}, How: "IDMCP_TOKEN in the host's env block (desktop hosts)"},
	{Name: "nobody", Scopes: []string{}, How: "IDMCP_TOKEN, a profile with no scopes"},
	{Name: "intruder", Scopes: []string{"todo:read"}, How: "a wrong token for an existing profile", wrongToken: true},
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keep := fs.String("keep", "", "keep the demo's data dir here instead of a temporary one")
	asJSON := fs.Bool("json", false, "print the results as JSON (for tests)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	dir := *keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "idmcp-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := store.EnsureDir(dir); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: find own binary: %w", err)
	}
	rep, err := runDemo(ctx, exe, dir)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printDemo(ctx, stdout, rep, isTerminal(stdout))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func runDemo(ctx context.Context, exe, dir string) (*demoReport, error) {
	hosts := store.NewHosts(dir)
	secrets := map[string]string{}
	for _, p := range demoPersonas {
		// The shared-secret path: no keyring is touched, nothing is written
		// outside dir.
		prof := &auth.HostProfile{Name: p.Name, Scopes: p.Scopes, Roles: p.Roles, Created: time.Now().UTC()}
		if prof.Roles == nil {
			prof.Roles = []string{}
		}
		if err := hosts.Put(prof); err != nil {
			return nil, err
		}
		secrets[p.Name] = auth.NewHostToken()
	}
	rep := &demoReport{Personas: demoPersonas, Listed: map[string][]string{}, Matrix: map[string]map[string]demoCell{}, DataDir: dir}
	for _, s := range builtinTools(nil, nil) {
		rep.Tools = append(rep.Tools, s.Name)
	}
	for _, p := range demoPersonas {
		listed, cells, err := demoPersona(ctx, exe, dir, p, secrets[p.Name])
		if err != nil {
			return nil, fmt.Errorf("demo persona %s: %w", p.Name, err)
		}
		rep.Listed[p.Name] = listed
		rep.Matrix[p.Name] = cells
	}
	r, err := audit.OpenReader(ctx, filepath.Join(dir, store.AuditDBName))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if res, err := r.Verify(ctx); err != nil {
		rep.Verify = "TAMPERED: " + err.Error()
	} else {
		rep.Verify = fmt.Sprintf("ok: %d rows verified; head row %d hash %s…", res.Rows, res.HeadID, res.HeadHash[:16])
	}
	return rep, nil
}

// demoPersona starts `idmcp serve` for one persona, as a desktop host would,
// and drives it with the mcp-go client over the process's pipes.
func demoPersona(ctx context.Context, exe, dir string, p persona, secret string) ([]string, map[string]demoCell, error) {
	presented := secret
	if p.wrongToken {
		presented = auth.NewHostToken()
	}
	env := []string{"IDMCP_SHARED_SECRET=" + secret, "IDMCP_DATA_DIR=" + dir}
	if !p.capability {
		env = append(env, "IDMCP_TOKEN="+presented)
	}
	var serverLog bytes.Buffer
	tr := transport.NewStdioWithOptions(exe, env, []string{"serve", "--profile", p.Name, "--log-level", "warn"},
		transport.WithCommandStderrWriter(&serverLog))
	if err := tr.Start(ctx); err != nil {
		return nil, nil, err
	}
	var opts []client.ClientOption
	if p.capability {
		opts = append(opts, client.WithClientCapabilities(mcp.ClientCapabilities{
			Experimental: map[string]any{server.AuthCapability: map[string]any{"token": presented}},
		}))
	}
	if !p.modern {
		opts = append(opts, client.WithLegacyProtocolOnly())
	}
	c := client.NewClient(tr, opts...)
	defer c.Close()
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "idmcp-demo-" + p.Name, Version: version}
	if !p.modern {
		init.Params.ProtocolVersion = "2025-11-25"
	}
	cells := map[string]demoCell{}
	if _, err := c.Initialize(ctx, init); err != nil {
		// The server refuses everything until the host authenticates.
		for _, t := range builtinTools(nil, nil) {
			cells[t.Name] = demoCell{Reason: cleanErr(err)}
		}
		return []string{}, cells, nil
	}
	lt, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, nil, fmt.Errorf("tools/list: %w (server log: %s)", err, serverLog.String())
	}
	listed := []string{}
	for _, t := range lt.Tools {
		listed = append(listed, t.Name)
	}
	calls := []struct {
		tool string
		args map[string]any
	}{
		{"whoami", nil},
		{"todo_create", map[string]any{"title": "ship the " + p.Name + " demo"}},
		{"todo_list", nil},
		{"todo_complete", map[string]any{"id": 1}},
		{"todo_delete", map[string]any{"id": 1}},
	}
	for _, call := range calls {
		req := mcp.CallToolRequest{}
		req.Params.Name = call.tool
		req.Params.Arguments = call.args
		res, err := c.CallTool(ctx, req)
		switch {
		case err != nil:
			cells[call.tool] = demoCell{Reason: cleanErr(err)}
		case res.IsError:
			// Allowed, but the tool itself said no (e.g. todo already deleted).
			cells[call.tool] = demoCell{Allowed: true, Reason: "allowed (tool error: " + resultText(res) + ")"}
		default:
			cells[call.tool] = demoCell{Allowed: true, Reason: "allowed"}
		}
	}
	return listed, cells, nil
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}

// cleanErr keeps the server's words from a client error.
func cleanErr(err error) string {
	s := err.Error()
	for _, marker := range []string{"authentication failed", "forbidden", "tool "} {
		if i := strings.Index(s, marker); i >= 0 {
			return s[i:]
		}
	}
	return s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func printDemo(ctx context.Context, w io.Writer, rep *demoReport, color bool) error {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	fmt.Fprintln(w, paint("1", "idmcp demo")+" — who may do what, through which agent, and the audit trail")
	fmt.Fprintf(w, "data dir (temporary): %s\n\n", rep.DataDir)

	fmt.Fprintln(w, paint("1", "1. Host profiles")+" (scopes and roles live on the server, never in what a host sends)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PROFILE\tSCOPES\tROLES\tHOW THE HOST AUTHENTICATES")
	for _, p := range rep.Personas {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, dash(strings.Join(p.Scopes, " ")), dash(strings.Join(p.Roles, " ")), p.How)
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\n"+paint("1", "2. Each host, through a real MCP client over pipes to `idmcp serve`"))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PROFILE\t"+strings.Join(rep.Tools, "\t"))
	for _, p := range rep.Personas {
		row := []string{"  " + p.Name}
		for _, t := range rep.Tools {
			cell := rep.Matrix[p.Name][t]
			if cell.Allowed {
				row = append(row, paint("32", "allowed"))
			} else {
				row = append(row, paint("31", "denied"))
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\n  Why (the server's own words, as the client received them):")
	for _, p := range rep.Personas {
		var reasons []string
		for _, t := range rep.Tools {
			if c := rep.Matrix[p.Name][t]; !c.Allowed && !slices.Contains(reasons, c.Reason) {
				reasons = append(reasons, c.Reason)
			}
		}
		if len(reasons) == 0 {
			reasons = []string{"everything allowed"}
		}
		fmt.Fprintf(w, "  %-8s tools/list shows [%s]\n", p.Name, strings.Join(rep.Listed[p.Name], " "))
		for _, r := range reasons {
			fmt.Fprintf(w, "  %-8s %s\n", "", r)
		}
	}

	fmt.Fprintln(w, "\n"+paint("1", "3. The audit log")+" (SQLite, queried with plain SQL)")
	r, err := audit.OpenReader(ctx, filepath.Join(rep.DataDir, store.AuditDBName))
	if err != nil {
		return err
	}
	defer r.Close()
	const q = `SELECT client_id, event, decision, count(*) FROM audit_log
WHERE event IN ('auth','tools/list','tools/call') GROUP BY client_id, event, decision ORDER BY client_id, event, decision`
	fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(q, "\n", "\n  "))
	rows, err := r.DB().QueryContext(ctx, q)
	if err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CLIENT\tEVENT\tDECISION\tROWS")
	for rows.Next() {
		var cid, ev, dec string
		var n int
		if err := rows.Scan(&cid, &ev, &dec, &n); err != nil {
			rows.Close()
			return err
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\n", cid, ev, dec, n)
	}
	rows.Close()
	_ = tw.Flush()
	denials, err := r.Query(ctx, audit.Filter{Decision: audit.Deny, Event: audit.EventToolsCall, Limit: 4})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\n  Latest denied tool calls, as rows:")
	var buf bytes.Buffer
	if err := printRows(&buf, denials); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		fmt.Fprintln(w, "  "+line)
	}
	verify := rep.Verify
	if strings.HasPrefix(verify, "ok") {
		verify = paint("32", verify)
	} else {
		verify = paint("31", verify)
	}
	fmt.Fprintf(w, "\n%s %s\n", paint("1", "4. audit verify:"), verify)

	fmt.Fprintln(w, "\n"+paint("1", "Next"))
	fmt.Fprintln(w, "  go install ./cmd/idmcp")
	fmt.Fprintln(w, "  idmcp host add claude --scopes \"todo:read todo:write\"   # prints a Claude Desktop config entry")
	fmt.Fprintln(w, "  idmcp audit query --since 1h                            # who did what")
	return nil
}
