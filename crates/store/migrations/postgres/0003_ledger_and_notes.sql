-- The controlled-substance ledger and signed session notes (security-reference §2.3
-- IN-1, SIG-1, SIG-2; §2.4 CS-1..CS-7; §3). Keep in step with
-- ../sqlite/0003_ledger_and_notes.sql: the same tables, columns and constraint names.
--
-- Amounts are integers in thousandths of the lot's counting unit (µL for vials, µg for
-- nasal spray devices); every table here is append-only, enforced by triggers.

CREATE TABLE cs_lots (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES sites(id),
    substance TEXT NOT NULL,
    presentation TEXT NOT NULL,
    unit TEXT NOT NULL,
    lot_number TEXT NOT NULL,
    ndc TEXT NOT NULL,
    expires_on TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX cs_lots_site ON cs_lots(site_id, substance);

CREATE TABLE cs_ledger (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lot_id BIGINT NOT NULL REFERENCES cs_lots(id),
    site_id BIGINT NOT NULL REFERENCES sites(id),
    kind TEXT NOT NULL,
    change_thousandths BIGINT NOT NULL,
    on_hand_after BIGINT NOT NULL CONSTRAINT cs_ledger_on_hand_not_negative CHECK (on_hand_after >= 0),
    amount_mg DOUBLE PRECISION NOT NULL,
    amount_ml DOUBLE PRECISION,
    occurred_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_by_user_id BIGINT,
    recorded_by_reauthenticated_at BIGINT NOT NULL,
    witness_name TEXT,
    witness_user_id BIGINT,
    witness_reauthenticated_at BIGINT,
    second_witness_name TEXT,
    second_witness_user_id BIGINT,
    second_witness_reauthenticated_at BIGINT,
    session_id BIGINT REFERENCES sessions(id),
    patient_id BIGINT REFERENCES patients(id),
    administration_id BIGINT REFERENCES cs_ledger(id),
    count_id BIGINT REFERENCES cs_ledger(id),
    corrects_id BIGINT REFERENCES cs_ledger(id),
    reverses_id BIGINT CONSTRAINT cs_ledger_reverses_unique UNIQUE REFERENCES cs_ledger(id),
    reason TEXT,
    count_physical BIGINT,
    count_expected BIGINT,
    detail TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE INDEX cs_ledger_lot ON cs_ledger(lot_id, id);
CREATE INDEX cs_ledger_site_time ON cs_ledger(site_id, occurred_at);
CREATE INDEX cs_ledger_session ON cs_ledger(session_id);

-- A count that did not match the book. Whether it is still open is derived from the
-- ledger (its count is the lot's last and the difference is unexplained).
CREATE TABLE cs_alerts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES sites(id),
    lot_id BIGINT NOT NULL REFERENCES cs_lots(id),
    entry_id BIGINT NOT NULL REFERENCES cs_ledger(id),
    message TEXT NOT NULL,
    raised_at BIGINT NOT NULL
);
CREATE INDEX cs_alerts_site ON cs_alerts(site_id, raised_at);

CREATE TABLE note_amendments (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    previous_amendment_id BIGINT CONSTRAINT note_amendments_previous_unique UNIQUE REFERENCES note_amendments(id),
    previous_sha256 TEXT NOT NULL,
    author_user_id BIGINT,
    author TEXT NOT NULL,
    printed_name TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    content_sha256 TEXT NOT NULL
);
CREATE INDEX note_amendments_session ON note_amendments(session_id, id);

CREATE TABLE note_signatures (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id),
    amendment_id BIGINT REFERENCES note_amendments(id),
    content_sha256 TEXT NOT NULL,
    signer_user_id BIGINT,
    signer TEXT NOT NULL,
    printed_name TEXT NOT NULL,
    meaning TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    reauthenticated_at BIGINT NOT NULL,
    signature_sha256 TEXT NOT NULL
);
CREATE INDEX note_signatures_session ON note_signatures(session_id, id);

CREATE FUNCTION cs_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'controlled-substance records are append-only';
END;
$$;
CREATE TRIGGER cs_lots_no_update BEFORE UPDATE OR DELETE ON cs_lots FOR EACH ROW EXECUTE FUNCTION cs_records_append_only();
CREATE TRIGGER cs_ledger_no_update BEFORE UPDATE OR DELETE ON cs_ledger FOR EACH ROW EXECUTE FUNCTION cs_records_append_only();
CREATE TRIGGER cs_alerts_no_update BEFORE UPDATE OR DELETE ON cs_alerts FOR EACH ROW EXECUTE FUNCTION cs_records_append_only();

CREATE FUNCTION signed_notes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'signed notes and amendments are append-only';
END;
$$;
CREATE TRIGGER note_amendments_no_update BEFORE UPDATE OR DELETE ON note_amendments FOR EACH ROW EXECUTE FUNCTION signed_notes_append_only();
CREATE TRIGGER note_signatures_no_update BEFORE UPDATE OR DELETE ON note_signatures FOR EACH ROW EXECUTE FUNCTION signed_notes_append_only();
