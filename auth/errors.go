package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies an authentication or authorization failure so that each
// transport can map it in one table (HTTP status and WWW-Authenticate, or a
// JSON-RPC error).
type Kind int

// Error kinds.
const (
	// KindUnauthenticated: no credential, or one that does not match.
	KindUnauthenticated Kind = iota + 1
	// KindInvalidToken: a bearer token was presented but is not acceptable.
	KindInvalidToken
	// KindInsufficientScope: authenticated, but the tool needs scopes the caller lacks.
	KindInsufficientScope
	// KindMissingRole: authenticated, but the tool accepts none of the caller's roles.
	KindMissingRole
	// KindNotFound: the tool is unknown or disabled (no hint which).
	KindNotFound
	// KindUnavailable: the server cannot decide right now (keys not loaded, audit down).
	KindUnavailable
)

func (k Kind) String() string {
	switch k {
	case KindUnauthenticated:
		return "unauthenticated"
	case KindInvalidToken:
		return "invalid_token"
	case KindInsufficientScope:
		return "insufficient_scope"
	case KindMissingRole:
		return "missing_role"
	case KindNotFound:
		return "not_found"
	case KindUnavailable:
		return "unavailable"
	}
	return "unknown"
}

// Error is a typed auth outcome. Its message says what was missing and what
// to do about it, and never contains a secret.
type Error struct {
	Kind Kind
	// Tool is the tool the decision was about, if any.
	Tool string
	// Scopes lists the scopes that were required and missing (KindInsufficientScope).
	Scopes []string
	// Required lists every scope the tool needs, for step-up challenges.
	Required []string
	// Roles lists the roles the tool accepts (KindMissingRole).
	Roles []string
	// Msg is the human-readable reason, safe to show the caller.
	Msg string
	// Err is an underlying cause; it is not part of Error() so that internal
	// details (which may be sensitive) reach only the audit reason.
	Err error
}

// Error returns the caller-safe message.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of the first *Error in err's chain, or 0.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// Unauthenticated builds a KindUnauthenticated error. The message starts with
// "authentication failed: " so users and clients recognise it.
func Unauthenticated(format string, args ...any) *Error {
	return &Error{Kind: KindUnauthenticated, Msg: "authentication failed: " + fmt.Sprintf(format, args...)}
}

// InsufficientScope builds the error for a tool whose scopes the caller lacks.
func InsufficientScope(tool string, missing, required []string) *Error {
	return &Error{
		Kind: KindInsufficientScope, Tool: tool, Scopes: missing, Required: required,
		Msg: fmt.Sprintf("forbidden: tool %q requires scope %s; missing: %s",
			tool, strings.Join(required, " "), strings.Join(missing, " ")),
	}
}

// MissingRole builds the error for a tool that accepts none of the caller's roles.
func MissingRole(tool string, accepted []string) *Error {
	return &Error{
		Kind: KindMissingRole, Tool: tool, Roles: accepted,
		Msg: fmt.Sprintf("forbidden: tool %q requires role %s", tool, strings.Join(accepted, " or ")),
	}
}

// NotFound builds the error for an unknown or disabled tool. The message
// does not echo the name: it came from the caller and may be anything,
// including a pasted secret; the audit row records it (redacted).
func NotFound(tool string) *Error {
	return &Error{Kind: KindNotFound, Tool: tool, Msg: "tool not found"}
}
