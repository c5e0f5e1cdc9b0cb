//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// deniedSyscalls are system calls a confined MCP server never makes. They
// fail with EPERM. The list covers running programs (execve, execveat), inspecting or changing other
// processes (ptrace, process_vm_*, pidfd_getfd, kcmp, process_madvise),
// namespaces and mounts, kernel modules, keyrings, BPF, io_uring (which
// bypasses seccomp for the operations it queues), and host-wide settings.
// Go's runtime creates threads with clone, which stays allowed.
func deniedSyscalls() []string {
	return append([]string{
		"execve", "execveat",
		"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp", "process_madvise",
		"mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
		"move_mount", "open_tree", "mount_setattr", "unshare", "setns",
		"bpf", "perf_event_open", "userfaultfd", "personality", "fanotify_init",
		"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
		"keyctl", "add_key", "request_key",
		"io_uring_setup", "io_uring_enter", "io_uring_register",
		"open_by_handle_at", "name_to_handle_at",
		"swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "syslog", "vhangup",
		"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
		"sethostname", "setdomainname", "lookup_dcookie",
		// Unix socket pairs: nothing after start-up needs one (the Go
		// runtime, os/exec and SQLite do not), and AF_UNIX is the family
		// socketFilter refuses.
		"socketpair",
		// The path-based chmod/chown family (chmod, chown and lchown are
		// amd64-only, in archDeniedSyscalls): a confined tool must not
		// change the modes or owners of what it can reach. fchmod and
		// fchown stay allowed: SQLite calls them on the -wal and -journal
		// files it has just created, to match the database's mode and (as
		// root) owner.
		"fchmodat", "fchmodat2", "fchownat",
	}, archDeniedSyscalls()...)
}

// Namespace flags of clone(2) (linux/sched.h). clone with any of them is
// denied like unshare; thread creation never sets them.
const cloneNewNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// argFilteredSyscalls are denied for some arguments only: clone with
// namespace flags (first argument on amd64 and arm64). socket(2) is also
// filtered by argument, in socketFilter, which go-seccomp-bpf's conditions
// cannot express.
func argFilteredSyscalls() []seccomp.NameWithConditions {
	return []seccomp.NameWithConditions{
		{Name: "clone", Conditions: seccomp.ArgumentConditions{
			{Argument: 0, Operation: seccomp.BitsSet, Value: cloneNewNamespaces},
		}},
	}
}

// socketFilterCount is what socketFilter adds to Status.ArgFiltered.
const socketFilterCount = 1

// Offsets in struct seccomp_data (linux/seccomp.h) of the low 32 bits of
// socket(2)'s arguments on a little-endian machine (amd64, arm64; the
// only architectures with a deny list here).
const (
	offNR       = 0
	offArch     = 4
	offArgLo0   = 16  // domain
	offArgLo1   = 24  // type | SOCK_NONBLOCK | SOCK_CLOEXEC
	offArgLo2   = 32  // protocol
	sockTypeMsk = 0xf // SOCK_TYPE_MASK (linux/net.h)
)

// socketFilter lets socket(2) create only the sockets the server uses
// after start-up and refuses every other with EPERM:
//
//   - AF_INET and AF_INET6 stream sockets with protocol 0 or IPPROTO_TCP
//     (the identity provider over TCP, which Landlock's TCP rules then
//     confine to the granted ports);
//   - with udp, AF_INET and AF_INET6 datagram sockets with protocol 0 or
//     IPPROTO_UDP (DNS, in HTTP mode when the identity provider's host
//     needs resolving).
//
// Everything else is refused: AF_UNIX (D-Bus, systemd, docker.sock and
// any pathname socket, which Landlock below ABI 9 does not restrict),
// AF_PACKET, AF_NETLINK and every other family, SOCK_RAW in any family,
// UDP when !udp, ICMP "ping" sockets, SCTP, and MPTCP (which Landlock's
// TCP rules do not cover; Go's net package falls back to plain TCP when
// creating an MPTCP socket fails, so even net.Listen ends up under the
// TCP rules).
//
// It is hand-written BPF because go-seccomp-bpf's conditions compare all
// 64 bits of an argument for equality: the kernel reads socket(2)'s int
// arguments from the low 32 bits only, so junk in the high half would
// slip past an Equal, and the type argument needs masking (SOCK_NONBLOCK
// and SOCK_CLOEXEC are OR-ed into it), which no condition can do. System
// calls of a foreign architecture are left to the arch guard.
func socketFilter(udp bool) []bpf.Instruction {
	deny := bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)}
	allow := bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}
	dgram := uint32(unix.SOCK_DGRAM)
	if !udp {
		dgram = 0xff // matches no masked type
	}
	return []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: offArch, Size: 4},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: nativeAuditArch, SkipFalse: 17}, // -> 19 allow
		/* 2 */ bpf.LoadAbsolute{Off: offNR, Size: 4},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_SOCKET, SkipFalse: 15}, // -> 19 allow
		/* 4 */ bpf.LoadAbsolute{Off: offArgLo0, Size: 4},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_INET, SkipTrue: 1},
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_INET6, SkipFalse: 11}, // -> 18 deny
		/* 7 */ bpf.LoadAbsolute{Off: offArgLo1, Size: 4},
		/* 8 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: sockTypeMsk},
		/* 9 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SOCK_STREAM, SkipTrue: 2}, // -> 12
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: dgram, SkipTrue: 4}, // -> 15
		/* 11 */ bpf.Jump{Skip: 6}, // -> 18 deny
		/* 12 */ bpf.LoadAbsolute{Off: offArgLo2, Size: 4},
		/* 13 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 5}, // -> 19 allow
		/* 14 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_TCP, SkipTrue: 4, SkipFalse: 3},
		/* 15 */ bpf.LoadAbsolute{Off: offArgLo2, Size: 4},
		/* 16 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 2}, // -> 19 allow
		/* 17 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_UDP, SkipTrue: 1},
		/* 18 */ deny,
		/* 19 */ allow,
	}
}

func denyPolicy() seccomp.Policy {
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{{
			Action:             seccomp.ActionErrno, // RET_ERRNO|EPERM
			Names:              deniedSyscalls(),
			NamesWithCondtions: argFilteredSyscalls(),
		}},
	}
}

// checkDenyList assembles the deny list for this architecture (unknown
// names are an error in go-seccomp-bpf) and counts its entries.
func checkDenyList() (denied, argFiltered int, err error) {
	if nativeAuditArch == 0 {
		return 0, 0, fmt.Errorf("no system-call table for %s", runtime.GOARCH)
	}
	pol := denyPolicy()
	if _, err := pol.Assemble(); err != nil {
		return 0, 0, fmt.Errorf("deny list for %s: %w", runtime.GOARCH, err)
	}
	return len(pol.Syscalls[0].Names), len(pol.Syscalls[0].NamesWithCondtions) + socketFilterCount, nil
}

// seccompActionAvail asks the kernel whether it supports a filter return
// action (seccomp(2), SECCOMP_GET_ACTION_AVAIL, Linux 4.14).
func seccompActionAvail(action uint32) error {
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&action)))
	switch {
	case errno == 0:
		return nil
	case errno == unix.ENOSYS:
		return errors.New("kernel built without seccomp")
	case errno == unix.EINVAL:
		return errors.New("kernel too old (no SECCOMP_GET_ACTION_AVAIL)")
	case errno == unix.EOPNOTSUPP:
		return fmt.Errorf("filter action %#x not supported", action)
	}
	return fmt.Errorf("seccomp(SECCOMP_GET_ACTION_AVAIL, %#x): %w", action, errno)
}

// archGuard kills the process on any system call made with a foreign
// architecture's calling convention (i386 int 0x80 on amd64, AArch32 on
// arm64). go-seccomp-bpf's filter lets those through to its default action,
// Allow, so without this guard the deny list could be bypassed with the
// 32-bit system-call numbers; the kernel docs require filters to check
// seccomp_data.arch for this reason
// (https://docs.kernel.org/userspace-api/seccomp_filter.html#pitfalls).
func archGuard() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: nativeAuditArch, SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
	}
}

// clone3Filter makes clone3 fail with ENOSYS. Its flags live in a struct a
// seccomp filter cannot read, so it could create namespaces past the clone
// rule; ENOSYS rather than EPERM because glibc's pthread_create (used by
// cgo builds, e.g. `go run` on a machine with a C compiler) tries clone3
// first and falls back to clone only on ENOSYS — with EPERM the runtime
// aborts when it starts a thread. This is what container runtimes do too.
func clone3Filter() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 4}, // seccomp_data.nr
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_CLONE3, SkipFalse: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
	}
}

// loadSeccomp loads the deny list, the socket filter (allowing UDP if
// udp) and, if guard, the architecture guard, all synchronised to every
// thread. It returns whether the guard is loaded.
func loadSeccomp(guard, udp bool) (bool, error) {
	pol := denyPolicy()
	deny, err := pol.Assemble()
	if err != nil {
		return false, fmt.Errorf("assembling deny list: %w", err)
	}

	// prctl(PR_SET_NO_NEW_PRIVS) and seccomp(2) act on the calling thread;
	// keep both on one OS thread. TSYNC then copies the filter and
	// no_new_privs to all other threads (seccomp(2)).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return false, fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	if err := loadFilter(deny); err != nil {
		return false, fmt.Errorf("loading deny list: %w", err)
	}
	if err := loadFilter(clone3Filter()); err != nil {
		return false, fmt.Errorf("loading clone3 filter: %w", err)
	}
	if err := loadFilter(socketFilter(udp)); err != nil {
		return false, fmt.Errorf("loading socket filter: %w", err)
	}
	if !guard {
		return false, nil
	}
	if err := loadFilter(archGuard()); err != nil {
		return false, fmt.Errorf("loading arch guard: %w", err)
	}
	return true, nil
}

// loadFilter installs a seccomp filter with SECCOMP_FILTER_FLAG_TSYNC. It
// replaces go-seccomp-bpf's LoadFilter, which treats any zero errno as
// success: with TSYNC the kernel reports a thread it could not synchronise
// as a positive return value, not as an errno (seccomp(2)).
func loadFilter(insts []bpf.Instruction) error {
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return fmt.Errorf("assembling BPF: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r1, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): %w", errno)
	}
	if r1 != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): thread %d could not be synchronised", r1)
	}
	return nil
}
