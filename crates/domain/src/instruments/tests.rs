//! Hand-worked examples for every instrument, rejection cases, and properties.

use proptest::prelude::*;

use super::*;
use crate::error::{DomainError, FieldError};

fn inst(code: &str) -> &'static Instrument {
    catalog().get(code).unwrap_or_else(|| panic!("instrument {code} missing"))
}

fn ans(values: &[i32]) -> Vec<Option<i32>> {
    values.iter().copied().map(Some).collect()
}

/// `n` answers (each ≤ `max`) adding up to `total`, filled greedily from item 1.
fn summing_to(total: i32, n: usize, max: i32) -> Vec<Option<i32>> {
    let mut left = total;
    (0..n)
        .map(|_| {
            let v = left.min(max);
            left -= v;
            Some(v)
        })
        .collect()
}

fn errors(r: Result<Score, DomainError>) -> Vec<FieldError> {
    match r {
        Err(DomainError::Invalid(e)) => e,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

fn band_code(s: &Score) -> &str {
    s.severity.as_ref().map(|b| b.code.as_str()).unwrap_or("-")
}

fn assert_bands(code: &str, n: usize, max: i32, cases: &[(i32, &str)]) {
    for &(total, band) in cases {
        let s = score(inst(code), &summing_to(total, n, max)).unwrap();
        assert_eq!(s.total, Some(total), "{code} total");
        assert_eq!(band_code(&s), band, "{code} total {total}");
    }
}

// ---------------------------------------------------------------- catalog

#[test]
fn catalog_loads_every_embedded_instrument() {
    let c = catalog();
    let mut codes: Vec<&str> = c.all().iter().map(|i| i.code.as_str()).collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        ["cadss", "cadss6", "cssrs_screen", "gad7", "madrs", "moaas", "pain_nrs", "pcl5", "phq9", "qids_sr16", "who5"]
    );
    for i in c.all() {
        assert!(i.source.section.starts_with('§') && !i.source.tags.is_empty(), "{} source", i.code);
        assert!(!i.licence.is_empty(), "{} licence", i.code);
        let json = serde_json::to_value(i).unwrap();
        assert_eq!(json["items"].as_array().map(Vec::len), Some(i.items.len()), "{} serializes", i.code);
    }
    assert!(c.get("nope").is_none());
}

#[test]
fn wording_and_anchors_only_for_free_instruments() {
    for i in catalog().all() {
        let free = ["phq9", "gad7", "pcl5", "who5"].contains(&i.code.as_str());
        assert_eq!(i.wording_permitted, free, "{}", i.code);
        assert_eq!(i.items.iter().all(|it| it.text.is_some()), free, "{} text", i.code);
        assert_eq!(!i.answer_labels.is_empty(), free, "{} anchors", i.code);
    }
    let phq9 = inst("phq9");
    assert!(phq9.copyright.as_deref().unwrap().contains("Pfizer"));
    assert_eq!(phq9.items.len(), 10);
    assert!(!phq9.items[9].scored && !phq9.items[9].required);
    assert_eq!(phq9.labels_for(&phq9.items[9])[0].label, "Not difficult at all");
    assert_eq!(phq9.labels_for(&phq9.items[0])[3].label, "Nearly every day");
}

#[test]
fn loinc_only_where_verified() {
    for i in catalog().all() {
        let l = i.loinc.as_ref();
        match i.code.as_str() {
            "phq9" => {
                assert_eq!(l.unwrap().panel.as_deref(), Some("44249-1"));
                assert_eq!(l.unwrap().total.as_deref(), Some("44261-6"));
            }
            "gad7" => {
                assert_eq!(l.unwrap().panel, None, "GAD-7 panel is secondary");
                assert_eq!(l.unwrap().total.as_deref(), Some("70274-6"));
            }
            _ => assert!(l.is_none(), "{} has unverified LOINC", i.code),
        }
    }
}

#[test]
fn loader_rejects_inconsistent_data() {
    let good = include_str!("../../../../data/instruments/gad7.toml");
    assert!(parse_instrument(good).is_ok());
    let gap = good.replace("min = 5\nmax = 9", "min = 6\nmax = 9");
    assert!(parse_instrument(&gap).unwrap_err().contains("band `mild`"));
    let wrong_total = good.replace("max_total = 21", "max_total = 20");
    assert!(parse_instrument(&wrong_total).unwrap_err().contains("does not match"));
    let unknown = good.replace("scoring = ", "colour = \"red\"\nscoring = ");
    assert!(parse_instrument(&unknown).unwrap_err().contains("colour"));
    let madrs = include_str!("../../../../data/instruments/madrs.toml");
    let worded = madrs.replace("{ number = 1, min", "{ number = 1, text = \"copyrighted\", min");
    assert!(parse_instrument(&worded).unwrap_err().contains("licence"));
}

// ---------------------------------------------------------------- PHQ-9 (§1.2)

#[test]
fn phq9_hand_worked() {
    // 1+2+0+3+1+1+2+0+1 = 11 -> moderate (10-14); item 9 = 1 -> urgent safety flag.
    let s = score(inst("phq9"), &ans(&[1, 2, 0, 3, 1, 1, 2, 0, 1])).unwrap();
    assert_eq!((s.total, s.max_total), (Some(11), Some(27)));
    assert_eq!(band_code(&s), "moderate");
    assert_eq!(s.safety_flags.len(), 1);
    let f = &s.safety_flags[0];
    assert_eq!((f.item, f.code.as_str(), f.urgent), (9, "phq9_item9", true));
    assert!(f.message.contains("answered 1"), "{}", f.message);
    assert!(s.flags.is_empty() && s.subscales.is_empty());
    assert_eq!((s.percentage, &s.risk_category), (None, &None));
    assert_eq!(s.source, "clinical-reference.md §1.1, §1.2 [S24][S25]");

    // Item 10 is not scored, and item 9 = 0 raises nothing.
    let s = score(inst("phq9"), &ans(&[1, 2, 0, 3, 1, 1, 2, 0, 0, 3])).unwrap();
    assert_eq!(s.total, Some(10));
    assert!(s.safety_flags.is_empty());
    // Item 10 may be given as "not answered".
    let mut a = ans(&[0; 9]);
    a.push(None);
    assert_eq!(score(inst("phq9"), &a).unwrap().total, Some(0));
}

#[test]
fn phq9_band_boundaries() {
    assert_bands(
        "phq9",
        9,
        3,
        &[
            (0, "none_minimal"),
            (4, "none_minimal"),
            (5, "mild"),
            (9, "mild"),
            (10, "moderate"),
            (14, "moderate"),
            (15, "moderately_severe"),
            (19, "moderately_severe"),
            (20, "severe"),
            (27, "severe"),
        ],
    );
}

#[test]
fn phq9_rejections() {
    let e = errors(score(inst("phq9"), &ans(&[0; 7])));
    assert_eq!(e, [FieldError::new("answers", "PHQ-9 needs 9 answers (items 1-9; item 10 optional), got 7")]);
    let e = errors(score(inst("phq9"), &ans(&[0; 11])));
    assert_eq!(e[0].message, "PHQ-9 needs 9 answers (items 1-9; item 10 optional), got 11");

    let e = errors(score(inst("phq9"), &ans(&[0, 0, 0, 5, 0, 0, 0, 0, 0])));
    assert_eq!(e, [FieldError::new("answers[3]", "item 4 of PHQ-9 must be 0-3, got 5")]);

    // All problems at once: negative, missing, item 10 out of range.
    let a = vec![Some(-1), Some(0), None, Some(0), Some(0), Some(0), Some(0), Some(0), Some(0), Some(4)];
    let e = errors(score(inst("phq9"), &a));
    assert_eq!(e.len(), 3);
    assert_eq!(e[0], FieldError::new("answers[0]", "item 1 of PHQ-9 must be 0-3, got -1"));
    assert_eq!(e[1], FieldError::new("answers[2]", "item 3 of PHQ-9 is always asked; answer 0-3"));
    assert_eq!(e[2], FieldError::new("answers[9]", "item 10 of PHQ-9 must be 0-3, got 4"));
}

// ---------------------------------------------------------------- GAD-7 (§1.3)

#[test]
fn gad7_hand_worked_and_bands() {
    // 3+2+2+1+1+0+1 = 10 -> moderate.
    let s = score(inst("gad7"), &ans(&[3, 2, 2, 1, 1, 0, 1])).unwrap();
    assert_eq!((s.total, s.max_total, band_code(&s)), (Some(10), Some(21), "moderate"));
    assert!(s.safety_flags.is_empty());
    assert_bands(
        "gad7",
        7,
        3,
        &[
            (0, "minimal"),
            (4, "minimal"),
            (5, "mild"),
            (9, "mild"),
            (10, "moderate"),
            (14, "moderate"),
            (15, "severe"),
            (21, "severe"),
        ],
    );
    let e = errors(score(inst("gad7"), &ans(&[0; 8])));
    assert_eq!(e[0].message, "GAD-7 needs 7 answers (items 1-7), got 8");
}

// ---------------------------------------------------------------- QIDS-SR16 (§1.4)

#[test]
fn qids_max_of_group() {
    #[rustfmt::skip]
    let a = ans(&[
        1, 3, 0, 2, // sleep -> max 3
        2,          // sad mood
        0, 1, 2, 0, // appetite/weight -> max 2
        1, 1, 1,    // concentration, view of self, thoughts of death
        2, 2,       // interest, energy
        1, 2,       // psychomotor -> max 2
    ]);
    // Domains 3+2+2+1+1+1+2+2+2 = 16 (severe); the raw item sum would be 21.
    let s = score(inst("qids_sr16"), &a).unwrap();
    assert_eq!((s.total, s.max_total, band_code(&s)), (Some(16), Some(27), "severe"));
    let dom: Vec<(&str, i32, i32)> = s.subscales.iter().map(|d| (d.code.as_str(), d.score, d.max)).collect();
    assert_eq!(
        dom,
        [
            ("sleep", 3, 3),
            ("sad_mood", 2, 3),
            ("appetite_weight", 2, 3),
            ("concentration", 1, 3),
            ("view_of_self", 1, 3),
            ("thoughts_of_death", 1, 3),
            ("general_interest", 2, 3),
            ("energy", 2, 3),
            ("psychomotor", 2, 3),
        ]
    );
    // Item 12 > 0: surfaced, but not urgent (no threshold in the reference).
    assert_eq!(s.safety_flags.len(), 1);
    assert_eq!((s.safety_flags[0].item, s.safety_flags[0].urgent), (12, false));
    assert_eq!(s.safety_flags[0].code, "qids_item12");
}

#[test]
fn qids_band_boundaries() {
    // Single-item domains are items 5, 10, 11, 12, 13, 14; groups via items 1, 6, 15.
    let with_total = |t: i32| {
        let domain_items = [1usize, 5, 6, 10, 11, 12, 13, 14, 15];
        let mut a = vec![Some(0); 16];
        let mut left = t;
        for &n in &domain_items {
            let v = left.min(3);
            a[n - 1] = Some(v);
            left -= v;
        }
        a
    };
    for (t, band) in [
        (0, "none"),
        (5, "none"),
        (6, "mild"),
        (10, "mild"),
        (11, "moderate"),
        (15, "moderate"),
        (16, "severe"),
        (20, "severe"),
        (21, "very_severe"),
        (27, "very_severe"),
    ] {
        let s = score(inst("qids_sr16"), &with_total(t)).unwrap();
        assert_eq!((s.total, band_code(&s)), (Some(t), band), "QIDS {t}");
    }
    // All items 3 still caps at 27.
    assert_eq!(score(inst("qids_sr16"), &ans(&[3; 16])).unwrap().total, Some(27));
    let e = errors(score(inst("qids_sr16"), &ans(&[0; 15])));
    assert_eq!(e[0].message, "QIDS-SR16 needs 16 answers (items 1-16), got 15");
}

// ---------------------------------------------------------------- MADRS (§1.5)

#[test]
fn madrs_hand_worked_and_bands() {
    // 3+4+2+5+3+2+4+3+2+0 = 28 -> moderate; item 10 = 0 -> no flag.
    let s = score(inst("madrs"), &ans(&[3, 4, 2, 5, 3, 2, 4, 3, 2, 0])).unwrap();
    assert_eq!((s.total, s.max_total, band_code(&s)), (Some(28), Some(60), "moderate"));
    assert!(s.safety_flags.is_empty());
    // Item 10 = 2 -> non-urgent review flag.
    let s = score(inst("madrs"), &ans(&[3, 4, 2, 5, 3, 2, 4, 3, 2, 2])).unwrap();
    assert_eq!(s.safety_flags.len(), 1);
    assert_eq!((s.safety_flags[0].item, s.safety_flags[0].urgent), (10, false));
    assert!(s.safety_flags[0].message.contains("rated 2"));
    assert_bands(
        "madrs",
        10,
        6,
        &[
            (0, "normal"),
            (6, "normal"),
            (7, "mild"),
            (19, "mild"),
            (20, "moderate"),
            (34, "moderate"),
            (35, "severe"),
            (60, "severe"),
        ],
    );
    let e = errors(score(inst("madrs"), &ans(&[7, 0, 0, 0, 0, 0, 0, 0, 0, 0])));
    assert_eq!(e, [FieldError::new("answers[0]", "item 1 of MADRS must be 0-6, got 7")]);
}

// ---------------------------------------------------------------- PCL-5 (§1.6)

#[test]
fn pcl5_clusters_and_provisional_rule() {
    #[rustfmt::skip]
    let a = ans(&[
        2, 0, 0, 0, 0,          // B: 1 endorsed
        0, 3,                   // C: 1 endorsed
        2, 2, 0, 0, 0, 0, 0,    // D: 2 endorsed
        2, 2, 0, 0, 0, 0,       // E: 2 endorsed
    ]);
    let s = score(inst("pcl5"), &a).unwrap();
    assert_eq!((s.total, s.max_total), (Some(13), Some(80)));
    assert_eq!(s.severity, None, "PCL-5 has no bands");
    let cl: Vec<(&str, i32, i32)> = s.subscales.iter().map(|c| (c.code.as_str(), c.score, c.max)).collect();
    assert_eq!(cl, [("B", 2, 20), ("C", 3, 8), ("D", 4, 28), ("E", 4, 24)]);
    assert_eq!(s.flags, ["pcl5_provisional_ptsd_dsm5"]);

    // Only one D item endorsed -> rule not met.
    let mut b = a.clone();
    b[8] = Some(1);
    assert!(score(inst("pcl5"), &b).unwrap().flags.is_empty());
    // Ratings of 1 are not endorsements, however many.
    let s = score(inst("pcl5"), &ans(&[1; 20])).unwrap();
    assert_eq!((s.total, s.flags.len()), (Some(20), 0));
    // The total cut-off has no default: even the maximum does not trigger it.
    let s = score(inst("pcl5"), &ans(&[4; 20])).unwrap();
    assert_eq!((s.total, s.flags.clone()), (Some(80), vec!["pcl5_provisional_ptsd_dsm5".to_string()]));
    let e = errors(score(inst("pcl5"), &ans(&[5; 20])));
    assert_eq!(e.len(), 20);
    assert_eq!(e[19], FieldError::new("answers[19]", "item 20 of PCL-5 must be 0-4, got 5"));
}

// ---------------------------------------------------------------- WHO-5 (§1.7)

#[test]
fn who5_percentage_and_flags() {
    // 3+3+2+2+2 = 12 -> 48 %; < 13 -> poor well-being; no item at 0-1.
    let s = score(inst("who5"), &ans(&[3, 3, 2, 2, 2])).unwrap();
    assert_eq!((s.total, s.max_total, s.percentage), (Some(12), Some(25), Some(48)));
    assert_eq!(s.flags, ["who5_poor_wellbeing"]);
    assert_eq!(s.severity, None);
    // 13 -> 52 %: not poor; item 5 = 1 -> item flag.
    let s = score(inst("who5"), &ans(&[3, 3, 3, 3, 1])).unwrap();
    assert_eq!((s.total, s.percentage), (Some(13), Some(52)));
    assert_eq!(s.flags, ["who5_item_0_1"]);
    let s = score(inst("who5"), &ans(&[5; 5])).unwrap();
    assert_eq!((s.percentage, s.flags.len()), (Some(100), 0));
    let s = score(inst("who5"), &ans(&[0; 5])).unwrap();
    assert_eq!((s.percentage, s.flags.len()), (Some(0), 2));
    let e = errors(score(inst("who5"), &ans(&[6, 0, 0, 0, 0])));
    assert_eq!(e[0].message, "item 1 of WHO-5 must be 0-5, got 6");
}

// ---------------------------------------------------------------- C-SSRS Screener (§1.8)

fn cssrs(a: &[Option<i32>]) -> Result<Score, DomainError> {
    score(inst("cssrs_screen"), a)
}

#[test]
fn cssrs_triage() {
    /// answers, expected category, expected (safety flag item, urgent).
    type Case<'a> = (&'a [Option<i32>], &'a str, Option<(u32, bool)>);
    let n = None;
    let cases: &[Case] = &[
        (&[Some(0), Some(0), n, n, n, Some(0)], "none", None),
        (&[Some(1), Some(0), n, n, n, Some(0)], "low", None),
        (&[Some(1), Some(1), Some(0), Some(0), Some(0), Some(0)], "low", None),
        (&[Some(1), Some(1), Some(1), Some(0), Some(0), Some(0)], "moderate", Some((3, true))),
        (&[Some(1), Some(1), Some(1), Some(1), Some(0), Some(0)], "high", Some((4, true))),
        (&[Some(1), Some(1), Some(0), Some(0), Some(1), Some(0)], "high", Some((5, true))),
        (&[Some(0), Some(0), n, n, n, Some(2)], "high", Some((6, true))),
    ];
    for (a, category, flag) in cases {
        let s = cssrs(a).unwrap();
        assert_eq!(s.risk_category.as_deref(), Some(*category), "{a:?}");
        assert_eq!((s.total, s.max_total, &s.severity), (None, None, &None));
        let got = s.safety_flags.first().map(|f| (f.item, f.urgent));
        assert_eq!(got, *flag, "{a:?}");
        if let Some(f) = s.safety_flags.first() {
            assert_eq!(f.code, format!("cssrs_screen_{category}"));
        }
    }
}

#[test]
fn cssrs_behaviour_over_three_months_ago_is_surfaced_not_categorised() {
    let s = cssrs(&[Some(1), Some(0), None, None, None, Some(1)]).unwrap();
    assert_eq!(s.risk_category.as_deref(), Some("low"));
    assert!(s.safety_flags.is_empty());
    assert_eq!(s.flags, ["cssrs_past_behaviour_over_3_months"]);
}

#[test]
fn cssrs_branching_errors() {
    // Q2 = no but Q3 answered.
    let e = errors(cssrs(&[Some(0), Some(0), Some(0), None, None, Some(0)]));
    assert_eq!(
        e,
        [FieldError::new(
            "answers[2]",
            "item 3 of C-SSRS Screener must be left unanswered (not asked): it is asked only when item 2 is yes (item 2 was no)"
        )]
    );
    // Q2 = yes but Q3-Q5 missing.
    let e = errors(cssrs(&[Some(1), Some(1), None, None, None, Some(0)]));
    assert_eq!(e.len(), 3);
    assert_eq!(e[0].field, "answers[2]");
    assert_eq!(e[0].message, "item 3 of C-SSRS Screener must be answered (0 (no) or 1 (yes)) because item 2 is yes");
    // Q1 and Q6 always asked; Q6 coded 0-2.
    let e = errors(cssrs(&[None, Some(0), None, None, None, Some(3)]));
    assert_eq!(
        e[0],
        FieldError::new("answers[0]", "item 1 of C-SSRS Screener is always asked; answer 0 (no) or 1 (yes)")
    );
    assert_eq!(
        e[1].message,
        "item 6 of C-SSRS Screener must be 0-2 (0 = no; 1 = yes, more than 3 months ago; 2 = yes, within the past 3 months), got 3"
    );
    assert_eq!(
        errors(cssrs(&[Some(2), Some(0), None, None, None, Some(0)]))[0].message,
        "item 1 of C-SSRS Screener must be 0 (no) or 1 (yes), got 2"
    );
    let e = errors(cssrs(&[Some(0); 5]));
    assert_eq!(e[0].message, "C-SSRS Screener needs 6 answers (items 1-6; use null/'-' for items not asked), got 5");
}

// ---------------------------------------------------------------- CADSS, CADSS-6 (§1.9)

#[test]
fn cadss_totals() {
    let s = score(inst("cadss"), &ans(&[1; 23])).unwrap();
    assert_eq!((s.total, s.max_total, &s.severity), (Some(23), Some(92), &None));
    assert!(s.flags.is_empty() && s.safety_flags.is_empty());
    assert_eq!(score(inst("cadss"), &ans(&[4; 23])).unwrap().total, Some(92));
    let e = errors(score(inst("cadss"), &ans(&[0; 22])));
    assert_eq!(e[0].message, "CADSS needs 23 answers (items 1-23), got 22");
}

#[test]
fn cadss6_records_original_items() {
    let c6 = inst("cadss6");
    let orig: Vec<u32> = c6.items.iter().map(|i| i.source_item.unwrap()).collect();
    assert_eq!(orig, [1, 2, 6, 7, 15, 22]);
    let numbers: Vec<u32> = c6.items.iter().map(|i| i.number).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    // 1+0+2+3+0+4 = 10 of 24.
    let s = score(c6, &ans(&[1, 0, 2, 3, 0, 4])).unwrap();
    assert_eq!((s.total, s.max_total), (Some(10), Some(24)));
    let e = errors(score(c6, &ans(&[0, 0, 5, 0, 0, 0])));
    assert_eq!(e, [FieldError::new("answers[2]", "item 3 (original item 6) of CADSS-6 must be 0-4, got 5")]);
}

// ---------------------------------------------------------------- MOAA/S (§1.10)

#[test]
fn moaas_level_is_its_band() {
    for level in 0..=5 {
        let s = score(inst("moaas"), &ans(&[level])).unwrap();
        assert_eq!(s.total, Some(level));
        assert_eq!(band_code(&s), format!("level_{level}"));
        assert_eq!(s.flags.is_empty(), level != 0, "loss-of-consciousness flag only at 0");
    }
    let s = score(inst("moaas"), &ans(&[5])).unwrap();
    assert!(s.severity.unwrap().label.contains("alert"));
    assert_eq!(score(inst("moaas"), &ans(&[0])).unwrap().flags, ["moaas_loss_of_consciousness"]);
    assert_eq!(errors(score(inst("moaas"), &ans(&[6])))[0].message, "item 1 of MOAA/S must be 0-5, got 6");
}

// ---------------------------------------------------------------- Pain NRS (§1.11)

#[test]
fn pain_nrs() {
    let s = score(inst("pain_nrs"), &ans(&[7])).unwrap();
    assert_eq!((s.total, s.max_total, &s.severity), (Some(7), Some(10), &None));
    assert_eq!(errors(score(inst("pain_nrs"), &ans(&[11])))[0].message, "item 1 of Pain NRS must be 0-10, got 11");
    assert_eq!(errors(score(inst("pain_nrs"), &[]))[0].message, "Pain NRS needs 1 answer (item 1), got 0");
}

// ---------------------------------------------------------------- CLI tokens

#[test]
fn answer_tokens() {
    let phq9 = inst("phq9");
    assert_eq!(parse_answer_token(phq9, 0, "2"), Ok(Some(2)));
    assert_eq!(parse_answer_token(phq9, 0, " 3 "), Ok(Some(3)));
    assert_eq!(parse_answer_token(phq9, 9, "-"), Ok(None), "item 10 is optional");
    let msg = |r: Result<Option<i32>, DomainError>| match r {
        Err(DomainError::Invalid(e)) => format!("{}: {}", e[0].field, e[0].message),
        other => panic!("{other:?}"),
    };
    assert_eq!(msg(parse_answer_token(phq9, 3, "5")), "answers[3]: item 4 of PHQ-9 must be 0-3, got 5");
    assert_eq!(
        msg(parse_answer_token(phq9, 0, "-")),
        "answers[0]: item 1 of PHQ-9 is always asked; '-' (not asked) is not allowed"
    );
    assert_eq!(
        msg(parse_answer_token(phq9, 0, "yes")),
        "answers[0]: item 1 of PHQ-9 is not a yes/no question; enter 0-3"
    );
    assert_eq!(msg(parse_answer_token(phq9, 0, "abc")), "answers[0]: item 1 of PHQ-9: cannot read 'abc'; enter 0-3");
    assert_eq!(msg(parse_answer_token(phq9, 10, "1")), "answers: PHQ-9 has 10 items; there is no item 11");

    let c = inst("cssrs_screen");
    for (tok, v) in [("yes", 1), ("Y", 1), ("no", 0), ("n", 0), ("1", 1), ("0", 0)] {
        assert_eq!(parse_answer_token(c, 0, tok), Ok(Some(v)), "{tok}");
    }
    assert_eq!(parse_answer_token(c, 2, "-"), Ok(None), "Q3 may be skipped");
    assert_eq!(parse_answer_token(c, 5, "2"), Ok(Some(2)));
    assert!(msg(parse_answer_token(c, 1, "-")).contains("always asked"));
    assert!(msg(parse_answer_token(c, 5, "yes")).contains("not a yes/no question"));
    assert!(msg(parse_answer_token(c, 0, "maybe")).contains("cannot read 'maybe'; enter 0 (no) or 1 (yes), yes or no"));
}

#[test]
fn openapi_schemas_build() {
    use utoipa::PartialSchema;
    for schema in [Instrument::schema(), Score::schema(), crate::outcomes::Outcome::schema()] {
        assert!(serde_json::to_value(schema).is_ok());
    }
}

#[test]
fn score_round_trips_through_json() {
    let s = score(inst("pcl5"), &ans(&[2; 20])).unwrap();
    let back: Score = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

// ---------------------------------------------------------------- properties

proptest! {
    #[test]
    fn phq9_total_is_the_sum_and_its_band_contains_it(
        items in proptest::collection::vec(0i32..=3, 9),
        item10 in proptest::option::of(0i32..=3),
    ) {
        let mut a = ans(&items);
        if item10.is_some() { a.push(item10); }
        let s = score(inst("phq9"), &a).unwrap();
        let total = s.total.unwrap();
        prop_assert_eq!(total, items.iter().sum::<i32>());
        let band = s.severity.unwrap();
        prop_assert!(band.min <= total && total <= band.max);
        prop_assert_eq!(s.safety_flags.len(), usize::from(items[8] > 0));
    }

    #[test]
    fn qids_total_is_in_range_and_follows_the_domain_rule(items in proptest::collection::vec(0i32..=3, 16)) {
        let s = score(inst("qids_sr16"), &ans(&items)).unwrap();
        let total = s.total.unwrap();
        prop_assert!((0..=27).contains(&total));
        let max = |r: std::ops::Range<usize>| items[r].iter().copied().max().unwrap();
        let expected = max(0..4) + items[4] + max(5..9) + items[9] + items[10] + items[11]
            + items[12] + items[13] + max(14..16);
        prop_assert_eq!(total, expected);
        prop_assert!(s.severity.unwrap().contains(total));
    }

    #[test]
    fn every_summed_instrument_scores_in_range_answers(seed in proptest::collection::vec(0i32..=100, 23)) {
        for i in catalog().all().iter().filter(|i| i.scoring != ScoringMethod::RiskCategory) {
            let a: Vec<Option<i32>> = i.items.iter().zip(&seed)
                .map(|(it, r)| Some(it.min + r % (it.max - it.min + 1)))
                .collect();
            let s = score(i, &a).unwrap();
            let t = s.total.unwrap();
            prop_assert!(i.min_total.unwrap() <= t && t <= i.max_total.unwrap(), "{}", i.code);
            if !i.bands.is_empty() { prop_assert!(s.severity.is_some(), "{}", i.code); }
        }
    }
}
