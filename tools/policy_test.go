package tools_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/tools"
)

// allBuiltins is every built-in tool, built without backing stores (the
// handlers are not called here).
func allBuiltins() []tools.Spec {
	specs := append([]tools.Spec{tools.Whoami(nil)}, tools.Todos(nil)...)
	specs = append(specs, tools.AuditQuery(tools.AuditQueryConfig{}))
	return append(specs, tools.Files(nil)...)
}

func TestApplyPolicy(t *testing.T) {
	p, err := auth.ParsePolicy("p.toml", []byte(`
[tools]
enabled = ["todo_delete", "whoami", "files_write"]

[tools.override.todo_delete]
roles = ["owner"]

[tools.override.files_write]
scopes = ["files:read", "files:write"]
`))
	if err != nil {
		t.Fatal(err)
	}
	in := allBuiltins()
	specs, res, err := tools.ApplyPolicy(p, in)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	if want := []string{"whoami", "todo_delete", "files_write"}; !slices.Equal(names, want) {
		t.Fatalf("enabled=%q, want %q (declaration order)", names, want)
	}
	if got := specs[1]; !slices.Equal(got.Roles, []string{"owner"}) || !slices.Equal(got.Scopes, []string{"todo:write"}) {
		t.Fatalf("todo_delete scopes=%q roles=%q, want todo:write / owner", got.Scopes, got.Roles)
	}
	if got := specs[2].Scopes; !slices.Equal(got, []string{"files:read", "files:write"}) {
		t.Fatalf("files_write scopes=%q", got)
	}
	if !specs[2].Destructive || specs[2].Handler == nil {
		t.Fatal("ApplyPolicy lost the spec's other fields")
	}
	specs[1].Roles[0] = "mutated"
	for _, s := range in {
		if s.Name == "todo_delete" && !slices.Equal(s.Roles, []string{"admin"}) {
			t.Fatalf("input spec changed: %q", s.Roles)
		}
	}
	if len(res.Tools) != len(in) || len(res.Warnings) != 0 {
		t.Fatalf("resolution has %d tools and warnings %q", len(res.Tools), res.Warnings)
	}
	a, err := tools.NewAuthorizer(specs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Tools(), []string{"files_write", "todo_delete", "whoami"}; !slices.Equal(got, want) {
		t.Fatalf("authorizer tools=%q, want %q", got, want)
	}
}

func TestApplyPolicy_Errors(t *testing.T) {
	if _, _, err := tools.ApplyPolicy(nil, append(allBuiltins(), tools.Whoami(nil))); err == nil || !strings.Contains(err.Error(), `"whoami" is declared twice`) {
		t.Fatalf("duplicate: err=%v", err)
	}
	p, _ := auth.ParsePolicy("p.toml", []byte("[tools]\nenabled = [\"deploy\"]\n"))
	if _, _, err := tools.ApplyPolicy(p, allBuiltins()); err == nil || !strings.Contains(err.Error(), `p.toml:2: tools.enabled: no tool named "deploy"`) {
		t.Fatalf("unknown tool: err=%v", err)
	}
}

// TestBuiltins_Declarations checks what hosts show users: annotations that
// match what each tool does, and a description on every input property.
func TestBuiltins_Declarations(t *testing.T) {
	type ann struct{ readOnly, destructive, idempotent bool }
	want := map[string]struct {
		ann    ann
		scopes []string
		roles  []string
	}{
		"whoami":        {ann{true, false, true}, nil, nil},
		"todo_list":     {ann{true, false, true}, []string{"todo:read"}, nil},
		"todo_create":   {ann{false, false, false}, []string{"todo:write"}, nil},
		"todo_complete": {ann{false, false, true}, []string{"todo:write"}, nil},
		"todo_delete":   {ann{false, true, true}, []string{"todo:write"}, []string{"admin"}},
		"audit_query":   {ann{true, false, true}, []string{"audit:read"}, nil},
		"files_list":    {ann{true, false, true}, []string{"files:read"}, nil},
		"files_read":    {ann{true, false, true}, []string{"files:read"}, nil},
		"files_search":  {ann{true, false, true}, []string{"files:read"}, nil},
		"files_write":   {ann{false, true, true}, []string{"files:write"}, nil},
	}
	specs := allBuiltins()
	if len(specs) != len(want) {
		t.Fatalf("%d built-ins, want %d", len(specs), len(want))
	}
	for _, s := range specs {
		t.Run(s.Name, func(t *testing.T) {
			w, ok := want[s.Name]
			if !ok {
				t.Fatalf("unexpected tool %q", s.Name)
			}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := (ann{s.ReadOnly, s.Destructive, s.Idempotent}); got != w.ann {
				t.Fatalf("annotations=%+v, want %+v", got, w.ann)
			}
			if s.ReadOnly && s.Destructive {
				t.Fatal("read-only and destructive")
			}
			if !slices.Equal(s.Scopes, w.scopes) || !slices.Equal(s.Roles, w.roles) {
				t.Fatalf("requires %q / %q, want %q / %q", s.Scopes, s.Roles, w.scopes, w.roles)
			}
			var schema struct {
				Type       string                     `json:"type"`
				Properties map[string]json.RawMessage `json:"properties"`
				Required   []string                   `json:"required"`
				Additional *bool                      `json:"additionalProperties"`
			}
			if err := json.Unmarshal(s.InputSchema, &schema); err != nil {
				t.Fatal(err)
			}
			if schema.Additional == nil || *schema.Additional {
				t.Fatal("schema must set additionalProperties: false (arguments are decoded strictly)")
			}
			for name, raw := range schema.Properties {
				var prop struct {
					Description string `json:"description"`
				}
				if err := json.Unmarshal(raw, &prop); err != nil || len(prop.Description) < 10 {
					t.Fatalf("property %q has no description (%v)", name, err)
				}
			}
			for _, r := range schema.Required {
				if _, ok := schema.Properties[r]; !ok {
					t.Fatalf("required %q is not a property", r)
				}
			}
		})
	}
}
