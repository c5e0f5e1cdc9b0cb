package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// stdioClientRun is scripts/interop/stdio-client.mjs's one line of output.
type stdioClientRun struct {
	OK    bool     `json:"ok"`
	Error string   `json:"error"`
	Tools []string `json:"tools"`
	Calls []struct {
		Name    string `json:"name"`
		OK      bool   `json:"ok"`
		IsError bool   `json:"is_error"`
		Text    string `json:"text"`
		Error   string `json:"error"`
		Code    int    `json:"code"`
	} `json:"calls"`
	Stderr string `json:"stderr"`
}

// TestInterop_TSClientStdio: the official TypeScript SDK client launches
// `idmcp serve` over stdio the way desktop hosts do (StdioClientTransport,
// IDMCP_TOKEN in the environment), lists and calls tools, and closes. A
// wrong token fails the connection with the refusal's words, which the
// host also finds on the server's stderr.
func TestInterop_TSClientStdio(t *testing.T) {
	ix := needInterop(t)
	dataDir := t.TempDir()
	tok := addSharedProfile(t, dataDir, "tsclient", "todo:read", "")
	run := func(t *testing.T, token string, calls ...string) *stdioClientRun {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args := []string{"stdio-client.mjs"}
		for _, c := range calls {
			args = append(args, "--call", c)
		}
		args = append(args, "--", binPath, "serve", "--profile", "tsclient", "--data-dir", dataDir)
		cmd := exec.CommandContext(ctx, ix.node, args...)
		cmd.Dir = ix.dir
		cmd.Env = cleanEnv("IDMCP_SHARED_SECRET="+tok, "IDMCP_TOKEN="+token)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run()
		var r stdioClientRun
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("stdio-client.mjs output %q: %v\nstderr:\n%s", stdout.String(), err, stderr.String())
		}
		return &r
	}
	t.Run("OK", func(t *testing.T) {
		r := run(t, tok, "whoami", "todo_create")
		if !r.OK {
			t.Fatalf("connect: %s\nserver stderr:\n%s", r.Error, r.Stderr)
		}
		if want := expectedTools(t, "todo:read", ""); !slices.Equal(r.Tools, want) {
			t.Errorf("tools %v, want %v", r.Tools, want)
		}
		if c := r.Calls[0]; !c.OK || c.IsError || !strings.Contains(c.Text, "stdio") {
			t.Errorf("whoami: %+v", c)
		}
		if c := r.Calls[1]; c.OK || c.Code != -32600 || !strings.Contains(c.Error, `forbidden: tool "todo_create" requires scope todo:write`) {
			t.Errorf("todo_create without todo:write: %+v", c)
		}
		if !strings.Contains(r.Stderr, `refused: forbidden: tool \"todo_create\" requires scope todo:write`) {
			t.Errorf("server stderr lacks the refusal line:\n%s", r.Stderr)
		}
		rows := auditRows(t, dataDir, "--limit", "1000")
		if last := rows[len(rows)-1]; last["event"] != "server/stop" {
			t.Errorf("last row %v, want server/stop once the client closed", last["event"])
		}
	})
	t.Run("WrongToken", func(t *testing.T) {
		r := run(t, tok[:len(tok)-1]+"x")
		if r.OK || !strings.Contains(r.Error, `authentication failed: credential does not match profile "tsclient"`) {
			t.Fatalf("wrong token: ok=%v error %q, want the refusal", r.OK, r.Error)
		}
		if !strings.Contains(r.Stderr, `refused: authentication failed: credential does not match profile \"tsclient\"`) {
			t.Errorf("server stderr lacks the refusal line:\n%s", r.Stderr)
		}
		if strings.Contains(r.Stderr, tok[:len(tok)-1]) {
			t.Error("server stderr leaks the credential")
		}
	})
}
