//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// Probe reports what [Apply] in ModeAuto would enforce on this kernel. It
// applies nothing and can be called any number of times.
func Probe() Status {
	k := detect()
	st := k.status(ModeAuto)
	st.Applied = false
	if cs, err := readCaps(); err == nil {
		pl := planCaps(Policy{}, cs)
		st.CapsDropped = capList(pl.drop)
	}
	return st
}

// Apply confines the whole process (every thread, present and future) to p.
// It is irreversible and meant to be called once, after listeners are open
// and start-up I/O is done.
//
// ModeOff applies nothing and returns Applied=false with no error. ModeAuto
// enforces what the kernel supports and explains the rest in Status.Notes.
// ModeStrict first checks that file rules, network rules (Landlock ABI >=
// MinNetworkABI, or p.RequireABI if higher), the seccomp deny list and the
// architecture guard can all be enforced, and otherwise returns an error
// wrapping [ErrUnavailable] that names what is missing, having applied
// nothing.
//
// The returned Status is the truth even when err != nil: if a late step
// fails (which the kernel checks make unlikely), Status shows the parts that
// were already enforced, and the caller should exit.
func Apply(p Policy) (Status, error) {
	k := detect()
	if err := p.Validate(); err != nil {
		st := k.status(p.Mode)
		st.clearEnforced()
		return st, err
	}
	if p.Mode == ModeOff {
		st := k.status(ModeOff)
		st.clearEnforced()
		st.Notes = nil
		return st, nil
	}
	if err := checkDirs(p); err != nil {
		st := k.status(p.Mode)
		st.clearEnforced()
		return st, err
	}
	want := k.status(p.Mode)
	if p.Mode == ModeStrict {
		if missing := k.missingForStrict(p.requiredABI()); len(missing) > 0 {
			st := want
			st.clearEnforced()
			st.Notes = append(st.Notes, missing...)
			return st, fmt.Errorf("strict mode: %s: %w", strings.Join(missing, "; "), ErrUnavailable)
		}
	}

	// Lazily loaded runtime state that would otherwise read a file after the
	// sandbox is up: time.Local reads /etc/localtime (or $TZ) on first use.
	_, _ = time.Now().Zone()

	// Capabilities are planned before anything is applied (the plan
	// looks at who owns the data dir and the workspace) and dropped
	// last.
	cs, err := readCaps()
	if err != nil {
		st := want
		st.clearEnforced()
		return st, fmt.Errorf("capabilities: %w", err)
	}
	plan := planCaps(p, cs)

	got := want
	got.clearEnforced()
	if k.landlockABI() > 0 {
		if err := restrictLandlock(p, k.landlockABI(), p.Mode == ModeAuto); err != nil {
			return got, fmt.Errorf("landlock: %w", err)
		}
		got.Files, got.Network, got.Scoped = want.Files, want.Network, want.Scoped
		got.Applied = true
	}
	if want.Seccomp {
		guarded, err := loadSeccomp(want.ArchGuard, p.AllowUDP)
		if err != nil {
			return got, fmt.Errorf("seccomp: %w", err)
		}
		got.Seccomp, got.DeniedSyscalls, got.ArgFiltered = true, want.DeniedSyscalls, want.ArgFiltered
		got.Sockets = socketKinds(p.AllowUDP)
		got.ArchGuard = guarded
		got.Applied = true
	}
	if plan.drop != 0 {
		if err := dropCaps(plan, cs); err != nil {
			return got, fmt.Errorf("capabilities: %w", err)
		}
		got.CapsDropped = capList(plan.drop)
		got.CapsKept = capList(plan.keep & cs.permitted)
		if plan.why != "" {
			got.Notes = append(got.Notes, "kept cap_dac_override: "+plan.why)
		}
		got.Applied = true
	}
	return got, nil
}

// socketKinds names the sockets the seccomp filter lets the process
// create (Status.Sockets).
func socketKinds(udp bool) []string {
	if udp {
		return []string{"tcp", "udp"}
	}
	return []string{"tcp"}
}

// checkDirs reports a DataDir or Workspace that is not an existing
// directory, before anything is applied (Landlock would refuse it later
// with a less helpful message).
func checkDirs(p Policy) error {
	dirs := [][2]string{{"DataDir", p.DataDir}}
	if p.Workspace != "" {
		dirs = append(dirs, [2]string{"Workspace", p.Workspace})
	}
	for _, d := range dirs {
		fi, err := os.Stat(d[1])
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s: not a directory", d[1])
		}
		if err != nil {
			return fmt.Errorf("field %q: %w: %w", d[0], err, ErrInvalidPolicy)
		}
	}
	return nil
}

// kernel is what this kernel and architecture offer; detect fills it
// without changing anything.
type kernel struct {
	abi          int   // landlock_create_ruleset(LANDLOCK_CREATE_RULESET_VERSION); 0 if none
	abiErr       error // why abi is 0
	scopeErratum bool  // ABI >= 6 but the signal-scoping fix (erratum 2) is missing
	seccompErr   error // nil if the ERRNO action can be loaded
	killErr      error // nil if SECCOMP_RET_KILL_PROCESS is available
	denied       int   // unconditionally denied syscalls in the deny list
	argFiltered  int   // syscalls denied only for some arguments
}

func detect() kernel {
	var k kernel
	k.abi, k.abiErr = landlockABI()
	if k.abi >= 6 {
		errata, err := landlockErrata()
		k.scopeErratum = err != nil || errata&0x2 == 0
	}
	k.denied, k.argFiltered, k.seccompErr = checkDenyList()
	if k.seccompErr == nil {
		k.seccompErr = seccompActionAvail(unix.SECCOMP_RET_ERRNO)
	}
	if k.seccompErr == nil {
		k.killErr = seccompActionAvail(unix.SECCOMP_RET_KILL_PROCESS)
	}
	if nativeAuditArch == 0 {
		k.killErr = fmt.Errorf("no architecture guard for %s", runtime.GOARCH)
	}
	return k
}

// landlockABI is the ABI version Apply enforces: the kernel's, capped at 7,
// and lowered to 5 when the kernel lacks the signal-scoping fix. go-landlock
// makes the same erratum downgrade (landlock/internal/abi.go), so this keeps
// Status honest about scoping.
//
// Why V7 and not the newest preset: V8 restricts nothing more (go-landlock
// uses the kernel's TSYNC flag by itself when the kernel has ABI 8); V9
// would deny connecting to pathname unix sockets such as the D-Bus session
// bus, and V10 would deny UDP (DNS) unless extra rules are granted. Both
// need policy fields this package does not have yet.
func (k kernel) landlockABI() int {
	v := k.abi
	if k.scopeErratum && v >= 6 {
		v = 5
	}
	return min(v, maxABI)
}

// maxABI is the newest Landlock ABI whose preset Apply uses.
const maxABI = 7

// status is what Apply in mode m would enforce.
func (k kernel) status(m Mode) Status {
	st := Status{
		Platform:    runtime.GOOS,
		Available:   k.abi > 0 || k.seccompErr == nil,
		Mode:        m,
		LandlockABI: k.abi,
	}
	v := k.landlockABI()
	st.Files = v >= 1
	st.Network = v >= MinNetworkABI
	st.Scoped = v >= 6
	switch {
	case k.abi == 0:
		st.Notes = append(st.Notes, "landlock unavailable: "+describeABIErr(k.abiErr))
	case v < MinNetworkABI:
		st.Notes = append(st.Notes, fmt.Sprintf("network rules need ABI %d; kernel has %d", MinNetworkABI, k.abi))
	}
	switch {
	case k.abi == 0:
	case k.scopeErratum:
		st.Notes = append(st.Notes, "scoping disabled: kernel lacks the Landlock signal-scoping fix (erratum 2)")
	case v < 6:
		st.Notes = append(st.Notes, fmt.Sprintf("scoping needs ABI 6; kernel has %d", k.abi))
	}
	if k.seccompErr != nil {
		st.Notes = append(st.Notes, fmt.Sprintf("seccomp unavailable: %v", k.seccompErr))
	} else {
		st.Seccomp = true
		st.DeniedSyscalls, st.ArgFiltered = k.denied, k.argFiltered
		st.Sockets = socketKinds(false)
		if k.killErr != nil {
			st.Notes = append(st.Notes, fmt.Sprintf("arch guard unavailable: %v", k.killErr))
		} else {
			st.ArchGuard = true
		}
	}
	st.Applied = st.Files || st.Seccomp
	return st
}

// missingForStrict names each required part this kernel cannot enforce.
func (k kernel) missingForStrict(requiredABI int) []string {
	var missing []string
	switch v := k.landlockABI(); {
	case k.abi == 0:
		missing = append(missing, "landlock file and network rules unavailable: "+describeABIErr(k.abiErr))
	case v >= requiredABI:
	case k.abi >= requiredABI && requiredABI > maxABI:
		missing = append(missing, fmt.Sprintf("landlock ABI %d required; kernel has %d but this build enforces at most %d", requiredABI, k.abi, maxABI))
	case k.abi >= requiredABI: // only the erratum downgrade is short
		missing = append(missing, fmt.Sprintf("landlock ABI %d required; kernel has %d without the signal-scoping fix", requiredABI, k.abi))
	case requiredABI == MinNetworkABI:
		missing = append(missing, fmt.Sprintf("landlock network rules need ABI %d; kernel has %d", MinNetworkABI, k.abi))
	default:
		missing = append(missing, fmt.Sprintf("landlock ABI %d required; kernel has %d", requiredABI, k.abi))
	}
	if k.seccompErr != nil {
		missing = append(missing, fmt.Sprintf("seccomp unavailable: %v", k.seccompErr))
	} else if k.killErr != nil {
		missing = append(missing, fmt.Sprintf("seccomp arch guard unavailable: %v", k.killErr))
	}
	return missing
}

// clearEnforced resets the parts that say something is enforced, keeping
// the kernel facts and notes.
func (s *Status) clearEnforced() {
	s.Files, s.Network, s.Scoped = false, false, false
	s.Seccomp, s.ArchGuard, s.Applied = false, false, false
	s.DeniedSyscalls, s.ArgFiltered = 0, 0
	s.Sockets, s.CapsDropped, s.CapsKept = nil, nil, nil
}

func describeABIErr(err error) string {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return "kernel built without Landlock"
	case errors.Is(err, unix.EOPNOTSUPP):
		return `Landlock disabled at boot (add "landlock" to the lsm= kernel parameter)`
	case err != nil:
		return err.Error()
	}
	return "unknown reason"
}

// Access rights granted by the policy
// (https://docs.kernel.org/userspace-api/landlock.html#filesystem-flags).
// None includes Execute, so Landlock alone already stops running any file;
// none includes Refer, so links and renames across directories fail with
// EXDEV, and none includes the device-node, socket and fifo rights.
const (
	accessRead  landlock.AccessFSSet = ll.AccessFSReadFile | ll.AccessFSReadDir
	accessWrite landlock.AccessFSSet = ll.AccessFSWriteFile | ll.AccessFSTruncate |
		ll.AccessFSMakeReg | ll.AccessFSMakeDir | ll.AccessFSRemoveFile | ll.AccessFSRemoveDir
	accessReadFile landlock.AccessFSSet = ll.AccessFSReadFile
)

// restrictLandlock enforces p's file, network and scope rules at ABI
// version abi (1..maxABI). bestEffort lets go-landlock drop what the kernel
// cannot do instead of failing; Status is computed independently from the
// same ABI, so it matches.
func restrictLandlock(p Policy, abi int, bestEffort bool) error {
	presets := [...]landlock.Config{landlock.V1, landlock.V2, landlock.V3, landlock.V4, landlock.V5, landlock.V6, landlock.V7}
	cfg := presets[abi-1]
	if bestEffort {
		cfg = cfg.BestEffort()
	}
	handled := cfg.HandledAccessFS
	rw := (accessRead | accessWrite) & handled
	ro := accessRead & handled

	rules := []landlock.Rule{landlock.PathAccess(rw, p.DataDir)}
	if p.Workspace != "" {
		if p.WorkspaceWritable {
			rules = append(rules, landlock.PathAccess(rw, p.Workspace))
		} else {
			rules = append(rules, landlock.PathAccess(ro, p.Workspace))
		}
	}
	if len(p.ReadOnlyFiles) > 0 {
		rules = append(rules, landlock.PathAccess(accessReadFile, p.ReadOnlyFiles...).IgnoreIfMissing())
	}
	if len(p.ReadOnlyDirs) > 0 {
		rules = append(rules, landlock.PathAccess(ro, p.ReadOnlyDirs...).IgnoreIfMissing())
	}
	// Network rules exist from ABI 4; an empty list still handles TCP
	// connect and bind, so both are denied outright. BindTCP is never granted.
	if abi >= MinNetworkABI {
		for _, port := range p.ConnectTCP {
			rules = append(rules, landlock.ConnectTCP(port))
		}
	}
	return cfg.Restrict(rules...)
}

// landlockABI asks the kernel for its Landlock ABI version
// (https://docs.kernel.org/userspace-api/landlock.html#backward-and-forward-compatibility).
func landlockABI() (int, error) {
	v, err := ll.LandlockGetABIVersion()
	if err != nil {
		return 0, err
	}
	return v, nil
}

// landlockErrata returns the bit set of Landlock errata fixed in this kernel.
func landlockErrata() (int, error) {
	return ll.LandlockGetErrata()
}
