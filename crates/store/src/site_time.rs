//! Sites keep their own wall clocks: times are stored in UTC, and a site's local times are
//! found through its IANA zone name (the system's tz database, with a bundled copy as
//! fallback). The web pages show times with this; the check-in sweep opens periodic
//! check-ins at a local hour with it.
//!
//! Every "today" the store judges by (dates "in the future", lot expiry, age for a dose,
//! exposure weeks, relapse messages) is the site's local date from [`today`] or
//! [`calendar`], never the UTC date of `now`: a clinic at UTC+13 is a day ahead of UTC
//! for thirteen hours, one at UTC-10 a day behind for ten.

use keta_domain::ids::SiteId;
use time::{Date, OffsetDateTime};

use crate::conn::Conn;
use crate::error::Result;

/// The time zone of site `site` (UTC, with a warning, when its name is unknown).
pub(crate) fn site_zone(c: &mut dyn Conn, site: SiteId) -> Result<jiff::tz::TimeZone> {
    Ok(zone(&crate::sites::get_site(c, site)?.time_zone))
}

/// The site's local date at `now`: the one "today" for everything entered or judged at a site.
pub(crate) fn today(c: &mut dyn Conn, site: SiteId, now: OffsetDateTime) -> Result<Date> {
    Ok(local_date(&site_zone(c, site)?, now))
}

/// The site's calendar for the pure domain: the local date of any instant.
pub(crate) fn calendar(c: &mut dyn Conn, site: SiteId) -> Result<impl Fn(OffsetDateTime) -> Date + use<>> {
    let tz = site_zone(c, site)?;
    Ok(move |t| local_date(&tz, t))
}

/// The zone named `name`; UTC (with a warning in the log) when the name is unknown.
pub fn zone(name: &str) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(name).unwrap_or_else(|e| {
        tracing::warn!(zone = name, error = %e, "unknown time zone; using UTC");
        jiff::tz::TimeZone::UTC
    })
}

/// The UTC instant of a local wall-clock time in `tz` (the earlier one in a DST overlap, the
/// later side of a gap).
pub fn at_local(tz: &jiff::tz::TimeZone, date: Date, hour: u8, minute: u8) -> OffsetDateTime {
    let civil = jiff::civil::DateTime::new(
        date.year() as i16,
        date.month() as i8,
        date.day() as i8,
        hour as i8,
        minute as i8,
        0,
        0,
    );
    let secs = civil
        .ok()
        .and_then(|dt| dt.to_zoned_datetime(tz.clone()).ok())
        .map(|z| z.timestamp().as_second())
        .unwrap_or_else(|| {
            date.midnight().assume_utc().unix_timestamp() + i64::from(hour) * 3600 + i64::from(minute) * 60
        });
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The local wall-clock date and time of `t` in `tz`.
pub fn local(tz: &jiff::tz::TimeZone, t: OffsetDateTime) -> time::PrimitiveDateTime {
    let offset = jiff::Timestamp::from_second(t.unix_timestamp()).map(|ts| tz.to_offset(ts).seconds()).unwrap_or(0);
    let off = time::UtcOffset::from_whole_seconds(offset).unwrap_or(time::UtcOffset::UTC);
    let l = t.to_offset(off);
    time::PrimitiveDateTime::new(l.date(), l.time())
}

/// The site's local date of `t`: which day a session belongs to.
pub fn local_date(tz: &jiff::tz::TimeZone, t: OffsetDateTime) -> Date {
    local(tz, t).date()
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn local_hours_follow_the_zone_and_its_daylight_saving() {
        let chicago = zone("America/Chicago");
        // CST is UTC-6 in winter, CDT UTC-5 in summer.
        assert_eq!(at_local(&chicago, date!(2026 - 01 - 15), 9, 0), datetime!(2026-01-15 15:00 UTC));
        assert_eq!(at_local(&chicago, date!(2026 - 07 - 15), 9, 0), datetime!(2026-07-15 14:00 UTC));
        let tokyo = zone("Asia/Tokyo");
        assert_eq!(at_local(&tokyo, date!(2026 - 07 - 15), 9, 30), datetime!(2026-07-15 00:30 UTC));
    }

    #[test]
    fn a_late_evening_session_belongs_to_the_local_day() {
        let chicago = zone("America/Chicago");
        // 02:30 UTC on the 16th is 20:30 on the 15th in Chicago (CST, UTC-6).
        assert_eq!(local_date(&chicago, datetime!(2026-01-16 02:30 UTC)), date!(2026 - 01 - 15));
        assert_eq!(local_date(&chicago, datetime!(2026-01-16 06:30 UTC)), date!(2026 - 01 - 16));
    }

    #[test]
    fn the_local_date_is_the_sites() {
        // 03:00 UTC on 3 Nov is still 2 Nov in Chicago.
        assert_eq!(local_date(&zone("America/Chicago"), datetime!(2026-11-03 03:00 UTC)), date!(2026 - 11 - 02));
        assert_eq!(local_date(&zone("Asia/Tokyo"), datetime!(2026-11-02 16:00 UTC)), date!(2026 - 11 - 03));
    }

    #[test]
    fn an_unknown_zone_is_utc() {
        assert_eq!(at_local(&zone("Mars/Olympus"), date!(2026 - 01 - 15), 9, 0), datetime!(2026-01-15 09:00 UTC));
    }
}
