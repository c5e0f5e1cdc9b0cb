//go:build !linux

package keyring

// available is always true where the keyring is an OS service (macOS
// Keychain, Windows Credential Manager).
func available() error { return nil }
