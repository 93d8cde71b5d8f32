//! Durability for the clinic: time from the last session to relapse, as Kaplan–Meier curves
//! per route or per protocol, with the shares still responding at 4 and 8 weeks, beside the
//! published figures of clinical-reference §5.
//!
//! # Who is counted
//!
//! The unit is a **course**: each course whose indication's primary instrument is the one
//! analysed (PHQ-9 for depression, [`crate::patient::Indication::primary_instrument`]), with a
//! baseline and at least one later score on that instrument (scores linked to the course).
//! Its scores go through the relapse watch ([`crate::relapse::watch`]) with the clinic's
//! [`RelapseSettings`] and the instrument's default outcome definition, so response is judged
//! against the course's first score, as in [`crate::outcomes`], except for maintenance:
//!
//! A maintenance course continues the treatment an induction course started, so its response
//! is judged against that induction's baseline: the first score of the patient's latest
//! induction course on the same route and indication that started no later than it
//! ([`CourseSeries::baseline`], found by [`crate::outcomes::continued_course`] and joined to the
//! course's scores by [`crate::outcomes::judged_points`], as [`crate::outcomes::judge_course`]
//! does for the chart, the outcomes table and the patient's page). Judged against its own first score (taken while already
//! responding), score noise of a point or two would make and break "responses".
//!
//! A course with a response episode is a **responder** and contributes one
//! [`SurvivalObservation`] (as [`crate::survival`] expects: one per responder, not one per
//! episode, whose repeats within a course would not be independent), from its *first* episode:
//!
//! * relapsed (the episode ended): an **event**, at the days from the last session dosed
//!   before the relapse score to that score;
//! * still responding: **censored**, at the days from the last session dosed before the
//!   latest score to that score. The latest score is the last time the patient was known to
//!   be responding, so follow-up ends there, not at "now".
//!
//! "Session" means one in which the dose was started; its time is the dose start. A later
//! response after a relapse (a new episode) is not counted again. A responder with no dosed
//! session before the end of follow-up has nothing to measure from: counted as a responder,
//! left out of the curve ([`DurabilityGroup::without_follow_up`]).
//!
//! A patient with an induction and a maintenance course contributes to the curve of each: the
//! induction course is followed until its last score (in practice until maintenance begins),
//! the maintenance course from its own sessions. Grouped by route, both land on the same
//! curve, which then holds two related observations from that patient (the intervals assume
//! independent observations, so they may be somewhat too narrow). Grouping by protocol keeps induction and maintenance
//! apart; McInnes 2022's figures are for responders *without* maintenance.
//!
//! # Confidence intervals
//!
//! 95 % pointwise intervals from Greenwood's variance on the complementary log-log scale
//! (Kalbfleisch & Prentice; R `survfit(conf.type = "log-log")`): with
//! `Σ = Var S / S²` and `se = √Σ / |ln S|`, the interval is `S^exp(+z·se)` to `S^exp(−z·se)`,
//! `z = 1.96`. It always lies in [0, 1], unlike the plain `S ± z·√Var` that small clinic
//! cohorts would push past 0 or 1. Where `S` is 1 (no relapse yet) or 0 the interval is not
//! defined and is reported as absent.
//!
//! # Published figures
//!
//! [`published`] reads the `[[durability]]` entries of `data/benchmarks.toml` (§5): McInnes
//! 2022 [S49] (~80 % still responding at 4 weeks, ~60 % at 8 weeks) and Murrough 2013 [S39]
//! (median relapse 18 days after the last infusion).
//!
//! Pure: no clock; the caller passes the courses' scores and session times.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::course::{Course, Route};
use crate::error::DomainError;
use crate::outcomes::{OutcomeDefinition, ScorePoint, continued_course, course_scores, judged_points, judged_series};
use crate::records::{PatientChart, QuestionnaireResponse};
use crate::relapse::{RelapseSettings, watch};
use crate::survival::{KaplanMeier, SurvivalObservation};

/// The label of courses without a protocol name when grouping by protocol.
pub const NO_PROTOCOL: &str = "No protocol recorded";

/// "Still responding at 4 weeks" (days).
pub const FOUR_WEEKS_DAYS: f64 = 28.0;
/// "Still responding at 8 weeks" (days).
pub const EIGHT_WEEKS_DAYS: f64 = 56.0;

/// The 97.5th percentile of the standard normal distribution (two-sided 95 %).
const Z_95: f64 = 1.959_963_984_540_054;

/// How courses are grouped into curves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    #[default]
    Route,
    Protocol,
}

impl Grouping {
    pub const ALL: [Grouping; 2] = [Grouping::Route, Grouping::Protocol];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Route => "route",
            Self::Protocol => "protocol",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// One course's scores on the analysed instrument and its dosing times.
#[derive(Debug, Clone, PartialEq)]
pub struct CourseSeries {
    pub route: Route,
    /// The course's protocol name, if recorded.
    pub protocol: Option<String>,
    /// Dose start of every session in which the dose was started (any order).
    pub sessions: Vec<OffsetDateTime>,
    /// The course's scores on the instrument (any order).
    pub scores: Vec<ScorePoint>,
    /// The baseline carried over from the induction course a maintenance course continues;
    /// `None`: the course's own earliest score is the baseline.
    pub baseline: Option<ScorePoint>,
}

impl CourseSeries {
    /// The points the relapse watch sees: the carried-over baseline (when it precedes every
    /// score of the course) and the course's scores, as [`crate::outcomes::judge_course`] judges them.
    fn points(&self) -> Vec<ScorePoint> {
        judged_points(self.baseline, &self.scores)
    }
}

fn series(courses: &[Course], responses: &[QuestionnaireResponse], c: &Course, instrument: &str) -> CourseSeries {
    // The baseline as judge_course sets it: carried from the induction a maintenance course continues.
    let judged = judged_series(c, continued_course(courses, c), responses, instrument);
    CourseSeries {
        route: c.route,
        protocol: c.protocol.clone(),
        sessions: Vec::new(),
        scores: course_scores(responses, c.id, instrument),
        baseline: judged.filter(|j| j.baseline_course.is_some()).map(|j| j.baseline()),
    }
}

/// The courses of one chart to analyse on `instrument`: those whose indication's primary
/// instrument it is. Scores are the responses linked to the course with a total; sessions
/// are the course's sessions whose dose was started; a maintenance course carries the
/// baseline of the induction it continues (see the module docs).
pub fn course_series(chart: &PatientChart, instrument: &str) -> Vec<CourseSeries> {
    chart
        .courses
        .iter()
        .filter(|c| c.indication.primary_instrument() == instrument)
        .map(|c| CourseSeries {
            sessions: chart.sessions.iter().filter(|s| s.course_id == c.id).filter_map(|s| s.dose_started_at).collect(),
            ..series(&chart.courses, &chart.responses, c, instrument)
        })
        .collect()
}

/// What one course contributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FollowUp {
    /// Fewer than two scores: response cannot be judged yet.
    NotAssessable,
    /// Scored, never met the response criterion.
    NoResponse,
    /// Responded, but no dosed session precedes the end of follow-up.
    WithoutFollowUp,
    /// Responded: days from the last session to relapse (event) or to the latest score (censored).
    Followed { last_session: OffsetDateTime, observation: SurvivalObservation },
}

/// Follows one course (see the module docs). Errors when the definition has no response
/// criterion or the settings do not fit the instrument.
pub fn follow_up(
    series: &CourseSeries,
    def: &OutcomeDefinition,
    settings: &RelapseSettings,
) -> Result<FollowUp, DomainError> {
    let points = series.points();
    let Some(latest) = points.iter().map(|p| p.at).max() else { return Ok(FollowUp::NotAssessable) };
    if points.len() < 2 {
        return Ok(FollowUp::NotAssessable);
    }
    // Only the episodes are used (durations, not dates): the flag's message, the one place
    // the calendar shows, is dropped, so the UTC date serves.
    let Some(w) = watch(def, &points, settings, None, None, latest, &|t| t.date())? else {
        return Ok(FollowUp::NotAssessable);
    };
    let Some(episode) = w.episodes.first() else { return Ok(FollowUp::NoResponse) };
    let end = episode.lost_at.unwrap_or(latest);
    let Some(last_session) = series.sessions.iter().copied().filter(|t| *t < end).max() else {
        return Ok(FollowUp::WithoutFollowUp);
    };
    let observation = SurvivalObservation::from_times(last_session, episode.lost_at, end)?;
    Ok(FollowUp::Followed { last_session, observation })
}

/// A share still responding at a time, with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Share {
    pub days: f64,
    /// Kaplan–Meier estimate, 0–1.
    pub survival: f64,
    /// 95 % log-log interval; absent where the estimate is 1 or 0.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// One step of a curve (at a relapse time), with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct CurveStep {
    pub days: f64,
    pub at_risk: usize,
    pub relapses: usize,
    pub censored: usize,
    /// Share still responding after this step, 0–1.
    pub survival: f64,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// The 95 % log-log interval of `survival` given its Greenwood variance.
pub fn log_log_interval(survival: f64, variance: f64) -> Option<(f64, f64)> {
    // Undefined at 1 and 0 (ln 1 = 0; 0 has no spread); NaN fails every comparison.
    let inside = survival > 0.0 && survival < 1.0;
    if !inside || variance.is_nan() || variance < 0.0 {
        return None;
    }
    let greenwood_sum = variance / (survival * survival);
    let se = greenwood_sum.sqrt() / survival.ln().abs();
    Some((survival.powf((Z_95 * se).exp()), survival.powf((-Z_95 * se).exp())))
}

fn share_at(km: &KaplanMeier, days: f64) -> Option<Share> {
    let survival = km.survival_at(days)?;
    let ci = km.variance_at(days).and_then(|v| log_log_interval(survival, v));
    Some(Share { days, survival, ci_low: ci.map(|c| c.0), ci_high: ci.map(|c| c.1) })
}

/// One curve: the courses of one route or protocol.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DurabilityGroup {
    /// Route code (`iv_racemic`) or protocol name.
    pub key: String,
    pub label: String,
    /// Courses scored at least twice on the instrument.
    pub courses: usize,
    /// Courses with a response (including those without follow-up).
    pub responders: usize,
    /// Responders with no dosed session before the end of follow-up: not on the curve.
    pub without_follow_up: usize,
    /// Responders on the curve.
    pub followed: usize,
    pub relapses: usize,
    /// Followed responders still responding at their latest score.
    pub censored: usize,
    /// Longest follow-up on the curve; the curve is defined up to here.
    pub max_follow_up_days: Option<f64>,
    /// Steps at relapse times, ascending; empty when nobody relapsed.
    pub steps: Vec<CurveStep>,
    /// Follow-up times of the censored responders, ascending (the curve's tick marks).
    pub censored_days: Vec<f64>,
    /// `S(28 days)`; absent when no responder was followed that long.
    pub at_4_weeks: Option<Share>,
    /// `S(56 days)`; absent when no responder was followed that long.
    pub at_8_weeks: Option<Share>,
    /// First time the curve is at or below one half; absent when it never is.
    pub median_days: Option<f64>,
}

impl DurabilityGroup {
    fn empty(key: String, label: String) -> Self {
        Self {
            key,
            label,
            courses: 0,
            responders: 0,
            without_follow_up: 0,
            followed: 0,
            relapses: 0,
            censored: 0,
            max_follow_up_days: None,
            steps: Vec::new(),
            censored_days: Vec::new(),
            at_4_weeks: None,
            at_8_weeks: None,
            median_days: None,
        }
    }

    /// Responders on the curve still followed (neither relapsed nor censored) just before
    /// `days`: the "number at risk" printed under the chart's x axis.
    pub fn at_risk_at(&self, days: f64) -> usize {
        let relapsing = self.steps.iter().filter(|s| s.days >= days).map(|s| s.relapses).sum::<usize>();
        relapsing + self.censored_days.iter().filter(|&&t| t >= days).count()
    }

    fn estimate(&mut self, observations: &[SurvivalObservation]) -> Result<(), DomainError> {
        self.followed = observations.len();
        self.relapses = observations.iter().filter(|o| o.relapsed).count();
        self.censored = self.followed - self.relapses;
        let mut censored: Vec<f64> = observations.iter().filter(|o| !o.relapsed).map(|o| o.days).collect();
        censored.sort_by(f64::total_cmp);
        self.censored_days = censored;
        if observations.is_empty() {
            return Ok(());
        }
        let km = KaplanMeier::estimate(observations)?;
        self.max_follow_up_days = Some(km.max_days);
        self.steps = km
            .steps
            .iter()
            .map(|s| {
                let ci = log_log_interval(s.survival, s.variance);
                CurveStep {
                    days: s.days,
                    at_risk: s.at_risk,
                    relapses: s.events,
                    censored: s.censored,
                    survival: s.survival,
                    ci_low: ci.map(|c| c.0),
                    ci_high: ci.map(|c| c.1),
                }
            })
            .collect();
        self.at_4_weeks = share_at(&km, FOUR_WEEKS_DAYS);
        self.at_8_weeks = share_at(&km, EIGHT_WEEKS_DAYS);
        self.median_days = km.median_days();
        Ok(())
    }
}

/// The clinic's durability curves for one grouping.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DurabilityReport {
    pub grouping: Grouping,
    pub instrument: String,
    /// The outcome definition that judged response (recorded with every outcome figure).
    pub definition_id: String,
    pub definition_name: String,
    /// The relapse setting in use.
    pub settings: RelapseSettings,
    /// Routes in `Route::ALL` order; protocols by name, "No protocol recorded" last.
    pub groups: Vec<DurabilityGroup>,
    /// The published figures to compare with (clinical-reference §5).
    pub published: Vec<PublishedDurability>,
}

/// Follows every course and estimates one curve per group. Groups are the routes or
/// protocols with at least one course scored twice; a group may have no responder.
pub fn analyse(
    series: &[CourseSeries],
    grouping: Grouping,
    def: &OutcomeDefinition,
    settings: &RelapseSettings,
) -> Result<DurabilityReport, DomainError> {
    // Sort key → (group, observations).
    let mut groups: BTreeMap<(usize, String), (DurabilityGroup, Vec<SurvivalObservation>)> = BTreeMap::new();
    for s in series {
        let found = follow_up(s, def, settings)?;
        if found == FollowUp::NotAssessable {
            continue;
        }
        let (order, key, label) = match grouping {
            Grouping::Route => {
                let i = Route::ALL.iter().position(|r| *r == s.route).unwrap_or(usize::MAX);
                (i, s.route.as_str().to_string(), s.route.label().to_string())
            }
            Grouping::Protocol => match s.protocol.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
                Some(p) => (0, p.to_string(), p.to_string()),
                None => (1, NO_PROTOCOL.to_string(), NO_PROTOCOL.to_string()),
            },
        };
        let (g, obs) =
            groups.entry((order, key.clone())).or_insert_with(|| (DurabilityGroup::empty(key, label), Vec::new()));
        g.courses += 1;
        match found {
            FollowUp::NotAssessable | FollowUp::NoResponse => {}
            FollowUp::WithoutFollowUp => {
                g.responders += 1;
                g.without_follow_up += 1;
            }
            FollowUp::Followed { observation, .. } => {
                g.responders += 1;
                obs.push(observation);
            }
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (_, (mut g, obs)) in groups {
        g.estimate(&obs)?;
        out.push(g);
    }
    Ok(DurabilityReport {
        grouping,
        instrument: def.instrument.clone(),
        definition_id: def.id.clone(),
        definition_name: def.name.clone(),
        settings: *settings,
        groups: out,
        published: published().to_vec(),
    })
}

/// A published share still responding some days on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedShare {
    pub days: f64,
    pub pct: f64,
}

/// A published durability figure (`[[durability]]` in `data/benchmarks.toml`, §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedDurability {
    pub study: String,
    pub design: String,
    pub route: Route,
    /// Instrument code, or `unspecified` where the reference names none.
    pub instrument: String,
    pub intervention: String,
    #[serde(default)]
    pub still_responding: Vec<PublishedShare>,
    #[serde(default)]
    pub median_relapse_days: Option<f64>,
    /// The reference gives the figures as approximate ("~80 %").
    #[serde(default)]
    pub approximate: bool,
    /// Where the figure comes from, e.g. `clinical-reference §5 [S49]`.
    pub source: String,
    #[serde(default)]
    pub note: Option<String>,
}

impl PublishedDurability {
    /// The published share at `days`, in percent.
    pub fn pct_at(&self, days: f64) -> Option<f64> {
        self.still_responding.iter().find(|s| s.days == days).map(|s| s.pct)
    }
}

#[derive(Deserialize)]
struct BenchmarksFile {
    // The response and remission benchmarks are read by the outcomes screen.
    #[serde(default)]
    durability: Vec<PublishedDurability>,
}

const BENCHMARKS_TOML: &str = include_str!("../../../data/benchmarks.toml");

/// The published durability figures, as embedded at build time.
pub fn published() -> &'static [PublishedDurability] {
    static P: OnceLock<Vec<PublishedDurability>> = OnceLock::new();
    P.get_or_init(|| {
        let p = toml::from_str::<BenchmarksFile>(BENCHMARKS_TOML)
            .unwrap_or_else(|e| panic!("embedded data/benchmarks.toml is invalid: {e}"))
            .durability;
        // The screen sets published shares beside the clinic's at 4 and 8 weeks only: a figure
        // at any other day would silently never be shown.
        for d in &p {
            for s in &d.still_responding {
                assert!(
                    s.days == FOUR_WEEKS_DAYS || s.days == EIGHT_WEEKS_DAYS,
                    "data/benchmarks.toml: {} gives a share at {} days; use {FOUR_WEEKS_DAYS} or {EIGHT_WEEKS_DAYS}",
                    d.source,
                    s.days
                );
            }
        }
        p
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcomes::definition_for;
    use crate::relapse::RelapseThreshold;
    use time::Duration;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-05 09:00 UTC);

    fn at(day: i64) -> OffsetDateTime {
        T0 + Duration::days(day)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn phq9() -> &'static OutcomeDefinition {
        definition_for("phq9").unwrap()
    }

    /// A course: sessions on `sessions` days, PHQ-9 totals `(day, total)`.
    fn course(route: Route, protocol: Option<&str>, sessions: &[i64], scores: &[(i64, i32)]) -> CourseSeries {
        CourseSeries {
            route,
            protocol: protocol.map(str::to_string),
            sessions: sessions.iter().map(|&d| at(d)).collect(),
            scores: scores.iter().map(|&(d, total)| ScorePoint { at: at(d), total }).collect(),
            baseline: None,
        }
    }

    const INDUCTION: &[i64] = &[0, 2, 4, 7, 9, 11];

    #[test]
    fn relapse_is_an_event_from_the_last_session_before_it() {
        // Baseline 20; responds at day 14 (10 = −50 %); still at 21; lost at 35 (12 > 10).
        let c = course(Route::IvRacemic, None, INDUCTION, &[(0, 20), (14, 10), (21, 8), (35, 12)]);
        let f = follow_up(&c, phq9(), &RelapseSettings::default()).unwrap();
        assert_eq!(
            f,
            FollowUp::Followed {
                last_session: at(11),
                observation: SurvivalObservation { days: 24.0, relapsed: true }
            }
        );
        // A maintenance session at day 30 moves the origin: relapse 5 days after it.
        let c = course(Route::IvRacemic, None, &[0, 2, 4, 7, 9, 11, 30], &[(0, 20), (14, 10), (35, 12)]);
        let f = follow_up(&c, phq9(), &RelapseSettings::default()).unwrap();
        assert!(matches!(f, FollowUp::Followed { observation: SurvivalObservation { days: 5.0, relapsed: true }, .. }));
    }

    #[test]
    fn still_responding_is_censored_at_the_latest_score() {
        // Responding at 14, 28 and 60: censored 49 days after the last session (day 11).
        let c = course(Route::IvRacemic, None, INDUCTION, &[(0, 20), (14, 9), (28, 6), (60, 7)]);
        let f = follow_up(&c, phq9(), &RelapseSettings::default()).unwrap();
        assert_eq!(
            f,
            FollowUp::Followed {
                last_session: at(11),
                observation: SurvivalObservation { days: 49.0, relapsed: false }
            }
        );
        // A session after the latest score does not count: follow-up is measured to that score.
        let mut later = c.clone();
        later.sessions.push(at(61));
        assert_eq!(follow_up(&later, phq9(), &RelapseSettings::default()).unwrap(), f);
    }

    #[test]
    fn first_episode_only_and_the_other_outcomes() {
        // Responds, relapses at 21 (event 10 days after day 11), responds again at 40: one observation.
        let c = course(Route::IvRacemic, None, INDUCTION, &[(0, 20), (14, 8), (21, 14), (40, 6)]);
        assert!(matches!(
            follow_up(&c, phq9(), &RelapseSettings::default()).unwrap(),
            FollowUp::Followed { observation: SurvivalObservation { days: 10.0, relapsed: true }, .. }
        ));
        let never = course(Route::IvRacemic, None, INDUCTION, &[(0, 20), (14, 15), (28, 16)]);
        assert_eq!(follow_up(&never, phq9(), &RelapseSettings::default()).unwrap(), FollowUp::NoResponse);
        let baseline_only = course(Route::IvRacemic, None, INDUCTION, &[(0, 20)]);
        assert_eq!(follow_up(&baseline_only, phq9(), &RelapseSettings::default()).unwrap(), FollowUp::NotAssessable);
        // Scored before any session: responded, nothing to measure from.
        let no_session = course(Route::IvRacemic, None, &[30], &[(0, 20), (7, 8)]);
        assert_eq!(follow_up(&no_session, phq9(), &RelapseSettings::default()).unwrap(), FollowUp::WithoutFollowUp);
    }

    #[test]
    fn maintenance_is_judged_against_the_induction_baseline() {
        // Maintenance sessions on days 40 and 61; scores 6, 3, 5, 9, 12 while the induction
        // baseline was 20 (response ≤ 10).
        let mut m = course(Route::IvRacemic, None, &[40, 61], &[(40, 6), (47, 3), (54, 5), (61, 9), (68, 12)]);
        // On its own first score (6), 3 is a response and 5 already its loss: noise, not relapse.
        assert!(matches!(
            follow_up(&m, phq9(), &RelapseSettings::default()).unwrap(),
            FollowUp::Followed { observation: SurvivalObservation { days: 14.0, relapsed: true }, .. }
        ));
        // Against the induction's baseline: responding from day 40, lost at 68, 7 days after day 61.
        m.baseline = Some(ScorePoint { at: at(-3), total: 20 });
        assert!(matches!(
            follow_up(&m, phq9(), &RelapseSettings::default()).unwrap(),
            FollowUp::Followed { observation: SurvivalObservation { days: 7.0, relapsed: true }, .. }
        ));
        // A carried baseline that is not earlier than the course's scores is ignored.
        m.baseline = Some(ScorePoint { at: at(50), total: 20 });
        assert_eq!(m.points().len(), 5);
        // With a carried baseline one score is enough to judge.
        let one = CourseSeries { scores: vec![ScorePoint { at: at(45), total: 5 }], ..m.clone() };
        let one = CourseSeries { baseline: Some(ScorePoint { at: at(-3), total: 20 }), ..one };
        assert!(matches!(follow_up(&one, phq9(), &RelapseSettings::default()).unwrap(), FollowUp::Followed { .. }));
    }

    #[test]
    fn the_clinic_relapse_setting_is_used() {
        // 12 is no longer a response (−40 %) but below the clinic's 15: still responding.
        let c = course(Route::IvRacemic, None, INDUCTION, &[(0, 20), (14, 9), (28, 12), (42, 16)]);
        let loss = follow_up(&c, phq9(), &RelapseSettings::default()).unwrap();
        assert!(matches!(
            loss,
            FollowUp::Followed { observation: SurvivalObservation { days: 17.0, relapsed: true }, .. }
        ));
        let at_15 = RelapseSettings { threshold: RelapseThreshold::TotalAtLeast { total: 15 }, ..Default::default() };
        let f = follow_up(&c, phq9(), &at_15).unwrap();
        assert!(matches!(
            f,
            FollowUp::Followed { observation: SurvivalObservation { days: 31.0, relapsed: true }, .. }
        ));
        let bad = RelapseSettings { threshold: RelapseThreshold::TotalAtLeast { total: 99 }, ..Default::default() };
        assert!(follow_up(&c, phq9(), &bad).is_err());
    }

    /// Hand-worked, by route. IV: 4 responders (last session day 11):
    ///   relapse at 10 and 20 days, censored at 15 and 30 days; plus one non-responder.
    ///   t=10: n=4, d=1 → S = 3/4,  Σ = 1/(4·3) = 1/12
    ///   t=20: n=2, d=1 → S = 3/8,  Σ = 1/12 + 1/(2·1) = 7/12
    ///   S(28) = 3/8 (follow-up reaches 30); S(56) undefined; median 20 days.
    ///   log-log 95 % at 28 d: se = √(7/12)/|ln 3/8| → (0.010971, 0.808001).
    ///   at 10 d: se = √(1/12)/|ln 3/4| → (0.127947, 0.960549).
    /// IM: two courses scored, neither responded — a group with no responders.
    /// Esketamine: one responder censored at 60 days — flat at 100 %, no interval.
    #[test]
    fn hand_worked_cohort_by_route() {
        let iv = |scores: &[(i64, i32)]| course(Route::IvRacemic, Some("IV 6 infusions"), INDUCTION, scores);
        let series = vec![
            iv(&[(0, 20), (14, 9), (21, 12)]),         // relapse day 21 → 10 days
            iv(&[(0, 18), (14, 8), (26, 7)]),          // censored day 26 → 15 days
            iv(&[(0, 22), (14, 10), (31, 16)]),        // relapse day 31 → 20 days
            iv(&[(0, 16), (14, 6), (28, 5), (41, 4)]), // censored day 41 → 30 days
            iv(&[(0, 20), (14, 15)]),                  // no response
            course(Route::ImRacemic, None, INDUCTION, &[(0, 20), (14, 14)]),
            course(Route::ImRacemic, Some("  "), INDUCTION, &[(0, 19), (14, 12), (28, 13)]),
            course(Route::IntranasalEsketamine, Some("Label induction"), &[0, 3, 7], &[(0, 24), (10, 6), (67, 5)]),
            course(Route::OralRacemic, None, &[0], &[(0, 20)]), // baseline only: no group
        ];
        let r = analyse(&series, Grouping::Route, phq9(), &RelapseSettings::default()).unwrap();
        assert_eq!((r.instrument.as_str(), r.definition_id.as_str()), ("phq9", "phq9"));
        assert_eq!(r.settings, RelapseSettings::default());
        let keys: Vec<&str> = r.groups.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(keys, ["iv_racemic", "im_racemic", "intranasal_esketamine"]);

        let iv = &r.groups[0];
        assert_eq!(iv.label, "IV ketamine");
        assert_eq!((iv.courses, iv.responders, iv.followed, iv.relapses, iv.censored), (5, 4, 4, 2, 2));
        assert_eq!(iv.censored_days, vec![15.0, 30.0]);
        assert_eq!(iv.max_follow_up_days, Some(30.0));
        let steps: Vec<_> = iv.steps.iter().map(|s| (s.days, s.at_risk, s.relapses, s.censored)).collect();
        assert_eq!(steps, vec![(10.0, 4, 1, 0), (20.0, 2, 1, 0)]);
        assert!(close(iv.steps[0].survival, 0.75) && close(iv.steps[1].survival, 0.375));
        let (lo, hi) = (iv.steps[0].ci_low.unwrap(), iv.steps[0].ci_high.unwrap());
        assert!((lo - 0.127947).abs() < 1e-6 && (hi - 0.960549).abs() < 1e-6, "{lo} {hi}");
        let w4 = iv.at_4_weeks.unwrap();
        assert!(close(w4.survival, 0.375) && w4.days == 28.0);
        assert!((w4.ci_low.unwrap() - 0.010971).abs() < 1e-6 && (w4.ci_high.unwrap() - 0.808001).abs() < 1e-6);
        assert_eq!(iv.at_8_weeks, None, "nobody followed to 8 weeks");
        // Numbers at risk: 4 followed from day 0; relapse at 10 leaves 3; censored at 15 → 2;
        // relapse at 20 → 1; the last, censored at 30, is at risk at 30 and gone after.
        let risk: Vec<usize> = [0.0, 10.0, 10.5, 15.0, 16.0, 20.0, 21.0, 30.0, 30.5].map(|d| iv.at_risk_at(d)).to_vec();
        assert_eq!(risk, [4, 4, 3, 3, 2, 2, 1, 1, 0]);
        assert_eq!(iv.median_days, Some(20.0));

        let im = &r.groups[1];
        assert_eq!((im.courses, im.responders, im.followed, im.relapses), (2, 0, 0, 0));
        assert!(im.steps.is_empty() && im.at_4_weeks.is_none() && im.median_days.is_none());
        assert_eq!(im.max_follow_up_days, None);

        let esk = &r.groups[2];
        assert_eq!((esk.responders, esk.relapses, esk.censored), (1, 0, 1));
        assert_eq!(esk.max_follow_up_days, Some(60.0));
        let w8 = esk.at_8_weeks.unwrap();
        assert_eq!((w8.survival, w8.ci_low, w8.ci_high), (1.0, None, None));
        assert_eq!(esk.median_days, None);
    }

    #[test]
    fn grouping_by_protocol_names_missing_ones_last() {
        let series = vec![
            course(Route::ImRacemic, None, INDUCTION, &[(0, 20), (14, 8), (30, 7)]),
            course(Route::IvRacemic, Some("Zeta infusions"), INDUCTION, &[(0, 20), (14, 8), (25, 15)]),
            course(Route::ImRacemic, Some(" "), INDUCTION, &[(0, 20), (14, 16)]),
            course(Route::IvRacemic, Some("Alpha infusions"), INDUCTION, &[(0, 20), (14, 8)]),
            course(Route::ImRacemic, Some("Zeta infusions"), INDUCTION, &[(0, 20), (14, 8), (21, 9)]),
        ];
        let r = analyse(&series, Grouping::Protocol, phq9(), &RelapseSettings::default()).unwrap();
        let got: Vec<_> = r.groups.iter().map(|g| (g.label.as_str(), g.courses, g.responders, g.relapses)).collect();
        assert_eq!(got, vec![("Alpha infusions", 1, 1, 0), ("Zeta infusions", 2, 2, 1), (NO_PROTOCOL, 2, 1, 0)]);
        // Zeta: relapse 14 days after day 11, censored at 10 days → S drops to 0 at 14.
        let zeta = &r.groups[1];
        assert_eq!(zeta.steps.len(), 1);
        assert_eq!((zeta.steps[0].survival, zeta.steps[0].ci_low), (0.0, None));
        assert_eq!(zeta.median_days, Some(14.0));
        assert_eq!(zeta.at_4_weeks, None, "follow-up ends at 14 days");
    }

    #[test]
    fn nothing_scored_gives_no_groups() {
        let r = analyse(&[], Grouping::Route, phq9(), &RelapseSettings::default()).unwrap();
        assert!(r.groups.is_empty());
        assert!(!r.published.is_empty());
        assert!(Grouping::parse("protocol") == Some(Grouping::Protocol) && Grouping::parse("site").is_none());
    }

    #[test]
    fn interval_edges() {
        assert_eq!(log_log_interval(1.0, 0.0), None);
        assert_eq!(log_log_interval(0.0, 0.0), None);
        let (lo, hi) = log_log_interval(0.5, 0.01).unwrap();
        assert!(lo < 0.5 && 0.5 < hi && lo > 0.0 && hi < 1.0);
    }

    #[test]
    fn published_figures_are_the_reference_ones() {
        let p = published();
        let mcinnes = p.iter().find(|x| x.source.contains("[S49]")).expect("McInnes 2022");
        assert_eq!((mcinnes.pct_at(FOUR_WEEKS_DAYS), mcinnes.pct_at(EIGHT_WEEKS_DAYS)), (Some(80.0), Some(60.0)));
        assert!(mcinnes.approximate && mcinnes.route == Route::IvRacemic && mcinnes.instrument == "phq9");
        let murrough = p.iter().find(|x| x.source.contains("[S39]")).expect("Murrough 2013");
        assert_eq!(murrough.median_relapse_days, Some(18.0));
        for x in p {
            assert!(x.source.contains("§5"), "{}", x.study);
            assert!(!x.still_responding.is_empty() || x.median_relapse_days.is_some(), "{}", x.study);
            assert!(x.still_responding.iter().all(|s| (0.0..=100.0).contains(&s.pct) && s.days > 0.0));
        }
    }
}
