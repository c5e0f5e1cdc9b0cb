-- Keyed chain (issue 13.2). From an audit/key row on, row hashes are
-- HMAC-SHA-256 under the data dir's audit key. A prune checkpoint records the
-- key id of the rows it cut at (key_id, '' for SHA-256 rows), so a verify
-- that starts from it knows how the next row is hashed; the audit/prune row
-- that confirms the checkpoint repeats it under the chain's hash.
ALTER TABLE audit_checkpoint ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_log_key_rows ON audit_log (id) WHERE event = 'audit/key';
