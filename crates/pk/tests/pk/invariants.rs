//! The invariants of pk-reference T10, as property tests over models, weights and
//! regimens: mass balance, superposition, dose linearity, exact solution against a
//! fine-step RK4 integration of the ODEs, the Vieta relations of the eigenvalues, the
//! effect site's properties and plasma TCI landing on its target.

use keta_pk::*;
use proptest::prelude::*;

use super::common::*;

const MAMMILLARY: [&str; 6] = ["domino", "clements-250", "hijazi", "herd", "hornik", "fanta-otto"];

fn model_id() -> impl Strategy<Value = &'static str> {
    prop::sample::select(MAMMILLARY.to_vec())
}

/// A regimen of a bolus and an infusion with random sizes and offsets.
fn iv_regimen() -> impl Strategy<Value = (f64, f64, f64, f64, f64)> {
    (1.0..200.0f64, 0.0..60.0f64, 1.0..300.0f64, 0.0..120.0f64, 0.5..90.0f64)
}

fn regimen_text((bolus, bolus_at, inf, inf_at, inf_min): (f64, f64, f64, f64, f64)) -> String {
    format!("{bolus} mg bolus at {bolus_at}; {inf} mg over {inf_min} min at {inf_at}")
}

fn oral_options(ka: f64, f: f64, lag: f64) -> Options {
    Options::default().with_absorption(
        AbsorptionRoute::Oral,
        AbsorptionOverride { bioavailability: Some(f), ka: Some(AbsorptionRate::PerMin(ka)), lag_min: Some(lag) },
    )
}

const FOREVER_MIN: f64 = 60_000.0;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// AUC₀–∞ = F·Dose/CL, for IV and first-order absorption.
    #[test]
    fn mass_balance(id in model_id(), weight in 10.0..150.0f64, r in iv_regimen(), oral in 1.0..500.0f64,
                    ka in 0.003..0.5f64, f in 0.05..1.0f64, lag in 0.0..30.0f64) {
        let ind = individual(id, &Patient::new(weight), &oral_options(ka, f, lag));
        let text = format!("{}; {oral} mg oral at 3", regimen_text(r));
        let p = simulate(&ind, &Regimen::parse(&text).unwrap(), &[0.0, FOREVER_MIN]).unwrap();
        let dose_absorbed = r.0 + r.2 + f * oral;
        let want = dose_absorbed / ind.clearance_l_per_min() * 1000.0;
        prop_assert!(rel_close(p.samples[1].plasma_auc_ng_min_per_ml, want, 1e-7, 0.0),
            "{id}: AUC {} vs F·D/CL {want}", p.samples[1].plasma_auc_ng_min_per_ml);
    }

    /// Two regimens together give the sum of their separate curves (all outputs).
    #[test]
    fn superposition(id in model_id(), weight in 10.0..150.0f64, a in iv_regimen(), b in iv_regimen(), ka in 0.003..0.5f64) {
        let ind = individual(id, &Patient::new(weight), &oral_options(ka, 0.5, 2.0).with_effect_site(EffectSite::Ke0PerMin(0.3)));
        let (ta, tb) = (format!("{}; 40 mg oral at 7", regimen_text(a)), regimen_text(b));
        let times = fine_grid(400.0, 3.7);
        let run = |t: &str| simulate(&ind, &Regimen::parse(t).unwrap(), &times).unwrap().samples;
        let (sa, sb, sab) = (run(&ta), run(&tb), run(&format!("{ta}; {tb}")));
        for i in 0..times.len() {
            let pairs = [
                (sa[i].plasma_ng_ml + sb[i].plasma_ng_ml, sab[i].plasma_ng_ml),
                (sa[i].effect_ng_ml.unwrap() + sb[i].effect_ng_ml.unwrap(), sab[i].effect_ng_ml.unwrap()),
                (sa[i].metabolite_ng_ml.unwrap_or(0.0) + sb[i].metabolite_ng_ml.unwrap_or(0.0), sab[i].metabolite_ng_ml.unwrap_or(0.0)),
                (sa[i].plasma_auc_ng_min_per_ml + sb[i].plasma_auc_ng_min_per_ml, sab[i].plasma_auc_ng_min_per_ml),
            ];
            for (sum, together) in pairs {
                prop_assert!(rel_close(sum, together, 1e-9, 1e-9), "{id} t {}: {sum} vs {together}", times[i]);
            }
        }
    }

    /// Concentration scales linearly with dose.
    #[test]
    fn dose_linearity(id in model_id(), weight in 10.0..150.0f64, r in iv_regimen(), k in 0.1..10.0f64) {
        let ind = individual(id, &Patient::new(weight), &Options::default().with_effect_site(EffectSite::Ke0PerMin(0.5)));
        let scaled = (r.0 * k, r.1, r.2 * k, r.3, r.4);
        let times = fine_grid(300.0, 4.1);
        let one = simulate(&ind, &Regimen::parse(&regimen_text(r)).unwrap(), &times).unwrap().samples;
        let many = simulate(&ind, &Regimen::parse(&regimen_text(scaled)).unwrap(), &times).unwrap().samples;
        for (a, b) in one.iter().zip(&many) {
            prop_assert!(rel_close(a.plasma_ng_ml * k, b.plasma_ng_ml, 1e-9, 1e-12));
            prop_assert!(rel_close(a.effect_ng_ml.unwrap() * k, b.effect_ng_ml.unwrap(), 1e-9, 1e-12));
        }
    }

    /// The eigenvalues satisfy Vieta's relations with the characteristic polynomial, and
    /// the coefficients give Cp(0) = 1/V1 and AUC = 1/CL.
    #[test]
    fn vieta_relations(k10 in 0.001..2.0f64, k12 in 0.001..2.0f64, k21 in 0.001..2.0f64, k13 in 0.0005..2.0f64,
                       k31 in 0.0005..2.0f64, v1 in 0.5..200.0f64) {
        let m = Mammillary::from_micro(v1, k10, k12, k21, k13, k31).unwrap();
        let (a2, a1, a0) = m.characteristic();
        let l = m.eigenvalues();
        prop_assert!(l.iter().all(|x| *x > 0.0) && l[0] >= l[1] && l[1] >= l[2], "{l:?}");
        prop_assert!(rel_close(l[0] + l[1] + l[2], a2, 1e-12, 0.0));
        prop_assert!(rel_close(l[0] * l[1] + l[0] * l[2] + l[1] * l[2], a1, 1e-10, 0.0));
        prop_assert!(rel_close(l[0] * l[1] * l[2], a0, 1e-9, 0.0));
        let a = m.bolus_coefficients();
        prop_assert!(rel_close(a.iter().sum::<f64>(), 1.0 / v1, 1e-8, 0.0));
        let auc: f64 = a.iter().zip(&l).map(|(a, l)| a / l).sum();
        prop_assert!(rel_close(auc, 1.0 / m.clearance_l_per_min(), 1e-7, 0.0));
    }

    /// The recursion and the matrix exponential agree on every model and output.
    #[test]
    fn both_exact_solvers_agree(id in model_id(), weight in 10.0..150.0f64, r in iv_regimen(), ka in 0.003..0.5f64, ke0 in 0.01..5.0f64) {
        let o = oral_options(ka, 0.3, 1.0).with_effect_site(EffectSite::Ke0PerMin(ke0));
        let rec = individual(id, &Patient::new(weight), &o);
        let mat = individual(id, &Patient::new(weight), &o.clone().with_solver(Solver::MatrixExponential));
        let regimen = Regimen::parse(&format!("{}; 50 mg oral at 11", regimen_text(r))).unwrap();
        let times = fine_grid(600.0, 7.3);
        let a = simulate(&rec, &regimen, &times).unwrap().samples;
        let b = simulate(&mat, &regimen, &times).unwrap().samples;
        for (x, y) in a.iter().zip(&b) {
            prop_assert!(rel_close(x.plasma_ng_ml, y.plasma_ng_ml, 1e-9, 1e-9), "t {}: {} vs {}", x.t_min, x.plasma_ng_ml, y.plasma_ng_ml);
            prop_assert!(rel_close(x.effect_ng_ml.unwrap(), y.effect_ng_ml.unwrap(), 1e-9, 1e-9));
            prop_assert!(rel_close(x.metabolite_ng_ml.unwrap_or(0.0), y.metabolite_ng_ml.unwrap_or(0.0), 1e-9, 1e-9));
            prop_assert!(rel_close(x.plasma_auc_ng_min_per_ml, y.plasma_auc_ng_min_per_ml, 1e-9, 1e-9));
        }
    }

    /// Ce ≤ Cp while Cp rises (an infusion from zero), and at the effect-site peak after a
    /// bolus Ce crosses Cp.
    #[test]
    fn effect_site_properties(id in model_id(), weight in 10.0..150.0f64, ke0 in 0.02..5.0f64, minutes in 5.0..120.0f64) {
        let ind = individual(id, &Patient::new(weight), &Options::default().with_effect_site(EffectSite::Ke0PerMin(ke0)));
        let p = simulate(&ind, &Regimen::parse(&format!("100 mg over {minutes} min")).unwrap(), &fine_grid(minutes, minutes / 50.0)).unwrap();
        for s in &p.samples {
            prop_assert!(s.effect_ng_ml.unwrap() <= s.plasma_ng_ml * (1.0 + 1e-12), "t {}: Ce {:?} > Cp {}", s.t_min, s.effect_ng_ml, s.plasma_ng_ml);
        }
        let tpeak = time_to_peak_effect_min(&ind).unwrap();
        let at_peak = simulate(&ind, &Regimen::parse("100 mg bolus").unwrap(), &[tpeak]).unwrap().samples[0];
        let ce = at_peak.effect_ng_ml.unwrap();
        prop_assert!(rel_close(ce, at_peak.plasma_ng_ml, 1e-5, 0.0), "{id} ke0 {ke0}: at tpeak {tpeak} Ce {ce} Cp {}", at_peak.plasma_ng_ml);
    }

    /// Plasma TCI: whenever the rate was not clamped, Cp is on target at the end of the update.
    #[test]
    fn plasma_tci_hits_its_target(id in model_id(), weight in 10.0..150.0f64, t1 in 20.0..400.0f64, t2 in 5.0..400.0f64,
                                  max_rate in 1.0..100.0f64) {
        let ind = individual(id, &Patient::new(weight), &Options::default());
        let targets = [TargetStep { from_min: 0.0, target_ng_ml: t1 }, TargetStep { from_min: 10.0, target_ng_ml: t2 }];
        let settings = TciSettings { max_rate_mg_per_min: Some(max_rate), ..TciSettings::default() };
        let plan = plan_tci(&ind, &targets, 20.0, &settings).unwrap();
        let ends: Vec<f64> = plan.updates.iter().map(|u| u.end_min).collect();
        let cp = simulate(&ind, &plan.regimen(), &ends).unwrap().plasma();
        for (u, c) in plan.updates.iter().zip(&cp) {
            prop_assert!(u.rate_mg_per_min <= max_rate && u.rate_mg_per_min >= 0.0);
            if !u.clamped {
                prop_assert!(rel_close(*c, u.target_ng_ml, 1e-7, 1e-9), "{id} at {}: Cp {c} target {}", u.end_min, u.target_ng_ml);
            }
        }
    }
}

/// RK4 on the mammillary ODEs with an effect compartment, a first-order depot and a
/// two-compartment metabolite (pk-reference §4.1), written independently of the crate.
fn mammillary_rhs(
    m: Mammillary,
    ke0: f64,
    ka: f64,
    metabolite: Option<(Mammillary, f64)>,
    rate: f64,
) -> impl Fn(f64, &[f64]) -> Vec<f64> {
    move |_t, x| {
        // x: central, p2, p3, Ce, depot, metabolite central, metabolite peripheral (amounts in mg; Ce mg/L).
        let cp = x[0] / m.v1_l;
        let mut d = vec![
            rate + ka * x[4] - (m.k10 + m.k12 + m.k13) * x[0] + m.k21 * x[1] + m.k31 * x[2],
            m.k12 * x[0] - m.k21 * x[1],
            m.k13 * x[0] - m.k31 * x[2],
            ke0 * (cp - x[3]),
            -ka * x[4],
            0.0,
            0.0,
        ];
        if let Some((mm, fm)) = metabolite {
            d[5] = fm * m.k10 * x[0] - (mm.k10 + mm.k12) * x[5] + mm.k21 * x[6];
            d[6] = mm.k12 * x[5] - mm.k21 * x[6];
        }
        d
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Closed form against fine-step RK4 within 1e-9 relative: a bolus at 0, an infusion,
    /// an oral dose with lag, effect site and (Fanta/Otto) metabolite.
    #[test]
    fn closed_form_matches_rk4(id in prop::sample::select(vec!["domino", "hijazi", "herd", "fanta-otto"]), weight in 10.0..150.0f64,
                               bolus in 1.0..100.0f64, rate in 0.1..10.0f64, ka in 0.01..0.3f64, ke0 in 0.05..2.0f64) {
        let (f, lag) = (0.4, 2.0);
        let ind = individual(id, &Patient::new(weight), &oral_options(ka, f, lag).with_effect_site(EffectSite::Ke0PerMin(ke0)));
        let m = *ind.disposition().unwrap();
        let metabolite = (id == "fanta-otto").then(|| {
            // Otto 2021 S-norketamine at this weight (pk-reference §1.3).
            let w = weight / 70.0;
            (Mammillary::from_clearances(98.6 * w, 57.7 / 60.0 * w.powf(0.75), &[(42.8 / 60.0, 160.0)]).unwrap(), 1.0)
        });
        let oral = 30.0;
        let regimen = Regimen::parse(&format!("{bolus} mg bolus; {} mg over 10 min at 5; {oral} mg oral", rate * 10.0)).unwrap();
        let checkpoints = [2.0, 5.0, 15.0, 40.0];
        let exact = simulate(&ind, &regimen, &checkpoints).unwrap().samples;
        let mut x = vec![0.0; 7];
        x[0] = bolus;
        let mut t = 0.0;
        for (i, &b) in checkpoints.iter().enumerate() {
            let r = if t >= 5.0 && b <= 15.0 { rate } else { 0.0 };
            rk4(&mammillary_rhs(m, ke0, ka, metabolite, r), &mut x, t, b, ((b - t) / 0.001).ceil() as usize);
            t = b;
            if b == lag {
                // The oral dose lands in the depot after its lag.
                x[4] += f * oral;
            }
            let s = exact[i];
            let cp = x[0] / m.v1_l * 1000.0;
            prop_assert!(rel_close(s.plasma_ng_ml, cp, 1e-9, 1e-12), "{id} t {b}: {} vs RK4 {cp}", s.plasma_ng_ml);
            prop_assert!(rel_close(s.effect_ng_ml.unwrap(), x[3] * 1000.0, 1e-9, 1e-12), "{id} t {b}: Ce {:?} vs RK4 {}", s.effect_ng_ml, x[3] * 1000.0);
            if let Some((mm, _)) = metabolite {
                let cm = x[5] / mm.v1_l * 1000.0;
                prop_assert!(rel_close(s.metabolite_ng_ml.unwrap(), cm, 1e-9, 1e-12), "{id} t {b}: metabolite {:?} vs RK4 {cm}", s.metabolite_ng_ml);
            }
        }
    }
}
