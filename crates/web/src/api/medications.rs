//! Medications, allergies and pregnancy status as records, and the medication review at a
//! session. Eligibility reads them (`POST /patients/{id}/eligibility-assessments`).

use axum::extract::State;
use axum::http::StatusCode;
use keta_domain::ids::{PatientId, RecordId, SessionId};
use keta_domain::medications::{
    Allergy, Medication, MedicationReview, NewAllergy, NewMedication, NewMedicationReview, NewPregnancyStatus,
    PregnancyStatusRecord, StopMedication,
};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path};

/// Every medication of the patient, current and stopped, with the interaction classes each belongs to.
#[utoipa::path(get, path = "/api/v1/patients/{id}/medications", tag = "medications", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Medication>), (status = 404, body = Problem)))]
pub async fn get_medications(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<Medication>>> {
    Ok(Json(st.store.list_medications(&a, PatientId(id)).await?))
}

/// Adds a current medication. Its class (data/rules/medication-classes.toml) raises the
/// matching caution or hard stop at the next eligibility assessment.
#[utoipa::path(post, path = "/api/v1/patients/{id}/medications", tag = "medications", params(("id" = i64, Path)),
    request_body = NewMedication,
    responses((status = 201, body = Medication), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_medication(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(n): Json<NewMedication>,
) -> ApiResult<(StatusCode, Json<Medication>)> {
    Ok((StatusCode::CREATED, Json(st.store.add_medication(&a, PatientId(id), n).await?)))
}

/// Records that a medication was stopped; it stays on the record.
#[utoipa::path(post, path = "/api/v1/medications/{id}/stop", tag = "medications", params(("id" = i64, Path)),
    request_body = StopMedication,
    responses((status = 200, body = Medication), (status = 409, body = Problem), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_stop_medication(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(s): Json<StopMedication>,
) -> ApiResult<Json<Medication>> {
    Ok(Json(st.store.stop_medication(&a, RecordId(id), s).await?))
}

#[utoipa::path(get, path = "/api/v1/patients/{id}/allergies", tag = "medications", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Allergy>), (status = 404, body = Problem)))]
pub async fn get_allergies(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<Allergy>>> {
    Ok(Json(st.store.list_allergies(&a, PatientId(id)).await?))
}

/// Adds an allergy. An allergy to ketamine or esketamine is a hard stop on every route
/// (clinical-reference §3.2: hypersensitivity is a label contraindication).
#[utoipa::path(post, path = "/api/v1/patients/{id}/allergies", tag = "medications", params(("id" = i64, Path)),
    request_body = NewAllergy,
    responses((status = 201, body = Allergy), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_allergy(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(n): Json<NewAllergy>,
) -> ApiResult<(StatusCode, Json<Allergy>)> {
    Ok((StatusCode::CREATED, Json(st.store.add_allergy(&a, PatientId(id), n).await?)))
}

/// The latest recorded pregnancy status (`null` when none is recorded).
#[utoipa::path(get, path = "/api/v1/patients/{id}/pregnancy-status", tag = "medications", params(("id" = i64, Path)),
    responses((status = 200, body = Option<PregnancyStatusRecord>), (status = 404, body = Problem)))]
pub async fn get_pregnancy_status(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Option<PregnancyStatusRecord>>> {
    Ok(Json(st.store.get_pregnancy_status(&a, PatientId(id)).await?))
}

/// Records the pregnancy status; the latest counts, and eligibility reads it instead of a tick.
#[utoipa::path(post, path = "/api/v1/patients/{id}/pregnancy-status", tag = "medications", params(("id" = i64, Path)),
    request_body = NewPregnancyStatus,
    responses((status = 201, body = PregnancyStatusRecord), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_pregnancy_status(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(n): Json<NewPregnancyStatus>,
) -> ApiResult<(StatusCode, Json<PregnancyStatusRecord>)> {
    Ok((StatusCode::CREATED, Json(st.store.record_pregnancy_status(&a, PatientId(id), n).await?)))
}

/// Records that the medication and allergy lists were reviewed with the patient at this session.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/medication-review", tag = "medications", params(("id" = i64, Path)),
    request_body = NewMedicationReview,
    responses((status = 201, body = MedicationReview), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_medication_review(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(n): Json<NewMedicationReview>,
) -> ApiResult<(StatusCode, Json<MedicationReview>)> {
    Ok((StatusCode::CREATED, Json(st.store.review_medications(&a, SessionId(id), n).await?)))
}
