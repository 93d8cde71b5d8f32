//! Change notifications for live views. Every write made through the web layer calls
//! [`publish`]; the Today board's server-sent-event streams re-render on it, so a board
//! updates without polling and without reloading the page.
//!
//! Why a process-wide channel rather than a field of `AppState`: one server process
//! serves one database, and the channel carries only "site N changed" (no data), so a
//! stray notification costs one re-render. It keeps `AppState` unchanged for its users.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use keta_domain::ids::SiteId;
use tokio::sync::broadcast;

/// What changed: one site, or anything (`None`).
pub type Change = Option<SiteId>;

fn hub() -> &'static broadcast::Sender<Change> {
    static HUB: OnceLock<broadcast::Sender<Change>> = OnceLock::new();
    HUB.get_or_init(|| broadcast::channel(256).0)
}

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Tells live views that data at `site` (or anywhere, for `None`) changed.
pub fn publish(site: Change) {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    let _ = hub().send(site);
}

pub fn subscribe() -> broadcast::Receiver<Change> {
    hub().subscribe()
}

/// A counter that moves on every change; caches of derived figures compare it.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Middleware for the JSON API: after a successful write (POST, PUT, PATCH, DELETE),
/// tells live views that something changed, so the board also follows changes made
/// through the API (a bedside-monitor bridge, scripts). Layer it on the `/api/v1` router.
pub async fn publish_after_writes(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let res = next.run(req).await;
    if write && res.status().is_success() {
        publish(None);
    }
    res
}
