//! Site clocks: a site's local day and clinic hours in UTC (standard offset plus US daylight
//! saving time), enough to put demo sessions in clinic hours.

use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A site's clock, roughly: its standard UTC offset plus US daylight saving time (second
/// Sunday in March to first Sunday in November, switched at midnight). Keta has no time-zone
/// database yet; this is enough to put demo sessions in clinic hours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SiteClock {
    pub std_hours: i8,
}

pub(super) fn nth_sunday(year: i32, month: Month, n: u8) -> Date {
    let first = Date::from_calendar_date(year, month, 1).expect("valid date");
    let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
    first + Duration::days(i64::from(to_sunday) + 7 * i64::from(n - 1))
}

impl SiteClock {
    pub(super) fn offset_on(self, d: Date) -> UtcOffset {
        let dst = d >= nth_sunday(d.year(), Month::March, 2) && d < nth_sunday(d.year(), Month::November, 1);
        UtcOffset::from_hms(self.std_hours + i8::from(dst), 0, 0).expect("valid offset")
    }
    /// The site's date at `now`.
    pub fn today(self, now: OffsetDateTime) -> Date {
        now.to_offset(self.offset_on(now.date())).date()
    }
    /// `minutes` after local midnight on `d`, in UTC.
    pub fn at(self, d: Date, minutes: i64) -> OffsetDateTime {
        PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_offset(self.offset_on(d)).to_offset(UtcOffset::UTC)
            + Duration::minutes(minutes)
    }
}
