package auth_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/idmcp/idmcp/auth"
)

// policyTools is the requirement each built-in tool declares (as tools/ does).
func policyTools() map[string]auth.Requirement {
	return map[string]auth.Requirement{
		"whoami":        {},
		"todo_list":     {Scopes: []string{"todo:read"}},
		"todo_create":   {Scopes: []string{"todo:write"}},
		"todo_complete": {Scopes: []string{"todo:write"}},
		"todo_delete":   {Scopes: []string{"todo:write"}, Roles: []string{"admin"}},
		"files_read":    {Scopes: []string{"files:read"}},
		"files_write":   {Scopes: []string{"files:write"}},
	}
}

// MustParsePolicyFile parses testdata/policy/name.
func MustParsePolicyFile(tb testing.TB, name string) *auth.Policy {
	tb.Helper()
	p, err := auth.LoadPolicy(filepath.Join("testdata", "policy", name))
	if err != nil {
		tb.Fatalf("LoadPolicy(%s): %v", name, err)
	}
	return p
}

func MustParsePolicy(tb testing.TB, doc string) *auth.Policy {
	tb.Helper()
	p, err := auth.ParsePolicy("p.toml", []byte(doc))
	if err != nil {
		tb.Fatalf("ParsePolicy: %v", err)
	}
	return p
}

func TestParsePolicy_Full(t *testing.T) {
	p := MustParsePolicyFile(t, "full.toml")
	if got, want := p.Enabled, []string{"whoami", "todo_list", "todo_create", "todo_delete"}; !slices.Equal(got, want) {
		t.Fatalf("Enabled=%q, want %q", got, want)
	}
	wantOv := map[string]auth.ToolOverride{
		"todo_delete": {Scopes: []string{"todo:write"}, Roles: []string{"admin", "owner"}},
		"todo_create": {Roles: []string{}},
	}
	if !reflect.DeepEqual(p.Overrides, wantOv) {
		t.Fatalf("Overrides=%#v, want %#v", p.Overrides, wantOv)
	}
	if p.Overrides["todo_create"].Scopes != nil {
		t.Fatal("an absent scopes key must stay nil (keep the tool's own scopes)")
	}
	if p.Overrides["todo_create"].Roles == nil {
		t.Fatal("roles = [] must be non-nil (no role required)")
	}
	wantClaims := &auth.ClaimMapping{
		ScopeClaims: []string{"scope", "scp", "permissions"},
		RoleClaims:  []string{"roles", "groups", "realm_access.roles"},
		ScopePrefix: "https://api.example.com/",
	}
	if !reflect.DeepEqual(p.Claims, wantClaims) {
		t.Fatalf("Claims=%#v, want %#v", p.Claims, wantClaims)
	}
	wantHosts := map[string]auth.HostGrant{
		"claude": {Scopes: []string{"todo:read", "todo:write"}},
		"ci":     {Roles: []string{"owner"}},
	}
	if !reflect.DeepEqual(p.Hosts, wantHosts) {
		t.Fatalf("Hosts=%#v, want %#v", p.Hosts, wantHosts)
	}
	if got, want := p.RedactKeys, []string{"ssn", "iban"}; !slices.Equal(got, want) {
		t.Fatalf("RedactKeys=%q, want %q", got, want)
	}
	wantHTTP := &auth.HTTPSettings{
		Addr: "127.0.0.1:8080", Issuer: "https://idp.example.com/", Resource: "https://mcp.example.com/mcp",
		Audiences: []string{"https://mcp.example.com/mcp", "idmcp"}, JWKSURL: "https://idp.example.com/.well-known/jwks.json",
		AllowedOrigins: []string{"https://app.example.com", "http://localhost:5173"},
		TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"},
	}
	if !reflect.DeepEqual(p.HTTP, wantHTTP) {
		t.Fatalf("HTTP=%#v, want %#v", p.HTTP, wantHTTP)
	}
	if len(p.Warnings) != 0 {
		t.Fatalf("Warnings=%q, want none", p.Warnings)
	}
}

func TestParsePolicy_Empty(t *testing.T) {
	p := MustParsePolicyFile(t, "empty.toml")
	if p.Enabled != nil || p.Overrides != nil || p.Claims != nil || p.Hosts != nil || p.HTTP != nil || p.RedactKeys != nil {
		t.Fatalf("empty policy = %#v, want every section unset", p)
	}
	res, err := p.Resolve(policyTools())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Enabled(), policyTools(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Enabled()=%v, want every tool as declared %v", got, want)
	}
}

// TestParsePolicy_Errors checks that each broken fixture fails with the file,
// the line of the offending key and a reason that says what is wrong.
func TestParsePolicy_Errors(t *testing.T) {
	for _, tc := range []struct {
		file string
		line int
		key  string
		msg  string
	}{
		{"syntax.toml", 3, "", "syntax error: expected '.' or ']' to end table name"},
		{"unknown_key.toml", 5, "tools.disabled", `unknown key "disabled"; known keys here: enabled, override`},
		{"unknown_table.toml", 3, "tool", `unknown key "tool"; known keys here: version, tools, claims, hosts, audit, http`},
		{"wrong_case.toml", 1, "Tools", `unknown key "Tools"`},
		{"unknown_override_key.toml", 3, "tools.override.todo_list.role", `unknown key "role"; known keys here: scopes, roles`},
		{"wrong_type.toml", 5, "tools.override.todo_list.scopes", "wrong type: found a string where an array is expected"},
		{"wrong_elem_type.toml", 2, "audit.redact_keys", "wrong type: found an integer where a string is expected"},
		{"bad_scope.toml", 3, "tools.override.todo_list.scopes", `invalid scope "todo:read todo:write"`},
		{"bad_version.toml", 1, "version", "unsupported version 2"},
		{"bad_host.toml", 1, `hosts."-bad name"`, `profile name "-bad name"`},
		{"bad_claim.toml", 2, "claims.role_claims", "empty segment"},
		{"bad_url.toml", 3, "http.issuer", "not an absolute http(s) URL"},
		{"bad_origin.toml", 2, "http.allowed_origins", "not an origin"},
		{"bad_proxy.toml", 2, "http.trusted_proxies", `"proxy.internal" is not an address or CIDR prefix`},
		{"bad_tool_name.toml", 2, "tools.enabled", `invalid tool name "todo list"`},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".toml"), func(t *testing.T) {
			path := filepath.Join("testdata", "policy", tc.file)
			_, err := auth.LoadPolicy(path)
			if err == nil {
				t.Fatal("LoadPolicy succeeded, want an error")
			}
			if !errors.Is(err, auth.ErrInvalidPolicy) {
				t.Fatalf("err=%v, want one wrapping ErrInvalidPolicy", err)
			}
			var pe *auth.PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("err=%T, want *auth.PolicyError", err)
			}
			if got, want := pe.File, path; got != want {
				t.Fatalf("File=%q, want %q", got, want)
			}
			if got, want := pe.Line, tc.line; got != want {
				t.Fatalf("Line=%d, want %d (err: %v)", got, want, err)
			}
			if got, want := pe.Key, tc.key; got != want {
				t.Fatalf("Key=%q, want %q (err: %v)", got, want, err)
			}
			if !strings.Contains(pe.Msg, tc.msg) {
				t.Fatalf("Msg=%q, want it to contain %q", pe.Msg, tc.msg)
			}
			prefix := path + ":" + strconv.Itoa(tc.line) + ": "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("Error()=%q, want prefix %q", err.Error(), prefix)
			}
		})
	}
}

func TestParsePolicy_Warnings(t *testing.T) {
	p := MustParsePolicyFile(t, "warnings.toml")
	want := []string{
		`warnings.toml:2: tools.enabled: tool name "whoami" is listed twice`,
		`warnings.toml:4: tools.override.todo_list: override changes nothing`,
		`warnings.toml:7: hosts.ci.scopes: scope "todo:read" is listed twice`,
	}
	if len(p.Warnings) != len(want) {
		t.Fatalf("Warnings=%q, want %d", p.Warnings, len(want))
	}
	for i, w := range want {
		if !strings.Contains(p.Warnings[i], w) {
			t.Fatalf("Warnings[%d]=%q, want it to contain %q", i, p.Warnings[i], w)
		}
	}
}

func TestLoadPolicy_TooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.toml")
	if err := os.WriteFile(path, []byte(strings.Repeat("# padding\n", auth.MaxPolicyBytes/10+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadPolicy(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err=%v, want a size error", err)
	}
}

func TestLoadPolicy_Missing(t *testing.T) {
	_, err := auth.LoadPolicy(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err=%v, want ErrNotExist", err)
	}
}

func TestPolicy_Resolve(t *testing.T) {
	for _, tc := range []struct {
		name     string
		doc      string
		want     map[string]auth.Requirement
		warnings []string
		err      string
	}{
		{
			name: "NilPolicy",
			want: policyTools(),
		},
		{
			name: "AllowList",
			doc:  `[tools]` + "\n" + `enabled = ["whoami", "todo_list"]`,
			want: map[string]auth.Requirement{"whoami": {}, "todo_list": {Scopes: []string{"todo:read"}}},
		},
		{
			name: "EmptyAllowList",
			doc:  "[tools]\nenabled = []",
			want: map[string]auth.Requirement{},
			warnings: []string{
				"no tool is enabled",
			},
		},
		{
			name: "OverrideReplacesOnlyWhatIsSet",
			doc:  "[tools.override.todo_delete]\nroles = [\"owner\"]\n[tools.override.todo_list]\nscopes = [\"todo:write\"]\n",
			want: func() map[string]auth.Requirement {
				m := policyTools()
				m["todo_delete"] = auth.Requirement{Scopes: []string{"todo:write"}, Roles: []string{"owner"}}
				m["todo_list"] = auth.Requirement{Scopes: []string{"todo:write"}}
				return m
			}(),
		},
		{
			name: "OverrideWithUndeclaredScopeWarns",
			doc:  "[tools.override.todo_list]\nscopes = [\"todo:raed\"]\n",
			want: func() map[string]auth.Requirement {
				m := policyTools()
				m["todo_list"] = auth.Requirement{Scopes: []string{"todo:raed"}}
				return m
			}(),
			warnings: []string{`p.toml:2: tools.override.todo_list.scopes: scope "todo:raed" is declared by no tool`},
		},
		{
			name:     "OverrideOfDisabledToolWarns",
			doc:      "[tools]\nenabled = [\"whoami\"]\n[tools.override.todo_list]\nscopes = [\"todo:read\"]\n",
			want:     map[string]auth.Requirement{"whoami": {}},
			warnings: []string{`p.toml:3: tools.override.todo_list: override has no effect: tool "todo_list" is not in tools.enabled`},
		},
		{
			name: "OverrideDroppingAllRequirementsWarns",
			doc:  "[tools.override.files_write]\nscopes = []\n",
			want: func() map[string]auth.Requirement {
				m := policyTools()
				m["files_write"] = auth.Requirement{Scopes: []string{}}
				return m
			}(),
			warnings: []string{`tool "files_write" then requires no scope and no role`},
		},
		{
			name:     "HostGrantOfUnusedScopeWarns",
			doc:      "[tools]\nenabled = [\"todo_list\"]\n\n[hosts.ci]\nscopes = [\"todo:read\", \"files:read\"]\n",
			want:     map[string]auth.Requirement{"todo_list": {Scopes: []string{"todo:read"}}},
			warnings: []string{`p.toml:5: hosts.ci.scopes: scope "files:read" is required by no enabled tool`},
		},
		{
			name: "UnknownEnabledTool",
			doc:  "\n[tools]\nenabled = [\"whoami\", \"todo_lst\"]\n",
			err:  `p.toml:3: tools.enabled: no tool named "todo_lst"; available tools: files_read, files_write, todo_complete`,
		},
		{
			name: "UnknownOverriddenTool",
			doc:  "[tools.override.nosuch]\nscopes = [\"x\"]\n",
			err:  `p.toml:1: tools.override.nosuch: no tool named "nosuch"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p *auth.Policy
			if tc.doc != "" {
				p = MustParsePolicy(t, tc.doc)
			}
			res, err := p.Resolve(policyTools())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, auth.ErrInvalidPolicy) {
					t.Fatalf("err=%v, want an ErrInvalidPolicy containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Enabled(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Enabled()=%v, want %v", got, tc.want)
			}
			if len(res.Warnings) != len(tc.warnings) {
				t.Fatalf("Warnings=%q, want %d", res.Warnings, len(tc.warnings))
			}
			for i, w := range tc.warnings {
				if !strings.Contains(res.Warnings[i], w) {
					t.Fatalf("Warnings[%d]=%q, want it to contain %q", i, res.Warnings[i], w)
				}
			}
			if len(res.Tools) != len(policyTools()) {
				t.Fatalf("Tools has %d entries, want every available tool (%d)", len(res.Tools), len(policyTools()))
			}
		})
	}
}

func TestPolicy_ResolveDoesNotAlias(t *testing.T) {
	p := MustParsePolicy(t, "[tools.override.todo_list]\nscopes = [\"todo:read\", \"extra:x\"]\n")
	avail := policyTools()
	res, err := p.Resolve(avail)
	if err != nil {
		t.Fatal(err)
	}
	res.Enabled()["todo_list"].Scopes[0] = "mutated"
	res.Tools[0].Requirement.Scopes = append(res.Tools[0].Requirement.Scopes, "x")
	if got := p.Overrides["todo_list"].Scopes[0]; got != "todo:read" {
		t.Fatalf("policy changed through the resolution: %q", got)
	}
	if got := avail["todo_list"].Scopes; !slices.Equal(got, []string{"todo:read"}) {
		t.Fatalf("input changed: %q", got)
	}
}

func TestPolicy_HostProfile(t *testing.T) {
	p := MustParsePolicy(t, "[hosts.claude]\nscopes = [\"todo:read\"]\n\n[hosts.ci]\nroles = [\"admin\"]\n\n[hosts.deploy]\nscopes = [\"files:write\"]\n")
	stored := &auth.HostProfile{Name: "claude", Scopes: []string{"todo:read", "todo:write"}, Roles: []string{"admin"}, Keyring: true}
	storedCI := &auth.HostProfile{Name: "ci", Scopes: []string{"todo:write"}, Roles: []string{}, Keyring: true}
	other := &auth.HostProfile{Name: "other", Scopes: []string{"todo:read"}}
	for _, tc := range []struct {
		name       string
		policy     *auth.Policy
		profile    string
		stored     *auth.HostProfile
		want       *auth.HostProfile
		fromPolicy bool
	}{
		{"NilPolicy", nil, "claude", stored, stored, false},
		{"NotInPolicy", p, "other", other, other, false},
		{"NeitherStoredNorPolicy", p, "nobody", nil, nil, false},
		{"PolicyScopesReplaceStored", p, "claude", stored,
			&auth.HostProfile{Name: "claude", Scopes: []string{"todo:read"}, Roles: []string{"admin"}, Keyring: true}, true},
		{"PolicyRolesReplaceStored", p, "ci", storedCI,
			&auth.HostProfile{Name: "ci", Scopes: []string{"todo:write"}, Roles: []string{"admin"}, Keyring: true}, true},
		{"PolicyOnlyProfileHasNoKeyring", p, "deploy", nil,
			&auth.HostProfile{Name: "deploy", Scopes: []string{"files:write"}, Roles: []string{}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, from := tc.policy.HostProfile(tc.profile, tc.stored)
			if from != tc.fromPolicy {
				t.Fatalf("fromPolicy=%v, want %v", from, tc.fromPolicy)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("HostProfile=%#v, want %#v", got, tc.want)
			}
		})
	}
	if !slices.Equal(stored.Scopes, []string{"todo:read", "todo:write"}) {
		t.Fatalf("stored profile was modified: %q", stored.Scopes)
	}
}

// FuzzParsePolicy feeds arbitrary bytes to the parser: it must not panic,
// must fail only with a located *PolicyError, and what it accepts must be
// usable by Resolve.
func FuzzParsePolicy(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "policy", "*.toml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("[tools.override.\"a,b\"]\nscopes=[\"x\"]\n"))
	f.Add([]byte("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r = 1\n"))
	f.Add([]byte("[[hosts]]\nscopes = []\n"))
	f.Add([]byte("tools = { override = { x = { scopes = [\"a\"] } } }\n"))
	f.Add([]byte("[hosts.ci]\nscopes = [\"\\u0000\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := auth.ParsePolicy("fuzz.toml", data)
		if err != nil {
			var pe *auth.PolicyError
			if !errors.As(err, &pe) || pe.File != "fuzz.toml" || !errors.Is(err, auth.ErrInvalidPolicy) {
				t.Fatalf("err=%#v, want a *PolicyError for fuzz.toml", err)
			}
			if lines := strings.Count(string(data), "\n") + 1; pe.Line < 0 || pe.Line > lines {
				t.Fatalf("Line=%d outside the %d-line input", pe.Line, lines)
			}
			return
		}
		for _, ov := range p.Overrides {
			for _, s := range ov.Scopes {
				if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
					t.Fatalf("accepted invalid scope %q", s)
				}
			}
		}
		avail := policyTools()
		for name := range p.Overrides {
			avail[name] = auth.Requirement{}
		}
		for _, name := range p.Enabled {
			avail[name] = auth.Requirement{}
		}
		res, err := p.Resolve(avail)
		if err != nil {
			t.Fatalf("Resolve of every named tool: %v", err)
		}
		if _, err := auth.NewAuthorizer(auth.AuthorizerConfig{Tools: res.Enabled()}); err != nil {
			t.Fatalf("a parsed policy makes an invalid authorizer: %v", err)
		}
	})
}

func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", ""},
		{"0.0.0.0/0", ""},
		{"::/0", ""},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"::ffff:0.0.0.0/80", ""},
		{"192.0.2.1", "192.0.2.1/32"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"proxy.internal", ""},
		{"10.0.0.0/33", ""},
		{"fe80::1%eth0", ""},
		{"", ""},
	} {
		p, err := auth.ParsePrefix(tc.in)
		if got := p.String(); (err == nil) != (tc.want != "") || (err == nil && got != tc.want) {
			t.Errorf("ParsePrefix(%q) = %s, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
