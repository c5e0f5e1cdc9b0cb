//go:build unix

package tools

import "syscall"

// openNonblock is added to every open of a caller-named path: opening a
// FIFO without it waits for a writer forever (open(2), fifo(7)). It changes
// nothing for regular files and directories, whose reads never return
// EAGAIN, so it is not cleared after the type check.
const openNonblock = syscall.O_NONBLOCK
