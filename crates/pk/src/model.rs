//! Models as data, with the source of every number.
//!
//! Each population model is a TOML file under `data/pk/` (embedded at compile time, so a
//! build is self-contained). A parameter is stored as published, with its unit and
//! where it was read (`source`); conversion to the crate's units (minutes, litres) and
//! weight scaling happen here, once. What the reference does not give is absent from
//! the file, and the code asks the caller for it instead of guessing: absorption rate
//! constants of the racemic models, most effect-site rate constants, variability where
//! none is published.
//!
//! The structure of a model is code: `mammillary` (1–3 compartments, optionally with a
//! metabolite fed by the parent's clearance) is generic; `perez-ruixo-2021` has its own
//! builder in `perez_ruixo.rs`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Serialize;

use crate::effect;
use crate::error::{PkError, invalid};
use crate::individual::{Engine, Individual, RoutePlan, RouteTable};
use crate::linear::LinearSystem;
use crate::mammillary::{ExpEngine, Mammillary, MetaboliteLink};
use crate::model_file::{ModelFile, ParameterSpec, RouteSpec, Structure, Unit};
use crate::options::{
    AbsorptionRate, AbsorptionRoute, EffectSite, Options, Patient, Resolved, ResolvedAbsorption, Solver,
};
use crate::population::{EtaScale, Variability};

const MODEL_FILES: &[(&str, &str)] = &[
    ("domino.toml", include_str!("../../../data/pk/domino.toml")),
    ("clements-250.toml", include_str!("../../../data/pk/clements-250.toml")),
    ("hijazi.toml", include_str!("../../../data/pk/hijazi.toml")),
    ("herd.toml", include_str!("../../../data/pk/herd.toml")),
    ("hornik.toml", include_str!("../../../data/pk/hornik.toml")),
    ("fanta-otto.toml", include_str!("../../../data/pk/fanta-otto.toml")),
    ("perez-ruixo.toml", include_str!("../../../data/pk/perez-ruixo.toml")),
];
const RACEMIC_ROUTES: (&str, &str) = ("routes-racemic.toml", include_str!("../../../data/pk/routes-racemic.toml"));

// ---------------------------------------------------------------------------------
// Public descriptions.

/// A published parameter as it appears in the model file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParameterInfo {
    pub name: String,
    pub value: f64,
    /// As published, with any weight scaling spelled out.
    pub unit: String,
    pub source: String,
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: String,
}

/// One published or coded effect-site rate constant for a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ke0Choice {
    pub id: String,
    pub ke0_per_min: f64,
    pub source: String,
    pub is_default: bool,
}

/// Between-subject deviations for one virtual patient: (parameter, scale, eta).
pub(crate) type Etas = [(String, EtaScale, f64)];

// ---------------------------------------------------------------------------------
// The model.

/// A population PK model from the embedded catalogue.
#[derive(Debug, Clone)]
pub struct Model {
    file: ModelFile,
    routes: BTreeMap<AbsorptionRoute, RouteSpec>,
    variability: Option<Variability>,
}

fn parse_toml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, PkError> {
    toml::from_str(text).map_err(|e| PkError::Data { file: file.to_string(), message: e.to_string() })
}

impl Model {
    fn load(file_name: &str, text: &str) -> Result<Model, PkError> {
        let data_err = |message: String| PkError::Data { file: file_name.to_string(), message };
        let file: ModelFile = parse_toml(file_name, text)?;
        let mut routes = BTreeMap::new();
        let mut add = |table: BTreeMap<String, RouteSpec>, from: &str| -> Result<(), PkError> {
            for (key, spec) in table {
                let route = AbsorptionRoute::ALL
                    .into_iter()
                    .find(|r| r.key() == key)
                    .ok_or_else(|| data_err(format!("{from}: unknown route '{key}'")))?;
                routes.insert(route, spec);
            }
            Ok(())
        };
        match file.shared_routes.as_deref() {
            None => {}
            Some("racemic") => add(parse_toml(RACEMIC_ROUTES.0, RACEMIC_ROUTES.1)?, RACEMIC_ROUTES.0)?,
            Some(other) => return Err(data_err(format!("unknown shared route table '{other}'"))),
        }
        add(file.routes.clone(), file_name)?;

        let known = |name: &str| match name.strip_prefix("metabolite.") {
            Some(m) => file.metabolite.as_ref().is_some_and(|f| f.parameters.contains_key(m)),
            None => file.parameters.contains_key(name),
        };
        let mut etas = Vec::new();
        for e in &file.variability {
            if !known(&e.parameter) {
                return Err(data_err(format!("variability on unknown parameter '{}'", e.parameter)));
            }
            let (scale, variance) = match (e.cv_percent, e.variance, e.logit_sd) {
                (Some(cv), None, None) => (EtaScale::LogNormal, (1.0 + (cv / 100.0).powi(2)).ln()),
                (None, Some(v), None) => (EtaScale::LogNormal, v),
                (None, None, Some(sd)) => (EtaScale::Logit, sd * sd),
                _ => {
                    return Err(data_err(format!(
                        "variability on '{}': give exactly one of cv_percent, variance, logit_sd",
                        e.parameter
                    )));
                }
            };
            etas.push(crate::population::Eta {
                parameter: e.parameter.clone(),
                scale,
                variance,
                source: e.source.clone(),
            });
        }
        let covariances: Vec<_> = file
            .covariance
            .iter()
            .map(|c| crate::population::Covariance {
                parameters: c.parameters.clone(),
                value: c.value,
                source: c.source.clone(),
            })
            .collect();
        let variability = if etas.is_empty() {
            None
        } else {
            Some(Variability::new(etas, covariances).map_err(|e| data_err(e.to_string()))?)
        };
        if let Some(es) = &file.effect_site {
            if es.ke0.iter().any(|k| !matches!(k.unit, Unit::PerMin) || k.value <= 0.0) {
                return Err(data_err("ke0 values must be positive, in 1/min".into()));
            }
            if let Some(d) = &es.default
                && !es.ke0.iter().any(|k| &k.id == d)
            {
                return Err(data_err(format!("default ke0 '{d}' is not listed")));
            }
        }
        Ok(Model { file, routes, variability })
    }

    /// Every model shipped with Keta.
    pub fn catalogue() -> &'static [Model] {
        static CATALOGUE: OnceLock<Vec<Model>> = OnceLock::new();
        CATALOGUE.get_or_init(|| {
            MODEL_FILES
                .iter()
                // The tests load every file; a broken one is a build defect.
                .map(|(name, text)| Model::load(name, text).unwrap_or_else(|e| panic!("{e}")))
                .collect()
        })
    }

    /// A model by id or alias, case-insensitively (`domino`, `perez-ruixo`, ...).
    pub fn named(name: &str) -> Result<&'static Model, PkError> {
        let wanted = name.trim().to_ascii_lowercase().replace([' ', '_'], "-");
        Self::catalogue().iter().find(|m| m.file.id == wanted || m.file.aliases.contains(&wanted)).ok_or_else(|| {
            PkError::UnknownModel {
                name: name.to_string(),
                known: Self::catalogue().iter().map(|m| m.file.id.as_str()).collect::<Vec<_>>().join(", "),
            }
        })
    }

    pub fn id(&self) -> &str {
        &self.file.id
    }
    pub fn name(&self) -> &str {
        &self.file.name
    }
    pub fn drug(&self) -> &str {
        &self.file.drug
    }
    pub fn population(&self) -> &str {
        &self.file.population
    }
    pub fn citation(&self) -> &str {
        &self.file.citation
    }
    /// Caveats a screen should show beside the curve.
    pub fn notes(&self) -> &[String] {
        &self.file.notes
    }
    /// Name of the metabolite the model predicts, if any.
    pub fn metabolite(&self) -> Option<&str> {
        match self.file.structure {
            Structure::PerezRuixo2021 => Some("noresketamine"),
            Structure::Mammillary => self.file.metabolite.as_ref().map(|m| m.name.as_str()),
        }
    }

    /// Every stored parameter as published, with its source.
    pub fn parameters(&self) -> Vec<ParameterInfo> {
        let mut out: Vec<_> = self.file.parameters.iter().map(|(k, p)| p.info(k)).collect();
        if let Some(m) = &self.file.metabolite {
            out.extend(m.parameters.iter().map(|(k, p)| p.info(&format!("metabolite.{k}"))));
        }
        for (route, spec) in &self.routes {
            for (what, p) in [("bioavailability", &spec.bioavailability), ("ka", &spec.ka), ("lag", &spec.lag)] {
                if let Some(p) = p {
                    out.push(p.info(&format!("{}.{what}", route.key())));
                }
            }
        }
        if let Some(t) = &self.file.tci {
            out.push(t.max_rate.info("tci.max_rate"));
        }
        out
    }

    /// The effect-site rate constants on record for this model.
    pub fn ke0_choices(&self) -> Vec<Ke0Choice> {
        let Some(es) = &self.file.effect_site else { return Vec::new() };
        es.ke0
            .iter()
            .map(|k| Ke0Choice {
                id: k.id.clone(),
                ke0_per_min: k.value,
                source: k.source.clone(),
                is_default: es.default.as_deref() == Some(k.id.as_str()),
            })
            .collect()
    }

    /// Between-subject variability as published, if the reference has any.
    pub fn published_variability(&self) -> Option<&Variability> {
        self.variability.as_ref()
    }

    /// Where the model's extravascular routes stand: the published bioavailability, or
    /// why a dose by that route needs more from the caller.
    pub fn route_hint(&self, route: AbsorptionRoute) -> Option<&str> {
        self.routes.get(&route).and_then(|r| r.hint.as_deref())
    }

    /// The model's maximum TCI pump rate for a patient, if one is on record.
    pub fn max_tci_rate_mg_per_min(&self, weight_kg: f64) -> Option<Sourced<f64>> {
        self.file
            .tci
            .as_ref()
            .map(|t| Sourced { value: t.max_rate.internal(weight_kg), source: t.max_rate.source.clone() })
    }

    /// The typical patient with these covariates, ready to simulate.
    pub fn individual(&self, patient: &Patient, options: &Options) -> Result<Individual, PkError> {
        let resolved = self.resolve(patient, options)?;
        self.build(patient, &resolved, &[])
    }

    /// Solves the derived choices (ke0 or ka from a time to peak) once, for the typical
    /// patient; a population then reuses them.
    pub(crate) fn resolve(&self, patient: &Patient, options: &Options) -> Result<Resolved, PkError> {
        patient.validate()?;
        let mut resolved = Resolved { ke0: None, absorption: BTreeMap::new(), solver: options.solver };
        for (route, o) in &options.absorption {
            if let Some(f) = o.bioavailability
                && !(f > 0.0 && f <= 1.0)
            {
                return Err(invalid(format!("bioavailability for {route} must be in (0, 1], got {f}")));
            }
            if let Some(lag) = o.lag_min
                && !(lag.is_finite() && lag >= 0.0)
            {
                return Err(invalid(format!("lag time for {route} must be zero or more minutes, got {lag}")));
            }
            let ka = match o.ka {
                None => None,
                Some(AbsorptionRate::PerMin(ka)) if ka.is_finite() && ka > 0.0 => Some(ka),
                Some(AbsorptionRate::PerMin(ka)) => {
                    return Err(invalid(format!("ka for {route} must be positive, got {ka}/min")));
                }
                Some(AbsorptionRate::TimeToPeakMin(t)) => {
                    let lag = o.lag_min.unwrap_or(0.0);
                    Some(effect::ka_for_time_to_peak(self, patient, *route, t - lag)?)
                }
            };
            resolved.absorption.insert(
                *route,
                ResolvedAbsorption { bioavailability: o.bioavailability, ka_per_min: ka, lag_min: o.lag_min },
            );
        }
        resolved.ke0 = match &options.effect_site {
            EffectSite::Off => None,
            EffectSite::ModelDefault => self
                .ke0_choices()
                .into_iter()
                .find(|k| k.is_default)
                .map(|k| Sourced { value: k.ke0_per_min, source: format!("{} (model default '{}')", k.source, k.id) }),
            EffectSite::Named(id) => {
                let choices = self.ke0_choices();
                let k =
                    choices.iter().find(|k| k.id.eq_ignore_ascii_case(id)).ok_or_else(|| PkError::MissingInput {
                        model: self.name().to_string(),
                        message: format!(
                            "no ke0 named '{id}'; on record: {}",
                            if choices.is_empty() {
                                "none".to_string()
                            } else {
                                choices.iter().map(|k| k.id.as_str()).collect::<Vec<_>>().join(", ")
                            }
                        ),
                    })?;
                Some(Sourced { value: k.ke0_per_min, source: k.source.clone() })
            }
            EffectSite::Ke0PerMin(k) if k.is_finite() && *k > 0.0 => {
                Some(Sourced { value: *k, source: "supplied by the caller".into() })
            }
            EffectSite::Ke0PerMin(k) => return Err(invalid(format!("ke0 must be positive, got {k}/min"))),
            EffectSite::TimeToPeakMin(t) => {
                let ke0 = effect::ke0_for_time_to_peak(self, patient, *t)?;
                Some(Sourced {
                    value: ke0,
                    source: format!("solved from a time to peak effect of {t} min after an IV bolus"),
                })
            }
        };
        Ok(resolved)
    }

    fn missing(&self, message: impl Into<String>) -> PkError {
        PkError::MissingInput { model: self.name().to_string(), message: message.into() }
    }

    fn validity_warnings(&self, patient: &Patient) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(v) = &self.file.validity {
            if let (Some([lo, hi]), Some(age)) = (v.age_years, patient.age_years)
                && !(lo..=hi).contains(&age)
            {
                out.push(format!(
                    "{} was built on ages {lo}–{hi} years; this patient is {age} ({})",
                    self.name(),
                    v.source
                ));
            }
            if let Some([lo, hi]) = v.weight_kg
                && !(lo..=hi).contains(&patient.weight_kg)
            {
                out.push(format!(
                    "{} was built on weights {lo}–{hi} kg; this patient weighs {} kg ({})",
                    self.name(),
                    patient.weight_kg,
                    v.source
                ));
            }
        }
        out
    }

    /// One individual: typical values, covariates, then between-subject deviations.
    pub(crate) fn build(&self, patient: &Patient, resolved: &Resolved, etas: &Etas) -> Result<Individual, PkError> {
        let params =
            ParamSet { model: self, specs: &self.file.parameters, prefix: "", weight_kg: patient.weight_kg, etas };
        let ke0 = resolved.ke0.as_ref().map(|k| k.value);
        let mut individual = match self.file.structure {
            Structure::Mammillary => self.build_mammillary(&params, resolved, ke0)?,
            Structure::PerezRuixo2021 => {
                if resolved.absorption.keys().any(|r| matches!(r, AbsorptionRoute::Intranasal | AbsorptionRoute::Oral))
                {
                    return Err(self.missing(
                        "intranasal and oral absorption are part of this model's structure and cannot be overridden",
                    ));
                }
                let age = patient.age_years.ok_or_else(|| {
                    self.missing(
                        "needs the patient's age: hepatic blood flow falls by 2.19 L/h per year above 60 (give --age)",
                    )
                })?;
                crate::perez_ruixo::build(&params, age, patient.ancestry, ke0)?
            }
        };
        individual.model_id = self.file.id.clone();
        individual.model_name = self.file.name.clone();
        individual.weight_kg = patient.weight_kg;
        individual.ke0 = resolved.ke0.clone();
        individual.max_tci_rate = self.max_tci_rate_mg_per_min(patient.weight_kg);
        individual.warnings.extend(self.validity_warnings(patient));
        Ok(individual)
    }

    fn build_mammillary(&self, p: &ParamSet<'_>, resolved: &Resolved, ke0: Option<f64>) -> Result<Individual, PkError> {
        let parent = mammillary_from(p)?;
        let metabolite = match &self.file.metabolite {
            None => None,
            Some(m) => {
                let mp = ParamSet {
                    model: self,
                    specs: &m.parameters,
                    prefix: "metabolite.",
                    weight_kg: p.weight_kg,
                    etas: p.etas,
                };
                Some(MetaboliteLink {
                    disposition: mammillary_from(&mp)?,
                    fraction_formed: mp.value("fraction_formed")?,
                })
            }
        };
        let mut depot_ka = Vec::new();
        let mut slots: Vec<Result<RoutePlan, String>> = Vec::new();
        for route in AbsorptionRoute::ALL {
            let spec = self.routes.get(&route).cloned().unwrap_or_default();
            let o = resolved.absorption.get(&route).copied().unwrap_or_default();
            let hint = spec.hint.clone().map(|h| format!(" ({h})")).unwrap_or_default();
            let f = o.bioavailability.or_else(|| spec.bioavailability.as_ref().map(|b| b.internal(p.weight_kg)));
            let ka = o.ka_per_min.or_else(|| spec.ka.as_ref().map(|k| k.internal(p.weight_kg)));
            let lag = o.lag_min.or_else(|| spec.lag.as_ref().map(|l| l.internal(p.weight_kg))).unwrap_or(0.0);
            slots.push(match (f, ka) {
                (None, _) => Err(format!("the reference gives no bioavailability for this route with this model{hint}; supply it")),
                (Some(_), None) => Err(format!(
                    "the reference gives no absorption rate constant for this route{hint}; supply ka or an observed time to peak"
                )),
                (Some(f), Some(ka)) => {
                    depot_ka.push(ka);
                    Ok(RoutePlan::FirstOrder { entry: depot_ka.len(), bioavailability: f, lag_min: lag })
                }
            });
        }
        let engine = match resolved.solver {
            Solver::Auto => Engine::Exp(ExpEngine::new(&parent, &depot_ka, ke0, metabolite)),
            Solver::MatrixExponential => Engine::Matrix(mammillary_system(&parent, &depot_ka, metabolite).engine(ke0)),
        };
        Ok(Individual::new(engine, RouteTable::new(slots), parent.clearance_l_per_min(), Some(parent)))
    }
}

/// Micro-constants or clearances, whichever the file gives.
fn mammillary_from(p: &ParamSet<'_>) -> Result<Mammillary, PkError> {
    if p.has("k10") {
        let opt = |n: &str| if p.has(n) { p.value(n) } else { Ok(0.0) };
        Mammillary::from_micro(p.value("v1")?, p.value("k10")?, opt("k12")?, opt("k21")?, opt("k13")?, opt("k31")?)
    } else {
        let mut peripheral = Vec::new();
        for (q, v) in [("q2", "v2"), ("q3", "v3")] {
            if p.has(q) {
                peripheral.push((p.value(q)?, p.value(v)?));
            }
        }
        Mammillary::from_clearances(p.value("v1")?, p.value("cl")?, &peripheral)
    }
}

/// The same mammillary model as a general linear system, for the matrix-exponential
/// solver (used to cross-check the recursion).
fn mammillary_system(parent: &Mammillary, depot_ka: &[f64], metabolite: Option<MetaboliteLink>) -> LinearSystem {
    let mut s = LinearSystem::new();
    let c = s.compartment("central");
    if parent.k12 > 0.0 {
        let p = s.compartment("peripheral 2");
        s.transfer(c, p, parent.k12);
        s.transfer(p, c, parent.k21);
    }
    if parent.k13 > 0.0 {
        let p = s.compartment("peripheral 3");
        s.transfer(c, p, parent.k13);
        s.transfer(p, c, parent.k31);
    }
    let mut entries = vec![c];
    for &ka in depot_ka {
        let d = s.compartment("depot");
        s.transfer(d, c, ka);
        entries.push(d);
    }
    match metabolite {
        None => s.eliminate(c, parent.k10),
        Some(link) => {
            let m = &link.disposition;
            let mc = s.compartment("metabolite central");
            s.transfer(c, mc, parent.k10 * link.fraction_formed);
            s.eliminate(c, parent.k10 * (1.0 - link.fraction_formed));
            s.eliminate(mc, m.k10);
            for (k_out, k_back) in [(m.k12, m.k21), (m.k13, m.k31)] {
                if k_out > 0.0 {
                    let mp = s.compartment("metabolite peripheral");
                    s.transfer(mc, mp, k_out);
                    s.transfer(mp, mc, k_back);
                }
            }
            s.observe_metabolite(mc, m.v1_l);
        }
    }
    s.entries(&entries);
    s.observe_plasma(c, parent.v1_l);
    s
}

/// A model's parameters for one individual, in the crate's units, with deviations.
pub(crate) struct ParamSet<'a> {
    model: &'a Model,
    specs: &'a BTreeMap<String, ParameterSpec>,
    prefix: &'static str,
    pub weight_kg: f64,
    etas: &'a Etas,
}

impl ParamSet<'_> {
    pub fn has(&self, name: &str) -> bool {
        self.specs.contains_key(name)
    }
    /// The typical value (covariate weight applied, no deviation).
    pub fn typical(&self, name: &str) -> Result<f64, PkError> {
        self.specs.get(name).map(|s| s.internal(self.weight_kg)).ok_or_else(|| PkError::Data {
            file: format!("{}.toml", self.model.id()),
            message: format!("parameter '{}{name}' is missing", self.prefix),
        })
    }
    fn eta(&self, name: &str) -> Option<(EtaScale, f64)> {
        let (prefix, n) = (self.prefix, name.len());
        self.etas
            .iter()
            .find(|(p, _, _)| p.len() == prefix.len() + n && p.starts_with(prefix) && p.ends_with(name))
            .map(|(_, s, e)| (*s, *e))
    }
    /// exp(eta) for a log-normal parameter (1 without a deviation).
    pub fn eta_factor(&self, name: &str) -> f64 {
        match self.eta(name) {
            Some((EtaScale::LogNormal, e)) => e.exp(),
            _ => 1.0,
        }
    }
    /// The individual value: typical with its deviation (log-normal, or additive on the
    /// logit scale for fractions).
    pub fn value(&self, name: &str) -> Result<f64, PkError> {
        let typical = self.typical(name)?;
        Ok(match self.eta(name) {
            None => typical,
            Some((EtaScale::LogNormal, e)) => typical * e.exp(),
            Some((EtaScale::Logit, e)) => {
                let logit = (typical / (1.0 - typical)).ln() + e;
                1.0 / (1.0 + (-logit).exp())
            }
        })
    }
}

impl Model {
    /// Whether `name` (with `metabolite.` for the metabolite's) is a parameter of the model.
    pub(crate) fn has_parameter(&self, name: &str) -> bool {
        match name.strip_prefix("metabolite.") {
            Some(m) => self.file.metabolite.as_ref().is_some_and(|f| f.parameters.contains_key(m)),
            None => self.file.parameters.contains_key(name),
        }
    }

    pub(crate) fn parameter_names(&self) -> Vec<String> {
        let mut out: Vec<String> = self.file.parameters.keys().cloned().collect();
        if let Some(m) = &self.file.metabolite {
            out.extend(m.parameters.keys().map(|k| format!("metabolite.{k}")));
        }
        out
    }
}
