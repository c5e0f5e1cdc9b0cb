package audit_test

import (
	"strings"
	"testing"

	"github.com/idmcp/idmcp/store/audit"
)

// Credentials inside larger values, found by review: each must go, and the
// text around it must stay.
func TestRedactor_CredentialsInText(t *testing.T) {
	r := &audit.Redactor{}
	tests := []struct {
		name, in, leak, keep string
	}{
		{"BasicHeader", `{"headers":[{"name":"Authorization","value":"Basic dXNlcjpodW50ZXIy"}]}`, "dXNlcjpodW50ZXIy", "Authorization"},
		{"CurlBasic", `{"cmd":"curl -H 'Authorization: Basic dXNlcjpodW50ZXIy' https://x"}`, "dXNlcjpodW50ZXIy", "curl -H"},
		{"BasicWordKept", `{"note":"Basic authentication is disabled"}`, "", "Basic authentication is disabled"},
		{"URLUserinfo", `{"dsn":"postgres://admin:hunter2@db:5432/app"}`, "hunter2", "postgres://admin:"},
		{"QueryToken", `{"url":"https://api.example/v1?access_token=ya29.secretvalue&page=2"}`, "ya29.secretvalue", "page=2"},
		{"FlagEquals", `{"cmd":"deploy --password=hunter2 --env prod"}`, "hunter2", "--env prod"},
		{"FlagSpace", `{"cmd":"tool --api-key sk_live_abc123 run"}`, "sk_live_abc123", "run"},
		{"ArgvPair", `{"argv":["--password","hunter2","--user","ada"]}`, "hunter2", `"ada"`},
		{"PGP", `{"k":"-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBGX\n-----END PGP PRIVATE KEY BLOCK-----"}`, "lQOYBGX", `"k"`},
		{"NBSPBearer", "{\"h\":\"Bearer\u00a0abcdefghijkl\"}", "abcdefghijkl", `"h"`},
		{"KeyNames", `{"pass":"a1","pw":"a2","jwt":"a3","priv_key":"a4","ssh_key":"a5","signing_key":"a6","client-key":"a7"}`, "\"a", `"pass"`},
		{"DateKept", `{"due":"2026-01-02","title":"ship-it"}`, "", "2026-01-02"},
		// (?i) matches ſ as s and the Kelvin sign as k; the quick checks
		// before the expressions must not rule those out (found by review).
		{"LongSFlag", "{\"cmd\":\"deploy --pa\u017f\u017fword=hunter2 now\"}", "hunter2", "deploy"},
		{"KelvinFlag", "{\"cmd\":\"tool --api-\u212aey=hunter2x run\"}", "hunter2x", "run"},
		{"LongSBasic", "{\"h\":\"Ba\u017fic dXNlcjpodW50ZXIy\"}", "dXNlcjpodW50ZXIy", `"h"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Arguments([]byte(tc.in))
			if tc.leak != "" && strings.Contains(got, tc.leak) {
				t.Errorf("Arguments(%s) = %s: leaks %q", tc.in, got, tc.leak)
			}
			if !strings.Contains(got, tc.keep) {
				t.Errorf("Arguments(%s) = %s: lost %q", tc.in, got, tc.keep)
			}
		})
	}
}
