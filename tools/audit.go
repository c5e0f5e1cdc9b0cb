package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store/audit"
)

// ScopeAuditRead is the scope of audit_query.
const ScopeAuditRead = "audit:read"

// Limits of audit_query.
const (
	DefaultAuditLimit = 50
	MaxAuditLimit     = 500
)

// AuditReader is what audit_query needs from the audit log: a filtered,
// parameterised query (never SQL from the caller).
type AuditReader interface {
	Query(ctx context.Context, f audit.Filter) ([]audit.Row, error)
}

var _ AuditReader = (*audit.Reader)(nil)

// AuditQueryConfig configures audit_query.
type AuditQueryConfig struct {
	// Reader is the audit log, opened read-only.
	Reader AuditReader
	// AllSubjectsRole is the role whose holders see every subject's rows;
	// other callers see only rows about themselves. RoleAdmin when empty.
	AllSubjectsRole string
	// Now is the clock for "since"; time.Now when nil.
	Now func() time.Time
}

// AuditEntry is one row as audit_query returns it: the request and outcome
// columns, without the hash chain.
type AuditEntry struct {
	ID         int64    `json:"id"`
	TS         string   `json:"ts"`
	Event      string   `json:"event"`
	Transport  string   `json:"transport"`
	Subject    string   `json:"subject"`
	ClientID   string   `json:"client_id"`
	ClientName string   `json:"client_name,omitempty"`
	Actors     []string `json:"actors"`
	AuthMethod string   `json:"auth_method,omitempty"`
	Tool       string   `json:"tool,omitempty"`
	Arguments  string   `json:"arguments,omitempty"`
	Decision   string   `json:"decision,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Outcome    string   `json:"outcome,omitempty"`
	DurationUS int64    `json:"duration_us,omitempty"`
	// IntentID names the intent row an outcome row completes.
	IntentID int64 `json:"intent_id,omitempty"`
}

// AuditQuery returns the audit_query tool: the caller's view of recent audit
// rows. Arguments are stored redacted, so nothing secret comes back. A caller
// without cfg.AllSubjectsRole sees only rows whose subject is their own.
func AuditQuery(cfg AuditQueryConfig) Spec {
	if cfg.AllSubjectsRole == "" {
		cfg.AllSubjectsRole = RoleAdmin
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	schema := fmt.Sprintf(`{"type":"object","properties":{`+
		`"since":{"type":"string","maxLength":64,"description":"Only rows at or after this time: a duration back from now (30m, 24h) or an RFC 3339 time (2026-01-02T15:04:05Z)."},`+
		`"subject":{"type":"string","maxLength":256,"description":"Only rows about this subject (the human). Without the %[1]s role you may only name yourself."},`+
		`"tool":{"type":"string","maxLength":64,"description":"Only rows about this tool."},`+
		`"event":{"type":"string","enum":["auth","tools/list","tools/call","server/start","server/stop","audit/prune","audit/recovered"],"description":"Only rows of this event kind."},`+
		`"decision":{"type":"string","enum":["allow","deny"],"description":"Only allowed or only denied requests."},`+
		`"limit":{"type":"integer","minimum":1,"maximum":%[2]d,"description":"At most this many rows, the newest ones (default %[3]d)."}`+
		`},"additionalProperties":false}`, cfg.AllSubjectsRole, MaxAuditLimit, DefaultAuditLimit)
	return Spec{
		Name:  "audit_query",
		Title: "Query the audit log",
		Description: "Show recent audit log rows (who called which tool through which agent, the decision and its reason), oldest first, filtered by since, subject, tool, event and decision. " +
			"Callers without the " + cfg.AllSubjectsRole + " role see only their own rows.",
		InputSchema: json.RawMessage(schema),
		Scopes:      []string{ScopeAuditRead},
		ReadOnly:    true, Idempotent: true,
		Handler: func(ctx context.Context, p *auth.Principal, args json.RawMessage) (*Result, error) {
			var a struct {
				Since    string `json:"since"`
				Subject  string `json:"subject"`
				Tool     string `json:"tool"`
				Event    string `json:"event"`
				Decision string `json:"decision"`
				Limit    *int   `json:"limit"`
			}
			if err := Decode(args, &a); err != nil {
				return nil, err
			}
			if cfg.Reader == nil {
				return nil, errors.New("no audit log configured")
			}
			f := audit.Filter{Subject: a.Subject, Tool: a.Tool, Event: a.Event, Decision: a.Decision, Limit: DefaultAuditLimit}
			if a.Limit != nil {
				if *a.Limit < 1 || *a.Limit > MaxAuditLimit {
					return nil, fmt.Errorf("limit must be 1-%d: %w", MaxAuditLimit, ErrInput)
				}
				f.Limit = *a.Limit
			}
			switch a.Decision {
			case "", audit.Allow, audit.Deny:
			default:
				return nil, fmt.Errorf("decision %q: want allow or deny: %w", a.Decision, ErrInput)
			}
			switch a.Event {
			case "", audit.EventAuth, audit.EventToolsList, audit.EventToolsCall, audit.EventServerStart, audit.EventServerStop,
				audit.EventPrune, audit.EventRecovered:
			default:
				return nil, fmt.Errorf("event %q: want auth, tools/list, tools/call, server/start, server/stop, audit/prune or audit/recovered: %w", a.Event, ErrInput)
			}
			if a.Since != "" {
				t, err := parseSince(a.Since, cfg.Now())
				if err != nil {
					return nil, err
				}
				f.Since = t
			}
			scope := "all subjects"
			if !p.HasRole(cfg.AllSubjectsRole) {
				if a.Subject != "" && a.Subject != p.Subject {
					return nil, fmt.Errorf("you may only query your own rows (subject %q); the %s role sees every subject: %w", p.Subject, cfg.AllSubjectsRole, ErrInput)
				}
				// Own rows are this subject through this agent, authenticated
				// the same way, from the same issuer: every stdio profile
				// shares the OS user as subject, and a token's sub may equal a
				// local user name (a JWT with sub=root must not see the OS
				// user root's stdio rows), so the subject alone would show
				// other hosts', methods' and issuers' rows.
				f.Subject, f.ClientID, f.AuthMethod, f.Issuer = p.Subject, p.ClientID, string(p.Method), p.Issuer
				if f.AuthMethod == "" {
					f.AuthMethod = "-" // no method matches no row, rather than every row
				}
				scope = "own rows (subject " + p.Subject + " via client " + p.ClientID + ", " + string(p.Method) + ")"
				if p.Issuer != "" {
					scope += " from issuer " + p.Issuer
				}
			}
			rows, err := cfg.Reader.Query(ctx, f)
			if err != nil {
				return nil, fmt.Errorf("audit_query: %w", err)
			}
			entries := make([]AuditEntry, 0, len(rows))
			for _, r := range rows {
				entries = append(entries, AuditEntry{ID: r.ID, TS: r.TS, Event: r.Event, Transport: r.Transport, Subject: r.Subject,
					ClientID: r.ClientID, ClientName: r.ClientName, Actors: nonNil(r.Actors), AuthMethod: r.AuthMethod, Tool: r.Tool,
					Arguments: r.Arguments, Decision: r.Decision, Reason: r.Reason, Outcome: r.ShownOutcome(), DurationUS: r.DurationUS,
					IntentID: r.IntentID})
			}
			return JSONResult(map[string]any{"rows": entries, "count": len(entries), "limit": f.Limit, "visible": scope})
		},
	}
}

// parseSince accepts a duration back from now or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	// "7d", as the CLI accepts: days are 24 h here.
	if n, err := strconv.Atoi(strings.TrimSuffix(s, "d")); err == nil && strings.HasSuffix(s, "d") && n >= 0 && n <= 3660 {
		return now.Add(-time.Duration(n) * 24 * time.Hour), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("since %q: a duration back from now must be positive: %w", s, ErrInput)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("since %q: want a duration (30m, 24h, 7d) or an RFC 3339 time (2026-01-02T15:04:05Z): %w", s, ErrInput)
}
