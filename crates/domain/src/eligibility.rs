//! Eligibility: is the depression treatment-resistant, how resistant (Maudsley Staging
//! Method), what rules a route out or needs a documented decision, and what must be done
//! before the first dose.
//!
//! Why data: the TRD definition, the MSM table, the contraindication grid and the
//! pre-treatment checklist are clinical content that the medical director signs off and
//! that changes with labels. They live in `data/rules/maudsley.toml` and
//! `data/rules/contraindications.toml`, every value with the section and source tag of
//! `clinical-reference.md` it came from (or an explicit "clinic setting" marker), and are
//! embedded at compile time. Loading checks the tables are complete and consistent (MSM
//! bands contiguous and covering every input, every route cell sourced); the tests run
//! that check, so a bad edit fails the build's tests rather than a patient's assessment.
//!
//! Decisions worth knowing:
//! * A failed trial (for TRD) is one in the current episode, marked adequate, lasting at
//!   least the adequate duration, ending in no or partial response. Trials stopped for
//!   intolerance do not count. Trials of the same drug count once (the definition is
//!   about ≥2 *antidepressants*).
//! * MSM with 0 antidepressant failures is rejected, not scored: the MSM table starts at
//!   1-2 failures because it stages treatment *resistance*; scoring 0 as 0 points would give
//!   totals outside 3-15 and a band the method does not define, and scoring it as 1 would
//!   overstate resistance. So [`maudsley_score`] returns a field error on
//!   `antidepressant_failures` explaining this.
//! * Contraindication levels: `hard_stop` (label contraindication, blocks the route),
//!   `caution` (assess benefit/risk; needs a documented clinician decision), or nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::alerts::parse_rules_toml;
use time::Date;

use crate::course::Route;
use crate::error::{DomainError, Validator};
use crate::medications::{Allergy, Medication, PregnancyStatusRecord};
use crate::patient::Indication;
use crate::plausible::Quantity;
use crate::protocols::{Population, Protocol};
use crate::units::Milligrams;

const MAUDSLEY_TOML: &str = include_str!("../../../data/rules/maudsley.toml");
const CONTRAINDICATIONS_TOML: &str = include_str!("../../../data/rules/contraindications.toml");

/// Data-entry limits (not clinical rules): longest trial a form accepts, in weeks, and the
/// longest drug name.
pub const MAX_TRIAL_WEEKS: u32 = 520;
const MAX_DRUG_NAME_LEN: usize = 100;

// =======================================================================================
// Treatment resistance (§3.1)
// =======================================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrialOutcome {
    NoResponse,
    PartialResponse,
    Response,
    /// Stopped because of side effects.
    Intolerance,
}

/// One antidepressant trial from the patient's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AntidepressantTrial {
    pub drug: String,
    #[serde(default)]
    pub daily_dose_mg: Option<Milligrams>,
    pub weeks: u32,
    /// Clinician's judgement that dose and duration were adequate (e.g. ATHF score ≥3, §3.1).
    pub adequate: bool,
    pub outcome: TrialOutcome,
    /// Given during the current depressive episode.
    pub current_episode: bool,
}

impl AntidepressantTrial {
    pub fn validate(&self) -> Result<(), DomainError> {
        let rule = treatment_resistance_rule();
        let mut v = Validator::new();
        let drug = self.drug.trim();
        v.check(
            !drug.is_empty() && drug.len() <= MAX_DRUG_NAME_LEN,
            "drug",
            format!("name the antidepressant (1-{MAX_DRUG_NAME_LEN} characters)"),
        );
        if let Some(d) = self.daily_dose_mg {
            crate::plausible::check(
                &mut v,
                "daily_dose_mg",
                crate::plausible::ranges().quantity(Quantity::Mg, d.0, "the daily dose (or leave it empty)"),
            );
        }
        v.check(
            self.weeks <= MAX_TRIAL_WEEKS,
            "weeks",
            format!("{} weeks is longer than {MAX_TRIAL_WEEKS}; check the duration", self.weeks),
        );
        if self.adequate {
            v.check(
                self.weeks >= rule.min_adequate_weeks,
                "weeks",
                format!(
                    "an adequate trial lasts at least {} weeks ({}); correct the weeks or untick adequate",
                    rule.min_adequate_weeks, rule.min_adequate_weeks_source
                ),
            );
        }
        v.finish()
    }

    /// Counts towards treatment resistance under the configured rule.
    pub fn counts_as_failure(&self) -> bool {
        let rule = treatment_resistance_rule();
        self.current_episode
            && self.adequate
            && self.weeks >= rule.min_adequate_weeks
            && matches!(self.outcome, TrialOutcome::NoResponse | TrialOutcome::PartialResponse)
    }
}

/// The working TRD definition (§3.1), as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TreatmentResistanceRule {
    pub min_failed_adequate_trials: u32,
    pub source: String,
    pub min_adequate_weeks: u32,
    pub min_adequate_weeks_source: String,
}

/// The TRD decision with the working shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TreatmentResistance {
    pub resistant: bool,
    /// Distinct antidepressants with an adequate failed trial in the current episode.
    pub failed_adequate_trials: u32,
    pub required: u32,
    /// The drugs counted (normalised to lower case), for the record.
    pub counted_drugs: Vec<String>,
    pub source: String,
}

/// The TRD rule in force (from `data/rules/maudsley.toml`).
pub fn treatment_resistance_rule() -> &'static TreatmentResistanceRule {
    &eligibility_data().maudsley.treatment_resistance
}

/// §3.1: ≥2 adequate failed antidepressant trials in the current episode.
pub fn is_treatment_resistant(trials: &[AntidepressantTrial]) -> bool {
    assess_treatment_resistance(trials).resistant
}

/// Like [`is_treatment_resistant`], returning the count, the drugs counted and the source.
pub fn assess_treatment_resistance(trials: &[AntidepressantTrial]) -> TreatmentResistance {
    let rule = treatment_resistance_rule();
    let drugs: BTreeSet<String> = trials
        .iter()
        .filter(|t| t.counts_as_failure())
        .map(|t| t.drug.trim().to_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    let n = u32::try_from(drugs.len()).unwrap_or(u32::MAX);
    TreatmentResistance {
        resistant: n >= rule.min_failed_adequate_trials,
        failed_adequate_trials: n,
        required: rule.min_failed_adequate_trials,
        counted_drugs: drugs.into_iter().collect(),
        source: rule.source.clone(),
    }
}

// =======================================================================================
// Maudsley Staging Method (§3.1 [S21])
// =======================================================================================

/// MSM baseline severity categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MsmSeverity {
    Subsyndromal,
    Mild,
    Moderate,
    SevereWithoutPsychosis,
    SevereWithPsychosis,
}

impl MsmSeverity {
    pub const ALL: [MsmSeverity; 5] =
        [Self::Subsyndromal, Self::Mild, Self::Moderate, Self::SevereWithoutPsychosis, Self::SevereWithPsychosis];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaudsleyInput {
    pub episode_duration_months: u32,
    pub severity: MsmSeverity,
    /// Number of failed antidepressant treatments; at least 1 (see module docs).
    pub antidepressant_failures: u32,
    pub augmentation_used: bool,
    pub ect_used: bool,
}

impl MaudsleyInput {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        v.check(
            self.antidepressant_failures >= 1,
            "antidepressant_failures",
            "the Maudsley Staging Method stages treatment resistance and its table starts at 1-2 failed antidepressants; \
             with no failed trial the patient is not staged (enter the number of failed trials, at least 1)",
        );
        let c = &crate::plausible::ranges().counts;
        v.check(
            self.antidepressant_failures <= c.antidepressant_failures_max,
            "antidepressant_failures",
            format!("enter at most {} failed antidepressants", c.antidepressant_failures_max),
        );
        v.check(
            self.episode_duration_months <= c.episode_duration_months_max,
            "episode_duration_months",
            format!("enter the episode's length in months (at most {})", c.episode_duration_months_max),
        );
        v.finish()
    }
}

/// Points per MSM dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MsmComponents {
    pub duration: u32,
    pub severity: u32,
    pub antidepressant_failures: u32,
    pub augmentation: u32,
    pub ect: u32,
}

impl MsmComponents {
    pub fn sum(&self) -> u32 {
        self.duration + self.severity + self.antidepressant_failures + self.augmentation + self.ect
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MsmLevel {
    Mild,
    Moderate,
    Severe,
}

/// A total-score band, e.g. moderate 7-10.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MsmBand {
    pub level: MsmLevel,
    pub label: String,
    pub min: u32,
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaudsleyScore {
    /// 3-15.
    pub total: u32,
    pub components: MsmComponents,
    pub band: MsmBand,
    pub source: String,
}

/// A count range scoring some points; `max` absent = open-ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MsmCountBand {
    pub label: String,
    pub min: u32,
    #[serde(default)]
    pub max: Option<u32>,
    pub points: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MsmCountDimension {
    pub label: String,
    pub bands: Vec<MsmCountBand>,
}

impl MsmCountDimension {
    fn points(&self, n: u32) -> Option<u32> {
        self.bands.iter().find(|b| n >= b.min && b.max.is_none_or(|m| n <= m)).map(|b| b.points)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MsmSeverityCategory {
    pub category: MsmSeverity,
    pub label: String,
    pub points: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MsmSeverityDimension {
    pub label: String,
    pub categories: Vec<MsmSeverityCategory>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MsmYesNoDimension {
    pub label: String,
    pub no: u32,
    pub yes: u32,
}

/// The MSM scoring table, as loaded from `data/rules/maudsley.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaudsleyTable {
    pub source: String,
    pub duration: MsmCountDimension,
    pub severity: MsmSeverityDimension,
    pub antidepressant_failures: MsmCountDimension,
    pub augmentation: MsmYesNoDimension,
    pub ect: MsmYesNoDimension,
    pub bands: Vec<MsmBand>,
}

/// The MSM table in force.
pub fn maudsley_table() -> &'static MaudsleyTable {
    &eligibility_data().maudsley.msm
}

/// Scores the Maudsley Staging Method (§3.1, S21). Returns a field error for
/// `antidepressant_failures == 0` (see the module docs for why).
pub fn maudsley_score(input: &MaudsleyInput) -> Result<MaudsleyScore, DomainError> {
    input.validate()?;
    let t = maudsley_table();
    // The table is checked at load to cover every valid input, so these lookups succeed.
    let components = MsmComponents {
        duration: t.duration.points(input.episode_duration_months).expect("duration bands cover all months"),
        severity: t
            .severity
            .categories
            .iter()
            .find(|c| c.category == input.severity)
            .map(|c| c.points)
            .expect("every severity category is in the table"),
        antidepressant_failures: t
            .antidepressant_failures
            .points(input.antidepressant_failures)
            .expect("failure bands cover 1 and above"),
        augmentation: if input.augmentation_used { t.augmentation.yes } else { t.augmentation.no },
        ect: if input.ect_used { t.ect.yes } else { t.ect.no },
    };
    let total = components.sum();
    let band = t
        .bands
        .iter()
        .find(|b| (b.min..=b.max).contains(&total))
        .cloned()
        .expect("total bands cover every reachable total");
    Ok(MaudsleyScore { total, components, band, source: t.source.clone() })
}

// =======================================================================================
// Contraindications (§3.2) and pre-treatment checks (§3.3)
// =======================================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContraindicationLevel {
    /// Assess benefit/risk; treatment needs a documented clinician decision.
    Caution,
    /// Label contraindication: the route is blocked.
    HardStop,
}

/// One cell of the grid: the level of an item on one route, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContraindicationCell {
    pub level: ContraindicationLevel,
    pub source: String,
    /// What the source says, in short.
    #[serde(default)]
    pub note: Option<String>,
}

/// One checklist item with its level per route (routes absent = nothing listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContraindicationItem {
    pub code: String,
    pub label: String,
    pub routes: BTreeMap<Route, ContraindicationCell>,
    /// Where Keta reads this fact from instead of a tick (absent: the clinician declares it).
    #[serde(default)]
    pub from_record: Option<RecordSource>,
}

/// A record Keta holds that answers a checklist item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordSource {
    /// The current medication list (classes in medication-classes.toml).
    Medications,
    /// The recorded pregnancy status; while none is recorded the clinician may declare it.
    Pregnancy,
}

impl RecordSource {
    pub fn label(self) -> &'static str {
        match self {
            Self::Medications => "the medication list",
            Self::Pregnancy => "the pregnancy status",
        }
    }
}

/// How a fact behind an eligibility result was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FactBasis {
    /// Read from what Keta holds (date of birth, trials, medications, allergies, pregnancy status).
    Record,
    /// Ticked by the clinician on the checklist.
    #[default]
    Declared,
    /// Keta holds nothing to check it with; the result does not rest on it.
    NotRecorded,
}

impl ContraindicationItem {
    pub fn for_route(&self, route: Route) -> Option<&ContraindicationCell> {
        self.routes.get(&route)
    }
}

/// A present item that matters on the assessed route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContraindicationFinding {
    pub code: String,
    pub label: String,
    pub level: ContraindicationLevel,
    pub source: String,
    pub note: Option<String>,
    /// Read from the record or declared (assessments stored before this field: declared).
    #[serde(default)]
    pub basis: FactBasis,
    /// What in the record raised it, e.g. `lorazepam 1 mg at night (benzodiazepine)`.
    #[serde(default)]
    pub evidence: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContraindicationAssessment {
    pub route: Route,
    /// Label contraindications present: the route cannot be used.
    pub hard_stops: Vec<ContraindicationFinding>,
    /// Present items needing a documented benefit/risk decision.
    pub cautions: Vec<ContraindicationFinding>,
    /// Present items the reference lists nothing for on this route (shown, not scored).
    pub not_listed_for_route: Vec<String>,
    /// True when any hard stop is present.
    pub blocked: bool,
}

/// One pre-treatment check (§3.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PretreatmentCheck {
    pub code: String,
    pub label: String,
    /// Why it is done (as §3.3 states it).
    pub basis: String,
    pub source: String,
    pub routes: Vec<Route>,
}

/// The contraindication checklist, in display order.
pub fn contraindication_items() -> &'static [ContraindicationItem] {
    &eligibility_data().contraindications.items
}

/// Sorts the present items into hard stops and cautions for `route`. Unknown codes are an
/// error naming the code (`present[i]`); duplicates are counted once.
pub fn assess_contraindications(route: Route, present: &[String]) -> Result<ContraindicationAssessment, DomainError> {
    let items = contraindication_items();
    let mut v = Validator::new();
    let mut found: Vec<&ContraindicationItem> = Vec::new();
    for (i, code) in present.iter().enumerate() {
        match items.iter().find(|it| it.code == *code) {
            Some(it) => {
                if !found.iter().any(|f| f.code == it.code) {
                    found.push(it);
                }
            }
            None => v.push(
                &format!("present[{i}]"),
                format!(
                    "unknown contraindication code \"{code}\"; use one of: {}",
                    items.iter().map(|it| it.code.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ),
        }
    }
    v.finish()?;

    let mut out = ContraindicationAssessment {
        route,
        hard_stops: vec![],
        cautions: vec![],
        not_listed_for_route: vec![],
        blocked: false,
    };
    // Checklist order, not input order, so the result reads the same way every time.
    for it in items.iter().filter(|it| found.iter().any(|f| f.code == it.code)) {
        match it.for_route(route) {
            Some(cell) => {
                let finding = ContraindicationFinding {
                    code: it.code.clone(),
                    label: it.label.clone(),
                    level: cell.level,
                    source: cell.source.clone(),
                    note: cell.note.clone(),
                    basis: FactBasis::Declared,
                    evidence: None,
                };
                match cell.level {
                    ContraindicationLevel::HardStop => out.hard_stops.push(finding),
                    ContraindicationLevel::Caution => out.cautions.push(finding),
                }
            }
            None => out.not_listed_for_route.push(it.code.clone()),
        }
    }
    out.blocked = !out.hard_stops.is_empty();
    Ok(out)
}

/// The §3.3 checks that apply to `route`, in checklist order.
pub fn pretreatment_checks(route: Route) -> Vec<&'static PretreatmentCheck> {
    eligibility_data().contraindications.pretreatment_checks.iter().filter(|c| c.routes.contains(&route)).collect()
}

// =======================================================================================
// Eligibility from the record: age, trials, medications, allergies, pregnancy
// =======================================================================================

/// What Keta holds about the patient, for [`assess_route`].
#[derive(Debug, Clone, Copy)]
pub struct RecordFacts<'a> {
    /// The site's local date.
    pub today: Date,
    pub date_of_birth: Date,
    pub indication: Indication,
    pub trials: &'a [AntidepressantTrial],
    /// All recorded medications; only those current on `today` count.
    pub medications: &'a [Medication],
    pub allergies: &'a [Allergy],
    /// The latest recorded pregnancy status.
    pub pregnancy: Option<&'a PregnancyStatusRecord>,
}

/// A result the clinician must read but that needs no documented decision, e.g. the
/// treatment-resistance gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EligibilityWarning {
    pub code: String,
    pub message: String,
    pub source: String,
}

/// One fact the result rests on and how it was known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EligibilityFact {
    /// What was checked, e.g. `Age`, `Current medications`.
    pub fact: String,
    pub basis: FactBasis,
    pub detail: String,
}

/// One route assessed from the record and the clinician's ticks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RouteEligibility {
    pub contraindications: ContraindicationAssessment,
    pub warnings: Vec<EligibilityWarning>,
    pub facts: Vec<EligibilityFact>,
    /// Age in completed years on the site's date.
    pub age_years: i32,
    pub treatment_resistance: TreatmentResistance,
}

/// Age in completed years on `on`.
pub fn age_on(date_of_birth: Date, on: Date) -> i32 {
    let mut age = on.year() - date_of_birth.year();
    if (on.month() as u8, on.day()) < (date_of_birth.month() as u8, date_of_birth.day()) {
        age -= 1;
    }
    age
}

/// The code of the finding raised when the patient's age is outside every protocol's
/// population on the route.
pub const OUTSIDE_POPULATION: &str = "outside_population";

/// Assesses one route from what Keta holds (age against the route's protocol populations,
/// recorded trials for treatment resistance, current medications, allergies, pregnancy
/// status) and what the clinician declares (`declared`: checklist codes for facts Keta does
/// not hold). A declared code that Keta reads from the record is refused, naming where to
/// record it instead, so the two cannot disagree.
pub fn assess_route(
    route: Route,
    record: &RecordFacts<'_>,
    declared: &[String],
    protocols: &[Protocol],
) -> Result<RouteEligibility, DomainError> {
    let items = contraindication_items();
    refuse_declared_from_record(items, record, declared)?;
    let declared_part = assess_contraindications(route, declared)?;

    let mut facts = Vec::new();
    let mut warnings = Vec::new();
    let age = age_on(record.date_of_birth, record.today);

    // From the record: (item code, evidence).
    let raised = raised_by_record(record, declared, &mut facts);

    let mut out = ContraindicationAssessment {
        route,
        hard_stops: vec![],
        cautions: vec![],
        not_listed_for_route: declared_part.not_listed_for_route.clone(),
        blocked: false,
    };
    let mut push = |f: ContraindicationFinding| match f.level {
        ContraindicationLevel::HardStop => out.hard_stops.push(f),
        ContraindicationLevel::Caution => out.cautions.push(f),
    };

    // Age against the populations of the route's protocols for the patient's indication.
    let on_route: Vec<&Protocol> = protocols.iter().filter(|p| p.route == route).collect();
    let for_indication: Vec<&Protocol> =
        on_route.iter().copied().filter(|p| p.indication == record.indication).collect();
    let candidates = if for_indication.is_empty() { on_route } else { for_indication };
    let with_population: Vec<(&Protocol, &Population)> =
        candidates.iter().filter_map(|p| p.population.as_ref().map(|pop| (*p, pop))).collect();
    let names = |ps: &[(&Protocol, &Population)]| {
        ps.iter().map(|(p, pop)| format!("{} ({})", p.name, pop.label)).collect::<Vec<_>>().join("; ")
    };
    if with_population.is_empty() {
        facts.push(EligibilityFact {
            fact: "Age".into(),
            basis: FactBasis::NotRecorded,
            detail: format!("Age {age}: no protocol for this route sets an age range, so age was not checked."),
        });
    } else {
        let admitted: Vec<(&Protocol, &Population)> =
            with_population.iter().copied().filter(|(_, pop)| pop.admits(age)).collect();
        if admitted.is_empty() {
            // The most lenient level among the protocols: a decision if any protocol allows one.
            let (_, pop) = with_population.iter().min_by_key(|(_, pop)| pop.outside).copied().expect("not empty");
            let source = pop
                .min_age_years
                .as_ref()
                .filter(|m| f64::from(age) < m.value)
                .or(pop.max_age_years.as_ref())
                .map_or_else(|| pop.outside_source.clone(), |m| m.source.clone());
            push(ContraindicationFinding {
                code: OUTSIDE_POPULATION.into(),
                label: format!("Age {age}: outside the population of {}", names(&with_population)),
                level: pop.outside,
                source,
                note: Some(pop.outside_source.clone()),
                basis: FactBasis::Record,
                evidence: Some(format!("date of birth {}, age {age} on {}", record.date_of_birth, record.today)),
            });
        }
        facts.push(EligibilityFact {
            fact: "Age".into(),
            basis: FactBasis::Record,
            detail: if admitted.is_empty() {
                format!("Age {age} (date of birth {}): outside every protocol's population.", record.date_of_birth)
            } else {
                format!("Age {age} (date of birth {}): within {}.", record.date_of_birth, names(&admitted))
            },
        });
    }

    let trd = treatment_resistance(record, &candidates, &mut facts, &mut warnings);

    // Record findings in checklist order.
    for it in items {
        let Some((_, evidence)) = raised.iter().find(|(c, _)| *c == it.code) else { continue };
        match it.for_route(route) {
            Some(cell) => push(ContraindicationFinding {
                code: it.code.clone(),
                label: it.label.clone(),
                level: cell.level,
                source: cell.source.clone(),
                note: cell.note.clone(),
                basis: FactBasis::Record,
                evidence: Some(evidence.clone()),
            }),
            None => out.not_listed_for_route.push(it.code.clone()),
        }
    }
    // A declared item the record also raised is shown once, as read from the record.
    for f in declared_part.hard_stops.into_iter().chain(declared_part.cautions) {
        if !raised.iter().any(|(c, _)| *c == f.code) {
            push(f);
        }
    }
    let ticked: Vec<&str> =
        declared.iter().filter_map(|c| items.iter().find(|it| it.code == *c)).map(|it| it.label.as_str()).collect();
    facts.push(EligibilityFact {
        fact: "Checklist".into(),
        basis: FactBasis::Declared,
        detail: if ticked.is_empty() {
            "The clinician declared none of the checklist items present.".into()
        } else {
            format!("Declared present by the clinician: {}.", ticked.join("; "))
        },
    });
    out.blocked = !out.hard_stops.is_empty();
    Ok(RouteEligibility { contraindications: out, warnings, facts, age_years: age, treatment_resistance: trd })
}

/// A declared code that Keta reads from the record is refused, naming where to record it.
fn refuse_declared_from_record(
    items: &[ContraindicationItem],
    record: &RecordFacts<'_>,
    declared: &[String],
) -> Result<(), DomainError> {
    let mut v = Validator::new();
    for (i, code) in declared.iter().enumerate() {
        let Some(source) = items.iter().find(|it| it.code == *code).and_then(|it| it.from_record) else { continue };
        let refused = match source {
            RecordSource::Pregnancy => record.pregnancy.map(|p| {
                format!(
                    "a pregnancy status is recorded ({}, {}); record a new status instead of ticking \"{code}\"",
                    p.status.label(),
                    p.recorded_on
                )
            }),
            other => Some(format!("\"{code}\" is read from {}; record it there instead of ticking it", other.label())),
        };
        if let Some(m) = refused {
            v.push(&format!("present[{i}]"), m);
        }
    }
    v.finish()?;
    Ok(())
}

/// What the record raises (current medications' and allergies' interaction classes, a
/// pregnancy status) as (item code, evidence), with a fact for each kind read.
fn raised_by_record(
    record: &RecordFacts<'_>,
    declared: &[String],
    facts: &mut Vec<EligibilityFact>,
) -> Vec<(String, String)> {
    let mut raised: Vec<(String, String)> = Vec::new();
    let mut add = |code: &str, evidence: String| match raised.iter_mut().find(|(c, _)| c == code) {
        Some((_, e)) => {
            e.push_str("; ");
            e.push_str(&evidence);
        }
        None => raised.push((code.to_string(), evidence)),
    };
    let current: Vec<&Medication> = record.medications.iter().filter(|m| m.is_current(record.today)).collect();
    let mut unclassified = Vec::new();
    for m in &current {
        if m.classes.is_empty() {
            unclassified.push(m.drug.clone());
        }
        for c in &m.classes {
            for code in &c.raises {
                add(code, format!("{} ({})", m.describe(), c.label.to_lowercase()));
            }
        }
    }
    facts.push(EligibilityFact {
        fact: "Current medications".into(),
        basis: FactBasis::Record,
        detail: if current.is_empty() {
            "No current medication recorded.".into()
        } else {
            let mut d = format!(
                "{} checked against the interaction classes: {}.",
                current.len(),
                current.iter().map(|m| m.describe()).collect::<Vec<_>>().join(", ")
            );
            if !unclassified.is_empty() {
                d.push_str(&format!(
                    " Not classified (check their interactions yourself): {}.",
                    unclassified.join(", ")
                ));
            }
            d
        },
    });
    for a in record.allergies {
        for c in &a.classes {
            for code in &c.raises {
                add(code, format!("allergy to {} ({})", a.substance, a.severity.label().to_lowercase()));
            }
        }
    }
    facts.push(EligibilityFact {
        fact: "Allergies".into(),
        basis: FactBasis::Record,
        detail: if record.allergies.is_empty() {
            "No allergy recorded.".into()
        } else {
            format!(
                "Recorded: {}.",
                record.allergies.iter().map(|a| a.substance.as_str()).collect::<Vec<_>>().join(", ")
            )
        },
    });
    match record.pregnancy {
        Some(p) => {
            if p.status.raises_rule() {
                add("pregnancy_or_breastfeeding", format!("{} (recorded {})", p.status.label(), p.recorded_on));
            }
            facts.push(EligibilityFact {
                fact: "Pregnancy status".into(),
                basis: FactBasis::Record,
                detail: format!("{}, recorded {}.", p.status.label(), p.recorded_on),
            });
        }
        None => facts.push(EligibilityFact {
            fact: "Pregnancy status".into(),
            basis: if declared.iter().any(|c| c == "pregnancy_or_breastfeeding") {
                FactBasis::Declared
            } else {
                FactBasis::NotRecorded
            },
            detail: "No pregnancy status recorded; the checklist tick is the clinician's declaration.".into(),
        }),
    }
    raised
}

/// Treatment resistance, where a protocol on the route (`candidates`) is for TRD: the fact,
/// and a warning when it is not met.
fn treatment_resistance(
    record: &RecordFacts<'_>,
    candidates: &[&Protocol],
    facts: &mut Vec<EligibilityFact>,
    warnings: &mut Vec<EligibilityWarning>,
) -> TreatmentResistance {
    let trd = assess_treatment_resistance(record.trials);
    let trd_protocols: Vec<(&Protocol, &String)> = candidates
        .iter()
        .filter_map(|p| {
            p.population.as_ref().and_then(|pop| pop.requires_treatment_resistance.as_ref()).map(|s| (*p, s))
        })
        .collect();
    let counted = format!(
        "{} adequate failed trial{} recorded in the current episode; TRD needs {}",
        trd.failed_adequate_trials,
        if trd.failed_adequate_trials == 1 { "" } else { "s" },
        trd.required
    );
    if trd_protocols.is_empty() {
        facts.push(EligibilityFact {
            fact: "Treatment resistance".into(),
            basis: FactBasis::Record,
            detail: format!("{counted}; no protocol for this route requires it."),
        });
    } else {
        let for_whom = trd_protocols.iter().map(|(p, _)| p.name.as_str()).collect::<Vec<_>>().join("; ");
        if !trd.resistant {
            warnings.push(EligibilityWarning {
                code: "treatment_resistance_not_met".into(),
                message: format!("{counted} ({}), as {for_whom} requires.", trd.source),
                source: format!("{}; {}", trd.source, trd_protocols[0].1),
            });
        }
        facts.push(EligibilityFact {
            fact: "Treatment resistance".into(),
            basis: FactBasis::Record,
            detail: format!("{counted}{}.", if trd.resistant { ": met" } else { ": not met" }),
        });
    }
    trd
}

// =======================================================================================
// Loading and checking the data files
// =======================================================================================

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaudsleyFile {
    treatment_resistance: TreatmentResistanceRule,
    msm: MaudsleyTable,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContraindicationsFile {
    items: Vec<ContraindicationItem>,
    pretreatment_checks: Vec<PretreatmentCheck>,
}

struct EligibilityData {
    maudsley: MaudsleyFile,
    contraindications: ContraindicationsFile,
}

fn eligibility_data() -> &'static EligibilityData {
    static DATA: OnceLock<EligibilityData> = OnceLock::new();
    DATA.get_or_init(|| EligibilityData {
        maudsley: load_maudsley(MAUDSLEY_TOML)
            .unwrap_or_else(|e| panic!("embedded data/rules/maudsley.toml is invalid: {e}")),
        contraindications: load_contraindications(CONTRAINDICATIONS_TOML)
            .unwrap_or_else(|e| panic!("embedded data/rules/contraindications.toml is invalid: {e}")),
    })
}

fn load_maudsley(s: &str) -> Result<MaudsleyFile, DomainError> {
    let f: MaudsleyFile = parse_rules_toml(s, "maudsley rules")?;
    let mut v = Validator::new();
    let tr = &f.treatment_resistance;
    v.check(
        tr.min_failed_adequate_trials >= 1,
        "treatment_resistance.min_failed_adequate_trials",
        "must be at least 1",
    );
    v.check(!tr.source.trim().is_empty(), "treatment_resistance.source", "give the source");
    v.check(tr.min_adequate_weeks >= 1, "treatment_resistance.min_adequate_weeks", "must be at least 1");
    v.check(
        !tr.min_adequate_weeks_source.trim().is_empty(),
        "treatment_resistance.min_adequate_weeks_source",
        "give the source",
    );

    let m = &f.msm;
    v.check(!m.source.trim().is_empty(), "msm.source", "give the source");
    check_count_bands(&mut v, "msm.duration.bands", &m.duration.bands, 0);
    check_count_bands(&mut v, "msm.antidepressant_failures.bands", &m.antidepressant_failures.bands, 1);
    for sev in MsmSeverity::ALL {
        let n = m.severity.categories.iter().filter(|c| c.category == sev).count();
        v.check(n == 1, "msm.severity.categories", format!("list {sev:?} exactly once (found {n})"));
    }
    v.check(!m.bands.is_empty(), "msm.bands", "list the total-score bands");
    let tables_present = !m.duration.bands.is_empty()
        && !m.antidepressant_failures.bands.is_empty()
        && !m.severity.categories.is_empty();
    if tables_present {
        // Every reachable total must fall in exactly one band.
        let pts = |b: &[MsmCountBand]| b.iter().map(|x| x.points).collect::<Vec<_>>();
        let (d, a) = (pts(&m.duration.bands), pts(&m.antidepressant_failures.bands));
        let s: Vec<u32> = m.severity.categories.iter().map(|c| c.points).collect();
        let lo = min(&d) + min(&s) + min(&a) + m.augmentation.no.min(m.augmentation.yes) + m.ect.no.min(m.ect.yes);
        let hi = max(&d) + max(&s) + max(&a) + m.augmentation.no.max(m.augmentation.yes) + m.ect.no.max(m.ect.yes);
        for total in lo..=hi {
            let n = m.bands.iter().filter(|b| (b.min..=b.max).contains(&total)).count();
            v.check(
                n == 1,
                "msm.bands",
                format!("total {total} falls in {n} bands; bands must cover {lo}-{hi} without overlap"),
            );
        }
    }
    v.finish()?;
    Ok(f)
}

fn min(x: &[u32]) -> u32 {
    x.iter().copied().min().unwrap_or(0)
}

fn max(x: &[u32]) -> u32 {
    x.iter().copied().max().unwrap_or(0)
}

/// Bands must start at `from`, follow each other without gaps or overlaps, and end open.
fn check_count_bands(v: &mut Validator, key: &str, bands: &[MsmCountBand], from: u32) {
    let mut next = Some(from);
    for (i, b) in bands.iter().enumerate() {
        let at = format!("{key}[{i}]");
        match next {
            Some(n) => {
                v.check(b.min == n, &format!("{at}.min"), format!("must be {n} so the bands have no gap or overlap"))
            }
            None => {
                v.push(&format!("{at}.min"), "comes after an open-ended band; remove it or give the earlier band a max")
            }
        }
        if let Some(mx) = b.max {
            v.check(mx >= b.min, &format!("{at}.max"), "must be at least min");
        }
        next = b.max.and_then(|m| m.checked_add(1));
    }
    v.check(
        !bands.is_empty() && next.is_none(),
        key,
        "the last band must be open-ended (no max) so every count scores",
    );
}

fn load_contraindications(s: &str) -> Result<ContraindicationsFile, DomainError> {
    let f: ContraindicationsFile = parse_rules_toml(s, "contraindications")?;
    let mut v = Validator::new();
    let mut codes = BTreeSet::new();
    for (i, it) in f.items.iter().enumerate() {
        let at = format!("items[{i}]");
        v.check(is_code(&it.code), &format!("{at}.code"), "use a snake_case code");
        v.check(
            codes.insert(it.code.as_str()),
            &format!("{at}.code"),
            format!("\"{}\" appears more than once", it.code),
        );
        v.check(!it.label.trim().is_empty(), &format!("{at}.label"), "give the label staff will see");
        v.check(!it.routes.is_empty(), &format!("{at}.routes"), "give the level for at least one route");
        for (route, cell) in &it.routes {
            v.check(
                !cell.source.trim().is_empty(),
                &format!("{at}.routes.{}.source", route.as_str()),
                "every cell needs its source",
            );
        }
    }
    let mut codes = BTreeSet::new();
    for (i, c) in f.pretreatment_checks.iter().enumerate() {
        let at = format!("pretreatment_checks[{i}]");
        v.check(is_code(&c.code), &format!("{at}.code"), "use a snake_case code");
        v.check(codes.insert(c.code.as_str()), &format!("{at}.code"), format!("\"{}\" appears more than once", c.code));
        v.check(!c.label.trim().is_empty(), &format!("{at}.label"), "give the label staff will see");
        v.check(!c.source.trim().is_empty(), &format!("{at}.source"), "give the source");
        v.check(!c.routes.is_empty(), &format!("{at}.routes"), "list at least one route");
    }
    v.finish()?;
    Ok(f)
}

fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field_of(e: DomainError) -> (String, String) {
        match e {
            DomainError::Invalid(mut v) => {
                let f = v.remove(0);
                (f.field, f.message)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn embedded_data_loads() {
        assert!(!contraindication_items().is_empty());
        assert_eq!(maudsley_table().bands.len(), 3);
        assert!(treatment_resistance_rule().source.contains("§3.1"));
    }

    // --- TRD ---

    fn trial(drug: &str, adequate: bool, outcome: TrialOutcome, current: bool) -> AntidepressantTrial {
        AntidepressantTrial {
            drug: drug.into(),
            daily_dose_mg: None,
            weeks: 8,
            adequate,
            outcome,
            current_episode: current,
        }
    }

    #[test]
    fn two_adequate_failures_in_current_episode_is_trd() {
        use TrialOutcome::*;
        let one = vec![trial("sertraline", true, NoResponse, true)];
        assert!(!is_treatment_resistant(&one));
        let two = vec![trial("sertraline", true, NoResponse, true), trial("venlafaxine", true, PartialResponse, true)];
        assert!(is_treatment_resistant(&two));
        let a = assess_treatment_resistance(&two);
        assert_eq!((a.failed_adequate_trials, a.required), (2, 2));
        assert_eq!(a.counted_drugs, vec!["sertraline", "venlafaxine"]);
        assert!(a.source.contains("§3.1"));
    }

    #[test]
    fn trials_that_do_not_count() {
        use TrialOutcome::*;
        let base = trial("sertraline", true, NoResponse, true);
        for other in [
            trial("venlafaxine", false, NoResponse, true), // not adequate
            trial("venlafaxine", true, NoResponse, false), // earlier episode
            trial("venlafaxine", true, Response, true),    // worked
            trial("venlafaxine", true, Intolerance, true), // stopped for side effects
            AntidepressantTrial { weeks: 3, ..trial("venlafaxine", true, NoResponse, true) }, // too short
            trial(" Sertraline ", true, NoResponse, true), // same drug again
        ] {
            assert!(!is_treatment_resistant(&[base.clone(), other.clone()]), "{other:?}");
        }
    }

    #[test]
    fn trial_validation() {
        let ok = trial("sertraline", true, TrialOutcome::NoResponse, true);
        assert!(ok.validate().is_ok());
        let (f, m) = field_of(AntidepressantTrial { weeks: 2, ..ok.clone() }.validate().unwrap_err());
        assert_eq!(f, "weeks");
        assert!(m.contains("at least 4 weeks"), "{m}");
        assert!(AntidepressantTrial { weeks: 2, adequate: false, ..ok.clone() }.validate().is_ok());
        let (f, _) = field_of(AntidepressantTrial { drug: " ".into(), ..ok.clone() }.validate().unwrap_err());
        assert_eq!(f, "drug");
        let (f, _) = field_of(
            AntidepressantTrial { daily_dose_mg: Some(Milligrams(-50.0)), ..ok.clone() }.validate().unwrap_err(),
        );
        assert_eq!(f, "daily_dose_mg");
        let json =
            r#"{"drug":"bupropion","weeks":6,"adequate":true,"outcome":"partial_response","current_episode":true}"#;
        let t: AntidepressantTrial = serde_json::from_str(json).unwrap();
        assert_eq!(t.outcome, TrialOutcome::PartialResponse);
    }

    // --- MSM ---

    fn msm(months: u32, severity: MsmSeverity, failures: u32, aug: bool, ect: bool) -> MaudsleyScore {
        maudsley_score(&MaudsleyInput {
            episode_duration_months: months,
            severity,
            antidepressant_failures: failures,
            augmentation_used: aug,
            ect_used: ect,
        })
        .unwrap()
    }

    #[test]
    fn msm_band_boundaries_hand_worked() {
        use MsmSeverity::*;
        // 3: <=12 mo (1) + subsyndromal (1) + 1-2 failures (1) + no aug (0) + no ECT (0).
        let s = msm(12, Subsyndromal, 2, false, false);
        assert_eq!((s.total, s.band.level), (3, MsmLevel::Mild));
        assert_eq!(
            s.components,
            MsmComponents { duration: 1, severity: 1, antidepressant_failures: 1, augmentation: 0, ect: 0 }
        );
        // 6: 13 mo (2) + mild (2) + 2 failures (1) + aug (1) + no ECT = 6.
        let s = msm(13, Mild, 2, true, false);
        assert_eq!((s.total, s.band.level), (6, MsmLevel::Mild));
        assert_eq!((s.band.min, s.band.max), (3, 6));
        // 7: 24 mo (2) + moderate (3) + 3 failures (2) = 7.
        let s = msm(24, Moderate, 3, false, false);
        assert_eq!((s.total, s.band.level), (7, MsmLevel::Moderate));
        assert_eq!(s.band.label, "Moderate");
        // 10: 25 mo (3) + severe w/o psychosis (4) + 5 failures (3) = 10.
        let s = msm(25, SevereWithoutPsychosis, 5, false, false);
        assert_eq!((s.total, s.band.level), (10, MsmLevel::Moderate));
        // 11: 12 mo (1) + severe with psychosis (5) + 7 failures (4) + ECT (1) = 11.
        let s = msm(12, SevereWithPsychosis, 7, false, true);
        assert_eq!((s.total, s.band.level), (11, MsmLevel::Severe));
        // 15: >24 mo (3) + severe with psychosis (5) + >10 failures (5) + aug (1) + ECT (1).
        let s = msm(60, SevereWithPsychosis, 11, true, true);
        assert_eq!((s.total, s.band.level), (15, MsmLevel::Severe));
        assert_eq!((s.band.min, s.band.max), (11, 15));
        assert!(s.source.contains("§3.1 [S21]"));
    }

    #[test]
    fn msm_failure_band_edges() {
        use MsmSeverity::*;
        let pts = |n| msm(1, Subsyndromal, n, false, false).components.antidepressant_failures;
        assert_eq!([1, 2, 3, 4, 5, 6, 7, 10, 11, 100].map(pts), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        let dur = |m| msm(m, Subsyndromal, 1, false, false).components.duration;
        assert_eq!([0, 12, 13, 24, 25].map(dur), [1, 1, 2, 2, 3]);
    }

    #[test]
    fn msm_refuses_implausible_counts() {
        let c = &crate::plausible::ranges().counts;
        let input = |months, failures| MaudsleyInput {
            episode_duration_months: months,
            severity: MsmSeverity::Moderate,
            antidepressant_failures: failures,
            augmentation_used: false,
            ect_used: false,
        };
        // The schemathesis probe: 2^31 failed antidepressants was staged and stored.
        let (f, _) = field_of(maudsley_score(&input(6, 2_147_483_648)).unwrap_err());
        assert_eq!(f, "antidepressant_failures");
        let (f, _) = field_of(maudsley_score(&input(c.episode_duration_months_max + 1, 2)).unwrap_err());
        assert_eq!(f, "episode_duration_months");
        assert!(maudsley_score(&input(c.episode_duration_months_max, c.antidepressant_failures_max)).is_ok());
    }

    #[test]
    fn msm_zero_failures_is_rejected_with_explanation() {
        let input = MaudsleyInput {
            episode_duration_months: 6,
            severity: MsmSeverity::Moderate,
            antidepressant_failures: 0,
            augmentation_used: false,
            ect_used: false,
        };
        let (f, m) = field_of(maudsley_score(&input).unwrap_err());
        assert_eq!(f, "antidepressant_failures");
        assert!(m.contains("starts at 1-2"), "{m}");
    }

    fn any_severity() -> impl Strategy<Value = MsmSeverity> {
        prop::sample::select(MsmSeverity::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn msm_total_in_range_and_equals_components(
            // Within the plausible ranges; values beyond them are refused, which
            // msm_refuses_implausible_counts checks.
            months in 0..=crate::plausible::ranges().counts.episode_duration_months_max,
            severity in any_severity(),
            failures in 1..=crate::plausible::ranges().counts.antidepressant_failures_max,
            aug in any::<bool>(),
            ect in any::<bool>(),
        ) {
            let s = msm(months, severity, failures, aug, ect);
            prop_assert!((3..=15).contains(&s.total));
            prop_assert_eq!(s.total, s.components.sum());
            prop_assert!((s.band.min..=s.band.max).contains(&s.total));
        }
    }

    #[test]
    fn msm_table_checks_catch_gaps() {
        let gap = MAUDSLEY_TOML.replacen("min = 13", "min = 14", 1);
        let (f, _) = field_of(load_maudsley(&gap).unwrap_err());
        assert_eq!(f, "msm.duration.bands[1].min");
        let bad = MAUDSLEY_TOML.replacen("points = 1", "points = \"one\"", 1);
        let (f, _) = field_of(load_maudsley(&bad).unwrap_err());
        assert_eq!(f, "msm.duration.bands[0].points");
    }

    // --- contraindications ---

    fn present(codes: &[&str]) -> Vec<String> {
        codes.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn aneurysm_is_a_hard_stop_for_esketamine_and_iv_racemic() {
        let p = present(&["aneurysmal_vascular_disease"]);
        let esk = assess_contraindications(Route::IntranasalEsketamine, &p).unwrap();
        assert!(esk.blocked);
        assert_eq!(esk.hard_stops[0].code, "aneurysmal_vascular_disease");
        assert!(esk.hard_stops[0].source.contains("§3.2 [S6]"));
        let iv = assess_contraindications(Route::IvRacemic, &p).unwrap();
        assert!(iv.blocked);
        assert!(iv.hard_stops[0].source.contains("§3.2 [S11]"));
        assert!(iv.hard_stops[0].note.as_deref().unwrap().contains("significant BP rise would be a serious hazard"));
    }

    #[test]
    fn cautions_do_not_block() {
        let a = assess_contraindications(
            Route::IntranasalEsketamine,
            &present(&["psychosis", "uncontrolled_hypertension"]),
        )
        .unwrap();
        assert!(!a.blocked);
        assert_eq!(
            a.cautions.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(),
            vec!["uncontrolled_hypertension", "psychosis"]
        );
        assert!(a.cautions.iter().all(|c| c.source.contains("§3.2")));
    }

    #[test]
    fn items_not_listed_for_the_route_are_reported_separately() {
        let a = assess_contraindications(Route::IntranasalEsketamine, &present(&["raised_icp_or_iop"])).unwrap();
        assert!(!a.blocked && a.cautions.is_empty());
        assert_eq!(a.not_listed_for_route, vec!["raised_icp_or_iop"]);
        let iv = assess_contraindications(Route::IvRacemic, &present(&["raised_icp_or_iop"])).unwrap();
        assert_eq!(iv.cautions.len(), 1);
    }

    #[test]
    fn oral_and_sublingual_cells_are_marked_as_clinic_settings() {
        for it in contraindication_items() {
            for r in [Route::OralRacemic, Route::SublingualRacemic] {
                if let Some(c) = it.for_route(r) {
                    assert!(c.source.starts_with("clinic setting"), "{} {r:?}", it.code);
                }
            }
        }
    }

    #[test]
    fn unknown_code_is_an_error_naming_it() {
        let (f, m) =
            field_of(assess_contraindications(Route::IvRacemic, &present(&["psychosis", "gout"])).unwrap_err());
        assert_eq!(f, "present[1]");
        assert!(m.contains("\"gout\""), "{m}");
    }

    #[test]
    fn duplicates_count_once() {
        let a =
            assess_contraindications(Route::IvRacemic, &present(&["hypersensitivity", "hypersensitivity"])).unwrap();
        assert_eq!(a.hard_stops.len(), 1);
        assert!(assess_contraindications(Route::IvRacemic, &[]).unwrap().hard_stops.is_empty());
    }

    // --- pre-treatment checks ---

    #[test]
    fn rems_enrolment_only_for_esketamine() {
        let esk: Vec<_> = pretreatment_checks(Route::IntranasalEsketamine).iter().map(|c| c.code.as_str()).collect();
        assert!(esk.contains(&"rems_enrolment"));
        for r in [Route::IvRacemic, Route::ImRacemic, Route::OralRacemic, Route::SublingualRacemic] {
            let codes: Vec<_> = pretreatment_checks(r).iter().map(|c| c.code.clone()).collect();
            assert!(!codes.contains(&"rems_enrolment".to_string()), "{r:?}");
            assert!(codes.contains(&"baseline_bp_hr".to_string()));
        }
        assert!(pretreatment_checks(Route::IvRacemic).iter().all(|c| c.source.contains("§3.3")));
    }

    // --- from the record ---

    use crate::ids::{PatientId, RecordId};
    use crate::medications::{AllergySeverity, NewAllergy, NewMedication, PregnancyStatus};
    use crate::protocols::ProtocolLibrary;
    use time::macros::{date, datetime};

    const TODAY: Date = date!(2026 - 11 - 02);

    fn med(drug: &str) -> Medication {
        Medication::new(
            RecordId(1),
            PatientId(1),
            NewMedication { drug: drug.into(), dose: Some("1 mg".into()), daily_dose_mg: None, started_on: None },
            None,
            None,
            datetime!(2026-11-01 14:00 UTC),
            "rn".into(),
        )
    }

    fn facts<'a>(
        dob: Date,
        trials: &'a [AntidepressantTrial],
        meds: &'a [Medication],
        allergies: &'a [Allergy],
    ) -> RecordFacts<'a> {
        RecordFacts {
            today: TODAY,
            date_of_birth: dob,
            indication: Indication::Depression,
            trials,
            medications: meds,
            allergies,
            pregnancy: None,
        }
    }

    fn assess(route: Route, f: &RecordFacts<'_>, declared: &[&str]) -> RouteEligibility {
        assess_route(route, f, &present(declared), ProtocolLibrary::builtin().all()).unwrap()
    }

    fn two_failures() -> Vec<AntidepressantTrial> {
        use TrialOutcome::*;
        vec![trial("sertraline", true, NoResponse, true), trial("venlafaxine", true, PartialResponse, true)]
    }

    #[test]
    fn a_16_year_old_with_no_trials_is_not_clear_for_esketamine() {
        let f = facts(date!(2010 - 06 - 01), &[], &[], &[]);
        let r = assess(Route::IntranasalEsketamine, &f, &[]);
        assert_eq!(r.age_years, 16);
        let age = r.contraindications.cautions.iter().find(|c| c.code == OUTSIDE_POPULATION).expect("age finding");
        assert_eq!(age.basis, FactBasis::Record);
        assert!(age.label.starts_with("Age 16"), "{}", age.label);
        assert!(age.source.contains("§3.2 [S6]"), "{}", age.source);
        let w = &r.warnings[0];
        assert_eq!(w.code, "treatment_resistance_not_met");
        assert!(
            w.message.starts_with("0 adequate failed trials recorded in the current episode; TRD needs 2"),
            "{}",
            w.message
        );
        assert!(w.source.contains("§3.1"), "{}", w.source);
        assert!(r.facts.iter().any(|f| f.fact == "Age" && f.basis == FactBasis::Record));
    }

    #[test]
    fn the_trd_gap_is_named_and_met_trials_clear_it() {
        let one = vec![trial("sertraline", true, TrialOutcome::NoResponse, true)];
        let adult = date!(1984 - 03 - 09);
        let r = assess(Route::IntranasalEsketamine, &facts(adult, &one, &[], &[]), &[]);
        assert!(r.contraindications.cautions.is_empty() && !r.contraindications.blocked);
        assert!(
            r.warnings[0].message.starts_with("1 adequate failed trial recorded in the current episode; TRD needs 2")
        );
        let two = two_failures();
        let r = assess(Route::IntranasalEsketamine, &facts(adult, &two, &[], &[]), &[]);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        // IV racemic protocols do not require treatment resistance.
        let r = assess(Route::IvRacemic, &facts(adult, &one, &[], &[]), &[]);
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn age_is_counted_on_the_sites_date() {
        // 18 today: inside; 18 tomorrow: outside.
        let on_birthday = facts(date!(2008 - 11 - 02), &[], &[], &[]);
        assert_eq!(assess(Route::IntranasalEsketamine, &on_birthday, &[]).age_years, 18);
        let eve = facts(date!(2008 - 11 - 03), &[], &[], &[]);
        let r = assess(Route::IntranasalEsketamine, &eve, &[]);
        assert_eq!(r.age_years, 17);
        assert!(r.contraindications.cautions.iter().any(|c| c.code == OUTSIDE_POPULATION));
    }

    #[test]
    fn a_medication_raises_its_caution_from_the_list() {
        let two = two_failures();
        let meds = vec![med("Lorazepam"), med("sertraline")];
        let r = assess(Route::IntranasalEsketamine, &facts(date!(1984 - 03 - 09), &two, &meds, &[]), &[]);
        let c = &r.contraindications.cautions;
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!((c[0].code.as_str(), c[0].basis), ("cns_depressants", FactBasis::Record));
        assert!(c[0].evidence.as_deref().unwrap().contains("Lorazepam 1 mg (benzodiazepine)"), "{:?}", c[0].evidence);
        let meds_fact = r.facts.iter().find(|f| f.fact == "Current medications").unwrap();
        assert!(
            meds_fact.detail.contains("Not classified (check their interactions yourself): sertraline"),
            "{}",
            meds_fact.detail
        );
        // Theophylline is a hard stop on IV racemic, not listed for esketamine.
        let theo = vec![med("theophylline")];
        let f = facts(date!(1984 - 03 - 09), &two, &theo, &[]);
        assert!(assess(Route::IvRacemic, &f, &[]).contraindications.blocked);
        let esk = assess(Route::IntranasalEsketamine, &f, &[]);
        assert!(!esk.contraindications.blocked);
        assert_eq!(esk.contraindications.not_listed_for_route, ["theophylline_or_aminophylline"]);
    }

    #[test]
    fn a_stopped_medication_raises_nothing() {
        let two = two_failures();
        let mut m = med("lorazepam");
        m.stopped_on = Some(TODAY);
        let r = assess(Route::IvRacemic, &facts(date!(1984 - 03 - 09), &two, &[m], &[]), &[]);
        assert!(r.contraindications.cautions.is_empty());
    }

    #[test]
    fn a_ketamine_allergy_is_a_hard_stop_on_every_route() {
        let a = Allergy::new(
            RecordId(1),
            PatientId(1),
            NewAllergy {
                substance: "Ketamine".into(),
                reaction: Some("rash".into()),
                severity: AllergySeverity::Moderate,
            },
            datetime!(2026-11-01 14:00 UTC),
            "rn".into(),
        );
        let two = two_failures();
        let allergies = [a];
        let f = facts(date!(1984 - 03 - 09), &two, &[], &allergies);
        for route in Route::ALL {
            let r = assess(route, &f, &[]);
            assert!(r.contraindications.blocked, "{route:?}");
            assert_eq!(r.contraindications.hard_stops[0].code, "hypersensitivity");
            assert_eq!(r.contraindications.hard_stops[0].basis, FactBasis::Record);
        }
    }

    #[test]
    fn a_declared_hypersensitivity_the_allergy_list_also_raises_is_shown_once_from_the_record() {
        let a = Allergy::new(
            RecordId(1),
            PatientId(1),
            NewAllergy { substance: "Spravato".into(), reaction: None, severity: AllergySeverity::Unknown },
            datetime!(2026-11-01 14:00 UTC),
            "rn".into(),
        );
        let two = two_failures();
        let allergies = [a];
        let f = facts(date!(1984 - 03 - 09), &two, &[], &allergies);
        let r = assess(Route::IntranasalEsketamine, &f, &["hypersensitivity"]);
        assert_eq!(r.contraindications.hard_stops.len(), 1);
        assert_eq!(r.contraindications.hard_stops[0].basis, FactBasis::Record);
        // Without the allergy, the tick alone is the clinician's declaration (an excipient).
        let r =
            assess(Route::IntranasalEsketamine, &facts(date!(1984 - 03 - 09), &two, &[], &[]), &["hypersensitivity"]);
        assert_eq!(r.contraindications.hard_stops[0].basis, FactBasis::Declared);
    }

    #[test]
    fn ticks_for_facts_keta_holds_are_refused() {
        let f = facts(date!(1984 - 03 - 09), &[], &[], &[]);
        let e = assess_route(
            Route::IvRacemic,
            &f,
            &present(&["psychosis", "cns_depressants"]),
            ProtocolLibrary::builtin().all(),
        )
        .unwrap_err();
        let (field, m) = field_of(e);
        assert_eq!(field, "present[1]");
        assert!(m.contains("medication list"), "{m}");
        // Pregnancy may be declared while no status is recorded, not once one is.
        let r = assess(Route::IntranasalEsketamine, &f, &["pregnancy_or_breastfeeding"]);
        assert_eq!(
            r.contraindications.cautions.iter().find(|c| c.code == "pregnancy_or_breastfeeding").unwrap().basis,
            FactBasis::Declared
        );
        let status = PregnancyStatusRecord {
            id: RecordId(1),
            patient_id: PatientId(1),
            status: PregnancyStatus::NotPregnant,
            recorded_on: TODAY,
            note: None,
            recorded_at: datetime!(2026-11-02 14:00 UTC),
            recorded_by: "rn".into(),
        };
        let with = RecordFacts { pregnancy: Some(&status), ..f };
        let (field, _) = field_of(
            assess_route(
                Route::IvRacemic,
                &with,
                &present(&["pregnancy_or_breastfeeding"]),
                ProtocolLibrary::builtin().all(),
            )
            .unwrap_err(),
        );
        assert_eq!(field, "present[0]");
        let pregnant = PregnancyStatusRecord { status: PregnancyStatus::Pregnant, ..status };
        let r = assess(Route::IntranasalEsketamine, &RecordFacts { pregnancy: Some(&pregnant), ..f }, &[]);
        assert_eq!(
            r.contraindications.cautions.iter().find(|c| c.code == "pregnancy_or_breastfeeding").unwrap().basis,
            FactBasis::Record
        );
    }

    #[test]
    fn every_builtin_protocol_states_its_population() {
        for p in ProtocolLibrary::builtin().all() {
            let pop = p.population.as_ref().unwrap_or_else(|| panic!("{} has no population", p.id));
            let min = pop.min_age_years.as_ref().expect("a minimum age");
            if p.route == Route::IntranasalEsketamine {
                assert!(min.source.contains("§3.2 [S6]"), "{}", p.id);
            } else {
                assert!(min.source.starts_with("clinic setting"), "{}: the reference gives no racemic age range", p.id);
            }
        }
    }
}
