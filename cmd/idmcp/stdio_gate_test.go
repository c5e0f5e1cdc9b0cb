package main_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth/jwt/jwttest"
	"github.com/idmcp/idmcp/tools"
)

// TestStdio_ConcurrentFirstRequestsBindOneIdentity: the first requests of a
// session, each with a valid JWT of another user, arrive together and are
// gated concurrently. Checking "bound to another identity" and binding are
// one step, so in every round exactly one user is served and every other
// request is refused with its own audit row (issue 12.6: check-then-bind let
// two pass, and the loser's call ran under the winner's name). Through the
// binary the requests rarely meet inside the bind itself; the server
// package's TestStdioGate_ConcurrentFirstRequestsBindOnce releases them into
// it together with a barrier, and fails within a few rounds on a
// check-then-bind gate.
func TestStdio_ConcurrentFirstRequestsBindOneIdentity(t *testing.T) {
	const users, rounds = 6, 15
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	const aud = "https://mcp.example.com/mcp"
	tokens := make([]string, users)
	for i := range tokens {
		tokens[i] = iss.Token(t, iss.Claims(fmt.Sprintf("user%d", i), aud, "todo:read", time.Now()))
	}
	whoami := map[string]any{"name": "whoami", "arguments": map[string]any{}}
	for round := range rounds {
		dataDir := t.TempDir()
		s := startPipe(t, binPath, nil, "--issuer", iss.URL, "--audience", aud, "--data-dir", dataDir, "--audit-sync", "normal")
		var msgs []map[string]any
		for i, tok := range tokens {
			params := map[string]any{"_meta": modernMeta(tok)}
			maps.Copy(params, whoami)
			msgs = append(msgs, map[string]any{"id": i, "method": "tools/call", "params": params})
		}
		s.send(msgs...) // one write: the server reads them back to back
		_ = s.stdin.Close()
		state, answers := s.wait(time.Minute)
		if state.ExitCode() != 0 {
			t.Fatalf("round %d: exit %v; stderr:\n%s", round, state, s.stderr.String())
		}
		served := map[string]bool{}
		refused := 0
		for i := range tokens {
			r, ok := answers[strconv.Itoa(i)]
			switch {
			case !ok:
				t.Fatalf("round %d: no answer to user%d", round, i)
			case r.Error != nil:
				if !strings.Contains(r.Error.Message, "this stdio session is bound to") {
					t.Fatalf("round %d: user%d refused with %q, want the binding refusal", round, i, r.Error.Message)
				}
				refused++
			default:
				var res struct {
					StructuredContent tools.WhoamiResult `json:"structuredContent"`
				}
				if err := json.Unmarshal(r.Result, &res); err != nil {
					t.Fatal(err)
				}
				if got, want := res.StructuredContent.Subject, fmt.Sprintf("user%d", i); got != want {
					t.Fatalf("round %d: %s's request was served as %s", round, want, got)
				}
				served[res.StructuredContent.Subject] = true
			}
		}
		if len(served) != 1 || refused != users-1 {
			t.Fatalf("round %d: served %v and refused %d, want exactly one user served and %d refused", round, served, refused, users-1)
		}
		if deny := auditRows(t, dataDir, "--event", "auth", "--decision", "deny"); len(deny) != refused {
			t.Fatalf("round %d: %d auth deny rows, want %d (one per refusal)", round, len(deny), refused)
		}
		if allow := auditRows(t, dataDir, "--event", "auth", "--decision", "allow"); len(allow) != 1 {
			t.Fatalf("round %d: %d auth allow rows, want 1 (the binding)", round, len(allow))
		}
	}
}

// refusalLine matches the stderr line of a refusal; the message is a
// quoted slog text value.
var refusalLine = regexp.MustCompile(`msg="refused: ((?:[^"\\]|\\.)*)"`)

// TestStdio_RefusalsOnStderr: every authentication and authorization
// refusal writes one stderr line with the same words as the JSON-RPC error
// (hosts keep a server's stderr in their logs, not its protocol errors),
// and no credential, although the refused credentials embed the secret.
func TestStdio_RefusalsOnStderr(t *testing.T) {
	dataDir := t.TempDir()
	mustIdmcp(t, nil, "host", "add", "canary", "--no-keyring", "--scopes", "todo:read", "--data-dir", dataDir)
	const canary = "idmcp_CANARYcanaryCANARYcanaryCANARYcanary0123"
	s := startRaw(t, []string{"IDMCP_SHARED_SECRET=" + canary}, "--profile", "canary", "--data-dir", dataDir)
	var want []string
	expectError := func(r rpcResponse, what string) {
		t.Helper()
		if r.Error == nil {
			t.Fatalf("%s: got a result, want a refusal", what)
		}
		want = append(want, r.Error.Message)
	}
	expectError(s.call("initialize", legacyInit(canary[:len(canary)-1])), "initialize with a prefix of the secret")
	expectError(s.call("tools/list", map[string]any{"_meta": modernMeta("x" + canary)}), "modern tools/list with a wrong secret")
	expectError(s.call("tools/call", map[string]any{"name": "whoami", "arguments": map[string]any{}}), "legacy call without a credential")
	// Authenticated now; then refused by authorization.
	if r := s.call("initialize", legacyInit(canary)); r.Error != nil {
		t.Fatalf("initialize: %s", r.Error.Message)
	}
	expectError(s.call("tools/call", map[string]any{"name": "todo_create", "arguments": map[string]any{"title": canary}}), "todo_create without todo:write")
	expectError(s.call("tools/call", map[string]any{"name": "no_such_tool", "arguments": map[string]any{}}), "unknown tool")
	s.Close()

	stderr := s.stderr.String()
	var got []string
	for _, m := range refusalLine.FindAllStringSubmatch(stderr, -1) {
		msg, err := strconv.Unquote(`"` + m[1] + `"`)
		if err != nil {
			t.Fatalf("unquote %q: %v", m[1], err)
		}
		got = append(got, msg)
	}
	if len(got) != len(want) {
		t.Fatalf("%d refusal lines on stderr, want %d:\n%s", len(got), len(want), stderr)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("stderr line %d says %q; the JSON-RPC error said %q", i, got[i], want[i])
		}
	}
	for _, n := range []string{canary, canary[:len(canary)-1], "CANARYcanaryCANARY"} {
		if strings.Contains(stderr, n) {
			t.Errorf("stderr contains the planted secret %q…", n[:12])
		}
	}
}
