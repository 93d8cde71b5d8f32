//! `keta serve` settings: defaults, then a TOML file, then KETA_* variables and flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use keta_domain::protocols::ProtocolLibrary;
use serde::Deserialize;

use crate::backups::{AuditAnchoring, BackupSchedule};

#[derive(clap::Args, Debug, Default)]
pub struct ServeOptions {
    /// A TOML file with `bind` and `database_url`.
    #[arg(long, env = "KETA_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "KETA_BIND")]
    bind: Option<SocketAddr>,
    /// sqlite://PATH or postgres://USER@HOST/DB (default sqlite://keta-data/keta.db).
    #[arg(long, env = "KETA_DATABASE_URL")]
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
}

const FILE_KEYS: &str = "bind, database_url, backup_dir, backup_interval_minutes, backup_keep, audit_anchor_file, audit_anchor_interval_seconds, tls_cert, tls_key, trusted_proxies, mllp_bind, mllp_allowed_peers, mllp_device_field, mllp_raw_retention_days, mllp_max_age_minutes, mllp_max_ahead_minutes, mllp_max_frame_bytes, shutdown_grace_seconds, metrics_token, protocols_dir, bulk_export_dir, bulk_export_retention_hours, access_token_minutes";

/// Product settings, not clinical ones: how many backups to keep and how often to anchor.
const DEFAULT_BACKUP_KEEP: usize = 7;
const DEFAULT_ANCHOR_INTERVAL_SECONDS: u64 = 300;
/// Product setting: how long raw monitor messages are kept for troubleshooting.
pub const DEFAULT_MLLP_RAW_RETENTION_DAYS: u32 = 30;

/// The bedside-monitor listener's settings, when it is on.
#[derive(Debug)]
pub struct MllpConfig {
    pub bind: SocketAddr,
    pub settings: keta_web::monitors::MonitorSettings,
    pub raw_retention: time::Duration,
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
}

/// The shortest `metrics_token` accepted: long enough not to be guessed.
const MIN_METRICS_TOKEN: usize = 32;

impl ServeOptions {
    pub fn resolve(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("config {} is not valid (keys: {FILE_KEYS})", p.display()))?
            }
            None => FileConfig::default(),
        };
        let database_url =
            self.database_url.or(file.database_url).unwrap_or_else(|| "sqlite://keta-data/keta.db".into());
        if !(database_url.starts_with("sqlite://")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("database_url '{database_url}' must start with sqlite:// or postgres://");
        }
        let backup_dir = self.backup_dir.or(file.backup_dir);
        let backup_interval = self.backup_interval_minutes.or(file.backup_interval_minutes);
        let keep = self.backup_keep.or(file.backup_keep).unwrap_or(DEFAULT_BACKUP_KEEP);
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
        let anchor_secs = self
            .audit_anchor_interval_seconds
            .or(file.audit_anchor_interval_seconds)
            .unwrap_or(DEFAULT_ANCHOR_INTERVAL_SECONDS);
        if !(1..=86_400).contains(&anchor_secs) {
            bail!("audit_anchor_interval_seconds {anchor_secs} must be from 1 to 86400");
        }
        let tls = match (self.tls_cert.or(file.tls_cert), self.tls_key.or(file.tls_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => bail!("tls_cert is set but tls_key is not: set both to serve HTTPS"),
            (None, Some(_)) => bail!("tls_key is set but tls_cert is not: set both to serve HTTPS"),
        };
        let proxies = match (self.trusted_proxies, file.trusted_proxies) {
            (Some(s), _) => s,
            (None, Some(list)) => list.join(","),
            (None, None) => String::new(),
        };
        let trusted_proxies = keta_web::serving::TrustedProxies::parse(&proxies).map_err(anyhow::Error::msg)?;
        let mllp = match self.mllp_bind.or(file.mllp_bind) {
            None => None,
            Some(bind) => {
                let peers = match (self.mllp_allowed_peers, file.mllp_allowed_peers) {
                    (Some(s), _) => s,
                    (None, Some(list)) => list.join(","),
                    (None, None) => String::new(),
                };
                let allowed_peers = peers
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse().with_context(|| format!("mllp_allowed_peers: '{p}' is not an IP address")))
                    .collect::<anyhow::Result<Vec<std::net::IpAddr>>>()?;
                let field = self.mllp_device_field.or(file.mllp_device_field).unwrap_or_else(|| "pv1-3".into());
                let device_field = keta_web::monitors::DeviceField::parse(&field)
                    .with_context(|| format!("mllp_device_field '{field}' must be pv1-3 or msh-4"))?;
                let days = self
                    .mllp_raw_retention_days
                    .or(file.mllp_raw_retention_days)
                    .unwrap_or(DEFAULT_MLLP_RAW_RETENTION_DAYS);
                if !(1..=3650).contains(&days) {
                    bail!("mllp_raw_retention_days {days} must be from 1 to 3650");
                }
                let mut settings = keta_web::monitors::MonitorSettings { device_field, ..Default::default() };
                settings.listener.allowed_peers = allowed_peers;
                if let Some(m) = self.mllp_max_age_minutes.or(file.mllp_max_age_minutes) {
                    if !(1..=1440).contains(&m) {
                        bail!("mllp_max_age_minutes {m} must be from 1 to 1440");
                    }
                    settings.window.max_age = time::Duration::minutes(i64::from(m));
                }
                if let Some(m) = self.mllp_max_ahead_minutes.or(file.mllp_max_ahead_minutes) {
                    if m > 60 {
                        bail!("mllp_max_ahead_minutes {m} must be from 0 to 60");
                    }
                    settings.window.max_ahead = time::Duration::minutes(i64::from(m));
                }
                if let Some(b) = self.mllp_max_frame_bytes.or(file.mllp_max_frame_bytes) {
                    if !(4096..=64 * 1024 * 1024).contains(&b) {
                        bail!("mllp_max_frame_bytes {b} must be from 4096 to 67108864");
                    }
                    settings.listener.max_frame_bytes = b;
                }
                Some(MllpConfig { bind, settings, raw_retention: time::Duration::days(i64::from(days)) })
            }
        };
        let grace = self
            .shutdown_grace_seconds
            .or(file.shutdown_grace_seconds)
            .unwrap_or(keta_web::observe::DEFAULT_SHUTDOWN_GRACE.as_secs());
        if !(1..=600).contains(&grace) {
            bail!("shutdown_grace_seconds {grace} must be from 1 to 600");
        }
        let metrics_token = self.metrics_token.or(file.metrics_token).filter(|t| !t.trim().is_empty());
        if let Some(t) = &metrics_token
            && (t.len() < MIN_METRICS_TOKEN || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            bail!(
                "metrics_token must be at least {MIN_METRICS_TOKEN} printable characters without spaces (e.g. from `openssl rand -hex 32`)"
            );
        }
        let protocols = protocol_library(self.protocols_dir.or(file.protocols_dir).as_deref())?;
        let bulk_dir = self.bulk_export_dir.or(file.bulk_export_dir).unwrap_or_else(|| {
            let data_dir = database_url
                .strip_prefix("sqlite://")
                .and_then(|p| Path::new(p).parent())
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("keta-data"), Path::to_path_buf);
            data_dir.join("bulk-export")
        });
        let retention_hours = self
            .bulk_export_retention_hours
            .or(file.bulk_export_retention_hours)
            .map_or(keta_web::fhir::bulk::DEFAULT_RETENTION_HOURS, i64::from);
        if !(1..=720).contains(&retention_hours) {
            bail!("bulk_export_retention_hours {retention_hours} must be from 1 to 720 (30 days)");
        }
        let token_minutes = self
            .access_token_minutes
            .or(file.access_token_minutes)
            .map_or(keta_web::fhir::bulk::DEFAULT_ACCESS_TOKEN_MINUTES, i64::from);
        if !(1..=60).contains(&token_minutes) {
            bail!("access_token_minutes {token_minutes} must be from 1 to 60");
        }
        let bulk = keta_web::fhir::bulk::BulkSettings {
            dir: bulk_dir,
            retention: time::Duration::hours(retention_hours),
            access_token_lifetime: time::Duration::minutes(token_minutes),
        };
        Ok(Config {
            bulk,
            protocols,
            mllp,
            shutdown_grace: Duration::from_secs(grace),
            metrics_token,
            tls,
            trusted_proxies,
            bind: self.bind.or(file.bind).unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid")),
            database_url,
            backups,
            audit_anchoring: AuditAnchoring {
                every: Duration::from_secs(anchor_secs),
                file: self.audit_anchor_file.or(file.audit_anchor_file),
            },
        })
    }
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
