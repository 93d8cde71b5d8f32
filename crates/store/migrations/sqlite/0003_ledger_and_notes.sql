-- The controlled-substance ledger and signed session notes (security-reference §2.3
-- IN-1, SIG-1, SIG-2; §2.4 CS-1..CS-7; §3). Keep in step with
-- ../postgres/0003_ledger_and_notes.sql: the same tables, columns and constraint names.
--
-- Amounts are integers in thousandths of the lot's counting unit (µL for vials, µg for
-- nasal spray devices); every table here is append-only, enforced by triggers.

CREATE TABLE cs_lots (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    substance TEXT NOT NULL,
    presentation TEXT NOT NULL,
    unit TEXT NOT NULL,
    lot_number TEXT NOT NULL,
    ndc TEXT NOT NULL,
    expires_on TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX cs_lots_site ON cs_lots(site_id, substance);

CREATE TABLE cs_ledger (
    id INTEGER PRIMARY KEY,
    lot_id INTEGER NOT NULL REFERENCES cs_lots(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    kind TEXT NOT NULL,
    change_thousandths INTEGER NOT NULL,
    on_hand_after INTEGER NOT NULL CONSTRAINT cs_ledger_on_hand_not_negative CHECK (on_hand_after >= 0),
    amount_mg REAL NOT NULL,
    amount_ml REAL,
    occurred_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_by_user_id INTEGER,
    recorded_by_reauthenticated_at INTEGER NOT NULL,
    witness_name TEXT,
    witness_user_id INTEGER,
    witness_reauthenticated_at INTEGER,
    second_witness_name TEXT,
    second_witness_user_id INTEGER,
    second_witness_reauthenticated_at INTEGER,
    session_id INTEGER REFERENCES sessions(id),
    patient_id INTEGER REFERENCES patients(id),
    administration_id INTEGER REFERENCES cs_ledger(id),
    count_id INTEGER REFERENCES cs_ledger(id),
    corrects_id INTEGER REFERENCES cs_ledger(id),
    reverses_id INTEGER CONSTRAINT cs_ledger_reverses_unique UNIQUE REFERENCES cs_ledger(id),
    reason TEXT,
    count_physical INTEGER,
    count_expected INTEGER,
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
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    lot_id INTEGER NOT NULL REFERENCES cs_lots(id),
    entry_id INTEGER NOT NULL REFERENCES cs_ledger(id),
    message TEXT NOT NULL,
    raised_at INTEGER NOT NULL
);
CREATE INDEX cs_alerts_site ON cs_alerts(site_id, raised_at);

CREATE TABLE note_amendments (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    previous_amendment_id INTEGER CONSTRAINT note_amendments_previous_unique UNIQUE REFERENCES note_amendments(id),
    previous_sha256 TEXT NOT NULL,
    author_user_id INTEGER,
    author TEXT NOT NULL,
    printed_name TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    content_sha256 TEXT NOT NULL
);
CREATE INDEX note_amendments_session ON note_amendments(session_id, id);

CREATE TABLE note_signatures (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    amendment_id INTEGER REFERENCES note_amendments(id),
    content_sha256 TEXT NOT NULL,
    signer_user_id INTEGER,
    signer TEXT NOT NULL,
    printed_name TEXT NOT NULL,
    meaning TEXT NOT NULL,
    signed_at INTEGER NOT NULL,
    reauthenticated_at INTEGER NOT NULL,
    signature_sha256 TEXT NOT NULL
);
CREATE INDEX note_signatures_session ON note_signatures(session_id, id);

CREATE TRIGGER cs_lots_no_update BEFORE UPDATE ON cs_lots BEGIN SELECT RAISE(ABORT, 'controlled-substance records are append-only'); END;
CREATE TRIGGER cs_lots_no_delete BEFORE DELETE ON cs_lots BEGIN SELECT RAISE(ABORT, 'controlled-substance records are append-only'); END;
CREATE TRIGGER cs_ledger_no_update BEFORE UPDATE ON cs_ledger BEGIN SELECT RAISE(ABORT, 'controlled-substance records are append-only'); END;
CREATE TRIGGER cs_ledger_no_delete BEFORE DELETE ON cs_ledger BEGIN SELECT RAISE(ABORT, 'controlled-substance records are append-only'); END;
CREATE TRIGGER cs_alerts_no_update BEFORE UPDATE ON cs_alerts BEGIN SELECT RAISE(ABORT, 'controlled-substance records are append-only'); END;
CREATE TRIGGER cs_alerts_no_delete BEFORE DELETE ON cs_alerts BEGIN SELECT RAISE(ABORT, 'controlled-substance records are append-only'); END;
CREATE TRIGGER note_amendments_no_update BEFORE UPDATE ON note_amendments BEGIN SELECT RAISE(ABORT, 'signed notes and amendments are append-only'); END;
CREATE TRIGGER note_amendments_no_delete BEFORE DELETE ON note_amendments BEGIN SELECT RAISE(ABORT, 'signed notes and amendments are append-only'); END;
CREATE TRIGGER note_signatures_no_update BEFORE UPDATE ON note_signatures BEGIN SELECT RAISE(ABORT, 'signed notes and amendments are append-only'); END;
CREATE TRIGGER note_signatures_no_delete BEFORE DELETE ON note_signatures BEGIN SELECT RAISE(ABORT, 'signed notes and amendments are append-only'); END;
