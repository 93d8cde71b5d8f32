//! Staff accounts: create, change role and sites, disable, reset password or authenticator
//! (after the administrator re-enters their own password), and each account's last sign-in.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use keta_domain::access::Role;
use keta_domain::ids::SiteId;
use keta_store::accounts::{NewUser, User};
use keta_store::admin::UserChange;

use super::{Refused, refuse};
use crate::AppState;
use crate::auth::CurrentUser;
use crate::ui::clock::SiteClock;
use crate::ui::page::{Area, Chrome, Errors, FormData, UiError, UiResult, render_status, see_other};

pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    /// Ticked (the account's sites on its own page).
    pub checked: bool,
}

pub(crate) struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: &'static str,
    pub sites: String,
    pub status: &'static str,
    pub last_sign_in: String,
}

#[derive(Template)]
#[template(path = "admin/staff.html")]
struct StaffPage {
    chrome: Chrome,
    users: Vec<UserRow>,
    roles: Vec<Choice>,
    sites: Vec<Choice>,
    refused: Refused,
    /// After creating an account: its user name and TOTP key, shown once.
    created: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    chrome: Chrome,
    user: UserRow,
    user_role: &'static str,
    can_break_glass: bool,
    disabled: bool,
    own_account: bool,
    roles: Vec<Choice>,
    sites: Vec<Choice>,
    refused: Refused,
    /// Re-authenticated recently enough to reset a password or authenticator.
    fresh: bool,
    notice: Option<String>,
    /// A new TOTP key, shown once after a reset.
    new_totp: Option<String>,
}

fn roles() -> Vec<Choice> {
    Role::ALL.iter().map(|r| Choice { value: r.as_str().into(), label: r.label().into(), checked: false }).collect()
}

pub(crate) async fn site_choices(
    st: &AppState,
    user: &CurrentUser,
) -> UiResult<(Vec<Choice>, Vec<keta_domain::site::Site>)> {
    let all = st.store.list_sites(&user.actor).await?;
    Ok((
        all.iter()
            .map(|s| Choice { value: s.id.0.to_string(), label: format!("{} ({})", s.name, s.code), checked: false })
            .collect(),
        all,
    ))
}

fn row(u: &User, sites: &[keta_domain::site::Site], last: Option<time::OffsetDateTime>) -> UserRow {
    UserRow {
        id: u.id,
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        role: u.role.label(),
        sites: if u.site_ids.is_empty() {
            "None".into()
        } else {
            u.site_ids
                .iter()
                .map(|id| sites.iter().find(|s| s.id == *id).map_or_else(|| id.to_string(), |s| s.code.clone()))
                .collect::<Vec<_>>()
                .join(", ")
        },
        status: if u.disabled { "Disabled" } else { "Active" },
        last_sign_in: last.map_or_else(|| "Never".into(), |t| format!("{} UTC", SiteClock::utc().datetime(t))),
    }
}

async fn staff_page(
    st: &AppState,
    user: &CurrentUser,
    refused: Refused,
    created: Option<(String, String)>,
) -> UiResult {
    let users = st.store.list_users(&user.actor).await?;
    let last = st.store.last_sign_ins(&user.actor).await?;
    let (site_choices, sites) = site_choices(st, user).await?;
    let page = StaffPage {
        chrome: Chrome::new(user, "Staff accounts", Area::Admin),
        users: users.iter().map(|u| row(u, &sites, last.get(&u.id).copied())).collect(),
        roles: roles(),
        sites: site_choices,
        created,
        refused,
    };
    let status = if page.refused.errors.any() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render_status(status, &page))
}

pub async fn get_staff(State(st): State<AppState>, user: CurrentUser) -> UiResult {
    staff_page(&st, &user, Refused::none(), None).await
}

/// The sites ticked on a form; a value that is not a site id is an error on `site_ids`.
pub(crate) fn ticked_sites(form: &FormData, errors: &mut Errors) -> Vec<SiteId> {
    form.all("site_ids")
        .iter()
        .filter_map(|v| match v.parse::<i64>() {
            Ok(id) => Some(SiteId(id)),
            Err(_) => {
                errors.add("site_ids", format!("'{v}' is not a site"));
                None
            }
        })
        .collect()
}

fn role_of(form: &FormData, errors: &mut Errors) -> Option<Role> {
    let r = Role::parse(form.get("role"));
    if r.is_none() {
        errors.add("role", "choose the person's role");
    }
    r
}

pub async fn post_new_user(State(st): State<AppState>, user: CurrentUser, form: FormData) -> UiResult {
    let mut errors = Errors::new();
    let role = role_of(&form, &mut errors);
    let site_ids = ticked_sites(&form, &mut errors);
    let Some(role) = role.filter(|_| !errors.any()) else {
        return staff_page(&st, &user, Refused::of("new", form, errors), None).await;
    };
    let new = NewUser {
        username: form.get("username").to_string(),
        display_name: form.get("display_name").to_string(),
        role,
        password: form.get("password").to_string(),
        site_ids,
        can_break_glass: form.checked("can_break_glass"),
        totp_secret: None,
    };
    match st.store.create_user(&user.actor, new).await {
        Ok((u, secret)) => staff_page(&st, &user, Refused::none(), Some((u.username, secret))).await,
        Err(e) => staff_page(&st, &user, refuse("new", form, e)?, None).await,
    }
}

async fn find_user(st: &AppState, user: &CurrentUser, id: i64) -> UiResult<User> {
    st.store
        .list_users(&user.actor)
        .await?
        .into_iter()
        .find(|u| u.id == id)
        .ok_or_else(|| UiError::NotFound(format!("Account {id}")))
}

async fn user_page(
    st: &AppState,
    user: &CurrentUser,
    id: i64,
    refused: Refused,
    notice: Option<String>,
    new_totp: Option<String>,
) -> UiResult {
    let u = find_user(st, user, id).await?;
    let last = st.store.last_sign_ins(&user.actor).await?;
    let (mut site_choices, sites) = site_choices(st, user).await?;
    for c in &mut site_choices {
        c.checked = u.site_ids.iter().any(|s| s.0.to_string() == c.value);
    }
    let now = st.store.now();
    let page = UserPage {
        chrome: Chrome::new(user, format!("Account {}", u.username), Area::Admin),
        user: row(&u, &sites, last.get(&u.id).copied()),
        user_role: u.role.as_str(),
        can_break_glass: u.can_break_glass,
        disabled: u.disabled,
        own_account: u.id == user.user_id,
        roles: roles(),
        sites: site_choices,
        fresh: user.reauthenticated_at.is_some_and(|t| now - t < st.store.reauthentication_window()),
        refused,
        notice,
        new_totp,
    };
    let status = if page.refused.errors.any() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render_status(status, &page))
}

pub async fn get_user(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<super::Saved>,
) -> UiResult {
    user_page(&st, &user, id, Refused::none(), q.notice(), None).await
}

pub async fn post_user(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>, form: FormData) -> UiResult {
    let mut errors = Errors::new();
    let role = role_of(&form, &mut errors);
    let site_ids = ticked_sites(&form, &mut errors);
    let Some(role) = role.filter(|_| !errors.any()) else {
        return user_page(&st, &user, id, Refused::of("edit", form, errors), None, None).await;
    };
    let change = UserChange {
        display_name: form.get("display_name").to_string(),
        role,
        site_ids,
        can_break_glass: form.checked("can_break_glass"),
    };
    match st.store.update_user(&user.actor, id, change).await {
        Ok(_) => Ok(see_other(format!("/admin/staff/{id}?saved=1"))),
        Err(e) => user_page(&st, &user, id, refuse("edit", form, e)?, None, None).await,
    }
}

pub async fn post_disabled(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult {
    let disable = form.get("disabled") == "true";
    if disable && id == user.user_id {
        let mut errors = Errors::new();
        errors.add_general("You cannot disable your own account; ask another administrator.");
        return user_page(&st, &user, id, Refused::of("disable", form, errors), None, None).await;
    }
    match st.store.set_user_disabled(&user.actor, id, disable).await {
        Ok(u) => {
            let msg = if u.disabled {
                "The account is disabled and its sessions have ended."
            } else {
                "The account can sign in again."
            };
            user_page(&st, &user, id, Refused::none(), Some(msg.into()), None).await
        }
        Err(e) => user_page(&st, &user, id, refuse("disable", form, e)?, None, None).await,
    }
}

pub async fn post_password(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult {
    let new_password = form.get("new_password").to_string();
    if new_password != form.get("confirm_password") {
        let mut errors = Errors::new();
        errors.add("confirm_password", "type the same new password twice");
        return user_page(&st, &user, id, Refused::of("password", FormData::empty(), errors), None, None).await;
    }
    match st.store.reset_user_password(&user.actor, user.reauthenticated_at, id, new_password).await {
        Ok(()) => {
            let msg = "The password was reset and the account's sessions ended. Give the new password to the person privately.";
            user_page(&st, &user, id, Refused::none(), Some(msg.into()), None).await
        }
        // Never echo a password back into the page.
        Err(e) => user_page(&st, &user, id, refuse("password", FormData::empty(), e)?, None, None).await,
    }
}

pub async fn post_totp(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>, form: FormData) -> UiResult {
    if !form.checked("confirm_reset") {
        let mut errors = Errors::new();
        errors.add("confirm_reset", "tick this once the person is here with the device that will hold the new key");
        return user_page(&st, &user, id, Refused::of("totp", form, errors), None, None).await;
    }
    match st.store.reset_user_totp(&user.actor, user.reauthenticated_at, id).await {
        Ok(secret) => {
            let msg = "The authenticator was reset and the account's sessions ended. The person adds this key to their authenticator app; it is shown only now.";
            user_page(&st, &user, id, Refused::none(), Some(msg.into()), Some(secret)).await
        }
        Err(e) => user_page(&st, &user, id, refuse("totp", form, e)?, None, None).await,
    }
}
