package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// File names inside the data dir.
const (
	DataDBName   = "idmcp.db"
	AuditDBName  = "audit.db"
	HostsName    = "hosts.json"
	dirPerm      = 0o700
	filePerm     = 0o600
	maxTodoTitle = 500
)

// ErrNotFound is returned when a requested record does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalid is wrapped by errors about bad input.
var ErrInvalid = errors.New("invalid input")

// Config configures a Store.
type Config struct {
	// Dir is the data dir; it is created 0700 if missing.
	Dir string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("field \"dir\": empty data dir")
	}
	return nil
}

// Store is the tool-data database and host profile file of one data dir.
type Store struct {
	cfg Config
	db  *sql.DB
}

// EnsureDir creates dir with mode 0700 if it does not exist, and tightens it
// to 0700 if it does and others may read or enter it (POSIX only): it holds
// the audit log, host profiles and the dev issuer's key.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, dirPerm); err != nil {
			return fmt.Errorf("data dir %s has mode %04o and cannot be tightened to 0700: %w", dir, fi.Mode().Perm(), err)
		}
	}
	return nil
}

// Open opens (creating as needed) the data dir's tool database.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := EnsureDir(cfg.Dir); err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(migrationFS, "migrations")
	db, err := OpenSQLite(ctx, filepath.Join(cfg.Dir, DataDBName), false, SyncFull, sub)
	if err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Todo is one item of the built-in todo list.
type Todo struct {
	ID        int64      `json:"id"`
	Title     string     `json:"title"`
	Done      bool       `json:"done"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	DoneAt    *time.Time `json:"done_at,omitempty"`
}

// ListTodos returns todos, oldest first; with pendingOnly, only open ones.
func (s *Store) ListTodos(ctx context.Context, pendingOnly bool) ([]Todo, error) {
	q := "SELECT id, title, done, created_at, created_by, done_at FROM todos"
	if pendingOnly {
		q += " WHERE done = 0"
	}
	rows, err := s.db.QueryContext(ctx, q+" ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list todos: %w", err)
	}
	defer rows.Close()
	out := []Todo{}
	for rows.Next() {
		var t Todo
		var created string
		var doneAt sql.NullString
		if err := rows.Scan(&t.ID, &t.Title, &t.Done, &created, &t.CreatedBy, &doneAt); err != nil {
			return nil, fmt.Errorf("list todos: %w", err)
		}
		t.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
		if doneAt.Valid {
			d, _ := time.Parse(time.RFC3339Nano, doneAt.String)
			t.DoneAt = &d
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// CreateTodo adds a todo created by subject.
func (s *Store) CreateTodo(ctx context.Context, title, subject string) (Todo, error) {
	if title == "" {
		return Todo{}, fmt.Errorf("title is empty: %w", ErrInvalid)
	}
	if len(title) > maxTodoTitle {
		return Todo{}, fmt.Errorf("title is %d bytes, the limit is %d: %w", len(title), maxTodoTitle, ErrInvalid)
	}
	now := s.cfg.Now().UTC()
	res, err := s.db.ExecContext(ctx,
		"INSERT INTO todos (title, created_at, created_by) VALUES (?, ?, ?)",
		title, now.Format(time.RFC3339Nano), subject)
	if err != nil {
		return Todo{}, fmt.Errorf("create todo: %w", err)
	}
	id, _ := res.LastInsertId()
	return Todo{ID: id, Title: title, CreatedAt: now, CreatedBy: subject}, nil
}

// CompleteTodo marks todo id done.
func (s *Store) CompleteTodo(ctx context.Context, id int64) error {
	now := s.cfg.Now().UTC().Format(time.RFC3339Nano)
	res, err := s.db.ExecContext(ctx, "UPDATE todos SET done = 1, done_at = coalesce(done_at, ?) WHERE id = ?", now, id)
	if err != nil {
		return fmt.Errorf("complete todo: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("todo %d: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteTodo removes todo id.
func (s *Store) DeleteTodo(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM todos WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete todo: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("todo %d: %w", id, ErrNotFound)
	}
	return nil
}
