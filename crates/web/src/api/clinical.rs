//! Courses, sessions and everything recorded in the chair.

use axum::extract::State;
use axum::http::StatusCode;
use keta_domain::course::{Course, NewCourse};
use keta_domain::discharge::{Blocker, DischargeSettings};
use keta_domain::ids::{CourseId, PatientId, SessionId, SiteId};
use keta_domain::records::{Alert, ObservationRecord, VitalsRecord, VitalsSource};
use keta_domain::schedule::ScheduledSession;
use keta_domain::session::{
    AdverseEvent, NewAdverseEvent, NewDecision, NewSession, ObservationBody, SessionDecision, StepRequest,
    TreatmentSession,
};
use keta_domain::vitals::VitalSigns;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Path, Query};

#[utoipa::path(get, path = "/api/v1/patients/{id}/courses", tag = "courses", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Course>), (status = 404, body = Problem)))]
pub async fn get_courses(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<Course>>> {
    Ok(Json(st.store.list_courses(&a, PatientId(id)).await?))
}

/// Plans a course. Refused (422) when the patient's latest assessment for the route found a hard stop.
#[utoipa::path(post, path = "/api/v1/patients/{id}/courses", tag = "courses", params(("id" = i64, Path)), request_body = NewCourse,
    responses((status = 201, body = Course), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_course(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(new): Json<NewCourse>,
) -> ApiResult<(StatusCode, Json<Course>)> {
    Ok((StatusCode::CREATED, Json(st.store.create_course(&a, PatientId(id), new).await?)))
}

#[utoipa::path(get, path = "/api/v1/courses/{id}", tag = "courses", params(("id" = i64, Path)),
    responses((status = 200, body = Course), (status = 404, body = Problem)))]
pub async fn get_course(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Course>> {
    Ok(Json(st.store.get_course(&a, CourseId(id)).await?))
}

#[utoipa::path(post, path = "/api/v1/courses/{id}/sessions", tag = "sessions", params(("id" = i64, Path)), request_body = NewSession,
    responses((status = 201, body = TreatmentSession), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_session(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(new): Json<NewSession>,
) -> ApiResult<(StatusCode, Json<TreatmentSession>)> {
    Ok((StatusCode::CREATED, Json(st.store.create_session(&a, CourseId(id), new).await?)))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = i64, Path)),
    responses((status = 200, body = TreatmentSession), (status = 404, body = Problem)))]
pub async fn get_session(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<TreatmentSession>> {
    Ok(Json(st.store.get_session(&a, SessionId(id)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SiteSessionsParams {
    /// Start of the window (RFC 3339).
    #[param(format = DateTime)]
    pub from: String,
    /// End of the window, exclusive (RFC 3339).
    #[param(format = DateTime)]
    pub to: String,
}

fn parse_time(field: &str, s: &str) -> ApiResult<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| {
        ApiError::bad_request(field, format!("'{s}' is not an RFC 3339 time such as 2026-11-27T09:00:00Z"))
    })
}

/// Sessions scheduled at a site in a window: the day's schedule. Schedule fields only; the
/// note, stop reason and planned dose are read per session (`GET /sessions/{id}`), which
/// needs the clinical permission.
#[utoipa::path(get, path = "/api/v1/sites/{id}/sessions", tag = "sessions", params(("id" = i64, Path), SiteSessionsParams),
    responses((status = 200, body = Vec<ScheduledSession>), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_site_sessions(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<SiteSessionsParams>,
) -> ApiResult<Json<Vec<ScheduledSession>>> {
    let (from, to) = (parse_time("from", &q.from)?, parse_time("to", &q.to)?);
    if to <= from || to - from > time::Duration::days(62) {
        return Err(ApiError::bad_request("to", "'to' must be after 'from' and at most 62 days later"));
    }
    Ok(Json(st.store.sessions_at_site(&a, SiteId(id), from, to).await?))
}

/// One lifecycle step: check_in, start_pre_dose_checks, start_dose, end_dose, discharge, or stop with a reason.
/// Refused (409): checking in or starting the dose of a session scheduled for another local day unless
/// `confirm_other_day` is true with a `reason`; starting the dose while an urgent alert for the patient is
/// open and no prescriber override covers it; discharge before the route's minimum monitoring time, with
/// unacknowledged alerts, or with a fact missing from the record (each named with where to record it).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/actions", tag = "sessions", params(("id" = i64, Path)), request_body = StepRequest,
    responses((status = 200, body = TreatmentSession), (status = 409, body = Problem), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_session_action(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(step): Json<StepRequest>,
) -> ApiResult<Json<TreatmentSession>> {
    let (action, other_day_reason) = step.into_parts()?;
    Ok(Json(st.store.act_on_session_confirmed(&a, SessionId(id), action, other_day_reason).await?))
}

/// What discharge still needs, each fact with the session screen's section (`anchor`) that records it.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/discharge-blockers", tag = "sessions", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Blocker>), (status = 404, body = Problem)))]
pub async fn get_discharge_blockers(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<Blocker>>> {
    Ok(Json(st.store.discharge_blockers(&a, SessionId(id)).await?))
}

/// A prescriber's documented decision: let the dose start while urgent alerts are open (covers each one
/// open now), or discharge with a named BP reading above the thresholds. Nurses are refused (403).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/decisions", tag = "sessions", params(("id" = i64, Path)), request_body = NewDecision,
    responses((status = 201, body = Vec<SessionDecision>), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_session_decision(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(d): Json<NewDecision>,
) -> ApiResult<(StatusCode, Json<Vec<SessionDecision>>)> {
    Ok((StatusCode::CREATED, Json(st.store.record_session_decision(&a, SessionId(id), d).await?)))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/decisions", tag = "sessions", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<SessionDecision>), (status = 404, body = Problem)))]
pub async fn get_session_decisions(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<SessionDecision>>> {
    Ok(Json(st.store.list_session_decisions(&a, SessionId(id)).await?))
}

/// The site's discharge settings: how recent the last full set of vitals must be, and the clinic's
/// dissociation measure with the total that counts as resolved. The references give neither, so
/// both start empty and discharge is refused, naming the missing setting, until they are set.
#[utoipa::path(get, path = "/api/v1/sites/{id}/discharge-settings", tag = "rules", params(("id" = i64, Path)),
    responses((status = 200, body = DischargeSettings), (status = 404, body = Problem)))]
pub async fn get_discharge_settings(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<DischargeSettings>> {
    Ok(Json(st.store.site_discharge_settings(&a, SiteId(id)).await?))
}

#[utoipa::path(put, path = "/api/v1/sites/{id}/discharge-settings", tag = "rules", params(("id" = i64, Path)), request_body = DischargeSettings,
    responses((status = 200, body = DischargeSettings), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn put_discharge_settings(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(d): Json<DischargeSettings>,
) -> ApiResult<Json<DischargeSettings>> {
    Ok(Json(st.store.set_site_discharge_settings(&a, SiteId(id), d).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionNote {
    pub note: String,
}

#[utoipa::path(put, path = "/api/v1/sessions/{id}/note", tag = "sessions", params(("id" = i64, Path)), request_body = SessionNote,
    responses((status = 200, body = TreatmentSession), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn put_session_note(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(n): Json<SessionNote>,
) -> ApiResult<Json<TreatmentSession>> {
    Ok(Json(st.store.set_session_note(&a, SessionId(id), n.note).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVitals {
    pub systolic_mmhg: Option<f64>,
    pub diastolic_mmhg: Option<f64>,
    pub heart_rate_bpm: Option<f64>,
    pub spo2_pct: Option<f64>,
    pub resp_rate_per_min: Option<f64>,
    /// When the reading was taken (RFC 3339); defaults to now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub taken_at: Option<OffsetDateTime>,
    /// `manual` (default) or `monitor`.
    #[serde(default)]
    pub source: Option<VitalsSource>,
    /// Store a manual reading identical to the previous one taken moments before (refused otherwise).
    #[serde(default)]
    pub confirm_duplicate: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RecordedVitals {
    pub record: VitalsRecord,
    /// Alerts this reading raised.
    pub alerts: Vec<Alert>,
}

/// Records vitals; the safety rules run on them and any alert raised is returned. A manual reading
/// identical to the previous one within the duplicate window is refused (422, field `confirm_duplicate`)
/// unless `confirm_duplicate` is true.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/vitals", tag = "sessions", params(("id" = i64, Path)), request_body = NewVitals,
    responses((status = 201, body = RecordedVitals), (status = 422, body = Problem), (status = 409, body = Problem), (status = 404, body = Problem)))]
pub async fn post_vitals(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(v): Json<NewVitals>,
) -> ApiResult<(StatusCode, Json<RecordedVitals>)> {
    use keta_domain::units::*;
    let vitals = VitalSigns {
        systolic_mmhg: v.systolic_mmhg.map(Mmhg),
        diastolic_mmhg: v.diastolic_mmhg.map(Mmhg),
        heart_rate_bpm: v.heart_rate_bpm.map(BeatsPerMinute),
        spo2_pct: v.spo2_pct.map(Percent),
        resp_rate_per_min: v.resp_rate_per_min.map(BreathsPerMinute),
    };
    let source = v.source.unwrap_or(VitalsSource::Manual);
    let r = st.store.record_vitals_entry(&a, SessionId(id), vitals, v.taken_at, source, v.confirm_duplicate).await?;
    Ok((StatusCode::CREATED, Json(RecordedVitals { record: r.record, alerts: r.alerts })))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/vitals", tag = "sessions", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<VitalsRecord>), (status = 404, body = Problem)))]
pub async fn get_vitals(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<VitalsRecord>>> {
    Ok(Json(st.store.list_vitals(&a, SessionId(id)).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewObservation {
    pub observation: ObservationBody,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub observed_at: Option<OffsetDateTime>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RecordedObservation {
    pub record: ObservationRecord,
    pub alerts: Vec<Alert>,
}

/// Records a MOAA/S score, a side effect or an intervention.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/observations", tag = "sessions", params(("id" = i64, Path)), request_body = NewObservation,
    responses((status = 201, body = RecordedObservation), (status = 422, body = Problem), (status = 409, body = Problem), (status = 404, body = Problem)))]
pub async fn post_observation(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(o): Json<NewObservation>,
) -> ApiResult<(StatusCode, Json<RecordedObservation>)> {
    let r = st.store.record_observation(&a, SessionId(id), o.observation, o.observed_at).await?;
    Ok((StatusCode::CREATED, Json(RecordedObservation { record: r.record, alerts: r.alerts })))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/observations", tag = "sessions", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ObservationRecord>), (status = 404, body = Problem)))]
pub async fn get_observations(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<ObservationRecord>>> {
    Ok(Json(st.store.list_observations(&a, SessionId(id)).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdverseEventForPatient {
    /// The session it happened in, if any.
    #[serde(default)]
    pub session_id: Option<i64>,
    pub event: NewAdverseEvent,
}

#[utoipa::path(post, path = "/api/v1/patients/{id}/adverse-events", tag = "sessions", params(("id" = i64, Path)), request_body = NewAdverseEventForPatient,
    responses((status = 201, body = AdverseEvent), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_adverse_event(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(n): Json<NewAdverseEventForPatient>,
) -> ApiResult<(StatusCode, Json<AdverseEvent>)> {
    Ok((
        StatusCode::CREATED,
        Json(st.store.record_adverse_event(&a, PatientId(id), n.session_id.map(SessionId), n.event).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/patients/{id}/adverse-events", tag = "sessions", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<AdverseEvent>), (status = 404, body = Problem)))]
pub async fn get_adverse_events(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<AdverseEvent>>> {
    Ok(Json(st.store.list_adverse_events(&a, PatientId(id)).await?))
}
