//! Keta's integration suite: one test binary (linking many is slow).
//!
//! * `stories`: the storage conformance suite, run unchanged on SQLite and, when
//!   `KETA_TEST_POSTGRES_URL` is set, on PostgreSQL.
//! * `api`: the JSON API over HTTP against the real router.

mod api;
mod chair_gates;
mod chart_between;
mod checkins;
mod concurrency;
mod dosing;
mod durability;
mod fixtures;
mod home;
mod ledger;
mod notes;
mod pk_ui;
mod security;
mod stories;
