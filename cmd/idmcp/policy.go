package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/tools"
)

// cmdPolicy runs `idmcp policy check [--strict] FILE`: it validates a policy
// against the built-in tools and prints what each tool requires under it.
func cmdPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return &exitError{code: 2, err: errors.New("usage: idmcp policy check [--strict] FILE [-- CMD [ARGS…]]")}
	}
	args = args[1:]
	var wrapCmd []string // policy check FILE -- CMD: wrap_check.go
	if i := slices.Index(args, "--"); i >= 0 {
		args, wrapCmd = args[:i], args[i+1:]
	}
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	strict := fs.Bool("strict", false, "treat warnings as errors")
	wrapDataDir := fs.String("data-dir", "", "with -- CMD: the data dir kept out of CMD's reach")
	wrapSandbox := fs.String("sandbox", "auto", "with -- CMD: how CMD is confined (auto, strict, off)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &exitError{code: 2, err: errors.New("usage: idmcp policy check [--strict] FILE [-- CMD [ARGS…]]")}
	}
	pol, err := auth.LoadPolicy(pos[0])
	if err != nil {
		return err
	}
	ts, err := buildTools(ctx, toolsetOptions{Policy: pol, Catalog: true})
	if err != nil {
		return err
	}
	defer ts.Close()
	printPolicy(stdout, pol, ts.Resolution)
	if len(wrapCmd) > 0 {
		if err := policyCheckWrap(ctx, pol, *wrapDataDir, *wrapSandbox, wrapCmd, stdout, stderr); err != nil {
			return err
		}
	}
	if *strict && len(ts.Warnings) > 0 {
		return fmt.Errorf("%s: %d warning(s) with --strict", pol.Name, len(ts.Warnings))
	}
	return nil
}

// printPolicy prints the tool table, host grants, claim mapping, audit and
// HTTP settings, and the warnings.
func printPolicy(w io.Writer, pol *auth.Policy, res *auth.Resolution) {
	files := map[string]bool{}
	for _, f := range tools.Files(nil) {
		files[f.Name] = true
	}
	// Every value from the policy file is escaped (termSafe): a tool name or
	// note with a newline or a bidi control must not forge a row.
	fmt.Fprintf(w, "%s: ok\n\n", termSafe(pol.Name))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOOL\tENABLED\tSCOPES\tROLES\tNOTE")
	for _, t := range res.Tools {
		enabled := "yes"
		if !t.Enabled {
			enabled = "no"
		}
		var notes []string
		if t.Override != "" {
			notes = append(notes, "override at "+t.Override)
		}
		if files[t.Name] && t.Enabled {
			notes = append(notes, "needs --workspace")
		}
		roles := strings.Join(t.Requirement.Roles, " or ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", termSafe(t.Name), enabled, dash(termSafe(strings.Join(t.Requirement.Scopes, " "))), dash(termSafe(roles)), dash(termSafe(strings.Join(notes, "; "))))
	}
	_ = tw.Flush()
	if len(pol.Hosts) > 0 {
		fmt.Fprintln(w, "\nHost profiles (override hosts.json where set):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PROFILE\tSCOPES\tROLES")
		for _, name := range sortedNames(pol.Hosts) {
			g := pol.Hosts[name]
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", termSafe(name), termSafe(grantText(g.Scopes)), termSafe(grantText(g.Roles)))
		}
		_ = tw.Flush()
	}
	if c := pol.Claims; c != nil {
		fmt.Fprintln(w, "\nJWT claims:")
		fmt.Fprintf(w, "  scopes from: %s\n", termSafe(orDefault(c.ScopeClaims)))
		fmt.Fprintf(w, "  roles from:  %s\n", termSafe(orDefault(c.RoleClaims)))
		if c.ScopePrefix != "" {
			fmt.Fprintf(w, "  scope prefix stripped: %s\n", termSafe(c.ScopePrefix))
		}
	}
	if len(pol.RedactKeys) > 0 {
		fmt.Fprintf(w, "\nAudit: also redact %s\n", termSafe(strings.Join(pol.RedactKeys, ", ")))
	}
	if h := pol.HTTP; h != nil {
		fmt.Fprintln(w, "\nHTTP:")
		for _, kv := range [][2]string{{"addr", h.Addr}, {"issuer", h.Issuer}, {"resource", h.Resource},
			{"audiences", strings.Join(h.Audiences, " ")}, {"jwks_url", h.JWKSURL}, {"allowed_origins", strings.Join(h.AllowedOrigins, " ")},
			{"trusted_proxies", strings.Join(h.TrustedProxies, " ")}} {
			if kv[1] != "" {
				fmt.Fprintf(w, "  %-16s %s\n", kv[0], termSafe(kv[1]))
			}
		}
	}
	if len(res.Warnings) > 0 {
		fmt.Fprintln(w)
		for _, warn := range res.Warnings {
			fmt.Fprintln(w, termSafe(warn))
		}
	}
}

func grantText(v []string) string {
	if v == nil {
		return "(from hosts.json)"
	}
	return dash(strings.Join(v, " "))
}

func orDefault(v []string) string {
	if v == nil {
		return "(default)"
	}
	return strings.Join(v, ", ")
}

func sortedNames[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
