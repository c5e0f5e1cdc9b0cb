package hostconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/tailscale/hujson"
)

// The JSON hosts' files are edited in place on hujson's syntax tree, which
// represents the input byte for byte (comments, whitespace, trailing commas,
// key order): only the entry idmcp owns is inserted, replaced or removed,
// and everything else is packed back exactly as it was read. Zed's and VS
// Code's files are JSON with comments; the others are plain JSON, which stays
// plain because only plain JSON is inserted.

// kv is one member of an orderedObject.
type kv struct {
	k string
	v any
}

// orderedObject marshals as a JSON object with its keys in slice order.
type orderedObject []kv

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(m.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// parseJSON parses a host file (empty means {}), refusing anything but an
// object at the top, with the line and column of a syntax error.
func parseJSON(path string, src []byte) (hujson.Value, *hujson.Object, error) {
	if len(bytes.TrimSpace(src)) == 0 {
		src = []byte("{}\n")
	}
	v, err := hujson.Parse(src)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "hujson: ")
		return v, nil, fmt.Errorf("%s: %s: %w; nothing was written, fix the file or move it aside", path, msg, ErrInvalidFile)
	}
	obj, ok := v.Value.(*hujson.Object)
	if !ok {
		return v, nil, fmt.Errorf("%s: the top level is not a JSON object: %w; nothing was written", path, ErrInvalidFile)
	}
	return v, obj, nil
}

// detectIndent returns the file's indentation unit, from the first member of
// the top-level object (two spaces when it has none on its own line).
func detectIndent(root *hujson.Object) string {
	if len(root.Members) == 0 {
		return "  "
	}
	be := string(root.Members[0].Name.BeforeExtra)
	i := strings.LastIndexByte(be, '\n')
	if i < 0 {
		return "  "
	}
	ind := be[i+1:]
	if ind == "" || strings.Trim(ind, " \t") != "" {
		return "  "
	}
	return ind
}

// member returns the index of key in obj, or -1.
func member(obj *hujson.Object, key string) int {
	for i, m := range obj.Members {
		if lit, ok := m.Name.Value.(hujson.Literal); ok && lit.String() == key {
			return i
		}
	}
	return -1
}

// formatted parses v marshalled with the indentation of a value that sits at
// depth (its first line follows the key; the others are indented).
func formatted(v any, depth int, indent string) (hujson.ValueTrimmed, error) {
	b, err := json.MarshalIndent(v, strings.Repeat(indent, depth), indent)
	if err != nil {
		return nil, err
	}
	hv, err := hujson.Parse(b)
	if err != nil {
		return nil, err
	}
	return hv.Value, nil
}

// insertMember appends key: v to obj, an object at depth, keeping a trailing
// comma if the file uses them and leaving a comment that ended the previous
// last line on that line.
func insertMember(obj *hujson.Object, key string, v any, depth int, indent string) error {
	val, err := formatted(v, depth+1, indent)
	if err != nil {
		return err
	}
	after := string(obj.AfterExtra)
	head, tail := after, "\n"+strings.Repeat(indent, depth)
	if i := strings.LastIndexByte(after, '\n'); i >= 0 {
		head, tail = after[:i], after[i:]
	}
	head = strings.TrimRight(head, " \t")
	m := hujson.ObjectMember{
		Name:  hujson.Value{BeforeExtra: hujson.Extra(head + "\n" + strings.Repeat(indent, depth+1)), Value: hujson.String(key)},
		Value: hujson.Value{BeforeExtra: hujson.Extra(" "), Value: val},
	}
	if n := len(obj.Members); n > 0 && obj.Members[n-1].Value.AfterExtra != nil {
		m.Value.AfterExtra = hujson.Extra{} // the file ends members with a comma: so does ours
	}
	obj.Members = append(obj.Members, m)
	obj.AfterExtra = hujson.Extra(tail)
	return nil
}

// replaceMember replaces the value of obj's member i (at depth), keeping the
// comments around it.
func replaceMember(obj *hujson.Object, i int, v any, depth int, indent string) error {
	val, err := formatted(v, depth+1, indent)
	if err != nil {
		return err
	}
	obj.Members[i].Value.Value = val
	return nil
}

// removeMember removes obj's member i, moving its trailing-comma status to
// the new last member.
func removeMember(obj *hujson.Object, i int) {
	last := i == len(obj.Members)-1
	trailing := obj.Members[i].Value.AfterExtra
	obj.Members = append(obj.Members[:i], obj.Members[i+1:]...)
	if last && len(obj.Members) > 0 {
		obj.Members[len(obj.Members)-1].Value.AfterExtra = trailing
	}
	if len(obj.Members) == 0 {
		obj.AfterExtra = hujson.Extra(strings.TrimRight(string(obj.AfterExtra), " \t\n"))
		if strings.TrimSpace(string(obj.AfterExtra)) == "" {
			obj.AfterExtra = nil
		}
	}
}

// pruneEmpty removes the objects along keys, deepest first, that the
// removal left empty (and without comments), so that installing and then
// uninstalling leaves a file as it was.
func pruneEmpty(root *hujson.Object, keys []string) {
	for n := len(keys); n > 0; n-- {
		parent := root
		for _, k := range keys[:n-1] {
			i := member(parent, k)
			if i < 0 {
				return
			}
			next, ok := parent.Members[i].Value.Value.(*hujson.Object)
			if !ok {
				return
			}
			parent = next
		}
		i := member(parent, keys[n-1])
		if i < 0 {
			return
		}
		o, ok := parent.Members[i].Value.Value.(*hujson.Object)
		if !ok || len(o.Members) > 0 || strings.TrimSpace(string(o.AfterExtra)) != "" {
			return
		}
		removeMember(parent, i)
	}
}

// objectAt walks path from root, creating missing objects when create is
// set; nil (no error) when a key is missing and create is not set. It
// returns the object and its depth. A key that holds something other than an
// object is refused.
func objectAt(path string, root *hujson.Object, keys []string, create bool, indent string) (*hujson.Object, int, error) {
	obj := root
	for d, k := range keys {
		i := member(obj, k)
		if i < 0 {
			if !create {
				return nil, 0, nil
			}
			if err := insertMember(obj, k, struct{}{}, d, indent); err != nil {
				return nil, 0, err
			}
			i = len(obj.Members) - 1
		}
		next, ok := obj.Members[i].Value.Value.(*hujson.Object)
		if !ok {
			return nil, 0, fmt.Errorf("%s: %q is not a JSON object: %w; nothing was written", path, strings.Join(keys[:d+1], "."), ErrInvalidFile)
		}
		obj = next
	}
	return obj, len(keys), nil
}

// containerKeys is the path to the object that holds servers by name.
func containerKeys(t Target) []string {
	switch defs()[t.Host].format {
	case fmtVSCode:
		return []string{"servers"}
	case fmtZed:
		return []string{"context_servers"}
	}
	if t.Scope == Local {
		return []string{"projects", t.Workspace, "mcpServers"}
	}
	return []string{"mcpServers"}
}

// editJSON returns src with the entry name set to obj (or removed when obj
// is nil), and whether an entry of that name was there.
func editJSON(t Target, src []byte, name string, obj any, force bool, input orderedObject) ([]byte, bool, error) {
	v, root, err := parseJSON(t.Path, src)
	if err != nil {
		return nil, false, err
	}
	indent := detectIndent(root)
	keys := containerKeys(t)
	servers, depth, err := objectAt(t.Path, root, keys, obj != nil, indent)
	if err != nil {
		return nil, false, err
	}
	existed := false
	if servers != nil {
		i := member(servers, name)
		existed = i >= 0
		switch {
		case obj == nil && existed:
			removeMember(servers, i)
			pruneEmpty(root, keys)
		case obj == nil:
		case existed && !force:
			return nil, true, fmt.Errorf("%s already has a server %q: %w; pass --force to replace it", t.Path, name, ErrExists)
		case existed:
			if err := replaceMember(servers, i, obj, depth, indent); err != nil {
				return nil, true, err
			}
		default:
			if err := insertMember(servers, name, obj, depth, indent); err != nil {
				return nil, false, err
			}
		}
	}
	if defs()[t.Host].format == fmtVSCode {
		id := ""
		if input != nil {
			id = input[1].v.(string)
		} else {
			id = strings.TrimPrefix(name, "idmcp-")
			id = InputID(id)
		}
		if err := editInputs(t.Path, root, id, input, indent); err != nil {
			return nil, existed, err
		}
	}
	out := v.Pack()
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, '\n')
	}
	if err := checkOnlyEntryChanged(t, src, out, name, obj); err != nil {
		return nil, existed, err
	}
	return out, existed, nil
}

// editInputs sets (input != nil) or removes the VS Code input with id id in
// the top-level "inputs" array.
func editInputs(path string, root *hujson.Object, id string, input orderedObject, indent string) error {
	i := member(root, "inputs")
	if i < 0 {
		if input == nil {
			return nil
		}
		return insertMember(root, "inputs", []any{input}, 0, indent)
	}
	arr, ok := root.Members[i].Value.Value.(*hujson.Array)
	if !ok {
		return fmt.Errorf("%s: \"inputs\" is not an array: %w; nothing was written", path, ErrInvalidFile)
	}
	for j, el := range arr.Elements {
		o, ok := el.Value.(*hujson.Object)
		if !ok {
			continue
		}
		k := member(o, "id")
		if k < 0 {
			continue
		}
		if lit, ok := o.Members[k].Value.Value.(hujson.Literal); !ok || lit.String() != id {
			continue
		}
		if input == nil {
			last := j == len(arr.Elements)-1
			trailing := arr.Elements[j].AfterExtra
			arr.Elements = append(arr.Elements[:j], arr.Elements[j+1:]...)
			if last && len(arr.Elements) > 0 {
				arr.Elements[len(arr.Elements)-1].AfterExtra = trailing
			}
			return nil
		}
		val, err := formatted(input, 2, indent)
		if err != nil {
			return err
		}
		arr.Elements[j].Value = val
		return nil
	}
	if input == nil {
		return nil
	}
	val, err := formatted(input, 2, indent)
	if err != nil {
		return err
	}
	after := string(arr.AfterExtra)
	head, tail := after, "\n"+indent
	if k := strings.LastIndexByte(after, '\n'); k >= 0 {
		head, tail = after[:k], after[k:]
	}
	el := hujson.Value{BeforeExtra: hujson.Extra(strings.TrimRight(head, " \t") + "\n" + indent + indent), Value: val}
	if n := len(arr.Elements); n > 0 && arr.Elements[n-1].AfterExtra != nil {
		el.AfterExtra = hujson.Extra{}
	}
	arr.Elements = append(arr.Elements, el)
	arr.AfterExtra = hujson.Extra(tail)
	return nil
}

// decodeLoose decodes a JSON-with-comments document into Go values.
func decodeLoose(b []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]any{}, nil
	}
	std, err := hujson.Standardize(bytes.Clone(b))
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(std, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// checkOnlyEntryChanged is the edit's safety net: decoded, the new file
// must equal the old one except for idmcp's entry (and its VS Code input),
// and hold exactly the intended entry. A bug in the edit is refused here
// rather than written over a user's file.
func checkOnlyEntryChanged(t Target, oldSrc, newSrc []byte, name string, obj any) error {
	oldM, err := decodeLoose(oldSrc)
	if err != nil {
		return fmt.Errorf("%s: %w", t.Path, err)
	}
	newM, err := decodeLoose(newSrc)
	if err != nil {
		return fmt.Errorf("%s: idmcp produced a file that does not parse (%v); nothing was written", t.Path, err)
	}
	keys := containerKeys(t)
	strip := func(m map[string]any) any {
		cur := m
		for _, k := range keys {
			next, ok := cur[k].(map[string]any)
			if !ok {
				return nil
			}
			cur = next
		}
		got := cur[name]
		delete(cur, name)
		return got
	}
	stripEmpty := func(m map[string]any) {
		// Containers idmcp created empty on the way to its entry.
		var walk func(cur map[string]any, ks []string)
		walk = func(cur map[string]any, ks []string) {
			if len(ks) == 0 {
				return
			}
			next, ok := cur[ks[0]].(map[string]any)
			if !ok {
				return
			}
			walk(next, ks[1:])
			if len(next) == 0 {
				delete(cur, ks[0])
			}
		}
		walk(m, keys)
	}
	stripInput := func(m map[string]any) {
		if defs()[t.Host].format != fmtVSCode {
			return
		}
		id := InputID(strings.TrimPrefix(name, "idmcp-"))
		arr, _ := m["inputs"].([]any)
		var out []any
		for _, el := range arr {
			if o, ok := el.(map[string]any); ok && o["id"] == id {
				continue
			}
			out = append(out, el)
		}
		if len(out) == 0 {
			delete(m, "inputs")
		} else {
			m["inputs"] = out
		}
	}
	strip(oldM)
	got := strip(newM)
	stripInput(oldM)
	stripInput(newM)
	stripEmpty(oldM)
	stripEmpty(newM)
	if !reflect.DeepEqual(oldM, newM) {
		return fmt.Errorf("%s: internal error: the edit would change more than idmcp's entry; nothing was written", t.Path)
	}
	if obj == nil {
		if got != nil {
			return errors.New("internal error: the entry is still there after removal")
		}
		return nil
	}
	want, _ := json.Marshal(obj)
	var wantV any
	_ = json.Unmarshal(want, &wantV)
	if !reflect.DeepEqual(got, wantV) {
		return fmt.Errorf("%s: internal error: the written entry differs from the intended one; nothing was written", t.Path)
	}
	return nil
}
