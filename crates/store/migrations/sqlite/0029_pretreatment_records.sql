-- Pre-treatment confirmations and caution decisions as records. Keep in step with
-- ../postgres/0029_pretreatment_records.sql.
--
-- When a course is planned the prescriber confirms each pre-treatment check of the route
-- (clinical-reference §3.3) and decides each caution the eligibility assessment found (§3.2):
-- the benefit, the risk weighed against it, and why. The wording is copied in, so the record
-- reads as it was confirmed. Rows are never changed or deleted.
CREATE TABLE pretreatment_confirmations (
    id INTEGER PRIMARY KEY,
    course_id INTEGER NOT NULL REFERENCES courses(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    check_code TEXT NOT NULL,
    check_label TEXT NOT NULL,
    confirmed_by TEXT NOT NULL,
    confirmed_at INTEGER NOT NULL,
    UNIQUE (course_id, check_code)
);
CREATE INDEX pretreatment_confirmations_patient ON pretreatment_confirmations(patient_id, course_id);

CREATE TABLE caution_decisions (
    id INTEGER PRIMARY KEY,
    course_id INTEGER NOT NULL REFERENCES courses(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    caution_code TEXT NOT NULL,
    caution_label TEXT NOT NULL,
    benefit TEXT NOT NULL,
    risk TEXT NOT NULL,
    reason TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at INTEGER NOT NULL,
    UNIQUE (course_id, caution_code)
);
CREATE INDEX caution_decisions_patient ON caution_decisions(patient_id, course_id);

CREATE TRIGGER pretreatment_confirmations_kept_u BEFORE UPDATE ON pretreatment_confirmations
BEGIN SELECT RAISE(ABORT, 'pre-treatment confirmations are kept as confirmed'); END;
CREATE TRIGGER pretreatment_confirmations_kept_d BEFORE DELETE ON pretreatment_confirmations
BEGIN SELECT RAISE(ABORT, 'pre-treatment confirmations are kept as confirmed'); END;
CREATE TRIGGER caution_decisions_kept_u BEFORE UPDATE ON caution_decisions
BEGIN SELECT RAISE(ABORT, 'caution decisions are kept as decided'); END;
CREATE TRIGGER caution_decisions_kept_d BEFORE DELETE ON caution_decisions
BEGIN SELECT RAISE(ABORT, 'caution decisions are kept as decided'); END;
