package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// devClientSecret finds a client's secret in what `serve --dev` prints.
func devClientSecret(t *testing.T, output, client string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(client) + `\s[^\n]*?\b(dev_[A-Za-z0-9_-]{16,})`).FindStringSubmatch(output)
	if m == nil {
		t.Fatalf("no secret for %s in serve --dev's output:\n%s", client, output)
	}
	return m[1]
}

// devToken posts form to the dev issuer's token endpoint as client.
func devToken(t *testing.T, base, client, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	res, body := do(t, req)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("token endpoint: HTTP %d %s", res.StatusCode, body)
	}
	return res.StatusCode, m
}

// TestDevIssuer_ExchangeKeepsSubjectExpiry, through the built binary: a
// token exchanged later expires with its subject token (each exchange once
// got a fresh lifetime), and a token minted for another audience is not
// exchanged.
func TestDevIssuer_ExchangeKeepsSubjectExpiry(t *testing.T) {
	srv := startHTTP(t, "--dev")
	out := srv.output.String()
	alice, agent := devClientSecret(t, out, "alice"), devClientSecret(t, out, "agent")
	status, body := devToken(t, srv.base, "alice", alice, url.Values{"grant_type": {"client_credentials"}, "resource": {srv.mcp}})
	if status != 200 {
		t.Fatalf("alice's token: %d %v", status, body)
	}
	aliceTok := body["access_token"].(string)
	aliceExp := jwtPart(t, aliceTok, 1)["exp"].(float64)
	// Exchanged a few seconds later: a fresh lifetime would end later.
	time.Sleep(2100 * time.Millisecond)
	exchange := func(subject string) (int, map[string]any) {
		return devToken(t, srv.base, "agent", agent, url.Values{
			"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {subject},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "resource": {srv.mcp},
		})
	}
	status, body = exchange(aliceTok)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, body)
	}
	if got := jwtPart(t, body["access_token"].(string), 1)["exp"].(float64); got != aliceExp {
		t.Errorf("exchanged token exp %v, want the subject token's %v", got, aliceExp)
	}

	// `idmcp token mint` signs with the same dev key; for another audience
	// its token must not be exchanged into one for this server.
	other := strings.TrimSpace(mustIdmcp(t, nil, "token", "mint", "--data-dir", srv.dataDir, "--sub", "alice", "--scope", "todo:read", "--aud", "https://other.example/mcp"))
	if aud := jwtPart(t, other, 1)["aud"]; !strings.Contains(fmt.Sprint(aud), "other.example") {
		t.Fatalf("minted token aud %v", aud)
	}
	status, body = exchange(other)
	if status != 400 || body["error"] != "invalid_grant" || !strings.Contains(fmt.Sprint(body["error_description"]), "not issued for") {
		t.Errorf("exchange of a token for another audience: %d %v, want 400 invalid_grant", status, body)
	}
}
