//! Intake and eligibility: antidepressant-trial history (and whether the depression is
//! treatment-resistant), the Maudsley Staging Method score computed as the clinician
//! types, the contraindication checklist assessed for every route at once (hard stops
//! block a route; cautions need a documented decision when the course is planned), and
//! the pre-treatment checks per route.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::course::Route;
use keta_domain::eligibility::{
    self as el, AntidepressantTrial, ContraindicationLevel, FactBasis, MaudsleyInput, MsmSeverity, RecordSource,
    TrialOutcome, maudsley_score,
};
use keta_domain::ids::PatientId;
use keta_domain::records::{EligibilityAssessment, NewEligibilityAssessment};
use keta_domain::units::Milligrams;
use keta_store::StoreError;

use super::chart::{EligibilityRow, eligibility_rows, latest_assessments};
use super::clock::SiteClock;
use super::medications::{MedicationsPanel, PanelForms};
use super::page::{Area, Chrome, Errors, FormData, UiResult, render, render_status, see_other};
use crate::AppState;
use crate::auth::CurrentUser;

pub(crate) struct Choice {
    pub value: &'static str,
    pub label: String,
}

pub(crate) struct TrialRow {
    pub drug: String,
    pub dose: String,
    pub weeks: u32,
    pub adequate: bool,
    pub outcome: &'static str,
    pub current: bool,
    pub counts: bool,
}

pub(crate) struct Cell {
    pub text: &'static str,
    pub class: &'static str,
    pub title: String,
}

pub(crate) struct ItemRow {
    pub code: String,
    pub label: String,
    pub checked: bool,
    pub cells: Vec<Cell>,
    /// Where Keta reads this item from instead of a tick; empty: the clinician ticks it.
    pub from_record: String,
}

/// One route's latest result with its warnings and the facts behind it.
pub(crate) struct ResultRow {
    pub row: EligibilityRow,
    /// The record gained a medication, allergy or pregnancy status after this assessment.
    pub stale: bool,
    pub warnings: Vec<String>,
    pub findings: Vec<String>,
    pub record: Vec<String>,
    pub declared: Vec<String>,
    pub not_recorded: Vec<String>,
}

pub(crate) struct CheckRow {
    pub label: String,
    pub basis: String,
    pub routes: String,
}

/// The Maudsley result shown beside the form.
pub(crate) struct MsmView {
    pub total: Option<u32>,
    pub band: String,
    pub band_class: &'static str,
    pub parts: Vec<(String, u32)>,
    pub message: Option<String>,
    pub source: String,
}

/// The same, alone: the htmx fragment.
#[derive(Template)]
#[template(path = "patients/msm_partial.html")]
struct MsmFragment {
    msm: MsmView,
}

#[derive(Template)]
#[template(path = "patients/eligibility.html")]
struct EligibilityPage {
    chrome: Chrome,
    /// The Maudsley score last saved with an assessment, in words (it was shown nowhere).
    saved_msm: Option<String>,
    id: i64,
    name: String,
    mrn: String,
    trials: Vec<TrialRow>,
    trd: String,
    trd_resistant: bool,
    trial_form: FormData,
    trial_errors: Errors,
    outcomes: Vec<Choice>,
    form: FormData,
    errors: Errors,
    severities: Vec<Choice>,
    msm: MsmView,
    route_heads: Vec<&'static str>,
    items: Vec<ItemRow>,
    results: Vec<ResultRow>,
    checks: Vec<CheckRow>,
    meds: MedicationsPanel,
}

pub fn outcome_label(o: TrialOutcome) -> &'static str {
    match o {
        TrialOutcome::NoResponse => "No response",
        TrialOutcome::PartialResponse => "Partial response",
        TrialOutcome::Response => "Response",
        TrialOutcome::Intolerance => "Stopped: intolerance",
    }
}

const OUTCOMES: [(TrialOutcome, &str); 4] = [
    (TrialOutcome::NoResponse, "no_response"),
    (TrialOutcome::PartialResponse, "partial_response"),
    (TrialOutcome::Response, "response"),
    (TrialOutcome::Intolerance, "intolerance"),
];

const SEVERITIES: [(MsmSeverity, &str); 5] = [
    (MsmSeverity::Subsyndromal, "subsyndromal"),
    (MsmSeverity::Mild, "mild"),
    (MsmSeverity::Moderate, "moderate"),
    (MsmSeverity::SevereWithoutPsychosis, "severe_without_psychosis"),
    (MsmSeverity::SevereWithPsychosis, "severe_with_psychosis"),
];

pub fn route_short(r: Route) -> &'static str {
    match r {
        Route::IvRacemic => "IV",
        Route::ImRacemic => "IM",
        Route::IntranasalEsketamine => "Esketamine",
        Route::OralRacemic => "Oral",
        Route::SublingualRacemic => "SL",
    }
}

/// Reads the Maudsley fields. `Ok(None)` when they are all blank (staging is optional).
fn parse_msm(form: &FormData, errors: &mut Errors) -> Option<MaudsleyInput> {
    let any = ["msm_duration_months", "msm_severity", "msm_failures"].iter().any(|f| !form.get(f).trim().is_empty());
    if !any {
        return None;
    }
    let months = form.integer("msm_duration_months", errors);
    let failures = form.integer("msm_failures", errors);
    let severity = SEVERITIES.iter().find(|(_, c)| *c == form.get("msm_severity")).map(|(s, _)| *s);
    if months.is_none() && !errors.has("msm_duration_months") {
        errors.add("msm_duration_months", "enter how many months the current episode has lasted");
    }
    if failures.is_none() && !errors.has("msm_failures") {
        errors.add("msm_failures", "enter the number of failed antidepressant treatments");
    }
    if severity.is_none() {
        errors.add("msm_severity", "choose the severity at baseline");
    }
    let months = months.filter(|m| (0..=1200).contains(m));
    if months.is_none() && !errors.has("msm_duration_months") {
        errors.add("msm_duration_months", "enter 0-1200 months");
    }
    let failures = failures.filter(|f| (0..=100).contains(f));
    if failures.is_none() && !errors.has("msm_failures") {
        errors.add("msm_failures", "enter 0-100 treatments");
    }
    Some(MaudsleyInput {
        episode_duration_months: months? as u32,
        severity: severity?,
        antidepressant_failures: failures? as u32,
        augmentation_used: form.checked("msm_augmentation"),
        ect_used: form.checked("msm_ect"),
    })
}

fn msm_view(form: &FormData) -> MsmView {
    let t = el::maudsley_table();
    let mut view = MsmView {
        total: None,
        band: String::new(),
        band_class: "",
        parts: vec![],
        message: None,
        source: t.source.clone(),
    };
    let mut errors = Errors::new();
    match parse_msm(form, &mut errors) {
        None if !errors.any() => {
            view.message = Some("Fill in duration, severity and failed treatments to see the score.".into())
        }
        None => {
            view.message = Some(
                ["msm_duration_months", "msm_severity", "msm_failures"]
                    .iter()
                    .filter_map(|f| errors.get(f))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        }
        Some(input) => match maudsley_score(&input) {
            Ok(s) => {
                view.total = Some(s.total);
                view.band = s.band.label.clone();
                view.band_class = match s.band.level {
                    el::MsmLevel::Mild => "sev-1",
                    el::MsmLevel::Moderate => "sev-2",
                    el::MsmLevel::Severe => "sev-4",
                };
                view.parts = vec![
                    (t.duration.label.clone(), s.components.duration),
                    (t.severity.label.clone(), s.components.severity),
                    (t.antidepressant_failures.label.clone(), s.components.antidepressant_failures),
                    (t.augmentation.label.clone(), s.components.augmentation),
                    (t.ect.label.clone(), s.components.ect),
                ];
            }
            Err(keta_domain::DomainError::Invalid(errs)) => {
                view.message = Some(errs.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; "))
            }
            Err(e) => view.message = Some(e.to_string()),
        },
    }
    view
}

/// The contraindication checklist: each item, ticked as in `form`, where Keta reads it from,
/// and its level on each route.
fn item_rows(form: &FormData, pregnancy_recorded: bool) -> Vec<ItemRow> {
    el::contraindication_items()
        .iter()
        .map(|it| ItemRow {
            code: it.code.clone(),
            label: it.label.clone(),
            checked: form.has_value("present", &it.code),
            from_record: match it.from_record {
                Some(RecordSource::Pregnancy) if !pregnancy_recorded => String::new(),
                Some(src) => format!("From {}", src.label()),
                None => String::new(),
            },
            cells: Route::ALL
                .iter()
                .map(|r| match it.for_route(*r) {
                    Some(c) if c.level == ContraindicationLevel::HardStop => Cell {
                        text: "Hard stop",
                        class: "cell-stop",
                        title: c.note.clone().unwrap_or_else(|| c.source.clone()),
                    },
                    Some(c) => Cell {
                        text: "Caution",
                        class: "cell-caution",
                        title: c.note.clone().unwrap_or_else(|| c.source.clone()),
                    },
                    None => Cell { text: "—", class: "cell-none", title: "Not listed for this route".into() },
                })
                .collect(),
        })
        .collect()
}

/// The pre-treatment checks of every route, each once, with the routes it is for.
fn check_rows() -> Vec<CheckRow> {
    let mut checks: Vec<CheckRow> = Vec::new();
    for r in Route::ALL {
        for c in el::pretreatment_checks(r) {
            if !checks.iter().any(|x| x.label == c.label) {
                let routes: Vec<&str> = c.routes.iter().map(|r| route_short(*r)).collect();
                checks.push(CheckRow {
                    label: c.label.clone(),
                    basis: c.basis.clone(),
                    routes: if routes.len() == Route::ALL.len() { "All routes".into() } else { routes.join(", ") },
                });
            }
        }
    }
    checks
}

// Each form on the page keeps its own input and errors when another is refused.
#[allow(clippy::too_many_arguments)]
async fn page(
    st: &AppState,
    user: &CurrentUser,
    id: PatientId,
    form: Option<FormData>,
    errors: Errors,
    trial_form: FormData,
    trial_errors: Errors,
    panel_forms: PanelForms,
) -> UiResult<EligibilityPage> {
    let chart = st.store.patient_chart(&user.actor, id).await?;
    let sites = st.store.list_sites(&user.actor).await?;
    let clock = sites.iter().find(|s| s.id == chart.patient.site_id).map_or_else(SiteClock::utc, SiteClock::for_site);
    let trials: Vec<AntidepressantTrial> = chart.antidepressant_trials.iter().map(|t| t.trial.clone()).collect();
    let trd = el::assess_treatment_resistance(&trials);

    // Pre-fill the checklist with what the latest assessment recorded as present.
    let form = form.unwrap_or_else(|| {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(a) = latest_assessments(&chart.eligibility).into_iter().max_by_key(|a| a.assessed_at) {
            let c = &a.contraindications;
            // Only what the clinician declared: facts read from the record are not ticks.
            for code in c
                .hard_stops
                .iter()
                .chain(c.cautions.iter())
                .filter(|f| f.basis == FactBasis::Declared)
                .map(|h| &h.code)
                .chain(c.not_listed_for_route.iter())
            {
                if tickable(code, chart.pregnancy.is_some()) {
                    pairs.push(("present".into(), code.clone()));
                }
            }
        }
        if trd.failed_adequate_trials > 0 {
            pairs.push(("msm_failures".into(), trd.failed_adequate_trials.to_string()));
        }
        FormData::from_pairs(pairs)
    });

    let items = item_rows(&form, chart.pregnancy.is_some());

    let checks = check_rows();

    let saved_msm = chart
        .eligibility
        .iter()
        .filter_map(|a| a.maudsley.as_ref().map(|m| (a.assessed_at, m)))
        .max_by_key(|(at, _)| *at)
        .map(|(at, m)| format!("{} of 15 ({}), saved {}", m.total, m.band.label, clock.datetime(at)));
    Ok(EligibilityPage {
        saved_msm,
        chrome: Chrome::new(user, format!("Eligibility · {}", chart.patient.display_name()), Area::Patients),
        id: id.0,
        name: chart.patient.display_name(),
        mrn: chart.patient.mrn.clone(),
        trials: chart
            .antidepressant_trials
            .iter()
            .map(|t| TrialRow {
                drug: t.trial.drug.clone(),
                dose: t.trial.daily_dose_mg.map_or_else(|| "—".into(), |d| format!("{} mg", d.0)),
                weeks: t.trial.weeks,
                adequate: t.trial.adequate,
                outcome: outcome_label(t.trial.outcome),
                current: t.trial.current_episode,
                counts: t.trial.counts_as_failure(),
            })
            .collect(),
        trd: format!(
            "{} distinct antidepressant{} with an adequate failed trial in the current episode; {} required ({}).",
            trd.failed_adequate_trials,
            if trd.failed_adequate_trials == 1 { "" } else { "s" },
            trd.required,
            trd.source
        ),
        trd_resistant: trd.resistant,
        trial_form,
        trial_errors,
        outcomes: OUTCOMES.iter().map(|(o, c)| Choice { value: c, label: outcome_label(*o).into() }).collect(),
        msm: msm_view(&form),
        form,
        errors,
        severities: el::maudsley_table()
            .severity
            .categories
            .iter()
            .filter_map(|c| {
                SEVERITIES
                    .iter()
                    .find(|(s, _)| *s == c.category)
                    .map(|(_, v)| Choice { value: v, label: c.label.clone() })
            })
            .collect(),
        route_heads: Route::ALL.iter().map(|r| route_short(*r)).collect(),
        items,
        results: eligibility_rows(&chart.eligibility, &clock)
            .into_iter()
            .zip(latest_assessments(&chart.eligibility))
            .map(|(row, a)| {
                let changed = chart
                    .medications
                    .iter()
                    .map(|m| m.recorded_at)
                    .chain(chart.allergies.iter().map(|x| x.recorded_at))
                    .chain(chart.pregnancy.iter().map(|x| x.recorded_at))
                    .any(|t| t > a.assessed_at);
                result_row(row, a, changed)
            })
            .collect(),
        checks,
        meds: super::medications::panel(user, &chart, &clock, st.store.now(), panel_forms),
    })
}

/// Whether the clinician may tick `code` (facts Keta reads from the record are not ticked).
fn tickable(code: &str, pregnancy_recorded: bool) -> bool {
    match el::contraindication_items().iter().find(|it| it.code == code) {
        None => false,
        Some(it) => match it.from_record {
            None => true,
            Some(RecordSource::Pregnancy) => !pregnancy_recorded,
            Some(_) => false,
        },
    }
}

fn result_row(row: EligibilityRow, a: &EligibilityAssessment, stale: bool) -> ResultRow {
    let c = &a.contraindications;
    let facts = |b: FactBasis| -> Vec<String> {
        a.facts.iter().filter(|f| f.basis == b).map(|f| format!("{}: {}", f.fact, f.detail)).collect()
    };
    ResultRow {
        row,
        stale,
        warnings: a.warnings.iter().map(|w| w.message.clone()).collect(),
        findings: c
            .hard_stops
            .iter()
            .chain(c.cautions.iter())
            .map(|f| {
                let how = match f.basis {
                    FactBasis::Record => "from the record",
                    FactBasis::Declared => "declared",
                    FactBasis::NotRecorded => "not recorded",
                };
                match &f.evidence {
                    Some(e) => format!("{} ({how}: {e}; {})", f.label, f.source),
                    None => format!("{} ({how}; {})", f.label, f.source),
                }
            })
            .collect(),
        record: facts(FactBasis::Record),
        declared: facts(FactBasis::Declared),
        not_recorded: facts(FactBasis::NotRecorded),
    }
}

/// A medication, allergy or pregnancy form on the page was refused: the page again, with
/// that form's errors and input.
pub(crate) async fn rejected_panel(
    st: &AppState,
    user: &CurrentUser,
    id: PatientId,
    forms: PanelForms,
) -> UiResult<Response> {
    let mut trial_form = FormData::empty();
    trial_form.set("current_episode", "on");
    let p = page(st, user, id, None, Errors::new(), trial_form, Errors::new(), forms).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &p))
}

pub async fn get_eligibility(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult<Response> {
    let mut trial_form = FormData::empty();
    trial_form.set("current_episode", "on");
    let p =
        page(&st, &user, PatientId(id), None, Errors::new(), trial_form, Errors::new(), PanelForms::default()).await?;
    Ok(render(&p))
}

/// The Maudsley score for the fields as typed (htmx fragment).
pub async fn post_maudsley_preview(form: FormData) -> UiResult<Response> {
    Ok(render(&MsmFragment { msm: msm_view(&form) }))
}

pub async fn post_assessment(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let msm = parse_msm(&form, &mut errors);
    if let Some(m) = &msm
        && let Err(e) = maudsley_score(m)
    {
        errors.absorb(StoreError::Domain(e))?;
        errors.rename("antidepressant_failures", "msm_failures");
    }
    let present = form.all("present");
    if !errors.any() {
        for route in Route::ALL {
            let new = NewEligibilityAssessment { route, maudsley: msm, contraindications_present: present.clone() };
            if let Err(e) = st.store.assess_eligibility(&user.actor, PatientId(id), new).await {
                errors.absorb(e)?;
                break;
            }
        }
        if !errors.any() {
            super::live::publish(None);
            return Ok(see_other(format!("/patients/{id}/eligibility#results")));
        }
    }
    let mut trial_form = FormData::empty();
    trial_form.set("current_episode", "on");
    let p =
        page(&st, &user, PatientId(id), Some(form), errors, trial_form, Errors::new(), PanelForms::default()).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &p))
}

pub async fn post_trial(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let dose = form.number("daily_dose_mg", &mut errors);
    let weeks = form.integer("weeks", &mut errors);
    if weeks.is_none() && !errors.has("weeks") {
        errors.add("weeks", "enter how many weeks the trial lasted");
    }
    let weeks = weeks.and_then(|w| u32::try_from(w).ok());
    if weeks.is_none() && !errors.has("weeks") {
        errors.add("weeks", "enter a number of weeks, 0 or more");
    }
    let outcome = OUTCOMES.iter().find(|(_, c)| *c == form.get("outcome")).map(|(o, _)| *o);
    if outcome.is_none() {
        errors.add("outcome", "choose how the trial ended");
    }
    let trial = weeks.zip(outcome).map(|(weeks, outcome)| AntidepressantTrial {
        drug: form.get("drug").trim().to_string(),
        daily_dose_mg: dose.map(Milligrams),
        weeks,
        adequate: form.checked("adequate"),
        outcome,
        current_episode: form.checked("current_episode"),
    });
    if let Some(Err(e)) = trial.as_ref().map(AntidepressantTrial::validate) {
        errors.absorb(StoreError::Domain(e))?;
    }
    if errors.submit(trial, |t| st.store.add_antidepressant_trial(&user.actor, PatientId(id), t)).await?.is_some() {
        return Ok(see_other(format!("/patients/{id}/eligibility#trials")));
    }
    let p = page(&st, &user, PatientId(id), None, Errors::new(), form, errors, PanelForms::default()).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &p))
}
