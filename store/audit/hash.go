package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"strconv"
	"unicode/utf8"
)

// columns lists the stored columns in table order; the hash covers all but
// hash (intent_id and issuer only when set).
const columns = "id, ts, transport, session, event, subject, client_id, client_name, actors, auth_method, tool, arguments, decision, reason, outcome, duration_us, result_bytes, result_sha256, prev_hash, hash, intent_id, issuer"

// actorsJSON is the stored form of Actors: always a JSON array.
func actorsJSON(a []string) string {
	if len(a) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(a)
	return string(b)
}

// ComputeHash returns the row hash: SHA-256 over a canonical encoding, the
// compact JSON array of every column but hash, in table order, actors in
// stored form, exactly as encoding/json marshals it (HTML-safe escaping).
// The hash has no key: it detects changes that do not rewrite every later
// row; a full rewrite of the chain (or cutting its tail) shows only against a
// head hash kept elsewhere (audit verify's output, an export to a SIEM).
func ComputeHash(r *Row) string {
	var h hasher
	return h.sum(r, r.canonMiddle())
}

// canonMiddle returns the canonical encoding between the id and prev_hash:
// ,"ts",…,"result_sha256",
func (r *Row) canonMiddle() []byte {
	actors := r.actorsText
	if actors == "" {
		actors = actorsJSON(r.Actors)
	}
	// Written by hand rather than json.Marshal([]any{...}): reflection was a
	// third of the writer's time. FuzzComputeHash checks that the bytes are
	// json.Marshal's.
	b := make([]byte, 0, 320+len(r.Arguments)+len(r.Reason))
	for _, s := range [...]string{r.TS, r.Transport, r.Session, r.Event, r.Subject, r.ClientID, r.ClientName,
		actors, r.AuthMethod, r.Tool, r.Arguments, r.Decision, r.Reason, r.Outcome} {
		b = append(b, ',')
		b = appendJSONString(b, s)
	}
	b = append(b, ',')
	b = strconv.AppendInt(b, r.DurationUS, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.ResultBytes, 10)
	b = append(b, ',')
	b = appendJSONString(b, r.ResultSHA256)
	return append(b, ',')
}

// ComputeHMAC returns the keyed row hash: HMAC-SHA-256 under key over the
// same canonical encoding as ComputeHash, in hex. Rows after an audit/key
// row carry it (key.go).
func ComputeHMAC(key []byte, r *Row) string {
	h := hasher{mac: hmac.New(sha256.New, key)}
	return h.sum(r, r.canonMiddle())
}

// hasher computes row hashes, reusing its buffer for the canonical encoding
// (the writer hashes every row, one after another). With mac set the hash is
// HMAC-SHA-256 under its key, else plain SHA-256.
type hasher struct {
	buf []byte
	mac hash.Hash
	out []byte
}

// maxHashBuf is the largest buffer a hasher keeps between rows.
const maxHashBuf = 64 << 10

// sum completes the canonical encoding middle (canonMiddle) with the id and
// prev_hash and returns its SHA-256 in hex.
func (h *hasher) sum(r *Row, middle []byte) string {
	b := append(h.buf[:0], '[')
	b = strconv.AppendInt(b, r.ID, 10)
	b = append(b, middle...)
	b = appendJSONString(b, r.PrevHash)
	if r.IntentID != 0 || r.Issuer != "" {
		// intent_id (migration 003) and issuer (005) join the encoding only
		// when set, so that the rows written before them keep their hashes;
		// an edit to or from the empty value changes the array's length and
		// so the hash.
		b = append(b, ',')
		b = strconv.AppendInt(b, r.IntentID, 10)
	}
	if r.Issuer != "" {
		b = append(b, ',')
		b = appendJSONString(b, r.Issuer)
	}
	b = append(b, ']')
	var sum []byte
	if h.mac != nil {
		h.mac.Reset()
		h.mac.Write(b)
		h.out = h.mac.Sum(h.out[:0])
		sum = h.out
	} else {
		s := sha256.Sum256(b)
		sum = s[:]
	}
	if cap(b) <= maxHashBuf {
		h.buf = b
	}
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], sum)
	return string(hx[:])
}

// appendJSONString appends s as encoding/json writes a string with HTML
// escaping: ", \\ and control characters escaped (\b \f \n \r \t or \u00XX),
// < > & as \u003c \u003e \u0026, invalid UTF-8 as \ufffd, U+2028 and
// U+2029 as \u2028 and \u2029.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
