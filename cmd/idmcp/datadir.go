package main

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
)

// dataDir resolves the data dir: the flag, else IDMCP_DATA_DIR, else the
// platform's per-user state directory.
func dataDir(flagValue string) (dir string, explicit bool, err error) {
	if flagValue != "" {
		d, err := filepath.Abs(flagValue)
		return d, true, err
	}
	if env := os.Getenv("IDMCP_DATA_DIR"); env != "" {
		d, err := filepath.Abs(env)
		return d, true, err
	}
	switch runtime.GOOS {
	case "windows":
		if d := os.Getenv("LocalAppData"); d != "" {
			return filepath.Join(d, "idmcp"), false, nil
		}
	case "darwin":
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, "Library", "Application Support", "idmcp"), false, nil
		}
	default:
		if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
			return filepath.Join(d, "idmcp"), false, nil
		}
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, ".local", "state", "idmcp"), false, nil
		}
	}
	return "", false, errors.New("cannot find a per-user state directory; pass --data-dir or set IDMCP_DATA_DIR")
}
