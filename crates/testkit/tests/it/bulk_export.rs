//! The FHIR exchange beyond read and search, on every backend: Bulk Data `$export` (kick-off,
//! polling, the manifest, NDJSON downloads for the requester only, cancel, retention, one
//! audit entry per exported patient), an export's consistency under concurrent writes, OAuth2
//! client credentials with scopes, and a patient's round trip from one clinic's FHIR output
//! into an empty clinic through the referral import.

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use serde_json::{Value, json};
use time::Duration;

use keta_domain::access::Role;
use keta_domain::eligibility::{AntidepressantTrial, TrialOutcome};
use keta_domain::ids::PatientId;
use keta_domain::records::VitalsSource;
use keta_domain::units::Milligrams;
use keta_store::{Actor, SiteScope, Store};
use keta_testkit::{Kind, ManualClock, TestApp, TestDb, seed_staff, spawn_app, spawn_app_with_state};
use keta_web::fhir::bulk::BulkSettings;

use crate::fhir::{READINGS, charted_patient, reading};
use crate::fixtures::*;

fn admin() -> Actor {
    Actor::staff("admin.test", Role::Administrator, SiteScope::All)
}

fn path_of(url: &str) -> String {
    url[url.find("/fhir/R4/").expect("a FHIR URL")..].to_string()
}

/// An app whose bulk export files go to `dir`.
async fn app_with_dir(s: &Store, dir: &std::path::Path) -> TestApp {
    let bulk = BulkSettings { dir: dir.to_path_buf(), ..BulkSettings::default() };
    spawn_app_with_state(keta_web::AppState::new(s.clone()).with_bulk(bulk)).await
}

/// A request with the session of `app`, or with a bearer token.
fn req(app: &TestApp, method: reqwest::Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => app.client.request(method, app.url(path)).bearer_auth(t),
        None => app.request(method, path),
    }
}

async fn kick_off(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    req(app, reqwest::Method::GET, path, token)
        .header("prefer", "respond-async")
        .header("accept", "application/fhir+json")
        .send()
        .await
        .unwrap()
}

/// The status path from a kick-off's `Content-Location`.
fn status_path(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 202);
    path_of(r.headers()["content-location"].to_str().unwrap())
}

/// Polls until the export is done (202 with progress meanwhile); the manifest.
async fn manifest(app: &TestApp, status: &str, token: Option<&str>) -> Value {
    for _ in 0..3000 {
        let r = req(app, reqwest::Method::GET, status, token).send().await.unwrap();
        match r.status().as_u16() {
            202 => {
                assert!(r.headers().contains_key("x-progress") && r.headers().contains_key("retry-after"));
                tokio::time::sleep(StdDuration::from_millis(10)).await;
            }
            200 => return r.json().await.unwrap(),
            other => panic!("status {other}: {}", r.text().await.unwrap()),
        }
    }
    panic!("the export did not finish");
}

/// Each output type with its URL and count.
fn outputs(m: &Value) -> Vec<(String, String, u64)> {
    m["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["type"].as_str().unwrap().into(), o["url"].as_str().unwrap().into(), o["count"].as_u64().unwrap()))
        .collect()
}

async fn ndjson(app: &TestApp, url: &str, token: Option<&str>) -> Vec<Value> {
    let r = req(app, reqwest::Method::GET, &path_of(url), token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/fhir+ndjson"));
    r.text().await.unwrap().lines().map(|l| serde_json::from_str(l).expect("one resource per line")).collect()
}

async fn count(s: &Store, sql: &'static str, p: Vec<keta_store::testing::Value>) -> i64 {
    keta_store::testing::read(s, move |c| c.query_opt(sql, &p)?.unwrap().i64("n")).await.unwrap()
}

#[tokio::test]
async fn a_bulk_export_runs_in_the_background_and_is_the_requesters_alone() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let (a, b) = (site(s, "A").await, site(s, "B").await);
        let staff = seed_staff(s, &[a]).await;
        let (p1, _) = charted_patient(s, &clock, a, "A-8001").await;
        let (p2, _) = charted_patient(s, &clock, a, "A-8002").await;
        let (pb, _) = charted_patient(s, &clock, b, "B-8003").await;
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_dir(s, dir.path()).await;
        let by = |r: Role| staff.iter().find(|x| x.role == r).unwrap();
        clock.advance(Duration::seconds(31));
        assert_eq!(app.login(by(Role::Nurse), clock.now()).await.status(), 200);

        // Kick-off needs respond-async, NDJSON and parameters Keta knows; a Group is a site.
        assert_eq!(app.get("/fhir/R4/$export").await.status(), 400, "no Prefer: respond-async");
        for bad in [
            "/fhir/R4/$export?_outputFormat=text/csv",
            "/fhir/R4/Patient/$export?_type=Practitioner",
            "/fhir/R4/$export?_since=yesterday",
            "/fhir/R4/$export?_typeFilter=x",
        ] {
            let r = kick_off(&app, bad, None).await;
            assert_eq!(r.status(), 400, "{bad}");
            assert_eq!(r.json::<Value>().await.unwrap()["resourceType"], "OperationOutcome");
        }
        assert_eq!(
            kick_off(&app, &format!("/fhir/R4/Group/{b}/$export"), None).await.status(),
            404,
            "not the nurse's site"
        );

        let r = kick_off(&app, &format!("/fhir/R4/Group/{a}/$export?_type=Patient,Observation,Condition"), None).await;
        let status = status_path(&r);
        let m = manifest(&app, &status, None).await;
        assert_eq!(m["requiresAccessToken"], true);
        assert!(
            m["request"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/fhir/R4/Group/{a}/$export?_type=Patient,Observation,Condition"))
        );
        assert!(
            time::OffsetDateTime::parse(
                m["transactionTime"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );
        assert_eq!(m["error"], json!([]));
        let out = outputs(&m);
        let counts: Vec<(&str, u64)> = out.iter().map(|(t, _, n)| (t.as_str(), *n)).collect();
        assert_eq!(
            counts,
            [("Patient", 2), ("Observation", 2 * (READINGS as u64 * 4 + 1)), ("Condition", 2)],
            "{:?}",
            db.kind
        );
        let ours = [format!("Patient/{p1}"), format!("Patient/{p2}")];
        for (t, url, n) in &out {
            let lines = ndjson(&app, url, None).await;
            assert_eq!(lines.len() as u64, *n, "{t}");
            let ids: BTreeSet<&str> = lines.iter().map(|r| r["id"].as_str().unwrap()).collect();
            assert_eq!(ids.len(), lines.len(), "{t}: each resource once");
            for r in &lines {
                assert_eq!(r["resourceType"].as_str(), Some(t.as_str()));
                let who = if t == "Patient" {
                    format!("Patient/{}", r["id"].as_str().unwrap())
                } else {
                    r["subject"]["reference"].as_str().unwrap().to_string()
                };
                assert!(ours.contains(&who), "{t}: {who} is not a patient of site A");
            }
        }

        // One audit entry per exported patient; nothing of the other site's patient.
        for (p, want) in [(p1, 1), (p2, 1), (pb, 0)] {
            let n = count(s, "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'read' AND actor = 'nurse.test' AND object_type LIKE 'fhir_%' AND patient_id = $1", vec![p.0.into()]).await;
            assert_eq!(n, want, "patient {p}");
        }

        // Another account sees nothing of the job.
        let other = TestApp::client_for(app.addr);
        clock.advance(Duration::seconds(31));
        assert_eq!(other.login(by(Role::Prescriber), clock.now()).await.status(), 200);
        assert_eq!(other.get(&status).await.status(), 404);
        assert_eq!(other.get(&path_of(&out[0].1)).await.status(), 404);
        assert_eq!(other.request(reqwest::Method::DELETE, &status).send().await.unwrap().status(), 404);

        // Cancelling removes the job and its files.
        let job = status.rsplit('/').next().unwrap().to_string();
        assert!(dir.path().join(&job).exists());
        assert_eq!(app.request(reqwest::Method::DELETE, &status).send().await.unwrap().status(), 202);
        assert_eq!(app.get(&status).await.status(), 404);
        assert_eq!(app.get(&path_of(&out[0].1)).await.status(), 404);
        assert!(!dir.path().join(&job).exists(), "the files are removed");

        // An API client exports its sites; after the retention an export's files are gone.
        let issued = s.create_api_client(&admin(), "warehouse".into(), vec![a, b]).await.unwrap();
        let token = Some(issued.token.as_str());
        let r = kick_off(&app, "/fhir/R4/$export?_type=Organization,Patient", token).await;
        let old = status_path(&r);
        let m = manifest(&app, &old, token).await;
        let counts: Vec<(String, u64)> = outputs(&m).into_iter().map(|(t, _, n)| (t, n)).collect();
        assert_eq!(counts, [("Organization".to_string(), 2), ("Patient".to_string(), 3)]);
        assert_eq!(
            req(&app, reqwest::Method::GET, &old, None).send().await.unwrap().status(),
            404,
            "the nurse did not kick it off"
        );
        clock.advance(Duration::hours(25));
        let r = kick_off(&app, "/fhir/R4/Patient/$export?_since=2000-01-01T00:00:00Z", token).await;
        let _ = manifest(&app, &status_path(&r), token).await;
        assert_eq!(req(&app, reqwest::Method::GET, &old, token).send().await.unwrap().status(), 404, "expired");
        assert!(!dir.path().join(old.rsplit('/').next().unwrap()).exists());
    }
}

#[tokio::test]
async fn an_export_under_concurrent_writes_holds_what_existed_at_its_transaction_time_once() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let (_, sess) = charted_patient(s, &clock, a, "A-8101").await;
        let n = nurse(&[a]);
        // Enough readings for several pages of heart rates.
        for i in 0..1010 {
            clock.advance(Duration::seconds(1));
            s.record_vitals(&n, sess, reading(i % 20), None, VitalsSource::Manual).await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_dir(s, dir.path()).await;
        let issued = s.create_api_client(&admin(), "warehouse".into(), vec![a]).await.unwrap();
        let token = Some(issued.token.as_str());

        // A writer keeps adding readings, each a second later, while the export runs.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (s, clock, stop, n) = (s.clone(), clock.clone(), stop.clone(), n.clone());
            tokio::spawn(async move {
                let mut written = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    clock.advance(Duration::seconds(1));
                    s.record_vitals(&n, sess, reading(written % 20), None, VitalsSource::Manual).await.unwrap();
                    written += 1;
                    tokio::task::yield_now().await;
                }
                written
            })
        };
        let vitals = |s: Store| async move {
            keta_store::testing::read(&s, |c| {
                c.query("SELECT id FROM vitals ORDER BY id", &[])?
                    .iter()
                    .map(|r| r.i64("id"))
                    .collect::<keta_store::Result<BTreeSet<i64>>>()
            })
            .await
            .unwrap()
        };
        tokio::time::sleep(StdDuration::from_millis(20)).await;
        let before = vitals(s.clone()).await;
        let r = kick_off(&app, "/fhir/R4/Patient/$export?_type=Observation", token).await;
        let status = status_path(&r);
        // Readings written after the kick-off answered, for certain.
        for i in 0..5 {
            clock.advance(Duration::seconds(1));
            s.record_vitals(&n, sess, reading(i), None, VitalsSource::Manual).await.unwrap();
        }
        let m = manifest(&app, &status, token).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let written = writer.await.unwrap();
        let all = vitals(s.clone()).await;
        assert!(written > 0 && all.len() > before.len() + 5, "the writer wrote during the export");

        let tx = time::OffsetDateTime::parse(
            m["transactionTime"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let (_, url, count) = outputs(&m).into_iter().find(|(t, _, _)| t == "Observation").unwrap();
        let lines = ndjson(&app, &url, token).await;
        assert_eq!(lines.len() as u64, count);
        let ids: Vec<&str> = lines.iter().map(|o| o["id"].as_str().unwrap()).collect();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{:?}: each resource at most once", db.kind);
        for o in &lines {
            let at = time::OffsetDateTime::parse(
                o["effectiveDateTime"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            assert!(at <= tx, "{:?}: {} was taken after the transaction time", db.kind, o["id"]);
        }
        let hr: BTreeSet<i64> = ids.iter().filter_map(|i| i.strip_prefix("hr-")).map(|i| i.parse().unwrap()).collect();
        assert!(before.is_subset(&hr), "{:?}: every reading stored before the kick-off is exported", db.kind);
        assert!(hr.is_subset(&all));
        assert!(hr.len() < all.len(), "readings after the transaction time are left out");
    }
}

/// Posts a token request with a form body.
async fn token_request(app: &TestApp, form: &str, basic: Option<(&str, &str)>) -> reqwest::Response {
    let mut b = app
        .client
        .post(app.url("/fhir/R4/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    if let Some((id, secret)) = basic {
        b = b.basic_auth(id, Some(secret));
    }
    b.send().await.unwrap()
}

#[tokio::test]
async fn client_credentials_give_short_lived_scoped_tokens_that_end_with_the_client() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let (p, _) = charted_patient(s, &clock, a, "A-8201").await;
        let app = spawn_app(s.clone()).await;
        let issued = s.create_api_client(&admin(), "payer".into(), vec![a]).await.unwrap();
        let secret = issued.token.as_str();

        let smart: Value = app.get("/fhir/R4/.well-known/smart-configuration").await.json().await.unwrap();
        assert!(smart["token_endpoint"].as_str().unwrap().ends_with("/fhir/R4/auth/token"));
        let cap: Value = app.get("/fhir/R4/metadata").await.json().await.unwrap();
        assert_eq!(cap["rest"][0]["security"]["extension"][0]["extension"][0]["valueUri"], smart["token_endpoint"]);

        // RFC 6749 §5.2 errors.
        for (form, basic, status, error) in [
            ("grant_type=client_credentials", Some(("payer", "keta_fhir_wrong")), 401, "invalid_client"),
            ("grant_type=client_credentials", None, 401, "invalid_client"),
            ("grant_type=password&username=x&password=y", Some(("payer", secret)), 400, "unsupported_grant_type"),
            ("grant_type=client_credentials&scope=system/*.write", Some(("payer", secret)), 400, "invalid_scope"),
            ("grant_type=client_credentials&scope=patient/*.read", Some(("payer", secret)), 400, "invalid_scope"),
        ] {
            let r = token_request(&app, form, basic).await;
            assert_eq!(r.status(), status, "{form}");
            assert_eq!(r.json::<Value>().await.unwrap()["error"], error, "{form}");
        }

        // A narrow token by form, a wide one by HTTP Basic.
        let r = token_request(
            &app,
            &format!(
                "grant_type=client_credentials&client_id=payer&client_secret={secret}&scope=system%2FObservation.read"
            ),
            None,
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        let t: Value = r.json().await.unwrap();
        assert_eq!(
            (t["token_type"].as_str(), t["scope"].as_str(), t["expires_in"].as_i64()),
            (Some("bearer"), Some("system/Observation.read"), Some(300))
        );
        let narrow = t["access_token"].as_str().unwrap().to_string();
        let get = |path: String, token: String| {
            let client = app.client.clone();
            let url = app.url(&path);
            async move { client.get(url).bearer_auth(token).send().await.unwrap().status() }
        };
        assert_eq!(get(format!("/fhir/R4/Observation?patient={p}"), narrow.clone()).await, 200);
        assert_eq!(get(format!("/fhir/R4/Patient/{p}"), narrow.clone()).await, 403, "outside the token's scope");
        assert_eq!(kick_off(&app, "/fhir/R4/Patient/$export?_type=Patient", Some(&narrow)).await.status(), 403);
        let stored =
            count(s, "SELECT COUNT(*) AS n FROM api_access_tokens WHERE token_hash = $1", vec![narrow.clone().into()])
                .await;
        assert_eq!(stored, 0, "only the hash is stored");

        let t: Value =
            token_request(&app, "grant_type=client_credentials&scope=system%2F*.read", Some(("payer", secret)))
                .await
                .json()
                .await
                .unwrap();
        let wide = t["access_token"].as_str().unwrap().to_string();
        assert_eq!(get(format!("/fhir/R4/Patient/{p}"), wide.clone()).await, 200);

        // Tokens expire, and revoking the client ends them at once.
        clock.advance(Duration::minutes(6));
        assert_eq!(get(format!("/fhir/R4/Observation?patient={p}"), narrow.clone()).await, 401, "expired");
        let t: Value =
            token_request(&app, "grant_type=client_credentials", Some(("payer", secret))).await.json().await.unwrap();
        let fresh = t["access_token"].as_str().unwrap().to_string();
        assert_eq!(t["scope"], "system/*.read");
        assert_eq!(get(format!("/fhir/R4/Patient/{p}"), fresh.clone()).await, 200);
        s.revoke_api_client(&admin(), issued.client.id).await.unwrap();
        assert_eq!(get(format!("/fhir/R4/Patient/{p}"), fresh.clone()).await, 401, "revoked with its client");
        assert_eq!(token_request(&app, "grant_type=client_credentials", Some(("payer", secret))).await.status(), 401);
        let issued_audit = count(
            s,
            "SELECT COUNT(*) AS n FROM audit_log WHERE object_type = 'api_access_token' AND actor = 'api-client:payer'",
            vec![],
        )
        .await;
        assert_eq!(issued_audit, 3, "each token issued is audited");
    }
}

/// A fresh, empty database of the same kind as `db`.
async fn empty_like(db: &TestDb, clock: &ManualClock) -> TestDb {
    match db.kind {
        Kind::Sqlite => TestDb::sqlite(clock.as_clock()).await,
        Kind::Postgres => TestDb::postgres(clock.as_clock()).await.expect("postgres"),
    }
}

#[tokio::test]
async fn a_patient_exported_as_fhir_is_imported_into_an_empty_clinic_with_the_same_history() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        // The source clinic: a charted patient with diagnoses, two past trials and a PHQ-9.
        let s = &db.store;
        let a = site(s, "A").await;
        let (p, _) = charted_patient(s, &clock, a, "A-8301").await;
        let trials = [
            AntidepressantTrial {
                drug: "sertraline".into(),
                daily_dose_mg: Some(Milligrams(150.0)),
                weeks: 10,
                adequate: true,
                outcome: TrialOutcome::NoResponse,
                current_episode: true,
            },
            AntidepressantTrial {
                drug: "bupropion".into(),
                daily_dose_mg: None,
                weeks: 3,
                adequate: false,
                outcome: TrialOutcome::Intolerance,
                current_episode: false,
            },
        ];
        for t in &trials {
            s.add_antidepressant_trial(&prescriber(&[a]), p, t.clone()).await.unwrap();
        }
        let source = spawn_app(s.clone()).await;
        let token = s.create_api_client(&admin(), "exchange".into(), vec![a]).await.unwrap().token;
        let read = |path: String| {
            let client = source.client.clone();
            let url = source.url(&path);
            let token = token.clone();
            async move {
                let r = client.get(url).bearer_auth(token).send().await.unwrap();
                assert_eq!(r.status(), 200, "{path}");
                r.json::<Value>().await.unwrap()
            }
        };
        let patient = read(format!("/fhir/R4/Patient/{p}")).await;
        let mut resources = vec![patient.clone()];
        for q in [
            format!("/fhir/R4/Condition?patient={p}"),
            format!("/fhir/R4/MedicationStatement?patient={p}"),
            format!("/fhir/R4/Observation?patient={p}&code=http://loinc.org|44261-6"),
        ] {
            let b = read(q).await;
            resources.extend(b["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()));
        }
        assert_eq!(resources.len(), 1 + 1 + 2 + 1);
        let bundle = json!({
            "resourceType": "Bundle",
            "type": "collection",
            "entry": resources.iter().map(|r| json!({
                "fullUrl": format!("https://source.example/fhir/R4/{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()),
                "resource": r,
            })).collect::<Vec<_>>(),
        });

        // The target clinic is empty: one site and its staff.
        let target_db = empty_like(&db, &clock).await;
        let t = &target_db.store;
        let ta = site(t, "T").await;
        let staff = seed_staff(t, &[ta]).await;
        assert_eq!(count(t, "SELECT COUNT(*) AS n FROM patients", vec![]).await, 0);
        let target = spawn_app(t.clone()).await;
        clock.advance(Duration::seconds(31));
        let dr = staff.iter().find(|x| x.role == Role::Prescriber).unwrap();
        assert_eq!(target.login(dr, clock.now()).await.status(), 200);
        let r = target.post_json("/fhir/R4", &bundle).await;
        assert_eq!(r.status(), 201, "{:?}: {}", db.kind, r.text().await.unwrap());
        let id: i64 =
            r.headers()["location"].to_str().unwrap().trim_start_matches("/fhir/R4/Patient/").parse().unwrap();

        // Read back what the import promises.
        let back: Value = target.get(&format!("/fhir/R4/Patient/{id}")).await.json().await.unwrap();
        for field in ["name", "birthDate", "gender", "identifier"] {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if field == "identifier" {
                    v[0]["system"] = Value::Null;
                }
                v
            };
            assert_eq!(strip(&back[field]), strip(&patient[field]), "{:?}: {field}", db.kind);
        }
        let codes = |b: Value| -> Vec<String> {
            b["entry"]
                .as_array()
                .map(|e| {
                    e.iter().map(|x| x["resource"]["code"]["coding"][0]["code"].as_str().unwrap().to_string()).collect()
                })
                .unwrap_or_default()
        };
        let src_dx = codes(read(format!("/fhir/R4/Condition?patient={p}")).await);
        let dst_dx = codes(target.get(&format!("/fhir/R4/Condition?patient={id}")).await.json().await.unwrap());
        assert_eq!(src_dx, ["F33.2"]);
        assert_eq!(dst_dx, src_dx, "{:?}: diagnoses", db.kind);
        let imported = keta_store::testing::antidepressant_trials(t, PatientId(id)).await.unwrap();
        assert_eq!(
            imported.iter().map(|x| x.trial.clone()).collect::<Vec<_>>(),
            trials,
            "{:?}: trials with dose, duration and outcome",
            db.kind
        );
        let scores = t.list_prior_scores(&Actor::system(), PatientId(id)).await.unwrap();
        let got: Vec<(&str, i32, time::Date)> =
            scores.iter().map(|x| (x.score.instrument.as_str(), x.score.total, x.score.observed_on)).collect();
        assert_eq!(got, [("phq9", 10, T0.date())], "{:?}: the PHQ-9 total as a prior score", db.kind);
    }
}
