//! The anchored audit chain and the backup commands, through the `keta` binary.
//!
//! A copy of the database taken without its WAL loses its newest entries and still verifies,
//! because a chain cannot show that its tail was cut off; `keta audit verify --anchor` can.

// Helpers outside `#[test]` functions unwrap too, which clippy's allow-unwrap-in-tests does
// not cover; in a test a panic is the failure message all the same.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use keta_domain::site::NewSite;
use keta_store::{Actor, Store};

fn keta(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keta")).args(args).output().expect("run keta");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

async fn add_sites(store: &Store, codes: &[&str]) {
    for code in codes {
        let site = NewSite {
            code: (*code).into(),
            name: format!("Clinic {code}"),
            time_zone: "America/Chicago".into(),
            crisis_line: "988".into(),
        };
        store.create_site(&Actor::system(), site, vec!["Chair 1".into()]).await.unwrap();
    }
}

fn sqlite_url(p: &Path) -> String {
    format!("sqlite://{}", p.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_without_its_wal_verifies_alone_but_fails_against_its_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keta.db");
    let url = sqlite_url(&db);
    let anchors = dir.path().join("anchors.jsonl");
    let store = Store::open(&url).await.unwrap();
    add_sites(&store, &["A", "B", "C"]).await;
    // Entries 1-3 reach the main file; 4-6 stay in the WAL while the server runs.
    rusqlite::Connection::open(&db).unwrap().execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    add_sites(&store, &["D", "E", "F"]).await;
    let (code, out) = keta(&["audit", "anchor", "--database-url", &url, "--to", anchors.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("anchored audit entry 6"), "{out}");

    let copy = dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    let copy_url = sqlite_url(&copy);
    let (code, out) = keta(&["audit", "verify", "--database-url", &copy_url]);
    assert_eq!(code, 0, "the chain alone cannot see the cut: {out}");
    assert!(out.contains("intact: 3 entries"), "{out}");
    let (code, out) = keta(&["audit", "verify", "--database-url", &copy_url, "--anchor", anchors.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at anchored entry 6"), "{out}");
    assert!(out.contains("tail was cut off (entries 4 to 6 are missing)"), "{out}");

    // The live database still holds every anchored head.
    let (code, out) = keta(&["audit", "verify", "--database-url", &url, "--anchor", anchors.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit anchors intact"), "{out}");
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_newest_entries_is_caught_by_the_backup_manifest_as_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keta.db");
    let url = sqlite_url(&db);
    let store = Store::open(&url).await.unwrap();
    add_sites(&store, &["A", "B", "C", "D", "E"]).await;
    drop(store);
    let backup = dir.path().join("backups/keta.sqlite");
    let (code, out) = keta(&["backup", "--database-url", &url, "--to", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit chain head: entry 5"), "{out}");

    // Someone with the sqlite3 shell drops the append-only trigger and deletes the newest two.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq > 3;").unwrap();
    drop(conn);
    let (code, out) = keta(&["audit", "verify", "--database-url", &url]);
    assert_eq!(code, 0, "{out}");
    let manifest = keta_store::backup::manifest_path(&backup);
    let (code, out) = keta(&["audit", "verify", "--database-url", &url, "--anchor", manifest.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at anchored entry 5"), "{out}");
}

#[test]
fn keta_restore_refuses_a_flipped_byte_and_restores_the_intact_backup() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("keta.db"));
    let (code, out) = keta(&["migrate", "--database-url", &url]);
    assert_eq!(code, 0, "{out}");
    let backup = dir.path().join("keta.sqlite");
    let (code, out) = keta(&["backup", "--database-url", &url, "--to", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // A second backup to the same name is refused rather than overwriting the first.
    let (code, out) = keta(&["backup", "--database-url", &url, "--to", backup.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("already exists"), "{out}");

    let good = std::fs::read(&backup).unwrap();
    let mut bad = good.clone();
    bad[good.len() - 100] ^= 0x80;
    std::fs::write(&backup, &bad).unwrap();
    let target = dir.path().join("restored.db");
    let target_url = sqlite_url(&target);
    let (code, out) = keta(&["restore", "--from", backup.to_str().unwrap(), "--database-url", &target_url]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("corrupted; nothing was restored"), "{out}");
    assert!(!target.exists());

    std::fs::write(&backup, &good).unwrap();
    let (code, out) = keta(&["restore", "--from", backup.to_str().unwrap(), "--database-url", &target_url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is ready to serve"), "{out}");
    let (code, out) = keta(&["audit", "verify", "--database-url", &target_url]);
    assert_eq!(code, 0, "{out}");
}
