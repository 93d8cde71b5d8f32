//! Bedside monitors: devices an administrator registers to chairs, the messages they send
//! (kept raw for troubleshooting, recorded once per control id), their readings attached to
//! the session active in the chair through the same path as typed vitals, and the review
//! list of readings refused. The HL7 itself is read by `keta-mllp`; this module receives
//! the mapped readings.

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::device_readings::{DeviceReadingDecision, DeviceReadingStatus};
use keta_domain::ids::{ChairId, RecordId, SessionId, SiteId};
use keta_domain::records::{VitalsRecord, VitalsSource};
use keta_domain::session::SessionState;
use keta_domain::units::Mmhg;
use keta_domain::vitals::VitalSigns;

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::sessions::{COLS, Judging, get_session, get_session_for_update, insert_vitals, session_from, vitals_from};
use crate::time_codec::{from_ms, ms, opt_from_ms};
use crate::{Actor, Store, params};

/// A registered monitor.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MonitorDevice {
    pub id: i64,
    pub site_id: SiteId,
    pub chair_id: ChairId,
    /// What the monitor sends in PV1-3 or MSH-4 (as the server is configured).
    pub identifier: String,
    pub label: String,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    pub registered_by: String,
}

/// One set of readings a monitor took at one time, in Keta's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorReading {
    pub observed_at: OffsetDateTime,
    pub vitals: VitalSigns,
    /// Mean arterial pressure, kept beside the reading; no safety rule reads it.
    pub mean_mmhg: Option<Mmhg>,
}

/// A message as the listener read it. `identifier` and `control_id` are empty for a frame
/// Keta could not read; `readings` is the mapping's result (or its refusal, in words without
/// patient data).
#[derive(Debug, Clone)]
pub struct InboundMonitorMessage {
    pub identifier: String,
    pub control_id: String,
    pub peer: String,
    pub raw: String,
    pub readings: std::result::Result<Vec<MonitorReading>, String>,
}

/// A reading a monitor wrote into a session (struck ones included), with the nurse's review.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviceReading {
    /// The vitals row (its `id` is the reading's id; `source` is `monitor`).
    pub record: VitalsRecord,
    /// Mean arterial pressure the monitor sent with it, if any.
    pub mean_mmhg: Option<Mmhg>,
    pub status: DeviceReadingStatus,
    /// Why it was struck (or the note given on confirming).
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub reviewed_at: Option<OffsetDateTime>,
    pub reviewed_by: Option<String>,
}

/// The condition (on `vitals v`) that leaves out readings a nurse struck as artefacts: every
/// reader of a session's vitals for alerts, discharge, charts, FHIR and the REMS form uses it.
pub(crate) const NOT_STRUCK: &str =
    "NOT EXISTS (SELECT 1 FROM monitor_vitals mv WHERE mv.vitals_id = v.id AND mv.status = 'struck')";

const DEVICE_READING_SQL: &str = "SELECT v.id AS id, v.session_id AS session_id, v.taken_at AS taken_at, v.systolic_mmhg AS systolic_mmhg, \
     v.diastolic_mmhg AS diastolic_mmhg, v.heart_rate_bpm AS heart_rate_bpm, v.spo2_pct AS spo2_pct, v.resp_rate_per_min AS resp_rate_per_min, \
     v.source AS source, mv.mean_mmhg AS mean_mmhg, mv.status AS status, mv.reason AS reason, mv.reviewed_at AS reviewed_at, mv.reviewed_by AS reviewed_by \
     FROM vitals v JOIN monitor_vitals mv ON mv.vitals_id = v.id";

fn device_reading_from(r: &Row, dose_started: Option<OffsetDateTime>) -> Result<DeviceReading> {
    Ok(DeviceReading {
        record: vitals_from(r, dose_started)?,
        mean_mmhg: r.opt_f64("mean_mmhg")?.map(Mmhg),
        status: DeviceReadingStatus::parse(&r.text("status")?)
            .ok_or_else(|| StoreError::Corrupt("monitor reading status".into()))?,
        reason: r.opt_text("reason")?,
        reviewed_at: opt_from_ms(r.opt_i64("reviewed_at")?)?,
        reviewed_by: r.opt_text("reviewed_by")?,
    })
}

/// What became of a message; the ACK follows from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorOutcome {
    /// Attached to the session in the chair (AA).
    Recorded { site: SiteId, session: SessionId, readings: usize, alerts: usize },
    /// Kept for the nurse's review, not attached (AE with the reason).
    Review { site: Option<SiteId>, reason: String },
    /// Already received with this control id: answered as the first time, nothing recorded.
    Duplicate { recorded: bool, reason: Option<String> },
}

/// A refused reading waiting for the nurse.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MonitorReviewItem {
    pub id: i64,
    pub device_identifier: String,
    pub site_id: Option<SiteId>,
    pub chair_id: Option<ChairId>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub observed_at: Option<OffsetDateTime>,
    pub reading: Option<VitalSigns>,
    /// Mean arterial pressure sent with the reading, if any.
    pub mean_mmhg: Option<Mmhg>,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

fn device_from(r: &Row) -> Result<MonitorDevice> {
    Ok(MonitorDevice {
        id: r.i64("id")?,
        site_id: SiteId(r.i64("site_id")?),
        chair_id: ChairId(r.i64("chair_id")?),
        identifier: r.text("identifier")?,
        label: r.text("label")?,
        registered_at: from_ms(r.i64("registered_at")?)?,
        registered_by: r.text("registered_by")?,
    })
}

const DEVICE_COLS: &str = "id, site_id, chair_id, identifier, label, registered_at, registered_by";

/// The one session in the chair that is checked in and not yet ended, if exactly one.
fn active_session_in_chair(
    c: &mut dyn Conn,
    chair: ChairId,
) -> Result<std::result::Result<keta_domain::session::TreatmentSession, String>> {
    let active = [SessionState::CheckedIn, SessionState::PreDoseChecks, SessionState::Dosing, SessionState::Monitoring];
    let rows = c.query(
        &format!(
            "SELECT {COLS} FROM sessions WHERE chair_id = $1 AND state IN ($2, $3, $4, $5) ORDER BY id FOR UPDATE"
        ),
        params![chair.0, active[0].as_str(), active[1].as_str(), active[2].as_str(), active[3].as_str()],
    )?;
    match rows.len() {
        0 => Ok(Err("no session is active in the monitor's chair".into())),
        1 => Ok(Ok(session_from(&rows[0])?)),
        _ => Ok(Err("more than one session is active in the monitor's chair".into())),
    }
}

#[allow(clippy::too_many_arguments)]
fn keep_message(
    c: &mut dyn Conn,
    m: &InboundMonitorMessage,
    now: OffsetDateTime,
    outcome: &str,
    reason: Option<&str>,
    site: Option<SiteId>,
    session: Option<SessionId>,
    readings: usize,
) -> Result<i64> {
    let (ident, control) =
        if outcome == "rejected" { (None, None) } else { (Some(m.identifier.as_str()), Some(m.control_id.as_str())) };
    c.insert(
        "INSERT INTO monitor_messages (device_identifier, control_id, received_at, peer, raw, outcome, reason, site_id, session_id, readings)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        params![ident, control, ms(now), m.peer.as_str(), m.raw.as_str(), outcome, reason, site.map(|s| s.0), session.map(|s| s.0), readings as i64],
    )
}

impl Store {
    /// Registers a monitor to a chair (an administrator). The identifier is what the monitor
    /// sends; one identifier names one monitor.
    pub async fn register_monitor(
        &self,
        actor: &Actor,
        chair: ChairId,
        identifier: &str,
        label: &str,
    ) -> Result<MonitorDevice> {
        actor.require(Permission::ManageUsers)?;
        let identifier = identifier.trim().to_string();
        let label = label.trim().to_string();
        let limits = &keta_domain::plausible::ranges().text;
        let mut v = keta_domain::error::Validator::new();
        v.check(!identifier.is_empty(), "identifier", "enter what the monitor sends in PV1-3 or MSH-4");
        v.check(identifier.chars().count() <= limits.short_text_max, "identifier", "the identifier is too long");
        v.check(
            !identifier.contains(['|', '\r', '\n']),
            "identifier",
            "an identifier cannot contain | or a line break",
        );
        v.check(!label.is_empty(), "label", "enter a label, e.g. the monitor's asset tag");
        v.check(label.chars().count() <= limits.name_max, "label", "the label is too long");
        v.finish()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let site = c
                .query_opt("SELECT site_id FROM chairs WHERE id = $1", params![chair.0])?
                .map(|r| r.i64("site_id"))
                .transpose()?
                .map(SiteId)
                .filter(|s| actor.scope.allows(*s))
                .ok_or_else(|| StoreError::from(DomainError::field("chair_id", "no such chair")))?;
            if c.query_opt("SELECT id FROM monitor_devices WHERE identifier = $1", params![identifier.as_str()])?.is_some() {
                return Err(StoreError::Conflict(format!("a monitor with identifier '{identifier}' is already registered")));
            }
            let id = c.insert(
                "INSERT INTO monitor_devices (site_id, chair_id, identifier, label, registered_at, registered_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                params![site.0, chair.0, identifier.as_str(), label.as_str(), ms(now), actor.name.as_str()],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "monitor_device", object_id: Some(id.to_string()), patient_id: None,
                site_id: Some(site), fields: &["identifier", "label", "chair_id"],
            })?;
            let r = c.query_opt(&format!("SELECT {DEVICE_COLS} FROM monitor_devices WHERE id = $1"), params![id])?.expect("just inserted");
            device_from(&r)
        })
        .await
    }

    /// The monitors registered at a site.
    pub async fn list_monitors(&self, actor: &Actor, site: SiteId) -> Result<Vec<MonitorDevice>> {
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        self.read(move |c| {
            c.query(
                &format!("SELECT {DEVICE_COLS} FROM monitor_devices WHERE site_id = $1 AND retired_at IS NULL ORDER BY identifier"),
                params![site.0],
            )?
            .iter()
            .map(device_from)
            .collect()
        })
        .await
    }

    /// Records a message from a monitor, all in one transaction: a retransmission (same
    /// device, same control id) is recognised and nothing is recorded again; otherwise the
    /// raw message is kept, and its readings go to the session active in the device's chair
    /// through the same path and safety rules as typed vitals (an alert once per episode),
    /// or, when refused, to the review list. The caller acknowledges after this returns.
    pub async fn record_monitor_message(&self, m: InboundMonitorMessage) -> Result<MonitorOutcome> {
        let now = self.now();
        self.write(move |c| {
            let actor = Actor::system_named(format!("monitor:{}", m.identifier.chars().take(60).collect::<String>()));
            if let Some(r) = c.query_opt(
                "SELECT outcome, reason FROM monitor_messages WHERE device_identifier = $1 AND control_id = $2",
                params![m.identifier.as_str(), m.control_id.as_str()],
            )? {
                return Ok(MonitorOutcome::Duplicate {
                    recorded: r.text("outcome")? == "recorded",
                    reason: r.opt_text("reason")?,
                });
            }
            let device = c
                .query_opt(
                    &format!("SELECT {DEVICE_COLS} FROM monitor_devices WHERE identifier = $1 AND retired_at IS NULL"),
                    params![m.identifier.as_str()],
                )?
                .map(|r| device_from(&r))
                .transpose()?;
            let refusal = match (&device, &m.readings) {
                (None, _) => Some("unknown device: register it under Administration, Monitors".to_string()),
                (Some(_), Err(reason)) => Some(reason.clone()),
                (Some(_), Ok(_)) => None,
            };
            let session = match (&device, &refusal) {
                (Some(d), None) => match active_session_in_chair(c, d.chair_id)? {
                    Ok(s) => Some(s),
                    Err(reason) => return review(c, &actor, &m, now, device.as_ref(), &reason),
                },
                _ => None,
            };
            let (Some(s), Ok(readings)) = (session, &m.readings) else {
                let reason = refusal.unwrap_or_else(|| "not attached".into());
                return review(c, &actor, &m, now, device.as_ref(), &reason);
            };
            let message_id = keep_message(c, &m, now, "recorded", None, Some(s.site_id), Some(s.id), readings.len())?;
            let mut alerts = 0;
            for r in readings {
                let judging = Judging { once_per_episode: true, refuse_double_entry: false, remember: false };
                let (_, rec) =
                    insert_vitals(c, &actor, now, s.id, (r.vitals, r.observed_at, VitalsSource::Monitor), judging)?;
                alerts += rec.alerts.len();
                c.execute(
                    "INSERT INTO monitor_vitals (vitals_id, message_id, status, mean_mmhg) VALUES ($1, $2, $3, $4)",
                    params![
                        rec.record.id.0,
                        message_id,
                        DeviceReadingStatus::Unreviewed.as_str(),
                        r.mean_mmhg.map(|m| m.0)
                    ],
                )?;
            }
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Create,
                    object_type: "monitor_message",
                    object_id: Some(message_id.to_string()),
                    patient_id: Some(s.patient_id),
                    site_id: Some(s.site_id),
                    fields: &["readings"],
                },
            )?;
            Ok(MonitorOutcome::Recorded { site: s.site_id, session: s.id, readings: readings.len(), alerts })
        })
        .await
    }

    /// Keeps a frame Keta could not read or will not take (not HL7, not ORU^R01, too large):
    /// raw, for troubleshooting, with the reason; no control id, so a corrected resend is new.
    pub async fn record_rejected_monitor_frame(&self, peer: String, raw: String, reason: String) -> Result<()> {
        let now = self.now();
        self.write(move |c| {
            let m = InboundMonitorMessage {
                identifier: String::new(),
                control_id: String::new(),
                peer,
                raw,
                readings: Err(reason.clone()),
            };
            let id = keep_message(c, &m, now, "rejected", Some(&reason), None, None, 0)?;
            audit::record(
                c,
                &Actor::system_named("monitor".into()),
                now,
                Entry {
                    action: Action::Create,
                    object_type: "monitor_message",
                    object_id: Some(id.to_string()),
                    patient_id: None,
                    site_id: None,
                    fields: &["rejected"],
                },
            )?;
            Ok(())
        })
        .await
    }

    /// Readings refused and not yet dealt with, newest first, for the sites the actor sees
    /// (and those from unknown devices, which belong to no site).
    pub async fn monitor_review_list(&self, actor: &Actor) -> Result<Vec<MonitorReviewItem>> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        self.read(move |c| {
            let rows = c.query(
                "SELECT id, device_identifier, site_id, chair_id, observed_at, reading, mean_mmhg, reason, received_at FROM monitor_review
                 WHERE resolved_at IS NULL ORDER BY received_at DESC, id DESC LIMIT 500",
                &[],
            )?;
            let mut out = Vec::new();
            for r in &rows {
                let site = r.opt_i64("site_id")?.map(SiteId);
                if site.is_some_and(|s| !act.scope.allows(s)) {
                    continue;
                }
                out.push(MonitorReviewItem {
                    id: r.i64("id")?,
                    device_identifier: r.text("device_identifier")?,
                    site_id: site,
                    chair_id: r.opt_i64("chair_id")?.map(ChairId),
                    observed_at: opt_from_ms(r.opt_i64("observed_at")?)?,
                    reading: r
                        .opt_text("reading")?
                        .map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("review reading: {e}"))))
                        .transpose()?,
                    mean_mmhg: r.opt_f64("mean_mmhg")?.map(Mmhg),
                    reason: r.text("reason")?,
                    received_at: from_ms(r.i64("received_at")?)?,
                });
            }
            Ok(out)
        })
        .await
    }

    /// The readings monitors wrote into a session, newest first, struck ones included (marked),
    /// with the mean pressure each came with: the session screen's device panel.
    pub async fn device_readings(&self, actor: &Actor, session: SessionId) -> Result<Vec<DeviceReading>> {
        self.read_record_audited(
            actor,
            Permission::ViewClinical,
            "device_readings",
            Some(session.to_string()),
            move |c, act| {
                let s = get_session(c, act, session)?;
                let rows = c.query(
                    &format!("{DEVICE_READING_SQL} WHERE v.session_id = $1 ORDER BY v.taken_at DESC, v.id DESC"),
                    params![s.id.0],
                )?;
                let out = rows.iter().map(|r| device_reading_from(r, s.dose_started_at)).collect::<Result<Vec<_>>>()?;
                Ok((s.patient_id, out))
            },
        )
        .await
    }

    /// The nurse confirms a monitor's reading, or strikes it as an artefact with a reason
    /// (`keta_domain::device_readings::review`). A struck reading stays on record but no longer
    /// counts for the alert rules' baseline, discharge, charts, FHIR or the REMS form. Only
    /// while the session is open (after it ends, the note's amendments say what was wrong);
    /// a guarded update, so two nurses reviewing at once cannot both win; audited in the same
    /// transaction.
    pub async fn review_device_reading(
        &self,
        actor: &Actor,
        session: SessionId,
        reading: RecordId,
        decision: DeviceReadingDecision,
        reason: Option<String>,
    ) -> Result<DeviceReading> {
        actor.require(Permission::RecordSession)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let s = get_session_for_update(c, &actor, session)?;
            if s.state.is_terminal() {
                return Err(StoreError::Conflict(format!(
                    "the session is {}; readings can no longer be reviewed (add an amendment to the note instead)",
                    s.state.as_str()
                )));
            }
            let current = c
                .query_opt(
                    &format!("{DEVICE_READING_SQL} WHERE v.id = $1 AND v.session_id = $2"),
                    params![reading.0, s.id.0],
                )?
                .map(|r| device_reading_from(&r, s.dose_started_at))
                .transpose()?
                .ok_or_else(|| StoreError::NotFound(format!("monitor reading {} in session {}", reading.0, s.id)))?;
            let limit = keta_domain::plausible::ranges().text.short_text_max;
            let review = keta_domain::device_readings::review(current.status, decision, reason.as_deref(), limit)?;
            let changed = c.execute(
                "UPDATE monitor_vitals SET status = $1, reason = $2, reviewed_at = $3, reviewed_by = $4 WHERE vitals_id = $5 AND status = $6",
                params![review.status.as_str(), review.reason.as_deref(), ms(now), actor.name.as_str(), reading.0, current.status.as_str()],
            )?;
            if changed != 1 {
                return Err(StoreError::Conflict("someone reviewed this reading just now; reload to see it".into()));
            }
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "device_reading",
                    object_id: Some(reading.0.to_string()),
                    patient_id: Some(s.patient_id),
                    site_id: Some(s.site_id),
                    fields: &["status", "reason"],
                },
            )?;
            Ok(DeviceReading {
                status: review.status,
                reason: review.reason,
                reviewed_at: Some(now),
                reviewed_by: Some(actor.name.clone()),
                ..current
            })
        })
        .await
    }

    /// Clears the raw text of messages older than the retention period (their control ids
    /// stay, so a late retransmission is still recognised). Returns how many were cleared.
    pub async fn purge_monitor_raw(&self, retention: Duration) -> Result<u64> {
        let cutoff = ms(self.now() - retention);
        self.write(move |c| {
            let n = c.execute(
                "UPDATE monitor_messages SET raw = NULL WHERE received_at < $1 AND raw IS NOT NULL",
                params![cutoff],
            )?;
            Ok(n)
        })
        .await
    }
}

fn review(
    c: &mut dyn Conn,
    actor: &Actor,
    m: &InboundMonitorMessage,
    now: OffsetDateTime,
    device: Option<&MonitorDevice>,
    reason: &str,
) -> Result<MonitorOutcome> {
    let site = device.map(|d| d.site_id);
    let message_id = keep_message(c, m, now, "review", Some(reason), site, None, 0)?;
    let readings: Vec<Option<&MonitorReading>> = match &m.readings {
        Ok(r) if !r.is_empty() => r.iter().map(Some).collect(),
        _ => vec![None],
    };
    for reading in readings {
        let json = reading.map(|r| serde_json::to_string(&r.vitals).expect("vitals serialise"));
        c.insert(
            "INSERT INTO monitor_review (message_id, device_identifier, site_id, chair_id, observed_at, reading, mean_mmhg, reason, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            params![
                message_id, m.identifier.as_str(), site.map(|s| s.0), device.map(|d| d.chair_id.0),
                reading.map(|r| ms(r.observed_at)), json, reading.and_then(|r| r.mean_mmhg).map(|x| x.0), reason, ms(now)
            ],
        )?;
    }
    audit::record(
        c,
        actor,
        now,
        Entry {
            action: Action::Create,
            object_type: "monitor_message",
            object_id: Some(message_id.to_string()),
            patient_id: None,
            site_id: site,
            fields: &["review"],
        },
    )?;
    Ok(MonitorOutcome::Review { site, reason: reason.to_string() })
}
