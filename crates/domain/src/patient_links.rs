//! Patient check-in links: the state of a link at a moment, what the patient is told when a
//! link cannot be used, and what a positive safety answer does between sessions.
//!
//! A link is a capability: whoever holds its token may answer one check-in for one patient,
//! once, inside its window. The token carries nothing about the patient; the server keeps only
//! its SHA-256 (see `keta-store`). This module is pure: the caller passes `now`.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::DomainError;
use crate::instruments::SourceRef;

/// Length of a link token: 32 random bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// Whether `s` has the shape of a token (checked before any lookup, so junk is refused cheaply
/// and never reaches the database).
pub fn is_well_formed_token(s: &str) -> bool {
    s.len() == TOKEN_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkPurpose {
    /// A scheduled or on-demand check-in (an instrument or a question set).
    Checkin,
    /// The at-home pre-dose screen.
    PreDose,
    /// The sitter's own confirmation that they are present for a home dose.
    Sitter,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Checkin => "checkin",
            LinkPurpose::PreDose => "pre_dose",
            LinkPurpose::Sitter => "sitter",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "checkin" => Some(LinkPurpose::Checkin),
            "pre_dose" => Some(LinkPurpose::PreDose),
            "sitter" => Some(LinkPurpose::Sitter),
            _ => None,
        }
    }
}

/// The times that decide whether a link can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTimes {
    pub opens_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub completed_at: Option<OffsetDateTime>,
    /// When Keta recorded the expiry (a sweep, a late visit, or a stopped session closing the
    /// link early): a recorded expiry closes the link even inside its window.
    pub expired_at: Option<OffsetDateTime>,
}

/// Where a link stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    /// Too early: the check-in opens later.
    NotYetOpen {
        #[serde(with = "time::serde::rfc3339")]
        opens_at: OffsetDateTime,
    },
    Open,
    /// Used: single use, so it cannot be answered again.
    Completed {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    Expired {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// The state at `now`. Completion wins over expiry (a link finished in time stays "used");
/// the window is `opens_at <= now < expires_at`.
pub fn state(t: &LinkTimes, now: OffsetDateTime) -> LinkState {
    if let Some(at) = t.completed_at {
        return LinkState::Completed { at };
    }
    // Closed at the end of its window, or earlier when Keta closed it: the patient is told
    // when it really closed, never a date still to come.
    let closes = t.expired_at.map_or(t.expires_at, |e| e.min(t.expires_at));
    if now >= closes {
        return LinkState::Expired { at: closes };
    }
    if now < t.opens_at {
        return LinkState::NotYetOpen { opens_at: t.opens_at };
    }
    LinkState::Open
}

/// What the patient reads when a link cannot be used: a title and what to do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
// Named apart in the OpenAPI document: another `Refusal` would take its place.
#[schema(as = LinkRefusal)]
pub struct Refusal {
    pub title: String,
    pub body: String,
}

/// The message for a link that cannot be answered now (`None` when it is open). Dates are
/// formatted by the caller in the site's time zone and passed in `when`.
pub fn refusal(state: LinkState, when: &str, clinic_phone: Option<&str>) -> Option<Refusal> {
    let contact = match clinic_phone {
        Some(p) => format!("If you need to tell your care team something, call the clinic on {p}."),
        None => "If you need to tell your care team something, contact the clinic.".to_string(),
    };
    Some(match state {
        LinkState::Open => return None,
        LinkState::Completed { .. } => Refusal {
            title: "This check-in is already done".into(),
            body: format!(
                "You finished this check-in on {when}, and each link works once. Thank you. Your next check-in will come with a new link. {contact}"
            ),
        },
        LinkState::Expired { .. } => Refusal {
            title: "This link has expired".into(),
            body: format!(
                "This check-in closed on {when}, so it can no longer be answered. Your care team can see that it was missed, and your next check-in will come with a new link. {contact}"
            ),
        },
        LinkState::NotYetOpen { .. } => Refusal {
            title: "This check-in is not open yet".into(),
            body: format!("Please come back to this link from {when}. {contact}"),
        },
    })
}

/// The message for a token Keta does not know (mistyped, cut short, or from another clinic).
pub fn unknown_link() -> Refusal {
    Refusal {
        title: "We could not find this check-in".into(),
        body: "This link is not valid. Check that you opened the whole link from your message (links are long and are sometimes cut off when copied). If it still does not work, contact the clinic. If you are in danger or might harm yourself, call your local emergency number now.".into(),
    }
}

/// What a positive safety answer from the phone does (data/rules/remote-safety.toml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteSafetyPolicy {
    /// Every safety flag from a phone answer opens an urgent alert.
    pub urgent_from_phone: bool,
    /// What the patient reads, with the site's crisis line, after a positive safety answer,
    /// until the site writes its own (the panel is always shown).
    pub default_crisis_instructions: String,
    pub source: SourceRef,
    /// Validity of a link issued on demand (a product setting).
    pub on_demand_link_hours: u32,
}

const EMBEDDED: &str = include_str!("../../../data/rules/remote-safety.toml");

impl RemoteSafetyPolicy {
    pub fn from_toml(text: &str) -> Result<Self, DomainError> {
        let p: RemoteSafetyPolicy =
            toml::from_str(text).map_err(|e| DomainError::field("remote-safety.toml", e.to_string()))?;
        if !(1..=24 * 31).contains(&p.on_demand_link_hours) {
            return Err(DomainError::field("on_demand_link_hours", "must be between 1 and 744 hours (31 days)"));
        }
        if p.default_crisis_instructions.trim().chars().count() < 20 {
            return Err(DomainError::field("default_crisis_instructions", "write what the patient should do now"));
        }
        if p.source.section.trim().is_empty() {
            return Err(DomainError::field("source", "name the source section"));
        }
        Ok(p)
    }

    /// The embedded policy.
    pub fn builtin() -> &'static RemoteSafetyPolicy {
        static P: OnceLock<RemoteSafetyPolicy> = OnceLock::new();
        P.get_or_init(|| RemoteSafetyPolicy::from_toml(EMBEDDED).expect("data/rules/remote-safety.toml is valid"))
    }
}

/// A reminder's words: the e-mail's subject and body. The one home of reminder wording
/// (the web layer fills in the link and the times, in the site's clock). No name, no
/// diagnosis: the message may be read by someone else, so it says only which clinic is
/// asking and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderWording {
    pub subject: String,
    pub body: String,
}

impl ReminderWording {
    /// The e-mail for a link of `purpose` at `url`, open until `open_until`, from `clinic`;
    /// with the patient's next booked session when there is one (never for a sitter).
    pub fn email(purpose: LinkPurpose, clinic: &str, url: &str, open_until: &str, next_session: Option<&str>) -> Self {
        let (subject, what) = match purpose {
            LinkPurpose::Sitter => (
                format!("{clinic}: please confirm you are with your friend for their dose"),
                "You were named as the person staying with someone for their home treatment today. Please open this link to confirm you are with them",
            ),
            LinkPurpose::PreDose => (
                format!("{clinic}: your safety check before today's dose"),
                "Before taking today's dose, please answer a few safety questions",
            ),
            LinkPurpose::Checkin => {
                (format!("{clinic}: your check-in"), "Your care team asks you to answer a short check-in")
            }
        };
        let mut body = format!(
            "{what}:\n\n{url}\n\nThe link works once and is open until {open_until}. You can save your answers and finish later from the same link.\n\nThis message was sent by {clinic}. Do not reply to it. If you are in crisis or feel unsafe, call your crisis line or local emergency number now.\n"
        );
        if let Some(next) = next_session.filter(|_| purpose != LinkPurpose::Sitter) {
            body.push_str(&format!("\nYour next session at {clinic}: {next}.\n"));
        }
        Self { subject, body }
    }

    /// The text message: the clinic's name and the link, nothing about the patient.
    pub fn text_message(clinic: &str, url: &str) -> String {
        format!("{clinic}: {url}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const OPENS: OffsetDateTime = datetime!(2026-11-20 09:00 UTC);

    fn times() -> LinkTimes {
        LinkTimes { opens_at: OPENS, expires_at: OPENS + Duration::hours(72), completed_at: None, expired_at: None }
    }

    #[test]
    fn window_is_half_open() {
        let t = times();
        assert_eq!(state(&t, OPENS - Duration::seconds(1)), LinkState::NotYetOpen { opens_at: OPENS });
        assert_eq!(state(&t, OPENS), LinkState::Open);
        assert_eq!(state(&t, t.expires_at - Duration::seconds(1)), LinkState::Open);
        assert_eq!(state(&t, t.expires_at), LinkState::Expired { at: t.expires_at });
    }

    #[test]
    fn completed_links_stay_used_even_after_expiry() {
        let done = OPENS + Duration::hours(1);
        let t = LinkTimes { completed_at: Some(done), ..times() };
        assert_eq!(state(&t, OPENS + Duration::hours(2)), LinkState::Completed { at: done });
        assert_eq!(state(&t, OPENS + Duration::days(30)), LinkState::Completed { at: done });
    }

    #[test]
    fn a_recorded_expiry_closes_the_link_inside_its_window() {
        let t = LinkTimes { expired_at: Some(OPENS + Duration::hours(1)), ..times() };
        assert_eq!(state(&t, OPENS + Duration::hours(2)), LinkState::Expired { at: OPENS + Duration::hours(1) });
        // A late visit records the expiry after the window: it closed when the window did.
        let late = LinkTimes { expired_at: Some(times().expires_at + Duration::days(2)), ..times() };
        assert_eq!(state(&late, times().expires_at + Duration::days(3)), LinkState::Expired { at: times().expires_at });
    }

    #[test]
    fn refusals_say_what_to_do() {
        let used = refusal(LinkState::Completed { at: OPENS }, "20 Nov", Some("555-0100")).unwrap();
        assert!(used.body.contains("works once") && used.body.contains("555-0100"), "{used:?}");
        let expired = refusal(LinkState::Expired { at: OPENS }, "23 Nov", None).unwrap();
        assert!(expired.body.contains("new link") && expired.body.contains("contact the clinic"));
        assert!(refusal(LinkState::Open, "", None).is_none());
    }

    #[test]
    fn token_shape() {
        assert!(is_well_formed_token(&"a".repeat(43)));
        assert!(is_well_formed_token("AbC-_0123456789abcdefghijABCDEFGHIJ012345678"[..43].as_ref()));
        assert!(!is_well_formed_token(&"a".repeat(42)));
        assert!(!is_well_formed_token(&format!("{}%", "a".repeat(42))));
        assert!(!is_well_formed_token(&format!("{}/", "a".repeat(42))));
    }

    #[test]
    fn builtin_policy_loads_and_bad_hours_are_refused() {
        let p = RemoteSafetyPolicy::builtin();
        assert!(p.urgent_from_phone && p.default_crisis_instructions.contains("crisis line"));
        let bad = EMBEDDED.replace("on_demand_link_hours = 72", "on_demand_link_hours = 0");
        assert!(RemoteSafetyPolicy::from_toml(&bad).unwrap_err().to_string().contains("on_demand_link_hours"));
    }
}
