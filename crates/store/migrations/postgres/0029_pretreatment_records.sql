-- Pre-treatment confirmations and caution decisions as records. Keep in step with
-- ../sqlite/0029_pretreatment_records.sql.
--
-- When a course is planned the prescriber confirms each pre-treatment check of the route
-- (clinical-reference §3.3) and decides each caution the eligibility assessment found (§3.2):
-- the benefit, the risk weighed against it, and why. The wording is copied in, so the record
-- reads as it was confirmed. Rows are never changed or deleted.
CREATE TABLE pretreatment_confirmations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    course_id BIGINT NOT NULL REFERENCES courses(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    check_code TEXT NOT NULL,
    check_label TEXT NOT NULL,
    confirmed_by TEXT NOT NULL,
    confirmed_at BIGINT NOT NULL,
    UNIQUE (course_id, check_code)
);
CREATE INDEX pretreatment_confirmations_patient ON pretreatment_confirmations(patient_id, course_id);

CREATE TABLE caution_decisions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    course_id BIGINT NOT NULL REFERENCES courses(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    caution_code TEXT NOT NULL,
    caution_label TEXT NOT NULL,
    benefit TEXT NOT NULL,
    risk TEXT NOT NULL,
    reason TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at BIGINT NOT NULL,
    UNIQUE (course_id, caution_code)
);
CREATE INDEX caution_decisions_patient ON caution_decisions(patient_id, course_id);

CREATE FUNCTION pretreatment_records_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pre-treatment confirmations and caution decisions are kept as recorded';
END;
$$;
CREATE TRIGGER pretreatment_confirmations_kept BEFORE UPDATE OR DELETE ON pretreatment_confirmations
    FOR EACH ROW EXECUTE FUNCTION pretreatment_records_kept();
CREATE TRIGGER caution_decisions_kept BEFORE UPDATE OR DELETE ON caution_decisions
    FOR EACH ROW EXECUTE FUNCTION pretreatment_records_kept();
