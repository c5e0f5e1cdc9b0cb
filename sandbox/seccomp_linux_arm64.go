package sandbox

import "golang.org/x/sys/unix"

// nativeAuditArch is the seccomp_data.arch value of this build's system
// calls; anything else (AArch32 compat calls) is killed by the arch guard.
const nativeAuditArch = unix.AUDIT_ARCH_AARCH64

// archDeniedSyscalls are arm64-only additions to the deny list (none).
func archDeniedSyscalls() []string { return nil }
