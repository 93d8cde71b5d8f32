//! What the store returns: lots, entries, alerts and reports as the API shows them.

use super::*;

// ---------------------------------------------------------------------------
// What the store returns
// ---------------------------------------------------------------------------

/// A stock lot with its book on-hand.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Lot {
    pub id: LotId,
    pub site_id: SiteId,
    pub product: Product,
    pub unit: CountingUnit,
    pub form: String,
    pub strength: String,
    pub container: String,
    pub lot_number: String,
    pub ndc: String,
    pub expires_on: Date,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The receipt entry that created the lot.
    pub receipt_entry_id: EntryId,
    pub on_hand: Quantity,
    pub on_hand_mg: Milligrams,
    pub on_hand_ml: Option<Millilitres>,
    pub on_hand_devices: Option<f64>,
}

/// A ledger entry as stored: append-only, hashed (IN-1) and chained.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub id: EntryId,
    pub lot_id: LotId,
    pub site_id: SiteId,
    pub kind: EntryKind,
    /// Signed change to on-hand, in the lot's unit.
    pub change: Quantity,
    pub unit: CountingUnit,
    /// The lot's on-hand once this entry was written.
    pub on_hand_after: Quantity,
    /// The amount of drug moved (absolute), in mg.
    pub amount_mg: Milligrams,
    /// The volume moved (absolute), for vials.
    pub amount_ml: Option<Millilitres>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub recorded_by: Signatory,
    pub witnesses: Vec<Signatory>,
    pub session_id: Option<SessionId>,
    pub patient_id: Option<PatientId>,
    pub administration_id: Option<EntryId>,
    pub count_id: Option<EntryId>,
    /// For a replacement: the entry it corrects.
    pub corrects_id: Option<EntryId>,
    /// For a reversal: the entry it cancels.
    pub reverses_id: Option<EntryId>,
    /// The reversal that cancelled this entry, if any.
    pub reversed_by: Option<EntryId>,
    pub reason: Option<String>,
    pub count: Option<CountResult>,
    pub detail: EntryDetail,
    /// SHA-256 of the entry's canonical content.
    pub content_sha256: String,
    pub prev_hash: String,
    /// SHA-256 over the previous entry's hash and this entry's content hash.
    pub row_hash: String,
}

/// A count that did not match the book.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LedgerAlert {
    pub id: LedgerAlertId,
    pub site_id: SiteId,
    pub lot_id: LotId,
    /// The count that raised it.
    pub entry_id: EntryId,
    pub message: String,
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
    /// True while its count is the lot's last and its discrepancy is unexplained.
    pub open: bool,
}

/// What recording an entry wrote: the entry, the reversal when it corrected another,
/// the lot as it now stands, and any alert a count raised.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RecordedEntry {
    pub entry: LedgerEntry,
    /// The reversal of the corrected entry, when this was a correction.
    pub reversal: Option<LedgerEntry>,
    pub lot: Lot,
    pub alerts: Vec<LedgerAlert>,
}

/// One lot in the reconciliation report.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LotReconciliation {
    pub lot: Lot,
    #[serde(flatten)]
    pub reconciliation: Reconciliation,
}

/// On-hand against expected for every lot (CS-3): the book, the last count, and every
/// discrepancy, flagged until explained.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReconciliationReport {
    pub site_id: Option<SiteId>,
    /// The ledger as it stood at this time (entries recorded up to it).
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
    pub lots: Vec<LotReconciliation>,
    /// True when no lot is flagged with a discrepancy.
    pub balanced: bool,
    /// Lots with an unexplained discrepancy.
    pub discrepancy_lots: Vec<LotId>,
}

/// A theft or loss as a DEA Form 106 worksheet: the fields the form asks for, and what
/// is still to be done.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LossWorksheet {
    pub entry_id: EntryId,
    pub site_id: SiteId,
    pub loss_type: LossType,
    pub loss_type_label: String,
    #[serde(with = "time::serde::rfc3339")]
    pub discovered_at: OffsetDateTime,
    pub substance: String,
    pub dea_drug_code: String,
    pub strength: String,
    pub form: String,
    pub ndc: String,
    pub lot_number: String,
    pub quantity_lost: Quantity,
    pub unit: CountingUnit,
    pub quantity_lost_mg: Milligrams,
    pub quantity_lost_ml: Option<Millilitres>,
    pub quantity_lost_devices: Option<f64>,
    pub circumstances: String,
    pub police_report: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub dea_notified_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub form_106_filed_at: Option<OffsetDateTime>,
    /// The count that revealed it.
    pub count_id: Option<EntryId>,
    pub investigation_notes: Option<String>,
    pub recorded_by: Signatory,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// The entry that reversed this report (when it was corrected or voided).
    pub reversed_by: Option<EntryId>,
    /// What the registrant still has to do.
    pub outstanding: Vec<String>,
}

/// The first problem found when re-checking the ledger's hashes and arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LedgerBreak {
    pub entry_id: EntryId,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LedgerVerification {
    /// Entries that verified before the first problem (all of them when intact).
    pub entries_checked: u64,
    pub intact: bool,
    pub first_break: Option<LedgerBreak>,
}
