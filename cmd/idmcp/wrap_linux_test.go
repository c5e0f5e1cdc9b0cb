//go:build linux

package main_test

import (
	"fmt"
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
