//! Accounts, sessions, CSRF, headers and the authorisation matrix
//! (security-reference §2.1, §2.2), against the real server.

use keta_domain::access::{Role, allowed};
use keta_store::Actor;
use keta_testkit::{ManualClock, StaffLogin, TEST_PASSWORD, TestApp, TestDb, seed_staff, spawn_app};
use keta_web::access_rules::{API_RULES, Access};
use serde_json::{Value, json};

use crate::fixtures::*;

struct World {
    app: TestApp,
    db: TestDb,
    clock: ManualClock,
    staff: Vec<StaffLogin>,
}

async fn world() -> World {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let a = site(&db.store, "A").await;
    let staff = seed_staff(&db.store, &[a]).await;
    let app = spawn_app(db.store.clone()).await;
    World { app, db, clock, staff }
}

fn by_role(staff: &[StaffLogin], role: Role) -> &StaffLogin {
    staff.iter().find(|s| s.role == role).unwrap()
}

/// Anonymous, then one caller per role.
const CALLERS: [Option<Role>; 7] = [
    None,
    Some(Role::Administrator),
    Some(Role::Prescriber),
    Some(Role::Nurse),
    Some(Role::FrontDesk),
    Some(Role::Auditor),
    Some(Role::Researcher),
];

/// Signs the test client in as `role`, or leaves it signed out for `None`. Each sign-in
/// moves the clock to a fresh TOTP step, since a code is accepted once.
async fn act_as(w: &World, role: Option<Role>) {
    w.app.logout_locally();
    if let Some(r) = role {
        w.clock.advance(time::Duration::seconds(31));
        assert_eq!(w.app.login(by_role(&w.staff, r), w.clock.now()).await.status(), 200, "{r:?} signs in");
    }
}

/// What the access table promises a caller.
fn expected_access(access: &Access, role: Option<Role>) -> bool {
    match (access, role) {
        (Access::Public, _) => true,
        (_, None) => false,
        (Access::SignedIn, Some(_)) => true,
        (Access::Needs(p), Some(r)) => allowed(r, *p),
    }
}

async fn audit_actions(db: &TestDb) -> Vec<String> {
    keta_store::testing::read(&db.store, |c| {
        c.query("SELECT action FROM audit_log ORDER BY seq", &[])?.iter().map(|r| r.text("action")).collect()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_fresh_install_has_no_accounts_and_the_first_must_be_an_administrator() {
    let db = TestDb::sqlite(ManualClock::at(T0).as_clock()).await;
    assert_eq!(db.store.user_count().await.unwrap(), 0);
    let app = spawn_app(db.store.clone()).await;
    let r = app.get("/login").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/setup");
    let nurse_first = db
        .store
        .create_user(
            &Actor::system(),
            keta_store::accounts::NewUser {
                username: "first".into(),
                display_name: "First".into(),
                role: Role::Nurse,
                password: TEST_PASSWORD.into(),
                site_ids: vec![],
                can_break_glass: false,
                totp_secret: None,
            },
        )
        .await;
    assert!(nurse_first.unwrap_err().to_string().contains("administrator"));
    // Stored password hashes meet AC-8.
    seed_staff(&db.store, &[]).await;
    let hashes: Vec<String> = keta_store::testing::read(&db.store, |c| {
        c.query("SELECT password_hash FROM users", &[])?.iter().map(|r| r.text("password_hash")).collect()
    })
    .await
    .unwrap();
    assert!(hashes.iter().all(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$")), "{hashes:?}");
    // User names are unique.
    let dup = seed_staff(&db.store, &[]);
    assert!(
        std::panic::AssertUnwindSafe(dup).await_catch().await,
        "a second account with the same user name is refused"
    );
}

trait AwaitCatch {
    async fn await_catch(self) -> bool;
}
impl<F: std::future::Future> AwaitCatch for std::panic::AssertUnwindSafe<F> {
    async fn await_catch(self) -> bool {
        use futures::FutureExt;
        self.catch_unwind().await.is_err()
    }
}

#[tokio::test]
async fn sign_in_sets_a_hardened_cookie_and_failures_do_not_enumerate_users() {
    let w = world().await;
    let nurse = by_role(&w.staff, Role::Nurse);
    let code = keta_store::credentials::totp_at_step(&nurse.totp_secret, T0.unix_timestamp() / 30).unwrap();
    let r = w
        .app
        .post_json("/api/v1/auth/login", &json!({"username": nurse.username, "password": nurse.password, "code": code}))
        .await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["__Host-keta=", "Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    // The same code cannot be used twice.
    let again = w
        .app
        .post_json("/api/v1/auth/login", &json!({"username": nurse.username, "password": nurse.password, "code": code}))
        .await;
    assert_eq!(again.status(), 401);

    let wrong_pw: Value = w
        .app
        .post_json(
            "/api/v1/auth/login",
            &json!({"username": nurse.username, "password": "not the password", "code": "000000"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let no_user: Value = w
        .app
        .post_json(
            "/api/v1/auth/login",
            &json!({"username": "nobody.here", "password": "not the password", "code": "000000"}),
        )
        .await
        .json()
        .await
        .unwrap();
    // Each answer names its own request (for support); everything else must be identical.
    let without_request_id = |mut v: Value| {
        assert!(v["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
        v.as_object_mut().expect("a problem body").remove("request_id");
        v
    };
    assert_eq!(
        without_request_id(wrong_pw),
        without_request_id(no_user),
        "the same answer for a wrong password and an unknown user"
    );
    let actions = audit_actions(&w.db).await;
    assert!(actions.iter().filter(|a| *a == "login_fail").count() >= 3, "{actions:?}");
    assert!(actions.contains(&"login_ok".to_string()));
}

#[tokio::test]
async fn repeated_failures_are_throttled_without_locking_the_account_forever() {
    let w = world().await;
    let nurse = by_role(&w.staff, Role::Nurse);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = w
            .app
            .post_json(
                "/api/v1/auth/login",
                &json!({"username": nurse.username, "password": "wrong wrong wrong", "code": "000000"}),
            )
            .await;
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // The throttle counts on the store's clock: the right password is refused until the delay
    // has passed, then works.
    assert_eq!(w.app.login(nurse, T0).await.status(), 429, "still cooling off");
    w.clock.advance(time::Duration::seconds(2));
    assert_eq!(w.app.login(nurse, w.clock.now()).await.status(), 200);
}

/// Wrong passwords for `who`, sent to `apps` in turn, until one answers 429: how many were
/// refused as wrong (401) before that.
async fn failures_before_throttled(apps: &[TestApp], who: &StaffLogin) -> u32 {
    let wrong = json!({"username": who.username, "password": "wrong wrong wrong", "code": "000000"});
    for n in 0..=keta_web::auth::FREE_FAILURES * 4 {
        let r = apps[n as usize % apps.len()].post_json("/api/v1/auth/login", &wrong).await;
        match r.status().as_u16() {
            401 => {}
            429 => return n,
            s => panic!("unexpected {s} at attempt {}", n + 1),
        }
    }
    panic!("never throttled after {} failures spread over {} servers", keta_web::auth::FREE_FAILURES * 4, apps.len())
}

/// Several servers on one database (as several `keta serve` instances behind a balancer) keep
/// one count per account: failures spread over three are throttled at the same count as on one.
/// Before the counts moved to the database each server kept its own, so three servers allowed
/// three times the failures.
#[tokio::test]
async fn failures_spread_over_several_servers_are_throttled_at_the_same_count_as_on_one() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let staff = seed_staff(&db.store, &[a]).await;
        let mut servers = Vec::new();
        for _ in 0..3 {
            servers.push(spawn_app(db.store.clone()).await);
        }
        let one = failures_before_throttled(&servers[..1], by_role(&staff, Role::Nurse)).await;
        let three = failures_before_throttled(&servers, by_role(&staff, Role::FrontDesk)).await;
        assert_eq!(one, keta_web::auth::FREE_FAILURES, "{:?}", db.store.backend());
        assert_eq!(three, one, "three servers allow what one does ({:?})", db.store.backend());
        // A success through any server clears the count for all of them.
        clock.advance(time::Duration::seconds(2));
        let nurse = by_role(&staff, Role::Nurse);
        assert_eq!(servers[2].login(nurse, clock.now()).await.status(), 200);
        assert_eq!(failures_before_throttled(&servers[..2], nurse).await, keta_web::auth::FREE_FAILURES);
    }
}

#[tokio::test]
async fn sessions_end_at_logout_idle_and_absolute_limits() {
    let w = world().await;
    let nurse = by_role(&w.staff, Role::Nurse);
    assert_eq!(w.app.login(nurse, T0).await.status(), 200);
    assert_eq!(w.app.get("/api/v1/patients").await.status(), 200);

    // Idle: 15 minutes without a request ends the session.
    w.clock.advance(time::Duration::minutes(15));
    let r = w.app.get("/api/v1/patients").await;
    assert_eq!(r.status(), 401);
    assert!(audit_actions(&w.db).await.contains(&"timeout".to_string()));

    // Absolute: 12 hours even while active.
    w.clock.advance(time::Duration::minutes(1));
    let prescriber = by_role(&w.staff, Role::Prescriber);
    assert_eq!(w.app.login(prescriber, w.clock.now()).await.status(), 200);
    for _ in 0..(12 * 6 - 1) {
        w.clock.advance(time::Duration::minutes(10));
        assert_eq!(w.app.get("/api/v1/patients").await.status(), 200);
    }
    w.clock.advance(time::Duration::minutes(10));
    assert_eq!(w.app.get("/api/v1/patients").await.status(), 401, "12 h absolute limit");

    // Logout: replaying the cookie afterwards is refused.
    w.clock.advance(time::Duration::minutes(1));
    assert_eq!(w.app.login(nurse, w.clock.now()).await.status(), 200);
    let cookie = w.app.cookie().unwrap();
    assert_eq!(w.app.request(reqwest::Method::POST, "/api/v1/auth/logout").send().await.unwrap().status(), 204);
    let replay = w
        .app
        .client
        .get(w.app.url("/api/v1/patients"))
        .header("cookie", format!("__Host-keta={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
}

#[tokio::test]
async fn a_password_alone_does_not_sign_in_and_disabling_a_user_ends_their_session() {
    let w = world().await;
    let nurse = by_role(&w.staff, Role::Nurse);
    // Password accepted but no second factor: the token cannot reach patient data.
    let token = w.db.store.begin_sign_in(&nurse.username, &nurse.password).await.unwrap().unwrap();
    let r = w
        .app
        .client
        .get(w.app.url("/api/v1/patients"))
        .header("cookie", format!("__Host-keta={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A cookie the attacker planted before sign-in never becomes valid (fixation).
    let planted = "ab".repeat(32);
    let r = w
        .app
        .client
        .get(w.app.url("/api/v1/patients"))
        .header("cookie", format!("__Host-keta={planted}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    assert_eq!(w.app.login(nurse, T0).await.status(), 200);
    let users: Vec<keta_store::accounts::User> = w.db.store.list_users(&Actor::system()).await.unwrap();
    let id = users.iter().find(|u| u.username == nurse.username).unwrap().id;
    w.db.store.set_user_disabled(&Actor::system(), id, true).await.unwrap();
    assert_eq!(w.app.get("/api/v1/patients").await.status(), 401);
}

#[tokio::test]
async fn state_changes_need_our_origin_the_csrf_token_and_json() {
    let w = world().await;
    let a = keta_domain::ids::SiteId(1);
    assert_eq!(w.app.login(by_role(&w.staff, Role::Prescriber), T0).await.status(), 200);
    let cookie = w.app.cookie().unwrap();
    let body = json!({"site_id": a.0, "mrn": "X-1", "given_name": "A", "family_name": "B", "date_of_birth": "1990-01-01", "sex": "female", "indication": "depression"});
    // No token.
    let r = w
        .app
        .client
        .post(w.app.url("/api/v1/patients"))
        .header("cookie", format!("__Host-keta={cookie}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A foreign origin, even with the token.
    let r = w
        .app
        .request(reqwest::Method::POST, "/api/v1/patients")
        .header("origin", "https://evil.test")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Not JSON.
    let r = w
        .app
        .request(reqwest::Method::POST, "/api/v1/patients")
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // A GET on a write-only route.
    assert_eq!(w.app.get("/api/v1/sessions/1/actions").await.status(), 405);
    let list: Value = w.app.get("/api/v1/patients").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0, "nothing was created");
    assert_eq!(w.app.post_json("/api/v1/patients", &body).await.status(), 201, "with everything right it works");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let w = world().await;
    for path in ["/healthz", "/login", "/api/v1/patients", "/api/v1/nope", "/nope", "/api/v1/instruments"] {
        let r = w.app.get(path).await;
        let h = r.headers();
        let csp = h.get("content-security-policy").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        for d in ["object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "script-src 'self'"] {
            assert!(csp.contains(d), "{path}: CSP {csp:?} lacks {d}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
}

#[tokio::test]
async fn break_glass_needs_the_group_a_reason_and_expires() {
    let w = world().await;
    let b = site(&w.db.store, "B").await;
    let p = patient(&w.db.store, b, "B-0001").await;
    let users = w.db.store.list_users(&Actor::system()).await.unwrap();
    let signed_in = |role: Role| {
        let u = users.iter().find(|u| u.role == role).unwrap();
        Actor {
            name: u.username.clone(),
            scope: keta_store::SiteScope::Sites(u.site_ids.clone()),
            role: Some(role),
            user_id: Some(u.id),
            break_glass: vec![],
        }
    };
    let nurse = signed_in(Role::Nurse);
    assert!(matches!(
        w.db.store.break_glass(&nurse, p, "patient collapsed in the lobby", 60).await,
        Err(keta_store::StoreError::Forbidden(_))
    ));
    let dr = signed_in(Role::Prescriber);
    assert!(w.db.store.patient_chart(&dr, p).await.is_err(), "outside the prescriber's sites");
    assert!(w.db.store.break_glass(&dr, p, "short", 60).await.is_err(), "a reason is required");
    w.db.store.break_glass(&dr, p, "patient collapsed in the lobby; needs history", 60).await.unwrap();
    assert!(audit_actions(&w.db).await.contains(&"break_glass".to_string()));
    // Through the API the grant now lets the prescriber open the chart...
    assert_eq!(w.app.login(by_role(&w.staff, Role::Prescriber), T0).await.status(), 200);
    assert_eq!(w.app.get(&format!("/api/v1/patients/{}/chart", p.0)).await.status(), 200);
    // ...until it expires.
    w.clock.advance(time::Duration::minutes(61));
    assert_eq!(w.app.login(by_role(&w.staff, Role::Prescriber), w.clock.now()).await.status(), 200);
    assert_eq!(w.app.get(&format!("/api/v1/patients/{}/chart", p.0)).await.status(), 404);
}

/// The authorisation matrix, generated from the OpenAPI document (every documented
/// route) and the access table: each route x method x role, plus anonymous.
#[tokio::test]
async fn authorisation_matrix_covers_every_route_and_role() {
    let w = world().await;
    let doc: Value = serde_json::from_str(&keta_web::openapi_json()).unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut missing = Vec::new();
    for (m, p) in &routes {
        if p.starts_with("/api/v1") && keta_web::access_rules::rule_for(&m.parse().unwrap(), p).is_none() {
            missing.push(format!("{m} {p}"));
        }
    }
    assert!(missing.is_empty(), "routes without an access rule in web/src/access_rules.rs: {missing:?}");
    assert!(API_RULES.len() >= routes.iter().filter(|r| r.1.starts_with("/api/v1")).count());

    let concrete = |p: &str| p.replace("{id}", "1").replace("{code}", "phq9").replace("{reading}", "1");
    let mut checked = 0;
    for role in CALLERS {
        act_as(&w, role).await;
        for (method, path, access) in API_RULES {
            if *path == "/api/v1/auth/logout" || *path == "/api/v1/auth/login" {
                continue; // They change the test's own session.
            }
            let resp = w.app.request(method.parse().unwrap(), &concrete(path)).json(&json!({})).send().await.unwrap();
            let status = resp.status().as_u16();
            let expect_ok = expected_access(access, role);
            if expect_ok {
                assert!(status != 401 && status != 403, "{role:?} {method} {path}: expected access, got {status}");
            } else {
                let want = if role.is_none() { 401 } else { 403 };
                assert_eq!(status, want, "{role:?} {method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked}");
}

#[tokio::test]
async fn reads_are_audited_and_the_auditor_can_report_on_them() {
    let w = world().await;
    let a = keta_domain::ids::SiteId(1);
    let p = patient(&w.db.store, a, "A-0042").await;
    assert_eq!(w.app.login(by_role(&w.staff, Role::Prescriber), T0).await.status(), 200);
    assert_eq!(w.app.get(&format!("/api/v1/patients/{}/chart", p.0)).await.status(), 200);

    act_as(&w, Some(Role::Auditor)).await;
    let log: Value = w.app.get(&format!("/api/v1/patients/{}/access-log", p.0)).await.json().await.unwrap();
    let reads: Vec<&Value> =
        log.as_array().unwrap().iter().filter(|e| e["action"] == "read" && e["actor"] == "prescriber.test").collect();
    assert_eq!(reads.len(), 1, "one chart view, one read entry: {log}");
    assert_eq!(reads[0]["object_type"], "chart");

    // Filter and sort on every allowed column; anything else is refused, not pasted into SQL.
    for sort in ["occurred_at", "actor", "action", "object_type", "patient_id", "seq"] {
        let r = w.app.get(&format!("/api/v1/audit?sort={sort}&dir=desc&user=prescriber.test")).await;
        assert_eq!(r.status(), 200, "{sort}");
        let rows: Value = r.json().await.unwrap();
        assert!(rows.as_array().unwrap().iter().all(|e| e["actor"] == "prescriber.test"));
    }
    for evil in ["seq;DROP TABLE audit_log", "1,extractvalue(1,concat(0x7e,version()))", "' OR 1=1--"] {
        let r = w.app.get(&format!("/api/v1/audit?sort={}", keta_web::auth::urlencode(evil))).await;
        assert!(r.status() == 400 || r.status() == 422, "{evil}: {}", r.status());
    }
    assert_eq!(
        w.app.get(&format!("/api/v1/patients/{}/chart", p.0)).await.status(),
        403,
        "auditors do not open charts"
    );
    let csv = w.app.get("/api/v1/audit?format=csv").await;
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let status: Value = w.app.get("/api/v1/audit/verify").await.json().await.unwrap();
    assert_eq!(status["intact"], true);
    // A nurse cannot read the audit trail.
    act_as(&w, Some(Role::Nurse)).await;
    assert_eq!(w.app.get("/api/v1/audit").await.status(), 403);
    let r = w.app.get("/api/v1/patients?search=%27%20OR%201%3D1--").await;
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        0,
        "an injection string is just a search term"
    );
}

/// Every HTML route in the UI router (read from its source, so a new route cannot be
/// missed) has an access rule, and each route x method x role behaves as the rule says.
#[tokio::test]
async fn page_authorisation_matrix_covers_every_screen_and_role() {
    use keta_web::access_rules::PAGE_RULES;
    let src = [include_str!("../../../web/src/ui/mod.rs"), include_str!("../../../web/src/ui/admin/mod.rs")].concat();
    let mut declared = Vec::new();
    for line in src.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
        let path = line.split('"').nth(1).unwrap().to_string();
        for (needle, method) in [("get(", "GET"), ("post(", "POST"), ("put(", "PUT"), ("delete(", "DELETE")] {
            if line.contains(needle) {
                declared.push((method, path.clone()));
            }
        }
    }
    assert!(declared.len() > 20, "{declared:?}");
    let missing: Vec<_> =
        declared.iter().filter(|(m, p)| !PAGE_RULES.iter().any(|(rm, rp, _)| rm == m && rp == p)).collect();
    assert!(missing.is_empty(), "screens without an access rule in web/src/access_rules.rs: {missing:?}");

    let w = world().await;
    let r = records(&w).await;
    // Every id in a path is a real record of the patient's, so a handler gets past parsing
    // to its own checks ({screen}: no pre-dose screen exists, so a real-looking number).
    let concrete = |path: &str| {
        path.replace("{id}", &r.patient.0.to_string())
            .replace("{alert}", "1")
            .replace("{instrument}", "phq9")
            .replace("{file}", "none.css")
            .replace("{link}", &r.link.to_string())
            .replace("{course}", &r.course.0.to_string())
            .replace("{screen}", "1")
            .replace("{token}", &r.token)
            .replace("{med}", &r.medication.to_string())
            .replace("{consent}", "1")
            .replace("{reading}", "1")
    };
    for role in CALLERS {
        act_as(&w, role).await;
        for (method, path, access) in PAGE_RULES {
            if *path == "/today/events" || *path == "/sessions/{id}/device-readings/events" {
                continue; // A stream that stays open.
            }
            assert!(!concrete(path).contains('{'), "fill the placeholder in {path}");
            let resp =
                w.app.request(method.parse().unwrap(), &concrete(path)).form(&[("x", "1")]).send().await.unwrap();
            let status = resp.status().as_u16();
            let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let expect_ok = expected_access(access, role);
            if expect_ok {
                assert!(
                    status != 401 && status != 403 && !location.starts_with("/login"),
                    "{role:?} {method} {path}: expected access, got {status} {location}"
                );
            } else if role.is_none() {
                assert!(
                    status == 303 && location.starts_with("/login"),
                    "{method} {path}: anonymous got {status} {location}"
                );
            } else {
                assert_eq!(status, 403, "{role:?} {method} {path}");
            }
            if path.starts_with("/kiosk/") && role.is_some() {
                act_as(&w, role).await; // The kiosk locked this session; sign in afresh.
            }
        }
    }
}

/// Records every kind of path id points at: a patient with a course, a session with a
/// note, a stopped session with its reason, vitals, and a check-in link.
struct Records {
    patient: keta_domain::ids::PatientId,
    course: keta_domain::ids::CourseId,
    session: keta_domain::ids::SessionId,
    link: i64,
    /// The link's token, for the patient's own page.
    token: String,
    /// One of the patient's recorded medications.
    medication: i64,
}

const SECRET_NOTE: &str = "Clinical note text only clinicians may read";
const SECRET_STOP: &str = "Stopped for a clinical reason only clinicians may read";
const SECRET_AE: &str = "Adverse event only clinicians may read";

async fn records(w: &World) -> Records {
    use keta_domain::session::{NewSession, SessionAction};
    let s = &w.db.store;
    let a = keta_domain::ids::SiteId(1);
    let p = patient(s, a, "A-0777").await;
    let dr = prescriber(&[a]);
    let c = s.create_course(&dr, p, course(keta_domain::course::Route::IvRacemic)).await.unwrap();
    let new =
        |h: i64| NewSession { scheduled_for: T0 + time::Duration::hours(h), chair_id: None, planned_dose_mg: None };
    let one = s.create_session(&dr, c.id, new(1)).await.unwrap();
    s.act_on_session(&dr, one.id, SessionAction::CheckIn).await.unwrap();
    s.set_session_note(&dr, one.id, SECRET_NOTE.into()).await.unwrap();
    s.record_vitals(
        &dr,
        one.id,
        keta_domain::vitals::VitalSigns {
            systolic_mmhg: Some(keta_domain::units::Mmhg(128.0)),
            diastolic_mmhg: Some(keta_domain::units::Mmhg(82.0)),
            heart_rate_bpm: None,
            spo2_pct: None,
            resp_rate_per_min: None,
        },
        None,
        keta_domain::records::VitalsSource::Manual,
    )
    .await
    .unwrap();
    s.record_adverse_event(
        &dr,
        p,
        Some(one.id),
        keta_domain::session::NewAdverseEvent {
            description: SECRET_AE.into(),
            severity: keta_domain::session::AeSeverity::Mild,
            serious: false,
            action_taken: "observed".into(),
            outcome: "resolved".into(),
            onset_at: T0,
        },
    )
    .await
    .unwrap();
    let two = s.create_session(&dr, c.id, new(2)).await.unwrap();
    s.act_on_session(&dr, two.id, SessionAction::Stop { reason: SECRET_STOP.into() }).await.unwrap();
    let issued = s.issue_link(&dr, p, Some(c.id), "phq9".into()).await.unwrap();
    let med = keta_domain::medications::NewMedication {
        drug: "sertraline".into(),
        dose: Some("100 mg daily".into()),
        daily_dose_mg: None,
        started_on: None,
    };
    let medication = s.add_medication(&dr, p, med).await.unwrap().id.0;
    Records { patient: p, course: c.id, session: one.id, link: issued.link.id, token: issued.token, medication }
}

/// Regression: `GET /sites/{id}/sessions` returned each session's note and stop
/// reason to the front desk, auditor and administrator, whom `GET /sessions/{id}/note`
/// refuses. Generated from the route tables: every GET route (lists, embeds, pages) a role
/// may call, with real ids, must not carry the note or the stop reason unless the role may
/// read clinical records.
#[tokio::test]
async fn lists_and_embeds_never_carry_what_the_single_read_refuses() {
    use keta_domain::access::Permission;
    use keta_web::access_rules::PAGE_RULES;
    let w = world().await;
    let r = records(&w).await;
    let day = "from=2026-11-02T00:00:00Z&to=2026-11-03T00:00:00Z";
    let concrete = |path: &str| {
        let p = path
            .replace("/sites/{id}", "/sites/1")
            .replace("/sessions/{id}", &format!("/sessions/{}", r.session.0))
            .replace("/courses/{id}", &format!("/courses/{}", r.course.0))
            .replace("{id}", &r.patient.0.to_string())
            .replace("{code}", "phq9")
            .replace("{instrument}", "phq9");
        if p.ends_with("/sessions") && p.starts_with("/api/v1/sites/") { format!("{p}?{day}") } else { p }
    };
    let mut leaks = Vec::new();
    let mut read = 0;
    for role in CALLERS.into_iter().flatten().filter(|r| !allowed(*r, Permission::ViewClinical)) {
        act_as(&w, Some(role)).await;
        for (method, path, access) in API_RULES.iter().chain(PAGE_RULES) {
            let skip = ["/today/events", "/c/{token}", "/static/{file}", "/kiosk/"];
            if *method != "GET" || !expected_access(access, Some(role)) || skip.iter().any(|x| path.starts_with(x)) {
                continue;
            }
            let resp = w.app.get(&concrete(path)).await;
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            read += 1;
            if [SECRET_NOTE, SECRET_STOP, SECRET_AE].iter().any(|x| body.contains(x)) {
                leaks.push(format!("{role:?} GET {path} ({status})"));
            }
        }
    }
    assert!(leaks.is_empty(), "clinical text reached roles that may not read it: {leaks:?}");
    assert!(read > 30, "{read}");

    // The schedule itself: every role that may read it gets the schedule, never the note.
    for role in [Role::FrontDesk, Role::Auditor, Role::Administrator, Role::Prescriber] {
        act_as(&w, Some(role)).await;
        let list: Value = w.app.get(&format!("/api/v1/sites/1/sessions?{day}")).await.json().await.unwrap();
        let list = list.as_array().unwrap_or_else(|| panic!("{role:?}: {list}"));
        assert_eq!(list.len(), 2, "{role:?}");
        for s in list {
            for clinical in ["note", "stop_reason", "planned_dose_mg"] {
                assert!(s.get(clinical).is_none(), "{role:?}: the schedule carries {clinical}: {s}");
            }
        }
    }
    // The single read still gives clinicians the note.
    act_as(&w, Some(Role::Nurse)).await;
    let one: Value = w.app.get(&format!("/api/v1/sessions/{}", r.session.0)).await.json().await.unwrap();
    assert_eq!(one["note"], SECRET_NOTE);
}

/// Every GET route in the OpenAPI document and the UI router that takes a patient,
/// session, course or link id leaves an audit entry naming the patient (AU-1). Regression:
/// `GET /sessions/{id}/vitals` read vitals without one.
#[tokio::test]
async fn every_read_of_patient_data_leaves_an_audit_entry() {
    let w = world().await;
    let r = records(&w).await;
    let doc: Value = serde_json::from_str(&keta_web::openapi_json()).unwrap();
    let mut routes: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, item)| item.get("get").is_some())
        .map(|(p, _)| p.clone())
        .collect();
    let ui = include_str!("../../../web/src/ui/mod.rs");
    for line in ui.lines().map(str::trim).filter(|l| l.starts_with(".route(\"") && l.contains("get(")) {
        routes.push(line.split('"').nth(1).unwrap().to_string());
    }
    let takes_an_id = |p: &str| {
        ["/patients/{id}", "/sessions/{id}", "/courses/{id}", "/kiosk/{id}", "/checkin-links/{id}", "/c/{token}"]
            .iter()
            .any(|x| p.contains(x))
    };
    let mut routes: Vec<String> = routes.into_iter().filter(|p| takes_an_id(p)).collect();
    // The kiosk locks the session, so it goes last.
    routes.sort_by_key(|p| p.starts_with("/kiosk"));
    assert!(routes.len() > 20, "{routes:?}");
    let token =
        w.db.store
            .issue_link(&prescriber(&[keta_domain::ids::SiteId(1)]), r.patient, None, "gad7".into())
            .await
            .unwrap()
            .token;
    let entries = |db: &TestDb| {
        let p = r.patient.0;
        let store = db.store.clone();
        async move {
            keta_store::testing::read(&store, move |c| {
                c.query_opt(
                    "SELECT count(*) AS n FROM audit_log WHERE patient_id = $1 AND action IN ('read', 'export')",
                    keta_store::params![p],
                )?
                .map_or(Ok(0), |r| r.i64("n"))
            })
            .await
            .unwrap()
        }
    };
    // The REMS form exists only for an esketamine session with a dose given.
    let esketamine = {
        use keta_domain::session::{NewSession, SessionAction};
        let (s, a) = (&w.db.store, keta_domain::ids::SiteId(1));
        let c = s
            .create_course(&prescriber(&[a]), r.patient, course(keta_domain::course::Route::IntranasalEsketamine))
            .await
            .unwrap();
        let new = NewSession { scheduled_for: w.clock.now(), chair_id: None, planned_dose_mg: None };
        let sess = s.create_session(&prescriber(&[a]), c.id, new).await.unwrap().id;
        for step in [SessionAction::CheckIn, SessionAction::StartPreDoseChecks, SessionAction::StartDose] {
            s.act_on_session_confirmed(&prescriber(&[a]), sess, step, Some("test".into())).await.unwrap();
        }
        sess
    };
    // A bedside monitor's reading in a session in its chair, for the device-reading screens.
    let (monitored, reading) = {
        use keta_domain::session::{NewSession, SessionAction};
        use keta_store::monitors::{InboundMonitorMessage, MonitorReading};
        let (s, a) = (&w.db.store, keta_domain::ids::SiteId(1));
        let chair = s.list_chairs(&keta_store::Actor::system(), a).await.unwrap()[0].id;
        s.register_monitor(&keta_store::Actor::system(), chair, "AUDIT-BED", "Monitor").await.unwrap();
        let c =
            s.create_course(&prescriber(&[a]), r.patient, course(keta_domain::course::Route::IvRacemic)).await.unwrap();
        let new = NewSession { scheduled_for: w.clock.now(), chair_id: Some(chair), planned_dose_mg: None };
        let sess = s.create_session(&prescriber(&[a]), c.id, new).await.unwrap().id;
        s.act_on_session(&prescriber(&[a]), sess, SessionAction::CheckIn).await.unwrap();
        let vitals =
            keta_domain::vitals::VitalSigns { spo2_pct: Some(keta_domain::units::Percent(97.0)), ..Default::default() };
        s.record_monitor_message(InboundMonitorMessage {
            identifier: "AUDIT-BED".into(),
            control_id: "A-1".into(),
            peer: "127.0.0.1".into(),
            raw: "MSH|^~\\&|x".into(),
            readings: Ok(vec![MonitorReading { observed_at: w.clock.now(), vitals, mean_mmhg: None }]),
        })
        .await
        .unwrap();
        (sess, s.device_readings(&prescriber(&[a]), sess).await.unwrap()[0].record.id.0)
    };
    let mut unaudited = Vec::new();
    for path in &routes {
        let role = if path.ends_with("/access-log") { Role::Auditor } else { Role::Prescriber };
        act_as(&w, Some(role)).await;
        let session = if path.contains("/rems") {
            esketamine
        } else if path.contains("/device-readings") {
            monitored
        } else {
            r.session
        };
        let url = path
            .replace("{reading}", &reading.to_string())
            .replace("/sessions/{id}", &format!("/sessions/{}", session.0))
            .replace("/courses/{id}", &format!("/courses/{}", r.course.0))
            .replace("{id}", &r.patient.0.to_string())
            .replace("{instrument}", "phq9")
            .replace("{token}", &token);
        let before = entries(&w.db).await;
        let resp = w.app.get(&url).await;
        let status = resp.status().as_u16();
        assert!((200..400).contains(&status), "{role:?} GET {url}: {status}");
        let added = entries(&w.db).await - before;
        if added == 0 {
            unaudited.push(format!("GET {path}"));
        }
        // One entry per request, however many store reads the page makes (chart, doses,
        // exposure, check-ins...): the reads are batched and written together.
        if ["/patients/{id}", "/sessions/{id}", "/api/v1/sessions/{id}/vitals"].contains(&path.as_str()) {
            assert_eq!(added, 1, "GET {path} wrote {added} read entries");
        }
    }
    assert!(unaudited.is_empty(), "reads of patient data with no audit entry: {unaudited:?}");
}

/// Regression: the thank-you page on the kiosk linked "Staff: back to the
/// chart", which opened the nurse's full chart with no re-authentication. Kiosk mode is
/// bound to the sign-in session: until the staff member re-enters their password, only
/// that patient's kiosk pages are served, and nothing on them leads into staff pages.
#[tokio::test]
async fn the_kiosk_cannot_be_escaped_without_the_staff_password() {
    let w = world().await;
    let r = records(&w).await;
    let other = patient(&w.db.store, keta_domain::ids::SiteId(1), "A-0778").await;
    let p = r.patient.0;
    act_as(&w, Some(Role::Nurse)).await;
    assert_eq!(w.app.get(&format!("/patients/{p}")).await.status(), 200, "staff mode: the chart opens");
    let start = w.app.get(&format!("/kiosk/{p}?instrument=phq9")).await;
    assert_eq!(start.headers()["location"], format!("/kiosk/{p}/phq9"));
    assert_eq!(w.app.get(&format!("/kiosk/{p}/phq9")).await.status(), 200);

    // The patient finishes; the thank-you page links nowhere but the staff unlock.
    // (The test client sends the session's CSRF token as a header on every write.)
    let form: Vec<(String, String)> = (1..=9).map(|i| (format!("q{i}"), "0".to_string())).collect();
    let done = w.app.request(reqwest::Method::POST, &format!("/kiosk/{p}/phq9")).form(&form).send().await.unwrap();
    let html = done.text().await.unwrap();
    assert!(html.contains("Thank you"), "{html}");
    let hrefs: Vec<&str> = html.split("href=\"").skip(1).filter_map(|h| h.split('"').next()).collect();
    assert!(!hrefs.is_empty());
    for h in &hrefs {
        assert!(h.starts_with("/static/") || h.starts_with("/reauth"), "a kiosk page links to {h}");
    }

    // Every way out refuses: the chart, another patient's kiosk, staff pages, the API.
    for page in [
        format!("/patients/{p}"),
        "/today".into(),
        format!("/sessions/{}", r.session.0),
        format!("/kiosk/{}/phq9", other.0),
        "/patients".into(),
    ] {
        let resp = w.app.get(&page).await;
        let to = resp.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(resp.status() == 303 && to.starts_with("/reauth?next="), "{page}: {} {to}", resp.status());
    }
    let api = w.app.get(&format!("/api/v1/patients/{p}/chart")).await;
    assert_eq!(api.status(), 403);
    assert!(api.text().await.unwrap().contains("kiosk"));
    // A wrong password does not unlock it.
    let wrong = w
        .app
        .request(reqwest::Method::POST, "/reauth")
        .form(&[("password", "not the password"), ("next", "/today")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(w.app.get(&format!("/patients/{p}")).await.status(), 303);

    // The staff member's password hands the tablet back.
    let nurse = by_role(&w.staff, Role::Nurse);
    let unlock = w
        .app
        .request(reqwest::Method::POST, "/reauth")
        .form(&[("password", nurse.password.as_str()), ("next", &format!("/patients/{p}"))])
        .send()
        .await
        .unwrap();
    assert_eq!(unlock.status(), 303);
    assert_eq!(unlock.headers()["location"], format!("/patients/{p}"));
    let cookie = unlock
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-keta=").map(|rest| rest.split(';').next().unwrap_or("").to_string()))
        .expect("rotated cookie");
    let chart = w
        .app
        .client
        .get(w.app.url(&format!("/patients/{p}")))
        .header("cookie", format!("__Host-keta={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(chart.status(), 200, "unlocked: staff pages open again");
}
