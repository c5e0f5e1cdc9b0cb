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
	"github.com/idmcp/idmcp/auth/keyring"
	"github.com/idmcp/idmcp/sandbox"
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
	// keyring keeps the profile's secret in the OS keyring (under a
	// throwaway service name) instead of IDMCP_SHARED_SECRET.
	keyring bool
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
	// Kept is true with --keep: the data dir outlives the demo.
	Kept    bool      `json:"kept"`
	HTTP    *httpDemo `json:"http"`
	Sandbox string    `json:"sandbox"`
	Wrap    *wrapDemo `json:"wrap"` // demo_wrap.go
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
	if err := parseFlags(fs, args); err != nil {
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
	// The data dir and the files tools' workspace are siblings: a workspace
	// must never contain the data dir.
	dataDir := filepath.Join(dir, "data")
	if err := store.EnsureDir(dataDir); err != nil {
		return err
	}
	rep, err := runDemo(ctx, exe, dataDir, filepath.Join(dir, "workspace"))
	if err != nil {
		return err
	}
	rep.Kept = *keep != ""
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

func runDemo(ctx context.Context, exe, dir, workspace string) (*demoReport, error) {
	hosts := store.NewHosts(dir)
	secrets := map[string]string{}
	personas := slices.Clone(demoPersonas)
	// The keyring path, when this machine has a usable keyring: a profile
	// whose secret is in the OS keyring, under a throwaway service name that
	// is removed again at the end.
	service := "idmcp-demo-" + randomHex(4)
	kr := keyring.New(keyring.Config{Service: service, Timeout: 3 * time.Second})
	deskToken := auth.NewHostToken()
	if err := kr.Set(ctx, "desktop", deskToken); err == nil {
		defer func() { _ = kr.Delete(context.WithoutCancel(ctx), "desktop") }()
		personas = append([]persona{{Name: "desktop", Scopes: []string{"todo:read", "todo:write"}, Roles: []string{},
			How: "IDMCP_TOKEN checked against the OS keyring", keyring: true}}, personas...)
	}
	addProfiles := func() error {
		// --keep may name a data dir that host commands also change.
		unlock, err := lockHosts(ctx, hosts)
		if err != nil {
			return err
		}
		defer unlock()
		for _, p := range personas {
			prof := &auth.HostProfile{Name: p.Name, Scopes: p.Scopes, Roles: p.Roles, Keyring: p.keyring, Created: time.Now().UTC()}
			if prof.Roles == nil {
				prof.Roles = []string{}
			}
			if err := hosts.Put(prof); err != nil {
				return err
			}
			secrets[p.Name] = auth.NewHostToken()
			if p.keyring {
				secrets[p.Name] = deskToken
			}
		}
		return nil
	}
	if err := addProfiles(); err != nil {
		return nil, err
	}
	rep := &demoReport{Personas: personas, Listed: map[string][]string{}, Matrix: map[string]map[string]demoCell{}, DataDir: dir}
	for _, s := range builtinTools(nil, nil) {
		rep.Tools = append(rep.Tools, s.Name)
	}
	for _, p := range personas {
		listed, cells, err := demoPersona(ctx, exe, dir, p, secrets[p.Name], service)
		if err != nil {
			return nil, fmt.Errorf("demo persona %s: %w", p.Name, err)
		}
		rep.Listed[p.Name] = listed
		rep.Matrix[p.Name] = cells
	}
	h, err := runHTTPDemo(ctx, exe, dir, workspace)
	if err != nil {
		return nil, err
	}
	rep.HTTP = h
	if rep.Wrap, err = runWrapDemo(ctx, exe, dir); err != nil {
		return nil, err
	}
	if sb, ok := h.Delegated["server"].(map[string]any); ok {
		b, _ := json.Marshal(sb["sandbox"])
		var st sandbox.Status
		if json.Unmarshal(b, &st) == nil && st.Platform != "" {
			rep.Sandbox = st.String()
		}
	}
	if rep.Sandbox == "" {
		rep.Sandbox = sandbox.Probe().String()
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
func demoPersona(ctx context.Context, exe, dir string, p persona, secret, keyringService string) ([]string, map[string]demoCell, error) {
	presented := secret
	if p.wrongToken {
		presented = auth.NewHostToken()
	}
	env := []string{"IDMCP_SHARED_SECRET=" + secret, "IDMCP_DATA_DIR=" + dir}
	if p.keyring {
		env = []string{"IDMCP_KEYRING_SERVICE=" + keyringService, "IDMCP_DATA_DIR=" + dir}
	}
	if !p.capability {
		env = append(env, "IDMCP_TOKEN="+presented)
	}
	var serverLog bytes.Buffer
	// --no-keyring: the audit key goes to a file beside the demo's data dir,
	// not the user's keyring (the personas use different keyring services,
	// and a data dir has one key).
	tr := transport.NewStdioWithOptions(exe, env, []string{"serve", "--profile", p.Name, "--log-level", "warn", "--no-keyring"},
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
	if rep.Kept {
		fmt.Fprintf(w, "data dir: %s\n\n", rep.DataDir)
	} else {
		fmt.Fprintf(w, "data dir: %s (temporary: removed when the demo ends; keep it with --keep DIR)\n\n", rep.DataDir)
	}

	fmt.Fprintln(w, paint("1", "1. Personas"))
	fmt.Fprintln(w, "  stdio — host profiles (scopes and roles live on the server, never in what a host sends):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PROFILE\tSCOPES\tROLES\tHOW THE HOST AUTHENTICATES")
	for _, p := range rep.Personas {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, dash(strings.Join(p.Scopes, " ")), dash(strings.Join(p.Roles, " ")), p.How)
	}
	_ = tw.Flush()
	h := rep.HTTP
	fmt.Fprintf(w, "\n  HTTP — OAuth clients of the development issuer at %s:\n", h.Issuer)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PERSONA\tSCOPES IN ITS TOKEN\tROLES\tTOKEN FROM")
	for _, p := range h.Personas {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, dash(strings.Join(p.Scopes, " ")), dash(strings.Join(p.Roles, " ")), p.Via)
	}
	_ = tw.Flush()

	fmt.Fprintln(w, "\n"+paint("1", "2. Who may call what")+" — every cell is a real call through a real MCP client")
	fmt.Fprintln(w, "  stdio: `idmcp serve --profile P` over pipes")
	var names []string
	for _, p := range rep.Personas {
		names = append(names, p.Name)
	}
	printMatrix(w, paint, names, rep.Tools, rep.Matrix)
	printWhy(w, names, rep.Tools, rep.Listed, rep.Matrix)

	fmt.Fprintf(w, "\n  HTTP: `idmcp serve --http 127.0.0.1:0 --dev`, bearer tokens, Streamable HTTP\n")
	names = nil
	for _, p := range h.Personas {
		names = append(names, p.Name)
	}
	printMatrix(w, paint, names, h.Tools, h.Matrix)
	printWhy(w, names, h.Tools, h.Listed, h.Matrix)

	fmt.Fprintln(w, "\n"+paint("1", "3. The delegation chain, as the server saw it")+" (whoami of the delegated call)")
	d := h.Delegated
	fmt.Fprintf(w, "  subject (the human): %v\n  client (the agent):  %v\n  actors, current first: %v\n  scopes: %v   issuer: %v\n",
		d["subject"], d["client_id"], d["actors"], d["scopes"], d["issuer"])

	fmt.Fprintln(w, "\n"+paint("1", "4. The audit log")+" (SQLite, queried with plain SQL)")
	r, err := audit.OpenReader(ctx, filepath.Join(rep.DataDir, store.AuditDBName))
	if err != nil {
		return err
	}
	defer r.Close()
	const q = `SELECT transport, subject, client_id, actors,
       sum(decision = 'allow') AS allowed, sum(decision = 'deny') AS denied
FROM audit_log WHERE event = 'tools/call'
GROUP BY transport, subject, client_id, actors ORDER BY transport DESC, subject, client_id`
	fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(q, "\n", "\n  "))
	rows, err := r.DB().QueryContext(ctx, q)
	if err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TRANSPORT\tSUBJECT\tCLIENT\tACTORS\tALLOWED\tDENIED")
	for rows.Next() {
		var tr, subj, cid, actors string
		var allowed, denied int
		if err := rows.Scan(&tr, &subj, &cid, &actors, &allowed, &denied); err != nil {
			rows.Close()
			return err
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\n", tr, subj, cid, actors, allowed, denied)
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
	fmt.Fprintf(w, "\n%s %s\n", paint("1", "5. audit verify:"), verify)
	fmt.Fprintf(w, "\n%s %s\n", paint("1", "6. Sandbox of the HTTP server:"), rep.Sandbox)
	printWrapDemo(w, paint, rep.Wrap)

	fmt.Fprintln(w, "\n"+paint("1", "Next"))
	fmt.Fprintln(w, "  go install ./cmd/idmcp")
	fmt.Fprintln(w, "  idmcp host add claude --scopes \"todo:read todo:write\"        # a desktop host: prints a Claude Desktop config entry")
	fmt.Fprintln(w, "  idmcp serve --http 127.0.0.1:8080 --dev                      # try HTTP mode locally; then idmcp token mint --sub you --scope todo:read")
	fmt.Fprintln(w, "  idmcp serve --http 127.0.0.1:8080 --issuer https://YOUR-IDP  # a real identity provider (README: HTTP mode)")
	if rep.Kept {
		fmt.Fprintf(w, "  idmcp audit query --data-dir %s --since 1h   # the demo's rows, kept\n", shellQuote(rep.DataDir))
	} else {
		fmt.Fprintln(w, "  idmcp demo --keep ./idmcp-demo && idmcp audit query --data-dir ./idmcp-demo/data   # keep the demo's rows to query them")
	}
	fmt.Fprintln(w, "  idmcp audit query --since 1h                                 # who did what, on your own server's data dir")
	return nil
}

// printMatrix prints persona × tool → allowed/denied as an aligned table.
func printMatrix(w io.Writer, paint func(code, s string) string, names, tools []string, m map[string]map[string]demoCell) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  WHO\t"+strings.Join(tools, "\t"))
	for _, n := range names {
		row := []string{"  " + n}
		for _, t := range tools {
			if m[n][t].Allowed {
				row = append(row, paint("32", "allowed"))
			} else {
				row = append(row, paint("31", "denied"))
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush()
}

// printWhy prints, per persona, what tools/list showed and each distinct
// refusal in the server's own words.
func printWhy(w io.Writer, names, tools []string, listed map[string][]string, m map[string]map[string]demoCell) {
	fmt.Fprintln(w, "  Why, in the server's own words as the client received them:")
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		var reasons []string
		for _, t := range tools {
			if c := m[n][t]; !c.Allowed && !slices.Contains(reasons, c.Reason) {
				reasons = append(reasons, c.Reason)
			}
		}
		if len(reasons) == 0 {
			reasons = []string{"everything allowed"}
		}
		fmt.Fprintf(w, "    %-*s tools/list shows [%s]\n", width, n, strings.Join(listed[n], " "))
		for _, r := range reasons {
			fmt.Fprintf(w, "    %-*s %s\n", width, "", r)
		}
	}
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == ':' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z')
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
