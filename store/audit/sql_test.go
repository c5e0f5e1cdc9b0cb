package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idmcp/idmcp/store/audit"
)

func TestReader_Select(t *testing.T) {
	ctx := context.Background()
	path := MustWrite(t, 5)
	r := MustReader(t, path)
	t.Run("OK", func(t *testing.T) {
		var got [][]any
		var cols []string
		err := r.Select(ctx, "SELECT id, subject, duration_us / 1000.0 AS ms, NULL AS n, x'ff00' AS b FROM audit_log WHERE id <= 2 ORDER BY id",
			func(c []string, v []any) error {
				cols = c
				got = append(got, v)
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(cols, ",") != "id,subject,ms,n,b" || len(got) != 2 {
			t.Fatalf("cols %v rows %v", cols, got)
		}
		if got[1][0] != int64(2) || got[1][1] != "alice" || got[1][2] != 1.0 || got[1][3] != nil || got[1][4] != "x'ff00'" {
			t.Fatalf("row 2: %#v", got[1])
		}
	})
	t.Run("Views", func(t *testing.T) {
		n := 0
		if err := r.Select(ctx, "SELECT * FROM audit_tool_calls", func([]string, []any) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 5 {
			t.Fatalf("audit_tool_calls rows=%d, want 5", n)
		}
	})
	for _, q := range []string{
		"INSERT INTO audit_checkpoint (ts, pruned_before, pruned_rows, last_id, last_hash) VALUES ('', '', 0, 0, '')",
		"DELETE FROM audit_log",
		"DROP TRIGGER audit_log_no_delete",
		"CREATE TABLE x (a)",
		"PRAGMA query_only = 0; DELETE FROM audit_log",
	} {
		t.Run("ErrReadOnly/"+strings.Fields(q)[0], func(t *testing.T) {
			err := r.Select(ctx, q, func([]string, []any) error { return nil })
			if !errors.Is(err, audit.ErrReadOnly) {
				t.Fatalf("Select(%q): %v, want ErrReadOnly", q, err)
			}
		})
	}
	if got := len(MustRows(t, path)); got != 5 {
		t.Fatalf("rows=%d after the refused writes, want 5", got)
	}
	t.Run("ErrSyntax", func(t *testing.T) {
		err := r.Select(ctx, "SELEC 1", func([]string, []any) error { return nil })
		if err == nil || errors.Is(err, audit.ErrReadOnly) {
			t.Fatalf("Select(syntax error): %v", err)
		}
	})
	// mode=ro covers the main database only: ATTACH would open another
	// file, or the audit database itself, read-write. The authorizer refuses.
	for _, tc := range []struct{ name, query string }{
		{"Attach", "ATTACH DATABASE '{other}' AS x"},
		{"AttachItself", "ATTACH DATABASE '{path}' AS w"},
		{"VacuumInto", "VACUUM INTO '{other}'"},
	} {
		t.Run("ErrReadOnly/"+tc.name, func(t *testing.T) {
			other := filepath.Join(t.TempDir(), "x.db")
			q := strings.NewReplacer("{other}", other, "{path}", path).Replace(tc.query)
			err := r.Select(ctx, q, func([]string, []any) error { return nil })
			if !errors.Is(err, audit.ErrReadOnly) {
				t.Fatalf("Select(%q): %v, want ErrReadOnly", q, err)
			}
			if _, err := os.Stat(other); err == nil {
				t.Fatal("a file was created through the read-only connection")
			}
		})
	}
	t.Run("UsableAfterRefusal", func(t *testing.T) {
		n := 0
		if err := r.Select(ctx, "SELECT count(*) FROM audit_log", func(_ []string, v []any) error { n = int(v[0].(int64)); return nil }); err != nil || n != 5 {
			t.Fatalf("count=%d, %v", n, err)
		}
	})
}

func TestRow_Export(t *testing.T) {
	rows := MustRows(t, MustWrite(t, 1))
	b, err := json.Marshal(rows[0].Export())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	args, ok := m["arguments"].(map[string]any)
	if !ok || args["title"] != "row 0" {
		t.Fatalf("arguments exported as %T %v, want an object", m["arguments"], m["arguments"])
	}
	if m["hash"] != rows[0].Hash || m["id"] != 1.0 {
		t.Fatalf("export: %s", b)
	}
	broken := rows[0]
	broken.Arguments = "{not json"
	b, _ = json.Marshal(broken.Export())
	if !json.Valid(b) || !strings.Contains(string(b), `"arguments":"{not json"`) {
		t.Fatalf("damaged arguments exported as %s", b)
	}
}

func TestRow_CSVRecord(t *testing.T) {
	r := MustRows(t, MustWrite(t, 1))[0]
	r.ClientName = "=HYPERLINK(\"http://x\")"
	r.Reason = "-2+3"
	rec := r.CSVRecord()
	hdr := audit.CSVHeader()
	if len(rec) != len(hdr) || hdr[0] != "id" || hdr[len(hdr)-1] != "issuer" {
		t.Fatalf("header %v, record %v", hdr, rec)
	}
	col := func(name string) string {
		for i, h := range hdr {
			if h == name {
				return rec[i]
			}
		}
		t.Fatalf("no column %s", name)
		return ""
	}
	if got := col("client_name"); got != "'=HYPERLINK(\"http://x\")" {
		t.Errorf("client_name=%q, want the formula neutralised", got)
	}
	if got := col("reason"); got != "'-2+3" {
		t.Errorf("reason=%q", got)
	}
	if got := col("subject"); got != "alice" {
		t.Errorf("subject=%q", got)
	}
}
