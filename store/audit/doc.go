// Package audit owns the audit log: the Event model, argument redaction, and
// the SQLite file (audit.db) where every decision and outcome is one row.
//
// Rows are written by one goroutine that commits them in groups: whatever is
// queued when a commit starts joins that transaction, so at low load a caller
// waits for one small commit and at high load many share one. Append returns
// only after the row is durable. Rows form a SHA-256 hash chain; Verify walks
// it and reports the first row that was edited, removed, inserted or moved.
//
// Audit never goes through slog: a failed write is an error the caller must
// act on (fail closed), not a log line that can be dropped.
package audit
