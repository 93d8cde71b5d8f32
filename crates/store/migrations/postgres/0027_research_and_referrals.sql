-- Referral import and the de-identified research export. Keep in step with
-- ../sqlite/0027_research_and_referrals.sql: the same tables, columns and constraint names.
--
-- Scores reported by a referring clinician (e.g. prior PHQ-9 totals from a FHIR Observation):
-- only the total and the date are known, not the answers, so they are kept apart from the
-- questionnaires answered at the clinic and never count as a course's baseline.
CREATE TABLE prior_scores (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    instrument TEXT NOT NULL,
    total BIGINT NOT NULL,
    observed_on TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX prior_scores_patient ON prior_scores(patient_id, observed_on);

-- One row per patient ever included in a research export: a random research id and a random
-- date shift in days. Both are secret: the shift is never exported, and the research id is
-- not derived from anything in the chart. Kept so that every export shifts a patient's dates
-- the same way.
CREATE TABLE research_subjects (
    patient_id BIGINT PRIMARY KEY REFERENCES patients(id),
    research_id TEXT NOT NULL CONSTRAINT research_subjects_research_id_unique UNIQUE,
    date_offset_days BIGINT NOT NULL CONSTRAINT research_subjects_offset_nonzero CHECK (date_offset_days <> 0),
    created_at BIGINT NOT NULL
);
