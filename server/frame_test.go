package server

import (
	"encoding/json"
	"testing"
)

func TestParseFrame(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want frame
	}{
		{"LegacyInitialize", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"experimental":{"io.idmcp/auth":{"token":"T"}}},"clientInfo":{"name":"Claude","version":"1.2"}}}`,
			frame{Method: "initialize", Token: "T", Client: clientInfo("Claude", "1.2")}},
		{"ModernCall", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{"a":1},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"experimental":{"io.idmcp/auth":{"token":"M"}}},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"2"}}}}`,
			frame{Method: "tools/call", Tool: "whoami", Arguments: json.RawMessage(`{"a":1}`), Modern: true, Token: "M", Client: clientInfo("c", "2")}},
		// A legacy request's _meta capabilities are not where legacy clients
		// put credentials; only the era's own place counts.
		{"LegacyIgnoresMetaCaps", `{"id":3,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{"experimental":{"io.idmcp/auth":{"token":"X"}}}}}}`,
			frame{Method: "tools/list"}},
		{"ModernIgnoresInitCaps", `{"id":4,"method":"tools/list","params":{"capabilities":{"experimental":{"io.idmcp/auth":{"token":"X"}}},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
			frame{Method: "tools/list", Modern: true}},
		{"TokenNotAString", `{"id":5,"method":"initialize","params":{"capabilities":{"experimental":{"io.idmcp/auth":{"token":42}}}}}`,
			frame{Method: "initialize"}},
		{"Garbage", `{"id":`, frame{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseFrame([]byte(tc.raw))
			if got.Method != tc.want.Method || got.Tool != tc.want.Tool || string(got.Arguments) != string(tc.want.Arguments) ||
				got.Modern != tc.want.Modern || got.Token != tc.want.Token || got.Client != tc.want.Client {
				t.Fatalf("parseFrame = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{"experimental":{"io.idmcp/auth":{"token":"T"}}}}}`))
	f.Add([]byte(`{"id":2,"method":"tools/call","params":{"name":"x","arguments":null,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, raw []byte) {
		f := parseFrame(raw)
		if f.Method != "tools/call" && (f.Tool != "" || f.Arguments != nil) {
			t.Fatalf("tool set for method %q", f.Method)
		}
	})
}
