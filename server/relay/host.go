package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store/audit"
)

// Instructions is what the relay adds to the child's instructions.
const Instructions = "This server runs behind idmcp wrap: only authenticated callers reach it, each tool, prompt and resource only within the caller's scopes, and every call is audited."

// legacyVersions are the protocol versions with initialize the relay
// answers a host in (it speaks ChildProtocolVersion to the child and
// relays the messages, which these versions share).
var legacyVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

type hostParams struct {
	Name         string          `json:"name"`
	URI          string          `json:"uri"`
	Capabilities json.RawMessage `json:"capabilities"`
	Protocol     string          `json:"protocolVersion"`
	RequestID    json.RawMessage `json:"requestId"`
	Arguments    json.RawMessage `json:"arguments"`
	Ref          *struct {
		Type string `json:"type"`
		Name string `json:"name"`
		URI  string `json:"uri"`
	} `json:"ref"`
	Meta struct {
		ClientCapabilities json.RawMessage `json:"io.modelcontextprotocol/clientCapabilities"`
	} `json:"_meta"`
}

// fromHost handles one line of the host.
func (r *Relay) fromHost(ctx context.Context, line []byte) {
	var m wireMsg
	if err := json.Unmarshal(line, &m); err != nil {
		r.hostError(json.RawMessage("null"), -32700, "parse error")
		return
	}
	switch {
	case m.Method != "" && m.ID != nil:
		r.hostRequest(ctx, line, &m)
	case m.Method != "":
		r.hostNotification(&m)
	case m.ID != nil:
		r.hostResponse(&m)
	}
}

// hostRequest: gate, then one rule per method.
func (r *Relay) hostRequest(ctx context.Context, line []byte, m *wireMsg) {
	p, err := r.cfg.Gate.Check(ctx, line)
	if err != nil {
		code, msg := authCode(err)
		r.hostError(m.ID, code, msg)
		return
	}
	r.principal.Store(p)
	var hp hostParams
	_ = json.Unmarshal(m.Params, &hp)
	r.mu.Lock()
	if r.hostCaps == nil {
		switch {
		case m.Method == "initialize" && hp.Capabilities != nil:
			r.hostCaps = hp.Capabilities
		case hp.Meta.ClientCapabilities != nil:
			r.hostCaps = hp.Meta.ClientCapabilities
		}
	}
	r.mu.Unlock()

	switch m.Method {
	case "ping":
		r.hostResult(m.ID, json.RawMessage("{}"))
		return
	}
	c, err := r.ensureStarted(ctx, p)
	if err != nil {
		r.failHost(m.ID, err)
		return
	}
	switch m.Method {
	case "initialize":
		r.hostResult(m.ID, r.initializeResult(c, hp.Protocol))
	case "server/discover":
		r.hostResult(m.ID, r.discoverResult(c))
	case "tools/list":
		r.forwardList(ctx, c, p, m, "tools", "name", r.rules.DecideTool, audit.EventToolsList)
	case "prompts/list":
		r.forwardList(ctx, c, p, m, "prompts", "name", r.rules.DecidePrompt, "prompts/list")
	case "resources/list":
		r.forwardList(ctx, c, p, m, "resources", "uri", r.rules.DecideResource, "resources/list")
	case "resources/templates/list":
		r.forwardList(ctx, c, p, m, "resourceTemplates", "uriTemplate", r.rules.DecideResource, "resources/templates/list")
	case "tools/call":
		r.forwardDecided(ctx, c, p, m, audit.EventToolsCall, hp.Name, hp.Arguments, r.rules.DecideTool(p, hp.Name))
	case "prompts/get":
		r.forwardDecided(ctx, c, p, m, EventPromptsGet, hp.Name, hp.Arguments, r.rules.DecidePrompt(p, hp.Name))
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		r.forwardDecided(ctx, c, p, m, m.Method, hp.URI, nil, r.rules.DecideResource(p, hp.URI))
	case "completion/complete":
		d := auth.Decision{Reason: "completion of an unknown reference", Err: auth.NotFound("")}
		name := ""
		if ref := hp.Ref; ref != nil {
			switch ref.Type {
			case "ref/prompt":
				name, d = ref.Name, r.rules.DecidePrompt(p, ref.Name)
			case "ref/resource":
				name, d = ref.URI, r.rules.DecideResource(p, ref.URI)
			}
		}
		r.forwardDecided(ctx, c, p, m, m.Method, name, nil, d)
	case "logging/setLevel":
		r.forward(c, m, nil)
	default:
		if slices.Contains(r.rules.Methods, m.Method) {
			r.forward(c, m, nil)
			return
		}
		r.hostError(m.ID, codeMethodNotFound, fmt.Sprintf("method %q is not relayed by idmcp wrap (a policy can allow it: [wrap] methods)", truncate(m.Method, 64)))
	}
}

// forward sends m to the child under a relay id; the answer goes back
// under the host's id, through filter when one is given.
func (r *Relay) forward(c *child, m *wireMsg, then func(resp *wireMsg) *wireMsg) {
	hostID := m.ID
	err := c.send(m.Method, stripMeta(m.Params), hostID, func(resp *wireMsg) {
		if then != nil {
			resp = then(resp)
		}
		if resp == nil {
			r.hostError(hostID, codeInternal, fmt.Sprintf("%s (%s) before answering %s", ErrChildGone, c.exitText(), m.Method))
			return
		}
		out := wireMsg{JSONRPC: "2.0", ID: hostID, Result: resp.Result, Error: resp.Error}
		if out.Result == nil && out.Error == nil {
			out.Result = json.RawMessage("{}")
		}
		b, _ := json.Marshal(out)
		r.toHost(b)
	})
	if err != nil {
		r.failHost(hostID, err)
	}
}

// forwardList forwards a list request and filters the answer's key array
// to the entries the caller may use; one audit row says how many it saw.
func (r *Relay) forwardList(ctx context.Context, c *child, p *auth.Principal, m *wireMsg, key, field string, decide func(*auth.Principal, string) auth.Decision, kind string) {
	r.forward(c, m, func(resp *wireMsg) *wireMsg {
		if resp == nil || resp.Error != nil {
			return resp
		}
		var res map[string]json.RawMessage
		if json.Unmarshal(resp.Result, &res) != nil {
			return &wireMsg{Error: &rpcError{Code: codeInternal, Message: "the wrapped server's " + m.Method + " result is not an object"}}
		}
		var items []json.RawMessage
		_ = json.Unmarshal(res[key], &items)
		kept := make([]json.RawMessage, 0, len(items))
		for _, it := range items {
			var v map[string]json.RawMessage
			var name string
			if json.Unmarshal(it, &v) != nil || json.Unmarshal(v[field], &name) != nil {
				continue
			}
			if field == "uriTemplate" {
				// A template is decided by its text up to the first
				// variable, the prefix every URI it makes starts with.
				name, _, _ = strings.Cut(name, "{")
			}
			if decide(p, name).Allow {
				kept = append(kept, it)
			}
		}
		ev := r.event(p, kind)
		ev.Decision, ev.Reason = audit.Allow, fmt.Sprintf("%d of %d %s visible", len(kept), len(items), key)
		if r.record(ctx, ev) != nil {
			kept = kept[:0] // fail closed: an unrecorded listing shows nothing
		}
		res[key], _ = json.Marshal(kept)
		if _, ok := res["cacheScope"]; ok {
			// 2026-07-28 cache hints: the list is now this caller's own, so
			// no shared cache may serve it to another.
			res["cacheScope"] = json.RawMessage(`"private"`)
		}
		out := *resp
		out.Result, _ = json.Marshal(res)
		return &out
	})
}

// forwardDecided is the path of every gated call: decide; a refusal is a
// row and an error and never reaches the child; an allowed call gets its
// intent row committed, is forwarded, and its outcome row is committed
// before the host sees the answer (withheld if that row fails).
func (r *Relay) forwardDecided(ctx context.Context, c *child, p *auth.Principal, m *wireMsg, kind, name string, args json.RawMessage, d auth.Decision) {
	ev := r.event(p, kind)
	ev.Tool, ev.Arguments = name, args
	if !d.Allow {
		ev.Decision, ev.Reason = audit.Deny, d.Reason
		if err := r.record(ctx, ev); err != nil {
			r.hostError(m.ID, codeInvalidRequest, "audit log unavailable; request refused")
			return
		}
		msg := "forbidden"
		if d.Err != nil {
			msg = d.Err.Msg
		}
		r.hostError(m.ID, codeInvalidRequest, msg)
		return
	}
	ev.Reason = d.Reason
	id, err := r.intent(ctx, ev)
	if err != nil {
		r.hostError(m.ID, codeInvalidRequest, "audit log unavailable; request refused")
		return
	}
	ev.IntentID = id // the outcome row names its intent
	start := r.cfg.Now()
	r.forward(c, m, func(resp *wireMsg) *wireMsg {
		if resp == nil {
			ev.Reason += "; " + fmt.Sprintf("%s (%s)", ErrChildGone, c.exitText())
		}
		if err := r.outcome(ctx, ev, start, resp); err != nil && resp != nil {
			return &wireMsg{Error: &rpcError{Code: codeInternal, Message: fmt.Sprintf("audit log unavailable; the result of %q was withheld", name)}}
		}
		return resp
	})
}

// initializeResult answers the host's initialize from the child's: the
// host's version when the relay speaks it, the child's capabilities and
// identity, and idmcp's instructions added.
func (r *Relay) initializeResult(c *child, requested string) json.RawMessage {
	res := map[string]json.RawMessage{}
	_ = json.Unmarshal(c.initResult, &res)
	version := ChildProtocolVersion
	if slices.Contains(legacyVersions, requested) {
		version = requested
	}
	res["protocolVersion"], _ = json.Marshal(version)
	res["instructions"], _ = json.Marshal(r.instructions(c))
	if _, ok := res["capabilities"]; !ok {
		res["capabilities"] = json.RawMessage("{}")
	}
	b, _ := json.Marshal(res)
	return b
}

// discoverResult answers server/discover (2026-07-28) from the child's
// initialize result.
func (r *Relay) discoverResult(c *child) json.RawMessage {
	var init struct {
		Capabilities json.RawMessage `json:"capabilities"`
		ServerInfo   json.RawMessage `json:"serverInfo"`
	}
	_ = json.Unmarshal(c.initResult, &init)
	if init.Capabilities == nil {
		init.Capabilities = json.RawMessage("{}")
	}
	b, _ := json.Marshal(map[string]any{
		"supportedVersions": append([]string{ModernProtocolVersion}, legacyVersions...),
		"capabilities":      init.Capabilities,
		"serverInfo":        init.ServerInfo,
		"instructions":      r.instructions(c),
	})
	return b
}

func (r *Relay) instructions(c *child) string {
	var init struct {
		Instructions string `json:"instructions"`
	}
	_ = json.Unmarshal(c.initResult, &init)
	if init.Instructions == "" {
		return Instructions
	}
	return init.Instructions + "\n\n" + Instructions
}

// hostNotification relays what the host tells the child, once a child
// runs (nothing reaches it before the host authenticated).
func (r *Relay) hostNotification(m *wireMsg) {
	r.mu.Lock()
	c := r.child
	r.mu.Unlock()
	if c == nil || c.exited() {
		return
	}
	switch m.Method {
	case "notifications/initialized":
		return // the relay sent its own
	case "notifications/cancelled":
		var hp hostParams
		if json.Unmarshal(m.Params, &hp) != nil || hp.RequestID == nil {
			return
		}
		c.mu.Lock()
		id, ok := c.byHost[idKey(hp.RequestID)]
		c.mu.Unlock()
		if !ok {
			return
		}
		var params map[string]json.RawMessage
		_ = json.Unmarshal(m.Params, &params)
		params["requestId"] = itoa(id)
		m.Params, _ = json.Marshal(params)
	case "notifications/roots/list_changed":
		if !r.rules.AllowRoots {
			return
		}
	case "notifications/progress":
	default:
		r.log.Debug("host notification not relayed", "method", truncate(m.Method, 64))
		return
	}
	b, _ := json.Marshal(wireMsg{JSONRPC: "2.0", Method: m.Method, Params: stripMeta(m.Params)})
	_ = c.write(b)
}

// hostResponse maps the host's answer to a request of the child back to
// the child's id.
func (r *Relay) hostResponse(m *wireMsg) {
	var id int64
	if json.Unmarshal(m.ID, &id) != nil {
		return
	}
	r.mu.Lock()
	cr, ok := r.hostReqs[id]
	delete(r.hostReqs, id)
	r.mu.Unlock()
	if !ok || cr.child.exited() {
		return
	}
	b, _ := json.Marshal(wireMsg{JSONRPC: "2.0", ID: cr.id, Result: m.Result, Error: m.Error})
	_ = cr.child.write(b)
	ev := cr.ev
	ev.Time, ev.Duration, ev.Outcome = r.cfg.Now(), r.cfg.Now().Sub(cr.start), audit.OK
	if m.Error != nil {
		ev.Outcome = audit.Failed
	}
	_ = r.record(context.Background(), ev)
}

// childRequest decides a request the child makes of the host.
func (r *Relay) childRequest(c *child, m *wireMsg) {
	reply := func(result json.RawMessage, e *rpcError) {
		b, _ := json.Marshal(wireMsg{JSONRPC: "2.0", ID: m.ID, Result: result, Error: e})
		_ = c.write(b)
	}
	var allowed bool
	var knob string
	switch m.Method {
	case "ping":
		reply(json.RawMessage("{}"), nil)
		return
	case "sampling/createMessage":
		allowed, knob = r.rules.AllowSampling, "allow_sampling"
	case "elicitation/create":
		allowed, knob = r.rules.AllowElicitation, "allow_elicitation"
	case "roots/list":
		allowed, knob = r.rules.AllowRoots, "allow_roots"
	default:
		reply(nil, &rpcError{Code: codeMethodNotFound, Message: fmt.Sprintf("idmcp wrap does not relay %q to the host", truncate(m.Method, 64))})
		return
	}
	p := r.principal.Load()
	ev := r.event(p, m.Method)
	ev.Tool, ev.Arguments = r.cfg.Command, m.Params
	if !allowed {
		ev.Decision, ev.Reason = audit.Deny, "the wrapped server asked; refused by the policy ("+knob+" = false)"
		_ = r.record(context.Background(), ev)
		reply(nil, &rpcError{Code: codeInvalidRequest, Message: "refused by idmcp wrap: the policy does not set " + knob})
		return
	}
	ev.Decision, ev.Reason = audit.Allow, "the wrapped server asked; allowed by "+knob
	intentID, err := r.intent(context.Background(), ev)
	if err != nil {
		reply(nil, &rpcError{Code: codeInternal, Message: "audit log unavailable; request refused"})
		return
	}
	ev.IntentID = intentID // the outcome row names its intent
	r.mu.Lock()
	r.nextHostID++
	id := r.nextHostID
	r.hostReqs[id] = childRequest{child: c, id: m.ID, method: m.Method, ev: ev, start: time.Now()}
	r.mu.Unlock()
	b, _ := json.Marshal(wireMsg{JSONRPC: "2.0", ID: itoa(id), Method: m.Method, Params: m.Params})
	r.toHost(b)
}

// childNotification relays what the child tells the host: progress,
// logging, list changes (the next list is filtered again), and resource
// updates for URIs the caller may see.
func (r *Relay) childNotification(c *child, m *wireMsg, raw []byte) {
	switch m.Method {
	case "notifications/resources/updated":
		var hp hostParams
		_ = json.Unmarshal(m.Params, &hp)
		if !r.rules.DecideResource(r.principal.Load(), hp.URI).Allow {
			return
		}
	case "notifications/cancelled":
		var hp hostParams
		if json.Unmarshal(m.Params, &hp) != nil {
			return
		}
		r.mu.Lock()
		var hostID int64
		for id, cr := range r.hostReqs {
			if cr.child == c && idKey(cr.id) == idKey(hp.RequestID) {
				hostID = id
			}
		}
		r.mu.Unlock()
		if hostID == 0 {
			return
		}
		var params map[string]json.RawMessage
		_ = json.Unmarshal(m.Params, &params)
		params["requestId"] = itoa(hostID)
		m.Params, _ = json.Marshal(params)
		raw, _ = json.Marshal(wireMsg{JSONRPC: "2.0", Method: m.Method, Params: m.Params})
	}
	r.toHost(raw)
}
