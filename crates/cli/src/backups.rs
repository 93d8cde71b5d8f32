//! `keta serve`'s scheduled backups and audit anchors (docs/reliability.md).
//!
//! Scheduled backups are named `keta-YYYYMMDDTHHMMSSZ.<sqlite|pgdump>` with their
//! `.manifest.json` beside them; after each one, all but the newest `keep` are deleted.
//! Files of other names in the folder are never touched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use keta_store::Store;

/// When and where `keta serve` takes backups.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSchedule {
    pub dir: PathBuf,
    pub every: Duration,
    /// How many of the newest scheduled backups are kept.
    pub keep: usize,
}

/// How often the audit chain's head is written to the log, and the file it is also appended to.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditAnchoring {
    pub every: Duration,
    pub file: Option<PathBuf>,
}

const PREFIX: &str = "keta-";
const MANIFEST: &str = ".manifest.json";

/// Takes one scheduled backup into `dir`, then prunes to `keep`. Returns the new backup's path.
pub async fn take_scheduled(store: &Store, dir: &Path, keep: usize) -> anyhow::Result<PathBuf> {
    let now = store.now();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let ext = match store.backend() {
        keta_store::Backend::Sqlite => "sqlite",
        keta_store::Backend::Postgres => "pgdump",
    };
    let file = dir.join(format!("{PREFIX}{stamp}.{ext}"));
    let manifest = store.backup_to(&file).await.with_context(|| format!("backing up to {}", file.display()))?;
    tracing::info!(
        file = %file.display(),
        bytes = manifest.file_bytes,
        sha256 = %manifest.file_sha256,
        audit_seq = manifest.survey.audit_head.as_ref().map(|h| h.seq),
        audit_hash = manifest.survey.audit_head.as_ref().map(|h| h.row_hash.as_str()),
        "backup taken"
    );
    for gone in prune(dir, keep)? {
        tracing::info!(file = %gone.display(), "old backup deleted");
    }
    Ok(file)
}

/// Deletes all but the newest `keep` scheduled backups (file and manifest); returns what went.
pub fn prune(dir: &Path, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut manifests: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX) && n.ends_with(MANIFEST))
        .collect();
    // The names hold UTC timestamps, so name order is age order.
    manifests.sort();
    manifests.reverse();
    let mut gone = Vec::new();
    for m in manifests.into_iter().skip(keep.max(1)) {
        let data = dir.join(m.trim_end_matches(MANIFEST));
        if data.exists() {
            std::fs::remove_file(&data).with_context(|| format!("deleting {}", data.display()))?;
        }
        let mpath = dir.join(&m);
        std::fs::remove_file(&mpath).with_context(|| format!("deleting {}", mpath.display()))?;
        gone.push(data);
    }
    Ok(gone)
}

/// Takes a backup every `schedule.every`; a failed one is logged and retried at the next tick.
pub fn spawn_scheduled_backups(store: Store, schedule: BackupSchedule) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(schedule.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = take_scheduled(&store, &schedule.dir, schedule.keep).await {
                tracing::error!(error = %format!("{e:#}"), "scheduled backup FAILED");
            }
        }
    });
}

/// Writes the head to the log (and the anchor file, when it moved) once; the file is the
/// part outside the database that survives a cut.
pub async fn anchor_once(store: &Store, file: Option<&Path>, last: &mut Option<i64>) -> anyhow::Result<()> {
    let Some(head) = store.audit_head().await? else { return Ok(()) };
    tracing::info!(audit_seq = head.seq, audit_hash = %head.row_hash, "audit chain head");
    if let Some(f) = file
        && *last != Some(head.seq)
    {
        keta_store::backup::append_anchor(f, &head, store.now())
            .with_context(|| format!("appending the audit anchor to {}", f.display()))?;
        *last = Some(head.seq);
    }
    Ok(())
}

pub fn spawn_anchoring(store: Store, anchoring: AuditAnchoring) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(anchoring.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = None;
        loop {
            tick.tick().await;
            if let Err(e) = anchor_once(&store, anchoring.file.as_deref(), &mut last).await {
                tracing::error!(error = %format!("{e:#}"), "audit anchor FAILED");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scheduled_backup_is_named_by_its_time_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("keta.db").display());
        let times = ["2026-12-01T02:00:00Z", "2026-12-02T02:00:00Z", "2026-12-03T02:00:00Z"];
        let at = std::sync::Arc::new(std::sync::Mutex::new(0usize));
        let clock_at = at.clone();
        let clock: keta_store::Clock = std::sync::Arc::new(move || {
            let i = *clock_at.lock().unwrap();
            time::OffsetDateTime::parse(times[i], &time::format_description::well_known::Rfc3339).unwrap()
        });
        let store = Store::open_with_clock(&url, clock).await.unwrap();
        let backups = dir.path().join("backups");
        for i in 0..3 {
            *at.lock().unwrap() = i;
            take_scheduled(&store, &backups, 2).await.unwrap();
        }
        let mut left: Vec<String> =
            std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(
            left,
            [
                "keta-20261202T020000Z.sqlite",
                "keta-20261202T020000Z.sqlite.manifest.json",
                "keta-20261203T020000Z.sqlite",
                "keta-20261203T020000Z.sqlite.manifest.json"
            ]
        );
        keta_store::backup::check_backup(&backups.join("keta-20261203T020000Z.sqlite")).unwrap();
    }

    #[tokio::test]
    async fn the_anchor_file_grows_only_when_the_head_moved() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("keta.db").display());
        let store = Store::open(&url).await.unwrap();
        let file = dir.path().join("anchors.jsonl");
        let mut last = None;
        anchor_once(&store, Some(&file), &mut last).await.unwrap();
        assert!(!file.exists(), "an empty chain has no head to anchor");
        let site = keta_domain::site::NewSite {
            code: "A".into(),
            name: "Clinic A".into(),
            time_zone: "UTC".into(),
            crisis_line: "988".into(),
        };
        store.create_site(&keta_store::Actor::system(), site, vec![]).await.unwrap();
        anchor_once(&store, Some(&file), &mut last).await.unwrap();
        anchor_once(&store, Some(&file), &mut last).await.unwrap();
        let anchors = keta_store::backup::read_anchors(&file).unwrap();
        assert_eq!(anchors, vec![store.audit_head().await.unwrap().unwrap()]);
    }

    #[test]
    fn pruning_keeps_the_newest_and_leaves_other_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["keta-20261201T000000Z", "keta-20261202T000000Z", "keta-20261203T000000Z"];
        for n in names {
            std::fs::write(dir.path().join(format!("{n}.sqlite")), b"x").unwrap();
            std::fs::write(dir.path().join(format!("{n}.sqlite.manifest.json")), b"{}").unwrap();
        }
        std::fs::write(dir.path().join("clinic-export.sqlite"), b"x").unwrap();
        let gone = prune(dir.path(), 2).unwrap();
        assert_eq!(gone, vec![dir.path().join("keta-20261201T000000Z.sqlite")]);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(
            left,
            [
                "clinic-export.sqlite",
                "keta-20261202T000000Z.sqlite",
                "keta-20261202T000000Z.sqlite.manifest.json",
                "keta-20261203T000000Z.sqlite",
                "keta-20261203T000000Z.sqlite.manifest.json"
            ]
        );
    }
}
