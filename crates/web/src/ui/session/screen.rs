//! The session screen itself: everything it shows, read in one pass.

use super::*;
use keta_domain::course::Course;
use keta_domain::patient::Patient;
use keta_domain::records::{Alert, ObservationRecord, QuestionnaireResponse};
use keta_domain::session::{AdverseEvent, SessionDecision, TreatmentSession};
use keta_domain::site::{Chair, Site};
use time::OffsetDateTime;

#[derive(Template)]
#[template(path = "session/session.html")]
pub(super) struct SessionPage {
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
    order: Option<crate::ui::calendar::OrderPanel>,
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
    sign: NoteSigning,
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

/// Builds the whole screen: the session and everything recorded in it, read in one pass.
/// `failed` names the form a refusal came from (it keeps what was typed); `below` is the
/// concentration panel's `?below=` level.
pub(super) async fn session_page(
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
    let SessionRecords {
        patient,
        course,
        vitals,
        obs,
        alerts,
        patient_alerts,
        responses,
        aes,
        sites,
        chairs,
        rules,
        decisions,
        note: signed_note,
    } = read_records(st, user, &s).await?;
    let rules: &SafetyRules = &rules;
    let clock = sites.iter().find(|x| x.id == s.site_id).map_or_else(SiteClock::utc, SiteClock::for_site);
    let order = crate::ui::calendar::order_panel(st, user, course.id, patient.latest_weight_kg).await?;
    // The dose given starts from the order for the patient's latest weight; what was typed
    // in a refused form stays as typed.
    if let Some(mg) = order.as_ref().and_then(|o| o.dose_mg).filter(|_| failed != "ledger")
        && form.get("ledger_dose_mg").is_empty()
    {
        form.set("ledger_dose_mg", keta_domain::dosing::fmt_num(mg));
    }
    let now = st.store.now();
    let clocks = clock_views(rules, &s, &vitals, now);
    let (open_alerts, acknowledged) = alert_views(&alerts, &patient_alerts, id, &clock);
    // The form starts empty (a stale value must never be re-recorded by a tap); the last
    // reading of each vital and its age are shown beside its box instead.
    let vitals_form = if failed == "vitals" { form.clone() } else { FormData::empty() };
    let blockers = if s.state == SessionState::Monitoring { blocker_views(st, user, &s).await? } else { vec![] };
    let (bp_reading, bp_reading_id) = decision_reading(&blockers, &vitals, &clock);
    // Urgent alerts for the patient no override in this session covers hold the dose.
    let covered: Vec<AlertId> = decisions.iter().filter_map(|d| d.alert_id).collect();
    let urgent_open: Vec<String> = patient_alerts
        .iter()
        .filter(|a| a.level == AlertLevel::Urgent && a.acknowledged_at.is_none() && !covered.contains(&a.id))
        .map(|a| a.message.clone())
        .collect();
    let observed = observation_rows(&obs, rules, &clock);
    let ledger = ledger_panel(st, user, &s, &clock).await?;
    let pk = pk_view(st, user, &s, &course, &patient, &obs, &responses, &sites, &clock, below).await?;
    let chair = s
        .chair_id
        .and_then(|c| chairs.iter().find(|x| x.id == c))
        .map_or_else(|| "No chair".to_string(), |c| c.name.clone());
    Ok(SessionPage {
        chrome: Chrome::new(user, page_title(open_alerts.len(), &patient.display_name()), Area::Today),
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
        elapsed_seconds: clocks.elapsed,
        elapsed_label: hms(clocks.elapsed),
        dose_started_at: s.dose_started_at.map(|d| clock.hm(d)).unwrap_or_default(),
        minimum: clocks.minimum,
        minimum_source: clocks.minimum_source,
        minimum_remaining: clocks.minimum_remaining,
        order,
        timers: clocks.timers,
        open_alerts,
        acknowledged,
        vitals: vitals_rows(rules, &vitals, &clock),
        vitals_form,
        last: last_readings(&vitals, now),
        pre_dose: checks(&form, pre_dose_checklist(s.route), "predose"),
        pre_dose_vitals: vitals
            .iter()
            .any(|v| v.vitals.systolic_mmhg.is_some() && v.minutes_since_dose.is_none_or(|m| m < 0)),
        discharge: checks(&form, discharge_checklist(s.route), "discharge"),
        settings_missing: blockers.iter().any(|b| b.href.ends_with("/discharge-settings")),
        blockers,
        other_day: other_day(&clock, s.scheduled_for, now),
        urgent_open,
        can_decide: actor.can(keta_domain::access::Permission::PlanTreatment),
        bp_reading,
        bp_reading_id,
        decisions: decision_rows(&decisions, &clock),
        dissociation_measures: keta_domain::discharge::DischargeRules::builtin().dissociation.measures.clone(),
        moaas_levels: moaas_levels(),
        moaas: observed.moaas,
        cadss_items: cadss_items(),
        cadss: cadss_rows(&responses, id, &clock),
        symptoms: rules
            .symptoms()
            .iter()
            .map(|x| Pick { value: x.code.clone(), label: x.label.clone(), emergency: x.emergency })
            .collect(),
        side_effects: observed.side_effects,
        interventions: observed.interventions,
        adverse_events: adverse_event_rows(&aes, id, &clock),
        note: s.note.clone().unwrap_or_default(),
        sign: note_signing(st, user, &signed_note, &clock, id),
        form,
        errors,
        failed,
        stopped_reason: s.stop_reason.clone().unwrap_or_default(),
        ledger: ledger.shown,
        ledger_lots: ledger.lots,
        ledger_doses: ledger.doses,
        ledger_vials: matches!(s.route, Route::IvRacemic | Route::ImRacemic),
        ledger_fresh: crate::ui::ledger::reauthenticated(st, user),
        ledger_reauth_href: crate::ui::ledger::reauth_href(&format!("/sessions/{}#ledger", id.0)),
        pk,
    })
}

/// Everything recorded about the session and its patient that the screen shows.
struct SessionRecords {
    patient: Patient,
    course: Course,
    vitals: Vec<VitalsRecord>,
    obs: Vec<ObservationRecord>,
    alerts: Vec<Alert>,
    patient_alerts: Vec<Alert>,
    responses: Vec<QuestionnaireResponse>,
    aes: Vec<AdverseEvent>,
    sites: Vec<Site>,
    chairs: Vec<Chair>,
    /// The rules in force at this site (the medical director may have replaced the built-in ones).
    rules: std::sync::Arc<SafetyRules>,
    decisions: Vec<SessionDecision>,
    /// The note's signatures (signing locks it).
    note: keta_domain::notes::SignedNote,
}

/// The note's signatures, and whether this user may sign it now.
pub(super) struct NoteSigning {
    signed: bool,
    /// "Demo Nurse (Author) at 2026-12-07 10:40"
    signatures: Vec<String>,
    can: bool,
    /// The password was re-entered recently enough to sign.
    fresh: bool,
    reauth_href: String,
}

fn note_signing(
    st: &AppState,
    user: &CurrentUser,
    note: &keta_domain::notes::SignedNote,
    clock: &SiteClock,
    id: SessionId,
) -> NoteSigning {
    NoteSigning {
        signed: note.signed,
        signatures: note
            .signatures
            .iter()
            .map(|g| format!("{} ({}) at {}", g.printed_name, g.meaning.label(), clock.datetime(g.signed_at)))
            .collect(),
        can: user.actor.can(keta_domain::access::Permission::SignNotes),
        fresh: crate::ui::ledger::reauthenticated(st, user),
        reauth_href: crate::ui::ledger::reauth_href(&format!("/sessions/{}#note", id.0)),
    }
}

/// The session's records, read concurrently.
async fn read_records(st: &AppState, user: &CurrentUser, s: &TreatmentSession) -> UiResult<SessionRecords> {
    let (actor, id) = (&user.actor, s.id);
    let (patient, course, vitals, obs, alerts, patient_alerts, responses, aes, sites, chairs, rules, decisions, note) = tokio::join!(
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
        st.store.get_signed_note(actor, id),
    );
    Ok(SessionRecords {
        patient: patient?,
        course: course?,
        vitals: vitals?,
        obs: obs?,
        alerts: alerts?,
        patient_alerts: patient_alerts?,
        responses: responses?,
        aes: aes?,
        sites: sites?,
        chairs: chairs?,
        rules: rules?.0,
        decisions: decisions?,
        note: note?,
    })
}

/// The day a session scheduled for another day than today was scheduled for; empty when today.
fn other_day(clock: &SiteClock, scheduled_for: OffsetDateTime, now: OffsetDateTime) -> String {
    if clock.local(scheduled_for).date() == clock.today(now) { String::new() } else { clock.date(scheduled_for) }
}

/// "Session · Ana Diaz", or "2 alerts · Session · Ana Diaz" while alerts are open.
fn page_title(open_alerts: usize, patient: &str) -> String {
    if open_alerts == 0 {
        format!("Session · {patient}")
    } else {
        format!("{open_alerts} alert{} · Session · {patient}", if open_alerts == 1 { "" } else { "s" })
    }
}

/// The running clock from dose start, the checks the rules time and the minimum monitoring.
struct ClockViews {
    elapsed: i64,
    timers: Vec<TimerView>,
    minimum: String,
    minimum_source: String,
    minimum_remaining: i64,
}

fn clock_views(rules: &SafetyRules, s: &TreatmentSession, vitals: &[VitalsRecord], now: OffsetDateTime) -> ClockViews {
    let bp_minutes: Vec<i64> =
        vitals.iter().filter(|v| v.vitals.systolic_mmhg.is_some()).filter_map(|v| v.minutes_since_dose).collect();
    let t = timing(rules, &s.into(), &bp_minutes, now);
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
    ClockViews {
        elapsed,
        timers,
        minimum: minutes_label(min_rule.minutes.0),
        minimum_source: min_rule.source.clone(),
        minimum_remaining: if active { min_rule.minutes.0 * 60 - elapsed } else { 0 },
    }
}

/// The open alerts (this session's, then the patient's raised elsewhere, e.g. a questionnaire
/// safety item) and this session's acknowledged ones with who, when and what was done.
fn alert_views(
    alerts: &[Alert],
    patient_alerts: &[Alert],
    id: SessionId,
    clock: &SiteClock,
) -> (Vec<AlertView>, Vec<AckView>) {
    let mut open: Vec<AlertView> =
        alerts.iter().filter(|a| a.acknowledged_at.is_none()).map(|a| alert_view(a, clock)).collect();
    for a in patient_alerts.iter().filter(|a| a.session_id != Some(id)) {
        open.push(alert_view(a, clock));
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
    (open, acknowledged)
}

/// The last reading of each vital and its age, shown beside the empty entry boxes.
fn last_readings(vitals: &[VitalsRecord], now: OffsetDateTime) -> LastReadings {
    let last_of = |label: &str, f: &dyn Fn(&VitalSigns) -> Option<String>| -> String {
        vitals
            .iter()
            .rev()
            .find_map(|v| f(&v.vitals).map(|x| (x, v.taken_at)))
            .map_or_else(String::new, |(x, at)| format!("{label} {x}, {}", age_label((now - at).whole_minutes())))
    };
    LastReadings {
        systolic_mmhg: last_of("BP", &|v| {
            v.blood_pressure().map(|(a, b)| format!("{}/{}", fmt_num(Some(a.0)), fmt_num(Some(b.0))))
        }),
        diastolic_mmhg: String::new(),
        heart_rate_bpm: last_of("HR", &|v| v.heart_rate_bpm.map(|x| fmt_num(Some(x.0)))),
        spo2_pct: last_of("SpO₂", &|v| v.spo2_pct.map(|x| format!("{}%", fmt_num(Some(x.0))))),
        resp_rate_per_min: last_of("RR", &|v| v.resp_rate_per_min.map(|x| fmt_num(Some(x.0)))),
    }
}

/// A checklist with the items ticked in `form`'s field `name`.
fn checks(form: &FormData, items: Vec<&ChecklistItem>, name: &str) -> Vec<CheckView> {
    items
        .into_iter()
        .map(|i| CheckView {
            code: i.code.clone(),
            label: i.label.clone(),
            source: i.source.clone(),
            checked: form.has_value(name, &i.code),
        })
        .collect()
}

/// What discharge still needs, each with a link to where it is recorded.
async fn blocker_views(st: &AppState, user: &CurrentUser, s: &TreatmentSession) -> UiResult<Vec<BlockerView>> {
    Ok(st
        .store
        .discharge_blockers(&user.actor, s.id)
        .await?
        .into_iter()
        .map(|b| BlockerView {
            code: b.code,
            message: crate::ui::page::capitalise(&b.message),
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
        .collect())
}

/// The latest post-dose BP reading the thresholds flag: what a prescriber's decision names.
fn decision_reading(blockers: &[BlockerView], vitals: &[VitalsRecord], clock: &SiteClock) -> (String, i64) {
    if !blockers.iter().any(|b| b.code == "bp_above_threshold") {
        return (String::new(), 0);
    }
    vitals
        .iter()
        .rev()
        .find(|v| v.vitals.blood_pressure().is_some() && v.minutes_since_dose.is_some_and(|m| m >= 0))
        .map_or((String::new(), 0), |v| {
            let (a, b) = v.vitals.blood_pressure().unwrap_or((Mmhg(0.0), Mmhg(0.0)));
            (format!("BP {}/{} mmHg taken at {}", fmt_num(Some(a.0)), fmt_num(Some(b.0)), clock.hm(v.taken_at)), v.id.0)
        })
}

fn decision_rows(decisions: &[SessionDecision], clock: &SiteClock) -> Vec<ObsRow> {
    decisions
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
        .collect()
}

fn moaas_levels() -> Vec<Pick> {
    let moaas = catalog().get("moaas");
    (0..=5)
        .rev()
        .map(|v| Pick {
            value: v.to_string(),
            label: moaas.and_then(|i| i.band_for(v)).map_or_else(String::new, |b| b.label.clone()),
            emergency: v == 0,
        })
        .collect()
}

/// The session's observations, by kind.
struct ObservationRows {
    moaas: Vec<ObsRow>,
    side_effects: Vec<ObsRow>,
    interventions: Vec<ObsRow>,
}

fn observation_rows(obs: &[ObservationRecord], rules: &SafetyRules, clock: &SiteClock) -> ObservationRows {
    let mut rows = ObservationRows { moaas: Vec::new(), side_effects: Vec::new(), interventions: Vec::new() };
    for o in obs {
        let time = clock.hm(o.observed_at);
        match &o.body {
            ObservationBody::Moaas { score } => rows.moaas.push(ObsRow { time, text: format!("MOAA/S {score}") }),
            ObservationBody::SideEffect { symptom, note } => {
                let label =
                    rules.symptoms().iter().find(|x| &x.code == symptom).map_or(symptom.as_str(), |x| x.label.as_str());
                rows.side_effects.push(ObsRow {
                    time,
                    text: match note {
                        Some(n) => format!("{label}: {n}"),
                        None => label.to_string(),
                    },
                })
            }
            ObservationBody::Intervention { drug, dose_mg, route } => rows
                .interventions
                .push(ObsRow { time, text: format!("{drug} {} mg {route}", fmt_num(Some(dose_mg.0))) }),
        }
    }
    rows
}

fn cadss_rows(responses: &[QuestionnaireResponse], id: SessionId, clock: &SiteClock) -> Vec<ObsRow> {
    responses
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
        .collect()
}

fn cadss_items() -> Vec<CadssItem> {
    catalog()
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
        .unwrap_or_default()
}

/// The controlled-substance ledger panel: the dose given must be recorded before discharge.
struct LedgerPanel {
    shown: bool,
    lots: Vec<LotChoice>,
    doses: Vec<ObsRow>,
}

async fn ledger_panel(
    st: &AppState,
    user: &CurrentUser,
    s: &TreatmentSession,
    clock: &SiteClock,
) -> UiResult<LedgerPanel> {
    let actor = &user.actor;
    let shown = s.dose_started_at.is_some() && actor.can(keta_domain::access::Permission::ViewLedger);
    if !shown {
        return Ok(LedgerPanel { shown, lots: Vec::new(), doses: Vec::new() });
    }
    let (lots, entries) = tokio::join!(
        st.store.list_lots(actor, Some(s.site_id), false),
        st.store.list_ledger_entries(
            actor,
            keta_store::ledger::LedgerQuery {
                session_id: Some(s.id),
                kind: Some(EntryKind::Administration),
                limit: 50,
                ..Default::default()
            }
        ),
    );
    let lots = lots?
        .into_iter()
        .filter(|l| lot_fits(s.route, l))
        .map(|l| LotChoice { value: l.id.to_string(), label: lot_label(&l) })
        .collect();
    let doses = entries?
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
    Ok(LedgerPanel { shown, lots, doses })
}

/// The vitals table, newest first, with what the safety rules flag.
fn vitals_rows(rules: &SafetyRules, vitals: &[VitalsRecord], clock: &SiteClock) -> Vec<VitalsRow> {
    vitals
        .iter()
        .zip(vitals_flags(rules, vitals))
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
        .collect()
}

fn adverse_event_rows(aes: &[AdverseEvent], id: SessionId, clock: &SiteClock) -> Vec<ObsRow> {
    aes.iter()
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
        .collect()
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
