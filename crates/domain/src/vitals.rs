//! Vital signs recorded during a dosing session (pre-dose baseline, post-dose checks,
//! pre-discharge).
//!
//! This module only decides whether a set of readings is *enterable*: something was
//! measured, blood pressure is a pair, systolic is above diastolic and each value is
//! physically plausible (a typo such as `1400` or `14` for a systolic of 140 is caught at
//! the form). Whether a reading is clinically worrying is not decided here: that is the
//! job of the session-safety rules in [`crate::alerts`], whose thresholds are data with
//! sources.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Validator};
use crate::units::{BeatsPerMinute, BreathsPerMinute, Mmhg, Percent};

// ---------------------------------------------------------------------------------------
// Data-entry plausibility ranges.
//
// These are NOT clinical thresholds and never raise an alert. They are deliberately wide
// bounds outside which a value is almost certainly a typing or unit error (an extra or
// missing digit, a temperature typed into the heart-rate box), so the form asks the user
// to re-check before the value is stored. Clinical limits (e.g. >140/90 mmHg, SpO2 floor)
// live in `data/rules/session-safety.toml`. They are kept in this one place so they can be
// reviewed together.
// ---------------------------------------------------------------------------------------

/// Accepted systolic entries, mmHg.
pub const SYSTOLIC_ENTRY_RANGE_MMHG: RangeInclusive<f64> = 40.0..=300.0;
/// Accepted diastolic entries, mmHg.
pub const DIASTOLIC_ENTRY_RANGE_MMHG: RangeInclusive<f64> = 20.0..=200.0;
/// Accepted heart-rate entries, beats per minute.
pub const HEART_RATE_ENTRY_RANGE_BPM: RangeInclusive<f64> = 20.0..=250.0;
/// Accepted SpO2 entries, percent (100 is the physical maximum).
pub const SPO2_ENTRY_RANGE_PCT: RangeInclusive<f64> = 50.0..=100.0;
/// Accepted respiratory-rate entries, breaths per minute.
pub const RESP_RATE_ENTRY_RANGE_PER_MIN: RangeInclusive<f64> = 4.0..=60.0;

/// One set of vital-sign readings taken at the same time. Every value is optional
/// because not every check measures everything (e.g. a BP-only re-check at ~40 min).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VitalSigns {
    #[serde(default)]
    pub systolic_mmhg: Option<Mmhg>,
    #[serde(default)]
    pub diastolic_mmhg: Option<Mmhg>,
    #[serde(default)]
    pub heart_rate_bpm: Option<BeatsPerMinute>,
    #[serde(default)]
    pub spo2_pct: Option<Percent>,
    #[serde(default)]
    pub resp_rate_per_min: Option<BreathsPerMinute>,
}

impl VitalSigns {
    /// Checks the readings can be stored; reports every problem at once, each naming
    /// the field and saying what to fix.
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        let any = self.systolic_mmhg.is_some()
            || self.diastolic_mmhg.is_some()
            || self.heart_rate_bpm.is_some()
            || self.spo2_pct.is_some()
            || self.resp_rate_per_min.is_some();
        v.check(any, "vitals", "enter at least one reading (BP, heart rate, SpO2 or respiratory rate)");

        match (self.systolic_mmhg, self.diastolic_mmhg) {
            (Some(_), None) => v.push(
                "diastolic_mmhg",
                "enter the diastolic value too: blood pressure is recorded as a systolic/diastolic pair",
            ),
            (None, Some(_)) => v.push(
                "systolic_mmhg",
                "enter the systolic value too: blood pressure is recorded as a systolic/diastolic pair",
            ),
            _ => {}
        }

        check_range(&mut v, "systolic_mmhg", self.systolic_mmhg.map(|x| x.0), &SYSTOLIC_ENTRY_RANGE_MMHG, "mmHg");
        check_range(&mut v, "diastolic_mmhg", self.diastolic_mmhg.map(|x| x.0), &DIASTOLIC_ENTRY_RANGE_MMHG, "mmHg");
        check_range(&mut v, "heart_rate_bpm", self.heart_rate_bpm.map(|x| x.0), &HEART_RATE_ENTRY_RANGE_BPM, "/min");
        check_range(&mut v, "spo2_pct", self.spo2_pct.map(|x| x.0), &SPO2_ENTRY_RANGE_PCT, "%");
        check_range(
            &mut v,
            "resp_rate_per_min",
            self.resp_rate_per_min.map(|x| x.0),
            &RESP_RATE_ENTRY_RANGE_PER_MIN,
            "breaths/min",
        );

        if let (Some(s), Some(d)) = (self.systolic_mmhg, self.diastolic_mmhg)
            && s.0.is_finite()
            && d.0.is_finite()
            && s.0 <= d.0
        {
            v.push(
                "systolic_mmhg",
                format!(
                    "systolic ({}) must be higher than diastolic ({}); check whether the two values were swapped",
                    s.0, d.0
                ),
            );
        }
        v.finish()
    }

    /// Both halves of the blood pressure, if both were measured.
    pub fn blood_pressure(&self) -> Option<(Mmhg, Mmhg)> {
        Some((self.systolic_mmhg?, self.diastolic_mmhg?))
    }
}

fn check_range(v: &mut Validator, field: &str, value: Option<f64>, range: &RangeInclusive<f64>, unit: &str) {
    let Some(x) = value else { return };
    if !x.is_finite() {
        v.push(field, "enter a number");
    } else if !range.contains(&x) {
        v.push(
            field,
            format!(
                "{x} {unit} is outside the accepted entry range {}-{} {unit}; re-check the reading (a missing or extra digit?) and re-enter it",
                range.start(),
                range.end()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(s: f64, d: f64) -> VitalSigns {
        VitalSigns { systolic_mmhg: Some(Mmhg(s)), diastolic_mmhg: Some(Mmhg(d)), ..Default::default() }
    }

    fn fields(r: Result<(), DomainError>) -> Vec<String> {
        match r {
            Ok(()) => vec![],
            Err(DomainError::Invalid(errs)) => errs.into_iter().map(|e| e.field).collect(),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn empty_set_is_rejected() {
        assert_eq!(fields(VitalSigns::default().validate()), vec!["vitals"]);
    }

    #[test]
    fn a_single_reading_is_enough() {
        let v = VitalSigns { spo2_pct: Some(Percent(97.0)), ..Default::default() };
        assert!(v.validate().is_ok());
        assert!(bp(120.0, 80.0).validate().is_ok());
    }

    #[test]
    fn bp_halves_must_come_together() {
        let only_sys = VitalSigns { systolic_mmhg: Some(Mmhg(120.0)), ..Default::default() };
        assert_eq!(fields(only_sys.validate()), vec!["diastolic_mmhg"]);
        let only_dia = VitalSigns { diastolic_mmhg: Some(Mmhg(80.0)), ..Default::default() };
        assert_eq!(fields(only_dia.validate()), vec!["systolic_mmhg"]);
    }

    #[test]
    fn systolic_must_exceed_diastolic() {
        assert_eq!(fields(bp(80.0, 120.0).validate()), vec!["systolic_mmhg"]);
        assert_eq!(fields(bp(90.0, 90.0).validate()), vec!["systolic_mmhg"]);
        assert!(bp(91.0, 90.0).validate().is_ok());
    }

    #[test]
    fn implausible_entries_name_the_field() {
        let v = VitalSigns {
            systolic_mmhg: Some(Mmhg(1400.0)),
            diastolic_mmhg: Some(Mmhg(90.0)),
            heart_rate_bpm: Some(BeatsPerMinute(0.0)),
            spo2_pct: Some(Percent(101.0)),
            resp_rate_per_min: Some(BreathsPerMinute(f64::NAN)),
        };
        let Err(DomainError::Invalid(errs)) = v.validate() else { panic!("expected errors") };
        let f: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(f, vec!["systolic_mmhg", "heart_rate_bpm", "spo2_pct", "resp_rate_per_min"]);
        assert!(errs[0].message.contains("1400"), "{}", errs[0].message);
        assert!(errs[0].message.contains("re-check"));
    }

    #[test]
    fn entry_range_edges_are_inclusive() {
        assert!(bp(*SYSTOLIC_ENTRY_RANGE_MMHG.end(), *DIASTOLIC_ENTRY_RANGE_MMHG.end()).validate().is_ok());
        let v = VitalSigns { spo2_pct: Some(Percent(100.0)), ..Default::default() };
        assert!(v.validate().is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected_on_input() {
        let r: Result<VitalSigns, _> = serde_json::from_str(r#"{"systolic": 120}"#);
        assert!(r.is_err());
        let ok: VitalSigns = serde_json::from_str(r#"{"systolic_mmhg": 120, "diastolic_mmhg": 80}"#).unwrap();
        assert_eq!(ok, bp(120.0, 80.0));
    }
}
