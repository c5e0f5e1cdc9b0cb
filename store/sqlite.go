package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"modernc.org/sqlite" // pure-Go SQLite driver, keeps CGO_ENABLED=0.
	sqlite3 "modernc.org/sqlite/lib"
)

// Sync is SQLite's synchronous setting for a writer.
type Sync string

// Sync values. Full survives power loss; Normal survives a process crash but
// may lose the last transactions on power loss (never corrupts).
const (
	SyncFull   Sync = "FULL"
	SyncNormal Sync = "NORMAL"
)

// ParseSync parses "full" or "normal".
func ParseSync(s string) (Sync, error) {
	switch strings.ToLower(s) {
	case "", "full":
		return SyncFull, nil
	case "normal":
		return SyncNormal, nil
	}
	return "", fmt.Errorf("audit sync %q: want full or normal", s)
}

// DSN builds a modernc.org/sqlite data source name for path. A writer gets
// WAL, the given synchronous level, BEGIN IMMEDIATE and a busy timeout; a
// reader gets mode=ro, which makes every write fail (query_only can be undone
// by a PRAGMA, mode=ro cannot). Temp storage is in memory so that a sandboxed
// process never needs /tmp.
func DSN(path string, readOnly bool, sync Sync) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Set("mode", "ro")
	} else {
		if sync == "" {
			sync = SyncFull
		}
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous("+string(sync)+")")
		q.Set("_txlock", "immediate")
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // a relative path would otherwise become /path
	}
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "/") {
		// Windows drive paths: file:///C:/... is what SQLite expects.
		p = "/" + p
	}
	// Path (not Opaque) so that a space, '?', '#' or '%' in the data dir
	// (macOS: "Application Support") is percent-encoded; SQLite decodes it.
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String()
}

// OpenSQLite opens the database at path. A writer creates the file (mode
// 0600), keeps a single connection (one writer, no SQLITE_BUSY on lock
// upgrade) and applies the embedded migrations in migrations (a directory of
// NNN_name.sql files), one transaction each, recording the version in
// PRAGMA user_version. A reader opens read-only and applies nothing.
func OpenSQLite(ctx context.Context, path string, readOnly bool, sync Sync, migrations fs.FS) (*sql.DB, error) {
	if !readOnly {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		_ = f.Close()
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", DSN(path, readOnly, sync))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if !readOnly {
		db.SetMaxOpenConns(1)
	}
	if err := retryBusy(ctx, func() error { return db.PingContext(ctx) }); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if !readOnly && migrations != nil {
		if err := retryBusy(ctx, func() error { return migrate(ctx, db, migrations) }); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("migrate %s: %w", path, err)
		}
	}
	return db, nil
}

// openBusyTimeout bounds how long opening waits out other processes.
const openBusyTimeout = 15 * time.Second

// retryBusy runs f until it does not fail with SQLITE_BUSY, for at most
// openBusyTimeout. Switching a new file to WAL takes an exclusive lock for
// which SQLite does not call the busy handler, so servers started together
// on a new data dir (a host launching two entries) meet "database is
// locked" at open; once the file is in WAL mode this never loops.
func retryBusy(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(openBusyTimeout)
	wait := 5 * time.Millisecond
	for {
		err := f()
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// migrate applies what is missing of migrations. Several processes may open
// a new data dir at once (a host starting two idmcp entries): each migration
// runs in its own BEGIN IMMEDIATE transaction (the writer DSN sets _txlock),
// and the schema version is read inside it, under SQLite's write lock, so a
// second process waits for the first and then sees the migration applied
// instead of applying it again.
func migrate(ctx context.Context, db *sql.DB, migrations fs.FS) error {
	names, err := fs.Glob(migrations, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for i, name := range names {
		if err := migrateOne(ctx, db, migrations, name, i+1); err != nil {
			return err
		}
	}
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(names) {
		return errors.New("database schema is newer than this idmcp; upgrade idmcp")
	}
	return nil
}

// migrateOne applies migration name as schema version want, unless the
// version read under the write lock shows it applied already.
func migrateOne(ctx context.Context, db *sql.DB, migrations fs.FS, name string, want int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version >= want {
		return nil
	}
	body, err := fs.ReadFile(migrations, name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", want)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
