//! The bridge between the MLLP listener (`keta-mllp`) and the store: each frame is read,
//! mapped to readings, recorded (or kept for review) in one transaction, and only then
//! acknowledged. The live board is told when a chair's readings arrive.
//!
//! Logs carry outcomes and counts only: no identifiers, values or raw text.

use std::net::SocketAddr;
use std::sync::Arc;

use keta_mllp::{
    AckCode, ListenerConfig, ListenerStats, MessageHandler, ObservationTable, Received, Reply, TimeWindow,
};
use keta_store::Store;
use keta_store::monitors::{InboundMonitorMessage, MonitorOutcome, MonitorReading};
use time::UtcOffset;

/// Which field names the monitor (a clinic setting: gateways put the bed in PV1-3, some
/// single monitors only fill MSH-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceField {
    /// PV1-3, the assigned location (point of care^room^bed), as sent.
    #[default]
    Pv1Location,
    /// MSH-4, the sending facility's first component.
    SendingFacility,
}

impl DeviceField {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "pv1-3" | "pv1.3" => Some(Self::Pv1Location),
            "msh-4" | "msh.4" => Some(Self::SendingFacility),
            _ => None,
        }
    }
}

/// Settings of the bridge (`keta serve --mllp-*`).
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    pub device_field: DeviceField,
    /// Offset for HL7 times sent without one.
    pub local_offset: UtcOffset,
    pub window: TimeWindow,
    pub listener: ListenerConfig,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            device_field: DeviceField::default(),
            local_offset: UtcOffset::UTC,
            window: TimeWindow::default(),
            listener: ListenerConfig::default(),
        }
    }
}

/// The listener's settings as the running server uses them, and how long raw messages are
/// kept: what the administrators' monitors screen shows.
#[derive(Debug, Clone)]
pub struct MonitorRuntime {
    pub settings: MonitorSettings,
    pub raw_retention: time::Duration,
}

/// The handler the listener calls.
pub struct MonitorBridge {
    store: Store,
    settings: MonitorSettings,
}

impl MonitorBridge {
    pub fn new(store: Store, settings: MonitorSettings) -> Self {
        Self { store, settings }
    }

    async fn reject(&self, r: &Received, reason: String) -> Reply {
        // Keep what could not be read, for troubleshooting; an AR either way.
        if let Err(e) =
            self.store.record_rejected_monitor_frame(r.peer.ip().to_string(), r.text.clone(), reason.clone()).await
        {
            tracing::error!(error = %e, "monitor frame could not be kept");
        }
        tracing::info!(outcome = "rejected", "monitor message");
        Reply { code: AckCode::Reject, text: reason }
    }
}

impl MessageHandler for MonitorBridge {
    async fn handle(&self, r: Received) -> Reply {
        if r.oversized {
            let reason = format!("message larger than {} bytes", self.settings.listener.max_frame_bytes);
            return self.reject(&r, reason).await;
        }
        let msg = match keta_mllp::parse_oru(&r.text) {
            Ok(m) => m,
            Err(e) => return self.reject(&r, e.to_string()).await,
        };
        let identifier = match self.settings.device_field {
            DeviceField::Pv1Location => msg.location.clone().unwrap_or_default(),
            DeviceField::SendingFacility => msg.header.sending_facility.clone(),
        };
        let readings = keta_mllp::map_readings(
            &msg,
            ObservationTable::builtin(),
            self.settings.local_offset,
            self.store.now(),
            self.settings.window,
        )
        .map(|rs| {
            rs.into_iter()
                .map(|x| MonitorReading { observed_at: x.observed_at, vitals: x.vitals, mean_mmhg: x.mean_mmhg })
                .collect()
        })
        .map_err(|e| e.to_string());
        let inbound = InboundMonitorMessage {
            identifier,
            control_id: msg.header.control_id.clone(),
            peer: r.peer.ip().to_string(),
            raw: r.text,
            readings,
        };
        match self.store.record_monitor_message(inbound).await {
            Ok(MonitorOutcome::Recorded { site, readings, alerts, .. }) => {
                crate::ui::live::publish(Some(site));
                tracing::info!(outcome = "recorded", readings, alerts, "monitor message");
                Reply { code: AckCode::Accept, text: String::new() }
            }
            Ok(MonitorOutcome::Review { site, reason }) => {
                crate::ui::live::publish(site);
                tracing::info!(outcome = "review", "monitor message");
                Reply { code: AckCode::Error, text: format!("kept for review, not attached: {reason}") }
            }
            Ok(MonitorOutcome::Duplicate { recorded: true, .. }) => {
                tracing::info!(outcome = "duplicate", "monitor message");
                Reply { code: AckCode::Accept, text: String::new() }
            }
            Ok(MonitorOutcome::Duplicate { recorded: false, reason }) => Reply {
                code: AckCode::Error,
                text: format!("kept for review, not attached: {}", reason.unwrap_or_default()),
            },
            Err(e) => {
                tracing::error!(error = %e, "monitor message not stored; the sender should resend");
                Reply { code: AckCode::Reject, text: "not stored now; resend".into() }
            }
        }
    }
}

/// Binds the MLLP listener and serves it in the background; returns the bound address.
pub async fn spawn_listener(
    bind: SocketAddr,
    store: Store,
    settings: MonitorSettings,
) -> std::io::Result<(SocketAddr, Arc<ListenerStats>)> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(ListenerStats::default());
    let config = settings.listener.clone();
    let bridge = Arc::new(MonitorBridge::new(store, settings));
    let s = stats.clone();
    tokio::spawn(async move {
        if let Err(e) = keta_mllp::listener::serve(listener, config, bridge, s).await {
            tracing::error!(error = %e, "the MLLP listener stopped");
        }
    });
    Ok((addr, stats))
}

/// Clears raw monitor messages older than `retention`, once an hour.
pub fn spawn_raw_purge(store: Store, retention: time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match store.purge_monitor_raw(retention).await {
                Ok(n) if n > 0 => tracing::info!(cleared = n, "raw monitor messages past retention cleared"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "clearing raw monitor messages failed"),
            }
        }
    });
}
