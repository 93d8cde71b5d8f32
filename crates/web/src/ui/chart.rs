//! The patient chart: summary, open alerts, safety flags, outcome status with the
//! definition used, score trajectories, courses and sessions, weights, eligibility,
//! questionnaires and adverse events, and between sessions ([`super::between`]):
//! safety answers from the phone, the relapse watch, check-in links and the at-home programme.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::access::Permission;
use keta_domain::course::CourseStatus;
use keta_domain::dosing::DrugExposure;
use keta_domain::ids::{AlertId, PatientId};
use keta_domain::instruments::{ScoringMethod, catalog};
use keta_domain::outcomes::definition_for;
use keta_domain::patient::{NewWeight, Patient, WeightEntry, WeightType};
use keta_domain::records::{AlertLevel, EligibilityAssessment, PatientChart};
use keta_domain::session::SessionState;
use keta_domain::units::Kilograms;
use keta_store::StoreError;

use super::between::{BetweenInput, BetweenView, IssuedView};
use super::clock::{SiteClock, iso_date, parse_iso_date};
use super::page::{Area, Chrome, Errors, FormData, UiResult, render_status, see_other};
use super::patients::{Flag, chart_flags, indication_label, severity_class, sex_label};
use super::today::{state_class, state_label};
use super::trajectory::{self, Trajectory};
use crate::AppState;
use crate::auth::CurrentUser;

pub(crate) struct AlertView {
    pub id: i64,
    pub level: &'static str,
    pub message: String,
    pub source: String,
    pub raised: String,
    pub session_href: Option<String>,
}

/// An acknowledged alert on the chart: what was done, by whom, when.
pub(crate) struct AckView {
    pub level: &'static str,
    pub message: String,
    pub raised: String,
    pub acknowledged: String,
    pub note: String,
}

pub(crate) struct OutcomeView {
    pub course: String,
    pub instrument: String,
    pub baseline: i32,
    /// Where a maintenance course's baseline comes from; empty for the course's own first score.
    pub baseline_from: String,
    pub latest: i32,
    pub change: String,
    pub assessments: usize,
    pub response: &'static str,
    pub response_class: &'static str,
    pub remission: &'static str,
    pub remission_class: &'static str,
    pub relapse: &'static str,
    pub relapse_class: &'static str,
    pub definition: String,
    pub definition_source: String,
}

pub(crate) struct CourseView {
    pub label: String,
    pub start: String,
    pub status: &'static str,
    pub progress: String,
    pub protocol: String,
    /// Planned dose in mg/kg and mg (from the latest recorded dose, else the planned dose).
    pub dose: String,
    /// Pump settings of the latest recorded dose (mL/h, mg/h), or why there are none.
    pub pump: String,
    /// The pre-treatment checks confirmed and the caution decisions, as recorded.
    pub pretreatment: Vec<String>,
}

pub(crate) struct ExposureRow {
    pub drug: &'static str,
    pub lifetime: String,
    pub last_7: String,
    pub last_30: String,
    pub doses: u32,
}

pub(crate) struct SessionRow {
    pub when: String,
    pub route: &'static str,
    pub sequence: u32,
    pub state: &'static str,
    pub state_class: &'static str,
    pub href: String,
}

pub(crate) struct WeightRow {
    pub date: String,
    pub kg: String,
    pub kind: &'static str,
}

pub(crate) struct EligibilityRow {
    pub route: &'static str,
    pub status: &'static str,
    pub status_class: &'static str,
    pub detail: String,
    pub assessed: String,
}

pub(crate) struct ResponseRow {
    pub when: String,
    pub instrument: String,
    pub total: String,
    pub severity: String,
    pub severity_class: String,
    pub by: &'static str,
    pub safety: Vec<String>,
}

pub(crate) struct AeRow {
    pub when: String,
    pub description: String,
    pub severity: &'static str,
    pub serious: bool,
    pub outcome: String,
}

pub(crate) struct Choice {
    pub value: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "patients/chart.html")]
struct ChartPage {
    chrome: Chrome,
    id: i64,
    name: String,
    mrn: String,
    dob: String,
    age: i32,
    sex: &'static str,
    indication: &'static str,
    diagnoses: String,
    referrer: String,
    contact: String,
    site: String,
    weight: String,
    clinical: bool,
    can_plan: bool,
    can_record: bool,
    can_questionnaire: bool,
    alerts: Vec<AlertView>,
    /// The latest acknowledged alerts with their notes.
    acknowledged: Vec<AckView>,
    flags: Vec<Flag>,
    outcomes: Vec<OutcomeView>,
    charts: Vec<Trajectory>,
    courses: Vec<CourseView>,
    exposure: Vec<ExposureRow>,
    exposure_basis: String,
    sessions: Vec<SessionRow>,
    weights: Vec<WeightRow>,
    eligibility: Vec<EligibilityRow>,
    trd: Option<String>,
    responses: Vec<ResponseRow>,
    adverse_events: Vec<AeRow>,
    staff_instruments: Vec<Choice>,
    kiosk_instruments: Vec<Choice>,
    form: FormData,
    errors: Errors,
    notice: Option<String>,
    /// Between sessions; `None` without clinical access.
    between: Option<BetweenView>,
    /// A check-in link just issued: its URL is shown this once.
    issued: Option<IssuedView>,
}

pub(crate) fn alert_view(a: &keta_domain::records::Alert, clock: &SiteClock) -> AlertView {
    AlertView {
        id: a.id.0,
        level: match a.level {
            AlertLevel::Urgent => "urgent",
            AlertLevel::Warning => "warning",
        },
        message: a.message.clone(),
        source: a.source.clone(),
        raised: clock.datetime(a.raised_at),
        session_href: a.session_id.map(|s| format!("/sessions/{s}")),
    }
}

fn yes_no(v: Option<bool>, yes: &'static str, no: &'static str) -> (&'static str, &'static str) {
    match v {
        Some(true) => (yes, "st-good"),
        Some(false) => (no, "st-neutral"),
        None => ("Cannot be assessed yet", "st-muted"),
    }
}

/// The latest assessment per route, in route order.
pub(crate) fn latest_assessments(all: &[EligibilityAssessment]) -> Vec<&EligibilityAssessment> {
    keta_domain::course::Route::ALL.iter().filter_map(|r| all.iter().rev().find(|a| a.route == *r)).collect()
}

pub(crate) fn eligibility_rows(all: &[EligibilityAssessment], clock: &SiteClock) -> Vec<EligibilityRow> {
    latest_assessments(all)
        .into_iter()
        .map(|a| {
            let c = &a.contraindications;
            let (status, class, detail) = if a.blocked {
                (
                    "Blocked",
                    "st-stop",
                    format!(
                        "Hard stop: {}",
                        c.hard_stops.iter().map(|h| h.label.as_str()).collect::<Vec<_>>().join("; ")
                    ),
                )
            } else if !c.cautions.is_empty() {
                (
                    "Caution",
                    "st-caution",
                    format!(
                        "Needs a documented decision: {}",
                        c.cautions.iter().map(|h| h.label.as_str()).collect::<Vec<_>>().join("; ")
                    ),
                )
            } else if !a.warnings.is_empty() {
                let w: Vec<&str> = a.warnings.iter().map(|w| w.message.as_str()).collect();
                ("Warning", "st-caution", w.join("; "))
            } else {
                ("Clear", "st-good", "No contraindication recorded".to_string())
            };
            EligibilityRow {
                route: a.route.label(),
                status,
                status_class: class,
                detail,
                assessed: clock.date(a.assessed_at),
            }
        })
        .collect()
}

/// "35", "52.5", "0.75".
fn mg(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A course's dose and pump settings: from the latest recorded dose of its sessions
/// (newest first, at most a few looked up), else the latest planned dose.
async fn course_dose(
    st: &AppState,
    actor: &keta_store::Actor,
    c: &PatientChart,
    course: keta_domain::ids::CourseId,
    weight_kg: Option<f64>,
) -> UiResult<(String, String)> {
    let mut sessions: Vec<_> = c.sessions.iter().filter(|s| s.course_id == course).collect();
    sessions.sort_by_key(|s| (s.scheduled_for, s.sequence));
    for s in sessions.iter().rev().filter(|s| s.dose_started_at.is_some() || s.planned_dose_mg.is_some()).take(5) {
        let records = st.store.list_session_doses(actor, s.id).await?;
        if let Some(r) = records.last() {
            let k = &r.calculation;
            let dose = format!(
                "{} mg/kg = {} mg at {} kg (recorded for session {})",
                mg(k.dose_mg_per_kg.0),
                mg(k.dose_mg.0),
                mg(k.weight_kg.0),
                s.sequence
            );
            let pump = match (&k.pump, &k.dose_rate) {
                (Some(p), Some(d)) => format!(
                    "pump {} mL/h, {} mg/h",
                    mg(p.rate_ml_per_h_to_set.0),
                    mg((d.mg_per_h.0 * 100.0).round() / 100.0)
                ),
                (Some(p), None) => format!(
                    "pump {} mL/h, {} mg/h",
                    mg(p.rate_ml_per_h_to_set.0),
                    mg((p.dose_rate_mg_per_h_at_set_rate.0 * 100.0).round() / 100.0)
                ),
                (None, Some(d)) => {
                    format!("{} mg/h; no pump programme recorded", mg((d.mg_per_h.0 * 100.0).round() / 100.0))
                }
                (None, None) => match &k.nasal {
                    Some(n) => format!(
                        "no pump: {} device{} of {} mg, {} min apart",
                        n.devices,
                        if n.devices == 1 { "" } else { "s" },
                        mg(n.mg_per_device.0),
                        mg(n.minutes_between_devices)
                    ),
                    None => "no pump for this dose".into(),
                },
            };
            return Ok((dose, pump));
        }
    }
    if let Some(p) = sessions.iter().rev().find_map(|s| s.planned_dose_mg) {
        let per_kg = weight_kg.filter(|w| *w > 0.0).map_or_else(
            || "mg/kg: weight not recorded".into(),
            |w| format!("{} mg/kg at {} kg", mg((p.0 / w * 1000.0).round() / 1000.0), mg(w)),
        );
        return Ok((
            format!("planned {} mg ({per_kg})", mg(p.0)),
            "no dose calculation recorded yet: no pump settings".into(),
        ));
    }
    Ok(("no dose planned or recorded yet".into(), String::new()))
}

async fn chart_page(
    st: &AppState,
    user: &CurrentUser,
    id: PatientId,
    form: FormData,
    errors: Errors,
    notice: Option<String>,
) -> UiResult<ChartPage> {
    chart_page_with(st, user, id, form, errors, notice, BetweenInput::default()).await
}

/// The chart after a between-sessions form: the link issued (shown once) or the form with its
/// errors.
pub(crate) async fn render_chart(
    st: &AppState,
    user: &CurrentUser,
    id: PatientId,
    status: StatusCode,
    mut input: BetweenInput,
) -> UiResult<Response> {
    let form = FormData::empty();
    let notice = input.notice.take();
    let page = chart_page_with(st, user, id, form, Errors::new(), notice, input).await?;
    Ok(render_status(status, &page))
}

/// A drug's row of the exposure table.
fn exposure_row(d: &DrugExposure) -> ExposureRow {
    ExposureRow {
        drug: d.drug.label(),
        lifetime: format!("{} mg", mg(d.lifetime_mg.0)),
        last_7: format!("{} mg", mg(d.last_7_days_mg.0)),
        last_30: format!("{} mg", mg(d.last_30_days_mg.0)),
        doses: d.doses,
    }
}

/// "Treatment-resistant: 2 adequate failed trials in this episode (…)", when trials are recorded.
fn treatment_resistance_line(c: &PatientChart) -> Option<String> {
    let trials: Vec<_> = c.antidepressant_trials.iter().map(|t| t.trial.clone()).collect();
    if trials.is_empty() {
        return None;
    }
    let r = keta_domain::eligibility::assess_treatment_resistance(&trials);
    Some(format!(
        "{}: {} adequate failed trial{} in this episode ({} required; {})",
        if r.resistant { "Treatment-resistant" } else { "Not treatment-resistant" },
        r.failed_adequate_trials,
        if r.failed_adequate_trials == 1 { "" } else { "s" },
        r.required,
        r.source
    ))
}

/// A row of the weights table, newest first.
fn weight_row(w: &WeightEntry) -> WeightRow {
    WeightRow {
        date: clock_date(w.measured_on),
        kg: format!("{}", w.weight_kg.0),
        kind: match w.weight_type {
            WeightType::Actual => "actual",
            WeightType::Ideal => "ideal",
            WeightType::Adjusted => "adjusted",
        },
    }
}

async fn chart_page_with(
    st: &AppState,
    user: &CurrentUser,
    id: PatientId,
    form: FormData,
    errors: Errors,
    notice: Option<String>,
    mut input: BetweenInput,
) -> UiResult<ChartPage> {
    let actor = &user.actor;
    let clinical = actor.can(Permission::ViewClinical);
    // The chart's parts are independent reads, run side by side: a chart open waits for the
    // slowest of them, not for their sum (each is a round trip or more on PostgreSQL). Their
    // read-audit entries still go into the request's one batch (the batch is task-local and
    // `join!` polls on this task).
    let (patient, chart, sites): (Patient, Option<PatientChart>, _) = if clinical {
        let (c, sites) = tokio::join!(st.store.patient_chart(actor, id), st.store.list_sites(actor));
        let c = c?;
        (c.patient.clone(), Some(c), sites?)
    } else {
        let (p, sites) = tokio::join!(st.store.get_patient(actor, id), st.store.list_sites(actor));
        (p?, None, sites?)
    };
    let site = sites.iter().find(|s| s.id == patient.site_id);
    let clock = site.map_or_else(SiteClock::utc, SiteClock::for_site);
    let now = st.store.now();
    // The weight form's date defaults to today at the patient's site (unless the form was posted).
    let mut form = form;
    if form.all("measured_on").is_empty() {
        form.set("measured_on", iso_date(clock.today(now)));
    }

    let mut page = ChartPage {
        chrome: Chrome::new(user, patient.display_name(), Area::Patients),
        id: id.0,
        name: patient.display_name(),
        mrn: patient.mrn.clone(),
        dob: super::clock::date_label(patient.date_of_birth),
        age: patient.age_on(clock.today(now)),
        sex: sex_label(patient.sex),
        indication: indication_label(patient.indication),
        diagnoses: if patient.diagnoses.is_empty() { "None recorded".into() } else { patient.diagnoses.join(", ") },
        referrer: patient.referring_clinician.clone().unwrap_or_else(|| "—".into()),
        contact: [patient.phone.clone(), patient.email.clone()].into_iter().flatten().collect::<Vec<_>>().join(" · "),
        site: site.map_or_else(|| "—".into(), |s| s.name.clone()),
        weight: patient.latest_weight_kg.map_or_else(|| "Not recorded".into(), |w| format!("{} kg", w.0)),
        clinical,
        can_plan: actor.can(Permission::PlanTreatment),
        can_record: actor.can(Permission::RecordSession),
        can_questionnaire: actor.can(Permission::EnterQuestionnaire),
        alerts: vec![],
        acknowledged: vec![],
        flags: vec![],
        outcomes: vec![],
        charts: vec![],
        courses: vec![],
        exposure: vec![],
        exposure_basis: String::new(),
        sessions: vec![],
        weights: vec![],
        eligibility: vec![],
        trd: None,
        responses: vec![],
        adverse_events: vec![],
        staff_instruments: catalog()
            .all()
            .iter()
            .filter(|i| !matches!(i.code.as_str(), "moaas" | "cadss" | "cadss6"))
            .map(|i| Choice { value: i.code.clone(), label: format!("{} — {}", i.short_name, i.name) })
            .collect(),
        kiosk_instruments: super::between::patient_instrument_choices(),
        form,
        errors,
        notice,
        between: None,
        issued: input.issued.take(),
    };
    let Some(c) = chart else { return Ok(page) };
    let alert_query = keta_store::alerts::AlertQuery {
        patient_id: Some(c.patient.id),
        open_only: false,
        limit: 20,
        ..Default::default()
    };
    let (between, recent, courses, exposure) = tokio::join!(
        super::between::build(st, user, &c, &clock, now, &mut input),
        st.store.list_alerts(&user.actor, alert_query),
        course_views(st, actor, &c, &clock),
        st.store.patient_exposure(actor, id),
    );
    let exposure = exposure?;
    page.between = Some(between?);
    page.alerts = c.open_alerts.iter().map(|a| alert_view(a, &clock)).collect();
    page.acknowledged = acknowledged_views(&recent?, &clock);
    page.flags = chart_flags(&c);
    page.outcomes = outcome_views(&c);
    page.charts = trajectories(&c, &clock);
    page.courses = courses?;
    page.exposure = exposure.drugs.iter().map(exposure_row).collect();
    page.exposure_basis = exposure.basis.clone();
    page.sessions = c
        .sessions
        .iter()
        .rev()
        .map(|s| SessionRow {
            when: clock.datetime(s.scheduled_for),
            route: s.route.label(),
            sequence: s.sequence,
            state: state_label(s.state),
            state_class: state_class(s.state),
            href: format!("/sessions/{}", s.id),
        })
        .collect();
    page.weights = c.weights.iter().rev().map(weight_row).collect();
    page.eligibility = eligibility_rows(&c.eligibility, &clock);
    page.trd = treatment_resistance_line(&c);
    page.responses = response_rows(&c, &clock);
    page.adverse_events = c
        .adverse_events
        .iter()
        .rev()
        .map(|e| AeRow {
            when: clock.datetime(e.onset_at),
            description: e.description.clone(),
            severity: e.severity.as_str(),
            serious: e.serious,
            outcome: e.outcome.clone(),
        })
        .collect();
    Ok(page)
}

/// The last acknowledged alerts (of the recent ones), newest first, at most five.
fn acknowledged_views(recent: &[keta_domain::records::Alert], clock: &SiteClock) -> Vec<AckView> {
    recent
        .iter()
        .filter_map(|a| {
            let at = a.acknowledged_at?;
            Some(AckView {
                level: alert_view(a, clock).level,
                message: a.message.clone(),
                raised: clock.datetime(a.raised_at),
                acknowledged: format!(
                    "{} by {}",
                    clock.datetime(at),
                    a.acknowledged_by.as_deref().unwrap_or("unknown")
                ),
                note: a.acknowledgement_note.clone().unwrap_or_else(|| "No note".into()),
            })
        })
        .take(5)
        .collect()
}

/// Each course's outcome against its definition, with the baseline it was judged from.
fn outcome_views(c: &PatientChart) -> Vec<OutcomeView> {
    let course_label = |cid| {
        c.courses.iter().find(|x| x.id == cid).map_or_else(|| format!("Course {cid}"), super::between::course_label)
    };
    c.outcomes
        .iter()
        .map(|o| {
            let out = &o.outcome;
            let (response, response_class) = yes_no(out.responded, "Responder", "Not responding");
            let (remission, remission_class) = yes_no(out.remitted, "In remission", "Not in remission");
            let (relapse, relapse_class) = match out.relapsed {
                // A relapse earlier in the course, and a response again at the latest score.
                Some(true) if out.currently_responding == Some(true) => ("Relapsed, responding again", "st-neutral"),
                Some(true) => ("Relapsed", "st-stop"),
                Some(false) => ("No relapse", "st-good"),
                None => ("Cannot be assessed yet", "st-muted"),
            };
            OutcomeView {
                course: course_label(o.course_id),
                instrument: catalog()
                    .get(&out.instrument)
                    .map_or_else(|| out.instrument.clone(), |i| i.short_name.clone()),
                baseline: out.baseline,
                baseline_from: o
                    .baseline_course_id
                    .map(|id| format!("baseline from {}", course_label(id)))
                    .unwrap_or_default(),
                latest: out.latest,
                change: match out.percent_change {
                    Some(p) => format!("{:+} ({p:+.0} %)", out.change),
                    None => format!("{:+}", out.change),
                },
                assessments: out.assessments,
                response,
                response_class,
                remission,
                remission_class,
                relapse,
                relapse_class,
                definition: out.definition.name.clone(),
                definition_source: out.definition.source.to_string(),
            }
        })
        .collect()
}

/// Trajectories: every instrument with a total, in catalog order.
fn trajectories(c: &PatientChart, clock: &SiteClock) -> Vec<Trajectory> {
    let mut charts = Vec::new();
    let dosed: Vec<time::OffsetDateTime> = c.sessions.iter().filter_map(|s| s.dose_started_at).collect();
    for inst in catalog().all().iter().filter(|i| i.scoring != ScoringMethod::RiskCategory) {
        let scores: Vec<trajectory::Score> = c
            .responses
            .iter()
            .filter(|r| r.instrument == inst.code)
            .filter_map(|r| {
                r.score.total.map(|t| trajectory::Score {
                    at: r.completed_at,
                    total: t,
                    band: r.score.severity.as_ref().map(|b| b.label.clone()),
                })
            })
            .collect();
        if scores.is_empty() {
            continue;
        }
        // Judge against the latest course that has an outcome for this instrument.
        let outcome = c.outcomes.iter().rev().find(|o| o.outcome.instrument == inst.code).map(|o| &o.outcome);
        let def = outcome.map(|o| &o.definition).or_else(|| definition_for(&inst.code));
        if let Some(t) = trajectory::build(inst, &scores, &dosed, def, outcome.map(|o| o.baseline), clock) {
            charts.push(t);
        }
    }
    charts
}

/// The courses, newest first, with their dose, pump rate and pre-treatment lines.
async fn course_views(
    st: &AppState,
    actor: &keta_store::Actor,
    c: &PatientChart,
    clock: &SiteClock,
) -> UiResult<Vec<CourseView>> {
    let weight = c.patient.latest_weight_kg.map(|w| w.0);
    let courses: Vec<_> = c.courses.iter().rev().collect();
    // Each course's dose read and the pre-treatment records side by side (see chart_page_with).
    let (pretreatment, doses) = tokio::join!(
        st.store.list_pretreatment(actor, c.patient.id),
        futures_util::future::try_join_all(courses.iter().map(|x| course_dose(st, actor, c, x.id, weight))),
    );
    let (pretreatment, doses) = (pretreatment?, doses?);
    let courses = courses
        .into_iter()
        .zip(doses)
        .map(|(x, (dose, pump))| {
            let done = c.sessions.iter().filter(|s| s.course_id == x.id && s.state == SessionState::Discharged).count();
            CourseView {
                label: format!("{} · {}", x.route.label(), x.phase.as_str()),
                start: clock_date(x.start_date),
                status: match x.status {
                    CourseStatus::Active => "Active",
                    CourseStatus::Completed => "Completed",
                    CourseStatus::Stopped => "Stopped",
                },
                progress: format!("{done} of {} sessions done", x.planned_sessions),
                protocol: x.protocol.clone().unwrap_or_default(),
                dose,
                pump,
                pretreatment: pretreatment
                    .iter()
                    .find(|r| r.course_id == x.id)
                    .map(|r| super::plan::pretreatment_lines(r, clock))
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(courses)
}

/// The last 30 questionnaire scores, newest first.
fn response_rows(c: &PatientChart, clock: &SiteClock) -> Vec<ResponseRow> {
    c.responses
        .iter()
        .rev()
        .take(30)
        .map(|r| ResponseRow {
            when: clock.datetime(r.completed_at),
            instrument: catalog().get(&r.instrument).map_or_else(|| r.instrument.clone(), |i| i.short_name.clone()),
            total: r.score.total.map_or_else(|| r.score.risk_category.clone().unwrap_or_default(), |t| t.to_string()),
            severity: r.score.severity.as_ref().map(|b| b.label.clone()).unwrap_or_default(),
            severity_class: r
                .score
                .severity
                .as_ref()
                .map(|b| severity_class(&r.instrument, &b.code))
                .unwrap_or_default(),
            by: match r.completed_by {
                keta_domain::records::CompletedBy::Patient => "patient",
                keta_domain::records::CompletedBy::Staff => "staff",
            },
            safety: r.score.safety_flags.iter().map(|f| f.message.clone()).collect(),
        })
        .collect()
}

fn clock_date(d: time::Date) -> String {
    super::clock::date_label(d)
}

pub async fn get_chart(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult<Response> {
    let page = chart_page(&st, &user, PatientId(id), FormData::empty(), Errors::new(), None).await?;
    Ok(render_status(StatusCode::OK, &page))
}

pub async fn post_weight(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let kg = form.number("weight_kg", &mut errors);
    if kg.is_none() && !errors.has("weight_kg") {
        errors.add("weight_kg", "enter the weight in kilograms");
    }
    let on = parse_iso_date(form.get("measured_on"));
    if on.is_none() {
        errors.add("measured_on", "enter the date it was measured");
    }
    let kind = WeightType::parse(form.get("weight_type")).unwrap_or(WeightType::Actual);
    if let (Some(kg), Some(on), false) = (kg, on, errors.any()) {
        match st
            .store
            .add_weight(
                &user.actor,
                PatientId(id),
                NewWeight { weight_kg: Kilograms(kg), measured_on: on, weight_type: kind },
            )
            .await
        {
            Ok(_) => return Ok(see_other(format!("/patients/{id}#weights"))),
            Err(e) => errors.absorb(e)?,
        }
    }
    let page = chart_page(&st, &user, PatientId(id), form, errors, None).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// Acknowledges an alert from the chart (e.g. a questionnaire safety item).
pub async fn post_acknowledge(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, alert)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    match st.store.acknowledge_alert(&user.actor, AlertId(alert), form.opt("note")).await {
        Ok(a) => {
            super::live::publish(Some(a.site_id));
            Ok(see_other(format!("/patients/{id}#alerts")))
        }
        Err(StoreError::Conflict(msg)) => {
            let page = chart_page(
                &st,
                &user,
                PatientId(id),
                FormData::empty(),
                Errors::new(),
                Some(super::page::capitalise(&msg)),
            )
            .await?;
            Ok(render_status(StatusCode::CONFLICT, &page))
        }
        Err(e) => Err(e.into()),
    }
}
