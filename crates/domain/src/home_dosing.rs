//! At-home programme (oral / sublingual ketamine): the pre-dose screen, and reconciliation of
//! the patient's dose log against what was dispensed.
//!
//! # Pre-dose screen
//!
//! Rules live in `data/rules/home-pre-dose-screen.toml`, each with its source: BP above the
//! label's general guide (§4.1), fasting per the esketamine pre-dose instructions (§2.3), no
//! alcohol or sedatives within a clinic-set interval, a sitter present, named and confirmed
//! (by their own link), and no driving until the next day (§4.1). Any failed rule refuses the
//! dose with a patient-facing reason ([`Refusal`]).
//!
//! The alcohol-free and sedative-free intervals are **not in the reference**, so they have no
//! default: until the clinic sets them, [`screen`] refuses to run (a `Conflict` naming the
//! missing settings), rather than guessing.
//!
//! The questions ask "in the last N hours/minutes" with the configured numbers
//! ([`PreDoseRules::questions`]), so the answers are yes/no and the rule is simply "no".
//!
//! # Reconciliation
//!
//! [`reconcile`] walks dispenses and logged doses in time order, in units (tablets/troches) of
//! one product strength, and reports doses logged beyond the supply, doses taken without a
//! cleared screen, and a mismatch with the patient's count of what is left. [`supply_hold`]
//! lists what must be resolved before a new supply is dispensed.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::alerts::AlertFiring;
use crate::between_alerts::BetweenSessionAlerts;
use crate::error::{DomainError, Validator};
use crate::instruments::SourceRef;
use crate::plausible::Quantity;
use crate::units::{Milligrams, Mmhg};
use crate::vitals::VitalSigns;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BloodPressureRule {
    /// Refuse when systolic is strictly above this.
    pub systolic_above_mmhg: f64,
    /// Refuse when diastolic is strictly above this.
    pub diastolic_above_mmhg: f64,
    pub source: SourceRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FastingRule {
    pub no_food_minutes: u32,
    pub no_liquids_minutes: u32,
    pub source: SourceRef,
}

/// An interval free of a substance. `free_hours` has no default (not in the reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubstanceRule {
    #[serde(default)]
    pub free_hours: Option<u32>,
    pub source: SourceRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcedRule {
    pub source: SourceRef,
}

/// The pre-dose screen's rules (one clinic's signed-off copy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreDoseRules {
    pub blood_pressure: BloodPressureRule,
    pub fasting: FastingRule,
    pub alcohol: SubstanceRule,
    pub sedatives: SubstanceRule,
    pub sitter: SourcedRule,
    pub driving: SourcedRule,
    /// Refuse while the patient has an open urgent alert (e.g. a positive safety answer).
    pub open_urgent_alert: SourcedRule,
}

const EMBEDDED: &str = include_str!("../../../data/rules/home-pre-dose-screen.toml");

impl PreDoseRules {
    /// Parses and checks a rules file. Unset clinic settings are allowed here (they are
    /// reported by [`Self::missing_settings`]); values that are set must make sense.
    pub fn from_toml(text: &str) -> Result<Self, DomainError> {
        let r: Self = toml::from_str(text).map_err(|e| DomainError::field("home_pre_dose_screen", e.to_string()))?;
        let mut v = Validator::new();
        let bp = &r.blood_pressure;
        v.check(
            (60.0..=250.0).contains(&bp.systolic_above_mmhg),
            "blood_pressure.systolic_above_mmhg",
            "must be a systolic value in mmHg (60-250)",
        );
        v.check(
            (30.0..=150.0).contains(&bp.diastolic_above_mmhg) && bp.diastolic_above_mmhg < bp.systolic_above_mmhg,
            "blood_pressure.diastolic_above_mmhg",
            "must be a diastolic value in mmHg (30-150), below the systolic limit",
        );
        v.check(r.alcohol.free_hours != Some(0), "alcohol.free_hours", "must be at least 1 hour when set");
        v.check(r.sedatives.free_hours != Some(0), "sedatives.free_hours", "must be at least 1 hour when set");
        for (f, s) in [
            ("blood_pressure.source", &bp.source),
            ("fasting.source", &r.fasting.source),
            ("alcohol.source", &r.alcohol.source),
            ("sedatives.source", &r.sedatives.source),
            ("sitter.source", &r.sitter.source),
            ("driving.source", &r.driving.source),
            ("open_urgent_alert.source", &r.open_urgent_alert.source),
        ] {
            v.check(!s.section.trim().is_empty(), f, "name the source section");
        }
        v.finish()?;
        Ok(r)
    }

    /// The embedded defaults: alcohol and sedative intervals are unset until the clinic sets them.
    ///
    /// # Panics
    /// If the embedded file is invalid — a build defect caught by this module's tests.
    pub fn builtin() -> &'static PreDoseRules {
        static R: OnceLock<PreDoseRules> = OnceLock::new();
        R.get_or_init(|| {
            Self::from_toml(EMBEDDED)
                .unwrap_or_else(|e| panic!("embedded data/rules/home-pre-dose-screen.toml is invalid: {e}"))
        })
    }

    /// Settings the clinic must fill before the screen can run.
    pub fn missing_settings(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.alcohol.free_hours.is_none() {
            m.push("alcohol.free_hours");
        }
        if self.sedatives.free_hours.is_none() {
            m.push("sedatives.free_hours");
        }
        m
    }

    /// The screen's questions with the configured numbers, in order: `(code, text)`.
    /// Refused with a `Conflict` while settings are missing.
    pub fn questions(&self) -> Result<Vec<(&'static str, String)>, DomainError> {
        let (alcohol_h, sedative_h) = self.require_settings()?;
        Ok(vec![
            ("blood_pressure", "Your blood pressure now (top and bottom numbers from your monitor)".to_string()),
            ("alcohol", format!("Have you had any alcohol in the last {alcohol_h} hours?")),
            (
                "sedatives",
                format!(
                    "Have you taken any sedatives, sleeping tablets or opioid painkillers in the last {sedative_h} hours?"
                ),
            ),
            ("food", format!("Have you eaten anything in the last {} minutes?", self.fasting.no_food_minutes)),
            (
                "liquids",
                format!("Have you had anything to drink in the last {} minutes?", self.fasting.no_liquids_minutes),
            ),
            ("sitter", "Who is staying with you during and after the dose? (their name)".to_string()),
            (
                "driving",
                "Do you agree not to drive or operate machinery until tomorrow, after a night's sleep?".to_string(),
            ),
        ])
    }

    fn require_settings(&self) -> Result<(u32, u32), DomainError> {
        match (self.alcohol.free_hours, self.sedatives.free_hours) {
            (Some(a), Some(s)) => Ok((a, s)),
            _ => Err(DomainError::Conflict(format!(
                "the home pre-dose screen cannot run until the clinic sets: {}",
                self.missing_settings().join(", ")
            ))),
        }
    }
}

/// The patient's answers (each "in the last N" uses the configured interval).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreDoseAnswers {
    pub systolic_mmhg: Mmhg,
    pub diastolic_mmhg: Mmhg,
    pub alcohol_within_interval: bool,
    pub sedatives_within_interval: bool,
    pub ate_within_interval: bool,
    pub drank_within_interval: bool,
    /// The sitter's name as the patient gives it.
    pub sitter_name: String,
    /// The sitter confirmed their presence by their own link.
    pub sitter_confirmed: bool,
    /// The patient agrees not to drive until the next day after restful sleep.
    pub agrees_not_to_drive: bool,
}

/// Why a dose was refused: a stable code, a patient-facing reason, and the rule's source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
// Named apart in the OpenAPI document: another `Refusal` would take its place.
#[schema(as = PreDoseRefusal)]
pub struct Refusal {
    pub code: &'static str,
    pub reason: String,
    pub source: SourceRef,
}

/// The screen's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ScreenOutcome {
    Cleared,
    Refused { refusals: Vec<Refusal> },
}

impl ScreenOutcome {
    pub fn is_cleared(&self) -> bool {
        matches!(self, ScreenOutcome::Cleared)
    }
}

/// Runs the pre-dose screen. `Err(Conflict)` while clinic settings are missing;
/// `Err(Invalid)` for implausible BP entries (a typing error, not a refusal).
pub fn screen(rules: &PreDoseRules, a: &PreDoseAnswers) -> Result<ScreenOutcome, DomainError> {
    let (alcohol_h, sedative_h) = rules.require_settings()?;
    VitalSigns { systolic_mmhg: Some(a.systolic_mmhg), diastolic_mmhg: Some(a.diastolic_mmhg), ..Default::default() }
        .validate()?;

    let mut out = Vec::new();
    let mut refuse =
        |code, reason: String, source: &SourceRef| out.push(Refusal { code, reason, source: source.clone() });
    let bp = &rules.blood_pressure;
    if a.systolic_mmhg.0 > bp.systolic_above_mmhg || a.diastolic_mmhg.0 > bp.diastolic_above_mmhg {
        refuse(
            "blood_pressure_high",
            format!(
                "Your blood pressure ({}/{} mmHg) is above {}/{} mmHg. Do not take the dose; contact the clinic.",
                a.systolic_mmhg.0, a.diastolic_mmhg.0, bp.systolic_above_mmhg, bp.diastolic_above_mmhg
            ),
            &bp.source,
        );
    }
    if a.alcohol_within_interval {
        refuse(
            "alcohol",
            format!("You have had alcohol in the last {alcohol_h} hours. Do not take the dose today."),
            &rules.alcohol.source,
        );
    }
    if a.sedatives_within_interval {
        refuse(
            "sedatives",
            format!(
                "You have taken a sedative in the last {sedative_h} hours. Do not take the dose; contact the clinic."
            ),
            &rules.sedatives.source,
        );
    }
    if a.ate_within_interval {
        refuse(
            "not_fasted_food",
            format!("Wait until {} minutes after eating before the dose.", rules.fasting.no_food_minutes),
            &rules.fasting.source,
        );
    }
    if a.drank_within_interval {
        refuse(
            "not_fasted_liquids",
            format!("Wait until {} minutes after drinking before the dose.", rules.fasting.no_liquids_minutes),
            &rules.fasting.source,
        );
    }
    if a.sitter_name.trim().is_empty() {
        refuse(
            "no_sitter",
            "A sitter must be with you for the dose; enter their name.".to_string(),
            &rules.sitter.source,
        );
    } else if !a.sitter_confirmed {
        refuse(
            "sitter_not_confirmed",
            format!(
                "{} has not yet confirmed they are with you (they confirm from their own link).",
                a.sitter_name.trim()
            ),
            &rules.sitter.source,
        );
    }
    if !a.agrees_not_to_drive {
        refuse(
            "driving",
            "You must not drive or operate machinery until tomorrow after a night's sleep.".to_string(),
            &rules.driving.source,
        );
    }
    Ok(if out.is_empty() { ScreenOutcome::Cleared } else { ScreenOutcome::Refused { refusals: out } })
}

/// The refusal for a patient with an open urgent alert (the store counts them; the rule and its
/// wording live here with the other screen rules).
pub fn open_urgent_alert_refusal(rules: &PreDoseRules) -> Refusal {
    Refusal {
        code: "open_urgent_alert",
        reason:
            "Your care team needs to speak with you before your next dose. Do not take it today; contact the clinic."
                .into(),
        source: rules.open_urgent_alert.source.clone(),
    }
}

/// How a logged dose compares with the dose planned for its session.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PlannedDoseCheck {
    /// No planned dose, or no supply strength to turn units into mg: nothing to compare.
    NoPlan,
    AsPlanned,
    MoreThanPlanned {
        taken: Milligrams,
        planned: Milligrams,
    },
    LessThanPlanned {
        taken: Milligrams,
        planned: Milligrams,
    },
}

/// Amounts within this of each other are the same dose (rounding in stored strengths).
const SAME_DOSE_MG: f64 = 1e-6;

/// Compares `units` of `unit_strength` with the planned dose.
pub fn check_against_plan(
    units: u32,
    unit_strength: Option<Milligrams>,
    planned: Option<Milligrams>,
) -> PlannedDoseCheck {
    let (Some(strength), Some(planned)) = (unit_strength, planned) else {
        return PlannedDoseCheck::NoPlan;
    };
    if !(strength.0 > 0.0 && planned.0 > 0.0) {
        return PlannedDoseCheck::NoPlan;
    }
    let taken = Milligrams(f64::from(units) * strength.0);
    if (taken.0 - planned.0).abs() <= SAME_DOSE_MG * planned.0.max(1.0) {
        PlannedDoseCheck::AsPlanned
    } else if taken.0 > planned.0 {
        PlannedDoseCheck::MoreThanPlanned { taken, planned }
    } else {
        PlannedDoseCheck::LessThanPlanned { taken, planned }
    }
}

/// The planned dose as a whole number of units of the supply, when it divides exactly (what the
/// patient is told to take); `None` when it does not, so the page shows mg only.
pub fn planned_units(planned: Milligrams, unit_strength: Milligrams) -> Option<u32> {
    if !(planned.0 > 0.0 && unit_strength.0 > 0.0) {
        return None;
    }
    let n = (planned.0 / unit_strength.0).round();
    let exact = (n * unit_strength.0 - planned.0).abs() <= SAME_DOSE_MG * planned.0.max(1.0);
    (exact && (1.0..=1000.0).contains(&n)).then_some(n as u32)
}

/// The clinician's alert for a logged dose that differs from the plan, with the severity and
/// source of `data/rules/between-sessions-alerts.toml` (none when less than planned is not
/// alerted on there).
pub fn dose_log_alert(alerts: &BetweenSessionAlerts, check: PlannedDoseCheck) -> Option<AlertFiring> {
    match check {
        PlannedDoseCheck::NoPlan | PlannedDoseCheck::AsPlanned => None,
        PlannedDoseCheck::MoreThanPlanned { taken, planned } => Some(alerts.home_dose_more_than_planned.fire(
            "home_dose_more_than_planned",
            format!("At-home dose logged as {taken}, more than the {planned} planned: contact the patient."),
        )),
        PlannedDoseCheck::LessThanPlanned { taken, planned } => alerts.home_dose_less_than_planned.as_ref().map(|r| {
            r.fire(
                "home_dose_less_than_planned",
                format!("At-home dose logged as {taken}, less than the {planned} planned."),
            )
        }),
    }
}

/// Units (tablets/troches) handed to the patient.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Dispense {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub units: u32,
    pub unit_strength: Milligrams,
}

/// One dose the patient logged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DoseLog {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub units: u32,
    /// A cleared pre-dose screen preceded this dose.
    pub screen_cleared: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReconciliationIssue {
    /// The running balance went below zero at this dose (logged more than was supplied).
    ExceedsSupply {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        balance_units: i64,
    },
    /// A dose was logged without a cleared pre-dose screen.
    WithoutClearedScreen {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The patient's count of units left differs from the expected balance.
    CountMismatch { expected_units: i64, counted_units: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
// Named apart in the OpenAPI document: another `Reconciliation` would take its place.
#[schema(as = HomeReconciliation)]
pub struct Reconciliation {
    pub dispensed_units: u64,
    pub logged_units: u64,
    pub dispensed_mg: Milligrams,
    pub logged_mg: Milligrams,
    /// Dispensed − logged.
    pub expected_on_hand_units: i64,
    pub counted_on_hand_units: Option<u32>,
    pub issues: Vec<ReconciliationIssue>,
}

impl Reconciliation {
    pub fn is_reconciled(&self) -> bool {
        self.issues.is_empty()
    }
}

/// Reconciles logged doses against dispenses (one product strength per programme).
/// `counted_on_hand` is the patient's or clinic's count of units left, if taken.
pub fn reconcile(
    dispensed: &[Dispense],
    logs: &[DoseLog],
    counted_on_hand: Option<u32>,
) -> Result<Reconciliation, DomainError> {
    let mut v = Validator::new();
    let strength = dispensed.first().map(|d| d.unit_strength);
    for (i, d) in dispensed.iter().enumerate() {
        crate::plausible::check(
            &mut v,
            &format!("dispensed[{i}].unit_strength"),
            crate::plausible::ranges().quantity(Quantity::Mg, d.unit_strength.0, "the strength of one unit"),
        );
        v.check(
            Some(d.unit_strength) == strength,
            &format!("dispensed[{i}].unit_strength"),
            "all dispenses must be the same strength; reconcile each product separately",
        );
        v.check(d.units > 0, &format!("dispensed[{i}].units"), "must be at least 1");
    }
    for (i, l) in logs.iter().enumerate() {
        v.check(l.units > 0, &format!("logs[{i}].units"), "must be at least 1");
    }
    v.finish()?;

    // Events in time order; at the same instant a dispense counts before a dose.
    let mut events: Vec<(OffsetDateTime, u8, i64, Option<&DoseLog>)> = dispensed
        .iter()
        .map(|d| (d.at, 0, i64::from(d.units), None))
        .chain(logs.iter().map(|l| (l.at, 1, -i64::from(l.units), Some(l))))
        .collect();
    events.sort_by_key(|e| (e.0, e.1));
    let mut issues = Vec::new();
    let mut balance = 0i64;
    let mut reported_negative = false;
    for (at, _, delta, log) in events {
        balance += delta;
        if let Some(l) = log {
            if !l.screen_cleared {
                issues.push(ReconciliationIssue::WithoutClearedScreen { at });
            }
            if balance < 0 && !reported_negative {
                reported_negative = true;
                issues.push(ReconciliationIssue::ExceedsSupply { at, balance_units: balance });
            }
        }
        if balance >= 0 {
            reported_negative = false;
        }
    }
    if let Some(c) = counted_on_hand
        && i64::from(c) != balance
    {
        issues.push(ReconciliationIssue::CountMismatch { expected_units: balance, counted_units: c });
    }
    let dispensed_units: u64 = dispensed.iter().map(|d| u64::from(d.units)).sum();
    let logged_units: u64 = logs.iter().map(|l| u64::from(l.units)).sum();
    let mg = strength.map_or(0.0, |s| s.0);
    Ok(Reconciliation {
        dispensed_units,
        logged_units,
        dispensed_mg: Milligrams(dispensed_units as f64 * mg),
        logged_mg: Milligrams(logged_units as f64 * mg),
        expected_on_hand_units: balance,
        counted_on_hand_units: counted_on_hand,
        issues,
    })
}

/// Reasons to hold a new supply (empty = may dispense): an unreconciled log, missed
/// check-ins, refused screens the clinician has not reviewed, or an urgent alert
/// still open (a dose logged above the plan, a positive safety answer): as no home dose is
/// cleared while one is open ([`open_urgent_alert_refusal`]), no new supply goes out either.
pub fn supply_hold(
    rec: &Reconciliation,
    missed_checkins: usize,
    unreviewed_refusals: usize,
    open_urgent_alerts: usize,
) -> Vec<String> {
    let mut r = Vec::new();
    if open_urgent_alerts > 0 {
        r.push(format!("{open_urgent_alerts} urgent alert(s) open: a clinician records what was done first"));
    }
    if !rec.is_reconciled() {
        r.push(format!("dose log does not reconcile ({} issue(s))", rec.issues.len()));
    }
    if rec.counted_on_hand_units.is_none() {
        r.push("no count of units on hand".to_string());
    }
    if missed_checkins > 0 {
        r.push(format!("{missed_checkins} missed check-in(s)"));
    }
    if unreviewed_refusals > 0 {
        r.push(format!("{unreviewed_refusals} refused pre-dose screen(s) not yet reviewed"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertSeverity;
    use time::Duration;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-04-01 08:00 UTC);

    #[test]
    fn a_logged_dose_is_compared_with_the_plan_in_mg() {
        let s = Some(Milligrams(100.0));
        assert_eq!(check_against_plan(2, s, Some(Milligrams(200.0))), PlannedDoseCheck::AsPlanned);
        assert_eq!(
            check_against_plan(3, s, Some(Milligrams(200.0))),
            PlannedDoseCheck::MoreThanPlanned { taken: Milligrams(300.0), planned: Milligrams(200.0) }
        );
        assert_eq!(
            check_against_plan(1, s, Some(Milligrams(200.0))),
            PlannedDoseCheck::LessThanPlanned { taken: Milligrams(100.0), planned: Milligrams(200.0) }
        );
        // Strengths stored with rounding still match: 3 x 33.333333 mg against 100 mg.
        assert_eq!(
            check_against_plan(3, Some(Milligrams(33.333_333_3)), Some(Milligrams(100.0))),
            PlannedDoseCheck::AsPlanned
        );
        // Nothing planned, or no supply yet: nothing to compare, never a guess.
        assert_eq!(check_against_plan(2, s, None), PlannedDoseCheck::NoPlan);
        assert_eq!(check_against_plan(2, None, Some(Milligrams(200.0))), PlannedDoseCheck::NoPlan);
        assert_eq!(check_against_plan(2, Some(Milligrams(0.0)), Some(Milligrams(200.0))), PlannedDoseCheck::NoPlan);
    }

    #[test]
    fn the_planned_dose_in_units_only_when_it_divides_exactly() {
        assert_eq!(planned_units(Milligrams(200.0), Milligrams(100.0)), Some(2));
        assert_eq!(planned_units(Milligrams(150.0), Milligrams(100.0)), None);
        assert_eq!(planned_units(Milligrams(50.0), Milligrams(100.0)), None);
        assert_eq!(planned_units(Milligrams(200.0), Milligrams(0.0)), None);
    }

    #[test]
    fn more_than_planned_alerts_with_the_clinics_severity_and_source() {
        let rules = BetweenSessionAlerts::builtin();
        let more = PlannedDoseCheck::MoreThanPlanned { taken: Milligrams(300.0), planned: Milligrams(200.0) };
        let a = dose_log_alert(rules, more).expect("more than planned always alerts");
        assert_eq!((a.rule.as_str(), a.severity), ("home_dose_more_than_planned", AlertSeverity::Urgent));
        assert!(a.message.contains("300 mg") && a.message.contains("200 mg"), "{}", a.message);
        assert!(a.source.contains("§4.3"), "{}", a.source);
        assert_eq!(dose_log_alert(rules, PlannedDoseCheck::AsPlanned), None);
        assert_eq!(dose_log_alert(rules, PlannedDoseCheck::NoPlan), None);
        let less = PlannedDoseCheck::LessThanPlanned { taken: Milligrams(100.0), planned: Milligrams(200.0) };
        assert_eq!(dose_log_alert(rules, less).map(|a| a.severity), Some(AlertSeverity::Warning));
        let mut quiet = rules.clone();
        quiet.home_dose_less_than_planned = None;
        assert_eq!(dose_log_alert(&quiet, less), None, "a clinic may leave less than planned unalerted");
    }

    fn set_rules() -> PreDoseRules {
        let mut r = PreDoseRules::builtin().clone();
        r.alcohol.free_hours = Some(24);
        r.sedatives.free_hours = Some(12);
        r
    }

    fn good() -> PreDoseAnswers {
        PreDoseAnswers {
            systolic_mmhg: Mmhg(128.0),
            diastolic_mmhg: Mmhg(82.0),
            alcohol_within_interval: false,
            sedatives_within_interval: false,
            ate_within_interval: false,
            drank_within_interval: false,
            sitter_name: "Sam Rivera".into(),
            sitter_confirmed: true,
            agrees_not_to_drive: true,
        }
    }

    fn codes(o: &ScreenOutcome) -> Vec<&'static str> {
        match o {
            ScreenOutcome::Cleared => vec![],
            ScreenOutcome::Refused { refusals } => refusals.iter().map(|r| r.code).collect(),
        }
    }

    #[test]
    fn builtin_rules_match_the_reference_and_leave_intervals_unset() {
        let r = PreDoseRules::builtin();
        assert_eq!((r.blood_pressure.systolic_above_mmhg, r.blood_pressure.diastolic_above_mmhg), (140.0, 90.0));
        assert_eq!(r.blood_pressure.source.section, "§4.1");
        assert_eq!((r.fasting.no_food_minutes, r.fasting.no_liquids_minutes), (120, 30));
        assert_eq!(r.missing_settings(), ["alcohol.free_hours", "sedatives.free_hours"]);
    }

    #[test]
    fn screen_refuses_to_run_until_the_clinic_sets_the_intervals() {
        let err = screen(PreDoseRules::builtin(), &good()).unwrap_err();
        assert!(matches!(err, DomainError::Conflict(_)));
        assert!(err.to_string().contains("alcohol.free_hours, sedatives.free_hours"), "{err}");
        assert!(PreDoseRules::builtin().questions().is_err());
        let mut r = set_rules();
        r.sedatives.free_hours = None;
        assert!(screen(&r, &good()).unwrap_err().to_string().contains("sedatives.free_hours"));
    }

    #[test]
    fn all_clear() {
        assert_eq!(screen(&set_rules(), &good()).unwrap(), ScreenOutcome::Cleared);
        let q = set_rules().questions().unwrap();
        assert!(q.iter().any(|(c, t)| *c == "alcohol" && t.contains("24 hours")));
        assert!(q.iter().any(|(c, t)| *c == "food" && t.contains("120 minutes")));
    }

    #[test]
    fn blood_pressure_boundary_is_strictly_above() {
        let r = set_rules();
        let at =
            |s, d| screen(&r, &PreDoseAnswers { systolic_mmhg: Mmhg(s), diastolic_mmhg: Mmhg(d), ..good() }).unwrap();
        assert!(at(140.0, 90.0).is_cleared());
        assert_eq!(codes(&at(141.0, 80.0)), ["blood_pressure_high"]);
        assert_eq!(codes(&at(130.0, 91.0)), ["blood_pressure_high"]);
        let ScreenOutcome::Refused { refusals } = at(150.0, 95.0) else { panic!() };
        assert!(refusals[0].reason.contains("150/95"), "{}", refusals[0].reason);
        assert_eq!(refusals[0].source.section, "§4.1");
    }

    #[test]
    fn implausible_bp_is_a_typing_error_not_a_refusal() {
        let err = screen(&set_rules(), &PreDoseAnswers { systolic_mmhg: Mmhg(1400.0), ..good() }).unwrap_err();
        assert!(matches!(err, DomainError::Invalid(_)), "{err}");
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let r = set_rules();
        let a = PreDoseAnswers {
            alcohol_within_interval: true,
            sedatives_within_interval: true,
            ate_within_interval: true,
            drank_within_interval: true,
            agrees_not_to_drive: false,
            ..good()
        };
        assert_eq!(
            codes(&screen(&r, &a).unwrap()),
            ["alcohol", "sedatives", "not_fasted_food", "not_fasted_liquids", "driving"]
        );
        assert_eq!(codes(&screen(&r, &PreDoseAnswers { sitter_name: "  ".into(), ..good() }).unwrap()), ["no_sitter"]);
        let o = screen(&r, &PreDoseAnswers { sitter_confirmed: false, ..good() }).unwrap();
        assert_eq!(codes(&o), ["sitter_not_confirmed"]);
        let ScreenOutcome::Refused { refusals } = o else { panic!() };
        assert!(refusals[0].reason.starts_with("Sam Rivera"));
    }

    #[test]
    fn rules_files_are_checked() {
        let set = EMBEDDED.replace("[alcohol]\n", "[alcohol]\nfree_hours = 24\n");
        let r = PreDoseRules::from_toml(&set).unwrap();
        assert_eq!(r.alcohol.free_hours, Some(24));
        assert_eq!(r.missing_settings(), ["sedatives.free_hours"]);
        let bad = EMBEDDED.replace("systolic_above_mmhg = 140", "systolic_above_mmhg = 14");
        assert!(PreDoseRules::from_toml(&bad).unwrap_err().to_string().contains("systolic_above_mmhg"));
        let zero = EMBEDDED.replace("[sedatives]\n", "[sedatives]\nfree_hours = 0\n");
        assert!(PreDoseRules::from_toml(&zero).unwrap_err().to_string().contains("sedatives.free_hours"));
        assert!(PreDoseRules::from_toml("[blood_pressure]\nsurprise = 1").is_err());
    }

    fn disp(day: i64, units: u32) -> Dispense {
        Dispense { at: T0 + Duration::days(day), units, unit_strength: Milligrams(50.0) }
    }
    fn dose(day: i64, units: u32, cleared: bool) -> DoseLog {
        DoseLog { at: T0 + Duration::days(day), units, screen_cleared: cleared }
    }

    #[test]
    fn clean_log_reconciles() {
        let rec = reconcile(&[disp(0, 8)], &[dose(1, 2, true), dose(4, 2, true)], Some(4)).unwrap();
        assert!(rec.is_reconciled());
        assert_eq!((rec.dispensed_units, rec.logged_units, rec.expected_on_hand_units), (8, 4, 4));
        assert_eq!((rec.dispensed_mg, rec.logged_mg), (Milligrams(400.0), Milligrams(200.0)));
        assert!(supply_hold(&rec, 0, 0, 0).is_empty());
        assert!(supply_hold(&rec, 0, 0, 1)[0].contains("urgent alert"));
    }

    #[test]
    fn discrepancies_are_reported() {
        // 4 units supplied; 3 + 2 logged before the next supply; a dose without a cleared screen.
        let rec =
            reconcile(&[disp(0, 4), disp(10, 4)], &[dose(1, 3, true), dose(5, 2, false), dose(11, 1, true)], Some(3))
                .unwrap();
        assert_eq!(
            rec.issues,
            vec![
                ReconciliationIssue::WithoutClearedScreen { at: T0 + Duration::days(5) },
                ReconciliationIssue::ExceedsSupply { at: T0 + Duration::days(5), balance_units: -1 },
                ReconciliationIssue::CountMismatch { expected_units: 2, counted_units: 3 },
            ]
        );
        let hold = supply_hold(&rec, 2, 1, 0);
        assert_eq!(hold.len(), 3, "{hold:?}");
        assert!(hold[1].contains("2 missed check-in"));
        assert!(supply_hold(&reconcile(&[disp(0, 2)], &[], None).unwrap(), 0, 0, 0)[0].contains("no count"));
    }

    #[test]
    fn a_dispense_at_the_same_instant_counts_first() {
        let rec = reconcile(&[disp(0, 2)], &[dose(0, 2, true)], Some(0)).unwrap();
        assert!(rec.is_reconciled());
    }

    #[test]
    fn invalid_records_are_rejected() {
        let mixed = [disp(0, 2), Dispense { unit_strength: Milligrams(100.0), ..disp(1, 2) }];
        let err = reconcile(&mixed, &[dose(2, 0, true)], None).unwrap_err().to_string();
        assert!(err.contains("same strength") && err.contains("logs[0].units"), "{err}");
    }
}
