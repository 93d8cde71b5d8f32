//! Reminder delivery for Keta: e-mail and text messages to patients.
//!
//! Reminders (check-in links, session reminders) go out through two small interfaces so the
//! server never depends on one provider:
//!
//! * [`Mailer`]: e-mail. [`SmtpMailer`] speaks SMTP through `lettre`; [`LogMailer`] only logs a
//!   masked line and keeps the last messages in memory (the demo clinic and tests).
//! * [`TextSender`]: text messages (SMS). Keta ships only [`LogTextSender`]; a clinic plugs its
//!   provider in by implementing the trait (see below).
//!
//! [`Delivery`] bundles one of each and is what the server holds; [`Delivery::from_settings`]
//! builds it from the `smtp_url` and `mail_from` settings (`KETA_SMTP_URL`, `KETA_MAIL_FROM`,
//! resolved by `keta serve`; this crate never reads the environment).
//!
//! # SMTP and TLS
//!
//! `KETA_SMTP_URL` is `smtp://host:port` or `smtp://user:pass@host:port` (user and password
//! percent-encoded; the port defaults to 25). Keta is built **without TLS** by default: the
//! connection is plain SMTP, meant for a mail server on the same host or private network
//! (Postfix, OpenSMTPD, a relay container) that forwards the mail over TLS to the clinic's
//! provider. Clinics that want Keta to talk to a remote provider directly build with the
//! `tls` cargo feature (`cargo build --release -p keta-cli --features keta-notify/tls`), which
//! adds rustls and accepts `smtps://host:465` (TLS from the first byte) and
//! `smtp://host:587?tls=required` (STARTTLS, refusing to continue without it). Without the
//! feature those URLs are refused at start-up rather than silently sent in clear.
//!
//! An optional path names the EHLO host, `smtp://relay.local:25/keta.clinic.example`; the default
//! is the address literal `[127.0.0.1]`.
//!
//! # What is logged
//!
//! A reminder's body carries a single-use link, so no implementation here logs a body. Log lines
//! name the channel, a masked recipient (`j***@example.org`, `***4567`) and the subject.
//!
//! # Plugging in a text-message provider
//!
//! Implement [`TextSender`] for a type holding the provider's client and credentials, then hand
//! it to the [`Delivery`] that `keta serve` builds:
//!
//! ```
//! use std::sync::Arc;
//! use keta_notify::{Delivery, DeliveryError, Receipt, SendFuture, TextSender};
//!
//! struct ClinicSmsGateway {/* HTTP client, account id, API key from the clinic's config */}
//!
//! impl TextSender for ClinicSmsGateway {
//!     fn send<'a>(&'a self, to_phone: &'a str, text: &'a str) -> SendFuture<'a> {
//!         Box::pin(async move {
//!             keta_notify::validate_phone(to_phone)?;
//!             // POST to the provider here; map its failures onto DeliveryError
//!             // (Connection, Rejected { code, text }, Timeout).
//!             let _ = text;
//!             Ok(Receipt::new("clinic-sms").with_message_id("provider-id-123"))
//!         })
//!     }
//! }
//!
//! // In `keta serve`: `Delivery::from_settings(smtp_url, mail_from)?` and then the same call.
//! let delivery = Delivery::log_only().with_text(Arc::new(ClinicSmsGateway {}));
//! # let _ = delivery;
//! ```
//!
//! The sender must apply its own timeout (a few seconds) so a slow provider cannot hold a
//! reminder job forever, and must not log the text, which carries the link.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

mod delivery;
mod log;
mod message;
mod smtp;

pub use delivery::{ConfigError, Delivery, MAIL_FROM_ENV, SMTP_URL_ENV};
pub use log::{LogMailer, LogTextSender, TextMessage};
pub use message::{Message, MessageError, mask_email, mask_phone, validate_email, validate_phone};
pub use smtp::SmtpMailer;

/// The future every sender returns: boxed so the traits work as `Arc<dyn Mailer>`.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Receipt, DeliveryError>> + Send + 'a>>;

/// Sends e-mail.
pub trait Mailer: Send + Sync {
    /// Delivers one message (or hands it to the next relay). Implementations validate the
    /// message first ([`Message::validate`]) and never log its body.
    fn send<'a>(&'a self, message: &'a Message) -> SendFuture<'a>;
}

/// Sends text messages (SMS) through a provider the clinic chooses.
pub trait TextSender: Send + Sync {
    /// Delivers `text` to `to_phone` (as stored on the patient record: digits, spaces, `+`, `-`,
    /// parentheses). Implementations validate the number ([`validate_phone`]), normalise it as
    /// their provider requires, and never log the text.
    fn send<'a>(&'a self, to_phone: &'a str, text: &'a str) -> SendFuture<'a>;
}

/// What a channel reports back for a message it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The channel that took the message: `"smtp"`, `"log"`, `"log-text"`, or a provider's name.
    pub channel: &'static str,
    /// An id for finding the message later: the `Message-ID` header for e-mail, the provider's
    /// message id for text messages.
    pub message_id: Option<String>,
    /// The provider's answer, e.g. SMTP's `2.0.0 Ok: queued as 4B7C1`.
    pub response: Option<String>,
}

impl Receipt {
    pub fn new(channel: &'static str) -> Self {
        Self { channel, message_id: None, response: None }
    }
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }
    pub fn with_response(mut self, response: impl Into<String>) -> Self {
        self.response = Some(response.into());
        self
    }
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The message itself is unusable (bad address, header injection); retrying will not help.
    #[error(transparent)]
    Invalid(#[from] MessageError),
    /// The server or provider could not be reached, or the conversation broke off.
    #[error("could not reach the server: {0}")]
    Connection(String),
    /// The server answered with a refusal (SMTP 4xx/5xx, or a provider's error status).
    #[error("the server refused the message: {code} {text}")]
    Rejected { code: u16, text: String },
    /// No answer in time.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// No sender is configured for this channel (e.g. text messages without a provider).
    #[error("{0} delivery is not configured")]
    NotConfigured(&'static str),
}

impl DeliveryError {
    /// Whether trying again later may succeed: connection failures, timeouts and SMTP 4xx
    /// replies. Invalid messages, permanent refusals and missing configuration are final.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connection(_) | Self::Timeout(_) => true,
            Self::Rejected { code, .. } => (400..500).contains(code),
            Self::Invalid(_) | Self::NotConfigured(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        assert!(DeliveryError::Connection("refused".into()).is_transient());
        assert!(DeliveryError::Timeout(Duration::from_secs(10)).is_transient());
        assert!(DeliveryError::Rejected { code: 451, text: "try later".into() }.is_transient());
        assert!(!DeliveryError::Rejected { code: 550, text: "no such user".into() }.is_transient());
        assert!(!DeliveryError::NotConfigured("text message").is_transient());
        assert!(!DeliveryError::Invalid(MessageError::HeaderInjection).is_transient());
    }

    #[test]
    fn traits_are_usable_as_shared_trait_objects() {
        fn assert_send_sync<T: Send + Sync + ?Sized>() {}
        assert_send_sync::<dyn Mailer>();
        assert_send_sync::<dyn TextSender>();
        let _: std::sync::Arc<dyn Mailer> = std::sync::Arc::new(LogMailer::new(1));
        let _: std::sync::Arc<dyn TextSender> = std::sync::Arc::new(LogTextSender::new(1));
    }
}
