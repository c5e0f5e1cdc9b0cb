// Package server owns the MCP wiring: it registers tools with mcp-go, puts
// the gate (who is this? may they?) in front of every request, audits every
// decision and outcome, and runs the transports (stdio, Streamable HTTP). It is
// the only package that imports mcp-go's server types.
//
// One request travels one way:
//
//	transport → gate (authenticate) → authorize → tool → audit row committed → response
package server
