-- The audit chain's order is its own column (docs/decisions/0005-audit-chain.md), as on
-- PostgreSQL, where a sealer chains entries after their writers commit. SQLite's one
-- writer still chains each entry as it writes it, so here `chain_seq` follows `seq`.
ALTER TABLE audit_log ADD COLUMN chain_seq INTEGER;

-- Entries chained before this migration keep their place; the guard is lifted for this
-- one statement and put back as it was.
DROP TRIGGER audit_log_no_update;
UPDATE audit_log SET chain_seq = seq;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE UNIQUE INDEX audit_log_chain ON audit_log(chain_seq);
