//! Times the two workloads of the PK benchmark (docs/benchmarks.md) with this crate alone:
//! (a) Domino, 0.5 mg/kg over 40 min, 1-minute grid to 24 h;
//! (b) the same for 10,000 virtual patients with between-subject variability.
//! `cargo run --release -p keta-pk --example workloads`
//!
//! Domino publishes no variability, so (b) uses an illustrative 30% CV on V1 and k10;
//! the CLI's benchmark must state whatever it uses.

use std::time::Instant;

use keta_pk::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = Model::named("domino")?;
    let patient = Patient::new(70.0);
    let regimen: Regimen = "0.5 mg/kg over 40 min".parse()?;
    let times = grid(24.0 * 60.0, 1.0);

    let start = Instant::now();
    let reps = 1000;
    let mut peak = 0.0;
    for _ in 0..reps {
        let ind = model.individual(&patient, &Options::default())?;
        let p = simulate(&ind, &regimen, &times)?;
        peak = p.plasma_peak().map_or(0.0, |s| s.plasma_ng_ml);
    }
    let single = start.elapsed() / reps;
    println!("(a) one patient, {} points: {single:?} per run (Cmax {peak:.2} ng/mL)", times.len());

    let variability = Variability::log_normal_cv(&[("v1", 0.3), ("k10", 0.3)], "illustrative")?;
    let settings = PopulationSettings { patients: 10_000, seed: 1, variability: Some(variability) };
    let start = Instant::now();
    let pop = simulate_population(model, &patient, &Options::default(), &regimen, &times, &settings)?;
    println!(
        "(b) 10,000 patients: {:?} (median Cmax {:.1}, 5th–95th {:.1}–{:.1} ng/mL at 40 min)",
        start.elapsed(),
        pop.plasma.median[40],
        pop.plasma.p05[40],
        pop.plasma.p95[40]
    );

    let pr = Model::named("perez-ruixo")?;
    let start = Instant::now();
    let pop = simulate_population(
        pr,
        &Patient::new(70.0).with_age(45.0),
        &Options::default(),
        &"56 mg intranasal".parse()?,
        &times,
        &PopulationSettings { patients: 10_000, seed: 1, variability: None },
    )?;
    println!(
        "(c) Perez-Ruixo, 10,000 patients, 56 mg intranasal: {:?} (median at 40 min {:.1} ng/mL)",
        start.elapsed(),
        pop.plasma.median[40]
    );
    Ok(())
}
