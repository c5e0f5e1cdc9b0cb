package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestKeyring_HostLifecycle runs host add / serve / rotate / remove against
// the real Secret Service. scripts/ci runs it under dbus-run-session with an
// unlocked gnome-keyring-daemon and IDMCP_TEST_KEYRING=1, where it must not
// skip; elsewhere it skips with the reason.
func TestKeyring_HostLifecycle(t *testing.T) {
	if os.Getenv("IDMCP_TEST_KEYRING") != "1" {
		t.Skip("set IDMCP_TEST_KEYRING=1 under a Secret Service session (scripts/ci does) to run the keyring tests")
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		t.Fatal("IDMCP_TEST_KEYRING=1 but no D-Bus session bus")
	}
	dataDir := t.TempDir()
	out := mustIdmcp(t, nil, "host", "add", "desk", "--scopes", "todo:read", "--data-dir", dataDir)
	tok := tokenFromHostAdd(t, out)
	for _, want := range []string{`"mcpServers"`, `"IDMCP_TOKEN"`, `"serve"`, `"--profile"`, `"desk"`, "keyring"} {
		if !strings.Contains(out, want) {
			t.Errorf("host add output lacks %s:\n%s", want, out)
		}
	}
	// The secret really is in the Secret Service (checked with another client).
	if lookup, err := exec.Command("secret-tool", "lookup", "service", "idmcp", "username", "desk").Output(); err != nil || strings.TrimSpace(string(lookup)) != tok {
		t.Fatalf("secret-tool lookup: err %v, matches token: %v", err, strings.TrimSpace(string(lookup)) == tok)
	}
	if list := mustIdmcp(t, nil, "host", "list", "--data-dir", dataDir); !strings.Contains(list, "desk") || !strings.Contains(list, "keyring") || strings.Contains(list, tok) {
		t.Errorf("host list:\n%s", list)
	}

	serveWith := func(token string) rpcResponse {
		s := startRaw(t, []string{"IDMCP_TOKEN=" + token}, "--profile", "desk", "--data-dir", dataDir)
		defer s.Close()
		return s.call("initialize", legacyInit(""))
	}
	if r := serveWith(tok); r.Error != nil {
		t.Fatalf("keyring token refused: %s", r.Error.Message)
	}
	// Rotation: the old token stops working, the new one works.
	tok2 := tokenFromHostAdd(t, mustIdmcp(t, nil, "host", "rotate", "desk", "--data-dir", dataDir))
	if tok2 == tok {
		t.Fatal("rotate returned the same token")
	}
	if r := serveWith(tok); r.Error == nil || !strings.Contains(r.Error.Message, "does not match") {
		t.Fatalf("old token after rotate: %+v", r.Error)
	}
	if r := serveWith(tok2); r.Error != nil {
		t.Fatalf("new token refused: %s", r.Error.Message)
	}
	// Removal deletes the keyring entry and the profile.
	mustIdmcp(t, nil, "host", "remove", "desk", "--data-dir", dataDir)
	if err := exec.Command("secret-tool", "lookup", "service", "idmcp", "username", "desk").Run(); err == nil {
		t.Error("keyring entry still present after host remove")
	}
	if r := serveWith(tok2); r.Error == nil || !strings.Contains(r.Error.Message, "does not exist") {
		t.Fatalf("removed profile: %+v", r.Error)
	}
}

// TestKeyring_DemoUsesKeyringWhenAvailable: with a Secret Service, the demo
// adds a host profile whose secret is in the keyring, and it authenticates.
func TestKeyring_DemoUsesKeyringWhenAvailable(t *testing.T) {
	if os.Getenv("IDMCP_TEST_KEYRING") != "1" {
		t.Skip("set IDMCP_TEST_KEYRING=1 under a Secret Service session (scripts/ci does) to run the keyring tests")
	}
	out := mustIdmcp(t, nil, "demo", "--json")
	var rep demoJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Personas) == 0 || rep.Personas[0].Name != "desktop" {
		t.Fatalf("no keyring persona in the demo: %+v", rep.Personas)
	}
	if !rep.Matrix["desktop"]["todo_create"].Allowed || rep.Matrix["desktop"]["todo_delete"].Allowed {
		t.Errorf("desktop (keyring) matrix %+v: want todo_create allowed, todo_delete denied", rep.Matrix["desktop"])
	}
}

// TestKeyring_AuditKey: with a Secret Service, the server keeps the data
// dir's audit key there (service idmcp, account audit-key:<data dir>), no
// key file is written, and audit verify checks the HMAC chain with it.
// scripts/ci runs it with the other keyring tests.
func TestKeyring_AuditKey(t *testing.T) {
	if os.Getenv("IDMCP_TEST_KEYRING") != "1" {
		t.Skip("set IDMCP_TEST_KEYRING=1 under a Secret Service session (scripts/ci does) to run the keyring tests")
	}
	dataDir := keyedDataDir(t)
	lookup, err := exec.Command("secret-tool", "lookup", "service", "idmcp", "username", "audit-key:"+dataDir).Output()
	if err != nil || len(strings.TrimSpace(string(lookup))) != 64 {
		t.Fatalf("secret-tool lookup of the audit key: err %v, %d characters", err, len(strings.TrimSpace(string(lookup))))
	}
	if _, err := os.Stat(dataDir + ".audit-key"); !os.IsNotExist(err) {
		t.Fatalf("a key file was written beside the data dir although the keyring works: %v", err)
	}
	out := mustIdmcp(t, nil, "audit", "verify", "--data-dir", dataDir)
	if !strings.Contains(out, "chain hmac-sha256") || !strings.Contains(out, "OS keyring entry") {
		t.Fatalf("audit verify: %s", out)
	}
	// The key file route still refuses: --no-keyring finds no key there.
	if out, _, code := runIdmcp(t, nil, "audit", "verify", "--no-keyring", "--data-dir", dataDir); code != 3 {
		t.Fatalf("verify --no-keyring without a key file: exit %d, want 3\n%s", code, out)
	}
	_ = exec.Command("secret-tool", "clear", "service", "idmcp", "username", "audit-key:"+dataDir).Run()
}
