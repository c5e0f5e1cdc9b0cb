//go:build sandboxprobe && linux && !amd64

package probe

func int80Getpid() int32 { return -38 } // -ENOSYS: no i386 entry point here

const haveInt80 = false
