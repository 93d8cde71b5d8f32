//! Treatment sessions: scheduling, the lifecycle in the chair, vitals, observations,
//! adverse events, and the alerts the safety rules raise from them. Each recording
//! evaluates the rules and stores the alerts in the same transaction as the record.

use time::OffsetDateTime;

use keta_domain::DomainError;
use keta_domain::alerts::{AlertFiring, DosePhase};
use keta_domain::course::Route;
use keta_domain::ids::{ChairId, CourseId, PatientId, RecordId, SessionId, SiteId};
use keta_domain::records::{Alert, ObservationRecord, VitalsRecord, VitalsSource};
use keta_domain::session::{
    AdverseEvent, DischargeContext, NewAdverseEvent, NewSession, ObservationBody, SessionAction, SessionState,
    TreatmentSession,
};
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Milligrams, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::courses::get_course;
use crate::error::{Result, StoreError};
use crate::time_codec::{from_json, from_ms, json, ms, opt_from_ms};
use crate::{Actor, Store, params};

pub(crate) const COLS: &str = "id, course_id, patient_id, site_id, chair_id, route, sequence, scheduled_for, state, checked_in_at, pre_dose_checks_at, \
     dose_started_at, monitoring_started_at, discharged_at, stopped_at, stop_reason, planned_dose_mg, note";

pub(crate) fn session_from(r: &Row) -> Result<TreatmentSession> {
    let bad = |f: &str| StoreError::Corrupt(format!("session {f}"));
    Ok(TreatmentSession {
        id: SessionId(r.i64(0)?),
        course_id: CourseId(r.i64(1)?),
        patient_id: PatientId(r.i64(2)?),
        site_id: SiteId(r.i64(3)?),
        chair_id: r.opt_i64(4)?.map(ChairId),
        route: Route::parse(&r.text(5)?).ok_or_else(|| bad("route"))?,
        sequence: u32::try_from(r.i64(6)?).map_err(|_| bad("sequence"))?,
        scheduled_for: from_ms(r.i64(7)?)?,
        state: SessionState::parse(&r.text(8)?).ok_or_else(|| bad("state"))?,
        checked_in_at: opt_from_ms(r.opt_i64(9)?)?,
        pre_dose_checks_at: opt_from_ms(r.opt_i64(10)?)?,
        dose_started_at: opt_from_ms(r.opt_i64(11)?)?,
        monitoring_started_at: opt_from_ms(r.opt_i64(12)?)?,
        discharged_at: opt_from_ms(r.opt_i64(13)?)?,
        stopped_at: opt_from_ms(r.opt_i64(14)?)?,
        stop_reason: r.opt_text(15)?,
        planned_dose_mg: r.opt_f64(16)?.map(Milligrams),
        note: r.opt_text(17)?,
    })
}

pub fn get_session(c: &mut dyn Conn, actor: &Actor, id: SessionId) -> Result<TreatmentSession> {
    let r = c
        .query_opt(&format!("SELECT {COLS} FROM sessions WHERE id = $1"), params![id.0])?
        .ok_or_else(|| StoreError::NotFound(format!("session {id}")))?;
    let s = session_from(&r)?;
    if !actor.may_see(s.site_id, s.patient_id) {
        return Err(StoreError::NotFound(format!("session {id}")));
    }
    Ok(s)
}

pub fn sessions_for_patient(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<TreatmentSession>> {
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
        "SELECT count(*) FROM alerts WHERE session_id = $1 AND acknowledged_at IS NULL",
        params![session.0],
    )?;
    Ok(r.map(|r| r.i64(0)).transpose()?.unwrap_or(0) as usize)
}

fn vitals_from(r: &Row, dose_started: Option<OffsetDateTime>) -> Result<VitalsRecord> {
    let taken_at = from_ms(r.i64(2)?)?;
    Ok(VitalsRecord {
        id: RecordId(r.i64(0)?),
        session_id: SessionId(r.i64(1)?),
        taken_at,
        minutes_since_dose: dose_started.map(|d| (taken_at - d).whole_minutes()),
        vitals: VitalSigns {
            systolic_mmhg: r.opt_f64(3)?.map(Mmhg),
            diastolic_mmhg: r.opt_f64(4)?.map(Mmhg),
            heart_rate_bpm: r.opt_f64(5)?.map(BeatsPerMinute),
            spo2_pct: r.opt_f64(6)?.map(Percent),
            resp_rate_per_min: r.opt_f64(7)?.map(BreathsPerMinute),
        },
        source: VitalsSource::parse(&r.text(8)?).ok_or_else(|| StoreError::Corrupt("vitals source".into()))?,
    })
}

pub fn vitals_for(c: &mut dyn Conn, s: &TreatmentSession) -> Result<Vec<VitalsRecord>> {
    c.query(
        "SELECT id, session_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source
         FROM vitals WHERE session_id = $1 ORDER BY taken_at, id",
        params![s.id.0],
    )?
    .iter()
    .map(|r| vitals_from(r, s.dose_started_at))
    .collect()
}

pub fn observations_for(c: &mut dyn Conn, session: SessionId) -> Result<Vec<ObservationRecord>> {
    c.query(
        "SELECT id, session_id, observed_at, body FROM observations WHERE session_id = $1 ORDER BY observed_at, id",
        params![session.0],
    )?
    .iter()
    .map(|r| {
        Ok(ObservationRecord {
            id: RecordId(r.i64(0)?),
            session_id: SessionId(r.i64(1)?),
            observed_at: from_ms(r.i64(2)?)?,
            body: from_json(&r.text(3)?)?,
        })
    })
    .collect()
}

pub(crate) fn ae_from(r: &Row) -> Result<AdverseEvent> {
    Ok(AdverseEvent {
        id: RecordId(r.i64(0)?),
        patient_id: PatientId(r.i64(1)?),
        session_id: r.opt_i64(2)?.map(SessionId),
        description: r.text(3)?,
        severity: keta_domain::session::AeSeverity::parse(&r.text(4)?)
            .ok_or_else(|| StoreError::Corrupt("ae severity".into()))?,
        serious: r.bool(5)?,
        action_taken: r.text(6)?,
        outcome: r.text(7)?,
        onset_at: from_ms(r.i64(8)?)?,
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
    for f in firings {
        let level = crate::alerts::level_of(&f);
        let id = c.insert(
            "INSERT INTO alerts (site_id, patient_id, session_id, rule, severity, message, source, raised_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            params![site.0, patient.0, session.map(|s| s.0), f.rule.as_str(), level.as_str(), f.message.as_str(), f.source.as_str(), ms(now)],
        )?;
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

fn require_active(s: &TreatmentSession) -> Result<()> {
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
        new.validate()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let course = get_course(c, &actor, course)?;
            if let Some(chair) = new.chair_id {
                let ok = c.query_opt("SELECT id FROM chairs WHERE id = $1 AND site_id = $2", params![chair.0, course.site_id.0])?;
                if ok.is_none() {
                    return Err(DomainError::field("chair_id", format!("chair {chair} is not a chair of this patient's site")).into());
                }
            }
            let n = c.query_opt("SELECT count(*) FROM sessions WHERE course_id = $1", params![course.id.0])?.map(|r| r.i64(0)).transpose()?.unwrap_or(0);
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
    /// the note and the stop reason need `ViewClinical` (issue 17).
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

    /// Moves a session one step along its lifecycle (or stops it). Discharge is
    /// refused before the route's minimum monitoring time or with open alerts.
    pub async fn act_on_session(
        &self,
        actor: &Actor,
        id: SessionId,
        action: SessionAction,
    ) -> Result<TreatmentSession> {
        actor.require(keta_domain::access::Permission::RecordSession)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let mut s = get_session(c, &actor, id)?;
            let ctx = DischargeContext {
                minimum_monitoring: crate::rules::safety_rules(c, s.site_id)?.minimum_monitoring(s.route),
                open_alerts: open_alert_count(c, id)?,
            };
            if action == SessionAction::Discharge && s.state == SessionState::Monitoring {
                // Every reason at once, so the nurse sees the whole checklist.
                let mut blockers = s.discharge_blockers(now, ctx);
                // Home routes (oral, sublingual) are dispensed, not given from clinic stock in the chair.
                let from_clinic_stock = matches!(s.route, Route::IvRacemic | Route::ImRacemic | Route::IntranasalEsketamine);
                if from_clinic_stock && crate::ledger::administrations_for_session(c, id)? == 0 {
                    // CS-1: every dose given is in the controlled-substance ledger before the patient leaves.
                    blockers.push("the dose given is not yet recorded in the controlled-substance ledger".into());
                }
                if !blockers.is_empty() {
                    return Err(StoreError::Domain(keta_domain::DomainError::Conflict(format!("discharge refused: {}", blockers.join("; ")))));
                }
            }
            s.apply(&action, now, ctx)?;
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
            Ok(s)
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
        self.write(move |c| {
            let s = get_session(c, &actor, id)?;
            require_active(&s)?;
            let baseline = c
                .query_opt(
                    "SELECT id, session_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source
                     FROM vitals WHERE session_id = $1 AND systolic_mmhg IS NOT NULL ORDER BY taken_at, id LIMIT 1",
                    params![id.0],
                )?
                .map(|r| vitals_from(&r, s.dose_started_at))
                .transpose()?;
            let phase = match s.dose_started_at {
                Some(d) if taken_at >= d => DosePhase::PostDose { minutes_since_dose: (taken_at - d).whole_minutes() },
                _ => DosePhase::PreDose,
            };
            let firings = crate::rules::safety_rules(c, s.site_id)?.evaluate_vitals(phase, &vitals, baseline.as_ref().map(|b| &b.vitals));
            let rid = c.insert(
                "INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                params![
                    id.0, s.patient_id.0, ms(taken_at), vitals.systolic_mmhg.map(|v| v.0), vitals.diastolic_mmhg.map(|v| v.0),
                    vitals.heart_rate_bpm.map(|v| v.0), vitals.spo2_pct.map(|v| v.0), vitals.resp_rate_per_min.map(|v| v.0), source.as_str()
                ],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "vitals", object_id: Some(rid.to_string()), patient_id: Some(s.patient_id),
                site_id: Some(s.site_id), fields: &["systolic_mmhg", "diastolic_mmhg", "heart_rate_bpm", "spo2_pct", "resp_rate_per_min"],
            })?;
            let alerts = raise(c, &actor, now, s.site_id, s.patient_id, Some(id), firings)?;
            let record = VitalsRecord {
                id: RecordId(rid), session_id: id, taken_at, minutes_since_dose: s.dose_started_at.map(|d| (taken_at - d).whole_minutes()),
                vitals, source,
            };
            Ok(RecordedVitals { record, alerts })
        })
        .await
    }

    pub async fn list_vitals(&self, actor: &Actor, id: SessionId) -> Result<Vec<VitalsRecord>> {
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        let act = actor.clone();
        let (patient, out) = self
            .read(move |c| {
                let s = get_session(c, &act, id)?;
                Ok((s.patient_id, vitals_for(c, &s)?))
            })
            .await?;
        self.audit_read(actor, "vitals", Some(id.to_string()), Some(patient)).await?;
        Ok(out)
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
            let s = get_session(c, &actor, id)?;
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
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        let act = actor.clone();
        let (patient, out) = self
            .read(move |c| {
                let s = get_session(c, &act, id)?;
                Ok((s.patient_id, observations_for(c, id)?))
            })
            .await?;
        self.audit_read(actor, "observations", Some(id.to_string()), Some(patient)).await?;
        Ok(out)
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
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        let act = actor.clone();
        let out = self
            .read(move |c| {
                crate::patients::get_patient(c, &act, patient)?;
                c.query(
                    &format!("SELECT {AE_COLS} FROM adverse_events WHERE patient_id = $1 ORDER BY onset_at, id"),
                    params![patient.0],
                )?
                .iter()
                .map(ae_from)
                .collect()
            })
            .await?;
        self.audit_read(actor, "adverse_events", None, Some(patient)).await?;
        Ok(out)
    }

    /// Writes the session note (signing and amendments come with signed records).
    pub async fn set_session_note(&self, actor: &Actor, id: SessionId, note: String) -> Result<TreatmentSession> {
        actor.require(keta_domain::access::Permission::RecordSession)?;
        if note.len() > 20_000 {
            return Err(DomainError::field("note", "keep the note under 20,000 characters").into());
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let mut s = get_session(c, &actor, id)?;
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
