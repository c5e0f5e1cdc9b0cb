// Package sandbox confines the idmcp server process after start-up, using the
// kernel's own mechanisms: Landlock for the file system, TCP ports and IPC
// scopes, and seccomp for system calls a server never makes.
//
// It owns the policy model ([Policy], [Mode]), the one irreversible step
// ([Apply]), a side-effect-free report of what this kernel would enforce
// ([Probe]), and [Listen], the only way to open a TCP listener that Landlock
// can see. It does not decide which paths or ports a deployment needs (the
// caller builds the Policy from its configuration), does not open listeners
// or warm caches for the caller, and never relaxes a restriction: once
// [Apply] returns, the process stays confined until it exits.
//
// Call order: open listeners with [Listen], do start-up I/O (keyring read,
// x509.SystemCertPool, opening the SQLite database), then [Apply]. Files and
// sockets opened before Apply keep working; new ones are checked.
//
// SQLite under Landlock: the engine creates temporary files in SQLITE_TMPDIR,
// TMPDIR, /var/tmp, /usr/tmp or /tmp, none of which is granted. Open the
// database with _pragma=temp_store(MEMORY), or set SQLITE_TMPDIR to a
// directory inside [Policy.DataDir] before the first query, or large sorts
// fail with "unable to open database file (14)".
//
// Only Linux enforces anything. On other platforms [Probe] and [Apply] report
// Available=false, [ModeStrict] fails with [ErrUnavailable], and the other
// modes succeed without applying anything.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
)

// ErrUnavailable is wrapped by the errors [Apply] returns in [ModeStrict] when
// the platform or kernel cannot enforce a required part of the sandbox.
var ErrUnavailable = errors.New("sandbox unavailable")

// ErrInvalidPolicy is wrapped by the field-level errors of [Policy.Validate].
var ErrInvalidPolicy = errors.New("invalid sandbox policy")

// Mode selects how hard [Apply] insists on the sandbox.
type Mode string

const (
	// ModeAuto enforces everything the kernel supports and reports the rest
	// in [Status.Notes].
	ModeAuto Mode = "auto"
	// ModeStrict refuses to start, before applying anything, unless file
	// rules, network rules and the seccomp filter can all be enforced.
	ModeStrict Mode = "strict"
	// ModeOff applies nothing.
	ModeOff Mode = "off"
)

// DefaultMode is the mode used when the operator chooses none.
const DefaultMode = ModeAuto

// MinNetworkABI is the first Landlock ABI version that restricts TCP bind and
// connect (https://docs.kernel.org/userspace-api/landlock.html#network-flags);
// [ModeStrict] demands at least this.
const MinNetworkABI = 4

// ParseMode parses "auto", "strict" or "off" (case-insensitive, surrounding
// space ignored).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeAuto, ModeStrict, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("sandbox mode %q: must be one of auto, strict, off: %w", s, ErrInvalidPolicy)
}

// Policy says what the confined process may still do. Everything not granted
// here is denied; paths are granted with everything beneath them.
type Policy struct {
	// Mode is auto, strict or off.
	Mode Mode
	// DataDir is granted read-write as a directory: SQLite creates and
	// removes -wal, -shm and -journal files next to the database and opens
	// the directory itself to fsync it. Required unless Mode is off.
	DataDir string
	// Workspace is the file tools' root; "" means no workspace rule.
	Workspace string
	// WorkspaceWritable grants the workspace read-write (files_write
	// enabled) instead of read-only. Renames and links across directories
	// stay denied either way (Landlock's "refer" right is never granted).
	WorkspaceWritable bool
	// ReadOnlyFiles are extra files granted read-only (read, not execute),
	// skipped when missing (HTTP mode: /etc/resolv.conf, /etc/hosts,
	// /etc/nsswitch.conf, /etc/ssl/certs/ca-certificates.crt). Symlinks are
	// followed: the rule applies to the target.
	ReadOnlyFiles []string
	// ReadOnlyDirs are extra directories granted read-only (read files,
	// list directories), skipped when missing. An entry that is a regular
	// file makes Apply fail; put files in ReadOnlyFiles.
	ReadOnlyDirs []string
	// ConnectTCP lists the TCP ports the process may connect to (the
	// identity provider's); empty means no outbound TCP at all. Binding a
	// TCP port is never allowed: open listeners before Apply.
	ConnectTCP []uint16
	// AllowUDP lets the process create UDP sockets (AF_INET/AF_INET6,
	// SOCK_DGRAM) after Apply, for DNS when the identity provider's host
	// must be resolved. Without it the seccomp filter refuses them; it
	// always refuses unix, packet, netlink and raw sockets. Landlock does
	// not restrict UDP below ABI 10.
	AllowUDP bool
	// RequireABI raises the Landlock ABI version ModeStrict demands; 0 means
	// MinNetworkABI. Values below MinNetworkABI are raised to it, because
	// strict always requires network rules. It is a test seam.
	RequireABI int
}

// Validate reports the first invalid field as an error wrapping
// [ErrInvalidPolicy]. With Mode off only the mode is checked.
func (p Policy) Validate() error {
	switch p.Mode {
	case ModeAuto, ModeStrict, ModeOff:
	default:
		return fieldError("Mode", fmt.Sprintf("must be one of auto, strict, off, got %q", p.Mode))
	}
	if p.Mode == ModeOff {
		return nil
	}
	if p.DataDir == "" {
		return fieldError("DataDir", "required")
	}
	if err := checkPath("DataDir", p.DataDir); err != nil {
		return err
	}
	if p.Workspace != "" {
		if err := checkPath("Workspace", p.Workspace); err != nil {
			return err
		}
	}
	for i, f := range p.ReadOnlyFiles {
		if err := checkPath(fmt.Sprintf("ReadOnlyFiles[%d]", i), f); err != nil {
			return err
		}
	}
	for i, d := range p.ReadOnlyDirs {
		if err := checkPath(fmt.Sprintf("ReadOnlyDirs[%d]", i), d); err != nil {
			return err
		}
	}
	for i, port := range p.ConnectTCP {
		if port == 0 {
			return fieldError(fmt.Sprintf("ConnectTCP[%d]", i), "port 0 is not a destination")
		}
	}
	if p.RequireABI < 0 {
		return fieldError("RequireABI", "must not be negative")
	}
	return nil
}

func checkPath(field, path string) error {
	if !filepath.IsAbs(path) {
		return fieldError(field, fmt.Sprintf("must be an absolute path, got %q", path))
	}
	return nil
}

func fieldError(field, msg string) error {
	return fmt.Errorf("field %q: %s: %w", field, msg, ErrInvalidPolicy)
}

// requiredABI is the Landlock ABI version ModeStrict demands for p.
func (p Policy) requiredABI() int {
	return max(p.RequireABI, MinNetworkABI)
}

// Status is what the sandbox enforces: after [Apply], what was actually
// applied; from [Probe], what Apply in ModeAuto would apply on this kernel.
// It never reports what was merely requested.
type Status struct {
	// Platform is runtime.GOOS.
	Platform string `json:"platform"`
	// Available is true when the platform offers at least one of Landlock
	// and seccomp.
	Available bool `json:"available"`
	// Mode is the mode Apply ran in (ModeAuto for Probe).
	Mode Mode `json:"mode"`
	// LandlockABI is the ABI version the kernel reports; 0 means none.
	LandlockABI int `json:"landlock_abi"`
	// Files is true when Landlock file-system rules are enforced.
	Files bool `json:"files"`
	// Network is true when Landlock TCP bind/connect rules are enforced.
	Network bool `json:"network"`
	// Scoped is true when Landlock scopes abstract unix sockets and signals.
	Scoped bool `json:"scoped"`
	// Seccomp is true when the system-call deny list is loaded.
	Seccomp bool `json:"seccomp"`
	// DeniedSyscalls counts the system calls the seccomp filter always
	// denies (with EPERM).
	DeniedSyscalls int `json:"denied_syscalls"`
	// ArgFiltered counts the system calls denied only for some arguments
	// (clone with namespace flags; socket for anything but the kinds in
	// Sockets).
	ArgFiltered int `json:"arg_filtered"`
	// Sockets are the kinds of socket the seccomp filter still lets the
	// process create: "tcp", and "udp" when Policy.AllowUDP. Every other
	// family and type (unix, packet, netlink, raw, MPTCP) is refused.
	// Probe reports the default, without UDP.
	Sockets []string `json:"sockets,omitempty"`
	// CapsDropped are the capabilities Apply removed from every thread
	// (bounding, ambient, effective, permitted and inheritable sets); from
	// Probe, those it would remove from this process. Empty when the
	// process holds none (an ordinary user).
	CapsDropped []string `json:"caps_dropped,omitempty"`
	// CapsKept are the capabilities kept (effective and permitted); the
	// reason is in Notes.
	CapsKept []string `json:"caps_kept,omitempty"`
	// ArchGuard is true when system calls of a foreign architecture (i386
	// int 0x80 on amd64, AArch32 on arm64) kill the process.
	ArchGuard bool `json:"arch_guard"`
	// Applied is true when anything was enforced.
	Applied bool `json:"applied"`
	// Notes explain every part that is not enforced, and why.
	Notes []string `json:"notes,omitempty"`
}

// String renders s as one line for stderr and the server/start audit row,
// for example "sandbox: landlock ABI 7 (files, tcp, scoping) + seccomp (70
// denied, 2 by argument, arch guard) + caps dropped; mode=auto". It is kept
// short (an audit reason is truncated past 256 bytes); the sockets allowed
// and the capabilities by name are in the JSON form.
func (s Status) String() string {
	var b strings.Builder
	b.WriteString("sandbox: ")
	var parts []string
	if s.Files || s.Network || s.Scoped {
		var ll []string
		if s.Files {
			ll = append(ll, "files")
		}
		if s.Network {
			ll = append(ll, "tcp")
		}
		if s.Scoped {
			ll = append(ll, "scoping")
		}
		parts = append(parts, fmt.Sprintf("landlock ABI %d (%s)", s.LandlockABI, strings.Join(ll, ", ")))
	}
	if s.Seccomp {
		sc := []string{fmt.Sprintf("%d denied", s.DeniedSyscalls)}
		if s.ArgFiltered > 0 {
			sc = append(sc, fmt.Sprintf("%d by argument", s.ArgFiltered))
		}
		if s.ArchGuard {
			sc = append(sc, "arch guard")
		}
		parts = append(parts, "seccomp ("+strings.Join(sc, ", ")+")")
	}
	if len(s.CapsDropped) > 0 {
		c := "caps dropped"
		if len(s.CapsKept) > 0 {
			c += " but " + strings.Join(s.CapsKept, ", ")
		}
		parts = append(parts, c)
	}
	switch {
	case len(parts) > 0:
		b.WriteString(strings.Join(parts, " + "))
	case s.Mode == ModeOff:
		b.WriteString("disabled")
	case !s.Available:
		fmt.Fprintf(&b, "not available on %s", s.Platform)
	default:
		b.WriteString("nothing enforced")
	}
	fmt.Fprintf(&b, "; mode=%s", s.Mode)
	if !s.Applied && len(parts) > 0 {
		b.WriteString(" (not applied)")
	}
	if len(s.Notes) > 0 {
		b.WriteString("; ")
		b.WriteString(strings.Join(s.Notes, "; "))
	}
	return b.String()
}

// Listen is net.Listen with Multipath TCP disabled. Since Go 1.24 net.Listen
// creates MPTCP sockets where the kernel supports them, and Landlock's TCP
// rules do not apply to MPTCP (go-landlock package docs;
// https://docs.kernel.org/userspace-api/landlock.html#network-flags), so
// listeners must come from here. (After Apply the seccomp filter also
// refuses MPTCP sockets, and Go then falls back to plain TCP.) Call it before [Apply]:
// the sandbox grants no TCP bind.
func Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox listen: %w", err)
	}
	return ln, nil
}
