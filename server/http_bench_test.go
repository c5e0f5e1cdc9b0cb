package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

// benchVerifier accepts every token as one principal. It stands in for the
// JWT verifier (measured on its own by auth/jwt's BenchmarkVerify and end to
// end by scripts/bench) so that this benchmark measures the transport, the
// decision and the audit hand-off.
type benchVerifier struct{ p *auth.Principal }

func (v benchVerifier) Verify(context.Context, string) (*auth.Principal, error) {
	q := *v.p
	return &q, nil
}
func (benchVerifier) Ready() bool { return true }

// BenchmarkHTTP_ToolsCall measures one tools/call of an echo tool through
// the HTTP handler (gate, transport, mcp-go, audit row committed with
// synchronous=NORMAL on a real SQLite file), in process, with 1 and 64
// concurrent callers. Compare runs with benchstat.
func BenchmarkHTTP_ToolsCall(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			h := mustBenchHTTP(b)
			body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}`)
			call := func() {
				req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:1/mcp", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
				req.Header.Set("Authorization", "Bearer t")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"hello"`)) {
					b.Fatalf("HTTP %d %s", w.Code, w.Body)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			if clients == 1 {
				for i := 0; i < b.N; i++ {
					call()
				}
			} else {
				b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						call()
					}
				})
			}
			// CPU per call, whatever else the machine runs: the figure to
			// compare (ns/op is wall time, and includes waiting for the commit).
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

func mustBenchHTTP(b *testing.B) http.Handler {
	b.Helper()
	ctx := context.Background()
	alog, err := audit.Open(ctx, audit.Config{Path: filepath.Join(b.TempDir(), store.AuditDBName), Sync: store.SyncNormal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = alog.Close(context.Background()) })
	specs := []tools.Spec{{
		Name: "echo", Description: "Returns its message.", Scopes: []string{"bench:echo"}, ReadOnly: true, Idempotent: true,
		InputSchema: json.RawMessage(`{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]}`),
		Handler: func(_ context.Context, _ *auth.Principal, args json.RawMessage) (*tools.Result, error) {
			var in struct {
				Message string `json:"message"`
			}
			if err := tools.Decode(args, &in); err != nil {
				return nil, err
			}
			return &tools.Result{Text: in.Message}, nil
		},
	}}
	authz, err := tools.NewAuthorizer(specs)
	if err != nil {
		b.Fatal(err)
	}
	p := &auth.Principal{Subject: "bench", ClientID: "loadgen", Scopes: []string{"bench:echo"}, Method: auth.MethodJWT, Transport: "http", Issuer: "https://issuer.test"}
	h, err := server.NewHTTP(server.HTTPConfig{
		Config:               server.Config{Version: "bench", Tools: specs, Authorizer: authz, Audit: alog},
		Verifier:             benchVerifier{p},
		Resource:             "http://127.0.0.1:1/mcp",
		AuthorizationServers: []string{"https://issuer.test"},
		// The per-subject limit would refuse all but the first 40 calls.
		RateLimit: server.RateLimit{PerSubject: 1e9, SubjectBurst: 1e9},
	})
	if err != nil {
		b.Fatal(err)
	}
	return h.Handler()
}
