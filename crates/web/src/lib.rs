//! Keta's web server: the JSON API under `/api/v1`, its OpenAPI document, and health.
//!
//! Handlers parse input into domain types, call the store, and map errors once into
//! problem+json. There is no SQL here.

pub mod api;
pub mod auth;
pub mod error;
pub mod extract;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use keta_store::Store;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;

/// Shared state for every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
}

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::ApiDoc::openapi()
}

/// The document as committed to `docs/openapi.json` (pretty, trailing newline).
pub fn openapi_json() -> String {
    let mut s = serde_json::to_string_pretty(&openapi()).expect("the OpenAPI document serialises");
    s.push('\n');
    s
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::health::get_healthz))
        .route("/api/openapi.json", get(api::health::get_openapi))
        .nest("/api/v1", api::routes())
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(1024 * 1024))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
