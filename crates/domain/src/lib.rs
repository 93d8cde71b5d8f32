//! Keta's clinical core.
//!
//! Everything here is pure: no I/O, no database, no clock reads (the caller passes
//! `now`). Clinical numbers (bands, thresholds, schedules) live in data files under
//! `data/` at the repository root, each with the section of `clinical-reference.md`
//! it came from, and are embedded at compile time so a build is self-contained.

pub mod access;
pub mod alerts;
pub mod between_alerts;
pub mod calendar;
pub mod checkins;
pub mod consent;
pub mod course;
pub mod device_readings;
pub mod discharge;
pub mod dosing;
pub mod durability;
pub mod eligibility;
pub mod error;
pub mod escalation;
pub mod fhir_search;
pub mod home_dosing;
pub mod ids;
pub mod instruments;
pub mod ledger;
pub mod medications;
pub mod notes;
pub mod outcomes;
pub mod patient;
pub mod patient_links;
pub mod patient_view;
pub mod pk_simulation;
pub mod plausible;
pub mod prescription;
pub mod pretreatment;
pub mod protocols;
pub mod question_sets;
pub mod records;
pub mod referral;
pub mod relapse;
pub mod rems;
pub mod research;
pub mod schedule;
pub mod session;
pub mod site;
pub mod survival;
pub mod units;
pub mod vitals;

pub use error::{DomainError, FieldError};
