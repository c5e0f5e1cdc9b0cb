// Package tools owns the built-in tools and the Spec every tool, built-in or
// a program's own, is declared with: name, description, input schema,
// required scopes, accepted roles, annotations and a handler that receives
// the authenticated Principal.
//
// Tools do not know about MCP or transports; package server registers them,
// gates them and audits them.
package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/idmcp/idmcp/auth"
)

// Handler runs a tool for principal p with the raw JSON arguments. Errors
// wrapping ErrInput (bad arguments, missing records) are shown to the model as
// tool errors; other errors are internal.
type Handler func(ctx context.Context, p *auth.Principal, args json.RawMessage) (*Result, error)

// Result is what a tool returns: text for the model and, optionally, a
// structured value (returned as MCP structuredContent).
type Result struct {
	Text       string
	Structured any
}

// ErrInput marks an error caused by the caller's arguments.
var ErrInput = errors.New("invalid input")

// Spec declares a tool.
type Spec struct {
	Name        string
	Title       string
	Description string
	// InputSchema is a JSON Schema object for the arguments.
	InputSchema json.RawMessage
	// Scopes are all required; Roles, when not empty, at least one.
	Scopes []string
	Roles  []string
	// Annotations for hosts' confirmation UIs (MCP ToolAnnotations).
	ReadOnly    bool
	Destructive bool
	Idempotent  bool
	Handler     Handler
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate checks that the spec is usable.
func (s Spec) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("tool name %q: use 1-64 letters, digits, '_' or '-'", s.Name)
	}
	if s.Description == "" {
		return fmt.Errorf("tool %q: empty description", s.Name)
	}
	if s.Handler == nil {
		return fmt.Errorf("tool %q: nil handler", s.Name)
	}
	var schema map[string]any
	if err := json.Unmarshal(s.InputSchema, &schema); err != nil || schema["type"] != "object" {
		return fmt.Errorf("tool %q: input schema must be a JSON object schema with \"type\": \"object\"", s.Name)
	}
	return nil
}

// Requirement returns the spec's authorization requirement.
func (s Spec) Requirement() auth.Requirement {
	return auth.Requirement{Scopes: s.Scopes, Roles: s.Roles}
}

// Decode unmarshals args into v strictly: unknown fields are an input error,
// so a typo in an argument name is reported, not silently ignored.
func Decode(args json.RawMessage, v any) error {
	if len(bytes.TrimSpace(args)) == 0 || string(bytes.TrimSpace(args)) == "null" {
		args = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("arguments: %v: %w", err, ErrInput)
	}
	return nil
}

// JSONResult returns a Result with v as structured content and as indented
// JSON text.
func JSONResult(v any) (*Result, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return &Result{Text: string(b), Structured: v}, nil
}
