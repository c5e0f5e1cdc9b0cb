//go:build sandboxprobe && linux

package main

// int80Getpid calls getpid(2) through the i386 system-call entry point; see
// probe_int80_amd64.s.
func int80Getpid() int32

// haveInt80 says whether int80Getpid really enters the kernel as i386.
const haveInt80 = true
