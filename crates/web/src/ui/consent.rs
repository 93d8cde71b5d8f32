//! Consent and REMS enrolment on the tablet: the patient reads the current version
//! of a form, types their name and draws a signature (kept as SVG path data, drawn by
//! `static/signature.js`); a clinician countersigns. The page lists every consent on file,
//! current or not, with the version signed. A session's "dose refused" message links here.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::access::Permission;
use keta_domain::consent::{ConsentForm, ConsentKind, ConsentRecord, NewConsent, WithdrawConsent};
use keta_domain::ids::{PatientId, RecordId};
use serde::Deserialize;

use super::clock::{SiteClock, parse_iso_date};
use super::page::{Area, Chrome, Errors, FormData, UiResult, render, render_status, see_other};
use crate::AppState;
use crate::auth::CurrentUser;

/// The drawing script, embedded like the other static files.
pub const SIGNATURE_JS: &str = include_str!("../../static/signature.js");

pub struct Row {
    pub id: i64,
    pub line: String,
    pub status: &'static str,
    pub can_countersign: bool,
    pub can_withdraw: bool,
    pub rems: String,
    pub signature_svg: String,
}

pub struct FormChoice {
    pub key: String,
    pub title: String,
    pub version: u32,
    pub on_file: bool,
}

#[derive(Template)]
#[template(path = "consent/consents.html")]
struct ConsentsPage {
    chrome: Chrome,
    patient_id: i64,
    patient_name: String,
    rows: Vec<Row>,
    forms: Vec<FormChoice>,
    signing: Option<&'static ConsentForm>,
    is_rems: bool,
    can_record: bool,
    today: String,
    form: FormData,
    errors: Errors,
    signature_js: &'static str,
}

#[derive(Deserialize)]
pub struct Which {
    pub form: Option<String>,
}

fn row(r: &ConsentRecord, clock: &SiteClock, user: &CurrentUser) -> Row {
    let mut line = format!(
        "{} (version {}): signed by {} on {}",
        r.form_title,
        r.form_version,
        r.patient_typed_name,
        clock.datetime(r.patient_signed_at)
    );
    if let (Some(by), Some(at)) = (&r.countersigned_by, r.countersigned_at) {
        line.push_str(&format!(", countersigned by {by} on {}", clock.datetime(at)));
    }
    if let Some(at) = r.withdrawn_at {
        line.push_str(&format!("; withdrawn on {}", clock.datetime(at)));
        if let Some(w) = &r.withdrawal_reason {
            line.push_str(&format!(" ({w})"));
        }
    }
    let status = if r.withdrawn_at.is_some() {
        "Withdrawn"
    } else if r.countersigned_at.is_none() {
        "Awaiting countersignature"
    } else if r.is_current() {
        "Current"
    } else {
        "Superseded form version"
    };
    Row {
        id: r.id.0,
        line,
        status,
        can_countersign: r.countersigned_at.is_none()
            && r.withdrawn_at.is_none()
            && user.actor.can(Permission::SignNotes),
        can_withdraw: r.withdrawn_at.is_none() && user.actor.can(Permission::RecordSession),
        rems: match (&r.rems_patient_id, r.rems_enrolled_on) {
            (Some(id), Some(on)) => format!("REMS patient id {id}, enrolled {on}"),
            _ => String::new(),
        },
        signature_svg: r.patient_signature_svg.clone(),
    }
}

async fn page(
    st: &AppState,
    user: &CurrentUser,
    id: PatientId,
    which: Option<&str>,
    form: FormData,
    errors: Errors,
) -> UiResult<ConsentsPage> {
    let patient = st.store.get_patient(&user.actor, id).await?;
    let records = st.store.list_consents(&user.actor, id).await?;
    let sites = st.store.list_sites(&user.actor).await?;
    let clock = sites.iter().find(|s| s.id == patient.site_id).map_or_else(SiteClock::utc, SiteClock::for_site);
    let signing = which.and_then(keta_domain::consent::current_form);
    Ok(ConsentsPage {
        chrome: Chrome::new(user, format!("Consents: {} {}", patient.given_name, patient.family_name), Area::Patients),
        patient_id: id.0,
        patient_name: format!("{} {}", patient.given_name, patient.family_name),
        rows: records.iter().rev().map(|r| row(r, &clock, user)).collect(),
        forms: keta_domain::consent::current_forms()
            .into_iter()
            .map(|f| FormChoice {
                key: f.key.clone(),
                title: f.title.clone(),
                version: f.version,
                on_file: records.iter().any(|r| r.form_key == f.key && r.is_current()),
            })
            .collect(),
        is_rems: signing.is_some_and(|f| f.kind == ConsentKind::RemsEnrolment),
        signing,
        can_record: user.actor.can(Permission::RecordSession),
        today: clock.today(st.store.now()).to_string(),
        form,
        errors,
        signature_js: super::assets::signature_js_href(),
    })
}

/// `GET /patients/{id}/consents[?form=KEY]`: the consents on file, and the form to sign.
pub async fn get_consents(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(which): Query<Which>,
) -> UiResult<Response> {
    Ok(render(&page(&st, &user, PatientId(id), which.form.as_deref(), FormData::empty(), Errors::new()).await?))
}

/// `POST /patients/{id}/consents`: the patient's signature.
pub async fn post_consent(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let key = form.get("form_key").to_string();
    let version = form.integer("form_version", &mut errors).and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    let enrolled = form.opt("rems_enrolled_on");
    let rems_enrolled_on = enrolled.as_deref().and_then(|d| parse_iso_date(d.trim()));
    if enrolled.is_some() && rems_enrolled_on.is_none() {
        errors.add("rems_enrolled_on", "enter the enrolment date as YYYY-MM-DD");
    }
    if !errors.any() {
        let new = NewConsent {
            form_key: key.clone(),
            form_version: version,
            patient_typed_name: form.get("patient_typed_name").to_string(),
            patient_signature_svg: form.get("patient_signature_svg").to_string(),
            rems_patient_id: form.opt("rems_patient_id"),
            rems_enrolled_on,
        };
        match st.store.record_consent(&user.actor, PatientId(id), new).await {
            Ok(_) => return Ok(see_other(format!("/patients/{id}/consents#on-file"))),
            Err(e) => errors.absorb(e)?,
        }
    }
    let p = page(&st, &user, PatientId(id), Some(&key), form, errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &p))
}

/// `POST /patients/{id}/consents/{consent}/countersign`.
pub async fn post_countersign(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, consent)): Path<(i64, i64)>,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    match st.store.countersign_consent(&user.actor, RecordId(consent)).await {
        Ok(_) => return Ok(see_other(format!("/patients/{id}/consents#on-file"))),
        Err(e) => errors.absorb(e)?,
    }
    let p = page(&st, &user, PatientId(id), None, FormData::empty(), errors).await?;
    Ok(render_status(StatusCode::CONFLICT, &p))
}

/// `POST /patients/{id}/consents/{consent}/withdraw`.
pub async fn post_withdraw(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, consent)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let w = WithdrawConsent { reason: form.get("reason").to_string() };
    match st.store.withdraw_consent(&user.actor, RecordId(consent), w).await {
        Ok(_) => return Ok(see_other(format!("/patients/{id}/consents#on-file"))),
        Err(e) => errors.absorb(e)?,
    }
    errors.rename("reason", "withdraw_reason");
    let p = page(&st, &user, PatientId(id), None, form, errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &p))
}
