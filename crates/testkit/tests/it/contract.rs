//! Probes of the API's edges, each a regression test: far dates, absurd doses, a session on a finished
//! course, negative pages, 10,000 diagnoses, an empty chair name are refused with a problem
//! naming the field and change nothing; a bad record no longer makes the check-in sweep fail
//! for everyone, and a panic in a storage job is an internal error, not "shutting down".

use serde_json::{Value, json};
use time::Duration;

use keta_domain::access::Role;
use keta_domain::course::Route;
use keta_domain::session::NewSession;
use keta_store::{StoreError, params};
use keta_testkit::{ManualClock, TestApp, TestDb, seed_staff, spawn_app};

use crate::checkins::{clinic, sign_in};
use crate::fixtures::*;

async fn signed_in_prescriber() -> (TestApp, TestDb, i64) {
    let db = TestDb::sqlite(ManualClock::at(T0).as_clock()).await;
    let a = site(&db.store, "A").await;
    let staff = seed_staff(&db.store, &[a]).await;
    let app = spawn_app(db.store.clone()).await;
    assert_eq!(app.login(&staff[1], T0).await.status(), 200, "prescriber signs in");
    (app, db, a.0)
}

/// Asserts a 422 problem naming `field`.
async fn refused(r: reqwest::Response, field: &str) -> Value {
    assert_eq!(r.status(), 422, "{field}");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert!(p["errors"].as_array().unwrap().iter().any(|e| e["field"] == field), "the problem names {field}: {p}");
    p
}

async fn count(db: &TestDb, table: &'static str) -> i64 {
    keta_store::testing::read(&db.store, move |c| {
        c.query_opt(&format!("SELECT count(*) AS n FROM {table}"), &[])?.unwrap().i64("n")
    })
    .await
    .unwrap()
}

fn patient_body(site: i64, mrn: &str, born: &str) -> Value {
    json!({
        "site_id": site, "mrn": mrn, "given_name": "Avery", "family_name": "Quinn", "date_of_birth": born,
        "sex": "male", "indication": "depression", "diagnoses": ["F33.2"]
    })
}

#[tokio::test]
async fn far_dates_absurd_doses_long_lists_and_negative_pages_are_refused_and_change_nothing() {
    let (app, db, site) = signed_in_prescriber().await;
    for born in ["0001-01-01", "9999-12-31", "1899-12-31"] {
        let p =
            refused(app.post_json("/api/v1/patients", &patient_body(site, "A-1", born)).await, "date_of_birth").await;
        assert!(p["detail"].as_str().unwrap().contains("birth"), "{p}");
    }
    // Year 0000 does not even parse as a date: still a 4xx problem naming the field, never stored.
    let r = app.post_json("/api/v1/patients", &patient_body(site, "A-1", "0000-01-01")).await;
    assert!(r.status() == 422 || r.status() == 400, "{}", r.status());
    let mut many = patient_body(site, "A-1", "1980-01-01");
    many["diagnoses"] = json!(vec!["F33.2"; 10_000]);
    let p = refused(app.post_json("/api/v1/patients", &many).await, "diagnoses").await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 1, "one error, not 10,000");
    assert_eq!(count(&db, "patients").await, 0, "nothing was stored");

    let r = app.post_json("/api/v1/patients", &patient_body(site, "A-1", "1980-01-01")).await;
    assert_eq!(r.status(), 201);
    let patient = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let start = T0.date().to_string();
    let r = app
        .post_json(
            &format!("/api/v1/patients/{patient}/courses"),
            &json!({"route": "iv_racemic", "phase": "induction", "planned_sessions": 6, "start_date": "9999-12-31"}),
        )
        .await;
    refused(r, "start_date").await;
    let r = app
        .post_json(
            &format!("/api/v1/patients/{patient}/courses"),
            &json!({"route": "iv_racemic", "phase": "induction", "planned_sessions": 6, "start_date": start}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let course = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let sessions = format!("/api/v1/courses/{course}/sessions");
    for at in ["9999-12-31T09:00:00Z", "0001-01-01T09:00:00Z"] {
        refused(app.post_json(&sessions, &json!({"scheduled_for": at})).await, "scheduled_for").await;
    }
    let soon = (T0 + Duration::days(1)).format(&time::format_description::well_known::Rfc3339).unwrap();
    for dose in [1e9, 0.0, -5.0] {
        refused(
            app.post_json(&sessions, &json!({"scheduled_for": soon, "planned_dose_mg": dose})).await,
            "planned_dose_mg",
        )
        .await;
    }
    assert_eq!(count(&db, "sessions").await, 0, "no session was stored");
    let r = app.post_json(&sessions, &json!({"scheduled_for": soon, "planned_dose_mg": 35.0})).await;
    assert_eq!(r.status(), 201, "a plausible session is still accepted");

    refused(app.get("/api/v1/patients?limit=-1").await, "limit").await;
    refused(app.get("/api/v1/patients?offset=-1").await, "offset").await;
    refused(app.get("/api/v1/patients?limit=501").await, "limit").await;
    refused(app.get("/api/v1/alerts?limit=0").await, "limit").await;
    refused(app.get("/api/v1/ledger/entries?limit=-3").await, "limit").await;
}

#[tokio::test]
async fn a_site_with_an_empty_or_repeated_chair_name_is_refused() {
    let db = TestDb::sqlite(ManualClock::at(T0).as_clock()).await;
    let a = site(&db.store, "A").await;
    let staff = seed_staff(&db.store, &[a]).await;
    let app = spawn_app(db.store.clone()).await;
    assert_eq!(app.login(&staff[0], T0).await.status(), 200, "administrator signs in");
    let body = |chairs: Value| json!({"code": "B-1", "name": "North", "time_zone": "UTC", "crisis_line": "988", "chairs": chairs});
    let before = count(&db, "sites").await;
    refused(app.post_json("/api/v1/sites", &body(json!(["Chair 1", "  "]))).await, "chairs[1]").await;
    refused(app.post_json("/api/v1/sites", &body(json!(["Chair 1", "Chair 1"]))).await, "chairs[1]").await;
    refused(app.post_json("/api/v1/sites", &body(json!(vec!["x"; 101]))).await, "chairs").await;
    assert_eq!(count(&db, "sites").await, before, "nothing was stored");
    assert_eq!(app.post_json("/api/v1/sites", &body(json!(["Chair 1", "Chair 2"]))).await.status(), 201);
}

#[tokio::test]
async fn a_session_on_a_completed_or_stopped_course_is_refused() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let dr = prescriber(&[c.site]);
        let at = NewSession { scheduled_for: T0 + Duration::days(1), chair_id: None, planned_dose_mg: None };
        for status in ["completed", "stopped"] {
            let course = c.course.0;
            keta_store::testing::write(s, move |x| {
                x.execute("UPDATE courses SET status = $1 WHERE id = $2", params![status, course])
            })
            .await
            .unwrap();
            let e = s.create_session(&dr, c.course, at.clone()).await.unwrap_err();
            assert!(
                matches!(&e, StoreError::Domain(keta_domain::DomainError::Conflict(m)) if m.contains(status)),
                "{status} on {:?}: {e}",
                db.kind
            );
        }
        assert_eq!(count(&db, "sessions").await, 0, "{:?}", db.kind);
    }
}

#[tokio::test]
async fn a_panic_inside_a_storage_job_is_an_internal_error_and_the_store_carries_on() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let e = keta_store::testing::write(s, |_| -> keta_store::Result<()> { panic!("a bug in a storage job") })
            .await
            .unwrap_err();
        assert!(matches!(&e, StoreError::Backend(m) if m.contains("panicked")), "{:?}: {e}", db.kind);
        assert!(!matches!(e, StoreError::Closed), "not reported as shutting down");
        let e = keta_store::testing::read(s, |_| -> keta_store::Result<()> { panic!("a bug in a read") })
            .await
            .unwrap_err();
        assert!(matches!(&e, StoreError::Backend(m) if m.contains("panicked")), "{:?}: {e}", db.kind);
        // Every reader connection survives: more reads than the pool holds still work.
        for _ in 0..16 {
            let _ = keta_store::testing::read(s, |_| -> keta_store::Result<()> { panic!("again") }).await;
        }
        site(s, "Z").await;
        assert!(count(&db, "sites").await >= 1, "{:?}", db.kind);
    }
}

#[tokio::test]
async fn a_session_in_year_9999_is_ignored_and_a_corrupt_record_stops_only_its_own_patient() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        // One patient with an ordinary session 12 hours ahead: their PHQ-9 is due now.
        let fine = clinic(s, Route::IvRacemic, T0.date(), &[T0 + Duration::hours(12)]).await;
        let dr = prescriber(&[fine.site]);
        // One whose session was stored in year 9999 before the range check existed: it made
        // every sweep panic for them.
        let far_patient = patient(s, fine.site, "FAR-1").await;
        let far_course = s.create_course(&dr, far_patient, course(Route::IvRacemic)).await.unwrap().id;
        let far = time::macros::datetime!(9999-12-31 09:00 UTC).unix_timestamp() * 1000;
        // And one whose course row is corrupt (an unknown status): reading it fails.
        let bad_patient = patient(s, fine.site, "BAD-1").await;
        let bad_course = s.create_course(&dr, bad_patient, course(Route::IvRacemic)).await.unwrap().id;
        s.create_session(
            &dr,
            bad_course,
            NewSession { scheduled_for: T0 + Duration::hours(12), chair_id: None, planned_dose_mg: None },
        )
        .await
        .unwrap();
        let (fc, fp, site_id, bc) = (far_course.0, far_patient.0, fine.site.0, bad_course.0);
        keta_store::testing::write(s, move |c| {
            c.execute(
                "INSERT INTO sessions (course_id, patient_id, site_id, route, sequence, scheduled_for, state)
                 VALUES ($1, $2, $3, 'iv_racemic', 1, $4, 'scheduled')",
                params![fc, fp, site_id, far],
            )?;
            c.execute("UPDATE courses SET status = 'unheard-of' WHERE id = $1", params![bc])
        })
        .await
        .unwrap();

        let r = s.sweep_checkins().await.expect("the sweep itself succeeds");
        assert!(r.issued.iter().any(|l| l.link.patient_id == fine.patient), "the others are served: {:?}", db.kind);
        assert!(r.issued.iter().all(|l| l.link.patient_id != far_patient), "{:?}", db.kind);
        assert_eq!(r.failed, 1, "only the corrupt record's patient is skipped (and named in the log): {:?}", db.kind);
        // The next sweep tries again and still serves everyone else.
        clock.advance(Duration::minutes(5));
        assert_eq!(s.sweep_checkins().await.expect("again").failed, 1, "{:?}", db.kind);
    }
}

/// Regressions found by the fuzzer once the branches met: a settings body sent as an array of
/// its fields (`[null, null]`) was read positionally and cleared the settings; an unknown
/// method carrying an `Idempotency-Key` got 422 instead of 405; re-authentication throttled
/// without saying when to try again.
#[tokio::test]
async fn an_array_body_an_unknown_method_with_a_key_and_a_throttled_reauth_get_the_right_answer() {
    let (app, _db, site) = signed_in_prescriber().await;
    let path = format!("/api/v1/sites/{site}/discharge-settings");
    let set = json!({"vitals_within_minutes": 15, "dissociation": {"instrument": "cadss6", "resolved_at_or_below": 2}});
    assert_eq!(app.put_json(&path, &set).await.status(), 200);
    refused(app.put_json(&path, &json!([null, null])).await, "body").await;
    let now: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(now["vitals_within_minutes"], 15, "the refused array changed nothing: {now}");

    for method in ["PATCH", "TRACE"] {
        for _ in 0..2 {
            let r = app
                .request(method.parse().unwrap(), "/api/v1/patients")
                .header("idempotency-key", "same-key")
                .json(&json!({"x": 1}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 405, "{method}");
        }
    }

    let mut last = None;
    for _ in 0..20 {
        let r = app.post_json("/api/v1/auth/reauth", &json!({"password": "not the password"})).await;
        if r.status() == 429 {
            last = Some(r);
            break;
        }
        assert_eq!(r.status(), 401);
    }
    let r = last.expect("wrong passwords are throttled");
    let secs: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(secs >= 1, "Retry-After says when to try again");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

/// Found by the fuzzer: a unit strength of 9.9e307 mg was stored and its total (× 22 units)
/// overflowed to infinity, sent as `null` where the schema promises a number. Every amount,
/// volume, rate and time typed in is bounded by `data/rules/plausible-ranges.toml`, and what
/// is refused changes nothing; a pump resolution finer than a float can count still gives
/// finite answers, and no simulation sends a non-finite value.
#[tokio::test]
async fn amounts_rates_and_times_beyond_their_plausible_range_are_refused_and_change_nothing() {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let c = clinic(&db.store, Route::OralRacemic, T0.date(), &[T0 + Duration::hours(1)]).await;
    let app = spawn_app(db.store.clone()).await;
    sign_in(&app, &clock, c.login_as(Role::Nurse)).await;

    let path = format!("/api/v1/courses/{}/home-dispenses", c.course.0);
    for mg in [9.889107423858217e307, 100_001.0, -1.0, 0.0] {
        let p = refused(app.post_json(&path, &json!({"units": 22, "unit_strength_mg": mg})).await, "unit_strength_mg")
            .await;
        assert!(p["detail"].as_str().unwrap().contains("mg"), "the problem says the unit: {p}");
    }
    assert_eq!(count(&db, "home_dispenses").await, 0, "nothing was dispensed");
    let r = app.post_json(&path, &json!({"units": 22, "unit_strength_mg": 100.0})).await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reconciliation"]["dispensed_mg"], 2200.0, "{body}");

    let calc = |extra: Value| {
        let mut b = json!({"weight_kg": 70, "dose": {"mg_per_kg": 0.5}, "bag": {"final_volume_including_drug_ml": 100}, "infusion_min": 40});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (extra, field) in [
        (json!({"dose": {"mg_per_kg": 1e308}}), "dose"),
        (json!({"dose": {"mg": 1e300}}), "dose"),
        (json!({"vial_mg_per_ml": 1e308}), "vial_mg_per_ml"),
        (json!({"bag": {"final_volume_including_drug_ml": 1e308}}), "bag.final_volume_including_drug_ml"),
        (json!({"pump": {"max_rate_ml_per_h": 1e308}}), "pump.max_rate_ml_per_h"),
        (json!({"weight_kg": 1e308}), "weight_kg"),
    ] {
        refused(app.post_json("/api/v1/dose/calculate", &calc(extra)).await, field).await;
    }
    let r = app
        .post_json(
            "/api/v1/dose/calculate",
            &calc(json!({"pump": {"rate_resolution_ml_per_h": 5e-324, "volume_resolution_ml": 5e-324}})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    assert_eq!(
        (out["dose_mg"].as_f64(), out["pump"]["rate_ml_per_h_to_set"].as_f64()),
        (Some(35.0), Some(150.0)),
        "{out}"
    );

    let pk = |extra: Value| {
        let mut b = json!({"model": "domino", "weight_kg": 70, "regimen": "0.5 mg/kg over 40 min", "until_min": 120, "step_min": 1});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (extra, field) in [
        (json!({"weight_kg": 1e308}), "weight_kg"),
        (json!({"until_min": 1e308, "step_min": 1e307}), "until_min"),
        (json!({"ke0_per_min": 1e308}), "ke0_per_min"),
        (json!({"age_years": 1e308}), "age_years"),
    ] {
        refused(app.post_json("/api/v1/pk/simulate", &pk(extra)).await, field).await;
    }
    let r = app.post_json("/api/v1/pk/simulate", &pk(json!({"regimen": "1e307 mg bolus"}))).await;
    if r.status() == 200 {
        let out: Value = r.json().await.unwrap();
        assert!(out["plasma_ng_ml"].as_array().unwrap().iter().all(Value::is_number), "never null: {out}");
    } else {
        refused(r, "regimen").await;
    }
}
