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
	"io"
	"reflect"
	"regexp"
	"strings"

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
		return fmt.Errorf("%s: %w", describeDecodeError(err), ErrInput)
	}
	return nil
}

// describeDecodeError words a JSON decoding error for the model: the
// argument and the expected type, not Go's type names.
func describeDecodeError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return fmt.Sprintf("argument %q must be %s, not %s", te.Field, jsonKind(te.Type), te.Value)
	case errors.As(err, &te):
		return fmt.Sprintf("arguments must be a JSON object, not %s", te.Value)
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return "arguments are not valid JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown argument " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "arguments: " + err.Error()
}

// jsonKind names a Go type as the JSON value it decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.Kind().String()
}

// UserMessage is the text a tool error shows the caller: err's message
// without the trailing ": invalid input" of the ErrInput sentinel.
func UserMessage(err error) string {
	return strings.TrimSuffix(err.Error(), ": "+ErrInput.Error())
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
