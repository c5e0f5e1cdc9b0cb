-- The audit log: one row per decision and outcome. Rows form a SHA-256 hash
-- chain (prev_hash, hash) and the table is append-only: triggers refuse UPDATE
-- and DELETE. `idmcp audit verify` walks the chain; `idmcp audit prune` is the
-- one supported way to drop old rows and leaves a checkpoint behind.
CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    ts            TEXT    NOT NULL,  -- UTC, RFC 3339 with nanoseconds
    transport     TEXT    NOT NULL,  -- stdio | http | cli
    session       TEXT    NOT NULL,
    event         TEXT    NOT NULL,  -- auth | tools/list | tools/call | server/start | server/stop | audit/prune
    subject       TEXT    NOT NULL,  -- the human
    client_id     TEXT    NOT NULL,  -- the agent (host profile or OAuth client)
    client_name   TEXT    NOT NULL,  -- clientInfo name/version, self-reported
    actors        TEXT    NOT NULL,  -- JSON array, delegation chain, current actor first
    auth_method   TEXT    NOT NULL,
    tool          TEXT    NOT NULL,
    arguments     TEXT    NOT NULL,  -- JSON, redacted
    decision      TEXT    NOT NULL,  -- allow | deny | ''
    reason        TEXT    NOT NULL,
    outcome       TEXT    NOT NULL,  -- ok | error | ''
    duration_us   INTEGER NOT NULL,
    result_bytes  INTEGER NOT NULL,
    result_sha256 TEXT    NOT NULL,
    prev_hash     TEXT    NOT NULL,
    hash          TEXT    NOT NULL
);
CREATE INDEX audit_log_ts ON audit_log (ts);
CREATE INDEX audit_log_subject ON audit_log (subject, ts);

CREATE TABLE audit_checkpoint (
    id             INTEGER PRIMARY KEY,
    ts             TEXT    NOT NULL,
    pruned_before  TEXT    NOT NULL,
    pruned_rows    INTEGER NOT NULL,
    last_id        INTEGER NOT NULL,  -- id of the last pruned row
    last_hash      TEXT    NOT NULL   -- its hash: the first kept row's prev_hash
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only; use idmcp audit prune'); END;
CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only'); END;

CREATE VIEW audit_denials AS
    SELECT id, ts, transport, subject, client_id, actors, event, tool, reason
    FROM audit_log WHERE decision = 'deny';

CREATE VIEW audit_tool_calls AS
    SELECT id, ts, transport, subject, client_id, actors, tool, arguments, decision, reason, outcome,
           duration_us / 1000.0 AS duration_ms
    FROM audit_log WHERE event = 'tools/call';
