//go:build linux

package main_test

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/idmcp/idmcp/auth/jwt/jwttest"
)

// socketWorld adds to w what the issue 12.5 probes aim at: a pathname
// unix socket (as D-Bus, systemd --user or docker.sock would be) and a
// loopback UDP port, both listening outside the server.
func socketWorld(t *testing.T, w *sandboxWorld) map[string]any {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "bus.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	acceptAndClose(t, ln)
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	args := w.probeArgs(0, 0)
	args["unix_path"], args["udp_port"], args["data_dir"] = sock, udp.LocalAddr().(*net.UDPAddr).Port, w.dataDir
	return args
}

// TestSandbox_SocketsChmodCapabilities is issue 12.5's regression test
// through the built binary, in stdio and HTTP mode: with the sandbox on,
// the serving process cannot connect to a pathname unix socket, create a
// UDP, netlink, packet or raw socket or a socket pair, or chmod/chown its
// data dir, and as root holds no capability; with --sandbox off every one
// of these succeeds (so the refusals come from the sandbox). fchmod of a
// new file in the data dir (what SQLite does) works either way, and so do
// SQLite writes afterwards.
func TestSandbox_SocketsChmodCapabilities(t *testing.T) {
	requireSandbox(t)
	bin := mustBinary(t, probeBinary)
	refused := []string{"unix_connect", "unix_high_bits", "udp_send", "netlink_socket", "socketpair", "chmod_data", "chown_data"}
	if os.Geteuid() == 0 {
		refused = append(refused, "packet_socket", "raw_socket") // need CAP_NET_RAW even without the sandbox
	}
	allowed := []string{"fchmod_data"}
	iss := jwttest.NewIssuer(t, jwttest.Options{})
	for _, tr := range transports(iss) {
		for _, mode := range []string{"auto", "off"} {
			t.Run(tr.name+"/"+mode, func(t *testing.T) {
				w := newSandboxWorld(t)
				args := socketWorld(t, w)
				args["probes"] = append(append(slices.Clone(refused), allowed...), "caps_held")
				s := tr.start(t, w, bin, "--sandbox", mode)
				_, res := runProbes(t, s, args)
				for _, p := range refused {
					got := res[p]
					switch {
					case mode == "off" && !got.OK:
						t.Errorf("%s with --sandbox off failed (%s): the environment forbids it, so the sandbox test proves nothing", p, got.Err)
					case mode == "auto" && (got.OK || got.Errno != "EPERM"):
						t.Errorf("%s under the sandbox: ok=%v errno=%q (%s), want EPERM", p, got.OK, got.Errno, got.Err)
					}
				}
				for _, p := range allowed {
					if got := res[p]; !got.OK {
						t.Errorf("%s (mode %s): %s, want ok", p, mode, got.Err)
					}
				}
				if os.Geteuid() == 0 {
					caps := res["caps_held"]
					if !caps.OK || (mode == "auto") != (caps.Value == 0) {
						t.Errorf("as root, mode %s: caps_held=%+v; want none held exactly when the sandbox is on", mode, caps)
					}
					if sb := whoamiSandbox(t, s); (mode == "auto") != (len(sb.CapsDropped) > 0) {
						t.Errorf("whoami sandbox caps_dropped=%v in mode %s", sb.CapsDropped, mode)
					}
				}
				if tr.name == "http" {
					// The identity provider stays reachable over TCP.
					_, res := runProbes(t, s, w.probeArgs(urlPort(t, iss.ServerURL), 0, "connect"))
					if got := res["connect"]; !got.OK {
						t.Errorf("connect to the identity provider's port: %+v", got)
					}
				}
				// SQLite under the sandbox: writes (WAL, audit rows) go on.
				for range 20 {
					s.mustTool(t, "todo_create", map[string]any{"title": "after the socket probes"})
				}
			})
		}
	}
}

// TestSandbox_UDPOnlyForDNS shows where UDP stays allowed: a server whose
// identity provider has a host name to resolve (stdio with --issuer, here)
// may send UDP (DNS) while unix sockets stay refused; the HTTP server's
// startup line says which sockets it allows, UDP only when the issuer
// needs DNS. The issuer host name resolves nowhere; the server starts
// anyway and reports that its keys are not loaded.
func TestSandbox_UDPOnlyForDNS(t *testing.T) {
	requireSandbox(t)
	bin := mustBinary(t, probeBinary)
	const issuer = "https://idp.idmcp-test.invalid"
	t.Run("stdio", func(t *testing.T) {
		w := newSandboxWorld(t)
		args := socketWorld(t, w)
		args["probes"] = []string{"udp_send", "unix_connect", "netlink_socket"}
		s := w.serveStdio(t, bin, w.env(), "--issuer", issuer, "--resource", "https://mcp.example/mcp")
		_, res := runProbes(t, s, args)
		for p, want := range map[string]string{"udp_send": "", "unix_connect": "EPERM", "netlink_socket": "EPERM"} {
			if got := res[p]; want == "" && !got.OK || want != "" && got.Errno != want {
				t.Errorf("%s: ok=%v errno=%q (%s), want %q", p, got.OK, got.Errno, got.Err, want)
			}
		}
		if sb := whoamiSandbox(t, s); !slices.Equal(sb.Sockets, []string{"tcp", "udp"}) {
			t.Errorf("whoami sandbox sockets=%v, want tcp, udp", sb.Sockets)
		}
	})
	t.Run("http", func(t *testing.T) {
		for _, tc := range []struct {
			issuer  string
			sockets string
		}{
			{issuer, "tcp,udp"},
			{jwttest.NewIssuer(t, jwttest.Options{}).URL, "tcp"},
		} {
			w := newSandboxWorld(t)
			b := startBearerServer(t, "--http", "127.0.0.1:0", "--issuer", tc.issuer, "--data-dir", w.dataDir)
			s := b.stderr.String()
			re := regexp.MustCompile(`msg="sandbox: [^"]*" apply_us=\d+ sockets=` + regexp.QuoteMeta(tc.sockets) + `( |$)`)
			if !re.MatchString(s) {
				t.Errorf("issuer %s: startup log does not say sockets=%s:\n%s", tc.issuer, tc.sockets, s)
			}
		}
	})
}
