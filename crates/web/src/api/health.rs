use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;

use crate::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub database: &'static str,
    pub backend: &'static str,
}

/// Readiness: 200 when the database answers, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn get_healthz(State(st): State<AppState>) -> impl IntoResponse {
    let backend = match st.store.backend() {
        keta_store::Backend::Sqlite => "sqlite",
        keta_store::Backend::Postgres => "postgres",
    };
    match st.store.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(Health { status: "ready", database: "ok", backend })),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(Health { status: "unavailable", database: "unreachable", backend }),
            )
        }
    }
}

/// The OpenAPI 3.1 document for this API.
pub async fn get_openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi_json())
}
