//go:build sandboxprobe && linux

package probe

// int80Getpid calls getpid(2) through the i386 system-call entry point.
func int80Getpid() int32

const haveInt80 = true
