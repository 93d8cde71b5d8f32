//! From a regimen to concentrations over time.
//!
//! Every dose becomes one or more primitive inputs into an entry of the solver: an
//! instantaneous amount, or an amount spread evenly over a duration. Bioavailability,
//! lag and the way a route splits a dose (a nasal spray is partly swallowed) are applied
//! here. The primitives give a timeline of breakpoints: at each, boluses land and the
//! constant input rates change. Between breakpoints the solver steps exactly, so the
//! result does not depend on the output grid, and any number of doses simply superpose.
//!
//! Observations are right-continuous: a bolus at t is included in the value at t.

use serde::Serialize;

use crate::error::{PkError, invalid};
use crate::individual::{Concentrations, Engine, Individual, RoutePlan, State};
use crate::regimen::{Regimen, Route};

/// One input into one solver entry: `amount_mg` at `start_min`, or spread evenly over
/// `duration_min` if that is positive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Primitive {
    pub start_min: f64,
    pub duration_min: f64,
    pub entry: usize,
    pub amount_mg: f64,
}

#[derive(Debug, Clone)]
struct Breakpoint {
    t: f64,
    boluses: Vec<(usize, f64)>,
    /// Input rates (mg/min per entry) from `t` until the next breakpoint.
    rates: Vec<f64>,
}

/// The inputs of a regimen for one individual, as a timeline.
#[derive(Debug, Clone)]
pub(crate) struct InputPlan {
    breakpoints: Vec<Breakpoint>,
    entries: usize,
}

impl InputPlan {
    pub fn new(primitives: &[Primitive], entries: usize) -> Self {
        let mut times: Vec<f64> = primitives.iter().flat_map(|p| [p.start_min, p.start_min + p.duration_min]).collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        let breakpoints = times
            .iter()
            .map(|&t| {
                let mut rates = vec![0.0; entries];
                let mut boluses = Vec::new();
                for p in primitives {
                    if p.duration_min > 0.0 {
                        if p.start_min <= t && t < p.start_min + p.duration_min {
                            rates[p.entry] += p.amount_mg / p.duration_min;
                        }
                    } else if p.start_min == t {
                        boluses.push((p.entry, p.amount_mg));
                    }
                }
                Breakpoint { t, boluses, rates }
            })
            .collect();
        Self { breakpoints, entries }
    }

    /// When the last input ends (the last bolus or the end of the last infusion).
    pub fn input_ends_min(&self) -> f64 {
        self.breakpoints.last().map_or(0.0, |b| b.t)
    }

    pub fn first_input_min(&self) -> f64 {
        self.breakpoints.first().map_or(0.0, |b| b.t)
    }
}

/// The primitive inputs of a regimen for this individual.
pub(crate) fn primitives(ind: &Individual, regimen: &Regimen) -> Result<Vec<Primitive>, PkError> {
    let mut out = Vec::new();
    for dose in &regimen.doses {
        let mg = dose.amount.mg(ind.weight_kg);
        let t = dose.at_min;
        if !(t.is_finite() && t >= 0.0 && mg.is_finite() && mg > 0.0) {
            return Err(invalid(format!("dose '{dose}' needs a positive amount and a start at or after 0 min")));
        }
        let unsupported = |reason: &str| PkError::UnsupportedRoute {
            model: ind.model_name.clone(),
            route: dose.route.absorption().map_or("IV".to_string(), |r| r.to_string()),
            reason: reason.to_string(),
        };
        match dose.route {
            Route::IvBolus => out.push(Primitive { start_min: t, duration_min: 0.0, entry: 0, amount_mg: mg }),
            Route::IvInfusion { duration_min } => {
                if !(duration_min > 0.0 && duration_min.is_finite()) {
                    return Err(invalid(format!("infusion '{dose}' must last more than zero minutes")));
                }
                out.push(Primitive { start_min: t, duration_min, entry: 0, amount_mg: mg })
            }
            route => {
                let absorption = route.absorption().expect("extravascular route");
                let plan = ind.routes.get(absorption).as_ref().map_err(|reason| unsupported(reason))?;
                match (*plan, route) {
                    (RoutePlan::FirstOrder { entry, bioavailability, lag_min }, _) => out.push(Primitive {
                        start_min: t + lag_min,
                        duration_min: 0.0,
                        entry,
                        amount_mg: mg * bioavailability,
                    }),
                    (
                        RoutePlan::Nasal { nasal_entry, gut_entry, frn_first, frn_later, fgut, swallow_min, device_mg },
                        Route::Intranasal { device_interval_min },
                    ) => {
                        let devices = mg / device_mg;
                        if (devices - devices.round()).abs() > 1e-9 || devices.round() < 1.0 {
                            return Err(unsupported(&format!(
                                "esketamine nasal devices deliver {device_mg} mg each; {mg} mg is not a whole number of devices"
                            )));
                        }
                        if !(device_interval_min >= 0.0 && device_interval_min.is_finite()) {
                            return Err(invalid("the interval between nasal devices cannot be negative"));
                        }
                        for i in 0..devices.round() as usize {
                            let frn = if i == 0 { frn_first } else { frn_later };
                            let start = t + i as f64 * device_interval_min;
                            out.push(Primitive {
                                start_min: start,
                                duration_min: 0.0,
                                entry: nasal_entry,
                                amount_mg: device_mg * frn,
                            });
                            out.push(Primitive {
                                start_min: start,
                                duration_min: swallow_min,
                                entry: gut_entry,
                                amount_mg: device_mg * (1.0 - frn) * fgut,
                            });
                        }
                    }
                    (RoutePlan::ZeroThenFirstOrder { entry, fraction, duration_min }, _) => {
                        out.push(Primitive { start_min: t, duration_min, entry, amount_mg: mg * fraction })
                    }
                    (RoutePlan::Nasal { .. }, _) => unreachable!("the nasal plan is only in the intranasal slot"),
                }
            }
        }
    }
    Ok(out)
}

pub(crate) fn plan(ind: &Individual, regimen: &Regimen) -> Result<InputPlan, PkError> {
    Ok(InputPlan::new(&primitives(ind, regimen)?, ind.engine.entries()))
}

/// Walks one individual forward in time through a plan.
pub(crate) struct Stepper<'a> {
    engine: &'a Engine,
    plan: InputPlan,
    state: State,
    t: f64,
    next: usize,
    rates: Vec<f64>,
}

impl<'a> Stepper<'a> {
    pub fn new(ind: &'a Individual, plan: InputPlan) -> Self {
        let rates = vec![0.0; plan.entries];
        let t = plan.first_input_min().min(0.0);
        Self { engine: &ind.engine, state: ind.engine.new_state(), plan, t, next: 0, rates }
    }

    /// Moves to time `t` (not before the current time) and returns the concentrations.
    pub fn advance_to(&mut self, t: f64) -> Concentrations {
        while let Some(b) = self.plan.breakpoints.get(self.next)
            && b.t <= t
        {
            self.engine.advance(&mut self.state, b.t - self.t, &self.rates);
            self.t = b.t;
            for &(entry, mg) in &b.boluses {
                self.engine.bolus(&mut self.state, entry, mg);
            }
            self.rates.copy_from_slice(&b.rates);
            self.next += 1;
        }
        self.engine.advance(&mut self.state, t - self.t, &self.rates);
        self.t = self.t.max(t);
        self.engine.observe(&self.state)
    }

    /// The solver state now; clone it to look ahead without moving.
    pub fn state(&self) -> &State {
        &self.state
    }
    pub fn engine(&self) -> &Engine {
        self.engine
    }
}

/// Concentrations at one time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub t_min: f64,
    pub plasma_ng_ml: f64,
    /// `None` when the model has no effect site (no ke0 on record or supplied).
    pub effect_ng_ml: Option<f64>,
    pub metabolite_ng_ml: Option<f64>,
    /// Exact area under the plasma curve from the first dose to `t_min`.
    pub plasma_auc_ng_min_per_ml: f64,
}

impl Sample {
    fn new(t_min: f64, c: Concentrations) -> Self {
        Self {
            t_min,
            plasma_ng_ml: c.plasma_ng_ml,
            effect_ng_ml: c.effect_ng_ml,
            metabolite_ng_ml: c.metabolite_ng_ml,
            plasma_auc_ng_min_per_ml: c.plasma_auc_ng_min_per_ml,
        }
    }
}

/// A simulated concentration curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub model_id: String,
    pub samples: Vec<Sample>,
}

impl Profile {
    /// The sample with the highest plasma concentration.
    pub fn plasma_peak(&self) -> Option<&Sample> {
        self.samples.iter().max_by(|a, b| a.plasma_ng_ml.total_cmp(&b.plasma_ng_ml))
    }
    pub fn plasma(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.plasma_ng_ml).collect()
    }
}

/// 0, step, 2·step, ... up to and including `until_min` (times as multiples of the step,
/// so they do not drift).
pub fn grid(until_min: f64, step_min: f64) -> Vec<f64> {
    if !(step_min > 0.0 && until_min >= 0.0 && until_min.is_finite()) {
        return vec![0.0];
    }
    let n = (until_min / step_min + 1e-9).floor() as usize;
    (0..=n).map(|k| k as f64 * step_min).collect()
}

pub(crate) fn check_times(times_min: &[f64]) -> Result<(), PkError> {
    if times_min.iter().any(|t| !t.is_finite() || *t < 0.0) {
        return Err(invalid("output times must be finite and at or after 0 min"));
    }
    if times_min.windows(2).any(|w| w[1] < w[0]) {
        return Err(invalid("output times must be in increasing order"));
    }
    Ok(())
}

/// Concentrations of a regimen at the given times (minutes from the start, increasing).
///
/// This is the entry point `keta pk simulate` times: one 0.5 mg/kg over 40 min regimen
/// on a 1-minute grid to 24 h is 1441 exact steps.
pub fn simulate(ind: &Individual, regimen: &Regimen, times_min: &[f64]) -> Result<Profile, PkError> {
    check_times(times_min)?;
    let mut stepper = Stepper::new(ind, plan(ind, regimen)?);
    let samples = times_min.iter().map(|&t| Sample::new(t, stepper.advance_to(t))).collect();
    Ok(Profile { model_id: ind.model_id.clone(), samples })
}
