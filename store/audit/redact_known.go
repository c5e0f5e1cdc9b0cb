package audit

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
)

// Known secrets: the values this server holds (host secrets, the dev
// issuer's client secrets, secrets it injects into wrapped servers) are
// redacted wherever they appear, not only verbatim: in any letter case,
// with or without their prefix (idmcp_, dev_), and split by single
// whitespace characters ("idmcp_AbC dEf…" pasted across a line break).
//
// The search runs over "runs": maximal stretches of token characters that
// single whitespace characters may join. Only a run at least as long as the
// shortest known secret is lowered and searched, so the common short string
// costs one table lookup per byte.

// knownPrefixes are stripped from a known secret to make a second form to
// look for: the body alone is as secret as the whole.
var knownPrefixes = []string{"idmcp_", "dev_"}

// minKnownLen is the shortest form of a known secret searched for
// case-insensitively and across whitespace; shorter ones (and ones with
// other characters) are only replaced verbatim.
const minKnownLen = 12

// tokenChar marks the bytes a secret's searched forms are made of.
var tokenChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-.~+/=" {
		t[c] = true
	}
	return t
}()

// knownSet is the known secrets: all of them, those replaced verbatim, and
// the searched forms, lower case.
type knownSet struct {
	all    []string
	exact  []string
	forms  [][]byte
	minLen int
}

func newKnownSet(secrets []string) *knownSet {
	ks := &knownSet{all: secrets}
	for _, s := range secrets {
		if len(s) >= 4 {
			ks.exact = append(ks.exact, s)
		}
	}
	add := func(s string) {
		if len(s) < minKnownLen {
			return
		}
		for i := 0; i < len(s); i++ {
			if !tokenChar[s[i]] {
				return
			}
		}
		f := []byte(strings.ToLower(s))
		for _, g := range ks.forms {
			if bytes.Equal(f, g) {
				return
			}
		}
		ks.forms = append(ks.forms, f)
		if ks.minLen == 0 || len(f) < ks.minLen {
			ks.minLen = len(f)
		}
	}
	for _, s := range secrets {
		add(s)
		for _, p := range knownPrefixes {
			if len(s) > len(p) && strings.EqualFold(s[:len(p)], p) {
				add(s[len(p):])
			}
		}
	}
	return ks
}

// known returns the current known secrets: r.Secrets (read on first use)
// and those added since by AddSecrets.
func (r *Redactor) known() *knownSet {
	if ks := r.knownSet.Load(); ks != nil {
		return ks
	}
	r.knownSet.CompareAndSwap(nil, newKnownSet(append([]string(nil), r.Secrets...)))
	return r.knownSet.Load()
}

// AddSecrets tells the Redactor more secrets this process holds (the dev
// issuer's client secrets, made after the audit log opened; secrets
// injected into a wrapped server): from now on they are redacted as
// Secrets are. Safe for concurrent use with redaction.
func (r *Redactor) AddSecrets(secrets ...string) {
	r.knownMu.Lock()
	defer r.knownMu.Unlock()
	cur := r.known()
	r.knownSet.Store(newKnownSet(append(append([]string(nil), cur.all...), secrets...)))
}

// isSpace is the whitespace that may split a pasted secret.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// scrubKnown replaces every occurrence of a known secret's form in s, in any
// case and across single whitespace characters, by Redacted.
func (ks *knownSet) scrub(s string) string {
	if ks == nil || len(ks.forms) == 0 || len(s) < ks.minLen {
		return s
	}
	var spans [][2]int // original byte ranges to replace
	var low []byte     // the current run, lowered, without the joining spaces
	var at []int       // at[i]: the offset in s of low[i]
	for i := 0; i < len(s); {
		if !tokenChar[s[i]] {
			i++
			continue
		}
		// A run: token characters, joined across single whitespace.
		start, n := i, 0
		for j := i; j < len(s); {
			if tokenChar[s[j]] {
				n++
				j++
				i = j
				continue
			}
			if isSpace(s[j]) && j+1 < len(s) && tokenChar[s[j+1]] {
				j++
				continue
			}
			break
		}
		if n < ks.minLen {
			continue
		}
		low, at = low[:0], at[:0]
		for j := start; j < i; j++ {
			if c := s[j]; tokenChar[c] {
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				low = append(low, c)
				at = append(at, j)
			}
		}
		for _, f := range ks.forms {
			for off := 0; off+len(f) <= len(low); {
				k := bytes.Index(low[off:], f)
				if k < 0 {
					break
				}
				k += off
				spans = append(spans, [2]int{at[k], at[k+len(f)-1] + 1})
				off = k + len(f)
			}
		}
	}
	if spans == nil {
		return s
	}
	return replaceSpans(s, spans)
}

// replaceSpans replaces the (possibly overlapping) byte ranges of s by
// Redacted.
func replaceSpans(s string, spans [][2]int) string {
	// Sort by start (few spans: insertion sort), then merge.
	for i := 1; i < len(spans); i++ {
		for j := i; j > 0 && spans[j][0] < spans[j-1][0]; j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
	var b strings.Builder
	last, wrote := 0, false
	for _, sp := range spans {
		if wrote && sp[0] <= last {
			last = max(last, sp[1])
			continue
		}
		b.WriteString(s[last:sp[0]])
		b.WriteString(Redacted)
		last, wrote = sp[1], true
	}
	b.WriteString(s[last:])
	return b.String()
}

// knownState is the Redactor's search state for its known secrets.
type knownState struct {
	knownMu  sync.Mutex // serialises AddSecrets
	knownSet atomic.Pointer[knownSet]
}
