//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// helperAttr kills the helper, and the CMD it becomes, when idmcp dies
// (PR_SET_PDEATHSIG survives execve of a program that is not set-user-ID).
func helperAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// Child access rights. None includes Refer (no cross-directory links or
// renames), MakeSock, MakeFifo or the device rights.
const (
	childExecDir  landlock.AccessFSSet = ll.AccessFSExecute | ll.AccessFSReadFile | ll.AccessFSReadDir
	childExecFile landlock.AccessFSSet = ll.AccessFSExecute | ll.AccessFSReadFile
	childReadDir  landlock.AccessFSSet = ll.AccessFSReadFile | ll.AccessFSReadDir
	childReadFile landlock.AccessFSSet = ll.AccessFSReadFile
	childWriteDir landlock.AccessFSSet = childReadDir | ll.AccessFSWriteFile | ll.AccessFSTruncate |
		ll.AccessFSMakeReg | ll.AccessFSMakeDir | ll.AccessFSRemoveFile | ll.AccessFSRemoveDir | ll.AccessFSMakeSym
	childWriteFile landlock.AccessFSSet = ll.AccessFSReadFile | ll.AccessFSWriteFile | ll.AccessFSTruncate
)

// confine applies spec to this process (and so to CMD, started next).
func confine(spec ChildSpec, path string) error {
	if spec.Mode == ModeOff {
		return nil
	}
	k := detect()
	if spec.Mode == ModeStrict {
		if missing := k.missingForStrict(MinNetworkABI); len(missing) > 0 {
			return fmt.Errorf("strict mode: %s: %w", strings.Join(missing, "; "), ErrUnavailable)
		}
	}
	_, _ = time.Now().Zone()
	if abi := k.landlockABI(); abi > 0 {
		if err := childLandlock(spec, path, abi, spec.Mode == ModeAuto); err != nil {
			return fmt.Errorf("landlock: %w", err)
		}
	}
	if k.seccompErr == nil {
		if err := childSeccomp(k.killErr == nil); err != nil {
			return fmt.Errorf("seccomp: %w", err)
		}
	}
	return nil
}

// noInherit keeps fd and everything above it out of CMD.
func noInherit(fd int) {
	_ = unix.CloseRange(uint(fd), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// exitLike ends the helper the way CMD ended: the same exit code, or the
// same signal (which the helper may send itself: same Landlock domain).
func exitLike(st *os.ProcessState, err error) {
	if st == nil {
		fmt.Fprintln(os.Stderr, "idmcp wrap: waiting for the wrapped server:", err)
		os.Exit(125)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig := ws.Signal()
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig)
		time.Sleep(time.Second)
		os.Exit(128 + int(sig))
	}
	os.Exit(st.ExitCode())
}

// childLandlock builds one rule per existing path, with file or directory
// rights as the path is, and restricts this process.
func childLandlock(spec ChildSpec, cmd string, abi int, bestEffort bool) error {
	presets := [...]landlock.Config{landlock.V1, landlock.V2, landlock.V3, landlock.V4, landlock.V5, landlock.V6, landlock.V7}
	cfg := presets[abi-1]
	if bestEffort {
		cfg = cfg.BestEffort()
	}
	handled := cfg.HandledAccessFS
	var rules []landlock.Rule
	add := func(paths []string, dirRights, fileRights landlock.AccessFSSet) {
		for _, p := range paths {
			if p == "/proc/self" {
				// The helper's pid is CMD's: resolve now, so the rule is
				// on this process's own directory and no other's.
				p = filepath.Join("/proc", fmt.Sprint(os.Getpid()))
			}
			fi, err := os.Stat(p)
			if err != nil {
				continue
			}
			rights := fileRights
			if fi.IsDir() {
				rights = dirRights
			}
			rules = append(rules, landlock.PathAccess(rights&handled, p))
		}
	}
	add(spec.Exec, childExecDir, childExecFile)
	add([]string{cmd}, childExecDir, childExecFile)
	add(spec.Read, childReadDir, childReadFile)
	add(spec.Write, childWriteDir, childWriteFile)
	if abi >= MinNetworkABI {
		for _, port := range spec.ConnectTCP {
			rules = append(rules, landlock.ConnectTCP(port))
		}
	}
	return cfg.Restrict(rules...)
}

// childDenied is the server deny list without execve and execveat: CMD is
// started with execve after the filter is loaded, and may start its own
// helpers (Landlock's execute right decides which files).
func childDenied() []string {
	return slices.DeleteFunc(deniedSyscalls(), func(s string) bool { return s == "execve" || s == "execveat" })
}

// childSeccomp loads the child's filters: the deny list, socket(AF_UNIX)
// (Landlock ABI 7 does not mediate connecting to a pathname unix socket
// such as the D-Bus session bus, where the keyring lives), clone with
// namespace flags, MPTCP sockets, clone3 as ENOSYS, and the arch guard.
func childSeccomp(guard bool) error {
	pol := seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{{
			Action: seccomp.ActionErrno,
			Names:  childDenied(),
			NamesWithCondtions: append(argFilteredSyscalls(), seccomp.NameWithConditions{
				Name: "socket", Conditions: seccomp.ArgumentConditions{
					{Argument: 0, Operation: seccomp.Equal, Value: unix.AF_UNIX},
				}}),
		}},
	}
	deny, err := pol.Assemble()
	if err != nil {
		return fmt.Errorf("assembling deny list: %w", err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	if err := loadFilter(deny); err != nil {
		return err
	}
	if err := loadFilter(clone3Filter()); err != nil {
		return err
	}
	if guard {
		return loadFilter(archGuard())
	}
	return nil
}
