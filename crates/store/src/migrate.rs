//! Embedded migrations, one list per backend. Each runs once, in its own
//! transaction, and is recorded in `schema_migrations`.

use crate::error::{Result, StoreError};

const SQLITE: &[(i64, &str, &str)] = &[
    (1, "foundation", include_str!("../migrations/sqlite/0001_foundation.sql")),
    (2, "accounts", include_str!("../migrations/sqlite/0002_accounts.sql")),
    (3, "ledger_and_notes", include_str!("../migrations/sqlite/0003_ledger_and_notes.sql")),
    (4, "dosing", include_str!("../migrations/sqlite/0004_dosing.sql")),
    (5, "between_sessions", include_str!("../migrations/sqlite/0005_between_sessions.sql")),
    (6, "chair_gates", include_str!("../migrations/sqlite/0006_chair_gates.sql")),
    (7, "medications", include_str!("../migrations/sqlite/0007_medications.sql")),
    (8, "alert_escalation", include_str!("../migrations/sqlite/0008_alert_escalation.sql")),
    (10, "access", include_str!("../migrations/sqlite/0010_access.sql")),
    (12, "idempotency", include_str!("../migrations/sqlite/0012_idempotency.sql")),
    (14, "audit_sealer", include_str!("../migrations/sqlite/0014_audit_sealer.sql")),
    (17, "consents", include_str!("../migrations/sqlite/0017_consents.sql")),
    (18, "rems_forms", include_str!("../migrations/sqlite/0018_rems_forms.sql")),
    (20, "site_address", include_str!("../migrations/sqlite/0020_site_address.sql")),
    (23, "chair_calendar", include_str!("../migrations/sqlite/0023_chair_calendar.sql")),
    (24, "course_orders", include_str!("../migrations/sqlite/0024_course_orders.sql")),
    (25, "bedside_monitors", include_str!("../migrations/sqlite/0025_bedside_monitors.sql")),
    (26, "fhir", include_str!("../migrations/sqlite/0026_fhir.sql")),
    (27, "research_and_referrals", include_str!("../migrations/sqlite/0027_research_and_referrals.sql")),
    (28, "audit_request_id", include_str!("../migrations/sqlite/0028_audit_request_id.sql")),
    (29, "pretreatment_records", include_str!("../migrations/sqlite/0029_pretreatment_records.sql")),
    (30, "monitor_mean_pressure", include_str!("../migrations/sqlite/0030_monitor_mean_pressure.sql")),
    (31, "duty_rota", include_str!("../migrations/sqlite/0031_duty_rota.sql")),
    (32, "unread_columns", include_str!("../migrations/sqlite/0032_unread_columns.sql")),
    (33, "bulk_export", include_str!("../migrations/sqlite/0033_bulk_export.sql")),
    (34, "site_dea_registration", include_str!("../migrations/sqlite/0034_site_dea_registration.sql")),
    (36, "login_throttle", include_str!("../migrations/sqlite/0036_login_throttle.sql")),
    (37, "board_sessions", include_str!("../migrations/sqlite/0037_board_sessions.sql")),
];
const POSTGRES: &[(i64, &str, &str)] = &[
    (1, "foundation", include_str!("../migrations/postgres/0001_foundation.sql")),
    (2, "accounts", include_str!("../migrations/postgres/0002_accounts.sql")),
    (3, "ledger_and_notes", include_str!("../migrations/postgres/0003_ledger_and_notes.sql")),
    (4, "dosing", include_str!("../migrations/postgres/0004_dosing.sql")),
    (5, "between_sessions", include_str!("../migrations/postgres/0005_between_sessions.sql")),
    (6, "chair_gates", include_str!("../migrations/postgres/0006_chair_gates.sql")),
    (7, "medications", include_str!("../migrations/postgres/0007_medications.sql")),
    (8, "alert_escalation", include_str!("../migrations/postgres/0008_alert_escalation.sql")),
    (10, "access", include_str!("../migrations/postgres/0010_access.sql")),
    (12, "idempotency", include_str!("../migrations/postgres/0012_idempotency.sql")),
    (14, "audit_sealer", include_str!("../migrations/postgres/0014_audit_sealer.sql")),
    (17, "consents", include_str!("../migrations/postgres/0017_consents.sql")),
    (18, "rems_forms", include_str!("../migrations/postgres/0018_rems_forms.sql")),
    (20, "site_address", include_str!("../migrations/postgres/0020_site_address.sql")),
    (23, "chair_calendar", include_str!("../migrations/postgres/0023_chair_calendar.sql")),
    (24, "course_orders", include_str!("../migrations/postgres/0024_course_orders.sql")),
    (25, "bedside_monitors", include_str!("../migrations/postgres/0025_bedside_monitors.sql")),
    (26, "fhir", include_str!("../migrations/postgres/0026_fhir.sql")),
    (27, "research_and_referrals", include_str!("../migrations/postgres/0027_research_and_referrals.sql")),
    (28, "audit_request_id", include_str!("../migrations/postgres/0028_audit_request_id.sql")),
    (29, "pretreatment_records", include_str!("../migrations/postgres/0029_pretreatment_records.sql")),
    (30, "monitor_mean_pressure", include_str!("../migrations/postgres/0030_monitor_mean_pressure.sql")),
    (31, "duty_rota", include_str!("../migrations/postgres/0031_duty_rota.sql")),
    (32, "unread_columns", include_str!("../migrations/postgres/0032_unread_columns.sql")),
    (33, "bulk_export", include_str!("../migrations/postgres/0033_bulk_export.sql")),
    (34, "site_dea_registration", include_str!("../migrations/postgres/0034_site_dea_registration.sql")),
    (36, "login_throttle", include_str!("../migrations/postgres/0036_login_throttle.sql")),
    (37, "board_sessions", include_str!("../migrations/postgres/0037_board_sessions.sql")),
];

/// The advisory lock a PostgreSQL migration run holds (readiness looks for it).
pub(crate) const MIGRATION_LOCK: i64 = 4242001;

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    SQLITE.last().map_or(0, |m| m.0)
}

pub(crate) fn run_sqlite(conn: &rusqlite::Connection) -> Result<Vec<i64>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )?;
    let mut applied = Vec::new();
    for (version, name, sql) in SQLITE {
        let done: i64 =
            conn.query_row("SELECT count(*) FROM schema_migrations WHERE version = ?1", [version], |r| r.get(0))?;
        if done > 0 {
            continue;
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let r = conn.execute_batch(sql).and_then(|_| {
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
                rusqlite::params![version, name],
            )
        });
        match r {
            Ok(_) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(StoreError::Backend(format!("migration {version} ({name}) failed: {e}")));
            }
        }
        applied.push(*version);
    }
    Ok(applied)
}

pub(crate) fn run_postgres(client: &mut postgres::Client) -> Result<Vec<i64>> {
    // Two servers starting at once must not both migrate.
    let mut tx = client.transaction()?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(4242001);
         CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    let mut applied = Vec::new();
    for (version, name, sql) in POSTGRES {
        let done: i64 = tx.query_one("SELECT count(*) FROM schema_migrations WHERE version = $1", &[version])?.get(0);
        if done > 0 {
            continue;
        }
        tx.batch_execute(sql).map_err(|e| StoreError::Backend(format!("migration {version} ({name}) failed: {e}")))?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name])?;
        applied.push(*version);
    }
    tx.commit()?;
    Ok(applied)
}
