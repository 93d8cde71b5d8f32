//! Pre-treatment confirmations and caution decisions (`keta_domain::pretreatment`): written
//! once per course by the prescriber who plans it, checked against the route's checks and
//! the cautions of the patient's latest assessment for the route, audited in the same
//! transaction; read (audited) for the chart and the session's note.

use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::course::Course;
use keta_domain::ids::{CourseId, PatientId, RecordId};
use keta_domain::pretreatment::{CautionDecision, CoursePretreatment, NewPretreatment, PretreatmentConfirmation};

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::Result;
use crate::time_codec::{from_ms, ms};
use crate::{Actor, Store, params};

fn confirmation_from(r: &Row) -> Result<PretreatmentConfirmation> {
    Ok(PretreatmentConfirmation {
        id: RecordId(r.i64("id")?),
        code: r.text("check_code")?,
        label: r.text("check_label")?,
        confirmed_by: r.text("confirmed_by")?,
        confirmed_at: from_ms(r.i64("confirmed_at")?)?,
    })
}

fn decision_from(r: &Row) -> Result<CautionDecision> {
    Ok(CautionDecision {
        id: RecordId(r.i64("id")?),
        code: r.text("caution_code")?,
        label: r.text("caution_label")?,
        benefit: r.text("benefit")?,
        risk: r.text("risk")?,
        reason: r.text("reason")?,
        decided_by: r.text("decided_by")?,
        decided_at: from_ms(r.i64("decided_at")?)?,
    })
}

/// The course's record as stored (empty lists when nothing was confirmed).
fn record_for(c: &mut dyn Conn, course: &Course) -> Result<CoursePretreatment> {
    let confirmations = c
        .query(
            "SELECT id, check_code, check_label, confirmed_by, confirmed_at FROM pretreatment_confirmations
             WHERE course_id = $1 ORDER BY id",
            params![course.id.0],
        )?
        .iter()
        .map(confirmation_from)
        .collect::<Result<Vec<_>>>()?;
    let caution_decisions = c
        .query(
            "SELECT id, caution_code, caution_label, benefit, risk, reason, decided_by, decided_at FROM caution_decisions
             WHERE course_id = $1 ORDER BY id",
            params![course.id.0],
        )?
        .iter()
        .map(decision_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(CoursePretreatment {
        course_id: course.id,
        patient_id: course.patient_id,
        route: course.route,
        confirmations,
        caution_decisions,
    })
}

impl Store {
    /// Records the pre-treatment checks confirmed and the caution decisions for a course,
    /// once. Every check of the route and every caution of the latest assessment for the
    /// route must be there (422 naming what is missing); a second record is a 409.
    pub async fn record_pretreatment(
        &self,
        actor: &Actor,
        course: CourseId,
        new: NewPretreatment,
    ) -> Result<CoursePretreatment> {
        actor.require(Permission::PlanTreatment)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let course = crate::courses::get_course(c, &actor, course)?;
            let done = c.query_opt(
                "SELECT id FROM pretreatment_confirmations WHERE course_id = $1
                 UNION ALL SELECT id FROM caution_decisions WHERE course_id = $1",
                params![course.id.0],
            )?;
            if done.is_some() {
                return Err(DomainError::Conflict(format!(
                    "course {} already has its pre-treatment confirmations; they are kept as recorded",
                    course.id
                ))
                .into());
            }
            let assessments = crate::eligibility::assessments_for(c, course.patient_id)?;
            let cautions = assessments
                .iter()
                .rev()
                .find(|a| a.route == course.route)
                .map(|a| a.contraindications.cautions.clone())
                .unwrap_or_default();
            let valid = new.validate(course.route, &cautions)?;
            for (code, label) in &valid.checks {
                c.insert(
                    "INSERT INTO pretreatment_confirmations (course_id, patient_id, check_code, check_label, confirmed_by, confirmed_at)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    params![course.id.0, course.patient_id.0, code.as_str(), label.as_str(), actor.name.as_str(), ms(now)],
                )?;
            }
            for (d, label) in &valid.decisions {
                c.insert(
                    "INSERT INTO caution_decisions (course_id, patient_id, caution_code, caution_label, benefit, risk, reason, decided_by, decided_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    params![
                        course.id.0,
                        course.patient_id.0,
                        d.code.as_str(),
                        label.as_str(),
                        d.benefit.as_str(),
                        d.risk.as_str(),
                        d.reason.as_str(),
                        actor.name.as_str(),
                        ms(now)
                    ],
                )?;
            }
            audit::record(c, &actor, now, Entry {
                action: Action::Create,
                object_type: "pretreatment",
                object_id: Some(course.id.to_string()),
                patient_id: Some(course.patient_id),
                site_id: Some(course.site_id),
                fields: &["confirmed_checks", "caution_decisions"],
            })?;
            record_for(c, &course)
        })
        .await
    }

    /// One course's pre-treatment record; an audited read.
    pub async fn course_pretreatment(&self, actor: &Actor, course: CourseId) -> Result<CoursePretreatment> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let out = self
            .read(move |c| {
                let course = crate::courses::get_course(c, &act, course)?;
                record_for(c, &course)
            })
            .await?;
        self.audit_read(actor, "pretreatment", Some(course.to_string()), Some(out.patient_id)).await?;
        Ok(out)
    }

    /// The pre-treatment records of every course of the patient, oldest course first; an audited read.
    pub async fn list_pretreatment(&self, actor: &Actor, patient: PatientId) -> Result<Vec<CoursePretreatment>> {
        self.read_patient_audited(actor, Permission::ViewClinical, patient, "pretreatment", move |c, _| {
            let courses = crate::courses::courses_for(c, patient)?;
            courses.iter().map(|course| record_for(c, course)).collect::<Result<Vec<_>>>()
        })
        .await
    }
}
