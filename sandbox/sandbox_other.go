//go:build !linux

package sandbox

import (
	"fmt"
	"runtime"
)

// Probe reports what [Apply] in ModeAuto would enforce: nothing, since only
// Linux has Landlock and seccomp.
func Probe() Status {
	return Status{
		Platform: runtime.GOOS,
		Mode:     ModeAuto,
		Notes:    []string{"no sandbox on " + runtime.GOOS + " (Linux only: Landlock and seccomp)"},
	}
}

// Apply applies nothing on this platform. ModeStrict fails with an error
// wrapping [ErrUnavailable]; ModeAuto and ModeOff succeed with
// Applied=false.
func Apply(p Policy) (Status, error) {
	st := Probe()
	st.Mode = p.Mode
	if err := p.Validate(); err != nil {
		return st, err
	}
	if p.Mode == ModeStrict {
		return st, fmt.Errorf("strict mode: landlock and seccomp are Linux-only, this is %s: %w", runtime.GOOS, ErrUnavailable)
	}
	if p.Mode == ModeOff {
		st.Notes = nil
	}
	return st, nil
}
