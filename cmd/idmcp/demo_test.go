package main_test

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/tools"
)

// demoJSON is the part of `idmcp demo --json` the test reads.
type demoJSON struct {
	Personas []struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
		Roles  []string `json:"roles"`
	} `json:"personas"`
	Listed map[string][]string                          `json:"listed"`
	Matrix map[string]map[string]struct{ Allowed bool } `json:"matrix"`
	Verify string                                       `json:"verify"`
	HTTP   struct {
		Personas []struct {
			Name   string   `json:"name"`
			Scopes []string `json:"scopes"`
			Roles  []string `json:"roles"`
		} `json:"personas"`
		Listed    map[string][]string                          `json:"listed"`
		Matrix    map[string]map[string]struct{ Allowed bool } `json:"matrix"`
		Delegated map[string]any                               `json:"delegated"`
	} `json:"http"`
}

// builtinAuthorizer is the authorizer of the built-in tools, built from the
// tools' own declarations (the same construction the server uses), so the
// expectation follows the policy rather than a hand-copied table.
func builtinAuthorizer(t *testing.T) *auth.Authorizer {
	t.Helper()
	specs := append([]tools.Spec{tools.Whoami(func() tools.ServerInfo { return tools.ServerInfo{} })}, tools.Todos(nil)...)
	specs = append(specs, tools.Files(nil)...)
	specs = append(specs, tools.AuditQuery(tools.AuditQueryConfig{}))
	a, err := tools.NewAuthorizer(specs)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDemo_MatrixFollowsPolicy(t *testing.T) {
	out := mustIdmcp(t, nil, "demo", "--json")
	var rep demoJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("demo --json: %v\n%s", err, out)
	}
	check := func(a *auth.Authorizer, era, name string, p *auth.Principal, listed []string, row map[string]struct{ Allowed bool }, authenticated bool) {
		if len(row) == 0 {
			t.Errorf("%s %s: no calls in the matrix", era, name)
		}
		for tool, cell := range row {
			if want := authenticated && a.Decide(p, tool).Allow; cell.Allowed != want {
				t.Errorf("%s %s × %s: allowed=%v, policy says %v", era, name, tool, cell.Allowed, want)
			}
		}
		var want []string
		if authenticated {
			want = a.Visible(p)
		}
		got := slices.Sorted(slices.Values(listed))
		if !slices.Equal(got, want) {
			t.Errorf("%s %s: tools/list %v, policy says %v", era, name, got, want)
		}
	}
	// The stdio demo serves whoami and the todo tools; the HTTP demo also
	// has a workspace (files_*) and audit_query.
	info := func() tools.ServerInfo { return tools.ServerInfo{} }
	stdioA, err := tools.NewAuthorizer(append([]tools.Spec{tools.Whoami(info)}, tools.Todos(nil)...))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Personas {
		check(stdioA, "stdio", p.Name, &auth.Principal{Scopes: p.Scopes, Roles: p.Roles}, rep.Listed[p.Name], rep.Matrix[p.Name], p.Name != "intruder")
	}
	if len(rep.HTTP.Personas) < 4 {
		t.Fatalf("HTTP personas: %d, want alice, bob, carol and a delegated one", len(rep.HTTP.Personas))
	}
	httpA := builtinAuthorizer(t)
	for _, p := range rep.HTTP.Personas {
		check(httpA, "http", p.Name, &auth.Principal{Scopes: p.Scopes, Roles: p.Roles}, rep.HTTP.Listed[p.Name], rep.HTTP.Matrix[p.Name], true)
	}
	d := rep.HTTP.Delegated
	if d["subject"] != "alice" || d["client_id"] != "sub-agent" {
		t.Errorf("delegated whoami: subject %v client %v, want alice through sub-agent", d["subject"], d["client_id"])
	}
	if actors, _ := json.Marshal(d["actors"]); string(actors) != `["sub-agent","agent"]` {
		t.Errorf("delegated actors %s, want [sub-agent agent]", actors)
	}
	if srv, _ := d["server"].(map[string]any); srv["dev_issuer"] != true {
		t.Errorf("whoami under --dev does not mark the dev issuer: server=%v", d["server"])
	}
	if len(rep.Verify) < 3 || rep.Verify[:3] != "ok:" {
		t.Errorf("audit verify after the demo: %q", rep.Verify)
	}
}

// TestDemo_NextPointsAtAKeptDir: the demo removes its temporary data dir
// when it ends, so its "Next" lines must not send the user there; they say
// how to keep one with --keep.
func TestDemo_NextPointsAtAKeptDir(t *testing.T) {
	out := mustIdmcp(t, nil, "demo")
	m := regexp.MustCompile(`(?m)^data dir: (\S+) \(temporary`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no temporary data dir line:\n%s", out)
	}
	if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the demo's data dir %s is still there (err %v)", m[1], err)
	}
	next := out[strings.LastIndex(out, "\nNext"):]
	if strings.Contains(next, m[1]) || !strings.Contains(next, "demo --keep") {
		t.Errorf("Next lines point at the removed dir or lack --keep:\n%s", next)
	}
}
