-- The append-only row trigger of audit_log (migration 0002); bench/pg-ceiling.sh creates its function
-- from the newest migration that defines it (0028) before this file runs.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
