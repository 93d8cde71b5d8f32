//! Alerts: listing what is open, recording who acknowledged what, and escalating urgent alerts
//! nobody acknowledged in time (once each, to the prescriber on duty).

use keta_domain::DomainError;
use keta_domain::alerts::{AlertFiring, AlertSeverity};
use keta_domain::escalation::{EscalationSettings, OnDuty};
use keta_domain::ids::{AlertId, PatientId, SessionId, SiteId};
use keta_domain::records::{Alert, AlertLevel};
use time::OffsetDateTime;

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
        id: AlertId(r.i64("id")?),
        site_id: SiteId(r.i64("site_id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        session_id: r.opt_i64("session_id")?.map(SessionId),
        rule: r.text("rule")?,
        level: AlertLevel::parse(&r.text("severity")?).ok_or_else(|| StoreError::Corrupt("alert severity".into()))?,
        message: r.text("message")?,
        source: r.text("source")?,
        raised_at: from_ms(r.i64("raised_at")?)?,
        acknowledged_at: opt_from_ms(r.opt_i64("acknowledged_at")?)?,
        acknowledged_by: r.opt_text("acknowledged_by")?,
        acknowledgement_note: r.opt_text("acknowledgement_note")?,
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

pub(crate) fn list(c: &mut dyn Conn, actor: &Actor, q: &AlertQuery) -> Result<Vec<Alert>> {
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
        if note.as_ref().is_some_and(|n| !keta_domain::notes::within_chars(n, keta_domain::notes::MAX_SHORT_NOTE_CHARS))
        {
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
            // An urgent alert stays open until a clinician records what was done.
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

// ---------------------------------------------------------------------------------------------
// Escalation of urgent alerts nobody acknowledged (rules in keta_domain::escalation)

/// Key of the clinic-wide escalation rule in `clinic_settings`.
pub const ESCALATION_SETTINGS: &str = "alert_escalation";

/// A recorded escalation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AlertEscalation {
    pub alert_id: AlertId,
    pub site_id: SiteId,
    #[serde(with = "time::serde::rfc3339")]
    pub escalated_at: OffsetDateTime,
    /// The clinic's setting when it was escalated.
    pub after_minutes: u32,
    /// Username of the prescriber on duty who was sent the message; `null`: nobody on duty.
    pub notified_user: Option<String>,
    /// Whether the message went; `null` until a send was tried (or with nobody to send to).
    pub delivered: Option<bool>,
    pub delivery_detail: Option<String>,
}

const ESC_COLS: &str =
    "e.alert_id, e.site_id, e.escalated_at, e.after_minutes, e.notified_user, e.delivered, e.delivery_detail";

fn escalation_from(r: &Row) -> Result<AlertEscalation> {
    Ok(AlertEscalation {
        alert_id: AlertId(r.i64("alert_id")?),
        site_id: SiteId(r.i64("site_id")?),
        escalated_at: from_ms(r.i64("escalated_at")?)?,
        after_minutes: u32::try_from(r.i64("after_minutes")?)
            .map_err(|_| StoreError::Corrupt("escalation minutes".into()))?,
        notified_user: r.opt_text("notified_user")?,
        delivered: match r.opt_i64("delivered")? {
            None => None,
            Some(_) => Some(r.bool("delivered")?),
        },
        delivery_detail: r.opt_text("delivery_detail")?,
    })
}

/// An escalation the sweep just made, with where its message goes.
#[derive(Debug, Clone)]
pub struct DueEscalation {
    pub alert: Alert,
    pub escalation: AlertEscalation,
    pub site_name: String,
    pub time_zone: String,
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
}

/// What a site's boards need: its open escalated alerts, whether to sound, and the rule.
#[derive(Debug, Clone, Default)]
pub struct BoardEscalation {
    pub escalated: Vec<AlertEscalation>,
    pub alert_sound: bool,
    pub settings: EscalationSettings,
}

fn escalation_settings(c: &mut dyn Conn) -> Result<EscalationSettings> {
    Ok(crate::checkins::clinic_setting(c, ESCALATION_SETTINGS)?.unwrap_or_default())
}

struct OnDutyRow {
    prescriber: Option<String>,
    contact_email: Option<String>,
    contact_phone: Option<String>,
    alert_sound: bool,
}

fn on_duty_row(c: &mut dyn Conn, site: SiteId) -> Result<Option<OnDutyRow>> {
    c.query_opt(
        "SELECT u.username, d.contact_email, d.contact_phone, d.alert_sound FROM site_on_duty d
         LEFT JOIN users u ON u.id = d.prescriber_user_id WHERE d.site_id = $1",
        params![site.0],
    )?
    .map(|r| {
        Ok(OnDutyRow {
            prescriber: r.opt_text("username")?,
            contact_email: r.opt_text("contact_email")?,
            contact_phone: r.opt_text("contact_phone")?,
            alert_sound: r.bool("alert_sound")?,
        })
    })
    .transpose()
}

fn system_audit(c: &mut dyn Conn, now: OffsetDateTime, a: &Alert, action: Action, fields: &[&str]) -> Result<()> {
    audit::record(
        c,
        &Actor::system(),
        now,
        Entry {
            action,
            object_type: "alert_escalation",
            object_id: Some(a.id.to_string()),
            patient_id: Some(a.patient_id),
            site_id: Some(a.site_id),
            fields,
        },
    )
}

impl Store {
    /// The clinic's escalation rule (unset: no alert is escalated).
    pub async fn escalation_settings(&self) -> Result<EscalationSettings> {
        self.read(escalation_settings).await
    }

    /// Sets the clinic's escalation rule (administrators of every site), validated first.
    pub async fn set_escalation_settings(&self, actor: &Actor, s: EscalationSettings) -> Result<()> {
        s.validate()?;
        let value = serde_json::to_value(s).map_err(|e| StoreError::Backend(format!("serialising a setting: {e}")))?;
        self.set_clinic_setting(actor, ESCALATION_SETTINGS, value).await
    }

    /// Who is on duty at `site` (nobody, without sound, until an administrator sets it).
    pub async fn on_duty(&self, actor: &Actor, site: SiteId) -> Result<OnDuty> {
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        self.read(move |c| {
            crate::sites::get_site(c, site)?;
            Ok(on_duty_row(c, site)?.map_or_else(OnDuty::default, |d| OnDuty {
                prescriber: d.prescriber,
                contact_email: d.contact_email,
                contact_phone: d.contact_phone,
                alert_sound: d.alert_sound,
            }))
        })
        .await
    }

    /// Names the prescriber on duty at `site` and how to reach them, and whether its boards
    /// sound. The account must be an enabled prescriber who works at the site.
    pub async fn set_on_duty(&self, actor: &Actor, site: SiteId, s: OnDuty) -> Result<OnDuty> {
        actor.require(keta_domain::access::Permission::ManageUsers)?;
        s.validate()?;
        let now = self.now();
        let actor = actor.clone();
        let trimmed = |v: &Option<String>| v.as_deref().map(str::trim).filter(|x| !x.is_empty()).map(String::from);
        let (email, phone) = (trimmed(&s.contact_email), trimmed(&s.contact_phone));
        self.write(move |c| {
            crate::sites::get_site(c, site)?;
            if !actor.scope.allows(site) {
                return Err(StoreError::NotFound(format!("site {site}")));
            }
            let user_id = match s.prescriber.as_deref().map(str::trim) {
                None => None,
                Some(name) => {
                    let r = c
                        .query_opt("SELECT id, role, disabled FROM users WHERE username = $1", params![name])?
                        .ok_or_else(|| DomainError::field("prescriber", format!("no account is called `{name}`")))?;
                    let id = r.i64("id")?;
                    let works_here = c
                        .query_opt(
                            "SELECT 1 FROM user_sites WHERE user_id = $1 AND site_id = $2",
                            params![id, site.0],
                        )?
                        .is_some();
                    let mut v = keta_domain::error::Validator::new();
                    v.check(r.text("role")? == "prescriber", "prescriber", format!("`{name}` is not a prescriber"));
                    v.check(!r.bool("disabled")?, "prescriber", format!("`{name}`'s account is disabled"));
                    v.check(works_here, "prescriber", format!("`{name}` does not work at this site"));
                    v.finish()?;
                    Some(id)
                }
            };
            c.execute(
                "INSERT INTO site_on_duty (site_id, prescriber_user_id, contact_email, contact_phone, alert_sound, updated_at, updated_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (site_id) DO UPDATE SET prescriber_user_id = excluded.prescriber_user_id,
                 contact_email = excluded.contact_email, contact_phone = excluded.contact_phone,
                 alert_sound = excluded.alert_sound, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                params![
                    site.0,
                    user_id,
                    email.as_deref(),
                    phone.as_deref(),
                    s.alert_sound,
                    ms(now),
                    actor.name.as_str()
                ],
            )?;
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "site_on_duty",
                    object_id: Some(site.to_string()),
                    patient_id: None,
                    site_id: Some(site),
                    fields: &["prescriber", "contact_email", "contact_phone", "alert_sound"],
                },
            )?;
            Ok(OnDuty {
                prescriber: s.prescriber.map(|p| p.trim().to_string()),
                contact_email: email,
                contact_phone: phone,
                alert_sound: s.alert_sound,
            })
        })
        .await
    }

    /// Escalates, once each, the open urgent alerts older than the clinic allows (run by the
    /// server's sweep; nothing when the rule is unset). Each escalation is recorded and audited
    /// in the same transaction; the caller sends the messages and records how they went
    /// ([`Store::record_escalation_delivery`]).
    pub async fn escalate_due_alerts(&self) -> Result<Vec<DueEscalation>> {
        let now = self.now();
        self.write(move |c| {
            let settings = escalation_settings(c)?;
            let Some(after) = settings.escalate_after_minutes else { return Ok(Vec::new()) };
            let cutoff = now - time::Duration::minutes(i64::from(after));
            let open = c.query(
                &format!(
                    "SELECT {COLS} FROM alerts WHERE severity = 'urgent' AND acknowledged_at IS NULL AND raised_at <= $1
                     AND NOT EXISTS (SELECT 1 FROM alert_escalations x WHERE x.alert_id = alerts.id) ORDER BY raised_at, id"
                ),
                params![ms(cutoff)],
            )?;
            let mut out = Vec::new();
            for r in &open {
                let a = alert_from(r)?;
                if !settings.is_due(&a, now) {
                    continue;
                }
                let duty = on_duty_row(c, a.site_id)?;
                let reachable = duty.as_ref().filter(|d| d.contact_email.is_some() || d.contact_phone.is_some());
                let notified = reachable.and_then(|d| d.prescriber.clone());
                let n = c.execute(
                    "INSERT INTO alert_escalations (alert_id, site_id, escalated_at, after_minutes, notified_user)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (alert_id) DO NOTHING",
                    params![a.id.0, a.site_id.0, ms(now), i64::from(after), notified.as_deref()],
                )?;
                if n == 0 {
                    continue; // another sweep escalated it
                }
                system_audit(c, now, &a, Action::Create, &["escalated_at", "after_minutes", "notified_user"])?;
                let site = crate::sites::get_site(c, a.site_id)?;
                out.push(DueEscalation {
                    escalation: AlertEscalation {
                        alert_id: a.id,
                        site_id: a.site_id,
                        escalated_at: now,
                        after_minutes: after,
                        notified_user: notified,
                        delivered: None,
                        delivery_detail: None,
                    },
                    alert: a,
                    site_name: site.name,
                    time_zone: site.time_zone,
                    contact_email: reachable.and_then(|d| d.contact_email.clone()),
                    contact_phone: reachable.and_then(|d| d.contact_phone.clone()),
                });
            }
            Ok(out)
        })
        .await
    }

    /// Records how an escalation's message went (audited).
    pub async fn record_escalation_delivery(&self, alert: AlertId, delivered: bool, detail: String) -> Result<()> {
        let now = self.now();
        self.write(move |c| {
            let r = c
                .query_opt(&format!("SELECT {COLS} FROM alerts WHERE id = $1"), params![alert.0])?
                .ok_or_else(|| StoreError::NotFound(format!("alert {alert}")))?;
            let a = alert_from(&r)?;
            let n = c.execute(
                "UPDATE alert_escalations SET delivered = $1, delivery_detail = $2 WHERE alert_id = $3",
                params![delivered, detail.as_str(), alert.0],
            )?;
            if n != 1 {
                return Err(StoreError::NotFound(format!("escalation of alert {alert}")));
            }
            system_audit(c, now, &a, Action::Update, &["delivered", "delivery_detail"])
        })
        .await
    }

    /// The escalations of alerts at `site`; `open_only`: of alerts still unacknowledged.
    pub async fn alert_escalations(
        &self,
        actor: &Actor,
        site: SiteId,
        open_only: bool,
    ) -> Result<Vec<AlertEscalation>> {
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        self.read(move |c| {
            let open = if open_only { " AND a.acknowledged_at IS NULL" } else { "" };
            c.query(
                &format!(
                    "SELECT {ESC_COLS} FROM alert_escalations e JOIN alerts a ON a.id = e.alert_id
                     WHERE e.site_id = $1{open} ORDER BY e.escalated_at, e.alert_id"
                ),
                params![site.0],
            )?
            .iter()
            .map(escalation_from)
            .collect()
        })
        .await
    }

    /// What `site`'s boards show of escalation, in one read: escalated open alerts (for clinical
    /// staff), whether to sound, and the clinic's rule.
    pub async fn board_escalation(&self, actor: &Actor, site: SiteId) -> Result<BoardEscalation> {
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        let clinical = actor.can(keta_domain::access::Permission::ViewClinical);
        self.read(move |c| {
            let escalated = if clinical {
                c.query(
                    &format!(
                        "SELECT {ESC_COLS} FROM alert_escalations e JOIN alerts a ON a.id = e.alert_id
                         WHERE e.site_id = $1 AND a.acknowledged_at IS NULL ORDER BY e.escalated_at, e.alert_id"
                    ),
                    params![site.0],
                )?
                .iter()
                .map(escalation_from)
                .collect::<Result<Vec<_>>>()?
            } else {
                Vec::new()
            };
            Ok(BoardEscalation {
                escalated,
                alert_sound: on_duty_row(c, site)?.is_some_and(|d| d.alert_sound),
                settings: escalation_settings(c)?,
            })
        })
        .await
    }
}
