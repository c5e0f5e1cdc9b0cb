package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/idmcp/idmcp/auth/devissuer"
)

// httpPersona is an OAuth client of the dev issuer driven by the demo.
type httpPersona struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	Roles  []string `json:"roles"`
	// Via is how the token was obtained.
	Via string `json:"via"`
}

// demoCall is one tool call the demo makes, with arguments that work when
// the call is allowed.
type demoCall struct {
	tool string
	args map[string]any
}

var demoHTTPCalls = []demoCall{
	{"whoami", nil},
	{"todo_list", nil},
	{"todo_create", map[string]any{"title": "review the audit log"}},
	{"files_read", map[string]any{"path": "README.md"}},
	{"files_write", map[string]any{"path": "notes.txt", "content": "written through idmcp\n"}},
	{"audit_query", map[string]any{"limit": 3}},
}

// httpDemo is the HTTP half of the demo's report.
type httpDemo struct {
	Resource string                         `json:"resource"`
	Issuer   string                         `json:"issuer"`
	Personas []httpPersona                  `json:"personas"`
	Tools    []string                       `json:"tools"`
	Listed   map[string][]string            `json:"listed"`
	Matrix   map[string]map[string]demoCell `json:"matrix"`
	// Delegated is whoami as the server saw the delegated call.
	Delegated map[string]any `json:"delegated"`
}

var (
	demoAddrRE   = regexp.MustCompile(`msg="serving MCP over HTTP".*? resource=(\S+) issuer=(\S+)`)
	demoSecretRE = regexp.MustCompile(`(?m)^(alice|bob|carol|agent|sub-agent)\s.*\s(dev_[A-Za-z0-9_-]+)\s*$`)
)

// runHTTPDemo starts `idmcp serve --http 127.0.0.1:0 --dev` on the demo's
// data dir, obtains tokens from its development issuer the way an OAuth
// client does (client_credentials, and RFC 8693 token exchange for the
// delegated call), and drives the server with mcp-go's Streamable HTTP client.
func runHTTPDemo(ctx context.Context, exe, dir, ws string) (*httpDemo, error) {
	if err := os.MkdirAll(ws, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(ws, "README.md"), []byte("# demo workspace\nidmcp confines files tools to this folder.\n"), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "serve", "--http", "127.0.0.1:0", "--dev", "--data-dir", dir, "--workspace", ws, "--log-level", "info", "--no-keyring")
	cmd.Env = demoEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	// Read the start-up output: the demo clients' secrets and the address.
	var log strings.Builder
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if !sent {
				log.WriteString(sc.Text() + "\n")
				if m := demoAddrRE.FindStringSubmatch(sc.Text()); m != nil {
					ready <- [2]string{m[1], m[2]}
					sent = true
				}
			}
		}
		if !sent {
			close(ready)
		}
	}()
	var resource, issuer string
	select {
	case m, ok := <-ready:
		if !ok {
			return nil, fmt.Errorf("demo: the HTTP server exited during start-up:\n%s", log.String())
		}
		resource, issuer = m[0], m[1]
	case <-time.After(20 * time.Second):
		return nil, fmt.Errorf("demo: the HTTP server did not start within 20s")
	}
	secrets := map[string]string{}
	for _, m := range demoSecretRE.FindAllStringSubmatch(log.String(), -1) {
		secrets[m[1]] = m[2]
	}
	if err := waitReady(ctx, strings.TrimSuffix(resource, "/mcp")+"/readyz"); err != nil {
		return nil, err
	}

	rep := &httpDemo{Resource: resource, Issuer: issuer, Listed: map[string][]string{}, Matrix: map[string]map[string]demoCell{}}
	for _, c := range demoHTTPCalls {
		rep.Tools = append(rep.Tools, c.tool)
	}
	tokenURL := issuer + devissuer.PathToken
	type run struct {
		persona httpPersona
		token   string
	}
	var runs []run
	for _, who := range []string{"alice", "bob", "carol"} {
		tok, scopes, err := fetchToken(ctx, tokenURL, who, secrets[who], url.Values{"grant_type": {devissuer.GrantClientCreds}, "resource": {resource}})
		if err != nil {
			return nil, err
		}
		runs = append(runs, run{httpPersona{Name: who, Scopes: scopes, Via: "client_credentials"}, tok})
	}
	// alice asks an agent to act for her: the agent exchanges her token for a
	// delegated one (RFC 8693), narrowed to todo:read.
	delegated, scopes, err := fetchToken(ctx, tokenURL, "agent", secrets["agent"], url.Values{
		"grant_type": {devissuer.GrantExchange}, "subject_token": {runs[0].token},
		"subject_token_type": {devissuer.TokenTypeAccess}, "resource": {resource}, "scope": {"todo:read"},
	})
	if err != nil {
		return nil, err
	}
	// …and that agent hands the task to a sub-agent: a second exchange, a
	// two-level act chain.
	delegated, scopes, err = fetchToken(ctx, tokenURL, "sub-agent", secrets["sub-agent"], url.Values{
		"grant_type": {devissuer.GrantExchange}, "subject_token": {delegated},
		"subject_token_type": {devissuer.TokenTypeAccess}, "resource": {resource},
	})
	if err != nil {
		return nil, err
	}
	runs = append(runs, run{httpPersona{Name: "agents for alice", Scopes: scopes, Via: "alice's token exchanged by agent, then by sub-agent"}, delegated})

	for _, r := range runs {
		listed, cells, who, err := demoHTTPPersona(ctx, resource, r.token)
		if err != nil {
			return nil, fmt.Errorf("demo HTTP persona %s: %w", r.persona.Name, err)
		}
		if roles, ok := who["roles"].([]any); ok {
			for _, x := range roles {
				r.persona.Roles = append(r.persona.Roles, fmt.Sprint(x))
			}
		}
		rep.Personas = append(rep.Personas, r.persona)
		rep.Listed[r.persona.Name] = listed
		rep.Matrix[r.persona.Name] = cells
		if strings.HasPrefix(r.persona.Name, "agents for") {
			rep.Delegated = who
		}
	}
	return rep, nil
}

func demoEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IDMCP_") {
			env = append(env, kv)
		}
	}
	return env
}

func waitReady(ctx context.Context, u string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("demo: %s not ready within 15s", u)
}

// fetchToken posts to the token endpoint with HTTP Basic client auth.
func fetchToken(ctx context.Context, tokenURL, client, secret string, form url.Values) (string, []string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
		Error       string `json:"error"`
		Desc        string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		return "", nil, fmt.Errorf("demo: token for %s: %d %s %s", client, resp.StatusCode, tr.Error, tr.Desc)
	}
	return tr.AccessToken, strings.Fields(tr.Scope), nil
}

// demoHTTPPersona lists and calls every demo tool with one bearer token.
func demoHTTPPersona(ctx context.Context, resource, token string) ([]string, map[string]demoCell, map[string]any, error) {
	tr, err := transport.NewStreamableHTTP(resource, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		return nil, nil, nil, err
	}
	c := client.NewClient(tr)
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		return nil, nil, nil, err
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "idmcp-demo", Version: version}
	if _, err := c.Initialize(ctx, init); err != nil {
		return nil, nil, nil, fmt.Errorf("initialize: %w", err)
	}
	lt, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tools/list: %w", err)
	}
	listed := []string{}
	for _, t := range lt.Tools {
		listed = append(listed, t.Name)
	}
	cells := map[string]demoCell{}
	var who map[string]any
	for _, call := range demoHTTPCalls {
		req := mcp.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = call.tool, call.args
		res, err := c.CallTool(ctx, req)
		switch {
		case err != nil:
			cells[call.tool] = demoCell{Reason: cleanErr(err)}
		case res.IsError:
			cells[call.tool] = demoCell{Allowed: true, Reason: "allowed (tool error: " + resultText(res) + ")"}
		default:
			cells[call.tool] = demoCell{Allowed: true, Reason: "allowed"}
			if call.tool == "whoami" {
				b, _ := json.Marshal(res.StructuredContent)
				_ = json.Unmarshal(b, &who)
			}
		}
	}
	return listed, cells, who, nil
}
