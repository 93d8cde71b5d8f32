use super::*;

#[test]
fn checklists_load_and_cover_every_route() {
    for r in Route::ALL {
        assert!(!discharge_checklist(r).is_empty(), "{r:?}");
        assert!(!pre_dose_checklist(r).is_empty(), "{r:?}");
    }
    assert!(pre_dose_checklist(Route::IntranasalEsketamine).iter().any(|i| i.code == "nasal_products"));
    assert!(checklists().pre_dose.iter().chain(&checklists().discharge).all(|i| !i.source.trim().is_empty()));
}

#[test]
fn refusals_lose_their_api_pointers_on_the_screen() {
    assert_eq!(
        without_links("discharge refused: a [record it: /sessions/1#moaas]; b [set it: PUT /x]; c [other]"),
        "discharge refused: a; b; c [other]"
    );
}

/// Abnormal readings are highlighted by the thresholds the alerts use, read
/// from the rules (here the built-in ones), not from numbers of the screen's own.
#[test]
fn the_vitals_table_flags_what_the_safety_rules_flag() {
    let rules = SafetyRules::builtin();
    let reading = |id: i64, mins: Option<i64>, sys: f64, dia: f64, spo2: f64| VitalsRecord {
        id: keta_domain::ids::RecordId(id),
        session_id: SessionId(1),
        taken_at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(id),
        minutes_since_dose: mins,
        vitals: VitalSigns {
            systolic_mmhg: Some(Mmhg(sys)),
            diastolic_mmhg: Some(Mmhg(dia)),
            spo2_pct: Some(Percent(spo2)),
            ..VitalSigns::default()
        },
        source: VitalsSource::Manual,
    };
    let (sys_guide, dia_guide) = (rules.pre_dose_bp.systolic_above_mmhg.0, rules.pre_dose_bp.diastolic_above_mmhg.0);
    let floor = rules.spo2_floor.below_pct.0;
    let flags = vitals_flags(
        rules,
        &[
            // At the label's pre-dose guide exactly: not above it.
            reading(1, None, sys_guide, dia_guide, floor),
            // Above the pre-dose guide.
            reading(2, Some(-5), sys_guide + 1.0, dia_guide, floor),
            // After the dose: back to the baseline, SpO2 under the floor.
            reading(3, Some(10), sys_guide, dia_guide, floor - 1.0),
        ],
    );
    assert_eq!(flags[0], (String::new(), String::new()));
    assert!(flags[1].0.contains("label guide") && flags[1].1.is_empty(), "{flags:?}");
    assert!(flags[2].0.is_empty() && flags[2].1.contains("below the floor"), "{flags:?}");
}

#[test]
fn clock_format() {
    assert_eq!(hms(3725), "1:02:05");
    assert_eq!(hms(-65), "-0:01:05");
}
