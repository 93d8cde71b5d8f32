-- The request that made an audit entry (its X-Request-Id), so an entry, the server's log line
-- and the problem a client was shown can be matched. NULL for work no request made (the
-- check-in sweep, imports, the CLI) and for entries written before this migration.
-- Inside the entry's hash when present (docs/decisions/0005-audit-chain.md).
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
