//go:build !windows

package main_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStdio_PipelinedCallsThenEOF: 400 tools/call written at once and stdin
// closed right after. Each gets its answer and its row before the process
// exits 0 (mcp-go's transport cancelled the calls in flight at EOF, and about
// 100 of 400 lost their answer).
func TestStdio_PipelinedCallsThenEOF(t *testing.T) {
	const n = 400
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "pipe", "todo:read todo:write", "")
	s := startPipe(t, binPath, []string{"IDMCP_SHARED_SECRET=" + tok, "IDMCP_TOKEN=" + tok}, "--profile", "pipe", "--data-dir", dataDir, "--audit-sync", "normal")
	msgs := []map[string]any{{"id": 0, "method": "initialize", "params": legacyInit("")}}
	for i := 1; i <= n; i++ {
		msgs = append(msgs, callMsg(i, "todo_create", map[string]any{"title": fmt.Sprintf("pipelined %d", i)}))
	}
	s.send(msgs...)
	_ = s.stdin.Close()
	state, answers := s.wait(2 * time.Minute)
	if state.ExitCode() != 0 {
		t.Fatalf("exit %v, want 0; stderr:\n%s", state, s.stderr.String())
	}
	for i := 0; i <= n; i++ {
		r, ok := answers[fmt.Sprint(i)]
		switch {
		case !ok:
			t.Errorf("id %d: no answer", i)
		case r.Error != nil:
			t.Errorf("id %d: %s", i, r.Error.Message)
		case i > 0 && bytes.Contains(r.Result, []byte(`"isError":true`)):
			t.Errorf("id %d: tool error %s", i, r.Result)
		}
	}
	rows := auditRows(t, dataDir, "--event", "tools/call", "--tool", "todo_create", "--limit", "10000")
	ok := 0
	for _, row := range rows {
		if row["outcome"] == "ok" && strings.Contains(row["arguments"].(string), "pipelined") {
			ok++
		}
	}
	if ok != n {
		t.Fatalf("%d ok todo_create rows, want %d", ok, n)
	}
	all := auditRows(t, dataDir, "--limit", "10000")
	if last := all[len(all)-1]; last["event"] != "server/stop" || !strings.Contains(last["reason"].(string), "stdin closed") {
		t.Fatalf("last row %v %v, want server/stop after stdin closed", last["event"], last["reason"])
	}
}

// TestStdio_HungToolShutdown: a call that honours cancellation and one that
// never returns are in flight when the server is told to stop (SIGTERM,
// SIGINT, stdin EOF). It waits --shutdown-timeout, cancels, gives the calls
// a grace second, answers and audits the one still stuck itself, and exits 1
// (requests were cancelled) well within deadline + margin. Every call has a
// 'cancelled' row and an answer; server/stop is the last row.
func TestStdio_HungToolShutdown(t *testing.T) {
	bin, err := testToolsBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sig  os.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"SIGINT", os.Interrupt},
		{"StdinEOF", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir, tmp := t.TempDir(), t.TempDir()
			tok := addSharedProfile(t, dataDir, "hang", "todo:read", "")
			s := startPipe(t, bin, []string{"IDMCP_SHARED_SECRET=" + tok, "IDMCP_TOKEN=" + tok},
				"--profile", "hang", "--data-dir", dataDir, "--audit-sync", "normal", "--sandbox", "off", "--shutdown-timeout", "1s")
			polite, stuck := filepath.Join(tmp, "polite"), filepath.Join(tmp, "stuck")
			s.send(callMsg(1, "test_hang", map[string]any{"started_file": polite}),
				callMsg(2, "test_hang", map[string]any{"started_file": stuck, "ignore_cancel": true}))
			waitFile(t, polite, s)
			waitFile(t, stuck, s)
			start := time.Now()
			if tc.sig != nil {
				if err := s.cmd.Process.Signal(tc.sig); err != nil {
					t.Fatal(err)
				}
			} else {
				_ = s.stdin.Close()
			}
			// 1s deadline + 1s grace; the bound is generous for a loaded machine.
			state, answers := s.wait(20 * time.Second)
			t.Logf("stopped %s after the request to stop", time.Since(start).Round(time.Millisecond))
			if state.ExitCode() != 1 || !strings.Contains(s.stderr.String(), "requests cancelled at the shutdown deadline") {
				t.Fatalf("exit %v, want 1 naming the cancelled requests; stderr:\n%s", state, s.stderr.String())
			}
			if r := answers["1"]; r.Error != nil || !bytes.Contains(r.Result, []byte(`"isError":true`)) || !bytes.Contains(r.Result, []byte("was cancelled: server shutting down")) {
				t.Errorf("polite call: %+v %s, want a tool error saying it was cancelled", r.Error, r.Result)
			}
			if r := answers["2"]; r.Error == nil || r.Error.Code != -32800 || !strings.Contains(r.Error.Message, "did not return within") {
				t.Errorf("stuck call: %+v, want error -32800 saying it did not return", r.Error)
			}
			rows := auditRows(t, dataDir, "--limit", "1000")
			var cancelled int
			for _, row := range rows {
				if row["event"] == "tools/call" && row["tool"] == "test_hang" {
					if row["outcome"] == "started" {
						// The write-ahead intent: it must have its outcome.
						if row["unfinished"] == true {
							t.Errorf("test_hang intent row %v has no outcome row", row["id"])
						}
						continue
					}
					if row["outcome"] != "cancelled" || !strings.Contains(row["reason"].(string), "allowed; cancelled: server shutting down") {
						t.Errorf("test_hang row: outcome %v reason %v, want a cancelled row", row["outcome"], row["reason"])
					}
					cancelled++
				}
			}
			if cancelled != 2 {
				t.Errorf("%d test_hang rows, want 2 (one per call)", cancelled)
			}
			if last := rows[len(rows)-1]; last["event"] != "server/stop" {
				t.Errorf("last row %v, want server/stop", last["event"])
			}
		})
	}
}

// TestStdio_SecondSignalEndsAtOnce: with a long deadline and a stuck call,
// the first SIGTERM starts the graceful stop and a second one ends the
// process at once (the default action of the signal).
func TestStdio_SecondSignalEndsAtOnce(t *testing.T) {
	bin, err := testToolsBinary()
	if err != nil {
		t.Fatal(err)
	}
	dataDir, tmp := t.TempDir(), t.TempDir()
	tok := addSharedProfile(t, dataDir, "hang", "", "")
	s := startPipe(t, bin, []string{"IDMCP_SHARED_SECRET=" + tok, "IDMCP_TOKEN=" + tok},
		"--profile", "hang", "--data-dir", dataDir, "--audit-sync", "normal", "--sandbox", "off", "--shutdown-timeout", "10m")
	started := filepath.Join(tmp, "started")
	s.send(callMsg(1, "test_hang", map[string]any{"started_file": started, "ignore_cancel": true}))
	waitFile(t, started, s)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The first signal is being handled once the server says it waits.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.stderr.String(), "waiting for requests in flight") {
		if time.Now().After(deadline) {
			t.Fatalf("no sign of the graceful stop; stderr:\n%s", s.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	state, _ := s.wait(20 * time.Second) // far below the 10m deadline
	if ws, ok := state.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("ended with %v, want killed by the second SIGTERM", state)
	}
}

// TestStdio_ShutdownTimeoutMustBePositive: a zero or negative deadline is a
// usage error (exit 2), not a silent default.
func TestStdio_ShutdownTimeoutMustBePositive(t *testing.T) {
	for _, v := range []string{"0s", "-1s"} {
		_, stderr, code := runIdmcp(t, nil, "serve", "--shutdown-timeout", v, "--data-dir", t.TempDir())
		if code != 2 || !strings.Contains(stderr, "--shutdown-timeout "+v+": must be positive") {
			t.Errorf("--shutdown-timeout %s: exit %d, stderr %q; want exit 2 naming the flag", v, code, stderr)
		}
	}
}

// TestStdio_HostClosedStdout: a host that closes its end of idmcp's stdout
// while calls are in flight loses their answers, not their rows: the
// process is not killed by SIGPIPE, records every call, and exits 0 at EOF.
func TestStdio_HostClosedStdout(t *testing.T) {
	const n = 50
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "gone", "todo:read todo:write", "")
	cmd := exec.Command(binPath, "serve", "--profile", "gone", "--data-dir", dataDir, "--audit-sync", "normal")
	cmd.Env = cleanEnv("IDMCP_SHARED_SECRET="+tok, "IDMCP_TOKEN="+tok)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = stdout.Close() // the host is gone before the first answer
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"todo_create","arguments":{"title":"orphan %d"}}}`+"\n", i, i)
	}
	_, _ = stdin.Write(b.Bytes())
	_ = stdin.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("server did not exit; stderr:\n%s", stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signaled() || ws.ExitStatus() != 0 {
		t.Fatalf("ended with %v, want exit 0 (not SIGPIPE); stderr:\n%s", cmd.ProcessState, stderr.String())
	}
	rows := auditRows(t, dataDir, "--event", "tools/call", "--tool", "todo_create", "--limit", "1000")
	// Each call: its write-ahead intent row and the outcome row naming it.
	if len(rows) != 2*n {
		t.Fatalf("%d todo_create rows, want %d (an intent and an outcome per call)", len(rows), 2*n)
	}
	for _, row := range rows {
		if row["unfinished"] == true {
			t.Fatalf("intent row %v has no outcome row", row["id"])
		}
	}
	if !strings.Contains(stderr.String(), "cannot write to the host") {
		t.Errorf("stderr does not say the answers were dropped:\n%s", stderr.String())
	}
}
