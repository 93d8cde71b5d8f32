//! SmtpMailer (keta-notify) against the local SMTP sink: what a patient's mail server would
//! receive, and how failures surface. Its own small test binary: it needs no database.

use std::time::{Duration, Instant};

use keta_notify::{Delivery, DeliveryError, Mailer, Message, SmtpMailer};
use keta_testkit::smtp_sink::SmtpSink;

const FROM: &str = "Keta Clinic <reminders@clinic.example>";
const WAIT: Duration = Duration::from_secs(5);

/// Longer than a quoted-printable line (76), with `=` and `&` that QP must escape or keep.
const LINK: &str = "https://clinic.example/checkin/redeem?token=Zm9vYmFyYmF6cXV4cXV1eHF1dXpxdXV4cXV1eA&next=%2Fpatient%2Fcheckins%2Fphq9";

#[tokio::test]
async fn a_reminder_arrives_with_recipient_subject_and_whole_link() {
    assert!(LINK.len() > 76);
    let sink = SmtpSink::start().await;
    let mailer = sink.mailer(FROM);
    let text = format!("Hello Zoë,\n\nYour weekly check-in is ready:\n{LINK}\n\nThe link works once.\n");
    let message = Message::new("jane.doe@example.org", "Your weekly check-in", text).unwrap();

    let receipt = mailer.send(&message).await.expect("sent");
    assert_eq!(receipt.channel, "smtp");
    assert!(receipt.response.as_deref().is_some_and(|r| r.starts_with("250") && r.contains("SINK1")), "{receipt:?}");

    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.mail_from, "reminders@clinic.example");
    assert_eq!(mail.recipients, vec!["jane.doe@example.org".to_string()]);
    assert_eq!(mail.subject().as_deref(), Some("Your weekly check-in"));
    assert_eq!(mail.header("To").as_deref(), Some("jane.doe@example.org"));
    // lettre quotes a display name with spaces: "Keta Clinic" <reminders@clinic.example>.
    assert_eq!(mail.header("From").map(|f| f.replace('"', "")).as_deref(), Some(FROM));
    assert_eq!(mail.header("Message-ID"), receipt.message_id);
    assert!(mail.header("Content-Type").is_some_and(|c| c.starts_with("text/plain")));
    assert_eq!(mail.auth, None);

    // The wire form is folded quoted-printable: the link never appears whole in it...
    assert_eq!(mail.header("Content-Transfer-Encoding").as_deref(), Some("quoted-printable"));
    assert!(!mail.raw().contains(LINK));
    assert!(mail.raw().lines().all(|l| l.len() <= 78), "{}", mail.raw());
    // ...and decodes back to exactly what was sent.
    let body = mail.body_text();
    assert!(body.contains(LINK), "{body}");
    assert!(body.starts_with("Hello Zoë,\n"), "{body}");
}

#[tokio::test]
async fn a_non_ascii_subject_and_dot_lines_survive() {
    let sink = SmtpSink::start().await;
    let mailer = sink.mailer("reminders@clinic.example");
    // Lines starting with '.' are dot-stuffed on the wire; a lone '.' would end DATA early.
    let text = "Line one\n.\n..two dots\n.hidden\nlast";
    let message = Message::new("a@example.org", "Rappel : séance de mardi à 9 h", text).unwrap();
    mailer.send(&message).await.expect("sent");

    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.subject().as_deref(), Some("Rappel : séance de mardi à 9 h"));
    assert_eq!(mail.body_text().trim_end(), text);
}

#[tokio::test]
async fn credentials_in_the_url_are_used_for_auth() {
    let sink = SmtpSink::start().await;
    let url = format!("smtp://keta:p%40ss%20word@{}", sink.addr());
    let mailer = SmtpMailer::new(&url, FROM).unwrap();
    mailer.send(&Message::new("a@example.org", "Hi", "body").unwrap()).await.expect("sent");
    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.auth, Some(("keta".to_string(), "p@ss word".to_string())));
}

#[tokio::test]
async fn several_messages_in_order_through_delivery_from_settings() {
    let sink = SmtpSink::start().await;
    let delivery = Delivery::from_settings(Some(&sink.url()), Some(FROM)).unwrap();
    assert!(delivery.description().contains(&sink.url()), "{}", delivery.description());
    for i in 0..3 {
        let m = Message::new(format!("patient{i}@example.org"), format!("Reminder {i}"), "text").unwrap();
        delivery.send_mail(&m).await.expect("sent");
    }
    let mails = sink.wait_for(3, WAIT).await;
    let subjects: Vec<_> = mails.iter().map(|m| m.subject().unwrap_or_default()).collect();
    assert_eq!(subjects, ["Reminder 0", "Reminder 1", "Reminder 2"]);
    assert_eq!(sink.messages().len(), 3);
}

#[tokio::test]
async fn a_refused_recipient_is_rejected_with_the_servers_code() {
    let sink = SmtpSink::start().await;
    sink.refuse_recipient("gone@example.org");
    let err =
        sink.mailer(FROM).send(&Message::new("Gone@example.org", "Hi", "body").unwrap()).await.expect_err("refused");
    match &err {
        DeliveryError::Rejected { code, text } => {
            assert_eq!(*code, 550);
            assert!(text.contains("Recipient address rejected"), "{text}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn no_server_listening_is_a_quick_connection_error() {
    // A port that was free a moment ago and has nobody listening now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mailer = SmtpMailer::new(&format!("smtp://127.0.0.1:{port}"), FROM).unwrap();
    let started = Instant::now();
    let err = mailer.send(&Message::new("a@example.org", "Hi", "body").unwrap()).await.expect_err("refused");
    assert!(matches!(err, DeliveryError::Connection(_)), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // Accepts the connection and never sends the greeting.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mailer = SmtpMailer::new(&format!("smtp://{addr}"), FROM).unwrap().with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = mailer.send(&Message::new("a@example.org", "Hi", "body").unwrap()).await.expect_err("timed out");
    assert_eq!(err, DeliveryError::Timeout(Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    silent.abort();
}

#[tokio::test]
async fn an_invalid_message_never_reaches_the_server() {
    let sink = SmtpSink::start().await;
    let injected =
        Message { to: "a@example.org".into(), subject: "Hi\r\nBcc: all@example.org".into(), text: "x".into() };
    assert!(matches!(sink.mailer(FROM).send(&injected).await, Err(DeliveryError::Invalid(_))));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(sink.messages().is_empty());
}
