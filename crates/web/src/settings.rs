//! The web server's settings: one typed value, resolved once at start-up by `keta serve`
//! (defaults, then a TOML file, then `KETA_*` variables, then flags; `keta serve
//! --print-config` shows them with where each came from) and carried in [`crate::AppState`].
//! Nothing here reads the environment: handlers and middleware read these values.

use std::time::Duration;

use keta_store::accounts::SessionPolicy;
use keta_store::idempotency::KeyPolicy;

/// The largest request body accepted by default (a safety-rules file or a long note fit easily).
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// How long a request may take by default before it is answered 408.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a break-glass grant lasts by default (a product setting).
pub const DEFAULT_BREAK_GLASS_MINUTES: i64 = 60;
/// How often due check-ins are issued and expiries recorded by default (a product setting).
pub const DEFAULT_CHECKIN_SWEEP: Duration = Duration::from_secs(300);

/// What the web layer reads while it serves.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSettings {
    /// Idle and absolute limits for sign-in sessions (AC-4).
    pub session_policy: SessionPolicy,
    /// How long a break-glass grant lasts, in minutes.
    pub break_glass_minutes: i64,
    /// The largest request body accepted (413 above it).
    pub body_limit_bytes: usize,
    /// How long a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// How long idempotency keys and their responses are kept.
    pub idempotency: KeyPolicy,
    /// How often the check-in sweep runs (`keta serve` and the demo).
    pub checkin_sweep: Duration,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            session_policy: SessionPolicy::default(),
            break_glass_minutes: DEFAULT_BREAK_GLASS_MINUTES,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            idempotency: KeyPolicy::default(),
            checkin_sweep: DEFAULT_CHECKIN_SWEEP,
        }
    }
}
