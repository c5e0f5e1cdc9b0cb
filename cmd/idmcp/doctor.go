package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/idmcp/idmcp/sandbox"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/store/doctor"
	"github.com/idmcp/idmcp/store/hostconfig"
)

// cmdDoctor implements `idmcp doctor`: it runs store/doctor's checks and
// prints them, exiting 1 when something is broken.
func cmdDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if wantsIssuerDoctor(args) {
		// Issue 17: `doctor --issuer URL [--token FILE]` checks an
		// authorization server and a sample token (doctor_issuer.go).
		return doctorIssuer(ctx, args, stdout, stderr)
	}
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dd := fs.String("data-dir", "", "data dir (default $IDMCP_DATA_DIR or the per-user state dir)")
	workspace := fs.String("workspace", "", "also check the project host files (.mcp.json, .vscode/mcp.json, …) in this directory (default: the working directory)")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("doctor takes no arguments, got %q", fs.Args())}
	}
	dir, _, err := dataDir(*dd)
	if err != nil {
		return err
	}
	env, err := hostconfig.EnvFromOS(*workspace)
	if err != nil {
		return err
	}
	// The audit key, if any, so that the chain's keyed rows are checked.
	var auditKey []byte
	if ks, err := audit.LoadKey(ctx, auditKeyConfig(dir, false, os.Getenv("IDMCP_AUDIT_KEY_FILE"))); err == nil {
		auditKey = ks.Key
	}
	rep, err := doctor.Run(ctx, doctor.Config{
		DataDir: dir, Keyring: hostKeyring(), KeyringService: keyringService(), Hosts: env, AuditKey: auditKey,
		Sandbox: func() (string, bool) {
			st := sandbox.Probe()
			return strings.Replace(strings.TrimPrefix(st.String(), "sandbox: "), " (not applied)", "", 1), st.Files || st.Seccomp
		},
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printDoctor(stdout, rep)
	}
	if rep.Broken > 0 {
		return &exitError{code: 1, err: fmt.Errorf("doctor: %d problem(s) found", rep.Broken)}
	}
	return nil
}

// wantsIssuerDoctor reports whether args ask for the issuer checks.
func wantsIssuerDoctor(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-issuer" || a == "--issuer" || strings.HasPrefix(a, "-issuer=") || strings.HasPrefix(a, "--issuer=") {
			return true
		}
	}
	return false
}

func printDoctor(w io.Writer, rep *doctor.Report) {
	mark := map[doctor.Status]string{doctor.OK: "ok", doctor.Info: "--", doctor.Warn: "WARN", doctor.Broken: "FAIL"}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range rep.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", mark[f.Status], f.Check, f.Message)
		if f.Fix != "" && f.Status != doctor.OK {
			fmt.Fprintf(tw, "\t\tfix: %s\n", f.Fix)
		}
	}
	_ = tw.Flush()
	switch {
	case rep.Broken > 0:
		fmt.Fprintf(w, "\n%d problem(s), %d warning(s)\n", rep.Broken, rep.Warnings)
	case rep.Warnings > 0:
		fmt.Fprintf(w, "\nno problems, %d warning(s)\n", rep.Warnings)
	default:
		fmt.Fprintln(w, "\nall good")
	}
}
