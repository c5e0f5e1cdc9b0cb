package audit

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// marshalRedacted is the encoding Arguments used before appendValue: the
// redacted copy built as maps and slices, then json.Marshal. appendValue
// must write the same bytes.
func marshalRedacted(r *Redactor, v any) string {
	var value func(v any, depth int) any
	value = func(v any, depth int) any {
		if depth > maxDepth {
			return "[too deep]"
		}
		switch t := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			out := make(map[string]any, len(t))
			for _, k := range keys {
				rk := r.String(k)
				if r.SecretKey(k) {
					out[rk] = Redacted
					continue
				}
				out[rk] = value(t[k], depth+1)
			}
			return out
		case []any:
			out := make([]any, len(t))
			for i, e := range t {
				if _, ok := e.(string); ok && i > 0 && r.afterSecretFlag(t[i-1]) {
					out[i] = Redacted
					continue
				}
				out[i] = value(e, depth+1)
			}
			return out
		case string:
			return r.String(t)
		case json.Number:
			s := string(t)
			if len(s) > 64 || r.Scrub(s) != s {
				return r.String(s)
			}
			return t
		default:
			return t
		}
	}
	b, err := json.Marshal(value(v, 0))
	if err != nil {
		return `"[unencodable arguments]"`
	}
	return string(b)
}

// FuzzArgumentsEncoding checks that appendValue writes exactly what
// json.Marshal of the redacted copy does, including keys that redact to the
// same text, deep nesting, numbers and invalid UTF-8.
func FuzzArgumentsEncoding(f *testing.F) {
	for _, seed := range []string{
		`{"title":"x","b":[1,2.5e3,-0,true,false,null],"a":{"z":"<&>","y":"\u2028"}}`,
		`{"password":"p","Password":"q","pass_word":1,"token":{"x":1}}`,
		`{"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl":1,"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl":2}`,
		`{"` + strings.Repeat("k", 300) + `a":1,"` + strings.Repeat("k", 300) + `b":2}`,
		strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40),
		strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40),
		"{\"\xff\":\"\xfe\",\"\\ud800\":\"\\udc00x\"}",
		`12345678901234567890123456789012345678901234567890123456789012345678901234567890`,
		`"known-host-secret-PLANTED-42"`,
		`{"n":123456789012345678901234567890,"m":1e400,"k":known}`,
		`{"x":"known-host-secret-PLANTED-42","known-host-secret-PLANTED-42":"y"}`,
	} {
		f.Add([]byte(seed))
	}
	r := &Redactor{Keys: []string{"Ticket"}, Secrets: []string{"known-host-secret-PLANTED-42"}, MaxValue: 64}
	f.Fuzz(func(t *testing.T, raw []byte) {
		dec := json.NewDecoder(bytes.NewReader(bytes.TrimSpace(raw)))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil || dec.More() {
			return
		}
		want := marshalRedacted(r, v)
		if got := string(r.appendValue(nil, v, 0)); got != want {
			t.Fatalf("appendValue(%q)\n got %s\nwant %s", raw, got, want)
		}
	})
}

// FuzzFastArguments checks that the fast path of Arguments, whenever it
// answers, writes exactly what the general path does, and that it answers
// for the plain arguments it exists for.
func FuzzFastArguments(f *testing.F) {
	for _, seed := range []string{
		`{"title":"buy milk","note":"before friday","priority":2}`,
		`{"b":1,"a":{"d":[1,-0.5e+3,true,false,null,{}],"c":[]},"password":"p","api_key":{"x":1}}`,
		`["--password","hunter2","--token","--x","y",1,"--api-key","z"]`,
		`{"a":1,"a":2}`, `{"b":1,"a":2,"b":3}`, `{"a":1}}`, `{"a":1} x`, `{"a":01}`, `{"a":1.}`, `{"a":-}`,
		`{"a":"<&>"}`, `{"a":"x\"y"}`, `{"é":1}`, `{"a":"\t"}`, `{"a" : [ 1 , 2 ] }`, `{,}`, `{"a":1,}`, `[1,]`,
		`{"url":"https://user:pw@host/x?token=abc","auth":"Bearer abcdefgh","jwt":"x"}`,
		`{"x":"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"}`,
		`{"n":1234567890123456789012345678901234567890123456789012345678901234567890}`,
		`{"Ticket":"t","known-host-secret-PLANTED-42":1,"k":"known-host-secret-PLANTED-42"}`,
		strings.Repeat(`[`, 20) + strings.Repeat(`]`, 20), `"s"`, `12`, `true`, `nul`, `tru`, `[`, `{"a"`,
		`{"long":"` + strings.Repeat("x", 300) + `"}`,
	} {
		f.Add([]byte(seed))
	}
	r := &Redactor{Keys: []string{"Ticket"}, Secrets: []string{"known-host-secret-PLANTED-42"}, MaxValue: 64}
	f.Fuzz(func(t *testing.T, raw []byte) {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			return
		}
		got, ok := r.fastArguments(raw)
		if !ok {
			return
		}
		if want := r.generalArguments(raw); got != want {
			t.Fatalf("fastArguments(%q)\n got %s\nwant %s", raw, got, want)
		}
	})
}

func TestFastArgumentsAnswers(t *testing.T) {
	r := &Redactor{}
	for _, raw := range []string{
		`{"title":"buy milk","note":"before friday","priority":2}`,
		`{"path":"notes/a.txt","content":"hello world","mode":"append","tags":["a","b"],"n":-1.5e3,"ok":true,"x":null}`,
		`{"args":["--password","hunter2"],"password":"x"}`,
	} {
		got, ok := r.fastArguments([]byte(raw))
		if !ok {
			t.Errorf("fastArguments(%s) gave up on plain arguments", raw)
			continue
		}
		if want := r.generalArguments([]byte(raw)); got != want {
			t.Errorf("fastArguments(%s) = %s, want %s", raw, got, want)
		}
	}
}
