//! Durability analytics: Kaplan–Meier estimate of time from the last session to relapse.
//!
//! Each responder contributes one [`SurvivalObservation`]: the days from their last session
//! before relapse to the relapse (an *event*), or, if they have not relapsed, to the end of
//! follow-up (*censored*: still responding when last seen). Grouping by route or protocol is
//! the caller's job: estimate once per group.
//!
//! # Conventions (standard, e.g. as in R's `survival::survfit`)
//!
//! * The curve steps down only at event times: `S(t) = Π_{t_i ≤ t} (1 − d_i / n_i)`.
//! * A subject censored at `t` is still at risk for events at the same `t`.
//! * Greenwood variance: `Var S(t) = S(t)² · Σ_{t_i ≤ t} d_i / (n_i (n_i − d_i))`. When every
//!   subject at risk has the event (`n_i = d_i`) the curve reaches 0 and the sum is undefined;
//!   the variance is reported as 0 from there on (the estimate is 0 with no spread left).
//! * "Still responding at 4 and 8 weeks" is `S(28 days)` and `S(56 days)`; `None` when
//!   follow-up ends before that time (the curve is not defined past the last observation).
//!
//! Published figures to show beside the clinic's curve (clinical-reference §5): responders
//! ~80 % still responding at 4 weeks and ~60 % at 8 weeks without maintenance (McInnes 2022
//! [S49]); median relapse 18 days after a 6-infusion series (Murrough 2013 [S39]). They live
//! with the other benchmarks, not here.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::{DomainError, Validator};

/// Seconds in a day, for converting timestamps to fractional days.
const SECONDS_PER_DAY: f64 = 86_400.0;

/// One subject: follow-up time in days and whether it ended in relapse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SurvivalObservation {
    /// Days from the last session to relapse (event) or end of follow-up (censored).
    pub days: f64,
    /// `true` = relapsed at `days`; `false` = still responding when last seen (censored).
    pub relapsed: bool,
}

impl SurvivalObservation {
    /// From timestamps: `relapse_at` if the patient relapsed, otherwise censored at
    /// `followed_until` (typically the latest check-in or `now`).
    pub fn from_times(
        last_session: OffsetDateTime,
        relapse_at: Option<OffsetDateTime>,
        followed_until: OffsetDateTime,
    ) -> Result<Self, DomainError> {
        let end = relapse_at.unwrap_or(followed_until);
        let days = (end - last_session).as_seconds_f64() / SECONDS_PER_DAY;
        if days < 0.0 {
            return Err(DomainError::field(
                if relapse_at.is_some() { "relapse_at" } else { "followed_until" },
                "must not be before the last session",
            ));
        }
        Ok(Self { days, relapsed: relapse_at.is_some() })
    }
}

/// One step of the curve, at a time where at least one relapse happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct KmStep {
    pub days: f64,
    /// Subjects still at risk just before `days` (including those censored at `days`).
    pub at_risk: usize,
    /// Relapses at `days`.
    pub events: usize,
    /// Subjects censored at `days` (counted at risk for this step's events).
    pub censored: usize,
    /// Share still responding after this step.
    pub survival: f64,
    /// Greenwood variance of `survival`.
    pub variance: f64,
}

impl KmStep {
    pub fn std_error(&self) -> f64 {
        self.variance.sqrt()
    }
}

/// A Kaplan–Meier curve.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KaplanMeier {
    /// Number of subjects.
    pub subjects: usize,
    /// Number of relapses.
    pub events: usize,
    /// Longest follow-up (event or censoring) — the curve is defined up to here.
    pub max_days: f64,
    /// Steps at event times, ascending.
    pub steps: Vec<KmStep>,
}

impl KaplanMeier {
    /// Estimates the curve. Rejects an empty set and negative or non-finite times.
    pub fn estimate(observations: &[SurvivalObservation]) -> Result<Self, DomainError> {
        let mut v = Validator::new();
        v.check(!observations.is_empty(), "observations", "need at least one subject");
        for (i, o) in observations.iter().enumerate() {
            v.check(
                o.days.is_finite() && o.days >= 0.0,
                &format!("observations[{i}].days"),
                "must be a number of days ≥ 0",
            );
        }
        v.finish()?;

        let mut sorted = observations.to_vec();
        sorted.sort_by(|a, b| a.days.total_cmp(&b.days));
        let mut at_risk = sorted.len();
        let mut survival = 1.0_f64;
        let mut greenwood_sum = 0.0_f64;
        let mut steps = Vec::new();
        let mut i = 0;
        while i < sorted.len() {
            let t = sorted[i].days;
            let mut events = 0;
            let mut censored = 0;
            while i < sorted.len() && sorted[i].days == t {
                if sorted[i].relapsed {
                    events += 1
                } else {
                    censored += 1
                }
                i += 1;
            }
            if events > 0 {
                let (n, d) = (at_risk as f64, events as f64);
                survival *= 1.0 - d / n;
                // n = d empties the risk set: S = 0, no later steps, variance reported as 0.
                let variance = if events < at_risk {
                    greenwood_sum += d / (n * (n - d));
                    survival * survival * greenwood_sum
                } else {
                    0.0
                };
                steps.push(KmStep { days: t, at_risk, events, censored, survival, variance });
            }
            at_risk -= events + censored;
        }
        Ok(Self {
            subjects: sorted.len(),
            events: sorted.iter().filter(|o| o.relapsed).count(),
            max_days: sorted.last().map_or(0.0, |o| o.days),
            steps,
        })
    }

    /// `S(days)`: share still responding at `days`; `None` beyond the longest follow-up.
    pub fn survival_at(&self, days: f64) -> Option<f64> {
        if !(days >= 0.0 && days <= self.max_days) {
            return None;
        }
        Some(self.steps.iter().take_while(|s| s.days <= days).last().map_or(1.0, |s| s.survival))
    }

    /// Greenwood variance of `S(days)`; `None` beyond the longest follow-up.
    pub fn variance_at(&self, days: f64) -> Option<f64> {
        self.survival_at(days)?;
        Some(self.steps.iter().take_while(|s| s.days <= days).last().map_or(0.0, |s| s.variance))
    }

    /// Where the drawn curve ends, and at what level. It runs flat from the last relapse to
    /// the last subject followed (event or censored) and stops there, never dropping to 0
    /// because follow-up ran out. When the last ones followed all relapse (the estimate
    /// reaches 0 on the last few at risk, often one person), the curve stops at that last
    /// relapse at the level before it instead of drawing a drop to 0 %: that step is still
    /// in [`Self::steps`], the median and the table.
    pub fn end(&self) -> (f64, f64) {
        match self.steps.split_last() {
            Some((last, before)) if last.survival == 0.0 => (last.days, before.last().map_or(1.0, |s| s.survival)),
            Some((last, _)) => (self.max_days, last.survival),
            None => (self.max_days, 1.0),
        }
    }

    /// First time the curve is at or below one half.
    pub fn median_days(&self) -> Option<f64> {
        self.steps.iter().find(|s| s.survival <= 0.5).map(|s| s.days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::Duration;
    use time::macros::datetime;

    fn obs(list: &[(f64, bool)]) -> Vec<SurvivalObservation> {
        list.iter().map(|&(days, relapsed)| SurvivalObservation { days, relapsed }).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Hand-worked: 7 subjects; relapse at 2, 4, 4, 8; censored at 3, 6, 9.
    ///   t=2: n=7, d=1 → S = 6/7;             Σ = 1/(7·6) = 1/42
    ///   t=4: n=5, d=2 → S = 6/7·3/5 = 18/35; Σ = 1/42 + 2/(5·3) = 11/70
    ///   t=8: n=2, d=1 → S = 18/35·1/2 = 9/35; Σ = 11/70 + 1/(2·1) = 23/35
    ///   Var(4) = (18/35)²·11/70 = 3564/85750;  Var(8) = (9/35)²·23/35 = 1863/42875
    #[test]
    fn hand_worked_example() {
        let km = KaplanMeier::estimate(&obs(&[
            (8.0, true),
            (3.0, false),
            (4.0, true),
            (2.0, true),
            (9.0, false),
            (4.0, true),
            (6.0, false),
        ]))
        .unwrap();
        assert_eq!((km.subjects, km.events, km.max_days), (7, 4, 9.0));
        let s: Vec<_> = km.steps.iter().map(|s| (s.days, s.at_risk, s.events)).collect();
        assert_eq!(s, vec![(2.0, 7, 1), (4.0, 5, 2), (8.0, 2, 1)]);
        assert!(close(km.steps[0].survival, 6.0 / 7.0));
        assert!(close(km.steps[0].variance, (6.0f64 / 7.0).powi(2) / 42.0));
        assert!(close(km.steps[1].survival, 18.0 / 35.0));
        assert!(close(km.steps[1].variance, 3564.0 / 85750.0));
        assert!(close(km.steps[2].survival, 9.0 / 35.0));
        assert!(close(km.steps[2].variance, 1863.0 / 42875.0));
        assert!(close(km.steps[2].std_error(), (1863.0f64 / 42875.0).sqrt()));

        assert_eq!(km.survival_at(0.0), Some(1.0));
        assert_eq!(km.survival_at(1.9), Some(1.0));
        assert!(close(km.survival_at(3.99).unwrap(), 6.0 / 7.0));
        assert!(close(km.survival_at(4.0).unwrap(), 18.0 / 35.0));
        assert!(close(km.survival_at(9.0).unwrap(), 9.0 / 35.0));
        assert_eq!(km.survival_at(9.1), None);
        assert_eq!(km.variance_at(1.0), Some(0.0));
        assert_eq!(km.median_days(), Some(8.0)); // 18/35 ≈ 0.514 is still above one half
    }

    /// Hand-worked in days: relapse at 7, 21, 35; censored at 14, 42, 70.
    ///   t=7: n=6 → 5/6; t=21: n=4 → 5/8; t=35: n=3 → 5/12.
    #[test]
    fn four_and_eight_weeks() {
        let km = KaplanMeier::estimate(&obs(&[
            (7.0, true),
            (14.0, false),
            (21.0, true),
            (35.0, true),
            (42.0, false),
            (70.0, false),
        ]))
        .unwrap();
        assert!(close(km.survival_at(28.0).unwrap(), 5.0 / 8.0));
        assert!(close(km.survival_at(56.0).unwrap(), 5.0 / 12.0));
        assert_eq!(km.median_days(), Some(35.0));
        assert_eq!((km.subjects, km.events), (6, 3));

        // Follow-up that ends before 8 weeks gives no 8-week figure.
        let short = KaplanMeier::estimate(&obs(&[(10.0, true), (30.0, false)])).unwrap();
        assert!(close(short.survival_at(28.0).unwrap(), 0.5));
        assert_eq!(short.survival_at(56.0), None);
    }

    #[test]
    fn censored_at_an_event_time_is_still_at_risk() {
        let km = KaplanMeier::estimate(&obs(&[(5.0, true), (5.0, false), (10.0, false)])).unwrap();
        assert_eq!((km.steps[0].at_risk, km.steps[0].censored), (3, 1));
        assert!(close(km.steps[0].survival, 2.0 / 3.0));
    }

    #[test]
    fn everyone_relapses_reaches_zero_with_zero_variance() {
        let km = KaplanMeier::estimate(&obs(&[(1.0, true), (2.0, true)])).unwrap();
        assert_eq!(km.steps.last().unwrap().survival, 0.0);
        assert_eq!(km.steps.last().unwrap().variance, 0.0);
        assert_eq!(km.median_days(), Some(1.0));
    }

    #[test]
    fn nobody_relapses_is_flat_at_one() {
        let km = KaplanMeier::estimate(&obs(&[(30.0, false), (60.0, false)])).unwrap();
        assert!(km.steps.is_empty());
        assert_eq!(km.survival_at(56.0), Some(1.0));
        assert_eq!(km.median_days(), None);
    }

    #[test]
    fn the_curve_ends_at_the_last_follow_up_at_its_last_level() {
        // Relapses at 5 and 10; the last two followed are censored at 20 and 40.
        let km = KaplanMeier::estimate(&obs(&[(5.0, true), (10.0, true), (20.0, false), (40.0, false), (7.0, false)]))
            .unwrap();
        // 5: 4/5; 10: n=3 → 4/5·2/3 = 8/15, and it stays there to the last person followed.
        assert_eq!(km.steps.len(), 2, "a censored subject is no step");
        let (days, level) = km.end();
        assert_eq!(days, 40.0);
        assert!(close(level, 8.0 / 15.0), "{level}");
        assert!(close(km.survival_at(40.0).unwrap(), 8.0 / 15.0), "no drop to 0 when follow-up runs out");
        assert_eq!(km.survival_at(40.5), None, "nothing is drawn past the last person followed");
        // The last one followed relapses: the estimate reaches 0 there, but the curve stops at
        // that relapse at the level before it (2/3 after the relapse at 5), not at 0 %.
        let km = KaplanMeier::estimate(&obs(&[(5.0, true), (20.0, false), (30.0, true)])).unwrap();
        assert_eq!(km.steps.last().unwrap().survival, 0.0);
        let (days, level) = km.end();
        assert_eq!(days, 30.0);
        assert!(close(level, 2.0 / 3.0), "{level}");
        // Nobody relapsed: flat at 100 % to the last person followed.
        let km = KaplanMeier::estimate(&obs(&[(12.0, false), (3.0, false)])).unwrap();
        assert_eq!(km.end(), (12.0, 1.0));
    }

    #[test]
    fn invalid_input_is_rejected() {
        assert!(KaplanMeier::estimate(&[]).is_err());
        let err = KaplanMeier::estimate(&obs(&[(-1.0, true), (f64::NAN, false)])).unwrap_err().to_string();
        assert!(err.contains("observations[0].days") && err.contains("observations[1].days"), "{err}");
    }

    #[test]
    fn observation_from_timestamps() {
        let last = datetime!(2025-03-03 09:00 UTC);
        let o =
            SurvivalObservation::from_times(last, Some(last + Duration::days(18)), last + Duration::days(40)).unwrap();
        assert_eq!((o.days, o.relapsed), (18.0, true));
        let o = SurvivalObservation::from_times(last, None, last + Duration::hours(36)).unwrap();
        assert_eq!((o.days, o.relapsed), (1.5, false));
        assert!(SurvivalObservation::from_times(last, Some(last - Duration::days(1)), last).is_err());
    }

    proptest! {
        #[test]
        fn survival_is_non_increasing_within_unit_interval(
            raw in prop::collection::vec((0u32..200, any::<bool>()), 1..60)
        ) {
            let o: Vec<_> = raw.iter().map(|&(d, e)| SurvivalObservation { days: f64::from(d) / 2.0, relapsed: e }).collect();
            let km = KaplanMeier::estimate(&o).unwrap();
            let mut prev = 1.0;
            for s in &km.steps {
                prop_assert!((0.0..=1.0).contains(&s.survival));
                prop_assert!(s.survival <= prev);
                prop_assert!(s.variance >= 0.0 && s.variance.is_finite());
                prev = s.survival;
            }
            let mut prev = 1.0;
            for t in 0..=200 {
                let s = km.survival_at(f64::from(t) / 2.0);
                if let Some(s) = s {
                    prop_assert!((0.0..=1.0).contains(&s) && s <= prev);
                    prev = s;
                }
            }
        }
    }
}
