//! Durability for the clinic as JSON: Kaplan–Meier curves of time from the last session to
//! relapse by route or protocol, with the shares still responding at 4 and 8 weeks and the
//! published figures (clinical-reference §5). The same figures as the `/outcomes/durability`
//! page (`crate::ui::durability`), from the same cache.

use axum::extract::State;
use keta_domain::access::Permission;
use keta_domain::durability::{DurabilityReport, Grouping};
use serde::Deserialize;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Query};
use crate::ui::durability as view;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DurabilityParams {
    /// Group the curves by `route` (default) or `protocol`.
    #[param(inline)]
    pub by: Option<Grouping>,
}

/// Time from the last session to relapse over every course at the caller's sites, one
/// Kaplan–Meier curve per route or protocol (PHQ-9 responders; one per course), beside the
/// published durability figures. Reading the charts is audited.
#[utoipa::path(get, path = "/api/v1/outcomes/durability", tag = "questionnaires", params(DurabilityParams),
    responses((status = 200, body = DurabilityReport), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn get_durability(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<DurabilityParams>,
) -> ApiResult<Json<DurabilityReport>> {
    user.actor.require(Permission::ViewClinical)?;
    let (_, report) = view::report(&st, &user, q.by.unwrap_or_default()).await?;
    Ok(Json(report))
}
