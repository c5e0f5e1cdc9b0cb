package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/idmcp/idmcp/auth"
	"github.com/idmcp/idmcp/store"
)

// TodoStore is what the todo tools need from storage.
type TodoStore interface {
	ListTodos(ctx context.Context, pendingOnly bool) ([]store.Todo, error)
	CreateTodo(ctx context.Context, title, subject string) (store.Todo, error)
	CompleteTodo(ctx context.Context, id int64) error
	DeleteTodo(ctx context.Context, id int64) error
}

var _ TodoStore = (*store.Store)(nil)

// Scopes used by the built-in tools.
const (
	ScopeTodoRead  = "todo:read"
	ScopeTodoWrite = "todo:write"
	RoleAdmin      = "admin"
)

// storeErr maps storage input errors to tool input errors.
func storeErr(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return fmt.Errorf("%v: %w", err, ErrInput)
	}
	return err
}

// Todos returns the todo tools backed by s.
func Todos(s TodoStore) []Spec {
	idSchema := json.RawMessage(`{"type":"object","properties":{"id":{"type":"integer","minimum":1,"description":"The todo's id, as shown by todo_list."}},"required":["id"],"additionalProperties":false}`)
	type idArgs struct {
		ID int64 `json:"id"`
	}
	decodeID := func(args json.RawMessage) (int64, error) {
		var a idArgs
		if err := Decode(args, &a); err != nil {
			return 0, err
		}
		if a.ID < 1 {
			return 0, fmt.Errorf("id must be a positive integer: %w", ErrInput)
		}
		return a.ID, nil
	}
	return []Spec{
		{
			Name:        "todo_list",
			Title:       "List todos",
			Description: "List the shared todo items, oldest first. Set pending_only to hide completed ones.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"pending_only":{"type":"boolean","description":"Only list todos that are not done."}},"additionalProperties":false}`),
			Scopes:      []string{ScopeTodoRead},
			ReadOnly:    true, Idempotent: true,
			Handler: func(ctx context.Context, _ *auth.Principal, args json.RawMessage) (*Result, error) {
				var a struct {
					PendingOnly bool `json:"pending_only"`
				}
				if err := Decode(args, &a); err != nil {
					return nil, err
				}
				todos, err := s.ListTodos(ctx, a.PendingOnly)
				if err != nil {
					return nil, err
				}
				return JSONResult(map[string]any{"todos": todos, "count": len(todos)})
			},
		},
		{
			Name:        "todo_create",
			Title:       "Create a todo",
			Description: "Add a todo item with the given title (1-500 bytes). The caller is recorded as its creator.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"title":{"type":"string","minLength":1,"maxLength":500,"description":"What needs doing."}},"required":["title"],"additionalProperties":false}`),
			Scopes:      []string{ScopeTodoWrite},
			Handler: func(ctx context.Context, p *auth.Principal, args json.RawMessage) (*Result, error) {
				var a struct {
					Title string `json:"title"`
				}
				if err := Decode(args, &a); err != nil {
					return nil, err
				}
				t, err := s.CreateTodo(ctx, strings.TrimSpace(a.Title), p.Subject)
				if err != nil {
					return nil, storeErr(err)
				}
				return JSONResult(t)
			},
		},
		{
			Name:        "todo_complete",
			Title:       "Complete a todo",
			Description: "Mark the todo with the given id as done. Completing a done todo changes nothing.",
			InputSchema: idSchema,
			Scopes:      []string{ScopeTodoWrite},
			Idempotent:  true,
			Handler: func(ctx context.Context, _ *auth.Principal, args json.RawMessage) (*Result, error) {
				id, err := decodeID(args)
				if err != nil {
					return nil, err
				}
				if err := s.CompleteTodo(ctx, id); err != nil {
					return nil, storeErr(err)
				}
				return JSONResult(map[string]any{"id": id, "done": true})
			},
		},
		{
			Name:        "todo_delete",
			Title:       "Delete a todo",
			Description: "Delete the todo with the given id permanently.",
			InputSchema: idSchema,
			Scopes:      []string{ScopeTodoWrite},
			Roles:       []string{RoleAdmin},
			Destructive: true, Idempotent: true,
			Handler: func(ctx context.Context, _ *auth.Principal, args json.RawMessage) (*Result, error) {
				id, err := decodeID(args)
				if err != nil {
					return nil, err
				}
				if err := s.DeleteTodo(ctx, id); err != nil {
					return nil, storeErr(err)
				}
				return JSONResult(map[string]any{"id": id, "deleted": true})
			},
		},
	}
}
