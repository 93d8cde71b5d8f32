-- FHIR Bulk Data export ($export): the job state lives here so that any instance can answer a
-- status poll, a download or a cancel; the NDJSON files live under the bulk export directory
-- (shared by the instances), one folder per job. `marks` holds the highest record id of each
-- exported table at the transaction time: the export holds exactly the records that existed then.
CREATE TABLE bulk_exports (
    id TEXT PRIMARY KEY,
    requested_by TEXT NOT NULL,
    role TEXT,
    site_ids TEXT NOT NULL,
    request_url TEXT NOT NULL,
    level TEXT NOT NULL CONSTRAINT bulk_exports_level CHECK (level IN ('system', 'patient', 'group')),
    site_id INTEGER REFERENCES sites(id),
    types TEXT NOT NULL,
    since_at INTEGER,
    marks TEXT NOT NULL,
    transaction_at INTEGER NOT NULL,
    status TEXT NOT NULL CONSTRAINT bulk_exports_status CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    progress TEXT NOT NULL,
    output TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    runner TEXT NOT NULL,
    finished_at INTEGER
);
CREATE INDEX bulk_exports_created ON bulk_exports(created_at);

-- OAuth2 client credentials: short-lived access tokens issued to API clients, stored only as
-- their SHA-256. A token works only while its client is not revoked.
CREATE TABLE api_access_tokens (
    id INTEGER PRIMARY KEY,
    client_id INTEGER NOT NULL REFERENCES api_clients(id),
    token_hash TEXT NOT NULL CONSTRAINT api_access_tokens_hash_unique UNIQUE,
    scope TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX api_access_tokens_expiry ON api_access_tokens(expires_at);
