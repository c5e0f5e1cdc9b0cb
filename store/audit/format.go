package audit

import (
	"encoding/json"
	"strconv"
	"strings"
)

// ExportRow is one row as `idmcp audit export --format jsonl` writes it for
// log shippers and SIEMs: the stored columns with arguments as a JSON value
// (an object for tool calls) rather than a string, and the hashes, so that the
// receiving side keeps the chain head as an anchor.
type ExportRow struct {
	ID           int64           `json:"id"`
	TS           string          `json:"ts"`
	Transport    string          `json:"transport"`
	Session      string          `json:"session"`
	Event        string          `json:"event"`
	Subject      string          `json:"subject"`
	ClientID     string          `json:"client_id"`
	ClientName   string          `json:"client_name"`
	Actors       []string        `json:"actors"`
	AuthMethod   string          `json:"auth_method"`
	Tool         string          `json:"tool"`
	Arguments    json.RawMessage `json:"arguments"`
	Decision     string          `json:"decision"`
	Reason       string          `json:"reason"`
	Outcome      string          `json:"outcome"`
	DurationUS   int64           `json:"duration_us"`
	ResultBytes  int64           `json:"result_bytes"`
	ResultSHA256 string          `json:"result_sha256"`
	PrevHash     string          `json:"prev_hash"`
	Hash         string          `json:"hash"`
	IntentID     int64           `json:"intent_id"`
	Issuer       string          `json:"issuer"`
	// Unfinished marks an intent row without an outcome row (not a column:
	// outcome keeps the stored "started", which the hash covers).
	Unfinished bool `json:"unfinished,omitempty"`
}

// Export returns r in export form. Arguments that are not valid JSON (a
// damaged row) are exported as a JSON string.
func (r Row) Export() ExportRow {
	args := json.RawMessage(r.Arguments)
	if !json.Valid(args) {
		args, _ = json.Marshal(r.Arguments)
	}
	actors := r.Actors
	if actors == nil {
		actors = []string{}
	}
	return ExportRow{
		ID: r.ID, TS: r.TS, Transport: r.Transport, Session: r.Session, Event: r.Event, Subject: r.Subject,
		ClientID: r.ClientID, ClientName: r.ClientName, Actors: actors, AuthMethod: r.AuthMethod, Tool: r.Tool,
		Arguments: args, Decision: r.Decision, Reason: r.Reason, Outcome: r.Outcome, DurationUS: r.DurationUS,
		ResultBytes: r.ResultBytes, ResultSHA256: r.ResultSHA256, PrevHash: r.PrevHash, Hash: r.Hash,
		IntentID: r.IntentID, Issuer: r.Issuer, Unfinished: r.Unfinished,
	}
}

// CSVHeader is the header line of `idmcp audit query --csv`.
func CSVHeader() []string {
	return strings.Split(strings.ReplaceAll(columns, " ", ""), ",")
}

// CSVRecord returns r as CSV fields in CSVHeader order. A text field that a
// spreadsheet would evaluate as a formula (starting with = + - @, tab or CR)
// is prefixed with a single quote (OWASP "CSV injection"): arguments, client
// names and reasons come from clients.
func (r Row) CSVRecord() []string {
	text := func(s string) string {
		if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
			return "'" + s
		}
		return s
	}
	return []string{
		strconv.FormatInt(r.ID, 10), r.TS, text(r.Transport), text(r.Session), text(r.Event), text(r.Subject),
		text(r.ClientID), text(r.ClientName), text(actorsJSON(r.Actors)), text(r.AuthMethod), text(r.Tool),
		text(r.Arguments), text(r.Decision), text(r.Reason), text(r.Outcome), strconv.FormatInt(r.DurationUS, 10),
		strconv.FormatInt(r.ResultBytes, 10), r.ResultSHA256, r.PrevHash, r.Hash, strconv.FormatInt(r.IntentID, 10), text(r.Issuer),
	}
}

// ShownOutcome is the outcome a human-readable listing shows: the stored one,
// or Unfinished for an intent row without an outcome row.
func (r Row) ShownOutcome() string {
	if r.Unfinished {
		return Unfinished
	}
	return r.Outcome
}
