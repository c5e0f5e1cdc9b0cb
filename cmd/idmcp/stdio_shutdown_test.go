//go:build !windows

package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testToolsBinary is idmcp built with -tags idmcptest: the product plus
// test_hang and echo (cmd/idmcp/testtools_on.go), which the product binary
// never lists.
var testToolsBinary = sync.OnceValues(func() (string, error) {
	out := filepath.Join(filepath.Dir(binPath), "idmcp-testtools")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "idmcptest", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -tags idmcptest: %w\n%s", err, b)
	}
	return out, nil
})

// pipeServer is `idmcp serve` fed raw lines on stdin, with every stdout line
// collected until the server closes stdout.
type pipeServer struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	out    chan []byte   // each stdout line
	eof    chan struct{} // stdout closed
	waited chan struct{} // the process was reaped; cmd.ProcessState is set
}

func startPipe(t *testing.T, bin string, env []string, args ...string) *pipeServer {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = cleanEnv(env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &pipeServer{t: t, cmd: cmd, stdin: stdin, stderr: &lockedBuffer{}, out: make(chan []byte, 4096), eof: make(chan struct{}), waited: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.eof)
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				s.out <- line
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		<-s.eof // Wait closes the pipe; read everything first
		_ = cmd.Wait()
		close(s.waited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.waited:
		default:
			_ = cmd.Process.Kill()
			<-s.waited
		}
	})
	return s
}

func (s *pipeServer) send(msgs ...map[string]any) {
	s.t.Helper()
	var buf bytes.Buffer
	for _, m := range msgs {
		m["jsonrpc"] = "2.0"
		b, _ := json.Marshal(m)
		buf.Write(append(b, '\n'))
	}
	if _, err := s.stdin.Write(buf.Bytes()); err != nil {
		s.t.Fatalf("write: %v (stderr: %s)", err, s.stderr.String())
	}
}

// wait waits (bounded) for the process to exit and returns how long it took
// from start, and its answers by id.
func (s *pipeServer) wait(bound time.Duration) (*os.ProcessState, map[string]rpcResponse) {
	s.t.Helper()
	select {
	case <-s.waited:
	case <-time.After(bound):
		_ = s.cmd.Process.Kill()
		<-s.waited
		s.t.Fatalf("server still running after %s; stderr:\n%s", bound, s.stderr.String())
	}
	answers := map[string]rpcResponse{}
	for {
		select {
		case line := <-s.out:
			var r rpcResponse
			if err := json.Unmarshal(line, &r); err != nil {
				s.t.Fatalf("stdout line %q: %v", line, err)
			}
			if _, dup := answers[string(r.ID)]; dup {
				s.t.Errorf("two answers to id %s", r.ID)
			}
			answers[string(r.ID)] = r
		default:
			return s.cmd.ProcessState, answers
		}
	}
}

// waitFile waits (bounded) until path exists: test_hang creates it once the
// call is running.
func waitFile(t *testing.T, path string, s *pipeServer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared; stderr:\n%s", path, s.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func callMsg(id int, tool string, args map[string]any) map[string]any {
	return map[string]any{"id": id, "method": "tools/call", "params": map[string]any{"name": tool, "arguments": args}}
}

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
					if row["outcome"] != "error" || !strings.Contains(row["reason"].(string), "allowed; cancelled: server shutting down") {
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
