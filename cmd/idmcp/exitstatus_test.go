package main_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"
)

// servedDataDir returns a data dir on which a stdio server has run once (so
// it has an audit log), through a --no-keyring profile.
func servedDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out := mustIdmcp(t, nil, "host", "add", "ci", "--no-keyring", "--data-dir", dir, "--scopes", "todo:read")
	tok := tokenFromHostAdd(t, out)
	s := startRaw(t, []string{"IDMCP_SHARED_SECRET=" + tok, "IDMCP_TOKEN=" + tok}, "--profile", "ci", "--data-dir", dir, "--audit-sync", "normal")
	if r := s.call("tools/call", map[string]any{"_meta": modernMeta(""), "name": "whoami", "arguments": map[string]any{}}); r.Error != nil {
		t.Fatalf("whoami: %s", r.Error.Message)
	}
	s.Close()
	return dir
}

// tamper edits one audit row in place, with the append-only trigger
// dropped, as anyone with write access to the file can.
func tamper(t *testing.T, dataDir string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dataDir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"DROP TRIGGER audit_log_no_update", "UPDATE audit_log SET subject = 'mallory' WHERE id = 2"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestExitStatus checks the exit status of the process, not run()'s return
// value, for every documented status of every command: 0 success (and -h),
// 1 failure (a tampered or missing log, a bad file, a refusal to start),
// 2 usage. A quiet error (one the command reported itself) once made main
// exit 0, so `idmcp audit verify || alert` never alerted.
func TestExitStatus(t *testing.T) {
	served := servedDataDir(t)
	tampered := servedDataDir(t)
	tamper(t, tampered)
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	badPolicy := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(badPolicy, []byte("[tools]\nenabled = [\"no_such_tool\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nk := t.TempDir()
	mustIdmcp(t, nil, "host", "add", "nk", "--no-keyring", "--data-dir", nk)

	for _, tc := range []struct {
		name       string
		args       []string
		want       int
		wantOut    string // in stdout
		wantErr    string // in stderr
		notWantErr string // not in stderr
	}{
		{name: "NoCommand", want: 2},
		{name: "UnknownCommand", args: []string{"frobnicate"}, want: 2, wantErr: `unknown command "frobnicate"`},
		{name: "Version", args: []string{"version"}, want: 0, wantOut: "idmcp"},
		{name: "Help", args: []string{"-h"}, want: 0, wantOut: "Usage:"},
		{name: "ServeUnknownFlag", args: []string{"serve", "--bogus"}, want: 2},
		{name: "ServeHelp", args: []string{"serve", "-h"}, want: 0, wantErr: "IDMCP_SHARED_SECRET"},
		{name: "ServeNoKeyringWithoutSecret", args: []string{"serve", "--profile", "nk", "--data-dir", nk}, want: 1, wantErr: "set IDMCP_SHARED_SECRET"},
		{name: "VerifyOK", args: []string{"audit", "verify", "--data-dir", served}, want: 0, wantOut: "ok:"},
		{name: "VerifyTampered", args: []string{"audit", "verify", "--data-dir", tampered}, want: 1, wantOut: "TAMPERED"},
		{name: "VerifyNoLog", args: []string{"audit", "verify", "--data-dir", empty}, want: 1, wantErr: "no audit log"},
		{name: "VerifyMissingDataDir", args: []string{"audit", "verify", "--data-dir", missing}, want: 1, wantErr: "no data dir"},
		{name: "QueryMissingDataDir", args: []string{"audit", "query", "--data-dir", missing}, want: 1, wantErr: "no data dir"},
		{name: "QueryNoLogYet", args: []string{"audit", "query", "--data-dir", empty}, want: 0, wantErr: "no audit log"},
		{name: "AuditUnknownFlag", args: []string{"audit", "verify", "--bogus"}, want: 2},
		{name: "AuditNoSubcommand", args: []string{"audit"}, want: 2},
		{name: "HostHelp", args: []string{"host", "-h"}, want: 0, wantOut: "rotate NAME"},
		{name: "HostListHelp", args: []string{"host", "list", "-h"}, want: 0, wantErr: "-data-dir", notWantErr: "-scopes"},
		{name: "HostRotateHelp", args: []string{"host", "rotate", "-h"}, want: 0, wantErr: "-secret-file", notWantErr: "-scopes"},
		{name: "HostUnknown", args: []string{"host", "frob"}, want: 2, wantErr: "unknown host command"},
		{name: "HostAddNoName", args: []string{"host", "add", "--data-dir", empty}, want: 2},
		{name: "HostAddBadScope", args: []string{"host", "add", "x", "--no-keyring", "--data-dir", empty, "--scopes", `a"b`}, want: 2, wantErr: "RFC 6749"},
		{name: "PolicyCheckBadFile", args: []string{"policy", "check", badPolicy}, want: 1, wantErr: "bad.toml"},
		{name: "PolicyCheckMissingFile", args: []string{"policy", "check", filepath.Join(empty, "nope.toml")}, want: 1},
		{name: "PolicyNoFile", args: []string{"policy", "check"}, want: 2},
		{name: "TokenMintNoSub", args: []string{"token", "mint"}, want: 2, wantErr: "--sub is required"},
		{name: "TokenMintHelp", args: []string{"token", "mint", "-h"}, want: 0, wantErr: "-aud URL", notWantErr: "`"},
		{name: "SandboxUnknownFlag", args: []string{"sandbox", "status", "--bogus"}, want: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runIdmcp(t, nil, tc.args...)
			if code != tc.want {
				t.Fatalf("idmcp %q: exit status %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.want, out, errOut)
			}
			if tc.wantOut != "" && !strings.Contains(out, tc.wantOut) {
				t.Errorf("stdout lacks %q:\n%s", tc.wantOut, out)
			}
			if tc.wantErr != "" && !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantErr, errOut)
			}
			if tc.notWantErr != "" && strings.Contains(errOut, tc.notWantErr) {
				t.Errorf("stderr has %q:\n%s", tc.notWantErr, errOut)
			}
		})
	}
}

// TestHostAdd_ScopeList: "todo:read,todo:write" is two scopes, and a scope
// no tool requires (a misspelling) is warned about on stderr.
func TestHostAdd_ScopeList(t *testing.T) {
	dir := t.TempDir()
	_, errOut, code := runIdmcp(t, nil, "host", "add", "h", "--no-keyring", "--data-dir", dir, "--scopes", "todo:read,todo:wirte files:read")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, `scope "todo:wirte"`) || strings.Contains(errOut, `scope "todo:read"`) {
		t.Fatalf("want a warning for todo:wirte only:\n%s", errOut)
	}
	out := mustIdmcp(t, nil, "host", "list", "--data-dir", dir)
	if !strings.Contains(out, "todo:read todo:wirte files:read") {
		t.Fatalf("scopes not split on commas:\n%s", out)
	}
}

// TestServe_ConcurrentFirstStart starts 8 servers at once on a new data dir,
// 20 times, as a host that launches two idmcp entries at start-up does: no
// start may fail on the schema (the version was once read outside the
// migration's write transaction: "table audit_log already exists"), and
// the audit chain verifies after.
func TestServe_ConcurrentFirstStart(t *testing.T) {
	const procs, rounds = 8, 20
	for round := range rounds {
		dir := filepath.Join(t.TempDir(), "data") // new: no schema yet
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		out := mustIdmcp(t, nil, "host", "add", "p", "--no-keyring", "--data-dir", dir, "--scopes", "todo:read todo:write")
		tok := tokenFromHostAdd(t, out)
		var wg sync.WaitGroup
		errs := make(chan string, procs)
		for i := range procs {
			wg.Go(func() {
				s := startRaw(t, []string{"IDMCP_SHARED_SECRET=" + tok, "IDMCP_TOKEN=" + tok}, "--profile", "p", "--data-dir", dir, "--audit-sync", "normal")
				r := s.call("tools/call", map[string]any{"_meta": modernMeta(""), "name": "todo_create", "arguments": map[string]any{"title": fmt.Sprintf("r%d-p%d", round, i)}})
				if r.Error != nil {
					errs <- fmt.Sprintf("round %d proc %d: %s\nstderr: %s", round, i, r.Error.Message, s.stderr.String())
				}
				s.Close()
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if t.Failed() {
			return
		}
		if out, errOut, code := runIdmcp(t, nil, "audit", "verify", "--data-dir", dir); code != 0 {
			t.Fatalf("round %d: audit verify exit %d\n%s%s", round, code, out, errOut)
		}
	}
}
