package audit_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
)

// diskFullChildEnv marks the subprocess of TestLog_DiskFull.
const diskFullChildEnv = "IDMCP_TEST_DISKFULL_CHILD"

// TestLog_DiskFull fills the "disk" the way an unprivileged process can: a
// file size limit (RLIMIT_FSIZE) makes SQLite's writes fail as on a full
// disk. The limit is process-wide, so the test runs in a subprocess.
func TestLog_DiskFull(t *testing.T) {
	if os.Getenv(diskFullChildEnv) != "" {
		t.Skip("in the child")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLog_DiskFullChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), diskFullChildEnv+"="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "--- PASS: TestLog_DiskFullChild") {
		t.Fatalf("child did not run:\n%s", out.String())
	}
}

// TestLog_DiskFullChild is TestLog_DiskFull's subprocess.
func TestLog_DiskFullChild(t *testing.T) {
	dir := os.Getenv(diskFullChildEnv)
	if dir == "" {
		t.Skip("run by TestLog_DiskFull")
	}
	ctx := context.Background()
	signal.Ignore(syscall.SIGXFSZ) // a write past the limit fails with EFBIG instead of killing us
	path := filepath.Join(dir, "audit.db")
	l := MustOpen(t, audit.Config{Path: path, Sync: store.SyncNormal, RetryInterval: 10 * time.Millisecond, WriteTimeout: time.Minute})
	if err := l.Append(ctx, toolCall(0)); err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	must(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	limit := old
	limit.Cur = 256 << 10
	must(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit))

	// Rows are acknowledged until the WAL reaches the limit; then Append
	// fails at once (not after WriteTimeout) and Healthy reports it.
	var failed error
	acked := 1
	for i := 1; i < 5000 && failed == nil; i++ {
		ev := toolCall(i)
		ev.Reason = strings.Repeat("x", 200)
		if failed = l.Append(ctx, ev); failed == nil {
			acked++
		}
	}
	if !errors.Is(failed, audit.ErrUnavailable) || strings.Contains(failed.Error(), "timed out") {
		t.Fatalf("Append past the limit: %v, want ErrUnavailable from the write itself", failed)
	}
	t.Logf("the full disk fails Append with: %v", failed)
	for range 3 {
		if err := l.Healthy(); !errors.Is(err, audit.ErrUnavailable) {
			t.Fatalf("Healthy while full: %v", err)
		}
	}

	// Space again: Healthy's next probe succeeds and writes a row that
	// records the outage.
	must(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old))
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err = l.Healthy(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Healthy after space came back: %v", err)
	}
	if err := l.Append(ctx, toolCall(9999)); err != nil {
		t.Fatal(err)
	}
	must(t, l.Close(ctx))

	rows := MustRows(t, path)
	if got, want := len(rows), acked+2; got != want { // + the recovery row + the last row
		t.Fatalf("rows=%d, want %d acknowledged + recovery + last", got, acked)
	}
	rec := rows[len(rows)-2]
	var checks int
	if m := regexp.MustCompile(`(\d+) health check\(s\) failed`).FindStringSubmatch(rec.Reason); m != nil {
		checks, _ = strconv.Atoi(m[1])
	}
	if rec.Event != audit.EventRecovered || !strings.Contains(rec.Reason, " 1 row(s) not written") || checks < 3 {
		t.Fatalf("recovery row: %s %q; want 1 row lost and at least 3 failed checks", rec.Event, rec.Reason)
	}
	if _, err := MustReader(t, path).Verify(ctx); err != nil {
		t.Fatal(err)
	}
}
