//! The demo clinic's signed session notes. A working clinic's past sessions carry signed notes
//! (and so FHIR `DocumentReference`s with their PDFs): for the latest few discharged IV and IM
//! sessions of each site whose record has a note, the demo nurse saves the note as its writer
//! and signs it as author, and the demo prescriber co-signs the latest. Esketamine sessions are
//! left unsigned: their notes wait on the REMS monitoring form, as in a real clinic's queue.
//! Idempotent: a note already signed is left as it is.

use std::cmp::Reverse;

use keta_domain::course::Route;
use keta_domain::notes::{SignNote, SignatureMeaning};
use keta_domain::session::SessionState;
use keta_store::{Actor, Store};
use time::Duration;

use crate::demo_ledger::staff_actor;

/// Signed notes per site.
const SIGNED_PER_SITE: usize = 3;
/// How far back the demo looks for notes (its history is shorter).
const HISTORY: Duration = Duration::days(400);

fn signing(meaning: SignatureMeaning) -> SignNote {
    SignNote { meaning, amendment_id: None }
}

pub async fn ensure(store: &Store) -> anyhow::Result<()> {
    let rn = staff_actor(store, "rn.demo").await?;
    let dr = staff_actor(store, "dr.demo").await?;
    let now = store.now();
    for site in store.list_sites(&Actor::system()).await? {
        let mut past: Vec<_> = store
            .clinical_sessions_at_site(&rn, site.id, now - HISTORY, now)
            .await?
            .into_iter()
            .filter(|s| {
                s.state == SessionState::Discharged
                    && s.route != Route::IntranasalEsketamine
                    && s.note.as_deref().is_some_and(|t| !t.trim().is_empty())
            })
            .collect();
        past.sort_by_key(|s| Reverse(s.discharged_at));
        for (i, s) in past.into_iter().take(SIGNED_PER_SITE).enumerate() {
            if store.get_signed_note(&rn, s.id).await?.signed {
                continue;
            }
            let text = s.note.clone().unwrap_or_default();
            store.set_session_note(&rn, s.id, text).await?;
            store
                .sign_session_note(&rn, Some(now), s.id, "Demo Nurse, RN".into(), signing(SignatureMeaning::Author))
                .await?;
            if i == 0 {
                let cosign = signing(SignatureMeaning::CoSign);
                store.sign_session_note(&dr, Some(now), s.id, "Demo Prescriber, MD".into(), cosign).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keta_store::fhir::{DocumentKind, Search};
    use time::macros::datetime;

    use super::*;

    #[tokio::test]
    async fn each_site_has_signed_notes_and_a_second_run_changes_nothing() {
        let now = datetime!(2026-11-27 16:20 UTC);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("demo.db").display());
        let store = Store::open_with_clock(&url, Arc::new(move || now)).await.unwrap();
        crate::demo::ensure(&store, crate::demo::DEFAULT_SEED).await.unwrap();
        crate::demo_accounts::ensure(&store).await.unwrap();
        ensure(&store).await.unwrap();
        let dr = staff_actor(&store, "dr.demo").await.unwrap();
        let docs = || store.fhir_documents(&dr, Search { count: 100, ..Search::default() }, DocumentKind::ALL.to_vec());
        let first = docs().await.unwrap();
        let sites = store.list_sites(&Actor::system()).await.unwrap();
        for site in &sites {
            assert!(first.items.iter().any(|d| d.site_id == site.id), "site {} has no signed note", site.name);
        }
        assert!(
            first
                .items
                .iter()
                .all(|d| d.kind == DocumentKind::SessionNote && d.author_name.as_deref() == Some("Demo Nurse, RN"))
        );
        let mut cosigned = 0;
        for d in &first.items {
            let note = store.get_signed_note(&dr, d.session_id).await.unwrap();
            assert!(note.verification.intact, "{:?}", note.verification.problems);
            cosigned += usize::from(note.signatures.len() == 2);
        }
        assert_eq!(cosigned, sites.len(), "the latest note of each site is co-signed");

        ensure(&store).await.unwrap();
        assert_eq!(docs().await.unwrap().items, first.items, "signing twice would have failed or added signatures");
    }
}
