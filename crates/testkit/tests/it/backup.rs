//! Backup and restore on both backends: a backup taken while the clinic keeps writing
//! restores to exactly the clinic it recorded, a damaged backup or a non-empty target is
//! refused before anything changes, and sign-in sessions do not come back with a restore.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keta_domain::access::Role;
use keta_store::backup::{self, BackupError, KEY_TABLES};
use keta_store::{Actor, Store, params};
use keta_testkit::{Kind, ManualClock, TestDb};

use crate::fixtures::*;

/// An empty database of the same kind as `db` (not migrated), removed when dropped.
struct EmptyTarget {
    url: String,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl EmptyTarget {
    async fn like(db: &TestDb) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match db.kind {
            Kind::Sqlite => {
                Self { url: format!("sqlite://{}", dir.path().join("restored.db").display()), _dir: dir, pg: None }
            }
            Kind::Postgres => {
                let server = keta_testkit::postgres_url().unwrap();
                let name = format!("keta_restore_{:016x}", rand::random::<u64>());
                let (s, n) = (server.clone(), name.clone());
                tokio::task::spawn_blocking(move || {
                    let mut c = postgres::Client::connect(&s, postgres::NoTls).unwrap();
                    c.batch_execute(&format!("CREATE DATABASE {n}")).unwrap();
                })
                .await
                .unwrap();
                Self { url: keta_testkit::with_database(&server, &name), _dir: dir, pg: Some((server, name)) }
            }
        }
    }
}

impl Drop for EmptyTarget {
    fn drop(&mut self) {
        if let Some((server, name)) = self.pg.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(mut c) = postgres::Client::connect(&server, postgres::NoTls) {
                    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            })
            .join();
        }
    }
}

/// The backends whose backups can be taken here: PostgreSQL needs pg_dump and pg_restore.
async fn backends(clock: &ManualClock) -> Vec<TestDb> {
    let mut dbs = TestDb::all(clock).await;
    if dbs.iter().any(|d| d.kind == Kind::Postgres) && !backup::postgres_tools_present() {
        eprintln!(
            "note: PostgreSQL backup stories skipped (pg_dump/pg_restore are not on PATH: apt-get install postgresql-client)"
        );
        dbs.retain(|d| d.kind == Kind::Sqlite);
    }
    dbs
}

fn backup_file(dir: &Path, db: &TestDb) -> PathBuf {
    dir.join(match db.kind {
        Kind::Sqlite => "clinic.sqlite",
        Kind::Postgres => "clinic.pgdump",
    })
}

async fn digest_up_to(store: &Store, table: &'static str, key: &'static str, up_to: i64) -> String {
    keta_store::testing::table_digest(store, table, key, Some(up_to)).await.unwrap()
}

async fn max_key(store: &Store, table: &'static str, key: &'static str) -> i64 {
    keta_store::testing::read(store, move |c| {
        c.query_opt(&format!("SELECT coalesce(max({key}), 0) AS max_key FROM {table}"), &[])?.unwrap().i64("max_key")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_backup_taken_under_write_load_restores_to_the_clinic_it_recorded() {
    let clock = ManualClock::at(T0);
    for db in backends(&clock).await {
        let a = site(&db.store, "A").await;
        for i in 0..20 {
            patient(&db.store, a, &format!("A-{i:04}")).await;
        }
        // Eight writers register patients (each audited) while the backup runs.
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..8 {
            let (store, stop) = (db.store.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let mut n = 0;
                let mut after_stop = 0;
                // Two more each once the backup has returned: the source certainly moved on.
                while after_stop < 2 {
                    if stop.load(Ordering::SeqCst) {
                        after_stop += 1;
                    }
                    store.create_patient(&Actor::system(), new_patient(a, &format!("W{w}-{n:05}"))).await.unwrap();
                    n += 1;
                }
                n
            }));
        }
        let dir = tempfile::tempdir().unwrap();
        let file = backup_file(dir.path(), &db);
        let manifest = db.store.backup_to(&file).await.unwrap();
        stop.store(true, Ordering::SeqCst);
        let mut written = 0;
        for w in writers {
            written += w.await.unwrap();
        }
        let head = manifest.survey.audit_head.clone().expect("the chain has entries");
        let source_head = db.store.audit_head().await.unwrap().unwrap();
        assert!(
            source_head.seq > head.seq,
            "writes went on after the snapshot ({:?}: {written} written, head {} vs {})",
            db.kind,
            source_head.seq,
            head.seq
        );

        let target = EmptyTarget::like(&db).await;
        let report = backup::restore(&file, &target.url, clock.now()).await.unwrap();
        assert_eq!(report.audit_head.as_ref(), Some(&head), "{:?}", db.kind);
        assert_eq!(report.rows, manifest.survey.tables.values().sum::<i64>(), "{:?}", db.kind);

        let restored = Store::open_with_clock(&target.url, clock.as_clock()).await.unwrap();
        // Row counts per table: the restored clinic is what the manifest recorded, plus the
        // restore's own audit entry.
        let after = keta_store::testing::survey(&restored).await.unwrap();
        for (t, n) in &manifest.survey.tables {
            let expect = if t == "audit_log" { n + 1 } else { *n };
            assert_eq!(after.tables.get(t), Some(&expect), "rows of {t} ({:?})", db.kind);
        }
        // Content: the audit chain restored equals the source's chain up to the backup's head;
        // every other key table's rows equal the source's rows with the same keys (concurrent
        // writers commit out of key order, so a moment of the clinic need not be a key prefix),
        // and what was restored is exactly what the manifest digested at the backup's moment.
        for (t, key) in KEY_TABLES {
            if *t == "audit_log" {
                assert_eq!(
                    digest_up_to(&restored, t, key, head.seq).await,
                    digest_up_to(&db.store, t, key, head.seq).await,
                    "content of {t} ({:?})",
                    db.kind
                );
                continue;
            }
            let up_to = max_key(&restored, t, key).await;
            assert_eq!(manifest.survey.digests[*t], digest_up_to(&restored, t, key, up_to).await, "{t}");
            let keys: Vec<String> = keta_store::testing::read(&restored, move |c| {
                c.query(&format!("SELECT {key} FROM {t} ORDER BY {key}"), &[])?
                    .iter()
                    .map(|r| r.i64(key).map(|k| k.to_string()))
                    .collect()
            })
            .await
            .unwrap();
            if keys.is_empty() {
                continue;
            }
            let sql = format!("SELECT * FROM {t} WHERE {key} IN ({}) ORDER BY {key}", keys.join(","));
            let q = sql.clone();
            let mine: Vec<Vec<keta_store::testing::Value>> = keta_store::testing::read(&restored, move |c| {
                Ok(c.query(&q, &[])?.into_iter().map(|r| r.values().to_vec()).collect())
            })
            .await
            .unwrap();
            let theirs: Vec<Vec<keta_store::testing::Value>> = keta_store::testing::read(&db.store, move |c| {
                Ok(c.query(&sql, &[])?.into_iter().map(|r| r.values().to_vec()).collect())
            })
            .await
            .unwrap();
            assert_eq!(mine, theirs, "content of {t} ({:?})", db.kind);
        }
        let patients_in_backup = manifest.survey.tables["patients"];
        assert!(patients_in_backup >= 20 && patients_in_backup < 20 + written, "{:?}", db.kind);
        assert_eq!(restored.verify_audit_chain().await.unwrap().1, None, "{:?}", db.kind);
        assert_eq!(restored.check_audit_anchors(vec![head]).await.unwrap(), None, "{:?}", db.kind);
    }
}

#[tokio::test]
async fn a_restore_ends_every_sign_in_session_in_the_backup() {
    let clock = ManualClock::at(T0);
    for db in backends(&clock).await {
        let a = site(&db.store, "A").await;
        let pw = "violet tractor umbrella 42";
        for (user, role) in [("admin.one", Role::Administrator), ("rn.one", Role::Nurse)] {
            let new = keta_store::accounts::NewUser {
                username: user.into(),
                display_name: user.into(),
                role,
                password: pw.into(),
                site_ids: vec![a],
                can_break_glass: false,
                totp_secret: None,
            };
            db.store.create_user(&Actor::system(), new).await.unwrap();
        }
        let t1 = db.store.begin_sign_in("admin.one", pw).await.unwrap().expect("signed in");
        db.store.begin_sign_in("rn.one", pw).await.unwrap().expect("signed in");
        let dir = tempfile::tempdir().unwrap();
        let file = backup_file(dir.path(), &db);
        db.store.backup_to(&file).await.unwrap();

        let target = EmptyTarget::like(&db).await;
        let report = backup::restore(&file, &target.url, clock.now()).await.unwrap();
        assert_eq!(report.sign_in_sessions_ended, 2, "{:?}", db.kind);
        let restored = Store::open_with_clock(&target.url, clock.as_clock()).await.unwrap();
        let open = keta_store::testing::read(&restored, |c| {
            c.query_opt("SELECT count(*) AS n FROM auth_sessions WHERE ended_at IS NULL", &[])?.unwrap().i64("n")
        })
        .await
        .unwrap();
        assert_eq!(open, 0, "{:?}", db.kind);
        let policy = keta_store::accounts::SessionPolicy::new(time::Duration::minutes(15), time::Duration::hours(12));
        assert!(restored.resolve_session(&t1, policy).await.unwrap().is_err(), "{:?}", db.kind);
        let audited = keta_store::testing::read(&restored, |c| {
            c.query_opt(
                "SELECT count(*) AS n FROM audit_log WHERE object_type = 'auth_sessions' AND actor = 'system'",
                params![],
            )?
            .unwrap()
            .i64("n")
        })
        .await
        .unwrap();
        assert_eq!(audited, 1, "ending the sessions is audited ({:?})", db.kind);
    }
}

#[tokio::test]
async fn a_damaged_backup_or_a_used_target_is_refused_and_nothing_changes() {
    let clock = ManualClock::at(T0);
    for db in backends(&clock).await {
        let a = site(&db.store, "A").await;
        for i in 0..5 {
            patient(&db.store, a, &format!("A-{i:04}")).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = backup_file(dir.path(), &db);
        let manifest = db.store.backup_to(&file).await.unwrap();
        let good = std::fs::read(&file).unwrap();
        let target = EmptyTarget::like(&db).await;
        let untouched = |t: &EmptyTarget| {
            let url = t.url.clone();
            async move {
                match url.strip_prefix("sqlite://") {
                    Some(p) => !Path::new(p).exists(),
                    None => {
                        let s = Store::open(&url).await.unwrap();
                        let n = keta_store::testing::read(&s, |c| {
                            c.query_opt("SELECT count(*) AS n FROM patients", &[])?.unwrap().i64("n")
                        })
                        .await
                        .unwrap();
                        // Opening migrated it; drop the schema again for the next attempt.
                        drop(s);
                        let u = url.clone();
                        tokio::task::spawn_blocking(move || {
                            let mut c = postgres::Client::connect(&u, postgres::NoTls).unwrap();
                            c.batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;").unwrap();
                        })
                        .await
                        .unwrap();
                        n == 0
                    }
                }
            }
        };

        // Truncated.
        std::fs::write(&file, &good[..good.len() / 2]).unwrap();
        let e = backup::restore(&file, &target.url, clock.now()).await.unwrap_err();
        assert!(matches!(e, BackupError::WrongSize { .. }), "{e}");
        assert!(e.to_string().contains("truncated"), "{e}");
        assert!(untouched(&target).await, "{:?}", db.kind);

        // One flipped byte, same size.
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x01;
        std::fs::write(&file, &flipped).unwrap();
        let e = backup::restore(&file, &target.url, clock.now()).await.unwrap_err();
        assert!(matches!(e, BackupError::HashMismatch { .. }), "{e}");
        assert!(e.to_string().contains("corrupted"), "{e}");
        assert!(untouched(&target).await, "{:?}", db.kind);

        // No manifest, or an unreadable one.
        std::fs::write(&file, &good).unwrap();
        let mpath = backup::manifest_path(&file);
        let mtext = std::fs::read_to_string(&mpath).unwrap();
        std::fs::remove_file(&mpath).unwrap();
        let e = backup::restore(&file, &target.url, clock.now()).await.unwrap_err();
        assert!(matches!(e, BackupError::ManifestMissing(_)), "{e}");
        std::fs::write(&mpath, &mtext[..mtext.len() / 2]).unwrap();
        let e = backup::restore(&file, &target.url, clock.now()).await.unwrap_err();
        assert!(matches!(e, BackupError::ManifestUnreadable { .. }), "{e}");
        assert!(untouched(&target).await, "{:?}", db.kind);
        std::fs::write(&mpath, &mtext).unwrap();

        // A target that already holds a clinic: the source database itself.
        let e = backup::restore(&file, &db.url, clock.now()).await.unwrap_err();
        assert!(matches!(e, BackupError::TargetNotEmpty(_)), "{e}");
        assert!(e.to_string().contains("patients") || e.to_string().contains("tables"), "{e}");
        let patients = keta_store::testing::read(&db.store, |c| {
            c.query_opt("SELECT count(*) AS n FROM patients", &[])?.unwrap().i64("n")
        })
        .await
        .unwrap();
        assert_eq!(patients, 5, "{:?}", db.kind);

        // The intact backup still restores.
        let report = backup::restore(&file, &target.url, clock.now()).await.unwrap();
        assert_eq!(report.audit_head, manifest.survey.audit_head, "{:?}", db.kind);
    }
}
