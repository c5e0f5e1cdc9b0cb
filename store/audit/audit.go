package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
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
	// EventRecovered is written by the log itself when writes work again
	// after a failure: it records how long the log was unavailable, how many
	// rows were not written and how many requests were refused meanwhile.
	EventRecovered = "audit/recovered"
)

// Decisions and outcomes.
const (
	Allow  = "allow"
	Deny   = "deny"
	OK     = "ok"
	Failed = "error"
	// Started is the outcome of an intent row: written and committed before
	// a tool with side effects runs (Log.Intent).
	Started = "started"
	// Cancelled is the outcome of a call whose client cancelled it (or went
	// away) while the tool ran.
	Cancelled = "cancelled"
	// Unfinished is how readers show an intent row without an outcome row;
	// it is never stored.
	Unfinished = "unfinished"
	Genesis    = "0000000000000000000000000000000000000000000000000000000000000000"
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
	// IntentID names the intent row (written by Intent) whose outcome this
	// row records; 0 on every other row.
	IntentID int64 `json:"intent_id"`
	// Issuer is the token issuer of a JWT caller; empty otherwise.
	Issuer string `json:"issuer"`
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
	IntentID     int64    `json:"intent_id"`
	Issuer       string   `json:"issuer"`

	// Unfinished is set by Reader.Query and Each on an intent row (outcome
	// "started") that no outcome row names: the call was cut off by a kill
	// or crash, or is still running. It is not a column.
	Unfinished bool `json:"-"`

	// actorsText is the actors column exactly as stored (set when a row is
	// read or built for writing): the hash covers the stored text, so an
	// edit that keeps the decoded value (added whitespace) is still detected.
	actorsText string
	// canon is canonMiddle, computed before the row is queued.
	canon []byte
	// args holds the INSERT parameters of every column but id, prev_hash
	// and hash (args[1:18]), converted to interfaces before the row is
	// queued: a conversion allocates, and the writer goroutine is the
	// bottleneck.
	args [numColumns]any
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
	// RetryInterval is how often Healthy, while the log is failing, tries a
	// write to find out whether it works again; DefaultRetryInterval when 0.
	RetryInterval time.Duration
	// Now is the clock for events without a time; time.Now when nil.
	Now func() time.Time
	// Logger gets operational messages (the log failing and recovering),
	// never row contents; discarded when nil.
	Logger *slog.Logger
	// Key is the data dir's audit key (KeySize bytes). With it, row hashes
	// are HMAC-SHA-256 under it: Open writes an audit/key row first when the
	// chain is not keyed yet. Without it, hashes are plain SHA-256, and Open
	// refuses a chain that is already keyed (ErrKeyMismatch).
	Key []byte
}

// Defaults.
const (
	DefaultMaxBatch      = 4096
	DefaultWriteTimeout  = 10 * time.Second
	DefaultRetryInterval = time.Second
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
	if c.WriteTimeout < 0 {
		return errors.New("field \"write_timeout\": negative")
	}
	if c.RetryInterval < 0 {
		return errors.New("field \"retry_interval\": negative")
	}
	if c.Key != nil && len(c.Key) != KeySize {
		return fmt.Errorf("field \"key\": %d bytes, want %d", len(c.Key), KeySize)
	}
	return nil
}

// request is one row (or, with probe set, no row: a check that the log can
// be written) waiting for the writer.
type request struct {
	row   Row
	probe bool
	done  chan error
	// id, when set, receives the row's id before done is answered (Intent).
	id *int64
}

// outage describes the log while it cannot be written.
type outage struct {
	err error // of the last failed commit
}

// Log is the writer side of the audit database: one goroutine owns the write
// connection and commits rows in groups.
type Log struct {
	cfg     Config
	db      *sql.DB
	ch      chan request
	mu      sync.RWMutex // guards closed: no send on the closed channel
	closed  bool
	stopped chan struct{}
	isDone  atomic.Bool // closed, for Healthy without the lock
	health  atomic.Pointer[outage]
	probeAt atomic.Int64 // unix nanoseconds of the last probe Healthy started
	refused atomic.Int64 // Healthy calls answered with an error in this outage
	rows    atomic.Int64
	commits atomic.Int64
	log     *slog.Logger

	// Writer-goroutine state (and Open's and Close's, before and after it).
	stmts     writeStmts
	hasher    hasher
	file      os.FileInfo // the database file as opened
	walFile   os.FileInfo // its WAL as opened
	failSince time.Time   // start of the current outage; zero when healthy
	failErr   error
	lost      int64 // rows whose commit failed in this outage
	ckpt      *checkpointer
	walPages  int // pages appended to the WAL since it last started over (checkpoint.go)
	requestAt int // walPages at which to ask for the next background checkpoint
	forceAt   int // walPages at which the writer checkpoints itself
}

// Open opens (creating and migrating as needed) the audit database and starts
// its writer.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
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
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := store.OpenSQLite(ctx, cfg.Path, false, cfg.Sync, migrations())
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l := &Log{cfg: cfg, db: db, ch: make(chan request, cfg.MaxBatch), stopped: make(chan struct{}), log: cfg.Logger}
	fail := func(err error) (*Log, error) {
		_ = db.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	if l.file, err = os.Stat(cfg.Path); err != nil {
		return fail(err)
	}
	// The statements are prepared now, so that a database they do not fit
	// fails Open rather than the first Append.
	if err := l.withConn(ctx, func(dc any) error { return l.stmts.prepare(ctx, dc) }); err != nil {
		l.stmts.close()
		return fail(err)
	}
	if l.walFile, err = os.Stat(cfg.Path + "-wal"); err != nil {
		l.stmts.close()
		return fail(err)
	}
	if l.ckpt, err = startCheckpointer(ctx, cfg, l.log); err != nil {
		l.stmts.close()
		return fail(err)
	}
	l.requestAt, l.forceAt = checkpointPages, walPagesCap
	current, err := chainKeyID(ctx, db)
	if err != nil {
		l.stmts.close()
		l.ckpt.close()
		return fail(err)
	}
	switch {
	case cfg.Key == nil && current != "":
		l.stmts.close()
		l.ckpt.close()
		return fail(fmt.Errorf("%w: the chain is keyed (audit key %s) and no key was given: rows written without it would not verify", ErrKeyMismatch, current))
	case cfg.Key != nil && current != "" && current != KeyID(cfg.Key):
		l.stmts.close()
		l.ckpt.close()
		return fail(fmt.Errorf("%w: the chain is keyed under audit key %s, but this data dir's key is %s: restore the key (keyring entry or key file), or move %s aside to start a new log", ErrKeyMismatch, current, KeyID(cfg.Key), cfg.Path))
	}
	if cfg.Key != nil {
		l.hasher.mac = hmac.New(sha256.New, cfg.Key)
	}
	go l.run()
	if cfg.Key != nil && current == "" {
		// The switch is itself a row, hashed under the key: from here on a
		// rewrite of the chain needs the key.
		row := l.toRow(Event{Event: EventKey, Outcome: OK,
			Reason: "row hashes are HMAC-SHA-256 under this data dir's audit key from this row on"})
		args, _ := json.Marshal(keyArgs{Chain: ChainHMAC, KeyID: KeyID(cfg.Key)})
		row.Arguments = string(args)
		row.prepare()
		if err := l.send(request{row: row}); err != nil {
			_ = l.Close(ctx)
			return nil, fmt.Errorf("audit: write the audit/key row: %w", err)
		}
	}
	return l, nil
}

// chainKeyID returns the key id the chain's head is hashed under: that of
// the newest audit/key row, else of the newest checkpoint (its key row was
// pruned), else "" (SHA-256).
func chainKeyID(ctx context.Context, db *sql.DB) (string, error) {
	var args string
	err := db.QueryRowContext(ctx, "SELECT arguments FROM audit_log WHERE event = '"+EventKey+"' ORDER BY id DESC LIMIT 1").Scan(&args)
	if err == nil {
		return keyRowID(&Row{Arguments: args}), nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	var id string
	err = db.QueryRowContext(ctx, "SELECT key_id FROM audit_checkpoint ORDER BY id DESC LIMIT 1").Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// insertChunk is the most rows of one multi-row INSERT (times numColumns
// parameters: well under SQLite's limit of 32766). One statement step for
// many rows costs about a third of a step per row.
const (
	insertChunk = 32
	numColumns  = 22
)

// insertSQL returns an INSERT of n rows.
func insertSQL(n int) string {
	row := "(" + strings.Repeat("?,", numColumns-1) + "?)"
	return "INSERT INTO audit_log (" + columns + ") VALUES " + strings.Repeat(row+",", n-1) + row
}

// migrations returns the embedded schema migrations.
func migrations() fs.FS {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// headSQL returns the id and hash the next row chains to: the last row, else
// the last prune checkpoint, else genesis.
const headSQL = `SELECT
	coalesce((SELECT id FROM audit_log ORDER BY id DESC LIMIT 1),
	         (SELECT last_id FROM audit_checkpoint ORDER BY id DESC LIMIT 1), 0),
	coalesce((SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1),
	         (SELECT last_hash FROM audit_checkpoint ORDER BY id DESC LIMIT 1), '` + Genesis + `')`

// Healthy returns nil when the log can be written, or the error of the
// failure that made it unavailable (wrapping ErrUnavailable). The server calls
// it before running a tool so that it never runs a tool it cannot record.
//
// While the log is failing, Healthy tries a write at most once per
// RetryInterval (waiting up to WriteTimeout for it); when that write
// succeeds the log is healthy again and an EventRecovered row records the
// outage, counting the Healthy calls that were answered with an error (tool
// calls refused, failed readiness checks).
func (l *Log) Healthy() error {
	if l.isDone.Load() {
		return fmt.Errorf("audit log closed: %w", ErrUnavailable)
	}
	o := l.health.Load()
	if o == nil {
		return nil
	}
	now := time.Now().UnixNano()
	last := l.probeAt.Load()
	if now-last >= int64(l.cfg.RetryInterval) && l.probeAt.CompareAndSwap(last, now) {
		if err := l.send(request{probe: true}); err == nil {
			return nil
		}
		if o = l.health.Load(); o == nil {
			return nil
		}
	}
	l.refused.Add(1)
	return o.err
}

// Stats returns rows and commits written since Open.
func (l *Log) Stats() (rows, commits int64) { return l.rows.Load(), l.commits.Load() }

// Append redacts ev and returns once its row is committed. It ignores ctx's
// cancellation, because a client that went away must not drop its row, and
// waits at most WriteTimeout. An error wraps ErrUnavailable and means the row
// may not be on disk: the caller must fail closed. (After a timeout the row
// may still be committed later; a row for a call whose caller got an error
// is the safe side of that race.)
func (l *Log) Append(ctx context.Context, ev Event) error {
	if ev.Outcome == Started && ev.IntentID == 0 {
		return fmt.Errorf("audit: an intent row is written with Intent, not Append")
	}
	return l.send(request{row: l.toRow(ev)})
}

// Intent writes the intent row of a call with side effects and returns its
// id once it is committed: decision allow, outcome "started". The caller
// runs the tool only after a nil error, and then Appends the outcome row
// (outcome OK, Failed or Cancelled; duration, result size and hash) with
// IntentID set to the returned id. An intent row that no outcome row names
// is shown as "unfinished" by readers and the audit_calls view: the process
// died mid-call. Like Append it ignores ctx's cancellation and fails with
// ErrUnavailable when the row may not be on disk: then the tool must not
// run.
//
// ev's Decision, Outcome and IntentID are set by Intent; ev.Arguments are
// redacted as Append does. The relay for wrapped servers calls it the same
// way for the child's tools.
func (l *Log) Intent(ctx context.Context, ev Event) (int64, error) {
	ev.Decision, ev.Outcome, ev.IntentID = Allow, Started, 0
	ev.Duration, ev.ResultBytes, ev.ResultSHA256 = 0, 0, ""
	var id int64
	if err := l.send(request{row: l.toRow(ev), id: &id}); err != nil {
		return 0, err
	}
	return id, nil
}

// Pools of the channels and timers send waits on: one of each per Append
// would be most of its allocations.
var (
	donePool  = sync.Pool{New: func() any { return make(chan error, 1) }}
	timerPool = sync.Pool{New: func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return t
	}}
)

// send queues req and waits for the writer's answer, at most WriteTimeout in
// all.
func (l *Log) send(req request) error {
	done := donePool.Get().(chan error)
	req.done = done
	timer := timerPool.Get().(*time.Timer)
	timer.Reset(l.cfg.WriteTimeout)
	defer func() {
		// Since Go 1.23 a stopped timer delivers no stale tick, so it can be
		// reused as it is.
		timer.Stop()
		timerPool.Put(timer)
	}()
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		donePool.Put(done)
		return fmt.Errorf("audit log closed: %w", ErrUnavailable)
	}
	select {
	case l.ch <- req:
		l.mu.RUnlock()
	case <-timer.C:
		l.mu.RUnlock()
		donePool.Put(done)
		return fmt.Errorf("audit write queue full for %s: %w", l.cfg.WriteTimeout, ErrUnavailable)
	}
	select {
	case err := <-done:
		// The writer answers each request once: done is empty again.
		donePool.Put(done)
		return err
	case <-timer.C:
		// The writer may still answer: done is not reused.
		return fmt.Errorf("audit write timed out after %s: %w", l.cfg.WriteTimeout, ErrUnavailable)
	}
}

// Close stops accepting rows, commits everything queued, and closes the
// database. It returns early with ctx's error if draining takes too long; the
// writer then finishes in the background and the database stays open.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.isDone.Store(true)
	close(l.ch)
	l.mu.Unlock()
	select {
	case <-l.stopped:
	case <-ctx.Done():
		return fmt.Errorf("audit: drain: %w", ctx.Err())
	}
	_ = l.withConn(context.Background(), func(dc any) error {
		if dc == l.stmts.dc {
			l.stmts.close()
		}
		return nil
	})
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("audit: close: %w", err)
	}
	return nil
}
