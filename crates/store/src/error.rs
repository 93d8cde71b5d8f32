use keta_domain::DomainError;

/// Storage errors. `NotFound` and `Conflict` are the caller's to show; `Backend`
/// carries the database's own message for the log, never for the client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The actor's role does not allow this.
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("database error: {0}")]
    Backend(String),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    #[error("storage is shutting down")]
    Closed,
    /// The database's write queue is full; nothing was saved. Try again after the wait.
    #[error("the database is busy; nothing was saved; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// The database's disk (or SQLite's page limit) is full: the write was not saved, and
    /// nothing else in its transaction was either. Writes work again once space is freed.
    #[error("the database disk is full; nothing was saved")]
    DiskFull,
}

/// A storage operation that panicked (a bug), reported as a backend error with the panic's
/// message for the log; the web layer answers it as an internal error with a reference.
pub(crate) fn panicked(p: Box<dyn std::any::Any + Send>) -> StoreError {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    StoreError::Backend(format!("a storage operation panicked: {what}"))
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, msg) = &e
            && f.code == rusqlite::ErrorCode::ConstraintViolation
        {
            return StoreError::Conflict(constraint_message(msg.as_deref().unwrap_or("")));
        }
        // SQLITE_FULL: the disk (or `PRAGMA max_page_count`) has no room for the write.
        if let rusqlite::Error::SqliteFailure(f, _) = &e
            && f.code == rusqlite::ErrorCode::DiskFull
        {
            return StoreError::DiskFull;
        }
        StoreError::Backend(e.to_string())
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let c = db.code().code();
            if c.starts_with("23") {
                return StoreError::Conflict(constraint_message(db.constraint().unwrap_or(db.message())));
            }
            // Two transactions waited on each other (or a snapshot could not be kept): one of
            // them is rolled back whole; the caller is told plainly and nothing was saved.
            // The statement ran past `statement_timeout_ms` and the server cancelled it.
            if c == "57014" {
                return StoreError::Backend(format!(
                    "the database cancelled a statement that ran longer than the statement timeout (statement_timeout_ms in the database URL); nothing was saved: {}",
                    db.message()
                ));
            }
            if c == "40001" || c == "40P01" {
                return StoreError::Conflict(
                    "another change to the same record was being saved at the same moment; nothing was saved, try again"
                        .into(),
                );
            }
            // 53100 disk_full: the server could not extend a file; the transaction is void.
            if c == "53100" {
                return StoreError::DiskFull;
            }
        }
        StoreError::Backend(e.to_string())
    }
}

/// Turns a constraint name or message into words a user can act on. Unique
/// constraints are named `<table>_<column>_unique` in both schemas.
fn constraint_message(raw: &str) -> String {
    if raw.contains("patients_mrn") || raw.contains("patients.mrn") {
        "a patient with this MRN already exists".into()
    } else if raw.contains("sites_code") || raw.contains("sites.code") {
        "a site with this code already exists".into()
    } else if raw.contains("FOREIGN KEY") || raw.contains("_fkey") {
        "a referenced record does not exist".into()
    } else {
        "the change conflicts with existing data".into()
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
