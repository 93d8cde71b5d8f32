//! What goes into building one patient's model: the covariates, and the choices a
//! clinician may make (which effect-site constant, absorption values the reference
//! lacks, the solver).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{PkError, invalid};
use crate::model::Sourced;

/// Extravascular routes, each with bioavailability, absorption rate and lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AbsorptionRoute {
    Intramuscular,
    Oral,
    Sublingual,
    Intranasal,
}

impl AbsorptionRoute {
    pub const ALL: [AbsorptionRoute; 4] = [
        AbsorptionRoute::Intramuscular,
        AbsorptionRoute::Oral,
        AbsorptionRoute::Sublingual,
        AbsorptionRoute::Intranasal,
    ];

    /// The key used in model files.
    pub fn key(self) -> &'static str {
        match self {
            AbsorptionRoute::Intramuscular => "im",
            AbsorptionRoute::Oral => "oral",
            AbsorptionRoute::Sublingual => "sublingual",
            AbsorptionRoute::Intranasal => "intranasal",
        }
    }
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for AbsorptionRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AbsorptionRoute::Intramuscular => "IM injection",
            AbsorptionRoute::Oral => "mouth (oral)",
            AbsorptionRoute::Sublingual => "sublingual",
            AbsorptionRoute::Intranasal => "intranasal",
        })
    }
}

/// Ancestry as the esketamine model uses it (Perez-Ruixo 2021 covariates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ancestry {
    /// The model's reference group.
    #[default]
    NotAsian,
    AsianNotJapanese,
    Japanese,
}

/// The covariates the models use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    pub weight_kg: f64,
    pub age_years: Option<f64>,
    #[serde(default)]
    pub ancestry: Ancestry,
}

impl Patient {
    pub fn new(weight_kg: f64) -> Self {
        Self { weight_kg, age_years: None, ancestry: Ancestry::NotAsian }
    }
    pub fn with_age(mut self, years: f64) -> Self {
        self.age_years = Some(years);
        self
    }
    pub fn with_ancestry(mut self, ancestry: Ancestry) -> Self {
        self.ancestry = ancestry;
        self
    }
    pub(crate) fn validate(&self) -> Result<(), PkError> {
        if !(self.weight_kg.is_finite() && self.weight_kg > 0.0 && self.weight_kg <= 400.0) {
            return Err(invalid(format!("weight must be between 0 and 400 kg, got {} kg", self.weight_kg)));
        }
        if let Some(age) = self.age_years
            && !(age.is_finite() && (0.0..=130.0).contains(&age))
        {
            return Err(invalid(format!("age must be between 0 and 130 years, got {age}")));
        }
        Ok(())
    }
}

/// Which effect-site rate constant to use.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum EffectSite {
    /// The model file's default, if it has one (no effect site otherwise).
    #[default]
    ModelDefault,
    /// One of the model's [`crate::Ke0Choice`]s by id, e.g. `"opentiva"`.
    Named(String),
    /// A ke0 the caller supplies (1/min).
    Ke0PerMin(f64),
    /// Solve ke0 so that the effect site peaks this many minutes after an IV bolus
    /// (pk-reference §4.5, as opentiva and stanpumpR do).
    TimeToPeakMin(f64),
    Off,
}

/// An absorption rate constant, given directly or as the observed time to peak plasma
/// concentration after a dose (from which ka is solved for this model).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AbsorptionRate {
    PerMin(f64),
    TimeToPeakMin(f64),
}

/// What the caller supplies for an extravascular route; `None` keeps the model's value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AbsorptionOverride {
    pub bioavailability: Option<f64>,
    pub ka: Option<AbsorptionRate>,
    pub lag_min: Option<f64>,
}

/// Which exact solver to use. `Auto` uses the per-exponential recursion for mammillary
/// models and the matrix exponential otherwise; forcing the matrix exponential is for
/// cross-checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Solver {
    #[default]
    Auto,
    MatrixExponential,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub effect_site: EffectSite,
    pub absorption: BTreeMap<AbsorptionRoute, AbsorptionOverride>,
    pub solver: Solver,
}

impl Options {
    pub fn with_effect_site(mut self, effect_site: EffectSite) -> Self {
        self.effect_site = effect_site;
        self
    }
    pub fn with_absorption(mut self, route: AbsorptionRoute, o: AbsorptionOverride) -> Self {
        self.absorption.insert(route, o);
        self
    }
    pub fn with_solver(mut self, solver: Solver) -> Self {
        self.solver = solver;
        self
    }
}

/// Options with every derived value solved: ke0 and ka as numbers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    pub ke0: Option<Sourced<f64>>,
    pub absorption: BTreeMap<AbsorptionRoute, ResolvedAbsorption>,
    pub solver: Solver,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ResolvedAbsorption {
    pub bioavailability: Option<f64>,
    pub ka_per_min: Option<f64>,
    pub lag_min: Option<f64>,
}
