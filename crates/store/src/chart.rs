//! The patient chart: everything about one patient, read in one snapshot.

use keta_domain::access::Permission;
use keta_domain::ids::PatientId;
use keta_domain::records::{PatientChart, course_outcomes};

use crate::alerts::AlertQuery;
use crate::conn::Conn;
use crate::error::Result;
use crate::{Actor, Store, params};

fn load_chart(c: &mut dyn Conn, actor: &Actor, id: PatientId) -> Result<PatientChart> {
    let patient = crate::patients::get_patient(c, actor, id)?;
    let courses = crate::courses::courses_for(c, id)?;
    let responses = crate::questionnaires::responses_for(c, id)?;
    let outcomes = course_outcomes(&courses, &responses);
    let open_alerts = crate::alerts::list(
        c,
        actor,
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
        medications: crate::medications::medications_for(c, id)?,
        allergies: crate::medications::allergies_for(c, id)?,
        pregnancy: crate::medications::pregnancy_for(c, id)?,
        patient,
        courses,
        responses,
        outcomes,
        open_alerts,
        adverse_events,
    })
}

impl Store {
    pub async fn patient_chart(&self, actor: &Actor, id: PatientId) -> Result<PatientChart> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let out = self.read(move |c| load_chart(c, &act, id)).await?;
        self.audit_read(actor, "chart", None, Some(id)).await?;
        Ok(out)
    }

    /// Several charts for a list screen: one read snapshot and one audit transaction
    /// (still one read entry per patient shown), instead of a round trip per patient.
    /// Patients the actor may not see are left out.
    pub async fn patient_charts(&self, actor: &Actor, ids: Vec<PatientId>) -> Result<Vec<PatientChart>> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let charts: Vec<PatientChart> = self
            .read(move |c| {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    match load_chart(c, &act, id) {
                        Ok(chart) => out.push(chart),
                        Err(crate::StoreError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(out)
            })
            .await?;
        let seen: Vec<PatientId> = charts.iter().map(|c| c.patient.id).collect();
        self.audit_reads(actor, "chart_summary", seen).await?;
        Ok(charts)
    }
}
