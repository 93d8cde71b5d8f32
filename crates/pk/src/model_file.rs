//! The model file format (`data/pk/*.toml`): what a model file may say, and how a
//! published value with its unit and weight scaling becomes a number in the crate's
//! units (minutes, litres, mg).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::ParameterInfo;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelFile {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) aliases: Vec<String>,
    pub(crate) drug: String,
    pub(crate) population: String,
    pub(crate) structure: Structure,
    pub(crate) citation: String,
    #[serde(default)]
    pub(crate) shared_routes: Option<String>,
    #[serde(default)]
    pub(crate) notes: Vec<String>,
    #[serde(default)]
    pub(crate) validity: Option<Validity>,
    pub(crate) parameters: BTreeMap<String, ParameterSpec>,
    #[serde(default)]
    pub(crate) metabolite: Option<MetaboliteFile>,
    #[serde(default)]
    pub(crate) effect_site: Option<EffectSiteFile>,
    #[serde(default)]
    pub(crate) routes: BTreeMap<String, RouteSpec>,
    #[serde(default)]
    pub(crate) tci: Option<TciFile>,
    #[serde(default)]
    pub(crate) variability: Vec<EtaFile>,
    #[serde(default)]
    pub(crate) covariance: Vec<CovarianceFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum Structure {
    #[serde(rename = "mammillary")]
    Mammillary,
    #[serde(rename = "perez-ruixo-2021")]
    PerezRuixo2021,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Validity {
    pub(crate) age_years: Option<[f64; 2]>,
    pub(crate) weight_kg: Option<[f64; 2]>,
    pub(crate) source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetaboliteFile {
    pub(crate) name: String,
    pub(crate) parameters: BTreeMap<String, ParameterSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EffectSiteFile {
    pub(crate) default: Option<String>,
    pub(crate) ke0: Vec<Ke0File>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ke0File {
    pub(crate) id: String,
    pub(crate) value: f64,
    pub(crate) unit: Unit,
    pub(crate) source: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSpec {
    pub(crate) bioavailability: Option<ParameterSpec>,
    pub(crate) ka: Option<ParameterSpec>,
    pub(crate) lag: Option<ParameterSpec>,
    pub(crate) hint: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TciFile {
    pub(crate) max_rate: ParameterSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EtaFile {
    pub(crate) parameter: String,
    pub(crate) cv_percent: Option<f64>,
    pub(crate) variance: Option<f64>,
    pub(crate) logit_sd: Option<f64>,
    pub(crate) source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CovarianceFile {
    pub(crate) parameters: [String; 2],
    pub(crate) value: f64,
    pub(crate) source: String,
}

/// A published value with its unit, optional weight scaling and source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParameterSpec {
    pub(crate) value: f64,
    pub(crate) unit: Unit,
    #[serde(default)]
    pub(crate) allometry: Option<Allometry>,
    pub(crate) source: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Allometry {
    pub(crate) reference_kg: f64,
    pub(crate) exponent: f64,
}

/// Units as published. Internally: L, L/min, 1/min, min, mg, mg/min.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum Unit {
    #[serde(rename = "L")]
    Litres,
    #[serde(rename = "L/kg")]
    LitresPerKg,
    #[serde(rename = "L/min")]
    LitresPerMin,
    #[serde(rename = "L/h")]
    LitresPerHour,
    #[serde(rename = "L/h/year")]
    LitresPerHourPerYear,
    #[serde(rename = "1/min")]
    PerMin,
    #[serde(rename = "1/h")]
    PerHour,
    #[serde(rename = "min")]
    Minutes,
    #[serde(rename = "h")]
    Hours,
    #[serde(rename = "year")]
    Years,
    #[serde(rename = "mg")]
    Mg,
    #[serde(rename = "mg/kg/min")]
    MgPerKgPerMin,
    #[serde(rename = "fraction")]
    Fraction,
    #[serde(rename = "factor")]
    Factor,
}

impl Unit {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Unit::Litres => "L",
            Unit::LitresPerKg => "L/kg",
            Unit::LitresPerMin => "L/min",
            Unit::LitresPerHour => "L/h",
            Unit::LitresPerHourPerYear => "L/h/year",
            Unit::PerMin => "1/min",
            Unit::PerHour => "1/h",
            Unit::Minutes => "min",
            Unit::Hours => "h",
            Unit::Years => "year",
            Unit::Mg => "mg",
            Unit::MgPerKgPerMin => "mg/kg/min",
            Unit::Fraction => "fraction",
            Unit::Factor => "factor",
        }
    }
}

impl ParameterSpec {
    /// The value in the crate's units for a patient of `weight_kg`.
    pub(crate) fn internal(&self, weight_kg: f64) -> f64 {
        let v = self.value;
        let base = match self.unit {
            Unit::LitresPerKg | Unit::MgPerKgPerMin => v * weight_kg,
            Unit::LitresPerHour | Unit::PerHour | Unit::LitresPerHourPerYear => v / 60.0,
            Unit::Hours => v * 60.0,
            Unit::Litres
            | Unit::LitresPerMin
            | Unit::PerMin
            | Unit::Minutes
            | Unit::Years
            | Unit::Mg
            | Unit::Fraction
            | Unit::Factor => v,
        };
        base * self.allometry.map_or(1.0, |a| (weight_kg / a.reference_kg).powf(a.exponent))
    }

    pub(crate) fn info(&self, name: &str) -> ParameterInfo {
        let mut unit = self.unit.label().to_string();
        if let Some(a) = self.allometry {
            unit = format!("{unit} × (weight/{} kg)^{}", a.reference_kg, a.exponent);
        }
        ParameterInfo { name: name.to_string(), value: self.value, unit, source: self.source.clone() }
    }
}
