//! Sites keep their own wall clocks: times are stored in UTC, and a site's local times are
//! found through its IANA zone name (the system's tz database, with a bundled copy as
//! fallback). The web pages show times with this; the check-in sweep opens periodic
//! check-ins at a local hour with it.
//!
//! Every "today" the store judges by (dates "in the future", lot expiry, age for a dose,
//! exposure weeks, relapse messages) is the site's local date from [`today`] or
//! [`calendar`], never the UTC date of `now`: a clinic at UTC+13 is a day ahead of UTC
//! for thirteen hours, one at UTC-10 a day behind for ten.
//!
//! [`SiteClock`] is the one wall clock of a site for everything outside the store: the web
//! pages and reminders format times with it, the demo and the benchmark place synthetic
//! sessions in clinic hours with it.

use keta_domain::ids::SiteId;
use keta_domain::site::Site;
use time::{Date, OffsetDateTime, UtcOffset};

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

/// A site's wall clock: its IANA zone (UTC when the name is unknown) and the labels times
/// are shown with.
#[derive(Clone)]
pub struct SiteClock {
    tz: jiff::tz::TimeZone,
    pub zone: String,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl SiteClock {
    pub fn for_site(site: &Site) -> Self {
        Self::named(&site.time_zone)
    }

    pub fn named(name: &str) -> Self {
        let tz = zone(name);
        let zone = if tz == jiff::tz::TimeZone::UTC && name != "UTC" { "UTC".into() } else { name.to_string() };
        Self { tz, zone }
    }

    pub fn utc() -> Self {
        Self { tz: jiff::tz::TimeZone::UTC, zone: "UTC".into() }
    }

    fn offset_at(&self, t: OffsetDateTime) -> UtcOffset {
        let secs =
            jiff::Timestamp::from_second(t.unix_timestamp()).map(|ts| self.tz.to_offset(ts).seconds()).unwrap_or(0);
        UtcOffset::from_whole_seconds(secs).unwrap_or(UtcOffset::UTC)
    }

    /// `t` on the site's wall clock.
    pub fn local(&self, t: OffsetDateTime) -> OffsetDateTime {
        t.to_offset(self.offset_at(t))
    }

    pub fn today(&self, now: OffsetDateTime) -> Date {
        self.local(now).date()
    }

    /// The UTC instant of a local wall-clock time (the earlier one in a DST overlap,
    /// the later side of a gap).
    pub fn at_local(&self, date: Date, hour: u8, minute: u8) -> OffsetDateTime {
        at_local(&self.tz, date, hour, minute)
    }

    /// The UTC instant the site's clock shows `minute_of_day` minutes past midnight on `date`
    /// (600 is 10:00; 1500 is 01:00 the next day).
    pub fn at_minute_of_day(&self, date: Date, minute_of_day: i64) -> OffsetDateTime {
        const DAY: i64 = 24 * 60;
        let date = date + time::Duration::days(minute_of_day.div_euclid(DAY));
        let m = minute_of_day.rem_euclid(DAY);
        self.at_local(
            date,
            u8::try_from(m / 60).expect("an hour of the day"),
            u8::try_from(m % 60).expect("a minute of the hour"),
        )
    }

    /// `[start, end)` of a local day, in UTC.
    pub fn day_bounds(&self, date: Date) -> (OffsetDateTime, OffsetDateTime) {
        let next = date.next_day().unwrap_or(date);
        (self.at_local(date, 0, 0), self.at_local(next, 0, 0))
    }

    /// "09:05"
    pub fn hm(&self, t: OffsetDateTime) -> String {
        let l = self.local(t);
        format!("{:02}:{:02}", l.hour(), l.minute())
    }

    /// "Fri 27 Nov 2026"
    pub fn date(&self, t: OffsetDateTime) -> String {
        date_label(self.local(t).date())
    }

    /// "Fri 27 Nov 2026 at 09:05" (patient pages, reminders, planned sessions).
    pub fn date_at(&self, t: OffsetDateTime) -> String {
        format!("{} at {}", self.date(t), self.hm(t))
    }

    /// "27 Nov 2026 09:05"
    pub fn datetime(&self, t: OffsetDateTime) -> String {
        let l = self.local(t);
        format!("{} {} {} {:02}:{:02}", l.day(), MONTHS[l.month() as usize - 1], l.year(), l.hour(), l.minute())
    }

    /// "27 Nov" (short, for chart axes).
    pub fn short_date(&self, t: OffsetDateTime) -> String {
        let l = self.local(t);
        format!("{} {}", l.day(), MONTHS[l.month() as usize - 1])
    }
}

/// "Fri 27 Nov 2026"
pub fn date_label(d: Date) -> String {
    format!(
        "{} {} {} {}",
        WEEKDAYS[d.weekday().number_days_from_monday() as usize],
        d.day(),
        MONTHS[d.month() as usize - 1],
        d.year()
    )
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

    #[test]
    fn chicago_day_is_shifted_from_utc() {
        let c = SiteClock::named("America/Chicago");
        let (from, to) = c.day_bounds(date!(2026 - 11 - 27));
        assert_eq!(from, datetime!(2026-11-27 06:00 UTC));
        assert_eq!(to, datetime!(2026-11-28 06:00 UTC));
        assert_eq!(c.hm(datetime!(2026-11-27 15:30 UTC)), "09:30");
    }

    #[test]
    fn unknown_zone_falls_back_to_utc() {
        let c = SiteClock::named("Nowhere/Place");
        assert_eq!(c.zone, "UTC");
    }

    #[test]
    fn a_minute_of_the_day_is_on_the_sites_clock() {
        let c = SiteClock::named("America/Denver");
        // MST is UTC-7 in winter, MDT UTC-6 in summer.
        assert_eq!(c.at_minute_of_day(date!(2026 - 01 - 15), 10 * 60 + 30), datetime!(2026-01-15 17:30 UTC));
        assert_eq!(c.at_minute_of_day(date!(2026 - 07 - 15), 10 * 60 + 30), datetime!(2026-07-15 16:30 UTC));
        assert_eq!(c.at_minute_of_day(date!(2026 - 01 - 15), 24 * 60 + 60), datetime!(2026-01-16 08:00 UTC));
    }
}
