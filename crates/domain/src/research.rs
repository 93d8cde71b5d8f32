//! De-identification rules of the research export (pure).
//!
//! The export follows the HIPAA Safe Harbor method (45 CFR 164.514(b)(2)): no names,
//! contacts, record numbers or free text leave the clinic; ages over 89 are one group; every
//! date is moved by a random per-patient shift that is kept secret, so intervals within a
//! patient stay true. On top of Safe Harbor the clinic sets a k-anonymity threshold: every
//! combination of the patient table's quasi-identifiers (site, age band, sex, indication,
//! diagnoses) is shared by at least k exported patients, rarer values being suppressed.
//!
//! Sources: the security reference has no de-identification section; the Safe Harbor list is
//! from the regulation's text (general knowledge, not yet confirmed against the primary text).
//! The k threshold is a clinic setting and its default (5) is not from any reference.

use serde::{Deserialize, Serialize};
use time::{Date, Duration};

use crate::error::{DomainError, Validator};

/// The value written in place of a suppressed cell.
pub const SUPPRESSED: &str = "suppressed";

/// Ages above this are exported as one group, `90+` (Safe Harbor).
pub const OLDEST_EXACT_AGE: i32 = 89;

/// The clinic's research-export settings (`clinic_settings` key `research_export`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResearchSettings {
    /// Every combination of quasi-identifiers is shared by at least this many exported
    /// patients; sites with fewer exported patients are suppressed. A clinic setting: the
    /// default (5) is not from the references. From [`ResearchSettings::MIN_K`] to
    /// [`ResearchSettings::MAX_K`] (the schema repeats the two, as literals).
    #[schema(minimum = 2, maximum = 100)]
    pub k_threshold: u32,
}

impl Default for ResearchSettings {
    fn default() -> Self {
        Self { k_threshold: 5 }
    }
}

impl ResearchSettings {
    pub const MIN_K: u32 = 2;
    pub const MAX_K: u32 = 100;

    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        v.check(
            (Self::MIN_K..=Self::MAX_K).contains(&self.k_threshold),
            "k_threshold",
            format!("use a whole number from {} to {}", Self::MIN_K, Self::MAX_K),
        );
        v.finish()
    }
}

/// The exported age group for an age in completed years: five-year bands (`35-39`), and
/// `90+` for every age over 89.
pub fn age_band(age: i32) -> String {
    if age > OLDEST_EXACT_AGE {
        return "90+".into();
    }
    let low = age.max(0) / 5 * 5;
    format!("{low}-{}", low + 4)
}

/// A date moved by the patient's secret shift.
pub fn shift_date(d: Date, offset_days: i64) -> Date {
    d.checked_add(Duration::days(offset_days)).unwrap_or(d)
}

/// Suppresses quasi-identifier cells until every combination of the rows' values is shared by
/// at least `k` rows (k-anonymity), and returns how many cells it suppressed.
///
/// Greedy: while some combination is rarer than `k`, in each such row the column whose value
/// is rarest over all rows is suppressed (ties: the leftmost column). A row with every column
/// suppressed carries no quasi-identifier and is left as it is.
pub fn suppress_to_k(rows: &mut [Vec<String>], k: usize) -> usize {
    use std::collections::HashMap;
    let mut suppressed = 0;
    let width = rows.first().map_or(0, Vec::len);
    loop {
        let mut classes: HashMap<&[String], usize> = HashMap::new();
        for r in rows.iter() {
            *classes.entry(r.as_slice()).or_default() += 1;
        }
        let small: Vec<usize> = (0..rows.len())
            .filter(|&i| classes[rows[i].as_slice()] < k && rows[i].iter().any(|v| v != SUPPRESSED))
            .collect();
        if small.is_empty() {
            break;
        }
        let mut counts: Vec<HashMap<String, usize>> = vec![HashMap::new(); width];
        for r in rows.iter() {
            for (col, v) in r.iter().enumerate() {
                *counts[col].entry(v.clone()).or_default() += 1;
            }
        }
        for i in small {
            let rarest = (0..width)
                .filter(|&c| rows[i][c] != SUPPRESSED)
                .min_by_key(|&c| (counts[c][&rows[i][c]], c))
                .expect("a row with a value left");
            rows[i][rarest] = SUPPRESSED.into();
            suppressed += 1;
        }
    }
    suppressed
}

/// Replaces values shared by fewer than `k` rows with [`SUPPRESSED`] (rare values of a column
/// that is not a quasi-identifier but could single a patient out, e.g. a rare protocol).
pub fn suppress_rare(values: &mut [String], k: usize) -> usize {
    use std::collections::HashMap;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for v in values.iter() {
        *counts.entry(v.clone()).or_default() += 1;
    }
    let mut n = 0;
    for v in values.iter_mut() {
        if !v.is_empty() && v != SUPPRESSED && counts[v.as_str()] < k {
            *v = SUPPRESSED.into();
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use time::macros::date;

    fn row(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn classes(rows: &[Vec<String>]) -> HashMap<Vec<String>, usize> {
        let mut m = HashMap::new();
        for r in rows {
            *m.entry(r.clone()).or_default() += 1;
        }
        m
    }

    #[test]
    fn ages_over_89_are_one_group_and_younger_ages_five_year_bands() {
        assert_eq!(age_band(89), "85-89");
        assert_eq!(age_band(90), "90+");
        assert_eq!(age_band(104), "90+");
        assert_eq!(age_band(35), "35-39");
        assert_eq!(age_band(39), "35-39");
        assert_eq!(age_band(18), "15-19");
    }

    #[test]
    fn a_shift_keeps_intervals() {
        let (a, b) = (date!(2026 - 03 - 01), date!(2026 - 03 - 15));
        for off in [-300, -1, 1, 77] {
            assert_eq!(shift_date(b, off) - shift_date(a, off), b - a);
            assert_ne!(shift_date(a, off), a);
        }
    }

    #[test]
    fn rare_combinations_are_suppressed_until_every_class_has_k_rows() {
        let mut rows = vec![
            row(&["site_1", "30-34", "female", "depression"]),
            row(&["site_1", "30-34", "female", "depression"]),
            row(&["site_1", "30-34", "female", "depression"]),
            row(&["site_1", "40-44", "female", "depression"]),
            row(&["site_1", "45-49", "female", "depression"]),
            row(&["site_1", "50-54", "male", "depression"]),
        ];
        let n = suppress_to_k(&mut rows, 3);
        assert!(n > 0);
        for (class, size) in classes(&rows) {
            assert!(size >= 3, "{class:?} has {size} rows: {rows:?}");
        }
        // The common class is untouched; the rare ages went first.
        assert_eq!(rows[0], row(&["site_1", "30-34", "female", "depression"]));
        assert_eq!(rows[3][1], SUPPRESSED);
        assert_eq!(rows[3][0], "site_1");
    }

    #[test]
    fn k_of_one_changes_nothing_and_enough_rows_alike_are_kept() {
        let mut rows = vec![row(&["a", "b"]), row(&["c", "d"])];
        assert_eq!(suppress_to_k(&mut rows, 1), 0);
        let mut same = vec![row(&["a", "b"]); 5];
        assert_eq!(suppress_to_k(&mut same, 5), 0);
    }

    #[test]
    fn rare_values_of_a_column_are_suppressed() {
        let mut v = row(&["iv", "iv", "im", "", "iv"]);
        assert_eq!(suppress_rare(&mut v, 2), 1);
        assert_eq!(v, row(&["iv", "iv", SUPPRESSED, "", "iv"]));
    }

    #[test]
    fn the_threshold_is_bounded() {
        assert!(ResearchSettings::default().validate().is_ok());
        assert!(ResearchSettings { k_threshold: 1 }.validate().is_err());
        assert!(ResearchSettings { k_threshold: 101 }.validate().is_err());
    }

    proptest::proptest! {
        #[test]
        fn suppression_always_reaches_k_anonymity(
            raw in proptest::collection::vec((0u8..4, 0u8..5, 0u8..2), 0..40),
            k in 2usize..6,
        ) {
            let mut rows: Vec<Vec<String>> =
                raw.iter().map(|(a, b, c)| vec![format!("s{a}"), format!("a{b}"), format!("x{c}")]).collect();
            suppress_to_k(&mut rows, k);
            for (class, size) in classes(&rows) {
                let all_suppressed = class.iter().all(|v| v == SUPPRESSED);
                proptest::prop_assert!(size >= k || all_suppressed, "{:?} {}", class, size);
            }
        }
    }
}
