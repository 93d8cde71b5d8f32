-- What Keta's audit sealer does to the entries the write appends (crates/store/src/audit.rs
-- seal_postgres, migrations 0014 and 0028): the append-only row trigger, and one UPDATE per batch
-- of unsealed entries giving each its chain position and hashes (here computed in SQL; Keta
-- computes SHA-256 in Rust). bench/pg-ceiling.sh runs the trigger once and the UPDATE in a loop
-- beside the pipelined script.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
