package main

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// termSafe is the one escaper of every human-readable output (audit query's
// table, tail, sql, verify's messages, policy check, host list): it returns
// s with everything a terminal would act on or hide made visible, so that
// what the operator sees is what the row holds. Escaped:
//
//   - C0 controls, tab and newline included, and DEL: \n \r \t or \xNN (a
//     newline in a tool name cannot start a forged line); C1 controls as
//     \u0080–\u009f;
//   - format characters (Unicode Cf): the bidi controls U+202A–U+202E and
//     U+2066–U+2069, U+200E/U+200F, zero-width and invisible characters,
//     and the line and paragraph separators U+2028/U+2029, private-use,
//     surrogate and unassigned code points: \uXXXX or \U00XXXXXX;
//   - invalid UTF-8: each bad byte as \xNN (NN 80–ff: only bad bytes take
//     that form, so the escape reads back unambiguously);
//   - the backslash itself, as \\, so that an escape cannot be faked.
//
// JSON output is never passed through it: it stays exact.
func termSafe(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	const hexDigits = "0123456789abcdef"
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			c := s[i]
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xF])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && !visible(r):
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[r>>4])
			b.WriteByte(hexDigits[r&0xF])
		case !visible(r) && r <= 0xFFFF:
			b.WriteString(`\u`)
			for sh := 12; sh >= 0; sh -= 4 {
				b.WriteByte(hexDigits[(r>>sh)&0xF])
			}
		case !visible(r):
			b.WriteString(`\U`)
			for sh := 28; sh >= 0; sh -= 4 {
				b.WriteByte(hexDigits[(r>>sh)&0xF])
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// visible reports whether r is shown as itself: a graphic character (letter,
// mark, number, punctuation, symbol, or a space separator).
func visible(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 0x20 && r < 0x7f
	}
	return unicode.IsGraphic(r) && !unicode.Is(unicode.Cf, r)
}

// needsEscape is termSafe's fast path: plain printable ASCII without a
// backslash passes as it is.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return true
		}
	}
	return false
}
