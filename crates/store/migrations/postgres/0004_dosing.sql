-- Dose calculations recorded per session with their second-person check
-- (clinical-reference §2.1; issue 5). Keep in step with ../sqlite/0004_dosing.sql:
-- the same table, columns and constraint names.
--
-- Append-only: a corrected calculation is a new record for the session; the latest
-- one counts towards the patient's cumulative exposure.

CREATE TABLE dose_records (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    protocol_id TEXT,
    route TEXT NOT NULL,
    weight_kg DOUBLE PRECISION NOT NULL,
    weight_measured_on TEXT NOT NULL,
    weight_type TEXT NOT NULL,
    dose_mg DOUBLE PRECISION NOT NULL CONSTRAINT dose_records_dose_positive CHECK (dose_mg > 0),
    dose_mg_per_kg DOUBLE PRECISION NOT NULL,
    request TEXT NOT NULL,
    calculation TEXT NOT NULL,
    calculated_by TEXT NOT NULL,
    calculated_by_user_id BIGINT,
    calculated_at BIGINT NOT NULL,
    checked_by TEXT NOT NULL,
    checked_by_user_id BIGINT,
    checked_at BIGINT NOT NULL,
    CONSTRAINT dose_records_checker_differs CHECK (checked_by <> calculated_by)
);
CREATE INDEX dose_records_session ON dose_records(session_id, id);
CREATE INDEX dose_records_patient ON dose_records(patient_id, id);

CREATE FUNCTION dose_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dose records are append-only';
END;
$$;
CREATE TRIGGER dose_records_no_update BEFORE UPDATE OR DELETE ON dose_records FOR EACH ROW EXECUTE FUNCTION dose_records_append_only();
