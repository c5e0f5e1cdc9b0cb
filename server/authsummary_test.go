package server_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/idmcp/idmcp/server"
)

// TestHTTP_SuppressedFailuresSummarised: past its failed-authentication
// budget an address's refusals get no row each, but they are counted: one
// summary row per address per minute says how many were suppressed.
func TestHTTP_SuppressedFailuresSummarised(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	hs := MustHarness(t, newFakeVerifier(), func(c *server.HTTPConfig) {
		c.Now = now
		c.RateLimit = server.RateLimit{FailedAuthPerAddr: rate.Every(time.Hour), FailedAuthBurst: 2}
	})
	summaries := func() []string {
		var out []string
		for _, r := range hs.auditRows() {
			if strings.Contains(r.Reason, "failed authentications suppressed") {
				out = append(out, r.Reason)
			}
		}
		return out
	}
	for range 2 {
		if r := hs.do("POST", "bad", listBody(), nil); r.status != 401 {
			t.Fatalf("within the budget: %d", r.status)
		}
	}
	for range 5 {
		if r := hs.do("POST", "bad", listBody(), nil); r.status != 429 {
			t.Fatalf("past the budget: %d, want 429", r.status)
		}
	}
	if s := summaries(); len(s) != 0 {
		t.Fatalf("a summary before the minute is over: %v", s)
	}
	clock.Add(int64(61 * time.Second))
	hs.do("POST", "bad", listBody(), nil) // opens the next window, closes the first
	s := summaries()
	if len(s) != 1 || !strings.HasPrefix(s[0], "5 failed authentications suppressed from 127.0.0.1") {
		t.Fatalf("summaries %q, want one counting 5 from 127.0.0.1", s)
	}
}

// TestHTTP_ClientNameFromUserAgent: a stateless HTTP request without
// clientInfo (everything after initialize) is recorded with its User-Agent,
// marked as such.
func TestHTTP_ClientNameFromUserAgent(t *testing.T) {
	hs := MustHarness(t, newFakeVerifier(), nil)
	if r := hs.do("POST", tokReader, listBody(), map[string]string{"User-Agent": "ua-test/9"}); r.status != 200 {
		t.Fatalf("tools/list: %d", r.status)
	}
	rows := hs.auditRows()
	last := rows[len(rows)-1]
	if last.Event != "tools/list" || last.ClientName != "User-Agent: ua-test/9" {
		t.Fatalf("row %s client_name %q, want the User-Agent", last.Event, last.ClientName)
	}
}
