//! Population simulation: published variability, bands, determinism.

use keta_pk::*;

use super::common::*;

fn settings(patients: usize, seed: u64, variability: Option<Variability>) -> PopulationSettings {
    PopulationSettings { patients, seed, variability }
}

#[test]
fn bands_are_ordered_and_repeat_with_the_seed() {
    let model = Model::named("herd").unwrap();
    let patient = Patient::new(20.0).with_age(6.0);
    let regimen = Regimen::parse("1 mg/kg over 10 min").unwrap();
    let times = fine_grid(120.0, 5.0);
    let run = |seed| {
        simulate_population(model, &patient, &Options::default(), &regimen, &times, &settings(500, seed, None)).unwrap()
    };
    let a = run(11);
    assert_eq!(a, run(11));
    assert_ne!(a.plasma.median, run(12).plasma.median);
    for (i, t) in times.iter().enumerate().skip(1) {
        assert!(a.plasma.p05[i] < a.plasma.median[i] && a.plasma.median[i] < a.plasma.p95[i], "t {t}");
    }
    assert!(a.effect.is_some() && a.metabolite.is_none());
}

#[test]
fn zero_variability_collapses_the_band_onto_the_typical_curve() {
    let model = Model::named("domino").unwrap();
    let patient = Patient::new(70.0);
    let regimen = Regimen::parse("0.5 mg/kg over 40 min").unwrap();
    let times = fine_grid(240.0, 10.0);
    let none = Variability::log_normal_cv(&[("k10", 0.0)], "test").unwrap();
    let pop = simulate_population(model, &patient, &Options::default(), &regimen, &times, &settings(20, 1, Some(none)))
        .unwrap();
    let typical = plasma(&domino(70.0), "0.5 mg/kg over 40 min", &times);
    for (i, c) in typical.iter().enumerate() {
        assert!(rel_close(pop.plasma.p05[i], *c, 1e-12, 0.0) && rel_close(pop.plasma.p95[i], *c, 1e-12, 0.0));
    }
}

#[test]
fn domino_has_no_published_variability_so_it_must_be_supplied() {
    let model = Model::named("domino").unwrap();
    let regimen = Regimen::parse("0.5 mg/kg over 40 min").unwrap();
    let e =
        simulate_population(model, &Patient::new(70.0), &Options::default(), &regimen, &[0.0], &settings(10, 1, None))
            .unwrap_err();
    assert!(e.to_string().contains("supply"), "{e}");
    let bad = Variability::log_normal_cv(&[("clearance", 0.3)], "test").unwrap();
    let e = simulate_population(
        model,
        &Patient::new(70.0),
        &Options::default(),
        &regimen,
        &[0.0],
        &settings(10, 1, Some(bad)),
    )
    .unwrap_err();
    assert!(e.to_string().contains("k10"), "names the parameters it has: {e}");
    let ok = Variability::log_normal_cv(&[("k10", 0.3), ("v1", 0.3)], "illustrative").unwrap();
    let pop = simulate_population(
        model,
        &Patient::new(70.0),
        &Options::default(),
        &regimen,
        &fine_grid(60.0, 20.0),
        &settings(200, 1, Some(ok)),
    )
    .unwrap();
    assert!(pop.plasma.p95[2] > pop.plasma.p05[2] * 1.3);
}

#[test]
fn esketamine_population_centres_on_the_typical_curve_and_has_a_metabolite_band() {
    let model = Model::named("perez-ruixo").unwrap();
    let patient = Patient::new(70.0).with_age(45.0);
    let regimen = Regimen::parse("56 mg intranasal").unwrap();
    let times = fine_grid(240.0, 10.0);
    let pop =
        simulate_population(model, &patient, &Options::default(), &regimen, &times, &settings(1000, 3, None)).unwrap();
    let typical = plasma(&individual("perez-ruixo", &patient, &Options::default()), "56 mg intranasal", &times);
    // At 40 min the typical curve sits inside the band and near its median.
    let i = 4;
    assert!(pop.plasma.p05[i] < typical[i] && typical[i] < pop.plasma.p95[i]);
    assert!(
        (pop.plasma.median[i] / typical[i] - 1.0).abs() < 0.25,
        "median {} typical {}",
        pop.plasma.median[i],
        typical[i]
    );
    assert!(pop.metabolite.is_some());
}

#[test]
fn fanta_otto_uses_its_correlated_variability() {
    let model = Model::named("fanta-otto").unwrap();
    let v = model.published_variability().unwrap();
    assert_eq!(v.etas().len(), 4);
    assert_eq!(v.covariances().len(), 2);
    let pop = simulate_population(
        model,
        &Patient::new(70.0),
        &Options::default(),
        &Regimen::parse("20 mg over 20 min").unwrap(),
        &[20.0],
        &settings(300, 5, None),
    )
    .unwrap();
    assert!(pop.plasma.p95[0] > pop.plasma.p05[0]);
}
