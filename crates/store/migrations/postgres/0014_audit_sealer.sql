-- The audit chain without a global lock (docs/decisions/0005-audit-chain.md): writers append
-- entries unsealed (no chain position, no hashes) and one sealer chains committed entries
-- in order of `seq`, giving each its position in the chain (`chain_seq`) and its hashes.
ALTER TABLE audit_log ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_log ALTER COLUMN prev_hash DROP NOT NULL;
ALTER TABLE audit_log ALTER COLUMN row_hash DROP NOT NULL;

-- Append-only, with one exception: an entry is sealed once. An update may only give an
-- entry without a chain position its position (and, if it has none, its hashes), changing
-- nothing it recorded; a sealed entry never changes, and no entry is ever deleted.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.chain_seq IS NULL AND NEW.chain_seq IS NOT NULL
       AND NEW.seq = OLD.seq AND NEW.occurred_at = OLD.occurred_at AND NEW.actor = OLD.actor
       AND NEW.action = OLD.action AND NEW.object_type = OLD.object_type
       AND NEW.object_id IS NOT DISTINCT FROM OLD.object_id
       AND NEW.patient_id IS NOT DISTINCT FROM OLD.patient_id
       AND NEW.site_id IS NOT DISTINCT FROM OLD.site_id
       AND NEW.fields = OLD.fields AND NEW.outcome = OLD.outcome
       AND NEW.prev_hash IS NOT NULL AND NEW.row_hash IS NOT NULL
       AND (OLD.row_hash IS NULL OR (NEW.row_hash = OLD.row_hash AND NEW.prev_hash = OLD.prev_hash))
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;

-- Entries chained before this migration keep their place: the chain was in `seq` order.
UPDATE audit_log SET chain_seq = seq;

CREATE UNIQUE INDEX audit_log_chain ON audit_log(chain_seq);
-- What the sealer looks for: entries not yet chained, oldest first.
CREATE INDEX audit_log_unsealed ON audit_log(seq) WHERE chain_seq IS NULL;
