//! Questionnaires: staff entry for any instrument, and a kiosk the patient completes on
//! the tablet (instruments whose wording may be shown). Scored by the store on submit; a
//! positive safety item raises an alert in the same transaction, which the board shows.
//! The kiosk shows the patient no score and no record, only the site's crisis line when
//! a safety item was answered positively.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::course::CourseStatus;
use keta_domain::ids::PatientId;
use keta_domain::instruments::{AnswerKind, CompletedBy as InstrumentCompletedBy, Instrument, catalog};
use keta_domain::records::{CompletedBy, NewQuestionnaireResponse};
use serde::Deserialize;

use super::page::{Area, Chrome, Errors, FormData, UiError, UiResult, render, render_status, see_other};
use crate::AppState;
use crate::auth::CurrentUser;

pub(crate) struct AnswerOption {
    pub value: String,
    pub label: String,
    pub id: String,
}

pub(crate) struct ItemView {
    pub name: String,
    pub number: u32,
    pub text: String,
    pub hint: String,
    pub options: Vec<AnswerOption>,
}

pub(crate) fn item_views(inst: &Instrument, patient_facing: bool) -> Vec<ItemView> {
    inst.items
        .iter()
        .map(|it| {
            let labels = inst.labels_for(it);
            let options = (it.min..=it.max)
                .map(|v| AnswerOption {
                    value: v.to_string(),
                    label: match (it.kind, labels.iter().find(|l| l.value == v)) {
                        (_, Some(l)) => l.label.clone(),
                        (AnswerKind::YesNo, None) => (if v == 0 { "No" } else { "Yes" }).to_string(),
                        (AnswerKind::Scale, None) => v.to_string(),
                    },
                    id: format!("q{}-{v}", it.number),
                })
                .collect();
            let text = it
                .text
                .clone()
                .or_else(|| it.label.clone().map(|l| format!("Item {}: {l}", it.number)))
                .unwrap_or_else(|| format!("Item {}", it.number));
            let mut hint = Vec::new();
            if !it.required {
                hint.push("optional".to_string());
            }
            if let Some(a) = it.ask_if {
                hint.push(if patient_facing {
                    "answer only if it applies".to_string()
                } else {
                    format!("asked only if item {} is {} or more", a.item, a.at_least)
                });
            }
            ItemView { name: format!("q{}", it.number), number: it.number, text, hint: hint.join("; "), options }
        })
        .collect()
}

/// Reads answers `q1..qN`; blank = not asked. Unparseable values are field errors.
pub(crate) fn read_answers(inst: &Instrument, form: &FormData, errors: &mut Errors) -> Vec<Option<i32>> {
    inst.items.iter().map(|it| form.integer(&format!("q{}", it.number), errors).map(|v| v as i32)).collect()
}

pub(crate) fn map_answer_errors(inst: &Instrument, errors: &mut Errors) {
    for i in 0..inst.items.len() {
        errors.rename(&format!("answers[{i}]"), &format!("q{}", i + 1));
    }
}

#[derive(Template)]
#[template(path = "questionnaires/staff.html")]
struct StaffPage {
    chrome: Chrome,
    id: i64,
    patient: String,
    code: String,
    name: String,
    short_name: String,
    recall: String,
    instructions: String,
    copyright: String,
    items: Vec<ItemView>,
    form: FormData,
    errors: Errors,
}

#[derive(Deserialize)]
pub struct InstrumentParam {
    instrument: Option<String>,
}

fn instrument(code: &str) -> UiResult<&'static Instrument> {
    catalog().get(code).ok_or_else(|| UiError::NotFound(format!("Instrument '{code}'")))
}

async fn staff_page(
    st: &AppState,
    user: &CurrentUser,
    id: PatientId,
    inst: &'static Instrument,
    form: FormData,
    errors: Errors,
) -> UiResult<StaffPage> {
    let p = st.store.get_patient(&user.actor, id).await?;
    Ok(StaffPage {
        chrome: Chrome::new(user, format!("{} · {}", inst.short_name, p.display_name()), Area::Patients),
        id: id.0,
        patient: p.display_name(),
        code: inst.code.clone(),
        name: inst.name.clone(),
        short_name: inst.short_name.clone(),
        recall: inst.recall_window.clone(),
        instructions: inst.instructions.clone().unwrap_or_default(),
        copyright: inst.copyright.clone().unwrap_or_default(),
        items: item_views(inst, false),
        form,
        errors,
    })
}

pub async fn get_staff_entry(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<InstrumentParam>,
) -> UiResult<Response> {
    let inst = instrument(q.instrument.as_deref().unwrap_or("phq9"))?;
    let page = staff_page(&st, &user, PatientId(id), inst, FormData::empty(), Errors::new()).await?;
    Ok(render(&page))
}

/// The patient's active course (the newest), so the score counts towards its outcome.
async fn active_course(st: &AppState, user: &CurrentUser, id: PatientId) -> Option<keta_domain::ids::CourseId> {
    st.store
        .list_courses(&user.actor, id)
        .await
        .ok()?
        .into_iter()
        .rev()
        .find(|c| c.status == CourseStatus::Active)
        .map(|c| c.id)
}

pub async fn post_staff_entry(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let inst = instrument(form.get("instrument"))?;
    let pid = PatientId(id);
    let mut errors = Errors::new();
    let answers = read_answers(inst, &form, &mut errors);
    if !errors.any() {
        let new = NewQuestionnaireResponse {
            instrument: inst.code.clone(),
            answers,
            course_id: active_course(&st, &user, pid).await,
            session_id: None,
            completed_at: None,
            completed_by: CompletedBy::Staff,
        };
        match st.store.submit_response(&user.actor, pid, new).await {
            Ok(_) => {
                publish_for(&st, &user, pid).await;
                return Ok(see_other(format!("/patients/{id}#resp-title")));
            }
            Err(e) => {
                errors.absorb(e)?;
                map_answer_errors(inst, &mut errors);
            }
        }
    }
    let page = staff_page(&st, &user, pid, inst, form, errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

async fn publish_for(st: &AppState, user: &CurrentUser, id: PatientId) {
    let site = st.store.get_patient(&user.actor, id).await.ok().map(|p| p.site_id);
    super::live::publish(site);
}

#[derive(Template)]
#[template(path = "questionnaires/kiosk.html")]
struct KioskPage {
    chrome: Chrome,
    id: i64,
    first_name: String,
    code: String,
    name: String,
    instructions: String,
    recall: String,
    copyright: String,
    items: Vec<ItemView>,
    form: FormData,
    errors: Errors,
}

#[derive(Template)]
#[template(path = "questionnaires/kiosk_done.html")]
struct KioskDone {
    chrome: Chrome,
    id: i64,
    first_name: String,
    safety: bool,
    crisis_line: String,
}

fn kiosk_instrument(code: &str) -> UiResult<&'static Instrument> {
    let inst = instrument(code)?;
    if !(inst.wording_permitted && inst.completed_by == InstrumentCompletedBy::Patient) {
        return Err(UiError::BadRequest(format!(
            "{} cannot be shown to patients in the kiosk; enter it as staff instead",
            inst.short_name
        )));
    }
    Ok(inst)
}

async fn kiosk_page(
    st: &AppState,
    user: &CurrentUser,
    id: PatientId,
    inst: &'static Instrument,
    form: FormData,
    errors: Errors,
) -> UiResult<KioskPage> {
    let p = st.store.get_patient(&user.actor, id).await?;
    Ok(KioskPage {
        chrome: Chrome::new(user, inst.short_name.clone(), Area::None),
        id: id.0,
        first_name: p.given_name.clone(),
        code: inst.code.clone(),
        name: inst.name.clone(),
        instructions: inst.instructions.clone().unwrap_or_default(),
        recall: inst.recall_window.clone(),
        copyright: inst.copyright.clone().unwrap_or_default(),
        items: item_views(inst, true),
        form,
        errors,
    })
}

/// `/kiosk/{id}?instrument=phq9` (from the chart's form) → `/kiosk/{id}/phq9`. The session
/// goes into kiosk mode for this patient: staff pages refuse until the staff member
/// re-enters their password.
pub async fn get_kiosk_start(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<InstrumentParam>,
) -> UiResult<Response> {
    let inst = kiosk_instrument(q.instrument.as_deref().unwrap_or("phq9"))?;
    st.store.enter_kiosk(&user.actor, &user.token_hash, PatientId(id)).await?;
    Ok(see_other(format!("/kiosk/{id}/{}", inst.code)))
}

pub async fn get_kiosk(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, code)): Path<(i64, String)>,
) -> UiResult<Response> {
    let inst = kiosk_instrument(&code)?;
    // Any kiosk page binds the session to kiosk mode, however it was reached.
    st.store.enter_kiosk(&user.actor, &user.token_hash, PatientId(id)).await?;
    let page = kiosk_page(&st, &user, PatientId(id), inst, FormData::empty(), Errors::new()).await?;
    Ok(render(&page))
}

pub async fn post_kiosk(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, code)): Path<(i64, String)>,
    form: FormData,
) -> UiResult<Response> {
    let inst = kiosk_instrument(&code)?;
    let pid = PatientId(id);
    st.store.enter_kiosk(&user.actor, &user.token_hash, pid).await?;
    let mut errors = Errors::new();
    let answers = read_answers(inst, &form, &mut errors);
    if !errors.any() {
        let new = NewQuestionnaireResponse {
            instrument: inst.code.clone(),
            answers,
            course_id: active_course(&st, &user, pid).await,
            session_id: None,
            completed_at: None,
            completed_by: CompletedBy::Patient,
        };
        match st.store.submit_response(&user.actor, pid, new).await {
            Ok(r) => {
                let p = st.store.get_patient(&user.actor, pid).await?;
                super::live::publish(Some(p.site_id));
                let crisis_line = st
                    .store
                    .list_sites(&user.actor)
                    .await?
                    .into_iter()
                    .find(|s| s.id == p.site_id)
                    .map(|s| s.crisis_line)
                    .unwrap_or_default();
                return Ok(render(&KioskDone {
                    chrome: Chrome::new(&user, "Thank you", Area::None),
                    id,
                    first_name: p.given_name,
                    safety: !r.score.safety_flags.is_empty(),
                    crisis_line,
                }));
            }
            Err(e) => {
                errors.absorb(e)?;
                map_answer_errors(inst, &mut errors);
            }
        }
    }
    let page = kiosk_page(&st, &user, pid, inst, form, errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}
