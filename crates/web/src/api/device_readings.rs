//! Readings a bedside monitor wrote into a session, and the nurse's review of each: confirm,
//! or strike as an artefact with a reason (a struck reading no longer counts for alerts,
//! discharge, charts, FHIR or the REMS form; `keta_domain::device_readings`).

use axum::extract::State;
use serde::Deserialize;

use keta_domain::device_readings::DeviceReadingDecision;
use keta_domain::ids::{RecordId, SessionId};
use keta_store::monitors::DeviceReading;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path};

/// The monitor's readings in the session, newest first, struck ones included (marked).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/device-readings", tag = "sessions", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<DeviceReading>), (status = 404, body = Problem)))]
pub async fn get_device_readings(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<DeviceReading>>> {
    Ok(Json(st.store.device_readings(&a, SessionId(id)).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceReadingReviewRequest {
    pub decision: DeviceReadingDecision,
    /// Required to strike (why the reading is an artefact); optional to confirm.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Confirms a monitor's reading, or strikes it as an artefact with a reason. Only while the
/// session is open; a struck reading stays struck (409 on a second review of it).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/device-readings/{reading}/review", tag = "sessions",
    params(("id" = i64, Path), ("reading" = i64, Path)), request_body = DeviceReadingReviewRequest,
    responses((status = 200, body = DeviceReading), (status = 422, body = Problem), (status = 409, body = Problem), (status = 404, body = Problem)))]
pub async fn post_device_reading_review(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path((id, reading)): Path<(i64, i64)>,
    Json(r): Json<DeviceReadingReviewRequest>,
) -> ApiResult<Json<DeviceReading>> {
    Ok(Json(st.store.review_device_reading(&a, SessionId(id), RecordId(reading), r.decision, r.reason).await?))
}
