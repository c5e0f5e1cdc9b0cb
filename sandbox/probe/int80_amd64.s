//go:build sandboxprobe && linux

#include "textflag.h"

// func int80Getpid() int32
//
// getpid through the i386 entry point (int $0x80, i386 syscall number 20),
// which amd64 kernels with CONFIG_IA32_EMULATION accept from 64-bit code.
TEXT ·int80Getpid(SB), NOSPLIT, $0-4
	MOVL $20, AX
	INT  $0x80
	MOVL AX, ret+0(FP)
	RET
