-- FHIR search reads a chart's observations by patient and time in one indexed query
-- (Observation?patient=X&date=...): vitals and session observations were indexed by session only.
CREATE INDEX vitals_patient_time ON vitals(patient_id, taken_at);
CREATE INDEX observations_patient_time ON observations(patient_id, observed_at);

-- API clients: machine accounts with read-only FHIR access to chosen sites. The bearer token
-- is shown once and stored only as its SHA-256; revoking keeps the row for the audit trail.
CREATE TABLE api_clients (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL CONSTRAINT api_clients_name_unique UNIQUE,
    scope TEXT NOT NULL CONSTRAINT api_clients_scope CHECK (scope IN ('fhir.read')),
    token_hash TEXT NOT NULL CONSTRAINT api_clients_token_unique UNIQUE,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at INTEGER,
    revoked_by TEXT,
    last_used_at INTEGER
);

CREATE TABLE api_client_sites (
    client_id INTEGER NOT NULL REFERENCES api_clients(id),
    site_id INTEGER NOT NULL REFERENCES sites(id),
    PRIMARY KEY (client_id, site_id)
);
