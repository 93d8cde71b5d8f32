//! Decrement time: how long after the last input until a concentration falls below a
//! threshold and stays there, e.g. "below 50 ng/mL 38 min after the infusion ends".
//!
//! With no input left, a linear model's concentrations are sums of decaying
//! exponentials; after any rise (an absorption depot still emptying, the effect site
//! catching up) they fall for good. So the search steps forward from the end of the
//! last input until the value is below the threshold and falling, then bisects the
//! crossing to a millisecond.

use serde::Serialize;

use crate::dosing::{Stepper, plan};
use crate::error::{PkError, invalid};
use crate::individual::{Concentrations, Individual};
use crate::regimen::Regimen;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Site {
    Plasma,
    EffectSite,
    Metabolite,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Decrement {
    /// When the last dose ended (minutes from the start).
    pub input_ends_min: f64,
    /// When the concentration falls below the threshold for good.
    pub below_from_min: f64,
    /// The decrement time: `below_from_min − input_ends_min` (0 if already below).
    pub minutes_after_input: f64,
}

/// How far ahead to look before giving up (two weeks).
const HORIZON_MIN: f64 = 14.0 * 24.0 * 60.0;
const SEARCH_STEP_MIN: f64 = 0.5;

fn pick(c: &Concentrations, site: Site) -> Option<f64> {
    match site {
        Site::Plasma => Some(c.plasma_ng_ml),
        Site::EffectSite => c.effect_ng_ml,
        Site::Metabolite => c.metabolite_ng_ml,
    }
}

/// When `site` falls below `threshold_ng_ml` after the regimen's last input; `None` if
/// not within two weeks.
pub fn decrement_time(
    ind: &Individual,
    regimen: &Regimen,
    site: Site,
    threshold_ng_ml: f64,
) -> Result<Option<Decrement>, PkError> {
    if !(threshold_ng_ml > 0.0 && threshold_ng_ml.is_finite()) {
        return Err(invalid("the decrement threshold must be more than 0 ng/mL"));
    }
    let plan = plan(ind, regimen)?;
    let stop = plan.input_ends_min().max(0.0);
    let mut stepper = Stepper::new(ind, plan);
    let at_stop = stepper.advance_to(stop);
    let missing = || PkError::MissingInput {
        model: ind.model_name.clone(),
        message: format!("this model predicts no {site:?} concentration"),
    };
    let engine = stepper.engine();
    let zero = vec![0.0; engine.entries()];
    let mut state = stepper.state().clone();
    let mut prev = pick(&at_stop, site).ok_or_else(missing)?;
    // The latest sample at or above the threshold, with its state.
    let mut last_above = (prev >= threshold_ng_ml).then(|| (stop, state.clone()));
    let mut t = stop;
    while t - stop <= HORIZON_MIN {
        engine.advance(&mut state, SEARCH_STEP_MIN, &zero);
        t += SEARCH_STEP_MIN;
        let now = pick(&engine.observe(&state), site).ok_or_else(missing)?;
        if now >= threshold_ng_ml {
            last_above = Some((t, state.clone()));
        } else if now <= prev {
            let below_from = match &last_above {
                // Never at or above it since the input stopped.
                None => stop,
                // The crossing lies within one search step after the last point above.
                Some((ta, sa)) => {
                    let (mut a, mut b) = (0.0, SEARCH_STEP_MIN);
                    while b - a > 1e-5 {
                        let mid = 0.5 * (a + b);
                        let mut s = sa.clone();
                        engine.advance(&mut s, mid, &zero);
                        if pick(&engine.observe(&s), site).unwrap_or(0.0) >= threshold_ng_ml {
                            a = mid;
                        } else {
                            b = mid;
                        }
                    }
                    ta + 0.5 * (a + b)
                }
            };
            return Ok(Some(Decrement {
                input_ends_min: stop,
                below_from_min: below_from,
                minutes_after_input: below_from - stop,
            }));
        }
        prev = now;
    }
    Ok(None)
}
