package audit_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// walLimit is what the WAL may grow to in these tests: the background
// checkpoints keep it near 4 MiB, and when they fall behind (a disk busy
// with other tests) the writer checkpoints itself at walPagesCap, 16 MiB,
// plus at most one batch; without any checkpoint the loads below would
// leave 60 MiB or more.
const walLimit = 24 << 20

// TestLog_CheckpointsKeepWALBounded appends rows one at a time (a commit
// each: several WAL pages per row) and from many writers at once (group
// commits, checkpoints racing the writer), and checks that the background
// checkpoints keep the WAL bounded and that every row is there, chained.
func TestLog_CheckpointsKeepWALBounded(t *testing.T) {
	for _, tc := range []struct {
		name             string
		sync             store.Sync
		writers, perWrtr int
	}{
		{"one writer", store.SyncNormal, 1, 6000},
		{"64 writers", store.SyncNormal, 64, 400},
		{"64 writers FULL", store.SyncFull, 64, 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "audit.db")
			l, err := audit.Open(ctx, audit.Config{Path: path, Sync: tc.sync})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var maxWAL int64
			var mu sync.Mutex
			for w := range tc.writers {
				wg.Go(func() {
					for i := range tc.perWrtr {
						if err := l.Append(ctx, toolCall(w*tc.perWrtr+i)); err != nil {
							t.Error(err)
							return
						}
						if i%50 == 0 {
							if fi, err := os.Stat(path + "-wal"); err == nil {
								mu.Lock()
								maxWAL = max(maxWAL, fi.Size())
								mu.Unlock()
							}
						}
					}
				})
			}
			wg.Wait()
			if fi, err := os.Stat(path + "-wal"); err == nil {
				maxWAL = max(maxWAL, fi.Size())
			}
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if maxWAL > walLimit {
				t.Errorf("WAL grew to %d bytes, want at most %d: checkpoints do not keep up", maxWAL, walLimit)
			}
			if maxWAL == 0 {
				t.Error("never saw a WAL: the test measures nothing")
			}
			if _, err := os.Stat(path + "-wal"); !os.IsNotExist(err) {
				t.Errorf("WAL left after Close: %v", err)
			}
			rep, err := MustReader(t, path).Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(tc.writers * tc.perWrtr); rep.Rows != want || rep.BadID != 0 {
				t.Errorf("verify: %d rows, first damaged row %d; want %d rows, none damaged", rep.Rows, rep.BadID, want)
			}
			t.Logf("largest WAL seen: %.1f MiB", float64(maxWAL)/(1<<20))
		})
	}
}

// TestLog_CheckpointBlockedByReader: a reader that holds an old snapshot
// stops checkpoints from finishing, so the WAL grows while it reads; the
// log keeps working, and once the reader is done the WAL starts over.
func TestLog_CheckpointBlockedByReader(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	l := MustOpen(t, audit.Config{Path: path, Sync: store.SyncNormal})
	appendN := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if err := l.Append(ctx, toolCall(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(0, 10)
	db := MustPlainDB(t, path)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 10 {
		t.Fatalf("reader: %d rows, %v", n, err)
	}
	appendN(10, 3000) // about 12000 WAL pages: many checkpoint requests
	if err := tx.QueryRow("SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 10 {
		t.Fatalf("reader's snapshot: %d rows, %v", n, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	appendN(3010, 1000) // the next checkpoints reach the end: the WAL starts over
	held, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	appendN(4010, 2000)
	after, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	// The file does not shrink (SQLite reuses it from the start): a WAL that
	// starts over keeps within what the file already holds, one that does
	// not grows by some 8000 pages.
	if after.Size() > held.Size()+(1<<20) {
		t.Errorf("WAL grew from %d to %d bytes after the reader finished: it does not start over", held.Size(), after.Size())
	}
	if rows := MustRows(t, path); len(rows) != 6010 {
		t.Errorf("%d rows, want 6010", len(rows))
	}
}
