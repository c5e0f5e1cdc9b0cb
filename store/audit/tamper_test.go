package audit_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"

	"github.com/idmcp/idmcp/store/audit"
)

// insertRow writes r as-is (a forged row).
func insertRow(t *testing.T, db *sql.DB, r audit.Row, actors string) {
	t.Helper()
	_, err := db.Exec(`INSERT INTO audit_log (id, ts, transport, session, event, subject, client_id, client_name, actors,
		auth_method, tool, arguments, decision, reason, outcome, duration_us, result_bytes, result_sha256, prev_hash, hash)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.ID, r.TS, r.Transport, r.Session, r.Event, r.Subject, r.ClientID, r.ClientName, actors, r.AuthMethod, r.Tool,
		r.Arguments, r.Decision, r.Reason, r.Outcome, r.DurationUS, r.ResultBytes, r.ResultSHA256, r.PrevHash, r.Hash)
	if err != nil {
		t.Fatal(err)
	}
}

// forge returns a row that claims id, chained to prevHash, with a correctly
// computed hash: what an attacker who knows the format writes.
func forge(id int64, prevHash string) audit.Row {
	r := audit.Row{ID: id, TS: "2026-03-01T12:00:04.5Z", Transport: "stdio", Session: "s1", Event: audit.EventToolsCall,
		Subject: "alice", ClientID: "laptop", Actors: []string{}, Tool: "todo_delete", Arguments: `{"id":1}`,
		Decision: audit.Allow, Reason: "allowed", Outcome: audit.OK, PrevHash: prevHash}
	r.Hash = audit.ComputeHash(&r)
	return r
}

// execAll runs statements on the raw connection.
func execAll(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestVerify_Tamper edits the file directly, with the triggers dropped, as
// someone with write access to it can, and checks that Verify names the
// first row that shows it and the kind of damage.
func TestVerify_Tamper(t *testing.T) {
	const n = 10
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB, rows []audit.Row)
		wantID int64
		want   audit.Damage
	}{
		{"EditField", func(t *testing.T, db *sql.DB, _ []audit.Row) {
			execAll(t, db, "UPDATE audit_log SET subject = 'mallory' WHERE id = 5")
		}, 5, audit.DamageContents},
		{"EditDecision", func(t *testing.T, db *sql.DB, _ []audit.Row) {
			execAll(t, db, "UPDATE audit_log SET decision = 'allow', reason = 'allowed' WHERE id = 7")
			execAll(t, db, "UPDATE audit_log SET outcome = 'error' WHERE id = 7")
		}, 7, audit.DamageContents},
		{"EditActorsSameValue", func(t *testing.T, db *sql.DB, _ []audit.Row) {
			// The decoded value is unchanged; the stored text is not.
			execAll(t, db, `UPDATE audit_log SET actors = replace(actors, '["', '[ "') WHERE id = 3`)
		}, 3, audit.DamageContents},
		{"EditHashToo", func(t *testing.T, db *sql.DB, rows []audit.Row) {
			// Recomputing the edited row's own hash moves the break to the next row.
			r := rows[4]
			r.Subject = "mallory"
			r.Hash = audit.ComputeHash(&r)
			execAll(t, db, "DELETE FROM audit_log WHERE id = 5")
			insertRow(t, db, r, `["agent-1"]`)
		}, 6, audit.DamageInserted},
		{"DeleteRow", func(t *testing.T, db *sql.DB, _ []audit.Row) {
			execAll(t, db, "DELETE FROM audit_log WHERE id = 5")
		}, 6, audit.DamageDeleted},
		{"DeleteFirstRow", func(t *testing.T, db *sql.DB, _ []audit.Row) {
			execAll(t, db, "DELETE FROM audit_log WHERE id = 1")
		}, 2, audit.DamageDeleted},
		{"DeleteRowAndRenumber", func(t *testing.T, db *sql.DB, _ []audit.Row) {
			execAll(t, db, "DELETE FROM audit_log WHERE id = 5")
			for id := 6; id <= n; id++ {
				execAll(t, db, "UPDATE audit_log SET id = id - 1 WHERE id = "+strconv.Itoa(id))
			}
		}, 5, audit.DamageMoved},
		{"InsertForgedMadeUpHash", func(t *testing.T, db *sql.DB, rows []audit.Row) {
			r := forge(n+1, rows[n-1].Hash)
			sum := sha256.Sum256([]byte("made up"))
			r.Hash = hex.EncodeToString(sum[:])
			insertRow(t, db, r, "[]")
		}, n + 1, audit.DamageContents},
		{"InsertForgedInTheMiddle", func(t *testing.T, db *sql.DB, rows []audit.Row) {
			// Make room at id 5, then a forged row with a correct hash
			// chained to row 4: the row after it no longer fits.
			for id := n; id >= 5; id-- {
				execAll(t, db, "UPDATE audit_log SET id = id + 1 WHERE id = "+strconv.Itoa(id))
			}
			insertRow(t, db, forge(5, rows[3].Hash), "[]")
		}, 6, audit.DamageMoved},
		{"InsertForgedWrongLink", func(t *testing.T, db *sql.DB, _ []audit.Row) {
			insertRow(t, db, forge(n+1, audit.Genesis), "[]")
		}, n + 1, audit.DamageInserted},
		{"ReplaceRow", func(t *testing.T, db *sql.DB, rows []audit.Row) {
			execAll(t, db, "DELETE FROM audit_log WHERE id = 5")
			insertRow(t, db, forge(5, rows[3].Hash), "[]")
		}, 6, audit.DamageInserted},
		{"SwapRows", func(t *testing.T, db *sql.DB, _ []audit.Row) {
			// Every column but id trades places between rows 5 and 6.
			execAll(t, db,
				"UPDATE audit_log SET id = -5 WHERE id = 5",
				"UPDATE audit_log SET id = 5 WHERE id = 6",
				"UPDATE audit_log SET id = 6 WHERE id = -5")
		}, 5, audit.DamageMoved},
		{"WrongType", func(t *testing.T, db *sql.DB, _ []audit.Row) {
			execAll(t, db, "UPDATE audit_log SET duration_us = 'soon' WHERE id = 8")
		}, 8, audit.DamageUnreadable},
		{"ForgedCheckpoint", func(t *testing.T, db *sql.DB, rows []audit.Row) {
			// Rows 1-5 deleted by hand, and a checkpoint forged to cover it.
			execAll(t, db, "DELETE FROM audit_log WHERE id <= 5")
			if _, err := db.Exec("INSERT INTO audit_checkpoint (ts, pruned_before, pruned_rows, last_id, last_hash) VALUES ('2026-03-02T00:00:00Z', '2026-03-02T00:00:00Z', 5, 5, ?)", rows[4].Hash); err != nil {
				t.Fatal(err)
			}
		}, 6, audit.DamageCheckpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := MustWrite(t, n)
			rows := MustRows(t, path)
			db := MustRawDB(t, path)
			tc.tamper(t, db, rows)
			must(t, db.Close())

			res, err := MustReader(t, path).Verify(context.Background())
			if !errors.Is(err, audit.ErrTampered) {
				t.Fatalf("Verify: %v, want ErrTampered", err)
			}
			if res.BadID != tc.wantID || res.Kind != tc.want {
				t.Fatalf("Verify found row %d (%s: %s), want row %d (%s)", res.BadID, res.Kind, res.Problem, tc.wantID, tc.want)
			}
		})
	}
}

// TestVerify_Intact checks the untouched chain and its head.
func TestVerify_Intact(t *testing.T) {
	path := MustWrite(t, 10)
	rows := MustRows(t, path)
	res, err := MustReader(t, path).Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 10 || res.HeadID != 10 || res.HeadHash != rows[9].Hash || res.BadID != 0 {
		t.Fatalf("Verify: %+v", res)
	}
}
