package main

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":                "plain text",
		"tab\there\nnew\rline":      `tab\there\nnew\rline`,
		"\x1b[1A\x1b[2Kinnocent":    `\x1b[1A\x1b[2Kinnocent`,
		"bell\a del\x7f c1\u009b":   `bell\x07 del\x7f c1\u009b`,
		"rtl\u202eevil":             `rtl\u202eevil`,
		"iso\u2066x\u2069":          `iso\u2066x\u2069`,
		"lrm\u200erlm\u200f":        `lrm\u200erlm\u200f`,
		"zw\u200bj\u200d bom\ufeff": `zw\u200bj\u200d bom\ufeff`,
		"sep\u2028\u2029":           `sep\u2028\u2029`,
		"tag\U000E0041":             `tag\U000e0041`,
		"bad\xff\xfeutf8":           `bad\xff\xfeutf8`,
		`back\slash \x41`:           `back\\slash \\x41`,
		"héllo ✓ 日本":                "héllo ✓ 日本",
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// terminalSafe is the property every escaped string must have: valid
// UTF-8, nothing but printable ASCII and visible (graphic, not format)
// characters, so no control sequence, line break or bidi override reaches
// the terminal.
func terminalSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
		if r >= utf8.RuneSelf && (!unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r)) {
			return false
		}
	}
	return true
}

// FuzzTermSafe: whatever a client sends, the escaped text is terminal-safe,
// is the input itself when that was safe and had no backslash, and is
// reversible (distinct inputs stay distinct: no forged look-alike).
func FuzzTermSafe(f *testing.F) {
	for _, s := range []string{"", "x\n9999  root via admin todo_delete allow/ok", "\u202e\u2066", "\xff", `\n`, "a\tb", "\U000E0001", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := termSafe(s)
		if !terminalSafe(got) {
			t.Fatalf("termSafe(%q) = %q: not terminal-safe", s, got)
		}
		if terminalSafe(s) && !strings.Contains(s, `\`) && got != s {
			t.Fatalf("termSafe(%q) = %q: changed a safe string", s, got)
		}
		if back := unescape(t, got); back != s {
			t.Fatalf("termSafe(%q) = %q does not read back (%q)", s, got, back)
		}
	})
}

// unescape reverses termSafe, for the fuzz target's round trip.
func unescape(t *testing.T, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		hexN := func(n int) uint64 {
			var v uint64
			for _, c := range s[i+1 : i+1+n] {
				v = v*16 + uint64(strings.IndexRune("0123456789abcdef", c))
			}
			i += n
			return v
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'x':
			b.WriteByte(byte(hexN(2))) // a C0 control, DEL, or a bad byte (80-ff)
		case 'u':
			b.WriteRune(rune(hexN(4)))
		case 'U':
			b.WriteRune(rune(hexN(8)))
		default:
			t.Fatalf("bad escape in %q", s)
		}
	}
	return b.String()
}
