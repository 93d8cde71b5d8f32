-- Keta foundation schema (PostgreSQL). Times are epoch milliseconds (UTC); dates are
-- ISO 'YYYY-MM-DD' text; structured values are JSON text. Keep in step with
-- ../sqlite/0001_foundation.sql: the same tables, columns and constraint names.

CREATE TABLE sites (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code TEXT NOT NULL CONSTRAINT sites_code_unique UNIQUE,
    name TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    crisis_line TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE chairs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES sites(id),
    name TEXT NOT NULL,
    CONSTRAINT chairs_site_name_unique UNIQUE (site_id, name)
);

CREATE TABLE patients (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES sites(id),
    mrn TEXT NOT NULL CONSTRAINT patients_mrn_unique UNIQUE,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    sex TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    indication TEXT NOT NULL,
    diagnoses TEXT NOT NULL DEFAULT '[]',
    referring_clinician TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX patients_site_family ON patients(site_id, family_name, given_name);

CREATE TABLE weights (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    weight_kg DOUBLE PRECISION NOT NULL,
    measured_on TEXT NOT NULL,
    weight_type TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX weights_patient ON weights(patient_id, measured_on);

CREATE TABLE antidepressant_trials (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    body TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX antidepressant_trials_patient ON antidepressant_trials(patient_id);

CREATE TABLE eligibility_assessments (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    route TEXT NOT NULL,
    body TEXT NOT NULL,
    maudsley_total INTEGER,
    blocked BOOLEAN NOT NULL,
    assessed_at BIGINT NOT NULL
);
CREATE INDEX eligibility_assessments_patient ON eligibility_assessments(patient_id, assessed_at);

CREATE TABLE courses (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    route TEXT NOT NULL,
    phase TEXT NOT NULL,
    indication TEXT NOT NULL,
    planned_sessions INTEGER NOT NULL,
    start_date TEXT NOT NULL,
    status TEXT NOT NULL,
    protocol TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX courses_patient ON courses(patient_id);

CREATE TABLE sessions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    course_id BIGINT NOT NULL REFERENCES courses(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    chair_id BIGINT REFERENCES chairs(id),
    route TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    scheduled_for BIGINT NOT NULL,
    state TEXT NOT NULL,
    checked_in_at BIGINT,
    pre_dose_checks_at BIGINT,
    dose_started_at BIGINT,
    monitoring_started_at BIGINT,
    discharged_at BIGINT,
    stopped_at BIGINT,
    stop_reason TEXT,
    planned_dose_mg DOUBLE PRECISION,
    note TEXT
);
CREATE INDEX sessions_patient ON sessions(patient_id, scheduled_for);
CREATE INDEX sessions_site_day ON sessions(site_id, scheduled_for);
CREATE INDEX sessions_course ON sessions(course_id, sequence);

CREATE TABLE vitals (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    taken_at BIGINT NOT NULL,
    systolic_mmhg DOUBLE PRECISION,
    diastolic_mmhg DOUBLE PRECISION,
    heart_rate_bpm DOUBLE PRECISION,
    spo2_pct DOUBLE PRECISION,
    resp_rate_per_min DOUBLE PRECISION,
    source TEXT NOT NULL
);
CREATE INDEX vitals_session ON vitals(session_id, taken_at);

CREATE TABLE observations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    kind TEXT NOT NULL,
    observed_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX observations_session ON observations(session_id, observed_at);

CREATE TABLE adverse_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    session_id BIGINT REFERENCES sessions(id),
    description TEXT NOT NULL,
    severity TEXT NOT NULL,
    serious BOOLEAN NOT NULL,
    action_taken TEXT NOT NULL,
    outcome TEXT NOT NULL,
    onset_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX adverse_events_patient ON adverse_events(patient_id);

CREATE TABLE questionnaire_responses (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    course_id BIGINT REFERENCES courses(id),
    session_id BIGINT REFERENCES sessions(id),
    instrument TEXT NOT NULL,
    answers TEXT NOT NULL,
    total INTEGER,
    severity TEXT,
    score TEXT NOT NULL,
    completed_at BIGINT NOT NULL,
    completed_by TEXT NOT NULL
);
CREATE INDEX questionnaire_responses_patient ON questionnaire_responses(patient_id, instrument, completed_at);

CREATE TABLE alerts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES sites(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    session_id BIGINT REFERENCES sessions(id),
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    source TEXT NOT NULL,
    raised_at BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    acknowledgement_note TEXT
);
CREATE INDEX alerts_site_open ON alerts(site_id, acknowledged_at);
CREATE INDEX alerts_patient ON alerts(patient_id, raised_at);
CREATE INDEX alerts_session ON alerts(session_id);

CREATE TABLE audit_log (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT,
    patient_id BIGINT,
    site_id BIGINT,
    fields TEXT NOT NULL DEFAULT '[]',
    outcome TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE INDEX audit_log_patient ON audit_log(patient_id, occurred_at);
