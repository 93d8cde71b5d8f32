//! Session-safety alert rules: which readings in the chair need a clinician's attention.
//!
//! Why rules are data: every threshold here is a clinical decision that the clinic's
//! medical director must sign off, and different clinics may choose differently. So the
//! numbers live in `data/rules/session-safety.toml`, each rule with the section and source
//! tag of `clinical-reference.md` it came from (or an explicit "clinic setting" marker when
//! the reference gives no number). The file is embedded at compile time
//! ([`SafetyRules::builtin`]) and a clinic can load its own copy with
//! [`SafetyRules::from_toml`], which rejects unknown, missing or out-of-range keys and names
//! the key, so a typo cannot silently switch a rule off.
//!
//! What the engine does:
//! * [`SafetyRules::evaluate_vitals`]: pre-dose BP above the label guide, BP rise from the
//!   session baseline, severe hypertension, SpO2 below the floor.
//! * [`SafetyRules::evaluate_moaas`]: MOAA/S 0 = loss of consciousness.
//! * [`SafetyRules::evaluate_symptoms`]: ticked symptoms flagged as emergencies.
//! * [`SafetyRules::minimum_monitoring`] and [`SafetyRules::due_checks`]: how long to observe
//!   and which timed BP re-checks are outstanding.
//!
//! The engine is pure: it receives minutes since the dose started, never reads a clock, and
//! returns alert firings for the caller to store and show.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::course::Route;
use crate::error::{DomainError, FieldError, Validator};
use crate::units::{Minutes, Mmhg, Percent};
use crate::vitals::VitalSigns;

pub const BUILTIN_TOML: &str = include_str!("../../../data/rules/session-safety.toml");

/// How quickly a firing needs a clinician.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertSeverity {
    /// Tell the treating clinician; assess and document.
    Warning,
    /// Needs a clinician now.
    Urgent,
}

impl AlertSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Urgent => "urgent",
        }
    }
}

/// Where in the session a reading was taken; decides which BP rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum DosePhase {
    /// Before the dose starts: the label's pre-dose BP guide applies.
    PreDose,
    /// After the dose started (for IV, the infusion start): rise-from-baseline applies.
    PostDose { minutes_since_dose: i64 },
}

/// One rule that fired on one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertFiring {
    /// The rule's `code` from the rules file.
    pub rule: String,
    pub severity: AlertSeverity,
    /// Human-readable: the reading and the threshold it crossed.
    pub message: String,
    /// Section of clinical-reference.md and source tag (or the clinic-setting marker).
    pub source: String,
}

/// A timed check that has not been done yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DueCheck {
    pub code: String,
    pub label: String,
    /// Minutes after the dose started.
    pub due_at_minutes: i64,
    /// True once the check's window has passed without a reading.
    pub overdue: bool,
    pub source: String,
}

/// A symptom the session screen can tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Symptom {
    pub code: String,
    pub label: String,
    /// Ticking it raises an urgent "refer for emergency care" alert.
    pub emergency: bool,
    pub source: String,
}

/// §4.1 (S1): pre-dose BP above the label's general guide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreDoseBpRule {
    pub code: String,
    pub description: String,
    pub source: String,
    pub severity: AlertSeverity,
    /// Fires when systolic is strictly above this.
    pub systolic_above_mmhg: Mmhg,
    /// Fires when diastolic is strictly above this.
    pub diastolic_above_mmhg: Mmhg,
}

/// §4.1 (S6): rise from the session's pre-dose baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BpRiseRule {
    pub code: String,
    pub description: String,
    pub source: String,
    pub severity: AlertSeverity,
    /// Fires when the systolic rise is at least this.
    pub systolic_rise_mmhg: Mmhg,
    /// Fires when the diastolic rise is at least this.
    pub diastolic_rise_mmhg: Mmhg,
}

/// §4.2 (S70): severe hypertension, any phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SevereHypertensionRule {
    pub code: String,
    pub description: String,
    pub source: String,
    pub severity: AlertSeverity,
    pub systolic_at_or_above_mmhg: Mmhg,
    pub diastolic_at_or_above_mmhg: Mmhg,
}

/// SpO2 below a floor. The rule's basis is §4.1 (S2); the floor value has its own source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Spo2FloorRule {
    pub code: String,
    pub description: String,
    pub source: String,
    pub severity: AlertSeverity,
    /// Fires when SpO2 is strictly below this.
    pub below_pct: Percent,
    pub below_pct_source: String,
}

/// A rule whose trigger is fixed by definition (MOAA/S 0; an emergency symptom ticked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FixedRule {
    pub code: String,
    pub description: String,
    pub source: String,
    pub severity: AlertSeverity,
}

/// Minimum observation time for one route, with its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitoringTime {
    pub minutes: Minutes,
    pub source: String,
}

/// One entry per route; all five are required so no route can be left without a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MinimumMonitoring {
    pub iv_racemic: MonitoringTime,
    pub im_racemic: MonitoringTime,
    pub intranasal_esketamine: MonitoringTime,
    pub oral_racemic: MonitoringTime,
    pub sublingual_racemic: MonitoringTime,
}

impl MinimumMonitoring {
    pub fn for_route(&self, route: Route) -> &MonitoringTime {
        match route {
            Route::IvRacemic => &self.iv_racemic,
            Route::ImRacemic => &self.im_racemic,
            Route::IntranasalEsketamine => &self.intranasal_esketamine,
            Route::OralRacemic => &self.oral_racemic,
            Route::SublingualRacemic => &self.sublingual_racemic,
        }
    }
}

/// A BP reading due at a fixed time after the dose, for some routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BpRecheck {
    pub code: String,
    pub label: String,
    pub routes: Vec<Route>,
    pub due_at_minutes: i64,
    pub source: String,
    /// A reading from `due_at_minutes - window_minutes` on satisfies the check; after
    /// `due_at_minutes + window_minutes` without one it is overdue.
    pub window_minutes: i64,
    pub window_source: String,
}

/// The whole session-safety rule set, as loaded from a rules file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SafetyRules {
    pub pre_dose_bp: PreDoseBpRule,
    pub bp_rise_from_baseline: BpRiseRule,
    pub severe_hypertension: SevereHypertensionRule,
    pub spo2_floor: Spo2FloorRule,
    pub moaas_loss_of_consciousness: FixedRule,
    pub symptom_emergency: FixedRule,
    pub symptoms: Vec<Symptom>,
    pub minimum_monitoring: MinimumMonitoring,
    pub bp_rechecks: Vec<BpRecheck>,
}

impl SafetyRules {
    /// The rules shipped with Keta (`data/rules/session-safety.toml`), parsed once.
    pub fn builtin() -> &'static SafetyRules {
        static RULES: OnceLock<SafetyRules> = OnceLock::new();
        RULES.get_or_init(|| {
            SafetyRules::from_toml(BUILTIN_TOML)
                .unwrap_or_else(|e| panic!("embedded data/rules/session-safety.toml is invalid: {e}"))
        })
    }

    /// Parses and checks a clinic's rules file. Errors name the key (e.g.
    /// `spo2_floor.below_pct`) and say what is wrong with it.
    pub fn from_toml(s: &str) -> Result<SafetyRules, DomainError> {
        let rules: SafetyRules = parse_rules_toml(s, "session-safety rules")?;
        rules.validate()?;
        Ok(rules)
    }

    fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        let p = &self.pre_dose_bp;
        check_meta(&mut v, "pre_dose_bp", &p.code, &p.description, &p.source);
        check_mmhg(&mut v, "pre_dose_bp.systolic_above_mmhg", p.systolic_above_mmhg);
        check_mmhg(&mut v, "pre_dose_bp.diastolic_above_mmhg", p.diastolic_above_mmhg);

        let r = &self.bp_rise_from_baseline;
        check_meta(&mut v, "bp_rise_from_baseline", &r.code, &r.description, &r.source);
        check_mmhg(&mut v, "bp_rise_from_baseline.systolic_rise_mmhg", r.systolic_rise_mmhg);
        check_mmhg(&mut v, "bp_rise_from_baseline.diastolic_rise_mmhg", r.diastolic_rise_mmhg);

        let h = &self.severe_hypertension;
        check_meta(&mut v, "severe_hypertension", &h.code, &h.description, &h.source);
        check_mmhg(&mut v, "severe_hypertension.systolic_at_or_above_mmhg", h.systolic_at_or_above_mmhg);
        check_mmhg(&mut v, "severe_hypertension.diastolic_at_or_above_mmhg", h.diastolic_at_or_above_mmhg);

        let o = &self.spo2_floor;
        check_meta(&mut v, "spo2_floor", &o.code, &o.description, &o.source);
        v.check(
            o.below_pct.0.is_finite() && o.below_pct.0 > 0.0 && o.below_pct.0 <= 100.0,
            "spo2_floor.below_pct",
            format!("must be a percentage above 0 and at most 100, got {}", o.below_pct.0),
        );
        v.check(
            !o.below_pct_source.trim().is_empty(),
            "spo2_floor.below_pct_source",
            "say where the floor value comes from",
        );

        for (key, rule, why) in [
            (
                "moaas_loss_of_consciousness",
                &self.moaas_loss_of_consciousness,
                "loss of consciousness needs a clinician now",
            ),
            (
                "symptom_emergency",
                &self.symptom_emergency,
                "the reference sends these symptoms to emergency care (§4.1)",
            ),
        ] {
            check_meta(&mut v, key, &rule.code, &rule.description, &rule.source);
            v.check(
                rule.severity == AlertSeverity::Urgent,
                &format!("{key}.severity"),
                format!("must be \"urgent\": {why}"),
            );
        }

        let mut seen = BTreeSet::new();
        for (i, s) in self.symptoms.iter().enumerate() {
            let at = format!("symptoms[{i}]");
            v.check(is_code(&s.code), &format!("{at}.code"), "use a snake_case code such as \"chest_pain\"");
            v.check(
                seen.insert(s.code.as_str()),
                &format!("{at}.code"),
                format!("\"{}\" appears more than once", s.code),
            );
            v.check(!s.label.trim().is_empty(), &format!("{at}.label"), "give the label staff will see");
            v.check(!s.source.trim().is_empty(), &format!("{at}.source"), "say where this symptom's flag comes from");
        }

        for route in Route::ALL {
            let m = self.minimum_monitoring.for_route(route);
            let at = format!("minimum_monitoring.{}", route.as_str());
            v.check(
                (1..=24 * 60).contains(&m.minutes.0),
                &format!("{at}.minutes"),
                format!("must be 1-1440 minutes, got {}", m.minutes.0),
            );
            v.check(!m.source.trim().is_empty(), &format!("{at}.source"), "say where this value comes from");
        }

        let mut seen = BTreeSet::new();
        for (i, c) in self.bp_rechecks.iter().enumerate() {
            let at = format!("bp_rechecks[{i}]");
            v.check(is_code(&c.code), &format!("{at}.code"), "use a snake_case code such as \"bp_recheck_40min\"");
            v.check(!c.label.trim().is_empty(), &format!("{at}.label"), "give the label staff will see");
            v.check(!c.routes.is_empty(), &format!("{at}.routes"), "list at least one route");
            for r in &c.routes {
                v.check(
                    seen.insert((c.code.as_str(), *r)),
                    &format!("{at}.routes"),
                    format!("route {} already has a check coded \"{}\"", r.as_str(), c.code),
                );
            }
            v.check(
                (1..=24 * 60).contains(&c.due_at_minutes),
                &format!("{at}.due_at_minutes"),
                format!("must be 1-1440 minutes after the dose, got {}", c.due_at_minutes),
            );
            v.check(
                (0..c.due_at_minutes.max(1)).contains(&c.window_minutes),
                &format!("{at}.window_minutes"),
                format!("must be 0 or more and less than due_at_minutes, got {}", c.window_minutes),
            );
            v.check(!c.source.trim().is_empty(), &format!("{at}.source"), "say where this check comes from");
            v.check(
                !c.window_source.trim().is_empty(),
                &format!("{at}.window_source"),
                "say where the window comes from",
            );
        }
        v.finish()
    }

    /// The symptom vocabulary the session screen offers.
    pub fn symptoms(&self) -> &[Symptom] {
        &self.symptoms
    }

    /// Applies the BP and SpO2 rules to one set of readings.
    ///
    /// * Pre-dose BP guide: `PreDose` only.
    /// * Rise from baseline: `PostDose` only, and only when `baseline` (the session's
    ///   pre-dose reading) is given; systolic and diastolic rises are each computed when
    ///   both readings have that value.
    /// * Severe hypertension and SpO2 floor: any phase.
    ///
    /// Readings are assumed validated ([`VitalSigns::validate`]); a missing value simply
    /// means the rules that need it do not fire.
    pub fn evaluate_vitals(
        &self,
        phase: DosePhase,
        vitals: &VitalSigns,
        baseline: Option<&VitalSigns>,
    ) -> Vec<AlertFiring> {
        let mut out = Vec::new();
        let when = match phase {
            DosePhase::PreDose => "Pre-dose".to_string(),
            DosePhase::PostDose { minutes_since_dose } => format!("At {minutes_since_dose} min post-dose,"),
        };

        if let (DosePhase::PreDose, Some((s, d))) = (phase, vitals.blood_pressure()) {
            let r = &self.pre_dose_bp;
            if s.0 > r.systolic_above_mmhg.0 || d.0 > r.diastolic_above_mmhg.0 {
                out.push(AlertFiring {
                    rule: r.code.clone(),
                    severity: r.severity,
                    message: format!(
                        "Pre-dose BP {} mmHg is above {} mmHg (label guide)",
                        bp(s, d),
                        bp(r.systolic_above_mmhg, r.diastolic_above_mmhg)
                    ),
                    source: r.source.clone(),
                });
            }
        }

        if let (DosePhase::PostDose { .. }, Some(base)) = (phase, baseline) {
            let r = &self.bp_rise_from_baseline;
            let rise = |now: Option<Mmhg>, then: Option<Mmhg>| Some(now?.0 - then?.0);
            let sys_rise = rise(vitals.systolic_mmhg, base.systolic_mmhg);
            let dia_rise = rise(vitals.diastolic_mmhg, base.diastolic_mmhg);
            let sys_hit = sys_rise.is_some_and(|x| x >= r.systolic_rise_mmhg.0);
            let dia_hit = dia_rise.is_some_and(|x| x >= r.diastolic_rise_mmhg.0);
            if sys_hit || dia_hit {
                let part = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:+}"));
                let shown = |v: &VitalSigns| match v.blood_pressure() {
                    Some((s, d)) => format!("{} mmHg", bp(s, d)),
                    None => "a partial reading".to_string(),
                };
                out.push(AlertFiring {
                    rule: r.code.clone(),
                    severity: r.severity,
                    message: format!(
                        "{when} BP {} is up {}/{} mmHg from the pre-dose baseline {} (alert at a rise of {} systolic and/or {} diastolic)",
                        shown(vitals),
                        part(sys_rise),
                        part(dia_rise),
                        shown(base),
                        num(r.systolic_rise_mmhg.0),
                        num(r.diastolic_rise_mmhg.0),
                    ),
                    source: r.source.clone(),
                });
            }
        }

        {
            let r = &self.severe_hypertension;
            let sys_hit = vitals.systolic_mmhg.is_some_and(|s| s.0 >= r.systolic_at_or_above_mmhg.0);
            let dia_hit = vitals.diastolic_mmhg.is_some_and(|d| d.0 >= r.diastolic_at_or_above_mmhg.0);
            if sys_hit || dia_hit {
                let reading = match vitals.blood_pressure() {
                    Some((s, d)) => bp(s, d),
                    None => vitals
                        .systolic_mmhg
                        .map(|s| format!("{}/?", num(s.0)))
                        .or(vitals.diastolic_mmhg.map(|d| format!("?/{}", num(d.0))))
                        .unwrap_or_default(),
                };
                out.push(AlertFiring {
                    rule: r.code.clone(),
                    severity: r.severity,
                    message: format!(
                        "{when} BP {reading} mmHg is in the severe range (systolic >= {} or diastolic >= {} mmHg); check for symptoms of end-organ damage",
                        num(r.systolic_at_or_above_mmhg.0),
                        num(r.diastolic_at_or_above_mmhg.0),
                    ),
                    source: r.source.clone(),
                });
            }
        }

        if let Some(spo2) = vitals.spo2_pct {
            let r = &self.spo2_floor;
            if spo2.0 < r.below_pct.0 {
                out.push(AlertFiring {
                    rule: r.code.clone(),
                    severity: r.severity,
                    message: format!("SpO2 {}% is below the floor of {}%", num(spo2.0), num(r.below_pct.0)),
                    source: format!("{}; floor value: {}", r.source, r.below_pct_source),
                });
            }
        }
        out
    }

    /// MOAA/S 0 (no response to a painful stimulus) is loss of consciousness: urgent.
    /// Scores 1-5 raise nothing here (the label's sedation cut-off is UNVERIFIED, §1.10).
    /// Out-of-range scores raise nothing: validate input with
    /// `session::ObservationBody::validate` before evaluating.
    pub fn evaluate_moaas(&self, score: i32) -> Vec<AlertFiring> {
        let r = &self.moaas_loss_of_consciousness;
        if score == 0 {
            vec![AlertFiring {
                rule: r.code.clone(),
                severity: r.severity,
                message: "MOAA/S 0: no response to painful stimulus (loss of consciousness)".to_string(),
                source: r.source.clone(),
            }]
        } else {
            vec![]
        }
    }

    /// One urgent firing per ticked emergency symptom (duplicates ignored). Non-emergency
    /// symptoms raise nothing (they are recorded as side effects). An unknown code raises
    /// a warning naming it rather than being silently dropped; use
    /// [`SafetyRules::validate_symptom_codes`] at input time to reject it instead.
    pub fn evaluate_symptoms(&self, symptom_codes: &[String]) -> Vec<AlertFiring> {
        let r = &self.symptom_emergency;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for code in symptom_codes {
            if !seen.insert(code.as_str()) {
                continue;
            }
            match self.symptom(code) {
                Some(s) if s.emergency => out.push(AlertFiring {
                    rule: r.code.clone(),
                    severity: r.severity,
                    message: format!(
                        "{} reported: possible hypertensive-crisis or encephalopathy symptom; refer for emergency care",
                        s.label
                    ),
                    source: format!("{}; symptom flag: {}", r.source, s.source),
                }),
                Some(_) => {}
                None => out.push(AlertFiring {
                    rule: "unknown_symptom_code".to_string(),
                    severity: AlertSeverity::Warning,
                    message: format!("Symptom code \"{code}\" is not in the vocabulary; review the symptom manually"),
                    source: "Keta input check (not a clinical rule)".to_string(),
                }),
            }
        }
        out
    }

    /// Rejects symptom codes that are not in the vocabulary, naming each one.
    pub fn validate_symptom_codes(&self, symptom_codes: &[String]) -> Result<(), DomainError> {
        let mut v = Validator::new();
        for (i, code) in symptom_codes.iter().enumerate() {
            v.check(
                self.symptom(code).is_some(),
                &format!("symptoms[{i}]"),
                format!("unknown symptom code \"{code}\"; pick one from the symptom list"),
            );
        }
        v.finish()
    }

    fn symptom(&self, code: &str) -> Option<&Symptom> {
        self.symptoms.iter().find(|s| s.code == code)
    }

    /// Minimum observation time after the dose starts, before discharge.
    pub fn minimum_monitoring(&self, route: Route) -> Minutes {
        self.minimum_monitoring.for_route(route).minutes
    }

    /// The minimum observation time with its source.
    pub fn minimum_monitoring_rule(&self, route: Route) -> &MonitoringTime {
        self.minimum_monitoring.for_route(route)
    }

    /// Timed BP checks for `route` that no reading has satisfied yet, earliest first,
    /// including ones not yet due (so the screen can show what is coming).
    /// `bp_taken_at_minutes` are the minutes-since-dose of the BP readings taken so far
    /// (pre-dose readings are negative or zero and never satisfy a post-dose check).
    pub fn due_checks(&self, route: Route, minutes_since_dose: i64, bp_taken_at_minutes: &[i64]) -> Vec<DueCheck> {
        let mut out: Vec<DueCheck> = self
            .bp_rechecks
            .iter()
            .filter(|c| c.routes.contains(&route))
            .filter(|c| !bp_taken_at_minutes.iter().any(|&t| t > 0 && t >= c.due_at_minutes - c.window_minutes))
            .map(|c| DueCheck {
                code: c.code.clone(),
                label: c.label.clone(),
                due_at_minutes: c.due_at_minutes,
                overdue: minutes_since_dose > c.due_at_minutes + c.window_minutes,
                source: format!("{}; window: {}", c.source, c.window_source),
            })
            .collect();
        out.sort_by_key(|c| c.due_at_minutes);
        out
    }
}

fn check_meta(v: &mut Validator, key: &str, code: &str, description: &str, source: &str) {
    v.check(is_code(code), &format!("{key}.code"), "use a snake_case code");
    v.check(!description.trim().is_empty(), &format!("{key}.description"), "describe the rule");
    v.check(!source.trim().is_empty(), &format!("{key}.source"), "give the clinical-reference section and source tag");
}

fn check_mmhg(v: &mut Validator, key: &str, x: Mmhg) {
    v.check(
        x.0.is_finite() && x.0 > 0.0 && x.0 <= 300.0,
        key,
        format!("must be a pressure above 0 and at most 300 mmHg, got {}", x.0),
    );
}

fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Formats a reading without a trailing `.0` (152, 152.5).
fn num(x: f64) -> String {
    format!("{x}")
}

fn bp(s: Mmhg, d: Mmhg) -> String {
    format!("{}/{}", num(s.0), num(d.0))
}

// ---------------------------------------------------------------------------------------
// Rules-file loading shared with `eligibility`.
// ---------------------------------------------------------------------------------------

/// Deserializes a rules file, turning a TOML or shape error into a field error whose
/// `field` is the dotted key path (`spo2_floor.below_pct`, `symptoms[3].emergency`) so the
/// person editing the file knows exactly which line to fix.
pub(crate) fn parse_rules_toml<T: DeserializeOwned>(input: &str, what: &str) -> Result<T, DomainError> {
    toml::from_str(input).map_err(|e| {
        let message = e.message().trim().to_string();
        let (field, line) = match e.span() {
            Some(span) => (key_path_at(input, span.clone(), &message), Some(line_of(input, span.start))),
            None => (String::new(), None),
        };
        let field = if field.is_empty() { "(file)".to_string() } else { field };
        let at = line.map_or(String::new(), |n| format!(" (line {n})"));
        DomainError::Invalid(vec![FieldError::new(field, format!("{message}{at}; fix this key in the {what} file"))])
    })
}

fn line_of(input: &str, pos: usize) -> usize {
    input[..pos.min(input.len())].matches('\n').count() + 1
}

/// Works out which key a TOML error span points at, from the text alone: the enclosing
/// `[table]` / `[[array]]` header (with the array index), any inline tables opened on the
/// way, and the key itself.
fn key_path_at(input: &str, span: Range<usize>, message: &str) -> String {
    let start = floor_char_boundary(input, span.start);
    let end = floor_char_boundary(input, span.end.max(start));

    // 1. Enclosing table header: the last header line that starts at or before `start`.
    let mut table = String::new();
    let mut array_counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut body_start = 0;
    let mut offset = 0;
    for line in input.split_inclusive('\n') {
        if offset > start {
            break;
        }
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            array_counts.entry(name.clone()).and_modify(|n| *n += 1).or_insert(0);
            table = with_array_index(&name, &array_counts);
            body_start = offset + line.len();
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = with_array_index(name.trim(), &array_counts);
            body_start = offset + line.len();
        }
        offset += line.len();
    }

    let named = |prefix: &str| {
        message.find(prefix).and_then(|i| {
            let rest = &message[i + prefix.len()..];
            rest.find('`').map(|j| rest[..j].to_string())
        })
    };
    let join = |parts: &[&str]| parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(".");

    // 2. Missing field: the span covers the table, the key is in the message.
    if let Some(name) = named("missing field `") {
        return join(&[&table, &name]);
    }

    // 3. Scan the table body up to the span for `key =` and inline `{`.
    let body = if body_start <= start { &input[body_start..start] } else { "" };
    let (inline, last_key) = scan_keys(body);
    let inline = inline.join(".");

    // 4. The span itself is a key (e.g. unknown field) when `=` follows it.
    let span_is_key = input[end..].trim_start().starts_with('=');
    let key = if span_is_key {
        input[start..end].trim().to_string()
    } else if let Some(name) = named("unknown field `") {
        name
    } else {
        last_key.unwrap_or_default()
    };
    join(&[&table, &inline, &key])
}

/// Rewrites a header path so that every prefix naming an array of tables carries the index
/// of its latest element: `items.routes.iv_racemic` → `items[3].routes.iv_racemic`.
fn with_array_index(name: &str, array_counts: &std::collections::BTreeMap<String, usize>) -> String {
    let parts: Vec<&str> = name.split('.').map(str::trim).collect();
    let mut out = Vec::with_capacity(parts.len());
    for i in 0..parts.len() {
        let prefix = parts[..=i].join(".");
        match array_counts.get(&prefix) {
            Some(n) => out.push(format!("{}[{n}]", parts[i])),
            None => out.push(parts[i].to_string()),
        }
    }
    out.join(".")
}

/// Scans TOML text (outside strings and comments) for `key =` assignments and inline-table
/// braces. Returns the keys of inline tables still open and the last assigned key.
fn scan_keys(text: &str) -> (Vec<String>, Option<String>) {
    let mut open: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    let mut token = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                // Skip a string (basic strings honour backslash escapes).
                while let Some(d) = chars.next() {
                    if c == '"' && d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                token.clear();
            }
            '#' => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                token.clear();
            }
            '=' => {
                if !token.trim().is_empty() {
                    last = Some(token.trim().to_string());
                }
                token.clear();
            }
            '{' => {
                if let Some(k) = last.clone() {
                    open.push(k);
                }
                token.clear();
            }
            '}' => {
                open.pop();
                token.clear();
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' => token.push(c),
            ' ' | '\t' => {}
            _ => token.clear(),
        }
    }
    (open, last)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{BeatsPerMinute, BreathsPerMinute};

    fn rules() -> &'static SafetyRules {
        SafetyRules::builtin()
    }

    fn bp_only(s: f64, d: f64) -> VitalSigns {
        VitalSigns { systolic_mmhg: Some(Mmhg(s)), diastolic_mmhg: Some(Mmhg(d)), ..Default::default() }
    }

    fn codes(f: &[AlertFiring]) -> Vec<&str> {
        f.iter().map(|a| a.rule.as_str()).collect()
    }

    const POST40: DosePhase = DosePhase::PostDose { minutes_since_dose: 40 };

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
    fn builtin_rules_load_with_sources() {
        let r = rules();
        assert_eq!(r.pre_dose_bp.systolic_above_mmhg, Mmhg(140.0));
        assert_eq!(r.pre_dose_bp.diastolic_above_mmhg, Mmhg(90.0));
        assert!(r.pre_dose_bp.source.contains("§4.1 [S1]"));
        assert!(r.bp_rise_from_baseline.source.contains("§4.1 [S6]"));
        assert!(r.severe_hypertension.source.contains("§4.2 [S70]"));
        assert!(r.spo2_floor.below_pct_source.starts_with("clinic setting"));
        assert!(r.moaas_loss_of_consciousness.source.contains("§1.10 [S1]"));
        // The serialised form round-trips (the API shows the active rules).
        let json = serde_json::to_string(r).unwrap();
        let back: SafetyRules = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, r);
    }

    // --- pre-dose BP guide (§4.1 [S1]) ---

    #[test]
    fn pre_dose_140_90_exactly_does_not_fire() {
        assert!(rules().evaluate_vitals(DosePhase::PreDose, &bp_only(140.0, 90.0), None).is_empty());
    }

    #[test]
    fn pre_dose_141_90_fires_with_readable_message() {
        let f = rules().evaluate_vitals(DosePhase::PreDose, &bp_only(141.0, 90.0), None);
        assert_eq!(codes(&f), vec!["pre_dose_bp_above_label_guide"]);
        assert_eq!(f[0].severity, AlertSeverity::Warning);
        assert_eq!(f[0].message, "Pre-dose BP 141/90 mmHg is above 140/90 mmHg (label guide)");
        assert!(f[0].source.contains("§4.1 [S1]"));
    }

    #[test]
    fn pre_dose_diastolic_alone_fires() {
        let f = rules().evaluate_vitals(DosePhase::PreDose, &bp_only(130.0, 91.0), None);
        assert_eq!(codes(&f), vec!["pre_dose_bp_above_label_guide"]);
        let f = rules().evaluate_vitals(DosePhase::PreDose, &bp_only(152.0, 94.0), None);
        assert_eq!(f[0].message, "Pre-dose BP 152/94 mmHg is above 140/90 mmHg (label guide)");
    }

    #[test]
    fn pre_dose_guide_does_not_apply_after_dosing() {
        assert!(rules().evaluate_vitals(POST40, &bp_only(150.0, 95.0), None).is_empty());
    }

    // --- rise from baseline (§4.1 [S6]) ---

    #[test]
    fn systolic_rise_39_vs_40() {
        let base = bp_only(120.0, 80.0);
        assert!(rules().evaluate_vitals(POST40, &bp_only(159.0, 80.0), Some(&base)).is_empty());
        let f = rules().evaluate_vitals(POST40, &bp_only(160.0, 80.0), Some(&base));
        assert_eq!(codes(&f), vec!["bp_rise_from_baseline"]);
        assert!(f[0].message.contains("+40/+0"), "{}", f[0].message);
        assert!(f[0].message.contains("120/80"), "{}", f[0].message);
        assert!(f[0].message.starts_with("At 40 min post-dose,"), "{}", f[0].message);
        assert!(f[0].source.contains("§4.1 [S6]"));
    }

    #[test]
    fn diastolic_rise_24_vs_25() {
        let base = bp_only(120.0, 80.0);
        assert!(rules().evaluate_vitals(POST40, &bp_only(125.0, 104.0), Some(&base)).is_empty());
        let f = rules().evaluate_vitals(POST40, &bp_only(125.0, 105.0), Some(&base));
        assert_eq!(codes(&f), vec!["bp_rise_from_baseline"]);
    }

    #[test]
    fn baseline_absent_means_no_rise_rule_but_others_still_apply() {
        assert!(rules().evaluate_vitals(POST40, &bp_only(170.0, 100.0), None).is_empty());
        let f = rules().evaluate_vitals(POST40, &bp_only(185.0, 100.0), None);
        assert_eq!(codes(&f), vec!["severe_hypertension"]);
    }

    #[test]
    fn rise_rule_is_post_dose_only() {
        let base = bp_only(100.0, 60.0);
        let f = rules().evaluate_vitals(DosePhase::PreDose, &bp_only(140.0, 85.0), Some(&base));
        assert!(f.is_empty());
    }

    #[test]
    fn baseline_without_bp_means_no_rise() {
        let base = VitalSigns { heart_rate_bpm: Some(BeatsPerMinute(70.0)), ..Default::default() };
        assert!(rules().evaluate_vitals(POST40, &bp_only(170.0, 100.0), Some(&base)).is_empty());
    }

    // --- severe hypertension (§4.2 [S70]) ---

    #[test]
    fn severe_hypertension_boundaries() {
        let r = rules();
        assert!(r.evaluate_vitals(POST40, &bp_only(179.0, 119.0), None).is_empty());
        let f = r.evaluate_vitals(POST40, &bp_only(180.0, 100.0), None);
        assert_eq!(codes(&f), vec!["severe_hypertension"]);
        assert_eq!(f[0].severity, AlertSeverity::Urgent);
        assert!(f[0].source.contains("§4.2 [S70]"));
        let f = r.evaluate_vitals(POST40, &bp_only(160.0, 120.0), None);
        assert_eq!(codes(&f), vec!["severe_hypertension"]);
    }

    #[test]
    fn severe_pre_dose_also_fires_the_label_guide() {
        let f = rules().evaluate_vitals(DosePhase::PreDose, &bp_only(182.0, 110.0), None);
        assert_eq!(codes(&f), vec!["pre_dose_bp_above_label_guide", "severe_hypertension"]);
    }

    // --- SpO2 floor (clinic setting) ---

    #[test]
    fn spo2_at_floor_does_not_fire_below_does() {
        let r = rules();
        let floor = r.spo2_floor.below_pct.0;
        let at = VitalSigns { spo2_pct: Some(Percent(floor)), ..Default::default() };
        assert!(r.evaluate_vitals(POST40, &at, None).is_empty());
        let below = VitalSigns { spo2_pct: Some(Percent(floor - 1.0)), ..Default::default() };
        let f = r.evaluate_vitals(POST40, &below, None);
        assert_eq!(codes(&f), vec!["spo2_below_floor"]);
        assert_eq!(f[0].severity, AlertSeverity::Urgent);
        assert!(f[0].source.contains("clinic setting"), "{}", f[0].source);
        assert_eq!(f[0].message, format!("SpO2 {}% is below the floor of {}%", floor - 1.0, floor));
    }

    #[test]
    fn normal_readings_fire_nothing() {
        let v = VitalSigns {
            systolic_mmhg: Some(Mmhg(118.0)),
            diastolic_mmhg: Some(Mmhg(76.0)),
            heart_rate_bpm: Some(BeatsPerMinute(72.0)),
            spo2_pct: Some(Percent(98.0)),
            resp_rate_per_min: Some(BreathsPerMinute(14.0)),
        };
        assert!(rules().evaluate_vitals(DosePhase::PreDose, &v, None).is_empty());
        assert!(rules().evaluate_vitals(POST40, &v, Some(&v)).is_empty());
    }

    // --- MOAA/S (§1.10 [S1]) ---

    #[test]
    fn moaas_zero_is_urgent_loss_of_consciousness() {
        let f = rules().evaluate_moaas(0);
        assert_eq!(codes(&f), vec!["moaas_loss_of_consciousness"]);
        assert_eq!(f[0].severity, AlertSeverity::Urgent);
        assert!(f[0].message.contains("loss of consciousness"));
        assert!(f[0].source.contains("§1.10 [S1]"));
        for s in 1..=5 {
            assert!(rules().evaluate_moaas(s).is_empty(), "score {s}");
        }
    }

    // --- symptoms (§4.1 [S1]) ---

    #[test]
    fn emergency_symptoms_fire_urgent_once_each() {
        let ticked = vec!["chest_pain".to_string(), "nausea".to_string(), "chest_pain".to_string()];
        let f = rules().evaluate_symptoms(&ticked);
        assert_eq!(codes(&f), vec!["symptom_emergency_care"]);
        assert_eq!(f[0].severity, AlertSeverity::Urgent);
        assert!(f[0].message.starts_with("Chest pain reported"), "{}", f[0].message);
        assert!(f[0].message.contains("emergency care"));
        assert!(f[0].source.contains("§4.1 [S1]"));
        assert!(f[0].source.contains("clinic setting"));
    }

    #[test]
    fn sourced_emergency_categories_exist() {
        let r = rules();
        for code in ["hypertensive_crisis_symptoms", "hypertensive_encephalopathy_symptoms"] {
            let s = r.symptoms().iter().find(|s| s.code == code).expect(code);
            assert!(s.emergency);
            assert!(s.source.contains("§4.1 [S1]"));
        }
        let f = r.evaluate_symptoms(&["hypertensive_encephalopathy_symptoms".to_string()]);
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn non_emergency_symptoms_fire_nothing() {
        let ticked: Vec<String> = ["nausea", "dizziness", "dissociation", "headache"].map(String::from).to_vec();
        assert!(rules().evaluate_symptoms(&ticked).is_empty());
        assert!(rules().evaluate_symptoms(&[]).is_empty());
    }

    #[test]
    fn unknown_symptom_is_named_not_dropped() {
        let f = rules().evaluate_symptoms(&["tingly_toes".to_string()]);
        assert_eq!(codes(&f), vec!["unknown_symptom_code"]);
        assert!(f[0].message.contains("tingly_toes"));
        let (field, msg) =
            field_of(rules().validate_symptom_codes(&["nausea".into(), "tingly_toes".into()]).unwrap_err());
        assert_eq!(field, "symptoms[1]");
        assert!(msg.contains("tingly_toes"));
    }

    // --- minimum monitoring and due checks ---

    #[test]
    fn minimum_monitoring_per_route() {
        let r = rules();
        assert_eq!(r.minimum_monitoring(Route::IntranasalEsketamine), Minutes(120));
        assert!(r.minimum_monitoring_rule(Route::IntranasalEsketamine).source.contains("§4.1 [S1][S6]"));
        assert_eq!(r.minimum_monitoring(Route::ImRacemic), Minutes(30));
        assert!(r.minimum_monitoring_rule(Route::ImRacemic).source.contains("§2.2"));
        assert!(r.minimum_monitoring_rule(Route::ImRacemic).source.contains("secondary"));
        for route in [Route::IvRacemic, Route::OralRacemic, Route::SublingualRacemic] {
            assert_eq!(r.minimum_monitoring(route), Minutes(120), "{route:?}");
            assert!(r.minimum_monitoring_rule(route).source.starts_with("clinic setting"), "{route:?}");
        }
    }

    #[test]
    fn bp_recheck_due_at_40_minutes() {
        let r = rules();
        let route = Route::IntranasalEsketamine;
        // Shown as upcoming before it is due.
        let d = r.due_checks(route, 10, &[-5]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, "bp_recheck_40min");
        assert_eq!(d[0].due_at_minutes, 40);
        assert!(!d[0].overdue);
        assert!(d[0].source.contains("§4.1 [S1]"));
        // At 40 min with only the pre-dose reading: due, not yet overdue.
        let d = r.due_checks(route, 40, &[-5]);
        assert_eq!(d.len(), 1);
        assert!(!d[0].overdue);
        // Window edge: 45 still in window, 46 overdue.
        assert!(!r.due_checks(route, 45, &[-5])[0].overdue);
        assert!(r.due_checks(route, 46, &[-5])[0].overdue);
        // A reading at 35 (window start) satisfies it; 34 does not.
        assert!(r.due_checks(route, 50, &[-5, 35]).is_empty());
        assert!(!r.due_checks(route, 50, &[-5, 34]).is_empty());
        // A late reading also closes it.
        assert!(r.due_checks(route, 70, &[-5, 60]).is_empty());
    }

    #[test]
    fn due_checks_depend_on_route() {
        let r = rules();
        assert!(r.due_checks(Route::OralRacemic, 60, &[]).is_empty());
        let iv = r.due_checks(Route::IvRacemic, 60, &[]);
        assert_eq!(iv.len(), 1);
        assert!(iv[0].overdue);
        assert!(iv[0].source.starts_with("clinic setting"));
    }

    // --- loading a clinic's rules file ---

    #[test]
    fn bad_value_type_names_the_key() {
        let bad = BUILTIN_TOML.replace("below_pct = 92", "below_pct = \"low\"");
        let (field, msg) = field_of(SafetyRules::from_toml(&bad).unwrap_err());
        assert_eq!(field, "spo2_floor.below_pct");
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn bad_severity_names_the_key() {
        let bad = BUILTIN_TOML.replacen("severity = \"warning\"", "severity = \"critical\"", 1);
        let (field, msg) = field_of(SafetyRules::from_toml(&bad).unwrap_err());
        assert_eq!(field, "pre_dose_bp.severity");
        assert!(msg.contains("critical"), "{msg}");
    }

    #[test]
    fn bad_value_in_array_of_tables_names_index() {
        let bad = BUILTIN_TOML.replacen("emergency = false", "emergency = \"no\"", 1);
        let (field, _) = field_of(SafetyRules::from_toml(&bad).unwrap_err());
        assert_eq!(field, "symptoms[9].emergency");
    }

    #[test]
    fn bad_route_in_list_names_the_key() {
        let bad = BUILTIN_TOML
            .replace("routes = [\"iv_racemic\", \"im_racemic\"]", "routes = [\"iv_racemic\", \"intravenous\"]");
        let (field, msg) = field_of(SafetyRules::from_toml(&bad).unwrap_err());
        assert_eq!(field, "bp_rechecks[1].routes");
        assert!(msg.contains("intravenous"), "{msg}");
    }

    #[test]
    fn out_of_range_value_names_the_key() {
        let bad = BUILTIN_TOML.replace("below_pct = 92", "below_pct = 150");
        let (field, msg) = field_of(SafetyRules::from_toml(&bad).unwrap_err());
        assert_eq!(field, "spo2_floor.below_pct");
        assert!(msg.contains("150"));
        let bad = BUILTIN_TOML.replacen("minutes = 120", "minutes = 0", 1);
        let (field, _) = field_of(SafetyRules::from_toml(&bad).unwrap_err());
        assert_eq!(field, "minimum_monitoring.intranasal_esketamine.minutes");
    }

    #[test]
    fn unknown_and_missing_keys_are_named() {
        let bad = BUILTIN_TOML.replace("below_pct = 92", "below_pct = 92\nbelow_pc = 90");
        let (field, msg) = field_of(SafetyRules::from_toml(&bad).unwrap_err());
        assert_eq!(field, "spo2_floor.below_pc");
        assert!(msg.contains("unknown field"), "{msg}");
        let bad = BUILTIN_TOML.replace("systolic_rise_mmhg = 40\n", "");
        let (field, msg) = field_of(SafetyRules::from_toml(&bad).unwrap_err());
        assert_eq!(field, "bp_rise_from_baseline.systolic_rise_mmhg");
        assert!(msg.contains("missing"), "{msg}");
    }

    #[test]
    fn loss_of_consciousness_cannot_be_downgraded() {
        let bad = BUILTIN_TOML.replace(
            "source = \"clinical-reference §1.10 [S1][S32]\"\nseverity = \"urgent\"",
            "source = \"clinical-reference §1.10 [S1][S32]\"\nseverity = \"warning\"",
        );
        assert_ne!(bad, BUILTIN_TOML);
        let (field, _) = field_of(SafetyRules::from_toml(&bad).unwrap_err());
        assert_eq!(field, "moaas_loss_of_consciousness.severity");
    }

    #[test]
    fn clinic_override_changes_behaviour() {
        let custom = SafetyRules::from_toml(&BUILTIN_TOML.replace("below_pct = 92", "below_pct = 94")).unwrap();
        let v = VitalSigns { spo2_pct: Some(Percent(93.0)), ..Default::default() };
        assert_eq!(custom.evaluate_vitals(POST40, &v, None).len(), 1);
        assert!(rules().evaluate_vitals(POST40, &v, None).is_empty());
    }
}
