//! Mammillary models solved exactly, as STANPUMP, stanpumpR and opentiva do it.
//!
//! A central compartment exchanging with up to two peripheral ones has a unit-bolus
//! plasma response that is a sum of decaying exponentials: eigenvalues from the cubic
//! (pk-reference §4.2), coefficients from §4.3. Every other response we need is the
//! same kind of sum: the effect site (the plasma response passed through ke0), an
//! absorption depot (passed through ka first), a metabolite fed by the parent's
//! clearance (convolved with the metabolite's own sum). So the simulator keeps one state
//! per exponential and, over each step with constant input, decays it and tops it up
//! (§4.4): exact for piecewise-constant input, O(terms) per step, no ODE error.

use serde::Serialize;

use crate::error::{PkError, invalid};

/// Micro-constants of a 1-, 2- or 3-compartment mammillary model (time in minutes,
/// volume in litres). `k12 = k21 = 0` means one compartment; `k13 = k31 = 0` two.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mammillary {
    pub v1_l: f64,
    pub k10: f64,
    pub k12: f64,
    pub k21: f64,
    pub k13: f64,
    pub k31: f64,
}

impl Mammillary {
    /// From micro-constants; checks that every value is finite and that each exchange
    /// goes both ways.
    pub fn from_micro(v1_l: f64, k10: f64, k12: f64, k21: f64, k13: f64, k31: f64) -> Result<Self, PkError> {
        let all = [v1_l, k10, k12, k21, k13, k31];
        if all.iter().any(|v| !v.is_finite() || *v < 0.0) || v1_l <= 0.0 || k10 <= 0.0 {
            return Err(invalid(format!(
                "mammillary parameters must be finite, V1 and k10 positive, the rest non-negative (V1 {v1_l}, k10 {k10}, k12 {k12}, k21 {k21}, k13 {k13}, k31 {k31})"
            )));
        }
        if (k12 > 0.0) != (k21 > 0.0) || (k13 > 0.0) != (k31 > 0.0) {
            return Err(invalid("a peripheral compartment needs both its rate constants (k12 with k21, k13 with k31)"));
        }
        // Keep a lone peripheral compartment in slot 2.
        let (k12, k21, k13, k31) = if k12 == 0.0 && k13 > 0.0 { (k13, k31, 0.0, 0.0) } else { (k12, k21, k13, k31) };
        Ok(Self { v1_l, k10, k12, k21, k13, k31 })
    }

    /// From volumes (L) and clearances (L/min): k10 = CL/V1, k12 = Q2/V1, k21 = Q2/V2, ...
    /// (pk-reference §4.1). `peripheral` holds (Q, V) pairs, at most two.
    pub fn from_clearances(v1_l: f64, cl_l_per_min: f64, peripheral: &[(f64, f64)]) -> Result<Self, PkError> {
        if peripheral.len() > 2 {
            return Err(invalid("at most two peripheral compartments"));
        }
        if peripheral.iter().any(|(q, v)| !(*q > 0.0 && *v > 0.0 && q.is_finite() && v.is_finite())) {
            return Err(invalid(format!("peripheral clearances and volumes must be positive: {peripheral:?}")));
        }
        let k = |i: usize| peripheral.get(i).map_or((0.0, 0.0), |(q, v)| (q / v1_l, q / v));
        let (k12, k21) = k(0);
        let (k13, k31) = k(1);
        Self::from_micro(v1_l, cl_l_per_min / v1_l, k12, k21, k13, k31)
    }

    pub fn compartments(&self) -> usize {
        1 + usize::from(self.k12 > 0.0) + usize::from(self.k13 > 0.0)
    }
    pub fn v2_l(&self) -> f64 {
        if self.k21 > 0.0 { self.v1_l * self.k12 / self.k21 } else { 0.0 }
    }
    pub fn v3_l(&self) -> f64 {
        if self.k31 > 0.0 { self.v1_l * self.k13 / self.k31 } else { 0.0 }
    }
    /// Elimination clearance, L/min.
    pub fn clearance_l_per_min(&self) -> f64 {
        self.k10 * self.v1_l
    }
    pub fn q2_l_per_min(&self) -> f64 {
        self.k12 * self.v1_l
    }
    pub fn q3_l_per_min(&self) -> f64 {
        self.k13 * self.v1_l
    }
    /// Volume at steady state, L.
    pub fn vss_l(&self) -> f64 {
        self.v1_l + self.v2_l() + self.v3_l()
    }

    /// Coefficients of the characteristic polynomial x³ − a2·x² + a1·x − a0 (§4.2);
    /// for fewer compartments the missing terms are zero and so is the matching root.
    pub fn characteristic(&self) -> (f64, f64, f64) {
        let Self { k10, k12, k21, k13, k31, .. } = *self;
        let a0 = k10 * k21 * k31;
        let a1 = k10 * k31 + k21 * k31 + k21 * k13 + k10 * k21 + k31 * k12;
        let a2 = k10 + k12 + k13 + k21 + k31;
        (a2, a1, a0)
    }

    /// Disposition rate constants λ (1/min), largest first.
    pub fn eigenvalues(&self) -> Vec<f64> {
        let Self { k10, k12, k21, .. } = *self;
        match self.compartments() {
            1 => vec![k10],
            2 => {
                let s = k10 + k12 + k21;
                let large = (s + (s * s - 4.0 * k10 * k21).max(0.0).sqrt()) / 2.0;
                // The small root from the product, to avoid cancellation.
                vec![large, k10 * k21 / large]
            }
            _ => {
                let (a2, a1, a0) = self.characteristic();
                cubic_roots(a2, a1, a0).to_vec()
            }
        }
    }

    /// Plasma response to a unit bolus (1/L): Σ Aᵢ·e^(−λᵢ·t) with
    /// Aᵢ = (k21−λᵢ)(k31−λᵢ) / Π_{j≠i}(λⱼ−λᵢ) / V1 (§4.3).
    pub fn bolus_coefficients(&self) -> Vec<f64> {
        let lambda = self.eigenvalues();
        let n = lambda.len();
        (0..n)
            .map(|i| {
                let l = lambda[i];
                let mut num = 1.0;
                if n >= 2 {
                    num *= self.k21 - l;
                }
                if n >= 3 {
                    num *= self.k31 - l;
                }
                let den: f64 = (0..n).filter(|&j| j != i).map(|j| lambda[j] - l).product();
                num / den / self.v1_l
            })
            .collect()
    }

    pub(crate) fn unit_bolus(&self) -> ExpSum {
        ExpSum { terms: self.eigenvalues().into_iter().zip(self.bolus_coefficients()).collect() }
    }
}

/// Roots of x³ − a2·x² + a1·x − a0 = 0 (all real and positive for a mammillary model),
/// largest first, by the trigonometric method with the acos argument clamped (§4.2),
/// each polished by Newton steps.
pub fn cubic_roots(a2: f64, a1: f64, a0: f64) -> [f64; 3] {
    let p = a1 - a2 * a2 / 3.0;
    let q = 2.0 * a2 * a2 * a2 / 27.0 - a1 * a2 / 3.0 + a0;
    let r = (-p * p * p / 27.0).max(0.0).sqrt();
    let phi = if r > 0.0 { (-q / (2.0 * r)).clamp(-1.0, 1.0).acos() / 3.0 } else { 0.0 };
    let r3 = r.cbrt();
    let f = |x: f64| ((x - a2) * x + a1) * x - a0;
    let df = |x: f64| (3.0 * x - 2.0 * a2) * x + a1;
    let mut roots = [0.0; 3];
    for (j, root) in roots.iter_mut().enumerate() {
        let mut x = a2 / 3.0 - 2.0 * r3 * (phi + 2.0 * std::f64::consts::PI * j as f64 / 3.0).cos();
        for _ in 0..3 {
            let d = df(x);
            if d == 0.0 {
                break;
            }
            let next = x - f(x) / d;
            if !(next.is_finite() && f(next).abs() < f(x).abs()) {
                break;
            }
            x = next;
        }
        *root = x;
    }
    roots.sort_by(|a, b| b.total_cmp(a));
    roots
}

/// Relative gap below which two rates count as equal in a convolution. The exact
/// solution then has a t·e^(−rt) term, which a sum of exponentials cannot hold; moving
/// one rate by this fraction changes the answer by about as much, far below anything
/// measurable, and keeps every term finite.
const MIN_RELATIVE_GAP: f64 = 1e-6;

/// Σ cᵢ·e^(−rᵢ·t): a linear response as exponentials, each term (rate 1/min, coefficient).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ExpSum {
    pub terms: Vec<(f64, f64)>,
}

impl ExpSum {
    #[cfg(test)]
    pub fn eval(&self, t: f64) -> f64 {
        self.terms.iter().map(|(r, c)| c * (-r * t).exp()).sum()
    }

    pub fn scaled(&self, k: f64) -> ExpSum {
        ExpSum { terms: self.terms.iter().map(|(r, c)| (*r, c * k)).collect() }
    }

    /// This response passed through a first-order step with rate k: the convolution
    /// with k·e^(−kt). That is an absorption depot (k = ka) in front of the system, or
    /// the effect site (k = ke0) behind it.
    pub fn through_first_order(&self, k: f64) -> ExpSum {
        self.convolve(&ExpSum { terms: vec![(k, k)] })
    }

    /// Convolution with another sum: Σᵢ Σⱼ aᵢ·bⱼ·(e^(−rᵢt) − e^(−sⱼt)) / (sⱼ − rᵢ).
    pub fn convolve(&self, kernel: &ExpSum) -> ExpSum {
        let mut terms = Vec::with_capacity(self.terms.len() * (kernel.terms.len() + 1));
        for &(r, a) in &self.terms {
            for &(s, b) in &kernel.terms {
                let mut gap = s - r;
                let floor = MIN_RELATIVE_GAP * r.abs().max(s.abs());
                if gap.abs() < floor {
                    gap = if gap < 0.0 { -floor } else { floor };
                }
                let c = a * b / gap;
                terms.push((r, c));
                terms.push((r + gap, -c));
            }
        }
        ExpSum { terms }.merged()
    }

    /// Adds terms with the same rate, largest rate first.
    pub fn merged(mut self) -> ExpSum {
        self.terms.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut out: Vec<(f64, f64)> = Vec::with_capacity(self.terms.len());
        for (r, c) in self.terms {
            match out.last_mut() {
                Some(last) if last.0 == r => last.1 += c,
                _ => out.push((r, c)),
            }
        }
        ExpSum { terms: out }
    }
}

/// Which output a run of exponential states adds up to.
#[derive(Debug, Clone)]
struct OutputTerms {
    start: usize,
    end: usize,
}

/// The recursive per-exponential simulator (§4.4) for one individual.
///
/// States are laid out output by output (plasma, then effect site, then metabolite),
/// one per exponential; two more hold the running plasma and metabolite AUC. An input
/// into entry e (0 = central, then one per absorption depot) adds `coef[e][k]` per mg to
/// state k.
#[derive(Debug, Clone)]
pub(crate) struct ExpEngine {
    rates: Vec<f64>,
    coef: Vec<Vec<f64>>,
    plasma: OutputTerms,
    effect: Option<OutputTerms>,
    metabolite: Option<OutputTerms>,
}

/// Decay factors for one step length, reused while the step length repeats.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExpCache {
    dt: f64,
    decay: Vec<f64>,
    gain: Vec<f64>,
    auc_gain: Vec<f64>,
}

/// The parent-to-metabolite link: the metabolite's own disposition and the fraction of
/// the parent's clearance that forms it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetaboliteLink {
    pub disposition: Mammillary,
    pub fraction_formed: f64,
}

impl ExpEngine {
    /// `depot_ka`: one absorption depot per entry after the central one.
    pub fn new(parent: &Mammillary, depot_ka: &[f64], ke0: Option<f64>, metabolite: Option<MetaboliteLink>) -> Self {
        let unit = parent.unit_bolus();
        let plasma: Vec<ExpSum> =
            std::iter::once(unit.clone()).chain(depot_ka.iter().map(|&ka| unit.through_first_order(ka))).collect();
        let mut outputs: Vec<Vec<ExpSum>> = vec![plasma.clone()];
        if let Some(ke0) = ke0 {
            outputs.push(plasma.iter().map(|p| p.through_first_order(ke0)).collect());
        }
        if let Some(link) = metabolite {
            // Metabolite input (mg/min) = fraction formed × CL × Cp(t).
            let feed = link.fraction_formed * parent.clearance_l_per_min();
            let kernel = link.disposition.unit_bolus();
            outputs.push(plasma.iter().map(|p| p.convolve(&kernel).scaled(feed)).collect());
        }
        let entries = plasma.len();
        let mut rates = Vec::new();
        let mut coef = vec![Vec::new(); entries];
        let mut ranges = Vec::new();
        for per_entry in &outputs {
            let start = rates.len();
            let mut union: Vec<f64> = per_entry.iter().flat_map(|s| s.terms.iter().map(|t| t.0)).collect();
            union.sort_by(|a, b| b.total_cmp(a));
            union.dedup();
            for &r in &union {
                rates.push(r);
                for (e, sum) in per_entry.iter().enumerate() {
                    coef[e].push(sum.terms.iter().filter(|t| t.0 == r).map(|t| t.1).sum());
                }
            }
            ranges.push(OutputTerms { start, end: rates.len() });
        }
        let mut ranges = ranges.into_iter();
        let plasma = ranges.next().expect("plasma output");
        let effect = ke0.and_then(|_| ranges.next());
        let metabolite = metabolite.and_then(|_| ranges.next());
        Self { rates, coef, plasma, effect, metabolite }
    }

    pub fn entries(&self) -> usize {
        self.coef.len()
    }

    pub fn state_len(&self) -> usize {
        self.rates.len() + 2
    }

    pub fn bolus(&self, x: &mut [f64], entry: usize, mg: f64) {
        for (s, c) in x.iter_mut().zip(&self.coef[entry]) {
            *s += mg * c;
        }
    }

    /// Advances `dt` minutes with constant input `rates` (mg/min per entry).
    pub fn advance(&self, x: &mut [f64], dt: f64, rates: &[f64], cache: &mut ExpCache) {
        if cache.decay.len() != self.rates.len() || !same_step(cache.dt, dt) {
            cache.dt = dt;
            cache.decay.clear();
            cache.gain.clear();
            cache.auc_gain.clear();
            for &r in &self.rates {
                let z = r * dt;
                let one_minus = -(-z).exp_m1();
                cache.decay.push(1.0 - one_minus);
                cache.gain.push(one_minus / r);
                // (dt − (1 − e^(−z))/r)/r = (z − 1 + e^(−z))/r², by series when z is small.
                let phi2 = if z < 1e-4 { z * z * (0.5 - z / 6.0 + z * z / 24.0) } else { z - one_minus };
                cache.auc_gain.push(phi2 / (r * r));
            }
        }
        let n = self.rates.len();
        let (states, auc) = x.split_at_mut(n);
        let any_input = rates.iter().any(|r| *r != 0.0);
        let mut auc_p = 0.0;
        let mut auc_m = 0.0;
        for k in 0..n {
            let input = if any_input { rates.iter().zip(&self.coef).map(|(r, c)| r * c[k]).sum() } else { 0.0 };
            let old = states[k];
            states[k] = old * cache.decay[k] + input * cache.gain[k];
            let area = old * cache.gain[k] + input * cache.auc_gain[k];
            if k < self.plasma.end {
                auc_p += area;
            } else if self.metabolite.as_ref().is_some_and(|m| k >= m.start) {
                auc_m += area;
            }
        }
        auc[0] += auc_p;
        auc[1] += auc_m;
    }

    /// (plasma, effect, metabolite) in mg/L, then the plasma and metabolite AUC in mg·min/L.
    pub fn observe(&self, x: &[f64]) -> [f64; 5] {
        let sum = |o: &OutputTerms| x[o.start..o.end].iter().sum::<f64>();
        let n = self.rates.len();
        [
            sum(&self.plasma),
            self.effect.as_ref().map_or(f64::NAN, sum),
            self.metabolite.as_ref().map_or(f64::NAN, sum),
            x[n],
            if self.metabolite.is_some() { x[n + 1] } else { f64::NAN },
        ]
    }

    pub fn has_effect(&self) -> bool {
        self.effect.is_some()
    }
    pub fn has_metabolite(&self) -> bool {
        self.metabolite.is_some()
    }
}

/// Step lengths that differ only by rounding (k·h − (k−1)·h) share cached factors.
pub(crate) fn same_step(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convolution_of_two_exponentials_matches_the_closed_form() {
        // e^{-t} ⊗ e^{-2t} = e^{-t} − e^{-2t}.
        let a = ExpSum { terms: vec![(1.0, 1.0)] };
        let b = ExpSum { terms: vec![(2.0, 1.0)] };
        let c = a.convolve(&b);
        for t in [0.0f64, 0.3, 1.0, 5.0] {
            assert!((c.eval(t) - ((-t).exp() - (-2.0 * t).exp())).abs() < 1e-15);
        }
    }

    #[test]
    fn nearly_equal_rates_stay_finite_and_close_to_t_exp() {
        let a = ExpSum { terms: vec![(0.5, 1.0)] };
        let c = a.through_first_order(0.5);
        // Exact: 0.5·t·e^{-0.5t}.
        for t in [0.5f64, 2.0, 10.0] {
            let exact = 0.5 * t * (-0.5 * t).exp();
            assert!((c.eval(t) - exact).abs() < 1e-5 * exact, "t {t}: {} vs {exact}", c.eval(t));
        }
    }
}
