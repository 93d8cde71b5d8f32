//! The chair calendar and the course's prescription.

use axum::extract::State;
use axum::http::StatusCode;
use keta_domain::dosing::DoseCalculation;
use keta_domain::ids::{CourseId, SessionId, SiteId};
use keta_domain::prescription::{NewCourseOrder, NewOrderOverride};
use keta_domain::schedule::ScheduledSession;
use keta_store::calendar::{BookCourse, NoShow, NoShowResult, Reschedule, SiteCalendar};
use keta_store::orders::{CourseOrder, OrderOverride};
use serde::{Deserialize, Serialize};
use time::Date;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path, Query};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CalendarParams {
    /// The first local date shown (`YYYY-MM-DD`).
    pub from: Date,
    /// How many days: 1 (day view) to 31; 7 is the week view.
    #[param(minimum = 1, maximum = 31)]
    pub days: Option<u32>,
}

/// A site's chair calendar: chairs, booked sessions with the chair time of their route (its minimum
/// monitoring time, with the rule's source), cancellations and no-shows with their reasons, and the
/// prescriber on duty. An audited read of every patient listed.
#[utoipa::path(get, path = "/api/v1/sites/{id}/calendar", tag = "calendar", params(("id" = i64, Path), CalendarParams),
    responses((status = 200, body = SiteCalendar), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn get_site_calendar(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<CalendarParams>,
) -> ApiResult<Json<SiteCalendar>> {
    Ok(Json(st.store.site_calendar(&a, SiteId(id), q.from, q.days.unwrap_or(7)).await?))
}

/// Books every session of a course from its protocol's schedule generator at one local time of day,
/// each into a free chair (the asked one when free). Refused as a whole (409) when a session finds no
/// free chair (each named), or the course already has booked sessions.
#[utoipa::path(post, path = "/api/v1/courses/{id}/bookings", tag = "calendar", params(("id" = i64, Path)), request_body = BookCourse,
    responses((status = 201, body = Vec<ScheduledSession>), (status = 409, body = Problem), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_course_bookings(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(req): Json<BookCourse>,
) -> ApiResult<(StatusCode, Json<Vec<ScheduledSession>>)> {
    Ok((StatusCode::CREATED, Json(st.store.book_course(&a, CourseId(id), st.protocols.clone(), req).await?)))
}

/// Moves a booked session to another local date and time (and chair). Refused (409) when the chair is
/// held then, or the session has started.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/reschedule", tag = "calendar", params(("id" = i64, Path)), request_body = Reschedule,
    responses((status = 200, body = ScheduledSession), (status = 409, body = Problem), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_reschedule(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(req): Json<Reschedule>,
) -> ApiResult<Json<ScheduledSession>> {
    Ok(Json(st.store.reschedule_session(&a, SessionId(id), req).await?))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// Cancels a booked session, with the reason; its chair is free again.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/cancel", tag = "calendar", params(("id" = i64, Path)), request_body = CancelRequest,
    responses((status = 200, body = ScheduledSession), (status = 409, body = Problem), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_cancel(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(req): Json<CancelRequest>,
) -> ApiResult<Json<ScheduledSession>> {
    Ok(Json(st.store.cancel_session(&a, SessionId(id), req.reason).await?))
}

/// Records a no-show with the reason once the session's time has passed, and applies the course's
/// protocol's missed-session rule (`make_up_on` where the rule makes the session up).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/no-show", tag = "calendar", params(("id" = i64, Path)), request_body = NoShow,
    responses((status = 200, body = NoShowResult), (status = 409, body = Problem), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_no_show(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(req): Json<NoShow>,
) -> ApiResult<Json<NoShowResult>> {
    Ok(Json(st.store.record_no_show(&a, SessionId(id), st.protocols.clone(), req).await?))
}

/// The front desk marks the patient arrived: today's booked session is checked in and the patient is
/// on the board.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/arrival", tag = "calendar", params(("id" = i64, Path)),
    responses((status = 200, body = ScheduledSession), (status = 409, body = Problem), (status = 404, body = Problem)))]
pub async fn post_arrival(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<ScheduledSession>> {
    Ok(Json(st.store.mark_arrival(&a, SessionId(id)).await?))
}

/// The order in force and what it works out to for the patient's latest actual weight.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub order: Option<CourseOrder>,
    /// The allowed doses in words, e.g. `0.5, 0.6 or 0.7 mg/kg`.
    pub allowed: Option<String>,
    /// The ordered dose for the latest actual weight, with the calculator's working; absent
    /// without an order or a weight (`calculation_note` says which).
    pub calculation: Option<DoseCalculation>,
    pub calculation_note: Option<String>,
}

async fn order_view(st: &AppState, a: &keta_store::Actor, course: CourseId) -> ApiResult<OrderView> {
    let order = st.store.course_order(a, course).await?;
    let Some(o) = order else {
        return Ok(OrderView {
            order: None,
            allowed: None,
            calculation: None,
            calculation_note: Some("no order recorded".into()),
        });
    };
    let lib = &*st.protocols;
    let c = st.store.get_course(a, course).await?;
    let weight = st
        .store
        .list_weights(a, c.patient_id)
        .await?
        .into_iter()
        .filter(|w| w.weight_type == keta_domain::patient::WeightType::Actual)
        .max_by_key(|w| (w.measured_on, w.id));
    let (calculation, calculation_note) = match (weight, lib.get(&o.order.protocol_id)) {
        (None, _) => (None, Some("record the patient's weight to see the dose in mg".to_string())),
        (_, None) => (None, Some(format!("protocol '{}' is no longer in the library", o.order.protocol_id))),
        (Some(w), Some(p)) => match o.order.calculate_for(p, o.order.dose, w.weight_kg, None) {
            Ok(calc) => (Some(calc), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    Ok(OrderView { allowed: Some(o.order.allowed_text()), order: Some(o), calculation, calculation_note })
}

#[utoipa::path(get, path = "/api/v1/courses/{id}/order", tag = "courses", params(("id" = i64, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem)))]
pub async fn get_course_order(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<OrderView>> {
    Ok(Json(order_view(&st, &a, CourseId(id)).await?))
}

/// Records the prescriber's order for the course (a new order replaces the one in force): the protocol
/// by id, the dose in mg/kg, mg or devices, the infusion time and bag volume for IV, and the titration
/// step with the maximum. Checked against the protocol (route, dose unit, its maximum).
#[utoipa::path(put, path = "/api/v1/courses/{id}/order", tag = "courses", params(("id" = i64, Path)), request_body = NewCourseOrder,
    responses((status = 200, body = OrderView), (status = 403, body = Problem), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn put_course_order(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(order): Json<NewCourseOrder>,
) -> ApiResult<Json<OrderView>> {
    let lib = &*st.protocols;
    let p = lib.require(&order.protocol_id)?;
    st.store.record_course_order(&a, CourseId(id), p, order).await?;
    Ok(Json(order_view(&st, &a, CourseId(id)).await?))
}

/// A prescriber documents that the session may be given a dose outside the course's order, with the
/// reason. Nurses are refused (403).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/order-overrides", tag = "sessions", params(("id" = i64, Path)), request_body = NewOrderOverride,
    responses((status = 201, body = OrderOverride), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_order_override(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(req): Json<NewOrderOverride>,
) -> ApiResult<(StatusCode, Json<OrderOverride>)> {
    Ok((StatusCode::CREATED, Json(st.store.record_order_override(&a, SessionId(id), req).await?)))
}
