//! The clinic in the browser: server-rendered HTML (askama templates in
//! `crates/web/templates`) with vendored htmx for the few live parts (patient search,
//! the Maudsley score as you type, the live board over server-sent events).
//!
//! Every handler takes the signed-in [`CurrentUser`](crate::auth::CurrentUser) and passes
//! its actor to the store, which enforces permissions and site scope. There is no SQL
//! here. Templates auto-escape; no user text is ever marked safe. Pages carry no inline
//! script, style or event handler, so a strict Content-Security-Policy holds
//! ([`page::CSP`]). Every state-changing form carries the CSRF token (hidden
//! `csrf_token` field; htmx sends `X-CSRF-Token` from the `<body>`'s `hx-headers`).
//!
//! Areas: `today` (schedule and live board), `patients` (search, registration, chart),
//! `eligibility` (trials, Maudsley, contraindications), `plan` (courses), `session` (the
//! chair), `questionnaires` (staff entry and the patient kiosk), `outcomes` (clinic
//! rates beside the benchmark trials), `ledger` (the controlled-substance books and their
//! printable documents).

pub mod assets;
pub mod clock;
pub mod live;
pub mod page;
pub mod print;
pub mod trajectory;

mod admin;
mod audit;
mod between;
mod calendar;
mod chart;
pub(crate) mod checkin;
mod checkin_schedules;
pub(crate) mod clinic_figures;
mod consent;
pub(crate) mod durability;
mod eligibility;
mod home_dose;
mod ledger;
mod ledger_print;
mod medications;
mod monitors;
mod outbox;
mod outcomes;
mod patients;
mod pk_panel;
mod plan;
mod questionnaires;
mod rems;
mod research;
mod session;
mod session_device;
mod today;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use keta_domain::site::Site;

use crate::AppState;
use crate::auth::CurrentUser;
use page::UiResult;

/// Every HTML route. Merged into the main router by `crate::router`.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(get_home))
        .route("/static/{file}", get(assets::get_static))
        .route("/c/{token}", get(checkin::get_link).post(checkin::post_link))
        .route("/help", get(checkin::get_faq))
        .route("/today", get(today::get_today))
        .route("/calendar", get(calendar::get_calendar))
        .route("/courses/{id}/order", get(calendar::get_order).post(calendar::post_order))
        .route("/calendar/courses/{id}/book", post(calendar::post_book))
        .route("/calendar/sessions/{id}/reschedule", post(calendar::post_reschedule))
        .route("/calendar/sessions/{id}/cancel", post(calendar::post_cancel))
        .route("/calendar/sessions/{id}/no-show", post(calendar::post_no_show))
        .route("/calendar/sessions/{id}/arrival", post(calendar::post_arrival))
        .route("/calendar/rota", post(calendar::post_rota))
        .route("/today/events", get(today::get_board_events))
        .route("/patients", get(patients::get_patients).post(patients::post_patient))
        .route("/patients/new", get(patients::get_new_patient))
        .route("/patients/{id}", get(chart::get_chart))
        .route("/patients/{id}/weights", post(chart::post_weight))
        .route("/patients/{id}/consents", get(consent::get_consents).post(consent::post_consent))
        .route("/patients/{id}/consents/{consent}/countersign", post(consent::post_countersign))
        .route("/patients/{id}/consents/{consent}/withdraw", post(consent::post_withdraw))
        .route("/patients/{id}/eligibility", get(eligibility::get_eligibility).post(eligibility::post_assessment))
        .route("/patients/{id}/eligibility/trials", post(eligibility::post_trial))
        .route("/patients/{id}/medications", get(medications::get_summary).post(medications::post_medication))
        .route("/patients/{id}/medications/{med}/stop", post(medications::post_stop_medication))
        .route("/patients/{id}/allergies", post(medications::post_allergy))
        .route("/patients/{id}/pregnancy-status", post(medications::post_pregnancy_status))
        .route("/sessions/{id}/medications", get(medications::get_session_panel))
        .route("/sessions/{id}/medication-review", post(medications::post_session_review))
        .route("/patients/{id}/eligibility/maudsley", post(eligibility::post_maudsley_preview))
        .route("/patients/{id}/plan", get(plan::get_plan).post(plan::post_plan))
        .route(
            "/patients/{id}/questionnaires/new",
            get(questionnaires::get_staff_entry).post(questionnaires::post_staff_entry),
        )
        .route("/patients/{id}/alerts/{alert}/acknowledge", post(chart::post_acknowledge))
        .route("/patients/{id}/checkins", post(between::post_checkin))
        .route("/patients/{id}/checkins/{link}/reissue", post(between::post_reissue))
        .route("/patients/{id}/pre-dose-screens/{screen}/review", post(between::post_review))
        .route("/patients/{id}/courses/{course}/dispenses", post(between::post_dispense))
        .route("/patients/{id}/courses/{course}/checkin-schedule", post(between::post_schedule))
        .route("/kiosk/{id}", get(questionnaires::get_kiosk_start))
        .route("/kiosk/{id}/{instrument}", get(questionnaires::get_kiosk).post(questionnaires::post_kiosk))
        .route("/sessions/{id}", get(session::get_session))
        .route("/sessions/{id}/step", post(session::post_step))
        .route("/sessions/{id}/decisions", post(session::post_decision))
        .route("/sessions/{id}/discharge-settings", post(session::post_discharge_settings))
        .route("/sessions/{id}/vitals", post(session::post_vitals))
        .route("/sessions/{id}/device-readings", get(session_device::get_panel))
        .route("/sessions/{id}/device-readings/events", get(session_device::get_events))
        .route(
            "/sessions/{id}/device-readings/{reading}",
            get(session_device::get_reading).post(session_device::post_reading),
        )
        .route("/sessions/{id}/moaas", post(session::post_moaas))
        .route("/sessions/{id}/cadss", post(session::post_cadss))
        .route("/sessions/{id}/side-effects", post(session::post_side_effects))
        .route("/sessions/{id}/interventions", post(session::post_intervention))
        .route("/sessions/{id}/adverse-events", post(session::post_adverse_event))
        .route("/sessions/{id}/alerts/{alert}/acknowledge", post(session::post_acknowledge))
        .route("/sessions/{id}/note", post(session::post_note))
        .route("/sessions/{id}/note/sign", post(session::post_sign_note))
        .route("/sessions/{id}/ledger", post(session::post_ledger))
        .route("/sessions/{id}/rems", get(rems::get_form).post(rems::post_form))
        .route("/sessions/{id}/rems/submitted", post(rems::post_submitted))
        .route("/rems-queue", get(rems::get_queue))
        .route("/monitors/review", get(monitors::get_review))
        .route("/ledger", get(ledger::get_books))
        .route("/ledger/lots/{id}", get(ledger::get_lot))
        .route("/ledger/reconciliation", get(ledger::get_reconciliation))
        .route("/ledger/receipt", get(ledger::get_receipt).post(ledger::post_receipt))
        .route("/ledger/waste", get(ledger::get_waste).post(ledger::post_waste))
        .route("/ledger/disposal", get(ledger::get_disposal).post(ledger::post_disposal))
        .route("/ledger/count", get(ledger::get_count).post(ledger::post_count))
        .route("/ledger/adjustment", get(ledger::get_adjustment).post(ledger::post_adjustment))
        .route("/ledger/loss", get(ledger::get_loss).post(ledger::post_loss))
        .route("/ledger/entries/{id}/reversal", get(ledger::get_reversal).post(ledger::post_reversal))
        .route("/ledger/entries/{id}/form-106", get(ledger_print::get_form_106))
        .route("/ledger/print/dispensing-log", get(ledger_print::get_dispensing_log))
        .route("/ledger/print/inventory", get(ledger_print::get_inventory))
        // PDF downloads of the printable documents (print.rs).
        .route("/sessions/{id}/note/pdf", get(print::get_session_note))
        .route("/sessions/{id}/rems/pdf", get(print::get_rems_form))
        .route("/patients/{id}/progress-letter/pdf", get(print::get_progress_letter))
        .route("/outcomes/pdf", get(print::get_outcomes))
        .route("/ledger/print/dispensing-log/pdf", get(print::get_dispensing_log))
        .route("/ledger/print/inventory/pdf", get(print::get_inventory))
        .route("/ledger/entries/{id}/form-106/pdf", get(print::get_form_106))
        .route("/outcomes", get(outcomes::get_outcomes))
        .route("/outbox", get(outbox::get_outbox))
        .route("/checkins/schedules", get(checkin_schedules::get_schedules))
        .route("/research", get(research::get_research))
        .route("/research/export", post(research::post_export))
        .route("/outcomes/durability", get(durability::get_durability))
        .route("/audit", get(audit::get_report))
        .route("/patients/{id}/access-log", get(audit::get_access_log))
        .merge(admin::routes())
        // Unknown pages get the HTML error page (the API keeps its problem+json fallback).
        .fallback(|| async { page::UiError::NotFound("That page".into()) })
        .route_layer(axum::middleware::from_fn_with_state(state, crate::access_rules::access_guard))
        .layer(axum::middleware::from_fn(server_timing))
}

/// The home page: today's board, or the research export for a researcher (who sees no board).
async fn get_home(user: Result<CurrentUser, crate::auth::AuthRejection>) -> Redirect {
    match user {
        Ok(u) if u.actor.can(keta_domain::access::Permission::ExportResearch) => Redirect::to("/research"),
        _ => Redirect::to("/today"),
    }
}

/// Adds `Server-Timing: app;dur=<ms>` to every page, so how long the server took is
/// visible in the browser's tools and checked by the browser tests (budget: 50 ms).
async fn server_timing(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let start = std::time::Instant::now();
    let mut res = next.run(req).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("app;dur={ms:.1}")) {
        res.headers_mut().insert("server-timing", v);
    }
    res
}

/// The sites whose boards the user sees: the sites they are assigned to, or every site
/// their scope allows when no assignment is recorded.
pub(crate) async fn user_sites(st: &AppState, user: &CurrentUser) -> UiResult<Vec<Site>> {
    let all = st.store.list_sites(&user.actor).await?;
    if user.site_ids.is_empty() {
        return Ok(all);
    }
    Ok(all.into_iter().filter(|s| user.site_ids.contains(&s.id)).collect())
}
