package auth

import (
	"fmt"
	"slices"
	"strings"
)

// WrapPolicy is the [wrap] section of a policy: what callers of a wrapped
// MCP server (idmcp wrap -- CMD) may reach of it, and how the wrapped
// server's process is confined. The zero value hides every tool, prompt and
// resource and refuses every request the child makes of the host.
type WrapPolicy struct {
	// Tools are rules by tool name ([wrap.tools]); keys are exact names or
	// simple patterns where '*' matches any run of characters ("write_*",
	// "*" for every tool the policy does not name otherwise).
	Tools []WrapRule
	// Prompts are rules by prompt name ([wrap.prompts]), same patterns.
	Prompts []WrapRule
	// Resources are rules by URI prefix ([wrap.resources]); the longest
	// matching prefix decides.
	Resources []WrapRule
	// AllowSampling lets the child ask the host's model
	// (sampling/createMessage); AllowElicitation lets it ask the user
	// (elicitation/create); AllowRoots lets it read the host's roots
	// (roots/list). Each request is audited either way.
	AllowSampling, AllowElicitation, AllowRoots bool
	// Methods are extra JSON-RPC methods the host may send to the child
	// unchanged ([wrap] methods): an unknown method is not a free pass.
	Methods []string
	// Restart is how many times a child that exits is started again
	// ([wrap] restart); 0 ends the session when the child exits.
	Restart int
	// Sandbox is the child's confinement ([wrap.sandbox]).
	Sandbox WrapSandbox
	// Env is the child's environment beyond PATH, HOME and LANG
	// ([wrap.env]).
	Env []WrapEnv
}

// WrapRule is one entry of [wrap.tools], [wrap.prompts] or [wrap.resources].
type WrapRule struct {
	// Pattern is the name, pattern or URI prefix the rule is about.
	Pattern string
	// Requirement is what the caller needs; empty means any authenticated
	// caller.
	Requirement Requirement
	// Deny hides and refuses what the rule matches, for everyone.
	Deny bool
}

// WrapSandbox is [wrap.sandbox]: paths granted to the child (with
// everything beneath them) and the TCP destinations it may connect to.
type WrapSandbox struct {
	// Read, Write and Exec are absolute paths; nil means the defaults
	// (see the sandbox package), an empty list nothing.
	Read, Write, Exec []string
	// Connect lists "host:port" destinations; Landlock enforces the port only.
	Connect []string
}

// WrapEnv is one variable of the child's environment: a plain value, or
// the name of a secret in the OS keyring (idmcp secret set NAME).
type WrapEnv struct {
	Name    string
	Value   string
	Keyring string
}

// kind names what a rule list is about, for messages.
type wrapKind string

const (
	wrapTool     wrapKind = "tool"
	wrapPrompt   wrapKind = "prompt"
	wrapResource wrapKind = "resource"
)

// DecideTool says whether p may see and call the wrapped server's tool name.
func (w *WrapPolicy) DecideTool(p *Principal, name string) Decision {
	return w.decide(p, wrapTool, name)
}

// DecidePrompt says whether p may see and get the prompt name.
func (w *WrapPolicy) DecidePrompt(p *Principal, name string) Decision {
	return w.decide(p, wrapPrompt, name)
}

// DecideResource says whether p may see, read or subscribe to uri.
func (w *WrapPolicy) DecideResource(p *Principal, uri string) Decision {
	return w.decide(p, wrapResource, uri)
}

// decide finds the rule for name and applies it. Denials carry a typed
// *Error like the built-in tools' (KindNotFound for names the policy does
// not grant, so a caller cannot tell hidden from absent).
func (w *WrapPolicy) decide(p *Principal, kind wrapKind, name string) Decision {
	var rules []WrapRule
	if w != nil {
		switch kind {
		case wrapTool:
			rules = w.Tools
		case wrapPrompt:
			rules = w.Prompts
		case wrapResource:
			rules = w.Resources
		}
	}
	r, ok := matchRule(rules, kind, name)
	if !ok || r.Deny {
		reason := fmt.Sprintf("%s not granted by [wrap.%ss]", kind, kind)
		if ok {
			reason = fmt.Sprintf("%s denied by [wrap.%ss] %q", kind, kind, r.Pattern)
		}
		e := NotFound(name)
		if kind != wrapTool {
			e.Msg = string(kind) + " not found"
		}
		return Decision{Reason: reason, Err: e}
	}
	if p == nil {
		return Decision{Reason: "unauthenticated", Err: Unauthenticated("no principal")}
	}
	req := r.Requirement
	if missing := req.Missing(p); len(missing) > 0 {
		e := InsufficientScope(name, missing, req.Scopes)
		if kind != wrapTool {
			e.Msg = fmt.Sprintf("forbidden: %s %q requires scope %s; missing: %s", kind, name, strings.Join(req.Scopes, " "), strings.Join(missing, " "))
		}
		return Decision{Reason: "missing scope " + strings.Join(missing, " "), Err: e}
	}
	if len(req.Roles) > 0 && !slices.ContainsFunc(req.Roles, p.HasRole) {
		e := MissingRole(name, req.Roles)
		if kind != wrapTool {
			e.Msg = fmt.Sprintf("forbidden: %s %q requires role %s", kind, name, strings.Join(req.Roles, " or "))
		}
		return Decision{Reason: "missing role " + strings.Join(req.Roles, "|"), Err: e}
	}
	return Decision{Allow: true, Reason: "allowed by [wrap." + string(kind) + "s] " + fmt.Sprintf("%q", r.Pattern)}
}

// matchRule returns the rule that decides name. Resources: the longest
// prefix. Names: an exact entry first, else the matching pattern with the
// most literal characters (so "write_*" beats "*"), ties broken by the
// pattern's text so the result never depends on file order.
func matchRule(rules []WrapRule, kind wrapKind, name string) (WrapRule, bool) {
	best, bestScore, found := WrapRule{}, -1, false
	for _, r := range rules {
		var score int
		switch {
		case kind == wrapResource:
			if !strings.HasPrefix(name, r.Pattern) {
				continue
			}
			score = len(r.Pattern)
		case r.Pattern == name:
			return r, true
		case strings.Contains(r.Pattern, "*") && globMatch(r.Pattern, name):
			score = len(r.Pattern) - strings.Count(r.Pattern, "*")
		default:
			continue
		}
		if score > bestScore || (score == bestScore && r.Pattern < best.Pattern) {
			best, bestScore, found = r, score, true
		}
	}
	return best, found
}

// globMatch reports whether name matches pattern, where '*' matches any run
// of characters (including none) and everything else matches itself.
func globMatch(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(name, mid)
		if i < 0 {
			return false
		}
		name = name[i+len(mid):]
	}
	return len(name) >= len(last) && strings.HasSuffix(name, last)
}

// ToolRule returns the [wrap.tools] rule that decides name, if any (for
// idmcp policy check -- CMD).
func (w *WrapPolicy) ToolRule(name string) (WrapRule, bool) {
	if w == nil {
		return WrapRule{}, false
	}
	return matchRule(w.Tools, wrapTool, name)
}
