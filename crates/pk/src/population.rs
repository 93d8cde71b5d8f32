//! Population simulation: many virtual patients drawn from a model's between-subject
//! variability, summarised as the median and the 5th–95th percentile band at each time.
//!
//! Each parameter with variability gets a deviation eta ~ N(0, ω²), jointly normal where
//! the model publishes covariances: individual = typical · e^eta (log-normal), or
//! logit(individual) = logit(typical) + eta for fractions such as Perez-Ruixo's FRn.
//! Published CVs become ω² = ln(1 + CV²). The draws come from ChaCha8 seeded by the
//! caller, with normal deviates by Box–Muller written here, so a seed gives the same
//! patients on every machine and every run.
//!
//! All patients step through the grid together, a block of output times at a time, and
//! the percentiles are taken per time point, so memory grows with the number of
//! patients, not patients × times.
//! Percentiles interpolate between order statistics (Hyndman & Fan type 7, as R's and
//! numpy's defaults).

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::Serialize;

use crate::dosing::{Stepper, check_times, plan};
use crate::error::{PkError, invalid};
use crate::individual::Individual;
use crate::model::Model;
use crate::options::{Options, Patient};
use crate::regimen::Regimen;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EtaScale {
    /// individual = typical · e^eta.
    LogNormal,
    /// logit(individual) = logit(typical) + eta.
    Logit,
}

/// Variability on one parameter (`metabolite.` prefixes the metabolite's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Eta {
    pub parameter: String,
    pub scale: EtaScale,
    /// ω², the variance of eta.
    pub variance: f64,
    pub source: String,
}

/// A covariance between the etas of two parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Covariance {
    pub parameters: [String; 2],
    pub value: f64,
    pub source: String,
}

/// Between-subject variability: etas with their covariance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variability {
    etas: Vec<Eta>,
    covariances: Vec<Covariance>,
    covariance: Vec<Vec<f64>>,
    #[serde(skip)]
    cholesky: Vec<Vec<f64>>,
}

impl Variability {
    /// Etas with optional covariances between pairs of them (by parameter name).
    pub fn new(etas: Vec<Eta>, covariances: Vec<Covariance>) -> Result<Self, PkError> {
        let n = etas.len();
        if etas.iter().any(|e| !(e.variance >= 0.0 && e.variance.is_finite())) {
            return Err(invalid("variances must be zero or more"));
        }
        let mut cov = vec![vec![0.0; n]; n];
        for (i, e) in etas.iter().enumerate() {
            cov[i][i] = e.variance;
        }
        for c in &covariances {
            let ([a, b], v) = (&c.parameters, &c.value);
            let index = |name: &str| {
                etas.iter()
                    .position(|e| e.parameter == name)
                    .ok_or_else(|| invalid(format!("covariance names '{name}', which has no variance")))
            };
            let (i, j) = (index(a)?, index(b)?);
            cov[i][j] = *v;
            cov[j][i] = *v;
        }
        let cholesky = cholesky(&cov).ok_or_else(|| invalid("the covariance matrix is not positive definite"))?;
        Ok(Self { etas, covariances, covariance: cov, cholesky })
    }

    /// Independent log-normal variability from CVs given as fractions (0.3 = 30%),
    /// e.g. for a model that publishes none.
    pub fn log_normal_cv(cvs: &[(&str, f64)], source: &str) -> Result<Self, PkError> {
        let etas = cvs
            .iter()
            .map(|(p, cv)| Eta {
                parameter: p.to_string(),
                scale: EtaScale::LogNormal,
                variance: (1.0 + cv * cv).ln(),
                source: source.to_string(),
            })
            .collect();
        Self::new(etas, Vec::new())
    }

    pub fn etas(&self) -> &[Eta] {
        &self.etas
    }
    /// The full covariance matrix of the etas, in the order of [`Self::etas`].
    pub fn covariance(&self) -> &[Vec<f64>] {
        &self.covariance
    }
    pub fn covariances(&self) -> &[Covariance] {
        &self.covariances
    }

    fn sample(&self, normal: &mut Normal) -> Vec<(String, EtaScale, f64)> {
        let z: Vec<f64> = (0..self.etas.len()).map(|_| normal.next()).collect();
        self.etas
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let eta = self.cholesky[i][..=i].iter().zip(&z).map(|(l, z)| l * z).sum();
                (e.parameter.clone(), e.scale, eta)
            })
            .collect()
    }
}

/// Lower-triangular L with L·Lᵀ = a; zero rows allowed for zero variances.
fn cholesky(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if s < -1e-12 {
                    return None;
                }
                l[i][i] = s.max(0.0).sqrt();
            } else if l[j][j] > 0.0 {
                l[i][j] = s / l[j][j];
            } else if s.abs() > 1e-12 {
                return None;
            }
        }
    }
    Some(l)
}

/// Standard normal deviates by Box–Muller from a seeded ChaCha8 stream.
struct Normal {
    rng: ChaCha8Rng,
    spare: Option<f64>,
}

impl Normal {
    fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed), spare: None }
    }
    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64)
    }
    fn next(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * self.uniform();
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PopulationSettings {
    pub patients: usize,
    pub seed: u64,
    /// `None` uses the model's published variability (an error if it has none).
    pub variability: Option<Variability>,
}

impl Default for PopulationSettings {
    fn default() -> Self {
        Self { patients: 1000, seed: 1, variability: None }
    }
}

/// Percentiles at each output time, ng/mL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Band {
    pub p05: Vec<f64>,
    pub median: Vec<f64>,
    pub p95: Vec<f64>,
}

impl Band {
    fn with_capacity(n: usize) -> Self {
        Self { p05: Vec::with_capacity(n), median: Vec::with_capacity(n), p95: Vec::with_capacity(n) }
    }
    fn push(&mut self, values: &mut [f64]) {
        self.p05.push(quantile(values, 0.05));
        self.median.push(quantile(values, 0.5));
        self.p95.push(quantile(values, 0.95));
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PopulationProfile {
    pub model_id: String,
    pub patients: usize,
    pub seed: u64,
    pub times_min: Vec<f64>,
    pub plasma: Band,
    pub effect: Option<Band>,
    pub metabolite: Option<Band>,
}

/// Output times simulated per pass over the patients.
const TIME_BLOCK: usize = 64;

/// Type-7 quantile; reorders `values`.
pub(crate) fn quantile(values: &mut [f64], p: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * p;
    let lo = h.floor() as usize;
    let (_, x_lo, right) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let x_lo = *x_lo;
    match right.iter().copied().min_by(f64::total_cmp) {
        Some(x_hi) if lo + 1 < n => x_lo + (h - lo as f64) * (x_hi - x_lo),
        _ => x_lo,
    }
}

/// The typical patient's covariates with `settings.patients` draws of between-subject
/// variability, all given `regimen`; bands at `times_min`.
///
/// This is what the benchmark's 10,000-patient workload calls.
pub fn simulate_population(
    model: &Model,
    patient: &Patient,
    options: &Options,
    regimen: &Regimen,
    times_min: &[f64],
    settings: &PopulationSettings,
) -> Result<PopulationProfile, PkError> {
    check_times(times_min)?;
    if settings.patients == 0 {
        return Err(invalid("a population needs at least one patient"));
    }
    let variability = settings.variability.as_ref().or(model.published_variability()).ok_or_else(|| PkError::MissingInput {
        model: model.name().to_string(),
        message: "no between-subject variability is published for this model in the reference; supply it (e.g. CV on cl or v1)".into(),
    })?;
    for e in variability.etas() {
        if !model.has_parameter(&e.parameter) {
            return Err(invalid(format!(
                "variability on '{}', which {} does not have; its parameters: {}",
                e.parameter,
                model.name(),
                model.parameter_names().join(", ")
            )));
        }
    }
    let resolved = model.resolve(patient, options)?;
    let mut normal = Normal::new(settings.seed);
    let individuals = (0..settings.patients)
        .map(|_| model.build(patient, &resolved, &variability.sample(&mut normal)))
        .collect::<Result<Vec<Individual>, _>>()?;
    let mut steppers = individuals
        .iter()
        .map(|ind| Ok(Stepper::new(ind, plan(ind, regimen)?)))
        .collect::<Result<Vec<_>, PkError>>()?;

    let n = settings.patients;
    let has_effect = individuals[0].has_effect_site();
    let has_metabolite = individuals[0].has_metabolite();
    // Patients advance through a block of output times at a time, so each patient's
    // solver state and cached propagators stay in cache for the whole block; the
    // buffers hold one block: [output][time in block][patient].
    let mut buffers = [vec![0.0; n * TIME_BLOCK], vec![0.0; n * TIME_BLOCK], vec![0.0; n * TIME_BLOCK]];
    let mut bands = [
        Band::with_capacity(times_min.len()),
        Band::with_capacity(times_min.len()),
        Band::with_capacity(times_min.len()),
    ];
    for block in times_min.chunks(TIME_BLOCK) {
        for (i, s) in steppers.iter_mut().enumerate() {
            for (j, &t) in block.iter().enumerate() {
                let c = s.advance_to(t);
                buffers[0][j * n + i] = c.plasma_ng_ml;
                buffers[1][j * n + i] = c.effect_ng_ml.unwrap_or(f64::NAN);
                buffers[2][j * n + i] = c.metabolite_ng_ml.unwrap_or(f64::NAN);
            }
        }
        for j in 0..block.len() {
            for (o, present) in [(0, true), (1, has_effect), (2, has_metabolite)] {
                if present {
                    bands[o].push(&mut buffers[o][j * n..(j + 1) * n]);
                }
            }
        }
    }
    let [plasma, effect, metabolite] = bands;
    Ok(PopulationProfile {
        model_id: model.id().to_string(),
        patients: n,
        seed: settings.seed,
        times_min: times_min.to_vec(),
        plasma,
        effect: has_effect.then_some(effect),
        metabolite: has_metabolite.then_some(metabolite),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type7_quantiles_match_numpy() {
        let mut v = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&mut v, 0.5), 3.0);
        assert!((quantile(&mut v, 0.05) - 1.2).abs() < 1e-12);
        assert!((quantile(&mut v, 0.95) - 4.8).abs() < 1e-12);
        let mut one = vec![7.0];
        assert_eq!(quantile(&mut one, 0.95), 7.0);
    }

    #[test]
    fn normal_deviates_have_unit_moments_and_repeat_with_the_seed() {
        let mut a = Normal::new(42);
        let xs: Vec<f64> = (0..200_000).map(|_| a.next()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
        let mut b = Normal::new(42);
        assert!(xs.iter().take(10).all(|x| *x == b.next()));
    }

    #[test]
    fn correlated_etas_follow_the_covariance() {
        let etas = vec![
            Eta { parameter: "v1".into(), scale: EtaScale::LogNormal, variance: 0.084177, source: String::new() },
            Eta { parameter: "cl".into(), scale: EtaScale::LogNormal, variance: 0.026048, source: String::new() },
        ];
        let v = Variability::new(
            etas,
            vec![Covariance { parameters: ["v1".into(), "cl".into()], value: 0.02261, source: String::new() }],
        )
        .unwrap();
        let mut normal = Normal::new(7);
        let draws: Vec<Vec<f64>> = (0..100_000).map(|_| v.sample(&mut normal).iter().map(|e| e.2).collect()).collect();
        let cov = draws.iter().map(|d| d[0] * d[1]).sum::<f64>() / draws.len() as f64;
        let var0 = draws.iter().map(|d| d[0] * d[0]).sum::<f64>() / draws.len() as f64;
        assert!((cov - 0.02261).abs() < 0.002, "covariance {cov}");
        assert!((var0 - 0.084177).abs() < 0.003, "variance {var0}");
    }
}
