package server

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/idmcp/idmcp/store/audit"
)

// suppressedWindow is how long failed authentications past an address's
// budget are counted before one summary row accounts for them.
const suppressedWindow = time.Minute

// suppressedAuth counts, per client address, the failed authentications that
// got no audit row of their own because the address was past its failure
// budget, so that the log still accounts for them: one summary row per
// address per minute ("N failed authentications suppressed").
type suppressedAuth struct {
	mu     sync.Mutex
	byAddr map[string]*suppressedCount
}

type suppressedCount struct {
	since, last time.Time
	n           int64
}

// suppressedSummary is one summary row to write.
type suppressedSummary struct {
	addr        string
	since, last time.Time
	n           int64
}

// count counts one suppressed refusal from addr at now and returns the
// summaries that are due (addr's window closed a minute after it opened).
func (s *suppressedAuth) count(addr string, now time.Time) []suppressedSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byAddr == nil {
		s.byAddr = map[string]*suppressedCount{}
	}
	var due []suppressedSummary
	c := s.byAddr[addr]
	if c != nil && now.Sub(c.since) >= suppressedWindow {
		due = append(due, suppressedSummary{addr: addr, since: c.since, last: c.last, n: c.n})
		c = nil
	}
	if c == nil {
		if len(s.byAddr) >= maxLimiters {
			// Bounded like the limiter tables: the oldest windows are
			// summarised early rather than dropped.
			due = append(due, s.takeLocked(now, true)...)
		}
		c = &suppressedCount{since: now}
		s.byAddr[addr] = c
	}
	c.n++
	c.last = now
	return due
}

// flush returns (and forgets) the windows that are due at now, or all of
// them.
func (s *suppressedAuth) flush(now time.Time, all bool) []suppressedSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.takeLocked(now, all)
}

func (s *suppressedAuth) takeLocked(now time.Time, all bool) []suppressedSummary {
	var due []suppressedSummary
	for addr, c := range s.byAddr {
		if all || now.Sub(c.since) >= suppressedWindow {
			due = append(due, suppressedSummary{addr: addr, since: c.since, last: c.last, n: c.n})
			delete(s.byAddr, addr)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].since.Before(due[j].since) })
	return due
}

// recordSuppressed writes one deny row per summary. A failure is logged by
// record; the counts are then lost, which the log's own audit/recovered row
// accounts for.
func (h *HTTP) recordSuppressed(ctx context.Context, sums []suppressedSummary) {
	for _, s := range sums {
		ev := h.core.event(nil, "http", audit.EventAuth)
		ev.Decision = audit.Deny
		ev.Reason = fmt.Sprintf("%d failed authentications suppressed from %s between %s and %s (past its failed-authentication budget: answered 429 or 401 without a row each)",
			s.n, s.addr, audit.FormatTS(s.since), audit.FormatTS(s.last))
		_ = h.core.record(context.WithoutCancel(ctx), ev)
	}
}

// flushSuppressed writes the due summaries every few seconds until ctx is
// done, then all that are left.
func (h *HTTP) flushSuppressed(ctx context.Context) {
	t := time.NewTicker(suppressedWindow / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.recordSuppressed(ctx, h.suppressed.flush(h.core.now(), true))
			return
		case <-t.C:
			h.recordSuppressed(ctx, h.suppressed.flush(h.core.now(), false))
		}
	}
}
