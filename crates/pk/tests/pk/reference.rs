//! Values from pk-reference.md: T1, the derived quantities marked [computed] in §1, the
//! ke0 / time-to-peak table of §1.5, and the behaviour the models' notes promise.

use keta_pk::*;

use super::common::*;

fn close(got: f64, want: f64, abs: f64, what: &str) {
    assert!((got - want).abs() <= abs, "{what}: got {got}, want {want} ± {abs}");
}

#[test]
fn t1_domino_parameters_at_70_kg() {
    let ind = domino(70.0);
    let d = ind.disposition().unwrap();
    close(d.v1_l, 4.41, 1e-9, "V1");
    close(d.v2_l(), 10.56972, 5e-6, "V2");
    close(d.v3_l(), 178.2123, 5e-5, "V3");
    close(d.clearance_l_per_min(), 1.93158, 5e-6, "CL");
    close(d.q2_l_per_min(), 2.61072, 5e-6, "Q2");
    close(d.q3_l_per_min(), 2.6019, 5e-6, "Q3");
    let l = d.eigenvalues();
    for (got, want) in l.iter().zip([1.724037, 0.151516, 0.006047]) {
        close(*got, want, 5e-7, "lambda");
    }
    for (got, want) in d.bolus_coefficients().iter().zip([0.211928, 0.012959, 0.001870]) {
        close(*got, want, 5e-7, "bolus coefficient");
    }
}

#[test]
fn domino_derived_values_per_kg() {
    let d = *domino(1.0).disposition().unwrap();
    close(d.v2_l(), 0.151, 5e-4, "V2 L/kg");
    close(d.v3_l(), 2.546, 5e-4, "V3 L/kg");
    close(d.vss_l(), 2.76, 5e-3, "Vss L/kg");
    close(d.clearance_l_per_min() * 1000.0, 27.6, 0.05, "CL mL/min/kg");
    close(d.q2_l_per_min() * 1000.0, 37.3, 0.05, "Q2 mL/min/kg");
    close(d.q3_l_per_min() * 1000.0, 37.2, 0.05, "Q3 mL/min/kg");
    let half: Vec<f64> = d.eigenvalues().iter().map(|l| std::f64::consts::LN_2 / l).collect();
    for (got, want) in half.iter().zip([0.40, 4.57, 114.6]) {
        close(*got, want, 0.005 * want + 0.005, "half-life");
    }
}

#[test]
fn derived_values_of_the_other_models() {
    let p = Patient::new(1.0);
    let o = Options::default();
    let clements = *individual("clements-250", &p, &o).disposition().unwrap();
    close(clements.v2_l(), 2.379, 5e-4, "Clements V2 L/kg");
    close(clements.clearance_l_per_min() * 1000.0, 19.1, 0.05, "Clements CL mL/min/kg");
    let t: Vec<f64> = clements.eigenvalues().iter().map(|l| std::f64::consts::LN_2 / l).collect();
    close(t[0], 17.6, 0.05, "Clements t½ fast");
    close(t[1], 182.9, 0.05, "Clements t½ slow");

    let hijazi = *individual("hijazi", &p, &o).disposition().unwrap();
    close(hijazi.v2_l(), 3.17, 5e-3, "Hijazi V2 L/kg");
    close(hijazi.clearance_l_per_min() * 1000.0, 36.0, 0.05, "Hijazi CL mL/min/kg");
    let t: Vec<f64> = hijazi.eigenvalues().iter().map(|l| std::f64::consts::LN_2 / l).collect();
    close(t[0], 16.2, 0.05, "Hijazi t½ fast");
    close(t[1], 296.7, 0.05, "Hijazi t½ slow");

    let fanta = *individual("fanta-otto", &Patient::new(70.0), &o).disposition().unwrap();
    for (got, want) in fanta.eigenvalues().iter().zip([0.0537, 0.00775, 0.00157]) {
        close(*got, want, 0.005 * want, "Fanta lambda");
    }

    // Herd and Hornik at 70 kg are the published standard values.
    let herd = *individual("herd", &Patient::new(70.0), &o).disposition().unwrap();
    close(herd.v1_l, 38.7, 1e-9, "Herd V1");
    close(herd.clearance_l_per_min(), 1.5, 1e-12, "Herd CL L/min");
    close(herd.q2_l_per_min(), 215.0 / 60.0, 1e-12, "Herd Q L/min");
    let herd20 = *individual("herd", &Patient::new(20.0), &o).disposition().unwrap();
    close(herd20.clearance_l_per_min(), 1.5 * (20.0f64 / 70.0).powf(0.75), 1e-12, "Herd CL allometry");
    close(herd20.v2_l(), 102.0 * 20.0 / 70.0, 1e-9, "Herd V2 scaling");
    let hornik = *individual("hornik", &Patient::new(70.0), &o).disposition().unwrap();
    close(hornik.clearance_l_per_min(), 38.9 / 60.0, 1e-12, "Hornik CL");
    close(hornik.v2_l(), 152.0, 1e-9, "Hornik V2");
}

#[test]
fn effect_site_peak_times_for_the_ke0_values_on_record() {
    // pk-reference §1.5, "tpeak after a bolus with Domino [computed]".
    for (ke0, tpeak) in [(0.238, 1.61), (0.652, 1.00), (0.0857, 3.00), (1.0, 0.81), (0.15, 2.04)] {
        let ind =
            individual("domino", &Patient::new(70.0), &Options::default().with_effect_site(EffectSite::Ke0PerMin(ke0)));
        let got = time_to_peak_effect_min(&ind).unwrap();
        close(got, tpeak, 0.006, &format!("tpeak for ke0 {ke0}"));
    }
}

#[test]
fn ke0_from_time_to_peak_inverts_the_peak_time() {
    let model = Model::named("domino").unwrap();
    let p = Patient::new(70.0);
    // opentiva's 0.652 comes from a 1-minute tpeak; stanpumpR's ≈0.0857 from 3 minutes.
    close(ke0_for_time_to_peak(model, &p, 1.0).unwrap(), 0.652, 0.002, "ke0 for 1 min");
    close(ke0_for_time_to_peak(model, &p, 3.0).unwrap(), 0.0857, 0.0003, "ke0 for 3 min");
    let ind = model.individual(&p, &Options::default().with_effect_site(EffectSite::TimeToPeakMin(2.5))).unwrap();
    close(time_to_peak_effect_min(&ind).unwrap(), 2.5, 1e-6, "round trip");
    assert!(ind.ke0().unwrap().source.contains("time to peak"));
    let e = ke0_for_time_to_peak(model, &p, 0.0).unwrap_err();
    assert!(e.to_string().contains("more than 0 min"), "{e}");
}

#[test]
fn domino_default_ke0_is_navarrete_with_its_source_and_choices_are_listed() {
    let ind = domino(70.0);
    let ke0 = ind.ke0().unwrap();
    assert_eq!(ke0.value, 0.238);
    assert!(ke0.source.contains("Navarrete"), "{}", ke0.source);
    let choices = Model::named("domino").unwrap().ke0_choices();
    assert_eq!(choices.iter().filter(|c| c.is_default).count(), 1);
    let ind = individual(
        "domino",
        &Patient::new(70.0),
        &Options::default().with_effect_site(EffectSite::Named("opentiva".into())),
    );
    assert_eq!(ind.ke0().unwrap().value, 0.652);
    let off = individual("domino", &Patient::new(70.0), &Options::default().with_effect_site(EffectSite::Off));
    assert!(!off.has_effect_site());
    let p = simulate(&off, &Regimen::parse("35 mg bolus").unwrap(), &[0.0, 1.0]).unwrap();
    assert_eq!(p.samples[1].effect_ng_ml, None);
    let err = Model::named("domino")
        .unwrap()
        .individual(&Patient::new(70.0), &Options::default().with_effect_site(EffectSite::Named("nope".into())));
    assert!(err.unwrap_err().to_string().contains("navarrete-2025"));
}

#[test]
fn t10_mass_balance_example_35_mg() {
    // 35 mg gives AUC = 35/1.93158 mg·min/L = 18.12 µg·min/mL.
    let ind = domino(70.0);
    let p = simulate(&ind, &Regimen::parse("35 mg bolus").unwrap(), &[0.0, 20_000.0]).unwrap();
    close(p.samples[1].plasma_auc_ng_min_per_ml / 1000.0, 18.12, 0.005, "AUC µg·min/mL");
    close(p.samples[1].plasma_auc_ng_min_per_ml, 35.0 / 1.93158 * 1000.0, 1e-6, "AUC exact");
}

#[test]
fn a_dose_per_kg_gives_the_same_domino_curve_at_any_weight() {
    let times = fine_grid(300.0, 2.5);
    let a = plasma(&domino(50.0), "0.5 mg/kg over 40 min", &times);
    let b = plasma(&domino(110.0), "0.5 mg/kg over 40 min", &times);
    for (x, y) in a.iter().zip(&b) {
        assert!(rel_close(*x, *y, 1e-12, 1e-12), "{x} vs {y}");
    }
}

#[test]
fn the_depression_infusion_peaks_at_the_end_and_every_model_names_itself() {
    // 0.5 mg/kg over 40 min: the peak is at 40 min for every IV model.
    for id in ["domino", "clements-250", "hijazi", "herd", "hornik", "fanta-otto"] {
        let ind = individual(id, &Patient::new(70.0).with_age(40.0), &Options::default());
        let p = simulate(&ind, &Regimen::parse("0.5 mg/kg over 40 min").unwrap(), &fine_grid(240.0, 1.0)).unwrap();
        assert_eq!(p.model_id, id);
        assert_eq!(p.plasma_peak().unwrap().t_min, 40.0, "{id}");
    }
}

#[test]
fn the_catalogue_loads_and_every_number_has_a_source() {
    let ids: Vec<&str> = Model::catalogue().iter().map(|m| m.id()).collect();
    assert_eq!(ids, ["domino", "clements-250", "hijazi", "herd", "hornik", "fanta-otto", "perez-ruixo"]);
    for m in Model::catalogue() {
        assert!(!m.citation().is_empty());
        for p in m.parameters() {
            assert!(p.source.len() > 10, "{} {} has no real source", m.id(), p.name);
            assert!(p.value.is_finite());
        }
        for k in m.ke0_choices() {
            assert!(k.source.len() > 10);
        }
        if let Some(v) = m.published_variability() {
            assert!(v.etas().iter().all(|e| e.source.len() > 10 && e.variance > 0.0));
        }
    }
    assert_eq!(Model::named("Perez Ruixo").unwrap().id(), "perez-ruixo");
    assert_eq!(Model::named("STANPUMP").unwrap().id(), "domino");
    let e = Model::named("marsh").unwrap_err().to_string();
    assert!(e.contains("unknown model 'marsh'") && e.contains("domino"), "{e}");
}

#[test]
fn routes_without_a_published_absorption_rate_ask_for_one() {
    let ind = domino(70.0);
    let e = simulate(&ind, &Regimen::parse("0.5 mg/kg IM").unwrap(), &[0.0]).unwrap_err().to_string();
    assert!(e.contains("IM") && e.contains("absorption rate constant") && e.contains("5–15 min"), "{e}");
    let e = simulate(&ind, &Regimen::parse("30 mg intranasal").unwrap(), &[0.0]).unwrap_err().to_string();
    assert!(e.contains("bioavailability"), "{e}");

    // With ka supplied the published F applies: AUC = F·D/CL (IM F 0.93, Clements 1982).
    let model = Model::named("domino").unwrap();
    let o = Options::default().with_absorption(
        AbsorptionRoute::Intramuscular,
        AbsorptionOverride { ka: Some(AbsorptionRate::PerMin(0.2)), ..Default::default() },
    );
    let ind = model.individual(&Patient::new(70.0), &o).unwrap();
    let p = simulate(&ind, &Regimen::parse("35 mg IM").unwrap(), &[0.0, 30_000.0]).unwrap();
    close(p.samples[1].plasma_auc_ng_min_per_ml, 0.93 * 35.0 / ind.clearance_l_per_min() * 1000.0, 1e-5, "IM AUC");

    // ka from an observed time to peak: the plasma peak lands there.
    let o = Options::default().with_absorption(
        AbsorptionRoute::Oral,
        AbsorptionOverride { ka: Some(AbsorptionRate::TimeToPeakMin(30.0)), lag_min: Some(5.0), ..Default::default() },
    );
    let ind = model.individual(&Patient::new(70.0), &o).unwrap();
    let p = simulate(&ind, &Regimen::parse("100 mg oral").unwrap(), &fine_grid(120.0, 0.01)).unwrap();
    close(p.plasma_peak().unwrap().t_min, 30.0, 0.011, "oral Tmax including the lag");
}

#[test]
fn invalid_patients_and_times_are_refused_with_the_reason() {
    let model = Model::named("domino").unwrap();
    let e = model.individual(&Patient::new(-3.0), &Options::default()).unwrap_err();
    assert!(e.to_string().contains("weight"), "{e}");
    let ind = domino(70.0);
    let e = simulate(&ind, &Regimen::parse("35 mg bolus").unwrap(), &[5.0, 1.0]).unwrap_err();
    assert!(e.to_string().contains("increasing"), "{e}");
}

#[test]
fn paediatric_models_warn_outside_the_range_they_were_built_on() {
    let ind = individual("herd", &Patient::new(80.0).with_age(30.0), &Options::default());
    assert_eq!(ind.warnings().len(), 2, "{:?}", ind.warnings());
    assert!(domino(80.0).warnings().is_empty());
}

#[test]
fn fanta_otto_predicts_s_norketamine_from_all_of_the_clearance() {
    let ind = individual("fanta-otto", &Patient::new(70.0), &Options::default());
    assert!(ind.has_metabolite());
    assert!(!ind.has_effect_site(), "no ke0 is on record for Fanta/Otto");
    let p = simulate(&ind, &Regimen::parse("0.125 mg/kg bolus").unwrap(), &[0.0, 60.0, 20_000.0]).unwrap();
    assert!(p.samples[0].metabolite_ng_ml.unwrap() < 1e-9);
    assert!(p.samples[1].metabolite_ng_ml.unwrap() > 0.0);
    let e = simulate(&ind, &Regimen::parse("20 mg oral").unwrap(), &[0.0]).unwrap_err().to_string();
    assert!(e.contains("absorption rate constant"), "{e}");
}

#[test]
fn opentivas_four_digit_domino_constants_change_the_curve_by_far_less_than_half_a_percent() {
    // The benchmark compares Domino curves with opentiva (0.4381 / 0.5921 / 0.5900 / 0.2470 / 0.0146).
    let opentiva = Individual::from_mammillary(
        "domino (opentiva)",
        70.0,
        Mammillary::from_micro(0.063 * 70.0, 0.4381, 0.5921, 0.2470, 0.5900, 0.0146).unwrap(),
        Some(0.652),
    );
    let times = fine_grid(24.0 * 60.0, 1.0);
    let ours = plasma(&domino(70.0), "0.5 mg/kg over 40 min", &times);
    let theirs = plasma(&opentiva, "0.5 mg/kg over 40 min", &times);
    let worst = ours.iter().zip(&theirs).skip(1).map(|(a, b)| (a / b - 1.0).abs()).fold(0.0, f64::max);
    println!("Domino 3-digit vs opentiva 4-digit constants: largest relative difference {worst:.2e}");
    assert!(worst < 0.002, "largest relative difference {worst}");
    let e = simulate(&opentiva, &Regimen::parse("10 mg IM").unwrap(), &[0.0]).unwrap_err();
    assert!(e.to_string().contains("IV doses only"), "{e}");
}
