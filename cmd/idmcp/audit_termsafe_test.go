package main_test

import (
	"strings"
	"testing"
)

// TestAuditTail_ForgedToolName: a caller with no scopes calls a tool whose
// name carries a newline, a realistic fake row and bidi controls. Every
// human-readable listing must show it on its own row, escaped; JSON output
// keeps it exact.
func TestAuditTail_ForgedToolName(t *testing.T) {
	dataDir := t.TempDir()
	secret := addSharedProfile(t, dataDir, "noscopes", "", "")
	s := startRaw(t, []string{"IDMCP_SHARED_SECRET=" + secret}, "--profile", "noscopes", "--data-dir", dataDir)
	if r := s.call("initialize", legacyInit(secret)); r.Error != nil {
		t.Fatal(r.Error.Message)
	}
	forged := "x\n9999  2026-12-06 04:00:00.000  tools/call      root via admin  todo_delete  allow/ok  allowed\u202e\u2066\tz"
	if r := s.call("tools/call", map[string]any{"name": forged, "arguments": map[string]any{}}); r.Error == nil {
		t.Fatal("a call to an unknown tool was not refused")
	}
	s.Close()
	rows := auditRows(t, dataDir)
	found := false
	for _, r := range rows {
		found = found || r["tool"] == forged // JSON is exact
	}
	if !found {
		t.Fatalf("no row holds the tool name exactly: %v", rows)
	}
	for _, args := range [][]string{{"tail", "-n", "100"}, {"query"}, {"sql", "SELECT id, tool, reason FROM audit_log"}} {
		out := mustIdmcp(t, nil, append(append([]string{"audit"}, args...), "--data-dir", dataDir)...)
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		want := len(rows)
		if args[0] != "tail" {
			want++ // the header
		}
		if len(lines) != want {
			t.Errorf("audit %v: %d lines for %d rows:\n%s", args, len(lines), len(rows), out)
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "9999") {
				t.Errorf("audit %v printed a forged line: %q", args, l)
			}
			if strings.ContainsAny(l, "\u202e\u2066\t\r") {
				t.Errorf("audit %v: a control reached the terminal: %q", args, l)
			}
		}
		if !strings.Contains(out, `x\n9999`) || !strings.Contains(out, `\u202e\u2066\tz`) {
			t.Errorf("audit %v does not show the escaped name:\n%s", args, out)
		}
	}
}
