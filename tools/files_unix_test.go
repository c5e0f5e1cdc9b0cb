//go:build unix

package tools_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idmcp/idmcp/tools"
)

// nonRegular adds to fx's workspace one entry of each non-regular type this
// test process can make, and returns the names with the words a refusal
// must use for each:
//
//	fifo        a named pipe (mkfifo)
//	fifo_link   -> fifo
//	sock        a bound unix socket (kept listening for the test)
//	null        a character device 1:3 like /dev/null (root only: mknod)
//	null_link   -> null
//	dir         a directory
func nonRegular(t *testing.T, fx *fixture) map[string]string {
	t.Helper()
	p := func(name string) string { return filepath.Join(fx.dir, name) }
	want := map[string]string{
		"fifo":      "is a named pipe (FIFO), not a regular file",
		"fifo_link": "is a named pipe (FIFO), not a regular file",
		"sock":      "is a socket, not a regular file",
		"dir":       "is a directory",
	}
	if err := syscall.Mkfifo(p("fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("fifo", p("fifo_link")); err != nil {
		t.Fatal(err)
	}
	// A unix socket path is limited to ~104 bytes: bind from inside the
	// workspace with a relative name.
	wd, _ := os.Getwd()
	if err := os.Chdir(fx.dir); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", "sock")
	_ = os.Chdir(wd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := os.Mkdir(p("dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && runtime.GOOS == "linux" {
		if err := syscall.Mknod(p("null"), syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
			want["null"] = "is a character device, not a regular file"
			if err := os.Symlink("null", p("null_link")); err != nil {
				t.Fatal(err)
			}
			want["null_link"] = want["null"]
		} else {
			t.Logf("mknod: %v; no device node case", err)
		}
	}
	return want
}

// bounded runs fx.call with a deadline: each case used to hang forever on
// a FIFO (issue 12.3), and a hang must fail the test, not stall it.
func bounded(t *testing.T, fx *fixture, name string, args map[string]any) (map[string]any, error) {
	t.Helper()
	type result struct {
		out map[string]any
		err error
	}
	ch := make(chan result, 1)
	go func() {
		out, err := fx.call(t, name, args)
		ch <- result{out, err}
	}()
	select {
	case r := <-ch:
		return r.out, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s(%v) still running after 10s: it blocks on a non-regular file", name, args)
		return nil, nil
	}
}

// TestFiles_NonRegular shows that no files tool opens a FIFO, socket or
// device as a file: read, search and write refuse each by name and type,
// search of the whole workspace skips them and still finds its matches,
// and list lists them without reading them.
func TestFiles_NonRegular(t *testing.T) {
	fx := newFixture(t, tools.WorkspaceConfig{})
	want := nonRegular(t, fx)
	for name, words := range want {
		t.Run(name, func(t *testing.T) {
			t.Run("Read", func(t *testing.T) {
				_, err := bounded(t, fx, "files_read", map[string]any{"path": name})
				if !errors.Is(err, tools.ErrInput) || !strings.Contains(err.Error(), name+": "+words) {
					t.Fatalf("files_read: err=%v, want an input error saying %q", err, name+": "+words)
				}
			})
			t.Run("Search", func(t *testing.T) {
				out, err := bounded(t, fx, "files_search", map[string]any{"query": "needle", "path": name})
				if name == "dir" {
					if err != nil || out["count"] != float64(0) {
						t.Fatalf("files_search in an empty dir: %v, %v", out, err)
					}
					return
				}
				if !errors.Is(err, tools.ErrInput) || !strings.Contains(err.Error(), words) {
					t.Fatalf("files_search: err=%v, want an input error saying %q", err, words)
				}
			})
			t.Run("Write", func(t *testing.T) {
				_, err := bounded(t, fx, "files_write", map[string]any{"path": name, "content": "x", "overwrite": true})
				if !errors.Is(err, tools.ErrInput) {
					t.Fatalf("files_write: err=%v, want an input error", err)
				}
				fi, lerr := os.Lstat(filepath.Join(fx.dir, name))
				if lerr != nil || fi.Mode().IsRegular() {
					t.Fatalf("files_write replaced %s: %v, %v", name, fi.Mode(), lerr)
				}
			})
			t.Run("List", func(t *testing.T) {
				out, err := bounded(t, fx, "files_list", map[string]any{"path": name})
				if name == "dir" {
					if err != nil {
						t.Fatalf("files_list dir: %v", err)
					}
					return
				}
				if !errors.Is(err, tools.ErrInput) || !strings.Contains(err.Error(), "not a directory") {
					t.Fatalf("files_list: %v, %v; want an input error saying it is not a directory", out, err)
				}
			})
		})
	}
	t.Run("SearchAll", func(t *testing.T) {
		out, err := bounded(t, fx, "files_search", map[string]any{"query": "needle"})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := out["count"], float64(2); got != want {
			t.Errorf("count=%v, want %v: %v", got, want, out)
		}
		// fifo, sock and (as root) null are skipped; links and dirs are
		// not files.
		if got := out["skipped"]; got == nil || got.(float64) < 2 {
			t.Errorf("skipped=%v, want the FIFO and the socket at least", got)
		}
	})
	t.Run("ListAll", func(t *testing.T) {
		out, err := bounded(t, fx, "files_list", map[string]any{"recursive": true})
		if err != nil {
			t.Fatal(err)
		}
		types := map[string]string{}
		for _, e := range out["entries"].([]any) {
			e := e.(map[string]any)
			types[e["path"].(string)] = e["type"].(string)
		}
		for name, typ := range map[string]string{"fifo": "other", "fifo_link": "symlink", "sock": "other", "dir": "dir"} {
			if types[name] != typ {
				t.Errorf("entry %s: type %q, want %q", name, types[name], typ)
			}
		}
	})
}

// TestFiles_SwappedForFIFO replaces a regular file with a FIFO while
// searches run over and over: whichever the search meets, it must finish.
// Before the check moved to the opened descriptor, a stat that saw the
// file followed by an open that met the FIFO blocked forever.
func TestFiles_SwappedForFIFO(t *testing.T) {
	fx := newFixture(t, tools.WorkspaceConfig{})
	target := filepath.Join(fx.dir, "swap.txt")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = os.Remove(target)
			if i%2 == 0 {
				_ = syscall.Mkfifo(target, 0o644)
			} else {
				_ = os.WriteFile(target, []byte("needle\n"), 0o644)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for range 200 {
		if _, err := bounded(t, fx, "files_search", map[string]any{"query": "needle", "path": "swap.txt"}); err != nil && !errors.Is(err, tools.ErrInput) {
			t.Fatalf("files_search: %v", err)
		}
		if _, err := bounded(t, fx, "files_read", map[string]any{"path": "swap.txt"}); err != nil && !errors.Is(err, tools.ErrInput) {
			t.Fatalf("files_read: %v", err)
		}
	}
}
