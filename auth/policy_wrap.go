package auth

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/BurntSushi/toml"
)

// wrapFile is the [wrap] section's TOML schema.
type wrapFile struct {
	AllowSampling    bool                    `toml:"allow_sampling"`
	AllowElicitation bool                    `toml:"allow_elicitation"`
	AllowRoots       bool                    `toml:"allow_roots"`
	Methods          []string                `toml:"methods"`
	Restart          int                     `toml:"restart"`
	Tools            map[string]wrapRuleFile `toml:"tools"`
	Prompts          map[string]wrapRuleFile `toml:"prompts"`
	Resources        map[string]wrapRuleFile `toml:"resources"`
	Sandbox          *wrapSandboxFile        `toml:"sandbox"`
	Env              map[string]*wrapEnvFile `toml:"env"`
}

type wrapRuleFile struct {
	Scopes []string `toml:"scopes"`
	Roles  []string `toml:"roles"`
	Deny   bool     `toml:"deny"`
}

type wrapSandboxFile struct {
	Read    []string `toml:"read"`
	Write   []string `toml:"write"`
	Exec    []string `toml:"exec"`
	Connect []string `toml:"connect"`
}

// wrapEnvFile is a [wrap.env] value: "plain" or { keyring = "name" }.
type wrapEnvFile struct {
	Value   string
	Keyring string `toml:"keyring"`
	isTable bool
}

// UnmarshalTOML accepts a string or a table with one key, keyring.
func (e *wrapEnvFile) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		e.Value = v
		return nil
	case map[string]any:
		e.isTable = true
		k, ok := v["keyring"].(string)
		if !ok {
			return fmt.Errorf("a [wrap.env] table needs keyring = \"NAME\"")
		}
		e.Keyring = k
		return nil
	}
	return fmt.Errorf("a [wrap.env] value is a string or { keyring = \"NAME\" }, not %T", v)
}

// MaxWrapRestart bounds [wrap] restart.
const MaxWrapRestart = 10

var (
	envNameRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	secretNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	wrapMethodRE   = regexp.MustCompile(`^[A-Za-z0-9_./-]{1,128}$`)
	reservedEnvVar = []string{"PATH", "HOME", "LANG"}
)

// ValidateSecretName checks a keyring secret name (idmcp secret set NAME,
// [wrap.env] X = { keyring = "NAME" }).
func ValidateSecretName(name string) error {
	if !secretNameRE.MatchString(name) {
		return fmt.Errorf("secret name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit: %w", name, ErrInvalidConfig)
	}
	return nil
}

func (p *Policy) parseWrap(wf *wrapFile) (*WrapPolicy, error) {
	w := &WrapPolicy{AllowSampling: wf.AllowSampling, AllowElicitation: wf.AllowElicitation, AllowRoots: wf.AllowRoots}
	if wf.Restart < 0 || wf.Restart > MaxWrapRestart {
		return nil, p.errorf(toml.Key{"wrap", "restart"}, "restart is 0-%d, got %d", MaxWrapRestart, wf.Restart)
	}
	w.Restart = wf.Restart
	for _, m := range wf.Methods {
		if !wrapMethodRE.MatchString(m) {
			return nil, p.errorf(toml.Key{"wrap", "methods"}, "method %q: letters, digits and _ . / - only", m)
		}
	}
	w.Methods = slices.Clone(wf.Methods)
	for _, l := range []struct {
		key  string
		in   map[string]wrapRuleFile
		out  *[]WrapRule
		uris bool
	}{{"tools", wf.Tools, &w.Tools, false}, {"prompts", wf.Prompts, &w.Prompts, false}, {"resources", wf.Resources, &w.Resources, true}} {
		for _, name := range sortedKeys(l.in) {
			r := l.in[name]
			key := toml.Key{"wrap", l.key, name}
			switch {
			case l.uris && (name == "" || len(name) > 2048 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' })):
				return nil, p.errorf(key, "a resource rule is a URI prefix without spaces (\"file:///data/\", \"\" is not allowed; use the scheme, e.g. \"demo://\")")
			case !l.uris && (name == "" || len(name) > 128 || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) })):
				return nil, p.errorf(key, "a %s rule is a name or a pattern with '*': 1-128 printable characters", strings.TrimSuffix(l.key, "s"))
			}
			if err := p.checkGrant(key, grantFile{Scopes: r.Scopes, Roles: r.Roles}); err != nil {
				return nil, err
			}
			if r.Deny && (len(r.Scopes) > 0 || len(r.Roles) > 0) {
				p.warnf(key, "deny = true refuses everyone; its scopes and roles are ignored")
			}
			if !r.Deny && r.Scopes == nil && r.Roles == nil {
				p.warnf(key, "no scopes or roles: every authenticated caller may use it")
			}
			*l.out = append(*l.out, WrapRule{Pattern: name, Requirement: Requirement{Scopes: slices.Clone(r.Scopes), Roles: slices.Clone(r.Roles)}, Deny: r.Deny})
		}
	}
	if s := wf.Sandbox; s != nil {
		for _, l := range []struct {
			key string
			in  []string
			out *[]string
		}{{"read", s.Read, &w.Sandbox.Read}, {"write", s.Write, &w.Sandbox.Write}, {"exec", s.Exec, &w.Sandbox.Exec}} {
			if l.in == nil {
				continue
			}
			*l.out = []string{}
			for _, path := range l.in {
				if !filepath.IsAbs(path) {
					return nil, p.errorf(toml.Key{"wrap", "sandbox", l.key}, "%q is not an absolute path", path)
				}
				*l.out = append(*l.out, filepath.Clean(path))
			}
		}
		for _, c := range s.Connect {
			host, port, err := net.SplitHostPort(c)
			n, perr := strconv.ParseUint(port, 10, 16)
			if err != nil || host == "" || perr != nil || n == 0 {
				return nil, p.errorf(toml.Key{"wrap", "sandbox", "connect"}, "%q is not host:port with a port 1-65535 (e.g. \"api.github.com:443\")", c)
			}
		}
		w.Sandbox.Connect = slices.Clone(s.Connect)
	}
	for _, name := range sortedKeys(wf.Env) {
		e := wf.Env[name]
		key := toml.Key{"wrap", "env", name}
		if !envNameRE.MatchString(name) {
			return nil, p.errorf(key, "an environment variable name is letters, digits and '_', not starting with a digit")
		}
		if slices.Contains(reservedEnvVar, name) || strings.HasPrefix(name, "IDMCP_") || name == "LD_PRELOAD" || name == "LD_LIBRARY_PATH" {
			return nil, p.errorf(key, "%s is set by idmcp wrap (PATH, HOME, LANG) or not allowed (IDMCP_*, LD_PRELOAD, LD_LIBRARY_PATH)", name)
		}
		if e == nil {
			continue
		}
		if e.isTable {
			if err := ValidateSecretName(e.Keyring); err != nil {
				return nil, p.errorf(key, "keyring: %v", err)
			}
		} else if strings.ContainsRune(e.Value, 0) {
			return nil, p.errorf(key, "value contains a NUL byte")
		}
		w.Env = append(w.Env, WrapEnv{Name: name, Value: e.Value, Keyring: e.Keyring})
	}
	return w, nil
}
