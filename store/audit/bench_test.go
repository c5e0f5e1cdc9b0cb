package audit_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// benchEvent is a typical tools/call row: about 300 bytes of text.
func benchEvent(i int) audit.Event {
	sum := sha256.Sum256([]byte(fmt.Sprint(i)))
	return audit.Event{
		Time: time.Now(), Transport: "stdio", Session: "5f2c7e1a9b3d4c60", Event: audit.EventToolsCall,
		Subject: "alice", ClientID: "laptop", ClientName: "claude-code/2.1.0", Actors: []string{},
		AuthMethod: "host-secret", Tool: "todo_create",
		Arguments: []byte(fmt.Sprintf(`{"title":"buy milk and bread, call the plumber %d","note":"before friday","priority":2}`, i)),
		Decision:  audit.Allow, Reason: "allowed", Outcome: audit.OK, Duration: 120 * time.Microsecond,
		ResultBytes: 212, ResultSHA256: hex.EncodeToString(sum[:]),
	}
}

// benchEvents are distinct events built before the timer starts: making
// them (fmt, a digest) is the benchmark's work, not the log's.
var benchEvents = func() []audit.Event {
	evs := make([]audit.Event, 4096)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	return evs
}()

// nextEvent returns the i-th event, with the current time.
func nextEvent(i int) audit.Event {
	ev := benchEvents[i%len(benchEvents)]
	ev.Time = time.Now()
	return ev
}

// BenchmarkAppend measures committed rows per second through Log.Append with
// 1, 8, 64, 256 and 1024 concurrent writers, for synchronous=FULL and
// NORMAL, against baselines measured in the same run: the same rows appended
// to memory (redaction, hashing, no SQLite), the same rows through the same
// writer with one transaction per row (MaxBatch 1), and for FULL a bare
// write and fsync on the same disk. At one writer it reports the latency a
// call pays for its row, p50 and p99. Each writer waits for its row before
// it sends the next, so throughput grows with writers until the writer
// goroutine is busy all the time (about 1024 here). No targets are
// asserted: run scripts/bench for the summary.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	for _, sync := range []store.Sync{store.SyncFull, store.SyncNormal} {
		b.Run("sync="+string(sync), func(b *testing.B) {
			var memory, txPerRow float64 // rows/s of the baselines
			var fsyncP50 float64         // µs
			b.Run("baseline=memory", func(b *testing.B) {
				memory = benchMemory(b)
			})
			b.Run("baseline=tx-per-row", func(b *testing.B) {
				txPerRow, _ = benchLog(ctx, b, sync, 8, 1)
			})
			if sync == store.SyncFull {
				b.Run("baseline=fsync", func(b *testing.B) {
					fsyncP50 = benchFsync(b)
				})
			}
			for _, writers := range []int{1, 8, 64, 256, 1024} {
				b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
					rps, p50 := benchLog(ctx, b, sync, writers, 0)
					if p50 > 0 && fsyncP50 > 0 {
						b.ReportMetric(p50/fsyncP50, "x-fsync-p50")
					}
					if txPerRow > 0 {
						b.ReportMetric(rps/txPerRow, "x-tx-per-row")
					}
					if memory > 0 {
						b.ReportMetric(rps/memory, "x-memory")
					}
				})
			}
		})
	}
}

// benchLog appends b.N rows with the given number of writers and returns the
// committed rows per second and, for one writer, the median latency of
// Append in µs. maxBatch 1 makes every row its own transaction.
func benchLog(ctx context.Context, b *testing.B, sync store.Sync, writers, maxBatch int) (rps, p50 float64) {
	path := filepath.Join(b.TempDir(), "audit.db")
	l, err := audit.Open(ctx, audit.Config{Path: path, Sync: sync, MaxBatch: maxBatch})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := l.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	if writers == 1 {
		lat := make([]time.Duration, b.N)
		for i := range b.N {
			start := time.Now()
			if err := l.Append(ctx, nextEvent(i)); err != nil {
				b.Fatal(err)
			}
			lat[i] = time.Since(start)
		}
		b.StopTimer()
		slices.Sort(lat)
		p50 = float64(lat[len(lat)/2].Microseconds())
		b.ReportMetric(p50, "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	} else {
		b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if err := l.Append(ctx, nextEvent(i)); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
		b.StopTimer()
	}
	rps = float64(b.N) / b.Elapsed().Seconds()
	if fi, err := os.Stat(path + "-wal"); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "wal-MiB")
	}
	rows, commits := l.Stats()
	b.ReportMetric(rps, "rows/s")
	if commits > 0 {
		b.ReportMetric(float64(rows)/float64(commits), "rows/commit")
	}
	return rps, p50
}

// benchFsync is the floor of a commit with synchronous=FULL: a 16 KiB write
// (the four pages a one-row commit appends to the WAL) and an fsync, in the
// directory the other cases use. It returns the median in µs.
func benchFsync(b *testing.B) float64 {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 16<<10)
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := f.WriteAt(page, int64(i%256)*int64(len(page))); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	slices.Sort(lat)
	p50 := float64(lat[len(lat)/2].Microseconds())
	b.ReportMetric(p50, "p50-µs")
	return p50
}

// benchMemory is the floor: what Append does without SQLite (redaction, the
// canonical encoding and hash, an append under a lock).
func benchMemory(b *testing.B) float64 {
	r := &audit.Redactor{}
	var mu sync.Mutex
	rows := make([]audit.Row, 4096) // a ring: memory, not a growing slice, is the baseline
	prev := audit.Genesis
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev := nextEvent(i)
		row := audit.Row{
			TS: ev.Time.UTC().Format(time.RFC3339Nano), Transport: ev.Transport, Session: ev.Session, Event: ev.Event,
			Subject: r.Scrub(ev.Subject), ClientID: r.Scrub(ev.ClientID), ClientName: r.String(ev.ClientName),
			AuthMethod: ev.AuthMethod, Tool: r.String(ev.Tool), Arguments: r.Arguments(ev.Arguments), Decision: ev.Decision,
			Reason: r.String(ev.Reason), Outcome: ev.Outcome, DurationUS: ev.Duration.Microseconds(),
			ResultBytes: ev.ResultBytes, ResultSHA256: ev.ResultSHA256,
		}
		mu.Lock()
		row.ID, row.PrevHash = int64(i+1), prev
		row.Hash = audit.ComputeHash(&row)
		prev = row.Hash
		rows[i%len(rows)] = row
		mu.Unlock()
	}
	b.StopTimer()
	rps := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rps, "rows/s")
	return rps
}

// BenchmarkRedactArguments measures the redaction of a typical tool call's
// arguments, the largest part of what Append does on the caller's goroutine.
func BenchmarkRedactArguments(b *testing.B) {
	r := &audit.Redactor{}
	ev := benchEvent(1)
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Arguments(ev.Arguments)
	}
}

// BenchmarkCall measures what a tool call pays the audit log: one row (a
// read-only tool, or before write-ahead intents) against an intent row
// committed before the tool runs plus an outcome row after it (a tool with
// side effects), with one and with 64 concurrent callers. calls/s and the
// per-call p50 (one caller) are reported.
func BenchmarkCall(b *testing.B) {
	ctx := context.Background()
	for _, sync := range []store.Sync{store.SyncFull, store.SyncNormal} {
		for _, kind := range []string{"one-row", "intent+outcome"} {
			for _, writers := range []int{1, 64} {
				b.Run(fmt.Sprintf("sync=%s/%s/writers=%d", sync, kind, writers), func(b *testing.B) {
					l, err := audit.Open(ctx, audit.Config{Path: filepath.Join(b.TempDir(), "audit.db"), Sync: sync})
					if err != nil {
						b.Fatal(err)
					}
					defer func() { _ = l.Close(ctx) }()
					call := func(i int) error {
						ev := nextEvent(i)
						if kind == "one-row" {
							return l.Append(ctx, ev)
						}
						id, err := l.Intent(ctx, ev)
						if err != nil {
							return err
						}
						ev.IntentID = id
						return l.Append(ctx, ev)
					}
					b.ReportAllocs()
					b.ResetTimer()
					if writers == 1 {
						lat := make([]time.Duration, b.N)
						for i := range b.N {
							start := time.Now()
							if err := call(i); err != nil {
								b.Fatal(err)
							}
							lat[i] = time.Since(start)
						}
						b.StopTimer()
						slices.Sort(lat)
						b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
					} else {
						b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
						b.RunParallel(func(pb *testing.PB) {
							for i := 0; pb.Next(); i++ {
								if err := call(i); err != nil {
									b.Error(err)
									return
								}
							}
						})
						b.StopTimer()
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
				})
			}
		}
	}
}

// BenchmarkRedactRow measures the redaction of every caller-controlled
// field of a typical row (what toRow redacts), with a server that knows two
// secrets (its host secret and a dev client secret): the per-row cost of
// redaction that benchstat compares before and after a rule change.
func BenchmarkRedactRow(b *testing.B) {
	r := &audit.Redactor{Secrets: []string{"idmcp_Zx8kQ2vN4mR7tY1wE5uI9oP3aS6dF0gH2jK4lL8cV1b", "dev_q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6"}}
	evs := benchEvents[:64]
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := evs[i%len(evs)]
		i++
		_ = r.Scrub(ev.Subject)
		_ = r.Scrub(ev.ClientID)
		_ = r.String(ev.ClientName)
		_ = r.String(ev.Tool)
		_ = r.String(ev.Reason)
		_ = r.Arguments(ev.Arguments)
	}
}
