-- Kiosk mode belongs to the sign-in session: while it names a patient, the session serves
-- only that patient's kiosk pages, and staff pages refuse until the staff member re-enters
-- their password (issue 17).
ALTER TABLE auth_sessions ADD COLUMN kiosk_patient_id INTEGER REFERENCES patients(id);

-- Who wrote the session note's current text: only they may sign it as its author
-- (21 CFR 11.50 signature meaning, security-reference SIG-1).
ALTER TABLE sessions ADD COLUMN note_author_user_id INTEGER REFERENCES users(id);
ALTER TABLE sessions ADD COLUMN note_author TEXT;

-- Notes written before this migration: the author is whoever last saved the text, as the
-- audit trail recorded it.
UPDATE sessions SET note_author = (
    SELECT a.actor FROM audit_log a
    WHERE a.object_type = 'session' AND a.object_id = CAST(sessions.id AS TEXT) AND a.action = 'update' AND a.fields = '["note"]'
    ORDER BY a.seq DESC LIMIT 1
) WHERE note IS NOT NULL;
UPDATE sessions SET note_author_user_id = (SELECT u.id FROM users u WHERE u.username = sessions.note_author)
WHERE note_author IS NOT NULL;

-- The check-in sweep looks only at links still open: each patient's open links (a stopped
-- session closes them) through this index, not every link the patient ever had, so a no-op
-- sweep stays fast as links accumulate (issue 17).
CREATE INDEX checkin_links_open_patient ON checkin_links(patient_id) WHERE completed_at IS NULL AND expired_at IS NULL;
