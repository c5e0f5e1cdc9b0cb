package jwt

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrDiscovery is wrapped by discovery errors that retrying will not fix: the
// metadata names another issuer, has no jwks_uri, or points at an insecure one.
var ErrDiscovery = errors.New("authorization server metadata unusable")

// errNotFound marks a metadata location that does not exist, so the next one
// is tried.
var errNotFound = errors.New("no metadata at this location")

// newHTTPClient returns the client used for the identity provider: bounded in
// time at every step, at most three redirects and never from https to http,
// every response body capped at maxBytes. A given client is copied and its
// transport wrapped; it is never modified.
func newHTTPClient(given *http.Client, timeout time.Duration, maxBytes int64) *http.Client {
	var c http.Client
	if given != nil {
		c = *given
	} else {
		d := &net.Dialer{Timeout: timeout / 2, KeepAlive: 30 * time.Second}
		// MPTCP sockets escape Landlock's TCP rules (NOTES §3).
		d.SetMultipathTCP(false)
		c.Transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   timeout / 2,
			ResponseHeaderTimeout: timeout,
			MaxIdleConns:          4,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		}
		c.Timeout = timeout
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("stopped after 3 redirects")
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return errors.New("refusing a redirect from https to http")
			}
			return nil
		}
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = capTransport{rt: rt, max: maxBytes}
	return &c
}

// capTransport caps every response body: jwkset decodes the JWKS with an
// unbounded json.Decoder, so the cap has to live below it.
type capTransport struct {
	rt  http.RoundTripper
	max int64
}

func (t capTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: response of %d bytes exceeds the %d-byte limit", req.URL.Redacted(), resp.ContentLength, t.max)
	}
	resp.Body = &cappedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

// cappedBody fails a read that would go past the cap, instead of silently
// truncating (a truncated JWKS must not parse as a smaller valid one).
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.rc.Read(one[:]); n > 0 {
			return 0, errors.New("response body exceeds the size limit")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// metadata is the part of RFC 8414 / OpenID Connect discovery metadata we use.
type metadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// metadataURLs returns where issuer's metadata may be, in the order MCP
// clients try them: RFC 8414 §3.1 (well-known segment inserted before the
// issuer's path), then OpenID Connect Discovery 1.0 §4 (appended to it).
func metadataURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	p := strings.TrimSuffix(u.Path, "/")
	rfc8414 := *u
	rfc8414.Path = "/.well-known/oauth-authorization-server" + p
	oidc := *u
	oidc.Path = p + "/.well-known/openid-configuration"
	return []string{rfc8414.String(), oidc.String()}, nil
}

// discoverJWKS finds the issuer's jwks_uri. The metadata's issuer must equal
// issuer exactly (RFC 8414 §3.3), or the keys could belong to someone else.
func discoverJWKS(ctx context.Context, c *http.Client, issuer string) (string, error) {
	urls, err := metadataURLs(issuer)
	if err != nil {
		return "", err
	}
	var errs []error
	for _, u := range urls {
		md, err := fetchMetadata(ctx, c, u)
		if errors.Is(err, errNotFound) {
			errs = append(errs, err)
			continue
		}
		if err != nil {
			return "", err
		}
		if md.Issuer != issuer {
			return "", fmt.Errorf("%s: metadata issuer %q is not the configured issuer %q: %w", u, md.Issuer, issuer, ErrDiscovery)
		}
		if md.JWKSURI == "" {
			return "", fmt.Errorf("%s: metadata has no jwks_uri: %w", u, ErrDiscovery)
		}
		if err := checkURL(md.JWKSURI); err != nil {
			return "", fmt.Errorf("%s: jwks_uri: %w: %w", u, err, ErrDiscovery)
		}
		return md.JWKSURI, nil
	}
	return "", fmt.Errorf("discover keys of issuer %s: %w", issuer, errors.Join(errs...))
}

func fetchMetadata(ctx context.Context, c *http.Client, u string) (*metadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch metadata: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("%s: HTTP %d: %w", u, resp.StatusCode, errNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	}
	var md metadata
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		return nil, fmt.Errorf("%s: decode metadata: %w", u, err)
	}
	return &md, nil
}
