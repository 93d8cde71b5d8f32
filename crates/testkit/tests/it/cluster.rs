//! Several instances on one database (docs/decisions/0007-several-instances.md): change notices and the sweep's
//! leader, with two stores on one database standing for two instances. On SQLite there is one
//! process, which always leads and needs no notices. (`crates/cli/tests/cluster.rs` runs real
//! `keta serve` processes behind haproxy.)

use std::time::Duration;

use keta_domain::ids::SiteId;
use keta_store::Store;
use keta_store::cluster::Lease;
use keta_testkit::{Kind, ManualClock, TestDb};

use crate::fixtures::*;

/// Generous: bounds a wait, measures nothing.
const WAIT: Duration = Duration::from_secs(10);

/// Waits for a notice naming `site`, skipping "anything changed" (sent on every connect).
fn wait_for_site(rx: &std::sync::mpsc::Receiver<Option<SiteId>>, site: SiteId) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(Some(s)) if s == site => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test]
async fn a_change_committed_through_one_instance_is_announced_to_the_others() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (tx, rx) = std::sync::mpsc::channel();
        let other = Store::open_with_clock(&db.url, clock.as_clock()).await.expect("a second store");
        let listening = other.listen_for_all_changes(move |site| {
            let _ = tx.send(site);
        });
        if db.kind == Kind::Sqlite {
            assert!(!listening, "SQLite is served by one process: nothing to listen to");
            continue;
        }
        assert!(listening);
        // The listener reports "anything changed" once connected: nothing was missed before it.
        assert_eq!(rx.recv_timeout(WAIT), Ok(None), "{:?}", db.kind);
        let s = site(&db.store, "A").await;
        assert!(wait_for_site(&rx, s), "creating a site at one instance is announced at the other");
        let system = keta_store::Actor::system();
        db.store.create_patient(&system, new_patient(s, "A-0700")).await.expect("patient");
        assert_eq!(rx.recv_timeout(WAIT), Ok(Some(s)), "registering a patient there is announced with its site");
        // A change refused (a second patient with the same record number at the site) saves
        // nothing and announces nothing: the next notice is the next change's.
        assert!(db.store.create_patient(&system, new_patient(s, "A-0700")).await.is_err());
        let b = site(&db.store, "B").await;
        assert_eq!(rx.recv_timeout(WAIT), Ok(Some(b)), "no notice for the refused change");
    }
}

#[tokio::test]
async fn one_instance_leads_the_sweep_and_another_takes_over_when_it_dies() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = db.store.clone();
        let b = Store::open_with_clock(&db.url, clock.as_clock()).await.expect("a second store");
        let lease_a = a.lead(Lease::default()).await;
        let lease_b = b.lead(Lease::default()).await;
        if db.kind == Kind::Sqlite {
            assert!(lease_a.leads() && lease_b.leads(), "the one SQLite process always leads");
            continue;
        }
        assert!(lease_a.leads(), "the first to ask leads");
        assert!(!lease_b.leads(), "one leader at a time");
        let lease_a = a.lead(lease_a).await;
        let lease_b = b.lead(lease_b).await;
        assert!(lease_a.leads() && !lease_b.leads(), "the leader keeps its lease while its connection works");
        // The leader dies: its lock connection closes and PostgreSQL frees the lock.
        drop(lease_a);
        let deadline = std::time::Instant::now() + WAIT;
        let mut lease_b = lease_b;
        loop {
            lease_b = b.lead(lease_b).await;
            if lease_b.leads() || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(lease_b.leads(), "the other instance took the sweep over");
        assert!(!a.lead(Lease::default()).await.leads(), "and the first, back, does not lead beside it");
    }
}
