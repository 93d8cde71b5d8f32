//! Test support for Keta.
//!
//! * [`TestDb`]: a fresh database per test, on SQLite (a temp file) or PostgreSQL
//!   (a new `keta_test_<random>` database, dropped afterwards) when
//!   `KETA_TEST_POSTGRES_URL` is set.
//! * [`ManualClock`]: a clock tests move by hand (monitoring times, timeouts).
//! * [`spawn_app`]: the real server on port 0 with a typed [`TestApp`] client; [`spawn_app_with`]
//!   also sets how reminders are delivered (e.g. [`smtp_reminders`] to an [`smtp_sink::SmtpSink`]).

/// A local SMTP server for tests: [`smtp_sink::SmtpSink`] keeps the mail it receives.
pub mod smtp_sink;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use keta_store::{Clock, Store};
use time::OffsetDateTime;

pub const POSTGRES_ENV: &str = "KETA_TEST_POSTGRES_URL";

/// A clock that only moves when told to.
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(t: OffsetDateTime) -> Self {
        Self(Arc::new(AtomicI64::new((t.unix_timestamp_nanos() / 1_000_000) as i64)))
    }
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0.load(Ordering::SeqCst)) * 1_000_000)
            .expect("valid time")
    }
    /// Sets the time (e.g. back to the start for the next backend in a loop over [`TestDb::all`]).
    pub fn set(&self, t: OffsetDateTime) {
        self.0.store((t.unix_timestamp_nanos() / 1_000_000) as i64, Ordering::SeqCst);
    }
    pub fn advance(&self, d: time::Duration) {
        self.0.fetch_add(d.whole_milliseconds() as i64, Ordering::SeqCst);
    }
    pub fn as_clock(&self) -> Clock {
        let me = self.clone();
        Arc::new(move || me.now())
    }
}

/// Which backend a test database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty, migrated database that is removed when dropped.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    pub kind: Kind,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
}

/// The PostgreSQL server URL for the suite, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|s| !s.trim().is_empty())
}

impl TestDb {
    pub async fn sqlite(clock: Clock) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("keta.db").display());
        let store = Store::open_with_clock(&url, clock).await.expect("open sqlite");
        Self { store, url, kind: Kind::Sqlite, _dir: Some(dir), pg_drop: None }
    }

    /// A new database on the configured server; None when the suite is not configured.
    pub async fn postgres(clock: Clock) -> Option<Self> {
        let server = postgres_url()?;
        let name = format!("keta_test_{:016x}", rand::random::<u64>());
        let admin = server.clone();
        let create = name.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect to KETA_TEST_POSTGRES_URL");
            c.batch_execute(&format!("CREATE DATABASE {create}")).expect("create test database");
        })
        .await
        .expect("create task");
        let url = with_database(&server, &name);
        let store = Store::open_with_clock(&url, clock).await.expect("open postgres");
        Some(Self { store, url, kind: Kind::Postgres, _dir: None, pg_drop: Some((server, name)) })
    }

    /// Both backends the suite runs on: SQLite always, PostgreSQL when configured.
    pub async fn all(clock: &ManualClock) -> Vec<TestDb> {
        let mut v = vec![TestDb::sqlite(clock.as_clock()).await];
        match TestDb::postgres(clock.as_clock()).await {
            Some(pg) => v.push(pg),
            None => eprintln!("note: PostgreSQL stories skipped ({POSTGRES_ENV} is not set)"),
        }
        v
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = self.pg_drop.take() {
            // Its own thread: Drop may run inside the async runtime.
            let _ = std::thread::spawn(move || {
                if let Ok(mut c) = postgres::Client::connect(&server, postgres::NoTls) {
                    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            })
            .join();
        }
    }
}

/// Replaces the database name in a postgres URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A running server and a client for it.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// The session cookie value and CSRF token after [`TestApp::login`].
    session: std::sync::Mutex<Option<(String, String)>>,
}

/// Starts the real router on 127.0.0.1:0 over `store` (log-only reminders, the default).
pub async fn spawn_app(store: Store) -> TestApp {
    spawn(store, None).await
}

/// Like [`spawn_app`], with reminders built by `reminders` from the app's own base URL
/// (`http://127.0.0.1:PORT`), known only once the listener is bound: the links in reminders
/// then point at the spawned app. See [`smtp_reminders`].
pub async fn spawn_app_with(store: Store, reminders: impl FnOnce(&str) -> keta_web::reminders::Reminders) -> TestApp {
    spawn(store, Some(Box::new(reminders))).await
}

/// Reminders delivered by SMTP to `sink`, with links under `public_url`.
pub fn smtp_reminders(sink: &smtp_sink::SmtpSink, public_url: &str) -> keta_web::reminders::Reminders {
    let delivery =
        keta_notify::Delivery::from_settings(Some(&sink.url()), Some("Keta Test Clinic <reminders@clinic.example>"))
            .expect("SMTP delivery to the sink");
    keta_web::reminders::Reminders::with_delivery(delivery, public_url)
}

type RemindersBuilder<'a> = Box<dyn FnOnce(&str) -> keta_web::reminders::Reminders + 'a>;

async fn spawn(store: Store, reminders: Option<RemindersBuilder<'_>>) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut state = keta_web::AppState::new(store);
    if let Some(build) = reminders {
        state = state.with_reminders(build(&format!("http://{addr}")));
    }
    serve_state(listener, state)
}

/// Starts the router with a state the test built (trusted proxies, observability settings).
pub async fn spawn_app_with_state(state: keta_web::AppState) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    serve_state(listener, state)
}

fn serve_state(listener: tokio::net::TcpListener, state: keta_web::AppState) -> TestApp {
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(keta_web::serve(listener, state, async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    TestApp { addr, client, shutdown: Some(tx), session: std::sync::Mutex::new(None) }
}

impl TestApp {
    /// The signed-in session (cookie, CSRF token), if any.
    fn signed_in(&self) -> std::sync::MutexGuard<'_, Option<(String, String)>> {
        self.session.lock().expect("the session lock is only poisoned by a test that already panicked")
    }

    /// A client for a server this test did not start in-process: a `keta serve` process, or a
    /// load balancer in front of several.
    pub fn client_for(addr: std::net::SocketAddr) -> TestApp {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        TestApp { addr, client, shutdown: None, session: std::sync::Mutex::new(None) }
    }

    /// Carries `other`'s sign-in (session cookie and CSRF token) over to this client, e.g. to use
    /// a session opened through one instance on another.
    pub fn share_session_of(&self, other: &TestApp) {
        *self.signed_in() = other.signed_in().clone();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signs in through the API with password and the current TOTP code; later
    /// requests carry the session cookie and CSRF token.
    pub async fn login(&self, user: &StaffLogin, now: OffsetDateTime) -> reqwest::Response {
        let code = keta_store::credentials::totp_at_step(&user.totp_secret, now.unix_timestamp().div_euclid(30))
            .expect("secret");
        let r = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"username": user.username, "password": user.password, "code": code}))
            .send()
            .await
            .expect("request");
        if r.status().is_success() {
            let cookie = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| {
                    v.strip_prefix("__Host-keta=").map(|rest| rest.split(';').next().unwrap_or("").to_string())
                })
                .expect("session cookie");
            let r2 = self
                .client
                .get(self.url("/api/v1/auth/me"))
                .header("cookie", format!("__Host-keta={cookie}"))
                .send()
                .await
                .expect("me");
            let csrf =
                r2.json::<serde_json::Value>().await.expect("json")["csrf_token"].as_str().expect("csrf").to_string();
            *self.signed_in() = Some((cookie, csrf));
            return self.get("/api/v1/auth/me").await;
        }
        r
    }

    pub fn logout_locally(&self) {
        *self.signed_in() = None;
    }

    /// The current session cookie, if signed in.
    pub fn cookie(&self) -> Option<String> {
        self.signed_in().as_ref().map(|s| s.0.clone())
    }

    /// A request with the session attached (cookie, and the CSRF header for writes).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut b = self.client.request(method.clone(), self.url(path));
        if let Some((cookie, csrf)) = self.signed_in().clone() {
            b = b.header("cookie", format!("__Host-keta={cookie}"));
            if method != reqwest::Method::GET {
                b = b.header("x-csrf-token", csrf);
            }
        }
        b
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path).send().await.expect("request")
    }
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, path).json(body).send().await.expect("request")
    }
    pub async fn put_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.request(reqwest::Method::PUT, path).json(body).send().await.expect("request")
    }
}

/// A staff account a test can sign in with.
#[derive(Debug, Clone)]
pub struct StaffLogin {
    pub username: String,
    pub password: String,
    pub totp_secret: String,
    pub role: keta_domain::access::Role,
}

/// Known test password (not on the common list).
pub const TEST_PASSWORD: &str = "violet tractor umbrella 42";

/// One account per role, assigned to `sites` (the administrator first, as first-run setup).
pub async fn seed_staff(store: &Store, sites: &[keta_domain::ids::SiteId]) -> Vec<StaffLogin> {
    use keta_domain::access::Role;
    let mut out = Vec::new();
    for (i, role) in Role::ALL.into_iter().enumerate() {
        let username = format!("{}.test", role.as_str().replace('_', ""));
        let secret = keta_store::credentials::base32_encode(format!("keta-test-secret-{i:03}").as_bytes());
        let actor = if i == 0 { keta_store::Actor::system() } else { out_admin_actor() };
        store
            .create_user(
                &actor,
                keta_store::accounts::NewUser {
                    username: username.clone(),
                    display_name: format!("Test {}", role.label()),
                    role,
                    password: TEST_PASSWORD.into(),
                    site_ids: sites.to_vec(),
                    can_break_glass: role == Role::Prescriber,
                    totp_secret: Some(secret.clone()),
                },
            )
            .await
            .expect("create staff");
        out.push(StaffLogin { username, password: TEST_PASSWORD.into(), totp_secret: secret, role });
    }
    out
}

fn out_admin_actor() -> keta_store::Actor {
    keta_store::Actor::staff("administrator.test", keta_domain::access::Role::Administrator, keta_store::SiteScope::All)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1/test?sslmode=disable", "x"),
            "postgres://127.0.0.1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://127.0.0.1", "x"), "postgres://127.0.0.1/x");
    }
}
