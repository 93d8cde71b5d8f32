-- Keta foundation schema (SQLite). Times are epoch milliseconds (UTC); dates are
-- ISO 'YYYY-MM-DD' text; structured values are JSON text. Keep in step with
-- ../postgres/0001_foundation.sql: the same tables, columns and constraint names.

CREATE TABLE sites (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL CONSTRAINT sites_code_unique UNIQUE,
    name TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    crisis_line TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE chairs (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    name TEXT NOT NULL,
    CONSTRAINT chairs_site_name_unique UNIQUE (site_id, name)
);

CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
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
    created_at INTEGER NOT NULL
);
CREATE INDEX patients_site_family ON patients(site_id, family_name, given_name);

CREATE TABLE weights (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    weight_kg REAL NOT NULL,
    measured_on TEXT NOT NULL,
    weight_type TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX weights_patient ON weights(patient_id, measured_on);

CREATE TABLE antidepressant_trials (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    body TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX antidepressant_trials_patient ON antidepressant_trials(patient_id);

CREATE TABLE eligibility_assessments (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    route TEXT NOT NULL,
    body TEXT NOT NULL,
    maudsley_total INTEGER,
    blocked INTEGER NOT NULL,
    assessed_at INTEGER NOT NULL
);
CREATE INDEX eligibility_assessments_patient ON eligibility_assessments(patient_id, assessed_at);

CREATE TABLE courses (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    route TEXT NOT NULL,
    phase TEXT NOT NULL,
    indication TEXT NOT NULL,
    planned_sessions INTEGER NOT NULL,
    start_date TEXT NOT NULL,
    status TEXT NOT NULL,
    protocol TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX courses_patient ON courses(patient_id);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    course_id INTEGER NOT NULL REFERENCES courses(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    chair_id INTEGER REFERENCES chairs(id),
    route TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    scheduled_for INTEGER NOT NULL,
    state TEXT NOT NULL,
    checked_in_at INTEGER,
    pre_dose_checks_at INTEGER,
    dose_started_at INTEGER,
    monitoring_started_at INTEGER,
    discharged_at INTEGER,
    stopped_at INTEGER,
    stop_reason TEXT,
    planned_dose_mg REAL,
    note TEXT
);
CREATE INDEX sessions_patient ON sessions(patient_id, scheduled_for);
CREATE INDEX sessions_site_day ON sessions(site_id, scheduled_for);
CREATE INDEX sessions_course ON sessions(course_id, sequence);

CREATE TABLE vitals (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    taken_at INTEGER NOT NULL,
    systolic_mmhg REAL,
    diastolic_mmhg REAL,
    heart_rate_bpm REAL,
    spo2_pct REAL,
    resp_rate_per_min REAL,
    source TEXT NOT NULL
);
CREATE INDEX vitals_session ON vitals(session_id, taken_at);

CREATE TABLE observations (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    kind TEXT NOT NULL,
    observed_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX observations_session ON observations(session_id, observed_at);

CREATE TABLE adverse_events (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    session_id INTEGER REFERENCES sessions(id),
    description TEXT NOT NULL,
    severity TEXT NOT NULL,
    serious INTEGER NOT NULL,
    action_taken TEXT NOT NULL,
    outcome TEXT NOT NULL,
    onset_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX adverse_events_patient ON adverse_events(patient_id);

CREATE TABLE questionnaire_responses (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    course_id INTEGER REFERENCES courses(id),
    session_id INTEGER REFERENCES sessions(id),
    instrument TEXT NOT NULL,
    answers TEXT NOT NULL,
    total INTEGER,
    severity TEXT,
    score TEXT NOT NULL,
    completed_at INTEGER NOT NULL,
    completed_by TEXT NOT NULL
);
CREATE INDEX questionnaire_responses_patient ON questionnaire_responses(patient_id, instrument, completed_at);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    session_id INTEGER REFERENCES sessions(id),
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    source TEXT NOT NULL,
    raised_at INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    acknowledgement_note TEXT
);
CREATE INDEX alerts_site_open ON alerts(site_id, acknowledged_at);
CREATE INDEX alerts_patient ON alerts(patient_id, raised_at);
CREATE INDEX alerts_session ON alerts(session_id);

CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    occurred_at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT,
    patient_id INTEGER,
    site_id INTEGER,
    fields TEXT NOT NULL DEFAULT '[]',
    outcome TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE INDEX audit_log_patient ON audit_log(patient_id, occurred_at);
