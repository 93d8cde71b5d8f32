//! Today: the day's schedule and the live board of every chair at the user's sites.
//!
//! The board shows, per chair, the patient, route, phase of the session, minutes since
//! the dose started, the next timed check the safety rules require (e.g. the 40-minute
//! BP re-check) and open alerts. It updates over server-sent events: the stream sends a
//! freshly rendered board whenever a write is published ([`super::live`]) and every 30 s
//! (minutes tick on), only when the HTML changed.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::future::join_all;
use futures_util::stream::{self, Stream, StreamExt};
use keta_domain::access::Permission;
use keta_domain::alerts::SafetyRules;
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::patient::Patient;
use keta_domain::records::{Alert, AlertLevel, VitalsRecord};
use keta_domain::schedule::ScheduledSession;
use keta_domain::session::SessionState;
use keta_domain::site::{Chair, Site};
use keta_store::alerts::AlertEscalation;
use time::OffsetDateTime;

use super::clock::{SiteClock, date_label, minutes_label};
use super::page::{Area, Chrome, UiResult, render};
use super::user_sites;
use crate::AppState;
use crate::auth::CurrentUser;

pub(crate) struct AlertLine {
    pub level: &'static str,
    pub message: String,
    /// The message cut to fit a chair card.
    pub short: String,
    pub patient: String,
    pub href: String,
    pub raised: String,
    /// "escalated at 14:20 after 15 min unacknowledged to dr.demo" when nobody acknowledged it in time.
    pub escalated: Option<String>,
}

pub(crate) struct ChairCard {
    pub chair: String,
    /// `free`, `scheduled` or `active`.
    pub status: &'static str,
    pub session_href: String,
    pub patient: String,
    pub route: &'static str,
    pub phase: &'static str,
    pub phase_class: &'static str,
    pub scheduled_at: String,
    pub since_dose: Option<String>,
    pub monitoring: Option<String>,
    pub monitoring_done: bool,
    pub next_check: Option<String>,
    pub next_check_overdue: bool,
    pub last_vitals: Option<String>,
    pub next_up: Option<String>,
    pub alerts: Vec<AlertLine>,
    /// Open alerts beyond the two shown on the card.
    pub more_alerts: usize,
}

pub(crate) struct Board {
    pub site_id: i64,
    pub site_name: String,
    pub updated_at: String,
    pub cards: Vec<ChairCard>,
    /// Open alerts not shown on a chair (questionnaire safety items, sessions elsewhere).
    pub other_alerts: Vec<AlertLine>,
    pub clinical: bool,
    /// Urgent alerts nobody acknowledged in time, at the top of the board.
    pub escalated: Vec<AlertLine>,
    /// Their ids, space-separated: the board's script sounds once for each new one.
    pub escalated_ids: String,
    /// The site sounds an alarm for escalations (each screen must allow sound once).
    pub sound: bool,
    /// The clinic's escalation rule, or that it is unset.
    pub escalation_rule: String,
}

pub(crate) struct ScheduleRow {
    pub time: String,
    pub patient: String,
    pub patient_href: String,
    pub route: &'static str,
    pub sequence: u32,
    pub chair: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub session_href: String,
    pub session_id: i64,
    /// Booked and not yet arrived: the front desk can mark the arrival from here.
    pub arrivable: bool,
}

pub(crate) struct SiteToday {
    pub board: Board,
    pub schedule: Vec<ScheduleRow>,
    pub site_id: i64,
    /// Opens the chart and the session screen (both need ViewClinical): without it the
    /// schedule names patients without linking to pages that would refuse.
    pub clinical: bool,
    /// Marks arrivals (the calendar's scheduling permission): the front desk checks a
    /// patient in from the schedule, which puts them on the board.
    pub can_arrive: bool,
    /// For the arrival forms (also rendered into live updates, which have no page chrome).
    pub csrf_token: String,
}

#[derive(Template)]
#[template(path = "today/today.html")]
struct TodayPage {
    chrome: Chrome,
    date: String,
    sites: Vec<SiteToday>,
}

#[derive(Template)]
#[template(path = "today/board_partial.html")]
struct BoardPartial<'a> {
    s: &'a SiteToday,
}

#[derive(Template)]
#[template(path = "today/schedule_partial.html")]
struct SchedulePartial<'a> {
    s: &'a SiteToday,
}

pub fn state_label(s: SessionState) -> &'static str {
    match s {
        SessionState::Scheduled => "Scheduled",
        SessionState::CheckedIn => "Checked in",
        SessionState::PreDoseChecks => "Pre-dose checks",
        SessionState::Dosing => "Dosing",
        SessionState::Monitoring => "Monitoring",
        SessionState::Discharged => "Discharged",
        SessionState::Stopped => "Stopped",
    }
}

pub fn state_class(s: SessionState) -> &'static str {
    match s {
        SessionState::Scheduled => "st-scheduled",
        SessionState::CheckedIn | SessionState::PreDoseChecks => "st-checkin",
        SessionState::Dosing => "st-dosing",
        SessionState::Monitoring => "st-monitoring",
        SessionState::Discharged => "st-done",
        SessionState::Stopped => "st-stopped",
    }
}

fn is_in_chair(s: SessionState) -> bool {
    matches!(s, SessionState::CheckedIn | SessionState::PreDoseChecks | SessionState::Dosing | SessionState::Monitoring)
}

/// The next timed check and minimum-monitoring progress for a session in the chair.
pub(crate) struct Timing {
    pub since_dose_min: Option<i64>,
    pub next_check: Option<keta_domain::alerts::DueCheck>,
    pub minimum_min: i64,
}

pub(crate) fn timing(rules: &SafetyRules, s: &ScheduledSession, bp_minutes: &[i64], now: OffsetDateTime) -> Timing {
    let since = s.minutes_since_dose(now).filter(|_| s.state.dose_started() && s.state != SessionState::Discharged);
    let next_check = since.and_then(|m| rules.due_checks(s.route, m, bp_minutes).into_iter().next());
    Timing { since_dose_min: since, next_check, minimum_min: rules.minimum_monitoring(s.route).0 }
}

/// The text cut at a word boundary near `max` characters, with an ellipsis.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let cut = cut.rfind(' ').map_or(cut.as_str(), |i| &cut[..i]);
    format!("{}…", cut.trim_end_matches([',', ';', ':', ' ']))
}

/// "BP 128/82 · HR 74 · SpO₂ 98 %"
pub(crate) fn vitals_summary(v: &keta_domain::vitals::VitalSigns) -> String {
    let n = |x: f64| if x.fract() == 0.0 { format!("{}", x as i64) } else { format!("{x:.1}") };
    let mut parts = Vec::new();
    if let Some((s, d)) = v.blood_pressure() {
        parts.push(format!("BP {}/{}", n(s.0), n(d.0)));
    }
    if let Some(h) = v.heart_rate_bpm {
        parts.push(format!("HR {}", n(h.0)));
    }
    if let Some(o) = v.spo2_pct {
        parts.push(format!("SpO₂ {} %", n(o.0)));
    }
    if let Some(r) = v.resp_rate_per_min {
        parts.push(format!("RR {}", n(r.0)));
    }
    parts.join(" · ")
}

pub(crate) fn alert_line(a: &Alert, names: &HashMap<PatientId, Patient>, clock: &SiteClock) -> AlertLine {
    AlertLine {
        level: match a.level {
            AlertLevel::Urgent => "urgent",
            AlertLevel::Warning => "warning",
        },
        message: a.message.clone(),
        short: shorten(&a.message, 90),
        patient: names.get(&a.patient_id).map_or_else(|| format!("Patient {}", a.patient_id), Patient::display_name),
        href: match a.session_id {
            Some(s) => format!("/sessions/{s}"),
            None => format!("/patients/{}#alerts", a.patient_id),
        },
        raised: clock.hm(a.raised_at),
        escalated: None,
    }
}

/// "escalated at 14:20 after 15 min unacknowledged to dr.demo".
fn escalated_text(e: &AlertEscalation, clock: &SiteClock) -> String {
    let to = match (&e.notified_user, e.delivered) {
        (Some(who), Some(false)) => format!(" to {who} (not delivered)"),
        (Some(who), _) => format!(" to {who}"),
        (None, _) => " (nobody on duty to send it to)".into(),
    };
    format!("escalated at {} after {} min unacknowledged{to}", clock.hm(e.escalated_at), e.after_minutes)
}

/// The latest reading of each session in a chair ("BP 128/82 … at 09:40"), by session id,
/// from the board's snapshot (which carries readings only for an actor who may see them).
fn last_vitals_in_chairs(
    sessions: &[ScheduledSession],
    latest: &HashMap<SessionId, VitalsRecord>,
    clock: &SiteClock,
) -> HashMap<i64, String> {
    sessions
        .iter()
        .filter(|s| is_in_chair(s.state))
        .filter_map(|s| {
            let r = latest.get(&s.id)?;
            Some((s.id.0, format!("{} at {}", vitals_summary(&r.vitals), clock.hm(r.taken_at))))
        })
        .collect()
}

impl ChairCard {
    /// A chair nobody is in, with who is next (if anyone).
    fn free(chair: String, next_up: Option<String>) -> Self {
        ChairCard {
            chair,
            status: "free",
            session_href: String::new(),
            patient: String::new(),
            route: "",
            phase: "Free",
            phase_class: "st-free",
            scheduled_at: String::new(),
            since_dose: None,
            monitoring: None,
            monitoring_done: false,
            next_check: None,
            next_check_overdue: false,
            last_vitals: None,
            next_up,
            alerts: vec![],
            more_alerts: 0,
        }
    }
}

/// One card a chair: who is in it (every one, if the records say more than one) or who is next,
/// then a card for each session in a chair with no chair recorded.
fn chair_cards<'a>(
    chairs: &[Chair],
    sessions: &'a [ScheduledSession],
    mut card_for: impl FnMut(String, Option<&'a ScheduledSession>, Option<&'a ScheduledSession>) -> ChairCard,
) -> Vec<ChairCard> {
    let mut cards = Vec::new();
    for chair in chairs {
        let here: Vec<&ScheduledSession> = sessions.iter().filter(|s| s.chair_id == Some(chair.id)).collect();
        let active: Vec<&ScheduledSession> = here.iter().copied().filter(|s| is_in_chair(s.state)).collect();
        let upcoming: Vec<&ScheduledSession> =
            here.iter().copied().filter(|s| s.state == SessionState::Scheduled).collect();
        if active.is_empty() {
            cards.push(card_for(chair.name.clone(), upcoming.first().copied(), upcoming.get(1).copied()));
        } else {
            // Normally one patient per chair; if the records say more, show every one.
            for (i, a) in active.iter().enumerate() {
                cards.push(card_for(
                    chair.name.clone(),
                    Some(a),
                    if i == 0 { upcoming.first().copied() } else { None },
                ));
            }
        }
    }
    // In the chair but with no chair recorded: still on the board.
    for s in sessions
        .iter()
        .filter(|s| is_in_chair(s.state) && s.chair_id.is_none_or(|c| !chairs.iter().any(|ch| ch.id == c)))
    {
        cards.push(card_for("No chair".into(), Some(s), None));
    }
    cards
}

/// The next timed check: "<label>: in 5 min (at 15 min)", "…: due now (15 min)" or "…: overdue (due at 15 min)".
fn next_check_label(t: &Timing) -> Option<String> {
    t.next_check.as_ref().map(|c| {
        let m = t.since_dose_min.unwrap_or(0);
        if c.overdue {
            format!("{}: overdue (due at {} min)", c.label, c.due_at_minutes)
        } else if m >= c.due_at_minutes {
            format!("{}: due now ({} min)", c.label, c.due_at_minutes)
        } else {
            format!("{}: in {} min (at {} min)", c.label, c.due_at_minutes - m, c.due_at_minutes)
        }
    })
}

fn escalation_rule(after_minutes: Option<u32>) -> String {
    match after_minutes {
        Some(m) => format!("Urgent alerts not acknowledged within {m} min are escalated to the prescriber on duty."),
        None => "Escalation of unacknowledged urgent alerts: not set by the clinic (no time set).".into(),
    }
}

/// Everything Today shows for one site, read fresh.
pub(crate) async fn build_site(
    st: &AppState,
    user: &CurrentUser,
    site: &Site,
    now: OffsetDateTime,
) -> UiResult<SiteToday> {
    let actor = &user.actor;
    let clinical = actor.can(Permission::ViewClinical);
    let clock = SiteClock::for_site(site);
    let (from, to) = clock.day_bounds(clock.today(now));
    // One snapshot: a session's state, the chairs and the open alerts as of the same moment
    // (sessions under way from another day included: an occupied chair is never shown free).
    let (board, escalation) =
        tokio::join!(st.store.site_board(actor, site.id, from, to), st.store.board_escalation(actor, site.id));
    let (board, escalation) = (board?, escalation?);
    let (sessions, chairs, alerts) = (board.sessions, board.chairs, board.alerts);
    // The timed BP checks are judged from the reading times the board carries for every role,
    // so the front desk's board flags exactly what the prescriber's does (without the values).
    let bp_minutes: HashMap<i64, Vec<i64>> = board.bp_taken_minutes.into_iter().map(|(id, m)| (id.0, m)).collect();
    let escalated: HashMap<i64, String> =
        escalation.escalated.iter().map(|e| (e.alert_id.0, escalated_text(e, &clock))).collect();

    // The rules in force at this site (the medical director may have replaced the built-in ones).
    let rules = board.rules;

    // Names from the board's own snapshot (one read, not one per patient): the board
    // re-renders every 30 s and on every change, and per-patient reads are each audited.
    let names: HashMap<PatientId, Patient> = board.patients.into_iter().map(|p| (p.id, p)).collect();
    let name_of = |id: PatientId| names.get(&id).map_or_else(|| format!("Patient {id}"), Patient::display_name);
    let line = |a: &Alert| AlertLine { escalated: escalated.get(&a.id.0).cloned(), ..alert_line(a, &names, &clock) };

    // The latest reading of each session in the chair, for clinical staff.
    let last_vitals = last_vitals_in_chairs(&sessions, &board.latest_vitals, &clock);

    let mut shown_alerts: HashSet<i64> = HashSet::new();
    let card_for = |chair: String, s: Option<&ScheduledSession>, next: Option<&ScheduledSession>| -> ChairCard {
        let next_up = next.map(|n| format!("{} {}", clock.hm(n.scheduled_for), name_of(n.patient_id)));
        let Some(s) = s else { return ChairCard::free(chair, next_up) };
        let t = timing(&rules, s, bp_minutes.get(&s.id.0).map_or(&[][..], Vec::as_slice), now);
        let mut card_alerts: Vec<AlertLine> = alerts
            .iter()
            .filter(|a| {
                a.session_id == Some(s.id)
                    || (a.session_id.is_none() && a.patient_id == s.patient_id && is_in_chair(s.state))
            })
            .map(|a| {
                shown_alerts.insert(a.id.0);
                line(a)
            })
            .collect();
        let more_alerts = card_alerts.len().saturating_sub(2);
        card_alerts.truncate(2);
        ChairCard {
            chair,
            status: if is_in_chair(s.state) { "active" } else { "scheduled" },
            session_href: format!("/sessions/{}", s.id),
            patient: name_of(s.patient_id),
            route: s.route.label(),
            phase: state_label(s.state),
            phase_class: state_class(s.state),
            scheduled_at: clock.hm(s.scheduled_for),
            since_dose: t.since_dose_min.map(minutes_label),
            monitoring: t.since_dose_min.map(|m| format!("{} of {} min minimum", m.max(0), t.minimum_min)),
            monitoring_done: t.since_dose_min.is_some_and(|m| m >= t.minimum_min),
            next_check: next_check_label(&t),
            next_check_overdue: t.next_check.as_ref().is_some_and(|c| c.overdue),
            last_vitals: last_vitals.get(&s.id.0).cloned(),
            next_up,
            alerts: card_alerts,
            more_alerts,
        }
    };

    let cards = chair_cards(&chairs, &sessions, card_for);
    // Escalated ones head the board instead (below), not listed twice.
    let other_alerts = alerts
        .iter()
        .filter(|a| !shown_alerts.contains(&a.id.0) && !escalated.contains_key(&a.id.0))
        .map(line)
        .collect();
    // Escalated alerts also head the board, oldest first, whichever chair they belong to.
    let escalated_alerts: Vec<&Alert> =
        escalation.escalated.iter().filter_map(|e| alerts.iter().find(|a| a.id == e.alert_id)).collect();
    let escalation_rule = escalation_rule(escalation.settings.escalate_after_minutes);

    let chair_name: HashMap<i64, &str> = chairs.iter().map(|c| (c.id.0, c.name.as_str())).collect();
    let schedule = sessions
        .iter()
        .map(|s| ScheduleRow {
            time: clock.hm(s.scheduled_for),
            patient: name_of(s.patient_id),
            patient_href: format!("/patients/{}", s.patient_id),
            route: s.route.label(),
            sequence: s.sequence,
            chair: s.chair_id.and_then(|c| chair_name.get(&c.0).map(|n| n.to_string())).unwrap_or_else(|| "—".into()),
            state: state_label(s.state),
            state_class: state_class(s.state),
            session_href: format!("/sessions/{}", s.id),
            session_id: s.id.0,
            arrivable: s.state == SessionState::Scheduled,
        })
        .collect();

    Ok(SiteToday {
        site_id: site.id.0,
        clinical,
        can_arrive: actor.can(Permission::EditDemographics),
        csrf_token: user.csrf_token.clone(),
        board: Board {
            site_id: site.id.0,
            site_name: site.name.clone(),
            updated_at: clock.hm(now),
            cards,
            other_alerts,
            clinical,
            escalated_ids: escalated_alerts.iter().map(|a| a.id.0.to_string()).collect::<Vec<_>>().join(" "),
            // An escalated alert may be from another day: its raised time says which.
            escalated: escalated_alerts
                .into_iter()
                .map(|a| AlertLine { raised: clock.date_at(a.raised_at), ..line(a) })
                .collect(),
            sound: escalation.alert_sound,
            escalation_rule,
        },
        schedule,
    })
}

pub async fn get_today(State(st): State<AppState>, user: CurrentUser) -> UiResult<Response> {
    let now = st.store.now();
    let site_list = user_sites(&st, &user).await?;
    let clock = site_list.first().map_or_else(SiteClock::utc, SiteClock::for_site);
    let built = join_all(site_list.iter().map(|s| build_site(&st, &user, s, now))).await;
    let sites: Vec<SiteToday> = built.into_iter().collect::<UiResult<_>>()?;
    let date = date_label(clock.today(now));
    Ok(render(&TodayPage { chrome: Chrome::new(&user, "Today", Area::Today), date, sites }))
}

struct StreamState {
    st: AppState,
    user: CurrentUser,
    sites: Vec<Site>,
    rx: tokio::sync::broadcast::Receiver<super::live::Change>,
    last: HashMap<String, String>,
    first: bool,
    shutdown: Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    /// Set when the server began shutting down: the stream sends its reconnect hint and ends.
    stopping: bool,
    until: tokio::time::Instant,
    /// Counted in `/metrics` while the stream is open.
    _client: crate::metrics::SseClient,
}

/// Board streams re-rendering at the same moment, at most (see `changed_events`).
const REBUILDS_AT_ONCE: usize = 4;

fn rebuilds() -> &'static tokio::sync::Semaphore {
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(REBUILDS_AT_ONCE);
    &TURNS
}

/// How often the board re-renders with no change (minutes since dose move on).
const TICK: Duration = Duration::from_secs(30);
/// A stream ends after this long and the browser reconnects, so no connection outlives
/// a restart by much.
const STREAM_LIFETIME: Duration = Duration::from_secs(15 * 60);

impl StreamState {
    /// Waits for the next reason to re-render; `false` when the stream should end.
    async fn wait(&mut self) -> bool {
        if self.first {
            self.first = false;
            return true;
        }
        let sites: Vec<SiteId> = self.sites.iter().map(|s| s.id).collect();
        loop {
            tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(None) => return true,
                    Ok(Some(site)) if sites.contains(&site) => return true,
                    Ok(Some(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                },
                _ = tokio::time::sleep(TICK) => return true,
                _ = tokio::time::sleep_until(self.until) => return false,
                _ = &mut self.shutdown => {
                    self.stopping = true;
                    return false;
                }
            }
        }
    }

    async fn changed_events(&mut self) -> Vec<Event> {
        let now = self.st.store.now();
        let mut out = Vec::new();
        for site in &self.sites {
            // Every open board re-renders on a change at its site at once; a few at a time keeps
            // that burst from taking every database connection from the pages people are
            // waiting for (a chart open, a vitals entry).
            let Ok(_turn) = rebuilds().acquire().await else { return out };
            let built = match build_site(&self.st, &self.user, site, now).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = ?e, site = %site.id, "board refresh failed");
                    continue;
                }
            };
            let parts = [
                (format!("board-{}", site.id), BoardPartial { s: &built }.render()),
                (format!("schedule-{}", site.id), SchedulePartial { s: &built }.render()),
            ];
            for (name, html) in parts {
                let Ok(html) = html else { continue };
                if self.last.get(&name) != Some(&html) {
                    out.push(Event::default().event(name.clone()).data(html.clone()));
                    self.last.insert(name, html);
                }
            }
        }
        out
    }
}

/// The live board stream (`text/event-stream`); events are named `board-{site}` and
/// `schedule-{site}` and carry the re-rendered fragment.
pub async fn get_board_events(
    State(st): State<AppState>,
    user: CurrentUser,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let sites = user_sites(&st, &user).await?;
    let shutdown = Box::pin(st.observe.stopping());
    let state = StreamState {
        st,
        user,
        sites,
        rx: super::live::subscribe(),
        last: HashMap::new(),
        first: true,
        shutdown,
        stopping: false,
        _client: crate::metrics::SseClient::open(),
        until: tokio::time::Instant::now() + STREAM_LIFETIME,
    };
    let s = stream::unfold(state, |mut s| async move {
        loop {
            if s.stopping {
                return None;
            }
            if !s.wait().await {
                if s.stopping {
                    // The server is restarting: the browser reconnects (to another instance
                    // behind the load balancer) after the hint instead of its own default.
                    let hint = s.st.observe.reconnect_hint;
                    return Some((vec![Event::default().retry(hint).comment("server restarting")], s));
                }
                return None;
            }
            let events = s.changed_events().await;
            if !events.is_empty() {
                return Some((events, s));
            }
        }
    })
    .flat_map(|events| stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn long_alerts_are_cut_at_a_word() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("At 60 min post-dose, BP 156/100 mmHg is up", 22), "At 60 min post-dose…");
    }
}
