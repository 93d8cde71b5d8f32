-- The chair calendar (issue 15). Keep in step with ../postgres/0023_chair_calendar.sql: the
-- same table, columns and constraint names.
--
-- What happened to a booking, append-only: booked, rescheduled (from/to time and chair),
-- cancelled and no-show (with the reason), arrived (the front desk marked the patient in).
-- A session's current time and chair stay on `sessions`; this is their history.
CREATE TABLE session_calendar_events (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    kind TEXT NOT NULL CONSTRAINT session_calendar_events_kind CHECK (kind IN ('booked', 'rescheduled', 'cancelled', 'no_show', 'arrived')),
    reason TEXT,
    from_at INTEGER,
    to_at INTEGER,
    from_chair_id INTEGER REFERENCES chairs(id),
    to_chair_id INTEGER REFERENCES chairs(id),
    recorded_at INTEGER NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_by_user_id INTEGER
);
CREATE INDEX session_calendar_events_session ON session_calendar_events(session_id, id);
CREATE INDEX session_calendar_events_site ON session_calendar_events(site_id, recorded_at);
CREATE INDEX sessions_chair_time ON sessions(chair_id, scheduled_for);

CREATE TRIGGER session_calendar_events_no_update BEFORE UPDATE ON session_calendar_events BEGIN SELECT RAISE(ABORT, 'calendar events are append-only'); END;
CREATE TRIGGER session_calendar_events_no_delete BEFORE DELETE ON session_calendar_events BEGIN SELECT RAISE(ABORT, 'calendar events are append-only'); END;
