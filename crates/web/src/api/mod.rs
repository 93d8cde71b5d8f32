//! The JSON API, `/api/v1`.

pub mod audit;
pub mod auth;
pub mod calendar;
pub mod checkins;
pub mod clinical;
pub mod consents;
pub mod contract;
pub mod device_readings;
pub mod dosing;
pub mod durability;
pub mod escalation;
pub mod health;
pub mod ledger;
pub mod measures;
pub mod medications;
pub mod notes;
pub mod patients;
pub mod rems;
pub mod research;

use axum::Router;
use axum::routing::{get, post, put};

use crate::AppState;
use crate::idempotency::OpenApiHeader as IdempotencyHeader;
use contract::Contract;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Keta API",
        description = "Keta: the open clinical platform for ketamine and esketamine treatment. Errors are RFC 9457 problem+json."
    ),
    modifiers(&IdempotencyHeader, &Contract),
    paths(
        health::get_healthz,
        health::get_livez,
        health::get_readyz,
        audit::get_audit,
        audit::get_access_log,
        audit::get_audit_verify,
        auth::post_login,
        auth::post_logout,
        auth::post_reauth,
        auth::get_me,
        auth::get_users,
        auth::post_user,
        auth::post_break_glass,
        patients::get_sites,
        patients::post_site,
        patients::get_chairs,
        patients::get_site_safety_rules,
        patients::put_site_safety_rules,
        patients::put_site_pk_threshold,
        patients::get_patients,
        patients::post_patient,
        patients::get_patient,
        patients::get_chart,
        patients::get_weights,
        patients::post_weight,
        clinical::get_courses,
        clinical::post_course,
        clinical::get_course,
        clinical::post_session,
        clinical::get_session,
        clinical::get_site_sessions,
        clinical::post_session_action,
        clinical::get_discharge_blockers,
        clinical::post_session_decision,
        clinical::get_session_decisions,
        clinical::get_discharge_settings,
        clinical::put_discharge_settings,
        clinical::put_session_note,
        clinical::post_vitals,
        clinical::get_vitals,
        device_readings::get_device_readings,
        device_readings::post_device_reading_review,
        clinical::post_observation,
        clinical::get_observations,
        clinical::post_adverse_event,
        clinical::get_adverse_events,
        measures::get_instruments,
        measures::get_instrument,
        measures::post_score,
        measures::get_responses,
        measures::post_response,
        measures::get_outcomes,
        durability::get_durability,
        measures::get_outcome_definitions,
        measures::get_alerts,
        measures::post_acknowledge,
        measures::get_eligibility,
        measures::post_trial,
        measures::post_assessment,
        measures::get_contraindications,
        medications::get_medications,
        medications::post_medication,
        medications::post_stop_medication,
        medications::get_allergies,
        medications::post_allergy,
        medications::get_pregnancy_status,
        medications::post_pregnancy_status,
        medications::post_medication_review,
        measures::get_safety_rules,
        ledger::post_receipt,
        ledger::post_administration,
        ledger::post_waste,
        ledger::post_disposal,
        ledger::post_count,
        ledger::post_adjustment,
        ledger::post_loss,
        ledger::post_reversal,
        ledger::get_lots,
        ledger::get_lot,
        ledger::get_entries,
        ledger::get_entry,
        ledger::get_form_106,
        ledger::get_reconciliation,
        ledger::get_ledger_alerts,
        ledger::get_ledger_verify,
        notes::get_note,
        notes::post_sign_note,
        notes::post_amendment,
        dosing::get_protocols,
        dosing::post_protocol_schedule,
        dosing::post_dose_calculate,
        dosing::post_session_dose,
        dosing::get_session_doses,
        dosing::get_patient_exposure,
        dosing::post_pk_simulate,
        checkins::get_checkins,
        checkins::post_checkin_link,
        checkins::post_reissue,
        checkins::get_schedule,
        checkins::put_schedule,
        checkins::put_patient_contact,
        checkins::get_relapse_settings,
        checkins::put_relapse_settings,
        research::get_research_settings,
        research::put_research_settings,
        checkins::put_home_settings,
        checkins::get_home,
        checkins::post_dispense,
        checkins::post_screen_review,
        checkins::post_sweep,
        escalation::get_escalation_settings,
        escalation::put_escalation_settings,
        escalation::get_on_duty,
        escalation::put_on_duty,
        escalation::get_alert_escalations,
        escalation::post_escalation_sweep,
        consents::get_consent_forms,
        consents::get_consents,
        consents::post_consent,
        consents::post_countersign,
        consents::post_withdraw,
        consents::get_missing_documents,
        consents::put_rems_setting,
        rems::get_rems_form,
        rems::put_rems_form,
        rems::post_rems_submitted,
        rems::get_rems_csv,
        rems::get_rems_queue,
        calendar::get_site_calendar,
        calendar::post_course_bookings,
        calendar::post_reschedule,
        calendar::post_cancel,
        calendar::post_no_show,
        calendar::post_arrival,
        calendar::get_course_order,
        calendar::put_course_order,
        calendar::post_order_override,
    )
)]
pub struct ApiDoc;

// Long on purpose: a flat table of the API's routes, one line each.
#[allow(clippy::too_many_lines)]
pub fn routes() -> Router<AppState> {
    use clinical as c;
    use measures as m;
    use patients as p;
    Router::new()
        .route("/audit", get(audit::get_audit))
        .route("/audit/verify", get(audit::get_audit_verify))
        .route("/patients/{id}/access-log", get(audit::get_access_log))
        .route("/auth/login", post(auth::post_login))
        .route("/auth/logout", post(auth::post_logout))
        .route("/auth/reauth", post(auth::post_reauth))
        .route("/auth/me", get(auth::get_me))
        .route("/users", get(auth::get_users).post(auth::post_user))
        .route("/patients/{id}/break-glass", post(auth::post_break_glass))
        .route("/sites", get(p::get_sites).post(p::post_site))
        .route("/sites/{id}/chairs", get(p::get_chairs))
        .route("/sites/{id}/safety-rules", get(p::get_site_safety_rules).put(p::put_site_safety_rules))
        .route("/sites/{id}/pk-threshold", put(p::put_site_pk_threshold))
        .route("/sites/{id}/sessions", get(c::get_site_sessions))
        .route("/patients", get(p::get_patients).post(p::post_patient))
        .route("/patients/{id}", get(p::get_patient))
        .route("/patients/{id}/chart", get(p::get_chart))
        .route("/patients/{id}/weights", get(p::get_weights).post(p::post_weight))
        .route("/patients/{id}/courses", get(c::get_courses).post(c::post_course))
        .route("/patients/{id}/adverse-events", get(c::get_adverse_events).post(c::post_adverse_event))
        .route("/patients/{id}/responses", get(m::get_responses).post(m::post_response))
        .route("/patients/{id}/outcomes", get(m::get_outcomes))
        .route("/outcomes/durability", get(durability::get_durability))
        .route("/patients/{id}/eligibility", get(m::get_eligibility))
        .route("/patients/{id}/antidepressant-trials", post(m::post_trial))
        .route("/patients/{id}/eligibility-assessments", post(m::post_assessment))
        .route("/patients/{id}/medications", get(medications::get_medications).post(medications::post_medication))
        .route("/medications/{id}/stop", post(medications::post_stop_medication))
        .route("/patients/{id}/allergies", get(medications::get_allergies).post(medications::post_allergy))
        .route(
            "/patients/{id}/pregnancy-status",
            get(medications::get_pregnancy_status).post(medications::post_pregnancy_status),
        )
        .route("/sessions/{id}/medication-review", post(medications::post_medication_review))
        .route("/courses/{id}", get(c::get_course))
        .route("/courses/{id}/sessions", post(c::post_session))
        .route("/sessions/{id}", get(c::get_session))
        .route("/sessions/{id}/actions", post(c::post_session_action))
        .route("/sessions/{id}/discharge-blockers", get(c::get_discharge_blockers))
        .route("/sessions/{id}/decisions", get(c::get_session_decisions).post(c::post_session_decision))
        .route("/sites/{id}/discharge-settings", get(c::get_discharge_settings).put(c::put_discharge_settings))
        .route("/sessions/{id}/note", put(c::put_session_note))
        .route("/sessions/{id}/vitals", get(c::get_vitals).post(c::post_vitals))
        .route("/sessions/{id}/device-readings", get(device_readings::get_device_readings))
        .route("/sessions/{id}/device-readings/{reading}/review", post(device_readings::post_device_reading_review))
        .route("/sessions/{id}/observations", get(c::get_observations).post(c::post_observation))
        .route("/instruments", get(m::get_instruments))
        .route("/instruments/{code}", get(m::get_instrument))
        .route("/instruments/{code}/score", post(m::post_score))
        .route("/outcome-definitions", get(m::get_outcome_definitions))
        .route("/contraindications", get(m::get_contraindications))
        .route("/rules/session-safety", get(m::get_safety_rules))
        .route("/patients/{id}/checkins", get(checkins::get_checkins))
        .route("/patients/{id}/checkin-links", post(checkins::post_checkin_link))
        .route("/checkin-links/{id}/reissue", post(checkins::post_reissue))
        .route("/courses/{id}/checkin-schedule", get(checkins::get_schedule).put(checkins::put_schedule))
        .route("/sites/{id}/patient-contact", put(checkins::put_patient_contact))
        .route("/settings/relapse-watch", get(checkins::get_relapse_settings).put(checkins::put_relapse_settings))
        .route("/settings/home-pre-dose", put(checkins::put_home_settings))
        .route("/settings/research-export", get(research::get_research_settings).put(research::put_research_settings))
        .route("/patients/{id}/home-programme", get(checkins::get_home))
        .route("/courses/{id}/home-dispenses", post(checkins::post_dispense))
        .route("/pre-dose-screens/{id}/review", post(checkins::post_screen_review))
        .route("/checkins/sweep", post(checkins::post_sweep))
        .route("/alerts", get(m::get_alerts))
        .route("/alerts/{id}/acknowledge", post(m::post_acknowledge))
        .route("/ledger/receipts", post(ledger::post_receipt))
        .route("/ledger/administrations", post(ledger::post_administration))
        .route("/ledger/waste", post(ledger::post_waste))
        .route("/ledger/disposals", post(ledger::post_disposal))
        .route("/ledger/counts", post(ledger::post_count))
        .route("/ledger/adjustments", post(ledger::post_adjustment))
        .route("/ledger/losses", post(ledger::post_loss))
        .route("/ledger/lots", get(ledger::get_lots))
        .route("/ledger/lots/{id}", get(ledger::get_lot))
        .route("/ledger/entries", get(ledger::get_entries))
        .route("/ledger/entries/{id}", get(ledger::get_entry))
        .route("/ledger/entries/{id}/reversal", post(ledger::post_reversal))
        .route("/ledger/entries/{id}/form-106", get(ledger::get_form_106))
        .route("/ledger/reconciliation", get(ledger::get_reconciliation))
        .route("/ledger/alerts", get(ledger::get_ledger_alerts))
        .route("/ledger/verify", get(ledger::get_ledger_verify))
        .route("/sessions/{id}/note", get(notes::get_note))
        .route("/sessions/{id}/note/sign", post(notes::post_sign_note))
        .route("/sessions/{id}/note/amendments", post(notes::post_amendment))
        .route("/protocols", get(dosing::get_protocols))
        .route("/protocols/{id}/schedule", post(dosing::post_protocol_schedule))
        .route("/dose/calculate", post(dosing::post_dose_calculate))
        .route("/sessions/{id}/dose", get(dosing::get_session_doses).post(dosing::post_session_dose))
        .route("/patients/{id}/exposure", get(dosing::get_patient_exposure))
        .route("/pk/simulate", post(dosing::post_pk_simulate))
        .route(
            "/settings/alert-escalation",
            get(escalation::get_escalation_settings).put(escalation::put_escalation_settings),
        )
        .route("/sites/{id}/on-duty", get(escalation::get_on_duty).put(escalation::put_on_duty))
        .route("/sites/{id}/alert-escalations", get(escalation::get_alert_escalations))
        .route("/alert-escalations/sweep", post(escalation::post_escalation_sweep))
        .route("/consent-forms", get(consents::get_consent_forms))
        .route("/patients/{id}/consents", get(consents::get_consents).post(consents::post_consent))
        .route("/consents/{id}/countersign", post(consents::post_countersign))
        .route("/consents/{id}/withdraw", post(consents::post_withdraw))
        .route("/sessions/{id}/missing-documents", get(consents::get_missing_documents))
        .route("/sites/{id}/rems-setting", put(consents::put_rems_setting))
        .route("/sessions/{id}/rems-form", get(rems::get_rems_form).put(rems::put_rems_form))
        .route("/sessions/{id}/rems-form/submitted", post(rems::post_rems_submitted))
        .route("/sessions/{id}/rems-form/csv", get(rems::get_rems_csv))
        .route("/sites/{id}/rems-queue", get(rems::get_rems_queue))
        .route("/sites/{id}/calendar", get(calendar::get_site_calendar))
        .route("/courses/{id}/bookings", post(calendar::post_course_bookings))
        .route("/sessions/{id}/reschedule", post(calendar::post_reschedule))
        .route("/sessions/{id}/cancel", post(calendar::post_cancel))
        .route("/sessions/{id}/no-show", post(calendar::post_no_show))
        .route("/sessions/{id}/arrival", post(calendar::post_arrival))
        .route("/courses/{id}/order", get(calendar::get_course_order).put(calendar::put_course_order))
        .route("/sessions/{id}/order-overrides", post(calendar::post_order_override))
        .fallback(|| async { crate::error::ApiError::not_found("this API path") })
}
