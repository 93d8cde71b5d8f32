//! Graceful shutdown for rolling restarts: on SIGTERM or SIGINT a server stops accepting
//! connections, fails readiness (so the load balancer sends new requests elsewhere), ends its
//! live-board streams with a reconnect hint (SSE `retry:`), lets in-flight requests finish and
//! their writes commit, then exits; if requests are still running after `shutdown_grace` it
//! stops without them (their writes were never acknowledged). [`settle`] then waits for
//! writes already queued (SQLite's writer) and seals the audit chain (PostgreSQL).

use std::future::{Future, IntoFuture};
use std::sync::Arc;

use crate::observe::Observability;

/// Resolves on SIGTERM (what orchestrators and `systemctl stop` send) or SIGINT (Ctrl-C).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!(signal = "Ctrl-C", "shutting down");
    }
}

/// The server's graceful-shutdown trigger: once `stop` resolves, readiness fails and live
/// streams end; the server then stops accepting and waits for in-flight requests.
pub async fn begin_on(obs: Arc<Observability>, stop: impl Future<Output = ()> + Send + 'static) {
    stop.await;
    obs.begin_shutdown();
    tracing::info!(grace_s = obs.shutdown_grace.as_secs(), "draining: finishing in-flight requests");
}

/// Runs the server; once shutdown has begun, gives it `shutdown_grace` to finish.
pub async fn bounded(
    obs: Arc<Observability>,
    server: impl IntoFuture<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    let grace = obs.shutdown_grace;
    let deadline = async move {
        obs.stopping().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = server.into_future() => r,
        _ = deadline => {
            tracing::warn!(grace_s = grace.as_secs(), "requests were still running when the shutdown grace ran out; stopping without them");
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("requests still running {} s after shutdown began were abandoned (unacknowledged)", grace.as_secs()),
            ))
        }
    }
}

/// After the server stopped: waits until every write already queued has committed
/// (`Store::settle_writes`) and seals the audit
/// chain (PostgreSQL), so the next server starts from a settled database.
pub async fn settle(store: &keta_store::Store) {
    if let Err(e) = store.settle_writes().await {
        tracing::warn!(error = %e, "waiting for queued writes at shutdown");
    }
    match store.seal_audit_chain().await {
        Ok(_) => tracing::info!("stopped: queued writes committed, audit chain sealed"),
        Err(e) => tracing::warn!(error = %e, "sealing the audit chain at shutdown"),
    }
}
