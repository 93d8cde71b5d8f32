//! `keta score` against hand-worked examples for every instrument
//! (clinical-reference §1), run through the real binary.

// Helpers outside `#[test]` functions unwrap too, which clippy's allow-unwrap-in-tests does
// not cover; in a test a panic is the failure message all the same.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;

fn score(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keta")).arg("score").args(args).output().expect("run keta");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).to_string())
}

fn ok(args: &[&str]) -> Value {
    let (code, json, err) = score(args);
    assert_eq!(code, 0, "keta score {args:?} failed: {err}");
    json
}

fn safety_items(v: &Value) -> Vec<i64> {
    v["safety_flags"].as_array().unwrap().iter().map(|f| f["item"].as_i64().unwrap()).collect()
}

#[test]
fn phq9_totals_bands_and_item_9() {
    let v = ok(&["phq9", "1", "2", "1", "0", "2", "1", "1", "0", "1"]);
    assert_eq!((v["instrument"].as_str(), v["total"].as_i64()), (Some("phq9"), Some(9)));
    assert_eq!(v["severity"]["code"], "mild");
    assert_eq!(safety_items(&v), [9]);
    assert_eq!(v["safety_flags"][0]["urgent"], true);

    let v = ok(&["phq9", "3", "3", "3", "3", "3", "3", "3", "3", "0"]);
    assert_eq!((v["total"].as_i64(), v["severity"]["code"].as_str()), (Some(24), Some("severe")));
    assert!(safety_items(&v).is_empty());
    // Band edges: 4 is none/minimal, 5 mild, 14 moderate, 15 moderately severe, 20 severe.
    for (answers, band) in [
        (["1", "1", "1", "1", "0", "0", "0", "0", "0"], "none_minimal"),
        (["1", "1", "1", "1", "1", "0", "0", "0", "0"], "mild"),
        (["2", "2", "2", "2", "2", "2", "2", "0", "0"], "moderate"),
        (["2", "2", "2", "2", "2", "2", "2", "1", "0"], "moderately_severe"),
        (["3", "3", "3", "3", "2", "2", "2", "2", "0"], "severe"),
    ] {
        let mut args = vec!["phq9"];
        args.extend(answers);
        assert_eq!(ok(&args)["severity"]["code"], band, "{answers:?}");
    }
    // Item 10 (difficulty) is accepted but not scored.
    let v = ok(&["phq9", "0", "0", "0", "0", "0", "0", "0", "0", "0", "3"]);
    assert_eq!(v["total"], 0);
}

#[test]
fn gad7_qids_pcl5_who5() {
    let v = ok(&["gad7", "2", "2", "2", "2", "1", "1", "0"]);
    assert_eq!((v["total"].as_i64(), v["severity"]["code"].as_str()), (Some(10), Some("moderate")));

    // QIDS: sleep = max(0,1,3,0) = 3, appetite = max(1,0,0,2) = 2, psychomotor = max(0,3) = 3;
    // 3 + 2 (mood) + 2 + 1 + 1 + 0 + 1 + 2 + 3 = 15.
    let v = ok(&["qids_sr16", "0", "1", "3", "0", "2", "1", "0", "0", "2", "1", "1", "0", "1", "2", "0", "3"]);
    assert_eq!((v["total"].as_i64(), v["severity"]["code"].as_str()), (Some(15), Some("moderate")));
    let sleep = v["subscales"].as_array().unwrap().iter().find(|s| s["code"] == "sleep").unwrap();
    assert_eq!(sleep["score"], 3);
    let v = ok(&["qids_sr16", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "2", "0", "0", "0", "0"]);
    assert_eq!(safety_items(&v), [12], "QIDS item 12 is the safety item");

    // PCL-5: clusters B 1-5, C 6-7, D 8-14, E 15-20; DSM-5 rule with item >= 2 as endorsed.
    let v = ok(&[
        "pcl5", "2", "2", "0", "0", "0", "2", "0", "2", "2", "0", "0", "0", "0", "0", "2", "2", "0", "0", "0", "0",
    ]);
    assert_eq!(v["total"], 14);
    let cluster = |c: &str| {
        v["subscales"].as_array().unwrap().iter().find(|s| s["code"] == c).unwrap()["score"].as_i64().unwrap()
    };
    assert_eq!([cluster("B"), cluster("C"), cluster("D"), cluster("E")], [4, 2, 4, 4]);
    assert!(v["flags"].as_array().unwrap().iter().any(|f| f == "pcl5_provisional_ptsd_dsm5"), "{v}");

    let v = ok(&["who5", "3", "3", "2", "1", "4"]);
    assert_eq!((v["total"].as_i64(), v["percentage"].as_i64()), (Some(13), Some(52)));
    assert!(v["flags"].as_array().unwrap().iter().any(|f| f == "who5_item_0_1"), "{v}");
}

#[test]
fn cssrs_is_a_risk_category_not_a_sum() {
    let v = ok(&["cssrs_screen", "no", "no", "-", "-", "-", "0"]);
    assert_eq!((v["total"].clone(), v["risk_category"].as_str()), (Value::Null, Some("none")));
    let v = ok(&["cssrs_screen", "yes", "yes", "no", "no", "no", "0"]);
    assert_eq!(v["risk_category"], "low");
    let v = ok(&["cssrs_screen", "yes", "yes", "yes", "no", "no", "0"]);
    assert_eq!(v["risk_category"], "moderate");
    assert_eq!(v["safety_flags"][0]["urgent"], true);
    // Behaviour within the past 3 months (Q6 = 2) is high risk even when Q2 was no.
    let v = ok(&["cssrs_screen", "yes", "no", "-", "-", "-", "2"]);
    assert_eq!(v["risk_category"], "high");
    // Q3 is only asked after a yes to Q2.
    let (code, _, err) = score(&["cssrs_screen", "yes", "no", "yes", "-", "-", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("3"), "{err}");
}

#[test]
fn clinician_rated_and_in_session_scales() {
    let v = ok(&["madrs", "4", "4", "3", "3", "2", "2", "2", "2", "2", "2"]);
    assert_eq!((v["total"].as_i64(), v["severity"]["code"].as_str()), (Some(26), Some("moderate")));
    assert_eq!(safety_items(&v), [10]);

    let mut cadss = vec!["cadss"];
    cadss.extend(std::iter::repeat_n("1", 23));
    assert_eq!(ok(&cadss)["total"], 23);
    assert_eq!(ok(&["cadss6", "1", "2", "0", "0", "1", "0"])["total"], 4);

    let v = ok(&["moaas", "3"]);
    assert_eq!((v["total"].as_i64(), v["severity"]["code"].as_str()), (Some(3), Some("level_3")));
    let v = ok(&["moaas", "0"]);
    assert!(
        v["flags"].as_array().unwrap().iter().any(|f| f == "moaas_loss_of_consciousness"),
        "MOAA/S 0 is loss of consciousness: {v}"
    );

    assert_eq!(ok(&["pain_nrs", "7"])["total"], 7);
}

#[test]
fn bad_answers_exit_non_zero_naming_the_item_and_allowed_values() {
    let (code, out, err) = score(&["phq9", "1", "2", "1", "0", "2", "1", "1", "0", "5"]);
    assert_eq!(code, 2);
    assert_eq!(out, Value::Null, "nothing on stdout");
    assert!(err.contains("item 9") && err.contains("0-3") && err.contains('5'), "{err}");

    let (code, _, err) = score(&["phq9", "1", "2"]);
    assert_eq!(code, 2);
    assert!(err.contains("9 answers"), "{err}");

    let (code, _, err) = score(&["pain_nrs", "11"]);
    assert_eq!(code, 2);
    assert!(err.contains("0-10"), "{err}");

    let (code, _, err) = score(&["gad7", "a", "0", "0", "0", "0", "0", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("item 1"), "{err}");

    let (code, _, err) = score(&["bdi", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("phq9"), "lists the instruments: {err}");
}
