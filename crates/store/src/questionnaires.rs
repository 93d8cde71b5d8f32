//! Questionnaire responses: scored on write; a positive safety item raises an
//! urgent alert in the same transaction, so the answer and its alert are stored
//! together or not at all.

use keta_domain::DomainError;
use keta_domain::alerts::{AlertFiring, AlertSeverity};
use keta_domain::ids::{CourseId, PatientId, ResponseId, SessionId};
use keta_domain::instruments::{self, Score};
use keta_domain::records::{CompletedBy, NewQuestionnaireResponse, QuestionnaireResponse};

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::time_codec::{from_json, from_ms, json, ms};
use crate::{Actor, Store, params};

const COLS: &str = "id, patient_id, course_id, session_id, instrument, answers, score, completed_at, completed_by";

fn response_from(r: &Row) -> Result<QuestionnaireResponse> {
    Ok(QuestionnaireResponse {
        id: ResponseId(r.i64("id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        course_id: r.opt_i64("course_id")?.map(CourseId),
        session_id: r.opt_i64("session_id")?.map(SessionId),
        instrument: r.text("instrument")?,
        answers: from_json(&r.text("answers")?)?,
        score: from_json(&r.text("score")?)?,
        completed_at: from_ms(r.i64("completed_at")?)?,
        completed_by: CompletedBy::parse(&r.text("completed_by")?)
            .ok_or_else(|| StoreError::Corrupt("completed_by".into()))?,
    })
}

pub(crate) fn responses_for(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<QuestionnaireResponse>> {
    c.query(
        &format!("SELECT {COLS} FROM questionnaire_responses WHERE patient_id = $1 ORDER BY completed_at, id"),
        params![patient.0],
    )?
    .iter()
    .map(response_from)
    .collect()
}

/// The alerts a score's safety flags raise.
pub(crate) fn safety_firings(instrument_name: &str, score: &Score) -> Vec<AlertFiring> {
    score
        .safety_flags
        .iter()
        .map(|f| AlertFiring {
            rule: format!("{}_{}", score.instrument, f.code),
            severity: if f.urgent { AlertSeverity::Urgent } else { AlertSeverity::Warning },
            message: format!("{instrument_name}: {}", f.message),
            source: score.source.clone(),
        })
        .collect()
}

/// Stores a scored response with its audit entry and runs the relapse watch on the course (all
/// in the caller's transaction). The caller raises the safety alerts (see [`safety_firings`]).
pub(crate) fn insert_response(
    c: &mut dyn Conn,
    actor: &Actor,
    now: time::OffsetDateTime,
    p: &keta_domain::patient::Patient,
    new: NewQuestionnaireResponse,
    score: Score,
    completed_at: time::OffsetDateTime,
) -> Result<QuestionnaireResponse> {
    let patient = p.id;
    let id = c.insert(
        "INSERT INTO questionnaire_responses (patient_id, site_id, course_id, session_id, instrument, answers, total, severity, score, completed_at, completed_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        params![
            patient.0, p.site_id.0, new.course_id.map(|x| x.0), new.session_id.map(|x| x.0), new.instrument.as_str(), json(&new.answers),
            score.total, score.severity.as_ref().map(|b| b.code.clone()), json(&score), ms(completed_at), new.completed_by.as_str()
        ],
    )?;
    audit::record(
        c,
        actor,
        now,
        Entry {
            action: Action::Create,
            object_type: "questionnaire_response",
            object_id: Some(id.to_string()),
            patient_id: Some(patient),
            site_id: Some(p.site_id),
            fields: &["instrument", "answers"],
        },
    )?;
    let response = QuestionnaireResponse {
        id: ResponseId(id),
        patient_id: patient,
        course_id: new.course_id,
        session_id: new.session_id,
        instrument: new.instrument,
        answers: new.answers,
        score,
        completed_at,
        completed_by: new.completed_by,
    };
    crate::checkins::relapse_check(c, actor, now, p, &response)?;
    Ok(response)
}

impl Store {
    pub async fn submit_response(
        &self,
        actor: &Actor,
        patient: PatientId,
        new: NewQuestionnaireResponse,
    ) -> Result<QuestionnaireResponse> {
        actor.require(keta_domain::access::Permission::EnterQuestionnaire)?;
        let instrument = instruments::catalog().get(&new.instrument).ok_or_else(|| {
            let known: Vec<&str> = instruments::catalog().all().iter().map(|i| i.code.as_str()).collect();
            DomainError::field(
                "instrument",
                format!("unknown instrument '{}'; use one of: {}", new.instrument, known.join(", ")),
            )
        })?;
        let score = instruments::score(instrument, &new.answers)?;
        let now = self.now();
        let completed_at = new.completed_at.unwrap_or(now);
        if completed_at > now + time::Duration::minutes(5) {
            return Err(DomainError::field("completed_at", "completion time cannot be in the future").into());
        }
        let name = instrument.short_name.clone();
        let actor = actor.clone();
        self.write(move |c| {
            let p = crate::patients::get_patient(c, &actor, patient)?;
            if let Some(cid) = new.course_id {
                let course = crate::courses::get_course(c, &actor, cid)?;
                if course.patient_id != patient {
                    return Err(DomainError::field("course_id", "that course belongs to another patient").into());
                }
            }
            if let Some(sid) = new.session_id {
                let s = crate::sessions::get_session(c, &actor, sid)?;
                if s.patient_id != patient {
                    return Err(DomainError::field("session_id", "that session belongs to another patient").into());
                }
            }
            let firings = safety_firings(&name, &score);
            let session = new.session_id;
            let r = insert_response(c, &actor, now, &p, new, score, completed_at)?;
            crate::sessions::raise(c, &actor, now, p.site_id, patient, session, firings)?;
            Ok(r)
        })
        .await
    }

    pub async fn list_responses(
        &self,
        actor: &Actor,
        patient: PatientId,
        instrument: Option<String>,
    ) -> Result<Vec<QuestionnaireResponse>> {
        self.read_patient_audited(
            actor,
            keta_domain::access::Permission::ViewClinical,
            patient,
            "questionnaire_responses",
            move |c, _| {
                let all = responses_for(c, patient)?;
                Ok(match instrument {
                    Some(i) => all.into_iter().filter(|r| r.instrument == i).collect(),
                    None => all,
                })
            },
        )
        .await
    }
}
