//! The chair calendar: a site's chairs and booked sessions over some days,
//! booking a course's sessions from its protocol's schedule into free chairs, moving,
//! cancelling and recording no-shows (with the protocol's missed-session rule), and the
//! front desk marking arrivals, which puts the patient on the board.
//!
//! A session holds its chair for its route's minimum monitoring time (the site's safety
//! rules, `data/rules/session-safety.toml`); a booking that would overlap another on the
//! same chair is refused. Every check-then-write holds the site's chair rows (`FOR UPDATE`,
//! in id order) so two bookings at once cannot both take a chair on PostgreSQL.
//! Scheduling is front-desk work: it needs `EditDemographics` (front desk, nurse,
//! prescriber, administrator), not the clinical permissions.

use time::{Date, OffsetDateTime};

use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::calendar::{
    self as cal, BookedSession, ChairBooking, MissedOutcome, PlacedSlot, Slot, apply_missed_rule, place_slots,
};
use keta_domain::course::{CourseStatus, Route};
use keta_domain::ids::{ChairId, CourseId, PatientId, SessionId, SiteId};
use std::sync::Arc;

use keta_domain::protocols::{ProtocolLibrary, ScheduleRequest, generate_schedule};
use keta_domain::schedule::ScheduledSession;
use keta_domain::session::{SessionAction, SessionDay, SessionState, StepContext, TreatmentSession};
use keta_domain::site::Chair;
use keta_domain::units::Minutes;

use crate::audit::{self, Action, Entry};
use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::sessions::{COLS, get_session_for_update, session_from};
use crate::site_time::{at_local, local, local_date, zone};
use crate::time_codec::{from_ms, ms};
use crate::{Actor, Store, params};

/// The most days one calendar read covers (a week view is 7).
pub const MAX_CALENDAR_DAYS: u32 = 31;

/// One booked session as the calendar shows it: schedule fields, the patient's name (the
/// calendar is front-desk work), how long the chair is held, and a cancellation or no-show.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CalendarEntry {
    pub session: ScheduledSession,
    pub patient_name: String,
    pub mrn: String,
    /// The chair is held this long: the route's minimum monitoring time.
    pub chair_minutes: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// `cancelled` or `no_show` when the booking ended that way.
    pub outcome: Option<String>,
    pub outcome_reason: Option<String>,
    /// Where the booking was before it was last moved (time and chair), if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub moved_from_at: Option<OffsetDateTime>,
    pub moved_from_chair_id: Option<ChairId>,
}

/// How long each route holds a chair, with its source.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ChairTime {
    pub route: Route,
    pub minutes: i64,
    pub source: String,
}

/// A site's calendar over `days` days from `from` (the site's local dates).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SiteCalendar {
    pub site_id: SiteId,
    pub site_name: String,
    pub time_zone: String,
    pub from: Date,
    pub days: u32,
    pub chairs: Vec<Chair>,
    pub entries: Vec<CalendarEntry>,
    pub chair_times: Vec<ChairTime>,
    /// The prescriber on duty for escalations (the site's on-duty setting), if set.
    pub prescriber_on_duty: Option<String>,
    /// The rota: nurses and prescribers on duty on each day shown.
    pub on_duty: Vec<crate::rota::OnDutyStaff>,
}

/// Book a course's sessions from its protocol's schedule.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookCourse {
    /// The first session's date (the site's local date).
    pub start: Date,
    /// The local time of day every session starts, `HH:MM`.
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$")]
    pub time: String,
    /// The chair to use when it is free; otherwise the first free chair.
    #[serde(default)]
    pub chair_id: Option<ChairId>,
    /// For blocks whose interval the clinician chooses (e.g. 7 or 14 days).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    pub every_days: Option<u32>,
    /// Lay open-ended blocks out up to this date.
    #[serde(default)]
    pub until: Option<Date>,
}

/// Move a session to another time and/or chair.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reschedule {
    pub date: Date,
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$")]
    pub time: String,
    /// The chair; absent: the session's own chair if it is free, else the first free one.
    #[serde(default)]
    pub chair_id: Option<ChairId>,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// A no-show: why, and the make-up date where the protocol's rule makes one up.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoShow {
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
    #[serde(default)]
    pub make_up_on: Option<Date>,
}

/// What recording a no-show did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NoShowResult {
    pub rule: MissedOutcome,
    /// The missed session as it is now (moved to the make-up date, or ended).
    pub session: ScheduledSession,
    /// Later sessions of the course, as moved by the rule.
    pub moved: Vec<ScheduledSession>,
}

/// `HH:MM` → (hour, minute), or a field error saying how to write it.
pub fn parse_time_of_day(field: &str, s: &str) -> Result<(u8, u8)> {
    let bad = || StoreError::Domain(DomainError::field(field, "give the time as HH:MM, e.g. 09:30"));
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u8, u8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 || !(1..=2).contains(&s.trim().split(':').next().unwrap_or("").len()) {
        return Err(bad());
    }
    Ok((h, m))
}

fn require_scheduling(actor: &Actor) -> Result<()> {
    actor.require(Permission::EditDemographics).map_err(|_| {
        StoreError::Forbidden(
            "booking, moving and cancelling sessions and marking arrivals is for the front desk and clinical staff"
                .into(),
        )
    })
}

fn site_zone(c: &mut dyn Conn, site: SiteId) -> Result<(jiff::tz::TimeZone, keta_domain::site::Site)> {
    let s = crate::sites::get_site(c, site)?;
    Ok((zone(&s.time_zone), s))
}

/// The site's chairs in id order, held until the transaction ends (the booking lock).
fn lock_chairs(c: &mut dyn Conn, site: SiteId) -> Result<Vec<ChairId>> {
    c.query("SELECT id FROM chairs WHERE site_id = $1 ORDER BY id FOR UPDATE", params![site.0])?
        .iter()
        .map(|r| Ok(ChairId(r.i64("id")?)))
        .collect()
}

fn chairs_of(c: &mut dyn Conn, site: SiteId) -> Result<Vec<Chair>> {
    c.query("SELECT id, name FROM chairs WHERE site_id = $1 ORDER BY id", params![site.0])?
        .iter()
        .map(|r| Ok(Chair { id: ChairId(r.i64("id")?), site_id: site, name: r.text("name")? }))
        .collect()
}

/// The sessions holding chairs at a site around `[from, to)`: booked (not ended) and with
/// a chair. Looks a day either side, so a long session starting the day before counts.
fn bookings(c: &mut dyn Conn, site: SiteId, from: OffsetDateTime, to: OffsetDateTime) -> Result<Vec<ChairBooking>> {
    let rules = crate::rules::safety_rules(c, site)?;
    let pad = time::Duration::days(1);
    let rows = c.query(
        &format!(
            "SELECT {COLS} FROM sessions WHERE site_id = $1 AND chair_id IS NOT NULL AND state <> 'stopped' AND state <> 'discharged'
             AND scheduled_for >= $2 AND scheduled_for < $3 ORDER BY scheduled_for, id"
        ),
        params![site.0, ms(from - pad), ms(to + pad)],
    )?;
    rows.iter()
        .map(|r| {
            let s = session_from(r)?;
            Ok(ChairBooking {
                session_id: s.id,
                patient_id: s.patient_id,
                chair_id: s.chair_id.expect("selected with a chair"),
                route: s.route,
                starts_at: s.scheduled_for,
                minutes: rules.minimum_monitoring(s.route),
            })
        })
        .collect()
}

fn chair_minutes(c: &mut dyn Conn, site: SiteId, route: Route) -> Result<Minutes> {
    Ok(crate::rules::safety_rules(c, site)?.minimum_monitoring(route))
}

fn label(tz: &jiff::tz::TimeZone, t: OffsetDateTime) -> String {
    let l = local(tz, t);
    format!("{} {:02}:{:02}", l.date(), l.hour(), l.minute())
}

#[allow(clippy::too_many_arguments)]
fn event(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    s: &TreatmentSession,
    kind: &str,
    reason: Option<&str>,
    from: Option<(OffsetDateTime, Option<ChairId>)>,
    to: Option<(OffsetDateTime, Option<ChairId>)>,
) -> Result<()> {
    c.insert(
        "INSERT INTO session_calendar_events (session_id, patient_id, site_id, kind, reason, from_at, to_at, from_chair_id, to_chair_id,
         recorded_at, recorded_by, recorded_by_user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        params![
            s.id.0, s.patient_id.0, s.site_id.0, kind, reason, from.map(|f| ms(f.0)), to.map(|t| ms(t.0)),
            from.and_then(|f| f.1).map(|c| c.0), to.and_then(|t| t.1).map(|c| c.0), ms(now), actor.name.as_str(), actor.user_id
        ],
    )?;
    let fields: &[&str] = match kind {
        "rescheduled" => &["scheduled_for", "chair_id"],
        "arrived" => &["state", "checked_in_at"],
        "booked" => &["scheduled_for", "chair_id"],
        _ => &["state", "stop_reason"],
    };
    audit::record(
        c,
        actor,
        now,
        Entry {
            action: if kind == "booked" { Action::Create } else { Action::Update },
            object_type: "session",
            object_id: Some(s.id.to_string()),
            patient_id: Some(s.patient_id),
            site_id: Some(s.site_id),
            fields,
        },
    )?;
    Ok(())
}

/// Moves a held session to `at` in `chair` after checking the chair is free.
#[allow(clippy::too_many_arguments)]
fn move_session(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    tz: &jiff::tz::TimeZone,
    s: &mut TreatmentSession,
    at: OffsetDateTime,
    chair: ChairId,
    reason: Option<&str>,
) -> Result<()> {
    let minutes = chair_minutes(c, s.site_id, s.route)?;
    let held = bookings(c, s.site_id, at, at + minutes.as_duration())?;
    cal::check_free(&held, chair, at, minutes, Some(s.id), &label(tz, at))?;
    let from = (s.scheduled_for, s.chair_id);
    c.execute("UPDATE sessions SET scheduled_for = $1, chair_id = $2 WHERE id = $3", params![ms(at), chair.0, s.id.0])?;
    s.scheduled_for = at;
    s.chair_id = Some(chair);
    event(c, actor, now, s, "rescheduled", reason, Some(from), Some((at, Some(chair))))
}

/// The chair to move a session into: `asked` (refused if not the site's), else the
/// session's own chair when free at `at`, else the first free one.
fn choose_chair(
    c: &mut dyn Conn,
    tz: &jiff::tz::TimeZone,
    s: &TreatmentSession,
    chairs: &[ChairId],
    at: OffsetDateTime,
    asked: Option<ChairId>,
) -> Result<ChairId> {
    if let Some(a) = asked {
        if !chairs.contains(&a) {
            return Err(DomainError::field("chair_id", format!("chair {a} is not a chair of this site")).into());
        }
        return Ok(a);
    }
    let minutes = chair_minutes(c, s.site_id, s.route)?;
    let held: Vec<ChairBooking> =
        bookings(c, s.site_id, at, at + minutes.as_duration())?.into_iter().filter(|b| b.session_id != s.id).collect();
    let slot = Slot { sequence: s.sequence, starts_at: at, label: label(tz, at) };
    let placed = place_slots(&[slot], minutes, chairs, s.chair_id.filter(|c| chairs.contains(c)), &held)?;
    Ok(placed[0].chair_id)
}

fn require_scheduled(s: &TreatmentSession, what: &str) -> Result<()> {
    if s.state != SessionState::Scheduled {
        return Err(StoreError::Conflict(format!(
            "the session is {} (not waiting to start): only a booked session can be {what}",
            s.state.as_str().replace('_', " ")
        )));
    }
    Ok(())
}

/// Refuses a chair that would be double-booked: the check `create_session` makes too.
pub(crate) fn check_chair_free(
    c: &mut dyn Conn,
    site: SiteId,
    route: Route,
    chair: ChairId,
    at: OffsetDateTime,
    ignore: Option<SessionId>,
) -> Result<()> {
    lock_chairs(c, site)?;
    let (tz, _) = site_zone(c, site)?;
    let minutes = chair_minutes(c, site, route)?;
    let held = bookings(c, site, at, at + minutes.as_duration())?;
    cal::check_free(&held, chair, at, minutes, ignore, &label(&tz, at))?;
    Ok(())
}

/// The patient's next booked sessions from `now` (for their own page and reminders).
pub(crate) fn next_sessions(
    c: &mut dyn Conn,
    patient: PatientId,
    now: OffsetDateTime,
    limit: u32,
) -> Result<Vec<TreatmentSession>> {
    c.query(
        &format!(
            "SELECT {COLS} FROM sessions WHERE patient_id = $1 AND state = 'scheduled' AND scheduled_for >= $2
             ORDER BY scheduled_for, id LIMIT {}",
            limit.min(50)
        ),
        params![patient.0, ms(now)],
    )?
    .iter()
    .map(session_from)
    .collect()
}

impl Store {
    /// A site's calendar over `days` (1-31) days from the local date `from`: chairs, booked
    /// sessions with the chair time of their route, cancellations and no-shows, and the
    /// prescriber on duty. Names patients, so it is an audited read of each.
    pub async fn site_calendar(&self, actor: &Actor, site: SiteId, from: Date, days: u32) -> Result<SiteCalendar> {
        actor.require(Permission::ViewDemographics)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        if !(1..=MAX_CALENDAR_DAYS).contains(&days) {
            return Err(DomainError::field("days", format!("show 1-{MAX_CALENDAR_DAYS} days")).into());
        }
        let out = self
            .read(move |c| {
                let (tz, s) = site_zone(c, site)?;
                let start = at_local(&tz, from, 0, 0);
                let end = at_local(&tz, from + time::Duration::days(i64::from(days)), 0, 0);
                let rules = crate::rules::safety_rules(c, site)?;
                let rows = c.query(
                    &format!(
                        "SELECT {COLS}, p.given_name, p.family_name, p.mrn,
                         (SELECT e.kind FROM session_calendar_events e WHERE e.session_id = sessions.id AND e.kind IN ('cancelled', 'no_show') ORDER BY e.id DESC LIMIT 1) AS ended_kind,
                         (SELECT e.reason FROM session_calendar_events e WHERE e.session_id = sessions.id AND e.kind IN ('cancelled', 'no_show') ORDER BY e.id DESC LIMIT 1) AS ended_reason,
                         (SELECT e.from_at FROM session_calendar_events e WHERE e.session_id = sessions.id AND e.kind = 'rescheduled' ORDER BY e.id DESC LIMIT 1) AS moved_from_at,
                         (SELECT e.from_chair_id FROM session_calendar_events e WHERE e.session_id = sessions.id AND e.kind = 'rescheduled' ORDER BY e.id DESC LIMIT 1) AS moved_from_chair_id
                         FROM sessions JOIN patients p ON p.id = sessions.patient_id
                         WHERE sessions.site_id = $1 AND scheduled_for >= $2 AND scheduled_for < $3 ORDER BY scheduled_for, sessions.id"
                    )
                    .replace("SELECT id, course_id, patient_id, site_id,", "SELECT sessions.id, course_id, patient_id, sessions.site_id,"),
                    params![site.0, ms(start), ms(end)],
                )?;
                let mut entries = Vec::new();
                for r in &rows {
                    let sess = session_from(r)?;
                    let minutes = rules.minimum_monitoring(sess.route);
                    let ended = if sess.state == SessionState::Stopped { r.opt_text("ended_kind")? } else { None };
                    entries.push(CalendarEntry {
                        ends_at: sess.scheduled_for + minutes.as_duration(),
                        chair_minutes: minutes.0,
                        patient_name: format!("{} {}", r.text("given_name")?, r.text("family_name")?),
                        mrn: r.text("mrn")?,
                        outcome_reason: if ended.is_some() { r.opt_text("ended_reason")? } else { None },
                        outcome: ended,
                        moved_from_at: crate::time_codec::opt_from_ms(r.opt_i64("moved_from_at")?)?,
                        moved_from_chair_id: r.opt_i64("moved_from_chair_id")?.map(ChairId),
                        session: ScheduledSession::from(&sess),
                    });
                }
                let chair_times = Route::ALL
                    .into_iter()
                    .map(|route| {
                        let m = rules.minimum_monitoring_rule(route);
                        ChairTime { route, minutes: m.minutes.0, source: m.source.clone() }
                    })
                    .collect();
                let on_duty = c.query_opt(
                    "SELECT u.display_name FROM site_on_duty d JOIN users u ON u.id = d.prescriber_user_id WHERE d.site_id = $1",
                    params![site.0],
                )?;
                Ok(SiteCalendar {
                    site_id: site,
                    site_name: s.name.clone(),
                    time_zone: s.time_zone.clone(),
                    from,
                    days,
                    chairs: chairs_of(c, site)?,
                    entries,
                    chair_times,
                    prescriber_on_duty: on_duty.map(|r| r.text("display_name")).transpose()?,
                    on_duty: crate::rota::rota_between(c, site, from, from + time::Duration::days(i64::from(days)))?,
                })
            })
            .await?;
        let mut patients: Vec<PatientId> = out.entries.iter().map(|e| e.session.patient_id).collect();
        patients.sort();
        patients.dedup();
        self.audit_reads(actor, "calendar", patients).await?;
        Ok(out)
    }

    /// Books every session of a course from its protocol's schedule generator, each at the
    /// same local time into a free chair (the asked one when free). Refused as a whole when
    /// the course names no protocol, already has booked sessions, or a session finds no
    /// free chair (each named).
    pub async fn book_course(
        &self,
        actor: &Actor,
        course: CourseId,
        protocols: Arc<ProtocolLibrary>,
        req: BookCourse,
    ) -> Result<Vec<ScheduledSession>> {
        require_scheduling(actor)?;
        let (h, m) = parse_time_of_day("time", &req.time)?;
        if let Some(d) = req.every_days
            && !(1..=365).contains(&d)
        {
            return Err(DomainError::field("every_days", "give the interval as 1-365 days").into());
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let course = crate::courses::get_course(c, &actor, course)?;
            if course.status != CourseStatus::Active {
                return Err(StoreError::Conflict(format!("course {} is {}: book sessions only for an active course", course.id, course.status.as_str())));
            }
            let Some(pid) = course.protocol.as_deref() else {
                return Err(DomainError::field("course", "this course names no protocol, so there is no schedule to book: add its sessions one at a time").into());
            };
            let protocol = protocols.require(pid)?;
            let chairs = lock_chairs(c, course.site_id)?;
            c.query_opt("SELECT id FROM courses WHERE id = $1 FOR UPDATE", params![course.id.0])?;
            let n = c
                .query_opt("SELECT count(*) AS n FROM sessions WHERE course_id = $1 AND state <> 'stopped'", params![course.id.0])?
                .map(|r| r.i64("n"))
                .transpose()?
                .unwrap_or(0);
            if n > 0 {
                return Err(StoreError::Conflict(format!(
                    "this course already has {n} booked session(s): move or cancel them on the calendar instead of booking the course again"
                )));
            }
            let patient = crate::patients::get_patient(c, &actor, course.patient_id)?;
            let age = u32::try_from(patient.age_on(req.start)).ok();
            let schedule = generate_schedule(
                protocol,
                &ScheduleRequest { start: req.start, age_years: age, until: req.until, every_days: req.every_days },
            )?;
            if schedule.sessions.is_empty() {
                return Err(DomainError::field("until", "the schedule lays out no sessions: give a date to plan until").into());
            }
            let (tz, _) = site_zone(c, course.site_id)?;
            let slots: Vec<Slot> = schedule
                .sessions
                .iter()
                .map(|s| {
                    let at = at_local(&tz, s.date, h, m);
                    Slot { sequence: s.sequence, starts_at: at, label: label(&tz, at) }
                })
                .collect();
            let first = slots.first().map(|s| s.starts_at).unwrap_or(now);
            let last = slots.last().map(|s| s.starts_at).unwrap_or(now);
            if first < now {
                return Err(DomainError::field("start", "the first session would be in the past: choose a later start or time").into());
            }
            let minutes = chair_minutes(c, course.site_id, course.route)?;
            let held = bookings(c, course.site_id, first, last + minutes.as_duration())?;
            let placed: Vec<PlacedSlot> = place_slots(&slots, minutes, &chairs, req.chair_id, &held)?;
            let done = c
                .query_opt("SELECT count(*) AS n FROM sessions WHERE course_id = $1", params![course.id.0])?
                .map(|r| r.i64("n"))
                .transpose()?
                .unwrap_or(0);
            let mut out = Vec::new();
            for (k, p) in placed.iter().enumerate() {
                let id = c.insert(
                    "INSERT INTO sessions (course_id, patient_id, site_id, chair_id, route, sequence, scheduled_for, state)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    params![
                        course.id.0, course.patient_id.0, course.site_id.0, p.chair_id.0, course.route.as_str(), done + k as i64 + 1,
                        ms(p.starts_at), SessionState::Scheduled.as_str()
                    ],
                )?;
                let s = crate::sessions::get_session(c, &actor, SessionId(id))?;
                event(c, &actor, now, &s, "booked", None, None, Some((p.starts_at, Some(p.chair_id))))?;
                out.push(ScheduledSession::from(&s));
            }
            Ok(out)
        })
        .await
    }

    /// Moves a booked session to another local date and time (and chair), refused when the
    /// chair is taken then.
    pub async fn reschedule_session(&self, actor: &Actor, id: SessionId, req: Reschedule) -> Result<ScheduledSession> {
        require_scheduling(actor)?;
        let (h, m) = parse_time_of_day("time", &req.time)?;
        let reason = match req.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => Some(cal::reason("reason", "is moved", r)?),
            None => None,
        };
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let site = get_session_for_update(c, &actor, id)?.site_id;
            let chairs = lock_chairs(c, site)?;
            let mut s = get_session_for_update(c, &actor, id)?;
            require_scheduled(&s, "moved")?;
            let (tz, _) = site_zone(c, s.site_id)?;
            let at = at_local(&tz, req.date, h, m);
            if at < now {
                return Err(DomainError::field("date", "that time has passed: choose a time from now on").into());
            }
            let chair = choose_chair(c, &tz, &s, &chairs, at, req.chair_id)?;
            move_session(c, &actor, now, &tz, &mut s, at, chair, reason.as_deref())?;
            Ok(ScheduledSession::from(&s))
        })
        .await
    }

    /// Cancels a booked session with the reason; its chair is free again.
    pub async fn cancel_session(&self, actor: &Actor, id: SessionId, reason: String) -> Result<ScheduledSession> {
        require_scheduling(actor)?;
        let reason = cal::reason("reason", "is cancelled", &reason)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let mut s = get_session_for_update(c, &actor, id)?;
            require_scheduled(&s, "cancelled")?;
            end_booking(c, &actor, now, &mut s, "cancelled", &format!("Cancelled: {reason}"), &reason)?;
            Ok(ScheduledSession::from(&s))
        })
        .await
    }

    /// Records that the patient did not come, with the reason, and applies the course's
    /// protocol's missed-session rule: the session is given on the make-up date (at the
    /// same time, its chair or a free one) and later sessions move as the rule says, or it
    /// is not made up and ends as a no-show.
    pub async fn record_no_show(
        &self,
        actor: &Actor,
        id: SessionId,
        protocols: Arc<ProtocolLibrary>,
        req: NoShow,
    ) -> Result<NoShowResult> {
        require_scheduling(actor)?;
        let reason = cal::reason("reason", "was missed", &req.reason)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let site = get_session_for_update(c, &actor, id)?.site_id;
            let chairs = lock_chairs(c, site)?;
            let mut s = get_session_for_update(c, &actor, id)?;
            require_scheduled(&s, "recorded as a no-show")?;
            if s.scheduled_for > now {
                return Err(StoreError::Conflict(
                    "the session has not started yet: a no-show is recorded once its time has passed (cancel it if the patient called)".into(),
                ));
            }
            let course = crate::courses::get_course(c, &actor, s.course_id)?;
            let protocol = match course.protocol.as_deref() {
                Some(p) => Some(protocols.require(p)?),
                None => None,
            };
            let (tz, _) = site_zone(c, s.site_id)?;
            let rows = c.query(&format!("SELECT {COLS} FROM sessions WHERE course_id = $1 ORDER BY sequence"), params![course.id.0])?;
            let course_sessions: Vec<TreatmentSession> = rows.iter().map(session_from).collect::<Result<_>>()?;
            let booked: Vec<BookedSession> = course_sessions
                .iter()
                .map(|x| BookedSession {
                    session_id: x.id,
                    sequence: x.sequence,
                    date: local_date(&tz, x.scheduled_for),
                    open: x.state == SessionState::Scheduled,
                })
                .collect();
            let rule = apply_missed_rule(protocol, course.phase, &booked, id, req.make_up_on)?;
            let original = (s.scheduled_for, s.chair_id);
            let time_of = |t: OffsetDateTime| {
                let l = local(&tz, t);
                (l.hour(), l.minute())
            };
            // Later sessions first, the latest first, so each moves into a chair its successor freed.
            let mut moved = Vec::new();
            let mut moves = rule.moves.clone();
            moves.sort_by_key(|m| std::cmp::Reverse(m.to));
            for mv in &moves {
                let mut x = get_session_for_update(c, &actor, mv.session_id)?;
                let (hh, mm) = time_of(x.scheduled_for);
                let at = at_local(&tz, mv.to, hh, mm);
                let chair = choose_chair(c, &tz, &x, &chairs, at, None)?;
                let why = format!("moved by the missed-session rule after session {} was missed", s.sequence);
                move_session(c, &actor, now, &tz, &mut x, at, chair, Some(&why))?;
                moved.push(ScheduledSession::from(&x));
            }
            moved.reverse();
            match rule.make_up_on {
                Some(day) => {
                    let (hh, mm) = time_of(s.scheduled_for);
                    let at = at_local(&tz, day, hh, mm);
                    let chair = choose_chair(c, &tz, &s, &chairs, at, None)?;
                    c.execute("UPDATE sessions SET scheduled_for = $1, chair_id = $2 WHERE id = $3", params![ms(at), chair.0, s.id.0])?;
                    s.scheduled_for = at;
                    s.chair_id = Some(chair);
                    let minutes = chair_minutes(c, s.site_id, s.route)?;
                    let held = bookings(c, s.site_id, at, at + minutes.as_duration())?;
                    cal::check_free(&held, chair, at, minutes, Some(s.id), &label(&tz, at))?;
                    event(c, &actor, now, &s, "no_show", Some(&format!("{reason} — {}", rule.note)), Some(original), Some((at, Some(chair))))?;
                }
                None => {
                    end_booking(c, &actor, now, &mut s, "no_show", &format!("No-show: {reason}"), &format!("{reason} — {}", rule.note))?;
                }
            }
            Ok(NoShowResult { rule, session: ScheduledSession::from(&s), moved })
        })
        .await
    }

    /// The front desk marks the patient arrived: the session is checked in (today's
    /// sessions only) and the patient appears on the board.
    pub async fn mark_arrival(&self, actor: &Actor, id: SessionId) -> Result<ScheduledSession> {
        require_scheduling(actor)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let mut s = get_session_for_update(c, &actor, id)?;
            require_scheduled(&s, "marked arrived")?;
            let (tz, _) = site_zone(c, s.site_id)?;
            let day = SessionDay {
                scheduled: local_date(&tz, s.scheduled_for),
                today: local_date(&tz, now),
                other_day_reason: None,
            };
            if day.scheduled != day.today {
                return Err(StoreError::Conflict(format!(
                    "this session is booked for {}, not today ({}): move it to today on the calendar first",
                    day.scheduled, day.today
                )));
            }
            let ctx = StepContext {
                discharge: keta_domain::session::DischargeContext {
                    minimum_monitoring: Minutes(0),
                    open_alerts: 0,
                    record: None,
                },
                uncovered_urgent_alerts: vec![],
                // Documents are checked when the dose starts, not on arrival.
                missing_documents: vec![],
                day: Some(day),
            };
            s.apply(&SessionAction::CheckIn, now, &ctx)?;
            c.execute(
                "UPDATE sessions SET state = $1, checked_in_at = $2 WHERE id = $3",
                params![s.state.as_str(), s.checked_in_at.map(ms), s.id.0],
            )?;
            event(c, &actor, now, &s, "arrived", None, None, None)?;
            Ok(ScheduledSession::from(&s))
        })
        .await
    }

    /// The patient's next booked sessions (for their own page and reminders); audited.
    pub async fn next_sessions_for_patient(
        &self,
        actor: &Actor,
        patient: PatientId,
        limit: u32,
    ) -> Result<Vec<ScheduledSession>> {
        let now = self.now();
        let out = self
            .read_patient_audited(actor, Permission::ViewDemographics, patient, "next_sessions", move |c, _| {
                next_sessions(c, patient, now, limit)
            })
            .await?;
        Ok(out.iter().map(ScheduledSession::from).collect())
    }

    /// What happened to a session's booking, oldest first: (kind, reason, when, by whom).
    pub async fn calendar_history(
        &self,
        actor: &Actor,
        id: SessionId,
    ) -> Result<Vec<(String, Option<String>, OffsetDateTime, String)>> {
        self.read_record_audited(actor, Permission::ViewDemographics, "session_calendar", Some(id.to_string()), move |c, act| {
            let s = crate::sessions::get_session(c, act, id)?;
            let rows = c.query(
                "SELECT kind, reason, recorded_at, recorded_by FROM session_calendar_events WHERE session_id = $1 ORDER BY id",
                params![id.0],
            )?;
            let out = rows
                .iter()
                .map(|r| Ok((r.text("kind")?, r.opt_text("reason")?, from_ms(r.i64("recorded_at")?)?, r.text("recorded_by")?)))
                .collect::<Result<Vec<_>>>()?;
            Ok((s.patient_id, out))
        })
        .await
    }
}

/// Ends a booking that will not happen (cancelled, or a no-show not made up): the session
/// is stopped before any dose, so the ledger and dose records treat it as never given.
fn end_booking(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    s: &mut TreatmentSession,
    kind: &str,
    stop_reason: &str,
    event_reason: &str,
) -> Result<()> {
    c.execute(
        "UPDATE sessions SET state = $1, stopped_at = $2, stop_reason = $3 WHERE id = $4",
        params![SessionState::Stopped.as_str(), ms(now), stop_reason, s.id.0],
    )?;
    s.state = SessionState::Stopped;
    s.stopped_at = Some(now);
    s.stop_reason = Some(stop_reason.to_string());
    event(c, actor, now, s, kind, Some(event_reason), Some((s.scheduled_for, s.chair_id)), None)
}

/// An active course with a protocol and nothing booked yet: what the calendar's booking form
/// offers (schedule facts only, no clinical fields).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BookableCourse {
    pub course_id: CourseId,
    pub patient_id: PatientId,
    pub patient_name: String,
    pub route: Route,
    pub protocol: String,
}

impl Store {
    /// The site's active courses that follow a protocol and have no booked session; audited.
    pub async fn bookable_courses(&self, actor: &Actor, site: SiteId) -> Result<Vec<BookableCourse>> {
        actor.require(Permission::ViewDemographics)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        let out = self
            .read(move |c| {
                c.query(
                    "SELECT co.id, co.patient_id, p.given_name, p.family_name, co.route, co.protocol FROM courses co
                     JOIN patients p ON p.id = co.patient_id
                     WHERE co.site_id = $1 AND co.status = 'active' AND co.protocol IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.course_id = co.id AND s.state <> 'stopped')
                     ORDER BY p.family_name, p.given_name, co.id LIMIT 200",
                    params![site.0],
                )?
                .iter()
                .map(|r| {
                    Ok(BookableCourse {
                        course_id: CourseId(r.i64("id")?),
                        patient_id: PatientId(r.i64("patient_id")?),
                        patient_name: format!("{} {}", r.text("given_name")?, r.text("family_name")?),
                        route: Route::parse(&r.text("route")?)
                            .ok_or_else(|| StoreError::Corrupt("course route".into()))?,
                        protocol: r.text("protocol")?,
                    })
                })
                .collect::<Result<Vec<_>>>()
            })
            .await?;
        self.audit_reads(actor, "bookable_courses", out.iter().map(|b| b.patient_id).collect()).await?;
        Ok(out)
    }
}
