package audit

import (
	"context"
	_ "embed" // SCHEMA.md
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"

	"modernc.org/sqlite"
)

//go:embed SCHEMA.md
var schemaDoc string

// SchemaDoc returns the documentation of the audit database: tables, views,
// the hash chain and example queries (`idmcp audit schema`).
func SchemaDoc() string { return schemaDoc }

// ErrReadOnly is wrapped when a statement given to Select tries to write.
var ErrReadOnly = errors.New("the audit database is opened read-only (mode=ro) here; rows are written only by the server, and deleted only by idmcp audit prune")

// Primary result codes: a write on a read-only connection, and an operation
// the authorizer denied.
const (
	sqliteReadOnly = 8
	sqliteAuth     = 23
)

// readOnlyAuthorizer allows what a query needs and denies the rest. mode=ro
// alone is not enough: ATTACH would open (and create) another file, or the
// audit database itself, read-write.
func readOnlyAuthorizer(action sqlite.AuthorizerActionCode, _, _, _, _ string) sqlite.AuthorizerReturnCode {
	switch action {
	case sqlite.AuthSelect, sqlite.AuthRead, sqlite.AuthFunction, sqlite.AuthRecursive,
		sqlite.AuthPragma, sqlite.AuthTransaction, sqlite.AuthSavepoint:
		return sqlite.AuthorizerOK
	}
	return sqlite.AuthorizerDeny
}

// Select runs one ad-hoc SQL statement on a read-only connection and calls
// fn with the column names and each row's values: int64, float64, string,
// nil, or, for a blob, its text when it is UTF-8 and x'…' hex otherwise. A
// statement that tries to write (or to ATTACH another file) fails with an
// error wrapping ErrReadOnly.
func (r *Reader) Select(ctx context.Context, query string, fn func(cols []string, vals []any) error) (err error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("audit sql: %w", err)
	}
	defer conn.Close()
	setAuth := func(fn sqlite.AuthorizerFn) error {
		return conn.Raw(func(dc any) error {
			ar, ok := dc.(sqlite.AuthorizerRegisterer)
			if !ok {
				return errors.New("the SQLite driver has no authorizer")
			}
			return ar.RegisterAuthorizer(fn)
		})
	}
	if err := setAuth(readOnlyAuthorizer); err != nil {
		return fmt.Errorf("audit sql: %w", err)
	}
	defer func() {
		if aerr := setAuth(nil); aerr != nil && err == nil {
			err = fmt.Errorf("audit sql: %w", aerr)
		}
	}()
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return sqlError(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return sqlError(err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return sqlError(err)
		}
		out := make([]any, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				if utf8.Valid(b) {
					v = string(b)
				} else {
					v = "x'" + hex.EncodeToString(b) + "'"
				}
			}
			out[i] = v
		}
		if err := fn(cols, out); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return sqlError(err)
	}
	return nil
}

func sqlError(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code()&0xff == sqliteReadOnly || se.Code()&0xff == sqliteAuth) {
		return fmt.Errorf("audit sql: %w (%w)", ErrReadOnly, err)
	}
	return fmt.Errorf("audit sql: %w", err)
}
