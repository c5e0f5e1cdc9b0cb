package audit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

func TestLog_Append(t *testing.T) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		path := MustWrite(t, 100)
		rows := MustRows(t, path)
		if got, want := len(rows), 100; got != want {
			t.Fatalf("rows=%d, want %d", got, want)
		}
		for i, r := range rows {
			if got, want := r.ID, int64(i+1); got != want {
				t.Fatalf("row %d: id=%d, want %d", i, got, want)
			}
			if got, want := r.Arguments, `{"title":"row `+strconv.Itoa(i)+`"}`; got != want {
				t.Fatalf("row %d: arguments=%s, want %s (rows out of order?)", i, got, want)
			}
		}
		res, err := MustReader(t, path).Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := res.HeadHash, rows[99].Hash; got != want {
			t.Fatalf("head=%s, want %s", got, want)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.db")
		l := MustOpen(t, audit.Config{Path: path, Sync: store.SyncNormal})
		var wg sync.WaitGroup
		errs := make(chan error, 800)
		for g := range 16 {
			wg.Go(func() {
				for i := range 50 {
					errs <- l.Append(ctx, toolCall(g*50+i))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		rows, commits := l.Stats()
		if rows != 800 || commits < 1 || commits > 800 {
			t.Fatalf("stats rows=%d commits=%d, want 800 rows in 1..800 commits", rows, commits)
		}
		res, err := MustReader(t, path).Verify(ctx)
		if err != nil || res.Rows != 800 {
			t.Fatalf("verify: %+v, %v; want 800 rows", res, err)
		}
	})
	t.Run("ConcurrentBatchSizes", func(t *testing.T) {
		// Batches cut by MaxBatch and by the 32-row INSERT chunks, while
		// rows keep arriving during the transaction: every acknowledged row
		// is stored once, in a chain that verifies, and no commit holds more
		// than MaxBatch rows.
		for _, maxBatch := range []int{1, 7, 33, 0} {
			t.Run(strconv.Itoa(maxBatch), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "audit.db")
				l := MustOpen(t, audit.Config{Path: path, Sync: store.SyncNormal, MaxBatch: maxBatch})
				const writers, each = 64, 20
				var wg sync.WaitGroup
				errs := make(chan error, writers*each)
				for g := range writers {
					wg.Go(func() {
						for i := range each {
							errs <- l.Append(ctx, toolCall(g*each+i))
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				rows, commits := l.Stats()
				if rows != writers*each || (maxBatch > 0 && commits < int64((writers*each+maxBatch-1)/maxBatch)) {
					t.Fatalf("stats rows=%d commits=%d, want %d rows, at most %d per commit", rows, commits, writers*each, maxBatch)
				}
				res, err := MustReader(t, path).Verify(ctx)
				if err != nil || res.Rows != writers*each {
					t.Fatalf("verify: %+v, %v; want %d rows", res, err, writers*each)
				}
				seen := map[string]bool{}
				for i, r := range MustRows(t, path) {
					if r.ID != int64(i+1) || seen[r.Arguments] {
						t.Fatalf("row %d: id %d, arguments %s (duplicate or gap)", i, r.ID, r.Arguments)
					}
					seen[r.Arguments] = true
				}
			})
		}
	})
	t.Run("CancelledContextStillCommits", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.db")
		l := MustOpen(t, audit.Config{Path: path})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := l.Append(cctx, toolCall(1)); err != nil {
			t.Fatalf("Append with a cancelled context: %v (a client that went away must not drop its row)", err)
		}
		if got := len(MustRows(t, path)); got != 1 {
			t.Fatalf("rows=%d, want 1", got)
		}
	})
	t.Run("InputNotMutated", func(t *testing.T) {
		l := MustOpen(t, audit.Config{Path: filepath.Join(t.TempDir(), "audit.db"), Redactor: &audit.Redactor{Secrets: []string{"hunter2-secret"}}})
		ev := toolCall(1)
		ev.Actors = []string{"agent hunter2-secret"}
		ev.Arguments = []byte(`{"password":"hunter2-secret"}`)
		if err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if got, want := ev.Actors[0], "agent hunter2-secret"; got != want {
			t.Fatalf("caller's actors changed to %q", got)
		}
		if got, want := string(ev.Arguments), `{"password":"hunter2-secret"}`; got != want {
			t.Fatalf("caller's arguments changed to %s", got)
		}
	})
}

func TestLog_Close(t *testing.T) {
	ctx := context.Background()
	t.Run("DrainsQueued", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.db")
		l, err := audit.Open(ctx, audit.Config{Path: path, Sync: store.SyncNormal})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, refused := 0, 0
		for g := range 32 {
			wg.Go(func() {
				for i := range 20 {
					err := l.Append(ctx, toolCall(g*20+i))
					mu.Lock()
					switch {
					case err == nil:
						ok++
					case errors.Is(err, audit.ErrUnavailable):
						refused++
					default:
						t.Errorf("Append: %v, want nil or ErrUnavailable", err)
					}
					mu.Unlock()
				}
			})
		}
		// Close while the writers are busy: no send on a closed channel
		// (-race), everything acknowledged is on disk.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if rows, _ := l.Stats(); rows >= 50 {
				break
			}
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if got := len(MustRows(t, path)); got != ok {
			t.Fatalf("rows=%d, but %d Appends returned nil (%d refused after Close)", got, ok, refused)
		}
		if ok+refused != 640 {
			t.Fatalf("ok %d + refused %d != 640", ok, refused)
		}
	})
	t.Run("AfterClose", func(t *testing.T) {
		l, err := audit.Open(ctx, audit.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(ctx); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := l.Append(ctx, toolCall(1)); !errors.Is(err, audit.ErrUnavailable) {
			t.Fatalf("Append after Close: %v, want ErrUnavailable", err)
		}
		if err := l.Healthy(); !errors.Is(err, audit.ErrUnavailable) {
			t.Fatalf("Healthy after Close: %v, want ErrUnavailable", err)
		}
	})
}

// TestLog_FailClosed makes the database unwritable in ways a root test can:
// SQLite keeps writing to a file that was unlinked or replaced (WAL mode does
// not notice), so without the Log's own check the rows would be acknowledged
// into a file nobody can read.
func TestLog_FailClosed(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, dir, path string)
		want    string
	}{
		{"DataDirRemoved", func(t *testing.T, dir, _ string) { must(t, os.RemoveAll(dir)) }, "removed or replaced"},
		{"FileReplaced", func(t *testing.T, dir, path string) {
			must(t, os.Rename(path, filepath.Join(dir, "moved.db")))
			must(t, os.WriteFile(path, nil, 0o600))
		}, "removed or replaced"},
		{"WALRemoved", func(t *testing.T, _, path string) { must(t, os.Remove(path+"-wal")) }, "WAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			must(t, os.Mkdir(dir, 0o700))
			path := filepath.Join(dir, "audit.db")
			l := MustOpen(t, audit.Config{Path: path})
			if err := l.Append(ctx, toolCall(1)); err != nil {
				t.Fatal(err)
			}
			if err := l.Healthy(); err != nil {
				t.Fatalf("Healthy before: %v", err)
			}
			tc.breakIt(t, dir, path)
			err := l.Append(ctx, toolCall(2))
			if !errors.Is(err, audit.ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Append: %v, want ErrUnavailable mentioning %q", err, tc.want)
			}
			if err := l.Healthy(); !errors.Is(err, audit.ErrUnavailable) {
				t.Fatalf("Healthy: %v, want ErrUnavailable", err)
			}
			// It stays failed: a later write does not succeed into the lost file.
			if err := l.Append(ctx, toolCall(3)); err == nil {
				t.Fatal("a later Append succeeded into a file that is gone")
			}
		})
	}
}

// TestLog_SecondWriter runs two Logs on one file, as two servers sharing a
// data dir (or a server and audit prune) do: each reads the chain head inside
// its transaction, so the chain does not fork and no id is used twice.
func TestLog_SecondWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	a := MustOpen(t, audit.Config{Path: path, Sync: store.SyncNormal})
	b := MustOpen(t, audit.Config{Path: path, Sync: store.SyncNormal})
	var wg sync.WaitGroup
	for _, l := range []*audit.Log{a, b} {
		for g := range 4 {
			wg.Go(func() {
				for i := range 50 {
					if err := l.Append(ctx, toolCall(g*50+i)); err != nil {
						t.Errorf("Append: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	res, err := MustReader(t, path).Verify(ctx)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if got, want := res.Rows, int64(400); got != want {
		t.Fatalf("rows=%d, want %d", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
