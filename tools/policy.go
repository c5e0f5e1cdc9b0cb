package tools

import (
	"fmt"
	"slices"

	"github.com/idmcp/idmcp/auth"
)

// ApplyPolicy returns the specs that policy p enables, in their original
// order, each with the requirement the policy gives it, and the resolution
// (every tool's fate and the policy's warnings) for display. A nil policy
// enables every spec unchanged. It fails when two specs share a name or the
// policy names a tool that is not among specs. The input is not modified.
func ApplyPolicy(p *auth.Policy, specs []Spec) ([]Spec, *auth.Resolution, error) {
	available := make(map[string]auth.Requirement, len(specs))
	for _, s := range specs {
		if _, dup := available[s.Name]; dup {
			return nil, nil, fmt.Errorf("tool %q is declared twice", s.Name)
		}
		available[s.Name] = s.Requirement()
	}
	res, err := p.Resolve(available)
	if err != nil {
		return nil, nil, err
	}
	enabled := res.Enabled()
	out := make([]Spec, 0, len(enabled))
	for _, s := range specs {
		r, ok := enabled[s.Name]
		if !ok {
			continue
		}
		s.Scopes, s.Roles = slices.Clone(r.Scopes), slices.Clone(r.Roles)
		out = append(out, s)
	}
	return out, res, nil
}

// NewAuthorizer returns the authorizer that knows exactly specs, each with
// its declared requirement (apply a policy first with ApplyPolicy).
func NewAuthorizer(specs []Spec) (*auth.Authorizer, error) {
	reqs := make(map[string]auth.Requirement, len(specs))
	for _, s := range specs {
		if _, dup := reqs[s.Name]; dup {
			return nil, fmt.Errorf("tool %q is declared twice: %w", s.Name, auth.ErrInvalidConfig)
		}
		reqs[s.Name] = s.Requirement()
	}
	return auth.NewAuthorizer(auth.AuthorizerConfig{Tools: reqs})
}
