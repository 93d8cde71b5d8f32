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

pub async fn patient(store: &Store, site: SiteId, mrn: &str) -> PatientId {
    store.create_patient(&Actor::system(), new_patient(site, mrn)).await.expect("patient").id
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
