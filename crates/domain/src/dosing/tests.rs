use time::macros::datetime;

use super::*;
use crate::protocols::{DoseLimits, ProtocolLibrary};

fn protocol(id: &str) -> &'static Protocol {
    ProtocolLibrary::builtin().get(id).unwrap_or_else(|| panic!("no protocol {id}"))
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{what}: got {got}, want {want}");
}

fn iv(weight: f64, mg_per_kg: f64, final_ml: f64) -> DoseRequest {
    DoseRequest {
        protocol: Some("iv-racemic-0.5".into()),
        bag: Some(BagVolume::FinalVolumeIncludingDrugMl(Millilitres(final_ml))),
        infusion_min: Some(Minutes(40)),
        ..DoseRequest::per_kg(weight, mg_per_kg)
    }
}

fn refusal(r: Result<DoseCalculation, DomainError>) -> String {
    match r {
        Err(DomainError::Invalid(e)) => {
            e.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join(" | ")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// clinical-reference §2.1, "Worked examples (40-min infusion)": every row, every column.
#[test]
fn reproduces_the_worked_example_table_of_section_2_1() {
    let p = protocol("iv-racemic-0.5");
    // weight, mg/kg, dose, final volume, concentration, pump rate, mg/h
    let table = [
        (70.0, 0.5, 35.0, 100.0, 0.35, 150.0, 52.5),
        (70.0, 0.75, 52.5, 100.0, 0.525, 150.0, 78.75),
        (100.0, 0.5, 50.0, 100.0, 0.50, 150.0, 75.0),
        (100.0, 1.0, 100.0, 250.0, 0.40, 375.0, 150.0),
    ];
    for (w, mgkg, dose, vol, conc, rate, mgh) in table {
        let c = calculate(&iv(w, mgkg, vol), Some(p)).unwrap();
        let row = format!("{w} kg × {mgkg} mg/kg");
        close(c.dose_mg.0, dose, &row);
        let bag = c.bag.as_ref().unwrap();
        assert!(bag.final_volume_includes_drug);
        close(bag.final_volume_ml.0, vol, &row);
        close(bag.concentration_mg_per_ml.0, conc, &row);
        let pump = c.pump.as_ref().unwrap();
        close(pump.rate_ml_per_h.0, rate, &row);
        close(c.dose_rate.as_ref().unwrap().mg_per_h.0, mgh, &row);
        // dose_rate_mg_h = rate_mL_per_h × bag_conc
        close(pump.rate_ml_per_h.0 * bag.concentration_mg_per_ml.0, mgh, &row);
        // Exactly the printed numbers, not 150.00000000000003.
        assert_eq!(pump.rate_ml_per_h.0, rate, "{row}");
        assert_eq!(c.dose_rate.as_ref().unwrap().mg_per_h.0, mgh, "{row}");
    }
}

#[test]
fn steps_write_the_arithmetic_out_for_the_checker() {
    let c = calculate(&iv(70.0, 0.5, 100.0), Some(protocol("iv-racemic-0.5"))).unwrap();
    assert_eq!(c.steps[0], "dose = 70 kg × 0.5 mg/kg = 35 mg");
    assert!(c.steps.contains(&"bag concentration = 35 mg ÷ 100 mL = 0.35 mg/mL".to_string()), "{:?}", c.steps);
    assert!(c.steps.contains(&"pump rate = 100 mL ÷ (40 min ÷ 60) = 150 mL/h".to_string()), "{:?}", c.steps);
    assert!(c.steps.contains(&"dose rate = 35 mg ÷ (40 min ÷ 60) = 52.5 mg/h".to_string()), "{:?}", c.steps);
}

#[test]
fn the_infusion_time_defaults_to_the_protocols() {
    let mut r = iv(70.0, 0.5, 100.0);
    r.infusion_min = None;
    let c = calculate(&r, Some(protocol("iv-racemic-0.5"))).unwrap();
    assert_eq!(c.infusion_min, Some(Minutes(40)));
    close(c.pump.unwrap().rate_ml_per_h.0, 150.0, "rate");
}

#[test]
fn drug_volume_and_the_explicit_final_volume_choice() {
    let p = protocol("iv-racemic-0.5");
    // §2.1's note: 35 mg from a 50 mg/mL vial adds 0.7 mL.
    let mut r = iv(70.0, 0.5, 100.0);
    r.vial_mg_per_ml = Some(MgPerMl(50.0));
    let c = calculate(&r, Some(p)).unwrap();
    let d = c.drug_volume.as_ref().unwrap();
    close(d.volume_ml.0, 0.7, "drug volume");
    let bag = c.bag.as_ref().unwrap();
    assert!(bag.final_volume_includes_drug);
    close(bag.diluent_volume_ml.unwrap().0, 99.3, "diluent");
    close(bag.concentration_mg_per_ml.0, 0.35, "concentration");

    // Added to 100 mL of diluent instead: the final volume is 100.7 mL.
    r.bag = Some(BagVolume::DiluentVolumeMl(Millilitres(100.0)));
    let c = calculate(&r, Some(p)).unwrap();
    let bag = c.bag.as_ref().unwrap();
    assert!(!bag.final_volume_includes_drug);
    close(bag.final_volume_ml.0, 100.7, "final volume");
    close(bag.concentration_mg_per_ml.0, 35.0 / 100.7, "concentration");
    close(c.pump.as_ref().unwrap().rate_ml_per_h.0, 100.7 * 60.0 / 40.0, "rate");
    close(c.dose_rate.as_ref().unwrap().mg_per_h.0, 52.5, "mg/h does not depend on the bag");

    // Diluent-plus-drug needs the drug volume, so the vial.
    r.vial_mg_per_ml = None;
    assert!(refusal(calculate(&r, Some(p))).contains("vial"));

    // 10 mg/mL: 35 mg is 3.5 mL; more than the bag's final volume is refused.
    let mut r = iv(70.0, 0.5, 3.0);
    r.vial_mg_per_ml = Some(MgPerMl(10.0));
    assert!(refusal(calculate(&r, Some(p))).contains("more than the final bag volume"));
}

#[test]
fn rounds_to_the_pumps_resolution_and_shows_what_that_changes() {
    let p = protocol("iv-racemic-0.5");
    // 100 mL over 45 min = 133.333... mL/h.
    let mut r = iv(70.0, 0.5, 100.0);
    r.infusion_min = Some(Minutes(45));
    let exact = calculate(&r, Some(p)).unwrap();
    let pump = exact.pump.as_ref().unwrap();
    close(pump.rate_ml_per_h.0, 400.0 / 3.0, "exact");
    assert_eq!(pump.rate_ml_per_h_to_set, pump.rate_ml_per_h, "no resolution set: nothing rounded");

    r.pump.rate_resolution_ml_per_h = Some(MlPerHour(0.1));
    let c = calculate(&r, Some(p)).unwrap();
    let pump = c.pump.as_ref().unwrap();
    assert_eq!(pump.rate_ml_per_h_to_set.0, 133.3);
    close(pump.rate_ml_per_h.0, 400.0 / 3.0, "the exact rate is kept beside it");
    close(pump.dose_rate_mg_per_h_at_set_rate.0, 133.3 * 0.35, "delivered mg/h");
    close(pump.run_min_at_set_rate, 100.0 * 60.0 / 133.3, "run time");
    assert!(c.warnings.iter().any(|w| w.contains("133.3 mL/h")), "{:?}", c.warnings);

    r.pump.rate_resolution_ml_per_h = Some(MlPerHour(1.0));
    assert_eq!(calculate(&r, Some(p)).unwrap().pump.unwrap().rate_ml_per_h_to_set.0, 133.0);
    r.pump.rate_resolution_ml_per_h = Some(MlPerHour(5.0));
    assert_eq!(calculate(&r, Some(p)).unwrap().pump.unwrap().rate_ml_per_h_to_set.0, 135.0);
    r.pump.rounding = Rounding::Down;
    assert_eq!(calculate(&r, Some(p)).unwrap().pump.unwrap().rate_ml_per_h_to_set.0, 130.0);

    // A rate already on the grid is unchanged and draws no warning.
    let mut r = iv(70.0, 0.5, 100.0);
    r.pump.rate_resolution_ml_per_h = Some(MlPerHour(0.1));
    let c = calculate(&r, Some(p)).unwrap();
    assert_eq!(c.pump.unwrap().rate_ml_per_h_to_set.0, 150.0);
    assert!(!c.warnings.iter().any(|w| w.contains("pump is set")), "{:?}", c.warnings);

    // The drug volume to the syringe's graduation: 72.3 kg × 0.5 = 36.15 mg = 0.723 mL → 0.7 mL.
    let mut r = iv(72.3, 0.5, 100.0);
    r.vial_mg_per_ml = Some(MgPerMl(50.0));
    r.pump.volume_resolution_ml = Some(Millilitres(0.1));
    let c = calculate(&r, Some(p)).unwrap();
    let d = c.drug_volume.unwrap();
    close(d.volume_ml.0, 0.723, "exact volume");
    assert_eq!(d.volume_ml_to_draw.0, 0.7);
    close(d.mg_in_volume_drawn.0, 35.0, "mg drawn");
}

#[test]
fn rounding_helper_removes_binary_noise() {
    assert_eq!(round_to_step(150.0, 0.1, Rounding::Nearest), 150.0);
    assert_eq!(round_to_step(150.0, 0.1, Rounding::Down), 150.0);
    assert_eq!(round_to_step(0.723, 0.01, Rounding::Nearest), 0.72);
    assert_eq!(round_to_step(0.729, 0.01, Rounding::Down), 0.72);
    assert_eq!(fmt_num(0.525), "0.525");
    assert_eq!(fmt_num(150.0), "150");
    assert_eq!(fmt_num(133.33333), "133.3333");
}

fn with_limits(id: &str, limits: DoseLimits) -> Protocol {
    let mut p = protocol(id).clone();
    p.limits = limits;
    p
}

fn limit(v: f64) -> Option<SourcedValue> {
    Some(SourcedValue { value: v, source: "clinic setting (test)".into() })
}

#[test]
fn limits_refuse_an_out_of_range_dose_with_the_reason() {
    let p = with_limits(
        "iv-racemic-0.5",
        DoseLimits { max_mg_per_kg: limit(0.75), max_mg: limit(75.0), ..Default::default() },
    );
    // Within both limits.
    let c = calculate(&iv(100.0, 0.75, 250.0), Some(&p)).unwrap();
    close(c.dose_mg.0, 75.0, "at the maximum is allowed");
    assert!(
        c.limits_checked.iter().any(|l| l.contains("maximum 0.75 mg/kg (clinic setting (test))")),
        "{:?}",
        c.limits_checked
    );
    assert!(!c.warnings.iter().any(|w| w.contains("no maximum")));

    // Over mg/kg: the row of the table at 1.0 mg/kg.
    let why = refusal(calculate(&iv(100.0, 1.0, 250.0), Some(&p)));
    assert!(why.contains("1 mg/kg is above this protocol's maximum of 0.75 mg/kg (clinic setting (test))"), "{why}");
    assert!(why.contains("100 mg is above this protocol's maximum of 75 mg"), "{why}");
    // Over mg only: a heavy patient at a per-kg dose within limits.
    let why = refusal(calculate(&iv(110.0, 0.75, 250.0), Some(&p)));
    assert!(why.starts_with("dose: 82.5 mg is above this protocol's maximum of 75 mg"), "{why}");
    assert!(!why.contains("mg/kg is above"), "{why}");

    // A minimum.
    let p = with_limits("iv-racemic-0.5", DoseLimits { min_mg_per_kg: limit(0.1), ..Default::default() });
    assert!(
        refusal(calculate(&iv(70.0, 0.05, 100.0), Some(&p))).contains("below this protocol's minimum of 0.1 mg/kg")
    );
}

#[test]
fn the_built_in_iv_protocol_sets_no_maximum_and_says_so() {
    // §2.1: no consensus maximum verified; the built-in leaves it to the clinic.
    let c = calculate(&iv(100.0, 1.0, 250.0), Some(protocol("iv-racemic-0.5"))).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("no maximum dose is set")), "{:?}", c.warnings);
    // 1.0 mg/kg is outside the 0.1-0.75 mg/kg reported range [S12]: a warning, not a refusal.
    assert!(c.warnings.iter().any(|w| w.contains("outside the reported range of 0.1-0.75 mg/kg")), "{:?}", c.warnings);
}

#[test]
fn request_limits_only_tighten() {
    let mut r = iv(70.0, 0.5, 100.0);
    r.max_mg_per_kg = Some(MgPerKg(0.4));
    assert!(
        refusal(calculate(&r, Some(protocol("iv-racemic-0.5")))).contains("above the requested maximum of 0.4 mg/kg")
    );
    // Without a protocol too.
    let mut r = DoseRequest::per_kg(70.0, 0.5);
    r.max_mg = Some(Milligrams(30.0));
    assert!(refusal(calculate(&r, None)).contains("35 mg is above the requested maximum of 30 mg"));
}

#[test]
fn clinic_titration_steps_are_the_only_doses_allowed() {
    let mut p = protocol("iv-racemic-0.5").clone();
    p.dose.allowed =
        Some(crate::protocols::SourcedValues { values: vec![0.5, 0.75, 1.0], source: "clinic setting (test)".into() });
    calculate(&iv(70.0, 0.75, 100.0), Some(&p)).unwrap();
    let why = refusal(calculate(&iv(70.0, 0.6, 100.0), Some(&p)));
    assert!(why.contains("0.6 mg/kg is not one of this protocol's doses (0.5, 0.75, 1 mg/kg"), "{why}");
}

fn nasal(mg: f64) -> DoseRequest {
    DoseRequest {
        protocol: Some("esketamine-trd".into()),
        dose: DoseAmount::Mg(Milligrams(mg)),
        ..DoseRequest::per_kg(70.0, 0.0)
    }
}

#[test]
fn esketamine_devices_steps_and_the_day_1_dose() {
    let p = protocol("esketamine-trd");
    let c = calculate(&nasal(84.0), Some(p)).unwrap();
    let n = c.nasal.unwrap();
    assert_eq!((n.devices, n.minutes_between_devices, n.minutes_first_to_last), (3, 5.0, 10.0));
    assert_eq!(calculate(&nasal(56.0), Some(p)).unwrap().nasal.unwrap().devices, 2);

    let why = refusal(calculate(&nasal(70.0), Some(p)));
    assert!(why.contains("70 mg is not a whole number of 28 mg devices"), "{why}");
    assert!(why.contains("not one of this protocol's doses (56, 84 mg"), "{why}");
    assert!(refusal(calculate(&nasal(112.0), Some(p))).contains("above this protocol's maximum of 84 mg"));

    // Day 1: 56 mg; 84 mg is refused.
    let mut r = nasal(84.0);
    r.first_session = true;
    r.age_years = Some(40);
    assert!(refusal(calculate(&r, Some(p))).contains("the first session's dose is 56 mg"));
    r.dose = DoseAmount::Mg(Milligrams(56.0));
    calculate(&r, Some(p)).unwrap();

    // 65 and over: day 1 28 mg, then 28, 56 or 84 mg.
    r.age_years = Some(70);
    assert!(refusal(calculate(&r, Some(p))).contains("the first session's dose is 28 mg"));
    r.dose = DoseAmount::Mg(Milligrams(28.0));
    assert_eq!(calculate(&r, Some(p)).unwrap().nasal.unwrap().devices, 1);
    r.first_session = false;
    calculate(&r, Some(p)).unwrap();
    // 28 mg for someone under 65 (or of unknown age) is not a label dose.
    r.age_years = None;
    let why = refusal(calculate(&r, Some(p)));
    assert!(why.contains("28 mg is allowed from age 65: give the patient's age"), "{why}");
    r.age_years = Some(50);
    assert!(refusal(calculate(&r, Some(p))).contains("not one of this protocol's doses"));

    // Esketamine is dosed in fixed mg.
    let mut r = nasal(56.0);
    r.dose = DoseAmount::MgPerKg(MgPerKg(0.8));
    assert!(refusal(calculate(&r, Some(p))).contains("doses in mg"));
}

#[test]
fn mdsi_starts_at_84_mg_and_may_reduce_to_56() {
    let p = protocol("esketamine-mdsi");
    let mut r = nasal(84.0);
    r.protocol = Some("esketamine-mdsi".into());
    r.first_session = true;
    calculate(&r, Some(p)).unwrap();
    r.first_session = false;
    r.dose = DoseAmount::Mg(Milligrams(56.0));
    calculate(&r, Some(p)).unwrap();
    r.dose = DoseAmount::Mg(Milligrams(28.0));
    assert!(refusal(calculate(&r, Some(p))).contains("not one of this protocol's doses"));
}

#[test]
fn undiluted_100_mg_per_ml_is_refused_for_iv() {
    let mut r = DoseRequest { protocol: Some("iv-racemic-0.5".into()), ..DoseRequest::per_kg(70.0, 0.5) };
    r.vial_mg_per_ml = Some(MgPerMl(100.0));
    assert!(refusal(calculate(&r, Some(protocol("iv-racemic-0.5")))).contains("must be diluted before IV use"));
    r.bag = Some(BagVolume::FinalVolumeIncludingDrugMl(Millilitres(100.0)));
    calculate(&r, Some(protocol("iv-racemic-0.5"))).unwrap();
}

#[test]
fn chronic_pain_rates_become_a_dose_for_the_infusion_time() {
    // §2.5: 0.35 mg/kg/h over 4 h; 70 kg → 24.5 mg/h, 98 mg.
    let p = protocol("crps-0.35-mg-per-kg-per-h-10-days");
    let r = DoseRequest {
        protocol: Some(p.id.clone()),
        dose: DoseAmount::MgPerKgPerH(MgPerKgPerHour(0.35)),
        bag: Some(BagVolume::FinalVolumeIncludingDrugMl(Millilitres(250.0))),
        ..DoseRequest::per_kg(70.0, 0.0)
    };
    let c = calculate(&r, Some(p)).unwrap();
    assert_eq!(c.infusion_min, Some(Minutes(240)));
    close(c.dose_mg.0, 98.0, "dose");
    close(c.dose_rate.as_ref().unwrap().mg_per_h.0, 24.5, "mg/h");
    close(c.dose_rate.as_ref().unwrap().mg_per_kg_per_h.0, 0.35, "mg/kg/h");
    close(c.pump.unwrap().rate_ml_per_h.0, 62.5, "250 mL over 4 h");

    // §2.5: 22 mg/h; one 24-hour bag of a 4-day infusion.
    let p = protocol("crps-22-mg-per-h-4-days");
    let r = DoseRequest {
        protocol: Some(p.id.clone()),
        dose: DoseAmount::MgPerH(MgPerHour(22.0)),
        infusion_min: Some(Minutes(1440)),
        ..DoseRequest::per_kg(80.0, 0.0)
    };
    let c = calculate(&r, Some(p)).unwrap();
    close(c.dose_mg.0, 528.0, "22 mg/h × 24 h");
    assert!(c.warnings.iter().any(|w| w.contains("differs from the protocol's 5760 min")), "{:?}", c.warnings);

    // A rate without a time cannot be a dose.
    let r = DoseRequest { dose: DoseAmount::MgPerH(MgPerHour(22.0)), ..DoseRequest::per_kg(80.0, 0.0) };
    assert!(refusal(calculate(&r, None)).contains("needs the infusion time"));
}

#[test]
fn a_pump_slower_than_needed_refuses() {
    let mut r = iv(100.0, 1.0, 250.0);
    r.pump.max_rate_ml_per_h = Some(MlPerHour(300.0));
    assert!(
        refusal(calculate(&r, Some(protocol("iv-racemic-0.5"))))
            .contains("375 mL/h is above the pump's maximum of 300 mL/h")
    );
}

#[test]
fn implausible_input_names_every_field() {
    let mut r = iv(180.0 * 2.2046, 0.5, 0.0);
    r.vial_mg_per_ml = Some(MgPerMl(-1.0));
    let fields: Vec<String> = match calculate(&r, Some(protocol("iv-racemic-0.5"))) {
        Err(DomainError::Invalid(e)) => e.into_iter().map(|e| e.field).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(fields, ["weight_kg", "vial_mg_per_ml", "bag.final_volume_including_drug_ml"]);
    let r = DoseRequest { protocol: Some("nope".into()), ..DoseRequest::per_kg(70.0, 0.5) };
    assert!(refusal(calculate(&r, None)).contains("unknown protocol 'nope'"));
    let r = DoseRequest { route: Some(Route::ImRacemic), ..iv(70.0, 0.5, 100.0) };
    assert!(refusal(calculate(&r, Some(protocol("iv-racemic-0.5")))).contains("is for IV ketamine"));
}

#[test]
fn exposure_per_drug_week_month_and_lifetime() {
    let dose = |id: i64, at: OffsetDateTime, route: Route, mg: f64| GivenDose {
        session_id: SessionId(id),
        given_at: at,
        route,
        dose_mg: Milligrams(mg),
    };
    let doses = [
        dose(1, datetime!(2026-10-28 15:00 UTC), Route::IvRacemic, 35.0), // Wednesday, week 44, October
        dose(2, datetime!(2026-11-02 15:00 UTC), Route::IvRacemic, 35.0), // Monday, week 45
        dose(3, datetime!(2026-11-04 15:00 UTC), Route::IvRacemic, 52.5),
        dose(4, datetime!(2026-11-05 10:00 UTC), Route::IntranasalEsketamine, 56.0),
        dose(5, datetime!(2026-11-08 23:59 UTC), Route::OralRacemic, 50.0), // Sunday, still week 45
        dose(6, datetime!(2026-12-01 10:00 UTC), Route::IvRacemic, 35.0),   // after as_of: not counted
    ];
    let e = cumulative_exposure(&doses, datetime!(2026-11-09 12:00 UTC), &|t| t.date());
    assert_eq!(e.drugs.len(), 2);
    let racemic = &e.drugs[0];
    assert_eq!(racemic.drug, Drug::RacemicKetamine);
    close(racemic.lifetime_mg.0, 172.5, "lifetime");
    assert_eq!(racemic.doses, 4);
    close(racemic.last_7_days_mg.0, 137.5, "7 days: from 2 Nov 12:00 on");
    close(racemic.last_30_days_mg.0, 172.5, "30 days");
    let weeks: Vec<(&str, f64, u32)> = racemic.by_week.iter().map(|w| (w.period.as_str(), w.mg.0, w.doses)).collect();
    assert_eq!(weeks, [("2026-W44", 35.0, 1), ("2026-W45", 137.5, 3)]);
    assert_eq!(racemic.by_week[1].starts_on, time::macros::date!(2026 - 11 - 02));
    let months: Vec<(&str, f64)> = racemic.by_month.iter().map(|m| (m.period.as_str(), m.mg.0)).collect();
    assert_eq!(months, [("2026-10", 35.0), ("2026-11", 137.5)]);
    let routes: Vec<(Route, f64)> = racemic.by_route.iter().map(|r| (r.route, r.mg.0)).collect();
    assert_eq!(routes, [(Route::IvRacemic, 122.5), (Route::OralRacemic, 50.0)]);
    let esk = &e.drugs[1];
    assert_eq!((esk.drug, esk.lifetime_mg.0, esk.doses), (Drug::Esketamine, 56.0, 1));
    assert!(cumulative_exposure(&[], datetime!(2026-11-09 12:00 UTC), &|t| t.date()).drugs.is_empty());
    // At a site ten hours behind UTC, Monday 2 Nov 05:00 UTC is still Sunday 1 Nov: week 44.
    let honolulu = |t: time::OffsetDateTime| t.to_offset(time::macros::offset!(-10)).date();
    let e = cumulative_exposure(&doses, datetime!(2026-11-09 12:00 UTC), &honolulu);
    let weeks: Vec<(&str, u32)> = e.drugs[0].by_week.iter().map(|w| (w.period.as_str(), w.doses)).collect();
    assert_eq!(weeks, [("2026-W44", 1), ("2026-W45", 3)], "15:00 UTC is 05:00 the same day in Honolulu");
    let late = [dose(7, datetime!(2026-11-02 05:00 UTC), Route::IvRacemic, 35.0)];
    let w = &cumulative_exposure(&late, datetime!(2026-11-09 12:00 UTC), &honolulu).drugs[0].by_week[0];
    assert_eq!((w.period.as_str(), w.starts_on), ("2026-W44", time::macros::date!(2026 - 10 - 26)));
    let w = &cumulative_exposure(&late, datetime!(2026-11-09 12:00 UTC), &|t| t.date()).drugs[0].by_week[0];
    assert_eq!(w.period, "2026-W45", "the same instant is Monday in UTC");
}
