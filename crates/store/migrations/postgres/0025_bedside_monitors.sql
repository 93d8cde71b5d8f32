-- Bedside monitors over HL7 v2 / MLLP. Keep in step with ../sqlite/0025_bedside_monitors.sql:
-- the same tables, columns and constraint names.
--
-- monitor_devices   each monitor (or gateway bed) an administrator registered, by the identifier
--                   it sends (PV1-3 or MSH-4, as the server is configured), and its chair.
-- monitor_messages  every message received: its raw text (cleared after the retention period),
--                   what became of it, and its control id per device, so a retransmission is
--                   recognised and recorded once. Frames Keta could not read have no control id.
-- monitor_review    readings refused (unknown device, empty chair, implausible, time far from
--                   now): kept for the nurse, never attached to a chart.
-- monitor_vitals    the vitals rows a monitor wrote, and the nurse's confirmation or strike
--                   (an artefact) with its reason.
CREATE TABLE monitor_devices (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES sites(id),
    chair_id BIGINT NOT NULL REFERENCES chairs(id),
    identifier TEXT NOT NULL CONSTRAINT monitor_devices_identifier_unique UNIQUE,
    label TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    registered_by TEXT NOT NULL,
    retired_at BIGINT
);

CREATE TABLE monitor_messages (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_identifier TEXT,
    control_id TEXT,
    received_at BIGINT NOT NULL,
    peer TEXT NOT NULL,
    raw TEXT,
    outcome TEXT NOT NULL CONSTRAINT monitor_messages_outcome CHECK (outcome IN ('recorded', 'review', 'rejected')),
    reason TEXT,
    site_id BIGINT REFERENCES sites(id),
    session_id BIGINT REFERENCES sessions(id),
    readings BIGINT NOT NULL,
    CONSTRAINT monitor_messages_control_unique UNIQUE (device_identifier, control_id)
);
CREATE INDEX monitor_messages_received ON monitor_messages(received_at);

CREATE TABLE monitor_review (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES monitor_messages(id),
    device_identifier TEXT NOT NULL,
    site_id BIGINT REFERENCES sites(id),
    chair_id BIGINT REFERENCES chairs(id),
    observed_at BIGINT,
    reading TEXT,
    reason TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    resolved_at BIGINT,
    resolved_by TEXT,
    resolution_note TEXT
);
CREATE INDEX monitor_review_open ON monitor_review(resolved_at, received_at);

CREATE TABLE monitor_vitals (
    vitals_id BIGINT PRIMARY KEY REFERENCES vitals(id),
    message_id BIGINT NOT NULL REFERENCES monitor_messages(id),
    status TEXT NOT NULL CONSTRAINT monitor_vitals_status CHECK (status IN ('unreviewed', 'confirmed', 'struck')),
    reason TEXT,
    reviewed_at BIGINT,
    reviewed_by TEXT
);
CREATE INDEX monitor_vitals_message ON monitor_vitals(message_id);
