-- Sign-in throttling kept in the database, so every instance behind a load balancer counts the
-- same failures (docs/decisions/0007-several-instances.md). One row per account (failures in a
-- row and the time of the last one) and per client address (attempts in the current one-minute
-- window and when it began). Times are Unix milliseconds. Bookkeeping, not clinical records:
-- the sign-in failures themselves are in the audit trail.
CREATE TABLE login_throttle (
    scope TEXT NOT NULL CHECK (scope IN ('account', 'address')),
    subject TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (scope, subject)
);
CREATE INDEX login_throttle_since ON login_throttle (since);
