//! Dosing and pharmacokinetics over JSON: the protocol library, the dose
//! calculator (pure), dose records with a second-person check, cumulative exposure, a
//! course schedule from a protocol, and the PK simulator.
//!
//! The protocol library is the built-in one plus the clinic's `*.toml` files, read once when
//! the server starts and carried in [`AppState::protocols`]. [`simulate_pk`] is the whole
//! PK request → curve computation, shared with `keta pk simulate` and the session
//! screen; it lives in `keta_domain::pk_simulation` and is re-exported here for the
//! handlers and the OpenAPI document.

use axum::extract::State;
use axum::http::StatusCode;
use keta_domain::dosing::{DoseCalculation, DoseRecord, DoseRequest, Exposure};
use keta_domain::ids::{PatientId, SessionId};
use keta_domain::protocols::{self, CourseSchedule, Protocol, ProtocolLibrary, ScheduleRequest};
use keta_domain::{DomainError, FieldError};
use serde::Deserialize;
use time::Date;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Path as UrlPath};

fn resolve(lib: &ProtocolLibrary, id: Option<&str>) -> ApiResult<Option<Protocol>> {
    Ok(match id {
        Some(id) => Some(lib.require(id)?.clone()),
        None => None,
    })
}

/// The protocol library: built-in protocols with their sources, and the clinic's own.
#[utoipa::path(get, path = "/api/v1/protocols", tag = "dosing",
    responses((status = 200, body = Vec<Protocol>), (status = 500, body = Problem)))]
pub async fn get_protocols(State(st): State<AppState>) -> ApiResult<Json<Vec<Protocol>>> {
    Ok(Json(st.protocols.all().to_vec()))
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MissedSession {
    pub sequence: u32,
    /// When it will be given instead, if the protocol's rule makes it up.
    #[serde(default)]
    pub make_up_on: Option<Date>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    pub start: Date,
    #[serde(default)]
    pub age_years: Option<u32>,
    #[serde(default)]
    pub until: Option<Date>,
    #[serde(default)]
    pub every_days: Option<u32>,
    /// Missed sessions, applied in order by the protocol's missed-session rule.
    #[serde(default)]
    pub missed: Vec<MissedSession>,
}

/// Lays a course out from a protocol and a start date (pure): the sessions with their
/// planned doses, the end-of-induction reassessment, and any missed sessions handled by
/// the protocol's rule.
#[utoipa::path(post, path = "/api/v1/protocols/{id}/schedule", tag = "dosing", params(("id" = String, Path)), request_body = ScheduleBody,
    responses((status = 200, body = CourseSchedule), (status = 422, body = Problem)))]
pub async fn post_protocol_schedule(
    State(st): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Json(b): Json<ScheduleBody>,
) -> ApiResult<Json<CourseSchedule>> {
    if let Some(n) = b.every_days {
        let max = keta_domain::plausible::ranges().counts.interval_days_max;
        keta_domain::plausible::ranges()
            .count(n, 1, max, "every_days")
            .map_err(|m| DomainError::field("every_days", format!("give the interval in days ({m})")))?;
    }
    let lib = &*st.protocols;
    let p = lib.require(&id)?;
    let req = ScheduleRequest { start: b.start, age_years: b.age_years, until: b.until, every_days: b.every_days };
    let mut s = protocols::generate_schedule(p, &req)?;
    for m in &b.missed {
        s = protocols::mark_missed(p, &s, m.sequence, m.make_up_on)?;
    }
    Ok(Json(s))
}

/// Calculates a dose by clinical-reference §2.1 (pure; nothing is recorded): dose, drug
/// volume, bag concentration, pump rate, mg/h, rounding to the pump's resolution, with
/// every step written out. 422 with the reason when the dose is outside the protocol's
/// limits.
#[utoipa::path(post, path = "/api/v1/dose/calculate", tag = "dosing", request_body = DoseRequest,
    responses((status = 200, body = DoseCalculation), (status = 422, body = Problem)))]
pub async fn post_dose_calculate(
    State(st): State<AppState>,
    Json(req): Json<DoseRequest>,
) -> ApiResult<Json<DoseCalculation>> {
    let p = resolve(&st.protocols, req.protocol.as_deref())?;
    Ok(Json(keta_domain::dosing::calculate(&req, p.as_ref())?))
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordDoseBody {
    /// The calculation to record; the weight must be the patient's latest recorded
    /// weight of `weight_type`. Age and first session are taken from the chart.
    pub calculation: DoseRequest,
    /// The second person, who checks the calculation and enters their own password.
    pub checker_username: String,
    pub checker_password: String,
}

/// Records a dose calculation for the session with a second person's check: recalculated
/// on the server, the checker verified by their own password and recorded with the time.
/// 422 when the checker is the caller, no protocol is named, the weight is not the
/// chart's, or the dose is outside the protocol's limits; 403 when the checker's password
/// is wrong.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/dose", tag = "dosing", params(("id" = i64, Path)), request_body = RecordDoseBody,
    responses((status = 201, body = DoseRecord), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_session_dose(
    State(st): State<AppState>,
    user: CurrentUser,
    UrlPath(id): UrlPath<i64>,
    Json(b): Json<RecordDoseBody>,
) -> ApiResult<(StatusCode, Json<DoseRecord>)> {
    if b.checker_username.trim().is_empty() || b.checker_password.is_empty() {
        return Err(ApiError::invalid(vec![FieldError::new(
            "checker_username",
            "the second person enters their own user name and password",
        )]));
    }
    if b.checker_username.trim().eq_ignore_ascii_case(&user.username) {
        return Err(ApiError::invalid(vec![FieldError::new(
            "checker_username",
            "the second check must be by a different person from the one who calculates the dose",
        )]));
    }
    let protocol = resolve(&st.protocols, b.calculation.protocol.as_deref())?;
    let (checker, verified_at) = crate::auth::witness(&st, &b.checker_username, &b.checker_password).await?;
    let check = keta_store::dosing::DoseChecker { actor: checker, verified_at };
    let r = st.store.record_dose(&user.actor, SessionId(id), protocol, b.calculation, check).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// The session's dose records, oldest first; the last is the one that counts.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/dose", tag = "dosing", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<DoseRecord>), (status = 404, body = Problem)))]
pub async fn get_session_doses(
    State(st): State<AppState>,
    user: CurrentUser,
    UrlPath(id): UrlPath<i64>,
) -> ApiResult<Json<Vec<DoseRecord>>> {
    Ok(Json(st.store.list_session_doses(&user.actor, SessionId(id)).await?))
}

/// Cumulative exposure per drug (racemic ketamine and esketamine apart): lifetime, the
/// last 7 and 30 days, per calendar week and month, from the checked doses of sessions
/// whose dose was started.
#[utoipa::path(get, path = "/api/v1/patients/{id}/exposure", tag = "dosing", params(("id" = i64, Path)),
    responses((status = 200, body = Exposure), (status = 404, body = Problem)))]
pub async fn get_patient_exposure(
    State(st): State<AppState>,
    user: CurrentUser,
    UrlPath(id): UrlPath<i64>,
) -> ApiResult<Json<Exposure>> {
    Ok(Json(st.store.patient_exposure(&user.actor, PatientId(id)).await?))
}

// ---------------------------------------------------------------------------------
// Pharmacokinetics.

pub use keta_domain::pk_simulation::{
    AbsorptionInput, AssumedCv, BelowThreshold, MAX_POINTS, POINTS_PER_PATIENT, PkBand, PkModelInfo, PkPopulation,
    PkSimulateRequest, PkSimulation, PopulationInput, ThresholdSite, simulate_pk,
};

/// The most virtual patients one API request may simulate (CPU on a shared server).
pub const API_MAX_PATIENTS: usize = 5_000;

/// Predicted plasma, effect-site and metabolite concentration (ng/mL) of a regimen under
/// a named population model, with an optional population band and the predicted time
/// below a threshold (pure; nothing is recorded).
#[utoipa::path(post, path = "/api/v1/pk/simulate", tag = "dosing", request_body = PkSimulateRequest,
    responses((status = 200, body = PkSimulation), (status = 422, body = Problem)))]
pub async fn post_pk_simulate(Json(req): Json<PkSimulateRequest>) -> ApiResult<Json<PkSimulation>> {
    let out = tokio::task::spawn_blocking(move || simulate_pk(&req, API_MAX_PATIENTS)).await.map_err(|e| {
        tracing::error!(error = %e, "pk simulation task failed");
        ApiError::from(keta_store::StoreError::Backend(e.to_string()))
    })??;
    Ok(Json(out))
}
