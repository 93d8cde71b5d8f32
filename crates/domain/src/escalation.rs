//! Escalation of urgent alerts nobody has acknowledged.
//!
//! An urgent alert (a positive PHQ-9 item 9, a blood pressure past the session-safety limits)
//! that stays unacknowledged longer than the clinic allows is *escalated*, once: every board at
//! its site shows it more prominently (with a sound the site may turn on), and the prescriber on
//! duty at the site is sent a message through the clinic's delivery (e-mail or text).
//!
//! # Settings
//!
//! * [`EscalationSettings::escalate_after_minutes`] — clinic-wide. clinical-reference §4 gives
//!   no time within which an urgent alert must be acknowledged (§1.2 asks only for "same-day
//!   clinical review" of a positive item 9), so there is **no default**: unset means no alert
//!   is ever escalated, and the settings API and the board say so.
//! * [`OnDuty`] — per site: the prescriber on duty (an account of the site with the prescriber
//!   role), the address or number the message goes to, and whether boards sound an alarm.
//!
//! Pure: the caller passes `now`.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::error::{DomainError, Validator};
use crate::records::{Alert, AlertLevel};

/// The longest wait the clinic may set: a day (an alert open longer has long been missed).
pub const MAX_ESCALATE_AFTER_MINUTES: u32 = 24 * 60;

/// The clinic's escalation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationSettings {
    /// Minutes an urgent alert may stay unacknowledged before it is escalated. Clinic setting
    /// with no default (clinical-reference §4 gives no figure); `null`: never escalated.
    #[serde(default)]
    pub escalate_after_minutes: Option<u32>,
}

impl EscalationSettings {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        if let Some(m) = self.escalate_after_minutes {
            v.check(
                (1..=MAX_ESCALATE_AFTER_MINUTES).contains(&m),
                "escalate_after_minutes",
                format!("give 1 to {MAX_ESCALATE_AFTER_MINUTES} minutes, or null for no escalation"),
            );
        }
        v.finish()
    }

    /// When `alert` is due for escalation: urgent, still open, and raised at least the set
    /// number of minutes ago. `None` when the setting is unset or the alert never escalates.
    pub fn due_at(&self, alert: &Alert) -> Option<OffsetDateTime> {
        let after = self.escalate_after_minutes?;
        (alert.level == AlertLevel::Urgent && alert.acknowledged_at.is_none())
            .then(|| alert.raised_at + Duration::minutes(i64::from(after)))
    }

    /// Whether `alert` should be escalated at `now` (the caller checks it was not already).
    pub fn is_due(&self, alert: &Alert, now: OffsetDateTime) -> bool {
        self.due_at(alert).is_some_and(|t| t <= now)
    }
}

/// Who is on duty at a site, and how its boards announce an escalation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnDuty {
    /// Username of the prescriber on duty (an account with the prescriber role at the site);
    /// `null`: nobody, so escalations show on the boards only.
    #[serde(default)]
    pub prescriber: Option<String>,
    /// Where the escalation goes: an e-mail address, or (without one) a mobile number.
    #[serde(default)]
    pub contact_email: Option<String>,
    #[serde(default)]
    pub contact_phone: Option<String>,
    /// Boards at the site sound a tone when an alert is escalated (each screen must allow it once).
    #[serde(default)]
    pub alert_sound: bool,
}

impl OnDuty {
    /// Checks the shape; the store checks that the account exists, is a prescriber and works at
    /// the site.
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        let email = self.contact_email.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let phone = self.contact_phone.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if let Some(p) = &self.prescriber {
            v.check(!p.trim().is_empty(), "prescriber", "name the prescriber's username, or null for nobody");
            v.check(
                email.is_some() || phone.is_some(),
                "contact_email",
                "give an e-mail address or a mobile number to reach the prescriber on duty",
            );
        } else {
            v.check(
                email.is_none() && phone.is_none(),
                "prescriber",
                "name the prescriber on duty this contact belongs to",
            );
        }
        if let Some(e) = email {
            v.check(is_email(e), "contact_email", "use an address like name@clinic.example");
        }
        if let Some(p) = phone {
            v.check(is_phone(p), "contact_phone", "use 6-20 characters of digits, spaces, '+', '-' or parentheses");
        }
        v.finish()
    }
}

// The same shapes `keta_notify` checks before sending (the domain crate does no I/O).
fn is_email(s: &str) -> bool {
    s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || "<>,;:\"()[]\\".contains(c))
        && s.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && !d.is_empty() && !d.contains('@') && !d.starts_with('.') && !d.ends_with('.')
        })
}

fn is_phone(s: &str) -> bool {
    (6..=20).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c))
        && s.chars().any(|c| c.is_ascii_digit())
}

/// The message to the prescriber on duty. It may be read on a lock screen or by someone else,
/// so it names no patient and no finding: the site, when the alert was raised, how long it has
/// been open and where to look.
pub fn message(site_name: &str, raised_local: &str, open_minutes: i64, url: &str) -> (String, String) {
    let subject = format!("{site_name}: urgent alert not acknowledged for {open_minutes} min");
    let body = format!(
        "An urgent alert at {site_name}, raised at {raised_local}, has not been acknowledged after {open_minutes} minutes.\n\n\
         You are the prescriber on duty. Sign in to Keta to see it and record what was done:\n\n{url}\n\n\
         This message was sent by Keta. Do not reply to it.\n"
    );
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AlertId, PatientId, SiteId};
    use time::macros::datetime;

    const RAISED: OffsetDateTime = datetime!(2026-11-02 14:00 UTC);

    fn alert(level: AlertLevel) -> Alert {
        Alert {
            id: AlertId(1),
            site_id: SiteId(1),
            patient_id: PatientId(1),
            session_id: None,
            rule: "phq9_item9".into(),
            level,
            message: "PHQ-9 item 9 answered 2".into(),
            source: "§1.2".into(),
            raised_at: RAISED,
            acknowledged_at: None,
            acknowledged_by: None,
            acknowledgement_note: None,
        }
    }

    #[test]
    fn unset_never_escalates() {
        let s = EscalationSettings::default();
        assert_eq!(s.escalate_after_minutes, None);
        assert!(!s.is_due(&alert(AlertLevel::Urgent), RAISED + Duration::days(3)));
        let s: EscalationSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, EscalationSettings::default());
    }

    #[test]
    fn an_open_urgent_alert_is_due_once_the_set_minutes_have_passed() {
        let s = EscalationSettings { escalate_after_minutes: Some(15) };
        let a = alert(AlertLevel::Urgent);
        assert_eq!(s.due_at(&a), Some(RAISED + Duration::minutes(15)));
        assert!(!s.is_due(&a, RAISED + Duration::minutes(14) + Duration::seconds(59)));
        assert!(s.is_due(&a, RAISED + Duration::minutes(15)));
        // Warnings never escalate; nor does an acknowledged alert.
        assert!(!s.is_due(&alert(AlertLevel::Warning), RAISED + Duration::hours(5)));
        let acknowledged = Alert { acknowledged_at: Some(RAISED + Duration::minutes(5)), ..a };
        assert!(!s.is_due(&acknowledged, RAISED + Duration::hours(5)));
    }

    #[test]
    fn settings_name_what_to_fix() {
        for bad in [0, MAX_ESCALATE_AFTER_MINUTES + 1] {
            let err = EscalationSettings { escalate_after_minutes: Some(bad) }.validate().unwrap_err().to_string();
            assert!(err.contains("escalate_after_minutes"), "{err}");
        }
        assert!(EscalationSettings { escalate_after_minutes: Some(10) }.validate().is_ok());
        assert!(serde_json::from_str::<EscalationSettings>(r#"{"minutes": 5}"#).is_err(), "unknown fields refused");
    }

    #[test]
    fn on_duty_needs_a_way_to_reach_the_prescriber() {
        let none = OnDuty::default();
        assert!(none.validate().is_ok(), "nobody on duty: boards only");
        let dr = OnDuty { prescriber: Some("dr.demo".into()), ..Default::default() };
        assert!(dr.validate().unwrap_err().to_string().contains("contact_email"));
        let by_mail = OnDuty { contact_email: Some("dr@clinic.example".into()), ..dr.clone() };
        assert!(by_mail.validate().is_ok());
        let by_text = OnDuty { contact_phone: Some("+1 555 010 0199".into()), ..dr.clone() };
        assert!(by_text.validate().is_ok());
        let bad = OnDuty { contact_email: Some("dr@clinic.example\nBcc: x@y".into()), ..dr.clone() };
        assert!(bad.validate().unwrap_err().to_string().contains("contact_email"));
        let orphan = OnDuty { contact_email: Some("dr@clinic.example".into()), ..Default::default() };
        assert!(orphan.validate().unwrap_err().to_string().contains("prescriber"));
    }

    #[test]
    fn the_message_names_no_patient_or_finding() {
        let (subject, body) = message("Austin", "14:00", 15, "https://keta.clinic.example/patients/7#alerts");
        assert_eq!(subject, "Austin: urgent alert not acknowledged for 15 min");
        assert!(body.contains("raised at 14:00") && body.contains("after 15 minutes"), "{body}");
        assert!(body.contains("https://keta.clinic.example/patients/7#alerts"), "{body}");
        assert!(!body.contains("PHQ-9") && !body.contains("item 9"), "{body}");
    }
}
