//! Clinic-wide figures (the outcomes screen, durability): every chart at the user's sites is
//! read in pages and chunks, folded into a figure, and the figure is kept for a minute.
//!
//! The cache is per figure and per running server (every clone of its `AppState` shares it):
//! two servers in one process, as in the test suite, never see each other's figures. It is
//! keyed by the user's scope and break-glass grant, and dropped when anything changes
//! ([`super::live::generation`]) or after 60 s.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use keta_domain::records::PatientChart;
use keta_store::StoreError;
use keta_store::patients::PatientQuery;

use crate::AppState;
use crate::auth::CurrentUser;

/// How long a figure is kept.
const KEEP: Duration = Duration::from_secs(60);

struct Entry<T> {
    /// The server the figure was read through (see [`app_identity`]).
    app: Weak<crate::auth::LoginThrottle>,
    key: String,
    generation: u64,
    at: Instant,
    patients: usize,
    value: T,
}

/// One figure's cache.
pub(crate) struct FigureCache<T>(Mutex<Option<Entry<T>>>);

/// One object per running server. Holding a `Weak` keeps the allocation, so its address cannot
/// be reused by a later server.
fn app_identity(st: &AppState) -> &Arc<crate::auth::LoginThrottle> {
    &st.throttle
}

impl<T: Clone> FigureCache<T> {
    pub(crate) const fn new() -> Self {
        Self(Mutex::new(None))
    }

    /// The figure for this user (and how many patients it covers): cached, or folded from every
    /// chart at the user's sites with `fold`, starting from `init`.
    pub(crate) async fn get(
        &self,
        st: &AppState,
        user: &CurrentUser,
        init: T,
        mut fold: impl FnMut(&mut T, &PatientChart),
    ) -> Result<(usize, T), StoreError> {
        let key = format!("{:?} {:?}", user.actor.scope, user.actor.break_glass);
        let generation = super::live::generation();
        let me = Arc::downgrade(app_identity(st));
        let hit = self.0.lock().unwrap_or_else(PoisonError::into_inner).as_ref().and_then(|c| {
            (Weak::ptr_eq(&c.app, &me) && c.key == key && c.generation == generation && c.at.elapsed() < KEEP)
                .then(|| (c.patients, c.value.clone()))
        });
        if let Some(hit) = hit {
            return Ok(hit);
        }
        let ids = patient_ids(st, user).await?;
        let mut value = init;
        for chunk in ids.chunks(32) {
            for chart in st.store.patient_charts(&user.actor, chunk.to_vec()).await? {
                fold(&mut value, &chart);
            }
        }
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Entry { app: me, key, generation, at: Instant::now(), patients: ids.len(), value: value.clone() });
        Ok((ids.len(), value))
    }
}

/// Every patient the user can see, read 500 at a time.
async fn patient_ids(st: &AppState, user: &CurrentUser) -> Result<Vec<keta_domain::ids::PatientId>, StoreError> {
    const PAGE: usize = 500;
    let mut ids = Vec::new();
    loop {
        let page = st
            .store
            .list_patients(
                &user.actor,
                PatientQuery { search: None, site_id: None, limit: PAGE as i64, offset: ids.len() as i64 },
            )
            .await?;
        let n = page.len();
        ids.extend(page.into_iter().map(|p| p.id));
        if n < PAGE {
            return Ok(ids);
        }
    }
}
