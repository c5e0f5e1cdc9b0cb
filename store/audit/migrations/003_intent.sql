-- Write-ahead intent rows (issue 13.1). A tool that is not read-only runs
-- only after an intent row (outcome 'started') is committed; its outcome row
-- names that row in intent_id (0 on every other row). The hash chain covers
-- intent_id whenever it is not 0, so rows written before this migration keep
-- their hashes.
ALTER TABLE audit_log ADD COLUMN intent_id INTEGER NOT NULL DEFAULT 0;
CREATE INDEX audit_log_intent ON audit_log (intent_id) WHERE intent_id != 0;

-- audit_calls: one row per tools/call, pairing each intent with its outcome
-- row. outcome is 'unfinished' for an intent without an outcome row (the
-- server was killed or crashed mid-call, or the call is still running).
-- Denied calls and read-only tools have a single row, shown as it is.
CREATE VIEW audit_calls AS
    SELECT i.id, i.ts, i.transport, i.session, i.subject, i.client_id, i.client_name, i.actors, i.auth_method,
           i.tool, i.arguments, i.decision,
           CASE WHEN i.outcome = 'started' THEN coalesce(o.outcome, 'unfinished') ELSE i.outcome END AS outcome,
           coalesce(o.reason, i.reason) AS reason,
           o.id AS outcome_id, o.ts AS finished_ts,
           coalesce(o.duration_us, i.duration_us) / 1000.0 AS duration_ms,
           coalesce(o.result_bytes, i.result_bytes) AS result_bytes,
           coalesce(o.result_sha256, i.result_sha256) AS result_sha256
    FROM audit_log i
    LEFT JOIN audit_log o ON i.outcome = 'started' AND o.intent_id = i.id
    WHERE i.event = 'tools/call' AND i.intent_id = 0;
