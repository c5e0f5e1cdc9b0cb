package jwt

import (
	"crypto/sha256"
	"slices"
	"sync"
	"time"

	"github.com/idmcp/idmcp/auth"
)

// tokenCache remembers verified tokens by their SHA-256 so the hot path does
// not repeat signature checks. Entries live at most MaxCacheTTL and never
// beyond the token's exp. The token itself is never stored.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	ttl     time.Duration
	entries map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	p       *auth.Principal
	expires time.Time
}

// newTokenCache returns a cache of at most max entries, each kept at most
// ttl (MaxCacheTTL when 0); nil (no cache) when max <= 0.
func newTokenCache(max int, ttl time.Duration) *tokenCache {
	if max <= 0 {
		return nil
	}
	if ttl <= 0 {
		ttl = MaxCacheTTL
	}
	return &tokenCache{max: max, ttl: ttl, entries: make(map[[sha256.Size]byte]cacheEntry)}
}

// get returns a copy of the cached principal for key, or nil.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) *auth.Principal {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		return nil
	}
	return clonePrincipal(e.p)
}

// put stores p until min(now+ttl, exp). When full it first drops
// expired entries, then arbitrary ones (map order), so it never grows past max.
func (c *tokenCache) put(key [sha256.Size]byte, p *auth.Principal, exp, now time.Time) {
	if c == nil {
		return
	}
	expires := now.Add(c.ttl)
	if exp.Before(expires) {
		expires = exp
	}
	if !now.Before(expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry{p: clonePrincipal(p), expires: expires}
}

// len returns the number of entries (for tests through export_test.go).
func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// clonePrincipal returns a deep copy, so a caller that adjusts its principal
// (the client's self-reported name) cannot change what the cache holds.
func clonePrincipal(p *auth.Principal) *auth.Principal {
	if p == nil {
		return nil
	}
	q := *p
	q.Actors = slices.Clone(p.Actors)
	q.Scopes = slices.Clone(p.Scopes)
	q.Roles = slices.Clone(p.Roles)
	if q.Actors == nil {
		q.Actors = []string{}
	}
	return &q
}

// has reports whether key has a live entry (positive or negative).
func (c *tokenCache) has(key [sha256.Size]byte, now time.Time) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	return ok && now.Before(e.expires)
}
