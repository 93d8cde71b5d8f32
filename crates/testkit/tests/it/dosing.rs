//! Dose records with a second-person check, cumulative exposure, and the dosing and PK
//! API, on every backend.

use serde_json::{Value, json};
use time::Duration;
use time::macros::date;

use keta_domain::DomainError;
use keta_domain::course::{NewCourse, Phase, Route};
use keta_domain::dosing::{BagVolume, DoseAmount, DoseRecord, DoseRequest};
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::patient::{NewWeight, WeightType};
use keta_domain::protocols::{DoseLimits, Drug, Protocol, ProtocolLibrary, SourcedValue};
use keta_domain::session::{NewSession, SessionAction};
use keta_domain::units::{Kilograms, Milligrams, Millilitres, Minutes};
use keta_store::dosing::DoseChecker;
use keta_store::{Actor, StoreError};
use keta_testkit::{ManualClock, TEST_PASSWORD, TestDb, seed_staff, spawn_app};

use crate::fixtures::*;

/// Every backend, each with its own clock starting at T0 (the tests move time).
async fn backends() -> Vec<(TestDb, ManualClock)> {
    let clock = ManualClock::at(T0);
    let mut v = vec![(TestDb::sqlite(clock.as_clock()).await, clock)];
    let clock = ManualClock::at(T0);
    match TestDb::postgres(clock.as_clock()).await {
        Some(pg) => v.push((pg, clock)),
        None => eprintln!("note: PostgreSQL skipped ({} is not set)", keta_testkit::POSTGRES_ENV),
    }
    v
}

fn protocol(id: &str) -> Protocol {
    ProtocolLibrary::builtin().get(id).unwrap().clone()
}

fn iv_request(weight: f64, mg_per_kg: f64) -> DoseRequest {
    DoseRequest {
        protocol: Some("iv-racemic-0.5".into()),
        bag: Some(BagVolume::FinalVolumeIncludingDrugMl(Millilitres(100.0))),
        infusion_min: Some(Minutes(40)),
        ..DoseRequest::per_kg(weight, mg_per_kg)
    }
}

fn check(actor: Actor, clock: &ManualClock) -> DoseChecker {
    DoseChecker { actor, verified_at: clock.now() }
}

/// A patient at site A weighing 70 kg (measured the day before T0) with an IV course of
/// sessions on the given days after T0.
async fn iv_patient(db: &TestDb, a: SiteId, mrn: &str, days: &[i64]) -> (PatientId, Vec<SessionId>) {
    let s = &db.store;
    let p = patient(s, a, mrn).await;
    s.add_weight(
        &Actor::system(),
        p,
        NewWeight { weight_kg: Kilograms(70.0), measured_on: date!(2026 - 11 - 01), weight_type: WeightType::Actual },
    )
    .await
    .unwrap();
    let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
    let mut sessions = Vec::new();
    for d in days {
        let new = NewSession { scheduled_for: T0 + Duration::days(*d), chair_id: None, planned_dose_mg: None };
        sessions.push(s.create_session(&prescriber(&[a]), c.id, new).await.unwrap().id);
    }
    (p, sessions)
}

async fn start_dose(db: &TestDb, a: SiteId, session: SessionId) {
    for step in [SessionAction::CheckIn, SessionAction::StartPreDoseChecks, SessionAction::StartDose] {
        db.store.act_on_session(&nurse(&[a]), session, step).await.unwrap();
    }
}

async fn rows(db: &TestDb, sql: &'static str) -> i64 {
    keta_store::testing::read(&db.store, move |c| c.query_opt(sql, &[])?.unwrap().i64("n")).await.unwrap()
}

/// The nurse of site A calculates; `checker` checks.
async fn record(
    db: &TestDb,
    a: SiteId,
    sess: SessionId,
    p: &str,
    checker: Actor,
    req: DoseRequest,
    clock: &ManualClock,
) -> Result<DoseRecord, StoreError> {
    db.store.record_dose(&nurse(&[a]), sess, Some(protocol(p)), req, check(checker, clock)).await
}

fn field_error(r: Result<DoseRecord, StoreError>) -> String {
    match r {
        Err(StoreError::Domain(DomainError::Invalid(e))) => {
            e.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join(" | ")
        }
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_second_person_check_is_someone_else_and_is_recorded_with_the_time() {
    for (db, clock) in backends().await {
        let (a, b) = (site(&db.store, "A").await, site(&db.store, "B").await);
        let (_, sessions) = iv_patient(&db, a, "A-0501", &[0]).await;
        let sess = sessions[0];
        let iv = Some(protocol("iv-racemic-0.5"));
        let (db_, clock_) = (&db, &clock);
        let by = |checker: Actor, req: DoseRequest| record(db_, a, sess, "iv-racemic-0.5", checker, req, clock_);

        // The same user cannot check their own calculation.
        let why = field_error(by(nurse(&[a]), iv_request(70.0, 0.5)).await);
        assert!(
            why.starts_with("checker_username: the second check must be by a different person"),
            "{why} ({:?})",
            db.kind
        );
        // Nor can someone who may not record in the chair, or who works elsewhere.
        assert!(field_error(by(front_desk(&[a]), iv_request(70.0, 0.5)).await).contains("may not check doses"));
        assert!(
            field_error(by(prescriber(&[b]), iv_request(70.0, 0.5)).await)
                .contains("does not work at this patient's site")
        );
        // A stale verification is refused.
        let stale = DoseChecker { actor: prescriber(&[a]), verified_at: clock.now() - Duration::minutes(20) };
        assert!(matches!(
            db.store.record_dose(&nurse(&[a]), sess, iv.clone(), iv_request(70.0, 0.5), stale).await,
            Err(StoreError::Forbidden(_))
        ));
        // A recorded dose follows a protocol.
        let req = DoseRequest { protocol: None, ..iv_request(70.0, 0.5) };
        let none = db.store.record_dose(&nurse(&[a]), sess, None, req, check(prescriber(&[a]), &clock)).await;
        assert!(field_error(none).contains("name the protocol the dose follows"));
        // The weight must be the chart's.
        let why = field_error(by(prescriber(&[a]), iv_request(72.0, 0.5)).await);
        assert!(why.contains("latest recorded actual weight, 70 kg on 2026-11-01"), "{why}");
        assert!(
            field_error(
                by(prescriber(&[a]), DoseRequest { weight_type: WeightType::Ideal, ..iv_request(70.0, 0.5) }).await
            )
            .contains("no ideal weight recorded")
        );
        // The protocol must be for the session's route.
        let esk = DoseRequest {
            protocol: Some("esketamine-trd".into()),
            dose: DoseAmount::Mg(Milligrams(56.0)),
            ..DoseRequest::per_kg(70.0, 0.0)
        };
        let why = field_error(record(&db, a, sess, "esketamine-trd", prescriber(&[a]), esk, &clock).await);
        assert!(why.contains("is for Esketamine nasal spray, but this session is IV ketamine"), "{why}");
        // The protocol's limits refuse an out-of-range dose with the reason, and nothing is stored.
        let mut clinic = protocol("iv-racemic-0.5");
        clinic.limits = DoseLimits {
            max_mg_per_kg: Some(SourcedValue { value: 0.75, source: "clinic setting (test)".into() }),
            ..Default::default()
        };
        let audits = rows(&db, "SELECT count(*) AS n FROM audit_log").await;
        let why = field_error(
            db.store
                .record_dose(&nurse(&[a]), sess, Some(clinic), iv_request(70.0, 1.0), check(prescriber(&[a]), &clock))
                .await,
        );
        assert!(
            why.contains("1 mg/kg is above this protocol's maximum of 0.75 mg/kg (clinic setting (test))"),
            "{why}"
        );
        assert_eq!(rows(&db, "SELECT count(*) AS n FROM dose_records").await, 0, "{:?}", db.kind);
        assert_eq!(
            rows(&db, "SELECT count(*) AS n FROM audit_log").await,
            audits,
            "a refused record writes no audit entry"
        );

        // A different nurse or prescriber at the site: recorded, with who and when.
        clock.advance(Duration::minutes(3));
        let r = by(prescriber(&[a]), iv_request(70.0, 0.5)).await.unwrap();
        assert_eq!((r.calculated_by.as_str(), r.checked_by.as_str()), ("nurse.test", "dr.test"), "{:?}", db.kind);
        assert_eq!((r.calculated_at, r.checked_at), (clock.now(), clock.now()));
        assert_eq!(
            (r.weight_kg.0, r.weight_measured_on, r.weight_type),
            (70.0, date!(2026 - 11 - 01), WeightType::Actual)
        );
        assert_eq!((r.dose_mg.0, r.dose_mg_per_kg.0), (35.0, 0.5));
        let pump = r.calculation.pump.as_ref().unwrap();
        assert_eq!((pump.rate_ml_per_h.0, r.calculation.dose_rate.as_ref().unwrap().mg_per_h.0), (150.0, 52.5));
        // The chart filled in the age and the first session.
        assert_eq!((r.request.age_years, r.request.first_session), (Some(42), true));
        assert_eq!(
            rows(&db, "SELECT count(*) AS n FROM audit_log WHERE object_type = 'dose_record' AND action = 'create'")
                .await,
            1
        );
        let listed = db.store.list_session_doses(&nurse(&[a]), sess).await.unwrap();
        assert_eq!(listed, std::slice::from_ref(&r), "{:?}", db.kind);
        // Append-only.
        let upd =
            keta_store::testing::write(&db.store, |c| c.execute("UPDATE dose_records SET dose_mg = 1", &[])).await;
        assert!(upd.is_err(), "{:?}", db.kind);
        let del = keta_store::testing::write(&db.store, |c| c.execute("DELETE FROM dose_records", &[])).await;
        assert!(del.is_err(), "{:?}", db.kind);
        // A nurse of another site does not see the session's doses.
        assert!(matches!(db.store.list_session_doses(&nurse(&[b]), sess).await, Err(StoreError::NotFound(_))));
    }
}

#[tokio::test]
async fn exposure_sums_the_latest_checked_dose_of_each_dosed_session() {
    for (db, clock) in backends().await {
        let a = site(&db.store, "A").await;
        let (p, s) = iv_patient(&db, a, "A-0601", &[0, 2, 9]).await;
        let (db_, clock_) = (&db, &clock);
        let rec = |sess: SessionId, mg_per_kg: f64| {
            record(db_, a, sess, "iv-racemic-0.5", prescriber(&[a]), iv_request(70.0, mg_per_kg), clock_)
        };
        // Monday 2 November: 35 mg.
        rec(s[0], 0.5).await.unwrap();
        start_dose(&db, a, s[0]).await;
        // Wednesday: 35 mg recorded, then corrected to 52.5 mg; the latest counts.
        clock.advance(Duration::days(2));
        rec(s[1], 0.5).await.unwrap();
        rec(s[1], 0.75).await.unwrap();
        start_dose(&db, a, s[1]).await;
        // The third session's dose is recorded but never started: not counted.
        rec(s[2], 0.5).await.unwrap();
        // Esketamine on Thursday: a separate drug, never added to racemic ketamine.
        clock.advance(Duration::days(1));
        let c = db
            .store
            .create_course(
                &prescriber(&[a]),
                p,
                NewCourse {
                    route: Route::IntranasalEsketamine,
                    phase: Phase::Induction,
                    ..course(Route::IntranasalEsketamine)
                },
            )
            .await
            .unwrap();
        let es = db
            .store
            .create_session(
                &prescriber(&[a]),
                c.id,
                NewSession { scheduled_for: clock.now(), chair_id: None, planned_dose_mg: None },
            )
            .await
            .unwrap()
            .id;
        let esk = |mg: f64| DoseRequest {
            protocol: Some("esketamine-trd".into()),
            dose: DoseAmount::Mg(Milligrams(mg)),
            ..DoseRequest::per_kg(70.0, 0.0)
        };
        // The chart says this is the first session of an induction course and the patient is 42: day 1 is 56 mg.
        let why = field_error(record(&db, a, es, "esketamine-trd", prescriber(&[a]), esk(84.0), &clock).await);
        assert!(why.contains("the first session's dose is 56 mg"), "{why}");
        let r = record(&db, a, es, "esketamine-trd", prescriber(&[a]), esk(56.0), &clock).await.unwrap();
        assert_eq!(r.calculation.nasal.as_ref().unwrap().devices, 2);
        start_dose(&db, a, es).await;

        clock.advance(Duration::days(5)); // Tuesday 10 November, 14:00
        let e = db.store.patient_exposure(&prescriber(&[a]), p).await.unwrap();
        assert_eq!(e.as_of, clock.now());
        assert_eq!(e.drugs.len(), 2, "{:?}", db.kind);
        let racemic = &e.drugs[0];
        assert_eq!(racemic.drug, Drug::RacemicKetamine);
        assert_eq!((racemic.lifetime_mg.0, racemic.doses), (87.5, 2), "{:?}", db.kind);
        assert_eq!(racemic.last_7_days_mg.0, 52.5, "the 7 days from 3 November 14:00");
        assert_eq!(racemic.last_30_days_mg.0, 87.5);
        let weeks: Vec<(&str, f64)> = racemic.by_week.iter().map(|w| (w.period.as_str(), w.mg.0)).collect();
        assert_eq!(weeks, [("2026-W45", 87.5)]);
        assert_eq!(racemic.by_month[0].period, "2026-11");
        let esk_e = &e.drugs[1];
        assert_eq!((esk_e.drug, esk_e.lifetime_mg.0, esk_e.last_7_days_mg.0), (Drug::Esketamine, 56.0, 56.0));
        // Reading exposure is clinical: audited, and not for the front desk.
        assert_eq!(
            rows(&db, "SELECT count(*) AS n FROM audit_log WHERE object_type = 'exposure' AND action = 'read'").await,
            1
        );
        assert!(matches!(db.store.patient_exposure(&front_desk(&[a]), p).await, Err(StoreError::Forbidden(_))));
    }
}

#[tokio::test]
async fn the_dosing_api_records_checks_and_reports_exposure_on_every_backend() {
    for (db, clock) in backends().await {
        let a = site(&db.store, "A").await;
        let staff = seed_staff(&db.store, &[a]).await;
        let app = spawn_app(db.store.clone()).await;
        let (p, s) = iv_patient(&db, a, "A-0701", &[0]).await;
        clock.advance(Duration::seconds(31));
        assert_eq!(app.login(&staff[2], clock.now()).await.status(), 200, "the nurse signs in");

        let calc = json!({
            "protocol": "iv-racemic-0.5", "weight_kg": 70, "dose": {"mg_per_kg": 0.5},
            "bag": {"final_volume_including_drug_ml": 100}, "vial_mg_per_ml": 50
        });
        let path = format!("/api/v1/sessions/{}/dose", s[0].0);
        // The nurse cannot be their own checker (refused before any password is checked).
        let r = app
            .post_json(
                &path,
                &json!({"calculation": calc, "checker_username": "nurse.test", "checker_password": TEST_PASSWORD}),
            )
            .await;
        assert_eq!(r.status(), 422, "{:?}", db.kind);
        let prob: Value = r.json().await.unwrap();
        assert_eq!(prob["errors"][0]["field"], "checker_username");
        // A wrong password for the checker.
        let r = app
            .post_json(
                &path,
                &json!({"calculation": calc, "checker_username": "prescriber.test", "checker_password": "nope"}),
            )
            .await;
        assert_eq!(r.status(), 403);
        // The prescriber checks it with their own password.
        let r = app
            .post_json(
                &path,
                &json!({"calculation": calc, "checker_username": "prescriber.test", "checker_password": TEST_PASSWORD}),
            )
            .await;
        assert_eq!(r.status(), 201, "{:?}", db.kind);
        let rec: Value = r.json().await.unwrap();
        assert_eq!(
            (rec["calculated_by"].as_str(), rec["checked_by"].as_str()),
            (Some("nurse.test"), Some("prescriber.test"))
        );
        assert_eq!(rec["dose_mg"], 35.0);
        assert_eq!(rec["calculation"]["bag"]["diluent_volume_ml"], 99.3);
        assert_eq!(rec["calculation"]["pump"]["rate_ml_per_h"], 150.0);
        assert!(rec["checked_at"].as_str().unwrap().starts_with("2026-11-02T14:00:"));
        let listed: Value = app.get(&path).await.json().await.unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 1);
        // Out of the protocol's allowed doses: 422 with the reason.
        let bad = json!({"calculation": {"protocol": "esketamine-trd", "weight_kg": 70, "dose": {"mg": 56}},
            "checker_username": "prescriber.test", "checker_password": TEST_PASSWORD});
        let r = app.post_json(&path, &bad).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("this session is IV ketamine"));

        start_dose(&db, a, s[0]).await;
        let e: Value = app.get(&format!("/api/v1/patients/{}/exposure", p.0)).await.json().await.unwrap();
        assert_eq!(e["drugs"][0]["drug"], "racemic_ketamine", "{e}");
        assert_eq!(e["drugs"][0]["lifetime_mg"], 35.0);
        assert_eq!(e["drugs"][0]["by_week"][0]["period"], "2026-W45");

        // The pure endpoints.
        let c: Value = app
            .post_json("/api/v1/dose/calculate", &json!({"protocol": "iv-racemic-0.5", "weight_kg": 100, "dose": {"mg_per_kg": 1.0}, "bag": {"final_volume_including_drug_ml": 250}}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!((c["dose_mg"].as_f64(), c["bag"]["concentration_mg_per_ml"].as_f64()), (Some(100.0), Some(0.4)));
        assert_eq!(
            (c["pump"]["rate_ml_per_h"].as_f64(), c["dose_rate"]["mg_per_h"].as_f64()),
            (Some(375.0), Some(150.0))
        );
        let r = app
            .post_json(
                "/api/v1/dose/calculate",
                &json!({"protocol": "esketamine-trd", "weight_kg": 70, "dose": {"mg": 70}}),
            )
            .await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("not a whole number of 28 mg devices"));
        let protocols: Value = app.get("/api/v1/protocols").await.json().await.unwrap();
        assert!(protocols.as_array().unwrap().iter().any(|p| p["id"] == "esketamine-mdsi"));
        let sched: Value = app
            .post_json("/api/v1/protocols/esketamine-trd/schedule", &json!({"start": "2026-11-02", "age_years": 70, "missed": [{"sequence": 2, "make_up_on": "2026-11-06"}]}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(sched["sessions"][0]["dose"]["value"], 28.0, "{sched}");
        assert_eq!(
            (sched["sessions"][1]["date"].as_str(), sched["sessions"][1]["status"].as_str()),
            (Some("2026-11-06"), Some("rescheduled"))
        );
        assert_eq!(sched["reassessments"][0]["due_on"], "2026-11-27");
        let pk: Value = app
            .post_json("/api/v1/pk/simulate", &json!({"model": "domino", "weight_kg": 70, "regimen": "0.5 mg/kg over 40 min", "until_min": 120, "step_min": 1,
                "threshold_ng_ml": 50, "population": {"patients": 200, "cv_percent": [{"parameter": "v1", "cv_percent": 30}]}}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(pk["times_min"].as_array().unwrap().len(), 121, "{pk}");
        assert!((pk["plasma_ng_ml"][40].as_f64().unwrap() - 240.36).abs() < 0.05);
        assert!(pk["metabolite_ng_ml"].is_null());
        assert_eq!(pk["population"]["plasma"]["median"].as_array().unwrap().len(), 121);
        assert!(pk["population"]["variability"].as_str().unwrap().contains("assumed by the caller"));
        assert!(pk["below_threshold"]["minutes_after_last_dose"].as_f64().unwrap() > 0.0);
        // No invented variability: Domino publishes none, so a band needs the caller's assumption.
        let r = app.post_json("/api/v1/pk/simulate", &json!({"model": "domino", "weight_kg": 70, "regimen": "35 mg bolus", "until_min": 60, "step_min": 1, "population": {"patients": 10}})).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("publishes no between-subject variability"));
    }
}
