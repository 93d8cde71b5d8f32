//! Plausible ranges for every value staff and scripts type in, checked in one place.
//!
//! The bounds are data (`data/rules/plausible-ranges.toml`, each with its source): they refuse
//! typos and absurd values (a birth year 0001, a session in 9999, a planned dose of 1e9 mg, a
//! negative page offset) before anything is stored, so no later sweep, chart or report meets
//! them. They are not clinical limits: a protocol's maximum dose stays with the protocol
//! (clinical-reference §2) and is checked by the dose calculator.
//!
//! The input types' `validate` methods call these checks, so the API, the forms and the
//! store refuse the same values; the OpenAPI document states the same bounds.

use std::sync::OnceLock;

use serde::Deserialize;
use time::{Date, Duration, OffsetDateTime};

use crate::error::{DomainError, Validator};
use crate::units::{Kilograms, Milligrams};

const RANGES_TOML: &str = include_str!("../../../data/rules/plausible-ranges.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlausibleRanges {
    pub date_of_birth: BirthDates,
    pub scheduling: Scheduling,
    pub body_weight: BodyWeight,
    pub planned_dose: PlannedDose,
    pub quantities: Quantities,
    pub lists: Lists,
    pub counts: Counts,
    pub text: TextLengths,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub antidepressant_failures_max: u32,
    pub episode_duration_months_max: u32,
    pub interval_days_max: u32,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BirthDates {
    pub earliest_year: i32,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheduling {
    pub past_days: i64,
    pub future_days: i64,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyWeight {
    pub min_kg: f64,
    pub max_kg: f64,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedDose {
    pub highest_reported_mg_per_kg: f64,
    pub source: String,
}

/// Upper bounds of typed-in amounts, volumes, rates and times (see the TOML's source).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantities {
    pub mg_max: f64,
    pub ml_max: f64,
    pub mg_per_ml_max: f64,
    pub ml_per_h_max: f64,
    pub mg_per_kg_max: f64,
    pub mg_per_h_max: f64,
    pub mg_per_kg_per_h_max: f64,
    pub per_min_max: f64,
    pub minutes_max: f64,
    pub cv_percent_max: f64,
    pub age_years_max: f64,
    pub source: String,
}

/// What a typed-in quantity measures, for [`PlausibleRanges::quantity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Mg,
    Ml,
    MgPerMl,
    MlPerH,
    MgPerKg,
    MgPerH,
    MgPerKgPerH,
    PerMin,
    Minutes,
    CvPercent,
    AgeYears,
}

impl Quantity {
    pub const ALL: [Quantity; 11] = [
        Self::Mg,
        Self::Ml,
        Self::MgPerMl,
        Self::MlPerH,
        Self::MgPerKg,
        Self::MgPerH,
        Self::MgPerKgPerH,
        Self::PerMin,
        Self::Minutes,
        Self::CvPercent,
        Self::AgeYears,
    ];

    /// The unit as the error message writes it.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Mg => "mg",
            Self::Ml => "mL",
            Self::MgPerMl => "mg/mL",
            Self::MlPerH => "mL/h",
            Self::MgPerKg => "mg/kg",
            Self::MgPerH => "mg/h",
            Self::MgPerKgPerH => "mg/kg/h",
            Self::PerMin => "/min",
            Self::Minutes => "min",
            Self::CvPercent => "% CV",
            Self::AgeYears => "years",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lists {
    pub page_limit_max: i64,
    pub report_limit_max: i64,
    pub offset_max: i64,
    pub diagnoses_max: usize,
    pub chairs_max: usize,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextLengths {
    pub name_max: usize,
    pub short_text_max: usize,
    pub note_max: usize,
    pub source: String,
}

/// The shipped ranges (embedded at build time, so a build is self-contained).
pub fn ranges() -> &'static PlausibleRanges {
    static R: OnceLock<PlausibleRanges> = OnceLock::new();
    R.get_or_init(|| {
        let r: PlausibleRanges =
            toml::from_str(RANGES_TOML).unwrap_or_else(|e| panic!("data/rules/plausible-ranges.toml: {e}"));
        if let Err(e) = r.check() {
            panic!("data/rules/plausible-ranges.toml: {e}");
        }
        r
    })
}

impl PlausibleRanges {
    fn check(&self) -> Result<(), String> {
        let ok = self.date_of_birth.earliest_year > 0
            && self.scheduling.past_days >= 0
            && self.scheduling.future_days > 0
            && self.body_weight.min_kg > 0.0
            && self.body_weight.max_kg > self.body_weight.min_kg
            && self.planned_dose.highest_reported_mg_per_kg > 0.0
            && Quantity::ALL.iter().all(|q| self.quantity_max(*q) > 0.0 && self.quantity_max(*q).is_finite())
            && self.lists.page_limit_max > 0
            && self.lists.report_limit_max > 0
            && self.lists.offset_max >= 0
            && self.counts.antidepressant_failures_max > 0
            && self.counts.episode_duration_months_max > 0
            && self.counts.interval_days_max > 0
            && self.text.name_max > 0
            && self.text.short_text_max > 0
            && self.text.note_max > 0;
        if ok { Ok(()) } else { Err("every bound must be positive and each maximum above its minimum".into()) }
    }

    /// The earliest and latest plausible date of birth on `today`.
    pub fn birth_dates(&self, today: Date) -> (Date, Date) {
        (first_of_year(self.date_of_birth.earliest_year), today)
    }

    /// Date of birth: from the earliest year up to today.
    pub fn date_of_birth(&self, d: Date, today: Date) -> Result<(), String> {
        let (from, to) = self.birth_dates(today);
        if d > to {
            return Err("date of birth cannot be in the future".into());
        }
        if d < from {
            return Err(format!("check the year of birth: it must be {} or later", from.year()));
        }
        Ok(())
    }

    /// A date something was measured or happened (a weight): not before the earliest birth
    /// year, not after today.
    pub fn past_date(&self, d: Date, today: Date) -> Result<(), String> {
        let from = first_of_year(self.date_of_birth.earliest_year);
        if d > today {
            return Err("the date cannot be in the future".into());
        }
        if d < from {
            return Err(format!("check the year: it must be {} or later", from.year()));
        }
        Ok(())
    }

    /// The window in which a session may be scheduled or a course start, around `now`.
    pub fn scheduling_window(&self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        (
            now.checked_sub(Duration::days(self.scheduling.past_days)).unwrap_or(now),
            now.checked_add(Duration::days(self.scheduling.future_days)).unwrap_or(now),
        )
    }

    pub fn scheduled_time(&self, t: OffsetDateTime, now: OffsetDateTime) -> Result<(), String> {
        let (from, to) = self.scheduling_window(now);
        if t < from || t > to {
            return Err(format!(
                "schedule between {} and {} (at most {} days back, {} days ahead)",
                from.date(),
                to.date(),
                self.scheduling.past_days,
                self.scheduling.future_days
            ));
        }
        Ok(())
    }

    pub fn scheduled_date(&self, d: Date, today: Date) -> Result<(), String> {
        let from = today.checked_sub(Duration::days(self.scheduling.past_days)).unwrap_or(today);
        let to = today.checked_add(Duration::days(self.scheduling.future_days)).unwrap_or(today);
        if d < from || d > to {
            return Err(format!(
                "choose a date between {from} and {to} (at most {} days back, {} days ahead)",
                self.scheduling.past_days, self.scheduling.future_days
            ));
        }
        Ok(())
    }

    pub fn body_weight(&self, w: Kilograms) -> Result<(), String> {
        let (lo, hi) = (self.body_weight.min_kg, self.body_weight.max_kg);
        if w.0.is_finite() && (lo..=hi).contains(&w.0) {
            Ok(())
        } else {
            Err(format!("enter the weight in kilograms ({lo}-{hi} kg); was it entered in pounds?"))
        }
    }

    /// The ceiling of a planned dose: the highest reported mg/kg at the heaviest plausible weight.
    pub fn planned_dose_max(&self) -> Milligrams {
        Milligrams(self.planned_dose.highest_reported_mg_per_kg * self.body_weight.max_kg)
    }

    pub fn planned_dose(&self, d: Milligrams) -> Result<(), String> {
        let max = self.planned_dose_max();
        if d.0.is_finite() && d.0 > 0.0 && d.0 <= max.0 {
            Ok(())
        } else {
            Err(format!(
                "a planned dose is a positive number of mg, at most {} mg ({} mg/kg, the highest dose clinical-reference §2 reports, at {} kg)",
                max.0, self.planned_dose.highest_reported_mg_per_kg, self.body_weight.max_kg
            ))
        }
    }

    /// The largest plausible value of a quantity.
    pub fn quantity_max(&self, q: Quantity) -> f64 {
        let m = &self.quantities;
        match q {
            Quantity::Mg => m.mg_max,
            Quantity::Ml => m.ml_max,
            Quantity::MgPerMl => m.mg_per_ml_max,
            Quantity::MlPerH => m.ml_per_h_max,
            Quantity::MgPerKg => m.mg_per_kg_max,
            Quantity::MgPerH => m.mg_per_h_max,
            Quantity::MgPerKgPerH => m.mg_per_kg_per_h_max,
            Quantity::PerMin => m.per_min_max,
            Quantity::Minutes => m.minutes_max,
            Quantity::CvPercent => m.cv_percent_max,
            Quantity::AgeYears => m.age_years_max,
        }
    }

    /// A positive quantity no larger than its plausible maximum; `what` names it in the message.
    pub fn quantity(&self, q: Quantity, x: f64, what: &str) -> Result<(), String> {
        self.quantity_from(q, x, what, false)
    }

    /// As [`Self::quantity`], but zero is allowed (a lag time, a start time).
    pub fn quantity_or_zero(&self, q: Quantity, x: f64, what: &str) -> Result<(), String> {
        self.quantity_from(q, x, what, true)
    }

    fn quantity_from(&self, q: Quantity, x: f64, what: &str, zero_ok: bool) -> Result<(), String> {
        let max = self.quantity_max(q);
        let low_ok = if zero_ok { x >= 0.0 } else { x > 0.0 };
        if x.is_finite() && low_ok && x <= max {
            Ok(())
        } else {
            let least = if zero_ok { "zero or more" } else { "a positive number" };
            Err(format!("{what} must be {least} of {unit}, at most {max} {unit}; check the unit", unit = q.unit()))
        }
    }

    /// A page of a list: `limit` 1 to `max_limit` (`lists.page_limit_max` for lists of
    /// patients, `lists.report_limit_max` for reports such as the audit trail), `offset` 0 to
    /// the maximum; all errors at once.
    pub fn page(&self, limit: Option<i64>, offset: Option<i64>, max_limit: i64) -> Result<(), DomainError> {
        let mut v = Validator::new();
        if let Some(l) = limit {
            let max = max_limit;
            v.check((1..=max).contains(&l), "limit", format!("ask for 1 to {max} rows"));
        }
        if let Some(o) = offset {
            let max = self.lists.offset_max;
            v.check((0..=max).contains(&o), "offset", format!("the offset is 0 to {max}"));
        }
        v.finish()
    }

    /// A whole count from 0 (or `min`) to `max`.
    pub fn count(&self, n: u32, min: u32, max: u32, what: &str) -> Result<(), String> {
        if (min..=max).contains(&n) { Ok(()) } else { Err(format!("{what}: {min} to {max}")) }
    }

    /// A name or label: not blank, no control characters, at most `name_max` characters.
    pub fn name(&self, s: &str) -> Result<(), String> {
        self.text_within(s, self.text.name_max, true)
    }

    /// Short free text (a reason, a drug name): at most `short_text_max` characters.
    pub fn short_text(&self, s: &str) -> Result<(), String> {
        self.text_within(s, self.text.short_text_max, true)
    }

    /// A clinical note: at most `note_max` characters (line breaks and tabs allowed).
    pub fn note(&self, s: &str) -> Result<(), String> {
        let n = s.chars().count();
        if n > self.text.note_max {
            return Err(format!("shorten the note to at most {} characters (it has {n})", self.text.note_max));
        }
        if s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            return Err("remove the control characters".into());
        }
        Ok(())
    }

    fn text_within(&self, s: &str, max: usize, required: bool) -> Result<(), String> {
        let t = s.trim();
        if required && t.is_empty() {
            return Err("fill this in".into());
        }
        if t.chars().count() > max {
            return Err(format!("use at most {max} characters"));
        }
        if t.chars().any(char::is_control) {
            return Err("remove the control characters (line breaks, tabs)".into());
        }
        Ok(())
    }
}

fn first_of_year(year: i32) -> Date {
    Date::from_ordinal_date(year, 1).unwrap_or(Date::MIN)
}

/// Adds a range check's message to a validator under `field`.
pub fn check(v: &mut Validator, field: &str, r: Result<(), String>) {
    if let Err(m) = r {
        v.push(field, m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::{date, datetime};

    const TODAY: Date = date!(2026 - 12 - 07);
    const NOW: OffsetDateTime = datetime!(2026-12-07 09:00 UTC);

    fn r() -> &'static PlausibleRanges {
        ranges()
    }

    fn date_from_days(days: i32) -> Date {
        Date::from_julian_day(days).unwrap()
    }

    #[test]
    fn the_shipped_ranges_load_and_say_where_they_come_from() {
        let r = r();
        for s in [
            &r.date_of_birth.source,
            &r.scheduling.source,
            &r.body_weight.source,
            &r.planned_dose.source,
            &r.lists.source,
            &r.counts.source,
            &r.text.source,
        ] {
            assert!(!s.trim().is_empty());
        }
        assert!(r.planned_dose.source.contains("§2.4"));
    }

    #[test]
    fn the_probes_of_issue_17_are_refused() {
        let r = r();
        assert!(r.date_of_birth(date!(0001 - 01 - 01), TODAY).is_err());
        assert!(r.date_of_birth(Date::from_calendar_date(0, time::Month::January, 1).unwrap(), TODAY).is_err());
        assert!(r.date_of_birth(date!(9999 - 12 - 31), TODAY).is_err());
        assert!(r.scheduled_time(datetime!(9999-12-31 09:00 UTC), NOW).is_err());
        assert!(r.scheduled_time(datetime!(0001-01-01 09:00 UTC), NOW).is_err());
        assert!(r.scheduled_date(date!(9999 - 12 - 31), TODAY).is_err());
        assert!(r.planned_dose(Milligrams(1e9)).is_err());
        assert!(r.page(Some(-1), None, r.lists.page_limit_max).is_err());
        assert!(r.page(None, Some(-1), r.lists.page_limit_max).is_err());
        assert!(r.page(Some(r.lists.page_limit_max + 1), None, r.lists.page_limit_max).is_err());
        assert!(r.name("   ").is_err());
    }

    #[test]
    fn a_planned_dose_ceiling_is_the_highest_reported_dose_at_the_heaviest_weight() {
        let r = r();
        assert_eq!(r.planned_dose_max().0, r.planned_dose.highest_reported_mg_per_kg * r.body_weight.max_kg);
        assert!(r.planned_dose(r.planned_dose_max()).is_ok());
        // The esketamine label's 84 mg and a 1.0 mg/kg IV dose at 100 kg are ordinary plans.
        assert!(r.planned_dose(Milligrams(84.0)).is_ok());
        assert!(r.planned_dose(Milligrams(100.0)).is_ok());
    }

    #[test]
    fn notes_keep_line_breaks_and_refuse_other_control_characters_and_excess_length() {
        let r = r();
        assert!(r.note("Line one\nLine two\twith a tab\r\n").is_ok());
        assert!(r.note("\u{1d}").is_err());
        assert!(r.note("\u{9d}").is_err());
        assert!(r.note(&"é".repeat(r.text.note_max)).is_ok(), "counted in characters, not bytes");
        assert!(r.note(&"x".repeat(r.text.note_max + 1)).is_err());
    }

    #[test]
    fn relapse_settings_refuse_an_implausible_bring_forward() {
        use crate::relapse::RelapseSettings;
        let max = r().counts.interval_days_max;
        let at = |d| RelapseSettings { bring_forward_within_days: Some(d), ..Default::default() };
        // The schemathesis probe: 2^31 days was stored.
        assert!(at(2_147_483_648).validate(RelapseSettings::INSTRUMENT).is_err());
        assert!(at(max + 1).validate(RelapseSettings::INSTRUMENT).is_err());
        assert!(at(max).validate(RelapseSettings::INSTRUMENT).is_ok());
    }

    proptest! {
        #[test]
        fn dates_of_birth_inside_the_range_pass_and_outside_fail(days in -1_930_000i32..5_373_484) {
            let d = date_from_days(days);
            let (from, to) = r().birth_dates(TODAY);
            prop_assert_eq!(r().date_of_birth(d, TODAY).is_ok(), d >= from && d <= to);
        }

        #[test]
        fn scheduled_dates_inside_the_window_pass_and_outside_fail(days in -1_930_000i32..5_373_484) {
            let d = date_from_days(days);
            let s = &r().scheduling;
            let inside = d >= TODAY - Duration::days(s.past_days) && d <= TODAY + Duration::days(s.future_days);
            prop_assert_eq!(r().scheduled_date(d, TODAY).is_ok(), inside);
        }

        #[test]
        fn scheduled_times_inside_the_window_pass_and_outside_fail(days in -1_930_000i32..5_373_484, secs in 0i64..86_400) {
            let t = date_from_days(days).midnight().assume_utc() + Duration::seconds(secs);
            let (from, to) = r().scheduling_window(NOW);
            prop_assert_eq!(r().scheduled_time(t, NOW).is_ok(), t >= from && t <= to);
        }

        #[test]
        fn planned_doses_pass_only_between_zero_and_the_ceiling(mg in proptest::num::f64::ANY) {
            let inside = mg.is_finite() && mg > 0.0 && mg <= r().planned_dose_max().0;
            prop_assert_eq!(r().planned_dose(Milligrams(mg)).is_ok(), inside);
        }

        #[test]
        fn quantities_pass_only_between_zero_and_their_maximum(x in proptest::num::f64::ANY, i in 0usize..11) {
            let q = Quantity::ALL[i];
            let max = r().quantity_max(q);
            prop_assert_eq!(r().quantity(q, x, "it").is_ok(), x.is_finite() && x > 0.0 && x <= max);
            prop_assert_eq!(r().quantity_or_zero(q, x, "it").is_ok(), x.is_finite() && x >= 0.0 && x <= max);
        }

        #[test]
        fn body_weights_pass_only_inside_the_range(kg in proptest::num::f64::ANY) {
            let b = &r().body_weight;
            prop_assert_eq!(r().body_weight(Kilograms(kg)).is_ok(), kg.is_finite() && kg >= b.min_kg && kg <= b.max_kg);
        }

        #[test]
        fn pages_pass_only_inside_the_range(limit in proptest::num::i64::ANY, offset in proptest::num::i64::ANY) {
            let l = &r().lists;
            for max in [l.page_limit_max, l.report_limit_max] {
                let inside = (1..=max).contains(&limit) && (0..=l.offset_max).contains(&offset);
                prop_assert_eq!(r().page(Some(limit), Some(offset), max).is_ok(), inside);
            }
        }

        #[test]
        fn names_pass_only_when_filled_in_and_short_enough(s in "\\PC{0,150}") {
            let t = s.trim();
            let inside = !t.is_empty() && t.chars().count() <= r().text.name_max;
            prop_assert_eq!(r().name(&s).is_ok(), inside);
        }
    }
}
