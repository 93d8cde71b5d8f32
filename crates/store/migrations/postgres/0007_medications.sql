-- Medications, allergies and pregnancy status as records (issue 18), so eligibility reads
-- them instead of trusting ticks, and each session's medication review.
-- Keep in step with ../sqlite/0007_medications.sql: the same tables, columns and names.

-- A patient's medications. `stopped_on` empty: current. Stopping sets it (never deleted).
CREATE TABLE medications (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    drug TEXT NOT NULL,
    dose TEXT,
    daily_dose_mg DOUBLE PRECISION,
    started_on TEXT,
    stopped_on TEXT,
    stop_reason TEXT,
    recorded_at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL
);
CREATE INDEX medications_patient ON medications(patient_id, id);

CREATE TABLE allergies (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    substance TEXT NOT NULL,
    reaction TEXT,
    severity TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL
);
CREATE INDEX allergies_patient ON allergies(patient_id, id);

-- Append-only: the latest row for the patient counts.
CREATE TABLE pregnancy_statuses (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    status TEXT NOT NULL,
    recorded_on TEXT NOT NULL,
    note TEXT,
    recorded_at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL
);
CREATE INDEX pregnancy_statuses_patient ON pregnancy_statuses(patient_id, id);

-- The medication and allergy lists confirmed with the patient at a session; `medications`
-- is a JSON list of the current medications as described then.
CREATE TABLE medication_reviews (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    reviewed_at BIGINT NOT NULL,
    reviewed_by TEXT NOT NULL,
    note TEXT,
    medications TEXT NOT NULL
);
CREATE INDEX medication_reviews_session ON medication_reviews(session_id, id);
