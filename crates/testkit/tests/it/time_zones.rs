//! Time zones: every "today" is the site's local date, never UTC's. Two clinics on
//! either side of the date line, Auckland (Pacific/Auckland, NZDT = UTC+13 in November) and
//! Honolulu (Pacific/Honolulu, UTC-10), each tried a minute before and a minute after its
//! local midnight, on every backend.

use keta_domain::DomainError;
use keta_domain::course::{NewCourse, Phase, Route};
use keta_domain::dosing::{DoseAmount, DoseRecord, DoseRequest};
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::ledger::{FlagKind, NewReceipt};
use keta_domain::patient::{NewWeight, WeightType};
use keta_domain::protocols::ProtocolLibrary;
use keta_domain::records::{CompletedBy, NewQuestionnaireResponse};
use keta_domain::session::{NewSession, SessionAction};
use keta_domain::site::NewSite;
use keta_domain::units::{Kilograms, Milligrams};
use keta_store::alerts::AlertQuery;
use keta_store::dosing::DoseChecker;
use keta_store::{Actor, Store, StoreError};
use keta_testkit::{ManualClock, TestDb, seed_staff, spawn_app};
use time::macros::{date, datetime};
use time::{Date, Duration, OffsetDateTime};

use crate::fixtures::*;
use crate::ledger::{dose, vial_receipt, witness};

/// 00:00 on Tuesday 3 November 2026 in Auckland (NZDT, UTC+13): still the 2nd in UTC.
const AKL_MIDNIGHT: OffsetDateTime = datetime!(2026-11-02 11:00 UTC);
/// 00:00 on Tuesday 3 November 2026 in Honolulu (HST, UTC-10): the 3rd in UTC since 10 hours.
const HNL_MIDNIGHT: OffsetDateTime = datetime!(2026-11-03 10:00 UTC);
const MINUTE: Duration = Duration::minutes(1);

async fn zoned_site(store: &Store, code: &str, zone: &str) -> SiteId {
    store
        .create_site(
            &Actor::system(),
            NewSite {
                code: code.into(),
                name: format!("Clinic {code}"),
                time_zone: zone.into(),
                crisis_line: "988".into(),
            },
            vec!["Chair 1".into()],
        )
        .await
        .expect("site")
        .id
}

/// Both clinics.
async fn clinics(store: &Store) -> (SiteId, SiteId) {
    (zoned_site(store, "AKL", "Pacific/Auckland").await, zoned_site(store, "HNL", "Pacific/Honolulu").await)
}

fn fields(r: Result<impl std::fmt::Debug, StoreError>) -> Vec<String> {
    match r {
        Err(StoreError::Domain(DomainError::Invalid(e))) => e.into_iter().map(|e| e.field).collect(),
        other => panic!("expected field errors, got {other:?}"),
    }
}

fn fields_and_messages(r: Result<impl std::fmt::Debug, StoreError>) -> String {
    match r {
        Err(StoreError::Domain(DomainError::Invalid(e))) => {
            e.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join(" | ")
        }
        other => panic!("expected field errors, got {other:?}"),
    }
}

fn weight(kg: f64, on: Date) -> NewWeight {
    NewWeight { weight_kg: Kilograms(kg), measured_on: on, weight_type: WeightType::Actual }
}

fn born(site: SiteId, mrn: &str, on: Date) -> keta_domain::patient::NewPatient {
    keta_domain::patient::NewPatient { date_of_birth: on, ..new_patient(site, mrn) }
}

#[tokio::test]
async fn dates_of_birth_and_weights_in_the_future_are_judged_by_the_sites_date() {
    let clock = ManualClock::at(AKL_MIDNIGHT);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let k = db.kind;
        let (akl, hnl) = clinics(s).await;
        let sys = Actor::system();
        let (pa, ph) = (patient(s, akl, "AKL-1").await, patient(s, hnl, "HNL-1").await);
        let nov3 = date!(2026 - 11 - 03);

        // Auckland, 23:59 on the 2nd: the 3rd is tomorrow there.
        clock.set(AKL_MIDNIGHT - MINUTE);
        assert_eq!(fields(s.create_patient(&sys, born(akl, "AKL-2", nov3)).await), ["date_of_birth"], "{k:?}");
        assert_eq!(fields(s.add_weight(&sys, pa, weight(70.0, nov3)).await), ["measured_on"], "{k:?}");
        // 00:01 on the 3rd in Auckland (still the 2nd in UTC): a baby born today, a weight taken today.
        clock.set(AKL_MIDNIGHT + MINUTE);
        s.create_patient(&sys, born(akl, "AKL-2", nov3)).await.unwrap_or_else(|e| panic!("{k:?}: {e}"));
        s.add_weight(&sys, pa, weight(70.0, nov3)).await.unwrap_or_else(|e| panic!("{k:?}: {e}"));

        // Honolulu, 23:59 on the 2nd (already 09:59 on the 3rd in UTC): the 3rd is still tomorrow.
        clock.set(HNL_MIDNIGHT - MINUTE);
        assert_eq!(fields(s.create_patient(&sys, born(hnl, "HNL-2", nov3)).await), ["date_of_birth"], "{k:?}");
        assert_eq!(fields(s.add_weight(&sys, ph, weight(70.0, nov3)).await), ["measured_on"], "{k:?}");
        clock.set(HNL_MIDNIGHT + MINUTE);
        s.create_patient(&sys, born(hnl, "HNL-2", nov3)).await.unwrap_or_else(|e| panic!("{k:?}: {e}"));
        s.add_weight(&sys, ph, weight(70.0, nov3)).await.unwrap_or_else(|e| panic!("{k:?}: {e}"));
    }
}

#[tokio::test]
async fn a_course_start_is_inside_the_window_counted_from_the_sites_today() {
    let clock = ManualClock::at(HNL_MIDNIGHT);
    let ahead = keta_domain::plausible::ranges().scheduling.future_days;
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let (akl, hnl) = clinics(s).await;
        let (pa, ph) = (patient(s, akl, "AKL-1").await, patient(s, hnl, "HNL-1").await);
        let starting = |d: Date| NewCourse { start_date: d + Duration::days(ahead), ..course(Route::IvRacemic) };
        // 23:59 on the 2nd in Honolulu: the window ends `ahead` days after the 2nd, not the 3rd.
        clock.set(HNL_MIDNIGHT - MINUTE);
        let too_late = s.create_course(&prescriber(&[hnl]), ph, starting(date!(2026 - 11 - 03))).await;
        assert_eq!(fields(too_late), ["start_date"], "{:?}", db.kind);
        s.create_course(&prescriber(&[hnl]), ph, starting(date!(2026 - 11 - 02))).await.unwrap();
        // 00:01 on the 3rd in Auckland (the 2nd in UTC): the window already runs from the 3rd.
        clock.set(AKL_MIDNIGHT + MINUTE);
        s.create_course(&prescriber(&[akl]), pa, starting(date!(2026 - 11 - 03))).await.unwrap();
    }
}

fn esketamine(mg: f64) -> DoseRequest {
    DoseRequest {
        protocol: Some("esketamine-trd".into()),
        dose: DoseAmount::Mg(Milligrams(mg)),
        ..DoseRequest::per_kg(70.0, 0.0)
    }
}

/// A patient of `site` born on `dob`, weighed, with a course of `route` starting 30 Oct and
/// one session at `at`.
async fn patient_with_session(
    s: &Store,
    site: SiteId,
    mrn: &str,
    dob: Date,
    route: Route,
    at: OffsetDateTime,
) -> (PatientId, SessionId) {
    let sys = Actor::system();
    let p = s.create_patient(&sys, born(site, mrn, dob)).await.unwrap().id;
    consent_all(s, p).await;
    s.add_weight(&sys, p, weight(70.0, date!(2026 - 10 - 29))).await.unwrap();
    let c = s
        .create_course(
            &prescriber(&[site]),
            p,
            NewCourse { route, phase: Phase::Induction, start_date: date!(2026 - 10 - 30), ..course(route) },
        )
        .await
        .unwrap();
    let new = NewSession { scheduled_for: at, chair_id: None, planned_dose_mg: None };
    (p, s.create_session(&prescriber(&[site]), c.id, new).await.unwrap().id)
}

async fn record_dose(
    s: &Store,
    site: SiteId,
    session: SessionId,
    req: DoseRequest,
    clock: &ManualClock,
) -> Result<DoseRecord, StoreError> {
    let protocol = ProtocolLibrary::builtin().get(req.protocol.as_deref().unwrap()).unwrap().clone();
    let checker = DoseChecker { actor: prescriber(&[site]), verified_at: clock.now() };
    s.record_dose(&nurse(&[site]), session, Some(protocol), req, checker).await
}

#[tokio::test]
async fn the_age_for_an_age_dependent_dose_is_taken_on_the_sites_date() {
    let clock = ManualClock::at(AKL_MIDNIGHT);
    // Turns 65 on 3 November 2026: from 65 the first esketamine dose is 28 mg, not 56 (§2.3).
    let dob = date!(1961 - 11 - 03);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let k = db.kind;
        let (akl, hnl) = clinics(s).await;

        // Auckland, 00:30 on the 3rd (11:30 on the 2nd in UTC): 65 today.
        clock.set(AKL_MIDNIGHT + Duration::minutes(30));
        let (_, sess) = patient_with_session(s, akl, "AKL-1", dob, Route::IntranasalEsketamine, clock.now()).await;
        let refused = record_dose(s, akl, sess, esketamine(56.0), &clock).await;
        let why = fields_and_messages(refused);
        assert!(why.contains("the first session's dose is 28 mg"), "{k:?}: a 65-year-old's first dose is 28 mg: {why}");
        let r = record_dose(s, akl, sess, esketamine(28.0), &clock).await.unwrap();
        assert_eq!(r.request.age_years, Some(65), "{k:?}");

        // Honolulu, 23:30 on the 2nd (09:30 on the 3rd in UTC): still 64.
        clock.set(HNL_MIDNIGHT - Duration::minutes(30));
        let (_, sess) = patient_with_session(s, hnl, "HNL-1", dob, Route::IntranasalEsketamine, clock.now()).await;
        let r = record_dose(s, hnl, sess, esketamine(56.0), &clock).await.unwrap_or_else(|e| panic!("{k:?}: {e}"));
        assert_eq!(r.request.age_years, Some(64), "{k:?}");
    }
}

async fn dose_now(s: &Store, site: SiteId, session: SessionId, clock: &ManualClock) {
    let iv = DoseRequest {
        protocol: Some("iv-racemic-0.5".into()),
        bag: Some(keta_domain::dosing::BagVolume::FinalVolumeIncludingDrugMl(keta_domain::units::Millilitres(100.0))),
        infusion_min: Some(keta_domain::units::Minutes(40)),
        ..DoseRequest::per_kg(70.0, 0.5)
    };
    record_dose(s, site, session, iv, clock).await.unwrap();
    for step in [SessionAction::CheckIn, SessionAction::StartPreDoseChecks, SessionAction::StartDose] {
        s.act_on_session(&nurse(&[site]), session, step).await.unwrap();
    }
}

#[tokio::test]
async fn exposure_weeks_and_months_are_the_sites_calendar() {
    let clock = ManualClock::at(AKL_MIDNIGHT);
    let dob = date!(1984 - 03 - 09);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let k = db.kind;
        let (akl, hnl) = clinics(s).await;

        // Auckland: Monday 2 Nov 00:30 there is Sunday 1 Nov 11:30 in UTC (ISO week 44).
        clock.set(datetime!(2026-11-01 11:30 UTC));
        let (pa, sess) = patient_with_session(s, akl, "AKL-1", dob, Route::IvRacemic, clock.now()).await;
        dose_now(s, akl, sess, &clock).await;
        // Honolulu: Saturday 31 Oct 23:30 there is Sunday 1 Nov 09:30 in UTC (another month).
        clock.set(datetime!(2026-11-01 09:30 UTC));
        let (ph, sess) = patient_with_session(s, hnl, "HNL-1", dob, Route::IvRacemic, clock.now()).await;
        dose_now(s, hnl, sess, &clock).await;

        clock.set(datetime!(2026-11-04 12:00 UTC));
        let e = s.patient_exposure(&prescriber(&[akl]), pa).await.unwrap();
        let w = &e.drugs[0].by_week[0];
        assert_eq!((w.period.as_str(), w.starts_on), ("2026-W45", date!(2026 - 11 - 02)), "{k:?}");
        let e = s.patient_exposure(&prescriber(&[hnl]), ph).await.unwrap();
        assert_eq!(e.drugs[0].by_month[0].period, "2026-10", "{k:?}");
        assert_eq!(e.drugs[0].by_week[0].period, "2026-W44", "{k:?}");
        assert!(e.basis.contains("site's local date"), "{}", e.basis);
    }
}

fn expiring(site: SiteId, on: Date) -> NewReceipt {
    NewReceipt { expires_on: on, ..vial_receipt(site, 2) }
}

#[tokio::test]
async fn lot_expiry_is_judged_by_the_sites_date() {
    let clock = ManualClock::at(AKL_MIDNIGHT);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let k = db.kind;
        let (akl, hnl) = clinics(s).await;
        let receive = |r: NewReceipt, clock: &ManualClock| {
            let site = r.site_id;
            let (at, checker) = (clock.now(), witness(prescriber(&[site]), clock));
            async move { s.record_receipt(&nurse(&[site]), Some(at), r, checker).await }
        };

        // Auckland, 23:59 on the 1st: stock expiring on the 2nd may still be received.
        clock.set(AKL_MIDNIGHT - Duration::days(1) - MINUTE);
        let lot = receive(expiring(akl, date!(2026 - 11 - 02)), &clock).await.unwrap().lot.id;
        // 00:01 on the 3rd there (the 2nd in UTC): stock expiring on the 3rd expired on arrival...
        clock.set(AKL_MIDNIGHT + MINUTE);
        assert_eq!(fields(receive(expiring(akl, date!(2026 - 11 - 03)), &clock).await), ["expires_on"], "{k:?}");
        // ...and the lot that expired on the 2nd cannot be given.
        let (_, sess) =
            patient_with_session(s, akl, "AKL-1", date!(1984 - 03 - 09), Route::IvRacemic, clock.now()).await;
        for step in [SessionAction::CheckIn, SessionAction::StartPreDoseChecks, SessionAction::StartDose] {
            s.act_on_session(&nurse(&[akl]), sess, step).await.unwrap();
        }
        let given = s.record_administration(&nurse(&[akl]), Some(clock.now()), dose(lot, sess, 35.0, 0.7)).await;
        assert!(
            matches!(&given, Err(StoreError::Conflict(m)) if m.contains("expired on 2026-11-02")),
            "{k:?}: {given:?}"
        );

        // Honolulu, 22:00 on the 2nd (08:00 on the 3rd in UTC): a lot expiring on the 3rd arrives;
        // it is expired stock from midnight there, not from midnight UTC.
        clock.set(HNL_MIDNIGHT - Duration::hours(2));
        receive(expiring(hnl, date!(2026 - 11 - 03)), &clock).await.unwrap();
        let expired = |clock: &ManualClock| {
            let at = clock.now();
            async move {
                let rep = s.ledger_reconciliation(&nurse(&[hnl]), Some(hnl), Some(at)).await.unwrap();
                rep.lots[0].reconciliation.flags.iter().any(|f| f.kind == FlagKind::ExpiredStock)
            }
        };
        clock.set(HNL_MIDNIGHT - MINUTE);
        assert!(!expired(&clock).await, "{k:?}: not expired before midnight in Honolulu");
        clock.set(HNL_MIDNIGHT + MINUTE);
        assert!(expired(&clock).await, "{k:?}: expired from midnight in Honolulu");
    }
}

#[tokio::test]
async fn a_relapse_message_names_the_sites_dates() {
    let clock = ManualClock::at(datetime!(2026-11-04 12:00 UTC));
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let k = db.kind;
        let (_, hnl) = clinics(s).await;
        let p = patient(s, hnl, "HNL-1").await;
        let c = s
            .create_course(
                &prescriber(&[hnl]),
                p,
                NewCourse { start_date: date!(2026 - 10 - 01), ..course(Route::IvRacemic) },
            )
            .await
            .unwrap();
        // Baseline 20, a response (8) and a relapse (16), the last two at 09:30 UTC: 23:30 the
        // evening before in Honolulu.
        let phq9 = |answers: [i32; 9], at: OffsetDateTime| NewQuestionnaireResponse {
            instrument: "phq9".into(),
            answers: answers.map(Some).to_vec(),
            course_id: Some(c.id),
            session_id: None,
            completed_at: Some(at),
            completed_by: CompletedBy::Patient,
        };
        for (answers, at) in [
            ([3, 3, 3, 2, 2, 2, 2, 3, 0], datetime!(2026-10-02 20:00 UTC)),
            ([1, 1, 1, 1, 1, 1, 1, 1, 0], datetime!(2026-10-19 09:30 UTC)),
            ([2, 2, 2, 2, 2, 2, 2, 2, 0], datetime!(2026-11-03 09:30 UTC)),
        ] {
            s.submit_response(&prescriber(&[hnl]), p, phq9(answers, at)).await.unwrap();
        }
        let q = AlertQuery { patient_id: Some(p), open_only: true, limit: 50, ..Default::default() };
        let alerts = s.list_alerts(&prescriber(&[hnl]), q).await.unwrap();
        let relapse: Vec<_> = alerts.iter().filter(|a| a.rule == "relapse_watch_phq9").collect();
        assert_eq!(relapse.len(), 1, "{k:?}: {alerts:?}");
        let m = &relapse[0].message;
        assert!(m.contains("total 16 on 2026-11-02") && m.contains("response on 2026-10-18"), "{k:?}: {m}");
    }
}

/// The browser's forms offer the site's today: the weight form's date and the latest date of
/// birth a new patient can have.
#[tokio::test]
async fn forms_default_to_the_sites_today() {
    let clock = ManualClock::at(HNL_MIDNIGHT - MINUTE);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let k = db.kind;
        let (akl, hnl) = clinics(s).await;
        let (pa, ph) = (patient(s, akl, "AKL-1").await, patient(s, hnl, "HNL-1").await);
        let staff = seed_staff(s, &[hnl]).await;
        let app = spawn_app(s.clone()).await;
        let weight_date = |html: &str| {
            let input = &html[html.find("id=\"measured_on\"").expect("the weight form")..];
            let v = &input[input.find("value=\"").unwrap() + 7..];
            v[..v.find('"').unwrap()].to_string()
        };
        let dob_max = |html: &str| {
            let input = &html[html.find("id=\"date_of_birth\"").expect("the date of birth")..];
            let v = &input[input.find("max=\"").unwrap() + 5..];
            v[..v.find('"').unwrap()].to_string()
        };

        // 23:59 on the 2nd in Honolulu, 09:59 on the 3rd in UTC.
        clock.set(HNL_MIDNIGHT - MINUTE);
        assert_eq!(app.login(&staff[2], clock.now()).await.status(), 200, "the nurse signs in");
        let html = app.get(&format!("/patients/{}", ph.0)).await.text().await.unwrap();
        assert_eq!(weight_date(&html), "2026-11-02", "{k:?}");
        let html = app.get("/patients/new").await.text().await.unwrap();
        assert_eq!(dob_max(&html), "2026-11-02", "{k:?}");

        // 00:01 on the 3rd in Auckland, still the 2nd in UTC.
        let staff = seed_staff_at(s, akl).await;
        clock.set(AKL_MIDNIGHT + MINUTE);
        assert_eq!(app.login(&staff, clock.now()).await.status(), 200, "Auckland's nurse signs in");
        let html = app.get(&format!("/patients/{}", pa.0)).await.text().await.unwrap();
        assert_eq!(weight_date(&html), "2026-11-03", "{k:?}");
        let html = app.get("/patients/new").await.text().await.unwrap();
        assert_eq!(dob_max(&html), "2026-11-03", "{k:?}");
    }
}

/// A nurse of `site` only (the seeded staff belong to Honolulu).
async fn seed_staff_at(s: &Store, site: SiteId) -> keta_testkit::StaffLogin {
    let secret = keta_store::credentials::base32_encode(b"keta-test-secret-akl");
    let actor =
        Actor::staff("administrator.test", keta_domain::access::Role::Administrator, keta_store::SiteScope::All);
    s.create_user(
        &actor,
        keta_store::accounts::NewUser {
            username: "nurse.akl".into(),
            display_name: "Auckland Nurse".into(),
            role: keta_domain::access::Role::Nurse,
            password: keta_testkit::TEST_PASSWORD.into(),
            site_ids: vec![site],
            can_break_glass: false,
            totp_secret: Some(secret.clone()),
        },
    )
    .await
    .expect("Auckland nurse");
    keta_testkit::StaffLogin {
        username: "nurse.akl".into(),
        password: keta_testkit::TEST_PASSWORD.into(),
        totp_secret: secret,
        role: keta_domain::access::Role::Nurse,
    }
}
