//! Decrement times: when a concentration falls below a level after input stops.

use keta_pk::*;

use super::common::*;

#[test]
fn plasma_falls_below_the_threshold_exactly_at_the_reported_time() {
    let ind = domino(70.0);
    let regimen = Regimen::parse("0.5 mg/kg over 40 min").unwrap();
    let d = decrement_time(&ind, &regimen, Site::Plasma, 50.0).unwrap().unwrap();
    assert_eq!(d.input_ends_min, 40.0);
    let around = simulate(&ind, &regimen, &[d.below_from_min - 1e-3, d.below_from_min, d.below_from_min + 1e-3])
        .unwrap()
        .plasma();
    assert!(around[0] > 50.0 && around[2] < 50.0, "{around:?}");
    assert!((around[1] - 50.0).abs() < 0.01, "{around:?}");
    assert!((d.minutes_after_input - (d.below_from_min - 40.0)).abs() < 1e-12);
}

#[test]
fn the_effect_site_lags_plasma_on_the_way_down() {
    let ind = domino(70.0);
    let regimen = Regimen::parse("35 mg bolus").unwrap();
    let cp = decrement_time(&ind, &regimen, Site::Plasma, 100.0).unwrap().unwrap();
    let ce = decrement_time(&ind, &regimen, Site::EffectSite, 100.0).unwrap().unwrap();
    assert!(ce.minutes_after_input > cp.minutes_after_input);
    let at = simulate(&ind, &regimen, &[ce.below_from_min]).unwrap().samples[0];
    assert!((at.effect_ng_ml.unwrap() - 100.0).abs() < 0.01);
}

#[test]
fn already_below_never_above_and_models_without_the_output() {
    let ind = domino(70.0);
    let small = Regimen::parse("1 mg over 10 min").unwrap();
    let d = decrement_time(&ind, &small, Site::Plasma, 500.0).unwrap().unwrap();
    assert_eq!(d.minutes_after_input, 0.0);
    let e = decrement_time(&ind, &small, Site::Metabolite, 5.0).unwrap_err();
    assert!(e.to_string().contains("Metabolite"), "{e}");
    assert!(decrement_time(&ind, &small, Site::Plasma, 0.0).is_err());
}

#[test]
fn an_absorbed_dose_rises_first_then_the_decrement_counts_from_the_dose() {
    let model = Model::named("perez-ruixo").unwrap();
    let ind = model.individual(&Patient::new(70.0).with_age(40.0), &Options::default()).unwrap();
    let regimen = Regimen::parse("56 mg intranasal").unwrap();
    let d = decrement_time(&ind, &regimen, Site::Plasma, 20.0).unwrap().unwrap();
    // Peak ≈ 73 ng/mL at ≈ 38 min; below 20 ng/mL hours later.
    assert!(d.below_from_min > 120.0 && d.below_from_min < 24.0 * 60.0, "{d:?}");
    let c = simulate(&ind, &regimen, &[d.below_from_min]).unwrap().plasma()[0];
    assert!((c - 20.0).abs() < 0.01, "{c}");
}
