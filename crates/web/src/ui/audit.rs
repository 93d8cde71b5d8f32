//! The auditor's screens: the audit report (filter by user, patient, action and date,
//! sort by any column, export as CSV) and a patient's "who viewed this record" log.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use keta_domain::ids::PatientId;
use keta_store::audit::{AuditQuery, AuditRecord, SORTABLE};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::page::{Area, Chrome, UiResult, render};
use crate::AppState;
use crate::auth::CurrentUser;

pub(crate) struct Row {
    pub seq: i64,
    pub when: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub patient: String,
    pub fields: String,
    pub high_priority: bool,
}

impl From<AuditRecord> for Row {
    fn from(r: AuditRecord) -> Self {
        let fields: Vec<String> = serde_json::from_str(&r.fields).unwrap_or_default();
        Self {
            seq: r.seq,
            when: r.occurred_at.format(&Rfc3339).unwrap_or_default(),
            high_priority: matches!(r.action.as_str(), "break_glass" | "login_fail" | "privilege_change"),
            actor: r.actor,
            action: r.action,
            object: match r.object_id {
                Some(id) => format!("{} {id}", r.object_type),
                None => r.object_type,
            },
            patient: r.patient_id.map(|p| p.to_string()).unwrap_or_default(),
            fields: fields.join(", "),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub patient_id: String,
    #[serde(default)]
    pub action: String,
    /// Date (YYYY-MM-DD), inclusive, UTC.
    #[serde(default)]
    pub from: String,
    /// Date (YYYY-MM-DD), inclusive, UTC.
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub dir: String,
}

#[derive(Template)]
#[template(path = "audit/report.html")]
struct ReportPage {
    chrome: Chrome,
    f: Filters,
    rows: Vec<Row>,
    errors: Vec<String>,
    sortable: &'static [&'static str],
    actions: Vec<&'static str>,
    csv_href: String,
}

fn day(s: &str, end: bool) -> Result<Option<OffsetDateTime>, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s.trim(), fmt).map_err(|_| format!("'{s}' is not a date like 2026-11-27"))?;
    let d = if end { d.next_day().unwrap_or(d) } else { d };
    Ok(Some(d.midnight().assume_utc()))
}

pub async fn get_report(State(st): State<AppState>, user: CurrentUser, Query(f): Query<Filters>) -> UiResult<Response> {
    let mut errors = Vec::new();
    let from = day(&f.from, false).unwrap_or_else(|e| {
        errors.push(format!("From: {e}"));
        None
    });
    let to = day(&f.to, true).unwrap_or_else(|e| {
        errors.push(format!("To: {e}"));
        None
    });
    let patient_id = match f.patient_id.trim() {
        "" => None,
        p => match p.parse::<i64>() {
            Ok(v) => Some(PatientId(v)),
            Err(_) => {
                errors.push("Patient: give the patient's number".into());
                None
            }
        },
    };
    let sort = if f.sort.is_empty() { None } else { Some(f.sort.clone()) };
    let query = AuditQuery {
        actor: Some(f.user.trim().to_string()).filter(|s| !s.is_empty()),
        patient_id,
        action: Some(f.action.trim().to_string()).filter(|s| !s.is_empty()),
        from,
        to,
        sort,
        descending: f.dir != "asc",
        limit: 500,
    };
    let rows = if errors.is_empty() {
        match st.store.audit_report(&user.actor, query).await {
            Ok(r) => r.into_iter().map(Row::from).collect(),
            Err(keta_store::StoreError::Domain(e)) => {
                errors.push(e.to_string());
                vec![]
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        vec![]
    };
    let csv_href = format!(
        "/api/v1/audit?format=csv&limit=10000{}{}{}",
        if f.user.is_empty() { String::new() } else { format!("&user={}", crate::auth::urlencode(&f.user)) },
        if f.action.is_empty() { String::new() } else { format!("&action={}", crate::auth::urlencode(&f.action)) },
        patient_id.map(|p| format!("&patient_id={}", p.0)).unwrap_or_default(),
    );
    Ok(render(&ReportPage {
        chrome: Chrome::new(&user, "Audit report", Area::None),
        f,
        rows,
        errors,
        sortable: SORTABLE,
        actions: keta_store::audit::Action::ALL.iter().map(|a| a.as_str()).collect(),
        csv_href,
    }))
}

#[derive(Template)]
#[template(path = "audit/access_log.html")]
struct AccessLogPage {
    chrome: Chrome,
    patient_id: i64,
    patient_name: String,
    rows: Vec<Row>,
}

/// Who viewed or changed this patient's record, newest first.
pub async fn get_access_log(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult<Response> {
    let q = AuditQuery { patient_id: Some(PatientId(id)), descending: true, limit: 1000, ..Default::default() };
    let rows = st.store.audit_report(&user.actor, q).await?.into_iter().map(Row::from).collect();
    let patient_name = match st.store.get_patient(&user.actor, PatientId(id)).await {
        Ok(p) => format!("{} ({})", p.display_name(), p.mrn),
        Err(_) => format!("Patient {id}"),
    };
    Ok(render(&AccessLogPage {
        chrome: Chrome::new(&user, "Who viewed this record", Area::None),
        patient_id: id,
        patient_name,
        rows,
    }))
}
