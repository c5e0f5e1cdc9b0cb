//go:build !unix

package tools

// openNonblock is 0 where opening a file cannot block on a missing peer
// (Windows has no FIFOs in the file system).
const openNonblock = 0
