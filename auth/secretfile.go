package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// ErrSecretFile is wrapped by errors about a secret file.
var ErrSecretFile = errors.New("unusable secret file")

// maxSecretFile bounds a secret file's size.
const maxSecretFile = 4096

// ReadSecretFile reads a shared secret from path. On POSIX systems it refuses
// a file that group or others can read or write (mode must be 0600 or
// stricter), so a secret on a shared machine is not readable by others. One
// trailing newline is removed. The error never contains the file's content.
func ReadSecretFile(path string) ([]byte, error) {
	// Open once and check the open file, so the file checked is the file
	// read (no swap between a stat and an open).
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secret file %s is not a regular file: %w", path, ErrSecretFile)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret file %s has mode %04o; it must be 0600 or stricter (chmod 600 %s): %w", path, fi.Mode().Perm(), path, ErrSecretFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("secret file %s is larger than %d bytes: %w", path, maxSecretFile, ErrSecretFile)
	}
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("secret file %s is empty: %w", path, ErrSecretFile)
	}
	return b, nil
}
