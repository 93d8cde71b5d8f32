//! Patients: search by name or MRN, the list (indication, current course, latest score
//! with severity, flags), and registration of a new patient (the start of intake).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::access::Permission;
use keta_domain::course::CourseStatus;
use keta_domain::ids::SiteId;
use keta_domain::instruments::catalog;
use keta_domain::patient::{Indication, NewPatient, NewWeight, Patient, Sex, WeightType};
use keta_domain::records::{AlertLevel, PatientChart};
use keta_domain::units::Kilograms;
use keta_store::StoreError;
use keta_store::patients::PatientQuery;
use serde::Deserialize;

use super::clock::{SiteClock, iso_date, parse_iso_date};
use super::page::{Area, Chrome, Errors, FormData, UiResult, render, render_status, see_other};
use super::user_sites;
use crate::AppState;
use crate::auth::CurrentUser;

pub fn indication_label(i: Indication) -> &'static str {
    match i {
        Indication::Depression => "Depression",
        Indication::Anxiety => "Anxiety",
        Indication::Ptsd => "PTSD",
        Indication::ChronicPain => "Chronic pain",
    }
}

pub fn sex_label(s: Sex) -> &'static str {
    match s {
        Sex::Female => "Female",
        Sex::Male => "Male",
        Sex::Other => "Other",
        Sex::Unknown => "Unknown",
    }
}

/// CSS class for a severity band code (bands differ per instrument; the position in the
/// instrument's band list decides the shade).
pub fn severity_class(instrument: &str, band_code: &str) -> String {
    let Some(inst) = catalog().get(instrument) else { return "sev-0".into() };
    let n = inst.bands.len().max(1);
    let i = inst.bands.iter().position(|b| b.code == band_code).unwrap_or(0);
    // Map onto 0..=4 so every instrument uses the same five shades.
    format!("sev-{}", if n <= 1 { 0 } else { i * 4 / (n - 1) })
}

pub(crate) struct Flag {
    pub label: String,
    pub class: &'static str,
}

pub(crate) struct PatientRow {
    pub href: String,
    pub name: String,
    pub mrn: String,
    pub age: i32,
    pub indication: &'static str,
    pub course: Option<String>,
    pub latest: Option<String>,
    pub severity: Option<String>,
    pub severity_class: String,
    pub flags: Vec<Flag>,
}

/// Flags worth seeing in a list: open alerts, a positive safety item in the latest
/// questionnaire, hard stops, serious adverse events.
pub(crate) fn chart_flags(c: &PatientChart) -> Vec<Flag> {
    let mut flags = Vec::new();
    let urgent = c.open_alerts.iter().filter(|a| a.level == AlertLevel::Urgent).count();
    let warn = c.open_alerts.len() - urgent;
    if urgent > 0 {
        flags.push(Flag {
            label: format!("{urgent} urgent alert{}", if urgent > 1 { "s" } else { "" }),
            class: "flag-urgent",
        });
    }
    if warn > 0 {
        flags.push(Flag { label: format!("{warn} alert{}", if warn > 1 { "s" } else { "" }), class: "flag-warning" });
    }
    if let Some(r) = c.responses.last()
        && !r.score.safety_flags.is_empty()
    {
        flags.push(Flag { label: "Safety item positive".into(), class: "flag-urgent" });
    }
    let mut latest: Vec<&keta_domain::records::EligibilityAssessment> = Vec::new();
    for a in c.eligibility.iter().rev() {
        if !latest.iter().any(|l| l.route == a.route) {
            latest.push(a);
        }
    }
    let blocked: Vec<&str> = latest.iter().filter(|a| a.blocked).map(|a| a.route.label()).collect();
    if !blocked.is_empty() {
        flags.push(Flag { label: format!("Hard stop: {}", blocked.join(", ")), class: "flag-stop" });
    }
    if latest.iter().any(|a| a.treatment_resistant) {
        flags.push(Flag { label: "TRD".into(), class: "flag-info" });
    }
    if c.adverse_events.iter().any(|e| e.serious) {
        flags.push(Flag { label: "Serious AE".into(), class: "flag-urgent" });
    }
    flags
}

fn row(p: &Patient, chart: Option<&PatientChart>, today: time::Date) -> PatientRow {
    let mut r = PatientRow {
        href: format!("/patients/{}", p.id),
        name: format!("{}, {}", p.family_name, p.given_name),
        mrn: p.mrn.clone(),
        age: p.age_on(today),
        indication: indication_label(p.indication),
        course: None,
        latest: None,
        severity: None,
        severity_class: String::new(),
        flags: vec![],
    };
    let Some(c) = chart else { return r };
    if let Some(course) = c.courses.iter().rev().find(|c| c.status == CourseStatus::Active) {
        let done = c
            .sessions
            .iter()
            .filter(|s| s.course_id == course.id && s.state == keta_domain::session::SessionState::Discharged)
            .count();
        r.course =
            Some(format!("{} · {} · {done}/{}", course.route.label(), course.phase.as_str(), course.planned_sessions));
    }
    let primary = p.indication.primary_instrument();
    let latest = c
        .responses
        .iter()
        .rev()
        .find(|x| x.instrument == primary)
        .or_else(|| c.responses.iter().rev().find(|x| x.score.total.is_some()));
    if let Some(x) = latest {
        let name = catalog().get(&x.instrument).map_or(x.instrument.as_str(), |i| i.short_name.as_str());
        r.latest = x.score.total.map(|t| format!("{name} {t}"));
        if let Some(b) = &x.score.severity {
            r.severity = Some(b.label.clone());
            r.severity_class = severity_class(&x.instrument, &b.code);
        }
    }
    r.flags = chart_flags(c);
    r
}

#[derive(Deserialize)]
pub struct ListParams {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    offset: Option<i64>,
}

#[derive(Template)]
#[template(path = "patients/list.html")]
struct ListPage {
    chrome: Chrome,
    q: String,
    rows: Vec<PatientRow>,
    next_offset: Option<i64>,
    prev_offset: Option<i64>,
    clinical: bool,
}

// 25 rows per page: their charts are read in one snapshot and audited in one transaction.
const PAGE: i64 = 25;

pub async fn get_patients(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ListParams>,
) -> UiResult<Response> {
    let search = q.q.clone().unwrap_or_default();
    let offset = q.offset.unwrap_or(0).max(0);
    let patients = st
        .store
        .list_patients(
            &user.actor,
            PatientQuery { search: Some(search.clone()), site_id: None, limit: PAGE + 1, offset },
        )
        .await?;
    let more = patients.len() as i64 > PAGE;
    let patients: Vec<Patient> = patients.into_iter().take(PAGE as usize).collect();
    let clinical = user.actor.can(Permission::ViewClinical);
    // One snapshot and one audit transaction for the whole page.
    let charts: Vec<Option<PatientChart>> = if clinical {
        let mut all = st.store.patient_charts(&user.actor, patients.iter().map(|p| p.id).collect()).await?;
        patients.iter().map(|p| all.iter().position(|c| c.patient.id == p.id).map(|i| all.swap_remove(i))).collect()
    } else {
        patients.iter().map(|_| None).collect()
    };
    // Ages on each patient's own site's date.
    let sites = st.store.list_sites(&user.actor).await?;
    let now = st.store.now();
    let today = |p: &Patient| site_clock(&sites, p.site_id).today(now);
    let rows = patients.iter().zip(&charts).map(|(p, c)| row(p, c.as_ref(), today(p))).collect();
    Ok(render(&ListPage {
        chrome: Chrome::new(&user, "Patients", Area::Patients),
        q: search,
        rows,
        next_offset: more.then_some(offset + PAGE),
        prev_offset: (offset > 0).then(|| (offset - PAGE).max(0)),
        clinical,
    }))
}

pub(crate) struct Choice {
    pub value: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "patients/new.html")]
struct NewPatientPage {
    chrome: Chrome,
    form: FormData,
    errors: Errors,
    sites: Vec<Choice>,
    sexes: Vec<Choice>,
    indications: Vec<Choice>,
    today: String,
}

/// The wall clock of site `id` among `sites` (UTC when it is not among them).
fn site_clock(sites: &[keta_domain::site::Site], id: SiteId) -> SiteClock {
    sites.iter().find(|s| s.id == id).map_or_else(SiteClock::utc, SiteClock::for_site)
}

async fn new_page(st: &AppState, user: &CurrentUser, form: FormData, errors: Errors) -> UiResult<NewPatientPage> {
    let sites = user_sites(st, user).await?;
    // The latest date of birth the form offers: today at the user's site furthest ahead (the
    // server checks it against the chosen site's own date).
    let now = st.store.now();
    let today =
        sites.iter().map(|s| SiteClock::for_site(s).today(now)).max().unwrap_or_else(|| SiteClock::utc().today(now));
    let sites = sites.into_iter().map(|s| Choice { value: s.id.to_string(), label: s.name }).collect();
    Ok(NewPatientPage {
        chrome: Chrome::new(user, "New patient", Area::Patients),
        form,
        errors,
        sites,
        sexes: [Sex::Female, Sex::Male, Sex::Other, Sex::Unknown]
            .into_iter()
            .map(|s| Choice { value: s.as_str().into(), label: sex_label(s).into() })
            .collect(),
        indications: Indication::ALL
            .into_iter()
            .map(|i| Choice { value: i.as_str().into(), label: indication_label(i).into() })
            .collect(),
        today: iso_date(today),
    })
}

pub async fn get_new_patient(State(st): State<AppState>, user: CurrentUser) -> UiResult<Response> {
    let mut form = FormData::empty();
    form.set("indication", "depression");
    let page = new_page(&st, &user, form, Errors::new()).await?;
    Ok(render(&page))
}

pub async fn post_patient(State(st): State<AppState>, user: CurrentUser, form: FormData) -> UiResult<Response> {
    let mut errors = Errors::new();
    let site_id = form.get("site_id").parse::<i64>().ok().map(SiteId);
    if site_id.is_none() {
        errors.add("site_id", "choose the site the patient attends");
    }
    let dob = parse_iso_date(form.get("date_of_birth"));
    if dob.is_none() {
        errors.add("date_of_birth", "enter the date of birth (day, month and year)");
    }
    let sex = Sex::parse(form.get("sex"));
    if sex.is_none() {
        errors.add("sex", "choose one");
    }
    let indication = Indication::parse(form.get("indication"));
    if indication.is_none() {
        errors.add("indication", "choose what the patient is treated for");
    }
    let weight = form.number("weight_kg", &mut errors);
    let diagnoses: Vec<String> = form
        .get("diagnoses")
        .split([',', ';', ' '])
        .map(|s| s.trim().to_uppercase())
        .filter(|s| !s.is_empty())
        .collect();

    if let (Some(site_id), Some(dob), Some(sex), Some(indication)) = (site_id, dob, sex, indication) {
        let new = NewPatient {
            site_id,
            mrn: form.get("mrn").trim().to_string(),
            given_name: form.get("given_name").trim().to_string(),
            family_name: form.get("family_name").trim().to_string(),
            date_of_birth: dob,
            sex,
            phone: form.opt("phone"),
            email: form.opt("email"),
            indication,
            diagnoses,
            referring_clinician: form.opt("referring_clinician"),
        };
        // Validate first so every field error shows together with the form's own; "today" is
        // the chosen site's date.
        let today = site_clock(&user_sites(&st, &user).await?, site_id).today(st.store.now());
        if let Err(e) = new.validate(today) {
            errors.absorb(StoreError::Domain(e))?;
        }
        if let Some(w) = weight {
            let nw = NewWeight { weight_kg: Kilograms(w), measured_on: today, weight_type: WeightType::Actual };
            if let Err(e) = nw.validate(today) {
                errors.absorb(StoreError::Domain(e))?;
            }
        }
        if !errors.any() {
            match st.store.create_patient(&user.actor, new).await {
                Ok(p) => {
                    if let Some(w) = weight {
                        let nw =
                            NewWeight { weight_kg: Kilograms(w), measured_on: today, weight_type: WeightType::Actual };
                        st.store.add_weight(&user.actor, p.id, nw).await?;
                    }
                    super::live::publish(Some(p.site_id));
                    let next = if user.actor.can(Permission::PlanTreatment) {
                        format!("/patients/{}/eligibility", p.id)
                    } else {
                        format!("/patients/{}", p.id)
                    };
                    return Ok(see_other(next));
                }
                Err(StoreError::Conflict(msg)) if msg.to_lowercase().contains("mrn") => {
                    errors.add("mrn", "another patient already has this MRN; check it, or find the existing patient");
                }
                Err(e) => errors.absorb(e)?,
            }
        }
    }
    let page = new_page(&st, &user, form, errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}
