//! Backups, restores and audit anchors (security-reference §2.5 BK-1, BK-2 and §6.3).
//!
//! A backup is two files side by side:
//! * `FILE`: SQLite, a `VACUUM INTO` copy (one consistent snapshot, taken while the writer
//!   keeps committing); PostgreSQL, a `pg_dump --format=custom` archive of an exported
//!   snapshot;
//! * `FILE.manifest.json`: the format, schema version, row counts per table, a content digest
//!   of the key tables, the audit chain's head (sequence and hash), the file's size and
//!   SHA-256, when it was taken and from where. Both backends read the counts, digests and head
//!   from the same snapshot as the file, so the manifest describes exactly what the file holds.
//!
//! A restore checks the file against its manifest before touching the target, restores into an
//! empty database only, compares what it restored with the manifest, verifies the audit chain
//! and that the manifest's head is in it, and ends every sign-in session copied from the backup.
//!
//! Anchors: the chain's head written somewhere else (a manifest, an anchor file of JSON lines)
//! lets `keta audit verify --anchor` see a chain whose tail was cut off, which the chain alone
//! cannot show.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::audit::{self, ChainHead};
use crate::conn::{Backend, Conn, Value};
use crate::error::StoreError;
use crate::postgres::PgConn;
use crate::sqlite::SqliteConn;
use crate::time_codec::ms;
use crate::{Actor, Store, params};

/// The manifest format this build writes and reads.
pub const FORMAT: &str = "keta-backup/1";

/// Tables whose content is digested (ordered by their key), besides every table's row count.
/// The audit log is digested along its chain (sealed entries, in chain order).
pub const KEY_TABLES: &[(&str, &str)] = &[
    ("audit_log", "chain_seq"),
    ("patients", "id"),
    ("courses", "id"),
    ("sessions", "id"),
    ("vitals", "id"),
    ("questionnaire_responses", "id"),
    ("dose_records", "id"),
    ("cs_ledger", "id"),
    ("note_signatures", "id"),
];

/// Why a backup or restore did not happen, in words naming what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the backup's manifest {0} is missing: without it the backup cannot be checked, so it is not restored")]
    ManifestMissing(PathBuf),
    #[error("the backup's manifest {path} is unreadable ({reason}); the backup is not restored")]
    ManifestUnreadable { path: PathBuf, reason: String },
    #[error("the backup file {0} is missing")]
    FileMissing(PathBuf),
    #[error(
        "the backup file {path} is {actual} bytes but its manifest says {expected}: it is truncated or damaged; nothing was restored"
    )]
    WrongSize { path: PathBuf, expected: u64, actual: u64 },
    #[error(
        "the backup file {path} does not match its manifest (SHA-256 {actual}, expected {expected}): it is corrupted; nothing was restored"
    )]
    HashMismatch { path: PathBuf, expected: String, actual: String },
    #[error(
        "the backup is schema version {backup} but this keta knows only up to {known}: restore it with a newer keta"
    )]
    SchemaTooNew { backup: i64, known: i64 },
    #[error("{0}")]
    WrongBackend(String),
    #[error("the target database is not empty ({0}); restore only into a new, empty database")]
    TargetNotEmpty(String),
    #[error("{tool} failed: {message}")]
    Tool { tool: &'static str, message: String },
    #[error("the restored database does not match the backup's manifest: {0}")]
    Mismatch(String),
    #[error("the restored audit chain does not verify: entry {seq} {reason}")]
    ChainBroken { seq: i64, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("the anchor file {path} is unreadable: {reason}")]
    AnchorsUnreadable { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> Self {
        BackupError::Store(e.into())
    }
}

impl From<postgres::Error> for BackupError {
    fn from(e: postgres::Error) -> Self {
        BackupError::Store(e.into())
    }
}

type Result<T> = std::result::Result<T, BackupError>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// What a database holds, read in one snapshot: the manifest's body, and what a restore is
/// compared against.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Survey {
    pub schema_version: i64,
    /// Rows per table.
    pub tables: BTreeMap<String, i64>,
    /// SHA-256 over the rows of each of [`KEY_TABLES`], in key order.
    pub digests: BTreeMap<String, String>,
    pub audit_head: Option<ChainHead>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The backup file's name (it lies beside the manifest).
    pub file_name: String,
    pub file_bytes: u64,
    pub file_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    /// The database it was taken from, without any password.
    pub source: String,
    pub host: Option<String>,
    pub keta_version: String,
    #[serde(flatten)]
    pub survey: Survey,
}

/// The manifest's path for a backup file: `FILE.manifest.json`.
pub fn manifest_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A database URL without its password, for the manifest.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn list_tables(conn: &mut dyn Conn) -> crate::Result<Vec<String>> {
    let sql = match conn.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        }
    };
    conn.query(sql, &[])?.iter().map(|r| r.text("name")).collect()
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// SHA-256 over a table's rows with `key` up to `up_to` (all rows when `None`), in key order.
/// Values are encoded by kind, booleans as integers, so the digest does not depend on how a
/// backend spells them.
pub(crate) fn table_digest(conn: &mut dyn Conn, table: &str, key: &str, up_to: Option<i64>) -> crate::Result<String> {
    let mut h = Sha256::new();
    let sql = format!(
        "SELECT {k} AS page_key, * FROM {t} WHERE {k} > $1 AND {k} <= $2 ORDER BY {k} LIMIT 2000",
        k = quoted(key),
        t = quoted(table)
    );
    let mut after = i64::MIN;
    loop {
        let rows = conn.query(&sql, params![after, up_to.unwrap_or(i64::MAX)])?;
        let Some(last) = rows.last() else { break };
        after = last.i64("page_key")?;
        for r in &rows {
            h.update((r.values().len() as u64).to_le_bytes());
            for v in &r.values()[1..] {
                match v {
                    Value::Null => h.update(b"n"),
                    Value::Int(i) => {
                        h.update(b"i");
                        h.update(i.to_le_bytes());
                    }
                    Value::Bool(b) => {
                        h.update(b"i");
                        h.update(i64::from(*b).to_le_bytes());
                    }
                    Value::Real(f) => {
                        h.update(b"r");
                        h.update(f.to_bits().to_le_bytes());
                    }
                    Value::Text(s) => {
                        h.update(b"t");
                        h.update((s.len() as u64).to_le_bytes());
                        h.update(s.as_bytes());
                    }
                }
            }
        }
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads schema version, row counts, key-table digests and the audit head in the caller's
/// transaction (one snapshot).
pub(crate) fn survey(conn: &mut dyn Conn) -> crate::Result<Survey> {
    let tables = list_tables(conn)?;
    let schema_version = if tables.iter().any(|t| t == "schema_migrations") {
        conn.query_opt("SELECT max(version) AS version FROM schema_migrations", &[])?
            .and_then(|r| r.opt_i64("version").transpose())
            .transpose()?
            .unwrap_or(0)
    } else {
        0
    };
    let mut counts = BTreeMap::new();
    for t in &tables {
        let n =
            conn.query_opt(&format!("SELECT count(*) AS n FROM {}", quoted(t)), &[])?.map_or(Ok(0), |r| r.i64("n"))?;
        counts.insert(t.clone(), n);
    }
    let mut digests = BTreeMap::new();
    for (t, key) in KEY_TABLES {
        if counts.contains_key(*t) {
            digests.insert((*t).to_string(), table_digest(conn, t, key, None)?);
        }
    }
    let audit_head = if counts.contains_key("audit_log") { audit::head(conn)? } else { None };
    Ok(Survey { schema_version, tables: counts, digests, audit_head })
}

/// The first difference between what was restored and what the manifest describes.
fn compare(restored: &Survey, manifest: &Survey) -> Option<String> {
    if restored.schema_version != manifest.schema_version {
        return Some(format!(
            "schema version {} restored, {} in the manifest",
            restored.schema_version, manifest.schema_version
        ));
    }
    for (t, n) in &manifest.tables {
        match restored.tables.get(t) {
            None => return Some(format!("table {t} is missing")),
            Some(m) if m != n => return Some(format!("table {t} has {m} rows, the manifest says {n}")),
            _ => {}
        }
    }
    if let Some(t) = restored.tables.keys().find(|t| !manifest.tables.contains_key(*t)) {
        return Some(format!("table {t} is not in the manifest"));
    }
    for (t, d) in &manifest.digests {
        if restored.digests.get(t) != Some(d) {
            return Some(format!("the content of table {t} differs from the backup's"));
        }
    }
    if restored.audit_head != manifest.audit_head {
        return Some(format!(
            "the audit chain's head is {:?}, the manifest's is {:?}",
            restored.audit_head, manifest.audit_head
        ));
    }
    None
}

fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(io(format!("opening {}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io(format!("reading {}", path.display())))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((n, hex(&h.finalize())))
}

fn fsync(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(io(format!("syncing {}", path.display())))
}

fn fsync_dir_of(path: &Path) {
    // Makes the rename durable; a failure here is not worth failing the backup for.
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(d).and_then(|f| f.sync_all());
    }
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A URI for SQLite that opens `path` read-only and immutable: no lock, no `-wal`/`-shm` files.
fn immutable_uri(path: &Path) -> String {
    let mut s = String::from("file:");
    for c in path.display().to_string().chars() {
        match c {
            '%' => s.push_str("%25"),
            '?' => s.push_str("%3f"),
            '#' => s.push_str("%23"),
            c => s.push(c),
        }
    }
    s.push_str("?immutable=1");
    s
}

fn sqlite_survey(conn: &rusqlite::Connection) -> crate::Result<Survey> {
    let mut cache = HashMap::new();
    conn.execute_batch("BEGIN")?;
    let r = survey(&mut SqliteConn { conn, sql_cache: &mut cache });
    let _ = conn.execute_batch("COMMIT");
    r
}

/// `VACUUM INTO` a partial file through a connection of its own, so the clinic's writer
/// keeps committing; then the manifest is read from the copy itself.
fn backup_sqlite(source: &Path, partial: &Path) -> Result<Survey> {
    let conn = rusqlite::Connection::open_with_flags(source, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute("VACUUM INTO ?1", [partial.display().to_string()])?;
    drop(conn);
    let copy = rusqlite::Connection::open_with_flags(
        immutable_uri(partial),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )?;
    Ok(sqlite_survey(&copy)?)
}

fn tool_missing(tool: &'static str, e: std::io::Error) -> BackupError {
    BackupError::Tool {
        tool,
        message: if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{tool} is not on PATH: install the PostgreSQL client tools of the server's major version (Debian: apt-get install postgresql-client)"
            )
        } else {
            e.to_string()
        },
    }
}

/// Whether `pg_dump` and `pg_restore` can be run (PostgreSQL backups need them).
pub fn postgres_tools_present() -> bool {
    ["pg_dump", "pg_restore"]
        .iter()
        .all(|t| Command::new(t).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// Exports a REPEATABLE READ snapshot, reads the manifest in it and has `pg_dump` dump
/// exactly that snapshot while the transaction stays open.
fn backup_postgres(url: &str, partial: &Path) -> Result<Survey> {
    let settings = crate::postgres::parse_url(url)?;
    let mut client = crate::postgres::connect(&settings)?;
    let url = settings.libpq_url.as_str();
    let mut tx =
        client.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).read_only(true).start()?;
    let snapshot: String = tx.query_one("SELECT pg_export_snapshot()", &[])?.get(0);
    let s = survey(&mut PgConn::new(&mut tx))?;
    let out = Command::new("pg_dump")
        .arg("--format=custom")
        .arg("--no-owner")
        .arg("--no-privileges")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--file")
        .arg(partial)
        .arg("--dbname")
        .arg(url)
        .output()
        .map_err(|e| tool_missing("pg_dump", e))?;
    if !out.status.success() {
        return Err(BackupError::Tool { tool: "pg_dump", message: String::from_utf8_lossy(&out.stderr).trim().into() });
    }
    tx.commit()?;
    Ok(s)
}

impl Store {
    /// Takes a consistent online backup into `file` and writes `FILE.manifest.json` beside it.
    /// Both are written under temporary names and renamed when complete, so a backup that
    /// exists has its manifest. Refuses to overwrite an existing backup.
    pub async fn backup_to(&self, file: &Path) -> Result<Manifest> {
        let file = file.to_path_buf();
        let manifest_file = manifest_path(&file);
        for p in [&file, &manifest_file] {
            if p.exists() {
                return Err(BackupError::Io {
                    what: format!("{} already exists; name a new file", p.display()),
                    source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
                });
            }
        }
        if let Some(d) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
        }
        // The manifest records the chain's head: chain what has committed so far first.
        self.seal_audit_chain().await?;
        let (backend, source) = match &*self.engine {
            crate::Engine::Sqlite(b) => ("sqlite", Source::Sqlite(b.path.clone())),
            crate::Engine::Postgres(b) => ("postgres", Source::Postgres(b.url.clone())),
        };
        let taken_at = self.now();
        tokio::task::spawn_blocking(move || -> Result<Manifest> {
            let partial = with_suffix(&file, ".partial");
            let _ = std::fs::remove_file(&partial);
            let (survey, source_name) = match &source {
                Source::Sqlite(p) => (backup_sqlite(p, &partial), format!("sqlite://{}", p.display())),
                Source::Postgres(u) => (backup_postgres(u, &partial), redact(u)),
            };
            let survey = match survey {
                Ok(s) => s,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            };
            fsync(&partial)?;
            let (file_bytes, file_sha256) = sha256_file(&partial)?;
            std::fs::rename(&partial, &file).map_err(io(format!("renaming {} into place", partial.display())))?;
            let manifest = Manifest {
                format: FORMAT.into(),
                backend: backend.into(),
                file_name: file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                file_bytes,
                file_sha256,
                taken_at,
                source: source_name,
                host: host_name(),
                keta_version: env!("CARGO_PKG_VERSION").into(),
                survey,
            };
            let mpartial = with_suffix(&manifest_file, ".partial");
            let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
            std::fs::write(&mpartial, text + "\n").map_err(io(format!("writing {}", mpartial.display())))?;
            fsync(&mpartial)?;
            std::fs::rename(&mpartial, &manifest_file)
                .map_err(io(format!("renaming {} into place", mpartial.display())))?;
            fsync_dir_of(&file);
            Ok(manifest)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("backup task failed: {e}")))?
    }
}

enum Source {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Reads a backup's manifest and checks the file against it (size, then SHA-256).
pub fn check_backup(file: &Path) -> Result<Manifest> {
    let mpath = manifest_path(file);
    let text = match std::fs::read_to_string(&mpath) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BackupError::ManifestMissing(mpath)),
        Err(e) => return Err(BackupError::ManifestUnreadable { path: mpath, reason: e.to_string() }),
    };
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| BackupError::ManifestUnreadable { path: mpath.clone(), reason: e.to_string() })?;
    if manifest.format != FORMAT {
        return Err(BackupError::ManifestUnreadable {
            path: mpath,
            reason: format!("format '{}', this keta reads '{FORMAT}'", manifest.format),
        });
    }
    let actual = match std::fs::metadata(file) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BackupError::FileMissing(file.into())),
        Err(e) => return Err(BackupError::Io { what: format!("reading {}", file.display()), source: e }),
    };
    if actual != manifest.file_bytes {
        return Err(BackupError::WrongSize { path: file.into(), expected: manifest.file_bytes, actual });
    }
    let (_, sha) = sha256_file(file)?;
    if sha != manifest.file_sha256 {
        return Err(BackupError::HashMismatch { path: file.into(), expected: manifest.file_sha256, actual: sha });
    }
    if manifest.survey.schema_version > crate::latest_version() {
        return Err(BackupError::SchemaTooNew {
            backup: manifest.survey.schema_version,
            known: crate::latest_version(),
        });
    }
    Ok(manifest)
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    #[serde(with = "time::serde::rfc3339")]
    pub backup_taken_at: OffsetDateTime,
    pub tables: usize,
    pub rows: i64,
    pub audit_entries_verified: u64,
    pub audit_head: Option<ChainHead>,
    pub sign_in_sessions_ended: u64,
}

/// Checks the restored copy in the caller's transaction, then ends the sign-in sessions it
/// holds (audited in the same transaction).
fn finish_restore(conn: &mut dyn Conn, manifest: &Manifest, now: OffsetDateTime) -> Result<RestoreReport> {
    let restored = survey(conn)?;
    if let Some(diff) = compare(&restored, &manifest.survey) {
        return Err(BackupError::Mismatch(diff));
    }
    let (verified, broken) = audit::verify(conn)?;
    if let Some(b) = broken {
        return Err(BackupError::ChainBroken { seq: b.seq, reason: b.reason });
    }
    if let Some(head) = &manifest.survey.audit_head
        && let Some(b) = audit::check_anchor(conn, head)?
    {
        return Err(BackupError::ChainBroken { seq: b.seq, reason: b.reason });
    }
    // Sessions in a backup belong to another time; a stolen cookie must not come back with it.
    let ended = conn.execute(
        "UPDATE auth_sessions SET ended_at = $1, end_reason = 'restored' WHERE ended_at IS NULL",
        params![ms(now)],
    )?;
    audit::record(
        conn,
        &Actor::system(),
        now,
        audit::Entry {
            action: audit::Action::Update,
            object_type: "auth_sessions",
            object_id: None,
            patient_id: None,
            site_id: None,
            fields: &["ended_at", "end_reason"],
        },
    )?;
    Ok(RestoreReport {
        backup_taken_at: manifest.taken_at,
        tables: restored.tables.len(),
        rows: restored.tables.values().sum(),
        audit_entries_verified: verified,
        audit_head: restored.audit_head,
        sign_in_sessions_ended: ended,
    })
}

/// Restores the backup `file` into the empty database at `target_url`.
pub async fn restore(file: &Path, target_url: &str, now: OffsetDateTime) -> Result<RestoreReport> {
    let file = file.to_path_buf();
    let url = target_url.to_string();
    tokio::task::spawn_blocking(move || {
        let manifest = check_backup(&file)?;
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = Path::new(path.split('?').next().unwrap_or(path));
            if manifest.backend != "sqlite" {
                return Err(BackupError::WrongBackend(format!(
                    "{} is a {} backup: restore it into a postgres:// database",
                    file.display(),
                    manifest.backend
                )));
            }
            restore_sqlite(&file, path, &manifest, now)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if manifest.backend != "postgres" {
                return Err(BackupError::WrongBackend(format!(
                    "{} is a {} backup: restore it into a sqlite:// file",
                    file.display(),
                    manifest.backend
                )));
            }
            restore_postgres(&file, &url, &manifest, now)
        } else {
            Err(BackupError::WrongBackend(format!(
                "unsupported database URL '{url}': use sqlite://PATH or postgres://USER@HOST/DB"
            )))
        }
    })
    .await
    .map_err(|e| StoreError::Backend(format!("restore task failed: {e}")))?
}

/// Copies into `TARGET.restoring`, checks and finishes it there, then renames it into place:
/// the target only ever appears verified.
fn restore_sqlite(file: &Path, target: &Path, manifest: &Manifest, now: OffsetDateTime) -> Result<RestoreReport> {
    if let Ok(m) = std::fs::metadata(target)
        && m.len() > 0
    {
        let conn = rusqlite::Connection::open_with_flags(target, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let tables: Vec<String> = match conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        {
            Ok(t) => t,
            Err(_) => {
                return Err(BackupError::TargetNotEmpty(format!(
                    "{} exists and is not a SQLite database",
                    target.display()
                )));
            }
        };
        if !tables.is_empty() {
            return Err(BackupError::TargetNotEmpty(format!(
                "{} already has {} tables, e.g. {}",
                target.display(),
                tables.len(),
                tables.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    // A journal beside an empty file may still hold a database's pages.
    for side in ["-wal", "-journal"] {
        let p = with_suffix(target, side);
        if p.exists() {
            return Err(BackupError::TargetNotEmpty(format!("{} exists beside it", p.display())));
        }
    }
    if let Some(d) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
    }
    let work = with_suffix(target, ".restoring");
    let _ = std::fs::remove_file(&work);
    std::fs::copy(file, &work).map_err(io(format!("copying {} to {}", file.display(), work.display())))?;
    let result = (|| {
        let conn = rusqlite::Connection::open(&work)?;
        conn.execute_batch("PRAGMA foreign_keys = ON; BEGIN IMMEDIATE")?;
        let mut cache = HashMap::new();
        let r = finish_restore(&mut SqliteConn { conn: &conn, sql_cache: &mut cache }, manifest, now);
        match r {
            Ok(report) => {
                conn.execute_batch("COMMIT")?;
                conn.close().map_err(|(_, e)| e)?;
                Ok(report)
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    })();
    match result {
        Ok(report) => {
            fsync(&work)?;
            std::fs::rename(&work, target).map_err(io(format!("renaming {} into place", work.display())))?;
            fsync_dir_of(target);
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&work);
            Err(e)
        }
    }
}

fn restore_postgres(file: &Path, url: &str, manifest: &Manifest, now: OffsetDateTime) -> Result<RestoreReport> {
    let settings = crate::postgres::parse_url(url)?;
    let mut client = crate::postgres::connect(&settings)?;
    let url = settings.libpq_url.as_str();
    let tables: Vec<String> = client
        .query("SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !tables.is_empty() {
        return Err(BackupError::TargetNotEmpty(format!(
            "it already has {} tables, e.g. {}",
            tables.len(),
            tables.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let out = Command::new("pg_restore")
        .arg("--exit-on-error")
        .arg("--single-transaction")
        .arg("--no-owner")
        .arg("--no-privileges")
        .arg("--dbname")
        .arg(url)
        .arg(file)
        .output()
        .map_err(|e| tool_missing("pg_restore", e))?;
    if !out.status.success() {
        return Err(BackupError::Tool {
            tool: "pg_restore",
            message: String::from_utf8_lossy(&out.stderr).trim().into(),
        });
    }
    let mut tx = client.transaction()?;
    let report = finish_restore(&mut PgConn::new(&mut tx), manifest, now)?;
    tx.commit()?;
    Ok(report)
}

/// One line of an anchor file: the chain's head at a moment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    pub seq: i64,
    pub row_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub anchored_at: OffsetDateTime,
}

/// Appends the head to an anchor file (JSON lines) and syncs it to disk.
pub fn append_anchor(path: &Path, head: &ChainHead, at: OffsetDateTime) -> Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
    }
    let line = serde_json::to_string(&Anchor { seq: head.seq, row_hash: head.row_hash.clone(), anchored_at: at })
        .expect("anchor serialises");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))?;
    f.write_all(format!("{line}\n").as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(io(format!("appending to {}", path.display())))
}

/// The heads recorded in an anchor file, or in a backup manifest given in its place.
pub fn read_anchors(path: &Path) -> Result<Vec<ChainHead>> {
    let bad = |reason: String| BackupError::AnchorsUnreadable { path: path.into(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    if let Ok(m) = serde_json::from_str::<Manifest>(&text) {
        return m
            .survey
            .audit_head
            .map(|h| vec![h])
            .ok_or_else(|| bad("the manifest records an empty audit chain".into()));
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let a: Anchor = serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
        out.push(ChainHead { seq: a.seq, row_hash: a.row_hash });
    }
    if out.is_empty() {
        return Err(bad("it holds no anchors".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_the_manifest() {
        assert_eq!(redact("postgres://keta:s3cret@db.local/keta"), "postgres://keta:***@db.local/keta");
        assert_eq!(redact("postgres://postgres@127.0.0.1:5432/test"), "postgres://postgres@127.0.0.1:5432/test");
        assert_eq!(redact("sqlite://keta-data/keta.db"), "sqlite://keta-data/keta.db");
    }

    #[test]
    fn the_manifest_lies_beside_its_file() {
        assert_eq!(manifest_path(Path::new("/b/keta.db")), PathBuf::from("/b/keta.db.manifest.json"));
    }
}
