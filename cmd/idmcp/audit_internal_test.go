package main

import "testing"

func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain\ttext\n":           "plain\ttext\n",
		"\x1b[1A\x1b[2Kinnocent":  `\x1b[1A\x1b[2Kinnocent`,
		"bell\a del\x7f c1\u009b": `bell\x07 del\x7f c1\x9b`,
		"rtl\u202eevil":           `rtl\u202eevil`,
		"héllo ✓":                 "héllo ✓",
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
}
