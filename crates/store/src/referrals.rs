//! Referral import: a new patient with diagnoses, antidepressant trials and prior
//! questionnaire totals, in one transaction (`keta_domain::referral`). Each part goes through
//! the same rule and the same audit entry as its form (registering a patient, adding a trial);
//! prior totals are kept in `prior_scores` with their own audit entry. One bad part refuses
//! the whole referral and nothing is written.

use keta_domain::access::Permission;
use keta_domain::ids::{PatientId, RecordId, SiteId};
use keta_domain::referral::{NewReferral, PriorScore};

use crate::audit::{self, Created};
use crate::conn::{Conn, Row};
use crate::error::Result;
use crate::time_codec::{date_text, ms, parse_date};
use crate::{Actor, Store, params};

/// What a referral created, in input order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReferralCreated {
    pub patient_id: PatientId,
    pub trials: Vec<RecordId>,
    pub prior_scores: Vec<RecordId>,
}

/// A prior total as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PriorScoreRecord {
    pub id: RecordId,
    pub patient_id: PatientId,
    pub score: PriorScore,
    /// Where the total came from (e.g. `fhir referral`).
    pub source: String,
}

fn prior_from(r: &Row) -> Result<PriorScoreRecord> {
    Ok(PriorScoreRecord {
        id: RecordId(r.i64("id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        score: PriorScore {
            instrument: r.text("instrument")?,
            total: i32::try_from(r.i64("total")?).unwrap_or(i32::MAX),
            observed_on: parse_date(&r.text("observed_on")?)?,
        },
        source: r.text("source")?,
    })
}

pub(crate) fn prior_scores_for(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<PriorScoreRecord>> {
    c.query(
        "SELECT id, patient_id, instrument, total, observed_on, source FROM prior_scores WHERE patient_id = $1 ORDER BY observed_on, id",
        params![patient.0],
    )?
    .iter()
    .map(prior_from)
    .collect()
}

impl Store {
    /// Creates the referred patient with their history; see the module docs. Needs what each
    /// form needs: registering patients, planning treatment (trials) and entering
    /// questionnaires.
    pub async fn import_referral(&self, actor: &Actor, referral: NewReferral, source: &str) -> Result<ReferralCreated> {
        for p in [Permission::EditDemographics, Permission::PlanTreatment, Permission::EnterQuestionnaire] {
            actor.require(p)?;
        }
        let site: SiteId = referral.patient.site_id;
        if !actor.scope.allows(site) {
            return Err(keta_domain::DomainError::field("patient.site_id", "you are not assigned to this site").into());
        }
        let now = self.now();
        let actor = actor.clone();
        let source = source.to_string();
        self.write(move |c| {
            crate::sites::get_site(c, site)
                .map_err(|_| keta_domain::DomainError::field("patient.site_id", format!("site {site} does not exist")))?;
            referral.validate(crate::site_time::today(c, site, now)?)?;
            let patient = crate::patients::insert_patient(c, &actor, now, &referral.patient)?;
            let mut trials = Vec::with_capacity(referral.trials.len());
            for t in &referral.trials {
                trials.push(crate::eligibility::insert_trial(c, &actor, now, site, patient, t)?);
            }
            let mut scores = Vec::with_capacity(referral.prior_scores.len());
            for s in &referral.prior_scores {
                let id = audit::insert_audited(
                    c,
                    &actor,
                    now,
                    "INSERT INTO prior_scores (patient_id, site_id, instrument, total, observed_on, source, recorded_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    params![patient.0, site.0, s.instrument.as_str(), i64::from(s.total), date_text(s.observed_on), source.as_str(), ms(now)],
                    Created { object_type: "prior_score", patient, site, fields: &["instrument", "total", "observed_on", "source"] },
                )?;
                scores.push(RecordId(id));
            }
            Ok(ReferralCreated { patient_id: patient, trials, prior_scores: scores })
        })
        .await
    }

    /// Prior totals the referrer reported, oldest first (audited as a chart read).
    pub async fn list_prior_scores(&self, actor: &Actor, patient: PatientId) -> Result<Vec<PriorScoreRecord>> {
        self.read_patient_audited(actor, Permission::ViewClinical, patient, "prior_scores", move |c, _| {
            prior_scores_for(c, patient)
        })
        .await
    }
}
