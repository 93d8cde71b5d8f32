//! Target-controlled infusion: the rate schedule a pump would run to reach and hold a
//! plasma or effect-site concentration (pk-reference §4.5).
//!
//! Every `update_interval_min` (STANPUMP: 10 s) the controller looks ahead from the
//! current state with the exact solver:
//!
//! * Plasma (Jacobs, IEEE TBME 1990;37:107): the rate that brings Cp to the target at
//!   the end of the interval, (target − Cp_free(Δ)) / udf(Δ), where Cp_free is the
//!   zero-input projection and udf the response to a unit-rate infusion over Δ.
//! * Effect site (Shafer & Gregg, J Pharmacokinet Biopharm 1992;20:147): the rate R
//!   for this interval such that the following peak of Ce_free(t) + R·e(t) equals the
//!   target (e = effect response to a unit-rate infusion over Δ). Because each
//!   candidate peak time t gives R(t) = (target − Ce_free(t)) / e(t), the answer is the
//!   minimum of R(t) over t: found on a fine grid, then refined by golden section. If
//!   the zero-input Ce already reaches the target, the rate is zero. Once Ce is within
//!   5% of the target the controller holds Cp at the target instead, as STANPUMP does,
//!   which avoids oscillation.
//!
//! Rates are clamped to [0, maximum pump rate]; an update at either bound is marked
//! `clamped`, and only unclamped plasma updates are guaranteed to land on the target.
//! The solver is generic, so TCI works for every model, including Perez-Ruixo.

use serde::Serialize;

use crate::error::{PkError, invalid};
use crate::individual::{Engine, Individual, State};
use crate::regimen::{Amount, Dose, Regimen, Route};
use crate::units::Milligrams;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TciSite {
    Plasma,
    EffectSite,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TciSettings {
    pub site: TciSite,
    /// Minutes between rate updates (STANPUMP uses 10 s).
    pub update_interval_min: f64,
    /// The pump's limit, mg/min; `None` uses the model's value on record (Domino:
    /// 0.75 mg/kg/min, STANPUMP), or fails if there is none.
    pub max_rate_mg_per_min: Option<f64>,
}

impl Default for TciSettings {
    fn default() -> Self {
        Self { site: TciSite::Plasma, update_interval_min: 10.0 / 60.0, max_rate_mg_per_min: None }
    }
}

/// From `from_min` on, aim for `target_ng_ml` (0 stops the pump).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TargetStep {
    pub from_min: f64,
    pub target_ng_ml: f64,
}

/// One controller decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TciUpdate {
    pub start_min: f64,
    pub end_min: f64,
    pub target_ng_ml: f64,
    pub rate_mg_per_min: f64,
    /// The wanted rate was above the pump's maximum or below zero.
    pub clamped: bool,
}

/// A stretch of constant pump rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateSegment {
    pub start_min: f64,
    pub end_min: f64,
    pub rate_mg_per_min: f64,
}

impl RateSegment {
    pub fn mg_per_hour(&self) -> f64 {
        self.rate_mg_per_min * 60.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TciPlan {
    pub site: TciSite,
    pub update_interval_min: f64,
    pub max_rate_mg_per_min: f64,
    pub updates: Vec<TciUpdate>,
}

impl TciPlan {
    /// The rate schedule with equal consecutive rates merged.
    pub fn segments(&self) -> Vec<RateSegment> {
        let mut out: Vec<RateSegment> = Vec::new();
        for u in &self.updates {
            match out.last_mut() {
                Some(s) if s.rate_mg_per_min == u.rate_mg_per_min && s.end_min == u.start_min => s.end_min = u.end_min,
                _ => out.push(RateSegment {
                    start_min: u.start_min,
                    end_min: u.end_min,
                    rate_mg_per_min: u.rate_mg_per_min,
                }),
            }
        }
        out
    }

    /// The schedule as a regimen of infusions, to simulate or chart.
    pub fn regimen(&self) -> Regimen {
        let doses = self
            .segments()
            .into_iter()
            .filter(|s| s.rate_mg_per_min > 0.0)
            .map(|s| {
                let d = s.end_min - s.start_min;
                Dose {
                    at_min: s.start_min,
                    amount: Amount::Mg(Milligrams(s.rate_mg_per_min * d)),
                    route: Route::IvInfusion { duration_min: d },
                }
            })
            .collect();
        Regimen { doses }
    }

    pub fn total_mg(&self) -> f64 {
        self.updates.iter().map(|u| u.rate_mg_per_min * (u.end_min - u.start_min)).sum()
    }
}

/// Fraction of the target within which the effect-site controller holds plasma instead.
const EFFECT_HOLD_BAND: f64 = 0.05;
/// Look-ahead sub-steps per update interval for the effect-site peak search.
const SUBSTEPS: usize = 10;
/// The effect look-ahead never goes past this (minutes).
const MAX_HORIZON_MIN: f64 = 240.0;

struct Controller<'a> {
    engine: &'a Engine,
    delta: f64,
    zero: Vec<f64>,
    unit: Vec<f64>,
    udf_plasma: f64,
    /// Effect response to a unit-rate infusion over Δ, at j·h for j = 1..=J.
    udf_effect: Vec<f64>,
    h: f64,
}

impl Controller<'_> {
    fn plasma(&self, s: &State) -> f64 {
        self.engine.observe(s).plasma_ng_ml
    }
    fn effect(&self, s: &State) -> f64 {
        self.engine.observe(s).effect_ng_ml.unwrap_or(f64::NAN)
    }

    fn plasma_rate(&self, state: &State, target: f64) -> f64 {
        let mut free = state.clone();
        self.engine.advance(&mut free, self.delta, &self.zero);
        (target - self.plasma(&free)) / self.udf_plasma
    }

    /// Effect response at time t after a unit-rate infusion over Δ started at 0.
    fn unit_effect(&self, t: f64) -> f64 {
        let mut s = self.engine.new_state();
        self.engine.advance(&mut s, t.min(self.delta), &self.unit);
        if t > self.delta {
            self.engine.advance(&mut s, t - self.delta, &self.zero);
        }
        self.effect(&s)
    }

    fn free_effect(&self, state: &State, t: f64) -> f64 {
        let mut s = state.clone();
        self.engine.advance(&mut s, t, &self.zero);
        self.effect(&s)
    }

    fn effect_rate(&self, state: &State, target: f64) -> f64 {
        if self.effect(state) >= target {
            return 0.0;
        }
        let peak_unit = self.udf_effect.iter().copied().fold(0.0, f64::max);
        let mut free = state.clone();
        let mut best: Option<(usize, f64)> = None;
        for (j, &e) in self.udf_effect.iter().enumerate() {
            self.engine.advance(&mut free, self.h, &self.zero);
            let cf = self.effect(&free);
            if cf >= target {
                return 0.0;
            }
            if e > 1e-9 * peak_unit {
                let r = (target - cf) / e;
                if best.is_none_or(|(_, b)| r < b) {
                    best = Some((j, r));
                }
            }
        }
        let Some((j, r_grid)) = best else { return 0.0 };
        // Refine the peak time between the neighbouring grid points (t_j = (j+1)·h).
        let rate_at = |t: f64| (target - self.free_effect(state, t)) / self.unit_effect(t);
        let (mut a, mut b) = ((j as f64) * self.h, (j as f64 + 2.0) * self.h);
        a = a.max(1e-3 * self.h);
        let g = (5f64.sqrt() - 1.0) / 2.0;
        let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
        let (mut fc, mut fd) = (rate_at(c), rate_at(d));
        for _ in 0..40 {
            if fc < fd {
                b = d;
                d = c;
                fd = fc;
                c = b - g * (b - a);
                fc = rate_at(c);
            } else {
                a = c;
                c = d;
                fc = fd;
                d = a + g * (b - a);
                fd = rate_at(d);
            }
        }
        r_grid.min(fc).min(fd)
    }
}

/// The pump schedule that would reach and hold `targets` until `until_min`.
pub fn plan_tci(
    ind: &Individual,
    targets: &[TargetStep],
    until_min: f64,
    settings: &TciSettings,
) -> Result<TciPlan, PkError> {
    let delta = settings.update_interval_min;
    if !(delta > 0.0 && delta.is_finite()) {
        return Err(invalid("the TCI update interval must be more than 0 min"));
    }
    if !(until_min > 0.0 && until_min.is_finite()) {
        return Err(invalid("a TCI plan needs a positive duration"));
    }
    if targets
        .iter()
        .any(|t| !(t.target_ng_ml >= 0.0 && t.target_ng_ml.is_finite() && t.from_min >= 0.0 && t.from_min.is_finite()))
    {
        return Err(invalid("TCI targets must be zero or more ng/mL, starting at or after 0 min"));
    }
    if targets.windows(2).any(|w| w[1].from_min < w[0].from_min) {
        return Err(invalid("TCI targets must be in time order"));
    }
    let max_rate = match settings.max_rate_mg_per_min.or(ind.max_tci_rate.as_ref().map(|s| s.value)) {
        Some(m) if m > 0.0 && m.is_finite() => m,
        Some(m) => return Err(invalid(format!("the maximum pump rate must be positive, got {m} mg/min"))),
        None => {
            return Err(PkError::MissingInput {
                model: ind.model_name.clone(),
                message: "no maximum pump rate is on record for this model; give one (mg/min)".into(),
            });
        }
    };
    if settings.site == TciSite::EffectSite && !ind.engine.has_effect() {
        return Err(PkError::MissingInput {
            model: ind.model_name.clone(),
            message: "effect-site targeting needs a ke0: choose one on record or give a time to peak effect".into(),
        });
    }

    let engine = &ind.engine;
    let m = engine.entries();
    let zero = vec![0.0; m];
    let mut unit = zero.clone();
    unit[0] = 1.0;
    let udf_plasma = {
        let mut s = engine.new_state();
        engine.advance(&mut s, delta, &unit);
        engine.observe(&s).plasma_ng_ml
    };
    let h = delta / SUBSTEPS as f64;
    let mut udf_effect = Vec::new();
    if settings.site == TciSite::EffectSite {
        let mut s = engine.new_state();
        let (mut t, mut peak) = (0.0, 0.0f64);
        loop {
            let input = if t + 0.5 * h < delta { &unit } else { &zero };
            engine.advance(&mut s, h, input);
            t += h;
            let e = engine.observe(&s).effect_ng_ml.unwrap_or(0.0);
            peak = peak.max(e);
            udf_effect.push(e);
            if (t > delta && e < 0.01 * peak) || t >= MAX_HORIZON_MIN {
                break;
            }
        }
    }
    let controller = Controller { engine, delta, zero, unit, udf_plasma, udf_effect, h };

    let target_at = |t: f64| targets.iter().rev().find(|s| s.from_min <= t + 1e-12).map_or(0.0, |s| s.target_ng_ml);
    let mut state = engine.new_state();
    let mut updates = Vec::new();
    let n = (until_min / delta - 1e-9).ceil().max(1.0) as usize;
    let mut rates = vec![0.0; m];
    for k in 0..n {
        let start = k as f64 * delta;
        let end = ((k + 1) as f64 * delta).min(until_min);
        let target = target_at(start);
        let wanted = if target <= 0.0 {
            0.0
        } else {
            match settings.site {
                TciSite::Plasma => controller.plasma_rate(&state, target),
                TciSite::EffectSite => {
                    if (controller.effect(&state) - target).abs() <= EFFECT_HOLD_BAND * target {
                        controller.plasma_rate(&state, target)
                    } else {
                        controller.effect_rate(&state, target)
                    }
                }
            }
        };
        let rate = wanted.clamp(0.0, max_rate);
        let clamped = target > 0.0 && (wanted > max_rate || wanted < 0.0);
        rates[0] = rate;
        engine.advance(&mut state, end - start, &rates);
        updates.push(TciUpdate {
            start_min: start,
            end_min: end,
            target_ng_ml: target,
            rate_mg_per_min: rate,
            clamped,
        });
    }
    Ok(TciPlan { site: settings.site, update_interval_min: delta, max_rate_mg_per_min: max_rate, updates })
}
