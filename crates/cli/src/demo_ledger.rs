//! The demo clinic's controlled-substance ledger: stock received at each site, the doses
//! of recent sessions, and counts. Every lot balances except one planted discrepancy
//! (a count 0.5 mL short at the second site), which the reconciliation report flags.

use keta_domain::course::Route;
use keta_domain::ledger::{Amount, CountType, LotId, NewAdministration, NewCount, NewReceipt, Presentation, Substance};
use keta_domain::units::{MgPerMl, Milligrams, Millilitres};
use keta_store::ledger::Witness;
use keta_store::{Actor, SiteScope, Store};
use time::Duration;

/// Vial strength used for the demo's racemic ketamine (a common 50 mg/mL, 10 mL vial).
const VIAL_MG_PER_ML: f64 = 50.0;

pub(crate) async fn staff_actor(store: &Store, username: &str) -> anyhow::Result<Actor> {
    let users = store.list_users(&Actor::system()).await?;
    let u = users
        .iter()
        .find(|u| u.username == username)
        .ok_or_else(|| anyhow::anyhow!("demo user {username} is missing"))?;
    Ok(Actor {
        name: u.username.clone(),
        scope: SiteScope::Sites(u.site_ids.clone()),
        role: Some(u.role),
        user_id: Some(u.id),
        break_glass: vec![],
    })
}

fn receipt(
    site: keta_domain::ids::SiteId,
    substance: Substance,
    received_at: time::OffsetDateTime,
    n: usize,
) -> NewReceipt {
    let (presentation, containers, lot, ndc) = match substance {
        Substance::Ketamine => (
            Presentation::Vial { concentration_mg_per_ml: MgPerMl(VIAL_MG_PER_ML), ml_per_vial: Millilitres(10.0) },
            20,
            format!("DEMO-K{n:03}"),
            "0409-2051-05",
        ),
        Substance::Esketamine => (
            Presentation::NasalSprayDevice { mg_per_device: Milligrams(28.0), devices_per_package: 2 },
            40,
            format!("DEMO-E{n:03}"),
            "50458-028-02",
        ),
    };
    NewReceipt {
        site_id: site,
        received_at: Some(received_at),
        supplier_name: "Synthetic Pharma Wholesale (demo)".into(),
        supplier_address: "100 Example Way, Springfield".into(),
        supplier_dea_number: "PS1234563".into(),
        invoice_number: Some(format!("DEMO-INV-{n:04}")),
        substance,
        presentation,
        containers,
        lot_number: lot,
        ndc: ndc.into(),
        expires_on: (received_at + Duration::days(540)).date(),
        corrects: None,
    }
}

/// Builds the demo ledger unless one exists.
pub async fn ensure(store: &Store) -> anyhow::Result<()> {
    let system = Actor::system();
    if !store.list_lots(&system, None, true).await?.is_empty() {
        return Ok(());
    }
    let nurse = staff_actor(store, "rn.demo").await?;
    let prescriber = staff_actor(store, "dr.demo").await?;
    let now = store.now();
    let sites = store.list_sites(&system).await?;
    for (i, site) in sites.iter().enumerate() {
        let since = now - Duration::days(21);
        let witness = || Witness { actor: prescriber.clone(), reauthenticated_at: store.now() };
        let ket = store
            .record_receipt(
                &nurse,
                Some(store.now()),
                receipt(site.id, Substance::Ketamine, since, i * 2 + 1),
                witness(),
            )
            .await?
            .lot
            .id;
        let esk = store
            .record_receipt(
                &nurse,
                Some(store.now()),
                receipt(site.id, Substance::Esketamine, since, i * 2 + 2),
                witness(),
            )
            .await?
            .lot
            .id;

        // Doses for the site's sessions since the stock arrived, oldest first.
        let sessions = store.clinical_sessions_at_site(&system, site.id, since, now + Duration::days(1)).await?;
        for s in sessions.iter().filter(|s| s.dose_started_at.is_some_and(|t| t >= since)) {
            let (lot, dose) = match s.route {
                Route::IvRacemic | Route::ImRacemic => {
                    let mg = s.planned_dose_mg.map_or(35.0, |d| d.0);
                    let ml = (mg / VIAL_MG_PER_ML * 100.0).round() / 100.0;
                    (
                        ket,
                        NewAdministration {
                            lot_id: ket,
                            session_id: s.id,
                            dose_mg: Milligrams(ml * VIAL_MG_PER_ML),
                            volume_ml: Some(Millilitres(ml)),
                            devices_used: None,
                            administered_at: s.dose_started_at,
                            ended_at: None,
                            ordering_prescriber: None,
                            corrects: None,
                        },
                    )
                }
                Route::IntranasalEsketamine => {
                    let devices = (s.planned_dose_mg.map_or(56.0, |d| d.0) / 28.0).ceil().max(1.0) as u32;
                    (
                        esk,
                        NewAdministration {
                            lot_id: esk,
                            session_id: s.id,
                            dose_mg: Milligrams(f64::from(devices) * 28.0),
                            volume_ml: None,
                            devices_used: Some(devices),
                            administered_at: s.dose_started_at,
                            ended_at: None,
                            ordering_prescriber: None,
                            corrects: None,
                        },
                    )
                }
                Route::OralRacemic | Route::SublingualRacemic => continue,
            };
            let _: LotId = lot;
            store.record_administration(&nurse, Some(store.now()), dose).await?;
        }

        // End-of-day counts: right everywhere, except the planted 0.5 mL shortfall at the second site.
        let report = store.ledger_reconciliation(&system, Some(site.id), None).await?;
        for l in report.lots {
            let on_hand = l.reconciliation.totals.on_hand.value();
            let planted = i == 1 && l.lot.id == ket;
            let physical = match l.lot.product.substance {
                Substance::Ketamine => Amount::Ml(if planted { on_hand - 0.5 } else { on_hand }),
                Substance::Esketamine => Amount::Mg(on_hand),
            };
            let reason = planted.then(|| {
                "Demo: planted discrepancy, 0.5 mL short at the end-of-day count; under investigation".to_string()
            });
            let count = NewCount {
                lot_id: l.lot.id,
                physical,
                count_type: CountType::Routine,
                business_time: None,
                counted_at: None,
                estimated: false,
                reason,
                corrects: None,
            };
            let witness = Witness { actor: prescriber.clone(), reauthenticated_at: store.now() };
            store.record_count(&nurse, Some(store.now()), count, Some(witness)).await?;
        }
    }
    Ok(())
}
