package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/idmcp/idmcp/auth"
)

func mustWrapPolicy(t *testing.T, doc string) *auth.WrapPolicy {
	t.Helper()
	p, err := auth.ParsePolicy("p.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if p.Wrap == nil {
		t.Fatal("no [wrap] parsed")
	}
	return p.Wrap
}

func TestWrapPolicy_DecideTool(t *testing.T) {
	w := mustWrapPolicy(t, `
[wrap.tools]
read_file = { scopes = ["fs:read"] }
"write_*" = { scopes = ["fs:write"] }
"write_secret*" = { deny = true }
"*" = { scopes = ["fs:all"] }
admin_only = { roles = ["admin"] }
`)
	reader := &auth.Principal{Scopes: []string{"fs:read"}}
	writer := &auth.Principal{Scopes: []string{"fs:read", "fs:write"}}
	all := &auth.Principal{Scopes: []string{"fs:all", "fs:write"}, Roles: []string{"admin"}}
	for _, tc := range []struct {
		name string
		p    *auth.Principal
		tool string
		want bool
		kind auth.Kind
	}{
		{"ExactOK", reader, "read_file", true, 0},
		{"PatternNeedsScope", reader, "write_file", false, auth.KindInsufficientScope},
		{"PatternOK", writer, "write_file", true, 0},
		{"LongerPatternWins", all, "write_secrets", false, auth.KindNotFound},
		{"CatchAllNeedsScope", writer, "something_new", false, auth.KindInsufficientScope},
		{"CatchAllOK", all, "something_new", true, 0},
		{"ExactBeatsCatchAll", all, "read_file", false, auth.KindInsufficientScope},
		{"Role", all, "admin_only", true, 0},
		{"RoleMissing", writer, "admin_only", false, auth.KindMissingRole},
		{"NilPrincipal", nil, "read_file", false, auth.KindUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := w.DecideTool(tc.p, tc.tool)
			if d.Allow != tc.want {
				t.Fatalf("Decide(%q) = %+v, want allow=%v", tc.tool, d, tc.want)
			}
			if !tc.want && (d.Err == nil || d.Err.Kind != tc.kind) {
				t.Fatalf("Decide(%q) err = %v, want kind %v", tc.tool, d.Err, tc.kind)
			}
		})
	}
}

func TestWrapPolicy_DefaultHidesEverything(t *testing.T) {
	var w *auth.WrapPolicy
	p := &auth.Principal{Scopes: []string{"x"}}
	for _, d := range []auth.Decision{w.DecideTool(p, "echo"), w.DecidePrompt(p, "p"), w.DecideResource(p, "file:///x")} {
		if d.Allow || d.Err.Kind != auth.KindNotFound {
			t.Errorf("nil [wrap]: %+v, want hidden", d)
		}
	}
	w = mustWrapPolicy(t, "[wrap]\nallow_sampling = true\n")
	if d := w.DecideTool(p, "echo"); d.Allow {
		t.Error("a [wrap] with no tools allows an unnamed tool")
	}
}

func TestWrapPolicy_DecideResource(t *testing.T) {
	w := mustWrapPolicy(t, `
[wrap.resources]
"demo://resource/" = { scopes = ["res:read"] }
"demo://resource/private/" = { deny = true }
`)
	p := &auth.Principal{Scopes: []string{"res:read"}}
	if d := w.DecideResource(p, "demo://resource/static/1"); !d.Allow {
		t.Errorf("prefix: %+v", d)
	}
	if d := w.DecideResource(p, "demo://resource/private/key"); d.Allow {
		t.Error("the longer denying prefix did not win")
	}
	if d := w.DecideResource(p, "file:///etc/passwd"); d.Allow {
		t.Error("an unmatched URI is allowed")
	}
}

func TestParsePolicy_Wrap(t *testing.T) {
	w := mustWrapPolicy(t, `
[wrap]
allow_sampling = true
restart = 2
methods = ["tasks/list"]
[wrap.sandbox]
read = ["/srv/data/"]
write = []
connect = ["api.github.com:443"]
[wrap.env]
GITHUB_TOKEN = { keyring = "github" }
LOG_LEVEL = "debug"
`)
	if !w.AllowSampling || w.AllowElicitation || w.Restart != 2 || w.Methods[0] != "tasks/list" {
		t.Errorf("knobs = %+v", w)
	}
	if w.Sandbox.Read[0] != "/srv/data" || w.Sandbox.Write == nil || len(w.Sandbox.Write) != 0 || w.Sandbox.Exec != nil {
		t.Errorf("sandbox = %+v", w.Sandbox)
	}
	if len(w.Env) != 2 || w.Env[0] != (auth.WrapEnv{Name: "GITHUB_TOKEN", Keyring: "github"}) || w.Env[1] != (auth.WrapEnv{Name: "LOG_LEVEL", Value: "debug"}) {
		t.Errorf("env = %+v", w.Env)
	}
}

func TestParsePolicy_WrapErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"RelativePath", "[wrap.sandbox]\nread = [\"data\"]\n", "wrap.sandbox.read"},
		{"ConnectNoPort", "[wrap.sandbox]\nconnect = [\"api.github.com\"]\n", "host:port"},
		{"ReservedEnv", "[wrap.env]\nPATH = \"/tmp\"\n", "PATH"},
		{"IdmcpEnv", "[wrap.env]\nIDMCP_TOKEN = \"x\"\n", "IDMCP_"},
		{"PreloadEnv", "[wrap.env]\nLD_PRELOAD = \"/x.so\"\n", "LD_PRELOAD"},
		{"BadKeyringName", "[wrap.env]\nX = { keyring = \"../x\" }\n", "keyring"},
		{"EnvTableWithoutKeyring", "[wrap.env]\nX = { value = \"x\" }\n", "keyring"},
		{"UnknownKey", "[wrap]\nallow_everything = true\n", "unknown key"},
		{"UnknownRuleKey", "[wrap.tools]\necho = { scope = [\"x\"] }\n", "unknown key"},
		{"BadScope", "[wrap.tools]\necho = { scopes = [\"a b\"] }\n", "wrap.tools.echo"},
		{"RestartTooHigh", "[wrap]\nrestart = 99\n", "restart"},
		{"EmptyResourcePrefix", "[wrap.resources]\n\"\" = {}\n", "URI prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.ParsePolicy("p.toml", []byte(tc.doc))
			if err == nil || !errors.Is(err, auth.ErrInvalidPolicy) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an invalid-policy error mentioning %q", err, tc.want)
			}
		})
	}
}

// FuzzWrapPolicy_Decide: a rule set and a name from anywhere never panic,
// and an allow always comes from a rule whose pattern matches.
func FuzzWrapPolicy_Decide(f *testing.F) {
	f.Add("write_*", "write_file", "*")
	f.Add("a*b*c", "aXbYc", "")
	f.Add("**", "", "x")
	f.Add("*x*", "xx", "*y")
	f.Fuzz(func(t *testing.T, pat1, name, pat2 string) {
		w := &auth.WrapPolicy{Tools: []auth.WrapRule{{Pattern: pat1}, {Pattern: pat2, Deny: true}}}
		d := w.DecideTool(&auth.Principal{}, name)
		if d.Allow && !globRef(pat1, name) {
			t.Fatalf("%q allowed by %q", name, pat1)
		}
	})
}

// globRef is a slow reference matcher: '*' matches any run.
func globRef(p, s string) bool {
	if p == "" {
		return s == ""
	}
	if p[0] == '*' {
		for i := 0; i <= len(s); i++ {
			if globRef(p[1:], s[i:]) {
				return true
			}
		}
		return false
	}
	return s != "" && s[0] == p[0] && globRef(p[1:], s[1:])
}

func TestParsePolicy_WrapFile(t *testing.T) {
	p, err := auth.LoadPolicy("testdata/policy/wrap.toml")
	if err != nil {
		t.Fatal(err)
	}
	w := p.Wrap
	if len(w.Tools) != 5 || len(w.Prompts) != 1 || len(w.Resources) != 2 || len(w.Sandbox.Connect) != 2 || len(w.Env) != 2 || w.Restart != 3 {
		t.Errorf("wrap = %+v", w)
	}
	if d := w.DecideTool(&auth.Principal{}, "elicit (form)"); !d.Allow {
		t.Errorf("a tool name with spaces and parentheses: %+v", d)
	}
}
