//! A course is a prescription: the prescriber's order recorded when the course
//! is planned, the dose it works out to for the patient's current weight (through the
//! dose calculator, [`crate::dosing::calculate`], with its working), and each session's
//! dose checked against it.
//!
//! The order names its protocol (`data/protocols/*.toml`) by id; the protocol's limits
//! still apply on top of the order. The titration steps and the maximum are the
//! prescriber's: a dose not on the order's ladder needs a documented prescriber override.

use serde::{Deserialize, Serialize};

use crate::course::Route;
use crate::dosing::{BagVolume, DoseAmount, DoseCalculation, DoseRequest, PumpSettings, calculate, fmt_num};
use crate::error::{DomainError, Validator};
use crate::patient::WeightType;
use crate::protocols::{DoseBasis, Protocol};
use crate::units::{Kilograms, MgPerKg, MgPerMl, Milligrams, Millilitres, Minutes};

// Input bounds are plausibility, not clinical limits (the protocol's limits apply too). The
// amounts come from `data/rules/plausible-ranges.toml`: a dose up to the highest mg/kg the
// reference reports (clinical-reference §2.4) and the planned-dose ceiling, a bag and a vial
// concentration up to the [quantities] bounds.

/// The highest dose an order may name, in mg/kg.
pub fn max_mg_per_kg() -> f64 {
    crate::plausible::ranges().planned_dose.highest_reported_mg_per_kg
}

/// The highest dose an order may name, in mg (the planned-dose ceiling).
pub fn max_mg() -> f64 {
    crate::plausible::ranges().planned_dose_max().0
}

fn max_bag_ml() -> f64 {
    crate::plausible::ranges().quantity_max(crate::plausible::Quantity::Ml)
}

fn max_vial_mg_per_ml() -> f64 {
    crate::plausible::ranges().quantity_max(crate::plausible::Quantity::MgPerMl)
}

pub const MAX_DEVICES: u32 = 10;
pub const MAX_INFUSION_MIN: i64 = 1440;
/// The most rungs a titration ladder may have.
pub const MAX_STEPS: usize = 40;

/// The ordered dose, in one of the three ways a prescriber writes it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderDose {
    /// `{"mg_per_kg": 0.5}`
    MgPerKg(MgPerKg),
    /// `{"mg": 56}`
    Mg(Milligrams),
    /// `{"devices": 2}`: nasal spray devices (the protocol says mg per device).
    Devices(u32),
}

impl OrderDose {
    pub fn value(self) -> f64 {
        match self {
            OrderDose::MgPerKg(v) => v.0,
            OrderDose::Mg(v) => v.0,
            OrderDose::Devices(n) => f64::from(n),
        }
    }
    /// The largest plausible value in this dose's unit.
    fn unit_max(self) -> f64 {
        match self {
            OrderDose::MgPerKg(_) => max_mg_per_kg(),
            OrderDose::Mg(_) => max_mg(),
            OrderDose::Devices(_) => f64::from(MAX_DEVICES),
        }
    }
    pub fn unit(self) -> &'static str {
        match self {
            OrderDose::MgPerKg(_) => "mg/kg",
            OrderDose::Mg(_) => "mg",
            OrderDose::Devices(_) => "device(s)",
        }
    }
    /// The same kind of dose with another value.
    fn with_value(self, v: f64) -> OrderDose {
        match self {
            OrderDose::MgPerKg(_) => OrderDose::MgPerKg(MgPerKg(v)),
            OrderDose::Mg(_) => OrderDose::Mg(Milligrams(v)),
            OrderDose::Devices(_) => OrderDose::Devices(v.round() as u32),
        }
    }
}

/// The prescriber's order for a course.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCourseOrder {
    /// The protocol it follows (id from `GET /api/v1/protocols`).
    #[schema(max_length = 100)]
    pub protocol_id: String,
    pub dose: OrderDose,
    /// IV: the infusion time, minutes (1-1440).
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1440)]
    pub infusion_min: Option<Minutes>,
    /// IV: the bag's final volume, drug included (for the concentration and pump rate).
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub final_volume_ml: Option<Millilitres>,
    /// IV/IM: the vial concentration (for the volume to draw up).
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub vial_mg_per_ml: Option<MgPerMl>,
    /// Titration: the step up, in the dose's unit; with `max_dose`.
    #[serde(default)]
    pub titration_step: Option<f64>,
    /// Titration: the highest dose allowed, in the dose's unit; with `titration_step`.
    #[serde(default)]
    pub max_dose: Option<f64>,
}

fn within(x: f64, lo_exclusive: f64, hi: f64) -> bool {
    x.is_finite() && x > lo_exclusive && x <= hi
}

fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

impl NewCourseOrder {
    /// Checks the order against the course's route and its protocol: every problem at once.
    // Long on purpose: a flat list of checks of the order against its protocol, all collected so every problem shows at
    // once.
    #[allow(clippy::too_many_lines)]
    pub fn validate(&self, route: Route, p: &Protocol) -> Result<(), DomainError> {
        let mut v = Validator::new();
        if p.route != route {
            v.push(
                "protocol_id",
                format!("protocol '{}' is for {}, but this course is {}", p.id, p.route.label(), route.label()),
            );
        }
        match (self.dose, p.dose.basis) {
            (OrderDose::MgPerKg(d), DoseBasis::MgPerKg) => v.check(
                within(d.0, 0.0, max_mg_per_kg()),
                "dose.mg_per_kg",
                format!("give the dose in mg/kg, more than 0 and at most {}", max_mg_per_kg()),
            ),
            (OrderDose::Mg(d), DoseBasis::Mg) => v.check(
                within(d.0, 0.0, max_mg()),
                "dose.mg",
                format!("give the dose in mg, more than 0 and at most {}", max_mg()),
            ),
            (OrderDose::Devices(n), DoseBasis::Mg) => {
                v.check(
                    p.device.is_some(),
                    "dose.devices",
                    format!("protocol '{}' gives no devices: order in mg", p.id),
                );
                v.check((1..=MAX_DEVICES).contains(&n), "dose.devices", format!("give 1-{MAX_DEVICES} devices"));
            }
            (d, b) => v.push(
                "dose",
                format!(
                    "protocol '{}' doses in {}; this order is in {}: write the dose in {}",
                    p.id,
                    b.unit(),
                    d.unit(),
                    b.unit()
                ),
            ),
        }
        match (p.infusion.is_some(), self.infusion_min) {
            (true, None) => v.push("infusion_min", "give the infusion time in minutes (an IV protocol)"),
            (true, Some(m)) => v.check(
                (1..=MAX_INFUSION_MIN).contains(&m.0),
                "infusion_min",
                format!("the infusion time must be 1-{MAX_INFUSION_MIN} minutes"),
            ),
            (false, Some(_)) => v.push("infusion_min", "an infusion time is only for IV protocols: leave it out"),
            (false, None) => {}
        }
        if let Some(ml) = self.final_volume_ml {
            v.check(p.infusion.is_some(), "final_volume_ml", "a bag volume is only for IV infusions: leave it out");
            v.check(
                within(ml.0, 0.0, max_bag_ml()),
                "final_volume_ml",
                format!("the bag volume must be more than 0 and at most {} mL", max_bag_ml()),
            );
        }
        if let Some(c) = self.vial_mg_per_ml {
            v.check(
                within(c.0, 0.0, max_vial_mg_per_ml()),
                "vial_mg_per_ml",
                format!("the vial concentration must be more than 0 and at most {} mg/mL", max_vial_mg_per_ml()),
            );
        }
        match (self.titration_step, self.max_dose) {
            (None, None) => {}
            (Some(step), Some(max)) => {
                let dose = self.dose.value();
                let top = self.dose.unit_max();
                v.check(within(step, 0.0, top), "titration_step", "the titration step must be a positive number");
                v.check(
                    max.is_finite() && max >= dose && max <= top,
                    "max_dose",
                    format!(
                        "the maximum must be at least the dose ({} {unit}) and at most {} {unit}",
                        fmt_num(dose),
                        fmt_num(top),
                        unit = self.dose.unit()
                    ),
                );
                if matches!(self.dose, OrderDose::Devices(_)) {
                    v.check(
                        step.fract() == 0.0 && max.fract() == 0.0,
                        "titration_step",
                        "devices step in whole devices",
                    );
                }
                if step > 0.0 && max >= dose && ((max - dose) / step) as usize >= MAX_STEPS {
                    v.push(
                        "titration_step",
                        format!("the ladder from the dose to the maximum has more than {MAX_STEPS} steps"),
                    );
                }
            }
            (Some(_), None) => v.push("max_dose", "a titration step needs the maximum dose"),
            (None, Some(_)) => v.push("titration_step", "a maximum needs the titration step (or leave both out)"),
        }
        v.finish()?;
        // The protocol's own maximum bounds the order's.
        let top = self.dose.with_value(self.max_dose.unwrap_or(self.dose.value()));
        match top {
            OrderDose::MgPerKg(d) => {
                if let Some(m) = &p.limits.max_mg_per_kg
                    && d.0 > m.value + 1e-9
                {
                    return Err(DomainError::field(
                        "max_dose",
                        format!(
                            "{} mg/kg is above the protocol's maximum of {} mg/kg ({})",
                            fmt_num(d.0),
                            fmt_num(m.value),
                            m.source
                        ),
                    ));
                }
            }
            OrderDose::Mg(_) | OrderDose::Devices(_) => {
                let mg = self.mg_of(top, p);
                if let Some(m) = &p.limits.max_mg
                    && mg > m.value + 1e-9
                {
                    return Err(DomainError::field(
                        "max_dose",
                        format!(
                            "{} mg is above the protocol's maximum of {} mg ({})",
                            fmt_num(mg),
                            fmt_num(m.value),
                            m.source
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn mg_of(&self, d: OrderDose, p: &Protocol) -> f64 {
        match d {
            OrderDose::Devices(n) => f64::from(n) * p.device.as_ref().map_or(0.0, |x| x.mg_per_device.value),
            other => other.value(),
        }
    }

    /// The doses the order allows, lowest first: the dose, then each titration step up to
    /// the maximum.
    pub fn allowed(&self) -> Vec<OrderDose> {
        let d = self.dose.value();
        match (self.titration_step, self.max_dose) {
            (Some(step), Some(max)) if step > 0.0 => (0..MAX_STEPS)
                .map(|k| ((d + step * k as f64) * 1e9).round() / 1e9)
                .take_while(|x| *x <= max + 1e-9)
                .map(|x| self.dose.with_value(x))
                .collect(),
            _ => vec![self.dose],
        }
    }

    /// The allowed doses in words, e.g. `0.5, 0.6 or 0.7 mg/kg`.
    pub fn allowed_text(&self) -> String {
        let vals: Vec<String> = self.allowed().iter().map(|d| fmt_num(d.value())).collect();
        let list = match vals.len() {
            1 => vals[0].clone(),
            n => format!("{} or {}", vals[..n - 1].join(", "), vals[n - 1]),
        };
        format!("{list} {}", self.dose.unit())
    }

    /// The order in words for the chart and the session screen.
    pub fn summary(&self) -> String {
        let mut s = format!("{} {}", fmt_num(self.dose.value()), self.dose.unit());
        if let Some(m) = self.infusion_min {
            s.push_str(&format!(" over {} min", m.0));
        }
        if let Some(b) = self.final_volume_ml {
            s.push_str(&format!(" in a {} mL bag", fmt_num(b.0)));
        }
        if let (Some(step), Some(max)) = (self.titration_step, self.max_dose) {
            s.push_str(&format!("; titrate by {} {u} up to {} {u}", fmt_num(step), fmt_num(max), u = self.dose.unit()));
        }
        s
    }

    /// What the calculator is asked for `dose` (one of the order's, or the pre-filled one).
    pub fn dose_request(
        &self,
        p: &Protocol,
        dose: OrderDose,
        weight_kg: Kilograms,
        age_years: Option<u32>,
    ) -> DoseRequest {
        let amount = match dose {
            OrderDose::MgPerKg(d) => DoseAmount::MgPerKg(d),
            OrderDose::Mg(d) => DoseAmount::Mg(d),
            OrderDose::Devices(_) => DoseAmount::Mg(Milligrams(self.mg_of(dose, p))),
        };
        DoseRequest {
            protocol: Some(p.id.clone()),
            route: None,
            weight_kg,
            weight_type: WeightType::Actual,
            dose: amount,
            vial_mg_per_ml: self.vial_mg_per_ml,
            bag: self.final_volume_ml.map(BagVolume::FinalVolumeIncludingDrugMl),
            infusion_min: self.infusion_min,
            pump: PumpSettings::default(),
            age_years,
            first_session: false,
            max_mg_per_kg: None,
            max_mg: None,
        }
    }

    /// The calculation for the patient's current weight: mg, volumes and pump rate, with
    /// the working (e.g. 70 kg at 0.5 mg/kg over 40 min in a 100 mL bag: 35 mg, 150 mL/h).
    pub fn calculate_for(
        &self,
        p: &Protocol,
        dose: OrderDose,
        weight_kg: Kilograms,
        age_years: Option<u32>,
    ) -> Result<DoseCalculation, DomainError> {
        calculate(&self.dose_request(p, dose, weight_kg, age_years), Some(p))
    }

    /// Whether a session's dose (as the calculator was asked for it) is one the order
    /// allows; `Err` says what the order allows, for the refusal.
    pub fn check(&self, p: &Protocol, asked: &DoseAmount) -> Result<(), String> {
        let ok = self.allowed().iter().any(|d| match (d, asked) {
            (OrderDose::MgPerKg(a), DoseAmount::MgPerKg(b)) => same(a.0, b.0),
            (OrderDose::Mg(_) | OrderDose::Devices(_), DoseAmount::Mg(b)) => same(self.mg_of(*d, p), b.0),
            _ => false,
        });
        if ok {
            return Ok(());
        }
        let asked_text = match asked {
            DoseAmount::MgPerKg(v) => format!("{} mg/kg", fmt_num(v.0)),
            DoseAmount::Mg(v) => format!("{} mg", fmt_num(v.0)),
            DoseAmount::MgPerKgPerH(v) => format!("{} mg/kg/h", fmt_num(v.0)),
            DoseAmount::MgPerH(v) => format!("{} mg/h", fmt_num(v.0)),
        };
        Err(format!(
            "{asked_text} is outside the prescriber's order ({}): give a dose the order allows, or a prescriber records an override with the reason",
            self.allowed_text()
        ))
    }

    /// The dose to pre-fill for the next session: the last dose given on this course when
    /// the order allows it (the plan follows recorded changes), else the ordered dose.
    pub fn planned(&self, p: &Protocol, last_given: Option<&DoseAmount>) -> OrderDose {
        match last_given {
            Some(a) if self.check(p, a).is_ok() => self
                .allowed()
                .into_iter()
                .find(|d| match (d, a) {
                    (OrderDose::MgPerKg(x), DoseAmount::MgPerKg(y)) => same(x.0, y.0),
                    (OrderDose::Mg(_) | OrderDose::Devices(_), DoseAmount::Mg(y)) => same(self.mg_of(*d, p), y.0),
                    _ => false,
                })
                .unwrap_or(self.dose),
            _ => self.dose,
        }
    }
}

/// A prescriber's documented decision to give a session a dose outside the course's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderOverride {
    /// The dose to be given, as the calculator will be asked for it.
    pub dose: DoseAmount,
    /// Why (1-500 characters).
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl NewOrderOverride {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        let r = self.reason.trim();
        v.check(
            !r.is_empty() && r.chars().count() <= 500,
            "reason",
            "say why the dose is outside the order (1-500 characters)",
        );
        let x = self.dose.value();
        crate::plausible::check(
            &mut v,
            "dose",
            crate::plausible::ranges().quantity(self.dose.quantity(), x, "the dose"),
        );
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::ProtocolLibrary;

    fn iv() -> &'static Protocol {
        ProtocolLibrary::builtin().require("iv-racemic-0.5").unwrap()
    }

    fn iv_order() -> NewCourseOrder {
        NewCourseOrder {
            protocol_id: "iv-racemic-0.5".into(),
            dose: OrderDose::MgPerKg(MgPerKg(0.5)),
            infusion_min: Some(Minutes(40)),
            final_volume_ml: Some(Millilitres(100.0)),
            vial_mg_per_ml: None,
            titration_step: Some(0.1),
            max_dose: Some(0.75),
        }
    }

    #[test]
    fn the_issues_example_70_kg_at_half_a_mg_per_kg_over_40_min_in_100_ml_is_35_mg_at_150_ml_per_h() {
        let o = iv_order();
        o.validate(Route::IvRacemic, iv()).unwrap();
        let calc = o.calculate_for(iv(), o.dose, Kilograms(70.0), None).unwrap();
        assert_eq!(calc.dose_mg, Milligrams(35.0));
        let pump = calc.pump.expect("a bag and an infusion time give a pump rate");
        assert!((pump.rate_ml_per_h.0 - 150.0).abs() < 1e-9, "{pump:?}");
        assert!((calc.bag.unwrap().concentration_mg_per_ml.0 - 0.35).abs() < 1e-9);
        assert!(calc.steps.iter().any(|s| s.contains("70 kg × 0.5 mg/kg = 35 mg")), "{:?}", calc.steps);
    }

    #[test]
    fn the_ladder_runs_from_the_dose_by_the_step_to_the_maximum_and_nothing_else_passes() {
        let o = iv_order();
        assert_eq!(o.allowed().iter().map(|d| d.value()).collect::<Vec<_>>(), [0.5, 0.6, 0.7]);
        assert!(o.check(iv(), &DoseAmount::MgPerKg(MgPerKg(0.6))).is_ok());
        let e = o.check(iv(), &DoseAmount::MgPerKg(MgPerKg(0.8))).unwrap_err();
        assert!(e.contains("0.5, 0.6 or 0.7 mg/kg") && e.contains("override"), "{e}");
        assert!(o.check(iv(), &DoseAmount::Mg(Milligrams(35.0))).is_err(), "another unit is not the order");
        // The plan follows the last dose given when the order allows it.
        assert_eq!(o.planned(iv(), Some(&DoseAmount::MgPerKg(MgPerKg(0.6)))).value(), 0.6);
        assert_eq!(o.planned(iv(), Some(&DoseAmount::MgPerKg(MgPerKg(0.9)))).value(), 0.5);
        assert_eq!(o.planned(iv(), None).value(), 0.5);
    }

    #[test]
    fn an_order_that_does_not_fit_its_protocol_is_refused_field_by_field() {
        let mut o = iv_order();
        o.dose = OrderDose::Mg(Milligrams(35.0));
        o.infusion_min = None;
        o.max_dose = None;
        let e = o.validate(Route::ImRacemic, iv()).unwrap_err().to_string();
        for f in ["protocol_id", "dose:", "infusion_min", "max_dose"] {
            assert!(e.contains(f), "{f} missing from {e}");
        }
    }

    #[test]
    fn esketamine_in_devices_is_checked_in_mg_against_the_label_maximum() {
        let p = ProtocolLibrary::builtin().all().iter().find(|p| p.route == Route::IntranasalEsketamine).unwrap();
        let o = NewCourseOrder {
            protocol_id: p.id.clone(),
            dose: OrderDose::Devices(2),
            infusion_min: None,
            final_volume_ml: None,
            vial_mg_per_ml: None,
            titration_step: Some(1.0),
            max_dose: Some(3.0),
        };
        o.validate(Route::IntranasalEsketamine, p).unwrap();
        assert!(o.check(p, &DoseAmount::Mg(Milligrams(84.0))).is_ok());
        assert!(o.check(p, &DoseAmount::Mg(Milligrams(28.0))).is_err());
        let too_many = NewCourseOrder { max_dose: Some(4.0), ..o };
        let e = too_many.validate(Route::IntranasalEsketamine, p).unwrap_err().to_string();
        assert!(e.contains("112 mg is above the protocol's maximum of 84 mg"), "{e}");
    }
}
