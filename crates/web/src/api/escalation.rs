//! Escalation of urgent alerts nobody acknowledged: the clinic's wait, who is on
//! duty at each site, and the escalations made (`keta_domain::escalation`).

use axum::extract::State;
use keta_domain::escalation::{EscalationSettings, OnDuty};
use keta_domain::ids::SiteId;
use keta_store::alerts::AlertEscalation;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path};

/// The clinic's escalation rule. `escalate_after_minutes` is `null` until the medical director
/// sets it (clinical-reference §4 gives no figure): then no alert is escalated.
#[utoipa::path(get, path = "/api/v1/settings/alert-escalation", tag = "alerts",
    responses((status = 200, body = EscalationSettings)))]
pub async fn get_escalation_settings(
    State(st): State<AppState>,
    _u: CurrentUser,
) -> ApiResult<Json<EscalationSettings>> {
    Ok(Json(st.store.escalation_settings().await?))
}

/// Sets the minutes an urgent alert may stay unacknowledged before it is escalated (1-1440, or
/// `null` for no escalation). Administrators of every site.
#[utoipa::path(put, path = "/api/v1/settings/alert-escalation", tag = "alerts", request_body = EscalationSettings,
    responses((status = 200, body = EscalationSettings), (status = 422, body = Problem), (status = 403, body = Problem)))]
pub async fn put_escalation_settings(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Json(s): Json<EscalationSettings>,
) -> ApiResult<Json<EscalationSettings>> {
    st.store.set_escalation_settings(&a, s).await?;
    Ok(Json(s))
}

/// Who is on duty at the site for escalations, and whether its boards sound.
#[utoipa::path(get, path = "/api/v1/sites/{id}/on-duty", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 200, body = OnDuty), (status = 404, body = Problem)))]
pub async fn get_on_duty(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<OnDuty>> {
    Ok(Json(st.store.on_duty(&a, SiteId(id)).await?))
}

/// Names the prescriber on duty (an enabled prescriber of the site) and the e-mail address or
/// mobile number escalations go to; turns the boards' alarm sound on or off.
#[utoipa::path(put, path = "/api/v1/sites/{id}/on-duty", tag = "alerts", params(("id" = i64, Path)), request_body = OnDuty,
    responses((status = 200, body = OnDuty), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn put_on_duty(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(s): Json<OnDuty>,
) -> ApiResult<Json<OnDuty>> {
    let out = st.store.set_on_duty(&a, SiteId(id), s).await?;
    crate::ui::live::publish(Some(SiteId(id))); // the boards' sound setting
    Ok(Json(out))
}

/// The site's escalated alerts, oldest first, with who was sent the message and how it went.
#[utoipa::path(get, path = "/api/v1/sites/{id}/alert-escalations", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<AlertEscalation>), (status = 404, body = Problem)))]
pub async fn get_alert_escalations(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<AlertEscalation>>> {
    Ok(Json(st.store.alert_escalations(&a, SiteId(id), false).await?))
}

/// What an escalation sweep did.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EscalationSweep {
    /// Urgent alerts escalated now (not acknowledged within the clinic's time).
    pub escalated: usize,
    /// Escalations sent to the prescriber on duty.
    pub sent: usize,
}

/// Escalates now what is due (the server also does this every minute): for a one-off run or
/// a check after changing the settings. Administrators.
#[utoipa::path(post, path = "/api/v1/alert-escalations/sweep", tag = "alerts",
    responses((status = 200, body = EscalationSweep), (status = 403, body = Problem)))]
pub async fn post_escalation_sweep(State(st): State<AppState>, u: CurrentUser) -> ApiResult<Json<EscalationSweep>> {
    u.actor.require(keta_domain::access::Permission::ManageUsers)?;
    let e = crate::escalation::escalate_and_send(&st.store, &st.reminders).await?;
    Ok(Json(EscalationSweep { escalated: e.escalated, sent: e.sent }))
}
