//! Consent and REMS enrolment records: the forms, a patient's signatures, the
//! clinician's countersignature, withdrawal, and what a session still needs before its dose.

use axum::extract::State;
use axum::http::StatusCode;
use keta_domain::consent::{ConsentForm, ConsentRecord, MissingDocument, NewConsent, WithdrawConsent};
use keta_domain::ids::{PatientId, RecordId, SessionId};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path};

/// The current version of every consent form (`data/consents/forms.toml`), as shown to the patient.
#[utoipa::path(get, path = "/api/v1/consent-forms", tag = "consents", responses((status = 200, body = Vec<ConsentForm>)))]
pub async fn get_consent_forms(_user: CurrentUser) -> Json<Vec<ConsentForm>> {
    Json(keta_domain::consent::current_forms().into_iter().cloned().collect())
}

/// Every consent the patient signed: every version, withdrawn ones too (an audited read).
#[utoipa::path(get, path = "/api/v1/patients/{id}/consents", tag = "consents", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ConsentRecord>), (status = 404, body = Problem)))]
pub async fn get_consents(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<ConsentRecord>>> {
    Ok(Json(st.store.list_consents(&a, PatientId(id)).await?))
}

/// The patient signs the current version of a form on the tablet (typed name and drawn
/// signature as SVG path data); a clinician countersigns it next.
#[utoipa::path(post, path = "/api/v1/patients/{id}/consents", tag = "consents", params(("id" = i64, Path)), request_body = NewConsent,
    responses((status = 201, body = ConsentRecord), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_consent(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(new): Json<NewConsent>,
) -> ApiResult<(StatusCode, Json<ConsentRecord>)> {
    Ok((StatusCode::CREATED, Json(st.store.record_consent(&a, PatientId(id), new).await?)))
}

/// A clinician countersigns a consent the patient signed; once.
#[utoipa::path(post, path = "/api/v1/consents/{id}/countersign", tag = "consents", params(("id" = i64, Path)),
    responses((status = 200, body = ConsentRecord), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn post_countersign(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<ConsentRecord>> {
    Ok(Json(st.store.countersign_consent(&a, RecordId(id)).await?))
}

/// The patient withdraws a consent; the signed record stays, marked withdrawn.
#[utoipa::path(post, path = "/api/v1/consents/{id}/withdraw", tag = "consents", params(("id" = i64, Path)), request_body = WithdrawConsent,
    responses((status = 200, body = ConsentRecord), (status = 422, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn post_withdraw(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(w): Json<WithdrawConsent>,
) -> ApiResult<Json<ConsentRecord>> {
    Ok(Json(st.store.withdraw_consent(&a, RecordId(id), w).await?))
}

/// What the session still needs before its dose can start (treatment consent for its route;
/// REMS enrolment for esketamine at an outpatient site), each with where to sign it.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/missing-documents", tag = "consents", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<MissingDocument>), (status = 404, body = Problem)))]
pub async fn get_missing_documents(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<MissingDocument>>> {
    Ok(Json(st.store.session_missing_documents(&a, SessionId(id)).await?))
}

/// Whether the site is an outpatient REMS setting (enrols patients, files monitoring forms)
/// or a certified inpatient one; a site that never said is treated as outpatient.
#[utoipa::path(put, path = "/api/v1/sites/{id}/rems-setting", tag = "consents", params(("id" = i64, Path)),
    request_body = keta_store::consents::SiteRemsSetting,
    responses((status = 200, body = keta_store::consents::SiteRemsSetting), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn put_rems_setting(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(body): Json<keta_store::consents::SiteRemsSetting>,
) -> ApiResult<Json<keta_store::consents::SiteRemsSetting>> {
    Ok(Json(st.store.set_site_rems_setting(&a, keta_domain::ids::SiteId(id), body.setting).await?))
}
