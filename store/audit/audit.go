package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idmcp/idmcp/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Event kinds.
const (
	EventAuth        = "auth"
	EventToolsList   = "tools/list"
	EventToolsCall   = "tools/call"
	EventServerStart = "server/start"
	EventServerStop  = "server/stop"
	EventPrune       = "audit/prune"
)

// Decisions and outcomes.
const (
	Allow   = "allow"
	Deny    = "deny"
	OK      = "ok"
	Failed  = "error"
	Genesis = "0000000000000000000000000000000000000000000000000000000000000000"
)

// ErrUnavailable is wrapped by every error that means a row was not recorded.
var ErrUnavailable = errors.New("audit log unavailable")

// Event is one audit row before it is written. Arguments hold the raw tool
// arguments; Append stores only their redacted copy.
type Event struct {
	Time         time.Time       `json:"ts"`
	Transport    string          `json:"transport"`
	Session      string          `json:"session"`
	Event        string          `json:"event"`
	Subject      string          `json:"subject"`
	ClientID     string          `json:"client_id"`
	ClientName   string          `json:"client_name"`
	Actors       []string        `json:"actors"`
	AuthMethod   string          `json:"auth_method"`
	Tool         string          `json:"tool"`
	Arguments    json.RawMessage `json:"arguments"`
	Decision     string          `json:"decision"`
	Reason       string          `json:"reason"`
	Outcome      string          `json:"outcome"`
	Duration     time.Duration   `json:"-"`
	ResultBytes  int64           `json:"result_bytes"`
	ResultSHA256 string          `json:"result_sha256"`
}

// Row is a stored audit row.
type Row struct {
	ID           int64    `json:"id"`
	TS           string   `json:"ts"`
	Transport    string   `json:"transport"`
	Session      string   `json:"session"`
	Event        string   `json:"event"`
	Subject      string   `json:"subject"`
	ClientID     string   `json:"client_id"`
	ClientName   string   `json:"client_name"`
	Actors       []string `json:"actors"`
	AuthMethod   string   `json:"auth_method"`
	Tool         string   `json:"tool"`
	Arguments    string   `json:"arguments"`
	Decision     string   `json:"decision"`
	Reason       string   `json:"reason"`
	Outcome      string   `json:"outcome"`
	DurationUS   int64    `json:"duration_us"`
	ResultBytes  int64    `json:"result_bytes"`
	ResultSHA256 string   `json:"result_sha256"`
	PrevHash     string   `json:"prev_hash"`
	Hash         string   `json:"hash"`
}

// columns lists the stored columns in table order; the hash covers all but hash.
const columns = "id, ts, transport, session, event, subject, client_id, client_name, actors, auth_method, tool, arguments, decision, reason, outcome, duration_us, result_bytes, result_sha256, prev_hash, hash"

// actorsJSON is the stored form of Actors: always a JSON array.
func actorsJSON(a []string) string {
	if len(a) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(a)
	return string(b)
}

// ComputeHash returns the row hash: SHA-256 over a canonical encoding (a JSON
// array of every column but hash, in table order, actors in stored form).
func ComputeHash(r *Row) string {
	canon, _ := json.Marshal([]any{
		r.ID, r.TS, r.Transport, r.Session, r.Event, r.Subject, r.ClientID, r.ClientName,
		actorsJSON(r.Actors), r.AuthMethod, r.Tool, r.Arguments, r.Decision, r.Reason, r.Outcome,
		r.DurationUS, r.ResultBytes, r.ResultSHA256, r.PrevHash,
	})
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// Config configures a Log.
type Config struct {
	// Path is the audit database file.
	Path string
	// Sync is SQLite's synchronous level; store.SyncFull when empty.
	Sync store.Sync
	// Redactor redacts arguments and reasons; a zero Redactor when nil.
	Redactor *Redactor
	// MaxBatch caps the rows of one group commit; DefaultMaxBatch when 0.
	MaxBatch int
	// WriteTimeout bounds how long Append waits for its commit; DefaultWriteTimeout when 0.
	WriteTimeout time.Duration
	// Now is the clock for events without a time; time.Now when nil.
	Now func() time.Time
}

// Defaults.
const (
	DefaultMaxBatch     = 4096
	DefaultWriteTimeout = 10 * time.Second
)

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("field \"path\": empty audit database path")
	}
	if c.Sync != "" && c.Sync != store.SyncFull && c.Sync != store.SyncNormal {
		return fmt.Errorf("field \"sync\": %q: want FULL or NORMAL", c.Sync)
	}
	if c.MaxBatch < 0 {
		return errors.New("field \"max_batch\": negative")
	}
	return nil
}

type request struct {
	row  Row
	done chan error
}

// Log is the writer side of the audit database: one goroutine, group commit.
type Log struct {
	cfg     Config
	db      *sql.DB
	ch      chan request
	mu      sync.RWMutex // guards closed against sends on a closed channel
	closed  bool
	stopped chan struct{}
	lastErr atomic.Pointer[error]
	rows    atomic.Int64
	commits atomic.Int64

	// writer-goroutine state
	headID   int64
	headHash string
	insert   *sql.Stmt
}

// Open opens (creating and migrating as needed) the audit database and starts
// its writer.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Redactor == nil {
		cfg.Redactor = &Redactor{}
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sub, _ := fs.Sub(migrationFS, "migrations")
	db, err := store.OpenSQLite(ctx, cfg.Path, false, cfg.Sync, sub)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l := &Log{cfg: cfg, db: db, ch: make(chan request, cfg.MaxBatch), stopped: make(chan struct{})}
	if l.headID, l.headHash, err = head(ctx, db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	l.insert, err = db.PrepareContext(ctx, "INSERT INTO audit_log ("+columns+") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	go l.run()
	return l, nil
}

// head returns the id and hash the next row chains to: the last row, else the
// last prune checkpoint, else genesis.
func head(ctx context.Context, db *sql.DB) (int64, string, error) {
	var id int64
	var h string
	err := db.QueryRowContext(ctx, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").Scan(&id, &h)
	if err == nil {
		return id, h, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, "", err
	}
	err = db.QueryRowContext(ctx, "SELECT last_id, last_hash FROM audit_checkpoint ORDER BY id DESC LIMIT 1").Scan(&id, &h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, Genesis, nil
	}
	return id, h, err
}

// Healthy returns the error of the last failed commit, or nil when the last
// commit succeeded. Callers check it before running a tool so that the server
// never runs a tool it cannot record.
func (l *Log) Healthy() error {
	if p := l.lastErr.Load(); p != nil && *p != nil {
		return *p
	}
	return nil
}

// Stats returns rows and commits written since Open.
func (l *Log) Stats() (rows, commits int64) { return l.rows.Load(), l.commits.Load() }

// Append redacts ev and returns once its row is committed. It waits on a
// context detached from ctx's cancellation, bounded by WriteTimeout, because a
// client that went away must not drop its row. An error wraps ErrUnavailable.
func (l *Log) Append(ctx context.Context, ev Event) error {
	row := l.toRow(ev)
	done := make(chan error, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return fmt.Errorf("audit log closed: %w", ErrUnavailable)
	}
	l.ch <- request{row: row, done: done}
	l.mu.RUnlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.WriteTimeout)
	defer cancel()
	select {
	case err := <-done:
		return err
	case <-wctx.Done():
		return fmt.Errorf("audit write timed out after %s: %w", l.cfg.WriteTimeout, ErrUnavailable)
	}
}

func (l *Log) toRow(ev Event) Row {
	t := ev.Time
	if t.IsZero() {
		t = l.cfg.Now()
	}
	r := l.cfg.Redactor
	return Row{
		TS:           t.UTC().Format(time.RFC3339Nano),
		Transport:    ev.Transport,
		Session:      ev.Session,
		Event:        ev.Event,
		Subject:      r.Scrub(ev.Subject),
		ClientID:     r.Scrub(ev.ClientID),
		ClientName:   r.String(ev.ClientName),
		Actors:       ev.Actors,
		AuthMethod:   ev.AuthMethod,
		Tool:         r.String(ev.Tool),
		Arguments:    argumentsText(r, ev),
		Decision:     ev.Decision,
		Reason:       r.String(ev.Reason),
		Outcome:      ev.Outcome,
		DurationUS:   ev.Duration.Microseconds(),
		ResultBytes:  ev.ResultBytes,
		ResultSHA256: ev.ResultSHA256,
	}
}

func argumentsText(r *Redactor, ev Event) string {
	if ev.Event != EventToolsCall && len(ev.Arguments) == 0 {
		return "{}"
	}
	return r.Arguments(ev.Arguments)
}

func (l *Log) run() {
	defer close(l.stopped)
	batch := make([]request, 0, l.cfg.MaxBatch)
	for first := range l.ch {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < l.cfg.MaxBatch {
			select {
			case r, ok := <-l.ch:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		err := l.commit(batch)
		if err != nil {
			err = fmt.Errorf("%w: %v", ErrUnavailable, err)
			l.lastErr.Store(&err)
		} else {
			l.lastErr.Store(nil)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (l *Log) commit(batch []request) error {
	ctx := context.Background()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	stmt := tx.StmtContext(ctx, l.insert)
	id, h := l.headID, l.headHash
	for i := range batch {
		r := &batch[i].row
		id++
		r.ID, r.PrevHash = id, h
		r.Hash = ComputeHash(r)
		h = r.Hash
		if _, err := stmt.ExecContext(ctx, r.ID, r.TS, r.Transport, r.Session, r.Event, r.Subject, r.ClientID,
			r.ClientName, actorsJSON(r.Actors), r.AuthMethod, r.Tool, r.Arguments, r.Decision, r.Reason, r.Outcome,
			r.DurationUS, r.ResultBytes, r.ResultSHA256, r.PrevHash, r.Hash); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		_ = tx.Rollback()
		return err
	}
	l.headID, l.headHash = id, h
	l.rows.Add(int64(len(batch)))
	l.commits.Add(1)
	return nil
}

// Close stops accepting rows, commits everything queued, and closes the
// database. It returns early with ctx's error if draining takes too long.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.ch)
	l.mu.Unlock()
	select {
	case <-l.stopped:
	case <-ctx.Done():
		return fmt.Errorf("audit: drain: %w", ctx.Err())
	}
	_ = l.insert.Close()
	return l.db.Close()
}
