//! The JSON API over HTTP, against the real router on port 0.

use serde_json::{Value, json};

use keta_domain::ids::SiteId;
use keta_testkit::{ManualClock, StaffLogin, TestDb, seed_staff, spawn_app};

use crate::fixtures::*;

/// A server over a fresh database with site A, one account per role, and the
/// prescriber signed in.
async fn app() -> (keta_testkit::TestApp, TestDb, SiteId, Vec<StaffLogin>) {
    let db = TestDb::sqlite(ManualClock::at(T0).as_clock()).await;
    let a = site(&db.store, "A").await;
    let staff = seed_staff(&db.store, &[a]).await;
    let app = spawn_app(db.store.clone()).await;
    let r = app.login(&staff[1], T0).await;
    assert_eq!(r.status(), 200, "prescriber signs in");
    (app, db, a, staff)
}

fn patient_body(site: i64, mrn: &str) -> Value {
    json!({
        "site_id": site, "mrn": mrn, "given_name": "Avery", "family_name": "Quinn", "date_of_birth": "1979-05-04",
        "sex": "male", "indication": "depression", "diagnoses": ["F33.2"]
    })
}

#[tokio::test]
async fn committed_openapi_matches_the_code() {
    let generated = keta_web::openapi_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    if std::env::var("KETA_UPDATE_OPENAPI").is_ok() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: run `KETA_UPDATE_OPENAPI=1 cargo test -p keta-testkit committed_openapi` and commit it"
    );
    // Every route the API serves is documented.
    let doc: Value = serde_json::from_str(&generated).unwrap();
    for p in [
        "/api/v1/patients",
        "/api/v1/sessions/{id}/vitals",
        "/api/v1/patients/{id}/outcomes",
        "/api/v1/alerts/{id}/acknowledge",
        "/healthz",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} is not documented");
    }
}

#[tokio::test]
async fn health_and_openapi_are_served() {
    let (app, _db, _, _) = app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
    let r = app.get("/api/openapi.json").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["info"]["title"], "Keta API");
}

#[tokio::test]
async fn patients_round_trip_over_http() {
    let (app, db, a, _) = app().await;
    let r = app.post_json("/api/v1/patients", &patient_body(a.0, "A-0100")).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store", "PHI is never cached");
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    let got: Value = app.get(&format!("/api/v1/patients/{id}")).await.json().await.unwrap();
    assert_eq!(got["mrn"], "A-0100");
    let list: Value = app.get("/api/v1/patients?search=quinn").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // A patient of a site the prescriber is not assigned to is not found.
    let b = site(&db.store, "B").await;
    let other = patient(&db.store, b, "B-0100").await;
    let r = app.get(&format!("/api/v1/patients/{}", other.0)).await;
    assert_eq!(r.status(), 404);
    let list: Value = app.get("/api/v1/patients").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "the list is scoped by site too");
}

#[tokio::test]
async fn bad_input_is_a_problem_naming_the_field() {
    let (app, _db, a, _) = app().await;

    let mut body = patient_body(a.0, "A-0200");
    body["favourite_colour"] = json!("blue");
    let r = app.post_json("/api/v1/patients", &body).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains("favourite_colour"), "{p}");

    let mut body = patient_body(a.0, "A-0200");
    body["sex"] = json!("robot");
    let p: Value = app.post_json("/api/v1/patients", &body).await.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "sex", "{p}");

    let mut body = patient_body(a.0, "A-0200");
    body["date_of_birth"] = json!("2099-01-01");
    body["diagnoses"] = json!(["F33.2", "depressed"]);
    let p: Value = app.post_json("/api/v1/patients", &body).await.json().await.unwrap();
    let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["date_of_birth", "diagnoses[1]"], "{p}");

    let list: Value = app.get("/api/v1/patients").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0, "nothing was stored");

    let r = app.get("/api/v1/no-such-thing").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app.get("/api/v1/patients?limit=many").await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_session_over_http_raises_and_acknowledges_an_alert() {
    let (app, db, a, _) = app().await;
    let p = patient(&db.store, a, "A-0300").await;
    let course: Value = app
        .post_json(&format!("/api/v1/patients/{}/courses", p.0), &json!({"route": "intranasal_esketamine", "phase": "induction", "planned_sessions": 8, "start_date": "2026-11-02"}))
        .await
        .json()
        .await
        .unwrap();
    let sess: Value = app
        .post_json(
            &format!("/api/v1/courses/{}/sessions", course["id"]),
            &json!({"scheduled_for": "2026-11-02T14:00:00Z"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let sid = sess["id"].as_i64().unwrap();
    for action in ["check_in", "start_pre_dose_checks"] {
        let r = app.post_json(&format!("/api/v1/sessions/{sid}/actions"), &json!({"action": action})).await;
        assert_eq!(r.status(), 200, "{action}");
    }
    let r = app
        .post_json(
            &format!("/api/v1/sessions/{sid}/vitals"),
            &json!({"systolic_mmhg": 152, "diastolic_mmhg": 94, "heart_rate_bpm": 80}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["alerts"][0]["rule"], "pre_dose_bp_above_label_guide", "{rec}");
    let alert_id = rec["alerts"][0]["id"].as_i64().unwrap();

    let open: Value = app.get(&format!("/api/v1/alerts?site_id={}", a.0)).await.json().await.unwrap();
    assert_eq!(open.as_array().unwrap().len(), 1);
    let r = app
        .post_json(&format!("/api/v1/alerts/{alert_id}/acknowledge"), &json!({"note": "prescriber reviewed, proceed"}))
        .await;
    let acked: Value = r.json().await.unwrap();
    assert_eq!(acked["acknowledged_by"], "prescriber.test");
    let open: Value = app.get(&format!("/api/v1/alerts?site_id={}", a.0)).await.json().await.unwrap();
    assert_eq!(open.as_array().unwrap().len(), 0);

    // Skipping a step is a conflict, not a silent change.
    let r = app.post_json(&format!("/api/v1/sessions/{sid}/actions"), &json!({"action": "discharge"})).await;
    assert_eq!(r.status(), 409);
    let bad = app
        .post_json(&format!("/api/v1/sessions/{sid}/vitals"), &json!({"systolic_mmhg": 80, "diastolic_mmhg": 120}))
        .await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn scoring_endpoint_scores_without_storing() {
    let (app, _db, _, _) = app().await;
    let r = app.post_json("/api/v1/instruments/phq9/score", &json!({"answers": [1, 2, 1, 0, 2, 1, 1, 0, 1]})).await;
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["total"], 9);
    assert_eq!(s["severity"]["code"], "mild");
    assert_eq!(s["safety_flags"][0]["item"], 9);
    let r = app.post_json("/api/v1/instruments/phq9/score", &json!({"answers": [1, 2, 1, 0, 2, 1, 1, 0, 4]})).await;
    assert_eq!(r.status(), 422);
    let r = app.get("/api/v1/instruments/nope").await;
    assert_eq!(r.status(), 404);
}

/// Every error the real router answers is problem+json with the security headers,
/// whoever produced it (axum's 405, tower-http's 413, the JSON extractor's 415, throttling's 429).
#[tokio::test]
async fn every_error_status_is_problem_json_with_the_security_headers() {
    let (app, _db, _, staff) = app().await;
    let check = |r: &reqwest::Response, want: u16| {
        assert_eq!(r.status().as_u16(), want);
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{want}");
        assert!(r.headers().contains_key("content-security-policy"), "{want}: security headers stay on errors");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{want}");
    };
    let r = app.get("/api/v1/no-such-thing").await;
    check(&r, 404);
    let r = app.request(reqwest::Method::DELETE, "/api/v1/patients").send().await.unwrap();
    check(&r, 405);
    assert!(r.headers()["allow"].to_str().unwrap().contains("GET"));
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], 405);

    let big = "x".repeat(keta_web::BODY_LIMIT_BYTES + 1);
    let r = app
        .request(reqwest::Method::POST, "/api/v1/patients")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    check(&r, 413);
    let r = app
        .request(reqwest::Method::POST, "/api/v1/patients")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    check(&r, 415);
    let r = app
        .request(reqwest::Method::POST, "/api/v1/patients")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    check(&r, 400);

    // Throttled sign-in names when to come back, in seconds (RFC 9110 Retry-After).
    app.logout_locally();
    let wrong = json!({"username": staff[2].username, "password": "not the password", "code": "000000"});
    let mut throttled = None;
    for _ in 0..=keta_web::auth::FREE_FAILURES + 1 {
        let r = app.post_json("/api/v1/auth/login", &wrong).await;
        if r.status() == 429 {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.status(), 401);
    }
    let r = throttled.expect("repeated failures are throttled");
    check(&r, 429);
    let secs: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(secs >= 1, "{secs}");
}

/// The committed document is a contract a client can rely on: no query parameter
/// declared in the path, errors under application/problem+json, and the bounds the domain
/// enforces stated in the schemas.
#[tokio::test]
async fn the_openapi_document_declares_parameters_errors_and_ranges_as_the_server_applies_them() {
    let doc: Value = serde_json::from_str(&keta_web::openapi_json()).unwrap();
    let ranges = keta_domain::plausible::ranges();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = p["name"].as_str().unwrap();
                    assert!(path.contains(&format!("{{{name}}}")), "{method} {path}: `{name}` is not in the path");
                }
            }
            for (code, resp) in op["responses"].as_object().unwrap() {
                if (code.starts_with('4') || code.starts_with('5'))
                    && let Some(content) = resp["content"].as_object()
                    && content.values().any(|c| c["schema"]["$ref"] == "#/components/schemas/Problem")
                {
                    assert!(
                        content.contains_key("application/problem+json"),
                        "{method} {path} {code}: errors are sent as application/problem+json"
                    );
                }
            }
            if op.get("requestBody").is_some() {
                for code in ["400", "413", "415", "422"] {
                    assert!(op["responses"].get(code).is_some(), "{method} {path}: {code} is undocumented");
                }
            }
        }
    }
    let s = &doc["components"]["schemas"];
    assert_eq!(s["NewSession"]["properties"]["planned_dose_mg"]["maximum"], ranges.planned_dose_max().0);
    assert_eq!(s["NewWeight"]["properties"]["weight_kg"]["minimum"], ranges.body_weight.min_kg);
    assert_eq!(s["NewWeight"]["properties"]["weight_kg"]["maximum"], ranges.body_weight.max_kg);
    assert_eq!(s["NewPatient"]["properties"]["diagnoses"]["maxItems"], ranges.lists.diagnoses_max);
    assert_eq!(s["NewSiteWithChairs"]["properties"]["chairs"]["maxItems"], ranges.lists.chairs_max);
    let limit = doc["paths"]["/api/v1/patients"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()
        .clone();
    assert_eq!(limit["in"], "query");
    assert_eq!(limit["schema"]["maximum"], ranges.lists.page_limit_max);
    // Records that flatten an input type carry their own fields (vitals records, trials).
    let vitals = serde_json::to_string(&s["VitalsRecord"]).unwrap();
    assert!(!vitals.contains("\"additionalProperties\":false"), "{vitals}");
    assert!(s["Protocol"]["properties"].get("origin").is_some(), "protocols carry their origin");
    assert!(s["InstrumentCompletedBy"]["enum"].as_array().unwrap().contains(&json!("clinician")));
}
