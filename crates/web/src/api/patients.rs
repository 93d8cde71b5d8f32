//! Sites, patients and weights.

use axum::extract::State;
use axum::http::StatusCode;
use keta_domain::ids::{PatientId, SiteId};
use keta_domain::patient::{NewPatient, NewWeight, Patient, WeightEntry};
use keta_domain::records::PatientChart;
use keta_domain::site::{Chair, NewSite, Site};
use keta_store::patients::PatientQuery;
use serde::Deserialize;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path, Query};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSiteWithChairs {
    pub code: String,
    pub name: String,
    /// IANA time zone, e.g. `America/Chicago`.
    pub time_zone: String,
    pub crisis_line: String,
    /// Names of the site's treatment chairs.
    #[serde(default)]
    pub chairs: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/sites", tag = "sites", responses((status = 200, body = Vec<Site>)))]
pub async fn get_sites(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
) -> ApiResult<Json<Vec<Site>>> {
    Ok(Json(st.store.list_sites(&a).await?))
}

#[utoipa::path(post, path = "/api/v1/sites", tag = "sites", request_body = NewSiteWithChairs,
    responses((status = 201, body = Site), (status = 422, body = Problem), (status = 409, body = Problem)))]
pub async fn post_site(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Json(new): Json<NewSiteWithChairs>,
) -> ApiResult<(StatusCode, Json<Site>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            st.store
                .create_site(
                    &a,
                    NewSite { code: new.code, name: new.name, time_zone: new.time_zone, crisis_line: new.crisis_line },
                    new.chairs,
                )
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/api/v1/sites/{id}/chairs", tag = "sites", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Chair>), (status = 404, body = Problem)))]
pub async fn get_chairs(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<Chair>>> {
    Ok(Json(st.store.list_chairs(&a, SiteId(id)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PatientListParams {
    /// Start of an MRN, given or family name.
    pub search: Option<String>,
    pub site_id: Option<i64>,
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0, maximum = 1000000)]
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/patients", tag = "patients", params(PatientListParams),
    responses((status = 200, body = Vec<Patient>), (status = 400, body = Problem)))]
pub async fn get_patients(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Query(q): Query<PatientListParams>,
) -> ApiResult<Json<Vec<Patient>>> {
    let ranges = keta_domain::plausible::ranges();
    ranges.page(q.limit, q.offset, ranges.lists.page_limit_max)?;
    let q = PatientQuery {
        search: q.search,
        site_id: q.site_id.map(SiteId),
        limit: q.limit.unwrap_or(50),
        offset: q.offset.unwrap_or(0),
    };
    Ok(Json(st.store.list_patients(&a, q).await?))
}

#[utoipa::path(post, path = "/api/v1/patients", tag = "patients", request_body = NewPatient,
    responses((status = 201, body = Patient), (status = 422, body = Problem), (status = 409, body = Problem)))]
pub async fn post_patient(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Json(new): Json<NewPatient>,
) -> ApiResult<(StatusCode, Json<Patient>)> {
    Ok((StatusCode::CREATED, Json(st.store.create_patient(&a, new).await?)))
}

#[utoipa::path(get, path = "/api/v1/patients/{id}", tag = "patients", params(("id" = i64, Path)),
    responses((status = 200, body = Patient), (status = 404, body = Problem)))]
pub async fn get_patient(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Patient>> {
    Ok(Json(st.store.get_patient(&a, PatientId(id)).await?))
}

/// The whole chart: courses, sessions, scores, outcomes, open alerts, adverse events, eligibility.
#[utoipa::path(get, path = "/api/v1/patients/{id}/chart", tag = "patients", params(("id" = i64, Path)),
    responses((status = 200, body = PatientChart), (status = 404, body = Problem)))]
pub async fn get_chart(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<PatientChart>> {
    Ok(Json(st.store.patient_chart(&a, PatientId(id)).await?))
}

#[utoipa::path(get, path = "/api/v1/patients/{id}/weights", tag = "patients", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<WeightEntry>), (status = 404, body = Problem)))]
pub async fn get_weights(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<WeightEntry>>> {
    Ok(Json(st.store.list_weights(&a, PatientId(id)).await?))
}

#[utoipa::path(post, path = "/api/v1/patients/{id}/weights", tag = "patients", params(("id" = i64, Path)), request_body = NewWeight,
    responses((status = 201, body = WeightEntry), (status = 422, body = Problem), (status = 404, body = Problem)))]
pub async fn post_weight(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(new): Json<NewWeight>,
) -> ApiResult<(StatusCode, Json<WeightEntry>)> {
    Ok((StatusCode::CREATED, Json(st.store.add_weight(&a, PatientId(id), new).await?)))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SiteSafetyRules {
    /// True when the site's medical director replaced the built-in rules.
    pub overridden: bool,
    pub rules: keta_domain::alerts::SafetyRules,
}

/// The session-safety rules in force at a site, each with its source.
#[utoipa::path(get, path = "/api/v1/sites/{id}/safety-rules", tag = "rules", params(("id" = i64, Path)),
    responses((status = 200, body = SiteSafetyRules), (status = 404, body = Problem)))]
pub async fn get_site_safety_rules(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<SiteSafetyRules>> {
    let (rules, overridden) = st.store.site_safety_rules(&a, SiteId(id)).await?;
    Ok(Json(SiteSafetyRules { overridden, rules: (*rules).clone() }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SafetyRulesOverride {
    /// The complete rules file (the format of data/rules/session-safety.toml), or null to restore the built-in rules.
    pub toml: Option<String>,
}

/// Replaces a site's session-safety rules (medical director). The file must load completely; errors name the key.
#[utoipa::path(put, path = "/api/v1/sites/{id}/safety-rules", tag = "rules", params(("id" = i64, Path)), request_body = SafetyRulesOverride,
    responses((status = 200, body = SiteSafetyRules), (status = 422, body = Problem), (status = 403, body = Problem)))]
pub async fn put_site_safety_rules(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(o): Json<SafetyRulesOverride>,
) -> ApiResult<Json<SiteSafetyRules>> {
    st.store.set_site_safety_rules(&a, SiteId(id), o.toml).await?;
    let (rules, overridden) = st.store.site_safety_rules(&a, SiteId(id)).await?;
    Ok(Json(SiteSafetyRules { overridden, rules: (*rules).clone() }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PkThreshold {
    /// Plasma level in ng/mL the session screen predicts the fall below; null clears it.
    pub ng_ml: Option<f64>,
}

/// Sets the site's PK threshold (no default: the references give none).
#[utoipa::path(put, path = "/api/v1/sites/{id}/pk-threshold", tag = "rules", params(("id" = i64, Path)), request_body = PkThreshold,
    responses((status = 204), (status = 422, body = Problem), (status = 403, body = Problem)))]
pub async fn put_site_pk_threshold(
    State(st): State<AppState>,
    CurrentUser { actor: a, .. }: CurrentUser,
    Path(id): Path<i64>,
    Json(t): Json<PkThreshold>,
) -> ApiResult<StatusCode> {
    st.store.set_site_pk_threshold(&a, SiteId(id), t.ng_ml).await?;
    Ok(StatusCode::NO_CONTENT)
}
