package main_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// doctorReport is `idmcp doctor --json`'s output.
type doctorReport struct {
	Findings []struct {
		Check, Status, Message, Fix string
	}
	Broken, Warnings int
}

// runDoctor runs `idmcp doctor` (text and --json) with HOME set and returns
// the text output, the parsed JSON report and the PROCESS exit status (both
// runs must agree on it).
func runDoctor(t *testing.T, home, dataDir string) (string, doctorReport, int) {
	t.Helper()
	env := []string{"HOME=" + home}
	ws := filepath.Join(home, "project")
	out, errOut, code := runIdmcp(t, env, "doctor", "--data-dir", dataDir, "--workspace", ws)
	jout, _, jcode := runIdmcp(t, env, "doctor", "--json", "--data-dir", dataDir, "--workspace", ws)
	var rep doctorReport
	if err := json.Unmarshal([]byte(jout), &rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, jout)
	}
	if code != jcode {
		t.Fatalf("doctor exit %d, doctor --json exit %d", code, jcode)
	}
	return out + errOut, rep, code
}

// doctorSetup is a home with one host (Cursor) installed for profile "doc"
// and one authenticated session in the audit log.
func doctorSetup(t *testing.T) (home, dataDir, token string) {
	t.Helper()
	home, dataDir = t.TempDir(), filepath.Join(t.TempDir(), "data")
	_, token = installHost(t, home, dataDir, "doc", "cursor")
	command, args, env, _ := hostEntry(t, filepath.Join(home, ".cursor", "mcp.json"), "mcpServers", "idmcp-doc")
	if who := launchAsHost(t, command, args, env, "cursor"); who.ClientID != "doc" {
		t.Fatalf("whoami %+v", who)
	}
	return home, dataDir, token
}

func TestDoctor_Healthy(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes and paths are Unix ones")
	}
	home, dataDir, tok := doctorSetup(t)
	out, rep, code := runDoctor(t, home, dataDir)
	if code != 0 || rep.Broken != 0 {
		t.Fatalf("healthy set-up: exit %d, %d broken\n%s", code, rep.Broken, out)
	}
	for _, want := range []string{"0700", "the hash chain verifies", `Cursor entry "idmcp-doc"`, "the token matches", "no refusals", "sandbox"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, tok) {
		t.Fatal("doctor printed the token")
	}
}

// TestDoctor_BrokenSetups breaks one thing at a time and checks that the
// process exits non-zero (or, for refusals, warns), names the problem and
// gives a fix, and never prints a token.
func TestDoctor_BrokenSetups(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes and paths are Unix ones")
	}
	cases := []struct {
		name     string
		breakIt  func(t *testing.T, home, dataDir, tok string)
		wantCode int
		want     []string
	}{
		{"WrongTokenInHostFile", func(t *testing.T, home, _, tok string) {
			replaceInFile(t, filepath.Join(home, ".cursor", "mcp.json"), tok, wrongToken)
		}, 1, []string{`the token does not match profile "doc"`, "fix: idmcp host install doc cursor --force"}},
		{"WorldReadableDataDir", func(t *testing.T, _, dataDir, _ string) {
			if err := os.Chmod(dataDir, 0o755); err != nil {
				t.Fatal(err)
			}
		}, 1, []string{"is mode 0755", "fix: chmod 700"}},
		{"WorldReadableFile", func(t *testing.T, _, dataDir, _ string) {
			if err := os.Chmod(filepath.Join(dataDir, "hosts.json"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 1, []string{"hosts.json (0644)", "fix: chmod 600"}},
		{"TamperedAuditLog", func(t *testing.T, _, dataDir, _ string) {
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "audit.db")+"?_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, q := range []string{"DROP TRIGGER audit_log_no_update", "UPDATE audit_log SET subject = 'mallory' WHERE id = 2"} {
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		}, 1, []string{"the hash chain is broken at row 2"}},
		{"ProfileRemoved", func(t *testing.T, _, dataDir, _ string) {
			mustIdmcp(t, nil, "host", "remove", "doc", "--data-dir", dataDir)
		}, 1, []string{`profile "doc" does not exist`, "fix: idmcp host add doc --install cursor --force"}},
		{"SecretFileGone", func(t *testing.T, _, dataDir, _ string) {
			if err := os.Remove(filepath.Join(dataDir, "doc.secret")); err != nil {
				t.Fatal(err)
			}
		}, 1, []string{"the token could not be checked: secret file", "refuses every request", "fix: idmcp host install doc cursor --force --secret-file"}},
		{"Refusals", func(t *testing.T, _, dataDir, _ string) {
			for range 3 {
				s := startRaw(t, []string{"IDMCP_TOKEN=" + wrongToken}, "--profile", "doc", "--data-dir", dataDir, "--secret-file", filepath.Join(dataDir, "doc.secret"))
				if r := s.call("initialize", legacyInit("")); r.Error == nil {
					t.Fatal("wrong token accepted")
				}
				s.Close()
			}
		}, 0, []string{`raw-test was refused 3 times in the last hour: credential does not match profile "doc"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			home, dataDir, tok := doctorSetup(t)
			c.breakIt(t, home, dataDir, tok)
			out, rep, code := runDoctor(t, home, dataDir)
			if code != c.wantCode || (c.wantCode != 0) != (rep.Broken > 0) {
				t.Fatalf("exit %d (want %d), %d broken in --json\n%s", code, c.wantCode, rep.Broken, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("doctor output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, tok) || strings.Contains(out, wrongToken) {
				t.Fatal("doctor printed a token")
			}
		})
	}
}

// TestDoctor_BinaryMoved installs with a copy of the binary (the command in
// the host file is the absolute path of the binary that ran `host add`),
// then deletes the copy.
func TestDoctor_BinaryMoved(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix paths")
	}
	home, dataDir := t.TempDir(), t.TempDir()
	cp := filepath.Join(t.TempDir(), "idmcp-copy")
	b, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cp, "host", "add", "mv", "--install", "windsurf", "--data-dir", dataDir, "--no-keyring", "--secret-file", filepath.Join(dataDir, "mv.secret"))
	cmd.Env = cleanEnv("HOME=" + home)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if _, _, code := runDoctor(t, home, dataDir); code != 0 {
		t.Fatalf("doctor before the move: exit %d", code)
	}
	if err := os.Remove(cp); err != nil {
		t.Fatal(err)
	}
	text, _, code := runDoctor(t, home, dataDir)
	if code != 1 || !strings.Contains(text, "command "+cp+" does not exist or is not executable") {
		t.Fatalf("doctor after the move: exit %d\n%s", code, text)
	}
}

// TestKeyring_DoctorMissingSecret: a keyring profile installed into a host
// is healthy; once its keyring entry is gone, doctor exits 1 and says so.
// Runs under scripts/ci's Secret Service session (IDMCP_TEST_KEYRING=1).
func TestKeyring_DoctorMissingSecret(t *testing.T) {
	if os.Getenv("IDMCP_TEST_KEYRING") != "1" {
		t.Skip("set IDMCP_TEST_KEYRING=1 under a Secret Service session (scripts/ci does) to run the keyring tests")
	}
	home, dataDir := t.TempDir(), t.TempDir()
	out := mustIdmcp(t, []string{"HOME=" + home}, "host", "add", "kd", "--install", "cursor", "--data-dir", dataDir, "--scopes", "todo:read")
	if !strings.Contains(out, "OS keyring") {
		t.Fatalf("install output:\n%s", out)
	}
	t.Cleanup(func() { _ = exec.Command("secret-tool", "clear", "service", "idmcp", "username", "kd").Run() })
	text, _, code := runDoctor(t, home, dataDir)
	if code != 0 || !strings.Contains(text, `profile "kd" has its secret in the keyring`) || !strings.Contains(text, "the token matches") {
		t.Fatalf("doctor with the secret: exit %d\n%s", code, text)
	}
	if err := exec.Command("secret-tool", "clear", "service", "idmcp", "username", "kd").Run(); err != nil {
		t.Fatal(err)
	}
	text, _, code = runDoctor(t, home, dataDir)
	if code != 1 || !strings.Contains(text, `profile "kd" has no secret in the keyring`) || !strings.Contains(text, "fix: idmcp host install kd HOST --force") {
		t.Fatalf("doctor without the secret: exit %d\n%s", code, text)
	}
}
