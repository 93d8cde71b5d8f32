//! `keta serve` settings: defaults, then a TOML file, then `KETA_*` variables, then flags,
//! resolved once into one typed [`Config`] before anything starts. Every setting the server
//! reads is here; the web layer and the store get their parts ([`keta_web::settings::WebSettings`],
//! [`keta_store::StoreSettings`]) and never read the environment themselves.
//! `keta serve --print-config` prints the result as TOML, secrets masked, with each value's
//! origin (`default`, `file`, `env` or `flag`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use keta_domain::protocols::ProtocolLibrary;
use serde::{Deserialize, Serialize};

use crate::backups::{AuditAnchoring, BackupSchedule};

/// Settings `keta serve` and `keta demo` share: reminders, the check-in sweep, security
/// windows, request limits and the store's pool. Each is a flag, a `KETA_*` variable and,
/// for `keta serve`, a key of the settings file.
#[derive(clap::Args, Debug, Default)]
pub struct SharedOptions {
    /// The address check-in links point at, e.g. https://keta.clinic.example (default: the
    /// address served).
    #[arg(long, env = "KETA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// SMTP server for reminders, smtp://[user:pass@]host[:port]; unset: log-only delivery.
    #[arg(long, env = "KETA_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The From mailbox of reminders, e.g. 'Clinic <reminders@clinic.example>' (needed with --smtp-url).
    #[arg(long, env = "KETA_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Seconds between check-in sweeps (issue due links, record expiries; default 300, 5 to 86400).
    #[arg(long, env = "KETA_CHECKIN_SWEEP_SECONDS")]
    pub checkin_sweep_seconds: Option<u64>,
    /// Hours idempotency keys and their responses are kept (default 24, 1 to 720).
    #[arg(long, env = "KETA_IDEMPOTENCY_RETENTION_HOURS")]
    pub idempotency_retention_hours: Option<i64>,
    /// Minutes a password re-entry stays fresh for signing notes and ledger entries (AC-11;
    /// default 5, 1 to 15).
    #[arg(long, env = "KETA_REAUTHENTICATION_WINDOW_MINUTES")]
    pub reauthentication_window_minutes: Option<i64>,
    /// Minutes of inactivity that end a sign-in session (AC-4; default 15, 1 to 30).
    #[arg(long, env = "KETA_SESSION_IDLE_MINUTES")]
    pub session_idle_minutes: Option<i64>,
    /// Minutes a sign-in session lasts however active (AC-4; default 720, 5 to 720).
    #[arg(long, env = "KETA_SESSION_ABSOLUTE_MINUTES")]
    pub session_absolute_minutes: Option<i64>,
    /// Minutes a break-glass grant lasts (AC-3; default 60, 5 to 240).
    #[arg(long, env = "KETA_BREAK_GLASS_MINUTES")]
    pub break_glass_minutes: Option<i64>,
    /// The largest request body accepted, in bytes (default 1048576, 65536 to 67108864).
    #[arg(long, env = "KETA_BODY_LIMIT_BYTES")]
    pub body_limit_bytes: Option<usize>,
    /// Seconds a request may take before it is answered 408 (default 30, 1 to 600).
    #[arg(long, env = "KETA_REQUEST_TIMEOUT_SECONDS")]
    pub request_timeout_seconds: Option<u64>,
    /// Read connections to a SQLite database (default 4, 1 to 64; PostgreSQL's pool is sized
    /// by its URL's `pool_size`).
    #[arg(long, env = "KETA_SQLITE_READERS")]
    pub sqlite_readers: Option<usize>,
}

#[derive(clap::Args, Debug, Default)]
pub struct ServeOptions {
    /// A TOML file with any of the settings below, by their long names with underscores
    /// (`bind`, `database_url`, `smtp_url`, ...).
    #[arg(long, env = "KETA_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective settings (TOML, secrets masked, each with its origin) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "KETA_BIND")]
    bind: Option<SocketAddr>,
    /// sqlite://PATH or postgres://USER@HOST/DB (default sqlite://keta-data/keta.db).
    #[arg(long, env = "KETA_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Folder for scheduled backups (needs --backup-interval-minutes).
    #[arg(long, env = "KETA_BACKUP_DIR")]
    backup_dir: Option<PathBuf>,
    /// Minutes between scheduled backups (needs --backup-dir).
    #[arg(long, env = "KETA_BACKUP_INTERVAL_MINUTES")]
    backup_interval_minutes: Option<u64>,
    /// How many of the newest scheduled backups to keep (default 7).
    #[arg(long, env = "KETA_BACKUP_KEEP")]
    backup_keep: Option<usize>,
    /// A file outside the database the audit chain's head is appended to (for `keta audit verify --anchor`).
    #[arg(long, env = "KETA_AUDIT_ANCHOR_FILE")]
    audit_anchor_file: Option<PathBuf>,
    /// Seconds between audit anchors in the log and the anchor file (default 300).
    #[arg(long, env = "KETA_AUDIT_ANCHOR_INTERVAL_SECONDS")]
    audit_anchor_interval_seconds: Option<u64>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key); see docs/serving.md.
    #[arg(long, env = "KETA_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "KETA_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Reverse proxies (comma-separated IP addresses) whose X-Forwarded-For and
    /// X-Forwarded-Host are believed; see docs/serving.md.
    #[arg(long, env = "KETA_TRUSTED_PROXIES")]
    trusted_proxies: Option<String>,
    /// Listen for bedside monitors (HL7 v2 ORU^R01 over MLLP) on this address; off unless set.
    /// Keep it on loopback or a private interface, with --mllp-allowed-peers and TLS in front
    /// (a TLS-terminating proxy) when gateways are on the network; see docs/monitors.md.
    #[arg(long, env = "KETA_MLLP_BIND")]
    mllp_bind: Option<SocketAddr>,
    /// Gateways (comma-separated IP addresses) allowed to connect to the MLLP listener
    /// (default: any peer that can reach --mllp-bind).
    #[arg(long, env = "KETA_MLLP_ALLOWED_PEERS")]
    mllp_allowed_peers: Option<String>,
    /// Which field names the monitor: pv1-3 (the bed, default) or msh-4 (the sending facility).
    #[arg(long, env = "KETA_MLLP_DEVICE_FIELD")]
    mllp_device_field: Option<String>,
    /// Days raw monitor messages are kept for troubleshooting (default 30).
    #[arg(long, env = "KETA_MLLP_RAW_RETENTION_DAYS")]
    mllp_raw_retention_days: Option<u32>,
    /// Monitor readings older than this many minutes are kept for review, not attached
    /// (default 30; a clinic setting, not from the clinical reference).
    #[arg(long, env = "KETA_MLLP_MAX_AGE_MINUTES")]
    mllp_max_age_minutes: Option<u32>,
    /// Monitor readings more than this many minutes ahead of the server's clock are kept for
    /// review, not attached (default 2; a clinic setting, not from the clinical reference).
    #[arg(long, env = "KETA_MLLP_MAX_AHEAD_MINUTES")]
    mllp_max_ahead_minutes: Option<u32>,
    /// The largest MLLP frame accepted, bytes (default 1048576; a clinic setting, not from the
    /// clinical reference).
    #[arg(long, env = "KETA_MLLP_MAX_FRAME_BYTES")]
    mllp_max_frame_bytes: Option<usize>,
    /// Seconds in-flight requests get to finish after SIGTERM before the server stops without
    /// them (default 20); see docs/observability.md.
    #[arg(long, env = "KETA_SHUTDOWN_GRACE_SECONDS")]
    shutdown_grace_seconds: Option<u64>,
    /// A bearer token (at least 32 characters) that lets /metrics be read from other machines;
    /// without it only the server itself (loopback) may read it.
    #[arg(long, env = "KETA_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// A folder of the clinic's own protocol files (`*.toml`), added to the built-in library.
    #[arg(long, env = "KETA_PROTOCOLS_DIR")]
    protocols_dir: Option<PathBuf>,
    /// The folder FHIR bulk export files are written to (default: bulk-export beside the
    /// SQLite database, or keta-data/bulk-export); several instances must share it.
    #[arg(long, env = "KETA_BULK_EXPORT_DIR")]
    bulk_export_dir: Option<PathBuf>,
    /// Hours a bulk export's files are kept after it was kicked off (default 24).
    #[arg(long, env = "KETA_BULK_EXPORT_RETENTION_HOURS")]
    bulk_export_retention_hours: Option<u32>,
    /// Minutes an OAuth access token from /fhir/R4/auth/token is accepted (default 5).
    #[arg(long, env = "KETA_ACCESS_TOKEN_MINUTES")]
    access_token_minutes: Option<u32>,
    /// A folder of the clinic's edited PDF templates (`*.typ`, same names as data/documents/):
    /// each file there replaces the built-in template of that name.
    #[arg(long, env = "KETA_DOCUMENTS_DIR")]
    documents_dir: Option<PathBuf>,
    #[command(flatten)]
    pub shared: SharedOptions,
    /// Where the flags' values came from (a flag or a `KETA_*` variable), from clap; empty
    /// when built in code, which counts every value given as a flag.
    #[arg(skip)]
    pub origins: CliOrigins,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<SocketAddr>,
    database_url: Option<String>,
    backup_dir: Option<PathBuf>,
    backup_interval_minutes: Option<u64>,
    backup_keep: Option<usize>,
    audit_anchor_file: Option<PathBuf>,
    audit_anchor_interval_seconds: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    trusted_proxies: Option<Vec<String>>,
    mllp_bind: Option<SocketAddr>,
    mllp_allowed_peers: Option<Vec<String>>,
    mllp_device_field: Option<String>,
    mllp_raw_retention_days: Option<u32>,
    mllp_max_age_minutes: Option<u32>,
    mllp_max_ahead_minutes: Option<u32>,
    mllp_max_frame_bytes: Option<usize>,
    shutdown_grace_seconds: Option<u64>,
    metrics_token: Option<String>,
    protocols_dir: Option<PathBuf>,
    bulk_export_dir: Option<PathBuf>,
    bulk_export_retention_hours: Option<u32>,
    access_token_minutes: Option<u32>,
    documents_dir: Option<PathBuf>,
    public_url: Option<String>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    checkin_sweep_seconds: Option<u64>,
    idempotency_retention_hours: Option<i64>,
    reauthentication_window_minutes: Option<i64>,
    session_idle_minutes: Option<i64>,
    session_absolute_minutes: Option<i64>,
    break_glass_minutes: Option<i64>,
    body_limit_bytes: Option<usize>,
    request_timeout_seconds: Option<u64>,
    sqlite_readers: Option<usize>,
}

const FILE_KEYS: &str = "bind, database_url, backup_dir, backup_interval_minutes, backup_keep, audit_anchor_file, \
audit_anchor_interval_seconds, tls_cert, tls_key, trusted_proxies, mllp_bind, mllp_allowed_peers, mllp_device_field, \
mllp_raw_retention_days, mllp_max_age_minutes, mllp_max_ahead_minutes, mllp_max_frame_bytes, shutdown_grace_seconds, \
metrics_token, protocols_dir, bulk_export_dir, bulk_export_retention_hours, access_token_minutes, documents_dir, public_url, smtp_url, mail_from, \
checkin_sweep_seconds, idempotency_retention_hours, reauthentication_window_minutes, session_idle_minutes, \
session_absolute_minutes, break_glass_minutes, body_limit_bytes, request_timeout_seconds, sqlite_readers";

/// Product settings, not clinical ones: how many backups to keep and how often to anchor.
const DEFAULT_BACKUP_KEEP: usize = 7;
const DEFAULT_ANCHOR_INTERVAL_SECONDS: u64 = 300;
/// Product setting: how long raw monitor messages are kept for troubleshooting.
pub const DEFAULT_MLLP_RAW_RETENTION_DAYS: u32 = 30;
const DEFAULT_BIND: &str = "127.0.0.1:8080";
const DEFAULT_DATABASE_URL: &str = "sqlite://keta-data/keta.db";

/// Where one setting's value came from, lowest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Default,
    File,
    Env,
    Flag,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::File => "file",
            Origin::Env => "env",
            Origin::Flag => "flag",
        }
    }
}

/// Which command-line values came from a `KETA_*` variable rather than a flag, by setting
/// name (clap's value source).
#[derive(Debug, Default, Clone)]
pub struct CliOrigins(HashMap<String, Origin>);

impl CliOrigins {
    pub fn from_matches(m: &clap::ArgMatches) -> Self {
        let mut map = HashMap::new();
        for id in m.ids() {
            let origin = match m.value_source(id.as_str()) {
                Some(clap::parser::ValueSource::EnvVariable) => Origin::Env,
                Some(clap::parser::ValueSource::CommandLine) => Origin::Flag,
                _ => continue,
            };
            map.insert(id.as_str().to_string(), origin);
        }
        Self(map)
    }

    fn of(&self, key: &str) -> Origin {
        self.0.get(key).copied().unwrap_or(Origin::Flag)
    }
}

/// One line of `--print-config`: a setting, its effective value (None: not set) and origin.
#[derive(Debug, Clone)]
pub struct Shown {
    pub key: &'static str,
    pub value: Option<toml::Value>,
    pub origin: Origin,
}

/// Picks each setting from the layers and remembers what it picked for `--print-config`.
struct Layers<'a> {
    cli: &'a CliOrigins,
    shown: Vec<Shown>,
}

impl Layers<'_> {
    /// The flag or variable, else the file's value; `None` when neither is set.
    fn pick<T: Serialize>(&mut self, key: &'static str, cli: Option<T>, file: Option<T>) -> Option<T> {
        let (v, origin) = match (cli, file) {
            (Some(v), _) => (Some(v), self.cli.of(key)),
            (None, Some(v)) => (Some(v), Origin::File),
            (None, None) => (None, Origin::Default),
        };
        self.shown.push(Shown { key, value: v.as_ref().and_then(|v| toml::Value::try_from(v).ok()), origin });
        v
    }

    /// As [`Layers::pick`], with a default.
    fn pick_or<T: Serialize>(&mut self, key: &'static str, cli: Option<T>, file: Option<T>, default: T) -> T {
        match self.pick(key, cli, file) {
            Some(v) => v,
            None => {
                if let Some(last) = self.shown.last_mut() {
                    last.value = toml::Value::try_from(&default).ok();
                }
                default
            }
        }
    }

    /// A whole number from the layers, refused (naming the setting) outside `range`.
    fn number<T>(
        &mut self,
        key: &'static str,
        cli: Option<T>,
        file: Option<T>,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> anyhow::Result<T>
    where
        T: Serialize + PartialOrd + Copy + std::fmt::Display,
    {
        let v = self.pick_or(key, cli, file, default);
        if !range.contains(&v) {
            bail!("{key} {v} must be from {} to {}", range.start(), range.end());
        }
        Ok(v)
    }
}

/// The bedside-monitor listener's settings, when it is on.
#[derive(Debug)]
pub struct MllpConfig {
    pub bind: SocketAddr,
    pub settings: keta_web::monitors::MonitorSettings,
    pub raw_retention: time::Duration,
}

/// How check-in reminders leave: the public address of links and the SMTP server.
#[derive(Debug, Clone, Default)]
pub struct ReminderConfig {
    /// None: the address served.
    pub public_url: Option<String>,
    pub smtp_url: Option<String>,
    pub mail_from: Option<String>,
}

/// The shared settings, resolved.
#[derive(Debug)]
pub struct SharedConfig {
    pub reminders: ReminderConfig,
    pub web: keta_web::settings::WebSettings,
    pub store: keta_store::StoreSettings,
}

#[derive(Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
    pub backups: Option<BackupSchedule>,
    pub audit_anchoring: AuditAnchoring,
    /// Certificate and key files when Keta serves HTTPS itself.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub trusted_proxies: keta_web::serving::TrustedProxies,
    pub mllp: Option<MllpConfig>,
    pub shutdown_grace: Duration,
    pub metrics_token: Option<String>,
    /// The built-in protocols plus the clinic's files, checked before the server starts.
    pub protocols: ProtocolLibrary,
    /// FHIR bulk export folder and retention, OAuth access-token lifetime.
    pub bulk: keta_web::fhir::bulk::BulkSettings,
    /// The folder of the clinic's edited PDF templates, when set (checked to be a folder).
    pub documents_dir: Option<PathBuf>,
    pub shared: SharedConfig,
    /// The settings file read, if any.
    pub file: Option<PathBuf>,
    /// Every setting with its effective value and origin, in order (`--print-config`).
    pub shown: Vec<Shown>,
}

/// The shortest `metrics_token` accepted: long enough not to be guessed.
const MIN_METRICS_TOKEN: usize = 32;

/// A URL as it may be shown: its password, if any, replaced by `********`.
fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let masked_tail = mask_query_password(tail);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:********@{host}{masked_tail}"),
            None => format!("{scheme}://{userinfo}@{host}{masked_tail}"),
        },
        None => format!("{scheme}://{authority}{masked_tail}"),
    }
}

/// A `password=` query parameter (libpq style) masked.
fn mask_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else { return tail.to_string() };
    let params: Vec<String> = query
        .split('&')
        .map(|p| if p.starts_with("password=") { "password=********".to_string() } else { p.to_string() })
        .collect();
    format!("{path}?{}", params.join("&"))
}

/// The value as `--print-config` shows it: secrets masked.
fn masked(key: &str, value: &toml::Value) -> toml::Value {
    match (key, value) {
        ("metrics_token", _) => toml::Value::String("********".into()),
        ("smtp_url" | "database_url", toml::Value::String(s)) => toml::Value::String(mask_url_password(s)),
        _ => value.clone(),
    }
}

impl Config {
    /// The effective settings as TOML (a valid settings file), secrets masked, each line
    /// ending with where its value came from; unset settings as comments.
    pub fn print(&self) -> String {
        let mut out =
            String::from("# keta serve: effective settings. Precedence: flag > env (KETA_<NAME>) > file > default.\n");
        match &self.file {
            Some(f) => out.push_str(&format!("# settings file: {}\n", f.display())),
            None => out.push_str("# settings file: none\n"),
        }
        for s in &self.shown {
            match &s.value {
                Some(v) => {
                    let mut table = toml::Table::new();
                    table.insert(s.key.to_string(), masked(s.key, v));
                    let line = toml::to_string(&table).unwrap_or_default();
                    out.push_str(&format!("{} # {}\n", line.trim_end(), s.origin.as_str()));
                }
                None => out.push_str(&format!("# {} is not set # {}\n", s.key, s.origin.as_str())),
            }
        }
        out
    }
}

impl SharedOptions {
    /// Resolves the shared settings from the command line (flags and `KETA_*` variables)
    /// and `file`.
    fn resolve(self, file: &mut FileConfig, layers: &mut Layers<'_>) -> anyhow::Result<SharedConfig> {
        let public_url = layers.pick("public_url", self.public_url, file.public_url.take());
        let public_url = public_url.filter(|u| !u.trim().is_empty());
        if let Some(u) = &public_url {
            check_public_url(u, "public_url")?;
        }
        let smtp_url = layers.pick("smtp_url", self.smtp_url, file.smtp_url.take()).filter(|u| !u.trim().is_empty());
        let mail_from =
            layers.pick("mail_from", self.mail_from, file.mail_from.take()).filter(|u| !u.trim().is_empty());
        let sweep = layers.number(
            "checkin_sweep_seconds",
            self.checkin_sweep_seconds,
            file.checkin_sweep_seconds,
            keta_web::settings::DEFAULT_CHECKIN_SWEEP.as_secs(),
            5..=86_400,
        )?;
        let retention = layers.number(
            "idempotency_retention_hours",
            self.idempotency_retention_hours,
            file.idempotency_retention_hours,
            keta_store::idempotency::KeyPolicy::default().retention.whole_hours(),
            1..=720,
        )?;
        let window = layers.number(
            "reauthentication_window_minutes",
            self.reauthentication_window_minutes,
            file.reauthentication_window_minutes,
            keta_domain::ledger::DEFAULT_REAUTHENTICATION_WINDOW.whole_minutes(),
            keta_domain::ledger::MIN_REAUTHENTICATION_WINDOW.whole_minutes()
                ..=keta_domain::ledger::MAX_REAUTHENTICATION_WINDOW.whole_minutes(),
        )?;
        let policy = keta_store::accounts::SessionPolicy::default();
        let idle = layers.number(
            "session_idle_minutes",
            self.session_idle_minutes,
            file.session_idle_minutes,
            policy.idle.whole_minutes(),
            1..=keta_store::accounts::SessionPolicy::MAX_IDLE.whole_minutes(),
        )?;
        let absolute = layers.number(
            "session_absolute_minutes",
            self.session_absolute_minutes,
            file.session_absolute_minutes,
            policy.absolute.whole_minutes(),
            5..=keta_store::accounts::SessionPolicy::MAX_ABSOLUTE.whole_minutes(),
        )?;
        let break_glass = layers.number(
            "break_glass_minutes",
            self.break_glass_minutes,
            file.break_glass_minutes,
            keta_web::settings::DEFAULT_BREAK_GLASS_MINUTES,
            5..=240,
        )?;
        let body_limit = layers.number(
            "body_limit_bytes",
            self.body_limit_bytes,
            file.body_limit_bytes,
            keta_web::settings::DEFAULT_BODY_LIMIT_BYTES,
            65_536..=67_108_864,
        )?;
        let timeout = layers.number(
            "request_timeout_seconds",
            self.request_timeout_seconds,
            file.request_timeout_seconds,
            keta_web::settings::DEFAULT_REQUEST_TIMEOUT.as_secs(),
            1..=600,
        )?;
        let readers = layers.number(
            "sqlite_readers",
            self.sqlite_readers,
            file.sqlite_readers,
            keta_store::StoreSettings::DEFAULT_SQLITE_READERS,
            1..=64,
        )?;
        // A reservation must outlive the request that holds it.
        let timeout_i64 = i64::try_from(timeout).unwrap_or(600);
        let default_policy = keta_store::idempotency::KeyPolicy::default();
        let idempotency = keta_store::idempotency::KeyPolicy {
            retention: time::Duration::hours(retention),
            lease: default_policy.lease.max(time::Duration::seconds(timeout_i64 + 30)),
        };
        Ok(SharedConfig {
            reminders: ReminderConfig { public_url, smtp_url, mail_from },
            web: keta_web::settings::WebSettings {
                session_policy: keta_store::accounts::SessionPolicy::new(
                    time::Duration::minutes(idle),
                    time::Duration::minutes(absolute),
                ),
                break_glass_minutes: break_glass,
                body_limit_bytes: body_limit,
                request_timeout: Duration::from_secs(timeout),
                idempotency,
                checkin_sweep: Duration::from_secs(sweep),
            },
            store: keta_store::StoreSettings {
                reauthentication_window: time::Duration::minutes(window),
                sqlite_readers: readers,
            },
        })
    }

    /// For `keta demo`: the command line only (no settings file).
    pub fn resolve_alone(self, origins: &CliOrigins) -> anyhow::Result<SharedConfig> {
        let mut layers = Layers { cli: origins, shown: Vec::new() };
        self.resolve(&mut FileConfig::default(), &mut layers)
    }
}

/// A public address must say its scheme.
pub fn check_public_url(u: &str, what: &str) -> anyhow::Result<()> {
    if u.starts_with("https://") || u.starts_with("http://") {
        Ok(())
    } else {
        bail!("{what} '{u}' must start with https:// (or http:// for a local test)")
    }
}

impl ServeOptions {
    // Long on purpose: a flat table: each setting picked from flag, environment or file in turn, with its own check beside
    // it.
    #[allow(clippy::too_many_lines)]
    pub fn resolve(self) -> anyhow::Result<Config> {
        let mut file = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("config {} is not valid (keys: {FILE_KEYS})", p.display()))?
            }
            None => FileConfig::default(),
        };
        let origins = self.origins.clone();
        let mut l = Layers { cli: &origins, shown: Vec::new() };
        let bind = l.pick_or("bind", self.bind, file.bind, DEFAULT_BIND.parse().expect("a valid default address"));
        let database_url =
            l.pick_or("database_url", self.database_url, file.database_url.take(), DEFAULT_DATABASE_URL.into());
        if !(database_url.starts_with("sqlite://")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("database_url '{}' must start with sqlite:// or postgres://", mask_url_password(&database_url));
        }
        let backup_dir = l.pick("backup_dir", self.backup_dir, file.backup_dir.take());
        let backup_interval =
            l.pick("backup_interval_minutes", self.backup_interval_minutes, file.backup_interval_minutes);
        let keep = l.pick_or("backup_keep", self.backup_keep, file.backup_keep, DEFAULT_BACKUP_KEEP);
        if keep == 0 {
            bail!("backup_keep must be at least 1 (how many of the newest scheduled backups to keep)");
        }
        let backups = match (backup_dir, backup_interval) {
            (None, None) => None,
            (Some(dir), Some(minutes)) if (1..=10_080).contains(&minutes) => {
                Some(BackupSchedule { dir, every: Duration::from_secs(minutes * 60), keep })
            }
            (Some(_), Some(m)) => bail!("backup_interval_minutes {m} must be from 1 to 10080 (a week)"),
            (Some(_), None) => {
                bail!("backup_dir is set but backup_interval_minutes is not: set both to take scheduled backups")
            }
            (None, Some(_)) => {
                bail!("backup_interval_minutes is set but backup_dir is not: set both to take scheduled backups")
            }
        };
        let anchor_file = l.pick("audit_anchor_file", self.audit_anchor_file, file.audit_anchor_file.take());
        let anchor_secs = l.number(
            "audit_anchor_interval_seconds",
            self.audit_anchor_interval_seconds,
            file.audit_anchor_interval_seconds,
            DEFAULT_ANCHOR_INTERVAL_SECONDS,
            1..=86_400,
        )?;
        let tls_cert = l.pick("tls_cert", self.tls_cert, file.tls_cert.take());
        let tls_key = l.pick("tls_key", self.tls_key, file.tls_key.take());
        let tls = match (tls_cert, tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => bail!("tls_cert is set but tls_key is not: set both to serve HTTPS"),
            (None, Some(_)) => bail!("tls_key is set but tls_cert is not: set both to serve HTTPS"),
        };
        let proxies = l
            .pick("trusted_proxies", self.trusted_proxies.map(|s| split_list(&s)), file.trusted_proxies.take())
            .unwrap_or_default()
            .join(",");
        let trusted_proxies = keta_web::serving::TrustedProxies::parse(&proxies).map_err(anyhow::Error::msg)?;
        let mllp_bind = l.pick("mllp_bind", self.mllp_bind, file.mllp_bind);
        let peers = l
            .pick("mllp_allowed_peers", self.mllp_allowed_peers.map(|s| split_list(&s)), file.mllp_allowed_peers.take())
            .unwrap_or_default();
        let field =
            l.pick_or("mllp_device_field", self.mllp_device_field, file.mllp_device_field.take(), "pv1-3".into());
        let days = l.pick_or(
            "mllp_raw_retention_days",
            self.mllp_raw_retention_days,
            file.mllp_raw_retention_days,
            DEFAULT_MLLP_RAW_RETENTION_DAYS,
        );
        let max_age = l.pick("mllp_max_age_minutes", self.mllp_max_age_minutes, file.mllp_max_age_minutes);
        let max_ahead = l.pick("mllp_max_ahead_minutes", self.mllp_max_ahead_minutes, file.mllp_max_ahead_minutes);
        let max_frame = l.pick("mllp_max_frame_bytes", self.mllp_max_frame_bytes, file.mllp_max_frame_bytes);
        let mllp = match mllp_bind {
            None => None,
            Some(bind) => {
                let allowed_peers = peers
                    .iter()
                    .map(|p| p.parse().with_context(|| format!("mllp_allowed_peers: '{p}' is not an IP address")))
                    .collect::<anyhow::Result<Vec<std::net::IpAddr>>>()?;
                let device_field = keta_web::monitors::DeviceField::parse(&field)
                    .with_context(|| format!("mllp_device_field '{field}' must be pv1-3 or msh-4"))?;
                if !(1..=3650).contains(&days) {
                    bail!("mllp_raw_retention_days {days} must be from 1 to 3650");
                }
                let mut settings = keta_web::monitors::MonitorSettings { device_field, ..Default::default() };
                settings.listener.allowed_peers = allowed_peers;
                if let Some(m) = max_age {
                    if !(1..=1440).contains(&m) {
                        bail!("mllp_max_age_minutes {m} must be from 1 to 1440");
                    }
                    settings.window.max_age = time::Duration::minutes(i64::from(m));
                }
                if let Some(m) = max_ahead {
                    if m > 60 {
                        bail!("mllp_max_ahead_minutes {m} must be from 0 to 60");
                    }
                    settings.window.max_ahead = time::Duration::minutes(i64::from(m));
                }
                if let Some(b) = max_frame {
                    if !(4096..=64 * 1024 * 1024).contains(&b) {
                        bail!("mllp_max_frame_bytes {b} must be from 4096 to 67108864");
                    }
                    settings.listener.max_frame_bytes = b;
                }
                Some(MllpConfig { bind, settings, raw_retention: time::Duration::days(i64::from(days)) })
            }
        };
        let grace = l.number(
            "shutdown_grace_seconds",
            self.shutdown_grace_seconds,
            file.shutdown_grace_seconds,
            keta_web::observe::DEFAULT_SHUTDOWN_GRACE.as_secs(),
            1..=600,
        )?;
        let metrics_token =
            l.pick("metrics_token", self.metrics_token, file.metrics_token.take()).filter(|t| !t.trim().is_empty());
        if let Some(t) = &metrics_token
            && (t.len() < MIN_METRICS_TOKEN || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            bail!(
                "metrics_token must be at least {MIN_METRICS_TOKEN} printable characters without spaces (e.g. from `openssl rand -hex 32`)"
            );
        }
        let protocols_dir = l.pick("protocols_dir", self.protocols_dir, file.protocols_dir.take());
        let protocols = protocol_library(protocols_dir.as_deref())?;
        let bulk_dir =
            l.pick("bulk_export_dir", self.bulk_export_dir, file.bulk_export_dir.take()).unwrap_or_else(|| {
                let data_dir = database_url
                    .strip_prefix("sqlite://")
                    .and_then(|p| Path::new(p).parent())
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("keta-data"), Path::to_path_buf);
                data_dir.join("bulk-export")
            });
        let retention_hours = l.number(
            "bulk_export_retention_hours",
            self.bulk_export_retention_hours.map(i64::from),
            file.bulk_export_retention_hours.map(i64::from),
            keta_web::fhir::bulk::DEFAULT_RETENTION_HOURS,
            1..=720,
        )?;
        let token_minutes = l.number(
            "access_token_minutes",
            self.access_token_minutes.map(i64::from),
            file.access_token_minutes.map(i64::from),
            keta_web::fhir::bulk::DEFAULT_ACCESS_TOKEN_MINUTES,
            1..=60,
        )?;
        let bulk = keta_web::fhir::bulk::BulkSettings {
            dir: bulk_dir,
            retention: time::Duration::hours(retention_hours),
            access_token_lifetime: time::Duration::minutes(token_minutes),
        };
        let documents_dir = l.pick("documents_dir", self.documents_dir, file.documents_dir.take());
        if let Some(dir) = &documents_dir
            && !dir.is_dir()
        {
            bail!("documents_dir {} is not a folder (it holds the clinic's edited *.typ templates)", dir.display());
        }
        let shared = self.shared.resolve(&mut file, &mut l)?;
        Ok(Config {
            bulk,
            documents_dir,
            protocols,
            mllp,
            shutdown_grace: Duration::from_secs(grace),
            metrics_token,
            tls,
            trusted_proxies,
            bind,
            database_url,
            backups,
            audit_anchoring: AuditAnchoring { every: Duration::from_secs(anchor_secs), file: anchor_file },
            shared,
            file: self.config,
            shown: l.shown,
        })
    }
}

/// A comma-separated list from a flag or variable, blanks dropped.
fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect()
}

/// The built-in protocol library plus the `*.toml` files of `dir` (in name order), every
/// problem in them reported at once.
pub fn protocol_library(dir: Option<&Path>) -> anyhow::Result<ProtocolLibrary> {
    let builtin = ProtocolLibrary::builtin();
    let Some(dir) = dir else { return Ok(builtin.clone()) };
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading the protocol folder {}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        files.push((p.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()), text));
    }
    builtin
        .with_clinic_files(&files)
        .map_err(|e| anyhow::anyhow!("the clinic's protocol files in {} are invalid: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_backups_come_from_the_file_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("keta.toml");
        std::fs::write(
            &cfg,
            "backup_dir = \"/var/backups/keta\"\nbackup_interval_minutes = 60\naudit_anchor_file = \"/srv/anchor.jsonl\"\n",
        )
        .unwrap();
        let c =
            ServeOptions { config: Some(cfg.clone()), backup_keep: Some(3), ..Default::default() }.resolve().unwrap();
        assert_eq!(
            c.backups,
            Some(BackupSchedule { dir: "/var/backups/keta".into(), every: Duration::from_secs(3600), keep: 3 })
        );
        assert_eq!(c.audit_anchoring.file, Some(PathBuf::from("/srv/anchor.jsonl")));
        assert_eq!(c.audit_anchoring.every, Duration::from_secs(300));
        let c = ServeOptions { config: Some(cfg), backup_interval_minutes: Some(15), ..Default::default() }
            .resolve()
            .unwrap();
        assert_eq!(c.backups.unwrap().every, Duration::from_secs(900));
    }

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(mask_url_password("smtp://clinic:s3cret@mail.example:25"), "smtp://clinic:********@mail.example:25");
        assert_eq!(
            mask_url_password("postgres://keta:pw@db.example/keta?sslmode=require&password=pw2"),
            "postgres://keta:********@db.example/keta?sslmode=require&password=********"
        );
        assert_eq!(mask_url_password("sqlite://keta-data/keta.db"), "sqlite://keta-data/keta.db");
        assert_eq!(mask_url_password("smtp://relay.example:25"), "smtp://relay.example:25");
    }

    #[test]
    fn the_web_and_store_settings_come_from_the_file_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("keta.toml");
        std::fs::write(
            &cfg,
            "reauthentication_window_minutes = 10\nrequest_timeout_seconds = 45\nsqlite_readers = 2\n",
        )
        .unwrap();
        let shared = SharedOptions { request_timeout_seconds: Some(60), ..Default::default() };
        let c = ServeOptions { config: Some(cfg), shared, ..Default::default() }.resolve().unwrap();
        assert_eq!(c.shared.store.reauthentication_window, time::Duration::minutes(10));
        assert_eq!(c.shared.store.sqlite_readers, 2);
        assert_eq!(c.shared.web.request_timeout, Duration::from_secs(60));
        assert!(c.shared.web.idempotency.lease >= time::Duration::seconds(90), "the lease outlives the request");
        assert_eq!(c.shared.web.body_limit_bytes, keta_web::settings::DEFAULT_BODY_LIMIT_BYTES);
        let e = ServeOptions {
            shared: SharedOptions { reauthentication_window_minutes: Some(20), ..Default::default() },
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.to_string().contains("reauthentication_window_minutes 20 must be from 1 to 15"), "{e}");
    }

    #[test]
    fn the_documents_folder_comes_from_the_file_or_flag_and_must_be_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join("documents");
        std::fs::create_dir(&templates).unwrap();
        let cfg = dir.path().join("keta.toml");
        std::fs::write(&cfg, format!("documents_dir = \"{}\"\n", templates.display())).unwrap();
        let c = ServeOptions { config: Some(cfg), ..Default::default() }.resolve().unwrap();
        assert_eq!(c.documents_dir.as_deref(), Some(templates.as_path()));
        let shown = c.shown.iter().find(|s| s.key == "documents_dir").expect("--print-config lists documents_dir");
        assert_eq!(shown.origin, Origin::File);
        assert!(ServeOptions::default().resolve().unwrap().documents_dir.is_none(), "unset: the built-in templates");
        let missing = dir.path().join("no-such-folder");
        let e = ServeOptions { documents_dir: Some(missing), ..Default::default() }.resolve().unwrap_err();
        assert!(e.to_string().contains("documents_dir") && e.to_string().contains("is not a folder"), "{e}");
    }

    #[test]
    fn a_half_configured_schedule_is_refused_naming_the_missing_setting() {
        let e = ServeOptions { backup_dir: Some("/b".into()), ..Default::default() }.resolve().unwrap_err();
        assert!(e.to_string().contains("backup_interval_minutes is not"), "{e}");
        let e = ServeOptions { backup_interval_minutes: Some(60), ..Default::default() }.resolve().unwrap_err();
        assert!(e.to_string().contains("backup_dir is not"), "{e}");
        let e = ServeOptions { backup_dir: Some("/b".into()), backup_interval_minutes: Some(0), ..Default::default() }
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("from 1 to 10080"), "{e}");
        assert!(ServeOptions::default().resolve().unwrap().backups.is_none());
    }
}
