//! Keta's web server: the JSON API under `/api/v1` and its OpenAPI document, the clinic's
//! HTML screens (`ui`, askama + htmx), the FHIR R4 facade, sign-in, CSRF and security
//! headers, health and metrics, the check-in reminders' sweep and the bedside-monitor
//! listener.
//!
//! Handlers parse input into domain types, call the store, and map errors once into
//! problem+json (or an HTML error). There is no SQL here, and nothing reads the environment:
//! settings arrive resolved in [`AppState::settings`] ([`settings::WebSettings`]).

pub mod access_rules;
pub mod api;
pub mod auth;
pub mod cluster;
pub mod error;
pub mod escalation;
pub mod extract;
pub mod fhir;
pub mod fhir_import;
pub mod idempotency;
pub mod metrics;
pub mod monitors;
pub mod observe;
pub mod pages;
pub mod reminders;
pub mod serving;
pub mod settings;
pub mod shutdown;
pub mod ui;

use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::{get, post};
use keta_store::Store;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::OpenApi;

/// Shared state for every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The server's settings (session limits, break-glass, body limit, timeouts, retention).
    pub settings: std::sync::Arc<settings::WebSettings>,
    pub throttle: std::sync::Arc<auth::LoginThrottle>,
    /// How check-in reminders are delivered, and the public URL their links use.
    pub reminders: reminders::Reminders,
    /// Reverse proxies whose `X-Forwarded-For`/`X-Forwarded-Host` are believed (`serving`).
    pub trusted_proxies: serving::TrustedProxies,
    /// Metrics, readiness while shutting down, and the shutdown itself (`observe`).
    pub observe: std::sync::Arc<observe::Observability>,
    /// The protocol library: the built-in protocols plus the clinic's own files, read once at
    /// start-up (`keta serve --protocols-dir`), so a bad file stops the server, not a dose.
    pub protocols: std::sync::Arc<keta_domain::protocols::ProtocolLibrary>,
    /// The bedside-monitor listener's settings when it is on (shown to administrators).
    pub monitors: Option<std::sync::Arc<monitors::MonitorRuntime>>,
    /// FHIR bulk export files and retention; OAuth access-token lifetime (`fhir::bulk`).
    pub bulk: fhir::bulk::BulkSettings,
    /// The PDF templates: the built-in ones, each replaced by the clinic's file of the same
    /// name in `documents_dir` (`keta serve --documents-dir`) when set.
    pub documents: ui::print::Documents,
}

impl AppState {
    pub fn new(store: Store) -> Self {
        Self {
            observe: std::sync::Arc::new(observe::Observability::new(store.clone())),
            store,
            settings: std::sync::Arc::default(),
            throttle: Default::default(),
            reminders: reminders::Reminders::log_only("http://localhost:8080"),
            trusted_proxies: serving::TrustedProxies::default(),
            protocols: std::sync::Arc::new(keta_domain::protocols::ProtocolLibrary::builtin().clone()),
            monitors: None,
            bulk: fhir::bulk::BulkSettings::default(),
            documents: ui::print::Documents::default(),
        }
    }

    /// Records the bedside-monitor listener's settings (for the administrators' monitors screen).
    pub fn with_monitors(mut self, m: monitors::MonitorRuntime) -> Self {
        self.monitors = Some(std::sync::Arc::new(m));
        self
    }

    /// Sets the bulk export directory and retention, and the access-token lifetime.
    pub fn with_bulk(mut self, b: fhir::bulk::BulkSettings) -> Self {
        self.bulk = b;
        self
    }

    /// Uses these settings (resolved by `keta serve`).
    pub fn with_settings(mut self, s: settings::WebSettings) -> Self {
        self.settings = std::sync::Arc::new(s);
        self
    }

    /// Sets how reminders are delivered (SMTP, a text provider, or log-only with an outbox).
    pub fn with_reminders(mut self, r: reminders::Reminders) -> Self {
        self.reminders = r;
        self
    }

    /// Sets who may read `/metrics`, the shutdown grace and the reconnect hint.
    pub fn with_observability(mut self, o: observe::Observability) -> Self {
        self.observe = std::sync::Arc::new(o);
        self
    }

    /// Uses this protocol library (the built-in one plus the clinic's files).
    pub fn with_protocols(mut self, lib: keta_domain::protocols::ProtocolLibrary) -> Self {
        self.protocols = std::sync::Arc::new(lib);
        self
    }

    /// Uses the clinic's edited document templates from this directory (see `ui::print`).
    pub fn with_documents(mut self, d: ui::print::Documents) -> Self {
        self.documents = d;
        self
    }

    /// Believes forwarding headers from these reverse proxies (see `serving`).
    pub fn with_trusted_proxies(mut self, p: serving::TrustedProxies) -> Self {
        self.trusted_proxies = p;
        self
    }
}

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::ApiDoc::openapi()
}

/// The document as committed to `docs/openapi.json` (pretty, trailing newline).
pub fn openapi_json() -> String {
    let mut s = serde_json::to_string_pretty(&openapi()).expect("the OpenAPI document serialises");
    s.push('\n');
    s
}

/// The largest request body accepted unless the settings say otherwise.
pub const BODY_LIMIT_BYTES: usize = settings::DEFAULT_BODY_LIMIT_BYTES;

pub fn router(state: AppState) -> Router {
    let app = Router::new()
        .route("/healthz", get(api::health::get_healthz))
        .route("/livez", get(api::health::get_livez))
        .route("/readyz", get(api::health::get_readyz))
        .route("/metrics", get(metrics::get_metrics))
        .route("/api/openapi.json", get(api::health::get_openapi))
        .route("/login", get(pages::get_login).post(pages::post_login))
        .route("/login/code", get(pages::get_code).post(pages::post_code))
        .route("/logout", post(pages::post_logout))
        .route("/reauth", get(pages::get_reauth).post(pages::post_reauth))
        .route("/setup", get(pages::get_setup).post(pages::post_setup))
        .route("/patients/{id}/break-glass", post(pages::post_break_glass))
        .route(
            "/static/auth.css",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../static-auth/auth.css"))
            }),
        )
        // Retries are recognised only on a route and method that exist (route layers), so an
        // unknown method is still 405 whatever its headers.
        .merge(
            ui::routes(state.clone())
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::guard_retries)),
        )
        // Referral import (a FHIR Bundle); FHIR read and search live beside it under /fhir/R4.
        .route(
            "/fhir/R4",
            post(fhir_import::post_bundle)
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::guard_retries))
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), access_rules::access_guard)),
        )
        .nest(
            "/api/v1",
            api::routes()
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::guard_retries))
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), access_rules::access_guard))
                .layer(axum::middleware::from_fn(ui::live::publish_after_writes)),
        )
        // FHIR R4 read and search: GET only, so CSRF never applies; reads are audited below.
        .nest("/fhir/R4", fhir::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::csrf_guard))
        .layer(axum::middleware::from_fn_with_state(state.clone(), audit_reads_per_request))
        // First of all: a trusted proxy's forwarding headers give the browser's address and host.
        .layer(axum::middleware::from_fn_with_state(state.clone(), serving::forwarded_from_trusted_proxy))
        .with_state(state.clone());
    let outer = with_outer_layers(app, state.settings.request_timeout, state.settings.body_limit_bytes);
    observe::outermost(outer, &state)
}

/// How long a request may take before it is answered 408, unless the settings say otherwise.
pub const REQUEST_TIMEOUT: Duration = settings::DEFAULT_REQUEST_TIMEOUT;

/// The layers every response passes through, errors included: a panic becomes a 500
/// problem, a body over the limit a 413, a slow request a 408, every bare error
/// problem+json, and every response carries the security headers.
pub fn with_outer_layers(app: Router, timeout: Duration, body_limit_bytes: usize) -> Router {
    app.layer(tower_http::catch_panic::CatchPanicLayer::custom(error::panic_problem))
        .layer(RequestBodyLimitLayer::new(body_limit_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(axum::middleware::from_fn(error::problem_for_bare_errors))
        .layer(axum::middleware::from_fn(auth::security_headers))
}

/// AU-1 at one entry per request: the reads a GET makes through the store (a chart page
/// reads the chart, doses, exposure and check-ins) are audited together when it finishes,
/// one entry per patient read in one transaction. If that entry cannot be written, the
/// response is withheld: no patient data leaves unaudited.
async fn audit_reads_per_request(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.method() != axum::http::Method::GET {
        return next.run(req).await;
    }
    match st.store.batch_reads(next.run(req)).await {
        Ok(res) => res,
        Err(e) => error::ApiError::from(e).into_response(),
    }
}

/// Serves until `shutdown` resolves, then drains (`shutdown::drain`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let obs = state.observe.clone();
    let server = axum::serve(listener, router(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown::begin_on(obs.clone(), shutdown));
    shutdown::bounded(obs, server).await
}
