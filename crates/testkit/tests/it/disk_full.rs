//! Disk full: a full database refuses writes with a 507 problem saying nothing was
//! saved, every caller in a faulted group commit hears it, nothing acknowledged is lost,
//! readiness reports the fault, reads keep working, and writes work again once there is room,
//! with the integrity check and the audit chain clean throughout.
//!
//! SQLite only: the fault is injected deterministically with `PRAGMA max_page_count` (the
//! file cannot grow, SQLITE_FULL, exactly what a full disk gives). PostgreSQL has no such
//! switch; its `53100 disk_full` maps to the same error (keta-store's error.rs).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use keta_store::{Actor, Store, StoreError};
use keta_testkit::{ManualClock, TestApp, TestDb, seed_staff, spawn_app};

use crate::fixtures::*;

/// Caps the file at `pages` pages (at least its current size), through the writer's connection.
async fn cap_pages(s: &Store, pages: Option<i64>) {
    keta_store::testing::write(s, move |c| {
        let now = c.query_opt("PRAGMA page_count", &[])?.expect("page count").i64("page_count")?;
        c.query(&format!("PRAGMA max_page_count = {}", pages.unwrap_or(now)), &[]).map(|_| ())
    })
    .await
    .expect("set the page limit");
}

async fn clean(s: &Store) {
    let check = keta_store::testing::read(s, |c| {
        c.query_opt("PRAGMA integrity_check", &[])?.expect("a result").text("integrity_check")
    })
    .await
    .expect("integrity check runs");
    assert_eq!(check, "ok");
    let (_, broken) = s.verify_audit_chain().await.expect("audit verify runs");
    assert!(broken.is_none(), "the audit chain verifies: {broken:?}");
}

async fn stored_mrns(s: &Store) -> BTreeSet<String> {
    keta_store::testing::read(s, |c| c.query("SELECT mrn FROM patients", &[])?.iter().map(|r| r.text("mrn")).collect())
        .await
        .expect("read MRNs")
}

async fn post_patient(app: &TestApp, site: i64, mrn: &str) -> reqwest::Response {
    let body = json!({
        "site_id": site, "mrn": mrn, "given_name": "Avery", "family_name": "Quinn", "date_of_birth": "1980-01-01",
        "sex": "male", "indication": "depression", "diagnoses": ["F33.2"]
    });
    app.post_json("/api/v1/patients", &body).await
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_507_keeps_reads_and_recovers_once_there_is_room() {
    let db = TestDb::sqlite(ManualClock::at(T0).as_clock()).await;
    let s = &db.store;
    let a = site(s, "A").await;
    let staff = seed_staff(s, &[a]).await;
    let app = spawn_app(s.clone()).await;
    assert_eq!(app.login(&staff[1], T0).await.status(), 200, "signed in before the disk fills");
    assert_eq!(app.get("/healthz").await.status(), 200);

    cap_pages(s, None).await;

    // Concurrent writers fill the file: their writes share group commits, so a batch is
    // faulted while other callers' writes are in it. Each caller is told the truth.
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for round in 0..20 {
        let writes = (0..32).map(|i| {
            let mrn = format!("F-{round:02}-{i:02}");
            async move { (mrn.clone(), s.create_patient(&Actor::system(), new_patient(a, &mrn)).await) }
        });
        for (mrn, r) in futures::future::join_all(writes).await {
            match r {
                Ok(_) => {
                    acknowledged.insert(mrn);
                }
                Err(StoreError::DiskFull) => refused += 1,
                Err(e) => panic!("{mrn}: a full disk must be reported as such, not as {e:?}"),
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "the capped file filled up");
    assert_eq!(stored_mrns(s).await, acknowledged, "every acknowledged write is stored, and no refused one");
    assert!(s.disk_full_since().is_some());
    clean(s).await;

    // Over HTTP: a write is a 507 problem that says nothing was saved (a write that still fits
    // a half-empty page may succeed; it is then acknowledged and must be kept).
    let mut saw_507 = false;
    for i in 0..20 {
        let mrn = format!("H-{i:02}");
        let r = post_patient(&app, a.0, &mrn).await;
        match r.status().as_u16() {
            201 => {
                acknowledged.insert(mrn);
            }
            507 => {
                assert_eq!(r.headers()["content-type"], "application/problem+json");
                let p: Value = r.json().await.unwrap();
                assert_eq!(p["status"], 507);
                assert!(p["detail"].as_str().unwrap().contains("the database disk is full; nothing was saved"), "{p}");
                saw_507 = true;
                break;
            }
            other => panic!("{mrn}: {other} {}", r.text().await.unwrap()),
        }
    }
    assert!(saw_507, "a write on the full disk is refused with 507");

    // Readiness reports the fault; reads that need no audit entry keep working; the server runs.
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 503);
    let h: Value = r.json().await.unwrap();
    assert_eq!(h["database"], "disk_full", "{h}");
    assert!(h["detail"].as_str().unwrap().contains("disk is full"), "{h}");
    assert_eq!(app.get("/api/v1/auth/me").await.status(), 200, "the signed-in session still reads");
    assert_eq!(stored_mrns(s).await, acknowledged);
    clean(s).await;

    // Space freed: readiness recovers and writes work again.
    cap_pages(s, Some(1 << 30)).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert!(s.disk_full_since().is_none());
    let r = post_patient(&app, a.0, "AFTER-1").await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    acknowledged.insert("AFTER-1".into());
    assert_eq!(stored_mrns(s).await, acknowledged, "nothing acknowledged was lost");
    clean(s).await;
}

#[tokio::test]
async fn readiness_probes_a_full_disk_and_recovers_when_space_is_freed_without_a_user_write() {
    let db = TestDb::sqlite(ManualClock::at(T0).as_clock()).await;
    let s = &db.store;
    let a = site(s, "A").await;
    // Data an operator can delete later to make room (256 KiB).
    keta_store::testing::write(s, |c| {
        c.execute("CREATE TABLE operator_filler (pad BLOB)", &[])?;
        c.execute("INSERT INTO operator_filler (pad) VALUES (zeroblob(262144))", &[]).map(|_| ())
    })
    .await
    .unwrap();
    cap_pages(s, None).await;
    for i in 0..500 {
        if let Err(e) = s.create_patient(&Actor::system(), new_patient(a, &format!("P-{i:03}"))).await {
            assert!(matches!(e, StoreError::DiskFull), "{e:?}");
            break;
        }
    }
    assert!(s.disk_full_since().is_some(), "the file filled up");
    assert!(s.probe_disk().await, "the probe needs room and finds none");
    assert!(s.disk_full_since().is_some(), "a failed probe keeps the fault");

    // The operator frees space from outside Keta (another connection deletes data; its pages
    // become free pages the capped file can reuse). No user writes: the probe clears the fault.
    let path = db.url.strip_prefix("sqlite://").unwrap().to_string();
    tokio::task::spawn_blocking(move || {
        let c = rusqlite::Connection::open(path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
        c.execute("DELETE FROM operator_filler", []).unwrap();
    })
    .await
    .unwrap();
    assert!(!s.probe_disk().await, "with room again the probe succeeds");
    assert!(s.disk_full_since().is_none(), "readiness is ready again");
    s.create_patient(&Actor::system(), new_patient(a, "AFTER")).await.expect("writes work again");
    clean(s).await;
}
