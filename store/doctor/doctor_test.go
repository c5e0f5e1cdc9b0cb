package doctor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/auth/keyring"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/store/doctor"
	"github.com/idmcp/idmcp/store/hostconfig"
)

// TestRun_Refusals writes refusals into a real audit log at chosen times
// and checks they are counted per host and reason inside the window only.
func TestRun_Refusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := store.EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	log, err := audit.Open(ctx, audit.Config{Path: filepath.Join(dir, store.AuditDBName)})
	if err != nil {
		t.Fatal(err)
	}
	deny := func(at time.Time, client, profile, reason string) {
		t.Helper()
		if err := log.Append(ctx, audit.Event{Time: at, Transport: "stdio", Event: "auth", Subject: "u", ClientID: profile, ClientName: client, Decision: "deny", Reason: reason}); err != nil {
			t.Fatal(err)
		}
	}
	mismatch := `authentication failed: credential does not match profile "cc"`
	for i := range 3 {
		deny(now.Add(-time.Duration(10+i)*time.Minute), "claude-code/2.1.328", "cc", mismatch)
	}
	deny(now.Add(-2*time.Hour), "claude-code/2.1.328", "cc", mismatch) // outside the window
	deny(now.Add(-5*time.Minute), "mcp-test-client/0.0.1", "gem", `authentication failed: profile "gem" does not exist; run `+"`idmcp host add gem`")
	deny(now.Add(-1*time.Minute), "", "zz", "authentication failed: no credential presented for profile \"zz\"")
	if err := log.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := doctor.Run(ctx, doctor.Config{
		DataDir: dir, Keyring: keyring.New(keyring.Config{Service: "idmcp-doctor-test"}),
		Hosts: hostconfig.Env{GOOS: "linux", Home: t.TempDir()}, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		`claude-code was refused 3 times in the last hour: credential does not match profile "cc"`: "idmcp host install PROFILE HOST --force",
		`mcp-test-client was refused 1 time in the last hour: profile "gem" does not exist`:        "idmcp host add PROFILE --install HOST",
		`a host of profile zz was refused 1 time in the last hour: no credential presented`:        "idmcp host install PROFILE HOST --force",
	}
	got := 0
	for _, f := range rep.Findings {
		if f.Check != "refusals" {
			continue
		}
		got++
		matched := false
		for msg, fix := range want {
			if strings.HasPrefix(f.Message, msg) {
				matched = true
				if f.Status != doctor.Warn || !strings.Contains(f.Fix, fix) {
					t.Errorf("%q: status %s fix %q, want warn and %q", f.Message, f.Status, f.Fix, fix)
				}
			}
		}
		if !matched {
			t.Errorf("unexpected refusal finding %q", f.Message)
		}
	}
	if got != len(want) {
		t.Fatalf("%d refusal findings, want %d: %+v", got, len(want), rep.Findings)
	}
	if rep.Broken != 0 {
		t.Fatalf("refusals alone are warnings, got %d broken: %+v", rep.Broken, rep.Findings)
	}
}

func TestConfig_Validate(t *testing.T) {
	kr := keyring.New(keyring.Config{})
	for _, c := range []doctor.Config{{DataDir: "relative", Keyring: kr}, {DataDir: "/abs"}} {
		if _, err := doctor.Run(context.Background(), c); !errors.Is(err, auth.ErrInvalidConfig) {
			t.Errorf("Run(%+v) = %v, want ErrInvalidConfig", c, err)
		}
	}
}

// TestRun_NoDataDir: a machine where nothing was set up yet is not broken.
func TestRun_NoDataDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	rep, err := doctor.Run(context.Background(), doctor.Config{
		DataDir: missing, Keyring: keyring.New(keyring.Config{Service: "idmcp-doctor-test"}),
		Hosts: hostconfig.Env{GOOS: "linux", Home: t.TempDir()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Broken != 0 {
		t.Fatalf("fresh machine: %+v", rep.Findings)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("doctor created the data dir")
	}
}
