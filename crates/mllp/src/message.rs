//! HL7 v2 ORU^R01 (unsolicited observation result) as bedside monitors and their gateways
//! send it: the header (MSH), the bed (PV1-3), observation requests (OBR, their time in
//! OBR-7) and their numeric results (OBX). The structure is parsed by `hl7-parser`; this
//! module picks out the fields Keta uses and turns HL7 timestamps into UTC times.

use hl7_parser::Message;
use hl7_parser::datetime::TimeStamp;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Why a frame is not an ORU^R01 Keta can read. Each maps to an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("not an HL7 v2 message: {0}")]
    NotHl7(String),
    #[error("MSH-10 (message control id) is empty")]
    NoControlId,
    #[error("message type {0} is not accepted; send ORU^R01")]
    UnsupportedType(String),
}

/// A coded element (CE/CWE): identifier, text and coding system, then the alternate triple.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coded {
    pub code: String,
    pub text: String,
    pub system: String,
    pub alt_code: String,
    pub alt_text: String,
    pub alt_system: String,
}

impl Coded {
    /// Every non-empty identifier and text of the element, for matching against a table.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        [&self.code, &self.text, &self.alt_code, &self.alt_text]
            .into_iter()
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }
}

/// The header fields Keta reads (MSH).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// MSH-3, first component.
    pub sending_application: String,
    /// MSH-4, first component.
    pub sending_facility: String,
    /// MSH-7 as written.
    pub message_time: String,
    /// MSH-9: message code and trigger event, e.g. `ORU^R01`.
    pub message_type: String,
    /// MSH-10: the control id the ACK echoes.
    pub control_id: String,
    /// MSH-11 (P production, D debugging, T training).
    pub processing_id: String,
    /// MSH-12.
    pub version: String,
}

/// One OBX result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObxResult {
    /// OBX-2 (NM for a number).
    pub value_type: String,
    /// OBX-3.
    pub identifier: Coded,
    /// OBX-5, first repetition, as written.
    pub value: String,
    /// OBX-6.
    pub units: Coded,
    /// OBX-11 (F final, R not verified, C corrected, P preliminary, X cannot be obtained, D deleted, W wrong).
    pub status: String,
    /// OBX-14 as written, else the enclosing OBR-7, else MSH-7.
    pub observed_at: String,
}

/// An ORU^R01 message with the parts Keta uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OruMessage {
    pub header: Header,
    /// PV1-3 (assigned location: point of care^room^bed...) as written, if present.
    pub location: Option<String>,
    pub results: Vec<ObxResult>,
}

/// Reads the header of any HL7 v2 message (what an ACK needs), even one Keta will refuse.
pub fn parse_header(text: &str) -> Result<Header, MessageError> {
    let msg = parse(text)?;
    header_of(&msg)
}

fn parse(text: &str) -> Result<Message<'_>, MessageError> {
    if !text.starts_with("MSH") {
        return Err(MessageError::NotHl7("it does not start with an MSH segment".into()));
    }
    Message::parse_with_lenient_newlines(text, true).map_err(|e| MessageError::NotHl7(short(&e.to_string())))
}

/// Error texts from the parser can quote the input; keep them short (no patient data in logs).
fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

fn header_of(msg: &Message<'_>) -> Result<Header, MessageError> {
    let msh = msg.segment("MSH").ok_or_else(|| MessageError::NotHl7("no MSH segment".into()))?;
    let field = |n: usize| msh.field(n).map(|f| f.raw_value().to_string()).unwrap_or_default();
    let first = |n: usize| {
        msh.field(n).and_then(|f| f.component(1)).map(|c| c.raw_value().to_string()).unwrap_or_else(|| field(n))
    };
    let message_type = match msh.field(9) {
        Some(f) => {
            let code = f.component(1).map(|c| c.raw_value()).unwrap_or_default();
            let event = f.component(2).map(|c| c.raw_value()).unwrap_or_default();
            format!("{code}^{event}")
        }
        None => String::new(),
    };
    Ok(Header {
        sending_application: first(3),
        sending_facility: first(4),
        message_time: field(7),
        message_type,
        control_id: field(10),
        processing_id: first(11),
        version: first(12),
    })
}

fn coded(f: Option<&hl7_parser::message::Field<'_>>) -> Coded {
    let Some(f) = f else { return Coded::default() };
    let c = |n: usize| f.component(n).map(|c| c.raw_value().trim().to_string()).unwrap_or_default();
    Coded { code: c(1), text: c(2), system: c(3), alt_code: c(4), alt_text: c(5), alt_system: c(6) }
}

/// Parses an ORU^R01. Only the message type and the control id are required here; what the
/// results mean is decided by [`crate::mapping`].
pub fn parse_oru(text: &str) -> Result<OruMessage, MessageError> {
    let msg = parse(text)?;
    let header = header_of(&msg)?;
    if header.control_id.trim().is_empty() {
        return Err(MessageError::NoControlId);
    }
    if header.message_type != "ORU^R01" {
        return Err(MessageError::UnsupportedType(short(&header.message_type)));
    }
    let mut location = None;
    let mut results = Vec::new();
    let mut obr_time = String::new();
    for seg in msg.segments() {
        let raw = |n: usize| seg.field(n).map(|f| f.raw_value().to_string()).unwrap_or_default();
        match seg.name {
            "PV1" => {
                let l = raw(3);
                if !l.trim().is_empty() {
                    location = Some(l);
                }
            }
            "OBR" => obr_time = raw(7),
            "OBX" => {
                let own = raw(14);
                let observed_at = [own, obr_time.clone(), header.message_time.clone()]
                    .into_iter()
                    .find(|t| !t.trim().is_empty())
                    .unwrap_or_default();
                results.push(ObxResult {
                    value_type: raw(2).trim().to_string(),
                    identifier: coded(seg.field(3)),
                    value: seg
                        .field(5)
                        .and_then(|f| f.repeat(1))
                        .map(|r| r.raw_value().trim().to_string())
                        .unwrap_or_default(),
                    units: coded(seg.field(6)),
                    status: raw(11).trim().to_string(),
                    observed_at,
                });
            }
            _ => {}
        }
    }
    Ok(OruMessage { header, location, results })
}

/// An HL7 timestamp (DTM/TS: `YYYYMMDDHHMM[SS[.S...]][+/-ZZZZ]`) as a UTC time. A time
/// without an offset is read in `local_offset` (the clinic's setting). Precision coarser
/// than minutes is refused: a reading needs its minute.
pub fn parse_hl7_time(s: &str, local_offset: UtcOffset) -> Option<OffsetDateTime> {
    // TS may carry a precision component (`time^precision`); only the first is the time.
    let s = s.split('^').next().unwrap_or("").trim();
    let ts: TimeStamp = s.parse().ok()?;
    let date = Date::from_calendar_date(i32::from(ts.year), Month::try_from(ts.month?).ok()?, ts.day?).ok()?;
    let nanos = ts.microsecond.unwrap_or(0).checked_mul(1000)?;
    let t = Time::from_hms_nano(ts.hour?, ts.minute?, ts.second.unwrap_or(0), nanos).ok()?;
    let offset = match ts.offset {
        Some(o) => {
            let minutes = i8::try_from(o.minutes).ok()?;
            UtcOffset::from_hms(o.hours, if o.hours < 0 { -minutes } else { minutes }, 0).ok()?
        }
        None => local_offset,
    };
    Some(PrimitiveDateTime::new(date, t).assume_offset(offset).to_offset(UtcOffset::UTC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const ORU: &str = "MSH|^~\\&|MONITOR|CHAIR3GW|KETA|CLINIC|20261207101500+0000||ORU^R01^ORU_R01|MSG0001|P|2.6\r\
PID|||123^^^MRN||DOE^JANE\r\
PV1||O|INFUSION^^CHAIR3\r\
OBR|1|||182777000^monitoring of patient^SNOMED-CT|||20261207101455+0000\r\
OBX|1|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC||128|266016^MDC_DIM_MMHG^MDC|||||R\r\
OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||R|||20261207101458+0000\r";

    #[test]
    fn the_header_bed_and_results_are_read() {
        let m = parse_oru(ORU).unwrap();
        assert_eq!(m.header.control_id, "MSG0001");
        assert_eq!(m.header.message_type, "ORU^R01");
        assert_eq!(m.header.sending_facility, "CHAIR3GW");
        assert_eq!(m.header.version, "2.6");
        assert_eq!(m.location.as_deref(), Some("INFUSION^^CHAIR3"));
        assert_eq!(m.results.len(), 2);
        assert_eq!(m.results[0].identifier.code, "150021");
        assert_eq!(m.results[0].identifier.text, "MDC_PRESS_BLD_NONINV_SYS");
        assert_eq!(m.results[0].value, "128");
        assert_eq!(m.results[0].units.text, "MDC_DIM_MMHG");
        assert_eq!(m.results[0].observed_at, "20261207101455+0000", "OBR-7 when OBX-14 is empty");
        assert_eq!(m.results[1].observed_at, "20261207101458+0000", "OBX-14 when present");
    }

    #[test]
    fn other_message_types_and_missing_control_ids_are_named() {
        let adt = ORU.replace("ORU^R01^ORU_R01", "ADT^A01");
        assert_eq!(parse_oru(&adt), Err(MessageError::UnsupportedType("ADT^A01".into())));
        let no_id = ORU.replace("|MSG0001|", "||");
        assert_eq!(parse_oru(&no_id), Err(MessageError::NoControlId));
        assert!(matches!(parse_oru("hello"), Err(MessageError::NotHl7(_))));
        // The header of a refused message is still readable for its ACK.
        assert_eq!(parse_header(&adt).unwrap().control_id, "MSG0001");
    }

    #[test]
    fn newline_separated_segments_are_accepted() {
        let m = parse_oru(&ORU.replace('\r', "\n")).unwrap();
        assert_eq!(m.results.len(), 2);
    }

    #[test]
    fn hl7_times_become_utc() {
        let utc = UtcOffset::UTC;
        assert_eq!(parse_hl7_time("20261207101455+0000", utc), Some(datetime!(2026-12-07 10:14:55 UTC)));
        assert_eq!(parse_hl7_time("202612071014-0500", utc), Some(datetime!(2026-12-07 15:14 UTC)));
        assert_eq!(parse_hl7_time("20261207101455.25+0100", utc), Some(datetime!(2026-12-07 09:14:55.25 UTC)));
        // No offset: the clinic's local offset.
        let local = UtcOffset::from_hms(2, 0, 0).unwrap();
        assert_eq!(parse_hl7_time("20261207101455", local), Some(datetime!(2026-12-07 08:14:55 UTC)));
        // Too coarse or not a time.
        assert_eq!(parse_hl7_time("20261207", utc), None);
        assert_eq!(parse_hl7_time("", utc), None);
        assert_eq!(parse_hl7_time("20261307101455", utc), None);
    }
}
