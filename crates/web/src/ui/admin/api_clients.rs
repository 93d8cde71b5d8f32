//! API clients: machine accounts with read-only FHIR access to chosen sites. The bearer token
//! is shown once, on creation; revoking takes effect on the next request.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keta_store::api_clients::ApiClient;

use super::staff::{Choice, site_choices, ticked_sites};
use super::{Refused, refuse};
use crate::AppState;
use crate::auth::CurrentUser;
use crate::ui::clock::SiteClock;
use crate::ui::page::{Area, Chrome, Errors, FormData, UiResult, render_status, see_other};

pub(crate) struct ClientRow {
    pub id: i64,
    pub name: String,
    pub sites: String,
    pub created: String,
    pub last_used: String,
    pub revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/api_clients.html")]
struct ClientsPage {
    chrome: Chrome,
    clients: Vec<ClientRow>,
    sites: Vec<Choice>,
    refused: Refused,
    /// After creating a client: its name and bearer token, shown once.
    created: Option<(String, String)>,
}

fn when(t: time::OffsetDateTime) -> String {
    format!("{} UTC", SiteClock::utc().datetime(t))
}

async fn clients_page(
    st: &AppState,
    user: &CurrentUser,
    refused: Refused,
    created: Option<(String, String)>,
) -> UiResult {
    let clients: Vec<ApiClient> = st.store.list_api_clients(&user.actor).await?;
    let (choices, sites) = site_choices(st, user).await?;
    let rows = clients
        .iter()
        .map(|c| ClientRow {
            id: c.id,
            name: c.name.clone(),
            sites: c
                .site_ids
                .iter()
                .map(|id| sites.iter().find(|s| s.id == *id).map_or_else(|| id.to_string(), |s| s.code.clone()))
                .collect::<Vec<_>>()
                .join(", "),
            created: format!("{} by {}", when(c.created_at), c.created_by),
            last_used: c.last_used_at.map_or_else(|| "Never".into(), when),
            revoked: c.revoked_at.map(when),
        })
        .collect();
    let page = ClientsPage {
        chrome: Chrome::new(user, "API clients", Area::Admin),
        clients: rows,
        sites: choices,
        refused,
        created,
    };
    let status = if page.refused.errors.any() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render_status(status, &page))
}

pub async fn get_clients(State(st): State<AppState>, user: CurrentUser) -> UiResult {
    clients_page(&st, &user, Refused::none(), None).await
}

pub async fn post_new_client(State(st): State<AppState>, user: CurrentUser, form: FormData) -> UiResult {
    let mut errors = Errors::new();
    let sites = ticked_sites(&form, &mut errors);
    if errors.any() {
        return clients_page(&st, &user, Refused::of("new", form, errors), None).await;
    }
    match st.store.create_api_client(&user.actor, form.get("name").to_string(), sites).await {
        Ok(issued) => clients_page(&st, &user, Refused::none(), Some((issued.client.name, issued.token))).await,
        Err(e) => clients_page(&st, &user, refuse("new", form, e)?, None).await,
    }
}

pub async fn post_revoke(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult {
    st.store.revoke_api_client(&user.actor, id).await?;
    Ok(see_other("/admin/api-clients"))
}
