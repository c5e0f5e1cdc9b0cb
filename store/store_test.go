package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store"
)

func mustOpen(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{Dir: dir, Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore_Todos(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	s := mustOpen(t, dir)
	if runtime.GOOS != "windows" {
		for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, store.DataDBName): 0o600} {
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v err %v, want %v", path, fi.Mode().Perm(), err, want)
			}
		}
	}
	a, err := s.CreateTodo(ctx, "first", "ada")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTodo(ctx, "second", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteTodo(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListTodos(ctx, false)
	if err != nil || len(all) != 2 || !all[0].Done || all[0].DoneAt == nil || all[1].Done || all[0].CreatedBy != "ada" {
		t.Fatalf("ListTodos = %+v, %v", all, err)
	}
	pending, _ := s.ListTodos(ctx, true)
	if len(pending) != 1 || pending[0].Title != "second" {
		t.Fatalf("pending = %+v", pending)
	}
	for name, err := range map[string]error{
		"CompleteMissing": s.CompleteTodo(ctx, 99),
		"DeleteMissing":   s.DeleteTodo(ctx, 99),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	for _, title := range []string{"", strings.Repeat("x", 501)} {
		if _, err := s.CreateTodo(ctx, title, "ada"); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("title of %d bytes: %v, want ErrInvalid", len(title), err)
		}
	}
	if err := s.DeleteTodo(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	// Reopening keeps the data (migrations are not re-applied).
	_ = s.Close()
	s2 := mustOpen(t, dir)
	if rest, _ := s2.ListTodos(ctx, false); len(rest) != 1 {
		t.Fatalf("after reopen: %+v", rest)
	}
}

func TestHosts(t *testing.T) {
	dir := t.TempDir()
	h := store.NewHosts(dir)
	if ps, err := h.List(); err != nil || len(ps) != 0 {
		t.Fatalf("empty List = %v, %v", ps, err)
	}
	for _, name := range []string{"zed", "ada"} {
		if err := h.Put(&auth.HostProfile{Name: name, Scopes: []string{"todo:read"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Put(&auth.HostProfile{Name: "ada", Scopes: []string{"todo:write"}}); err != nil {
		t.Fatal(err)
	}
	ps, _ := h.List()
	if len(ps) != 2 || ps[0].Name != "ada" || ps[0].Scopes[0] != "todo:write" {
		t.Fatalf("List = %+v (want sorted, ada replaced)", ps)
	}
	if runtime.GOOS != "windows" {
		if fi, err := os.Stat(filepath.Join(dir, store.HostsName)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("hosts.json mode %v, want 0600", fi.Mode().Perm())
		}
	}
	if err := h.Remove("ada"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Get("ada"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get removed: %v", err)
	}
	if err := h.Remove("ada"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Remove twice: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, store.HostsName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.List(); err == nil || !strings.Contains(err.Error(), store.HostsName) {
		t.Fatalf("corrupt file: %v, want an error naming the file", err)
	}
}

func TestOpen_OddDataDirNames(t *testing.T) {
	for _, name := range []string{"Application Support", "a?b", "c#d", "e%41f"} {
		if runtime.GOOS == "windows" && strings.ContainsAny(name, "?") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			s := mustOpen(t, dir)
			if _, err := s.CreateTodo(context.Background(), "x", "y"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, store.DataDBName)); err != nil {
				t.Fatalf("database not where expected: %v", err)
			}
		})
	}
}

func TestDSN_RelativePath(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if d := store.DSN(filepath.Join("rel", "a.db"), false, ""); !strings.Contains(d, filepath.ToSlash(filepath.Join(wd, "rel"))) {
		t.Fatalf("DSN of a relative path %q does not resolve it against %s", d, wd)
	}
}

func TestDSN(t *testing.T) {
	w := store.DSN("/data/a b.db", false, store.SyncNormal)
	for _, want := range []string{"file:///data/a%20b.db?", "journal_mode%28WAL%29", "synchronous%28NORMAL%29", "_txlock=immediate", "temp_store%28MEMORY%29"} {
		if !strings.Contains(w, want) {
			t.Errorf("writer DSN %q lacks %q", w, want)
		}
	}
	if r := store.DSN("/data/a.db", true, ""); !strings.Contains(r, "mode=ro") || strings.Contains(r, "journal_mode") {
		t.Errorf("reader DSN %q", r)
	}
	if _, err := store.ParseSync("sometimes"); err == nil {
		t.Error("ParseSync accepted a bad value")
	}
}

func TestEnsureDir_TightensLooseDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX modes")
	}
	dir := filepath.Join(t.TempDir(), "loose")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %04o, want 0700", fi.Mode().Perm())
	}
}

// A second holder of the profile lock waits, and says why when it gives up.
func TestHosts_LockExcludes(t *testing.T) {
	dir := t.TempDir()
	h := store.NewHosts(dir)
	unlock, err := h.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := store.NewHosts(dir).Lock(ctx); err == nil || !strings.Contains(err.Error(), "another idmcp command is changing the host profiles") {
		t.Fatalf("second Lock while held: %v, want a refusal that names the other command", err)
	}
	unlock()
	again, err := store.NewHosts(dir).Lock(context.Background())
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	again()
}
