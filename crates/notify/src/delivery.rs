//! [`Delivery`]: the senders a server holds, and how they are chosen from the settings.

use std::sync::Arc;

use crate::log::{LogMailer, LogTextSender};
use crate::smtp::SmtpMailer;
use crate::{DeliveryError, Mailer, Message, Receipt, TextSender};

/// The SMTP server, `smtp://[user:pass@]host[:port]`. Unset or empty: log-only delivery.
pub const SMTP_URL_ENV: &str = "KETA_SMTP_URL";
/// The From mailbox, `reminders@clinic.example` or `Clinic <reminders@clinic.example>`;
/// required when [`SMTP_URL_ENV`] is set.
pub const MAIL_FROM_ENV: &str = "KETA_MAIL_FROM";

/// Why the delivery settings cannot be used. Messages name the setting and never repeat a
/// password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the SMTP URL ({SMTP_URL_ENV}) is malformed: {0}; expected smtp://[user:pass@]host[:port]")]
    MalformedUrl(String),
    #[error("the SMTP URL ({SMTP_URL_ENV}) must start with smtp:// (or smtps:// with the `tls` feature), not {0}://")]
    UnsupportedScheme(String),
    #[error(
        "this build of Keta has no TLS: smtps:// and ?tls=required need the keta-notify `tls` feature; \
         without it, relay through a local mail server (smtp://127.0.0.1:25)"
    )]
    TlsNotBuilt,
    #[error("TLS could not be set up for the SMTP server: {0}")]
    Tls(String),
    #[error("{MAIL_FROM_ENV} must be set when {SMTP_URL_ENV} is, e.g. 'Clinic <reminders@clinic.example>'")]
    MissingFrom,
    #[error("the From address ({MAIL_FROM_ENV}) is not usable: {0}")]
    InvalidFrom(String),
}

/// How reminders leave Keta: one [`Mailer`] and, when the clinic has a provider, one
/// [`TextSender`]. Cheap to clone; share one per server.
#[derive(Clone)]
pub struct Delivery {
    mail: Arc<dyn Mailer>,
    text: Option<Arc<dyn TextSender>>,
    description: String,
}

impl Delivery {
    /// E-mail through `mail`; no text messages until [`Delivery::with_text`].
    pub fn new(mail: Arc<dyn Mailer>) -> Self {
        Self { mail, text: None, description: "e-mail: custom mailer".into() }
    }

    /// Nothing leaves the machine: e-mail and text messages are logged (masked) and kept in
    /// memory. The demo clinic uses this.
    pub fn log_only() -> Self {
        Self {
            mail: Arc::new(LogMailer::default()),
            text: Some(Arc::new(LogTextSender::default())),
            description: "log only (e-mail and text messages are logged, not sent)".into(),
        }
    }

    /// The same delivery, sending text messages through `text` (the clinic's provider).
    pub fn with_text(mut self, text: Arc<dyn TextSender>) -> Self {
        self.text = Some(text);
        self
    }

    /// From the `smtp_url` ([`SMTP_URL_ENV`]) and `mail_from` ([`MAIL_FROM_ENV`]) settings:
    /// SMTP when the URL is set (the From address is then required), [`Delivery::log_only`]
    /// when it is not. Text messages stay log-only without SMTP and unconfigured with it, until
    /// a provider is added with [`Delivery::with_text`]. Empty or blank values count as unset.
    pub fn from_settings(smtp_url: Option<&str>, mail_from: Option<&str>) -> Result<Self, ConfigError> {
        match (present(smtp_url), present(mail_from)) {
            (None, _) => Ok(Self::log_only()),
            (Some(_), None) => Err(ConfigError::MissingFrom),
            (Some(url), Some(from)) => {
                let mailer = SmtpMailer::new(url, from)?;
                let description = format!("e-mail by SMTP via {} as {}", mailer.server(), mailer.from());
                Ok(Self { mail: Arc::new(mailer), text: None, description })
            }
        }
    }

    /// What this delivery does, for the start-up log (no credentials).
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn mailer(&self) -> &Arc<dyn Mailer> {
        &self.mail
    }

    pub fn text_sender(&self) -> Option<&Arc<dyn TextSender>> {
        self.text.as_ref()
    }

    /// Sends one e-mail.
    pub async fn send_mail(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        self.mail.send(message).await
    }

    /// Sends one text message; [`DeliveryError::NotConfigured`] when the clinic has no provider.
    pub async fn send_text(&self, to_phone: &str, text: &str) -> Result<Receipt, DeliveryError> {
        match &self.text {
            Some(sender) => sender.send(to_phone, text).await,
            None => Err(DeliveryError::NotConfigured("text message")),
        }
    }
}

/// The trimmed value, or None when it is missing or blank.
fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("description", &self.description)
            .field("text_messages", &self.text.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_url_delivery_is_log_only() {
        for url in [None, Some(""), Some("  ")] {
            let d = Delivery::from_settings(url, None).unwrap();
            assert!(d.description().starts_with("log only"), "{}", d.description());
            assert!(d.text_sender().is_some());
        }
    }

    #[test]
    fn with_a_url_the_from_address_is_required() {
        assert_eq!(Delivery::from_settings(Some("smtp://127.0.0.1:25"), None).unwrap_err(), ConfigError::MissingFrom);
        assert_eq!(
            Delivery::from_settings(Some("smtp://127.0.0.1:25"), Some(" ")).unwrap_err(),
            ConfigError::MissingFrom
        );
        let err = Delivery::from_settings(Some("smtp://127.0.0.1:25"), None).unwrap_err().to_string();
        assert!(err.contains(MAIL_FROM_ENV), "{err}");
    }

    #[test]
    fn a_malformed_url_is_a_clear_error() {
        let err = Delivery::from_settings(Some("smtp//relay"), Some("a@b.example")).unwrap_err();
        assert!(err.to_string().contains(SMTP_URL_ENV), "{err}");
        assert!(matches!(
            Delivery::from_settings(Some("imap://relay"), Some("a@b.example")),
            Err(ConfigError::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn smtp_delivery_describes_itself_without_the_password() {
        let d = Delivery::from_settings(Some("smtp://keta:s3cret@127.0.0.1:2525"), Some("Clinic <r@clinic.example>"))
            .unwrap();
        assert_eq!(d.description(), "e-mail by SMTP via smtp://keta@127.0.0.1:2525 as Clinic <r@clinic.example>");
        assert!(d.text_sender().is_none());
        assert!(!format!("{d:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn text_messages_without_a_provider_are_not_configured() {
        let d = Delivery::new(Arc::new(LogMailer::default()));
        assert_eq!(d.send_text("+1 555 123 4567", "hi").await, Err(DeliveryError::NotConfigured("text message")));
        let sms = Arc::new(LogTextSender::default());
        let d = d.with_text(sms.clone());
        assert!(d.send_text("+1 555 123 4567", "hi").await.is_ok());
        assert_eq!(sms.sent().len(), 1);
    }

    #[tokio::test]
    async fn send_mail_goes_through_the_mailer() {
        let log = Arc::new(LogMailer::default());
        let d = Delivery::new(log.clone());
        let m = Message::new("jane@example.org", "Check-in", "https://clinic.example/c/1").unwrap();
        assert_eq!(d.send_mail(&m).await.unwrap().channel, "log");
        assert_eq!(log.sent(), vec![m]);
    }
}
