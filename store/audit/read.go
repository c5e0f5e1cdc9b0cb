package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/idmcp/idmcp/store"
)

// Reader is a read-only view of an audit database. It works while a server
// is writing (WAL readers never block the writer) and cannot write: it opens
// with mode=ro.
type Reader struct {
	db *sql.DB
	// cols is the SELECT list of columns: columns, or, on a database no
	// server has migrated yet (a read-only reader cannot), the same with a
	// constant 0 for intent_id.
	cols string
	// unfinished is the SELECT expression of Row.Unfinished.
	unfinished string
}

// OpenReader opens path read-only.
func OpenReader(ctx context.Context, path string) (*Reader, error) {
	db, err := store.OpenSQLite(ctx, path, true, "", nil)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	r := &Reader{db: db, cols: columns,
		unfinished: "outcome = 'started' AND NOT EXISTS (SELECT 1 FROM audit_log o WHERE o.intent_id = audit_log.id)"}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info('audit_log') WHERE name = 'intent_id'").Scan(&n); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	if n == 0 {
		r.cols, r.unfinished = strings.Replace(columns, "intent_id", "0 AS intent_id", 1), "0"
	}
	return r, nil
}

// Close closes the reader.
func (r *Reader) Close() error { return r.db.Close() }

// DB returns the read-only connection pool, for queries idmcp itself writes.
// SQL from a user goes through Select, which also refuses ATTACH.
func (r *Reader) DB() *sql.DB { return r.db }

// Filter selects rows. Zero fields do not filter.
type Filter struct {
	Since    time.Time
	Until    time.Time
	Subject  string
	ClientID string
	Tool     string
	Event    string
	Decision string
	// AfterID returns only rows with a greater id (for tail -f).
	AfterID int64
	// Limit caps the rows returned (the newest ones); 0 means no cap.
	Limit int
}

// where returns the SQL condition and arguments of f (without LIMIT).
func (f Filter) where() (string, []any) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if !f.Since.IsZero() {
		add("ts >= ?", FormatTS(f.Since))
	}
	if !f.Until.IsZero() {
		add("ts < ?", FormatTS(f.Until))
	}
	if f.Subject != "" {
		add("subject = ?", f.Subject)
	}
	if f.ClientID != "" {
		add("client_id = ?", f.ClientID)
	}
	if f.Tool != "" {
		add("tool = ?", f.Tool)
	}
	if f.Event != "" {
		add("event = ?", f.Event)
	}
	if f.Decision != "" {
		add("decision = ?", f.Decision)
	}
	if f.AfterID > 0 {
		add("id > ?", f.AfterID)
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// Query returns the rows matching f in id order (oldest first). With a
// Limit, it returns the newest Limit rows, still oldest first.
func (r *Reader) Query(ctx context.Context, f Filter) ([]Row, error) {
	out := []Row{}
	err := r.Each(ctx, f, func(row Row) error {
		out = append(out, row)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Each calls fn for every row matching f, in id order, without holding them
// all in memory (for exports). An error from fn stops the walk and is
// returned.
func (r *Reader) Each(ctx context.Context, f Filter, fn func(Row) error) error {
	cond, args := f.where()
	// unfinished: an intent row that no outcome row names (yet).
	q := "SELECT " + r.cols + ", " + r.unfinished + " FROM audit_log" + cond
	if f.Limit > 0 {
		q = "SELECT * FROM (" + q + fmt.Sprintf(" ORDER BY id DESC LIMIT %d", f.Limit) + ") ORDER BY id"
	} else {
		q += " ORDER BY id"
	}
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("audit query: %w", err)
	}
	defer rows.Close()
	var row0 Row // scratch for the unfinished column
	for rows.Next() {
		row, err := scanRow(rows, &row0.Unfinished)
		if err != nil {
			return fmt.Errorf("audit query: %w", err)
		}
		row.Unfinished, row0.Unfinished = row0.Unfinished, false
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit query: %w", err)
	}
	return nil
}

// scanRow scans the columns of a row, and the extra ones after them.
func scanRow(rows *sql.Rows, extra ...any) (Row, error) {
	var r Row
	err := rows.Scan(append([]any{&r.ID, &r.TS, &r.Transport, &r.Session, &r.Event, &r.Subject, &r.ClientID, &r.ClientName,
		&r.actorsText, &r.AuthMethod, &r.Tool, &r.Arguments, &r.Decision, &r.Reason, &r.Outcome, &r.DurationUS,
		&r.ResultBytes, &r.ResultSHA256, &r.PrevHash, &r.Hash, &r.IntentID}, extra...)...)
	if err != nil {
		return r, err
	}
	r.Actors = []string{}
	if r.actorsText != "[]" {
		if err := json.Unmarshal([]byte(r.actorsText), &r.Actors); err != nil {
			// Keep the raw text visible: a damaged row must still be shown.
			r.Actors = []string{r.actorsText}
		}
	}
	return r, nil
}

// Damage is the kind of problem Verify found at a row.
type Damage string

// Kinds of damage, each named for what the row shows (the cause may be
// another row: a deletion shows at the row after the gap).
const (
	// DamageContents: the row no longer matches its own hash but still links
	// to the row before it: a field was edited, or the row was forged with a
	// made-up hash.
	DamageContents Damage = "contents"
	// DamageMoved: the row matches neither its own hash nor the row before
	// it: it was moved, swapped with another row, or renumbered to make room
	// for a forged one.
	DamageMoved Damage = "moved"
	// DamageDeleted: ids skip: the rows between were deleted.
	DamageDeleted Damage = "deleted"
	// DamageInserted: the row matches its own hash but not the row before it:
	// the row before it was inserted or replaced, or this one was forged with
	// a correctly computed hash.
	DamageInserted Damage = "inserted"
	// DamageUnreadable: a column holds a value of the wrong type.
	DamageUnreadable Damage = "unreadable"
	// DamageCheckpoint: the newest prune checkpoint is not confirmed by an
	// audit/prune row in the chain: rows were removed by hand and a
	// checkpoint was forged to cover it.
	DamageCheckpoint Damage = "checkpoint"
)

// VerifyResult reports the outcome of Verify.
type VerifyResult struct {
	// Rows is the number of rows checked.
	Rows int64
	// HeadID and HeadHash identify the last row (the chain head).
	HeadID   int64
	HeadHash string
	// CheckpointID is the prune checkpoint the walk started from (0: genesis);
	// Pruned is the number of rows it records as pruned, PrunedBefore its date.
	CheckpointID int64
	Pruned       int64
	PrunedBefore string
	// BadID is the first damaged row (0 when the chain is intact).
	BadID int64
	// Kind is what is wrong with BadID, Problem says it in words.
	Kind    Damage
	Problem string
}

// ErrTampered is returned by Verify when the chain is broken.
var ErrTampered = errors.New("audit log tampered")

// pruneArgs is the arguments column of an audit/prune row: the checkpoint it
// wrote, so that Verify can tell a real checkpoint from a forged one.
type pruneArgs struct {
	Before     string `json:"before"`
	Checkpoint int64  `json:"checkpoint"`
	PrunedRows int64  `json:"pruned_rows"`
	FirstID    int64  `json:"first_id"`
	LastID     int64  `json:"last_id"`
	LastHash   string `json:"last_hash"`
}

// Verify walks the hash chain from the last prune checkpoint (or genesis),
// in one read transaction (a consistent snapshot while a server writes or a
// prune runs), and returns the first row that was edited, removed, inserted
// or moved, as an error wrapping ErrTampered. A row that was edited in place
// no longer matches its own hash; a row that was removed, inserted or moved
// breaks the link between neighbours (ids are part of the hash, so a swap is
// both). The newest checkpoint must be confirmed by the audit/prune row that
// wrote it.
func (r *Reader) Verify(ctx context.Context) (VerifyResult, error) {
	var res VerifyResult
	tx, err := r.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	prevID, prevHash := int64(0), Genesis
	err = tx.QueryRowContext(ctx, "SELECT id, last_id, last_hash, pruned_rows, pruned_before FROM audit_checkpoint ORDER BY id DESC LIMIT 1").
		Scan(&res.CheckpointID, &prevID, &prevHash, &res.Pruned, &res.PrunedBefore)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	checkpointID, checkpointHash := prevID, prevHash
	confirmed := res.CheckpointID == 0
	rows, err := tx.QueryContext(ctx, "SELECT "+r.cols+" FROM audit_log ORDER BY id")
	if err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	defer rows.Close()
	res.HeadID, res.HeadHash = prevID, prevHash
	var firstID int64
	for rows.Next() {
		res.Rows++
		row, err := scanRow(rows)
		if err != nil {
			// Scan again loosely to name the row.
			vals := make([]any, strings.Count(columns, ",")+1)
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if rows.Scan(ptrs...) == nil {
				row.ID, _ = vals[0].(int64)
			}
			return tampered(&res, row.ID, DamageUnreadable, fmt.Sprintf("a column holds a value of the wrong type (%v)", err))
		}
		if firstID == 0 {
			firstID = row.ID
		}
		if kind, problem := link(&row, prevID, prevHash); kind != "" {
			return tampered(&res, row.ID, kind, problem)
		}
		if !confirmed && row.Event == EventPrune {
			var a pruneArgs
			if json.Unmarshal([]byte(row.Arguments), &a) == nil && a.Checkpoint == res.CheckpointID &&
				a.LastID == checkpointID && a.LastHash == checkpointHash && a.PrunedRows == res.Pruned &&
				a.Before == res.PrunedBefore {
				confirmed = true
			}
		}
		prevID, prevHash = row.ID, row.Hash
		res.HeadID, res.HeadHash = row.ID, row.Hash
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	if !confirmed {
		at := firstID
		if at == 0 {
			at = res.HeadID
		}
		return tampered(&res, at, DamageCheckpoint, fmt.Sprintf("checkpoint %d (rows up to %d pruned) is not confirmed by any audit/prune row: rows were removed outside idmcp audit prune", res.CheckpointID, checkpointID))
	}
	return res, nil
}

// link checks row against its own hash and against the row before it
// (prevID, prevHash), and names the damage; "" when the row is sound.
func link(row *Row, prevID int64, prevHash string) (Damage, string) {
	selfOK := ComputeHash(row) == row.Hash
	linked := row.PrevHash == prevHash
	switch {
	case !selfOK && linked:
		return DamageContents, "contents do not match its hash (row edited, or forged with a made-up hash)"
	case !selfOK:
		return DamageMoved, fmt.Sprintf("matches neither its own hash nor row %d's (row moved, swapped, or renumbered around a forged row)", prevID)
	case row.ID != prevID+1:
		return DamageDeleted, fmt.Sprintf("follows row %d: %d row(s) missing (deleted)", prevID, row.ID-prevID-1)
	case !linked:
		return DamageInserted, fmt.Sprintf("prev_hash does not match row %d's hash (row %d was inserted or replaced, or this row was forged)", prevID, prevID)
	}
	return "", ""
}

func tampered(res *VerifyResult, id int64, kind Damage, problem string) (VerifyResult, error) {
	res.BadID, res.Kind, res.Problem = id, kind, problem
	return *res, fmt.Errorf("row %d: %s: %w", id, problem, ErrTampered)
}
