//! Keta's integration suite: one test binary (linking many is slow). Every story that touches
//! storage runs on SQLite and, when `KETA_TEST_POSTGRES_URL` is set, on PostgreSQL too
//! (`TestDb::all`); HTTP tests drive the real router (`spawn_app`).
//!
//! * `stories`: the storage conformance suite;
//! * `api`, `security`, `contract`: the JSON API, the authorisation matrix and hardening
//!   probes, and the fuzzer's regressions;
//! * `concurrency`, `idempotency`, `backup`, `schema_parity`: the system of record (races,
//!   retries, backup and restore, the two migrations agreeing);
//! * one module per area for the rest (`chair_gates`, `dosing`, `ledger`, `notes`, `checkins`,
//!   `home`, `outcomes`, ...), named after what it tests.

// Helpers outside `#[test]` functions unwrap too, which clippy's allow-unwrap-in-tests does
// not cover; in a test a panic is the failure message all the same.
#![allow(clippy::unwrap_used)]

mod admin;
mod api;
mod backup;
mod bulk_export;
mod calendar;
mod chair_gates;
mod chart_between;
mod checkins;
mod cluster;
mod concurrency;
mod consents;
mod contract;
mod disk_full;
mod dosing;
mod durability;
mod eligibility_record;
mod escalation;
mod fhir;
mod fhir_documents;
mod fixtures;
mod home;
mod idempotency;
mod ledger;
mod ledger_screens;
mod monitors;
mod notes;
mod observe;
mod outcomes;
mod pg_connections;
mod pk_ui;
mod pretreatment;
mod rems;
mod research;
mod schema_parity;
mod security;
mod serving;
mod stories;
mod time_zones;
mod vitals_memory;
