//go:build linux

package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestServe_FIFOInWorkspace is issue 12.3's regression test through the
// built binary: a FIFO and a symlink to it in the workspace. files_search
// over the workspace answers with its matches, search and read of either
// name are tool errors naming the type, whoami still answers afterwards,
// stdin EOF ends the process with status 0, and every call has its audit
// row. Before the fix the first search of the link blocked in open(2) for
// ever; each call here is bounded (served.call fails after 20 s).
func TestServe_FIFOInWorkspace(t *testing.T) {
	w := newSandboxWorld(t)
	if err := syscall.Mkfifo(filepath.Join(w.workspace, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("pipe", filepath.Join(w.workspace, "pipe_link")); err != nil {
		t.Fatal(err)
	}
	s := w.serveStdio(t, binPath, w.env(), "--workspace", w.workspace)

	want := map[string]int{} // audit rows per tool and outcome
	call := func(name string, args map[string]any) toolResult {
		t.Helper()
		res := s.call(t, name, args)
		want[name+"/"+map[bool]string{true: "error", false: "ok"}[res.IsError]]++
		return res
	}
	for range 3 { // more than once: a stuck call would hold a worker each time
		res := call("files_search", map[string]any{"query": "hello"})
		var out struct {
			Count   int `json:"count"`
			Matches []struct {
				Path string `json:"path"`
			} `json:"matches"`
		}
		if res.IsError || json.Unmarshal(res.Structured, &out) != nil || out.Count != 1 || out.Matches[0].Path != "readme" {
			t.Fatalf("files_search over the workspace: %+v, want the one match in readme", res)
		}
		for _, name := range []string{"pipe", "pipe_link"} {
			for _, tool := range []string{"files_search", "files_read"} {
				args := map[string]any{"path": name}
				if tool == "files_search" {
					args["query"] = "hello"
				}
				res := call(tool, args)
				if !res.IsError || len(res.Content) == 0 || !strings.Contains(res.Content[0].Text, name+": is a named pipe (FIFO), not a regular file") {
					t.Fatalf("%s %s: %+v, want a tool error naming the FIFO", tool, name, res)
				}
			}
		}
	}
	if res := call("whoami", map[string]any{}); res.IsError {
		t.Fatalf("whoami after the FIFO calls: %+v", res)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if ps := s.wait(t); !ps.Success() {
		t.Fatalf("after stdin EOF the server exited with %v (stderr: %s)", ps, s.stderr())
	}
	got := map[string]int{}
	for _, row := range auditRows(t, w.dataDir, "--event", "tools/call") {
		got[row["tool"].(string)+"/"+row["outcome"].(string)]++
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("audit rows for %s: %d, want %d (one per call)", k, got[k], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("audit rows %v, want %v", got, want)
	}
}
