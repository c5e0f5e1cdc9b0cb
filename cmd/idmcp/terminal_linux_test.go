package main_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what a person's shell gives a
// command they run by hand.
func openPTY(t *testing.T) (ptmx, pts *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { _ = ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pts.Close() })
	return ptmx, pts
}

// TestServe_TerminalSaysHostLaunchesIt: `serve` run by hand in a terminal
// once waited silently; it says on stderr that a host is meant to launch
// it. From a pipe (a host) it says nothing of the kind.
func TestServe_TerminalSaysHostLaunchesIt(t *testing.T) {
	const hint = "meant to be launched by a host"
	dir := t.TempDir()
	out := mustIdmcp(t, nil, "host", "add", "tty", "--no-keyring", "--data-dir", dir)
	tok := tokenFromHostAdd(t, out)
	_, pts := openPTY(t)
	cmd := exec.Command(binPath, "serve", "--profile", "tty", "--data-dir", dir)
	cmd.Env = cleanEnv("IDMCP_SHARED_SECRET=" + tok)
	cmd.Stdin, cmd.Stdout = pts, pts
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), hint) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q on stderr within 10s:\n%s", hint, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	s := startRaw(t, []string{"IDMCP_SHARED_SECRET=" + tok}, "--profile", "tty", "--data-dir", dir)
	s.Close()
	if strings.Contains(s.stderr.String(), hint) {
		t.Errorf("from a pipe, serve said %q:\n%s", hint, s.stderr.String())
	}
}
