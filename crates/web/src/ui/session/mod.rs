//! The session screen, tablet-first: the lifecycle step (check-in, pre-dose checks,
//! dose start and end, discharge, stop), a running clock from dose start, timers for the
//! checks the safety rules require and for the minimum monitoring time, one-tap vitals
//! with the last values pre-filled, alerts that cannot be missed (acknowledged with who
//! and when), MOAA/S and CADSS-6 entry, side effects, interventions, adverse events, the
//! discharge checklist and the session note.
//!
//! Discharge is refused by the store before the route's minimum monitoring time and
//! while alerts are open; the screen shows why. The pre-dose and discharge checklists
//! (`data/session-checklists.toml`) are confirmed here and recorded in the session note
//! with who confirmed them and when.
//!
//! `screen` builds the page (with `pk` for its concentration panel), `views` holds its view
//! models and labels, `lifecycle` the step, decision, alert and note handlers, `records` the
//! vitals, scores, side effects, interventions, adverse events and the ledger dose.

use std::sync::OnceLock;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::alerts::{DosePhase, SafetyRules};
use keta_domain::course::Route;
use keta_domain::ids::{AlertId, SessionId};
use keta_domain::instruments::catalog;
use keta_domain::ledger::{EntryKind, Lot, LotId, NewAdministration, Presentation, Substance};
use keta_domain::records::{AlertLevel, CompletedBy, NewQuestionnaireResponse, VitalsRecord, VitalsSource};
use keta_domain::session::{
    AeSeverity, DecisionKind, NewAdverseEvent, NewDecision, ObservationBody, SessionAction, SessionState,
};
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Milligrams, Millilitres, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::StoreError;
use keta_store::alerts::AlertQuery;
use serde::Deserialize;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::ui::chart::{AlertView, alert_view};
use crate::ui::clock::{SiteClock, minutes_label, parse_hm};
use crate::ui::page::{Area, Chrome, Errors, FormData, UiResult, render_status, see_other};
use crate::ui::pk_panel::{self, PkPanel};
use crate::ui::today::{state_class, state_label, timing};

mod lifecycle;
mod pk;
mod records;
mod screen;
#[cfg(test)]
mod tests;
mod views;

pub use lifecycle::*;
use pk::pk_view;
pub use records::*;
pub use screen::get_session;
use screen::session_page;
pub(crate) use views::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    pub code: String,
    pub label: String,
    pub routes: Vec<Route>,
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecklistFile {
    pre_dose: Vec<ChecklistItem>,
    discharge: Vec<ChecklistItem>,
}

const CHECKLISTS_TOML: &str = include_str!("../../../../../data/session-checklists.toml");

fn checklists() -> &'static ChecklistFile {
    static C: OnceLock<ChecklistFile> = OnceLock::new();
    C.get_or_init(|| {
        toml::from_str(CHECKLISTS_TOML)
            .unwrap_or_else(|e| panic!("embedded data/session-checklists.toml is invalid: {e}"))
    })
}

pub fn pre_dose_checklist(route: Route) -> Vec<&'static ChecklistItem> {
    checklists().pre_dose.iter().filter(|i| i.routes.contains(&route)).collect()
}

pub fn discharge_checklist(route: Route) -> Vec<&'static ChecklistItem> {
    checklists().discharge.iter().filter(|i| i.routes.contains(&route)).collect()
}

async fn rejected(
    st: &AppState,
    user: &CurrentUser,
    id: i64,
    form: FormData,
    errors: Errors,
    failed: &'static str,
) -> UiResult<Response> {
    let page = session_page(st, user, SessionId(id), form, errors, failed, None).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

async fn done(st: &AppState, user: &CurrentUser, id: i64, anchor: &str) -> UiResult<Response> {
    if let Ok(s) = st.store.get_session(&user.actor, SessionId(id)).await {
        crate::ui::live::publish(Some(s.site_id));
    }
    Ok(see_other(format!("/sessions/{id}{anchor}")))
}

/// Appends a dated line to the session note (checklists confirmed, and by whom).
async fn append_note(st: &AppState, user: &CurrentUser, id: SessionId, line: String) -> UiResult<()> {
    let s = st.store.get_session(&user.actor, id).await?;
    let sites = st.store.list_sites(&user.actor).await?;
    let clock = sites.iter().find(|x| x.id == s.site_id).map_or_else(SiteClock::utc, SiteClock::for_site);
    let stamp = format!("[{} {}] {line}", clock.hm(st.store.now()), user.display_name);
    let note = match s.note.as_deref().map(str::trim_end) {
        Some(n) if !n.is_empty() => format!("{n}\n{stamp}"),
        _ => stamp,
    };
    st.store.set_session_note(&user.actor, id, note).await?;
    Ok(())
}
