package sandbox

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
)

// ChildSpec is the confinement of a wrapped MCP server (idmcp wrap -- CMD):
// what the helper process applies to itself before it starts CMD as its own
// child. Landlock and seccomp are inherited across fork and execve, so CMD
// starts confined and cannot undo it. The helper exists because Go cannot
// run code between fork and exec; it stays as CMD's supervisor because
// idmcp's own Landlock domain (with signal scoping) may not signal a
// process outside it, CMD included — not even with PR_SET_PDEATHSIG. The
// helper is in CMD's domain, so it can: idmcp tells it over the spec pipe.
type ChildSpec struct {
	// Mode is auto, strict or off.
	Mode Mode `json:"mode"`
	// Path is CMD; a name without a slash is looked up in Env's PATH.
	Path string `json:"path"`
	// Args is argv, Args[0] included.
	Args []string `json:"args"`
	// Env is the whole environment of CMD ("K=V"); nothing is inherited.
	Env []string `json:"env"`
	// Dir is the working directory; "" keeps the helper's.
	Dir string `json:"dir,omitempty"`
	// Read are paths granted read-only (directories with everything
	// beneath them); Write read-write; Exec read and execute. Missing paths
	// are skipped. The resolved CMD is always granted read and execute.
	Read  []string `json:"read"`
	Write []string `json:"write"`
	Exec  []string `json:"exec"`
	// ConnectTCP are the TCP ports CMD may connect to (Landlock rules are
	// per port, not per host); empty means none.
	ConnectTCP []uint16 `json:"connect_tcp"`
	// Deny are paths that must stay out of reach (idmcp's data dir): a
	// grant on one of them, inside one, or above one is refused before
	// anything runs.
	Deny []string `json:"deny"`
}

// ErrChildPolicy is wrapped by the errors of [ChildSpec.Validate].
var ErrChildPolicy = errors.New("invalid wrap sandbox")

// Validate checks the spec: absolute paths, a command, and no grant that
// reaches a denied path.
func (s ChildSpec) Validate() error {
	switch s.Mode {
	case ModeAuto, ModeStrict, ModeOff:
	default:
		return fmt.Errorf("mode %q: %w", s.Mode, ErrChildPolicy)
	}
	if s.Path == "" || len(s.Args) == 0 {
		return fmt.Errorf("no command: %w", ErrChildPolicy)
	}
	for _, l := range []struct {
		name  string
		paths []string
	}{{"read", s.Read}, {"write", s.Write}, {"exec", s.Exec}} {
		for _, p := range l.paths {
			if !filepath.IsAbs(p) {
				return fmt.Errorf("%s: %q is not absolute: %w", l.name, p, ErrChildPolicy)
			}
			for _, d := range s.Deny {
				if overlaps(filepath.Clean(p), filepath.Clean(d)) {
					return fmt.Errorf("%s: %q would give the wrapped server idmcp's own files (%s): %w", l.name, p, d, ErrChildPolicy)
				}
			}
		}
	}
	return nil
}

// overlaps reports whether a and b are the same path or one contains the
// other.
func overlaps(a, b string) bool {
	within := func(x, y string) bool { return x == y || strings.HasPrefix(x, strings.TrimSuffix(y, "/")+"/") }
	return within(a, b) || within(b, a)
}

// DefaultChildExec are the paths a wrapped server may read and execute
// unless [wrap.sandbox] exec says otherwise: the system's programs and
// shared libraries, where Debian, Ubuntu, Fedora and Alpine put node,
// python and their libraries, and /usr/local and /opt (nodesource, manual
// installs). A static binary needs only itself, which is always granted.
var DefaultChildExec = []string{
	"/bin", "/usr/bin", "/usr/local/bin", "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/libexec",
	"/usr/local/lib", "/opt",
}

// DefaultChildRead are the paths a wrapped server may read unless
// [wrap.sandbox] read says otherwise: the dynamic loader's cache, time
// zones, locales, TLS roots and name resolution files, /dev/urandom, and
// its own /proc/self (not other processes': /proc/PID/environ of idmcp
// would show what it was started with).
var DefaultChildRead = []string{
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/usr/share/zoneinfo",
	"/usr/share/locale", "/usr/share/i18n", "/etc/ssl", "/etc/ca-certificates", "/usr/share/ca-certificates",
	"/etc/pki", "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
	"/dev/urandom", "/dev/random", "/dev/zero", "/proc/self", "/sys/fs/cgroup",
}

// DefaultChildWrite are the paths a wrapped server may write unless
// [wrap.sandbox] write says otherwise: /dev/null. idmcp wrap adds a private
// temporary directory (its HOME and TMPDIR).
var DefaultChildWrite = []string{"/dev/null"}

// ChildFD is the descriptor on which the helper reads its spec.
const ChildFD = 3

// Helper is a started helper process waiting for its spec; call Release
// to confine it and start CMD. Until then it runs nothing but idmcp's code.
// After Release the spec pipe stays open as the control channel: Terminate
// and Kill ask the helper to signal CMD, and closing it (idmcp exiting, in
// any way) makes the helper kill CMD.
type Helper struct {
	Cmd    *exec.Cmd
	Stdin  io.WriteCloser
	Stdout io.ReadCloser
	ctl    *os.File
	mu     sync.Mutex
}

// StartHelper starts exe with args (idmcp's hidden child mode) on fresh
// stdin/stdout pipes, stderr (of the helper and so of CMD) to stderr, the spec pipe on
// [ChildFD], and (on Linux) SIGKILL when this process dies while the helper
// is still unconfined.
func StartHelper(exe string, stderr io.Writer, args ...string) (*Helper, error) {
	if runtime.GOOS == "windows" {
		// os/exec cannot pass the spec pipe (ExtraFiles) on Windows.
		return nil, fmt.Errorf("idmcp wrap is not available on windows yet: %w", ErrUnavailable)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = []string{}
	cmd.Stderr = stderr
	cmd.ExtraFiles = []*os.File{r}
	cmd.SysProcAttr = helperAttr()
	h := &Helper{Cmd: cmd, ctl: w}
	if h.Stdin, err = cmd.StdinPipe(); err != nil {
		w.Close()
		return nil, err
	}
	if h.Stdout, err = cmd.StdoutPipe(); err != nil {
		w.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start wrap helper: %w", err)
	}
	return h, nil
}

// Release sends spec: the helper confines itself and starts CMD.
func (h *Helper) Release(spec ChildSpec) error {
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return h.control(string(b))
}

// Terminate asks the helper to send CMD SIGTERM.
func (h *Helper) Terminate() error { return h.control(ctlTerm) }

// Kill asks the helper to kill CMD (and so itself).
func (h *Helper) Kill() error {
	err := h.control(ctlKill)
	h.mu.Lock()
	_ = h.ctl.Close()
	h.mu.Unlock()
	return err
}

func (h *Helper) control(line string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.ctl.Write([]byte(line + "\n"))
	return err
}

// Abandon kills a helper that will not be released.
func (h *Helper) Abandon() {
	h.mu.Lock()
	_ = h.ctl.Close()
	h.mu.Unlock()
	_ = h.Cmd.Process.Kill()
	_ = h.Cmd.Wait()
}

// Control words on the spec pipe after the spec.
const (
	ctlTerm = "term"
	ctlKill = "kill"
)

// RunChild is the helper's side: it reads the spec from [ChildFD], applies
// it, starts CMD and supervises it, and exits as CMD did (same code, or
// killed by the same signal). It returns only on failure; the caller
// should print the error to stderr and exit non-zero.
func RunChild() error {
	// The pipe came from os.Pipe, non-blocking; read it with plain
	// blocking reads (the descriptor's flags are shared with idmcp's end
	// of nothing, only this read end).
	_ = syscall.SetNonblock(ChildFD, false)
	f := os.NewFile(ChildFD, "wrap-spec")
	if f == nil {
		return errors.New("no spec descriptor")
	}
	ctl := bufio.NewReader(io.LimitReader(f, 1<<20))
	line, err := ctl.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading the spec: %w", err)
	}
	var spec ChildSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		return fmt.Errorf("reading the spec: %w", err)
	}
	if err := spec.Validate(); err != nil {
		return err
	}
	path, err := lookPath(spec.Path, spec.Env)
	if err != nil {
		return err
	}
	if spec.Dir != "" {
		if err := os.Chdir(spec.Dir); err != nil {
			return err
		}
	}
	if err := confine(spec, path); err != nil {
		return err
	}
	// On Landlock ABI < 8 every thread of this process restricted itself
	// separately, so each is its own domain, and signal scoping allows
	// signals only within one: fork CMD and signal it from the same locked
	// thread.
	runtime.LockOSThread()
	cmd := exec.Command(path)
	cmd.Args, cmd.Env, cmd.Dir = spec.Args, spec.Env, spec.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = helperAttr()
	noInherit(ChildFD)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", spec.Path, err)
	}
	// Only CMD reads our stdin and writes our stdout from here on.
	_ = os.Stdin.Close()
	_ = os.Stdout.Close()
	words := make(chan string)
	go func() {
		for {
			word, err := ctl.ReadString('\n')
			if w := strings.TrimSpace(word); w != "" {
				words <- w
			}
			if err != nil { // idmcp closed the pipe, or died
				words <- ctlKill
				return
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		select {
		case w := <-words:
			switch w {
			case ctlTerm:
				_ = terminate(cmd.Process)
			case ctlKill:
				_ = cmd.Process.Kill()
			}
		case err := <-exited:
			exitLike(cmd.ProcessState, err)
			return nil
		}
	}
}

// lookPath resolves name against the PATH in env.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return filepath.Abs(name)
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found in PATH %q", name, path)
}
