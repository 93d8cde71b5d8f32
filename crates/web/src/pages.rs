//! The sign-in pages: first-run setup, password, authenticator code, re-authentication,
//! sign-out and break-glass. Plain server-rendered HTML with no script.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use keta_domain::access::Role;
use keta_domain::ids::PatientId;
use keta_store::Actor;
use keta_store::accounts::NewUser;
use serde::Deserialize;

use crate::AppState;
use crate::auth::{self, CurrentUser, clear_cookie, session_cookie, session_token};

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Keta</title><link rel="stylesheet" href="/static/auth.css"></head>
<body class="auth"><main class="auth-card"><h1>Keta</h1><h2>{title}</h2>{body}</main></body></html>"#,
        title = esc(title)
    ))
}

/// The page shown when a signed-in user's role does not allow a screen.
pub fn forbidden_page(detail: &str) -> Response {
    let body = format!(r#"<p class="error" role="alert">{}</p><p><a href="/today">Back to Today</a></p>"#, esc(detail));
    (axum::http::StatusCode::FORBIDDEN, page("Not allowed for your role", &body)).into_response()
}

/// A form refused because the browser did not show it came from Keta's own pages (issue 15).
/// Over plain HTTP from another machine on the clinic's network this is what happens: browsers
/// send the proof (`Origin`, `Sec-Fetch-Site`) and keep the `Secure` sign-in cookie only for
/// HTTPS (or the server's own loopback address). The page says what to do instead of showing
/// raw JSON.
pub fn other_site_page(host: &str) -> Response {
    let body = format!(
        r#"<p class="error" role="alert">Keta refused this form: your browser did not show that it came from Keta's own pages, so nothing was saved.</p>
<p><strong>Opened Keta from another computer or tablet with an address starting <code>http://</code>?</strong> That is the cause: staff sign-in works only over HTTPS, or on the server itself at <code>http://127.0.0.1</code>. Open Keta at <code>https://{host}/</code> instead.</p>
<p>If that address does not answer, ask whoever runs the server to serve Keta over HTTPS: <code>keta serve --tls-cert cert.pem --tls-key key.pem</code>, or behind the clinic's reverse proxy (see <code>docs/serving.md</code>).</p>
<p>Came here from a link in an e-mail or another web site? Do not resubmit; open Keta yourself and try again.</p>
<p><a href="/login">Back to sign-in</a></p>"#,
        host = esc(host)
    );
    (axum::http::StatusCode::FORBIDDEN, page("This form came from another site", &body)).into_response()
}

fn error_block(msg: Option<&str>) -> String {
    msg.map(|m| format!(r#"<p class="error" role="alert">{}</p>"#, esc(m))).unwrap_or_default()
}

/// Only local paths are accepted as a place to return to.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

#[derive(Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

fn login_form(next: &str, user: &str, error: Option<&str>) -> Html<String> {
    page(
        "Sign in",
        &format!(
            r#"{err}<form method="post" action="/login" class="stack">
<input type="hidden" name="next" value="{next}">
<label for="username">User name</label><input id="username" name="username" autocomplete="username" required value="{user}" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Continue</button></form>"#,
            err = error_block(error),
            next = esc(next),
            user = esc(user)
        ),
    )
}

pub async fn get_login(State(st): State<AppState>, Query(q): Query<NextParam>) -> Response {
    if st.store.user_count().await.unwrap_or(1) == 0 {
        return Redirect::to("/setup").into_response();
    }
    login_form(&safe_next(q.next.as_deref()), "", None).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

const GENERIC_FAILURE: &str = "The user name or password is not right.";

pub async fn post_login(
    State(st): State<AppState>,
    req_parts: axum::http::Extensions,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    if let Some(wait) = st.throttle.check(&f.username, auth::client_ip(&req_parts)) {
        let secs = auth::retry_after_seconds(wait);
        let msg = format!("Too many attempts. Try again in {secs} seconds.");
        let page = (axum::http::StatusCode::TOO_MANY_REQUESTS, login_form(&next, &f.username, Some(&msg)));
        return auth::with_retry_after(page.into_response(), secs);
    }
    match st.store.begin_sign_in(&f.username, &f.password).await {
        Ok(Some(token)) => {
            let mut r = Redirect::to(&format!("/login/code?next={}", auth::urlencode(&next))).into_response();
            r.headers_mut().insert(header::SET_COOKIE, session_cookie(&token));
            r
        }
        Ok(None) => {
            st.throttle.failed(&f.username);
            (axum::http::StatusCode::UNAUTHORIZED, login_form(&next, &f.username, Some(GENERIC_FAILURE)))
                .into_response()
        }
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

fn code_form(next: &str, error: Option<&str>) -> Html<String> {
    page(
        "Authenticator code",
        &format!(
            r#"{err}<form method="post" action="/login/code" class="stack">
<input type="hidden" name="next" value="{next}">
<label for="code">6-digit code from your authenticator app</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{{6,7}}" required autofocus>
<button type="submit">Sign in</button></form>"#,
            err = error_block(error),
            next = esc(next)
        ),
    )
}

pub async fn get_code(Query(q): Query<NextParam>) -> Html<String> {
    code_form(&safe_next(q.next.as_deref()), None)
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
    next: Option<String>,
}

pub async fn post_code(State(st): State<AppState>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    let Some(token) = session_token(&headers) else { return Redirect::to("/login").into_response() };
    match st.store.complete_second_factor(&token, &f.code).await {
        Ok(true) => Redirect::to(&next).into_response(),
        Ok(false) => (
            axum::http::StatusCode::UNAUTHORIZED,
            code_form(&next, Some("That code is not right or was already used. Wait for the next code.")),
        )
            .into_response(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

pub async fn post_logout(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        let _ = st.store.end_session(&token).await;
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(header::SET_COOKIE, clear_cookie());
    r.headers_mut().insert("clear-site-data", HeaderValue::from_static("\"cache\", \"cookies\", \"storage\""));
    r
}

fn reauth_form(user: &CurrentUser, next: &str, error: Option<&str>) -> Html<String> {
    // In kiosk mode this page is the only way back from the patient's tablet to staff pages.
    let (title, why) = if user.kiosk_patient.is_some() {
        ("Staff: unlock the tablet", "The tablet is in kiosk mode. Staff enter their password to use it again.")
    } else {
        ("Confirm it is you", "Signing records and controlled-substance entries need your password again.")
    };
    page(
        title,
        &format!(
            r#"{err}<p>{why}</p>
<form method="post" action="/reauth" class="stack">
<input type="hidden" name="csrf_token" value="{csrf}"><input type="hidden" name="next" value="{next}">
<label for="password">Password for {name}</label><input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Confirm</button></form>"#,
            err = error_block(error),
            why = esc(why),
            csrf = esc(&user.csrf_token),
            next = esc(next),
            name = esc(&user.username)
        ),
    )
}

pub async fn get_reauth(user: CurrentUser, Query(q): Query<NextParam>) -> Html<String> {
    reauth_form(&user, &safe_next(q.next.as_deref()), None)
}

#[derive(Deserialize)]
pub struct ReauthForm {
    password: String,
    next: Option<String>,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

pub async fn post_reauth(
    State(st): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Form(f): Form<ReauthForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let Some(token) = session_token(&headers) else { return Redirect::to("/login").into_response() };
    // Throttled like sign-in, so a patient holding a kiosk tablet cannot guess the password.
    if let Some(wait) = st.throttle.check(&user.username, None) {
        let page = (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            reauth_form(&user, &next, Some("Too many wrong passwords. Wait a moment and try again.")),
        );
        return auth::with_retry_after(page.into_response(), auth::retry_after_seconds(wait));
    }
    match st.store.reauthenticate(&token, &f.password).await {
        Ok(Some(new_token)) => {
            st.throttle.succeeded(&user.username);
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().insert(header::SET_COOKIE, session_cookie(&new_token));
            r
        }
        Ok(None) => {
            st.throttle.failed(&user.username);
            (axum::http::StatusCode::UNAUTHORIZED, reauth_form(&user, &next, Some("That password is not right.")))
                .into_response()
        }
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

fn setup_form(error: Option<&str>, f: Option<&SetupForm>) -> Html<String> {
    let v = |g: fn(&SetupForm) -> &str| f.map(g).map(esc).unwrap_or_default();
    page(
        "First-run setup",
        &format!(
            r#"{err}<p>No accounts exist yet. Create the first administrator. There are no default accounts.</p>
<form method="post" action="/setup" class="stack">
<label for="username">User name</label><input id="username" name="username" required value="{u}">
<label for="display_name">Full name (as printed on signatures)</label><input id="display_name" name="display_name" required value="{d}">
<label for="password">Password (at least 8 characters; a phrase works well)</label><input id="password" name="password" type="password" autocomplete="new-password" required>
<button type="submit">Create administrator</button></form>"#,
            err = error_block(error),
            u = v(|f| &f.username),
            d = v(|f| &f.display_name)
        ),
    )
}

pub async fn get_setup(State(st): State<AppState>) -> Response {
    if st.store.user_count().await.unwrap_or(1) > 0 {
        return Redirect::to("/login").into_response();
    }
    setup_form(None, None).into_response()
}

#[derive(Deserialize)]
pub struct SetupForm {
    username: String,
    display_name: String,
    password: String,
}

pub async fn post_setup(State(st): State<AppState>, Form(f): Form<SetupForm>) -> Response {
    if st.store.user_count().await.unwrap_or(1) > 0 {
        return Redirect::to("/login").into_response();
    }
    let new = NewUser {
        username: f.username.clone(),
        display_name: f.display_name.clone(),
        role: Role::Administrator,
        password: f.password.clone(),
        site_ids: vec![],
        can_break_glass: false,
        totp_secret: None,
    };
    match st.store.create_user(&Actor::system(), new).await {
        Ok((user, secret)) => page(
            "Administrator created",
            &format!(
                r#"<p>Add this key to your authenticator app (TOTP, 6 digits, 30 seconds), then sign in as <strong>{u}</strong>.</p>
<p class="secret"><code>{s}</code></p><p><a href="/login">Sign in</a></p>"#,
                u = esc(&user.username),
                s = esc(&secret)
            ),
        )
        .into_response(),
        Err(e) => {
            let msg = e.to_string();
            (axum::http::StatusCode::UNPROCESSABLE_ENTITY, setup_form(Some(&msg), Some(&f))).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct BreakGlassForm {
    reason: String,
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

/// Emergency access to one patient's chart outside the user's sites.
pub async fn post_break_glass(
    State(st): State<AppState>,
    user: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<i64>,
    Form(f): Form<BreakGlassForm>,
) -> Response {
    match st.store.break_glass(&user.actor, PatientId(id), &f.reason, st.break_glass_minutes).await {
        Ok(_) => Redirect::to(&format!("/patients/{id}")).into_response(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}
