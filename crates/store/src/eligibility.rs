//! Eligibility: antidepressant-trial history and per-route assessments
//! (Maudsley staging, contraindication checklist).

use keta_domain::course::Route;
use keta_domain::eligibility::{self as el, AntidepressantTrial};
use keta_domain::ids::{PatientId, RecordId};
use keta_domain::records::{AntidepressantTrialRecord, EligibilityAssessment, NewEligibilityAssessment};

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::Result;
use crate::patients::get_patient;
use crate::time_codec::{from_json, json, ms};
use crate::{Actor, Store, params};

fn assessment_from(r: &Row) -> Result<EligibilityAssessment> {
    let mut a: EligibilityAssessment = from_json(&r.text("body")?)?;
    a.id = RecordId(r.i64("id")?);
    Ok(a)
}

pub(crate) fn trials_for(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<AntidepressantTrialRecord>> {
    c.query("SELECT id, body FROM antidepressant_trials WHERE patient_id = $1 ORDER BY id", params![patient.0])?
        .iter()
        .map(|r| {
            Ok(AntidepressantTrialRecord {
                id: RecordId(r.i64("id")?),
                patient_id: patient,
                trial: from_json(&r.text("body")?)?,
            })
        })
        .collect()
}

pub(crate) fn assessments_for(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<EligibilityAssessment>> {
    c.query(
        "SELECT id, body FROM eligibility_assessments WHERE patient_id = $1 ORDER BY assessed_at, id",
        params![patient.0],
    )?
    .iter()
    .map(assessment_from)
    .collect()
}

pub(crate) fn latest_assessment(
    c: &mut dyn Conn,
    patient: PatientId,
    route: Route,
) -> Result<Option<EligibilityAssessment>> {
    c.query_opt(
        "SELECT id, body FROM eligibility_assessments WHERE patient_id = $1 AND route = $2 ORDER BY assessed_at DESC, id DESC LIMIT 1",
        params![patient.0, route.as_str()],
    )?
    .map(|r| assessment_from(&r))
    .transpose()
}

/// The latest assessment of `route` re-run against the record as it is now, with the
/// clinician's declared items kept: a medication, allergy or pregnancy status recorded
/// after the assessment counts before a course is planned, not only at the next assessment.
pub(crate) fn assessment_now(
    c: &mut dyn Conn,
    patient: &keta_domain::patient::Patient,
    route: Route,
    now: time::OffsetDateTime,
) -> Result<Option<el::RouteEligibility>> {
    let Some(latest) = latest_assessment(c, patient.id, route)? else { return Ok(None) };
    let pregnancy = crate::medications::pregnancy_for(c, patient.id)?;
    let tickable = |code: &str| {
        el::contraindication_items().iter().find(|it| it.code == code).is_some_and(|it| match it.from_record {
            None => true,
            Some(el::RecordSource::Pregnancy) => pregnancy.is_none(),
            Some(_) => false,
        })
    };
    let lc = &latest.contraindications;
    let mut declared: Vec<String> = lc
        .hard_stops
        .iter()
        .chain(lc.cautions.iter())
        .filter(|f| f.basis == el::FactBasis::Declared)
        .map(|f| f.code.clone())
        .chain(lc.not_listed_for_route.iter().cloned())
        .filter(|code| tickable(code))
        .collect();
    declared.sort();
    declared.dedup();
    let trials: Vec<AntidepressantTrial> = trials_for(c, patient.id)?.into_iter().map(|t| t.trial).collect();
    let medications = crate::medications::medications_for(c, patient.id)?;
    let allergies = crate::medications::allergies_for(c, patient.id)?;
    let record = el::RecordFacts {
        today: crate::site_time::today(c, patient.site_id, now)?,
        date_of_birth: patient.date_of_birth,
        indication: patient.indication,
        trials: &trials,
        medications: &medications,
        allergies: &allergies,
        pregnancy: pregnancy.as_ref(),
    };
    Ok(Some(el::assess_route(route, &record, &declared, keta_domain::protocols::ProtocolLibrary::builtin().all())?))
}

/// Inserts a validated trial and its audit entry, in the caller's transaction.
pub(crate) fn insert_trial(
    c: &mut dyn Conn,
    actor: &Actor,
    now: time::OffsetDateTime,
    site: keta_domain::ids::SiteId,
    patient: PatientId,
    trial: &AntidepressantTrial,
) -> Result<RecordId> {
    let id = c.insert(
        "INSERT INTO antidepressant_trials (patient_id, body, recorded_at) VALUES ($1, $2, $3) RETURNING id",
        params![patient.0, json(trial), ms(now)],
    )?;
    audit::record(
        c,
        actor,
        now,
        Entry {
            action: Action::Create,
            object_type: "antidepressant_trial",
            object_id: Some(id.to_string()),
            patient_id: Some(patient),
            site_id: Some(site),
            fields: &["drug", "daily_dose_mg", "weeks", "adequate", "outcome", "current_episode"],
        },
    )?;
    Ok(RecordId(id))
}

impl Store {
    pub async fn add_antidepressant_trial(
        &self,
        actor: &Actor,
        patient: PatientId,
        trial: AntidepressantTrial,
    ) -> Result<AntidepressantTrialRecord> {
        actor.require(keta_domain::access::Permission::PlanTreatment)?;
        trial.validate()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let p = get_patient(c, &actor, patient)?;
            let id = insert_trial(c, &actor, now, p.site_id, patient, &trial)?;
            Ok(AntidepressantTrialRecord { id, patient_id: patient, trial })
        })
        .await
    }

    /// Scores and stores an assessment for one route from what Keta holds (age on the
    /// site's date against the route's protocol populations, the recorded trials, current
    /// medications, allergies, pregnancy status) and the clinician's ticks for the rest.
    pub async fn assess_eligibility(
        &self,
        actor: &Actor,
        patient: PatientId,
        new: NewEligibilityAssessment,
    ) -> Result<EligibilityAssessment> {
        actor.require(keta_domain::access::Permission::PlanTreatment)?;
        let maudsley = match &new.maudsley {
            Some(m) => Some(el::maudsley_score(m)?),
            None => None,
        };
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let p = get_patient(c, &actor, patient)?;
            let trials: Vec<AntidepressantTrial> = trials_for(c, patient)?.into_iter().map(|t| t.trial).collect();
            let medications = crate::medications::medications_for(c, patient)?;
            let allergies = crate::medications::allergies_for(c, patient)?;
            let pregnancy = crate::medications::pregnancy_for(c, patient)?;
            let record = el::RecordFacts {
                today: crate::site_time::today(c, p.site_id, now)?,
                date_of_birth: p.date_of_birth,
                indication: p.indication,
                trials: &trials,
                medications: &medications,
                allergies: &allergies,
                pregnancy: pregnancy.as_ref(),
            };
            let r = el::assess_route(
                new.route,
                &record,
                &new.contraindications_present,
                keta_domain::protocols::ProtocolLibrary::builtin().all(),
            )?;
            let blocked = r.contraindications.blocked;
            let mut a = EligibilityAssessment {
                id: RecordId(0),
                patient_id: patient,
                route: new.route,
                assessed_at: now,
                maudsley,
                contraindications: r.contraindications,
                blocked,
                treatment_resistant: r.treatment_resistance.resistant,
                warnings: r.warnings,
                facts: r.facts,
                age_years: Some(r.age_years),
            };
            let id = c.insert(
                "INSERT INTO eligibility_assessments (patient_id, route, body, maudsley_total, blocked, assessed_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                params![patient.0, new.route.as_str(), json(&a), a.maudsley.as_ref().map(|m| i64::from(m.total)), blocked, ms(now)],
            )?;
            a.id = RecordId(id);
            audit::record(c, &actor, now, Entry {
                action: Action::Create, object_type: "eligibility_assessment", object_id: Some(id.to_string()), patient_id: Some(patient),
                site_id: Some(p.site_id), fields: &["route", "maudsley", "contraindications_present"],
            })?;
            Ok(a)
        })
        .await
    }

    pub async fn list_eligibility(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<(Vec<AntidepressantTrialRecord>, Vec<EligibilityAssessment>)> {
        self.read_patient_audited(
            actor,
            keta_domain::access::Permission::ViewClinical,
            patient,
            "eligibility",
            move |c, _| Ok((trials_for(c, patient)?, assessments_for(c, patient)?)),
        )
        .await
    }
}
