//! The SPRAVATO REMS Patient Monitoring Form in the browser: the form as filled
//! from the session, the questions the record cannot answer, marking it submitted, the CSV,
//! and the queue of forms against the 7-day limit.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::access::Permission;
use keta_domain::ids::SessionId;
use keta_domain::rems::{Experienced, MarkSubmitted, QueueStatus, RemsAnswers};
use keta_store::rems::RemsFormView;

use super::clock::parse_iso_date;
use super::page::{Area, Chrome, Errors, FormData, UiResult, render, render_status, see_other};
use crate::AppState;
use crate::auth::CurrentUser;

pub struct Line {
    pub label: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "rems/form.html")]
struct FormPage {
    chrome: Chrome,
    session_id: i64,
    patient_id: i64,
    status: &'static str,
    due_on: String,
    lines: Vec<Line>,
    missing: Vec<String>,
    submitted: Option<String>,
    can_record: bool,
    form: FormData,
    errors: Errors,
    today: String,
}

pub struct QueueRow {
    pub session_id: i64,
    pub patient: String,
    pub treatment_date: String,
    pub due_on: String,
    pub status: &'static str,
    pub missing: usize,
}

#[derive(Template)]
#[template(path = "rems/queue.html")]
struct QueuePage {
    chrome: Chrome,
    rows: Vec<QueueRow>,
}

pub(crate) fn status_label(s: QueueStatus) -> &'static str {
    match s {
        QueueStatus::Due => "Due",
        QueueStatus::DueSoon => "Due soon",
        QueueStatus::Overdue => "Overdue",
        QueueStatus::Submitted => "Submitted",
    }
}

fn yn(b: bool) -> String {
    if b { "Yes".into() } else { "No".into() }
}

fn oyn(b: Option<bool>) -> String {
    b.map_or_else(|| "— (to answer)".into(), yn)
}

fn exp(e: Option<Experienced>) -> String {
    match e {
        None => "— (to answer)".into(),
        Some(Experienced { experienced: false, .. }) => "No".into(),
        Some(Experienced { resolved: Some(true), .. }) => "Yes, resolved by the end of the session".into(),
        Some(_) => "Yes, not resolved by the end of the session".into(),
    }
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "— (to answer)".into())
}

fn lines(v: &RemsFormView) -> Vec<Line> {
    let f = &v.form;
    let bp = |b: &Option<keta_domain::rems::FormBp>| {
        b.as_ref().map_or_else(
            || "— (not recorded)".into(),
            |b| {
                format!(
                    "{:.0}/{:.0} mmHg ({} min after administration)",
                    b.systolic_mmhg, b.diastolic_mmhg, b.minutes_after_dose
                )
            },
        )
    };
    let l = |label: &'static str, value: String| Line { label, value };
    vec![
        l("Patient", format!("{} {} {}", f.first_name, f.middle_initial.clone().unwrap_or_default(), f.last_name)),
        l("Date of birth", f.date_of_birth.to_string()),
        l("Sex", f.sex.clone()),
        l("First treatment", yn(f.first_treatment)),
        l(
            "Enrolled in the REMS",
            match (&f.rems_patient_id, f.enrolled_on) {
                (Some(id), Some(on)) => format!("Yes: {id}, enrolled {on}"),
                _ => "No".into(),
            },
        ),
        l("Benzodiazepines", yn(f.benzodiazepines)),
        l("Non-benzodiazepine sedative-hypnotics", yn(f.non_benzodiazepine_sedative_hypnotics)),
        l("Psychostimulants", yn(f.psychostimulants)),
        l("MAOIs", yn(f.maois)),
        l("Opioids", yn(f.opioids)),
        l(
            "Monitoring provider",
            format!(
                "{} {}, {}, {}",
                opt(&f.monitor_first_name),
                opt(&f.monitor_last_name),
                opt(&f.monitor_phone),
                opt(&f.monitor_email)
            ),
        ),
        l(
            "Healthcare setting",
            format!(
                "{}, {} {}, {} {} {}",
                f.setting_name,
                opt(&f.setting_address_1),
                f.setting_address_2.clone().unwrap_or_default(),
                opt(&f.setting_city),
                opt(&f.setting_state),
                opt(&f.setting_zip)
            ),
        ),
        l("Treatment date", f.treatment_date.to_string()),
        l(
            "Dose",
            f.dose_mg.map_or_else(
                || "— (not in the ledger)".into(),
                |d| format!("{} mg{}", d.0, f.devices.map(|n| format!(" ({n} devices)")).unwrap_or_default()),
            ),
        ),
        l(
            "Lot number",
            if f.lot_numbers.is_empty() { "— (not in the ledger)".into() } else { f.lot_numbers.join(", ") },
        ),
        l(
            "Total treatment time",
            f.total_treatment_minutes.map_or_else(|| "— (monitoring not ended)".into(), |m| format!("{m} min")),
        ),
        l(
            "Ready to leave after (no 2-hour minimum)",
            f.ready_to_leave_after_minutes.map_or_else(|| "— (to answer)".into(), |m| format!("{m} min")),
        ),
        l("Vital signs acceptable before administration", oyn(f.vitals_acceptable_before)),
        l("Vital signs acceptable before the session ended", oyn(f.vitals_acceptable_end)),
        l("BP before administration", bp(&f.bp_before)),
        l("BP about 40 min after administration", bp(&f.bp_after_40_min)),
        l("BP before the session ended", bp(&f.bp_end)),
        l("Sedation", exp(f.sedation)),
        l("Dissociation", exp(f.dissociation)),
        l("Respiratory depression", exp(f.respiratory_depression)),
        l(
            "Serious adverse events",
            if f.serious_adverse_events.is_empty() {
                "None recorded".into()
            } else {
                f.serious_adverse_events
                    .iter()
                    .map(|e| format!("{} (outcome: {})", e.description, e.outcome))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        ),
    ]
}

/// The answers as the form shows them (so a rejected form keeps what was typed).
fn form_of(a: &RemsAnswers) -> FormData {
    let mut f = FormData::empty();
    let mut set = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            f.set(k, v.clone());
        }
    };
    set("middle_initial", &a.middle_initial);
    set("monitor_first_name", &a.monitor_first_name);
    set("monitor_last_name", &a.monitor_last_name);
    set("monitor_phone", &a.monitor_phone);
    set("monitor_email", &a.monitor_email);
    set("setting_address_1", &a.setting_address_1);
    set("setting_address_2", &a.setting_address_2);
    set("setting_city", &a.setting_city);
    set("setting_state", &a.setting_state);
    set("setting_zip", &a.setting_zip);
    if a.middle_initial.as_deref() == Some("") {
        f.set("no_middle_initial", "on");
    }
    if let Some(m) = a.ready_to_leave_after_minutes {
        f.set("ready_to_leave_after_minutes", m.to_string());
    }
    for (k, b) in
        [("vitals_acceptable_before", a.vitals_acceptable_before), ("vitals_acceptable_end", a.vitals_acceptable_end)]
    {
        if let Some(b) = b {
            f.set(k, if b { "yes" } else { "no" });
        }
    }
    for (k, e) in [
        ("sedation", a.sedation),
        ("dissociation", a.dissociation),
        ("respiratory_depression", a.respiratory_depression),
    ] {
        if let Some(e) = e {
            f.set(
                k,
                match (e.experienced, e.resolved) {
                    (false, _) => "no",
                    (true, Some(true)) => "resolved",
                    _ => "unresolved",
                },
            );
        }
    }
    f
}

fn answers_of(form: &FormData, errors: &mut Errors) -> RemsAnswers {
    let yes_no = |k: &str| match form.get(k) {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    };
    let experienced = |k: &str| match form.get(k) {
        "no" => Some(Experienced { experienced: false, resolved: None }),
        "resolved" => Some(Experienced { experienced: true, resolved: Some(true) }),
        "unresolved" => Some(Experienced { experienced: true, resolved: Some(false) }),
        _ => None,
    };
    RemsAnswers {
        middle_initial: if form.checked("no_middle_initial") {
            Some(String::new())
        } else {
            form.opt("middle_initial")
        },
        monitor_first_name: form.opt("monitor_first_name"),
        monitor_last_name: form.opt("monitor_last_name"),
        monitor_phone: form.opt("monitor_phone"),
        monitor_email: form.opt("monitor_email"),
        setting_address_1: form.opt("setting_address_1"),
        setting_address_2: form.opt("setting_address_2"),
        setting_city: form.opt("setting_city"),
        setting_state: form.opt("setting_state"),
        setting_zip: form.opt("setting_zip"),
        ready_to_leave_after_minutes: form.integer("ready_to_leave_after_minutes", errors),
        vitals_acceptable_before: yes_no("vitals_acceptable_before"),
        vitals_acceptable_end: yes_no("vitals_acceptable_end"),
        sedation: experienced("sedation"),
        dissociation: experienced("dissociation"),
        respiratory_depression: experienced("respiratory_depression"),
    }
}

async fn page(
    st: &AppState,
    user: &CurrentUser,
    id: SessionId,
    form: Option<FormData>,
    errors: Errors,
) -> UiResult<FormPage> {
    let v = st.store.rems_form(&user.actor, id).await?;
    Ok(FormPage {
        chrome: Chrome::new(user, "REMS Patient Monitoring Form", Area::Patients),
        session_id: id.0,
        patient_id: v.patient_id.0,
        status: status_label(v.status),
        due_on: v.due_on.to_string(),
        lines: lines(&v),
        missing: v.form.missing.iter().map(|m| m.question.clone()).collect(),
        submitted: v.confirmation_number.as_ref().map(|c| {
            format!(
                "Submitted on {} (confirmation {c}), recorded by {}",
                v.submitted_on.map(|d| d.to_string()).unwrap_or_default(),
                v.submitted_by.clone().unwrap_or_default()
            )
        }),
        can_record: user.actor.can(Permission::RecordSession),
        form: form.unwrap_or_else(|| form_of(&v.answers)),
        errors,
        today: st.store.now().date().to_string(),
    })
}

/// `GET /sessions/{id}/rems`.
pub async fn get_form(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult<Response> {
    Ok(render(&page(&st, &user, SessionId(id), None, Errors::new()).await?))
}

/// `POST /sessions/{id}/rems`: the clinician's answers.
pub async fn post_form(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let answers = answers_of(&form, &mut errors);
    if errors.submit(Some(answers), |a| st.store.save_rems_answers(&user.actor, SessionId(id), a)).await?.is_some() {
        return Ok(see_other(format!("/sessions/{id}/rems")));
    }
    let p = page(&st, &user, SessionId(id), Some(form), errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &p))
}

/// `POST /sessions/{id}/rems/submitted`.
pub async fn post_submitted(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let submitted_on = parse_iso_date(form.get("submitted_on").trim());
    if submitted_on.is_none() {
        errors.add("submitted_on", "enter the date it was submitted as YYYY-MM-DD");
    }
    let m = submitted_on
        .map(|d| MarkSubmitted { confirmation_number: form.get("confirmation_number").to_string(), submitted_on: d });
    if errors.submit(m, |m| st.store.mark_rems_submitted(&user.actor, SessionId(id), m)).await?.is_some() {
        return Ok(see_other(format!("/sessions/{id}/rems")));
    }
    let p = page(&st, &user, SessionId(id), None, errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &p))
}

/// `GET /rems-queue`: the forms of the user's sites against the 7-day limit.
pub async fn get_queue(State(st): State<AppState>, user: CurrentUser) -> UiResult<Response> {
    let mut rows = Vec::new();
    for site in super::user_sites(&st, &user).await? {
        for i in st.store.rems_queue(&user.actor, site.id, time::OffsetDateTime::UNIX_EPOCH).await? {
            rows.push(QueueRow {
                session_id: i.session_id.0,
                patient: i.patient_name,
                treatment_date: i.treatment_date.to_string(),
                due_on: i.due_on.to_string(),
                status: status_label(i.status),
                missing: i.missing,
            });
        }
    }
    // Overdue first, then by due date.
    rows.sort_by_key(|r| (r.status != "Overdue", r.status == "Submitted", r.due_on.clone()));
    Ok(render(&QueuePage { chrome: Chrome::new(&user, "REMS monitoring forms", Area::Patients), rows }))
}
