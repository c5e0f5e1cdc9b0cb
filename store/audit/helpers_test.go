package audit_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// testTime is the time of the first test row: fixed, so rows are
// reproducible.
func testTime() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// MustOpen opens a Log on path and closes it at the end of the test.
func MustOpen(tb testing.TB, cfg audit.Config) *audit.Log {
	tb.Helper()
	l, err := audit.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("audit.Open: %v", err)
	}
	tb.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

// MustReader opens path read-only and closes it at the end of the test.
func MustReader(tb testing.TB, path string) *audit.Reader {
	tb.Helper()
	r, err := audit.OpenReader(context.Background(), path)
	if err != nil {
		tb.Fatalf("audit.OpenReader: %v", err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
}

// toolCall returns the i-th test event: a tools/call by alice through laptop.
func toolCall(i int) audit.Event {
	return audit.Event{
		Time: testTime().Add(time.Duration(i) * time.Second), Transport: "stdio", Session: "s1",
		Event: audit.EventToolsCall, Subject: "alice", ClientID: "laptop", ClientName: "test/1",
		Actors: []string{"agent-" + fmt.Sprint(i%3)}, AuthMethod: "host-secret", Tool: "todo_create",
		Arguments: []byte(fmt.Sprintf(`{"title":"row %d"}`, i)), Decision: audit.Allow, Reason: "allowed",
		Outcome: audit.OK, Duration: time.Millisecond, ResultBytes: 10, ResultSHA256: audit.Genesis,
	}
}

// MustWrite writes n rows (toolCall(0) … toolCall(n-1)) to a new audit
// database in a temp dir, closes it, and returns its path.
func MustWrite(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "audit.db")
	l, err := audit.Open(context.Background(), audit.Config{Path: path, Sync: store.SyncNormal})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if err := l.Append(context.Background(), toolCall(i)); err != nil {
			tb.Fatalf("Append %d: %v", i, err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return path
}

// MustPlainDB opens path with a plain sql.Open connection: no migrations,
// no read-only guard, triggers in place.
func MustPlainDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1)
	return db
}

// MustRawDB opens path with a plain connection and drops the append-only
// triggers: what someone with write access to the file can do.
func MustRawDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db := MustPlainDB(tb, path)
	for _, q := range []string{"DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete", "DROP TRIGGER audit_checkpoint_no_update"} {
		if _, err := db.Exec(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	return db
}

// MustRows returns every row of path.
func MustRows(tb testing.TB, path string) []audit.Row {
	tb.Helper()
	rows, err := MustReader(tb, path).Query(context.Background(), audit.Filter{})
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}
