//! Course planning: choose the route (a route with a hard stop cannot be chosen; the
//! store refuses it too) and phase, take the route's default schedule
//! (`data/default-schedules.toml`, until the protocol library arrives), confirm the
//! pre-treatment checks and consent, document a decision for every caution, and the
//! planned sessions appear on the schedule.
//!
//! The confirmed checks and the caution decisions (benefit, risk, why) are stored as records
//! of the course (`Store::record_pretreatment`) and written, from those records, into the
//! first session's note (the record that is signed) beside the consent date.

use std::sync::OnceLock;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::course::{NewCourse, Phase, Route};
use keta_domain::eligibility::{ContraindicationFinding, pretreatment_checks};
use keta_domain::ids::{ChairId, PatientId};
use keta_domain::pretreatment::{CoursePretreatment, NewCautionDecision, NewPretreatment};
use keta_domain::records::EligibilityAssessment;
use keta_domain::session::NewSession;
use serde::Deserialize;

use super::chart::latest_assessments;
use super::clock::{SiteClock, date_label, iso_date, parse_hm, parse_iso_date};
use super::page::{Area, Chrome, Errors, FormData, UiResult, render_status, see_other};
use crate::AppState;
use crate::auth::CurrentUser;

/// One default schedule from the data file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultSchedule {
    pub route: Route,
    pub phase: Phase,
    pub name: String,
    pub day_offsets: Vec<u32>,
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulesFile {
    schedules: Vec<DefaultSchedule>,
}

const SCHEDULES_TOML: &str = include_str!("../../../../data/default-schedules.toml");

pub fn default_schedules() -> &'static [DefaultSchedule] {
    static S: OnceLock<Vec<DefaultSchedule>> = OnceLock::new();
    S.get_or_init(|| {
        toml::from_str::<SchedulesFile>(SCHEDULES_TOML)
            .unwrap_or_else(|e| panic!("embedded data/default-schedules.toml is invalid: {e}"))
            .schedules
    })
}

pub fn schedule_for(route: Route, phase: Phase) -> Option<&'static DefaultSchedule> {
    default_schedules().iter().find(|s| s.route == route && s.phase == phase)
}

pub(crate) struct RouteOption {
    pub value: &'static str,
    pub label: &'static str,
    pub status: &'static str,
    pub status_class: &'static str,
    pub detail: String,
    pub disabled: bool,
    pub checked: bool,
}

pub(crate) struct CheckOption {
    pub code: String,
    pub label: String,
    pub basis: String,
    pub checked: bool,
}

pub(crate) struct CautionOption {
    /// The form fields' prefix: `caution.CODE.benefit`, `.risk`, `.reason` (the domain's names).
    pub field: String,
    /// The element ids' prefix (no dots, so CSS selectors need no escaping).
    pub id: String,
    pub label: String,
    pub note: String,
    pub source: String,
}

pub(crate) struct Choice {
    pub value: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "patients/plan.html")]
struct PlanPage {
    chrome: Chrome,
    id: i64,
    name: String,
    mrn: String,
    routes: Vec<RouteOption>,
    selected: Option<&'static str>,
    selected_label: &'static str,
    schedule: Vec<String>,
    schedule_name: String,
    schedule_source: String,
    checks: Vec<CheckOption>,
    cautions: Vec<CautionOption>,
    chairs: Vec<Choice>,
    form: FormData,
    errors: Errors,
    zone: String,
}

fn route_option(r: Route, latest: &[&EligibilityAssessment], selected: Option<Route>) -> RouteOption {
    let a = latest.iter().find(|a| a.route == r);
    let (status, class, detail, disabled) = match a {
        None => ("Not assessed", "st-muted", "Assess eligibility for this route first.".to_string(), false),
        Some(a) if a.blocked => (
            "Blocked",
            "st-stop",
            format!(
                "Hard stop: {}",
                a.contraindications.hard_stops.iter().map(|h| h.label.as_str()).collect::<Vec<_>>().join("; ")
            ),
            true,
        ),
        Some(a) if !a.contraindications.cautions.is_empty() => (
            "Caution",
            "st-caution",
            format!(
                "Needs a documented decision: {}",
                a.contraindications.cautions.iter().map(|h| h.label.as_str()).collect::<Vec<_>>().join("; ")
            ),
            false,
        ),
        Some(a) if !a.warnings.is_empty() => (
            "Warning",
            "st-caution",
            a.warnings.iter().map(|w| w.message.as_str()).collect::<Vec<_>>().join("; "),
            false,
        ),
        Some(_) => ("Clear", "st-good", "No contraindication recorded.".to_string(), false),
    };
    RouteOption {
        value: r.as_str(),
        label: r.label(),
        status,
        status_class: class,
        detail,
        disabled,
        checked: selected == Some(r),
    }
}

async fn plan_page(
    st: &AppState,
    user: &CurrentUser,
    id: PatientId,
    form: FormData,
    errors: Errors,
) -> UiResult<PlanPage> {
    let chart = st.store.patient_chart(&user.actor, id).await?;
    let sites = st.store.list_sites(&user.actor).await?;
    let site = sites.iter().find(|s| s.id == chart.patient.site_id);
    let clock = site.map_or_else(SiteClock::utc, SiteClock::for_site);
    let chairs = st.store.list_chairs(&user.actor, chart.patient.site_id).await?;
    let latest = latest_assessments(&chart.eligibility);
    let selected = Route::parse(form.get("route"));
    let phase = Phase::parse(form.get("phase")).unwrap_or(Phase::Induction);

    let mut page = PlanPage {
        chrome: Chrome::new(user, format!("Plan a course · {}", chart.patient.display_name()), Area::Patients),
        id: id.0,
        name: chart.patient.display_name(),
        mrn: chart.patient.mrn.clone(),
        routes: Route::ALL.iter().map(|r| route_option(*r, &latest, selected)).collect(),
        selected: selected.map(Route::as_str),
        selected_label: selected.map_or("", Route::label),
        schedule: vec![],
        schedule_name: String::new(),
        schedule_source: String::new(),
        checks: vec![],
        cautions: vec![],
        chairs: chairs.iter().map(|c| Choice { value: c.id.to_string(), label: c.name.clone() }).collect(),
        form,
        errors,
        zone: clock.zone.clone(),
    };
    if let Some(route) = selected {
        if let Some(s) = schedule_for(route, phase) {
            page.schedule_name = s.name.clone();
            page.schedule_source = s.source.clone();
            if let Some(start) = parse_iso_date(page.form.get("start_date")) {
                let hm = parse_hm(page.form.get("time")).unwrap_or((9, 0));
                page.schedule = s
                    .day_offsets
                    .iter()
                    .map(|d| {
                        let day = start + time::Duration::days(i64::from(*d));
                        format!("{} {:02}:{:02}", date_label(day), hm.0, hm.1)
                    })
                    .collect();
            }
        }
        page.checks = pretreatment_checks(route)
            .into_iter()
            .map(|c| CheckOption {
                code: c.code.clone(),
                label: c.label.clone(),
                basis: c.basis.clone(),
                checked: page.form.has_value("check", &c.code),
            })
            .collect();
        if let Some(a) = latest.iter().find(|a| a.route == route) {
            page.cautions = a
                .contraindications
                .cautions
                .iter()
                .map(|c| CautionOption {
                    field: format!("caution.{}", c.code),
                    id: format!("caution-{}", c.code),
                    label: c.label.clone(),
                    note: c.note.clone().unwrap_or_default(),
                    source: c.source.clone(),
                })
                .collect();
        }
    }
    Ok(page)
}

/// The course's pre-treatment record in words, for the chart and the first session's note:
/// the checks confirmed (by whom, when) and each caution's benefit, risk and reason.
pub(crate) fn pretreatment_lines(r: &CoursePretreatment, clock: &SiteClock) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(first) = r.confirmations.first() {
        out.push(format!(
            "Pre-treatment checks confirmed by {} on {}: {}.",
            first.confirmed_by,
            clock.datetime(first.confirmed_at),
            r.confirmations.iter().map(|c| c.label.as_str()).collect::<Vec<_>>().join("; ")
        ));
    }
    for d in &r.caution_decisions {
        out.push(format!(
            "Caution decision ({}), by {} on {}: benefit: {}; risk: {}; why treatment goes ahead: {}",
            d.label,
            d.decided_by,
            clock.datetime(d.decided_at),
            d.benefit,
            d.risk,
            d.reason
        ));
    }
    out
}

fn defaults(form: &mut FormData, today: time::Date) {
    if form.get("start_date").is_empty() {
        form.set("start_date", iso_date(today));
    }
    if form.get("time").is_empty() {
        form.set("time", "09:00");
    }
    if form.get("phase").is_empty() {
        form.set("phase", "induction");
    }
}

pub async fn get_plan(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<Vec<(String, String)>>,
) -> UiResult<Response> {
    let mut form = FormData::from_pairs(q);
    let patient = st.store.get_patient(&user.actor, PatientId(id)).await?;
    let sites = st.store.list_sites(&user.actor).await?;
    let clock = sites.iter().find(|s| s.id == patient.site_id).map_or_else(SiteClock::utc, SiteClock::for_site);
    defaults(&mut form, clock.today(st.store.now()));
    let page = plan_page(&st, &user, PatientId(id), form, Errors::new()).await?;
    Ok(render_status(StatusCode::OK, &page))
}

/// The chosen chair, if any (a value not from the list is an error).
fn chair_field(form: &FormData, errors: &mut Errors) -> Option<ChairId> {
    match form.opt("chair_id") {
        None => None,
        Some(c) => match c.parse::<i64>() {
            Ok(c) => Some(ChairId(c)),
            Err(_) => {
                errors.add("chair_id", "choose a chair from the list");
                None
            }
        },
    }
}

/// The first session's note: who planned the course and when, the consent date and the
/// pre-treatment record.
fn plan_note(
    by: &str,
    today: time::Date,
    consent_on: time::Date,
    record: &CoursePretreatment,
    clock: &SiteClock,
) -> String {
    let mut note = format!(
        "[Course plan, documented by {by} on {}]\nConsent signed: {}.",
        date_label(today),
        date_label(consent_on),
    );
    for line in pretreatment_lines(record, clock) {
        note.push('\n');
        note.push_str(&line);
    }
    note
}

/// The benefit, risk and reason the form documents for each caution (those left blank are not decided).
fn caution_decisions(form: &FormData, cautions: &[ContraindicationFinding]) -> Vec<NewCautionDecision> {
    cautions
        .iter()
        .filter_map(|c| {
            let part = |p: &str| form.get(&format!("caution.{}.{p}", c.code)).trim().to_string();
            let (benefit, risk, reason) = (part("benefit"), part("risk"), part("reason"));
            if benefit.is_empty() && risk.is_empty() && reason.is_empty() {
                None
            } else {
                Some(NewCautionDecision { code: c.code.clone(), benefit, risk, reason })
            }
        })
        .collect()
}

pub async fn post_plan(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let pid = PatientId(id);
    let chart = st.store.patient_chart(&user.actor, pid).await?;
    let sites = st.store.list_sites(&user.actor).await?;
    let clock = sites.iter().find(|s| s.id == chart.patient.site_id).map_or_else(SiteClock::utc, SiteClock::for_site);
    let today = clock.today(st.store.now());
    let latest = latest_assessments(&chart.eligibility);
    let mut errors = Errors::new();

    let route = Route::parse(form.get("route"));
    let assessment = route.and_then(|r| latest.iter().find(|a| a.route == r).copied());
    match (route, assessment) {
        (None, _) => errors.add("route", "choose a route"),
        (Some(_), None) => {
            errors.add("route", "this route has not been assessed for contraindications yet; assess eligibility first")
        }
        (Some(r), Some(a)) if a.blocked => errors.add(
            "route",
            format!(
                "{} is blocked for this patient by a hard stop: {}",
                r.label(),
                a.contraindications.hard_stops.iter().map(|h| h.label.as_str()).collect::<Vec<_>>().join("; ")
            ),
        ),
        _ => {}
    }
    let phase = Phase::parse(form.get("phase"));
    if phase.is_none() {
        errors.add("phase", "choose induction or maintenance");
    }
    let start = parse_iso_date(form.get("start_date"));
    match start {
        None => errors.add("start_date", "enter the date of the first session"),
        Some(d) if d < today => errors.add("start_date", "the first session cannot be in the past"),
        _ => {}
    }
    let hm = parse_hm(form.get("time"));
    if hm.is_none() {
        errors.add("time", "enter the time of day, e.g. 09:30");
    }
    let chair = chair_field(&form, &mut errors);
    let consent_on = parse_iso_date(form.get("consent_date"));
    match consent_on {
        None => errors.add(
            "consent_date",
            "record the date the patient signed the consent form; a course cannot be planned without consent",
        ),
        Some(d) if d > today => errors.add("consent_date", "the consent date cannot be in the future"),
        _ => {}
    }
    // The checks and caution decisions are judged by the same domain rule the store applies
    // (`keta_domain::pretreatment`), before anything is written.
    let pretreatment = NewPretreatment {
        confirmed_checks: form.all("check"),
        caution_decisions: assessment
            .map(|a| caution_decisions(&form, &a.contraindications.cautions))
            .unwrap_or_default(),
    };
    if let (Some(r), Some(a)) = (route, assessment)
        && let Err(e) = pretreatment.validate(r, &a.contraindications.cautions)
    {
        errors.absorb(e.into())?;
        errors.rename("confirmed_checks", "check");
    }
    let schedule = match (route, phase) {
        (Some(r), Some(p)) => schedule_for(r, p),
        _ => None,
    };
    if route.is_some() && phase.is_some() && schedule.is_none() {
        errors.add("phase", "there is no default schedule for this route and phase");
    }

    if !errors.any()
        && let (Some(route), Some(phase), Some(start), Some((h, m)), Some(schedule), Some(consent_on)) =
            (route, phase, start, hm, schedule, consent_on)
    {
        let new = NewCourse {
            route,
            phase,
            indication: None,
            planned_sessions: schedule.day_offsets.len() as u32,
            start_date: start,
            protocol: Some(format!("Default schedule: {}", schedule.name).chars().take(100).collect()),
        };
        match st.store.create_course(&user.actor, pid, new).await {
            Err(e) => errors.absorb(e)?,
            Ok(course) => {
                let record = st.store.record_pretreatment(&user.actor, course.id, pretreatment).await?;
                let mut first = None;
                for d in &schedule.day_offsets {
                    let day = start + time::Duration::days(i64::from(*d));
                    let s = st
                        .store
                        .create_session(
                            &user.actor,
                            course.id,
                            NewSession {
                                scheduled_for: clock.at_local(day, h, m),
                                chair_id: chair,
                                planned_dose_mg: None,
                            },
                        )
                        .await?;
                    first.get_or_insert(s.id);
                }
                if let Some(s1) = first {
                    let note = plan_note(&user.display_name, today, consent_on, &record, &clock);
                    st.store.set_session_note(&user.actor, s1, note).await?;
                }
                super::live::publish(Some(chart.patient.site_id));
                return Ok(see_other(format!("/patients/{id}#sessions-title")));
            }
        }
    }
    let page = plan_page(&st, &user, pid, form, errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_phase_has_a_sourced_schedule() {
        for r in Route::ALL {
            for p in [Phase::Induction, Phase::Maintenance] {
                let s = schedule_for(r, p).unwrap_or_else(|| panic!("no schedule for {r:?} {p:?}"));
                assert!(!s.day_offsets.is_empty() && s.day_offsets[0] == 0, "{r:?} {p:?}");
                assert!(s.day_offsets.windows(2).all(|w| w[0] < w[1]));
                assert!(!s.source.trim().is_empty());
            }
        }
    }

    #[test]
    fn esketamine_induction_is_twice_weekly_for_four_weeks() {
        let s = schedule_for(Route::IntranasalEsketamine, Phase::Induction).unwrap();
        assert_eq!(s.day_offsets.len(), 8);
        assert!(*s.day_offsets.last().unwrap() < 28);
    }
}
