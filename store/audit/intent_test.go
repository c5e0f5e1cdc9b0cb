package audit_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// TestLog_Intent writes an intent and its outcome, and an intent left
// without one: readers pair them, show the orphan as unfinished, the
// audit_calls view pairs them in SQL, and the chain (covering intent_id)
// verifies.
func TestLog_Intent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	l := MustOpen(t, audit.Config{Path: path, Sync: store.SyncNormal})
	ev := toolCall(0)
	ev.Arguments = []byte(`{"title":"first","password":"hunter2"}`)
	id, err := l.Intent(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if id != 1 {
		t.Fatalf("intent id %d, want 1", id)
	}
	out := toolCall(1)
	out.Arguments, out.IntentID, out.Outcome = []byte(`{}`), id, audit.OK
	if err := l.Append(ctx, out); err != nil {
		t.Fatal(err)
	}
	orphan, err := l.Intent(ctx, toolCall(2))
	if err != nil {
		t.Fatal(err)
	}
	// An intent row cannot be forged through Append.
	bad := toolCall(3)
	bad.Outcome = audit.Started
	if err := l.Append(ctx, bad); err == nil {
		t.Fatal("Append of a started row without IntentID: nil error")
	}

	r := MustReader(t, path)
	rows, err := r.Query(ctx, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	if got := rows[0]; got.Outcome != audit.Started || got.Decision != audit.Allow || got.Unfinished || got.ShownOutcome() != audit.Started {
		t.Errorf("intent row: outcome %q decision %q unfinished %v", got.Outcome, got.Decision, got.Unfinished)
	}
	if rows[0].Arguments != `{"password":"[REDACTED]","title":"first"}` {
		t.Errorf("intent arguments %s, want redacted", rows[0].Arguments)
	}
	if rows[1].IntentID != id || rows[1].Outcome != audit.OK {
		t.Errorf("outcome row: intent_id %d outcome %q", rows[1].IntentID, rows[1].Outcome)
	}
	if got := rows[2]; got.ID != orphan || !got.Unfinished || got.ShownOutcome() != audit.Unfinished {
		t.Errorf("orphan intent %d: unfinished %v shown %q", got.ID, got.Unfinished, got.ShownOutcome())
	}
	if ex := rows[2].Export(); !ex.Unfinished || ex.Outcome != audit.Started {
		t.Errorf("export of the orphan: %+v", ex)
	}
	var calls []string
	err = r.Select(ctx, "SELECT id, outcome, coalesce(outcome_id, 0) FROM audit_calls ORDER BY id", func(_ []string, v []any) error {
		b, _ := json.Marshal(v)
		calls = append(calls, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(calls), 2; got != want {
		t.Fatalf("audit_calls %v, want %d rows", calls, want)
	}
	if calls[0] != `[1,"ok",2]` || calls[1] != `[3,"unfinished",0]` {
		t.Errorf("audit_calls = %v", calls)
	}
	if _, err := r.Verify(ctx); err != nil {
		t.Fatalf("verify: %v", err)
	}

	// The hash covers intent_id: pointing the outcome row elsewhere is
	// detected.
	_ = l.Close(ctx)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"DROP TRIGGER audit_log_no_update", "UPDATE audit_log SET intent_id = 3 WHERE id = 2"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Verify(ctx); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("verify after editing intent_id: %v, want ErrTampered", err)
	}
}

// TestLog_IntentUnavailable: when the intent row cannot be committed,
// Intent fails with ErrUnavailable and returns no id (the caller must not
// run the tool).
func TestLog_IntentUnavailable(t *testing.T) {
	ctx := context.Background()
	l, err := audit.Open(ctx, audit.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := l.Intent(ctx, toolCall(0))
	if !errors.Is(err, audit.ErrUnavailable) || id != 0 {
		t.Fatalf("Intent on a closed log: id %d err %v, want 0 and ErrUnavailable", id, err)
	}
}
