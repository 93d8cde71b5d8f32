//! PDF downloads of the printable documents (docs/decisions/0009-documents.md): the signed
//! session note, the REMS Patient Monitoring Form, a progress letter, the clinic outcomes
//! report and the controlled-substance books. Each is typeset by `keta-documents` from a
//! template (`data/documents/*.typ`, overridable per file by the clinic's `documents_dir`)
//! and the data the HTML screen shows, read through the same permission-checked, audited
//! store calls (a role that may not read the screen gets the same 403 or 404), then audited
//! as a `print`. Rendering is CPU-bound and runs off the async runtime.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use keta_documents::{Document, Renderer};
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::instruments::catalog;
use keta_domain::outcomes::{OutcomeDefinition, ResponseRule, Threshold, definition_for};
use keta_store::Actor;
use serde_json::{Value, json};

use super::clock::{SiteClock, iso_date};
use super::ledger_print::{self, LogParams};
use super::page::{UiError, UiResult};
use crate::AppState;
use crate::auth::CurrentUser;

/// The document renderer: the templates built into Keta, each replaced by a file of the same
/// name in the clinic's `documents_dir` when it is set.
#[derive(Clone, Default)]
pub struct Documents {
    custom: Option<Arc<Renderer>>,
}

impl Documents {
    /// Templates from `dir` where it has them, the built-in ones otherwise (`None`: built-in only).
    pub fn from_dir(dir: Option<PathBuf>) -> Self {
        Self { custom: dir.map(|d| Arc::new(Renderer::new(Some(d)))) }
    }

    fn renderer(&self) -> &Renderer {
        match &self.custom {
            Some(r) => r,
            None => Renderer::embedded(),
        }
    }
}

/// What a print is of, for its audit entry.
struct Printed {
    object_id: Option<String>,
    patient: Option<PatientId>,
    site: Option<SiteId>,
}

/// Who a document is produced for, as every page shows it: a staff member's name and user
/// name, or an API client's name.
fn by_user(user: &CurrentUser) -> String {
    format!("{} ({})", user.display_name, user.username)
}

/// `produced`: who made the document, when (on the site's clock), for which clinic.
fn produced(st: &AppState, by: &str, clock: &SiteClock, clinic: &str) -> Value {
    json!({
        "by": by,
        "at": format!("{} ({})", clock.datetime(st.store.now()), clock.zone),
        "clinic": clinic,
    })
}

/// A document ready to typeset: the template, its data, and what the print is of.
pub(crate) struct Prepared {
    doc: Document,
    data: Value,
    printed: Printed,
}

/// Typesets the document and audits the print (by `actor`); a template that fails prints
/// and audits nothing.
pub(crate) async fn render(st: &AppState, actor: &Actor, p: Prepared) -> UiResult<Vec<u8>> {
    let docs = st.documents.clone();
    let at = st.store.now();
    let Prepared { doc, data, printed } = p;
    let bytes = tokio::task::spawn_blocking(move || docs.renderer().render(doc, &data, at))
        .await
        .map_err(|_| UiError::Internal)?
        .map_err(|e| {
            // The template's file and line are in the message; nothing was printed or audited.
            tracing::error!(error = %e, "a document template failed");
            UiError::Internal
        })?;
    st.store.audit_print(actor, doc.slug(), printed.object_id, printed.patient, printed.site).await?;
    Ok(bytes)
}

/// Typesets the document, audits the print, and answers the PDF as a download.
async fn pdf(
    st: &AppState,
    user: &CurrentUser,
    doc: Document,
    data: Value,
    printed: Printed,
    file_name: String,
) -> UiResult<Response> {
    let bytes = render(st, &user.actor, Prepared { doc, data, printed }).await?;
    Ok(download(bytes, &file_name))
}

/// A PDF as a download named `<file_name>.pdf`, never cached.
pub(crate) fn download(bytes: Vec<u8>, file_name: &str) -> Response {
    let safe: String = file_name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{safe}.pdf\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response()
}

async fn site_and_clock(st: &AppState, actor: &Actor, site: SiteId) -> UiResult<(String, SiteClock)> {
    let sites = st.store.list_sites(actor).await?;
    Ok(match sites.iter().find(|s| s.id == site) {
        Some(s) => (s.name.clone(), SiteClock::for_site(s)),
        None => (String::new(), SiteClock::utc()),
    })
}

fn signatures(sigs: &[keta_domain::notes::NoteSignature], clock: &SiteClock) -> Value {
    sigs.iter()
        .map(|s| {
            json!({
                "printed_name": s.printed_name,
                "signer": s.signer,
                "meaning": s.meaning.label(),
                "signed_at": clock.datetime(s.signed_at),
                "content_sha256": s.content_sha256,
                "signature_sha256": s.signature_sha256,
            })
        })
        .collect()
}

/// `GET /sessions/{id}/note/pdf`: the session note with its signatures, amendments and the
/// result of re-checking every hash.
pub async fn get_session_note(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    let p = session_note(&st, &user.actor, &by_user(&user), SessionId(id)).await?;
    let bytes = render(&st, &user.actor, p).await?;
    Ok(download(bytes, &format!("session-{id}-note")))
}

/// The session note's data (read through the same permission-checked, audited calls).
pub(crate) async fn session_note(st: &AppState, actor: &Actor, by: &str, sid: SessionId) -> UiResult<Prepared> {
    let id = sid.0;
    let session = st.store.get_session(actor, sid).await?;
    let note = st.store.get_signed_note(actor, sid).await?;
    let patient = st.store.get_patient(actor, session.patient_id).await?;
    let (site, clock) = site_and_clock(st, actor, session.site_id).await?;
    let data = json!({
        "produced": produced(st, by, &clock, &site),
        "patient": {"id": patient.id.0, "name": patient.display_name(), "mrn": patient.mrn,
                    "date_of_birth": iso_date(patient.date_of_birth)},
        "session": {"id": id, "date": clock.datetime(session.dose_started_at.unwrap_or(session.scheduled_for)),
                    "route": session.route.label(), "site": site},
        "note": {
            "text": note.text,
            "signed": note.signed,
            "content_sha256": note.content_sha256,
            "signatures": signatures(&note.signatures, &clock),
            "amendments": note.amendments.iter().map(|a| json!({
                "printed_name": a.printed_name,
                "author": a.author,
                "created_at": clock.datetime(a.created_at),
                "reason": a.reason,
                "text": a.text,
                "previous_sha256": a.previous_sha256,
                "content_sha256": a.content_sha256,
                "signatures": signatures(&a.signatures, &clock),
            })).collect::<Vec<_>>(),
            "verification": {"intact": note.verification.intact, "problems": note.verification.problems},
        },
    });
    let printed = Printed { object_id: Some(sid.to_string()), patient: Some(patient.id), site: Some(session.site_id) };
    Ok(Prepared { doc: Document::SessionNote, data, printed })
}

/// `GET /sessions/{id}/rems/pdf`: the REMS Patient Monitoring Form as the record fills it.
pub async fn get_rems_form(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult<Response> {
    let p = rems_form(&st, &user.actor, &by_user(&user), SessionId(id)).await?;
    let bytes = render(&st, &user.actor, p).await?;
    Ok(download(bytes, &format!("session-{id}-rems-form")))
}

/// The REMS form's data, filled from the record (an audited read).
pub(crate) async fn rems_form(st: &AppState, actor: &Actor, by: &str, sid: SessionId) -> UiResult<Prepared> {
    let id = sid.0;
    let v = st.store.rems_form(actor, sid).await?;
    let (site, clock) = site_and_clock(st, actor, v.site_id).await?;
    let form = serde_json::to_value(&v.form).map_err(|_| UiError::Internal)?;
    let data = json!({
        "produced": produced(st, by, &clock, &site),
        "session_id": id,
        "due_on": iso_date(v.due_on),
        "status": super::rems::status_label(v.status),
        "confirmation_number": v.confirmation_number,
        "submitted_on": v.submitted_on.map(iso_date),
        "form": form,
    });
    let printed = Printed { object_id: Some(id.to_string()), patient: Some(v.patient_id), site: Some(v.site_id) };
    Ok(Prepared { doc: Document::RemsForm, data, printed })
}

/// The response and remission criteria of a definition in words, and where their lines fall
/// for this baseline (as the chart's trajectory draws them).
fn criteria(def: &OutcomeDefinition, baseline: i32) -> (Value, Option<f64>, Option<i32>) {
    let (response, response_line) = match def.response.as_ref().map(|r| r.rule) {
        Some(ResponseRule::PercentReduction { min_percent }) => (
            format!("a fall of at least {min_percent} % from the baseline"),
            (baseline > 0).then(|| f64::from(baseline) * (100.0 - f64::from(min_percent)) / 100.0),
        ),
        Some(ResponseRule::PointReduction { min_points }) => (
            format!("a fall of at least {min_points} points from the baseline"),
            Some(f64::from(baseline - min_points)),
        ),
        None => ("not defined".to_string(), None),
    };
    let (remission, remission_line) = match def.remission.as_ref().map(|r| r.threshold) {
        Some(Threshold::Below(v)) => (format!("a total below {v}"), Some(v)),
        Some(Threshold::AtMost(v)) => (format!("a total of {v} or less"), Some(v)),
        None => ("not defined".to_string(), None),
    };
    (
        json!({"name": def.name, "source": def.source.to_string(), "response": response, "remission": remission}),
        response_line,
        remission_line,
    )
}

/// `GET /patients/{id}/progress-letter/pdf`: a progress letter to the referring clinician or
/// payer: diagnoses, Maudsley stage, earlier trials, sessions given and the PHQ-9 course with
/// the response and remission lines of the outcome definition in use.
pub async fn get_progress_letter(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    let c = st.store.patient_chart(&user.actor, PatientId(id)).await?;
    let p = &c.patient;
    let (site, clock) = site_and_clock(&st, &user.actor, p.site_id).await?;
    let maudsley = c
        .eligibility
        .iter()
        .filter_map(|a| a.maudsley.as_ref().map(|m| (a.assessed_at, m)))
        .max_by_key(|(at, _)| *at)
        .map(|(at, m)| json!({"total": m.total, "band": m.band.label, "assessed_on": clock.date(at)}));
    let trials: Vec<Value> = c
        .antidepressant_trials
        .iter()
        .map(|t| {
            let t = &t.trial;
            json!({"drug": t.drug, "dose": t.daily_dose_mg.map(|d| format!("{} mg", d.0)), "weeks": t.weeks,
                   "adequate": t.adequate, "outcome": super::eligibility::outcome_label(t.outcome),
                   "current_episode": t.current_episode})
        })
        .collect();
    let mut dosed: Vec<_> = c.sessions.iter().filter_map(|s| s.dose_started_at.map(|at| (at, s.route))).collect();
    dosed.sort_by_key(|(at, _)| *at);
    let mut by_route: Vec<(keta_domain::course::Route, usize)> = Vec::new();
    for (_, r) in &dosed {
        match by_route.iter_mut().find(|(x, _)| x == r) {
            Some((_, n)) => *n += 1,
            None => by_route.push((*r, 1)),
        }
    }
    let sessions = json!({
        "given": dosed.len(),
        "by_route": by_route.iter().map(|(r, n)| json!({"route": r.label(), "given": n})).collect::<Vec<_>>(),
        "first": dosed.first().map(|(at, _)| clock.date(*at)),
        "last": dosed.last().map(|(at, _)| clock.date(*at)),
    });

    const PHQ9: &str = "phq9";
    let mut scores: Vec<_> = c
        .responses
        .iter()
        .filter(|r| r.instrument == PHQ9)
        .filter_map(|r| r.score.total.map(|t| (r.completed_at, t)))
        .collect();
    scores.sort_by_key(|(at, _)| *at);
    let phq9 = match (scores.first(), catalog().get(PHQ9)) {
        (Some((first_at, first_total)), Some(inst)) => {
            let outcome = c.outcomes.iter().rev().find(|o| o.outcome.instrument == PHQ9).map(|o| &o.outcome);
            let def = outcome.map(|o| &o.definition).or_else(|| definition_for(PHQ9));
            let baseline = outcome.map_or(*first_total, |o| o.baseline);
            let (definition, response_line, remission_line) = match def {
                Some(d) => criteria(d, baseline),
                None => (Value::Null, None, None),
            };
            let said = match outcome {
                None => "No course outcome is judged yet.".to_string(),
                Some(o) => {
                    let resp = match o.responded {
                        Some(true) => "meets the response criterion",
                        Some(false) => "does not meet the response criterion",
                        None => "cannot be judged for response",
                    };
                    let rem = match o.remitted {
                        Some(true) => "meets the remission criterion",
                        Some(false) => "does not meet the remission criterion",
                        None => "cannot be judged for remission",
                    };
                    format!("The latest score {resp} and {rem}.")
                }
            };
            json!({
                "points": scores.iter().map(|(at, t)| json!({
                    "date": clock.date(*at),
                    "day": (*at - *first_at).whole_days(),
                    "total": t,
                })).collect::<Vec<_>>(),
                "min": inst.min_total.unwrap_or(0),
                "max": inst.max_total.unwrap_or(scores.iter().map(|(_, t)| *t).max().unwrap_or(1)),
                "baseline": baseline,
                "response_line": response_line,
                "remission_line": remission_line,
                "definition": definition,
                "outcome": said,
            })
        }
        _ => Value::Null,
    };
    let data = json!({
        "produced": produced(&st, &by_user(&user), &clock, &site),
        "patient": {
            "name": p.display_name(),
            "date_of_birth": iso_date(p.date_of_birth),
            "mrn": p.mrn,
            "indication": super::patients::indication_label(p.indication),
            "diagnoses": p.diagnoses,
            "referring_clinician": p.referring_clinician,
        },
        "maudsley": maudsley,
        "trials": trials,
        "sessions": sessions,
        "phq9": phq9,
    });
    let printed = Printed { object_id: Some(id.to_string()), patient: Some(p.id), site: Some(p.site_id) };
    pdf(&st, &user, Document::ProgressLetter, data, printed, format!("patient-{id}-progress-letter")).await
}

/// `GET /outcomes/pdf`: the clinic's outcomes beside the published trials.
pub async fn get_outcomes(State(st): State<AppState>, user: CurrentUser) -> UiResult<Response> {
    let (patients, sections) = super::outcomes::sections(&st, &user).await?;
    let sites = super::user_sites(&st, &user).await?;
    let clock = sites.first().map_or_else(SiteClock::utc, SiteClock::for_site);
    let clinic = sites.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    let data = json!({
        "produced": produced(&st, &by_user(&user), &clock, &clinic),
        "patients": patients,
        "sections": sections.iter().map(|s| json!({
            "route": s.route,
            "rates": s.rates.iter().map(|r| json!({
                "instrument": r.instrument, "courses": r.courses, "response": r.response(),
                "remission": r.remission(), "relapse": r.relapse(), "definitions": r.definitions,
            })).collect::<Vec<_>>(),
            "benchmarks": s.benchmarks.iter().map(|b| json!({
                "study": b.study, "design": b.design, "instrument": b.instrument, "intervention": b.intervention,
                "time_point": b.time_point, "response": b.response, "remission": b.remission,
                "comparator": b.comparator, "definition": b.definition, "source": b.source, "note": b.note,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let printed = Printed { object_id: None, patient: None, site: None };
    pdf(&st, &user, Document::OutcomesReport, data, printed, "clinic-outcomes".into()).await
}

/// `GET /ledger/print/dispensing-log/pdf`: the dispensing log with the same filters as the page.
pub async fn get_dispensing_log(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<LogParams>,
) -> UiResult<Response> {
    let d = ledger_print::dispensing_log(&st, &user, &q).await?;
    if d.errors.any() {
        // Wrong filters: the page, with each error beside its field.
        return Ok(ledger_print::log_page(&user, d, String::new()));
    }
    let show = |d: Option<time::Date>, none: &str| d.map_or_else(|| none.to_string(), iso_date);
    let data = json!({
        "produced": produced(&st, &by_user(&user), &d.reg.clock, &d.reg.name),
        "site": d.reg.name,
        "dea": d.reg.dea,
        "substance": d.substance.map_or_else(|| "Ketamine and esketamine".to_string(), |s| s.label().to_string()),
        "from": show(d.from, "the first entry"),
        "to": show(d.to, "the last entry"),
        "entries": d.rows.iter().map(|r| json!({
            "id": r.id, "occurred_at": r.when, "kind": r.kind, "lot": r.lot, "change": r.change,
            "amount": r.amount_mg, "balance_after": r.balance, "recorded_by": r.recorded_by,
            "witnesses": r.witnesses, "patient": r.patient, "reason": r.summary,
            "reversed": r.reversed_by.is_some(),
        })).collect::<Vec<_>>(),
    });
    let printed = Printed { object_id: None, patient: None, site: d.site };
    pdf(&st, &user, Document::DispensingLog, data, printed, "dispensing-log".into()).await
}

/// `GET /ledger/print/inventory/pdf?count_type=initial|biennial`.
pub async fn get_inventory(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<LogParams>,
) -> UiResult<Response> {
    let d = ledger_print::inventory(&st, &user, &q).await?;
    let data = json!({
        "produced": produced(&st, &by_user(&user), &d.reg.clock, &d.reg.name),
        "site": d.reg.name,
        "dea": d.reg.dea,
        "kind": d.count_type,
        "title": d.title,
        "lots": d.rows.iter().map(|r| json!({
            "taken": r.taken, "business_time": r.business_time, "substance": r.substance,
            "product": r.product, "ndc": r.ndc, "lot_number": r.lot, "count": r.count,
            "count_mg": r.count_mg, "estimated": r.estimated, "counted_by": r.counted_by, "witness": r.witness,
        })).collect::<Vec<_>>(),
    });
    let printed = Printed { object_id: Some(d.count_type.to_string()), patient: None, site: d.site };
    pdf(&st, &user, Document::Inventory, data, printed, format!("{}-inventory", d.count_type)).await
}

/// `GET /ledger/entries/{id}/form-106/pdf`: a loss entry as a DEA Form 106 draft.
pub async fn get_form_106(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult<Response> {
    let w = ledger_print::form_106(&st, &user, id).await?;
    let (_, clock) = site_and_clock(&st, &user.actor, w.site_id).await?;
    let blank = |s: &str| if s.is_empty() { Value::Null } else { Value::String(s.to_string()) };
    let data = json!({
        "produced": produced(&st, &by_user(&user), &clock, &w.registrant),
        "site": w.registrant,
        "dea": w.dea,
        "loss": {
            "entry_id": id, "loss_type": w.loss_type, "discovered_at": w.discovered, "substance": w.substance,
            "dea_drug_code": w.drug_code, "strength": w.strength, "form": w.form, "ndc": w.ndc,
            "lot_number": w.lot_number, "quantity": w.quantity, "quantity_mg": w.quantity_mg,
            "circumstances": w.circumstances, "police_report": blank(&w.police_report),
            "dea_notified_at": blank(&w.dea_notified), "form_106_filed_at": blank(&w.filed),
            "investigation": blank(&w.investigation), "recorded": w.recorded,
            "reversed_by": w.reversed_by, "outstanding": w.outstanding,
        },
    });
    let printed = Printed { object_id: Some(id.to_string()), patient: None, site: Some(w.site_id) };
    pdf(&st, &user, Document::Form106, data, printed, format!("entry-{id}-form-106-draft")).await
}
