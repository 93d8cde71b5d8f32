//! A course's check-in schedule: the clinic's, or the patient's own change.

use super::*;

/// A course's days at the schedule's local hour on the site's clock: periodic check-ins open
/// at that time of day wherever the clinic is, before and after a daylight-saving change.
pub(super) struct SiteCourseDays<'a> {
    pub(super) zone: &'a jiff::tz::TimeZone,
    pub(super) start: time::Date,
    pub(super) hour: u8,
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

pub(super) fn latest_override(c: &mut dyn Conn, course: CourseId) -> Result<Option<ScheduleOverride>> {
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

pub(super) fn schedule_session_times(
    sessions: &[keta_domain::session::TreatmentSession],
    course: CourseId,
) -> Vec<OffsetDateTime> {
    sessions
        .iter()
        .filter(|s| s.course_id == course && s.state != SessionState::Stopped)
        .map(|s| s.scheduled_for)
        .collect()
}

pub(super) fn session_for_item(
    sessions: &[keta_domain::session::TreatmentSession],
    course: CourseId,
    at: Option<OffsetDateTime>,
) -> Option<SessionId> {
    let at = at?;
    sessions.iter().find(|s| s.course_id == course && s.scheduled_for == at).map(|s| s.id)
}
