package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

// toolsetOptions is what every transport builds its tool set from.
type toolsetOptions struct {
	// Policy is the --policy file; nil enables every tool as declared.
	Policy *auth.Policy
	// Store backs the todo tools; nil only with Catalog.
	Store tools.TodoStore
	// Info is whoami's view of the server.
	Info func() tools.ServerInfo
	// Workspace is --workspace; empty leaves the files tools out.
	Workspace string
	// AuditPath is the audit database audit_query reads (read-only); empty
	// only with Catalog.
	AuditPath string
	// Extra are more tools, declared like the built-ins (tests).
	Extra []tools.Spec
	// Catalog builds every tool for display (idmcp policy check): the files
	// tools are kept without a workspace and nothing is opened, so the
	// handlers must not be called.
	Catalog bool
}

// toolset is the enabled tools, the authorizer that knows exactly them, and
// what they hold open.
type toolset struct {
	Specs      []tools.Spec
	Authorizer *auth.Authorizer
	// Resolution says what the policy did to every tool, for display.
	Resolution *auth.Resolution
	// Warnings are the policy's warnings; serve logs them.
	Warnings []string
	// WorkspaceDir is the absolute workspace ("" without one), and
	// WorkspaceWritable says whether files_write is enabled: the sandbox
	// grants exactly that.
	WorkspaceDir      string
	WorkspaceWritable bool
	closers           []func() error
}

// Close releases the workspace and the audit reader.
func (t *toolset) Close() error {
	var errs []error
	for _, c := range slices.Backward(t.closers) {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// builtinTools returns the built-in tools that need nothing but the data dir:
// whoami and the todo tools. (The demo lists these.)
func builtinTools(st tools.TodoStore, info func() tools.ServerInfo) []tools.Spec {
	return append([]tools.Spec{tools.Whoami(info)}, tools.Todos(st)...)
}

// buildTools builds the tool set: every built-in (the files tools only with a
// workspace), the policy's allow-list and overrides applied, and the one
// authorizer that the gate, tools/list and the tool handlers share. Close the
// result when done.
func buildTools(ctx context.Context, opts toolsetOptions) (_ *toolset, err error) {
	ts := &toolset{}
	defer func() {
		if err != nil {
			_ = ts.Close()
		}
	}()
	if opts.Info == nil {
		opts.Info = func() tools.ServerInfo { return tools.ServerInfo{Name: "idmcp", Version: version} }
	}
	var ws *tools.Workspace
	if opts.Workspace != "" && opts.AuditPath != "" && !opts.Catalog {
		if err := checkApart(opts.Workspace, filepath.Dir(opts.AuditPath)); err != nil {
			return nil, err
		}
	}
	if opts.Workspace != "" && !opts.Catalog {
		ws, err = tools.OpenWorkspace(tools.WorkspaceConfig{Dir: opts.Workspace})
		if err != nil {
			return nil, fmt.Errorf("--workspace: %w", err)
		}
		ts.closers = append(ts.closers, ws.Close)
	}
	aq := tools.AuditQueryConfig{}
	if opts.AuditPath != "" && !opts.Catalog {
		r, err := audit.OpenReader(ctx, opts.AuditPath)
		if err != nil {
			return nil, fmt.Errorf("audit_query: %w", err)
		}
		ts.closers = append(ts.closers, r.Close)
		aq.Reader = r
	}
	files := tools.Files(ws)
	catalog := builtinTools(opts.Store, opts.Info)
	catalog = append(catalog, tools.AuditQuery(aq))
	catalog = append(catalog, files...)
	catalog = append(catalog, opts.Extra...)
	catalog = append(catalog, probeTools()...) // sandbox_probe in -tags sandboxprobe builds only (probe_on.go)
	catalog = append(catalog, benchTools()...) // echo in -tags benchecho builds only (benchtool_on.go)
	catalog = append(catalog, testTools()...)  // test_hang in -tags idmcptest builds only (testtools_on.go)

	specs, res, err := tools.ApplyPolicy(opts.Policy, catalog)
	if err != nil {
		return nil, err
	}
	if ws == nil && !opts.Catalog {
		var named []string
		for _, f := range files {
			if opts.Policy != nil && slices.Contains(opts.Policy.Enabled, f.Name) {
				named = append(named, f.Name)
			}
		}
		if len(named) > 0 {
			return nil, fmt.Errorf("%s enables %s; the files tools need --workspace DIR", opts.Policy.Name, strings.Join(named, ", "))
		}
		specs = slices.DeleteFunc(specs, func(s tools.Spec) bool {
			return slices.ContainsFunc(files, func(f tools.Spec) bool { return f.Name == s.Name })
		})
	}
	authz, err := tools.NewAuthorizer(specs)
	if err != nil {
		return nil, err
	}
	ts.Specs, ts.Authorizer, ts.Resolution, ts.Warnings = specs, authz, res, res.Warnings
	if ws != nil {
		ts.WorkspaceDir = ws.Dir()
		_, ts.WorkspaceWritable = authz.Requirement("files_write")
	}
	return ts, nil
}

// loadPolicy reads --policy; an empty path is the default policy (nil).
func loadPolicy(path string) (*auth.Policy, error) {
	if path == "" {
		return nil, nil
	}
	return auth.LoadPolicy(path)
}

// policyRedactKeys returns the policy's extra audit redaction keys.
func policyRedactKeys(p *auth.Policy) []string {
	if p == nil {
		return nil
	}
	return slices.Clone(p.RedactKeys)
}

// checkApart refuses a workspace that contains the data dir or lies inside
// it: the files tools could otherwise rewrite hosts.json (granting a host
// any scope), read audit.db past audit:read, or read the dev issuer's key,
// and the sandbox could not help since it grants both folders.
func checkApart(workspace, dataDir string) error {
	resolve := func(p string) string {
		abs, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			return r
		}
		return abs
	}
	ws, dd := resolve(workspace), resolve(dataDir)
	within := func(child, parent string) bool {
		rel, err := filepath.Rel(parent, child)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	switch {
	case within(dd, ws):
		return fmt.Errorf("--workspace %s contains the data dir %s: the files tools could rewrite host profiles and read the audit log; choose a workspace outside it", workspace, dataDir)
	case within(ws, dd):
		return fmt.Errorf("--workspace %s lies inside the data dir %s; choose a workspace outside it", workspace, dataDir)
	}
	return nil
}
