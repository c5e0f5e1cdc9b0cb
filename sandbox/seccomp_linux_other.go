//go:build linux && !amd64 && !arm64

package sandbox

// nativeAuditArch is 0 where go-seccomp-bpf has no system-call table: the
// seccomp part is then reported unavailable.
const nativeAuditArch = 0

func archDeniedSyscalls() []string { return nil }
