package audit_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// Detection modes: what the verifier has.
const (
	modeNoKey     = "no key (SHA-256)"
	modeKey       = "key (HMAC)"
	modeKeyAnchor = "key + anchor"
)

// detectionTable is what each mode detects, as documented in README.md and
// SCHEMA.md ("What verify detects"). TestVerify_DetectionTable checks every
// cell by doing it to a real database file.
var detectionTable = []struct {
	attack string
	// what is done to the file, by someone with write access to it but not
	// the audit key
	how    string
	detect map[string]bool
}{
	{"edit", "a field of row 5 changed in place", map[string]bool{modeNoKey: true, modeKey: true, modeKeyAnchor: true}},
	{"insert", "a forged row appended, its hash computed as SHA-256 chained to the head", map[string]bool{modeNoKey: false, modeKey: true, modeKeyAnchor: true}},
	{"reorder", "rows 5 and 6 swapped", map[string]bool{modeNoKey: true, modeKey: true, modeKeyAnchor: true}},
	{"delete middle", "row 5 deleted", map[string]bool{modeNoKey: true, modeKey: true, modeKeyAnchor: true}},
	{"delete tail", "the last two rows deleted", map[string]bool{modeNoKey: false, modeKey: false, modeKeyAnchor: true}},
	{"rewrite everything", "row 5 edited, every row renumbered and rehashed as a SHA-256 chain (the key row dropped)", map[string]bool{modeNoKey: false, modeKey: true, modeKeyAnchor: true}},
	{"empty", "every row deleted (the data dir was used)", map[string]bool{modeNoKey: true, modeKey: true, modeKeyAnchor: true}},
	{"drop triggers", "the append-only triggers dropped, rows untouched", map[string]bool{modeNoKey: true, modeKey: true, modeKeyAnchor: true}},
}

// keyedLog writes n tool-call rows to a new database, with key (nil: plain
// SHA-256), and returns its path and rows.
func keyedLog(t *testing.T, n int, key []byte) (string, []audit.Row) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	l, err := audit.Open(context.Background(), audit.Config{Path: path, Sync: store.SyncNormal, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Append(context.Background(), toolCall(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return path, MustRows(t, path)
}

// rewriteAll replaces every row by rows renumbered from 1 and rehashed as a
// SHA-256 chain: all that can be done without the key.
func rewriteAll(t *testing.T, db *sql.DB, rows []audit.Row) {
	t.Helper()
	execAll(t, db, "DELETE FROM audit_log")
	prev := audit.Genesis
	id := int64(0)
	for _, r := range rows {
		id++
		r.ID, r.PrevHash, r.IntentID = id, prev, 0
		r.Hash = audit.ComputeHash(&r)
		prev = r.Hash
		insertRow(t, db, r, actorsText(r.Actors))
	}
}

func actorsText(a []string) string {
	if len(a) == 0 {
		return "[]"
	}
	return `["` + strings.Join(a, `","`) + `"]`
}

func TestVerify_DetectionTable(t *testing.T) {
	const n = 10
	key := bytes.Repeat([]byte{7}, audit.KeySize)
	for _, row := range detectionTable {
		for _, mode := range []string{modeNoKey, modeKey, modeKeyAnchor} {
			t.Run(row.attack+"/"+mode, func(t *testing.T) {
				var k []byte
				if mode != modeNoKey {
					k = key
				}
				path, rows := keyedLog(t, n, k)
				head := rows[len(rows)-1]
				db := MustPlainDB(t, path)
				if row.attack != "drop triggers" {
					// The triggers go back after the edit: only the rows show it.
					db = MustRawDB(t, path)
				}
				last := rows[len(rows)-1].ID
				switch row.attack {
				case "edit":
					execAll(t, db, "UPDATE audit_log SET subject = 'mallory' WHERE id = 5")
				case "insert":
					insertRow(t, db, forge(last+1, head.Hash), "[]")
				case "reorder":
					execAll(t, db, "UPDATE audit_log SET id = -5 WHERE id = 5", "UPDATE audit_log SET id = 5 WHERE id = 6", "UPDATE audit_log SET id = 6 WHERE id = -5")
				case "delete middle":
					execAll(t, db, "DELETE FROM audit_log WHERE id = 5")
				case "delete tail":
					execAll(t, db, fmt.Sprintf("DELETE FROM audit_log WHERE id > %d", last-2))
				case "rewrite everything":
					var kept []audit.Row
					for _, r := range rows {
						if r.Event == audit.EventKey {
							continue
						}
						if r.ID == 5 {
							r.Subject = "mallory"
						}
						kept = append(kept, r)
					}
					rewriteAll(t, db, kept)
				case "empty":
					execAll(t, db, "DELETE FROM audit_log")
				case "drop triggers":
					execAll(t, db, "DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete")
				default:
					t.Fatalf("no attack %q", row.attack)
				}
				if row.attack != "drop triggers" {
					restoreTriggers(t, db)
				}
				must(t, db.Close())
				opts := audit.VerifyOptions{Key: k, Used: true}
				if mode == modeKeyAnchor {
					opts.ExpectHead = &audit.Anchor{ID: head.ID, Hash: head.Hash}
				}
				res, err := MustReader(t, path).VerifyWith(context.Background(), opts)
				if err != nil && !errors.Is(err, audit.ErrTampered) {
					t.Fatal(err)
				}
				if got, want := err != nil, row.detect[mode]; got != want {
					t.Fatalf("%s (%s) with %s: detected %v, want %v (result %+v)", row.attack, row.how, mode, got, want, res)
				}
				if err != nil {
					t.Logf("detected: row %d %s: %s", res.BadID, res.Kind, res.Problem)
				}
			})
		}
	}
}

// restoreTriggers recreates the append-only triggers MustRawDB dropped, as
// the migration wrote them.
func restoreTriggers(t *testing.T, db *sql.DB) {
	t.Helper()
	execAll(t, db,
		"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log\nBEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
		"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log\nBEGIN SELECT RAISE(ABORT, 'audit_log is append-only; use idmcp audit prune'); END",
		"CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint\nBEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only'); END")
}

// TestDetectionTable_Markdown checks that SCHEMA.md (audit schema) shows
// the table this test file checks, word for word (-v prints it).
func TestDetectionTable_Markdown(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "| attack | %s | %s | %s |\n|---|---|---|---|\n", modeNoKey, modeKey, modeKeyAnchor)
	yes := func(v bool) string {
		if v {
			return "detected"
		}
		return "**not detected**"
	}
	for _, r := range detectionTable {
		fmt.Fprintf(&b, "| %s: %s | %s | %s | %s |\n", r.attack, r.how, yes(r.detect[modeNoKey]), yes(r.detect[modeKey]), yes(r.detect[modeKeyAnchor]))
	}
	t.Log("\n" + b.String())
	if !strings.Contains(audit.SchemaDoc(), b.String()) {
		t.Fatalf("SCHEMA.md does not show the detection table as tested; paste:\n%s", b.String())
	}
}
