//! Sign-in, the signed-in user, CSRF and the security headers (security-reference §2.1, §2.2).
//!
//! * Sessions live on the server (`auth_sessions`); the browser holds only a random token
//!   in a `__Host-` cookie (Secure, HttpOnly, SameSite=Strict, Path=/).
//! * Sign-in is password, then a TOTP code. Failures are throttled per account and per
//!   address and never say which part was wrong.
//! * Every state-changing request must come from our own origin and carry the session's
//!   CSRF token (form field `csrf_token` or header `X-CSRF-Token`).
//! * [`CurrentUser`] is the only way a handler learns who is acting; permissions are then
//!   enforced by the store for `user.actor`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use keta_domain::access::Role;
use keta_domain::ids::{PatientId, SiteId};
use keta_store::Actor;
use keta_store::accounts::{SessionEnd, SignedIn};
use time::OffsetDateTime;

use crate::AppState;
use crate::error::ApiError;

pub const COOKIE: &str = "__Host-keta";

/// The signed-in staff member.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub actor: Actor,
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// Sites the user is assigned to (the board shows one per site).
    pub site_ids: Vec<SiteId>,
    /// Must accompany every state-changing request: the `csrf_token` form field,
    /// or the `X-CSRF-Token` header for htmx and JSON requests.
    pub csrf_token: String,
    /// When the user last entered their password (signing, ledger entries).
    pub reauthenticated_at: Option<OffsetDateTime>,
    /// The patient whose kiosk this session shows, while the tablet is in the patient's hands.
    pub kiosk_patient: Option<PatientId>,
    /// SHA-256 of the session token (to put the session into kiosk mode).
    pub(crate) token_hash: String,
    /// Log-only delivery keeps the reminders in an outbox (the demo): the menu links `/outbox`.
    pub(crate) outbox_kept: bool,
}

impl CurrentUser {
    fn from_signed_in(s: SignedIn, st: &AppState) -> Self {
        Self {
            outbox_kept: st.reminders.outbox.is_some(),
            user_id: s.user.id,
            username: s.user.username.clone(),
            display_name: s.user.display_name.clone(),
            role: s.user.role,
            site_ids: s.user.site_ids.clone(),
            csrf_token: s.csrf_token,
            reauthenticated_at: s.reauthenticated_at,
            kiosk_patient: s.kiosk_patient,
            token_hash: s.token_hash,
            actor: s.actor,
        }
    }
}

/// What a session in kiosk mode may still reach: that patient's kiosk pages, and the way
/// back (the staff member's password, or signing out). Everything else refuses, so the
/// patient holding the tablet cannot open the chart or anything else.
fn kiosk_allows(path: &str, patient: PatientId) -> bool {
    let own = format!("/kiosk/{}", patient.0);
    path == own
        || path.strip_prefix(&own).is_some_and(|rest| rest.starts_with('/'))
        || matches!(path, "/reauth" | "/logout" | "/api/v1/auth/reauth" | "/api/v1/auth/logout")
}

fn kiosk_locked(parts: &Parts) -> AuthRejection {
    let uri = parts.extensions.get::<axum::extract::OriginalUri>().map_or(&parts.uri, |o| &o.0);
    if uri.path().starts_with("/api/") {
        AuthRejection::Api(ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "kiosk",
            title: "The tablet is in kiosk mode",
            detail: "this session is showing a patient's kiosk; staff re-enter their password (POST /api/v1/auth/reauth) to use it again".into(),
            errors: vec![],
        })
    } else {
        // Staff take the tablet back with their password, then go where they asked.
        let next = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        AuthRejection::Kiosk { next: if next.starts_with('/') && !next.starts_with("//") { next } else { "/".into() } }
    }
}

/// Reads our session cookie from request headers.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()))
}

pub fn session_cookie(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict"))
        .expect("hex token is a valid header")
}

pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("__Host-keta=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Why a request was not signed in, rendered per client: HTML pages go to the sign-in
/// page (coming back afterwards), API calls get 401 problem+json.
pub enum AuthRejection {
    Page {
        next: String,
    },
    /// A page asked for while the session is in kiosk mode: the staff password first.
    Kiosk {
        next: String,
    },
    Api(ApiError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::Page { next } => {
                let target = format!("/login?next={}", urlencode(&next));
                // htmx follows HX-Redirect; a plain browser follows the 303.
                let mut r = Redirect::to(&target).into_response();
                if let Ok(v) = HeaderValue::from_str(&target) {
                    r.headers_mut().insert("HX-Redirect", v);
                }
                r
            }
            AuthRejection::Kiosk { next } => {
                let target = format!("/reauth?next={}", urlencode(&next));
                let mut r = Redirect::to(&target).into_response();
                if let Ok(v) = HeaderValue::from_str(&target) {
                    r.headers_mut().insert("HX-Redirect", v);
                }
                r
            }
            AuthRejection::Api(e) => e.into_response(),
        }
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_./".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn unauthorised(parts: &Parts, why: &str) -> AuthRejection {
    // Inside a nested router the URI is stripped of its prefix; the original one decides.
    let uri = parts.extensions.get::<axum::extract::OriginalUri>().map_or(&parts.uri, |o| &o.0);
    if uri.path().starts_with("/api/") {
        AuthRejection::Api(ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "unauthorised",
            title: "Sign in first",
            detail: why.to_string(),
            errors: vec![],
        })
    } else {
        let next = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        AuthRejection::Page { next: if next.starts_with('/') && !next.starts_with("//") { next } else { "/".into() } }
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let user = match parts.extensions.get::<CurrentUser>() {
            Some(u) => u.clone(),
            None => Self::resolve(parts, st).await?,
        };
        if let Some(p) = user.kiosk_patient {
            let uri = parts.extensions.get::<axum::extract::OriginalUri>().map_or(&parts.uri, |o| &o.0);
            if !kiosk_allows(uri.path(), p) {
                return Err(kiosk_locked(parts));
            }
        }
        Ok(user)
    }
}

impl CurrentUser {
    async fn resolve(parts: &mut Parts, st: &AppState) -> Result<Self, AuthRejection> {
        let Some(token) = session_token(&parts.headers) else {
            return Err(unauthorised(parts, "no session; sign in at /login or POST /api/v1/auth/login"));
        };
        match st.store.resolve_session(&token, st.settings.session_policy).await {
            Ok(Ok(s)) if s.mfa_passed => {
                let u = CurrentUser::from_signed_in(s, st);
                parts.extensions.insert(u.clone());
                Ok(u)
            }
            Ok(Ok(_)) => Err(unauthorised(parts, "enter your authenticator code to finish signing in")),
            Ok(Err(SessionEnd::Idle)) => Err(unauthorised(parts, "signed out after inactivity; sign in again")),
            Ok(Err(SessionEnd::Absolute)) => {
                Err(unauthorised(parts, "the session reached its maximum length; sign in again"))
            }
            Ok(Err(_)) => Err(unauthorised(parts, "the session has ended; sign in again")),
            Err(e) => Err(AuthRejection::Api(e.into())),
        }
    }
}

/// Per-account and per-address sign-in throttling (AC-9). Accounts get growing delays
/// after repeated failures; addresses get a fixed budget per minute. Both answer with
/// the same message, and neither reveals whether the account exists.
///
/// The counts are kept in the database (`Store::count_sign_in_attempt` and friends), so
/// several instances behind a load balancer throttle as one: failures spread over them hit
/// the limit at the same count as on one instance (docs/decisions/0007-several-instances.md).
/// The limits are these constants, as they were when the counts were kept in each process.
#[derive(Default)]
pub struct LoginThrottle;

/// Failures in a row an account may make before its attempts are delayed.
pub const FREE_FAILURES: u32 = 5;
/// Sign-in attempts one client address may make per minute, on all instances together.
pub const ADDRESS_BUDGET_PER_MINUTE: u32 = 60;
/// The longest delay: the doubling (1 s, 2 s, 4 s, ...) stops here.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
const ADDRESS_WINDOW: Duration = Duration::from_secs(60);

fn std_duration(d: time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// How long an account with `fails` failures in a row waits after its last one.
pub fn account_delay(fails: u32) -> Option<Duration> {
    (fails >= FREE_FAILURES).then(|| Duration::from_secs(1u64 << (fails - FREE_FAILURES).min(10)).min(MAX_DELAY))
}

impl LoginThrottle {
    /// Some(wait) when this attempt must be refused. Counts the attempt against `ip`'s budget.
    pub async fn check(
        &self,
        store: &keta_store::Store,
        username: &str,
        ip: Option<IpAddr>,
    ) -> keta_store::Result<Option<Duration>> {
        let now = store.now();
        if let Some(ip) = ip {
            let window = time::Duration::try_from(ADDRESS_WINDOW).expect("a minute fits");
            let c = store.count_sign_in_attempt(&ip.to_string(), window).await?;
            if c.attempts > ADDRESS_BUDGET_PER_MINUTE {
                return Ok(Some(ADDRESS_WINDOW.saturating_sub(std_duration(now - c.since))));
            }
        }
        if let Some(c) = store.sign_in_failures(username).await?
            && let Some(delay) = account_delay(c.attempts)
        {
            let since = std_duration(now - c.since);
            if since < delay {
                return Ok(Some(delay - since));
            }
        }
        Ok(None)
    }

    pub async fn failed(&self, store: &keta_store::Store, username: &str) -> keta_store::Result<()> {
        store.record_sign_in_failure(username).await.map(|_| ())
    }

    pub async fn succeeded(&self, store: &keta_store::Store, username: &str) -> keta_store::Result<()> {
        store.clear_sign_in_failures(username).await
    }
}

/// Whole seconds to wait, rounded up so a client that waits exactly this long is let in.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// A throttled answer names when to come back (RFC 9110 §10.2.3), for people and scripts alike.
pub fn with_retry_after(mut res: Response, secs: u64) -> Response {
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

pub fn client_ip(req_ext: &axum::http::Extensions) -> Option<IpAddr> {
    req_ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// Requests that change state but come before a session exists.
fn csrf_exempt(path: &str) -> bool {
    matches!(path, "/login" | "/login/code" | "/setup" | "/api/v1/auth/login") || is_patient_link(path)
}

/// `/c/{token}`: a patient's check-in page. The 256-bit token in the path is the capability, so
/// a forged cross-site form would have to know it already; the origin checks above still apply.
/// Exempt from the staff session's CSRF token so a phone (or a clinic tablet with a staff
/// session open) can answer.
fn is_patient_link(path: &str) -> bool {
    path.strip_prefix("/c/").is_some_and(keta_domain::patient_links::is_well_formed_token)
}

/// WEB-1: state-changing requests must come from our own origin and carry the session's
/// CSRF token. Runs before any handler.
pub async fn csrf_guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let forbidden = |why: &str| {
        ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "csrf",
            title: "Request refused",
            detail: why.to_string(),
            errors: vec![],
        }
        .into_response()
    };
    let h = req.headers();
    if h.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|v| v == "cross-site") {
        return forbidden("cross-site requests are not accepted");
    }
    if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let origin_host = origin.split_once("://").map_or(origin, |(_, r)| r);
        // Under `Referrer-Policy: no-referrer` browsers send `Origin: null` even on our own
        // form posts; then the browser-set Sec-Fetch-Site must vouch that it is same-origin.
        let same_origin_fetch = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("same-origin");
        if (origin == "null" && !same_origin_fetch) || (origin != "null" && origin_host != host) {
            // A person at a browser gets a page saying what to do (usually: use HTTPS).
            if !req.uri().path().starts_with("/api/") {
                return crate::pages::other_site_page(host);
            }
            return forbidden("the request came from another site");
        }
    }
    let path = req.uri().path().to_string();
    if csrf_exempt(&path) {
        return next.run(req).await;
    }
    let Some(token) = session_token(req.headers()) else {
        return next.run(req).await; // The handler's CurrentUser will refuse it as unauthenticated.
    };
    let mut req = req;
    let expected = match st.store.resolve_session(&token, st.settings.session_policy).await {
        Ok(Ok(s)) => {
            let csrf = s.csrf_token.clone();
            if s.mfa_passed {
                // Handlers reuse this instead of resolving the session again.
                req.extensions_mut().insert(CurrentUser::from_signed_in(s, &st));
            }
            csrf
        }
        _ => return next.run(req).await,
    };
    if let Some(sent) = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()) {
        return if constant_eq(sent, &expected) {
            next.run(req).await
        } else {
            forbidden("the CSRF token does not match; reload the page")
        };
    }
    // Forms: read the urlencoded body for `csrf_token`, then hand the body on unchanged.
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return forbidden("send the X-CSRF-Token header with this request");
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, st.settings.body_limit_bytes).await else {
        return ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE).into_response();
    };
    let sent = form_field(&bytes, "csrf_token");
    if !sent.is_some_and(|s| constant_eq(&s, &expected)) {
        return forbidden("the form is missing its CSRF token or it is stale; reload the page");
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// WEB-2/WEB-3: the security headers on every response, errors included.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "content-security-policy", crate::ui::page::CSP);
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-frame-options", "DENY");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "permissions-policy", "camera=(), microphone=(), geolocation=()");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    res
}

/// Verifies a second person (a witness) by their own user name and password, as the
/// ledger's waste and disposal entries require. Returns the witness's actor, freshly
/// re-authenticated at the time of the check.
pub async fn witness(state: &AppState, username: &str, password: &str) -> Result<(Actor, OffsetDateTime), ApiError> {
    match state.store.verify_witness(username, password).await? {
        Some(actor) => Ok((actor, state.store.now())),
        None => Err(ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "witness",
            title: "Witness not verified",
            detail: "the witness's user name or password is not right".into(),
            errors: vec![keta_domain::FieldError::new(
                "witness_password",
                "the witness must enter their own user name and password",
            )],
        }),
    }
}
