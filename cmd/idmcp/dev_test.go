package main_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// waitReady polls the server's /readyz (the dev issuer's keys load once the
// listener serves).
func waitReady(t *testing.T, resource string) {
	t.Helper()
	u := strings.TrimSuffix(resource, "/mcp") + "/readyz"
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 15s", u)
}

// TestTokenMint: a minted token is accepted by a --dev server with the same
// data dir (its key and issuer), and refused by one with another issuer.
func TestTokenMint_DevServer(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startBearerServer(t, "--http", "127.0.0.1:0", "--dev", "--data-dir", dirA)
	waitReady(t, a.resource)
	b := startBearerServer(t, "--http", "127.0.0.1:0", "--dev", "--data-dir", dirB)
	waitReady(t, b.resource)

	tok := strings.TrimSpace(mustIdmcp(t, nil, "token", "mint", "--data-dir", dirA, "--sub", "dana", "--scope", "todo:read", "--act", "agent-1,agent-2", "--ttl", "5m"))
	whoami := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`
	status, _, body := a.post(t, tok, whoami)
	if status != 200 || !strings.Contains(string(body), `\"subject\": \"dana\"`) || !strings.Contains(string(body), "agent-1") ||
		!strings.Contains(string(body), `\"dev_issuer\": true`) {
		t.Fatalf("minted token on its own dev server: %d %s", status, body)
	}
	status, hdr, _ := b.post(t, tok, whoami)
	if status != 401 || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("minted token on another issuer's server: %d %q, want 401 invalid_token", status, hdr.Get("WWW-Authenticate"))
	}
	if _, stderr, code := runIdmcp(t, nil, "token", "mint", "--data-dir", dirA, "--sub", "dana", "--ttl", "25h"); code != 2 || !strings.Contains(stderr, "over the 24h0m0s limit") {
		t.Fatalf("--ttl 25h: exit %d %q, want a refusal", code, stderr)
	}
	if _, stderr, code := runIdmcp(t, nil, "serve", "--http", "127.0.0.1:0", "--dev", "--issuer", "https://idp.example", "--data-dir", dirA); code != 2 || !strings.Contains(stderr, "--dev never combines with --issuer") {
		t.Fatalf("--dev with --issuer: exit %d %q", code, stderr)
	}
	if _, stderr, code := runIdmcp(t, nil, "serve", "--http", "0.0.0.0:0", "--dev", "--data-dir", dirA); code != 2 || !strings.Contains(stderr, "only on a loopback address") {
		t.Fatalf("--dev off loopback: exit %d %q", code, stderr)
	}
}
