//! Builders shared by the stories and API tests.

use keta_domain::access::Role;
use keta_domain::course::{NewCourse, Phase, Route};
use keta_domain::ids::{PatientId, SiteId};
use keta_domain::patient::{Indication, NewPatient, Sex};
use keta_domain::site::NewSite;
use keta_store::{Actor, SiteScope, Store};
use time::OffsetDateTime;
use time::macros::{date, datetime};

pub const T0: OffsetDateTime = datetime!(2026-11-02 14:00 UTC);

pub fn nurse(sites: &[SiteId]) -> Actor {
    Actor::staff("nurse.test", Role::Nurse, SiteScope::Sites(sites.to_vec()))
}

pub fn prescriber(sites: &[SiteId]) -> Actor {
    Actor::staff("dr.test", Role::Prescriber, SiteScope::Sites(sites.to_vec()))
}

pub fn front_desk(sites: &[SiteId]) -> Actor {
    Actor::staff("desk.test", Role::FrontDesk, SiteScope::Sites(sites.to_vec()))
}

pub async fn site(store: &Store, code: &str) -> SiteId {
    store
        .create_site(
            &Actor::system(),
            NewSite {
                code: code.into(),
                name: format!("Clinic {code}"),
                time_zone: "America/Chicago".into(),
                crisis_line: "988".into(),
            },
            vec!["Chair 1".into(), "Chair 2".into()],
        )
        .await
        .expect("site")
        .id
}

pub fn new_patient(site: SiteId, mrn: &str) -> NewPatient {
    NewPatient {
        site_id: site,
        mrn: mrn.into(),
        given_name: "Rowan".into(),
        family_name: format!("Test-{mrn}"),
        date_of_birth: date!(1984 - 03 - 09),
        sex: Sex::Female,
        phone: Some("+1 555 0100".into()),
        email: None,
        indication: Indication::Depression,
        diagnoses: vec!["F33.2".into()],
        referring_clinician: Some("Dr Example".into()),
    }
}

/// A registered patient who has signed every treatment consent and the REMS enrolment (so
/// a session can start). For a patient with nothing signed, call `create_patient`.
pub async fn patient(store: &Store, site: SiteId, mrn: &str) -> PatientId {
    let p = store.create_patient(&Actor::system(), new_patient(site, mrn)).await.expect("patient").id;
    consent_all(store, p).await;
    p
}

pub fn course(route: Route) -> NewCourse {
    NewCourse {
        route,
        phase: Phase::Induction,
        indication: None,
        planned_sessions: 6,
        start_date: date!(2026 - 11 - 02),
        protocol: None,
    }
}

/// A drawn signature, as the tablet sends it.
pub const SIGNATURE: &str = "M 100 1500 L 900 600 L 1700 1800 L 2600 700";

/// The patient signs, and a clinician countersigns, the current version of `form_key`.
pub async fn sign_consent(store: &Store, patient: PatientId, form_key: &str) -> keta_domain::consent::ConsentRecord {
    let form = keta_domain::consent::current_form(form_key).expect("a form");
    let rems = form.kind == keta_domain::consent::ConsentKind::RemsEnrolment;
    let new = keta_domain::consent::NewConsent {
        form_key: form_key.into(),
        form_version: form.version,
        patient_typed_name: "Rowan Test".into(),
        patient_signature_svg: SIGNATURE.into(),
        rems_patient_id: rems.then(|| format!("REMS-{patient}")),
        rems_enrolled_on: rems.then_some(date!(2026 - 10 - 30)),
    };
    let rec = store.record_consent(&Actor::system(), patient, new).await.expect("consent");
    store.countersign_consent(&Actor::system(), rec.id).await.expect("countersign")
}

/// Every treatment consent and the REMS enrolment, signed and countersigned: for stories
/// about what happens after the dose starts (the gate is tested in `consents`).
pub async fn consent_all(store: &Store, patient: PatientId) {
    for f in keta_domain::consent::current_forms() {
        if f.kind != keta_domain::consent::ConsentKind::ResearchDataSharing {
            sign_consent(store, patient, &f.key).await;
        }
    }
}
