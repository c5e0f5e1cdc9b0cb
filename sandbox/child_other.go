//go:build !linux

package sandbox

import (
	"fmt"
	"os"
	"syscall"
)

func helperAttr() *syscall.SysProcAttr { return nil }

// confine has no kernel confinement to apply here: strict refuses, auto and
// off run CMD unconfined.
func confine(spec ChildSpec, _ string) error {
	if spec.Mode == ModeStrict {
		return fmt.Errorf("wrap sandbox strict: %w", ErrUnavailable)
	}
	return nil
}

func noInherit(int) {}

func terminate(p *os.Process) error { return p.Kill() }

func exitLike(st *os.ProcessState, err error) {
	if st == nil {
		fmt.Fprintln(os.Stderr, "idmcp wrap: waiting for the wrapped server:", err)
		os.Exit(125)
	}
	os.Exit(st.ExitCode())
}
