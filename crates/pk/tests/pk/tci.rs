//! Target-controlled infusion: plasma (Jacobs) and effect site (Shafer & Gregg).

use keta_pk::*;

use super::common::*;

#[test]
fn domino_plasma_tci_uses_stanpumps_maximum_rate_and_holds_the_target() {
    let ind = domino(70.0);
    assert!((ind.max_tci_rate_mg_per_min().unwrap().value - 0.75 * 70.0).abs() < 1e-12);
    let plan =
        plan_tci(&ind, &[TargetStep { from_min: 0.0, target_ng_ml: 150.0 }], 60.0, &TciSettings::default()).unwrap();
    assert_eq!(plan.updates.len(), 360);
    assert!(plan.updates.iter().all(|u| !u.clamped));
    let ends: Vec<f64> = plan.updates.iter().map(|u| u.end_min).collect();
    for (c, u) in simulate(&ind, &plan.regimen(), &ends).unwrap().plasma().iter().zip(&plan.updates) {
        assert!(rel_close(*c, 150.0, 1e-9, 0.0), "{} min: {c}", u.end_min);
    }
    // Towards steady state the rate approaches Css·CL (0.150 mg/L × 1.93 L/min ≈ 0.29 mg/min),
    // from above because the peripheral compartments are still filling.
    let last = plan.updates.last().unwrap().rate_mg_per_min;
    assert!(last > 0.15 * ind.clearance_l_per_min() && last < 3.0 * 0.15 * ind.clearance_l_per_min(), "{last}");
    // Segments merge equal rates and cover the whole plan.
    let seg = plan.segments();
    assert_eq!(seg.first().unwrap().start_min, 0.0);
    assert!((seg.last().unwrap().end_min - 60.0).abs() < 1e-9);
    assert!((plan.total_mg() - plan.regimen().doses.iter().map(|d| d.amount.mg(70.0)).sum::<f64>()).abs() < 1e-9);
}

#[test]
fn a_slow_pump_is_clamped_and_the_target_is_reached_later() {
    let ind = domino(70.0);
    let settings = TciSettings { max_rate_mg_per_min: Some(1.0), ..TciSettings::default() };
    let plan = plan_tci(&ind, &[TargetStep { from_min: 0.0, target_ng_ml: 150.0 }], 30.0, &settings).unwrap();
    assert!(plan.updates[0].clamped && plan.updates[0].rate_mg_per_min == 1.0);
    let first_on_target = plan.updates.iter().position(|u| !u.clamped).unwrap();
    assert!(first_on_target > 3, "{first_on_target}");
    assert!(plan.updates[first_on_target..].iter().all(|u| !u.clamped));
    // Lowering the target stops the pump (a clamp at zero) until Cp falls to it.
    let plan = plan_tci(
        &ind,
        &[TargetStep { from_min: 0.0, target_ng_ml: 300.0 }, TargetStep { from_min: 10.0, target_ng_ml: 100.0 }],
        20.0,
        &TciSettings::default(),
    )
    .unwrap();
    let at_drop = plan.updates.iter().find(|u| u.start_min >= 10.0 - 1e-9).unwrap();
    assert_eq!(at_drop.rate_mg_per_min, 0.0);
    assert!(at_drop.clamped);
}

#[test]
fn effect_site_tci_overshoots_in_plasma_and_brings_ce_to_target_without_overshoot() {
    let ind = domino(70.0);
    let target = 200.0;
    let settings = TciSettings { site: TciSite::EffectSite, ..TciSettings::default() };
    let plan = plan_tci(&ind, &[TargetStep { from_min: 0.0, target_ng_ml: target }], 30.0, &settings).unwrap();
    let p = simulate(&ind, &plan.regimen(), &fine_grid(30.0, 1.0 / 60.0)).unwrap();
    let ce: Vec<f64> = p.samples.iter().map(|s| s.effect_ng_ml.unwrap()).collect();
    let max_ce = ce.iter().copied().fold(0.0, f64::max);
    let max_cp = p.plasma().iter().copied().fold(0.0, f64::max);
    assert!(max_ce <= target * 1.01, "Ce overshoots: {max_ce}");
    assert!(max_cp > 1.5 * target, "plasma should overshoot to drive the effect site, got {max_cp}");
    // On target (within 1%) from a few minutes on, and far faster than plasma targeting gets Ce there.
    let first_within = p.samples.iter().position(|s| (s.effect_ng_ml.unwrap() - target).abs() < 0.01 * target).unwrap();
    assert!(p.samples[first_within].t_min < 5.0, "reached at {}", p.samples[first_within].t_min);
    assert!(p.samples.iter().skip(first_within).all(|s| (s.effect_ng_ml.unwrap() - target).abs() < 0.02 * target));
    let plasma_plan =
        plan_tci(&ind, &[TargetStep { from_min: 0.0, target_ng_ml: target }], 30.0, &TciSettings::default()).unwrap();
    let pp = simulate(&ind, &plasma_plan.regimen(), &fine_grid(30.0, 1.0 / 60.0)).unwrap();
    let plasma_first =
        pp.samples.iter().position(|s| (s.effect_ng_ml.unwrap() - target).abs() < 0.01 * target).unwrap();
    assert!(pp.samples[plasma_first].t_min > p.samples[first_within].t_min);
}

#[test]
fn tci_needs_what_it_needs() {
    let fanta = individual("fanta-otto", &Patient::new(70.0), &Options::default());
    let e = plan_tci(&fanta, &[TargetStep { from_min: 0.0, target_ng_ml: 150.0 }], 10.0, &TciSettings::default())
        .unwrap_err();
    assert!(e.to_string().contains("maximum pump rate"), "{e}");
    let settings = TciSettings { site: TciSite::EffectSite, max_rate_mg_per_min: Some(50.0), ..TciSettings::default() };
    let e = plan_tci(&fanta, &[TargetStep { from_min: 0.0, target_ng_ml: 150.0 }], 10.0, &settings).unwrap_err();
    assert!(e.to_string().contains("ke0"), "{e}");
}

#[test]
fn tci_works_on_the_non_mammillary_esketamine_model() {
    // Längsjö 2005 ran S-ketamine TCI at 150 ng/mL; here with Perez-Ruixo's disposition.
    let ind = individual("perez-ruixo", &Patient::new(70.0).with_age(40.0), &Options::default());
    let settings = TciSettings { max_rate_mg_per_min: Some(20.0), ..TciSettings::default() };
    let plan = plan_tci(&ind, &[TargetStep { from_min: 0.0, target_ng_ml: 150.0 }], 20.0, &settings).unwrap();
    let ends: Vec<f64> = plan.updates.iter().map(|u| u.end_min).collect();
    for (c, u) in simulate(&ind, &plan.regimen(), &ends).unwrap().plasma().iter().zip(&plan.updates) {
        if !u.clamped {
            assert!(rel_close(*c, 150.0, 1e-7, 0.0), "{} min: {c}", u.end_min);
        }
    }
}
