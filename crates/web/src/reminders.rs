//! Check-in reminders: the sweep that issues links for due check-ins, and their delivery.
//!
//! The server runs [`sweep_and_send`] every few minutes ([`spawn_sweeper`]). Each new link's
//! token exists only between the sweep and the send: it goes into the message and is dropped.
//! Every send is recorded on the link (`reminder_sent` / `reminder_failed`), so the care team
//! sees who was not reached; a failed send can be repeated from the chart, which issues a new
//! token (the old one stops working).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use keta_domain::ids::SiteId;
use keta_domain::patient_links::ReminderWording;
use keta_notify::{Delivery, LogMailer, LogTextSender, Message};
use keta_store::Store;
use keta_store::checkins::{IssuedLink, SiteForPatients};

/// How reminders leave Keta, and the address links point at.
#[derive(Clone)]
pub struct Reminders {
    pub delivery: Delivery,
    /// The clinic's public base URL, e.g. `https://keta.clinic.example` (no trailing slash).
    pub public_url: String,
    /// With log-only delivery: what was "sent", for the demo's outbox screen.
    pub outbox: Option<Arc<LogMailer>>,
    pub text_outbox: Option<Arc<LogTextSender>>,
}

impl Reminders {
    /// Log-only delivery with an outbox the demo can show.
    pub fn log_only(public_url: impl Into<String>) -> Self {
        let mail = Arc::new(LogMailer::new(500));
        let text = Arc::new(LogTextSender::new(500));
        Self {
            delivery: Delivery::new(mail.clone()).with_text(text.clone()),
            public_url: public_url.into().trim_end_matches('/').to_string(),
            outbox: Some(mail),
            text_outbox: Some(text),
        }
    }

    /// A configured delivery (SMTP from the environment, a clinic's text provider).
    pub fn with_delivery(delivery: Delivery, public_url: impl Into<String>) -> Self {
        Self {
            delivery,
            public_url: public_url.into().trim_end_matches('/').to_string(),
            outbox: None,
            text_outbox: None,
        }
    }

    /// How reminders go out, for the start-up banner.
    pub fn describe(&self) -> String {
        if self.outbox.is_some() {
            "log only: nothing is sent; reminders are kept in the outbox (/outbox)".into()
        } else {
            self.delivery.description().to_string()
        }
    }

    pub fn link_url(&self, token: &str) -> String {
        format!("{}/c/{token}", self.public_url)
    }
}

/// Sends one link by e-mail, or by text message when there is no address, and records how it
/// went. Returns whether it was sent.
pub async fn deliver(
    store: &Store,
    r: &Reminders,
    issued: &IssuedLink,
    to_email: Option<&str>,
    to_phone: Option<&str>,
) -> bool {
    match store.link_site_for_patients(issued.link.site_id).await {
        Ok(site) => send(store, r, issued, &site, to_email, to_phone).await,
        Err(e) => {
            tracing::error!(error = %e, "reading the site for a reminder");
            false
        }
    }
}

/// [`deliver`] with the link's site already read.
async fn send(
    store: &Store,
    r: &Reminders,
    issued: &IssuedLink,
    site: &SiteForPatients,
    to_email: Option<&str>,
    to_phone: Option<&str>,
) -> bool {
    let clinic = site.site_name.as_str();
    let clock = crate::ui::clock::SiteClock::named(&site.time_zone);
    let url = r.link_url(&issued.token);
    // The patient's next booked session; never in a sitter's message.
    let mut next_session = None;
    if issued.link.purpose != keta_domain::patient_links::LinkPurpose::Sitter {
        match store.next_sessions_for_patient(&keta_store::Actor::system(), issued.link.patient_id, 1).await {
            Ok(next) => next_session = next.first().map(|n| clock.date_at(n.scheduled_for)),
            Err(e) => tracing::warn!(error = %e, "reading the next session for a reminder"),
        }
    }
    let words = ReminderWording::email(
        issued.link.purpose,
        clinic,
        &url,
        &clock.date_at(issued.link.expires_at),
        next_session.as_deref(),
    );
    let outcome = match (to_email, to_phone) {
        (Some(to), _) => match Message::new(to, words.subject, words.body) {
            Ok(m) => r.delivery.send_mail(&m).await.map(|rc| format!("e-mail via {}", rc.channel)),
            Err(e) => Err(keta_notify::DeliveryError::from(e)),
        },
        (None, Some(phone)) => {
            let text = ReminderWording::text_message(clinic, &url);
            r.delivery.send_text(phone, &text).await.map(|rc| format!("text via {}", rc.channel))
        }
        (None, None) => {
            let _ =
                store.record_delivery(issued.link.id, false, "no e-mail address or mobile number on file".into()).await;
            return false;
        }
    };
    let (ok, detail) = match outcome {
        Ok(d) => {
            crate::metrics::CHECKINS_SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (true, d)
        }
        Err(e) => (false, e.to_string()),
    };
    if let Err(e) = store.record_delivery(issued.link.id, ok, detail).await {
        tracing::error!(error = %e, link = issued.link.id, "recording a reminder");
    }
    ok
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepSummary {
    pub issued: usize,
    pub sent: usize,
    pub expired: usize,
    /// Patients skipped because of an error (logged); the next sweep tries them again.
    pub failed: usize,
}

/// Issues links for due check-ins, records expiries, and sends the reminders.
pub async fn sweep_and_send(store: &Store, r: &Reminders) -> keta_store::Result<SweepSummary> {
    let report = store.sweep_checkins().await?;
    let mut sent = 0;
    // Each site is read once per sweep, not once per reminder.
    let mut sites: HashMap<SiteId, SiteForPatients> = HashMap::new();
    for issued in &report.issued {
        let site_id = issued.link.site_id;
        if let std::collections::hash_map::Entry::Vacant(e) = sites.entry(site_id) {
            match store.link_site_for_patients(site_id).await {
                Ok(site) => {
                    e.insert(site);
                }
                Err(e) => {
                    // The link stays unsent; the next sweep sends it.
                    tracing::error!(error = %e, site = site_id.0, "reading the site for a reminder");
                    continue;
                }
            }
        }
        if send(store, r, issued, &sites[&site_id], issued.email.as_deref(), issued.phone.as_deref()).await {
            sent += 1;
        }
    }
    if !report.issued.is_empty() || report.expired > 0 {
        crate::ui::live::publish(None);
    }
    Ok(SweepSummary { issued: report.issued.len(), sent, expired: report.expired, failed: report.failed })
}

/// How often unacknowledged urgent alerts are checked for escalation: the clinic sets the wait
/// in minutes, so a check-in sweep interval of several minutes would be too coarse.
const ESCALATION_EVERY: Duration = Duration::from_secs(60);

/// Runs the sweep now and then every `every` until the process ends; escalates urgent alerts
/// nobody acknowledged ([`crate::escalation`]) at least every minute.
///
/// With several instances on one PostgreSQL database only the one holding the sweep's leader
/// lock works ([`Store::lead`]); the others try to take the lock on every tick, so the work
/// carries on within a tick when the leader dies. Issuing stays once per check-in even if two
/// sweeps overlapped (a unique index per occurrence), and an alert is escalated once.
pub fn spawn_sweeper(store: Store, r: Reminders, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let step = every.min(ESCALATION_EVERY).max(Duration::from_secs(1));
        let sweep_every = (every.as_secs_f64() / step.as_secs_f64()).round().max(1.0) as u64;
        let mut tick = tokio::time::interval(step);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lease = keta_store::cluster::Lease::default();
        // Counts the ticks this instance led, so a new leader sweeps on its first tick.
        let mut n = 0u64;
        loop {
            tick.tick().await;
            lease = store.lead(lease).await;
            if !lease.leads() {
                n = 0;
                continue;
            }
            n += 1;
            if (n - 1).is_multiple_of(sweep_every) {
                match sweep_and_send(&store, &r).await {
                    Ok(s) if s != SweepSummary::default() => {
                        tracing::info!(
                            issued = s.issued,
                            sent = s.sent,
                            expired = s.expired,
                            failed = s.failed,
                            "check-in sweep"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "check-in sweep failed"),
                }
            }
            match crate::escalation::escalate_and_send(&store, &r).await {
                Ok(s) if s.escalated > 0 => {
                    tracing::warn!(escalated = s.escalated, sent = s.sent, "urgent alerts escalated")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "alert escalation sweep failed"),
            }
        }
    })
}
