//! Raw SQL for tests, and nothing else (hidden from the documentation; no crate of the
//! product calls it).
//!
//! The integration suite must do what no `Store` method may: inject faults (disable an
//! append-only trigger and tamper with a row, hold a transaction open while the pool runs
//! dry, queue a write and abandon it), and look at rows no API shows (audit entries, stored
//! hashes instead of secrets, the rows a restore brought back). It reaches the database
//! through these functions so that the product's own code cannot: [`Store::read`] and
//! [`Store::write`] stay crate-private.

pub use crate::conn::{Conn, Row, Value};
use crate::error::Result;
use crate::{Store, backup};

/// Runs `op` in a read-only transaction, as the store's own reads do.
pub async fn read<T: Send + 'static>(
    store: &Store,
    op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
) -> Result<T> {
    store.read(op).await
}

/// Runs `op` in a write transaction, as the store's own writes do (the SQLite writer
/// thread's queue, an idempotency claim's mark).
pub async fn write<T: Send + 'static>(
    store: &Store,
    op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
) -> Result<T> {
    store.write(op).await
}

/// `SELECT count(*)` of one table.
pub async fn count_rows(store: &Store, table: &'static str) -> Result<i64> {
    store
        .read(move |c| {
            Ok(c.query_opt(&format!("SELECT count(*) AS n FROM {table}"), &[])?
                .map(|r| r.i64("n"))
                .transpose()?
                .unwrap_or(0))
        })
        .await
}

/// The audit chain verified as stored, without sealing first (PostgreSQL's unsealed tail is
/// not counted), unlike [`Store::verify_audit_chain`].
pub async fn verify_audit_chain_as_stored(store: &Store) -> Result<(u64, Option<crate::audit::ChainBreak>)> {
    store.read(|c| crate::audit::verify(c)).await
}

/// Whether the session's original note carries its author's signature.
pub async fn is_note_signed(store: &Store, session: keta_domain::ids::SessionId) -> Result<bool> {
    store.read(move |c| crate::notes::is_note_signed(c, session)).await
}

/// Administrations recorded against the session in the controlled-substance ledger
/// (reversed ones not counted).
pub async fn administrations_for_session(store: &Store, session: keta_domain::ids::SessionId) -> Result<usize> {
    store.read(move |c| crate::ledger::administrations_for_session(c, session)).await
}

/// The row count of every table, as a backup's manifest records it.
pub async fn survey(store: &Store) -> Result<backup::Survey> {
    store.read(|c| backup::survey(c)).await
}

/// A digest of `table`'s rows up to key `up_to`, as a backup's manifest records it.
pub async fn table_digest(store: &Store, table: &'static str, key: &'static str, up_to: Option<i64>) -> Result<String> {
    store.read(move |c| backup::table_digest(c, table, key, up_to)).await
}

/// Every signed note whose hashes no longer match, read without a permission check.
pub async fn verify_notes(
    store: &Store,
) -> Result<Vec<(keta_domain::ids::SessionId, keta_domain::notes::NoteVerification)>> {
    store.read(crate::notes::verify_notes).await
}

/// The patient's antidepressant trials as stored, without an audit entry (tests that count
/// audit entries look at them).
pub async fn antidepressant_trials(
    store: &Store,
    patient: keta_domain::ids::PatientId,
) -> Result<Vec<keta_domain::records::AntidepressantTrialRecord>> {
    store.read(move |c| crate::eligibility::trials_for(c, patient)).await
}

/// Writes an audit entry in the caller's transaction, as every store operation does (for
/// tests that then try to alter it).
pub fn record_audit(
    c: &mut dyn Conn,
    actor: &crate::Actor,
    at: time::OffsetDateTime,
    entry: crate::audit::Entry<'_>,
) -> Result<()> {
    crate::audit::record(c, actor, at, entry)
}
