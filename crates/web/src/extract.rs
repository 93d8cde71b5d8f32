//! Extractors whose rejections are problem+json, and the caller's identity.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use keta_domain::ids::SiteId;
use keta_store::{Actor, SiteScope};

use crate::error::ApiError;

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The caller. Until accounts and sign-in exist, the API trusts two headers:
/// `X-Keta-User` (name recorded in the audit trail; default `api`) and
/// `X-Keta-Sites` (comma-separated site ids limiting what the caller sees; default all).
/// Keta therefore listens on loopback by default.
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
        let name = header("x-keta-user").unwrap_or("api");
        if name.len() > 100 || name.chars().any(char::is_control) {
            return Err(ApiError::bad_request("X-Keta-User", "use a user name of at most 100 printable characters"));
        }
        let scope = match header("x-keta-sites") {
            None => SiteScope::All,
            Some(list) => SiteScope::Sites(
                list.split(',')
                    .map(|s| s.trim().parse::<i64>().map(SiteId))
                    .collect::<Result<_, _>>()
                    .map_err(|_| ApiError::bad_request("X-Keta-Sites", "give site ids separated by commas, e.g. '1,2'"))?,
            ),
        };
        Ok(Caller(Actor { name: name.to_string(), scope, role: None, user_id: None }))
    }
}
