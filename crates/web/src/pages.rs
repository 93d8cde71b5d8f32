//! The sign-in pages: first-run setup, password, authenticator code, re-authentication,
//! sign-out and break-glass. Plain server-rendered HTML with no script, from the templates in
//! `templates/auth/` like every other page.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keta_domain::access::Role;
use keta_domain::ids::PatientId;
use keta_store::Actor;
use keta_store::accounts::NewUser;
use serde::Deserialize;

use crate::AppState;
use crate::auth::{self, CurrentUser, clear_cookie, session_cookie, session_token};
use crate::ui::page::render_status;

/// The sign-in pages' templates (`templates/auth/`): one layout with the title and an
/// optional error, escaped by askama like every other page.
mod view {
    use askama::Template;

    #[derive(Template)]
    #[template(path = "auth/login.html")]
    pub struct Login<'a> {
        pub title: &'a str,
        pub error: Option<&'a str>,
        pub next: &'a str,
        pub user: &'a str,
    }

    #[derive(Template)]
    #[template(path = "auth/code.html")]
    pub struct Code<'a> {
        pub title: &'a str,
        pub error: Option<&'a str>,
        pub next: &'a str,
    }

    #[derive(Template)]
    #[template(path = "auth/reauth.html")]
    pub struct Reauth<'a> {
        pub title: &'a str,
        pub error: Option<&'a str>,
        pub why: &'a str,
        pub csrf: &'a str,
        pub next: &'a str,
        pub name: &'a str,
    }

    #[derive(Template)]
    #[template(path = "auth/setup.html")]
    pub struct Setup<'a> {
        pub title: &'a str,
        pub error: Option<&'a str>,
        pub username: &'a str,
        pub display_name: &'a str,
    }

    #[derive(Template)]
    #[template(path = "auth/setup_done.html")]
    pub struct SetupDone<'a> {
        pub title: &'a str,
        pub error: Option<&'a str>,
        pub username: &'a str,
        pub secret: &'a str,
    }

    #[derive(Template)]
    #[template(path = "auth/forbidden.html")]
    pub struct Forbidden<'a> {
        pub title: &'a str,
        pub error: Option<&'a str>,
        pub detail: &'a str,
    }

    #[derive(Template)]
    #[template(path = "auth/other_site.html")]
    pub struct OtherSite<'a> {
        pub title: &'a str,
        pub error: Option<&'a str>,
        pub host: &'a str,
    }
}

/// The page shown when a signed-in user's role does not allow a screen.
pub fn forbidden_page(detail: &str) -> Response {
    let t = view::Forbidden { title: "Not allowed for your role", error: None, detail };
    render_status(StatusCode::FORBIDDEN, &t)
}

/// A form refused because the browser did not show it came from Keta's own pages.
/// Over plain HTTP from another machine on the clinic's network this is what happens: browsers
/// send the proof (`Origin`, `Sec-Fetch-Site`) and keep the `Secure` sign-in cookie only for
/// HTTPS (or the server's own loopback address). The page says what to do instead of showing
/// raw JSON.
pub fn other_site_page(host: &str) -> Response {
    let t = view::OtherSite { title: "This form came from another site", error: None, host };
    render_status(StatusCode::FORBIDDEN, &t)
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

fn login_form(status: StatusCode, next: &str, user: &str, error: Option<&str>) -> Response {
    render_status(status, &view::Login { title: "Sign in", error, next, user })
}

pub async fn get_login(State(st): State<AppState>, Query(q): Query<NextParam>) -> Response {
    if st.store.user_count().await.unwrap_or(1) == 0 {
        return Redirect::to("/setup").into_response();
    }
    login_form(StatusCode::OK, &safe_next(q.next.as_deref()), "", None)
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
    let throttled = match st.throttle.check(&st.store, &f.username, auth::client_ip(&req_parts)).await {
        Ok(t) => t,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    if let Some(wait) = throttled {
        let secs = auth::retry_after_seconds(wait);
        let msg = format!("Too many attempts. Try again in {secs} seconds.");
        let page = login_form(StatusCode::TOO_MANY_REQUESTS, &next, &f.username, Some(&msg));
        return auth::with_retry_after(page, secs);
    }
    match st.store.begin_sign_in(&f.username, &f.password).await {
        Ok(Some(token)) => {
            let mut r = Redirect::to(&format!("/login/code?next={}", auth::urlencode(&next))).into_response();
            r.headers_mut().insert(header::SET_COOKIE, session_cookie(&token));
            r
        }
        Ok(None) => {
            if let Err(e) = st.throttle.failed(&st.store, &f.username).await {
                return crate::error::ApiError::from(e).into_response();
            }
            login_form(StatusCode::UNAUTHORIZED, &next, &f.username, Some(GENERIC_FAILURE))
        }
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

fn code_form(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    render_status(status, &view::Code { title: "Authenticator code", error, next })
}

pub async fn get_code(Query(q): Query<NextParam>) -> Response {
    code_form(StatusCode::OK, &safe_next(q.next.as_deref()), None)
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
        Ok(false) => code_form(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That code is not right or was already used. Wait for the next code."),
        ),
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

fn reauth_form(status: StatusCode, user: &CurrentUser, next: &str, error: Option<&str>) -> Response {
    // In kiosk mode this page is the only way back from the patient's tablet to staff pages.
    let (title, why) = if user.kiosk_patient.is_some() {
        ("Staff: unlock the tablet", "The tablet is in kiosk mode. Staff enter their password to use it again.")
    } else {
        ("Confirm it is you", "Signing records and controlled-substance entries need your password again.")
    };
    let t = view::Reauth { title, error, why, csrf: &user.csrf_token, next, name: &user.username };
    render_status(status, &t)
}

pub async fn get_reauth(user: CurrentUser, Query(q): Query<NextParam>) -> Response {
    reauth_form(StatusCode::OK, &user, &safe_next(q.next.as_deref()), None)
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
    let throttled = match st.throttle.check(&st.store, &user.username, None).await {
        Ok(t) => t,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    if let Some(wait) = throttled {
        let page = reauth_form(
            StatusCode::TOO_MANY_REQUESTS,
            &user,
            &next,
            Some("Too many wrong passwords. Wait a moment and try again."),
        );
        return auth::with_retry_after(page, auth::retry_after_seconds(wait));
    }
    match st.store.reauthenticate(&token, &f.password).await {
        Ok(Some(new_token)) => {
            if let Err(e) = st.throttle.succeeded(&st.store, &user.username).await {
                return crate::error::ApiError::from(e).into_response();
            }
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut().insert(header::SET_COOKIE, session_cookie(&new_token));
            r
        }
        Ok(None) => {
            if let Err(e) = st.throttle.failed(&st.store, &user.username).await {
                return crate::error::ApiError::from(e).into_response();
            }
            reauth_form(StatusCode::UNAUTHORIZED, &user, &next, Some("That password is not right."))
        }
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

fn setup_form(status: StatusCode, error: Option<&str>, f: Option<&SetupForm>) -> Response {
    let t = view::Setup {
        title: "First-run setup",
        error,
        username: f.map_or("", |f| &f.username),
        display_name: f.map_or("", |f| &f.display_name),
    };
    render_status(status, &t)
}

pub async fn get_setup(State(st): State<AppState>) -> Response {
    if st.store.user_count().await.unwrap_or(1) > 0 {
        return Redirect::to("/login").into_response();
    }
    setup_form(StatusCode::OK, None, None)
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
        Ok((user, secret)) => {
            let t = view::SetupDone {
                title: "Administrator created",
                error: None,
                username: &user.username,
                secret: &secret,
            };
            render_status(StatusCode::OK, &t)
        }
        Err(e) => {
            let msg = e.to_string();
            setup_form(StatusCode::UNPROCESSABLE_ENTITY, Some(&msg), Some(&f))
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
    match st.store.break_glass(&user.actor, PatientId(id), &f.reason, st.settings.break_glass_minutes).await {
        Ok(_) => Redirect::to(&format!("/patients/{id}")).into_response(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}
