package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

// FuzzStdio_Listen feeds arbitrary bytes to the stdio transport as a host's
// stdin (authenticated by the environment's credential, so requests reach
// mcp-go and the tools): Listen must return after EOF, and everything it
// writes must be one JSON-RPC 2.0 message per line.
func FuzzStdio_Listen(f *testing.F) {
	f.Add([]byte(legacyInitLine("1", authCaps) + "\n" + `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}` + "\n"))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}` + "\n"))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":{"a":[1]}}}` + "\n{\"id\":[],\"result\":1}\n[1,2]\n\x00\xff\n"))
	ctx := context.Background()
	alog, err := audit.Open(ctx, audit.Config{Path: filepath.Join(f.TempDir(), store.AuditDBName), Sync: store.SyncNormal})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = alog.Close(ctx) })
	specs := []tools.Spec{tools.Whoami(func() tools.ServerInfo { return tools.ServerInfo{Name: "idmcp"} })}
	authz, _ := tools.NewAuthorizer(specs)
	host, _ := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{ProfileName: "laptop", Profile: &auth.HostProfile{Name: "laptop"}, Secret: []byte(hostSecret), Human: "tester"})
	f.Fuzz(func(t *testing.T, in []byte) {
		srv, err := server.NewStdio(server.StdioConfig{Config: server.Config{Tools: specs, Authorizer: authz, Audit: alog}, Host: host,
			EnvToken: hostSecret, MaxLineBytes: 64 << 10, ShutdownTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		done := make(chan error, 1)
		go func() { done <- srv.Listen(ctx, bytes.NewReader(in), &out) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Listen did not return after EOF")
		}
		for _, line := range bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n")) {
			if len(line) == 0 && out.Len() == 0 {
				continue
			}
			var m struct {
				JSONRPC string `json:"jsonrpc"`
			}
			if err := json.Unmarshal(line, &m); err != nil || m.JSONRPC != "2.0" {
				t.Fatalf("output line %q is no JSON-RPC 2.0 message (%v)", line, err)
			}
		}
	})
}
