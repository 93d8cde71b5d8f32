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

/// Liveness: the process is up and answering. Never touches the database, so a slow or
/// unreachable database does not get a healthy process restarted.
#[utoipa::path(get, path = "/livez", tag = "health", responses((status = 200, body = Liveness)))]
pub async fn get_livez() -> impl IntoResponse {
    axum::Json(Liveness { status: "alive" })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Liveness {
    pub status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    /// Why not ready: `shutting_down`, `migrating` (a schema migration is running, or the
    /// database's schema is older than this server's), `database_unreachable` or `disk_full`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    pub backend: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Readiness for a load balancer: 200 when this server should get requests, 503 otherwise:
/// while it shuts down, while a migration runs (or the database's schema is older than this server's),
/// when the database does not answer, and when its disk is full. No patient data.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn get_readyz(State(st): State<AppState>) -> impl IntoResponse {
    let backend = match st.store.backend() {
        keta_store::Backend::Sqlite => "sqlite",
        keta_store::Backend::Postgres => "postgres",
    };
    let not_ready = |reason, detail: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Readiness { status: "unavailable", reason: Some(reason), backend, detail: Some(detail) }),
        )
    };
    if st.observe.is_draining() {
        return not_ready("shutting_down", "this server is shutting down; send requests to another".into());
    }
    match st.store.migrations_running().await {
        Ok(true) => return not_ready("migrating", "a schema migration is running".into()),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            return not_ready("database_unreachable", "the database does not answer".into());
        }
    }
    match st.store.schema_version().await {
        // A newer schema (a newer server migrated during a rolling upgrade) is fine: migrations
        // only add. An older one means this server's migrations have not been applied yet.
        Ok(v) if v >= keta_store::latest_version() => {}
        Ok(v) => {
            return not_ready(
                "migrating",
                format!("the database's schema is version {v}, this server's is {}", keta_store::latest_version()),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            return not_ready("database_unreachable", "the database does not answer".into());
        }
    }
    if st.store.probe_disk().await {
        return not_ready("disk_full", "the database disk is full: writes are refused until space is freed".into());
    }
    (StatusCode::OK, axum::Json(Readiness { status: "ready", reason: None, backend, detail: None }))
}
