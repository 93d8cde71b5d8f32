//! The chart's "Between sessions" panel (issue 6), the clinician's side of the patient links:
//! safety answers from the phone first, then the relapse watch per course, the check-in links
//! (with "send a check-in now" and "new link"), question-set answers with their flags, and the
//! at-home programme of oral and sublingual courses (pre-dose screens, reconciliation, the
//! supply hold, dispensing).
//!
//! A link's token exists only in the answer to the request that made it: the URL is shown once
//! on the page that answers the POST (never in a redirect, never stored), for staff to hand to a
//! patient in the clinic.
//!
//! The view-model functions here are pure (time and the site's clock are passed in) and tested
//! below; the handlers read through the store, which checks permissions and audits reads.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::access::Permission;
use keta_domain::checkins::{self, CheckInItem, CheckInSchedule, ScheduleOverride, Timing};
use keta_domain::course::{Course, CourseStatus};
use keta_domain::home_dosing::{Reconciliation, ReconciliationIssue};
use keta_domain::ids::{CourseId, PatientId};
use keta_domain::instruments::{self, CompletedBy};
use keta_domain::outcomes::{definition_for, judge_in_chart};
use keta_domain::patient_links::{LinkPurpose, LinkState};
use keta_domain::question_sets::{self, AnswerValue, QuestionKind, QuestionSetFlag};
use keta_domain::records::{Alert, PatientChart};
use keta_domain::relapse::{self, RelapseFlag, ResponseEpisode};
use keta_store::StoreError;
use keta_store::checkins::{CheckinOverview, IssuedLink, LinkEvent, LinkRecord, OverrideInfo, SafetyAnswer};
use keta_store::home::{NewDispense, PreDoseScreen, QuestionSetResponse};
use time::OffsetDateTime;

use super::chart::{Choice, render_chart};
use super::clock::SiteClock;
use super::page::{Errors, FormData, UiResult, see_other};
use crate::AppState;
use crate::auth::CurrentUser;

/// Rows shown before the rest of a history is folded into a `<details>`.
const SHOWN: usize = 5;

// ---------------------------------------------------------------------------------------------
// View models

/// The panel, for a user who may open clinical records.
pub(crate) struct BetweenView {
    /// The site's time zone, named once above the times.
    pub zone: String,
    pub safety: Vec<SafetyRow>,
    pub relapse: Vec<RelapseView>,
    /// Links that can still be answered (open or not yet open), soonest to close first.
    pub links_current: Vec<LinkRow>,
    /// Completed and expired links, newest first.
    pub links_past: Vec<LinkRow>,
    pub question_sets: Vec<QuestionSetRow>,
    pub home: Vec<HomeView>,
    pub can_send: bool,
    pub can_review: bool,
    pub can_dispense: bool,
    /// What "Send a check-in now" offers.
    pub forms: Vec<Choice>,
    pub courses: Vec<Choice>,
    pub send_form: FormData,
    pub send_errors: Errors,
    pub send_checked: bool,
    /// The check-in schedule of each course that has one (not stopped), newest course first.
    pub schedules: Vec<ScheduleView>,
    /// The user may change a course's schedule (prescribers).
    pub can_plan: bool,
}

impl BetweenView {
    /// Open the "send" form (it was just submitted with errors).
    pub fn send_open(&self) -> bool {
        self.send_errors.any()
    }
    /// Completed and expired links beyond the first few (folded away).
    pub fn links_past_shown(&self) -> &[LinkRow] {
        &self.links_past[..self.links_past.len().min(SHOWN)]
    }
    pub fn links_past_folded(&self) -> &[LinkRow] {
        &self.links_past[self.links_past.len().min(SHOWN)..]
    }
    pub fn safety_shown(&self) -> &[SafetyRow] {
        &self.safety[..self.safety.len().min(SHOWN)]
    }
    pub fn safety_folded(&self) -> &[SafetyRow] {
        &self.safety[self.safety.len().min(SHOWN)..]
    }
    pub fn question_sets_shown(&self) -> &[QuestionSetRow] {
        &self.question_sets[..self.question_sets.len().min(SHOWN)]
    }
    pub fn question_sets_folded(&self) -> &[QuestionSetRow] {
        &self.question_sets[self.question_sets.len().min(SHOWN)..]
    }
    /// Flagged question-set answers, for the line above the list.
    pub fn flagged_sets(&self) -> usize {
        self.question_sets.iter().filter(|q| !q.flags.is_empty()).count()
    }
}

pub(crate) struct SafetyRow {
    pub when: String,
    pub instrument: String,
    pub item: String,
    pub answer: String,
    pub alert: String,
    /// The alert is still open (its banner is at the top of the chart).
    pub alert_open: bool,
}

pub(crate) struct RelapseView {
    pub course: String,
    pub instrument: String,
    pub since_last: String,
    pub next_planned: String,
    pub status: &'static str,
    pub status_class: &'static str,
    /// One line per response episode, oldest first.
    pub episodes: Vec<String>,
    pub flag: Option<RelapseFlagView>,
    pub threshold: String,
}

pub(crate) struct RelapseFlagView {
    pub headline: String,
    pub suggestion: String,
}

pub(crate) struct LinkRow {
    pub id: i64,
    pub form: String,
    pub course: String,
    /// A safety answer came in through this link.
    pub safety: bool,
    pub state: &'static str,
    pub state_class: &'static str,
    pub window: String,
    pub first_opened: String,
    /// "Answers saved 14:10, not yet sent": the patient began and chose to finish later.
    pub progress_saved: Option<String>,
    pub reminder: String,
    pub reminder_failed: bool,
    /// "New link" is offered (an open or not-yet-open patient link).
    pub can_reissue: bool,
}

pub(crate) struct QuestionSetRow {
    pub name: String,
    pub when: String,
    /// (css class, message)
    pub flags: Vec<(&'static str, String)>,
    /// (question, answer)
    pub answers: Vec<(String, String)>,
}

pub(crate) struct HomeView {
    pub course_id: i64,
    pub course: String,
    /// Why "may dispense" (first supply, or up to date).
    pub may_dispense_note: &'static str,
    pub hold: Vec<String>,
    pub missing_settings: Option<String>,
    pub dispensed: String,
    pub logged: String,
    pub on_hand: String,
    pub issues: Vec<String>,
    pub missed: String,
    pub screens: Vec<ScreenRow>,
    pub dispense_form: FormData,
    pub dispense_errors: Errors,
}

impl HomeView {
    pub fn may_dispense(&self) -> bool {
        self.hold.is_empty()
    }
    pub fn screens_shown(&self) -> &[ScreenRow] {
        &self.screens[..self.screens.len().min(SHOWN)]
    }
    pub fn screens_folded(&self) -> &[ScreenRow] {
        &self.screens[self.screens.len().min(SHOWN)..]
    }
    pub fn dispense_open(&self) -> bool {
        self.dispense_errors.any()
    }
    /// A field error of the dispense form.
    pub fn dispense_error(&self, field: &str) -> String {
        self.dispense_errors.get(field).unwrap_or_default()
    }
}

pub(crate) struct ScreenRow {
    pub id: i64,
    pub when: String,
    pub outcome: &'static str,
    pub outcome_class: &'static str,
    pub sitter: String,
    pub refusals: Vec<String>,
    pub reviewed: Option<String>,
    pub needs_review: bool,
    pub note: String,
    pub errors: Errors,
}

impl ScreenRow {
    pub fn note_error(&self) -> String {
        self.errors.get("note").unwrap_or_default()
    }
}

/// One course's check-in schedule: what is sent and when, and (for prescribers) the form that
/// changes it for this patient.
pub(crate) struct ScheduleView {
    pub course_id: i64,
    pub course: String,
    /// The clinic's schedule it starts from, e.g. "In-clinic courses (IV, IM, esketamine)".
    pub name: String,
    /// "Changed by … on …: reason" when the patient's schedule differs from the clinic's.
    pub changed: Option<String>,
    /// A stored change that no longer applies to the clinic's schedule.
    pub warning: Option<String>,
    /// The clinic's items (in its order), then items added for this patient.
    pub rows: Vec<ScheduleRow>,
    pub reason: String,
    pub errors: Errors,
    /// Just saved: "Schedule changed" is shown.
    pub saved: bool,
}

impl ScheduleView {
    /// Open the `<details>` (just saved, or submitted with errors).
    pub fn open(&self) -> bool {
        self.saved || self.errors.any()
    }
    /// What the course's schedule sends now.
    pub fn current(&self) -> Vec<&ScheduleRow> {
        self.rows.iter().filter(|r| r.current).collect()
    }
    /// The clinic's items this patient is not sent.
    pub fn removed(&self) -> Vec<&ScheduleRow> {
        self.rows.iter().filter(|r| !r.current).collect()
    }
    pub fn reason_error(&self) -> String {
        self.errors.get("reason").unwrap_or_default()
    }
    /// Messages for the form as a whole, and errors no field shows.
    pub fn general_errors(&self) -> Vec<String> {
        let fields: Vec<String> = self.rows.iter().map(|r| interval_field(&r.id)).collect();
        let mut placed: Vec<&str> = fields.iter().map(String::as_str).collect();
        placed.push("reason");
        let mut out = self.errors.general.clone();
        out.extend(self.errors.unplaced(&placed));
        out
    }
}

pub(crate) struct ScheduleRow {
    pub id: String,
    /// The form's name for staff ("PHQ-9").
    pub form: String,
    /// When, in words (as stored for this patient; the clinic's timing for a removed item).
    pub timing: String,
    /// In the course's schedule now.
    pub current: bool,
    /// The "send" checkbox (the stored state, or the user's input after an error).
    pub send: bool,
    /// For an `every` item: the interval in days as shown in its input.
    pub interval: Option<String>,
    /// Not in the clinic's schedule: added for this patient (through the API).
    pub added: bool,
    pub error: String,
}

impl ScheduleRow {
    pub fn interval_field(&self) -> String {
        interval_field(&self.id)
    }
}

/// The link shown once after "Send a check-in now" or "New link".
pub(crate) struct IssuedView {
    pub url: String,
    pub form: String,
    pub until: String,
    pub delivery: String,
    pub delivered: bool,
    pub reissued: bool,
}

/// What a POST hands back to the chart: the issued link, or a form to show again with errors.
#[derive(Default)]
pub(crate) struct BetweenInput {
    pub issued: Option<IssuedView>,
    pub send: Option<(FormData, Errors)>,
    pub review: Option<(i64, FormData, Errors)>,
    pub dispense: Option<(i64, FormData, Errors)>,
    /// A refusal that belongs to no form on the page (a link or screen that changed meanwhile).
    pub notice: Option<String>,
    /// A course's check-in schedule form: `None` for "just saved", else the input and errors.
    pub schedule: Option<(i64, Option<(FormData, Errors)>)>,
}

// ---------------------------------------------------------------------------------------------
// Pure helpers

/// "1 day", "12 days".
pub(crate) fn days(n: i64) -> String {
    if n == 1 { "1 day".into() } else { format!("{n} days") }
}

/// Whole calendar days from `from` to `to` on the site's clock (so the count matches the dates
/// shown beside it).
pub(crate) fn calendar_days(clock: &SiteClock, from: OffsetDateTime, to: OffsetDateTime) -> i64 {
    (clock.local(to).date() - clock.local(from).date()).whole_days()
}

/// "3 Nov", or "3 Nov 2025" when not in the year of `now`.
pub(crate) fn day(clock: &SiteClock, t: OffsetDateTime, now: OffsetDateTime) -> String {
    if clock.local(t).year() == clock.local(now).year() {
        clock.short_date(t)
    } else {
        format!("{} {}", clock.short_date(t), clock.local(t).year())
    }
}

/// "12 days since the last session on 3 Nov".
pub(crate) fn since_last_session(clock: &SiteClock, last: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    match last {
        None => "No session given yet in this course".into(),
        Some(t) => match calendar_days(clock, t, now) {
            n if n <= 0 => format!("Last session today ({})", clock.hm(t)),
            n => format!("{} since the last session on {}", days(n), day(clock, t, now)),
        },
    }
}

/// "responded 10 Sep, lost 2 Oct: 22 days" or "responding since 10 Sep: 30 days so far".
pub(crate) fn durability(clock: &SiteClock, e: &ResponseEpisode, now: OffsetDateTime) -> String {
    match e.lost_at {
        Some(lost) => format!(
            "Responded {} (score {}), lost {}{}: {}",
            day(clock, e.responded_at, now),
            e.response_total,
            day(clock, lost, now),
            e.lost_total.map(|t| format!(" (score {t})")).unwrap_or_default(),
            days(calendar_days(clock, e.responded_at, lost))
        ),
        None => format!(
            "Responded {} (score {}): responding for {} so far",
            day(clock, e.responded_at, now),
            e.response_total,
            days(calendar_days(clock, e.responded_at, now))
        ),
    }
}

/// The flag's headline and its bring-forward suggestion with the next planned session.
pub(crate) fn relapse_flag(
    clock: &SiteClock,
    instrument: &str,
    f: &RelapseFlag,
    bring_forward_days: Option<u32>,
    now: OffsetDateTime,
) -> RelapseFlagView {
    let headline = format!(
        "{instrument} {} on {} is past the relapse threshold after the response on {} (baseline {}).",
        f.relapse_total,
        day(clock, f.relapse_at, now),
        day(clock, f.responded_at, now),
        f.baseline
    );
    let planned = f.bring_forward.next_planned.map(|t| clock.date_at(t));
    let suggestion = match (f.bring_forward.suggest_by, planned, bring_forward_days) {
        (Some(by), Some(p), _) => format!(
            "Review the patient and consider bringing the next maintenance session forward: offer one by {} (planned: {p}).",
            clock.date(by)
        ),
        (Some(by), None, _) => {
            format!("Review the patient and offer a maintenance session by {}: none is planned.", clock.date(by))
        }
        (None, Some(p), Some(_)) => {
            format!("Review the patient. The next planned session, {p}, is already within the clinic's window.")
        }
        (None, Some(p), None) => {
            format!("Review the patient and consider bringing the next maintenance session ({p}) forward.")
        }
        (None, None, _) => "Review the patient and consider planning a maintenance session: none is planned.".into(),
    };
    RelapseFlagView { headline, suggestion }
}

/// A link's state as a label, its class and when it closes or closed.
pub(crate) fn link_state(clock: &SiteClock, state: LinkState, l: &LinkRecord) -> (&'static str, &'static str, String) {
    let window = |a: OffsetDateTime, b: OffsetDateTime| format!("{} – {}", clock.datetime(a), clock.datetime(b));
    match state {
        LinkState::NotYetOpen { opens_at } => ("Not yet open", "st-scheduled", window(opens_at, l.expires_at)),
        LinkState::Open => ("Open", "st-checkin", format!("open until {}", clock.datetime(l.expires_at))),
        LinkState::Completed { at } => ("Completed", "st-good", format!("completed {}", clock.datetime(at))),
        LinkState::Expired { at } => ("Expired", "st-stop", format!("closed unanswered {}", clock.datetime(at))),
    }
}

/// The form's name for staff: an instrument's short name or a question set's name.
pub(crate) fn form_label(code: &str) -> String {
    if let Some(i) = instruments::catalog().get(code) {
        return i.short_name.clone();
    }
    if let Some(s) = question_sets::get(code) {
        return s.name.clone();
    }
    match code {
        "pre_dose_screen" => "Pre-dose screen".into(),
        "sitter_confirmation" => "Sitter's confirmation".into(),
        other => other.to_string(),
    }
}

/// The latest reminder for a link ("sent 27 Nov 2026 09:01, e-mail via smtp" / "failed …"),
/// and whether it failed. A newer token issued since is mentioned.
pub(crate) fn reminder(clock: &SiteClock, link: i64, events: &[LinkEvent]) -> (String, bool) {
    // `events` is newest first.
    let mine = || events.iter().filter(|e| e.link_id == link);
    let last = mine().find(|e| e.event == "reminder_sent" || e.event == "reminder_failed");
    let reissued = mine().find(|e| e.event == "reissued");
    let (mut text, failed) = match last {
        None => ("No reminder sent".to_string(), false),
        Some(e) => {
            let ok = e.event == "reminder_sent";
            let detail = e.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
            (format!("{} {}{detail}", if ok { "Sent" } else { "Not sent" }, clock.datetime(e.at)), !ok)
        }
    };
    if let Some(r) = reissued
        && last.is_none_or(|l| r.at >= l.at)
    {
        text.push_str(&format!(" · new link {}", clock.datetime(r.at)));
    }
    (text, failed)
}

/// "Item 9 (thoughts of being better off dead / self-harm)".
pub(crate) fn safety_item(code: &str, item: i64) -> String {
    let inst = instruments::catalog().get(code);
    let it = inst.and_then(|i| i.items.iter().find(|x| i64::from(x.number) == item));
    match it.and_then(|x| x.label.clone().or_else(|| x.text.clone())) {
        Some(l) => format!("Item {item} ({l})"),
        None => format!("Item {item}"),
    }
}

/// "2 (More than half the days)" where the wording may be shown, else the number.
pub(crate) fn safety_answer(code: &str, answer: i64) -> String {
    let label = instruments::catalog()
        .get(code)
        .filter(|i| i.wording_permitted)
        .and_then(|i| i.answer_labels.iter().find(|a| i64::from(a.value) == answer))
        .map(|a| a.label.clone());
    match label {
        Some(l) => format!("{answer} ({l})"),
        None => answer.to_string(),
    }
}

fn safety_row(clock: &SiteClock, s: &SafetyAnswer, open: &[Alert]) -> SafetyRow {
    let alert_open = open.iter().any(|a| a.id.0 == s.alert_id);
    SafetyRow {
        when: clock.datetime(s.answered_at),
        instrument: form_label(&s.instrument),
        item: safety_item(&s.instrument, s.item),
        answer: safety_answer(&s.instrument, s.answer),
        alert: if alert_open {
            format!("Alert {} open: record what was done above", s.alert_id)
        } else {
            format!("Alert {} acknowledged", s.alert_id)
        },
        alert_open,
    }
}

/// "30 units · 300 mg", trimming needless decimals.
pub(crate) fn units_mg(units: u64, mg: f64) -> String {
    format!("{units} unit{} · {} mg", if units == 1 { "" } else { "s" }, super::pk_panel::num(mg))
}

pub(crate) fn reconciliation_issue(clock: &SiteClock, i: &ReconciliationIssue) -> String {
    match i {
        ReconciliationIssue::ExceedsSupply { at, balance_units } => format!(
            "Dose logged {} took the balance below zero ({balance_units} units): more logged than dispensed",
            clock.datetime(*at)
        ),
        ReconciliationIssue::WithoutClearedScreen { at } => {
            format!("Dose logged {} without a cleared pre-dose screen", clock.datetime(*at))
        }
        ReconciliationIssue::CountMismatch { expected_units, counted_units } => {
            format!("The patient counted {counted_units} units on hand; {expected_units} expected")
        }
    }
}

pub(crate) fn on_hand(r: &Reconciliation) -> String {
    match r.counted_on_hand_units {
        Some(c) => format!("{} expected, {c} counted", r.expected_on_hand_units),
        None => format!("{} expected, not counted yet", r.expected_on_hand_units),
    }
}

/// What the administrator must set before the pre-dose screen can run (`None`: nothing).
pub(crate) fn missing_settings(missing: &[String]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let names: Vec<&str> = missing
        .iter()
        .map(|m| match m.as_str() {
            "alcohol.free_hours" => "alcohol_free_hours",
            "sedatives.free_hours" => "sedative_free_hours",
            other => other,
        })
        .collect();
    Some(format!(
        "The pre-dose screen cannot run yet: the clinic has not set {}. An administrator sets them with PUT /api/v1/settings/home-pre-dose, e.g. {{\"alcohol_free_hours\": <hours>, \"sedative_free_hours\": <hours>}} (hours chosen by the medical director; the reference gives no figure). Until then patients are told not to take the dose.",
        names.join(" and ")
    ))
}

fn screen_outcome(s: &PreDoseScreen) -> (&'static str, &'static str) {
    match s.outcome.as_str() {
        "cleared" => ("Cleared", "st-good"),
        "refused" => ("Refused", "st-stop"),
        "awaiting_sitter" => ("Waiting for the sitter", "st-caution"),
        _ => ("Unknown", "st-muted"),
    }
}

fn screen_row(clock: &SiteClock, s: &PreDoseScreen, form: Option<(&FormData, &Errors)>) -> ScreenRow {
    let (outcome, outcome_class) = screen_outcome(s);
    // Issue 15: the sitter's contact, so staff can reach them from the chart.
    let who = match s.sitter_contact.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(contact) => format!("{} ({contact})", s.sitter_name),
        None => s.sitter_name.clone(),
    };
    let sitter = match s.sitter_confirmed_at {
        Some(t) => format!("{who}, confirmed {}", clock.datetime(t)),
        None => format!("{who}, not confirmed"),
    };
    ScreenRow {
        id: s.id,
        when: clock.datetime(s.submitted_at),
        outcome,
        outcome_class,
        sitter,
        refusals: s.refusals.clone(),
        reviewed: s.reviewed_at.map(|t| {
            format!(
                "Reviewed {} by {}: {}",
                clock.datetime(t),
                s.reviewed_by.as_deref().unwrap_or("—"),
                s.review_note.as_deref().unwrap_or("")
            )
        }),
        needs_review: s.outcome == "refused" && s.reviewed_at.is_none(),
        note: form.map(|(f, _)| f.get("note").to_string()).unwrap_or_default(),
        errors: form.map(|(_, e)| e.clone()).unwrap_or_default(),
    }
}

fn answer_text(q: Option<&question_sets::Question>, v: &AnswerValue) -> String {
    match (q.map(|q| &q.kind), v) {
        (_, AnswerValue::YesNo(b)) => if *b { "Yes" } else { "No" }.into(),
        (Some(QuestionKind::Choice { options }), AnswerValue::Text(t)) => {
            options.iter().find(|o| &o.value == t).map_or_else(|| t.clone(), |o| o.label.clone())
        }
        (_, other) => other.to_string(),
    }
}

pub(crate) fn question_set_row(clock: &SiteClock, r: &QuestionSetResponse) -> QuestionSetRow {
    let set = question_sets::get(&r.set_code);
    let flags: Vec<QuestionSetFlag> = serde_json::from_value(r.flags.clone()).unwrap_or_default();
    let answers: std::collections::BTreeMap<String, AnswerValue> =
        serde_json::from_value(r.answers.clone()).unwrap_or_default();
    // In the set's question order, then anything the set no longer asks.
    let mut rows = Vec::new();
    if let Some(set) = set {
        for q in &set.questions {
            if let Some(v) = answers.get(&q.id) {
                rows.push((q.text.clone(), answer_text(Some(q), v)));
            }
        }
    }
    for (id, v) in &answers {
        if set.is_none_or(|s| s.question(id).is_none()) {
            rows.push((id.clone(), v.to_string()));
        }
    }
    QuestionSetRow {
        name: set.map_or_else(|| r.set_code.clone(), |s| s.name.clone()),
        when: clock.datetime(r.completed_at),
        flags: flags
            .into_iter()
            .map(|f| {
                let class = match f.severity {
                    keta_domain::alerts::AlertSeverity::Urgent => "flag-urgent",
                    keta_domain::alerts::AlertSeverity::Warning => "flag-warning",
                };
                (class, f.message)
            })
            .collect(),
        answers: rows,
    }
}

pub(crate) fn course_label(c: &Course) -> String {
    format!("{} · {} · from {}", c.route.label(), c.phase.as_str(), super::clock::date_label(c.start_date))
}

/// The instrument to watch in a course: PHQ-9 when it has scores, else the first with a
/// response criterion (as the outcomes table lists them).
fn watched_instrument(chart: &PatientChart, course: CourseId) -> Option<&'static str> {
    let mut codes: Vec<&str> = chart
        .responses
        .iter()
        .filter(|r| r.course_id == Some(course) && r.score.total.is_some())
        .map(|r| r.instrument.as_str())
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let has_response = |c: &str| definition_for(c).is_some_and(|d| d.response.is_some());
    let pick = if codes.contains(&"phq9") && has_response("phq9") {
        Some("phq9")
    } else {
        codes.into_iter().find(|c| has_response(c))
    };
    pick.and_then(definition_for).map(|d| d.instrument.as_str())
}

fn threshold_text(t: relapse::RelapseThreshold) -> String {
    match t {
        relapse::RelapseThreshold::LossOfResponse => "Relapse threshold: loss of response (clinic default)".into(),
        relapse::RelapseThreshold::TotalAtLeast { total } => format!("Relapse threshold: a total of {total} or more"),
    }
}

/// The relapse watch of each course: flagged ones first.
pub(crate) fn relapse_views(
    chart: &PatientChart,
    settings: &relapse::RelapseSettings,
    clock: &SiteClock,
    now: OffsetDateTime,
) -> Vec<RelapseView> {
    let mut out = Vec::new();
    for c in chart.courses.iter().rev() {
        let (last, next) = relapse::last_and_next(&chart.sessions, c.id, now);
        let next_planned = match next {
            Some(t) => format!("Next planned session {}", clock.date_at(t)),
            None => "No session planned".into(),
        };
        let inst = watched_instrument(chart, c.id);
        let watch = inst.and_then(|code| {
            let def = definition_for(code)?;
            // The course judged as its outcome is (a maintenance course against its induction's baseline).
            let points = judge_in_chart(def, &chart.courses, c.id, &chart.responses).map(|j| j.series.points)?;
            // The clinic's threshold is set on PHQ-9 totals; other instruments use the default
            // (as the store's relapse alerts do).
            match relapse::watch(def, &points, &settings.for_instrument(code), last, next, now, &|t| clock.today(t)) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, course = c.id.0, "relapse watch could not run");
                    None
                }
            }
        });
        if watch.is_none() && c.status == CourseStatus::Stopped {
            continue;
        }
        let instrument = inst.map_or_else(|| "No scores yet".to_string(), form_label);
        let (status, status_class, episodes, flag, threshold) = match &watch {
            None => ("Nothing to watch yet", "st-muted", vec![], None, String::new()),
            Some(w) => {
                let episodes: Vec<String> = w.episodes.iter().map(|e| durability(clock, e, now)).collect();
                let bring_forward = inst.and_then(|i| settings.for_instrument(i).bring_forward_within_days);
                let flag = w.flag.as_ref().map(|f| relapse_flag(clock, &instrument, f, bring_forward, now));
                let (s, class) = if flag.is_some() {
                    ("Relapse: review", "st-stop")
                } else if w.currently_responding {
                    ("Responding", "st-good")
                } else {
                    ("No response yet", "st-neutral")
                };
                (s, class, episodes, flag, threshold_text(w.threshold))
            }
        };
        out.push(RelapseView {
            course: course_label(c),
            instrument,
            since_last: since_last_session(clock, last, now),
            next_planned,
            status,
            status_class,
            episodes,
            flag,
            threshold,
        });
    }
    out.sort_by_key(|r| r.flag.is_none());
    out
}

fn link_row(
    clock: &SiteClock,
    l: &LinkRecord,
    o: &CheckinOverview,
    courses: &[Course],
    now: OffsetDateTime,
) -> LinkRow {
    let state = l.state(now);
    let (label, class, window) = link_state(clock, state, l);
    let (reminder, reminder_failed) = reminder(clock, l.id, &o.events);
    LinkRow {
        id: l.id,
        form: form_label(&l.form),
        safety: o.safety_answers.iter().any(|s| s.link_id == l.id),
        course: l
            .course_id
            .and_then(|id| courses.iter().find(|c| c.id == id))
            .map(|c| format!("{} · {}", c.route.label(), c.phase.as_str()))
            .unwrap_or_default(),
        state: label,
        state_class: class,
        window,
        first_opened: l.first_opened_at.map_or_else(|| "Not opened".into(), |t| clock.datetime(t)),
        progress_saved: l
            .progress_saved_at
            .filter(|_| l.completed_at.is_none())
            .map(|t| format!("Answers saved {}, not yet sent", clock.datetime(t))),
        reminder,
        reminder_failed,
        // A sitter's link goes to the sitter, whose contact is on the screen, not the chart.
        can_reissue: l.purpose != LinkPurpose::Sitter
            && matches!(state, LinkState::Open | LinkState::NotYetOpen { .. }),
    }
}

/// What "Send a check-in now" offers: the patient instruments whose wording may be shown
/// (PHQ-9 first), then the question sets.
/// The instruments a patient may answer on their own (kiosk or phone): patient-completed, with
/// wording Keta may show.
pub(crate) fn patient_instrument_choices() -> Vec<Choice> {
    instruments::catalog()
        .all()
        .iter()
        .filter(|i| i.wording_permitted && i.completed_by == CompletedBy::Patient)
        .map(|i| Choice { value: i.code.clone(), label: format!("{} — {}", i.short_name, i.name) })
        .collect()
}

pub(crate) fn sendable_forms() -> Vec<Choice> {
    let mut v = patient_instrument_choices();
    v.sort_by_key(|c| c.value != "phq9");
    v.extend(question_sets::catalog().iter().map(|s| Choice { value: s.code.clone(), label: s.name.clone() }));
    v
}

// ---------------------------------------------------------------------------------------------
// Check-in schedules

/// "24 h", or whole days from four days up ("7 days").
fn hours(h: u32) -> String {
    if h >= 96 && h.is_multiple_of(24) { days(i64::from(h / 24)) } else { format!("{h} h") }
}

/// When a check-in item is sent, in words: "24 h before each session", "every 7 days at 09:00,
/// open 72 h, until 56 days after the last session" (periodic items open at `local_hour` on the
/// site's clock).
pub(crate) fn timing_words(item: &CheckInItem, local_hour: u8) -> String {
    let mut out = match item.timing {
        Timing::BeforeEachSession { opens_hours_before } => {
            format!("{} before each session", hours(opens_hours_before))
        }
        Timing::AfterEachSession { after_hours, open_hours } => {
            format!("{} after each session, open {}", hours(after_hours), hours(open_hours))
        }
        Timing::AroundEachSession { opens_hours_before, closes_hours_after } => {
            format!("from {} before to {} after each session", hours(opens_hours_before), hours(closes_hours_after))
        }
        Timing::Every { days: 1, open_hours } => format!("every day at {local_hour:02}:00, open {}", hours(open_hours)),
        Timing::Every { days: n, open_hours } => {
            format!("every {} at {local_hour:02}:00, open {}", days(i64::from(n)), hours(open_hours))
        }
    };
    if let Some(d) = item.follow_up_days_after_last_session {
        out.push_str(&format!(", until {} after the last session", days(i64::from(d))));
    }
    if let Some(d) = item.for_days {
        out.push_str(&format!(", within {} of the course start", days(i64::from(d))));
    }
    out
}

/// The form field of an `every` item's interval.
pub(crate) fn interval_field(item_id: &str) -> String {
    format!("days_{item_id}")
}

/// The longest interval a clinician may set, in days.
const MAX_INTERVAL_DAYS: u32 = 365;

/// The clinic's items (in its order), then the ones added for this patient, each with the item
/// as the course follows it now (`None`: removed for this patient).
fn schedule_items<'a>(
    base: &'a CheckInSchedule,
    current: &'a CheckInSchedule,
) -> Vec<(&'a CheckInItem, Option<&'a CheckInItem>, bool)> {
    let now = |id: &str| current.items.iter().find(|i| i.id == id);
    let mut out: Vec<_> = base.items.iter().map(|b| (b, now(&b.id), false)).collect();
    out.extend(current.items.iter().filter(|c| !base.items.iter().any(|b| b.id == c.id)).map(|c| (c, Some(c), true)));
    out
}

/// The change a submitted schedule form asks for, always built from the clinic's schedule:
/// `remove` lists its items left unticked, `upsert` the ticked items that differ from it (a new
/// interval, keeping the item's other fields) and the ticked items added for this patient. So a
/// later save replaces an earlier one cleanly. Field errors name the form's fields.
pub(crate) fn build_override(
    base: &CheckInSchedule,
    current: &CheckInSchedule,
    form: &FormData,
) -> Result<ScheduleOverride, Errors> {
    let mut errors = Errors::new();
    let mut o = ScheduleOverride { reason: form.get("reason").trim().to_string(), ..Default::default() };
    if o.reason.is_empty() {
        errors.add("reason", "say why this patient's schedule differs from the clinic's");
    }
    for (template, now, added) in schedule_items(base, current) {
        if !form.has_value("send", &template.id) {
            if !added {
                o.remove.push(template.id.clone());
            }
            continue;
        }
        let mut item = now.unwrap_or(template).clone();
        if let Timing::Every { days: d, open_hours } = &mut item.timing {
            let field = interval_field(&item.id);
            let raw = form.get(&field).trim();
            match raw.parse::<u32>() {
                _ if raw.is_empty() => errors.add(&field, "enter the interval in days"),
                Err(_) => errors.add(&field, format!("'{raw}' is not a whole number of days")),
                Ok(0) => errors.add(&field, "must be at least 1 day"),
                Ok(n) if n > MAX_INTERVAL_DAYS => {
                    errors.add(&field, format!("must be at most {MAX_INTERVAL_DAYS} days"))
                }
                Ok(n) if u64::from(n) * 24 < u64::from(*open_hours) => errors.add(
                    &field,
                    format!(
                        "must be at least {}: each check-in stays open {}",
                        days(i64::from(open_hours.div_ceil(24))),
                        hours(*open_hours)
                    ),
                ),
                Ok(n) => *d = n,
            }
        }
        if added || Some(&item) != base.items.iter().find(|b| b.id == item.id) {
            o.upsert.push(item);
        }
    }
    if errors.any() { Err(errors) } else { Ok(o) }
}

/// One course's schedule for the panel: the clinic's schedule with the latest change applied,
/// and the form's state (the stored schedule, or the user's input after an error).
pub(crate) fn schedule_view(
    clock: &SiteClock,
    course: &Course,
    base: &CheckInSchedule,
    change: Option<&OverrideInfo>,
    input: Option<Option<(FormData, Errors)>>,
) -> ScheduleView {
    let (current, warning) = match change.map(|o| checkins::apply_override(base, &o.change)) {
        None => (base.clone(), None),
        Some(Ok(s)) => (s, None),
        Some(Err(e)) => (
            base.clone(),
            Some(format!(
                "The saved change no longer fits the clinic's schedule ({e}). The clinic's schedule is shown; save the change again."
            )),
        ),
    };
    let saved = matches!(input, Some(None));
    let (form, errors) = input.flatten().map_or((None, Errors::new()), |(f, e)| (Some(f), e));
    let rows = schedule_items(base, &current)
        .into_iter()
        .map(|(template, now, added)| {
            let shown = now.unwrap_or(template);
            let field = interval_field(&template.id);
            ScheduleRow {
                id: template.id.clone(),
                form: form_label(&template.form),
                timing: timing_words(shown, current.periodic_opens_local_hour),
                current: now.is_some(),
                send: form.as_ref().map_or(now.is_some(), |f| f.has_value("send", &template.id)),
                interval: match shown.timing {
                    Timing::Every { days: d, .. } => {
                        Some(form.as_ref().map_or_else(|| d.to_string(), |f| f.get(&field).to_string()))
                    }
                    _ => None,
                },
                added,
                error: errors.get(&field).unwrap_or_default(),
            }
        })
        .collect();
    ScheduleView {
        course_id: course.id.0,
        course: course_label(course),
        name: base.name.clone(),
        changed: change
            .map(|o| format!("Changed by {} on {}: {}", o.set_by, clock.date(o.set_at), o.change.reason.trim())),
        warning,
        rows,
        reason: form.as_ref().map(|f| f.get("reason").to_string()).unwrap_or_default(),
        errors,
        saved,
    }
}

// ---------------------------------------------------------------------------------------------
// Building the panel

/// Reads the patient's check-ins, relapse settings and at-home programme and builds the panel.
pub(crate) async fn build(
    st: &AppState,
    user: &CurrentUser,
    chart: &PatientChart,
    clock: &SiteClock,
    now: OffsetDateTime,
    input: &mut BetweenInput,
) -> UiResult<BetweenView> {
    let actor = &user.actor;
    let id = chart.patient.id;
    let b = st.store.between_sessions(actor, id).await?;
    let (overview, programmes, sets, settings) = (b.checkins, b.programmes, b.question_sets, b.relapse_settings);
    let changes = b.schedule_changes;

    let mut links_current = Vec::new();
    let mut links_past = Vec::new();
    for l in &overview.links {
        let row = link_row(clock, l, &overview, &chart.courses, now);
        match l.state(now) {
            LinkState::Open | LinkState::NotYetOpen { .. } => links_current.push((l.expires_at, row)),
            _ => links_past.push(row),
        }
    }
    links_current.sort_by_key(|(t, _)| *t);

    let review = input.review.take();
    let dispense = input.dispense.take();
    let home = programmes
        .iter()
        .map(|p| {
            let r = &p.reconciliation;
            let (dispense_form, dispense_errors) = match &dispense {
                Some((c, f, e)) if *c == p.course_id.0 => (f.clone(), e.clone()),
                _ => (FormData::empty(), Errors::new()),
            };
            HomeView {
                course_id: p.course_id.0,
                course: chart
                    .courses
                    .iter()
                    .find(|c| c.id == p.course_id)
                    .map_or_else(|| format!("Course {}", p.course_id), course_label),
                may_dispense_note: if p.dispenses == 0 {
                    "No supply yet: the first one is not held."
                } else {
                    "The patient is up to date."
                },
                hold: if p.dispenses == 0 { vec![] } else { p.supply_hold.clone() },
                missing_settings: missing_settings(&p.missing_settings),
                dispensed: match p.dispenses {
                    0 => "None yet".into(),
                    1 => format!("{} (1 supply)", units_mg(r.dispensed_units, r.dispensed_mg.0)),
                    n => format!("{} ({n} supplies)", units_mg(r.dispensed_units, r.dispensed_mg.0)),
                } + &match (p.last_dispensed_at, &p.last_dispensed_by) {
                    (Some(at), Some(by)) => format!("; the latest on {} by {by}", clock.datetime(at)),
                    _ => String::new(),
                },
                logged: match p.doses_logged {
                    0 => "None yet".into(),
                    1 => format!("{} (1 dose)", units_mg(r.logged_units, r.logged_mg.0)),
                    n => format!("{} ({n} doses)", units_mg(r.logged_units, r.logged_mg.0)),
                },
                on_hand: on_hand(r),
                issues: r.issues.iter().map(|i| reconciliation_issue(clock, i)).collect(),
                missed: match (p.missed_checkins, p.dispenses) {
                    (1, 0) => "1 check-in".into(),
                    (n, 0) => format!("{n} check-ins"),
                    (1, _) => "1 check-in since the last supply".into(),
                    (n, _) => format!("{n} check-ins since the last supply"),
                },
                screens: p
                    .screens
                    .iter()
                    .map(|s| {
                        let form = review.as_ref().filter(|(id, _, _)| *id == s.id).map(|(_, f, e)| (f, e));
                        screen_row(clock, s, form)
                    })
                    .collect(),
                dispense_form,
                dispense_errors,
            }
        })
        .collect();

    let mut schedule_input = input.schedule.take();
    let schedules = chart
        .courses
        .iter()
        .rev()
        .filter(|c| c.status != CourseStatus::Stopped)
        .filter_map(|c| {
            let base = checkins::schedule_for_route(c.route)?;
            let change = changes.iter().find(|o| o.course_id == c.id);
            let mine = schedule_input.take_if(|(id, _)| *id == c.id.0).map(|(_, f)| f);
            Some(schedule_view(clock, c, base, change, mine))
        })
        .collect();

    let (send_form, send_errors) = input.send.take().unwrap_or_default();
    let send_checked = !send_errors.any() || send_form.checked("send");
    Ok(BetweenView {
        zone: clock.zone.clone(),
        safety: overview.safety_answers.iter().map(|s| safety_row(clock, s, &chart.open_alerts)).collect(),
        relapse: relapse_views(chart, &settings, clock, now),
        links_current: links_current.into_iter().map(|(_, r)| r).collect(),
        links_past,
        question_sets: sets.iter().map(|r| question_set_row(clock, r)).collect(),
        home,
        can_send: actor.can(Permission::EnterQuestionnaire),
        can_review: actor.can(Permission::PlanTreatment),
        can_dispense: actor.can(Permission::RecordLedger),
        forms: sendable_forms(),
        courses: chart
            .courses
            .iter()
            .rev()
            .filter(|c| c.status != CourseStatus::Stopped)
            .map(|c| Choice { value: c.id.0.to_string(), label: course_label(c) })
            .collect(),
        send_form,
        send_errors,
        send_checked,
        schedules,
        can_plan: actor.can(Permission::PlanTreatment),
    })
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Sends (when asked) and describes a freshly issued link for the show-once panel.
async fn issued_view(st: &AppState, issued: &IssuedLink, send: bool, reissued: bool) -> IssuedView {
    let delivered = send
        && crate::reminders::deliver(
            &st.store,
            &st.reminders,
            issued,
            issued.email.as_deref(),
            issued.phone.as_deref(),
        )
        .await;
    if delivered {
        super::live::publish(Some(issued.link.site_id));
    }
    let delivery = match (send, delivered, issued.email.is_some(), issued.phone.is_some()) {
        (false, _, _, _) => "Not sent: hand this link to the patient.".to_string(),
        (true, true, true, _) => "Also sent to the patient's e-mail address on file.".to_string(),
        (true, true, false, _) => "Also sent by text message to the patient's mobile on file.".to_string(),
        (true, false, false, false) => {
            "Not sent: the patient has no e-mail address or mobile number on file. Hand this link to the patient."
                .to_string()
        }
        (true, false, _, _) => {
            "Sending failed (the reason is in the check-in list). Hand this link to the patient, or try again."
                .to_string()
        }
    };
    let until = match st.store.link_site_for_patients(issued.link.site_id).await {
        Ok(s) => {
            let c = SiteClock::named(&s.time_zone);
            c.datetime(issued.link.expires_at)
        }
        Err(_) => SiteClock::utc().datetime(issued.link.expires_at),
    };
    IssuedView {
        url: st.reminders.link_url(&issued.token),
        form: form_label(&issued.link.form),
        until,
        delivery,
        delivered,
        reissued,
    }
}

/// `POST /patients/{id}/checkins`: issue a check-in link now (and send it, when asked). The
/// answer is the chart with the link shown once.
pub async fn post_checkin(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let code = form.opt("form");
    if code.is_none() {
        errors.add("form", "choose what to send");
    }
    let course = match form.opt("course_id") {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(c) => Some(CourseId(c)),
            Err(_) => {
                errors.add("course_id", "choose a course from the list");
                None
            }
        },
    };
    if let (Some(code), false) = (code, errors.any()) {
        match st.store.issue_link(&user.actor, PatientId(id), course, code).await {
            Ok(issued) => {
                let view = issued_view(&st, &issued, form.checked("send"), false).await;
                let input = BetweenInput { issued: Some(view), ..Default::default() };
                return render_chart(&st, &user, PatientId(id), StatusCode::OK, input).await;
            }
            Err(e) => errors.absorb(e)?,
        }
    }
    let input = BetweenInput { send: Some((form, errors)), ..Default::default() };
    render_chart(&st, &user, PatientId(id), StatusCode::UNPROCESSABLE_ENTITY, input).await
}

/// `POST /patients/{id}/checkins/{link}/reissue`: a new token for an open link; the old one
/// stops working. The answer is the chart with the new link shown once.
pub async fn post_reissue(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, link)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    // The link must be this patient's (the store checks the site; this keeps URLs honest).
    // A sitter's link is refused by the store: it would reach the patient, not the sitter.
    let overview = st.store.checkin_overview(&user.actor, PatientId(id)).await?;
    if !overview.links.iter().any(|l| l.id == link) {
        return Err(StoreError::NotFound(format!("check-in link {link}")).into());
    }
    match st.store.reissue_link(&user.actor, link).await {
        Ok(issued) => {
            let view = issued_view(&st, &issued, form.checked("send"), true).await;
            let input = BetweenInput { issued: Some(view), ..Default::default() };
            render_chart(&st, &user, PatientId(id), StatusCode::OK, input).await
        }
        Err(e) => {
            let mut errors = Errors::new();
            errors.absorb(e)?;
            let input = BetweenInput { notice: Some(errors.general.join(" ")), ..Default::default() };
            render_chart(&st, &user, PatientId(id), StatusCode::CONFLICT, input).await
        }
    }
}

/// `POST /patients/{id}/pre-dose-screens/{screen}/review`: what was done about a refused screen.
pub async fn post_review(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, screen)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    let (programmes, _) = st.store.home_overview(&user.actor, PatientId(id)).await?;
    if !programmes.iter().any(|p| p.screens.iter().any(|s| s.id == screen)) {
        return Err(StoreError::NotFound(format!("pre-dose screen {screen}")).into());
    }
    let mut errors = Errors::new();
    match st.store.review_pre_dose_screen(&user.actor, screen, form.get("note").to_string()).await {
        Ok(_) => return Ok(see_other(format!("/patients/{id}#home"))),
        Err(e) => errors.absorb(e)?,
    }
    if !errors.general.is_empty() {
        // Already reviewed (or not refused): its form is no longer on the page.
        let input = BetweenInput { notice: Some(errors.general.join(" ")), ..Default::default() };
        return render_chart(&st, &user, PatientId(id), StatusCode::CONFLICT, input).await;
    }
    let input = BetweenInput { review: Some((screen, form, errors)), ..Default::default() };
    render_chart(&st, &user, PatientId(id), StatusCode::UNPROCESSABLE_ENTITY, input).await
}

/// `POST /patients/{id}/courses/{course}/dispenses`: a supply handed to the patient; refused
/// with the hold reasons while the patient is not up to date.
pub async fn post_dispense(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, course)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    let co = st.store.get_course(&user.actor, CourseId(course)).await?;
    if co.patient_id != PatientId(id) || !co.route.is_home() {
        return Err(StoreError::NotFound(format!("at-home course {course}")).into());
    }
    let mut errors = Errors::new();
    let units = form.integer("units", &mut errors);
    let strength = form.number("unit_strength_mg", &mut errors);
    if units.is_none() && !errors.has("units") {
        errors.add("units", "enter how many units are handed over");
    }
    if strength.is_none() && !errors.has("unit_strength_mg") {
        errors.add("unit_strength_mg", "enter the strength of one unit in mg");
    }
    let units = match units.map(u32::try_from) {
        Some(Ok(u)) => Some(u),
        Some(Err(_)) => {
            errors.add("units", "must be 1 to 1000 units");
            None
        }
        None => None,
    };
    if let (Some(units), Some(unit_strength_mg), false) = (units, strength, errors.any()) {
        match st.store.record_dispense(&user.actor, CourseId(course), NewDispense { units, unit_strength_mg }).await {
            Ok(_) => return Ok(see_other(format!("/patients/{id}#home"))),
            Err(e) => errors.absorb(e)?,
        }
    }
    let input = BetweenInput { dispense: Some((course, form, errors)), ..Default::default() };
    render_chart(&st, &user, PatientId(id), StatusCode::UNPROCESSABLE_ENTITY, input).await
}

/// `POST /patients/{id}/courses/{course}/checkin-schedule`: change which check-ins this patient's
/// course sends and how often. The change is built from the clinic's schedule each time, so it
/// replaces the previous one; the answer is the chart ("Schedule changed", or the form again
/// with its errors and nothing changed).
pub async fn post_schedule(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, course)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    let co = st.store.get_course(&user.actor, CourseId(course)).await?;
    let Some(base) = checkins::schedule_for_route(co.route).filter(|_| co.patient_id == PatientId(id)) else {
        return Err(StoreError::NotFound(format!("check-in schedule of course {course}")).into());
    };
    let current = match st.store.checkin_schedule(&user.actor, co.id).await {
        Ok(Some(s)) => s,
        // A stored change that no longer applies: the form starts again from the clinic's.
        Ok(None) | Err(StoreError::Domain(_)) => base.clone(),
        Err(e) => return Err(e.into()),
    };
    let errors = match build_override(base, &current, &form) {
        Ok(o) => match st.store.set_checkin_override(&user.actor, co.id, o).await {
            Ok(_) => {
                let input = BetweenInput { schedule: Some((course, None)), ..Default::default() };
                return render_chart(&st, &user, PatientId(id), StatusCode::OK, input).await;
            }
            Err(e) => {
                let mut errors = Errors::new();
                errors.absorb(e)?;
                errors
            }
        },
        Err(errors) => errors,
    };
    let input = BetweenInput { schedule: Some((course, Some((form, errors)))), ..Default::default() };
    render_chart(&st, &user, PatientId(id), StatusCode::UNPROCESSABLE_ENTITY, input).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn clock() -> SiteClock {
        SiteClock::named("America/Chicago")
    }

    const NOW: OffsetDateTime = datetime!(2026-11-15 18:00 UTC);

    fn in_clinic() -> &'static CheckInSchedule {
        checkins::schedule_for_route(keta_domain::course::Route::IvRacemic).expect("IV courses have a schedule")
    }

    fn item(id: &str) -> &'static CheckInItem {
        in_clinic().items.iter().find(|i| i.id == id).expect(id)
    }

    /// The form as the page submits it: every item ticked at the clinic's intervals.
    fn untouched(reason: &str) -> Vec<(String, String)> {
        let mut pairs = vec![("reason".to_string(), reason.to_string())];
        for i in &in_clinic().items {
            pairs.push(("send".into(), i.id.clone()));
            if let Timing::Every { days, .. } = i.timing {
                pairs.push((interval_field(&i.id), days.to_string()));
            }
        }
        pairs
    }

    /// The pairs with `name` set to `value` (replacing it).
    fn set(mut pairs: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
        pairs.retain(|(k, _)| k != name);
        pairs.push((name.into(), value.into()));
        pairs
    }

    /// The pairs with an item's "send" box unticked.
    fn untick(mut pairs: Vec<(String, String)>, id: &str) -> Vec<(String, String)> {
        pairs.retain(|(k, v)| !(k == "send" && v == id));
        pairs
    }

    fn with(pairs: Vec<(String, String)>, name: &str, value: &str) -> FormData {
        FormData::from_pairs(set(pairs, name, value))
    }

    #[test]
    fn schedule_timings_read_as_words() {
        assert_eq!(timing_words(item("phq9_before_session"), 9), "24 h before each session");
        assert_eq!(timing_words(item("after_session"), 9), "24 h after each session, open 24 h");
        assert_eq!(
            timing_words(item("gad7_weekly"), 9),
            "every 7 days at 09:00, open 72 h, until 56 days after the last session"
        );
        assert_eq!(
            timing_words(item("urinary_monthly"), 18),
            "every 30 days at 18:00, open 7 days, until 90 days after the last session"
        );
        let home = checkins::schedule_for_route(keta_domain::course::Route::OralRacemic).unwrap();
        let screen = home.items.iter().find(|i| i.id == "pre_dose_screen").unwrap();
        assert_eq!(timing_words(screen, 9), "from 2 h before to 4 h after each session");
        let daily = CheckInItem {
            timing: Timing::Every { days: 1, open_hours: 12 },
            follow_up_days_after_last_session: None,
            for_days: Some(1),
            ..item("gad7_weekly").clone()
        };
        assert_eq!(timing_words(&daily, 7), "every day at 07:00, open 12 h, within 1 day of the course start");
    }

    #[test]
    fn an_untouched_form_resets_to_the_clinics_schedule() {
        let base = in_clinic();
        let o = build_override(base, base, &FormData::from_pairs(untouched("Back to the clinic's schedule"))).unwrap();
        assert_eq!(o.remove, Vec::<String>::new());
        assert_eq!(o.upsert, vec![]);
        assert_eq!(o.reason, "Back to the clinic's schedule");
        // Saved again over an earlier change (GAD-7 removed, PHQ-9 every 14 days): the same.
        let earlier = checkins::apply_override(
            base,
            &ScheduleOverride {
                remove: vec!["gad7_weekly".into()],
                upsert: vec![CheckInItem {
                    timing: Timing::Every { days: 14, open_hours: 72 },
                    ..item("phq9_weekly").clone()
                }],
                reason: "x".into(),
            },
        )
        .unwrap();
        assert_eq!(build_override(base, &earlier, &FormData::from_pairs(untouched("reset"))).unwrap().upsert, vec![]);
    }

    #[test]
    fn an_unticked_item_is_removed_and_a_new_interval_keeps_the_other_fields() {
        let base = in_clinic();
        let form = FormData::from_pairs(untick(untouched("Anxiety not a concern"), "gad7_weekly"));
        let o = build_override(base, base, &form).unwrap();
        assert_eq!(o.remove, ["gad7_weekly"]);
        assert_eq!(o.upsert, vec![]);
        let applied = checkins::apply_override(base, &o).unwrap();
        assert!(!applied.items.iter().any(|i| i.id == "gad7_weekly"));

        let o =
            build_override(base, base, &with(untouched("Fortnightly"), &interval_field("phq9_weekly"), "14")).unwrap();
        assert_eq!(o.remove, Vec::<String>::new());
        let expected =
            CheckInItem { timing: Timing::Every { days: 14, open_hours: 72 }, ..item("phq9_weekly").clone() };
        assert_eq!(o.upsert, vec![expected]);
        assert_eq!(
            o.upsert[0].follow_up_days_after_last_session,
            item("phq9_weekly").follow_up_days_after_last_session,
            "the follow-up is kept"
        );
        checkins::apply_override(base, &o).expect("valid");
        // An unticked item's interval is not read.
        let form = with(untick(untouched("r"), "urinary_monthly"), &interval_field("urinary_monthly"), "0");
        assert_eq!(build_override(base, base, &form).unwrap().remove, ["urinary_monthly"]);
    }

    #[test]
    fn a_blank_reason_or_a_bad_interval_is_refused_on_its_field() {
        let base = in_clinic();
        let e = build_override(base, base, &FormData::from_pairs(untouched("  "))).unwrap_err();
        assert!(e.has("reason"), "{e:?}");
        let field = interval_field("gad7_weekly");
        for (raw, says) in [
            ("0", "at least 1 day"),
            ("", "enter the interval"),
            ("two", "not a whole number"),
            ("-3", "not a whole number"),
            ("400", "at most 365 days"),
            ("2", "at least 3 days: each check-in stays open 72 h"),
        ] {
            let e = build_override(base, base, &with(untouched("r"), &field, raw)).unwrap_err();
            let msg = e.get(&field).unwrap_or_default();
            assert!(msg.contains(says), "{raw}: {msg}");
            assert!(!e.has("reason"));
        }
        assert!(build_override(base, base, &with(untouched("r"), &field, " 3 ")).is_ok());
    }

    #[test]
    fn items_added_for_the_patient_are_kept_when_ticked_and_dropped_when_not() {
        let base = in_clinic();
        let extra = CheckInItem {
            id: "gad7_daily".into(),
            timing: Timing::Every { days: 1, open_hours: 24 },
            ..item("gad7_weekly").clone()
        };
        let current = checkins::apply_override(
            base,
            &ScheduleOverride { upsert: vec![extra.clone()], reason: "API".into(), ..Default::default() },
        )
        .unwrap();
        let mut pairs = untouched("keep");
        pairs.push(("send".into(), "gad7_daily".into()));
        pairs.push((interval_field("gad7_daily"), "2".into()));
        let o = build_override(base, &current, &FormData::from_pairs(pairs)).unwrap();
        assert_eq!(o.upsert, vec![CheckInItem { timing: Timing::Every { days: 2, open_hours: 24 }, ..extra }]);
        let o = build_override(base, &current, &FormData::from_pairs(untouched("drop"))).unwrap();
        assert_eq!((o.remove.len(), o.upsert.len()), (0, 0));
    }

    #[test]
    fn the_schedule_view_shows_the_current_schedule_and_who_changed_it() {
        let c = clock();
        let base = in_clinic();
        let course = Course {
            id: CourseId(4),
            patient_id: PatientId(1),
            site_id: keta_domain::ids::SiteId(1),
            route: keta_domain::course::Route::IvRacemic,
            phase: keta_domain::course::Phase::Induction,
            indication: keta_domain::patient::Indication::Depression,
            planned_sessions: 6,
            start_date: time::macros::date!(2026 - 11 - 02),
            status: CourseStatus::Active,
            protocol: None,
        };
        let info = OverrideInfo {
            course_id: course.id,
            change: ScheduleOverride {
                remove: vec!["gad7_weekly".into()],
                upsert: vec![],
                reason: " Anxiety settled ".into(),
            },
            set_by: "prescriber.test".into(),
            set_at: datetime!(2026-11-10 15:00 UTC),
        };
        let v = schedule_view(&c, &course, base, Some(&info), None);
        assert_eq!(v.changed.as_deref(), Some("Changed by prescriber.test on Tue 10 Nov 2026: Anxiety settled"));
        assert_eq!(v.removed().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["gad7_weekly"]);
        assert_eq!(v.current().len(), base.items.len() - 1);
        assert!(!v.rows.iter().find(|r| r.id == "gad7_weekly").unwrap().send);
        assert_eq!(v.rows.iter().find(|r| r.id == "phq9_weekly").unwrap().interval.as_deref(), Some("7"));
        assert!(!v.open() && !v.saved);

        // After an error: the user's input and the field's message.
        let form = with(untouched(""), &interval_field("phq9_weekly"), "0");
        let errors = build_override(base, base, &form).unwrap_err();
        let v = schedule_view(&c, &course, base, None, Some(Some((form, errors))));
        assert!(v.open() && v.changed.is_none());
        let phq9 = v.rows.iter().find(|r| r.id == "phq9_weekly").unwrap();
        assert_eq!((phq9.interval.as_deref(), phq9.error.as_str()), (Some("0"), "must be at least 1 day"));
        assert!(v.rows.iter().find(|r| r.id == "gad7_weekly").unwrap().send, "ticked as submitted");
        assert!(!v.reason_error().is_empty());
        assert!(v.general_errors().is_empty(), "{:?}", v.general_errors());
        assert!(schedule_view(&c, &course, base, None, Some(None)).saved);
    }

    #[test]
    fn time_since_the_last_session_counts_calendar_days_on_the_site_clock() {
        let c = clock();
        assert_eq!(
            since_last_session(&c, Some(datetime!(2026-11-03 15:00 UTC)), NOW),
            "12 days since the last session on 3 Nov"
        );
        assert_eq!(
            since_last_session(&c, Some(datetime!(2026-11-14 15:00 UTC)), NOW),
            "1 day since the last session on 14 Nov"
        );
        assert_eq!(since_last_session(&c, Some(datetime!(2026-11-15 15:00 UTC)), NOW), "Last session today (09:00)");
        assert_eq!(since_last_session(&c, None, NOW), "No session given yet in this course");
        // 02:00 UTC on the 4th is still the 3rd in Chicago.
        assert_eq!(
            since_last_session(&c, Some(datetime!(2026-11-04 02:00 UTC)), NOW),
            "12 days since the last session on 3 Nov"
        );
        assert_eq!(
            since_last_session(&c, Some(datetime!(2025-12-20 15:00 UTC)), NOW),
            "330 days since the last session on 20 Dec 2025"
        );
    }

    #[test]
    fn durability_of_an_ended_and_an_ongoing_response() {
        let c = clock();
        let ended = ResponseEpisode {
            responded_at: datetime!(2026-09-10 15:00 UTC),
            response_total: 8,
            lost_at: Some(datetime!(2026-10-02 14:00 UTC)),
            lost_total: Some(15),
            durability_days: Some(21.96),
        };
        assert_eq!(durability(&c, &ended, NOW), "Responded 10 Sep (score 8), lost 2 Oct (score 15): 22 days");
        let ongoing = ResponseEpisode {
            responded_at: datetime!(2026-10-16 15:00 UTC),
            response_total: 7,
            lost_at: None,
            lost_total: None,
            durability_days: None,
        };
        assert_eq!(durability(&c, &ongoing, NOW), "Responded 16 Oct (score 7): responding for 30 days so far");
    }

    #[test]
    fn days_are_singular_and_plural() {
        assert_eq!(days(1), "1 day");
        assert_eq!(days(0), "0 days");
        assert_eq!(days(30), "30 days");
    }

    fn link(opens: OffsetDateTime, expires: OffsetDateTime) -> LinkRecord {
        LinkRecord {
            id: 7,
            purpose: LinkPurpose::Checkin,
            patient_id: PatientId(1),
            site_id: keta_domain::ids::SiteId(1),
            course_id: None,
            session_id: None,
            parent_link_id: None,
            item_key: "on_demand:phq9:1".into(),
            form: "phq9".into(),
            form_kind: "instrument".into(),
            opens_at: opens,
            expires_at: expires,
            created_at: opens,
            created_by: "nurse.test".into(),
            first_opened_at: None,
            progress: None,
            progress_saved_at: None,
            completed_at: None,
            expired_at: None,
            result_kind: None,
            result_id: None,
        }
    }

    #[test]
    fn link_states_have_a_label_a_class_and_a_time() {
        let c = clock();
        let mut l = link(datetime!(2026-11-15 15:00 UTC), datetime!(2026-11-17 15:00 UTC));
        assert_eq!(link_state(&c, l.state(NOW), &l), ("Open", "st-checkin", "open until 17 Nov 2026 09:00".into()));
        let early = datetime!(2026-11-14 12:00 UTC);
        assert_eq!(
            link_state(&c, l.state(early), &l),
            ("Not yet open", "st-scheduled", "15 Nov 2026 09:00 – 17 Nov 2026 09:00".into())
        );
        let late = datetime!(2026-11-18 12:00 UTC);
        assert_eq!(
            link_state(&c, l.state(late), &l),
            ("Expired", "st-stop", "closed unanswered 17 Nov 2026 09:00".into())
        );
        l.completed_at = Some(datetime!(2026-11-16 16:30 UTC));
        assert_eq!(
            link_state(&c, l.state(late), &l),
            ("Completed", "st-good", "completed 16 Nov 2026 10:30".into()),
            "completion wins over expiry"
        );
    }

    #[test]
    fn the_latest_reminder_is_shown_with_its_detail() {
        let c = clock();
        let ev = |event: &str, at: OffsetDateTime, detail: Option<&str>| LinkEvent {
            link_id: 7,
            event: event.into(),
            at,
            detail: detail.map(String::from),
        };
        assert_eq!(reminder(&c, 7, &[]), ("No reminder sent".to_string(), false));
        // Newest first, as the store returns them.
        let events = vec![
            ev("opened", datetime!(2026-11-15 16:00 UTC), None),
            ev("reminder_failed", datetime!(2026-11-15 15:01 UTC), Some("smtp: connection refused")),
            ev("reminder_sent", datetime!(2026-11-14 15:01 UTC), Some("e-mail via log")),
            LinkEvent { link_id: 8, ..ev("reminder_sent", datetime!(2026-11-15 17:00 UTC), None) },
        ];
        assert_eq!(
            reminder(&c, 7, &events),
            ("Not sent 15 Nov 2026 09:01: smtp: connection refused".to_string(), true)
        );
        let mut with_new = vec![ev("reissued", datetime!(2026-11-15 17:00 UTC), Some("nurse.test"))];
        with_new.extend(events);
        assert_eq!(
            reminder(&c, 7, &with_new).0,
            "Not sent 15 Nov 2026 09:01: smtp: connection refused · new link 15 Nov 2026 11:00"
        );
    }

    #[test]
    fn forms_are_named_for_staff() {
        assert_eq!(form_label("phq9"), "PHQ-9");
        assert_eq!(form_label("pre_dose_screen"), "Pre-dose screen");
        assert_eq!(form_label("nonesuch"), "nonesuch");
        let sendable = sendable_forms();
        assert_eq!(sendable[0].value, "phq9", "PHQ-9 first");
        for code in ["gad7", "after_session", "urinary_symptoms"] {
            assert!(sendable.iter().any(|c| c.value == code), "{code} can be sent");
        }
        assert!(!sendable.iter().any(|c| c.value == "madrs"), "clinician-rated instruments are not sent");
    }

    #[test]
    fn safety_answers_name_the_item_and_the_answer() {
        assert!(safety_item("phq9", 9).starts_with("Item 9 ("), "{}", safety_item("phq9", 9));
        assert_eq!(safety_item("nonesuch", 3), "Item 3");
        assert!(safety_answer("phq9", 2).starts_with("2 ("), "{}", safety_answer("phq9", 2));
        assert_eq!(safety_answer("nonesuch", 2), "2");
    }

    #[test]
    fn the_relapse_flag_suggests_bringing_the_next_session_forward() {
        let c = clock();
        let mut f = RelapseFlag {
            relapse_at: datetime!(2026-11-10 15:00 UTC),
            relapse_total: 16,
            baseline: 20,
            responded_at: datetime!(2026-10-01 15:00 UTC),
            bring_forward: relapse::BringForward {
                next_planned: Some(datetime!(2026-11-30 15:00 UTC)),
                suggest_by: Some(datetime!(2026-11-17 15:00 UTC)),
            },
            message: String::new(),
        };
        let v = relapse_flag(&c, "PHQ-9", &f, Some(7), NOW);
        assert_eq!(
            v.headline,
            "PHQ-9 16 on 10 Nov is past the relapse threshold after the response on 1 Oct (baseline 20)."
        );
        assert_eq!(
            v.suggestion,
            "Review the patient and consider bringing the next maintenance session forward: offer one by Tue 17 Nov 2026 (planned: Mon 30 Nov 2026 at 09:00)."
        );
        f.bring_forward.suggest_by = None;
        assert!(relapse_flag(&c, "PHQ-9", &f, None, NOW).suggestion.contains("(Mon 30 Nov 2026 at 09:00) forward"));
        assert!(relapse_flag(&c, "PHQ-9", &f, Some(30), NOW).suggestion.contains("already within"));
        f.bring_forward.next_planned = None;
        assert!(relapse_flag(&c, "PHQ-9", &f, None, NOW).suggestion.contains("none is planned"));
    }

    #[test]
    fn missing_settings_tell_the_administrator_what_to_set() {
        assert_eq!(missing_settings(&[]), None);
        let m = missing_settings(&["alcohol.free_hours".into(), "sedatives.free_hours".into()]).unwrap();
        assert!(m.contains("alcohol_free_hours and sedative_free_hours"), "{m}");
        assert!(m.contains("PUT /api/v1/settings/home-pre-dose"), "{m}");
    }

    #[test]
    fn units_and_milligrams_read_plainly() {
        assert_eq!(units_mg(30, 300.0), "30 units · 300 mg");
        assert_eq!(units_mg(1, 12.5), "1 unit · 12.5 mg");
        assert_eq!(units_mg(0, 0.0), "0 units · 0 mg");
    }

    #[test]
    fn reconciliation_issues_read_as_sentences() {
        let c = clock();
        assert_eq!(
            reconciliation_issue(&c, &ReconciliationIssue::CountMismatch { expected_units: 4, counted_units: 3 }),
            "The patient counted 3 units on hand; 4 expected"
        );
        let r = Reconciliation {
            dispensed_units: 10,
            logged_units: 6,
            dispensed_mg: keta_domain::units::Milligrams(100.0),
            logged_mg: keta_domain::units::Milligrams(60.0),
            expected_on_hand_units: 4,
            counted_on_hand_units: None,
            issues: vec![],
        };
        assert_eq!(on_hand(&r), "4 expected, not counted yet");
    }

    #[test]
    fn question_set_answers_use_their_labels_and_flags_their_severity() {
        let set = question_sets::get("urinary_symptoms").expect("shipped");
        let q = &set.questions[0];
        let mut answers = serde_json::Map::new();
        answers.insert(q.id.clone(), serde_json::json!(true));
        answers.insert("retired_question".into(), serde_json::json!("x"));
        let r = QuestionSetResponse {
            id: 1,
            set_code: set.code.clone(),
            answers: serde_json::Value::Object(answers),
            flags: serde_json::json!([{
                "question_set": set.code, "question": q.id, "code": "c", "severity": "urgent",
                "message": "Blood in the urine", "source": {"section": "§4.3", "tags": []}
            }]),
            completed_at: NOW,
        };
        let row = question_set_row(&clock(), &r);
        assert_eq!(row.name, set.name);
        assert_eq!(row.answers[0], (q.text.clone(), "Yes".to_string()));
        assert_eq!(row.answers[1], ("retired_question".to_string(), "x".to_string()));
        assert_eq!(row.flags, vec![("flag-urgent", "Blood in the urine".to_string())]);
    }
}
