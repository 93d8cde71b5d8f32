//! FHIR R4 search parameters that carry meaning: `date` with its prefixes, `_count`.
//!
//! Pure: the web layer hands in the raw query text, the store receives typed bounds.
//! A FHIR date (`2026`, `2026-03`, `2026-03-05`, `2026-03-05T10:00:00Z`) stands for the
//! whole range its precision covers; a prefix compares a record's instant with that range
//! (FHIR R4 search, "date" and "prefixes"). Values without an offset are read as UTC.

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// How a record's instant is compared with the range a date value stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    /// Starts after the range ends.
    Sa,
    /// Ends before the range starts.
    Eb,
}

/// A `date` search value: a prefix and the half-open range `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateFilter {
    pub prefix: Prefix,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// An instant condition the store turns into SQL over epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstantBound {
    /// `t >= ms`
    AtOrAfter(i64),
    /// `t < ms`
    Before(i64),
    /// `t < a OR t >= b`
    Outside(i64, i64),
}

impl DateFilter {
    /// The conditions a record's instant `t` must meet (all of them).
    pub fn bounds(&self) -> Vec<InstantBound> {
        use InstantBound::*;
        match self.prefix {
            Prefix::Eq => vec![AtOrAfter(self.start_ms), Before(self.end_ms)],
            Prefix::Ne => vec![Outside(self.start_ms, self.end_ms)],
            Prefix::Lt | Prefix::Eb => vec![Before(self.start_ms)],
            Prefix::Le => vec![Before(self.end_ms)],
            Prefix::Gt | Prefix::Sa => vec![AtOrAfter(self.end_ms)],
            Prefix::Ge => vec![AtOrAfter(self.start_ms)],
        }
    }

    /// Whether an instant (epoch ms) matches; the same rule as [`Self::bounds`].
    pub fn matches(&self, t_ms: i64) -> bool {
        self.bounds().iter().all(|b| match *b {
            InstantBound::AtOrAfter(m) => t_ms >= m,
            InstantBound::Before(m) => t_ms < m,
            InstantBound::Outside(a, b) => t_ms < a || t_ms >= b,
        })
    }
}

/// Parses `[prefix]date`, e.g. `ge2026-03-01` or `2026-03-05T10:00:00Z`. The error says
/// what a valid value looks like.
pub fn parse_date_param(raw: &str) -> Result<DateFilter, String> {
    let raw = raw.trim();
    let (prefix, rest) = match raw.get(..2) {
        Some("eq") => (Prefix::Eq, &raw[2..]),
        Some("ne") => (Prefix::Ne, &raw[2..]),
        Some("lt") => (Prefix::Lt, &raw[2..]),
        Some("gt") => (Prefix::Gt, &raw[2..]),
        Some("le") => (Prefix::Le, &raw[2..]),
        Some("ge") => (Prefix::Ge, &raw[2..]),
        Some("sa") => (Prefix::Sa, &raw[2..]),
        Some("eb") => (Prefix::Eb, &raw[2..]),
        _ => (Prefix::Eq, raw),
    };
    let (start, end) = date_range(rest).ok_or_else(|| {
        format!(
            "'{raw}' is not a FHIR date: use an optional prefix (eq, ne, lt, gt, le, ge, sa, eb) and YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with Z or an offset"
        )
    })?;
    Ok(DateFilter { prefix, start_ms: ms(start), end_ms: ms(end) })
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn date_range(s: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let day = |d: Date| PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc();
    let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
    match s.len() {
        4 if digits(s, 4) => {
            let y: i32 = s.parse().ok()?;
            Some((
                day(Date::from_calendar_date(y, Month::January, 1).ok()?),
                day(Date::from_calendar_date(y + 1, Month::January, 1).ok()?),
            ))
        }
        7 if digits(&s[..4], 4) && &s[4..5] == "-" && digits(&s[5..], 2) => {
            let y: i32 = s[..4].parse().ok()?;
            let m = Month::try_from(s[5..].parse::<u8>().ok()?).ok()?;
            let start = Date::from_calendar_date(y, m, 1).ok()?;
            let next = if m == Month::December {
                Date::from_calendar_date(y + 1, Month::January, 1).ok()?
            } else {
                Date::from_calendar_date(y, m.next(), 1).ok()?
            };
            Some((day(start), day(next)))
        }
        10 => {
            let d = Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
            Some((day(d), day(d.next_day()?)))
        }
        _ => {
            // A dateTime: its precision is the second (fractions narrow it to the millisecond).
            let t = OffsetDateTime::parse(s, &Rfc3339)
                .or_else(|_| {
                    PrimitiveDateTime::parse(
                        s,
                        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
                    )
                    .map(|p| p.assume_offset(UtcOffset::UTC))
                })
                .ok()?;
            let width = if t.nanosecond() == 0 { time::Duration::SECOND } else { time::Duration::MILLISECOND };
            let t = t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000).ok()?;
            Some((t, t + width))
        }
    }
}

/// `_count`: how many resources a page holds; absent means `default`, at most `max`.
pub fn parse_count(raw: Option<&str>, default: u32, max: u32) -> Result<u32, String> {
    match raw {
        None => Ok(default),
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) => Ok(n.min(max)),
            Err(_) => Err(format!("_count '{s}' is not a whole number from 0 to {max}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn at(t: OffsetDateTime) -> i64 {
        ms(t)
    }

    #[test]
    fn a_day_covers_its_whole_range() {
        let f = parse_date_param("2026-03-05").unwrap();
        assert_eq!(f.prefix, Prefix::Eq);
        assert!(f.matches(at(datetime!(2026-03-05 00:00 UTC))));
        assert!(f.matches(at(datetime!(2026-03-05 23:59:59.999 UTC))));
        assert!(!f.matches(at(datetime!(2026-03-06 00:00 UTC))));
        assert!(!f.matches(at(datetime!(2026-03-04 23:59:59.999 UTC))));
    }

    #[test]
    fn prefixes_compare_with_the_range() {
        let inside = at(datetime!(2026-03-05 12:00 UTC));
        let before = at(datetime!(2026-03-04 12:00 UTC));
        let after = at(datetime!(2026-03-06 12:00 UTC));
        let m = |p: &str, t| parse_date_param(&format!("{p}2026-03-05")).unwrap().matches(t);
        assert_eq!([m("lt", before), m("lt", inside), m("lt", after)], [true, false, false]);
        assert_eq!([m("le", before), m("le", inside), m("le", after)], [true, true, false]);
        assert_eq!([m("gt", before), m("gt", inside), m("gt", after)], [false, false, true]);
        assert_eq!([m("ge", before), m("ge", inside), m("ge", after)], [false, true, true]);
        assert_eq!([m("ne", before), m("ne", inside), m("ne", after)], [true, false, true]);
        assert_eq!([m("sa", before), m("sa", inside), m("sa", after)], [false, false, true]);
        assert_eq!([m("eb", before), m("eb", inside), m("eb", after)], [true, false, false]);
        assert_eq!([m("eq", before), m("eq", inside), m("eq", after)], [false, true, false]);
    }

    #[test]
    fn years_months_and_instants_have_their_own_precision() {
        let y = parse_date_param("2025").unwrap();
        assert!(y.matches(at(datetime!(2025-12-31 23:59 UTC))));
        assert!(!y.matches(at(datetime!(2026-01-01 00:00 UTC))));
        let m = parse_date_param("ge2025-12").unwrap();
        assert_eq!(m.start_ms, at(datetime!(2025-12-01 00:00 UTC)));
        let dec = parse_date_param("2025-12").unwrap();
        assert_eq!(dec.end_ms, at(datetime!(2026-01-01 00:00 UTC)));
        let i = parse_date_param("gt2026-03-05T10:00:00+02:00").unwrap();
        assert_eq!(i.end_ms, at(datetime!(2026-03-05 08:00:01 UTC)));
        let local = parse_date_param("2026-03-05T10:00:00").unwrap();
        assert_eq!(local.start_ms, at(datetime!(2026-03-05 10:00 UTC)));
    }

    #[test]
    fn bad_dates_say_what_to_send() {
        for bad in ["", "yesterday", "2026-13", "2026-02-30", "xx2026", "2026-3-5", "ge"] {
            let e = parse_date_param(bad).unwrap_err();
            assert!(e.contains("YYYY-MM-DD"), "{bad}: {e}");
        }
    }

    #[test]
    fn count_is_capped_and_checked() {
        assert_eq!(parse_count(None, 50, 1000), Ok(50));
        assert_eq!(parse_count(Some("5000"), 50, 1000), Ok(1000));
        assert_eq!(parse_count(Some("0"), 50, 1000), Ok(0));
        assert!(parse_count(Some("-1"), 50, 1000).is_err());
        assert!(parse_count(Some("ten"), 50, 1000).is_err());
    }
}
