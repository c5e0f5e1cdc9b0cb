//go:build !windows

package main_test

import (
	"bufio"
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

	"github.com/idmcp/idmcp/store"
)

// loadServer is `idmcp serve` under concurrent tools/call load over pipes:
// a writer keeps up to inFlight todo_create calls outstanding, each with a
// unique title, and a reader records the titles whose call the server
// acknowledged (a result that is not an error).
type loadServer struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	stop   chan struct{}
	done   chan struct{} // the reader saw EOF
	sent   int

	mu      sync.Mutex
	pending map[int]string // id → title
	acked   []string
}

const loadInFlight = 16

// startLoad starts the server with profile's secret and begins the load; the
// titles are prefix-N.
func startLoad(t *testing.T, dataDir, profile, secret, prefix string) *loadServer {
	t.Helper()
	return startLoadIn(t, dataDir, "", profile, secret, prefix)
}

// startLoadIn is startLoad; with a workspace, every other call is a
// files_write of "<title>.txt" instead of a todo_create.
func startLoadIn(t *testing.T, dataDir, workspace, profile, secret, prefix string) *loadServer {
	t.Helper()
	args := []string{"serve", "--profile", profile, "--data-dir", dataDir}
	if workspace != "" {
		args = append(args, "--workspace", workspace)
	}
	cmd := exec.Command(binPath, args...)
	cmd.Env = cleanEnv("IDMCP_SHARED_SECRET=" + secret)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &loadServer{t: t, cmd: cmd, stdin: stdin, stderr: &lockedBuffer{}, stop: make(chan struct{}),
		done: make(chan struct{}), pending: map[int]string{}}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	slots := make(chan struct{}, loadInFlight)
	initialized := make(chan bool, 1)
	go func() { // reader
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r struct {
				ID     *int `json:"id"`
				Result *struct {
					IsError bool `json:"isError"`
				} `json:"result"`
			}
			if json.Unmarshal(sc.Bytes(), &r) != nil || r.ID == nil {
				continue
			}
			if *r.ID == 0 {
				initialized <- r.Result != nil
				continue
			}
			s.mu.Lock()
			title := s.pending[*r.ID]
			delete(s.pending, *r.ID)
			if r.Result != nil && !r.Result.IsError {
				s.acked = append(s.acked, title)
			}
			s.mu.Unlock()
			<-slots
		}
	}()
	s.send(0, "initialize", legacyInit(secret))
	select {
	case ok := <-initialized:
		if !ok {
			t.Fatalf("initialize refused; stderr: %s", s.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no initialize response; stderr: %s", s.stderr.String())
	}
	s.notify("notifications/initialized")
	go func() { // writer
		for id := 1; ; id++ {
			select {
			case <-s.stop:
				return
			case slots <- struct{}{}:
			}
			title := fmt.Sprintf("%s-%d", prefix, id)
			s.mu.Lock()
			s.pending[id] = title
			s.sent = id
			s.mu.Unlock()
			call := map[string]any{"name": "todo_create", "arguments": map[string]any{"title": title}}
			if workspace != "" && id%2 == 0 {
				call = map[string]any{"name": "files_write", "arguments": map[string]any{"path": title + ".txt", "content": title}}
			}
			if !s.send(id, "tools/call", call) {
				return
			}
		}
	}()
	return s
}

func (s *loadServer) send(id int, method string, params any) bool {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	_, err := s.stdin.Write(append(b, '\n'))
	return err == nil
}

func (s *loadServer) notify(method string) {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method})
	_, _ = s.stdin.Write(append(b, '\n'))
}

// waitAcked waits (bounded) until at least n calls were acknowledged.
func (s *loadServer) waitAcked(n int) {
	s.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		got := len(s.acked)
		s.mu.Unlock()
		if got >= n {
			return
		}
	}
	s.t.Fatalf("fewer than %d calls acknowledged in 20s; stderr: %s", n, s.stderr.String())
}

// end signals the process (nil: close stdin), stops the load, waits (bounded)
// for exit and for the reader to drain stdout, and returns the exit state and
// the acknowledged titles.
func (s *loadServer) end(sig os.Signal) (*os.ProcessState, []string) {
	s.t.Helper()
	if sig == nil {
		_ = s.stdin.Close()
	} else if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
	close(s.stop)
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-exited
		s.t.Fatalf("server did not exit within 15s of %v; stderr: %s", sig, s.stderr.String())
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.ProcessState, append([]string(nil), s.acked...)
}

// auditTitles returns the titles of the committed todo_create calls that
// were allowed and ran to an ok outcome, read through `idmcp audit query
// --json` (the read-only CLI, as a user would after a crash): the title is in
// the intent row, the outcome in the row that names it.
func auditTitles(t *testing.T, dataDir string) map[string]bool {
	t.Helper()
	intents := map[float64]string{}
	var ok []float64
	for _, r := range auditRows(t, dataDir, "--tool", "todo_create") {
		var args struct {
			Title string `json:"title"`
		}
		if s, _ := r["arguments"].(string); json.Unmarshal([]byte(s), &args) == nil && r["outcome"] == "started" && r["decision"] == "allow" {
			intents[r["id"].(float64)] = args.Title
		}
		if id, _ := r["intent_id"].(float64); id != 0 && r["outcome"] == "ok" {
			ok = append(ok, id)
		}
	}
	titles := map[string]bool{}
	for _, id := range ok {
		if title, found := intents[id]; found {
			titles[title] = true
		}
	}
	return titles
}

// checkAcked fails the test for every acknowledged title without its row.
func checkAcked(t *testing.T, dataDir string, acked []string) {
	t.Helper()
	rows := auditTitles(t, dataDir)
	missing := 0
	for _, title := range acked {
		if !rows[title] {
			missing++
			if missing <= 5 {
				t.Errorf("call %q was acknowledged to the client but has no audit row", title)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged calls have no audit row", missing, len(acked))
	}
	out, errOut, code := runIdmcp(t, nil, "audit", "verify", "--data-dir", dataDir)
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
}

// TestCrash_SIGKILLUnderLoad kills the server with SIGKILL in the middle of
// a concurrent tools/call load, three times, restarting it on the same data
// dir. A response is written only after its row is committed, so every call
// the client saw acknowledged must have its row, and the chain must verify.
func TestCrash_SIGKILLUnderLoad(t *testing.T) {
	dataDir := t.TempDir()
	secret := addSharedProfile(t, dataDir, "crash", "todo:read todo:write", "")
	var acked []string
	for round := range 3 {
		s := startLoad(t, dataDir, "crash", secret, fmt.Sprintf("crash%d", round))
		s.waitAcked(20)
		time.Sleep(time.Duration(200+150*round) * time.Millisecond) // kill at a different point each round
		state, got := s.end(syscall.SIGKILL)
		if ws, ok := state.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: server ended with %v, want killed by SIGKILL", round, state)
		}
		t.Logf("round %d: %d calls sent, %d acknowledged before SIGKILL", round, s.sent, len(got))
		acked = append(acked, got...)
		// Checked right after the kill, before any server recovers the WAL:
		// the read-only CLI must see every acknowledged row.
		checkAcked(t, dataDir, acked)
	}
}

// TestGracefulShutdown_UnderLoad ends the server with SIGTERM, SIGINT and
// stdin EOF during a concurrent load: it exits 0, every acknowledged call has
// its row, the drained queue is followed by the server/stop row, and the
// chain verifies.
func TestGracefulShutdown_UnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  os.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"SIGINT", os.Interrupt},
		{"StdinEOF", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			secret := addSharedProfile(t, dataDir, "graceful", "todo:read todo:write", "")
			s := startLoad(t, dataDir, "graceful", secret, "g")
			s.waitAcked(30)
			state, acked := s.end(tc.sig)
			if code := state.ExitCode(); code != 0 {
				t.Fatalf("exit %v, want 0; stderr: %s", state, s.stderr.String())
			}
			checkAcked(t, dataDir, acked)
			rows := auditRows(t, dataDir)
			if last := rows[len(rows)-1]; last["event"] != "server/stop" {
				t.Fatalf("last row is %v %v, want server/stop after the drained calls", last["event"], last["tool"])
			}
			t.Logf("%d calls sent, %d acknowledged, %d rows", s.sent, len(acked), len(rows))
		})
	}
}

// intentCheck reads the audit log through `idmcp audit query --json` and
// checks the write-ahead contract against what the tools left behind: every
// todo in idmcp.db and every file in the workspace has its intent row (a
// committed row written before the tool ran), every acknowledged call has an
// outcome row naming its intent, and the chain verifies. It returns the
// number of unfinished intents (calls cut off by the kill).
func intentCheck(t *testing.T, dataDir, workspace string, acked []string) (unfinished int) {
	t.Helper()
	intents := map[string]float64{}  // title → intent row id
	outcomes := map[float64]string{} // intent id → outcome
	for _, r := range auditRows(t, dataDir, "--event", "tools/call") {
		var a struct {
			Title string `json:"title"`
			Path  string `json:"path"`
		}
		_ = json.Unmarshal([]byte(r["arguments"].(string)), &a)
		switch {
		case r["outcome"] == "started":
			title := a.Title
			if r["tool"] == "files_write" {
				title = strings.TrimSuffix(a.Path, ".txt")
			}
			intents[title] = r["id"].(float64)
			if r["unfinished"] == true {
				unfinished++
			}
		case r["intent_id"].(float64) != 0:
			outcomes[r["intent_id"].(float64)] = r["outcome"].(string)
		case r["decision"] == "allow":
			t.Errorf("row %v: an allowed %v call with one row; tools with side effects need an intent row", r["id"], r["tool"])
		}
	}
	db, err := store.OpenSQLite(context.Background(), filepath.Join(dataDir, store.DataDBName), true, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT title FROM todos")
	if err != nil {
		t.Fatal(err)
	}
	var todos int
	for rows.Next() {
		var title string
		if err := rows.Scan(&title); err != nil {
			t.Fatal(err)
		}
		todos++
		if _, ok := intents[title]; !ok {
			t.Errorf("todo %q exists but has no intent row", title)
		}
	}
	_ = rows.Close()
	files, err := os.ReadDir(workspace)
	if err != nil {
		t.Fatal(err)
	}
	var written int
	for _, f := range files {
		title, ok := strings.CutSuffix(f.Name(), ".txt")
		if !ok || strings.HasPrefix(f.Name(), ".idmcp-") {
			continue // a temp file of a write cut off before its rename
		}
		written++
		if _, ok := intents[title]; !ok {
			t.Errorf("file %q was written but has no intent row", f.Name())
		}
	}
	for _, title := range acked {
		id, ok := intents[title]
		if !ok {
			t.Errorf("call %q was acknowledged but has no intent row", title)
			continue
		}
		if outcomes[id] != "ok" {
			t.Errorf("call %q (intent row %v) was acknowledged but its outcome row is %q", title, id, outcomes[id])
		}
	}
	out, errOut, code := runIdmcp(t, nil, "audit", "verify", "--data-dir", dataDir)
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("%d todos, %d files, %d intents, %d outcomes, %d acknowledged, %d unfinished", todos, written, len(intents), len(outcomes), len(acked), unfinished)
	return unfinished
}

// TestCrash_IntentRowsUnderSIGKILL kills the server with SIGKILL, four
// times, under a load of todo_create and files_write (tools with side
// effects) and restarts it on the same data dir: no todo or file may exist
// without its intent row, no acknowledged call without its outcome row, and
// the chain must verify after each kill and after the last restart.
func TestCrash_IntentRowsUnderSIGKILL(t *testing.T) {
	dataDir, workspace := t.TempDir(), t.TempDir()
	secret := addSharedProfile(t, dataDir, "crash", "todo:read todo:write files:read files:write", "")
	var acked []string
	for round := range 4 {
		s := startLoadIn(t, dataDir, workspace, "crash", secret, fmt.Sprintf("k%d", round))
		s.waitAcked(20)
		time.Sleep(time.Duration(100+120*round) * time.Millisecond)
		state, got := s.end(syscall.SIGKILL)
		if ws, ok := state.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: server ended with %v, want killed by SIGKILL", round, state)
		}
		acked = append(acked, got...)
		intentCheck(t, dataDir, workspace, acked)
		if t.Failed() {
			t.Fatalf("round %d failed; stderr: %s", round, s.stderr.String())
		}
	}
	// A last restart (the server recovers the WAL) and a clean stop.
	s := startLoadIn(t, dataDir, workspace, "crash", secret, "final")
	s.waitAcked(5)
	if state, got := s.end(nil); state.ExitCode() != 0 {
		t.Fatalf("final run exit %v", state)
	} else {
		acked = append(acked, got...)
	}
	intentCheck(t, dataDir, workspace, acked)
}
