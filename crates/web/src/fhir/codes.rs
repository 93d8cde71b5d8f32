//! The codes put on emitted resources, read from `data/fhir/codes.toml` (clinical-reference §6,
//! §1.12) and the instruments' own LOINC codes (`data/instruments/*.toml`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
pub const NDC: &str = "http://hl7.org/fhir/sid/ndc";
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

#[derive(Debug, Deserialize)]
pub struct Codes {
    pub local_observation_system: String,
    pub local_medication_system: String,
    pub identifier_mrn_system: String,
    pub questionnaire_base: String,
    pub vital_signs: VitalSigns,
    pub moaas: Local,
    pub score: Category,
    pub medications: BTreeMap<String, Medication>,
    pub routes: BTreeMap<String, String>,
    pub documents: Documents,
}

/// `DocumentReference.type` per document Keta serves.
#[derive(Debug, Deserialize)]
pub struct Documents {
    pub session_note: Coding,
    pub rems_form: Coding,
}

#[derive(Debug, Deserialize)]
pub struct Coding {
    pub system: String,
    pub code: String,
    pub display: String,
}

impl Documents {
    pub fn of(&self, kind: keta_store::fhir::DocumentKind) -> &Coding {
        match kind {
            keta_store::fhir::DocumentKind::SessionNote => &self.session_note,
            keta_store::fhir::DocumentKind::RemsForm => &self.rems_form,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct VitalSigns {
    pub panel: String,
    pub blood_pressure: BloodPressure,
    pub heart_rate: Quantity,
    pub oxygen_saturation: Quantity,
    pub respiratory_rate: Quantity,
}

#[derive(Debug, Deserialize)]
pub struct BloodPressure {
    pub code: String,
    pub display: String,
    pub systolic: Quantity,
    pub diastolic: Quantity,
}

#[derive(Debug, Deserialize)]
pub struct Quantity {
    pub code: String,
    pub display: String,
    pub unit: String,
    pub unit_display: String,
}

#[derive(Debug, Deserialize)]
pub struct Local {
    pub code: String,
    pub display: String,
    pub category: String,
}

#[derive(Debug, Deserialize)]
pub struct Category {
    pub category: String,
}

#[derive(Debug, Deserialize)]
pub struct Medication {
    pub display: String,
    /// Empty until the clinic confirms an RxNorm code (the reference gives none).
    pub rxnorm: String,
}

pub fn codes() -> &'static Codes {
    static CODES: OnceLock<Codes> = OnceLock::new();
    CODES.get_or_init(|| {
        toml::from_str(include_str!("../../../../data/fhir/codes.toml"))
            .expect("data/fhir/codes.toml is valid (checked by a test)")
    })
}

/// `(system, code, display)` of a questionnaire's total score: the instrument's LOINC total
/// code where verified, else Keta's local `<instrument>-total`.
pub fn score_code(instrument: &str) -> (String, String, String) {
    let inst = keta_domain::instruments::catalog().get(instrument);
    let name = inst.map_or_else(|| instrument.to_string(), |i| i.short_name.clone());
    match inst.and_then(|i| i.loinc.as_ref()).and_then(|l| l.total.clone()) {
        Some(code) => (LOINC.into(), code, format!("{name} total score")),
        None => {
            (codes().local_observation_system.clone(), format!("{instrument}-total"), format!("{name} total score"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_file_loads_with_the_reference_codes() {
        let c = codes();
        assert_eq!(c.vital_signs.panel, "85353-1");
        assert_eq!(c.vital_signs.blood_pressure.systolic.code, "8480-6");
        assert_eq!(c.vital_signs.blood_pressure.diastolic.unit, "mm[Hg]");
        assert_eq!(c.vital_signs.heart_rate.code, "8867-4");
        assert_eq!(c.vital_signs.respiratory_rate.code, "9279-1");
        assert!(c.medications.contains_key("ketamine") && c.medications.contains_key("esketamine"));
    }

    #[test]
    fn scores_use_verified_loinc_and_local_codes_otherwise() {
        assert_eq!(score_code("phq9").1, "44261-6");
        assert_eq!(score_code("phq9").0, LOINC);
        assert_eq!(score_code("gad7").1, "70274-6");
        let (system, code, _) = score_code("cadss");
        assert_eq!((system.as_str(), code.as_str()), (codes().local_observation_system.as_str(), "cadss-total"));
    }
}
