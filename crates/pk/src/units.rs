//! Units in types where a mix-up would hurt a patient: a dose per kg is not a dose.
//! Elsewhere the unit is in the name (`plasma_ng_ml`, `rate_mg_per_min`, `t_min`).
//!
//! Conventions inside the crate: time in minutes, amounts in mg, volumes in L, so an
//! amount over a volume is mg/L (= µg/mL). Concentrations leave the crate as ng/mL
//! (= µg/L), which is mg/L × 1000 ([`NG_PER_ML_PER_MG_PER_L`]). Rates published per hour
//! are divided by 60 when a model is loaded; nothing else converts time.

/// ng/mL in one mg/L: 1 mg/L = 1 µg/mL = 1000 ng/mL.
pub const NG_PER_ML_PER_MG_PER_L: f64 = 1000.0;

/// The unit types the crate uses, the same ones `keta-domain` has (`keta-units`).
pub use keta_units::{MgPerKg, Milligrams};
