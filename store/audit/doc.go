// Package audit owns the audit log: the Event model, argument redaction, and
// the SQLite file (audit.db) where every decision and outcome is one row. It
// does not decide anything and knows nothing of MCP: the server hands it
// events.
//
// Rows are written by one goroutine that commits them in groups: whatever is
// queued while a transaction is open joins it (up to MaxBatch), so at low
// load a caller waits for one small commit and at high load many share one.
// Append returns only after the row is committed; when the file cannot be
// written, Append and Healthy fail (wrapping ErrUnavailable) so the caller
// can fail closed. The WAL is checkpointed beside the writer, on a second
// connection, rather than inside its commits (checkpoint.go).
//
// Rows form a SHA-256 hash chain; Reader.Verify walks it and reports the
// first row that was edited, removed, inserted or moved. Prune is the one
// supported way to delete rows: it leaves a checkpoint that Verify starts
// from. Reader.Select runs ad-hoc SQL on a read-only connection. SCHEMA.md
// documents the tables, views and example queries (`idmcp audit schema`).
//
// Audit never goes through slog: a failed write is an error the caller must
// act on (fail closed), not a log line that can be dropped.
package audit
