//! PostgreSQL connections: the bounded pool's wait, the statement timeout, TLS
//! modes against the local server (which offers no TLS), and the audit chain sealed off the
//! writers' path, which also runs on SQLite.

use std::sync::mpsc;

use keta_store::audit::{Action, Entry};
use keta_store::{Actor, Store, StoreError, params};
use keta_testkit::{Kind, ManualClock, TestDb};

use crate::fixtures::*;

/// The test database's URL with extra query parameters.
fn with_params(url: &str, params: &str) -> String {
    format!("{url}{}{params}", if url.contains('?') { '&' } else { '?' })
}

async fn open_err(url: String) -> String {
    match Store::open(&url).await {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn an_exhausted_pool_answers_busy_after_its_wait() {
    let clock = ManualClock::at(T0);
    let Some(db) = TestDb::postgres(clock.as_clock()).await else { return };
    let store = Store::open(&with_params(&db.url, "pool_size=1&pool_wait_ms=200")).await.unwrap();
    // One operation holds the only connection until told to let go.
    let (release_tx, holder) = hold_a_connection(&store).await;
    let refused = keta_store::testing::write(&store, |c| c.execute("CREATE TABLE never_made (x BIGINT)", &[])).await;
    assert!(matches!(refused, Err(StoreError::Busy { retry_after_secs: 1 })), "{refused:?}");
    release_tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
    // Nothing was saved by the refused write, and the pool serves again once free.
    let n = keta_store::testing::read(&store, |c| {
        c.query_opt("SELECT count(*) AS n FROM pg_tables WHERE tablename = 'never_made'", &[])?.unwrap().i64("n")
    })
    .await
    .unwrap();
    assert_eq!(n, 0);
}

/// Holds one of the store's connections (the one the pool hands out next) until the returned
/// sender is used; returns once it is held.
async fn hold_a_connection(store: &Store) -> (mpsc::Sender<()>, tokio::task::JoinHandle<keta_store::Result<()>>) {
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let s = store.clone();
    let holder = tokio::spawn(async move {
        keta_store::testing::read(&s, move |c| {
            held_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            c.query("SELECT 1", &[]).map(|_| ())
        })
        .await
    });
    tokio::task::spawn_blocking(move || held_rx.recv().unwrap()).await.unwrap();
    (release_tx, holder)
}

/// How many of `sql` the connection that serves this read has prepared.
async fn prepared_here(store: &Store, sql: &'static str) -> i64 {
    keta_store::testing::read(store, move |c| {
        c.query_opt("SELECT count(*) AS n FROM pg_prepared_statements WHERE statement = $1", params![sql])?
            .unwrap()
            .i64("n")
    })
    .await
    .unwrap()
}

/// Every connection of the pool prepares the statements the others have prepared, in one
/// pipelined burst when it is next taken, instead of a round trip per statement at first use:
/// a connection opened while the others are busy starts with them, and one that was idle
/// catches up (docs/benchmarks.md, "Cold connections").
#[tokio::test]
async fn the_pools_connections_share_their_prepared_statements() {
    let clock = ManualClock::at(T0);
    let Some(db) = TestDb::postgres(clock.as_clock()).await else { return };
    let store = Store::open(&with_params(&db.url, "pool_size=2")).await.unwrap();
    const FIRST: &str = "SELECT 41 + 1 AS warm_probe";
    const SECOND: &str = "SELECT 43 - 1 AS warm_probe";
    // The pool's one connection (A) prepares FIRST.
    keta_store::testing::read(&store, |c| c.query(FIRST, &[]).map(|_| ())).await.unwrap();
    assert_eq!(prepared_here(&store, FIRST).await, 1);
    // While A is held, a read opens B: it starts with FIRST prepared.
    let (release, holder) = hold_a_connection(&store).await;
    let on_b = prepared_here(&store, FIRST).await;
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    assert_eq!(on_b, 1, "a new connection prepares the pool's statements when it opens");
    // The pool hands out the last connection returned (A): A prepares SECOND while B is idle.
    keta_store::testing::read(&store, |c| c.query(SECOND, &[]).map(|_| ())).await.unwrap();
    // With A held again, B serves the next read and has caught up with SECOND.
    let (release, holder) = hold_a_connection(&store).await;
    let on_b = prepared_here(&store, SECOND).await;
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    assert_eq!(on_b, 1, "an idle connection catches up with what the others prepared");
}

#[tokio::test]
async fn the_statement_timeout_cancels_a_long_query() {
    let clock = ManualClock::at(T0);
    let Some(db) = TestDb::postgres(clock.as_clock()).await else { return };
    let store = Store::open(&with_params(&db.url, "statement_timeout_ms=200")).await.unwrap();
    let e = keta_store::testing::read(&store, |c| c.execute("SELECT pg_sleep(30)", &[])).await.unwrap_err().to_string();
    assert!(e.contains("statement timeout") && e.contains("statement_timeout_ms"), "{e}");
    // A write cut short saves nothing; the connection serves the next operation.
    let e = keta_store::testing::write(&store, |c| {
        c.execute("CREATE TABLE cut_short (x BIGINT)", &[])?;
        c.execute("SELECT pg_sleep(30)", &[])
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("nothing was saved"), "{e}");
    let n = keta_store::testing::read(&store, |c| {
        c.query_opt("SELECT count(*) AS n FROM pg_tables WHERE tablename = 'cut_short'", &[])?.unwrap().i64("n")
    })
    .await
    .unwrap();
    assert_eq!(n, 0);
}

/// Whether the server offers TLS (`SHOW ssl`), and whether a store's connection uses it.
async fn server_ssl(store: &Store) -> bool {
    keta_store::testing::read(store, |c| Ok(c.query_opt("SHOW ssl", &[])?.unwrap().text("ssl")? == "on")).await.unwrap()
}

async fn encrypted(store: &Store) -> bool {
    keta_store::testing::read(store, |c| {
        c.query_opt("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])?.unwrap().bool("ssl")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn tls_modes_connect_encrypted_or_say_why_not() {
    let clock = ManualClock::at(T0);
    let Some(db) = TestDb::postgres(clock.as_clock()).await else { return };
    let plain = Store::open(&with_params(&db.url, "sslmode=disable")).await.unwrap();
    assert!(!encrypted(&plain).await, "sslmode=disable never encrypts");
    let tls_on = server_ssl(&plain).await;
    // `prefer` encrypts when the server offers TLS and falls back to plain when it does not.
    let prefer = Store::open(&with_params(&db.url, "sslmode=prefer")).await.unwrap();
    assert_eq!(encrypted(&prefer).await, tls_on);
    if tls_on {
        // `require` encrypts (without checking the certificate, as libpq).
        let require = Store::open(&with_params(&db.url, "sslmode=require")).await.unwrap();
        assert!(encrypted(&require).await);
        // `verify-full` refuses a certificate no trusted root signed, saying what to check.
        let e = open_err(with_params(&db.url, "sslmode=verify-full")).await;
        assert!(e.contains("cannot connect") && e.contains("sslrootcert="), "{e}");
        // Debian's PostgreSQL serves the self-signed "snakeoil" certificate for `localhost`:
        // trusted as the root it verifies for that name, and not for another name.
        let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
        if std::path::Path::new(snakeoil).exists() && db.url.contains("@127.0.0.1:") {
            let root = format!("sslmode=verify-full&sslrootcert={snakeoil}");
            let localhost = with_params(&db.url.replace("@127.0.0.1:", "@localhost:"), &root);
            let s = Store::open(&localhost).await.unwrap();
            assert!(encrypted(&s).await);
            let e = open_err(with_params(&db.url, &root)).await;
            assert!(e.contains("certificate"), "{e}");
        }
    } else {
        // `require` refuses a server that offers no TLS, saying what to change.
        let e = open_err(with_params(&db.url, "sslmode=require")).await;
        assert!(e.contains("does not offer TLS") && e.contains("sslmode=prefer"), "{e}");
    }
    // A mode that does not exist is refused before connecting, naming the ones that do.
    let e = open_err(with_params(&db.url, "sslmode=verify-ca")).await;
    assert!(e.contains("sslmode=verify-ca") && e.contains("disable, prefer, require, verify-full"), "{e}");
    let e = open_err(with_params(&db.url, "sslmode=verify-full&sslrootcert=/nonexistent/root.crt")).await;
    assert!(e.contains("sslrootcert=/nonexistent/root.crt"), "{e}");
}

async fn unsealed(store: &Store) -> i64 {
    keta_store::testing::read(store, |c| {
        c.query_opt("SELECT count(*) AS n FROM audit_log WHERE chain_seq IS NULL", &[])?.unwrap().i64("n")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn concurrent_audited_writes_form_one_verified_chain() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let mut writers = Vec::new();
        for w in 0..16 {
            let store = db.store.clone();
            writers.push(tokio::spawn(async move {
                // Registration alone (one audit entry each): the chain, not the consents, is the subject.
                for n in 0..10 {
                    store.create_patient(&Actor::system(), new_patient(a, &format!("W{w:02}-{n:03}"))).await.unwrap();
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let (n, broken) = db.store.verify_audit_chain().await.unwrap();
        assert_eq!((n, broken), (161, None), "{:?}", db.kind);
        assert_eq!(unsealed(&db.store).await, 0, "{:?}", db.kind);
        // Chain positions run 1..=n without a gap, whatever order the writers committed in.
        let (min, max, count) = keta_store::testing::read(&db.store, |c| {
                let r = c
                    .query_opt("SELECT min(chain_seq) AS min_chain_seq, max(chain_seq) AS max_chain_seq, count(chain_seq) AS count_chain_seq FROM audit_log", &[])?
                    .unwrap();
                Ok((r.i64("min_chain_seq")?, r.i64("max_chain_seq")?, r.i64("count_chain_seq")?))
            })
            .await
            .unwrap();
        assert_eq!((min, max, count), (1, 161, 161), "{:?}", db.kind);
        let head = db.store.audit_head().await.unwrap().unwrap();
        assert_eq!(head.seq, 161);
        assert_eq!(db.store.check_audit_anchors(vec![head]).await.unwrap(), None);
    }
}

#[tokio::test]
async fn the_sealer_chains_entries_without_being_asked() {
    let clock = ManualClock::at(T0);
    let Some(db) = TestDb::postgres(clock.as_clock()).await else { return };
    let a = site(&db.store, "A").await;
    db.store.create_patient(&Actor::system(), new_patient(a, "A-0001")).await.unwrap();
    // Normally tens of milliseconds; the bound only keeps a broken sealer from hanging the suite.
    let mut waited = 0;
    while unsealed(&db.store).await > 0 {
        assert!(waited < 300, "the sealer left entries unchained for 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let (n, broken) = keta_store::testing::verify_audit_chain_as_stored(&db.store).await.unwrap();
    assert_eq!((n, broken), (2, None));
}

#[tokio::test]
async fn an_entry_is_sealed_once_and_never_altered() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let p = patient(&db.store, a, "A-0001").await;
        let record = move |c: &mut dyn keta_store::testing::Conn| {
            keta_store::testing::record_audit(
                c,
                &Actor::system(),
                T0,
                Entry {
                    action: Action::Read,
                    object_type: "patient",
                    object_id: None,
                    patient_id: Some(p),
                    site_id: Some(a),
                    fields: &[],
                },
            )?;
            c.query_opt("SELECT max(seq) AS max_seq FROM audit_log", &[])?.unwrap().i64("max_seq")
        };
        // In the writer's own transaction (not yet sealed on PostgreSQL), Keta cannot change
        // what the entry records, nor seal it with other content, nor delete it.
        let edits: [&str; 3] = [
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = $1",
            "UPDATE audit_log SET actor = 'mallory', chain_seq = 999999, prev_hash = 'x', row_hash = 'y' WHERE seq = $1",
            "DELETE FROM audit_log WHERE seq = $1",
        ];
        for sql in edits {
            let r = keta_store::testing::write(&db.store, move |c| {
                let seq = record(c)?;
                c.execute(sql, params![seq])
            })
            .await;
            assert!(r.is_err(), "{:?}: {sql} was allowed", db.kind);
        }
        // Once sealed, not even a sealer's update applies.
        let seq = keta_store::testing::write(&db.store, record).await.unwrap();
        db.store.seal_audit_chain().await.unwrap();
        let r = keta_store::testing::write(&db.store, move |c| {
            c.execute(
                "UPDATE audit_log SET chain_seq = 999999, prev_hash = 'x', row_hash = 'y' WHERE seq = $1",
                params![seq],
            )
        })
        .await;
        assert!(r.is_err(), "{:?}: a sealed entry was resealed", db.kind);
        let (_, broken) = db.store.verify_audit_chain().await.unwrap();
        assert_eq!(broken, None, "{:?}", db.kind);
        if db.kind == Kind::Postgres {
            assert_eq!(unsealed(&db.store).await, 0);
        }
    }
}

/// A statement sent together with a later one (`execute_later`, how audit entries travel on
/// PostgreSQL) that fails, fails the whole write: the error is reported whether it travelled
/// with the next statement or with the commit, nothing of the write is kept (no write is
/// acknowledged and lost), and the connection serves the next write.
#[tokio::test]
async fn a_failing_statement_sent_later_fails_the_whole_write() {
    let clock = ManualClock::at(T0);
    let Some(db) = TestDb::postgres(clock.as_clock()).await else { return };
    // One connection, so every write below runs on the same one.
    let store = Store::open(&with_params(&db.url, "pool_size=1")).await.unwrap();
    keta_store::testing::write(&store, |c| c.execute("CREATE TABLE later_kept (x BIGINT NOT NULL)", &[]))
        .await
        .unwrap();
    let with_next = keta_store::testing::write(&store, |c| {
        c.execute("INSERT INTO later_kept (x) VALUES (1)", &[])?;
        c.execute_later("INSERT INTO later_kept (x) VALUES (NULL)", &[])?;
        c.execute("INSERT INTO later_kept (x) VALUES (2)", &[])
    })
    .await;
    assert!(with_next.is_err(), "{with_next:?}");
    let with_commit = keta_store::testing::write(&store, |c| {
        c.execute("INSERT INTO later_kept (x) VALUES (3)", &[])?;
        c.execute_later("INSERT INTO later_kept (x) VALUES (NULL)", &[])
    })
    .await;
    assert!(with_commit.is_err(), "acknowledged, yet the commit was a rollback: {with_commit:?}");
    // A write of deferred statements only is sent whole with its commit, and kept.
    keta_store::testing::write(&store, |c| c.execute_later("INSERT INTO later_kept (x) VALUES (4)", &[]))
        .await
        .unwrap();
    let kept = keta_store::testing::read(&store, |c| {
        c.query("SELECT x FROM later_kept ORDER BY x", &[])?.iter().map(|r| r.i64("x")).collect::<Result<Vec<_>, _>>()
    })
    .await
    .unwrap();
    assert_eq!(kept, vec![4]);
}
