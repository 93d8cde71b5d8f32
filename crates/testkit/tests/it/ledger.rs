//! The controlled-substance ledger (security-reference §2.4): stories on every backend,
//! then the JSON API over HTTP.

use keta_domain::access::Role;
use keta_domain::course::Route;
use keta_domain::ids::{SessionId, SiteId};
use keta_domain::ledger::{
    AdjustmentDirection, Amount, Correction, CountType, EntryKind, FlagKind, LossType, LotId, NewAdjustment,
    NewAdministration, NewCount, NewDisposal, NewLoss, NewReceipt, NewWaste, Presentation, Quantity, RecordedEntry,
    Reversal, Substance,
};
use keta_domain::session::{NewSession, SessionAction};
use keta_domain::units::{MgPerMl, Milligrams, Millilitres};
use keta_store::ledger::{LedgerQuery, Witness};
use keta_store::{Actor, SiteScope, Store, StoreError, params};
use keta_testkit::{Kind, ManualClock, TestDb, seed_staff, spawn_app};
use serde_json::{Value, json};
use time::macros::date;

use crate::fixtures::*;

pub(crate) fn other_nurse(sites: &[SiteId]) -> Actor {
    Actor::staff("nurse2.test", Role::Nurse, SiteScope::Sites(sites.to_vec()))
}

pub(crate) fn witness(actor: Actor, clock: &ManualClock) -> Witness {
    Witness { actor, reauthenticated_at: clock.now() }
}

pub(crate) fn vial_receipt(site: SiteId, vials: u32) -> NewReceipt {
    NewReceipt {
        site_id: site,
        received_at: None,
        supplier_name: "Example Wholesale".into(),
        supplier_address: "1 Depot Rd, Austin TX 78701".into(),
        supplier_dea_number: "PS1234563".into(),
        invoice_number: Some("INV-2026-118".into()),
        substance: Substance::Ketamine,
        presentation: Presentation::Vial { concentration_mg_per_ml: MgPerMl(50.0), ml_per_vial: Millilitres(10.0) },
        containers: vials,
        lot_number: "KX1234".into(),
        ndc: "0409-2051-05".into(),
        expires_on: date!(2027 - 06 - 30),
        corrects: None,
    }
}

fn spray_receipt(site: SiteId, packages: u32) -> NewReceipt {
    NewReceipt {
        substance: Substance::Esketamine,
        presentation: Presentation::NasalSprayDevice { mg_per_device: Milligrams(28.0), devices_per_package: 2 },
        containers: packages,
        lot_number: "SP0042".into(),
        ndc: "50458-028-02".into(),
        ..vial_receipt(site, 1)
    }
}

pub(crate) fn dose(lot: LotId, session: SessionId, mg: f64, ml: f64) -> NewAdministration {
    NewAdministration {
        lot_id: lot,
        session_id: session,
        dose_mg: Milligrams(mg),
        volume_ml: Some(Millilitres(ml)),
        devices_used: None,
        administered_at: None,
        ended_at: None,
        ordering_prescriber: Some("Dr Test".into()),
        corrects: None,
    }
}

fn waste(lot: LotId, administration: Option<keta_domain::ledger::EntryId>, amount: Amount) -> NewWaste {
    NewWaste {
        lot_id: lot,
        administration_id: administration,
        amount,
        wasted_at: None,
        method: "drug-waste container, rendered non-retrievable".into(),
        reason: "remainder after dose".into(),
        corrects: None,
    }
}

fn count(lot: LotId, physical: Amount, reason: Option<&str>) -> NewCount {
    NewCount {
        lot_id: lot,
        physical,
        count_type: CountType::Routine,
        business_time: None,
        counted_at: None,
        estimated: false,
        reason: reason.map(Into::into),
        corrects: None,
    }
}

/// A session of `route` that has reached dosing.
async fn dosing_session(s: &Store, site: SiteId, mrn: &str, route: Route) -> SessionId {
    let p = patient(s, site, mrn).await;
    let c = s.create_course(&prescriber(&[site]), p, course(route)).await.unwrap();
    let sess = s
        .create_session(
            &prescriber(&[site]),
            c.id,
            NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
        )
        .await
        .unwrap();
    let n = nurse(&[site]);
    for step in [SessionAction::CheckIn, SessionAction::StartPreDoseChecks, SessionAction::StartDose] {
        s.act_on_session(&n, sess.id, step).await.unwrap();
    }
    sess.id
}

async fn rows(db: &TestDb, table: &'static str) -> i64 {
    keta_store::testing::read(&db.store, move |c| {
        c.query_opt(&format!("SELECT count(*) AS n FROM {table}"), &[])?.unwrap().i64("n")
    })
    .await
    .unwrap()
}

async fn audit_actions(db: &TestDb) -> Vec<String> {
    keta_store::testing::read(&db.store, |c| {
        c.query("SELECT action FROM audit_log ORDER BY seq", &[])?.iter().map(|r| r.text("action")).collect()
    })
    .await
    .unwrap()
}

async fn receive(db: &TestDb, clock: &ManualClock, r: NewReceipt) -> RecordedEntry {
    let a = r.site_id;
    db.store.record_receipt(&nurse(&[a]), Some(clock.now()), r, witness(prescriber(&[a]), clock)).await.unwrap()
}

#[tokio::test]
async fn a_vial_goes_from_receipt_through_dose_and_waste_to_a_balanced_count() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let sess = dosing_session(s, a, "A-0001", Route::IvRacemic).await;
        let n = nurse(&[a]);

        let start = clock.now(); // The clock runs on across backends.
        let r = receive(&db, &clock, vial_receipt(a, 5)).await;
        let lot = r.lot.id;
        assert_eq!((r.lot.on_hand, r.entry.kind), (Quantity(50_000), EntryKind::Receipt), "{k:?}");
        assert_eq!(r.entry.witnesses.len(), 1);
        assert_eq!(r.entry.witnesses[0].name, "dr.test", "the checker is stored");
        assert_eq!(r.entry.content_sha256.len(), 64, "IN-1: a SHA-256 of the entry's content");

        assert_eq!(keta_store::testing::administrations_for_session(s, sess).await.unwrap(), 0);
        clock.advance(time::Duration::minutes(1));
        let given = s.record_administration(&n, Some(clock.now()), dose(lot, sess, 35.0, 0.7)).await.unwrap();
        assert_eq!(
            given.entry.patient_id,
            Some(s.get_session(&n, sess).await.unwrap().patient_id),
            "linked to the session's patient"
        );
        assert_eq!((given.entry.session_id, given.entry.recorded_by.name.as_str()), (Some(sess), "nurse.test"));
        assert_eq!((given.entry.amount_mg, given.entry.amount_ml), (Milligrams(35.0), Some(Millilitres(0.7))));
        assert_eq!(keta_store::testing::administrations_for_session(s, sess).await.unwrap(), 1);

        // The rest of the opened vial is wasted before a witness; both people are stored.
        let w = s
            .record_waste(
                &n,
                Some(clock.now()),
                waste(lot, Some(given.entry.id), Amount::Ml(9.3)),
                witness(prescriber(&[a]), &clock),
            )
            .await
            .unwrap();
        assert_eq!((w.entry.recorded_by.name.as_str(), w.entry.witnesses[0].name.as_str()), ("nurse.test", "dr.test"));
        assert_eq!(w.entry.witnesses[0].reauthenticated_at, clock.now());
        assert_eq!((w.entry.amount_ml, w.entry.amount_mg), (Some(Millilitres(9.3)), Milligrams(465.0)));
        assert_eq!(w.lot.on_hand, Quantity(40_000));

        let c = s.record_count(&n, Some(clock.now()), count(lot, Amount::Ml(40.0), None), None).await.unwrap();
        assert!(c.alerts.is_empty());
        let rep =
            s.ledger_reconciliation(&Actor::staff("aud", Role::Auditor, SiteScope::All), Some(a), None).await.unwrap();
        assert!(rep.balanced, "{k:?}: {rep:?}");
        let t = rep.lots[0].reconciliation.totals;
        assert_eq!(
            (t.received, t.administered, t.wasted, t.on_hand),
            (Quantity(50_000), Quantity(700), Quantity(9300), Quantity(40_000))
        );

        // The inventory as it stood before the dose (CS-4): replaying the ledger to then.
        let before = s.ledger_reconciliation(&n, Some(a), Some(start)).await.unwrap();
        assert_eq!(before.lots[0].lot.on_hand, Quantity(50_000), "{k:?}");

        // Per substance and date range (CS-7).
        let q = LedgerQuery {
            substance: Some(Substance::Ketamine),
            from: Some(start),
            to: Some(clock.now() + time::Duration::minutes(1)),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(s.list_ledger_entries(&n, q).await.unwrap().len(), 4);
        // Every entry is in the audit trail, and the ledger's own chain verifies.
        let actions = audit_actions(&db).await;
        for want in ["cs_receive", "cs_administer", "cs_waste", "cs_count"] {
            assert!(actions.iter().any(|x| x == want), "{k:?}: no {want} in {actions:?}");
        }
        let v = s.verify_ledger(&n).await.unwrap();
        assert!(v.intact && v.entries_checked == 4, "{k:?}: {v:?}");
        // The front desk cannot see the ledger.
        assert!(matches!(s.list_lots(&front_desk(&[a]), None, false).await, Err(StoreError::Forbidden(_))));
    }
}

#[tokio::test]
async fn waste_needs_a_different_freshly_reauthenticated_witness() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let sess = dosing_session(s, a, "A-0001", Route::IvRacemic).await;
        let lot = receive(&db, &clock, vial_receipt(a, 1)).await.lot.id;
        // The prescriber gives the dose; the nurse records the waste.
        let given = s
            .record_administration(&prescriber(&[a]), Some(clock.now()), dose(lot, sess, 25.0, 0.5))
            .await
            .unwrap()
            .entry
            .id;
        let before = (rows(&db, "cs_ledger").await, rows(&db, "audit_log").await);
        let n = nurse(&[a]);
        let w = || waste(lot, Some(given), Amount::Ml(9.5));

        // The witness is the clinician who gave the dose: refused (422).
        let e = s.record_waste(&n, Some(clock.now()), w(), witness(prescriber(&[a]), &clock)).await.unwrap_err();
        assert!(matches!(&e, StoreError::Domain(d) if d.to_string().contains("witness_username")), "{k:?}: {e:?}");
        // The witness is the recorder: refused.
        let e = s.record_waste(&n, Some(clock.now()), w(), witness(nurse(&[a]), &clock)).await.unwrap_err();
        assert!(matches!(e, StoreError::Domain(_)), "{k:?}: {e:?}");
        // No fresh re-authentication by the recorder: 403 asking for the password.
        let e = s.record_waste(&n, None, w(), witness(other_nurse(&[a]), &clock)).await.unwrap_err();
        assert!(matches!(&e, StoreError::Forbidden(m) if m.contains("re-enter your password")), "{k:?}: {e:?}");
        let stale = clock.now() - time::Duration::minutes(6);
        let e = s.record_waste(&n, Some(stale), w(), witness(other_nurse(&[a]), &clock)).await.unwrap_err();
        assert!(matches!(&e, StoreError::Forbidden(m) if m.contains("re-enter your password")), "{k:?}: {e:?}");
        // ...nor by the witness.
        let e = s
            .record_waste(&n, Some(clock.now()), w(), Witness { actor: other_nurse(&[a]), reauthenticated_at: stale })
            .await
            .unwrap_err();
        assert!(matches!(&e, StoreError::Forbidden(m) if m.contains("witness")), "{k:?}: {e:?}");
        // A witness who may not handle controlled substances, or from another site.
        let e = s.record_waste(&n, Some(clock.now()), w(), witness(front_desk(&[a]), &clock)).await.unwrap_err();
        assert!(matches!(e, StoreError::Domain(_)), "{k:?}: {e:?}");
        let e =
            s.record_waste(&n, Some(clock.now()), w(), witness(other_nurse(&[SiteId(999)]), &clock)).await.unwrap_err();
        assert!(matches!(e, StoreError::Domain(_)), "{k:?}: {e:?}");
        assert_eq!(
            (rows(&db, "cs_ledger").await, rows(&db, "audit_log").await),
            before,
            "{k:?}: refused entries change nothing"
        );

        let ok = s.record_waste(&n, Some(clock.now()), w(), witness(other_nurse(&[a]), &clock)).await.unwrap();
        assert_eq!(ok.entry.witnesses[0].name, "nurse2.test");

        // Disposal: two witnesses, two different people.
        let d = |q| NewDisposal {
            lot_id: lot,
            registrant_name: "Keta Clinic A".into(),
            registrant_address: "2 Main St, Austin TX".into(),
            registrant_dea_number: "FK1234563".into(),
            full_containers: 0,
            partial_amount: Some(Amount::Ml(q)),
            destroyed_at: None,
            method: "chemical digestion".into(),
            location: "clinic A med room".into(),
            reason: "vial dropped, contaminated".into(),
            corrects: None,
        };
        let r = receive(&db, &clock, vial_receipt(a, 1)).await;
        let lot2 = r.lot.id;
        let d2 = |q| NewDisposal { lot_id: lot2, ..d(q) };
        let same = vec![witness(prescriber(&[a]), &clock), witness(prescriber(&[a]), &clock)];
        assert!(
            matches!(s.record_disposal(&n, Some(clock.now()), d2(5.0), same).await, Err(StoreError::Domain(_))),
            "{k:?}"
        );
        let one = vec![witness(prescriber(&[a]), &clock)];
        assert!(
            matches!(s.record_disposal(&n, Some(clock.now()), d2(5.0), one).await, Err(StoreError::Domain(_))),
            "{k:?}"
        );
        let two = vec![witness(prescriber(&[a]), &clock), witness(other_nurse(&[a]), &clock)];
        let done = s.record_disposal(&n, Some(clock.now()), d2(5.0), two).await.unwrap();
        assert_eq!(
            done.entry.witnesses.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
            ["dr.test", "nurse2.test"]
        );
        assert_eq!(done.lot.on_hand, Quantity(5000));
    }
}

#[tokio::test]
async fn an_entry_that_would_leave_less_than_nothing_is_refused_and_changes_nothing() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let sess = dosing_session(s, a, "A-0001", Route::IvRacemic).await;
        let lot = receive(&db, &clock, vial_receipt(a, 1)).await.lot.id;
        let n = nurse(&[a]);
        s.record_administration(&n, Some(clock.now()), dose(lot, sess, 450.0, 9.0)).await.unwrap();
        let before = (rows(&db, "cs_ledger").await, rows(&db, "audit_log").await);
        let e = s.record_administration(&n, Some(clock.now()), dose(lot, sess, 100.0, 2.0)).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Domain(d) if d.to_string().contains("-1 mL") && d.to_string().contains("below zero")),
            "{k:?}: {e:?}"
        );
        let e = s
            .record_waste(&n, Some(clock.now()), waste(lot, None, Amount::Ml(1.5)), witness(prescriber(&[a]), &clock))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Domain(_)), "{k:?}: {e:?}");
        assert_eq!((rows(&db, "cs_ledger").await, rows(&db, "audit_log").await), before, "{k:?}");
        assert_eq!(s.get_lot(&n, lot).await.unwrap().on_hand, Quantity(1000));

        // A dose that does not match its volume, from the wrong product, or an unknown lot.
        let e = s.record_administration(&n, Some(clock.now()), dose(lot, sess, 100.0, 0.5)).await.unwrap_err();
        assert!(matches!(&e, StoreError::Domain(d) if d.to_string().contains("dose_mg")), "{k:?}: {e:?}");
        let spray = receive(&db, &clock, spray_receipt(a, 1)).await.lot.id;
        let e = s
            .record_administration(
                &n,
                Some(clock.now()),
                NewAdministration {
                    devices_used: Some(2),
                    volume_ml: None,
                    dose_mg: Milligrams(56.0),
                    ..dose(spray, sess, 0.0, 0.0)
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(&e, StoreError::Domain(d) if d.to_string().contains("IV ketamine")), "{k:?}: {e:?}");
        assert!(matches!(
            s.record_administration(&n, Some(clock.now()), dose(LotId(999_999), sess, 5.0, 0.1)).await,
            Err(StoreError::NotFound(_))
        ));
        // A lot at another site is invisible to a nurse of this one.
        let b = site(s, "B").await;
        let lot_b = receive(&db, &clock, vial_receipt(b, 1)).await.lot.id;
        assert!(matches!(s.get_lot(&n, lot_b).await, Err(StoreError::NotFound(_))), "{k:?}");
    }
}

#[tokio::test]
async fn entries_are_append_only_and_a_correction_keeps_the_original() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let sess = dosing_session(s, a, "A-0001", Route::IvRacemic).await;
        let lot = receive(&db, &clock, vial_receipt(a, 2)).await.lot.id;
        let n = nurse(&[a]);
        let wrong = s.record_administration(&n, Some(clock.now()), dose(lot, sess, 50.0, 1.0)).await.unwrap().entry;

        // The dose was really 40 mg in 0.8 mL: a reversal and a replacement, both linked.
        let fix = NewAdministration {
            corrects: Some(Correction { entry_id: wrong.id, reason: "typed 1.0 for 0.8 mL".into() }),
            ..dose(lot, sess, 40.0, 0.8)
        };
        let fixed = s.record_administration(&n, Some(clock.now()), fix).await.unwrap();
        let rev = fixed.reversal.clone().expect("a reversal");
        assert_eq!(
            (rev.kind, rev.reverses_id, rev.change),
            (EntryKind::Reversal, Some(wrong.id), Quantity(1000)),
            "{k:?}"
        );
        assert_eq!(fixed.entry.corrects_id, Some(wrong.id));
        assert_eq!(fixed.lot.on_hand, Quantity(19_200));
        // The original is still there, unchanged, marked as reversed.
        let orig = s.get_ledger_entry(&n, wrong.id).await.unwrap();
        assert_eq!(
            (orig.change, orig.content_sha256.as_str(), orig.reversed_by),
            (wrong.change, wrong.content_sha256.as_str(), Some(rev.id))
        );
        assert_eq!(
            keta_store::testing::administrations_for_session(s, sess).await.unwrap(),
            1,
            "the replacement counts, the original does not"
        );
        // An entry is corrected once.
        let again = NewAdministration {
            corrects: Some(Correction { entry_id: wrong.id, reason: "again".into() }),
            ..dose(lot, sess, 40.0, 0.8)
        };
        assert!(s.record_administration(&n, Some(clock.now()), again).await.is_err());

        // A void: a witnessed reversal without replacement.
        let void = s
            .reverse_ledger_entry(
                &n,
                Some(clock.now()),
                fixed.entry.id,
                Reversal { reason: "wrong patient".into() },
                witness(prescriber(&[a]), &clock),
            )
            .await
            .unwrap();
        assert_eq!(void.lot.on_hand, Quantity(20_000));
        assert_eq!(keta_store::testing::administrations_for_session(s, sess).await.unwrap(), 0);
        assert!(
            s.reverse_ledger_entry(
                &n,
                Some(clock.now()),
                void.entry.id,
                Reversal { reason: "undo".into() },
                witness(prescriber(&[a]), &clock)
            )
            .await
            .is_err(),
            "a reversal is not reversed"
        );
        let all = s
            .list_ledger_entries(&n, LedgerQuery { lot_id: Some(lot), limit: 100, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [
                EntryKind::Receipt,
                EntryKind::Administration,
                EntryKind::Reversal,
                EntryKind::Administration,
                EntryKind::Reversal
            ]
        );

        // The database refuses to change or remove entries, even for Keta itself.
        assert!(
            keta_store::testing::write(s, move |c| c
                .execute("UPDATE cs_ledger SET change_thousandths = 0 WHERE id = $1", params![wrong.id.0]))
            .await
            .is_err(),
            "{k:?}"
        );
        assert!(
            keta_store::testing::write(s, move |c| c
                .execute("DELETE FROM cs_ledger WHERE id = $1", params![wrong.id.0]))
            .await
            .is_err(),
            "{k:?}"
        );
        assert!(keta_store::testing::write(s, |c| c.execute("DELETE FROM cs_lots", &[])).await.is_err(), "{k:?}");
        assert!(s.verify_ledger(&n).await.unwrap().intact);
    }
}

#[tokio::test]
async fn a_count_discrepancy_raises_an_alert_until_a_loss_explains_it() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let lot = receive(&db, &clock, vial_receipt(a, 2)).await.lot.id;
        let n = nurse(&[a]);
        // 18 mL on the shelf, 20 mL in the book: a reason is required...
        let e = s.record_count(&n, Some(clock.now()), count(lot, Amount::Ml(18.0), None), None).await.unwrap_err();
        assert!(matches!(&e, StoreError::Domain(d) if d.to_string().contains("reason")), "{k:?}: {e:?}");
        // ...and the count raises an alert, audited, in the same transaction.
        let c = s
            .record_count(
                &n,
                Some(clock.now()),
                count(lot, Amount::Ml(18.0), Some("one vial short at shift end")),
                Some(witness(other_nurse(&[a]), &clock)),
            )
            .await
            .unwrap();
        let result = c.entry.count.unwrap();
        assert_eq!(
            (result.physical, result.expected, result.discrepancy),
            (Quantity(18_000), Quantity(20_000), Quantity(-2000)),
            "{k:?}"
        );
        assert_eq!(c.alerts.len(), 1);
        assert!(c.alerts[0].message.contains("-2 mL missing"), "{}", c.alerts[0].message);
        let actions = audit_actions(&db).await;
        assert!(actions.ends_with(&["cs_count".to_string(), "create".to_string()]), "{k:?}: {actions:?}");
        let open = s.ledger_alerts(&n, Some(a)).await.unwrap();
        assert!(open.len() == 1 && open[0].open, "{k:?}: {open:?}");

        let rep = s.ledger_reconciliation(&n, Some(a), None).await.unwrap();
        assert!(!rep.balanced, "{k:?}");
        assert_eq!(rep.discrepancy_lots, [lot]);
        let r = &rep.lots[0].reconciliation;
        assert_eq!(r.flags[0].kind, FlagKind::Discrepancy);
        assert_eq!((r.totals.on_hand, r.expected_on_shelf), (Quantity(20_000), Quantity(18_000)));

        // The loss is reported (Form 106) against the count: the book now matches the shelf.
        let loss = NewLoss {
            lot_id: lot,
            loss_type: LossType::EmployeePilferage,
            amount: Amount::Ml(2.0),
            discovered_at: clock.now(),
            circumstances: "vial missing from the locked cabinet at shift-end count".into(),
            police_report: None,
            dea_notified_at: None,
            form_106_filed_at: None,
            count_id: Some(c.entry.id),
            investigation_notes: None,
            corrects: None,
        };
        let l = s.record_loss(&n, Some(clock.now()), loss).await.unwrap();
        let rep = s.ledger_reconciliation(&n, Some(a), None).await.unwrap();
        assert!(rep.balanced, "{k:?}: {rep:?}");
        assert_eq!(rep.lots[0].reconciliation.discrepancies.len(), 1, "the discrepancy stays in the history");
        assert!(!s.ledger_alerts(&n, Some(a)).await.unwrap()[0].open, "{k:?}");
        let ws = s.loss_worksheet(&n, l.entry.id).await.unwrap();
        assert_eq!(
            (ws.quantity_lost_ml, ws.quantity_lost_mg, ws.dea_drug_code.as_str()),
            (Some(Millilitres(2.0)), Milligrams(100.0), "7285")
        );
        assert!(ws.outstanding.iter().any(|o| o.contains("one business day")), "{:?}", ws.outstanding);

        // Overfill found later: an adjustment up, witnessed, against a new count.
        let c2 =
            s.record_count(&n, Some(clock.now()), count(lot, Amount::Ml(18.3), Some("overfill")), None).await.unwrap();
        assert_eq!(c2.alerts.len(), 1);
        let adj = NewAdjustment {
            lot_id: lot,
            direction: AdjustmentDirection::Increase,
            amount: Amount::Ml(0.3),
            reason: "vial overfill".into(),
            count_id: Some(c2.entry.id),
            corrects: None,
        };
        assert!(matches!(
            s.record_adjustment(&n, Some(clock.now()), adj.clone(), witness(nurse(&[a]), &clock)).await,
            Err(StoreError::Domain(_))
        ));
        s.record_adjustment(&n, Some(clock.now()), adj, witness(prescriber(&[a]), &clock)).await.unwrap();
        assert!(s.ledger_reconciliation(&n, Some(a), None).await.unwrap().balanced, "{k:?}");
    }
}

#[tokio::test]
async fn esketamine_devices_are_received_and_counted_by_device_and_tracked_in_mg() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let sess = dosing_session(s, a, "A-0001", Route::IntranasalEsketamine).await;
        let r = receive(&db, &clock, spray_receipt(a, 3)).await;
        assert_eq!(
            (r.lot.on_hand, r.lot.on_hand_devices, r.lot.on_hand_ml),
            (Quantity(168_000), Some(6.0), None),
            "{k:?}"
        );
        let n = nurse(&[a]);
        let spray = |mg: f64, devices: u32| NewAdministration {
            dose_mg: Milligrams(mg),
            volume_ml: None,
            devices_used: Some(devices),
            ..dose(r.lot.id, sess, 0.0, 0.0)
        };
        // 84 mg with two devices cannot be.
        assert!(matches!(
            s.record_administration(&n, Some(clock.now()), spray(84.0, 2)).await,
            Err(StoreError::Domain(_))
        ));
        // 42 mg: three sprays from two devices; the last spray is wasted.
        let given = s.record_administration(&n, Some(clock.now()), spray(42.0, 2)).await.unwrap();
        let w = s
            .record_waste(
                &n,
                Some(clock.now()),
                waste(r.lot.id, Some(given.entry.id), Amount::Mg(14.0)),
                witness(prescriber(&[a]), &clock),
            )
            .await
            .unwrap();
        assert_eq!((w.lot.on_hand_devices, w.entry.amount_ml), (Some(4.0), None));
        let c = s.record_count(&n, Some(clock.now()), count(r.lot.id, Amount::Devices(4), None), None).await.unwrap();
        assert!(c.alerts.is_empty(), "{k:?}");
        assert!(matches!(
            s.record_count(&n, Some(clock.now()), count(r.lot.id, Amount::Ml(1.0), Some("x")), None).await,
            Err(StoreError::Domain(_))
        ));
    }
}

#[tokio::test]
async fn the_ledger_chain_detects_an_edit_made_outside_keta() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let lot = receive(&db, &clock, vial_receipt(a, 2)).await.lot.id;
        let n = nurse(&[a]);
        for _ in 0..3 {
            db.store.record_count(&n, Some(clock.now()), count(lot, Amount::Ml(20.0), None), None).await.unwrap();
        }
        let target = db
            .store
            .list_ledger_entries(&n, LedgerQuery { lot_id: Some(lot), limit: 10, ..Default::default() })
            .await
            .unwrap()[2]
            .id;
        // Someone with the database shell disables the guard and changes a count.
        let kind = db.kind;
        keta_store::testing::write(&db.store, move |c| {
            match kind {
                Kind::Sqlite => c.execute("DROP TRIGGER cs_ledger_no_update", &[])?,
                Kind::Postgres => c.execute("ALTER TABLE cs_ledger DISABLE TRIGGER cs_ledger_no_update", &[])?,
            };
            c.execute("UPDATE cs_ledger SET count_physical = 19000 WHERE id = $1", params![target.0])
        })
        .await
        .unwrap();
        let v = db.store.verify_ledger(&n).await.unwrap();
        assert!(!v.intact, "{kind:?}");
        assert_eq!(v.first_break.as_ref().map(|b| b.entry_id), Some(target), "{kind:?}: {v:?}");
        assert_eq!(v.entries_checked, 2);
    }
}

// --- over HTTP ------------------------------------------------------------------

/// A signed-in session's cookie and CSRF token, taken after re-authentication (which
/// rotates the cookie).
struct Session {
    cookie: String,
    csrf: String,
}

async fn reauthenticate(app: &keta_testkit::TestApp, password: &str) -> Session {
    let r = app.post_json("/api/v1/auth/reauth", &json!({"password": password})).await;
    assert_eq!(r.status(), 200, "reauth");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-keta=").map(|rest| rest.split(';').next().unwrap_or("").to_string()))
        .expect("rotated cookie");
    let me: Value = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", format!("__Host-keta={cookie}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Session { cookie, csrf: me["csrf_token"].as_str().unwrap().to_string() }
}

impl Session {
    fn send(&self, app: &keta_testkit::TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        app.client
            .request(method, app.url(path))
            .header("cookie", format!("__Host-keta={}", self.cookie))
            .header("x-csrf-token", &self.csrf)
    }
}

fn receipt_body(site: i64, witness: &str, password: &str) -> Value {
    json!({
        "entry": {
            "site_id": site, "supplier_name": "Example Wholesale", "supplier_address": "1 Depot Rd", "supplier_dea_number": "PS1234563",
            "substance": "ketamine", "presentation": {"form": "vial", "concentration_mg_per_ml": 50, "ml_per_vial": 10},
            "containers": 2, "lot_number": "KX9", "ndc": "0409-2051-05", "expires_on": "2027-06-30"
        },
        "witness_username": witness, "witness_password": password
    })
}

#[tokio::test]
async fn ledger_entries_over_http_need_reauthentication_a_real_witness_and_have_no_put_or_delete() {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let a = site(&db.store, "A").await;
    let staff = seed_staff(&db.store, &[a]).await;
    let app = spawn_app(db.store.clone()).await;
    let by = |r: Role| staff.iter().find(|s| s.role == r).unwrap();
    let (rn, dr) = (by(Role::Nurse), by(Role::Prescriber));
    assert_eq!(app.login(rn, T0).await.status(), 200);

    // Signing in counts as entering the password; six minutes later it is stale: 403.
    clock.advance(time::Duration::minutes(6));
    let r = app.post_json("/api/v1/ledger/receipts", &receipt_body(a.0, &dr.username, &dr.password)).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("re-enter your password"));

    let s = reauthenticate(&app, &rn.password).await;
    // A witness with the wrong password is not a witness.
    let r = s
        .send(&app, reqwest::Method::POST, "/api/v1/ledger/receipts")
        .json(&receipt_body(a.0, &dr.username, "not the password"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The nurse cannot witness their own receipt.
    let r = s
        .send(&app, reqwest::Method::POST, "/api/v1/ledger/receipts")
        .json(&receipt_body(a.0, &rn.username, &rn.password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["errors"][0]["field"], "witness_username");
    // A missing DEA number is a 422 naming the field.
    let mut bad = receipt_body(a.0, &dr.username, &dr.password);
    bad["entry"]["supplier_dea_number"] = json!("");
    let r = s.send(&app, reqwest::Method::POST, "/api/v1/ledger/receipts").json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        keta_store::testing::read(&db.store, |c| c
            .query_opt("SELECT count(*) AS n FROM cs_ledger", &[])?
            .unwrap()
            .i64("n"))
        .await
        .unwrap(),
        0
    );

    let r = s
        .send(&app, reqwest::Method::POST, "/api/v1/ledger/receipts")
        .json(&receipt_body(a.0, &dr.username, &dr.password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rec: Value = r.json().await.unwrap();
    let (entry, lot) = (rec["entry"]["id"].as_i64().unwrap(), rec["lot"]["id"].as_i64().unwrap());
    assert_eq!(rec["entry"]["witnesses"][0]["name"], dr.username.as_str());
    assert!(rec["entry"]["witnesses"][0]["user_id"].is_i64(), "the witness's user id is stored");
    assert_eq!(rec["lot"]["on_hand"], 20.0);
    assert_eq!(rec["lot"]["unit"], "mL");

    // Entries are append-only: there is no PUT or DELETE, and the entry is unchanged.
    for m in [reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::PATCH] {
        let r = s
            .send(&app, m.clone(), &format!("/api/v1/ledger/entries/{entry}"))
            .json(&json!({"change": 0}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{m}");
    }
    let got: Value = s
        .send(&app, reqwest::Method::GET, &format!("/api/v1/ledger/entries/{entry}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["change"], 20.0);
    assert_eq!(got["content_sha256"], rec["entry"]["content_sha256"]);

    // Reading: lots, entries by lot, reconciliation, verification.
    let lots: Value =
        s.send(&app, reqwest::Method::GET, "/api/v1/ledger/lots").send().await.unwrap().json().await.unwrap();
    assert_eq!(lots.as_array().unwrap().len(), 1);
    let list: Value = s
        .send(&app, reqwest::Method::GET, &format!("/api/v1/ledger/entries?lot_id={lot}&kind=receipt"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let r = s.send(&app, reqwest::Method::GET, "/api/v1/ledger/entries?kind=nonsense").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let rep: Value = s
        .send(&app, reqwest::Method::GET, &format!("/api/v1/ledger/reconciliation?site_id={}", a.0))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rep["balanced"], true);
    assert_eq!(rep["lots"][0]["totals"]["on_hand"], 20.0);
    let v: Value =
        s.send(&app, reqwest::Method::GET, "/api/v1/ledger/verify").send().await.unwrap().json().await.unwrap();
    assert_eq!(v["intact"], true);

    // A count that differs raises an alert, visible to the auditor.
    let body = json!({"entry": {"lot_id": lot, "physical": {"ml": 19.5}, "reason": "short at close"}});
    let r = s.send(&app, reqwest::Method::POST, "/api/v1/ledger/counts").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["alerts"].as_array().unwrap().len(), 1);
    clock.advance(time::Duration::seconds(31));
    app.logout_locally();
    assert_eq!(app.login(by(Role::Auditor), clock.now()).await.status(), 200);
    let alerts: Value = app.get("/api/v1/ledger/alerts").await.json().await.unwrap();
    assert_eq!(alerts[0]["open"], true);
    let r = app.post_json("/api/v1/ledger/counts", &body).await;
    assert_eq!(r.status(), 403, "auditors read the ledger but do not write it");
}
