package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/sandbox"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/server/relay"
	"github.com/idmcp/idmcp/store/audit"
)

// policyCheckWrap is `idmcp policy check FILE -- CMD`: it starts CMD as
// idmcp wrap would (confined, minimal environment), lists its tools, and
// prints each against [wrap.tools]: who may call it, or that it is hidden.
func policyCheckWrap(ctx context.Context, pol *auth.Policy, dataDirFlag, mode string, cmdArgs []string, stdout, stderr io.Writer) error {
	sbMode, err := sandbox.ParseMode(mode)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--sandbox: %w", err)}
	}
	dir, _, err := dataDir(dataDirFlag)
	if err != nil {
		return err
	}
	rules := pol.Wrap
	redactor := &audit.Redactor{}
	env, err := wrapEnv(ctx, rules, redactor)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "idmcp-wrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	spec, err := wrapSpec(sbMode, dir, tmp, rules, env, cmdArgs)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	logger := server.NewLogger(stderr, 0, redactor)
	helpers, err := startHelpers(1, &childStderr{log: logger})
	if err != nil {
		return err
	}
	defer helpers.abandon()
	tools, err := relay.ListTools(ctx, helpers.starter(spec), version, logger)
	if err != nil {
		return fmt.Errorf("policy check -- %s: %w", cmdArgs[0], err)
	}
	fmt.Fprintf(stdout, "\nWrapped server %s: %d tools\n", cmdArgs[0], len(tools))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOOL\tVISIBLE\tRULE\tSCOPES\tROLES")
	hidden := 0
	for _, raw := range tools {
		var t struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(raw, &t)
		r, ok := rules.ToolRule(t.Name)
		switch {
		case !ok:
			hidden++
			fmt.Fprintf(tw, "%s\tno\t(not named: hidden)\t-\t-\n", t.Name)
		case r.Deny:
			hidden++
			fmt.Fprintf(tw, "%s\tno\t%q deny\t-\t-\n", t.Name, r.Pattern)
		default:
			fmt.Fprintf(tw, "%s\tyes\t%q\t%s\t%s\n", t.Name, r.Pattern, dash(strings.Join(r.Requirement.Scopes, " ")), dash(strings.Join(r.Requirement.Roles, " or ")))
		}
	}
	_ = tw.Flush()
	if hidden > 0 {
		fmt.Fprintf(stdout, "%d tool(s) hidden from every caller; name them in [wrap.tools] to grant them.\n", hidden)
	}
	return nil
}
