//go:build !linux

package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func helperAttr() *syscall.SysProcAttr { return nil }

// execConfined has no kernel confinement to apply here: strict refuses,
// auto and off run CMD as a child and relay its exit status (no exec(2)
// that replaces the process on every platform).
func execConfined(spec ChildSpec) error {
	if spec.Mode == ModeStrict {
		return fmt.Errorf("wrap sandbox strict: %w", ErrUnavailable)
	}
	path, err := lookPath(spec.Path, spec.Env)
	if err != nil {
		return err
	}
	cmd := exec.Command(path, spec.Args[1:]...)
	cmd.Env, cmd.Dir = spec.Env, spec.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		return err
	}
	os.Exit(0)
	return nil
}
