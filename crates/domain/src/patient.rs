//! Patients: identity, indication, diagnoses and weight history.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::error::{DomainError, Validator};
use crate::ids::{PatientId, SiteId};
use crate::plausible;
use crate::units::Kilograms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Female,
    Male,
    Other,
    Unknown,
}

/// What the patient is being treated for; decides which instruments are primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Indication {
    Depression,
    Anxiety,
    Ptsd,
    ChronicPain,
}

impl Indication {
    pub const ALL: [Indication; 4] = [Self::Depression, Self::Anxiety, Self::Ptsd, Self::ChronicPain];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Depression => "depression",
            Self::Anxiety => "anxiety",
            Self::Ptsd => "ptsd",
            Self::ChronicPain => "chronic_pain",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }
    /// The instrument whose trajectory defines response and remission for this indication.
    pub fn primary_instrument(self) -> &'static str {
        match self {
            Self::Depression => "phq9",
            Self::Anxiety => "gad7",
            Self::Ptsd => "pcl5",
            Self::ChronicPain => "pain_nrs",
        }
    }
}

impl Sex {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Female => "female",
            Self::Male => "male",
            Self::Other => "other",
            Self::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Female, Self::Male, Self::Other, Self::Unknown].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Patient {
    pub id: PatientId,
    pub site_id: SiteId,
    /// Medical record number, unique within the installation.
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: Date,
    pub sex: Sex,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub indication: Indication,
    /// ICD-10-CM codes, e.g. `F33.2`.
    pub diagnoses: Vec<String>,
    pub referring_clinician: Option<String>,
    /// The latest recorded weight, if any.
    pub latest_weight_kg: Option<Kilograms>,
}

impl Patient {
    pub fn display_name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
    }
    /// Age in completed years on `on`.
    pub fn age_on(&self, on: Date) -> i32 {
        let mut age = on.year() - self.date_of_birth.year();
        if (on.month() as u8, on.day()) < (self.date_of_birth.month() as u8, self.date_of_birth.day()) {
            age -= 1;
        }
        age
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPatient {
    pub site_id: SiteId,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub date_of_birth: Date,
    pub sex: Sex,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub indication: Indication,
    #[serde(default)]
    pub diagnoses: Vec<String>,
    #[serde(default)]
    pub referring_clinician: Option<String>,
}

impl NewPatient {
    /// Validates everything a clerk can get wrong; `today` is the clinic's date.
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        let mut v = Validator::new();
        v.check(
            (1..=32).contains(&self.mrn.len()) && self.mrn.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "mrn",
            "use 1-32 letters, digits or '-'",
        );
        let ranges = crate::plausible::ranges();
        v.check(valid_name(&self.given_name), "given_name", "enter the given name (1-100 characters)");
        v.check(valid_name(&self.family_name), "family_name", "enter the family name (1-100 characters)");
        plausible::check(&mut v, "date_of_birth", ranges.date_of_birth(self.date_of_birth, today));
        if let Some(email) = &self.email {
            v.check(valid_email(email), "email", "enter an address like name@example.org, or leave it empty");
        }
        if let Some(phone) = &self.phone {
            v.check(valid_phone(phone), "phone", "use digits, spaces, '+', '-' or parentheses (6-20 characters)");
        }
        if let Some(who) = &self.referring_clinician {
            plausible::check(&mut v, "referring_clinician", ranges.name(who));
        }
        let most = ranges.lists.diagnoses_max;
        if self.diagnoses.len() > most {
            // One message, not one per code: 10,000 codes would otherwise make 10,000 errors.
            v.push("diagnoses", format!("record at most {most} diagnosis codes (there are {})", self.diagnoses.len()));
            return v.finish();
        }
        for (i, code) in self.diagnoses.iter().enumerate() {
            v.check(
                is_icd10(code),
                &format!("diagnoses[{i}]"),
                format!("'{code}' is not an ICD-10 code such as F33.2"),
            );
        }
        v.finish()
    }
}

fn valid_name(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty() && t.chars().count() <= 100 && !t.chars().any(char::is_control)
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.contains(char::is_whitespace)
        && s.len() <= 254
}

fn valid_phone(s: &str) -> bool {
    (6..=20).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c))
        && s.chars().any(|c| c.is_ascii_digit())
}

/// ICD-10(-CM) code shape: a letter, two digits or digit+letter, optional `.` and 1-4 alphanumerics.
pub fn is_icd10(code: &str) -> bool {
    let b = code.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_uppercase() || !b[1].is_ascii_digit() || !b[2].is_ascii_alphanumeric() {
        return false;
    }
    match &code[3..] {
        "" => true,
        rest => rest
            .strip_prefix('.')
            .is_some_and(|r| (1..=4).contains(&r.len()) && r.chars().all(|c| c.is_ascii_alphanumeric())),
    }
}

/// How a dosing weight was obtained; dosing-weight policy is the clinic's (clinical-reference §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeightType {
    Actual,
    Ideal,
    Adjusted,
}

impl WeightType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Actual => "actual",
            Self::Ideal => "ideal",
            Self::Adjusted => "adjusted",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Actual, Self::Ideal, Self::Adjusted].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WeightEntry {
    pub id: crate::ids::RecordId,
    pub patient_id: PatientId,
    pub weight_kg: Kilograms,
    pub measured_on: Date,
    pub weight_type: WeightType,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWeight {
    pub weight_kg: Kilograms,
    pub measured_on: Date,
    #[serde(default = "default_weight_type")]
    pub weight_type: WeightType,
}

fn default_weight_type() -> WeightType {
    WeightType::Actual
}

impl NewWeight {
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        let mut v = Validator::new();
        // Entry plausibility, not a clinical rule: catches lb-for-kg and typos.
        let ranges = crate::plausible::ranges();
        plausible::check(&mut v, "weight_kg", ranges.body_weight(self.weight_kg));
        plausible::check(&mut v, "measured_on", ranges.past_date(self.measured_on, today));
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn sample() -> NewPatient {
        NewPatient {
            site_id: SiteId(1),
            mrn: "MRN-001".into(),
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            date_of_birth: date!(1980 - 02 - 29),
            sex: Sex::Female,
            phone: None,
            email: Some("ada@example.org".into()),
            indication: Indication::Depression,
            diagnoses: vec!["F33.2".into(), "F41.1".into()],
            referring_clinician: None,
        }
    }

    #[test]
    fn valid_patient_passes() {
        sample().validate(date!(2026 - 11 - 27)).unwrap();
    }

    #[test]
    fn every_bad_field_is_reported() {
        let mut p = sample();
        p.mrn = "".into();
        p.date_of_birth = date!(2030 - 01 - 01);
        p.diagnoses = vec!["depression".into()];
        let Err(DomainError::Invalid(errs)) = p.validate(date!(2026 - 11 - 27)) else { panic!() };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["mrn", "date_of_birth", "diagnoses[0]"]);
    }

    #[test]
    fn icd10_shapes() {
        for ok in ["F32", "F33.2", "F43.10", "G89.29"] {
            assert!(is_icd10(ok), "{ok}");
        }
        for bad in ["", "33.2", "F3", "F33.", "f33.2", "F33.12345"] {
            assert!(!is_icd10(bad), "{bad}");
        }
    }

    #[test]
    fn age_counts_birthdays() {
        let p = Patient {
            id: PatientId(1),
            site_id: SiteId(1),
            mrn: "x".into(),
            given_name: "a".into(),
            family_name: "b".into(),
            date_of_birth: date!(1990 - 06 - 15),
            sex: Sex::Male,
            phone: None,
            email: None,
            indication: Indication::Depression,
            diagnoses: vec![],
            referring_clinician: None,
            latest_weight_kg: None,
        };
        assert_eq!(p.age_on(date!(2026 - 06 - 14)), 35);
        assert_eq!(p.age_on(date!(2026 - 06 - 15)), 36);
    }
}
