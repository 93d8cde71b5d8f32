//! Readings judged from memory (PostgreSQL, `crates/store/src/vitals_memory.rs`): a server
//! remembers what its last vitals write read of a session and sends the next typed reading in
//! one round trip when the memory says it is accepted and raises nothing. These stories change
//! the facts underneath the memory, as another server or a direct edit would, and check that
//! each reading is still judged on the facts in the database, and that the memory is used when
//! it holds. They run on SQLite too, where nothing is remembered and the judgements are the same.

use keta_domain::DomainError;
use keta_domain::course::Route;
use keta_domain::ids::SessionId;
use keta_domain::records::VitalsSource;
use keta_domain::session::{NewSession, SessionAction};
use keta_domain::units::Mmhg;
use keta_domain::vitals::VitalSigns;
use keta_store::testing::Value;
use keta_store::{Actor, Store, StoreError, params};
use keta_testkit::{Kind, ManualClock, TestDb};
use time::Duration;

use crate::fixtures::*;

fn bp(sys: f64, dia: f64) -> VitalSigns {
    VitalSigns { systolic_mmhg: Some(Mmhg(sys)), diastolic_mmhg: Some(Mmhg(dia)), ..Default::default() }
}

/// Changes the database behind the store's back (what another server, or an edit, would do).
async fn underneath(s: &Store, sql: &'static str, values: Vec<Value>) {
    keta_store::testing::write(s, move |c| c.execute(sql, &values).map(|_| ())).await.unwrap();
}

/// A reading stored underneath, blood pressure only.
async fn stored_underneath(s: &Store, sess: SessionId, at: time::OffsetDateTime, (sys, dia): (f64, f64)) {
    underneath(
        s,
        "INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, source)
         SELECT id, patient_id, $2, $3, $4, 'manual' FROM sessions WHERE id = $1",
        params![sess.0, at.unix_timestamp() * 1000, sys, dia].to_vec(),
    )
    .await;
}

async fn audit_entries(s: &Store, vitals_id: i64) -> i64 {
    keta_store::testing::read(s, move |c| {
        c.query_opt(
            "SELECT count(*) AS n FROM audit_log WHERE object_type = 'vitals' AND object_id = $1 AND action = 'create'",
            params![vitals_id.to_string()],
        )?
        .unwrap()
        .i64("n")
    })
    .await
    .unwrap()
}

/// A new patient's session at site `a`, checked in and in its pre-dose checks.
async fn session_in_pre_dose_checks(s: &Store, a: keta_domain::ids::SiteId, mrn: &str) -> SessionId {
    let n = nurse(&[a]);
    let p = patient(s, a, mrn).await;
    let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
    let new = NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None };
    let sess = s.create_session(&prescriber(&[a]), c.id, new).await.unwrap().id;
    s.act_on_session(&n, sess, SessionAction::CheckIn).await.unwrap();
    s.act_on_session(&n, sess, SessionAction::StartPreDoseChecks).await.unwrap();
    sess
}

/// Records a reading as a nurse types it (confirming nothing) and returns the rules it fired.
async fn typed(s: &Store, n: &Actor, sess: SessionId, v: VitalSigns) -> keta_store::Result<(i64, Vec<String>)> {
    let out = s.record_vitals_entry(n, sess, v, None, VitalsSource::Manual, false).await?;
    Ok((out.record.id.0, out.alerts.into_iter().map(|a| a.rule).collect()))
}

#[tokio::test]
async fn a_reading_is_judged_on_the_databases_facts_whatever_the_server_remembers() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let (s, k) = (&db.store, db.kind);
        let one_trip = u64::from(k == Kind::Postgres);
        let a = site(s, "A").await;
        let n = nurse(&[a]);
        let sess = session_in_pre_dose_checks(s, a, "A-0001").await;
        typed(s, &n, sess, bp(130.0, 80.0)).await.unwrap();
        s.act_on_session(&n, sess, SessionAction::StartDose).await.unwrap();

        // The dose started after the memory was made: the next reading finds the session's
        // state changed and goes the ordinary way; the one after it, from memory.
        clock.advance(Duration::minutes(10));
        assert_eq!(typed(s, &n, sess, bp(132.0, 82.0)).await.unwrap().1, Vec::<String>::new());
        assert_eq!(s.vitals_written_from_memory(), 0, "{k:?}: the state changed since it was remembered");
        clock.advance(Duration::minutes(1));
        let (id, fired) = typed(s, &n, sess, bp(134.0, 84.0)).await.unwrap();
        assert!(fired.is_empty(), "{k:?}: {fired:?}");
        assert_eq!(s.vitals_written_from_memory(), one_trip, "{k:?}: an unremarkable reading goes in one round trip");
        assert_eq!(audit_entries(s, id).await, 1, "{k:?}: the reading written from memory has its one audit entry");

        // A backdated reading stored underneath becomes the baseline: 136/86 is a notable rise
        // over it (+46/+26), though not over the baseline remembered (130/80).
        stored_underneath(s, sess, T0 - Duration::minutes(1), (90.0, 60.0)).await;
        clock.advance(Duration::minutes(1));
        assert_eq!(typed(s, &n, sess, bp(136.0, 86.0)).await.unwrap().1, ["bp_rise_from_baseline"], "{k:?}");

        // The latest reading changed underneath: the same values typed moments later are a
        // double entry, though they differ from the latest reading remembered.
        clock.advance(Duration::minutes(1));
        stored_underneath(s, sess, clock.now(), (110.0, 70.0)).await;
        let vitals_before = keta_store::testing::count_rows(s, "vitals").await.unwrap();
        clock.advance(Duration::seconds(10));
        match typed(s, &n, sess, bp(110.0, 70.0)).await {
            Err(StoreError::Domain(DomainError::Invalid(errs))) => {
                assert_eq!(errs[0].field, "confirm_duplicate", "{k:?}")
            }
            other => panic!("{k:?}: expected a double entry to be refused, got {other:?}"),
        }
        assert_eq!(keta_store::testing::count_rows(s, "vitals").await.unwrap(), vitals_before, "{k:?}: nothing kept");

        // The site's safety rules changed underneath (severe hypertension from 120 mmHg
        // systolic): 125/80 is in the severe range by them, not by the rules remembered.
        clock.advance(Duration::minutes(1));
        assert!(typed(s, &n, sess, bp(112.0, 72.0)).await.unwrap().1.is_empty(), "{k:?}");
        let rules = include_str!("../../../../data/rules/session-safety.toml")
            .replace("systolic_at_or_above_mmhg = 180", "systolic_at_or_above_mmhg = 120");
        assert!(rules.contains("systolic_at_or_above_mmhg = 120"));
        let settings = serde_json::json!({ keta_store::rules::SAFETY_KEY: rules }).to_string();
        underneath(s, "UPDATE sites SET settings = $1 WHERE id = $2", params![settings, a.0].to_vec()).await;
        clock.advance(Duration::minutes(1));
        assert_eq!(typed(s, &n, sess, bp(125.0, 80.0)).await.unwrap().1, ["severe_hypertension"], "{k:?}");

        // The session was stopped elsewhere: the next reading is refused as in any stopped session.
        clock.advance(Duration::minutes(1));
        let from_memory = s.vitals_written_from_memory();
        assert!(typed(s, &n, sess, bp(118.0, 76.0)).await.unwrap().1.is_empty(), "{k:?}");
        assert_eq!(s.vitals_written_from_memory(), from_memory + one_trip, "{k:?}");
        underneath(s, "UPDATE sessions SET state = 'stopped' WHERE id = $1", params![sess.0].to_vec()).await;
        let vitals_before = keta_store::testing::count_rows(s, "vitals").await.unwrap();
        let refused = typed(s, &n, sess, bp(119.0, 77.0)).await;
        assert!(matches!(refused, Err(StoreError::Conflict(ref m)) if m.contains("stopped")), "{k:?}: {refused:?}");
        assert_eq!(keta_store::testing::count_rows(s, "vitals").await.unwrap(), vitals_before, "{k:?}: nothing kept");
        assert_eq!(s.vitals_written_from_memory(), from_memory + one_trip, "{k:?}: none of these went from memory");
        assert_eq!(s.verify_audit_chain().await.unwrap().1, None, "{k:?}: the audit chain verifies");
    }
}

/// Through the API, with an `Idempotency-Key` (its claim is marked in the same transaction as
/// the reading): a reading written from memory is recorded once, and a retry gets its answer.
#[tokio::test]
async fn a_keyed_reading_from_memory_is_recorded_once_and_its_retry_gets_the_first_answer() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let staff = keta_testkit::seed_staff(s, &[a]).await;
        let app = keta_testkit::spawn_app(s.clone()).await;
        let nurse = staff.iter().find(|x| x.role == keta_domain::access::Role::Nurse).unwrap();
        assert_eq!(app.login(nurse, clock.now()).await.status(), 200);
        let sess = session_in_pre_dose_checks(s, a, "A-0002").await;
        let path = format!("/api/v1/sessions/{sess}/vitals");
        let post = |key: &'static str, sys: i64| {
            let body = serde_json::json!({"systolic_mmhg": sys, "diastolic_mmhg": 80});
            app.request(reqwest::Method::POST, &path).header("idempotency-key", key).json(&body).send()
        };
        assert_eq!(post("bp-1", 128).await.unwrap().status(), 201, "{k:?}");
        clock.advance(Duration::minutes(1));
        let first = post("bp-2", 130).await.unwrap();
        assert_eq!(first.status(), 201, "{k:?}");
        let first_body = first.text().await.unwrap();
        assert_eq!(s.vitals_written_from_memory(), u64::from(k == Kind::Postgres), "{k:?}");
        let again = post("bp-2", 130).await.unwrap();
        assert_eq!(again.status(), 201, "{k:?}");
        assert_eq!(again.headers()["idempotent-replayed"], "true", "{k:?}");
        assert_eq!(again.text().await.unwrap(), first_body, "{k:?}");
        assert_eq!(keta_store::testing::count_rows(s, "vitals").await.unwrap(), 2, "{k:?}: recorded once");
    }
}
