//! keta-pk's integration tests, one binary: reference values from pk-reference.md,
//! the invariants of its T10 as property tests, and the behaviour of TCI, decrement
//! times and population bands.

mod common;
mod decrement;
mod invariants;
mod perez_ruixo;
mod population;
mod reference;
mod tci;
