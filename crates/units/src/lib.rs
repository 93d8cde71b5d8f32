//! Units in types, shared by `keta-domain` and `keta-pk`: a dose in mg cannot be added to a
//! rate in mL/h by mistake, and a dose per kg is not a dose. Elsewhere the unit is in the
//! name (`plasma_ng_ml`, `rate_mg_per_min`).

use serde::{Deserialize, Serialize};

macro_rules! unit_type {
    ($($(#[$m:meta])* $name:ident => $sym:literal),* $(,)?) => {$(
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub f64);
        impl $name {
            pub const SYMBOL: &'static str = $sym;
            pub fn value(self) -> f64 { self.0 }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} {}", self.0, $sym)
            }
        }
    )*};
}

unit_type! {
    /// Body weight.
    Kilograms => "kg",
    /// A drug amount.
    Milligrams => "mg",
    /// A weight-based dose.
    MgPerKg => "mg/kg",
    /// Concentration of a solution.
    MgPerMl => "mg/mL",
    /// A volume.
    Millilitres => "mL",
    /// Pump rate.
    MlPerHour => "mL/h",
    /// Drug delivery rate.
    MgPerHour => "mg/h",
    /// Blood pressure.
    Mmhg => "mmHg",
    /// Heart rate.
    BeatsPerMinute => "/min",
    /// Respiratory rate.
    BreathsPerMinute => "breaths/min",
    /// Oxygen saturation.
    Percent => "%",
    /// Plasma concentration.
    NgPerMl => "ng/mL",
}

impl MgPerKg {
    /// The dose for a patient of `weight_kg`.
    pub fn for_weight_kg(self, weight_kg: f64) -> Milligrams {
        Milligrams(self.0 * weight_kg)
    }
}

impl std::ops::Mul<MgPerKg> for Kilograms {
    type Output = Milligrams;
    fn mul(self, rhs: MgPerKg) -> Milligrams {
        Milligrams(self.0 * rhs.0)
    }
}

/// A duration in whole minutes (monitoring times, infusion lengths).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Minutes(pub i64);

impl Minutes {
    pub fn as_duration(self) -> time::Duration {
        time::Duration::minutes(self.0)
    }
}
