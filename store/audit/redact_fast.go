package audit

import (
	"slices"
	"strings"
)

// The fast path of Arguments.
//
// Arguments decodes the JSON into maps and slices and writes the redacted
// copy from them: about 2.5 µs and 26 allocations for a three-field tool
// call, on every audited call. Most arguments are plain: ASCII text without
// escapes, each key once, little nesting. fastArguments writes the same bytes
// for those straight from the input, and gives up on anything else
// (non-ASCII or escaped text, a key that occurs twice or that redaction would
// change, deep nesting, long numbers, input that is not JSON), leaving it to
// the general path. FuzzFastArguments checks that whenever it answers, its
// answer is the general path's.

// fastMaxDepth is the deepest nesting the fast path handles (the general
// path's limit, maxDepth, is higher).
const fastMaxDepth = 16

// fastArgs is the state of one fastArguments call.
type fastArgs struct {
	r       *Redactor
	in      string
	pos     int
	out     []byte
	members []fastMember // the members of the objects being written, innermost last
	scratch []byte       // for reordering an object's members
}

// fastMember is an object member already written to out[start:end]
// ("key":value), in input order.
type fastMember struct {
	key        string
	start, end int
}

// fastArguments returns the redacted JSON text of raw (trimmed, non-empty)
// when raw is plain enough, and ok false otherwise.
func (r *Redactor) fastArguments(raw []byte) (_ string, ok bool) {
	var members [16]fastMember
	a := fastArgs{r: r, in: string(raw), out: make([]byte, 0, len(raw)+16), members: members[:0]}
	if !a.value(0) {
		return "", false
	}
	a.space()
	if a.pos != len(a.in) {
		return "", false
	}
	return string(a.out), true
}

// space skips JSON whitespace.
func (a *fastArgs) space() {
	for a.pos < len(a.in) {
		switch a.in[a.pos] {
		case ' ', '\t', '\n', '\r':
			a.pos++
		default:
			return
		}
	}
}

// value writes the redacted copy of the value at pos.
func (a *fastArgs) value(depth int) bool {
	if depth > fastMaxDepth {
		return false
	}
	a.space()
	if a.pos >= len(a.in) {
		return false
	}
	switch c := a.in[a.pos]; {
	case c == '{':
		return a.object(depth)
	case c == '[':
		return a.array(depth)
	case c == '"':
		s, ok := a.str()
		if !ok {
			return false
		}
		a.out = appendJSONString(a.out, a.r.String(s))
		return true
	case c == '-' || (c >= '0' && c <= '9'):
		return a.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(a.in)-a.pos >= len(lit) && a.in[a.pos:a.pos+len(lit)] == lit {
				a.pos += len(lit)
				a.out = append(a.out, lit...)
				return true
			}
		}
		return false
	}
}

// str reads the string at pos (its opening quote) when it is printable ASCII
// without escapes.
func (a *fastArgs) str() (string, bool) {
	start := a.pos + 1
	for i := start; i < len(a.in); i++ {
		switch c := a.in[i]; {
		case c == '"':
			a.pos = i + 1
			return a.in[start:i], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", false
		}
	}
	return "", false
}

// number writes the number at pos as it is, as the general path does with
// a json.Number, when it follows JSON's grammar.
func (a *fastArgs) number() bool {
	in, i := a.in, a.pos
	digits := func() bool {
		start := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		return i > start
	}
	if in[i] == '-' {
		i++
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case i < len(in) && in[i] >= '1' && in[i] <= '9':
		digits()
	default:
		return false
	}
	if i < len(in) && in[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	s := in[a.pos:i]
	if len(s) > 64 || a.r.Scrub(s) != s {
		return false
	}
	a.pos = i
	a.out = append(a.out, s...)
	return true
}

// array writes the array at pos. A string right after a string that is a
// flag naming a secret ("--password") is redacted.
func (a *fastArgs) array(depth int) bool {
	a.pos++ // [
	a.out = append(a.out, '[')
	a.space()
	if a.pos < len(a.in) && a.in[a.pos] == ']' {
		a.pos++
		a.out = append(a.out, ']')
		return true
	}
	prevFlag := false // the previous element is a string naming a secret
	for n := 0; ; n++ {
		if n > 0 {
			a.out = append(a.out, ',')
		}
		a.space()
		if a.pos < len(a.in) && a.in[a.pos] == '"' {
			s, ok := a.str()
			if !ok {
				return false
			}
			if prevFlag {
				a.out = appendJSONString(a.out, Redacted)
			} else {
				a.out = appendJSONString(a.out, a.r.String(s))
			}
			prevFlag = a.r.secretFlag(s)
		} else {
			if !a.value(depth + 1) {
				return false
			}
			prevFlag = false
		}
		more, ok := a.next(']')
		if !ok {
			return false
		}
		if !more {
			a.out = append(a.out, ']')
			return true
		}
	}
}

// next reads what follows a member or element: a comma (more is true) or
// the closing bracket (more is false); ok is false for anything else.
func (a *fastArgs) next(closing byte) (more, ok bool) {
	a.space()
	if a.pos >= len(a.in) {
		return false, false
	}
	switch a.in[a.pos] {
	case ',':
		a.pos++
		return true, true
	case closing:
		a.pos++
		return false, true
	}
	return false, false
}

// object writes the object at pos with its members sorted by key, as
// json.Marshal writes a map. Values under secret keys become Redacted.
func (a *fastArgs) object(depth int) bool {
	a.pos++ // {
	a.out = append(a.out, '{')
	a.space()
	if a.pos < len(a.in) && a.in[a.pos] == '}' {
		a.pos++
		a.out = append(a.out, '}')
		return true
	}
	base := len(a.members)
	for n := 0; ; n++ {
		if n > 0 {
			a.out = append(a.out, ',')
		}
		a.space()
		if a.pos >= len(a.in) || a.in[a.pos] != '"' {
			return false
		}
		k, ok := a.str()
		if !ok || a.r.String(k) != k {
			return false
		}
		a.space()
		if a.pos >= len(a.in) || a.in[a.pos] != ':' {
			return false
		}
		a.pos++
		start := len(a.out)
		a.out = appendJSONString(a.out, k)
		a.out = append(a.out, ':')
		valueAt := len(a.out)
		if !a.value(depth + 1) {
			return false
		}
		if a.r.SecretKey(k) {
			a.out = appendJSONString(a.out[:valueAt], Redacted)
		}
		a.members = append(a.members, fastMember{key: k, start: start, end: len(a.out)})
		more, ok := a.next('}')
		if !ok {
			return false
		}
		if !more {
			break
		}
	}
	ms := a.members[base:]
	sorted := true
	for i := 1; i < len(ms); i++ {
		if ms[i-1].key >= ms[i].key {
			sorted = false
			break
		}
	}
	if !sorted {
		first := ms[0].start
		a.scratch = append(a.scratch[:0], a.out[first:]...)
		slices.SortFunc(ms, func(x, y fastMember) int { return strings.Compare(x.key, y.key) })
		a.out = a.out[:first]
		for i, m := range ms {
			if i > 0 {
				if m.key == ms[i-1].key {
					return false // the general path keeps the last one
				}
				a.out = append(a.out, ',')
			}
			a.out = append(a.out, a.scratch[m.start-first:m.end-first]...)
		}
	}
	a.members = a.members[:base]
	a.out = append(a.out, '}')
	return true
}
