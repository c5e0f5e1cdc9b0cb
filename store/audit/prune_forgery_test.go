package audit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/store/audit"
)

// A checkpoint forged by hand (rows deleted outside prune) must not be
// laundered by a later, genuine prune: prune verifies the whole chain first.
func TestPrune_RefusesToLaunderForgedCheckpoint(t *testing.T) {
	ctx := context.Background()
	path := MustWrite(t, 100)
	rows := MustRows(t, path)
	db := MustRawDB(t, path)
	execAll(t, db, "DELETE FROM audit_log WHERE id <= 50")
	if _, err := db.Exec("INSERT INTO audit_checkpoint (ts, pruned_before, pruned_rows, last_id, last_hash) VALUES ('2026-03-02T00:00:00Z', '2026-03-02T00:00:00Z', 50, 50, ?)", rows[49].Hash); err != nil {
		t.Fatal(err)
	}
	must(t, db.Close())
	_, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: testTime().Add(60 * time.Second), Actor: "root",
		Now: func() time.Time { return testTime().Add(time.Hour) }})
	if !errors.Is(err, audit.ErrPruneRefused) || !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("prune over a forged checkpoint: %v, want a refusal naming the tampering", err)
	}
	if _, err := MustReader(t, path).Verify(ctx); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("verify after the refused prune: %v, want still tampered", err)
	}
}

func TestCheckpoint_AppendOnlyAndDateVouchedFor(t *testing.T) {
	ctx := context.Background()
	path := MustWrite(t, 20)
	if _, err := audit.Prune(ctx, audit.PruneConfig{Path: path, Before: testTime().Add(10 * time.Second), Actor: "root",
		Now: func() time.Time { return testTime().Add(time.Hour) }}); err != nil {
		t.Fatal(err)
	}
	plain := MustPlainDB(t, path)
	if _, err := plain.Exec("DELETE FROM audit_checkpoint"); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("deleting a checkpoint with the triggers in place: %v, want refused", err)
	}
	must(t, plain.Close())
	// With the triggers dropped, a forged pruned_before is caught by verify:
	// the audit/prune row vouches for the date too.
	raw := MustRawDB(t, path)
	execAll(t, raw, "DROP TRIGGER audit_checkpoint_no_delete", "UPDATE audit_checkpoint SET pruned_before = '2020-01-01T00:00:00Z'")
	must(t, raw.Close())
	res, err := MustReader(t, path).Verify(ctx)
	if !errors.Is(err, audit.ErrTampered) || res.Kind != audit.DamageCheckpoint {
		t.Fatalf("verify after a forged pruned_before: %v (kind %q), want a checkpoint problem", err, res.Kind)
	}
}
