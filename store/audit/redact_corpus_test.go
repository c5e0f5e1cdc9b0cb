package audit_test

import (
	"strings"
	"testing"

	"github.com/idmcp/idmcp/store/audit"
)

// TestRedactor_IssueCorpus is every value issue 13 found stored in clear:
// each, in free text or under its key, must come out without its secret.
func TestRedactor_IssueCorpus(t *testing.T) {
	r := testRedactor()
	for _, tc := range []struct {
		name, in, secret string
	}{
		{"HostTokenWithoutPrefix", "my token is " + plantedHostBody, plantedHostBody},
		{"HostTokenUpperCase", "TOKEN " + strings.ToUpper(plantedHost), strings.ToUpper(plantedHostBody)[8:30]},
		{"HostTokenLowerCaseBody", "see " + strings.ToLower(plantedHostBody) + " ok", strings.ToLower(plantedHostBody)},
		{"HostTokenSplitBySpace", "paste: " + plantedHost[:25] + " " + plantedHost[25:], plantedHost[25:]},
		{"HostTokenSplitByNewline", plantedHostBody[:10] + "\n" + plantedHostBody[10:], plantedHostBody[10:]},
		{"PasswordColon", "login with password: hunter2xyz please", "hunter2xyz"},
		{"PasswordEquals", "password=hunter2xyz", "hunter2xyz"},
		{"PasswordQuoted", `{"db_password": "hunter2xyz"}`, "hunter2xyz"},
		{"AuthorizationToken", "Authorization: Token abcdef0123456789", "abcdef0123456789"},
		{"AuthorizationLowerCase", "authorization=apikey abcdef0123456789", "abcdef0123456789"},
		{"CurlUser", "curl -u alice:s3cretPW https://api.example.com", "s3cretPW"},
		{"CurlUserLong", "curl --user alice:s3cretPW https://api.example.com", "s3cretPW"},
		{"AWS", "key AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"},
		{"AWSTemporary", "ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"},
		{"GitHubPAT", "ghp_1234567890abcdefghijklmnopqrstuvwxyz", "ghp_1234567890abcdefghijklmnopqrstuvwxyz"},
		{"GitHubOAuth", "gho_1234567890abcdefghijklmnopqrstuvwxyz", "1234567890abcdefghij"},
		{"GitHubFineGrained", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz"},
		{"Slack", "xoxb-1234567890-0987654321-AbCdEfGhIjKl", "AbCdEfGhIjKl"},
		{"SlackUser", "xoxp-1234567890-0987654321-AbCdEfGhIjKl", "AbCdEfGhIjKl"},
		{"OpenAI", "sk-abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz012345"},
		{"Stripe", "sk_live_abcdefghijklmnop0123", "abcdefghijklmnop0123"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, in := range []string{tc.in, `{"note":` + quote(tc.in) + `}`} {
				var got string
				if strings.HasPrefix(in, `{"note"`) {
					got = r.Arguments([]byte(in))
				} else {
					got = r.String(in)
				}
				if strings.Contains(got, tc.secret) || !strings.Contains(got, audit.Redacted) {
					t.Errorf("%q redacted to %q: %q survives", in, got, tc.secret)
				}
			}
		})
	}
	// Keys named for a secret, compared after NFKC and case folding.
	for _, key := range []string{"passcode", "pin_code", "otp_code", "mfa", "MFA_Code", "ＰＡＳＳＷＯＲＤ", "Ｐａｓｓｃｏｄｅ", "ﬁle_secret", "ＡＰＩ＿ＫＥＹ"} {
		got := r.Arguments([]byte(`{` + quote(key) + `:"v4lue"}`))
		if strings.Contains(got, "v4lue") {
			t.Errorf("key %q: %s keeps its value", key, got)
		}
	}
	// And what must be kept: ordinary text around the redactions and keys
	// that only look alike.
	for in, want := range map[string]string{
		`{"title":"buy milk","pinned":true,"mfa_enabled":true}`: `{"mfa_enabled":true,"pinned":true,"title":"buy milk"}`,
		`{"note":"the task_force met at 10:30"}`:                `{"note":"the task_force met at 10:30"}`,
		`{"note":"password: hunter2xyz, then go"}`:              `{"note":"password: [REDACTED], then go"}`,
	} {
		if got := r.Arguments([]byte(in)); got != want {
			t.Errorf("%s redacted to %s, want %s", in, got, want)
		}
	}
}

// TestRedactor_AddSecrets: a secret the server learns after the log opened
// (a dev client secret) is redacted from then on, concurrently with
// redaction (run with -race).
func TestRedactor_AddSecrets(t *testing.T) {
	r := &audit.Redactor{}
	const sec = "dev_Q1w2E3r4T5y6U7i8O9p0AsDfGhJk"
	if got := r.String("x " + sec); got != "x "+sec {
		t.Fatalf("before AddSecrets: %q", got)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			_ = r.String("y " + sec)
		}
	}()
	r.AddSecrets(sec)
	<-done
	for _, in := range []string{"x " + sec, "x " + strings.ToUpper(sec[4:]), "x " + sec[:12] + " " + sec[12:]} {
		if got := r.String(in); strings.Contains(got, sec[12:20]) || strings.Contains(strings.ToLower(got), strings.ToLower(sec[12:20])) {
			t.Errorf("after AddSecrets: %q redacted to %q", in, got)
		}
	}
}
