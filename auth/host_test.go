package auth_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/idmcp/idmcp/auth"
)

func TestHostAuthenticator_Authenticate(t *testing.T) {
	secret := auth.NewHostToken()
	profile := &auth.HostProfile{Name: "laptop", Scopes: []string{"todo:read"}, Roles: []string{"admin"}}
	tests := []struct {
		name      string
		profile   *auth.HostProfile
		secret    string
		presented string
		want      string // "" = success
	}{
		{"OK", profile, secret, secret, ""},
		{"Missing", profile, secret, "", `no credential presented for profile "laptop"`},
		{"Wrong", profile, secret, auth.NewHostToken(), `credential does not match profile "laptop"`},
		{"Prefix", profile, secret, secret[:len(secret)-1], "does not match"},
		{"Extended", profile, secret, secret + "A", "does not match"},
		{"CaseChanged", profile, secret, strings.ToUpper(secret), "does not match"},
		{"NoProfile", nil, secret, secret, `profile "laptop" does not exist; run ` + "`idmcp host add laptop`"},
		{"NoSecret", profile, "", secret, `no secret configured for profile "laptop"`},
		{"NoSecretNoCredential", profile, "", "", `no secret configured`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{ProfileName: "laptop", Profile: tc.profile, Secret: []byte(tc.secret), Human: "ada"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := h.Authenticate(tc.presented, auth.ClientInfo{Name: "Claude", Version: "1.0"})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p.Subject != "ada" || p.ClientID != "laptop" || p.ClientName != "Claude" || p.Method != auth.MethodHostSecret || !p.HasScope("todo:read") || !p.HasRole("admin") {
					t.Fatalf("principal %+v", p)
				}
				return
			}
			if err == nil {
				t.Fatalf("authenticated, want %q", tc.want)
			}
			if auth.KindOf(err) != auth.KindUnauthenticated || !strings.HasPrefix(err.Error(), "authentication failed: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %q (kind %v), want %q", err, auth.KindOf(err), tc.want)
			}
			if strings.Contains(err.Error(), secret) || (tc.presented != "" && strings.Contains(err.Error(), tc.presented)) {
				t.Fatal("error message leaks a credential")
			}
		})
	}
}

func TestNewHostToken(t *testing.T) {
	a, b := auth.NewHostToken(), auth.NewHostToken()
	if a == b || !strings.HasPrefix(a, auth.TokenPrefix) || len(a) != len(auth.TokenPrefix)+43 {
		t.Fatalf("tokens %q %q: want distinct, prefixed, 256 bits", a, b)
	}
}

func TestValidateProfileName(t *testing.T) {
	for name, ok := range map[string]bool{"default": true, "claude-desktop": true, "a.b_c": true, "": false, "-x": false, "a b": false, "../x": false, strings.Repeat("a", 65): false} {
		if err := auth.ValidateProfileName(name); (err == nil) != ok {
			t.Errorf("ValidateProfileName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if b, err := auth.ReadSecretFile(write("ok", "s3cret\n", 0o600)); err != nil || string(b) != "s3cret" {
		t.Fatalf("ok file: %q %v", b, err)
	}
	if _, err := auth.ReadSecretFile(write("empty", "\n", 0o600)); err == nil {
		t.Error("empty file accepted")
	}
	if runtime.GOOS != "windows" {
		_, err := auth.ReadSecretFile(write("loose", "s3cret", 0o640))
		if err == nil || !strings.Contains(err.Error(), "0600 or stricter") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("0640 file: %v", err)
		}
	}
}
