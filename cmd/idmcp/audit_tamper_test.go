package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idmcp/idmcp/store"
)

// keyedDataDir runs the server on a new data dir for a few calls and stops
// it: an audit log keyed under the data dir's key (in the key file beside
// it here: the test has no keyring), and returns the dir.
func keyedDataDir(t *testing.T, env ...string) string {
	t.Helper()
	dataDir := t.TempDir()
	secret := addSharedProfile(t, dataDir, "tamper", "todo:read todo:write", "")
	s := startRaw(t, append([]string{"IDMCP_SHARED_SECRET=" + secret}, env...), "--profile", "tamper", "--data-dir", dataDir)
	if r := s.call("initialize", legacyInit(secret)); r.Error != nil {
		t.Fatal(r.Error.Message)
	}
	for _, title := range []string{"a", "b", "c"} {
		if r := s.call("tools/call", map[string]any{"name": "todo_create", "arguments": map[string]any{"title": title}}); r.Error != nil {
			t.Fatal(r.Error.Message)
		}
	}
	s.Close()
	return dataDir
}

// sqlExec runs statements on the audit database as someone with write
// access to the file can.
func sqlExec(t *testing.T, dataDir string, qs ...string) {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(dataDir, store.AuditDBName), false, store.SyncNormal, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestAuditVerify_DetectionThroughBinary drives the detection table's
// keyed rows through the built binary and its exit status: 0 ok, 1
// tampered, 3 cannot verify (no key).
func TestAuditVerify_DetectionThroughBinary(t *testing.T) {
	type tc struct {
		name     string
		tamper   func(t *testing.T, dir string)
		anchor   bool
		flags    []string
		wantCode int
		wantOut  string
	}
	dropTriggers := "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete"
	for _, c := range []tc{
		{name: "Intact", wantCode: 0, wantOut: "chain hmac-sha256"},
		{name: "IntactWithAnchor", anchor: true, wantCode: 0, wantOut: "anchor: row"},
		{name: "Edit", tamper: func(t *testing.T, d string) {
			sqlExec(t, d, dropTriggers, "UPDATE audit_log SET subject = 'mallory' WHERE id = 5")
		}, wantCode: 1, wantOut: "TAMPERED (contents)"},
		{name: "DeleteTailNoAnchor", tamper: func(t *testing.T, d string) {
			sqlExec(t, d, "DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log WHERE id > (SELECT max(id) - 2 FROM audit_log)",
				"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log\nBEGIN SELECT RAISE(ABORT, 'audit_log is append-only; use idmcp audit prune'); END")
		}, wantCode: 0, wantOut: "ok: "}, // documented: a cut tail needs an anchor
		{name: "DeleteTailAnchor", anchor: true, tamper: func(t *testing.T, d string) {
			sqlExec(t, d, "DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log WHERE id > (SELECT max(id) - 2 FROM audit_log)",
				"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log\nBEGIN SELECT RAISE(ABORT, 'audit_log is append-only; use idmcp audit prune'); END")
		}, wantCode: 1, wantOut: "TAMPERED (anchor)"},
		{name: "DropTriggers", tamper: func(t *testing.T, d string) { sqlExec(t, d, dropTriggers) }, wantCode: 1, wantOut: "TAMPERED (triggers)"},
		{name: "Emptied", tamper: func(t *testing.T, d string) {
			sqlExec(t, d, "DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log",
				"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log\nBEGIN SELECT RAISE(ABORT, 'audit_log is append-only; use idmcp audit prune'); END")
		}, wantCode: 1, wantOut: "TAMPERED (empty)"},
		{name: "FileDeleted", tamper: func(t *testing.T, d string) {
			for _, f := range []string{"", "-wal", "-shm"} {
				_ = os.Remove(filepath.Join(d, store.AuditDBName+f))
			}
		}, wantCode: 1, wantOut: "TAMPERED (empty)"},
		{name: "KeyMissing", tamper: func(t *testing.T, d string) {
			if err := os.Rename(d+".audit-key", d+".moved"); err != nil {
				t.Fatal(err)
			}
		}, wantCode: 3, wantOut: "CANNOT VERIFY"},
		{name: "KeyMissingLinksOnly", flags: []string{"--links-only"}, tamper: func(t *testing.T, d string) {
			if err := os.Rename(d+".audit-key", d+".moved"); err != nil {
				t.Fatal(err)
			}
		}, wantCode: 0, wantOut: "links only:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := keyedDataDir(t)
			args := append([]string{"audit", "verify", "--data-dir", dir}, c.flags...)
			if c.anchor {
				head := strings.TrimSpace(mustIdmcp(t, nil, "audit", "head", "--data-dir", dir))
				args = append(args, "--expect-head", head)
			}
			if c.tamper != nil {
				c.tamper(t, dir)
			}
			out, errOut, code := runIdmcp(t, nil, args...)
			if code != c.wantCode || !strings.Contains(out, c.wantOut) {
				t.Fatalf("verify: exit %d, want %d; stdout %q (want %q); stderr %s", code, c.wantCode, out, c.wantOut, errOut)
			}
		})
	}
}
