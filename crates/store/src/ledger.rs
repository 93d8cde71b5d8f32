//! The controlled-substance ledger (security-reference §2.4, §3): stock lots, their
//! append-only entries, discrepancy alerts, reconciliation and verification.
//!
//! Every write re-checks the recorder's re-authentication (AC-11) and each witness's,
//! lets [`keta_domain::ledger`] validate the entry and plan it against the lot's book
//! (refusing anything that would leave less than nothing on hand), then appends the
//! entries with a SHA-256 of their canonical content chained to the previous entry
//! (IN-1), and the audit entry, in one transaction. Nothing is ever updated or deleted;
//! the tables refuse it with triggers too.
//!
//! On PostgreSQL ledger writes take one advisory lock, so two nurses drawing from the
//! same lot at once cannot both pass the on-hand check, and the hash chain has one tail.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::ledger::{
    self as dl, BookEntry, Correction, CountResult, CountingUnit, EntryDetail, EntryId, EntryKind, LedgerAlert,
    LedgerAlertId, LedgerBreak, LedgerEntry, LedgerVerification, LossWorksheet, Lot, LotBook, LotId, LotReconciliation,
    NewAdjustment, NewAdministration, NewCount, NewDisposal, NewLoss, NewReceipt, NewWaste, Planned, Product, Proposal,
    Quantity, ReconciliationReport, RecordedEntry, Reversal, Signatory, Substance,
};
use keta_domain::session::SessionState;
use keta_domain::units::{Milligrams, Millilitres};

use crate::audit::{self, Action, Entry};
use crate::conn::{Backend, Conn, Row, Value};
use crate::error::{Result, StoreError};
use crate::time_codec::{date_text, from_json, from_ms, json, ms, parse_date};
use crate::{Actor, Store, params};

// ---------------------------------------------------------------------------
// Re-authentication window (a security setting, `StoreSettings::reauthentication_window`)
// ---------------------------------------------------------------------------

/// Refuses a `reauthentication_window` outside 1 to 15 minutes.
pub fn check_reauthentication_window(window: Duration) -> Result<()> {
    if window < dl::MIN_REAUTHENTICATION_WINDOW || window > dl::MAX_REAUTHENTICATION_WINDOW {
        return Err(DomainError::field(
            "reauthentication_window",
            format!(
                "set between {} and {} minutes",
                dl::MIN_REAUTHENTICATION_WINDOW.whole_minutes(),
                dl::MAX_REAUTHENTICATION_WINDOW.whole_minutes()
            ),
        )
        .into());
    }
    Ok(())
}

/// Refuses (403) unless `at` is within `window` before `now`.
pub fn require_reauthentication(
    what: &str,
    at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    window: Duration,
) -> Result<()> {
    dl::check_reauthentication(what, at, now, window).map_err(StoreError::Forbidden)
}

/// SHA-256 as lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A second person, verified by their own user name and password (by the web layer),
/// with the time they did so.
#[derive(Debug, Clone)]
pub struct Witness {
    pub actor: Actor,
    pub reauthenticated_at: OffsetDateTime,
}

fn signatory(actor: &Actor, reauthenticated_at: OffsetDateTime) -> Signatory {
    Signatory { user_id: actor.user_id, name: actor.name.clone(), reauthenticated_at }
}

// ---------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------

struct LotRow {
    id: LotId,
    site_id: SiteId,
    product: Product,
    lot_number: String,
    ndc: String,
    expires_on: time::Date,
    received_at: OffsetDateTime,
}

const LOT_COLS: &str = "id, site_id, substance, presentation, lot_number, ndc, expires_on, received_at";

fn lot_from(r: &Row) -> Result<LotRow> {
    Ok(LotRow {
        id: LotId(r.i64("id")?),
        site_id: SiteId(r.i64("site_id")?),
        product: Product {
            substance: Substance::parse(&r.text("substance")?)
                .ok_or_else(|| StoreError::Corrupt("lot substance".into()))?,
            presentation: from_json(&r.text("presentation")?)?,
        },
        lot_number: r.text("lot_number")?,
        ndc: r.text("ndc")?,
        expires_on: parse_date(&r.text("expires_on")?)?,
        received_at: from_ms(r.i64("received_at")?)?,
    })
}

/// A lot in the actor's scope; others are reported as not found.
fn load_lot(c: &mut dyn Conn, actor: &Actor, id: LotId) -> Result<LotRow> {
    let r = c
        .query_opt(&format!("SELECT {LOT_COLS} FROM cs_lots WHERE id = $1"), params![id.0])?
        .ok_or_else(|| StoreError::NotFound(format!("lot {id}")))?;
    let lot = lot_from(&r)?;
    if !actor.scope.allows(lot.site_id) {
        return Err(StoreError::NotFound(format!("lot {id}")));
    }
    Ok(lot)
}

fn first_receipt(c: &mut dyn Conn, lot: LotId) -> Result<EntryId> {
    c.query_opt("SELECT min(id) AS first_id FROM cs_ledger WHERE lot_id = $1 AND kind = 'receipt'", params![lot.0])?
        .and_then(|r| r.opt_i64("first_id").transpose())
        .transpose()?
        .map(EntryId)
        .ok_or_else(|| StoreError::Corrupt(format!("lot {lot} has no receipt")))
}

fn lot_view(lot: &LotRow, on_hand: Quantity, receipt: EntryId) -> Lot {
    let p = &lot.product;
    Lot {
        id: lot.id,
        site_id: lot.site_id,
        product: *p,
        unit: p.unit(),
        form: p.form_label().into(),
        strength: p.strength_label(),
        container: p.container_label(),
        lot_number: lot.lot_number.clone(),
        ndc: lot.ndc.clone(),
        expires_on: lot.expires_on,
        received_at: lot.received_at,
        receipt_entry_id: receipt,
        on_hand,
        on_hand_mg: p.mg_in(on_hand),
        on_hand_ml: p.ml_in(on_hand),
        on_hand_devices: p.devices_in(on_hand),
    }
}

fn on_hand(c: &mut dyn Conn, lot: LotId) -> Result<Quantity> {
    Ok(Quantity(
        c.query_opt("SELECT on_hand_after FROM cs_ledger WHERE lot_id = $1 ORDER BY id DESC LIMIT 1", params![lot.0])?
            .map(|r| r.i64("on_hand_after"))
            .transpose()?
            .unwrap_or(0),
    ))
}

fn lot_summary(c: &mut dyn Conn, lot: &LotRow) -> Result<Lot> {
    let q = on_hand(c, lot.id)?;
    let receipt = first_receipt(c, lot.id)?;
    Ok(lot_view(lot, q, receipt))
}

const BOOK_COLS: &str = "id, kind, change_thousandths, occurred_at, reverses_id, corrects_id, administration_id, count_id, count_physical, count_expected, lot_id";

fn book_entry_from(r: &Row) -> Result<BookEntry> {
    let kind = EntryKind::parse(&r.text("kind")?).ok_or_else(|| StoreError::Corrupt("ledger kind".into()))?;
    let count = match (r.opt_i64("count_physical")?, r.opt_i64("count_expected")?) {
        (Some(p), Some(e)) => {
            Some(CountResult { physical: Quantity(p), expected: Quantity(e), discrepancy: Quantity(p - e) })
        }
        _ => None,
    };
    let linked = r.opt_i64("count_id")?.map(EntryId);
    Ok(BookEntry {
        id: EntryId(r.i64("id")?),
        kind,
        change: Quantity(r.i64("change_thousandths")?),
        occurred_at: from_ms(r.i64("occurred_at")?)?,
        reverses: r.opt_i64("reverses_id")?.map(EntryId),
        corrects: r.opt_i64("corrects_id")?.map(EntryId),
        administration: r.opt_i64("administration_id")?.map(EntryId),
        resolves_count: if matches!(kind, EntryKind::Loss | EntryKind::Adjustment) { linked } else { None },
        count,
    })
}

fn load_book(c: &mut dyn Conn, lot: &LotRow) -> Result<LotBook> {
    let entries = c
        .query(&format!("SELECT {BOOK_COLS} FROM cs_ledger WHERE lot_id = $1 ORDER BY id"), params![lot.id.0])?
        .iter()
        .map(book_entry_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(LotBook::new(lot.product.unit(), entries))
}

/// The columns covered by an entry's content hash, in hashing order.
const HASHED_COLS: &str = "lot_id, site_id, kind, change_thousandths, on_hand_after, amount_mg, amount_ml, occurred_at, recorded_at, \
     recorded_by, recorded_by_user_id, recorded_by_reauthenticated_at, witness_name, witness_user_id, witness_reauthenticated_at, \
     second_witness_name, second_witness_user_id, second_witness_reauthenticated_at, session_id, patient_id, administration_id, count_id, \
     corrects_id, reverses_id, reason, count_physical, count_expected, detail";
const HASHED_N: usize = 28;

/// The canonical content of an entry: its hashed columns, length-prefixed.
fn canonical(values: &[Value]) -> Vec<u8> {
    let mut out = b"keta/cs-ledger-entry/v1".to_vec();
    for v in values {
        let s = match v {
            Value::Null => "\u{0}".to_string(),
            Value::Int(i) => i.to_string(),
            Value::Real(f) => format!("{f:?}"),
            Value::Text(t) => t.clone(),
            Value::Bool(b) => b.to_string(),
        };
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

fn row_hash(prev: &str, content: &str) -> String {
    sha256_hex(format!("{prev}:{content}").as_bytes())
}

fn chain_tail(c: &mut dyn Conn) -> Result<String> {
    Ok(c.query_opt("SELECT row_hash FROM cs_ledger ORDER BY id DESC LIMIT 1", &[])?
        .map(|r| r.text("row_hash"))
        .transpose()?
        .unwrap_or_else(|| audit::GENESIS.to_string()))
}

const ENTRY_COLS: &str = "e.id, e.lot_id, e.site_id, e.kind, e.change_thousandths, e.on_hand_after, e.amount_mg, e.amount_ml, e.occurred_at, \
     e.recorded_at, e.recorded_by, e.recorded_by_user_id, e.recorded_by_reauthenticated_at, e.witness_name, e.witness_user_id, \
     e.witness_reauthenticated_at, e.second_witness_name, e.second_witness_user_id, e.second_witness_reauthenticated_at, e.session_id, \
     e.patient_id, e.administration_id, e.count_id, e.corrects_id, e.reverses_id, e.reason, e.count_physical, e.count_expected, e.detail, \
     e.content_sha256, e.prev_hash, e.row_hash, l.unit, (SELECT r.id FROM cs_ledger r WHERE r.reverses_id = e.id) AS reversed_by";
const ENTRY_FROM: &str = "cs_ledger e JOIN cs_lots l ON l.id = e.lot_id";

fn entry_from(r: &Row) -> Result<LedgerEntry> {
    let bad = |f: &str| StoreError::Corrupt(format!("ledger entry {f}"));
    // `prefix` is the witness's column prefix: `witness` or `second_witness`.
    let witness = |prefix: &str| -> Result<Option<Signatory>> {
        Ok(match r.opt_text(format!("{prefix}_name").as_str())? {
            None => None,
            Some(n) => Some(Signatory {
                user_id: r.opt_i64(format!("{prefix}_user_id").as_str())?,
                name: n,
                reauthenticated_at: from_ms(
                    r.opt_i64(format!("{prefix}_reauthenticated_at").as_str())?.ok_or_else(|| bad("witness time"))?,
                )?,
            }),
        })
    };
    let kind = EntryKind::parse(&r.text("kind")?).ok_or_else(|| bad("kind"))?;
    let count = match (r.opt_i64("count_physical")?, r.opt_i64("count_expected")?) {
        (Some(p), Some(e)) => {
            Some(CountResult { physical: Quantity(p), expected: Quantity(e), discrepancy: Quantity(p - e) })
        }
        _ => None,
    };
    Ok(LedgerEntry {
        id: EntryId(r.i64("id")?),
        lot_id: LotId(r.i64("lot_id")?),
        site_id: SiteId(r.i64("site_id")?),
        kind,
        change: Quantity(r.i64("change_thousandths")?),
        on_hand_after: Quantity(r.i64("on_hand_after")?),
        amount_mg: Milligrams(r.f64("amount_mg")?),
        amount_ml: r.opt_f64("amount_ml")?.map(Millilitres),
        occurred_at: from_ms(r.i64("occurred_at")?)?,
        recorded_at: from_ms(r.i64("recorded_at")?)?,
        recorded_by: Signatory {
            name: r.text("recorded_by")?,
            user_id: r.opt_i64("recorded_by_user_id")?,
            reauthenticated_at: from_ms(r.i64("recorded_by_reauthenticated_at")?)?,
        },
        witnesses: [witness("witness")?, witness("second_witness")?].into_iter().flatten().collect(),
        session_id: r.opt_i64("session_id")?.map(SessionId),
        patient_id: r.opt_i64("patient_id")?.map(PatientId),
        administration_id: r.opt_i64("administration_id")?.map(EntryId),
        count_id: r.opt_i64("count_id")?.map(EntryId),
        corrects_id: r.opt_i64("corrects_id")?.map(EntryId),
        reverses_id: r.opt_i64("reverses_id")?.map(EntryId),
        reason: r.opt_text("reason")?,
        count,
        detail: from_json(&r.text("detail")?)?,
        content_sha256: r.text("content_sha256")?,
        prev_hash: r.text("prev_hash")?,
        row_hash: r.text("row_hash")?,
        unit: match r.text("unit")?.as_str() {
            "mL" => CountingUnit::Millilitres,
            "mg" => CountingUnit::Milligrams,
            _ => return Err(bad("unit")),
        },
        reversed_by: r.opt_i64("reversed_by")?.map(EntryId),
    })
}

fn get_entry(c: &mut dyn Conn, actor: &Actor, id: EntryId) -> Result<LedgerEntry> {
    let r = c
        .query_opt(&format!("SELECT {ENTRY_COLS} FROM {ENTRY_FROM} WHERE e.id = $1"), params![id.0])?
        .ok_or_else(|| StoreError::NotFound(format!("ledger entry {id}")))?;
    let e = entry_from(&r)?;
    if !actor.scope.allows(e.site_id) {
        return Err(StoreError::NotFound(format!("ledger entry {id}")));
    }
    Ok(e)
}

fn unit_text(u: CountingUnit) -> &'static str {
    u.symbol()
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// Who is writing and who witnessed it, checked.
struct Signers<'a> {
    actor: &'a Actor,
    recorder: Signatory,
    witnesses: Vec<Signatory>,
}

/// One ledger movement being recorded: who records it, when, and the re-authentication
/// they gave; handed to each `record_*` operation by [`Store::ledger_write`].
struct Movement {
    actor: Actor,
    reauthenticated_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    window: Duration,
}

impl Movement {
    /// AC-11 for the recorder and every witness, then the second-person rules.
    fn signers(
        &self,
        witnesses: &[Witness],
        kind: EntryKind,
        site: SiteId,
        administrator: Option<&Signatory>,
    ) -> Result<Signers<'_>> {
        let (actor, now, window) = (&self.actor, self.now, self.window);
        require_reauthentication("record a controlled-substance entry", self.reauthenticated_at, now, window)?;
        let recorder = signatory(actor, self.reauthenticated_at.expect("checked above"));
        let mut ws = Vec::with_capacity(witnesses.len());
        for (i, w) in witnesses.iter().enumerate() {
            let field = dl::witness_field(i);
            if !w.actor.can(Permission::RecordLedger) || !w.actor.scope.allows(site) {
                return Err(DomainError::field(
                    field,
                    format!("{} is not authorised to witness controlled-substance entries at this site", w.actor.name),
                )
                .into());
            }
            dl::check_reauthentication("witness this entry", Some(w.reauthenticated_at), now, window).map_err(
                |_| {
                    StoreError::Forbidden(format!(
                        "the witness ({}) must enter their password again, within {} min of the entry",
                        w.actor.name,
                        window.whole_minutes()
                    ))
                },
            )?;
            ws.push(signatory(&w.actor, w.reauthenticated_at));
        }
        dl::check_witnesses(kind, &recorder, &ws, administrator)?;
        Ok(Signers { actor, recorder, witnesses: ws })
    }
}

/// Everything about an entry beyond what the book plans.
struct Content<'a> {
    detail: &'a EntryDetail,
    occurred_at: OffsetDateTime,
    session_id: Option<SessionId>,
    patient_id: Option<PatientId>,
    reason: Option<&'a str>,
}

fn take_ledger_lock(c: &mut dyn Conn) -> Result<()> {
    if c.backend() == Backend::Postgres {
        c.execute("SELECT pg_advisory_xact_lock(4242003)", &[])?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn insert_entry(
    c: &mut dyn Conn,
    s: &Signers<'_>,
    lot: &LotRow,
    p: &Planned,
    content: &Content<'_>,
    now: OffsetDateTime,
) -> Result<EntryId> {
    let moved = Quantity(p.change.0.abs());
    let w = |i: usize| s.witnesses.get(i);
    let count_id = p.resolves_count.filter(|_| matches!(p.kind, EntryKind::Loss | EntryKind::Adjustment));
    let values: Vec<Value> = vec![
        lot.id.0.into(),
        lot.site_id.0.into(),
        p.kind.as_str().into(),
        p.change.0.into(),
        p.on_hand_after.0.into(),
        Value::Real(lot.product.mg_in(moved).0),
        lot.product.ml_in(moved).map(|m| m.0).into(),
        ms(content.occurred_at).into(),
        ms(now).into(),
        s.recorder.name.as_str().into(),
        s.recorder.user_id.into(),
        ms(s.recorder.reauthenticated_at).into(),
        w(0).map(|w| w.name.clone()).into(),
        w(0).and_then(|w| w.user_id).into(),
        w(0).map(|w| ms(w.reauthenticated_at)).into(),
        w(1).map(|w| w.name.clone()).into(),
        w(1).and_then(|w| w.user_id).into(),
        w(1).map(|w| ms(w.reauthenticated_at)).into(),
        content.session_id.map(|x| x.0).into(),
        content.patient_id.map(|x| x.0).into(),
        p.administration.map(|x| x.0).into(),
        count_id.map(|x| x.0).into(),
        p.corrects.map(|x| x.0).into(),
        p.reverses.map(|x| x.0).into(),
        content.reason.into(),
        p.count.map(|x| x.physical.0).into(),
        p.count.map(|x| x.expected.0).into(),
        json(content.detail).into(),
    ];
    debug_assert_eq!(values.len(), HASHED_N);
    let content_sha = sha256_hex(&canonical(&values));
    let prev = chain_tail(c)?;
    let row = row_hash(&prev, &content_sha);
    let mut all = values;
    all.extend([content_sha.into(), prev.into(), row.into()]);
    let placeholders = (1..=all.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let id = c.insert(
        &format!("INSERT INTO cs_ledger ({HASHED_COLS}, content_sha256, prev_hash, row_hash) VALUES ({placeholders}) RETURNING id"),
        &all,
    )?;
    let (action, object_type) = match p.kind {
        EntryKind::Receipt => (Action::CsReceive, "cs_receipt"),
        EntryKind::Administration => (Action::CsAdminister, "cs_administration"),
        EntryKind::Waste => (Action::CsWaste, "cs_waste"),
        EntryKind::Disposal => (Action::CsDispose, "cs_disposal"),
        EntryKind::Count => (Action::CsCount, "cs_count"),
        EntryKind::Adjustment => (Action::Create, "cs_adjustment"),
        EntryKind::Loss => (Action::CsLoss, "cs_loss"),
        EntryKind::Reversal => (Action::CsCorrect, "cs_reversal"),
    };
    audit::record(
        c,
        s.actor,
        now,
        Entry {
            action,
            object_type,
            object_id: Some(id.to_string()),
            patient_id: content.patient_id,
            site_id: Some(lot.site_id),
            fields: &["lot_id", "change", "witnesses", "detail"],
        },
    )?;
    Ok(EntryId(id))
}

/// Plans and writes a proposal (and the reversal when it corrects), returning the new
/// entry and the reversal.
fn append(
    c: &mut dyn Conn,
    s: &Signers<'_>,
    lot: &LotRow,
    book: &mut LotBook,
    proposal: &Proposal,
    content: &Content<'_>,
    now: OffsetDateTime,
) -> Result<(EntryId, Option<EntryId>)> {
    let planned = book.plan(proposal)?;
    let (mut entry, mut reversal) = (None, None);
    for p in planned {
        let id = if p.kind == EntryKind::Reversal {
            let reason = content.detail.corrects().map(|c| c.reason.as_str());
            let detail = EntryDetail::Reversal(Reversal { reason: reason.unwrap_or_default().to_string() });
            let rc = Content {
                detail: &detail,
                occurred_at: now,
                session_id: content.session_id,
                patient_id: content.patient_id,
                reason,
            };
            let id = insert_entry(c, s, lot, &p, &rc, now)?;
            reversal = Some(id);
            id
        } else {
            let id = insert_entry(c, s, lot, &p, content, now)?;
            entry = Some(id);
            id
        };
        book.commit(p, id, if reversal == Some(id) { now } else { content.occurred_at });
    }
    Ok((entry.expect("a plan always holds the entry"), reversal))
}

fn recorded(
    c: &mut dyn Conn,
    actor: &Actor,
    lot: &LotRow,
    entry: EntryId,
    reversal: Option<EntryId>,
    alerts: Vec<LedgerAlert>,
) -> Result<RecordedEntry> {
    Ok(RecordedEntry {
        entry: get_entry(c, actor, entry)?,
        reversal: reversal.map(|r| get_entry(c, actor, r)).transpose()?,
        lot: lot_summary(c, lot)?,
        alerts,
    })
}

fn correction_target(c: &Option<Correction>) -> Option<EntryId> {
    c.as_ref().map(|c| c.entry_id)
}

/// Keeps an entered time from being used as the record's time when it is absent.
fn at(t: Option<OffsetDateTime>, now: OffsetDateTime) -> OffsetDateTime {
    t.unwrap_or(now)
}

/// The session a dose is given in, checked against the lot.
fn session_for_dose(
    c: &mut dyn Conn,
    actor: &Actor,
    lot: &LotRow,
    id: SessionId,
) -> Result<keta_domain::session::TreatmentSession> {
    let s = crate::sessions::get_session(c, actor, id)?;
    if s.site_id != lot.site_id {
        return Err(DomainError::field("lot_id", "this lot is stocked at another site than the session's").into());
    }
    if s.state == SessionState::Scheduled || (s.state == SessionState::Stopped && s.dose_started_at.is_none()) {
        return Err(StoreError::Conflict(format!(
            "session {id} has not reached dosing (it is {}); check the patient in first",
            s.state.as_str()
        )));
    }
    if s.route.clinic_stock() != Some(lot.product.substance) {
        return Err(DomainError::field(
            "lot_id",
            format!(
                "a {} session cannot be given {} from this lot",
                s.route.label(),
                lot.product.substance.label().to_lowercase()
            ),
        )
        .into());
    }
    Ok(s)
}

fn raise_count_alert(
    c: &mut dyn Conn,
    actor: &Actor,
    lot: &LotRow,
    entry: EntryId,
    count: CountResult,
    now: OffsetDateTime,
) -> Result<LedgerAlert> {
    let u = lot.product.unit();
    let message = format!(
        "Count of {} lot {} found {} against {} in the ledger ({} {})",
        lot.product.substance.label(),
        lot.lot_number,
        count.physical.show(u),
        count.expected.show(u),
        count.discrepancy.show(u),
        if count.discrepancy.0 < 0 { "missing" } else { "over" }
    );
    let id = c.insert(
        "INSERT INTO cs_alerts (site_id, lot_id, entry_id, message, raised_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        params![lot.site_id.0, lot.id.0, entry.0, message.as_str(), ms(now)],
    )?;
    audit::record(
        c,
        actor,
        now,
        Entry {
            action: Action::Create,
            object_type: "cs_alert",
            object_id: Some(id.to_string()),
            patient_id: None,
            site_id: Some(lot.site_id),
            fields: &["lot_id", "entry_id", "message"],
        },
    )?;
    Ok(LedgerAlert {
        id: LedgerAlertId(id),
        site_id: lot.site_id,
        lot_id: lot.id,
        entry_id: entry,
        message,
        raised_at: now,
        open: true,
    })
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// Non-reversed administrations recorded for a session: a session where ketamine was
/// given cannot be discharged while this is zero.
pub(crate) fn administrations_for_session(c: &mut dyn Conn, session: SessionId) -> Result<usize> {
    let n = c
        .query_opt(
            "SELECT count(*) AS n FROM cs_ledger e WHERE e.session_id = $1 AND e.kind = 'administration'
             AND NOT EXISTS (SELECT 1 FROM cs_ledger r WHERE r.reverses_id = e.id)",
            params![session.0],
        )?
        .map(|r| r.i64("n"))
        .transpose()?
        .unwrap_or(0);
    Ok(n as usize)
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct LedgerQuery {
    pub site_id: Option<SiteId>,
    pub lot_id: Option<LotId>,
    pub session_id: Option<SessionId>,
    pub kind: Option<EntryKind>,
    pub substance: Option<Substance>,
    /// Entries that occurred at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Entries that occurred before this time.
    pub to: Option<OffsetDateTime>,
    pub limit: i64,
}

pub(crate) fn list_entries(c: &mut dyn Conn, actor: &Actor, q: &LedgerQuery) -> Result<Vec<LedgerEntry>> {
    let mut sql = format!("SELECT {ENTRY_COLS} FROM {ENTRY_FROM} WHERE {}", actor.scope.sql("e.site_id"));
    let mut p: Vec<Value> = Vec::new();
    let mut cond = |sql: &mut String, col: &str, op: &str, v: Value| {
        p.push(v);
        sql.push_str(&format!(" AND {col} {op} ${}", p.len()));
    };
    if let Some(v) = q.site_id {
        cond(&mut sql, "e.site_id", "=", v.0.into());
    }
    if let Some(v) = q.lot_id {
        cond(&mut sql, "e.lot_id", "=", v.0.into());
    }
    if let Some(v) = q.session_id {
        cond(&mut sql, "e.session_id", "=", v.0.into());
    }
    if let Some(v) = q.kind {
        cond(&mut sql, "e.kind", "=", v.as_str().into());
    }
    if let Some(v) = q.substance {
        cond(&mut sql, "l.substance", "=", v.as_str().into());
    }
    if let Some(v) = q.from {
        cond(&mut sql, "e.occurred_at", ">=", ms(v).into());
    }
    if let Some(v) = q.to {
        cond(&mut sql, "e.occurred_at", "<", ms(v).into());
    }
    p.push(q.limit.clamp(1, 10_000).into());
    sql.push_str(&format!(" ORDER BY e.occurred_at, e.id LIMIT ${}", p.len()));
    c.query(&sql, &p)?.iter().map(entry_from).collect()
}

fn lots_in_scope(c: &mut dyn Conn, actor: &Actor, site: Option<SiteId>) -> Result<Vec<LotRow>> {
    if let Some(s) = site
        && !actor.scope.allows(s)
    {
        return Err(StoreError::NotFound(format!("site {s}")));
    }
    let mut sql = format!("SELECT {LOT_COLS} FROM cs_lots WHERE {}", actor.scope.sql("site_id"));
    let mut p: Vec<Value> = Vec::new();
    if let Some(s) = site {
        p.push(s.0.into());
        sql.push_str(" AND site_id = $1");
    }
    sql.push_str(" ORDER BY substance, expires_on, id");
    c.query(&sql, &p)?.iter().map(lot_from).collect()
}

/// Each lot's entries and its first receipt.
type Books = HashMap<LotId, (Vec<BookEntry>, Option<EntryId>)>;

/// Every lot's book, read in one pass; `as_of` keeps only entries recorded by then.
fn books(c: &mut dyn Conn, lots: &[LotRow], as_of: Option<OffsetDateTime>) -> Result<Books> {
    let mut out: Books = lots.iter().map(|l| (l.id, (Vec::new(), None))).collect();
    if lots.is_empty() {
        return Ok(out);
    }
    let ids = lots.iter().map(|l| l.id.0.to_string()).collect::<Vec<_>>().join(",");
    // Lot ids are integers from our own rows, so inlining them is safe.
    let rows = c.query(
        &format!(
            "SELECT {BOOK_COLS}, recorded_at FROM cs_ledger WHERE lot_id IN ({ids}) AND recorded_at <= $1 ORDER BY id"
        ),
        params![as_of.map_or(i64::MAX, ms)],
    )?;
    for r in rows {
        let e = book_entry_from(&r)?;
        let slot = out.entry(LotId(r.i64("lot_id")?)).or_default();
        if e.kind == EntryKind::Receipt && slot.1.is_none() {
            slot.1 = Some(e.id);
        }
        slot.0.push(e);
    }
    Ok(out)
}

fn alerts_for(c: &mut dyn Conn, actor: &Actor, site: Option<SiteId>) -> Result<Vec<LedgerAlert>> {
    let lots = lots_in_scope(c, actor, site)?;
    let books = books(c, &lots, None)?;
    let mut open = HashMap::new();
    for lot in &lots {
        let (entries, _) = &books[&lot.id];
        let rec = LotBook::new(lot.product.unit(), entries.clone()).reconcile(
            None,
            time::Date::MIN,
            &crate::site_time::calendar(c, lot.site_id)?,
        );
        if let Some(last) = rec.last_count {
            open.insert(lot.id, (last.entry_id, !last.unexplained.is_zero()));
        }
    }
    let mut sql = format!(
        "SELECT id, site_id, lot_id, entry_id, message, raised_at FROM cs_alerts WHERE {}",
        actor.scope.sql("site_id")
    );
    let mut p: Vec<Value> = Vec::new();
    if let Some(s) = site {
        p.push(s.0.into());
        sql.push_str(" AND site_id = $1");
    }
    sql.push_str(" ORDER BY raised_at DESC, id DESC");
    c.query(&sql, &p)?
        .iter()
        .map(|r| {
            let (lot, entry) = (LotId(r.i64("lot_id")?), EntryId(r.i64("entry_id")?));
            Ok(LedgerAlert {
                id: LedgerAlertId(r.i64("id")?),
                site_id: SiteId(r.i64("site_id")?),
                lot_id: lot,
                entry_id: entry,
                message: r.text("message")?,
                raised_at: from_ms(r.i64("raised_at")?)?,
                open: open.get(&lot).is_some_and(|(e, unexplained)| *e == entry && *unexplained),
            })
        })
        .collect()
}

/// Re-checks every entry: the hash chain, each content hash, and each lot's running
/// on-hand (never negative, equal to what each entry recorded). Reports the first problem.
pub(crate) fn verify_ledger(c: &mut dyn Conn) -> Result<LedgerVerification> {
    let rows = c.query(
        &format!("SELECT id, {HASHED_COLS}, content_sha256, prev_hash, row_hash FROM cs_ledger ORDER BY id"),
        &[],
    )?;
    let mut prev = audit::GENESIS.to_string();
    let mut running: HashMap<i64, i64> = HashMap::new();
    let mut n = 0u64;
    for r in rows {
        let id = EntryId(r.i64("id")?);
        let broken = |reason: &str| {
            Ok(LedgerVerification {
                entries_checked: n,
                intact: false,
                first_break: Some(LedgerBreak { entry_id: id, reason: reason.into() }),
            })
        };
        let values = &r.values()[1..=HASHED_N];
        let (content, stored_prev, stored_row) = (r.text("content_sha256")?, r.text("prev_hash")?, r.text("row_hash")?);
        if stored_prev != prev {
            return broken("does not follow the previous entry (an entry before it was deleted, edited or reordered)");
        }
        if sha256_hex(&canonical(values)) != content {
            return broken("its content does not match its SHA-256 (edited outside Keta)");
        }
        if row_hash(&prev, &content) != stored_row {
            return broken("its chain hash does not match (edited outside Keta)");
        }
        let (lot, change, after) = (r.i64("lot_id")?, r.i64("change_thousandths")?, r.i64("on_hand_after")?);
        let total = running.entry(lot).or_insert(0);
        *total += change;
        if *total != after || after < 0 {
            return broken("the lot's running on-hand does not add up here");
        }
        prev = stored_row;
        n += 1;
    }
    Ok(LedgerVerification { entries_checked: n, intact: true, first_break: None })
}

// ---------------------------------------------------------------------------
// The operations
// ---------------------------------------------------------------------------

impl Store {
    /// Records a receipt from a supplier, creating its stock lot. `checked_by` is the
    /// second person who checked the delivery against the invoice. With `corrects`, the
    /// original receipt is reversed and this one replaces it in the same lot (the
    /// product, lot number, NDC, expiry and site must stay the same).
    pub async fn record_receipt(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        mut new: NewReceipt,
        checked_by: Witness,
    ) -> Result<RecordedEntry> {
        actor.require(Permission::RecordLedger)?;
        let now = self.now();
        // Expired on arrival is judged by the receiving site's calendar.
        let site = new.site_id;
        let zone = self.read(move |c| crate::site_time::site_zone(c, site)).await?;
        let received = new.validate(now, &|t| crate::site_time::local_date(&zone, t))?;
        if !actor.scope.allows(new.site_id) {
            return Err(StoreError::NotFound(format!("site {}", new.site_id)));
        }
        new.received_at = Some(at(new.received_at, now));
        self.ledger_write(actor, reauthenticated_at, move |c, m| {
            let (actor, now) = (&m.actor, m.now);
            let s = m.signers(std::slice::from_ref(&checked_by), EntryKind::Receipt, new.site_id, None)?;
            let lot = match correction_target(&new.corrects) {
                Some(orig) => {
                    let o = get_entry(c, actor, orig)?;
                    let lot = load_lot(c, actor, o.lot_id)?;
                    let same = lot.site_id == new.site_id
                        && lot.product == new.product()
                        && lot.lot_number == new.lot_number.trim()
                        && lot.ndc == new.ndc.trim()
                        && lot.expires_on == new.expires_on;
                    if !same {
                        return Err(DomainError::field(
                            "corrects.entry_id",
                            "a corrected receipt keeps the lot's product, lot number, NDC, expiry and site; void the receipt and record a new one to change those",
                        )
                        .into());
                    }
                    lot
                }
                None => {
                    let id = c.insert(
                        "INSERT INTO cs_lots (site_id, substance, presentation, unit, lot_number, ndc, expires_on, received_at, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                        params![
                            new.site_id.0, new.substance.as_str(), json(&new.presentation), unit_text(new.product().unit()), new.lot_number.trim(),
                            new.ndc.trim(), date_text(new.expires_on), ms(new.received_at.unwrap_or(now)), ms(now)
                        ],
                    )?;
                    load_lot(c, actor, LotId(id))?
                }
            };
            let mut book = load_book(c, &lot)?;
            let proposal = Proposal { corrects: correction_target(&new.corrects), ..Proposal::movement(EntryKind::Receipt, received) };
            let detail = EntryDetail::Receipt(new.clone());
            let content = Content { detail: &detail, occurred_at: new.received_at.unwrap_or(now), session_id: None, patient_id: None, reason: None };
            let (entry, reversal) = append(c, &s, &lot, &mut book, &proposal, &content, now)?;
            recorded(c, actor, &lot, entry, reversal, vec![])
        })
        .await
    }

    /// What every ledger entry starts with: the permission, a recent re-authentication
    /// (AC-11), then one write transaction holding the ledger lock, so entries are appended
    /// one at a time; `op` appends the entry and its audit entry in that transaction.
    async fn ledger_write<T: Send + 'static>(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        op: impl FnOnce(&mut dyn Conn, &Movement) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        actor.require(Permission::RecordLedger)?;
        let now = self.now();
        let window = self.reauthentication_window();
        require_reauthentication("record a controlled-substance entry", reauthenticated_at, now, window)?;
        let movement = Movement { actor: actor.clone(), reauthenticated_at, now, window };
        self.write(move |c| {
            take_ledger_lock(c)?;
            op(c, &movement)
        })
        .await
    }

    /// Records a dose given in a session by the actor (the administering clinician).
    pub async fn record_administration(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        mut new: NewAdministration,
    ) -> Result<RecordedEntry> {
        self.ledger_write(actor, reauthenticated_at, move |c, m| {
            let (actor, now) = (&m.actor, m.now);
            new.administered_at = Some(at(new.administered_at, now));
            let lot = load_lot(c, actor, new.lot_id)?;
            let taken = new.validate(&lot.product, now)?;
            let given_at = new.administered_at.unwrap_or(now);
            // The lot's expiry date is a date at its site.
            if lot.expires_on < crate::site_time::calendar(c, lot.site_id)?(given_at) {
                return Err(StoreError::Conflict(format!(
                    "lot {} expired on {}; it cannot be given. Dispose of it with a witnessed disposal",
                    lot.lot_number, lot.expires_on
                )));
            }
            let session = session_for_dose(c, actor, &lot, new.session_id)?;
            let s = m.signers(&[], EntryKind::Administration, lot.site_id, None)?;
            let mut book = load_book(c, &lot)?;
            let proposal = Proposal {
                corrects: correction_target(&new.corrects),
                ..Proposal::movement(EntryKind::Administration, -taken)
            };
            let detail = EntryDetail::Administration(new.clone());
            let content = Content {
                detail: &detail,
                occurred_at: given_at,
                session_id: Some(session.id),
                patient_id: Some(session.patient_id),
                reason: None,
            };
            let (entry, reversal) = append(c, &s, &lot, &mut book, &proposal, &content, now)?;
            recorded(c, actor, &lot, entry, reversal, vec![])
        })
        .await
    }

    /// Records what was left after a dose, destroyed in front of a witness who is neither
    /// the recorder nor the clinician who gave the dose.
    pub async fn record_waste(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        mut new: NewWaste,
        witness: Witness,
    ) -> Result<RecordedEntry> {
        self.ledger_write(actor, reauthenticated_at, move |c, m| {
            let (actor, now) = (&m.actor, m.now);
            new.wasted_at = Some(at(new.wasted_at, now));
            let lot = load_lot(c, actor, new.lot_id)?;
            let amount = new.validate(&lot.product, now)?;
            let dose = match new.administration_id {
                Some(a) => {
                    let e = get_entry(c, actor, a).map_err(|_| {
                        DomainError::field("administration_id", format!("administration {a} was not found"))
                    })?;
                    if e.kind != EntryKind::Administration || e.lot_id != lot.id {
                        return Err(DomainError::field(
                            "administration_id",
                            format!("entry {a} is not an administration from this lot"),
                        )
                        .into());
                    }
                    Some(e)
                }
                None => None,
            };
            let s = m.signers(
                std::slice::from_ref(&witness),
                EntryKind::Waste,
                lot.site_id,
                dose.as_ref().map(|d| &d.recorded_by),
            )?;
            let mut book = load_book(c, &lot)?;
            let proposal = Proposal {
                corrects: correction_target(&new.corrects),
                administration: new.administration_id,
                ..Proposal::movement(EntryKind::Waste, -amount)
            };
            let detail = EntryDetail::Waste(new.clone());
            let content = Content {
                detail: &detail,
                occurred_at: new.wasted_at.unwrap_or(now),
                session_id: dose.as_ref().and_then(|d| d.session_id),
                patient_id: dose.as_ref().and_then(|d| d.patient_id),
                reason: Some(new.reason.as_str()),
            };
            let (entry, reversal) = append(c, &s, &lot, &mut book, &proposal, &content, now)?;
            recorded(c, actor, &lot, entry, reversal, vec![])
        })
        .await
    }

    /// Records the destruction of inventory (DEA Form 41 fields) with two witnesses, who
    /// must be two different people (the recorder may be one of them).
    pub async fn record_disposal(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        mut new: NewDisposal,
        witnesses: Vec<Witness>,
    ) -> Result<RecordedEntry> {
        self.ledger_write(actor, reauthenticated_at, move |c, m| {
            let (actor, now) = (&m.actor, m.now);
            new.destroyed_at = Some(at(new.destroyed_at, now));
            let lot = load_lot(c, actor, new.lot_id)?;
            let amount = new.validate(&lot.product, now)?;
            let s = m.signers(&witnesses, EntryKind::Disposal, lot.site_id, None)?;
            let mut book = load_book(c, &lot)?;
            let proposal = Proposal {
                corrects: correction_target(&new.corrects),
                ..Proposal::movement(EntryKind::Disposal, -amount)
            };
            let detail = EntryDetail::Disposal(new.clone());
            let content = Content {
                detail: &detail,
                occurred_at: new.destroyed_at.unwrap_or(now),
                session_id: None,
                patient_id: None,
                reason: Some(new.reason.as_str()),
            };
            let (entry, reversal) = append(c, &s, &lot, &mut book, &proposal, &content, now)?;
            recorded(c, actor, &lot, entry, reversal, vec![])
        })
        .await
    }

    /// Records a physical count against the book. A discrepancy needs a reason and
    /// raises a ledger alert in the same transaction.
    pub async fn record_count(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        mut new: NewCount,
        second_counter: Option<Witness>,
    ) -> Result<RecordedEntry> {
        self.ledger_write(actor, reauthenticated_at, move |c, m| {
            let (actor, now) = (&m.actor, m.now);
            new.counted_at = Some(at(new.counted_at, now));
            let lot = load_lot(c, actor, new.lot_id)?;
            let mut book = load_book(c, &lot)?;
            let count = new.validate(&lot.product, book.on_hand(), now)?;
            let s = m.signers(second_counter.as_slice(), EntryKind::Count, lot.site_id, None)?;
            let proposal = Proposal {
                corrects: correction_target(&new.corrects),
                count: Some(count),
                ..Proposal::movement(EntryKind::Count, Quantity::ZERO)
            };
            let detail = EntryDetail::Count(new.clone());
            let content = Content {
                detail: &detail,
                occurred_at: new.counted_at.unwrap_or(now),
                session_id: None,
                patient_id: None,
                reason: new.reason.as_deref(),
            };
            let (entry, reversal) = append(c, &s, &lot, &mut book, &proposal, &content, now)?;
            let alerts = if count.discrepancy.is_zero() {
                vec![]
            } else {
                vec![raise_count_alert(c, actor, &lot, entry, count, now)?]
            };
            recorded(c, actor, &lot, entry, reversal, alerts)
        })
        .await
    }

    /// Records a witnessed adjustment of the book, usually explaining a count.
    pub async fn record_adjustment(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        new: NewAdjustment,
        witness: Witness,
    ) -> Result<RecordedEntry> {
        self.ledger_write(actor, reauthenticated_at, move |c, m| {
            let (actor, now) = (&m.actor, m.now);
            let lot = load_lot(c, actor, new.lot_id)?;
            let change = new.validate(&lot.product)?;
            let s = m.signers(std::slice::from_ref(&witness), EntryKind::Adjustment, lot.site_id, None)?;
            let mut book = load_book(c, &lot)?;
            let proposal = Proposal {
                corrects: correction_target(&new.corrects),
                resolves_count: new.count_id,
                ..Proposal::movement(EntryKind::Adjustment, change)
            };
            let detail = EntryDetail::Adjustment(new.clone());
            let content = Content {
                detail: &detail,
                occurred_at: now,
                session_id: None,
                patient_id: None,
                reason: Some(new.reason.as_str()),
            };
            let (entry, reversal) = append(c, &s, &lot, &mut book, &proposal, &content, now)?;
            recorded(c, actor, &lot, entry, reversal, vec![])
        })
        .await
    }

    /// Records a theft or significant loss (DEA Form 106 fields).
    pub async fn record_loss(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        new: NewLoss,
    ) -> Result<RecordedEntry> {
        self.ledger_write(actor, reauthenticated_at, move |c, m| {
            let (actor, now) = (&m.actor, m.now);
            let lot = load_lot(c, actor, new.lot_id)?;
            let change = new.validate(&lot.product, now)?;
            let s = m.signers(&[], EntryKind::Loss, lot.site_id, None)?;
            let mut book = load_book(c, &lot)?;
            let proposal = Proposal {
                corrects: correction_target(&new.corrects),
                resolves_count: new.count_id,
                ..Proposal::movement(EntryKind::Loss, change)
            };
            let detail = EntryDetail::Loss(new.clone());
            let content = Content {
                detail: &detail,
                occurred_at: new.discovered_at,
                session_id: None,
                patient_id: None,
                reason: Some(new.circumstances.as_str()),
            };
            let (entry, reversal) = append(c, &s, &lot, &mut book, &proposal, &content, now)?;
            recorded(c, actor, &lot, entry, reversal, vec![])
        })
        .await
    }

    /// Voids an entry: a witnessed reversal that cancels its effect. The entry stays.
    pub async fn reverse_ledger_entry(
        &self,
        actor: &Actor,
        reauthenticated_at: Option<OffsetDateTime>,
        id: EntryId,
        reversal: Reversal,
        witness: Witness,
    ) -> Result<RecordedEntry> {
        actor.require(Permission::RecordLedger)?;
        reversal.validate()?;
        self.ledger_write(actor, reauthenticated_at, move |c, m| {
            let (actor, now) = (&m.actor, m.now);
            let target = get_entry(c, actor, id)?;
            let lot = load_lot(c, actor, target.lot_id)?;
            let s = m.signers(std::slice::from_ref(&witness), EntryKind::Reversal, lot.site_id, None)?;
            let mut book = load_book(c, &lot)?;
            let planned = book.plan_reversal(id)?;
            let detail = EntryDetail::Reversal(reversal.clone());
            let content = Content {
                detail: &detail,
                occurred_at: now,
                session_id: target.session_id,
                patient_id: target.patient_id,
                reason: Some(reversal.reason.as_str()),
            };
            let rid = insert_entry(c, &s, &lot, &planned, &content, now)?;
            book.commit(planned, rid, now);
            recorded(c, actor, &lot, rid, None, vec![])
        })
        .await
    }

    /// Stock lots, with their book on-hand. Empty lots only when asked.
    pub async fn list_lots(&self, actor: &Actor, site: Option<SiteId>, include_empty: bool) -> Result<Vec<Lot>> {
        actor.require(Permission::ViewLedger)?;
        let actor = actor.clone();
        self.read(move |c| {
            let lots = lots_in_scope(c, &actor, site)?;
            let books = books(c, &lots, None)?;
            let mut out = Vec::with_capacity(lots.len());
            for lot in &lots {
                let (entries, receipt) = &books[&lot.id];
                let q: Quantity = entries.iter().map(|e| e.change).sum();
                if include_empty || q.0 > 0 {
                    out.push(lot_view(
                        lot,
                        q,
                        receipt.ok_or_else(|| StoreError::Corrupt(format!("lot {} has no receipt", lot.id)))?,
                    ));
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn get_lot(&self, actor: &Actor, id: LotId) -> Result<Lot> {
        actor.require(Permission::ViewLedger)?;
        let actor = actor.clone();
        self.read(move |c| {
            let lot = load_lot(c, &actor, id)?;
            lot_summary(c, &lot)
        })
        .await
    }

    pub async fn list_ledger_entries(&self, actor: &Actor, q: LedgerQuery) -> Result<Vec<LedgerEntry>> {
        actor.require(Permission::ViewLedger)?;
        let actor = actor.clone();
        self.read(move |c| list_entries(c, &actor, &q)).await
    }

    pub async fn get_ledger_entry(&self, actor: &Actor, id: EntryId) -> Result<LedgerEntry> {
        actor.require(Permission::ViewLedger)?;
        let actor = actor.clone();
        self.read(move |c| get_entry(c, &actor, id)).await
    }

    /// On-hand against expected for every lot in scope, as of `as_of` (default now).
    pub async fn ledger_reconciliation(
        &self,
        actor: &Actor,
        site: Option<SiteId>,
        as_of: Option<OffsetDateTime>,
    ) -> Result<ReconciliationReport> {
        actor.require(Permission::ViewLedger)?;
        let as_of = as_of.unwrap_or_else(|| self.now());
        let actor = actor.clone();
        self.read(move |c| {
            let lots = lots_in_scope(c, &actor, site)?;
            let mut books = books(c, &lots, Some(as_of))?;
            let mut out = Vec::new();
            for lot in lots {
                let (entries, receipt) = books.remove(&lot.id).unwrap_or_default();
                let Some(receipt) = receipt else { continue }; // received after `as_of`
                let book = LotBook::new(lot.product.unit(), entries);
                let calendar = crate::site_time::calendar(c, lot.site_id)?;
                let reconciliation = book.reconcile(Some(lot.expires_on), calendar(as_of), &calendar);
                out.push(LotReconciliation { lot: lot_view(&lot, book.on_hand(), receipt), reconciliation });
            }
            let discrepancy_lots: Vec<LotId> =
                out.iter().filter(|l| !l.reconciliation.balanced).map(|l| l.lot.id).collect();
            Ok(ReconciliationReport {
                site_id: site,
                as_of,
                balanced: discrepancy_lots.is_empty(),
                discrepancy_lots,
                lots: out,
            })
        })
        .await
    }

    /// Count discrepancy alerts, newest first; `open` while unexplained.
    pub async fn ledger_alerts(&self, actor: &Actor, site: Option<SiteId>) -> Result<Vec<LedgerAlert>> {
        actor.require(Permission::ViewLedger)?;
        let actor = actor.clone();
        self.read(move |c| alerts_for(c, &actor, site)).await
    }

    /// A loss entry as a DEA Form 106 worksheet.
    pub async fn loss_worksheet(&self, actor: &Actor, id: EntryId) -> Result<LossWorksheet> {
        actor.require(Permission::ViewLedger)?;
        let now = self.now();
        let actor = actor.clone();
        self.read(move |c| {
            let e = get_entry(c, &actor, id)?;
            let EntryDetail::Loss(loss) = &e.detail else {
                return Err(StoreError::NotFound(format!("loss report {id}")));
            };
            let lot = load_lot(c, &actor, e.lot_id)?;
            let p = lot.product;
            let q = -e.change;
            Ok(LossWorksheet {
                entry_id: e.id,
                site_id: e.site_id,
                loss_type: loss.loss_type,
                loss_type_label: loss.loss_type.label().into(),
                discovered_at: loss.discovered_at,
                substance: p.substance.label().into(),
                dea_drug_code: p.substance.dea_drug_code().into(),
                strength: p.strength_label(),
                form: p.form_label().into(),
                ndc: lot.ndc.clone(),
                lot_number: lot.lot_number.clone(),
                quantity_lost: q,
                unit: p.unit(),
                quantity_lost_mg: p.mg_in(q),
                quantity_lost_ml: p.ml_in(q),
                quantity_lost_devices: p.devices_in(q),
                circumstances: loss.circumstances.clone(),
                police_report: loss.police_report.clone(),
                dea_notified_at: loss.dea_notified_at,
                form_106_filed_at: loss.form_106_filed_at,
                count_id: loss.count_id,
                investigation_notes: loss.investigation_notes.clone(),
                recorded_by: e.recorded_by.clone(),
                recorded_at: e.recorded_at,
                reversed_by: e.reversed_by,
                outstanding: if e.reversed_by.is_some() { vec![] } else { loss.outstanding(now) },
            })
        })
        .await
    }

    /// Re-checks the whole ledger's hashes and arithmetic.
    pub async fn verify_ledger(&self, actor: &Actor) -> Result<LedgerVerification> {
        actor.require(Permission::ViewLedger)?;
        self.read(verify_ledger).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reauthentication_window_is_bounded() {
        assert_eq!(crate::StoreSettings::default().reauthentication_window, Duration::minutes(5), "default");
        assert!(check_reauthentication_window(Duration::seconds(30)).is_err());
        assert!(check_reauthentication_window(Duration::minutes(16)).is_err());
        assert!(check_reauthentication_window(dl::DEFAULT_REAUTHENTICATION_WINDOW).is_ok());
    }

    #[test]
    fn canonical_content_is_unambiguous() {
        let a = canonical(&[Value::Text("ab".into()), Value::Text("c".into())]);
        let b = canonical(&[Value::Text("a".into()), Value::Text("bc".into())]);
        assert_ne!(a, b);
        assert_ne!(canonical(&[Value::Null]), canonical(&[Value::Text(String::new())]));
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
