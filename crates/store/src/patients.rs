//! Patients and their weight history.

use keta_domain::DomainError;
use keta_domain::ids::{PatientId, RecordId, SiteId};
use keta_domain::patient::{Indication, NewPatient, NewWeight, Patient, Sex, WeightEntry, WeightType};
use keta_domain::units::Kilograms;

use crate::audit::{self, Action, Created, Entry};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::time_codec::{date_text, from_json, json, ms, parse_date};
use crate::{Actor, Store, params};

pub(crate) const PATIENT_COLS: &str = "p.id, p.site_id, p.mrn, p.given_name, p.family_name, p.date_of_birth, p.sex, p.phone, p.email, p.indication, p.diagnoses, p.referring_clinician, \
     (SELECT w.weight_kg FROM weights w WHERE w.patient_id = p.id ORDER BY w.measured_on DESC, w.id DESC LIMIT 1) AS latest_weight_kg";

pub(crate) fn patient_from(r: &Row) -> Result<Patient> {
    Ok(Patient {
        id: PatientId(r.i64("id")?),
        site_id: SiteId(r.i64("site_id")?),
        mrn: r.text("mrn")?,
        given_name: r.text("given_name")?,
        family_name: r.text("family_name")?,
        date_of_birth: parse_date(&r.text("date_of_birth")?)?,
        sex: Sex::parse(&r.text("sex")?).ok_or_else(|| StoreError::Corrupt("sex".into()))?,
        phone: r.opt_text("phone")?,
        email: r.opt_text("email")?,
        indication: Indication::parse(&r.text("indication")?)
            .ok_or_else(|| StoreError::Corrupt("indication".into()))?,
        diagnoses: from_json(&r.text("diagnoses")?)?,
        referring_clinician: r.opt_text("referring_clinician")?,
        latest_weight_kg: r.opt_f64("latest_weight_kg")?.map(Kilograms),
    })
}

/// Loads a patient the actor may see; a patient outside the actor's sites is
/// reported as not found, so ids cannot be probed.
pub(crate) fn get_patient(c: &mut dyn Conn, actor: &Actor, id: PatientId) -> Result<Patient> {
    let r = c
        .query_opt(&format!("SELECT {PATIENT_COLS} FROM patients p WHERE p.id = $1"), params![id.0])?
        .ok_or_else(|| StoreError::NotFound(format!("patient {id}")))?;
    let p = patient_from(&r)?;
    if !actor.may_see(p.site_id, p.id) {
        return Err(StoreError::NotFound(format!("patient {id}")));
    }
    Ok(p)
}

/// Filters for the patient list.
#[derive(Debug, Clone, Default)]
pub struct PatientQuery {
    /// Matches the start of the MRN, given or family name (case-insensitive).
    pub search: Option<String>,
    pub site_id: Option<SiteId>,
    pub limit: i64,
    pub offset: i64,
}

fn weight_from(r: &Row) -> Result<WeightEntry> {
    Ok(WeightEntry {
        id: RecordId(r.i64("id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        weight_kg: Kilograms(r.f64("weight_kg")?),
        measured_on: parse_date(&r.text("measured_on")?)?,
        weight_type: WeightType::parse(&r.text("weight_type")?)
            .ok_or_else(|| StoreError::Corrupt("weight_type".into()))?,
    })
}

pub(crate) fn weights(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<WeightEntry>> {
    c.query(
        "SELECT id, patient_id, weight_kg, measured_on, weight_type FROM weights WHERE patient_id = $1 ORDER BY measured_on, id",
        params![patient.0],
    )?
    .iter()
    .map(weight_from)
    .collect()
}

/// Checks the site and the patient's fields (judged on the site's calendar), inserts the
/// patient and writes its audit entry, in the caller's transaction. The caller checks the
/// permission and the actor's site scope.
pub(crate) fn insert_patient(
    c: &mut dyn Conn,
    actor: &Actor,
    now: time::OffsetDateTime,
    new: &NewPatient,
) -> Result<PatientId> {
    crate::sites::get_site(c, new.site_id)
        .map_err(|_| DomainError::field("site_id", format!("site {} does not exist", new.site_id)))?;
    // "In the future" is judged by the site's calendar, not UTC's.
    new.validate(crate::site_time::today(c, new.site_id, now)?)?;
    let id = c.insert(
        "INSERT INTO patients (site_id, mrn, given_name, family_name, date_of_birth, sex, phone, email, indication, diagnoses, referring_clinician, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        params![
            new.site_id.0, new.mrn.as_str(), new.given_name.trim(), new.family_name.trim(), date_text(new.date_of_birth),
            new.sex.as_str(), new.phone.as_deref(), new.email.as_deref(), new.indication.as_str(), json(&new.diagnoses),
            new.referring_clinician.as_deref(), ms(now)
        ],
    )?;
    audit::record(
        c,
        actor,
        now,
        Entry {
            action: Action::Create,
            object_type: "patient",
            object_id: Some(id.to_string()),
            patient_id: Some(PatientId(id)),
            site_id: Some(new.site_id),
            fields: &[
                "mrn",
                "name",
                "date_of_birth",
                "sex",
                "contact",
                "indication",
                "diagnoses",
                "referring_clinician",
            ],
        },
    )?;
    Ok(PatientId(id))
}

impl Store {
    pub async fn create_patient(&self, actor: &Actor, new: NewPatient) -> Result<Patient> {
        actor.require(keta_domain::access::Permission::EditDemographics)?;
        let now = self.now();
        if !actor.scope.allows(new.site_id) {
            return Err(DomainError::field("site_id", "you are not assigned to this site").into());
        }
        let actor = actor.clone();
        self.write(move |c| {
            let id = insert_patient(c, &actor, now, &new)?;
            get_patient(c, &actor, id)
        })
        .await
    }

    pub async fn get_patient(&self, actor: &Actor, id: PatientId) -> Result<Patient> {
        actor.require(keta_domain::access::Permission::ViewDemographics)?;
        let act = actor.clone();
        let out = self.read(move |c| get_patient(c, &act, id)).await?;
        self.audit_read(actor, "patient", Some(id.to_string()), Some(id)).await?;
        Ok(out)
    }

    pub async fn list_patients(&self, actor: &Actor, q: PatientQuery) -> Result<Vec<Patient>> {
        actor.require(keta_domain::access::Permission::ViewDemographics)?;
        let scope = actor.scope.sql("p.site_id");
        self.read(move |c| {
            let mut sql = format!("SELECT {PATIENT_COLS} FROM patients p WHERE {scope}");
            let mut params = Vec::new();
            if let Some(site) = q.site_id {
                params.push(site.0.into());
                sql.push_str(&format!(" AND p.site_id = ${}", params.len()));
            }
            if let Some(s) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                // Escape LIKE wildcards so a search for "50%" means the text "50%".
                let pat = format!("{}%", s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
                params.push(pat.into());
                let n = params.len();
                sql.push_str(&format!(
                    " AND (lower(p.mrn) LIKE ${n} ESCAPE '\\' OR lower(p.given_name) LIKE ${n} ESCAPE '\\' OR lower(p.family_name) LIKE ${n} ESCAPE '\\')"
                ));
            }
            params.push(q.limit.clamp(1, 500).into());
            params.push(q.offset.max(0).into());
            sql.push_str(&format!(" ORDER BY p.family_name, p.given_name, p.id LIMIT ${} OFFSET ${}", params.len() - 1, params.len()));
            c.query(&sql, &params)?.iter().map(patient_from).collect()
        })
        .await
    }

    pub async fn add_weight(&self, actor: &Actor, patient: PatientId, new: NewWeight) -> Result<WeightEntry> {
        actor.require(keta_domain::access::Permission::RecordSession)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let p = get_patient(c, &actor, patient)?;
            new.validate(crate::site_time::today(c, p.site_id, now)?)?;
            let id = audit::insert_audited(
                c,
                &actor,
                now,
                "INSERT INTO weights (patient_id, weight_kg, measured_on, weight_type, recorded_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                params![patient.0, new.weight_kg.0, date_text(new.measured_on), new.weight_type.as_str(), ms(now)],
                Created { object_type: "weight", patient, site: p.site_id, fields: &["weight_kg", "measured_on", "weight_type"] },
            )?;
            Ok(WeightEntry { id: RecordId(id), patient_id: patient, weight_kg: new.weight_kg, measured_on: new.measured_on, weight_type: new.weight_type })
        })
        .await
    }

    pub async fn list_weights(&self, actor: &Actor, patient: PatientId) -> Result<Vec<WeightEntry>> {
        self.read_patient_audited(
            actor,
            keta_domain::access::Permission::ViewClinical,
            patient,
            "weights",
            move |c, _| weights(c, patient),
        )
        .await
    }
}
