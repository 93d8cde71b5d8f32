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
use crate::course::Route;
use crate::error::{DomainError, Validator};
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
            v.check(
                d.0.is_finite() && d.0 > 0.0,
                "daily_dose_mg",
                "enter the daily dose as a positive number of mg, or leave it empty",
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
            // Within the plausible ranges (issue 17); values beyond them are refused, which
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
}
