package main_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestAuditCLI_WhileServing runs every audit command against a data dir
// whose server is running and writing.
func TestAuditCLI_WhileServing(t *testing.T) {
	dataDir := t.TempDir()
	secret := addSharedProfile(t, dataDir, "cli", "todo:read todo:write", "")
	s := startRaw(t, []string{"IDMCP_SHARED_SECRET=" + secret}, "--profile", "cli", "--data-dir", dataDir)
	if r := s.call("initialize", legacyInit(secret)); r.Error != nil {
		t.Fatal(r.Error.Message)
	}
	call := func(title string) {
		t.Helper()
		r := s.call("tools/call", map[string]any{"name": "todo_create", "arguments": map[string]any{"title": title}})
		if r.Error != nil {
			t.Fatalf("todo_create: %s", r.Error.Message)
		}
	}
	for i := range 5 {
		call(fmt.Sprintf("before-%d", i))
	}
	// A denied call, for the views.
	s.call("tools/call", map[string]any{"name": "no_such_tool", "arguments": map[string]any{}})
	dd := []string{"--data-dir", dataDir}
	audit := func(args ...string) string {
		return mustIdmcp(t, nil, append(append([]string{"audit"}, args...), dd...)...)
	}

	t.Run("QueryCSV", func(t *testing.T) {
		recs, err := csv.NewReader(strings.NewReader(audit("query", "--csv", "--tool", "todo_create"))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		// Five intent rows (with the arguments) and their five outcome rows.
		if len(recs) != 11 || recs[0][0] != "id" || recs[0][11] != "arguments" || !strings.Contains(recs[1][11], "before-0") {
			t.Fatalf("csv: %q", recs)
		}
	})
	t.Run("Export", func(t *testing.T) {
		lines := strings.Split(strings.TrimSpace(audit("export", "--format", "jsonl", "--since", "1h", "--tool", "todo_create")), "\n")
		if len(lines) != 11 {
			t.Fatalf("export: %d lines, want 10 rows and the head", len(lines))
		}
		// The last line carries the chain head, the anchor audit verify takes.
		var head struct {
			Head string `json:"audit_head"`
		}
		if err := json.Unmarshal([]byte(lines[10]), &head); err != nil || head.Head == "" {
			t.Fatalf("export's last line %s: want {\"audit_head\":\"ID:HASH\"}", lines[10])
		}
		if out := audit("verify", "--expect-head", head.Head); !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "anchor: row") {
			t.Fatalf("verify --expect-head %s: %s", head.Head, out)
		}
		lines = lines[:10]
		var row struct {
			ID        int64             `json:"id"`
			Arguments map[string]string `json:"arguments"`
			Hash      string            `json:"hash"`
		}
		if err := json.Unmarshal([]byte(lines[0]), &row); err != nil {
			t.Fatalf("export line %s: %v (arguments must be an object)", lines[0], err)
		}
		if row.Arguments["title"] != "before-0" || len(row.Hash) != 64 {
			t.Fatalf("export row: %+v", row)
		}
		// query --json and tail --json write the same objects as export.
		for _, args := range [][]string{{"query", "--json"}, {"tail", "-n", "10", "--json"}} {
			if got := strings.Split(strings.TrimSpace(audit(append(args, "--since", "1h", "--tool", "todo_create")...)), "\n"); strings.Join(got, "\n") != strings.Join(lines, "\n") {
				t.Fatalf("audit %v:\n%s\nwant export's lines:\n%s", args, strings.Join(got, "\n"), strings.Join(lines, "\n"))
			}
		}
		after := audit("export", "--after-id", fmt.Sprint(row.ID))
		if strings.Contains(after, `"id":`+fmt.Sprint(row.ID)+",") {
			t.Fatal("--after-id returned the row itself")
		}
	})
	t.Run("SQL", func(t *testing.T) {
		out := audit("sql", "SELECT tool, count(*) AS calls FROM audit_calls GROUP BY tool ORDER BY tool")
		want := "tool          calls\nno_such_tool  1\ntodo_create   5\n"
		if out != want {
			t.Fatalf("audit sql:\n%s\nwant:\n%s", out, want)
		}
		out = audit("sql", "--json", "SELECT subject, count(*) AS n FROM audit_denials GROUP BY subject")
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil || m["n"] != 1.0 {
			t.Fatalf("audit sql --json: %s (%v)", out, err)
		}
		// Columns in the query's order, not sorted; every SQLite type.
		out = audit("sql", "--json", "SELECT 'z' AS zeta, 2 AS alpha, 1.5 AS mid, NULL AS empty, x'00ff' AS bytes, 1e999 AS inf")
		if want := `{"zeta":"z","alpha":2,"mid":1.5,"empty":null,"bytes":"x'00ff'","inf":"+Inf"}` + "\n"; out != want {
			t.Fatalf("audit sql --json:\n%s\nwant:\n%s", out, want)
		}
	})
	t.Run("SQLRefusesWrites", func(t *testing.T) {
		for _, q := range []string{"DELETE FROM audit_log", "DROP TRIGGER audit_log_no_delete", "ATTACH DATABASE '" + dataDir + "/audit.db' AS w"} {
			out, errOut, code := runIdmcp(t, nil, append([]string{"audit", "sql", q}, dd...)...)
			if code == 0 || !strings.Contains(errOut, "read-only") {
				t.Fatalf("audit sql %q: exit %d, stdout %q, stderr %q; want a read-only error", q, code, out, errOut)
			}
		}
	})
	t.Run("Schema", func(t *testing.T) {
		if out := audit("schema"); !strings.Contains(out, "audit_denials") || !strings.Contains(out, "prev_hash") {
			t.Fatalf("audit schema:\n%s", out)
		}
		if out := audit("schema", "--sql"); !strings.Contains(out, "CREATE TABLE audit_log") || !strings.Contains(out, "CREATE VIEW audit_tool_calls") {
			t.Fatalf("audit schema --sql:\n%s", out)
		}
	})
	t.Run("Tail", func(t *testing.T) {
		lines := strings.Split(strings.TrimSpace(audit("tail", "-n", "3")), "\n")
		if len(lines) != 3 || !strings.Contains(lines[2], "no_such_tool") {
			t.Fatalf("audit tail -n 3:\n%s", strings.Join(lines, "\n"))
		}
	})
	t.Run("TailFollow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, binPath, append([]string{"audit", "tail", "-f", "-n", "0", "--interval", "50ms", "--json"}, dd...)...)
		cmd.Env = cleanEnv()
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // tail has read the head
		call("followed")
		sc := bufio.NewScanner(stdout)
		found := false
		for !found && sc.Scan() {
			found = strings.Contains(sc.Text(), `followed`)
		}
		if !found {
			t.Fatal("tail -f did not print the new row")
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("tail -f after SIGINT: %v, want exit 0", err)
		}
	})
	t.Run("PruneThenVerify", func(t *testing.T) {
		// Everything written so far is pruned while the server keeps
		// writing; its next rows chain to the prune row.
		out := audit("prune", "--before", "0s")
		if !strings.HasPrefix(out, "pruned ") {
			t.Fatalf("audit prune: %s", out)
		}
		call("after-prune")
		out = audit("verify")
		if !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "from checkpoint 1") {
			t.Fatalf("audit verify after prune: %s", out)
		}
		rows := auditRows(t, dataDir)
		if rows[0]["event"] != "audit/prune" || !strings.Contains(fmt.Sprint(rows[len(rows)-1]["arguments"]), "after-prune") {
			t.Fatalf("after prune: first %v, last %v", rows[0]["event"], rows[len(rows)-1]["arguments"])
		}
	})
	t.Run("ErrUsage", func(t *testing.T) {
		for _, args := range [][]string{
			{"query", "--json", "--csv"},
			{"query", "--decision", "maybe"},
			{"export", "--format", "xml"},
			{"tail", "--interval", "1ms"},
			{"prune"},
			{"prune", "--before", "next week"},
			{"sql"},
			{"frobnicate"},
		} {
			_, errOut, code := runIdmcp(t, nil, append(append([]string{"audit"}, args...), dd...)...)
			if code != 2 {
				t.Errorf("audit %v: exit %d, want 2 (stderr %q)", args, code, errOut)
			}
		}
	})
}
