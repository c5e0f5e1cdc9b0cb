// Command customtool shows idmcp as a library: a Go program that serves its
// own tools next to the built-in whoami, behind the same host-secret gate,
// policy file and audit log as `idmcp serve`.
//
// Each tool is a tools.Spec declaring the scopes it requires and the roles it
// accepts; tools.ApplyPolicy applies a policy file (allow-list, overrides),
// tools.NewAuthorizer builds the one authorizer that gates tools/call and
// filters tools/list, and server.NewStdio records every decision in the audit
// log before answering.
//
// Try it (the profile "deployer" is defined in policy.toml, so the secret
// comes from the environment):
//
//	export IDMCP_SHARED_SECRET=$(openssl rand -hex 32) IDMCP_TOKEN=$IDMCP_SHARED_SECRET
//	go run ./examples/customtool --data-dir /tmp/customtool --policy examples/customtool/policy.toml
//	idmcp audit query --data-dir /tmp/customtool
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/server"
	"github.com/idmcp/idmcp/store"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

// deployTools are this program's own tools.
func deployTools() []tools.Spec {
	envSchema := json.RawMessage(`{"type":"object","properties":{"env":{"type":"string","enum":["staging","production"],"description":"The environment."}},"required":["env"],"additionalProperties":false}`)
	type envArgs struct {
		Env string `json:"env"`
	}
	return []tools.Spec{
		{
			Name:        "deploy_status",
			Title:       "Deployment status",
			Description: "Show the version running in an environment.",
			InputSchema: envSchema,
			Scopes:      []string{"deploy:read"},
			ReadOnly:    true, Idempotent: true,
			Handler: func(_ context.Context, p *auth.Principal, args json.RawMessage) (*tools.Result, error) {
				var a envArgs
				if err := tools.Decode(args, &a); err != nil {
					return nil, err
				}
				return tools.JSONResult(map[string]any{"env": a.Env, "version": "v1.4.2", "asked_by": p.Subject})
			},
		},
		{
			Name:        "deploy_rollback",
			Title:       "Roll back a deployment",
			Description: "Roll an environment back to its previous version. Needs the ops role.",
			InputSchema: envSchema,
			Scopes:      []string{"deploy:write"},
			Roles:       []string{"ops"},
			Destructive: true,
			Handler: func(_ context.Context, p *auth.Principal, args json.RawMessage) (*tools.Result, error) {
				var a envArgs
				if err := tools.Decode(args, &a); err != nil {
					return nil, err
				}
				return tools.JSONResult(map[string]any{"env": a.Env, "rolled_back_to": "v1.4.1", "by": p.Subject, "via": p.Agent()})
			},
		},
	}
}

// config is what run needs; main fills it from flags and the environment.
type config struct {
	DataDir string
	Profile string
	Policy  string // optional policy file
	Secret  string // the profile's expected secret
	Token   string // what the host presented (IDMCP_TOKEN)
	Human   string
}

// run serves MCP on in/out until in ends or ctx is cancelled.
func run(ctx context.Context, cfg config, in io.Reader, out io.Writer) error {
	var pol *auth.Policy
	if cfg.Policy != "" {
		var err error
		if pol, err = auth.LoadPolicy(cfg.Policy); err != nil {
			return err
		}
	}
	info := func() tools.ServerInfo {
		return tools.ServerInfo{Name: "customtool", Version: "1.0.0", Profile: cfg.Profile}
	}
	specs, res, err := tools.ApplyPolicy(pol, append([]tools.Spec{tools.Whoami(info)}, deployTools()...))
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(os.Stderr, w)
	}
	authz, err := tools.NewAuthorizer(specs)
	if err != nil {
		return err
	}

	if err := store.EnsureDir(cfg.DataDir); err != nil {
		return err
	}
	stored, err := store.NewHosts(cfg.DataDir).Get(cfg.Profile)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	profile, _ := pol.HostProfile(cfg.Profile, stored) // the policy's grant wins
	host, err := auth.NewHostAuthenticator(auth.HostAuthenticatorConfig{
		ProfileName: cfg.Profile, Profile: profile, Secret: []byte(cfg.Secret), SecretSource: "IDMCP_SHARED_SECRET", Human: cfg.Human,
	})
	if err != nil {
		return err
	}

	redactor := &audit.Redactor{Secrets: []string{cfg.Secret}}
	if pol != nil {
		redactor.Keys = pol.RedactKeys
	}
	alog, err := audit.Open(ctx, audit.Config{Path: filepath.Join(cfg.DataDir, store.AuditDBName), Redactor: redactor})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = alog.Close(cctx)
	}()

	srv, err := server.NewStdio(server.StdioConfig{
		Config:   server.Config{Version: "1.0.0", Tools: specs, Authorizer: authz, Audit: alog},
		Host:     host,
		EnvToken: cfg.Token,
	})
	if err != nil {
		return err
	}
	return srv.Listen(ctx, in, out)
}

func main() {
	dataDir := flag.String("data-dir", filepath.Join(os.TempDir(), "customtool"), "where the audit log lives")
	profile := flag.String("profile", "deployer", "host profile")
	policy := flag.String("policy", "", "policy file (TOML)")
	flag.Parse()
	cfg := config{DataDir: *dataDir, Profile: *profile, Policy: *policy,
		Secret: os.Getenv("IDMCP_SHARED_SECRET"), Token: os.Getenv("IDMCP_TOKEN"), Human: os.Getenv("USER")}
	_ = os.Unsetenv("IDMCP_SHARED_SECRET")
	_ = os.Unsetenv("IDMCP_TOKEN")
	if cfg.Human == "" {
		cfg.Human = "unknown"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, os.Stdin, os.Stdout); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "customtool:", err)
		os.Exit(1)
	}
}
