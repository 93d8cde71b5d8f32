//! The PK simulation a clinician asks for: a request in clinicians' words (model, weight,
//! regimen, grid, population, threshold) turned into curves, bands and the time below a
//! threshold, through `keta-pk`. Pure and CPU-bound: the JSON API, the session screen and
//! `keta pk simulate` all call [`simulate_pk`], each with its own bound on virtual patients.

use keta_pk::{AbsorptionOverride, AbsorptionRate, AbsorptionRoute, Ancestry, EffectSite, Model, Options, Patient};
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Where a threshold is watched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdSite {
    #[default]
    Plasma,
    EffectSite,
    Metabolite,
}

/// Values the caller supplies for an extravascular route (the racemic models publish
/// bioavailability but no absorption rate: pk-reference §1.6).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbsorptionInput {
    /// `im`, `oral`, `sublingual` or `intranasal`.
    pub route: String,
    #[serde(default)]
    pub bioavailability: Option<f64>,
    /// Absorption rate constant, 1/min.
    #[serde(default)]
    pub ka_per_min: Option<f64>,
    /// Or the observed time to peak plasma concentration, from which ka is solved.
    #[serde(default)]
    pub tmax_min: Option<f64>,
    #[serde(default)]
    pub lag_min: Option<f64>,
}

/// Between-subject variability the caller assumes, as a CV on one parameter.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssumedCv {
    pub parameter: String,
    pub cv_percent: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PopulationInput {
    /// Virtual patients (at most 5000 over the API).
    pub patients: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Needed for models that publish no variability (the racemic TCI models): an
    /// assumption of the caller's, stated as such in the response.
    #[serde(default)]
    pub cv_percent: Vec<AssumedCv>,
}

fn default_seed() -> u64 {
    1
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PkSimulateRequest {
    /// A model id or alias from keta-pk (`domino`, `clements-250`, `hijazi`, `herd`,
    /// `hornik`, `fanta-otto`, `perez-ruixo`).
    pub model: String,
    pub weight_kg: f64,
    #[serde(default)]
    pub age_years: Option<f64>,
    /// `not-asian`, `asian-not-japanese` or `japanese` (Perez-Ruixo's covariate).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub ancestry: Option<Ancestry>,
    /// As clinicians say it: `"0.5 mg/kg over 40 min"`, `"56 mg intranasal"`,
    /// `"35 mg bolus; 0.25 mg/kg over 20 min at 60"`.
    pub regimen: String,
    pub until_min: f64,
    pub step_min: f64,
    /// A ke0 on record for the model by id (`"off"` for none); default: the model's.
    #[serde(default)]
    pub ke0: Option<String>,
    /// Or a ke0 value, 1/min.
    #[serde(default)]
    pub ke0_per_min: Option<f64>,
    #[serde(default)]
    pub absorption: Vec<AbsorptionInput>,
    #[serde(default)]
    pub population: Option<PopulationInput>,
    /// Predict when the concentration falls below this level after the last dose.
    #[serde(default)]
    pub threshold_ng_ml: Option<f64>,
    #[serde(default)]
    pub threshold_site: ThresholdSite,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PkModelInfo {
    pub id: String,
    pub name: String,
    pub drug: String,
    pub population: String,
    pub citation: String,
    pub notes: Vec<String>,
    pub metabolite: Option<String>,
    /// The ke0 used and where it came from, if the curve has an effect site.
    pub ke0_per_min: Option<f64>,
    pub ke0_source: Option<String>,
}

/// Percentile bands, ng/mL, at each output time.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PkBand {
    pub p05: Vec<f64>,
    pub median: Vec<f64>,
    pub p95: Vec<f64>,
}

impl From<keta_pk::Band> for PkBand {
    fn from(b: keta_pk::Band) -> Self {
        Self { p05: b.p05, median: b.median, p95: b.p95 }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PkPopulation {
    pub patients: usize,
    pub seed: u64,
    /// Where the variability came from: the model's publication, or the caller's assumption.
    pub variability: String,
    pub plasma: PkBand,
    pub effect: Option<PkBand>,
    pub metabolite: Option<PkBand>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BelowThreshold {
    pub threshold_ng_ml: f64,
    pub site: ThresholdSite,
    /// When the last dose ended.
    pub input_ends_min: f64,
    /// When the concentration falls below the threshold for good; null if not within two weeks.
    pub below_from_min: Option<f64>,
    /// `below_from_min − input_ends_min`.
    pub minutes_after_last_dose: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PkSimulation {
    pub model: PkModelInfo,
    pub weight_kg: f64,
    pub regimen: String,
    pub times_min: Vec<f64>,
    pub plasma_ng_ml: Vec<f64>,
    /// Null when the model has no effect site (or it was turned off).
    pub effect_ng_ml: Option<Vec<f64>>,
    /// Null when the model has no metabolite.
    pub metabolite_ng_ml: Option<Vec<f64>>,
    pub population: Option<PkPopulation>,
    pub below_threshold: Option<BelowThreshold>,
    /// Covariates outside the model's population, and the like.
    pub warnings: Vec<String>,
}

/// The most output points one simulation may ask for.
pub const MAX_POINTS: usize = 50_000;

/// With `max_patients`, bounds a population's work: patients × points ≤ max_patients × this
/// (e.g. 5000 patients on a 24-hour, 2-minute grid over the API).
pub const POINTS_PER_PATIENT: usize = 1_500;

fn pk_err(field: &str, e: impl std::fmt::Display) -> DomainError {
    DomainError::field(field, e.to_string())
}

/// Everything `POST /api/v1/pk/simulate`, the session screen and `keta pk simulate` compute. Pure and
/// CPU-bound: call it off the async runtime. `max_patients` bounds the population.
// Long on purpose: the request's fields mapped one by one onto the model's options, each with its own field error, then
// one run.
#[allow(clippy::too_many_lines)]
pub fn simulate_pk(req: &PkSimulateRequest, max_patients: usize) -> Result<PkSimulation, DomainError> {
    plausible_pk_inputs(req)?;
    let model = Model::named(&req.model).map_err(|e| pk_err("model", e))?;
    let mut patient = Patient::new(req.weight_kg);
    if let Some(a) = req.age_years {
        patient = patient.with_age(a);
    }
    if let Some(a) = req.ancestry {
        patient = patient.with_ancestry(a);
    }
    let effect_site = match (req.ke0.as_deref(), req.ke0_per_min) {
        (Some(_), Some(_)) => return Err(DomainError::field("ke0", "give ke0 (an id) or ke0_per_min, not both")),
        (Some("off"), None) => EffectSite::Off,
        (Some(id), None) => EffectSite::Named(id.to_string()),
        (None, Some(k)) => EffectSite::Ke0PerMin(k),
        (None, None) => EffectSite::ModelDefault,
    };
    let mut options = Options::default().with_effect_site(effect_site);
    for (i, a) in req.absorption.iter().enumerate() {
        let field = format!("absorption[{i}]");
        let route = AbsorptionRoute::ALL.into_iter().find(|r| r.key() == a.route).ok_or_else(|| {
            DomainError::field(&field, format!("unknown route '{}': use im, oral, sublingual or intranasal", a.route))
        })?;
        let ka = match (a.ka_per_min, a.tmax_min) {
            (Some(_), Some(_)) => return Err(DomainError::field(&field, "give ka_per_min or tmax_min, not both")),
            (Some(k), None) => Some(AbsorptionRate::PerMin(k)),
            (None, Some(t)) => Some(AbsorptionRate::TimeToPeakMin(t)),
            (None, None) => None,
        };
        options = options
            .with_absorption(route, AbsorptionOverride { bioavailability: a.bioavailability, ka, lag_min: a.lag_min });
    }
    let points = (req.until_min / req.step_min).floor() + 1.0;
    if points > MAX_POINTS as f64 {
        return Err(DomainError::field(
            "step_min",
            format!("{points} output points is too many: at most {MAX_POINTS}; use a larger step"),
        ));
    }
    let regimen: keta_pk::Regimen = req.regimen.parse().map_err(|e| pk_err("regimen", e))?;
    let ind = model.individual(&patient, &options).map_err(|e| pk_err("model", e))?;
    let times = keta_pk::grid(req.until_min, req.step_min);
    let profile = keta_pk::simulate(&ind, &regimen, &times).map_err(|e| pk_err("regimen", e))?;
    let series =
        |f: fn(&keta_pk::Sample) -> Option<f64>| -> Option<Vec<f64>> { profile.samples.iter().map(f).collect() };
    let effect = series(|s| s.effect_ng_ml);
    let metabolite = series(|s| s.metabolite_ng_ml);

    let population = match &req.population {
        None => None,
        Some(pop) => {
            if pop.patients == 0 || pop.patients > max_patients {
                return Err(DomainError::field(
                    "population.patients",
                    format!("between 1 and {max_patients} virtual patients"),
                ));
            }
            // Bounds the CPU one request can take: patients × output points.
            let work = pop.patients.saturating_mul(times.len());
            if work > max_patients.saturating_mul(POINTS_PER_PATIENT) {
                return Err(DomainError::field(
                    "population.patients",
                    format!(
                        "{} patients × {} output points is too much work for one request: at most {}; use fewer patients or a larger step",
                        pop.patients,
                        times.len(),
                        max_patients.saturating_mul(POINTS_PER_PATIENT)
                    ),
                ));
            }
            let (variability, described) = if pop.cv_percent.is_empty() {
                match model.published_variability() {
                    Some(_) => (None, format!("published with the model ({})", model.citation())),
                    None => {
                        return Err(DomainError::field(
                            "population.cv_percent",
                            format!(
                                "{} publishes no between-subject variability: give cv_percent for its parameters (e.g. v1, k10); that is your assumption, not a published value",
                                model.name()
                            ),
                        ));
                    }
                }
            } else {
                let cvs: Vec<(&str, f64)> =
                    pop.cv_percent.iter().map(|c| (c.parameter.as_str(), c.cv_percent / 100.0)).collect();
                let v = keta_pk::Variability::log_normal_cv(&cvs, "assumed by the caller")
                    .map_err(|e| pk_err("population.cv_percent", e))?;
                let text = pop
                    .cv_percent
                    .iter()
                    .map(|c| format!("{} {}%", c.parameter, c.cv_percent))
                    .collect::<Vec<_>>()
                    .join(", ");
                (Some(v), format!("assumed by the caller, not published: log-normal CV {text}"))
            };
            let settings = keta_pk::PopulationSettings { patients: pop.patients, seed: pop.seed, variability };
            let p = keta_pk::simulate_population(model, &patient, &options, &regimen, &times, &settings)
                .map_err(|e| pk_err("population", e))?;
            Some(PkPopulation {
                patients: p.patients,
                seed: p.seed,
                variability: described,
                plasma: p.plasma.into(),
                effect: p.effect.map(Into::into),
                metabolite: p.metabolite.map(Into::into),
            })
        }
    };

    let below_threshold = match req.threshold_ng_ml {
        None => None,
        Some(t) => {
            let site = match req.threshold_site {
                ThresholdSite::Plasma => keta_pk::Site::Plasma,
                ThresholdSite::EffectSite => keta_pk::Site::EffectSite,
                ThresholdSite::Metabolite => keta_pk::Site::Metabolite,
            };
            let d = keta_pk::decrement_time(&ind, &regimen, site, t).map_err(|e| pk_err("threshold_ng_ml", e))?;
            let input_ends = regimen
                .doses
                .iter()
                .map(|d| match d.route {
                    keta_pk::Route::IvInfusion { duration_min } => d.at_min + duration_min,
                    _ => d.at_min,
                })
                .fold(0.0, f64::max);
            Some(BelowThreshold {
                threshold_ng_ml: t,
                site: req.threshold_site,
                input_ends_min: d.map_or(input_ends, |d| d.input_ends_min),
                below_from_min: d.map(|d| d.below_from_min),
                minutes_after_last_dose: d.map(|d| d.minutes_after_input),
            })
        }
    };

    let ke0 = ind.ke0();
    let out = PkSimulation {
        model: PkModelInfo {
            id: model.id().to_string(),
            name: model.name().to_string(),
            drug: model.drug().to_string(),
            population: model.population().to_string(),
            citation: model.citation().to_string(),
            notes: model.notes().to_vec(),
            metabolite: model.metabolite().map(String::from),
            ke0_per_min: ke0.map(|k| k.value),
            ke0_source: ke0.map(|k| k.source.clone()),
        },
        weight_kg: req.weight_kg,
        regimen: regimen.doses.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        times_min: times,
        plasma_ng_ml: profile.plasma(),
        effect_ng_ml: effect,
        metabolite_ng_ml: metabolite,
        population,
        below_threshold,
        warnings: ind.warnings().to_vec(),
    };
    if !out.all_finite() {
        return Err(DomainError::field(
            "regimen",
            "the model cannot compute finite concentrations for this regimen and patient; check the doses' units and the timing",
        ));
    }
    Ok(out)
}

/// Every number a caller types is inside its plausible range (`data/rules/plausible-ranges.toml`);
/// all problems at once.
fn plausible_pk_inputs(req: &PkSimulateRequest) -> Result<(), DomainError> {
    use crate::plausible::{Quantity, check, ranges};
    let r = ranges();
    let mut v = crate::error::Validator::new();
    check(&mut v, "weight_kg", r.body_weight(crate::units::Kilograms(req.weight_kg)));
    if let Some(a) = req.age_years {
        check(&mut v, "age_years", r.quantity_or_zero(Quantity::AgeYears, a, "the age"));
    }
    check(&mut v, "until_min", r.quantity_or_zero(Quantity::Minutes, req.until_min, "the horizon"));
    check(&mut v, "step_min", r.quantity(Quantity::Minutes, req.step_min, "the step"));
    if let Some(k) = req.ke0_per_min {
        check(&mut v, "ke0_per_min", r.quantity(Quantity::PerMin, k, "ke0"));
    }
    for (i, a) in req.absorption.iter().enumerate() {
        if let Some(k) = a.ka_per_min {
            check(&mut v, &format!("absorption[{i}].ka_per_min"), r.quantity(Quantity::PerMin, k, "ka"));
        }
        if let Some(t) = a.tmax_min {
            check(&mut v, &format!("absorption[{i}].tmax_min"), r.quantity(Quantity::Minutes, t, "the time to peak"));
        }
        if let Some(t) = a.lag_min {
            check(&mut v, &format!("absorption[{i}].lag_min"), r.quantity_or_zero(Quantity::Minutes, t, "the lag"));
        }
        if let Some(f) = a.bioavailability {
            v.check(
                f.is_finite() && f > 0.0 && f <= 1.0,
                &format!("absorption[{i}].bioavailability"),
                "the bioavailability is a fraction above 0 and at most 1",
            );
        }
    }
    if let Some(pop) = &req.population {
        for (i, c) in pop.cv_percent.iter().enumerate() {
            check(
                &mut v,
                &format!("population.cv_percent[{i}].cv_percent"),
                r.quantity(Quantity::CvPercent, c.cv_percent, "the CV"),
            );
        }
    }
    if let Some(t) = req.threshold_ng_ml {
        v.check(t.is_finite() && t > 0.0, "threshold_ng_ml", "the threshold is a positive concentration in ng/mL");
    }
    v.finish()
}

impl PkSimulation {
    /// JSON has no infinity or NaN (serde writes them as null, which the schema forbids): a
    /// simulation that produced one is refused, never sent.
    fn all_finite(&self) -> bool {
        let all = |xs: &[f64]| xs.iter().all(|x| x.is_finite());
        let band = |b: &PkBand| all(&b.p05) && all(&b.median) && all(&b.p95);
        all(&self.times_min)
            && all(&self.plasma_ng_ml)
            && self.effect_ng_ml.as_deref().is_none_or(all)
            && self.metabolite_ng_ml.as_deref().is_none_or(all)
            && self.population.as_ref().is_none_or(|p| {
                band(&p.plasma) && p.effect.as_ref().is_none_or(band) && p.metabolite.as_ref().is_none_or(band)
            })
            && self.below_threshold.as_ref().is_none_or(|b| {
                b.input_ends_min.is_finite()
                    && b.below_from_min.is_none_or(f64::is_finite)
                    && b.minutes_after_last_dose.is_none_or(f64::is_finite)
            })
            && self.model.ke0_per_min.is_none_or(f64::is_finite)
    }
}
