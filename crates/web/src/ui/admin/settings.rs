//! Clinic settings and rule sets in the browser: the clinic-wide relapse watch, home
//! pre-dose hours and alert escalation (administrators), and per site the session-safety
//! rules, the PK threshold and the discharge settings (prescribers: the medical director).
//! Each shows its source and who last changed it, from the audit trail.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use keta_domain::access::Permission;
use keta_domain::discharge::{DischargeRules, DischargeSettings, DissociationSetting};
use keta_domain::escalation::EscalationSettings;
use keta_domain::ids::SiteId;
use keta_domain::relapse::{RelapseSettings, RelapseThreshold};
use keta_domain::units::Minutes;
use keta_store::home::HomePreDoseSettings;

use super::{Refused, Saved, changed_label, refuse};
use crate::AppState;
use crate::auth::CurrentUser;
use crate::ui::page::{Area, Chrome, Errors, FormData, UiResult, render_status, see_other};

pub(crate) struct SiteRules {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub safety_toml: String,
    pub safety_replaced: bool,
    pub safety_changed: String,
    pub pk_threshold: String,
    pub pk_changed: String,
    pub vitals_within_minutes: String,
    pub dissociation_instrument: String,
    pub dissociation_cutoff: String,
    pub discharge_changed: String,
}

#[derive(Template)]
#[template(path = "admin/settings.html")]
struct SettingsPage {
    chrome: Chrome,
    can_manage: bool,
    can_plan: bool,
    relapse_kind: &'static str,
    relapse_total: String,
    relapse_days: String,
    relapse_changed: String,
    home_alcohol: String,
    home_sedative: String,
    home_changed: String,
    escalate_after: String,
    escalation_changed: String,
    sites: Vec<SiteRules>,
    measures: Vec<String>,
    dissociation_source: String,
    refused: Refused,
    notice: Option<String>,
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

async fn settings_page(st: &AppState, user: &CurrentUser, refused: Refused, notice: Option<String>) -> UiResult {
    let relapse = st.store.relapse_settings().await?;
    let home = st.store.home_pre_dose_settings().await?;
    let escalation = st.store.escalation_settings().await?;
    let sites = crate::ui::user_sites(st, user).await?;
    let mut objects: Vec<(String, String, Option<String>)> = vec![
        ("clinic_setting".into(), keta_store::checkins::RELAPSE_SETTINGS.into(), None),
        ("clinic_setting".into(), keta_store::checkins::HOME_PRE_DOSE_SETTINGS.into(), None),
        ("clinic_setting".into(), keta_store::alerts::ESCALATION_SETTINGS.into(), None),
    ];
    for s in &sites {
        let id = s.id.to_string();
        objects.push(("site_rules".into(), id.clone(), Some(keta_store::rules::SAFETY_KEY.into())));
        objects.push(("site_settings".into(), id.clone(), Some(keta_store::rules::PK_THRESHOLD_KEY.into())));
        objects.push(("site_settings".into(), id, Some(keta_store::sessions::DISCHARGE_SETTINGS_KEY.into())));
    }
    let changes = st.store.last_changes(&user.actor, objects).await?;
    let mut rows = Vec::new();
    for (i, s) in sites.iter().enumerate() {
        let (_, replaced) = st.store.site_safety_rules(&user.actor, s.id).await?;
        let text = s
            .settings
            .get(keta_store::rules::SAFETY_KEY)
            .and_then(|v| v.as_str())
            .unwrap_or(keta_domain::alerts::BUILTIN_TOML)
            .to_string();
        let discharge = st.store.site_discharge_settings(&user.actor, s.id).await?;
        let c = |k: usize| changed_label(changes[3 + i * 3 + k].as_ref());
        rows.push(SiteRules {
            id: s.id.0,
            code: s.code.clone(),
            name: s.name.clone(),
            safety_toml: text,
            safety_replaced: replaced,
            safety_changed: c(0),
            pk_threshold: opt(s.settings.get(keta_store::rules::PK_THRESHOLD_KEY).and_then(|v| v.as_f64())),
            pk_changed: c(1),
            vitals_within_minutes: opt(discharge.vitals_within_minutes.map(|m| m.0)),
            dissociation_instrument: discharge.dissociation.as_ref().map(|d| d.instrument.clone()).unwrap_or_default(),
            dissociation_cutoff: opt(discharge.dissociation.as_ref().map(|d| d.resolved_at_or_below)),
            discharge_changed: c(2),
        });
    }
    let rules = DischargeRules::builtin();
    let (relapse_kind, relapse_total) = match relapse.threshold {
        RelapseThreshold::LossOfResponse => ("loss_of_response", String::new()),
        RelapseThreshold::TotalAtLeast { total } => ("total_at_least", total.to_string()),
    };
    let page = SettingsPage {
        chrome: Chrome::new(user, "Clinic settings", Area::Admin),
        can_manage: user.actor.can(Permission::ManageUsers),
        can_plan: user.actor.can(Permission::PlanTreatment),
        relapse_kind,
        relapse_total,
        relapse_days: opt(relapse.bring_forward_within_days),
        relapse_changed: changed_label(changes[0].as_ref()),
        home_alcohol: opt(home.map(|h| h.alcohol_free_hours)),
        home_sedative: opt(home.map(|h| h.sedative_free_hours)),
        home_changed: changed_label(changes[1].as_ref()),
        escalate_after: opt(escalation.escalate_after_minutes),
        escalation_changed: changed_label(changes[2].as_ref()),
        sites: rows,
        measures: rules.dissociation.measures.clone(),
        dissociation_source: rules.dissociation.source.clone(),
        refused,
        notice,
    };
    let status = if page.refused.errors.any() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render_status(status, &page))
}

pub async fn get_settings(State(st): State<AppState>, user: CurrentUser, Query(q): Query<Saved>) -> UiResult {
    settings_page(&st, &user, Refused::none(), q.notice()).await
}

/// A whole number that must fit `u32`; blank is `None`.
fn count(form: &FormData, name: &str, errors: &mut Errors) -> Option<u32> {
    let v = form.integer(name, errors)?;
    match u32::try_from(v) {
        Ok(x) => Some(x),
        Err(_) => {
            errors.add(name, "give a whole number of 0 or more");
            None
        }
    }
}

async fn saved_or_refused(
    st: &AppState,
    user: &CurrentUser,
    key: &str,
    form: FormData,
    r: keta_store::Result<()>,
) -> UiResult {
    match r {
        Ok(()) => Ok(see_other("/admin/settings?saved=1")),
        Err(e) => settings_page(st, user, refuse(key, form, e)?, None).await,
    }
}

pub async fn post_relapse(State(st): State<AppState>, user: CurrentUser, form: FormData) -> UiResult {
    let mut errors = Errors::new();
    let days = count(&form, "bring_forward_within_days", &mut errors);
    let threshold = match form.get("threshold") {
        "loss_of_response" => Some(RelapseThreshold::LossOfResponse),
        "total_at_least" => match form.integer("total", &mut errors) {
            Some(t) => i32::try_from(t).ok().map(|total| RelapseThreshold::TotalAtLeast { total }),
            None => {
                if !errors.has("total") {
                    errors.add("total", "give the PHQ-9 total at or above which a score counts as a relapse");
                }
                None
            }
        },
        _ => {
            errors.add("threshold", "choose when a score counts as a relapse");
            None
        }
    };
    let Some(threshold) = threshold.filter(|_| !errors.any()) else {
        if !errors.any() {
            errors.add("total", "give a PHQ-9 total within the instrument's range");
        }
        return settings_page(&st, &user, Refused::of("relapse", form, errors), None).await;
    };
    let s = RelapseSettings { threshold, bring_forward_within_days: days };
    let r = st.store.set_relapse_settings(&user.actor, s).await.map_err(|e| rename(e, "threshold.total", "total"));
    saved_or_refused(&st, &user, "relapse", form, r).await
}

pub async fn post_home(State(st): State<AppState>, user: CurrentUser, form: FormData) -> UiResult {
    let mut errors = Errors::new();
    let alcohol = count(&form, "alcohol_free_hours", &mut errors);
    let sedative = count(&form, "sedative_free_hours", &mut errors);
    for (v, name) in [(alcohol, "alcohol_free_hours"), (sedative, "sedative_free_hours")] {
        if v.is_none() && !errors.has(name) {
            errors.add(name, "give the hours (1 to 168); the reference gives no figure, so the clinic sets it");
        }
    }
    let (Some(alcohol_free_hours), Some(sedative_free_hours)) = (alcohol, sedative) else {
        return settings_page(&st, &user, Refused::of("home", form, errors), None).await;
    };
    let r = st
        .store
        .set_home_pre_dose_settings(&user.actor, HomePreDoseSettings { alcohol_free_hours, sedative_free_hours })
        .await;
    saved_or_refused(&st, &user, "home", form, r).await
}

pub async fn post_escalation(State(st): State<AppState>, user: CurrentUser, form: FormData) -> UiResult {
    let mut errors = Errors::new();
    let minutes = count(&form, "escalate_after_minutes", &mut errors);
    if errors.any() {
        return settings_page(&st, &user, Refused::of("escalation", form, errors), None).await;
    }
    let r = st.store.set_escalation_settings(&user.actor, EscalationSettings { escalate_after_minutes: minutes }).await;
    saved_or_refused(&st, &user, "escalation", form, r).await
}

pub async fn post_safety_rules(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult {
    let text = if form.checked("restore_builtin") { None } else { Some(form.get("rules_toml").replace("\r\n", "\n")) };
    let key = format!("safety-{id}");
    let r = st.store.set_site_safety_rules(&user.actor, SiteId(id), text).await;
    saved_or_refused(&st, &user, &key, form, r).await
}

pub async fn post_pk_threshold(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult {
    let key = format!("pk-{id}");
    let mut errors = Errors::new();
    let v = form.number("ng_ml", &mut errors);
    if errors.any() {
        return settings_page(&st, &user, Refused::of(key, form, errors), None).await;
    }
    let r = st.store.set_site_pk_threshold(&user.actor, SiteId(id), v).await;
    saved_or_refused(&st, &user, &key, form, r).await
}

pub async fn post_discharge(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult {
    let key = format!("discharge-{id}");
    let mut errors = Errors::new();
    let within = form.integer("vitals_within_minutes", &mut errors);
    let cutoff = form.integer("resolved_at_or_below", &mut errors);
    let instrument = form.opt("instrument");
    let dissociation = match (instrument, cutoff) {
        (Some(instrument), Some(c)) => match i32::try_from(c) {
            Ok(resolved_at_or_below) => Some(DissociationSetting { instrument, resolved_at_or_below }),
            Err(_) => {
                errors.add("resolved_at_or_below", "give a total within the measure's range");
                None
            }
        },
        (None, None) => None,
        (Some(_), None) => {
            errors.add("resolved_at_or_below", "give the total at or below which dissociation has resolved");
            None
        }
        (None, Some(_)) => {
            errors.add("instrument", "choose the dissociation measure this cut-off is on");
            None
        }
    };
    if errors.any() {
        return settings_page(&st, &user, Refused::of(key, form, errors), None).await;
    }
    let s = DischargeSettings { vitals_within_minutes: within.map(Minutes), dissociation };
    let r = st.store.set_site_discharge_settings(&user.actor, SiteId(id), s).await.map(|_| ()).map_err(|e| {
        rename(
            rename(e, "dissociation.instrument", "instrument"),
            "dissociation.resolved_at_or_below",
            "resolved_at_or_below",
        )
    });
    saved_or_refused(&st, &user, &key, form, r).await
}

fn rename(e: keta_store::StoreError, from: &str, to: &str) -> keta_store::StoreError {
    use keta_domain::DomainError;
    match e {
        keta_store::StoreError::Domain(DomainError::Invalid(mut list)) => {
            for f in &mut list {
                if f.field == from {
                    f.field = to.to_string();
                }
            }
            keta_store::StoreError::Domain(DomainError::Invalid(list))
        }
        other => other,
    }
}
