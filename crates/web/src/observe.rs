//! What a server shows about itself, and nothing about patients: every request gets an id
//! (`X-Request-Id`, taken from a trusted proxy or made here) that comes back as a response
//! header, in every problem+json body and in the audit entries the request writes; one
//! structured log line per request (method, route template, status, latency, request id:
//! never the raw path, the query or a body, so no patient id or name reaches the log); the
//! request-latency histograms of `/metrics` (`crate::metrics`). See `docs/observability.md`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::serving::TrustedProxies;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming request id believed; longer ones are replaced.
const MAX_REQUEST_ID: usize = 64;

/// The largest problem+json body the request id is written into (they are a few hundred bytes).
const MAX_PROBLEM_BYTES: usize = 64 * 1024;

/// Per-server observability state: metrics, who may read them, and the shutdown in progress.
#[derive(Debug)]
pub struct Observability {
    pub metrics: crate::metrics::Metrics,
    /// A bearer token that lets `/metrics` be read from other machines (loopback needs none).
    pub metrics_token: Option<String>,
    /// Set when shutdown begins: readiness fails, live streams end with a reconnect hint.
    draining: AtomicBool,
    stopping: tokio::sync::watch::Sender<bool>,
    /// How long in-flight requests get to finish once shutdown begins.
    pub shutdown_grace: Duration,
    /// How long a live board waits before reconnecting after a shutdown (the SSE `retry:`).
    pub reconnect_hint: Duration,
}

/// Default of `shutdown_grace_seconds` (a product setting): below the 30 s most orchestrators
/// allow between SIGTERM and SIGKILL.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

impl Observability {
    pub fn new(store: keta_store::Store) -> Self {
        Self {
            metrics: crate::metrics::Metrics::new(store),
            metrics_token: None,
            draining: AtomicBool::new(false),
            stopping: tokio::sync::watch::channel(false).0,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            reconnect_hint: Duration::from_secs(2),
        }
    }

    /// Begins shutdown: readiness fails from now on and live streams close.
    pub fn begin_shutdown(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.stopping.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Resolves once shutdown has begun.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// Wraps the whole router (outside even the panic catcher, so every answer is named).
pub fn outermost(app: axum::Router, state: &crate::AppState) -> axum::Router {
    app.layer(axum::middleware::from_fn_with_state(
        (state.observe.clone(), state.trusted_proxies.clone()),
        around_request,
    ))
}

/// A request id as sent by a proxy: 1 to 64 letters, digits, `-`, `_`, `.` or `:`.
pub fn sane_request_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_REQUEST_ID
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn new_request_id() -> String {
    keta_store::credentials::new_token()[..32].to_string()
}

/// The outermost middleware: names the request, runs it with that name (so the store writes
/// it into audit entries), returns it as `X-Request-Id` and in a problem+json body, logs one
/// line and records its latency.
pub async fn around_request(
    State((obs, proxies)): State<(Arc<Observability>, TrustedProxies)>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let incoming = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::trim);
    let id = match (peer, incoming) {
        (Some(ip), Some(v)) if proxies.trusts(ip) && sane_request_id(v) => v.to_string(),
        _ => new_request_id(),
    };
    let value = HeaderValue::from_str(&id).expect("a sane request id is a valid header value");
    req.headers_mut().insert(REQUEST_ID, value.clone());
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_string();
    let method = req.method().clone();
    let id: Arc<str> = id.into();
    let res = keta_store::request_id::scope(id.clone(), next.run(req)).await;
    let mut res = with_request_id_in_problem(res, &id).await;
    res.headers_mut().insert(REQUEST_ID, value);
    let latency = started.elapsed();
    let status = res.status().as_u16();
    obs.metrics.observe_request(&route, method.as_str(), status, latency);
    // The route template only: the raw path could carry a patient id, the query a name.
    if status >= 500 {
        tracing::warn!(target: "keta::request", method = %method, route = %route, status, latency_ms = latency.as_secs_f64() * 1000.0, request_id = %id, "request");
    } else {
        tracing::info!(target: "keta::request", method = %method, route = %route, status, latency_ms = latency.as_secs_f64() * 1000.0, request_id = %id, "request");
    }
    res
}

/// Adds `request_id` to a problem+json body (RFC 9457 extension member).
async fn with_request_id_in_problem(res: Response, id: &str) -> Response {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/problem+json"));
    if !is_problem {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_PROBLEM_BYTES).await {
        Ok(b) => b,
        Err(_) => return Response::from_parts(parts, axum::body::Body::empty()),
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("request_id".into(), id.into());
            parts.headers.remove(header::CONTENT_LENGTH);
            serde_json::to_vec(&map).unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    };
    Response::from_parts(parts, axum::body::Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::sane_request_id;

    #[test]
    fn only_short_plain_request_ids_are_believed() {
        assert!(sane_request_id("3f2a9c1e-7b4d-4e0a-9a55-0c2f1d3e4b5a"));
        assert!(sane_request_id("lb-01:123.4"));
        for bad in ["", "a b", "x\ny", "<script>", "id;drop", &"a".repeat(65), "pätient"] {
            assert!(!sane_request_id(bad), "{bad:?}");
        }
    }
}
