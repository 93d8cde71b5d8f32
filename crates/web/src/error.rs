//! One error type for every handler, rendered as RFC 9457 problem+json.
//! Internal details go to the log, never to the client.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use keta_domain::{DomainError, FieldError};
use keta_store::StoreError;
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Each invalid field and what to fix.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "validation",
            title: "Some fields need correcting",
            detail,
            errors,
        }
    }
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        let e = FieldError::new(field, message);
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "bad-request",
            title: "The request could not be read",
            detail: format!("{}: {}", e.field, e.message),
            errors: vec![e],
        }
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "not-found",
            title: "Not found",
            detail: format!("{} not found", what.into()),
            errors: vec![],
        }
    }
    /// A server error: the body names only a reference that the log line carries too (WEB-7).
    fn internal(reference: &str) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            title: "Something went wrong on the server",
            detail: format!(
                "The error was logged with reference {reference}. Nothing was changed; try again, and give your administrator the reference if it persists."
            ),
            errors: vec![],
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(errors) => Self::invalid(errors),
            DomainError::Conflict(msg) => Self {
                status: StatusCode::CONFLICT,
                kind: "conflict",
                title: "Not allowed right now",
                detail: msg,
                errors: vec![],
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self {
                status: StatusCode::NOT_FOUND,
                kind: "not-found",
                title: "Not found",
                detail: format!("{what} not found"),
                errors: vec![],
            },
            StoreError::Conflict(msg) => Self {
                status: StatusCode::CONFLICT,
                kind: "conflict",
                title: "Conflicts with existing data",
                detail: msg,
                errors: vec![],
            },
            StoreError::Domain(d) => d.into(),
            StoreError::Forbidden(msg) => Self {
                status: StatusCode::FORBIDDEN,
                kind: "forbidden",
                title: "Not allowed for your role",
                detail: msg,
                errors: vec![],
            },
            StoreError::Busy { retry_after_secs } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "busy",
                title: "The server is busy",
                detail: format!("too many writes are waiting; nothing was saved; try again in {retry_after_secs} s"),
                errors: vec![],
            },
            other => {
                let reference = keta_store::credentials::new_token()[..12].to_string();
                tracing::error!(error = %other, %reference, "storage error");
                Self::internal(&reference)
            }
        }
    }
}

/// Splits serde_path_to_error's "path: message" into a field error.
fn body_field_error(text: &str) -> FieldError {
    let msg = text.strip_prefix("Failed to deserialize the JSON body into the target type: ").unwrap_or(text);
    match msg.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => FieldError::new(path, rest),
        _ => FieldError::new("body", msg),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => Self::invalid(vec![body_field_error(&e.body_text())]),
            JsonRejection::MissingJsonContentType(_) => Self {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                kind: "unsupported-media-type",
                title: "Send JSON",
                detail: "send the body as JSON with 'Content-Type: application/json'".into(),
                errors: vec![FieldError::new("content-type", "must be application/json")],
            },
            other => Self::bad_request("body", format!("the body is not valid JSON: {}", other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        let text = r.body_text();
        let msg = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text).to_string();
        Self::bad_request("query", msg)
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request("path", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("https://keta.invalid/problems/{}", self.kind),
            title: self.title.to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
        };
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_vec(&body).unwrap_or_default(),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Only a full write queue answers 503; the store says how long it needs.
            res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(keta_store::BUSY_RETRY_AFTER_SECS));
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
