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

// DialUnix connects to the pathname unix socket at path and closes the
// connection.
func DialUnix(path string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	return os.NewSyscallError("connect", unix.Connect(fd, &unix.SockaddrUnix{Name: path}))
}

// SendUDP sends one datagram to 127.0.0.1:port the way Go's net package
// does (SOCK_NONBLOCK|SOCK_CLOEXEC OR-ed into the type).
func SendUDP(port int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	return os.NewSyscallError("sendto", unix.Sendto(fd, []byte("probe"), 0, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}))
}

// Socket creates a socket(domain, typ, proto) and closes it.
func Socket(domain, typ, proto int) error {
	fd, err := unix.Socket(domain, typ, proto)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	return unix.Close(fd)
}

// SocketHighBits calls socket(2) for AF_UNIX with junk in the upper 32
// bits of the domain argument, which the kernel ignores (the argument is
// an int): a filter that compares all 64 bits would let it through.
func SocketHighBits() error {
	fd, _, errno := unix.RawSyscall(unix.SYS_SOCKET, 1<<32|unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if errno != 0 {
		return os.NewSyscallError("socket", errno)
	}
	return unix.Close(int(fd))
}

// Socketpair creates a unix socket pair and closes it.
func Socketpair() error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socketpair", err)
	}
	unix.Close(fds[0])
	return unix.Close(fds[1])
}

// Htons is the network-order protocol argument AF_PACKET sockets take.
func Htons(v uint16) int { return int(v<<8 | v>>8) }

// ChmodChown changes dir's mode to what it is and its owner to who it is
// (so the probe changes nothing when it succeeds), through the path-based
// calls chmod/fchmodat and chown/fchownat.
func ChmodChown(dir string, chown bool) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return os.NewSyscallError("stat", err)
	}
	if chown {
		return os.NewSyscallError("fchownat", unix.Fchownat(unix.AT_FDCWD, dir, int(st.Uid), int(st.Gid), 0))
	}
	return os.NewSyscallError("fchmodat", unix.Fchmodat(unix.AT_FDCWD, dir, st.Mode&0o7777, 0))
}

// Fchmod creates a file in dir and fchmods it by descriptor, as SQLite
// does to a new -wal or -journal file; the file is removed.
func Fchmod(dir string) error {
	f, err := os.CreateTemp(dir, "fchmod-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := f.Chmod(0o640); err != nil {
		return err
	}
	return f.Chown(os.Geteuid(), os.Getegid())
}

// CapsHeld counts the capabilities this thread holds in any of its
// effective, permitted, inheritable, ambient and bounding sets.
func CapsHeld() (int64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, os.NewSyscallError("capget", err)
	}
	set := uint64(data[0].Effective|data[0].Permitted|data[0].Inheritable) |
		uint64(data[1].Effective|data[1].Permitted|data[1].Inheritable)<<32
	for c := 0; c < 64; c++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err != nil {
			break
		}
		if in == 1 {
			set |= 1 << c
		}
		if amb, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(c), 0, 0); err == nil && amb == 1 {
			set |= 1 << c
		}
	}
	var n int64
	for ; set != 0; set &= set - 1 {
		n++
	}
	return n, nil
}
