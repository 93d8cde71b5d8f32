//! Outcomes per course: change from baseline, response, remission and relapse.
//!
//! # Why definitions are data
//!
//! "Response" and "remission" are conventions, not facts: MADRS remission is ≤ 10 in many
//! ketamine trials but ≤ 12 in the Janssen phase-3 programme (§1.5), and the reference says to
//! "store the rule as a parameter and record which definition produced each analytics figure".
//! So the rules live in `data/rules/outcome-definitions.toml` (embedded; defaults taken from
//! `clinical-reference.md` with section and source tags per rule), every [`Outcome`] carries the
//! [`OutcomeDefinition`] that produced it, and a clinic can load its own signed-off file with
//! [`parse_definitions`].
//!
//! Where the reference supports no rule (PCL-5 and pain NRS response/remission) the rule is
//! absent and the corresponding status is `None` ("cannot be assessed") rather than a guess.
//!
//! # Semantics
//!
//! * All instruments with definitions are "higher = worse"; improvement is a fall from baseline.
//! * Baseline = the chronologically first point (ties keep input order); latest = the last.
//! * `responded` and `remitted` describe the **latest** score (as trial endpoints do).
//! * `relapsed` describes the whole course: after the first response, **any** later score that
//!   no longer meets the response criterion ("loss of response", the default relapse rule).
//!   `relapse_at` is the first such score.
//! * `currently_responding` is the state of the response episode at the latest score. Under
//!   the loss-of-response rule it always equals `responded`; it is a separate field because a
//!   stricter relapse rule (e.g. sustained loss) would make them differ.
//! * With only a baseline point, or when a percent-based response is undefined because the
//!   baseline is 0, the statuses that cannot be assessed are `None`.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::course::{Course, Phase};
use crate::error::DomainError;
use crate::ids::CourseId;
use crate::instruments::{ScoringMethod, SourceRef, catalog};
use crate::records::QuestionnaireResponse;

/// How response is judged against baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseRule {
    /// Reduction from baseline ≥ `min_percent` % of baseline (undefined when baseline is 0).
    PercentReduction { min_percent: u32 },
    /// Reduction from baseline ≥ `min_points`.
    PointReduction { min_points: i32 },
}

impl ResponseRule {
    /// Whether `score` is a response relative to `baseline`; `None` if undefined.
    pub fn is_met(self, baseline: i32, score: i32) -> Option<bool> {
        let reduction = i64::from(baseline) - i64::from(score);
        match self {
            // Integer arithmetic: reduction / baseline ≥ p/100  ⇔  reduction·100 ≥ p·baseline.
            ResponseRule::PercentReduction { min_percent } => {
                (baseline > 0).then(|| reduction * 100 >= i64::from(min_percent) * i64::from(baseline))
            }
            ResponseRule::PointReduction { min_points } => Some(reduction >= i64::from(min_points)),
        }
    }
}

/// A cut-off on the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// score < value (PHQ-9 remission "< 5").
    Below(i32),
    /// score ≤ value (MADRS remission "≤ 10").
    AtMost(i32),
}

impl Threshold {
    pub fn is_met(self, score: i32) -> bool {
        match self {
            Threshold::Below(v) => score < v,
            Threshold::AtMost(v) => score <= v,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseCriterion {
    pub rule: ResponseRule,
    pub source: SourceRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemissionCriterion {
    pub threshold: Threshold,
    pub source: SourceRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelapseRule {
    /// After a response, a later score that no longer meets the response criterion.
    LossOfResponse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelapseCriterion {
    pub rule: RelapseRule,
    pub source: SourceRef,
}

/// One named set of outcome rules for one instrument. Absent rules = not defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeDefinition {
    /// Stable id recorded with every analytics figure, e.g. `madrs` or `madrs-remission-12`.
    pub id: String,
    /// Human-readable summary, e.g. "PHQ-9: response ≥ 50 % reduction; remission total < 5".
    pub name: String,
    /// Instrument code.
    pub instrument: String,
    /// The definition [`definition_for`] returns for this instrument.
    #[serde(rename = "default", default)]
    pub is_default: bool,
    pub source: SourceRef,
    #[serde(default)]
    pub response: Option<ResponseCriterion>,
    #[serde(default)]
    pub remission: Option<RemissionCriterion>,
    #[serde(default)]
    pub relapse: Option<RelapseCriterion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionsFile {
    definitions: Vec<OutcomeDefinition>,
}

const EMBEDDED: &str = include_str!("../../../data/rules/outcome-definitions.toml");

/// Parses and checks an outcome-definitions file (same format as the embedded
/// `data/rules/outcome-definitions.toml`), e.g. a clinic's signed-off replacement.
pub fn parse_definitions(text: &str) -> Result<Vec<OutcomeDefinition>, DomainError> {
    let file: DefinitionsFile =
        toml::from_str(text).map_err(|e| DomainError::field("outcome_definitions", e.to_string()))?;
    let mut errors = crate::error::Validator::new();
    let mut ids = HashSet::new();
    let mut defaults: HashMap<&str, usize> = HashMap::new();
    for (i, d) in file.definitions.iter().enumerate() {
        let field = format!("definitions[{i}]");
        errors.check(ids.insert(d.id.as_str()), &field, format!("duplicate id `{}`", d.id));
        let inst = catalog().get(&d.instrument);
        errors.check(
            inst.is_some_and(|i| i.scoring != ScoringMethod::RiskCategory),
            &field,
            format!("`{}` is not an instrument with a total score", d.instrument),
        );
        if let Some(r) = &d.response {
            let ok = match r.rule {
                ResponseRule::PercentReduction { min_percent } => (1..=100).contains(&min_percent),
                ResponseRule::PointReduction { min_points } => min_points > 0,
            };
            errors.check(ok, &field, "response threshold must be 1-100 % or a positive number of points");
        }
        if let (Some(r), Some(inst)) = (&d.remission, inst) {
            let (lo, hi) = (inst.min_total.unwrap_or(0), inst.max_total.unwrap_or(0));
            let ok = match r.threshold {
                Threshold::Below(v) => v > lo && v <= hi + 1,
                Threshold::AtMost(v) => (lo..=hi).contains(&v),
            };
            errors.check(ok, &field, format!("remission threshold outside the {lo}-{hi} range of {}", inst.short_name));
        }
        errors.check(
            d.relapse.is_none() || d.response.is_some(),
            &field,
            "a relapse rule needs a response rule (relapse = loss of response)",
        );
        if d.is_default {
            *defaults.entry(d.instrument.as_str()).or_default() += 1;
        }
    }
    let instruments: HashSet<&str> = file.definitions.iter().map(|d| d.instrument.as_str()).collect();
    for code in instruments {
        let n = defaults.get(code).copied().unwrap_or(0);
        errors.check(n == 1, "definitions", format!("`{code}` needs exactly one default definition, has {n}"));
    }
    errors.finish()?;
    Ok(file.definitions)
}

/// The embedded default definitions.
///
/// # Panics
/// If the embedded file is invalid — a build defect, caught by this module's tests.
pub fn default_definitions() -> &'static [OutcomeDefinition] {
    static DEFS: OnceLock<Vec<OutcomeDefinition>> = OnceLock::new();
    DEFS.get_or_init(|| {
        parse_definitions(EMBEDDED)
            .unwrap_or_else(|e| panic!("embedded data/rules/outcome-definitions.toml is invalid: {e}"))
    })
}

/// The default definition for an instrument (e.g. MADRS remission ≤ 10), if it has one.
pub fn definition_for(instrument_code: &str) -> Option<&'static OutcomeDefinition> {
    default_definitions().iter().find(|d| d.instrument == instrument_code && d.is_default)
}

/// All definitions for an instrument, default first (MADRS: ≤ 10, then ≤ 12).
pub fn definitions_for(instrument_code: &str) -> Vec<&'static OutcomeDefinition> {
    let mut defs: Vec<_> = default_definitions().iter().filter(|d| d.instrument == instrument_code).collect();
    defs.sort_by_key(|d| !d.is_default);
    defs
}

/// A definition by id (e.g. `madrs-remission-12`).
pub fn definition_by_id(id: &str) -> Option<&'static OutcomeDefinition> {
    default_definitions().iter().find(|d| d.id == id)
}

/// One total score at a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScorePoint {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub total: i32,
}

/// Outcome of a series of scores under one definition. See the module docs for semantics.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Outcome {
    pub instrument: String,
    /// Number of points assessed.
    pub assessments: usize,
    pub baseline: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub baseline_at: OffsetDateTime,
    pub latest: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub latest_at: OffsetDateTime,
    /// latest − baseline (negative = improvement).
    pub change: i32,
    /// change ÷ baseline × 100; `None` when the baseline is 0.
    pub percent_change: Option<f64>,
    /// The latest score meets the response criterion.
    pub responded: Option<bool>,
    /// The latest score meets the remission criterion.
    pub remitted: Option<bool>,
    /// Some post-baseline score met the response criterion.
    pub ever_responded: Option<bool>,
    /// In a response episode at the latest score (equals `responded` under loss-of-response).
    pub currently_responding: Option<bool>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_response_at: Option<OffsetDateTime>,
    /// After the first response, some later score lost response.
    pub relapsed: Option<bool>,
    /// First score that lost response after a response.
    #[serde(with = "time::serde::rfc3339::option")]
    pub relapse_at: Option<OffsetDateTime>,
    /// The definition that produced this outcome.
    pub definition: OutcomeDefinition,
}

/// Assesses a series of totals (any order) under `def`. `None` if there are no points.
pub fn assess(def: &OutcomeDefinition, points: &[ScorePoint]) -> Option<Outcome> {
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|p| p.at); // stable: ties keep input order
    let (first, last) = (*sorted.first()?, *sorted.last()?);
    let (baseline, latest) = (first.total, last.total);
    let follow_ups = &sorted[1..];
    let has_follow_up = !follow_ups.is_empty();

    // Response at each follow-up; `None` if undefined (no rule, or percent rule with baseline 0).
    let response_rule = def.response.as_ref().map(|r| r.rule);
    let meets: Option<Vec<bool>> = response_rule
        .filter(|_| has_follow_up)
        .and_then(|rule| follow_ups.iter().map(|p| rule.is_met(baseline, p.total)).collect());

    let mut first_response_at = None;
    let mut relapse_at = None;
    let mut responding = false;
    if let Some(meets) = &meets {
        for (p, &met) in follow_ups.iter().zip(meets) {
            if met && !responding {
                responding = true;
                first_response_at.get_or_insert(p.at);
            } else if !met && responding {
                match def.relapse.as_ref().map(|r| r.rule) {
                    Some(RelapseRule::LossOfResponse) => {
                        responding = false;
                        relapse_at.get_or_insert(p.at);
                    }
                    // No relapse rule: the episode simply tracks the latest score.
                    None => responding = false,
                }
            }
        }
    }
    let responded = meets.as_ref().and_then(|m| m.last().copied());
    let relapsed = match (&meets, &def.relapse) {
        (Some(_), Some(_)) => Some(relapse_at.is_some()),
        _ => None,
    };

    Some(Outcome {
        instrument: def.instrument.clone(),
        assessments: sorted.len(),
        baseline,
        baseline_at: first.at,
        latest,
        latest_at: last.at,
        change: latest - baseline,
        percent_change: (baseline != 0).then(|| f64::from(latest - baseline) / f64::from(baseline) * 100.0),
        responded,
        remitted: def.remission.as_ref().filter(|_| has_follow_up).map(|r| r.threshold.is_met(latest)),
        ever_responded: meets.as_ref().map(|_| first_response_at.is_some()),
        currently_responding: meets.as_ref().map(|_| responding),
        first_response_at,
        relapsed,
        relapse_at,
        definition: def.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Courses: one baseline and one outcome per course, wherever a course is judged

/// The course a maintenance course continues: the patient's latest induction course on the
/// same route and indication that started no later than it. An induction continues nothing.
pub fn continued_course<'a>(courses: &'a [Course], course: &Course) -> Option<&'a Course> {
    match course.phase {
        Phase::Induction => None,
        Phase::Maintenance => courses
            .iter()
            .filter(|o| {
                o.id != course.id
                    && o.patient_id == course.patient_id
                    && o.phase == Phase::Induction
                    && o.route == course.route
                    && o.indication == course.indication
                    && o.start_date <= course.start_date
            })
            .max_by_key(|o| (o.start_date, o.id)),
    }
}

/// A course's scores on an instrument: the responses linked to it that have a total.
pub fn course_scores(responses: &[QuestionnaireResponse], course: CourseId, instrument: &str) -> Vec<ScorePoint> {
    responses
        .iter()
        .filter(|r| r.course_id == Some(course) && r.instrument == instrument)
        .filter_map(|r| r.score.total.map(|total| ScorePoint { at: r.completed_at, total }))
        .collect()
}

/// The points a course is judged on, oldest first: the baseline carried from the course it
/// continues (only when it precedes every score of the course's own), then the course's scores.
pub fn judged_points(carried: Option<ScorePoint>, own: &[ScorePoint]) -> Vec<ScorePoint> {
    let first = own.iter().map(|p| p.at).min();
    let carried = carried.filter(|b| first.is_none_or(|f| b.at < f));
    let mut points: Vec<ScorePoint> = carried.into_iter().chain(own.iter().copied()).collect();
    points.sort_by_key(|p| p.at); // stable: the carried baseline stays first
    points
}

/// The scores a course is judged on, with where its baseline came from.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedSeries {
    /// Oldest first; the first is the baseline. The relapse watch and the durability curves
    /// read these.
    pub points: Vec<ScorePoint>,
    /// The induction course whose first score is the baseline; `None`: the course's own first.
    pub baseline_course: Option<CourseId>,
}

impl JudgedSeries {
    pub fn baseline(&self) -> ScorePoint {
        self.points[0] // never empty: built from at least one score of the course's own
    }
}

/// The scores `course` is judged on for `instrument` (any instrument, with or without an
/// outcome definition): for a maintenance course the first score of the induction it
/// `continues` ([`continued_course`]) is the baseline; otherwise the course's own first score.
/// `None` when the course has no score of its own on the instrument yet.
pub fn judged_series(
    course: &Course,
    continues: Option<&Course>,
    responses: &[QuestionnaireResponse],
    instrument: &str,
) -> Option<JudgedSeries> {
    let own = course_scores(responses, course.id, instrument);
    if own.is_empty() {
        return None;
    }
    let carried = continues
        .filter(|c| c.id != course.id)
        .and_then(|c| course_scores(responses, c.id, instrument).into_iter().min_by_key(|p| p.at));
    let points = judged_points(carried, &own);
    let baseline_course = continues.map(|c| c.id).filter(|_| points.len() > own.len());
    Some(JudgedSeries { points, baseline_course })
}

/// One course judged on one instrument: its scores, baseline and outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CourseJudgement {
    pub series: JudgedSeries,
    pub outcome: Outcome,
}

/// Judges `course` on `def`'s instrument: the one place that decides a course's baseline and
/// outcome, for the chart (trajectory and outcome label), the clinic outcomes table and API,
/// the patient's own page, the relapse watch and the durability curves.
///
/// A maintenance course is judged against the baseline of the induction it `continues` (see
/// [`continued_course`]): the patient started it already responding, so judged against its own
/// first score, a point or two of noise would make and break "responses" while the patient
/// stays in remission. `None` when the course has no score of its own on the instrument yet.
pub fn judge_course(
    def: &OutcomeDefinition,
    course: &Course,
    continues: Option<&Course>,
    responses: &[QuestionnaireResponse],
) -> Option<CourseJudgement> {
    let series = judged_series(course, continues, responses, &def.instrument)?;
    let outcome = assess(def, &series.points)?;
    Some(CourseJudgement { series, outcome })
}

/// [`judge_course`] for a course among the patient's courses, finding the course it continues.
pub fn judge_in_chart(
    def: &OutcomeDefinition,
    courses: &[Course],
    course: CourseId,
    responses: &[QuestionnaireResponse],
) -> Option<CourseJudgement> {
    let c = courses.iter().find(|c| c.id == course)?;
    judge_course(def, c, continued_course(courses, c), responses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-01-06 09:00 UTC);

    fn series(totals: &[i32]) -> Vec<ScorePoint> {
        totals.iter().enumerate().map(|(i, &total)| ScorePoint { at: T0 + Duration::weeks(i as i64), total }).collect()
    }

    fn at(week: i64) -> OffsetDateTime {
        T0 + Duration::weeks(week)
    }

    #[test]
    fn embedded_definitions_load_with_one_default_each() {
        let defs = default_definitions();
        for code in ["phq9", "gad7", "qids_sr16", "madrs", "pcl5", "pain_nrs"] {
            let d = definition_for(code).unwrap_or_else(|| panic!("no default for {code}"));
            assert!(d.is_default);
            assert!(!d.source.section.is_empty());
        }
        assert!(definition_for("who5").is_none());
        assert!(definition_for("cssrs_screen").is_none());
        assert_eq!(defs.iter().filter(|d| d.instrument == "madrs").count(), 2);
    }

    #[test]
    fn defaults_match_the_reference() {
        let pct50 = Some(ResponseRule::PercentReduction { min_percent: 50 });
        let rem = |c: &str| definition_for(c).unwrap().remission.as_ref().map(|r| r.threshold);
        let resp = |c: &str| definition_for(c).unwrap().response.as_ref().map(|r| r.rule);
        for c in ["phq9", "gad7", "qids_sr16", "madrs"] {
            assert_eq!(resp(c), pct50, "{c}");
            assert_eq!(definition_for(c).unwrap().relapse.as_ref().map(|r| r.rule), Some(RelapseRule::LossOfResponse));
        }
        assert_eq!(rem("phq9"), Some(Threshold::Below(5)));
        assert_eq!(rem("gad7"), Some(Threshold::Below(5)));
        assert_eq!(rem("qids_sr16"), Some(Threshold::AtMost(5)));
        assert_eq!(rem("madrs"), Some(Threshold::AtMost(10)));
        let alt = definition_by_id("madrs-remission-12").unwrap();
        assert_eq!(alt.remission.as_ref().unwrap().threshold, Threshold::AtMost(12));
        assert_eq!(definitions_for("madrs")[0].id, "madrs");
        for c in ["pcl5", "pain_nrs"] {
            let d = definition_for(c).unwrap();
            assert!(d.response.is_none() && d.remission.is_none() && d.relapse.is_none(), "{c}");
        }
    }

    #[test]
    fn no_points_no_outcome() {
        assert!(assess(definition_for("phq9").unwrap(), &[]).is_none());
    }

    #[test]
    fn baseline_only_cannot_be_assessed() {
        let o = assess(definition_for("phq9").unwrap(), &series(&[3])).unwrap();
        assert_eq!((o.baseline, o.latest, o.change), (3, 3, 0));
        assert_eq!(o.percent_change, Some(0.0));
        assert_eq!((o.responded, o.remitted, o.relapsed), (None, None, None));
        assert_eq!((o.ever_responded, o.currently_responding), (None, None));
    }

    #[test]
    fn phq9_response_boundary_is_exactly_fifty_percent() {
        let def = definition_for("phq9").unwrap();
        // 20 -> 10 is exactly −50 %: response; still moderate (10 ≥ 5): not remission.
        let o = assess(def, &series(&[20, 10])).unwrap();
        assert_eq!(o.change, -10);
        assert_eq!(o.percent_change, Some(-50.0));
        assert_eq!((o.responded, o.remitted), (Some(true), Some(false)));
        assert_eq!(o.first_response_at, Some(at(1)));
        assert_eq!(o.definition.id, "phq9");
        // 20 -> 11 is −45 %: no response.
        let o = assess(def, &series(&[20, 11])).unwrap();
        assert_eq!((o.responded, o.ever_responded, o.relapsed), (Some(false), Some(false), Some(false)));
        // Odd baseline (no fractional half): 15 -> 7 is −53 % (response), 15 -> 8 is −47 % (not).
        assert_eq!(assess(def, &series(&[15, 7])).unwrap().responded, Some(true));
        assert_eq!(assess(def, &series(&[15, 8])).unwrap().responded, Some(false));
    }

    #[test]
    fn phq9_remission_is_strictly_below_five() {
        let def = definition_for("phq9").unwrap();
        assert_eq!(assess(def, &series(&[18, 4])).unwrap().remitted, Some(true));
        assert_eq!(assess(def, &series(&[18, 5])).unwrap().remitted, Some(false));
    }

    #[test]
    fn qids_and_madrs_remission_are_at_most() {
        let q = definition_for("qids_sr16").unwrap();
        assert_eq!(assess(q, &series(&[16, 5])).unwrap().remitted, Some(true));
        assert_eq!(assess(q, &series(&[16, 6])).unwrap().remitted, Some(false));
        let m = definition_for("madrs").unwrap();
        let m12 = definition_by_id("madrs-remission-12").unwrap();
        assert_eq!(assess(m, &series(&[34, 10])).unwrap().remitted, Some(true));
        assert_eq!(assess(m, &series(&[34, 11])).unwrap().remitted, Some(false));
        let o = assess(m12, &series(&[34, 12])).unwrap();
        assert_eq!(o.remitted, Some(true));
        assert_eq!(o.definition.id, "madrs-remission-12");
        assert_eq!(assess(m12, &series(&[34, 13])).unwrap().remitted, Some(false));
    }

    #[test]
    fn relapse_is_loss_of_response_after_a_response() {
        let def = definition_for("madrs").unwrap();
        // 30 → 14 (response) → 12 (response) → 20 (lost: relapse) → 10 (response again).
        let o = assess(def, &series(&[30, 14, 12, 20, 10])).unwrap();
        assert_eq!(o.first_response_at, Some(at(1)));
        assert_eq!((o.relapsed, o.relapse_at), (Some(true), Some(at(3))));
        // Latest-score statuses: responding and remitted again at week 4.
        assert_eq!((o.responded, o.currently_responding, o.remitted), (Some(true), Some(true), Some(true)));
        assert_eq!(o.ever_responded, Some(true));

        // Ending in the relapsed state.
        let o = assess(def, &series(&[30, 14, 20])).unwrap();
        assert_eq!((o.responded, o.currently_responding, o.relapsed), (Some(false), Some(false), Some(true)));
        assert_eq!(o.relapse_at, Some(at(2)));

        // Never responded: not a relapse, however bad it gets.
        let o = assess(def, &series(&[30, 25, 35])).unwrap();
        assert_eq!((o.ever_responded, o.relapsed, o.relapse_at), (Some(false), Some(false), None));
    }

    #[test]
    fn points_in_any_order_use_the_earliest_as_baseline() {
        let def = definition_for("gad7").unwrap();
        let mut pts = series(&[16, 12, 7, 4]);
        pts.reverse();
        let o = assess(def, &pts).unwrap();
        assert_eq!((o.baseline, o.baseline_at, o.latest, o.latest_at), (16, at(0), 4, at(3)));
        assert_eq!(o.first_response_at, Some(at(2))); // 7 ≤ 8 = 50 % of 16
        assert_eq!((o.responded, o.remitted, o.assessments), (Some(true), Some(true), 4));
    }

    #[test]
    fn baseline_zero_has_no_percent_and_no_response() {
        let def = definition_for("phq9").unwrap();
        let o = assess(def, &series(&[0, 0])).unwrap();
        assert_eq!((o.change, o.percent_change), (0, None));
        assert_eq!((o.responded, o.ever_responded, o.relapsed, o.currently_responding), (None, None, None, None));
        assert_eq!(o.remitted, Some(true)); // remission is about the latest score only
        let o = assess(def, &series(&[0, 6])).unwrap();
        assert_eq!((o.change, o.percent_change, o.remitted), (6, None, Some(false)));
    }

    #[test]
    fn definitions_without_rules_report_change_only() {
        let o = assess(definition_for("pcl5").unwrap(), &series(&[50, 30])).unwrap();
        assert_eq!((o.change, o.percent_change), (-20, Some(-40.0)));
        assert_eq!((o.responded, o.remitted, o.relapsed, o.ever_responded), (None, None, None, None));
    }

    #[test]
    fn a_clinic_can_configure_a_point_based_rule() {
        let text = r#"
            [[definitions]]
            id = "pcl5-local"
            name = "PCL-5 local"
            instrument = "pcl5"
            default = true
            source = { section = "§1.6", tags = ["S28"] }
            [definitions.response]
            rule = { kind = "point_reduction", min_points = 10 }
            source = { section = "§1.6", tags = ["S28"], note = "local choice" }
            [definitions.relapse]
            rule = "loss_of_response"
            source = { section = "§5", tags = [] }
        "#;
        let defs = parse_definitions(text).unwrap();
        let o = assess(&defs[0], &series(&[50, 40, 45])).unwrap();
        assert_eq!(o.first_response_at, Some(at(1)));
        assert_eq!((o.responded, o.relapsed, o.relapse_at), (Some(false), Some(true), Some(at(2))));
        assert_eq!(ResponseRule::PointReduction { min_points: 10 }.is_met(0, -10), Some(true));
    }

    #[test]
    fn invalid_definition_files_are_rejected() {
        let no_default = r#"
            [[definitions]]
            id = "x"
            name = "x"
            instrument = "phq9"
            source = { section = "§1.2" }
        "#;
        let err = parse_definitions(no_default).unwrap_err().to_string();
        assert!(err.contains("exactly one default"), "{err}");
        let bad = r#"
            [[definitions]]
            id = "x"
            name = "x"
            instrument = "cssrs_screen"
            default = true
            source = { section = "§1.8" }
            [definitions.relapse]
            rule = "loss_of_response"
            source = { section = "§5" }
        "#;
        let err = parse_definitions(bad).unwrap_err().to_string();
        assert!(err.contains("not an instrument with a total"), "{err}");
        assert!(err.contains("needs a response rule"), "{err}");
        assert!(parse_definitions("definitions = 3").is_err());
    }

    // ------------------------------------------------------------- courses and their baselines

    mod courses {
        use super::*;
        use crate::course::{CourseStatus, Route};
        use crate::ids::{PatientId, ResponseId, SiteId};
        use crate::patient::Indication;
        use crate::records::CompletedBy;
        use time::macros::date;

        fn course(id: i64, route: Route, phase: Phase, start: time::Date) -> Course {
            Course {
                id: CourseId(id),
                patient_id: PatientId(1),
                site_id: SiteId(1),
                route,
                phase,
                indication: Indication::Depression,
                planned_sessions: 6,
                start_date: start,
                status: CourseStatus::Active,
                protocol: None,
            }
        }

        /// A PHQ-9 with `total` spread over items 1-8 (item 9 stays 0).
        fn phq9(id: i64, course: i64, week: i64, total: i32) -> QuestionnaireResponse {
            let mut left = total;
            let mut answers: Vec<Option<i32>> = (0..8)
                .map(|_| {
                    let a = left.min(3);
                    left -= a;
                    Some(a)
                })
                .collect();
            answers.push(Some(0));
            assert_eq!(left, 0, "PHQ-9 items 1-8 hold at most 24");
            let score = crate::instruments::score(catalog().get("phq9").unwrap(), &answers).unwrap();
            QuestionnaireResponse {
                id: ResponseId(id),
                patient_id: PatientId(1),
                course_id: Some(CourseId(course)),
                session_id: None,
                instrument: "phq9".into(),
                answers,
                score,
                completed_at: at(week),
                completed_by: CompletedBy::Patient,
            }
        }

        fn courses() -> Vec<Course> {
            vec![
                course(1, Route::IvRacemic, Phase::Induction, date!(2025 - 01 - 06)),
                course(2, Route::IvRacemic, Phase::Maintenance, date!(2025 - 02 - 10)),
            ]
        }

        /// Induction 20 → 8 → 3; maintenance 4, 2, 3, 4: in remission throughout maintenance.
        fn responses() -> Vec<QuestionnaireResponse> {
            vec![
                phq9(1, 1, 0, 20),
                phq9(2, 1, 2, 8),
                phq9(3, 1, 4, 3),
                phq9(4, 2, 5, 4),
                phq9(5, 2, 7, 2),
                phq9(6, 2, 9, 3),
                phq9(7, 2, 11, 4),
            ]
        }

        #[test]
        fn maintenance_continues_the_latest_earlier_induction_on_its_route() {
            let mut cs = courses();
            assert_eq!(continued_course(&cs, &cs[0]), None);
            assert_eq!(continued_course(&cs, &cs[1]).map(|c| c.id), Some(CourseId(1)));
            // Another route's induction, and an induction after the maintenance began, are not it.
            cs.push(course(3, Route::IntranasalEsketamine, Phase::Induction, date!(2025 - 01 - 20)));
            cs.push(course(4, Route::IvRacemic, Phase::Induction, date!(2025 - 03 - 01)));
            assert_eq!(continued_course(&cs, &cs[1]).map(|c| c.id), Some(CourseId(1)));
            // A second induction on the route before it is the one continued.
            cs.push(course(5, Route::IvRacemic, Phase::Induction, date!(2025 - 02 - 01)));
            assert_eq!(continued_course(&cs, &cs[1]).map(|c| c.id), Some(CourseId(5)));
        }

        #[test]
        fn maintenance_in_remission_is_a_responder_in_remission_not_a_relapse() {
            let (cs, rs) = (courses(), responses());
            let def = definition_for("phq9").unwrap();
            let j = judge_course(def, &cs[1], continued_course(&cs, &cs[1]), &rs).unwrap();
            assert_eq!(j.series.baseline(), ScorePoint { at: at(0), total: 20 });
            assert_eq!(j.series.baseline_course, Some(CourseId(1)));
            assert_eq!(j.series.points.iter().map(|p| p.total).collect::<Vec<_>>(), [20, 4, 2, 3, 4]);
            let o = &j.outcome;
            assert_eq!((o.baseline, o.latest, o.change), (20, 4, -16));
            assert_eq!((o.responded, o.remitted, o.relapsed), (Some(true), Some(true), Some(false)));

            // The bug this replaces: judged against its own first score (4), a 3 after a 2 is a
            // "relapse" and a 4 "not responding" while the patient stays in remission.
            let alone = judge_course(def, &cs[1], None, &rs).unwrap().outcome;
            assert_eq!((alone.baseline, alone.responded, alone.relapsed), (4, Some(false), Some(true)));
            assert_eq!(alone.remitted, Some(true));
        }

        #[test]
        fn an_induction_is_judged_against_its_own_first_score() {
            let (cs, rs) = (courses(), responses());
            let j = judge_course(definition_for("phq9").unwrap(), &cs[0], None, &rs).unwrap();
            assert_eq!((j.series.baseline().total, j.series.baseline_course), (20, None));
            assert_eq!(j.series.points.len(), 3);
            assert_eq!((j.outcome.responded, j.outcome.remitted), (Some(true), Some(true)));
        }

        #[test]
        fn a_course_without_scores_of_its_own_is_not_judged() {
            let (cs, rs) = (courses(), responses());
            let only_induction: Vec<_> = rs.into_iter().filter(|r| r.course_id == Some(CourseId(1))).collect();
            let def = definition_for("phq9").unwrap();
            assert_eq!(judge_course(def, &cs[1], Some(&cs[0]), &only_induction), None);
            assert_eq!(judged_series(&cs[1], Some(&cs[0]), &only_induction, "phq9"), None);
        }

        #[test]
        fn a_carried_baseline_must_precede_the_course_scores() {
            let own = [ScorePoint { at: at(5), total: 3 }];
            let earlier = ScorePoint { at: at(0), total: 20 };
            assert_eq!(judged_points(Some(earlier), &own), vec![earlier, own[0]]);
            let later = ScorePoint { at: at(6), total: 20 };
            assert_eq!(judged_points(Some(later), &own), own.to_vec());
            // A maintenance course scored before its induction's first score keeps its own baseline.
            let (cs, mut rs) = (courses(), responses());
            rs.push(phq9(8, 2, -1, 12));
            let j = judge_course(definition_for("phq9").unwrap(), &cs[1], Some(&cs[0]), &rs).unwrap();
            assert_eq!((j.series.baseline().total, j.series.baseline_course), (12, None));
        }

        #[test]
        fn course_outcomes_use_the_same_judgement() {
            let (cs, rs) = (courses(), responses());
            let out = crate::records::course_outcomes(&cs, &rs);
            assert_eq!(out.len(), 2);
            let m = out.iter().find(|o| o.course_id == CourseId(2)).unwrap();
            assert_eq!(m.baseline_course_id, Some(CourseId(1)));
            let j = judge_course(definition_for("phq9").unwrap(), &cs[1], Some(&cs[0]), &rs).unwrap();
            assert_eq!(m.outcome, j.outcome);
        }

        #[test]
        fn the_patient_page_explains_each_score_against_its_course_baseline() {
            let (cs, rs) = (courses(), responses());
            let base = |i: usize| crate::patient_view::baseline_for(&cs, &rs, &rs[i]);
            assert_eq!(base(0), None); // the baseline itself
            assert_eq!(base(2), Some(20));
            // Maintenance scores against the induction's first score, not the course's own first.
            assert_eq!(base(3), Some(20));
            assert_eq!(base(6), Some(20));
            // A score linked to no course: against the patient's first earlier score.
            let mut loose = phq9(9, 1, 12, 6);
            loose.course_id = None;
            assert_eq!(crate::patient_view::baseline_for(&cs, &rs, &loose), Some(20));
        }
    }

    #[test]
    fn outcome_serializes_with_rfc3339_times() {
        let o = assess(definition_for("phq9").unwrap(), &series(&[20, 8])).unwrap();
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(json["baseline_at"], "2025-01-06T09:00:00Z");
        assert_eq!(json["definition"]["id"], "phq9");
        assert_eq!(json["definition"]["remission"]["threshold"]["below"], 5);
    }
}
