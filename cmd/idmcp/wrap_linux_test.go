//go:build linux

package main_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWrap_HostEOFEndsChild: the host closes stdin; idmcp and the child are
// both gone afterwards.
func TestWrap_HostEOFEndsChild(t *testing.T) {
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "demo:read", "")
	pol := writePolicy(t, wrapdemoPolicy(""))
	s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", wrapdemo(t))
	if _, _, err := s.call(t, "echo", map[string]any{"message": "x"}); err != nil {
		t.Fatal(err)
	}
	rows := rowsOf(auditRows(t, dataDir), "wrap/child-start", "")
	if len(rows) != 1 {
		t.Fatalf("child-start rows %v", rows)
	}
	var pid int
	if _, err := fmt.Sscanf(rows[0]["reason"].(string), "pid %d", &pid); err != nil || pid <= 0 {
		t.Fatalf("no pid in %q", rows[0]["reason"])
	}
	if code := s.exit(t); code != 0 {
		t.Errorf("idmcp wrap exit %d after EOF, want 0", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still alive after idmcp exited", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWrap_SandboxNetwork: the child reaches only the TCP ports
// [wrap.sandbox] connect names, and no unix socket (the keyring's D-Bus
// bus is one).
func TestWrap_SandboxNetwork(t *testing.T) {
	allowed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer allowed.Close()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	sock := filepath.Join(t.TempDir(), "bus.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	for _, l := range []net.Listener{allowed, other, ul} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "demo:read", "")
	pol := writePolicy(t, wrapdemoPolicy(`connect = {}
[wrap.sandbox]
connect = ["`+allowed.Addr().String()+`"]
read = ["`+filepath.Dir(sock)+`"]
`))
	s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", wrapdemo(t))
	for _, tc := range []struct{ addr, want string }{
		{"tcp:" + allowed.Addr().String(), "connected"},
		{"tcp:" + other.Addr().String(), "permission denied"},
		{"unix:" + sock, "operation not permitted"},
	} {
		text, _, err := s.call(t, "connect", map[string]any{"address": tc.addr})
		if err != nil || !strings.Contains(text, tc.want) {
			t.Errorf("connect %s = %q, %v; want %q", tc.addr, text, err, tc.want)
		}
	}
}

// TestWrap_StubbornChildKilled: a wrapped server that ignores both the end
// of its stdin and SIGTERM is killed when the host goes away (idmcp's own
// Landlock domain may not signal it; its supervising helper can).
func TestWrap_StubbornChildKilled(t *testing.T) {
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "host", "demo:read", "")
	pol := writePolicy(t, wrapdemoPolicy("[wrap.env]\nWRAPDEMO_STUBBORN = \"1\"\n"))
	s := mustWrap(t, dataDir, tok, true, nil, "--profile", "host", "--policy", pol, "--", wrapdemo(t))
	if _, _, err := s.call(t, "echo", map[string]any{"message": "x"}); err != nil {
		t.Fatal(err)
	}
	pids := childPids(t, s.cmd.Process.Pid)
	if len(pids) == 0 {
		t.Fatal("no child processes found")
	}
	if code := s.exit(t); code != 0 {
		t.Errorf("idmcp wrap exit %d", code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still alive after idmcp exited", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	x := rowsOf(auditRows(t, dataDir), "wrap/child-exit", "")
	// The helper ends as CMD did: killed by SIGKILL, or exit status 137
	// when its own domain keeps it from signalling itself.
	if len(x) != 1 || !strings.Contains(x[0]["reason"].(string), "signal: killed") && !strings.Contains(x[0]["reason"].(string), "exit status 137") {
		t.Errorf("child-exit rows = %v, want one naming SIGKILL", x)
	}
}

// childPids returns pid's descendants (from /proc), deepest last.
func childPids(t *testing.T, pid int) []int {
	t.Helper()
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		// Children are listed per thread that forked them.
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		var all []string
		for _, task := range tasks {
			if b, err := os.ReadFile(task); err == nil {
				all = append(all, strings.Fields(string(b))...)
			}
		}
		for _, f := range all {
			var c int
			if _, err := fmt.Sscanf(f, "%d", &c); err == nil {
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	return out
}
