//! Relapse watch between sessions, and the durability of each past response.
//!
//! A *response episode* starts at a score that meets the instrument's response criterion
//! (from [`crate::outcomes`], relative to the course baseline = the earliest score) and ends at
//! the first later score past the clinic's *relapse threshold* ([`RelapseThreshold`]). A later
//! response starts a new episode. The durability of an ended episode is the days from its
//! response to its loss.
//!
//! When the patient's most recent episode has ended and no new response has followed, the
//! watch raises a [`RelapseFlag`]: review the patient and consider bringing the next
//! maintenance session forward (clinical-reference §2.1 [S12]: maintenance is individualised,
//! "dose shortly before expected loss of effect").
//!
//! # Settings
//!
//! * `threshold` — default [`RelapseThreshold::LossOfResponse`], the relapse rule of the
//!   embedded outcome definitions (`data/rules/outcome-definitions.toml`). A clinic may instead
//!   set an absolute total (`TotalAtLeast`); the reference gives no such number, so it has no
//!   default.
//! * `bring_forward_within_days` — how soon after a relapse the next maintenance session should
//!   be offered. The reference gives no number, so there is **no default**: when unset the
//!   suggestion says "bring forward" without a date and the clinician chooses.
//!
//! Pure: the caller passes `now`, the scores, and the session times.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::error::DomainError;
use crate::ids::CourseId;
use crate::instruments::catalog;
use crate::outcomes::{OutcomeDefinition, ScorePoint};
use crate::session::{SessionState, TreatmentSession};

const SECONDS_PER_DAY: f64 = 86_400.0;

fn days_between(from: OffsetDateTime, to: OffsetDateTime) -> f64 {
    (to - from).as_seconds_f64() / SECONDS_PER_DAY
}

/// When a score after a response counts as a relapse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RelapseThreshold {
    /// The score no longer meets the definition's response criterion (the default; matches
    /// `RelapseRule::LossOfResponse` in `crate::outcomes`).
    #[default]
    LossOfResponse,
    /// The total is at or above `total` (clinic setting; no default in the reference).
    TotalAtLeast { total: i32 },
}

/// The clinic's relapse-watch settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelapseSettings {
    #[serde(default)]
    pub threshold: RelapseThreshold,
    /// Days after the relapse score by which to offer the next maintenance session.
    /// Clinic setting with no default (not in clinical-reference).
    #[serde(default)]
    pub bring_forward_within_days: Option<u32>,
}

impl RelapseSettings {
    /// The instrument whose totals the clinic's settings are written in.
    pub const INSTRUMENT: &'static str = "phq9";

    /// The settings that apply to `instrument`: the clinic's for [`Self::INSTRUMENT`], the
    /// default (loss of response, nothing brought forward) for every other instrument.
    pub fn for_instrument(self, instrument: &str) -> Self {
        if instrument == Self::INSTRUMENT { self } else { Self::default() }
    }

    /// Checks the settings against the instrument's range.
    pub fn validate(&self, instrument_code: &str) -> Result<(), DomainError> {
        // Plausibility: schemathesis stored 2^31 days.
        let max = crate::plausible::ranges().counts.interval_days_max;
        if self.bring_forward_within_days.is_some_and(|d| d > max) {
            return Err(DomainError::field("bring_forward_within_days", format!("give at most {max} days")));
        }
        if let RelapseThreshold::TotalAtLeast { total } = self.threshold {
            let inst = catalog()
                .get(instrument_code)
                .ok_or_else(|| DomainError::field("instrument", format!("unknown instrument `{instrument_code}`")))?;
            let (lo, hi) = (inst.min_total.unwrap_or(0), inst.max_total.unwrap_or(0));
            if !(lo..=hi).contains(&total) {
                return Err(DomainError::field(
                    "threshold.total",
                    format!("must be within the {lo}-{hi} range of {}", inst.short_name),
                ));
            }
        }
        Ok(())
    }
}

/// One response and, if it ended, its loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct ResponseEpisode {
    #[serde(with = "time::serde::rfc3339")]
    pub responded_at: OffsetDateTime,
    pub response_total: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub lost_at: Option<OffsetDateTime>,
    pub lost_total: Option<i32>,
    /// Days from response to loss; `None` while the episode is ongoing.
    pub durability_days: Option<f64>,
}

/// What the watch suggests when a relapse is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct BringForward {
    /// The next planned maintenance session, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_planned: Option<OffsetDateTime>,
    /// Offer a session by this time (relapse score + `bring_forward_within_days`); `None` when
    /// the setting is unset, or when the planned session is already that soon.
    #[serde(with = "time::serde::rfc3339::option")]
    pub suggest_by: Option<OffsetDateTime>,
}

/// Review needed: the patient lost their response.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RelapseFlag {
    /// The score that crossed the threshold (a stable key for de-duplicating alerts).
    #[serde(with = "time::serde::rfc3339")]
    pub relapse_at: OffsetDateTime,
    pub relapse_total: i32,
    pub baseline: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub responded_at: OffsetDateTime,
    pub bring_forward: BringForward,
    pub message: String,
}

/// The relapse watch for one instrument in one course.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RelapseWatch {
    pub instrument: String,
    /// The outcome definition used for response (recorded as with every outcome figure).
    pub definition_id: String,
    pub threshold: RelapseThreshold,
    pub baseline: i32,
    /// All response episodes, oldest first.
    pub episodes: Vec<ResponseEpisode>,
    /// In a response episode at the latest score.
    pub currently_responding: bool,
    /// Days from the last session to `now` (for the chart).
    pub days_since_last_session: Option<f64>,
    pub flag: Option<RelapseFlag>,
}

impl RelapseWatch {
    /// Durability (days) of each ended episode, oldest first.
    pub fn durabilities(&self) -> Vec<f64> {
        self.episodes.iter().filter_map(|e| e.durability_days).collect()
    }
}

/// The last session given in a course (dosing started, or later) and the next one booked: what
/// the relapse watch measures from and would bring forward. The chart and the relapse alerts
/// both use this.
pub fn last_and_next(
    sessions: &[TreatmentSession],
    course: CourseId,
    now: OffsetDateTime,
) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
    let mine = || sessions.iter().filter(move |s| s.course_id == course);
    let last = mine()
        .filter(|s| {
            s.dose_started_at.is_some()
                || matches!(s.state, SessionState::Dosing | SessionState::Monitoring | SessionState::Discharged)
        })
        .map(|s| s.dose_started_at.unwrap_or(s.scheduled_for))
        .filter(|t| *t <= now)
        .max();
    let next =
        mine().filter(|s| s.state == SessionState::Scheduled && s.scheduled_for > now).map(|s| s.scheduled_for).min();
    (last, next)
}

/// Runs the watch over a course's scores (any order; the earliest is the baseline).
///
/// Returns `Ok(None)` when there are no scores. Errors when the definition has no response
/// criterion (nothing to lose) or the settings do not fit the instrument.
pub fn watch(
    def: &OutcomeDefinition,
    points: &[ScorePoint],
    settings: &RelapseSettings,
    last_session: Option<OffsetDateTime>,
    next_maintenance: Option<OffsetDateTime>,
    now: OffsetDateTime,
    local_date: &dyn Fn(OffsetDateTime) -> Date,
) -> Result<Option<RelapseWatch>, DomainError> {
    let rule = def.response.as_ref().map(|r| r.rule).ok_or_else(|| {
        DomainError::Conflict(format!(
            "definition `{}` has no response criterion, so relapse cannot be watched",
            def.id
        ))
    })?;
    settings.validate(&def.instrument)?;
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|p| p.at);
    let Some(first) = sorted.first().copied() else { return Ok(None) };
    let baseline = first.total;

    let mut episodes: Vec<ResponseEpisode> = Vec::new();
    let mut responding = false;
    for p in &sorted[1..] {
        let meets = rule.is_met(baseline, p.total);
        if !responding {
            if meets == Some(true) {
                responding = true;
                episodes.push(ResponseEpisode {
                    responded_at: p.at,
                    response_total: p.total,
                    lost_at: None,
                    lost_total: None,
                    durability_days: None,
                });
            }
            continue;
        }
        let lost = match settings.threshold {
            RelapseThreshold::LossOfResponse => meets == Some(false),
            RelapseThreshold::TotalAtLeast { total } => p.total >= total,
        };
        if lost && let Some(e) = episodes.last_mut() {
            responding = false;
            e.lost_at = Some(p.at);
            e.lost_total = Some(p.total);
            e.durability_days = Some(days_between(e.responded_at, p.at));
        }
    }

    let flag = match episodes.last() {
        Some(e) if !responding => e.lost_at.zip(e.lost_total).map(|(at, total)| {
            let target = settings.bring_forward_within_days.map(|d| at + Duration::days(i64::from(d)));
            let suggest_by = match (target, next_maintenance) {
                (Some(t), Some(next)) if next <= t => None,
                (t, _) => t,
            };
            let message = format!(
                "{} total {} on {} is past the relapse threshold after a response on {} (baseline {}): review, and consider bringing the next maintenance session forward.",
                def.instrument,
                total,
                local_date(at),
                local_date(e.responded_at),
                baseline
            );
            RelapseFlag {
                relapse_at: at,
                relapse_total: total,
                baseline,
                responded_at: e.responded_at,
                bring_forward: BringForward { next_planned: next_maintenance, suggest_by },
                message,
            }
        }),
        _ => None,
    };

    Ok(Some(RelapseWatch {
        instrument: def.instrument.clone(),
        definition_id: def.id.clone(),
        threshold: settings.threshold,
        baseline,
        episodes,
        currently_responding: responding,
        days_since_last_session: last_session.map(|s| days_between(s, now)),
        flag,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcomes::definition_for;
    use time::macros::datetime;

    #[test]
    fn last_session_given_and_next_booked() {
        use crate::course::Route;
        use crate::ids::{PatientId, SessionId, SiteId};
        let now = datetime!(2026-11-27 12:00 UTC);
        let s = |id: i64, course: i64, day: i64, state: SessionState, dosed: bool| {
            let at = now + Duration::days(day);
            TreatmentSession {
                id: SessionId(id),
                course_id: CourseId(course),
                patient_id: PatientId(1),
                site_id: SiteId(1),
                chair_id: None,
                route: Route::IvRacemic,
                sequence: 1,
                scheduled_for: at,
                state,
                checked_in_at: None,
                pre_dose_checks_at: None,
                dose_started_at: dosed.then_some(at + Duration::minutes(10)),
                monitoring_started_at: None,
                discharged_at: None,
                stopped_at: None,
                stop_reason: None,
                planned_dose_mg: None,
                note: None,
            }
        };
        let sessions = [
            s(1, 1, -9, SessionState::Discharged, true),
            // Imported as discharged without a dose time: it still counts, at its booked time.
            s(2, 1, -2, SessionState::Discharged, false),
            s(3, 1, -1, SessionState::Stopped, false),
            s(4, 1, 3, SessionState::Scheduled, false),
            s(5, 1, 7, SessionState::Scheduled, false),
            s(6, 2, -1, SessionState::Discharged, true), // another course
        ];
        assert_eq!(
            last_and_next(&sessions, CourseId(1), now),
            (Some(now - Duration::days(2)), Some(now + Duration::days(3)))
        );
        assert_eq!(last_and_next(&sessions, CourseId(3), now), (None, None));
    }

    const T0: OffsetDateTime = datetime!(2025-01-06 09:00 UTC);

    fn utc(t: OffsetDateTime) -> Date {
        t.date()
    }

    fn at(day: i64) -> OffsetDateTime {
        T0 + Duration::days(day)
    }

    fn pts(list: &[(i64, i32)]) -> Vec<ScorePoint> {
        list.iter().map(|&(d, total)| ScorePoint { at: at(d), total }).collect()
    }

    #[test]
    fn loss_of_response_flags_and_measures_durability() {
        let def = definition_for("phq9").unwrap();
        // Baseline 20; response at day 14 (10 = −50 %); still responding at 21; lost at 35 (12).
        let w = watch(
            def,
            &pts(&[(0, 20), (14, 10), (21, 8), (35, 12)]),
            &RelapseSettings::default(),
            Some(at(12)),
            None,
            at(36),
            &utc,
        )
        .unwrap()
        .unwrap();
        assert_eq!(w.episodes.len(), 1);
        assert_eq!(w.episodes[0].responded_at, at(14));
        assert_eq!(w.episodes[0].lost_at, Some(at(35)));
        assert_eq!(w.durabilities(), vec![21.0]);
        assert!(!w.currently_responding);
        assert_eq!(w.days_since_last_session, Some(24.0));
        let f = w.flag.unwrap();
        assert_eq!((f.relapse_at, f.relapse_total, f.baseline), (at(35), 12, 20));
        assert_eq!(f.bring_forward, BringForward { next_planned: None, suggest_by: None });
        assert!(f.message.contains("phq9 total 12"), "{}", f.message);
        assert!(f.message.contains("on 2025-02-10") && f.message.contains("response on 2025-01-20"), "{}", f.message);
        assert_eq!(w.definition_id, "phq9");
    }

    #[test]
    fn the_relapse_message_names_the_sites_dates() {
        // 09:00 UTC is 23:00 the day before at a site ten hours behind UTC (Honolulu).
        let honolulu = |t: OffsetDateTime| t.to_offset(time::macros::offset!(-10)).date();
        let def = definition_for("phq9").unwrap();
        let series = pts(&[(0, 20), (14, 10), (35, 12)]);
        let w = watch(def, &series, &RelapseSettings::default(), None, None, at(36), &honolulu).unwrap().unwrap();
        let m = w.flag.unwrap().message;
        assert!(m.contains("on 2025-02-09") && m.contains("response on 2025-01-19"), "{m}");
    }

    #[test]
    fn several_episodes_and_a_new_response_clears_the_flag() {
        let def = definition_for("madrs").unwrap();
        let w = watch(
            def,
            &pts(&[(0, 30), (7, 14), (20, 20), (27, 12), (50, 18), (60, 9)]),
            &RelapseSettings::default(),
            None,
            None,
            at(61),
            &utc,
        )
        .unwrap()
        .unwrap();
        assert_eq!(w.episodes.len(), 3);
        assert_eq!(w.durabilities(), vec![13.0, 23.0]);
        assert_eq!(w.episodes[2].durability_days, None);
        assert!(w.currently_responding);
        assert!(w.flag.is_none());
        assert_eq!(w.days_since_last_session, None);
    }

    #[test]
    fn never_responding_is_not_a_relapse() {
        let def = definition_for("phq9").unwrap();
        let w = watch(def, &pts(&[(0, 20), (7, 18), (14, 25)]), &RelapseSettings::default(), None, None, at(15), &utc)
            .unwrap()
            .unwrap();
        assert!(w.episodes.is_empty() && w.flag.is_none() && !w.currently_responding);
    }

    #[test]
    fn absolute_threshold_setting() {
        let def = definition_for("phq9").unwrap();
        let settings =
            RelapseSettings { threshold: RelapseThreshold::TotalAtLeast { total: 15 }, ..Default::default() };
        // 12 no longer meets response (−40 %) but is below the clinic's 15: not a relapse yet.
        let series = pts(&[(0, 20), (7, 9), (14, 12)]);
        let w = watch(def, &series, &settings, None, None, at(15), &utc).unwrap().unwrap();
        assert!(w.currently_responding && w.flag.is_none());
        let mut series = series;
        series.push(ScorePoint { at: at(21), total: 15 });
        let w = watch(def, &series, &settings, None, None, at(22), &utc).unwrap().unwrap();
        assert_eq!(w.durabilities(), vec![14.0]);
        assert_eq!(w.flag.unwrap().relapse_at, at(21));

        let bad = RelapseSettings { threshold: RelapseThreshold::TotalAtLeast { total: 40 }, ..Default::default() };
        let err = watch(def, &series, &bad, None, None, at(22), &utc).unwrap_err().to_string();
        assert!(err.contains("threshold.total") && err.contains("0-27"), "{err}");
    }

    #[test]
    fn bring_forward_suggestion() {
        let def = definition_for("phq9").unwrap();
        let series = pts(&[(0, 20), (7, 8), (21, 14)]);
        let settings = RelapseSettings { bring_forward_within_days: Some(3), ..Default::default() };
        // Next maintenance planned at day 35: suggest by day 24.
        let w = watch(def, &series, &settings, None, Some(at(35)), at(22), &utc).unwrap().unwrap();
        assert_eq!(
            w.flag.unwrap().bring_forward,
            BringForward { next_planned: Some(at(35)), suggest_by: Some(at(24)) }
        );
        // Already planned at day 23: nothing to bring forward.
        let w = watch(def, &series, &settings, None, Some(at(23)), at(22), &utc).unwrap().unwrap();
        assert_eq!(w.flag.unwrap().bring_forward.suggest_by, None);
    }

    #[test]
    fn no_response_rule_or_no_points() {
        assert!(
            watch(
                definition_for("pcl5").unwrap(),
                &pts(&[(0, 50)]),
                &RelapseSettings::default(),
                None,
                None,
                at(1),
                &utc
            )
            .is_err()
        );
        assert_eq!(
            watch(definition_for("phq9").unwrap(), &[], &RelapseSettings::default(), None, None, at(1), &utc),
            Ok(None)
        );
    }

    #[test]
    fn settings_deserialize_with_default_threshold() {
        let s: RelapseSettings = toml::from_str("").unwrap();
        assert_eq!(s, RelapseSettings::default());
        let s: RelapseSettings =
            toml::from_str("bring_forward_within_days = 2\nthreshold = { kind = \"total_at_least\", total = 15 }")
                .unwrap();
        assert_eq!(s.threshold, RelapseThreshold::TotalAtLeast { total: 15 });
    }
}
