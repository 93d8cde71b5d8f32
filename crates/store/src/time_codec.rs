//! Conversions between domain time types and their stored form.

use time::{Date, OffsetDateTime};

use crate::error::{Result, StoreError};

pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn from_ms(v: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000_000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {v}: {e}")))
}

pub(crate) fn opt_from_ms(v: Option<i64>) -> Result<Option<OffsetDateTime>> {
    v.map(from_ms).transpose()
}

const DATE_FMT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

pub(crate) fn date_text(d: Date) -> String {
    d.format(DATE_FMT).expect("dates always format")
}

pub(crate) fn parse_date(s: &str) -> Result<Date> {
    Date::parse(s, DATE_FMT).map_err(|e| StoreError::Corrupt(format!("date '{s}': {e}")))
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain values always serialise")
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("json: {e}")))
}
