package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store/audit"
	"github.com/idmcp/idmcp/tools"
)

// Name is the server's MCP implementation name.
const Name = "idmcp"

// Config configures the MCP server shared by every transport.
type Config struct {
	// Version is reported in serverInfo and whoami.
	Version string
	// Tools are the enabled tools; only these are registered.
	Tools []tools.Spec
	// Authorizer decides every call; it must know every tool in Tools.
	Authorizer *auth.Authorizer
	// Audit receives a row for every decision and outcome.
	Audit *audit.Log
	// Logger gets operational logs (stderr); never secrets.
	Logger *slog.Logger
	// ListAllTools lists every enabled tool regardless of the caller's
	// permissions (for debugging policies); calls are still decided.
	ListAllTools bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Authorizer == nil {
		return fmt.Errorf("field \"authorizer\": nil: %w", auth.ErrInvalidConfig)
	}
	if c.Audit == nil {
		return fmt.Errorf("field \"audit\": nil: %w", auth.ErrInvalidConfig)
	}
	seen := map[string]bool{}
	for _, t := range c.Tools {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("field \"tools\": %w", err)
		}
		if seen[t.Name] {
			return fmt.Errorf("field \"tools\": tool %q registered twice", t.Name)
		}
		seen[t.Name] = true
		if _, ok := c.Authorizer.Requirement(t.Name); !ok {
			return fmt.Errorf("field \"tools\": tool %q is not known to the authorizer", t.Name)
		}
	}
	return nil
}

// core is what every transport shares: the tool set, the authorizer and the
// audit log, and the one place where decisions become audit rows.
type core struct {
	cfg     Config
	log     *slog.Logger
	session string
	now     func() time.Time
}

func newCore(cfg Config, transport string) (*core, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &core{cfg: cfg, log: cfg.Logger.With("transport", transport), session: hex.EncodeToString(b[:]), now: cfg.Now}, nil
}

// event fills the identity columns of an audit event from p.
func (c *core) event(p *auth.Principal, transport, kind string) audit.Event {
	ev := audit.Event{Time: c.now(), Transport: transport, Session: c.session, Event: kind}
	if p != nil {
		ev.Subject, ev.ClientID, ev.Actors, ev.AuthMethod, ev.Issuer = p.Subject, p.ClientID, p.Actors, string(p.Method), p.Issuer
		switch {
		case p.ClientName != "" && p.ClientVersion != "":
			ev.ClientName = p.ClientName + "/" + p.ClientVersion
		case p.ClientName != "":
			ev.ClientName = p.ClientName
		}
	}
	return ev
}

// record appends ev; a failure is logged (without the event's contents) and
// returned so the caller can fail closed.
func (c *core) record(ctx context.Context, ev audit.Event) error {
	if err := c.cfg.Audit.Append(ctx, ev); err != nil {
		c.log.Error("audit write failed", "event", ev.Event, "err", err)
		return err
	}
	return nil
}

// decideCall is the authorization step of tools/call: it decides, and a
// denial becomes an audit row (committed before the caller answers) and the
// typed error the transport maps.
func (c *core) decideCall(ctx context.Context, p *auth.Principal, transport, tool string, args json.RawMessage) error {
	d := c.cfg.Authorizer.Decide(p, tool)
	if d.Allow {
		return nil
	}
	ev := c.event(p, transport, audit.EventToolsCall)
	ev.Tool, ev.Arguments, ev.Decision, ev.Reason = tool, args, audit.Deny, d.Reason
	if err := c.record(ctx, ev); err != nil {
		return &auth.Error{Kind: auth.KindUnavailable, Msg: "audit log unavailable; request refused", Err: err}
	}
	return d.Err
}

// visible filters tools to those p may call (or all, with ListAllTools).
func (c *core) visible(p *auth.Principal, all []mcp.Tool) []mcp.Tool {
	if c.cfg.ListAllTools {
		return all
	}
	out := make([]mcp.Tool, 0, len(all))
	for _, t := range all {
		if c.cfg.Authorizer.Decide(p, t.Name).Allow {
			out = append(out, t)
		}
	}
	return out
}

// principalFunc finds the caller of a request in its context.
type principalFunc func(ctx context.Context) *auth.Principal

// newMCPServer builds the mcp-go server with every tool wrapped so that a
// call runs only when allowed, and answers only once its row is committed.
func (c *core) newMCPServer(transport string, who principalFunc, hooks *mcpserver.Hooks) *mcpserver.MCPServer {
	hooks.AddAfterListTools(func(ctx context.Context, _ any, _ *mcp.ListToolsRequest, res *mcp.ListToolsResult) {
		ev := c.event(who(ctx), transport, audit.EventToolsList)
		ev.Decision, ev.Reason = audit.Allow, fmt.Sprintf("%d tools visible", len(res.Tools))
		if err := c.record(ctx, ev); err != nil {
			// Fail closed: a listing that could not be recorded shows nothing
			// (the hook cannot turn it into an error).
			res.Tools = []mcp.Tool{}
		}
	})
	s := mcpserver.NewMCPServer(Name, c.cfg.Version,
		mcpserver.WithToolCapabilities(false),
		mcpserver.WithHooks(hooks),
		mcpserver.WithRecovery(),
		mcpserver.WithToolFilter(func(ctx context.Context, all []mcp.Tool) []mcp.Tool {
			return c.visible(who(ctx), all)
		}),
		mcpserver.WithInstructions("idmcp runs tools only for authenticated callers and only within their scopes; every call is audited."),
	)
	for _, spec := range c.cfg.Tools {
		s.AddTool(mcpTool(spec), c.handler(spec, transport, who))
	}
	return s
}

// RequiresMeta is the tool _meta key listing what a tool requires, so hosts
// and --list-all-tools users can see why a call would be refused.
const RequiresMeta = "io.idmcp/requires"

// mcpTool describes spec for tools/list. The requirement shown (in _meta and
// at the end of the description) is the effective one, after the policy's
// overrides, so it never goes stale.
func mcpTool(spec tools.Spec) mcp.Tool {
	desc := spec.Description
	var needs []string
	if len(spec.Scopes) > 0 {
		needs = append(needs, "scope "+strings.Join(spec.Scopes, " "))
	}
	if len(spec.Roles) > 0 {
		needs = append(needs, "role "+strings.Join(spec.Roles, " or "))
	}
	if len(needs) > 0 {
		desc += " Requires " + strings.Join(needs, " and ") + "."
	}
	t := mcp.NewToolWithRawSchema(spec.Name, desc, spec.InputSchema)
	t.Meta = mcp.NewMetaFromMap(map[string]any{RequiresMeta: map[string]any{
		"scopes": nonNilStrings(spec.Scopes), "roles": nonNilStrings(spec.Roles),
	}})
	ro, de, id, ow := spec.ReadOnly, spec.Destructive, spec.Idempotent, false
	t.Annotations = mcp.ToolAnnotation{Title: spec.Title, ReadOnlyHint: &ro, DestructiveHint: &de, IdempotentHint: &id, OpenWorldHint: &ow}
	return t
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *core) handler(spec tools.Spec, transport string, who principalFunc) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		p := who(ctx)
		// The arguments as the client sent them (mcp-go keeps them): not
		// re-encoded for the tool and the audit row, whose redaction writes
		// its own canonical form.
		args := req.Params.RawArguments
		switch {
		case req.Params.Arguments == nil:
			args = []byte("{}")
		case len(args) == 0:
			args, _ = json.Marshal(req.Params.Arguments)
		}
		// Defence in depth: the gate decided already; decide again here so a
		// transport that forgot to gate cannot run a tool.
		if err := c.decideCall(ctx, p, transport, spec.Name, args); err != nil {
			return nil, err
		}
		if err := c.cfg.Audit.Healthy(); err != nil {
			return nil, fmt.Errorf("audit log unavailable; tool %q was not run", spec.Name)
		}
		// Write-ahead: a tool with side effects runs only once its intent row
		// is committed, so a kill mid-call leaves an unfinished intent, never
		// a side effect without a row. Read-only tools keep one row.
		var intentID int64
		if !spec.ReadOnly {
			ev := c.event(p, transport, audit.EventToolsCall)
			ev.Tool, ev.Arguments, ev.Reason = spec.Name, args, "allowed"
			id, err := c.cfg.Audit.Intent(ctx, ev)
			if err != nil {
				c.log.Error("audit write failed", "event", ev.Event, "err", err)
				return nil, fmt.Errorf("audit log unavailable; tool %q was not run", spec.Name)
			}
			intentID = id
			noteIntent(ctx, id) // a transport that abandons the call names it too
		}
		start := c.now()
		res, err := runTool(ctx, spec, p, args)
		ev := c.event(p, transport, audit.EventToolsCall)
		ev.Tool, ev.Arguments, ev.Decision, ev.Reason = spec.Name, args, audit.Allow, "allowed"
		// The outcome row repeats the (redacted) arguments, so that it reads
		// on its own, and names its intent row.
		ev.IntentID = intentID
		ev.Duration = c.now().Sub(start)
		var out *mcp.CallToolResult
		switch {
		case err == nil:
			ev.Outcome = audit.OK
			out = mcp.NewToolResultStructured(res.Structured, res.Text)
			if res.Structured == nil {
				out = mcp.NewToolResultText(res.Text)
			}
		case errors.Is(err, tools.ErrInput):
			msg := tools.UserMessage(err)
			ev.Outcome, ev.Reason = audit.Failed, "allowed; tool error: "+msg
			out = mcp.NewToolResultError(msg)
		case ctx.Err() != nil:
			// Cancelled: by the client (notifications/cancelled) or at the
			// shutdown deadline; the cause says which.
			cause := context.Cause(ctx)
			ev.Outcome, ev.Reason = audit.Cancelled, "allowed; cancelled: "+cause.Error()
			out = mcp.NewToolResultError(fmt.Sprintf("tool %q was cancelled: %v", spec.Name, cause))
		default:
			c.log.Error("tool failed", "tool", spec.Name, "err", err)
			ev.Outcome, ev.Reason = audit.Failed, "allowed; internal error: "+err.Error()
			out = mcp.NewToolResultError(fmt.Sprintf("tool %q failed; see the server log", spec.Name))
		}
		c.stampModern(ctx, out)
		body, _ := json.Marshal(out)
		sum := sha256.Sum256(body)
		ev.ResultBytes, ev.ResultSHA256 = int64(len(body)), hex.EncodeToString(sum[:])
		if !claimOutcomeRow(ctx) {
			// The transport gave up on this call and wrote its row.
			return nil, context.Cause(ctx)
		}
		if err := c.record(ctx, ev); err != nil {
			// Fail closed: a result whose row is not on disk is withheld.
			return nil, fmt.Errorf("audit log unavailable; the result of %q was withheld", spec.Name)
		}
		// A transport that offers it sends these very bytes, the ones hashed.
		keepResult(ctx, out, body)
		return out, nil
	}
}

// stampModern adds to a 2026-07-28 result what mcp-go would add after the
// handler returned (resultType, serverInfo in _meta: decorateResponse), so
// that the bytes hashed for the audit row are the bytes the client gets.
func (c *core) stampModern(ctx context.Context, out *mcp.CallToolResult) {
	if !mcpserver.IsModernRequest(ctx) {
		return
	}
	if out.GetResultType() == "" {
		out.SetResultType(mcp.ResultTypeComplete)
	}
	if m := out.EnsureResultMeta(); m.ServerInfo() == nil {
		m.SetServerInfo(mcp.Implementation{Name: Name, Version: c.cfg.Version})
	}
}

// runTool calls the handler, turning a panic into an error so that the call
// still gets its audit row.
func runTool(ctx context.Context, spec tools.Spec, p *auth.Principal, args json.RawMessage) (res *tools.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("panic in tool %q", spec.Name)
		}
	}()
	res, err = spec.Handler(ctx, p, args)
	if err == nil && res == nil {
		err = fmt.Errorf("tool %q returned no result", spec.Name)
	}
	return res, err
}
