package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/idmcp/idmcp/auth"
	jwtauth "github.com/idmcp/idmcp/auth/jwt"
	"github.com/idmcp/idmcp/sandbox"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

// commonSettings are the serve settings both transports share, parsed and
// checked before anything is opened.
type commonSettings struct {
	level  slog.Level
	sync   store.Sync
	sbMode sandbox.Mode
	pol    *auth.Policy
	dir    string
	key    audit.KeyConfig
}

// common parses the shared flags, loads the policy and creates the data dir.
func (f serveFlags) common() (commonSettings, error) {
	var c commonSettings
	if err := c.level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return c, &exitError{code: 2, err: fmt.Errorf("--log-level: %w", err)}
	}
	var err error
	if c.sync, err = store.ParseSync(f.auditSync); err != nil {
		return c, &exitError{code: 2, err: fmt.Errorf("--audit-sync: %w", err)}
	}
	if c.sbMode, err = sandbox.ParseMode(f.sandbox); err != nil {
		return c, &exitError{code: 2, err: fmt.Errorf("--sandbox: %w", err)}
	}
	if c.pol, err = loadPolicy(f.policy); err != nil {
		return c, err
	}
	if c.dir, _, err = dataDir(f.dataDir); err != nil {
		return c, err
	}
	c.key = auditKeyConfig(c.dir, f.noKeyring, f.auditKeyFile)
	c.key.Create = true
	return c, store.EnsureDir(c.dir)
}

// backend is what every transport serves from: the tool-data store, the
// audit log and the tool set built from the policy.
type backend struct {
	st        *store.Store
	alog      *audit.Log
	ts        *toolset
	auditPath string
	logger    *slog.Logger
}

// openBackend opens the databases and builds the tools. Close it when done:
// the audit log is drained last.
func openBackend(ctx context.Context, c commonSettings, workspace string, redactor *audit.Redactor, logger *slog.Logger, info func() tools.ServerInfo) (_ *backend, err error) {
	b := &backend{auditPath: filepath.Join(c.dir, store.AuditDBName), logger: logger}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if b.st, err = store.Open(ctx, store.Config{Dir: c.dir}); err != nil {
		return nil, err
	}
	if b.alog, err = openAuditLog(ctx, c, redactor, logger); err != nil {
		return nil, err
	}
	if b.ts, err = buildTools(ctx, toolsetOptions{Policy: c.pol, Store: b.st, Info: info, Workspace: workspace, AuditPath: b.auditPath}); err != nil {
		return nil, err
	}
	for _, w := range b.ts.Warnings {
		logger.Warn("policy", "warning", w)
	}
	return b, nil
}

// Close closes the tools, drains the audit log (bounded) and closes the store.
func (b *backend) Close() {
	if b.ts != nil {
		_ = b.ts.Close()
	}
	if b.alog != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.alog.Close(cctx); err != nil {
			b.logger.Error("audit log did not drain", "err", err)
		}
	}
	if b.st != nil {
		_ = b.st.Close()
	}
}

// claimMapping is the policy's JWT claim mapping (defaults when unset).
func claimMapping(pol *auth.Policy) jwtauth.ClaimMapping {
	if pol == nil || pol.Claims == nil {
		return jwtauth.ClaimMapping{}
	}
	return jwtauth.ClaimMapping{ScopeClaims: pol.Claims.ScopeClaims, RoleClaims: pol.Claims.RoleClaims, ScopePrefix: pol.Claims.ScopePrefix,
		ClientClaims: pol.Claims.ClientClaims}
}

// auditKeyConfig says where the audit key of dataDir is kept: the OS keyring
// (service as for host secrets), or with noKeyring only the key file.
func auditKeyConfig(dataDir string, noKeyring bool, file string) audit.KeyConfig {
	kc := audit.KeyConfig{DataDir: dataDir, File: file}
	if !noKeyring {
		kc.Keyring = hostKeyring()
	}
	return kc
}

// openAuditLog opens the data dir's audit log with its audit key (made on
// first use; serve and wrap write the same keyed chain).
func openAuditLog(ctx context.Context, c commonSettings, redactor *audit.Redactor, logger *slog.Logger) (*audit.Log, error) {
	ks, err := audit.LoadKey(ctx, c.key)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if ks.Warning != "" {
		logger.Warn(ks.Warning)
	}
	logger.Debug("audit key", "where", ks.Where, "key_id", audit.KeyID(ks.Key))
	return audit.Open(ctx, audit.Config{Path: filepath.Join(c.dir, store.AuditDBName), Sync: c.sync, Redactor: redactor, Logger: logger, Key: ks.Key})
}
