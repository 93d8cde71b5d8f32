//! Dose calculations recorded per session with a second-person check, and each
//! patient's cumulative exposure (clinical-reference §2.1).
//!
//! Recording recalculates on the server (the client's numbers are never stored as they
//! came): the weight must be the patient's latest recorded weight of the chosen type,
//! the age and "first session" come from the chart, and the protocol's limits apply. The
//! second person verified themselves with their own password (the web layer does that
//! and passes their [`Actor`]); they must be a different user who may record in the
//! chair at the session's site. Records are append-only; a corrected calculation is a
//! new record, and the latest one for a session is the one that counts.

use time::{Duration, OffsetDateTime};

use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::course::Phase;
use keta_domain::dosing::{self as dd, DoseRecord, DoseRequest, Exposure, GivenDose};
use keta_domain::ids::{PatientId, SessionId};
use keta_domain::patient::WeightType;
use keta_domain::protocols::Protocol;
use keta_domain::session::SessionState;
use keta_domain::units::{Kilograms, MgPerKg, Milligrams};

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::time_codec::{date_text, from_json, from_ms, json, ms, parse_date};
use crate::{Actor, Store, params};

/// The second person, verified by their own user name and password, and when.
#[derive(Debug, Clone)]
pub struct DoseChecker {
    pub actor: Actor,
    pub verified_at: OffsetDateTime,
}

/// How long a checker's password verification stays good for the record it checks.
/// A local security setting (the reference gives the check as local policy, §2.1).
pub const CHECK_VALID_FOR: Duration = Duration::minutes(15);

const COLS: &str = "id, session_id, patient_id, protocol_id, route, weight_kg, weight_measured_on, weight_type, dose_mg, dose_mg_per_kg, \
     request, calculation, calculated_by, calculated_by_user_id, calculated_at, checked_by, checked_by_user_id, checked_at";

fn record_from(r: &Row) -> Result<DoseRecord> {
    let bad = |f: &str| StoreError::Corrupt(format!("dose record {f}"));
    Ok(DoseRecord {
        id: r.i64("id")?,
        session_id: SessionId(r.i64("session_id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        protocol: r.opt_text("protocol_id")?,
        route: keta_domain::course::Route::parse(&r.text("route")?).ok_or_else(|| bad("route"))?,
        weight_kg: Kilograms(r.f64("weight_kg")?),
        weight_measured_on: parse_date(&r.text("weight_measured_on")?)?,
        weight_type: WeightType::parse(&r.text("weight_type")?).ok_or_else(|| bad("weight_type"))?,
        dose_mg: Milligrams(r.f64("dose_mg")?),
        dose_mg_per_kg: MgPerKg(r.f64("dose_mg_per_kg")?),
        request: from_json(&r.text("request")?)?,
        calculation: from_json(&r.text("calculation")?)?,
        calculated_by: r.text("calculated_by")?,
        calculated_by_user_id: r.opt_i64("calculated_by_user_id")?,
        calculated_at: from_ms(r.i64("calculated_at")?)?,
        checked_by: r.text("checked_by")?,
        checked_by_user_id: r.opt_i64("checked_by_user_id")?,
        checked_at: from_ms(r.i64("checked_at")?)?,
    })
}

/// Every dose record of a session, oldest first.
pub(crate) fn doses_for_session(c: &mut dyn Conn, session: SessionId) -> Result<Vec<DoseRecord>> {
    c.query(&format!("SELECT {COLS} FROM dose_records WHERE session_id = $1 ORDER BY id"), params![session.0])?
        .iter()
        .map(record_from)
        .collect()
}

/// The doses that count towards a patient's exposure: the latest record of each session
/// whose dose was started, dated by the dose start.
pub(crate) fn given_doses(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<GivenDose>> {
    c.query(
        "SELECT d.session_id, s.dose_started_at, d.route, d.dose_mg
         FROM dose_records d JOIN sessions s ON s.id = d.session_id
         WHERE d.patient_id = $1 AND s.dose_started_at IS NOT NULL
           AND d.id = (SELECT max(d2.id) FROM dose_records d2 WHERE d2.session_id = d.session_id)
         ORDER BY s.dose_started_at, d.session_id",
        params![patient.0],
    )?
    .iter()
    .map(|r| {
        Ok(GivenDose {
            session_id: SessionId(r.i64("session_id")?),
            given_at: from_ms(r.i64("dose_started_at")?)?,
            route: keta_domain::course::Route::parse(&r.text("route")?)
                .ok_or_else(|| StoreError::Corrupt("dose record route".into()))?,
            dose_mg: Milligrams(r.f64("dose_mg")?),
        })
    })
    .collect()
}

/// The second-person rules: someone else, allowed to record in the chair, at this site,
/// verified recently.
fn check_checker(actor: &Actor, checker: &DoseChecker, now: OffsetDateTime) -> Result<()> {
    let same_user = match (actor.user_id, checker.actor.user_id) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    } || actor.name.eq_ignore_ascii_case(&checker.actor.name);
    if same_user {
        return Err(DomainError::field(
            "checker_username",
            "the second check must be by a different person from the one who calculates the dose",
        )
        .into());
    }
    if !checker.actor.can(Permission::RecordSession) {
        return Err(DomainError::field(
            "checker_username",
            format!(
                "{} may not check doses: the second person must be allowed to record in the chair",
                checker.actor.name
            ),
        )
        .into());
    }
    if checker.verified_at > now + Duration::minutes(1) || now - checker.verified_at > CHECK_VALID_FOR {
        return Err(StoreError::Forbidden(format!(
            "the checker ({}) must enter their password again, within {} min of recording",
            checker.actor.name,
            CHECK_VALID_FOR.whole_minutes()
        )));
    }
    Ok(())
}

impl Store {
    /// Recalculates `req` for the session from the chart and the protocol, and records it
    /// with the second person's check. 422 with the reason when the dose is outside the
    /// protocol's limits, no protocol is named, the weight is not the chart's, or the
    /// checker is the caller.
    pub async fn record_dose(
        &self,
        actor: &Actor,
        session: SessionId,
        protocol: Option<Protocol>,
        req: DoseRequest,
        checker: DoseChecker,
    ) -> Result<DoseRecord> {
        actor.require(Permission::RecordSession)?;
        let now = self.now();
        check_checker(actor, &checker, now)?;
        // A recorded dose always follows a protocol, so its limits apply.
        match (&protocol, &req.protocol) {
            (Some(p), Some(id)) if p.id == *id => {}
            (_, None) => return Err(DomainError::field("protocol", "name the protocol the dose follows").into()),
            _ => {
                return Err(
                    DomainError::field("protocol", "the protocol named in the request could not be applied").into()
                );
            }
        }
        let actor = actor.clone();
        self.write(move |c| {
            // Held: a session stopped at this moment does not get a dose recorded after it.
            let s = crate::sessions::get_session_for_update(c, &actor, session)?;
            if !checker.actor.may_see(s.site_id, s.patient_id) {
                return Err(DomainError::field(
                    "checker_username",
                    format!("{} does not work at this patient's site and cannot check the dose", checker.actor.name),
                )
                .into());
            }
            if s.state == SessionState::Stopped && s.dose_started_at.is_none() {
                return Err(StoreError::Conflict("the session was stopped before dosing; no dose can be recorded for it".into()));
            }
            if let Some(p) = &protocol
                && p.route != s.route
            {
                return Err(DomainError::field(
                    "protocol",
                    format!("protocol '{}' is for {}, but this session is {}", p.id, p.route.label(), s.route.label()),
                )
                .into());
            }
            if let Some(r) = req.route
                && r != s.route
            {
                return Err(DomainError::field("route", format!("this session is {}", s.route.label())).into());
            }
            let course = crate::courses::get_course(c, &actor, s.course_id)?;
            let patient = crate::patients::get_patient(c, &actor, s.patient_id)?;
            // The weight must be the chart's latest of the chosen type (§2.1: store the
            // weight, its date and its type).
            let weight = crate::patients::weights(c, s.patient_id)?
                .into_iter()
                .filter(|w| w.weight_type == req.weight_type)
                .max_by_key(|w| (w.measured_on, w.id));
            let Some(weight) = weight else {
                return Err(DomainError::field(
                    "weight_kg",
                    format!("the patient has no {} weight recorded: record it first", req.weight_type.as_str()),
                )
                .into());
            };
            if (weight.weight_kg.0 - req.weight_kg.0).abs() > 1e-9 {
                return Err(DomainError::field(
                    "weight_kg",
                    format!(
                        "dose on the patient's latest recorded {} weight, {} kg on {}; record a new weight first if it has changed",
                        req.weight_type.as_str(),
                        dd::fmt_num(weight.weight_kg.0),
                        weight.measured_on
                    ),
                )
                .into());
            }
            // Age on the session's day at its site (not the UTC date: a session at 00:30 in
            // Auckland is on the previous day in UTC).
            let session_day = crate::site_time::calendar(c, s.site_id)?(s.scheduled_for);
            let mut applied = req.clone();
            applied.route = Some(s.route);
            applied.age_years = Some(u32::try_from(patient.age_on(session_day).max(0)).unwrap_or(0));
            applied.first_session = course.phase == Phase::Induction && s.sequence == 1;
            if let Some(p) = &protocol {
                // The course's order: a dose outside it needs a prescriber's override.
                crate::orders::check_session_dose(c, &s, p, &req.dose)?;
            }
            let calc = dd::calculate(&applied, protocol.as_ref())?;
            let id = c.insert(
                &format!(
                    "INSERT INTO dose_records ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
                    COLS.replacen("id, ", "site_id, ", 1)
                ),
                params![
                    s.site_id.0,
                    s.id.0,
                    s.patient_id.0,
                    protocol.as_ref().map(|p| p.id.as_str()),
                    s.route.as_str(),
                    weight.weight_kg.0,
                    date_text(weight.measured_on),
                    weight.weight_type.as_str(),
                    calc.dose_mg.0,
                    calc.dose_mg_per_kg.0,
                    json(&applied),
                    json(&calc),
                    actor.name.as_str(),
                    actor.user_id,
                    ms(now),
                    checker.actor.name.as_str(),
                    checker.actor.user_id,
                    ms(checker.verified_at)
                ],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create,
                object_type: "dose_record",
                object_id: Some(id.to_string()),
                patient_id: Some(s.patient_id),
                site_id: Some(s.site_id),
                fields: &["protocol_id", "weight_kg", "dose_mg", "calculation", "checked_by"],
            })?;
            let r = c
                .query_opt(&format!("SELECT {COLS} FROM dose_records WHERE id = $1"), params![id])?
                .ok_or_else(|| StoreError::Backend("the dose record vanished".into()))?;
            record_from(&r)
        })
        .await
    }

    /// The dose records of a session, oldest first (the last is the one that counts).
    pub async fn list_session_doses(&self, actor: &Actor, session: SessionId) -> Result<Vec<DoseRecord>> {
        self.read_record_audited(
            actor,
            Permission::ViewClinical,
            "dose_records",
            Some(session.to_string()),
            move |c, act| {
                let s = crate::sessions::get_session(c, act, session)?;
                Ok((s.patient_id, doses_for_session(c, session)?))
            },
        )
        .await
    }

    /// The patient's cumulative exposure per drug: lifetime, last 7 and 30 days, per
    /// calendar week and month.
    pub async fn patient_exposure(&self, actor: &Actor, patient: PatientId) -> Result<Exposure> {
        actor.require(Permission::ViewClinical)?;
        let now = self.now();
        let act = actor.clone();
        let exposure = self
            .read(move |c| {
                let p = crate::patients::get_patient(c, &act, patient)?;
                // Weeks and months are the site's calendar weeks and months.
                let calendar = crate::site_time::calendar(c, p.site_id)?;
                Ok(dd::cumulative_exposure(&given_doses(c, patient)?, now, &calendar))
            })
            .await?;
        self.audit_read(actor, "exposure", Some(patient.to_string()), Some(patient)).await?;
        Ok(exposure)
    }
}
