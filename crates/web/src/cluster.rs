//! Running several instances over one PostgreSQL database (docs/decisions/0007-several-instances.md).
//!
//! [`follow_other_instances`] feeds changes committed through other instances into this
//! process's live views ([`crate::ui::live`]): the board's streams re-render and the clinic-wide
//! figure caches are dropped, exactly as for a change made here. On SQLite it does nothing:
//! a SQLite database is served by one process.

use keta_store::Store;

/// Starts following changes made through other instances. Returns whether a listener started
/// (PostgreSQL).
pub fn follow_other_instances(store: &Store) -> bool {
    store.listen_for_changes(crate::ui::live::publish)
}
