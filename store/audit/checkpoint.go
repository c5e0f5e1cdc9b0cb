package audit

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/idmcp/idmcp/store"
	"modernc.org/sqlite"
)

// Checkpoints.
//
// In WAL mode every commit appends pages to the -wal file; a checkpoint
// copies them into the database file (a write of every new page and two
// fsyncs), after which the next write transaction starts the WAL over from
// its beginning. SQLite's own automatic checkpoint runs inside the COMMIT
// that crosses 1000 pages, on the writer's goroutine: every caller of that
// batch, and every caller queued behind it, waited a few milliseconds while
// the CPUs sat idle. At 256 concurrent writers that was a sixth of the time
// (the writer inserted 124,000 rows/s with no checkpoints at all, 97,000
// with SQLite's).
//
// So the writer's connection never checkpoints by itself
// (wal_autocheckpoint=0). Every checkpointPages pages its commits append to
// the WAL, the writer asks a checkpointer goroutine, which holds a
// connection of its own, for a PASSIVE checkpoint; it runs beside the
// writer's commits (SQLite allows one checkpointer beside one writer) and
// copies what was committed when it began. A WAL that the writer keeps
// appending to is never copied to its end, though, so it would never start
// over: once the background pass is done, the writer, between two batches
// (after acknowledging the first), runs a second PASSIVE checkpoint itself,
// which copies only what was committed during the background pass. Nothing
// is appended meanwhile, so that one reaches the end, and the next write
// transaction restarts the WAL. When the background passes fall behind (a
// disk busy with other writes) or fail, the WAL reaches walPagesCap and the
// writer checkpoints itself, as SQLite's own checkpoint did: the WAL stays
// bounded (TestLog_CheckpointsKeepWALBounded), and callers wait only then.
//
// A checkpoint never decides whether a row is durable: rows are durable when
// their commit returns (synchronous FULL or NORMAL), in the WAL. A failed
// checkpoint (another process checkpointing, a reader holding an old
// snapshot, a full disk) costs nothing but WAL size until a later one works.

// checkpointPages is how many pages appended to the WAL make the writer ask
// for a background checkpoint: SQLite's own default, 4 MiB of 4 KiB pages
// (about 4000 rows committed in groups, 250 committed one at a time).
const checkpointPages = 1000

// checkpointSQL copies as much of the WAL as it can without waiting for
// anyone (readers, writers, another checkpointer).
const checkpointSQL = "PRAGMA wal_checkpoint(PASSIVE)"

// walPagesCap is how far the WAL may grow past its start when the
// background passes fall behind (a slow or busy disk) or fail: there the
// writer checkpoints itself, after the running pass, and callers queue
// meanwhile, as they did behind SQLite's own checkpoint. 16 MiB of 4 KiB
// pages.
const walPagesCap = 4 * checkpointPages

// checkpointer runs background checkpoints on its own connection.
type checkpointer struct {
	db   *sql.DB
	log  *slog.Logger
	path string
	kick chan struct{} // a request; capacity 1
	// busy is set by the writer when it asks and cleared by the checkpointer
	// when the pass is over; done is set before it when the pass worked.
	busy    atomic.Bool
	done    atomic.Bool
	pass    sync.Mutex // held during a pass: the writer's forced checkpoint waits for it
	stopped chan struct{}
}

func startCheckpointer(ctx context.Context, cfg Config, log *slog.Logger) (*checkpointer, error) {
	db, err := store.OpenSQLite(ctx, cfg.Path, false, cfg.Sync, nil)
	if err != nil {
		return nil, fmt.Errorf("checkpoint connection: %w", err)
	}
	c := &checkpointer{db: db, log: log, path: cfg.Path, kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *checkpointer) run() {
	defer close(c.stopped)
	for range c.kick {
		c.pass.Lock()
		var busy, logFrames, copied int64
		err := c.db.QueryRowContext(context.Background(), checkpointSQL).Scan(&busy, &logFrames, &copied)
		c.pass.Unlock()
		if err != nil {
			c.log.Debug("audit WAL background checkpoint failed; a later one will copy the WAL", "path", c.path, "err", err)
		}
		c.done.Store(err == nil && busy == 0)
		c.busy.Store(false)
	}
}

// request asks for a background checkpoint unless one is running; it
// reports whether it asked.
func (c *checkpointer) request() bool {
	if !c.busy.CompareAndSwap(false, true) {
		return false
	}
	c.kick <- struct{}{}
	return true
}

// close stops the checkpointer, after the running pass, and closes its
// connection. The writer goroutine calls it when it ends, before the
// writer's own connection closes: the last connection checkpoints what is
// left and removes the WAL.
func (c *checkpointer) close() {
	close(c.kick)
	<-c.stopped
	_ = c.db.Close()
}

// afterCommit runs on the writer goroutine after a batch was acknowledged.
// walPages counts the pages appended since the WAL last started over.
func (l *Log) afterCommit() {
	c := l.ckpt
	switch {
	case l.walPages >= l.forceAt:
		c.pass.Lock()
		c.done.Store(false)
		l.checkpointHere()
		c.pass.Unlock()
	case c.done.Swap(false):
		// The background pass copied what was committed when it began;
		// copy the rest now, while nothing is being appended.
		l.checkpointHere()
	case l.walPages >= l.requestAt:
		if c.request() {
			l.requestAt = l.walPages + checkpointPages
		}
	}
}

// checkpointHere runs checkpointSQL on the writer's connection. When it
// copies the whole WAL, the next write transaction starts the WAL over.
func (l *Log) checkpointHere() {
	busy, logFrames, copied, err := l.checkpointWriter()
	if err == nil && busy == 0 && copied == logFrames {
		l.walPages, l.requestAt, l.forceAt = 0, checkpointPages, walPagesCap
		return
	}
	if err != nil {
		l.log.Debug("audit WAL checkpoint failed; a later one will copy the WAL", "path", l.cfg.Path, "err", err)
	}
	// Something holds part of the WAL (a reader's snapshot, another
	// process's checkpoint): force again only after another cap's worth.
	l.forceAt = l.walPages + walPagesCap
}

// checkpointWriter runs checkpointSQL on the writer's connection and
// returns its columns: busy (1 when another connection was checkpointing),
// the frames in the WAL and the frames copied.
func (l *Log) checkpointWriter() (busy, logFrames, copied int64, err error) {
	ctx := context.Background()
	err = l.withConn(ctx, func(dc any) error {
		if dc != l.stmts.dc || !l.stmts.ready {
			return errors.New("writer statements not prepared")
		}
		dest, err := queryRow(ctx, l.stmts.ckpt, 3)
		if err != nil {
			return err
		}
		for i, p := range []*int64{&busy, &logFrames, &copied} {
			n, ok := dest[i].(int64)
			if !ok {
				return fmt.Errorf("wal_checkpoint column %d: unexpected %T", i, dest[i])
			}
			*p = n
		}
		return nil
	})
	return busy, logFrames, copied, err
}

// walPagesWritten returns the pages the driver connection dc appended to the
// WAL since it was last asked (SQLITE_DBSTATUS_CACHE_WRITE, reset), or
// checkpointPages when the driver cannot tell: then every commit asks for
// a checkpoint, as SQLite's own automatic checkpoint would at worst.
func walPagesWritten(dc any) int {
	st, ok := dc.(sqlite.DBStatus)
	if !ok {
		return checkpointPages
	}
	n, _, err := st.Status(sqlite.DBStatusCacheWrite, true)
	if err != nil {
		return checkpointPages
	}
	return n
}

// execConn runs a statement without arguments or results on a driver
// connection.
func execConn(ctx context.Context, c any, query string) error {
	e, ok := c.(driver.ExecerContext)
	if !ok {
		return fmt.Errorf("sqlite connection %T: no ExecContext", c)
	}
	_, err := e.ExecContext(ctx, query, nil)
	return err
}
