-- Between sessions (issue 6): patient check-in links, what the patient answered through them,
-- safety answers stored first, clinic settings, and the at-home programme.
-- Keep in step with ../postgres/0005_between_sessions.sql: the same tables, columns and
-- constraint names.

-- What a site tells its patients between sessions: its own crisis instructions (shown with the
-- site's crisis line, sites.crisis_line) and the clinic's phone number. Without a row the
-- wording in data/rules/remote-safety.toml is used (issue 6).
CREATE TABLE site_patient_settings (
    site_id INTEGER PRIMARY KEY REFERENCES sites(id),
    crisis_instructions TEXT NOT NULL,
    clinic_phone TEXT,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);

-- Clinic-wide settings as JSON documents (relapse watch, home pre-dose intervals, link
-- validity). Each row names who set it and when; the audit trail keeps the history.
CREATE TABLE clinic_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);

-- A clinician's change to one course's check-in schedule (checkins::ScheduleOverride).
-- Append-only: the latest row for the course counts.
CREATE TABLE checkin_overrides (
    id INTEGER PRIMARY KEY,
    course_id INTEGER NOT NULL REFERENCES courses(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    override_json TEXT NOT NULL,
    set_at INTEGER NOT NULL,
    set_by TEXT NOT NULL
);
CREATE INDEX checkin_overrides_course ON checkin_overrides(course_id, id);

-- One link per check-in occurrence. Only the SHA-256 of the token is kept, so a copy of
-- the database cannot open anyone's check-in.
CREATE TABLE checkin_links (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL CONSTRAINT checkin_links_token_unique UNIQUE,
    purpose TEXT NOT NULL CONSTRAINT checkin_links_purpose CHECK (purpose IN ('checkin', 'pre_dose', 'sitter')),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    course_id INTEGER REFERENCES courses(id),
    session_id INTEGER REFERENCES sessions(id),
    parent_link_id INTEGER REFERENCES checkin_links(id),
    item_key TEXT NOT NULL,
    form TEXT NOT NULL,
    form_kind TEXT NOT NULL,
    opens_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    first_opened_at INTEGER,
    progress TEXT,
    progress_saved_at INTEGER,
    completed_at INTEGER,
    expired_at INTEGER,
    result_kind TEXT,
    result_id INTEGER,
    CONSTRAINT checkin_links_window CHECK (expires_at > opens_at)
);
CREATE UNIQUE INDEX checkin_links_occurrence ON checkin_links(patient_id, course_id, item_key, purpose);
CREATE INDEX checkin_links_patient ON checkin_links(patient_id, opens_at);
CREATE INDEX checkin_links_open ON checkin_links(expires_at) WHERE completed_at IS NULL AND expired_at IS NULL;

-- What happened to each link: issued, reminder_sent, reminder_failed, opened, saved,
-- completed, expired, refused_used, refused_expired, refused_early. Append-only.
CREATE TABLE checkin_events (
    id INTEGER PRIMARY KEY,
    link_id INTEGER NOT NULL REFERENCES checkin_links(id),
    event TEXT NOT NULL,
    at INTEGER NOT NULL,
    detail TEXT
);
CREATE INDEX checkin_events_link ON checkin_events(link_id, id);

-- A positive safety answer, stored in its own transaction before anything else is done with
-- the submission (issue 6: "No safety answer can be lost"). Append-only.
CREATE TABLE safety_answers (
    id INTEGER PRIMARY KEY,
    link_id INTEGER NOT NULL REFERENCES checkin_links(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    instrument TEXT NOT NULL,
    item INTEGER NOT NULL,
    answer INTEGER NOT NULL,
    flag_code TEXT NOT NULL,
    answered_at INTEGER NOT NULL,
    alert_id INTEGER NOT NULL REFERENCES alerts(id)
);
CREATE UNIQUE INDEX safety_answers_once ON safety_answers(link_id, flag_code);
CREATE INDEX safety_answers_patient ON safety_answers(patient_id, answered_at);

-- Answers to Keta's own question sets (after-session, urinary symptoms): not instruments.
CREATE TABLE question_set_responses (
    id INTEGER PRIMARY KEY,
    link_id INTEGER REFERENCES checkin_links(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    course_id INTEGER REFERENCES courses(id),
    set_code TEXT NOT NULL,
    answers TEXT NOT NULL,
    flags TEXT NOT NULL,
    completed_at INTEGER NOT NULL
);
CREATE INDEX question_set_responses_patient ON question_set_responses(patient_id, completed_at);

-- At-home programme: supplies handed to the patient, in units of one strength.
CREATE TABLE home_dispenses (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    course_id INTEGER NOT NULL REFERENCES courses(id),
    dispensed_at INTEGER NOT NULL,
    units INTEGER NOT NULL CONSTRAINT home_dispenses_units_positive CHECK (units > 0),
    unit_strength_mg REAL NOT NULL CONSTRAINT home_dispenses_strength_positive CHECK (unit_strength_mg > 0),
    dispensed_by TEXT NOT NULL,
    note TEXT
);
CREATE INDEX home_dispenses_course ON home_dispenses(course_id, dispensed_at);

-- The pre-dose screen the patient answered before a home dose, and the sitter's confirmation.
CREATE TABLE pre_dose_screens (
    id INTEGER PRIMARY KEY,
    link_id INTEGER NOT NULL CONSTRAINT pre_dose_screens_link_unique UNIQUE REFERENCES checkin_links(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    course_id INTEGER NOT NULL REFERENCES courses(id),
    answers TEXT NOT NULL,
    sitter_name TEXT NOT NULL,
    sitter_contact TEXT,
    sitter_link_id INTEGER REFERENCES checkin_links(id),
    sitter_confirmed_at INTEGER,
    outcome TEXT NOT NULL CONSTRAINT pre_dose_screens_outcome CHECK (outcome IN ('awaiting_sitter', 'cleared', 'refused')),
    refusals TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    decided_at INTEGER,
    reviewed_at INTEGER,
    reviewed_by TEXT,
    review_note TEXT
);
CREATE INDEX pre_dose_screens_course ON pre_dose_screens(course_id, submitted_at);

-- Doses the patient logged taking at home, with the count of units left when given.
CREATE TABLE home_dose_logs (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    course_id INTEGER NOT NULL REFERENCES courses(id),
    screen_id INTEGER REFERENCES pre_dose_screens(id),
    link_id INTEGER REFERENCES checkin_links(id),
    taken_at INTEGER NOT NULL,
    units INTEGER NOT NULL CONSTRAINT home_dose_logs_units_positive CHECK (units > 0),
    units_left INTEGER,
    logged_at INTEGER NOT NULL
);
CREATE INDEX home_dose_logs_course ON home_dose_logs(course_id, taken_at);

CREATE TRIGGER checkin_events_no_update BEFORE UPDATE ON checkin_events BEGIN SELECT RAISE(ABORT, 'check-in events are append-only'); END;
CREATE TRIGGER checkin_events_no_delete BEFORE DELETE ON checkin_events BEGIN SELECT RAISE(ABORT, 'check-in events are append-only'); END;
CREATE TRIGGER safety_answers_no_update BEFORE UPDATE ON safety_answers BEGIN SELECT RAISE(ABORT, 'safety answers are append-only'); END;
CREATE TRIGGER safety_answers_no_delete BEFORE DELETE ON safety_answers BEGIN SELECT RAISE(ABORT, 'safety answers are append-only'); END;
CREATE TRIGGER home_dose_logs_no_delete BEFORE DELETE ON home_dose_logs BEGIN SELECT RAISE(ABORT, 'dose logs are append-only'); END;
CREATE TRIGGER home_dispenses_no_delete BEFORE DELETE ON home_dispenses BEGIN SELECT RAISE(ABORT, 'dispenses are append-only'); END;
