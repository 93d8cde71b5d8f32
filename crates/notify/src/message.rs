//! The message a reminder becomes, and the checks every sender applies before sending it.

use std::fmt;

/// One plain-text e-mail to one patient.
///
/// The fields are public so callers can build one directly; senders call [`Message::validate`]
/// anyway, so an unchecked message is refused at send time rather than put on the wire.
/// `Debug` masks the address and leaves out the text (it carries a single-use link).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The recipient's address, `local@domain`.
    pub to: String,
    /// One line of text; line breaks are refused (they would start new mail headers).
    pub subject: String,
    /// The plain-text body.
    pub text: String,
}

impl Message {
    /// A message, validated.
    pub fn new(
        to: impl Into<String>,
        subject: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<Self, MessageError> {
        let m = Self { to: to.into(), subject: subject.into(), text: text.into() };
        m.validate()?;
        Ok(m)
    }

    /// Checks the address ([`validate_email`]) and that the subject holds no line break or
    /// other control character (header injection).
    pub fn validate(&self) -> Result<(), MessageError> {
        validate_email(&self.to)?;
        if self.subject.chars().any(|c| c.is_control() && c != '\t') {
            return Err(MessageError::HeaderInjection);
        }
        Ok(())
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("to", &mask_email(&self.to))
            .field("subject", &self.subject)
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .finish()
    }
}

/// Why a message or a phone number was refused before sending. Addresses and numbers appear
/// masked, so the error can be logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("invalid e-mail address {address}: {reason}")]
    InvalidAddress { address: String, reason: &'static str },
    #[error("the subject contains a line break or control character")]
    HeaderInjection,
    #[error("invalid phone number {phone}: {reason}")]
    InvalidPhone { phone: String, reason: &'static str },
}

fn bad_address(address: &str, reason: &'static str) -> MessageError {
    MessageError::InvalidAddress { address: mask_email(address), reason }
}

/// A minimal check of an e-mail address: one `@` with something on each side, no whitespace or
/// control characters (which would let a value inject SMTP commands or headers), none of the
/// characters that change a header's meaning (`<>,;:"()[]\`), at most 254 characters. Quoted
/// local parts are not supported. The mail server has the final word.
pub fn validate_email(address: &str) -> Result<(), MessageError> {
    if address.len() > 254 {
        return Err(bad_address(address, "longer than 254 characters"));
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad_address(address, "contains whitespace or a line break"));
    }
    if address.chars().any(|c| "<>,;:\"()[]\\".contains(c)) {
        return Err(bad_address(address, "contains one of < > , ; : \" ( ) [ ] \\"));
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Err(bad_address(address, "has no '@'"));
    };
    if domain.contains('@') {
        return Err(bad_address(address, "has more than one '@'"));
    }
    if local.is_empty() || local.len() > 64 {
        return Err(bad_address(address, "the part before '@' must be 1 to 64 characters"));
    }
    if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Err(bad_address(address, "the part after '@' is not a domain name"));
    }
    Ok(())
}

/// The phone-number shape Keta stores on patient records: 6 to 20 characters of digits, spaces,
/// `+`, `-` or parentheses, with at least one digit. A provider normalises it further (E.164).
pub fn validate_phone(phone: &str) -> Result<(), MessageError> {
    let ok = (6..=20).contains(&phone.len())
        && phone.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c))
        && phone.chars().any(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(MessageError::InvalidPhone {
            phone: mask_phone(phone),
            reason: "use 6-20 characters of digits, spaces, '+', '-' or parentheses",
        })
    }
}

/// `jane@example.org` -> `j***@example.org`; anything without an `@` -> `***`.
pub fn mask_email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).filter(|c| !c.is_control()).collect();
            let domain: String = domain.chars().filter(|c| !c.is_control()).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// `+1 (555) 123-4567` -> `***4567`: the last four digits, only when the number has at least
/// eight (so a short number is not shown nearly whole).
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 8 {
        let tail: String = digits[digits.len() - 4..].iter().collect();
        format!("***{tail}")
    } else {
        "***".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_pass() {
        for a in ["jane@example.org", "j.doe+keta@mail.example.co.uk", "x@y", "ÅSA@exämple.se"] {
            assert_eq!(validate_email(a), Ok(()), "{a}");
        }
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for a in [
            "",
            "jane",
            "@example.org",
            "jane@",
            "jane@@example.org",
            "jane@ex@ample.org",
            "jane doe@example.org",
            "jane@example.org\r\nBcc: all@example.org",
            "jane@example.org\n",
            "jane\t@example.org",
            "Jane <jane@example.org>",
            "jane@example.org,eve@example.org",
            "jane@.example.org",
            "jane@example..org",
        ] {
            assert!(matches!(validate_email(a), Err(MessageError::InvalidAddress { .. })), "{a:?} should be refused");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert!(validate_email(&long).is_err());
    }

    #[test]
    fn a_subject_with_a_line_break_is_header_injection() {
        for s in ["Reminder\r\nBcc: everyone@example.org", "Reminder\nX: y", "Reminder\r", "Nul\0"] {
            assert_eq!(Message::new("jane@example.org", s, "body"), Err(MessageError::HeaderInjection), "{s:?}");
        }
        assert!(Message::new("jane@example.org", "Your check-in for Tuesday\t(2 min)", "body").is_ok());
        assert!(Message::new("jane@example.org", "Rappel : séance de mardi", "body").is_ok());
    }

    #[test]
    fn the_body_may_hold_line_breaks() {
        let m = Message::new("jane@example.org", "Check-in", "Hello,\r\n\r\nhttps://clinic.example/c/abc\n").unwrap();
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn errors_and_debug_do_not_show_the_address_or_body() {
        let err = validate_email("jane.doe@example.org\n").unwrap_err();
        assert!(!err.to_string().contains("jane.doe"), "{err}");
        assert!(err.to_string().contains("j***@example.org"), "{err}");

        let m = Message::new("jane.doe@example.org", "Check-in", "https://clinic.example/c/SECRET").unwrap();
        let debug = format!("{m:?}");
        assert!(!debug.contains("SECRET") && !debug.contains("jane.doe"), "{debug}");
    }

    #[test]
    fn masks() {
        assert_eq!(mask_email("jane@example.org"), "j***@example.org");
        assert_eq!(mask_email("å@example.org"), "å***@example.org");
        assert_eq!(mask_email("@example.org"), "***@example.org");
        assert_eq!(mask_email("not an address"), "***");
        assert_eq!(mask_phone("+1 (555) 123-4567"), "***4567");
        assert_eq!(mask_phone("12345"), "***");
    }

    #[test]
    fn phones_follow_the_patient_record_rule() {
        for p in ["+1 (555) 123-4567", "0612345678", "555-0100"] {
            assert_eq!(validate_phone(p), Ok(()), "{p}");
        }
        for p in ["", "12345", "+1 555 CALL NOW", "555\r\n0100", "+-()  -+"] {
            assert!(matches!(validate_phone(p), Err(MessageError::InvalidPhone { .. })), "{p:?}");
        }
    }
}
