//go:build sandboxprobe && linux && !amd64

package main

// int80Getpid has no i386 entry point to call on this architecture.
func int80Getpid() int32 { return -38 } // -ENOSYS

// haveInt80 says whether int80Getpid really enters the kernel as i386.
const haveInt80 = false
