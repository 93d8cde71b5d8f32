//! Importing history with its own timestamps: treatment sessions as they happened (with
//! their vitals, observations, questionnaires, alerts, acknowledgements and adverse
//! events) and patient-level questionnaire check-ins completed between sessions.
//!
//! The live API stamps every record with the clock; a migration from another system, or
//! the synthetic demo and benchmark clinics, need records dated in the past. Import keeps
//! the live rules:
//!
//! * every input goes through the domain validators first, and the batch is all-or-nothing:
//!   one bad session or reading fails the call, naming it (`sessions[3].vitals[2].spo2_pct`),
//!   and nothing is written;
//! * the lifecycle is replayed through [`TreatmentSession::apply`], so an imported session
//!   obeys the same state machine as a live one (no skipped steps, a stop needs a reason,
//!   no discharge before the route's minimum monitoring time or with unacknowledged alerts).
//!   Not replayed: live discharge also needs the dose in the controlled-substance ledger
//!   (CS-1); historical doses belong to the ledger's own history, which import does not write;
//! * alerts are raised by the site's safety rules (the built-in rules unless the site
//!   overrides them; see `crate::rules`) from the historical readings exactly as
//!   `record_vitals`/`record_observation`/`submit_response` would have raised them (baseline =
//!   the session's first blood pressure; phase from the dose start), dated when the reading
//!   was taken; an [`AlertAcknowledgement`] policy acknowledges them afterwards;
//! * permissions: importing a session needs everything its live counterparts need
//!   (recording in the session, entering questionnaires, and planning treatment, since
//!   sessions are added to courses and course statuses set), so only prescribers and Keta
//!   itself may import history; a check-in needs questionnaire entry, plus recording in
//!   sessions when it carries an alert acknowledgement. Courses and patients outside the
//!   actor's sites are not found;
//! * one audit entry per imported session (`session_import`) or check-in (`response_import`)
//!   records who imported what, naming the kinds of data, never values. The audit entry is
//!   dated when the import ran: the trail records when Keta learnt of the data.
//!
//! Each call is one write transaction. Children rows are written with multi-row inserts and
//! the audit entries last, so on PostgreSQL the audit chain's lock is held only briefly.

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};

use keta_domain::access::Permission;
use keta_domain::alerts::{AlertFiring, DosePhase, SafetyRules};
use keta_domain::course::CourseStatus;
use keta_domain::ids::{ChairId, CourseId, PatientId, SessionId, SiteId};
use keta_domain::instruments;
use keta_domain::notes::{MAX_NOTE_CHARS, MAX_SHORT_NOTE_CHARS, within_chars};
use keta_domain::records::{CompletedBy, VitalsSource};
use keta_domain::session::{
    DischargeContext, NewAdverseEvent, NewSession, ObservationBody, SessionAction, SessionState, StepContext,
    TreatmentSession,
};
use keta_domain::units::Milligrams;
use keta_domain::vitals::VitalSigns;
use keta_domain::{DomainError, FieldError};

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Value};
use crate::error::{Result, StoreError};
use crate::time_codec::{json, ms};
use crate::{Actor, Store, params};

/// How long after it was raised each alert of an imported record was acknowledged, by whom
/// and with what note. The acknowledgement is never later than the end of the session (a
/// discharged session had no open alerts) nor later than now.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertAcknowledgement {
    pub by: String,
    pub after: Duration,
    pub note: Option<String>,
}

/// One lifecycle step as it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStep {
    pub action: SessionAction,
    pub at: OffsetDateTime,
}

impl SessionStep {
    pub fn new(action: SessionAction, at: OffsetDateTime) -> Self {
        Self { action, at }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalVitals {
    pub taken_at: OffsetDateTime,
    pub vitals: VitalSigns,
    pub source: VitalsSource,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalObservation {
    pub observed_at: OffsetDateTime,
    pub body: ObservationBody,
}

/// A completed questionnaire with its answers; scored on import.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalResponse {
    pub instrument: String,
    pub answers: Vec<Option<i32>>,
    pub completed_at: OffsetDateTime,
    pub completed_by: CompletedBy,
}

/// A treatment session as it happened. The route, patient and site come from the course.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalSession {
    pub course_id: CourseId,
    pub chair_id: Option<ChairId>,
    pub scheduled_for: OffsetDateTime,
    pub planned_dose_mg: Option<Milligrams>,
    /// The lifecycle steps in order (check in, pre-dose checks, start dose, end dose,
    /// discharge; or a stop). A session whose steps stop short of discharge or stop is
    /// imported in progress (e.g. a patient in the chair when a system is migrated).
    pub steps: Vec<SessionStep>,
    /// Readings between check-in and the end of the session.
    pub vitals: Vec<HistoricalVitals>,
    /// Sedation scores, side effects and interventions between check-in and the end.
    pub observations: Vec<HistoricalObservation>,
    /// Questionnaires tied to this session (and its course), completed before it ended.
    pub responses: Vec<HistoricalResponse>,
    pub adverse_events: Vec<NewAdverseEvent>,
    /// Acknowledges every alert the session's records raise; `None` leaves them open
    /// (which the lifecycle replay refuses for a discharged session).
    pub acknowledge_alerts: Option<AlertAcknowledgement>,
    pub note: Option<String>,
    /// Sets the course's status after this session (e.g. `Completed` after the last
    /// induction session).
    pub course_status_after: Option<CourseStatus>,
}

impl HistoricalSession {
    /// A session with no steps or records yet.
    pub fn new(course_id: CourseId, scheduled_for: OffsetDateTime) -> Self {
        Self {
            course_id,
            chair_id: None,
            scheduled_for,
            planned_dose_mg: None,
            steps: Vec::new(),
            vitals: Vec::new(),
            observations: Vec::new(),
            responses: Vec::new(),
            adverse_events: Vec::new(),
            acknowledge_alerts: None,
            note: None,
            course_status_after: None,
        }
    }
}

/// A questionnaire completed outside a session (e.g. a weekly check-in at home).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalCheckIn {
    pub patient_id: PatientId,
    /// The course it counts towards, if any (outcomes are computed per course).
    pub course_id: Option<CourseId>,
    pub response: HistoricalResponse,
    pub acknowledge_alerts: Option<AlertAcknowledgement>,
}

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    /// The new sessions, in input order (empty for check-ins).
    pub sessions: Vec<SessionId>,
    pub vitals: usize,
    pub observations: usize,
    pub responses: usize,
    pub alerts: usize,
    /// Alerts left unacknowledged.
    pub open_alerts: usize,
    pub adverse_events: usize,
}

// ---------------------------------------------------------------------------------------
// Validation and preparation (pure; runs before the write transaction)
// ---------------------------------------------------------------------------------------

/// How far ahead of the clock a timestamp may be (device clocks drift), as in the live API.
const CLOCK_SLACK: Duration = Duration::minutes(5);

/// Collects field errors from many records, each under its own path.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: String, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
    fn nest(&mut self, prefix: &str, r: std::result::Result<(), DomainError>) {
        match r {
            Ok(()) => {}
            Err(DomainError::Invalid(errs)) => {
                self.0.extend(errs.into_iter().map(|e| FieldError::new(format!("{prefix}.{}", e.field), e.message)));
            }
            Err(DomainError::Conflict(m)) => self.push(prefix.to_string(), m),
        }
    }
    fn finish(self) -> Result<()> {
        if self.0.is_empty() { Ok(()) } else { Err(DomainError::Invalid(self.0).into()) }
    }
}

struct PreparedAlert {
    firing: AlertFiring,
    raised_at: OffsetDateTime,
    ack: Option<(OffsetDateTime, String, Option<String>)>,
}

struct PreparedResponse {
    instrument: String,
    answers: String,
    total: Option<i32>,
    severity: Option<String>,
    score: String,
    completed_at: OffsetDateTime,
    completed_by: CompletedBy,
}

struct PreparedSession {
    /// Validated; vitals sorted by time.
    input: HistoricalSession,
    dose_started_at: Option<OffsetDateTime>,
    /// Latest time an alert of this session may be acknowledged: its end, or now.
    ack_cap: OffsetDateTime,
    responses: Vec<PreparedResponse>,
    /// Questionnaire safety flags (rules-independent), raised at completion.
    response_firings: Vec<(OffsetDateTime, Vec<AlertFiring>)>,
}

fn check_ack(errs: &mut Errors, at: &str, ack: &Option<AlertAcknowledgement>) {
    if let Some(a) = ack {
        let by = a.by.trim();
        if by.is_empty() || by.len() > 100 {
            errs.push(format!("{at}.by"), "name who acknowledged the alerts (1-100 characters)");
        }
        if a.after.is_negative() {
            errs.push(format!("{at}.after"), "an alert cannot be acknowledged before it was raised");
        }
        if a.note.as_ref().is_some_and(|n| !within_chars(n, MAX_SHORT_NOTE_CHARS)) {
            errs.push(format!("{at}.note"), "keep the note under 2000 characters");
        }
    }
}

fn acknowledged(
    ack: &Option<AlertAcknowledgement>,
    raised_at: OffsetDateTime,
    cap: OffsetDateTime,
) -> Option<(OffsetDateTime, String, Option<String>)> {
    ack.as_ref().map(|a| {
        let at = (raised_at + a.after).min(cap).max(raised_at);
        (at, a.by.trim().to_string(), a.note.clone())
    })
}

/// Scores a response, or records why it cannot be scored.
fn prepare_response(
    errs: &mut Errors,
    at: &str,
    r: HistoricalResponse,
    now: OffsetDateTime,
) -> Option<(PreparedResponse, Vec<AlertFiring>)> {
    if r.completed_at > now + CLOCK_SLACK {
        errs.push(format!("{at}.completed_at"), "completion time cannot be in the future");
    }
    let Some(instrument) = instruments::catalog().get(&r.instrument) else {
        let known: Vec<&str> = instruments::catalog().all().iter().map(|i| i.code.as_str()).collect();
        errs.push(
            format!("{at}.instrument"),
            format!("unknown instrument '{}'; use one of: {}", r.instrument, known.join(", ")),
        );
        return None;
    };
    match instruments::score(instrument, &r.answers) {
        Ok(score) => {
            let firings = crate::questionnaires::safety_firings(&instrument.short_name, &score);
            Some((
                PreparedResponse {
                    answers: json(&r.answers),
                    total: score.total,
                    severity: score.severity.as_ref().map(|b| b.code.clone()),
                    score: json(&score),
                    instrument: r.instrument,
                    completed_at: r.completed_at,
                    completed_by: r.completed_by,
                },
                firings,
            ))
        }
        Err(e) => {
            errs.nest(at, Err(e));
            None
        }
    }
}

fn prepare_session(
    errs: &mut Errors,
    i: usize,
    mut s: HistoricalSession,
    now: OffsetDateTime,
) -> Option<PreparedSession> {
    let at = format!("sessions[{i}]");
    let before = errs.0.len();
    errs.nest(
        &at,
        NewSession { scheduled_for: s.scheduled_for, chair_id: s.chair_id, planned_dose_mg: s.planned_dose_mg }
            .validate(now),
    );
    check_ack(errs, &format!("{at}.acknowledge_alerts"), &s.acknowledge_alerts);
    if s.note.as_ref().is_some_and(|n| !within_chars(n, MAX_NOTE_CHARS)) {
        errs.push(format!("{at}.note"), "keep the note under 20,000 characters");
    }

    // Steps: at least one, in time order, none in the future. The state machine itself is
    // replayed in the transaction, once the course (and so the route) is known.
    if s.steps.is_empty() {
        errs.push(
            format!("{at}.steps"),
            "give the session's lifecycle steps (check in first), or a stop with its reason",
        );
    }
    for (j, w) in s.steps.windows(2).enumerate() {
        if w[1].at < w[0].at {
            errs.push(format!("{at}.steps[{}].at", j + 1), "steps must be in time order");
        }
    }
    if s.steps.iter().any(|st| st.at > now + CLOCK_SLACK) {
        errs.push(format!("{at}.steps"), "a step cannot be in the future");
    }
    let step_at = |pred: fn(&SessionAction) -> bool| s.steps.iter().find(|st| pred(&st.action)).map(|st| st.at);
    let checked_in_at = step_at(|a| matches!(a, SessionAction::CheckIn));
    let dose_started_at = step_at(|a| matches!(a, SessionAction::StartDose));
    let terminal = s
        .steps
        .last()
        .filter(|st| matches!(st.action, SessionAction::Discharge | SessionAction::Stop { .. }))
        .map(|st| st.at);
    // Records belong between check-in and the end of the session (or now, if it is in progress).
    let end = terminal.unwrap_or(now + CLOCK_SLACK);
    let ack_cap = terminal.unwrap_or(now);

    let in_window = |t: OffsetDateTime| checked_in_at.is_some_and(|c| t >= c) && t <= end;
    let window_msg = "must fall between the session's check-in and its end";
    for (j, v) in s.vitals.iter().enumerate() {
        let vat = format!("{at}.vitals[{j}]");
        errs.nest(&vat, v.vitals.validate());
        if !in_window(v.taken_at) {
            errs.push(format!("{vat}.taken_at"), window_msg);
        }
    }
    // Time order, so each reading is judged against the session's first blood pressure.
    s.vitals.sort_by_key(|v| v.taken_at);
    for (j, o) in s.observations.iter().enumerate() {
        let oat = format!("{at}.observations[{j}]");
        errs.nest(&oat, o.body.validate());
        if !in_window(o.observed_at) {
            errs.push(format!("{oat}.observed_at"), window_msg);
        }
    }

    let mut responses = Vec::with_capacity(s.responses.len());
    let mut response_firings = Vec::new();
    for (j, r) in std::mem::take(&mut s.responses).into_iter().enumerate() {
        let rat = format!("{at}.responses[{j}]");
        if r.completed_at > end {
            errs.push(
                format!("{rat}.completed_at"),
                "a questionnaire tied to a session must be completed before the session ended",
            );
        }
        if let Some((p, firings)) = prepare_response(errs, &rat, r, now) {
            if !firings.is_empty() {
                response_firings.push((p.completed_at, firings));
            }
            responses.push(p);
        }
    }

    for (j, ae) in s.adverse_events.iter().enumerate() {
        let aat = format!("{at}.adverse_events[{j}]");
        errs.nest(&aat, ae.validate());
        if ae.onset_at > now + CLOCK_SLACK {
            errs.push(format!("{aat}.onset_at"), "onset cannot be in the future");
        }
    }

    (errs.0.len() == before).then_some(PreparedSession {
        input: s,
        dose_started_at,
        ack_cap,
        responses,
        response_firings,
    })
}

/// The alerts the session's records raise under the site's rules, exactly as recording them
/// live would (record_vitals, record_observation, submit_response), dated when each record
/// was taken and acknowledged by the session's policy.
fn evaluate(i: usize, p: &mut PreparedSession, rules: &SafetyRules) -> Result<Vec<PreparedAlert>> {
    let s = &p.input;
    let mut alerts = Vec::new();
    let mut raise = |firings: Vec<AlertFiring>, raised_at: OffsetDateTime| {
        for firing in firings {
            alerts.push(PreparedAlert {
                firing,
                raised_at,
                ack: acknowledged(&s.acknowledge_alerts, raised_at, p.ack_cap),
            });
        }
    };
    let mut baseline: Option<VitalSigns> = None;
    for v in &s.vitals {
        let phase = match p.dose_started_at {
            Some(d) if v.taken_at >= d => DosePhase::PostDose { minutes_since_dose: (v.taken_at - d).whole_minutes() },
            _ => DosePhase::PreDose,
        };
        raise(rules.evaluate_vitals(phase, &v.vitals, baseline.as_ref()), v.taken_at);
        if baseline.is_none() && v.vitals.systolic_mmhg.is_some() {
            baseline = Some(v.vitals);
        }
    }
    for (j, o) in s.observations.iter().enumerate() {
        let firings = match &o.body {
            ObservationBody::Moaas { score } => rules.evaluate_moaas(*score),
            ObservationBody::SideEffect { symptom, .. } => {
                let codes = std::slice::from_ref(symptom);
                if let Err(e) = rules.validate_symptom_codes(codes) {
                    let mut errs = Errors::default();
                    errs.nest(&format!("sessions[{i}].observations[{j}].symptom"), Err(e));
                    errs.finish()?;
                }
                rules.evaluate_symptoms(codes)
            }
            ObservationBody::Intervention { .. } => Vec::new(),
        };
        raise(firings, o.observed_at);
    }
    for (at, firings) in std::mem::take(&mut p.response_firings) {
        raise(firings, at);
    }
    alerts.sort_by_key(|a| a.raised_at);
    Ok(alerts)
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// Most rows per INSERT statement. Chunks are powers of two, so a table is written with at
/// most seven distinct statements and prepared-statement caches stay warm.
const MAX_ROWS_PER_INSERT: usize = 64;

/// Rows for one table, written with multi-row inserts.
struct Rows {
    head: &'static str,
    ncols: usize,
    flat: Vec<Value>,
}

impl Rows {
    fn new(head: &'static str, ncols: usize) -> Self {
        Self { head, ncols, flat: Vec::new() }
    }
    fn push<const N: usize>(&mut self, row: [Value; N]) {
        debug_assert_eq!(N, self.ncols);
        self.flat.extend(row);
    }
    fn len(&self) -> usize {
        self.flat.len() / self.ncols
    }
    fn write(&self, c: &mut dyn Conn) -> Result<()> {
        let total = self.len();
        let mut start = 0;
        while start < total {
            let left = (total - start).min(MAX_ROWS_PER_INSERT);
            let n = 1 << left.ilog2();
            let mut sql = String::with_capacity(self.head.len() + n * self.ncols * 5);
            sql.push_str(self.head);
            sql.push_str(" VALUES ");
            for r in 0..n {
                if r > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for k in 0..self.ncols {
                    if k > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('$');
                    sql.push_str(&(r * self.ncols + k + 1).to_string());
                }
                sql.push(')');
            }
            c.execute(&sql, &self.flat[start * self.ncols..(start + n) * self.ncols])?;
            start += n;
        }
        Ok(())
    }
}

fn opt_ms(t: Option<OffsetDateTime>) -> Value {
    t.map(ms).into()
}

fn alerts_rows() -> Rows {
    Rows::new(
        "INSERT INTO alerts (site_id, patient_id, session_id, rule, severity, message, source, raised_at, acknowledged_at, acknowledged_by, acknowledgement_note)",
        11,
    )
}

fn push_alert(rows: &mut Rows, site: SiteId, patient: PatientId, session: Option<SessionId>, a: PreparedAlert) -> bool {
    let level = crate::alerts::level_of(&a.firing);
    let open = a.ack.is_none();
    let (ack_at, ack_by, ack_note) = match a.ack {
        Some((at, by, note)) => (Some(ms(at)), Some(by), note),
        None => (None, None, None),
    };
    rows.push([
        site.0.into(),
        patient.0.into(),
        session.map(|s| s.0).into(),
        a.firing.rule.into(),
        level.as_str().into(),
        a.firing.message.into(),
        a.firing.source.into(),
        ms(a.raised_at).into(),
        ack_at.into(),
        ack_by.into(),
        ack_note.into(),
    ]);
    open
}

fn responses_rows() -> Rows {
    Rows::new(
        "INSERT INTO questionnaire_responses (patient_id, site_id, course_id, session_id, instrument, answers, total, severity, score, completed_at, completed_by)",
        11,
    )
}

fn response_values(
    r: PreparedResponse,
    patient: PatientId,
    site: SiteId,
    course: Option<CourseId>,
    session: Option<SessionId>,
) -> [Value; 11] {
    [
        patient.0.into(),
        site.0.into(),
        course.map(|c| c.0).into(),
        session.map(|s| s.0).into(),
        r.instrument.into(),
        r.answers.into(),
        r.total.into(),
        r.severity.into(),
        r.score.into(),
        ms(r.completed_at).into(),
        r.completed_by.as_str().into(),
    ]
}

/// What the transaction learns about a course once.
struct CourseFacts {
    course: keta_domain::course::Course,
    sessions: i64,
    last_scheduled: Option<i64>,
}

fn lifecycle_error(i: usize, j: usize, e: DomainError) -> StoreError {
    let msg = match e {
        DomainError::Conflict(m) => m,
        other => other.to_string(),
    };
    DomainError::field(format!("sessions[{i}].steps[{j}]"), msg).into()
}

impl Store {
    /// Imports historical sessions in one transaction; see the module docs. Sessions of
    /// one course must come in time order and after the course's existing sessions, so
    /// sequence numbers follow time.
    pub async fn import_history(&self, actor: &Actor, batch: Vec<HistoricalSession>) -> Result<ImportSummary> {
        for p in [Permission::RecordSession, Permission::EnterQuestionnaire, Permission::PlanTreatment] {
            actor.require(p)?;
        }
        let now = self.now();
        let mut errs = Errors::default();
        let prepared: Vec<PreparedSession> =
            batch.into_iter().enumerate().filter_map(|(i, s)| prepare_session(&mut errs, i, s, now)).collect();
        errs.finish()?;
        if prepared.is_empty() {
            return Ok(ImportSummary::default());
        }
        let actor = actor.clone();
        self.write(move |c| write_sessions(c, &actor, now, prepared)).await
    }

    /// Imports questionnaires completed between sessions, with their own completion times,
    /// in one transaction. Safety items raise their alerts dated at completion; the
    /// acknowledgement policy (if any) closes them.
    pub async fn import_responses(&self, actor: &Actor, batch: Vec<HistoricalCheckIn>) -> Result<ImportSummary> {
        actor.require(Permission::EnterQuestionnaire)?;
        if batch.iter().any(|b| b.acknowledge_alerts.is_some()) {
            actor.require(Permission::RecordSession)?;
        }
        let now = self.now();
        let mut errs = Errors::default();
        let mut prepared = Vec::with_capacity(batch.len());
        for (i, b) in batch.into_iter().enumerate() {
            let at = format!("responses[{i}]");
            check_ack(&mut errs, &format!("{at}.acknowledge_alerts"), &b.acknowledge_alerts);
            if let Some((r, firings)) = prepare_response(&mut errs, &at, b.response, now) {
                let alerts: Vec<PreparedAlert> = firings
                    .into_iter()
                    .map(|firing| PreparedAlert {
                        firing,
                        raised_at: r.completed_at,
                        ack: acknowledged(&b.acknowledge_alerts, r.completed_at, now),
                    })
                    .collect();
                prepared.push((b.patient_id, b.course_id, r, alerts));
            }
        }
        errs.finish()?;
        if prepared.is_empty() {
            return Ok(ImportSummary::default());
        }
        let actor = actor.clone();
        self.write(move |c| {
            let mut sites: HashMap<PatientId, SiteId> = HashMap::new();
            let mut courses: HashMap<CourseId, PatientId> = HashMap::new();
            let mut summary = ImportSummary::default();
            let mut alert_rows = alerts_rows();
            let mut audits = Vec::with_capacity(prepared.len());
            for (i, (patient, course, r, alerts)) in prepared.into_iter().enumerate() {
                let site = match sites.get(&patient) {
                    Some(s) => *s,
                    None => {
                        let p = crate::patients::get_patient(c, &actor, patient)?;
                        sites.insert(patient, p.site_id);
                        p.site_id
                    }
                };
                if let Some(cid) = course {
                    let owner = match courses.get(&cid) {
                        Some(o) => *o,
                        None => {
                            let o = crate::courses::get_course(c, &actor, cid)?.patient_id;
                            courses.insert(cid, o);
                            o
                        }
                    };
                    if owner != patient {
                        return Err(DomainError::field(format!("responses[{i}].course_id"), "that course belongs to another patient").into());
                    }
                }
                let id = c.insert(
                    "INSERT INTO questionnaire_responses (patient_id, site_id, course_id, session_id, instrument, answers, total, severity, score, completed_at, completed_by)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                    &response_values(r, patient, site, course, None),
                )?;
                summary.responses += 1;
                let mut fields = vec!["instrument", "answers", "completed_at"];
                if course.is_some() {
                    fields.push("course_id");
                }
                if !alerts.is_empty() {
                    fields.push("alerts");
                    if alerts.iter().any(|a| a.ack.is_some()) {
                        fields.push("alert_acknowledgements");
                    }
                }
                for a in alerts {
                    summary.alerts += 1;
                    summary.open_alerts += usize::from(push_alert(&mut alert_rows, site, patient, None, a));
                }
                audits.push((id, patient, site, fields));
            }
            alert_rows.write(c)?;
            for (id, patient, site, fields) in audits {
                audit::record(c, &actor, now, Entry {
                    action: Action::Create, object_type: "response_import", object_id: Some(id.to_string()), patient_id: Some(patient),
                    site_id: Some(site), fields: &fields,
                })?;
            }
            Ok(summary)
        })
        .await
    }
}

/// The batch's look-ups (each course, site and chair read once) and the rows it writes at
/// the end, many to a statement.
struct SessionWriter {
    site_rules: HashMap<SiteId, std::sync::Arc<SafetyRules>>,
    courses: HashMap<CourseId, CourseFacts>,
    chairs: HashMap<(ChairId, SiteId), bool>,
    summary: ImportSummary,
    vitals: Rows,
    observations: Rows,
    responses: Rows,
    alerts: Rows,
    aes: Rows,
    audits: Vec<(SessionId, PatientId, SiteId, Vec<&'static str>)>,
}

impl SessionWriter {
    fn new(sessions: usize) -> Self {
        Self {
            site_rules: HashMap::new(),
            courses: HashMap::new(),
            chairs: HashMap::new(),
            summary: ImportSummary::default(),
            vitals: Rows::new(
                "INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source)",
                9,
            ),
            observations: Rows::new("INSERT INTO observations (session_id, patient_id, kind, observed_at, body)", 5),
            responses: responses_rows(),
            alerts: alerts_rows(),
            aes: Rows::new(
                "INSERT INTO adverse_events (patient_id, session_id, description, severity, serious, action_taken, outcome, onset_at, recorded_at)",
                9,
            ),
            audits: Vec::with_capacity(sessions),
        }
    }

    /// The course, with how many sessions it has and its latest, read once per batch.
    fn course<'a>(
        courses: &'a mut HashMap<CourseId, CourseFacts>,
        c: &mut dyn Conn,
        actor: &Actor,
        course_id: CourseId,
    ) -> Result<&'a mut CourseFacts> {
        Ok(match courses.entry(course_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let course = crate::courses::get_course(c, actor, course_id)?;
                let r = c.query_opt(
                    "SELECT count(*) AS n, max(scheduled_for) AS last_scheduled_for FROM sessions WHERE course_id = $1",
                    params![course_id.0],
                )?;
                let (sessions, last_scheduled) = match r {
                    Some(r) => (r.i64("n")?, r.opt_i64("last_scheduled_for")?),
                    None => (0, None),
                };
                e.insert(CourseFacts { course, sessions, last_scheduled })
            }
        })
    }

    /// The site's session-safety rules, read once per batch.
    fn rules(&mut self, c: &mut dyn Conn, site: SiteId) -> Result<std::sync::Arc<SafetyRules>> {
        if let Some(r) = self.site_rules.get(&site) {
            return Ok(r.clone());
        }
        let r = crate::rules::safety_rules(c, site)?;
        self.site_rules.insert(site, r.clone());
        Ok(r)
    }

    /// Refuses a chair that is not the site's.
    fn check_chair(&mut self, c: &mut dyn Conn, i: usize, chair: ChairId, site: SiteId) -> Result<()> {
        let ok = match self.chairs.get(&(chair, site)) {
            Some(ok) => *ok,
            None => {
                let ok = c
                    .query_opt("SELECT id FROM chairs WHERE id = $1 AND site_id = $2", params![chair.0, site.0])?
                    .is_some();
                self.chairs.insert((chair, site), ok);
                ok
            }
        };
        if !ok {
            return Err(DomainError::field(
                format!("sessions[{i}].chair_id"),
                format!("chair {chair} is not a chair of this patient's site"),
            )
            .into());
        }
        Ok(())
    }

    /// Queues the session's vitals, observations, questionnaires, alerts and adverse events,
    /// and names what was recorded for its audit entry.
    #[allow(clippy::too_many_arguments, reason = "one session's parts, named where they are queued")]
    fn queue_parts(
        &mut self,
        sid: SessionId,
        patient: PatientId,
        site: SiteId,
        s: &HistoricalSession,
        responses: Vec<PreparedResponse>,
        alerts_raised: Vec<PreparedAlert>,
        session_end: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Vec<&'static str> {
        let mut fields: Vec<&'static str> = vec!["session", "lifecycle"];
        if !s.vitals.is_empty() {
            fields.push("vitals");
        }
        for v in &s.vitals {
            self.vitals.push([
                sid.0.into(),
                patient.0.into(),
                ms(v.taken_at).into(),
                v.vitals.systolic_mmhg.map(|x| x.0).into(),
                v.vitals.diastolic_mmhg.map(|x| x.0).into(),
                v.vitals.heart_rate_bpm.map(|x| x.0).into(),
                v.vitals.spo2_pct.map(|x| x.0).into(),
                v.vitals.resp_rate_per_min.map(|x| x.0).into(),
                v.source.as_str().into(),
            ]);
        }
        self.summary.vitals += s.vitals.len();
        if !s.observations.is_empty() {
            fields.push("observations");
        }
        for o in &s.observations {
            self.observations.push([
                sid.0.into(),
                patient.0.into(),
                o.body.kind().into(),
                ms(o.observed_at).into(),
                json(&o.body).into(),
            ]);
        }
        self.summary.observations += s.observations.len();
        if !responses.is_empty() {
            fields.push("questionnaire_responses");
        }
        self.summary.responses += responses.len();
        for r in responses {
            self.responses.push(response_values(r, patient, site, Some(s.course_id), Some(sid)));
        }
        if !alerts_raised.is_empty() {
            fields.push("alerts");
            if alerts_raised.iter().any(|a| a.ack.is_some()) {
                fields.push("alert_acknowledgements");
            }
        }
        for a in alerts_raised {
            self.summary.alerts += 1;
            self.summary.open_alerts += usize::from(push_alert(&mut self.alerts, site, patient, Some(sid), a));
        }
        if !s.adverse_events.is_empty() {
            fields.push("adverse_events");
        }
        for ae in &s.adverse_events {
            // Recorded when the session closed, or at onset if that came later.
            let recorded_at = ae.onset_at.max(session_end).min(now.max(ae.onset_at));
            self.aes.push([
                patient.0.into(),
                sid.0.into(),
                ae.description.trim().into(),
                ae.severity.as_str().into(),
                ae.serious.into(),
                ae.action_taken.trim().into(),
                ae.outcome.trim().into(),
                ms(ae.onset_at).into(),
                ms(recorded_at).into(),
            ]);
        }
        self.summary.adverse_events += s.adverse_events.len();
        if s.note.is_some() {
            fields.push("note");
        }
        fields
    }

    /// Writes the queued rows, then one audit entry per session.
    fn finish(self, c: &mut dyn Conn, actor: &Actor, now: OffsetDateTime) -> Result<ImportSummary> {
        self.vitals.write(c)?;
        self.observations.write(c)?;
        self.responses.write(c)?;
        self.alerts.write(c)?;
        self.aes.write(c)?;
        // Last, so PostgreSQL holds the audit chain's lock only for these statements and the commit.
        for (sid, patient, site, fields) in self.audits {
            audit::record(
                c,
                actor,
                now,
                Entry {
                    action: Action::Create,
                    object_type: "session_import",
                    object_id: Some(sid.to_string()),
                    patient_id: Some(patient),
                    site_id: Some(site),
                    fields: &fields,
                },
            )?;
        }
        Ok(self.summary)
    }
}

/// Replays a session's lifecycle through the domain's state machine. History already lived
/// is replayed through the state machine and the discharge timing, not re-judged against
/// today's gates (the record was checked by the clinic's own system at the time).
fn replay(
    i: usize,
    s: &HistoricalSession,
    course: &keta_domain::course::Course,
    sequence: i64,
    rules: &SafetyRules,
    alerts_raised: &[PreparedAlert],
) -> Result<TreatmentSession> {
    let route = course.route;
    let mut session = TreatmentSession {
        id: SessionId(0),
        course_id: s.course_id,
        patient_id: course.patient_id,
        site_id: course.site_id,
        chair_id: s.chair_id,
        route,
        sequence: u32::try_from(sequence)
            .map_err(|_| StoreError::Conflict("too many sessions in one course".into()))?,
        scheduled_for: s.scheduled_for,
        state: SessionState::Scheduled,
        checked_in_at: None,
        pre_dose_checks_at: None,
        dose_started_at: None,
        monitoring_started_at: None,
        discharged_at: None,
        stopped_at: None,
        stop_reason: None,
        planned_dose_mg: s.planned_dose_mg,
        note: s.note.clone(),
    };
    let minimum_monitoring = rules.minimum_monitoring(route);
    for (j, step) in s.steps.iter().enumerate() {
        let open_alerts = alerts_raised
            .iter()
            .filter(|a| a.raised_at <= step.at && a.ack.as_ref().is_none_or(|(at, _, _)| *at > step.at))
            .count();
        session
            .apply(
                &step.action,
                step.at,
                &StepContext::replay(DischargeContext { minimum_monitoring, open_alerts, record: None }),
            )
            .map_err(|e| lifecycle_error(i, j, e))?;
    }
    Ok(session)
}

fn write_sessions(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    prepared: Vec<PreparedSession>,
) -> Result<ImportSummary> {
    let mut w = SessionWriter::new(prepared.len());
    for (i, mut p) in prepared.into_iter().enumerate() {
        let site = SessionWriter::course(&mut w.courses, c, actor, p.input.course_id)?.course.site_id;
        let rules = w.rules(c, site)?;
        let alerts_raised = evaluate(i, &mut p, &rules)?;
        let s = p.input;
        if let Some(chair) = s.chair_id {
            w.check_chair(c, i, chair, site)?;
        }
        let facts = SessionWriter::course(&mut w.courses, c, actor, s.course_id)?;
        let (patient, route) = (facts.course.patient_id, facts.course.route);
        let scheduled = ms(s.scheduled_for);
        if facts.last_scheduled.is_some_and(|last| scheduled < last) {
            return Err(DomainError::field(
                format!("sessions[{i}].scheduled_for"),
                format!("course {} already has a later session; import a course's sessions in time order", s.course_id),
            )
            .into());
        }
        facts.last_scheduled = Some(scheduled);
        facts.sessions += 1;
        let sequence = facts.sessions;
        let session = replay(i, &s, &facts.course, sequence, &rules, &alerts_raised)?;
        debug_assert_eq!(session.dose_started_at, p.dose_started_at);

        let sid = SessionId(c.insert(
            "INSERT INTO sessions (course_id, patient_id, site_id, chair_id, route, sequence, scheduled_for, state, checked_in_at, pre_dose_checks_at,
             dose_started_at, monitoring_started_at, discharged_at, stopped_at, stop_reason, planned_dose_mg, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id",
            params![
                s.course_id.0, patient.0, site.0, s.chair_id.map(|c| c.0), route.as_str(), sequence, scheduled, session.state.as_str(),
                opt_ms(session.checked_in_at), opt_ms(session.pre_dose_checks_at), opt_ms(session.dose_started_at),
                opt_ms(session.monitoring_started_at), opt_ms(session.discharged_at), opt_ms(session.stopped_at), session.stop_reason.as_deref(),
                s.planned_dose_mg.map(|d| d.0), s.note.as_deref()
            ],
        )?);
        w.summary.sessions.push(sid);
        let session_end = session.discharged_at.or(session.stopped_at).unwrap_or(now);
        let mut fields = w.queue_parts(sid, patient, site, &s, p.responses, alerts_raised, session_end, now);
        if let Some(status) = s.course_status_after {
            c.execute("UPDATE courses SET status = $1 WHERE id = $2", params![status.as_str(), s.course_id.0])?;
            fields.push("course_status");
        }
        w.audits.push((sid, patient, site, fields));
    }
    w.finish(c, actor, now)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keta_domain::access::Role;
    use keta_domain::course::{NewCourse, Phase, Route};
    use keta_domain::ids::ChairId;
    use keta_domain::patient::{Indication, NewPatient, Sex};
    use keta_domain::records::AlertLevel;
    use keta_domain::session::AeSeverity;
    use keta_domain::site::NewSite;
    use keta_domain::units::{BeatsPerMinute, Mmhg, Percent};
    use time::macros::{date, datetime};

    use super::*;
    use crate::SiteScope;
    use crate::alerts::AlertQuery;

    const T0: OffsetDateTime = datetime!(2026-11-20 15:00 UTC);
    const NOW: OffsetDateTime = datetime!(2026-11-27 16:00 UTC);

    fn at(min: i64) -> OffsetDateTime {
        T0 + Duration::minutes(min)
    }

    /// A fresh database on SQLite, and on PostgreSQL when KETA_TEST_POSTGRES_URL is set;
    /// removed when dropped.
    struct Db {
        store: Store,
        cleanup: Option<Box<dyn FnOnce() + Send>>,
    }

    impl Drop for Db {
        fn drop(&mut self) {
            if let Some(f) = self.cleanup.take() {
                let _ = std::thread::spawn(f).join();
            }
        }
    }

    async fn databases() -> Vec<Db> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = format!("keta_import_{}_{nanos:x}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let clock: crate::Clock = Arc::new(|| NOW);
        let store = Store::open_with_clock(&format!("sqlite://{}", dir.join("t.db").display()), clock.clone())
            .await
            .expect("sqlite");
        let mut out = vec![Db { store, cleanup: Some(Box::new(move || drop(std::fs::remove_dir_all(dir)))) }];
        if let Some(server) = std::env::var("KETA_TEST_POSTGRES_URL").ok().filter(|s| !s.trim().is_empty()) {
            let (admin, db) = (server.clone(), name.clone());
            tokio::task::spawn_blocking(move || {
                let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
                c.batch_execute(&format!("CREATE DATABASE {db}")).expect("create database");
            })
            .await
            .expect("create");
            let base = server.split('?').next().unwrap_or(&server);
            let base =
                &base[..base.rfind('/').filter(|&i| i > base.find("://").map_or(0, |j| j + 2)).unwrap_or(base.len())];
            let store = Store::open_with_clock(&format!("{base}/{name}"), clock).await.expect("postgres");
            out.push(Db {
                store,
                cleanup: Some(Box::new(move || {
                    if let Ok(mut c) = postgres::Client::connect(&server, postgres::NoTls) {
                        let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                    }
                })),
            });
        }
        out
    }

    async fn setup(store: &Store) -> (CourseId, PatientId, ChairId) {
        let sys = Actor::system();
        let site = store
            .create_site(
                &sys,
                NewSite {
                    code: "T".into(),
                    name: "Test".into(),
                    time_zone: "America/Chicago".into(),
                    crisis_line: "988".into(),
                },
                vec!["Chair 1".into()],
            )
            .await
            .unwrap();
        let chair = store.list_chairs(&sys, site.id).await.unwrap()[0].id;
        let p = store
            .create_patient(
                &sys,
                NewPatient {
                    site_id: site.id,
                    mrn: "T-1".into(),
                    given_name: "Ada".into(),
                    family_name: "Test".into(),
                    date_of_birth: date!(1980 - 01 - 01),
                    sex: Sex::Female,
                    phone: None,
                    email: None,
                    indication: Indication::Depression,
                    diagnoses: vec![],
                    referring_clinician: None,
                },
            )
            .await
            .unwrap();
        let course = store
            .create_course(
                &sys,
                p.id,
                NewCourse {
                    route: Route::IvRacemic,
                    phase: Phase::Induction,
                    indication: None,
                    planned_sessions: 6,
                    start_date: date!(2026 - 11 - 20),
                    protocol: None,
                },
            )
            .await
            .unwrap();
        (course.id, p.id, chair)
    }

    fn bp(sys: f64, dia: f64) -> VitalSigns {
        VitalSigns {
            systolic_mmhg: Some(Mmhg(sys)),
            diastolic_mmhg: Some(Mmhg(dia)),
            heart_rate_bpm: Some(BeatsPerMinute(72.0)),
            spo2_pct: Some(Percent(98.0)),
            resp_rate_per_min: None,
        }
    }

    /// An IV session: pre-dose BP above the guide, severe BP with a ≥40 rise at the end of the
    /// infusion, a positive PHQ-9 item 9 before check-in; all acknowledged 5 minutes later.
    fn iv_session(course: CourseId, chair: ChairId) -> HistoricalSession {
        let mut s = HistoricalSession::new(course, at(0));
        s.chair_id = Some(chair);
        s.planned_dose_mg = Some(Milligrams(35.0));
        s.steps = vec![
            SessionStep::new(SessionAction::CheckIn, at(0)),
            SessionStep::new(SessionAction::StartPreDoseChecks, at(5)),
            SessionStep::new(SessionAction::StartDose, at(15)),
            SessionStep::new(SessionAction::EndDose, at(55)),
            SessionStep::new(SessionAction::Discharge, at(140)),
        ];
        let v = |m: i64, sys: f64, dia: f64| HistoricalVitals {
            taken_at: at(m),
            vitals: bp(sys, dia),
            source: VitalsSource::Monitor,
        };
        // Given out of order on purpose: the baseline is the earliest reading, not the first given.
        s.vitals = vec![v(55, 192.0, 112.0), v(10, 150.0, 95.0), v(25, 160.0, 100.0), v(130, 130.0, 82.0)];
        s.observations = vec![
            HistoricalObservation { observed_at: at(30), body: ObservationBody::Moaas { score: 4 } },
            HistoricalObservation {
                observed_at: at(40),
                body: ObservationBody::SideEffect { symptom: "nausea".into(), note: None },
            },
        ];
        s.responses = vec![HistoricalResponse {
            instrument: "phq9".into(),
            answers: vec![Some(2), Some(2), Some(1), Some(2), Some(1), Some(1), Some(1), Some(0), Some(1)],
            completed_at: at(-10),
            completed_by: CompletedBy::Patient,
        }];
        s.adverse_events = vec![NewAdverseEvent {
            description: "Headache".into(),
            severity: AeSeverity::Mild,
            serious: false,
            action_taken: "none".into(),
            outcome: "resolved".into(),
            onset_at: at(100),
        }];
        s.acknowledge_alerts =
            Some(AlertAcknowledgement { by: "rn.test".into(), after: Duration::minutes(5), note: Some("seen".into()) });
        s.course_status_after = Some(CourseStatus::Completed);
        s
    }

    async fn count(store: &Store, table: &'static str) -> i64 {
        store
            .read(move |c| c.query_opt(&format!("SELECT count(*) AS n FROM {table}"), &[])?.expect("row").i64("n"))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_session_keeps_its_own_times_and_raises_what_live_recording_would() {
        for db in databases().await {
            let store = &db.store;
            let (course, patient, chair) = setup(store).await;
            let sys = Actor::system();
            let summary = store.import_history(&sys, vec![iv_session(course, chair)]).await.unwrap();
            assert_eq!((summary.sessions.len(), summary.vitals, summary.observations, summary.responses), (1, 4, 2, 1));
            assert_eq!((summary.alerts, summary.open_alerts, summary.adverse_events), (4, 0, 1));

            let s = store.get_session(&sys, summary.sessions[0]).await.unwrap();
            assert_eq!(s.state, SessionState::Discharged);
            assert_eq!(
                (s.checked_in_at, s.dose_started_at, s.discharged_at),
                (Some(at(0)), Some(at(15)), Some(at(140)))
            );
            assert_eq!((s.sequence, s.chair_id), (1, Some(chair)));
            let vitals = store.list_vitals(&sys, s.id).await.unwrap();
            assert_eq!(vitals.iter().map(|v| v.taken_at).collect::<Vec<_>>(), [at(10), at(25), at(55), at(130)]);

            let mut alerts = store
                .list_alerts(&sys, AlertQuery { patient_id: Some(patient), limit: 100, ..Default::default() })
                .await
                .unwrap();
            alerts.sort_by(|a, b| (a.raised_at, &a.rule).cmp(&(b.raised_at, &b.rule)));
            let got: Vec<(&str, AlertLevel, OffsetDateTime, Option<OffsetDateTime>)> =
                alerts.iter().map(|a| (a.rule.as_str(), a.level, a.raised_at, a.acknowledged_at)).collect();
            assert_eq!(
                got,
                [
                    ("phq9_phq9_item9", AlertLevel::Urgent, at(-10), Some(at(-5))),
                    ("pre_dose_bp_above_label_guide", AlertLevel::Warning, at(10), Some(at(15))),
                    ("bp_rise_from_baseline", AlertLevel::Warning, at(55), Some(at(60))),
                    ("severe_hypertension", AlertLevel::Urgent, at(55), Some(at(60))),
                ]
            );
            assert!(
                alerts.iter().all(|a| a.acknowledged_by.as_deref() == Some("rn.test") && a.session_id == Some(s.id))
            );

            let responses = store.list_responses(&sys, patient, None).await.unwrap();
            assert_eq!(
                (responses[0].completed_at, responses[0].course_id, responses[0].session_id),
                (at(-10), Some(course), Some(s.id))
            );
            assert_eq!(responses[0].score.total, Some(11));
            assert_eq!(store.get_course(&sys, course).await.unwrap().status, CourseStatus::Completed);

            let q = crate::audit::AuditQuery {
                patient_id: Some(patient),
                descending: true,
                limit: 50,
                ..Default::default()
            };
            let audit = store.read(move |c| crate::audit::search(c, &q)).await.unwrap();
            let imports: Vec<_> = audit.iter().filter(|a| a.object_type == "session_import").collect();
            assert_eq!(imports.len(), 1, "one audit entry per imported session");
            assert_eq!(imports[0].object_id, Some(s.id.to_string()));
            assert_eq!(imports[0].occurred_at, NOW, "the audit trail records when the import ran");
            assert_eq!(
                imports[0].fields,
                r#"["session","lifecycle","vitals","observations","questionnaire_responses","alerts","alert_acknowledgements","adverse_events","course_status"]"#
            );
            assert!(store.verify_audit_chain().await.unwrap().1.is_none());

            // Next sessions continue the sequence; an earlier one is refused.
            let mut next = iv_session(course, chair);
            next.course_status_after = None;
            let later = |m: i64| m + 2 * 24 * 60;
            next.scheduled_for = at(later(0));
            for st in &mut next.steps {
                st.at += Duration::days(2);
            }
            for v in &mut next.vitals {
                v.taken_at += Duration::days(2);
            }
            for o in &mut next.observations {
                o.observed_at += Duration::days(2);
            }
            for r in &mut next.responses {
                r.completed_at += Duration::days(2);
            }
            let id = store.import_history(&sys, vec![next]).await.unwrap().sessions[0];
            assert_eq!(store.get_session(&sys, id).await.unwrap().sequence, 2);
            let err = store.import_history(&sys, vec![iv_session(course, chair)]).await.unwrap_err();
            assert!(err.to_string().contains("sessions[0].scheduled_for"), "{err}");
        }
    }

    #[tokio::test]
    async fn bad_input_is_named_and_nothing_is_written() {
        for db in databases().await {
            let store = &db.store;
            let (course, _, chair) = setup(store).await;
            let sys = Actor::system();
            let (sessions, audit) = (count(store, "sessions").await, count(store, "audit_log").await);
            let expect_err = |r: Result<ImportSummary>, needle: &str| {
                let e = r.unwrap_err();
                assert!(e.to_string().contains(needle), "expected '{needle}' in: {e}");
            };

            let mut bad = iv_session(course, chair);
            bad.vitals[1].vitals.systolic_mmhg = Some(Mmhg(1400.0));
            expect_err(
                store.import_history(&sys, vec![iv_session(course, chair), bad]).await,
                "sessions[1].vitals[1].systolic_mmhg",
            );

            // Discharged before the route's minimum monitoring time.
            let mut early = iv_session(course, chair);
            early.steps[4].at = at(100);
            early.vitals.pop(); // the 130-min reading would fall after this discharge
            expect_err(store.import_history(&sys, vec![early]).await, "sessions[0].steps[4]");

            // Alerts left open: the replay refuses the discharge, as the live API would.
            let mut open = iv_session(course, chair);
            open.acknowledge_alerts = None;
            expect_err(store.import_history(&sys, vec![open]).await, "alert(s) have not been acknowledged");

            // Skipped step, reading outside the session, unknown symptom, future time.
            let mut skipped = iv_session(course, chair);
            skipped.steps.remove(1);
            expect_err(store.import_history(&sys, vec![skipped]).await, "sessions[0].steps[1]");
            let mut outside = iv_session(course, chair);
            outside.vitals[0].taken_at = at(200);
            expect_err(store.import_history(&sys, vec![outside]).await, "sessions[0].vitals[0].taken_at");
            let mut symptom = iv_session(course, chair);
            symptom.observations[1].body = ObservationBody::SideEffect { symptom: "hiccups".into(), note: None };
            expect_err(store.import_history(&sys, vec![symptom]).await, "sessions[0].observations[1].symptom");
            let mut future = iv_session(course, chair);
            future.steps[4].at = NOW + Duration::hours(1);
            expect_err(store.import_history(&sys, vec![future]).await, "cannot be in the future");

            assert_eq!(
                (count(store, "sessions").await, count(store, "audit_log").await),
                (sessions, audit),
                "nothing written"
            );
            assert_eq!(
                count(store, "vitals").await
                    + count(store, "alerts").await
                    + count(store, "questionnaire_responses").await,
                0
            );

            // A nurse may record in sessions but not import history.
            let nurse = Actor::staff("rn.test", Role::Nurse, SiteScope::All);
            assert!(matches!(
                store.import_history(&nurse, vec![iv_session(course, chair)]).await,
                Err(StoreError::Forbidden(_))
            ));
        }
    }

    #[tokio::test]
    async fn an_in_progress_session_and_check_ins_keep_open_alerts_open() {
        for db in databases().await {
            let store = &db.store;
            let (course, patient, chair) = setup(store).await;
            let sys = Actor::system();
            let mut live = iv_session(course, chair);
            live.steps.truncate(4); // still in monitoring
            live.acknowledge_alerts = None;
            live.course_status_after = None;
            let summary = store.import_history(&sys, vec![live]).await.unwrap();
            assert_eq!((summary.alerts, summary.open_alerts), (4, 4));
            assert_eq!(store.get_session(&sys, summary.sessions[0]).await.unwrap().state, SessionState::Monitoring);

            let check_in = |completed_at: OffsetDateTime, ack: Option<AlertAcknowledgement>| HistoricalCheckIn {
                patient_id: patient,
                course_id: Some(course),
                response: HistoricalResponse {
                    instrument: "phq9".into(),
                    answers: vec![Some(1), Some(1), Some(1), Some(1), Some(1), Some(1), Some(1), Some(1), Some(2)],
                    completed_at,
                    completed_by: CompletedBy::Patient,
                },
                acknowledge_alerts: ack,
            };
            let ack = AlertAcknowledgement { by: "dr.test".into(), after: Duration::hours(3), note: None };
            let s = store
                .import_responses(
                    &sys,
                    vec![
                        check_in(at(-3000), Some(ack)),
                        check_in(
                            NOW - Duration::hours(1),
                            Some(AlertAcknowledgement { by: "dr.test".into(), after: Duration::hours(3), note: None }),
                        ),
                        check_in(at(3000), None),
                    ],
                )
                .await
                .unwrap();
            assert_eq!((s.responses, s.alerts, s.open_alerts), (3, 3, 1));
            let alerts = store
                .list_alerts(&sys, AlertQuery { patient_id: Some(patient), limit: 100, ..Default::default() })
                .await
                .unwrap();
            let item9: Vec<_> =
                alerts.iter().filter(|a| a.rule == "phq9_phq9_item9" && a.session_id.is_none()).collect();
            assert_eq!(item9.len(), 3);
            // Acknowledged three hours later, but never in the future.
            assert!(item9.iter().any(|a| a.raised_at == at(-3000) && a.acknowledged_at == Some(at(-3000 + 180))));
            assert!(item9.iter().any(|a| a.raised_at == NOW - Duration::hours(1) && a.acknowledged_at == Some(NOW)));
            assert!(
                item9
                    .iter()
                    .any(|a| a.raised_at == at(3000) && a.acknowledged_at.is_none() && a.level == AlertLevel::Urgent)
            );
            let err = store.import_responses(&sys, vec![check_in(NOW + Duration::hours(1), None)]).await.unwrap_err();
            assert!(err.to_string().contains("responses[0].completed_at"), "{err}");
            assert_eq!(count(store, "questionnaire_responses").await, 4, "1 from the session + 3 check-ins");
        }
    }
}
