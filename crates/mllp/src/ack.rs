//! General acknowledgements (ACK) in HL7 v2 original mode: MSA-1 says what happened to the
//! message, MSA-2 echoes its control id (MSH-10) so the sender can match them.
//!
//! * `AA` accepted: the readings are stored (or were already, for a retransmission);
//! * `AE` application error: the message was read and kept, but its readings are not
//!   attached to a chart (unknown device, empty chair, implausible value...); resending it
//!   will not help, the nurse reviews it;
//! * `AR` rejected: not something Keta takes (not HL7, not ORU^R01, too large), or Keta
//!   could not store it now; the sender may resend.

use time::OffsetDateTime;

use crate::message::Header;

/// MSA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    Accept,
    Error,
    Reject,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "AA",
            Self::Error => "AE",
            Self::Reject => "AR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Accept, Self::Error, Self::Reject].into_iter().find(|c| c.as_str() == s)
    }
}

/// Escapes text for a field with the standard separators `|^~\&`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '~' => out.push_str("\\R\\"),
            '&' => out.push_str("\\T\\"),
            // Segment and frame bytes never go inside a field.
            '\r' | '\n' | '\u{0b}' | '\u{1c}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An HL7 v2 timestamp in UTC with its offset, to the second (`YYYYMMDDHHMMSS+0000`).
pub fn hl7_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The message header (MSH) of a message Keta writes: its ACKs and the simulator's ORU^R01.
/// The one place an MSH is put together. Fields are given encoded (components joined with
/// `^`, data escaped with [`escape`] by the caller).
#[derive(Debug, Clone, Copy)]
pub struct Msh<'a> {
    /// MSH-3 and MSH-4.
    pub sending_application: &'a str,
    pub sending_facility: &'a str,
    /// MSH-5 and MSH-6.
    pub receiving_application: &'a str,
    pub receiving_facility: &'a str,
    /// MSH-7.
    pub at: OffsetDateTime,
    /// MSH-9, e.g. `ACK^R01^ACK`.
    pub message_type: &'a str,
    /// MSH-10.
    pub control_id: &'a str,
    /// MSH-11 and MSH-12.
    pub processing_id: &'a str,
    pub version: &'a str,
    /// MSH-15 and MSH-16 (accept and application acknowledgement types), if sent.
    pub ack_types: Option<(&'a str, &'a str)>,
}

impl Msh<'_> {
    /// The segment, without its terminating carriage return.
    pub fn segment(&self) -> String {
        let mut out = format!(
            "MSH|^~\\&|{}|{}|{}|{}|{}||{}|{}|{}|{}",
            self.sending_application,
            self.sending_facility,
            self.receiving_application,
            self.receiving_facility,
            hl7_time(self.at),
            self.message_type,
            self.control_id,
            self.processing_id,
            self.version,
        );
        if let Some((accept, application)) = self.ack_types {
            out.push_str(&format!("|||{accept}|{application}"));
        }
        out
    }
}

/// Builds the ACK for a message whose header could be read (`original`), or for a frame that
/// is not HL7 at all (`None`: MSA-2 is empty, as there is no control id to echo).
/// `ack_control_id` is the ACK's own MSH-10. Text is escaped; it must not carry patient data.
pub fn build_ack(
    original: Option<&Header>,
    code: AckCode,
    text: &str,
    ack_control_id: &str,
    now: OffsetDateTime,
) -> String {
    let h = original.cloned().unwrap_or_default();
    let version = if h.version.trim().is_empty() { "2.5.1".to_string() } else { escape(h.version.trim()) };
    let processing = if h.processing_id.trim().is_empty() { "P".to_string() } else { escape(h.processing_id.trim()) };
    let msh = Msh {
        sending_application: "KETA",
        sending_facility: "KETA",
        receiving_application: &escape(&h.sending_application),
        receiving_facility: &escape(&h.sending_facility),
        at: now,
        message_type: "ACK^R01^ACK",
        control_id: &escape(ack_control_id),
        processing_id: &processing,
        version: &version,
        ack_types: None,
    }
    .segment();
    let mut out = format!("{msh}\rMSA|{}|{}", code.as_str(), escape(&h.control_id));
    if !text.is_empty() {
        out.push('|');
        out.push_str(&escape(text));
    }
    out.push('\r');
    if code != AckCode::Accept {
        // ERR-3 (HL7 table 0357: 207 application internal error, 200 unsupported message type),
        // ERR-4 severity E, ERR-8 the text for the sender's operator.
        let err = if code == AckCode::Reject {
            "200^Unsupported message type^HL70357"
        } else {
            "207^Application internal error^HL70357"
        };
        out.push_str(&format!("ERR|||{err}|E||||{}\r", escape(text)));
    }
    out
}

/// Reads MSA-1 and MSA-2 from an ACK (for the simulator and the tests).
pub fn read_ack(text: &str) -> Option<(AckCode, String)> {
    let msa = text.split(['\r', '\n']).find(|s| s.starts_with("MSA|"))?;
    let mut f = msa.split('|').skip(1);
    let code = AckCode::parse(f.next()?)?;
    Some((code, f.next().unwrap_or("").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse_header;
    use time::macros::datetime;

    #[test]
    fn an_ack_echoes_the_control_id_and_is_itself_hl7() {
        let h = parse_header("MSH|^~\\&|MON|GW3|KETA|CLINIC|20261207101500||ORU^R01|CTRL-42|P|2.6\r").unwrap();
        let now = datetime!(2026-12-07 10:15:01 UTC);
        let ack = build_ack(Some(&h), AckCode::Accept, "", "K1", now);
        assert_eq!(ack, "MSH|^~\\&|KETA|KETA|MON|GW3|20261207101501+0000||ACK^R01^ACK|K1|P|2.6\rMSA|AA|CTRL-42\r");
        assert_eq!(read_ack(&ack), Some((AckCode::Accept, "CTRL-42".into())));
        let back = parse_header(&ack).unwrap();
        assert_eq!(back.message_type, "ACK^R01");
    }

    #[test]
    fn errors_carry_their_reason_escaped_in_msa_and_err() {
        let h = parse_header("MSH|^~\\&|MON|GW3|||20261207101500||ORU^R01|C1|P|2.5\r").unwrap();
        let ack = build_ack(Some(&h), AckCode::Error, "unknown device a|b", "K2", datetime!(2026-12-07 10:15 UTC));
        assert!(ack.contains("\rMSA|AE|C1|unknown device a\\F\\b\r"), "{ack}");
        assert!(ack.contains("\rERR|||207^"), "{ack}");
        let rejected = build_ack(None, AckCode::Reject, "not HL7", "K3", datetime!(2026-12-07 10:15 UTC));
        assert!(rejected.contains("\rMSA|AR||not HL7\r"), "{rejected}");
        assert_eq!(read_ack(&rejected), Some((AckCode::Reject, String::new())));
    }

    #[test]
    fn escaping_removes_every_separator_and_frame_byte() {
        let e = escape("a|b^c~d\\e&f\rg\u{1c}h");
        assert!(!e.contains(['|', '^', '~', '&', '\r', '\u{1c}']));
        assert_eq!(e, "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f g h");
    }
}
