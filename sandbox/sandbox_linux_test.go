//go:build linux

package sandbox_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idmcp/idmcp/sandbox"
	"golang.org/x/sys/unix"
)

// The sandbox cannot be undone, so every test that applies it does so in a
// subprocess: the probe program (internal/sandboxprobe), built once here.
var (
	probeBin   string // path of the built probe; "" when skipReason is set
	skipReason string // why the Landlock tests cannot run on this kernel
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if st := sandbox.Probe(); st.LandlockABI == 0 {
		skipReason = "kernel lacks Landlock: " + strings.Join(st.Notes, "; ")
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "sandboxprobe-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	probeBin = filepath.Join(dir, "sandboxprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// go test puts its own GOROOT/bin first in PATH.
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-tags", "sandboxprobe", "-o", probeBin, "./internal/sandboxprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building sandboxprobe: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func requireLandlock(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// fixture is a temp tree plus the sockets and the helper process the probes
// aim at. Everything is created before the probe applies its sandbox.
type fixture struct {
	root, home, data, workspace, outside, roFile string
	allowPort, denyPort                          int
	abstract                                     string
	unixPath                                     string
	udpPort                                      int
	target                                       int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{
		root:      root,
		home:      filepath.Join(root, "home"),
		data:      filepath.Join(root, "data"),
		workspace: filepath.Join(root, "workspace"),
		outside:   filepath.Join(root, "outside"),
		roFile:    filepath.Join(root, "extra", "ro.txt"),
	}
	for _, d := range []string{f.home, f.data, f.workspace, f.outside, filepath.Dir(f.roFile)} {
		mustNoErr(t, os.MkdirAll(d, 0o700))
	}
	mustNoErr(t, os.WriteFile(filepath.Join(f.home, "secret"), []byte("secret"), 0o600))
	mustNoErr(t, os.WriteFile(filepath.Join(f.workspace, "readme"), []byte("readme"), 0o600))
	mustNoErr(t, os.WriteFile(f.roFile, []byte("ro"), 0o600))
	mustNoErr(t, os.Symlink(f.outside, filepath.Join(f.workspace, "escape")))

	f.allowPort = serveTCP(t)
	f.denyPort = serveTCP(t)
	f.abstract = fmt.Sprintf("idmcp-sandbox-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	ln, err := net.Listen("unix", "@"+f.abstract)
	mustNoErr(t, err)
	serve(t, ln)
	f.unixPath = filepath.Join(root, "u.sock")
	uln, err := net.Listen("unix", f.unixPath)
	mustNoErr(t, err)
	serve(t, uln)
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	mustNoErr(t, err)
	t.Cleanup(func() { udp.Close() })
	f.udpPort = udp.LocalAddr().(*net.UDPAddr).Port
	f.target = startTarget(t)
	return f
}

func (f *fixture) policy(mode sandbox.Mode) sandbox.Policy {
	return sandbox.Policy{
		Mode:              mode,
		DataDir:           f.data,
		Workspace:         f.workspace,
		WorkspaceWritable: true,
		ReadOnlyFiles:     []string{f.roFile, "/nonexistent/idmcp-sandbox-test/file"},
		ReadOnlyDirs:      []string{"/nonexistent/idmcp-sandbox-test/dir"},
		ConnectTCP:        []uint16{uint16(f.allowPort)},
	}
}

func serveTCP(t *testing.T) int {
	t.Helper()
	ln, err := sandbox.Listen(context.Background(), "tcp", "127.0.0.1:0")
	mustNoErr(t, err)
	serve(t, ln)
	return ln.Addr().(*net.TCPAddr).Port
}

// serve accepts and closes connections until the test ends.
func serve(t *testing.T, ln net.Listener) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
}

// startTarget starts a probe in -sleep mode: a process outside any sandbox
// for the ptrace and kill probes. It exits when its stdin closes.
func startTarget(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(probeBin, "-sleep")
	stdin, err := cmd.StdinPipe()
	mustNoErr(t, err)
	stdout, err := cmd.StdoutPipe()
	mustNoErr(t, err)
	mustNoErr(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		waited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("target: read %q, %v", line, err)
	}
	return cmd.Process.Pid
}

type applyLine struct {
	Status  sandbox.Status `json:"status"`
	ApplyUS int64          `json:"apply_us"`
	Error   string         `json:"error"`
}

type probeLine struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Errno string `json:"errno"`
	Err   string `json:"err"`
	Value int64  `json:"value"`
}

type run struct {
	apply  applyLine
	probes map[string]probeLine
	state  *os.ProcessState
	pid    int
	stderr string
}

// runProbe applies p in a fresh probe process and runs the named probes.
func runProbe(t *testing.T, f *fixture, p sandbox.Policy, probes []string, extra ...string) run {
	t.Helper()
	pj, err := json.Marshal(p)
	mustNoErr(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{
		"-policy", string(pj), "-probes", strings.Join(probes, ","),
		"-outside", f.outside, "-ro-file", f.roFile,
		"-allow-port", fmt.Sprint(f.allowPort), "-deny-port", fmt.Sprint(f.denyPort),
		"-abstract", f.abstract, "-target", fmt.Sprint(f.target),
		"-unix-path", f.unixPath, "-udp-port", fmt.Sprint(f.udpPort),
	}, extra...)
	cmd := exec.CommandContext(ctx, probeBin, args...)
	cmd.Env = append(os.Environ(), "HOME="+f.home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := run{probes: map[string]probeLine{}, state: cmd.ProcessState, stderr: stderr.String()}
	if cmd.Process != nil {
		r.pid = cmd.Process.Pid
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("running probe: %v\nstderr: %s", err, stderr.String())
	}
	sc := bufio.NewScanner(&stdout)
	for first := true; sc.Scan(); first = false {
		if first {
			mustNoErr(t, json.Unmarshal(sc.Bytes(), &r.apply))
			continue
		}
		var pl probeLine
		mustNoErr(t, json.Unmarshal(sc.Bytes(), &pl))
		r.probes[pl.Name] = pl
	}
	return r
}

// outcome is "ok" or the errno name a probe must report.
func outcome(pl probeLine) string {
	if pl.OK {
		return "ok"
	}
	if pl.Errno == "" {
		return "error: " + pl.Err
	}
	return pl.Errno
}

// expectation says what a probe must report with the sandbox on and off.
// needs names the Status part that makes the "on" outcome happen; if the
// kernel cannot enforce it (Status says so), the "off" outcome is expected.
type expectation struct {
	probe   string
	on, off string
	needs   func(sandbox.Status) bool
}

func files(s sandbox.Status) bool   { return s.Files }
func network(s sandbox.Status) bool { return s.Network }
func scoped(s sandbox.Status) bool  { return s.Scoped }
func seccomp(s sandbox.Status) bool { return s.Seccomp }
func always(sandbox.Status) bool    { return true }

func expectations() []expectation {
	return []expectation{
		{"read_passwd", "EACCES", "ok", files},
		{"read_home", "EACCES", "ok", files},
		{"write_outside", "EACCES", "ok", files},
		{"symlink_escape", "EACCES", "ok", files},
		{"data_rw", "ok", "ok", always},
		{"workspace_read", "ok", "ok", always},
		{"workspace_write", "ok", "ok", always},
		{"ro_file_read", "ok", "ok", always},
		{"ro_file_write", "EACCES", "ok", files},
		{"new_thread_passwd", "EACCES", "ok", files},
		{"exec_sh", "EPERM", "ok", seccomp},
		{"execve", "EPERM", "ENOENT", seccomp},
		{"ptrace_attach", "EPERM", "ok", seccomp},
		{"kill_target", "EPERM", "ok", scoped},
		{"connect_allowed", "ok", "ok", always},
		{"connect_denied", "EACCES", "ok", network},
		{"listen", "EACCES", "ok", network},
		{"listen_default", "EACCES", "ok", func(s sandbox.Status) bool { return s.Network && s.Seccomp }},
		{"socket_mptcp", "EPERM", "ok", seccomp},
		{"abstract_unix", "EPERM", "ok", scoped},
		// Issue 12.5: sockets a confined server never needs (seccomp).
		{"unix_connect", "EPERM", "ok", seccomp},
		{"unix_high_bits", "EPERM", "ok", seccomp},
		{"udp_send", "EPERM", "ok", seccomp},
		{"netlink_socket", "EPERM", "ok", seccomp},
		{"socketpair", "EPERM", "ok", seccomp},
		{"tcp_socket", "ok", "ok", always},
		// The path-based chmod/chown family; fchmod/fchown stay for SQLite.
		{"chmod_data", "EPERM", "ok", seccomp},
		{"chown_data", "EPERM", "ok", seccomp},
		{"fchmod_data", "ok", "ok", always},
	}
}

// rootExpectations need privileges the test process has only as root:
// packet and raw sockets need CAP_NET_RAW, so only with it does "ok" with
// the sandbox off prove anything.
func rootExpectations() []expectation {
	return []expectation{
		{"packet_socket", "EPERM", "ok", seccomp},
		{"raw_socket", "EPERM", "ok", seccomp},
	}
}

func probeNames(exps []expectation) []string {
	names := make([]string, len(exps))
	for i, e := range exps {
		names[i] = e.probe
	}
	return names
}

// TestApply_Modes applies the full policy in each mode and checks that the
// forbidden operations fail with the kernel's errno while the granted ones
// work, and that with mode=off the very same operations succeed, which
// shows the failures come from the sandbox and not from the environment.
func TestApply_Modes(t *testing.T) {
	requireLandlock(t)
	predicted := sandbox.Probe()
	for _, mode := range []sandbox.Mode{sandbox.ModeAuto, sandbox.ModeStrict, sandbox.ModeOff} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			exps := expectations()
			if os.Geteuid() == 0 {
				exps = append(exps, rootExpectations()...)
			}
			r := runProbe(t, f, f.policy(mode), append(probeNames(exps), "caps_held"))
			st := r.apply.Status
			if mode == sandbox.ModeStrict && predicted.LandlockABI < sandbox.MinNetworkABI {
				if r.apply.Error == "" || st.Applied {
					t.Fatalf("strict on ABI %d: error=%q applied=%v, want refusal", predicted.LandlockABI, r.apply.Error, st.Applied)
				}
				return
			}
			if r.apply.Error != "" || !r.state.Success() {
				t.Fatalf("apply: %s (%v)\nstderr: %s", r.apply.Error, r.state, r.stderr)
			}
			t.Logf("%s; Apply took %d µs", st, r.apply.ApplyUS)
			on := mode != sandbox.ModeOff
			if got, want := st.Applied, on; got != want {
				t.Fatalf("Status.Applied=%v, want %v", got, want)
			}
			if on {
				// Status must report exactly what Probe predicted.
				for name, pair := range map[string][2]bool{
					"Files": {st.Files, predicted.Files}, "Network": {st.Network, predicted.Network},
					"Scoped": {st.Scoped, predicted.Scoped}, "Seccomp": {st.Seccomp, predicted.Seccomp},
					"ArchGuard": {st.ArchGuard, predicted.ArchGuard},
				} {
					if pair[0] != pair[1] {
						t.Errorf("Status.%s=%v, Probe predicted %v", name, pair[0], pair[1])
					}
				}
				if !st.Files || !st.Seccomp {
					t.Errorf("Status=%+v, want at least files and seccomp on a Landlock kernel", st)
				}
			} else if st.Files || st.Network || st.Scoped || st.Seccomp || st.ArchGuard {
				t.Errorf("mode=off Status=%+v, want nothing enforced", st)
			}
			for _, e := range exps {
				want := e.off
				if on && e.needs(st) {
					want = e.on
				}
				pl, ok := r.probes[e.probe]
				if !ok {
					t.Errorf("probe %s: no result\nstderr: %s", e.probe, r.stderr)
					continue
				}
				if got := outcome(pl); got != want {
					t.Errorf("probe %s: got %s, want %s (%s)", e.probe, got, want, pl.Err)
				}
			}
			// As root every capability goes: none is held in any set, on
			// this thread or (by psx) any other.
			if caps := r.probes["caps_held"]; os.Geteuid() == 0 {
				switch {
				case !caps.OK:
					t.Errorf("caps_held: %s", caps.Err)
				case on && (caps.Value != 0 || len(st.CapsDropped) == 0):
					t.Errorf("as root under the sandbox: %d capabilities held, Status.CapsDropped=%v; want none held, all listed", caps.Value, st.CapsDropped)
				case !on && caps.Value == 0:
					t.Errorf("as root with mode=off: no capabilities held, so the drop proves nothing")
				}
			}
			// kill(1, 0) is EPERM for non-root users anyway; it only proves
			// the sandbox when the same call succeeds with mode=off.
			if os.Geteuid() == 0 && st.Scoped == on {
				want := map[bool]string{true: "EPERM", false: "ok"}[on]
				r := runProbe(t, f, f.policy(mode), []string{"kill_init"})
				if got := outcome(r.probes["kill_init"]); got != want {
					t.Errorf("probe kill_init: got %s, want %s", got, want)
				}
			}
		})
	}
}

// TestApply_StrictRefusesMissingFeature asks strict mode for a Landlock ABI
// the kernel does not have: Apply must fail naming it, and nothing may be
// applied (the probes that the sandbox would deny still succeed).
func TestApply_StrictRefusesMissingFeature(t *testing.T) {
	requireLandlock(t)
	t.Parallel()
	f := newFixture(t)
	p := f.policy(sandbox.ModeStrict)
	p.RequireABI = 99
	r := runProbe(t, f, p, []string{"read_passwd", "execve", "listen"}, "-continue-on-error")
	if got, want := r.state.ExitCode(), 3; got != want {
		t.Fatalf("exit code %d, want %d\nstderr: %s", got, want, r.stderr)
	}
	for _, want := range []string{"landlock ABI 99 required", sandbox.ErrUnavailable.Error()} {
		if !strings.Contains(r.apply.Error, want) {
			t.Errorf("error %q does not contain %q", r.apply.Error, want)
		}
	}
	st := r.apply.Status
	if st.Applied || st.Files || st.Network || st.Scoped || st.Seccomp || st.ArchGuard {
		t.Errorf("Status=%+v, want nothing enforced", st)
	}
	for name, want := range map[string]string{"read_passwd": "ok", "execve": "ENOENT", "listen": "ok"} {
		if got := outcome(r.probes[name]); got != want {
			t.Errorf("after refusal, probe %s: got %s, want %s", name, got, want)
		}
	}
}

// TestApply_MissingDataDir checks that a data dir that does not exist is a
// start-up error naming the field, in auto mode too, and that nothing was
// applied.
func TestApply_MissingDataDir(t *testing.T) {
	requireLandlock(t)
	t.Parallel()
	f := newFixture(t)
	p := f.policy(sandbox.ModeAuto)
	p.DataDir = filepath.Join(f.root, "missing")
	r := runProbe(t, f, p, []string{"read_passwd", "execve"}, "-continue-on-error")
	if got, want := r.state.ExitCode(), 3; got != want {
		t.Fatalf("exit code %d, want %d\nstderr: %s", got, want, r.stderr)
	}
	if !strings.Contains(r.apply.Error, `field "DataDir"`) || !strings.Contains(r.apply.Error, p.DataDir) || r.apply.Status.Applied {
		t.Errorf("error %q, Applied=%v; want an error naming %s, nothing applied", r.apply.Error, r.apply.Status.Applied, p.DataDir)
	}
	for name, want := range map[string]string{"read_passwd": "ok", "execve": "ENOENT"} {
		if got := outcome(r.probes[name]); got != want {
			t.Errorf("after failure, probe %s: got %s, want %s", name, got, want)
		}
	}
}

// TestApply_WorkspaceReadOnly checks that without files_write the workspace
// can be read but not written, while the data dir stays writable.
func TestApply_WorkspaceReadOnly(t *testing.T) {
	requireLandlock(t)
	t.Parallel()
	f := newFixture(t)
	p := f.policy(sandbox.ModeAuto)
	p.WorkspaceWritable = false
	r := runProbe(t, f, p, []string{"workspace_read", "workspace_write", "data_rw"})
	if r.apply.Error != "" {
		t.Fatalf("apply: %s", r.apply.Error)
	}
	for name, want := range map[string]string{"workspace_read": "ok", "workspace_write": "EACCES", "data_rw": "ok"} {
		if got := outcome(r.probes[name]); got != want {
			t.Errorf("probe %s: got %s, want %s (%s)", name, got, want, r.probes[name].Err)
		}
	}
}

// TestApply_NoConnectTCP checks that an empty ConnectTCP list denies every
// outbound TCP connection, including to the port other tests allow.
func TestApply_NoConnectTCP(t *testing.T) {
	requireLandlock(t)
	if !sandbox.Probe().Network {
		t.Skip("kernel cannot enforce Landlock network rules")
	}
	t.Parallel()
	f := newFixture(t)
	p := f.policy(sandbox.ModeAuto)
	p.ConnectTCP = nil
	r := runProbe(t, f, p, []string{"connect_allowed"})
	if got, want := outcome(r.probes["connect_allowed"]), "EACCES"; got != want {
		t.Errorf("probe connect_allowed: got %s, want %s", got, want)
	}
}

// TestApply_AllowUDP checks that Policy.AllowUDP (HTTP mode with an
// identity provider to resolve) lets UDP through while every other socket
// the filter refuses stays refused.
func TestApply_AllowUDP(t *testing.T) {
	requireLandlock(t)
	t.Parallel()
	f := newFixture(t)
	p := f.policy(sandbox.ModeAuto)
	p.AllowUDP = true
	r := runProbe(t, f, p, []string{"udp_send", "unix_connect", "netlink_socket", "tcp_socket"})
	if r.apply.Error != "" {
		t.Fatalf("apply: %s", r.apply.Error)
	}
	if got, want := strings.Join(r.apply.Status.Sockets, ","), "tcp,udp"; got != want {
		t.Errorf("Status.Sockets=%q, want %q", got, want)
	}
	for name, want := range map[string]string{"udp_send": "ok", "unix_connect": "EPERM", "netlink_socket": "EPERM", "tcp_socket": "ok"} {
		if got := outcome(r.probes[name]); got != want {
			t.Errorf("probe %s: got %s, want %s (%s)", name, got, want, r.probes[name].Err)
		}
	}
}

// TestApply_KeepsDACOverrideForForeignDataDir runs as root with a data dir
// owned by another user (mode 0700): the sandbox keeps cap_dac_override
// alone, says why, and SQLite-like work in the data dir still succeeds;
// everything else is dropped.
func TestApply_KeepsDACOverrideForForeignDataDir(t *testing.T) {
	requireLandlock(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root holds capabilities to keep")
	}
	t.Parallel()
	f := newFixture(t)
	mustNoErr(t, os.Chown(f.data, 65534, 65534))
	r := runProbe(t, f, f.policy(sandbox.ModeAuto), []string{"data_rw", "caps_held", "chmod_data"})
	st := r.apply.Status
	if r.apply.Error != "" {
		t.Fatalf("apply: %s", r.apply.Error)
	}
	if got := strings.Join(st.CapsKept, ","); got != "cap_dac_override" || !strings.Contains(strings.Join(st.Notes, ";"), "belongs to uid 65534") {
		t.Errorf("CapsKept=%q Notes=%q, want cap_dac_override kept, naming the owner", got, st.Notes)
	}
	for name, want := range map[string]string{"data_rw": "ok", "chmod_data": "EPERM"} {
		if got := outcome(r.probes[name]); got != want {
			t.Errorf("probe %s: got %s, want %s (%s)", name, got, want, r.probes[name].Err)
		}
	}
	if got := r.probes["caps_held"].Value; got != 1 {
		t.Errorf("caps_held=%d, want 1 (cap_dac_override only)", got)
	}
}

// TestApply_ArchGuard makes an i386 system call (int $0x80) from the amd64
// probe. Without the sandbox it returns the pid; with it the process must
// die from SIGSYS, because the deny list alone would let it through.
func TestApply_ArchGuard(t *testing.T) {
	requireLandlock(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("the int $0x80 probe is amd64-only")
	}
	t.Parallel()
	f := newFixture(t)

	off := runProbe(t, f, f.policy(sandbox.ModeOff), []string{"int80"})
	pl, ok := off.probes["int80"]
	if !ok || !pl.OK || pl.Value != int64(off.pid) {
		t.Skipf("no i386 entry point on this kernel (CONFIG_IA32_EMULATION off?): %+v, state %v", pl, off.state)
	}

	on := runProbe(t, f, f.policy(sandbox.ModeAuto), []string{"int80"})
	if !on.apply.Status.ArchGuard {
		t.Fatalf("Status.ArchGuard=false: %+v", on.apply.Status)
	}
	ws, ok := on.state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != unix.SIGSYS {
		t.Fatalf("probe ended with %v, probes %+v; want death by SIGSYS", on.state, on.probes)
	}
}

// TestProbe checks that Probe describes the kernel without applying
// anything: this (unsandboxed) test process can still read /etc/passwd.
func TestProbe(t *testing.T) {
	requireLandlock(t)
	st := sandbox.Probe()
	if got, want := st.Platform, "linux"; got != want {
		t.Errorf("Platform=%q, want %q", got, want)
	}
	if st.Applied {
		t.Errorf("Probe reported Applied=true")
	}
	if !st.Available || !st.Files {
		t.Errorf("Probe()=%+v, want Available and Files on a Landlock kernel", st)
	}
	if got, want := st.Network, st.LandlockABI >= sandbox.MinNetworkABI; got != want {
		t.Errorf("Network=%v with ABI %d, want %v", got, st.LandlockABI, want)
	}
	if st.Seccomp && st.DeniedSyscalls < 56 {
		t.Errorf("DeniedSyscalls=%d, want at least the 56 of the base list", st.DeniedSyscalls)
	}
	if _, err := os.ReadFile("/etc/passwd"); err != nil {
		t.Errorf("after Probe: %v", err)
	}
}

// TestApply_InProcessNoOp covers the two Apply paths that must return before
// touching the kernel, so they are safe to run in the test process.
func TestApply_InProcessNoOp(t *testing.T) {
	t.Run("Off", func(t *testing.T) {
		st, err := sandbox.Apply(sandbox.Policy{Mode: sandbox.ModeOff})
		if err != nil || st.Applied || st.Files || st.Seccomp {
			t.Fatalf("Apply(off)=%+v, %v; want nothing applied, no error", st, err)
		}
	})
	t.Run("ErrInvalidPolicy", func(t *testing.T) {
		st, err := sandbox.Apply(sandbox.Policy{Mode: sandbox.ModeStrict, DataDir: "relative/dir"})
		if !errors.Is(err, sandbox.ErrInvalidPolicy) || st.Applied {
			t.Fatalf("Apply(invalid)=%+v, %v; want ErrInvalidPolicy, nothing applied", st, err)
		}
	})
	if _, err := os.ReadFile("/etc/passwd"); err != nil {
		t.Errorf("test process got sandboxed: %v", err)
	}
}

// TestListen_NoMPTCP checks that Listen yields a plain TCP socket, the only
// kind Landlock's TCP rules apply to.
func TestListen_NoMPTCP(t *testing.T) {
	ln, err := sandbox.Listen(context.Background(), "tcp", "127.0.0.1:0")
	mustNoErr(t, err)
	defer ln.Close()
	raw, err := ln.(*net.TCPListener).SyscallConn()
	mustNoErr(t, err)
	var proto int
	var serr error
	mustNoErr(t, raw.Control(func(fd uintptr) {
		proto, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL)
	}))
	mustNoErr(t, serr)
	if got, want := proto, unix.IPPROTO_TCP; got != want {
		t.Fatalf("SO_PROTOCOL=%d, want %d (IPPROTO_TCP)", got, want)
	}
}

func mustNoErr(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
