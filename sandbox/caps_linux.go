//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// capNames are the capability names of linux/capability.h, by number.
var capNames = [...]string{
	"cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid",
	"cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable",
	"cap_net_bind_service", "cap_net_broadcast", "cap_net_admin", "cap_net_raw", "cap_ipc_lock",
	"cap_ipc_owner", "cap_sys_module", "cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace",
	"cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice", "cap_sys_resource",
	"cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease", "cap_audit_write",
	"cap_audit_control", "cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog",
	"cap_wake_alarm", "cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf",
	"cap_checkpoint_restore",
}

func capName(c int) string {
	if c < len(capNames) {
		return capNames[c]
	}
	return fmt.Sprintf("cap_%d", c)
}

// capState is what the calling thread holds: its effective, permitted and
// inheritable sets (capget(2)), its bounding set and its ambient set (one
// bit per capability number, up to the kernel's last).
type capState struct {
	effective, permitted, inheritable uint64
	bounding, ambient                 uint64
	last                              int // highest capability number the kernel knows
}

// readCaps reads the calling thread's capabilities without touching the
// file system (which the sandbox may already deny): the last capability
// is found by asking PR_CAPBSET_READ until it answers EINVAL.
func readCaps() (capState, error) {
	var s capState
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return s, fmt.Errorf("capget: %w", err)
	}
	s.effective = uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	s.permitted = uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
	s.inheritable = uint64(data[0].Inheritable) | uint64(data[1].Inheritable)<<32
	s.last = -1
	for c := 0; c < 64; c++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break
		}
		if err != nil {
			return s, fmt.Errorf("prctl(PR_CAPBSET_READ, %d): %w", c, err)
		}
		s.last = c
		if in == 1 {
			s.bounding |= 1 << c
		}
		if amb, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(c), 0, 0); err == nil && amb == 1 {
			s.ambient |= 1 << c
		}
	}
	return s, nil
}

// held is every capability the thread holds in any set.
func (s capState) held() uint64 {
	return s.effective | s.permitted | s.inheritable | s.bounding | s.ambient
}

// capPlan is what dropCaps does: the capabilities it removes from some
// set, those it keeps (effective and permitted), and why it keeps them.
type capPlan struct {
	drop, keep uint64
	why        string
	bounding   bool // the bounding set can be emptied (CAP_SETPCAP held)
}

// planCaps decides which capabilities the confined server keeps: none,
// except CAP_DAC_OVERRIDE for a root process whose data dir or workspace
// belongs to another user (SQLite creates its -wal, -shm and -journal
// files in the data dir, and new connections open the database by name,
// after start-up). Landlock still confines every path the process can
// reach, with or without it.
func planCaps(p Policy, s capState) capPlan {
	var pl capPlan
	if s.permitted&(1<<unix.CAP_DAC_OVERRIDE) != 0 {
		euid := os.Geteuid()
		for _, d := range []string{p.DataDir, p.Workspace} {
			if d == "" {
				continue
			}
			var st unix.Stat_t
			if unix.Stat(d, &st) == nil && int(st.Uid) != euid {
				pl.keep = 1 << unix.CAP_DAC_OVERRIDE
				pl.why = fmt.Sprintf("%s belongs to uid %d", d, st.Uid)
				break
			}
		}
	}
	pl.drop = s.held() &^ pl.keep
	pl.bounding = s.effective&(1<<unix.CAP_SETPCAP) != 0
	if !pl.bounding {
		// Without CAP_SETPCAP the bounding set cannot shrink; it no
		// longer matters once no_new_privs is set and execve is denied,
		// so it is not reported as dropped.
		pl.drop &^= s.bounding &^ (s.effective | s.permitted | s.inheritable | s.ambient)
	}
	return pl
}

// capList lists the capabilities in set, in number order.
func capList(set uint64) []string {
	var out []string
	for c := 0; c < 64; c++ {
		if set&(1<<c) != 0 {
			out = append(out, capName(c))
		}
	}
	return out
}

// dropCaps applies pl on every thread of the process (capabilities are
// per-thread; psx runs each call on all of them): the ambient set is
// cleared, the bounding set emptied (except pl.keep) when allowed, and the
// effective, permitted and inheritable sets reduced to pl.keep. The
// bounding set goes first, because dropping from it needs CAP_SETPCAP,
// which the last step removes.
func dropCaps(pl capPlan, s capState) error {
	if _, _, errno := psx.Syscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); errno != 0 && errno != unix.EINVAL {
		return fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %w", errno)
	}
	if pl.bounding {
		for c := 0; c <= s.last; c++ {
			if s.bounding&(1<<c) == 0 || pl.keep&(1<<c) != 0 {
				continue
			}
			if _, _, errno := psx.Syscall3(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); errno != 0 {
				return fmt.Errorf("prctl(PR_CAPBSET_DROP, %s): %w", capName(c), errno)
			}
		}
	}
	keep := pl.keep & s.permitted
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(keep), Permitted: uint32(keep)},
		{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32)},
	}
	if _, _, errno := psx.Syscall3(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		return fmt.Errorf("capset: %w", errno)
	}
	// Check this thread's result: psx reports one thread's errno only.
	after, err := readCaps()
	if err != nil {
		return err
	}
	left := (after.effective | after.permitted | after.inheritable | after.ambient) &^ pl.keep
	if pl.bounding {
		left |= after.bounding &^ pl.keep
	}
	if left != 0 {
		return fmt.Errorf("capabilities still held after dropping: %v", capList(left))
	}
	return nil
}
