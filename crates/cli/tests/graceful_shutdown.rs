//! A rolling restart loses nothing: `keta serve` runs as a child process with writers keeping
//! requests in flight; SIGTERM makes it fail readiness, end a live-board stream with a
//! reconnect hint, finish what it accepted and exit 0 within its grace; after a restart every
//! write it acknowledged is stored exactly once and the audit chain verifies. Its JSON log has
//! one line per request, by route template, with no patient's name or record number in it.
//! On SQLite, and on PostgreSQL when `KETA_TEST_POSTGRES_URL` is set.

// Helpers outside `#[test]` functions unwrap too, which clippy's allow-unwrap-in-tests does
// not cover; in a test a panic is the failure message all the same.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keta_domain::site::NewSite;
use keta_store::{Actor, Store};
use keta_testkit::{ManualClock, StaffLogin, TestDb, seed_staff};
use serde_json::{Value, json};

/// A family name no other text in Keta contains, to look for in the log.
const FAMILY: &str = "Zyngarde";
const MRN_PREFIX: &str = "GSX";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(url: &str, port: u16, log: &std::path::Path) -> Child {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_keta"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--database-url", url])
        .env_remove("KETA_CONFIG")
        .env_remove("KETA_LOG_FORMAT")
        .env("KETA_SHUTDOWN_GRACE_SECONDS", "15")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start keta serve")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < until, "keta serve did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("keta serve did not exit within {within:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -TERM");
}

/// Signs in through the API: the session cookie and CSRF token.
async fn login(client: &reqwest::Client, base: &str, user: &StaffLogin) -> (String, String) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let code = keta_store::credentials::totp_at_step(&user.totp_secret, now.div_euclid(30)).unwrap();
    let r = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": user.username, "password": user.password, "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-keta=").map(|rest| rest.split(';').next().unwrap_or("").to_string()))
        .expect("session cookie");
    let body: Value = r.json().await.unwrap();
    (format!("__Host-keta={cookie}"), body["csrf_token"].as_str().expect("csrf").to_string())
}

async fn seed(store: &Store) -> (i64, Vec<StaffLogin>) {
    let site = NewSite {
        code: "GS".into(),
        name: "Graceful Clinic".into(),
        time_zone: "America/Chicago".into(),
        crisis_line: "988".into(),
    };
    let site = store.create_site(&Actor::system(), site, vec!["Chair 1".into()]).await.unwrap();
    let staff = seed_staff(store, &[site.id]).await;
    (site.id.0, staff)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_in_flight_writes_and_loses_no_acknowledged_one() {
    let clock = ManualClock::at(time::OffsetDateTime::now_utc());
    for db in TestDb::all(&clock).await {
        one_backend(&db).await;
    }
}

async fn one_backend(db: &TestDb) {
    let (site, staff) = seed(&db.store).await;
    let desk = staff.iter().find(|s| s.role == keta_domain::access::Role::FrontDesk).unwrap().clone();
    let nurse = staff.iter().find(|s| s.role == keta_domain::access::Role::Nurse).unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let mut child = start(&db.url, port, &log);
    wait_ready(&client, &base).await;
    let (cookie, csrf) = login(&client, &base, &desk).await;

    // A live board open across the shutdown.
    let (nurse_cookie, _) = login(&client, &base, &nurse).await;
    let mut board = client.get(format!("{base}/today/events")).header("cookie", &nurse_cookie).send().await.unwrap();
    assert_eq!(board.status(), 200);

    // Writers register patients until the server stops answering.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..6 {
        let (client, base, cookie, csrf, acked) =
            (client.clone(), base.clone(), cookie.clone(), csrf.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let mrn = format!("{MRN_PREFIX}-{w}-{i:05}");
                let body = json!({
                    "site_id": site, "mrn": mrn, "given_name": "Avery", "family_name": FAMILY,
                    "date_of_birth": "1979-05-04", "sex": "female", "indication": "depression", "diagnoses": ["F33.2"]
                });
                let sent = client
                    .post(format!("{base}/api/v1/patients"))
                    .header("cookie", &cookie)
                    .header("x-csrf-token", &csrf)
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => acked.lock().unwrap().push(mrn),
                    // Refused while draining, or the connection is gone: this writer is done.
                    _ => return,
                }
            }
        }));
    }
    // Let the writers get going, then ask the server to stop while writes are in flight.
    let until = Instant::now() + Duration::from_secs(10);
    while acknowledged.lock().unwrap().len() < 50 {
        assert!(Instant::now() < until, "the writers made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigterm(&child);

    // The board's stream ends with a reconnect hint.
    let mut seen = String::new();
    let hinted = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = board.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("retry:") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(hinted, "the live board was not told when to reconnect: {seen}");

    let status = tokio::task::spawn_blocking(move || {
        let s = wait_exit(&mut child, Duration::from_secs(30));
        (s, child)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "keta serve exited with {:?}", status.0);
    for w in writers {
        w.await.unwrap();
    }
    let acked: Vec<String> = acknowledged.lock().unwrap().clone();
    assert!(acked.len() >= 50, "{}", acked.len());

    // Restart: every acknowledged write is there, once.
    let mut child = start(&db.url, port, &log);
    wait_ready(&client, &base).await;
    let stored = keta_store::testing::read(&db.store, |c| {
        c.query("SELECT mrn FROM patients WHERE mrn LIKE $1", keta_store::params![format!("{MRN_PREFIX}-%")])?
            .iter()
            .map(|r| r.text("mrn"))
            .collect::<keta_store::Result<Vec<String>>>()
    })
    .await
    .unwrap();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a write was stored twice");
    let missing: Vec<&String> = acked.iter().filter(|m| !unique.contains(m)).collect();
    assert!(missing.is_empty(), "acknowledged writes lost in the shutdown: {missing:?}");
    sigterm(&child);
    let s = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(30))).await.unwrap();
    assert!(s.success(), "{s:?}");

    let out = Command::new(env!("CARGO_BIN_EXE_keta")).args(["audit", "verify", "--database-url", &db.url]).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // The log: JSON lines; one per request with its route template; no patient data.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut requests = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(!line.contains(FAMILY) && !line.contains(MRN_PREFIX), "patient data in the log: {line}");
        if v["target"] == "keta::request" {
            requests += 1;
            for field in ["method", "route", "status", "latency_ms", "request_id"] {
                assert!(v.get(field).is_some(), "{field} missing: {line}");
            }
        }
    }
    assert!(requests > acked.len(), "one line per request: {requests} lines for {} writes", acked.len());
    assert!(text.contains("\"route\":\"/api/v1/patients\""), "requests are logged by route template");
}
