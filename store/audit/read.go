package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
	// ckptKey is the SELECT expression of a checkpoint's key_id ('' before
	// migration 004).
	ckptKey string
}

// OpenReader opens path read-only.
func OpenReader(ctx context.Context, path string) (*Reader, error) {
	db, err := store.OpenSQLite(ctx, path, true, "", nil)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	r := &Reader{db: db, cols: columns,
		unfinished: "outcome = 'started' AND NOT EXISTS (SELECT 1 FROM audit_log o WHERE o.intent_id = audit_log.id)"}
	has := func(table, col string) (bool, error) {
		var n int
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", table, col).Scan(&n)
		return n > 0, err
	}
	var n int
	for _, c := range []struct{ col, missing string }{{"intent_id", "0 AS intent_id"}, {"issuer", "'' AS issuer"}} {
		ok, err := has("audit_log", c.col)
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("audit: %w", err)
		}
		if !ok {
			// A database no server has migrated yet (a read-only reader
			// cannot): the column reads as its default.
			r.cols = strings.Replace(r.cols, ", "+c.col, ", "+c.missing, 1)
			if c.col == "intent_id" {
				r.unfinished = "0"
			}
		}
	}
	r.ckptKey = "key_id"
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info('audit_checkpoint') WHERE name = 'key_id'").Scan(&n); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	if n == 0 {
		r.ckptKey = "''"
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
	// AuthMethod and Issuer, with Subject and ClientID, select one caller's
	// own rows (audit_query without the admin role).
	AuthMethod string
	Issuer     string
	Tool       string
	Event      string
	Decision   string
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
	if f.AuthMethod != "" {
		add("auth_method = ?", f.AuthMethod)
	}
	if f.Issuer != "" {
		add("issuer = ?", f.Issuer)
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
		&r.ResultBytes, &r.ResultSHA256, &r.PrevHash, &r.Hash, &r.IntentID, &r.Issuer}, extra...)...)
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
	// DamageKey: a keyed row is hashed under a key other than this data
	// dir's, or the chain does not end under this data dir's key though the
	// key exists: the chain was rewritten without the key.
	DamageKey Damage = "key"
	// DamageAnchor: the row of an expected head (--expect-head) is missing or
	// differs, or the log ends before it: rows were cut from the tail or the
	// chain was rewritten.
	DamageAnchor Damage = "anchor"
	// DamageEmpty: the log has no rows though the data dir has been used.
	DamageEmpty Damage = "empty"
	// DamageTriggers: an append-only trigger is missing or altered.
	DamageTriggers Damage = "triggers"
)

// Anchor is a row id and hash kept outside the log (`audit head`), that a
// later Verify requires to be still there, unchanged.
type Anchor struct {
	ID   int64
	Hash string
}

// Head returns the chain head: the last row, else the last prune
// checkpoint's row, else 0 and genesis.
func (r *Reader) Head(ctx context.Context) (Anchor, error) {
	var a Anchor
	if err := r.db.QueryRowContext(ctx, headSQL).Scan(&a.ID, &a.Hash); err != nil {
		return a, fmt.Errorf("audit head: %w", err)
	}
	return a, nil
}

// ParseAnchor parses "ID:HASH" as `audit head` prints it.
func ParseAnchor(s string) (Anchor, error) {
	id, h, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(id, 10, 64)
	if !ok || err != nil || n < 1 || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return Anchor{}, fmt.Errorf("anchor %q: want ID:HASH as audit head prints it (a row id and 64 lower-case hex digits)", s)
	}
	return Anchor{ID: n, Hash: h}, nil
}

// String returns "ID:HASH".
func (a Anchor) String() string { return fmt.Sprintf("%d:%s", a.ID, a.Hash) }

// VerifyOptions are what Verify checks beyond the chain's own consistency.
type VerifyOptions struct {
	// Key is the data dir's audit key. Without it, rows after an audit/key
	// row are checked for their links only (VerifyResult.LinksOnly); with
	// it, the chain must end under this key.
	Key []byte
	// ExpectHead, when set, must still be in the log with the same hash.
	ExpectHead *Anchor
	// Used says the data dir has been used (its audit key or tool database
	// exists): an empty log is then a deleted one.
	Used bool
}

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
	// Chain says how the rows were hashed (ChainSHA256, or ChainHMAC with
	// its key id and the row it starts at).
	Chain string
	// LinksOnly counts keyed rows whose contents were not checked (no key).
	LinksOnly int64
	// HeadKeyID is the audit key id the head row is hashed under ("" for
	// SHA-256): the key the next row needs.
	HeadKeyID string
	// Anchor is the checked ExpectHead, if any.
	Anchor *Anchor
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
	// KeyID is the audit key id of the pruned rows' segment ("" for SHA-256).
	KeyID string `json:"key_id,omitempty"`
}

// Verify is VerifyWith without a key, anchor or used marker.
func (r *Reader) Verify(ctx context.Context) (VerifyResult, error) {
	return r.VerifyWith(ctx, VerifyOptions{})
}

// VerifyWith walks the hash chain from the last prune checkpoint (or
// genesis), in one read transaction (a consistent snapshot while a server
// writes or a prune runs), and returns the first row that was edited,
// removed, inserted or moved, as an error wrapping ErrTampered. A row that
// was edited in place no longer matches its own hash; a row that was removed,
// inserted or moved breaks the link between neighbours (ids are part of the
// hash, so a swap is both). The newest checkpoint must be confirmed by the
// audit/prune row that wrote it. Rows from an audit/key row on are checked
// under opts.Key. Then it checks opts.ExpectHead, that a used data dir's log
// is not empty, and that the append-only triggers are in place.
func (r *Reader) VerifyWith(ctx context.Context, opts VerifyOptions) (VerifyResult, error) {
	var res VerifyResult
	tx, err := r.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	prevID, prevHash := int64(0), Genesis
	var ckptKey string
	err = tx.QueryRowContext(ctx, "SELECT id, last_id, last_hash, pruned_rows, pruned_before, "+r.ckptKey+" FROM audit_checkpoint ORDER BY id DESC LIMIT 1").
		Scan(&res.CheckpointID, &prevID, &prevHash, &res.Pruned, &res.PrunedBefore, &ckptKey)
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
	c := newChain(opts.Key)
	c.segKey = ckptKey
	anchorSeen := false
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
			return tampered(&res, c, row.ID, DamageUnreadable, fmt.Sprintf("a column holds a value of the wrong type (%v)", err))
		}
		if firstID == 0 {
			firstID = row.ID
		}
		if kind, problem := c.check(&row, prevID, prevHash); kind != "" {
			return tampered(&res, c, row.ID, kind, problem)
		}
		if a := opts.ExpectHead; a != nil && row.ID == a.ID {
			anchorSeen = true
			if row.Hash != a.Hash {
				return tampered(&res, c, row.ID, DamageAnchor, fmt.Sprintf("hash %s differs from the expected head %s: the chain was rewritten", row.Hash, a.Hash))
			}
		}
		if !confirmed && row.Event == EventPrune {
			var a pruneArgs
			if json.Unmarshal([]byte(row.Arguments), &a) == nil && a.Checkpoint == res.CheckpointID &&
				a.LastID == checkpointID && a.LastHash == checkpointHash && a.PrunedRows == res.Pruned &&
				a.Before == res.PrunedBefore && a.KeyID == ckptKey {
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
		return tampered(&res, c, at, DamageCheckpoint, fmt.Sprintf("checkpoint %d (rows up to %d pruned) is not confirmed by any audit/prune row: rows were removed outside idmcp audit prune", res.CheckpointID, checkpointID))
	}
	if a := opts.ExpectHead; a != nil && !anchorSeen {
		res.Anchor = a
		switch {
		case a.ID > res.HeadID:
			return tampered(&res, c, res.HeadID, DamageAnchor, fmt.Sprintf("the log ends at row %d, before the expected head row %d: rows were cut from the tail", res.HeadID, a.ID))
		case a.ID == checkpointID && res.CheckpointID != 0:
			if a.Hash != checkpointHash {
				return tampered(&res, c, a.ID, DamageAnchor, fmt.Sprintf("pruned row %d had hash %s by the checkpoint, not the expected %s", a.ID, checkpointHash, a.Hash))
			}
		default:
			return tampered(&res, c, a.ID, DamageAnchor, fmt.Sprintf("expected head row %d is not in the log (pruned rows end at %d): it cannot be checked; keep a newer anchor", a.ID, checkpointID))
		}
	}
	res.Anchor = opts.ExpectHead
	if res.Rows == 0 && opts.Used {
		return tampered(&res, c, 0, DamageEmpty, "the log has no rows, but the data dir has been used (its audit key or tool database exists): the rows were deleted")
	}
	if opts.Key != nil && res.Rows > 0 && c.segKey != c.keyID {
		return tampered(&res, c, res.HeadID, DamageKey, fmt.Sprintf("the data dir has audit key %s, but the chain does not end under it (%s): rows were rewritten or appended without the key", c.keyID, c.kind()))
	}
	if problem, err := checkTriggers(ctx, tx); err != nil {
		return res, fmt.Errorf("audit verify: %w", err)
	} else if problem != "" {
		return tampered(&res, c, 0, DamageTriggers, problem)
	}
	res.Chain, res.LinksOnly, res.HeadKeyID = c.kind(), c.linksOnly, c.segKey
	return res, nil
}

// appendOnlyTriggers are the triggers that make the tables append-only, as
// the migrations create them (prune drops and recreates audit_log_no_delete
// with its stored text).
var appendOnlyTriggers = map[string]string{
	"audit_log_no_update":        "BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
	"audit_log_no_delete":        "BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only; use idmcp audit prune'); END",
	"audit_checkpoint_no_update": "BEFORE UPDATE ON audit_checkpoint BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only'); END",
	"audit_checkpoint_no_delete": "BEFORE DELETE ON audit_checkpoint BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only'); END",
}

// checkTriggers returns what is wrong with the append-only triggers, "" when
// each is there as created.
func checkTriggers(ctx context.Context, tx *sql.Tx) (string, error) {
	found := map[string]string{}
	rows, err := tx.QueryContext(ctx, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var name, text string
		if err := rows.Scan(&name, &text); err != nil {
			return "", err
		}
		found[name] = text
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	var problems []string
	for _, name := range []string{"audit_log_no_update", "audit_log_no_delete", "audit_checkpoint_no_update", "audit_checkpoint_no_delete"} {
		text, ok := found[name]
		switch {
		case !ok:
			problems = append(problems, name+" is missing")
		case !strings.HasSuffix(strings.Join(strings.Fields(text), " "), appendOnlyTriggers[name]):
			problems = append(problems, name+" was altered")
		}
	}
	if problems == nil {
		return "", nil
	}
	return "append-only trigger(s): " + strings.Join(problems, ", ") + ": the database was altered outside idmcp (rows may have been changed since)", nil
}

func tampered(res *VerifyResult, c *chain, id int64, kind Damage, problem string) (VerifyResult, error) {
	res.BadID, res.Kind, res.Problem = id, kind, problem
	res.Chain, res.LinksOnly = c.kind(), c.linksOnly
	return *res, fmt.Errorf("row %d: %s: %w", id, problem, ErrTampered)
}
