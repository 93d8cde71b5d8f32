//! A course is a prescription: the prescriber's order for a course, the
//! session dose checked against it, and the prescriber's documented override for a dose
//! outside it. Orders are append-only: a changed order is a new row, the latest in force.

use time::OffsetDateTime;

use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::dosing::DoseAmount;
use keta_domain::ids::{CourseId, PatientId, RecordId, SessionId};
use keta_domain::prescription::{NewCourseOrder, NewOrderOverride};
use keta_domain::protocols::Protocol;
use keta_domain::session::TreatmentSession;

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::time_codec::{from_json, from_ms, json, ms};
use crate::{Actor, Store, params};

/// An order as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct CourseOrder {
    pub id: RecordId,
    pub course_id: CourseId,
    pub patient_id: PatientId,
    pub order: NewCourseOrder,
    pub ordered_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub ordered_at: OffsetDateTime,
}

/// A prescriber's override as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct OrderOverride {
    pub id: RecordId,
    pub session_id: SessionId,
    pub order_id: RecordId,
    pub dose: DoseAmount,
    pub reason: String,
    pub decided_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
}

fn order_from(r: &Row) -> Result<CourseOrder> {
    Ok(CourseOrder {
        id: RecordId(r.i64("id")?),
        course_id: CourseId(r.i64("course_id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        order: from_json(&r.text("body")?)?,
        ordered_by: r.text("ordered_by")?,
        ordered_at: from_ms(r.i64("ordered_at")?)?,
    })
}

/// The order in force for a course (the latest), if any.
pub(crate) fn current_order(c: &mut dyn Conn, course: CourseId) -> Result<Option<CourseOrder>> {
    c.query_opt(
        "SELECT id, course_id, patient_id, body, ordered_by, ordered_at FROM course_orders WHERE course_id = $1 ORDER BY id DESC LIMIT 1",
        params![course.0],
    )?
    .as_ref()
    .map(order_from)
    .transpose()
}

fn overrides_for(c: &mut dyn Conn, session: SessionId) -> Result<Vec<OrderOverride>> {
    c.query(
        "SELECT id, session_id, order_id, dose, reason, decided_by, decided_at FROM order_overrides WHERE session_id = $1 ORDER BY id",
        params![session.0],
    )?
    .iter()
    .map(|r| {
        Ok(OrderOverride {
            id: RecordId(r.i64("id")?),
            session_id: SessionId(r.i64("session_id")?),
            order_id: RecordId(r.i64("order_id")?),
            dose: from_json(&r.text("dose")?)?,
            reason: r.text("reason")?,
            decided_by: r.text("decided_by")?,
            decided_at: from_ms(r.i64("decided_at")?)?,
        })
    })
    .collect()
}

fn same_dose(a: &DoseAmount, b: &DoseAmount) -> bool {
    a.basis() == b.basis() && (a.value() - b.value()).abs() <= 1e-6 * a.value().abs().max(1.0)
}

/// Refuses a session dose outside the course's order unless a prescriber recorded an
/// override for that dose in this session. Courses without an order are not checked here
/// (the protocol's limits still are, by the calculator).
pub(crate) fn check_session_dose(
    c: &mut dyn Conn,
    s: &TreatmentSession,
    protocol: &Protocol,
    asked: &DoseAmount,
) -> Result<()> {
    let Some(o) = current_order(c, s.course_id)? else { return Ok(()) };
    if o.order.protocol_id != protocol.id {
        return Err(DomainError::field(
            "protocol",
            format!("the course's order follows '{}', not '{}'", o.order.protocol_id, protocol.id),
        )
        .into());
    }
    let Err(why) = o.order.check(protocol, asked) else { return Ok(()) };
    let covered = overrides_for(c, s.id)?.iter().any(|x| x.order_id == o.id && same_dose(&x.dose, asked));
    if covered {
        return Ok(());
    }
    Err(DomainError::field("dose", why).into())
}

impl Store {
    /// Records (or replaces) the prescriber's order for a course; `protocol` is the one the
    /// order names, resolved by the caller from the protocol library.
    pub async fn record_course_order(
        &self,
        actor: &Actor,
        course: CourseId,
        protocol: &Protocol,
        order: NewCourseOrder,
    ) -> Result<CourseOrder> {
        actor.require(Permission::PlanTreatment)?;
        if order.protocol_id != protocol.id {
            return Err(DomainError::field("protocol_id", format!("unknown protocol '{}'", order.protocol_id)).into());
        }
        let protocol = protocol.clone();
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let course = crate::courses::get_course(c, &actor, course)?;
            order.validate(course.route, &protocol)?;
            let id = c.insert(
                "INSERT INTO course_orders (course_id, patient_id, site_id, protocol_id, body, ordered_by, ordered_by_user_id, ordered_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                params![
                    course.id.0, course.patient_id.0, course.site_id.0, order.protocol_id.as_str(), json(&order),
                    actor.name.as_str(), actor.user_id, ms(now)
                ],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create,
                object_type: "course_order",
                object_id: Some(id.to_string()),
                patient_id: Some(course.patient_id),
                site_id: Some(course.site_id),
                fields: &["protocol_id", "dose", "infusion_min", "final_volume_ml", "vial_mg_per_ml", "titration_step", "max_dose"],
            })?;
            current_order(c, course.id)?.ok_or_else(|| StoreError::Corrupt("order just written".into()))
        })
        .await
    }

    /// The order in force for a course, if any; audited.
    pub async fn course_order(&self, actor: &Actor, course: CourseId) -> Result<Option<CourseOrder>> {
        self.read_record_audited(
            actor,
            Permission::ViewClinical,
            "course_order",
            Some(course.to_string()),
            move |c, act| {
                let co = crate::courses::get_course(c, act, course)?;
                Ok((co.patient_id, current_order(c, course)?))
            },
        )
        .await
    }

    /// A prescriber documents that this session may be given `dose` outside the order,
    /// with the reason; written in the session note too.
    pub async fn record_order_override(
        &self,
        actor: &Actor,
        session: SessionId,
        new: NewOrderOverride,
    ) -> Result<OrderOverride> {
        actor
            .require(Permission::PlanTreatment)
            .map_err(|_| StoreError::Forbidden("only a prescriber can override the order".into()))?;
        new.validate()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let s = crate::sessions::get_session_for_update(c, &actor, session)?;
            if s.state.is_terminal() || s.state.dose_started() {
                return Err(StoreError::Conflict(format!("the session is {}: the dose can no longer change", s.state.as_str())));
            }
            let Some(o) = current_order(c, s.course_id)? else {
                return Err(StoreError::Conflict("this course has no prescriber's order to override".into()));
            };
            let reason = new.reason.trim().to_string();
            let id = c.insert(
                "INSERT INTO order_overrides (session_id, patient_id, order_id, dose, reason, decided_by, decided_by_user_id, decided_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                params![s.id.0, s.patient_id.0, o.id.0, json(&new.dose), reason.as_str(), actor.name.as_str(), actor.user_id, ms(now)],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create,
                object_type: "order_override",
                object_id: Some(id.to_string()),
                patient_id: Some(s.patient_id),
                site_id: Some(s.site_id),
                fields: &["dose", "reason"],
            })?;
            overrides_for(c, s.id)?
                .into_iter()
                .find(|x| x.id.0 == id)
                .ok_or_else(|| StoreError::Corrupt("override just written".into()))
        })
        .await
    }

    /// The overrides recorded in a session; audited.
    pub async fn list_order_overrides(&self, actor: &Actor, session: SessionId) -> Result<Vec<OrderOverride>> {
        self.read_record_audited(
            actor,
            Permission::ViewClinical,
            "order_overrides",
            Some(session.to_string()),
            move |c, act| {
                let s = crate::sessions::get_session(c, act, session)?;
                Ok((s.patient_id, overrides_for(c, session)?))
            },
        )
        .await
    }
}
