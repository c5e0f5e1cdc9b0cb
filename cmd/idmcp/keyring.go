package main

import (
	"os"

	"github.com/idmcp/idmcp/auth/keyring"
)

// hostKeyring is the OS keyring where host secrets live (service "idmcp",
// account = profile name). IDMCP_KEYRING_SERVICE names another service; the
// demo and tests use it so that they never touch a user's real entries.
func hostKeyring() *keyring.Keyring {
	return keyring.New(keyring.Config{Service: os.Getenv("IDMCP_KEYRING_SERVICE")})
}
