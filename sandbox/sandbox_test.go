package sandbox_test

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/idmcp/idmcp/sandbox"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want sandbox.Mode
		err  bool
	}{
		{"auto", sandbox.ModeAuto, false},
		{"strict", sandbox.ModeStrict, false},
		{"off", sandbox.ModeOff, false},
		{"STRICT", sandbox.ModeStrict, false},
		{" off\n", sandbox.ModeOff, false},
		{"", "", true},
		{"on", "", true},
		{"none", "", true},
		{"auto,strict", "", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := sandbox.ParseMode(tc.in)
			if tc.err {
				if !errors.Is(err, sandbox.ErrInvalidPolicy) {
					t.Fatalf("ParseMode(%q)=%q, %v; want ErrInvalidPolicy", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseMode(%q)=%q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// abs makes a test path absolute on every platform (Windows needs a volume).
func abs(p string) string {
	if runtime.GOOS == "windows" {
		return filepath.Join(`C:\`, filepath.FromSlash(p))
	}
	return p
}

func TestPolicy_Validate(t *testing.T) {
	ok := sandbox.Policy{Mode: sandbox.ModeAuto, DataDir: abs("/var/lib/idmcp")}
	for _, tc := range []struct {
		name  string
		edit  func(*sandbox.Policy)
		field string // "" = valid
	}{
		{"OK", func(*sandbox.Policy) {}, ""},
		{"OKFull", func(p *sandbox.Policy) {
			p.Mode, p.Workspace, p.WorkspaceWritable = sandbox.ModeStrict, abs("/srv/ws"), true
			p.ReadOnlyFiles, p.ReadOnlyDirs = []string{abs("/etc/hosts")}, []string{abs("/etc/ssl")}
			p.ConnectTCP, p.RequireABI = []uint16{443}, 6
		}, ""},
		{"OffNeedsNothing", func(p *sandbox.Policy) { *p = sandbox.Policy{Mode: sandbox.ModeOff} }, ""},
		{"ErrEmptyMode", func(p *sandbox.Policy) { p.Mode = "" }, "Mode"},
		{"ErrUncanonicalMode", func(p *sandbox.Policy) { p.Mode = "Auto" }, "Mode"},
		{"ErrNoDataDir", func(p *sandbox.Policy) { p.DataDir = "" }, "DataDir"},
		{"ErrRelativeDataDir", func(p *sandbox.Policy) { p.DataDir = "data" }, "DataDir"},
		{"ErrRelativeWorkspace", func(p *sandbox.Policy) { p.Workspace = "./ws" }, "Workspace"},
		{"ErrRelativeROFile", func(p *sandbox.Policy) { p.ReadOnlyFiles = []string{abs("/etc/hosts"), "hosts"} }, "ReadOnlyFiles[1]"},
		{"ErrRelativeRODir", func(p *sandbox.Policy) { p.ReadOnlyDirs = []string{"ssl"} }, "ReadOnlyDirs[0]"},
		{"ErrPortZero", func(p *sandbox.Policy) { p.ConnectTCP = []uint16{443, 0} }, "ConnectTCP[1]"},
		{"ErrNegativeABI", func(p *sandbox.Policy) { p.RequireABI = -1 }, "RequireABI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.edit(&p)
			err := p.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate()=%v, want nil", err)
				}
				return
			}
			if !errors.Is(err, sandbox.ErrInvalidPolicy) || !strings.Contains(err.Error(), `field "`+tc.field+`"`) {
				t.Fatalf("Validate()=%v, want ErrInvalidPolicy naming field %q", err, tc.field)
			}
		})
	}
}

func TestStatus_String(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   sandbox.Status
		want string
	}{
		{"Full", sandbox.Status{Platform: "linux", Available: true, Mode: sandbox.ModeAuto, LandlockABI: 7,
			Files: true, Network: true, Scoped: true, Seccomp: true, DeniedSyscalls: 56, ArchGuard: true, Applied: true},
			"sandbox: landlock ABI 7 (files, tcp, scoping) + seccomp (56 denied, arch guard); mode=auto"},
		{"OldKernel", sandbox.Status{Platform: "linux", Available: true, Mode: sandbox.ModeAuto, LandlockABI: 3,
			Files: true, Seccomp: true, DeniedSyscalls: 64, ArgFiltered: 2, Applied: true,
			Notes: []string{"network rules need ABI 4; kernel has 3"}},
			"sandbox: landlock ABI 3 (files) + seccomp (64 denied, 2 by argument); mode=auto; network rules need ABI 4; kernel has 3"},
		{"Probe", sandbox.Status{Platform: "linux", Available: true, Mode: sandbox.ModeAuto, LandlockABI: 7, Files: true},
			"sandbox: landlock ABI 7 (files); mode=auto (not applied)"},
		{"Off", sandbox.Status{Platform: "linux", Available: true, Mode: sandbox.ModeOff, LandlockABI: 7},
			"sandbox: disabled; mode=off"},
		{"Unavailable", sandbox.Status{Platform: "darwin", Mode: sandbox.ModeAuto},
			"sandbox: not available on darwin; mode=auto"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.st.String(); got != tc.want {
				t.Fatalf("String()=\n%q, want\n%q", got, tc.want)
			}
		})
	}
}
