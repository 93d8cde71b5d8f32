//! The chart's "Between sessions" panel, the clinician's side of the patient links:
//! safety answers from the phone first, then the relapse watch per course, the check-in links
//! (with "send a check-in now" and "new link"), question-set answers with their flags, and the
//! at-home programme of oral and sublingual courses (pre-dose screens, reconciliation, the
//! supply hold, dispensing).
//!
//! A link's token exists only in the answer to the request that made it: the URL is shown once
//! on the page that answers the POST (never in a redirect, never stored), for staff to hand to a
//! patient in the clinic.
//!
//! The view-model functions here are pure (time and the site's clock are passed in) and tested
//! below; the handlers read through the store, which checks permissions and audits reads.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::access::Permission;
use keta_domain::checkins::{self, CheckInItem, CheckInSchedule, ScheduleOverride, Timing};
use keta_domain::course::{Course, CourseStatus};
use keta_domain::home_dosing::{Reconciliation, ReconciliationIssue};
use keta_domain::ids::{CourseId, PatientId};
use keta_domain::instruments::{self, CompletedBy};
use keta_domain::outcomes::{definition_for, judge_in_chart};
use keta_domain::patient_links::{LinkPurpose, LinkState};
use keta_domain::question_sets::{self, AnswerValue, QuestionKind, QuestionSetFlag};
use keta_domain::records::{Alert, PatientChart};
use keta_domain::relapse::{self, RelapseFlag, ResponseEpisode};
use keta_store::StoreError;
use keta_store::checkins::{CheckinOverview, IssuedLink, LinkEvent, LinkRecord, OverrideInfo, SafetyAnswer};
use keta_store::home::{NewDispense, PreDoseScreen, QuestionSetResponse};
use time::OffsetDateTime;

use super::chart::{Choice, render_chart};
use super::clock::SiteClock;
use super::page::{Errors, FormData, UiResult, see_other};
use crate::AppState;
use crate::auth::CurrentUser;

/// Rows shown before the rest of a history is folded into a `<details>`.
const SHOWN: usize = 5;

mod handlers;
mod labels;
mod panel;
mod schedule;
#[cfg(test)]
mod tests;
mod views;

pub use handlers::*;
pub(crate) use labels::*;
pub(crate) use panel::*;
pub(crate) use schedule::*;
pub(crate) use views::*;
