//! Stored in-session records as the API returns them: vitals, observations and alerts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{AlertId, PatientId, RecordId, SessionId, SiteId};
use crate::session::ObservationBody;
use crate::vitals::VitalSigns;

/// Where a vital-signs reading came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VitalsSource {
    Manual,
    Monitor,
}

impl VitalsSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Monitor => "monitor",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Manual, Self::Monitor].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VitalsRecord {
    pub id: RecordId,
    pub session_id: SessionId,
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    /// Minutes after the dose started; negative or absent before dosing.
    pub minutes_since_dose: Option<i64>,
    #[serde(flatten)]
    pub vitals: VitalSigns,
    pub source: VitalsSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObservationRecord {
    pub id: RecordId,
    pub session_id: SessionId,
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    pub body: ObservationBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    Warning,
    Urgent,
}

impl AlertLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Urgent => "urgent",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Warning, Self::Urgent].into_iter().find(|x| x.as_str() == s)
    }
}

/// A raised alert: which rule fired, why, where the rule comes from, and who
/// acknowledged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    pub id: AlertId,
    pub site_id: SiteId,
    pub patient_id: PatientId,
    pub session_id: Option<SessionId>,
    pub rule: String,
    pub level: AlertLevel,
    pub message: String,
    pub source: String,
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    pub acknowledged_by: Option<String>,
    pub acknowledgement_note: Option<String>,
}

/// A completed questionnaire, scored when it was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuestionnaireResponse {
    pub id: crate::ids::ResponseId,
    pub patient_id: PatientId,
    pub course_id: Option<crate::ids::CourseId>,
    pub session_id: Option<SessionId>,
    pub instrument: String,
    /// Item answers by position (item 1 first); `null` where an item was not asked.
    pub answers: Vec<Option<i32>>,
    pub score: crate::instruments::Score,
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
    pub completed_by: CompletedBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompletedBy {
    Patient,
    Staff,
}

impl CompletedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Staff => "staff",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Patient, Self::Staff].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewQuestionnaireResponse {
    pub instrument: String,
    pub answers: Vec<Option<i32>>,
    #[serde(default)]
    pub course_id: Option<crate::ids::CourseId>,
    #[serde(default)]
    pub session_id: Option<SessionId>,
    /// When the patient finished; defaults to now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    pub completed_by: CompletedBy,
}

/// A stored eligibility assessment for one route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EligibilityAssessment {
    pub id: RecordId,
    pub patient_id: PatientId,
    pub route: crate::course::Route,
    #[serde(with = "time::serde::rfc3339")]
    pub assessed_at: OffsetDateTime,
    pub maudsley: Option<crate::eligibility::MaudsleyScore>,
    pub contraindications: crate::eligibility::ContraindicationAssessment,
    /// True when a hard stop bars this route.
    pub blocked: bool,
    /// Treatment-resistant by the ≥2 adequate failed trials rule (clinical-reference §3.1).
    pub treatment_resistant: bool,
    /// Results to read that need no decision, e.g. the treatment-resistance gap when a
    /// protocol on the route is for TRD (empty in assessments stored before eligibility read the record).
    #[serde(default)]
    pub warnings: Vec<crate::eligibility::EligibilityWarning>,
    /// The facts the result rests on: read from the record, declared by the clinician, or not recorded.
    #[serde(default)]
    pub facts: Vec<crate::eligibility::EligibilityFact>,
    /// Age in completed years on the site's date when assessed.
    #[serde(default)]
    pub age_years: Option<i32>,
}

impl EligibilityAssessment {
    /// Nothing to decide or read: no hard stop, no caution, no warning.
    pub fn is_clear(&self) -> bool {
        !self.blocked && self.contraindications.cautions.is_empty() && self.warnings.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEligibilityAssessment {
    pub route: crate::course::Route,
    #[serde(default)]
    pub maudsley: Option<crate::eligibility::MaudsleyInput>,
    /// Codes of the contraindications and cautions present (see `/api/v1/contraindications`).
    #[serde(default)]
    pub contraindications_present: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AntidepressantTrialRecord {
    pub id: RecordId,
    pub patient_id: PatientId,
    #[serde(flatten)]
    pub trial: crate::eligibility::AntidepressantTrial,
}

/// Everything the chart shows, read in one consistent snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PatientChart {
    pub patient: crate::patient::Patient,
    pub weights: Vec<crate::patient::WeightEntry>,
    pub courses: Vec<crate::course::Course>,
    pub sessions: Vec<crate::session::TreatmentSession>,
    pub responses: Vec<QuestionnaireResponse>,
    pub outcomes: Vec<CourseOutcome>,
    pub open_alerts: Vec<Alert>,
    pub adverse_events: Vec<crate::session::AdverseEvent>,
    pub antidepressant_trials: Vec<AntidepressantTrialRecord>,
    pub eligibility: Vec<EligibilityAssessment>,
    /// Every recorded medication, current and stopped.
    pub medications: Vec<crate::medications::Medication>,
    pub allergies: Vec<crate::medications::Allergy>,
    /// The latest recorded pregnancy status.
    pub pregnancy: Option<crate::medications::PregnancyStatusRecord>,
}

/// One instrument's outcome over one course.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CourseOutcome {
    pub course_id: crate::ids::CourseId,
    /// For a maintenance course, the induction course whose first score is the baseline;
    /// `null` when the baseline is the course's own first score.
    pub baseline_course_id: Option<crate::ids::CourseId>,
    pub outcome: crate::outcomes::Outcome,
}

/// Outcomes per course and instrument: every instrument with a definition that has at least
/// one response linked to the course, judged by [`crate::outcomes::judge_course`] (a
/// maintenance course against the baseline of the induction it continues).
pub fn course_outcomes(courses: &[crate::course::Course], responses: &[QuestionnaireResponse]) -> Vec<CourseOutcome> {
    let mut out = Vec::new();
    for course in courses {
        let mut codes: Vec<&str> =
            responses.iter().filter(|r| r.course_id == Some(course.id)).map(|r| r.instrument.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        let continues = crate::outcomes::continued_course(courses, course);
        for code in codes {
            let Some(def) = crate::outcomes::definition_for(code) else { continue };
            if let Some(j) = crate::outcomes::judge_course(def, course, continues, responses) {
                out.push(CourseOutcome {
                    course_id: course.id,
                    baseline_course_id: j.series.baseline_course,
                    outcome: j.outcome,
                });
            }
        }
    }
    out
}
