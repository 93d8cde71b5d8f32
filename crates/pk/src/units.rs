//! Units in types where a mix-up would hurt a patient: a dose per kg is not a dose.
//! Elsewhere the unit is in the name (`plasma_ng_ml`, `rate_mg_per_min`, `t_min`).
//!
//! Conventions inside the crate: time in minutes, amounts in mg, volumes in L, so an
//! amount over a volume is mg/L (= µg/mL). Concentrations leave the crate as ng/mL
//! (= µg/L), which is mg/L × 1000 ([`NG_PER_ML_PER_MG_PER_L`]). Rates published per hour
//! are divided by 60 when a model is loaded; nothing else converts time.

use serde::{Deserialize, Serialize};

/// ng/mL in one mg/L: 1 mg/L = 1 µg/mL = 1000 ng/mL.
pub const NG_PER_ML_PER_MG_PER_L: f64 = 1000.0;

macro_rules! unit_type {
    ($($(#[$m:meta])* $name:ident => $sym:literal),* $(,)?) => {$(
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
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
    /// A drug amount.
    Milligrams => "mg",
    /// A weight-based dose.
    MgPerKg => "mg/kg",
}

impl MgPerKg {
    /// The dose for a patient of `weight_kg`.
    pub fn for_weight_kg(self, weight_kg: f64) -> Milligrams {
        Milligrams(self.0 * weight_kg)
    }
}
