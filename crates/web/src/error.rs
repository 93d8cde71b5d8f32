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
    /// The request's id (also its `X-Request-Id` header and in the server's log and audit
    /// entries): quote it when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
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

impl ApiError {
    /// 507: the database's disk is full. Nothing of the request was saved; the server keeps
    /// running and writes work again once space is freed (readiness reports it meanwhile).
    pub fn disk_full() -> Self {
        Self {
            status: StatusCode::INSUFFICIENT_STORAGE,
            kind: "disk-full",
            title: "The database disk is full",
            detail:
                "the database disk is full; nothing was saved. Ask your administrator to free space, then try again."
                    .into(),
            errors: vec![],
        }
    }

    /// The problem for an error status that middleware, not a handler, decided: an unknown
    /// route, a method the route lacks, a body over the limit, a timeout, a panic.
    pub fn for_status(status: StatusCode) -> Self {
        let (kind, title, detail): (&'static str, &'static str, &str) = match status.as_u16() {
            400 => ("bad-request", "The request could not be read", "check the request's syntax"),
            401 => ("unauthorised", "Sign in first", "sign in at /login or POST /api/v1/auth/login"),
            403 => ("forbidden", "Not allowed", "this request is not allowed"),
            404 => ("not-found", "Not found", "nothing exists at this address"),
            405 => (
                "method-not-allowed",
                "Method not allowed",
                "this address does not accept that method; the Allow header lists the ones it does",
            ),
            408 => (
                "timeout",
                "The request took too long",
                "the server stopped waiting; nothing was changed unless a later read shows it, so check before you retry",
            ),
            413 => ("payload-too-large", "The request body is too large", "send at most 1 MiB"),
            415 => {
                ("unsupported-media-type", "Send JSON", "send the body as JSON with 'Content-Type: application/json'")
            }
            429 => (
                "too-many-requests",
                "Too many requests",
                "wait for the time the Retry-After header gives, then try again",
            ),
            503 => {
                ("unavailable", "The service is unavailable", "the server is starting or stopping; try again shortly")
            }
            507 => (
                "disk-full",
                "The database disk is full",
                "the database disk is full; nothing was saved. Ask your administrator to free space, then try again.",
            ),
            504 => ("timeout", "The request took too long", "the server stopped waiting; check before you retry"),
            s if s >= 500 => (
                "internal",
                "Something went wrong on the server",
                "the error was logged; try again, and tell your administrator if it persists",
            ),
            _ => ("error", "The request failed", "the request failed"),
        };
        Self { status, kind, title, detail: detail.to_string(), errors: vec![] }
    }
}

/// Every error the API sends is problem+json, whoever produced it (RFC 9457): errors that
/// axum or tower-http answer themselves (an unknown method, a body over the limit, a
/// timeout) come with an empty or plain-text body, which this replaces. Status and headers
/// (`Allow`, `Retry-After`) are kept; JSON bodies and rendered HTML pages are left alone.
pub async fn problem_for_bare_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    if !(res.status().is_client_error() || res.status().is_server_error()) {
        return res;
    }
    // Only bare bodies: a handler's own JSON (the health report's 503) or HTML page stays.
    let ct = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !(ct.is_empty() || ct.starts_with("text/plain")) {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    let problem = ApiError::for_status(parts.status).into_response();
    let (pparts, body) = problem.into_parts();
    for (k, v) in pparts.headers.iter() {
        parts.headers.insert(k, v.clone());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

/// A handler that panicked: logged with a reference, answered as a 500 problem (WEB-7).
pub fn panic_problem(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    let reference = keta_store::credentials::new_token()[..12].to_string();
    tracing::error!(panic = %what, %reference, "a request handler panicked");
    ApiError::internal(&reference).into_response()
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
            StoreError::Closed => Self::for_status(StatusCode::SERVICE_UNAVAILABLE),
            StoreError::Busy { retry_after_secs } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "busy",
                title: "The server is busy",
                detail: format!("too many writes are waiting; nothing was saved; try again in {retry_after_secs} s"),
                errors: vec![],
            },
            StoreError::DiskFull => Self::disk_full(),
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
        // A body cut off at the size limit is "too large", not "unreadable".
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::for_status(StatusCode::PAYLOAD_TOO_LARGE);
        }
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
            // Also added on the way out (`observe`) to problems answered outside a handler.
            request_id: keta_store::request_id::current().map(|r| r.to_string()),
        };
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_vec(&body).unwrap_or_default(),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // A 503 (a full write queue, storage closing) says when to try again.
            res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(keta_store::BUSY_RETRY_AFTER_SECS));
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    //! The outer layers over a tiny router: the errors axum and tower-http answer themselves
    //! come out as problem+json with the security headers.
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::{get, post};
    use tower::ServiceExt;

    async fn call(app: Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let res = app.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    async fn panicking() -> &'static str {
        panic!("a bug in a handler")
    }

    fn app(timeout: Duration) -> Router {
        let inner = Router::new()
            .route("/echo", post(|b: String| async move { b }))
            .route("/panics", get(panicking))
            .route("/never", get(std::future::pending::<&'static str>));
        crate::with_outer_layers(inner, timeout, crate::BODY_LIMIT_BYTES)
    }

    fn assert_problem(status: StatusCode, headers: &axum::http::HeaderMap, body: &serde_json::Value, want: u16) {
        assert_eq!(status.as_u16(), want, "{body}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(body["status"], want, "{body}");
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
        assert!(headers.contains_key("content-security-policy"), "security headers stay on errors");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }

    #[tokio::test]
    async fn a_method_the_route_lacks_is_a_405_problem_that_keeps_allow() {
        let (s, h, b) = call(app(Duration::from_secs(30)), Request::delete("/echo").body(Body::empty()).unwrap()).await;
        assert_problem(s, &h, &b, 405);
        assert!(h[header::ALLOW].to_str().unwrap().contains("POST"));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_413_problem_not_plain_text() {
        let big = vec![b'x'; crate::BODY_LIMIT_BYTES + 1];
        let req = Request::post("/echo").header(header::CONTENT_LENGTH, big.len()).body(Body::from(big)).unwrap();
        let (s, h, b) = call(app(Duration::from_secs(30)), req).await;
        assert_problem(s, &h, &b, 413);
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_problem_with_a_reference_and_no_internals() {
        let (s, h, b) = call(app(Duration::from_secs(30)), Request::get("/panics").body(Body::empty()).unwrap()).await;
        assert_problem(s, &h, &b, 500);
        let detail = b["detail"].as_str().unwrap();
        assert!(detail.contains("reference"), "{detail}");
        assert!(!detail.contains("a bug in a handler"), "the panic's message stays in the log: {detail}");
    }

    #[tokio::test]
    async fn a_request_that_never_finishes_is_a_408_problem() {
        // The handler never completes, so the outcome does not depend on timing.
        let (s, h, b) = call(app(Duration::from_millis(1)), Request::get("/never").body(Body::empty()).unwrap()).await;
        assert_problem(s, &h, &b, 408);
    }

    #[test]
    fn a_full_disk_is_a_507_problem_saying_nothing_was_saved() {
        let e: super::ApiError = keta_store::StoreError::DiskFull.into();
        assert_eq!(e.status, StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(e.kind, "disk-full");
        assert!(e.detail.contains("the database disk is full; nothing was saved"), "{}", e.detail);
    }

    #[test]
    fn storage_shutting_down_is_a_503_problem() {
        let e: super::ApiError = keta_store::StoreError::Closed.into();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
