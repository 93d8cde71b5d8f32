//! Staff and system operations: issuing on demand, the overview, the sweep and its resends.

use super::*;

/// How many times the sweep tries to send a link's reminder, and how long it waits between tries
/// (product settings, not clinical).
pub(super) const RESEND_ATTEMPTS: i64 = 3;
pub(super) const RESEND_AFTER: Duration = Duration::minutes(30);

/// What the sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    pub issued: Vec<IssuedLink>,
    pub expired: usize,
    /// Patients (or unsent reminders) skipped because of an error (logged); the next sweep tries
    /// them again.
    pub failed: usize,
}

pub(super) fn json_value<T: Serialize>(v: &T) -> Result<serde_json::Value> {
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
        self.read_record_audited(
            actor,
            Permission::ViewClinical,
            "checkin_schedule",
            Some(course.to_string()),
            move |c, act| {
                let co = crate::courses::get_course(c, act, course)?;
                Ok((co.patient_id, schedule_for(c, &co)?))
            },
        )
        .await
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
pub(super) fn unsent_links(c: &mut dyn Conn, now: OffsetDateTime, only: Option<i64>) -> Result<Vec<LinkRecord>> {
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
pub(super) fn resend_one(c: &mut dyn Conn, now: OffsetDateTime, id: i64) -> Result<Option<IssuedLink>> {
    let Some(link) = unsent_links(c, now, Some(id))?.pop() else { return Ok(None) };
    let token = rotate_token(c, &Actor::system(), now, &link, "reminder not sent yet; trying again")?;
    let p = patient_of(c, link.patient_id)?;
    Ok(Some(IssuedLink { link, token, email: p.email, phone: p.phone }))
}

/// A new token for a link; the old one stops working at once. Recorded as `reissued` with
/// `detail`, and audited.
pub(super) fn rotate_token(
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
pub(super) fn issue_due(c: &mut dyn Conn, patient: PatientId, now: OffsetDateTime) -> Result<Vec<IssuedLink>> {
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
