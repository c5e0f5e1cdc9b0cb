package server

import (
	"encoding/json"
	"errors"
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

func TestParseFrame_Kind(t *testing.T) {
	tests := []struct {
		name, raw string
		kind      FrameKind
		id        string
		err       error
	}{
		{"Request", `{"jsonrpc":"2.0","id":"x","method":"ping"}`, KindRequest, `"x"`, nil},
		{"Notification", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, KindNotification, "", nil},
		{"NullID", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, KindNotification, "", nil},
		{"Result", `{"jsonrpc":"2.0","id":7,"result":{}}`, KindResponse, "7", nil},
		{"Error", `{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"no"}}`, KindResponse, "7", nil},
		// A method makes it a request whatever else it carries.
		{"MethodAndResult", `{"jsonrpc":"2.0","id":8,"method":"ping","result":{}}`, KindRequest, "8", nil},
		// Wrong member types leave fields empty; the request is still gated.
		{"ParamsNotObject", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":"x"}`, KindRequest, "9", nil},
		{"Array", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, KindNotification, "", nil},
		{"NotJSON", `{"id":`, 0, "", ErrNotJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFrame([]byte(tc.raw))
			if !errors.Is(err, tc.err) || f.Kind != tc.kind || string(f.ID) != tc.id || string(f.Raw) != tc.raw {
				t.Fatalf("ParseFrame = %+v, %v; want kind %d id %q err %v", f, err, tc.kind, tc.id, tc.err)
			}
		})
	}
}

func FuzzParseFrame_Kind(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":7,"result":{}}`))
	f.Add([]byte(`{"id":1,"method":"tools/call","params":{"name":"a","arguments":{}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fr, err := ParseFrame(raw)
		if err != nil {
			return
		}
		switch fr.Kind {
		case KindRequest, KindResponse:
			if len(fr.ID) == 0 || !json.Valid(fr.ID) {
				t.Fatalf("kind %d with id %q", fr.Kind, fr.ID)
			}
		case KindNotification:
			if fr.ID != nil {
				t.Fatalf("notification with id %q", fr.ID)
			}
		default:
			t.Fatalf("no kind for %q", raw)
		}
	})
}
