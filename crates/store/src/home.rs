//! Question sets answered from a link, and the at-home programme: the pre-dose
//! screen, the sitter's confirmation by their own link, the dose log, dispenses, reconciliation
//! and the supply hold.
//!
//! The screen's rules are `data/rules/home-pre-dose-screen.toml` with the clinic's alcohol- and
//! sedative-free intervals from `clinic_settings` (`home_pre_dose`); until those are set the
//! screen refuses to run and tells the patient not to take the dose.

use std::collections::BTreeMap;

use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::alerts::AlertFiring;
use keta_domain::between_alerts::BetweenSessionAlerts;
use keta_domain::course::Course;
use keta_domain::home_dosing::{self, Dispense, DoseLog, PreDoseAnswers, PreDoseRules, Reconciliation, ScreenOutcome};
use keta_domain::ids::{CourseId, PatientId};
use keta_domain::patient::Patient;
use keta_domain::patient_links::LinkPurpose;
use keta_domain::plausible::Quantity;
use keta_domain::question_sets::{self, AnswerValue, QuestionKind, QuestionSet};
use keta_domain::units::{Milligrams, Mmhg};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::audit::{self, Action, Created, Entry};
use crate::checkins::{
    HOME_PRE_DOSE_SETTINGS, IssuedLink, LinkAnswers, LinkRecord, NewLink, clinic_setting, event, finish_link,
    insert_link, link_actor, open_for_write, patient_of,
};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::time_codec::{from_json, from_ms, json, ms, opt_from_ms};
use crate::{Actor, Store, params};

// ---------------------------------------------------------------------------------------------
// Question sets

/// Reads a page's text fields as answers of the right kind. Empty fields are unanswered; a value
/// that does not fit its question is passed on as text so validation names the field.
pub fn question_set_answers(set: &QuestionSet, fields: &BTreeMap<String, String>) -> BTreeMap<String, AnswerValue> {
    let mut out = BTreeMap::new();
    for (id, raw) in fields {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let v = match set.question(id).map(|q| &q.kind) {
            Some(QuestionKind::YesNo) => match raw {
                "yes" | "true" => AnswerValue::YesNo(true),
                "no" | "false" => AnswerValue::YesNo(false),
                other => AnswerValue::Text(other.into()),
            },
            Some(QuestionKind::Scale { .. }) => {
                raw.parse::<i32>().map(AnswerValue::Number).unwrap_or_else(|_| AnswerValue::Text(raw.into()))
            }
            _ => AnswerValue::Text(raw.into()),
        };
        out.insert(id.clone(), v);
    }
    out
}

/// Stores a completed question set from a link and raises the alerts its flags call for.
pub(crate) fn insert_question_set(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    p: &Patient,
    link: &LinkRecord,
    answers: &LinkAnswers,
) -> Result<(i64, Vec<String>)> {
    let set = question_sets::get(&link.form)
        .ok_or_else(|| StoreError::Corrupt(format!("link {} names unknown question set", link.id)))?;
    let values = question_set_answers(set, &answers.fields);
    question_sets::validate_answers(set, &values)?;
    let flags = question_sets::evaluate(set, &values);
    let id = audit::insert_audited(
        c,
        actor,
        now,
        "INSERT INTO question_set_responses (link_id, patient_id, site_id, course_id, set_code, answers, flags, completed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        params![
            link.id, p.id.0, p.site_id.0, link.course_id.map(|x| x.0), set.code.as_str(), json(&values), json(&flags),
            ms(now)
        ],
        Created { object_type: "question_set_response", patient: p.id, site: p.site_id, fields: &["set_code", "answers"] },
    )?;
    let firings = flags
        .iter()
        .map(|f| AlertFiring {
            rule: f.code.clone(),
            severity: f.severity,
            message: format!("{} (from the patient's phone): {}", set.name, f.message),
            source: f.source.to_string(),
        })
        .collect();
    crate::sessions::raise(c, actor, now, p.site_id, p.id, None, firings)?;
    Ok((id, flags.into_iter().map(|f| f.code).collect()))
}

/// A stored question-set response (for the chart).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QuestionSetResponse {
    pub id: i64,
    pub set_code: String,
    #[schema(value_type = Object)]
    pub answers: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub flags: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
}

// ---------------------------------------------------------------------------------------------
// At-home programme

/// The clinic's intervals for the pre-dose screen (not in the reference: no defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HomePreDoseSettings {
    pub alcohol_free_hours: u32,
    pub sedative_free_hours: u32,
}

impl HomePreDoseSettings {
    pub fn validate(&self) -> std::result::Result<(), DomainError> {
        let mut v = keta_domain::error::Validator::new();
        v.check((1..=168).contains(&self.alcohol_free_hours), "alcohol_free_hours", "must be 1 to 168 hours");
        v.check((1..=168).contains(&self.sedative_free_hours), "sedative_free_hours", "must be 1 to 168 hours");
        v.finish()
    }
}

/// The embedded rules with the clinic's intervals applied (unset intervals stay unset).
pub(crate) fn pre_dose_rules(c: &mut dyn Conn) -> Result<PreDoseRules> {
    let mut rules = PreDoseRules::builtin().clone();
    if let Some(s) = clinic_setting::<HomePreDoseSettings>(c, HOME_PRE_DOSE_SETTINGS)? {
        rules.alcohol.free_hours = Some(s.alcohol_free_hours);
        rules.sedatives.free_hours = Some(s.sedative_free_hours);
    }
    Ok(rules)
}

/// What the patient sends from the pre-dose page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreDoseSubmission {
    pub systolic_mmhg: f64,
    pub diastolic_mmhg: f64,
    pub alcohol_within_interval: bool,
    pub sedatives_within_interval: bool,
    pub ate_within_interval: bool,
    pub drank_within_interval: bool,
    pub sitter_name: String,
    /// Where the sitter's own link goes: an email address or a mobile number.
    pub sitter_contact: String,
    pub agrees_not_to_drive: bool,
}

/// A stored pre-dose screen.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PreDoseScreen {
    pub id: i64,
    pub link_id: i64,
    #[schema(value_type = i64)]
    pub course_id: CourseId,
    pub sitter_name: String,
    pub sitter_contact: Option<String>,
    pub sitter_link_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sitter_confirmed_at: Option<OffsetDateTime>,
    /// `awaiting_sitter`, `cleared` or `refused`.
    pub outcome: String,
    /// Patient-facing reasons, when refused.
    pub refusals: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub submitted_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub reviewed_at: Option<OffsetDateTime>,
    pub reviewed_by: Option<String>,
    pub review_note: Option<String>,
}

const SCREEN_COLS: &str = "id, link_id, course_id, sitter_name, sitter_contact, sitter_link_id, sitter_confirmed_at, outcome, refusals, submitted_at, reviewed_at, reviewed_by, review_note";

fn screen_from(r: &Row) -> Result<PreDoseScreen> {
    Ok(PreDoseScreen {
        id: r.i64("id")?,
        link_id: r.i64("link_id")?,
        course_id: CourseId(r.i64("course_id")?),
        sitter_name: r.text("sitter_name")?,
        sitter_contact: r.opt_text("sitter_contact")?,
        sitter_link_id: r.opt_i64("sitter_link_id")?,
        sitter_confirmed_at: opt_from_ms(r.opt_i64("sitter_confirmed_at")?)?,
        outcome: r.text("outcome")?,
        refusals: from_json(&r.text("refusals")?)?,
        submitted_at: from_ms(r.i64("submitted_at")?)?,
        reviewed_at: opt_from_ms(r.opt_i64("reviewed_at")?)?,
        reviewed_by: r.opt_text("reviewed_by")?,
        review_note: r.opt_text("review_note")?,
    })
}

fn screen_for_link(c: &mut dyn Conn, link: i64) -> Result<Option<PreDoseScreen>> {
    c.query_opt(&format!("SELECT {SCREEN_COLS} FROM pre_dose_screens WHERE link_id = $1"), params![link])?
        .map(|r| screen_from(&r))
        .transpose()
}

/// Where a home dose stands, for the patient's page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum HomeDoseStatus {
    /// The screen has not been answered.
    NotAnswered,
    AwaitingSitter {
        sitter_name: String,
        /// How the sitter's link went out: `Some(true)` sent, `Some(false)` it could not be
        /// sent (the patient must not wait for a confirmation that cannot come), `None` not yet.
        sitter_reached: Option<bool>,
    },
    Cleared,
    Refused {
        reasons: Vec<String>,
    },
    /// The dose is logged; nothing more to do.
    Logged,
}

/// The alert when a sitter's confirmation link could not be sent: the patient is told not to
/// take the dose unless the clinic says it is safe, so the clinic must call them.
pub(crate) fn sitter_not_reached_alert(detail: &str) -> AlertFiring {
    BetweenSessionAlerts::builtin().home_sitter_not_reached.fire(
        "home_sitter_not_reached",
        format!(
            "The sitter's confirmation link for an at-home dose could not be sent ({detail}). The patient was told not to take the dose unless the clinic says it is safe: call them."
        ),
    )
}

/// How the newest reminder of the sitter's link for a pre-dose link went, if one was tried.
fn sitter_delivery(c: &mut dyn Conn, pre_dose_link: i64) -> Result<Option<bool>> {
    c.query_opt(
        "SELECT e.event FROM checkin_events e JOIN checkin_links l ON l.id = e.link_id
         WHERE l.parent_link_id = $1 AND l.purpose = 'sitter' AND e.event IN ('reminder_sent', 'reminder_failed')
         ORDER BY e.at DESC, e.id DESC LIMIT 1",
        params![pre_dose_link],
    )?
    .map(|r| Ok(r.text("event")? == "reminder_sent"))
    .transpose()
}

/// After submitting the screen: its status and, when a sitter must confirm, their new link.
#[derive(Debug, Clone)]
pub struct PreDoseResult {
    pub status: HomeDoseStatus,
    pub sitter_link: Option<IssuedLink>,
}

fn contact_kind(s: &str) -> Option<(Option<String>, Option<String>)> {
    let s = s.trim();
    if s.contains('@') && !s.contains(char::is_whitespace) && s.len() <= 200 {
        Some((Some(s.to_string()), None))
    } else if s.chars().filter(char::is_ascii_digit).count() >= 6
        && s.chars().all(|ch| ch.is_ascii_digit() || " +-()".contains(ch))
        && s.len() <= 30
    {
        Some((None, Some(s.to_string())))
    } else {
        None
    }
}

/// Whether a sitter contact is the patient's own e-mail address or mobile number (compared
/// without case, spaces or punctuation).
fn is_patients_own(contact: &(Option<String>, Option<String>), p: &Patient) -> bool {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let same_email =
        contact.0.as_deref().zip(p.email.as_deref()).is_some_and(|(a, b)| a.eq_ignore_ascii_case(b.trim()));
    let same_phone = contact.1.as_deref().zip(p.phone.as_deref()).is_some_and(|(a, b)| {
        let (a, b) = (digits(a), digits(b));
        // Ignore a country code on one side only: the last ten digits identify the line.
        let tail = |s: &str| s[s.len().saturating_sub(10)..].to_string();
        !a.is_empty() && tail(&a) == tail(&b)
    });
    same_email || same_phone
}

fn refusal_alert(c: &mut dyn Conn, link: &LinkRecord, now: OffsetDateTime, reasons: &[String]) -> Result<()> {
    let firing = BetweenSessionAlerts::builtin()
        .home_pre_dose_refused
        .fire("home_pre_dose_refused", format!("At-home pre-dose screen refused the dose: {}", reasons.join(" ")));
    crate::sessions::raise(c, &link_actor(link.id), now, link.site_id, link.patient_id, None, vec![firing])?;
    Ok(())
}

/// Open urgent alerts for a patient (a positive safety answer, for one).
fn open_urgent_alerts(c: &mut dyn Conn, patient: PatientId) -> Result<i64> {
    Ok(c.query_opt(
        "SELECT count(*) AS n FROM alerts WHERE patient_id = $1 AND severity = 'urgent' AND acknowledged_at IS NULL",
        params![patient.0],
    )?
    .map(|r| r.i64("n"))
    .transpose()?
    .unwrap_or(0))
}

/// Runs the screen over stored answers with the sitter's confirmation as given, and refuses
/// while the patient has an open urgent alert.
fn run_screen_for(
    c: &mut dyn Conn,
    patient: PatientId,
    rules: &PreDoseRules,
    a: &PreDoseSubmission,
    sitter_confirmed: bool,
) -> Result<ScreenOutcome> {
    let outcome = run_screen(rules, a, sitter_confirmed)?;
    if open_urgent_alerts(c, patient)? == 0 {
        return Ok(outcome);
    }
    let mut refusals = match outcome {
        ScreenOutcome::Cleared => vec![],
        ScreenOutcome::Refused { refusals } => refusals,
    };
    refusals.insert(0, home_dosing::open_urgent_alert_refusal(rules));
    Ok(ScreenOutcome::Refused { refusals })
}

/// Runs the screen over stored answers with the sitter's confirmation as given.
fn run_screen(rules: &PreDoseRules, a: &PreDoseSubmission, sitter_confirmed: bool) -> Result<ScreenOutcome> {
    Ok(home_dosing::screen(
        rules,
        &PreDoseAnswers {
            systolic_mmhg: Mmhg(a.systolic_mmhg),
            diastolic_mmhg: Mmhg(a.diastolic_mmhg),
            alcohol_within_interval: a.alcohol_within_interval,
            sedatives_within_interval: a.sedatives_within_interval,
            ate_within_interval: a.ate_within_interval,
            drank_within_interval: a.drank_within_interval,
            sitter_name: a.sitter_name.clone(),
            sitter_confirmed,
            agrees_not_to_drive: a.agrees_not_to_drive,
        },
    )?)
}

fn reasons(o: &ScreenOutcome) -> Vec<String> {
    match o {
        ScreenOutcome::Cleared => vec![],
        ScreenOutcome::Refused { refusals } => refusals.iter().map(|r| r.reason.clone()).collect(),
    }
}

/// Reconciliation inputs for a course.
/// A course's reconciliation, with its dispenses (oldest first) and how many doses are logged.
fn reconciliation_for(c: &mut dyn Conn, course: CourseId) -> Result<(Reconciliation, Vec<Dispense>, usize)> {
    let dispenses: Vec<Dispense> = c
        .query(
            "SELECT dispensed_at, units, unit_strength_mg FROM home_dispenses WHERE course_id = $1 ORDER BY dispensed_at, id",
            params![course.0],
        )?
        .iter()
        .map(|r| {
            Ok(Dispense {
                at: from_ms(r.i64("dispensed_at")?)?,
                units: u32::try_from(r.i64("units")?).map_err(|_| StoreError::Corrupt("units".into()))?,
                unit_strength: Milligrams(r.f64("unit_strength_mg")?),
            })
        })
        .collect::<Result<_>>()?;
    let rows = c.query(
        "SELECT l.taken_at, l.units, l.units_left, s.outcome FROM home_dose_logs l LEFT JOIN pre_dose_screens s ON s.id = l.screen_id
         WHERE l.course_id = $1 ORDER BY l.taken_at, l.id",
        params![course.0],
    )?;
    let mut logs = Vec::new();
    let mut last_count = None;
    for r in &rows {
        logs.push(DoseLog {
            at: from_ms(r.i64("taken_at")?)?,
            units: u32::try_from(r.i64("units")?).map_err(|_| StoreError::Corrupt("units".into()))?,
            screen_cleared: r.opt_text("outcome")?.as_deref() == Some("cleared"),
        });
        if let Some(left) = r.opt_i64("units_left")? {
            last_count = u32::try_from(left).ok();
        }
    }
    let rec = home_dosing::reconcile(&dispenses, &logs, last_count)?;
    Ok((rec, dispenses, logs.len()))
}

/// The at-home programme of one course, for the chart and the dispensing decision.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HomeProgramme {
    #[schema(value_type = i64)]
    pub course_id: CourseId,
    pub screens: Vec<PreDoseScreen>,
    pub reconciliation: Reconciliation,
    pub dispenses: usize,
    /// The latest supply: when, and who dispensed it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_dispensed_at: Option<OffsetDateTime>,
    pub last_dispensed_by: Option<String>,
    pub doses_logged: usize,
    pub missed_checkins: usize,
    pub unreviewed_refusals: usize,
    /// Why a new supply is held (empty: it may be dispensed).
    pub supply_hold: Vec<String>,
    /// The clinic settings the screen still needs (empty when it can run).
    pub missing_settings: Vec<String>,
}

fn programme(c: &mut dyn Conn, co: &Course) -> Result<HomeProgramme> {
    let course = co.id;
    let screens: Vec<PreDoseScreen> = c
        .query(
            &format!(
                "SELECT {SCREEN_COLS} FROM pre_dose_screens WHERE course_id = $1 ORDER BY submitted_at DESC, id DESC"
            ),
            params![course.0],
        )?
        .iter()
        .map(screen_from)
        .collect::<Result<_>>()?;
    let (rec, dispensed, doses_logged) = reconciliation_for(c, course)?;
    let last_dispense = dispensed.last().map_or(0, |d| ms(d.at));
    let latest = c.query_opt(
        "SELECT dispensed_at, dispensed_by FROM home_dispenses WHERE course_id = $1 ORDER BY dispensed_at DESC, id DESC LIMIT 1",
        params![course.0],
    )?;
    let (last_dispensed_at, last_dispensed_by) = match latest {
        Some(r) => (Some(from_ms(r.i64("dispensed_at")?)?), Some(r.text("dispensed_by")?)),
        None => (None, None),
    };
    // Missed since the last supply: the patient is "up to date" once later check-ins are done
    // (a check-in completed after the missed one closed clears it; otherwise nothing could, as
    // the supply it holds is what would move `last_dispense` on).
    let missed_checkins = c
        .query_opt(
            "SELECT count(*) AS n FROM checkin_links m WHERE m.course_id = $1 AND m.expired_at IS NOT NULL AND m.completed_at IS NULL AND m.purpose <> 'sitter' AND m.expires_at > $2
             AND NOT EXISTS (SELECT 1 FROM checkin_links d WHERE d.course_id = m.course_id AND d.purpose <> 'sitter' AND d.completed_at IS NOT NULL AND d.completed_at >= m.expires_at)",
            params![course.0, last_dispense],
        )?
        .map(|r| r.i64("n"))
        .transpose()?
        .unwrap_or(0) as usize;
    let unreviewed_refusals = screens.iter().filter(|s| s.outcome == "refused" && s.reviewed_at.is_none()).count();
    let supply_hold = if dispensed.is_empty() {
        vec![]
    } else {
        let urgent = usize::try_from(open_urgent_alerts(c, co.patient_id)?).unwrap_or(usize::MAX);
        home_dosing::supply_hold(&rec, missed_checkins, unreviewed_refusals, urgent)
    };
    let missing_settings = pre_dose_rules(c)?.missing_settings().into_iter().map(String::from).collect();
    Ok(HomeProgramme {
        course_id: course,
        screens,
        reconciliation: rec,
        dispenses: dispensed.len(),
        last_dispensed_at,
        last_dispensed_by,
        doses_logged,
        missed_checkins,
        unreviewed_refusals,
        supply_hold,
        missing_settings,
    })
}

/// A patient's at-home programmes and question-set answers (the caller has checked access).
pub(crate) fn home_for(c: &mut dyn Conn, patient: PatientId) -> Result<(Vec<HomeProgramme>, Vec<QuestionSetResponse>)> {
    let mut progs = Vec::new();
    for co in crate::courses::courses_for(c, patient)?.iter().filter(|co| co.route.is_home()) {
        progs.push(programme(c, co)?);
    }
    let qs = c
        .query(
            "SELECT id, set_code, answers, flags, completed_at FROM question_set_responses WHERE patient_id = $1 ORDER BY completed_at DESC, id DESC",
            params![patient.0],
        )?
        .iter()
        .map(|r| {
            Ok(QuestionSetResponse {
                id: r.i64("id")?,
                set_code: r.text("set_code")?,
                answers: from_json(&r.text("answers")?)?,
                flags: from_json(&r.text("flags")?)?,
                completed_at: from_ms(r.i64("completed_at")?)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((progs, qs))
}

/// A supply handed to the patient.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDispense {
    pub units: u32,
    pub unit_strength_mg: f64,
}

/// The dose planned for a home session, as the patient is told it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlannedHomeDose {
    pub planned: Milligrams,
    /// The strength of the newest supply handed to the patient, if any.
    pub unit_strength: Option<Milligrams>,
    /// The planned dose in those units, when it divides exactly.
    pub units: Option<u32>,
}

/// The session's planned dose and the strength of the newest supply for the course.
fn plan_and_strength(
    c: &mut dyn Conn,
    course: CourseId,
    session: Option<i64>,
) -> Result<(Option<Milligrams>, Option<Milligrams>)> {
    let planned = match session {
        Some(s) => c
            .query_opt("SELECT planned_dose_mg FROM sessions WHERE id = $1 AND course_id = $2", params![s, course.0])?
            .map(|r| r.opt_f64("planned_dose_mg"))
            .transpose()?
            .flatten()
            .map(Milligrams),
        None => None,
    };
    let strength = c
        .query_opt(
            "SELECT unit_strength_mg FROM home_dispenses WHERE course_id = $1 ORDER BY dispensed_at DESC, id DESC LIMIT 1",
            params![course.0],
        )?
        .map(|r| r.f64("unit_strength_mg"))
        .transpose()?
        .map(Milligrams);
    Ok((planned, strength))
}

/// A dose the patient logs from their page.
/// What logging a home dose found: how it compares with the plan, and whether the clinic was
/// alerted about the difference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DoseLogged {
    pub check: home_dosing::PlannedDoseCheck,
    pub clinic_told: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDoseLog {
    pub units: u32,
    /// Units the patient counts as left after this dose.
    pub units_left: u32,
}

impl Store {
    /// The patient's pre-dose screen. Refused rules complete the link at once (with the reasons
    /// shown and the clinician alerted); otherwise the sitter gets their own link and the dose
    /// waits for their confirmation.
    pub async fn submit_pre_dose(&self, token: &str, a: PreDoseSubmission) -> Result<PreDoseResult> {
        let hash = crate::credentials::token_hash(token);
        let now = self.now();
        self.write(move |c| {
            let link = open_for_write(c, &hash, now)?;
            if link.purpose != LinkPurpose::PreDose {
                return Err(DomainError::Conflict("this link is not a pre-dose screen".into()).into());
            }
            let course = link.course_id.ok_or_else(|| StoreError::Corrupt("pre-dose link without a course".into()))?;
            if screen_for_link(c, link.id)?.is_some() {
                return Err(StoreError::Conflict("this pre-dose screen was already answered".into()));
            }
            let mut v = keta_domain::error::Validator::new();
            let name = a.sitter_name.trim();
            v.check((2..=100).contains(&name.chars().count()), "sitter_name", "give your sitter's name");
            let contact = contact_kind(&a.sitter_contact);
            v.check(contact.is_some(), "sitter_contact", "give your sitter's email address or mobile number, for their own link");
            // The sitter is someone else: their link must not go to the patient.
            let p = patient_of(c, link.patient_id)?;
            v.check(
                !contact.as_ref().is_some_and(|k| is_patients_own(k, &p)),
                "sitter_contact",
                "this is your own address or number: give your sitter's, so they get their own link",
            );
            v.finish()?;
            let rules = pre_dose_rules(c)?;
            // Every rule but the sitter's confirmation, which their own link gives.
            let outcome = run_screen_for(c, link.patient_id, &rules, &a, true)?;
            let actor = link_actor(link.id);
            let refused = reasons(&outcome);
            let status = if refused.is_empty() { "awaiting_sitter" } else { "refused" };
            let (email, phone) = contact.unwrap_or((None, None));
            let id = audit::insert_audited(
                c,
                &actor,
                now,
                "INSERT INTO pre_dose_screens (link_id, patient_id, site_id, course_id, answers, sitter_name, sitter_contact, outcome, refusals, submitted_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                params![
                    link.id, link.patient_id.0, link.site_id.0, course.0, json(&a), name, a.sitter_contact.trim(), status,
                    json(&refused), ms(now)
                ],
                Created { object_type: "pre_dose_screen", patient: link.patient_id, site: link.site_id, fields: &["answers", "sitter_name", "sitter_contact", "outcome"] },
            )?;
            if !refused.is_empty() {
                refusal_alert(c, &link, now, &refused)?;
                finish_link(c, &link, now, "pre_dose_screen", id)?;
                return Ok(PreDoseResult { status: HomeDoseStatus::Refused { reasons: refused }, sitter_link: None });
            }
            let new = NewLink {
                purpose: LinkPurpose::Sitter,
                course_id: link.course_id,
                session_id: link.session_id,
                parent_link_id: Some(link.id),
                item_key: format!("{}:sitter", link.item_key),
                form: "sitter_confirmation".into(),
                form_kind: "sitter".into(),
                opens_at: now,
                expires_at: link.expires_at,
            };
            let (sitter, token) = insert_link(c, &actor, now, &p, &new)?;
            let token = token.ok_or_else(|| StoreError::Conflict("a sitter link was already issued".into()))?;
            c.execute("UPDATE pre_dose_screens SET sitter_link_id = $1 WHERE id = $2", params![sitter.id, id])?;
            event(c, link.id, "screen_awaiting_sitter", now, None)?;
            Ok(PreDoseResult {
                status: HomeDoseStatus::AwaitingSitter { sitter_name: name.to_string(), sitter_reached: None },
                sitter_link: Some(IssuedLink { link: sitter, token, email, phone }),
            })
        })
        .await
    }

    /// The sitter confirms they are present (their own link, single use). The screen is cleared
    /// when every other rule passed.
    pub async fn confirm_sitter(&self, token: &str) -> Result<HomeDoseStatus> {
        let hash = crate::credentials::token_hash(token);
        let now = self.now();
        self.write(move |c| {
            let link = open_for_write(c, &hash, now)?;
            if link.purpose != LinkPurpose::Sitter {
                return Err(DomainError::Conflict("this link is not a sitter confirmation".into()).into());
            }
            let parent =
                link.parent_link_id.ok_or_else(|| StoreError::Corrupt("sitter link without a screen".into()))?;
            let screen = screen_for_link(c, parent)?
                .ok_or_else(|| StoreError::Corrupt("sitter link without a screen".into()))?;
            let answers: PreDoseSubmission = from_json(
                &c.query_opt("SELECT answers FROM pre_dose_screens WHERE id = $1", params![screen.id])?
                    .ok_or_else(|| StoreError::Corrupt("screen".into()))?
                    .text("answers")?,
            )?;
            let rules = pre_dose_rules(c)?;
            let outcome = run_screen_for(c, link.patient_id, &rules, &answers, true)?;
            let refused = reasons(&outcome);
            let status = if refused.is_empty() { "cleared" } else { "refused" };
            c.execute(
                "UPDATE pre_dose_screens SET sitter_confirmed_at = $1, outcome = $2, refusals = $3 WHERE id = $4",
                params![ms(now), status, json(&refused), screen.id],
            )?;
            audit::record(
                c,
                &link_actor(link.id),
                now,
                Entry {
                    action: Action::Update,
                    object_type: "pre_dose_screen",
                    object_id: Some(screen.id.to_string()),
                    patient_id: Some(link.patient_id),
                    site_id: Some(link.site_id),
                    fields: &["sitter_confirmed_at", "outcome"],
                },
            )?;
            finish_link(c, &link, now, "sitter_confirmation", screen.id)?;
            event(c, parent, if refused.is_empty() { "screen_cleared" } else { "screen_refused" }, now, None)?;
            if refused.is_empty() {
                Ok(HomeDoseStatus::Cleared)
            } else {
                let parent_link = crate::checkins::get_link(c, parent)?;
                refusal_alert(c, &parent_link, now, &refused)?;
                Ok(HomeDoseStatus::Refused { reasons: refused })
            }
        })
        .await
    }

    /// Where the dose behind a pre-dose link stands (the patient's page polls this). The token
    /// is the patient's authority, as for every patient-side call.
    pub async fn home_dose_status(&self, token: &str) -> Result<HomeDoseStatus> {
        let hash = crate::credentials::token_hash(token);
        self.read(move |c| {
            let link = crate::checkins::link_by_hash(c, &hash)?
                .ok_or_else(|| StoreError::NotFound("check-in link".into()))?
                .id;
            let logged = c.query_opt("SELECT id FROM home_dose_logs WHERE link_id = $1", params![link])?.is_some();
            if logged {
                return Ok(HomeDoseStatus::Logged);
            }
            Ok(match screen_for_link(c, link)? {
                None => HomeDoseStatus::NotAnswered,
                Some(s) => match s.outcome.as_str() {
                    "cleared" => HomeDoseStatus::Cleared,
                    "refused" => HomeDoseStatus::Refused { reasons: s.refusals },
                    _ => HomeDoseStatus::AwaitingSitter {
                        sitter_name: s.sitter_name,
                        sitter_reached: sitter_delivery(c, link)?,
                    },
                },
            })
        })
        .await
    }

    /// The dose planned for the session behind a pre-dose link, to show the patient before they
    /// log it. `None` when the session has no planned dose.
    pub async fn planned_home_dose(&self, token: &str) -> Result<Option<PlannedHomeDose>> {
        let hash = crate::credentials::token_hash(token);
        self.read(move |c| {
            let Some(link) = crate::checkins::link_by_hash(c, &hash)? else { return Ok(None) };
            let Some(course) = link.course_id else { return Ok(None) };
            let (planned, strength) = plan_and_strength(c, course, link.session_id.map(|s| s.0))?;
            Ok(planned.map(|planned| PlannedHomeDose {
                planned,
                unit_strength: strength,
                units: strength.and_then(|s| home_dosing::planned_units(planned, s)),
            }))
        })
        .await
    }

    /// The patient logs the dose taken after a cleared screen; the pre-dose link is then used.
    /// Returns how the dose compares with the plan and whether the clinic was alerted, so the
    /// patient's page can say what to do.
    pub async fn log_home_dose(&self, token: &str, d: NewDoseLog) -> Result<DoseLogged> {
        let hash = crate::credentials::token_hash(token);
        let now = self.now();
        self.write(move |c| {
            let link = open_for_write(c, &hash, now)?;
            let screen = screen_for_link(c, link.id)?
                .ok_or_else(|| DomainError::Conflict("answer the pre-dose questions first".into()))?;
            if screen.outcome != "cleared" {
                return Err(DomainError::Conflict(
                    "this dose was not cleared: do not take it, and contact the clinic".into(),
                )
                .into());
            }
            let mut v = keta_domain::error::Validator::new();
            // A count, not a clinical limit: a dose above the plan must be logged (and alerted on), never refused.
            v.check((1..=1000).contains(&d.units), "units", "enter how many tablets or troches you took (1-1000)");
            v.check(d.units_left <= 1000, "units_left", "enter how many are left (0-1000)");
            v.finish()?;
            let id = audit::insert_audited(
                c,
                &link_actor(link.id),
                now,
                "INSERT INTO home_dose_logs (patient_id, site_id, course_id, screen_id, link_id, taken_at, units, units_left, logged_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                params![
                    link.patient_id.0, link.site_id.0, screen.course_id.0, screen.id, link.id, ms(now), d.units, d.units_left,
                    ms(now)
                ],
                Created { object_type: "home_dose_log", patient: link.patient_id, site: link.site_id, fields: &["taken_at", "units", "units_left"] },
            )?;
            finish_link(c, &link, now, "home_dose_log", id)?;
            let mut firings = Vec::new();
            // A dose other than the one planned for this session tells the clinician at once.
            let (planned, strength) = plan_and_strength(c, screen.course_id, link.session_id.map(|s| s.0))?;
            let check = home_dosing::check_against_plan(d.units, strength, planned);
            let plan_alert = home_dosing::dose_log_alert(BetweenSessionAlerts::builtin(), check);
            let clinic_told = plan_alert.is_some();
            firings.extend(plan_alert);
            // So does a log that does not reconcile.
            let (rec, ..) = reconciliation_for(c, screen.course_id)?;
            if !rec.is_reconciled() {
                firings.push(BetweenSessionAlerts::builtin().home_dose_log_unreconciled.fire(
                    "home_dose_log_unreconciled",
                    format!(
                        "At-home dose log does not reconcile with what was dispensed: expected {} unit(s) on hand, {} issue(s).",
                        rec.expected_on_hand_units,
                        rec.issues.len()
                    ),
                ));
            }
            if !firings.is_empty() {
                crate::sessions::raise(c, &link_actor(link.id), now, link.site_id, link.patient_id, None, firings)?;
            }
            Ok(DoseLogged { check, clinic_told })
        })
        .await
    }

    /// Records a supply handed to the patient. Held (refused with the reasons) until the patient
    /// is up to date: reconciled log with a count, no missed check-ins, refusals reviewed.
    pub async fn record_dispense(&self, actor: &Actor, course: CourseId, d: NewDispense) -> Result<HomeProgramme> {
        actor.require(Permission::RecordLedger)?;
        let mut v = keta_domain::error::Validator::new();
        v.check((1..=1000).contains(&d.units), "units", "must be 1 to 1000 units");
        keta_domain::plausible::check(
            &mut v,
            "unit_strength_mg",
            keta_domain::plausible::ranges().quantity(Quantity::Mg, d.unit_strength_mg, "the strength of one unit"),
        );
        v.finish()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let co = crate::courses::get_course(c, &actor, course)?;
            // Held to the end: the supply hold is judged and the supply recorded as one step.
            c.query_opt("SELECT id FROM courses WHERE id = $1 FOR UPDATE", params![course.0])?;
            if !co.route.is_home() {
                return Err(DomainError::Conflict(format!("{} courses are not dispensed for home use", co.route.label())).into());
            }
            let before = programme(c, &co)?;
            if !before.supply_hold.is_empty() {
                return Err(DomainError::Conflict(format!(
                    "new supply held until the patient is up to date: {}",
                    before.supply_hold.join("; ")
                ))
                .into());
            }
            audit::insert_audited(
                c,
                &actor,
                now,
                "INSERT INTO home_dispenses (patient_id, site_id, course_id, dispensed_at, units, unit_strength_mg, dispensed_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                params![co.patient_id.0, co.site_id.0, course.0, ms(now), d.units, d.unit_strength_mg, actor.name.as_str()],
                Created { object_type: "home_dispense", patient: co.patient_id, site: co.site_id, fields: &["units", "unit_strength_mg"] },
            )?;
            programme(c, &co)
        })
        .await
    }

    /// A clinician reviews a refused screen (what was done); reviewed refusals no longer hold supply.
    pub async fn review_pre_dose_screen(&self, actor: &Actor, screen: i64, note: String) -> Result<PreDoseScreen> {
        actor.require(Permission::PlanTreatment)?;
        let note = note.trim().to_string();
        if !(3..=2000).contains(&note.chars().count()) {
            return Err(DomainError::field("note", "say what was done (3 to 2000 characters)").into());
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let r = c
                .query_opt(
                    &format!("SELECT {SCREEN_COLS}, patient_id, site_id FROM pre_dose_screens WHERE id = $1"),
                    params![screen],
                )?
                .ok_or_else(|| StoreError::NotFound(format!("pre-dose screen {screen}")))?;
            let s = screen_from(&r)?;
            let (patient, site) = (PatientId(r.i64("patient_id")?), keta_domain::ids::SiteId(r.i64("site_id")?));
            if !actor.may_see(site, patient) {
                return Err(StoreError::NotFound(format!("pre-dose screen {screen}")));
            }
            if s.outcome != "refused" {
                return Err(DomainError::Conflict("only a refused screen needs a review".into()).into());
            }
            if let Some(by) = &s.reviewed_by {
                return Err(StoreError::Conflict(format!("this screen was already reviewed by {by}")));
            }
            // Guarded: of two reviews at once, the second changes nothing and is told who won.
            let changed = c.execute(
                "UPDATE pre_dose_screens SET reviewed_at = $1, reviewed_by = $2, review_note = $3 WHERE id = $4 AND reviewed_at IS NULL",
                params![ms(now), actor.name.as_str(), note.as_str(), screen],
            )?;
            if changed != 1 {
                let by = c
                    .query_opt("SELECT reviewed_by FROM pre_dose_screens WHERE id = $1", params![screen])?
                    .map(|r| r.opt_text("reviewed_by"))
                    .transpose()?
                    .flatten()
                    .unwrap_or_else(|| "someone else".into());
                return Err(StoreError::Conflict(format!("this screen was already reviewed by {by}")));
            }
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "pre_dose_screen",
                    object_id: Some(screen.to_string()),
                    patient_id: Some(patient),
                    site_id: Some(site),
                    fields: &["reviewed_at", "reviewed_by", "review_note"],
                },
            )?;
            // The review is what the refusal's alert asks for, so it closes that alert
            // with the same note (the alerts this screen raised: from its submission until the
            // patient's next screen).
            let next = c
                .query_opt(
                    "SELECT min(submitted_at) AS first_submitted_at FROM pre_dose_screens WHERE patient_id = $1 AND submitted_at > $2",
                    params![patient.0, ms(s.submitted_at)],
                )?
                .map(|r| r.opt_i64("first_submitted_at"))
                .transpose()?
                .flatten()
                .unwrap_or(i64::MAX);
            let open = c
                .query(
                    "SELECT id FROM alerts WHERE patient_id = $1 AND rule = 'home_pre_dose_refused' AND acknowledged_at IS NULL
                     AND raised_at >= $2 AND raised_at < $3",
                    params![patient.0, ms(s.submitted_at), next],
                )?
                .iter()
                .map(|r| r.i64("id"))
                .collect::<Result<Vec<_>>>()?;
            for alert in open {
                c.execute(
                    "UPDATE alerts SET acknowledged_at = $1, acknowledged_by = $2, acknowledgement_note = $3 WHERE id = $4 AND acknowledged_at IS NULL",
                    params![ms(now), actor.name.as_str(), format!("Refused pre-dose screen reviewed: {note}"), alert],
                )?;
                audit::record(
                    c,
                    &actor,
                    now,
                    Entry {
                        action: Action::Update,
                        object_type: "alert",
                        object_id: Some(alert.to_string()),
                        patient_id: Some(patient),
                        site_id: Some(site),
                        fields: &["acknowledged_at", "acknowledged_by", "acknowledgement_note"],
                    },
                )?;
            }
            // As stored (to the millisecond), without reading it back.
            Ok(PreDoseScreen {
                reviewed_at: Some(from_ms(ms(now))?),
                reviewed_by: Some(actor.name.as_str().to_string()),
                review_note: Some(note),
                ..s
            })
        })
        .await
    }

    /// A patient's at-home programme per home course, and their question-set answers.
    pub async fn home_overview(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<(Vec<HomeProgramme>, Vec<QuestionSetResponse>)> {
        self.read_patient_audited(actor, Permission::ViewClinical, patient, "home_programme", move |c, _| {
            home_for(c, patient)
        })
        .await
    }

    /// The pre-dose rules as this clinic runs them (for the patient page's questions).
    pub async fn pre_dose_rules(&self) -> Result<PreDoseRules> {
        self.read(pre_dose_rules).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sitter_contact_is_an_email_or_a_phone() {
        assert_eq!(contact_kind("sam@example.org"), Some((Some("sam@example.org".into()), None)));
        assert_eq!(contact_kind("+1 (555) 010-0199"), Some((None, Some("+1 (555) 010-0199".into()))));
        assert_eq!(contact_kind("Sam"), None);
        assert_eq!(contact_kind("12"), None);
    }

    #[test]
    fn the_patients_own_contact_is_not_a_sitter() {
        let p = Patient {
            id: PatientId(1),
            site_id: keta_domain::ids::SiteId(1),
            mrn: "A-1".into(),
            given_name: "Priya".into(),
            family_name: "F".into(),
            date_of_birth: time::macros::date!(1990 - 01 - 01),
            sex: keta_domain::patient::Sex::Female,
            phone: Some("+1 (555) 010-0199".into()),
            email: Some("Priya.F@example.org".into()),
            indication: keta_domain::patient::Indication::Depression,
            diagnoses: vec![],
            referring_clinician: None,
            latest_weight_kg: None,
        };
        assert!(is_patients_own(&contact_kind("priya.f@EXAMPLE.org").unwrap(), &p));
        assert!(is_patients_own(&contact_kind("555 010 0199").unwrap(), &p));
        assert!(!is_patients_own(&contact_kind("sam@example.org").unwrap(), &p));
        assert!(!is_patients_own(&contact_kind("555 010 0198").unwrap(), &p));
    }

    #[test]
    fn question_set_fields_take_their_question_kind() {
        let set = question_sets::get("urinary_symptoms").expect("urinary set ships");
        let q = &set.questions[0];
        let mut f = BTreeMap::new();
        f.insert(q.id.clone(), "yes".to_string());
        f.insert("unknown".into(), " ".into());
        let a = question_set_answers(set, &f);
        assert_eq!(a.len(), 1);
        assert!(matches!(a.get(&q.id), Some(AnswerValue::YesNo(true)) | Some(AnswerValue::Text(_))));
    }
}
