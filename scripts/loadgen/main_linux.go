// Command loadgen measures idmcp against a bare mcp-go server serving the
// same echo tool, in one run, for scripts/bench (issue 14): Streamable HTTP
// at N concurrent clients (each its own keep-alive connection) with RS256
// and ES256 bearer tokens from a JWKS it serves on loopback, stdio
// sequential round trips, cold start, RSS, and the fsync floor of the disk.
// It prints one markdown table of ratios against the baseline.
//
// It is a benchmark driver, not part of idmcp: the server under test and the
// load generator run on different CPUs when there are two (taskset for the
// server, sched_setaffinity for this process). All traffic stays on
// 127.0.0.1.
//
// Usage:
//
//	loadgen suite -idmcp BIN [-d 3s] [-n 1,8,64] [-r ROUNDS] [-only REGEXP] [-ts-stdio SCRIPT]   everything, one table
//	loadgen baseline -http ADDR | -stdio           the bare mcp-go echo server (started by suite)
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen suite -idmcp BIN | loadgen baseline (-http ADDR | -stdio)")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "baseline":
		err = cmdBaseline(os.Args[2:])
	case "suite":
		err = cmdSuite(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// echoServer is the baseline: mcp-go with the echo tool and nothing else.
func echoServer() *mcpserver.MCPServer {
	s := mcpserver.NewMCPServer("bare-echo", "1.0.0", mcpserver.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Returns its message."), mcp.WithString("message", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(req.GetString("message", "")), nil
		})
	return s
}

func cmdBaseline(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	addr := fs.String("http", "", "serve Streamable HTTP (stateless) on ADDR")
	stdio := fs.Bool("stdio", false, "serve on stdin/stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := echoServer()
	if *stdio {
		return mcpserver.ServeStdio(s)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	h := mcpserver.NewStreamableHTTPServer(s, mcpserver.WithStateLess(true))
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	return http.Serve(ln, mux)
}

// ---- the issuer: a JWKS and metadata on loopback, tokens minted here ----

type issuer struct {
	url string
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newIssuer() (*issuer, error) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	is := &issuer{url: "http://" + ln.Addr().String(), rsa: rk, ec: ek}
	pad := func(b *big.Int) string { return b64(b.FillBytes(make([]byte, 32))) }
	jwks := map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "rs", "alg": "RS256", "use": "sig", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": "es", "alg": "ES256", "use": "sig", "crv": "P-256", "x": pad(ek.X), "y": pad(ek.Y)},
	}}
	meta := map[string]any{"issuer": is.url, "jwks_uri": is.url + "/jwks", "token_endpoint": is.url + "/token",
		"response_types_supported": []string{"code"}, "grant_types_supported": []string{"client_credentials"}}
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, jwks) })
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, meta) })
	}
	go func() { _ = http.Serve(ln, mux) }()
	return is, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// token mints an RFC 9068 access token for aud with scope.
func (is *issuer) token(alg, aud, scope string) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{"iss": is.url, "sub": "bench", "aud": aud, "scope": scope, "client_id": "loadgen",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": strconv.FormatInt(now.UnixNano(), 36)}
	var (
		m   jwt.SigningMethod
		key crypto.Signer
		kid string
	)
	switch alg {
	case "RS256":
		m, key, kid = jwt.SigningMethodRS256, is.rsa, "rs"
	case "ES256":
		m, key, kid = jwt.SigningMethodES256, is.ec, "es"
	default:
		return "", fmt.Errorf("alg %s", alg)
	}
	t := jwt.NewWithClaims(m, claims)
	t.Header["kid"], t.Header["typ"] = kid, "at+jwt"
	return t.SignedString(key)
}

// ---- processes under test ----

type proc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
}

// start runs argv pinned to cpu (when there are two or more) with env.
func start(cpu int, env []string, argv ...string) (*proc, error) {
	if runtime.NumCPU() >= 2 {
		if tp, err := exec.LookPath("taskset"); err == nil {
			argv = append([]string{tp, "-c", strconv.Itoa(cpu)}, argv...)
		}
	}
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = &p.stderr
	return p, nil
}

func (p *proc) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	}
}

// cpuTime is the process's user+system time so far.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// rssMiB reads VmRSS (or VmHWM, the peak) of pid.
func rssMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func waitReady(base string, p *proc) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if p.cmd.ProcessState != nil {
			return fmt.Errorf("exited: %s", p.stderr.String())
		}
		res, err := http.Get(base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready in 20s: %s", p.stderr.String())
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ---- HTTP load ----

type result struct {
	rps, p50, p99 float64 // req/s, µs
	cpuPerReq     float64 // server CPU µs per request
	rss           float64 // MiB after the run
	errs          int
}

const echoBody = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}`

// load runs n closed-loop clients against url for d (after a warm-up) and
// reports throughput, latency and the server's CPU per request.
func load(url, token string, n int, d time.Duration, pid int) (result, error) {
	type worker struct {
		lat  []time.Duration
		errs int
		last string
	}
	ws := make([]*worker, n)
	var stop sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var phase sync.Mutex
	recording := false
	stop.Add(n)
	for i := range n {
		w := &worker{}
		ws[i] = w
		tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}
		cl := &http.Client{Transport: tr}
		go func() {
			defer stop.Done()
			defer tr.CloseIdleConnections()
			body := []byte(echoBody)
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				t0 := time.Now()
				res, err := cl.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						w.errs++
						w.last = err.Error()
					}
					continue
				}
				b, _ := io.ReadAll(res.Body)
				_ = res.Body.Close()
				el := time.Since(t0)
				ok := res.StatusCode == 200 && bytes.Contains(b, []byte(`"hello"`)) && !bytes.Contains(b, []byte(`"isError":true`))
				phase.Lock()
				rec := recording
				phase.Unlock()
				if !ok {
					w.errs++
					w.last = fmt.Sprintf("HTTP %d %.200s", res.StatusCode, bytes.TrimSpace(b))
					continue
				}
				if rec {
					w.lat = append(w.lat, el)
				}
			}
		}()
	}
	time.Sleep(time.Second) // warm-up: connections, JWKS, caches
	phase.Lock()
	recording = true
	for _, w := range ws {
		w.lat = w.lat[:0]
		w.errs = 0
	}
	phase.Unlock()
	c0, t0 := cpuTime(pid), time.Now()
	time.Sleep(d)
	phase.Lock()
	recording = false
	phase.Unlock()
	c1, el := cpuTime(pid), time.Since(t0)
	rss := rssMiB(pid, "VmRSS")
	cancel()
	stop.Wait()
	var all []time.Duration
	r := result{rss: rss}
	var last string
	for _, w := range ws {
		all = append(all, w.lat...)
		r.errs += w.errs
		if w.last != "" {
			last = w.last
		}
	}
	if len(all) == 0 {
		return r, fmt.Errorf("no successful request (%d errors; last: %s)", r.errs, last)
	}
	if r.errs > 0 {
		return r, fmt.Errorf("%d failed requests; last: %s", r.errs, last)
	}
	slices.Sort(all)
	r.rps = float64(len(all)) / el.Seconds()
	r.p50 = float64(all[len(all)/2].Microseconds())
	r.p99 = float64(all[len(all)*99/100].Microseconds())
	r.cpuPerReq = float64((c1 - c0).Microseconds()) / float64(len(all))
	return r, nil
}

// ---- stdio: sequential round trips and cold start ----

type stdioPeer struct {
	p   *proc
	in  io.WriteCloser
	out *bufio.Reader
	id  int
}

func startStdio(env []string, argv ...string) (*stdioPeer, error) {
	p, err := start(0, env, argv...)
	if err != nil {
		return nil, err
	}
	in, err := p.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	return &stdioPeer{p: p, in: in, out: bufio.NewReaderSize(out, 1<<16)}, nil
}

func (s *stdioPeer) roundTrip(method, params string) ([]byte, error) {
	s.id++
	line := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`+"\n", s.id, method, params)
	if _, err := io.WriteString(s.in, line); err != nil {
		return nil, fmt.Errorf("write: %w (stderr: %s)", err, s.p.stderr.String())
	}
	for {
		b, err := s.out.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("read: %w (stderr: %s)", err, s.p.stderr.String())
		}
		if bytes.Contains(b, []byte(`"id":`+strconv.Itoa(s.id)+`,`)) || bytes.Contains(b, []byte(`"id":`+strconv.Itoa(s.id)+`}`)) {
			if bytes.Contains(b, []byte(`"error"`)) || bytes.Contains(b, []byte(`"isError":true`)) {
				return b, fmt.Errorf("%s: %.300s", method, b)
			}
			return b, nil
		}
	}
}

func (s *stdioPeer) close() {
	_ = s.in.Close()
	s.p.stop()
}

const initParams = `{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"loadgen","version":"1"}}`
const echoParams = `{"name":"echo","arguments":{"message":"hello"}}`

// stdioRate measures sequential echo round trips per second for d.
func stdioRate(env []string, d time.Duration, argv ...string) (result, error) {
	s, err := startStdio(env, argv...)
	if err != nil {
		return result{}, err
	}
	defer s.close()
	if _, err := s.roundTrip("initialize", initParams); err != nil {
		return result{}, err
	}
	_, _ = io.WriteString(s.in, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
	for range 200 { // warm-up
		if _, err := s.roundTrip("tools/call", echoParams); err != nil {
			return result{}, err
		}
	}
	var lat []time.Duration
	t0 := time.Now()
	c0 := cpuTime(s.p.cmd.Process.Pid)
	for time.Since(t0) < d {
		t := time.Now()
		if _, err := s.roundTrip("tools/call", echoParams); err != nil {
			return result{}, err
		}
		lat = append(lat, time.Since(t))
	}
	el := time.Since(t0)
	r := result{rps: float64(len(lat)) / el.Seconds(), rss: rssMiB(s.p.cmd.Process.Pid, "VmRSS")}
	r.cpuPerReq = float64((cpuTime(s.p.cmd.Process.Pid) - c0).Microseconds()) / float64(len(lat))
	slices.Sort(lat)
	r.p50, r.p99 = float64(lat[len(lat)/2].Microseconds()), float64(lat[len(lat)*99/100].Microseconds())
	return r, nil
}

// coldStart is the median time from exec to the answer of initialize, and
// the RSS then (idle), over runs.
func coldStart(env []string, runs int, argv ...string) (ms, rss float64, err error) {
	var ts []float64
	var rs []float64
	for range runs {
		t0 := time.Now()
		s, err := startStdio(env, argv...)
		if err != nil {
			return 0, 0, err
		}
		_, err = s.roundTrip("initialize", initParams)
		el := time.Since(t0)
		if err == nil {
			time.Sleep(50 * time.Millisecond)
			rs = append(rs, rssMiB(s.p.cmd.Process.Pid, "VmRSS"))
		}
		s.close()
		if err != nil {
			return 0, 0, err
		}
		ts = append(ts, float64(el.Microseconds())/1000)
	}
	slices.Sort(ts)
	slices.Sort(rs)
	return ts[len(ts)/2], rs[len(rs)/2], nil
}

// fsyncFloor is the p50 of a 16 KiB write + fsync in dir, in µs: the floor
// of one durable commit on this disk.
func fsyncFloor(dir string) (float64, error) {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 16<<10)
	var lat []float64
	for i := range 300 {
		t := time.Now()
		if _, err := f.WriteAt(buf, int64(i%64)*int64(len(buf))); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		lat = append(lat, float64(time.Since(t).Microseconds()))
	}
	slices.Sort(lat)
	return lat[len(lat)/2], nil
}

// ---- the suite ----

// median is the median of each figure of rs, taken separately.
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return result{
		rps:       pick(func(r result) float64 { return r.rps }),
		p50:       pick(func(r result) float64 { return r.p50 }),
		p99:       pick(func(r result) float64 { return r.p99 }),
		cpuPerReq: pick(func(r result) float64 { return r.cpuPerReq }),
		rss:       pick(func(r result) float64 { return r.rss }),
	}
}

// errSkipped marks a case left out by -only.
var errSkipped = errors.New("skipped")

func cmdSuite(args []string) error {
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	bin := fs.String("idmcp", "", "idmcp binary built with -tags benchecho")
	d := fs.Duration("d", 3*time.Second, "measured time per case (after a 1 s warm-up)")
	ns := fs.String("n", "1,8,64", "concurrent clients")
	tsServer := fs.String("ts-stdio", "", "a TypeScript SDK stdio echo server (node script), optional")
	rounds := fs.Int("r", 1, "rounds of the HTTP cases; each figure is the median of its rounds")
	only := fs.String("only", "", "run only the cases whose name matches this `REGEXP` (the baseline too, if it matches)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return errors.New("-idmcp BIN is required")
	}
	match, err := regexp.Compile(*only)
	if err != nil {
		return fmt.Errorf("-only: %w", err)
	}
	var conc []int
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-n: %q", s)
		}
		conc = append(conc, n)
	}
	if runtime.NumCPU() >= 2 {
		// This process on CPU 1, the servers (taskset) on CPU 0.
		var set unix.CPUSet
		set.Set(1)
		_ = unix.SchedSetaffinity(0, &set)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	is, err := newIssuer()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "idmcp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	type row struct {
		name string
		res  map[int]result
		err  error
	}
	var rows []row
	// Every server is started first and the cases then interleave (for each
	// round, each N, each server), so that the machine's load, which drifts
	// on a shared machine, weighs on all of them alike; each cell is the
	// median of its rounds.
	type server struct {
		row
		p    *proc
		url  string
		tok  string
		runs map[int][]result
	}
	var servers []*server
	startHTTP := func(name string, argv []string, env []string, alg string) {
		sv := &server{row: row{name: name, res: map[int]result{}}, runs: map[int][]result{}}
		servers = append(servers, sv)
		if !match.MatchString(name) {
			sv.err = errSkipped
			return
		}
		addr, err := freeAddr()
		if err != nil {
			sv.err = err
			return
		}
		base := "http://" + addr
		for i, a := range argv {
			argv[i] = strings.ReplaceAll(a, "ADDR", addr)
		}
		p, _ := start(0, env, argv...)
		if err := p.cmd.Start(); err != nil {
			sv.err = err
			return
		}
		sv.p, sv.url = p, base+"/mcp"
		if err := waitReady(base, p); err != nil {
			sv.err = err
			return
		}
		if alg != "" {
			if sv.tok, err = is.token(alg, base+"/mcp", "bench:echo"); err != nil {
				sv.err = err
			}
		}
	}
	fmt.Fprintf(os.Stderr, "loadgen: %d CPUs; HTTP cases of %s each at N=%v, %d round(s)\n", runtime.NumCPU(), *d, conc, *rounds)
	// The per-subject rate limit (20/s by default) would refuse nearly every
	// request of a load test: switch it off where the binary can.
	var noLimit []string
	if help, _ := exec.Command(*bin, "serve", "--help").CombinedOutput(); bytes.Contains(help, []byte("subject-rate")) {
		noLimit = []string{"--subject-rate", "0"}
	} else {
		fmt.Fprintln(os.Stderr, "loadgen: this idmcp has no --subject-rate flag; its per-subject rate limit will refuse most HTTP requests")
	}
	startHTTP("bare mcp-go, no auth", []string{self, "baseline", "-http", "ADDR"}, nil, "")
	for _, c := range []struct{ sync, alg string }{{"normal", "RS256"}, {"normal", "ES256"}, {"full", "RS256"}, {"full", "ES256"}} {
		dir := filepath.Join(work, "http-"+c.sync+"-"+c.alg)
		startHTTP(fmt.Sprintf("idmcp %s, --audit-sync %s", c.alg, c.sync),
			append([]string{*bin, "serve", "--http", "ADDR", "--issuer", is.url, "--data-dir", dir, "--audit-sync", c.sync, "--log-level", "warn"}, noLimit...), nil, c.alg)
	}
	for range *rounds {
		for _, n := range conc {
			for _, sv := range servers {
				if sv.err != nil {
					continue
				}
				r, err := load(sv.url, sv.tok, n, *d, sv.p.cmd.Process.Pid)
				if err != nil {
					sv.err = fmt.Errorf("N=%d: %w", n, err)
					continue
				}
				sv.runs[n] = append(sv.runs[n], r)
			}
		}
	}
	for _, sv := range servers {
		if sv.p != nil {
			sv.p.stop()
		}
		for n, rs := range sv.runs {
			sv.res[n] = median(rs)
		}
		rows = append(rows, sv.row)
	}

	// Markdown: HTTP.
	base := rows[0]
	fmt.Printf("\n### Streamable HTTP (%d CPUs; server and load generator on separate cores; %s per case; median of %d interleaved round(s))\n\n", runtime.NumCPU(), *d, *rounds)
	fmt.Print("| server |")
	for _, n := range conc {
		fmt.Printf(" N=%d |", n)
	}
	fmt.Printf(" p50 @%d | server CPU µs/req @%d | server CPU µs/req @%d | RSS MiB @%d |\n|---|", conc[0], conc[0], conc[len(conc)-1], conc[len(conc)-1])
	for range conc {
		fmt.Print("---:|")
	}
	fmt.Print("---:|---:|---:|---:|\n")
	for _, r := range rows {
		if r.err == errSkipped {
			continue
		}
		if r.err != nil {
			fmt.Printf("| %s | failed: %v |\n", r.name, r.err)
			continue
		}
		fmt.Printf("| %s |", r.name)
		for _, n := range conc {
			if base.err != nil || base.res[n].rps == 0 {
				fmt.Printf(" %.0f req/s |", r.res[n].rps)
				continue
			}
			fmt.Printf(" %.2f× (%.0f/s) |", r.res[n].rps/base.res[n].rps, r.res[n].rps)
		}
		last := r.res[conc[len(conc)-1]]
		fmt.Printf(" %.0f µs | %.0f | %.0f | %.1f |\n", r.res[conc[0]].p50, r.res[conc[0]].cpuPerReq, last.cpuPerReq, last.rss)
	}

	// stdio.
	fmt.Printf("\n### stdio, sequential round trips (%s each)\n\n| server | round trips/s | ratio | p50 µs | p99 µs | server CPU µs/req |\n|---|---:|---:|---:|---:|---:|\n", *d)
	type srow struct {
		name string
		env  []string
		argv []string
	}
	hostDir := filepath.Join(work, "stdio")
	out, err := exec.Command(*bin, "host", "add", "bench", "--no-keyring", "--data-dir", hostDir, "--scopes", "bench:echo").Output()
	if err != nil {
		return fmt.Errorf("host add: %w", err)
	}
	var secret string
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "idmcp_") && len(f) > 40 {
			secret = f
		}
	}
	idEnv := []string{"IDMCP_SHARED_SECRET=" + secret, "IDMCP_TOKEN=" + secret}
	srows := []srow{{"bare mcp-go", nil, []string{self, "baseline", "-stdio"}}}
	if *tsServer != "" {
		srows = append(srows, srow{"TypeScript SDK", nil, []string{"node", *tsServer}})
	}
	for _, sync := range []string{"normal", "full"} {
		srows = append(srows, srow{"idmcp, --audit-sync " + sync, idEnv, []string{*bin, "serve", "--profile", "bench", "--data-dir", hostDir, "--audit-sync", sync, "--log-level", "warn"}})
	}
	var sbase float64
	for i, s := range srows {
		if !match.MatchString(s.name) {
			continue
		}
		r, err := stdioRate(s.env, *d, s.argv...)
		if err != nil {
			fmt.Printf("| %s | failed: %v |\n", s.name, err)
			continue
		}
		if i == 0 {
			sbase = r.rps
		}
		ratio := "-"
		if sbase > 0 {
			ratio = fmt.Sprintf("%.2f×", r.rps/sbase)
		}
		fmt.Printf("| %s | %.0f | %s | %.0f | %.0f | %.0f |\n", s.name, r.rps, ratio, r.p50, r.p99, r.cpuPerReq)
	}

	// Cold start and idle RSS.
	fmt.Printf("\n### Cold start (exec to the initialize answer, median of 15) and idle RSS\n\n| server | cold start ms | idle RSS MiB |\n|---|---:|---:|\n")
	for _, s := range srows {
		if strings.Contains(s.name, "full") || !match.MatchString(s.name) {
			continue
		}
		ms, rss, err := coldStart(s.env, 15, s.argv...)
		if err != nil {
			fmt.Printf("| %s | failed: %v |\n", s.name, err)
			continue
		}
		fmt.Printf("| %s | %.1f | %.1f |\n", s.name, ms, rss)
	}
	if fl, err := fsyncFloor(work); err == nil {
		fmt.Printf("\nfsync floor (16 KiB write + fsync, p50, same disk, same run): %.0f µs\n", fl)
	}
	fmt.Printf("\ntargets (issue 14): HTTP normal >= 0.8× at N=8 and 64, p50 @1 <= 1.25× bare; full >= 0.8× at N=64; stdio normal >= the TypeScript SDK; cold start < 20 ms; idle RSS < 30 MiB; RSS @64 < 50 MiB\n")
	return nil
}
