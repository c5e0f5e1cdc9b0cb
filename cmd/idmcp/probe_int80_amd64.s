//go:build sandboxprobe && linux

#include "textflag.h"

// func int80Getpid() int32
//
// getpid through the i386 entry point (int $0x80, i386 system call number
// 20), which amd64 kernels with CONFIG_IA32_EMULATION accept from 64-bit
// code. The same as sandbox/internal/sandboxprobe/int80_amd64.s.
TEXT ·int80Getpid(SB), NOSPLIT, $0-4
	MOVL $20, AX
	INT  $0x80
	MOVL AX, ret+0(FP)
	RET
