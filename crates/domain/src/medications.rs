//! A patient's current medications, allergies and pregnancy status, and what they mean for
//! eligibility.
//!
//! Why data: which drug belongs to which interacting class (benzodiazepines, opioids, other
//! CNS depressants, psychostimulants, MAOIs, theophylline, sympathomimetics) and which
//! allergy means hypersensitivity to ketamine is clinic content. It lives in
//! `data/rules/medication-classes.toml`; each class names the contraindications.toml rules
//! it raises and the clinical-reference section they come from, and the drug lists are
//! marked as the clinic's for the medical director to confirm. Loading checks every raised
//! code exists, so a typo fails the tests rather than silently raising nothing.
//!
//! A drug the data does not recognise raises nothing; the eligibility result lists it as
//! "not classified" so nobody mistakes it for checked.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::alerts::parse_rules_toml;
use crate::error::{DomainError, Validator};
use crate::ids::{PatientId, RecordId, SessionId};
use crate::plausible::Quantity;
use crate::units::Milligrams;

const CLASSES_TOML: &str = include_str!("../../../data/rules/medication-classes.toml");

/// Data-entry limits (not clinical rules).
const MAX_NAME_LEN: usize = 100;
const MAX_TEXT_LEN: usize = 500;

// =======================================================================================
// Drug classes (data)
// =======================================================================================

/// One class of drugs and the eligibility rules it raises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrugClass {
    pub code: String,
    pub label: String,
    /// contraindications.toml item codes this class raises.
    pub raises: Vec<String>,
    /// Where the rule comes from (clinical-reference section).
    pub source: String,
    /// Where the list of names comes from.
    pub names_source: String,
    /// Generic and brand names, lower case.
    pub names: Vec<String>,
}

impl DrugClass {
    /// Whether one of the words of `name` is one of this class's names.
    fn matches(&self, name: &str) -> bool {
        let lower = name.to_lowercase();
        // Whole names first ("theo-24"), then each word ("adderall xr", "dextroamphetamine-amphetamine").
        self.names.iter().any(|n| *n == lower.trim())
            || lower
                .split(|c: char| !(c.is_alphanumeric()))
                .filter(|w| !w.is_empty())
                .any(|w| self.names.iter().any(|n| n == w))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassesFile {
    classes: Vec<DrugClass>,
    allergy_classes: Vec<DrugClass>,
}

fn classes_file() -> &'static ClassesFile {
    static DATA: OnceLock<ClassesFile> = OnceLock::new();
    DATA.get_or_init(|| {
        load_classes(CLASSES_TOML)
            .unwrap_or_else(|e| panic!("embedded data/rules/medication-classes.toml is invalid: {e}"))
    })
}

fn load_classes(s: &str) -> Result<ClassesFile, DomainError> {
    let f: ClassesFile = parse_rules_toml(s, "medication classes")?;
    let known: BTreeSet<&str> = crate::eligibility::contraindication_items().iter().map(|i| i.code.as_str()).collect();
    let mut v = Validator::new();
    let mut codes = BTreeSet::new();
    for (key, list) in [("classes", &f.classes), ("allergy_classes", &f.allergy_classes)] {
        for (i, c) in list.iter().enumerate() {
            let at = format!("{key}[{i}]");
            v.check(codes.insert(c.code.as_str()), &format!("{at}.code"), format!("\"{}\" appears twice", c.code));
            v.check(!c.label.trim().is_empty(), &format!("{at}.label"), "give the label staff will see");
            v.check(!c.source.trim().is_empty(), &format!("{at}.source"), "give the source");
            v.check(!c.names_source.trim().is_empty(), &format!("{at}.names_source"), "say where the names come from");
            v.check(!c.names.is_empty(), &format!("{at}.names"), "list at least one name");
            for (j, n) in c.names.iter().enumerate() {
                v.check(
                    !n.trim().is_empty() && *n == n.to_lowercase(),
                    &format!("{at}.names[{j}]"),
                    "write names in lower case",
                );
            }
            v.check(!c.raises.is_empty(), &format!("{at}.raises"), "name at least one rule it raises");
            for (j, r) in c.raises.iter().enumerate() {
                v.check(
                    known.contains(r.as_str()),
                    &format!("{at}.raises[{j}]"),
                    format!("\"{r}\" is not an item code in contraindications.toml"),
                );
            }
        }
    }
    v.finish()?;
    Ok(f)
}

/// The medication classes in force.
pub fn medication_classes() -> &'static [DrugClass] {
    &classes_file().classes
}

/// The allergy classes in force.
pub fn allergy_classes() -> &'static [DrugClass] {
    &classes_file().allergy_classes
}

/// The classes a medication belongs to (empty: not classified).
pub fn classify_medication(drug: &str) -> Vec<&'static DrugClass> {
    medication_classes().iter().filter(|c| c.matches(drug)).collect()
}

/// The classes an allergy substance belongs to (empty: raises nothing).
pub fn classify_allergy(substance: &str) -> Vec<&'static DrugClass> {
    allergy_classes().iter().filter(|c| c.matches(substance)).collect()
}

/// A class a record matched, as shown beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClassMatch {
    pub code: String,
    pub label: String,
    pub raises: Vec<String>,
    pub source: String,
}

fn matches_of(classes: Vec<&DrugClass>) -> Vec<ClassMatch> {
    classes
        .into_iter()
        .map(|c| ClassMatch {
            code: c.code.clone(),
            label: c.label.clone(),
            raises: c.raises.clone(),
            source: c.source.clone(),
        })
        .collect()
}

// =======================================================================================
// Medications
// =======================================================================================

/// A medication entered at intake or at a session review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMedication {
    /// Generic or brand name, e.g. `lorazepam`.
    pub drug: String,
    /// The dose as written, e.g. `1 mg at night as needed`.
    #[serde(default)]
    pub dose: Option<String>,
    /// The total daily dose where it is known.
    #[serde(default)]
    pub daily_dose_mg: Option<Milligrams>,
    #[serde(default)]
    pub started_on: Option<Date>,
}

impl NewMedication {
    /// `today` is the site's date.
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        let mut v = Validator::new();
        v.check(valid_name(&self.drug), "drug", format!("name the medication (1-{MAX_NAME_LEN} characters)"));
        if let Some(d) = &self.dose {
            v.check(
                valid_text(d, MAX_NAME_LEN),
                "dose",
                format!("write the dose in at most {MAX_NAME_LEN} characters, or leave it empty"),
            );
        }
        if let Some(mg) = self.daily_dose_mg {
            crate::plausible::check(
                &mut v,
                "daily_dose_mg",
                crate::plausible::ranges().quantity(Quantity::Mg, mg.0, "the daily dose (or leave it empty)"),
            );
        }
        if let Some(s) = self.started_on {
            v.check(s <= today, "started_on", "the start date cannot be in the future");
        }
        v.finish()
    }
}

/// A stored medication. `stopped_on` empty: current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Medication {
    pub id: RecordId,
    pub patient_id: PatientId,
    pub drug: String,
    pub dose: Option<String>,
    pub daily_dose_mg: Option<Milligrams>,
    pub started_on: Option<Date>,
    pub stopped_on: Option<Date>,
    pub stop_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub recorded_by: String,
    /// The interacting classes the drug belongs to (from medication-classes.toml).
    pub classes: Vec<ClassMatch>,
}

impl Medication {
    /// Builds the stored medication with its classes looked up.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: RecordId,
        patient_id: PatientId,
        new: NewMedication,
        stopped_on: Option<Date>,
        stop_reason: Option<String>,
        recorded_at: OffsetDateTime,
        recorded_by: String,
    ) -> Self {
        let classes = matches_of(classify_medication(&new.drug));
        Self {
            id,
            patient_id,
            drug: new.drug.trim().to_string(),
            dose: new.dose.map(|d| d.trim().to_string()).filter(|d| !d.is_empty()),
            daily_dose_mg: new.daily_dose_mg,
            started_on: new.started_on,
            stopped_on,
            stop_reason,
            recorded_at,
            recorded_by,
            classes,
        }
    }

    /// Taken on `on`: not stopped, or stopped later.
    pub fn is_current(&self, on: Date) -> bool {
        self.stopped_on.is_none_or(|s| s > on)
    }

    /// The drug with its dose, for lists.
    pub fn describe(&self) -> String {
        match (&self.dose, self.daily_dose_mg) {
            (Some(d), _) => format!("{} {d}", self.drug),
            (None, Some(mg)) => format!("{} {} mg/day", self.drug, mg.0),
            (None, None) => self.drug.clone(),
        }
    }
}

/// Stopping a medication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopMedication {
    pub stopped_on: Date,
    #[serde(default)]
    pub reason: Option<String>,
}

impl StopMedication {
    pub fn validate(&self, med: &Medication, today: Date) -> Result<(), DomainError> {
        if let Some(s) = med.stopped_on {
            return Err(DomainError::Conflict(format!("{} was already stopped on {s}", med.drug)));
        }
        let mut v = Validator::new();
        v.check(self.stopped_on <= today, "stopped_on", "the stop date cannot be in the future");
        if let Some(start) = med.started_on {
            v.check(
                self.stopped_on >= start,
                "stopped_on",
                format!("the stop date cannot be before the start date ({start})"),
            );
        }
        if let Some(r) = &self.reason {
            v.check(valid_text(r, MAX_TEXT_LEN), "reason", format!("keep the reason under {MAX_TEXT_LEN} characters"));
        }
        v.finish()
    }
}

// =======================================================================================
// Allergies
// =======================================================================================

/// How severe the reaction was (the FHIR AllergyIntolerance reaction severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllergySeverity {
    Mild,
    Moderate,
    Severe,
    Unknown,
}

impl AllergySeverity {
    pub const ALL: [AllergySeverity; 4] = [Self::Mild, Self::Moderate, Self::Severe, Self::Unknown];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mild => "mild",
            Self::Moderate => "moderate",
            Self::Severe => "severe",
            Self::Unknown => "unknown",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Mild => "Mild",
            Self::Moderate => "Moderate",
            Self::Severe => "Severe",
            Self::Unknown => "Not known",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAllergy {
    /// What the patient reacts to, e.g. `ketamine`, `penicillin`, `latex`.
    pub substance: String,
    /// What happened, e.g. `rash`, `anaphylaxis`.
    #[serde(default)]
    pub reaction: Option<String>,
    pub severity: AllergySeverity,
}

impl NewAllergy {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        v.check(valid_name(&self.substance), "substance", format!("name the substance (1-{MAX_NAME_LEN} characters)"));
        if let Some(r) = &self.reaction {
            v.check(
                valid_text(r, MAX_NAME_LEN * 2),
                "reaction",
                "describe the reaction in at most 200 characters, or leave it empty",
            );
        }
        v.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Allergy {
    pub id: RecordId,
    pub patient_id: PatientId,
    pub substance: String,
    pub reaction: Option<String>,
    pub severity: AllergySeverity,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub recorded_by: String,
    /// The rules the substance raises (e.g. hypersensitivity to ketamine).
    pub classes: Vec<ClassMatch>,
}

impl Allergy {
    pub fn new(
        id: RecordId,
        patient_id: PatientId,
        new: NewAllergy,
        recorded_at: OffsetDateTime,
        recorded_by: String,
    ) -> Self {
        Self {
            id,
            patient_id,
            classes: matches_of(classify_allergy(&new.substance)),
            substance: new.substance.trim().to_string(),
            reaction: new.reaction.map(|r| r.trim().to_string()).filter(|r| !r.is_empty()),
            severity: new.severity,
            recorded_at,
            recorded_by,
        }
    }
}

// =======================================================================================
// Pregnancy status
// =======================================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PregnancyStatus {
    Pregnant,
    Breastfeeding,
    /// E.g. a negative test on `recorded_on`.
    NotPregnant,
    /// Pregnancy is not possible for this patient.
    NotApplicable,
}

impl PregnancyStatus {
    pub const ALL: [PregnancyStatus; 4] = [Self::Pregnant, Self::Breastfeeding, Self::NotPregnant, Self::NotApplicable];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pregnant => "pregnant",
            Self::Breastfeeding => "breastfeeding",
            Self::NotPregnant => "not_pregnant",
            Self::NotApplicable => "not_applicable",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Pregnant => "Pregnant",
            Self::Breastfeeding => "Breastfeeding",
            Self::NotPregnant => "Not pregnant",
            Self::NotApplicable => "Not applicable",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    /// Raises the §3.2 pregnancy/breastfeeding rule.
    pub fn raises_rule(self) -> bool {
        matches!(self, Self::Pregnant | Self::Breastfeeding)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPregnancyStatus {
    pub status: PregnancyStatus,
    /// When it was established (e.g. the test date).
    pub recorded_on: Date,
    #[serde(default)]
    pub note: Option<String>,
}

impl NewPregnancyStatus {
    pub fn validate(&self, today: Date) -> Result<(), DomainError> {
        let mut v = Validator::new();
        v.check(self.recorded_on <= today, "recorded_on", "the date cannot be in the future");
        if let Some(n) = &self.note {
            v.check(valid_text(n, MAX_TEXT_LEN), "note", format!("keep the note under {MAX_TEXT_LEN} characters"));
        }
        v.finish()
    }
}

/// The latest recorded status counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PregnancyStatusRecord {
    pub id: RecordId,
    pub patient_id: PatientId,
    pub status: PregnancyStatus,
    pub recorded_on: Date,
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub recorded_by: String,
}

// =======================================================================================
// Review at each session
// =======================================================================================

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMedicationReview {
    /// What changed, if anything (changes themselves are recorded on the list).
    #[serde(default)]
    pub note: Option<String>,
}

impl NewMedicationReview {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        if let Some(n) = &self.note {
            v.check(valid_text(n, MAX_TEXT_LEN), "note", format!("keep the note under {MAX_TEXT_LEN} characters"));
        }
        v.finish()
    }
}

/// A clinician confirmed the medication and allergy lists with the patient at a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MedicationReview {
    pub id: RecordId,
    pub session_id: SessionId,
    pub patient_id: PatientId,
    #[serde(with = "time::serde::rfc3339")]
    pub reviewed_at: OffsetDateTime,
    pub reviewed_by: String,
    pub note: Option<String>,
    /// The current medications at the time, as described then.
    pub medications: Vec<String>,
}

fn valid_name(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty() && t.chars().count() <= MAX_NAME_LEN && !t.chars().any(char::is_control)
}

fn valid_text(s: &str, max: usize) -> bool {
    s.chars().count() <= max && !s.chars().any(|c| c.is_control() && c != '\n')
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn embedded_classes_load_and_raise_known_rules() {
        assert!(!medication_classes().is_empty());
        assert!(allergy_classes().iter().any(|c| c.raises == ["hypersensitivity"]));
        // Every class the issue names is mapped to its rule.
        for (drug, rule) in [
            ("lorazepam", "cns_depressants"),
            ("oxycodone", "cns_depressants"),
            ("zolpidem", "cns_depressants"),
            ("methylphenidate", "psychostimulants"),
            ("phenelzine", "maoi"),
            ("theophylline", "theophylline_or_aminophylline"),
            ("pseudoephedrine", "sympathomimetics"),
        ] {
            let raised: Vec<&String> = classify_medication(drug).iter().flat_map(|c| c.raises.iter()).collect();
            assert!(raised.iter().any(|r| *r == rule), "{drug} should raise {rule}, raised {raised:?}");
        }
    }

    #[test]
    fn names_match_by_word_and_case() {
        assert_eq!(classify_medication("Adderall XR")[0].code, "psychostimulants");
        assert_eq!(classify_medication("dextroamphetamine-amphetamine")[0].code, "psychostimulants");
        assert_eq!(classify_medication("  LORAZEPAM ")[0].code, "benzodiazepines");
        assert_eq!(classify_medication("Theo-24")[0].code, "theophylline");
        assert!(classify_medication("sertraline").is_empty());
        // A name inside another word is not a match ("codeine" is not in "codeinex").
        assert!(classify_medication("codeinex").is_empty());
        assert_eq!(classify_allergy("Ketamine")[0].raises, ["hypersensitivity"]);
        assert!(classify_allergy("penicillin").is_empty());
    }

    #[test]
    fn a_raised_code_that_is_not_a_rule_fails_loading() {
        let bad = CLASSES_TOML.replacen("raises = [\"maoi\"]", "raises = [\"mao_inhibitors\"]", 1);
        let Err(DomainError::Invalid(e)) = load_classes(&bad) else { panic!("expected an error") };
        assert!(e[0].field.ends_with(".raises[0]"), "{e:?}");
        assert!(e[0].message.contains("mao_inhibitors"), "{e:?}");
    }

    fn med(drug: &str, started: Option<Date>) -> Medication {
        Medication::new(
            RecordId(1),
            PatientId(1),
            NewMedication { drug: drug.into(), dose: None, daily_dose_mg: None, started_on: started },
            None,
            None,
            datetime!(2026-11-02 14:00 UTC),
            "rn".into(),
        )
    }

    #[test]
    fn medication_validation_names_each_field() {
        let today = date!(2026 - 11 - 02);
        let bad = NewMedication {
            drug: " ".into(),
            dose: Some("x".repeat(101)),
            daily_dose_mg: Some(Milligrams(-1.0)),
            started_on: Some(date!(2026 - 11 - 03)),
        };
        let Err(DomainError::Invalid(e)) = bad.validate(today) else { panic!() };
        let fields: Vec<&str> = e.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["drug", "dose", "daily_dose_mg", "started_on"]);
    }

    #[test]
    fn stopping_checks_dates_and_twice() {
        let today = date!(2026 - 11 - 02);
        let m = med("lorazepam", Some(date!(2026 - 10 - 01)));
        assert!(m.is_current(today));
        let early = StopMedication { stopped_on: date!(2026 - 09 - 30), reason: None };
        let Err(DomainError::Invalid(e)) = early.validate(&m, today) else { panic!() };
        assert!(e[0].message.contains("before the start date"), "{e:?}");
        let ok = StopMedication { stopped_on: today, reason: Some("tapered".into()) };
        assert!(ok.validate(&m, today).is_ok());
        let stopped = Medication { stopped_on: Some(today), ..m };
        assert!(!stopped.is_current(today));
        assert!(matches!(ok.validate(&stopped, today), Err(DomainError::Conflict(_))));
    }
}
