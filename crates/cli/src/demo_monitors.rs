//! The demo clinic's bedside monitors: one per chair named "Chair N", sending as PV1-3
//! `INFUSION^^CHAIR-N` (what `keta monitor-sim` sends), so the simulator's streams land on
//! the demo board when `keta demo --mllp-bind` is on.

use keta_store::{Actor, Store};

pub async fn ensure(store: &Store) -> anyhow::Result<usize> {
    let actor = Actor::system();
    let mut registered = 0;
    for site in store.list_sites(&actor).await? {
        let existing = store.list_monitors(&actor, site.id).await?;
        for chair in store.list_chairs(&actor, site.id).await? {
            let Some(n) = chair.name.strip_prefix("Chair ") else { continue };
            let identifier = format!("INFUSION^^CHAIR-{n}");
            if existing.iter().any(|d| d.identifier == identifier) {
                continue;
            }
            match store.register_monitor(&actor, chair.id, &identifier, &format!("Demo monitor, {}", chair.name)).await
            {
                Ok(_) => registered += 1,
                // Another site already has this chair name: the first one keeps the monitor.
                Err(keta_store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(registered)
}
