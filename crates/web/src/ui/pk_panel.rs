//! The session screen's "Predicted concentration" panel: the predicted plasma
//! and effect-site curves of the session's dose (0–240 min after the dose started) under
//! a named population model, the model's published population band when it has one, the
//! observed MOAA/S and CADSS scores on the same time axis, and when the concentration is
//! predicted to fall below the level the clinic sets.
//!
//! Drawn as server-side SVG in the style of [`super::trajectory`]: a view model rendered
//! by an askama template, classes only (the CSP allows no inline style).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use keta_domain::course::Route;
use keta_domain::dosing::DoseRecord;
use keta_domain::protocols::Protocol;
use time::OffsetDateTime;

use super::clock::SiteClock;
use crate::api::dosing::API_MAX_PATIENTS;
use keta_domain::pk_simulation::{PkSimulateRequest, PkSimulation, PopulationInput, simulate_pk};

/// The site setting that holds the clinic's level, ng/mL.
pub const THRESHOLD_SETTING: &str = "pk_threshold_ng_ml";
/// Minutes after the dose started that the chart covers.
pub const SPAN_MIN: f64 = 240.0;
const STEP_MIN: f64 = 2.0;
/// Virtual patients for the band (≤ 500 keeps the page fast; results are cached too).
const BAND_PATIENTS: usize = 300;

pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 384.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 110.0;
const TOP: f64 = 14.0;
const PLOT_BOTTOM: f64 = 222.0;
const MOAAS_ROW: f64 = 262.0;
/// CADSS has a scale of its own (a row of labelled dots had none): 0 at the
/// bottom, the instrument's maximum total at the top.
const CADSS_TOP: f64 = 286.0;
const CADSS_BOTTOM: f64 = 346.0;

/// What the prediction is of: the dose as recorded (or planned).
pub struct DoseInput {
    pub route: Route,
    pub dose_mg: f64,
    pub weight_kg: f64,
    pub infusion_min: Option<f64>,
    pub minutes_between_devices: Option<f64>,
    /// "recorded dose, checked by …" / "planned dose".
    pub basis: String,
}

impl DoseInput {
    /// From the session's last dose record, else its planned dose (with the course
    /// protocol's infusion time and device spacing, and the chart's weight).
    pub fn from_records(
        route: Route,
        records: &[DoseRecord],
        planned_mg: Option<f64>,
        weight_kg: Option<f64>,
        protocol: Option<&Protocol>,
    ) -> Option<Self> {
        if let Some(r) = records.last() {
            let c = &r.calculation;
            return Some(Self {
                route,
                dose_mg: c.dose_mg.0,
                weight_kg: c.weight_kg.0,
                infusion_min: c
                    .infusion_min
                    .map(|m| m.0 as f64)
                    .or_else(|| protocol.and_then(|p| p.infusion.as_ref()?.minutes.as_ref().map(|v| v.value))),
                minutes_between_devices: c
                    .nasal
                    .as_ref()
                    .map(|n| n.minutes_between_devices)
                    .or_else(|| protocol.and_then(|p| p.device.as_ref().map(|d| d.minutes_between.value))),
                basis: format!("the recorded dose ({} mg), checked by {}", num(c.dose_mg.0), r.checked_by),
            });
        }
        let mg = planned_mg?;
        Some(Self {
            route,
            dose_mg: mg,
            weight_kg: weight_kg?,
            infusion_min: protocol.and_then(|p| p.infusion.as_ref()?.minutes.as_ref().map(|v| v.value)),
            minutes_between_devices: protocol.and_then(|p| p.device.as_ref().map(|d| d.minutes_between.value)),
            basis: format!("the planned dose ({} mg); no dose calculation recorded yet", num(mg)),
        })
    }
}

/// The model and regimen for a dose, or why there is none.
pub fn request_for(d: &DoseInput, age_years: Option<f64>, threshold: Option<f64>) -> Result<PkSimulateRequest, String> {
    let (model, regimen) = match d.route {
        Route::IvRacemic => match d.infusion_min {
            Some(m) if m > 0.0 => ("domino", format!("{} mg over {} min", num(d.dose_mg), num(m))),
            _ => {
                return Err(
                    "no infusion time is recorded for this dose: record the dose calculation to see the prediction"
                        .into(),
                );
            }
        },
        Route::IntranasalEsketamine => {
            // When neither the calculation nor the course's protocol says, the label
            // protocol's gap between devices (data/protocols, clinical-reference §2.3).
            let label_gap = || {
                keta_domain::protocols::ProtocolLibrary::builtin()
                    .get("esketamine-trd")
                    .and_then(|p| p.device.as_ref().map(|d| d.minutes_between.value))
            };
            let Some(gap) = d.minutes_between_devices.or_else(label_gap) else {
                return Err("no time between nasal devices is recorded or in the protocol library".into());
            };
            ("perez-ruixo", format!("{} mg intranasal devices {} min apart", num(d.dose_mg), num(gap)))
        }
        Route::ImRacemic | Route::OralRacemic | Route::SublingualRacemic => {
            return Err(format!(
                "no model for this route: the reference gives no absorption rate for {} ketamine, and none is assumed",
                d.route.label()
            ));
        }
    };
    let m = keta_pk::Model::named(model).map_err(|e| e.to_string())?;
    let population =
        m.published_variability().map(|_| PopulationInput { patients: BAND_PATIENTS, seed: 1, cv_percent: vec![] });
    Ok(PkSimulateRequest {
        model: model.into(),
        weight_kg: d.weight_kg,
        age_years: if model == "perez-ruixo" { age_years } else { None },
        ancestry: None,
        regimen,
        until_min: SPAN_MIN,
        step_min: STEP_MIN,
        ke0: None,
        ke0_per_min: None,
        absorption: vec![],
        population,
        threshold_ng_ml: threshold,
        threshold_site: Default::default(),
    })
}

/// Runs the simulation off the async runtime, with a small process-wide cache (the same
/// dose is viewed many times during a session).
pub async fn simulate_cached(req: PkSimulateRequest) -> Result<PkSimulation, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, PkSimulation>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = serde_json::to_string(&req).map_err(|e| e.to_string())?;
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(hit);
    }
    let out = tokio::task::spawn_blocking(move || simulate_pk(&req, API_MAX_PATIENTS))
        .await
        .map_err(|e| format!("the simulation failed: {e}"))?
        .map_err(|e| format!("the simulation failed: {e}"))?;
    if let Ok(mut c) = cache.lock() {
        if c.len() >= 128 {
            c.clear();
        }
        c.insert(key, out.clone());
    }
    Ok(out)
}

pub struct Tick {
    pub pos: String,
    pub label: String,
}

pub struct Marker {
    pub x: String,
    pub y: String,
    pub label_y: String,
    pub label: String,
    pub title: String,
}

pub struct PkChart {
    pub view_box: String,
    pub plot_left: String,
    pub plot_right: String,
    pub plot_top: String,
    pub plot_bottom: String,
    pub ytick_x: String,
    pub xtick_y: String,
    pub x_title_x: String,
    pub x_title_y: String,
    pub legend_x: String,
    pub plasma: String,
    pub effect: Option<String>,
    pub metabolite: Option<String>,
    pub band: Option<String>,
    pub threshold_y: Option<String>,
    pub threshold_label_y: String,
    pub threshold_label: String,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub strip_label_x: String,
    pub moaas_row: String,
    pub moaas_label_y: String,
    pub cadss_top: String,
    pub cadss_bottom: String,
    pub cadss_label_y: String,
    /// The CADSS scale: 0, half and the maximum total, right of the plot.
    pub cadss_ticks: Vec<Tick>,
    pub cadss_tick_x: String,
    pub moaas: Vec<Marker>,
    pub cadss: Vec<Marker>,
}

pub struct DataRow {
    pub minute: String,
    pub plasma: String,
    pub effect: String,
}

/// The panel as the template shows it.
#[derive(Default)]
pub struct PkPanel {
    /// Why there is no curve (no weight, no model for the route, …); empty when drawn.
    pub unavailable: String,
    pub model: String,
    pub citation: String,
    pub model_notes: Vec<String>,
    pub ke0_note: String,
    pub regimen: String,
    pub basis: String,
    pub band_note: String,
    pub metabolite_name: String,
    pub summary: String,
    pub chart: Option<PkChart>,
    pub rows: Vec<DataRow>,
    pub warnings: Vec<String>,
    /// "Predicted to fall below …", or the prompt to set a level.
    pub below: String,
    pub below_set: bool,
    pub below_source: String,
    pub below_value: String,
    pub below_error: String,
}

/// An observed score at a time.
pub struct Observed {
    pub at: OffsetDateTime,
    pub score: i32,
}

pub struct PanelInput<'a> {
    pub sim: &'a PkSimulation,
    pub basis: String,
    pub dose_started_at: Option<OffsetDateTime>,
    pub moaas: &'a [Observed],
    pub cadss: &'a [Observed],
    /// The highest total the CADSS form in use can reach (the instrument's `max_total`).
    pub cadss_max: i32,
    pub clock: &'a SiteClock,
}

fn f(x: f64) -> String {
    format!("{x:.1}")
}

/// "35", "0.75", "52.5".
pub fn num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A round axis maximum at or above `v`.
fn nice_max(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// Fills the panel from a simulation.
// Long on purpose: one chart drawn in one place: every curve, marker and tick uses the scale closures set at the top.
#[allow(clippy::too_many_lines)]
pub fn build(p: &mut PkPanel, i: PanelInput<'_>) {
    let sim = i.sim;
    p.model = format!("{} ({}, {})", sim.model.name, sim.model.drug, sim.model.population);
    p.citation = sim.model.citation.clone();
    p.model_notes = sim.model.notes.clone();
    p.ke0_note = match (sim.model.ke0_per_min, &sim.model.ke0_source) {
        (Some(k), Some(src)) => format!("Effect site: ke0 {} /min ({src}).", num(k)),
        _ => "No effect-site curve: the model publishes no ke0.".into(),
    };
    p.regimen = sim.regimen.clone();
    p.basis = i.basis;
    p.metabolite_name = sim.model.metabolite.clone().unwrap_or_default();
    p.warnings = sim.warnings.clone();
    p.band_note = match &sim.population {
        Some(pop) => format!(
            "Shaded: 5th–95th percentile of plasma concentration across {} virtual patients, variability {}.",
            pop.patients, pop.variability
        ),
        None => "No published variability for this model: the typical curve only, no population band.".into(),
    };

    let band = sim.population.as_ref().map(|p| &p.plasma);
    let ymax_data = sim
        .plasma_ng_ml
        .iter()
        .chain(sim.effect_ng_ml.iter().flatten())
        .chain(sim.metabolite_ng_ml.iter().flatten())
        .chain(band.iter().flat_map(|b| b.p95.iter()))
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let threshold = sim.below_threshold.as_ref().map(|b| b.threshold_ng_ml);
    let hi = nice_max(ymax_data.max(threshold.unwrap_or(0.0) * 1.05));
    let pw = WIDTH - LEFT - RIGHT;
    let ph = PLOT_BOTTOM - TOP;
    let x = |m: f64| LEFT + m.clamp(0.0, SPAN_MIN) / SPAN_MIN * pw;
    let y = |v: f64| TOP + (hi - v.clamp(0.0, hi)) / hi * ph;
    let path = |vals: &[f64]| -> String {
        sim.times_min.iter().zip(vals).map(|(t, v)| format!("{},{}", f(x(*t)), f(y(*v)))).collect::<Vec<_>>().join(" ")
    };
    let band_path = band.map(|b| {
        let upper = sim.times_min.iter().zip(&b.p95).map(|(t, v)| format!("{},{}", f(x(*t)), f(y(*v))));
        let lower = sim.times_min.iter().zip(&b.p05).rev().map(|(t, v)| format!("{},{}", f(x(*t)), f(y(*v))));
        upper.chain(lower).collect::<Vec<_>>().join(" ")
    });

    let minutes_of = |at: OffsetDateTime| i.dose_started_at.map(|d| (at - d).as_seconds_f64() / 60.0);
    let cadss_max = f64::from(i.cadss_max.max(1));
    let cadss_y = |v: f64| CADSS_BOTTOM - v.clamp(0.0, cadss_max) / cadss_max * (CADSS_BOTTOM - CADSS_TOP);
    let markers = |obs: &[Observed], row: &dyn Fn(f64) -> f64, name: &str| -> Vec<Marker> {
        obs.iter()
            .filter_map(|o| {
                let m = minutes_of(o.at)?;
                let at = row(f64::from(o.score));
                (0.0..=SPAN_MIN).contains(&m).then(|| Marker {
                    x: f(x(m)),
                    y: f(at),
                    label_y: f(at - 7.0),
                    label: o.score.to_string(),
                    title: format!(
                        "{name} {} at {} ({} min after the dose started)",
                        o.score,
                        i.clock.hm(o.at),
                        num(m.round())
                    ),
                })
            })
            .collect()
    };

    let (threshold_y, threshold_label) = match threshold {
        Some(t) if t <= hi => (Some(f(y(t))), format!("{} ng/mL", num(t))),
        _ => (None, String::new()),
    };
    let y_ticks = (0..=4)
        .map(|k| {
            let v = hi * k as f64 / 4.0;
            Tick { pos: f(y(v) + 4.0), label: num((v * 100.0).round() / 100.0) }
        })
        .collect();
    let x_ticks = (0..=8)
        .map(|k| {
            let m = k as f64 * 30.0;
            let label = match i.dose_started_at {
                Some(d) if k % 2 == 0 => format!("{} ({})", num(m), i.clock.hm(d + time::Duration::minutes(m as i64))),
                _ => num(m),
            };
            Tick { pos: f(x(m)), label }
        })
        .collect();

    p.chart = Some(PkChart {
        view_box: format!("0 0 {WIDTH} {HEIGHT}"),
        plot_left: f(LEFT),
        plot_right: f(WIDTH - RIGHT),
        plot_top: f(TOP),
        plot_bottom: f(PLOT_BOTTOM),
        ytick_x: f(LEFT - 6.0),
        xtick_y: f(PLOT_BOTTOM + 16.0),
        x_title_x: f(LEFT + pw / 2.0),
        x_title_y: f(HEIGHT - 4.0),
        legend_x: f(WIDTH - RIGHT + 6.0),
        plasma: path(&sim.plasma_ng_ml),
        effect: sim.effect_ng_ml.as_deref().map(path),
        metabolite: sim.metabolite_ng_ml.as_deref().map(path),
        band: band_path,
        threshold_label_y: threshold_y.as_ref().map_or_else(String::new, |v| f(v.parse::<f64>().unwrap_or(0.0) - 4.0)),
        threshold_y,
        threshold_label,
        x_ticks,
        y_ticks,
        strip_label_x: f(LEFT - 6.0),
        moaas_row: f(MOAAS_ROW),
        moaas_label_y: f(MOAAS_ROW + 4.0),
        cadss_top: f(CADSS_TOP),
        cadss_bottom: f(CADSS_BOTTOM),
        cadss_label_y: f((CADSS_TOP + CADSS_BOTTOM) / 2.0 + 4.0),
        cadss_ticks: [0.0, cadss_max / 2.0, cadss_max]
            .iter()
            .map(|&v| Tick { pos: f(cadss_y(v) + 4.0), label: num(v) })
            .collect(),
        cadss_tick_x: f(WIDTH - RIGHT + 6.0),
        moaas: markers(i.moaas, &|_| MOAAS_ROW, "MOAA/S"),
        cadss: markers(i.cadss, &cadss_y, "CADSS"),
    });

    let peak = sim
        .times_min
        .iter()
        .zip(&sim.plasma_ng_ml)
        .fold((0.0, 0.0), |acc, (t, v)| if *v > acc.1 { (*t, *v) } else { acc });
    p.summary = format!(
        "Predicted plasma concentration peaks at about {} ng/mL {} min after the dose started ({}).",
        num(peak.1.round()),
        num(peak.0),
        sim.model.name
    );
    p.rows = sim
        .times_min
        .iter()
        .enumerate()
        .filter(|(_, t)| (**t % 15.0).abs() < 1e-9)
        .map(|(k, t)| DataRow {
            minute: num(*t),
            plasma: format!("{:.1}", sim.plasma_ng_ml[k]),
            effect: sim.effect_ng_ml.as_ref().map_or_else(|| "—".into(), |e| format!("{:.1}", e[k])),
        })
        .collect();

    if let Some(b) = &sim.below_threshold {
        p.below = match b.below_from_min {
            Some(m) => {
                let when = i.dose_started_at.map_or_else(String::new, |d| {
                    format!(" at {}", i.clock.hm(d + time::Duration::seconds_f64(m * 60.0)))
                });
                format!(
                    "Predicted to fall below {} ng/mL (plasma){when} ({} min after the dose started{}).",
                    num(b.threshold_ng_ml),
                    num(m.round()),
                    b.minutes_after_last_dose
                        .map_or_else(String::new, |a| format!("; {} min after the dose ended", num(a.round()))),
                )
            }
            None => format!(
                "Not predicted to fall below {} ng/mL (plasma) within two weeks of the dose.",
                num(b.threshold_ng_ml)
            ),
        };
    }
}

/// The clinic's level from the site settings, if set.
pub fn site_threshold(settings: &serde_json::Value) -> Option<f64> {
    let v = settings.get(THRESHOLD_SETTING)?;
    v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()).filter(|x: &f64| x.is_finite() && *x > 0.0)
}

/// `?below=` as typed: `Ok(None)` when empty.
pub fn parse_below(raw: Option<&str>) -> Result<Option<f64>, String> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => match s.replace(',', ".").parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 && v < 100_000.0 => Ok(Some(v)),
            _ => Err(format!("'{s}' is not a level: enter a concentration in ng/mL, e.g. 50")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(mg: f64) -> DoseInput {
        DoseInput {
            route: Route::IvRacemic,
            dose_mg: mg,
            weight_kg: 70.0,
            infusion_min: Some(40.0),
            minutes_between_devices: None,
            basis: "test".into(),
        }
    }

    #[test]
    fn iv_uses_domino_without_a_band_and_predicts_the_fall() {
        let req = request_for(&iv(35.0), Some(40.0), Some(50.0)).unwrap();
        assert_eq!(req.model, "domino");
        assert!(req.population.is_none(), "Domino publishes no variability");
        assert_eq!(req.age_years, None);
        let sim = simulate_pk(&req, API_MAX_PATIENTS).unwrap();
        let mut p = PkPanel::default();
        let clock = SiteClock::utc();
        let t0 = time::macros::datetime!(2026-11-02 10:00 UTC);
        let moaas = [Observed { at: t0 + time::Duration::minutes(20), score: 4 }];
        let cadss = [0, 12, 24].map(|score| Observed { at: t0 + time::Duration::minutes(30), score });
        build(
            &mut p,
            PanelInput {
                sim: &sim,
                basis: "b".into(),
                dose_started_at: Some(t0),
                moaas: &moaas,
                cadss: &cadss,
                cadss_max: 24,
                clock: &clock,
            },
        );
        assert!(p.band_note.contains("No published variability"), "{}", p.band_note);
        assert!(p.below.contains("fall below 50 ng/mL"), "{}", p.below);
        let c = p.chart.unwrap();
        assert!(c.band.is_none());
        assert!(c.effect.is_some());
        assert_eq!(c.moaas.len(), 1);
        // CADSS is drawn on its own scale, labelled 0 to the maximum total.
        let labels: Vec<&str> = c.cadss_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0", "12", "24"]);
        let ys: Vec<f64> = c.cadss.iter().map(|m| m.y.parse().unwrap()).collect();
        assert_eq!(ys, [CADSS_BOTTOM, (CADSS_TOP + CADSS_BOTTOM) / 2.0, CADSS_TOP], "a score sits at its height");
        assert_eq!(c.cadss_ticks[2].pos, f(CADSS_TOP + 4.0));
        assert!(c.threshold_y.is_some());
    }

    #[test]
    fn esketamine_uses_perez_ruixo_with_its_band_and_im_has_no_model() {
        let d = DoseInput {
            route: Route::IntranasalEsketamine,
            dose_mg: 56.0,
            weight_kg: 70.0,
            infusion_min: None,
            minutes_between_devices: None,
            basis: "test".into(),
        };
        let req = request_for(&d, Some(40.0), None).unwrap();
        assert_eq!(req.regimen, "56 mg intranasal devices 5 min apart");
        assert_eq!(req.age_years, Some(40.0));
        assert!(req.population.as_ref().is_some_and(|p| p.patients <= 500));
        let im = DoseInput { route: Route::ImRacemic, ..iv(35.0) };
        assert!(request_for(&im, None, None).unwrap_err().contains("no model for this route"));
    }

    #[test]
    fn levels() {
        assert_eq!(parse_below(Some(" 50 ")), Ok(Some(50.0)));
        assert_eq!(parse_below(Some("")), Ok(None));
        assert!(parse_below(Some("-3")).is_err());
        assert_eq!(site_threshold(&serde_json::json!({"pk_threshold_ng_ml": 70})), Some(70.0));
        assert_eq!(site_threshold(&serde_json::json!({})), None);
        assert_eq!(nice_max(173.0), 200.0);
    }
}
