use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;

use crate::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    /// `ok`, `unreachable`, or `disk_full` (writes are refused; nothing is saved until space is freed).
    pub database: &'static str,
    pub backend: &'static str,
    /// What is wrong, when something is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Readiness: 200 when the database answers and accepts writes, 503 otherwise.
///
/// 503 with `database: unreachable` when the database does not answer, and with
/// `database: disk_full` when its disk is full: writes then fail with a 507 problem and save
/// nothing, reads that need no audit entry keep working, and readiness returns to 200 once
/// space is freed (it retries a small write while the disk is known to be full).
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn get_healthz(State(st): State<AppState>) -> impl IntoResponse {
    let backend = match st.store.backend() {
        keta_store::Backend::Sqlite => "sqlite",
        keta_store::Backend::Postgres => "postgres",
    };
    if let Err(e) = st.store.ping().await {
        tracing::error!(error = %e, "health check failed");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Health { status: "unavailable", database: "unreachable", backend, detail: None }),
        );
    }
    // Known full: try a write that needs room, so readiness recovers once space is freed.
    if st.store.probe_disk().await {
        let since = st
            .store
            .disk_full_since()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Health {
                status: "unavailable",
                database: "disk_full",
                backend,
                detail: Some(format!(
                    "the database disk is full (since {since}): writes are refused and nothing is saved until space is freed"
                )),
            }),
        );
    }
    (StatusCode::OK, axum::Json(Health { status: "ready", database: "ok", backend, detail: None }))
}

/// The OpenAPI 3.1 document for this API.
pub async fn get_openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi_json())
}
