//! Embedded SQLite backend.
//!
//! One writer thread owns the only write connection and commits in groups: it takes
//! every write waiting in its queue (up to [`MAX_BATCH`]), runs each inside its own
//! savepoint in one transaction, and commits once. A failed write rolls back to its
//! savepoint and fails alone; the others commit. A write is acknowledged only after
//! the commit returns with `synchronous=FULL`, so acknowledged data is on disk, and
//! writers never meet "database is locked" because only one connection writes.
//! Readers use a small pool of read connections; WAL lets them run beside the writer.
//!
//! The queue is bounded ([`DEFAULT_WRITER_QUEUE`], or `?writer_queue=N` on the database
//! URL): when it is full a write is refused at once with [`StoreError::Busy`] (503 with
//! `Retry-After`) instead of waiting without limit. A write whose caller has gone (the
//! request timed out while it waited in the queue) is skipped, never run later: the
//! request timeout covers the wait for the writer.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::conn::{Backend, Conn, Row, Value};
use crate::error::{Result, StoreError};

pub const MAX_BATCH: usize = 512;

/// How many writes may wait for the writer: enough for many batches of concurrent writers.
pub const DEFAULT_WRITER_QUEUE: usize = 8 * MAX_BATCH;

/// How long a client refused by a full queue is asked to wait: the writer commits a
/// batch in milliseconds, so a second is plenty.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// The writer queue's bound from `sqlite://PATH?writer_queue=N` (default [`DEFAULT_WRITER_QUEUE`]).
pub(crate) fn writer_queue_setting(url: &str) -> Result<usize> {
    let Some((_, query)) = url.split_once('?') else { return Ok(DEFAULT_WRITER_QUEUE) };
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        if k == "writer_queue" {
            return v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                StoreError::Backend(format!("writer_queue={v} in the database URL: use a whole number of at least 1"))
            });
        }
    }
    Ok(DEFAULT_WRITER_QUEUE)
}

/// Work sent to the writer: runs in the open transaction and returns whether it
/// failed (so its savepoint is rolled back) and a completion that is told, after
/// COMMIT, whether the batch reached disk.
pub(crate) type WriteJob = Box<dyn FnOnce(&mut dyn Conn) -> (bool, Completion) + Send>;
pub(crate) type Completion = Box<dyn FnOnce(Result<()>) + Send>;

pub struct SqliteBackend {
    /// The database file, for backups taken through their own connection.
    pub(crate) path: std::path::PathBuf,
    writer: mpsc::Sender<WriteJob>,
    readers: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

/// Turns the portable SQL into SQLite's: `$N` placeholders become numbered `?N`, and a
/// trailing `FOR UPDATE` row lock is dropped (SQLite has no row locks and needs none: its
/// one writer runs write transactions one at a time, so a row read in one cannot change
/// before it commits).
fn sqlite_dialect(sql: &str) -> String {
    let sql = rewrite_placeholders(sql);
    let trimmed = sql.trim_end();
    match trimmed.len().checked_sub(FOR_UPDATE.len()) {
        Some(at) if trimmed.is_char_boundary(at) && trimmed[at..].eq_ignore_ascii_case(FOR_UPDATE) => {
            trimmed[..at].trim_end().to_string()
        }
        _ => sql,
    }
}

const FOR_UPDATE: &str = "FOR UPDATE";

/// Rewrites `$N` placeholders to SQLite's explicitly numbered `?N`, so a parameter's
/// position never depends on the order placeholders first appear in the text.
fn rewrite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) struct SqliteConn<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) sql_cache: &'a mut HashMap<String, String>,
}

impl SqliteConn<'_> {
    fn sql(&mut self, sql: &str) -> String {
        self.sql_cache.entry(sql.to_string()).or_insert_with(|| sqlite_dialect(sql)).clone()
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(v) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*v)),
            Value::Real(v) => ToSqlOutput::Owned(rusqlite::types::Value::Real(*v)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bool(b) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i64::from(*b))),
        })
    }
}

impl Conn for SqliteConn<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let sql = self.sql(sql);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let sql = self.sql(sql);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                vals.push(match r.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(_) => return Err(StoreError::Corrupt("unexpected blob".into())),
                });
            }
            out.push(Row(vals));
        }
        Ok(out)
    }

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

fn open(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // Durability on: a commit returns only once it is on disk.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16000;",
    )?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file and runs migrations.
    pub fn open(path: &Path, readers: usize, writer_queue: usize) -> Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let write_conn = open(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
        // DUR-2: never serve from a damaged file.
        let check: String = write_conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(StoreError::Corrupt(format!(
                "{} failed its integrity check ({check}); restore from a backup",
                path.display()
            )));
        }
        crate::migrate::run_sqlite(&write_conn)?;
        let readers_n = readers.max(1);
        let mut pool = Vec::with_capacity(readers_n);
        for _ in 0..readers_n {
            let c = open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            c.execute_batch("PRAGMA query_only = ON;")?;
            pool.push(c);
        }
        let (tx, rx) = mpsc::channel(writer_queue.max(1));
        std::thread::Builder::new()
            .name("keta-sqlite-writer".into())
            .spawn(move || writer_loop(write_conn, rx))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: tx,
            readers: Arc::new(Mutex::new(pool)),
            permits: Arc::new(Semaphore::new(readers_n)),
        })
    }

    pub(crate) async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (done_tx, done_rx) = oneshot::channel::<Result<T>>();
        let job: WriteJob = Box::new(move |conn| {
            if done_tx.is_closed() {
                // Nobody waits for this write any more (its request timed out): skip it, so
                // no write is recorded after its caller was told it failed.
                return (false, Box::new(|_| {}) as Completion);
            }
            // A panic in the operation becomes this job's error, so its caller hears "internal
            // error", not "storage is shutting down" (the writer lives on either way).
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(conn)))
                .unwrap_or_else(|p| Err(crate::error::panicked(p)));
            let failed = outcome.is_err();
            let completion: Completion = Box::new(move |committed: Result<()>| {
                let result = match (outcome, committed) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(e),
                };
                let _ = done_tx.send(result);
            });
            (failed, completion)
        });
        self.writer.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy { retry_after_secs: BUSY_RETRY_AFTER_SECS },
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        done_rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().expect("reader pool poisoned").pop().expect("permit guarantees a connection");
            let result = (|| {
                conn.execute_batch("BEGIN")?;
                let mut cache = HashMap::new();
                // Caught here so the connection goes back to the pool: a lost connection
                // would leave a permit with nothing behind it.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    op(&mut SqliteConn { conn: &conn, sql_cache: &mut cache })
                }))
                .unwrap_or_else(|p| Err(crate::error::panicked(p)));
                conn.execute_batch("COMMIT")?;
                r
            })();
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            pool.lock().expect("reader pool poisoned").push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<WriteJob>) {
    let mut cache = HashMap::new();
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        let begun = conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = begun {
            let msg = e.to_string();
            for job in batch.drain(..) {
                // The job never ran; tell its caller the write did not happen.
                let mut failing = FailingConn;
                let (_, c) = job(&mut failing);
                c(Err(StoreError::Backend(msg.clone())));
            }
            continue;
        }
        for job in batch.drain(..) {
            let _ = conn.execute_batch("SAVEPOINT job");
            let mut c = SqliteConn { conn: &conn, sql_cache: &mut cache };
            // A panicking job must not take the writer (and every later write) down with it;
            // its caller sees its channel close and gets an error.
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut c)));
            let (failed, completion) = match ran {
                Ok((failed, completion)) => (failed, Some(completion)),
                Err(_) => (true, None),
            };
            if failed {
                let _ = conn.execute_batch("ROLLBACK TO job");
            }
            let _ = conn.execute_batch("RELEASE job");
            completions.extend(completion);
        }
        let committed = conn.execute_batch("COMMIT").map_err(StoreError::from);
        if committed.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for c in completions {
            c(match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Backend(e.to_string())),
            });
        }
    }
}

/// Stands in for a connection when the batch could not begin: every call fails.
struct FailingConn;

impl Conn for FailingConn {
    fn execute(&mut self, _: &str, _: &[Value]) -> Result<u64> {
        Err(StoreError::Backend("transaction could not begin".into()))
    }
    fn query(&mut self, _: &str, _: &[Value]) -> Result<Vec<Row>> {
        Err(StoreError::Backend("transaction could not begin".into()))
    }
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_WRITER_QUEUE, rewrite_placeholders, sqlite_dialect, writer_queue_setting};

    #[test]
    fn writer_queue_bound_comes_from_the_url() {
        assert_eq!(writer_queue_setting("sqlite://k.db").unwrap(), DEFAULT_WRITER_QUEUE);
        assert_eq!(writer_queue_setting("sqlite://k.db?writer_queue=2").unwrap(), 2);
        assert!(writer_queue_setting("sqlite://k.db?writer_queue=0").is_err());
        assert!(writer_queue_setting("sqlite://k.db?writer_queue=many").is_err());
    }

    #[test]
    fn placeholders_become_numbered() {
        assert_eq!(
            rewrite_placeholders("SELECT $2, $1, $10 FROM t WHERE a = $1"),
            "SELECT ?2, ?1, ?10 FROM t WHERE a = ?1"
        );
        assert_eq!(rewrite_placeholders("SELECT '$' || x"), "SELECT '$' || x");
    }

    #[test]
    fn row_locks_are_dropped_for_sqlite_only_at_the_end() {
        assert_eq!(
            sqlite_dialect("SELECT id FROM sessions WHERE id = $1 FOR UPDATE"),
            "SELECT id FROM sessions WHERE id = ?1"
        );
        assert_eq!(sqlite_dialect("SELECT id FROM t WHERE id = $1\n for update  "), "SELECT id FROM t WHERE id = ?1");
        // Text that only mentions the words elsewhere is left alone.
        assert_eq!(sqlite_dialect("SELECT 'FOR UPDATE' AS x, y FROM t"), "SELECT 'FOR UPDATE' AS x, y FROM t");
    }
}
