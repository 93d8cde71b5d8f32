-- Escalation of urgent alerts nobody acknowledged (issue 18).
-- Keep in step with ../postgres/0008_alert_escalation.sql: the same tables, columns and
-- constraint names. The clinic-wide wait (minutes) is in clinic_settings ('alert_escalation').

-- One row per escalated alert: the primary key makes escalation happen once. Who was told and
-- how the message went are recorded beside it (delivered is NULL until a send was tried).
CREATE TABLE alert_escalations (
    alert_id INTEGER PRIMARY KEY REFERENCES alerts(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    escalated_at INTEGER NOT NULL,
    after_minutes INTEGER NOT NULL,
    notified_user TEXT,
    delivered INTEGER,
    delivery_detail TEXT
);
CREATE INDEX alert_escalations_site ON alert_escalations(site_id, escalated_at);

-- Who is on duty at a site for escalations, where to reach them, and whether its boards sound.
CREATE TABLE site_on_duty (
    site_id INTEGER PRIMARY KEY REFERENCES sites(id),
    prescriber_user_id INTEGER REFERENCES users(id),
    contact_email TEXT,
    contact_phone TEXT,
    alert_sound INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
