//! The pool's connections: `tokio-postgres` driven on a small runtime of their own (as the
//! sync `postgres` crate does), so that statements that need no answer before the next one
//! are sent together, in one round trip, instead of one after another.
//!
//! What is sent together (docs/decisions/0004-concurrency.md, addendum on round trips):
//! * `BEGIN` goes with the transaction's first statement. A write refused before its first
//!   statement (a validation in Rust) costs no round trip at all.
//! * A statement run with [`Conn::execute_later`] (the audit entry: its result is never read)
//!   goes with the next statement, or with `COMMIT`.
//!
//! Each statement keeps its own `Sync`, so the server runs them one after another exactly as
//! if they had been sent one at a time; an error in any of them aborts the transaction, later
//! ones fail with "transaction aborted", and a `COMMIT` after an error is a rollback. The
//! first error in sending order is the one reported, and nothing of the write is kept.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::{STATEMENT_CACHE, StatementCache, rows_of};
use crate::conn::{Backend, Conn, Row, Value};
use crate::error::{Result, StoreError};

/// One pooled connection: the client, and the runtime that drives its socket.
pub(super) struct PipeClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
    /// How many of the pool's known statements ([`Known`]) this connection has prepared.
    warmed: usize,
}

impl PipeClient {
    pub(super) fn connect(s: &super::PgSettings) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot start the database connection's runtime: {e}")))?;
        let config = s.pipe_config.clone();
        let connected = match &s.tls {
            None => runtime.block_on(async move {
                let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(async move { log_end(conn.await) });
                Ok::<_, tokio_postgres::Error>(client)
            }),
            Some(cfg) => {
                let tls = super::tls::MakeRustls(cfg.clone());
                runtime.block_on(async move {
                    let (client, conn) = config.connect(tls).await?;
                    tokio::spawn(async move { log_end(conn.await) });
                    Ok::<_, tokio_postgres::Error>(client)
                })
            }
        };
        let client = connected.map_err(|e| super::connect_error(&e))?;
        Ok(Self { runtime, client, warmed: 0 })
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Runs one simple statement outside any transaction (connection set-up).
    pub(super) fn batch_execute(&mut self, sql: &str) -> Result<()> {
        let client = &self.client;
        Ok(self.runtime.block_on(client.batch_execute(sql))?)
    }
}

fn log_end(r: std::result::Result<(), tokio_postgres::Error>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "database connection closed");
    }
}

/// The statements a pool's connections have prepared so far (their SQL, first seen first),
/// at most [`WARM_STATEMENTS`]. Each connection prepares the ones it lacks in one pipelined
/// burst when it is next taken from the pool ([`PipeClient::warm`]), instead of a round trip
/// each the first time one of its requests needs one: otherwise every connection of the pool
/// pays those round trips for every statement, and a page whose reads land on a connection
/// that never served it is several times slower than the next (docs/benchmarks.md, "Cold
/// connections").
#[derive(Default)]
pub(super) struct Known(std::sync::Mutex<Vec<String>>);

/// Half the per-connection cache, so warming never fills a connection's cache by itself.
const WARM_STATEMENTS: usize = STATEMENT_CACHE / 2;

impl Known {
    fn remember(&self, sql: &str) {
        let mut known = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() < WARM_STATEMENTS && !known.iter().any(|k| k == sql) {
            known.push(sql.to_string());
        }
    }
}

impl PipeClient {
    /// Prepares the statements the pool's other connections have prepared since this one last
    /// looked (all of them, for a new connection), sent together in one round trip, before the
    /// transaction that is about to run here. Nothing to do, the usual case once the pool has
    /// seen the application's statements, costs a lock and a comparison. One that fails to
    /// prepare is left for its first use to prepare (and to report); warming never fails.
    pub(super) fn warm(&mut self, known: &Known, cache: &mut StatementCache) {
        let (missing, seen) = {
            let known = known.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if known.len() <= self.warmed {
                return;
            }
            let missing: Vec<String> =
                known[self.warmed..].iter().filter(|sql| !cache.contains_key(*sql)).cloned().collect();
            (missing, known.len())
        };
        self.warmed = seen;
        let client = &self.client;
        let prepared = all_together(
            &self.runtime,
            missing.iter().map(|sql| Box::pin(client.prepare(sql)) as Pin<Box<dyn Future<Output = _> + '_>>).collect(),
        );
        for (sql, s) in missing.into_iter().zip(prepared) {
            if let Ok(s) = s {
                cache.insert(sql, s);
            }
        }
    }
}

/// A statement's answer.
enum Answer {
    Done,
    Changed(u64),
    Rows(Vec<tokio_postgres::Row>),
}

type Pending<'c> = Pin<Box<dyn Future<Output = std::result::Result<Answer, tokio_postgres::Error>> + 'c>>;

fn as_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Sends every request in order (each future sends its request on its first poll, and the
/// connection writes them out together), then waits for all the answers. Returns them in
/// order; the first error in sending order wins.
fn send_together(
    runtime: &tokio::runtime::Runtime,
    pending: Vec<Pending<'_>>,
) -> std::result::Result<Vec<Answer>, tokio_postgres::Error> {
    all_together(runtime, pending).into_iter().collect()
}

/// Polls every future until all are done (requests go out together, see [`send_together`]);
/// their outputs in order.
fn all_together<T>(
    runtime: &tokio::runtime::Runtime,
    mut pending: Vec<Pin<Box<dyn Future<Output = T> + '_>>>,
) -> Vec<T> {
    let mut answers: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    runtime.block_on(std::future::poll_fn(|cx| {
        let mut all = true;
        for (f, a) in pending.iter_mut().zip(answers.iter_mut()) {
            if a.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(r) => *a = Some(r),
                    Poll::Pending => all = false,
                }
            }
        }
        if all { Poll::Ready(()) } else { Poll::Pending }
    }));
    answers.into_iter().map(|a| a.expect("every request is answered before the poll above ends")).collect()
}

fn rows_of_each(answers: Vec<Answer>) -> Result<Vec<Vec<Row>>> {
    answers
        .into_iter()
        .map(|a| match a {
            Answer::Rows(rows) => rows_of(&rows),
            _ => Ok(Vec::new()),
        })
        .collect()
}

/// A transaction on a pooled connection, begun lazily.
pub(super) struct PipeConn<'a> {
    client: &'a mut PipeClient,
    cache: &'a mut StatementCache,
    /// What the pool's connections have prepared, for connections opened later.
    known: &'a Known,
    /// The `BEGIN` not yet sent: it goes with the first statement.
    begin: Option<&'static str>,
    /// Statements whose answer nobody reads, sent with the next statement or the commit.
    later: Vec<(Statement, Vec<Value>)>,
    /// The `COMMIT` has gone out with the transaction's last statements
    /// ([`Conn::query_each_last`]): the transaction is over, committed or rolled back.
    ended: bool,
}

impl<'a> PipeConn<'a> {
    pub(super) fn begin(
        client: &'a mut PipeClient,
        cache: &'a mut StatementCache,
        known: &'a Known,
        read_only: bool,
    ) -> Self {
        // Reads: one snapshot for every query of the read (the chart, the board, outcomes), as
        // SQLite's read transaction gives; READ COMMITTED would take one per query.
        let begin = if read_only { "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" } else { "BEGIN" };
        Self { client, cache, known, begin: Some(begin), later: Vec::new(), ended: false }
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.cache.get(sql) {
            return Ok(s.clone());
        }
        // Prepared statements belong to the connection, not the transaction: preparing before
        // the `BEGIN` has gone out is fine.
        let client = &self.client.client;
        let s = self.client.runtime.block_on(client.prepare(sql))?;
        if self.cache.len() >= STATEMENT_CACHE {
            self.cache.clear();
        }
        self.cache.insert(sql.to_string(), s.clone());
        self.known.remember(sql);
        Ok(s)
    }

    /// Sends the pending `BEGIN`, the deferred statements, then `now` (each a statement, its
    /// parameters, and whether its rows are wanted) and `then`, all together; returns the
    /// answers to `now`.
    fn flush(
        &mut self,
        now: &[(Statement, &[Value], bool)],
        then: Option<&'static str>,
    ) -> std::result::Result<Vec<Answer>, tokio_postgres::Error> {
        let begin = self.begin.take();
        let later = std::mem::take(&mut self.later);
        let client = &self.client.client;
        let later_params: Vec<Vec<&(dyn ToSql + Sync)>> = later.iter().map(|(_, p)| as_params(p)).collect();
        let now_params: Vec<Vec<&(dyn ToSql + Sync)>> = now.iter().map(|(_, p, _)| as_params(p)).collect();
        let mut pending: Vec<Pending<'_>> = Vec::with_capacity(later.len() + now.len() + 2);
        if let Some(b) = begin {
            pending.push(Box::pin(async move { client.batch_execute(b).await.map(|()| Answer::Done) }));
        }
        for ((stmt, _), params) in later.iter().zip(later_params.iter()) {
            pending.push(Box::pin(async move { client.execute(stmt, params).await.map(Answer::Changed) }));
        }
        for ((stmt, _, rows), params) in now.iter().zip(now_params.iter()) {
            pending.push(if *rows {
                Box::pin(async move { client.query(stmt, params).await.map(Answer::Rows) })
            } else {
                Box::pin(async move { client.execute(stmt, params).await.map(Answer::Changed) })
            });
        }
        if let Some(t) = then {
            pending.push(Box::pin(async move { client.batch_execute(t).await.map(|()| Answer::Done) }));
        }
        let mut answers = send_together(&self.client.runtime, pending)?;
        let first = answers.len() - now.len() - usize::from(then.is_some());
        Ok(answers.drain(first..first + now.len()).collect())
    }

    /// Runs statements after whatever is pending, together. A cached statement the schema has
    /// since changed under ("cached plan must not change result type") is prepared afresh next
    /// time.
    fn run(&mut self, stmts: &[(&str, &[Value])], rows: bool, then: Option<&'static str>) -> Result<Vec<Answer>> {
        if self.ended {
            return Err(StoreError::Backend("a statement after the transaction's commit (a bug)".into()));
        }
        let mut now = Vec::with_capacity(stmts.len());
        for (sql, params) in stmts {
            now.push((self.statement(sql)?, *params, rows));
        }
        // Whatever the answers, a `COMMIT` sent ends the transaction (after an error it is a
        // rollback), so nothing is left to commit or roll back.
        self.ended = then.is_some();
        let r = self.flush(&now, then);
        if let Err(e) = &r
            && e.code() == Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED)
        {
            for (sql, _) in stmts {
                self.cache.remove(*sql);
            }
        }
        Ok(r?)
    }

    /// Commits: sends what is pending with the `COMMIT`. A transaction that never sent a
    /// statement has nothing to commit.
    pub(super) fn commit(mut self) -> Result<()> {
        if self.ended || (self.begin.is_some() && self.later.is_empty()) {
            return Ok(());
        }
        self.flush(&[], Some("COMMIT"))?;
        Ok(())
    }

    /// Rolls back; deferred statements are dropped unsent, and a transaction that never
    /// began needs no round trip.
    pub(super) fn rollback(mut self) -> Result<()> {
        self.later.clear();
        if self.begin.is_some() || self.ended {
            return Ok(());
        }
        let client = &self.client.client;
        Ok(self.client.runtime.block_on(client.batch_execute("ROLLBACK"))?)
    }
}

impl Conn for PipeConn<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        match self.run(&[(sql, params)], false, None)?.pop() {
            Some(Answer::Changed(n)) => Ok(n),
            _ => Ok(0),
        }
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        match self.run(&[(sql, params)], true, None)?.pop() {
            Some(Answer::Rows(rows)) => rows_of(&rows),
            _ => Ok(Vec::new()),
        }
    }

    fn query_each(&mut self, stmts: &[(&str, &[Value])]) -> Result<Vec<Vec<Row>>> {
        rows_of_each(self.run(stmts, true, None)?)
    }

    fn query_each_last(&mut self, stmts: &[(&str, &[Value])]) -> Result<Vec<Vec<Row>>> {
        rows_of_each(self.run(stmts, true, Some("COMMIT"))?)
    }

    fn execute_later(&mut self, sql: &str, params: &[Value]) -> Result<()> {
        if self.ended {
            return Err(StoreError::Backend("a statement after the transaction's commit (a bug)".into()));
        }
        let stmt = self.statement(sql)?;
        self.later.push((stmt, params.to_vec()));
        Ok(())
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}
