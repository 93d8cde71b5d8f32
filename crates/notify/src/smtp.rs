//! E-mail over SMTP through `lettre`. One connection per message: reminders are few, and a
//! fresh connection cannot be left half-broken by an earlier failure.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::delivery::ConfigError;
use crate::message::{MessageError, mask_email};
use crate::{DeliveryError, Mailer, Message, Receipt, SendFuture};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// Plain SMTP: for a relay on the same host or private network.
    None,
    /// STARTTLS, required (`smtp://...?tls=required`); `tls` feature only.
    StartTls,
    /// TLS from the first byte (`smtps://`); `tls` feature only.
    Wrapper,
}

/// What `KETA_SMTP_URL` says, parsed.
#[derive(Clone, PartialEq, Eq)]
struct SmtpUrl {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    security: Security,
    hello_name: Option<String>,
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("security", &self.security)
            .field("hello_name", &self.hello_name)
            .finish()
    }
}

impl SmtpUrl {
    fn parse(text: &str) -> Result<Self, ConfigError> {
        // url's errors describe the problem without echoing the input (which may hold a password).
        let url = url::Url::parse(text.trim()).map_err(|e| ConfigError::MalformedUrl(e.to_string()))?;
        let security = match url.scheme() {
            "smtp" => Security::None,
            "smtps" => Security::Wrapper,
            other => return Err(ConfigError::UnsupportedScheme(other.to_string())),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            _ => return Err(ConfigError::MalformedUrl("no host".into())),
        };
        let mut security = security;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref(), security) {
                ("tls", "required", Security::None) => security = Security::StartTls,
                ("tls", _, _) => {
                    return Err(ConfigError::MalformedUrl(
                        "the only tls setting is tls=required, on smtp:// (smtps:// is always TLS)".into(),
                    ));
                }
                _ => return Err(ConfigError::MalformedUrl(format!("unknown setting '{key}'"))),
            }
        }
        if url.fragment().is_some() {
            return Err(ConfigError::MalformedUrl("unexpected '#' part".into()));
        }
        let port = url.port().unwrap_or(match security {
            Security::None => 25,
            Security::StartTls => 587,
            Security::Wrapper => 465,
        });
        let decode = |s: &str, what: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| ConfigError::MalformedUrl(format!("the {what} is not UTF-8 once percent-decoded")))
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err(ConfigError::MalformedUrl("a password without a user name".into())),
            (user, password) => Some((decode(user, "user name")?, decode(password.unwrap_or(""), "password")?)),
        };
        let hello_name = match url.path().trim_matches('/') {
            "" => None,
            name if name.contains('/') => {
                return Err(ConfigError::MalformedUrl("the path may only name the EHLO host".into()));
            }
            name => Some(name.to_string()),
        };
        Ok(Self { host, port, credentials, security, hello_name })
    }

    /// `smtp://host:port`, without credentials: safe to log.
    fn redacted(&self) -> String {
        let scheme = if self.security == Security::Wrapper { "smtps" } else { "smtp" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let user = self.credentials.as_ref().map(|(u, _)| format!("{u}@")).unwrap_or_default();
        let tls = if self.security == Security::StartTls { "?tls=required" } else { "" };
        format!("{scheme}://{user}{host}:{}{tls}", self.port)
    }

    fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
    }

    fn transport_builder(&self) -> Result<AsyncSmtpTransportBuilder, ConfigError> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone()).port(self.port);
        if let Some(name) = &self.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        match self.security {
            Security::None => Ok(builder),
            #[cfg(feature = "tls")]
            Security::StartTls | Security::Wrapper => {
                use lettre::transport::smtp::client::{Tls, TlsParameters};
                let params = TlsParameters::new(self.host.clone()).map_err(|e| ConfigError::Tls(e.to_string()))?;
                Ok(builder.tls(if self.security == Security::Wrapper {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }))
            }
            #[cfg(not(feature = "tls"))]
            Security::StartTls | Security::Wrapper => Err(ConfigError::TlsNotBuilt),
        }
    }
}

/// Sends e-mail over SMTP. See the crate documentation for the URL forms and TLS.
pub struct SmtpMailer {
    url: SmtpUrl,
    builder: AsyncSmtpTransportBuilder,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl SmtpMailer {
    /// The longest a send may take, from connecting to the server's final answer.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A mailer for `url` (`smtp://[user:pass@]host[:port][/ehlo-name]`, see the crate docs)
    /// sending as `from` (`reminders@clinic.example` or `Clinic name <reminders@clinic.example>`).
    /// Nothing is contacted until the first send.
    pub fn new(url: &str, from: &str) -> Result<Self, ConfigError> {
        let url = SmtpUrl::parse(url)?;
        if from.trim().is_empty() {
            return Err(ConfigError::MissingFrom);
        }
        if from.chars().any(char::is_control) {
            return Err(ConfigError::InvalidFrom("contains a line break or control character".into()));
        }
        let from: Mailbox = from.trim().parse().map_err(|e: lettre::address::AddressError| {
            ConfigError::InvalidFrom(format!("{e}; use name@domain or 'Name <name@domain>'"))
        })?;
        if url.credentials.is_some() && url.security == Security::None && !url.is_loopback() {
            tracing::warn!(
                server = %url.redacted(),
                "SMTP credentials will cross the network unencrypted; relay through a local mail server \
                 or build with the `tls` feature"
            );
        }
        let builder = url.transport_builder()?;
        let transport = builder.clone().timeout(Some(Self::DEFAULT_TIMEOUT)).build();
        Ok(Self { url, builder, transport, from, timeout: Self::DEFAULT_TIMEOUT })
    }

    /// The same mailer with another overall send timeout (also used for each SMTP step).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.transport = self.builder.clone().timeout(Some(timeout)).build();
        self.timeout = timeout;
        self
    }

    /// The server, without credentials: `smtp://relay.local:25`. Safe to log.
    pub fn server(&self) -> String {
        self.url.redacted()
    }

    /// The From mailbox, as it appears in the header.
    pub fn from(&self) -> String {
        self.from.to_string()
    }

    /// The timeout in force.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn build_email(&self, message: &Message, message_id: &str) -> Result<lettre::Message, DeliveryError> {
        let to: Address = message.to.parse().map_err(|_| MessageError::InvalidAddress {
            address: mask_email(&message.to),
            reason: "not accepted by the mail library",
        })?;
        lettre::Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(message.subject.clone())
            .message_id(Some(message_id.to_string()))
            .header(ContentType::TEXT_PLAIN)
            .body(message.text.clone())
            .map_err(|e| {
                DeliveryError::Invalid(MessageError::InvalidAddress {
                    address: mask_email(&message.to),
                    reason: if matches!(e, lettre::error::Error::MissingTo) {
                        "no recipient"
                    } else {
                        "the message could not be built"
                    },
                })
            })
    }
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.url.redacted())
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, message: &'a Message) -> SendFuture<'a> {
        Box::pin(async move {
            message.validate()?;
            let message_id = new_message_id(self.from.email.domain());
            let email = self.build_email(message, &message_id)?;
            let response = match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
                Err(_elapsed) => Err(DeliveryError::Timeout(self.timeout)),
                Ok(result) => result.map_err(|e| classify(&e, self.timeout)),
            };
            match response {
                Ok(response) => {
                    let answer = format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" "));
                    tracing::info!(
                        channel = "smtp",
                        to = %mask_email(&message.to),
                        subject = %message.subject,
                        message_id = %message_id,
                        server_answer = %answer,
                        "e-mail sent"
                    );
                    Ok(Receipt::new("smtp").with_message_id(message_id).with_response(answer))
                }
                Err(error) => {
                    tracing::warn!(
                        channel = "smtp",
                        to = %mask_email(&message.to),
                        server = %self.url.redacted(),
                        %error,
                        "e-mail not sent"
                    );
                    Err(error)
                }
            }
        })
    }
}

/// Maps lettre's error onto ours, keeping the server's words.
fn classify(error: &lettre::transport::smtp::Error, timeout: Duration) -> DeliveryError {
    if error.is_timeout() {
        return DeliveryError::Timeout(timeout);
    }
    if let Some(code) = error.status() {
        let text = std::error::Error::source(error).map(|s| s.to_string()).unwrap_or_default();
        return DeliveryError::Rejected { code: code.into(), text };
    }
    // Connection refused, reset, a garbled reply, no usable AUTH mechanism: all say the
    // conversation with the server failed; the message states which.
    DeliveryError::Connection(error.to_string())
}

/// `<time.counter.pid@domain>`: unique per process without a random number generator.
fn new_message_id(domain: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("<{nanos:x}.{n:x}.{:x}@{domain}>", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> SmtpUrl {
        SmtpUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn plain_urls() {
        let u = url("smtp://127.0.0.1:2525");
        assert_eq!((u.host.as_str(), u.port, u.security), ("127.0.0.1", 2525, Security::None));
        assert_eq!(u.credentials, None);
        assert_eq!(u.hello_name, None);
        assert_eq!(url("smtp://relay.local").port, 25);
        assert_eq!(url("smtp://[::1]:25").host, "::1");
        assert_eq!(url("smtp://[::1]:25").redacted(), "smtp://[::1]:25");
        assert_eq!(url("smtp://relay.local/keta.clinic.example").hello_name.as_deref(), Some("keta.clinic.example"));
    }

    #[test]
    fn credentials_are_percent_decoded_and_never_shown() {
        let u = url("smtp://reminders%40clinic.example:p%40ss%3Aw%2Frd@relay.local:587");
        assert_eq!(u.credentials, Some(("reminders@clinic.example".into(), "p@ss:w/rd".into())));
        assert_eq!(u.redacted(), "smtp://reminders@clinic.example@relay.local:587");
        assert!(!format!("{u:?}").contains("p@ss"));
        let m = SmtpMailer::new("smtp://u:secret@127.0.0.1:25", "a@b.example").unwrap();
        assert!(!format!("{m:?}").contains("secret"));
        assert!(!m.server().contains("secret"));
    }

    #[test]
    fn malformed_urls_are_refused() {
        for s in [
            "",
            "relay.local:25",
            "smtp://",
            "smtp://relay.local:99999",
            "smtp://:pw@relay.local",
            "smtp://relay.local?tls=opportunistic",
            "smtp://relay.local?tsl=required",
            "smtp://relay.local/a/b",
        ] {
            assert!(SmtpUrl::parse(s).is_err(), "{s:?} should be refused");
        }
        assert!(matches!(SmtpUrl::parse("http://relay.local"), Err(ConfigError::UnsupportedScheme(s)) if s == "http"));
    }

    #[test]
    fn parse_errors_do_not_echo_the_password() {
        let err = SmtpMailer::new("smtp://user:hunter2@relay.local:notaport", "a@b.example").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_urls_need_the_feature() {
        assert_eq!(SmtpMailer::new("smtps://relay.example", "a@b.example").unwrap_err(), ConfigError::TlsNotBuilt);
        assert_eq!(
            SmtpMailer::new("smtp://relay.example?tls=required", "a@b.example").unwrap_err(),
            ConfigError::TlsNotBuilt
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_urls_with_the_feature() {
        assert_eq!(url("smtps://relay.example").port, 465);
        assert_eq!(url("smtp://relay.example?tls=required").port, 587);
        assert!(SmtpMailer::new("smtps://relay.example", "a@b.example").is_ok());
    }

    #[test]
    fn the_from_address_is_checked() {
        let u = "smtp://127.0.0.1:25";
        assert_eq!(SmtpMailer::new(u, " ").unwrap_err(), ConfigError::MissingFrom);
        assert!(matches!(SmtpMailer::new(u, "not an address"), Err(ConfigError::InvalidFrom(_))));
        assert!(matches!(SmtpMailer::new(u, "a@b.example\r\nBcc: x@y.example"), Err(ConfigError::InvalidFrom(_))));
        let m = SmtpMailer::new(u, "Keta Clinic <reminders@clinic.example>").unwrap();
        assert_eq!(m.from(), "Keta Clinic <reminders@clinic.example>");
        assert_eq!(m.timeout(), Duration::from_secs(10));
        assert_eq!(m.with_timeout(Duration::from_millis(500)).timeout(), Duration::from_millis(500));
    }

    #[test]
    fn message_ids_are_unique_and_use_the_sender_domain() {
        let a = new_message_id("clinic.example");
        let b = new_message_id("clinic.example");
        assert_ne!(a, b);
        assert!(a.starts_with('<') && a.ends_with("@clinic.example>"), "{a}");
    }
}
