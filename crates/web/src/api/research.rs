//! The research export's clinic setting: the k-anonymity threshold (`keta_domain::research`).

use axum::extract::State;
use keta_domain::research::ResearchSettings;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiResult, Problem};
use crate::extract::Json;

/// The research export's k threshold: every combination of quasi-identifiers is shared by at
/// least k exported patients, and smaller sites are suppressed. A clinic setting; the default
/// (5) is not from the references.
#[utoipa::path(get, path = "/api/v1/settings/research-export", tag = "research",
    responses((status = 200, body = ResearchSettings), (status = 403, body = Problem)))]
pub async fn get_research_settings(State(st): State<AppState>, u: CurrentUser) -> ApiResult<Json<ResearchSettings>> {
    Ok(Json(st.store.research_settings(&u.actor).await?))
}

/// Sets the k threshold (administrators of every site), audited.
#[utoipa::path(put, path = "/api/v1/settings/research-export", tag = "research", request_body = ResearchSettings,
    responses((status = 200, body = ResearchSettings), (status = 422, body = Problem), (status = 403, body = Problem)))]
pub async fn put_research_settings(
    State(st): State<AppState>,
    u: CurrentUser,
    Json(s): Json<ResearchSettings>,
) -> ApiResult<Json<ResearchSettings>> {
    Ok(Json(st.store.set_research_settings(&u.actor, s).await?))
}
