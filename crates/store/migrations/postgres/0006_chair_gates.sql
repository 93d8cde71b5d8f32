-- Safety gates in the chair (issue 18): a prescriber's documented decisions and the reasons
-- given for taking a session on another day. Keep in step with ../sqlite/0006_chair_gates.sql.
--
-- kind:
--   dose_despite_urgent_alert  a prescriber lets the dose start while `alert_id` (urgent) is open
--   discharge_despite_bp       a prescriber decides to discharge with the BP reading `vitals_id`
--   other_day                  `step` (check_in or start_dose) taken on another day than scheduled
-- Append-only: a decision is never edited; the audit trail names who recorded it.
CREATE TABLE session_decisions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    patient_id BIGINT NOT NULL REFERENCES patients(id),
    kind TEXT NOT NULL CONSTRAINT session_decisions_kind CHECK (kind IN ('dose_despite_urgent_alert', 'discharge_despite_bp', 'other_day')),
    alert_id BIGINT REFERENCES alerts(id),
    vitals_id BIGINT REFERENCES vitals(id),
    step TEXT,
    reason TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at BIGINT NOT NULL
);
CREATE INDEX session_decisions_session ON session_decisions(session_id, kind);
