//! The researcher's screen: the de-identified research export (`keta_store::research`), one
//! table per download, each download built afresh and audited with its parameters.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use keta_domain::access::Permission;

use super::page::{Area, Chrome, FormData, UiError, UiResult, render};
use crate::AppState;
use crate::auth::CurrentUser;

/// The files a researcher can download: the data set's tables and the data dictionary.
pub const FILES: &[&str] =
    &["patients", "courses", "sessions", "doses", "scores", "adverse_events", "outcomes", "data_dictionary"];

#[derive(Template)]
#[template(path = "research/export.html")]
struct ExportPage {
    chrome: Chrome,
    k: u32,
    files: &'static [&'static str],
}

pub async fn get_research(State(st): State<AppState>, user: CurrentUser) -> UiResult<Response> {
    user.actor.require(Permission::ExportResearch)?;
    let k = st.store.research_settings(&user.actor).await?.k_threshold;
    Ok(render(&ExportPage { chrome: Chrome::new(&user, "Research export", Area::None), k, files: FILES }))
}

pub async fn post_export(State(st): State<AppState>, user: CurrentUser, form: FormData) -> UiResult<Response> {
    let file = form.get("file").to_string();
    if !FILES.contains(&file.as_str()) {
        return Err(UiError::BadRequest(format!("choose one of: {}", FILES.join(", "))));
    }
    let export = st.store.export_research(&user.actor, &format!("download of {file}.csv")).await?;
    let body = if file == "data_dictionary" {
        keta_store::research::dictionary_csv(export.k_threshold)
    } else {
        export.table(&file).map(keta_store::research::to_csv).unwrap_or_default()
    };
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"keta-research-{file}.csv\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}
