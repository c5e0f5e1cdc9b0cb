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
	"sync"
	"testing"
	"time"
)

// testToolsBinary is idmcp built with -tags idmcptest: the product plus
// test_hang (cmd/idmcp/testtools_on.go), which the product binary never
// lists.
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
