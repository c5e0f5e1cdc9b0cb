package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Redacted replaces a secret value.
const Redacted = "[REDACTED]"

// DefaultMaxValue is the longest string value kept whole in an audit row.
const DefaultMaxValue = 256

// secretKeyParts are substrings of normalised argument names (lower case,
// letters and digits only) whose values are always redacted.
var secretKeyParts = [][]byte{
	[]byte("password"), []byte("passwd"), []byte("passphrase"), []byte("secret"), []byte("token"), []byte("apikey"),
	[]byte("authorization"), []byte("credential"), []byte("privatekey"), []byte("privkey"), []byte("accesskey"),
	[]byte("cookie"), []byte("bearer"), []byte("sshkey"), []byte("signingkey"), []byte("clientkey"), []byte("jwt"),
	[]byte("passcode"), []byte("pincode"), []byte("otpcode"), []byte("mfacode"), []byte("totp"), []byte("recoverycode"),
}

// secretKeyExact are whole normalised names whose values are redacted.
var secretKeyExact = []string{"auth", "pwd", "pw", "pass", "pin", "otp", "sessionid", "mfa", "2fa"}

// secretValueRE matches values that are secrets wherever they appear: JWTs,
// bearer credentials, PEM private keys and idmcp host tokens.
var secretValueRE = regexp.MustCompile(
	`eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*` +
		`|(?i:bearer)[\s\p{Zs}]+[A-Za-z0-9._~+/=-]{6,}` +
		`|-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)` +
		`|idmcp_[A-Za-z0-9_-]{16,}` +
		// Vendor formats (the prefixes gitleaks' rules use): AWS access key
		// ids, GitHub tokens, Slack tokens, sk-/sk_live_ style API keys.
		// Prefixes distinctive enough to need no word boundary; sk-/sk_ does
		// ("risk-assessment-…" is prose).
		`|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}` +
		`|gh[pousr]_[A-Za-z0-9]{20,}` +
		`|github_pat_[A-Za-z0-9_]{20,}` +
		`|xox[abposr]-[A-Za-z0-9-]{10,}` +
		`|\b[sr]k[-_](?:live_|test_|proj-|ant-)?[A-Za-z0-9_-]{16,}`)

// credentialREs match credentials inside larger text whose surroundings
// are kept: HTTP Basic credentials (redacted only when they decode to
// "user:password"), a URL's userinfo password, secret query parameters,
// command-line flags that name a secret ("--password=x", "--api-key x"),
// an Authorization header's credentials whatever the scheme ("Token x"),
// curl's "-u user:password", and free-text "key=value" / "key: value" pairs
// whose key names a secret ("password: x", "db_password=x").
// Each has two groups: what is kept, then the secret.
var credentialREs = []*regexp.Regexp{
	regexp.MustCompile(`(?i)(\bbasic[\s\p{Zs}]+)([A-Za-z0-9+/]{8,}={0,2})`),
	regexp.MustCompile(`(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)([^/\s@]+)@`),
	regexp.MustCompile(`(?i)([?&;](?:access_token|id_token|refresh_token|token|api_key|apikey|key|password|passwd|secret|client_secret|sig|signature)=)([^&\s#"']+)`),
	regexp.MustCompile(`(?i)(--?[a-z0-9_-]*(?:password|passwd|passphrase|passcode|secret|token|api[_-]?key)[a-z0-9_-]*(?:=|[\s\p{Zs}]+))([^\s"']+)`),
	regexp.MustCompile(`(?i)((?:proxy-)?authorization["']?[\s\p{Zs}]*[:=][\s\p{Zs}]*["']?(?:[a-z][a-z0-9-]*[\s\p{Zs}]+)?)([^\s"',;]+)`),
	regexp.MustCompile(`(?i)((?:^|[\s"'])(?:-u|--user)(?:=|[\s\p{Zs}]*)["']?[^\s:"']+:)([^\s"']+)`),
	regexp.MustCompile(`(?i)(\b[a-z0-9_.-]*(?:password|passwd|passphrase|passcode|secret|api[_-]?key|pin[_-]?code|otp[_-]?code|mfa[_-]?code|private[_-]?key|access[_-]?key|credential)s?[a-z0-9_.-]*["']?[\s\p{Zs}]*[:=][\s\p{Zs}]*["']?)([^\s"',;&]+)`),
	// "token" alone is prose ("invalid token: …"): only token=x, or a
	// compound name (access_token: x, auth-token=x).
	regexp.MustCompile(`(?i)(\b(?:[a-z0-9.]+[_-])+tokens?["']?[\s\p{Zs}]*[:=][\s\p{Zs}]*["']?|\btoken["']?[\s\p{Zs}]*=[\s\p{Zs}]*["']?)([^\s"',;&]+)`),
}

// scrubCredentials redacts credentialREs' secrets in s. Each rule is
// matched on its own and the secrets of all are redacted together, so that
// one rule's match cannot hide another's ("password=Authorization: Token x").
func scrubCredentials(s string) string {
	var spans [][2]int
	for i, re := range credentialREs {
		for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
			sec := m[4:6]
			if i == 0 { // Basic: only "user:password" in base64
				dec, err := base64.StdEncoding.DecodeString(s[sec[0]:sec[1]])
				if err != nil || !bytes.ContainsRune(dec, ':') {
					continue
				}
			}
			spans = append(spans, [2]int{sec[0], sec[1]})
		}
	}
	if spans == nil {
		return s
	}
	return replaceSpans(s, spans)
}

// mayMatchCredential reports whether s contains a literal every
// credentialREs match needs.
func mayMatchCredential(s string) bool {
	if strings.Contains(s, "://") || hasFoldOnlyRune(s) {
		return true
	}
	if containsFold(s, "basic") || containsFold(s, "authorization") {
		return true
	}
	if !strings.ContainsAny(s, "=-:") {
		return false
	}
	return containsFold(s, "pass") || containsFold(s, "secret") || containsFold(s, "token") ||
		containsFold(s, "key") || containsFold(s, "sig") || strings.Contains(s, "-u ") || strings.Contains(s, "-u=") ||
		strings.Contains(s, "--user") || containsCodeKey(s) || containsFold(s, "credential")
}

// The two non-ASCII letters that credentialREs' (?i) match as ASCII ones:
// ſ (long s) as s, and the Kelvin sign as k.
const (
	longS  = "\u017f"
	kelvin = "\u212a"
)

// hasFoldOnlyRune reports whether s contains ſ or the Kelvin sign: the
// ASCII-only pre-checks cannot rule out a match then ("--paſſword=x").
func hasFoldOnlyRune(s string) bool {
	return strings.Contains(s, longS) || strings.Contains(s, kelvin)
}

// containsFold reports whether s contains word (lower-case ASCII letters) in
// any ASCII case, without allocating: this runs on every audited string.
func containsFold(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		if s[i]|0x20 != word[0] {
			continue
		}
		j := 1
		for j < len(word) && s[i+j]|0x20 == word[j] {
			j++
		}
		if j == len(word) {
			return true
		}
	}
	return false
}

// secretFlag reports whether s is a command-line flag naming a secret
// ("--password", "-api-key"): the array element after it is its value.
func (r *Redactor) secretFlag(s string) bool {
	if len(s) < 2 || s[0] != '-' || len(s) > 64 || strings.ContainsAny(s, "= \t") {
		return false
	}
	return r.SecretKey(strings.TrimLeft(s, "-"))
}

// Redactor makes the copy of tool arguments that the audit log keeps. It
// never mutates its input.
type Redactor struct {
	// Keys are extra argument names (compared normalised) whose values are secret.
	Keys []string
	// Secrets are values known to this process (host secrets, the dev
	// issuer's client secrets, secrets injected into wrapped servers) that
	// are removed wherever they appear: verbatim, and (for secrets of at
	// least 12 token characters) in any case, without an idmcp_ or dev_
	// prefix, and split by single whitespace characters. They are read on
	// first use; AddSecrets adds more later.
	Secrets []string
	// MaxValue is the longest string kept whole; DefaultMaxValue when 0.
	MaxValue int

	knownState
}

func normKey(k string) string { return string(appendNormKey(nil, k)) }

// appendNormKey appends the normalised form of k to b: lower case, letters
// and digits only (unicode.ToLower per rune, as strings.ToLower does, so
// that the Kelvin sign still reads as k). A key with non-ASCII text is first
// put in NFKC and case-folded (Unicode's caseless matching, UAX #15 and
// CaseFolding.txt), so that a fullwidth ＰＡＳＳＷＯＲＤ or a ligature reads as
// the ASCII name it looks like.
func appendNormKey(b []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		if k[i] >= utf8.RuneSelf {
			k = foldCaser().String(norm.NFKC.String(k))
			break
		}
	}
	for _, c := range k {
		if c >= utf8.RuneSelf {
			c = unicode.ToLower(c)
		} else if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b = append(b, byte(c))
		}
	}
	return b
}

// SecretKey reports whether an argument named k holds a secret.
func (r *Redactor) SecretKey(k string) bool {
	var buf [64]byte // keys are short: no allocation on this per-key path
	n := appendNormKey(buf[:0], k)
	for _, p := range secretKeyParts {
		if bytes.Contains(n, p) {
			return true
		}
	}
	for _, e := range secretKeyExact {
		if string(n) == e {
			return true
		}
	}
	if r != nil {
		var ebuf [64]byte
		for _, extra := range r.Keys {
			if string(n) == string(appendNormKey(ebuf[:0], extra)) {
				return true
			}
		}
	}
	return false
}

// String redacts secrets inside s and truncates it when long, keeping its
// length and SHA-256 so equal values can still be correlated.
func (r *Redactor) String(s string) string {
	s = r.Scrub(s)
	max := DefaultMaxValue
	if r != nil && r.MaxValue > 0 {
		max = r.MaxValue
	}
	if len(s) <= max {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	keep := max / 4
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return fmt.Sprintf("%s…[truncated: %d bytes, sha256:%s]", s[:keep], len(s), hex.EncodeToString(sum[:]))
}

// Scrub removes secret-looking values and known secrets from s, without
// truncating it.
func (r *Redactor) Scrub(s string) string {
	if r != nil {
		ks := r.known()
		for _, sec := range ks.exact {
			s = strings.ReplaceAll(s, sec, Redacted)
		}
		s = ks.scrub(s)
	}
	if !maybeSecret(s) {
		return s
	}
	if mayMatchSecretValue(s) {
		s = secretValueRE.ReplaceAllString(s, Redacted)
	}
	if mayMatchCredential(s) {
		s = scrubCredentials(s)
	}
	return s
}

// maybeSecret reports, in one pass over s, whether mayMatchSecretValue or
// mayMatchCredential might: it runs on every audited string, most of which
// contain none of their literals.
func maybeSecret(s string) bool {
	eqDash, word := false, false
	for i := 0; i < len(s); i++ {
		rest := s[i:]
		switch s[i] {
		case '=':
			eqDash = true
		case '-':
			eqDash = true
			word = word || strings.HasPrefix(rest, "-u ") || strings.HasPrefix(rest, "-u=") || strings.HasPrefix(rest, "--user")
		case ':':
			eqDash = true
			if strings.HasPrefix(rest, "://") {
				return true
			}
		case 'A':
			if len(rest) >= 20 && (strings.HasPrefix(rest, "AKIA") || strings.HasPrefix(rest, "ASIA") || strings.HasPrefix(rest, "AGPA") ||
				strings.HasPrefix(rest, "AIDA") || strings.HasPrefix(rest, "AROA") || strings.HasPrefix(rest, "ANPA") ||
				strings.HasPrefix(rest, "ANVA") || strings.HasPrefix(rest, "AIPA")) {
				return true
			}
		case 'g':
			if len(rest) > 4 && rest[1] == 'h' && rest[3] == '_' || strings.HasPrefix(rest, "github_pat_") {
				return true
			}
		case 'x':
			if strings.HasPrefix(rest, "xox") {
				return true
			}
		case 's', 'r':
			if len(rest) > 3 && rest[1] == 'k' && (rest[2] == '-' || rest[2] == '_') {
				return true
			}
		case 'e':
			if strings.HasPrefix(rest, "eyJ") {
				return true
			}
		case 'i':
			if strings.HasPrefix(rest, "idmcp_") {
				return true
			}
		case 'P':
			if strings.HasPrefix(rest, "PRIVATE KEY") {
				return true
			}
		case 0xC5, 0xE2:
			if strings.HasPrefix(rest, longS) || strings.HasPrefix(rest, kelvin) {
				return true
			}
		}
		switch s[i] | 0x20 { // ASCII letters in either case; no other byte maps to these
		case 'a':
			if hasPrefixFold(rest, "authorization") {
				return true
			}
		case 'b':
			if hasPrefixFold(rest, "bearer") || hasPrefixFold(rest, "basic") {
				return true
			}
		case 'c':
			word = word || hasPrefixFold(rest, "credential")
		case 'p':
			word = word || hasPrefixFold(rest, "pass") || codeKeyAt(rest, "pin")
		case 'o':
			word = word || codeKeyAt(rest, "otp")
		case 'm':
			word = word || codeKeyAt(rest, "mfa")
		case 's':
			word = word || hasPrefixFold(rest, "secret") || hasPrefixFold(rest, "sig")
		case 't':
			word = word || hasPrefixFold(rest, "token")
		case 'k':
			word = word || hasPrefixFold(rest, "key")
		}
	}
	return eqDash && word
}

// codeKeyAt reports whether s starts with word (pin, otp, mfa) and then
// "code", "_code" or "-code", in any ASCII case: the key names of one-time
// codes, without matching every "pin" or "code" in prose.
func codeKeyAt(s, word string) bool {
	if !hasPrefixFold(s, word) {
		return false
	}
	s = s[len(word):]
	if s != "" && (s[0] == '_' || s[0] == '-') {
		s = s[1:]
	}
	return hasPrefixFold(s, "code")
}

// containsCodeKey reports whether s contains a key name codeKeyAt accepts.
func containsCodeKey(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] | 0x20 {
		case 'p', 'o', 'm':
			if codeKeyAt(s[i:], "pin") || codeKeyAt(s[i:], "otp") || codeKeyAt(s[i:], "mfa") {
				return true
			}
		}
	}
	return false
}

// hasPrefixFold reports whether s starts with word (lower-case ASCII
// letters) in any ASCII case.
func hasPrefixFold(s, word string) bool {
	if len(s) < len(word) {
		return false
	}
	for j := 0; j < len(word); j++ {
		if s[j]|0x20 != word[j] {
			return false
		}
	}
	return true
}

// mayMatchSecretValue reports whether s contains a literal that every match
// of secretValueRE starts with or contains: eyJ (JWT), bearer in any case,
// PRIVATE KEY (PEM), idmcp_. Without one, the regexp cannot match.
func mayMatchSecretValue(s string) bool {
	return strings.Contains(s, "eyJ") || strings.Contains(s, "idmcp_") ||
		strings.Contains(s, "PRIVATE KEY") || containsBearer(s) || strings.Contains(s, "k-") || strings.Contains(s, "k_") ||
		strings.Contains(s, "xox") || mayGitHub(s) || mayAWS(s)
}

// mayGitHub reports whether s contains "gh?_" or github_pat_.
func mayGitHub(s string) bool {
	for i := strings.Index(s, "gh"); i >= 0 && i+4 <= len(s); {
		if s[i+3] == '_' {
			return true
		}
		j := strings.Index(s[i+1:], "gh")
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return strings.Contains(s, "github_pat_")
}

// mayAWS reports whether s contains an upper-case A followed by three more
// upper-case letters: every AWS key id prefix has that shape.
func mayAWS(s string) bool {
	for i := strings.IndexByte(s, 'A'); i >= 0 && i+4 <= len(s); {
		if s[i+1] >= 'A' && s[i+1] <= 'Z' && s[i+2] >= 'A' && s[i+2] <= 'Z' && s[i+3] >= 'A' && s[i+3] <= 'Z' {
			return true
		}
		j := strings.IndexByte(s[i+1:], 'A')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// containsBearer reports whether s contains "bearer" in any ASCII case
// (no other letter folds to b, e, a or r, so this is what (?i:bearer) sees).
func containsBearer(s string) bool {
	const word = "bearer"
	for i := 0; i+len(word) <= len(s); i++ {
		if s[i]|0x20 != 'b' {
			continue
		}
		j := 1
		for j < len(word) && s[i+j]|0x20 == word[j] {
			j++
		}
		if j == len(word) {
			return true
		}
	}
	return false
}

// Arguments returns the redacted JSON text of raw tool arguments: values under
// secret-looking keys become Redacted, secret-looking values are replaced
// wherever they appear, long strings are truncated. Object keys are sorted.
// Input that is not JSON is recorded only by its size and digest.
func (r *Redactor) Arguments(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "{}"
	}
	if s, ok := r.fastArguments(raw); ok {
		return s
	}
	return r.generalArguments(raw)
}

// generalArguments is Arguments for any trimmed, non-empty input.
func (r *Redactor) generalArguments(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		sum := sha256.Sum256(raw)
		b, _ := json.Marshal(fmt.Sprintf("[unparsed arguments: %d bytes, sha256:%s]", len(raw), hex.EncodeToString(sum[:])))
		return string(b)
	}
	// appendValue writes what json.Marshal(r.value(v, 0)) would, without
	// building the redacted copy: FuzzArgumentsEncoding checks that.
	return string(r.appendValue(make([]byte, 0, len(raw)+16), v, 0))
}

const maxDepth = 32

// afterSecretFlag reports whether prev, an array element, is a flag naming a
// secret, so that the element after it is the secret.
func (r *Redactor) afterSecretFlag(prev any) bool {
	s, ok := prev.(string)
	return ok && r.secretFlag(s)
}

// appendValue appends the JSON encoding of the redacted copy of v, a value
// decoded with UseNumber, byte for byte as json.Marshal encodes it: object
// keys sorted, HTML-safe string escaping. Values under secret keys become
// Redacted; when two keys redact to the same text, the value of the last
// one (in sorted order of the original keys) is kept, as a map assignment
// in that order would.
func (r *Redactor) appendValue(b []byte, v any, depth int) []byte {
	if depth > maxDepth {
		return appendJSONString(b, "[too deep]")
	}
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		type member struct {
			out, key string // redacted and original key
			secret   bool
		}
		members := make([]member, len(keys))
		for i, k := range keys {
			members[i] = member{out: r.String(k), key: k, secret: r.SecretKey(k)}
		}
		// Stable: among equal redacted keys the original order, so the last
		// of each run is the one a map assignment would keep.
		sort.SliceStable(members, func(i, j int) bool { return members[i].out < members[j].out })
		b = append(b, '{')
		first := true
		for i, m := range members {
			if i+1 < len(members) && members[i+1].out == m.out {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, m.out)
			b = append(b, ':')
			if m.secret {
				b = appendJSONString(b, Redacted)
			} else {
				b = r.appendValue(b, t[m.key], depth+1)
			}
		}
		return append(b, '}')
	case []any:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			if _, ok := e.(string); ok && i > 0 && r.afterSecretFlag(t[i-1]) {
				b = appendJSONString(b, Redacted) // ["--password", "hunter2"]
				continue
			}
			b = r.appendValue(b, e, depth+1)
		}
		return append(b, ']')
	case string:
		return appendJSONString(b, r.String(t))
	case json.Number:
		s := string(t)
		if len(s) > 64 || r.Scrub(s) != s {
			return appendJSONString(b, r.String(s)) // a known secret can be all digits
		}
		return append(b, s...) // valid: the decoder produced it
	case bool:
		return strconv.AppendBool(b, t)
	case nil:
		return append(b, "null"...)
	default:
		// Not produced by a Decoder with UseNumber; encode as json.Marshal would.
		enc, err := json.Marshal(t)
		if err != nil {
			return appendJSONString(b, "[unencodable arguments]")
		}
		return append(b, enc...)
	}
}

// foldCaser returns a Unicode case folder; a cases.Caser keeps state and is
// not safe for concurrent use, so each call gets its own (the path is taken
// only for keys with non-ASCII text).
func foldCaser() cases.Caser { return cases.Fold() }
