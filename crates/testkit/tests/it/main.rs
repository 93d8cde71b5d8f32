//! Keta's integration suite: one test binary (linking many is slow).
//!
//! * `stories`: the storage conformance suite, run unchanged on SQLite and, when
//!   `KETA_TEST_POSTGRES_URL` is set, on PostgreSQL.
//! * `api`: the JSON API over HTTP against the real router.
//! * `contract`: issue 17's probes (plausible ranges, the sweep, panics in storage jobs).

mod admin;
mod api;
mod backup;
mod chair_gates;
mod chart_between;
mod checkins;
mod concurrency;
mod contract;
mod dosing;
mod durability;
mod eligibility_record;
mod escalation;
mod fixtures;
mod home;
mod idempotency;
mod ledger;
mod notes;
mod outcomes;
mod pk_ui;
mod security;
mod serving;
mod stories;
