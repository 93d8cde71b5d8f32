//! PostgreSQL backend: a bounded pool of synchronous connections used from tokio's
//! blocking threads, one transaction per operation. PostgreSQL handles concurrent
//! writers itself; `synchronous_commit` stays on so an acknowledged write is durable.
//! Writes run at READ COMMITTED and make each read-check-write safe with a row lock
//! (`... FOR UPDATE`) or a guarded update; reads run at REPEATABLE READ, read only
//! (docs/decisions/0004-concurrency.md).
//!
//! Connections (all operational settings, read from the database URL; see README):
//! * TLS through rustls: `sslmode=disable|prefer|require|verify-full` (default `prefer`,
//!   as libpq). `prefer` and `require` encrypt without checking the certificate (libpq's
//!   meaning); `verify-full` checks the chain against `sslrootcert=FILE` (PEM) or the
//!   webpki roots, and the host name.
//! * `connect_timeout=SECONDS` (libpq's parameter; default [`DEFAULT_CONNECT_TIMEOUT`]).
//! * `statement_timeout_ms=N`: the server cancels a statement running longer (default
//!   [`DEFAULT_STATEMENT_TIMEOUT_MS`]; 0 turns it off). Migrations run without it.
//! * `pool_size=N` connections at most (default [`DEFAULT_POOL_SIZE`]); an operation that
//!   waits longer than `pool_wait_ms=N` (default [`DEFAULT_POOL_WAIT_MS`]) for one is
//!   refused with [`StoreError::Busy`] (503 with `Retry-After`), as SQLite's full writer
//!   queue is.
//! * `audit_chain=sealer|inline` (default `sealer`): see docs/decisions/0005-audit-chain.md.
//! * Each connection prepares a statement once and keeps it (up to
//!   [`STATEMENT_CACHE`] statements), so a repeated query is one round trip, not two.
//! * The pool's connections send `BEGIN` with a transaction's first statement, and audit
//!   entries and independent statements together with the next (`pipeline.rs`).
//!
//! The audit chain is sealed by one [`Sealer`] thread per store, off the writers' path
//! (docs/decisions/0005-audit-chain.md).

mod pipeline;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};
use tokio::sync::Semaphore;

use crate::conn::{Backend, Conn, Row, Value};
use crate::error::{Result, StoreError};

/// Default for `connect_timeout` (seconds) when the URL does not give one.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for `statement_timeout_ms`.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// Default for `pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Default for `pool_wait_ms`.
pub const DEFAULT_POOL_WAIT_MS: u64 = 5_000;
/// Prepared statements kept per connection; the cache starts over when full (queries with
/// inlined site lists or filters are many and rare).
pub const STATEMENT_CACHE: usize = 512;
/// The sealer wakes at least this often, so entries written by another process (or missed
/// while the database was unreachable) are chained within about a second.
const SEAL_INTERVAL: Duration = Duration::from_millis(500);
/// After a write wakes it, the sealer waits this long to gather more entries per seal.
const SEAL_GATHER: Duration = Duration::from_millis(20);

/// How the connection is encrypted (`sslmode=` in the URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    /// The certificate chain is checked against `root` (PEM file) or the webpki roots,
    /// and the certificate must name the host connected to.
    VerifyFull {
        root: Option<PathBuf>,
    },
}

/// The connection settings read from a `postgres://` URL.
#[derive(Clone)]
pub struct PgSettings {
    pub(crate) config: postgres::Config,
    pub ssl: SslMode,
    pub connect_timeout: Duration,
    pub statement_timeout_ms: u64,
    pub pool_size: usize,
    pub pool_wait: Duration,
    /// `audit_chain=inline`: the design before docs/decisions/0005 (each writer chains its own
    /// entry under the chain lock), kept so `keta bench` can measure both in one run.
    pub audit_inline: bool,
    /// `vitals_memory=off`: every vitals write reads its session's facts itself, in two round
    /// trips (`crate::vitals_memory`), so `keta bench` can measure both in one run.
    pub vitals_memory: bool,
    /// The URL without Keta's own parameters, for `pg_dump`/`pg_restore` (libpq).
    pub libpq_url: String,
    /// The same settings for the pool's pipelining connections (`postgres/pipeline.rs`).
    pipe_config: tokio_postgres::Config,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("ssl", &self.ssl)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("pool_size", &self.pool_size)
            .field("pool_wait", &self.pool_wait)
            .finish_non_exhaustive()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bad_setting(key: &str, value: &str, fix: &str) -> StoreError {
    StoreError::Backend(format!("{key}={value} in the database URL: {fix}"))
}

/// Reads a `postgres://` URL: libpq's parameters go to the driver, `sslmode`/`sslrootcert`
/// choose the TLS set-up, and Keta's own (`statement_timeout_ms`, `pool_size`,
/// `pool_wait_ms`) are taken out. A bad value is refused with what to write instead.
pub fn parse_url(url: &str) -> Result<PgSettings> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept: Vec<&str> = Vec::new();
    let mut libpq: Vec<&str> = Vec::new();
    let (mut sslmode, mut rootcert) = (None::<String>, None::<String>);
    let mut statement_timeout_ms = DEFAULT_STATEMENT_TIMEOUT_MS;
    let mut pool_size = DEFAULT_POOL_SIZE;
    let mut pool_wait_ms = DEFAULT_POOL_WAIT_MS;
    let mut connect_timeout = None;
    let mut audit_inline = false;
    let mut vitals_memory = true;
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, raw) = kv.split_once('=').unwrap_or((kv, ""));
        let v = percent_decode(raw);
        match k {
            "sslmode" => {
                sslmode = Some(v);
                libpq.push(kv);
            }
            "sslrootcert" => {
                rootcert = Some(v);
                libpq.push(kv);
            }
            "statement_timeout_ms" => {
                statement_timeout_ms = v.parse::<u64>().ok().filter(|n| *n <= i32::MAX as u64).ok_or_else(|| {
                    bad_setting(k, &v, "give milliseconds as a whole number (0 turns the timeout off)")
                })?
            }
            "pool_size" => {
                pool_size = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| bad_setting(k, &v, "give a whole number of connections from 1 to 1000"))?
            }
            "pool_wait_ms" => {
                pool_wait_ms = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=3_600_000).contains(n))
                    .ok_or_else(|| bad_setting(k, &v, "give milliseconds as a whole number from 1 to 3600000"))?
            }
            "audit_chain" => {
                audit_inline = match v.as_str() {
                    "sealer" => false,
                    "inline" => true,
                    _ => return Err(bad_setting(k, &v, "use sealer (the default) or inline")),
                }
            }
            "vitals_memory" => {
                vitals_memory = match v.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err(bad_setting(k, &v, "use on (the default) or off")),
                }
            }
            _ => {
                if k == "connect_timeout" {
                    connect_timeout = Some(
                        v.parse::<u64>()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| bad_setting(k, &v, "give seconds as a whole number of at least 1"))?,
                    );
                }
                kept.push(kv);
                libpq.push(kv);
            }
        }
    }
    let ssl = match sslmode.as_deref() {
        None | Some("prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") => SslMode::Require,
        Some("verify-full") => SslMode::VerifyFull { root: rootcert.clone().map(PathBuf::from) },
        Some(other) => {
            return Err(bad_setting(
                "sslmode",
                other,
                "use one of disable, prefer, require, verify-full (verify-full checks the server's certificate and host name)",
            ));
        }
    };
    if rootcert.is_some() && !matches!(ssl, SslMode::VerifyFull { .. }) {
        return Err(StoreError::Backend(
            "sslrootcert= in the database URL is only used with sslmode=verify-full: add sslmode=verify-full or remove sslrootcert".into(),
        ));
    }
    let join = |parts: &[&str]| if parts.is_empty() { base.to_string() } else { format!("{base}?{}", parts.join("&")) };
    let mut config: postgres::Config =
        join(&kept).parse().map_err(|e| StoreError::Backend(format!("the database URL is not valid: {e}")))?;
    let mut pipe_config: tokio_postgres::Config =
        join(&kept).parse().map_err(|e| StoreError::Backend(format!("the database URL is not valid: {e}")))?;
    let connect_timeout = connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, Duration::from_secs);
    let ssl_mode = match ssl {
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyFull { .. } => postgres::config::SslMode::Require,
    };
    config.connect_timeout(connect_timeout);
    config.ssl_mode(ssl_mode);
    pipe_config.connect_timeout(connect_timeout);
    pipe_config.ssl_mode(ssl_mode);
    let tls = match &ssl {
        SslMode::Disable => None,
        SslMode::Prefer | SslMode::Require => Some(tls::unverified()?),
        SslMode::VerifyFull { root } => Some(tls::verified(root.as_deref())?),
    };
    Ok(PgSettings {
        config,
        ssl,
        connect_timeout,
        statement_timeout_ms,
        pool_size,
        pool_wait: Duration::from_millis(pool_wait_ms),
        audit_inline,
        vitals_memory,
        libpq_url: join(&libpq),
        pipe_config,
        tls,
    })
}

/// Opens one connection with the URL's TLS settings. Errors say what to change.
pub(crate) fn connect(s: &PgSettings) -> Result<Client> {
    let r = match &s.tls {
        None => s.config.connect(NoTls),
        Some(cfg) => s.config.connect(tls::MakeRustls(cfg.clone())),
    };
    r.map_err(|e| connect_error(&e))
}

/// A failed connection, with what to change.
fn connect_error(e: &postgres::Error) -> StoreError {
    let msg = e.to_string();
    let hint = if msg.contains("does not support TLS") {
        " (the server does not offer TLS and the URL requires it: enable TLS on the server, or use sslmode=prefer or sslmode=disable on a trusted network)"
    } else if msg.contains("certificate") || msg.contains("TLS") {
        " (check sslrootcert= and that the server's certificate names the host in the URL)"
    } else {
        ""
    };
    StoreError::Backend(format!("cannot connect to PostgreSQL: {msg}{hint}"))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Real(v) => match *ty {
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Bool(b) => match *ty {
                Type::INT2 | Type::INT4 | Type::INT8 => i64::from(*b).to_sql(&Type::INT8, out),
                _ => b.to_sql(ty, out),
            },
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// Statements prepared on one connection, by SQL text.
type StatementCache = HashMap<String, Statement>;

pub(crate) struct PgConn<'a, 'b> {
    pub(crate) tx: &'a mut postgres::Transaction<'b>,
    cache: Option<&'a mut StatementCache>,
}

impl<'a, 'b> PgConn<'a, 'b> {
    /// A connection whose statements are prepared for each use (backups, restores).
    pub(crate) fn new(tx: &'a mut postgres::Transaction<'b>) -> Self {
        Self { tx, cache: None }
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        let Some(cache) = self.cache.as_deref_mut() else { return Ok(self.tx.prepare(sql)?) };
        if let Some(s) = cache.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql)?;
        if cache.len() >= STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// A cached statement the schema has since changed under ("cached plan must not change
    /// result type") is prepared afresh next time.
    fn forget_on_error<T>(&mut self, sql: &str, r: std::result::Result<T, postgres::Error>) -> Result<T> {
        if let Err(e) = &r
            && e.code() == Some(&postgres::error::SqlState::FEATURE_NOT_SUPPORTED)
            && let Some(cache) = self.cache.as_deref_mut()
        {
            cache.remove(sql);
        }
        Ok(r?)
    }
}

fn to_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Conn for PgConn<'_, '_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let stmt = self.statement(sql)?;
        let r = self.tx.execute(&stmt, &to_params(params));
        self.forget_on_error(sql, r)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let stmt = self.statement(sql)?;
        let r = self.tx.query(&stmt, &to_params(params));
        let rows = self.forget_on_error(sql, r)?;
        rows_of(&rows)
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}

/// Rows as the [`Conn`] seam gives them, read by column name.
fn rows_of(rows: &[postgres::Row]) -> Result<Vec<Row>> {
    let Some(first) = rows.first() else { return Ok(Vec::new()) };
    let names: Arc<[String]> = first.columns().iter().map(|c| c.name().to_string()).collect();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut vals = Vec::with_capacity(r.len());
        for (i, col) in r.columns().iter().enumerate() {
            let v = match *col.type_() {
                Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(|v| Value::Int(v.into())),
                Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(|v| Value::Int(v.into())),
                Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Real),
                Type::FLOAT4 => r.try_get::<_, Option<f32>>(i)?.map(|v| Value::Real(v.into())),
                Type::NUMERIC => return Err(StoreError::Corrupt("NUMERIC columns are not used".into())),
                Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(Value::Bool),
                _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
            };
            vals.push(v.unwrap_or(Value::Null));
        }
        out.push(Row::new(names.clone(), vals));
    }
    Ok(out)
}

/// A pooled connection and the statements it has prepared.
struct Pooled {
    client: pipeline::PipeClient,
    statements: StatementCache,
}

pub struct PostgresBackend {
    pub(crate) url: String,
    pub(crate) settings: Arc<PgSettings>,
    pool: Arc<Mutex<Vec<Pooled>>>,
    permits: Arc<Semaphore>,
    /// The statements the pool has prepared, which a connection opened later prepares at once.
    known: Arc<pipeline::Known>,
    sealer: Sealer,
    /// Sends committed changes' notices to the other instances (`cluster::Notifier`).
    notifier: Arc<crate::cluster::Notifier>,
    /// What this server's vitals writes read of their sessions (`crate::vitals_memory`).
    pub(crate) vitals_memory: Arc<crate::vitals_memory::Memory>,
}

/// Opens a pool connection: the URL's settings and the statement timeout.
fn pool_connection(s: &PgSettings) -> Result<Pooled> {
    let mut client = pipeline::PipeClient::connect(s)?;
    client.batch_execute(&format!("SET statement_timeout = {}", s.statement_timeout_ms))?;
    Ok(Pooled { client, statements: HashMap::new() })
}

impl PostgresBackend {
    /// Connects, runs migrations and keeps up to the URL's `pool_size` connections.
    pub fn open(url: &str) -> Result<Self> {
        let settings = Arc::new(parse_url(url)?);
        let mut client = connect(&settings)?;
        crate::migrate::run_postgres(&mut client)?;
        drop(client);
        Ok(Self {
            url: settings.libpq_url.clone(),
            pool: Arc::new(Mutex::new(vec![pool_connection(&settings)?])),
            known: Arc::default(),
            permits: Arc::new(Semaphore::new(settings.pool_size)),
            sealer: Sealer::start(settings.clone()),
            notifier: Arc::new(crate::cluster::Notifier::start(settings.clone())),
            vitals_memory: Arc::default(),
            settings,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        read_only: bool,
        op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = match tokio::time::timeout(self.settings.pool_wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(StoreError::Closed),
            // Every connection stayed busy for the whole wait: refuse now, saving nothing,
            // rather than queue without limit (the request's own timeout covers this wait).
            Err(_) => return Err(StoreError::Busy { retry_after_secs: crate::sqlite::BUSY_RETRY_AFTER_SECS }),
        };
        let pool = self.pool.clone();
        let settings = self.settings.clone();
        let seal = self.sealer.signal.clone();
        let notifier = self.notifier.clone();
        let known = self.known.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().expect("pool poisoned").pop();
            let mut conn = match pooled {
                Some(c) if !c.client.is_closed() => c,
                _ => pool_connection(&settings)?,
            };
            conn.client.warm(&known, &mut conn.statements);
            crate::audit::take_appended();
            crate::cluster::take_notices();
            crate::audit::set_inline(settings.audit_inline);
            let result = (|| {
                let Pooled { client, statements } = &mut conn;
                let mut tx = pipeline::PipeConn::begin(client, statements, &known, read_only);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(&mut tx)))
                    .unwrap_or_else(|p| Err(crate::error::panicked(p)));
                match r {
                    Ok(v) => {
                        tx.commit()?;
                        Ok(v)
                    }
                    Err(e) => {
                        let _ = tx.rollback();
                        Err(e)
                    }
                }
            })();
            // A committed transaction that appended audit entries wakes the sealer.
            if crate::audit::take_appended() && result.is_ok() {
                seal.wake();
            }
            // Its change notices go out after the commit, and only if it committed.
            let notices = crate::cluster::take_notices();
            if result.is_ok() {
                notifier.send(notices);
            }
            if !conn.client.is_closed() {
                pool.lock().expect("pool poisoned").push(conn);
            }
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("database task failed: {e}")))?
    }

    pub(crate) fn stats(&self) -> crate::stats::StoreStats {
        let size = self.settings.pool_size;
        crate::stats::StoreStats {
            writer_queue_depth: None,
            writer_queue_capacity: None,
            write_batches: None,
            pool_in_use: size.saturating_sub(self.permits.available_permits()) as u64,
            pool_size: size as u64,
        }
    }

    pub(crate) async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(false, op).await
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(true, op).await
    }

    /// Chains every audit entry committed so far, waiting for a sealer working elsewhere
    /// (before a verification, a backup's manifest or an anchor is read).
    pub(crate) async fn seal_now(&self) -> Result<u64> {
        let settings = self.settings.clone();
        tokio::task::spawn_blocking(move || {
            let mut client = connect(&settings)?;
            let n = seal_all(&mut client, true).map(|n| n.unwrap_or(0));
            drop(client);
            n
        })
        .await
        .map_err(|e| StoreError::Backend(format!("database task failed: {e}")))?
    }
}

/// Seals in batches until nothing committed is left; `None` when another sealer holds the
/// chain and `wait` is false.
fn seal_all(client: &mut Client, wait: bool) -> Result<Option<u64>> {
    let mut total = 0u64;
    loop {
        let mut tx = client.transaction()?;
        let n = crate::audit::seal_postgres(&mut tx, wait)?;
        tx.commit()?;
        match n {
            None => return Ok(None),
            Some(n) => {
                total += n as u64;
                if n < crate::audit::SEAL_BATCH as usize {
                    return Ok(Some(total));
                }
            }
        }
    }
}

/// Wakes the sealer thread; shared with every pool task.
struct SealSignal {
    state: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl SealSignal {
    fn wake(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !s.0 {
            s.0 = true;
            self.cv.notify_one();
        }
    }
}

/// The one thread that chains committed audit entries (docs/decisions/0005-audit-chain.md):
/// woken by a commit that appended entries, and at least every [`SEAL_INTERVAL`]. On
/// shutdown it seals what is left before it stops.
struct Sealer {
    signal: Arc<SealSignal>,
    stopped: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sealer {
    fn start(settings: Arc<PgSettings>) -> Self {
        let signal = Arc::new(SealSignal { state: Mutex::new((false, false)), cv: Condvar::new() });
        let stopped = Arc::new(AtomicBool::new(false));
        let (sig, stop) = (signal.clone(), stopped.clone());
        let thread = std::thread::Builder::new()
            .name("keta-audit-sealer".into())
            .spawn(move || {
                let mut client: Option<Client> = None;
                loop {
                    let (woken, stopping) = {
                        let g = sig.state.lock().unwrap_or_else(|e| e.into_inner());
                        let (mut g, _) = sig
                            .cv
                            .wait_timeout_while(g, SEAL_INTERVAL, |s| !s.0 && !s.1)
                            .unwrap_or_else(|e| e.into_inner());
                        let out = (g.0, g.1);
                        g.0 = false;
                        out
                    };
                    if woken && !stopping {
                        std::thread::sleep(SEAL_GATHER);
                    }
                    if client.as_ref().is_none_or(|c| c.is_closed()) {
                        client = connect(&settings).ok();
                    }
                    if let Some(c) = client.as_mut()
                        && let Err(e) = seal_all(c, stopping)
                    {
                        tracing::warn!(error = %e, "sealing the audit chain failed; retrying");
                        client = None;
                    }
                    if stopping || stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
            })
            .expect("start the audit sealer thread");
        Self { signal, stopped, thread: Some(thread) }
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        {
            let mut s = self.signal.state.lock().unwrap_or_else(|e| e.into_inner());
            s.1 = true;
            self.signal.cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PostgresBackend {
    /// The sync client blocks on its own runtime when closed, which must not happen on
    /// an async worker thread; close the pooled connections on a plain thread instead.
    fn drop(&mut self) {
        let clients: Vec<Pooled> = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()));
        if !clients.is_empty() {
            let _ = std::thread::spawn(move || drop(clients)).join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_the_url_says_nothing() {
        let s = parse_url("postgres://keta@db.example/keta").unwrap();
        assert_eq!(s.ssl, SslMode::Prefer);
        assert_eq!(s.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(s.statement_timeout_ms, DEFAULT_STATEMENT_TIMEOUT_MS);
        assert_eq!(s.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(s.pool_wait, Duration::from_millis(DEFAULT_POOL_WAIT_MS));
        assert_eq!(s.libpq_url, "postgres://keta@db.example/keta");
    }

    #[test]
    fn keta_settings_are_read_and_kept_from_libpq() {
        let s = parse_url(
            "postgres://keta@db.example:5433/keta?sslmode=verify-full&connect_timeout=3&statement_timeout_ms=250&pool_size=4&pool_wait_ms=100&application_name=keta",
        )
        .unwrap();
        assert_eq!(s.ssl, SslMode::VerifyFull { root: None });
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!((s.statement_timeout_ms, s.pool_size, s.pool_wait), (250, 4, Duration::from_millis(100)));
        assert_eq!(s.config.get_ports(), &[5433]);
        assert_eq!(s.config.get_application_name(), Some("keta"));
        // pg_dump gets libpq's parameters only.
        assert_eq!(
            s.libpq_url,
            "postgres://keta@db.example:5433/keta?sslmode=verify-full&connect_timeout=3&application_name=keta"
        );
        assert_eq!(parse_url("postgres://h/d?sslmode=disable").unwrap().ssl, SslMode::Disable);
        assert!(!s.audit_inline);
        assert!(parse_url("postgres://h/d?audit_chain=inline").unwrap().audit_inline);
        assert!(s.vitals_memory);
        assert!(!parse_url("postgres://h/d?vitals_memory=off").unwrap().vitals_memory);
        assert!(parse_url("postgres://h/d?vitals_memory=maybe").is_err());
        assert!(parse_url("postgres://h/d?audit_chain=later").is_err());
        assert_eq!(parse_url("postgres://h/d?sslmode=require").unwrap().ssl, SslMode::Require);
    }

    #[test]
    fn bad_values_say_what_to_fix() {
        let err = |url: &str| parse_url(url).unwrap_err().to_string();
        let e = err("postgres://h/d?sslmode=verify-everything");
        assert!(e.contains("sslmode=verify-everything") && e.contains("disable, prefer, require, verify-full"), "{e}");
        let e = err("postgres://h/d?pool_size=0");
        assert!(e.contains("pool_size=0") && e.contains("1 to 1000"), "{e}");
        let e = err("postgres://h/d?statement_timeout_ms=soon");
        assert!(e.contains("statement_timeout_ms=soon") && e.contains("milliseconds"), "{e}");
        let e = err("postgres://h/d?pool_wait_ms=0");
        assert!(e.contains("pool_wait_ms=0"), "{e}");
        let e = err("postgres://h/d?connect_timeout=-1");
        assert!(e.contains("connect_timeout=-1") && e.contains("seconds"), "{e}");
        let e = err("postgres://h/d?sslmode=require&sslrootcert=/etc/ca.pem");
        assert!(e.contains("sslmode=verify-full"), "{e}");
        let e = err("postgres://h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        assert!(e.contains("sslrootcert=/nonexistent/ca.pem") && e.contains("cannot read"), "{e}");
    }

    #[test]
    fn percent_escapes_in_values_are_decoded() {
        assert_eq!(percent_decode("%2Fetc%2Fca.pem"), "/etc/ca.pem");
        assert_eq!(percent_decode("100%"), "100%");
    }
}

/// rustls for the `postgres` driver: a `MakeTlsConnect` over tokio-rustls.
mod tls {
    use std::future::Future;
    use std::io;
    use std::path::Path;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    use crate::error::{Result, StoreError};

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>> {
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Backend(format!("TLS set-up failed: {e}")))
    }

    /// `verify-full`: the chain against `root` (a PEM file) or the webpki roots, and the host name.
    pub(super) fn verified(root: Option<&Path>) -> Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        match root {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|e| {
                        StoreError::Backend(format!(
                            "sslrootcert={} in the database URL: cannot read PEM certificates from it ({e}); give the path of the server's CA certificate file",
                            path.display()
                        ))
                    })?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(StoreError::Backend(format!(
                        "sslrootcert={} in the database URL holds no usable CA certificate; give the PEM file of the CA that signed the server's certificate",
                        path.display()
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(Arc::new(builder()?.with_root_certificates(roots).with_no_client_auth()))
    }

    /// `prefer`/`require`: encrypted, certificate not checked (libpq's meaning of these modes).
    pub(super) fn unverified() -> Result<Arc<ClientConfig>> {
        let verifier = Arc::new(AnyCertificate(provider()));
        Ok(Arc::new(builder()?.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()))
    }

    /// Accepts any certificate but still checks the handshake's signatures.
    #[derive(Debug)]
    struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    #[derive(Clone)]
    pub(super) struct MakeRustls(pub(super) Arc<ClientConfig>);

    pub(super) struct Connect {
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    }

    impl<S> MakeTlsConnect<S> for MakeRustls
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        type Stream = Stream<S>;
        type TlsConnect = Connect;
        type Error = rustls::pki_types::InvalidDnsNameError;

        fn make_tls_connect(&mut self, domain: &str) -> std::result::Result<Connect, Self::Error> {
            Ok(Connect { config: self.0.clone(), name: ServerName::try_from(domain.to_string())? })
        }
    }

    impl<S> TlsConnect<S> for Connect
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        type Stream = Stream<S>;
        type Error = io::Error;
        type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

        fn connect(self, stream: S) -> Self::Future {
            Box::pin(async move {
                let s = tokio_rustls::TlsConnector::from(self.config).connect(self.name, stream).await?;
                Ok(Stream(s))
            })
        }
    }

    pub(super) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
        fn channel_binding(&self) -> ChannelBinding {
            ChannelBinding::none()
        }
    }
}
