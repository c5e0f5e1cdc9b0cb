package devissuer_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth/devissuer"
)

const resource = "http://127.0.0.1:9/mcp"

func newIssuer(t *testing.T) (*devissuer.Issuer, *devissuer.Key, *httptest.Server, map[string]string) {
	t.Helper()
	key, err := devissuer.LoadOrCreateKey(filepath.Join(t.TempDir(), devissuer.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	clients := devissuer.DefaultClients([]string{"todo:read", "todo:write", "files:read"})
	secrets := map[string]string{}
	for i := range clients {
		clients[i].Secret = devissuer.NewSecret()
		secrets[clients[i].ID] = clients[i].Secret
	}
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	iss, err := devissuer.New(devissuer.Config{Issuer: srv.URL, Resource: resource, Key: key, Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = iss.Handler()
	return iss, key, srv, secrets
}

func postToken(t *testing.T, srv *httptest.Server, client, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+devissuer.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestLoadOrCreateKey_PersistsWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), devissuer.KeyFile)
	k1, err := devissuer.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v err %v, want 0600", fi.Mode().Perm(), err)
	}
	k2, err := devissuer.LoadOrCreateKey(path)
	if err != nil || k2.KID != k1.KID {
		t.Fatalf("reloaded kid %q err %v, want %q", k2.KID, err, k1.KID)
	}
}

func TestToken(t *testing.T) {
	iss, key, srv, secrets := newIssuer(t)
	issuer := iss.Metadata()["issuer"].(string)
	tests := []struct {
		name       string
		client     string
		secret     string
		form       url.Values
		wantStatus int
		wantErr    string
		wantScope  string
	}{
		{"ClientCredentials", "alice", "", url.Values{"grant_type": {"client_credentials"}, "resource": {resource}}, 200, "", "todo:read files:read"},
		{"ScopeSubset", "bob", "", url.Values{"grant_type": {"client_credentials"}, "scope": {"todo:read"}}, 200, "", "todo:read"},
		{"ScopeBeyondClient", "alice", "", url.Values{"grant_type": {"client_credentials"}, "scope": {"todo:write"}}, 400, "invalid_scope", ""},
		{"WrongResource", "alice", "", url.Values{"grant_type": {"client_credentials"}, "resource": {"https://other.example/mcp"}}, 400, "invalid_target", ""},
		{"WrongSecret", "alice", "dev_wrong-secret-of-some-length", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client", ""},
		{"UnknownClient", "mallory", "dev_wrong-secret-of-some-length", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client", ""},
		{"UnsupportedGrant", "alice", "", url.Values{"grant_type": {"password"}}, 400, "unsupported_grant_type", ""},
		{"ExchangeNotAllowed", "alice", "", url.Values{"grant_type": {devissuer.GrantExchange}, "subject_token": {"x"}, "subject_token_type": {devissuer.TokenTypeAccess}}, 400, "unauthorized_client", ""},
		{"ExchangeGarbage", "agent", "", url.Values{"grant_type": {devissuer.GrantExchange}, "subject_token": {"x.y.z"}, "subject_token_type": {devissuer.TokenTypeAccess}}, 400, "invalid_grant", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			secret := tc.secret
			if secret == "" {
				secret = secrets[tc.client]
			}
			status, body := postToken(t, srv, tc.client, secret, tc.form)
			if status != tc.wantStatus {
				t.Fatalf("status %d body %v, want %d", status, body, tc.wantStatus)
			}
			if tc.wantErr != "" {
				if body["error"] != tc.wantErr {
					t.Fatalf("error %v, want %s", body["error"], tc.wantErr)
				}
				return
			}
			if body["scope"] != tc.wantScope || body["token_type"] != "Bearer" {
				t.Fatalf("body %v, want scope %q", body, tc.wantScope)
			}
			c, err := key.Parse(body["access_token"].(string), issuer, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if c.Subject != tc.client || c.ClientID != tc.client || !c.Dev || !slices.Equal([]string(c.Audience), []string{resource}) {
				t.Fatalf("claims %+v", c)
			}
		})
	}
}

func TestToken_ExchangeBuildsActChain(t *testing.T) {
	iss, key, srv, secrets := newIssuer(t)
	issuer := iss.Metadata()["issuer"].(string)
	_, body := postToken(t, srv, "alice", secrets["alice"], url.Values{"grant_type": {"client_credentials"}})
	aliceTok := body["access_token"].(string)
	exchange := func(client, subjectToken, scope string) (int, map[string]any) {
		form := url.Values{"grant_type": {devissuer.GrantExchange}, "subject_token": {subjectToken}, "subject_token_type": {devissuer.TokenTypeAccess}, "resource": {resource}}
		if scope != "" {
			form.Set("scope", scope)
		}
		return postToken(t, srv, client, secrets[client], form)
	}
	status, body := exchange("agent", aliceTok, "todo:read")
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, body)
	}
	once := body["access_token"].(string)
	status, body = exchange("sub-agent", once, "")
	if status != 200 {
		t.Fatalf("second exchange: %d %v", status, body)
	}
	c, err := key.Parse(body["access_token"].(string), issuer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.ClientID != "sub-agent" || c.Scope != "todo:read" {
		t.Errorf("claims sub=%s client_id=%s scope=%q, want alice, sub-agent, todo:read", c.Subject, c.ClientID, c.Scope)
	}
	if got, want := c.Act.Chain(), []string{"sub-agent", "agent"}; !slices.Equal(got, want) {
		t.Errorf("act chain %v, want %v", got, want)
	}
	// Delegation never widens: alice has no todo:write.
	if status, body := exchange("agent", aliceTok, "todo:write"); status != 400 || body["error"] != "invalid_scope" {
		t.Errorf("widening exchange: %d %v, want invalid_scope", status, body)
	}
}

func TestMint_RefusesLongTTL(t *testing.T) {
	key, err := devissuer.LoadOrCreateKey(filepath.Join(t.TempDir(), devissuer.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	_, err = key.Mint(devissuer.MintRequest{Issuer: "http://127.0.0.1:1", Subject: "s", Audience: []string{resource}, TTL: 25 * time.Hour})
	if err == nil || !strings.Contains(err.Error(), "over the 24h0m0s limit") {
		t.Fatalf("err %v, want a TTL refusal", err)
	}
}

func TestMetadata_MarkedDev(t *testing.T) {
	_, _, srv, _ := newIssuer(t)
	resp, err := srv.Client().Get(srv.URL + devissuer.PathMetadata)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if m["issuer"] != srv.URL || m["idmcp_dev_issuer"] != true || m["token_endpoint"] != srv.URL+devissuer.PathToken {
		t.Fatalf("metadata %v", m)
	}
}

// TestToken_ExchangeNeverOutlivesSubject: an exchanged token expires when
// its subject token does (a chain of exchanges once renewed a token up to
// the act-chain depth), and a subject token minted for another audience is
// not exchanged.
func TestToken_ExchangeNeverOutlivesSubject(t *testing.T) {
	key, err := devissuer.LoadOrCreateKey(filepath.Join(t.TempDir(), devissuer.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	clients := devissuer.DefaultClients([]string{"todo:read"})
	secrets := map[string]string{}
	for i := range clients {
		clients[i].Secret = devissuer.NewSecret()
		secrets[clients[i].ID] = clients[i].Secret
	}
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	iss, err := devissuer.New(devissuer.Config{Issuer: srv.URL, Resource: resource, Key: key, Clients: clients, TTL: 15 * time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = iss.Handler()
	exchange := func(client, subjectToken string) (int, map[string]any) {
		return postToken(t, srv, client, secrets[client], url.Values{"grant_type": {devissuer.GrantExchange}, "subject_token": {subjectToken}, "subject_token_type": {devissuer.TokenTypeAccess}})
	}
	_, body := postToken(t, srv, "alice", secrets["alice"], url.Values{"grant_type": {"client_credentials"}})
	aliceTok := body["access_token"].(string)
	aliceExp := now.Add(15 * time.Minute)

	now = now.Add(10 * time.Minute)
	status, body := exchange("agent", aliceTok)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, body)
	}
	if got := body["expires_in"]; got != float64(300) {
		t.Errorf("expires_in %v, want 300 (what is left of the subject token)", got)
	}
	once := body["access_token"].(string)
	c, err := key.Parse(once, srv.URL, now)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.Equal(aliceExp) {
		t.Errorf("exchanged exp %v, want the subject's %v", c.ExpiresAt.Time, aliceExp)
	}
	// A second exchange, later, still ends with alice's token.
	now = now.Add(4 * time.Minute)
	status, body = exchange("sub-agent", once)
	if status != 200 {
		t.Fatalf("second exchange: %d %v", status, body)
	}
	c, err = key.Parse(body["access_token"].(string), srv.URL, now)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.Equal(aliceExp) {
		t.Errorf("second exchange exp %v, want the subject's %v", c.ExpiresAt.Time, aliceExp)
	}
	// Past alice's expiry nothing is exchanged.
	now = aliceExp.Add(time.Second)
	if status, body := exchange("agent", once); status != 400 || body["error"] != "invalid_grant" {
		t.Errorf("exchange of an expired token: %d %v, want invalid_grant", status, body)
	}

	// A token of this issuer for another resource is not exchanged.
	now = time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	other, err := key.Mint(devissuer.MintRequest{Issuer: srv.URL, Subject: "alice", Audience: []string{"https://other.example/mcp"}, Scopes: []string{"todo:read"}, TTL: time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	status, body = exchange("agent", other)
	if status != 400 || body["error"] != "invalid_grant" || !strings.Contains(body["error_description"].(string), resource) {
		t.Errorf("exchange of a token for another audience: %d %v, want invalid_grant naming %s", status, body, resource)
	}
}
