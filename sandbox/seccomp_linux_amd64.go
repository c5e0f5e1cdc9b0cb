package sandbox

import "golang.org/x/sys/unix"

// nativeAuditArch is the seccomp_data.arch value of this build's system
// calls; anything else is killed by the arch guard.
const nativeAuditArch = unix.AUDIT_ARCH_X86_64

// archDeniedSyscalls are amd64-only additions to the deny list: port I/O,
// LDT changes, obsolete calls, and the path-based chmod/chown calls that
// arm64 has only in their *at form.
func archDeniedSyscalls() []string {
	return []string{"iopl", "ioperm", "modify_ldt", "uselib", "_sysctl",
		"create_module", "get_kernel_syms", "query_module", "nfsservctl",
		"chmod", "chown", "lchown"}
}
