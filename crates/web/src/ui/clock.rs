//! Times are stored in UTC and shown in the site's own time zone (its IANA name; the
//! zone rules come from the system's tz database, with a bundled copy as fallback).

use keta_domain::site::Site;
use time::{Date, OffsetDateTime, UtcOffset};

/// A site's wall clock.
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

    pub fn named(zone: &str) -> Self {
        let tz = keta_store::site_time::zone(zone);
        let zone = if tz == jiff::tz::TimeZone::UTC && zone != "UTC" { "UTC".into() } else { zone.to_string() };
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
        keta_store::site_time::at_local(&self.tz, date, hour, minute)
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

/// "2026-11-27", the value of an `<input type="date">`.
pub fn iso_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

pub fn parse_iso_date(s: &str) -> Option<Date> {
    let mut it = s.trim().splitn(3, '-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()
}

/// "09:30" from an `<input type="time">`.
pub fn parse_hm(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u8, u8) = (h.parse().ok()?, m.get(..2)?.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

/// "1 h 05 min", "42 min"
pub fn minutes_label(m: i64) -> String {
    if m.abs() >= 60 { format!("{} h {:02} min", m / 60, (m % 60).abs()) } else { format!("{m} min") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

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
    fn form_values_parse() {
        assert_eq!(parse_iso_date("2026-02-29"), None);
        assert_eq!(parse_iso_date("2028-02-29"), Some(date!(2028 - 02 - 29)));
        assert_eq!(parse_hm("09:30"), Some((9, 30)));
        assert_eq!(parse_hm("24:00"), None);
        assert_eq!(minutes_label(125), "2 h 05 min");
    }
}
