package hostconfig

import (
	"path/filepath"
	"sort"
	"strings"
)

// Found is an idmcp entry read back from a host's file.
type Found struct {
	Target  Target
	Name    string
	Command string
	Args    []string
	// Token is IDMCP_TOKEN's value when the file holds it; TokenRef is the
	// reference (${VAR}, ${env:VAR}, ${input:ID}) when it does not.
	Token    string
	TokenRef string
	// SharedSecret: the entry's env also sets IDMCP_SHARED_SECRET, so the
	// file holds the profile's secret as well as the token.
	SharedSecret bool
}

// Flag returns the value of --name in the entry's arguments ("" when absent).
func (f Found) Flag(name string) string {
	for i, a := range f.Args {
		if a == "--"+name && i+1 < len(f.Args) {
			return f.Args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// Profile is the host profile the entry starts idmcp for.
func (f Found) Profile() string {
	if p := f.Flag("profile"); p != "" {
		return p
	}
	return "default"
}

// isIdmcp reports whether an entry launches idmcp.
func isIdmcp(name, command string, args []string) bool {
	base := strings.ToLower(filepath.Base(strings.ReplaceAll(command, `\`, "/")))
	return strings.HasPrefix(base, "idmcp") || (strings.HasPrefix(name, "idmcp-") && len(args) > 0 && args[0] == "serve")
}

// Inspect returns the idmcp entries of t's file, sorted by name: none when
// the file does not exist, ErrInvalidFile when it does not parse.
func Inspect(t Target) ([]Found, error) {
	src, _, _, err := read(t.Path)
	if err != nil || src == nil {
		return nil, err
	}
	var servers map[string]any
	if defs()[t.Host].format == fmtCodex {
		if _, err := decodeTOML(t.Path, src); err != nil {
			return nil, err
		}
		servers, err = codexServers(src)
		if err != nil {
			return nil, err
		}
	} else {
		if _, _, err := parseJSON(t.Path, src); err != nil {
			return nil, err
		}
		m, err := decodeLoose(src)
		if err != nil {
			return nil, err
		}
		cur := m
		for _, k := range containerKeys(t) {
			next, _ := cur[k].(map[string]any)
			cur = next
		}
		servers = cur
	}
	var out []Found
	for name, v := range servers {
		o, ok := v.(map[string]any)
		if !ok {
			continue
		}
		f := Found{Target: t, Name: name}
		f.Command, _ = o["command"].(string)
		if args, ok := o["args"].([]any); ok {
			for _, a := range args {
				s, _ := a.(string)
				f.Args = append(f.Args, s)
			}
		}
		if !isIdmcp(name, f.Command, f.Args) {
			continue
		}
		if env, ok := o["env"].(map[string]any); ok {
			_, f.SharedSecret = env["IDMCP_SHARED_SECRET"]
			tok, _ := env[TokenEnv].(string)
			if strings.Contains(tok, "${") {
				f.TokenRef = tok
			} else {
				f.Token = tok
			}
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
