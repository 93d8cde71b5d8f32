//! Alerts: listing what is open and recording who acknowledged what.

use keta_domain::DomainError;
use keta_domain::alerts::{AlertFiring, AlertSeverity};
use keta_domain::ids::{AlertId, PatientId, SessionId, SiteId};
use keta_domain::records::{Alert, AlertLevel};

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::time_codec::{from_ms, ms, opt_from_ms};
use crate::{Actor, Store, params};

pub(crate) fn level_of(f: &AlertFiring) -> AlertLevel {
    match f.severity {
        AlertSeverity::Urgent => AlertLevel::Urgent,
        AlertSeverity::Warning => AlertLevel::Warning,
    }
}

pub(crate) const COLS: &str = "id, site_id, patient_id, session_id, rule, severity, message, source, raised_at, acknowledged_at, acknowledged_by, acknowledgement_note";

pub(crate) fn alert_from(r: &Row) -> Result<Alert> {
    Ok(Alert {
        id: AlertId(r.i64(0)?),
        site_id: SiteId(r.i64(1)?),
        patient_id: PatientId(r.i64(2)?),
        session_id: r.opt_i64(3)?.map(SessionId),
        rule: r.text(4)?,
        level: AlertLevel::parse(&r.text(5)?).ok_or_else(|| StoreError::Corrupt("alert severity".into()))?,
        message: r.text(6)?,
        source: r.text(7)?,
        raised_at: from_ms(r.i64(8)?)?,
        acknowledged_at: opt_from_ms(r.opt_i64(9)?)?,
        acknowledged_by: r.opt_text(10)?,
        acknowledgement_note: r.opt_text(11)?,
    })
}

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub site_id: Option<SiteId>,
    pub patient_id: Option<PatientId>,
    pub session_id: Option<SessionId>,
    pub open_only: bool,
    pub limit: i64,
}

pub fn list(c: &mut dyn Conn, actor: &Actor, q: &AlertQuery) -> Result<Vec<Alert>> {
    let mut sql = format!("SELECT {COLS} FROM alerts WHERE {}", actor.scope.sql("site_id"));
    let mut p = Vec::new();
    for (col, v) in [
        ("site_id", q.site_id.map(|s| s.0)),
        ("patient_id", q.patient_id.map(|s| s.0)),
        ("session_id", q.session_id.map(|s| s.0)),
    ] {
        if let Some(v) = v {
            p.push(v.into());
            sql.push_str(&format!(" AND {col} = ${}", p.len()));
        }
    }
    if q.open_only {
        sql.push_str(" AND acknowledged_at IS NULL");
    }
    p.push(q.limit.clamp(1, 1000).into());
    // Urgent first, then newest.
    sql.push_str(&format!(
        " ORDER BY CASE severity WHEN 'urgent' THEN 0 ELSE 1 END, raised_at DESC, id DESC LIMIT ${}",
        p.len()
    ));
    c.query(&sql, &p)?.iter().map(alert_from).collect()
}

impl Store {
    pub async fn list_alerts(&self, actor: &Actor, q: AlertQuery) -> Result<Vec<Alert>> {
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        let actor = actor.clone();
        self.read(move |c| list(c, &actor, &q)).await
    }

    /// Records that `actor` saw the alert and what was done. Acknowledging twice is refused
    /// so the first acknowledgement is never overwritten.
    pub async fn acknowledge_alert(&self, actor: &Actor, id: AlertId, note: Option<String>) -> Result<Alert> {
        actor.require(keta_domain::access::Permission::RecordSession)?;
        if note.as_ref().is_some_and(|n| n.len() > 2000) {
            return Err(DomainError::field("note", "keep the note under 2000 characters").into());
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let r = c
                .query_opt(&format!("SELECT {COLS} FROM alerts WHERE id = $1"), params![id.0])?
                .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))?;
            let mut a = alert_from(&r)?;
            if !actor.may_see(a.site_id, a.patient_id) {
                return Err(StoreError::NotFound(format!("alert {id}")));
            }
            if let (Some(at), Some(by)) = (a.acknowledged_at, &a.acknowledged_by) {
                return Err(StoreError::Conflict(format!("alert {id} was already acknowledged by {by} at {at}")));
            }
            // Issue 6: an urgent alert stays open until a clinician records what was done.
            if a.level == AlertLevel::Urgent && note.as_deref().is_none_or(|n| n.trim().chars().count() < 3) {
                return Err(DomainError::field(
                    "note",
                    "an urgent alert stays open until you record what was done (e.g. \"Phoned patient; safety plan reviewed\")",
                )
                .into());
            }
            // Guarded: of two acknowledgements at once, the second changes nothing and is told who won.
            let changed = c.execute(
                "UPDATE alerts SET acknowledged_at = $1, acknowledged_by = $2, acknowledgement_note = $3 WHERE id = $4 AND acknowledged_at IS NULL",
                params![ms(now), actor.name.as_str(), note.as_deref(), id.0],
            )?;
            if changed != 1 {
                let first = c
                    .query_opt(&format!("SELECT {COLS} FROM alerts WHERE id = $1"), params![id.0])?
                    .map(|r| alert_from(&r))
                    .transpose()?;
                return Err(StoreError::Conflict(match first {
                    Some(Alert { acknowledged_at: Some(at), acknowledged_by: Some(by), .. }) => {
                        format!("alert {id} was already acknowledged by {by} at {at}")
                    }
                    _ => format!("alert {id} was already acknowledged"),
                }));
            }
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "alert",
                    object_id: Some(id.to_string()),
                    patient_id: Some(a.patient_id),
                    site_id: Some(a.site_id),
                    fields: &["acknowledged_at", "acknowledged_by", "acknowledgement_note"],
                },
            )?;
            a.acknowledged_at = Some(now);
            a.acknowledged_by = Some(actor.name.clone());
            a.acknowledgement_note = note;
            Ok(a)
        })
        .await
    }
}
