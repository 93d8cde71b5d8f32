//! Treatment sessions: scheduling, the lifecycle in the chair, vitals, observations,
//! adverse events, and the alerts the safety rules raise from them. Each recording
//! evaluates the rules and stores the alerts in the same transaction as the record.

use std::sync::LazyLock;

use time::OffsetDateTime;

use keta_domain::DomainError;
use keta_domain::alerts::{AlertFiring, DosePhase};
use keta_domain::course::Route;
use keta_domain::discharge::{Blocker, DischargeRecord, DischargeRules, DischargeSettings};
use keta_domain::ids::AlertId;
use keta_domain::ids::{ChairId, CourseId, PatientId, RecordId, SessionId, SiteId};
use keta_domain::records::{Alert, ObservationRecord, VitalsRecord, VitalsSource};
use keta_domain::session::{
    AdverseEvent, DecisionKind, DischargeContext, NewAdverseEvent, NewDecision, NewSession, ObservationBody,
    SessionAction, SessionDay, SessionDecision, SessionState, StepContext, TreatmentSession,
};
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Milligrams, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::courses::get_course;
use crate::error::{Result, StoreError};
use crate::monitors::NOT_STRUCK;
use crate::time_codec::{from_json, from_ms, json, ms, opt_from_ms};
use crate::vitals_memory::Seen;
use crate::{Actor, Store, params};

pub(crate) const COLS: &str = "id, course_id, patient_id, site_id, chair_id, route, sequence, scheduled_for, state, checked_in_at, pre_dose_checks_at, \
     dose_started_at, monitoring_started_at, discharged_at, stopped_at, stop_reason, planned_dose_mg, note";

pub(crate) fn session_from(r: &Row) -> Result<TreatmentSession> {
    let bad = |f: &str| StoreError::Corrupt(format!("session {f}"));
    Ok(TreatmentSession {
        id: SessionId(r.i64("id")?),
        course_id: CourseId(r.i64("course_id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        site_id: SiteId(r.i64("site_id")?),
        chair_id: r.opt_i64("chair_id")?.map(ChairId),
        route: Route::parse(&r.text("route")?).ok_or_else(|| bad("route"))?,
        sequence: u32::try_from(r.i64("sequence")?).map_err(|_| bad("sequence"))?,
        scheduled_for: from_ms(r.i64("scheduled_for")?)?,
        state: SessionState::parse(&r.text("state")?).ok_or_else(|| bad("state"))?,
        checked_in_at: opt_from_ms(r.opt_i64("checked_in_at")?)?,
        pre_dose_checks_at: opt_from_ms(r.opt_i64("pre_dose_checks_at")?)?,
        dose_started_at: opt_from_ms(r.opt_i64("dose_started_at")?)?,
        monitoring_started_at: opt_from_ms(r.opt_i64("monitoring_started_at")?)?,
        discharged_at: opt_from_ms(r.opt_i64("discharged_at")?)?,
        stopped_at: opt_from_ms(r.opt_i64("stopped_at")?)?,
        stop_reason: r.opt_text("stop_reason")?,
        planned_dose_mg: r.opt_f64("planned_dose_mg")?.map(Milligrams),
        note: r.opt_text("note")?,
    })
}

pub(crate) fn get_session(c: &mut dyn Conn, actor: &Actor, id: SessionId) -> Result<TreatmentSession> {
    let r = c
        .query_opt(&format!("SELECT {COLS} FROM sessions WHERE id = $1"), params![id.0])?
        .ok_or_else(|| StoreError::NotFound(format!("session {id}")))?;
    let s = session_from(&r)?;
    if !actor.may_see(s.site_id, s.patient_id) {
        return Err(StoreError::NotFound(format!("session {id}")));
    }
    Ok(s)
}

/// Loads a session and holds its row until the transaction ends, so a write that judges the
/// session (its state, its note, its open alerts) and then changes it cannot interleave with
/// another such write on PostgreSQL. Every session-scoped write starts here.
pub(crate) fn get_session_for_update(c: &mut dyn Conn, actor: &Actor, id: SessionId) -> Result<TreatmentSession> {
    let r = c
        .query_opt(&format!("SELECT {COLS} FROM sessions WHERE id = $1 FOR UPDATE"), params![id.0])?
        .ok_or_else(|| StoreError::NotFound(format!("session {id}")))?;
    let s = session_from(&r)?;
    if !actor.may_see(s.site_id, s.patient_id) {
        return Err(StoreError::NotFound(format!("session {id}")));
    }
    Ok(s)
}

/// Holds the patient's row until the transaction ends: the lock behind the gate "no dose
/// while an urgent alert for the patient is open". Raising an alert takes it too, so the
/// gate never reads the alerts while one is being raised.
pub(crate) fn lock_patient(c: &mut dyn Conn, patient: PatientId) -> Result<()> {
    c.query_opt("SELECT id FROM patients WHERE id = $1 FOR UPDATE", params![patient.0])?
        .ok_or_else(|| StoreError::NotFound(format!("patient {patient}")))?;
    Ok(())
}

pub(crate) fn sessions_for_patient(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<TreatmentSession>> {
    c.query(
        &format!("SELECT {COLS} FROM sessions WHERE patient_id = $1 ORDER BY scheduled_for, id"),
        params![patient.0],
    )?
    .iter()
    .map(session_from)
    .collect()
}

fn site_sessions(
    c: &mut dyn Conn,
    site: SiteId,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<TreatmentSession>> {
    c.query(
        &format!("SELECT {COLS} FROM sessions WHERE site_id = $1 AND scheduled_for >= $2 AND scheduled_for < $3 ORDER BY scheduled_for, id"),
        params![site.0, ms(from), ms(to)],
    )?
    .iter()
    .map(session_from)
    .collect()
}

fn open_alert_count(c: &mut dyn Conn, session: SessionId) -> Result<usize> {
    let r = c.query_opt(
        "SELECT count(*) AS n FROM alerts WHERE session_id = $1 AND acknowledged_at IS NULL",
        params![session.0],
    )?;
    Ok(r.map(|r| r.i64("n")).transpose()?.unwrap_or(0) as usize)
}

pub(crate) fn vitals_from(r: &Row, dose_started: Option<OffsetDateTime>) -> Result<VitalsRecord> {
    let taken_at = from_ms(r.i64("taken_at")?)?;
    Ok(VitalsRecord {
        id: RecordId(r.i64("id")?),
        session_id: SessionId(r.i64("session_id")?),
        taken_at,
        minutes_since_dose: dose_started.map(|d| (taken_at - d).whole_minutes()),
        vitals: VitalSigns {
            systolic_mmhg: r.opt_f64("systolic_mmhg")?.map(Mmhg),
            diastolic_mmhg: r.opt_f64("diastolic_mmhg")?.map(Mmhg),
            heart_rate_bpm: r.opt_f64("heart_rate_bpm")?.map(BeatsPerMinute),
            spo2_pct: r.opt_f64("spo2_pct")?.map(Percent),
            resp_rate_per_min: r.opt_f64("resp_rate_per_min")?.map(BreathsPerMinute),
        },
        source: VitalsSource::parse(&r.text("source")?).ok_or_else(|| StoreError::Corrupt("vitals source".into()))?,
    })
}

/// The session's vitals that count: readings a nurse struck as a monitor's artefact are left
/// out (they are listed, marked, by `Store::device_readings`). Alerts, discharge, the board,
/// the REMS form and the API's vitals all read through here.
pub(crate) fn vitals_for(c: &mut dyn Conn, s: &TreatmentSession) -> Result<Vec<VitalsRecord>> {
    c.query(
        &format!(
            "SELECT {VITALS_COLS} FROM vitals v WHERE v.session_id = $1 AND {NOT_STRUCK} ORDER BY v.taken_at, v.id"
        ),
        params![s.id.0],
    )?
    .iter()
    .map(|r| vitals_from(r, s.dose_started_at))
    .collect()
}

pub(crate) fn observations_for(c: &mut dyn Conn, session: SessionId) -> Result<Vec<ObservationRecord>> {
    c.query(
        "SELECT id, session_id, observed_at, body FROM observations WHERE session_id = $1 ORDER BY observed_at, id",
        params![session.0],
    )?
    .iter()
    .map(|r| {
        Ok(ObservationRecord {
            id: RecordId(r.i64("id")?),
            session_id: SessionId(r.i64("session_id")?),
            observed_at: from_ms(r.i64("observed_at")?)?,
            body: from_json(&r.text("body")?)?,
        })
    })
    .collect()
}

pub(crate) fn ae_from(r: &Row) -> Result<AdverseEvent> {
    Ok(AdverseEvent {
        id: RecordId(r.i64("id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        session_id: r.opt_i64("session_id")?.map(SessionId),
        description: r.text("description")?,
        severity: keta_domain::session::AeSeverity::parse(&r.text("severity")?)
            .ok_or_else(|| StoreError::Corrupt("ae severity".into()))?,
        serious: r.bool("serious")?,
        action_taken: r.text("action_taken")?,
        outcome: r.text("outcome")?,
        onset_at: from_ms(r.i64("onset_at")?)?,
    })
}

pub const AE_COLS: &str = "id, patient_id, session_id, description, severity, serious, action_taken, outcome, onset_at";

/// Stores the firings as alerts and returns them.
pub(crate) fn raise(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    site: SiteId,
    patient: PatientId,
    session: Option<SessionId>,
    firings: Vec<AlertFiring>,
) -> Result<Vec<Alert>> {
    let mut out = Vec::with_capacity(firings.len());
    if !firings.is_empty() {
        lock_patient(c, patient)?;
    }
    for f in firings {
        let level = crate::alerts::level_of(&f);
        let id = c.insert(
            "INSERT INTO alerts (site_id, patient_id, session_id, rule, severity, message, source, raised_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            params![site.0, patient.0, session.map(|s| s.0), f.rule.as_str(), level.as_str(), f.message.as_str(), f.source.as_str(), ms(now)],
        )?;
        crate::stats::ALERTS_RAISED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        audit::record(
            c,
            actor,
            now,
            Entry {
                action: Action::Create,
                object_type: "alert",
                object_id: Some(id.to_string()),
                patient_id: Some(patient),
                site_id: Some(site),
                fields: &["rule", "severity", "message"],
            },
        )?;
        out.push(Alert {
            id: keta_domain::ids::AlertId(id),
            site_id: site,
            patient_id: patient,
            session_id: session,
            rule: f.rule,
            level,
            message: f.message,
            source: f.source,
            raised_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            acknowledgement_note: None,
        });
    }
    Ok(out)
}

/// How a reading is judged before it is kept (see [`insert_vitals`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Judging {
    /// A rule that already has an unacknowledged alert in the session does not raise another
    /// (a monitor sending every few seconds must not flood the board: the episode lasts until
    /// a nurse acknowledges its alert).
    pub once_per_episode: bool,
    /// A typed reading identical to the session's latest within the duplicate window
    /// (data/rules/discharge.toml, a product setting) is refused: a stale value re-entered is
    /// not a new reading.
    pub refuse_double_entry: bool,
    /// The write's answers go to the server's memory of the session
    /// ([`crate::vitals_memory`]), which needs the latest reading even without the check.
    pub remember: bool,
}

/// The columns of a vitals row for [`vitals_from`], from `vitals v`.
const VITALS_COLS: &str = "v.id AS id, v.session_id AS session_id, v.taken_at AS taken_at, v.systolic_mmhg AS systolic_mmhg, \
     v.diastolic_mmhg AS diastolic_mmhg, v.heart_rate_bpm AS heart_rate_bpm, v.spo2_pct AS spo2_pct, \
     v.resp_rate_per_min AS resp_rate_per_min, v.source AS source";

/// The vitals columns a new reading fills, in the order of [`reading_values`] after the
/// session and the patient.
pub(crate) const VITALS_INSERT: &str = "INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, \
     heart_rate_bpm, spo2_pct, resp_rate_per_min, source)";

/// The session's (`$1`) baseline: its first counted reading with a blood pressure (`vitals v`).
pub(crate) static BASELINE_OF_SESSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "FROM vitals v WHERE v.session_id = $1 AND v.systolic_mmhg IS NOT NULL AND {NOT_STRUCK} ORDER BY v.taken_at, v.id LIMIT 1"
    )
});

/// The session's (`$1`) latest counted reading (`vitals v`).
pub(crate) static LATEST_OF_SESSION: LazyLock<String> = LazyLock::new(|| {
    format!("FROM vitals v WHERE v.session_id = $1 AND {NOT_STRUCK} ORDER BY v.taken_at DESC, v.id DESC LIMIT 1")
});

/// The statements of [`insert_vitals`] that read, written once.
static LOCK_SQL: LazyLock<String> = LazyLock::new(|| format!("SELECT {COLS} FROM sessions WHERE id = $1 FOR UPDATE"));
static BASELINE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT (SELECT st.settings FROM sites st WHERE st.id = (SELECT s.site_id FROM sessions s WHERE s.id = $1)) AS site_settings,
                b.id AS id, b.session_id AS session_id, b.taken_at AS taken_at,
                b.systolic_mmhg AS systolic_mmhg, b.diastolic_mmhg AS diastolic_mmhg, b.heart_rate_bpm AS heart_rate_bpm, b.spo2_pct AS spo2_pct,
                b.resp_rate_per_min AS resp_rate_per_min, b.source AS source
         FROM (SELECT 1 AS one) AS here LEFT JOIN (SELECT {VITALS_COLS} {}) AS b ON 1 = 1",
        *BASELINE_OF_SESSION
    )
});
static LATEST_SQL: LazyLock<String> = LazyLock::new(|| format!("SELECT {VITALS_COLS} {}", *LATEST_OF_SESSION));
static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{VITALS_INSERT} SELECT s.id, s.patient_id, $2, $3, $4, $5, $6, $7, $8 FROM sessions s WHERE s.id = $1 RETURNING id"
    )
});

/// The audit entry of a stored reading.
pub(crate) fn vitals_entry(s: &TreatmentSession, object_id: Option<String>) -> Entry<'static> {
    Entry {
        action: Action::Create,
        object_type: "vitals",
        object_id,
        patient_id: Some(s.patient_id),
        site_id: Some(s.site_id),
        fields: &["systolic_mmhg", "diastolic_mmhg", "heart_rate_bpm", "spo2_pct", "resp_rate_per_min"],
    }
}

/// Stores one set of vitals in session `id`, which must be active and in the actor's scope,
/// evaluates the session's safety rules against it and the session's baseline, and raises the
/// alerts: the one path for typed readings and for readings streamed by a bedside monitor.
/// Returns, with the reading, what the write read of the session, the reading added (for
/// [`crate::vitals_memory`]).
///
/// Its statements go together, in one round trip where the backend allows
/// (`Conn::query_each`; docs/decisions/0004-concurrency.md, addendum on round trips): the
/// session's row locked and read, then (each statement taking its snapshot after the lock is
/// granted) the baseline (the session's first counted reading) with the site's settings, the
/// latest reading for the double-entry check, the rules with an open episode, and the insert,
/// which takes the patient from the session's row. The checks run on the answers; a refused
/// reading is rolled back with the rest of the write. The audit entry then travels with the
/// commit, so a reading that raises nothing costs two round trips.
pub(crate) fn insert_vitals(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    id: SessionId,
    reading: (VitalSigns, OffsetDateTime, VitalsSource),
    judging: Judging,
) -> Result<(Seen, RecordedVitals)> {
    let (vitals, taken_at, source) = reading;
    let session = params![id.0];
    let mut row = params![id.0].to_vec();
    row.extend(reading_values(&reading));
    let want_latest = judging.refuse_double_entry || judging.remember;
    let mut stmts: Vec<(&str, &[crate::conn::Value])> =
        vec![(LOCK_SQL.as_str(), session), (BASELINE_SQL.as_str(), session)];
    if want_latest {
        stmts.push((LATEST_SQL.as_str(), session));
    }
    if judging.once_per_episode {
        stmts.push((OPEN_EPISODES_SQL, session));
    }
    stmts.push((INSERT_SQL.as_str(), &row));
    let mut answers = c.query_each(&stmts)?.into_iter();
    let mut next =
        || answers.next().ok_or_else(|| StoreError::Backend("a statement of the vitals write had no answer".into()));
    let (held, here) = (next()?, next()?);
    let latest = if want_latest { next()? } else { Vec::new() };
    let open = if judging.once_per_episode { Some(next()?) } else { None };
    let inserted = next()?;
    let s = match held.first() {
        Some(r) => session_from(r)?,
        None => return Err(StoreError::NotFound(format!("session {id}"))),
    };
    if !actor.may_see(s.site_id, s.patient_id) {
        return Err(StoreError::NotFound(format!("session {id}")));
    }
    require_active(&s)?;
    let latest = latest.first().map(|r| vitals_from(r, s.dose_started_at)).transpose()?;
    if judging.refuse_double_entry {
        refuse_double_entry(latest.as_ref(), &vitals, taken_at)?;
    }
    let here = here.first().ok_or_else(|| StoreError::Corrupt("the baseline query returned no row".into()))?;
    let rid = inserted.first().ok_or_else(|| StoreError::Backend("insert returned no id".into()))?.i64("id")?;
    let settings =
        here.opt_text("site_settings")?.ok_or_else(|| StoreError::NotFound(format!("site {}", s.site_id)))?;
    let baseline = match here.opt_i64("id")? {
        Some(_) => Some(vitals_from(here, s.dose_started_at)?),
        None => None,
    };
    let rules = crate::rules::safety_rules_in(&settings)?;
    let firings = rules.evaluate_vitals(phase_at(&s, taken_at), &vitals, baseline.as_ref().map(|b| &b.vitals));
    audit::record(c, actor, now, vitals_entry(&s, Some(rid.to_string())))?;
    let firings = match open {
        Some(open) => open_episodes_removed(&open, firings)?,
        None => firings,
    };
    let alerts = raise(c, actor, now, s.site_id, s.patient_id, Some(s.id), firings)?;
    let record = vitals_record(&s, RecordId(rid), (vitals, taken_at, source));
    let seen = Seen { session: s, baseline, latest, settings: settings.into(), rules }.with(&record);
    Ok((seen, RecordedVitals { record, alerts }))
}

/// A reading's values in the order of the vitals columns that follow `session_id` and
/// `patient_id`: `taken_at`, the five signs, `source`.
pub(crate) fn reading_values(
    (vitals, taken_at, source): &(VitalSigns, OffsetDateTime, VitalsSource),
) -> Vec<crate::conn::Value> {
    params![
        ms(*taken_at),
        vitals.systolic_mmhg.map(|v| v.0),
        vitals.diastolic_mmhg.map(|v| v.0),
        vitals.heart_rate_bpm.map(|v| v.0),
        vitals.spo2_pct.map(|v| v.0),
        vitals.resp_rate_per_min.map(|v| v.0),
        source.as_str()
    ]
    .to_vec()
}

/// The phase of session `s` a reading taken at `taken_at` belongs to.
pub(crate) fn phase_at(s: &TreatmentSession, taken_at: OffsetDateTime) -> DosePhase {
    match s.dose_started_at {
        Some(d) if taken_at >= d => DosePhase::PostDose { minutes_since_dose: (taken_at - d).whole_minutes() },
        _ => DosePhase::PreDose,
    }
}

/// The record of a reading stored in session `s` as `id`.
pub(crate) fn vitals_record(
    s: &TreatmentSession,
    id: RecordId,
    (vitals, taken_at, source): (VitalSigns, OffsetDateTime, VitalsSource),
) -> VitalsRecord {
    VitalsRecord {
        id,
        session_id: s.id,
        taken_at,
        minutes_since_dose: s.dose_started_at.map(|d| (taken_at - d).whole_minutes()),
        vitals,
        source,
    }
}

/// Refuses a typed reading identical to the session's latest one (`previous`) within the
/// duplicate window; nothing of it is kept.
pub(crate) fn refuse_double_entry(
    previous: Option<&VitalsRecord>,
    vitals: &VitalSigns,
    taken_at: OffsetDateTime,
) -> Result<()> {
    let entry = DischargeRules::builtin();
    if !entry.looks_like_double_entry(previous.map(|p| (&p.vitals, p.taken_at)), vitals, taken_at) {
        return Ok(());
    }
    let ago = previous.map_or(0, |p| (taken_at - p.taken_at).whole_seconds());
    Err(DomainError::field(
        "confirm_duplicate",
        format!(
            "this reading is identical to the one recorded {ago} s ago; if it really is a new reading, confirm it (it is not stored until you do)"
        ),
    )
    .into())
}

/// The rules with an unacknowledged alert in the session (`$1`).
const OPEN_EPISODES_SQL: &str = "SELECT rule FROM alerts WHERE session_id = $1 AND acknowledged_at IS NULL";

/// The firings whose rule has no unacknowledged alert (`open`, rows of [`OPEN_EPISODES_SQL`]) yet.
fn open_episodes_removed(open: &[Row], firings: Vec<AlertFiring>) -> Result<Vec<AlertFiring>> {
    let open: Vec<String> = open.iter().map(|r| r.text("rule")).collect::<Result<_>>()?;
    Ok(firings.into_iter().filter(|f| !open.contains(&f.rule)).collect())
}

/// Site setting (in `sites.settings`): the discharge settings the medical director fills.
pub const DISCHARGE_SETTINGS_KEY: &str = "discharge";

pub(crate) fn discharge_settings(c: &mut dyn Conn, site: SiteId) -> Result<DischargeSettings> {
    let text = c
        .query_opt("SELECT settings FROM sites WHERE id = $1", params![site.0])?
        .ok_or_else(|| StoreError::NotFound(format!("site {site}")))?
        .text("settings")?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("site settings: {e}")))?;
    match v.get(DISCHARGE_SETTINGS_KEY) {
        None => Ok(DischargeSettings::default()),
        Some(d) => {
            serde_json::from_value(d.clone()).map_err(|e| StoreError::Corrupt(format!("discharge settings: {e}")))
        }
    }
}

/// Open urgent alerts for the patient that no dose override recorded in `session` covers.
fn uncovered_urgent_alerts(c: &mut dyn Conn, patient: PatientId, session: SessionId) -> Result<Vec<(AlertId, String)>> {
    c.query(
        "SELECT a.id, a.message FROM alerts a WHERE a.patient_id = $1 AND a.severity = 'urgent' AND a.acknowledged_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM session_decisions d WHERE d.session_id = $2 AND d.kind = 'dose_despite_urgent_alert' AND d.alert_id = a.id)
         ORDER BY a.raised_at, a.id",
        params![patient.0, session.0],
    )?
    .iter()
    .map(|r| Ok((AlertId(r.i64("id")?), r.text("message")?)))
    .collect()
}

const DECISION_COLS: &str = "id, session_id, kind, alert_id, vitals_id, step, reason, decided_by, decided_at";

fn decisions_for(c: &mut dyn Conn, session: SessionId) -> Result<Vec<SessionDecision>> {
    c.query(
        &format!("SELECT {DECISION_COLS} FROM session_decisions WHERE session_id = $1 ORDER BY decided_at, id"),
        params![session.0],
    )?
    .iter()
    .map(|r| {
        Ok(SessionDecision {
            id: RecordId(r.i64("id")?),
            session_id: SessionId(r.i64("session_id")?),
            kind: DecisionKind::parse(&r.text("kind")?).ok_or_else(|| StoreError::Corrupt("decision kind".into()))?,
            alert_id: r.opt_i64("alert_id")?.map(AlertId),
            vitals_id: r.opt_i64("vitals_id")?.map(RecordId),
            step: r.opt_text("step")?,
            reason: r.text("reason")?,
            decided_by: r.text("decided_by")?,
            decided_at: from_ms(r.i64("decided_at")?)?,
        })
    })
    .collect()
}

#[allow(clippy::too_many_arguments)]
fn insert_decision(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    s: &TreatmentSession,
    kind: DecisionKind,
    alert: Option<AlertId>,
    vitals: Option<RecordId>,
    step: Option<&str>,
    reason: &str,
) -> Result<i64> {
    let id = c.insert(
        "INSERT INTO session_decisions (session_id, patient_id, kind, alert_id, vitals_id, step, reason, decided_by, decided_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        params![s.id.0, s.patient_id.0, kind.as_str(), alert.map(|a| a.0), vitals.map(|v| v.0), step, reason, actor.name.as_str(), ms(now)],
    )?;
    audit::record(
        c,
        actor,
        now,
        Entry {
            action: Action::Create,
            object_type: "session_decision",
            object_id: Some(id.to_string()),
            patient_id: Some(s.patient_id),
            site_id: Some(s.site_id),
            fields: &["kind", "alert_id", "vitals_id", "step", "reason"],
        },
    )?;
    Ok(id)
}

/// Adds a dated line to the session note, in the same transaction as what it reports. A
/// signed note is left alone (the decision itself is stored and shown with the session).
fn append_note_line(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    zone: &jiff::tz::TimeZone,
    s: &mut TreatmentSession,
    line: &str,
) -> Result<()> {
    if crate::notes::is_note_signed(c, s.id)? {
        return Ok(());
    }
    let t = crate::site_time::local(zone, now);
    let stamp = format!("[{:02}:{:02} {}] {line}", t.hour(), t.minute(), actor.name);
    let note = match s.note.as_deref().map(str::trim_end) {
        Some(n) if !n.is_empty() => format!("{n}\n{stamp}"),
        _ => stamp,
    };
    c.execute("UPDATE sessions SET note = $1 WHERE id = $2", params![note.as_str(), s.id.0])?;
    audit::record(
        c,
        actor,
        now,
        Entry {
            action: Action::Update,
            object_type: "session",
            object_id: Some(s.id.to_string()),
            patient_id: Some(s.patient_id),
            site_id: Some(s.site_id),
            fields: &["note"],
        },
    )?;
    s.note = Some(note);
    Ok(())
}

/// CS-1: every dose given from clinic stock is in the controlled-substance ledger before the
/// patient leaves (home routes are dispensed, not given in the chair).
fn ledger_blocker(c: &mut dyn Conn, s: &TreatmentSession) -> Result<Option<Blocker>> {
    if s.dose_started_at.is_some()
        && s.route.clinic_stock().is_some()
        && crate::ledger::administrations_for_session(c, s.id)? == 0
    {
        return Ok(Some(Blocker::new(
            "ledger",
            "ledger",
            "the dose given is not yet recorded in the controlled-substance ledger",
        )));
    }
    Ok(None)
}

/// One refusal line for the API: the fact, and where it is recorded or set.
fn refusal_line(s: &TreatmentSession, b: &Blocker) -> String {
    if b.anchor == "settings" {
        format!("{} [set it: PUT /api/v1/sites/{}/discharge-settings]", b.message, s.site_id)
    } else {
        format!("{} [record it: /sessions/{}#{}]", b.message, s.id, b.anchor)
    }
}

/// The session's record as the discharge judgement reads it.
struct RecordFacts {
    settings: DischargeSettings,
    vitals: Vec<VitalsRecord>,
    observations: Vec<ObservationRecord>,
    responses: Vec<keta_domain::records::QuestionnaireResponse>,
    bp_decisions: Vec<RecordId>,
}

impl RecordFacts {
    fn load(c: &mut dyn Conn, s: &TreatmentSession) -> Result<Self> {
        let responses = crate::questionnaires::responses_for(c, s.patient_id)?
            .into_iter()
            .filter(|r| r.session_id == Some(s.id))
            .collect();
        let bp_decisions = decisions_for(c, s.id)?
            .into_iter()
            .filter(|d| d.kind == DecisionKind::DischargeDespiteBp)
            .filter_map(|d| d.vitals_id)
            .collect();
        Ok(Self {
            settings: discharge_settings(c, s.site_id)?,
            vitals: vitals_for(c, s)?,
            observations: observations_for(c, s.id)?,
            responses,
            bp_decisions,
        })
    }

    fn record<'a>(&'a self, rules: &'a keta_domain::alerts::SafetyRules) -> DischargeRecord<'a> {
        DischargeRecord {
            rules: DischargeRules::builtin(),
            safety: rules,
            settings: &self.settings,
            vitals: &self.vitals,
            observations: &self.observations,
            responses: &self.responses,
            bp_decisions: &self.bp_decisions,
        }
    }
}

pub(crate) fn require_active(s: &TreatmentSession) -> Result<()> {
    if s.state == SessionState::Scheduled {
        return Err(StoreError::Conflict("check the patient in before recording in this session".into()));
    }
    if s.state.is_terminal() {
        return Err(StoreError::Conflict(format!(
            "the session is {}; records can no longer be added",
            s.state.as_str()
        )));
    }
    Ok(())
}

/// The board's in-chair states (the `state IN (...)` of [`IN_CHAIR`] and [`BOARD_SESSIONS`]).
fn board_in_chair(state: SessionState) -> bool {
    matches!(
        state,
        SessionState::CheckedIn | SessionState::PreDoseChecks | SessionState::Dosing | SessionState::Monitoring
    )
}

/// For each board session whose dose has started and that is still in the chair, the minutes
/// since the dose of its blood-pressure readings, in one query for the whole site.
fn board_bp_minutes(
    c: &mut dyn Conn,
    site: SiteId,
    sessions: &[TreatmentSession],
) -> Result<std::collections::HashMap<SessionId, Vec<i64>>> {
    let dosed: std::collections::HashMap<SessionId, OffsetDateTime> = sessions
        .iter()
        .filter(|s| s.state.dose_started() && s.state != SessionState::Discharged)
        .filter_map(|s| s.dose_started_at.map(|d| (s.id, d)))
        .collect();
    let mut out: std::collections::HashMap<SessionId, Vec<i64>> = dosed.keys().map(|id| (*id, Vec::new())).collect();
    if dosed.is_empty() {
        return Ok(out);
    }
    let rows = c.query(
        "SELECT v.session_id AS session_id, v.taken_at AS taken_at FROM vitals v JOIN sessions s ON s.id = v.session_id
         WHERE s.site_id = $1 AND s.state IN ('dosing', 'monitoring') AND v.systolic_mmhg IS NOT NULL
         ORDER BY v.session_id, v.taken_at, v.id",
        params![site.0],
    )?;
    for r in &rows {
        let id = SessionId(r.i64("session_id")?);
        let (Some(dose), Some(minutes)) = (dosed.get(&id), out.get_mut(&id)) else { continue };
        minutes.push((from_ms(r.i64("taken_at")?)? - *dose).whole_minutes());
    }
    Ok(out)
}

/// The latest reading that counts of each session in the chair at the site, in one query.
fn board_latest_vitals(
    c: &mut dyn Conn,
    site: SiteId,
    sessions: &[TreatmentSession],
) -> Result<std::collections::HashMap<SessionId, VitalsRecord>> {
    let in_chair: std::collections::HashMap<SessionId, Option<OffsetDateTime>> =
        sessions.iter().filter(|s| board_in_chair(s.state)).map(|s| (s.id, s.dose_started_at)).collect();
    if in_chair.is_empty() {
        return Ok(Default::default());
    }
    // The newest (taken_at, id) not struck, as the last of `vitals_for`'s list.
    let rows = c.query(
        &format!(
            "SELECT v.id AS id, v.session_id AS session_id, v.taken_at AS taken_at, v.systolic_mmhg AS systolic_mmhg, v.diastolic_mmhg AS diastolic_mmhg,
                    v.heart_rate_bpm AS heart_rate_bpm, v.spo2_pct AS spo2_pct, v.resp_rate_per_min AS resp_rate_per_min, v.source AS source
             FROM sessions s JOIN vitals v ON v.id = (
                 SELECT v.id FROM vitals v WHERE v.session_id = s.id AND {NOT_STRUCK} ORDER BY v.taken_at DESC, v.id DESC LIMIT 1)
             WHERE {IN_CHAIR}"
        ),
        params![site.0],
    )?;
    let mut out = std::collections::HashMap::new();
    for r in &rows {
        let id = SessionId(r.i64("session_id")?);
        if let Some(dose) = in_chair.get(&id) {
            out.insert(id, vitals_from(r, *dose)?);
        }
    }
    Ok(out)
}

/// The patients the board names: its sessions' and open alerts' patients registered at the
/// site, within the actor's scope.
fn board_patients(
    c: &mut dyn Conn,
    actor: &Actor,
    window: &[crate::conn::Value],
    sessions: &[TreatmentSession],
    alerts: &[Alert],
) -> Result<Vec<keta_domain::patient::Patient>> {
    let wanted: std::collections::HashSet<PatientId> =
        sessions.iter().map(|s| s.patient_id).chain(alerts.iter().map(|a| a.patient_id)).collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let scope = actor.scope.sql("p.site_id");
    let rows = c.query(
        &format!(
            "SELECT {cols} FROM patients p WHERE {scope} AND p.site_id = $1 AND (
                 p.id IN (SELECT patient_id FROM sessions WHERE {BOARD_SESSIONS})
                 OR p.id IN (SELECT patient_id FROM alerts WHERE site_id = $1 AND acknowledged_at IS NULL))",
            cols = crate::patients::PATIENT_COLS
        ),
        window,
    )?;
    let mut out = Vec::with_capacity(wanted.len());
    for r in &rows {
        let p = crate::patients::patient_from(r)?;
        if wanted.contains(&p.id) {
            out.push(p);
        }
    }
    Ok(out)
}

/// A site's board as of one moment: see [`Store::site_board`].
#[derive(Debug, Clone)]
pub struct SiteBoard {
    /// Without their clinical fields: the board is seen by every role at the site.
    pub sessions: Vec<keta_domain::schedule::ScheduledSession>,
    pub chairs: Vec<keta_domain::site::Chair>,
    pub alerts: Vec<Alert>,
    pub rules: std::sync::Arc<keta_domain::alerts::SafetyRules>,
    pub rules_replaced: bool,
    /// For each session whose dose has started and that is still in the chair: the minutes
    /// since the dose of its blood-pressure readings (times only, never the values), so every
    /// role's board judges the timed BP checks from the same facts.
    pub bp_taken_minutes: std::collections::HashMap<SessionId, Vec<i64>>,
    /// The patients the board names (its sessions' and open alerts' patients registered at
    /// the site): demographics, which every role at the site may see.
    pub patients: Vec<keta_domain::patient::Patient>,
    /// The latest reading that counts (not struck) of each session in the chair, for an actor
    /// who may see clinical records (empty otherwise); reading them is audited as the
    /// session vitals are.
    pub latest_vitals: std::collections::HashMap<SessionId, VitalsRecord>,
}

/// The board's sessions: the site's sessions scheduled in `[$2, $3)` and every session under
/// way at the site (a chair with an infusion running is never free). Its queries select
/// from this set so that they all see the same sessions in one snapshot, with one fixed SQL
/// text each (prepared once per connection).
const BOARD_SESSIONS: &str = "site_id = $1 AND ((scheduled_for >= $2 AND scheduled_for < $3) OR state IN ('checked_in', 'pre_dose_checks', 'dosing', 'monitoring'))";
/// Sessions in the chair at the site (the board's in-chair states), for the vitals it shows.
const IN_CHAIR: &str = "s.site_id = $1 AND s.state IN ('checked_in', 'pre_dose_checks', 'dosing', 'monitoring')";

/// What recording vitals produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordedVitals {
    pub record: VitalsRecord,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordedObservation {
    pub record: ObservationRecord,
    pub alerts: Vec<Alert>,
}

impl Store {
    /// Adds a session to a course; it takes the next sequence number.
    pub async fn create_session(&self, actor: &Actor, course: CourseId, new: NewSession) -> Result<TreatmentSession> {
        actor.require(keta_domain::access::Permission::PlanTreatment)?;
        let now = self.now();
        new.validate(now)?;
        let actor = actor.clone();
        self.write(move |c| {
            let course = get_course(c, &actor, course)?;
            if course.status != keta_domain::course::CourseStatus::Active {
                return Err(keta_domain::DomainError::Conflict(format!(
                    "course {} is {}: sessions are added only to an active course; plan a new course instead",
                    course.id,
                    course.status.as_str()
                ))
                .into());
            }
            if let Some(chair) = new.chair_id {
                let ok = c.query_opt("SELECT id FROM chairs WHERE id = $1 AND site_id = $2", params![chair.0, course.site_id.0])?;
                if ok.is_none() {
                    return Err(DomainError::field("chair_id", format!("chair {chair} is not a chair of this patient's site")).into());
                }
                // A chair is never double-booked: the calendar's check.
                crate::calendar::check_chair_free(c, course.site_id, course.route, chair, new.scheduled_for, None)?;
            }
            // The course row is held so two sessions added at once never take the same sequence number.
            c.query_opt("SELECT id FROM courses WHERE id = $1 FOR UPDATE", params![course.id.0])?;
            let n = c.query_opt("SELECT count(*) AS n FROM sessions WHERE course_id = $1", params![course.id.0])?.map(|r| r.i64("n")).transpose()?.unwrap_or(0);
            let id = c.insert(
                "INSERT INTO sessions (course_id, patient_id, site_id, chair_id, route, sequence, scheduled_for, state, planned_dose_mg)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                params![
                    course.id.0, course.patient_id.0, course.site_id.0, new.chair_id.map(|c| c.0), course.route.as_str(), n + 1,
                    ms(new.scheduled_for), SessionState::Scheduled.as_str(), new.planned_dose_mg.map(|d| d.0)
                ],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "session", object_id: Some(id.to_string()), patient_id: Some(course.patient_id),
                site_id: Some(course.site_id), fields: &["scheduled_for", "chair_id", "planned_dose_mg"],
            })?;
            get_session(c, &actor, SessionId(id))
        })
        .await
    }

    pub async fn get_session(&self, actor: &Actor, id: SessionId) -> Result<TreatmentSession> {
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        let act = actor.clone();
        let out = self.read(move |c| get_session(c, &act, id)).await?;
        self.audit_read(actor, "session", Some(id.to_string()), Some(out.patient_id)).await?;
        Ok(out)
    }

    /// Sessions at a site scheduled in `[from, to)`, for the day's schedule and the board:
    /// schedule fields only, since anyone who sees the schedule may read this list while
    /// the note and the stop reason need `ViewClinical`.
    pub async fn sessions_at_site(
        &self,
        actor: &Actor,
        site: SiteId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<keta_domain::schedule::ScheduledSession>> {
        actor.require(keta_domain::access::Permission::ViewDemographics)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        let rows = self.read(move |c| site_sessions(c, site, from, to)).await?;
        Ok(rows.iter().map(keta_domain::schedule::ScheduledSession::from).collect())
    }

    /// The full records of a site's sessions in `[from, to)` (note, stop reason, planned
    /// dose) for clinical work across a site; one audited read per patient, written together.
    pub async fn clinical_sessions_at_site(
        &self,
        actor: &Actor,
        site: SiteId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<TreatmentSession>> {
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        let out = self.read(move |c| site_sessions(c, site, from, to)).await?;
        let mut patients: Vec<PatientId> = out.iter().map(|s| s.patient_id).collect();
        patients.sort();
        patients.dedup();
        self.audit_reads(actor, "sessions", patients).await?;
        Ok(out)
    }

    /// Moves a session one step along its lifecycle (or stops it), through every gate:
    /// see [`Store::act_on_session_confirmed`]. A session of another day is refused here.
    pub async fn act_on_session(
        &self,
        actor: &Actor,
        id: SessionId,
        action: SessionAction,
    ) -> Result<TreatmentSession> {
        self.act_on_session_confirmed(actor, id, action, None).await
    }

    /// Moves a session one step along its lifecycle (or stops it). Refused: checking in or
    /// starting the dose of a session scheduled for another local day without
    /// `other_day_reason` (the reason is stored and written in the note); starting the dose
    /// while an urgent alert for the patient is open and no prescriber override covers it;
    /// discharge before the route's minimum monitoring time, with open alerts, or with a
    /// fact missing from the record (keta_domain::discharge), each named with where to record it.
    pub async fn act_on_session_confirmed(
        &self,
        actor: &Actor,
        id: SessionId,
        action: SessionAction,
        other_day_reason: Option<String>,
    ) -> Result<TreatmentSession> {
        actor.require(keta_domain::access::Permission::RecordSession)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let mut s = get_session_for_update(c, &actor, id)?;
            if action == SessionAction::StartDose {
                lock_patient(c, s.patient_id)?;
            }
            let rules = crate::rules::safety_rules(c, s.site_id)?;
            let zone = crate::site_time::site_zone(c, s.site_id)?;
            let day = SessionDay {
                scheduled: crate::site_time::local_date(&zone, s.scheduled_for),
                today: crate::site_time::local_date(&zone, now),
                other_day_reason: other_day_reason.clone(),
            };
            let other_day = day.scheduled != day.today
                && matches!(action, SessionAction::CheckIn | SessionAction::StartDose)
                && other_day_reason.is_some();
            let urgent =
                if action == SessionAction::StartDose { uncovered_urgent_alerts(c, s.patient_id, id)? } else { vec![] };
            // Consent and REMS enrolment: read only where they gate.
            let missing_documents = if action == SessionAction::StartDose && s.state == SessionState::PreDoseChecks {
                crate::consents::missing_documents(c, &s)?
            } else {
                vec![]
            };
            let discharging = action == SessionAction::Discharge && s.state == SessionState::Monitoring;
            let facts = if discharging { Some(RecordFacts::load(c, &s)?) } else { None };
            let record = facts.as_ref().map(|f| f.record(&rules));
            let ctx = StepContext {
                discharge: DischargeContext {
                    minimum_monitoring: rules.minimum_monitoring(s.route),
                    open_alerts: open_alert_count(c, id)?,
                    record,
                },
                uncovered_urgent_alerts: urgent.iter().map(|(_, m)| m.clone()).collect(),
                missing_documents,
                day: Some(day),
            };
            if discharging {
                // Every reason at once, so the nurse sees the whole checklist, each with where to record it.
                let mut blockers = s.discharge_blockers(now, &ctx.discharge);
                blockers.extend(ledger_blocker(c, &s)?);
                if !blockers.is_empty() {
                    let lines: Vec<String> = blockers.iter().map(|b| refusal_line(&s, b)).collect();
                    return Err(StoreError::Domain(DomainError::Conflict(format!("discharge refused: {}", lines.join("; ")))));
                }
            }
            s.apply(&action, now, &ctx)?;
            c.execute(
                "UPDATE sessions SET state = $1, checked_in_at = $2, pre_dose_checks_at = $3, dose_started_at = $4, monitoring_started_at = $5,
                 discharged_at = $6, stopped_at = $7, stop_reason = $8 WHERE id = $9",
                params![
                    s.state.as_str(), s.checked_in_at.map(ms), s.pre_dose_checks_at.map(ms), s.dose_started_at.map(ms),
                    s.monitoring_started_at.map(ms), s.discharged_at.map(ms), s.stopped_at.map(ms), s.stop_reason.as_deref(), id.0
                ],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Update, object_type: "session", object_id: Some(id.to_string()), patient_id: Some(s.patient_id),
                site_id: Some(s.site_id), fields: &["state"],
            })?;
            if other_day {
                let reason = other_day_reason.unwrap_or_default();
                let step = if action == SessionAction::CheckIn { "check_in" } else { "start_dose" };
                insert_decision(c, &actor, now, &s, DecisionKind::OtherDay, None, None, Some(step), &reason)?;
                let line = format!(
                    "{} on {} for a session scheduled for {}: {reason}",
                    if step == "check_in" { "Checked in" } else { "Dose started" },
                    crate::site_time::local_date(&zone, now),
                    crate::site_time::local_date(&zone, s.scheduled_for)
                );
                append_note_line(c, &actor, now, &zone, &mut s, &line)?;
            }
            Ok(s)
        })
        .await
    }

    /// Records a prescriber's decision to go ahead despite a gate: starting the dose while
    /// urgent alerts for the patient are open (one row per alert open now), or discharging
    /// with a named BP reading above the thresholds. Nurses cannot; the decision is written
    /// in the session note and audited in the same transaction.
    pub async fn record_session_decision(
        &self,
        actor: &Actor,
        id: SessionId,
        decision: NewDecision,
    ) -> Result<Vec<SessionDecision>> {
        actor.require(keta_domain::access::Permission::RecordSession)?;
        if !actor.can(keta_domain::access::Permission::PlanTreatment) {
            return Err(StoreError::Forbidden("only a prescriber can record this decision".into()));
        }
        decision.validate()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let mut s = get_session_for_update(c, &actor, id)?;
            if matches!(decision, NewDecision::DoseDespiteUrgentAlert { .. }) {
                lock_patient(c, s.patient_id)?;
            }
            if s.state.is_terminal() {
                return Err(StoreError::Conflict(format!(
                    "the session is {}; nothing is left to decide",
                    s.state.as_str()
                )));
            }
            let zone = crate::site_time::site_zone(c, s.site_id)?;
            let reason = decision.reason().trim().to_string();
            let mut ids = Vec::new();
            let line = match &decision {
                NewDecision::DoseDespiteUrgentAlert { .. } => {
                    if s.state.dose_started() {
                        return Err(StoreError::Conflict("the dose has already started".into()));
                    }
                    let open = uncovered_urgent_alerts(c, s.patient_id, id)?;
                    if open.is_empty() {
                        return Err(StoreError::Conflict(
                            "no urgent alert for this patient is open: nothing to override".into(),
                        ));
                    }
                    for (alert, _) in &open {
                        ids.push(insert_decision(
                            c,
                            &actor,
                            now,
                            &s,
                            DecisionKind::DoseDespiteUrgentAlert,
                            Some(*alert),
                            None,
                            None,
                            &reason,
                        )?);
                    }
                    format!(
                        "Prescriber override: dose may start with urgent alert(s) open ({}). Reason: {reason}",
                        open.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ")
                    )
                }
                NewDecision::DischargeDespiteBp { vitals_id, .. } => {
                    let v = vitals_for(c, &s)?.into_iter().find(|v| v.id == *vitals_id).ok_or_else(|| {
                        DomainError::field("vitals_id", format!("reading {vitals_id} is not a reading of this session"))
                    })?;
                    let Some((sys, dia)) = v.vitals.blood_pressure() else {
                        return Err(DomainError::field("vitals_id", "that reading has no blood pressure").into());
                    };
                    ids.push(insert_decision(
                        c,
                        &actor,
                        now,
                        &s,
                        DecisionKind::DischargeDespiteBp,
                        None,
                        Some(*vitals_id),
                        None,
                        &reason,
                    )?);
                    format!(
                        "Prescriber decision: discharge with BP {}/{} mmHg (taken {}). Reason: {reason}",
                        sys.0,
                        dia.0,
                        crate::site_time::local(&zone, v.taken_at).time()
                    )
                }
            };
            append_note_line(c, &actor, now, &zone, &mut s, &line)?;
            let all = decisions_for(c, id)?;
            Ok(all.into_iter().filter(|d| ids.contains(&d.id.0)).collect())
        })
        .await
    }

    /// The decisions recorded in a session, oldest first.
    pub async fn list_session_decisions(&self, actor: &Actor, id: SessionId) -> Result<Vec<SessionDecision>> {
        self.read_record_audited(
            actor,
            keta_domain::access::Permission::ViewClinical,
            "session_decisions",
            Some(id.to_string()),
            move |c, act| {
                let s = get_session(c, act, id)?;
                Ok((s.patient_id, decisions_for(c, id)?))
            },
        )
        .await
    }

    /// Why discharge is not possible yet, as the session screen shows it (the same
    /// judgement [`Store::act_on_session`] makes, ledger included).
    pub async fn discharge_blockers(&self, actor: &Actor, id: SessionId) -> Result<Vec<Blocker>> {
        let now = self.now();
        // Judged from the patient's vitals and scores: a read of patient data.
        self.read_record_audited(
            actor,
            keta_domain::access::Permission::ViewClinical,
            "discharge_blockers",
            Some(id.to_string()),
            move |c, act| {
                let s = get_session(c, act, id)?;
                let rules = crate::rules::safety_rules(c, s.site_id)?;
                let facts = RecordFacts::load(c, &s)?;
                let ctx = DischargeContext {
                    minimum_monitoring: rules.minimum_monitoring(s.route),
                    open_alerts: open_alert_count(c, id)?,
                    record: Some(facts.record(&rules)),
                };
                let mut out = s.discharge_blockers(now, &ctx);
                out.extend(ledger_blocker(c, &s)?);
                Ok((s.patient_id, out))
            },
        )
        .await
    }

    /// Everything the site's board shows, read in one snapshot: the day's sessions and every
    /// session under way (a chair with an infusion running is never free), the chairs, the
    /// open alerts (only for an actor who may see clinical records), and the safety rules in
    /// force with whether the site replaced the built-in ones. Separate reads could show a
    /// session as dosing beside alerts from a moment earlier or later.
    pub async fn site_board(
        &self,
        actor: &Actor,
        site: SiteId,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<SiteBoard> {
        actor.require(keta_domain::access::Permission::ViewDemographics)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        let clinical = actor.can(keta_domain::access::Permission::ViewClinical);
        let act = actor.clone();
        // A fixed number of statements whatever the number of chairs: each is a round trip
        // on PostgreSQL, and the board re-renders for every open screen on every change.
        let board = self
            .read(move |c| {
                let window = params![site.0, ms(from), ms(to)];
                let mut sessions: Vec<TreatmentSession> = c
                    .query(
                        &format!("SELECT {COLS} FROM sessions WHERE {BOARD_SESSIONS} ORDER BY scheduled_for, id"),
                        window,
                    )?
                    .iter()
                    .map(session_from)
                    .collect::<Result<_>>()?;
                // The day's sessions first, then those under way from another day, as the board lists them.
                sessions.sort_by_key(|s| (!(s.scheduled_for >= from && s.scheduled_for < to), s.scheduled_for, s.id.0));
                let chairs = crate::sites::chairs_of(c, site)?;
                let alerts = if clinical {
                    crate::alerts::list(
                        c,
                        &act,
                        &crate::alerts::AlertQuery {
                            site_id: Some(site),
                            open_only: true,
                            limit: 200,
                            ..Default::default()
                        },
                    )?
                } else {
                    Vec::new()
                };
                let rules = crate::rules::safety_rules(c, site)?;
                let rules_replaced = crate::rules::is_replaced(&rules);
                let bp_taken_minutes = board_bp_minutes(c, site, &sessions)?;
                let latest_vitals =
                    if clinical { board_latest_vitals(c, site, &sessions)? } else { Default::default() };
                let patients = board_patients(c, &act, window, &sessions, &alerts)?;
                let sessions = sessions.into_iter().map(keta_domain::schedule::ScheduledSession::from).collect();
                Ok(SiteBoard {
                    sessions,
                    chairs,
                    alerts,
                    rules,
                    rules_replaced,
                    bp_taken_minutes,
                    patients,
                    latest_vitals,
                })
            })
            .await?;
        if clinical {
            // The vitals of every patient in a chair were read (whether or not they have any yet).
            let mut read: Vec<PatientId> =
                board.sessions.iter().filter(|s| board_in_chair(s.state)).map(|s| s.patient_id).collect();
            read.sort();
            read.dedup();
            self.audit_reads(actor, "vitals", read).await?;
        }
        Ok(board)
    }

    /// A site's discharge settings (empty until the medical director sets them).
    pub async fn site_discharge_settings(&self, actor: &Actor, site: SiteId) -> Result<DischargeSettings> {
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        self.read(move |c| discharge_settings(c, site)).await
    }

    /// Sets a site's discharge settings (a prescriber: the medical director). Validated
    /// first; nothing changes on error.
    pub async fn set_site_discharge_settings(
        &self,
        actor: &Actor,
        site: SiteId,
        settings: DischargeSettings,
    ) -> Result<DischargeSettings> {
        actor.require(keta_domain::access::Permission::PlanTreatment)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        settings.validate(DischargeRules::builtin())?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let value = serde_json::to_value(&settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            crate::rules::write_site_setting(
                c,
                &actor,
                now,
                site,
                "site_settings",
                DISCHARGE_SETTINGS_KEY,
                Some(value),
            )?;
            Ok(settings)
        })
        .await
    }

    /// Records a set of vitals, evaluates the safety rules against them and the
    /// session's baseline (its first reading), and raises any alerts, all at once.
    pub async fn record_vitals(
        &self,
        actor: &Actor,
        id: SessionId,
        vitals: VitalSigns,
        taken_at: Option<OffsetDateTime>,
        source: VitalsSource,
    ) -> Result<RecordedVitals> {
        self.record_vitals_entry(actor, id, vitals, taken_at, source, true).await
    }

    /// Records vitals as [`Store::record_vitals`] does, but a manual reading identical to the
    /// previous one within the duplicate window (data/rules/discharge.toml, a product
    /// setting) is refused unless `confirm_duplicate`: a stale value re-entered is not a new reading.
    pub async fn record_vitals_entry(
        &self,
        actor: &Actor,
        id: SessionId,
        vitals: VitalSigns,
        taken_at: Option<OffsetDateTime>,
        source: VitalsSource,
        confirm_duplicate: bool,
    ) -> Result<RecordedVitals> {
        actor.require(keta_domain::access::Permission::RecordSession)?;
        vitals.validate()?;
        let now = self.now();
        let taken_at = taken_at.unwrap_or(now);
        if taken_at > now + time::Duration::minutes(5) {
            return Err(
                DomainError::field("taken_at", "a reading cannot be in the future; check the device clock").into()
            );
        }
        let actor = actor.clone();
        let memory = self.vitals_memory();
        let judging = Judging {
            once_per_episode: false,
            refuse_double_entry: source == VitalsSource::Manual && !confirm_duplicate,
            remember: memory.is_some(),
        };
        let reading = (vitals, taken_at, source);
        if let Some(m) = &memory
            && let Some(done) = self.record_vitals_from_memory(m, &actor, now, id, reading, judging).await?
        {
            return Ok(done);
        }
        let written = self.write(move |c| insert_vitals(c, &actor, now, id, reading, judging)).await;
        match (memory, written) {
            (Some(m), Ok((seen, done))) => {
                m.remember(id, seen);
                Ok(done)
            }
            (Some(m), Err(e)) => {
                m.forget(id);
                Err(e)
            }
            (None, written) => written.map(|(_, done)| done),
        }
    }

    pub async fn list_vitals(&self, actor: &Actor, id: SessionId) -> Result<Vec<VitalsRecord>> {
        self.read_record_audited(
            actor,
            keta_domain::access::Permission::ViewClinical,
            "vitals",
            Some(id.to_string()),
            move |c, act| {
                let s = get_session(c, act, id)?;
                Ok((s.patient_id, vitals_for(c, &s)?))
            },
        )
        .await
    }

    /// Vitals of several sessions at once (the board's chairs): one read, and the read
    /// entries for their patients written in one transaction rather than one per session.
    /// Sessions the actor may not see are left out.
    pub async fn vitals_for_sessions(
        &self,
        actor: &Actor,
        ids: Vec<SessionId>,
    ) -> Result<Vec<(SessionId, Vec<VitalsRecord>)>> {
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        let act = actor.clone();
        let (patients, out) = self
            .read(move |c| {
                let (mut patients, mut out) = (Vec::new(), Vec::new());
                for id in ids {
                    let Ok(s) = get_session(c, &act, id) else { continue };
                    patients.push(s.patient_id);
                    out.push((id, vitals_for(c, &s)?));
                }
                Ok((patients, out))
            })
            .await?;
        let mut patients = patients;
        patients.sort();
        patients.dedup();
        self.audit_reads(actor, "vitals", patients).await?;
        Ok(out)
    }

    /// Records a sedation score, side effect or intervention; MOAA/S and emergency
    /// symptoms are checked against the rules.
    pub async fn record_observation(
        &self,
        actor: &Actor,
        id: SessionId,
        body: ObservationBody,
        observed_at: Option<OffsetDateTime>,
    ) -> Result<RecordedObservation> {
        actor.require(keta_domain::access::Permission::RecordSession)?;
        body.validate()?;
        let now = self.now();
        let observed_at = observed_at.unwrap_or(now);
        let actor = actor.clone();
        self.write(move |c| {
            let s = get_session_for_update(c, &actor, id)?;
            require_active(&s)?;
            let rules = crate::rules::safety_rules(c, s.site_id)?;
            let firings = match &body {
                ObservationBody::Moaas { score } => rules.evaluate_moaas(*score),
                ObservationBody::SideEffect { symptom, .. } => {
                    if !rules.symptoms().iter().any(|x| &x.code == symptom) {
                        let known: Vec<&str> = rules.symptoms().iter().map(|x| x.code.as_str()).collect();
                        return Err(DomainError::field("symptom", format!("unknown symptom '{symptom}'; use one of: {}", known.join(", "))).into());
                    }
                    rules.evaluate_symptoms(std::slice::from_ref(symptom))
                }
                ObservationBody::Intervention { .. } => Vec::new(),
            };
            let rid = c.insert(
                "INSERT INTO observations (session_id, patient_id, kind, observed_at, body) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                params![id.0, s.patient_id.0, body.kind(), ms(observed_at), json(&body)],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "observation", object_id: Some(rid.to_string()), patient_id: Some(s.patient_id),
                site_id: Some(s.site_id), fields: &[body.kind()],
            })?;
            let alerts = raise(c, &actor, now, s.site_id, s.patient_id, Some(id), firings)?;
            Ok(RecordedObservation { record: ObservationRecord { id: RecordId(rid), session_id: id, observed_at, body }, alerts })
        })
        .await
    }

    pub async fn list_observations(&self, actor: &Actor, id: SessionId) -> Result<Vec<ObservationRecord>> {
        self.read_record_audited(
            actor,
            keta_domain::access::Permission::ViewClinical,
            "observations",
            Some(id.to_string()),
            move |c, act| {
                let s = get_session(c, act, id)?;
                Ok((s.patient_id, observations_for(c, id)?))
            },
        )
        .await
    }

    /// Records an adverse event for a patient, optionally tied to a session.
    pub async fn record_adverse_event(
        &self,
        actor: &Actor,
        patient: PatientId,
        session: Option<SessionId>,
        new: NewAdverseEvent,
    ) -> Result<AdverseEvent> {
        actor.require(keta_domain::access::Permission::RecordSession)?;
        new.validate()?;
        let now = self.now();
        if new.onset_at > now + time::Duration::minutes(5) {
            return Err(DomainError::field("onset_at", "onset cannot be in the future").into());
        }
        let actor = actor.clone();
        self.write(move |c| {
            let p = crate::patients::get_patient(c, &actor, patient)?;
            if let Some(sid) = session {
                let s = get_session(c, &actor, sid)?;
                if s.patient_id != patient {
                    return Err(DomainError::field("session_id", "that session belongs to another patient").into());
                }
            }
            let id = c.insert(
                "INSERT INTO adverse_events (patient_id, session_id, description, severity, serious, action_taken, outcome, onset_at, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                params![
                    patient.0, session.map(|s| s.0), new.description.trim(), new.severity.as_str(), new.serious, new.action_taken.trim(),
                    new.outcome.trim(), ms(new.onset_at), ms(now)
                ],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "adverse_event", object_id: Some(id.to_string()), patient_id: Some(patient),
                site_id: Some(p.site_id), fields: &["description", "severity", "serious", "action_taken", "outcome", "onset_at"],
            })?;
            let r = c.query_opt(&format!("SELECT {AE_COLS} FROM adverse_events WHERE id = $1"), params![id])?.expect("just inserted");
            ae_from(&r)
        })
        .await
    }

    pub async fn list_adverse_events(&self, actor: &Actor, patient: PatientId) -> Result<Vec<AdverseEvent>> {
        self.read_patient_audited(
            actor,
            keta_domain::access::Permission::ViewClinical,
            patient,
            "adverse_events",
            move |c, _| {
                c.query(
                    &format!("SELECT {AE_COLS} FROM adverse_events WHERE patient_id = $1 ORDER BY onset_at, id"),
                    params![patient.0],
                )?
                .iter()
                .map(ae_from)
                .collect()
            },
        )
        .await
    }

    /// Writes the session note (signing and amendments come with signed records).
    pub async fn set_session_note(&self, actor: &Actor, id: SessionId, note: String) -> Result<TreatmentSession> {
        actor.require(keta_domain::access::Permission::RecordSession)?;
        // The same bound as the OpenAPI document's maxLength (characters, not bytes).
        keta_domain::plausible::ranges().note(&note).map_err(|m| DomainError::field("note", m))?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            // The row lock orders this edit with signing, which takes it too: the text signed
            // is the text stored.
            let mut s = get_session_for_update(c, &actor, id)?;
            if crate::notes::is_note_signed(c, id)? {
                return Err(StoreError::Conflict("the note is signed and locked; add an amendment instead".into()));
            }
            // The writer is recorded: only they may sign the note as its author (21 CFR 11.50).
            c.execute(
                "UPDATE sessions SET note = $1, note_author_user_id = $2, note_author = $3 WHERE id = $4",
                params![note.as_str(), actor.user_id, actor.name.as_str(), id.0],
            )?;
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "session",
                    object_id: Some(id.to_string()),
                    patient_id: Some(s.patient_id),
                    site_id: Some(s.site_id),
                    fields: &["note"],
                },
            )?;
            s.note = Some(note);
            Ok(s)
        })
        .await
    }
}
