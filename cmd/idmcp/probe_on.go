//go:build sandboxprobe && linux

package main

import (
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
	"time"

	"golang.org/x/sys/unix"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/sandbox"
	"github.com/idmcp/idmcp/sandbox/probe"
	"github.com/idmcp/idmcp/tools"
)

// probeTools returns the sandbox_probe tool. It exists only in builds with
// -tags sandboxprobe, never in the product binary: it lets tests run
// forbidden actions inside a real serving process, after the (irreversible)
// sandbox is up, and see how the kernel answers. It requires no scope, so
// any authenticated caller of a test build may run it.
func probeTools() []tools.Spec {
	funcs := probeFuncs()
	return []tools.Spec{{
		Name:        "sandbox_probe",
		Title:       "Sandbox probe (test builds only)",
		Description: "Run the named probes inside the server process and return each one's outcome and errno. Test builds only. Probe int80 kills the process when the sandbox's architecture guard is loaded.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{` +
			`"probes":{"type":"array","items":{"type":"string"}},` +
			`"outside":{"type":"string","description":"a directory outside the data dir and the workspace"},` +
			`"workspace":{"type":"string","description":"a directory holding readme and escape, a symlink to outside"},` +
			`"home_file":{"type":"string","description":"a file name in $HOME"},` +
			`"port":{"type":"integer","description":"a listening loopback TCP port"},` +
			`"pid":{"type":"integer","description":"the ptrace target"},` +
			`"threads":{"type":"integer","description":"how many OS threads the threads probe starts"},` +
			`"unix_path":{"type":"string","description":"a listening pathname unix socket"},` +
			`"udp_port":{"type":"integer","description":"a loopback UDP port"},` +
			`"data_dir":{"type":"string","description":"the server's data dir"}` +
			`},"required":["probes"],"additionalProperties":false}`),
		Handler: func(_ context.Context, _ *auth.Principal, raw json.RawMessage) (*tools.Result, error) {
			var a probeArgs
			if err := tools.Decode(raw, &a); err != nil {
				return nil, err
			}
			out := probeReport{PID: os.Getpid()}
			for _, name := range a.Probes {
				fn, ok := funcs[name]
				if !ok {
					return nil, fmt.Errorf("unknown probe %q: %w", name, tools.ErrInput)
				}
				v, err := fn(a)
				r := probeResult{Name: name, OK: err == nil, Value: v}
				if err != nil {
					r.Err = err.Error()
					var errno syscall.Errno
					if errors.As(err, &errno) {
						r.Errno = unix.ErrnoName(errno)
					}
				}
				out.Results = append(out.Results, r)
			}
			return tools.JSONResult(out)
		},
	}}
}

// probeArgs are sandbox_probe's arguments: the probes to run and what they
// act on.
type probeArgs struct {
	Probes    []string `json:"probes"`
	Outside   string   `json:"outside"`
	Workspace string   `json:"workspace"`
	HomeFile  string   `json:"home_file"`
	Port      int      `json:"port"`
	PID       int      `json:"pid"`
	Threads   int      `json:"threads"`
	UnixPath  string   `json:"unix_path"`
	UDPPort   int      `json:"udp_port"`
	DataDir   string   `json:"data_dir"`
}

// probeReport is sandbox_probe's structured result.
type probeReport struct {
	// PID is the server's process id.
	PID     int           `json:"pid"`
	Results []probeResult `json:"results"`
}

// probeResult is one probe's outcome: OK when the action succeeded, else
// the error and, when it carries one, the errno's name ("EACCES").
type probeResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Errno string `json:"errno,omitempty"`
	Err   string `json:"err,omitempty"`
	// Value is probe-specific: bytes read, the pid int80 returned, the
	// threads started.
	Value int64 `json:"value,omitempty"`
}

// probeFuncs returns the probes by name. A nil error means the action
// succeeded.
func probeFuncs() map[string]func(probeArgs) (int64, error) {
	return map[string]func(probeArgs) (int64, error){
		"read_passwd": func(probeArgs) (int64, error) { return probe.ReadLen("/etc/passwd") },
		"read_home": func(a probeArgs) (int64, error) {
			if a.HomeFile == "" || strings.ContainsRune(a.HomeFile, '/') {
				return 0, fmt.Errorf("home_file must be a file name: %w", tools.ErrInput)
			}
			return probe.ReadLen(filepath.Join(os.Getenv("HOME"), a.HomeFile))
		},
		"write_outside": func(a probeArgs) (int64, error) {
			return 0, probe.WriteRemove(filepath.Join(a.Outside, fmt.Sprintf("outside-%d", os.Getpid())))
		},
		// Bypasses the files tools' os.Root on purpose: the kernel must stop
		// what a path check might miss.
		"symlink_escape": func(a probeArgs) (int64, error) {
			return 0, probe.WriteRemove(filepath.Join(a.Workspace, "escape", fmt.Sprintf("escape-%d", os.Getpid())))
		},
		"workspace_read": func(a probeArgs) (int64, error) { return probe.ReadLen(filepath.Join(a.Workspace, "readme")) },
		"workspace_write": func(a probeArgs) (int64, error) {
			return 0, probe.WriteRemove(filepath.Join(a.Workspace, fmt.Sprintf("probe-%d", os.Getpid())))
		},
		"exec_sh": func(probeArgs) (int64, error) {
			cmd := exec.Command("/bin/sh", "-c", "true")
			// Files, not nil: os/exec would open /dev/null, which the sandbox
			// denies, and the error would not come from execve.
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr, os.Stderr
			return 0, cmd.Run()
		},
		"ptrace": func(a probeArgs) (int64, error) { return 0, ptraceAttachDetach(a.PID) },
		// Lets any process ptrace this one (Yama ptrace_scope 1), so that a
		// test server can be the target of another's ptrace probe.
		"allow_ptrace": func(probeArgs) (int64, error) {
			return 0, os.NewSyscallError("prctl", unix.Prctl(unix.PR_SET_PTRACER, unix.PR_SET_PTRACER_ANY, 0, 0, 0))
		},
		"connect": func(a probeArgs) (int64, error) {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", a.Port), 5*time.Second)
			if err != nil {
				return 0, err
			}
			return 0, c.Close()
		},
		"bind": func(probeArgs) (int64, error) {
			ln, err := sandbox.Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			return 0, ln.Close()
		},
		// net.Listen tries MPTCP first, which Landlock does not see; the
		// seccomp filter makes Go fall back to TCP, which Landlock denies.
		"bind_default": func(probeArgs) (int64, error) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			return 0, ln.Close()
		},
		"threads": func(a probeArgs) (int64, error) { return startThreads(max(a.Threads, 1)) },
		// Issue 12.5: sockets and mode changes a confined server never needs.
		"unix_connect":   func(a probeArgs) (int64, error) { return 0, probe.DialUnix(a.UnixPath) },
		"unix_high_bits": func(probeArgs) (int64, error) { return 0, probe.SocketHighBits() },
		"udp_send":       func(a probeArgs) (int64, error) { return 0, probe.SendUDP(a.UDPPort) },
		"packet_socket": func(probeArgs) (int64, error) {
			return 0, probe.Socket(unix.AF_PACKET, unix.SOCK_RAW, probe.Htons(unix.ETH_P_ALL))
		},
		"raw_socket": func(probeArgs) (int64, error) {
			return 0, probe.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		},
		"netlink_socket": func(probeArgs) (int64, error) {
			return 0, probe.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		},
		"socketpair":  func(probeArgs) (int64, error) { return 0, probe.Socketpair() },
		"chmod_data":  func(a probeArgs) (int64, error) { return 0, probe.ChmodChown(a.DataDir, false) },
		"chown_data":  func(a probeArgs) (int64, error) { return 0, probe.ChmodChown(a.DataDir, true) },
		"fchmod_data": func(a probeArgs) (int64, error) { return 0, probe.Fchmod(a.DataDir) },
		"caps_held":   func(probeArgs) (int64, error) { return probe.CapsHeld() },
		"int80": func(probeArgs) (int64, error) {
			// The expected SIGSYS death would otherwise dump core.
			if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
				return 0, os.NewSyscallError("setrlimit", err)
			}
			return probe.Int80Getpid()
		},
	}
}

// ptraceAttachDetach is probe.PtraceAttachDetach for a pid from the caller.
func ptraceAttachDetach(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("pid must be positive: %w", tools.ErrInput)
	}
	return probe.PtraceAttachDetach(pid)
}

// startThreads runs n goroutines at once, each locked to an OS thread that
// exits with it, so the runtime must create n new threads (pthread_create
// in cgo builds) under the sandbox. It returns how many distinct threads ran.
func startThreads(n int) (int64, error) {
	if n > 256 {
		return 0, fmt.Errorf("threads: at most 256: %w", tools.ErrInput)
	}
	tids := make(chan int, n)
	release := make(chan struct{})
	for range n {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			tids <- unix.Gettid()
			<-release
		}()
	}
	seen := map[int]bool{}
	timeout := time.After(10 * time.Second)
	for len(seen) < n {
		select {
		case tid := <-tids:
			seen[tid] = true
		case <-timeout:
			close(release)
			return int64(len(seen)), fmt.Errorf("threads: %d of %d started within 10s", len(seen), n)
		}
	}
	close(release)
	return int64(len(seen)), nil
}
