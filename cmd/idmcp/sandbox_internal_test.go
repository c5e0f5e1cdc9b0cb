package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/idmcp/idmcp/sandbox"
	"github.com/idmcp/idmcp/tools"
)

// TestSandboxPolicy covers the mapping from configuration to policy that the
// binary tests can only partly observe: ports from identity provider URLs
// (defaults, duplicates, proxies), the workspace rule, and the RequireABI
// test seam.
func TestSandboxPolicy(t *testing.T) {
	specs := func(names ...string) []tools.Spec {
		out := make([]tools.Spec, 0, len(names))
		for _, n := range names {
			out = append(out, tools.Spec{Name: n})
		}
		return out
	}
	httpFiles := systemFilesHTTP()
	cases := []struct {
		name    string
		env     map[string]string
		in      sandboxInputs
		want    sandbox.Policy
		wantErr bool
	}{
		{
			name: "StdioNoWorkspace",
			in:   sandboxInputs{Mode: sandbox.ModeAuto, DataDir: "/d", Tools: specs("whoami", "todo_list")},
			want: sandbox.Policy{Mode: sandbox.ModeAuto, DataDir: "/d"},
		},
		{
			name: "WorkspaceWritable",
			in:   sandboxInputs{Mode: sandbox.ModeAuto, DataDir: "/d", Workspace: "/w", Tools: specs("files_read", "files_write")},
			want: sandbox.Policy{Mode: sandbox.ModeAuto, DataDir: "/d", Workspace: "/w", WorkspaceWritable: true},
		},
		{
			name: "WorkspaceReadOnly",
			in:   sandboxInputs{Mode: sandbox.ModeAuto, DataDir: "/d", Workspace: "/w", Tools: specs("whoami", "files_search")},
			want: sandbox.Policy{Mode: sandbox.ModeAuto, DataDir: "/d", Workspace: "/w"},
		},
		{
			name: "WorkspaceWithoutFilesTools",
			in:   sandboxInputs{Mode: sandbox.ModeAuto, DataDir: "/d", Workspace: "/w", Tools: specs("whoami")},
			want: sandbox.Policy{Mode: sandbox.ModeAuto, DataDir: "/d"},
		},
		{
			name: "HTTPDefaultAndExplicitPorts",
			in: sandboxInputs{Mode: sandbox.ModeStrict, DataDir: "/d",
				IdentityProvider: []string{"https://idp.example.com/realms/x", "https://keys.example.com:8443/jwks", "https://idp.example.com/other"}},
			// Names are resolved: DNS over UDP, and TCP (53) for answers too large for UDP.
			want: sandbox.Policy{Mode: sandbox.ModeStrict, DataDir: "/d", ConnectTCP: []uint16{443, 53, 8443}, ReadOnlyFiles: httpFiles, AllowUDP: true},
		},
		{
			name: "HTTPPlainDefaultPort",
			in:   sandboxInputs{Mode: sandbox.ModeAuto, DataDir: "/d", IdentityProvider: []string{"http://idp.internal/"}},
			want: sandbox.Policy{Mode: sandbox.ModeAuto, DataDir: "/d", ConnectTCP: []uint16{80, 53}, ReadOnlyFiles: httpFiles, AllowUDP: true},
		},
		{
			name: "HTTPThroughProxy",
			env:  map[string]string{"HTTPS_PROXY": "http://proxy.internal:3128"},
			in:   sandboxInputs{Mode: sandbox.ModeAuto, DataDir: "/d", IdentityProvider: []string{"https://idp.example.com", "http://127.0.0.1:9000/jwks"}},
			// Loopback is never proxied.
			want: sandbox.Policy{Mode: sandbox.ModeAuto, DataDir: "/d", ConnectTCP: []uint16{3128, 53, 9000}, ReadOnlyFiles: httpFiles, AllowUDP: true},
		},
		{
			name: "HTTPAddressesNeedNoDNS",
			in: sandboxInputs{Mode: sandbox.ModeAuto, DataDir: "/d",
				IdentityProvider: []string{"https://192.0.2.7:8443/", "http://[::1]:9000/jwks", "http://localhost:9001/", "http://a.localhost.:9002/"}},
			want: sandbox.Policy{Mode: sandbox.ModeAuto, DataDir: "/d", ConnectTCP: []uint16{8443, 9000, 9001, 9002}, ReadOnlyFiles: httpFiles},
		},
		{
			name: "RequireABISeam",
			env:  map[string]string{requireABIEnv: "5"},
			in:   sandboxInputs{Mode: sandbox.ModeStrict, DataDir: "/d"},
			want: sandbox.Policy{Mode: sandbox.ModeStrict, DataDir: "/d", RequireABI: 5},
		},
		{name: "ErrSchemeNotHTTP", in: sandboxInputs{DataDir: "/d", IdentityProvider: []string{"ldap://idp"}}, wantErr: true},
		{name: "ErrPortZero", in: sandboxInputs{DataDir: "/d", IdentityProvider: []string{"https://idp:0/"}}, wantErr: true},
		{name: "ErrSeamNotANumber", env: map[string]string{requireABIEnv: "latest"}, in: sandboxInputs{DataDir: "/d"}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD"} {
				t.Setenv(k, "")
			}
			unsetenv(t, requireABIEnv)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := sandboxPolicy(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("sandboxPolicy = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a, b := show(got), show(tc.want); a != b {
				t.Fatalf("sandboxPolicy\n got %s\nwant %s", a, b)
			}
			if slices.Contains(got.ConnectTCP, 0) {
				t.Fatal("port 0 granted")
			}
		})
	}
}

// unsetenv removes k for the rest of the test (t.Setenv restores it).
func unsetenv(t *testing.T, k string) {
	t.Helper()
	t.Setenv(k, "") // registers the restore
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}

func show(p sandbox.Policy) string {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Sprint(p)
	}
	return string(b)
}
