package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

// BenchmarkStdio_RoundTrip is the stdio hot path in process: one
// tools/call echo at a time through the transport, the gate, the
// authorizer, mcp-go and a committed audit row (synchronous=NORMAL), over
// in-memory pipes. Profile it with -cpuprofile.
func BenchmarkStdio_RoundTrip(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	alog, err := audit.Open(ctx, audit.Config{Path: filepath.Join(b.TempDir(), store.AuditDBName), Sync: store.SyncNormal})
	if err != nil {
		b.Fatal(err)
	}
	defer alog.Close(context.Background())
	echo := tools.Spec{Name: "echo", Description: "echo", InputSchema: json.RawMessage(`{"type":"object"}`),
		Handler: func(_ context.Context, _ *auth.Principal, raw json.RawMessage) (*tools.Result, error) {
			var a struct{ Message string }
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, err
			}
			return &tools.Result{Text: a.Message}, nil
		}}
	specs := []tools.Spec{echo}
	authz, _ := tools.NewAuthorizer(specs)
	host, _ := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{ProfileName: "laptop", Profile: &auth.HostProfile{Name: "laptop"}, Secret: []byte(hostSecret), Human: "tester"})
	srv, err := server.NewStdio(server.StdioConfig{Config: server.Config{Tools: specs, Authorizer: authz, Audit: alog}, Host: host, EnvToken: hostSecret})
	if err != nil {
		b.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- srv.Listen(ctx, inR, outW); _ = outW.Close() }()
	br := bufio.NewReader(outR)
	rt := func(line []byte) {
		if _, err := inW.Write(line); err != nil {
			b.Fatal(err)
		}
		if _, err := br.ReadBytes('\n'); err != nil {
			b.Fatal(err)
		}
	}
	rt([]byte(legacyInitLine("0", `{}`) + "\n"))
	lines := make([][]byte, b.N)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}`+"\n", i+1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		rt(lines[i])
	}
	b.StopTimer()
	_ = inW.Close()
	<-done
}
