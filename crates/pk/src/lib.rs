//! Keta's pharmacokinetics: what a ketamine or esketamine regimen does to plasma and
//! effect-site concentration, for one patient or a population.
//!
//! Clinics dose ketamine by weight and habit; this crate shows the concentration curve a
//! regimen produces under a named, cited population model, the band a population of
//! patients would fall in, when the concentration will be below a level, and what a
//! target-controlled pump would do.
//!
//! Pure: no I/O, no clock. Models are data (`data/pk/*.toml`, embedded at compile time)
//! with the source of every number, per `pk-reference.md`. Solutions are exact for
//! piecewise-constant input: per-exponential recursion for mammillary models
//! ([`mammillary`]), the matrix exponential for the rest (`linear.rs`), never a
//! step-wise ODE integrator.
//!
//! Units: minutes, mg and litres inside; concentrations out in ng/mL
//! (1 mg/L = 1 µg/mL = 1000 ng/mL); see [`units`].
//!
//! ```
//! use keta_pk::{Model, Options, Patient, Regimen, grid, simulate};
//!
//! let model = Model::named("domino")?;
//! let patient = Patient::new(70.0);
//! let ind = model.individual(&patient, &Options::default())?;
//! let regimen: Regimen = "0.5 mg/kg over 40 min".parse()?;
//! let profile = simulate(&ind, &regimen, &grid(24.0 * 60.0, 1.0))?;
//! let peak = profile.plasma_peak().unwrap();
//! assert_eq!(peak.t_min, 40.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod decrement;
pub mod dosing;
pub mod effect;
pub mod error;
pub mod individual;
mod linear;
pub mod mammillary;
pub mod model;
mod model_file;
pub mod options;
mod perez_ruixo;
pub mod population;
pub mod regimen;
pub mod tci;
pub mod units;

pub use decrement::{Decrement, Site, decrement_time};
pub use dosing::{Profile, Sample, grid, simulate};
pub use effect::{ka_for_time_to_peak, ke0_for_time_to_peak, time_to_peak_effect_min};
pub use error::PkError;
pub use individual::{Concentrations, Individual};
pub use mammillary::{Mammillary, cubic_roots};
pub use model::{Ke0Choice, Model, ParameterInfo, Sourced};
pub use options::{
    AbsorptionOverride, AbsorptionRate, AbsorptionRoute, Ancestry, EffectSite, Options, Patient, Solver,
};
pub use population::{
    Band, Covariance, Eta, EtaScale, PopulationProfile, PopulationSettings, Variability, simulate_population,
};
pub use regimen::{Amount, Dose, Regimen, RegimenError, Route};
pub use tci::{RateSegment, TargetStep, TciPlan, TciSettings, TciSite, TciUpdate, plan_tci};
