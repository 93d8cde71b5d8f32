//! Figures about the storage engine for the server's `/metrics`: how many writes wait for
//! SQLite's writer, how many each group commit carried, how many pooled connections are in
//! use. Counts only: nothing about what is stored.

use std::sync::atomic::{AtomicU64, Ordering};

/// Alerts raised by this process since it started (clinical alerts from vitals, check-in
/// answers and between-session rules). Counted as the alert is written; a transaction that
/// then fails (rare: a full disk) has still counted it.
pub static ALERTS_RAISED: AtomicU64 = AtomicU64::new(0);

/// Upper bounds of the batch-size histogram's buckets (writes per group commit).
pub const BATCH_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// A histogram of group-commit sizes, filled by the writer thread.
#[derive(Debug, Default)]
pub struct BatchSizes {
    /// Per bucket of [`BATCH_BUCKETS`] (not cumulative), then one for larger batches.
    buckets: [AtomicU64; BATCH_BUCKETS.len() + 1],
    count: AtomicU64,
    sum: AtomicU64,
}

impl BatchSizes {
    pub(crate) fn observe(&self, size: usize) {
        let size = size as u64;
        let i = BATCH_BUCKETS.iter().position(|b| size <= *b).unwrap_or(BATCH_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(size, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> BatchSnapshot {
        let per_bucket =
            BATCH_BUCKETS.iter().enumerate().map(|(i, le)| (*le, self.buckets[i].load(Ordering::Relaxed))).collect();
        BatchSnapshot { per_bucket, count: self.count.load(Ordering::Relaxed), sum: self.sum.load(Ordering::Relaxed) }
    }
}

/// The batch-size histogram at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSnapshot {
    /// `(upper bound, batches larger than the previous bound and at most this one)`; batches
    /// larger than the last bound are only in `count`.
    pub per_bucket: Vec<(u64, u64)>,
    pub count: u64,
    pub sum: u64,
}

/// The storage engine's figures at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// Writes waiting for SQLite's writer (`None` on PostgreSQL, whose writers run side by side).
    pub writer_queue_depth: Option<u64>,
    /// The writer queue's bound (SQLite).
    pub writer_queue_capacity: Option<u64>,
    /// Writes per group commit (SQLite).
    pub write_batches: Option<BatchSnapshot>,
    /// Pooled connections busy now (PostgreSQL: the pool; SQLite: the readers).
    pub pool_in_use: u64,
    /// The pool's bound.
    pub pool_size: u64,
}

impl crate::Store {
    /// The engine's figures now (for `/metrics`).
    pub fn stats(&self) -> StoreStats {
        match &*self.engine {
            crate::Engine::Sqlite(b) => b.stats(),
            crate::Engine::Postgres(b) => b.stats(),
        }
    }
}

impl crate::Store {
    /// Whether a server is migrating this database now (readiness fails meanwhile). On
    /// PostgreSQL, migrations run under an advisory lock, held by whichever server (or
    /// `keta migrate`) is migrating; on SQLite they run before the store opens, so never.
    pub async fn migrations_running(&self) -> crate::Result<bool> {
        match self.backend() {
            crate::Backend::Sqlite => Ok(false),
            crate::Backend::Postgres => {
                let key = crate::migrate::MIGRATION_LOCK;
                self.read(move |c| {
                    // A bigint advisory key shows as classid (high 32 bits) and objid (low).
                    let row = c.query_opt(
                        "SELECT count(*) AS holders FROM pg_locks WHERE locktype = 'advisory' AND granted
                         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                         AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
                        crate::params![key >> 32, key & 0xffff_ffff],
                    )?;
                    Ok(row.map(|r| r.i64("holders")).transpose()?.unwrap_or(0) > 0)
                })
                .await
            }
        }
    }

    /// The newest migration applied to this database, and whether this build's schema is
    /// behind it or ahead of it (readiness fails until they agree).
    pub async fn schema_version(&self) -> crate::Result<i64> {
        self.read(|c| {
            let row = c.query_opt("SELECT COALESCE(max(version), 0) AS version FROM schema_migrations", &[])?;
            Ok(row.map(|r| r.i64("version")).transpose()?.unwrap_or(0))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_fall_into_their_buckets() {
        let b = BatchSizes::default();
        for n in [1, 1, 3, 600] {
            b.observe(n);
        }
        let s = b.snapshot();
        assert_eq!((s.count, s.sum), (4, 605));
        assert_eq!(s.per_bucket[0], (1, 2));
        assert_eq!(s.per_bucket[1], (2, 0));
        assert_eq!(s.per_bucket[2], (4, 1));
        assert_eq!(s.per_bucket.iter().map(|b| b.1).sum::<u64>(), 3, "the 600-write batch is only in +Inf");
    }
}

/// How many records the database holds, by kind (the demo's one-line summary, the
/// benchmark's data-set description). Counts only: no patient data, so no audit entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCounts {
    pub patients: i64,
    pub sessions: i64,
    pub vitals: i64,
    pub questionnaire_responses: i64,
    pub alerts: i64,
    pub audit_entries: i64,
    pub checkin_links: i64,
}

impl crate::Store {
    /// The number of records of each kind, read in one snapshot.
    pub async fn record_counts(&self) -> crate::Result<RecordCounts> {
        self.read(|c| {
            let mut n = |table: &str| -> crate::Result<i64> {
                Ok(c.query_opt(&format!("SELECT count(*) AS n FROM {table}"), &[])?
                    .map(|r| r.i64("n"))
                    .transpose()?
                    .unwrap_or(0))
            };
            Ok(RecordCounts {
                patients: n("patients")?,
                sessions: n("sessions")?,
                vitals: n("vitals")?,
                questionnaire_responses: n("questionnaire_responses")?,
                alerts: n("alerts")?,
                audit_entries: n("audit_log")?,
                checkin_links: n("checkin_links")?,
            })
        })
        .await
    }
}
