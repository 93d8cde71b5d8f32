//! The at-home programme's phone pages, reached through `/c/{token}` like every
//! check-in: the pre-dose screen, the wait for the sitter, the dose log, and the sitter's own
//! confirmation page.
//!
//! A pre-dose link stays open after its screen until the dose is logged (or the screen refuses
//! the dose, or the window closes), so the patient can come back to the same page to see
//! whether the sitter has confirmed.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::patient_links::LinkPurpose;
use keta_store::StoreError;
use keta_store::checkins::OpenedLink;
use keta_store::home::{HomeDoseStatus, NewDoseLog, PlannedHomeDose, PreDoseSubmission};

use super::checkin::{Crisis, css_href};
use super::page::{Errors, FormData, UiResult, render_status};
use crate::AppState;

#[derive(Template)]
#[template(path = "patient/pre_dose.html")]
struct PreDosePage {
    css: &'static str,
    token: String,
    site_name: String,
    /// The screen's questions with the clinic's numbers, `None` while settings are missing.
    questions: Option<Vec<(&'static str, String)>>,
    status: HomeDoseStatus,
    form: FormData,
    errors: Errors,
    crisis: Crisis,
    open_until: String,
    /// The dose planned for this session, in words, when the clinic planned one.
    planned: Option<String>,
    /// The clinic's number for patients, when the site gave one.
    clinic_phone: Option<String>,
    /// Just after logging a dose other than the plan: what it was, and whether the clinic was told.
    dose_note: Option<DoseNote>,
}

pub(crate) struct DoseNote {
    pub more: bool,
    pub taken: String,
    pub planned: String,
    pub clinic_told: bool,
}

fn dose_note(l: keta_store::home::DoseLogged) -> Option<DoseNote> {
    use keta_domain::home_dosing::PlannedDoseCheck as C;
    match l.check {
        C::MoreThanPlanned { taken, planned } => Some(DoseNote {
            more: true,
            taken: taken.to_string(),
            planned: planned.to_string(),
            clinic_told: l.clinic_told,
        }),
        C::LessThanPlanned { taken, planned } => Some(DoseNote {
            more: false,
            taken: taken.to_string(),
            planned: planned.to_string(),
            clinic_told: l.clinic_told,
        }),
        C::NoPlan | C::AsPlanned => None,
    }
}

/// "Your planned dose today is 200 mg: 2 of your 100 mg tablets or troches."
fn planned_sentence(p: &PlannedHomeDose) -> String {
    match (p.units, p.unit_strength) {
        (Some(n), Some(s)) => format!("Your planned dose today is {}: {n} of your {s} tablets or troches.", p.planned),
        _ => format!("Your planned dose today is {}.", p.planned),
    }
}

#[derive(Template)]
#[template(path = "patient/sitter.html")]
struct SitterPage {
    css: &'static str,
    token: String,
    site_name: String,
    done: Option<HomeDoseStatus>,
    errors: Errors,
    crisis: Crisis,
}

/// The refusal page for a pre-dose or sitter link that cannot be answered now.
fn not_open(o: &OpenedLink) -> Option<Response> {
    super::checkin::refusal_page(o, false)
}

async fn pre_dose_page(
    st: &AppState,
    o: &OpenedLink,
    token: &str,
    form: FormData,
    errors: Errors,
) -> UiResult<PreDosePage> {
    let status = st.store.home_dose_status(token).await?;
    // The questions are shown only before the screen, the planned dose only once it is cleared.
    let questions = match status {
        HomeDoseStatus::NotAnswered => st.store.pre_dose_rules().await?.questions().ok(),
        _ => None,
    };
    let planned = match status {
        HomeDoseStatus::Cleared => st.store.planned_home_dose(token).await?.as_ref().map(planned_sentence),
        _ => None,
    };
    Ok(PreDosePage {
        css: css_href(),
        token: token.to_string(),
        site_name: o.site.site_name.clone(),
        questions,
        status,
        form,
        errors,
        crisis: Crisis::of(&o.site),
        open_until: super::checkin::when(&o.site, o.link.expires_at),
        planned,
        clinic_phone: o.site.clinic_phone.clone(),
        dose_note: None,
    })
}

/// `GET /c/{token}` for pre-dose and sitter links.
pub async fn get_page(st: &AppState, o: OpenedLink, token: &str) -> UiResult<Response> {
    if let Some(page) = not_open(&o) {
        return Ok(page);
    }
    match o.link.purpose {
        LinkPurpose::Sitter => Ok(render_status(
            StatusCode::OK,
            &SitterPage {
                css: css_href(),
                token: token.to_string(),
                site_name: o.site.site_name.clone(),
                done: None,
                errors: Errors::new(),
                crisis: Crisis::of(&o.site),
            },
        )),
        _ => {
            let page = pre_dose_page(st, &o, token, FormData::empty(), Errors::new()).await?;
            Ok(render_status(StatusCode::OK, &page))
        }
    }
}

fn yes_no(form: &FormData, name: &str, errors: &mut Errors) -> bool {
    match form.get(name) {
        "yes" => true,
        "no" => false,
        _ => {
            errors.add(name, "Choose yes or no.");
            false
        }
    }
}

/// `POST /c/{token}` for pre-dose and sitter links.
pub async fn post_page(st: &AppState, o: OpenedLink, token: &str, form: FormData) -> UiResult<Response> {
    if let Some(page) = not_open(&o) {
        return Ok(page);
    }
    if o.link.purpose == LinkPurpose::Sitter {
        return post_sitter(st, &o, token, &form).await;
    }
    let mut errors = Errors::new();
    let recorded = if form.get("action") == "log" {
        post_dose_log(st, &o, token, &form, &mut errors).await?
    } else {
        post_pre_dose(st, &o, token, &form, &mut errors).await?
    };
    if let Some(page) = recorded {
        return Ok(page);
    }
    let page = pre_dose_page(st, &o, token, form, errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// The sitter confirms they are with the patient.
async fn post_sitter(st: &AppState, o: &OpenedLink, token: &str, form: &FormData) -> UiResult<Response> {
    let mut errors = Errors::new();
    if !form.checked("present") {
        errors.add("present", "Tick the box to confirm you are with them now.");
    }
    let done = if errors.any() {
        None
    } else {
        match st.store.confirm_sitter(token).await {
            Ok(s) => {
                super::live::publish(Some(o.link.site_id));
                Some(s)
            }
            Err(e) => {
                errors.absorb(e)?;
                None
            }
        }
    };
    let status = if errors.any() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render_status(
        status,
        &SitterPage {
            css: css_href(),
            token: token.to_string(),
            site_name: o.site.site_name.clone(),
            done,
            errors,
            crisis: Crisis::of(&o.site),
        },
    ))
}

/// Logs the dose taken at home; `Some` of the page when it was recorded.
async fn post_dose_log(
    st: &AppState,
    o: &OpenedLink,
    token: &str,
    form: &FormData,
    errors: &mut Errors,
) -> UiResult<Option<Response>> {
    let units = form.integer("units", errors);
    let left = form.integer("units_left", errors);
    if units.is_none() && !errors.has("units") {
        errors.add("units", "Enter how many you took.");
    }
    if left.is_none() && !errors.has("units_left") {
        errors.add("units_left", "Enter how many are left.");
    }
    if let (Some(units), Some(left), false) = (units, left, errors.any()) {
        let d = NewDoseLog {
            units: u32::try_from(units).unwrap_or(0),
            units_left: u32::try_from(left).unwrap_or(u32::MAX),
        };
        match st.store.log_home_dose(token, d).await {
            Ok(logged) => {
                super::live::publish(Some(o.link.site_id));
                let mut page = pre_dose_page(st, o, token, FormData::empty(), Errors::new()).await?;
                page.dose_note = dose_note(logged);
                return Ok(Some(render_status(StatusCode::OK, &page)));
            }
            Err(e) => errors.absorb(e)?,
        }
    }
    Ok(None)
}

/// Submits the pre-dose screen (and sends the sitter's link it issues); `Some` of the page
/// when it was recorded.
async fn post_pre_dose(
    st: &AppState,
    o: &OpenedLink,
    token: &str,
    form: &FormData,
    errors: &mut Errors,
) -> UiResult<Option<Response>> {
    let systolic = form.number("systolic", errors);
    let diastolic = form.number("diastolic", errors);
    for (f, label) in [("systolic", "Enter the top number."), ("diastolic", "Enter the bottom number.")] {
        if form.get(f).trim().is_empty() && !errors.has(f) {
            errors.add(f, label);
        }
    }
    let alcohol = yes_no(form, "alcohol", errors);
    let sedatives = yes_no(form, "sedatives", errors);
    let food = yes_no(form, "food", errors);
    let liquids = yes_no(form, "liquids", errors);
    let driving = yes_no(form, "driving", errors);
    if let (Some(sys), Some(dia), false) = (systolic, diastolic, errors.any()) {
        let sub = PreDoseSubmission {
            systolic_mmhg: sys,
            diastolic_mmhg: dia,
            alcohol_within_interval: alcohol,
            sedatives_within_interval: sedatives,
            ate_within_interval: food,
            drank_within_interval: liquids,
            sitter_name: form.get("sitter_name").to_string(),
            sitter_contact: form.get("sitter_contact").to_string(),
            agrees_not_to_drive: driving,
        };
        match st.store.submit_pre_dose(token, sub).await {
            Ok(res) => {
                super::live::publish(Some(o.link.site_id));
                // Whether the sitter's link went out is recorded on it, so the page says so
                // now and every time the patient checks again.
                if let Some(sitter) = res.sitter_link {
                    crate::reminders::deliver(
                        &st.store,
                        &st.reminders,
                        &sitter,
                        sitter.email.as_deref(),
                        sitter.phone.as_deref(),
                    )
                    .await;
                }
                let mut page = pre_dose_page(st, o, token, FormData::empty(), Errors::new()).await?;
                // A refused screen closes the link: show its reasons on this page.
                if let HomeDoseStatus::Refused { .. } = res.status {
                    page.status = res.status;
                }
                return Ok(Some(render_status(StatusCode::OK, &page)));
            }
            Err(StoreError::Domain(keta_domain::DomainError::Invalid(errs))) => {
                for e in errs {
                    let field = match e.field.as_str() {
                        "systolic_mmhg" | "vitals.systolic_mmhg" => "systolic",
                        "diastolic_mmhg" | "vitals.diastolic_mmhg" => "diastolic",
                        f => f,
                    };
                    errors.add(field, e.message);
                }
            }
            Err(e) => errors.absorb(e)?,
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use keta_domain::units::Milligrams;

    use super::*;

    #[test]
    fn the_planned_dose_is_told_in_units_when_they_divide_it() {
        let p = PlannedHomeDose { planned: Milligrams(200.0), unit_strength: Some(Milligrams(100.0)), units: Some(2) };
        assert_eq!(planned_sentence(&p), "Your planned dose today is 200 mg: 2 of your 100 mg tablets or troches.");
        let p = PlannedHomeDose { planned: Milligrams(150.0), unit_strength: Some(Milligrams(100.0)), units: None };
        assert_eq!(planned_sentence(&p), "Your planned dose today is 150 mg.");
    }
}
