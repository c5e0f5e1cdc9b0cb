package audit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/idmcp/idmcp/store"
)

// DefaultPruneBatch is the most rows one prune transaction deletes. Each
// transaction holds SQLite's write lock, and a running server's commits wait
// for it (busy_timeout, 5 s), so a large prune is split into transactions
// that each take a fraction of a second.
const DefaultPruneBatch = 50_000

// ErrPruneRefused is wrapped when prune will not delete rows whose chain does
// not verify: deleting them would erase the evidence.
var ErrPruneRefused = errors.New("prune refused")

// PruneConfig configures Prune.
type PruneConfig struct {
	// Path is the audit database file; it must exist.
	Path string
	// Before: rows older than this are pruned (see Prune for the exact rule).
	Before time.Time
	// Actor is who prunes (the OS user): the subject of the audit/prune row.
	Actor string
	// Batch caps the rows deleted per transaction; DefaultPruneBatch when 0.
	Batch int
	// Sync is the synchronous level of the prune's writes; store.SyncFull when empty.
	Sync store.Sync
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Key is the data dir's audit key: needed when the chain is keyed (the
	// audit/prune row is hashed under it, and the rows are verified with it
	// before any is deleted).
	Key []byte
}

// Validate checks the configuration.
func (c PruneConfig) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("field \"path\": empty audit database path")
	case c.Before.IsZero():
		return errors.New("field \"before\": zero time")
	case c.Batch < 0:
		return errors.New("field \"batch\": negative")
	}
	return nil
}

// PruneResult reports what Prune did.
type PruneResult struct {
	// Rows is the number of rows deleted.
	Rows int64
	// Checkpoints lists the checkpoint ids written, one per transaction.
	Checkpoints []int64
	// LastID and LastHash identify the last pruned row: the first kept row
	// chains to it.
	LastID   int64
	LastHash string
}

// Prune deletes the oldest rows, those before cfg.Before, and keeps the chain
// verifiable. It is the one supported way to delete rows, and it works while
// a server is writing the file: it is a second writer (BEGIN IMMEDIATE, busy
// timeout). Each transaction:
//
//   - walks the chain over the rows it will delete and refuses (wrapping
//     ErrPruneRefused) if they do not verify;
//   - drops the delete trigger, deletes a prefix of the chain, and recreates
//     the trigger exactly as it was;
//   - inserts an audit_checkpoint row (rows pruned, last id, last hash) and
//     appends an audit/prune row to the chain that records the checkpoint,
//     which Verify requires.
//
// Only a prefix of the chain (by id) can be pruned, and ts is not strictly
// increasing with id (concurrent calls are committed in queue order), so
// Prune deletes the rows before the first row whose ts is at or after
// Before: a row older than Before that follows a newer one is kept.
//
// A running server chains its next rows to the prune row: its writer reads
// the chain head inside each transaction.
func Prune(ctx context.Context, cfg PruneConfig) (PruneResult, error) {
	var res PruneResult
	if err := cfg.Validate(); err != nil {
		return res, fmt.Errorf("audit prune: %w", err)
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultPruneBatch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Before.After(cfg.Now()) {
		return res, fmt.Errorf("audit prune: --before %s is in the future: that would prune every row", cfg.Before.Format(time.RFC3339))
	}
	if _, err := os.Stat(cfg.Path); err != nil {
		return res, fmt.Errorf("audit prune: %w", err)
	}
	db, err := store.OpenSQLite(ctx, cfg.Path, false, cfg.Sync, migrations())
	if err != nil {
		return res, fmt.Errorf("audit prune: %w", err)
	}
	defer db.Close()
	// The whole chain must verify first, including that the newest
	// checkpoint was written by a prune: otherwise a forged checkpoint (rows
	// deleted by hand) would be laundered by the genuine one this prune adds.
	r, err := OpenReader(ctx, cfg.Path)
	if err != nil {
		return res, fmt.Errorf("audit prune: %w", err)
	}
	vres, verr := r.VerifyWith(ctx, VerifyOptions{Key: cfg.Key})
	_ = r.Close()
	if verr != nil {
		return res, fmt.Errorf("audit prune: %w: %w; pruning would erase the evidence", ErrPruneRefused, verr)
	}
	if vres.HeadKeyID != "" && cfg.Key == nil {
		return res, fmt.Errorf("audit prune: %w: the chain is keyed (audit key %s) and the key is not available: the audit/prune row could not be hashed", ErrPruneRefused, vres.HeadKeyID)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	session := hex.EncodeToString(b[:])
	for {
		n, err := pruneBatch(ctx, db, cfg, session, vres.HeadKeyID, &res)
		if err != nil {
			return res, fmt.Errorf("audit prune: %w", err)
		}
		if n == 0 {
			return res, nil
		}
	}
}

// pruneBatch prunes at most cfg.Batch rows in one transaction and returns how
// many it deleted.
// headKey is the key id of the chain's head ("" for SHA-256): the hash of
// the audit/prune row.
func pruneBatch(ctx context.Context, db *sql.DB, cfg PruneConfig, session, headKey string, res *PruneResult) (int64, error) {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock): the write lock, or wait for it
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	before := FormatTS(cfg.Before)
	var first, last, boundary sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT min(id), max(id) FROM audit_log").Scan(&first, &last); err != nil {
		return 0, err
	}
	if !first.Valid {
		return 0, nil
	}
	if err := tx.QueryRowContext(ctx, "SELECT min(id) FROM audit_log WHERE ts >= ?", before).Scan(&boundary); err != nil {
		return 0, err
	}
	upTo := last.Int64
	if boundary.Valid {
		upTo = boundary.Int64 - 1
	}
	upTo = min(upTo, first.Int64+int64(cfg.Batch)-1)
	if upTo < first.Int64 {
		return 0, nil
	}

	// The rows to delete must verify, from the newest checkpoint on.
	prevID, prevHash, ckptKey := int64(0), Genesis, ""
	err = tx.QueryRowContext(ctx, "SELECT last_id, last_hash, key_id FROM audit_checkpoint ORDER BY id DESC LIMIT 1").Scan(&prevID, &prevHash, &ckptKey)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	var n int64
	c := newChain(cfg.Key)
	c.segKey = ckptKey
	var lastKey string // key id of the last pruned row's segment
	rows, err := tx.QueryContext(ctx, "SELECT "+columns+" FROM audit_log WHERE id <= ? ORDER BY id", upTo+1)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		row, err := scanRow(rows)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("%w: a row up to %d is unreadable (%w); run idmcp audit verify", ErrPruneRefused, upTo, err)
		}
		if kind, problem := c.check(&row, prevID, prevHash); kind != "" {
			rows.Close()
			return 0, fmt.Errorf("%w: row %d: %s; pruning would erase the evidence: run idmcp audit verify", ErrPruneRefused, row.ID, problem)
		}
		if row.ID <= upTo {
			n++
			res.LastID, res.LastHash, lastKey = row.ID, row.Hash, c.segKey
		}
		prevID, prevHash = row.ID, row.Hash
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	lastID, lastHash := res.LastID, res.LastHash

	var trigger string
	err = tx.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'audit_log_no_delete'").Scan(&trigger)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: the trigger audit_log_no_delete is missing: the database was altered outside idmcp", ErrPruneRefused)
	}
	if err != nil {
		return 0, err
	}
	now := cfg.Now()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"DROP TRIGGER audit_log_no_delete", nil},
		{"DELETE FROM audit_log WHERE id <= ?", []any{lastID}},
		{trigger, nil},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return 0, err
		}
	}
	cp, err := tx.ExecContext(ctx, "INSERT INTO audit_checkpoint (ts, pruned_before, pruned_rows, last_id, last_hash, key_id) VALUES (?, ?, ?, ?, ?, ?)",
		FormatTS(now), before, n, lastID, lastHash, lastKey)
	if err != nil {
		return 0, err
	}
	cpID, err := cp.LastInsertId()
	if err != nil {
		return 0, err
	}

	// The audit/prune row: the new chain head, vouching for the checkpoint.
	var headID int64
	var headHash string
	if err := tx.QueryRowContext(ctx, headSQL).Scan(&headID, &headHash); err != nil {
		return 0, err
	}
	args, _ := json.Marshal(pruneArgs{Before: before, Checkpoint: cpID, PrunedRows: n, FirstID: first.Int64, LastID: lastID, LastHash: lastHash, KeyID: lastKey})
	row := Row{
		ID: headID + 1, TS: FormatTS(now), Transport: "cli", Session: session,
		Event: EventPrune, Subject: cfg.Actor, AuthMethod: "os-user", Arguments: string(args), Outcome: OK,
		Reason:   fmt.Sprintf("pruned %d row(s), ids %d to %d, older than %s; checkpoint %d", n, first.Int64, lastID, before, cpID),
		PrevHash: headHash,
	}
	row.Hash = ComputeHash(&row)
	if headKey != "" {
		// The head is keyed; Prune checked that cfg.Key is there.
		row.Hash = ComputeHMAC(cfg.Key, &row)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO audit_log ("+columns+") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
		row.ID, row.TS, row.Transport, row.Session, row.Event, row.Subject, row.ClientID, row.ClientName,
		actorsJSON(row.Actors), row.AuthMethod, row.Tool, row.Arguments, row.Decision, row.Reason, row.Outcome,
		row.DurationUS, row.ResultBytes, row.ResultSHA256, row.PrevHash, row.Hash, row.IntentID, row.Issuer); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	res.Rows += n
	res.Checkpoints = append(res.Checkpoints, cpID)
	return n, nil
}
