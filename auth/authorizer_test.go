package auth_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/idmcp/idmcp/auth"
)

func builtinAuthorizer(t *testing.T) *auth.Authorizer {
	t.Helper()
	a, err := auth.NewAuthorizer(auth.AuthorizerConfig{Tools: map[string]auth.Requirement{
		"whoami":        {},
		"todo_list":     {Scopes: []string{"todo:read"}},
		"todo_create":   {Scopes: []string{"todo:write"}},
		"todo_delete":   {Scopes: []string{"todo:write"}, Roles: []string{"admin"}},
		"files_write":   {Scopes: []string{"files:read", "files:write"}},
		"release_build": {Roles: []string{"admin", "release"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAuthorizer_Decide(t *testing.T) {
	a := builtinAuthorizer(t)
	readOnly := &auth.Principal{Scopes: []string{"todo:read", "files:read"}}
	full := &auth.Principal{Scopes: []string{"todo:read", "todo:write", "files:read", "files:write"}, Roles: []string{"admin"}}
	writer := &auth.Principal{Scopes: []string{"todo:read", "todo:write"}}
	none := &auth.Principal{}
	release := &auth.Principal{Roles: []string{"release"}}
	tests := []struct {
		name    string
		p       *auth.Principal
		tool    string
		kind    auth.Kind // 0 = allow
		missing []string
		msg     string
	}{
		{"ReadOnly/whoami", readOnly, "whoami", 0, nil, ""},
		{"ReadOnly/todo_list", readOnly, "todo_list", 0, nil, ""},
		{"ReadOnly/todo_create", readOnly, "todo_create", auth.KindInsufficientScope, []string{"todo:write"}, "missing: todo:write"},
		{"ReadOnly/files_write", readOnly, "files_write", auth.KindInsufficientScope, []string{"files:write"}, "requires scope files:read files:write; missing: files:write"},
		{"Full/todo_delete", full, "todo_delete", 0, nil, ""},
		{"Full/files_write", full, "files_write", 0, nil, ""},
		{"Writer/todo_create", writer, "todo_create", 0, nil, ""},
		{"Writer/todo_delete", writer, "todo_delete", auth.KindMissingRole, nil, `tool "todo_delete" requires role admin`},
		{"None/todo_list", none, "todo_list", auth.KindInsufficientScope, []string{"todo:read"}, "missing: todo:read"},
		// Scopes are checked first: a new token can fix them, a role it cannot.
		{"None/todo_delete", none, "todo_delete", auth.KindInsufficientScope, []string{"todo:write"}, "missing: todo:write"},
		{"None/whoami", none, "whoami", 0, nil, ""},
		{"AnyOfRoles/release", release, "release_build", 0, nil, ""},
		{"AnyOfRoles/writer", writer, "release_build", auth.KindMissingRole, nil, "requires role admin or release"},
		{"Unknown", full, "rm_rf", auth.KindNotFound, nil, "tool not found"},
		{"NilPrincipal", nil, "whoami", auth.KindUnauthenticated, nil, "authentication failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := a.Decide(tc.p, tc.tool)
			if tc.kind == 0 {
				if !d.Allow || d.Err != nil {
					t.Fatalf("Decide = %+v, want allow", d)
				}
				return
			}
			if d.Allow {
				t.Fatalf("allowed, want %v", tc.kind)
			}
			if got := auth.KindOf(d.Err); got != tc.kind {
				t.Fatalf("kind %v, want %v", got, tc.kind)
			}
			var ae *auth.Error
			if !errors.As(d.Err, &ae) || !slices.Equal(ae.Scopes, tc.missing) {
				t.Fatalf("missing scopes %v, want %v", ae.Scopes, tc.missing)
			}
			if !strings.Contains(d.Err.Error(), tc.msg) {
				t.Fatalf("message %q, want it to contain %q", d.Err.Error(), tc.msg)
			}
		})
	}
}

func TestAuthorizer_VisibleEqualsAllowed(t *testing.T) {
	a := builtinAuthorizer(t)
	for _, p := range []*auth.Principal{
		{}, {Scopes: []string{"todo:read"}}, {Scopes: []string{"todo:write"}, Roles: []string{"admin"}}, {Roles: []string{"release"}},
	} {
		var allowed []string
		for _, name := range a.Tools() {
			if a.Decide(p, name).Allow {
				allowed = append(allowed, name)
			}
		}
		if got := a.Visible(p); !slices.Equal(got, allowed) {
			t.Errorf("Visible(%v) = %v, want %v", p.Scopes, got, allowed)
		}
	}
}

func TestAuthorizerConfig_Validate(t *testing.T) {
	for name, reqs := range map[string]map[string]auth.Requirement{
		"EmptyName":  {"": {}},
		"SpaceScope": {"x": {Scopes: []string{"a b"}}},
		"EmptyRole":  {"x": {Roles: []string{""}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := auth.NewAuthorizer(auth.AuthorizerConfig{Tools: reqs}); !errors.Is(err, auth.ErrInvalidConfig) {
				t.Fatalf("err %v, want ErrInvalidConfig", err)
			}
		})
	}
}
