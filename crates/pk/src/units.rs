//! Units in types where a mix-up would hurt a patient: a dose per kg is not a dose.
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
    /// Body weight.
    Kilograms => "kg",
    /// A drug amount.
    Milligrams => "mg",
    /// A weight-based dose.
    MgPerKg => "mg/kg",
    /// A delivery rate (what a pump gives), mg per minute.
    MgPerMin => "mg/min",
    /// A plasma or effect-site concentration (= µg/L).
    NgPerMl => "ng/mL",
}

impl std::ops::Mul<MgPerKg> for Kilograms {
    type Output = Milligrams;
    fn mul(self, rhs: MgPerKg) -> Milligrams {
        Milligrams(self.0 * rhs.0)
    }
}

impl MgPerMin {
    /// The same rate per hour, as pumps and charts show it.
    pub fn mg_per_hour(self) -> f64 {
        self.0 * 60.0
    }
}
