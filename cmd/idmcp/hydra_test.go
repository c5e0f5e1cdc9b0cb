package main_test

// Interoperability with a second real authorization server: Ory Hydra v2
// (issue 17), built from the module proxy by scripts/interop/hydra-setup and
// cached outside the repository. Hydra runs `serve all --dev` with its
// in-memory store on loopback ports; idmcp accepts its client_credentials
// tokens in both access-token strategies (JWT, verified by signature; opaque,
// checked at Hydra's RFC 7662 introspection endpoint on the admin port),
// across a signing-key rotation, and the official TypeScript SDK client goes
// discovery → token → call against it. Without the binary the tests skip,
// unless IDMCP_TEST_INTEROP=1 (CI) makes them fail.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// hydraVersion is the Hydra release scripts/interop/hydra-setup builds.
const hydraVersion = "v2.3.0"

// needHydra returns the Hydra binary: $IDMCP_HYDRA, else the cache of
// scripts/interop/hydra-setup.
func needHydra(t *testing.T) string {
	t.Helper()
	p := os.Getenv("IDMCP_HYDRA")
	if p == "" {
		cache := os.Getenv("IDMCP_CACHE")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "idmcp")
		}
		p = filepath.Join(cache, "hydra-"+hydraVersion)
	}
	if !fileExists(p) {
		msg := fmt.Sprintf("Ory Hydra not built at %s; run scripts/interop/hydra-setup", p)
		if os.Getenv(interopEnvVar) == "1" {
			t.Fatalf("%s (%s=1 requires it)", msg, interopEnvVar)
		}
		t.Skip(msg)
	}
	return p
}

// hydra is one `hydra serve all --dev` on loopback.
type hydra struct {
	*proc
	public, admin string // base URLs
	issuer        string // as its metadata names it
}

// startHydra starts Hydra with the given access-token strategy ("jwt" or
// "opaque") and waits (bounded) until it is ready.
func startHydra(t *testing.T, bin, strategy string) *hydra {
	t.Helper()
	pub, adm := freePort(t), freePort(t)
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	h := &hydra{public: fmt.Sprintf("http://127.0.0.1:%d", pub), admin: fmt.Sprintf("http://127.0.0.1:%d", adm)}
	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env = append(cleanEnv(),
		"DSN=memory",
		"SERVE_PUBLIC_HOST=127.0.0.1", fmt.Sprintf("SERVE_PUBLIC_PORT=%d", pub),
		"SERVE_ADMIN_HOST=127.0.0.1", fmt.Sprintf("SERVE_ADMIN_PORT=%d", adm),
		"URLS_SELF_ISSUER="+h.public,
		"SECRETS_SYSTEM="+hex.EncodeToString(secret),
		"STRATEGIES_ACCESS_TOKEN="+strategy,
		"LOG_LEVEL=warn",
	)
	h.proc = startProc(t, "hydra "+strategy, cmd)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if h.exited() {
			t.Fatalf("hydra exited: %v\n%s", h.cmd.ProcessState, h.output.String())
		}
		res, err := http.Get(h.public + "/.well-known/openid-configuration")
		if err == nil {
			var md struct {
				Issuer string `json:"issuer"`
			}
			_ = json.NewDecoder(res.Body).Decode(&md)
			res.Body.Close()
			if res.StatusCode == 200 && md.Issuer != "" {
				h.issuer = md.Issuer
				if ar, err := http.Get(h.admin + "/health/ready"); err == nil {
					ar.Body.Close()
					if ar.StatusCode == 200 {
						h.warmUp(t)
						return h
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("hydra not ready within 30s: %v\n%s", err, h.output.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// warmUp fetches Hydra's JWKS once, with a generous bound: Hydra creates its
// RSA signing keys on first use, which takes seconds on a loaded machine,
// longer than the 10 s every other request is allowed.
func (h *hydra) warmUp(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.public+"/.well-known/jwks.json", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("hydra JWKS: %v\n%s", err, h.output.String())
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
}

// hydraJSON sends a JSON request to Hydra and decodes the answer into out.
func hydraJSON(t *testing.T, method, u string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, u, body)
	req.Header.Set("Content-Type", "application/json")
	res, b := do(t, req)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, u, res.StatusCode, b)
		}
	}
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: HTTP %d %s", method, u, res.StatusCode, b)
	}
	return res.StatusCode
}

// client registers a client_credentials client allowed scope and audience.
func (h *hydra) client(t *testing.T, id, scope string, audience []string) string {
	t.Helper()
	secret := "secret-" + id + "-0123456789abcdef"
	hydraJSON(t, http.MethodPost, h.admin+"/admin/clients", map[string]any{
		"client_id": id, "client_secret": secret, "grant_types": []string{"client_credentials"},
		"response_types": []string{"token"}, "scope": scope, "audience": audience,
		"token_endpoint_auth_method": "client_secret_basic",
	}, nil)
	return secret
}

// token gets a client_credentials token; audience may be empty.
func (h *hydra) token(t *testing.T, id, secret, scope, audience string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	if audience != "" {
		form.Set("audience", audience)
	}
	req, _ := http.NewRequest(http.MethodPost, h.public+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	res, b := do(t, req)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tr); err != nil || res.StatusCode != 200 || tr.AccessToken == "" {
		t.Fatalf("hydra token for %s: HTTP %d %s", id, res.StatusCode, b)
	}
	return tr.AccessToken
}

// whoamiVia calls whoami through idmcp with token and returns its structured result.
func whoamiVia(t *testing.T, s *httpServer, token string) (int, map[string]any, string) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`
	req, _ := http.NewRequest(http.MethodPost, s.mcp, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	res, b := do(t, req)
	var rpc struct {
		Result struct {
			Structured map[string]any `json:"structuredContent"`
		} `json:"result"`
	}
	_ = json.Unmarshal(b, &rpc)
	return res.StatusCode, rpc.Result.Structured, res.Header.Get("WWW-Authenticate") + " " + string(b)
}

func TestInterop_Hydra(t *testing.T) {
	bin := needHydra(t)
	scopes := "todo:read todo:write"

	t.Run("JWTStrategy", func(t *testing.T) {
		h := startHydra(t, bin, "jwt")
		port := freePort(t)
		resource := fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
		secret := h.client(t, "agent-jwt", scopes, []string{resource})
		s := startHTTPAt(t, port, "--issuer", h.issuer)

		tok := h.token(t, "agent-jwt", secret, "todo:read", resource)
		claims := jwtPart(t, tok, 1)
		status, who, raw := whoamiVia(t, s, tok)
		if status != 200 || who["subject"] != "agent-jwt" || !slices.Contains(anyStrings(who["scopes"]), "todo:read") {
			t.Fatalf("Hydra JWT (claims %v) via idmcp: %d %v %s\nidmcp:\n%s", claims, status, who, raw, s.output.String())
		}
		// A token without idmcp's audience is refused with the reason.
		noAud := h.token(t, "agent-jwt", secret, "todo:read", "")
		if status, _, raw := whoamiVia(t, s, noAud); status != 401 || !strings.Contains(raw, "audience") {
			t.Errorf("token without audience: %d %s", status, raw)
		}

		// Key rotation: a new signing key in Hydra's access-token set; the
		// next token carries its kid and idmcp fetches the JWKS again.
		oldKID := jwtPart(t, tok, 0)["kid"]
		// ES256: a fresh RSA key is slow to generate on a loaded machine.
		hydraJSON(t, http.MethodPost, h.admin+"/admin/keys/hydra.jwt.access-token", map[string]any{"alg": "ES256", "use": "sig", "kid": "rotated-1"}, nil)
		rotated := h.token(t, "agent-jwt", secret, "todo:read todo:write", resource)
		if hd := jwtPart(t, rotated, 0); hd["kid"] == oldKID || hd["alg"] != "ES256" {
			t.Fatalf("hydra signs with %v (%v) after rotation, want the new ES256 key", hd["kid"], hd["alg"])
		}
		if status, who, raw := whoamiVia(t, s, rotated); status != 200 || !slices.Contains(anyStrings(who["scopes"]), "todo:write") {
			t.Fatalf("token signed by the rotated key: %d %s", status, raw)
		}
		if status, _, raw := whoamiVia(t, s, tok); status != 200 {
			t.Errorf("token of the previous key (still published): %d %s", status, raw)
		}
	})

	t.Run("OpaqueStrategyIntrospection", func(t *testing.T) {
		h := startHydra(t, bin, "opaque")
		port := freePort(t)
		resource := fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
		secret := h.client(t, "agent-opaque", scopes, []string{resource})
		s := startHTTPAt(t, port, "--issuer", h.issuer, "--introspection-url", h.admin+"/admin/oauth2/introspect")
		tok := h.token(t, "agent-opaque", secret, "todo:read", resource)
		if strings.Count(tok, ".") == 2 && strings.HasPrefix(tok, "eyJ") {
			t.Fatalf("opaque strategy issued a JWT")
		}
		status, who, raw := whoamiVia(t, s, tok)
		if status != 200 || who["subject"] != "agent-opaque" || !slices.Contains(anyStrings(who["scopes"]), "todo:read") {
			t.Fatalf("Hydra opaque token via introspection: %d %s\nidmcp:\n%s", status, raw, s.output.String())
		}
		// Revoked at Hydra: refused once idmcp's cache (30 s by default) no
		// longer vouches for it; a fresh server has no cache.
		form := url.Values{"token": {tok}}
		req, _ := http.NewRequest(http.MethodPost, h.public+"/oauth2/revoke", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("agent-opaque", url.QueryEscape(secret))
		if res, b := do(t, req); res.StatusCode != 200 {
			t.Fatalf("revoke: %d %s", res.StatusCode, b)
		}
		s2 := startHTTPAt(t, freePort(t), "--issuer", h.issuer, "--introspection-url", h.admin+"/admin/oauth2/introspect")
		if status, _, raw := whoamiVia(t, s2, tok); status != 401 || !strings.Contains(raw, "not active") {
			t.Errorf("revoked opaque token: %d %s", status, raw)
		}
		if status, _, raw := whoamiVia(t, s2, "not-a-hydra-token"); status != 401 {
			t.Errorf("junk opaque token: %d %s", status, raw)
		}
		// Introspection endpoint down → 503 with Retry-After, not 401.
		h.Stop()
		if status, _, raw := whoamiVia(t, s2, "another-token"); status != 503 {
			t.Errorf("introspection down: %d %s", status, raw)
		}
	})

	t.Run("TypeScriptSDK", func(t *testing.T) {
		ix := needInterop(t)
		h := startHydra(t, bin, "jwt")
		port := freePort(t)
		resource := fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
		secret := h.client(t, "sdk-agent", scopes, []string{resource})
		// The SDK asks for its token with RFC 8707 resource=, which Hydra
		// does not implement (it knows audience=): the token's aud is empty,
		// so idmcp accepts this client's tokens by client_id instead.
		pol := filepath.Join(t.TempDir(), "policy.toml")
		if err := os.WriteFile(pol, []byte("version = 1\n[http]\naudience_claim = \"client_id\"\naudiences = [\"sdk-agent\"]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s := startHTTPAt(t, port, "--issuer", h.issuer, "--policy", pol)
		r := runClient(t, ix, []string{"CLIENT_SECRET=" + secret},
			[]string{"--url", s.mcp, "--client-id", "sdk-agent", "--issuer", h.issuer, "--scope", "todo:read"},
			toolCall{name: "whoami"}, toolCall{name: "todo_list"})
		checkDiscovery(t, r, s.mcp, h.issuer)
		if c := r.call(t, "whoami"); !c.OK || c.IsError {
			t.Fatalf("whoami via the SDK: %+v\ntrace:%s", c, r.traceString())
		}
		if c := r.call(t, "todo_list"); !c.OK || c.IsError {
			t.Fatalf("todo_list via the SDK: %+v\ntrace:%s", c, r.traceString())
		}
		if slices.Contains(r.Tools, "todo_create") {
			t.Errorf("tools/list with todo:read shows todo_create: %v", r.Tools)
		}
	})
}

// startHTTPAt is startHTTP on a given free port (the resource URL must be
// known before the server starts, to register it as the client's audience).
// It waits for /healthz: serving, whether or not the issuer's keys loaded.
func startHTTPAt(t *testing.T, port int, args ...string) *httpServer {
	t.Helper()
	return startHTTPOn(t, port, "/healthz", args...)
}

func anyStrings(v any) []string {
	var out []string
	if a, ok := v.([]any); ok {
		for _, e := range a {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
