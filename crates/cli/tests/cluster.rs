//! Several `keta serve` processes on one PostgreSQL database behind a real load balancer
//! (haproxy from Debian), as a clinic network runs them (docs/decisions/0007-several-instances.md):
//! a session opened through one instance works on the others, a change through one reaches a
//! board connected to another, the check-in sweep issues each due link once and carries on when
//! its leader dies, a rolling restart under write load loses no acknowledged write, and failed
//! sign-ins spread over the instances are throttled at the same count as on one.
//!
//! Needs `KETA_TEST_POSTGRES_URL` and `haproxy` (`apt-get install haproxy`, done by .ci/run);
//! without either each test says SKIPPED and why.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keta_domain::access::Role;
use keta_domain::course::{NewCourse, Phase, Route};
use keta_domain::ids::{PatientId, SiteId};
use keta_domain::patient::{Indication, NewPatient, Sex};
use keta_domain::session::NewSession;
use keta_domain::site::NewSite;
use keta_store::{Actor, SiteScope, Store};
use keta_testkit::smtp_sink::{ReceivedMail, SmtpSink};
use keta_testkit::{StaffLogin, TestApp, TestDb, seed_staff};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Generous: these bound a wait, they are not what is measured.
const START_WAIT: Duration = Duration::from_secs(60);
const EVENT_WAIT: Duration = Duration::from_secs(10);
const SWEEP_SECONDS: u64 = 5;

fn haproxy() -> Option<PathBuf> {
    ["haproxy", "/usr/sbin/haproxy"].into_iter().map(PathBuf::from).find(|p| {
        Command::new(p).arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

/// What the cluster tests need, or why they are skipped.
fn prerequisites(test: &str) -> Option<PathBuf> {
    if keta_testkit::postgres_url().is_none() {
        eprintln!("SKIPPED {test}: {} is not set (the instances share one PostgreSQL)", keta_testkit::POSTGRES_ENV);
        return None;
    }
    let found = haproxy();
    if found.is_none() {
        eprintln!("SKIPPED {test}: haproxy is not installed (apt-get install haproxy)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `keta serve` processes behind haproxy, all stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    database_url: String,
    env: Vec<(String, String)>,
    lb_port: u16,
    ports: Vec<u16>,
    instances: Vec<Option<Child>>,
    haproxy: Option<Child>,
}

impl Cluster {
    async fn start(haproxy: &Path, database_url: &str, n: usize, env: Vec<(String, String)>, lb_port: u16) -> Self {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut c = Cluster {
            dir: tempfile::tempdir().expect("temp dir"),
            database_url: database_url.to_string(),
            env,
            lb_port,
            ports: ports.clone(),
            instances: (0..n).map(|_| None).collect(),
            haproxy: None,
        };
        for i in 0..n {
            c.start_instance(i);
        }
        for i in 0..n {
            c.wait_ready(i).await;
        }
        c.haproxy = Some(c.start_haproxy(haproxy));
        c.wait_lb().await;
        c
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("instance-{i}.log"))
    }

    fn start_instance(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log(i)).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_keta"))
            .args(["serve", "--bind", &addr(self.ports[i]).to_string(), "--database-url", &self.database_url])
            .args(["--trusted-proxies", "127.0.0.1"])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("KETA_LOG", "info")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start keta serve");
        self.instances[i] = Some(child);
    }

    async fn wait_ready(&mut self, i: usize) {
        let url = format!("http://{}/healthz", addr(self.ports[i]));
        let deadline = Instant::now() + START_WAIT;
        loop {
            if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Some(status) = self.instances[i].as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("instance {i} exited ({status}) before serving:\n{}", self.log_text(i));
            }
            assert!(
                Instant::now() < deadline,
                "instance {i} did not serve within {START_WAIT:?}:\n{}",
                self.log_text(i)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn start_haproxy(&self, haproxy: &Path) -> Child {
        let servers: String =
            self.ports.iter().enumerate().map(|(i, p)| format!("    server keta{i} 127.0.0.1:{p} check\n")).collect();
        // Each request is balanced on its own (HTTP mode), health-checked on /healthz; a request
        // that found no connection is sent to another instance. POSTs carry Idempotency-Key, so
        // a retry is never a second write.
        let cfg = format!(
            "global\n    maxconn 512\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\
             \x20   option redispatch\n    retries 3\n    retry-on conn-failure empty-response\n\
             \x20   option http-buffer-request\n    default-server inter 300ms fall 1 rise 1\n\
             frontend keta\n    bind 127.0.0.1:{}\n    option forwardfor\n    default_backend instances\n\
             backend instances\n    balance roundrobin\n    option httpchk GET /healthz\n    http-check expect status 200\n{servers}",
            self.lb_port
        );
        let path = self.dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("write haproxy.cfg");
        let log = std::fs::File::create(self.dir.path().join("haproxy.log")).expect("haproxy log");
        Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start haproxy")
    }

    async fn wait_lb(&mut self) {
        let url = format!("http://{}/healthz", addr(self.lb_port));
        let deadline = Instant::now() + START_WAIT;
        loop {
            if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Some(status) = self.haproxy.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("haproxy exited ({status}):\n{}", self.file_text("haproxy.log"));
            }
            assert!(Instant::now() < deadline, "haproxy did not serve:\n{}", self.file_text("haproxy.log"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn file_text(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(self.log(i)).unwrap_or_default()
    }

    fn lb(&self) -> TestApp {
        TestApp::client_for(addr(self.lb_port))
    }

    fn instance(&self, i: usize) -> TestApp {
        TestApp::client_for(addr(self.ports[i]))
    }

    /// Sends SIGTERM and waits for the process to end. Returns whether it exited cleanly (a
    /// graceful shutdown) rather than being ended by the signal.
    async fn terminate(&mut self, i: usize) -> bool {
        let mut child = self.instances[i].take().expect("running");
        let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(Instant::now() < deadline, "instance {i} still running {START_WAIT:?} after SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.instances[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.instances.iter_mut().chain(std::iter::once(&mut self.haproxy)).flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn prescriber_actor(site: SiteId) -> Actor {
    Actor::staff("prescriber.test", Role::Prescriber, SiteScope::Sites(vec![site]))
}

async fn clinic_site(store: &Store) -> SiteId {
    store
        .create_site(
            &Actor::system(),
            NewSite {
                code: "A".into(),
                name: "Clinic A".into(),
                time_zone: "America/Chicago".into(),
                crisis_line: "988".into(),
            },
            vec!["Chair 1".into(), "Chair 2".into()],
        )
        .await
        .expect("site")
        .id
}

/// A patient with an e-mail address whose course has a session 12 hours ahead: the PHQ-9 before
/// it is due now, and nothing else is.
async fn patient_due_a_check_in(store: &Store, site: SiteId, mrn: &str, email: &str) -> PatientId {
    let patient = store
        .create_patient(
            &Actor::system(),
            NewPatient {
                site_id: site,
                mrn: mrn.into(),
                given_name: "Rowan".into(),
                family_name: format!("Test-{mrn}"),
                date_of_birth: time::macros::date!(1984 - 03 - 09),
                sex: Sex::Female,
                phone: None,
                email: Some(email.into()),
                indication: Indication::Depression,
                diagnoses: vec!["F33.2".into()],
                referring_clinician: None,
            },
        )
        .await
        .expect("patient")
        .id;
    let now = OffsetDateTime::now_utc();
    let dr = prescriber_actor(site);
    let course = store
        .create_course(
            &dr,
            patient,
            NewCourse {
                route: Route::IvRacemic,
                phase: Phase::Induction,
                indication: None,
                planned_sessions: 6,
                start_date: now.date(),
                protocol: None,
            },
        )
        .await
        .expect("course")
        .id;
    store
        .create_session(
            &dr,
            course,
            NewSession { scheduled_for: now + time::Duration::hours(12), chair_id: None, planned_dose_mg: None },
        )
        .await
        .expect("session");
    patient
}

fn login_of(staff: &[StaffLogin], role: Role) -> &StaffLogin {
    staff.iter().find(|s| s.role == role).expect("one account per role")
}

/// The `/c/{token}` path in a reminder.
fn link_path(mail: &ReceivedMail) -> String {
    let body = mail.body_text();
    let start = body.find("/c/").unwrap_or_else(|| panic!("no link in:\n{body}"));
    body[start..].chars().take_while(|c| !c.is_whitespace()).collect()
}

/// Links issued so far, per patient.
async fn links_per_patient(store: &Store) -> Vec<(i64, i64)> {
    keta_store::testing::read(store, |c| {
        c.query("SELECT patient_id, count(*) AS links FROM checkin_links GROUP BY patient_id ORDER BY patient_id", &[])?
            .iter()
            .map(|r| Ok((r.i64("patient_id")?, r.i64("links")?)))
            .collect()
    })
    .await
    .expect("links")
}

/// Reads server-sent events until one named `name` arrives whose data contains `needle`.
async fn wait_for_event(res: &mut reqwest::Response, buf: &mut String, name: &str, needle: &str) -> Option<String> {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let named = event.lines().any(|l| l.strip_prefix("event:").is_some_and(|n| n.trim() == name));
            let data: String = event.lines().filter_map(|l| l.strip_prefix("data:")).collect::<Vec<_>>().join("\n");
            if named && data.contains(needle) {
                return Some(data);
            }
        }
        match tokio::time::timeout_at(deadline, res.chunk()).await {
            Ok(Ok(Some(bytes))) => buf.push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n")),
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_behind_haproxy_share_sessions_the_board_and_one_sweep() {
    let Some(haproxy) = prerequisites("three_instances_behind_haproxy_share_sessions_the_board_and_one_sweep") else {
        return;
    };
    let db = TestDb::postgres(keta_store::system_clock()).await.expect("a PostgreSQL test database");
    let store = &db.store;
    let site = clinic_site(store).await;
    let staff = seed_staff(store, &[site]).await;
    let first = patient_due_a_check_in(store, site, "A-0001", "first.patient@example.org").await;

    let sink = SmtpSink::start().await;
    let lb_port = free_port();
    let env = vec![
        ("KETA_SMTP_URL".to_string(), sink.url()),
        ("KETA_MAIL_FROM".to_string(), "Keta Test Clinic <reminders@clinic.example>".to_string()),
        ("KETA_PUBLIC_URL".to_string(), format!("http://127.0.0.1:{lb_port}")),
        ("KETA_CHECKIN_SWEEP_SECONDS".to_string(), SWEEP_SECONDS.to_string()),
    ];
    let mut cluster = Cluster::start(&haproxy, &db.url, 3, env, lb_port).await;

    // 1. Sign in through the load balancer; the session works on every instance and through the
    // balancer, whichever instance answers.
    let lb = cluster.lb();
    let now = OffsetDateTime::now_utc();
    let me = lb.login(login_of(&staff, Role::Prescriber), now).await;
    assert_eq!(me.status(), 200, "{}", me.text().await.unwrap_or_default());
    for i in 0..3 {
        let on = cluster.instance(i);
        on.share_session_of(&lb);
        let r = on.get("/api/v1/auth/me").await;
        assert_eq!(r.status(), 200, "the session opened through the balancer works on instance {i}");
        assert_eq!(r.json::<Value>().await.unwrap()["username"], "prescriber.test");
    }
    for _ in 0..6 {
        assert_eq!(lb.get("/api/v1/auth/me").await.status(), 200);
    }
    // Signing out through one instance ends the session on all of them.
    let other = cluster.lb();
    assert_eq!(other.login(login_of(&staff, Role::Nurse), now).await.status(), 200);
    let on0 = cluster.instance(0);
    on0.share_session_of(&other);
    assert_eq!(
        on0.request(reqwest::Method::POST, "/api/v1/auth/logout").send().await.unwrap().status().as_u16() / 100,
        2
    );
    for i in 1..3 {
        let on = cluster.instance(i);
        on.share_session_of(&other);
        assert_eq!(on.get("/api/v1/auth/me").await.status(), 401, "signed out everywhere (instance {i})");
    }

    // 2. The sweep: the due link is issued and mailed once, whichever instance leads, and no
    // other instance issues it again over the next sweeps.
    let mails = sink.wait_for(1, Duration::from_secs(SWEEP_SECONDS * 6)).await;
    assert_eq!(mails[0].recipients, vec!["first.patient@example.org".to_string()]);
    tokio::time::sleep(Duration::from_secs(SWEEP_SECONDS * 2 + 2)).await;
    assert_eq!(sink.messages().len(), 1, "one reminder across three instances");
    assert_eq!(links_per_patient(store).await, vec![(first.0, 1)]);
    let leaders: Vec<usize> =
        (0..3).filter(|&i| cluster.log_text(i).contains("now leads the check-in sweep")).collect();
    assert_eq!(leaders.len(), 1, "one leader: {leaders:?}");

    // 3. The board on instance 1 sees an urgent alert raised through instance 2 by a patient's
    // phone check-in (the PHQ-9's item 9 answered "nearly every day").
    let board = cluster.instance(1);
    board.share_session_of(&lb);
    let mut events = board.get("/today/events").await;
    assert_eq!(events.status(), 200);
    let mut buf = String::new();
    assert!(
        wait_for_event(&mut events, &mut buf, &format!("board-{site}"), "").await.is_some(),
        "the board's first render"
    );
    let path = link_path(&mails[0]);
    let phone = cluster.instance(2);
    let mut form: Vec<(String, String)> = (1..=9).map(|q| (format!("q{q}"), "0".to_string())).collect();
    form[8].1 = "3".into();
    form.push(("action".into(), "finish".into()));
    let sent = Instant::now();
    let r = phone.client.post(phone.url(&path)).form(&form).send().await.expect("submit");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let alert =
        wait_for_event(&mut events, &mut buf, &format!("board-{site}"), &format!("/patients/{first}#alerts")).await;
    assert!(alert.is_some(), "the alert raised through instance 2 reached the board on instance 1");
    assert!(alert.unwrap().contains("urgent"));
    eprintln!("alert through instance 2 reached the board on instance 1 after {:?}", sent.elapsed());
    drop(events);

    // 4. The leader dies: another instance takes the sweep over and issues the next due link,
    // once.
    let leader = leaders[0];
    cluster.kill(leader);
    let second = patient_due_a_check_in(store, site, "A-0002", "second.patient@example.org").await;
    let mails = sink.wait_for(2, Duration::from_secs(SWEEP_SECONDS * 8)).await;
    assert_eq!(mails[1].recipients, vec!["second.patient@example.org".to_string()]);
    tokio::time::sleep(Duration::from_secs(SWEEP_SECONDS * 2 + 2)).await;
    assert_eq!(sink.messages().len(), 2, "each due link sent once");
    assert_eq!(links_per_patient(store).await, vec![(first.0, 1), (second.0, 1)]);
    let new_leaders: Vec<usize> =
        (0..3).filter(|&i| i != leader && cluster.log_text(i).contains("now leads the check-in sweep")).collect();
    assert_eq!(new_leaders.len(), 1, "one new leader: {new_leaders:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_write_load_loses_no_acknowledged_write() {
    let Some(haproxy) = prerequisites("a_rolling_restart_under_write_load_loses_no_acknowledged_write") else {
        return;
    };
    let db = TestDb::postgres(keta_store::system_clock()).await.expect("a PostgreSQL test database");
    let store = &db.store;
    let site = clinic_site(store).await;
    let staff = seed_staff(store, &[site]).await;
    let lb_port = free_port();
    let mut cluster = Cluster::start(&haproxy, &db.url, 3, Vec::new(), lb_port).await;
    let desk = Arc::new(cluster.lb());
    assert_eq!(desk.login(login_of(&staff, Role::FrontDesk), OffsetDateTime::now_utc()).await.status(), 200);

    // Writers register patients through the balancer, each with its own Idempotency-Key,
    // retrying a failed attempt with the same key. A write counts once it is acknowledged (2xx).
    let stop = Arc::new(AtomicBool::new(false));
    let given_up = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (desk, stop, given_up) = (desk.clone(), stop.clone(), given_up.clone());
        writers.push(tokio::spawn(async move {
            let mut acked: Vec<(i64, String)> = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let mrn = format!("R{w}-{n:05}");
                let body = json!({
                    "site_id": site.0, "mrn": mrn, "given_name": "Avery", "family_name": "Quinn",
                    "date_of_birth": "1979-05-04", "sex": "male", "indication": "depression", "diagnoses": ["F33.2"]
                });
                let key = format!("rolling-{w}-{n}-{}", rand::random::<u64>());
                let mut done = false;
                for _ in 0..20 {
                    let r = desk
                        .request(reqwest::Method::POST, "/api/v1/patients")
                        .header("idempotency-key", &key)
                        .json(&body)
                        .send()
                        .await;
                    if let Ok(r) = r
                        && r.status().is_success()
                    {
                        let v: Value = r.json().await.expect("json");
                        acked.push((v["id"].as_i64().expect("id"), mrn.clone()));
                        done = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                if !done {
                    given_up.fetch_add(1, Ordering::Relaxed);
                }
            }
            acked
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut graceful = true;
    for i in 0..3 {
        graceful &= cluster.terminate(i).await;
        cluster.start_instance(i);
        cluster.wait_ready(i).await;
        // Let the balancer's health check see it back before the next one goes.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.expect("writer"));
    }
    assert!(acked.len() >= 20, "the writers kept writing through the restarts: {} acknowledged", acked.len());

    // Every acknowledged write is stored, exactly once, as acknowledged.
    let stored: std::collections::HashMap<i64, String> = keta_store::testing::read(store, |c| {
        c.query("SELECT id, mrn FROM patients", &[])?
            .iter()
            .map(|r| Ok((r.i64("id")?, r.text("mrn")?)))
            .collect::<keta_store::Result<_>>()
    })
    .await
    .expect("patients");
    for (id, mrn) in &acked {
        assert_eq!(stored.get(id), Some(mrn), "acknowledged patient {id} ({mrn}) is stored");
    }
    let mut mrns: Vec<&String> = stored.values().collect();
    mrns.sort();
    let before = mrns.len();
    mrns.dedup();
    assert_eq!(before, mrns.len(), "no write stored twice");

    let given_up = given_up.load(Ordering::Relaxed);
    eprintln!(
        "rolling restart: {} writes acknowledged, {given_up} given up after retries; instances exited cleanly on SIGTERM: {graceful}",
        acked.len()
    );
    if graceful {
        // With a graceful shutdown (stop accepting, finish in-flight requests) nothing is lost
        // even from the writers' side: every write was acknowledged in the end.
        assert_eq!(given_up, 0, "a write was given up during a graceful rolling restart");
    } else {
        eprintln!(
            "NOTE: this build's `keta serve` ends on SIGTERM without draining, so writes in flight may be \
             given up; only acknowledged writes were checked"
        );
    }
}

/// Wrong passwords for `who`, sent to `servers` in turn, until one answers 429: how many were
/// refused as wrong (401) before that.
async fn failures_before_throttled(servers: &[TestApp], who: &StaffLogin) -> u32 {
    let wrong = json!({"username": who.username, "password": "wrong wrong wrong", "code": "000000"});
    let most = keta_web::auth::FREE_FAILURES * 4;
    for n in 0..=most {
        let r = servers[n as usize % servers.len()].post_json("/api/v1/auth/login", &wrong).await;
        match r.status().as_u16() {
            401 => {}
            429 => return n,
            s => panic!("unexpected {s} at attempt {}: {}", n + 1, r.text().await.unwrap_or_default()),
        }
    }
    panic!("never throttled after {most} failures spread over {} servers", servers.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_sign_ins_spread_over_three_instances_are_throttled_at_the_same_count_as_on_one() {
    let Some(haproxy) =
        prerequisites("failed_sign_ins_spread_over_three_instances_are_throttled_at_the_same_count_as_on_one")
    else {
        return;
    };
    let db = TestDb::postgres(keta_store::system_clock()).await.expect("a PostgreSQL test database");
    let site = clinic_site(&db.store).await;
    let staff = seed_staff(&db.store, &[site]).await;
    let lb_port = free_port();
    let cluster = Cluster::start(&haproxy, &db.url, 3, Vec::new(), lb_port).await;

    // One instance: the baseline.
    let one = failures_before_throttled(&[cluster.instance(0)], login_of(&staff, Role::Nurse)).await;
    assert_eq!(one, keta_web::auth::FREE_FAILURES);
    // The same number of failures spread over the three instances, one after another: the
    // attempt that is refused goes to an instance that saw only a third of them.
    let all: Vec<TestApp> = (0..3).map(|i| cluster.instance(i)).collect();
    let spread = failures_before_throttled(&all, login_of(&staff, Role::FrontDesk)).await;
    assert_eq!(spread, one, "three instances allow no more failures than one");
    // And through the balancer, as a client sees it.
    let through_lb = failures_before_throttled(&[cluster.lb()], login_of(&staff, Role::Auditor)).await;
    assert_eq!(through_lb, one, "through haproxy, round robin over three instances");
}
