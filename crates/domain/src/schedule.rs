//! A session as the schedule and the board show it: who, when, which chair and how far
//! along, and nothing of the clinical record.
//!
//! Lists that anyone who may see the schedule reads (front desk, auditor, administrator:
//! `ViewDemographics`) carry this type, never [`TreatmentSession`]: the note, the stop
//! reason and the planned dose need `ViewClinical`, as the single read does
//! (`GET /sessions/{id}`, `GET /sessions/{id}/note`). A handler returning a schedule cannot
//! return the clinical fields because the type has none.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::course::Route;
use crate::ids::{ChairId, CourseId, PatientId, SessionId, SiteId};
use crate::session::{SessionState, TreatmentSession};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduledSession {
    pub id: SessionId,
    pub course_id: CourseId,
    pub patient_id: PatientId,
    pub site_id: SiteId,
    pub chair_id: Option<ChairId>,
    pub route: Route,
    /// 1-based position in the course.
    pub sequence: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub scheduled_for: OffsetDateTime,
    pub state: SessionState,
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_in_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub pre_dose_checks_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub dose_started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub monitoring_started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub discharged_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub stopped_at: Option<OffsetDateTime>,
}

impl ScheduledSession {
    /// Minutes since the dose started, if it has.
    pub fn minutes_since_dose(&self, now: OffsetDateTime) -> Option<i64> {
        self.dose_started_at.map(|t| (now - t).whole_minutes())
    }
}

impl From<&TreatmentSession> for ScheduledSession {
    fn from(s: &TreatmentSession) -> Self {
        Self {
            id: s.id,
            course_id: s.course_id,
            patient_id: s.patient_id,
            site_id: s.site_id,
            chair_id: s.chair_id,
            route: s.route,
            sequence: s.sequence,
            scheduled_for: s.scheduled_for,
            state: s.state,
            checked_in_at: s.checked_in_at,
            pre_dose_checks_at: s.pre_dose_checks_at,
            dose_started_at: s.dose_started_at,
            monitoring_started_at: s.monitoring_started_at,
            discharged_at: s.discharged_at,
            stopped_at: s.stopped_at,
        }
    }
}

impl From<TreatmentSession> for ScheduledSession {
    fn from(s: TreatmentSession) -> Self {
        Self::from(&s)
    }
}
