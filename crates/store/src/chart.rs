//! The patient chart: everything about one patient, read in one snapshot.

use keta_domain::ids::PatientId;
use keta_domain::records::{PatientChart, course_outcomes};

use crate::alerts::AlertQuery;
use crate::error::Result;
use crate::{Actor, Store, params};

impl Store {
    pub async fn patient_chart(&self, actor: &Actor, id: PatientId) -> Result<PatientChart> {
        actor.require(keta_domain::access::Permission::ViewClinical)?;
        let act = actor.clone();
        let out = self
            .read(move |c| {
                let patient = crate::patients::get_patient(c, &act, id)?;
                let courses = crate::courses::courses_for(c, id)?;
                let responses = crate::questionnaires::responses_for(c, id)?;
                let outcomes = course_outcomes(&courses, &responses);
                let open_alerts = crate::alerts::list(
                    c,
                    &act,
                    &AlertQuery { patient_id: Some(id), open_only: true, limit: 200, ..Default::default() },
                )?;
                let adverse_events = c
                    .query(
                        &format!(
                            "SELECT {} FROM adverse_events WHERE patient_id = $1 ORDER BY onset_at, id",
                            crate::sessions::AE_COLS
                        ),
                        params![id.0],
                    )?
                    .iter()
                    .map(crate::sessions::ae_from)
                    .collect::<Result<Vec<_>>>()?;
                Ok(PatientChart {
                    weights: crate::patients::weights(c, id)?,
                    sessions: crate::sessions::sessions_for_patient(c, id)?,
                    antidepressant_trials: crate::eligibility::trials_for(c, id)?,
                    eligibility: crate::eligibility::assessments_for(c, id)?,
                    patient,
                    courses,
                    responses,
                    outcomes,
                    open_alerts,
                    adverse_events,
                })
            })
            .await?;
        self.audit_read(actor, "chart", None, Some(id)).await?;
        Ok(out)
    }
}
