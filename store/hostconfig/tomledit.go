package hostconfig

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Codex's config.toml is edited surgically, as text: no Go TOML library
// writes a document back with its comments and layout, so idmcp finds the
// lines of its own tables ([mcp_servers.NAME] and [mcp_servers.NAME.*]),
// replaces or removes just those, and appends new tables at the end. The
// file is parsed before (refused with its line when invalid) and after the
// edit, and everything but idmcp's entry must decode the same.

// tomlHeader matches a table or array-of-tables header line.
var tomlHeader = regexp.MustCompile(`^\s*\[\[?\s*(.*?)\s*\]\]?\s*(#.*)?$`)

// splitKey splits a dotted TOML key into its parts, unquoting quoted ones.
func splitKey(s string) ([]string, bool) {
	var parts []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, false
		}
		var part string
		switch s[0] {
		case '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, false
			}
			u, err := strconv.Unquote(s[:end+1])
			if err != nil {
				return nil, false
			}
			part, s = u, s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, false
			}
			part, s = s[1:end+1], s[end+2:]
		default:
			end := 0
			for end < len(s) && (isBare(s[end])) {
				end++
			}
			if end == 0 {
				return nil, false
			}
			part, s = s[:end], s[end:]
		}
		parts = append(parts, part)
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return parts, true
		}
		if s[0] != '.' {
			return nil, false
		}
		s = s[1:]
	}
}

func isBare(c byte) bool {
	return c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// tomlKey quotes a key part when it is not bare.
func tomlKey(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		if !isBare(s[i]) {
			return strconv.Quote(s)
		}
	}
	return s
}

func tomlString(s string) string { return strconv.Quote(s) }

// codexBlock is the entry's TOML text.
func codexBlock(e Entry, tokenValue string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[mcp_servers.%s]\n", tomlKey(e.Name))
	fmt.Fprintf(&b, "command = %s\n", tomlString(e.Command))
	args := make([]string, len(e.Args))
	for i, a := range e.Args {
		args[i] = tomlString(a)
	}
	fmt.Fprintf(&b, "args = [%s]\n", strings.Join(args, ", "))
	fmt.Fprintf(&b, "\n[mcp_servers.%s.env]\n", tomlKey(e.Name))
	fmt.Fprintf(&b, "%s = %s\n", TokenEnv, tomlString(tokenValue))
	return b.String()
}

func decodeTOML(path string, src []byte) (map[string]any, error) {
	m := map[string]any{}
	if _, err := toml.Decode(string(src), &m); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line, col := pe.Position.Line, pe.Position.Col
			if st := pe.Position.Start; st >= 0 && st <= len(src) {
				// The library counts a newline it stopped at as the next
				// line; the user's problem is on the line it ends.
				line = 1 + bytes.Count(src[:st], []byte("\n"))
				col = st - bytes.LastIndexByte(src[:st], '\n')
			}
			return nil, fmt.Errorf("%s: line %d, column %d: %s: %w; nothing was written, fix the file or move it aside", path, line, col, pe.Message, ErrInvalidFile)
		}
		return nil, fmt.Errorf("%s: %v: %w; nothing was written", path, err, ErrInvalidFile)
	}
	return m, nil
}

// codexEntry returns the decoded mcp_servers.NAME of m, or nil.
func codexEntry(m map[string]any, name string) map[string]any {
	s, _ := m["mcp_servers"].(map[string]any)
	e, _ := s[name].(map[string]any)
	return e
}

// editTOML sets (block != "") or removes the entry name in src.
func editTOML(t Target, src []byte, name, block string, force bool) ([]byte, bool, error) {
	oldM, err := decodeTOML(t.Path, src)
	if err != nil {
		return nil, false, err
	}
	existed := codexEntry(oldM, name) != nil
	if existed && block != "" && !force {
		return nil, true, fmt.Errorf("%s already has [mcp_servers.%s]: %w; pass --force to replace it", t.Path, tomlKey(name), ErrExists)
	}
	text := string(src)
	lines := strings.SplitAfter(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	// Find the line ranges of our tables.
	ours := make([]bool, len(lines))
	in := false
	first := -1
	for i, l := range lines {
		if m := tomlHeader.FindStringSubmatch(strings.TrimRight(l, "\r\n")); m != nil && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			parts, ok := splitKey(m[1])
			in = ok && len(parts) >= 2 && parts[0] == "mcp_servers" && parts[1] == name
			if in && first < 0 {
				first = i
			}
		}
		ours[i] = in
	}
	if existed && first < 0 {
		return nil, true, fmt.Errorf("%s defines mcp_servers.%s in a form idmcp does not edit (inline table or dotted keys): %w; edit it by hand", t.Path, tomlKey(name), ErrUnsupported)
	}
	// Comments and blank lines just before the next table belong to it.
	for i := 0; i < len(lines); i++ {
		if !ours[i] {
			continue
		}
		j := i
		for j+1 < len(lines) && ours[j+1] {
			j++
		}
		if j+1 < len(lines) {
			for k := j; k > i; k-- {
				if s := strings.TrimSpace(lines[k]); s != "" && !strings.HasPrefix(s, "#") {
					break
				}
				ours[k] = false
			}
		}
		i = j
	}
	var out strings.Builder
	placed := false
	for i, l := range lines {
		if ours[i] {
			if !placed && block != "" {
				out.WriteString(block)
				placed = true
			}
			continue
		}
		out.WriteString(l)
	}
	res := out.String()
	if block != "" && !placed {
		if res != "" && !strings.HasSuffix(res, "\n") {
			res += "\n"
		}
		if res != "" && !strings.HasSuffix(res, "\n\n") {
			res += "\n"
		}
		res += block
	}
	if block == "" {
		res = strings.TrimRight(res, "\n")
		if res != "" {
			res += "\n"
		}
	}
	newM, err := decodeTOML(t.Path, []byte(res))
	if err != nil {
		return nil, existed, fmt.Errorf("%s: internal error: the edit does not parse (%v); nothing was written", t.Path, err)
	}
	got := codexEntry(newM, name)
	stripCodex(oldM, name)
	stripCodex(newM, name)
	if !reflect.DeepEqual(oldM, newM) {
		return nil, existed, fmt.Errorf("%s: internal error: the edit would change more than idmcp's entry; nothing was written", t.Path)
	}
	if (block == "") != (got == nil) {
		return nil, existed, fmt.Errorf("%s: internal error: the entry is not as intended after the edit; nothing was written", t.Path)
	}
	return []byte(res), existed, nil
}

func stripCodex(m map[string]any, name string) {
	s, ok := m["mcp_servers"].(map[string]any)
	if !ok {
		return
	}
	delete(s, name)
	if len(s) == 0 {
		delete(m, "mcp_servers")
	}
}

// codexServers returns the decoded [mcp_servers] of a config.toml.
func codexServers(src []byte) (map[string]any, error) {
	m := map[string]any{}
	if _, err := toml.NewDecoder(bytes.NewReader(src)).Decode(&m); err != nil {
		return nil, err
	}
	s, _ := m["mcp_servers"].(map[string]any)
	return s, nil
}
