//! `GET /fhir/R4/Binary/{id}`: the PDF a `DocumentReference` points at (`note-12`, `rems-12`),
//! typeset when it is read from the same data and templates as the screen's download, audited
//! as a print. As FHIR asks of Binary: the PDF itself, unless the client accepts only FHIR JSON
//! (`Accept: application/fhir+json`), which gets a `Binary` resource with the PDF in base64.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use keta_store::fhir::{DocumentKind, Search};
use serde_json::json;

use super::{Caller, FhirError, fhir_response};
use crate::AppState;
use crate::ui::page::UiError;
use crate::ui::print;

impl From<UiError> for FhirError {
    fn from(e: UiError) -> Self {
        match e {
            UiError::Store(s) => s.into(),
            UiError::NotFound(what) => FhirError::not_found(what),
            UiError::BadRequest(m) => FhirError::invalid(m),
            UiError::Internal => FhirError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "exception",
                diagnostics: "the document could not be typeset; nothing was printed".into(),
            },
        }
    }
}

/// Whether the client asked for the FHIR `Binary` resource rather than the PDF itself.
fn wants_fhir_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let pdf = accept.contains("application/pdf") || accept.contains("*/*");
    !pdf && (accept.contains("application/fhir+json") || accept.contains("application/json"))
}

pub async fn read_binary(
    State(st): State<AppState>,
    Caller(actor, scope): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    scope.require("Binary")?;
    let gone = || FhirError::not_found(format!("Binary/{id}"));
    let (kind, session) = DocumentKind::parse_id(&id).ok_or_else(gone)?;
    // Only what a DocumentReference points at: a signed note, a submitted form (this read is
    // site-scoped and audited like the reference itself).
    let q = Search { id: Some(session.0), count: 1, ..Search::default() };
    let found = st.store.fhir_documents(&actor, q, vec![kind]).await?;
    if found.items.is_empty() {
        return Err(gone());
    }
    let prepared = match kind {
        DocumentKind::SessionNote => print::session_note(&st, &actor, &actor.name, session).await?,
        DocumentKind::RemsForm => print::rems_form(&st, &actor, &actor.name, session).await?,
    };
    let bytes = print::render(&st, &actor, prepared).await?;
    if wants_fhir_json(&headers) {
        let body = json!({
            "resourceType": "Binary",
            "id": id,
            "contentType": "application/pdf",
            "securityContext": { "reference": format!("DocumentReference/{id}") },
            "data": base64::engine::general_purpose::STANDARD.encode(&bytes),
        });
        return Ok(fhir_response(StatusCode::OK, &body));
    }
    Ok(print::download(bytes, &format!("session-{}-{}", session.0, kind.key())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().unwrap());
        h
    }

    #[test]
    fn the_pdf_unless_only_fhir_json_is_accepted() {
        assert!(wants_fhir_json(&accept("application/fhir+json")));
        assert!(wants_fhir_json(&accept("application/json")));
        assert!(!wants_fhir_json(&accept("application/pdf")));
        assert!(!wants_fhir_json(&accept("application/fhir+json, */*;q=0.1")));
        assert!(!wants_fhir_json(&HeaderMap::new()));
    }
}
