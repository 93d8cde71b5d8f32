//! Pure helpers: the words and rows the panel shows, from stored records (time and the
//! site's clock passed in).

use super::*;

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

pub(super) fn safety_row(clock: &SiteClock, s: &SafetyAnswer, open: &[Alert]) -> SafetyRow {
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
    format!("{units} unit{} · {} mg", if units == 1 { "" } else { "s" }, crate::ui::pk_panel::num(mg))
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

pub(super) fn screen_outcome(s: &PreDoseScreen) -> (&'static str, &'static str) {
    match s.outcome.as_str() {
        "cleared" => ("Cleared", "st-good"),
        "refused" => ("Refused", "st-stop"),
        "awaiting_sitter" => ("Waiting for the sitter", "st-caution"),
        _ => ("Unknown", "st-muted"),
    }
}

pub(super) fn screen_row(clock: &SiteClock, s: &PreDoseScreen, form: Option<(&FormData, &Errors)>) -> ScreenRow {
    let (outcome, outcome_class) = screen_outcome(s);
    // the sitter's contact, so staff can reach them from the chart.
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

pub(super) fn answer_text(q: Option<&question_sets::Question>, v: &AnswerValue) -> String {
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
    format!("{} · {} · from {}", c.route.label(), c.phase.as_str(), crate::ui::clock::date_label(c.start_date))
}

/// The instrument to watch in a course: PHQ-9 when it has scores, else the first with a
/// response criterion (as the outcomes table lists them).
pub(super) fn watched_instrument(chart: &PatientChart, course: CourseId) -> Option<&'static str> {
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

pub(super) fn threshold_text(t: relapse::RelapseThreshold) -> String {
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

pub(super) fn link_row(
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
