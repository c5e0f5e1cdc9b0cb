// Package store owns what idmcp keeps in its data dir: the SQLite database of
// tool data (todos), the host profile file, and the shared SQLite opening
// rules (pragmas, embedded migrations) that the audit log in store/audit
// uses too.
//
// It depends on the domain types of package auth, never the reverse.
package store
