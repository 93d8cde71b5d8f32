//! The effect site, and rate constants solved from an observed time to peak.
//!
//! The effect site is a volume-less compartment behind plasma, dCe/dt = ke0·(Cp − Ce)
//! (pk-reference §4.3). Its concentration is carried exactly by the solvers (extra
//! exponential states in the recursion, an extra row in the matrix), so nothing here
//! interpolates Cp between grid points the way STANPUMP and opentiva do (§4.4).
//!
//! ke0 is rarely measured for ketamine (§1.5): models carry the values on record with
//! their provenance, and a clinic can instead state when the effect should peak after a
//! bolus, from which ke0 is solved (opentiva's `ke0_tpeak_method`, stanpumpR's
//! `tPeakError`). The same search turns an observed Tmax after an IM, oral, sublingual
//! or nasal dose into an absorption rate constant, since the reference has none.

use crate::error::PkError;
use crate::individual::{Engine, Individual, RoutePlan};
use crate::model::{Model, Sourced};
use crate::options::{AbsorptionRoute, Patient, Resolved, ResolvedAbsorption, Solver};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Plasma,
    Effect,
}

fn value_after_unit_bolus(engine: &Engine, entry: usize, output: Output, t: f64) -> f64 {
    let mut s = engine.new_state();
    engine.bolus(&mut s, entry, 1.0);
    let zero = vec![0.0; engine.entries()];
    engine.advance(&mut s, t, &zero);
    let c = engine.observe(&s);
    match output {
        Output::Plasma => c.plasma_ng_ml,
        Output::Effect => c.effect_ng_ml.unwrap_or(f64::NAN),
    }
}

/// When `output` peaks after a unit bolus into `entry` (minutes): a geometric scan from
/// 0.6 s to a week, then golden-section search around the best point.
pub(crate) fn peak_time(engine: &Engine, entry: usize, output: Output) -> f64 {
    let f = |t: f64| value_after_unit_bolus(engine, entry, output, t);
    let mut ts = vec![0.0];
    let mut t = 0.01;
    while t < 10_080.0 {
        ts.push(t);
        t *= 1.15;
    }
    let values: Vec<f64> = ts.iter().map(|&t| f(t)).collect();
    let best = values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
    if best == 0 {
        return 0.0;
    }
    let (mut a, mut b) = (ts[best - 1], ts[(best + 1).min(ts.len() - 1)]);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > 1e-9 * b.max(1e-6) {
        if fc > fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    (a + b) / 2.0
}

/// Time to peak effect-site concentration after an IV bolus, for this individual's ke0.
pub fn time_to_peak_effect_min(ind: &Individual) -> Option<f64> {
    ind.engine.has_effect().then(|| peak_time(&ind.engine, 0, Output::Effect))
}

/// Finds the rate whose time to peak is `target` by bisection on its logarithm: a
/// faster rate always peaks sooner.
fn solve_rate(
    target: f64,
    what: &str,
    model: &Model,
    tpeak: impl Fn(f64) -> Result<f64, PkError>,
) -> Result<f64, PkError> {
    let out_of_reach = |lo: f64, hi: f64| PkError::MissingInput {
        model: model.name().to_string(),
        message: format!("a time to peak of {target} min is out of reach for {what} (possible: {hi:.3}–{lo:.1} min)"),
    };
    if !(target.is_finite() && target > 0.0) {
        return Err(PkError::Invalid(format!("the time to peak for {what} must be more than 0 min, got {target}")));
    }
    let (mut lo, mut hi) = (1e-5f64.ln(), 1e3f64.ln());
    let (t_lo, t_hi) = (tpeak(lo.exp())?, tpeak(hi.exp())?);
    if !(target <= t_lo && target >= t_hi) {
        return Err(out_of_reach(t_lo, t_hi));
    }
    while hi - lo > 1e-11 {
        let mid = 0.5 * (lo + hi);
        if tpeak(mid.exp())? > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok((0.5 * (lo + hi)).exp())
}

/// ke0 (1/min) such that the effect site peaks `tpeak_min` after an IV bolus, for the
/// typical patient with these covariates.
pub fn ke0_for_time_to_peak(model: &Model, patient: &Patient, tpeak_min: f64) -> Result<f64, PkError> {
    solve_rate(tpeak_min, "the effect site", model, |ke0| {
        let resolved = Resolved { ke0: Some(Sourced { value: ke0, source: String::new() }), ..Resolved::default() };
        let ind = model.build(patient, &resolved, &[])?;
        Ok(peak_time(&ind.engine, 0, Output::Effect))
    })
}

/// ka (1/min) such that plasma peaks `tpeak_min` after the dose is absorbed (lag
/// excluded) by `route`, for the typical patient with these covariates.
pub fn ka_for_time_to_peak(
    model: &Model,
    patient: &Patient,
    route: AbsorptionRoute,
    tpeak_min: f64,
) -> Result<f64, PkError> {
    solve_rate(tpeak_min, &format!("{route} absorption"), model, |ka| {
        let mut resolved = Resolved { solver: Solver::Auto, ..Resolved::default() };
        // F does not move the peak; 1 lets routes without a published F be solved too.
        let absorption = ResolvedAbsorption { bioavailability: Some(1.0), ka_per_min: Some(ka), lag_min: Some(0.0) };
        resolved.absorption.insert(route, absorption);
        let ind = model.build(patient, &resolved, &[])?;
        match ind.routes.get(route) {
            Ok(RoutePlan::FirstOrder { entry, .. }) => Ok(peak_time(&ind.engine, *entry, Output::Plasma)),
            _ => Err(PkError::UnsupportedRoute {
                model: model.name().to_string(),
                route: route.to_string(),
                reason: "its absorption is fixed by the model".into(),
            }),
        }
    })
}
