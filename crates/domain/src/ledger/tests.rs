use proptest::prelude::*;
use time::macros::{date, datetime};

use super::*;

const NOW: OffsetDateTime = datetime!(2026-11-02 14:00 UTC);

fn utc(t: OffsetDateTime) -> Date {
    t.date()
}

fn vial() -> Product {
    Product {
        substance: Substance::Ketamine,
        presentation: Presentation::Vial { concentration_mg_per_ml: MgPerMl(50.0), ml_per_vial: Millilitres(10.0) },
    }
}

fn spray() -> Product {
    Product {
        substance: Substance::Esketamine,
        presentation: Presentation::NasalSprayDevice { mg_per_device: Milligrams(28.0), devices_per_package: 2 },
    }
}

fn fields(e: DomainError) -> Vec<String> {
    match e {
        DomainError::Invalid(v) => v.into_iter().map(|f| f.field).collect(),
        DomainError::Conflict(m) => vec![format!("conflict: {m}")],
    }
}

fn receipt() -> NewReceipt {
    NewReceipt {
        site_id: SiteId(1),
        received_at: None,
        supplier_name: "Example Wholesale".into(),
        supplier_address: "1 Depot Rd, Austin TX".into(),
        supplier_dea_number: "PS1234563".into(),
        invoice_number: Some("INV-1".into()),
        substance: Substance::Ketamine,
        presentation: vial().presentation,
        containers: 5,
        lot_number: "KX1234".into(),
        ndc: "0409-2051-05".into(),
        expires_on: date!(2027 - 06 - 30),
        corrects: None,
    }
}

#[test]
fn dea_numbers_are_checked_by_their_check_digit() {
    assert!(valid_dea_number("AB1234563"));
    assert!(valid_dea_number("ps1234563"), "case does not matter");
    assert!(!valid_dea_number("AB1234564"), "wrong check digit");
    assert!(!valid_dea_number("ZB1234563"), "unknown registrant type");
    assert!(!valid_dea_number("AB123456"), "too short");
    assert!(valid_dea_number("A91234563"), "a 9 in second place is allowed");
}

#[test]
fn ndcs_take_the_printed_shapes() {
    for ok in ["0409-2051-05", "42023-113-10", "12345-6789-1", "12345-6789-01", "0409205105", "42023011310"] {
        assert!(valid_ndc(ok), "{ok}");
    }
    for bad in ["0409-2051", "04092051", "0409-2051-0a", "123-4567-89", ""] {
        assert!(!valid_ndc(bad), "{bad}");
    }
}

#[test]
fn a_receipt_without_a_supplier_dea_number_or_quantity_is_refused() {
    let mut r = receipt();
    r.supplier_dea_number = "".into();
    r.containers = 0;
    let f = fields(r.validate(NOW, &utc).unwrap_err());
    assert!(f.contains(&"supplier_dea_number".to_string()) && f.contains(&"containers".to_string()), "{f:?}");
    assert_eq!(receipt().validate(NOW, &utc).unwrap(), Quantity(50_000), "5 vials of 10 mL");
}

#[test]
fn expired_stock_is_not_received_and_the_form_fits_the_substance() {
    let mut r = receipt();
    r.expires_on = date!(2026 - 11 - 01);
    assert_eq!(fields(r.validate(NOW, &utc).unwrap_err()), ["expires_on"]);
    // Stock expiring on 3 Nov arrives at 14:00 UTC on 2 Nov: a day to spare in UTC, but at a
    // site thirteen hours ahead it is already 3 Nov, its expiry day, so it is refused.
    let mut r = receipt();
    r.expires_on = date!(2026 - 11 - 03);
    r.received_at = Some(NOW);
    assert!(r.validate(NOW, &utc).is_ok());
    let tongatapu = |t: OffsetDateTime| t.to_offset(time::macros::offset!(+13)).date();
    assert_eq!(fields(r.validate(NOW, &tongatapu).unwrap_err()), ["expires_on"]);
    let mut r = receipt();
    r.substance = Substance::Esketamine;
    assert_eq!(fields(r.validate(NOW, &utc).unwrap_err()), ["presentation"]);
}

#[test]
fn amounts_convert_exactly_into_the_lot_unit() {
    assert_eq!(vial().quantity_of("a", Amount::Ml(2.5)).unwrap(), Quantity(2500));
    assert_eq!(vial().quantity_of("a", Amount::Mg(25.0)).unwrap(), Quantity(500), "25 mg at 50 mg/mL is 0.5 mL");
    assert!(vial().quantity_of("a", Amount::Devices(1)).is_err());
    assert!(vial().quantity_of("a", Amount::Ml(0.0001)).is_err(), "finer than 0.001 mL");
    assert!(vial().quantity_of("a", Amount::Ml(-1.0)).is_err());
    assert!(vial().quantity_of("a", Amount::Ml(f64::NAN)).is_err());
    assert_eq!(spray().quantity_of("a", Amount::Devices(3)).unwrap(), Quantity(84_000), "3 devices = 84 mg");
    assert_eq!(spray().quantity_of("a", Amount::Mg(14.0)).unwrap(), Quantity(14_000));
    assert!(spray().quantity_of("a", Amount::Ml(1.0)).is_err());
    assert_eq!(spray().per_container(), Quantity(56_000));
    assert_eq!(spray().devices_in(Quantity(70_000)), Some(2.5));
    assert_eq!(vial().mg_in(Quantity(1500)), Milligrams(75.0));
    assert_eq!(Quantity(-2500).show(CountingUnit::Millilitres), "-2.5 mL");
    assert_eq!(Quantity(56_000).show(CountingUnit::Milligrams), "56 mg");
    assert_eq!(Quantity(1).show(CountingUnit::Millilitres), "0.001 mL");
}

fn admin(dose: f64, ml: Option<f64>, devices: Option<u32>) -> NewAdministration {
    NewAdministration {
        lot_id: LotId(1),
        session_id: SessionId(1),
        dose_mg: Milligrams(dose),
        volume_ml: ml.map(Millilitres),
        devices_used: devices,
        administered_at: None,
        ended_at: None,
        ordering_prescriber: None,
        corrects: None,
    }
}

#[test]
fn a_vial_dose_must_agree_with_its_volume() {
    assert_eq!(admin(35.0, Some(0.7), None).validate(&vial(), NOW).unwrap(), Quantity(700));
    assert_eq!(fields(admin(35.0, Some(0.9), None).validate(&vial(), NOW).unwrap_err()), ["dose_mg"]);
    assert_eq!(fields(admin(35.0, None, None).validate(&vial(), NOW).unwrap_err()), ["volume_ml"]);
    assert_eq!(fields(admin(35.0, Some(0.7), Some(1)).validate(&vial(), NOW).unwrap_err()), ["devices_used"]);
}

#[test]
fn a_device_dose_must_fit_the_devices_opened() {
    assert_eq!(admin(56.0, None, Some(2)).validate(&spray(), NOW).unwrap(), Quantity(56_000));
    assert_eq!(
        admin(42.0, None, Some(2)).validate(&spray(), NOW).unwrap(),
        Quantity(42_000),
        "one spray left over, to waste"
    );
    assert_eq!(fields(admin(84.0, None, Some(2)).validate(&spray(), NOW).unwrap_err()), ["dose_mg"]);
    assert_eq!(
        fields(admin(28.0, None, Some(2)).validate(&spray(), NOW).unwrap_err()),
        ["dose_mg"],
        "a second device was not needed"
    );
    assert_eq!(fields(admin(56.0, Some(1.0), Some(2)).validate(&spray(), NOW).unwrap_err()), ["volume_ml"]);
}

#[test]
fn a_count_that_differs_needs_a_reason() {
    let c = NewCount {
        lot_id: LotId(1),
        physical: Amount::Ml(18.0),
        count_type: CountType::Routine,
        business_time: None,
        counted_at: None,
        estimated: false,
        reason: None,
        corrects: None,
    };
    let e = c.validate(&vial(), Quantity(20_000), NOW).unwrap_err();
    let DomainError::Invalid(f) = e else { panic!() };
    assert_eq!(f[0].field, "reason");
    assert!(f[0].message.contains("-2 mL"), "{}", f[0].message);
    let ok = NewCount { reason: Some("vial broken, see incident 12".into()), ..c.clone() }
        .validate(&vial(), Quantity(20_000), NOW)
        .unwrap();
    assert_eq!(ok.discrepancy, Quantity(-2000));
    assert!(c.validate(&vial(), Quantity(18_000), NOW).is_ok(), "a matching count needs no reason");
    let biennial = NewCount { count_type: CountType::Biennial, ..c };
    assert_eq!(fields(biennial.validate(&vial(), Quantity(18_000), NOW).unwrap_err()), ["business_time"]);
}

#[test]
fn disposal_totals_full_and_partial_containers() {
    let d = NewDisposal {
        lot_id: LotId(1),
        registrant_name: "Keta Clinic".into(),
        registrant_address: "2 Main St".into(),
        registrant_dea_number: "FK1234563".into(),
        full_containers: 2,
        partial_amount: Some(Amount::Ml(3.5)),
        destroyed_at: None,
        method: "chemical digestion".into(),
        location: "clinic".into(),
        reason: "expired".into(),
        corrects: None,
    };
    assert_eq!(d.validate(&vial(), NOW).unwrap(), Quantity(23_500));
    let too_much = NewDisposal { partial_amount: Some(Amount::Ml(10.0)), ..d.clone() };
    assert_eq!(fields(too_much.validate(&vial(), NOW).unwrap_err()), ["partial_amount"]);
    let nothing = NewDisposal { full_containers: 0, partial_amount: None, ..d };
    assert_eq!(fields(nothing.validate(&vial(), NOW).unwrap_err()), ["full_containers"]);
}

fn person(id: i64, name: &str) -> Signatory {
    Signatory { user_id: Some(id), name: name.into(), reauthenticated_at: NOW }
}

#[test]
fn witnesses_are_other_people() {
    let (rn, dr, tech) = (person(1, "nurse.a"), person(2, "dr.b"), person(3, "tech.c"));
    assert!(check_witnesses(EntryKind::Waste, &rn, std::slice::from_ref(&dr), None).is_ok());
    // The witness to waste cannot be the person recording it, nor the one who gave the dose.
    assert_eq!(
        fields(check_witnesses(EntryKind::Waste, &rn, std::slice::from_ref(&rn), None).unwrap_err()),
        ["witness_username"]
    );
    assert_eq!(
        fields(check_witnesses(EntryKind::Waste, &rn, std::slice::from_ref(&dr), Some(&dr)).unwrap_err()),
        ["witness_username"]
    );
    // Same user id under another name is the same person; so is the same name in other case.
    assert!(check_witnesses(EntryKind::Waste, &rn, &[person(1, "alias")], None).is_err());
    assert!(check_witnesses(EntryKind::Waste, &rn, &[person(9, "NURSE.A")], None).is_err());
    assert!(check_witnesses(EntryKind::Waste, &rn, &[], None).is_err(), "waste needs a witness");
    // Disposal: two different witnesses; the recorder may be one of them.
    assert!(check_witnesses(EntryKind::Disposal, &rn, &[rn.clone(), dr.clone()], None).is_ok());
    assert!(check_witnesses(EntryKind::Disposal, &rn, &[dr.clone(), tech.clone()], None).is_ok());
    assert_eq!(
        fields(check_witnesses(EntryKind::Disposal, &rn, &[dr.clone(), dr.clone()], None).unwrap_err()),
        ["second_witness_username"]
    );
    assert!(check_witnesses(EntryKind::Disposal, &rn, std::slice::from_ref(&dr), None).is_err(), "fewer than two");
    assert!(check_witnesses(EntryKind::Administration, &rn, &[], None).is_ok());
    assert!(check_witnesses(EntryKind::Administration, &rn, &[dr], None).is_err());
}

#[test]
fn reauthentication_must_be_recent() {
    let w = DEFAULT_REAUTHENTICATION_WINDOW;
    assert!(check_reauthentication("sign", None, NOW, w).unwrap_err().contains("re-enter your password"));
    assert!(check_reauthentication("sign", Some(NOW - Duration::minutes(4)), NOW, w).is_ok());
    assert!(check_reauthentication("sign", Some(NOW - Duration::minutes(5)), NOW, w).is_ok());
    assert!(check_reauthentication("sign", Some(NOW - Duration::minutes(5) - Duration::seconds(1)), NOW, w).is_err());
    assert!(
        check_reauthentication("sign", Some(NOW + Duration::hours(1)), NOW, w).is_err(),
        "a time in the future is not trusted"
    );
}

// --- the book -----------------------------------------------------------------

/// A book driven like the store drives it: plan, then commit with fresh ids.
struct Sim {
    book: LotBook,
    next: i64,
}

impl Sim {
    fn new() -> Self {
        Self { book: LotBook::new(CountingUnit::Millilitres, vec![]), next: 1 }
    }
    fn apply(&mut self, planned: Vec<Planned>) -> Vec<EntryId> {
        planned
            .into_iter()
            .map(|p| {
                let id = EntryId(self.next);
                self.next += 1;
                self.book.commit(p, id, NOW);
                id
            })
            .collect()
    }
    fn propose(&mut self, p: Proposal) -> Result<Vec<EntryId>, DomainError> {
        let planned = self.book.plan(&p)?;
        Ok(self.apply(planned))
    }
    fn count(&mut self, physical: i64) -> Result<Vec<EntryId>, DomainError> {
        let expected = self.book.on_hand();
        let count = CountResult { physical: Quantity(physical), expected, discrepancy: Quantity(physical) - expected };
        self.propose(Proposal { count: Some(count), ..Proposal::movement(EntryKind::Count, Quantity::ZERO) })
    }
}

#[test]
fn on_hand_is_received_minus_what_went_out() {
    let mut s = Sim::new();
    s.propose(Proposal::movement(EntryKind::Receipt, Quantity(10_000))).unwrap();
    let a = s.propose(Proposal::movement(EntryKind::Administration, Quantity(-700))).unwrap()[0];
    s.propose(Proposal { administration: Some(a), ..Proposal::movement(EntryKind::Waste, Quantity(-300)) }).unwrap();
    assert_eq!(s.book.on_hand(), Quantity(9000));
    let t = s.book.totals();
    assert_eq!((t.received, t.administered, t.wasted), (Quantity(10_000), Quantity(700), Quantity(300)));
}

#[test]
fn an_entry_that_would_go_below_zero_is_refused_and_changes_nothing() {
    let mut s = Sim::new();
    s.propose(Proposal::movement(EntryKind::Receipt, Quantity(1000))).unwrap();
    let before = s.book.clone();
    let e = s.propose(Proposal::movement(EntryKind::Administration, Quantity(-1001))).unwrap_err();
    assert!(
        matches!(&e, DomainError::Conflict(m) if m.contains("-0.001 mL") && m.contains("Nothing was recorded")),
        "{e:?}"
    );
    assert_eq!(s.book, before);
}

#[test]
fn a_correction_reverses_the_original_and_keeps_it() {
    let mut s = Sim::new();
    let r = s.propose(Proposal::movement(EntryKind::Receipt, Quantity(10_000))).unwrap()[0];
    s.propose(Proposal::movement(EntryKind::Administration, Quantity(-6000))).unwrap();
    // The receipt was really 8 mL: reversing first would dip to -6 mL, so the
    // replacement goes first.
    let ids =
        s.propose(Proposal { corrects: Some(r), ..Proposal::movement(EntryKind::Receipt, Quantity(8000)) }).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(s.book.get(ids[0]).unwrap().kind, EntryKind::Receipt);
    assert_eq!(s.book.get(ids[1]).unwrap().reverses, Some(r));
    assert_eq!(s.book.on_hand(), Quantity(2000));
    assert!(s.book.get(r).is_some(), "the original stays");
    assert_eq!(s.book.totals().received, Quantity(8000));
    // It cannot be corrected or reversed again.
    assert!(
        s.propose(Proposal { corrects: Some(r), ..Proposal::movement(EntryKind::Receipt, Quantity(9000)) }).is_err()
    );
    assert!(s.book.plan_reversal(r).is_err());
    assert!(s.book.plan_reversal(ids[1]).is_err(), "a reversal is not reversed");
}

#[test]
fn counts_reconcile_and_losses_explain_them() {
    let mut s = Sim::new();
    s.propose(Proposal::movement(EntryKind::Receipt, Quantity(20_000))).unwrap();
    assert!(s.book.reconcile(None, NOW.date(), &utc).balanced, "no count yet");
    let c = s.count(18_000).unwrap()[0];
    let r = s.book.reconcile(None, NOW.date(), &utc);
    assert!(!r.balanced);
    assert_eq!(r.flags.len(), 1);
    assert_eq!(r.flags[0].kind, FlagKind::Discrepancy);
    assert_eq!(r.last_count.unwrap().unexplained, Quantity(-2000));
    assert_eq!(r.expected_on_shelf, Quantity(18_000));
    // A loss report linked to the count explains it; the history keeps the discrepancy.
    s.propose(Proposal { resolves_count: Some(c), ..Proposal::movement(EntryKind::Loss, Quantity(-2000)) }).unwrap();
    let r = s.book.reconcile(None, NOW.date(), &utc);
    assert!(r.balanced, "{r:?}");
    assert_eq!(r.discrepancies.len(), 1);
    assert_eq!(
        (r.totals.lost, r.totals.on_hand, r.expected_on_shelf),
        (Quantity(2000), Quantity(18_000), Quantity(18_000))
    );
    // A clean recount supersedes it.
    s.count(18_000).unwrap();
    assert!(s.book.reconcile(None, NOW.date(), &utc).balanced);
}

#[test]
fn expired_stock_on_hand_is_flagged() {
    let mut s = Sim::new();
    s.propose(Proposal::movement(EntryKind::Receipt, Quantity(1000))).unwrap();
    let r = s.book.reconcile(Some(date!(2026 - 10 - 31)), NOW.date(), &utc);
    assert_eq!(r.flags.iter().map(|f| f.kind).collect::<Vec<_>>(), [FlagKind::ExpiredStock]);
    assert!(r.balanced, "expiry is not a count discrepancy");
}

#[test]
fn links_must_point_at_standing_entries_of_the_right_kind() {
    let mut s = Sim::new();
    let r = s.propose(Proposal::movement(EntryKind::Receipt, Quantity(5000))).unwrap()[0];
    let waste = |a| Proposal { administration: Some(a), ..Proposal::movement(EntryKind::Waste, Quantity(-100)) };
    assert_eq!(fields(s.book.plan(&waste(r)).unwrap_err()), ["administration_id"]);
    assert_eq!(fields(s.book.plan(&waste(EntryId(99))).unwrap_err()), ["administration_id"]);
    let loss = Proposal { resolves_count: Some(r), ..Proposal::movement(EntryKind::Loss, Quantity(-100)) };
    assert_eq!(fields(s.book.plan(&loss).unwrap_err()), ["count_id"]);
    let wrong_kind = Proposal { corrects: Some(r), ..Proposal::movement(EntryKind::Administration, Quantity(-100)) };
    assert_eq!(fields(s.book.plan(&wrong_kind).unwrap_err()), ["corrects.entry_id"]);
    assert!(s.book.plan(&Proposal::movement(EntryKind::Receipt, Quantity(-1))).is_err(), "receipts add stock");
    assert!(
        s.book.plan(&Proposal::movement(EntryKind::Reversal, Quantity(1))).is_err(),
        "reversals are planned by plan_reversal"
    );
}

// --- property tests: the ledger's invariants under random use --------------------

#[derive(Debug, Clone)]
enum Op {
    Receive(i64),
    Administer(i64),
    Waste(i64, bool),
    Dispose(i64),
    Lose(i64, bool),
    Adjust(i64),
    Count(i64),
    Reverse(usize),
    Correct(usize, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..20_000).prop_map(Op::Receive),
        4 => (1i64..3_000).prop_map(Op::Administer),
        2 => (1i64..1_000, any::<bool>()).prop_map(|(q, l)| Op::Waste(q, l)),
        1 => (1i64..5_000).prop_map(Op::Dispose),
        1 => (1i64..2_000, any::<bool>()).prop_map(|(q, l)| Op::Lose(q, l)),
        1 => (-2_000i64..2_000).prop_filter("non-zero", |q| *q != 0).prop_map(Op::Adjust),
        2 => (-1_000i64..1_000).prop_map(Op::Count),
        1 => any::<usize>().prop_map(Op::Reverse),
        2 => (any::<usize>(), 1i64..5_000).prop_map(|(i, q)| Op::Correct(i, q)),
    ]
}

fn last_of(book: &LotBook, kind: EntryKind) -> Option<EntryId> {
    book.entries().iter().rev().find(|e| e.kind == kind && !book.is_reversed(e.id)).map(|e| e.id)
}

impl Sim {
    /// Runs one random operation; returns whether it was accepted.
    fn run(&mut self, op: &Op) -> bool {
        let book = &self.book;
        let res = match *op {
            Op::Receive(q) => self.propose(Proposal::movement(EntryKind::Receipt, Quantity(q))),
            Op::Administer(q) => self.propose(Proposal::movement(EntryKind::Administration, Quantity(-q))),
            Op::Waste(q, link) => {
                let a = if link { last_of(book, EntryKind::Administration) } else { None };
                self.propose(Proposal { administration: a, ..Proposal::movement(EntryKind::Waste, Quantity(-q)) })
            }
            Op::Dispose(q) => self.propose(Proposal::movement(EntryKind::Disposal, Quantity(-q))),
            Op::Lose(q, link) => {
                let c = if link { last_of(book, EntryKind::Count) } else { None };
                self.propose(Proposal { resolves_count: c, ..Proposal::movement(EntryKind::Loss, Quantity(-q)) })
            }
            Op::Adjust(q) => self.propose(Proposal::movement(EntryKind::Adjustment, Quantity(q))),
            Op::Count(off) => {
                let physical = (self.book.on_hand().0 + off).max(0);
                self.count(physical)
            }
            Op::Reverse(i) if !book.entries().is_empty() => {
                let target = book.entries()[i % book.entries().len()].id;
                match self.book.plan_reversal(target) {
                    Ok(p) => Ok(self.apply(vec![p])),
                    Err(e) => Err(e),
                }
            }
            Op::Correct(i, q) if !book.entries().is_empty() => {
                let t = &book.entries()[i % book.entries().len()];
                let change = match t.kind {
                    EntryKind::Receipt => Quantity(q),
                    EntryKind::Adjustment => Quantity(q - 2_500),
                    EntryKind::Count | EntryKind::Reversal => Quantity::ZERO,
                    _ => Quantity(-q),
                };
                let count = (t.kind == EntryKind::Count).then(|| CountResult {
                    physical: Quantity(q),
                    expected: self.book.on_hand(),
                    discrepancy: Quantity(q) - self.book.on_hand(),
                });
                let kind = t.kind;
                let id = t.id;
                self.propose(Proposal { corrects: Some(id), count, ..Proposal::movement(kind, change) })
            }
            Op::Reverse(_) | Op::Correct(..) => return false,
        };
        res.is_ok()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// CS-3: random sequences of receipts, doses, waste, disposals, losses, adjustments,
    /// counts, voids and corrections keep the ledger's invariants.
    #[test]
    fn ledger_invariants_hold_under_random_use(ops in prop::collection::vec(op(), 1..80)) {
        let mut s = Sim::new();
        for op in &ops {
            let before = s.book.clone();
            let accepted = s.run(op);
            let book = &s.book;
            if !accepted {
                // A refused entry changes nothing.
                prop_assert_eq!(book, &before);
                continue;
            }
            // Corrections never erase history: every earlier entry is still there, unchanged.
            prop_assert_eq!(&book.entries()[..before.entries().len()], before.entries());
            // On hand never goes negative, after any entry.
            let mut running = Quantity::ZERO;
            for e in book.entries() {
                running += e.change;
                prop_assert!(running.0 >= 0, "on hand went negative at entry {}", e.id);
            }
            // on_hand == Σin − Σout, and equals the totals' identity.
            let t = book.totals();
            prop_assert_eq!(book.on_hand(), running);
            prop_assert_eq!(t.on_hand, t.received - t.administered - t.wasted - t.disposed - t.lost + t.adjusted);
            let ins: Quantity = book.entries().iter().filter(|e| e.change.0 > 0).map(|e| e.change).sum();
            let outs: Quantity = book.entries().iter().filter(|e| e.change.0 < 0).map(|e| -e.change).sum();
            prop_assert_eq!(t.on_hand, ins - outs);
            // Every administration reconciles: the administered total is exactly the
            // doses that still stand (not reversed).
            let standing: Quantity = book.entries().iter()
                .filter(|e| e.kind == EntryKind::Administration && !book.is_reversed(e.id))
                .map(|e| -e.change).sum();
            prop_assert_eq!(t.administered, standing);
            // Every reversal cancels exactly one earlier entry of the book, once.
            let mut seen = HashSet::new();
            for (i, e) in book.entries().iter().enumerate() {
                if let Some(r) = e.reverses {
                    prop_assert!(seen.insert(r), "entry {} reversed twice", r);
                    let pos = book.entries().iter().position(|x| x.id == r).expect("reverses an entry of the lot");
                    prop_assert!(pos < i);
                    prop_assert_eq!(book.entries()[pos].change, -e.change);
                    prop_assert_ne!(book.entries()[pos].kind, EntryKind::Reversal);
                }
                if let Some(c) = e.corrects {
                    prop_assert!(book.is_reversed(c), "a corrected entry is reversed");
                }
            }
            // The reconciliation agrees with the book and flags exactly an unexplained last count.
            let r = book.reconcile(None, NOW.date(), &utc);
            prop_assert_eq!(r.totals, t);
            prop_assert_eq!(r.balanced, r.flags.is_empty());
            if let Some(c) = r.last_count {
                prop_assert_eq!(c.discrepancy, c.physical - c.expected);
                prop_assert_eq!(r.expected_on_shelf, t.on_hand + c.unexplained);
            }
        }
    }

    /// A count's discrepancy is exactly physical − book, and it is flagged unless zero.
    #[test]
    fn a_count_is_flagged_exactly_when_it_differs(received in 1i64..50_000, used in 0i64..50_000, off in -5_000i64..5_000) {
        let mut s = Sim::new();
        s.propose(Proposal::movement(EntryKind::Receipt, Quantity(received))).unwrap();
        let used = used.min(received);
        if used > 0 {
            s.propose(Proposal::movement(EntryKind::Administration, Quantity(-used))).unwrap();
        }
        let physical = (received - used + off).max(0);
        s.count(physical).unwrap();
        let r = s.book.reconcile(None, NOW.date(), &utc);
        let c = r.last_count.unwrap();
        prop_assert_eq!(c.discrepancy, Quantity(physical - (received - used)));
        prop_assert_eq!(r.balanced, c.discrepancy.is_zero());
        prop_assert_eq!(r.expected_on_shelf, Quantity(physical));
    }

    /// Amounts round-trip: whatever converts, converts exactly (no float drift in the book).
    #[test]
    fn entered_amounts_convert_exactly(thousandths in 0i64..10_000_000) {
        let ml = thousandths as f64 / 1000.0;
        prop_assert_eq!(vial().quantity_of("a", Amount::Ml(ml)).unwrap(), Quantity(thousandths));
        prop_assert_eq!(spray().quantity_of("a", Amount::Mg(ml)).unwrap(), Quantity(thousandths));
    }
}
