//! The FHIR R4 facade: search semantics (date prefixes, paging, codes and categories, site
//! scoping, audit) on every backend, and the HTTP surface (Bundles, `next` links, `_include`,
//! OperationOutcome errors, the CapabilityStatement).

use serde_json::Value;
use time::Duration;

use keta_domain::access::Role;
use keta_domain::course::Route;
use keta_domain::fhir_search::parse_date_param;
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::records::{CompletedBy, NewQuestionnaireResponse, VitalsSource};
use keta_domain::session::{NewSession, SessionAction};
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::Store;
use keta_store::fhir::{ObservationFilter, ObservationSource, Search};
use keta_testkit::{ManualClock, TestDb, seed_staff, spawn_app};

use crate::fixtures::*;

pub(crate) const READINGS: i64 = 5;

pub(crate) fn reading(i: i64) -> VitalSigns {
    VitalSigns {
        systolic_mmhg: Some(Mmhg(120.0 + i as f64)),
        diastolic_mmhg: Some(Mmhg(80.0)),
        heart_rate_bpm: Some(BeatsPerMinute(70.0 + i as f64)),
        spo2_pct: Some(Percent(98.0)),
        resp_rate_per_min: Some(BreathsPerMinute(14.0)),
    }
}

/// A session at T0, checked in, with `READINGS` full readings ten minutes apart from T0 and a
/// PHQ-9; leaves the clock an hour after T0.
pub(crate) async fn charted_patient(
    s: &Store,
    clock: &ManualClock,
    site_id: SiteId,
    mrn: &str,
) -> (PatientId, SessionId) {
    clock.set(T0);
    let p = patient(s, site_id, mrn).await;
    let c = s.create_course(&prescriber(&[site_id]), p, course(Route::IvRacemic)).await.unwrap();
    let sess = s
        .create_session(
            &prescriber(&[site_id]),
            c.id,
            NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
        )
        .await
        .unwrap();
    let n = nurse(&[site_id]);
    s.act_on_session(&n, sess.id, SessionAction::CheckIn).await.unwrap();
    s.act_on_session(&n, sess.id, SessionAction::StartPreDoseChecks).await.unwrap();
    clock.set(T0 + Duration::hours(1));
    for i in 0..READINGS {
        s.record_vitals(&n, sess.id, reading(i), Some(T0 + Duration::minutes(10 * i)), VitalsSource::Manual)
            .await
            .unwrap();
    }
    s.submit_response(
        &n,
        p,
        NewQuestionnaireResponse {
            instrument: "phq9".into(),
            answers: [2, 2, 1, 1, 1, 1, 1, 1, 0].into_iter().map(Some).collect(),
            course_id: None,
            session_id: None,
            completed_at: None,
            completed_by: CompletedBy::Patient,
        },
    )
    .await
    .unwrap();
    (p, sess.id)
}

fn hr_only() -> ObservationFilter {
    ObservationFilter { sources: vec![ObservationSource::HeartRate], instruments: None, only: None }
}

fn all_sources() -> ObservationFilter {
    ObservationFilter { sources: ObservationSource::ALL.to_vec(), instruments: None, only: None }
}

#[tokio::test]
async fn observation_search_filters_by_date_prefix_pages_and_stays_within_the_callers_sites() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let (a, b) = (site(s, "A").await, site(s, "B").await);
        let (pa, _) = charted_patient(s, &clock, a, "A-7001").await;
        let (pb, _) = charted_patient(s, &clock, b, "B-7002").await;
        let n = nurse(&[a]);
        let search = |patient, date: &[&str], count, offset| Search {
            patient,
            date: date.iter().map(|d| parse_date_param(d).unwrap()).collect(),
            count,
            offset,
            ..Search::default()
        };

        // Every reading is four vital-sign Observations; the PHQ-9 total is one more.
        let all = s.fhir_observations(&n, search(Some(pa), &[], 100, 0), all_sources()).await.unwrap();
        assert_eq!(all.total, READINGS * 4 + 1, "{:?}", db.kind);
        assert_eq!(all.items.len() as i64, all.total);
        let score = all.items.iter().find(|o| o.source == ObservationSource::Score).unwrap();
        assert_eq!((score.instrument.as_deref(), score.num1), (Some("phq9"), Some(10.0)));

        // Date prefixes against readings at T0, +10, +20, +30, +40 minutes.
        let at = |m: i64| (T0 + Duration::minutes(m)).format(&time::format_description::well_known::Rfc3339).unwrap();
        let hr = |date: Vec<String>| {
            let d: Vec<&str> = date.iter().map(String::as_str).collect();
            let q = search(Some(pa), &d, 100, 0);
            let n = &n;
            async move { s.fhir_observations(n, q, hr_only()).await.unwrap().total }
        };
        assert_eq!(hr(vec![]).await, READINGS);
        assert_eq!(hr(vec![format!("ge{}", at(20))]).await, 3, "ge includes the instant itself");
        assert_eq!(hr(vec![format!("gt{}", at(20))]).await, 2);
        assert_eq!(hr(vec![format!("lt{}", at(20))]).await, 2);
        assert_eq!(hr(vec![format!("le{}", at(20))]).await, 3);
        assert_eq!(hr(vec![format!("eq{}", at(20))]).await, 1);
        assert_eq!(hr(vec![format!("ne{}", at(20))]).await, 4);
        assert_eq!(hr(vec![format!("sa{}", at(20))]).await, 2);
        assert_eq!(hr(vec![format!("eb{}", at(20))]).await, 2);
        assert_eq!(hr(vec![format!("ge{}", at(10)), format!("lt{}", at(40))]).await, 3, "two dates combine");
        assert_eq!(hr(vec!["2026-11-02".into()]).await, READINGS, "a day covers the whole day");
        assert_eq!(hr(vec!["2026-11-03".into()]).await, 0);
        assert_eq!(hr(vec!["lt2026-11".into()]).await, 0);

        // Paging: pages of 2 cover every reading once, in time order.
        let mut seen = Vec::new();
        for offset in (0..READINGS).step_by(2) {
            let page = s.fhir_observations(&n, search(Some(pa), &[], 2, offset as u32), hr_only()).await.unwrap();
            assert_eq!(page.total, READINGS);
            seen.extend(page.items.iter().map(|o| (o.at_ms, o.record_id)));
        }
        assert_eq!(seen.len() as i64, READINGS);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "ordered and without repeats: {seen:?}");
        let newest = s
            .fhir_observations(&n, Search { newest_first: true, ..search(Some(pa), &[], 1, 0) }, hr_only())
            .await
            .unwrap();
        assert_eq!(newest.items[0].num1, Some(70.0 + (READINGS - 1) as f64));

        // Another site's patient is invisible, by id or in an open search.
        let other = s.fhir_observations(&n, search(Some(pb), &[], 100, 0), all_sources()).await.unwrap();
        assert_eq!((other.total, other.items.len()), (0, 0));
        let open = s.fhir_observations(&n, search(None, &[], 1000, 0), all_sources()).await.unwrap();
        assert!(open.items.iter().all(|o| o.patient_id == pa));
        assert_eq!(open.total, READINGS * 4 + 1);
        let everyone =
            s.fhir_observations(&keta_store::Actor::system(), search(None, &[], 1000, 0), all_sources()).await.unwrap();
        assert_eq!(everyone.total, 2 * (READINGS * 4 + 1));
        let enc = s.fhir_encounters(&n, search(Some(pb), &[], 10, 0)).await.unwrap();
        assert_eq!(enc.total, 0);
        let pats = s.fhir_patients(&n, Search { count: 10, ..Search::default() }).await.unwrap();
        assert_eq!(pats.items.iter().map(|p| p.id).collect::<Vec<_>>(), vec![pa]);

        // A front-desk account may not open clinical records.
        let desk = front_desk(&[a]);
        assert!(s.fhir_observations(&desk, search(Some(pa), &[], 10, 0), all_sources()).await.is_err());

        // Each read is audited against the patient whose data was returned.
        let reads = keta_store::testing::read(s, move |c| {
                c.query_opt(
                    "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'read' AND object_type = 'fhir_observation' AND actor = 'nurse.test' AND patient_id = $1",
                    keta_store::params![pa.0],
                )?
                .unwrap()
                .i64("n")
            })
            .await
            .unwrap();
        assert!(reads >= 1, "{reads}");
        let leaked = keta_store::testing::read(s, move |c| {
                c.query_opt(
                    "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'read' AND object_type LIKE 'fhir_%' AND actor = 'nurse.test' AND patient_id = $1",
                    keta_store::params![pb.0],
                )?
                .unwrap()
                .i64("n")
            })
            .await
            .unwrap();
        assert_eq!(leaked, 0, "nothing of the other site's patient was read");
    }
}

fn strip_base(url: &str) -> String {
    let i = url.find("/fhir/R4/").expect("a FHIR URL");
    url[i..].to_string()
}

#[tokio::test]
async fn the_http_api_answers_bundles_next_links_includes_and_operation_outcomes() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let (a, b) = (site(s, "A").await, site(s, "B").await);
        let staff = seed_staff(s, &[a]).await;
        let (pa, sess) = charted_patient(s, &clock, a, "A-7101").await;
        let (pb, _) = charted_patient(s, &clock, b, "B-7102").await;
        let app = spawn_app(s.clone()).await;

        // Without a session: 401 OperationOutcome; the CapabilityStatement is public.
        let r = app.get(&format!("/fhir/R4/Observation?patient={}", pa.0)).await;
        assert_eq!(r.status(), 401);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/fhir+json"));
        let oo: Value = r.json().await.unwrap();
        assert_eq!(oo["resourceType"], "OperationOutcome");
        let cap: Value = app.get("/fhir/R4/metadata").await.json().await.unwrap();
        assert_eq!(
            (cap["resourceType"].as_str(), cap["fhirVersion"].as_str()),
            (Some("CapabilityStatement"), Some("4.0.1"))
        );

        let nurse_login = staff.iter().find(|u| u.role == Role::Nurse).unwrap();
        assert_eq!(app.login(nurse_login, clock.now()).await.status(), 200);

        let r = app.get(&format!("/fhir/R4/Observation?patient=Patient/{}&category=vital-signs&code=http://loinc.org|8867-4&_count=2&_include=Observation:patient", pa.0)).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/fhir+json"));
        let bundle: Value = r.json().await.unwrap();
        assert_eq!((bundle["type"].as_str(), bundle["total"].as_i64()), (Some("searchset"), Some(READINGS)));
        let entries = bundle["entry"].as_array().unwrap();
        let matches: Vec<&Value> = entries.iter().filter(|e| e["search"]["mode"] == "match").collect();
        assert_eq!(matches.len(), 2);
        let hr = &matches[0]["resource"];
        assert_eq!(hr["code"]["coding"][0]["code"], "8867-4");
        assert_eq!(hr["valueQuantity"]["code"], "/min");
        assert_eq!(hr["subject"]["reference"], format!("Patient/{}", pa.0));
        assert_eq!(hr["encounter"]["reference"], format!("Encounter/{}", sess.0));
        let included: Vec<&Value> = entries.iter().filter(|e| e["search"]["mode"] == "include").collect();
        assert_eq!(included.len(), 1);
        assert_eq!(included[0]["resource"]["id"], pa.0.to_string());

        // Following `next` links reaches every reading once.
        let mut ids: Vec<String> = matches.iter().map(|e| e["resource"]["id"].as_str().unwrap().to_string()).collect();
        let mut next = bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
        while let Some(url) = next {
            let page: Value = app.get(&strip_base(&url)).await.json().await.unwrap();
            for e in page["entry"].as_array().unwrap().iter().filter(|e| e["search"]["mode"] == "match") {
                ids.push(e["resource"]["id"].as_str().unwrap().to_string());
            }
            next = page["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == "next")
                .map(|l| l["url"].as_str().unwrap().to_string());
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((ids.len() as i64, unique.len() as i64), (READINGS, READINGS), "{ids:?}");

        // The PHQ-9 total: LOINC 44261-6 with its severity band as interpretation.
        let phq: Value =
            app.get(&format!("/fhir/R4/Observation?subject={}&code=44261-6", pa.0)).await.json().await.unwrap();
        assert_eq!(phq["total"], 1);
        let o = &phq["entry"][0]["resource"];
        assert_eq!(
            (o["valueInteger"].as_i64(), o["category"][0]["coding"][0]["code"].as_str()),
            (Some(10), Some("survey"))
        );
        assert_eq!(o["interpretation"][0]["text"], "Moderate");

        // Reads: a resource, and another site's patient is not found.
        let read: Value = app.get(&format!("/fhir/R4/Observation/{}", ids[0])).await.json().await.unwrap();
        assert_eq!(read["id"].as_str(), Some(ids[0].as_str()));
        let enc: Value = app.get(&format!("/fhir/R4/Encounter/{}", sess.0)).await.json().await.unwrap();
        assert_eq!((enc["resourceType"].as_str(), enc["status"].as_str()), (Some("Encounter"), Some("in-progress")));
        let r = app.get(&format!("/fhir/R4/Patient/{}", pb.0)).await;
        assert_eq!(r.status(), 404);
        assert_eq!(r.json::<Value>().await.unwrap()["issue"][0]["code"], "not-found");

        // Bad input is refused with what to fix, not ignored.
        for (q, needle) in [
            ("Observation?date=yesterday", "YYYY-MM-DD"),
            ("Observation?colour=blue", "colour"),
            ("Observation?_count=lots", "_count"),
            ("Observation?patient=someone", "Patient/12"),
            ("Observation?_sort=value", "_sort"),
        ] {
            let r = app.get(&format!("/fhir/R4/{q}")).await;
            assert_eq!(r.status(), 400, "{q}");
            let oo: Value = r.json().await.unwrap();
            assert!(oo["issue"][0]["diagnostics"].as_str().unwrap().contains(needle), "{q}: {oo}");
        }
        assert_eq!(app.get("/fhir/R4/Medication").await.status(), 404);

        // The request's reads are audited for the patient read.
        let reads = keta_store::testing::read(s, move |c| {
                c.query_opt(
                    "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'read' AND object_type LIKE 'fhir_%' AND actor = 'nurse.test' AND patient_id = $1",
                    keta_store::params![pa.0],
                )?
                .unwrap()
                .i64("n")
            })
            .await
            .unwrap();
        assert!(reads >= 3, "{reads}");
    }
}

#[tokio::test]
async fn practitioners_are_the_staff_of_the_callers_sites_only() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let (a, b) = (site(s, "A").await, site(s, "B").await);
        let admin = keta_store::Actor::staff("admin.test", Role::Administrator, keta_store::SiteScope::All);
        let mut ids = Vec::new();
        // The first account of a clinic is its administrator.
        let staff = [
            ("alice.a", Role::Administrator, vec![a]),
            ("bob.b", Role::Nurse, vec![b]),
            ("carol.ab", Role::Nurse, vec![a, b]),
        ];
        for (username, role, sites) in staff {
            let new = keta_store::accounts::NewUser {
                username: username.into(),
                display_name: username.into(),
                role,
                password: keta_testkit::TEST_PASSWORD.into(),
                site_ids: sites,
                can_break_glass: false,
                totp_secret: None,
            };
            ids.push(s.create_user(&admin, new).await.unwrap().0.id);
        }
        let (alice, bob, carol) = (ids[0], ids[1], ids[2]);
        let seen = |actor: keta_store::Actor, id: Option<i64>| async move {
            let page = s.fhir_practitioners(&actor, id, 100, 0).await.unwrap();
            assert_eq!(page.total, page.items.len() as i64, "{:?}", db.kind);
            page.items.into_iter().map(|p| p.id).collect::<Vec<_>>()
        };

        // Site A's staff, and whoever works at A too; not B's alone, by search or by id.
        assert_eq!(seen(nurse(&[a]), None).await, vec![alice, carol], "{:?}", db.kind);
        assert_eq!(seen(nurse(&[a]), Some(bob)).await, Vec::<i64>::new());
        assert_eq!(seen(nurse(&[a]), Some(carol)).await, vec![carol]);
        assert_eq!(seen(nurse(&[b]), None).await, vec![bob, carol]);
        assert_eq!(seen(nurse(&[a, b]), None).await, vec![alice, bob, carol]);
        // An account of every site (a system-level export) still lists all staff.
        let all = seen(keta_store::Actor::system(), None).await;
        assert!([alice, bob, carol].iter().all(|id| all.contains(id)), "{all:?}");
    }
}

#[tokio::test]
async fn an_api_client_reads_its_sites_only_with_a_revocable_token_and_is_audited() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let (a, b) = (site(s, "A").await, site(s, "B").await);
        let (pa, _) = charted_patient(s, &clock, a, "A-7201").await;
        let (pb, _) = charted_patient(s, &clock, b, "B-7202").await;
        let admin = keta_store::Actor::staff("admin.test", Role::Administrator, keta_store::SiteScope::All);

        // Only administrators create clients; names and sites are checked.
        assert!(s.create_api_client(&nurse(&[a]), "x".into(), vec![a]).await.is_err());
        assert!(s.create_api_client(&admin, "no sites".into(), vec![a]).await.is_err(), "a name with a space");
        assert!(s.create_api_client(&admin, "payer".into(), vec![]).await.is_err(), "no site");
        let issued = s.create_api_client(&admin, "payer".into(), vec![a]).await.unwrap();
        assert!(issued.token.starts_with(keta_store::api_clients::TOKEN_PREFIX));
        assert!(s.create_api_client(&admin, "payer".into(), vec![a]).await.is_err(), "names are unique");
        let token = issued.token.clone();
        let stored = keta_store::testing::read(s, move |c| {
            c.query("SELECT token_hash FROM api_clients", &[])?
                .iter()
                .map(|r| r.text("token_hash"))
                .collect::<keta_store::Result<Vec<_>>>()
        })
        .await
        .unwrap();
        assert!(!stored.contains(&token), "only the hash is stored");

        let app = spawn_app(s.clone()).await;
        let bearer = |path: String, token: String| {
            let client = reqwest::Client::new();
            let url = app.url(&path);
            async move { client.get(url).bearer_auth(token).send().await.unwrap() }
        };
        let r = bearer(format!("/fhir/R4/Observation?patient={}&_count=200", pa.0), token.clone()).await;
        assert_eq!(r.status(), 200);
        let bundle: Value = r.json().await.unwrap();
        assert_eq!(bundle["total"].as_i64(), Some(READINGS * 4 + 1));
        let r = bearer(format!("/fhir/R4/Patient/{}", pb.0), token.clone()).await;
        assert_eq!(r.status(), 404, "another site's patient is not there for this client");
        let r = bearer(format!("/fhir/R4/Patient/{}", pa.0), "keta_fhir_0000".into()).await;
        assert_eq!(r.status(), 401);
        // The token opens nothing outside the FHIR read routes.
        let r = bearer("/api/v1/patients".into(), token.clone()).await;
        assert_eq!(r.status(), 401);

        let reads = keta_store::testing::read(s, move |c| {
                c.query_opt(
                    "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'read' AND actor = 'api-client:payer' AND patient_id = $1",
                    keta_store::params![pa.0],
                )?
                .unwrap()
                .i64("n")
            })
            .await
            .unwrap();
        assert!(reads >= 1, "the client's reads are audited under its name: {reads}");

        let revoked = s.revoke_api_client(&admin, issued.client.id).await.unwrap();
        assert!(revoked.revoked_at.is_some());
        let r = bearer(format!("/fhir/R4/Patient/{}", pa.0), token.clone()).await;
        assert_eq!(r.status(), 401, "a revoked token stops working at once");
        assert!(s.revoke_api_client(&admin, issued.client.id).await.is_err(), "revoked once");
        let listed = s.list_api_clients(&admin).await.unwrap();
        assert_eq!((listed.len(), listed[0].site_ids.clone()), (1, vec![a]));
    }
}
