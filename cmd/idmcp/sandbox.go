package main

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/idmcp/idmcp/sandbox"
	"github.com/idmcp/idmcp/tools"
)

// requireABIEnv is a test seam, read only here: a Landlock ABI version that
// --sandbox strict demands on top of sandbox.MinNetworkABI (mapped to
// sandbox.Policy.RequireABI). Tests set it above what the kernel has to see
// strict refuse to start. It is not a product setting and not documented in
// the usage text.
const requireABIEnv = "IDMCP_SANDBOX_REQUIRE_ABI"

// systemFilesHTTP returns the files name resolution (pure-Go resolver) and
// TLS verification read after start-up; HTTP mode grants them read-only. The
// system cert pool itself is loaded before the sandbox (see applySandbox).
func systemFilesHTTP() []string {
	return []string{
		"/etc/resolv.conf",
		"/etc/hosts",
		"/etc/nsswitch.conf",
		"/etc/ssl/certs/ca-certificates.crt",
	}
}

// sandboxInputs is what a serving process knows that decides its sandbox
// policy. Both transports fill it once the tool set is built.
type sandboxInputs struct {
	// Mode is --sandbox.
	Mode sandbox.Mode
	// DataDir holds the databases; it is always granted read-write.
	DataDir string
	// Workspace is the files tools' absolute root, "" without --workspace.
	Workspace string
	// Tools is the enabled tool set: files_write makes the workspace
	// read-write, the reading files tools alone make it read-only, and with
	// no files tool it is not granted at all.
	Tools []tools.Spec
	// IdentityProvider lists the URLs the server fetches after start-up
	// (HTTP mode: the issuer's metadata, the JWKS). Their ports, or the
	// ports of the proxies the environment routes them through, are the only
	// TCP destinations allowed, and the files name resolution and TLS need
	// become readable. Empty (stdio) allows no TCP at all.
	IdentityProvider []string
}

// sandboxPolicy turns what the server was configured with into the sandbox
// policy: the data dir read-write; the workspace read-write, read-only or
// absent depending on the enabled files tools; no TCP bind ever (listeners
// are opened before, with sandbox.Listen); TCP connect only to the identity
// provider's ports. It reads the requireABIEnv test seam.
func sandboxPolicy(in sandboxInputs) (sandbox.Policy, error) {
	p := sandbox.Policy{Mode: in.Mode, DataDir: in.DataDir}
	if in.Workspace != "" {
		var read, write bool
		for _, s := range in.Tools {
			switch {
			case s.Name == "files_write":
				read, write = true, true
			case strings.HasPrefix(s.Name, "files_"):
				read = true
			}
		}
		if read {
			p.Workspace, p.WorkspaceWritable = in.Workspace, write
		}
	}
	proxyFor := httpproxy.FromEnvironment().ProxyFunc()
	for _, raw := range in.IdentityProvider {
		host, port, err := connectTo(raw, proxyFor)
		if err != nil {
			return sandbox.Policy{}, fmt.Errorf("sandbox policy: %w", err)
		}
		ports := []uint16{port}
		if needsDNS(host) {
			// DNS goes over UDP, which the seccomp filter otherwise
			// refuses; an answer too large for UDP is asked again over
			// TCP port 53.
			ports = append(ports, 53)
			p.AllowUDP = true
		}
		for _, port := range ports {
			if !slices.Contains(p.ConnectTCP, port) {
				p.ConnectTCP = append(p.ConnectTCP, port)
			}
		}
	}
	if len(in.IdentityProvider) > 0 {
		p.ReadOnlyFiles = systemFilesHTTP()
	}
	if v, ok := os.LookupEnv(requireABIEnv); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return sandbox.Policy{}, &exitError{code: 2, err: fmt.Errorf("%s=%q: must be a Landlock ABI version (a non-negative integer)", requireABIEnv, v)}
		}
		p.RequireABI = n
	}
	return p, nil
}

// connectTo is the host and TCP port the server connects to when it
// fetches raw: the proxy's, when the environment routes raw through one (as
// net/http.ProxyFromEnvironment does), else raw's own; port 443 for https
// and 80 for http when the URL names none.
func connectTo(raw string, proxyFor func(*url.URL) (*url.URL, error)) (string, uint16, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", 0, fmt.Errorf("identity provider URL %q: %w", raw, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", 0, fmt.Errorf("identity provider URL %q: scheme must be https or http", raw)
	}
	if pu, err := proxyFor(u); err != nil {
		return "", 0, fmt.Errorf("proxy for %q: %w", raw, err)
	} else if pu != nil {
		u = pu
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return "", 0, fmt.Errorf("URL %q: bad port %q", u.Redacted(), p)
		}
		return u.Hostname(), uint16(n), nil
	}
	switch u.Scheme {
	case "https":
		return u.Hostname(), 443, nil
	case "http":
		return u.Hostname(), 80, nil
	}
	return "", 0, fmt.Errorf("URL %q: no port and scheme %q has no default", u.Redacted(), u.Scheme)
}

// needsDNS reports whether connecting to host may ask a DNS server: not for
// an IP address, nor for localhost and its subdomains, which resolve to
// loopback (should a resolver still ask DNS about one, it does so over UDP,
// which Landlock does not restrict).
func needsDNS(host string) bool {
	if net.ParseIP(host) != nil {
		return false
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return h != "localhost" && !strings.HasSuffix(h, ".localhost")
}

// envOr returns the environment variable k, or def when it is unset.
func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}

// applySandbox confines the process and says what it enforced, in one stderr
// line. Mode off is a warning; strict fails when a part cannot be enforced.
//
// A policy that allows outbound TCP (HTTP mode) needs TLS after Apply, so
// the system certificate pool is loaded first: afterwards
// /etc/ssl/certs/*, which the sandbox does not grant, is never read again.
func applySandbox(logger *slog.Logger, p sandbox.Policy) (sandbox.Status, error) {
	if len(p.ConnectTCP) > 0 && p.Mode != sandbox.ModeOff {
		if _, err := x509.SystemCertPool(); err != nil {
			logger.Warn("no system certificate pool; TLS to the identity provider will fail", "err", err)
		}
	}
	start := time.Now()
	st, err := sandbox.Apply(p)
	took := time.Since(start)
	if err != nil {
		return st, fmt.Errorf("sandbox: %w", err)
	}
	switch {
	case p.Mode == sandbox.ModeOff:
		logger.Warn("sandbox disabled by --sandbox off; tools run with the full rights of this process")
	case !st.Applied:
		logger.Warn(st.String())
	default:
		attrs := []any{"apply_us", took.Microseconds()}
		if len(st.Sockets) > 0 {
			attrs = append(attrs, "sockets", strings.Join(st.Sockets, ","))
		}
		if len(st.CapsDropped) > 0 {
			attrs = append(attrs, "caps_dropped", strings.Join(st.CapsDropped, ","))
		}
		logger.Info(st.String(), attrs...)
	}
	return st, nil
}

// cmdSandbox implements `idmcp sandbox status`: what this kernel would
// enforce, probed without applying anything.
func cmdSandbox(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "status" {
		return &exitError{code: 2, err: errors.New("usage: idmcp sandbox status [--json]")}
	}
	fs := flag.NewFlagSet("sandbox status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	st := sandbox.Probe()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintln(stdout, st.String())
	return nil
}
