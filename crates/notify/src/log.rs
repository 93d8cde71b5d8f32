//! Log-only senders: the demo clinic and tests. Nothing leaves the machine.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::message::{mask_email, mask_phone, validate_phone};
use crate::{Mailer, Message, Receipt, SendFuture, TextSender};

/// Keeps the newest `capacity` items, dropping the oldest.
struct Recent<T> {
    capacity: usize,
    items: Mutex<VecDeque<T>>,
}

impl<T: Clone> Recent<T> {
    fn new(capacity: usize) -> Self {
        Self { capacity, items: Mutex::new(VecDeque::with_capacity(capacity.min(1024))) }
    }
    /// A panic elsewhere while holding the lock leaves a valid queue, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn push(&self, item: T) {
        if self.capacity == 0 {
            return;
        }
        let mut items = self.lock();
        while items.len() >= self.capacity {
            items.pop_front();
        }
        items.push_back(item);
    }
    fn all(&self) -> Vec<T> {
        self.lock().iter().cloned().collect()
    }
}

/// A [`Mailer`] that writes one `tracing` info line per message (masked recipient and subject,
/// never the body) and keeps the last `capacity` messages in memory for the demo and tests.
pub struct LogMailer {
    recent: Recent<Message>,
}

impl LogMailer {
    /// How many messages [`LogMailer::default`] keeps.
    pub const DEFAULT_CAPACITY: usize = 100;

    pub fn new(capacity: usize) -> Self {
        Self { recent: Recent::new(capacity) }
    }

    /// The messages "sent" so far, oldest first (at most the capacity).
    pub fn sent(&self) -> Vec<Message> {
        self.recent.all()
    }

    /// The newest message, if any.
    pub fn last(&self) -> Option<Message> {
        self.recent.lock().back().cloned()
    }

    /// Forgets the kept messages.
    pub fn clear(&self) {
        self.recent.lock().clear();
    }
}

impl Default for LogMailer {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl Mailer for LogMailer {
    fn send<'a>(&'a self, message: &'a Message) -> SendFuture<'a> {
        Box::pin(async move {
            message.validate()?;
            tracing::info!(
                channel = "log",
                to = %mask_email(&message.to),
                subject = %message.subject,
                "e-mail not sent (log-only delivery)"
            );
            self.recent.push(message.clone());
            Ok(Receipt::new("log"))
        })
    }
}

/// A text message as a [`LogTextSender`] kept it.
#[derive(Clone, PartialEq, Eq)]
pub struct TextMessage {
    pub to: String,
    pub text: String,
}

impl std::fmt::Debug for TextMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextMessage")
            .field("to", &mask_phone(&self.to))
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .finish()
    }
}

/// A [`TextSender`] that logs a masked line per message (never the text) and keeps the last
/// `capacity` messages. It is what the demo uses; a clinic replaces it with its provider.
pub struct LogTextSender {
    recent: Recent<TextMessage>,
}

impl LogTextSender {
    pub const DEFAULT_CAPACITY: usize = 100;

    pub fn new(capacity: usize) -> Self {
        Self { recent: Recent::new(capacity) }
    }

    /// The messages "sent" so far, oldest first (at most the capacity).
    pub fn sent(&self) -> Vec<TextMessage> {
        self.recent.all()
    }
}

impl Default for LogTextSender {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl TextSender for LogTextSender {
    fn send<'a>(&'a self, to_phone: &'a str, text: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            validate_phone(to_phone)?;
            tracing::info!(
                channel = "log-text",
                to = %mask_phone(to_phone),
                chars = text.chars().count(),
                "text message not sent (log-only delivery)"
            );
            self.recent.push(TextMessage { to: to_phone.to_string(), text: text.to_string() });
            Ok(Receipt::new("log-text"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeliveryError, MessageError};

    fn msg(i: usize) -> Message {
        Message::new(format!("patient{i}@example.org"), format!("Check-in {i}"), format!("https://x/{i}")).unwrap()
    }

    #[tokio::test]
    async fn keeps_the_newest_messages_up_to_capacity() {
        let mailer = LogMailer::new(2);
        for i in 0..3 {
            let receipt = mailer.send(&msg(i)).await.unwrap();
            assert_eq!(receipt, Receipt::new("log"));
        }
        assert_eq!(mailer.sent(), vec![msg(1), msg(2)]);
        assert_eq!(mailer.last(), Some(msg(2)));
        mailer.clear();
        assert!(mailer.sent().is_empty());
    }

    #[tokio::test]
    async fn capacity_zero_keeps_nothing_but_still_accepts() {
        let mailer = LogMailer::new(0);
        assert!(mailer.send(&msg(0)).await.is_ok());
        assert!(mailer.sent().is_empty());
    }

    #[tokio::test]
    async fn refuses_an_invalid_message_and_keeps_nothing() {
        let mailer = LogMailer::default();
        let injected =
            Message { to: "jane@example.org".into(), subject: "Hi\r\nBcc: x@example.org".into(), text: String::new() };
        assert_eq!(mailer.send(&injected).await, Err(DeliveryError::Invalid(MessageError::HeaderInjection)));
        let bad_to = Message { to: "jane".into(), subject: "Hi".into(), text: String::new() };
        assert!(matches!(mailer.send(&bad_to).await, Err(DeliveryError::Invalid(MessageError::InvalidAddress { .. }))));
        assert!(mailer.sent().is_empty());
    }

    #[tokio::test]
    async fn usable_through_a_shared_trait_object() {
        let log = std::sync::Arc::new(LogMailer::default());
        let dynamic: std::sync::Arc<dyn Mailer> = log.clone();
        dynamic.send(&msg(7)).await.unwrap();
        assert_eq!(log.sent(), vec![msg(7)]);
    }

    #[tokio::test]
    async fn text_sender_validates_and_keeps() {
        let sms = LogTextSender::new(5);
        assert_eq!(sms.send("+1 555 123 4567", "Check-in: https://x/1").await.unwrap().channel, "log-text");
        assert!(matches!(
            sms.send("call me", "x").await,
            Err(DeliveryError::Invalid(MessageError::InvalidPhone { .. }))
        ));
        assert_eq!(
            sms.sent(),
            vec![TextMessage { to: "+1 555 123 4567".into(), text: "Check-in: https://x/1".into() }]
        );
    }
}
