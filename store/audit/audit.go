package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

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

// ComputeHash returns the row hash: SHA-256 over a canonical encoding, the
// compact JSON array of every column but hash, in table order, actors in
// stored form, exactly as encoding/json marshals it (HTML-safe escaping).
// The hash has no key: it detects changes that do not rewrite every later
// row; a full rewrite of the chain (or cutting its tail) shows only against a
// head hash kept elsewhere (audit verify's output, an export to a SIEM).
func ComputeHash(r *Row) string {
	var h hasher
	return h.sum(r, r.canonMiddle())
}

// canonMiddle returns the canonical encoding between the id and prev_hash:
// ,"ts",…,"result_sha256",
func (r *Row) canonMiddle() []byte {
	actors := r.actorsText
	if actors == "" {
		actors = actorsJSON(r.Actors)
	}
	// Written by hand rather than json.Marshal([]any{...}): reflection was a
	// third of the writer's time. FuzzComputeHash checks that the bytes are
	// json.Marshal's.
	b := make([]byte, 0, 320+len(r.Arguments)+len(r.Reason))
	for _, s := range [...]string{r.TS, r.Transport, r.Session, r.Event, r.Subject, r.ClientID, r.ClientName,
		actors, r.AuthMethod, r.Tool, r.Arguments, r.Decision, r.Reason, r.Outcome} {
		b = append(b, ',')
		b = appendJSONString(b, s)
	}
	b = append(b, ',')
	b = strconv.AppendInt(b, r.DurationUS, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.ResultBytes, 10)
	b = append(b, ',')
	b = appendJSONString(b, r.ResultSHA256)
	return append(b, ',')
}

// hasher computes row hashes, reusing its buffer for the canonical encoding
// (the writer hashes every row, one after another).
type hasher struct {
	buf []byte
}

// maxHashBuf is the largest buffer a hasher keeps between rows.
const maxHashBuf = 64 << 10

// sum completes the canonical encoding middle (canonMiddle) with the id and
// prev_hash and returns its SHA-256 in hex.
func (h *hasher) sum(r *Row, middle []byte) string {
	b := append(h.buf[:0], '[')
	b = strconv.AppendInt(b, r.ID, 10)
	b = append(b, middle...)
	b = appendJSONString(b, r.PrevHash)
	b = append(b, ']')
	sum := sha256.Sum256(b)
	if cap(b) <= maxHashBuf {
		h.buf = b
	}
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], sum[:])
	return string(hx[:])
}

// appendJSONString appends s as encoding/json writes a string with HTML
// escaping: ", \\ and control characters escaped (\b \f \n \r \t or \u00XX),
// < > & as \u003c \u003e \u0026, invalid UTF-8 as \ufffd, U+2028 and
// U+2029 as \u2028 and \u2029.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
	return nil
}

// request is one row (or, with probe set, no row: a check that the log can
// be written) waiting for the writer.
type request struct {
	row   Row
	probe bool
	done  chan error
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
	go l.run()
	return l, nil
}

// insertChunk is the most rows of one multi-row INSERT (times numColumns
// parameters: well under SQLite's limit of 32766). One statement step for
// many rows costs about a third of a step per row.
const (
	insertChunk = 32
	numColumns  = 20
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
	return l.send(request{row: l.toRow(ev)})
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

// TSFormat is how ts is stored: UTC, RFC 3339 with exactly nine fractional
// digits. A fixed width keeps text order equal to time order (RFC3339Nano
// drops trailing zeros, and "…00.1Z" sorts before "…00Z"), which the
// --since filters, prune and plain SQL comparisons rely on.
const TSFormat = "2006-01-02T15:04:05.000000000Z07:00"

// FormatTS formats t as stored in the ts column: what t.UTC().Format(TSFormat)
// returns, written digit by digit for years 0 to 9999 (a fifth of the cost:
// every row is stamped).
func FormatTS(t time.Time) string {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Format(TSFormat)
	}
	hour, minute, sec := t.Clock()
	var b [len("2006-01-02T15:04:05.000000000Z")]byte
	put := func(at, width, v int) {
		for i := at + width - 1; i >= at; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, 4, year)
	b[4] = '-'
	put(5, 2, int(month))
	b[7] = '-'
	put(8, 2, day)
	b[10] = 'T'
	put(11, 2, hour)
	b[13] = ':'
	put(14, 2, minute)
	b[16] = ':'
	put(17, 2, sec)
	b[19] = '.'
	put(20, 9, t.Nanosecond())
	b[29] = 'Z'
	return string(b[:])
}

func (l *Log) toRow(ev Event) Row {
	t := ev.Time
	if t.IsZero() {
		t = l.cfg.Now()
	}
	r := l.cfg.Redactor
	var actors []string
	if len(ev.Actors) > 0 {
		actors = make([]string, len(ev.Actors)) // a copy: the input is never mutated
		for i, a := range ev.Actors {
			actors[i] = r.Scrub(a)
		}
	}
	// Text is made valid UTF-8 before it is hashed: the canonical encoding
	// maps every invalid byte to U+FFFD, so two different invalid byte
	// strings (from a percent-decoded URL path, say) would hash alike and an
	// edit between them would go unnoticed.
	v := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	for i := range actors {
		actors[i] = v(actors[i])
	}
	row := Row{
		TS:           FormatTS(t),
		Transport:    v(ev.Transport),
		Session:      v(ev.Session),
		Event:        v(ev.Event),
		Subject:      v(r.Scrub(ev.Subject)),
		ClientID:     v(r.Scrub(ev.ClientID)),
		ClientName:   v(r.String(ev.ClientName)),
		Actors:       actors,
		AuthMethod:   v(ev.AuthMethod),
		Tool:         v(r.String(ev.Tool)),
		Arguments:    v(argumentsText(r, ev)),
		Decision:     v(ev.Decision),
		Reason:       v(r.String(ev.Reason)),
		Outcome:      v(ev.Outcome),
		DurationUS:   ev.Duration.Microseconds(),
		ResultBytes:  ev.ResultBytes,
		ResultSHA256: ev.ResultSHA256,
	}
	row.prepare()
	return row
}

// prepare computes, on the caller's goroutine, everything of the row's hash
// and INSERT parameters but the id, prev_hash and hash, so that the one
// writer goroutine does less per row.
func (r *Row) prepare() {
	r.actorsText = actorsJSON(r.Actors)
	r.canon = r.canonMiddle()
	r.args = [numColumns]any{nil, r.TS, box(r.Transport), r.Session, box(r.Event), r.Subject, r.ClientID,
		r.ClientName, box(r.actorsText), box(r.AuthMethod), r.Tool, r.Arguments, box(r.Decision), box(r.Reason),
		box(r.Outcome), r.DurationUS, r.ResultBytes, r.ResultSHA256, nil, nil}
}

// box returns s as an INSERT parameter. Storing a string in an interface
// allocates unless it is a constant, so the values most rows share come back
// as constants: a quarter fewer allocations per row.
func box(s string) any {
	switch s {
	case "":
		return ""
	case "stdio":
		return "stdio"
	case "http":
		return "http"
	case EventToolsCall:
		return EventToolsCall
	case EventToolsList:
		return EventToolsList
	case EventAuth:
		return EventAuth
	case "[]":
		return "[]"
	case "host-secret":
		return "host-secret"
	case "jwt":
		return "jwt"
	case Allow:
		return Allow
	case Deny:
		return Deny
	case "allowed":
		return "allowed"
	case OK:
		return OK
	case Failed:
		return Failed
	}
	return s
}

func argumentsText(r *Redactor, ev Event) string {
	if ev.Event != EventToolsCall && len(ev.Arguments) == 0 {
		return "{}"
	}
	return r.Arguments(ev.Arguments)
}

// run is the writer: it opens a transaction for the first queued request,
// adds to it whatever is queued meanwhile (up to MaxBatch), answers every
// request of the batch with the commit's result, and repeats until the
// channel is closed and drained.
func (l *Log) run() {
	defer close(l.stopped)
	defer l.ckpt.close() // before stopped: Close then closes the last connection
	batch := make([]request, 0, l.cfg.MaxBatch)
	for first := range l.ch {
		var err error
		batch, err = l.commit(append(batch[:0], first))
		l.setHealth(err, batch)
		for _, r := range batch {
			r.done <- err
		}
		if err == nil {
			l.afterCommit()
		}
	}
}

// gather lets callers that are already runnable queue their rows before a
// commit closes. Without it the writer, finding the queue empty, would commit
// at once (the scheduler hands it the caller's processor) while the other
// callers wait their turn: groups of one or two rows at any load. With
// nothing else runnable (one client) the yield returns at once.
func (l *Log) gather() { runtime.Gosched() }

// setHealth records the result of a commit: the start of an outage (logged
// once), or its end.
func (l *Log) setHealth(err error, batch []request) {
	if err == nil {
		if !l.failSince.IsZero() {
			l.log.Warn("audit log writable again", "path", l.cfg.Path, "unavailable_for", time.Since(l.failSince).Round(time.Millisecond).String(), "rows_not_written", l.lost)
		}
		l.failSince, l.failErr, l.lost = time.Time{}, nil, 0
		l.health.Store(nil)
		return
	}
	for _, r := range batch {
		if !r.probe {
			l.lost++
		}
	}
	if l.failSince.IsZero() {
		l.failSince = l.cfg.Now()
		l.refused.Store(0)
		l.log.Error("audit log unavailable: tool calls are refused until it can be written", "path", l.cfg.Path, "err", err)
	}
	l.failErr = err
	l.health.Store(&outage{err: err})
}

// drain appends the queued requests to batch, up to MaxBatch.
func (l *Log) drain(batch []request) []request {
	for len(batch) < l.cfg.MaxBatch {
		select {
		case r, ok := <-l.ch:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// withConn runs f with the driver connection of the pool's one connection.
func (l *Log) withConn(ctx context.Context, f func(dc any) error) error {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(f)
}

// commit writes the rows of batch, and of the requests it takes from the
// queue meanwhile, in one transaction, and returns the batch grown by those:
// every request in it gets the commit's result.
//
// Rows are hashed and inserted while the transaction is open, insertChunk
// at a time, so callers queue the next rows while the writer inserts the
// previous ones. The transaction commits when the queue is still empty after
// a yield (gather), or when the batch reaches MaxBatch.
//
// The head the rows chain to is read inside the transaction, under SQLite's
// write lock, so another writer of the same file (idmcp audit prune, a second
// server) never forks the chain.
//
// The writer works on the driver connection (database/sql's Conn.Raw):
// database/sql's argument conversion and per-statement bookkeeping were a
// tenth of its time at high load.
func (l *Log) commit(batch []request) (_ []request, err error) {
	batch = l.drain(batch)
	recovering := !l.failSince.IsZero()
	if !recovering && !hasRow(batch) {
		return batch, nil // probes only, and the log is healthy
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}()
	ctx := context.Background()
	var count int64
	err = l.withConn(ctx, func(dc any) error {
		var err error
		batch, count, err = l.commitConn(ctx, dc, batch, recovering)
		return err
	})
	if err != nil {
		return batch, err
	}
	// SQLite keeps writing to a database file that was deleted or replaced
	// while open (WAL mode does not check), so rows would be acknowledged into
	// a file nobody can read. Acknowledge only if the file is still there.
	if err := l.checkFile(); err != nil {
		return batch, err
	}
	l.rows.Add(count)
	l.commits.Add(1)
	return batch, nil
}

func hasRow(batch []request) bool {
	for i := range batch {
		if !batch[i].probe {
			return true
		}
	}
	return false
}

// commitConn is commit's transaction on the driver connection dc. It returns
// the grown batch and the number of rows it committed.
func (l *Log) commitConn(ctx context.Context, dc any, batch []request, recovering bool) ([]request, int64, error) {
	if err := l.stmts.prepare(ctx, dc); err != nil {
		return batch, 0, err
	}
	tx, err := l.stmts.conn.BeginTx(ctx, driver.TxOptions{}) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return batch, 0, err
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback()
		}
	}()
	id, h, err := l.stmts.readHead(ctx)
	if err != nil {
		return batch, 0, fmt.Errorf("read chain head: %w", err)
	}
	var pending [insertChunk]*Row
	var n int // rows in pending
	var count int64
	prev := any(h) // the previous row's hash, as an INSERT parameter
	add := func(r *Row) error {
		id++
		r.ID, r.PrevHash = id, h
		if r.canon == nil {
			r.prepare()
		}
		r.Hash = l.hasher.sum(r, r.canon)
		h = r.Hash
		r.args[0], r.args[18], r.args[19] = id, prev, h
		prev = r.args[19]
		pending[n] = r
		n++
		count++
		if n < insertChunk {
			return nil
		}
		n = 0
		return l.stmts.insert(ctx, pending[:])
	}
	if recovering {
		if err := add(l.recoveredRow()); err != nil {
			return batch, 0, err
		}
	}
	for next := 0; ; {
		for ; next < len(batch); next++ {
			if !batch[next].probe {
				if err := add(&batch[next].row); err != nil {
					return batch, 0, err
				}
			}
		}
		if len(batch) == l.cfg.MaxBatch {
			break
		}
		if batch = l.drain(batch); next < len(batch) {
			continue
		}
		l.gather()
		if batch = l.drain(batch); next == len(batch) {
			break
		}
	}
	if n > 0 {
		if err := l.stmts.insert(ctx, pending[:n]); err != nil {
			return batch, 0, err
		}
	}
	done = true
	if err := tx.Commit(); err != nil {
		return batch, 0, err
	}
	l.walPages += walPagesWritten(dc)
	return batch, count, nil
}

// driverConn is what the writer needs of the sqlite driver's connection.
type driverConn interface {
	driver.ConnBeginTx
	driver.ConnPrepareContext
}

// writeStmts are the writer's statements, prepared on one driver connection.
type writeStmts struct {
	dc      any  // the connection they were prepared on
	ready   bool // all prepared
	conn    driverConn
	head    driver.Stmt
	ckpt    driver.Stmt
	inserts [insertChunk]driver.Stmt // inserts[n-1] inserts n rows
	args    []driver.NamedValue      // scratch for insert's parameters
}

// prepare prepares the statements on dc, unless they already are.
// database/sql replaces its connection only when the driver reports it
// broken; the statements of a replaced connection are dropped without
// closing them (the connection is closed already).
func (s *writeStmts) prepare(ctx context.Context, dc any) error {
	if s.dc == dc {
		if s.ready {
			return nil
		}
		s.close() // what an earlier, failed attempt prepared
	}
	c, ok := dc.(driverConn)
	if !ok {
		return fmt.Errorf("sqlite driver connection %T: no BeginTx or PrepareContext", dc)
	}
	*s = writeStmts{dc: dc, conn: c}
	var err error
	if s.head, err = c.PrepareContext(ctx, headSQL); err != nil {
		return err
	}
	// The writer's commits never checkpoint (see checkpoint.go).
	if err := execConn(ctx, c, "PRAGMA wal_autocheckpoint=0"); err != nil {
		return err
	}
	if s.ckpt, err = c.PrepareContext(ctx, checkpointSQL); err != nil {
		return err
	}
	for n := range s.inserts {
		if s.inserts[n], err = c.PrepareContext(ctx, insertSQL(n+1)); err != nil {
			return err
		}
	}
	s.ready = true
	return nil
}

// readHead runs headSQL.
func (s *writeStmts) readHead(ctx context.Context) (int64, string, error) {
	dest, err := queryRow(ctx, s.head, 2)
	if err != nil {
		return 0, "", err
	}
	id, ok := dest[0].(int64)
	if !ok {
		return 0, "", fmt.Errorf("id: unexpected %T", dest[0])
	}
	switch h := dest[1].(type) {
	case string:
		return id, h, nil
	case []byte:
		return id, string(h), nil
	}
	return 0, "", fmt.Errorf("hash: unexpected %T", dest[1])
}

// queryRow runs st, which takes no arguments, and returns the n columns of
// its first row.
func queryRow(ctx context.Context, st driver.Stmt, n int) ([]driver.Value, error) {
	q, ok := st.(driver.StmtQueryContext)
	if !ok {
		return nil, fmt.Errorf("sqlite statement %T: no QueryContext", st)
	}
	rows, err := q.QueryContext(ctx, nil)
	if err != nil {
		return nil, err
	}
	dest := make([]driver.Value, n)
	err = rows.Next(dest)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return dest, err
}

// insert inserts rows (1 to insertChunk) with one statement.
func (s *writeStmts) insert(ctx context.Context, rows []*Row) error {
	st, ok := s.inserts[len(rows)-1].(driver.StmtExecContext)
	if !ok {
		return fmt.Errorf("sqlite statement %T: no ExecContext", s.inserts[len(rows)-1])
	}
	args := s.args[:0]
	for _, r := range rows {
		for _, v := range r.args {
			args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: v})
		}
	}
	s.args = args
	_, err := st.ExecContext(ctx, args)
	clear(args) // keep no row alive
	return err
}

// close closes the statements; the connection they were prepared on must be
// open.
func (s *writeStmts) close() {
	if s.head != nil {
		_ = s.head.Close()
	}
	if s.ckpt != nil {
		_ = s.ckpt.Close()
	}
	for _, st := range s.inserts {
		if st != nil {
			_ = st.Close()
		}
	}
	*s = writeStmts{dc: s.dc}
}

// checkFile reports an error when the database file or its WAL is no longer
// the one this Log writes to.
func (l *Log) checkFile() error {
	fi, err := os.Stat(l.cfg.Path)
	if err != nil || !os.SameFile(fi, l.file) {
		return fmt.Errorf("audit database %s was removed or replaced while open; restart the server", l.cfg.Path)
	}
	if fi, err := os.Stat(l.cfg.Path + "-wal"); err != nil || !os.SameFile(fi, l.walFile) {
		return fmt.Errorf("audit database WAL %s-wal was removed or replaced while open; restart the server", l.cfg.Path)
	}
	return nil
}

// recoveredRow is the row that ends an outage. Its reason is the log's own
// words, scrubbed but not truncated.
func (l *Log) recoveredRow() *Row {
	now := l.cfg.Now()
	r := l.toRow(Event{Time: now, Event: EventRecovered, Outcome: OK})
	r.Reason = l.cfg.Redactor.Scrub(fmt.Sprintf(
		"audit log unavailable from %s to %s: %d row(s) not written (their callers got errors), %d health check(s) failed (tool calls refused); last error: %v",
		FormatTS(l.failSince), FormatTS(now), l.lost, l.refused.Load(), l.failErr))
	r.prepare()
	return &r
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
