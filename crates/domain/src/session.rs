//! The treatment session and its lifecycle in the chair.
//!
//! scheduled → checked_in → pre_dose_checks → dosing → monitoring → discharged,
//! or stopped (with a reason) from any step before discharge. Each step records
//! when it happened; the caller passes `now` (the domain never reads a clock).

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::course::Route;
use crate::discharge::{Blocker, DischargeRecord};
use crate::error::{DomainError, Validator};
use crate::ids::{AlertId, ChairId, CourseId, PatientId, RecordId, SessionId, SiteId};
use crate::plausible::Quantity;
use crate::units::{Milligrams, Minutes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Scheduled,
    CheckedIn,
    PreDoseChecks,
    Dosing,
    Monitoring,
    Discharged,
    Stopped,
}

impl SessionState {
    pub const ALL: [SessionState; 7] = [
        Self::Scheduled,
        Self::CheckedIn,
        Self::PreDoseChecks,
        Self::Dosing,
        Self::Monitoring,
        Self::Discharged,
        Self::Stopped,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::CheckedIn => "checked_in",
            Self::PreDoseChecks => "pre_dose_checks",
            Self::Dosing => "dosing",
            Self::Monitoring => "monitoring",
            Self::Discharged => "discharged",
            Self::Stopped => "stopped",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Discharged | Self::Stopped)
    }
    /// The only state each state may advance to (stopping is separate).
    pub fn next(self) -> Option<SessionState> {
        match self {
            Self::Scheduled => Some(Self::CheckedIn),
            Self::CheckedIn => Some(Self::PreDoseChecks),
            Self::PreDoseChecks => Some(Self::Dosing),
            Self::Dosing => Some(Self::Monitoring),
            Self::Monitoring => Some(Self::Discharged),
            Self::Discharged | Self::Stopped => None,
        }
    }
    /// True once the drug has started going in.
    pub fn dose_started(self) -> bool {
        matches!(self, Self::Dosing | Self::Monitoring | Self::Discharged)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TreatmentSession {
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
    pub stop_reason: Option<String>,
    pub planned_dose_mg: Option<Milligrams>,
    pub note: Option<String>,
}

/// What a step asks for: advance to the next state, or stop with a reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionAction {
    CheckIn,
    StartPreDoseChecks,
    StartDose,
    EndDose,
    Discharge,
    Stop { reason: String },
}

impl SessionAction {
    pub fn target(&self) -> SessionState {
        match self {
            Self::CheckIn => SessionState::CheckedIn,
            Self::StartPreDoseChecks => SessionState::PreDoseChecks,
            Self::StartDose => SessionState::Dosing,
            Self::EndDose => SessionState::Monitoring,
            Self::Discharge => SessionState::Discharged,
            Self::Stop { .. } => SessionState::Stopped,
        }
    }
}

/// A lifecycle step as the API receives it: the step, and for the unusual cases the
/// confirmation and reason they need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    pub action: StepName,
    /// Why: needed to stop, and to check in or start the dose of a session scheduled for
    /// another day (with `confirm_other_day`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Check in or start the dose of a session scheduled for another local day at the site.
    #[serde(default)]
    pub confirm_other_day: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    CheckIn,
    StartPreDoseChecks,
    StartDose,
    EndDose,
    Discharge,
    Stop,
}

impl StepRequest {
    /// The action, and the reason for doing it on another day when that was confirmed.
    pub fn into_parts(self) -> Result<(SessionAction, Option<String>), DomainError> {
        let action = match self.action {
            StepName::CheckIn => SessionAction::CheckIn,
            StepName::StartPreDoseChecks => SessionAction::StartPreDoseChecks,
            StepName::StartDose => SessionAction::StartDose,
            StepName::EndDose => SessionAction::EndDose,
            StepName::Discharge => SessionAction::Discharge,
            StepName::Stop => return Ok((SessionAction::Stop { reason: self.reason.unwrap_or_default() }, None)),
        };
        if !self.confirm_other_day {
            return Ok((action, None));
        }
        let reason = self.reason.as_deref().map(str::trim).unwrap_or_default();
        if reason.is_empty() || reason.len() > 500 {
            return Err(DomainError::field(
                "reason",
                "say why the session is taken on another day than it is scheduled for (1-500 characters)",
            ));
        }
        Ok((action, Some(reason.to_string())))
    }
}

/// Facts the discharge decision needs beyond the session itself.
#[derive(Debug, Clone, Copy)]
pub struct DischargeContext<'a> {
    pub minimum_monitoring: Minutes,
    pub open_alerts: usize,
    /// What the record holds; `None` only when replaying history already lived elsewhere
    /// (an import), where the discharge happened under that system's checks.
    pub record: Option<DischargeRecord<'a>>,
}

/// The site's local date of the session and of today, and the reason given for taking the
/// session on another day (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDay {
    pub scheduled: Date,
    pub today: Date,
    pub other_day_reason: Option<String>,
}

/// Facts a step needs beyond the session itself; the caller gathers them.
#[derive(Debug, Clone)]
pub struct StepContext<'a> {
    pub discharge: DischargeContext<'a>,
    /// Open urgent alerts for the patient that no prescriber override covers (their
    /// messages); starting the dose is refused while there is one.
    pub uncovered_urgent_alerts: Vec<String>,
    /// Consents and enrolments the session needs and the record lacks, each with where to
    /// sign it (`crate::consent::missing_for_session`); starting the dose is refused while
    /// there is one.
    pub missing_documents: Vec<crate::consent::MissingDocument>,
    /// `None` when the day does not matter (replaying history).
    pub day: Option<SessionDay>,
}

impl<'a> StepContext<'a> {
    /// Replaying a lifecycle that already happened: only the state machine and the
    /// discharge timing are checked.
    pub fn replay(discharge: DischargeContext<'a>) -> Self {
        Self { discharge, uncovered_urgent_alerts: Vec::new(), missing_documents: Vec::new(), day: None }
    }
}

impl TreatmentSession {
    /// Minutes since the dose started, if it has.
    pub fn minutes_since_dose(&self, now: OffsetDateTime) -> Option<i64> {
        self.dose_started_at.map(|t| (now - t).whole_minutes())
    }

    /// Why the patient cannot leave yet, each with where to record what is missing; empty
    /// when discharge is allowed.
    pub fn discharge_blockers(&self, now: OffsetDateTime, ctx: &DischargeContext) -> Vec<Blocker> {
        let mut out = Vec::new();
        match self.dose_started_at {
            None => out.push(Blocker::new("dose_not_started", "clock", "the dose has not been started")),
            Some(t) => {
                let elapsed = (now - t).whole_minutes();
                if elapsed < ctx.minimum_monitoring.0 {
                    out.push(Blocker::new(
                        "minimum_monitoring",
                        "clock",
                        format!(
                            "monitoring has run {elapsed} min; the minimum for {} is {} min (another {} min)",
                            self.route.label(),
                            ctx.minimum_monitoring.0,
                            ctx.minimum_monitoring.0 - elapsed
                        ),
                    ));
                }
                if let Some(record) = &ctx.record {
                    out.extend(record.blockers(t, now));
                }
            }
        }
        if ctx.open_alerts > 0 {
            out.push(Blocker::new(
                "open_alerts",
                "alerts",
                format!("{} alert(s) have not been acknowledged", ctx.open_alerts),
            ));
        }
        out
    }

    /// Refuses checking in or starting the dose of a session scheduled for another local
    /// day, unless a reason was given.
    fn check_day(&self, action: &SessionAction, day: Option<&SessionDay>) -> Result<(), DomainError> {
        let Some(day) = day else { return Ok(()) };
        if !matches!(action, SessionAction::CheckIn | SessionAction::StartDose) || day.scheduled == day.today {
            return Ok(());
        }
        if day.other_day_reason.as_deref().is_some_and(|r| !r.trim().is_empty()) {
            return Ok(());
        }
        let what = if *action == SessionAction::CheckIn { "check in" } else { "start the dose of" };
        Err(DomainError::Conflict(format!(
            "this session is scheduled for {}, not today ({}): to {what} it anyway, confirm it is meant for today and say why (confirm_other_day with a reason)",
            day.scheduled, day.today
        )))
    }

    /// Applies one lifecycle step, or says why it is not allowed. The session is unchanged on error.
    pub fn apply(&mut self, action: &SessionAction, now: OffsetDateTime, ctx: &StepContext) -> Result<(), DomainError> {
        let to = action.target();
        if self.state.is_terminal() {
            return Err(DomainError::Conflict(format!("the session is already {}", self.state.as_str())));
        }
        if let SessionAction::Stop { reason } = action {
            let reason = reason.trim();
            if reason.is_empty() || reason.len() > 500 {
                return Err(DomainError::field("reason", "say why the session is stopped (1-500 characters)"));
            }
            self.state = SessionState::Stopped;
            self.stopped_at = Some(now);
            self.stop_reason = Some(reason.to_string());
            return Ok(());
        }
        if self.state.next() != Some(to) {
            return Err(DomainError::Conflict(format!(
                "a {} session cannot move to {}; next step is {}",
                self.state.as_str(),
                to.as_str(),
                self.state.next().map_or("none", SessionState::as_str)
            )));
        }
        self.check_day(action, ctx.day.as_ref())?;
        if to == SessionState::Dosing && !ctx.missing_documents.is_empty() {
            return Err(DomainError::Conflict(format!(
                "dose refused: {}",
                ctx.missing_documents.iter().map(|m| m.line()).collect::<Vec<_>>().join("; ")
            )));
        }
        if to == SessionState::Dosing && !ctx.uncovered_urgent_alerts.is_empty() {
            return Err(DomainError::Conflict(format!(
                "dose refused: an urgent alert for this patient is open ({}): acknowledge it with what was done, or a prescriber records an override with a reason",
                ctx.uncovered_urgent_alerts.join("; ")
            )));
        }
        if to == SessionState::Discharged {
            let blockers = self.discharge_blockers(now, &ctx.discharge);
            if !blockers.is_empty() {
                return Err(DomainError::Conflict(format!(
                    "discharge refused: {}",
                    blockers.iter().map(|b| b.message.as_str()).collect::<Vec<_>>().join("; ")
                )));
            }
        }
        self.state = to;
        let stamp = Some(now);
        match to {
            SessionState::CheckedIn => self.checked_in_at = stamp,
            SessionState::PreDoseChecks => self.pre_dose_checks_at = stamp,
            SessionState::Dosing => self.dose_started_at = stamp,
            SessionState::Monitoring => self.monitoring_started_at = stamp,
            SessionState::Discharged => self.discharged_at = stamp,
            SessionState::Scheduled | SessionState::Stopped => {}
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    #[serde(with = "time::serde::rfc3339")]
    pub scheduled_for: OffsetDateTime,
    #[serde(default)]
    pub chair_id: Option<ChairId>,
    #[serde(default)]
    pub planned_dose_mg: Option<Milligrams>,
}

impl NewSession {
    /// `now` places the scheduling window (clinical data far in the past or future is a typo).
    pub fn validate(&self, now: OffsetDateTime) -> Result<(), DomainError> {
        let mut v = Validator::new();
        let ranges = crate::plausible::ranges();
        crate::plausible::check(&mut v, "scheduled_for", ranges.scheduled_time(self.scheduled_for, now));
        if let Some(d) = self.planned_dose_mg {
            crate::plausible::check(&mut v, "planned_dose_mg", ranges.planned_dose(d));
        }
        v.finish()
    }
}

/// A prescriber's documented decision to go ahead despite what a gate found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NewDecision {
    /// Start the dose although urgent alerts for the patient are open; covers each one open now.
    DoseDespiteUrgentAlert { reason: String },
    /// Discharge although the named BP reading is above the session-safety thresholds.
    DischargeDespiteBp { vitals_id: RecordId, reason: String },
}

impl NewDecision {
    pub fn reason(&self) -> &str {
        match self {
            Self::DoseDespiteUrgentAlert { reason } | Self::DischargeDespiteBp { reason, .. } => reason,
        }
    }
    pub fn validate(&self) -> Result<(), DomainError> {
        let n = self.reason().trim().chars().count();
        let mut v = Validator::new();
        v.check((3..=500).contains(&n), "reason", "say why (3-500 characters): the note and the audit trail show it");
        v.finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    DoseDespiteUrgentAlert,
    DischargeDespiteBp,
    /// Check-in or dose start on another day than the session was scheduled for.
    OtherDay,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DoseDespiteUrgentAlert => "dose_despite_urgent_alert",
            Self::DischargeDespiteBp => "discharge_despite_bp",
            Self::OtherDay => "other_day",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::DoseDespiteUrgentAlert, Self::DischargeDespiteBp, Self::OtherDay].into_iter().find(|k| k.as_str() == s)
    }
}

/// A decision as stored: who, when, why, and what it names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionDecision {
    pub id: RecordId,
    pub session_id: SessionId,
    pub kind: DecisionKind,
    /// The urgent alert a dose override covers.
    pub alert_id: Option<AlertId>,
    /// The BP reading a discharge decision names.
    pub vitals_id: Option<RecordId>,
    /// For `other_day`: the step taken (`check_in` or `start_dose`).
    pub step: Option<String>,
    pub reason: String,
    pub decided_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
}

/// Adverse event severity (mild/moderate/severe) and seriousness are separate axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AeSeverity {
    Mild,
    Moderate,
    Severe,
}

impl AeSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mild => "mild",
            Self::Moderate => "moderate",
            Self::Severe => "severe",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Mild, Self::Moderate, Self::Severe].into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdverseEvent {
    pub description: String,
    pub severity: AeSeverity,
    /// Serious per the regulatory definition (death, life-threatening, hospitalisation, ...).
    pub serious: bool,
    pub action_taken: String,
    pub outcome: String,
    #[serde(with = "time::serde::rfc3339")]
    pub onset_at: OffsetDateTime,
}

impl NewAdverseEvent {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        v.check(text_ok(&self.description, 2000), "description", "describe the event (1-2000 characters)");
        v.check(text_ok(&self.action_taken, 2000), "action_taken", "say what was done (1-2000 characters), or 'none'");
        v.check(text_ok(&self.outcome, 500), "outcome", "give the outcome (e.g. resolved, ongoing)");
        v.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdverseEvent {
    pub id: RecordId,
    pub patient_id: PatientId,
    pub session_id: Option<SessionId>,
    pub description: String,
    pub severity: AeSeverity,
    pub serious: bool,
    pub action_taken: String,
    pub outcome: String,
    #[serde(with = "time::serde::rfc3339")]
    pub onset_at: OffsetDateTime,
}

/// Point-in-time observations in the chair besides vitals and questionnaires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ObservationBody {
    /// MOAA/S sedation score 0-5 (clinical-reference §1.10).
    Moaas { score: i32 },
    /// A side effect from the symptom vocabulary, with optional free text.
    SideEffect {
        symptom: String,
        #[serde(default)]
        note: Option<String>,
    },
    /// A drug given in the chair (e.g. an antiemetic or antihypertensive).
    Intervention { drug: String, dose_mg: Milligrams, route: String },
}

impl ObservationBody {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Moaas { .. } => "moaas",
            Self::SideEffect { .. } => "side_effect",
            Self::Intervention { .. } => "intervention",
        }
    }
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        match self {
            Self::Moaas { score } => v.check((0..=5).contains(score), "score", format!("MOAA/S is 0-5, got {score}")),
            Self::SideEffect { symptom, note } => {
                v.check(text_ok(symptom, 100), "symptom", "name the side effect");
                if let Some(n) = note {
                    v.check(
                        crate::notes::within_chars(n, crate::notes::MAX_SHORT_NOTE_CHARS),
                        "note",
                        "keep the note under 2000 characters",
                    );
                }
            }
            Self::Intervention { drug, dose_mg, route } => {
                v.check(text_ok(drug, 100), "drug", "name the drug");
                crate::plausible::check(
                    &mut v,
                    "dose_mg",
                    crate::plausible::ranges().quantity(Quantity::Mg, dose_mg.0, "the dose"),
                );
                v.check(text_ok(route, 50), "route", "give the route (e.g. IV, PO, SL)");
            }
        }
        v.finish()
    }
}

fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.len() <= max
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn session(route: Route) -> TreatmentSession {
        TreatmentSession {
            id: SessionId(1),
            course_id: CourseId(1),
            patient_id: PatientId(1),
            site_id: SiteId(1),
            chair_id: None,
            route,
            sequence: 1,
            scheduled_for: datetime!(2026-11-27 09:00 UTC),
            state: SessionState::Scheduled,
            checked_in_at: None,
            pre_dose_checks_at: None,
            dose_started_at: None,
            monitoring_started_at: None,
            discharged_at: None,
            stopped_at: None,
            stop_reason: None,
            planned_dose_mg: None,
            note: None,
        }
    }
    const DISCHARGE: DischargeContext =
        DischargeContext { minimum_monitoring: Minutes(120), open_alerts: 0, record: None };
    fn ctx() -> StepContext<'static> {
        StepContext::replay(DISCHARGE)
    }

    #[test]
    fn full_lifecycle_stamps_each_step() {
        let mut s = session(Route::IntranasalEsketamine);
        let t0 = datetime!(2026-11-27 09:00 UTC);
        for (i, a) in [
            SessionAction::CheckIn,
            SessionAction::StartPreDoseChecks,
            SessionAction::StartDose,
            SessionAction::EndDose,
        ]
        .iter()
        .enumerate()
        {
            s.apply(a, t0 + time::Duration::minutes(i as i64 * 5), &ctx()).unwrap();
        }
        assert_eq!(s.state, SessionState::Monitoring);
        assert_eq!(s.dose_started_at, Some(datetime!(2026-11-27 09:10 UTC)));
        // 119 minutes after dose: refused, and nothing changes.
        let before = s.clone();
        let err = s.apply(&SessionAction::Discharge, datetime!(2026-11-27 11:09 UTC), &ctx()).unwrap_err();
        assert!(err.to_string().contains("another 1 min"), "{err}");
        assert_eq!(s, before);
        s.apply(&SessionAction::Discharge, datetime!(2026-11-27 11:10 UTC), &ctx()).unwrap();
        assert_eq!(s.state, SessionState::Discharged);
    }

    #[test]
    fn open_alerts_block_discharge() {
        let mut s = session(Route::IvRacemic);
        s.state = SessionState::Monitoring;
        s.dose_started_at = Some(datetime!(2026-11-27 09:00 UTC));
        let ctx =
            StepContext::replay(DischargeContext { minimum_monitoring: Minutes(60), open_alerts: 2, record: None });
        let err = s.apply(&SessionAction::Discharge, datetime!(2026-11-27 12:00 UTC), &ctx).unwrap_err();
        assert!(err.to_string().contains("2 alert(s)"));
    }

    #[test]
    fn steps_cannot_be_skipped_or_repeated() {
        let mut s = session(Route::IvRacemic);
        assert!(s.apply(&SessionAction::StartDose, datetime!(2026-11-27 09:00 UTC), &ctx()).is_err());
        s.apply(&SessionAction::CheckIn, datetime!(2026-11-27 09:00 UTC), &ctx()).unwrap();
        assert!(s.apply(&SessionAction::CheckIn, datetime!(2026-11-27 09:01 UTC), &ctx()).is_err());
    }

    #[test]
    fn stop_needs_reason_and_is_final() {
        let mut s = session(Route::IvRacemic);
        assert!(s.apply(&SessionAction::Stop { reason: " ".into() }, datetime!(2026-11-27 09:00 UTC), &ctx()).is_err());
        s.apply(
            &SessionAction::Stop { reason: "BP 185/118 before dose".into() },
            datetime!(2026-11-27 09:00 UTC),
            &ctx(),
        )
        .unwrap();
        assert_eq!(s.state, SessionState::Stopped);
        assert!(s.apply(&SessionAction::CheckIn, datetime!(2026-11-27 09:01 UTC), &ctx()).is_err());
    }

    #[test]
    fn a_dose_waits_for_missing_consent_and_says_where_to_sign() {
        let mut s = session(Route::IntranasalEsketamine);
        s.state = SessionState::PreDoseChecks;
        let mut c = ctx();
        c.missing_documents = crate::consent::missing_for_session(s.patient_id, s.route, true, &[]);
        let before = s.clone();
        let err = s.apply(&SessionAction::StartDose, datetime!(2026-11-27 09:00 UTC), &c).unwrap_err().to_string();
        assert!(err.contains("no consent to treatment") && err.contains("REMS enrolment"), "{err}");
        assert!(err.contains(&format!("[sign it: /patients/{}/consents?form=rems_enrolment]", s.patient_id)), "{err}");
        assert_eq!(s, before);
        c.missing_documents.clear();
        s.apply(&SessionAction::StartDose, datetime!(2026-11-27 09:00 UTC), &c).unwrap();
    }

    #[test]
    fn a_dose_waits_for_an_open_urgent_alert() {
        let mut s = session(Route::IvRacemic);
        s.state = SessionState::PreDoseChecks;
        let mut c = ctx();
        c.uncovered_urgent_alerts = vec!["PHQ-9 item 9 answered above 0".into()];
        let before = s.clone();
        let err = s.apply(&SessionAction::StartDose, datetime!(2026-11-27 09:00 UTC), &c).unwrap_err().to_string();
        assert!(err.contains("PHQ-9 item 9") && err.contains("prescriber records an override"), "{err}");
        assert_eq!(s, before);
        // Other steps (stopping, for one) are not held up by the alert.
        s.apply(&SessionAction::Stop { reason: "Alert under review".into() }, datetime!(2026-11-27 09:01 UTC), &c)
            .unwrap();
    }

    #[test]
    fn a_session_of_another_day_needs_a_reason_to_check_in_or_dose() {
        use time::macros::date;
        let mut s = session(Route::IvRacemic);
        let mut c = ctx();
        c.day =
            Some(SessionDay { scheduled: date!(2026 - 11 - 28), today: date!(2026 - 11 - 27), other_day_reason: None });
        let err = s.apply(&SessionAction::CheckIn, datetime!(2026-11-27 09:00 UTC), &c).unwrap_err().to_string();
        assert!(err.contains("2026-11-28") && err.contains("confirm_other_day"), "{err}");
        assert_eq!(s.state, SessionState::Scheduled);
        c.day.as_mut().unwrap().other_day_reason = Some("Moved forward at the patient's request".into());
        s.apply(&SessionAction::CheckIn, datetime!(2026-11-27 09:00 UTC), &c).unwrap();
        // Pre-dose checks are not a day decision; starting the dose is.
        c.day.as_mut().unwrap().other_day_reason = None;
        s.apply(&SessionAction::StartPreDoseChecks, datetime!(2026-11-27 09:05 UTC), &c).unwrap();
        assert!(s.apply(&SessionAction::StartDose, datetime!(2026-11-27 09:10 UTC), &c).is_err());
        c.day.as_mut().unwrap().scheduled = date!(2026 - 11 - 27);
        s.apply(&SessionAction::StartDose, datetime!(2026-11-27 09:10 UTC), &c).unwrap();
    }

    #[test]
    fn a_step_request_needs_a_reason_only_when_it_confirms_another_day() {
        let req = |json: &str| serde_json::from_str::<StepRequest>(json).unwrap().into_parts();
        assert_eq!(req(r#"{"action":"check_in"}"#).unwrap(), (SessionAction::CheckIn, None));
        assert!(req(r#"{"action":"check_in","confirm_other_day":true}"#).is_err());
        assert_eq!(
            req(r#"{"action":"start_dose","confirm_other_day":true,"reason":" Rebooked from Friday "}"#).unwrap(),
            (SessionAction::StartDose, Some("Rebooked from Friday".into()))
        );
        assert_eq!(
            req(r#"{"action":"stop","reason":"unwell"}"#).unwrap().0,
            SessionAction::Stop { reason: "unwell".into() }
        );
        assert!(serde_json::from_str::<StepRequest>(r#"{"action":"check_in","confirm":true}"#).is_err());
    }
}
