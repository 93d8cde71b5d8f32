-- Dose calculations recorded per session with their second-person check
-- (clinical-reference §2.1; issue 5). Keep in step with ../postgres/0004_dosing.sql:
-- the same table, columns and constraint names.
--
-- Append-only: a corrected calculation is a new record for the session; the latest
-- one counts towards the patient's cumulative exposure.

CREATE TABLE dose_records (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    protocol_id TEXT,
    route TEXT NOT NULL,
    weight_kg REAL NOT NULL,
    weight_measured_on TEXT NOT NULL,
    weight_type TEXT NOT NULL,
    dose_mg REAL NOT NULL CONSTRAINT dose_records_dose_positive CHECK (dose_mg > 0),
    dose_mg_per_kg REAL NOT NULL,
    request TEXT NOT NULL,
    calculation TEXT NOT NULL,
    calculated_by TEXT NOT NULL,
    calculated_by_user_id INTEGER,
    calculated_at INTEGER NOT NULL,
    checked_by TEXT NOT NULL,
    checked_by_user_id INTEGER,
    checked_at INTEGER NOT NULL,
    CONSTRAINT dose_records_checker_differs CHECK (checked_by <> calculated_by)
);
CREATE INDEX dose_records_session ON dose_records(session_id, id);
CREATE INDEX dose_records_patient ON dose_records(patient_id, id);

CREATE TRIGGER dose_records_no_update BEFORE UPDATE ON dose_records BEGIN SELECT RAISE(ABORT, 'dose records are append-only'); END;
CREATE TRIGGER dose_records_no_delete BEFORE DELETE ON dose_records BEGIN SELECT RAISE(ABORT, 'dose records are append-only'); END;
