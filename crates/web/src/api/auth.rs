//! Sign-in for API clients, the signed-in user, accounts and break-glass.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keta_domain::access::Role;
use keta_domain::ids::{PatientId, SiteId};
use keta_store::accounts::{NewUser, User};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::{CurrentUser, clear_cookie, session_cookie, session_token};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Path};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// The current 6-digit code from the user's authenticator app.
    pub code: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedInUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub site_ids: Vec<SiteId>,
    /// Send as `X-CSRF-Token` with every state-changing request.
    pub csrf_token: String,
}

fn failed(status: StatusCode, detail: &str) -> ApiError {
    ApiError { status, kind: "sign-in", title: "Sign-in failed", detail: detail.to_string(), errors: vec![] }
}

/// Signs in with password and TOTP code; sets the session cookie and returns the CSRF token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = SignedInUser), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn post_login(
    State(st): State<AppState>,
    ext: axum::http::Extensions,
    Json(c): Json<Credentials>,
) -> ApiResult<Response> {
    if let Some(wait) = st.throttle.check(&st.store, &c.username, crate::auth::client_ip(&ext)).await? {
        let secs = crate::auth::retry_after_seconds(wait);
        let refused = failed(StatusCode::TOO_MANY_REQUESTS, &format!("too many attempts; try again in {secs} seconds"));
        return Ok(crate::auth::with_retry_after(refused.into_response(), secs));
    }
    let generic = "the user name, password or code is not right";
    let Some(token) = st.store.begin_sign_in(&c.username, &c.password).await? else {
        st.throttle.failed(&st.store, &c.username).await?;
        return Err(failed(StatusCode::UNAUTHORIZED, generic));
    };
    if !st.store.complete_second_factor(&token, &c.code).await? {
        st.throttle.failed(&st.store, &c.username).await?;
        st.store.end_session(&token).await?;
        return Err(failed(StatusCode::UNAUTHORIZED, generic));
    }
    st.throttle.succeeded(&st.store, &c.username).await?;
    let Ok(s) = st.store.resolve_session(&token, st.settings.session_policy).await? else {
        return Err(failed(StatusCode::UNAUTHORIZED, generic));
    };
    let body = SignedInUser {
        username: s.user.username,
        display_name: s.user.display_name,
        role: s.user.role,
        site_ids: s.user.site_ids,
        csrf_token: s.csrf_token,
    };
    let mut r = axum::Json(body).into_response();
    r.headers_mut().insert(header::SET_COOKIE, session_cookie(&token));
    Ok(r)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn post_logout(State(st): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = session_token(&headers) {
        st.store.end_session(&token).await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::SET_COOKIE, clear_cookie());
    Ok(r)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reauth {
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Reauthenticated {
    #[serde(with = "time::serde::rfc3339")]
    pub reauthenticated_at: OffsetDateTime,
}

/// Re-enter the password before signing or ledger entries; rotates the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/reauth", tag = "auth", request_body = Reauth,
    responses((status = 200, body = Reauthenticated), (status = 401, body = Problem),
        (status = 429, description = "Too many wrong passwords: wait for Retry-After", body = Problem)))]
pub async fn post_reauth(
    State(st): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Json(r): Json<Reauth>,
) -> ApiResult<Response> {
    let token = session_token(&headers).ok_or_else(|| failed(StatusCode::UNAUTHORIZED, "no session"))?;
    // Throttled like sign-in: a patient holding a kiosk tablet must not be able to guess
    // the staff member's password.
    if let Some(wait) = st.throttle.check(&st.store, &user.username, None).await? {
        let secs = crate::auth::retry_after_seconds(wait);
        let refused =
            failed(StatusCode::TOO_MANY_REQUESTS, &format!("too many wrong passwords; try again in {secs} seconds"));
        return Ok(crate::auth::with_retry_after(refused.into_response(), secs));
    }
    let Some(new_token) = st.store.reauthenticate(&token, &r.password).await? else {
        st.throttle.failed(&st.store, &user.username).await?;
        return Err(failed(StatusCode::UNAUTHORIZED, "that password is not right"));
    };
    st.throttle.succeeded(&st.store, &user.username).await?;
    let mut resp = axum::Json(Reauthenticated { reauthenticated_at: st.store.now() }).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(&new_token));
    Ok(resp)
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = SignedInUser), (status = 401, body = Problem)))]
pub async fn get_me(user: CurrentUser) -> Json<SignedInUser> {
    Json(SignedInUser {
        username: user.username,
        display_name: user.display_name,
        role: user.role,
        site_ids: user.site_ids,
        csrf_token: user.csrf_token,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub site_ids: Vec<SiteId>,
    pub can_break_glass: bool,
    pub disabled: bool,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            role: u.role,
            site_ids: u.site_ids,
            can_break_glass: u.can_break_glass,
            disabled: u.disabled,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/users", tag = "auth", responses((status = 200, body = Vec<UserView>), (status = 403, body = Problem)))]
pub async fn get_users(State(st): State<AppState>, user: CurrentUser) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(st.store.list_users(&user.actor).await?.into_iter().map(UserView::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password: String,
    #[serde(default)]
    pub site_ids: Vec<SiteId>,
    #[serde(default)]
    pub can_break_glass: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedUser {
    pub user: UserView,
    /// The TOTP key to add to the user's authenticator app; shown once.
    pub totp_secret: String,
}

#[utoipa::path(post, path = "/api/v1/users", tag = "auth", request_body = NewUserRequest,
    responses((status = 201, body = CreatedUser), (status = 403, body = Problem), (status = 422, body = Problem), (status = 409, body = Problem)))]
pub async fn post_user(
    State(st): State<AppState>,
    user: CurrentUser,
    Json(n): Json<NewUserRequest>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    let new = NewUser {
        username: n.username,
        display_name: n.display_name,
        role: n.role,
        password: n.password,
        site_ids: n.site_ids,
        can_break_glass: n.can_break_glass,
        totp_secret: None,
    };
    let (u, secret) = st.store.create_user(&user.actor, new).await?;
    Ok((StatusCode::CREATED, Json(CreatedUser { user: u.into(), totp_secret: secret })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlass {
    /// Why emergency access is needed (at least 10 characters).
    pub reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BreakGlassGrant {
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Emergency access to a patient outside the user's sites: typed reason, short expiry, high-priority audit.
#[utoipa::path(post, path = "/api/v1/patients/{id}/break-glass", tag = "auth", params(("id" = i64, Path)), request_body = BreakGlass,
    responses((status = 201, body = BreakGlassGrant), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn post_break_glass(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Json(b): Json<BreakGlass>,
) -> ApiResult<(StatusCode, Json<BreakGlassGrant>)> {
    let expires_at =
        st.store.break_glass(&user.actor, PatientId(id), &b.reason, st.settings.break_glass_minutes).await?;
    Ok((StatusCode::CREATED, Json(BreakGlassGrant { expires_at })))
}
