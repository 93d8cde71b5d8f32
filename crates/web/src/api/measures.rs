//! Instruments and scoring, questionnaire responses, outcomes, alerts, eligibility,
//! and the clinical rules as data.

use axum::extract::State;
use axum::http::StatusCode;
use keta_domain::alerts::SafetyRules;
use keta_domain::eligibility::{self, AntidepressantTrial, ContraindicationItem};
use keta_domain::ids::{AlertId, PatientId, SessionId, SiteId};
use keta_domain::instruments::{self, Instrument, Score};
use keta_domain::outcomes::OutcomeDefinition;
use keta_domain::records::{
    Alert, AntidepressantTrialRecord, CourseOutcome, EligibilityAssessment, NewEligibilityAssessment,
    NewQuestionnaireResponse, QuestionnaireResponse,
};
use keta_store::alerts::AlertQuery;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Path, Query};

#[utoipa::path(get, path = "/api/v1/instruments", tag = "instruments", responses((status = 200, body = Vec<Instrument>)))]
pub async fn get_instruments() -> Json<Vec<Instrument>> {
    Json(instruments::catalog().all().to_vec())
}

fn instrument(code: &str) -> ApiResult<&'static Instrument> {
    instruments::catalog().get(code).ok_or_else(|| ApiError::not_found(format!("instrument '{code}'")))
}

#[utoipa::path(get, path = "/api/v1/instruments/{code}", tag = "instruments", params(("code" = String, Path)),
    responses((status = 200, body = Instrument), (status = 404, body = Problem)))]
pub async fn get_instrument(Path(code): Path<String>) -> ApiResult<Json<Instrument>> {
    Ok(Json(instrument(&code)?.clone()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    /// Item answers in order; `null` for an item not asked (C-SSRS branching).
    pub answers: Vec<Option<i32>>,
}

/// Scores answers without storing anything.
#[utoipa::path(post, path = "/api/v1/instruments/{code}/score", tag = "instruments", params(("code" = String, Path)), request_body = Answers,
    responses((status = 200, body = Score), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_score(Path(code): Path<String>, Json(a): Json<Answers>) -> ApiResult<Json<Score>> {
    Ok(Json(instruments::score(instrument(&code)?, &a.answers)?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ResponseParams {
    pub instrument: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/patients/{id}/responses", tag = "questionnaires", params(("id" = i64, Path), ResponseParams),
    responses((status = 200, body = Vec<QuestionnaireResponse>), (status = 404, body = Problem)))]
pub async fn get_responses(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<ResponseParams>,
) -> ApiResult<Json<Vec<QuestionnaireResponse>>> {
    Ok(Json(st.store.list_responses(&a, PatientId(id), q.instrument).await?))
}

/// Stores and scores a completed questionnaire. A positive safety item raises an urgent alert.
#[utoipa::path(post, path = "/api/v1/patients/{id}/responses", tag = "questionnaires", params(("id" = i64, Path)), request_body = NewQuestionnaireResponse,
    responses((status = 201, body = QuestionnaireResponse), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_response(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(new): Json<NewQuestionnaireResponse>,
) -> ApiResult<(StatusCode, Json<QuestionnaireResponse>)> {
    Ok((StatusCode::CREATED, Json(st.store.submit_response(&a, PatientId(id), new).await?)))
}

/// Baseline, change, response, remission and relapse per course and instrument, each with the definition used.
#[utoipa::path(get, path = "/api/v1/patients/{id}/outcomes", tag = "questionnaires", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<CourseOutcome>), (status = 404, body = Problem)))]
pub async fn get_outcomes(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<CourseOutcome>>> {
    Ok(Json(st.store.patient_chart(&a, PatientId(id)).await?.outcomes))
}

#[utoipa::path(get, path = "/api/v1/outcome-definitions", tag = "rules", responses((status = 200, body = Vec<OutcomeDefinition>)))]
pub async fn get_outcome_definitions() -> Json<Vec<OutcomeDefinition>> {
    Json(keta_domain::outcomes::default_definitions().to_vec())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    pub site_id: Option<i64>,
    pub patient_id: Option<i64>,
    pub session_id: Option<i64>,
    /// Only unacknowledged alerts (default true).
    pub open: Option<bool>,
    /// Default 200; at most 1000 are returned.
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertParams), responses((status = 200, body = Vec<Alert>)))]
pub async fn get_alerts(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Query(q): Query<AlertParams>,
) -> ApiResult<Json<Vec<Alert>>> {
    let ranges = keta_domain::plausible::ranges();
    ranges.page(q.limit, None, ranges.lists.report_limit_max)?;
    let q = AlertQuery {
        site_id: q.site_id.map(SiteId),
        patient_id: q.patient_id.map(PatientId),
        session_id: q.session_id.map(SessionId),
        open_only: q.open.unwrap_or(true),
        limit: q.limit.unwrap_or(200),
    };
    Ok(Json(st.store.list_alerts(&a, q).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    /// What was done about it.
    #[serde(default)]
    pub note: Option<String>,
}

/// Records who acknowledged the alert, when, and what was done.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts", params(("id" = i64, Path)), request_body = Acknowledgement,
    responses((status = 200, body = Alert), (status = 409, body = Problem), (status = 404, body = Problem)))]
pub async fn post_acknowledge(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(ack): Json<Acknowledgement>,
) -> ApiResult<Json<Alert>> {
    Ok(Json(st.store.acknowledge_alert(&a, AlertId(id), ack.note).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Eligibility {
    pub antidepressant_trials: Vec<AntidepressantTrialRecord>,
    pub assessments: Vec<EligibilityAssessment>,
    /// ≥2 adequate failed trials in the current episode (clinical-reference §3.1).
    pub treatment_resistant: bool,
}

#[utoipa::path(get, path = "/api/v1/patients/{id}/eligibility", tag = "eligibility", params(("id" = i64, Path)),
    responses((status = 200, body = Eligibility), (status = 404, body = Problem)))]
pub async fn get_eligibility(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Eligibility>> {
    let (trials, assessments) = st.store.list_eligibility(&a, PatientId(id)).await?;
    let plain: Vec<AntidepressantTrial> = trials.iter().map(|t| t.trial.clone()).collect();
    Ok(Json(Eligibility {
        treatment_resistant: eligibility::is_treatment_resistant(&plain),
        antidepressant_trials: trials,
        assessments,
    }))
}

#[utoipa::path(post, path = "/api/v1/patients/{id}/antidepressant-trials", tag = "eligibility", params(("id" = i64, Path)), request_body = AntidepressantTrial,
    responses((status = 201, body = AntidepressantTrialRecord), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_trial(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(t): Json<AntidepressantTrial>,
) -> ApiResult<(StatusCode, Json<AntidepressantTrialRecord>)> {
    Ok((StatusCode::CREATED, Json(st.store.add_antidepressant_trial(&a, PatientId(id), t).await?)))
}

/// Assesses one route: Maudsley staging and the contraindication checklist. A hard stop blocks courses on that route.
#[utoipa::path(post, path = "/api/v1/patients/{id}/eligibility-assessments", tag = "eligibility", params(("id" = i64, Path)),
    request_body = NewEligibilityAssessment,
    responses((status = 201, body = EligibilityAssessment), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_assessment(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(n): Json<NewEligibilityAssessment>,
) -> ApiResult<(StatusCode, Json<EligibilityAssessment>)> {
    Ok((StatusCode::CREATED, Json(st.store.assess_eligibility(&a, PatientId(id), n).await?)))
}

#[utoipa::path(get, path = "/api/v1/contraindications", tag = "rules", responses((status = 200, body = Vec<ContraindicationItem>)))]
pub async fn get_contraindications() -> Json<Vec<ContraindicationItem>> {
    Json(eligibility::contraindication_items().to_vec())
}

/// The session-safety rules in force, each with its source.
#[utoipa::path(get, path = "/api/v1/rules/session-safety", tag = "rules", responses((status = 200, body = SafetyRules)))]
pub async fn get_safety_rules() -> Json<SafetyRules> {
    Json(SafetyRules::builtin().clone())
}
