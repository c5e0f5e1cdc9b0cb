package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/idmcp/idmcp/sandbox"
)

// envOr returns the environment variable k, or def when it is unset.
func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}

// applySandbox confines the process and says what it enforced, in one stderr
// line. Mode off is a warning; strict fails when a part cannot be enforced.
func applySandbox(logger *slog.Logger, p sandbox.Policy) (sandbox.Status, error) {
	st, err := sandbox.Apply(p)
	if err != nil {
		return st, fmt.Errorf("sandbox: %w", err)
	}
	switch {
	case p.Mode == sandbox.ModeOff:
		logger.Warn("sandbox disabled by --sandbox off; tools run with the full rights of this process")
	case !st.Applied:
		logger.Warn(st.String())
	default:
		logger.Info(st.String())
	}
	return st, nil
}

// cmdSandbox implements `idmcp sandbox status`: what this kernel would
// enforce, probed without applying anything.
func cmdSandbox(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "status" {
		return &exitError{code: 2, err: errors.New("usage: idmcp sandbox status [--json]")}
	}
	fs := flag.NewFlagSet("sandbox status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	st := sandbox.Probe()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintln(stdout, st.String())
	return nil
}
