//! Administration in the browser: staff accounts, sites and chairs, and every
//! clinic setting and rule set that used to need the API. Each screen calls the same store
//! operations as the API (which validate, check permissions and audit in the same
//! transaction); a refused form is shown again with what to fix beside each field.

mod api_clients;
mod monitors;
mod settings;
mod sites;
mod staff;

use askama::Template;
use axum::Router;
use axum::routing::{get, post};
use keta_domain::access::Permission;
use keta_store::StoreError;

use super::clock::SiteClock;
use super::page::{Area, Chrome, Errors, FormData, UiError, UiResult, render};
use crate::AppState;
use crate::auth::CurrentUser;

/// The administration routes (listed in `access_rules::PAGE_RULES`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(get_index))
        .route("/admin/staff", get(staff::get_staff).post(staff::post_new_user))
        .route("/admin/staff/{id}", get(staff::get_user).post(staff::post_user))
        .route("/admin/staff/{id}/disabled", post(staff::post_disabled))
        .route("/admin/staff/{id}/password", post(staff::post_password))
        .route("/admin/staff/{id}/totp", post(staff::post_totp))
        .route("/admin/sites", get(sites::get_sites).post(sites::post_new_site))
        .route("/admin/sites/{id}", get(sites::get_site).post(sites::post_site))
        .route("/admin/sites/{id}/chairs", post(sites::post_chair))
        .route("/admin/sites/{id}/patient-contact", post(sites::post_patient_contact))
        .route("/admin/sites/{id}/on-duty", post(sites::post_on_duty))
        .route("/admin/sites/{id}/dea-registration", post(sites::post_dea_registration))
        .route("/admin/api-clients", get(api_clients::get_clients).post(api_clients::post_new_client))
        .route("/admin/api-clients/{id}/revoke", post(api_clients::post_revoke))
        .route("/admin/monitors", get(monitors::get_monitors).post(monitors::post_monitor))
        .route("/admin/settings", get(settings::get_settings))
        .route("/admin/settings/relapse-watch", post(settings::post_relapse))
        .route("/admin/settings/home-pre-dose", post(settings::post_home))
        .route("/admin/settings/alert-escalation", post(settings::post_escalation))
        .route("/admin/settings/sites/{id}/safety-rules", post(settings::post_safety_rules))
        .route("/admin/settings/sites/{id}/pk-threshold", post(settings::post_pk_threshold))
        .route("/admin/settings/sites/{id}/discharge", post(settings::post_discharge))
}

#[derive(Template)]
#[template(path = "admin/index.html")]
struct IndexPage {
    chrome: Chrome,
    can_manage: bool,
}

async fn get_index(user: CurrentUser) -> UiResult {
    Ok(render(&IndexPage {
        chrome: Chrome::new(&user, "Administration", Area::Admin),
        can_manage: user.actor.can(Permission::ManageUsers),
    }))
}

/// Which form on a page was refused, with what was typed and what to fix; the other forms
/// show the stored values.
#[derive(Debug, Default)]
pub(crate) struct Refused {
    pub key: String,
    pub form: FormData,
    pub errors: Errors,
}

impl Refused {
    pub fn none() -> Self {
        Self::default()
    }
    pub fn of(key: impl Into<String>, form: FormData, errors: Errors) -> Self {
        Self { key: key.into(), form, errors }
    }
    /// The value to show in a field of form `key`: as typed if that form was refused.
    pub fn value(&self, key: &str, name: &str, stored: &str) -> String {
        if self.key == key { self.form.get(name).to_string() } else { stored.to_string() }
    }
    pub fn checked(&self, key: &str, name: &str, stored: impl std::borrow::Borrow<bool>) -> bool {
        if self.key == key { self.form.checked(name) } else { *stored.borrow() }
    }
    pub fn error(&self, key: &str, name: &str) -> Option<String> {
        if self.key == key { self.errors.get(name) } else { None }
    }
    /// Messages for form `key` as a whole, and field errors no input on these screens shows
    /// (e.g. a key inside a safety-rules file); every other field shows its own beside it.
    pub fn general(&self, key: &str) -> Vec<String> {
        if self.key != key {
            return vec![];
        }
        let mut v = self.errors.general.clone();
        v.extend(self.errors.unplaced(PLACED));
        v
    }
    pub fn is(&self, key: &str) -> bool {
        self.key == key && self.errors.any()
    }
}

/// Every field the administration forms show with its own error message.
const PLACED: &[&str] = &[
    "username",
    "display_name",
    "role",
    "password",
    "site_ids",
    "new_password",
    "confirm_password",
    "confirm_reset",
    "code",
    "name",
    "time_zone",
    "crisis_line",
    "chairs",
    "address",
    "chair_name",
    "dea_registration_number",
    "dea_registered_address",
    "crisis_instructions",
    "clinic_phone",
    "prescriber",
    "contact_email",
    "contact_phone",
    "total",
    "bring_forward_within_days",
    "alcohol_free_hours",
    "sedative_free_hours",
    "escalate_after_minutes",
    "ng_ml",
    "vitals_within_minutes",
    "instrument",
    "resolved_at_or_below",
    "identifier",
    "label",
    "chair_id",
];

/// Sorts a store error into a refused form (input errors) or an error page.
pub(crate) fn refuse(key: &str, form: FormData, e: StoreError) -> Result<Refused, UiError> {
    let mut errors = Errors::new();
    match e {
        StoreError::Forbidden(msg) => errors.add_general(super::page::capitalise(&msg)),
        other => errors.absorb(other)?,
    }
    Ok(Refused::of(key, form, errors))
}

/// "7 Dec 2026 03:10 UTC by admin.demo", or "never changed here".
pub(crate) fn changed_label(c: Option<&keta_store::admin::LastChange>) -> String {
    match c {
        Some(c) => format!("Last changed {} UTC by {}", SiteClock::utc().datetime(c.at), c.by),
        None => "Not changed in Keta since installation".into(),
    }
}

/// `?saved=1` after a post/redirect/get: say that it was saved.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Saved {
    saved: Option<String>,
}

impl Saved {
    pub fn notice(&self) -> Option<String> {
        self.saved.as_ref().map(|_| "Saved.".to_string())
    }
}
