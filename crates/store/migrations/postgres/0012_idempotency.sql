-- A retried request never records twice: one row per (account, Idempotency-Key or form token).
-- `owner` names the attempt that holds the key; `written_at` is set by the same transaction as
-- the request's write; the response is kept for replay until `expires_at`.
CREATE TABLE idempotency_keys (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    written_at BIGINT,
    status INTEGER,
    response_headers TEXT,
    response_body TEXT,
    expires_at BIGINT NOT NULL,
    CONSTRAINT idempotency_keys_user_key_unique UNIQUE (user_id, idem_key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
