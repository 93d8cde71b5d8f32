//! The body of a reminder carries a single-use link and its address identifies a patient: the
//! log-only senders' log lines show neither in full.
//!
//! This is the only test in its binary on purpose. `tracing` caches each call site's interest
//! process-wide; a thread-local subscriber set while other tests log in parallel can miss events.
//! Here the subscriber is global and nothing else runs.

use std::sync::{Arc, Mutex, PoisonError};

use keta_notify::{LogMailer, LogTextSender, Mailer, Message, TextSender};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_log_line_masks_the_recipient_and_leaves_out_the_body() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber in this binary");

    let m = Message::new("jane.doe@example.org", "Your check-in", "https://clinic.example/c/TOKEN123").unwrap();
    LogMailer::default().send(&m).await.unwrap();
    LogTextSender::default().send("+1 555 123 4567", "https://clinic.example/c/TOKEN456").await.unwrap();

    let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("j***@example.org") && out.contains("Your check-in"), "{out}");
    assert!(out.contains("***4567"), "{out}");
    for secret in ["TOKEN123", "TOKEN456", "jane.doe", "555 123"] {
        assert!(!out.contains(secret), "{secret} leaked into the log: {out}");
    }
}
