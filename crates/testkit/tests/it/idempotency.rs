//! A retried request never records twice: the `Idempotency-Key` header on the API, the
//! one-time form token on HTML forms, and the bounded SQLite writer queue. Run on both
//! backends where the behaviour is the store's; the queue is SQLite's own.

use serde_json::{Value, json};

use keta_domain::ids::PatientId;
use keta_testkit::{ManualClock, TestApp, TestDb, seed_staff, spawn_app};

use crate::fixtures::*;

/// A server over `db` with one patient and the nurse signed in.
async fn nurse_app(db: &TestDb) -> (TestApp, PatientId) {
    let a = site(&db.store, "A").await;
    let p = patient(&db.store, a, "A-0001").await;
    let staff = seed_staff(&db.store, &[a]).await;
    let app = spawn_app(db.store.clone()).await;
    assert_eq!(app.login(&staff[2], T0).await.status(), 200, "nurse signs in");
    (app, p)
}

async fn weights(db: &TestDb, p: PatientId) -> i64 {
    keta_store::testing::read(&db.store, move |c| {
        c.query_opt("SELECT count(*) AS n FROM weights WHERE patient_id = $1", keta_store::params![p.0])?
            .unwrap()
            .i64("n")
    })
    .await
    .unwrap()
}

fn weight(kg: f64) -> Value {
    json!({"weight_kg": kg, "measured_on": "2026-11-01", "weight_type": "actual"})
}

async fn post_keyed(app: &TestApp, path: &str, key: &str, body: &Value) -> reqwest::Response {
    app.request(reqwest::Method::POST, path).header("idempotency-key", key).json(body).send().await.expect("request")
}

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_first_result_and_records_once() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (app, p) = nurse_app(&db).await;
        let path = format!("/api/v1/patients/{}/weights", p.0);
        let first = post_keyed(&app, &path, "weigh-1", &weight(70.0)).await;
        assert_eq!(first.status(), 201, "{:?}", db.kind);
        assert!(first.headers().get("idempotent-replayed").is_none(), "{:?}", db.kind);
        let first_body = first.text().await.unwrap();

        let again = post_keyed(&app, &path, "weigh-1", &weight(70.0)).await;
        assert_eq!(again.status(), 201, "{:?}: the retry gets the first status", db.kind);
        assert_eq!(again.headers()["idempotent-replayed"], "true", "{:?}", db.kind);
        assert_eq!(again.text().await.unwrap(), first_body, "{:?}: and the first body", db.kind);
        assert_eq!(weights(&db, p).await, 1, "{:?}: recorded once", db.kind);

        // A new key is a new request.
        assert_eq!(post_keyed(&app, &path, "weigh-2", &weight(70.0)).await.status(), 201, "{:?}", db.kind);
        assert_eq!(weights(&db, p).await, 2, "{:?}", db.kind);
        // Without a key, nothing changes for existing clients.
        assert_eq!(app.post_json(&path, &weight(70.0)).await.status(), 201, "{:?}", db.kind);
        assert_eq!(weights(&db, p).await, 3, "{:?}", db.kind);
    }
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_and_changes_nothing() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (app, p) = nurse_app(&db).await;
        let path = format!("/api/v1/patients/{}/weights", p.0);
        assert_eq!(post_keyed(&app, &path, "k-1", &weight(70.0)).await.status(), 201, "{:?}", db.kind);
        let r = post_keyed(&app, &path, "k-1", &weight(71.5)).await;
        assert_eq!(r.status(), 422, "{:?}", db.kind);
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{:?}", db.kind);
        let problem: Value = r.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains("new key"), "{:?}: {problem}", db.kind);
        // The same key on another path is another request too.
        let other = format!("/api/v1/patients/{}/weights?x=1", p.0);
        assert_eq!(post_keyed(&app, &other, "k-1", &weight(70.0)).await.status(), 422, "{:?}", db.kind);
        assert_eq!(weights(&db, p).await, 1, "{:?}", db.kind);
    }
}

#[tokio::test]
async fn a_refused_request_gives_its_key_back_for_the_corrected_one() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (app, p) = nurse_app(&db).await;
        let path = format!("/api/v1/patients/{}/weights", p.0);
        // Nothing was recorded, so the key may carry the corrected request.
        assert_eq!(post_keyed(&app, &path, "k-fix", &weight(-3.0)).await.status(), 422, "{:?}", db.kind);
        assert_eq!(post_keyed(&app, &path, "k-fix", &weight(70.0)).await.status(), 201, "{:?}", db.kind);
        assert_eq!(weights(&db, p).await, 1, "{:?}", db.kind);
    }
}

#[tokio::test]
async fn sixteen_concurrent_identical_requests_with_one_key_record_once() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (app, p) = nurse_app(&db).await;
        let path = format!("/api/v1/patients/{}/weights", p.0);
        let body = weight(70.0);
        let attempts = (0..16).map(|_| post_keyed(&app, &path, "burst", &body));
        let responses = futures::future::join_all(attempts).await;
        let mut created = Vec::new();
        for r in responses {
            match r.status().as_u16() {
                201 => created.push(r.text().await.unwrap()),
                // The first was still running: the duplicate is told so, and records nothing.
                409 => assert_eq!(r.headers()["content-type"], "application/problem+json", "{:?}", db.kind),
                other => panic!("{:?}: unexpected status {other}: {}", db.kind, r.text().await.unwrap()),
            }
        }
        assert!(!created.is_empty(), "{:?}: one attempt recorded", db.kind);
        assert!(created.iter().all(|b| *b == created[0]), "{:?}: every success is the first result", db.kind);
        assert_eq!(weights(&db, p).await, 1, "{:?}: exactly one weight", db.kind);
        // Once the first has finished, a retry replays it.
        let late = post_keyed(&app, &path, "burst", &weight(70.0)).await;
        assert_eq!((late.status().as_u16(), late.text().await.unwrap()), (201, created[0].clone()), "{:?}", db.kind);
    }
}

/// The `form_token` of the form posting to `action` on a rendered page.
fn form_token_of(html: &str, action: &str) -> String {
    let form = &html[html.find(&format!("action=\"{action}\"")).expect("the form is on the page")..];
    let at = form.find("name=\"form_token\" value=\"").expect("the form carries a form token") + 25;
    form[at..at + form[at..].find('"').unwrap()].to_string()
}

#[tokio::test]
async fn a_form_submitted_twice_records_once() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (app, p) = nurse_app(&db).await;
        let action = format!("/patients/{}/weights", p.0);
        let page = app.get(&format!("/patients/{}", p.0)).await.text().await.unwrap();
        let token = form_token_of(&page, &action);
        let (cookie, csrf) = (app.cookie().unwrap(), page_csrf(&page));
        let submit = |kg: &'static str| {
            app.client
                .post(app.url(&action))
                .header("cookie", format!("__Host-keta={cookie}"))
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("form_token", token.as_str()),
                    ("weight_kg", kg),
                    ("measured_on", "2026-11-01"),
                    ("weight_type", "actual"),
                ])
                .send()
        };
        let first = submit("70").await.unwrap();
        assert_eq!(first.status(), 303, "{:?}", db.kind);
        // The double-click: the second shows the first result (the same redirect).
        let second = submit("70").await.unwrap();
        assert_eq!(second.status(), 303, "{:?}", db.kind);
        assert_eq!(second.headers()["location"], first.headers()["location"], "{:?}", db.kind);
        assert_eq!(second.headers()["idempotent-replayed"], "true", "{:?}", db.kind);
        // Back, change the value, submit the same form again: already recorded, said plainly.
        let changed = submit("72").await.unwrap();
        assert_eq!(changed.status(), 409, "{:?}", db.kind);
        assert!(changed.text().await.unwrap().contains("already submitted and recorded"), "{:?}", db.kind);
        assert_eq!(weights(&db, p).await, 1, "{:?}: one weight", db.kind);

        // A freshly rendered form has a new token and records again.
        let page = app.get(&format!("/patients/{}", p.0)).await.text().await.unwrap();
        assert_ne!(form_token_of(&page, &action), token, "{:?}", db.kind);
    }
}

fn page_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf_token\" value=\"").expect("csrf field") + 25;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

/// Holds the SQLite writer busy until `release` is sent (or dropped).
async fn occupy_writer(store: &keta_store::Store) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let s = store.clone();
    let held = tokio::spawn(async move {
        keta_store::testing::write(&s, move |_| {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
            Ok(())
        })
        .await
        .unwrap();
    });
    started_rx.await.expect("the writer took the blocking job");
    (release_tx, held)
}

/// Polls `f` once (so a write is queued) and hands it back.
async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) {
    tokio::select! {
        biased;
        _ = f => panic!("the write finished while the writer was held"),
        _ = std::future::ready(()) => {}
    }
}

#[tokio::test]
async fn a_full_writer_queue_answers_503_with_retry_after_and_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?writer_queue=1", dir.path().join("keta.db").display());
    let db_store = keta_store::Store::open_with_clock(&url, ManualClock::at(T0).as_clock()).await.unwrap();
    let a = site(&db_store, "A").await;
    let p = patient(&db_store, a, "A-0001").await;
    let staff = seed_staff(&db_store, &[a]).await;
    let app = spawn_app(db_store.clone()).await;
    assert_eq!(app.login(&staff[2], T0).await.status(), 200);
    let path = format!("/api/v1/patients/{}/weights", p.0);

    let (release, held) = occupy_writer(&db_store).await;
    // One write waits in the queue of one: the queue is full.
    let mut waiting = Box::pin(keta_store::testing::write(&db_store, |_| Ok(())));
    poll_once(&mut waiting).await;

    let r = app.post_json(&path, &weight(70.0)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("nothing was saved"), "{problem}");

    release.send(()).unwrap();
    held.await.unwrap();
    waiting.await.unwrap();
    // The retry the server asked for succeeds, and only it recorded.
    assert_eq!(app.post_json(&path, &weight(70.0)).await.status(), 201);
    let n = keta_store::testing::read(&db_store, move |c| {
        c.query_opt("SELECT count(*) AS n FROM weights WHERE patient_id = $1", keta_store::params![p.0])?
            .unwrap()
            .i64("n")
    })
    .await
    .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_write_whose_caller_gave_up_in_the_queue_is_never_run() {
    // The request timeout covers the wait for the writer: a write dropped while queued
    // (its request timed out) must not be recorded later behind the client's back.
    let db = TestDb::sqlite(ManualClock::at(T0).as_clock()).await;
    let a = site(&db.store, "A").await;
    let (release, held) = occupy_writer(&db.store).await;
    let mut abandoned = Box::pin(keta_store::testing::write(&db.store, move |c| {
        c.execute("UPDATE sites SET name = 'written after its caller left' WHERE id = $1", keta_store::params![a.0])
    }));
    poll_once(&mut abandoned).await;
    drop(abandoned);
    release.send(()).unwrap();
    held.await.unwrap();
    // The queue runs in order: once a later write is done, the abandoned one had its turn.
    keta_store::testing::write(&db.store, |_| Ok(())).await.unwrap();
    let name = keta_store::testing::read(&db.store, move |c| {
        c.query_opt("SELECT name FROM sites WHERE id = $1", keta_store::params![a.0])?.unwrap().text("name")
    })
    .await
    .unwrap();
    assert_ne!(name, "written after its caller left");
}

/// The first account's id (the administrator seeded first).
async fn first_user(db: &TestDb) -> i64 {
    keta_store::testing::read(&db.store, |c| {
        c.query_opt("SELECT min(id) AS min_id FROM users", &[])?.unwrap().i64("min_id")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_key_in_flight_is_held_then_taken_over_only_if_nothing_was_recorded() {
    use keta_store::idempotency::{KeyPolicy, Reservation, StoredResponse, under_claim};
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let a = site(&db.store, "A").await;
        seed_staff(&db.store, &[a]).await;
        let user = first_user(&db).await;
        let policy = KeyPolicy::default();
        let reserve = |key: &'static str| db.store.reserve_idempotency_key(user, key, "print", policy);

        let Reservation::Reserved(first) = reserve("k").await.unwrap() else { panic!("{:?}: first reserves", db.kind) };
        assert_eq!(reserve("k").await.unwrap(), Reservation::InFlight, "{:?}", db.kind);
        assert_eq!(
            db.store.reserve_idempotency_key(user, "k", "another", policy).await.unwrap(),
            Reservation::Mismatch,
            "{:?}",
            db.kind
        );

        // The first attempt stalls past its lease without recording: a retry takes over,
        // and the stalled attempt can no longer record anything.
        clock.advance(policy.lease + time::Duration::seconds(1));
        let Reservation::Reserved(second) = reserve("k").await.unwrap() else { panic!("{:?}: takeover", db.kind) };
        assert_ne!(second.owner, first.owner, "{:?}", db.kind);
        let stale = under_claim(
            first.clone(),
            keta_store::testing::write(&db.store, move |c| {
                c.execute("UPDATE sites SET name = 'stale' WHERE id = $1", keta_store::params![a.0])
            }),
        )
        .await;
        assert!(matches!(stale, Err(keta_store::StoreError::Conflict(_))), "{:?}: {stale:?}", db.kind);
        let name = keta_store::testing::read(&db.store, move |c| {
            c.query_opt("SELECT name FROM sites WHERE id = $1", keta_store::params![a.0])?.unwrap().text("name")
        })
        .await
        .unwrap();
        assert_ne!(name, "stale", "{:?}: the stale attempt's write rolled back", db.kind);

        // The retry records, then the server stops before keeping its response: the write
        // can be found (when), never repeated.
        under_claim(
            second.clone(),
            keta_store::testing::write(&db.store, move |c| {
                c.execute("UPDATE sites SET name = 'retried' WHERE id = $1", keta_store::params![a.0])
            }),
        )
        .await
        .unwrap();
        assert!(!db.store.release_idempotency_key(&second).await.unwrap(), "{:?}: a recorded key is kept", db.kind);
        clock.advance(policy.lease + time::Duration::seconds(1));
        assert!(matches!(reserve("k").await.unwrap(), Reservation::RecordedWithoutResponse { .. }), "{:?}", db.kind);

        // A finished key replays; after the retention it is purged and the key is free.
        let Reservation::Reserved(done) = reserve("k2").await.unwrap() else { panic!() };
        let stored = StoredResponse {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        };
        db.store.complete_idempotency_key(&done, &stored).await.unwrap();
        assert_eq!(reserve("k2").await.unwrap(), Reservation::Replay(stored), "{:?}", db.kind);
        clock.advance(policy.retention + time::Duration::seconds(1));
        assert!(
            matches!(reserve("k2").await.unwrap(), Reservation::Reserved(_)),
            "{:?}: expired keys are purged",
            db.kind
        );
    }
}
