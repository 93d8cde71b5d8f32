//! Embedded SQLite backend.
//!
//! One writer thread owns the only write connection and commits in groups: it takes
//! every write waiting in its queue (up to [`MAX_BATCH`]), runs each inside its own
//! savepoint in one transaction, and commits once. A failed write rolls back to its
//! savepoint and fails alone; the others commit. A write is acknowledged only after
//! the commit returns with `synchronous=FULL`, so acknowledged data is on disk, and
//! writers never meet "database is locked" because only one connection writes.
//!
//! Every step of that protocol is checked ([`run_batch`]). SQLite may abandon the whole
//! transaction on SQLITE_FULL or SQLITE_IOERR; then, or when a savepoint cannot be taken,
//! rolled back to or released, the batch stops: every job in it is told it failed (a full
//! disk as [`StoreError::DiskFull`]), the jobs not yet run are refused unrun, and a job's
//! statements are refused once the transaction is gone, so nothing ever runs outside it.
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

/// Work sent to the writer. [`WriteJob::run`] runs it in the open transaction and returns
/// whether it failed (so its savepoint is rolled back) and a completion that is told, after
/// COMMIT, whether the batch reached disk. [`WriteJob::refuse`] tells its caller it failed
/// without running it (the batch could not begin, or SQLite abandoned it).
pub(crate) trait WriteJob: Send {
    fn run(self: Box<Self>, conn: &mut dyn Conn) -> (bool, Completion);
    fn refuse(self: Box<Self>, error: StoreError);
}
pub(crate) type Completion = Box<dyn FnOnce(Result<()>) + Send>;

/// One caller's write: its operation and where its result goes.
struct Job<F, T> {
    op: F,
    done: oneshot::Sender<Result<T>>,
}

impl<F, T> WriteJob for Job<F, T>
where
    F: FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut dyn Conn) -> (bool, Completion) {
        let Job { op, done } = *self;
        if done.is_closed() {
            // Nobody waits for this write any more (its request timed out): skip it, so
            // no write is recorded after its caller was told it failed.
            return (false, Box::new(|_| {}));
        }
        // A panic in the operation becomes this job's error, so its caller hears "internal
        // error", not "storage is shutting down" (the writer lives on either way).
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(conn)))
            .unwrap_or_else(|p| Err(crate::error::panicked(p)));
        let failed = outcome.is_err();
        let completion: Completion = Box::new(move |committed: Result<()>| {
            let result = match (outcome, committed) {
                (Ok(v), Ok(())) => Ok(v),
                // The batch did not reach disk: its fault (disk full) is what the caller must
                // hear, even when this job's own work went well.
                (Ok(_), Err(e)) => Err(e),
                (Err(e), _) => Err(e),
            };
            let _ = done.send(result);
        });
        (failed, completion)
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        let _ = self.done.send(Err(error));
    }
}

pub struct SqliteBackend {
    /// The database file, for backups taken through their own connection.
    pub(crate) path: std::path::PathBuf,
    writer: mpsc::Sender<Box<dyn WriteJob>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
    readers_n: usize,
    /// Writes per group commit, for `/metrics`.
    batches: Arc<crate::stats::BatchSizes>,
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
        let names: Arc<[String]> = stmt.column_names().into_iter().map(str::to_string).collect();
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
            out.push(Row::new(names.clone(), vals));
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
        let batches = Arc::new(crate::stats::BatchSizes::default());
        let seen = batches.clone();
        std::thread::Builder::new()
            .name("keta-sqlite-writer".into())
            .spawn(move || writer_loop(write_conn, rx, &seen))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: tx,
            readers: Arc::new(Mutex::new(pool)),
            permits: Arc::new(Semaphore::new(readers_n)),
            readers_n,
            batches,
        })
    }

    pub(crate) fn stats(&self) -> crate::stats::StoreStats {
        let capacity = self.writer.max_capacity() as u64;
        crate::stats::StoreStats {
            writer_queue_depth: Some(capacity.saturating_sub(self.writer.capacity() as u64)),
            writer_queue_capacity: Some(capacity),
            write_batches: Some(self.batches.snapshot()),
            pool_in_use: self.readers_n.saturating_sub(self.permits.available_permits()) as u64,
            pool_size: self.readers_n as u64,
        }
    }

    pub(crate) async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (done, done_rx) = oneshot::channel::<Result<T>>();
        let job: Box<dyn WriteJob> = Box::new(Job { op, done });
        self.writer.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy { retry_after_secs: BUSY_RETRY_AFTER_SECS },
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        self.answer(done_rx).await
    }

    /// Waits for the writer's answer to one job.
    async fn answer<T>(&self, done_rx: oneshot::Receiver<Result<T>>) -> Result<T> {
        done_rx.await.map_err(|_| {
            if self.writer.is_closed() {
                StoreError::Closed
            } else {
                // The writer is alive but dropped this job unanswered: only a panic outside the
                // job's own guard does that. A bug, so an internal error, not "shutting down".
                StoreError::Backend("a storage operation panicked in the writer".into())
            }
        })?
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

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Box<dyn WriteJob>>, batches: &crate::stats::BatchSizes) {
    let mut cache = HashMap::new();
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        batches.observe(batch.len());
        run_batch(&conn, &mut cache, &mut batch);
    }
}

/// Why a batch's transaction ended before its COMMIT: every job in it is told it failed.
struct Abandoned {
    disk_full: bool,
    cause: String,
}

impl Abandoned {
    fn from_error(e: rusqlite::Error) -> Self {
        let e = StoreError::from(e);
        Self { disk_full: matches!(e, StoreError::DiskFull), cause: e.to_string() }
    }
    /// The error each caller in the batch hears (a fresh one each: errors are not `Clone`).
    fn error(&self) -> StoreError {
        if self.disk_full {
            StoreError::DiskFull
        } else {
            StoreError::Backend(format!("the write transaction was abandoned, nothing in it was saved: {}", self.cause))
        }
    }
}

/// Runs one group commit: BEGIN, each job in its own savepoint, COMMIT. Every statement of
/// the protocol is checked. If SQLite abandons the transaction (it may roll the whole of it
/// back on SQLITE_FULL or SQLITE_IOERR), or a savepoint cannot be taken, rolled back to or
/// released, the batch stops: nothing in it is committed, every job already run is told it
/// failed, and the jobs not yet run are refused without running, so no job ever runs
/// outside the transaction. Callers hear about their write only after this decision.
fn run_batch(conn: &Connection, cache: &mut HashMap<String, String>, batch: &mut Vec<Box<dyn WriteJob>>) {
    // A transaction left open by an earlier failure (a COMMIT and its ROLLBACK both failed)
    // is ended first, so this batch does not nest inside it.
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let why = Abandoned::from_error(e);
        for job in batch.drain(..) {
            job.refuse(why.error());
        }
        return;
    }
    let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
    let mut abandoned: Option<Abandoned> = None;
    let mut jobs = batch.drain(..);
    for job in jobs.by_ref() {
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            // Without its savepoint the job could not be undone alone: it does not run.
            let why = Abandoned::from_error(e);
            job.refuse(why.error());
            abandoned = Some(why);
            break;
        }
        let mut c = WriterConn { inner: SqliteConn { conn, sql_cache: cache }, disk_full: false };
        // `run` catches the operation's own panic; this catches one in the job's plumbing, so
        // the writer (and every later write) survives. That caller's channel then closes
        // unanswered, which `write` reports as an internal error.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&mut c)));
        let disk_full = c.disk_full;
        let (failed, completion) = match ran {
            Ok((failed, completion)) => (failed, Some(completion)),
            Err(_) => (true, None),
        };
        completions.extend(completion);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back under this job (or the job ended it).
            let cause = if disk_full { "database or disk is full" } else { "SQLite ended the transaction" };
            abandoned = Some(Abandoned { disk_full, cause: cause.into() });
            break;
        }
        let undone = if failed { conn.execute_batch("ROLLBACK TO job") } else { Ok(()) };
        if let Err(e) = undone.and_then(|()| conn.execute_batch("RELEASE job")) {
            abandoned = Some(Abandoned::from_error(e));
            break;
        }
    }
    let not_run: Vec<Box<dyn WriteJob>> = jobs.collect();
    if let Some(why) = abandoned {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        tracing::error!(cause = %why.cause, jobs = completions.len() + not_run.len(), "a write batch was abandoned; nothing in it was saved");
        for c in completions {
            c(Err(why.error()));
        }
        for job in not_run {
            job.refuse(why.error());
        }
        return;
    }
    let committed = conn.execute_batch("COMMIT").map_err(Abandoned::from_error);
    if committed.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for c in completions {
        c(match &committed {
            Ok(()) => Ok(()),
            Err(why) => Err(why.error()),
        });
    }
}

/// The writer's connection as a job sees it. Every statement first checks that the batch's
/// transaction is still open: once SQLite has abandoned it, a statement would run (and
/// commit) on its own, outside any transaction. It also notes SQLITE_FULL, so the batch
/// can tell every caller the disk is full even if the job turned the error into another.
struct WriterConn<'a> {
    inner: SqliteConn<'a>,
    disk_full: bool,
}

impl WriterConn<'_> {
    fn in_transaction(&self) -> Result<()> {
        if self.inner.conn.is_autocommit() {
            return Err(StoreError::Backend(
                "the write transaction was abandoned; this statement was not run and nothing was saved".into(),
            ));
        }
        Ok(())
    }
    fn note<T>(&mut self, r: Result<T>) -> Result<T> {
        if matches!(r, Err(StoreError::DiskFull)) {
            self.disk_full = true;
        }
        r
    }
}

impl Conn for WriterConn<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        self.in_transaction()?;
        let r = self.inner.execute(sql, params);
        self.note(r)
    }
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        self.in_transaction()?;
        let r = self.inner.query(sql, params);
        self.note(r)
    }
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rusqlite::Connection;
    use tokio::sync::oneshot;

    use super::{
        Completion, DEFAULT_WRITER_QUEUE, Job, SqliteBackend, WriteJob, rewrite_placeholders, run_batch,
        sqlite_dialect, writer_queue_setting,
    };
    use crate::conn::{Conn, Value};
    use crate::error::{Result, StoreError};

    type Reply = oneshot::Receiver<Result<()>>;

    /// A job as `SqliteBackend::write` builds it, with the receiver its caller would await.
    fn job(op: impl FnOnce(&mut dyn Conn) -> Result<()> + Send + 'static) -> (Box<dyn WriteJob>, Reply) {
        let (done, reply) = oneshot::channel();
        (Box::new(Job { op, done }), reply)
    }

    fn insert(x: i64) -> impl FnOnce(&mut dyn Conn) -> Result<()> + Send + 'static {
        move |c| c.execute("INSERT INTO t (x) VALUES ($1)", &[Value::Int(x)]).map(|_| ())
    }

    fn answer(mut r: Reply) -> Result<()> {
        r.try_recv().expect("every caller is answered when the batch ends")
    }

    fn stored(conn: &Connection) -> Vec<i64> {
        let mut st = conn.prepare("SELECT x FROM t ORDER BY x").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    }

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER NOT NULL, pad BLOB)").unwrap();
        conn
    }

    #[test]
    fn a_batch_whose_transaction_is_abandoned_fails_every_caller_and_runs_nothing_outside_it() {
        let conn = table();
        let mut cache = HashMap::new();
        let (before, r_before) = job(insert(1));
        // The middle job loses the transaction under it, as SQLite does on SQLITE_FULL or
        // SQLITE_IOERR, then carries on writing as if nothing happened.
        let (abandons, r_abandons) = job(|c| {
            c.execute("INSERT INTO t (x) VALUES (2)", &[])?;
            c.execute("ROLLBACK", &[])?;
            let _ = c.execute("INSERT INTO t (x) VALUES (3)", &[]);
            Ok(())
        });
        let (after, r_after) = job(insert(4));
        run_batch(&conn, &mut cache, &mut vec![before, abandons, after]);
        for (name, r) in [("before", r_before), ("abandoning", r_abandons), ("after", r_after)] {
            let e = answer(r).expect_err(name);
            assert!(matches!(e, StoreError::Backend(ref m) if m.contains("abandoned")), "{name}: {e}");
        }
        assert_eq!(stored(&conn), Vec::<i64>::new(), "nothing of the batch, and nothing outside a transaction");
        assert!(conn.is_autocommit(), "no transaction is left open");

        // The writer carries on: the next batch commits.
        let (next, r_next) = job(insert(5));
        run_batch(&conn, &mut cache, &mut vec![next]);
        answer(r_next).unwrap();
        assert_eq!(stored(&conn), vec![5]);
    }

    #[test]
    fn a_full_database_fails_the_write_that_needs_room_as_disk_full_and_keeps_the_others() {
        let conn = table();
        let mut cache = HashMap::new();
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        let _: i64 = conn.query_row(&format!("PRAGMA max_page_count = {}", pages + 2), [], |r| r.get(0)).unwrap();
        let (small, r_small) = job(insert(1));
        let (big, r_big) = job(|c| c.execute("INSERT INTO t (x, pad) VALUES (2, zeroblob(1048576))", &[]).map(|_| ()));
        let (later, r_later) = job(insert(3));
        run_batch(&conn, &mut cache, &mut vec![small, big, later]);
        assert!(matches!(answer(r_big), Err(StoreError::DiskFull)), "the write that needs room hears the disk is full");
        if conn.is_autocommit() && stored(&conn).is_empty() {
            // SQLite may abandon the whole transaction instead: then every caller must hear it.
            assert!(matches!(answer(r_small), Err(StoreError::DiskFull)));
            assert!(matches!(answer(r_later), Err(StoreError::DiskFull)));
        } else {
            answer(r_small).unwrap();
            answer(r_later).unwrap();
            assert_eq!(stored(&conn), vec![1, 3], "the others committed; the big one left nothing");
        }
        // Room again: writes work, and the file is sound.
        let _: i64 = conn.query_row("PRAGMA max_page_count = 1000000", [], |r| r.get(0)).unwrap();
        let (again, r_again) =
            job(|c| c.execute("INSERT INTO t (x, pad) VALUES (4, zeroblob(1048576))", &[]).map(|_| ()));
        run_batch(&conn, &mut cache, &mut vec![again]);
        answer(r_again).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
    }

    /// A job whose own plumbing panics (not its operation, which `Job::run` guards).
    struct PanicsOutsideItsGuard(#[allow(dead_code)] oneshot::Sender<Result<()>>);

    impl WriteJob for PanicsOutsideItsGuard {
        fn run(self: Box<Self>, _: &mut dyn Conn) -> (bool, Completion) {
            panic!("a bug in the writer's plumbing")
        }
        fn refuse(self: Box<Self>, _: StoreError) {}
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error_for_its_caller_and_the_others_commit() {
        let dir = std::env::temp_dir().join(format!("keta-writer-{}-{:x}", std::process::id(), rand::random::<u64>()));
        let b = SqliteBackend::open(&dir.join("k.db"), 1, 16).unwrap();
        b.write(|c| c.execute("CREATE TABLE t (x INTEGER)", &[]).map(|_| ())).await.unwrap();

        // The operation panics: caught in the job, its caller hears "panicked".
        let e = b.write(|_| -> Result<()> { panic!("a bug in a storage job") }).await.unwrap_err();
        assert!(matches!(&e, StoreError::Backend(m) if m.contains("panicked")), "{e}");

        // The job's plumbing panics: caught by the writer, the caller's channel closes
        // unanswered, and that is an internal error, not "shutting down".
        let (done, reply) = oneshot::channel();
        b.writer.try_send(Box::new(PanicsOutsideItsGuard(done))).ok().unwrap();
        let e = b.answer(reply).await.unwrap_err();
        assert!(matches!(&e, StoreError::Backend(m) if m.contains("panicked")), "{e}");
        assert!(!matches!(e, StoreError::Closed));

        b.write(|c| c.execute("INSERT INTO t (x) VALUES (1)", &[]).map(|_| ())).await.unwrap();
        let n = b.read(|c| c.query_opt("SELECT count(*) AS n FROM t", &[])?.unwrap().i64("n")).await.unwrap();
        assert_eq!(n, 1);
        drop(b);
        let _ = std::fs::remove_dir_all(dir);
    }

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
