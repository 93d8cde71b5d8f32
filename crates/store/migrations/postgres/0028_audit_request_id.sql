-- The request that made an audit entry (its X-Request-Id), so an entry, the server's log line
-- and the problem a client was shown can be matched. NULL for work no request made (the
-- check-in sweep, imports, the CLI) and for entries written before this migration.
-- Inside the entry's hash when present (docs/decisions/0005-audit-chain.md).
ALTER TABLE audit_log ADD COLUMN request_id TEXT;

-- Sealing may not change the request id either (the rest as migration 0014).
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
       AND NEW.request_id IS NOT DISTINCT FROM OLD.request_id
       AND NEW.prev_hash IS NOT NULL AND NEW.row_hash IS NOT NULL
       AND (OLD.row_hash IS NULL OR (NEW.row_hash = OLD.row_hash AND NEW.prev_hash = OLD.prev_hash))
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
