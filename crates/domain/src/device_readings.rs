//! Readings a bedside monitor wrote into a session, and the nurse's review of them.
//!
//! A monitor's reading is attached as it arrives (the safety rules run on it at once), then
//! the nurse in the chair may **confirm** it or **strike** it as an artefact (a cuff moved, a
//! probe fell off) with a reason. A struck reading stays on record, marked, but no longer
//! counts: not as the session's baseline for the alert rules, not for discharge, the chart,
//! the FHIR facade or the REMS form's blood pressures. Striking is final; confirming is not
//! (a confirmed reading may still be struck when the nurse sees it was an artefact).
//!
//! Also here: the one check Keta makes on a monitor's mean arterial pressure, which is kept
//! beside the reading but is in no safety rule (the references give none).

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Validator};
use crate::units::Mmhg;
use crate::vitals::{DIASTOLIC_ENTRY_RANGE_MMHG, SYSTOLIC_ENTRY_RANGE_MMHG, VitalSigns};

/// Where a monitor's reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceReadingStatus {
    /// Attached as it arrived; nobody has looked at it yet. It counts.
    Unreviewed,
    /// A nurse confirmed it. It counts.
    Confirmed,
    /// A nurse struck it as an artefact, with a reason. It no longer counts.
    Struck,
}

impl DeviceReadingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreviewed => "unreviewed",
            Self::Confirmed => "confirmed",
            Self::Struck => "struck",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Unreviewed, Self::Confirmed, Self::Struck].into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the reading counts for alerts, discharge, charts, FHIR and the REMS form.
    pub fn counts(self) -> bool {
        self != Self::Struck
    }
}

/// What the nurse decides about a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceReadingDecision {
    Confirm,
    Strike,
}

impl DeviceReadingDecision {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confirm" => Some(Self::Confirm),
            "strike" => Some(Self::Strike),
            _ => None,
        }
    }
}

/// The outcome of a review: the new status and the reason to store (trimmed; `None` for a
/// confirmation given without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReadingReview {
    pub status: DeviceReadingStatus,
    pub reason: Option<String>,
}

/// Decides a review of a reading now at `current`. A strike needs a reason of at most
/// `reason_max` characters (the chart must say why a value was set aside); a confirmation
/// may carry one. A struck reading cannot be reviewed again, and a confirmed one cannot be
/// confirmed twice. Errors name the field or say what to do instead.
pub fn review(
    current: DeviceReadingStatus,
    decision: DeviceReadingDecision,
    reason: Option<&str>,
    reason_max: usize,
) -> Result<DeviceReadingReview, DomainError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
    let mut v = Validator::new();
    if decision == DeviceReadingDecision::Strike {
        v.check(
            reason.is_some(),
            "reason",
            "say why the reading is an artefact (e.g. cuff moved, probe off the finger)",
        );
    }
    if let Some(r) = &reason {
        v.check(r.chars().count() <= reason_max, "reason", format!("keep the reason to {reason_max} characters"));
    }
    v.finish()?;
    match (current, decision) {
        (DeviceReadingStatus::Struck, _) => Err(DomainError::Conflict(
            "this reading was already struck as an artefact; a struck reading stays struck".into(),
        )),
        (DeviceReadingStatus::Confirmed, DeviceReadingDecision::Confirm) => {
            Err(DomainError::Conflict("this reading is already confirmed".into()))
        }
        (_, DeviceReadingDecision::Confirm) => {
            Ok(DeviceReadingReview { status: DeviceReadingStatus::Confirmed, reason })
        }
        (_, DeviceReadingDecision::Strike) => Ok(DeviceReadingReview { status: DeviceReadingStatus::Struck, reason }),
    }
}

/// Checks a monitor's mean arterial pressure against the reading it came with. The mean of
/// a pressure wave lies between its diastolic and systolic values, so a mean outside them (or
/// outside the entry ranges of blood pressure at all) is a mis-coded or garbled value, not a
/// clinical finding; the message is then refused like any implausible reading. Returns the
/// field in error (`mean_mmhg`).
pub fn check_mean_pressure(vitals: &VitalSigns, mean: Mmhg) -> Result<(), DomainError> {
    let m = mean.0;
    let mut v = Validator::new();
    let lowest = *DIASTOLIC_ENTRY_RANGE_MMHG.start();
    let highest = *SYSTOLIC_ENTRY_RANGE_MMHG.end();
    if !m.is_finite() || !(lowest..=highest).contains(&m) {
        v.push(
            "mean_mmhg",
            format!("a mean pressure of {m} mmHg is outside {lowest}-{highest} mmHg; re-check the reading"),
        );
    } else if let Some((s, d)) = vitals.blood_pressure()
        && (m < d.0 || m > s.0)
    {
        v.push(
            "mean_mmhg",
            format!("the mean pressure ({m}) must lie between diastolic ({}) and systolic ({})", d.0, s.0),
        );
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceReadingDecision::*;
    use DeviceReadingStatus::*;

    #[test]
    fn a_strike_needs_a_reason_and_a_confirmation_does_not() {
        let e = review(Unreviewed, Strike, Some("  "), 200).unwrap_err();
        assert!(matches!(&e, DomainError::Invalid(f) if f[0].field == "reason"), "{e:?}");
        assert!(review(Unreviewed, Strike, None, 200).is_err());
        let r = review(Unreviewed, Strike, Some(" cuff moved "), 200).unwrap();
        assert_eq!(r, DeviceReadingReview { status: Struck, reason: Some("cuff moved".into()) });
        assert_eq!(review(Unreviewed, Confirm, None, 200).unwrap().status, Confirmed);
        let long = "x".repeat(201);
        assert!(matches!(review(Unreviewed, Confirm, Some(&long), 200), Err(DomainError::Invalid(_))));
    }

    #[test]
    fn a_struck_reading_stays_struck_and_a_confirmed_one_may_still_be_struck() {
        assert!(matches!(review(Struck, Confirm, None, 200), Err(DomainError::Conflict(_))));
        assert!(matches!(review(Struck, Strike, Some("again"), 200), Err(DomainError::Conflict(_))));
        assert!(matches!(review(Confirmed, Confirm, None, 200), Err(DomainError::Conflict(_))));
        assert_eq!(review(Confirmed, Strike, Some("probe off"), 200).unwrap().status, Struck);
    }

    #[test]
    fn only_struck_readings_stop_counting() {
        assert!(Unreviewed.counts() && Confirmed.counts() && !Struck.counts());
        for s in [Unreviewed, Confirmed, Struck] {
            assert_eq!(DeviceReadingStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn a_mean_pressure_must_lie_within_the_pressure_it_came_with() {
        let bp =
            VitalSigns { systolic_mmhg: Some(Mmhg(130.0)), diastolic_mmhg: Some(Mmhg(80.0)), ..Default::default() };
        assert!(check_mean_pressure(&bp, Mmhg(97.0)).is_ok());
        assert!(check_mean_pressure(&bp, Mmhg(80.0)).is_ok());
        assert!(check_mean_pressure(&bp, Mmhg(140.0)).is_err());
        assert!(check_mean_pressure(&bp, Mmhg(79.0)).is_err());
        // Without a systolic/diastolic pair only the entry ranges apply.
        assert!(check_mean_pressure(&VitalSigns::default(), Mmhg(97.0)).is_ok());
        assert!(check_mean_pressure(&VitalSigns::default(), Mmhg(970.0)).is_err());
        assert!(check_mean_pressure(&VitalSigns::default(), Mmhg(f64::NAN)).is_err());
    }
}
