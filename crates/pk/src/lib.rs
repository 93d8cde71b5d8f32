//! Ketamine pharmacokinetics (being written).
