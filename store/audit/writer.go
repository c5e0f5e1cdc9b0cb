package audit

import (
	"context"
	"database/sql/driver"
	"fmt"
	"os"
	"runtime"
	"time"
)

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
			if err == nil && r.id != nil {
				*r.id = r.row.ID
			}
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
