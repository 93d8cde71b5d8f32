//! Between-session check-in schedules, as data (`data/checkins/default.toml`).
//!
//! A [`CheckInSchedule`] lists [`CheckInItem`]s: which form (a patient-completed instrument,
//! or a question set still to be authored), when ([`Timing`]: before each session, a set time
//! after each session, or every N days from the course start) and for how long (periodic items
//! follow the patient for a set number of days after the latest session; any item may be capped
//! at `for_days` from the course start). Every item carries its source; values the reference
//! does not give are marked as clinic settings in the data file.
//!
//! [`plan_checkins`] expands a schedule into concrete occurrences for a course, and
//! [`due_checkins`] returns the ones open at `now`. Each occurrence has a stable `key`
//! (`item_id:trigger:index`) so storage can create each one exactly once; a missed check-in is
//! one whose window closed without a completion.
//!
//! A clinician changes one patient's schedule with a [`ScheduleOverride`] (remove items, add
//! or replace items), applied by [`apply_override`], which validates the result.
//!
//! Pure: no clock reads; the caller passes the course start, the session times and `now`.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::course::Route;
use crate::error::{DomainError, Validator};
use crate::instruments::{CompletedBy, SourceRef, catalog};

/// What the patient fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormKind {
    /// A patient-completed instrument from `data/instruments/`.
    Instrument,
    /// A short question set not in the instrument catalog (after-session, urinary symptoms).
    QuestionSet,
    /// The at-home pre-dose screen (`home_dosing`), with the sitter's own confirmation.
    PreDoseScreen,
}

/// When a check-in opens and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Timing {
    /// Opens `opens_hours_before` hours before each session; closes when the session starts.
    BeforeEachSession { opens_hours_before: u32 },
    /// Opens `after_hours` after each session; stays open `open_hours`.
    AfterEachSession { after_hours: u32, open_hours: u32 },
    /// Opens every `days` days from the course start (first at day `days`); open `open_hours`.
    Every { days: u32, open_hours: u32 },
    /// Opens `opens_hours_before` each session and closes `closes_hours_after` it (the at-home
    /// pre-dose screen, answered just before a dose taken around its planned time).
    AroundEachSession { opens_hours_before: u32, closes_hours_after: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInItem {
    /// Unique within the schedule, e.g. `phq9_weekly`.
    pub id: String,
    /// Instrument code (`phq9`) or question-set code (`urinary_symptoms`).
    pub form: String,
    pub kind: FormKind,
    pub timing: Timing,
    /// Periodic items: keep going this many days after the latest session.
    #[serde(default)]
    pub follow_up_days_after_last_session: Option<u32>,
    /// Cap on any item: no occurrence opens after this many days from the course start.
    #[serde(default)]
    pub for_days: Option<u32>,
    pub source: SourceRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInSchedule {
    pub id: String,
    pub name: String,
    /// Routes whose courses use this schedule by default.
    pub routes: Vec<Route>,
    pub source: SourceRef,
    /// The hour (0-23, on the site's clock) at which `every` items open on their day, so a
    /// weekly reminder arrives at a sensible local time wherever the clinic is.
    pub periodic_opens_local_hour: u8,
    pub items: Vec<CheckInItem>,
}

impl CheckInSchedule {
    /// Checks the schedule; reports every problem, naming the item.
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        self.check_into(&mut v, "schedule");
        v.finish()
    }

    fn check_into(&self, v: &mut Validator, at: &str) {
        v.check(!self.id.trim().is_empty(), &format!("{at}.id"), "must not be empty");
        v.check(!self.source.section.trim().is_empty(), &format!("{at}.source"), "name the source section");
        v.check(
            self.periodic_opens_local_hour <= 23,
            &format!("{at}.periodic_opens_local_hour"),
            "must be an hour of the day, 0 to 23",
        );
        // A pre-dose screen before every home dose; no change of schedule removes it.
        if !self.routes.is_empty() && self.routes.iter().all(|r| r.is_home()) {
            v.check(
                self.items.iter().any(|i| i.kind == FormKind::PreDoseScreen),
                &format!("{at}.items"),
                "an at-home schedule keeps its pre-dose screen: every home dose needs one",
            );
        }
        let mut ids = HashSet::new();
        for (i, item) in self.items.iter().enumerate() {
            let f = format!("{at}.items[{i}]");
            v.check(ids.insert(item.id.as_str()), &f, format!("duplicate item id `{}`", item.id));
            v.check(!item.id.trim().is_empty(), &format!("{f}.id"), "must not be empty");
            v.check(!item.source.section.trim().is_empty(), &format!("{f}.source"), "name the source section");
            match item.kind {
                FormKind::Instrument => match catalog().get(&item.form) {
                    None => v.push(&format!("{f}.form"), format!("`{}` is not a known instrument", item.form)),
                    Some(inst) => v.check(
                        inst.completed_by == CompletedBy::Patient,
                        &format!("{f}.form"),
                        format!("{} is completed by a clinician, not a patient check-in", inst.short_name),
                    ),
                },
                FormKind::QuestionSet => v.check(
                    crate::question_sets::get(&item.form).is_some(),
                    &format!("{f}.form"),
                    format!(
                        "`{}` is not a known question set; use one of: {}",
                        item.form,
                        crate::question_sets::catalog().iter().map(|q| q.code.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ),
                FormKind::PreDoseScreen => v.check(
                    self.routes.iter().all(|r| r.is_home()),
                    &format!("{f}.kind"),
                    "a pre-dose screen belongs to at-home (oral or sublingual) schedules only",
                ),
            }
            let t = format!("{f}.timing");
            match item.timing {
                Timing::BeforeEachSession { opens_hours_before } => {
                    v.check(opens_hours_before > 0, &t, "opens_hours_before must be at least 1");
                }
                Timing::AfterEachSession { open_hours, .. } => {
                    v.check(open_hours > 0, &t, "open_hours must be at least 1");
                }
                Timing::AroundEachSession { opens_hours_before, closes_hours_after } => {
                    v.check(
                        opens_hours_before.checked_add(closes_hours_after).is_some_and(|h| (1..=24 * 31).contains(&h)),
                        &t,
                        "the window (opens_hours_before + closes_hours_after) must be 1 to 744 hours",
                    );
                }
                Timing::Every { days, open_hours } => {
                    v.check(days > 0, &t, "days must be at least 1");
                    v.check(
                        open_hours > 0 && u64::from(open_hours) <= u64::from(days) * 24,
                        &t,
                        "open_hours must be at least 1 and no longer than the interval",
                    );
                    v.check(
                        item.follow_up_days_after_last_session.is_some() || item.for_days.is_some(),
                        &f,
                        "a periodic item needs follow_up_days_after_last_session or for_days (for how long)",
                    );
                }
            }
            v.check(item.for_days != Some(0), &format!("{f}.for_days"), "must be at least 1 day");
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulesFile {
    schedules: Vec<CheckInSchedule>,
}

const EMBEDDED: &str = include_str!("../../../data/checkins/default.toml");

/// Parses and checks a schedules file (format of `data/checkins/default.toml`).
pub fn parse_schedules(text: &str) -> Result<Vec<CheckInSchedule>, DomainError> {
    let file: SchedulesFile =
        toml::from_str(text).map_err(|e| DomainError::field("checkin_schedules", e.to_string()))?;
    let mut v = Validator::new();
    let mut ids = HashSet::new();
    let mut routes = HashSet::new();
    for (i, s) in file.schedules.iter().enumerate() {
        let at = format!("schedules[{i}]");
        v.check(ids.insert(s.id.as_str()), &at, format!("duplicate schedule id `{}`", s.id));
        for r in &s.routes {
            v.check(routes.insert(*r), &at, format!("route `{}` already has a default schedule", r.as_str()));
        }
        s.check_into(&mut v, &at);
    }
    v.finish()?;
    Ok(file.schedules)
}

/// The embedded default schedules.
///
/// # Panics
/// If the embedded file is invalid — a build defect caught by this module's tests.
pub fn builtin_schedules() -> &'static [CheckInSchedule] {
    static S: OnceLock<Vec<CheckInSchedule>> = OnceLock::new();
    S.get_or_init(|| {
        parse_schedules(EMBEDDED).unwrap_or_else(|e| panic!("embedded data/checkins/default.toml is invalid: {e}"))
    })
}

/// How far back, in days, the sweep must look for a course's last session so that no built-in
/// check-in can still be open: the longest follow-up plus that item's window. Courses with a
/// per-patient schedule are looked at whatever their age (the store selects them too).
pub fn sweep_look_back_days() -> u32 {
    builtin_schedules()
        .iter()
        .flat_map(|s| &s.items)
        .filter_map(|i| {
            let window_hours = match i.timing {
                Timing::Every { open_hours, .. } | Timing::AfterEachSession { open_hours, .. } => open_hours,
                Timing::BeforeEachSession { .. } => 0,
                Timing::AroundEachSession { closes_hours_after, .. } => closes_hours_after,
            };
            i.follow_up_days_after_last_session.map(|d| d + window_hours.div_ceil(24))
        })
        .max()
        .unwrap_or(0)
}

/// The default schedule for a route.
pub fn schedule_for_route(route: Route) -> Option<&'static CheckInSchedule> {
    builtin_schedules().iter().find(|s| s.routes.contains(&route))
}

/// A clinician's change to one patient's schedule. `reason` is required and kept with it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleOverride {
    /// Item ids to drop.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Items to add, or to replace when the id already exists.
    #[serde(default)]
    pub upsert: Vec<CheckInItem>,
    pub reason: String,
}

/// Applies a per-patient override to a schedule and validates the result.
pub fn apply_override(base: &CheckInSchedule, o: &ScheduleOverride) -> Result<CheckInSchedule, DomainError> {
    let mut v = Validator::new();
    v.check(!o.reason.trim().is_empty(), "reason", "say why this patient's schedule differs");
    for (i, id) in o.remove.iter().enumerate() {
        v.check(
            base.items.iter().any(|it| &it.id == id),
            &format!("remove[{i}]"),
            format!("no item `{id}` in the schedule"),
        );
    }
    v.finish()?;
    let mut out = base.clone();
    out.items.retain(|it| !o.remove.contains(&it.id));
    for item in &o.upsert {
        match out.items.iter_mut().find(|it| it.id == item.id) {
            Some(existing) => *existing = item.clone(),
            None => out.items.push(item.clone()),
        }
    }
    out.validate()?;
    Ok(out)
}

/// Which event produced an occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// Before session number `session` (0-based, in time order).
    BeforeSession { session: usize },
    /// After session number `session`.
    AfterSession { session: usize },
    /// The `n`-th periodic occurrence (1-based).
    Periodic { n: u32 },
}

/// One concrete check-in for a course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DueCheckIn {
    /// Stable id within the course: `item_id:before:3`, `item_id:after:3`, `item_id:every:2`.
    pub key: String,
    pub item_id: String,
    pub form: String,
    pub kind: FormKind,
    pub trigger: Trigger,
    #[serde(with = "time::serde::rfc3339")]
    pub opens_at: OffsetDateTime,
    /// Exclusive: the check-in is open for `opens_at <= t < closes_at`.
    #[serde(with = "time::serde::rfc3339")]
    pub closes_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub session_at: Option<OffsetDateTime>,
}

impl DueCheckIn {
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        self.opens_at <= now && now < self.closes_at
    }
    /// The window closed (a missed check-in, unless it was completed).
    pub fn has_closed(&self, now: OffsetDateTime) -> bool {
        now >= self.closes_at
    }
}

/// A course's calendar: day `d` of the course (0 is its start date) at the schedule's
/// `periodic_opens_local_hour` on the site's clock. Periodic check-ins open on these instants,
/// so they keep the local hour across daylight-saving changes. A fixed instant is a calendar
/// of whole 24-hour days (a site on UTC, and tests).
pub trait CourseDays {
    fn day(&self, d: i64) -> OffsetDateTime;
}

impl CourseDays for OffsetDateTime {
    fn day(&self, d: i64) -> OffsetDateTime {
        *self + Duration::days(d)
    }
}

/// Every occurrence of the schedule for a course, ordered by opening time (then key).
/// Sessions may be in any order; duplicates are ignored.
pub fn plan_checkins(
    schedule: &CheckInSchedule,
    course: &impl CourseDays,
    session_times: &[OffsetDateTime],
) -> Vec<DueCheckIn> {
    let mut sessions = session_times.to_vec();
    sessions.sort();
    sessions.dedup();
    let course_start = course.day(0);
    let last_anchor = sessions.last().copied().unwrap_or(course_start).max(course_start);
    let mut out = Vec::new();
    for item in &schedule.items {
        let cap = item.for_days.map(|d| course.day(i64::from(d)));
        let within_cap = |t: OffsetDateTime| cap.is_none_or(|c| t <= c);
        let mk = |trigger: Trigger, key: String, opens_at, closes_at, session_at| DueCheckIn {
            key,
            item_id: item.id.clone(),
            form: item.form.clone(),
            kind: item.kind,
            trigger,
            opens_at,
            closes_at,
            session_at,
        };
        match item.timing {
            Timing::BeforeEachSession { opens_hours_before } => {
                for (i, &s) in sessions.iter().enumerate() {
                    let opens = s - Duration::hours(i64::from(opens_hours_before));
                    if within_cap(opens) {
                        out.push(mk(
                            Trigger::BeforeSession { session: i },
                            format!("{}:before:{i}", item.id),
                            opens,
                            s,
                            Some(s),
                        ));
                    }
                }
            }
            Timing::AfterEachSession { after_hours, open_hours } => {
                for (i, &s) in sessions.iter().enumerate() {
                    let opens = s + Duration::hours(i64::from(after_hours));
                    if within_cap(opens) {
                        let closes = opens + Duration::hours(i64::from(open_hours));
                        out.push(mk(
                            Trigger::AfterSession { session: i },
                            format!("{}:after:{i}", item.id),
                            opens,
                            closes,
                            Some(s),
                        ));
                    }
                }
            }
            Timing::AroundEachSession { opens_hours_before, closes_hours_after } => {
                for (i, &s) in sessions.iter().enumerate() {
                    let opens = s - Duration::hours(i64::from(opens_hours_before));
                    if within_cap(opens) {
                        out.push(mk(
                            Trigger::BeforeSession { session: i },
                            format!("{}:around:{i}", item.id),
                            opens,
                            s + Duration::hours(i64::from(closes_hours_after)),
                            Some(s),
                        ));
                    }
                }
            }
            Timing::Every { days, open_hours } => {
                if days == 0 {
                    continue; // rejected by validation; never loop forever
                }
                let follow_end =
                    item.follow_up_days_after_last_session.map(|d| last_anchor + Duration::days(i64::from(d)));
                let end = match (follow_end, cap) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => continue, // rejected by validation: no end
                };
                let mut n = 1u32;
                loop {
                    let opens = course.day(i64::from(days) * i64::from(n));
                    if opens > end {
                        break;
                    }
                    let closes = opens + Duration::hours(i64::from(open_hours));
                    out.push(mk(Trigger::Periodic { n }, format!("{}:every:{n}", item.id), opens, closes, None));
                    n += 1;
                }
            }
        }
    }
    out.sort_by(|a, b| a.opens_at.cmp(&b.opens_at).then_with(|| a.key.cmp(&b.key)));
    out
}

/// The check-ins open at `now`: `opens_at <= now < closes_at`.
pub fn due_checkins(
    schedule: &CheckInSchedule,
    course: &impl CourseDays,
    session_times: &[OffsetDateTime],
    now: OffsetDateTime,
) -> Vec<DueCheckIn> {
    // A session outside the plausible scheduling window (stored before inputs were checked) is
    // left out: one in year 9999 overflowed the date arithmetic, a panic in every sweep, and
    // would stretch a periodic item over millennia.
    let (from, to) = crate::plausible::ranges().scheduling_window(now);
    let plausible: Vec<OffsetDateTime> = session_times.iter().copied().filter(|t| (from..=to).contains(t)).collect();
    plan_checkins(schedule, course, &plausible).into_iter().filter(|c| c.is_open(now)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const START: OffsetDateTime = datetime!(2025-02-03 09:00 UTC);

    fn day(d: i64) -> OffsetDateTime {
        START + Duration::days(d)
    }

    fn item(id: &str, form: &str, kind: FormKind, timing: Timing) -> CheckInItem {
        CheckInItem {
            id: id.into(),
            form: form.into(),
            kind,
            timing,
            follow_up_days_after_last_session: None,
            for_days: None,
            source: SourceRef { section: "test".into(), tags: vec![], note: None },
        }
    }

    fn schedule(items: Vec<CheckInItem>) -> CheckInSchedule {
        CheckInSchedule {
            id: "t".into(),
            name: "t".into(),
            routes: vec![],
            source: SourceRef { section: "test".into(), tags: vec![], note: None },
            periodic_opens_local_hour: 9,
            items,
        }
    }

    #[test]
    fn builtin_schedules_load_and_cover_every_route() {
        for r in Route::ALL {
            let s = schedule_for_route(r).unwrap_or_else(|| panic!("no schedule for {}", r.as_str()));
            assert!(s.items.iter().any(|i| i.form == "phq9" && matches!(i.timing, Timing::BeforeEachSession { .. })));
            assert!(s.items.iter().any(|i| i.form == "urinary_symptoms"), "§4.3 long-term screen");
            for it in &s.items {
                assert!(!it.source.section.is_empty());
            }
        }
    }

    #[test]
    fn before_and_after_each_session() {
        let s = schedule(vec![
            item("pre", "phq9", FormKind::Instrument, Timing::BeforeEachSession { opens_hours_before: 24 }),
            item(
                "post",
                "after_session",
                FormKind::QuestionSet,
                Timing::AfterEachSession { after_hours: 24, open_hours: 12 },
            ),
        ]);
        // Sessions given out of order: numbered in time order.
        let sessions = [day(3), day(0)];
        let plan = plan_checkins(&s, &START, &sessions);
        let keys: Vec<_> = plan.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["pre:before:0", "post:after:0", "pre:before:1", "post:after:1"]);
        assert_eq!((plan[0].opens_at, plan[0].closes_at), (day(-1), day(0)));
        assert_eq!((plan[1].opens_at, plan[1].closes_at), (day(1), day(1) + Duration::hours(12)));
        assert_eq!(plan[3].session_at, Some(day(3)));

        // 12 h before session 1: only its pre-session check-in is open.
        let due = due_checkins(&s, &START, &sessions, day(3) - Duration::hours(12));
        assert_eq!(due.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["pre:before:1"]);
        // Exactly at the session start the pre-session window has closed (exclusive end).
        assert!(due_checkins(&s, &START, &sessions, day(3)).is_empty());
        // 30 h after session 0: the after-session check-in is open.
        let due = due_checkins(&s, &START, &sessions, day(1) + Duration::hours(6));
        assert_eq!(due.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["post:after:0"]);
        assert!(plan[1].has_closed(day(2)));
    }

    #[test]
    fn weekly_follows_up_after_the_last_session() {
        let mut weekly = item("w", "phq9", FormKind::Instrument, Timing::Every { days: 7, open_hours: 72 });
        weekly.follow_up_days_after_last_session = Some(28);
        let s = schedule(vec![weekly]);
        // Last session at day 11: weekly until day 39 → days 7, 14, 21, 28, 35.
        let plan = plan_checkins(&s, &START, &[day(0), day(4), day(11)]);
        let opens: Vec<_> = plan.iter().map(|c| c.opens_at).collect();
        assert_eq!(opens, [day(7), day(14), day(21), day(28), day(35)]);
        assert_eq!(plan[4].key, "w:every:5");
        assert_eq!(plan[0].closes_at, day(10));
        // No sessions yet: follow-up counts from the course start.
        assert_eq!(plan_checkins(&s, &START, &[]).len(), 4);
        // Due at day 8, not at day 10 (closed) or day 6 (not open yet).
        assert_eq!(due_checkins(&s, &START, &[day(11)], day(8)).len(), 1);
        assert!(due_checkins(&s, &START, &[day(11)], day(10)).is_empty());
        assert!(due_checkins(&s, &START, &[day(11)], day(6)).is_empty());
    }

    #[test]
    fn for_days_caps_every_kind_of_item() {
        let mut monthly =
            item("m", "urinary_symptoms", FormKind::QuestionSet, Timing::Every { days: 30, open_hours: 168 });
        monthly.for_days = Some(90);
        let mut pre = item("pre", "phq9", FormKind::Instrument, Timing::BeforeEachSession { opens_hours_before: 24 });
        pre.for_days = Some(10);
        let s = schedule(vec![monthly, pre]);
        let plan = plan_checkins(&s, &START, &[day(2), day(9), day(20)]);
        let keys: Vec<_> = plan.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["pre:before:0", "pre:before:1", "m:every:1", "m:every:2", "m:every:3"]);
    }

    #[test]
    fn builtin_in_clinic_schedule_end_to_end() {
        let s = schedule_for_route(Route::IvRacemic).unwrap();
        let sessions: Vec<_> = [0, 2, 4, 7, 9, 11].iter().map(|&d| day(d)).collect();
        // Day 8, 10:00: the after-session check-in for day 7 and the first weekly scores are open.
        let due = due_checkins(s, &START, &sessions, day(8) + Duration::hours(1));
        let keys: Vec<_> = due.iter().map(|c| c.key.as_str()).collect();
        assert!(keys.contains(&"after_session:after:3"), "{keys:?}");
        assert!(keys.contains(&"phq9_weekly:every:1") && keys.contains(&"gad7_weekly:every:1"), "{keys:?}");
        // Before the day-9 session, PHQ-9 opens at day 8 09:00.
        assert!(keys.contains(&"phq9_before_session:before:4"), "{keys:?}");
        // Weekly PHQ-9 continues 63 days after the last session (day 11 → day 74): the last at
        // day 70, 59 days after it, so a score exists at 8 weeks for the durability figures.
        let plan = plan_checkins(s, &START, &sessions);
        let last_weekly = plan.iter().rfind(|c| c.item_id == "phq9_weekly").unwrap();
        assert_eq!(last_weekly.opens_at, day(70));
        assert!(last_weekly.opens_at - day(11) >= Duration::days(56));
    }

    #[test]
    fn the_sweep_looks_back_over_the_longest_follow_up_and_its_window() {
        // Urinary: 90 days' follow-up, open 7 days; weekly PHQ-9: 63 days, open 72 h.
        assert_eq!(sweep_look_back_days(), 97);
    }

    #[test]
    fn overrides_remove_add_and_replace() {
        let base = schedule_for_route(Route::IntranasalEsketamine).unwrap();
        let mut qids =
            item("qids_weekly", "qids_sr16", FormKind::Instrument, Timing::Every { days: 7, open_hours: 48 });
        qids.follow_up_days_after_last_session = Some(28);
        let mut urinary = base.items.iter().find(|i| i.id == "urinary_monthly").unwrap().clone();
        urinary.timing = Timing::Every { days: 14, open_hours: 72 };
        let o = ScheduleOverride {
            remove: vec!["gad7_weekly".into()],
            upsert: vec![qids, urinary],
            reason: "prefers QIDS; urinary symptoms reported".into(),
        };
        let s = apply_override(base, &o).unwrap();
        assert!(s.items.iter().all(|i| i.id != "gad7_weekly"));
        assert!(s.items.iter().any(|i| i.id == "qids_weekly"));
        let u = s.items.iter().find(|i| i.id == "urinary_monthly").unwrap();
        assert_eq!(u.timing, Timing::Every { days: 14, open_hours: 72 });
        assert_eq!(s.items.len(), base.items.len());
    }

    #[test]
    fn invalid_overrides_are_refused() {
        let base = schedule_for_route(Route::IvRacemic).unwrap();
        let o = ScheduleOverride { remove: vec!["nope".into()], upsert: vec![], reason: " ".into() };
        let err = apply_override(base, &o).unwrap_err().to_string();
        assert!(err.contains("reason") && err.contains("no item `nope`"), "{err}");
        // A clinician-completed instrument cannot be a phone check-in.
        let mut madrs = item("madrs", "madrs", FormKind::Instrument, Timing::Every { days: 7, open_hours: 24 });
        madrs.for_days = Some(30);
        let o = ScheduleOverride { upsert: vec![madrs], reason: "x".into(), ..Default::default() };
        let err = apply_override(base, &o).unwrap_err().to_string();
        assert!(err.contains("completed by a clinician"), "{err}");
        // A periodic item needs an end; its window must fit its interval.
        let endless = item("e", "phq9", FormKind::Instrument, Timing::Every { days: 1, open_hours: 48 });
        let o = ScheduleOverride { upsert: vec![endless], reason: "x".into(), ..Default::default() };
        let err = apply_override(base, &o).unwrap_err().to_string();
        assert!(err.contains("for how long") && err.contains("no longer than the interval"), "{err}");
        // An at-home patient keeps the pre-dose screen before every home dose.
        let home = schedule_for_route(Route::OralRacemic).unwrap();
        let o = ScheduleOverride { remove: vec!["pre_dose_screen".into()], reason: "x".into(), ..Default::default() };
        let err = apply_override(home, &o).unwrap_err().to_string();
        assert!(err.contains("keeps its pre-dose screen"), "{err}");
    }

    #[test]
    fn schedule_files_are_checked() {
        let dup_route = EMBEDDED.replace("routes = [\"oral_racemic\"", "routes = [\"iv_racemic\", \"oral_racemic\"");
        let err = parse_schedules(&dup_route).unwrap_err().to_string();
        assert!(err.contains("already has a default schedule"), "{err}");
        let unknown = EMBEDDED.replacen("form = \"gad7\"", "form = \"gad8\"", 1);
        assert!(parse_schedules(&unknown).unwrap_err().to_string().contains("`gad8` is not a known instrument"));
        assert!(parse_schedules("schedules = 1").is_err());
    }
}
