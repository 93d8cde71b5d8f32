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

/// One of the listener's settings: what it is, its value here, where the value comes from.
pub(crate) struct SettingRow {
    pub name: &'static str,
    pub value: String,
    pub option: &'static str,
    pub source: &'static str,
}

/// Said of every figure below: none has a clinical source.
const NOT_CLINICAL: &str = "clinic setting, not from the reference";

fn setting_rows(st: &AppState) -> (bool, Vec<SettingRow>) {
    let runtime = st.monitors.as_deref();
    let defaults = crate::monitors::MonitorSettings::default();
    let s = runtime.map_or(&defaults, |r| &r.settings);
    let retention_days = runtime.map_or(30, |r| r.raw_retention.whole_days());
    let rows = vec![
        SettingRow {
            name: "Field that names the monitor",
            value: match s.device_field {
                crate::monitors::DeviceField::Pv1Location => "PV1-3 (the bed)".into(),
                crate::monitors::DeviceField::SendingFacility => "MSH-4 (the sending facility)".into(),
            },
            option: "--mllp-device-field",
            source: "installation setting",
        },
        SettingRow {
            name: "Oldest reading attached to a chart",
            value: format!("{} min before now", s.window.max_age.whole_minutes()),
            option: "--mllp-max-age-minutes",
            source: NOT_CLINICAL,
        },
        SettingRow {
            name: "Furthest ahead a reading may be timed",
            value: format!("{} min after now", s.window.max_ahead.whole_minutes()),
            option: "--mllp-max-ahead-minutes",
            source: NOT_CLINICAL,
        },
        SettingRow {
            name: "Largest message accepted",
            value: format!("{} bytes", s.listener.max_frame_bytes),
            option: "--mllp-max-frame-bytes",
            source: NOT_CLINICAL,
        },
        SettingRow {
            name: "Raw messages kept",
            value: format!("{retention_days} days, then the raw text is cleared"),
            option: "--mllp-raw-retention-days",
            source: "security setting (troubleshooting window), not from the reference",
        },
    ];
    (runtime.is_some(), rows)
}

#[derive(Template)]
#[template(path = "admin/monitors.html")]
struct MonitorsPage {
    chrome: Chrome,
    listening: bool,
    settings: Vec<SettingRow>,
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
    let (listening, settings) = setting_rows(st);
    Ok(render_status(
        status,
        &MonitorsPage {
            chrome: Chrome::new(user, "Bedside monitors", Area::Admin),
            listening,
            settings,
            monitors,
            chairs,
            refused,
            notice,
        },
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
