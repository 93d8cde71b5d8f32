//! Treatment courses.

use keta_domain::DomainError;
use keta_domain::course::{Course, CourseStatus, NewCourse, Phase, Route};
use keta_domain::ids::{CourseId, PatientId, SiteId};
use keta_domain::patient::Indication;
use keta_domain::units::Milligrams;

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::patients::get_patient;
use crate::time_codec::{date_text, ms, parse_date};
use crate::{Actor, Store, params};

const COLS: &str = "id, patient_id, site_id, route, phase, indication, planned_sessions, start_date, status, protocol";

fn course_from(r: &Row) -> Result<Course> {
    let bad = |f: &str| StoreError::Corrupt(format!("course {f}"));
    Ok(Course {
        id: CourseId(r.i64("id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        site_id: SiteId(r.i64("site_id")?),
        route: Route::parse(&r.text("route")?).ok_or_else(|| bad("route"))?,
        phase: Phase::parse(&r.text("phase")?).ok_or_else(|| bad("phase"))?,
        indication: Indication::parse(&r.text("indication")?).ok_or_else(|| bad("indication"))?,
        planned_sessions: u32::try_from(r.i64("planned_sessions")?).map_err(|_| bad("planned_sessions"))?,
        start_date: parse_date(&r.text("start_date")?)?,
        status: CourseStatus::parse(&r.text("status")?).ok_or_else(|| bad("status"))?,
        protocol: r.opt_text("protocol")?,
    })
}

pub(crate) fn get_course(c: &mut dyn Conn, actor: &Actor, id: CourseId) -> Result<Course> {
    let r = c
        .query_opt(&format!("SELECT {COLS} FROM courses WHERE id = $1"), params![id.0])?
        .ok_or_else(|| StoreError::NotFound(format!("course {id}")))?;
    let course = course_from(&r)?;
    if !actor.may_see(course.site_id, course.patient_id) {
        return Err(StoreError::NotFound(format!("course {id}")));
    }
    Ok(course)
}

pub(crate) fn courses_for(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<Course>> {
    c.query(&format!("SELECT {COLS} FROM courses WHERE patient_id = $1 ORDER BY start_date, id"), params![patient.0])?
        .iter()
        .map(course_from)
        .collect()
}

impl Store {
    /// Plans a course. Refused when the patient's latest contraindication assessment
    /// for this route found a hard stop, or when the record as it is now (medications,
    /// allergies, pregnancy status recorded since) would.
    pub async fn create_course(&self, actor: &Actor, patient: PatientId, new: NewCourse) -> Result<Course> {
        actor.require(keta_domain::access::Permission::PlanTreatment)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let p = get_patient(c, &actor, patient)?;
            // The scheduling window is counted from the site's today.
            new.validate(crate::site_time::today(c, p.site_id, now)?)?;
            if let Some(a) = crate::eligibility::latest_assessment(c, patient, new.route)?
                && a.blocked {
                    let stops: Vec<String> = a.contraindications.hard_stops.iter().map(|h| h.label.clone()).collect();
                    return Err(DomainError::field(
                        "route",
                        format!("{} is blocked for this patient by a hard stop: {}", new.route.label(), stops.join("; ")),
                    )
                    .into());
                }
            // The record may have changed since that assessment (a new allergy or medication).
            if let Some(now_result) = crate::eligibility::assessment_now(c, &p, new.route, now)?
                && now_result.contraindications.blocked
            {
                let stops: Vec<String> = now_result
                    .contraindications
                    .hard_stops
                    .iter()
                    .map(|h| match &h.evidence {
                        Some(e) => format!("{} ({e})", h.label),
                        None => h.label.clone(),
                    })
                    .collect();
                return Err(DomainError::field(
                    "route",
                    format!(
                        "{} is blocked for this patient by a hard stop recorded since the last assessment: {}; assess eligibility again",
                        new.route.label(),
                        stops.join("; ")
                    ),
                )
                .into());
            }
            let indication = new.indication.unwrap_or(p.indication);
            let id = c.insert(
                "INSERT INTO courses (patient_id, site_id, route, phase, indication, planned_sessions, start_date, status, protocol, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                params![
                    patient.0, p.site_id.0, new.route.as_str(), new.phase.as_str(), indication.as_str(), new.planned_sessions,
                    date_text(new.start_date), CourseStatus::Active.as_str(), new.protocol.as_deref(), ms(now)
                ],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "course", object_id: Some(id.to_string()), patient_id: Some(patient),
                site_id: Some(p.site_id), fields: &["route", "phase", "indication", "planned_sessions", "start_date", "protocol"],
            })?;
            get_course(c, &actor, CourseId(id))
        })
        .await
    }

    pub async fn get_course(&self, actor: &Actor, id: CourseId) -> Result<Course> {
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        let act = actor.clone();
        let out = self.read(move |c| get_course(c, &act, id)).await?;
        self.audit_read(actor, "course", Some(id.to_string()), Some(out.patient_id)).await?;
        Ok(out)
    }

    pub async fn list_courses(&self, actor: &Actor, patient: PatientId) -> Result<Vec<Course>> {
        self.read_patient_audited(
            actor,
            keta_domain::access::Permission::ViewClinical,
            patient,
            "courses",
            move |c, _| courses_for(c, patient),
        )
        .await
    }

    /// The first course (by id) in the actor's sites with status `status` and one of `routes`.
    pub async fn first_course_on_routes(
        &self,
        actor: &Actor,
        routes: &[Route],
        status: CourseStatus,
    ) -> Result<Option<Course>> {
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        if routes.is_empty() {
            return Ok(None);
        }
        let scope = actor.scope.sql("site_id");
        let mut params: Vec<crate::Value> = vec![status.as_str().into()];
        let mut slots = Vec::new();
        for r in routes {
            params.push(r.as_str().into());
            slots.push(format!("${}", params.len()));
        }
        let sql = format!(
            "SELECT {COLS} FROM courses WHERE status = $1 AND route IN ({}) AND {scope} ORDER BY id LIMIT 1",
            slots.join(", ")
        );
        let out = self.read(move |c| c.query_opt(&sql, &params)?.as_ref().map(course_from).transpose()).await?;
        if let Some(course) = &out {
            self.audit_read(actor, "course", Some(course.id.to_string()), Some(course.patient_id)).await?;
        }
        Ok(out)
    }

    /// The planned dose of the course's latest scheduled session that has one.
    pub async fn latest_planned_dose(&self, actor: &Actor, course: CourseId) -> Result<Option<Milligrams>> {
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        let act = actor.clone();
        let (patient, dose) = self
            .read(move |c| {
                let found = get_course(c, &act, course)?;
                let dose = c
                    .query_opt(
                        "SELECT planned_dose_mg FROM sessions WHERE course_id = $1 AND planned_dose_mg IS NOT NULL ORDER BY scheduled_for DESC LIMIT 1",
                        params![course.0],
                    )?
                    .map(|r| r.f64("planned_dose_mg"))
                    .transpose()?;
                Ok((found.patient_id, dose.map(Milligrams)))
            })
            .await?;
        self.audit_read(actor, "sessions", None, Some(patient)).await?;
        Ok(dose)
    }
}
