package audit_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// Stored timestamps have a fixed width, so text order is time order: rows
// from 00:00:00.1 to 00:00:00.9 are "since 00:00:00", and one at 23:59:59.9
// the day before is not.
func TestQuery_SinceAcrossFractionalSeconds(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	l := MustOpen(t, audit.Config{Path: path, Sync: store.SyncNormal})
	midnight := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
	times := []time.Time{midnight.Add(-100 * time.Millisecond)} // 23:59:59.9 the day before
	for k := 1; k <= 9; k++ {
		times = append(times, midnight.Add(time.Duration(k)*100*time.Millisecond)) // 00:00:00.k
	}
	for i, at := range times {
		ev := toolCall(i)
		ev.Time = at
		if err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	must(t, l.Close(ctx))
	rows, err := MustReader(t, path).Query(ctx, audit.Filter{Since: midnight})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		ts, _ := time.Parse(time.RFC3339Nano, r.TS)
		if ts.Before(midnight) {
			t.Errorf("row %d at %s returned for since %s", r.ID, r.TS, midnight.Format(time.RFC3339))
		}
	}
	if len(rows) != 9 {
		t.Fatalf("since midnight: %d rows, want the 9 at or after it", len(rows))
	}
}

// Invalid UTF-8 is made valid before hashing, so the stored text is exactly
// what the hash covers.
func TestAppend_InvalidUTF8StoredAsHashed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	l := MustOpen(t, audit.Config{Path: path, Sync: store.SyncNormal})
	ev := toolCall(0)
	ev.Reason = "refused /mcp\xff\xfe (GET)"
	ev.Tool = "x\xc0\x80"
	if err := l.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	must(t, l.Close(ctx))
	rows := MustRows(t, path)
	if !utf8.ValidString(rows[0].Reason) || !utf8.ValidString(rows[0].Tool) {
		t.Fatalf("stored invalid UTF-8: %q %q", rows[0].Reason, rows[0].Tool)
	}
	if _, err := MustReader(t, path).Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// FormatTS writes what time.Format with TSFormat does, for any instant and
// zone.
func FuzzFormatTS(f *testing.F) {
	for _, sec := range []int64{0, -1, 1, 1767225600, 253402300799, 253402300800, -62135596800, -62135596801} {
		f.Add(sec, int64(0), 0)
		f.Add(sec, int64(999999999), 3600)
		f.Add(sec, int64(100000000), -34200)
	}
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("z", offset%(26*3600)))
		if got, want := audit.FormatTS(tm), tm.UTC().Format(audit.TSFormat); got != want {
			t.Fatalf("FormatTS(%v) = %q, want %q", tm, got, want)
		}
	})
}
