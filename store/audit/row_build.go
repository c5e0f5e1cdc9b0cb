package audit

import (
	"strings"
	"time"
)

// TSFormat is how ts is stored: UTC, RFC 3339 with exactly nine fractional
// digits. A fixed width keeps text order equal to time order (RFC3339Nano
// drops trailing zeros, and "…00.1Z" sorts before "…00Z"), which the
// --since filters, prune and plain SQL comparisons rely on.
const TSFormat = "2006-01-02T15:04:05.000000000Z07:00"

// FormatTS formats t as stored in the ts column: what t.UTC().Format(TSFormat)
// returns, written digit by digit for years 0 to 9999 (a fifth of the cost:
// every row is stamped).
func FormatTS(t time.Time) string {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Format(TSFormat)
	}
	hour, minute, sec := t.Clock()
	var b [len("2006-01-02T15:04:05.000000000Z")]byte
	put := func(at, width, v int) {
		for i := at + width - 1; i >= at; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, 4, year)
	b[4] = '-'
	put(5, 2, int(month))
	b[7] = '-'
	put(8, 2, day)
	b[10] = 'T'
	put(11, 2, hour)
	b[13] = ':'
	put(14, 2, minute)
	b[16] = ':'
	put(17, 2, sec)
	b[19] = '.'
	put(20, 9, t.Nanosecond())
	b[29] = 'Z'
	return string(b[:])
}

func (l *Log) toRow(ev Event) Row {
	t := ev.Time
	if t.IsZero() {
		t = l.cfg.Now()
	}
	r := l.cfg.Redactor
	var actors []string
	if len(ev.Actors) > 0 {
		actors = make([]string, len(ev.Actors)) // a copy: the input is never mutated
		for i, a := range ev.Actors {
			actors[i] = r.Scrub(a)
		}
	}
	// Text is made valid UTF-8 before it is hashed: the canonical encoding
	// maps every invalid byte to U+FFFD, so two different invalid byte
	// strings (from a percent-decoded URL path, say) would hash alike and an
	// edit between them would go unnoticed.
	v := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	for i := range actors {
		actors[i] = v(actors[i])
	}
	row := Row{
		TS:           FormatTS(t),
		Transport:    v(ev.Transport),
		Session:      v(ev.Session),
		Event:        v(ev.Event),
		Subject:      v(r.Scrub(ev.Subject)),
		ClientID:     v(r.Scrub(ev.ClientID)),
		ClientName:   v(r.String(ev.ClientName)),
		Actors:       actors,
		AuthMethod:   v(ev.AuthMethod),
		Tool:         v(r.String(ev.Tool)),
		Arguments:    v(argumentsText(r, ev)),
		Decision:     v(ev.Decision),
		Reason:       v(r.String(ev.Reason)),
		Outcome:      v(ev.Outcome),
		DurationUS:   ev.Duration.Microseconds(),
		ResultBytes:  ev.ResultBytes,
		ResultSHA256: ev.ResultSHA256,
		IntentID:     ev.IntentID,
		Issuer:       v(ev.Issuer),
	}
	row.prepare()
	return row
}

// prepare computes, on the caller's goroutine, everything of the row's hash
// and INSERT parameters but the id, prev_hash and hash, so that the one
// writer goroutine does less per row.
func (r *Row) prepare() {
	r.actorsText = actorsJSON(r.Actors)
	r.canon = r.canonMiddle()
	r.args = [numColumns]any{nil, r.TS, box(r.Transport), r.Session, box(r.Event), r.Subject, r.ClientID,
		r.ClientName, box(r.actorsText), box(r.AuthMethod), r.Tool, r.Arguments, box(r.Decision), box(r.Reason),
		box(r.Outcome), r.DurationUS, r.ResultBytes, r.ResultSHA256, nil, nil, r.IntentID, r.Issuer}
}

// box returns s as an INSERT parameter. Storing a string in an interface
// allocates unless it is a constant, so the values most rows share come back
// as constants: a quarter fewer allocations per row.
func box(s string) any {
	switch s {
	case "":
		return ""
	case "stdio":
		return "stdio"
	case "http":
		return "http"
	case EventToolsCall:
		return EventToolsCall
	case EventToolsList:
		return EventToolsList
	case EventAuth:
		return EventAuth
	case "[]":
		return "[]"
	case "host-secret":
		return "host-secret"
	case "jwt":
		return "jwt"
	case Allow:
		return Allow
	case Deny:
		return Deny
	case "allowed":
		return "allowed"
	case OK:
		return OK
	case Failed:
		return Failed
	case Started:
		return Started
	}
	return s
}

func argumentsText(r *Redactor, ev Event) string {
	if ev.Event != EventToolsCall && len(ev.Arguments) == 0 {
		return "{}"
	}
	return r.Arguments(ev.Arguments)
}
