//! One patient's model, ready to simulate: the exact solver for their parameters, how
//! each route of administration feeds it, and what the model can and cannot predict.

use serde::Serialize;

use crate::linear::{MatrixCache, MatrixEngine};
use crate::mammillary::{ExpCache, ExpEngine, Mammillary};
use crate::model::Sourced;
use crate::options::AbsorptionRoute;
use crate::units::NG_PER_ML_PER_MG_PER_L;

/// How a dose by an extravascular route enters the system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RoutePlan {
    /// F × dose into a first-order depot (entry) after a lag.
    FirstOrder { entry: usize, bioavailability: f64, lag_min: f64 },
    /// Perez-Ruixo nasal spray, one 28-mg device at a time: the first device absorbs
    /// `frn_first` through the nose (first-order into central), later devices
    /// `frn_later`; the rest is swallowed, × Fgut, given zero-order over `swallow_min`
    /// into a gut depot that empties into the liver.
    Nasal {
        nasal_entry: usize,
        gut_entry: usize,
        frn_first: f64,
        frn_later: f64,
        fgut: f64,
        swallow_min: f64,
        device_mg: f64,
    },
    /// × F zero-order over `duration_min` into a gut depot (Perez-Ruixo oral solution).
    ZeroThenFirstOrder { entry: usize, fraction: f64, duration_min: f64 },
}

/// Per extravascular route: how it enters, or why this model cannot take it.
#[derive(Debug, Clone)]
pub(crate) struct RouteTable {
    slots: Vec<Result<RoutePlan, String>>,
}

impl RouteTable {
    /// One slot per [`AbsorptionRoute::ALL`], in that order.
    pub fn new(slots: Vec<Result<RoutePlan, String>>) -> Self {
        debug_assert_eq!(slots.len(), AbsorptionRoute::ALL.len());
        Self { slots }
    }
    pub fn get(&self, route: AbsorptionRoute) -> &Result<RoutePlan, String> {
        &self.slots[route.index()]
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Engine {
    Exp(ExpEngine),
    Matrix(MatrixEngine),
}

#[derive(Debug, Clone)]
pub(crate) enum Cache {
    Exp(ExpCache),
    Matrix(MatrixCache),
}

/// The solver's state for one individual at one moment, with its step cache.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub x: Vec<f64>,
    cache: Cache,
}

/// Concentrations at one moment (ng/mL) and the exposure so far (ng·min/mL).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Concentrations {
    pub plasma_ng_ml: f64,
    pub effect_ng_ml: Option<f64>,
    pub metabolite_ng_ml: Option<f64>,
    /// Area under the plasma curve since the first dose.
    pub plasma_auc_ng_min_per_ml: f64,
    pub metabolite_auc_ng_min_per_ml: Option<f64>,
}

impl Engine {
    pub fn entries(&self) -> usize {
        match self {
            Engine::Exp(e) => e.entries(),
            Engine::Matrix(m) => m.entries(),
        }
    }
    pub fn new_state(&self) -> State {
        match self {
            Engine::Exp(e) => State { x: vec![0.0; e.state_len()], cache: Cache::Exp(ExpCache::default()) },
            Engine::Matrix(m) => State { x: vec![0.0; m.state_len()], cache: Cache::Matrix(MatrixCache::default()) },
        }
    }
    pub fn bolus(&self, s: &mut State, entry: usize, mg: f64) {
        match self {
            Engine::Exp(e) => e.bolus(&mut s.x, entry, mg),
            Engine::Matrix(m) => m.bolus(&mut s.x, entry, mg),
        }
    }
    /// Advances `dt` minutes with constant input (mg/min per entry).
    pub fn advance(&self, s: &mut State, dt: f64, rates: &[f64]) {
        if dt <= 0.0 {
            return;
        }
        match (self, &mut s.cache) {
            (Engine::Exp(e), Cache::Exp(c)) => e.advance(&mut s.x, dt, rates, c),
            (Engine::Matrix(m), Cache::Matrix(c)) => m.advance(&mut s.x, dt, rates, c),
            _ => unreachable!("a state always comes from its own engine"),
        }
    }
    pub fn observe(&self, s: &State) -> Concentrations {
        let [p, e, m, auc_p, auc_m] = match self {
            Engine::Exp(x) => x.observe(&s.x),
            Engine::Matrix(x) => x.observe(&s.x),
        };
        let ng = |v: f64| (v * NG_PER_ML_PER_MG_PER_L).max(0.0);
        let opt = |v: f64| if v.is_nan() { None } else { Some(ng(v)) };
        Concentrations {
            plasma_ng_ml: ng(p),
            effect_ng_ml: opt(e),
            metabolite_ng_ml: opt(m),
            plasma_auc_ng_min_per_ml: ng(auc_p),
            metabolite_auc_ng_min_per_ml: opt(auc_m),
        }
    }
    pub fn has_effect(&self) -> bool {
        match self {
            Engine::Exp(e) => e.has_effect(),
            Engine::Matrix(m) => m.has_effect(),
        }
    }
    pub fn has_metabolite(&self) -> bool {
        match self {
            Engine::Exp(e) => e.has_metabolite(),
            Engine::Matrix(m) => m.has_metabolite(),
        }
    }
}

/// One patient's model: built by [`crate::Model::individual`].
#[derive(Debug, Clone)]
pub struct Individual {
    pub(crate) model_id: String,
    pub(crate) model_name: String,
    pub(crate) weight_kg: f64,
    pub(crate) engine: Engine,
    pub(crate) routes: RouteTable,
    pub(crate) ke0: Option<Sourced<f64>>,
    pub(crate) clearance_l_per_min: f64,
    pub(crate) disposition: Option<Mammillary>,
    pub(crate) max_tci_rate: Option<Sourced<f64>>,
    pub(crate) warnings: Vec<String>,
}

impl Individual {
    pub(crate) fn new(
        engine: Engine,
        routes: RouteTable,
        clearance_l_per_min: f64,
        disposition: Option<Mammillary>,
    ) -> Self {
        Self {
            model_id: String::new(),
            model_name: String::new(),
            weight_kg: f64::NAN,
            engine,
            routes,
            ke0: None,
            clearance_l_per_min,
            disposition,
            max_tci_rate: None,
            warnings: Vec::new(),
        }
    }
    /// A mammillary model from explicit micro-constants, IV only: for another program's
    /// rounding of a published set (opentiva prints Domino's k-values to four digits) or
    /// a model not in the catalogue. The caller owns the provenance.
    pub fn from_mammillary(name: &str, weight_kg: f64, disposition: Mammillary, ke0_per_min: Option<f64>) -> Self {
        let slots = AbsorptionRoute::ALL
            .iter()
            .map(|_| Err("a model built from micro-constants takes IV doses only".to_string()))
            .collect();
        let engine = Engine::Exp(ExpEngine::new(&disposition, &[], ke0_per_min, None));
        let mut ind = Self::new(engine, RouteTable::new(slots), disposition.clearance_l_per_min(), Some(disposition));
        ind.model_id = name.to_string();
        ind.model_name = name.to_string();
        ind.weight_kg = weight_kg;
        ind.ke0 = ke0_per_min.map(|k| Sourced { value: k, source: "supplied by the caller".into() });
        ind
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }
    pub fn model_name(&self) -> &str {
        &self.model_name
    }
    pub fn weight_kg(&self) -> f64 {
        self.weight_kg
    }
    /// The effect-site rate constant in use (1/min) and its source; `None` means the
    /// model predicts no effect site.
    pub fn ke0(&self) -> Option<&Sourced<f64>> {
        self.ke0.as_ref()
    }
    /// Total elimination clearance of the parent drug from plasma, L/min; a dose D fully
    /// absorbed gives AUC₀–∞ = D/CL.
    pub fn clearance_l_per_min(&self) -> f64 {
        self.clearance_l_per_min
    }
    /// Micro-constants, eigenvalues and coefficients, for mammillary models.
    pub fn disposition(&self) -> Option<&Mammillary> {
        self.disposition.as_ref()
    }
    pub fn has_metabolite(&self) -> bool {
        self.engine.has_metabolite()
    }
    pub fn has_effect_site(&self) -> bool {
        self.engine.has_effect()
    }
    /// The maximum pump rate on record for TCI, mg/min.
    pub fn max_tci_rate_mg_per_min(&self) -> Option<&Sourced<f64>> {
        self.max_tci_rate.as_ref()
    }
    /// Covariates outside the range the model was built on.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}
