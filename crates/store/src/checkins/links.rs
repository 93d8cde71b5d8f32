//! Check-in links: issuing, reading and the audit of each step.

use super::*;

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

pub(super) const LINK_COLS: &str = "id, purpose, patient_id, site_id, course_id, session_id, parent_link_id, item_key, form, form_kind, opens_at, expires_at, created_at, created_by, first_opened_at, progress, progress_saved_at, completed_at, expired_at, result_kind, result_id";

pub(super) fn link_from(r: &Row) -> Result<LinkRecord> {
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
pub(super) fn new_token() -> (String, String) {
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
pub(super) fn audit_link(
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

pub(super) fn events_for(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<LinkEvent>> {
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
