//! Discharge judged from the record: what the session must show before the patient leaves,
//! besides the minimum monitoring time and acknowledged alerts (see [`crate::session`]).
//!
//! The REMS monitoring objective is to watch the patient "until sedation, dissociation and
//! respiratory depression have resolved" (product-reference §(b)); Keta holds the readings
//! and scores that say so, so it judges them instead of trusting a tick:
//! * a full set of vitals no older than the clinic's window (a clinic setting, no default);
//! * the latest post-dose blood pressure under the session-safety BP rules, or a
//!   prescriber's documented decision naming that reading;
//! * the latest post-dose MOAA/S at the resolved score (`data/rules/discharge.toml`);
//! * the latest post-dose dissociation total on the clinic's chosen measure at or below the
//!   clinic's cut-off (a clinic setting, no default: the reference gives none);
//! * the latest post-dose SpO2 at or above the session-safety floor.
//!
//! Pure: the caller passes the records, the settings and `now`. Each blocker names what to
//! record and where ([`Blocker::anchor`]), so the screen and the API can link to it.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::alerts::{DosePhase, SafetyRules};
use crate::error::{DomainError, Validator};
use crate::ids::RecordId;
use crate::instruments::catalog;
use crate::records::{ObservationRecord, QuestionnaireResponse, VitalsRecord};
use crate::session::ObservationBody;
use crate::units::{Minutes, Percent};
use crate::vitals::VitalSigns;

const BUILTIN_TOML: &str = include_str!("../../../data/rules/discharge.toml");

/// A reading a full set of vitals must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VitalField {
    BloodPressure,
    HeartRate,
    Spo2,
    RespiratoryRate,
}

impl VitalField {
    pub fn label(self) -> &'static str {
        match self {
            Self::BloodPressure => "blood pressure",
            Self::HeartRate => "heart rate",
            Self::Spo2 => "SpO2",
            Self::RespiratoryRate => "respiratory rate",
        }
    }
    pub fn present(self, v: &VitalSigns) -> bool {
        match self {
            Self::BloodPressure => v.blood_pressure().is_some(),
            Self::HeartRate => v.heart_rate_bpm.is_some(),
            Self::Spo2 => v.spo2_pct.is_some(),
            Self::RespiratoryRate => v.resp_rate_per_min.is_some(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FullVitalsRule {
    pub fields: Vec<VitalField>,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SedationRule {
    /// The MOAA/S score that counts as resolved.
    pub resolved_moaas: i32,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DissociationRule {
    /// Instrument codes a clinic may choose as its dissociation measure.
    pub measures: Vec<String>,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceOnly {
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VitalsEntryRule {
    /// An identical manual reading this soon after the previous one asks for confirmation.
    pub duplicate_within_seconds: i64,
    pub source: String,
}

/// `data/rules/discharge.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DischargeRules {
    pub full_vitals: FullVitalsRule,
    pub sedation: SedationRule,
    pub dissociation: DissociationRule,
    pub blood_pressure: SourceOnly,
    pub vitals_entry: VitalsEntryRule,
}

impl DischargeRules {
    pub fn builtin() -> &'static DischargeRules {
        static R: OnceLock<DischargeRules> = OnceLock::new();
        R.get_or_init(|| {
            let r: DischargeRules = crate::alerts::parse_rules_toml(BUILTIN_TOML, "discharge rules")
                .unwrap_or_else(|e| panic!("embedded data/rules/discharge.toml is invalid: {e}"));
            assert!(!r.full_vitals.fields.is_empty(), "discharge.toml: full_vitals.fields is empty");
            assert!((0..=5).contains(&r.sedation.resolved_moaas), "discharge.toml: resolved_moaas is not 0-5");
            assert!(
                r.dissociation.measures.iter().all(|m| catalog().get(m).is_some()),
                "discharge.toml: an unknown dissociation measure"
            );
            assert!(r.vitals_entry.duplicate_within_seconds >= 0, "discharge.toml: negative duplicate window");
            r
        })
    }

    /// True when `new` repeats `previous` exactly and was taken within the duplicate window.
    pub fn looks_like_double_entry(
        &self,
        previous: Option<(&VitalSigns, OffsetDateTime)>,
        new: &VitalSigns,
        taken_at: OffsetDateTime,
    ) -> bool {
        previous.is_some_and(|(p, at)| {
            p == new && (taken_at - at).whole_seconds().abs() <= self.vitals_entry.duplicate_within_seconds
        })
    }
}

/// The dissociation measure a clinic chose and the total at or below which it counts as resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DissociationSetting {
    /// An instrument code from `data/rules/discharge.toml` (`cadss6` or `cadss`).
    pub instrument: String,
    /// The latest post-dose total must be at or below this.
    pub resolved_at_or_below: i32,
}

/// A site's discharge settings. The references give neither number, so neither has a
/// default: the medical director fills them, and discharge says which is missing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DischargeSettings {
    /// The latest full set of vitals must have been taken at most this many minutes before discharge.
    #[serde(default)]
    pub vitals_within_minutes: Option<Minutes>,
    /// The clinic's dissociation measure and its "resolved" cut-off.
    #[serde(default)]
    pub dissociation: Option<DissociationSetting>,
}

impl DischargeSettings {
    pub fn validate(&self, rules: &DischargeRules) -> Result<(), DomainError> {
        let mut v = Validator::new();
        if let Some(m) = self.vitals_within_minutes {
            v.check((1..=240).contains(&m.0), "vitals_within_minutes", format!("give 1-240 minutes, got {}", m.0));
        }
        if let Some(d) = &self.dissociation {
            match catalog().get(&d.instrument).filter(|_| rules.dissociation.measures.contains(&d.instrument)) {
                None => v.push(
                    "dissociation.instrument",
                    format!("choose one of: {}", rules.dissociation.measures.join(", ")),
                ),
                Some(inst) => {
                    let (lo, hi) = (inst.min_total.unwrap_or(0), inst.max_total.unwrap_or(0));
                    v.check(
                        (lo..=hi).contains(&d.resolved_at_or_below),
                        "dissociation.resolved_at_or_below",
                        format!("must be within the {lo}-{hi} range of {}", inst.short_name),
                    );
                }
            }
        }
        v.finish()
    }
}

/// One fact missing before discharge, and where on the session screen it is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Blocker {
    /// Stable code, e.g. `vitals_stale`.
    pub code: &'static str,
    pub message: String,
    /// The session screen's section that records it (`vitals`, `moaas`, `cadss`, `alerts`,
    /// `ledger`, `clock`), or `settings` for a clinic setting that is missing.
    pub anchor: &'static str,
}

impl Blocker {
    pub fn new(code: &'static str, anchor: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), anchor }
    }
}

/// What the record holds, as the discharge judgement needs it.
#[derive(Debug, Clone, Copy)]
pub struct DischargeRecord<'a> {
    pub rules: &'a DischargeRules,
    pub safety: &'a SafetyRules,
    pub settings: &'a DischargeSettings,
    /// The session's vitals, oldest first.
    pub vitals: &'a [VitalsRecord],
    /// The session's observations (MOAA/S among them).
    pub observations: &'a [ObservationRecord],
    /// The session's questionnaire responses (dissociation scores among them).
    pub responses: &'a [QuestionnaireResponse],
    /// Vitals readings a prescriber has documented a decision about (discharge despite the BP).
    pub bp_decisions: &'a [RecordId],
}

impl DischargeRecord<'_> {
    /// Every fact missing from the record, given the dose started at `dose_started` and it is now `now`.
    // Long on purpose: one check per discharge criterion, in the order the screen lists them, each adding its blocker.
    #[allow(clippy::too_many_lines)]
    pub fn blockers(&self, dose_started: OffsetDateTime, now: OffsetDateTime) -> Vec<Blocker> {
        let mut out = Vec::new();
        let after: Vec<&VitalsRecord> = self.vitals.iter().filter(|v| v.taken_at >= dose_started).collect();

        // A full set of vitals, recent enough.
        let full = |v: &VitalSigns| self.rules.full_vitals.fields.iter().all(|f| f.present(v));
        let wanted = self.rules.full_vitals.fields.iter().map(|f| f.label()).collect::<Vec<_>>().join(", ");
        let latest_full = after.iter().rev().find(|v| full(&v.vitals));
        match self.settings.vitals_within_minutes {
            None => out.push(Blocker::new(
                "setting_vitals_window",
                "settings",
                "the clinic has not set how recent the last full set of vitals must be at discharge (discharge setting vitals_within_minutes: the medical director sets it for the site)",
            )),
            Some(window) => match latest_full {
                None => out.push(Blocker::new(
                    "vitals_full_set",
                    "vitals",
                    format!("record a full set of vitals after the dose ({wanted})"),
                )),
                Some(v) => {
                    let age = (now - v.taken_at).whole_minutes();
                    if age > window.0 {
                        out.push(Blocker::new(
                            "vitals_stale",
                            "vitals",
                            format!(
                                "the last full set of vitals is {age} min old; the clinic wants one within {} min of discharge: record a new set",
                                window.0
                            ),
                        ));
                    }
                }
            },
        }

        // Blood pressure back under the BP rules, or a prescriber's decision naming the reading.
        let baseline = self.vitals.iter().find(|v| v.vitals.systolic_mmhg.is_some() && v.taken_at < dose_started);
        if let Some(v) = after.iter().rev().find(|v| v.vitals.blood_pressure().is_some()) {
            let phase = DosePhase::PostDose { minutes_since_dose: (v.taken_at - dose_started).whole_minutes() };
            let bp_rules = [&self.safety.severe_hypertension.code, &self.safety.bp_rise_from_baseline.code];
            let over: Vec<String> = self
                .safety
                .evaluate_vitals(phase, &v.vitals, baseline.map(|b| &b.vitals))
                .into_iter()
                .filter(|f| bp_rules.contains(&&f.rule))
                .map(|f| f.message)
                .collect();
            if !over.is_empty() && !self.bp_decisions.contains(&v.id) {
                let shown = v.vitals.blood_pressure().map_or("?".into(), |(s, d)| format!("{}/{}", fmt(s.0), fmt(d.0)));
                out.push(Blocker::new(
                    "bp_above_threshold",
                    "vitals",
                    format!(
                        "the latest BP {shown} mmHg is not back under the session-safety thresholds ({}): re-check it, or a prescriber documents the decision to discharge naming this reading",
                        over.join("; ")
                    ),
                ));
            }
        } else if !full_set_named(&out) {
            out.push(Blocker::new("bp_missing", "vitals", "record a blood pressure after the dose"));
        }

        // SpO2 at or above the floor in the latest post-dose reading that has one.
        let floor: Percent = self.safety.spo2_floor.below_pct;
        match after.iter().rev().find_map(|v| v.vitals.spo2_pct) {
            None if full_set_named(&out) => {}
            None => out.push(Blocker::new("spo2_missing", "vitals", "record SpO2 after the dose")),
            Some(p) if p.0 < floor.0 => out.push(Blocker::new(
                "spo2_below_floor",
                "vitals",
                format!("the latest SpO2 {}% is below the floor of {}%: re-check it", fmt(p.0), fmt(floor.0)),
            )),
            Some(_) => {}
        }

        // Sedation resolved: the latest MOAA/S after the dose.
        let resolved = self.rules.sedation.resolved_moaas;
        let latest_moaas = self
            .observations
            .iter()
            .filter(|o| o.observed_at >= dose_started)
            .filter_map(|o| match o.body {
                ObservationBody::Moaas { score } => Some((o.observed_at, o.id, score)),
                _ => None,
            })
            .max_by_key(|(at, id, _)| (*at, *id));
        match latest_moaas {
            None => out.push(Blocker::new(
                "sedation_not_scored",
                "moaas",
                format!("sedation not scored after the dose: record a MOAA/S (resolved = {resolved})"),
            )),
            Some((_, _, score)) if score != resolved => out.push(Blocker::new(
                "sedation_not_resolved",
                "moaas",
                format!("the latest MOAA/S is {score}; sedation has resolved at {resolved}: re-score when the patient is alert"),
            )),
            Some(_) => {}
        }

        // Dissociation resolved on the clinic's measure.
        match &self.settings.dissociation {
            None => out.push(Blocker::new(
                "setting_dissociation",
                "settings",
                "the clinic has not chosen its dissociation measure and the score that counts as resolved (discharge setting dissociation: the medical director sets it for the site)",
            )),
            Some(d) => {
                let name = catalog().get(&d.instrument).map_or(d.instrument.clone(), |i| i.short_name.clone());
                let latest = self
                    .responses
                    .iter()
                    .filter(|r| r.instrument == d.instrument && r.completed_at >= dose_started)
                    .max_by_key(|r| (r.completed_at, r.id));
                match latest.and_then(|r| r.score.total) {
                    None => out.push(Blocker::new(
                        "dissociation_not_scored",
                        "cadss",
                        format!("dissociation not scored after the dose: record a {name}"),
                    )),
                    Some(t) if t > d.resolved_at_or_below => out.push(Blocker::new(
                        "dissociation_not_resolved",
                        "cadss",
                        format!(
                            "the latest {name} total is {t}; the clinic counts dissociation resolved at {} or below: re-score later",
                            d.resolved_at_or_below
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
        out
    }
}

/// The missing full set already asks for every reading.
fn full_set_named(out: &[Blocker]) -> bool {
    out.iter().any(|b| b.code == "vitals_full_set")
}

fn fmt(x: f64) -> String {
    if x.fract() == 0.0 { format!("{}", x as i64) } else { format!("{x:.1}") }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::ids::{ResponseId, SessionId};
    use crate::instruments::score;
    use crate::records::VitalsSource;
    use crate::units::{BeatsPerMinute, BreathsPerMinute, Mmhg};

    const DOSE: OffsetDateTime = datetime!(2026-11-27 09:00 UTC);

    fn vitals(id: i64, min: i64, sys: f64, dia: f64, spo2: f64) -> VitalsRecord {
        VitalsRecord {
            id: RecordId(id),
            session_id: SessionId(1),
            taken_at: DOSE + time::Duration::minutes(min),
            minutes_since_dose: Some(min),
            vitals: VitalSigns {
                systolic_mmhg: Some(Mmhg(sys)),
                diastolic_mmhg: Some(Mmhg(dia)),
                heart_rate_bpm: Some(BeatsPerMinute(72.0)),
                spo2_pct: Some(Percent(spo2)),
                resp_rate_per_min: Some(BreathsPerMinute(14.0)),
            },
            source: VitalsSource::Manual,
        }
    }

    fn moaas(id: i64, min: i64, score: i32) -> ObservationRecord {
        ObservationRecord {
            id: RecordId(id),
            session_id: SessionId(1),
            observed_at: DOSE + time::Duration::minutes(min),
            body: ObservationBody::Moaas { score },
        }
    }

    fn cadss6(id: i64, min: i64, answers: [i32; 6]) -> QuestionnaireResponse {
        let answers: Vec<Option<i32>> = answers.into_iter().map(Some).collect();
        QuestionnaireResponse {
            id: ResponseId(id),
            patient_id: crate::ids::PatientId(1),
            course_id: None,
            session_id: Some(SessionId(1)),
            instrument: "cadss6".into(),
            score: score(catalog().get("cadss6").unwrap(), &answers).unwrap(),
            answers,
            completed_at: DOSE + time::Duration::minutes(min),
            completed_by: crate::records::CompletedBy::Staff,
        }
    }

    fn settings() -> DischargeSettings {
        DischargeSettings {
            vitals_within_minutes: Some(Minutes(15)),
            dissociation: Some(DissociationSetting { instrument: "cadss6".into(), resolved_at_or_below: 2 }),
        }
    }

    fn codes(b: &[Blocker]) -> Vec<&'static str> {
        b.iter().map(|b| b.code).collect()
    }

    struct Case {
        vitals: Vec<VitalsRecord>,
        obs: Vec<ObservationRecord>,
        responses: Vec<QuestionnaireResponse>,
        decisions: Vec<RecordId>,
        settings: DischargeSettings,
    }

    impl Case {
        fn complete() -> Self {
            Case {
                vitals: vec![vitals(1, -10, 128.0, 82.0, 98.0), vitals(2, 115, 130.0, 84.0, 97.0)],
                obs: vec![moaas(1, 40, 3), moaas(2, 110, 5)],
                responses: vec![cadss6(1, 40, [2, 2, 1, 1, 0, 0]), cadss6(2, 110, [0, 1, 0, 0, 0, 0])],
                decisions: vec![],
                settings: settings(),
            }
        }
        fn judge(&self, now_min: i64) -> Vec<Blocker> {
            DischargeRecord {
                rules: DischargeRules::builtin(),
                safety: SafetyRules::builtin(),
                settings: &self.settings,
                vitals: &self.vitals,
                observations: &self.obs,
                responses: &self.responses,
                bp_decisions: &self.decisions,
            }
            .blockers(DOSE, DOSE + time::Duration::minutes(now_min))
        }
    }

    #[test]
    fn a_complete_record_allows_discharge() {
        assert_eq!(Case::complete().judge(121), vec![]);
    }

    #[test]
    fn the_issue_case_is_refused_for_every_missing_fact() {
        // Discharged at 2 h with one post-dose BP of 182/112 taken at 40 min, no scores.
        let c = Case {
            vitals: vec![vitals(1, -10, 128.0, 82.0, 98.0), vitals(2, 40, 182.0, 112.0, 97.0)],
            obs: vec![],
            responses: vec![],
            decisions: vec![],
            settings: settings(),
        };
        let b = c.judge(120);
        assert_eq!(
            codes(&b),
            ["vitals_stale", "bp_above_threshold", "sedation_not_scored", "dissociation_not_scored"],
            "{b:?}"
        );
        assert!(b[0].message.contains("80 min old") && b[0].message.contains("within 15 min"), "{}", b[0].message);
        assert!(b[1].message.contains("182/112"), "{}", b[1].message);
        assert!(b.iter().all(|b| ["vitals", "moaas", "cadss"].contains(&b.anchor)));
    }

    #[test]
    fn missing_settings_are_named_and_never_defaulted() {
        let mut c = Case::complete();
        c.settings = DischargeSettings::default();
        let b = c.judge(121);
        assert_eq!(codes(&b), ["setting_vitals_window", "setting_dissociation"]);
        assert!(b.iter().all(|b| b.anchor == "settings" && b.message.contains("medical director")));
    }

    #[test]
    fn a_high_bp_needs_a_decision_naming_that_reading() {
        let mut c = Case::complete();
        c.vitals.push(vitals(3, 118, 181.0, 100.0, 97.0));
        assert_eq!(codes(&c.judge(121)), ["bp_above_threshold"]);
        // A decision about an older reading does not cover the latest one.
        c.decisions = vec![RecordId(2)];
        assert_eq!(codes(&c.judge(121)), ["bp_above_threshold"]);
        c.decisions = vec![RecordId(3)];
        assert_eq!(c.judge(121), vec![]);
        // A rise of 40 systolic from the pre-dose baseline also counts.
        let mut c = Case::complete();
        c.vitals.push(vitals(3, 118, 168.0, 84.0, 97.0));
        assert_eq!(codes(&c.judge(121)), ["bp_above_threshold"]);
    }

    #[test]
    fn sedation_and_dissociation_use_the_latest_post_dose_score() {
        let mut c = Case::complete();
        c.obs.push(moaas(3, 112, 4));
        assert_eq!(codes(&c.judge(121)), ["sedation_not_resolved"]);
        let mut c = Case::complete();
        c.responses.push(cadss6(3, 112, [1, 1, 1, 0, 0, 0]));
        let b = c.judge(121);
        assert_eq!(codes(&b), ["dissociation_not_resolved"]);
        assert!(b[0].message.contains("total is 3") && b[0].message.contains("2 or below"), "{}", b[0].message);
        // A score before the dose says nothing about after it.
        let mut c = Case::complete();
        c.obs = vec![moaas(1, -5, 5)];
        c.responses = vec![cadss6(1, -5, [0; 6])];
        assert_eq!(codes(&c.judge(121)), ["sedation_not_scored", "dissociation_not_scored"]);
        // Another measure than the clinic's does not count.
        let mut c = Case::complete();
        c.settings.dissociation = Some(DissociationSetting { instrument: "cadss".into(), resolved_at_or_below: 4 });
        assert_eq!(codes(&c.judge(121)), ["dissociation_not_scored"]);
    }

    #[test]
    fn spo2_at_the_floor_is_enough_and_below_is_not() {
        let floor = SafetyRules::builtin().spo2_floor.below_pct.0;
        let mut c = Case::complete();
        c.vitals[1] = vitals(2, 115, 130.0, 84.0, floor);
        assert_eq!(c.judge(121), vec![]);
        c.vitals[1] = vitals(2, 115, 130.0, 84.0, floor - 1.0);
        assert_eq!(codes(&c.judge(121)), ["spo2_below_floor"]);
    }

    #[test]
    fn a_partial_reading_is_not_a_full_set() {
        let mut c = Case::complete();
        let mut bp_only = vitals(3, 118, 130.0, 84.0, 97.0);
        bp_only.vitals.resp_rate_per_min = None;
        bp_only.vitals.heart_rate_bpm = None;
        bp_only.vitals.spo2_pct = None;
        c.vitals.push(bp_only);
        // The full set at 115 min still counts, 6 min old at 121.
        assert_eq!(c.judge(121), vec![]);
        // ... but not once it is older than the window.
        assert_eq!(codes(&c.judge(131)), ["vitals_stale"]);
    }

    #[test]
    fn settings_are_checked_against_the_measure() {
        let rules = DischargeRules::builtin();
        assert!(settings().validate(rules).is_ok());
        let bad = DischargeSettings {
            vitals_within_minutes: Some(Minutes(0)),
            dissociation: Some(DissociationSetting { instrument: "phq9".into(), resolved_at_or_below: 2 }),
        };
        let e = bad.validate(rules).unwrap_err().to_string();
        assert!(e.contains("vitals_within_minutes") && e.contains("cadss6"), "{e}");
        let high = DischargeSettings {
            vitals_within_minutes: None,
            dissociation: Some(DissociationSetting { instrument: "cadss6".into(), resolved_at_or_below: 99 }),
        };
        assert!(high.validate(rules).unwrap_err().to_string().contains("resolved_at_or_below"));
    }

    #[test]
    fn an_identical_reading_within_the_window_looks_like_a_double_entry() {
        let rules = DischargeRules::builtin();
        let w = rules.vitals_entry.duplicate_within_seconds;
        let v = vitals(1, 0, 128.0, 82.0, 98.0).vitals;
        let at = DOSE;
        assert!(rules.looks_like_double_entry(Some((&v, at)), &v, at + time::Duration::seconds(w)));
        assert!(!rules.looks_like_double_entry(Some((&v, at)), &v, at + time::Duration::seconds(w + 1)));
        let mut other = v;
        other.heart_rate_bpm = Some(BeatsPerMinute(73.0));
        assert!(!rules.looks_like_double_entry(Some((&v, at)), &other, at));
        assert!(!rules.looks_like_double_entry(None, &v, at));
    }
}
