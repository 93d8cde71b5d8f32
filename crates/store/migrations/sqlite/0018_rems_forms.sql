-- The SPRAVATO REMS Patient Monitoring Form (issue 12). Keep in step with ../postgres/0018_rems_forms.sql.
-- One row per esketamine session: the clinician's answers for what the session record lacks
-- (the rest of the form is read from the record), and its submission to the REMS.
CREATE TABLE rems_forms (
    session_id INTEGER PRIMARY KEY REFERENCES sessions(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    answers TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    confirmation_number TEXT,
    submitted_on TEXT,
    submitted_by TEXT,
    submitted_at INTEGER
);
CREATE INDEX rems_forms_site ON rems_forms(site_id, submitted_at);
CREATE TRIGGER rems_forms_no_delete BEFORE DELETE ON rems_forms BEGIN SELECT RAISE(ABORT, 'REMS monitoring forms are kept'); END;
CREATE TRIGGER rems_forms_submitted_fixed BEFORE UPDATE ON rems_forms WHEN OLD.submitted_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a submitted REMS monitoring form is not changed'); END;
