//! Sends escalated urgent alerts to the prescriber on duty.
//!
//! The server's sweep ([`crate::reminders::spawn_sweeper`]) calls [`escalate_and_send`] on every
//! tick: the store escalates, once each and audited, the open urgent alerts older than the
//! clinic's setting (`keta_domain::escalation`); each is then sent through the same delivery as
//! the reminders (e-mail, or a text message when the site gave only a mobile number), the result
//! is recorded on the escalation, and the boards are told to re-render.

use keta_domain::escalation;
use keta_notify::{DeliveryError, Message};
use keta_store::Store;
use keta_store::alerts::DueEscalation;

use crate::reminders::Reminders;
use crate::ui::clock::SiteClock;

/// What one escalation sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EscalationSummary {
    pub escalated: usize,
    pub sent: usize,
}

async fn send(r: &Reminders, e: &DueEscalation) -> Result<String, String> {
    let clock = SiteClock::named(&e.time_zone);
    let minutes = (e.escalation.escalated_at - e.alert.raised_at).whole_minutes();
    let url = format!("{}/patients/{}#alerts", r.public_url, e.alert.patient_id);
    let (subject, body) = escalation::message(&e.site_name, &clock.date_at(e.alert.raised_at), minutes, &url);
    let sent = match (&e.contact_email, &e.contact_phone) {
        (Some(to), _) => match Message::new(to.as_str(), subject, body) {
            Ok(m) => r.delivery.send_mail(&m).await.map(|rc| format!("e-mail via {}", rc.channel)),
            Err(err) => Err(DeliveryError::from(err)),
        },
        (None, Some(phone)) => {
            let text = format!("{subject}: {url}");
            r.delivery.send_text(phone, &text).await.map(|rc| format!("text via {}", rc.channel))
        }
        (None, None) => {
            return Err("no prescriber on duty with a contact at this site: shown on the boards only".into());
        }
    };
    sent.map_err(|e| e.to_string())
}

/// Escalates what is due and sends each escalation to the prescriber on duty.
pub async fn escalate_and_send(store: &Store, r: &Reminders) -> keta_store::Result<EscalationSummary> {
    let due = store.escalate_due_alerts().await?;
    let mut sent = 0;
    for e in &due {
        let (ok, detail) = match send(r, e).await {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        sent += usize::from(ok);
        if let Err(err) = store.record_escalation_delivery(e.alert.id, ok, detail).await {
            tracing::error!(error = %err, alert = e.alert.id.0, "recording an escalation");
        }
        crate::ui::live::publish(Some(e.alert.site_id));
    }
    Ok(EscalationSummary { escalated: due.len(), sent })
}
