package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/idmcp/idmcp/store/audit"
)

type discardAudit struct{}

func (discardAudit) Append(context.Context, audit.Event) error { return nil }

// ListTools starts a child with start, initializes it as the relay would
// (no host capabilities), and returns every tool of its tools/list, all
// pages, unfiltered; then it stops the child. It is `idmcp policy check
// -- CMD`: the live list to hold against the policy. Nothing is audited.
func ListTools(ctx context.Context, start Starter, version string, logger *slog.Logger) ([]json.RawMessage, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r, err := New(Config{Gate: nopGate{}, Audit: discardAudit{}, Start: start, Version: version, Logger: logger})
	if err != nil {
		return nil, err
	}
	c, err := r.startChild(ctx, nil, 0)
	if err != nil {
		return nil, err
	}
	defer c.shutdown(r.cfg.ShutdownGrace)
	var tools []json.RawMessage
	cursor := ""
	for range 100 {
		params := json.RawMessage("{}")
		if cursor != "" {
			params, _ = json.Marshal(map[string]string{"cursor": cursor})
		}
		resp := make(chan *wireMsg, 1)
		if err := c.send("tools/list", params, nil, func(m *wireMsg) { resp <- m }); err != nil {
			return nil, err
		}
		var m *wireMsg
		select {
		case m = <-resp:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if m == nil {
			return nil, fmt.Errorf("%w (%s) before answering tools/list", ErrChildGone, c.exitText())
		}
		if m.Error != nil {
			return nil, fmt.Errorf("tools/list: %s", truncate(m.Error.Message, 200))
		}
		var page struct {
			Tools      []json.RawMessage `json:"tools"`
			NextCursor string            `json:"nextCursor"`
		}
		if err := json.Unmarshal(m.Result, &page); err != nil {
			return nil, fmt.Errorf("tools/list result: %w", err)
		}
		tools = append(tools, page.Tools...)
		if cursor = page.NextCursor; cursor == "" {
			return tools, nil
		}
	}
	return tools, fmt.Errorf("tools/list: more than 100 pages")
}
