//! The session screen, tablet-first: the lifecycle step (check-in, pre-dose checks,
//! dose start and end, discharge, stop), a running clock from dose start, timers for the
//! checks the safety rules require and for the minimum monitoring time, one-tap vitals
//! with the last values pre-filled, alerts that cannot be missed (acknowledged with who
//! and when), MOAA/S and CADSS-6 entry, side effects, interventions, adverse events, the
//! discharge checklist and the session note.
//!
//! Discharge is refused by the store before the route's minimum monitoring time and
//! while alerts are open; the screen shows why. The pre-dose and discharge checklists
//! (`data/session-checklists.toml`) are confirmed here and recorded in the session note
//! with who confirmed them and when.

use std::sync::OnceLock;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::alerts::{DosePhase, SafetyRules};
use keta_domain::course::Route;
use keta_domain::ids::{AlertId, SessionId};
use keta_domain::instruments::catalog;
use keta_domain::ledger::{EntryKind, Lot, LotId, NewAdministration, Presentation, Substance};
use keta_domain::records::{AlertLevel, CompletedBy, NewQuestionnaireResponse, VitalsRecord, VitalsSource};
use keta_domain::session::{
    AeSeverity, DecisionKind, NewAdverseEvent, NewDecision, ObservationBody, SessionAction, SessionState,
};
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Milligrams, Millilitres, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::StoreError;
use keta_store::alerts::AlertQuery;
use serde::Deserialize;

use super::chart::{AlertView, alert_view};
use super::clock::{SiteClock, minutes_label, parse_hm};
use super::page::{Area, Chrome, Errors, FormData, UiResult, render_status, see_other};
use super::pk_panel::{self, PkPanel};
use super::today::{state_class, state_label, timing};
use crate::AppState;
use crate::auth::CurrentUser;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    pub code: String,
    pub label: String,
    pub routes: Vec<Route>,
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecklistFile {
    pre_dose: Vec<ChecklistItem>,
    discharge: Vec<ChecklistItem>,
}

const CHECKLISTS_TOML: &str = include_str!("../../../../data/session-checklists.toml");

fn checklists() -> &'static ChecklistFile {
    static C: OnceLock<ChecklistFile> = OnceLock::new();
    C.get_or_init(|| {
        toml::from_str(CHECKLISTS_TOML)
            .unwrap_or_else(|e| panic!("embedded data/session-checklists.toml is invalid: {e}"))
    })
}

pub fn pre_dose_checklist(route: Route) -> Vec<&'static ChecklistItem> {
    checklists().pre_dose.iter().filter(|i| i.routes.contains(&route)).collect()
}

pub fn discharge_checklist(route: Route) -> Vec<&'static ChecklistItem> {
    checklists().discharge.iter().filter(|i| i.routes.contains(&route)).collect()
}

pub(crate) struct CheckView {
    pub code: String,
    pub label: String,
    pub source: String,
    pub checked: bool,
}

pub(crate) struct TimerView {
    pub label: String,
    pub detail: String,
    pub seconds: i64,
    pub overdue: bool,
    pub source: String,
}

pub(crate) struct VitalsRow {
    pub time: String,
    pub since: String,
    pub bp: String,
    pub hr: String,
    pub spo2: String,
    pub rr: String,
    /// Why the BP is abnormal (the alert rules' messages); empty when it is not.
    pub bp_flag: String,
    /// Why the SpO2 is abnormal; empty when it is not.
    pub spo2_flag: String,
    /// Streamed by the chair's bedside monitor (not typed).
    pub from_monitor: bool,
}

/// Which readings the site's session-safety rules flag (the same evaluation that raises the
/// alerts: `SafetyRules::evaluate_vitals`, baseline = the session's first BP), as
/// (BP reason, SpO2 reason) per reading. Heart and breathing rates have no rule in
/// `data/rules/session-safety.toml`, so they are never flagged here.
fn vitals_flags(rules: &SafetyRules, readings: &[VitalsRecord]) -> Vec<(String, String)> {
    let baseline = readings.iter().filter(|r| r.vitals.systolic_mmhg.is_some()).min_by_key(|r| (r.taken_at, r.id.0));
    let bp_rules = [&rules.pre_dose_bp.code, &rules.bp_rise_from_baseline.code, &rules.severe_hypertension.code];
    readings
        .iter()
        .map(|r| {
            let phase = match r.minutes_since_dose {
                Some(m) if m >= 0 => DosePhase::PostDose { minutes_since_dose: m },
                _ => DosePhase::PreDose,
            };
            let base = baseline.filter(|b| b.id != r.id).map(|b| &b.vitals);
            let firings = rules.evaluate_vitals(phase, &r.vitals, base);
            let why = |codes: &[&String]| {
                firings
                    .iter()
                    .filter(|f| codes.contains(&&f.rule))
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            (why(&bp_rules), why(&[&rules.spo2_floor.code]))
        })
        .collect()
}

pub(crate) struct AckView {
    pub level: &'static str,
    pub message: String,
    pub by: String,
    pub at: String,
    pub note: String,
}

pub(crate) struct ObsRow {
    pub time: String,
    pub text: String,
}

pub(crate) struct Pick {
    pub value: String,
    pub label: String,
    pub emergency: bool,
}

pub(crate) struct LotChoice {
    pub value: String,
    pub label: String,
}

pub(crate) struct CadssItem {
    pub name: String,
    pub label: String,
}

/// One fact discharge still needs, with a link to where it is recorded.
pub(crate) struct BlockerView {
    pub code: &'static str,
    pub message: String,
    pub href: String,
    pub link: &'static str,
}

/// The last reading of each vital and its age, shown beside the empty entry boxes.
#[derive(Default)]
pub(crate) struct LastReadings {
    pub systolic_mmhg: String,
    pub diastolic_mmhg: String,
    pub heart_rate_bpm: String,
    pub spo2_pct: String,
    pub resp_rate_per_min: String,
}

/// The one step the session can take next.
pub(crate) struct Step {
    pub action: &'static str,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "session/session.html")]
struct SessionPage {
    chrome: Chrome,
    id: i64,
    patient: String,
    patient_href: String,
    mrn: String,
    age: i32,
    weight: String,
    route: &'static str,
    sequence: String,
    chair: String,
    scheduled: String,
    state: &'static str,
    state_class: &'static str,
    planned_dose: String,
    step: Option<Step>,
    terminal: bool,
    recording: bool,
    dose_started: bool,
    elapsed_seconds: i64,
    elapsed_label: String,
    dose_started_at: String,
    minimum: String,
    minimum_source: String,
    minimum_remaining: i64,
    timers: Vec<TimerView>,
    /// The course's order with the pump rate, bag concentration and volume.
    order: Option<super::calendar::OrderPanel>,
    open_alerts: Vec<AlertView>,
    acknowledged: Vec<AckView>,
    vitals: Vec<VitalsRow>,
    vitals_form: FormData,
    last: LastReadings,
    pre_dose: Vec<CheckView>,
    pre_dose_vitals: bool,
    discharge: Vec<CheckView>,
    blockers: Vec<BlockerView>,
    other_day: String,
    urgent_open: Vec<String>,
    can_decide: bool,
    bp_reading: String,
    bp_reading_id: i64,
    decisions: Vec<ObsRow>,
    settings_missing: bool,
    dissociation_measures: Vec<String>,
    moaas_levels: Vec<Pick>,
    moaas: Vec<ObsRow>,
    cadss_items: Vec<CadssItem>,
    cadss: Vec<ObsRow>,
    symptoms: Vec<Pick>,
    side_effects: Vec<ObsRow>,
    interventions: Vec<ObsRow>,
    adverse_events: Vec<ObsRow>,
    note: String,
    form: FormData,
    errors: Errors,
    failed: &'static str,
    stopped_reason: String,
    ledger: bool,
    ledger_lots: Vec<LotChoice>,
    ledger_doses: Vec<ObsRow>,
    ledger_vials: bool,
    ledger_fresh: bool,
    ledger_reauth_href: String,
    pk: PkPanel,
}

/// A reading or amount as people write it: "128", "0.72", "36.5".
fn fmt_num(x: Option<f64>) -> String {
    x.map_or_else(
        || "—".into(),
        |v| {
            if v.fract() == 0.0 {
                format!("{}", v as i64)
            } else {
                format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
            }
        },
    )
}

/// A refusal without its " [record it: ...]" / " [set it: ...]" pointers.
fn without_links(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(at) = rest.find(" [") {
        let tail = &rest[at + 2..];
        match tail.find(']') {
            Some(end) if tail.starts_with("record it: ") || tail.starts_with("set it: ") => {
                out.push_str(&rest[..at]);
                rest = &tail[end + 1..];
            }
            _ => {
                out.push_str(&rest[..at + 2]);
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// "12 min ago", "just now", "2 h 5 min ago".
fn age_label(minutes: i64) -> String {
    match minutes {
        m if m < 1 => "just now".into(),
        m if m < 60 => format!("{m} min ago"),
        m => format!("{} h {} min ago", m / 60, m % 60),
    }
}

fn hms(secs: i64) -> String {
    let s = secs.abs();
    format!("{}{}:{:02}:{:02}", if secs < 0 { "-" } else { "" }, s / 3600, (s % 3600) / 60, s % 60)
}

fn next_step(state: SessionState) -> Option<Step> {
    Some(match state {
        SessionState::Scheduled => Step { action: "check_in", label: "Check in" },
        SessionState::CheckedIn => Step { action: "start_pre_dose_checks", label: "Start pre-dose checks" },
        SessionState::PreDoseChecks => Step { action: "start_dose", label: "Start dose" },
        SessionState::Dosing => Step { action: "end_dose", label: "End dose (start monitoring)" },
        SessionState::Monitoring => Step { action: "discharge", label: "Discharge" },
        SessionState::Discharged | SessionState::Stopped => return None,
    })
}

async fn session_page(
    st: &AppState,
    user: &CurrentUser,
    id: SessionId,
    mut form: FormData,
    errors: Errors,
    failed: &'static str,
    below: Option<&str>,
) -> UiResult<SessionPage> {
    let actor = &user.actor;
    let s = st.store.get_session(actor, id).await?;
    let (patient, course, vitals, obs, alerts, patient_alerts, responses, aes, sites, chairs, rules, decisions) = tokio::join!(
        st.store.get_patient(actor, s.patient_id),
        st.store.get_course(actor, s.course_id),
        st.store.list_vitals(actor, id),
        st.store.list_observations(actor, id),
        st.store.list_alerts(actor, AlertQuery { session_id: Some(id), limit: 200, ..Default::default() }),
        st.store.list_alerts(
            actor,
            AlertQuery { patient_id: Some(s.patient_id), open_only: true, limit: 200, ..Default::default() }
        ),
        st.store.list_responses(actor, s.patient_id, None),
        st.store.list_adverse_events(actor, s.patient_id),
        st.store.list_sites(actor),
        st.store.list_chairs(actor, s.site_id),
        st.store.site_safety_rules(actor, s.site_id),
        st.store.list_session_decisions(actor, id),
    );
    let (patient, course, vitals, obs, alerts, patient_alerts, responses, aes, sites, chairs, decisions) =
        (patient?, course?, vitals?, obs?, alerts?, patient_alerts?, responses?, aes?, sites?, chairs?, decisions?);
    // The rules in force at this site (the medical director may have replaced the built-in ones).
    let rules = rules?.0;
    let rules: &SafetyRules = &rules;
    let clock = sites.iter().find(|x| x.id == s.site_id).map_or_else(SiteClock::utc, SiteClock::for_site);
    let order = super::calendar::order_panel(st, user, course.id, patient.latest_weight_kg).await?;
    // The dose given starts from the order for the patient's latest weight; what was typed
    // in a refused form stays as typed.
    if let Some(mg) = order.as_ref().and_then(|o| o.dose_mg).filter(|_| failed != "ledger")
        && form.get("ledger_dose_mg").is_empty()
    {
        form.set("ledger_dose_mg", keta_domain::dosing::fmt_num(mg));
    }
    let now = st.store.now();

    let bp_minutes: Vec<i64> =
        vitals.iter().filter(|v| v.vitals.systolic_mmhg.is_some()).filter_map(|v| v.minutes_since_dose).collect();
    let t = timing(rules, &(&s).into(), &bp_minutes, now);
    let elapsed = s.dose_started_at.map_or(0, |d| (now - d).whole_seconds());
    let min_rule = rules.minimum_monitoring_rule(s.route);
    let active = !s.state.is_terminal() && s.state.dose_started();

    let mut timers = Vec::new();
    if active {
        for c in rules.due_checks(s.route, t.since_dose_min.unwrap_or(0), &bp_minutes) {
            timers.push(TimerView {
                label: c.label.clone(),
                detail: format!("due at {} min after the dose", c.due_at_minutes),
                seconds: c.due_at_minutes * 60 - elapsed,
                overdue: c.overdue,
                source: c.source.clone(),
            });
        }
    }

    let mut open_alerts: Vec<AlertView> =
        alerts.iter().filter(|a| a.acknowledged_at.is_none()).map(|a| alert_view(a, &clock)).collect();
    // Patient alerts raised outside this session (e.g. a questionnaire safety item) show here too.
    for a in patient_alerts.iter().filter(|a| a.session_id != Some(id)) {
        open_alerts.push(alert_view(a, &clock));
    }
    let acknowledged = alerts
        .iter()
        .filter(|a| a.acknowledged_at.is_some())
        .map(|a| AckView {
            level: match a.level {
                AlertLevel::Urgent => "urgent",
                AlertLevel::Warning => "warning",
            },
            message: a.message.clone(),
            by: a.acknowledged_by.clone().unwrap_or_default(),
            at: a.acknowledged_at.map(|t| clock.hm(t)).unwrap_or_default(),
            note: a.acknowledgement_note.clone().unwrap_or_default(),
        })
        .collect();

    // The form starts empty (a stale value must never be re-recorded by a tap); the last
    // reading of each vital and its age are shown beside its box instead.
    let vitals_form = if failed == "vitals" { form.clone() } else { FormData::empty() };
    let last_of = |label: &str, f: &dyn Fn(&VitalSigns) -> Option<String>| -> String {
        vitals
            .iter()
            .rev()
            .find_map(|v| f(&v.vitals).map(|x| (x, v.taken_at)))
            .map_or_else(String::new, |(x, at)| format!("{label} {x}, {}", age_label((now - at).whole_minutes())))
    };
    let last = LastReadings {
        systolic_mmhg: last_of("BP", &|v| {
            v.blood_pressure().map(|(a, b)| format!("{}/{}", fmt_num(Some(a.0)), fmt_num(Some(b.0))))
        }),
        diastolic_mmhg: String::new(),
        heart_rate_bpm: last_of("HR", &|v| v.heart_rate_bpm.map(|x| fmt_num(Some(x.0)))),
        spo2_pct: last_of("SpO₂", &|v| v.spo2_pct.map(|x| format!("{}%", fmt_num(Some(x.0))))),
        resp_rate_per_min: last_of("RR", &|v| v.resp_rate_per_min.map(|x| fmt_num(Some(x.0)))),
    };

    let checks = |items: Vec<&ChecklistItem>, name: &str| -> Vec<CheckView> {
        items
            .into_iter()
            .map(|i| CheckView {
                code: i.code.clone(),
                label: i.label.clone(),
                source: i.source.clone(),
                checked: form.has_value(name, &i.code),
            })
            .collect()
    };
    let blockers: Vec<BlockerView> = if s.state == SessionState::Monitoring {
        st.store
            .discharge_blockers(actor, id)
            .await?
            .into_iter()
            .map(|b| BlockerView {
                code: b.code,
                message: super::page::capitalise(&b.message),
                href: if b.anchor == "settings" {
                    format!("/api/v1/sites/{}/discharge-settings", s.site_id)
                } else {
                    format!("#{}", b.anchor)
                },
                link: match b.anchor {
                    "settings" => "Site setting (PUT, medical director)",
                    "clock" => "Timer",
                    "alerts" => "Alerts",
                    "ledger" => "Record in the ledger",
                    "moaas" => "Record MOAA/S",
                    "cadss" => "Record CADSS-6",
                    _ => "Record vitals",
                },
            })
            .collect()
    } else {
        vec![]
    };
    let settings_missing = blockers.iter().any(|b| b.href.ends_with("/discharge-settings"));
    // The latest post-dose BP reading the thresholds flag: what a prescriber's decision names.
    let (bp_reading, bp_reading_id) = if blockers.iter().any(|b| b.code == "bp_above_threshold") {
        vitals
            .iter()
            .rev()
            .find(|v| v.vitals.blood_pressure().is_some() && v.minutes_since_dose.is_some_and(|m| m >= 0))
            .map_or((String::new(), 0), |v| {
                let (a, b) = v.vitals.blood_pressure().unwrap_or((Mmhg(0.0), Mmhg(0.0)));
                (
                    format!("BP {}/{} mmHg taken at {}", fmt_num(Some(a.0)), fmt_num(Some(b.0)), clock.hm(v.taken_at)),
                    v.id.0,
                )
            })
    } else {
        (String::new(), 0)
    };
    // Urgent alerts for the patient no override in this session covers hold the dose.
    let covered: Vec<AlertId> = decisions.iter().filter_map(|d| d.alert_id).collect();
    let urgent_open: Vec<String> = patient_alerts
        .iter()
        .filter(|a| a.level == AlertLevel::Urgent && a.acknowledged_at.is_none() && !covered.contains(&a.id))
        .map(|a| a.message.clone())
        .collect();
    let other_day = if clock.local(s.scheduled_for).date() == clock.today(now) {
        String::new()
    } else {
        clock.date(s.scheduled_for)
    };
    let decision_rows = decisions
        .iter()
        .map(|d| ObsRow {
            time: clock.hm(d.decided_at),
            text: format!(
                "{} by {}: {}",
                match d.kind {
                    DecisionKind::DoseDespiteUrgentAlert => "Dose override with an urgent alert open",
                    DecisionKind::DischargeDespiteBp => "Discharge with the BP reading",
                    DecisionKind::OtherDay => "Taken on another day than scheduled",
                },
                d.decided_by,
                d.reason
            ),
        })
        .collect();

    let moaas_inst = catalog().get("moaas");
    let moaas_levels = (0..=5)
        .rev()
        .map(|v| Pick {
            value: v.to_string(),
            label: moaas_inst.and_then(|i| i.band_for(v)).map_or_else(String::new, |b| b.label.clone()),
            emergency: v == 0,
        })
        .collect();
    let mut moaas = Vec::new();
    let mut side_effects = Vec::new();
    let mut interventions = Vec::new();
    for o in &obs {
        let time = clock.hm(o.observed_at);
        match &o.body {
            ObservationBody::Moaas { score } => moaas.push(ObsRow { time, text: format!("MOAA/S {score}") }),
            ObservationBody::SideEffect { symptom, note } => {
                let label =
                    rules.symptoms().iter().find(|x| &x.code == symptom).map_or(symptom.as_str(), |x| x.label.as_str());
                side_effects.push(ObsRow {
                    time,
                    text: match note {
                        Some(n) => format!("{label}: {n}"),
                        None => label.to_string(),
                    },
                })
            }
            ObservationBody::Intervention { drug, dose_mg, route } => {
                interventions.push(ObsRow { time, text: format!("{drug} {} mg {route}", fmt_num(Some(dose_mg.0))) })
            }
        }
    }
    let cadss = responses
        .iter()
        .filter(|r| r.session_id == Some(id) && matches!(r.instrument.as_str(), "cadss" | "cadss6"))
        .map(|r| ObsRow {
            time: clock.hm(r.completed_at),
            text: format!(
                "{} total {}",
                if r.instrument == "cadss" { "CADSS" } else { "CADSS-6" },
                r.score.total.unwrap_or(0)
            ),
        })
        .collect();
    let cadss_items = catalog()
        .get("cadss6")
        .map(|i| {
            i.items
                .iter()
                .map(|it| CadssItem {
                    name: format!("cadss_{}", it.number),
                    label: format!(
                        "Item {}{}",
                        it.number,
                        it.source_item.map(|n| format!(" (CADSS item {n})")).unwrap_or_default()
                    ),
                })
                .collect()
        })
        .unwrap_or_default();

    // The controlled-substance ledger: the dose given must be recorded before discharge.
    let dose_given = s.dose_started_at.is_some();
    let ledger = dose_given && actor.can(keta_domain::access::Permission::ViewLedger);
    let (mut ledger_lots, mut ledger_doses) = (Vec::new(), Vec::new());
    if ledger {
        let (lots, entries) = tokio::join!(
            st.store.list_lots(actor, Some(s.site_id), false),
            st.store.list_ledger_entries(
                actor,
                keta_store::ledger::LedgerQuery {
                    session_id: Some(id),
                    kind: Some(EntryKind::Administration),
                    limit: 50,
                    ..Default::default()
                }
            ),
        );
        ledger_lots = lots?
            .into_iter()
            .filter(|l| lot_fits(s.route, l))
            .map(|l| LotChoice { value: l.id.to_string(), label: lot_label(&l) })
            .collect();
        ledger_doses = entries?
            .iter()
            .filter(|e| e.reversed_by.is_none())
            .map(|e| ObsRow {
                time: clock.hm(e.occurred_at),
                text: format!(
                    "{} mg{} given, recorded by {}",
                    fmt_num(Some(e.amount_mg.0)),
                    e.amount_ml.map(|v| format!(" ({} mL)", fmt_num(Some(v.0)))).unwrap_or_default(),
                    e.recorded_by.name
                ),
            })
            .collect();
    }
    let ledger_fresh = super::ledger::reauthenticated(st, user);

    let pk = pk_view(st, user, &s, &course, &patient, &obs, &responses, &sites, &clock, below).await?;

    let chair = s
        .chair_id
        .and_then(|c| chairs.iter().find(|x| x.id == c))
        .map_or_else(|| "No chair".to_string(), |c| c.name.clone());
    let title = if open_alerts.is_empty() {
        format!("Session · {}", patient.display_name())
    } else {
        format!(
            "{} alert{} · Session · {}",
            open_alerts.len(),
            if open_alerts.len() == 1 { "" } else { "s" },
            patient.display_name()
        )
    };
    Ok(SessionPage {
        chrome: Chrome::new(user, title, Area::Today),
        id: id.0,
        patient: patient.display_name(),
        patient_href: format!("/patients/{}", patient.id),
        mrn: patient.mrn.clone(),
        age: patient.age_on(clock.today(now)),
        weight: patient.latest_weight_kg.map_or_else(|| "weight not recorded".into(), |w| format!("{} kg", w.0)),
        route: s.route.label(),
        sequence: format!("Session {} of {}", s.sequence, course.planned_sessions),
        chair,
        scheduled: clock.datetime(s.scheduled_for),
        state: state_label(s.state),
        state_class: state_class(s.state),
        planned_dose: s.planned_dose_mg.map(|d| format!("{} mg", fmt_num(Some(d.0)))).unwrap_or_default(),
        step: next_step(s.state),
        terminal: s.state.is_terminal(),
        recording: !s.state.is_terminal() && s.state != SessionState::Scheduled,
        dose_started: s.dose_started_at.is_some(),
        elapsed_seconds: elapsed,
        elapsed_label: hms(elapsed),
        dose_started_at: s.dose_started_at.map(|d| clock.hm(d)).unwrap_or_default(),
        minimum: minutes_label(min_rule.minutes.0),
        minimum_source: min_rule.source.clone(),
        minimum_remaining: if active { min_rule.minutes.0 * 60 - elapsed } else { 0 },
        order,
        timers,
        open_alerts,
        acknowledged,
        vitals: vitals
            .iter()
            .zip(vitals_flags(rules, &vitals))
            .rev()
            .map(|(v, (bp_flag, spo2_flag))| VitalsRow {
                bp_flag,
                spo2_flag,
                from_monitor: v.source == keta_domain::records::VitalsSource::Monitor,
                time: clock.hm(v.taken_at),
                since: v
                    .minutes_since_dose
                    .map_or_else(|| "pre-dose".into(), |m| if m < 0 { "pre-dose".into() } else { format!("{m} min") }),
                bp: match v.vitals.blood_pressure() {
                    Some((a, b)) => format!("{}/{}", fmt_num(Some(a.0)), fmt_num(Some(b.0))),
                    None => "—".into(),
                },
                hr: fmt_num(v.vitals.heart_rate_bpm.map(|x| x.0)),
                spo2: fmt_num(v.vitals.spo2_pct.map(|x| x.0)),
                rr: fmt_num(v.vitals.resp_rate_per_min.map(|x| x.0)),
            })
            .collect(),
        vitals_form,
        last,
        pre_dose: checks(pre_dose_checklist(s.route), "predose"),
        pre_dose_vitals: vitals
            .iter()
            .any(|v| v.vitals.systolic_mmhg.is_some() && v.minutes_since_dose.is_none_or(|m| m < 0)),
        discharge: checks(discharge_checklist(s.route), "discharge"),
        blockers,
        other_day,
        urgent_open,
        can_decide: actor.can(keta_domain::access::Permission::PlanTreatment),
        bp_reading,
        bp_reading_id,
        decisions: decision_rows,
        settings_missing,
        dissociation_measures: keta_domain::discharge::DischargeRules::builtin().dissociation.measures.clone(),
        moaas_levels,
        moaas,
        cadss_items,
        cadss,
        symptoms: rules
            .symptoms()
            .iter()
            .map(|x| Pick { value: x.code.clone(), label: x.label.clone(), emergency: x.emergency })
            .collect(),
        side_effects,
        interventions,
        adverse_events: aes
            .iter()
            .filter(|e| e.session_id == Some(id))
            .map(|e| ObsRow {
                time: clock.hm(e.onset_at),
                text: format!(
                    "{} ({}{}), action: {}, outcome: {}",
                    e.description,
                    e.severity.as_str(),
                    if e.serious { ", serious" } else { "" },
                    e.action_taken,
                    e.outcome
                ),
            })
            .collect(),
        note: s.note.clone().unwrap_or_default(),
        form,
        errors,
        failed,
        stopped_reason: s.stop_reason.clone().unwrap_or_default(),
        ledger,
        ledger_lots,
        ledger_doses,
        ledger_vials: matches!(s.route, Route::IvRacemic | Route::ImRacemic),
        ledger_fresh,
        ledger_reauth_href: super::ledger::reauth_href(&format!("/sessions/{}#ledger", id.0)),
        pk,
    })
}

/// The "Predicted concentration" panel: the session's dose (last record, else the
/// planned dose) under the route's model, the observed scores, and the fall below the
/// level from `?below=` or the site's `pk_threshold_ng_ml` setting (never a default).
#[allow(clippy::too_many_arguments)]
async fn pk_view(
    st: &AppState,
    user: &CurrentUser,
    s: &keta_domain::session::TreatmentSession,
    course: &keta_domain::course::Course,
    patient: &keta_domain::patient::Patient,
    obs: &[keta_domain::records::ObservationRecord],
    responses: &[keta_domain::records::QuestionnaireResponse],
    sites: &[keta_domain::site::Site],
    clock: &SiteClock,
    below: Option<&str>,
) -> UiResult<PkPanel> {
    let mut p = PkPanel::default();
    let site_level = sites.iter().find(|x| x.id == s.site_id).and_then(|x| pk_panel::site_threshold(&x.settings));
    let (threshold, source) = match pk_panel::parse_below(below) {
        Ok(Some(v)) => (Some(v), "the level entered here".to_string()),
        other => {
            if let Err(e) = other {
                p.below_error = e;
            }
            (site_level, format!("the clinic's setting {}", pk_panel::THRESHOLD_SETTING))
        }
    };
    p.below_value = below.map_or_else(|| threshold.map(pk_panel::num).unwrap_or_default(), |b| b.trim().to_string());
    if threshold.is_some() {
        p.below_set = true;
        p.below_source = source;
    } else {
        p.below = "Set a level to see when the concentration falls below it.".into();
    }

    let records = st.store.list_session_doses(&user.actor, s.id).await?;
    let protocol = course.protocol.as_deref().and_then(|id| st.protocols.get(id));
    let Some(dose) = pk_panel::DoseInput::from_records(
        s.route,
        &records,
        s.planned_dose_mg.map(|d| d.0),
        patient.latest_weight_kg.map(|w| w.0),
        protocol,
    ) else {
        p.unavailable =
            "No dose to predict yet: record the dose calculation (or a planned dose and the patient's weight).".into();
        return Ok(p);
    };
    let age = f64::from(patient.age_on(clock.today(st.store.now())));
    let req = match pk_panel::request_for(&dose, Some(age), threshold) {
        Ok(r) => r,
        Err(e) => {
            p.unavailable = super::page::capitalise(&e);
            return Ok(p);
        }
    };
    let sim = match pk_panel::simulate_cached(req).await {
        Ok(x) => x,
        Err(e) => {
            p.unavailable = super::page::capitalise(&e);
            return Ok(p);
        }
    };
    let moaas: Vec<pk_panel::Observed> = obs
        .iter()
        .filter_map(|o| match o.body {
            ObservationBody::Moaas { score } => Some(pk_panel::Observed { at: o.observed_at, score }),
            _ => None,
        })
        .collect();
    let cadss: Vec<pk_panel::Observed> = responses
        .iter()
        .filter(|r| r.session_id == Some(s.id) && matches!(r.instrument.as_str(), "cadss" | "cadss6"))
        .filter_map(|r| Some(pk_panel::Observed { at: r.completed_at, score: r.score.total? }))
        .collect();
    pk_panel::build(
        &mut p,
        pk_panel::PanelInput {
            sim: &sim,
            basis: dose.basis,
            dose_started_at: s.dose_started_at,
            moaas: &moaas,
            cadss: &cadss,
            // The scale's top: the largest total of the CADSS forms recorded (CADSS-6's if none yet).
            cadss_max: responses
                .iter()
                .filter(|r| r.session_id == Some(s.id) && matches!(r.instrument.as_str(), "cadss" | "cadss6"))
                .map(|r| r.instrument.as_str())
                .chain(["cadss6"])
                .filter_map(|code| catalog().get(code).and_then(|inst| inst.max_total))
                .max()
                .unwrap_or(0),
            clock,
        },
    );
    Ok(p)
}

/// Stock that may be given on this route: racemic ketamine vials for IV and IM,
/// esketamine devices for the nasal spray.
fn lot_fits(route: Route, lot: &Lot) -> bool {
    matches!(
        (route, lot.product.substance),
        (Route::IvRacemic | Route::ImRacemic, Substance::Ketamine)
            | (Route::IntranasalEsketamine, Substance::Esketamine)
    )
}

fn lot_label(l: &Lot) -> String {
    let stock = match (l.on_hand_ml, l.on_hand_devices) {
        (Some(ml), _) => format!("{} mL left", fmt_num(Some(ml.0))),
        (None, Some(d)) => format!("{} devices left", fmt_num(Some(d))),
        _ => format!("{} mg left", fmt_num(Some(l.on_hand_mg.0))),
    };
    format!("{} {} · lot {} · expires {} · {stock}", l.strength, l.container, l.lot_number, l.expires_on)
}

#[derive(Debug, Default, Deserialize)]
pub struct PkQuery {
    /// The level to predict the fall below, ng/mL (overrides the site's setting).
    #[serde(default)]
    pub below: Option<String>,
}

pub async fn get_session(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<PkQuery>,
) -> UiResult<Response> {
    let page =
        session_page(&st, &user, SessionId(id), FormData::empty(), Errors::new(), "", q.below.as_deref()).await?;
    Ok(render_status(StatusCode::OK, &page))
}

async fn rejected(
    st: &AppState,
    user: &CurrentUser,
    id: i64,
    form: FormData,
    errors: Errors,
    failed: &'static str,
) -> UiResult<Response> {
    let page = session_page(st, user, SessionId(id), form, errors, failed, None).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

async fn done(st: &AppState, user: &CurrentUser, id: i64, anchor: &str) -> UiResult<Response> {
    if let Ok(s) = st.store.get_session(&user.actor, SessionId(id)).await {
        super::live::publish(Some(s.site_id));
    }
    Ok(see_other(format!("/sessions/{id}{anchor}")))
}

/// Appends a dated line to the session note (checklists confirmed, and by whom).
async fn append_note(st: &AppState, user: &CurrentUser, id: SessionId, line: String) -> UiResult<()> {
    let s = st.store.get_session(&user.actor, id).await?;
    let sites = st.store.list_sites(&user.actor).await?;
    let clock = sites.iter().find(|x| x.id == s.site_id).map_or_else(SiteClock::utc, SiteClock::for_site);
    let stamp = format!("[{} {}] {line}", clock.hm(st.store.now()), user.display_name);
    let note = match s.note.as_deref().map(str::trim_end) {
        Some(n) if !n.is_empty() => format!("{n}\n{stamp}"),
        _ => stamp,
    };
    st.store.set_session_note(&user.actor, id, note).await?;
    Ok(())
}

pub async fn post_step(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let sid = SessionId(id);
    let s = st.store.get_session(&user.actor, sid).await?;
    let mut errors = Errors::new();
    let (action, confirmed): (SessionAction, Option<String>) = match form.get("action") {
        "check_in" => (SessionAction::CheckIn, None),
        "start_pre_dose_checks" => (SessionAction::StartPreDoseChecks, None),
        "start_dose" => {
            let items = pre_dose_checklist(s.route);
            let missing: Vec<&str> =
                items.iter().filter(|i| !form.has_value("predose", &i.code)).map(|i| i.label.as_str()).collect();
            if !missing.is_empty() {
                errors.add(
                    "predose",
                    format!("confirm every pre-dose check first; not yet confirmed: {}", missing.join("; ")),
                );
            }
            let vitals = st.store.list_vitals(&user.actor, sid).await?;
            if !vitals.iter().any(|v| v.vitals.systolic_mmhg.is_some()) {
                errors.add("predose", "record the pre-dose blood pressure before starting the dose");
            }
            (
                SessionAction::StartDose,
                Some(format!(
                    "Pre-dose checks confirmed: {}.",
                    items.iter().map(|i| i.label.as_str()).collect::<Vec<_>>().join("; ")
                )),
            )
        }
        "end_dose" => (SessionAction::EndDose, None),
        "discharge" => {
            let items = discharge_checklist(s.route);
            let missing: Vec<&str> =
                items.iter().filter(|i| !form.has_value("discharge", &i.code)).map(|i| i.label.as_str()).collect();
            if !missing.is_empty() {
                errors.add(
                    "discharge",
                    format!("confirm every discharge check first; not yet confirmed: {}", missing.join("; ")),
                );
            }
            (
                SessionAction::Discharge,
                Some(format!(
                    "Discharge checks confirmed: {}.",
                    items.iter().map(|i| i.label.as_str()).collect::<Vec<_>>().join("; ")
                )),
            )
        }
        "stop" => (SessionAction::Stop { reason: form.get("reason").trim().to_string() }, None),
        other => return Err(super::page::UiError::BadRequest(format!("unknown step '{other}'"))),
    };
    let failed = match &action {
        SessionAction::Stop { .. } => "stop",
        SessionAction::Discharge => "discharge",
        SessionAction::StartDose => "predose",
        _ => "step",
    };
    let other_day_reason = if form.checked("confirm_other_day") {
        match form.opt("other_day_reason") {
            Some(r) => Some(r),
            None => {
                errors.add("other_day_reason", "say why this session is taken today");
                None
            }
        }
    } else {
        None
    };
    if errors.any() {
        return rejected(&st, &user, id, form, errors, failed).await;
    }
    match st.store.act_on_session_confirmed(&user.actor, sid, action, other_day_reason).await {
        Ok(_) => {
            if let Some(line) = confirmed {
                append_note(&st, &user, sid, line).await?;
            }
            done(&st, &user, id, "").await
        }
        // The API's refusal carries where to record each fact; the screen lists them with links.
        Err(StoreError::Domain(keta_domain::DomainError::Conflict(msg))) => {
            errors.add_general(super::page::capitalise(&without_links(&msg)));
            rejected(&st, &user, id, form, errors, failed).await
        }
        Err(e) => {
            errors.absorb(e)?;
            errors.rename("reason", "stop_reason");
            rejected(&st, &user, id, form, errors, failed).await
        }
    }
}

/// A prescriber's decision: let the dose start with an urgent alert open, or discharge with
/// a named BP reading above the thresholds (stored, audited, written in the note).
pub async fn post_decision(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let reason = form.get("decision_reason").trim().to_string();
    let decision = match form.get("kind") {
        "dose_despite_urgent_alert" => NewDecision::DoseDespiteUrgentAlert { reason },
        "discharge_despite_bp" => match form.get("vitals_id").parse::<i64>() {
            Ok(v) => NewDecision::DischargeDespiteBp { vitals_id: keta_domain::ids::RecordId(v), reason },
            Err(_) => return Err(super::page::UiError::BadRequest("which reading? vitals_id is missing".into())),
        },
        other => return Err(super::page::UiError::BadRequest(format!("unknown decision '{other}'"))),
    };
    match st.store.record_session_decision(&user.actor, SessionId(id), decision).await {
        Ok(_) => done(&st, &user, id, "").await,
        Err(StoreError::Conflict(msg)) | Err(StoreError::Forbidden(msg)) => {
            errors.add_general(super::page::capitalise(&msg));
            rejected(&st, &user, id, form, errors, "decision").await
        }
        Err(e) => {
            errors.absorb(e)?;
            errors.rename("reason", "decision_reason");
            rejected(&st, &user, id, form, errors, "decision").await
        }
    }
}

/// The medical director fills the site's discharge settings from the session screen (the
/// same store operation as `PUT /api/v1/sites/{id}/discharge-settings`).
pub async fn post_discharge_settings(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let s = st.store.get_session(&user.actor, SessionId(id)).await?;
    let minutes = form.integer("vitals_within_minutes", &mut errors);
    let cutoff = form.integer("resolved_at_or_below", &mut errors);
    if minutes.is_none() && !errors.has("vitals_within_minutes") {
        errors.add("vitals_within_minutes", "enter the minutes");
    }
    if cutoff.is_none() && !errors.has("resolved_at_or_below") {
        errors.add("resolved_at_or_below", "enter the total that counts as resolved");
    }
    if let (Some(m), Some(t), false) = (minutes, cutoff, errors.any()) {
        let settings = keta_domain::discharge::DischargeSettings {
            vitals_within_minutes: Some(keta_domain::units::Minutes(m)),
            dissociation: Some(keta_domain::discharge::DissociationSetting {
                instrument: form.get("dissociation_instrument").to_string(),
                resolved_at_or_below: t as i32,
            }),
        };
        match st.store.set_site_discharge_settings(&user.actor, s.site_id, settings).await {
            Ok(_) => return done(&st, &user, id, "").await,
            Err(StoreError::Forbidden(msg)) => errors.add_general(super::page::capitalise(&msg)),
            Err(e) => {
                errors.absorb(e)?;
                errors.rename("dissociation.instrument", "dissociation_instrument");
                errors.rename("dissociation.resolved_at_or_below", "resolved_at_or_below");
            }
        }
    }
    rejected(&st, &user, id, form, errors, "settings").await
}

pub async fn post_vitals(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let v = VitalSigns {
        systolic_mmhg: form.number("systolic_mmhg", &mut errors).map(Mmhg),
        diastolic_mmhg: form.number("diastolic_mmhg", &mut errors).map(Mmhg),
        heart_rate_bpm: form.number("heart_rate_bpm", &mut errors).map(BeatsPerMinute),
        spo2_pct: form.number("spo2_pct", &mut errors).map(Percent),
        resp_rate_per_min: form.number("resp_rate_per_min", &mut errors).map(BreathsPerMinute),
    };
    if !errors.any() {
        let confirmed = form.checked("confirm_duplicate");
        match st.store.record_vitals_entry(&user.actor, SessionId(id), v, None, VitalsSource::Manual, confirmed).await {
            Ok(r) if !r.alerts.is_empty() => return done(&st, &user, id, "#alerts").await,
            Ok(_) => return done(&st, &user, id, "#vitals").await,
            Err(e) => errors.absorb(e)?,
        }
    }
    rejected(&st, &user, id, form, errors, "vitals").await
}

pub async fn post_moaas(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    match form.integer("moaas_score", &mut errors) {
        None if !errors.any() => errors.add("moaas_score", "choose the MOAA/S level"),
        None => {}
        Some(score) => match st
            .store
            .record_observation(&user.actor, SessionId(id), ObservationBody::Moaas { score: score as i32 }, None)
            .await
        {
            Ok(_) => return done(&st, &user, id, "#observations").await,
            Err(e) => {
                errors.absorb(e)?;
                errors.rename("score", "moaas_score");
            }
        },
    }
    rejected(&st, &user, id, form, errors, "moaas").await
}

pub async fn post_cadss(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let s = st.store.get_session(&user.actor, SessionId(id)).await?;
    let n = catalog().get("cadss6").map_or(6, |i| i.items.len());
    let mut answers = Vec::with_capacity(n);
    for i in 1..=n {
        let name = format!("cadss_{i}");
        match form.integer(&name, &mut errors) {
            Some(v) => answers.push(Some(v as i32)),
            None => {
                if !errors.has(&name) {
                    errors.add(&name, "choose a rating");
                }
                answers.push(None);
            }
        }
    }
    if !errors.any() {
        let new = NewQuestionnaireResponse {
            instrument: "cadss6".into(),
            answers,
            course_id: Some(s.course_id),
            session_id: Some(s.id),
            completed_at: None,
            completed_by: CompletedBy::Staff,
        };
        match st.store.submit_response(&user.actor, s.patient_id, new).await {
            Ok(_) => return done(&st, &user, id, "#observations").await,
            Err(e) => {
                errors.absorb(e)?;
                for i in 0..n {
                    errors.rename(&format!("answers[{i}]"), &format!("cadss_{}", i + 1));
                }
            }
        }
    }
    rejected(&st, &user, id, form, errors, "cadss").await
}

pub async fn post_side_effects(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let symptoms = form.all("symptom");
    if symptoms.is_empty() {
        errors.add("symptom", "tick at least one side effect");
    }
    let note = form.opt("side_effect_note");
    if !errors.any() {
        for symptom in symptoms {
            if let Err(e) = st
                .store
                .record_observation(
                    &user.actor,
                    SessionId(id),
                    ObservationBody::SideEffect { symptom, note: note.clone() },
                    None,
                )
                .await
            {
                errors.absorb(e)?;
                errors.rename("note", "side_effect_note");
                return rejected(&st, &user, id, form, errors, "side_effects").await;
            }
        }
        return done(&st, &user, id, "#alerts").await;
    }
    rejected(&st, &user, id, form, errors, "side_effects").await
}

pub async fn post_intervention(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let dose = form.number("dose_mg", &mut errors);
    if dose.is_none() && !errors.has("dose_mg") {
        errors.add("dose_mg", "enter the dose in mg");
    }
    if let (Some(dose), false) = (dose, errors.any()) {
        let body = ObservationBody::Intervention {
            drug: form.get("drug").trim().into(),
            dose_mg: Milligrams(dose),
            route: form.get("given_route").trim().into(),
        };
        match st.store.record_observation(&user.actor, SessionId(id), body, None).await {
            Ok(_) => return done(&st, &user, id, "#observations").await,
            Err(e) => {
                errors.absorb(e)?;
                errors.rename("route", "given_route");
            }
        }
    }
    rejected(&st, &user, id, form, errors, "intervention").await
}

pub async fn post_adverse_event(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let s = st.store.get_session(&user.actor, SessionId(id)).await?;
    let severity = AeSeverity::parse(form.get("ae_severity"));
    if severity.is_none() {
        errors.add("ae_severity", "choose mild, moderate or severe");
    }
    let now = st.store.now();
    let onset = match form.opt("onset") {
        None => Some(now),
        Some(t) => match parse_hm(&t) {
            Some((h, m)) => {
                let sites = st.store.list_sites(&user.actor).await?;
                let clock = sites.iter().find(|x| x.id == s.site_id).map_or_else(SiteClock::utc, SiteClock::for_site);
                Some(clock.at_local(clock.today(now), h, m))
            }
            None => {
                errors.add("onset", "enter the time it started, e.g. 10:40, or leave it empty for now");
                None
            }
        },
    };
    if let (Some(severity), Some(onset)) = (severity, onset) {
        let new = NewAdverseEvent {
            description: form.get("description").trim().into(),
            severity,
            serious: form.checked("serious"),
            action_taken: form.get("action_taken").trim().into(),
            outcome: form.get("ae_outcome").trim().into(),
            onset_at: onset,
        };
        match st.store.record_adverse_event(&user.actor, s.patient_id, Some(s.id), new).await {
            Ok(_) => return done(&st, &user, id, "#observations").await,
            Err(e) => {
                errors.absorb(e)?;
                errors.rename("outcome", "ae_outcome");
                errors.rename("onset_at", "onset");
            }
        }
    }
    rejected(&st, &user, id, form, errors, "adverse_event").await
}

pub async fn post_acknowledge(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, alert)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    match st.store.acknowledge_alert(&user.actor, AlertId(alert), form.opt("note")).await {
        Ok(_) => done(&st, &user, id, "#alerts").await,
        Err(StoreError::Conflict(msg)) => {
            errors.add_general(super::page::capitalise(&msg));
            rejected(&st, &user, id, form, errors, "alerts").await
        }
        Err(e) => {
            errors.absorb(e)?;
            rejected(&st, &user, id, form, errors, "alerts").await
        }
    }
}

/// Records the dose given in the controlled-substance ledger (needs a recent password
/// re-entry, as every ledger entry does). The volume (vials) or devices (nasal spray)
/// default to what the dose takes.
pub async fn post_ledger(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let s = st.store.get_session(&user.actor, SessionId(id)).await?;
    let lots = st.store.list_lots(&user.actor, Some(s.site_id), false).await?;
    let lot = form.get("ledger_lot").parse::<i64>().ok().and_then(|l| lots.into_iter().find(|x| x.id.0 == l));
    if lot.is_none() {
        errors.add("ledger_lot", "choose the lot the dose was drawn from");
    }
    let dose = form.number("ledger_dose_mg", &mut errors);
    if dose.is_none() && !errors.has("ledger_dose_mg") {
        errors.add("ledger_dose_mg", "enter the dose given in mg");
    }
    let volume = form.number("ledger_volume_ml", &mut errors);
    let devices = form.integer("ledger_devices", &mut errors);
    if let (Some(lot), Some(dose), false) = (lot, dose, errors.any()) {
        let (volume_ml, devices_used) = match lot.product.presentation {
            Presentation::Vial { concentration_mg_per_ml, .. } => (
                Some(Millilitres(volume.unwrap_or_else(|| (dose / concentration_mg_per_ml.0 * 100.0).round() / 100.0))),
                None,
            ),
            Presentation::NasalSprayDevice { mg_per_device, .. } => {
                (None, Some(devices.map_or_else(|| (dose / mg_per_device.0).ceil() as u32, |d| d.max(0) as u32)))
            }
        };
        let new = NewAdministration {
            lot_id: LotId(lot.id.0),
            session_id: s.id,
            dose_mg: Milligrams(dose),
            volume_ml,
            devices_used,
            administered_at: s.dose_started_at,
            ended_at: s.monitoring_started_at,
            ordering_prescriber: None,
            corrects: None,
        };
        match st.store.record_administration(&user.actor, user.reauthenticated_at, new).await {
            Ok(_) => return done(&st, &user, id, "#ledger").await,
            Err(StoreError::Forbidden(msg)) => errors.add_general(super::page::capitalise(&msg)),
            Err(e) => {
                errors.absorb(e)?;
                for (from, to) in [
                    ("lot_id", "ledger_lot"),
                    ("dose_mg", "ledger_dose_mg"),
                    ("volume_ml", "ledger_volume_ml"),
                    ("devices_used", "ledger_devices"),
                ] {
                    errors.rename(from, to);
                }
            }
        }
    }
    rejected(&st, &user, id, form, errors, "ledger").await
}

pub async fn post_note(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    match st.store.set_session_note(&user.actor, SessionId(id), form.get("note").to_string()).await {
        Ok(_) => done(&st, &user, id, "#note").await,
        Err(e) => {
            errors.absorb(e)?;
            rejected(&st, &user, id, form, errors, "note").await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checklists_load_and_cover_every_route() {
        for r in Route::ALL {
            assert!(!discharge_checklist(r).is_empty(), "{r:?}");
            assert!(!pre_dose_checklist(r).is_empty(), "{r:?}");
        }
        assert!(pre_dose_checklist(Route::IntranasalEsketamine).iter().any(|i| i.code == "nasal_products"));
        assert!(checklists().pre_dose.iter().chain(&checklists().discharge).all(|i| !i.source.trim().is_empty()));
    }

    #[test]
    fn refusals_lose_their_api_pointers_on_the_screen() {
        assert_eq!(
            without_links("discharge refused: a [record it: /sessions/1#moaas]; b [set it: PUT /x]; c [other]"),
            "discharge refused: a; b; c [other]"
        );
    }

    /// Abnormal readings are highlighted by the thresholds the alerts use, read
    /// from the rules (here the built-in ones), not from numbers of the screen's own.
    #[test]
    fn the_vitals_table_flags_what_the_safety_rules_flag() {
        let rules = SafetyRules::builtin();
        let reading = |id: i64, mins: Option<i64>, sys: f64, dia: f64, spo2: f64| VitalsRecord {
            id: keta_domain::ids::RecordId(id),
            session_id: SessionId(1),
            taken_at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(id),
            minutes_since_dose: mins,
            vitals: VitalSigns {
                systolic_mmhg: Some(Mmhg(sys)),
                diastolic_mmhg: Some(Mmhg(dia)),
                spo2_pct: Some(Percent(spo2)),
                ..VitalSigns::default()
            },
            source: VitalsSource::Manual,
        };
        let (sys_guide, dia_guide) =
            (rules.pre_dose_bp.systolic_above_mmhg.0, rules.pre_dose_bp.diastolic_above_mmhg.0);
        let floor = rules.spo2_floor.below_pct.0;
        let flags = vitals_flags(
            rules,
            &[
                // At the label's pre-dose guide exactly: not above it.
                reading(1, None, sys_guide, dia_guide, floor),
                // Above the pre-dose guide.
                reading(2, Some(-5), sys_guide + 1.0, dia_guide, floor),
                // After the dose: back to the baseline, SpO2 under the floor.
                reading(3, Some(10), sys_guide, dia_guide, floor - 1.0),
            ],
        );
        assert_eq!(flags[0], (String::new(), String::new()));
        assert!(flags[1].0.contains("label guide") && flags[1].1.is_empty(), "{flags:?}");
        assert!(flags[2].0.is_empty() && flags[2].1.contains("below the floor"), "{flags:?}");
    }

    #[test]
    fn clock_format() {
        assert_eq!(hms(3725), "1:02:05");
        assert_eq!(hms(-65), "-0:01:05");
    }
}
