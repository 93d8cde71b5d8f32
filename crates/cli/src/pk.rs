//! `keta pk`: concentration curves of a regimen under a named population model
//! (`keta pk simulate`), the model catalogue (`keta pk models`), and the benchmark
//! (`keta pk bench`, docs/benchmarks.md). Pure: no database.
//!
//! ```text
//! keta pk simulate --model domino --weight-kg 70 --regimen "0.5 mg/kg over 40 min" \
//!     --until 240 --step 1 --format csv --svg curve.svg
//! keta pk simulate --model perez-ruixo --weight-kg 70 --age 45 --regimen "56 mg intranasal" \
//!     --until 480 --step 5 --format json --population 1000 --threshold 50
//! ```

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use keta_domain::pk_simulation::{
    AbsorptionInput, AssumedCv, PkSimulateRequest, PkSimulation, PopulationInput, ThresholdSite, simulate_pk,
};
use keta_pk::{Mammillary, Model, Options, Patient, PopulationSettings, Regimen, Variability};

/// The most virtual patients `keta pk simulate --population` runs.
const CLI_MAX_PATIENTS: usize = 200_000;

#[derive(clap::Subcommand, Debug)]
pub enum PkCommand {
    /// Plasma, effect-site and metabolite concentration (ng/mL) over time.
    Simulate(Box<SimulateArgs>),
    /// The models, their sources and the effect-site constants on record (JSON).
    Models,
    /// Time (a) one 0.5 mg/kg over 40 min regimen on a 1-minute grid to 24 h and (b) 10,000
    /// virtual patients of it with variability (Domino, 70 kg). See bench/pk-vs-opentiva.sh.
    Bench(BenchArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// domino, clements-250, hijazi, herd, hornik, fanta-otto, perez-ruixo (or an alias).
    #[arg(long)]
    model: String,
    #[arg(long)]
    weight_kg: f64,
    /// Age in years (a covariate of some models).
    #[arg(long)]
    age: Option<f64>,
    /// not-asian, asian-not-japanese or japanese (Perez-Ruixo).
    #[arg(long)]
    ancestry: Option<String>,
    /// E.g. "0.5 mg/kg over 40 min", "56 mg intranasal", "35 mg bolus; 0.25 mg/kg over 20 min at 60".
    #[arg(long)]
    regimen: String,
    /// Simulate to this many minutes.
    #[arg(long)]
    until: f64,
    /// Output every this many minutes.
    #[arg(long)]
    step: f64,
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
    /// Also write the chart as SVG.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// A ke0 on record by id (`keta pk models`), or "off".
    #[arg(long)]
    ke0: Option<String>,
    /// A ke0 value, 1/min.
    #[arg(long)]
    ke0_per_min: Option<f64>,
    /// Absorption values the model lacks: ROUTE:KEY=VALUE,... with keys ka (1/min),
    /// tmax (min), f (bioavailability), lag (min); e.g. "oral:tmax=30" or "im:ka=0.1,f=0.93".
    #[arg(long)]
    absorption: Vec<String>,
    /// Virtual patients for a 5th-95th percentile band.
    #[arg(long)]
    population: Option<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Assumed variability where the model publishes none: PARAM=CV_PERCENT, e.g. v1=30.
    #[arg(long)]
    cv: Vec<String>,
    /// Predict when the concentration falls below this many ng/mL after the last dose.
    #[arg(long)]
    threshold: Option<f64>,
    /// plasma, effect_site or metabolite.
    #[arg(long, default_value = "plasma")]
    threshold_site: String,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Virtual patients in workload (b).
    #[arg(long, default_value_t = 10_000)]
    patients: usize,
    /// Timed runs of workload (a); the median is reported.
    #[arg(long, default_value_t = 2000)]
    runs: usize,
    /// Timed runs of workload (b); the median is reported.
    #[arg(long, default_value_t = 3)]
    population_runs: usize,
    /// Write workload (a)'s curve here as CSV (for the comparison with opentiva).
    #[arg(long)]
    curve_csv: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

pub fn run(cmd: PkCommand) -> ExitCode {
    match cmd {
        PkCommand::Simulate(a) => simulate(*a),
        PkCommand::Models => {
            let models: Vec<serde_json::Value> = Model::catalogue()
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "id": m.id(), "name": m.name(), "drug": m.drug(), "population": m.population(),
                        "citation": m.citation(), "notes": m.notes(), "metabolite": m.metabolite(),
                        "ke0": m.ke0_choices(), "parameters": m.parameters(),
                        "published_variability": m.published_variability().is_some(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&models).expect("serialises"));
            ExitCode::SUCCESS
        }
        PkCommand::Bench(a) => bench(a),
    }
}

fn parse_absorption(spec: &str) -> Result<AbsorptionInput, String> {
    let bad = || format!("--absorption '{spec}': use ROUTE:KEY=VALUE,... e.g. oral:tmax=30 or im:ka=0.1,f=0.93");
    let (route, rest) = spec.split_once(':').ok_or_else(bad)?;
    let mut a = AbsorptionInput {
        route: route.trim().to_string(),
        bioavailability: None,
        ka_per_min: None,
        tmax_min: None,
        lag_min: None,
    };
    for kv in rest.split(',').filter(|s| !s.trim().is_empty()) {
        let (k, v) = kv.split_once('=').ok_or_else(bad)?;
        let v: f64 = v.trim().parse().map_err(|_| bad())?;
        match k.trim() {
            "ka" => a.ka_per_min = Some(v),
            "tmax" => a.tmax_min = Some(v),
            "f" => a.bioavailability = Some(v),
            "lag" => a.lag_min = Some(v),
            _ => return Err(bad()),
        }
    }
    Ok(a)
}

fn request(a: &SimulateArgs) -> Result<PkSimulateRequest, String> {
    let ancestry = a
        .ancestry
        .as_deref()
        .map(|s| {
            serde_json::from_value(serde_json::Value::String(s.to_string()))
                .map_err(|_| format!("--ancestry '{s}': use not-asian, asian-not-japanese or japanese"))
        })
        .transpose()?;
    let threshold_site = match a.threshold_site.as_str() {
        "plasma" => ThresholdSite::Plasma,
        "effect_site" | "effect-site" | "effect" => ThresholdSite::EffectSite,
        "metabolite" => ThresholdSite::Metabolite,
        other => return Err(format!("--threshold-site '{other}': use plasma, effect_site or metabolite")),
    };
    let cv_percent = a
        .cv
        .iter()
        .map(|s| {
            let (p, v) = s.split_once('=').ok_or_else(|| format!("--cv '{s}': use PARAM=CV_PERCENT, e.g. v1=30"))?;
            Ok(AssumedCv {
                parameter: p.trim().to_string(),
                cv_percent: v.trim().parse().map_err(|_| format!("--cv '{s}': the CV is a number"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if !cv_percent.is_empty() && a.population.is_none() {
        return Err("--cv is for a population: give --population N too".into());
    }
    Ok(PkSimulateRequest {
        model: a.model.clone(),
        weight_kg: a.weight_kg,
        age_years: a.age,
        ancestry,
        regimen: a.regimen.clone(),
        until_min: a.until,
        step_min: a.step,
        ke0: a.ke0.clone(),
        ke0_per_min: a.ke0_per_min,
        absorption: a.absorption.iter().map(|s| parse_absorption(s)).collect::<Result<_, _>>()?,
        population: a.population.map(|patients| PopulationInput {
            patients,
            seed: a.seed,
            cv_percent: cv_percent.clone(),
        }),
        threshold_ng_ml: a.threshold,
        threshold_site,
    })
}

fn simulate(a: SimulateArgs) -> ExitCode {
    let req = match request(&a) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let sim = match simulate_pk(&req, CLI_MAX_PATIENTS) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Some(path) = &a.svg
        && let Err(e) = std::fs::write(path, svg_chart(&sim))
    {
        return fail(format!("writing {}: {e}", path.display()));
    }
    let mut out = std::io::stdout().lock();
    let written = match a.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&sim).expect("serialises")),
        Format::Csv => {
            for w in &sim.warnings {
                eprintln!("warning: {w}");
            }
            if let Some(b) = &sim.below_threshold {
                match (b.below_from_min, b.minutes_after_last_dose) {
                    (Some(t), Some(after)) => eprintln!(
                        "below {} ng/mL ({:?}) from {t:.1} min, {after:.1} min after the last dose ended",
                        b.threshold_ng_ml, b.site
                    ),
                    _ => eprintln!("not below {} ng/mL ({:?}) within two weeks", b.threshold_ng_ml, b.site),
                }
            }
            out.write_all(csv(&sim).as_bytes())
        }
    };
    // A closed pipe (e.g. `| head`) is not an error worth a panic.
    let _ = written;
    ExitCode::SUCCESS
}

/// time_min, plasma_ng_ml, then effect and metabolite where the model has them, then the
/// population band columns where asked.
pub fn csv(sim: &PkSimulation) -> String {
    let mut cols: Vec<(&str, &Vec<f64>)> = vec![("plasma_ng_ml", &sim.plasma_ng_ml)];
    if let Some(e) = &sim.effect_ng_ml {
        cols.push(("effect_ng_ml", e));
    }
    if let Some(m) = &sim.metabolite_ng_ml {
        cols.push(("metabolite_ng_ml", m));
    }
    if let Some(p) = &sim.population {
        cols.push(("plasma_p05_ng_ml", &p.plasma.p05));
        cols.push(("plasma_median_ng_ml", &p.plasma.median));
        cols.push(("plasma_p95_ng_ml", &p.plasma.p95));
    }
    let mut s = String::from("time_min");
    for (name, _) in &cols {
        s.push(',');
        s.push_str(name);
    }
    s.push('\n');
    for (i, t) in sim.times_min.iter().enumerate() {
        let _ = write!(s, "{t}");
        for (_, v) in &cols {
            let _ = write!(s, ",{:.6}", v[i]);
        }
        s.push('\n');
    }
    s
}

/// A step of 1, 2 or 5 × 10^n giving about `target` ticks over `span`.
fn nice_step(span: f64, target: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / target;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn tick_label(v: f64, step: f64) -> String {
    if step >= 1.0 { format!("{v:.0}") } else { format!("{v:.*}", (-step.log10()).ceil() as usize) }
}

/// The chart as a self-contained SVG: plasma, effect-site and metabolite curves (and the
/// population's 5th-95th percentile plasma band), axes with units, the threshold if one
/// was asked for.
// Long on purpose: one SVG drawn in one place: every curve, band and tick uses the scale closures set at the top.
#[allow(clippy::too_many_lines)]
pub fn svg_chart(sim: &PkSimulation) -> String {
    let (w, h) = (860.0, 480.0);
    let (left, right, top, bottom) = (78.0, 215.0, 48.0, 58.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let t_max = sim.times_min.last().copied().unwrap_or(0.0).max(1e-9);
    let hours = t_max >= 600.0;
    let t_unit = if hours { 60.0 } else { 1.0 };
    let mut y_max: f64 = sim.plasma_ng_ml.iter().copied().fold(0.0, f64::max);
    for s in [&sim.effect_ng_ml, &sim.metabolite_ng_ml].into_iter().flatten() {
        y_max = s.iter().copied().fold(y_max, f64::max);
    }
    if let Some(p) = &sim.population {
        y_max = p.plasma.p95.iter().copied().fold(y_max, f64::max);
    }
    if let Some(b) = &sim.below_threshold {
        y_max = y_max.max(b.threshold_ng_ml);
    }
    let y_step = nice_step(y_max.max(1e-9), 6.0);
    let y_top = (y_max / y_step).ceil().max(1.0) * y_step;
    let x = |t: f64| left + pw * t / t_max;
    let y = |c: f64| top + ph * (1.0 - c / y_top);
    // At most ~2000 points per line.
    let stride = (sim.times_min.len() / 2000).max(1);
    let path = |v: &[f64]| -> String {
        let mut d = String::new();
        for (i, (t, c)) in sim.times_min.iter().zip(v).enumerate() {
            if i % stride == 0 || i + 1 == v.len() {
                let _ = write!(d, "{}{:.2},{:.2} ", if d.is_empty() { "M" } else { "L" }, x(*t), y(*c));
            }
        }
        d
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="22" font-size="14" font-weight="bold">{} — {} ({} kg)</text>"#,
        esc(&sim.model.name),
        esc(&sim.regimen),
        sim.weight_kg
    );
    // Grid and y ticks.
    let mut v = 0.0;
    while v <= y_top + 1e-9 {
        let yy = y(v);
        let _ =
            writeln!(s, r##"<line x1="{left}" y1="{yy:.2}" x2="{:.2}" y2="{yy:.2}" stroke="#e4e4e4"/>"##, left + pw);
        let _ = writeln!(
            s,
            r#"<text x="{:.2}" y="{:.2}" text-anchor="end">{}</text>"#,
            left - 6.0,
            yy + 4.0,
            tick_label(v, y_step)
        );
        v += y_step;
    }
    // x ticks.
    let x_step = nice_step(t_max / t_unit, 8.0);
    let mut t = 0.0;
    while t <= t_max / t_unit + 1e-9 {
        let xx = x(t * t_unit);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.2}" y1="{:.2}" x2="{xx:.2}" y2="{:.2}" stroke="#333"/>"##,
            top + ph,
            top + ph + 5.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{xx:.2}" y="{:.2}" text-anchor="middle">{}</text>"#,
            top + ph + 19.0,
            tick_label(t, x_step)
        );
        t += x_step;
    }
    // Axes and their labels, with units.
    let _ = writeln!(
        s,
        r##"<path d="M{left},{top} L{left},{:.2} L{:.2},{:.2}" fill="none" stroke="#333"/>"##,
        top + ph,
        left + pw,
        top + ph
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.2}" y="{:.2}" text-anchor="middle">Time ({})</text>"#,
        left + pw / 2.0,
        h - 14.0,
        if hours { "h" } else { "min" }
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(20 {:.2}) rotate(-90)" text-anchor="middle">Concentration (ng/mL)</text>"#,
        top + ph / 2.0
    );
    // The population band under the lines.
    let mut legend: Vec<(String, &str, &str)> = Vec::new();
    if let Some(p) = &sim.population {
        let mut d = String::new();
        for (i, (t, c)) in sim.times_min.iter().zip(&p.plasma.p95).enumerate() {
            if i % stride == 0 || i + 1 == p.plasma.p95.len() {
                let _ = write!(d, "{}{:.2},{:.2} ", if d.is_empty() { "M" } else { "L" }, x(*t), y(*c));
            }
        }
        for (i, (t, c)) in sim.times_min.iter().zip(&p.plasma.p05).enumerate().rev() {
            if i % stride == 0 || i + 1 == p.plasma.p05.len() {
                let _ = write!(d, "L{:.2},{:.2} ", x(*t), y(*c));
            }
        }
        let _ = writeln!(s, r##"<path d="{d}Z" fill="#1f77b4" fill-opacity="0.18" stroke="none"/>"##);
        legend.push((format!("plasma 5th–95th pct, n={}", p.patients), "#1f77b4", "band"));
    }
    let mut line = |v: &[f64], colour: &'static str, dash: &'static str, label: String| {
        let _ = writeln!(
            s,
            r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
            path(v)
        );
        legend.push((label, colour, dash));
    };
    line(&sim.plasma_ng_ml, "#1f77b4", "none", "plasma".into());
    if let Some(e) = &sim.effect_ng_ml {
        line(
            e,
            "#d62728",
            "6 3",
            format!("effect site (ke0 {})", sim.model.ke0_per_min.map_or("?".into(), |k| format!("{k}/min"))),
        );
    }
    if let Some(m) = &sim.metabolite_ng_ml {
        line(m, "#2ca02c", "2 3", sim.model.metabolite.clone().unwrap_or_else(|| "metabolite".into()));
    }
    if let Some(b) = &sim.below_threshold {
        let yy = y(b.threshold_ng_ml);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.2}" x2="{:.2}" y2="{yy:.2}" stroke="#777" stroke-dasharray="3 3"/>"##,
            left + pw
        );
        if let Some(tb) = b.below_from_min.filter(|t| *t <= t_max) {
            let xx = x(tb);
            let _ = writeln!(
                s,
                r##"<line x1="{xx:.2}" y1="{top}" x2="{xx:.2}" y2="{:.2}" stroke="#777" stroke-dasharray="3 3"/>"##,
                top + ph
            );
        }
        legend.push((format!("threshold {} ng/mL", b.threshold_ng_ml), "#777", "3 3"));
    }
    // Legend.
    let lx = left + pw + 16.0;
    for (i, (label, colour, dash)) in legend.iter().enumerate() {
        let ly = top + 10.0 + 20.0 * i as f64;
        if *dash == "band" {
            let _ = writeln!(
                s,
                r#"<rect x="{lx}" y="{:.2}" width="22" height="10" fill="{colour}" fill-opacity="0.18"/>"#,
                ly - 5.0
            );
        } else {
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly:.2}" x2="{:.2}" y2="{ly:.2}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
                lx + 22.0
            );
        }
        let _ = writeln!(s, r#"<text x="{:.2}" y="{:.2}">{}</text>"#, lx + 28.0, ly + 4.0, esc(label));
    }
    let _ = writeln!(
        s,
        r##"<text x="{lx}" y="{:.2}" font-size="10" fill="#555">Model: {}</text>"##,
        top + ph,
        esc(&sim.model.id)
    );
    s.push_str("</svg>\n");
    s
}

// ---------------------------------------------------------------------------------
// The benchmark.

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// opentiva 1.1.2's Domino constants (pk-reference §3.2): 4-digit k-values and its ke0.
/// Keta's own Domino file stores STANPUMP's 3-digit values; the benchmark also runs these
/// so the engines are compared on identical parameters.
fn domino_with_opentiva_constants(weight_kg: f64) -> Result<keta_pk::Individual, keta_pk::PkError> {
    let d = Mammillary::from_micro(0.063 * weight_kg, 0.4381, 0.5921, 0.2470, 0.5900, 0.0146)?;
    Ok(keta_pk::Individual::from_mammillary("domino (opentiva constants)", weight_kg, d, Some(0.652)))
}

fn bench(a: BenchArgs) -> ExitCode {
    match bench_inner(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn bench_inner(a: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    const WEIGHT_KG: f64 = 70.0;
    const REGIMEN: &str = "0.5 mg/kg over 40 min";
    let model = Model::named("domino")?;
    let patient = Patient::new(WEIGHT_KG);
    let regimen: Regimen = REGIMEN.parse()?;
    let times = keta_pk::grid(24.0 * 60.0, 1.0);

    // (a) One patient: build the model and simulate the 1441-point grid, timed per run.
    let runs = a.runs.max(1);
    let mut per_run = Vec::with_capacity(runs);
    let mut profile = None;
    for _ in 0..runs {
        let start = Instant::now();
        let ind = model.individual(&patient, &Options::default())?;
        let p = keta_pk::simulate(&ind, &regimen, &times)?;
        per_run.push(start.elapsed().as_secs_f64());
        profile = Some(p);
    }
    let profile = profile.expect("at least one run");
    let peak = profile.plasma_peak().expect("samples");
    let (peak_t, peak_c) = (peak.t_min, peak.plasma_ng_ml);
    let a_median = median(&mut per_run);

    // The same curve on opentiva's constants, for an engine-to-engine comparison.
    let ot = keta_pk::simulate(&domino_with_opentiva_constants(WEIGHT_KG)?, &regimen, &times)?;
    if let Some(path) = &a.curve_csv {
        let mut s = String::from("time_min,keta_domino_ng_ml,keta_domino_opentiva_constants_ng_ml\n");
        for (x, y) in profile.samples.iter().zip(&ot.samples) {
            let _ = writeln!(s, "{},{:.9},{:.9}", x.t_min, x.plasma_ng_ml, y.plasma_ng_ml);
        }
        std::fs::write(path, s)?;
    }

    // (b) A population with between-subject variability. Domino publishes none
    // (data/pk/domino.toml), so this workload ASSUMES a log-normal CV of 30 % on V1 and
    // k10 (as crates/pk/examples/workloads.rs): a benchmark load, not a clinical claim.
    let variability = Variability::log_normal_cv(&[("v1", 0.3), ("k10", 0.3)], "benchmark assumption, not published")?;
    let settings = PopulationSettings { patients: a.patients, seed: 1, variability: Some(variability) };
    let mut pop_runs = Vec::new();
    let mut pop = None;
    for _ in 0..a.population_runs.max(1) {
        let start = Instant::now();
        let p = keta_pk::simulate_population(model, &patient, &Options::default(), &regimen, &times, &settings)?;
        pop_runs.push(start.elapsed().as_secs_f64());
        pop = Some(p);
    }
    let pop = pop.expect("at least one run");
    let b_median = median(&mut pop_runs);

    let build = if cfg!(debug_assertions) { "debug (use --release for figures)" } else { "release" };
    if a.json {
        let v = serde_json::json!({
            "build": build,
            "model": "domino", "weight_kg": WEIGHT_KG, "regimen": REGIMEN, "grid": "0 to 1440 min every 1 min",
            "a_single": {
                "points": times.len(), "runs": runs, "median_s": a_median,
                "min_s": per_run.first(), "max_s": per_run.last(),
                "peak_ng_ml": peak_c, "peak_t_min": peak_t,
            },
            "b_population": {
                "patients": a.patients, "points": times.len(), "runs": pop_runs.len(), "median_s": b_median,
                "variability": "ASSUMED log-normal CV 30 % on V1 and k10 (Domino publishes none)",
                "median_at_40_min_ng_ml": pop.plasma.median[40], "p05_at_40_min_ng_ml": pop.plasma.p05[40], "p95_at_40_min_ng_ml": pop.plasma.p95[40],
            },
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "keta pk bench ({build}): Domino, {WEIGHT_KG} kg, {REGIMEN}, 1-minute grid to 24 h ({} points)",
            times.len()
        );
        println!(
            "(a) one patient: median {:.1} µs per run over {runs} runs (model built + simulated); Cmax {peak_c:.2} ng/mL at {peak_t} min",
            a_median * 1e6
        );
        println!(
            "(b) {} virtual patients (ASSUMED CV 30 % on V1 and k10): median {:.3} s over {} runs; at 40 min median {:.1}, 5th-95th {:.1}-{:.1} ng/mL",
            a.patients,
            b_median,
            pop_runs.len(),
            pop.plasma.median[40],
            pop.plasma.p05[40],
            pop.plasma.p95[40]
        );
    }
    Ok(())
}
