//go:build sandboxprobe && linux

// Command sandboxprobe applies a sandbox policy to itself and then tries
// things the sandbox should allow or forbid, so sandbox tests can observe
// the real kernel from outside the (irreversible) sandbox.
//
// It is built only with -tags sandboxprobe and is never part of the
// product binary.
//
// Usage:
//
//	sandboxprobe -policy JSON -probes a,b,c [-outside DIR] [-ro-file FILE]
//	    [-allow-port N] [-deny-port N] [-abstract NAME] [-target PID]
//	    [-unix-path PATH] [-udp-port N]
//	    [-continue-on-error]
//	sandboxprobe -sleep     # helper target for ptrace/kill probes
//
// Output, one JSON object per line on stdout: first
// {"kind":"apply","status":{...},"apply_us":N,"error":"..."}, then one
// {"kind":"probe","name":...,"ok":bool,"errno":"EACCES","err":"..."} per
// probe. Exit status 3 means Apply failed (probes then run only with
// -continue-on-error). The int80 probe is expected to kill the process with
// SIGSYS when the arch guard is loaded.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/idmcp/idmcp/sandbox"
	"github.com/idmcp/idmcp/sandbox/probe"
	"golang.org/x/sys/unix"
)

type applyLine struct {
	Kind    string         `json:"kind"`
	Status  sandbox.Status `json:"status"`
	ApplyUS int64          `json:"apply_us"`
	Error   string         `json:"error,omitempty"`
}

type probeLine struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Errno string `json:"errno,omitempty"`
	Err   string `json:"err,omitempty"`
	Value int64  `json:"value,omitempty"`
}

type env struct {
	policy    sandbox.Policy
	outside   string
	roFile    string
	allowPort int
	denyPort  int
	abstract  string
	unixPath  string
	udpPort   int
	target    int
}

func main() {
	var (
		e          env
		policyJSON = flag.String("policy", "", "sandbox.Policy as JSON")
		probes     = flag.String("probes", "", "comma-separated probe names")
		cont       = flag.Bool("continue-on-error", false, "run probes even if Apply fails")
		sleep      = flag.Bool("sleep", false, "act as ptrace/kill target until stdin closes")
	)
	flag.StringVar(&e.outside, "outside", "", "directory outside the policy")
	flag.StringVar(&e.roFile, "ro-file", "", "file granted through ReadOnlyFiles")
	flag.IntVar(&e.allowPort, "allow-port", 0, "loopback TCP port the policy allows")
	flag.IntVar(&e.denyPort, "deny-port", 0, "loopback TCP port the policy does not allow")
	flag.StringVar(&e.abstract, "abstract", "", "abstract unix socket name (without @)")
	flag.StringVar(&e.unixPath, "unix-path", "", "pathname unix socket listening outside the sandbox")
	flag.IntVar(&e.udpPort, "udp-port", 0, "loopback UDP port to send a datagram to")
	flag.IntVar(&e.target, "target", 0, "pid of a helper process outside the sandbox")
	flag.Parse()

	if *sleep {
		sleepTarget()
		return
	}
	if err := json.Unmarshal([]byte(*policyJSON), &e.policy); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxprobe: -policy:", err)
		os.Exit(2)
	}

	enc := json.NewEncoder(os.Stdout)
	start := time.Now()
	st, err := sandbox.Apply(e.policy)
	line := applyLine{Kind: "apply", Status: st, ApplyUS: time.Since(start).Microseconds()}
	if err != nil {
		line.Error = err.Error()
	}
	must(enc.Encode(line))
	fmt.Fprintln(os.Stderr, st)
	if err != nil && !*cont {
		os.Exit(3)
	}

	funcs := probeFuncs()
	for _, name := range strings.Split(*probes, ",") {
		if name == "" {
			continue
		}
		fn, ok := funcs[name]
		if !ok {
			fmt.Fprintln(os.Stderr, "sandboxprobe: unknown probe", name)
			os.Exit(2)
		}
		v, perr := fn(&e)
		pl := probeLine{Kind: "probe", Name: name, OK: perr == nil, Value: v}
		if perr != nil {
			pl.Err = perr.Error()
			var errno syscall.Errno
			if errors.As(perr, &errno) {
				pl.Errno = unix.ErrnoName(errno)
			}
		}
		must(enc.Encode(pl))
	}
	if err != nil {
		os.Exit(3)
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandboxprobe:", err)
		os.Exit(2)
	}
}

// probeFuncs returns the probe actions by name to actions. A nil error means the action
// succeeded; the value is probe-specific (int80: the pid it returned).
func probeFuncs() map[string]func(*env) (int64, error) {
	return map[string]func(*env) (int64, error){
		"read_passwd": func(*env) (int64, error) { return probe.ReadLen("/etc/passwd") },
		"read_home": func(*env) (int64, error) {
			return probe.ReadLen(filepath.Join(os.Getenv("HOME"), "secret"))
		},
		"write_outside": func(e *env) (int64, error) {
			return 0, probe.WriteRemove(filepath.Join(e.outside, fmt.Sprintf("w-%d", os.Getpid())))
		},
		// The workspace holds "escape", a symlink to the outside directory.
		"symlink_escape": func(e *env) (int64, error) {
			return 0, probe.WriteRemove(filepath.Join(e.policy.Workspace, "escape", fmt.Sprintf("s-%d", os.Getpid())))
		},
		"data_rw":         func(e *env) (int64, error) { return 0, dataRW(e.policy.DataDir) },
		"workspace_read":  func(e *env) (int64, error) { return probe.ReadLen(filepath.Join(e.policy.Workspace, "readme")) },
		"workspace_write": func(e *env) (int64, error) { return 0, dataRW(e.policy.Workspace) },
		"ro_file_read":    func(e *env) (int64, error) { return probe.ReadLen(e.roFile) },
		"ro_file_write": func(e *env) (int64, error) {
			f, err := os.OpenFile(e.roFile, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return 0, err
			}
			return 0, f.Close()
		},
		// Read /etc/passwd from a new OS thread created after Apply.
		"new_thread_passwd": func(*env) (int64, error) {
			type result struct {
				n   int64
				err error
			}
			ch := make(chan result, 1)
			go func() {
				runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
				n, err := probe.ReadLen("/etc/passwd")
				ch <- result{n, err}
			}()
			r := <-ch
			return r.n, r.err
		},
		"exec_sh": func(*env) (int64, error) {
			cmd := exec.Command("/bin/sh", "-c", "true")
			// Pass files, not nil, so os/exec does not open /dev/null (which
			// the sandbox denies) and the error comes from fork/exec itself.
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stderr, os.Stderr
			return 0, cmd.Run()
		},
		// execve of a missing file: ENOENT from the kernel unless seccomp
		// answers EPERM first.
		"execve": func(*env) (int64, error) {
			return 0, unix.Exec("/nonexistent/idmcp-sandboxprobe", []string{"x"}, nil)
		},
		"ptrace_attach": func(e *env) (int64, error) { return 0, probe.PtraceAttachDetach(e.target) },
		"kill_target":   func(e *env) (int64, error) { return 0, unix.Kill(e.target, 0) },
		"kill_init":     func(*env) (int64, error) { return 0, unix.Kill(1, 0) },
		"connect_allowed": func(e *env) (int64, error) {
			return 0, dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.allowPort))
		},
		"connect_denied": func(e *env) (int64, error) {
			return 0, dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.denyPort))
		},
		"listen": func(*env) (int64, error) {
			ln, err := sandbox.Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			return 0, ln.Close()
		},
		// net.Listen tries MPTCP first (Go >= 1.24), which Landlock does not see.
		"listen_default": func(*env) (int64, error) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			return 0, ln.Close()
		},
		"socket_mptcp": func(*env) (int64, error) {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_MPTCP)
			if err != nil {
				return 0, os.NewSyscallError("socket", err)
			}
			return 0, unix.Close(fd)
		},
		"abstract_unix": func(e *env) (int64, error) { return 0, dial("unix", "@"+e.abstract) },
		"unix_connect":  func(e *env) (int64, error) { return 0, probe.DialUnix(e.unixPath) },
		"udp_send":      func(e *env) (int64, error) { return 0, probe.SendUDP(e.udpPort) },
		"tcp_socket": func(*env) (int64, error) {
			return 0, probe.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		},
		"packet_socket": func(*env) (int64, error) {
			return 0, probe.Socket(unix.AF_PACKET, unix.SOCK_RAW, probe.Htons(unix.ETH_P_ALL))
		},
		"raw_socket": func(*env) (int64, error) {
			return 0, probe.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		},
		"netlink_socket": func(*env) (int64, error) {
			return 0, probe.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		},
		"unix_high_bits": func(*env) (int64, error) { return 0, probe.SocketHighBits() },
		"socketpair":     func(*env) (int64, error) { return 0, probe.Socketpair() },
		"chmod_data":     func(e *env) (int64, error) { return 0, probe.ChmodChown(e.policy.DataDir, false) },
		"chown_data":     func(e *env) (int64, error) { return 0, probe.ChmodChown(e.policy.DataDir, true) },
		"fchmod_data":    func(e *env) (int64, error) { return 0, probe.Fchmod(e.policy.DataDir) },
		"caps_held":      func(*env) (int64, error) { return probe.CapsHeld() },
		"int80":          func(*env) (int64, error) { return probe.Int80Getpid() },
	}
}

// dataRW does what SQLite does in its directory: create, write, read,
// truncate, rename within the directory, make a subdirectory, remove.
func dataRW(dir string) error {
	base := filepath.Join(dir, fmt.Sprintf("probe-%d.db", os.Getpid()))
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := os.WriteFile(base+suffix, []byte("data"), 0o600); err != nil {
			return err
		}
		if _, err := os.ReadFile(base + suffix); err != nil {
			return err
		}
		if err := os.Truncate(base+suffix, 1); err != nil {
			return err
		}
	}
	if err := os.Rename(base+"-journal", base+"-renamed"); err != nil {
		return err
	}
	d, err := os.Open(dir) // directory fsync
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	d.Close()
	if err := os.Mkdir(base+".d", 0o700); err != nil {
		return err
	}
	for _, p := range []string{base + ".d", base, base + "-wal", base + "-shm", base + "-renamed"} {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

func dial(network, addr string) error {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// sleepTarget lets any process ptrace it (Yama, if present) and waits
// until stdin closes, at most a minute.
func sleepTarget() {
	_ = unix.Prctl(unix.PR_SET_PTRACER, unix.PR_SET_PTRACER_ANY, 0, 0, 0)
	fmt.Println("ready")
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
	}
}
