//! A retried request never records twice.
//!
//! * API calls: a state-changing request may carry an `Idempotency-Key` header (the IETF
//!   draft "The Idempotency-Key HTTP Header Field"), scoped to the signed-in account. A
//!   repeat with the same key, method, path and body gets the first response again (same
//!   status and body, with `Idempotent-Replayed: true`); the same key with another request
//!   is refused with 422; a repeat while the first is still running gets 409.
//! * HTML forms carry a one-time `form_token` hidden field ([`crate::ui::page::Chrome::form_token`]),
//!   handled the same way: a double-click, back-and-resubmit or a retry after a timeout
//!   shows the first result, or says clearly that the form was already recorded.
//!
//! The bookkeeping is in `keta_store::idempotency`: this layer reserves the key, runs the
//! request under the claim (each store write marks the key in its own transaction), then
//! keeps the response or releases a key whose request recorded nothing (refused input),
//! so it can be corrected and sent again. If the request is dropped (the timeout), the key
//! is released unless a write already committed under it, and a write still waiting is
//! refused by its mark, so nothing is recorded behind the client's back.
//! Requests without a signed-in user (sign-in itself, a patient's check-in link) pass
//! through: a key is scoped to an account.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keta_store::idempotency::{Claim, Reservation, StoredResponse, fingerprint, under_claim};
use keta_store::{Store, StoreError};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::ui::page::UiError;

pub const HEADER: &str = "idempotency-key";
/// Set on a response that repeats the first one.
pub const REPLAYED: &str = "idempotent-replayed";
/// The hidden field every HTML form carries.
pub const FORM_FIELD: &str = "form_token";
/// How many hours keys and their responses are kept (a product setting, default 24; the
/// `idempotency_retention_hours` setting, `crate::settings::WebSettings::idempotency`).
pub const RETENTION_ENV: &str = "KETA_IDEMPOTENCY_RETENTION_HOURS";

/// Where a request's key came from, which decides how refusals are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Header,
    Form,
}

/// Headers never kept for replay: cookies belong to the moment, the rest is recomputed.
fn kept(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "set-cookie" | "content-length" | "date" | "transfer-encoding" | "connection" | "server-timing"
    )
}

fn refusal(
    source: Source,
    path: &str,
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
) -> Response {
    if source == Source::Form && !path.starts_with("/api/") {
        return UiError::Store(StoreError::Conflict(detail)).into_response();
    }
    let mut r = ApiError { status, kind, title, detail, errors: vec![] }.into_response();
    if status == StatusCode::CONFLICT {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn store_error(path: &str, e: StoreError) -> Response {
    if path.starts_with("/api/") { ApiError::from(e).into_response() } else { UiError::Store(e).into_response() }
}

fn replay(stored: StoredResponse) -> Response {
    let mut r = Response::new(Body::from(stored.body));
    *r.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (k, v) in stored.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            r.headers_mut().append(k, v);
        }
    }
    r.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    r
}

/// Gives the key back if the request is dropped before it finished (the request timeout).
struct ReleaseOnDrop {
    store: Store,
    claim: Option<Claim>,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            let store = self.store.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = store.release_idempotency_key(&claim).await {
                        tracing::warn!(error = %e, "could not release the idempotency key of a dropped request");
                    }
                });
            }
        }
    }
}

fn form_token(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == FORM_FIELD)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// The layer: see the module documentation.
pub async fn guard_retries(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE) {
        return next.run(req).await;
    }
    let Some(user_id) = req.extensions().get::<CurrentUser>().map(|u| u.user_id) else {
        return next.run(req).await;
    };
    let path = req.uri().path_and_query().map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let header_key = match req.headers().get(HEADER).map(|v| v.to_str()) {
        Some(Ok(k)) => Some(k.trim().to_string()),
        Some(Err(_)) => {
            return ApiError::bad_request("Idempotency-Key", "must be visible ASCII characters, e.g. a UUID")
                .into_response();
        }
        None => None,
    };
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if header_key.is_none() && !is_form {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "too-large",
            title: "The request is too large",
            detail: "the body is larger than 1 MiB".into(),
            errors: vec![],
        }
        .into_response();
    };
    let (key, source) = match (header_key, form_token(&bytes)) {
        (Some(k), _) => (k, Source::Header),
        (None, Some(t)) => (format!("form:{t}"), Source::Form),
        (None, None) => return next.run(Request::from_parts(parts, Body::from(bytes))).await,
    };
    let print = fingerprint(parts.method.as_str(), &path, &bytes);
    let policy = st.settings.idempotency;
    let claim = match st.store.reserve_idempotency_key(user_id, &key, &print, policy).await {
        Ok(Reservation::Reserved(claim)) => claim,
        Ok(Reservation::Replay(stored)) => return replay(stored),
        Ok(Reservation::Mismatch) => {
            return refusal(
                source,
                &path,
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "This Idempotency-Key was used for a different request",
                match source {
                    Source::Header => "the Idempotency-Key was already used with another method, path or body; send a new key for a new request".into(),
                    Source::Form => "this form was already submitted and recorded; what it recorded is on the page. Open the form again to record something new".into(),
                },
            );
        }
        Ok(Reservation::InFlight) => {
            return refusal(
                source,
                &path,
                StatusCode::CONFLICT,
                "idempotency-in-flight",
                "The first request with this key is still running",
                match source {
                    Source::Header => "a request with this Idempotency-Key is still being processed; retry after it has finished to get its result".into(),
                    Source::Form => "this form is already being recorded; reload the page in a moment to see it".into(),
                },
            );
        }
        Ok(Reservation::RecordedWithoutResponse { written_at }) => {
            let at = written_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
            return refusal(
                source,
                &path,
                StatusCode::CONFLICT,
                "idempotency-recorded",
                "The first request with this key was recorded",
                format!(
                    "the first request with this key was recorded at {at}, but its response was not kept; look the record up instead of sending it again"
                ),
            );
        }
        Err(e) => return store_error(&path, e),
    };
    let mut guard = ReleaseOnDrop { store: st.store.clone(), claim: Some(claim.clone()) };
    let res = under_claim(claim.clone(), next.run(Request::from_parts(parts, Body::from(bytes)))).await;
    guard.claim = None;
    let (mut head, body) = res.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "could not read a response to keep for idempotent replay");
            let _ = st.store.release_idempotency_key(&claim).await;
            return store_error(&path, StoreError::Backend(e.to_string()));
        }
    };
    // A refusal that recorded nothing gives the key back, so corrected input can be sent
    // again. A form's token is kept only once it recorded something: a form also posts
    // previews (the Maudsley score as you type) that record nothing.
    let must_try_release = source == Source::Form || head.status.as_u16() >= 400;
    let keep = !must_try_release || !matches!(st.store.release_idempotency_key(&claim).await, Ok(true));
    if keep {
        let stored = StoredResponse {
            status: head.status.as_u16(),
            headers: head
                .headers
                .iter()
                .filter(|(k, _)| kept(k))
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect(),
            body: body.to_vec(),
        };
        if let Err(e) = st.store.complete_idempotency_key(&claim, &stored).await {
            tracing::error!(error = %e, "could not keep a response for idempotent replay");
        }
    }
    head.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(head, Body::from(body))
}

/// Documents the `Idempotency-Key` header once, in the document's description, for every
/// state-changing operation. It is not listed as a parameter of each operation: a fuzzer would
/// then send the same generated key with different requests and be (rightly) refused.
pub struct OpenApiHeader;

impl utoipa::Modify for OpenApiHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let text = "\n\nRetries: every POST, PUT, PATCH and DELETE accepts an `Idempotency-Key` header (IETF draft \"The Idempotency-Key HTTP Header Field\"): \
            1 to 255 visible ASCII characters, unique per request (e.g. a UUID), scoped to the signed-in account and kept 24 h by default (KETA_IDEMPOTENCY_RETENTION_HOURS). \
            A repeat with the same key and body returns the first response (same status and body) with `Idempotent-Replayed: true`; \
            the same key with another method, path or body is refused with 422; a repeat while the first is still running gets 409; a malformed key is refused, naming the header.";
        let d = openapi.info.description.get_or_insert_with(String::new);
        d.push_str(text);
    }
}
