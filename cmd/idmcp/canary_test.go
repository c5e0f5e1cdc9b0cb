package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCanary_NoSecretReachesAnyOutput plants a known secret as the host
// secret and sends it, and near-misses of it, in every place a client can put
// one; then searches every output the product writes: protocol responses,
// stderr, CLI output and the audit database's bytes (db, WAL, shm).
func TestCanary_NoSecretReachesAnyOutput(t *testing.T) {
	dataDir := t.TempDir()
	mustIdmcp(t, nil, "host", "add", "canary", "--no-keyring", "--scopes", "todo:read todo:write", "--data-dir", dataDir)
	const canary = "idmcp_CANARYcanaryCANARYcanaryCANARYcanary0123"
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlY2FuYXJ5"
	needles := []string{canary, canary[:len(canary)-1], "CANARYcanaryCANARY", jwt, "s3cr3t-p4ssw0rd-canary",
		// Issue 13.4: the host secret changed in case or split, vendor
		// formats, free-text credentials, a fullwidth key name.
		"canarycanarycanarycanary", "naryCANARYcanary0123", "AKIAQ3CANARYX7Y2Z4W5", "ghp_CANARYa1b2c3d4e5f6g7h8i9j0",
		"xoxb-1234-CANARYslack", "sk-proj-CANARYopenai0123456789", "fr33text-canary", "t0kenh3ader-canary", "curlpw-canary", "fullwidth-canary"}

	var responses strings.Builder
	// Tool results are the tool's data (a todo's title is what the caller
	// wrote); error messages are the server's words and must carry no secret.
	// A wrong try (prefix of the secret) first, then the right secret.
	bad := startRaw(t, []string{"IDMCP_SHARED_SECRET=" + canary, "IDMCP_TOKEN=" + canary[:len(canary)-1]}, "--profile", "canary", "--data-dir", dataDir)
	for _, m := range []string{"initialize", "tools/list"} {
		r := bad.call(m, legacyInit(""))
		responses.WriteString(r.Error.Message)
	}
	bad.Close()
	s := startRaw(t, []string{"IDMCP_SHARED_SECRET=" + canary}, "--profile", "canary", "--data-dir", dataDir, "--log-level", "debug")
	if r := s.call("initialize", legacyInit(canary)); r.Error != nil {
		t.Fatalf("initialize: %s", r.Error.Message)
	}
	calls := []map[string]any{
		{"name": "todo_list", "arguments": map[string]any{"password": "s3cr3t-p4ssw0rd-canary"}},
		{"name": "todo_create", "arguments": map[string]any{"title": "token is " + canary, "note": "Bearer " + jwt}},
		{"name": "todo_create", "arguments": map[string]any{"title": "auth " + jwt}},
		{"name": "todo_delete", "arguments": map[string]any{"id": 1, "authorization": "Bearer " + canary}},
		{"name": canary, "arguments": map[string]any{}},
		{"name": "whoami", "arguments": map[string]any{"token": canary}},
		{"name": "todo_create", "arguments": map[string]any{"title": "body " + canary[6:] + " lower " + strings.ToLower(canary[6:]) +
			" split " + canary[:26] + " " + canary[26:]}},
		{"name": "todo_create", "arguments": map[string]any{"title": "keys AKIAQ3CANARYX7Y2Z4W5 ghp_CANARYa1b2c3d4e5f6g7h8i9j0 xoxb-1234-CANARYslack sk-proj-CANARYopenai0123456789"}},
		{"name": "todo_create", "arguments": map[string]any{"title": "password: fr33text-canary; Authorization: Token t0kenh3ader-canary; curl -u me:curlpw-canary https://x"}},
		{"name": "todo_create", "arguments": map[string]any{"title": "fw", "ＰＡＳＳＷＯＲＤ": "fullwidth-canary"}},
	}
	for _, c := range calls {
		r := s.call("tools/call", c)
		if r.Error != nil {
			responses.WriteString(r.Error.Message)
		}
	}
	// A modern request presenting a wrong credential that embeds the canary.
	r := s.call("tools/list", map[string]any{"_meta": modernMeta("x" + canary)})
	if r.Error == nil {
		t.Fatal("a wrong modern credential was accepted")
	}
	responses.WriteString(r.Error.Message)
	s.Close()

	outputs := map[string]string{
		"protocol error messages": responses.String(),
		"server stderr":           s.stderr.String() + bad.stderr.String(),
		"audit query --json":      mustIdmcp(t, nil, "audit", "query", "--json", "--data-dir", dataDir),
		"audit query":             mustIdmcp(t, nil, "audit", "query", "--data-dir", dataDir),
		"host list":               mustIdmcp(t, nil, "host", "list", "--data-dir", dataDir),
	}
	for _, name := range []string{"audit.db", "audit.db-wal", "audit.db-shm", "hosts.json"} {
		b, err := os.ReadFile(filepath.Join(dataDir, name))
		if err == nil {
			outputs[name] = string(b)
		}
	}
	if outputs["audit.db"] == "" {
		t.Fatal("no audit.db written")
	}
	for where, text := range outputs {
		for _, n := range needles {
			if strings.Contains(text, n) {
				t.Errorf("%s contains planted secret %q", where, n[:12]+"…")
			}
		}
	}
	// The rows are there, just redacted.
	if !bytes.Contains([]byte(outputs["audit query --json"]), []byte("[REDACTED]")) {
		t.Error("no [REDACTED] marker in the audit rows; were the calls recorded?")
	}
}
