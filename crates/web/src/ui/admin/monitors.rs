//! Bedside monitors: the administrator registers each monitor by the identifier it sends
//! (PV1-3 or MSH-4) to a chair. Readings from unregistered monitors go to the review list.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use keta_domain::ids::ChairId;

use super::{Refused, refuse};
use crate::AppState;
use crate::auth::CurrentUser;
use crate::ui::page::{Area, Chrome, Errors, FormData, UiResult, render_status, see_other};

pub(crate) struct MonitorRow {
    pub identifier: String,
    pub label: String,
    pub chair: String,
    pub registered: String,
}

#[derive(Template)]
#[template(path = "admin/monitors.html")]
struct MonitorsPage {
    chrome: Chrome,
    monitors: Vec<MonitorRow>,
    /// (chair id, "Site - Chair") for the form.
    chairs: Vec<(i64, String)>,
    refused: Refused,
    notice: Option<String>,
}

async fn monitors_page(st: &AppState, user: &CurrentUser, refused: Refused, notice: Option<String>) -> UiResult {
    let mut monitors = Vec::new();
    let mut chairs = Vec::new();
    for site in st.store.list_sites(&user.actor).await? {
        let site_chairs = st.store.list_chairs(&user.actor, site.id).await?;
        for d in st.store.list_monitors(&user.actor, site.id).await? {
            let chair = site_chairs.iter().find(|c| c.id == d.chair_id).map_or("?", |c| c.name.as_str());
            monitors.push(MonitorRow {
                identifier: d.identifier,
                label: d.label,
                chair: format!("{} - {chair}", site.code),
                registered: format!(
                    "{} by {}",
                    crate::ui::clock::SiteClock::utc().datetime(d.registered_at),
                    d.registered_by
                ),
            });
        }
        chairs.extend(site_chairs.into_iter().map(|c| (c.id.0, format!("{} - {}", site.code, c.name))));
    }
    let status = if refused.errors.any() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render_status(
        status,
        &MonitorsPage { chrome: Chrome::new(user, "Bedside monitors", Area::Admin), monitors, chairs, refused, notice },
    ))
}

pub async fn get_monitors(
    State(st): State<AppState>,
    user: CurrentUser,
    axum::extract::Query(saved): axum::extract::Query<super::Saved>,
) -> UiResult {
    monitors_page(&st, &user, Refused::none(), saved.notice()).await
}

pub async fn post_monitor(State(st): State<AppState>, user: CurrentUser, form: FormData) -> UiResult {
    let Ok(chair) = form.get("chair_id").trim().parse::<i64>() else {
        let mut errors = Errors::new();
        errors.add("chair_id", "choose the chair the monitor stands beside");
        return monitors_page(&st, &user, Refused::of("new", form, errors), None).await;
    };
    match st.store.register_monitor(&user.actor, ChairId(chair), form.get("identifier"), form.get("label")).await {
        Ok(_) => Ok(see_other("/admin/monitors?saved=1")),
        Err(e) => monitors_page(&st, &user, refuse("new", form, e)?, None).await,
    }
}
