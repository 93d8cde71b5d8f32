//! keta-pk's integration tests, one binary: reference values from pk-reference.md,
//! the invariants of its T10 as property tests, and the behaviour of TCI, decrement
//! times and population bands.

// The shared helpers in `common` unwrap outside `#[test]` functions, which clippy's
// allow-unwrap-in-tests does not cover; a panic there is a test failure all the same.
#![allow(clippy::unwrap_used)]

mod common;
mod decrement;
mod invariants;
mod perez_ruixo;
mod population;
mod reference;
mod tci;
