//! What every HTML page shares: the page chrome (navigation, signed-in user, CSRF token),
//! rendering with security headers, the HTML error page, form data that keeps what the
//! user typed, and field errors shown next to their inputs.

use askama::Template;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keta_domain::access::Permission;
use keta_domain::{DomainError, FieldError};
use keta_store::StoreError;

use crate::auth::CurrentUser;

/// The one Content-Security-Policy, sent on every response (`auth::security_headers`) and
/// on every rendered page: scripts and styles only from our own
/// static files, so no inline script, handler or style attribute can run.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Navigation areas, for marking the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Today,
    Patients,
    Outcomes,
    Admin,
    Outbox,
    Ledger,
    None,
}

/// The frame around every staff page.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub title: String,
    pub user_name: String,
    pub role: &'static str,
    pub csrf_token: String,
    pub area: Area,
    pub css_href: &'static str,
    pub js_href: &'static str,
    pub can_register: bool,
    pub can_view_clinical: bool,
    pub can_view_audit: bool,
    pub can_export_research: bool,
    /// The controlled-substance books (every role the ledger allows, auditors included).
    pub can_view_ledger: bool,
    /// Administrators (accounts, sites, clinic settings) and prescribers (clinical rules).
    pub can_administer: bool,
    /// The demo's reminder outbox (log-only delivery), for clinical staff who may open it.
    pub shows_outbox: bool,
}

impl Chrome {
    pub fn new(user: &CurrentUser, title: impl Into<String>, area: Area) -> Self {
        Self {
            title: title.into(),
            user_name: user.display_name.clone(),
            role: user.role.label(),
            csrf_token: user.csrf_token.clone(),
            area,
            css_href: super::assets::css_href(),
            js_href: super::assets::js_href(),
            can_register: user.actor.can(Permission::EditDemographics),
            can_view_clinical: user.actor.can(Permission::ViewClinical),
            can_view_audit: user.actor.can(Permission::ViewAudit),
            can_export_research: user.actor.can(Permission::ExportResearch),
            can_view_ledger: user.actor.can(Permission::ViewLedger),
            can_administer: user.actor.can(Permission::ManageUsers) || user.actor.can(Permission::PlanTreatment),
            // The same permission `get_outbox` requires: every patient's working link is on it.
            shows_outbox: user.outbox_kept && user.actor.can(Permission::ViewClinical),
        }
    }
    pub fn is(&self, area: &str) -> bool {
        matches!(
            (area, self.area),
            ("today", Area::Today)
                | ("patients", Area::Patients)
                | ("outcomes", Area::Outcomes)
                | ("admin", Area::Admin)
                | ("outbox", Area::Outbox)
                | ("ledger", Area::Ledger)
        )
    }
    /// A fresh one-time token for one form (the hidden `form_token` field): a second
    /// submission of the same rendered form shows the first result instead of recording
    /// again (`crate::idempotency`). Each call mints a new one, so each form has its own.
    pub fn form_token(&self) -> String {
        keta_store::credentials::new_token()[..32].to_string()
    }
    /// `aria-current` value for a navigation link.
    pub fn current(&self, area: &str) -> &'static str {
        if self.is(area) { "page" } else { "false" }
    }
}

fn with_headers(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// Renders a page (200).
pub fn render<T: Template>(t: &T) -> Response {
    render_status(StatusCode::OK, t)
}

/// Renders a page with a status, e.g. 422 for a form that needs correcting.
pub fn render_status<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => with_headers(status, html),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            UiError::Internal.into_response()
        }
    }
}

/// After a successful form post: show the result with a GET (post/redirect/get).
pub fn see_other(to: impl AsRef<str>) -> Response {
    Redirect::to(to.as_ref()).into_response()
}

/// An error page. Internal details are logged, never shown.
#[derive(Debug)]
pub enum UiError {
    Store(StoreError),
    NotFound(String),
    BadRequest(String),
    Internal,
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        UiError::Store(e)
    }
}

impl From<DomainError> for UiError {
    fn from(e: DomainError) -> Self {
        UiError::Store(StoreError::Domain(e))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    css_href: &'static str,
    status: u16,
    title: &'static str,
    detail: String,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title, detail) = match self {
            UiError::NotFound(what) => {
                (StatusCode::NOT_FOUND, "Not found", format!("{what} was not found, or is not at one of your sites."))
            }
            UiError::BadRequest(msg) => (StatusCode::BAD_REQUEST, "That request could not be read", msg),
            UiError::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on the server", internal_detail())
            }
            UiError::Store(e) => match e {
                StoreError::NotFound(what) => (
                    StatusCode::NOT_FOUND,
                    "Not found",
                    format!("{what} was not found, or is not at one of your sites."),
                ),
                StoreError::Forbidden(msg) => (StatusCode::FORBIDDEN, "Not allowed for your role", capitalise(&msg)),
                StoreError::Conflict(msg) => (StatusCode::CONFLICT, "Not allowed right now", capitalise(&msg)),
                StoreError::Domain(DomainError::Conflict(msg)) => {
                    (StatusCode::CONFLICT, "Not allowed right now", capitalise(&msg))
                }
                StoreError::Domain(DomainError::Invalid(errs)) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Some values need correcting",
                    errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "),
                ),
                StoreError::Busy { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is busy",
                    "Too many changes are waiting to be saved; nothing was saved. Submit the form again in a moment."
                        .to_string(),
                ),
                StoreError::DiskFull => (
                    StatusCode::INSUFFICIENT_STORAGE,
                    "The database disk is full",
                    "The database disk is full; nothing was saved. Ask your administrator to free space, then submit \
                     the form again."
                        .to_string(),
                ),
                other => {
                    tracing::error!(error = %other, "storage error on an HTML page");
                    (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on the server", internal_detail())
                }
            },
        };
        let page = ErrorPage { css_href: super::assets::css_href(), status: status.as_u16(), title, detail };
        let mut res = match page.render() {
            Ok(html) => with_headers(status, html),
            Err(_) => (status, title).into_response(),
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(keta_store::BUSY_RETRY_AFTER_SECS));
        }
        res
    }
}

fn internal_detail() -> String {
    "The error was logged. Nothing was changed; try again, and tell your administrator if it persists.".into()
}

pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

pub type UiResult<T = Response> = Result<T, UiError>;

/// Field errors for a form, shown next to each field. Field names follow the domain's
/// (`mrn`, `diagnoses[1]`, `answers[8]`); a form field matches its own name and any
/// indexed form of it.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    list: Vec<FieldError>,
    /// Messages that belong to the form as a whole (conflicts, refused steps).
    pub general: Vec<String>,
}

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.list.push(FieldError::new(field, message));
    }
    pub fn add_general(&mut self, message: impl Into<String>) {
        self.general.push(message.into());
    }
    pub fn any(&self) -> bool {
        !self.list.is_empty() || !self.general.is_empty()
    }
    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }
    /// The messages for `field`, joined.
    pub fn get(&self, field: &str) -> Option<String> {
        let msgs: Vec<&str> = self
            .list
            .iter()
            .filter(|e| {
                e.field == field
                    || e.field.strip_prefix(field).is_some_and(|r| r.starts_with('[') || r.starts_with('.'))
            })
            .map(|e| e.message.as_str())
            .collect();
        if msgs.is_empty() { None } else { Some(msgs.join("; ")) }
    }
    /// Field errors whose field no input on the form shows (listed at the top).
    pub fn unplaced(&self, placed: &[&str]) -> Vec<String> {
        self.list
            .iter()
            .filter(|e| {
                !placed.iter().any(|p| e.field == *p || e.field.strip_prefix(p).is_some_and(|r| r.starts_with('[')))
            })
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    /// Sorts a store error into field errors and general messages. Errors that are not
    /// about the input (not found, forbidden, storage failures) are passed back.
    pub fn absorb(&mut self, e: StoreError) -> Result<(), UiError> {
        match e {
            StoreError::Domain(DomainError::Invalid(errs)) => {
                self.list.extend(errs);
                Ok(())
            }
            StoreError::Domain(DomainError::Conflict(msg)) | StoreError::Conflict(msg) => {
                self.general.push(capitalise(&msg));
                Ok(())
            }
            other => Err(UiError::Store(other)),
        }
    }
    /// The one shape of a form post, after the form was parsed into `input` (adding field
    /// errors here): when it parsed cleanly, `record` runs and `Some` of what it returned is
    /// the answer (the handler redirects or shows it); otherwise, or when the store refuses
    /// the input, `None` and these errors hold why, for the handler to render the form again.
    /// Errors that are not about the input (not found, forbidden, storage) are passed back.
    pub async fn submit<T, R, F>(&mut self, input: Option<T>, record: impl FnOnce(T) -> F) -> Result<Option<R>, UiError>
    where
        F: std::future::Future<Output = Result<R, StoreError>>,
    {
        let Some(input) = input.filter(|_| !self.any()) else { return Ok(None) };
        match record(input).await {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                self.absorb(e)?;
                Ok(None)
            }
        }
    }
    /// Renames fields, e.g. the domain's `score` to the form's `moaas_score`.
    pub fn rename(&mut self, from: &str, to: &str) {
        for e in &mut self.list {
            if e.field == from {
                e.field = to.to_string();
            }
        }
    }
}

/// A submitted form, kept as typed so a rejected form shows the user's input again.
/// Repeated names (checkbox groups) are kept in order.
#[derive(Debug, Clone, Default)]
pub struct FormData {
    pairs: Vec<(String, String)>,
}

impl FormData {
    pub fn empty() -> Self {
        Self::default()
    }
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.pairs.retain(|(k, _)| k != name);
        self.pairs.push((name.to_string(), value.into()));
    }
    /// The value as typed (empty when absent).
    pub fn get(&self, name: &str) -> &str {
        self.pairs.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }
    /// The trimmed value, `None` when blank.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name).trim().to_string()).filter(|s| !s.is_empty())
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
    /// A checkbox or radio value: present with this value.
    pub fn has_value(&self, name: &str, value: &str) -> bool {
        self.pairs.iter().any(|(k, v)| k == name && v == value)
    }
    pub fn checked(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, v)| k == name && !v.is_empty())
    }
    /// `checked` attribute helper for templates.
    pub fn is(&self, name: &str, value: &str) -> bool {
        self.has_value(name, value)
    }

    /// A number field: `None` when blank; an error on the field when it is not a number.
    pub fn number(&self, name: &str, errors: &mut Errors) -> Option<f64> {
        let raw = self.get(name).trim();
        if raw.is_empty() {
            return None;
        }
        match raw.replace(',', ".").parse::<f64>() {
            Ok(x) if x.is_finite() => Some(x),
            _ => {
                errors.add(name, format!("'{raw}' is not a number"));
                None
            }
        }
    }
    /// A whole-number field.
    pub fn integer(&self, name: &str, errors: &mut Errors) -> Option<i64> {
        let raw = self.get(name).trim();
        if raw.is_empty() {
            return None;
        }
        match raw.parse::<i64>() {
            Ok(x) => Some(x),
            Err(_) => {
                errors.add(name, format!("'{raw}' is not a whole number"));
                None
            }
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Form(pairs) = axum::Form::<Vec<(String, String)>>::from_request(req, state)
            .await
            .map_err(|e| UiError::BadRequest(format!("the form could not be read: {}", e.body_text())))?;
        Ok(FormData { pairs })
    }
}
