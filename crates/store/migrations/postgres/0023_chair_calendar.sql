-- The chair calendar (issue 15). Keep in step with ../sqlite/0023_chair_calendar.sql: the
-- same table, columns and constraint names.
--
-- What happened to a booking, append-only: booked, rescheduled (from/to time and chair),
-- cancelled and no-show (with the reason), arrived (the front desk marked the patient in).
-- A session's current time and chair stay on `sessions`; this is their history.
CREATE TABLE session_calendar_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    kind TEXT NOT NULL CONSTRAINT session_calendar_events_kind CHECK (kind IN ('booked', 'rescheduled', 'cancelled', 'no_show', 'arrived')),
    reason TEXT,
    from_at BIGINT,
    to_at BIGINT,
    from_chair_id BIGINT REFERENCES chairs(id),
    to_chair_id BIGINT REFERENCES chairs(id),
    recorded_at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_by_user_id BIGINT
);
CREATE INDEX session_calendar_events_session ON session_calendar_events(session_id, id);
CREATE INDEX session_calendar_events_site ON session_calendar_events(site_id, recorded_at);
CREATE INDEX sessions_chair_time ON sessions(chair_id, scheduled_for);

CREATE FUNCTION session_calendar_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'calendar events are append-only'; END; $$;
CREATE TRIGGER session_calendar_events_no_update BEFORE UPDATE OR DELETE ON session_calendar_events
    FOR EACH ROW EXECUTE FUNCTION session_calendar_events_append_only();
