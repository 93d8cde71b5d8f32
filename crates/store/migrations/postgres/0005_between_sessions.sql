-- Between sessions (issue 6): patient check-in links, what the patient answered through them,
-- safety answers stored first, clinic settings, and the at-home programme.
-- Keep in step with ../sqlite/0005_between_sessions.sql: the same tables, columns and
-- constraint names.

-- What a site tells its patients between sessions: its own crisis instructions (shown with the
-- site's crisis line, sites.crisis_line) and the clinic's phone number. Without a row the
-- wording in data/rules/remote-safety.toml is used (issue 6).
CREATE TABLE site_patient_settings (
    site_id BIGINT PRIMARY KEY REFERENCES sites(id),
    crisis_instructions TEXT NOT NULL,
    clinic_phone TEXT,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- Clinic-wide settings as JSON documents (relapse watch, home pre-dose intervals, link
-- validity). Each row names who set it and when; the audit trail keeps the history.
CREATE TABLE clinic_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- A clinician's change to one course's check-in schedule (checkins::ScheduleOverride).
-- Append-only: the latest row for the course counts.
CREATE TABLE checkin_overrides (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    course_id BIGINT NOT NULL REFERENCES courses(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    override_json TEXT NOT NULL,
    set_at BIGINT NOT NULL,
    set_by TEXT NOT NULL
);
CREATE INDEX checkin_overrides_course ON checkin_overrides(course_id, id);

-- One link per check-in occurrence. Only the SHA-256 of the token is kept, so a copy of
-- the database cannot open anyone's check-in.
CREATE TABLE checkin_links (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash TEXT NOT NULL CONSTRAINT checkin_links_token_unique UNIQUE,
    purpose TEXT NOT NULL CONSTRAINT checkin_links_purpose CHECK (purpose IN ('checkin', 'pre_dose', 'sitter')),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    course_id BIGINT REFERENCES courses(id),
    session_id BIGINT REFERENCES sessions(id),
    parent_link_id BIGINT REFERENCES checkin_links(id),
    item_key TEXT NOT NULL,
    form TEXT NOT NULL,
    form_kind TEXT NOT NULL,
    opens_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    first_opened_at BIGINT,
    progress TEXT,
    progress_saved_at BIGINT,
    completed_at BIGINT,
    expired_at BIGINT,
    result_kind TEXT,
    result_id BIGINT,
    CONSTRAINT checkin_links_window CHECK (expires_at > opens_at)
);
CREATE UNIQUE INDEX checkin_links_occurrence ON checkin_links(patient_id, course_id, item_key, purpose);
CREATE INDEX checkin_links_patient ON checkin_links(patient_id, opens_at);
CREATE INDEX checkin_links_open ON checkin_links(expires_at) WHERE completed_at IS NULL AND expired_at IS NULL;

-- What happened to each link: issued, reminder_sent, reminder_failed, opened, saved,
-- completed, expired, refused_used, refused_expired, refused_early. Append-only.
CREATE TABLE checkin_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id BIGINT NOT NULL REFERENCES checkin_links(id),
    event TEXT NOT NULL,
    at BIGINT NOT NULL,
    detail TEXT
);
CREATE INDEX checkin_events_link ON checkin_events(link_id, id);

-- A positive safety answer, stored in its own transaction before anything else is done with
-- the submission (issue 6: "No safety answer can be lost"). Append-only.
CREATE TABLE safety_answers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id BIGINT NOT NULL REFERENCES checkin_links(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    instrument TEXT NOT NULL,
    item BIGINT NOT NULL,
    answer BIGINT NOT NULL,
    flag_code TEXT NOT NULL,
    answered_at BIGINT NOT NULL,
    alert_id BIGINT NOT NULL REFERENCES alerts(id)
);
CREATE UNIQUE INDEX safety_answers_once ON safety_answers(link_id, flag_code);
CREATE INDEX safety_answers_patient ON safety_answers(patient_id, answered_at);

-- Answers to Keta's own question sets (after-session, urinary symptoms): not instruments.
CREATE TABLE question_set_responses (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id BIGINT REFERENCES checkin_links(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    course_id BIGINT REFERENCES courses(id),
    set_code TEXT NOT NULL,
    answers TEXT NOT NULL,
    flags TEXT NOT NULL,
    completed_at BIGINT NOT NULL
);
CREATE INDEX question_set_responses_patient ON question_set_responses(patient_id, completed_at);

-- At-home programme: supplies handed to the patient, in units of one strength.
CREATE TABLE home_dispenses (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    course_id BIGINT NOT NULL REFERENCES courses(id),
    dispensed_at BIGINT NOT NULL,
    units BIGINT NOT NULL CONSTRAINT home_dispenses_units_positive CHECK (units > 0),
    unit_strength_mg DOUBLE PRECISION NOT NULL CONSTRAINT home_dispenses_strength_positive CHECK (unit_strength_mg > 0),
    dispensed_by TEXT NOT NULL,
    note TEXT
);
CREATE INDEX home_dispenses_course ON home_dispenses(course_id, dispensed_at);

-- The pre-dose screen the patient answered before a home dose, and the sitter's confirmation.
CREATE TABLE pre_dose_screens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id BIGINT NOT NULL CONSTRAINT pre_dose_screens_link_unique UNIQUE REFERENCES checkin_links(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    course_id BIGINT NOT NULL REFERENCES courses(id),
    answers TEXT NOT NULL,
    sitter_name TEXT NOT NULL,
    sitter_contact TEXT,
    sitter_link_id BIGINT REFERENCES checkin_links(id),
    sitter_confirmed_at BIGINT,
    outcome TEXT NOT NULL CONSTRAINT pre_dose_screens_outcome CHECK (outcome IN ('awaiting_sitter', 'cleared', 'refused')),
    refusals TEXT NOT NULL,
    submitted_at BIGINT NOT NULL,
    decided_at BIGINT,
    reviewed_at BIGINT,
    reviewed_by TEXT,
    review_note TEXT
);
CREATE INDEX pre_dose_screens_course ON pre_dose_screens(course_id, submitted_at);

-- Doses the patient logged taking at home, with the count of units left when given.
CREATE TABLE home_dose_logs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    course_id BIGINT NOT NULL REFERENCES courses(id),
    screen_id BIGINT REFERENCES pre_dose_screens(id),
    link_id BIGINT REFERENCES checkin_links(id),
    taken_at BIGINT NOT NULL,
    units BIGINT NOT NULL CONSTRAINT home_dose_logs_units_positive CHECK (units > 0),
    units_left BIGINT,
    logged_at BIGINT NOT NULL
);
CREATE INDEX home_dose_logs_course ON home_dose_logs(course_id, taken_at);

CREATE FUNCTION between_sessions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER checkin_events_no_update BEFORE UPDATE OR DELETE ON checkin_events FOR EACH ROW EXECUTE FUNCTION between_sessions_append_only();
CREATE TRIGGER safety_answers_no_update BEFORE UPDATE OR DELETE ON safety_answers FOR EACH ROW EXECUTE FUNCTION between_sessions_append_only();
CREATE TRIGGER home_dose_logs_no_delete BEFORE DELETE ON home_dose_logs FOR EACH ROW EXECUTE FUNCTION between_sessions_append_only();
CREATE TRIGGER home_dispenses_no_delete BEFORE DELETE ON home_dispenses FOR EACH ROW EXECUTE FUNCTION between_sessions_append_only();
