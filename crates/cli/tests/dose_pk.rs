//! `keta dose` and `keta pk simulate` through the real binary, against values derived
//! independently: clinical-reference §2.1's pump formulas worked by hand, and Domino's
//! closed form from pk-reference T1's eigenvalues and coefficients.

use std::process::Command;

use serde_json::Value;

fn keta(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keta")).args(args).output().expect("run keta");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json_ok(args: &[&str]) -> Value {
    let (code, out, err) = keta(args);
    assert_eq!(code, 0, "keta {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn close(got: &Value, want: f64, what: &str) {
    let g = got.as_f64().unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    assert!((g - want).abs() <= 1e-9 * want.abs().max(1.0), "{what}: got {g}, want {want}");
}

#[test]
fn dose_70_kg_at_half_a_mg_per_kg_over_40_min_in_100_ml() {
    // By hand: 70 × 0.5 = 35 mg; 35 / 100 = 0.35 mg/mL; 100 mL / (40/60 h) = 150 mL/h; 35 mg / (40/60 h) = 52.5 mg/h.
    let v = json_ok(&[
        "dose",
        "calculate",
        "--weight-kg",
        "70",
        "--mg-per-kg",
        "0.5",
        "--infusion-min",
        "40",
        "--final-volume-ml",
        "100",
    ]);
    close(&v["dose_mg"], 35.0, "dose");
    close(&v["bag"]["concentration_mg_per_ml"], 0.35, "concentration");
    close(&v["pump"]["rate_ml_per_h"], 150.0, "rate");
    close(&v["dose_rate"]["mg_per_h"], 52.5, "mg/h");
    assert_eq!(v["bag"]["final_volume_includes_drug"], true);
    assert!(v["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("no protocol given")));
}

#[test]
fn every_row_of_the_section_2_1_table_through_the_binary() {
    for (w, mgkg, vol, dose, conc, rate, mgh) in [
        ("70", "0.5", "100", 35.0, 0.35, 150.0, 52.5),
        ("70", "0.75", "100", 52.5, 0.525, 150.0, 78.75),
        ("100", "0.5", "100", 50.0, 0.5, 150.0, 75.0),
        ("100", "1.0", "250", 100.0, 0.4, 375.0, 150.0),
    ] {
        let v = json_ok(&[
            "dose",
            "calculate",
            "--protocol",
            "iv-racemic-0.5",
            "--weight-kg",
            w,
            "--mg-per-kg",
            mgkg,
            "--final-volume-ml",
            vol,
        ]);
        let row = format!("{w} kg × {mgkg} mg/kg");
        close(&v["dose_mg"], dose, &row);
        close(&v["bag"]["concentration_mg_per_ml"], conc, &row);
        close(&v["pump"]["rate_ml_per_h"], rate, &row);
        close(&v["dose_rate"]["mg_per_h"], mgh, &row);
        assert_eq!(v["infusion_min"], 40, "the protocol's 40 min");
    }
}

#[test]
fn vial_volume_diluent_choice_and_pump_rounding() {
    // 35 mg from a 50 mg/mL vial is 0.7 mL; added to 100 mL of diluent the bag holds 100.7 mL.
    let v = json_ok(&[
        "dose",
        "calculate",
        "--protocol",
        "iv-racemic-0.5",
        "--weight-kg",
        "70",
        "--mg-per-kg",
        "0.5",
        "--vial-mg-per-ml",
        "50",
        "--diluent-volume-ml",
        "100",
    ]);
    close(&v["drug_volume"]["volume_ml"], 0.7, "drug volume");
    assert_eq!(v["bag"]["final_volume_includes_drug"], false);
    close(&v["bag"]["final_volume_ml"], 100.7, "final volume");
    close(&v["pump"]["rate_ml_per_h"], 100.7 * 1.5, "rate");
    // 100 mL over 45 min is 133.33 mL/h; a 0.1 mL/h pump is set to 133.3, and 133.3 × 0.35 = 46.655 mg/h.
    let v = json_ok(&[
        "dose",
        "calculate",
        "--weight-kg",
        "70",
        "--mg-per-kg",
        "0.5",
        "--final-volume-ml",
        "100",
        "--infusion-min",
        "45",
        "--pump-resolution-ml-h",
        "0.1",
    ]);
    close(&v["pump"]["rate_ml_per_h_to_set"], 133.3, "set rate");
    close(&v["pump"]["dose_rate_mg_per_h_at_set_rate"], 46.655, "delivered");
}

#[test]
fn refusals_exit_2_with_the_reasons_as_json() {
    let (code, out, err) =
        keta(&["dose", "calculate", "--weight-kg", "70", "--mg-per-kg", "0.5", "--max-mg-per-kg", "0.4"]);
    assert_eq!(code, 2, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["refused"], true);
    assert!(
        v["errors"][0]["message"].as_str().unwrap().contains("0.5 mg/kg is above the requested maximum of 0.4 mg/kg"),
        "{v}"
    );
    // Esketamine day 1 is 56 mg (28 mg from 65), in whole 28 mg devices (§2.3).
    let (code, out, _) = keta(&[
        "dose",
        "calculate",
        "--protocol",
        "esketamine-trd",
        "--weight-kg",
        "70",
        "--mg",
        "84",
        "--first-session",
        "--age",
        "40",
    ]);
    assert_eq!(code, 2);
    assert!(out.contains("the first session's dose is 56 mg"), "{out}");
    let v = json_ok(&[
        "dose",
        "calculate",
        "--protocol",
        "esketamine-trd",
        "--weight-kg",
        "70",
        "--mg",
        "28",
        "--first-session",
        "--age",
        "70",
    ]);
    assert_eq!(v["nasal"]["devices"], 1);
    let v = json_ok(&["dose", "calculate", "--protocol", "esketamine-trd", "--weight-kg", "70", "--mg", "84"]);
    assert_eq!((v["nasal"]["devices"].as_i64(), v["nasal"]["minutes_first_to_last"].as_f64()), (Some(3), Some(10.0)));
    let (code, _, err) = keta(&["dose", "calculate", "--weight-kg", "70"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn protocols_and_a_schedule_with_a_missed_session() {
    let v = json_ok(&["dose", "protocols"]);
    let ids: Vec<&str> = v.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    for id in [
        "iv-racemic-0.5",
        "im-racemic",
        "esketamine-trd",
        "esketamine-mdsi",
        "oral-racemic-titration",
        "crps-22-mg-per-h-4-days",
    ] {
        assert!(ids.contains(&id), "{id}: {ids:?}");
    }
    let v = json_ok(&[
        "dose",
        "schedule",
        "--protocol",
        "esketamine-trd",
        "--start",
        "2026-11-02",
        "--age",
        "40",
        "--missed",
        "3:2026-11-10",
    ]);
    let dates: Vec<&str> = v["sessions"].as_array().unwrap().iter().map(|s| s["date"].as_str().unwrap()).collect();
    assert_eq!(&dates[..5], ["2026-11-02", "2026-11-05", "2026-11-10", "2026-11-13", "2026-11-17"]);
    assert_eq!(v["sessions"][2]["status"], "rescheduled");
    assert_eq!(v["reassessments"][0]["due_on"], "2026-11-27");
    let (code, _, err) =
        keta(&["dose", "schedule", "--protocol", "esketamine-trd", "--start", "2026-11-02", "--until", "2027-03-01"]);
    assert_eq!(code, 2);
    assert!(err.contains("choose the interval"), "{err}");
}

/// Domino at 70 kg, from pk-reference T1: λ and the bolus coefficients A (1/L).
const LAMBDA: [f64; 3] = [1.724037, 0.151516, 0.006047];
const A: [f64; 3] = [0.211928, 0.012959, 0.001870];

/// ng/mL after `mg` given as a constant infusion over `dur` min, at `t` min (pk-reference §4.3).
fn infusion_by_hand(mg: f64, dur: f64, t: f64) -> f64 {
    let rate = mg / dur;
    let mg_per_l: f64 = LAMBDA
        .iter()
        .zip(A)
        .map(|(l, a)| {
            let during = t.min(dur);
            a / l * rate * (1.0 - (-l * during).exp()) * (-l * (t - during).max(0.0)).exp()
        })
        .sum();
    mg_per_l * 1000.0
}

#[test]
fn pk_simulate_domino_shape_and_values_checked_by_hand() {
    let (code, out, err) = keta(&[
        "pk",
        "simulate",
        "--model",
        "domino",
        "--weight-kg",
        "70",
        "--regimen",
        "0.5 mg/kg over 40 min",
        "--until",
        "120",
        "--step",
        "1",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "time_min,plasma_ng_ml,effect_ng_ml", "Domino has an effect site and no metabolite");
    assert_eq!(lines.len(), 1 + 121);
    let row = |t: usize| -> Vec<f64> { lines[1 + t].split(',').map(|x| x.parse().unwrap()).collect() };
    assert_eq!(row(0), [0.0, 0.0, 0.0]);
    // The T1 coefficients have 6-7 significant digits: agree to 0.05 %.
    for t in [5usize, 40, 41, 60, 120] {
        let want = infusion_by_hand(35.0, 40.0, t as f64);
        let got = row(t)[1];
        assert!((got - want).abs() / want < 5e-4, "t = {t}: {got} vs {want} by hand");
    }
    // 35 mg over 40 min: Cp(40) ≈ 240.36 ng/mL.
    assert!((row(40)[1] - 240.36).abs() < 0.05, "{}", row(40)[1]);

    let v = json_ok(&[
        "pk",
        "simulate",
        "--model",
        "domino",
        "--weight-kg",
        "70",
        "--regimen",
        "35 mg bolus",
        "--until",
        "30",
        "--step",
        "5",
        "--format",
        "json",
        "--threshold",
        "100",
    ]);
    assert_eq!(v["model"]["id"], "domino");
    assert!(v["metabolite_ng_ml"].is_null());
    assert_eq!(v["times_min"].as_array().unwrap().len(), 7);
    // Bolus by hand: 35 mg × Σ A e^(−λt).
    let by_hand = |t: f64| 35.0 * LAMBDA.iter().zip(A).map(|(l, a)| a * (-l * t).exp()).sum::<f64>() * 1000.0;
    for (i, t) in [0.0, 5.0, 10.0, 30.0].into_iter().enumerate() {
        let got = v["plasma_ng_ml"][[0, 1, 2, 6][i]].as_f64().unwrap();
        assert!((got - by_hand(t)).abs() / by_hand(t) < 5e-4, "t = {t}: {got} vs {}", by_hand(t));
    }
    // Below 100 ng/mL: solve Σ 35·A·e^(−λt)·1000 = 100 by bisection, by hand.
    let (mut lo, mut hi) = (0.0, 60.0);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if by_hand(mid) > 100.0 { lo = mid } else { hi = mid }
    }
    let below = v["below_threshold"]["below_from_min"].as_f64().unwrap();
    assert!((below - lo).abs() < 0.05, "{below} vs {lo}");
}

#[test]
fn pk_simulate_writes_an_svg_and_handles_the_esketamine_model() {
    let dir = std::env::temp_dir().join(format!("keta-pk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("curve.svg");
    let (code, out, err) = keta(&[
        "pk",
        "simulate",
        "--model",
        "perez-ruixo",
        "--weight-kg",
        "70",
        "--age",
        "45",
        "--regimen",
        "56 mg intranasal devices 5 min apart",
        "--until",
        "240",
        "--step",
        "5",
        "--format",
        "csv",
        "--population",
        "200",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(
            "time_min,plasma_ng_ml,metabolite_ng_ml,plasma_p05_ng_ml,plasma_median_ng_ml,plasma_p95_ng_ml\n"
        ),
        "{out}"
    );
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    for needle in ["Time (min)", "Concentration (ng/mL)", "noresketamine", "plasma 5th–95th pct, n=200", "Perez-Ruixo"]
    {
        assert!(s.contains(needle), "{needle} missing from the SVG");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // Errors say what to change.
    let (code, _, err) = keta(&[
        "pk",
        "simulate",
        "--model",
        "nope",
        "--weight-kg",
        "70",
        "--regimen",
        "35 mg bolus",
        "--until",
        "10",
        "--step",
        "1",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("known models"), "{err}");
    let (code, _, err) = keta(&[
        "pk",
        "simulate",
        "--model",
        "domino",
        "--weight-kg",
        "70",
        "--regimen",
        "35 mg bolus",
        "--until",
        "10",
        "--step",
        "1",
        "--population",
        "10",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("publishes no between-subject variability"), "{err}");
}
