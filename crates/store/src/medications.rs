//! Medications, allergies and pregnancy status as records, and the medication review at each
//! session. Eligibility reads these (crate::eligibility) instead of trusting ticks.

use keta_domain::access::Permission;
use keta_domain::ids::{PatientId, RecordId, SessionId};
use keta_domain::medications::{
    Allergy, AllergySeverity, Medication, MedicationReview, NewAllergy, NewMedication, NewMedicationReview,
    NewPregnancyStatus, PregnancyStatus, PregnancyStatusRecord, StopMedication,
};
use keta_domain::units::Milligrams;
use time::Date;

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::patients::get_patient;
use crate::time_codec::{date_text, from_json, from_ms, json, ms, parse_date};
use crate::{Actor, Store, params};

const MED_COLS: &str =
    "id, patient_id, drug, dose, daily_dose_mg, started_on, stopped_on, stop_reason, recorded_at, recorded_by";

fn opt_date(r: &Row, column: &str) -> Result<Option<Date>> {
    r.opt_text(column)?.map(|s| parse_date(&s)).transpose()
}

fn medication_from(r: &Row) -> Result<Medication> {
    Ok(Medication::new(
        RecordId(r.i64("id")?),
        PatientId(r.i64("patient_id")?),
        NewMedication {
            drug: r.text("drug")?,
            dose: r.opt_text("dose")?,
            daily_dose_mg: r.opt_f64("daily_dose_mg")?.map(Milligrams),
            started_on: opt_date(r, "started_on")?,
        },
        opt_date(r, "stopped_on")?,
        r.opt_text("stop_reason")?,
        from_ms(r.i64("recorded_at")?)?,
        r.text("recorded_by")?,
    ))
}

fn allergy_from(r: &Row) -> Result<Allergy> {
    Ok(Allergy::new(
        RecordId(r.i64("id")?),
        PatientId(r.i64("patient_id")?),
        NewAllergy {
            substance: r.text("substance")?,
            reaction: r.opt_text("reaction")?,
            severity: AllergySeverity::parse(&r.text("severity")?)
                .ok_or_else(|| StoreError::Corrupt("allergy severity".into()))?,
        },
        from_ms(r.i64("recorded_at")?)?,
        r.text("recorded_by")?,
    ))
}

fn pregnancy_from(r: &Row) -> Result<PregnancyStatusRecord> {
    Ok(PregnancyStatusRecord {
        id: RecordId(r.i64("id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        status: PregnancyStatus::parse(&r.text("status")?)
            .ok_or_else(|| StoreError::Corrupt("pregnancy status".into()))?,
        recorded_on: parse_date(&r.text("recorded_on")?)?,
        note: r.opt_text("note")?,
        recorded_at: from_ms(r.i64("recorded_at")?)?,
        recorded_by: r.text("recorded_by")?,
    })
}

fn review_from(r: &Row) -> Result<MedicationReview> {
    Ok(MedicationReview {
        id: RecordId(r.i64("id")?),
        session_id: SessionId(r.i64("session_id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        reviewed_at: from_ms(r.i64("reviewed_at")?)?,
        reviewed_by: r.text("reviewed_by")?,
        note: r.opt_text("note")?,
        medications: from_json(&r.text("medications")?)?,
    })
}

/// Every medication of the patient, oldest first.
pub(crate) fn medications_for(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<Medication>> {
    c.query(&format!("SELECT {MED_COLS} FROM medications WHERE patient_id = $1 ORDER BY id"), params![patient.0])?
        .iter()
        .map(medication_from)
        .collect()
}

pub(crate) fn allergies_for(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<Allergy>> {
    c.query(
        "SELECT id, patient_id, substance, reaction, severity, recorded_at, recorded_by FROM allergies WHERE patient_id = $1 ORDER BY id",
        params![patient.0],
    )?
    .iter()
    .map(allergy_from)
    .collect()
}

/// The latest recorded pregnancy status.
pub(crate) fn pregnancy_for(c: &mut dyn Conn, patient: PatientId) -> Result<Option<PregnancyStatusRecord>> {
    c.query_opt(
        "SELECT id, patient_id, status, recorded_on, note, recorded_at, recorded_by FROM pregnancy_statuses WHERE patient_id = $1 ORDER BY id DESC LIMIT 1",
        params![patient.0],
    )?
    .map(|r| pregnancy_from(&r))
    .transpose()
}

pub(crate) fn reviews_for_session(c: &mut dyn Conn, session: SessionId) -> Result<Vec<MedicationReview>> {
    c.query(
        "SELECT id, session_id, patient_id, reviewed_at, reviewed_by, note, medications FROM medication_reviews WHERE session_id = $1 ORDER BY id",
        params![session.0],
    )?
    .iter()
    .map(review_from)
    .collect()
}

impl Store {
    /// Adds a medication to the patient's list (intake or a session review).
    pub async fn add_medication(&self, actor: &Actor, patient: PatientId, new: NewMedication) -> Result<Medication> {
        actor.require(Permission::RecordSession)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let p = get_patient(c, &actor, patient)?;
            new.validate(crate::site_time::today(c, p.site_id, now)?)?;
            let id = c.insert(
                "INSERT INTO medications (patient_id, drug, dose, daily_dose_mg, started_on, recorded_at, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                params![
                    patient.0,
                    new.drug.trim(),
                    new.dose.as_deref().map(str::trim).filter(|d| !d.is_empty()),
                    new.daily_dose_mg.map(|m| m.0),
                    new.started_on.map(date_text),
                    ms(now),
                    actor.name.as_str()
                ],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "medication", object_id: Some(id.to_string()), patient_id: Some(patient),
                site_id: Some(p.site_id), fields: &["drug", "dose", "daily_dose_mg", "started_on"],
            })?;
            Ok(Medication::new(RecordId(id), patient, new, None, None, now, actor.name.clone()))
        })
        .await
    }

    /// Marks a medication stopped; it stays on the record.
    pub async fn stop_medication(&self, actor: &Actor, id: RecordId, stop: StopMedication) -> Result<Medication> {
        actor.require(Permission::RecordSession)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let r = c
                .query_opt(&format!("SELECT {MED_COLS} FROM medications WHERE id = $1"), params![id.0])?
                .ok_or_else(|| StoreError::NotFound(format!("medication {id}")))?;
            let med = medication_from(&r)?;
            // A medication of a patient outside the actor's sites is not found, like the patient.
            let p =
                get_patient(c, &actor, med.patient_id).map_err(|_| StoreError::NotFound(format!("medication {id}")))?;
            stop.validate(&med, crate::site_time::today(c, p.site_id, now)?)?;
            let reason = stop.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
            c.execute(
                "UPDATE medications SET stopped_on = $1, stop_reason = $2 WHERE id = $3",
                params![date_text(stop.stopped_on), reason.as_deref(), id.0],
            )?;
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "medication",
                    object_id: Some(id.to_string()),
                    patient_id: Some(med.patient_id),
                    site_id: Some(p.site_id),
                    fields: &["stopped_on", "stop_reason"],
                },
            )?;
            Ok(Medication { stopped_on: Some(stop.stopped_on), stop_reason: reason, ..med })
        })
        .await
    }

    pub async fn list_medications(&self, actor: &Actor, patient: PatientId) -> Result<Vec<Medication>> {
        self.read_patient_audited(actor, Permission::ViewClinical, patient, "medications", move |c, _| {
            medications_for(c, patient)
        })
        .await
    }

    pub async fn add_allergy(&self, actor: &Actor, patient: PatientId, new: NewAllergy) -> Result<Allergy> {
        actor.require(Permission::RecordSession)?;
        new.validate()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let p = get_patient(c, &actor, patient)?;
            let reaction = new.reaction.as_deref().map(str::trim).filter(|r| !r.is_empty());
            let id = c.insert(
                "INSERT INTO allergies (patient_id, substance, reaction, severity, recorded_at, recorded_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                params![patient.0, new.substance.trim(), reaction, new.severity.as_str(), ms(now), actor.name.as_str()],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "allergy", object_id: Some(id.to_string()), patient_id: Some(patient),
                site_id: Some(p.site_id), fields: &["substance", "reaction", "severity"],
            })?;
            Ok(Allergy::new(RecordId(id), patient, new, now, actor.name.clone()))
        })
        .await
    }

    pub async fn list_allergies(&self, actor: &Actor, patient: PatientId) -> Result<Vec<Allergy>> {
        self.read_patient_audited(actor, Permission::ViewClinical, patient, "allergies", move |c, _| {
            allergies_for(c, patient)
        })
        .await
    }

    /// Records the patient's pregnancy status; the latest counts.
    pub async fn record_pregnancy_status(
        &self,
        actor: &Actor,
        patient: PatientId,
        new: NewPregnancyStatus,
    ) -> Result<PregnancyStatusRecord> {
        actor.require(Permission::RecordSession)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let p = get_patient(c, &actor, patient)?;
            new.validate(crate::site_time::today(c, p.site_id, now)?)?;
            let note = new.note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_string);
            let id = c.insert(
                "INSERT INTO pregnancy_statuses (patient_id, status, recorded_on, note, recorded_at, recorded_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                params![patient.0, new.status.as_str(), date_text(new.recorded_on), note.as_deref(), ms(now), actor.name.as_str()],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "pregnancy_status", object_id: Some(id.to_string()), patient_id: Some(patient),
                site_id: Some(p.site_id), fields: &["status", "recorded_on", "note"],
            })?;
            Ok(PregnancyStatusRecord {
                id: RecordId(id),
                patient_id: patient,
                status: new.status,
                recorded_on: new.recorded_on,
                note,
                recorded_at: now,
                recorded_by: actor.name.clone(),
            })
        })
        .await
    }

    pub async fn get_pregnancy_status(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Option<PregnancyStatusRecord>> {
        self.read_patient_audited(actor, Permission::ViewClinical, patient, "pregnancy_status", move |c, _| {
            pregnancy_for(c, patient)
        })
        .await
    }

    /// Records that the medication and allergy lists were confirmed with the patient at
    /// this session, keeping the list as it stood.
    pub async fn review_medications(
        &self,
        actor: &Actor,
        session: SessionId,
        new: NewMedicationReview,
    ) -> Result<MedicationReview> {
        actor.require(Permission::RecordSession)?;
        new.validate()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let s = crate::sessions::get_session(c, &actor, session)?;
            let today = crate::site_time::today(c, s.site_id, now)?;
            let current: Vec<String> =
                medications_for(c, s.patient_id)?.iter().filter(|m| m.is_current(today)).map(|m| m.describe()).collect();
            let note = new.note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_string);
            let id = c.insert(
                "INSERT INTO medication_reviews (session_id, patient_id, reviewed_at, reviewed_by, note, medications) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                params![session.0, s.patient_id.0, ms(now), actor.name.as_str(), note.as_deref(), json(&current)],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "medication_review", object_id: Some(id.to_string()), patient_id: Some(s.patient_id),
                site_id: Some(s.site_id), fields: &["session_id", "note", "medications"],
            })?;
            Ok(MedicationReview {
                id: RecordId(id),
                session_id: session,
                patient_id: s.patient_id,
                reviewed_at: now,
                reviewed_by: actor.name.clone(),
                note,
                medications: current,
            })
        })
        .await
    }

    /// What the session page shows: the patient's medications, allergies and this
    /// session's reviews.
    pub async fn session_medications(
        &self,
        actor: &Actor,
        session: SessionId,
    ) -> Result<(Vec<Medication>, Vec<Allergy>, Vec<MedicationReview>)> {
        self.read_record_audited(actor, Permission::ViewClinical, "medications", None, move |c, act| {
            let s = crate::sessions::get_session(c, act, session)?;
            Ok((
                s.patient_id,
                (medications_for(c, s.patient_id)?, allergies_for(c, s.patient_id)?, reviews_for_session(c, session)?),
            ))
        })
        .await
    }
}
