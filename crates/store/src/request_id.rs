//! The request a piece of work belongs to, for the audit trail: the web layer runs each
//! request inside [`scope`]; [`crate::Store::write`] carries the id onto the thread that runs
//! the transaction (SQLite's writer, a PostgreSQL pool task), where [`crate::audit::record`]
//! writes it into the entry. Work outside a request (the sweep, the CLI) has none.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

thread_local! {
    static ON_THREAD: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Runs `work` as the request `id`.
pub async fn scope<F: Future>(id: Arc<str>, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The current request's id, if the caller runs inside [`scope`].
pub fn current() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// Runs `f` on this thread as the request `id` (restoring what was there before).
pub(crate) fn on_thread<T>(id: Option<Arc<str>>, f: impl FnOnce() -> T) -> T {
    let before = ON_THREAD.with(|c| c.replace(id));
    let out = f();
    ON_THREAD.with(|c| *c.borrow_mut() = before);
    out
}

/// The request id of the operation running on this thread.
pub(crate) fn of_thread() -> Option<Arc<str>> {
    ON_THREAD.with(|c| c.borrow().clone())
}
