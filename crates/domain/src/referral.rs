//! A referral: a new patient with the history the referring clinician sends (diagnoses,
//! antidepressant trials, prior questionnaire totals), validated as the forms validate each
//! part, all or nothing. The FHIR Bundle parser (keta-web) builds one; the store writes it in
//! one transaction.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::eligibility::AntidepressantTrial;
use crate::error::{DomainError, FieldError};
use crate::patient::{Indication, NewPatient};

/// A questionnaire total reported by the referrer: the total and the date, not the answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorScore {
    /// Instrument code, e.g. `phq9`.
    pub instrument: String,
    pub total: i32,
    pub observed_on: Date,
}

impl PriorScore {
    /// The instrument exists and has a total, the total is within its range and the date is
    /// not after `today`.
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        let mut v = crate::error::Validator::new();
        match crate::instruments::catalog().get(&self.instrument) {
            None => v.push("instrument", format!("unknown instrument '{}'", self.instrument)),
            Some(i) => match (i.min_total, i.max_total) {
                (Some(lo), Some(hi)) => v.check(
                    (lo..=hi).contains(&self.total),
                    "total",
                    format!("a {} total is {lo} to {hi}; {} is outside", i.short_name, self.total),
                ),
                _ => v.push("instrument", format!("{} has no total score to import", i.short_name)),
            },
        }
        v.check(self.observed_on <= today, "observed_on", "the score's date is in the future; check the date");
        v.finish()
    }
}

/// Everything a referral creates.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReferral {
    pub patient: NewPatient,
    pub trials: Vec<AntidepressantTrial>,
    pub prior_scores: Vec<PriorScore>,
}

impl NewReferral {
    /// Validates every part with the forms' own rules; errors are named `patient.<field>`,
    /// `trials[i].<field>` and `prior_scores[i].<field>`.
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        let mut errs: Vec<FieldError> = Vec::new();
        let mut nest = |prefix: String, r: Result<(), DomainError>| match r {
            Ok(()) => {}
            Err(DomainError::Invalid(es)) => {
                errs.extend(es.into_iter().map(|e| FieldError::new(format!("{prefix}.{}", e.field), e.message)))
            }
            Err(DomainError::Conflict(m)) => errs.push(FieldError::new(prefix, m)),
        };
        nest("patient".into(), self.patient.validate(today));
        for (i, t) in self.trials.iter().enumerate() {
            nest(format!("trials[{i}]"), t.validate());
        }
        for (i, s) in self.prior_scores.iter().enumerate() {
            nest(format!("prior_scores[{i}]"), s.validate(today));
        }
        if errs.is_empty() { Ok(()) } else { Err(DomainError::Invalid(errs)) }
    }
}

/// The code tables of `data/fhir/referral-codes.toml` (a clinic list; see the file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferralCodes {
    pub icd10_systems: Vec<String>,
    pub snomed_system: String,
    pub rxnorm_system: String,
    pub loinc_system: String,
    #[serde(default)]
    pub indications: Vec<IndicationCodes>,
    #[serde(default)]
    pub snomed: Vec<SnomedConcept>,
    #[serde(default)]
    pub rxnorm: Vec<RxnormConcept>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicationCodes {
    pub indication: Indication,
    pub icd10_prefixes: Vec<String>,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnomedConcept {
    pub code: String,
    pub display: String,
    pub indication: Indication,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RxnormConcept {
    pub code: String,
    pub name: String,
    pub source: String,
}

impl ReferralCodes {
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Self = toml::from_str(text).map_err(|e| format!("referral codes: {e}"))?;
        if c.indications.iter().any(|i| i.source.trim().is_empty())
            || c.snomed.iter().any(|s| s.source.trim().is_empty())
            || c.rxnorm.iter().any(|r| r.source.trim().is_empty())
        {
            return Err("referral codes: every entry names its source".into());
        }
        Ok(c)
    }

    /// The indication an ICD-10 code gives, if the clinic listed its category.
    pub fn indication_for_icd10(&self, code: &str) -> Option<Indication> {
        let code = code.to_ascii_uppercase();
        self.indications
            .iter()
            .find(|i| i.icd10_prefixes.iter().any(|p| code.starts_with(p.as_str())))
            .map(|i| i.indication)
    }

    pub fn snomed(&self, code: &str) -> Option<&SnomedConcept> {
        self.snomed.iter().find(|s| s.code == code)
    }

    pub fn rxnorm(&self, code: &str) -> Option<&RxnormConcept> {
        self.rxnorm.iter().find(|r| r.code == code)
    }

    pub fn is_icd10_system(&self, system: &str) -> bool {
        self.icd10_systems.iter().any(|s| s == system)
    }
}

const CODES_TOML: &str = include_str!("../../../data/fhir/referral-codes.toml");

/// The shipped code tables.
pub fn codes() -> &'static ReferralCodes {
    static C: OnceLock<ReferralCodes> = OnceLock::new();
    C.get_or_init(|| ReferralCodes::parse(CODES_TOML).expect("data/fhir/referral-codes.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::TrialOutcome;
    use crate::ids::SiteId;
    use crate::patient::Sex;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 12 - 07);

    fn referral() -> NewReferral {
        NewReferral {
            patient: NewPatient {
                site_id: SiteId(1),
                mrn: "R-1".into(),
                given_name: "Ada".into(),
                family_name: "Example".into(),
                date_of_birth: date!(1980 - 01 - 02),
                sex: Sex::Female,
                phone: None,
                email: None,
                indication: Indication::Depression,
                diagnoses: vec!["F33.2".into()],
                referring_clinician: None,
            },
            trials: vec![AntidepressantTrial {
                drug: "sertraline".into(),
                daily_dose_mg: None,
                weeks: 8,
                adequate: false,
                outcome: TrialOutcome::NoResponse,
                current_episode: true,
            }],
            prior_scores: vec![PriorScore { instrument: "phq9".into(), total: 19, observed_on: date!(2026 - 11 - 01) }],
        }
    }

    #[test]
    fn the_shipped_tables_load_and_map_depression() {
        let c = codes();
        assert_eq!(c.indication_for_icd10("F33.2"), Some(Indication::Depression));
        assert_eq!(c.indication_for_icd10("f32.9"), Some(Indication::Depression));
        assert_eq!(c.indication_for_icd10("F41.1"), None);
        assert_eq!(c.rxnorm("36437").map(|r| r.name.as_str()), Some("sertraline"));
        assert!(c.is_icd10_system("http://hl7.org/fhir/sid/icd-10-cm"));
    }

    #[test]
    fn every_part_is_validated_and_named() {
        assert!(referral().validate(TODAY).is_ok());
        let mut r = referral();
        r.patient.mrn = "bad mrn!".into();
        r.trials[0].adequate = true;
        r.trials[0].weeks = 2; // an adequate trial lasts longer
        r.prior_scores[0].total = 28;
        r.prior_scores[0].observed_on = date!(2027 - 01 - 01);
        let DomainError::Invalid(errs) = r.validate(TODAY).unwrap_err() else { panic!() };
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["patient.mrn", "trials[0].weeks", "prior_scores[0].total", "prior_scores[0].observed_on"]);
    }

    #[test]
    fn a_prior_score_needs_an_instrument_with_a_total() {
        let s = PriorScore { instrument: "nope".into(), total: 1, observed_on: TODAY };
        assert!(s.validate(TODAY).is_err());
        let s = PriorScore { instrument: "cssrs_screen".into(), total: 1, observed_on: TODAY };
        assert!(s.validate(TODAY).is_err());
    }
}
