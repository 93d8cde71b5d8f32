//! The SPRAVATO REMS Patient Monitoring Form: the form filled from the session,
//! the clinician's answers, marking it submitted, the CSV for the portal, and the 7-day queue.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use keta_domain::ids::{SessionId, SiteId};
use keta_domain::rems::{MarkSubmitted, RemsAnswers};
use keta_store::rems::{RemsFormView, RemsQueueItem};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path, Query};

/// The session's monitoring form: every field, where each comes from, and what is missing.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/rems-form", tag = "rems", params(("id" = i64, Path)),
    responses((status = 200, body = RemsFormView), (status = 404, body = Problem)))]
pub async fn get_rems_form(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<RemsFormView>> {
    Ok(Json(st.store.rems_form(&a, SessionId(id)).await?))
}

/// Saves the clinician's answers for the fields the session record lacks (all of them at once).
#[utoipa::path(put, path = "/api/v1/sessions/{id}/rems-form", tag = "rems", params(("id" = i64, Path)), request_body = RemsAnswers,
    responses((status = 200, body = RemsFormView), (status = 422, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn put_rems_form(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(answers): Json<RemsAnswers>,
) -> ApiResult<Json<RemsFormView>> {
    Ok(Json(st.store.save_rems_answers(&a, SessionId(id), answers).await?))
}

/// Marks the complete form submitted to the REMS, with the confirmation number and date.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/rems-form/submitted", tag = "rems", params(("id" = i64, Path)), request_body = MarkSubmitted,
    responses((status = 200, body = RemsFormView), (status = 422, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn post_rems_submitted(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(m): Json<MarkSubmitted>,
) -> ApiResult<Json<RemsFormView>> {
    Ok(Json(st.store.mark_rems_submitted(&a, SessionId(id), m).await?))
}

/// The form as CSV (a header row and one row) for the REMS portal; an audited export.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/rems-form/csv", tag = "rems", params(("id" = i64, Path)),
    responses((status = 200, description = "The form as CSV", content_type = "text/csv", body = String), (status = 404, body = Problem)))]
pub async fn get_rems_csv(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let out = st.store.rems_form_csv(&a, SessionId(id)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"rems-form-session-{id}.csv\"")),
        ],
        out,
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QueueParams {
    /// Sessions with a dose given in the last this many days (1-3660).
    #[param(minimum = 1, maximum = 3660)]
    pub days: Option<i64>,
}

/// The site's monitoring forms against the 7-day limit: due, due soon (when the site set
/// `rems_due_soon_within_days`), overdue, submitted.
#[utoipa::path(get, path = "/api/v1/sites/{id}/rems-queue", tag = "rems", params(("id" = i64, Path), QueueParams),
    responses((status = 200, body = Vec<RemsQueueItem>), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_rems_queue(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<QueueParams>,
) -> ApiResult<Json<Vec<RemsQueueItem>>> {
    let from = match q.days {
        None => OffsetDateTime::UNIX_EPOCH,
        Some(d) if (1..=3660).contains(&d) => st.store.now() - time::Duration::days(d),
        Some(_) => return Err(crate::error::ApiError::bad_request("days", "1-3660 days")),
    };
    Ok(Json(st.store.rems_queue(&a, SiteId(id), from).await?))
}
