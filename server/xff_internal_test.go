package server

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientAddr feeds X-Forwarded-For values (untrusted input) to the
// address the failed-auth limit counts against: it never panics, and the
// address is the peer's or one named in the header, never anything else.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"198.51.100.7", "203.0.113.1, 198.51.100.9", "198.51.100.10:5000, 10.1.2.3",
		"[2001:db8::1]:443", "junk, 10.0.0.1", "", ",,,", "::ffff:10.0.0.1", "fe80::1%eth0", "1.2.3.4:99999"} {
		f.Add(s, "10.0.0.1:4321")
		f.Add(s, "192.0.2.5:80")
	}
	h := &HTTP{cfg: HTTPConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	f.Fuzz(func(t *testing.T, xff, remote string) {
		// One header line, and the same entries split over two lines, name
		// the same client.
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		got := h.clientAddr(r)
		if i := strings.IndexByte(xff, ','); i >= 0 {
			r2 := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff[:i], xff[i+1:]}}}
			if got2 := h.clientAddr(r2); got2 != got {
				t.Fatalf("X-Forwarded-For %q in one line: %q, in two: %q", xff, got, got2)
			}
		}
		if got == clientKey(remote) {
			return
		}
		if a, ok := parseHop(remote); ok && clientKey(a.String()) == got {
			return
		}
		for _, hop := range strings.Split(xff, ",") {
			if a, ok := parseHop(hop); ok && clientKey(a.String()) == got {
				return
			}
		}
		t.Fatalf("clientAddr(remote %q, X-Forwarded-For %q) = %q: neither the peer nor a hop", remote, xff, got)
	})
}
