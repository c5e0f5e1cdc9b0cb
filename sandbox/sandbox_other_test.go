//go:build !linux

package sandbox_test

import (
	"errors"
	"runtime"
	"testing"

	"github.com/idmcp/idmcp/sandbox"
)

func TestApply_Unsupported(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode    sandbox.Mode
		wantErr error
	}{
		{sandbox.ModeAuto, nil},
		{sandbox.ModeOff, nil},
		{sandbox.ModeStrict, sandbox.ErrUnavailable},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			st, err := sandbox.Apply(sandbox.Policy{Mode: tc.mode, DataDir: dir})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Apply(%s) error=%v, want %v", tc.mode, err, tc.wantErr)
			}
			if st.Available || st.Applied || st.Platform != runtime.GOOS {
				t.Fatalf("Apply(%s)=%+v, want unavailable, not applied, platform %s", tc.mode, st, runtime.GOOS)
			}
		})
	}
}

func TestProbe_Unsupported(t *testing.T) {
	if st := sandbox.Probe(); st.Available || st.Applied || st.Files || st.Seccomp {
		t.Fatalf("Probe()=%+v, want nothing available", st)
	}
}
