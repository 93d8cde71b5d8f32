//! Between sessions (issue 6): check-in links, what patients answer through them, the safety
//! answers stored before anything else, the relapse watch, and clinic settings.
//!
//! A link is a capability. Its token is 256 random bits shown once (in the reminder, or to the
//! staff member who asked for it) and kept only as a SHA-256, so a copy of the database opens
//! nothing. Patients have no account: their actions are recorded in the audit trail under the
//! name `patient-link:<id>`, and every step (issued, reminder sent, opened, saved, completed,
//! expired, refused) is also an append-only `checkin_events` row the care team sees.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::alerts::{AlertFiring, AlertSeverity};
use keta_domain::between_alerts::BetweenSessionAlerts;
use keta_domain::checkins::{self, CheckInSchedule, FormKind, ScheduleOverride};
use keta_domain::course::{Course, CourseStatus};
use keta_domain::ids::{CourseId, PatientId, SessionId, SiteId};
use keta_domain::instruments::{self, SafetyFlag};
use keta_domain::outcomes::definition_for;
use keta_domain::patient::Patient;
use keta_domain::patient_links::{self, LinkPurpose, LinkState, LinkTimes, RemoteSafetyPolicy};
use keta_domain::records::{CompletedBy, NewQuestionnaireResponse, QuestionnaireResponse};
use keta_domain::relapse::{self, RelapseSettings};
use keta_domain::session::SessionState;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::audit::{self, Action, Created, Entry};
use crate::conn::{Conn, Row};
use crate::credentials::token_hash;
use crate::error::{Result, StoreError};
use crate::time_codec::{from_json, from_ms, json, ms, opt_from_ms};
use crate::{Actor, SiteScope, Store, params};

// ---------------------------------------------------------------------------------------------
// Links

/// One check-in link as stored (never the token).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LinkRecord {
    pub id: i64,
    pub purpose: LinkPurpose,
    #[schema(value_type = i64)]
    pub patient_id: PatientId,
    #[schema(value_type = i64)]
    pub site_id: SiteId,
    #[schema(value_type = Option<i64>)]
    pub course_id: Option<CourseId>,
    #[schema(value_type = Option<i64>)]
    pub session_id: Option<SessionId>,
    pub parent_link_id: Option<i64>,
    /// The occurrence it answers, e.g. `phq9_weekly:every:3` (stable within the course).
    pub item_key: String,
    /// Instrument code, question-set code, `pre_dose_screen` or `sitter_confirmation`.
    pub form: String,
    pub form_kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub opens_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_opened_at: Option<OffsetDateTime>,
    /// Answers saved so far ("finish later"), as the page sent them.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<serde_json::Value>,
    /// When those answers were last saved (cleared with them when the link is completed).
    #[serde(with = "time::serde::rfc3339::option")]
    pub progress_saved_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expired_at: Option<OffsetDateTime>,
    /// What completing it produced: `questionnaire_response`, `question_set_response`, ...
    pub result_kind: Option<String>,
    pub result_id: Option<i64>,
}

impl LinkRecord {
    pub fn times(&self) -> LinkTimes {
        LinkTimes {
            opens_at: self.opens_at,
            expires_at: self.expires_at,
            completed_at: self.completed_at,
            expired_at: self.expired_at,
        }
    }
    pub fn state(&self, now: OffsetDateTime) -> LinkState {
        patient_links::state(&self.times(), now)
    }
}

const LINK_COLS: &str = "id, purpose, patient_id, site_id, course_id, session_id, parent_link_id, item_key, form, form_kind, opens_at, expires_at, created_at, created_by, first_opened_at, progress, progress_saved_at, completed_at, expired_at, result_kind, result_id";

fn link_from(r: &Row) -> Result<LinkRecord> {
    Ok(LinkRecord {
        id: r.i64("id")?,
        purpose: LinkPurpose::parse(&r.text("purpose")?).ok_or_else(|| StoreError::Corrupt("link purpose".into()))?,
        patient_id: PatientId(r.i64("patient_id")?),
        site_id: SiteId(r.i64("site_id")?),
        course_id: r.opt_i64("course_id")?.map(CourseId),
        session_id: r.opt_i64("session_id")?.map(SessionId),
        parent_link_id: r.opt_i64("parent_link_id")?,
        item_key: r.text("item_key")?,
        form: r.text("form")?,
        form_kind: r.text("form_kind")?,
        opens_at: from_ms(r.i64("opens_at")?)?,
        expires_at: from_ms(r.i64("expires_at")?)?,
        created_at: from_ms(r.i64("created_at")?)?,
        created_by: r.text("created_by")?,
        first_opened_at: opt_from_ms(r.opt_i64("first_opened_at")?)?,
        progress: r.opt_text("progress")?.map(|t| from_json(&t)).transpose()?,
        progress_saved_at: opt_from_ms(r.opt_i64("progress_saved_at")?)?,
        completed_at: opt_from_ms(r.opt_i64("completed_at")?)?,
        expired_at: opt_from_ms(r.opt_i64("expired_at")?)?,
        result_kind: r.opt_text("result_kind")?,
        result_id: r.opt_i64("result_id")?,
    })
}

/// A new token and its hash. The token is 32 bytes from the OS-seeded CSPRNG.
fn new_token() -> (String, String) {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    let token = URL_SAFE_NO_PAD.encode(b);
    let hash = token_hash(&token);
    (token, hash)
}

/// A freshly issued link: the only moment its token exists outside the patient's message.
#[derive(Debug, Clone)]
pub struct IssuedLink {
    pub link: LinkRecord,
    pub token: String,
    /// Where a reminder can go (the patient's, or for a sitter link the sitter's contact).
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub purpose: LinkPurpose,
    pub course_id: Option<CourseId>,
    pub session_id: Option<SessionId>,
    pub parent_link_id: Option<i64>,
    pub item_key: String,
    pub form: String,
    pub form_kind: String,
    pub opens_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// The audit actor for something a patient (or their sitter) did through link `id`. It is never
/// passed to an operation that checks permissions: the token was the authorisation.
pub(crate) fn link_actor(id: i64) -> Actor {
    Actor { name: format!("patient-link:{id}"), scope: SiteScope::All, role: None, user_id: None, break_glass: vec![] }
}

pub(crate) fn event(c: &mut dyn Conn, link: i64, what: &str, at: OffsetDateTime, detail: Option<&str>) -> Result<()> {
    c.execute(
        "INSERT INTO checkin_events (link_id, event, at, detail) VALUES ($1, $2, $3, $4)",
        params![link, what, ms(at), detail],
    )?;
    Ok(())
}

/// The audit entry for a change to (or a visit of) a link, in the caller's transaction.
fn audit_link(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    link: &LinkRecord,
    action: Action,
    fields: &[&str],
) -> Result<()> {
    audit::record(
        c,
        actor,
        now,
        Entry {
            action,
            object_type: "checkin_link",
            object_id: Some(link.id.to_string()),
            patient_id: Some(link.patient_id),
            site_id: Some(link.site_id),
            fields,
        },
    )
}

/// Inserts a link (or returns the existing one for the same occurrence, with no token).
pub(crate) fn insert_link(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    p: &Patient,
    new: &NewLink,
) -> Result<(LinkRecord, Option<String>)> {
    if new.expires_at <= new.opens_at {
        return Err(DomainError::field("expires_at", "a link must expire after it opens").into());
    }
    // `course_id = $2` or `IS NULL`, not `IS NOT DISTINCT FROM`: PostgreSQL cannot look that up
    // in the occurrence index and would read every link the patient ever had, per due item.
    let existing = match new.course_id {
        Some(course) => c.query_opt(
            &format!(
                "SELECT {LINK_COLS} FROM checkin_links WHERE patient_id = $1 AND course_id = $2 AND item_key = $3 AND purpose = $4"
            ),
            params![p.id.0, course.0, new.item_key.as_str(), new.purpose.as_str()],
        )?,
        None => c.query_opt(
            &format!(
                "SELECT {LINK_COLS} FROM checkin_links WHERE patient_id = $1 AND course_id IS NULL AND item_key = $2 AND purpose = $3"
            ),
            params![p.id.0, new.item_key.as_str(), new.purpose.as_str()],
        )?,
    };
    if let Some(existing) = existing {
        return Ok((link_from(&existing)?, None));
    }
    let (token, hash) = new_token();
    let id = c.insert(
        "INSERT INTO checkin_links (token_hash, purpose, patient_id, site_id, course_id, session_id, parent_link_id, item_key, form, form_kind, opens_at, expires_at, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        params![
            hash, new.purpose.as_str(), p.id.0, p.site_id.0, new.course_id.map(|x| x.0), new.session_id.map(|x| x.0),
            new.parent_link_id, new.item_key.as_str(), new.form.as_str(), new.form_kind.as_str(), ms(new.opens_at),
            ms(new.expires_at), ms(now), actor.name.as_str()
        ],
    )?;
    event(c, id, "issued", now, None)?;
    let link = get_link(c, id)?;
    audit_link(c, actor, now, &link, Action::Create, &["purpose", "form", "opens_at", "expires_at"])?;
    Ok((link, Some(token)))
}

pub(crate) fn get_link(c: &mut dyn Conn, id: i64) -> Result<LinkRecord> {
    let r = c
        .query_opt(&format!("SELECT {LINK_COLS} FROM checkin_links WHERE id = $1"), params![id])?
        .ok_or_else(|| StoreError::NotFound(format!("check-in link {id}")))?;
    link_from(&r)
}

pub(crate) fn link_by_hash(c: &mut dyn Conn, hash: &str) -> Result<Option<LinkRecord>> {
    c.query_opt(&format!("SELECT {LINK_COLS} FROM checkin_links WHERE token_hash = $1"), params![hash])?
        .map(|r| link_from(&r))
        .transpose()
}

pub(crate) fn links_for(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<LinkRecord>> {
    c.query(
        &format!("SELECT {LINK_COLS} FROM checkin_links WHERE patient_id = $1 ORDER BY opens_at DESC, id DESC"),
        params![patient.0],
    )?
    .iter()
    .map(link_from)
    .collect()
}

/// One step in a link's life, for the care team.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LinkEvent {
    pub link_id: i64,
    pub event: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub detail: Option<String>,
}

fn events_for(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<LinkEvent>> {
    c.query(
        "SELECT e.link_id, e.event, e.at, e.detail FROM checkin_events e JOIN checkin_links l ON l.id = e.link_id
         WHERE l.patient_id = $1 ORDER BY e.at DESC, e.id DESC LIMIT 500",
        params![patient.0],
    )?
    .iter()
    .map(|r| {
        Ok(LinkEvent {
            link_id: r.i64("link_id")?,
            event: r.text("event")?,
            at: from_ms(r.i64("at")?)?,
            detail: r.opt_text("detail")?,
        })
    })
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Schedules

/// A course's days at the schedule's local hour on the site's clock: periodic check-ins open
/// at that time of day wherever the clinic is, before and after a daylight-saving change.
struct SiteCourseDays<'a> {
    zone: &'a jiff::tz::TimeZone,
    start: time::Date,
    hour: u8,
}

impl checkins::CourseDays for SiteCourseDays<'_> {
    fn day(&self, d: i64) -> OffsetDateTime {
        let date = self.start.checked_add(Duration::days(d)).unwrap_or(self.start);
        crate::site_time::at_local(self.zone, date, self.hour, 0)
    }
}

/// A course's latest schedule change: what, who and when (the reason is in `change`).
#[derive(Debug, Clone, PartialEq)]
pub struct OverrideInfo {
    pub course_id: CourseId,
    pub change: ScheduleOverride,
    pub set_by: String,
    pub set_at: OffsetDateTime,
}

pub(crate) fn latest_override_info(c: &mut dyn Conn, course: CourseId) -> Result<Option<OverrideInfo>> {
    c.query_opt(
        "SELECT override_json, set_by, set_at FROM checkin_overrides WHERE course_id = $1 ORDER BY id DESC LIMIT 1",
        params![course.0],
    )?
    .map(|r| {
        Ok(OverrideInfo {
            course_id: course,
            change: from_json(&r.text("override_json")?)?,
            set_by: r.text("set_by")?,
            set_at: from_ms(r.i64("set_at")?)?,
        })
    })
    .transpose()
}

fn latest_override(c: &mut dyn Conn, course: CourseId) -> Result<Option<ScheduleOverride>> {
    Ok(latest_override_info(c, course)?.map(|i| i.change))
}

/// The schedule a course follows: the route's default with the clinician's latest change.
pub(crate) fn schedule_for(c: &mut dyn Conn, course: &Course) -> Result<Option<CheckInSchedule>> {
    let Some(base) = checkins::schedule_for_route(course.route) else { return Ok(None) };
    Ok(Some(match latest_override(c, course.id)? {
        Some(o) => checkins::apply_override(base, &o)?,
        None => base.clone(),
    }))
}

fn schedule_session_times(
    sessions: &[keta_domain::session::TreatmentSession],
    course: CourseId,
) -> Vec<OffsetDateTime> {
    sessions
        .iter()
        .filter(|s| s.course_id == course && s.state != SessionState::Stopped)
        .map(|s| s.scheduled_for)
        .collect()
}

fn session_for_item(
    sessions: &[keta_domain::session::TreatmentSession],
    course: CourseId,
    at: Option<OffsetDateTime>,
) -> Option<SessionId> {
    let at = at?;
    sessions.iter().find(|s| s.course_id == course && s.scheduled_for == at).map(|s| s.id)
}

// ---------------------------------------------------------------------------------------------
// Settings

/// What a site tells its patients between sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientContactSettings {
    /// Shown with the site's crisis line when a safety answer is positive.
    pub crisis_instructions: String,
    /// The clinic's phone number for patients (shown on refused links and in the patient view).
    #[serde(default)]
    pub clinic_phone: Option<String>,
}

impl PatientContactSettings {
    pub fn validate(&self) -> std::result::Result<(), DomainError> {
        let mut v = keta_domain::error::Validator::new();
        let n = self.crisis_instructions.trim().chars().count();
        v.check((20..=2000).contains(&n), "crisis_instructions", "write between 20 and 2000 characters");
        if let Some(p) = &self.clinic_phone {
            v.check(
                (3..=40).contains(&p.trim().len()) && !p.contains(['\r', '\n']),
                "clinic_phone",
                "give a phone number of 3 to 40 characters",
            );
        }
        v.finish()
    }
}

/// What the phone page shows a patient of a site.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SiteForPatients {
    pub site_name: String,
    pub time_zone: String,
    pub crisis_line: String,
    pub crisis_instructions: String,
    pub clinic_phone: Option<String>,
}

fn site_for_patients(c: &mut dyn Conn, site: SiteId) -> Result<SiteForPatients> {
    let s = crate::sites::get_site(c, site)?;
    let row = c.query_opt(
        "SELECT crisis_instructions, clinic_phone FROM site_patient_settings WHERE site_id = $1",
        params![site.0],
    )?;
    let (crisis_instructions, clinic_phone) = match row {
        Some(r) => (r.text("crisis_instructions")?, r.opt_text("clinic_phone")?),
        None => (RemoteSafetyPolicy::builtin().default_crisis_instructions.clone(), None),
    };
    Ok(SiteForPatients {
        site_name: s.name,
        time_zone: s.time_zone,
        crisis_line: s.crisis_line,
        crisis_instructions,
        clinic_phone,
    })
}

/// Keys of `clinic_settings`.
pub const RELAPSE_SETTINGS: &str = "relapse_watch";
pub const HOME_PRE_DOSE_SETTINGS: &str = "home_pre_dose";

pub(crate) fn clinic_setting<T: serde::de::DeserializeOwned>(c: &mut dyn Conn, key: &str) -> Result<Option<T>> {
    c.query_opt("SELECT value FROM clinic_settings WHERE key = $1", params![key])?
        .map(|r| from_json(&r.text("value")?))
        .transpose()
}

pub(crate) fn relapse_settings(c: &mut dyn Conn) -> Result<RelapseSettings> {
    Ok(clinic_setting(c, RELAPSE_SETTINGS)?.unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Relapse watch

/// After a scored response: if the course's watch now flags a relapse that no alert has
/// reported yet, raise a review alert suggesting the next maintenance session be brought forward.
pub(crate) fn relapse_check(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    p: &Patient,
    r: &QuestionnaireResponse,
) -> Result<()> {
    let (Some(course), Some(_total)) = (r.course_id, r.score.total) else { return Ok(()) };
    let Some(def) = definition_for(&r.instrument) else { return Ok(()) };
    if def.response.is_none() {
        return Ok(());
    }
    // The clinic's threshold is set on PHQ-9 totals (the API validates it against PHQ-9); other
    // instruments use the default, loss of response.
    let settings = if r.instrument == RelapseSettings::INSTRUMENT {
        match relapse_settings(c) {
            Ok(s) => s,
            Err(e) => {
                // A watch that cannot run must never lose the patient's answers.
                tracing::warn!(error = %e, "relapse watch skipped: the clinic's relapse setting cannot be read");
                return Ok(());
            }
        }
    } else {
        RelapseSettings::default()
    };
    // A maintenance course is judged against the induction it continues, as on the chart.
    let responses = crate::questionnaires::responses_for(c, p.id)?;
    let courses = crate::courses::courses_for(c, p.id)?;
    let Some(judged) = keta_domain::outcomes::judge_in_chart(def, &courses, course, &responses) else { return Ok(()) };
    let points = judged.series.points;
    let sessions = crate::sessions::sessions_for_patient(c, p.id)?;
    // The last session given and the next one planned, as on the chart.
    let (last, next) = relapse::last_and_next(&sessions, course, now);
    let w = match relapse::watch(def, &points, &settings, last, next, now, &crate::site_time::calendar(c, p.site_id)?) {
        Ok(Some(w)) => w,
        Ok(None) => return Ok(()),
        Err(e) => {
            // A watch that cannot run must never lose the patient's answers.
            tracing::warn!(error = %e, instrument = %r.instrument, "relapse watch skipped");
            return Ok(());
        }
    };
    let Some(flag) = w.flag else { return Ok(()) };
    if flag.relapse_at != r.completed_at {
        return Ok(()); // Reported when that score came in.
    }
    let firing =
        BetweenSessionAlerts::builtin().relapse_watch.fire(format!("relapse_watch_{}", r.instrument), flag.message);
    crate::sessions::raise(c, actor, now, p.site_id, p.id, None, vec![firing])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The patient's side

/// What the phone page needs to show an open link.
#[derive(Debug, Clone)]
pub struct OpenedLink {
    pub link: LinkRecord,
    pub site: SiteForPatients,
    pub state: LinkState,
}

/// Outcome of looking a token up.
#[derive(Debug, Clone)]
pub enum LinkLookup {
    /// No such link (or a malformed token).
    Unknown,
    /// Known; `state` says whether it can be answered now.
    Found(Box<OpenedLink>),
}

/// The answers a phone page sends: instrument answers by position, or question-set answers by id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkAnswers {
    #[serde(default)]
    pub items: Vec<Option<i32>>,
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
}

/// What completing a check-in produced.
#[derive(Debug, Clone)]
pub enum Completed {
    Instrument(Box<QuestionnaireResponse>),
    QuestionSet { id: i64, flags: Vec<String> },
}

impl Store {
    /// Looks a token up and records the visit: `opened` for an open link, `refused_used`,
    /// `refused_expired` or `refused_early` otherwise (an expiry noticed here is recorded too).
    pub async fn open_link(&self, token: &str) -> Result<LinkLookup> {
        if !patient_links::is_well_formed_token(token) {
            return Ok(LinkLookup::Unknown);
        }
        let hash = token_hash(token);
        let now = self.now();
        self.write(move |c| {
            let Some(link) = link_by_hash_for_update(c, &hash)? else { return Ok(LinkLookup::Unknown) };
            let state = link.state(now);
            let actor = link_actor(link.id);
            let what = match state {
                LinkState::Open => "opened",
                LinkState::Completed { .. } => "refused_used",
                LinkState::Expired { .. } => "refused_expired",
                LinkState::NotYetOpen { .. } => "refused_early",
            };
            if matches!(state, LinkState::Expired { .. }) && link.expired_at.is_none() {
                mark_expired(c, &link, now)?;
            }
            event(c, link.id, what, now, None)?;
            if state == LinkState::Open && link.first_opened_at.is_none() {
                c.execute("UPDATE checkin_links SET first_opened_at = $1 WHERE id = $2", params![ms(now), link.id])?;
            }
            audit_link(c, &actor, now, &link, Action::Read, &[])?;
            let site = site_for_patients(c, link.site_id)?;
            let link = get_link(c, link.id)?;
            Ok(LinkLookup::Found(Box::new(OpenedLink { link, site, state })))
        })
        .await
    }

    /// Looks a token up without recording a visit (a form submission: what it does is
    /// recorded by the operation it leads to).
    pub async fn peek_link(&self, token: &str) -> Result<LinkLookup> {
        if !patient_links::is_well_formed_token(token) {
            return Ok(LinkLookup::Unknown);
        }
        let hash = token_hash(token);
        let now = self.now();
        self.read(move |c| {
            let Some(link) = link_by_hash(c, &hash)? else { return Ok(LinkLookup::Unknown) };
            let state = link.state(now);
            let site = site_for_patients(c, link.site_id)?;
            Ok(LinkLookup::Found(Box::new(OpenedLink { link, site, state })))
        })
        .await
    }

    /// Stores positive safety answers sent through a link (open, or closed after its form was
    /// shown: see below), in a transaction of their own, before the rest of the submission is
    /// looked at. Each flag is stored once per link; its urgent alert is raised in the same
    /// transaction. Returns whether any safety answer is stored for this link (including earlier
    /// saves), so the page keeps showing the crisis instructions.
    pub async fn record_safety_answers(&self, token: &str, answers: Vec<Option<i32>>) -> Result<bool> {
        let hash = token_hash(token);
        let now = self.now();
        self.write(move |c| {
            let link =
                link_by_hash_for_update(c, &hash)?.ok_or_else(|| StoreError::NotFound("check-in link".into()))?;
            // Once its form has been shown, a link takes safety answers whatever its state: a
            // page answered after the window closed, or sent again after it was completed (back
            // button, item 9 changed), must still reach the care team. Only the rest is refused.
            let form_was_shown = match link.state(now) {
                LinkState::Open | LinkState::Completed { .. } => true,
                LinkState::Expired { .. } => link.first_opened_at.is_some(),
                LinkState::NotYetOpen { .. } => false,
            };
            if link.form_kind != "instrument" || !form_was_shown {
                return Ok(false);
            }
            let inst = instruments::catalog()
                .get(&link.form)
                .ok_or_else(|| StoreError::Corrupt(format!("link {} names unknown instrument", link.id)))?;
            let flags = instruments::partial_safety_flags(inst, &answers);
            store_safety(c, &link, inst, flags, now)
        })
        .await
    }

    /// What a site's patients are shown (name, time zone, crisis line and instructions).
    pub async fn link_site_for_patients(&self, site: SiteId) -> Result<SiteForPatients> {
        self.read(move |c| site_for_patients(c, site)).await
    }

    /// Whether a safety answer is stored for a link.
    pub async fn link_has_safety_answers(&self, token: &str) -> Result<bool> {
        let hash = token_hash(token);
        self.read(move |c| match link_by_hash(c, &hash)? {
            Some(link) => Ok(!stored_safety_codes(c, link.id)?.is_empty()),
            None => Ok(false),
        })
        .await
    }

    /// The instrument an open or closed link asks for (`None`: not an instrument, or no such link).
    pub async fn link_instrument(&self, token: &str) -> Result<Option<String>> {
        if !patient_links::is_well_formed_token(token) {
            return Ok(None);
        }
        let hash = token_hash(token);
        self.read(move |c| Ok(link_by_hash(c, &hash)?.filter(|l| l.form_kind == "instrument").map(|l| l.form))).await
    }

    /// Saves answers so far ("finish later"). The link stays open.
    pub async fn save_link_progress(&self, token: &str, answers: LinkAnswers) -> Result<LinkRecord> {
        let hash = token_hash(token);
        let now = self.now();
        self.write(move |c| {
            let link = open_for_write(c, &hash, now)?;
            c.execute(
                "UPDATE checkin_links SET progress = $1, progress_saved_at = $2 WHERE id = $3",
                params![json(&answers), ms(now), link.id],
            )?;
            event(c, link.id, "saved", now, None)?;
            audit_link(c, &link_actor(link.id), now, &link, Action::Update, &["progress"])?;
            get_link(c, link.id)
        })
        .await
    }

    /// Completes an instrument or question-set check-in. Invalid answers are refused with field
    /// errors and change nothing (the caller saves progress first so nothing is lost).
    pub async fn complete_checkin(&self, token: &str, answers: LinkAnswers) -> Result<Completed> {
        let hash = token_hash(token);
        let now = self.now();
        self.write(move |c| {
            let link = open_for_write(c, &hash, now)?;
            let actor = link_actor(link.id);
            let p = patient_of(c, link.patient_id)?;
            let (kind, id, out) = match link.form_kind.as_str() {
                "instrument" => {
                    let inst = instruments::catalog()
                        .get(&link.form)
                        .ok_or_else(|| StoreError::Corrupt(format!("link {} names unknown instrument", link.id)))?;
                    let score = instruments::score(inst, &answers.items)?;
                    let new = NewQuestionnaireResponse {
                        instrument: inst.code.clone(),
                        answers: answers.items.clone(),
                        course_id: link.course_id,
                        session_id: None,
                        completed_at: Some(now),
                        completed_by: CompletedBy::Patient,
                    };
                    // Safety answers already stored from this link (record_safety_answers) are not
                    // raised twice; any the complete form adds (a C-SSRS category) are stored now.
                    store_safety(c, &link, inst, score.safety_flags.clone(), now)?;
                    let r = crate::questionnaires::insert_response(c, &actor, now, &p, new, score, now)?;
                    ("questionnaire_response", r.id.0, Completed::Instrument(Box::new(r)))
                }
                "question_set" => {
                    let (id, flags) = crate::home::insert_question_set(c, &actor, now, &p, &link, &answers)?;
                    ("question_set_response", id, Completed::QuestionSet { id, flags })
                }
                other => {
                    return Err(DomainError::Conflict(format!("a {other} link is completed on its own page")).into());
                }
            };
            finish_link(c, &link, now, kind, id)?;
            Ok(out)
        })
        .await
    }

    /// The patient's own view, read through a link they hold (open or just completed).
    pub async fn patient_view_by_token(&self, token: &str) -> Result<Option<PatientView>> {
        if !patient_links::is_well_formed_token(token) {
            return Ok(None);
        }
        let hash = token_hash(token);
        let now = self.now();
        let out = self
            .read(move |c| {
                let Some(link) = link_by_hash(c, &hash)? else { return Ok(None) };
                // A used link shows the view for a day after completion; then it is just used.
                let fresh = match link.state(now) {
                    LinkState::Open => true,
                    LinkState::Completed { at } => now - at < Duration::hours(24),
                    _ => false,
                };
                if !fresh {
                    return Ok(None);
                }
                let p = patient_of(c, link.patient_id)?;
                let responses = crate::questionnaires::responses_for(c, p.id)?;
                let sessions = crate::sessions::sessions_for_patient(c, p.id)?;
                let courses = crate::courses::courses_for(c, p.id)?;
                let site = site_for_patients(c, p.site_id)?;
                Ok(Some((
                    link.id,
                    PatientView { patient_id: p.id, given_name: p.given_name, responses, sessions, courses, site },
                )))
            })
            .await?;
        let Some((link_id, view)) = out else { return Ok(None) };
        self.audit_read(&link_actor(link_id), "patient_view", Some(link_id.to_string()), Some(view.patient_id)).await?;
        Ok(Some(view))
    }
}

/// What a patient sees of their own record.
#[derive(Debug, Clone)]
pub struct PatientView {
    pub patient_id: PatientId,
    pub given_name: String,
    pub responses: Vec<QuestionnaireResponse>,
    pub sessions: Vec<keta_domain::session::TreatmentSession>,
    /// For judging each score against its course's baseline, as the chart does.
    pub courses: Vec<keta_domain::course::Course>,
    pub site: SiteForPatients,
}

pub(crate) fn patient_of(c: &mut dyn Conn, id: PatientId) -> Result<Patient> {
    crate::patients::get_patient(c, &Actor::system(), id)
}

/// The link behind `hash` when it can be answered now; otherwise a conflict saying why.
/// The link behind a token, its row held until the transaction ends: every use of a link
/// (progress, completion, a screen, a sitter's confirmation, a dose log) is judged against
/// its state and changes it as one step, one use at a time.
fn link_by_hash_for_update(c: &mut dyn Conn, hash: &str) -> Result<Option<LinkRecord>> {
    c.query_opt(&format!("SELECT {LINK_COLS} FROM checkin_links WHERE token_hash = $1 FOR UPDATE"), params![hash])?
        .map(|r| link_from(&r))
        .transpose()
}

fn get_link_for_update(c: &mut dyn Conn, id: i64) -> Result<LinkRecord> {
    let r = c
        .query_opt(&format!("SELECT {LINK_COLS} FROM checkin_links WHERE id = $1 FOR UPDATE"), params![id])?
        .ok_or_else(|| StoreError::NotFound(format!("check-in link {id}")))?;
    link_from(&r)
}

pub(crate) fn open_for_write(c: &mut dyn Conn, hash: &str, now: OffsetDateTime) -> Result<LinkRecord> {
    let link = link_by_hash_for_update(c, hash)?.ok_or_else(|| StoreError::NotFound("check-in link".into()))?;
    match link.state(now) {
        LinkState::Open => Ok(link),
        LinkState::Completed { .. } => Err(StoreError::Conflict("this check-in was already completed".into())),
        LinkState::Expired { .. } => Err(StoreError::Conflict("this check-in link has expired".into())),
        LinkState::NotYetOpen { .. } => Err(StoreError::Conflict("this check-in is not open yet".into())),
    }
}

pub(crate) fn finish_link(c: &mut dyn Conn, link: &LinkRecord, now: OffsetDateTime, kind: &str, id: i64) -> Result<()> {
    let n = c.execute(
        "UPDATE checkin_links SET completed_at = $1, result_kind = $2, result_id = $3, progress = NULL, progress_saved_at = NULL WHERE id = $4 AND completed_at IS NULL",
        params![ms(now), kind, id, link.id],
    )?;
    if n != 1 {
        return Err(StoreError::Conflict("this check-in was already completed".into()));
    }
    event(c, link.id, "completed", now, None)?;
    audit_link(c, &link_actor(link.id), now, link, Action::Update, &["completed_at", "result_kind", "result_id"])
}

/// The flag codes already stored for a link.
fn stored_safety_codes(c: &mut dyn Conn, link: i64) -> Result<std::collections::BTreeSet<String>> {
    c.query("SELECT flag_code FROM safety_answers WHERE link_id = $1", params![link])?
        .iter()
        .map(|r| r.text("flag_code"))
        .collect()
}

/// Stores each new positive safety answer of a link with its alert (once per flag and link).
/// Returns whether any is stored for the link now, earlier saves included.
fn store_safety(
    c: &mut dyn Conn,
    link: &LinkRecord,
    inst: &instruments::Instrument,
    flags: Vec<SafetyFlag>,
    now: OffsetDateTime,
) -> Result<bool> {
    let policy = RemoteSafetyPolicy::builtin();
    let actor = link_actor(link.id);
    let mut stored = stored_safety_codes(c, link.id)?;
    for f in &flags {
        if stored.contains(&f.code) {
            continue;
        }
        let firing = AlertFiring {
            rule: format!("{}_{}", inst.code, f.code),
            severity: if f.urgent || policy.urgent_from_phone { AlertSeverity::Urgent } else { AlertSeverity::Warning },
            message: format!("{} (answered by the patient from their phone): {}", inst.short_name, f.message),
            source: format!("{}; between sessions: {}", inst.source, policy.source),
        };
        let alerts = crate::sessions::raise(c, &actor, now, link.site_id, link.patient_id, None, vec![firing])?;
        let alert = alerts.into_iter().next().ok_or_else(|| StoreError::Backend("alert not raised".into()))?;
        audit::insert_audited(
            c,
            &actor,
            now,
            "INSERT INTO safety_answers (link_id, patient_id, site_id, instrument, item, answer, flag_code, answered_at, alert_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            params![
                link.id, link.patient_id.0, link.site_id.0, inst.code.as_str(), f.item,
                f.value, f.code.as_str(), ms(now), alert.id.0
            ],
            Created { object_type: "safety_answer", patient: link.patient_id, site: link.site_id, fields: &["instrument", "item", "answer"] },
        )?;
        event(c, link.id, "safety_answer", now, Some(&f.code))?;
        stored.insert(f.code.clone());
    }
    Ok(!stored.is_empty())
}

fn mark_expired(c: &mut dyn Conn, link: &LinkRecord, now: OffsetDateTime) -> Result<()> {
    let changed = c.execute(
        "UPDATE checkin_links SET expired_at = $1 WHERE id = $2 AND expired_at IS NULL AND completed_at IS NULL",
        params![ms(now), link.id],
    )?;
    if changed == 0 {
        return Ok(()); // Recorded already (a sweep and a page visit at once) or completed.
    }
    event(c, link.id, "expired", now, None)?;
    audit_link(c, &Actor::system(), now, link, Action::Update, &["expired_at"])?;
    // At home, a missed check-in is a safety matter: the clinician is told (issue 6). Not for a
    // sitter's link: its pre-dose screen closes with it and is reported as the patient's.
    if let Some(course) = link.course_id
        && link.purpose != LinkPurpose::Sitter
    {
        let route = c.query_opt("SELECT route FROM courses WHERE id = $1", params![course.0])?;
        let at_home = route
            .map(|r| r.text("route"))
            .transpose()?
            .and_then(|r| keta_domain::course::Route::parse(&r))
            .is_some_and(keta_domain::course::Route::is_home);
        if at_home {
            let firing = BetweenSessionAlerts::builtin().home_checkin_missed.fire(
                "home_checkin_missed",
                format!(
                    "At-home programme: the patient did not complete the {} check-in ({}) before it closed.",
                    link.form, link.item_key
                ),
            );
            crate::sessions::raise(c, &Actor::system(), now, link.site_id, link.patient_id, None, vec![firing])?;
        }
    }
    Ok(())
}

/// A patient's links, their events and safety answers (the caller has checked access).
pub(crate) fn overview(c: &mut dyn Conn, patient: PatientId) -> Result<CheckinOverview> {
    let safety_answers = c
        .query(
            "SELECT id, link_id, instrument, item, answer, flag_code, answered_at, alert_id FROM safety_answers WHERE patient_id = $1 ORDER BY answered_at DESC, id DESC",
            params![patient.0],
        )?
        .iter()
        .map(|r| {
            Ok(SafetyAnswer {
                id: r.i64("id")?,
                link_id: r.i64("link_id")?,
                instrument: r.text("instrument")?,
                item: r.i64("item")?,
                answer: r.i64("answer")?,
                flag_code: r.text("flag_code")?,
                answered_at: from_ms(r.i64("answered_at")?)?,
                alert_id: r.i64("alert_id")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CheckinOverview { links: links_for(c, patient)?, events: events_for(c, patient)?, safety_answers })
}

/// Everything the chart's between-sessions panels show, read in one snapshot.
#[derive(Debug, Clone)]
pub struct BetweenSessions {
    pub checkins: CheckinOverview,
    pub programmes: Vec<crate::home::HomeProgramme>,
    pub question_sets: Vec<crate::home::QuestionSetResponse>,
    pub relapse_settings: RelapseSettings,
    /// The latest check-in schedule change of each of the patient's courses that has one.
    pub schedule_changes: Vec<OverrideInfo>,
}

// ---------------------------------------------------------------------------------------------
// Staff and system operations

/// How many times the sweep tries to send a link's reminder, and how long it waits between tries
/// (product settings, not clinical).
const RESEND_ATTEMPTS: i64 = 3;
const RESEND_AFTER: Duration = Duration::minutes(30);

/// What the sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    pub issued: Vec<IssuedLink>,
    pub expired: usize,
    /// Patients (or unsent reminders) skipped because of an error (logged); the next sweep tries
    /// them again.
    pub failed: usize,
}

fn json_value<T: Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| StoreError::Backend(format!("serialising a setting: {e}")))
}

/// A patient's between-session record for the chart.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckinOverview {
    pub links: Vec<LinkRecord>,
    pub events: Vec<LinkEvent>,
    pub safety_answers: Vec<SafetyAnswer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SafetyAnswer {
    pub id: i64,
    pub link_id: i64,
    pub instrument: String,
    pub item: i64,
    pub answer: i64,
    pub flag_code: String,
    #[serde(with = "time::serde::rfc3339")]
    pub answered_at: OffsetDateTime,
    pub alert_id: i64,
}

impl Store {
    /// Issues links for every check-in that is open now and has none, and records the expiry of
    /// links whose window closed unanswered. Run by the server every few minutes and by
    /// `keta checkins sweep`. The returned tokens exist only here: deliver them, then drop them.
    pub async fn sweep_checkins(&self) -> Result<SweepReport> {
        let now = self.now();
        // 1. Expiries, each in its own transaction: one link's row lock and the audit chain's
        // lock are then always taken in the same order as a patient's page visit takes them
        // (several links in one transaction could deadlock with visits on PostgreSQL).
        let mut due: Vec<i64> = self
            .read(move |c| {
                // No ORDER BY in SQL: with it SQLite scans every link ever issued by id instead of
                // the index of open links (16 s on a clinic with many links); sorted here instead.
                c.query(
                    "SELECT id FROM checkin_links WHERE completed_at IS NULL AND expired_at IS NULL AND expires_at <= $1",
                    params![ms(now)],
                )?
                .iter()
                .map(|r| r.i64("id"))
                .collect()
            })
            .await?;
        due.sort_unstable();
        let mut expired = 0;
        for id in due {
            let done = self
                .write(move |c| {
                    let link = get_link(c, id)?;
                    if link.completed_at.is_some() || link.expired_at.is_some() {
                        return Ok(false);
                    }
                    mark_expired(c, &link, now)?;
                    Ok(true)
                })
                .await;
            match done {
                Ok(true) => expired += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, link = id, "check-in sweep: recording an expiry failed"),
            }
        }
        // 2. Who may have something due: courses not stopped, still active, with a session
        // recent enough for a follow-up item to be open (two days' slack for the local opening
        // hour), or with a per-patient schedule, whose follow-up may be longer.
        let horizon = now - Duration::days(i64::from(checkins::sweep_look_back_days()) + 2);
        let patients: Vec<i64> = self
            .read(move |c| {
                c.query(
                    "SELECT DISTINCT co.patient_id FROM courses co WHERE co.status <> 'stopped'
                     AND (co.status = 'active' OR EXISTS (SELECT 1 FROM sessions s WHERE s.course_id = co.id AND s.scheduled_for >= $1)
                          OR EXISTS (SELECT 1 FROM checkin_overrides o WHERE o.course_id = co.id))
                     ORDER BY co.patient_id",
                    params![ms(horizon)],
                )?
                .iter()
                .map(|r| r.i64("patient_id"))
                .collect()
            })
            .await?;
        // 3. One small transaction per patient, so one bad record delays no one else and the
        // writer is never held for the whole clinic.
        let mut report = SweepReport { expired, ..Default::default() };
        for patient in patients {
            match self.write(move |c| issue_due(c, PatientId(patient), now)).await {
                Ok(mut issued) => report.issued.append(&mut issued),
                Err(e) => {
                    tracing::error!(error = %e, patient, "check-in sweep: skipped one patient");
                    report.failed += 1;
                }
            }
        }
        // 4. Reminders that never went out: found in one read, each resent in a transaction of
        // its own, so one bad link holds up no one's reminders.
        let unsent: Vec<i64> =
            self.read(move |c| Ok(unsent_links(c, now, None)?.iter().map(|l| l.id).collect())).await?;
        for id in unsent {
            match self.write(move |c| resend_one(c, now, id)).await {
                Ok(Some(link)) => report.issued.push(link),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, link = id, "check-in sweep: a reminder could not be prepared again");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Issues a link on demand for a patient (a check-in sent by the care team, or a new link for
    /// an occurrence whose message was lost: the old token stops working). The token is returned
    /// once, for the caller to send or show.
    pub async fn issue_link(
        &self,
        actor: &Actor,
        patient: PatientId,
        course: Option<CourseId>,
        form: String,
    ) -> Result<IssuedLink> {
        actor.require(Permission::EnterQuestionnaire)?;
        let now = self.now();
        let kind = if instruments::catalog().get(&form).is_some() {
            let inst = instruments::catalog().get(&form).expect("checked");
            if !(inst.wording_permitted && inst.completed_by == keta_domain::instruments::CompletedBy::Patient) {
                return Err(DomainError::field(
                    "form",
                    format!(
                        "{} cannot be sent to a phone: its wording may not be shown or staff complete it",
                        inst.short_name
                    ),
                )
                .into());
            }
            "instrument"
        } else if keta_domain::question_sets::get(&form).is_some() {
            "question_set"
        } else {
            return Err(DomainError::field(
                "form",
                format!("unknown form '{form}': use a patient instrument (phq9, gad7) or a question set"),
            )
            .into());
        };
        let hours = RemoteSafetyPolicy::builtin().on_demand_link_hours;
        let actor = actor.clone();
        self.write(move |c| {
            let p = crate::patients::get_patient(c, &actor, patient)?;
            if let Some(cid) = course {
                let co = crate::courses::get_course(c, &actor, cid)?;
                if co.patient_id != patient {
                    return Err(DomainError::field("course_id", "that course belongs to another patient").into());
                }
            }
            let new = NewLink {
                purpose: LinkPurpose::Checkin,
                course_id: course,
                session_id: None,
                parent_link_id: None,
                item_key: format!("on_demand:{form}:{}", ms(now)),
                form,
                form_kind: kind.into(),
                opens_at: now,
                expires_at: now + Duration::hours(i64::from(hours)),
            };
            let (link, token) = insert_link(c, &actor, now, &p, &new)?;
            let token = token.ok_or_else(|| StoreError::Conflict("a link for this check-in was just issued".into()))?;
            Ok(IssuedLink { link, token, email: p.email, phone: p.phone })
        })
        .await
    }

    /// A new token for an open link (the reminder was lost, or the patient is in the clinic and
    /// staff hand them the link). The previous token stops working at once.
    pub async fn reissue_link(&self, actor: &Actor, link_id: i64) -> Result<IssuedLink> {
        actor.require(Permission::EnterQuestionnaire)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let link = get_link_for_update(c, link_id)?;
            if !actor.may_see(link.site_id, link.patient_id) {
                return Err(StoreError::NotFound(format!("check-in link {link_id}")));
            }
            if link.purpose == LinkPurpose::Sitter {
                return Err(DomainError::Conflict(
                    "a sitter's link goes only to the sitter named on the pre-dose screen, never to the patient".into(),
                )
                .into());
            }
            match link.state(now) {
                LinkState::Open | LinkState::NotYetOpen { .. } => {}
                LinkState::Completed { .. } => {
                    return Err(StoreError::Conflict("this check-in is already completed".into()));
                }
                LinkState::Expired { .. } => {
                    return Err(StoreError::Conflict("this check-in has closed; send a new check-in instead".into()));
                }
            }
            let token = rotate_token(c, &actor, now, &link, &actor.name)?;
            let p = patient_of(c, link.patient_id)?;
            Ok(IssuedLink { link, token, email: p.email, phone: p.phone })
        })
        .await
    }

    /// Records how a reminder went (`reminder_sent` with the channel, or `reminder_failed` with
    /// the error), so the care team sees who was not reached.
    pub async fn record_delivery(&self, link_id: i64, ok: bool, detail: String) -> Result<()> {
        let now = self.now();
        self.write(move |c| {
            let link = get_link(c, link_id)?;
            event(c, link_id, if ok { "reminder_sent" } else { "reminder_failed" }, now, Some(&detail))?;
            if !ok && link.purpose == LinkPurpose::Sitter {
                // The patient's page tells them not to dose; the clinic must hear it too.
                let firing = crate::home::sitter_not_reached_alert(&detail);
                crate::sessions::raise(
                    c,
                    &link_actor(link.id),
                    now,
                    link.site_id,
                    link.patient_id,
                    None,
                    vec![firing],
                )?;
            }
            audit::record(
                c,
                &Actor::system(),
                now,
                Entry {
                    action: Action::Create,
                    object_type: "checkin_reminder",
                    object_id: Some(link_id.to_string()),
                    patient_id: Some(link.patient_id),
                    site_id: Some(link.site_id),
                    fields: &["channel", "outcome"],
                },
            )
        })
        .await
    }

    /// A patient's check-in links, their events and safety answers (for the chart).
    pub async fn checkin_overview(&self, actor: &Actor, patient: PatientId) -> Result<CheckinOverview> {
        self.read_patient_audited(actor, Permission::ViewClinical, patient, "checkins", move |c, _| {
            overview(c, patient)
        })
        .await
    }

    /// The chart's between-sessions panels: one read snapshot and one audit entry, instead of a
    /// round trip per panel.
    pub async fn between_sessions(&self, actor: &Actor, patient: PatientId) -> Result<BetweenSessions> {
        self.read_patient_audited(actor, Permission::ViewClinical, patient, "between_sessions", move |c, _| {
            let (programmes, question_sets) = crate::home::home_for(c, patient)?;
            Ok(BetweenSessions {
                checkins: overview(c, patient)?,
                programmes,
                question_sets,
                relapse_settings: relapse_settings(c)?,
                schedule_changes: crate::courses::courses_for(c, patient)?
                    .iter()
                    .filter_map(|co| latest_override_info(c, co.id).transpose())
                    .collect::<Result<_>>()?,
            })
        })
        .await
    }

    /// A clinician's change to one course's check-in schedule (validated against the default).
    pub async fn set_checkin_override(
        &self,
        actor: &Actor,
        course: CourseId,
        o: ScheduleOverride,
    ) -> Result<CheckInSchedule> {
        actor.require(Permission::PlanTreatment)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let co = crate::courses::get_course(c, &actor, course)?;
            let base = checkins::schedule_for_route(co.route).ok_or_else(|| {
                DomainError::Conflict(format!("{} courses have no check-in schedule", co.route.label()))
            })?;
            let applied = checkins::apply_override(base, &o)?;
            audit::insert_audited(
                c,
                &actor,
                now,
                "INSERT INTO checkin_overrides (course_id, patient_id, site_id, override_json, set_at, set_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                params![course.0, co.patient_id.0, co.site_id.0, json(&o), ms(now), actor.name.as_str()],
                Created { object_type: "checkin_override", patient: co.patient_id, site: co.site_id, fields: &["override"] },
            )?;
            Ok(applied)
        })
        .await
    }

    /// The schedule a course follows now (default plus the latest change).
    pub async fn checkin_schedule(&self, actor: &Actor, course: CourseId) -> Result<Option<CheckInSchedule>> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let (patient, out) = self
            .read(move |c| {
                let co = crate::courses::get_course(c, &act, course)?;
                Ok((co.patient_id, schedule_for(c, &co)?))
            })
            .await?;
        self.audit_read(actor, "checkin_schedule", Some(course.to_string()), Some(patient)).await?;
        Ok(out)
    }

    /// Sets what a site tells its patients (crisis instructions, clinic phone).
    pub async fn set_patient_contact_settings(
        &self,
        actor: &Actor,
        site: SiteId,
        s: PatientContactSettings,
    ) -> Result<SiteForPatients> {
        actor.require(Permission::ManageUsers)?;
        s.validate()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            crate::sites::get_site(c, site)?;
            if !actor.scope.allows(site) {
                return Err(StoreError::NotFound(format!("site {site}")));
            }
            c.execute(
                "INSERT INTO site_patient_settings (site_id, crisis_instructions, clinic_phone, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (site_id) DO UPDATE SET crisis_instructions = excluded.crisis_instructions, clinic_phone = excluded.clinic_phone,
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                params![site.0, s.crisis_instructions.trim(), s.clinic_phone.as_deref().map(str::trim), ms(now), actor.name.as_str()],
            )?;
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "site_patient_settings",
                    object_id: Some(site.to_string()),
                    patient_id: None,
                    site_id: Some(site),
                    fields: &["crisis_instructions", "clinic_phone"],
                },
            )?;
            site_for_patients(c, site)
        })
        .await
    }

    /// The clinic's relapse threshold (set on PHQ-9 totals), validated before it is stored.
    pub async fn set_relapse_settings(&self, actor: &Actor, s: RelapseSettings) -> Result<()> {
        s.validate(RelapseSettings::INSTRUMENT)?;
        self.set_clinic_setting(actor, RELAPSE_SETTINGS, json_value(&s)?).await
    }

    /// The home pre-dose screen's alcohol- and sedative-free hours, validated before they are stored.
    pub async fn set_home_pre_dose_settings(&self, actor: &Actor, s: crate::home::HomePreDoseSettings) -> Result<()> {
        s.validate()?;
        self.set_clinic_setting(actor, HOME_PRE_DOSE_SETTINGS, json_value(&s)?).await
    }

    /// Stores a clinic-wide setting; only typed setters call it, after validating (also
    /// `alerts::set_escalation_settings`).
    pub(crate) async fn set_clinic_setting(
        &self,
        actor: &Actor,
        key: &'static str,
        value: serde_json::Value,
    ) -> Result<()> {
        actor.require(Permission::ManageUsers)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            // A signed-in administrator's scope lists their sites (never `All`): they qualify when
            // it covers every site of the clinic.
            let sites =
                c.query("SELECT id FROM sites", &[])?.iter().map(|r| r.i64("id").map(SiteId)).collect::<Result<Vec<_>>>()?;
            if !sites.iter().all(|s| actor.scope.allows(*s)) {
                return Err(StoreError::Forbidden(
                    "clinic-wide settings apply to every site; ask an administrator of all sites".into(),
                ));
            }
            c.execute(
                "INSERT INTO clinic_settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                params![key, value.to_string(), ms(now), actor.name.as_str()],
            )?;
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "clinic_setting",
                    object_id: Some(key.into()),
                    patient_id: None,
                    site_id: None,
                    fields: &["value"],
                },
            )
        })
        .await
    }

    /// The clinic's relapse-watch settings (default: loss of response).
    pub async fn relapse_settings(&self) -> Result<RelapseSettings> {
        self.read(relapse_settings).await
    }
}

/// Open scheduled links whose reminder never went out (the server stopped before sending, or
/// the mail server refused) and that nobody has opened or been handed by staff: a new token,
/// sent again, at most RESEND_ATTEMPTS times and no sooner than RESEND_AFTER after the last
/// try ([`resend_one`] gives each a new token; the old one stops working). `only`: that link
/// alone, if it still qualifies.
fn unsent_links(c: &mut dyn Conn, now: OffsetDateTime, only: Option<i64>) -> Result<Vec<LinkRecord>> {
    // A link issued by this sweep has its `issued` event now, so it is never one of these.
    let one = if only.is_some() { " AND l.id = $4" } else { "" };
    let sql = format!(
        "SELECT {LINK_COLS} FROM checkin_links l WHERE completed_at IS NULL AND expired_at IS NULL
         AND opens_at <= $1 AND expires_at > $1 AND purpose <> 'sitter'
         AND item_key NOT LIKE 'on_demand:%'
         AND NOT EXISTS (SELECT 1 FROM checkin_events e WHERE e.link_id = l.id AND e.event IN ('reminder_sent', 'opened'))
         AND NOT EXISTS (SELECT 1 FROM checkin_events e WHERE e.link_id = l.id AND e.event = 'reissued' AND e.detail <> 'reminder not sent yet; trying again')
         AND (SELECT count(*) FROM checkin_events e WHERE e.link_id = l.id AND e.event = 'reminder_failed') < $2
         AND (SELECT max(e.at) FROM checkin_events e WHERE e.link_id = l.id) <= $3{one}"
    );
    let rows = match only {
        Some(id) => c.query(&sql, params![ms(now), RESEND_ATTEMPTS, ms(now - RESEND_AFTER), id])?,
        None => c.query(&sql, params![ms(now), RESEND_ATTEMPTS, ms(now - RESEND_AFTER)])?,
    };
    rows.iter().map(link_from).collect()
}

/// Resends one of [`unsent_links`] in its own transaction, if it still is one: a new token
/// (the old one stops working) for the reminder to carry.
fn resend_one(c: &mut dyn Conn, now: OffsetDateTime, id: i64) -> Result<Option<IssuedLink>> {
    let Some(link) = unsent_links(c, now, Some(id))?.pop() else { return Ok(None) };
    let token = rotate_token(c, &Actor::system(), now, &link, "reminder not sent yet; trying again")?;
    let p = patient_of(c, link.patient_id)?;
    Ok(Some(IssuedLink { link, token, email: p.email, phone: p.phone }))
}

/// A new token for a link; the old one stops working at once. Recorded as `reissued` with
/// `detail`, and audited.
fn rotate_token(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    link: &LinkRecord,
    detail: &str,
) -> Result<String> {
    let (token, hash) = new_token();
    c.execute("UPDATE checkin_links SET token_hash = $1 WHERE id = $2", params![hash, link.id])?;
    event(c, link.id, "reissued", now, Some(detail))?;
    audit_link(c, actor, now, link, Action::Update, &["token_hash"])?;
    Ok(token)
}

/// Issues links for one patient's check-ins that are open now and have none.
fn issue_due(c: &mut dyn Conn, patient: PatientId, now: OffsetDateTime) -> Result<Vec<IssuedLink>> {
    let actor = Actor::system();
    let mut out = Vec::new();
    let p = patient_of(c, patient)?;
    let courses = crate::courses::courses_for(c, p.id)?;
    let sessions = crate::sessions::sessions_for_patient(c, p.id)?;
    // A session that was stopped takes its unanswered check-ins with it: closed quietly, not
    // reported as missed.
    let stopped: Vec<i64> = sessions.iter().filter(|s| s.state == SessionState::Stopped).map(|s| s.id.0).collect();
    if !stopped.is_empty() {
        let open = c
            .query(
                &format!(
                    "SELECT {LINK_COLS} FROM checkin_links WHERE patient_id = $1 AND session_id IS NOT NULL AND completed_at IS NULL AND expired_at IS NULL"
                ),
                params![p.id.0],
            )?
            .iter()
            .map(link_from)
            .collect::<Result<Vec<_>>>()?;
        for link in open.iter().filter(|l| l.session_id.is_some_and(|sid| stopped.contains(&sid.0))) {
            c.execute(
                "UPDATE checkin_links SET expired_at = $1 WHERE id = $2 AND expired_at IS NULL",
                params![ms(now), link.id],
            )?;
            event(c, link.id, "superseded", now, Some("the session was stopped"))?;
            audit_link(c, &actor, now, link, Action::Update, &["expired_at"])?;
        }
    }
    let zone = crate::site_time::site_zone(c, p.site_id)?;
    for course in courses.iter().filter(|x| x.status != CourseStatus::Stopped) {
        let Some(schedule) = schedule_for(c, course)? else { continue };
        let times = schedule_session_times(&sessions, course.id);
        let days = SiteCourseDays { zone: &zone, start: course.start_date, hour: schedule.periodic_opens_local_hour };
        for due in checkins::due_checkins(&schedule, &days, &times, now) {
            let session_id = session_for_item(&sessions, course.id, due.session_at);
            // Keyed by the session itself, not its position in the course, so a stopped or added
            // session never makes a later one match an earlier link.
            let item_key = match session_id {
                Some(sid) => format!("{}:session:{}", due.item_id, sid.0),
                None => due.key.clone(),
            };
            let new = NewLink {
                purpose: if due.kind == FormKind::PreDoseScreen { LinkPurpose::PreDose } else { LinkPurpose::Checkin },
                course_id: Some(course.id),
                session_id,
                parent_link_id: None,
                item_key,
                form: due.form.clone(),
                form_kind: form_kind_str(due.kind).into(),
                opens_at: due.opens_at,
                expires_at: due.closes_at,
            };
            let (link, token) = insert_link(c, &actor, now, &p, &new)?;
            if let Some(token) = token {
                out.push(IssuedLink { link, token, email: p.email.clone(), phone: p.phone.clone() });
            }
        }
    }
    Ok(out)
}

pub(crate) fn form_kind_str(k: FormKind) -> &'static str {
    match k {
        FormKind::Instrument => "instrument",
        FormKind::QuestionSet => "question_set",
        FormKind::PreDoseScreen => "pre_dose",
    }
}

#[cfg(test)]
mod tests {
    use keta_domain::checkins::CourseDays;
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn periodic_check_ins_keep_the_local_hour_across_daylight_saving() {
        let zone = crate::site_time::zone("America/Chicago");
        // Chicago leaves daylight saving on 1 Nov 2026: 09:00 is 14:00 UTC before, 15:00 after.
        let days = SiteCourseDays { zone: &zone, start: date!(2026 - 10 - 26), hour: 9 };
        assert_eq!(days.day(0), datetime!(2026-10-26 14:00 UTC));
        assert_eq!(days.day(7), datetime!(2026-11-02 15:00 UTC));
        assert_eq!(days.day(28), datetime!(2026-11-23 15:00 UTC));
    }
}
