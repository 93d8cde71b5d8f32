//! Keta's storage.
//!
//! One interface, [`Store`], whose operations are grouped by capability, one module each
//! (sites, patients, eligibility, courses, sessions, questionnaires, alerts, check-ins, the
//! controlled-substance ledger, notes, audit, backups, ...). Every
//! query is written once against [`conn::Conn`]; the SQLite and PostgreSQL backends
//! differ only in how they run a transaction and in their migrations. Every mutating
//! operation writes its audit entry in the same transaction as the change, and all
//! reads of patient data are scoped by the caller's sites. The store's own settings
//! ([`StoreSettings`]) are given when it is opened; it never reads the environment.
//!
//! The public surface is [`Store`]'s methods and the record types they take and return.
//! The `Conn` seam, `Store::read`/`Store::write` and the per-capability query functions
//! over a connection are crate-private: the web server, the CLI and the device bridge
//! call `Store` methods only, so permission, site scope and audit cannot be skipped.
//! [`testing`] (hidden) lets integration tests reach raw SQL for fault injection and
//! for looking at rows no API shows (append-only guards, audit rows, tampering).

pub mod accounts;
pub mod admin;
pub mod api_clients;
pub mod audit;
pub mod backup;
pub mod bulk_export;
pub mod cluster;
mod conn;
pub mod credentials;
pub mod error;
pub mod idempotency;
pub mod login_throttle;
mod migrate;
mod postgres;
pub mod request_id;
mod sqlite;
pub mod stats;
#[doc(hidden)]
pub mod testing;
mod time_codec;

pub mod alerts;
pub mod calendar;
pub mod chart;
pub mod checkins;
pub mod consents;
pub mod courses;
pub mod dosing;
pub mod eligibility;
pub mod fhir;
pub mod harness;
pub mod home;
pub mod import;
pub mod ledger;
pub mod medications;
pub mod monitors;
pub mod notes;
pub mod orders;
pub mod patients;
pub mod pretreatment;
pub mod questionnaires;
pub mod referrals;
pub mod rems;
pub mod research;
pub mod rota;
pub mod rules;
pub mod sessions;
pub mod site_time;
pub mod sites;
mod vitals_memory;

use std::sync::Arc;

use keta_domain::access::{self, Permission, Role};
use keta_domain::ids::{PatientId, SiteId};
use time::OffsetDateTime;

pub use conn::Backend;
pub(crate) use conn::{Conn, Row, Value};
pub use error::{Result, StoreError};
pub use migrate::latest_version;
pub use sqlite::BUSY_RETRY_AFTER_SECS;

/// Who is acting, for permissions, site scoping and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user name recorded in the audit trail.
    pub name: String,
    pub scope: SiteScope,
    /// The user's role; `None` only for Keta itself (setup, demo seeding, imports).
    pub role: Option<Role>,
    pub user_id: Option<i64>,
    /// Patients outside `scope` opened through unexpired break-glass grants.
    pub break_glass: Vec<PatientId>,
}

impl Actor {
    /// Keta itself (setup, demo seeding), seeing every site with every permission.
    pub fn system() -> Self {
        Self { name: "system".into(), scope: SiteScope::All, role: None, user_id: None, break_glass: vec![] }
    }

    /// Keta itself acting for a named source (a bedside monitor), recorded under that name.
    pub fn system_named(name: String) -> Self {
        Self { name, ..Self::system() }
    }

    /// A staff member with a role, limited to `scope`.
    pub fn staff(name: impl Into<String>, role: Role, scope: SiteScope) -> Self {
        Self { name: name.into(), scope, role: Some(role), user_id: None, break_glass: vec![] }
    }

    /// The permission table, checked by every store operation before it touches data.
    pub fn require(&self, p: Permission) -> Result<()> {
        match self.role {
            None => Ok(()),
            Some(r) if access::allowed(r, p) => Ok(()),
            Some(r) => {
                Err(StoreError::Forbidden(format!("a {} may not {}", r.label().to_lowercase(), permission_words(p))))
            }
        }
    }

    /// Whether this actor may see a record of `patient` at `site`.
    pub fn may_see(&self, site: SiteId, patient: PatientId) -> bool {
        self.scope.allows(site) || self.break_glass.contains(&patient)
    }

    pub fn can(&self, p: Permission) -> bool {
        self.require(p).is_ok()
    }
}

fn permission_words(p: Permission) -> &'static str {
    match p {
        Permission::ViewDemographics => "view patient details",
        Permission::EditDemographics => "register or edit patients",
        Permission::ViewClinical => "open clinical records",
        Permission::RecordSession => "record in a treatment session",
        Permission::PlanTreatment => "assess eligibility or plan treatment",
        Permission::EnterQuestionnaire => "enter questionnaires",
        Permission::SignNotes => "sign notes",
        Permission::RecordLedger => "record controlled-substance entries",
        Permission::ViewLedger => "view the controlled-substance ledger",
        Permission::ManageUsers => "manage users and sites",
        Permission::ViewAudit => "read the audit trail",
        Permission::ExportResearch => "export the research data set",
    }
}

/// Which sites' patients an actor may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteScope {
    All,
    Sites(Vec<SiteId>),
}

impl SiteScope {
    pub fn allows(&self, site: SiteId) -> bool {
        match self {
            SiteScope::All => true,
            SiteScope::Sites(s) => s.contains(&site),
        }
    }
    /// An SQL condition restricting `column` to the scope. Site ids are integers
    /// from our own types, so they are inlined safely.
    pub(crate) fn sql(&self, column: &str) -> String {
        match self {
            SiteScope::All => "1 = 1".into(),
            SiteScope::Sites(s) if s.is_empty() => "1 = 0".into(),
            SiteScope::Sites(s) => {
                format!("{column} IN ({})", s.iter().map(|id| id.0.to_string()).collect::<Vec<_>>().join(","))
            }
        }
    }
}

/// Where time comes from; tests inject a fixed clock.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

pub(crate) enum Engine {
    Sqlite(sqlite::SqliteBackend),
    Postgres(postgres::PostgresBackend),
}

/// The store's own settings, part of `keta serve`'s settings (`keta serve --print-config`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreSettings {
    /// The security setting `reauthentication_window`: how recently a user must have
    /// re-entered their password before recording a ledger entry, signing a note or
    /// resetting another's credentials (AC-11); 1 to 15 minutes.
    pub reauthentication_window: time::Duration,
    /// Read connections to a SQLite database (PostgreSQL's pool is sized by its URL's
    /// `pool_size`).
    pub sqlite_readers: usize,
}

impl StoreSettings {
    /// The default number of SQLite read connections (a product setting).
    pub const DEFAULT_SQLITE_READERS: usize = 4;

    /// Refuses a value out of its range, naming the setting.
    pub fn check(&self) -> Result<()> {
        ledger::check_reauthentication_window(self.reauthentication_window)?;
        if !(1..=64).contains(&self.sqlite_readers) {
            return Err(keta_domain::DomainError::field("sqlite_readers", "set from 1 to 64").into());
        }
        Ok(())
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            reauthentication_window: keta_domain::ledger::DEFAULT_REAUTHENTICATION_WINDOW,
            sqlite_readers: Self::DEFAULT_SQLITE_READERS,
        }
    }
}

/// The storage handle shared by the web server and the CLI. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) engine: Arc<Engine>,
    pub(crate) clock: Clock,
    settings: StoreSettings,
    /// When writes started failing for a full disk, for readiness; `None` while they work.
    disk_full_since: Arc<std::sync::Mutex<Option<OffsetDateTime>>>,
}

impl Store {
    /// Opens `sqlite://path` or `postgres://...` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with_clock(url, system_clock()).await
    }

    pub async fn open_with_clock(url: &str, clock: Clock) -> Result<Self> {
        Self::open_with(url, clock, StoreSettings::default()).await
    }

    /// Opens the database with these settings (checked first).
    pub async fn open_with(url: &str, clock: Clock, settings: StoreSettings) -> Result<Self> {
        settings.check()?;
        let readers = settings.sqlite_readers;
        let url = url.to_string();
        let engine = tokio::task::spawn_blocking(move || -> Result<Engine> {
            if let Some(path) = url.strip_prefix("sqlite://") {
                let path = path.split('?').next().unwrap_or(path);
                if path.is_empty() {
                    return Err(StoreError::Backend(
                        "sqlite:// needs a file path, e.g. sqlite://keta-data/keta.db".into(),
                    ));
                }
                let writer_queue = sqlite::writer_queue_setting(&url)?;
                Ok(Engine::Sqlite(sqlite::SqliteBackend::open(std::path::Path::new(path), readers, writer_queue)?))
            } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                Ok(Engine::Postgres(postgres::PostgresBackend::open(&url)?))
            } else {
                Err(StoreError::Backend(format!(
                    "unsupported database URL '{url}': use sqlite://PATH or postgres://USER@HOST/DB"
                )))
            }
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
        Ok(Self { engine: Arc::new(engine), clock, settings, disk_full_since: Arc::default() })
    }

    /// The settings this store was opened with.
    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// How recently a user must have re-entered their password (AC-11).
    pub fn reauthentication_window(&self) -> time::Duration {
        self.settings.reauthentication_window
    }

    /// Refuses (403) unless `at` is within the re-authentication window before now.
    pub fn require_reauthentication(&self, what: &str, at: Option<OffsetDateTime>) -> Result<()> {
        ledger::require_reauthentication(what, at, self.now(), self.reauthentication_window())
    }

    pub fn backend(&self) -> Backend {
        match &*self.engine {
            Engine::Sqlite(_) => Backend::Sqlite,
            Engine::Postgres(_) => Backend::Postgres,
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// Runs `op` in a write transaction. All of it commits, or none of it. Under a
    /// request's idempotency claim the transaction also marks the claim as written.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        // The request's id goes with the operation to the thread that runs it (audit entries).
        let request = request_id::current();
        let op = move |c: &mut dyn Conn| request_id::on_thread(request, || op(c));
        let result = if let Some(claim) = idempotency::current_claim() {
            let now = self.now();
            // The mark goes first: a write may send its `COMMIT` with its last statements
            // (`Conn::query_each_last`), and a claim taken over by a retry stops the write
            // before it does anything.
            let op = move |c: &mut dyn Conn| {
                idempotency::mark_written(c, &claim, now)?;
                op(c)
            };
            match &*self.engine {
                Engine::Sqlite(b) => b.write(op).await,
                Engine::Postgres(b) => b.write(op).await,
            }
        } else {
            match &*self.engine {
                Engine::Sqlite(b) => b.write(op).await,
                Engine::Postgres(b) => b.write(op).await,
            }
        };
        self.note_disk(&result);
        result
    }

    /// Remembers a full disk for readiness; a write that commits clears it.
    fn note_disk<T>(&self, result: &Result<T>) {
        let mut since = self.disk_full_since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Err(StoreError::DiskFull) => {
                if since.is_none() {
                    tracing::error!("the database disk is full: writes are refused until space is freed");
                    *since = Some(self.now());
                }
            }
            Ok(_) => {
                if since.take().is_some() {
                    tracing::info!("the database disk has room again: writes are accepted");
                }
            }
            Err(_) => {}
        }
    }

    /// Whether writes are failing for a full disk, and since when (readiness reports it). A
    /// write that commits clears it; [`Self::probe_disk`] checks again without waiting for one.
    pub fn disk_full_since(&self) -> Option<OffsetDateTime> {
        *self.disk_full_since.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// While the disk is known to be full, tries a write that needs room and changes no data,
    /// so readiness recovers once space is freed even if nobody writes: on SQLite a table
    /// holding 64 KiB is created and dropped in one transaction (its pages stay in the file as
    /// free pages, room the next real writes use); on PostgreSQL a temporary table (catalog
    /// rows). Returns whether the disk is (still) full. No audit entry: no clinical or account
    /// data is touched.
    pub async fn probe_disk(&self) -> bool {
        if self.disk_full_since().is_none() {
            return false;
        }
        let probe = self
            .write(|c| {
                match c.backend() {
                    Backend::Sqlite => {
                        c.execute("CREATE TABLE keta_disk_probe (room BLOB)", &[])?;
                        c.execute("INSERT INTO keta_disk_probe (room) VALUES (zeroblob(65536))", &[])?;
                        c.execute("DROP TABLE keta_disk_probe", &[])?;
                    }
                    Backend::Postgres => {
                        c.execute("CREATE TEMPORARY TABLE keta_disk_probe (room BYTEA) ON COMMIT DROP", &[])?;
                    }
                }
                Ok(())
            })
            .await;
        matches!(probe, Err(StoreError::DiskFull))
    }

    /// Runs `op` in a read-only transaction (a consistent snapshot).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        match &*self.engine {
            Engine::Sqlite(b) => b.read(op).await,
            Engine::Postgres(b) => b.read(op).await,
        }
    }

    /// Waits until every write queued before it has committed (SQLite runs writes in order,
    /// so an empty write behind them finishes last; PostgreSQL has no queue). For shutdown.
    pub async fn settle_writes(&self) -> Result<()> {
        self.write(|_| Ok(())).await
    }

    /// Readiness: the database answers a query.
    pub async fn ping(&self) -> Result<()> {
        self.read(|c| c.query("SELECT 1", &[]).map(|_| ())).await
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    fn sqlite_url() -> String {
        let dir =
            std::env::temp_dir().join(format!("keta-settings-{}-{:x}", std::process::id(), rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("a temp folder");
        format!("sqlite://{}", dir.join("k.db").display())
    }

    #[tokio::test]
    async fn the_reauthentication_window_is_the_one_the_store_was_opened_with() {
        let now = OffsetDateTime::now_utc();
        let clock: Clock = Arc::new(move || now);
        let two_minutes_ago = Some(now - time::Duration::minutes(2));
        let default = Store::open_with(&sqlite_url(), clock.clone(), StoreSettings::default()).await.unwrap();
        assert!(default.require_reauthentication("sign", two_minutes_ago).is_ok());
        let strict = StoreSettings { reauthentication_window: time::Duration::minutes(1), ..Default::default() };
        let strict = Store::open_with(&sqlite_url(), clock.clone(), strict).await.unwrap();
        assert!(matches!(strict.require_reauthentication("sign", two_minutes_ago), Err(StoreError::Forbidden(_))));
        // Out of range: refused before anything is opened.
        let bad = StoreSettings { reauthentication_window: time::Duration::minutes(30), ..Default::default() };
        assert!(Store::open_with(&sqlite_url(), clock, bad).await.is_err());
    }
}
