//go:build sandboxprobe && linux

// Package probe holds the actions the sandbox tests try from inside a
// confined process (sandbox/internal/sandboxprobe, and the sandbox_probe
// tool of idmcp's test builds) to see how the kernel answers. It exists only
// in builds with -tags sandboxprobe, never in the product binary.
package probe

import (
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// ReadLen reads path and returns its length.
func ReadLen(path string) (int64, error) {
	b, err := os.ReadFile(path)
	return int64(len(b)), err
}

// WriteRemove creates path, writes to it and removes it.
func WriteRemove(path string) error {
	if err := os.WriteFile(path, []byte("probe"), 0o600); err != nil {
		return err
	}
	return os.Remove(path)
}

// PtraceAttachDetach attaches to pid, waits for it to stop and detaches;
// all three calls must come from one thread.
func PtraceAttachDetach(pid int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.PtraceAttach(pid); err != nil {
		return os.NewSyscallError("ptrace", err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
		return os.NewSyscallError("wait4", err)
	}
	return os.NewSyscallError("ptrace", unix.PtraceDetach(pid))
}

// Int80Getpid calls getpid(2) through the i386 system-call entry point and
// returns the pid, or ENOSYS where there is none (not amd64). The seccomp
// architecture guard kills the process instead.
func Int80Getpid() (int64, error) {
	if !haveInt80 {
		return 0, syscall.ENOSYS
	}
	r := int80Getpid()
	if r < 0 {
		return 0, syscall.Errno(-r)
	}
	return int64(r), nil
}
