//go:build !windows

package main_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The stdio benchmarks compare idmcp, with full protection (host secret,
// scope check, audit row committed before the answer, sandbox on), against
// a bare mcp-go v1.2.1 stdio server with the same echo tool and nothing else
// (cmd/idmcp/testdata/baremcp). scripts/bench-stdio runs them and prints the
// ratios. With IDMCP_BENCH_SERVER_CPU=N the server runs pinned to CPU N
// (taskset), so that the driver and the server do not share a core.

// bareBinary is the baseline server.
var bareBinary = sync.OnceValues(func() (string, error) {
	out := filepath.Join(filepath.Dir(binPath), "baremcp")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/baremcp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build baremcp: %w\n%s", err, b)
	}
	return out, nil
})

// benchTarget is one server under test.
type benchTarget struct {
	name string
	bin  func() (string, error)
	// idmcp: serve with a host profile and these flags.
	idmcp bool
	args  []string
}

var benchTargets = []benchTarget{
	{name: "bare-mcp-go", bin: bareBinary},
	{name: "idmcp-normal", bin: testToolsBinary, idmcp: true, args: []string{"--audit-sync", "normal"}},
	{name: "idmcp-full", bin: testToolsBinary, idmcp: true, args: []string{"--audit-sync", "full"}},
}

// benchCmds returns a maker of the target's command line, pinned when
// asked; for idmcp, a fresh data dir holds a host profile whose token is
// passed as IDMCP_TOKEN.
func benchCmds(b *testing.B, tg benchTarget) func() *exec.Cmd {
	b.Helper()
	bin, err := tg.bin()
	if err != nil {
		b.Fatal(err)
	}
	argv := []string{bin}
	var env []string
	if tg.idmcp {
		dataDir := b.TempDir()
		tok := tokenFromHostAdd(b, mustIdmcp(b, nil, "host", "add", "bench", "--no-keyring", "--data-dir", dataDir))
		argv = append(argv, append([]string{"serve", "--profile", "bench", "--data-dir", dataDir}, tg.args...)...)
		env = []string{"IDMCP_SHARED_SECRET=" + tok, "IDMCP_TOKEN=" + tok}
	}
	if cpu := os.Getenv("IDMCP_BENCH_SERVER_CPU"); cpu != "" {
		argv = append([]string{"taskset", "-c", cpu}, argv...)
	}
	return func() *exec.Cmd {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = cleanEnv(env...)
		return cmd
	}
}

// benchConn is a started server and its pipes.
type benchConn struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startBenchConn(b *testing.B, cmd *exec.Cmd) *benchConn {
	b.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return &benchConn{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 64<<10)}
}

// roundTrip writes one line and reads the answer (servers here answer in
// order: one request is outstanding at a time).
func (c *benchConn) roundTrip(b *testing.B, line []byte) []byte {
	if _, err := c.in.Write(line); err != nil {
		b.Fatal(err)
	}
	resp, err := c.out.ReadBytes('\n')
	if err != nil {
		b.Fatal(err)
	}
	return resp
}

func (c *benchConn) close() {
	_ = c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

const benchInit = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}` + "\n"

// rssMiB is a process's resident set (current, peak) in MiB from
// /proc/PID/status; zero where there is no /proc.
func rssMiB(pid int) (float64, float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	var rss, hwm float64
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			kb, _ := strconv.ParseFloat(f[1], 64)
			if f[0] == "VmRSS:" {
				rss = kb / 1024
			} else {
				hwm = kb / 1024
			}
		}
	}
	return rss, hwm
}

// BenchmarkStdioRoundTrip: sequential tools/call echo round trips over the
// pipes of one long-running server (a desktop host's pattern). Reports
// round trips per second, p50/p99 latency and the server's RSS.
func BenchmarkStdioRoundTrip(b *testing.B) {
	for _, tg := range benchTargets {
		b.Run(tg.name, func(b *testing.B) {
			c := startBenchConn(b, benchCmds(b, tg)())
			defer c.close()
			if resp := c.roundTrip(b, []byte(benchInit)); strings.Contains(string(resp), `"error"`) {
				b.Fatalf("initialize: %s", resp)
			}
			_, _ = c.in.Write([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n"))
			idle, _ := rssMiB(c.cmd.Process.Pid)
			lines := make([][]byte, b.N)
			for i := range lines {
				lines[i] = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}`+"\n", i+1)
			}
			lat := make([]time.Duration, b.N)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				t0 := time.Now()
				resp := c.roundTrip(b, lines[i])
				lat[i] = time.Since(t0)
				if i == 0 && !strings.Contains(string(resp), `"text":"hello"`) {
					b.Fatalf("echo: %s", resp)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rt/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			rss, hwm := rssMiB(c.cmd.Process.Pid)
			b.ReportMetric(idle, "idle-RSS-MiB")
			b.ReportMetric(rss, "RSS-MiB")
			b.ReportMetric(hwm, "peak-RSS-MiB")
		})
	}
}

// BenchmarkStdioColdStart: start the server, initialize, first answer.
// For idmcp that includes opening both databases, the sandbox and the
// server/start row.
func BenchmarkStdioColdStart(b *testing.B) {
	for _, tg := range benchTargets[:2] {
		b.Run(tg.name, func(b *testing.B) {
			mk := benchCmds(b, tg)
			cmds := make([]*exec.Cmd, b.N)
			for i := range cmds {
				cmds[i] = mk()
			}
			b.ResetTimer()
			var total time.Duration
			for i := range b.N {
				t0 := time.Now()
				c := startBenchConn(b, cmds[i])
				if resp := c.roundTrip(b, []byte(benchInit)); strings.Contains(string(resp), `"error"`) {
					b.Fatalf("initialize: %s", resp)
				}
				total += time.Since(t0)
				b.StopTimer()
				c.close()
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/start")
		})
	}
}
