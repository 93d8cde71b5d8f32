//! Medications, allergies and pregnancy status on screen: entered at intake (the
//! eligibility page's panel), shown on the chart, and reviewed at each session (a small
//! panel the session page loads). Each medication shows the interaction class it raises.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::access::Permission;
use keta_domain::ids::{PatientId, RecordId, SessionId};
use keta_domain::medications::{
    Allergy, AllergySeverity, Medication, NewAllergy, NewMedication, NewMedicationReview, NewPregnancyStatus,
    PregnancyStatus, PregnancyStatusRecord, StopMedication,
};
use keta_domain::records::PatientChart;
use keta_domain::units::Milligrams;

use super::clock::{SiteClock, parse_iso_date};
use super::page::{Errors, FormData, UiResult, render, render_status, see_other};
use crate::AppState;
use crate::auth::CurrentUser;

pub(crate) struct MedRow {
    pub id: i64,
    pub drug: String,
    pub dose: String,
    pub started: String,
    pub stopped: String,
    /// e.g. "Benzodiazepine: raises cns_depressants"; empty: not classified.
    pub classes: String,
}

pub(crate) struct AllergyRow {
    pub substance: String,
    pub reaction: String,
    pub severity: &'static str,
    pub raises: String,
}

pub(crate) struct Choice {
    pub value: &'static str,
    pub label: &'static str,
}

/// Which form of the panel was submitted, to show its errors.
#[derive(Default)]
pub(crate) struct PanelForms {
    pub med_form: FormData,
    pub med_errors: Errors,
    pub allergy_form: FormData,
    pub allergy_errors: Errors,
    pub pregnancy_form: FormData,
    pub pregnancy_errors: Errors,
    pub stop_errors: Errors,
}

/// The medication, allergy and pregnancy panel of the eligibility page.
pub(crate) struct MedicationsPanel {
    pub patient_id: i64,
    pub csrf_token: String,
    pub can_record: bool,
    pub current: Vec<MedRow>,
    pub stopped: Vec<MedRow>,
    pub allergies: Vec<AllergyRow>,
    pub pregnancy: String,
    pub severities: Vec<Choice>,
    pub statuses: Vec<Choice>,
    pub today: String,
    pub forms: PanelForms,
}

fn med_row(m: &Medication) -> MedRow {
    MedRow {
        id: m.id.0,
        drug: m.drug.clone(),
        dose: match (&m.dose, m.daily_dose_mg) {
            (Some(d), Some(mg)) => format!("{d} ({} mg/day)", mg.0),
            (Some(d), None) => d.clone(),
            (None, Some(mg)) => format!("{} mg/day", mg.0),
            (None, None) => "—".into(),
        },
        started: m.started_on.map_or_else(|| "—".into(), |d| d.to_string()),
        stopped: match (&m.stopped_on, &m.stop_reason) {
            (Some(d), Some(r)) => format!("{d}: {r}"),
            (Some(d), None) => d.to_string(),
            _ => String::new(),
        },
        classes: m
            .classes
            .iter()
            .map(|c| format!("{} (raises {})", c.label, c.raises.join(", ")))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn allergy_row(a: &Allergy) -> AllergyRow {
    AllergyRow {
        substance: a.substance.clone(),
        reaction: a.reaction.clone().unwrap_or_else(|| "—".into()),
        severity: a.severity.label(),
        raises: a.classes.iter().flat_map(|c| c.raises.iter().cloned()).collect::<Vec<_>>().join(", "),
    }
}

fn pregnancy_text(p: Option<&PregnancyStatusRecord>) -> String {
    match p {
        Some(p) => format!("{}, recorded {} by {}", p.status.label(), p.recorded_on, p.recorded_by),
        None => "Not recorded".into(),
    }
}

pub(crate) fn panel(
    user: &CurrentUser,
    chart: &PatientChart,
    clock: &SiteClock,
    now: time::OffsetDateTime,
    forms: PanelForms,
) -> MedicationsPanel {
    let today = clock.today(now);
    let (patient, meds, allergies, pregnancy) =
        (chart.patient.id, &chart.medications, &chart.allergies, chart.pregnancy.as_ref());
    MedicationsPanel {
        patient_id: patient.0,
        csrf_token: user.csrf_token.clone(),
        can_record: user.actor.can(Permission::RecordSession),
        current: meds.iter().filter(|m| m.is_current(today)).map(med_row).collect(),
        stopped: meds.iter().filter(|m| !m.is_current(today)).map(med_row).collect(),
        allergies: allergies.iter().map(allergy_row).collect(),
        pregnancy: pregnancy_text(pregnancy),
        severities: AllergySeverity::ALL.iter().map(|s| Choice { value: s.as_str(), label: s.label() }).collect(),
        statuses: PregnancyStatus::ALL.iter().map(|s| Choice { value: s.as_str(), label: s.label() }).collect(),
        today: today.to_string(),
        forms,
    }
}

/// The read-only summary the chart loads.
#[derive(Template)]
#[template(path = "medications/summary_partial.html")]
struct Summary {
    patient_id: i64,
    current: Vec<MedRow>,
    allergies: Vec<AllergyRow>,
    pregnancy: String,
}

/// The session's review panel.
#[derive(Template)]
#[template(path = "medications/session_partial.html")]
struct SessionPanel {
    session_id: i64,
    patient_id: i64,
    csrf_token: String,
    can_record: bool,
    current: Vec<MedRow>,
    allergies: Vec<AllergyRow>,
    reviews: Vec<String>,
    errors: Errors,
}

async fn clock_for(st: &AppState, user: &CurrentUser, site: keta_domain::ids::SiteId) -> UiResult<SiteClock> {
    let sites = st.store.list_sites(&user.actor).await?;
    Ok(sites.iter().find(|s| s.id == site).map_or_else(SiteClock::utc, SiteClock::for_site))
}

/// `GET /patients/{id}/medications`: the chart's panel (loaded by htmx).
pub async fn get_summary(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult<Response> {
    let chart = st.store.patient_chart(&user.actor, PatientId(id)).await?;
    let clock = clock_for(&st, &user, chart.patient.site_id).await?;
    let today = clock.today(st.store.now());
    Ok(render(&Summary {
        patient_id: id,
        current: chart.medications.iter().filter(|m| m.is_current(today)).map(med_row).collect(),
        allergies: chart.allergies.iter().map(allergy_row).collect(),
        pregnancy: pregnancy_text(chart.pregnancy.as_ref()),
    }))
}

async fn session_panel(st: &AppState, user: &CurrentUser, id: SessionId, errors: Errors) -> UiResult<SessionPanel> {
    let session = st.store.get_session(&user.actor, id).await?;
    let (meds, allergies, reviews) = st.store.session_medications(&user.actor, id).await?;
    let clock = clock_for(st, user, session.site_id).await?;
    let today = clock.today(st.store.now());
    Ok(SessionPanel {
        session_id: id.0,
        patient_id: session.patient_id.0,
        csrf_token: user.csrf_token.clone(),
        can_record: user.actor.can(Permission::RecordSession),
        current: meds.iter().filter(|m| m.is_current(today)).map(med_row).collect(),
        allergies: allergies.iter().map(allergy_row).collect(),
        reviews: reviews
            .iter()
            .map(|r| {
                let mut line = format!("Reviewed {} by {}", clock.datetime(r.reviewed_at), r.reviewed_by);
                if let Some(n) = &r.note {
                    line.push_str(&format!(": {n}"));
                }
                line
            })
            .collect(),
        errors,
    })
}

/// `GET /sessions/{id}/medications`: the session page's panel (loaded by htmx).
pub async fn get_session_panel(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    Ok(render(&session_panel(&st, &user, SessionId(id), Errors::new()).await?))
}

/// `POST /sessions/{id}/medication-review`.
pub async fn post_session_review(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let review = NewMedicationReview { note: form.opt("note") };
    if errors.submit(Some(review), |r| st.store.review_medications(&user.actor, SessionId(id), r)).await?.is_some() {
        return Ok(see_other(format!("/sessions/{id}#medications")));
    }
    let p = session_panel(&st, &user, SessionId(id), errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &p))
}

fn back(id: i64) -> Response {
    see_other(format!("/patients/{id}/eligibility#medications"))
}

/// `POST /patients/{id}/medications`.
pub async fn post_medication(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let mg = form.number("daily_dose_mg", &mut errors);
    let started = form.opt("started_on");
    let started_on = started.as_deref().and_then(parse_iso_date);
    if started.is_some() && started_on.is_none() {
        errors.add("started_on", "enter the date as YYYY-MM-DD, or leave it empty");
    }
    let new = NewMedication {
        drug: form.get("drug").to_string(),
        dose: form.opt("dose"),
        daily_dose_mg: mg.map(Milligrams),
        started_on,
    };
    if errors.submit(Some(new), |new| st.store.add_medication(&user.actor, PatientId(id), new)).await?.is_some() {
        return Ok(back(id));
    }
    let forms = PanelForms { med_form: form, med_errors: errors, ..Default::default() };
    super::eligibility::rejected_panel(&st, &user, PatientId(id), forms).await
}

/// `POST /patients/{id}/medications/{med}/stop`.
pub async fn post_stop_medication(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, med)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let stopped_on = parse_iso_date(form.get("stopped_on").trim());
    if stopped_on.is_none() {
        errors.add("stopped_on", "enter the date it was stopped as YYYY-MM-DD");
    }
    let stop = stopped_on.map(|d| StopMedication { stopped_on: d, reason: form.opt("reason") });
    if errors.submit(stop, |stop| st.store.stop_medication(&user.actor, RecordId(med), stop)).await?.is_some() {
        return Ok(back(id));
    }
    let forms = PanelForms { stop_errors: errors, ..Default::default() };
    super::eligibility::rejected_panel(&st, &user, PatientId(id), forms).await
}

/// `POST /patients/{id}/allergies`.
pub async fn post_allergy(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let severity = AllergySeverity::parse(form.get("severity"));
    if severity.is_none() {
        errors.add("severity", "choose how severe the reaction was (or 'Not known')");
    }
    let new = severity.map(|severity| NewAllergy {
        substance: form.get("substance").to_string(),
        reaction: form.opt("reaction"),
        severity,
    });
    if errors.submit(new, |new| st.store.add_allergy(&user.actor, PatientId(id), new)).await?.is_some() {
        return Ok(back(id));
    }
    let forms = PanelForms { allergy_form: form, allergy_errors: errors, ..Default::default() };
    super::eligibility::rejected_panel(&st, &user, PatientId(id), forms).await
}

/// `POST /patients/{id}/pregnancy-status`.
pub async fn post_pregnancy_status(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let status = PregnancyStatus::parse(form.get("status"));
    if status.is_none() {
        errors.add("status", "choose the pregnancy status");
    }
    let on = parse_iso_date(form.get("recorded_on").trim());
    if on.is_none() {
        errors.add("recorded_on", "enter the date it was established (e.g. the test date) as YYYY-MM-DD");
    }
    let new =
        status.zip(on).map(|(status, recorded_on)| NewPregnancyStatus { status, recorded_on, note: form.opt("note") });
    if errors.submit(new, |new| st.store.record_pregnancy_status(&user.actor, PatientId(id), new)).await?.is_some() {
        return Ok(back(id));
    }
    let forms = PanelForms { pregnancy_form: form, pregnancy_errors: errors, ..Default::default() };
    super::eligibility::rejected_panel(&st, &user, PatientId(id), forms).await
}
