//! Units in types: a dose in mg cannot be added to a rate in mL/h by mistake. One set,
//! shared with `keta-pk` (the `keta-units` crate).

pub use keta_units::*;
