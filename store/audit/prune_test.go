package audit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

func TestPrune(t *testing.T) {
	ctx := context.Background()
	// toolCall(i) is at testTime()+i s, so "before +40s" is rows 1-40.
	before := testTime().Add(40 * time.Second)
	now := func() time.Time { return testTime().Add(time.Hour) }
	t.Run("OK", func(t *testing.T) {
		path := MustWrite(t, 100)
		res, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: before, Actor: "root", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if res.Rows != 40 || res.LastID != 40 || len(res.Checkpoints) != 1 {
			t.Fatalf("Prune: %+v, want 40 rows up to id 40 in one checkpoint", res)
		}
		rows := MustRows(t, path)
		if got, want := len(rows), 61; got != want { // 41-100 and the audit/prune row
			t.Fatalf("rows=%d, want %d", got, want)
		}
		last := rows[len(rows)-1]
		if rows[0].ID != 41 || last.ID != 101 || last.Event != audit.EventPrune || last.Subject != "root" {
			t.Fatalf("first %d, last %d %s by %q", rows[0].ID, last.ID, last.Event, last.Subject)
		}
		v, err := MustReader(t, path).Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v.CheckpointID != res.Checkpoints[0] || v.Pruned != 40 || v.Rows != 61 || v.HeadID != 101 {
			t.Fatalf("Verify: %+v", v)
		}
		// The triggers are back: a plain DELETE is still refused.
		db := MustPlainDB(t, path)
		if _, err := db.Exec("DELETE FROM audit_log WHERE id = 50"); err == nil {
			t.Fatal("DELETE succeeded after prune: the trigger was not recreated")
		}
	})
	t.Run("Batches", func(t *testing.T) {
		path := MustWrite(t, 100)
		res, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: before, Batch: 15, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if res.Rows != 40 || len(res.Checkpoints) != 3 {
			t.Fatalf("Prune: %+v, want 40 rows in 3 transactions", res)
		}
		if _, err := MustReader(t, path).Verify(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Twice", func(t *testing.T) {
		path := MustWrite(t, 100)
		for _, b := range []time.Time{before, before.Add(30 * time.Second)} {
			if _, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: b, Now: now}); err != nil {
				t.Fatal(err)
			}
		}
		v, err := MustReader(t, path).Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v.Pruned != 30 {
			t.Fatalf("Verify: %+v, want the second checkpoint (30 rows)", v)
		}
	})
	t.Run("Nothing", func(t *testing.T) {
		path := MustWrite(t, 10)
		res, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: testTime(), Now: now})
		if err != nil || res.Rows != 0 {
			t.Fatalf("Prune: %+v, %v; want nothing pruned", res, err)
		}
		if got := len(MustRows(t, path)); got != 10 {
			t.Fatalf("rows=%d, want 10 (no prune row when nothing was pruned)", got)
		}
	})
	t.Run("ErrFuture", func(t *testing.T) {
		path := MustWrite(t, 10)
		if _, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: now().Add(time.Minute), Now: now}); err == nil {
			t.Fatal("a --before in the future was accepted")
		}
	})
	t.Run("ErrDamagedRows", func(t *testing.T) {
		path := MustWrite(t, 100)
		db := MustRawDB(t, path)
		execAll(t, db, "UPDATE audit_log SET subject = 'mallory' WHERE id = 20")
		must(t, db.Close())
		_, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: before, Now: now})
		if !errors.Is(err, audit.ErrPruneRefused) {
			t.Fatalf("Prune over an edited row: %v, want ErrPruneRefused", err)
		}
		if got := len(MustRows(t, path)); got != 100 {
			t.Fatalf("rows=%d, want 100: nothing deleted", got)
		}
	})
}

// TestPrune_WhileWriting prunes in small transactions while a Log appends
// from several goroutines, before, during and after the prune: every Append
// succeeds, the running Log chains its rows to the prune rows (it reads the
// head inside each transaction), and the chain verifies.
func TestPrune_WhileWriting(t *testing.T) {
	ctx := context.Background()
	path := MustWrite(t, 300) // old rows, at testTime()+i s
	l := MustOpen(t, audit.Config{Path: path, Sync: store.SyncNormal})
	var wg sync.WaitGroup
	var appended atomic.Int64
	stop := make(chan struct{})
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ev := toolCall(1000 + g*100000 + i)
				ev.Time = time.Now() // new rows: not pruned
				if err := l.Append(ctx, ev); err != nil {
					t.Errorf("Append during prune: %v", err)
					return
				}
				appended.Add(1)
			}
		})
	}
	waitFor := func(n int64) {
		for deadline := time.Now().Add(10 * time.Second); appended.Load() < n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(50)
	res, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: testTime().Add(time.Hour), Batch: 40})
	waitFor(appended.Load() + 50) // and more rows after the prune
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	must(t, l.Close(ctx))
	if res.Rows != 300 || len(res.Checkpoints) != 8 {
		t.Fatalf("pruned %d rows in %d transactions, want 300 in 8", res.Rows, len(res.Checkpoints))
	}
	v, err := MustReader(t, path).Verify(ctx)
	if err != nil {
		t.Fatalf("Verify after prune during writes: %v", err)
	}
	if want := appended.Load() + int64(len(res.Checkpoints)); v.Rows != want {
		t.Fatalf("rows=%d, want %d appended + %d prune rows", v.Rows, appended.Load(), len(res.Checkpoints))
	}
	rows := MustRows(t, path)
	if last := rows[len(rows)-1]; last.Event == audit.EventPrune {
		t.Fatal("no row was appended after the last prune row: the test did not write through the prune")
	}
}
