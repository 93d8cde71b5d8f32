//! Between sessions, the care team's side: check-in links and what became of them,
//! per-course schedules, the site's crisis instructions, clinic settings, and the at-home
//! programme (dispenses, refused-screen reviews).

use axum::extract::State;
use axum::http::StatusCode;
use keta_domain::checkins::{CheckInSchedule, ScheduleOverride};
use keta_domain::ids::{CourseId, PatientId, SiteId};
use keta_domain::relapse::RelapseSettings;
use keta_store::checkins::{CheckinOverview, LinkRecord, PatientContactSettings, SiteForPatients};
use keta_store::home::{HomePreDoseSettings, HomeProgramme, NewDispense, PreDoseScreen, QuestionSetResponse};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path};

/// A check-in to send now.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCheckinLink {
    /// A patient-completed instrument whose wording may be shown (`phq9`, `gad7`) or a question
    /// set (`after_session`, `urinary_symptoms`).
    pub form: String,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub course_id: Option<CourseId>,
    /// Send the link to the patient's e-mail (or mobile) on file. Otherwise it is only returned.
    #[serde(default)]
    pub send: bool,
}

/// A link, with its URL: shown once, never stored.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedLinkView {
    pub link: LinkRecord,
    pub url: String,
    /// Whether a reminder went out (when `send` was asked for).
    pub sent: bool,
}

/// Sends the link when asked, and shows its URL this once.
async fn issued_view(st: &AppState, issued: keta_store::checkins::IssuedLink, send: bool) -> IssuedLinkView {
    let sent = send
        && crate::reminders::deliver(
            &st.store,
            &st.reminders,
            &issued,
            issued.email.as_deref(),
            issued.phone.as_deref(),
        )
        .await;
    let url = st.reminders.link_url(&issued.token);
    IssuedLinkView { link: issued.link, url, sent }
}

#[utoipa::path(get, path = "/api/v1/patients/{id}/checkins", tag = "between sessions", params(("id" = i64, Path)),
    responses((status = 200, body = CheckinOverview), (status = 404, body = Problem)))]
pub async fn get_checkins(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<CheckinOverview>> {
    Ok(Json(st.store.checkin_overview(&a, PatientId(id)).await?))
}

/// Issues a check-in link now. The URL is in the answer once; Keta keeps only its hash.
#[utoipa::path(post, path = "/api/v1/patients/{id}/checkin-links", tag = "between sessions", params(("id" = i64, Path)),
    request_body = NewCheckinLink,
    responses((status = 201, body = IssuedLinkView), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_checkin_link(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(n): Json<NewCheckinLink>,
) -> ApiResult<(StatusCode, Json<IssuedLinkView>)> {
    let issued = st.store.issue_link(&a, PatientId(id), n.course_id, n.form).await?;
    Ok((StatusCode::CREATED, Json(issued_view(&st, issued, n.send).await)))
}

/// A new token for an open check-in (the reminder was lost). The old link stops working.
#[utoipa::path(post, path = "/api/v1/checkin-links/{id}/reissue", tag = "between sessions", params(("id" = i64, Path)),
    request_body = NewCheckinLinkResend,
    responses((status = 200, body = IssuedLinkView), (status = 409, body = Problem), (status = 404, body = Problem)))]
pub async fn post_reissue(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(n): Json<NewCheckinLinkResend>,
) -> ApiResult<Json<IssuedLinkView>> {
    let issued = st.store.reissue_link(&a, id).await?;
    Ok(Json(issued_view(&st, issued, n.send).await))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCheckinLinkResend {
    /// Send the new link to the patient's contact on file.
    #[serde(default)]
    pub send: bool,
}

#[utoipa::path(get, path = "/api/v1/courses/{id}/checkin-schedule", tag = "between sessions", params(("id" = i64, Path)),
    responses((status = 200, body = Option<CheckInSchedule>), (status = 404, body = Problem)))]
pub async fn get_schedule(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Option<CheckInSchedule>>> {
    Ok(Json(st.store.checkin_schedule(&a, CourseId(id)).await?))
}

/// Changes one patient's schedule: drop items, add items, or change an item's timing.
#[utoipa::path(put, path = "/api/v1/courses/{id}/checkin-schedule", tag = "between sessions", params(("id" = i64, Path)),
    request_body = ScheduleOverride,
    responses((status = 200, body = CheckInSchedule), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn put_schedule(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(o): Json<ScheduleOverride>,
) -> ApiResult<Json<CheckInSchedule>> {
    Ok(Json(st.store.set_checkin_override(&a, CourseId(id), o).await?))
}

/// What the site's patients see when a safety answer is positive (with the site's crisis line).
#[utoipa::path(put, path = "/api/v1/sites/{id}/patient-contact", tag = "between sessions", params(("id" = i64, Path)),
    request_body = PatientContactSettings,
    responses((status = 200, body = SiteForPatients), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn put_patient_contact(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(s): Json<PatientContactSettings>,
) -> ApiResult<Json<SiteForPatients>> {
    Ok(Json(st.store.set_patient_contact_settings(&a, SiteId(id), s).await?))
}

/// The relapse watch: what counts as relapse after a response (default: loss of response).
#[utoipa::path(put, path = "/api/v1/settings/relapse-watch", tag = "between sessions", request_body = RelapseSettings,
    responses((status = 200, body = RelapseSettings), (status = 422, body = Problem)))]
pub async fn put_relapse_settings(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Json(s): Json<RelapseSettings>,
) -> ApiResult<Json<RelapseSettings>> {
    st.store.set_relapse_settings(&a, s).await?;
    Ok(Json(s))
}

#[utoipa::path(get, path = "/api/v1/settings/relapse-watch", tag = "between sessions",
    responses((status = 200, body = RelapseSettings)))]
pub async fn get_relapse_settings(State(st): State<AppState>, _u: CurrentUser) -> ApiResult<Json<RelapseSettings>> {
    Ok(Json(st.store.relapse_settings().await?))
}

/// The alcohol- and sedative-free intervals the home pre-dose screen asks about. The reference
/// gives none, so the screen refuses to run until they are set.
#[utoipa::path(put, path = "/api/v1/settings/home-pre-dose", tag = "between sessions", request_body = HomePreDoseSettings,
    responses((status = 200, body = HomePreDoseSettings), (status = 422, body = Problem)))]
pub async fn put_home_settings(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Json(s): Json<HomePreDoseSettings>,
) -> ApiResult<Json<HomePreDoseSettings>> {
    st.store.set_home_pre_dose_settings(&a, s).await?;
    Ok(Json(s))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HomeOverview {
    pub programmes: Vec<HomeProgramme>,
    pub question_sets: Vec<QuestionSetResponse>,
}

#[utoipa::path(get, path = "/api/v1/patients/{id}/home-programme", tag = "between sessions", params(("id" = i64, Path)),
    responses((status = 200, body = HomeOverview), (status = 404, body = Problem)))]
pub async fn get_home(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<HomeOverview>> {
    let (programmes, question_sets) = st.store.home_overview(&a, PatientId(id)).await?;
    Ok(Json(HomeOverview { programmes, question_sets }))
}

/// Records a supply handed to the patient; refused with the reasons while the supply is held.
#[utoipa::path(post, path = "/api/v1/courses/{id}/home-dispenses", tag = "between sessions", params(("id" = i64, Path)),
    request_body = NewDispense,
    responses((status = 201, body = HomeProgramme), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_dispense(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(d): Json<NewDispense>,
) -> ApiResult<(StatusCode, Json<HomeProgramme>)> {
    Ok((StatusCode::CREATED, Json(st.store.record_dispense(&a, CourseId(id), d).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreenReview {
    /// What was done (e.g. "Phoned; BP rechecked 132/84; dose moved to tomorrow").
    pub note: String,
}

#[utoipa::path(post, path = "/api/v1/pre-dose-screens/{id}/review", tag = "between sessions", params(("id" = i64, Path)),
    request_body = ScreenReview,
    responses((status = 200, body = PreDoseScreen), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_screen_review(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(r): Json<ScreenReview>,
) -> ApiResult<Json<PreDoseScreen>> {
    Ok(Json(st.store.review_pre_dose_screen(&a, id, r.note).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SweepResult {
    pub issued: usize,
    pub sent: usize,
    pub expired: usize,
    /// Patients skipped because of an error (logged); the next sweep tries them again.
    pub failed: usize,
}

/// Runs the check-in sweep now (it also runs every few minutes): issue due links, send
/// reminders, record expiries.
#[utoipa::path(post, path = "/api/v1/checkins/sweep", tag = "between sessions",
    responses((status = 200, body = SweepResult), (status = 403, body = Problem)))]
pub async fn post_sweep(State(st): State<AppState>, u: CurrentUser) -> ApiResult<Json<SweepResult>> {
    u.actor.require(keta_domain::access::Permission::ManageUsers)?;
    let s = crate::reminders::sweep_and_send(&st.store, &st.reminders).await?;
    Ok(Json(SweepResult { issued: s.issued, sent: s.sent, expired: s.expired, failed: s.failed }))
}
