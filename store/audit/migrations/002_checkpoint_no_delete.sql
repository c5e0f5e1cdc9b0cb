-- audit_checkpoint is append-only like audit_log: without this trigger a
-- checkpoint could be deleted and re-inserted with a forged pruned_before.
CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only'); END;
