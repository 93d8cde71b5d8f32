//! The patient's phone page: `/c/{token}`.
//!
//! No account and no password: the unguessable token in the path is the authorisation, for one
//! check-in, once, inside its window. Nothing in the URL names the patient, and the pages show
//! no name beyond the patient's first name after they have answered. Pages are small, plain
//! HTML with their own small stylesheet and no script, so they load on a slow connection.
//!
//! Safety first: every submission (save or finish) stores positive safety answers and raises
//! the urgent alert in a transaction of its own before anything else is done with the form, and
//! the page that comes back opens with the site's crisis instructions and crisis line.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::instruments::{self, Instrument};
use keta_domain::patient_links::{self, LinkPurpose, LinkState};
use keta_domain::patient_view;
use keta_domain::question_sets::{self, QuestionKind, QuestionSet};
use keta_store::StoreError;
use keta_store::checkins::{Completed, LinkAnswers, LinkLookup, OpenedLink, PatientView, SiteForPatients};

use super::clock::SiteClock;
use super::page::{Errors, FormData, UiResult, render_status};
use super::questionnaires::{ItemView, item_views, map_answer_errors};
use crate::AppState;

/// The patient pages' stylesheet: small, separate from the staff one.
pub(crate) fn css_href() -> &'static str {
    super::assets::patient_css_href()
}

/// The crisis panel's contents.
pub(crate) struct Crisis {
    pub line: String,
    pub tel: String,
    pub instructions: String,
    /// The answer reached the care team (false only when Keta could not store it).
    pub sent: bool,
}

impl Crisis {
    pub(crate) fn of(site: &SiteForPatients) -> Self {
        Crisis {
            line: site.crisis_line.clone(),
            tel: site.crisis_line.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect(),
            instructions: site.crisis_instructions.clone(),
            sent: true,
        }
    }
}

#[derive(Template)]
#[template(path = "patient/refused.html")]
struct RefusedPage {
    css: &'static str,
    title: String,
    body: String,
    site_name: String,
    crisis: Option<Crisis>,
    /// A safety answer was just stored: the crisis panel opens the page.
    safety: bool,
}

pub(crate) struct QuestionView {
    pub id: String,
    pub text: String,
    pub required: bool,
    /// (value, label, html id)
    pub options: Vec<(String, String, String)>,
    /// Free text (a textarea) instead of options.
    pub free_text: Option<usize>,
}

fn question_views(set: &QuestionSet) -> Vec<QuestionView> {
    set.questions
        .iter()
        .map(|q| {
            let id = format!("f_{}", q.id);
            let mk = |v: &str, l: &str| (v.to_string(), l.to_string(), format!("{id}-{v}"));
            let (options, free_text) = match &q.kind {
                QuestionKind::YesNo => (vec![mk("yes", "Yes"), mk("no", "No")], None),
                QuestionKind::Choice { options } => (options.iter().map(|o| mk(&o.value, &o.label)).collect(), None),
                QuestionKind::Scale { min, max, min_label, max_label } => (
                    (*min..=*max)
                        .map(|v| {
                            let label = if v == *min {
                                format!("{v} ({min_label})")
                            } else if v == *max {
                                format!("{v} ({max_label})")
                            } else {
                                v.to_string()
                            };
                            mk(&v.to_string(), &label)
                        })
                        .collect(),
                    None,
                ),
                QuestionKind::FreeText { max_len } => (vec![], Some(*max_len)),
            };
            QuestionView { id, text: q.text.clone(), required: q.required, options, free_text }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "patient/checkin.html")]
struct CheckinPage {
    css: &'static str,
    token: String,
    site_name: String,
    title: String,
    intro: Vec<String>,
    recall: String,
    copyright: String,
    items: Vec<ItemView>,
    questions: Vec<QuestionView>,
    form: FormData,
    errors: Errors,
    crisis: Option<Crisis>,
    saved: bool,
    open_until: String,
}

#[derive(Template)]
#[template(path = "patient/done.html")]
struct DonePage {
    css: &'static str,
    site_name: String,
    crisis: Option<Crisis>,
    clinic_phone: Option<String>,
    view: Option<ViewModel>,
}

pub(crate) struct ScoreLine {
    pub date: String,
    pub name: String,
    pub total: String,
    pub headline: String,
    pub detail: String,
    pub change: Option<String>,
}

pub(crate) struct ViewModel {
    pub given_name: String,
    pub scores: Vec<ScoreLine>,
    pub upcoming: Vec<String>,
}

/// The patient's own view: their scores in plain language (newest first) and what is booked.
pub(crate) fn view_model(v: &PatientView, now: time::OffsetDateTime) -> ViewModel {
    let clock = SiteClock::named(&v.site.time_zone);
    let mut scores = Vec::new();
    for r in &v.responses {
        let Some(inst) = instruments::catalog().get(&r.instrument) else { continue };
        if inst.completed_by != instruments::CompletedBy::Patient {
            continue;
        }
        let Some(total) = r.score.total else { continue };
        // Judged as the chart judges the course (maintenance: against the induction's baseline).
        let baseline = patient_view::baseline_for(&v.courses, &v.responses, r);
        let Ok(e) = patient_view::explain_score(&r.score, baseline) else { continue };
        scores.push(ScoreLine {
            date: clock.date(r.completed_at),
            name: inst.short_name.clone(),
            total: format!("{total} out of {}", inst.max_total.unwrap_or(total)),
            headline: e.headline,
            detail: e.detail,
            change: e.change,
        });
    }
    scores.reverse();
    scores.truncate(12);
    let upcoming = v
        .sessions
        .iter()
        .filter(|s| s.scheduled_for > now && s.state == keta_domain::session::SessionState::Scheduled)
        .take(5)
        .map(|s| format!("{} ({})", clock.date_at(s.scheduled_for), s.route.label()))
        .collect();
    ViewModel { given_name: v.given_name.clone(), scores, upcoming }
}

fn refused(status: StatusCode, r: patient_links::Refusal, site: Option<&SiteForPatients>) -> Response {
    render_status(
        status,
        &RefusedPage {
            css: css_href(),
            title: r.title,
            body: r.body,
            site_name: site.map(|s| s.site_name.clone()).unwrap_or_else(|| "Your clinic".into()),
            crisis: site.map(Crisis::of),
            safety: false,
        },
    )
}

/// A time as a patient of `site` reads it: "Mon 30 Nov at 09:00" in the site's time zone.
pub(crate) fn when(site: &SiteForPatients, t: time::OffsetDateTime) -> String {
    SiteClock::named(&site.time_zone).date_at(t)
}

/// The page for a link that cannot be answered now, or `None` when it is open. With `safety`
/// (a safety answer from this submission was stored) it opens with the crisis panel.
pub(crate) fn refusal_page(o: &OpenedLink, safety: bool) -> Option<Response> {
    let at = match o.state {
        LinkState::Open => return None,
        LinkState::Completed { at } | LinkState::Expired { at } => at,
        LinkState::NotYetOpen { opens_at } => opens_at,
    };
    let r = patient_links::refusal(o.state, &when(&o.site, at), o.site.clinic_phone.as_deref())?;
    let status = match o.state {
        LinkState::Completed { .. } | LinkState::Expired { .. } => StatusCode::GONE,
        _ => StatusCode::CONFLICT,
    };
    Some(render_status(
        status,
        &RefusedPage {
            css: css_href(),
            title: r.title,
            body: r.body,
            site_name: o.site.site_name.clone(),
            crisis: Some(Crisis::of(&o.site)),
            safety,
        },
    ))
}

enum Form {
    Instrument(&'static Instrument),
    Set(&'static QuestionSet),
}

fn form_of(o: &OpenedLink) -> UiResult<Form> {
    match o.link.form_kind.as_str() {
        "instrument" => instruments::catalog()
            .get(&o.link.form)
            .map(Form::Instrument)
            .ok_or_else(|| super::page::UiError::NotFound("This check-in's questionnaire".into())),
        _ => question_sets::get(&o.link.form)
            .map(Form::Set)
            .ok_or_else(|| super::page::UiError::NotFound("This check-in's questions".into())),
    }
}

fn saved_form(o: &OpenedLink, form: &Form) -> FormData {
    let mut f = FormData::empty();
    let Some(p) = &o.link.progress else { return f };
    let Ok(a) = serde_json::from_value::<LinkAnswers>(p.clone()) else { return f };
    match form {
        Form::Instrument(_) => {
            for (i, v) in a.items.iter().enumerate() {
                if let Some(v) = v {
                    f.set(&format!("q{}", i + 1), v.to_string());
                }
            }
        }
        Form::Set(_) => {
            for (k, v) in &a.fields {
                f.set(&format!("f_{k}"), v.clone());
            }
        }
    }
    f
}

fn checkin_page(
    o: &OpenedLink,
    token: &str,
    form_kind: &Form,
    form: FormData,
    errors: Errors,
    crisis: bool,
    saved: bool,
) -> CheckinPage {
    let (title, intro, recall, copyright, items, questions) = match form_kind {
        Form::Instrument(inst) => (
            inst.short_name.clone(),
            vec![inst.instructions.clone().unwrap_or_else(|| "Please answer each question.".into())],
            inst.recall_window.clone(),
            inst.copyright.clone().unwrap_or_default(),
            item_views(inst, true),
            vec![],
        ),
        Form::Set(set) => (
            set.name.clone(),
            set.intro.split("\n\n").map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
            String::new(),
            String::new(),
            vec![],
            question_views(set),
        ),
    };
    CheckinPage {
        css: css_href(),
        token: token.to_string(),
        site_name: o.site.site_name.clone(),
        title,
        intro,
        recall,
        copyright,
        items,
        questions,
        form,
        errors,
        crisis: crisis.then(|| Crisis::of(&o.site)),
        saved,
        open_until: when(&o.site, o.link.expires_at),
    }
}

async fn lookup(st: &AppState, token: &str, record_visit: bool) -> UiResult<Result<OpenedLink, Response>> {
    let found = if record_visit { st.store.open_link(token).await? } else { st.store.peek_link(token).await? };
    match found {
        LinkLookup::Unknown => Ok(Err(refused(StatusCode::NOT_FOUND, patient_links::unknown_link(), None))),
        LinkLookup::Found(o) => Ok(Ok(*o)),
    }
}

/// `GET /c/{token}`
pub async fn get_link(State(st): State<AppState>, Path(token): Path<String>) -> UiResult<Response> {
    let o = match lookup(&st, &token, true).await? {
        Ok(o) => o,
        Err(page) => return Ok(page),
    };
    if o.link.purpose != LinkPurpose::Checkin {
        return super::home_dose::get_page(&st, o, &token).await;
    }
    if let Some(page) = refusal_page(&o, false) {
        return Ok(page);
    }
    let form_kind = form_of(&o)?;
    let crisis = has_safety_answer(&st, &token).await;
    let form = saved_form(&o, &form_kind);
    Ok(render_status(StatusCode::OK, &checkin_page(&o, &token, &form_kind, form, Errors::new(), crisis, false)))
}

/// Whether a safety answer is stored for this link (the crisis panel stays up on every later
/// page of the same check-in). A failed read shows the panel: showing it needlessly is safer.
async fn has_safety_answer(st: &AppState, token: &str) -> bool {
    st.store.link_has_safety_answers(token).await.unwrap_or(true)
}

/// `POST /c/{token}`: `action=save` keeps the answers for later; anything else finishes.
pub async fn post_link(State(st): State<AppState>, Path(token): Path<String>, form: FormData) -> UiResult<Response> {
    if !patient_links::is_well_formed_token(&token) {
        return Ok(refused(StatusCode::NOT_FOUND, patient_links::unknown_link(), None));
    }
    // 1. Safety first: before the link is even looked at for anything else.
    let (positive, safety_stored) = match store_safety_answers(&st, &token, &form).await {
        Ok(stored) => stored,
        Err(page) => return Ok(page),
    };
    let safety_stored = safety_stored || positive;
    let o = match lookup(&st, &token, false).await {
        Ok(found) => match found {
            Ok(o) => o,
            Err(page) => return Ok(page),
        },
        Err(_) => return Ok(unavailable(&st, &token, positive).await),
    };
    if o.link.purpose != LinkPurpose::Checkin {
        return super::home_dose::post_page(&st, o, &token, form).await;
    }
    if let Some(page) = refusal_page(&o, safety_stored) {
        return Ok(page);
    }
    let form_kind = form_of(&o)?;
    let crisis = safety_stored || has_safety_answer(&st, &token).await;
    let mut errors = Errors::new();
    let answers = match &form_kind {
        Form::Instrument(inst) => LinkAnswers {
            items: super::questionnaires::read_answers(inst, &form, &mut errors),
            fields: Default::default(),
        },
        Form::Set(set) => LinkAnswers {
            items: vec![],
            fields: set
                .questions
                .iter()
                .filter_map(|q| form.opt(&format!("f_{}", q.id)).map(|v| (q.id.clone(), v)))
                .collect(),
        },
    };
    // 2. Saving for later, or answers that cannot be read: keep what was typed.
    if form.get("action") == "save" || errors.any() {
        keep_progress(&st, &token, answers).await;
        let status = if errors.any() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
        let saved = !errors.any();
        let page = checkin_page(&o, &token, &form_kind, form, errors, crisis, saved);
        return Ok(render_status(status, &page));
    }
    // 3. Finish (one transaction). If it is refused, what was typed is kept for later.
    match st.store.complete_checkin(&token, answers.clone()).await {
        Ok(done) => {
            super::live::publish(Some(o.link.site_id));
            let crisis = crisis || matches!(&done, Completed::Instrument(r) if !r.score.safety_flags.is_empty());
            let view = match st.store.patient_view_by_token(&token).await {
                Ok(Some(v)) => Some(view_model(&v, st.store.now())),
                _ => None,
            };
            Ok(render_status(
                StatusCode::OK,
                &DonePage {
                    css: css_href(),
                    site_name: o.site.site_name.clone(),
                    crisis: crisis.then(|| Crisis::of(&o.site)),
                    clinic_phone: o.site.clinic_phone.clone(),
                    view,
                },
            ))
        }
        Err(StoreError::Domain(e)) => {
            keep_progress(&st, &token, answers).await;
            let mut errors = Errors::new();
            errors.absorb(StoreError::Domain(e))?;
            match &form_kind {
                Form::Instrument(inst) => map_answer_errors(inst, &mut errors),
                Form::Set(set) => {
                    for q in &set.questions {
                        errors.rename(&format!("answers.{}", q.id), &format!("f_{}", q.id));
                    }
                }
            }
            let page = checkin_page(&o, &token, &form_kind, form, errors, crisis, false);
            Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        // Two submissions at once: the other one completed it.
        Err(StoreError::Conflict(_)) => match st.store.peek_link(&token).await {
            Ok(LinkLookup::Found(o)) => Ok(refusal_page(&o, crisis).unwrap_or_else(|| {
                let page = checkin_page(&o, &token, &form_kind, form, Errors::new(), crisis, false);
                render_status(StatusCode::CONFLICT, &page)
            })),
            _ => Ok(unavailable(&st, &token, crisis).await),
        },
        Err(e) => {
            tracing::error!(error = %e, "completing a check-in failed");
            Ok(unavailable(&st, &token, crisis).await)
        }
    }
}

/// Stores the form's answers to the safety items before anything else is done with it. Whether
/// an answer is positive is worked out here (pure), so the crisis panel shows even if storing
/// fails. Returns (positive, stored), or the page to answer with when a positive answer could
/// not be stored.
async fn store_safety_answers(st: &AppState, token: &str, form: &FormData) -> Result<(bool, bool), Response> {
    let mut positive = false;
    let mut safety_stored = false;
    let items = match instrument_answers_for(st, token, form).await {
        Ok(items) => items,
        Err(e) => {
            tracing::error!(error = ?e, "reading a check-in link for its safety items failed");
            None
        }
    };
    if let Some((inst, items)) = items {
        positive = !instruments::partial_safety_flags(inst, &items).is_empty();
        let mut tries = 0;
        loop {
            tries += 1;
            match st.store.record_safety_answers(token, items.clone()).await {
                Ok(true) => {
                    safety_stored = true;
                    super::live::publish(None);
                    break;
                }
                Ok(false) => break,
                Err(e) if tries < 2 => tracing::warn!(error = %e, "storing a safety answer failed; trying again"),
                Err(e) => {
                    tracing::error!(error = %e, "storing a safety answer failed twice");
                    if positive {
                        return Err(unavailable(st, token, true).await);
                    }
                    break;
                }
            }
        }
    }
    Ok((positive, safety_stored))
}

/// Saves the answers so far on the link, so the patient can finish later. A failure is logged:
/// the page still answers (the patient's safety answers were stored before this).
async fn keep_progress(st: &AppState, token: &str, answers: LinkAnswers) {
    if let Err(e) = st.store.save_link_progress(token, answers).await {
        tracing::warn!(error = %e, "saving check-in progress failed");
    }
}

/// The page when Keta could not store or read the check-in. A patient page never falls
/// through to the staff error page: it says what happened, that answers may not have been
/// sent, and always shows the crisis line when it can be read.
async fn unavailable(st: &AppState, token: &str, positive: bool) -> Response {
    let site = match st.store.peek_link(token).await {
        Ok(LinkLookup::Found(o)) => Some(o.site),
        _ => None,
    };
    let phone = site.as_ref().and_then(|s| s.clinic_phone.clone());
    render_status(
        StatusCode::SERVICE_UNAVAILABLE,
        &RefusedPage {
            css: css_href(),
            title: "Your answers may not have been sent".into(),
            body: match phone {
                Some(p) => format!(
                    "Something went wrong on our side. Please try again in a few minutes, or call the clinic on {p}."
                ),
                None => {
                    "Something went wrong on our side. Please try again in a few minutes, or call the clinic.".into()
                }
            },
            site_name: site.as_ref().map(|s| s.site_name.clone()).unwrap_or_else(|| "Your clinic".into()),
            crisis: site.as_ref().map(|s| Crisis { sent: !positive, ..Crisis::of(s) }),
            safety: positive,
        },
    )
}

/// The instrument answers in a submission, when the link is an instrument check-in (read
/// leniently: unreadable answers are skipped, never a reason to drop a safety answer).
async fn instrument_answers_for(
    st: &AppState,
    token: &str,
    form: &FormData,
) -> UiResult<Option<(&'static Instrument, Vec<Option<i32>>)>> {
    let Some(code) = st.store.link_instrument(token).await? else { return Ok(None) };
    let Some(inst) = instruments::catalog().get(&code) else { return Ok(None) };
    let items = inst.items.iter().map(|it| form.get(&format!("q{}", it.number)).trim().parse::<i32>().ok()).collect();
    Ok(Some((inst, items)))
}

#[derive(Template)]
#[template(path = "patient/faq.html")]
struct FaqPage {
    css: &'static str,
    entries: &'static [patient_view::FaqEntry],
}

/// `GET /help`: the clinic's answers to the questions new patients ask. Public, no patient data.
pub async fn get_faq() -> Response {
    render_status(StatusCode::OK, &FaqPage { css: css_href(), entries: patient_view::faq() })
}
