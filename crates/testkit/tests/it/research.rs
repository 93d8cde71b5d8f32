//! Exchange in and out: the referral import (a FHIR Bundle becomes a patient with diagnoses,
//! antidepressant trials and prior scores, all or nothing) and the de-identified research
//! export (consent filtering, k suppression, per-patient date shift, audit), on every backend.

use serde_json::{Value, json};

use keta_domain::DomainError;
use keta_domain::access::Role;
use keta_domain::consent::WithdrawConsent;
use keta_domain::course::Route;
use keta_domain::eligibility::{AntidepressantTrial, TrialOutcome};
use keta_domain::ids::{PatientId, SiteId};
use keta_domain::patient::NewPatient;
use keta_domain::referral::{NewReferral, PriorScore};
use keta_domain::research::{ResearchSettings, SUPPRESSED};
use keta_domain::session::NewSession;
use keta_store::{Actor, SiteScope, Store, StoreError};
use keta_testkit::{ManualClock, TestDb, seed_staff, spawn_app};
use time::Date;
use time::macros::date;

use crate::fixtures::*;

const BUNDLE: &str = include_str!("../fixtures/referral-bundle.json");

fn researcher() -> Actor {
    Actor::staff("research.test", Role::Researcher, SiteScope::All)
}

fn admin() -> Actor {
    Actor::staff("admin.test", Role::Administrator, SiteScope::All)
}

fn referral(site: SiteId, mrn: &str) -> NewReferral {
    NewReferral {
        patient: new_patient(site, mrn),
        trials: vec![AntidepressantTrial {
            drug: "sertraline".into(),
            daily_dose_mg: None,
            weeks: 8,
            adequate: true,
            outcome: TrialOutcome::NoResponse,
            current_episode: true,
        }],
        prior_scores: vec![PriorScore { instrument: "phq9".into(), total: 20, observed_on: date!(2026 - 10 - 01) }],
    }
}

async fn count(s: &Store, sql: &'static str) -> i64 {
    keta_store::testing::read(s, move |c| c.query_opt(sql, &[])?.expect("a row").i64("n")).await.unwrap()
}

async fn audit_types(s: &Store, patient: PatientId) -> Vec<String> {
    keta_store::testing::read(s, move |c| {
        c.query(
            "SELECT object_type FROM audit_log WHERE patient_id = $1 AND action = 'create' ORDER BY seq",
            keta_store::params![patient.0],
        )?
        .iter()
        .map(|r| r.text("object_type"))
        .collect()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_referral_creates_the_patient_with_trials_and_prior_scores_all_or_nothing() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let dr = prescriber(&[a]);
        let created = s.import_referral(&dr, referral(a, "REF-1"), "fhir referral").await.unwrap();
        assert_eq!(created.trials.len(), 1);
        assert_eq!(created.prior_scores.len(), 1);
        let p = s.get_patient(&dr, created.patient_id).await.unwrap();
        assert_eq!(p.diagnoses, ["F33.2"]);
        let scores = s.list_prior_scores(&dr, created.patient_id).await.unwrap();
        assert_eq!((scores[0].score.total, scores[0].source.as_str()), (20, "fhir referral"), "{:?}", db.kind);
        // Each part is audited as its form would be, in the same transaction.
        assert_eq!(audit_types(s, created.patient_id).await, ["patient", "antidepressant_trial", "prior_score"]);
        // The Maudsley count reads the imported trial like one entered by hand.
        let trials = keta_store::testing::antidepressant_trials(s, created.patient_id).await.unwrap();
        assert!(trials[0].trial.counts_as_failure());

        // One bad part: nothing at all is written, and every bad part is named.
        let patients_before = count(s, "SELECT count(*) AS n FROM patients").await;
        let mut bad = referral(a, "REF-2");
        bad.trials[0].weeks = 2; // adequate needs more weeks
        bad.prior_scores[0].total = 40;
        let Err(StoreError::Domain(DomainError::Invalid(errs))) = s.import_referral(&dr, bad, "fhir referral").await
        else {
            panic!("a bad referral is refused")
        };
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["trials[0].weeks", "prior_scores[0].total"]);
        assert_eq!(count(s, "SELECT count(*) AS n FROM patients").await, patients_before);
        assert_eq!(count(s, "SELECT count(*) AS n FROM antidepressant_trials").await, 1);
        assert_eq!(count(s, "SELECT count(*) AS n FROM prior_scores").await, 1);

        // Permissions as for registering a patient and planning treatment.
        assert!(matches!(
            s.import_referral(&nurse(&[a]), referral(a, "REF-3"), "fhir referral").await,
            Err(StoreError::Forbidden(_))
        ));
        let b = site(s, "B").await;
        assert!(
            s.import_referral(&dr, referral(b, "REF-4"), "fhir referral").await.is_err(),
            "outside the prescriber's sites"
        );
    }
}

#[tokio::test]
async fn the_api_imports_a_referral_bundle_and_refuses_a_bad_one_with_an_operation_outcome() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let staff = seed_staff(s, &[a]).await;
        let app = spawn_app(s.clone()).await;
        let by = |r: Role| staff.iter().find(|x| x.role == r).unwrap();
        clock.advance(time::Duration::seconds(31));
        assert_eq!(app.login(by(Role::Prescriber), clock.now()).await.status(), 200);

        let bundle: Value = serde_json::from_str(BUNDLE).unwrap();
        // A bad Bundle first: every bad element named, nothing written.
        let mut bad = bundle.clone();
        bad["entry"][4]["resource"]["effectiveDateTime"] = json!("last summer");
        bad["entry"][2]["resource"]["effectivePeriod"]["end"] = json!("2025-08-01");
        bad["entry"][0]["resource"]["birthDate"] = json!("2030-01-01");
        let r = app.post_json("/fhir/R4", &bad).await;
        assert_eq!(r.status(), 422);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/fhir+json"));
        let oo: Value = r.json().await.unwrap();
        assert_eq!(oo["resourceType"], "OperationOutcome");
        let at: Vec<&str> =
            oo["issue"].as_array().unwrap().iter().map(|i| i["expression"][0].as_str().unwrap()).collect();
        assert!(at.contains(&"Bundle.entry[4].resource.effectiveDateTime"), "{oo}");
        assert!(at.contains(&"Bundle.entry[2].resource.effectivePeriod.end"), "{oo}");
        assert_eq!(count(s, "SELECT count(*) AS n FROM patients").await, 0);
        // Form is fine, content is not: the domain's refusal is located in the Bundle too.
        let mut future = bundle.clone();
        future["entry"][0]["resource"]["birthDate"] = json!("2030-01-01");
        let oo: Value = app.post_json("/fhir/R4", &future).await.json().await.unwrap();
        assert_eq!(oo["issue"][0]["expression"][0], "Bundle.entry[0].resource.birthDate", "{oo}");
        assert_eq!(count(s, "SELECT count(*) AS n FROM patients").await, 0);

        let r = app.post_json("/fhir/R4", &bundle).await;
        assert_eq!(r.status(), 201);
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let reply: Value = r.json().await.unwrap();
        assert_eq!(reply["type"], "transaction-response");
        assert_eq!(reply["entry"].as_array().unwrap().len(), 6);
        let id: i64 = location.trim_start_matches("/fhir/R4/Patient/").parse().unwrap();
        let p = s.get_patient(&Actor::system(), PatientId(id)).await.unwrap();
        assert_eq!(
            (p.mrn.as_str(), p.given_name.as_str(), p.family_name.as_str()),
            ("REF-20931", "Marisol June", "Quillfeather")
        );
        assert_eq!(p.date_of_birth, date!(1979 - 06 - 14));
        assert_eq!(p.diagnoses, ["F33.2"]);
        assert_eq!(p.referring_clinician.as_deref(), Some("Dr Ifeoma Rasmussen"));
        let trials = keta_store::testing::antidepressant_trials(s, PatientId(id)).await.unwrap();
        let t: Vec<(&str, u32, Option<f64>, TrialOutcome)> = trials
            .iter()
            .map(|t| (t.trial.drug.as_str(), t.trial.weeks, t.trial.daily_dose_mg.map(|d| d.0), t.trial.outcome))
            .collect();
        assert_eq!(
            t,
            [
                ("sertraline", 10, Some(150.0), TrialOutcome::NoResponse),
                ("vortioxetine", 4, None, TrialOutcome::Intolerance)
            ]
        );
        let scores = s.list_prior_scores(&Actor::system(), PatientId(id)).await.unwrap();
        let sc: Vec<(i32, Date)> = scores.iter().map(|x| (x.score.total, x.score.observed_on)).collect();
        assert_eq!(sc, [(21, date!(2026 - 08 - 20)), (18, date!(2026 - 10 - 15))]);

        // The same Bundle again: the MRN is taken, refused whole.
        let r = app.post_json("/fhir/R4", &bundle).await;
        assert_eq!(r.status(), 409);
        assert_eq!(count(s, "SELECT count(*) AS n FROM patients").await, 1);

        // A nurse may not import referrals.
        clock.advance(time::Duration::seconds(31));
        assert_eq!(app.login(by(Role::Nurse), clock.now()).await.status(), 200);
        assert_eq!(app.post_json("/fhir/R4", &bundle).await.status(), 403);
    }
}

/// A patient with a course, a discharged-or-not session and consents as asked.
async fn research_patient(s: &Store, a: SiteId, mrn: &str, dob: Date, research: bool) -> PatientId {
    let p =
        s.create_patient(&Actor::system(), NewPatient { date_of_birth: dob, ..new_patient(a, mrn) }).await.unwrap().id;
    if research {
        sign_consent(s, p, "research_data_sharing").await;
    }
    let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
    s.create_session(&prescriber(&[a]), c.id, NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None })
        .await
        .unwrap();
    p
}

#[tokio::test]
async fn the_research_export_takes_consenting_patients_only_and_suppresses_to_k() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let (a, b) = (site(s, "A").await, site(s, "B").await);
        // Site A: four consenting patients of one age band and one of 93; site B: one.
        for i in 0..4 {
            research_patient(s, a, &format!("A-{i}"), date!(1984 - 03 - 09), true).await;
        }
        let old = research_patient(s, a, "A-OLD", date!(1933 - 01 - 01), true).await;
        let b_patient = research_patient(s, b, "B-1", date!(1984 - 03 - 09), true).await;
        // Not included: no consent, a withdrawn one, and one not countersigned.
        research_patient(s, a, "A-NONE", date!(1984 - 03 - 09), false).await;
        let w = research_patient(s, a, "A-WD", date!(1984 - 03 - 09), true).await;
        let rec = s
            .list_consents(&Actor::system(), w)
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.form_key == "research_data_sharing")
            .unwrap();
        s.withdraw_consent(
            &Actor::system(),
            rec.id,
            WithdrawConsent { reason: "No longer wishes to take part".into() },
        )
        .await
        .unwrap();
        let u = research_patient(s, a, "A-UNSIGNED", date!(1984 - 03 - 09), false).await;
        let form = keta_domain::consent::current_form("research_data_sharing").unwrap();
        s.record_consent(
            &Actor::system(),
            u,
            keta_domain::consent::NewConsent {
                form_key: form.key.clone(),
                form_version: form.version,
                patient_typed_name: "Rowan Test".into(),
                patient_signature_svg: SIGNATURE.into(),
                rems_patient_id: None,
                rems_enrolled_on: None,
            },
        )
        .await
        .unwrap();

        // Only researchers export; administrators set k.
        assert!(matches!(s.export_research(&prescriber(&[a]), "download").await, Err(StoreError::Forbidden(_))));
        assert!(s.set_research_settings(&researcher(), ResearchSettings { k_threshold: 3 }).await.is_err());
        assert!(s.set_research_settings(&admin(), ResearchSettings { k_threshold: 1 }).await.is_err());
        s.set_research_settings(&admin(), ResearchSettings { k_threshold: 3 }).await.unwrap();

        let e = s.export_research(&researcher(), "download").await.unwrap();
        assert_eq!(e.patients, 6, "{:?}", db.kind);
        assert_eq!(e.k_threshold, 3);
        let patients = &e.table("patients").unwrap().rows;
        assert_eq!(patients.len(), 6);
        // Columns: research_id, site, age_band, sex, indication, diagnoses. The four alike keep
        // every value; the 93-year-old and the one patient of site B (fewer than k there) lose
        // values until no combination is shared by fewer than k patients.
        let common = ["site_1", "40-44", "female", "depression", "F33.2"];
        assert_eq!(patients.iter().filter(|r| r[1..] == common).count(), 4, "{patients:?}");
        let mut classes: std::collections::HashMap<&[String], usize> = std::collections::HashMap::new();
        for r in patients {
            *classes.entry(&r[1..]).or_default() += 1;
        }
        for (class, n) in &classes {
            assert!(*n >= 3 || class.iter().all(|v| v == SUPPRESSED), "{class:?} has {n} patients");
        }
        assert!(patients.iter().all(|r| r[2] != "90+" || classes[&r[1..]] >= 3));
        assert!(patients.iter().all(|r| r[0].starts_with('R') && !r[0].contains("A-")));
        let rid = |p: PatientId| async move {
            keta_store::testing::read(s, move |c| {
                c.query_opt(
                    "SELECT research_id FROM research_subjects WHERE patient_id = $1",
                    keta_store::params![p.0],
                )?
                .unwrap()
                .text("research_id")
            })
            .await
            .unwrap()
        };
        let rid_old = rid(old).await;
        let row = patients.iter().find(|r| r[0] == rid_old).unwrap();
        assert_eq!(row[2], SUPPRESSED, "a lone 93-year-old: {row:?}");
        let rid_b = rid(b_patient).await;
        let row = patients.iter().find(|r| r[0] == rid_b).unwrap();
        assert_eq!(row[1], SUPPRESSED, "site B has fewer than k exported patients: {row:?}");

        // The date shift is secret, fixed per patient and the same in the next export.
        let sessions = e.table("sessions").unwrap().rows.clone();
        assert_eq!(sessions.len(), 6);
        for r in &sessions {
            assert_ne!(r[3], T0.date().to_string(), "a session's real date: {r:?}");
        }
        let again = s.export_research(&researcher(), "download").await.unwrap();
        assert_eq!(again.table("sessions").unwrap().rows, sessions);
        let courses = &again.table("courses").unwrap().rows;
        for r in courses {
            let session = sessions.iter().find(|x| x[0] == r[0]).unwrap();
            assert_eq!(r[6], session[3], "course start and first session, both on T0, shift alike: {r:?}");
        }

        // Every export is audited with its parameters, and per patient.
        let audit = keta_store::testing::read(s, |c| {
                c.query("SELECT object_id, patient_id FROM audit_log WHERE action = 'export' AND object_type = 'research_export' ORDER BY seq", &[])?
                    .iter()
                    .map(|r| Ok((r.opt_text("object_id")?, r.opt_i64("patient_id")?)))
                    .collect::<keta_store::Result<Vec<_>>>()
            })
            .await
            .unwrap();
        let summaries: Vec<&String> = audit.iter().filter_map(|(o, _)| o.as_ref()).collect();
        assert_eq!(summaries.len(), 2);
        assert!(summaries[0].starts_with("k=3;format=csv;tables=patients,courses,sessions,doses,scores,adverse_events,outcomes;patients=6;to=download"), "{}", summaries[0]);
        assert_eq!(audit.iter().filter(|(_, p)| p.is_some()).count(), 12);
    }
}
