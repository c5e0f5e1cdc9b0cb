package auth

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Requirement is what a tool demands of its caller: every scope in Scopes,
// and, when Roles is not empty, at least one of Roles.
type Requirement struct {
	Scopes []string `json:"scopes"`
	Roles  []string `json:"roles"`
}

// Missing returns the scopes of r that p lacks, in r's order.
func (r Requirement) Missing(p *Principal) []string {
	var missing []string
	for _, s := range r.Scopes {
		if !p.HasScope(s) {
			missing = append(missing, s)
		}
	}
	return missing
}

// Decision is the outcome of one authorization check.
type Decision struct {
	// Allow is true when the call may proceed.
	Allow bool
	// Reason is a short, caller-safe explanation ("allowed", "missing scope todo:write").
	Reason string
	// Err is the typed denial; nil when allowed.
	Err *Error
}

// AuthorizerConfig configures an Authorizer.
type AuthorizerConfig struct {
	// Tools maps each enabled tool to its requirement. A tool absent from the
	// map does not exist as far as callers can tell.
	Tools map[string]Requirement
}

// ErrInvalidConfig is wrapped by every configuration validation error.
var ErrInvalidConfig = errors.New("invalid config")

// Validate checks that every tool has a name and no requirement is malformed.
func (c AuthorizerConfig) Validate() error {
	for name, r := range c.Tools {
		if name == "" {
			return fmt.Errorf("field \"tools\": empty tool name: %w", ErrInvalidConfig)
		}
		for _, s := range r.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\n\"\\") {
				return fmt.Errorf("field \"tools.%s.scopes\": invalid scope %q: %w", name, s, ErrInvalidConfig)
			}
		}
		for _, role := range r.Roles {
			if role == "" || strings.ContainsAny(role, " \t\n\"\\") {
				return fmt.Errorf("field \"tools.%s.roles\": invalid role %q: %w", name, role, ErrInvalidConfig)
			}
		}
	}
	return nil
}

// Authorizer is the single decision point: stdio and HTTP call Decide for
// tools/call, and tools/list shows exactly the tools Decide allows.
type Authorizer struct {
	tools map[string]Requirement
	names []string
}

// NewAuthorizer returns an Authorizer for cfg.
func NewAuthorizer(cfg AuthorizerConfig) (*Authorizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authorizer{tools: make(map[string]Requirement, len(cfg.Tools))}
	for name, r := range cfg.Tools {
		a.tools[name] = Requirement{Scopes: slices.Clone(r.Scopes), Roles: slices.Clone(r.Roles)}
		a.names = append(a.names, name)
	}
	sort.Strings(a.names)
	return a, nil
}

// Decide says whether p may call tool. A nil principal is never allowed.
// Denials carry a typed *Error: KindNotFound for unknown or disabled tools,
// KindInsufficientScope naming the missing scopes, KindMissingRole naming the
// accepted roles. Scopes are checked before roles, since a new token can fix
// the former and not the latter.
func (a *Authorizer) Decide(p *Principal, tool string) Decision {
	r, ok := a.tools[tool]
	if !ok {
		e := NotFound(tool)
		return Decision{Reason: "tool not found or disabled", Err: e}
	}
	if p == nil {
		e := Unauthenticated("no principal")
		return Decision{Reason: "unauthenticated", Err: e}
	}
	if missing := r.Missing(p); len(missing) > 0 {
		e := InsufficientScope(tool, missing, r.Scopes)
		return Decision{Reason: "missing scope " + strings.Join(missing, " "), Err: e}
	}
	if len(r.Roles) > 0 && !slices.ContainsFunc(r.Roles, p.HasRole) {
		e := MissingRole(tool, r.Roles)
		return Decision{Reason: "missing role " + strings.Join(r.Roles, "|"), Err: e}
	}
	return Decision{Allow: true, Reason: "allowed"}
}

// Visible returns the names of the tools p may call, sorted.
func (a *Authorizer) Visible(p *Principal) []string {
	var out []string
	for _, name := range a.names {
		if a.Decide(p, name).Allow {
			out = append(out, name)
		}
	}
	return out
}

// Tools returns every enabled tool name, sorted.
func (a *Authorizer) Tools() []string { return slices.Clone(a.names) }

// Requirement returns the requirement of an enabled tool.
func (a *Authorizer) Requirement(tool string) (Requirement, bool) {
	r, ok := a.tools[tool]
	return r, ok
}

// Scopes returns every scope some enabled tool requires, sorted (RFC 9728
// scopes_supported).
func (a *Authorizer) Scopes() []string {
	var out []string
	for _, r := range a.tools {
		for _, s := range r.Scopes {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}
