//! Several `keta serve` instances over one PostgreSQL database (docs/decisions/0007-several-instances.md).
//!
//! * **Change notices.** On PostgreSQL every audited change (an audit entry that is not a read
//!   or a sign-in event, see [`notifies_boards`]) queues a notice that the process's one
//!   [`Notifier`] sends with `pg_notify` after the change commits (and never if it rolls back). Each instance listens on
//!   one dedicated connection ([`Store::listen_for_changes`]) and hands every notice from another
//!   process to its own live views. The listener reconnects when its connection is lost and then
//!   reports "anything may have changed", so views refresh and miss nothing.
//! * **One sweeper.** Periodic work that must run once across instances (the check-in sweep,
//!   alert escalation) runs only on the instance holding a session-level advisory lock
//!   ([`Store::lead`]). The lock lives on its own connection: when the leader dies, PostgreSQL
//!   ends its session, the lock is released, and the next instance to try takes over.
//!
//! On SQLite there is only ever one server process (its single writer), so notices stay in the
//! process and the process always leads.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Duration;

use keta_domain::ids::SiteId;
use postgres::fallible_iterator::FallibleIterator;

use crate::audit::Action;
use crate::error::Result;
use crate::postgres::{PgSettings, connect};
use crate::{Engine, Store};

/// The channel change notices travel on.
pub const CHANNEL: &str = "keta_changes";

/// The advisory-lock key of the periodic sweep's leader (distinct from the audit chain's).
const SWEEP_LEADER_LOCK: i64 = 4242003;

/// How long the listener waits for a notice before it checks that its connection still works.
const LISTEN_PROBE: Duration = Duration::from_secs(5);

/// Identifies this process in the notices it sends, so it can skip its own: live views in this
/// process are told directly, at once, by the code that made the change.
fn process_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| format!("{:016x}", rand::random::<u64>()))
}

/// Whether an audited action changes what the live views show (reads and sign-in events do not).
pub fn notifies_boards(action: Action) -> bool {
    !matches!(
        action,
        Action::Read
            | Action::Print
            | Action::Export
            | Action::LoginOk
            | Action::LoginFail
            | Action::Logout
            | Action::Timeout
            | Action::BreakGlass
    )
}

thread_local! {
    /// The change notices of the transaction running on this thread (PostgreSQL): the backend
    /// hands them to the [`Notifier`] once that transaction has committed, and drops them
    /// when it rolls back.
    static PENDING: RefCell<Vec<Option<SiteId>>> = const { RefCell::new(Vec::new()) };
}

/// Queues a change notice for `site` (`None`: any site) in the caller's transaction. It is
/// sent after the commit, never inside the transaction: a transaction that runs `pg_notify`
/// holds PostgreSQL's one notify lock through its commit, WAL flush included, so writers that
/// notified committed one at a time (measured: one-row inserts with a `pg_notify` reached
/// 0.29 of the commit rate of the same inserts without, docs/benchmarks.md).
pub(crate) fn queue_notice(site: Option<SiteId>) {
    PENDING.with(|p| p.borrow_mut().push(site));
}

/// The notices queued on this thread since the last call (and clears them).
pub(crate) fn take_notices() -> Vec<Option<SiteId>> {
    PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// The notices waiting to be sent, shared by the pool's tasks and the notifier's thread.
#[derive(Default)]
struct NoticeQueue {
    /// Payloads, each once: several changes at one site before the next send are one notice.
    payloads: BTreeSet<String>,
    stopping: bool,
}

/// Sends committed changes' notices to the other instances, from one thread and one
/// connection per process, in batches: whatever was committed while the previous batch was
/// being sent goes in the next one, so no writer ever waits for a notice. A batch that cannot
/// be sent (the database unreachable) is logged and dropped: the other instances' views
/// refresh from the database on their own interval and whenever their listener reconnects.
pub(crate) struct Notifier {
    queue: Arc<(Mutex<NoticeQueue>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Notifier {
    pub(crate) fn start(settings: Arc<PgSettings>) -> Self {
        let queue: Arc<(Mutex<NoticeQueue>, Condvar)> = Arc::default();
        let q = queue.clone();
        let thread = std::thread::Builder::new()
            .name("keta-notifier".into())
            .spawn(move || notifier_loop(&settings, &q))
            .expect("start the change notifier thread");
        Self { queue, thread: Some(thread) }
    }

    /// Hands over a committed transaction's notices.
    pub(crate) fn send(&self, sites: Vec<Option<SiteId>>) {
        if sites.is_empty() {
            return;
        }
        let (lock, cv) = &*self.queue;
        let mut q = lock.lock().unwrap_or_else(|e| e.into_inner());
        q.payloads.extend(sites.into_iter().map(|s| change_notice(s).1));
        cv.notify_one();
    }
}

impl Drop for Notifier {
    /// Sends what is still queued, then stops the thread.
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.queue;
            lock.lock().unwrap_or_else(|e| e.into_inner()).stopping = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn notifier_loop(settings: &PgSettings, queue: &(Mutex<NoticeQueue>, Condvar)) {
    let (lock, cv) = queue;
    let mut client: Option<postgres::Client> = None;
    loop {
        let (batch, stopping) = {
            let q = lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut q = cv.wait_while(q, |q| q.payloads.is_empty() && !q.stopping).unwrap_or_else(|e| e.into_inner());
            (std::mem::take(&mut q.payloads), q.stopping)
        };
        if !batch.is_empty() {
            let payloads: Vec<String> = batch.into_iter().collect();
            // One retry on a fresh connection: a pooled connection may have been closed by the server.
            for attempt in 0..2 {
                if client.as_ref().is_none_or(postgres::Client::is_closed) {
                    client = connect(settings).ok();
                }
                let sent = client.as_mut().map(|c| send_notices(c, &payloads));
                match sent {
                    Some(Ok(())) => break,
                    Some(Err(e)) if attempt == 1 => {
                        tracing::warn!(error = %e, notices = payloads.len(), "cannot send change notices; other instances refresh on their own interval");
                    }
                    None if attempt == 1 => {
                        tracing::warn!(
                            notices = payloads.len(),
                            "cannot reach the database to send change notices; other instances refresh on their own interval"
                        );
                    }
                    _ => client = None,
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// One transaction with every notice of the batch. It saves nothing, so it does not wait for
/// the WAL to reach the disk (`synchronous_commit = off` for this transaction only).
fn send_notices(client: &mut postgres::Client, payloads: &[String]) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")?;
    tx.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", &[&CHANNEL, &payloads])?;
    tx.commit()?;
    Ok(())
}

/// The channel and payload of a change notice for `site` (`None`: any site).
pub(crate) fn change_notice(site: Option<SiteId>) -> (&'static str, String) {
    (CHANNEL, format!("{} {}", process_tag(), site.map_or_else(|| "*".to_string(), |s| s.0.to_string())))
}

/// What a notice says: `None` for one to skip (this process's own, with `skip_own`), else the
/// site (`None` inside for any).
fn parse_notice(payload: &str, skip_own: bool) -> Option<Option<SiteId>> {
    let (tag, site) = payload.split_once(' ')?;
    if skip_own && tag == process_tag() {
        return None;
    }
    Some(site.parse::<i64>().ok().map(SiteId))
}

impl Store {
    /// Calls `on_change(site)` for every change another process commits (`None`: anything may
    /// have changed, e.g. after the listener reconnected). PostgreSQL only; returns whether a
    /// listener was started. The listener stops once the last clone of this store is dropped.
    pub fn listen_for_changes(&self, on_change: impl Fn(Option<SiteId>) + Send + 'static) -> bool {
        self.listen(true, on_change)
    }

    /// [`Store::listen_for_changes`] including this process's own notices: for tests, where
    /// two stores in one process stand for two instances.
    #[doc(hidden)]
    pub fn listen_for_all_changes(&self, on_change: impl Fn(Option<SiteId>) + Send + 'static) -> bool {
        self.listen(false, on_change)
    }

    fn listen(&self, skip_own: bool, on_change: impl Fn(Option<SiteId>) + Send + 'static) -> bool {
        let Engine::Postgres(pg) = &*self.engine else { return false };
        let settings = pg.settings.clone();
        let alive = Arc::downgrade(&self.engine);
        std::thread::Builder::new()
            .name("keta-listen".into())
            .spawn(move || listen_loop(&settings, &alive, skip_own, &on_change))
            .is_ok()
    }

    /// Whether this instance leads the periodic sweep now. Pass the lease returned last time;
    /// the leader keeps its lease while its lock connection works, the others try to take it.
    /// SQLite always leads.
    pub async fn lead(&self, lease: Lease) -> Lease {
        let Engine::Postgres(pg) = &*self.engine else { return Lease { client: None, leads: true } };
        let settings = pg.settings.clone();
        tokio::task::spawn_blocking(move || try_lead(&settings, lease))
            .await
            .unwrap_or(Lease { client: None, leads: false })
    }
}

/// The sweep leader's lock, held by its own connection (see [`Store::lead`]).
#[derive(Default)]
pub struct Lease {
    client: Option<postgres::Client>,
    leads: bool,
}

impl Lease {
    pub fn leads(&self) -> bool {
        self.leads
    }
}

/// The lock connection is a blocking client: closing it runs a small runtime of its own, which
/// must not happen on an async worker (the sweeper's task is dropped there when the server
/// stops), so it is closed on a thread of its own. Closing it releases the lock.
impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = std::thread::Builder::new().name("keta-lease-close".into()).spawn(move || drop(client));
        }
    }
}

fn try_lead(settings: &PgSettings, mut lease: Lease) -> Lease {
    if let Some(mut client) = lease.client.take() {
        if client.simple_query("SELECT 1").is_ok() {
            return Lease { client: Some(client), leads: true };
        }
        tracing::warn!("the sweep leader's lock connection was lost; trying to lead again");
    }
    let taken = connect(settings).and_then(|mut c| {
        let got: bool = c.query_one("SELECT pg_try_advisory_lock($1) AS got", &[&SWEEP_LEADER_LOCK])?.get("got");
        Ok((c, got))
    });
    match taken {
        Ok((c, true)) => {
            tracing::info!("this instance now leads the check-in sweep and alert escalation");
            Lease { client: Some(c), leads: true }
        }
        Ok((_, false)) => Lease { client: None, leads: false },
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach the database to lead the sweep");
            Lease { client: None, leads: false }
        }
    }
}

fn listen_loop(settings: &PgSettings, alive: &Weak<Engine>, skip_own: bool, on_change: &dyn Fn(Option<SiteId>)) {
    let mut backoff = Duration::from_millis(250);
    while alive.strong_count() > 0 {
        let client = connect(settings).and_then(|mut c| {
            c.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            Ok(c)
        });
        let mut client = match client {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "change listener cannot connect; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(250);
        // Notices sent while no one listened are lost: views refresh from the database instead.
        on_change(None);
        loop {
            if alive.strong_count() == 0 {
                return;
            }
            let mut lost = false;
            {
                let mut notes = client.notifications();
                let mut it = notes.timeout_iter(LISTEN_PROBE);
                loop {
                    match it.next() {
                        Ok(Some(n)) => {
                            if let Some(site) = parse_notice(n.payload(), skip_own) {
                                on_change(site);
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            lost = true;
                            break;
                        }
                    }
                }
            }
            // A quiet spell: make sure the connection is still there (a half-open TCP
            // connection would otherwise wait for ever).
            if lost || client.is_closed() || client.simple_query("SELECT 1").is_err() {
                tracing::warn!("change listener lost its connection; reconnecting");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_skips_its_own_notices_and_reads_the_site_of_others() {
        assert_eq!(parse_notice(&format!("{} 7", process_tag()), true), None);
        assert_eq!(parse_notice(&format!("{} 7", process_tag()), false), Some(Some(SiteId(7))));
        assert_eq!(parse_notice("00000000000000ff 7", true), Some(Some(SiteId(7))));
        assert_eq!(parse_notice("00000000000000ff *", true), Some(None));
        assert_eq!(parse_notice("garbage", true), None);
    }

    #[test]
    fn reads_and_sign_ins_do_not_refresh_boards() {
        assert!(!notifies_boards(Action::Read));
        assert!(!notifies_boards(Action::LoginFail));
        assert!(notifies_boards(Action::Create));
        assert!(notifies_boards(Action::Update));
        assert!(notifies_boards(Action::CsAdminister));
    }
}
