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
}

// OpenReader opens path read-only.
func OpenReader(ctx context.Context, path string) (*Reader, error) {
	db, err := store.OpenSQLite(ctx, path, true, "", nil)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return &Reader{db: db}, nil
}

// Close closes the reader.
func (r *Reader) Close() error { return r.db.Close() }

// DB returns the read-only connection pool, for `idmcp audit sql`.
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

// Query returns the rows matching f in id order (oldest first). With a
// Limit, it returns the newest Limit rows, still oldest first.
func (r *Reader) Query(ctx context.Context, f Filter) ([]Row, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if !f.Since.IsZero() {
		add("ts >= ?", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		add("ts < ?", f.Until.UTC().Format(time.RFC3339Nano))
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
	q := "SELECT " + columns + " FROM audit_log"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Limit > 0 {
		q = "SELECT * FROM (" + q + fmt.Sprintf(" ORDER BY id DESC LIMIT %d", f.Limit) + ") ORDER BY id"
	} else {
		q += " ORDER BY id"
	}
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit query: %w", err)
	}
	defer rows.Close()
	out := []Row{}
	for rows.Next() {
		row, err := scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("audit query: %w", err)
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

func scanRow(rows *sql.Rows) (Row, error) {
	var r Row
	var actors string
	err := rows.Scan(&r.ID, &r.TS, &r.Transport, &r.Session, &r.Event, &r.Subject, &r.ClientID, &r.ClientName,
		&actors, &r.AuthMethod, &r.Tool, &r.Arguments, &r.Decision, &r.Reason, &r.Outcome, &r.DurationUS,
		&r.ResultBytes, &r.ResultSHA256, &r.PrevHash, &r.Hash)
	if err != nil {
		return r, err
	}
	r.Actors = []string{}
	if actors != "[]" {
		if err := json.Unmarshal([]byte(actors), &r.Actors); err != nil {
			// Keep the raw text visible: a damaged row must still be shown.
			r.Actors = []string{actors}
		}
	}
	return r, nil
}

// VerifyResult reports the outcome of Verify.
type VerifyResult struct {
	// Rows is the number of rows checked.
	Rows int64
	// HeadID and HeadHash identify the last row (the chain head).
	HeadID   int64
	HeadHash string
	// BadID is the first damaged row (0 when the chain is intact).
	BadID int64
	// Problem says what is wrong with BadID.
	Problem string
}

// ErrTampered is returned by Verify when the chain is broken.
var ErrTampered = errors.New("audit log tampered")

// Verify walks the hash chain from the last prune checkpoint (or genesis)
// and returns the first row that was edited, removed, inserted or moved, as
// an error wrapping ErrTampered. A row that was edited in place no longer
// matches its own hash; a row that was removed, inserted or moved breaks the
// link between neighbours (ids are part of the hash, so a swap is both).
func (r *Reader) Verify(ctx context.Context) (VerifyResult, error) {
	var res VerifyResult
	prevID, prevHash := int64(0), Genesis
	err := r.db.QueryRowContext(ctx, "SELECT last_id, last_hash FROM audit_checkpoint ORDER BY id DESC LIMIT 1").Scan(&prevID, &prevHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	rows, err := r.db.QueryContext(ctx, "SELECT "+columns+" FROM audit_log ORDER BY id")
	if err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	defer rows.Close()
	res.HeadID, res.HeadHash = prevID, prevHash
	for rows.Next() {
		row, err := scanRow(rows)
		if err != nil {
			return res, fmt.Errorf("audit verify: %w", err)
		}
		res.Rows++
		bad := func(problem string) (VerifyResult, error) {
			res.BadID, res.Problem = row.ID, problem
			return res, fmt.Errorf("row %d: %s: %w", row.ID, problem, ErrTampered)
		}
		switch {
		case ComputeHash(&row) != row.Hash:
			return bad("contents do not match its hash (row edited, forged or moved)")
		case row.ID != prevID+1:
			return bad(fmt.Sprintf("follows row %d: %d row(s) missing (deleted)", prevID, row.ID-prevID-1))
		case row.PrevHash != prevHash:
			return bad(fmt.Sprintf("prev_hash does not match row %d's hash (a row before it was deleted, inserted or replaced)", prevID))
		}
		prevID, prevHash = row.ID, row.Hash
		res.HeadID, res.HeadHash = row.ID, row.Hash
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	return res, nil
}
