package auth

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/BurntSushi/toml"
)

// Policy file limits and version.
const (
	// PolicyVersion is the only policy schema version this build understands.
	PolicyVersion = 1
	// MaxPolicyBytes bounds the size of a policy file.
	MaxPolicyBytes = 1 << 20
	// maxTokenLen bounds a scope, role or claim name.
	maxTokenLen = 256
)

// ErrInvalidPolicy is wrapped by every error about the contents of a policy
// file.
var ErrInvalidPolicy = errors.New("invalid policy")

// PolicyError is a problem in a policy file, located by file, line and key
// so that a reviewer can go straight to it.
type PolicyError struct {
	// File is the name the policy was parsed under.
	File string
	// Line is the 1-based line of Key (or of the syntax error); 0 when unknown.
	Line int
	// Key is the dotted TOML key the problem is about; empty for syntax errors.
	Key string
	// Msg says what is wrong and, where possible, what would be right.
	Msg string
	// Err is the underlying cause (a toml.ParseError), if any.
	Err error
}

// Error formats the error as "file:line: key: reason".
func (e *PolicyError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns ErrInvalidPolicy and the underlying cause.
func (e *PolicyError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidPolicy, e.Err}
	}
	return []error{ErrInvalidPolicy}
}

// Policy is a parsed, validated policy file: which tools are enabled, what
// they require, how JWT claims map to scopes and roles, host profile grants,
// extra audit redaction keys and HTTP settings. A nil *Policy is the default
// policy: every available tool enabled with its own requirement.
//
// The policy knows tools only by name; Resolve applies it to the
// requirements a program's tools declare.
type Policy struct {
	// Name is the file the policy was read from, used in messages.
	Name string
	// Enabled is the allow-list of tool names ([tools] enabled); nil enables
	// every available tool, an empty list none.
	Enabled []string
	// Overrides replace the requirement of a tool ([tools.override.NAME]).
	Overrides map[string]ToolOverride
	// Claims says where a JWT's scopes and roles come from ([claims]); nil
	// when the file has none, so the JWT verifier's defaults apply.
	Claims *ClaimMapping
	// Hosts are grants for stdio host profiles ([hosts.NAME]); see HostProfile.
	Hosts map[string]HostGrant
	// RedactKeys are extra argument names whose values the audit log
	// redacts ([audit] redact_keys).
	RedactKeys []string
	// HTTP holds the [http] settings; nil when the file has none. The policy
	// only parses them; the command line applies them.
	HTTP *HTTPSettings
	// Wrap holds the [wrap] settings for idmcp wrap; nil when the file has
	// none (every tool of a wrapped server is then hidden).
	Wrap *WrapPolicy
	// Warnings are problems that do not stop the policy from working,
	// formatted like errors ("file:line: key: reason").
	Warnings []string

	data []byte
}

// ToolOverride replaces parts of a tool's requirement. A nil field keeps the
// tool's own value; an empty, non-nil one requires nothing.
type ToolOverride struct {
	Scopes []string
	Roles  []string
}

// HostGrant is what the policy grants a stdio host profile. A nil field keeps
// the value stored in hosts.json; a non-nil one replaces it.
type HostGrant struct {
	Scopes []string
	Roles  []string
}

// ClaimMapping says where a JWT carries scopes and roles. Each entry names a
// claim, or a dotted path into nested objects ("realm_access.roles"); a
// string claim holds space-separated values, an array claim one value per
// element. ScopePrefix, when set, is removed from the start of every scope
// (for providers that issue "https://api.example.com/todo:read").
// Nil slices mean "the verifier's default".
type ClaimMapping struct {
	ScopeClaims []string
	RoleClaims  []string
	ScopePrefix string
	// ClientClaims are where the agent (OAuth client) is: "client_id",
	// "azp", Okta's "cid", Entra v1's "appid"; the first present wins.
	ClientClaims []string
}

// policyFile is the TOML schema. Its tags are the only keys accepted.
type policyFile struct {
	Version int `toml:"version"`
	Tools   struct {
		Enabled  []string             `toml:"enabled"`
		Override map[string]grantFile `toml:"override"`
	} `toml:"tools"`
	Claims *struct {
		ScopeClaims  []string `toml:"scope_claims"`
		RoleClaims   []string `toml:"role_claims"`
		ScopePrefix  string   `toml:"scope_prefix"`
		ClientClaims []string `toml:"client_claims"`
	} `toml:"claims"`
	Hosts map[string]grantFile `toml:"hosts"`
	Audit struct {
		RedactKeys []string `toml:"redact_keys"`
	} `toml:"audit"`
	HTTP *httpFile `toml:"http"`
	Wrap *wrapFile `toml:"wrap"`
}

type grantFile struct {
	Scopes []string `toml:"scopes"`
	Roles  []string `toml:"roles"`
}

// LoadPolicy reads and parses the policy file at path.
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPolicyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("policy: read %s: %w", path, err)
	}
	return ParsePolicy(path, data)
}

// ParsePolicy parses a TOML policy. name is used in messages only. Every
// error is a *PolicyError wrapping ErrInvalidPolicy: syntax errors, keys the
// schema does not know, values of the wrong type or shape. Problems that do
// not make the policy unusable are returned in Policy.Warnings.
func ParsePolicy(name string, data []byte) (*Policy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, &PolicyError{File: name, Msg: fmt.Sprintf("file is larger than %d bytes", MaxPolicyBytes)}
	}
	var pf policyFile
	md, err := toml.Decode(string(data), &pf)
	if err != nil {
		return nil, decodeError(name, data, err)
	}
	p := &Policy{Name: name, data: data}
	if err := p.checkKeys(md); err != nil {
		return nil, err
	}
	if md.IsDefined("version") && pf.Version != PolicyVersion {
		return nil, p.errorf(toml.Key{"version"}, "unsupported version %d; this build understands version %d", pf.Version, PolicyVersion)
	}

	if pf.Tools.Enabled != nil {
		key := toml.Key{"tools", "enabled"}
		if err := p.checkList(key, pf.Tools.Enabled, validToolName, "tool name"); err != nil {
			return nil, err
		}
		p.Enabled = slices.Clone(pf.Tools.Enabled)
		if len(p.Enabled) == 0 {
			p.warnf(key, "no tool is enabled; every call will be refused")
		}
	}
	for _, tool := range sortedKeys(pf.Tools.Override) {
		g := pf.Tools.Override[tool]
		key := toml.Key{"tools", "override", tool}
		if err := validToolName(tool); err != nil {
			return nil, p.errorf(key, "%v", err)
		}
		if err := p.checkGrant(key, g); err != nil {
			return nil, err
		}
		if g.Scopes == nil && g.Roles == nil {
			p.warnf(key, "override changes nothing; set scopes and/or roles")
		}
		if p.Overrides == nil {
			p.Overrides = map[string]ToolOverride{}
		}
		p.Overrides[tool] = ToolOverride{Scopes: slices.Clone(g.Scopes), Roles: slices.Clone(g.Roles)}
	}
	for _, host := range sortedKeys(pf.Hosts) {
		g := pf.Hosts[host]
		key := toml.Key{"hosts", host}
		if err := ValidateProfileName(host); err != nil {
			return nil, p.errorf(key, "profile name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", host)
		}
		if err := p.checkGrant(key, g); err != nil {
			return nil, err
		}
		if p.Hosts == nil {
			p.Hosts = map[string]HostGrant{}
		}
		p.Hosts[host] = HostGrant{Scopes: slices.Clone(g.Scopes), Roles: slices.Clone(g.Roles)}
	}
	if c := pf.Claims; c != nil {
		for _, l := range []struct {
			key  string
			list []string
		}{{"scope_claims", c.ScopeClaims}, {"role_claims", c.RoleClaims}, {"client_claims", c.ClientClaims}} {
			if err := p.checkList(toml.Key{"claims", l.key}, l.list, validClaimPath, "claim"); err != nil {
				return nil, err
			}
		}
		if strings.ContainsFunc(c.ScopePrefix, unicode.IsSpace) || len(c.ScopePrefix) > maxTokenLen {
			return nil, p.errorf(toml.Key{"claims", "scope_prefix"}, "prefix %q must be at most %d bytes without spaces", c.ScopePrefix, maxTokenLen)
		}
		p.Claims = &ClaimMapping{ScopeClaims: slices.Clone(c.ScopeClaims), RoleClaims: slices.Clone(c.RoleClaims), ScopePrefix: c.ScopePrefix,
			ClientClaims: slices.Clone(c.ClientClaims)}
	}
	if err := p.checkList(toml.Key{"audit", "redact_keys"}, pf.Audit.RedactKeys, validRedactKey, "key"); err != nil {
		return nil, err
	}
	p.RedactKeys = slices.Clone(pf.Audit.RedactKeys)
	if h := pf.HTTP; h != nil {
		hs, err := p.parseHTTP(h)
		if err != nil {
			return nil, err
		}
		p.HTTP = hs
	}
	if pf.Wrap != nil {
		w, err := p.parseWrap(pf.Wrap)
		if err != nil {
			return nil, err
		}
		p.Wrap = w
	}
	return p, nil
}

// ParsePrefix parses a trusted proxy: a CIDR prefix ("10.0.0.0/8") or one
// address ("192.0.2.1", "2001:db8::1"). It refuses what would trust more
// than was meant: a prefix of length 0 (every client could then write its
// own X-Forwarded-For) and one with bits set past its length ("10.1.2.3/8":
// the network 10.0.0.0/8, or the address 10.1.2.3/32?). An IPv4-mapped
// prefix ("::ffff:10.0.0.0/104") is taken as the IPv4 one it maps.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix (e.g. 10.0.0.0/8)", s)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("%q mixes IPv6 and IPv4-mapped addresses; write the IPv4 prefix", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Bits() == 0 {
			return netip.Prefix{}, fmt.Errorf("%q would trust every address: any client could then name its own", s)
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("%q has bits set past its length: write %s for the network or %s for one address",
				s, p.Masked(), netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix (e.g. 10.0.0.0/8)", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ResolvedTool is one available tool after the policy was applied.
type ResolvedTool struct {
	Name string
	// Enabled is false when the allow-list leaves the tool out.
	Enabled bool
	// Requirement is what the tool requires under the policy.
	Requirement Requirement
	// Default is what the tool itself declares.
	Default Requirement
	// Override locates the override that changed Requirement ("policy.toml:12");
	// empty when the tool keeps its own requirement.
	Override string
}

// Resolution is the outcome of applying a policy to a set of tools.
type Resolution struct {
	// Tools lists every available tool, sorted by name.
	Tools []ResolvedTool
	// Warnings are the policy's own warnings followed by those that only the
	// tool set reveals (an override naming a scope no tool declares, a host
	// granted a scope no enabled tool requires, ...).
	Warnings []string
}

// Enabled returns the enabled tools and their requirements, ready for
// AuthorizerConfig.Tools.
func (r *Resolution) Enabled() map[string]Requirement {
	out := map[string]Requirement{}
	for _, t := range r.Tools {
		if t.Enabled {
			out[t.Name] = t.Requirement
		}
	}
	return out
}

// Resolve applies p to the available tools, given as each tool's declared
// requirement. It fails when the policy names a tool that is not available
// (a typo must not silently leave a tool disabled or unguarded). A nil p
// enables every tool with its declared requirement.
func (p *Policy) Resolve(available map[string]Requirement) (*Resolution, error) {
	res := &Resolution{}
	names := sortedKeys(available)
	declared := map[string]bool{}
	for _, r := range available {
		for _, s := range r.Scopes {
			declared[s] = true
		}
	}
	enabled := map[string]bool{}
	for _, n := range names {
		enabled[n] = p == nil || p.Enabled == nil
	}
	if p != nil {
		res.Warnings = slices.Clone(p.Warnings)
		for _, n := range p.Enabled {
			if _, ok := available[n]; !ok {
				return nil, p.errorf(toml.Key{"tools", "enabled"}, "no tool named %q; available tools: %s", n, strings.Join(names, ", "))
			}
			enabled[n] = true
		}
		for _, n := range sortedKeys(p.Overrides) {
			key := toml.Key{"tools", "override", n}
			if _, ok := available[n]; !ok {
				return nil, p.errorf(key, "no tool named %q; available tools: %s", n, strings.Join(names, ", "))
			}
			if !enabled[n] {
				res.Warnings = append(res.Warnings, p.warning(key, "override has no effect: tool %q is not in tools.enabled", n))
			}
			for _, s := range p.Overrides[n].Scopes {
				if !declared[s] {
					res.Warnings = append(res.Warnings, p.warning(append(key, "scopes"),
						"scope %q is declared by no tool; check for a typo (declared scopes: %s)", s, strings.Join(sortedKeys(declared), " ")))
				}
			}
		}
	}
	granted := map[string]bool{}
	for _, n := range names {
		def := available[n]
		t := ResolvedTool{Name: n, Enabled: enabled[n], Default: cloneRequirement(def), Requirement: cloneRequirement(def)}
		if ov, ok := p.override(n); ok {
			if ov.Scopes != nil {
				t.Requirement.Scopes = slices.Clone(ov.Scopes)
			}
			if ov.Roles != nil {
				t.Requirement.Roles = slices.Clone(ov.Roles)
			}
			t.Override = p.location(toml.Key{"tools", "override", n})
			if t.Enabled && len(def.Scopes) > 0 && len(t.Requirement.Scopes) == 0 && len(t.Requirement.Roles) == 0 {
				res.Warnings = append(res.Warnings, p.warning(toml.Key{"tools", "override", n},
					"tool %q then requires no scope and no role: any authenticated caller may call it", n))
			}
		}
		if t.Enabled {
			for _, s := range t.Requirement.Scopes {
				granted[s] = true
			}
		}
		res.Tools = append(res.Tools, t)
	}
	if p != nil {
		for _, h := range sortedKeys(p.Hosts) {
			for _, s := range p.Hosts[h].Scopes {
				if !granted[s] {
					res.Warnings = append(res.Warnings, p.warning(toml.Key{"hosts", h, "scopes"},
						"scope %q is required by no enabled tool; the grant has no effect", s))
				}
			}
		}
	}
	return res, nil
}

// HostProfile returns the profile a stdio server authenticates name against.
// The policy takes precedence field by field: when it has a [hosts.NAME]
// table, its scopes and roles (where set) replace those stored in hosts.json,
// so that the reviewed file is what grants. A profile only the policy knows
// becomes a profile whose secret comes from IDMCP_SHARED_SECRET or a secret
// file (there is no keyring entry for it). The second result reports whether
// the policy contributed. stored is never modified.
func (p *Policy) HostProfile(name string, stored *HostProfile) (*HostProfile, bool) {
	var g HostGrant
	ok := false
	if p != nil {
		g, ok = p.Hosts[name]
	}
	if !ok {
		return stored, false
	}
	out := &HostProfile{Name: name, Scopes: []string{}, Roles: []string{}}
	if stored != nil {
		c := *stored
		c.Scopes, c.Roles = slices.Clone(stored.Scopes), slices.Clone(stored.Roles)
		out = &c
	}
	if g.Scopes != nil {
		out.Scopes = slices.Clone(g.Scopes)
	}
	if g.Roles != nil {
		out.Roles = slices.Clone(g.Roles)
	}
	return out, true
}

func (p *Policy) override(tool string) (ToolOverride, bool) {
	if p == nil {
		return ToolOverride{}, false
	}
	ov, ok := p.Overrides[tool]
	return ov, ok
}

func cloneRequirement(r Requirement) Requirement {
	return Requirement{Scopes: slices.Clone(r.Scopes), Roles: slices.Clone(r.Roles)}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// errorf returns a *PolicyError about key, located in the file.
func (p *Policy) errorf(key toml.Key, format string, args ...any) *PolicyError {
	return &PolicyError{File: p.Name, Line: keyLine(p.data, key), Key: key.String(), Msg: fmt.Sprintf(format, args...)}
}

// warning formats a warning like an error.
func (p *Policy) warning(key toml.Key, format string, args ...any) string {
	return "warning: " + p.errorf(key, format, args...).Error()
}

func (p *Policy) warnf(key toml.Key, format string, args ...any) {
	p.Warnings = append(p.Warnings, p.warning(key, format, args...))
}

// location returns "file:line" of key.
func (p *Policy) location(key toml.Key) string {
	if l := keyLine(p.data, key); l > 0 {
		return p.Name + ":" + strconv.Itoa(l)
	}
	return p.Name
}

func (p *Policy) checkGrant(key toml.Key, g grantFile) error {
	if err := p.checkList(append(slices.Clone(key), "scopes"), g.Scopes, validScope, "scope"); err != nil {
		return err
	}
	return p.checkList(append(slices.Clone(key), "roles"), g.Roles, validRole, "role")
}

// checkList validates every element of list and warns about duplicates.
func (p *Policy) checkList(key toml.Key, list []string, valid func(string) error, what string) error {
	seen := map[string]bool{}
	for _, s := range list {
		if err := valid(s); err != nil {
			return p.errorf(key, "invalid %s %q: %v", what, s, err)
		}
		if seen[s] {
			p.warnf(key, "%s %q is listed twice", what, s)
		}
		seen[s] = true
	}
	return nil
}

// checkKeys rejects every key the schema does not know, including keys that
// differ from a known one only in case (the decoder would accept those).
func (p *Policy) checkKeys(md toml.MetaData) error {
	root := reflect.TypeFor[policyFile]()
	for _, key := range md.Keys() {
		t := root
		for i, seg := range key {
			for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
				t = t.Elem()
			}
			switch t.Kind() {
			case reflect.Map:
				t = t.Elem()
				continue
			case reflect.Struct:
				if f, ok := fieldByTag(t, seg); ok {
					t = f.Type
					continue
				}
				return p.errorf(key[:i+1], "unknown key %q; known keys here: %s", seg, strings.Join(tagNames(t), ", "))
			}
			return p.errorf(key[:i+1], "unknown key %q: %s takes no keys", seg, key[:i])
		}
	}
	return nil
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("toml") == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tagNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		out = append(out, t.Field(i).Tag.Get("toml"))
	}
	return out
}

// typeErrRE matches the decoder's type errors, which are not ParseErrors.
var typeErrRE = regexp.MustCompile(`^toml: (?:line (\d+) )?(?:\(last key "((?:[^"\\]|\\.)*)"\): )?(.*)$`)

// decodeError turns a decoder error into a *PolicyError with file and line.
func decodeError(name string, data []byte, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line := pe.Position.Line
		// The lexer may already be on the next line when it reports an
		// unexpected newline; the byte offset says where the problem is.
		if pos := pe.Position; pos.Len > 0 && pos.Start >= 0 && pos.Start < len(data) {
			line = 1 + strings.Count(string(data[:pos.Start]), "\n")
		}
		return &PolicyError{File: name, Line: line, Msg: "syntax error: " + pe.Message, Err: err}
	}
	m := typeErrRE.FindStringSubmatch(err.Error())
	if m == nil {
		return &PolicyError{File: name, Msg: err.Error(), Err: err}
	}
	line, _ := strconv.Atoi(m[1])
	key := strings.ReplaceAll(m[2], `\"`, `"`)
	return &PolicyError{File: name, Line: line, Key: key, Msg: friendlyTypeError(m[3]), Err: err}
}

var (
	incompatibleRE = regexp.MustCompile(`TOML value has type (\S+); destination has type (\S+)`)
	mismatchRE     = regexp.MustCompile(`type mismatch for .*: expected table but found (\S+)$`)
)

// friendlyTypeError rewrites the decoder's Go-flavoured type errors in TOML
// words.
func friendlyTypeError(msg string) string {
	if m := incompatibleRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("wrong type: found %s where %s is expected", tomlWord(m[1]), goWord(m[2]))
	}
	if m := mismatchRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("wrong type: found %s where a table is expected", tomlWord(m[1]))
	}
	return msg
}

func tomlWord(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a float"
	case goType == "bool":
		return "a boolean"
	case goType == "time.Time":
		return "a date-time"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map"):
		return "a table"
	}
	return goType
}

func goWord(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "a table"
	case "bool":
		return "a boolean"
	}
	if strings.HasPrefix(kind, "int") || strings.HasPrefix(kind, "uint") {
		return "an integer"
	}
	return kind
}

// linePosition is the target of keyLine's probe: decoding fails exactly at
// the probed key, and the decoder's ParseError carries that key's position.
type linePosition struct{}

// errProbe is what the probe fails with; ParseError keeps only its text.
var errProbe = errors.New("idmcp: key position probe")

// UnmarshalTOML always fails; see keyLine.
func (*linePosition) UnmarshalTOML(any) error { return errProbe }

// keyLine returns the line where key is defined in data, or the line of the
// nearest enclosing table that has one; 0 when it cannot tell. The decoder
// keeps key positions private, so it decodes data again into a struct type
// built for this key alone, whose leaf fails and so reports its position.
func keyLine(data []byte, key toml.Key) int {
	const maxDepth = 16
	if len(key) == 0 || len(key) > maxDepth || data == nil {
		return 0
	}
	if l := probeLine(data, key); l > 0 {
		return l
	}
	// A table that is only implied ("tool" in [tool.x]) has no position of
	// its own: use the first key inside it, else the nearest enclosing one.
	var m map[string]any
	if md, err := toml.Decode(string(data), &m); err == nil {
		tries := 0
		for _, k := range md.Keys() {
			if len(k) > len(key) && slices.Equal(k[:len(key)], key) {
				if l := probeLine(data, k); l > 0 {
					return l
				}
				if tries++; tries == 4 { // each try parses the file again
					break
				}
			}
		}
	}
	for n := len(key) - 1; n > 0; n-- {
		if l := probeLine(data, key[:n]); l > 0 {
			return l
		}
	}
	return 0
}

func probeLine(data []byte, key toml.Key) (line int) {
	defer func() {
		if recover() != nil { // reflect.StructOf refuses odd tags; no line then
			line = 0
		}
	}()
	t := reflect.TypeFor[linePosition]()
	for i := len(key) - 1; i >= 0; i-- {
		seg := key[i]
		if seg == "" || seg == "-" || strings.ContainsAny(seg, ",") {
			return 0
		}
		t = reflect.StructOf([]reflect.StructField{{Name: "F", Type: t, Tag: reflect.StructTag(`toml:` + strconv.Quote(seg))}})
	}
	_, err := toml.Decode(string(data), reflect.New(t).Interface())
	var pe toml.ParseError
	if errors.As(err, &pe) && pe.Message == errProbe.Error() {
		return pe.Position.Line
	}
	return 0
}

var toolNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func validToolName(s string) error {
	if !toolNameRE.MatchString(s) {
		return errors.New("tool names are 1-64 letters, digits, '_' or '-'")
	}
	return nil
}

// validScope enforces RFC 6749 §3.3 scope-token syntax:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScope(s string) error {
	if s == "" || len(s) > maxTokenLen {
		return fmt.Errorf("scopes are 1-%d characters", maxTokenLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return errors.New("scopes are printable ASCII without spaces, '\"' or '\\' (RFC 6749 §3.3)")
		}
	}
	return nil
}

// validRole accepts any printable text without spaces, '"' or '\', since
// identity providers use group names, paths and ids as roles.
func validRole(s string) error {
	if s == "" || len(s) > maxTokenLen {
		return fmt.Errorf("roles are 1-%d bytes", maxTokenLen)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '"' || r == '\\' }) {
		return errors.New("roles are printable text without spaces, '\"' or '\\'")
	}
	return nil
}

func validClaimPath(s string) error {
	if err := validRole(s); err != nil {
		return errors.New("claims are names or dotted paths (realm_access.roles) without spaces")
	}
	if slices.Contains(strings.Split(s, "."), "") {
		return errors.New("a dotted claim path has an empty segment")
	}
	return nil
}

func validRedactKey(s string) error {
	if strings.TrimSpace(s) == "" || len(s) > maxTokenLen {
		return fmt.Errorf("keys are 1-%d bytes and not blank", maxTokenLen)
	}
	return nil
}

func validAudience(s string) error {
	if strings.TrimSpace(s) == "" || len(s) > 2048 || strings.ContainsFunc(s, unicode.IsSpace) {
		return errors.New("audiences are non-empty and contain no spaces")
	}
	return nil
}

// validURL checks an absolute http(s) URL; an origin is scheme://host[:port]
// with nothing after it.
func validURL(s string, origin bool) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if origin && (u.Path != "" || u.RawQuery != "" || u.Fragment != "") {
		return fmt.Errorf("%q is not an origin (scheme://host[:port], no path)", s)
	}
	return nil
}
