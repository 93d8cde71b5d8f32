//! Sites: address, time zone, crisis line and the clinic's number for patients, chairs, and
//! who is on duty for escalated alerts.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use keta_domain::escalation::OnDuty;
use keta_domain::ids::SiteId;
use keta_domain::site::{NewSite, Site};
use keta_store::admin::{DeaRegistration, SiteChange};
use keta_store::checkins::PatientContactSettings;

use super::{Refused, Saved, changed_label, refuse};
use crate::AppState;
use crate::auth::CurrentUser;
use crate::ui::page::{Area, Chrome, Errors, FormData, UiError, UiResult, render_status, see_other};

pub(crate) struct SiteRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub time_zone: String,
    pub chairs: usize,
}

#[derive(Template)]
#[template(path = "admin/sites.html")]
struct SitesPage {
    chrome: Chrome,
    sites: Vec<SiteRow>,
    refused: Refused,
}

#[derive(Template)]
#[template(path = "admin/site.html")]
struct SitePage {
    chrome: Chrome,
    site: Site,
    address: String,
    chairs: Vec<String>,
    crisis_instructions: String,
    clinic_phone: String,
    on_duty: OnDuty,
    prescribers: Vec<(String, String)>,
    site_changed: String,
    contact_changed: String,
    duty_changed: String,
    dea: DeaRegistration,
    dea_changed: String,
    refused: Refused,
    notice: Option<String>,
}

async fn sites_page(st: &AppState, user: &CurrentUser, refused: Refused) -> UiResult {
    let sites = st.store.list_sites(&user.actor).await?;
    let mut rows = Vec::new();
    for s in &sites {
        let chairs = st.store.list_chairs(&user.actor, s.id).await?.len();
        rows.push(SiteRow {
            id: s.id.0,
            code: s.code.clone(),
            name: s.name.clone(),
            time_zone: s.time_zone.clone(),
            chairs,
        });
    }
    let status = if refused.errors.any() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render_status(status, &SitesPage { chrome: Chrome::new(user, "Sites", Area::Admin), sites: rows, refused }))
}

pub async fn get_sites(State(st): State<AppState>, user: CurrentUser) -> UiResult {
    sites_page(&st, &user, Refused::none()).await
}

/// Chair names from the form's text area: one per line, blank lines ignored.
fn chair_lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

pub async fn post_new_site(State(st): State<AppState>, user: CurrentUser, form: FormData) -> UiResult {
    let new = NewSite {
        code: form.get("code").trim().to_string(),
        name: form.get("name").to_string(),
        time_zone: form.get("time_zone").trim().to_string(),
        crisis_line: form.get("crisis_line").to_string(),
    };
    let chairs = chair_lines(form.get("chairs"));
    if chairs.is_empty() {
        let mut errors = Errors::new();
        errors.add("chairs", "name at least one chair, one per line (e.g. Chair 1)");
        return sites_page(&st, &user, Refused::of("new", form, errors)).await;
    }
    match st.store.create_site(&user.actor, new, chairs).await {
        Ok(site) => {
            // The code is unique; a clash comes back as a conflict naming it.
            Ok(see_other(format!("/admin/sites/{}?saved=1", site.id.0)))
        }
        Err(e) => sites_page(&st, &user, refuse("new", form, e)?).await,
    }
}

async fn site_page(st: &AppState, user: &CurrentUser, id: i64, refused: Refused, notice: Option<String>) -> UiResult {
    let site = st
        .store
        .list_sites(&user.actor)
        .await?
        .into_iter()
        .find(|s| s.id.0 == id)
        .ok_or_else(|| UiError::NotFound(format!("Site {id}")))?;
    let address = st.store.site_address(&user.actor, site.id).await?;
    let chairs = st.store.list_chairs(&user.actor, site.id).await?.into_iter().map(|c| c.name).collect();
    let contact = st.store.link_site_for_patients(site.id).await?;
    let on_duty = st.store.on_duty(&user.actor, site.id).await?;
    let prescribers = st
        .store
        .list_users(&user.actor)
        .await?
        .into_iter()
        .filter(|u| u.role == keta_domain::access::Role::Prescriber && !u.disabled && u.site_ids.contains(&site.id))
        .map(|u| (u.username, u.display_name))
        .collect();
    let key = site.id.to_string();
    let changes = st
        .store
        .last_changes(
            &user.actor,
            vec![
                ("site".into(), key.clone(), None),
                ("site_patient_settings".into(), key.clone(), None),
                ("site_on_duty".into(), key.clone(), None),
                ("site_dea_registration".into(), key.clone(), None),
            ],
        )
        .await?;
    let dea = st.store.site_dea_registration(&user.actor, site.id).await?;
    let page = SitePage {
        chrome: Chrome::new(user, format!("Site {}", site.code), Area::Admin),
        address,
        chairs,
        crisis_instructions: contact.crisis_instructions,
        clinic_phone: contact.clinic_phone.unwrap_or_default(),
        on_duty,
        prescribers,
        site_changed: changed_label(changes[0].as_ref()),
        contact_changed: changed_label(changes[1].as_ref()),
        duty_changed: changed_label(changes[2].as_ref()),
        dea,
        dea_changed: changed_label(changes[3].as_ref()),
        site,
        refused,
        notice,
    };
    let status = if page.refused.errors.any() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render_status(status, &page))
}

pub async fn get_site(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<Saved>,
) -> UiResult {
    site_page(&st, &user, id, Refused::none(), q.notice()).await
}

pub async fn post_site(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>, form: FormData) -> UiResult {
    let change = SiteChange {
        name: form.get("name").to_string(),
        address: form.get("address").to_string(),
        time_zone: form.get("time_zone").trim().to_string(),
        crisis_line: form.get("crisis_line").to_string(),
    };
    match st.store.update_site(&user.actor, SiteId(id), change).await {
        Ok(()) => Ok(see_other(format!("/admin/sites/{id}?saved=1"))),
        Err(e) => site_page(&st, &user, id, refuse("site", form, e)?, None).await,
    }
}

pub async fn post_chair(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult {
    match st.store.add_chair(&user.actor, SiteId(id), form.get("chair_name").to_string()).await {
        Ok(_) => Ok(see_other(format!("/admin/sites/{id}?saved=1"))),
        Err(e) => site_page(&st, &user, id, refuse("chair", form, e)?, None).await,
    }
}

pub async fn post_patient_contact(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult {
    let s = PatientContactSettings {
        crisis_instructions: form.get("crisis_instructions").to_string(),
        clinic_phone: form.opt("clinic_phone"),
    };
    match st.store.set_patient_contact_settings(&user.actor, SiteId(id), s).await {
        Ok(_) => Ok(see_other(format!("/admin/sites/{id}?saved=1"))),
        Err(e) => site_page(&st, &user, id, refuse("contact", form, e)?, None).await,
    }
}

pub async fn post_on_duty(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult {
    let s = OnDuty {
        prescriber: form.opt("prescriber"),
        contact_email: form.opt("contact_email"),
        contact_phone: form.opt("contact_phone"),
        alert_sound: form.checked("alert_sound"),
    };
    match st.store.set_on_duty(&user.actor, SiteId(id), s).await {
        Ok(_) => Ok(see_other(format!("/admin/sites/{id}?saved=1"))),
        Err(e) => site_page(&st, &user, id, refuse("duty", form, e)?, None).await,
    }
}

/// `POST /admin/sites/{id}/dea-registration`: the registrant's DEA number and registered
/// address, printed on the site's controlled-substance books.
pub async fn post_dea_registration(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult {
    let reg = DeaRegistration {
        number: form.get("dea_registration_number").to_string(),
        address: form.get("dea_registered_address").to_string(),
    };
    match st.store.set_site_dea_registration(&user.actor, SiteId(id), reg).await {
        Ok(()) => Ok(see_other(format!("/admin/sites/{id}?saved=1"))),
        Err(e) => site_page(&st, &user, id, refuse("dea", form, e)?, None).await,
    }
}
