//go:build linux && (amd64 || arm64)

package sandbox

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData is struct seccomp_data for x/net/bpf's VM, which loads
// words big-endian: each 32-bit word is stored that way so the VM reads
// the value the kernel reads natively. Only the low halves of the
// arguments are set; the filter never reads the high halves.
func seccompData(arch, nr uint32, args ...uint32) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[offNR:], nr)
	binary.BigEndian.PutUint32(b[offArch:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], a)
	}
	return b
}

// TestSocketFilter runs the socket filter in a BPF interpreter over every
// case it must decide, with and without UDP: the kernel tests (probes in
// sandbox_linux_test.go) cover a few of them for real.
func TestSocketFilter(t *testing.T) {
	const (
		allow = unix.SECCOMP_RET_ALLOW
		deny  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		flags = unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	)
	cases := []struct {
		name               string
		arch, nr           uint32
		domain, typ, proto uint32
		noUDP, withUDP     uint32
	}{
		{"TCP4", nativeAuditArch, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, 0, allow, allow},
		{"TCP6Flags", nativeAuditArch, unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_STREAM | flags, unix.IPPROTO_TCP, allow, allow},
		{"MPTCP", nativeAuditArch, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM | flags, unix.IPPROTO_MPTCP, deny, deny},
		{"SCTPStream", nativeAuditArch, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP, deny, deny},
		{"UDP4", nativeAuditArch, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM | flags, 0, deny, allow},
		{"UDP6", nativeAuditArch, unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_DGRAM, unix.IPPROTO_UDP, deny, allow},
		{"Ping", nativeAuditArch, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP, deny, deny},
		{"UDPLite", nativeAuditArch, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_UDPLITE, deny, deny},
		{"Raw", nativeAuditArch, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP, deny, deny},
		{"RawFlags", nativeAuditArch, unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_RAW | flags, 0, deny, deny},
		{"SeqPacket", nativeAuditArch, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_SEQPACKET, 0, deny, deny},
		{"Unix", nativeAuditArch, unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM, 0, deny, deny},
		{"UnixDgram", nativeAuditArch, unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_DGRAM | flags, 0, deny, deny},
		{"Packet", nativeAuditArch, unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_RAW, 0x300, deny, deny},
		{"Netlink", nativeAuditArch, unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE, deny, deny},
		{"Vsock", nativeAuditArch, unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM, 0, deny, deny},
		{"OtherSyscall", nativeAuditArch, unix.SYS_GETPID, unix.AF_UNIX, 0, 0, allow, allow},
		// A foreign architecture's call is the arch guard's to kill.
		{"ForeignArch", unix.AUDIT_ARCH_I386, unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM, 0, allow, allow},
	}
	for _, udp := range []bool{false, true} {
		vm, err := bpf.NewVM(socketFilter(udp))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/udp=%v", tc.name, udp), func(t *testing.T) {
				got, err := vm.Run(seccompData(tc.arch, tc.nr, tc.domain, tc.typ, tc.proto))
				if err != nil {
					t.Fatal(err)
				}
				want := tc.noUDP
				if udp {
					want = tc.withUDP
				}
				if uint32(got) != want {
					t.Fatalf("filter returned %#x, want %#x", uint32(got), want)
				}
			})
		}
	}
}
