//! Who may call which route: one table, checked before any handler runs, and the source
//! of the generated authorisation-matrix test. The store checks the same permissions
//! again below every path (defence in depth).

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keta_domain::access::{Permission, allowed};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No sign-in needed (reference data, sign-in itself).
    Public,
    /// Any signed-in user; the store may refine per record.
    SignedIn,
    /// Signed in with a role that has this permission.
    Needs(Permission),
}

use Access::*;
use Permission::*;

/// Every API route and method. A route missing here fails the authorisation-matrix test.
pub const API_RULES: &[(&str, &str, Access)] = &[
    ("GET", "/api/v1/patients/{id}/checkins", Needs(ViewClinical)),
    ("GET", "/api/v1/consent-forms", SignedIn),
    ("GET", "/api/v1/patients/{id}/consents", Needs(ViewClinical)),
    ("POST", "/api/v1/patients/{id}/consents", Needs(RecordSession)),
    ("POST", "/api/v1/consents/{id}/countersign", Needs(SignNotes)),
    ("POST", "/api/v1/consents/{id}/withdraw", Needs(RecordSession)),
    ("GET", "/api/v1/sessions/{id}/missing-documents", Needs(ViewClinical)),
    ("PUT", "/api/v1/sites/{id}/rems-setting", Needs(PlanTreatment)),
    ("GET", "/api/v1/sessions/{id}/rems-form", Needs(ViewClinical)),
    ("PUT", "/api/v1/sessions/{id}/rems-form", Needs(RecordSession)),
    ("POST", "/api/v1/sessions/{id}/rems-form/submitted", Needs(RecordSession)),
    ("GET", "/api/v1/sessions/{id}/rems-form/csv", Needs(ViewClinical)),
    ("GET", "/api/v1/sites/{id}/rems-queue", Needs(ViewClinical)),
    ("POST", "/api/v1/patients/{id}/checkin-links", Needs(EnterQuestionnaire)),
    ("POST", "/api/v1/checkin-links/{id}/reissue", Needs(EnterQuestionnaire)),
    ("GET", "/api/v1/courses/{id}/checkin-schedule", Needs(ViewClinical)),
    ("PUT", "/api/v1/courses/{id}/checkin-schedule", Needs(PlanTreatment)),
    ("PUT", "/api/v1/sites/{id}/patient-contact", Needs(ManageUsers)),
    ("GET", "/api/v1/settings/relapse-watch", SignedIn),
    ("PUT", "/api/v1/settings/relapse-watch", Needs(ManageUsers)),
    ("PUT", "/api/v1/settings/home-pre-dose", Needs(ManageUsers)),
    ("GET", "/api/v1/settings/research-export", Needs(ManageUsers)),
    ("PUT", "/api/v1/settings/research-export", Needs(ManageUsers)),
    ("GET", "/api/v1/patients/{id}/home-programme", Needs(ViewClinical)),
    ("POST", "/api/v1/courses/{id}/home-dispenses", Needs(RecordLedger)),
    ("POST", "/api/v1/pre-dose-screens/{id}/review", Needs(PlanTreatment)),
    ("POST", "/api/v1/checkins/sweep", Needs(ManageUsers)),
    ("GET", "/api/v1/audit", Needs(ViewAudit)),
    ("GET", "/api/v1/audit/verify", Needs(ViewAudit)),
    ("GET", "/api/v1/patients/{id}/access-log", Needs(ViewAudit)),
    ("POST", "/api/v1/auth/login", Public),
    ("POST", "/api/v1/auth/logout", Public),
    ("POST", "/api/v1/auth/reauth", SignedIn),
    ("GET", "/api/v1/auth/me", SignedIn),
    ("GET", "/api/v1/users", Needs(ManageUsers)),
    ("POST", "/api/v1/users", Needs(ManageUsers)),
    ("POST", "/api/v1/patients/{id}/break-glass", SignedIn),
    ("GET", "/api/v1/sites", SignedIn),
    ("POST", "/api/v1/sites", Needs(ManageUsers)),
    ("GET", "/api/v1/sites/{id}/chairs", SignedIn),
    ("GET", "/api/v1/sites/{id}/safety-rules", SignedIn),
    ("PUT", "/api/v1/sites/{id}/safety-rules", Needs(PlanTreatment)),
    ("PUT", "/api/v1/sites/{id}/pk-threshold", Needs(PlanTreatment)),
    ("GET", "/api/v1/sites/{id}/sessions", Needs(ViewDemographics)),
    // The chair calendar: scheduling is front-desk work (EditDemographics: front desk,
    // nurse, prescriber, administrator); the calendar names patients (ViewDemographics).
    ("GET", "/api/v1/sites/{id}/calendar", Needs(ViewDemographics)),
    ("POST", "/api/v1/courses/{id}/bookings", Needs(EditDemographics)),
    ("POST", "/api/v1/sessions/{id}/reschedule", Needs(EditDemographics)),
    ("POST", "/api/v1/sessions/{id}/cancel", Needs(EditDemographics)),
    ("POST", "/api/v1/sessions/{id}/no-show", Needs(EditDemographics)),
    ("POST", "/api/v1/sessions/{id}/arrival", Needs(EditDemographics)),
    // A course is a prescription: the prescriber orders and overrides.
    ("GET", "/api/v1/courses/{id}/order", Needs(ViewClinical)),
    ("PUT", "/api/v1/courses/{id}/order", Needs(PlanTreatment)),
    ("POST", "/api/v1/sessions/{id}/order-overrides", Needs(PlanTreatment)),
    ("GET", "/api/v1/patients", Needs(ViewDemographics)),
    ("POST", "/api/v1/patients", Needs(EditDemographics)),
    ("GET", "/api/v1/patients/{id}", Needs(ViewDemographics)),
    ("GET", "/api/v1/patients/{id}/chart", Needs(ViewClinical)),
    ("GET", "/api/v1/patients/{id}/weights", Needs(ViewClinical)),
    ("POST", "/api/v1/patients/{id}/weights", Needs(RecordSession)),
    ("GET", "/api/v1/patients/{id}/courses", Needs(ViewClinical)),
    ("POST", "/api/v1/patients/{id}/courses", Needs(PlanTreatment)),
    ("GET", "/api/v1/patients/{id}/adverse-events", Needs(ViewClinical)),
    ("POST", "/api/v1/patients/{id}/adverse-events", Needs(RecordSession)),
    ("GET", "/api/v1/patients/{id}/responses", Needs(ViewClinical)),
    ("POST", "/api/v1/patients/{id}/responses", Needs(EnterQuestionnaire)),
    ("GET", "/api/v1/patients/{id}/outcomes", Needs(ViewClinical)),
    ("GET", "/api/v1/outcomes/durability", Needs(ViewClinical)),
    ("GET", "/api/v1/patients/{id}/eligibility", Needs(ViewClinical)),
    ("POST", "/api/v1/patients/{id}/antidepressant-trials", Needs(PlanTreatment)),
    ("POST", "/api/v1/patients/{id}/eligibility-assessments", Needs(PlanTreatment)),
    ("GET", "/api/v1/patients/{id}/medications", Needs(ViewClinical)),
    ("POST", "/api/v1/patients/{id}/medications", Needs(RecordSession)),
    ("POST", "/api/v1/medications/{id}/stop", Needs(RecordSession)),
    ("GET", "/api/v1/patients/{id}/allergies", Needs(ViewClinical)),
    ("POST", "/api/v1/patients/{id}/allergies", Needs(RecordSession)),
    ("GET", "/api/v1/patients/{id}/pregnancy-status", Needs(ViewClinical)),
    ("POST", "/api/v1/patients/{id}/pregnancy-status", Needs(RecordSession)),
    ("POST", "/api/v1/sessions/{id}/medication-review", Needs(RecordSession)),
    ("GET", "/api/v1/courses/{id}", Needs(ViewClinical)),
    ("POST", "/api/v1/courses/{id}/sessions", Needs(PlanTreatment)),
    ("GET", "/api/v1/sessions/{id}", Needs(ViewClinical)),
    ("POST", "/api/v1/sessions/{id}/actions", Needs(RecordSession)),
    ("GET", "/api/v1/sessions/{id}/discharge-blockers", Needs(ViewClinical)),
    // A prescriber's decision (dose override, discharge despite a BP): never a nurse's.
    ("POST", "/api/v1/sessions/{id}/decisions", Needs(PlanTreatment)),
    ("GET", "/api/v1/sessions/{id}/decisions", Needs(ViewClinical)),
    ("GET", "/api/v1/sites/{id}/discharge-settings", SignedIn),
    ("PUT", "/api/v1/sites/{id}/discharge-settings", Needs(PlanTreatment)),
    ("PUT", "/api/v1/sessions/{id}/note", Needs(RecordSession)),
    ("GET", "/api/v1/sessions/{id}/vitals", Needs(ViewClinical)),
    ("POST", "/api/v1/sessions/{id}/vitals", Needs(RecordSession)),
    ("GET", "/api/v1/sessions/{id}/device-readings", Needs(ViewClinical)),
    ("POST", "/api/v1/sessions/{id}/device-readings/{reading}/review", Needs(RecordSession)),
    ("GET", "/api/v1/sessions/{id}/observations", Needs(ViewClinical)),
    ("POST", "/api/v1/sessions/{id}/observations", Needs(RecordSession)),
    ("GET", "/api/v1/instruments", Public),
    ("GET", "/api/v1/instruments/{code}", Public),
    ("POST", "/api/v1/instruments/{code}/score", Public),
    ("GET", "/api/v1/outcome-definitions", Public),
    ("GET", "/api/v1/contraindications", Public),
    ("GET", "/api/v1/rules/session-safety", Public),
    ("GET", "/api/v1/sessions/{id}/note", Needs(ViewClinical)),
    ("POST", "/api/v1/sessions/{id}/note/sign", Needs(SignNotes)),
    ("POST", "/api/v1/sessions/{id}/note/amendments", Needs(SignNotes)),
    ("POST", "/api/v1/ledger/receipts", Needs(RecordLedger)),
    ("POST", "/api/v1/ledger/administrations", Needs(RecordLedger)),
    ("POST", "/api/v1/ledger/waste", Needs(RecordLedger)),
    ("POST", "/api/v1/ledger/disposals", Needs(RecordLedger)),
    ("POST", "/api/v1/ledger/counts", Needs(RecordLedger)),
    ("POST", "/api/v1/ledger/adjustments", Needs(RecordLedger)),
    ("POST", "/api/v1/ledger/losses", Needs(RecordLedger)),
    ("POST", "/api/v1/ledger/entries/{id}/reversal", Needs(RecordLedger)),
    ("GET", "/api/v1/ledger/lots", Needs(ViewLedger)),
    ("GET", "/api/v1/ledger/lots/{id}", Needs(ViewLedger)),
    ("GET", "/api/v1/ledger/entries", Needs(ViewLedger)),
    ("GET", "/api/v1/ledger/entries/{id}", Needs(ViewLedger)),
    ("GET", "/api/v1/ledger/entries/{id}/form-106", Needs(ViewLedger)),
    ("GET", "/api/v1/ledger/reconciliation", Needs(ViewLedger)),
    ("GET", "/api/v1/ledger/alerts", Needs(ViewLedger)),
    ("GET", "/api/v1/ledger/verify", Needs(ViewLedger)),
    ("GET", "/api/v1/alerts", Needs(ViewClinical)),
    ("POST", "/api/v1/alerts/{id}/acknowledge", Needs(RecordSession)),
    ("GET", "/api/v1/protocols", Public),
    ("POST", "/api/v1/protocols/{id}/schedule", SignedIn),
    ("POST", "/api/v1/dose/calculate", SignedIn),
    ("POST", "/api/v1/sessions/{id}/dose", Needs(RecordSession)),
    ("GET", "/api/v1/sessions/{id}/dose", Needs(ViewClinical)),
    ("GET", "/api/v1/patients/{id}/exposure", Needs(ViewClinical)),
    ("POST", "/api/v1/pk/simulate", SignedIn),
    ("GET", "/api/v1/settings/alert-escalation", SignedIn),
    ("PUT", "/api/v1/settings/alert-escalation", Needs(ManageUsers)),
    ("GET", "/api/v1/sites/{id}/on-duty", SignedIn),
    ("PUT", "/api/v1/sites/{id}/on-duty", Needs(ManageUsers)),
    ("GET", "/api/v1/sites/{id}/alert-escalations", Needs(ViewClinical)),
    ("POST", "/api/v1/alert-escalations/sweep", Needs(ManageUsers)),
];

/// Every HTML route and method (crates/web/src/ui/mod.rs). A route missing here is
/// refused, and fails the authorisation-matrix test.
pub const PAGE_RULES: &[(&str, &str, Access)] = &[
    ("GET", "/", Public),
    ("GET", "/static/{file}", Public),
    // Patient check-in links: the unguessable token in the path is the authorisation.
    ("GET", "/c/{token}", Public),
    ("POST", "/c/{token}", Public),
    ("GET", "/help", Public),
    ("GET", "/today", Needs(ViewDemographics)),
    // Referral import (a FHIR Bundle, outside /api: a signed-out caller is sent to sign in):
    // registers a patient with trials and scores; the store also needs EditDemographics and
    // EnterQuestionnaire, which prescribers have.
    ("POST", "/fhir/R4", Needs(PlanTreatment)),
    ("GET", "/research", Needs(ExportResearch)),
    ("POST", "/research/export", Needs(ExportResearch)),
    // The chair calendar: read by everyone who sees the schedule; booking, moving,
    // cancelling, no-shows and arrivals are front-desk work (EditDemographics).
    ("GET", "/calendar", Needs(ViewDemographics)),
    // A course is a prescription: read with the record, written by the prescriber.
    ("GET", "/courses/{id}/order", Needs(ViewClinical)),
    ("POST", "/courses/{id}/order", Needs(PlanTreatment)),
    ("POST", "/calendar/courses/{id}/book", Needs(EditDemographics)),
    ("POST", "/calendar/sessions/{id}/reschedule", Needs(EditDemographics)),
    ("POST", "/calendar/sessions/{id}/cancel", Needs(EditDemographics)),
    ("POST", "/calendar/sessions/{id}/no-show", Needs(EditDemographics)),
    ("POST", "/calendar/sessions/{id}/arrival", Needs(EditDemographics)),
    // The rota: the store allows the administrator and the front desk only.
    ("POST", "/calendar/rota", Needs(EditDemographics)),
    ("GET", "/today/events", Needs(ViewDemographics)),
    ("GET", "/patients", Needs(ViewDemographics)),
    ("POST", "/patients", Needs(EditDemographics)),
    ("GET", "/patients/new", Needs(EditDemographics)),
    ("GET", "/patients/{id}", Needs(ViewClinical)),
    ("POST", "/patients/{id}/weights", Needs(RecordSession)),
    // Consent and REMS enrolment on the tablet.
    ("GET", "/patients/{id}/consents", Needs(ViewClinical)),
    ("POST", "/patients/{id}/consents", Needs(RecordSession)),
    ("POST", "/patients/{id}/consents/{consent}/countersign", Needs(SignNotes)),
    ("POST", "/patients/{id}/consents/{consent}/withdraw", Needs(RecordSession)),
    ("GET", "/patients/{id}/eligibility", Needs(ViewClinical)),
    ("POST", "/patients/{id}/eligibility", Needs(PlanTreatment)),
    ("POST", "/patients/{id}/eligibility/trials", Needs(PlanTreatment)),
    // Medications, allergies and pregnancy status: the chart's panel, intake entry, the session review.
    ("GET", "/patients/{id}/medications", Needs(ViewClinical)),
    ("POST", "/patients/{id}/medications", Needs(RecordSession)),
    ("POST", "/patients/{id}/medications/{med}/stop", Needs(RecordSession)),
    ("POST", "/patients/{id}/allergies", Needs(RecordSession)),
    ("POST", "/patients/{id}/pregnancy-status", Needs(RecordSession)),
    ("GET", "/sessions/{id}/medications", Needs(ViewClinical)),
    ("POST", "/sessions/{id}/medication-review", Needs(RecordSession)),
    ("POST", "/patients/{id}/eligibility/maudsley", Needs(PlanTreatment)),
    ("GET", "/patients/{id}/plan", Needs(PlanTreatment)),
    ("POST", "/patients/{id}/plan", Needs(PlanTreatment)),
    ("GET", "/patients/{id}/questionnaires/new", Needs(EnterQuestionnaire)),
    ("POST", "/patients/{id}/questionnaires/new", Needs(EnterQuestionnaire)),
    ("POST", "/patients/{id}/alerts/{alert}/acknowledge", Needs(RecordSession)),
    // Between sessions on the chart: send a check-in or a new link, review a refused
    // pre-dose screen, record a home supply, change a course's check-in schedule.
    ("POST", "/patients/{id}/checkins", Needs(EnterQuestionnaire)),
    // Reissuing from the chart reads the chart's link list (ViewClinical); the roles with
    // ViewClinical all enter questionnaires. Found once the matrix used a real link id.
    ("POST", "/patients/{id}/checkins/{link}/reissue", Needs(ViewClinical)),
    ("POST", "/patients/{id}/pre-dose-screens/{screen}/review", Needs(PlanTreatment)),
    ("POST", "/patients/{id}/courses/{course}/dispenses", Needs(RecordLedger)),
    ("POST", "/patients/{id}/courses/{course}/checkin-schedule", Needs(PlanTreatment)),
    ("GET", "/patients/{id}/access-log", Needs(ViewAudit)),
    ("GET", "/kiosk/{id}", Needs(EnterQuestionnaire)),
    ("GET", "/kiosk/{id}/{instrument}", Needs(EnterQuestionnaire)),
    ("POST", "/kiosk/{id}/{instrument}", Needs(EnterQuestionnaire)),
    ("GET", "/sessions/{id}", Needs(ViewClinical)),
    ("POST", "/sessions/{id}/step", Needs(RecordSession)),
    ("POST", "/sessions/{id}/decisions", Needs(PlanTreatment)),
    ("POST", "/sessions/{id}/discharge-settings", Needs(PlanTreatment)),
    ("POST", "/sessions/{id}/vitals", Needs(RecordSession)),
    ("GET", "/sessions/{id}/device-readings", Needs(ViewClinical)),
    ("GET", "/sessions/{id}/device-readings/events", Needs(ViewClinical)),
    ("GET", "/sessions/{id}/device-readings/{reading}", Needs(RecordSession)),
    ("POST", "/sessions/{id}/device-readings/{reading}", Needs(RecordSession)),
    // The REMS Patient Monitoring Form and its queue.
    ("GET", "/sessions/{id}/rems", Needs(ViewClinical)),
    ("POST", "/sessions/{id}/rems", Needs(RecordSession)),
    ("POST", "/sessions/{id}/rems/submitted", Needs(RecordSession)),
    ("GET", "/rems-queue", Needs(ViewClinical)),
    ("POST", "/sessions/{id}/moaas", Needs(RecordSession)),
    ("POST", "/sessions/{id}/cadss", Needs(RecordSession)),
    ("POST", "/sessions/{id}/side-effects", Needs(RecordSession)),
    ("POST", "/sessions/{id}/interventions", Needs(RecordSession)),
    ("POST", "/sessions/{id}/adverse-events", Needs(RecordSession)),
    ("POST", "/sessions/{id}/alerts/{alert}/acknowledge", Needs(RecordSession)),
    ("POST", "/sessions/{id}/note", Needs(RecordSession)),
    ("POST", "/sessions/{id}/note/sign", Needs(SignNotes)),
    ("POST", "/sessions/{id}/ledger", Needs(RecordLedger)),
    // The controlled-substance books: read by every role the ledger allows (auditors
    // included), recorded by those who may record entries.
    ("GET", "/ledger", Needs(ViewLedger)),
    ("GET", "/ledger/lots/{id}", Needs(ViewLedger)),
    ("GET", "/ledger/reconciliation", Needs(ViewLedger)),
    ("GET", "/ledger/print/dispensing-log", Needs(ViewLedger)),
    ("GET", "/ledger/print/inventory", Needs(ViewLedger)),
    ("GET", "/ledger/entries/{id}/form-106", Needs(ViewLedger)),
    ("GET", "/ledger/receipt", Needs(RecordLedger)),
    ("POST", "/ledger/receipt", Needs(RecordLedger)),
    ("GET", "/ledger/waste", Needs(RecordLedger)),
    ("POST", "/ledger/waste", Needs(RecordLedger)),
    ("GET", "/ledger/disposal", Needs(RecordLedger)),
    ("POST", "/ledger/disposal", Needs(RecordLedger)),
    ("GET", "/ledger/count", Needs(RecordLedger)),
    ("POST", "/ledger/count", Needs(RecordLedger)),
    ("GET", "/ledger/adjustment", Needs(RecordLedger)),
    ("POST", "/ledger/adjustment", Needs(RecordLedger)),
    ("GET", "/ledger/loss", Needs(RecordLedger)),
    ("POST", "/ledger/loss", Needs(RecordLedger)),
    ("GET", "/ledger/entries/{id}/reversal", Needs(RecordLedger)),
    ("POST", "/ledger/entries/{id}/reversal", Needs(RecordLedger)),
    ("GET", "/outcomes", Needs(ViewClinical)),
    // PDF downloads: the same permission as the screen that shows the data.
    ("GET", "/sessions/{id}/note/pdf", Needs(ViewClinical)),
    ("GET", "/sessions/{id}/rems/pdf", Needs(ViewClinical)),
    ("GET", "/patients/{id}/progress-letter/pdf", Needs(ViewClinical)),
    ("GET", "/outcomes/pdf", Needs(ViewClinical)),
    ("GET", "/ledger/print/dispensing-log/pdf", Needs(ViewLedger)),
    ("GET", "/ledger/print/inventory/pdf", Needs(ViewLedger)),
    ("GET", "/ledger/entries/{id}/form-106/pdf", Needs(ViewLedger)),
    ("GET", "/outbox", Needs(ViewClinical)),
    ("GET", "/checkins/schedules", Needs(ViewClinical)),
    ("GET", "/outcomes/durability", Needs(ViewClinical)),
    ("GET", "/audit", Needs(ViewAudit)),
    // Administration: accounts and sites for administrators; the settings page for
    // every signed-in role (no patient data), each form posting under the permission the
    // store checks for that setting (clinic-wide: administrators; clinical rules: prescribers).
    ("GET", "/admin", SignedIn),
    ("GET", "/admin/staff", Needs(ManageUsers)),
    ("POST", "/admin/staff", Needs(ManageUsers)),
    ("GET", "/admin/staff/{id}", Needs(ManageUsers)),
    ("POST", "/admin/staff/{id}", Needs(ManageUsers)),
    ("POST", "/admin/staff/{id}/disabled", Needs(ManageUsers)),
    ("POST", "/admin/staff/{id}/password", Needs(ManageUsers)),
    ("POST", "/admin/staff/{id}/totp", Needs(ManageUsers)),
    ("GET", "/admin/monitors", Needs(ManageUsers)),
    ("POST", "/admin/monitors", Needs(ManageUsers)),
    ("GET", "/monitors/review", Needs(ViewClinical)),
    ("GET", "/admin/sites", Needs(ManageUsers)),
    ("POST", "/admin/sites", Needs(ManageUsers)),
    ("GET", "/admin/sites/{id}", Needs(ManageUsers)),
    ("POST", "/admin/sites/{id}", Needs(ManageUsers)),
    ("POST", "/admin/sites/{id}/chairs", Needs(ManageUsers)),
    ("POST", "/admin/sites/{id}/patient-contact", Needs(ManageUsers)),
    ("POST", "/admin/sites/{id}/on-duty", Needs(ManageUsers)),
    ("POST", "/admin/sites/{id}/dea-registration", Needs(ManageUsers)),
    ("GET", "/admin/api-clients", Needs(ManageUsers)),
    ("POST", "/admin/api-clients", Needs(ManageUsers)),
    ("POST", "/admin/api-clients/{id}/revoke", Needs(ManageUsers)),
    ("GET", "/admin/settings", SignedIn),
    ("POST", "/admin/settings/relapse-watch", Needs(ManageUsers)),
    ("POST", "/admin/settings/home-pre-dose", Needs(ManageUsers)),
    ("POST", "/admin/settings/alert-escalation", Needs(ManageUsers)),
    ("POST", "/admin/settings/sites/{id}/safety-rules", Needs(PlanTreatment)),
    ("POST", "/admin/settings/sites/{id}/pk-threshold", Needs(PlanTreatment)),
    ("POST", "/admin/settings/sites/{id}/discharge", Needs(PlanTreatment)),
];

pub fn rule_for(method: &Method, path: &str) -> Option<Access> {
    API_RULES.iter().chain(PAGE_RULES).find(|(m, p, _)| *m == method.as_str() && *p == path).map(|r| r.2)
}

/// Applies [`API_RULES`] before the handler (and before its body is parsed), so a
/// refused role gets 403 and an anonymous caller 401 whatever they sent.
pub async fn access_guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(path) = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()) else {
        return next.run(req).await;
    };
    let rule = match rule_for(req.method(), &path) {
        Some(r) => Some(r),
        // A method the route may not serve: signed-in callers get the router's 405;
        // the store's own checks still apply should a handler exist.
        None if API_RULES.iter().chain(PAGE_RULES).any(|(_, p, _)| *p == path) => Some(SignedIn),
        None => None,
    };
    let Some(rule) = rule else {
        // Fail closed: a route nobody classified is refused (and the matrix test fails).
        tracing::error!(%path, method = %req.method(), "route has no access rule; refusing");
        return ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "forbidden",
            title: "Not allowed",
            detail: "this route has no access rule yet".into(),
            errors: vec![],
        }
        .into_response();
    };
    if rule == Public {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let user = match CurrentUser::from_request_parts(&mut parts, &st).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    if let Needs(p) = rule {
        if !allowed(user.role, p) && !path.starts_with("/api/") {
            return crate::pages::forbidden_page(&format!(
                "A {} may not open this page.",
                user.role.label().to_lowercase()
            ));
        }
        if !allowed(user.role, p) {
            return ApiError {
                status: StatusCode::FORBIDDEN,
                kind: "forbidden",
                title: "Not allowed for your role",
                detail: format!("a {} may not use {} {}", user.role.label().to_lowercase(), parts.method, path),
                errors: vec![],
            }
            .into_response();
        }
    }
    next.run(Request::from_parts(parts, body)).await
}
