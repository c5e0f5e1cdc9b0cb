package tools_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

// fakeAuditReader records the filter it was asked for.
type fakeAuditReader struct {
	got  *audit.Filter
	rows []audit.Row
	err  error
}

func (f *fakeAuditReader) Query(_ context.Context, flt audit.Filter) ([]audit.Row, error) {
	f.got = &flt
	return f.rows, f.err
}

var _ tools.AuditReader = (*fakeAuditReader)(nil)

func TestAuditQuery(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	alice := &auth.Principal{Subject: "alice", Scopes: []string{"audit:read"}, Method: auth.MethodHostSecret}
	admin := &auth.Principal{Subject: "root", Scopes: []string{"audit:read"}, Roles: []string{"admin"}}
	for _, tc := range []struct {
		name string
		p    *auth.Principal
		args string
		want audit.Filter
		err  string
	}{
		{"Defaults", alice, `{}`, audit.Filter{Subject: "alice", AuthMethod: "host-secret", Limit: 50}, ""},
		{"OwnSubject", alice, `{"subject":"alice","tool":"todo_list","decision":"deny","event":"tools/call","limit":500}`,
			audit.Filter{Subject: "alice", AuthMethod: "host-secret", Tool: "todo_list", Decision: "deny", Event: "tools/call", Limit: 500}, ""},
		{"SinceDays", alice, `{"since":"7d"}`, audit.Filter{Subject: "alice", AuthMethod: "host-secret", Since: now.Add(-7 * 24 * time.Hour), Limit: 50}, ""},
		{"SinceDuration", alice, `{"since":"90m"}`, audit.Filter{Subject: "alice", AuthMethod: "host-secret", Since: now.Add(-90 * time.Minute), Limit: 50}, ""},
		{"SinceTime", alice, `{"since":"2026-11-01T00:00:00Z"}`, audit.Filter{Subject: "alice", AuthMethod: "host-secret", Since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Limit: 50}, ""},
		{"OwnRowsAreSubjectAndClient", &auth.Principal{Subject: "root", ClientID: "laptop", Scopes: []string{"audit:read"}, Method: auth.MethodHostSecret}, `{}`,
			audit.Filter{Subject: "root", ClientID: "laptop", AuthMethod: "host-secret", Limit: 50}, ""},
		// A JWT with sub=root is not the OS user root: its own rows are
		// those of its issuer, method and client too.
		{"OwnRowsAreIssuerAndMethod", &auth.Principal{Subject: "root", ClientID: "app", Scopes: []string{"audit:read"}, Method: auth.MethodJWT, Issuer: "https://iss.example"}, `{}`,
			audit.Filter{Subject: "root", ClientID: "app", AuthMethod: "jwt", Issuer: "https://iss.example", Limit: 50}, ""},
		{"NoMethodSeesNothing", &auth.Principal{Subject: "root", Scopes: []string{"audit:read"}}, `{}`,
			audit.Filter{Subject: "root", AuthMethod: "-", Limit: 50}, ""},
		{"AdminAnySubject", admin, `{"subject":"bob"}`, audit.Filter{Subject: "bob", Limit: 50}, ""},
		{"AdminAllSubjects", admin, `{}`, audit.Filter{Limit: 50}, ""},
		{"OtherSubjectRefused", alice, `{"subject":"bob"}`, audit.Filter{}, `you may only query your own rows (subject "alice"); the admin role sees every subject`},
		{"LimitTooHigh", alice, `{"limit":501}`, audit.Filter{}, "limit must be 1-500"},
		{"LimitZero", alice, `{"limit":0}`, audit.Filter{}, "limit must be 1-500"},
		{"BadDecision", alice, `{"decision":"maybe"}`, audit.Filter{}, `decision "maybe": want allow or deny`},
		{"BadEvent", alice, `{"event":"x"}`, audit.Filter{}, `event "x"`},
		{"BadSince", alice, `{"since":"yesterday"}`, audit.Filter{}, `since "yesterday": want a duration`},
		{"NegativeSince", alice, `{"since":"-1h"}`, audit.Filter{}, "must be positive"},
		{"NoSQL", alice, `{"where":"1=1"}`, audit.Filter{}, "unknown argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeAuditReader{rows: []audit.Row{{ID: 7, TS: "2026-11-24T11:00:00Z", Event: "tools/call", Subject: "alice",
				Tool: "todo_list", Decision: "allow", Outcome: "ok", Hash: "h", PrevHash: "p"}}}
			spec := tools.AuditQuery(tools.AuditQueryConfig{Reader: r, Now: func() time.Time { return now }})
			res, err := spec.Handler(context.Background(), tc.p, json.RawMessage(tc.args))
			if tc.err != "" {
				if err == nil || !errors.Is(err, tools.ErrInput) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err=%v, want an input error containing %q", err, tc.err)
				}
				if r.got != nil {
					t.Fatal("the log was queried despite the error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.got == nil || !r.got.Since.Equal(tc.want.Since) {
				t.Fatalf("filter=%+v, want %+v", r.got, tc.want)
			}
			got := *r.got
			got.Since, tc.want.Since = time.Time{}, time.Time{}
			if got != tc.want {
				t.Fatalf("filter=%+v, want %+v", got, tc.want)
			}
			var out struct {
				Rows  []map[string]any `json:"rows"`
				Count int              `json:"count"`
			}
			if err := json.Unmarshal([]byte(res.Text), &out); err != nil {
				t.Fatal(err)
			}
			if out.Count != 1 || out.Rows[0]["id"] != 7.0 || out.Rows[0]["tool"] != "todo_list" {
				t.Fatalf("result=%s", res.Text)
			}
			if _, ok := out.Rows[0]["hash"]; ok {
				t.Fatal("rows carry the hash chain; the caller's view should not")
			}
		})
	}
}

func TestAuditQuery_ReaderError(t *testing.T) {
	spec := tools.AuditQuery(tools.AuditQueryConfig{Reader: &fakeAuditReader{err: errors.New("disk on fire")}})
	_, err := spec.Handler(context.Background(), &auth.Principal{Subject: "a"}, nil)
	if err == nil || errors.Is(err, tools.ErrInput) {
		t.Fatalf("err=%v, want an internal error", err)
	}
}
