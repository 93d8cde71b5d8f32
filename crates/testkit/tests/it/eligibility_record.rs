//! Eligibility from what Keta holds: age from the date of birth, treatment
//! resistance from the recorded trials, medications, allergies and pregnancy status as
//! records. Run on every backend.

use keta_domain::course::Route;
use keta_domain::eligibility::{AntidepressantTrial, FactBasis, OUTSIDE_POPULATION, TrialOutcome};
use keta_domain::ids::{PatientId, RecordId};
use keta_domain::medications::{
    AllergySeverity, NewAllergy, NewMedication, NewMedicationReview, NewPregnancyStatus, PregnancyStatus,
    StopMedication,
};
use keta_domain::records::{EligibilityAssessment, NewEligibilityAssessment};
use keta_domain::session::NewSession;
use keta_store::{Actor, Store, StoreError};
use keta_testkit::{ManualClock, TestDb};
use time::Date;
use time::macros::date;

use crate::fixtures::*;

async fn count(db: &TestDb, table: &'static str) -> i64 {
    keta_store::testing::read(&db.store, move |c| {
        c.query_opt(&format!("SELECT count(*) AS n FROM {table}"), &[])?.unwrap().i64("n")
    })
    .await
    .unwrap()
}

async fn patient_born(store: &Store, site: keta_domain::ids::SiteId, mrn: &str, dob: Date) -> PatientId {
    let mut p = new_patient(site, mrn);
    p.date_of_birth = dob;
    store.create_patient(&Actor::system(), p).await.expect("patient").id
}

async fn assess(store: &Store, actor: &Actor, p: PatientId, route: Route, ticks: &[&str]) -> EligibilityAssessment {
    store
        .assess_eligibility(
            actor,
            p,
            NewEligibilityAssessment {
                route,
                maudsley: None,
                contraindications_present: ticks.iter().map(|t| t.to_string()).collect(),
            },
        )
        .await
        .expect("assessment")
}

fn failed_trial(drug: &str) -> AntidepressantTrial {
    AntidepressantTrial {
        drug: drug.into(),
        daily_dose_mg: None,
        weeks: 8,
        adequate: true,
        outcome: TrialOutcome::NoResponse,
        current_episode: true,
    }
}

fn med(drug: &str) -> NewMedication {
    NewMedication { drug: drug.into(), dose: Some("1 mg at night".into()), daily_dose_mg: None, started_on: None }
}

#[tokio::test]
async fn a_16_year_old_with_no_trials_is_not_clear_for_esketamine() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let p = patient_born(&db.store, a, "A-0016", date!(2010 - 06 - 01)).await;
        let e = assess(&db.store, &prescriber(&[a]), p, Route::IntranasalEsketamine, &[]).await;
        assert!(!e.is_clear(), "{:?}: {e:?}", db.kind);
        assert_eq!(e.age_years, Some(16));
        let age = e.contraindications.cautions.iter().find(|c| c.code == OUTSIDE_POPULATION).expect("age caution");
        assert_eq!(age.basis, FactBasis::Record);
        assert!(age.source.contains("§3.2 [S6]"), "{}", age.source);
        assert!(
            e.warnings.iter().any(|w| w.message.starts_with("0 adequate failed trials recorded")),
            "{:?}",
            e.warnings
        );
        // The result says which facts came from the record and which were declared.
        let basis = |f: &str| e.facts.iter().find(|x| x.fact == f).map(|x| x.basis);
        assert_eq!(basis("Age"), Some(FactBasis::Record));
        assert_eq!(basis("Treatment resistance"), Some(FactBasis::Record));
        assert_eq!(basis("Checklist"), Some(FactBasis::Declared));
        // The stored assessment reads back the same.
        let (_, stored) = db.store.list_eligibility(&prescriber(&[a]), p).await.unwrap();
        assert_eq!(stored.last(), Some(&e), "{:?}", db.kind);
    }
}

#[tokio::test]
async fn the_treatment_resistance_gap_is_a_warning_until_the_trials_are_recorded() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let p = patient(&db.store, a, "A-0001").await;
        let dr = prescriber(&[a]);
        db.store.add_antidepressant_trial(&dr, p, failed_trial("sertraline")).await.unwrap();
        let e = assess(&db.store, &dr, p, Route::IntranasalEsketamine, &[]).await;
        assert!(!e.blocked && e.contraindications.cautions.is_empty(), "{:?}", db.kind);
        assert_eq!(e.warnings.len(), 1);
        assert!(
            e.warnings[0].message.starts_with("1 adequate failed trial recorded in the current episode; TRD needs 2"),
            "{}",
            e.warnings[0].message
        );
        assert!(!e.is_clear());
        db.store.add_antidepressant_trial(&dr, p, failed_trial("venlafaxine")).await.unwrap();
        let e = assess(&db.store, &dr, p, Route::IntranasalEsketamine, &[]).await;
        assert!(e.is_clear(), "{:?}: {e:?}", db.kind);
        assert!(e.treatment_resistant);
    }
}

#[tokio::test]
async fn a_medication_raises_its_caution_until_it_is_stopped() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let p = patient(&db.store, a, "A-0001").await;
        let (rn, dr) = (nurse(&[a]), prescriber(&[a]));
        let audits = count(&db, "audit_log").await;
        let m = db.store.add_medication(&rn, p, med("Lorazepam")).await.unwrap();
        assert_eq!(m.classes[0].raises, ["cns_depressants"]);
        assert_eq!(count(&db, "audit_log").await, audits + 1, "the write is audited ({:?})", db.kind);

        let e = assess(&db.store, &dr, p, Route::IvRacemic, &[]).await;
        let c = e.contraindications.cautions.iter().find(|c| c.code == "cns_depressants").expect("caution");
        assert_eq!(c.basis, FactBasis::Record);
        assert!(c.evidence.as_deref().unwrap().contains("Lorazepam 1 mg at night"), "{:?}", c.evidence);

        let stopped = db
            .store
            .stop_medication(
                &rn,
                m.id,
                StopMedication { stopped_on: date!(2026 - 11 - 02), reason: Some("tapered".into()) },
            )
            .await
            .unwrap();
        assert_eq!(stopped.stopped_on, Some(date!(2026 - 11 - 02)));
        let e = assess(&db.store, &dr, p, Route::IvRacemic, &[]).await;
        assert!(e.contraindications.cautions.is_empty(), "{:?}: {e:?}", db.kind);
        let listed = db.store.list_medications(&rn, p).await.unwrap();
        assert_eq!(listed.len(), 1, "a stopped medication stays on the record");
        assert_eq!(listed[0].stop_reason.as_deref(), Some("tapered"));
        // Stopping twice is refused and changes nothing.
        let before = count(&db, "audit_log").await;
        let again = db
            .store
            .stop_medication(&rn, m.id, StopMedication { stopped_on: date!(2026 - 11 - 02), reason: None })
            .await;
        assert!(matches!(again, Err(StoreError::Domain(keta_domain::DomainError::Conflict(_)))), "{again:?}");
        assert_eq!(count(&db, "audit_log").await, before);
    }
}

#[tokio::test]
async fn a_ketamine_allergy_is_a_hard_stop_that_blocks_planning() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let p = patient(&db.store, a, "A-0001").await;
        let dr = prescriber(&[a]);
        let allergy = db
            .store
            .add_allergy(
                &nurse(&[a]),
                p,
                NewAllergy {
                    substance: "Ketamine".into(),
                    reaction: Some("hives".into()),
                    severity: AllergySeverity::Moderate,
                },
            )
            .await
            .unwrap();
        assert_eq!(allergy.classes[0].raises, ["hypersensitivity"]);
        let e = assess(&db.store, &dr, p, Route::IvRacemic, &[]).await;
        assert!(e.blocked, "{:?}", db.kind);
        assert_eq!(e.contraindications.hard_stops[0].basis, FactBasis::Record);
        let refused = db.store.create_course(&dr, p, course(Route::IvRacemic)).await;
        assert!(matches!(&refused, Err(StoreError::Domain(e)) if e.to_string().contains("hard stop")), "{refused:?}");
        assert_eq!(db.store.list_allergies(&dr, p).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn ticks_for_facts_keta_holds_are_refused_and_change_nothing() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let p = patient(&db.store, a, "A-0001").await;
        let dr = prescriber(&[a]);
        let before = (count(&db, "eligibility_assessments").await, count(&db, "audit_log").await);
        let refused = db
            .store
            .assess_eligibility(
                &dr,
                p,
                NewEligibilityAssessment {
                    route: Route::IvRacemic,
                    maudsley: None,
                    contraindications_present: vec!["psychosis".into(), "theophylline_or_aminophylline".into()],
                },
            )
            .await;
        let Err(StoreError::Domain(keta_domain::DomainError::Invalid(errs))) = refused else {
            panic!("{:?}: expected a field error, got {refused:?}", db.kind)
        };
        assert_eq!(errs[0].field, "present[1]");
        assert!(errs[0].message.contains("medication list"), "{}", errs[0].message);
        assert_eq!((count(&db, "eligibility_assessments").await, count(&db, "audit_log").await), before);

        // Pregnancy may be declared while no status is recorded; once one is, it is read.
        let e = assess(&db.store, &dr, p, Route::IntranasalEsketamine, &["pregnancy_or_breastfeeding"]).await;
        let c = e.contraindications.cautions.iter().find(|c| c.code == "pregnancy_or_breastfeeding").unwrap();
        assert_eq!(c.basis, FactBasis::Declared);
        db.store
            .record_pregnancy_status(
                &nurse(&[a]),
                p,
                NewPregnancyStatus {
                    status: PregnancyStatus::Pregnant,
                    recorded_on: date!(2026 - 11 - 01),
                    note: None,
                },
            )
            .await
            .unwrap();
        let e = assess(&db.store, &dr, p, Route::IntranasalEsketamine, &[]).await;
        let c = e.contraindications.cautions.iter().find(|c| c.code == "pregnancy_or_breastfeeding").unwrap();
        assert_eq!(c.basis, FactBasis::Record, "{:?}", db.kind);
    }
}

#[tokio::test]
async fn medication_records_are_site_scoped_permission_checked_and_validated() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (a, b) = (site(&db.store, "A").await, site(&db.store, "B").await);
        let p = patient(&db.store, a, "A-0001").await;
        let before = (count(&db, "medications").await, count(&db, "audit_log").await);
        // The front desk does not record medications; a nurse of another site cannot find the patient.
        assert!(matches!(
            db.store.add_medication(&front_desk(&[a]), p, med("lorazepam")).await,
            Err(StoreError::Forbidden(_))
        ));
        assert!(matches!(
            db.store.add_medication(&nurse(&[b]), p, med("lorazepam")).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(db.store.list_medications(&nurse(&[b]), p).await, Err(StoreError::NotFound(_))));
        // Bad input names each field and writes nothing. T0 is 2 Nov at the site (Chicago).
        let bad = NewMedication {
            drug: " ".into(),
            dose: None,
            daily_dose_mg: None,
            started_on: Some(date!(2026 - 11 - 03)),
        };
        let Err(StoreError::Domain(keta_domain::DomainError::Invalid(errs))) =
            db.store.add_medication(&nurse(&[a]), p, bad).await
        else {
            panic!("expected field errors")
        };
        assert_eq!(errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["drug", "started_on"]);
        assert_eq!((count(&db, "medications").await, count(&db, "audit_log").await), before, "{:?}", db.kind);

        let m = db.store.add_medication(&nurse(&[a]), p, med("lorazepam")).await.unwrap();
        let other_site = db
            .store
            .stop_medication(&nurse(&[b]), m.id, StopMedication { stopped_on: date!(2026 - 11 - 02), reason: None })
            .await;
        assert!(matches!(other_site, Err(StoreError::NotFound(_))), "{other_site:?}");
        let missing = db
            .store
            .stop_medication(
                &nurse(&[a]),
                RecordId(999_999),
                StopMedication { stopped_on: date!(2026 - 11 - 02), reason: None },
            )
            .await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))));
        assert!(db.store.list_medications(&nurse(&[a]), p).await.unwrap()[0].stopped_on.is_none());
    }
}

#[tokio::test]
async fn a_session_review_keeps_the_medication_list_as_it_stood() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let p = patient(&db.store, a, "A-0001").await;
        let (rn, dr) = (nurse(&[a]), prescriber(&[a]));
        let c = db.store.create_course(&dr, p, course(Route::IvRacemic)).await.unwrap();
        let s = db
            .store
            .create_session(&dr, c.id, NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None })
            .await
            .unwrap();
        db.store.add_medication(&rn, p, med("sertraline")).await.unwrap();
        let r = db
            .store
            .review_medications(&rn, s.id, NewMedicationReview { note: Some("no changes".into()) })
            .await
            .unwrap();
        assert_eq!(r.medications, ["sertraline 1 mg at night"]);
        assert_eq!(r.reviewed_by, "nurse.test");
        let (meds, allergies, reviews) = db.store.session_medications(&rn, s.id).await.unwrap();
        assert_eq!((meds.len(), allergies.len()), (1, 0));
        assert_eq!(reviews, [r], "{:?}", db.kind);
        assert!(matches!(
            db.store.review_medications(&front_desk(&[a]), s.id, NewMedicationReview { note: None }).await,
            Err(StoreError::Forbidden(_))
        ));
    }
}

#[tokio::test]
async fn an_allergy_recorded_after_the_assessment_still_blocks_planning() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let p = patient(&db.store, a, "A-0001").await;
        let dr = prescriber(&[a]);
        let e = assess(&db.store, &dr, p, Route::IvRacemic, &["psychosis"]).await;
        assert!(!e.blocked);
        db.store
            .add_allergy(
                &nurse(&[a]),
                p,
                NewAllergy { substance: "esketamine".into(), reaction: None, severity: AllergySeverity::Severe },
            )
            .await
            .unwrap();
        let refused = db.store.create_course(&dr, p, course(Route::IvRacemic)).await;
        let Err(StoreError::Domain(e)) = refused else { panic!("{:?}: expected a refusal, got {refused:?}", db.kind) };
        let m = e.to_string();
        assert!(m.contains("recorded since the last assessment") && m.contains("allergy to esketamine"), "{m}");
        assert_eq!(count(&db, "courses").await, 0);
    }
}

#[tokio::test]
async fn medications_and_allergies_over_http() {
    use serde_json::{Value, json};
    let db = TestDb::sqlite(ManualClock::at(T0).as_clock()).await;
    let a = site(&db.store, "A").await;
    let staff = keta_testkit::seed_staff(&db.store, &[a]).await;
    let app = keta_testkit::spawn_app(db.store.clone()).await;
    assert_eq!(app.login(&staff[1], T0).await.status(), 200);
    let p = patient(&db.store, a, "A-0001").await;

    let r = app
        .post_json(&format!("/api/v1/patients/{}/medications", p.0), &json!({"drug": "Alprazolam", "dose": "0.25 mg"}))
        .await;
    assert_eq!(r.status(), 201);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["classes"][0]["raises"], json!(["cns_depressants"]), "{m}");
    // Bad input is a problem naming the field; unknown fields are refused; nothing is stored.
    let r = app
        .post_json(&format!("/api/v1/patients/{}/medications", p.0), &json!({"drug": "", "daily_dose_mg": -2}))
        .await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["drug", "daily_dose_mg"], "{problem}");
    let r =
        app.post_json(&format!("/api/v1/patients/{}/medications", p.0), &json!({"drug": "x", "colour": "blue"})).await;
    assert_eq!(r.status(), 422);
    let list: Value = app.get(&format!("/api/v1/patients/{}/medications", p.0)).await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    let r = app.post_json(&format!("/api/v1/medications/{}/stop", m["id"]), &json!({"stopped_on": "2026-11-02"})).await;
    assert_eq!(r.status(), 200);
    let stopped: Value = r.json().await.unwrap();
    assert_eq!(stopped["stopped_on"], "2026-11-02");
    let again =
        app.post_json(&format!("/api/v1/medications/{}/stop", m["id"]), &json!({"stopped_on": "2026-11-02"})).await;
    assert_eq!(again.status(), 409);

    let r = app
        .post_json(&format!("/api/v1/patients/{}/allergies", p.0), &json!({"substance": "latex", "severity": "mild"}))
        .await;
    assert_eq!(r.status(), 201);
    let allergies: Value = app.get(&format!("/api/v1/patients/{}/allergies", p.0)).await.json().await.unwrap();
    assert_eq!(allergies[0]["substance"], "latex");
    let r = app
        .post_json(
            &format!("/api/v1/patients/{}/pregnancy-status", p.0),
            &json!({"status": "not_pregnant", "recorded_on": "2026-11-01"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let status: Value = app.get(&format!("/api/v1/patients/{}/pregnancy-status", p.0)).await.json().await.unwrap();
    assert_eq!(status["status"], "not_pregnant");

    // The front desk may not read or write the lists.
    assert_eq!(app.login(&staff[3], T0).await.status(), 200);
    assert_eq!(app.get(&format!("/api/v1/patients/{}/medications", p.0)).await.status(), 403);
}

/// The hidden CSRF field of a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf_token\" value=\"").expect("a form with a CSRF token") + 26;
    html[at..].split('"').next().expect("token").to_string()
}

async fn post_form(app: &keta_testkit::TestApp, path: &str, form: &[(&str, &str)]) -> (reqwest::StatusCode, String) {
    let r = app.request(reqwest::Method::POST, path).form(form).send().await.expect("POST");
    (r.status(), r.text().await.expect("body"))
}

#[tokio::test]
async fn a_nurse_records_a_medication_on_screen_and_reviews_it_at_the_session() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let staff = keta_testkit::seed_staff(&db.store, &[a]).await;
        let app = keta_testkit::spawn_app(db.store.clone()).await;
        let p = patient(&db.store, a, "A-0001").await;
        let dr = prescriber(&[a]);
        let c = db.store.create_course(&dr, p, course(Route::IvRacemic)).await.unwrap();
        let s = db
            .store
            .create_session(&dr, c.id, NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None })
            .await
            .unwrap();
        assert_eq!(app.login(&staff[2], T0).await.status(), 200, "the nurse signs in");

        let page = format!("/patients/{}/eligibility", p.0);
        let html = app.get(&page).await.text().await.unwrap();
        let csrf = csrf_of(&html);
        // A refused form says what to fix beside the field and keeps the input.
        let (status, html) = post_form(
            &app,
            &format!("/patients/{}/medications", p.0),
            &[("csrf_token", &csrf), ("drug", "Oxycodone"), ("started_on", "2026-12-25")],
        )
        .await;
        assert_eq!(status, 422, "{:?}", db.kind);
        assert!(html.contains("the start date cannot be in the future"), "{:?}", db.kind);
        assert!(html.contains("value=\"Oxycodone\""));
        let (status, _) = post_form(
            &app,
            &format!("/patients/{}/medications", p.0),
            &[("csrf_token", &csrf), ("drug", "Oxycodone"), ("dose", "5 mg as needed")],
        )
        .await;
        assert_eq!(status, 303);
        let html = app.get(&page).await.text().await.unwrap();
        assert!(html.contains("Opioid (raises cns_depressants)"), "the class is shown beside the drug");
        // The medication items are read from the list: no tick for them on the checklist.
        assert!(!html.contains("name=\"present\" value=\"cns_depressants\""));
        assert!(html.contains("name=\"present\" value=\"psychosis\""));

        let panel = app.get(&format!("/sessions/{}/medications", s.id.0)).await.text().await.unwrap();
        assert!(panel.contains("Oxycodone") && panel.contains("Not yet reviewed at this session"));
        let (status, _) = post_form(
            &app,
            &format!("/sessions/{}/medication-review", s.id.0),
            &[("csrf_token", &csrf_of(&panel)), ("note", "no changes")],
        )
        .await;
        assert_eq!(status, 303);
        let panel = app.get(&format!("/sessions/{}/medications", s.id.0)).await.text().await.unwrap();
        assert!(panel.contains("by nurse") && panel.contains("no changes"), "{panel}");
    }
}
