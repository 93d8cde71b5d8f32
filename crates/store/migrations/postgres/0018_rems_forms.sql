-- The SPRAVATO REMS Patient Monitoring Form (issue 12). Keep in step with ../sqlite/0018_rems_forms.sql.
-- One row per esketamine session: the clinician's answers for what the session record lacks
-- (the rest of the form is read from the record), and its submission to the REMS.
CREATE TABLE rems_forms (
    session_id BIGINT PRIMARY KEY REFERENCES sessions(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    answers TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    confirmation_number TEXT,
    submitted_on TEXT,
    submitted_by TEXT,
    submitted_at BIGINT
);
CREATE INDEX rems_forms_site ON rems_forms(site_id, submitted_at);
CREATE FUNCTION rems_forms_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'REMS monitoring forms are kept';
    END IF;
    IF OLD.submitted_at IS NOT NULL THEN
        RAISE EXCEPTION 'a submitted REMS monitoring form is not changed';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER rems_forms_kept BEFORE UPDATE OR DELETE ON rems_forms FOR EACH ROW EXECUTE FUNCTION rems_forms_kept();
