//! The chair calendar: which chair a session holds and for how long, booking a
//! course's sessions from its schedule into free chairs, and the missed-session rule
//! applied to the sessions already booked.
//!
//! A session holds its chair for the route's minimum monitoring time
//! (`data/rules/session-safety.toml`, `[minimum_monitoring.*]`, each with its source): the
//! caller passes that length in, so the calendar and the discharge gate read one number.
//! Pure: times are passed in, already converted from the site's zone by the caller.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::course::{Phase, Route};
use crate::error::DomainError;
use crate::ids::{ChairId, PatientId, SessionId};
use crate::protocols::{CourseSchedule, PlannedSession, PlannedStatus, Protocol, mark_missed};
use crate::units::Minutes;

/// The longest a reason (cancellation, no-show) may be.
pub const MAX_REASON_CHARS: usize = 500;

/// One chair held by one session, from its start for the route's chair time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChairBooking {
    pub session_id: SessionId,
    pub patient_id: PatientId,
    pub chair_id: ChairId,
    pub route: Route,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// How long the chair is held: the route's minimum monitoring time.
    pub minutes: Minutes,
}

impl ChairBooking {
    pub fn ends_at(&self) -> OffsetDateTime {
        self.starts_at + self.minutes.as_duration()
    }

    /// Whether this booking holds `chair` at any moment of `[start, start + minutes)`.
    pub fn overlaps(&self, chair: ChairId, start: OffsetDateTime, minutes: Minutes) -> bool {
        self.chair_id == chair && self.starts_at < start + minutes.as_duration() && start < self.ends_at()
    }
}

/// The booking already holding `chair` during `[start, start + minutes)`, other than
/// `ignore` (the session being moved).
pub fn conflict(
    existing: &[ChairBooking],
    chair: ChairId,
    start: OffsetDateTime,
    minutes: Minutes,
    ignore: Option<SessionId>,
) -> Option<&ChairBooking> {
    existing.iter().find(|b| Some(b.session_id) != ignore && b.overlaps(chair, start, minutes))
}

/// Refuses a booking that would double-book a chair, naming the session holding it.
/// `label` says when, in the site's words (e.g. `Mon 2 Nov 09:00`).
pub fn check_free(
    existing: &[ChairBooking],
    chair: ChairId,
    start: OffsetDateTime,
    minutes: Minutes,
    ignore: Option<SessionId>,
    label: &str,
) -> Result<(), DomainError> {
    match conflict(existing, chair, start, minutes, ignore) {
        None => Ok(()),
        Some(b) => Err(DomainError::Conflict(format!(
            "chair {} is already booked at {label} (session {}, {} for {} min): choose another chair or time",
            chair,
            b.session_id,
            b.route.label(),
            b.minutes.0
        ))),
    }
}

/// One session of a course to be placed: its sequence, when it starts, and how the site
/// reads that time (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub sequence: u32,
    pub starts_at: OffsetDateTime,
    pub label: String,
}

/// Where each slot goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlacedSlot {
    pub sequence: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    pub chair_id: ChairId,
}

/// Places every slot into a free chair: the preferred chair when it is free, otherwise the
/// first free chair in `chairs`' order. Refused as a whole, naming every slot no chair is
/// free for, so nothing is half-booked.
pub fn place_slots(
    slots: &[Slot],
    minutes: Minutes,
    chairs: &[ChairId],
    preferred: Option<ChairId>,
    existing: &[ChairBooking],
) -> Result<Vec<PlacedSlot>, DomainError> {
    if chairs.is_empty() {
        return Err(DomainError::Conflict("this site has no chairs: add chairs to the site first".into()));
    }
    if let Some(p) = preferred
        && !chairs.contains(&p)
    {
        return Err(DomainError::field("chair_id", format!("chair {p} is not a chair of this site")));
    }
    let order: Vec<ChairId> =
        preferred.into_iter().chain(chairs.iter().copied().filter(|c| Some(*c) != preferred)).collect();
    let mut held: Vec<ChairBooking> = existing.to_vec();
    let mut out = Vec::new();
    let mut full = Vec::new();
    for s in slots {
        let free = order.iter().copied().find(|c| conflict(&held, *c, s.starts_at, minutes, None).is_none());
        match free {
            Some(chair) => {
                held.push(ChairBooking {
                    // Not stored: stands for this slot while the rest are placed.
                    session_id: SessionId(-i64::from(s.sequence)),
                    patient_id: PatientId(0),
                    chair_id: chair,
                    route: Route::IvRacemic,
                    starts_at: s.starts_at,
                    minutes,
                });
                out.push(PlacedSlot { sequence: s.sequence, starts_at: s.starts_at, chair_id: chair });
            }
            None => full.push(format!("session {} at {}", s.sequence, s.label)),
        }
    }
    if !full.is_empty() {
        return Err(DomainError::Conflict(format!(
            "no chair is free for {}: choose another time of day or move the sessions holding the chairs",
            full.join(", ")
        )));
    }
    Ok(out)
}

/// A session of a course as the missed-session rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BookedSession {
    pub session_id: SessionId,
    pub sequence: u32,
    /// The site's local date it is booked for.
    pub date: Date,
    /// Still to come (scheduled, not cancelled): only these move.
    pub open: bool,
}

/// What the missed-session rule decided for a no-show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MissedOutcome {
    /// The missed session is given again on this date (at the same time of day); `None`:
    /// it is not made up.
    pub make_up_on: Option<Date>,
    /// Later sessions of the course moved by the rule: (session, new date).
    pub moves: Vec<MovedSession>,
    /// The rule applied, in words, with its source.
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MovedSession {
    pub session_id: SessionId,
    pub from: Date,
    pub to: Date,
}

/// Applies the protocol's missed-session rule (`[protocols.missed_session]` in
/// `data/protocols/*.toml`, through [`mark_missed`]) to the open sessions of a course when
/// `missed` was a no-show. Without a protocol there is no rule: the session is made up on
/// `make_up_on` if one is given, and nothing else moves.
pub fn apply_missed_rule(
    protocol: Option<&Protocol>,
    phase: Phase,
    booked: &[BookedSession],
    missed: SessionId,
    make_up_on: Option<Date>,
) -> Result<MissedOutcome, DomainError> {
    let m = booked
        .iter()
        .find(|b| b.session_id == missed)
        .ok_or_else(|| DomainError::field("session", format!("session {missed} is not a session of this course")))?;
    let Some(p) = protocol else {
        if let Some(on) = make_up_on
            && on <= m.date
        {
            return Err(DomainError::field("make_up_on", format!("give a make-up date after {}", m.date)));
        }
        let note = match make_up_on {
            Some(on) => format!(
                "Session {} missed on {}: made up on {on} (the course follows no protocol, so no missed-session rule applies).",
                m.sequence, m.date
            ),
            None => format!(
                "Session {} missed on {}: not made up (the course follows no protocol, so no missed-session rule applies).",
                m.sequence, m.date
            ),
        };
        return Ok(MissedOutcome { make_up_on, moves: vec![], note });
    };
    let mut open: Vec<&BookedSession> = booked.iter().filter(|b| b.open || b.session_id == missed).collect();
    open.sort_by_key(|b| (b.date, b.sequence));
    let schedule = CourseSchedule {
        protocol_id: p.id.clone(),
        start: open.first().map_or(m.date, |b| b.date),
        sessions: open
            .iter()
            .map(|b| PlannedSession {
                sequence: b.sequence,
                date: b.date,
                phase,
                block: 0,
                label: String::new(),
                dose: None,
                status: PlannedStatus::Planned,
                original_date: None,
            })
            .collect(),
        reassessments: vec![],
        continues: None,
        notes: vec![],
    };
    let out = mark_missed(p, &schedule, m.sequence, make_up_on)?;
    let mut made_up = None;
    let mut moves = Vec::new();
    for (before, after) in schedule.sessions.iter().zip(&out.sessions) {
        let Some(b) = open.iter().find(|b| b.sequence == before.sequence) else { continue };
        if b.session_id == missed {
            if after.status == PlannedStatus::Rescheduled {
                made_up = Some(after.date);
            }
        } else if after.date != before.date {
            moves.push(MovedSession { session_id: b.session_id, from: before.date, to: after.date });
        }
    }
    Ok(MissedOutcome { make_up_on: made_up, moves, note: out.notes.last().cloned().unwrap_or_default() })
}

/// Checks a cancellation or no-show reason: 1-500 characters.
pub fn reason(field: &str, what: &str, r: &str) -> Result<String, DomainError> {
    let r = r.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON_CHARS {
        return Err(DomainError::field(field, format!("say why the session {what} (1-{MAX_REASON_CHARS} characters)")));
    }
    Ok(r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::ProtocolLibrary;
    use time::macros::{date, datetime};

    fn booking(id: i64, chair: i64, at: OffsetDateTime, minutes: i64) -> ChairBooking {
        ChairBooking {
            session_id: SessionId(id),
            patient_id: PatientId(1),
            chair_id: ChairId(chair),
            route: Route::IvRacemic,
            starts_at: at,
            minutes: Minutes(minutes),
        }
    }

    #[test]
    fn a_chair_is_held_for_the_routes_time_and_free_at_its_end() {
        let b = [booking(1, 1, datetime!(2026-11-02 09:00 UTC), 120)];
        assert!(conflict(&b, ChairId(1), datetime!(2026-11-02 10:59 UTC), Minutes(30), None).is_some());
        assert!(conflict(&b, ChairId(1), datetime!(2026-11-02 08:31 UTC), Minutes(30), None).is_some());
        assert!(conflict(&b, ChairId(1), datetime!(2026-11-02 11:00 UTC), Minutes(30), None).is_none());
        assert!(conflict(&b, ChairId(1), datetime!(2026-11-02 08:30 UTC), Minutes(30), None).is_none());
        assert!(conflict(&b, ChairId(2), datetime!(2026-11-02 09:00 UTC), Minutes(30), None).is_none());
        // Moving a session over its own old slot is not a conflict with itself.
        assert!(conflict(&b, ChairId(1), datetime!(2026-11-02 09:30 UTC), Minutes(120), Some(SessionId(1))).is_none());
        let e =
            check_free(&b, ChairId(1), datetime!(2026-11-02 10:00 UTC), Minutes(30), None, "Mon 10:00").unwrap_err();
        assert!(e.to_string().contains("already booked at Mon 10:00 (session 1"), "{e}");
    }

    #[test]
    fn slots_take_the_preferred_chair_then_the_next_free_one_and_a_full_day_refuses_all() {
        let chairs = [ChairId(1), ChairId(2)];
        let at = datetime!(2026-11-02 09:00 UTC);
        let slot = |n: u32, t: OffsetDateTime| Slot { sequence: n, starts_at: t, label: format!("slot {n}") };
        let existing = [booking(7, 2, at, 120)];
        let placed = place_slots(
            &[slot(1, at), slot(2, at + time::Duration::days(2))],
            Minutes(120),
            &chairs,
            Some(ChairId(2)),
            &existing,
        )
        .unwrap();
        assert_eq!(placed.iter().map(|p| p.chair_id.0).collect::<Vec<_>>(), [1, 2]);
        let both = [booking(7, 2, at, 120), booking(8, 1, at, 120)];
        let e = place_slots(&[slot(1, at + time::Duration::days(2)), slot(2, at)], Minutes(120), &chairs, None, &both)
            .unwrap_err();
        assert!(e.to_string().contains("no chair is free for session 2 at slot 2"), "{e}");
        assert!(!e.to_string().contains("session 1 "), "{e}");
        // Two slots of one request never share a chair at once.
        let p = place_slots(&[slot(1, at), slot(2, at)], Minutes(30), &chairs, None, &[]).unwrap();
        assert_ne!(p[0].chair_id, p[1].chair_id);
    }

    fn course(dates: &[Date]) -> Vec<BookedSession> {
        dates
            .iter()
            .enumerate()
            .map(|(i, d)| BookedSession {
                session_id: SessionId(10 + i as i64),
                sequence: i as u32 + 1,
                date: *d,
                open: true,
            })
            .collect()
    }

    #[test]
    fn a_no_show_on_an_iv_course_moves_the_later_sessions_by_the_protocols_rule() {
        let p = ProtocolLibrary::builtin().require("iv-racemic-0.5").unwrap();
        let b = course(&[date!(2026 - 11 - 02), date!(2026 - 11 - 04), date!(2026 - 11 - 06), date!(2026 - 11 - 09)]);
        let out = apply_missed_rule(Some(p), Phase::Induction, &b, SessionId(11), Some(date!(2026 - 11 - 05))).unwrap();
        assert_eq!(out.make_up_on, Some(date!(2026 - 11 - 05)));
        assert_eq!(
            out.moves.iter().map(|m| (m.session_id.0, m.to)).collect::<Vec<_>>(),
            [(12, date!(2026 - 11 - 07)), (13, date!(2026 - 11 - 10))]
        );
        assert!(out.note.contains("shift_following"), "{}", out.note);
        // The rule needs a make-up date; without one nothing is decided.
        let e = apply_missed_rule(Some(p), Phase::Induction, &b, SessionId(11), None).unwrap_err();
        assert!(e.to_string().contains("make_up_on"), "{e}");
    }

    #[test]
    fn without_a_protocol_only_the_missed_session_moves() {
        let b = course(&[date!(2026 - 11 - 02), date!(2026 - 11 - 04)]);
        let out = apply_missed_rule(None, Phase::Induction, &b, SessionId(10), Some(date!(2026 - 11 - 03))).unwrap();
        assert_eq!((out.make_up_on, out.moves.len()), (Some(date!(2026 - 11 - 03)), 0));
        let skipped = apply_missed_rule(None, Phase::Induction, &b, SessionId(10), None).unwrap();
        assert_eq!(skipped.make_up_on, None);
        assert!(apply_missed_rule(None, Phase::Induction, &b, SessionId(10), Some(date!(2026 - 11 - 01))).is_err());
    }

    #[test]
    fn a_reason_is_required_and_bounded() {
        assert!(reason("reason", "was cancelled", "  ").is_err());
        assert!(reason("reason", "was cancelled", &"x".repeat(501)).is_err());
        assert_eq!(reason("reason", "was cancelled", " Unwell ").unwrap(), "Unwell");
    }
}
