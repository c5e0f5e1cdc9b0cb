//go:build !linux

// Command loadgen is scripts/bench's benchmark driver; it pins processes to
// CPUs and reads /proc, so it runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "loadgen: Linux only")
	os.Exit(1)
}
