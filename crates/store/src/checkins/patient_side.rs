//! The patient's side: opening a link, saving and completing it, the safety answers
//! stored before anything else.

use super::*;

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
pub(super) fn link_by_hash_for_update(c: &mut dyn Conn, hash: &str) -> Result<Option<LinkRecord>> {
    c.query_opt(&format!("SELECT {LINK_COLS} FROM checkin_links WHERE token_hash = $1 FOR UPDATE"), params![hash])?
        .map(|r| link_from(&r))
        .transpose()
}

pub(super) fn get_link_for_update(c: &mut dyn Conn, id: i64) -> Result<LinkRecord> {
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
pub(super) fn stored_safety_codes(c: &mut dyn Conn, link: i64) -> Result<std::collections::BTreeSet<String>> {
    c.query("SELECT flag_code FROM safety_answers WHERE link_id = $1", params![link])?
        .iter()
        .map(|r| r.text("flag_code"))
        .collect()
}

/// Stores each new positive safety answer of a link with its alert (once per flag and link).
/// Returns whether any is stored for the link now, earlier saves included.
pub(super) fn store_safety(
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

pub(super) fn mark_expired(c: &mut dyn Conn, link: &LinkRecord, now: OffsetDateTime) -> Result<()> {
    let changed = c.execute(
        "UPDATE checkin_links SET expired_at = $1 WHERE id = $2 AND expired_at IS NULL AND completed_at IS NULL",
        params![ms(now), link.id],
    )?;
    if changed == 0 {
        return Ok(()); // Recorded already (a sweep and a page visit at once) or completed.
    }
    event(c, link.id, "expired", now, None)?;
    audit_link(c, &Actor::system(), now, link, Action::Update, &["expired_at"])?;
    // At home, a missed check-in is a safety matter: the clinician is told. Not for a
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
