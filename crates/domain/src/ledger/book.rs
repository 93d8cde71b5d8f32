//! The book: the perpetual inventory of one lot, and its reconciliation against counts.

use super::*;

// ---------------------------------------------------------------------------
// The book: perpetual inventory of one lot
// ---------------------------------------------------------------------------

/// What the arithmetic needs to know about a stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct BookEntry {
    pub id: EntryId,
    pub kind: EntryKind,
    /// Signed change to on-hand (0 for counts).
    pub change: Quantity,
    pub occurred_at: OffsetDateTime,
    pub reverses: Option<EntryId>,
    pub corrects: Option<EntryId>,
    /// For waste: the administration it is the remainder of.
    pub administration: Option<EntryId>,
    /// For losses and adjustments: the count whose discrepancy they explain.
    pub resolves_count: Option<EntryId>,
    pub count: Option<CountResult>,
}

/// A request to append one entry (the store supplies ids and times).
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub kind: EntryKind,
    /// Signed change (0 for a count).
    pub change: Quantity,
    pub corrects: Option<EntryId>,
    pub administration: Option<EntryId>,
    pub resolves_count: Option<EntryId>,
    /// For counts: the outcome, computed against [`LotBook::on_hand`].
    pub count: Option<CountResult>,
}

impl Proposal {
    pub fn movement(kind: EntryKind, change: Quantity) -> Self {
        Self { kind, change, corrects: None, administration: None, resolves_count: None, count: None }
    }
}

/// One entry to write, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub kind: EntryKind,
    pub change: Quantity,
    pub reverses: Option<EntryId>,
    pub corrects: Option<EntryId>,
    pub administration: Option<EntryId>,
    pub resolves_count: Option<EntryId>,
    pub count: Option<CountResult>,
    /// On-hand once this entry is written.
    pub on_hand_after: Quantity,
}

/// Totals by kind, each net of reversals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct InventoryTotals {
    pub received: Quantity,
    pub administered: Quantity,
    pub wasted: Quantity,
    pub disposed: Quantity,
    pub lost: Quantity,
    /// Net of increases and decreases.
    pub adjusted: Quantity,
    /// received − administered − wasted − disposed − lost + adjusted.
    pub on_hand: Quantity,
}

/// One count checked against the book, and how much of its discrepancy later losses or
/// adjustments linked to it explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CountCheck {
    pub entry_id: EntryId,
    #[serde(with = "time::serde::rfc3339")]
    pub counted_at: OffsetDateTime,
    pub physical: Quantity,
    pub expected: Quantity,
    pub discrepancy: Quantity,
    /// The part of the discrepancy explained by linked losses and adjustments.
    pub explained: Quantity,
    pub unexplained: Quantity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// The last count did not match the book and the difference is not explained.
    Discrepancy,
    /// Stock past its expiry date is still on hand (destroy it with a disposal).
    ExpiredStock,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Flag {
    pub kind: FlagKind,
    pub message: String,
}

/// The book of one lot against its counts.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
// Named apart in the OpenAPI document: another `Reconciliation` would take its place.
#[schema(as = LedgerReconciliation)]
pub struct Reconciliation {
    pub totals: InventoryTotals,
    /// The most recent count still standing (not reversed).
    pub last_count: Option<CountCheck>,
    /// What should be on the shelf now: the book, plus whatever the last count found
    /// that is still unexplained.
    pub expected_on_shelf: Quantity,
    /// Every standing count that did not match the book, oldest first.
    pub discrepancies: Vec<CountCheck>,
    pub flags: Vec<Flag>,
    /// True when the last count (if any) matches the book, or its difference is explained.
    pub balanced: bool,
}

/// The entries of one lot, in the order they were written.
#[derive(Debug, Clone, PartialEq)]
pub struct LotBook {
    unit: CountingUnit,
    entries: Vec<BookEntry>,
    index: HashMap<EntryId, usize>,
    reversed: HashSet<EntryId>,
    on_hand: Quantity,
}

impl LotBook {
    pub fn new(unit: CountingUnit, entries: Vec<BookEntry>) -> Self {
        let mut b = Self {
            unit,
            entries: Vec::with_capacity(entries.len()),
            index: HashMap::new(),
            reversed: HashSet::new(),
            on_hand: Quantity::ZERO,
        };
        for e in entries {
            b.push(e);
        }
        b
    }

    fn push(&mut self, e: BookEntry) {
        if let Some(r) = e.reverses {
            self.reversed.insert(r);
        }
        self.on_hand += e.change;
        self.index.insert(e.id, self.entries.len());
        self.entries.push(e);
    }

    pub fn unit(&self) -> CountingUnit {
        self.unit
    }
    pub fn on_hand(&self) -> Quantity {
        self.on_hand
    }
    pub fn entries(&self) -> &[BookEntry] {
        &self.entries
    }
    pub fn get(&self, id: EntryId) -> Option<&BookEntry> {
        self.index.get(&id).map(|&i| &self.entries[i])
    }
    pub fn is_reversed(&self, id: EntryId) -> bool {
        self.reversed.contains(&id)
    }

    /// The kind an entry counts as: its own, or for a reversal the kind it reverses.
    fn effective_kind(&self, e: &BookEntry) -> EntryKind {
        match (e.kind, e.reverses.and_then(|r| self.get(r))) {
            (EntryKind::Reversal, Some(t)) => t.kind,
            (k, _) => k,
        }
    }

    fn standing(&self, field: &str, id: EntryId, want: EntryKind, what: &str) -> Result<&BookEntry, DomainError> {
        let e =
            self.get(id).ok_or_else(|| DomainError::field(field, format!("entry {id} is not an entry of this lot")))?;
        if e.kind != want {
            return Err(DomainError::field(field, format!("entry {id} is a {}, not {what}", e.kind.as_str())));
        }
        if self.is_reversed(id) {
            return Err(DomainError::field(field, format!("entry {id} has been reversed")));
        }
        Ok(e)
    }

    /// Plans a reversal of `target`: checks it may be reversed and returns the entry.
    pub fn plan_reversal(&self, target: EntryId) -> Result<Planned, DomainError> {
        let t = self
            .get(target)
            .ok_or_else(|| DomainError::field("entry_id", format!("entry {target} is not an entry of this lot")))?;
        if t.kind == EntryKind::Reversal {
            return Err(DomainError::Conflict(format!(
                "entry {target} is itself a reversal; record the entry again instead of reversing a reversal"
            )));
        }
        if self.is_reversed(target) {
            return Err(DomainError::Conflict(format!("entry {target} has already been reversed")));
        }
        let p = Planned {
            kind: EntryKind::Reversal,
            change: -t.change,
            reverses: Some(target),
            corrects: None,
            administration: None,
            resolves_count: None,
            count: None,
            on_hand_after: self.on_hand - t.change,
        };
        self.check_never_negative(std::slice::from_ref(&p))?;
        Ok(p)
    }

    /// Plans the entries for a proposal: the entry itself, or for a correction a reversal
    /// of the original plus the replacement (larger change first, so on-hand never dips
    /// below zero between the two). Refuses anything that would leave less than nothing.
    pub fn plan(&self, p: &Proposal) -> Result<Vec<Planned>, DomainError> {
        let sign_ok = match p.kind {
            EntryKind::Receipt => p.change.0 > 0,
            EntryKind::Administration | EntryKind::Waste | EntryKind::Disposal | EntryKind::Loss => p.change.0 < 0,
            EntryKind::Count => p.change.0 == 0 && p.count.is_some(),
            EntryKind::Adjustment => p.change.0 != 0,
            EntryKind::Reversal => false,
        };
        if !sign_ok {
            return Err(DomainError::field(
                "amount",
                format!("a {} entry cannot change stock by {}", p.kind.as_str(), p.change.show(self.unit)),
            ));
        }
        if let Some(a) = p.administration {
            if p.kind != EntryKind::Waste {
                return Err(DomainError::field("administration_id", "only waste links to an administration"));
            }
            self.standing("administration_id", a, EntryKind::Administration, "an administration")?;
        }
        if let Some(c) = p.resolves_count {
            if !matches!(p.kind, EntryKind::Loss | EntryKind::Adjustment) {
                return Err(DomainError::field("count_id", "only losses and adjustments explain a count"));
            }
            self.standing("count_id", c, EntryKind::Count, "a count")?;
        }
        let mut out = Vec::with_capacity(2);
        let entry = |on_hand_after| Planned {
            kind: p.kind,
            change: p.change,
            reverses: None,
            corrects: p.corrects,
            administration: p.administration,
            resolves_count: p.resolves_count,
            count: p.count,
            on_hand_after,
        };
        match p.corrects {
            None => out.push(entry(self.on_hand + p.change)),
            Some(orig) => {
                let what = format!("a {}", p.kind.as_str());
                let o = self.standing("corrects.entry_id", orig, p.kind, &what)?;
                if p.resolves_count == Some(orig) || p.administration == Some(orig) {
                    return Err(DomainError::field(
                        "corrects.entry_id",
                        "a replacement cannot link to the entry it replaces",
                    ));
                }
                let reversal_change = -o.change;
                let mut rev = Planned {
                    kind: EntryKind::Reversal,
                    change: reversal_change,
                    reverses: Some(orig),
                    corrects: None,
                    administration: None,
                    resolves_count: None,
                    count: None,
                    on_hand_after: Quantity::ZERO,
                };
                let mut new = entry(Quantity::ZERO);
                if reversal_change >= p.change {
                    rev.on_hand_after = self.on_hand + reversal_change;
                    new.on_hand_after = rev.on_hand_after + p.change;
                    out.push(rev);
                    out.push(new);
                } else {
                    new.on_hand_after = self.on_hand + p.change;
                    rev.on_hand_after = new.on_hand_after + reversal_change;
                    out.push(new);
                    out.push(rev);
                }
            }
        }
        self.check_never_negative(&out)?;
        Ok(out)
    }

    fn check_never_negative(&self, planned: &[Planned]) -> Result<(), DomainError> {
        if let Some(bad) = planned.iter().find(|p| p.on_hand_after.0 < 0) {
            return Err(DomainError::Conflict(format!(
                "refused: this would leave {} of this lot on hand, and stock cannot go below zero (the ledger shows {}). Nothing was recorded; check the amount and the lot, or record the missing receipt first",
                bad.on_hand_after.show(self.unit),
                self.on_hand.show(self.unit)
            )));
        }
        Ok(())
    }

    /// Adds planned entries once the store has written them.
    pub fn commit(&mut self, planned: Planned, id: EntryId, occurred_at: OffsetDateTime) {
        self.push(BookEntry {
            id,
            kind: planned.kind,
            change: planned.change,
            occurred_at,
            reverses: planned.reverses,
            corrects: planned.corrects,
            administration: planned.administration,
            resolves_count: planned.resolves_count,
            count: planned.count,
        });
    }

    pub fn totals(&self) -> InventoryTotals {
        let mut t = InventoryTotals::default();
        for e in &self.entries {
            match self.effective_kind(e) {
                EntryKind::Receipt => t.received += e.change,
                EntryKind::Administration => t.administered -= e.change,
                EntryKind::Waste => t.wasted -= e.change,
                EntryKind::Disposal => t.disposed -= e.change,
                EntryKind::Loss => t.lost -= e.change,
                EntryKind::Adjustment => t.adjusted += e.change,
                EntryKind::Count | EntryKind::Reversal => {}
            }
        }
        t.on_hand = self.on_hand;
        t
    }

    /// The count a loss or adjustment (or a reversal of one) explains.
    fn resolves(&self, e: &BookEntry) -> Option<EntryId> {
        e.resolves_count.or_else(|| e.reverses.and_then(|r| self.get(r)).and_then(|t| t.resolves_count))
    }

    fn check_count(&self, e: &BookEntry) -> Option<CountCheck> {
        let c = e.count?;
        let explained: Quantity =
            self.entries.iter().filter(|x| self.resolves(x) == Some(e.id)).map(|x| x.change).sum();
        Some(CountCheck {
            entry_id: e.id,
            counted_at: e.occurred_at,
            physical: c.physical,
            expected: c.expected,
            discrepancy: c.discrepancy,
            explained,
            unexplained: c.discrepancy - explained,
        })
    }

    /// The book against its counts. `expires_on` and `today` (the site's date) flag expired
    /// stock; `local_date` dates counts in messages by the site's calendar.
    pub fn reconcile(
        &self,
        expires_on: Option<Date>,
        today: Date,
        local_date: &dyn Fn(OffsetDateTime) -> Date,
    ) -> Reconciliation {
        let totals = self.totals();
        let standing_counts: Vec<CountCheck> = self
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Count && !self.is_reversed(e.id))
            .filter_map(|e| self.check_count(e))
            .collect();
        let last_count = standing_counts.last().copied();
        let discrepancies: Vec<CountCheck> =
            standing_counts.iter().filter(|c| !c.discrepancy.is_zero()).copied().collect();
        let mut flags = Vec::new();
        if let Some(c) = last_count
            && !c.unexplained.is_zero()
        {
            flags.push(Flag {
                kind: FlagKind::Discrepancy,
                message: format!(
                    "the count on {} found {} against {} in the ledger ({} {}); {} is unexplained: record a loss, an adjustment or a recount",
                    local_date(c.counted_at),
                    c.physical.show(self.unit),
                    c.expected.show(self.unit),
                    c.discrepancy.show(self.unit),
                    if c.discrepancy.0 < 0 { "missing" } else { "over" },
                    c.unexplained.show(self.unit),
                ),
            });
        }
        if let Some(exp) = expires_on
            && exp <= today
            && totals.on_hand.0 > 0
        {
            flags.push(Flag {
                kind: FlagKind::ExpiredStock,
                message: format!(
                    "expired on {exp} with {} still on hand: destroy it with a witnessed disposal",
                    totals.on_hand.show(self.unit)
                ),
            });
        }
        Reconciliation {
            totals,
            last_count,
            expected_on_shelf: totals.on_hand + last_count.map_or(Quantity::ZERO, |c| c.unexplained),
            discrepancies,
            balanced: last_count.is_none_or(|c| c.unexplained.is_zero()),
            flags,
        }
    }
}
