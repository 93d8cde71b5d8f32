//! Times are stored in UTC and shown in the site's own time zone through the store's
//! [`SiteClock`] (its IANA name; the system's tz database, with a bundled copy as fallback);
//! here are the form values of dates and times and the duration labels of the pages.

pub use keta_store::site_time::{SiteClock, date_label};
use time::Date;

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
    use time::macros::date;

    #[test]
    fn form_values_parse() {
        assert_eq!(parse_iso_date("2026-02-29"), None);
        assert_eq!(parse_iso_date("2028-02-29"), Some(date!(2028 - 02 - 29)));
        assert_eq!(parse_hm("09:30"), Some((9, 30)));
        assert_eq!(parse_hm("24:00"), None);
        assert_eq!(minutes_label(125), "2 h 05 min");
    }
}
