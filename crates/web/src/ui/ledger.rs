//! The controlled-substance books in the browser: the stock on hand with each lot's running
//! balance, the entry screens (receipt, witnessed waste, disposal, count, adjustment, loss,
//! reversal), the reconciliation with its discrepancies to resolve, and the printable
//! documents an inspector asks for (dispensing log, initial and biennial inventory, a DEA
//! Form 106 draft from a loss entry; `ledger_print.rs`).
//!
//! Every entry needs the recorder's password re-entered within the ledger's window: the
//! screens send them through `/reauth`, as the session screen's "Dose given" does. A
//! witness signs on the same tablet by entering their own user name and password, checked
//! by [`crate::auth::witness`], the one check the JSON API uses too. The store enforces
//! both again, with the role and site scope, and writes the audit entry.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::access::Permission;
use keta_domain::ids::SiteId;
use keta_domain::ledger::{
    AdjustmentDirection, Amount, BusinessTime, CountType, EntryDetail, EntryId, EntryKind, LedgerEntry, LossType, Lot,
    LotId, NewAdjustment, NewCount, NewDisposal, NewLoss, NewReceipt, NewWaste, Presentation, Reversal, Substance,
};
use keta_domain::units::{MgPerMl, Milligrams, Millilitres};
use keta_store::StoreError;
use keta_store::ledger::{LedgerQuery, Witness};
use serde::Deserialize;
use time::OffsetDateTime;

use super::clock::{SiteClock, parse_hm, parse_iso_date};
use super::page::{Area, Chrome, Errors, FormData, UiError, UiResult, render, render_status, see_other};
use crate::AppState;
use crate::auth::CurrentUser;

/// A choice in a select.
pub struct Opt {
    pub value: String,
    pub label: String,
}

/// True when the user entered their password within the ledger's window.
pub(crate) fn reauthenticated(st: &AppState, user: &CurrentUser) -> bool {
    let now = st.store.now();
    user.reauthenticated_at.is_some_and(|t| now - t < st.store.reauthentication_window())
}

/// Where the "Re-enter password" link sends the user, coming back to `back`.
pub(crate) fn reauth_href(back: &str) -> String {
    format!("/reauth?next={}", back.replace('%', "%25").replace('#', "%23").replace('&', "%26").replace('?', "%3F"))
}

/// "Ketamine hydrochloride 50 mg/mL, vial of 10 mL · lot A123"
pub(crate) fn lot_product(l: &Lot) -> String {
    format!("{} {} {}, {} · lot {}", l.product.substance.label(), l.form, l.strength, l.container, l.lot_number)
}

/// The on-hand in the lot's unit, with mg and devices beside it where they apply.
pub(crate) fn lot_stock(l: &Lot) -> String {
    let mut s = l.on_hand.show(l.unit);
    match (l.on_hand_ml, l.on_hand_devices) {
        (Some(_), _) => s.push_str(&format!(" ({} mg)", num(l.on_hand_mg.0))),
        (None, Some(d)) => s.push_str(&format!(" ({} devices)", num(d))),
        _ => {}
    }
    s
}

pub(crate) fn num(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub(crate) fn kind_label(k: EntryKind) -> &'static str {
    match k {
        EntryKind::Receipt => "Receipt",
        EntryKind::Administration => "Administration",
        EntryKind::Waste => "Waste",
        EntryKind::Disposal => "Disposal",
        EntryKind::Count => "Count",
        EntryKind::Adjustment => "Adjustment",
        EntryKind::Loss => "Loss",
        EntryKind::Reversal => "Reversal",
    }
}

fn count_type_label(t: CountType) -> &'static str {
    match t {
        CountType::Routine => "Routine count",
        CountType::Initial => "Initial inventory",
        CountType::Biennial => "Biennial inventory",
    }
}

/// What an entry says, in a line.
pub(crate) fn entry_summary(e: &LedgerEntry) -> String {
    match &e.detail {
        EntryDetail::Receipt(r) => format!(
            "{} container{} from {} (DEA {}){}",
            r.containers,
            if r.containers == 1 { "" } else { "s" },
            r.supplier_name,
            r.supplier_dea_number,
            r.invoice_number.as_deref().map(|i| format!(", invoice {i}")).unwrap_or_default()
        ),
        EntryDetail::Administration(a) => format!(
            "{} mg given{}",
            num(a.dose_mg.0),
            e.session_id.map(|s| format!(" in session {s}")).unwrap_or_default()
        ),
        EntryDetail::Waste(w) => format!("{}: {}", w.method, w.reason),
        EntryDetail::Disposal(d) => format!("{} at {}: {}", d.method, d.location, d.reason),
        EntryDetail::Count(c) => {
            let mut s = count_type_label(c.count_type).to_string();
            if let Some(r) = &e.count {
                s.push_str(&format!(": counted {}, book {}", r.physical.show(e.unit), r.expected.show(e.unit)));
                if !r.discrepancy.is_zero() {
                    s.push_str(&format!(", difference {}", r.discrepancy.show(e.unit)));
                }
            }
            if c.estimated {
                s.push_str(" (opened container estimated)");
            }
            if let Some(r) = &c.reason {
                s.push_str(&format!("; {r}"));
            }
            s
        }
        EntryDetail::Adjustment(a) => a.reason.clone(),
        EntryDetail::Loss(l) => format!("{}: {}", l.loss_type.label(), l.circumstances),
        EntryDetail::Reversal(r) => {
            format!("voids entry {}: {}", e.reverses_id.map(|i| i.0.to_string()).unwrap_or_default(), r.reason)
        }
    }
}

pub(crate) fn witnesses_line(e: &LedgerEntry) -> String {
    e.witnesses.iter().map(|w| w.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// One line of a lot's book or the entry list.
pub struct EntryRow {
    pub id: i64,
    pub when: String,
    pub kind: &'static str,
    pub lot_id: i64,
    pub lot: String,
    pub change: String,
    pub balance: String,
    pub recorded_by: String,
    pub witnesses: String,
    pub summary: String,
    pub reversed_by: Option<i64>,
    pub can_reverse: bool,
    pub is_loss: bool,
}

fn entry_row(e: &LedgerEntry, lots: &[Lot], clock: &SiteClock, can_record: bool) -> EntryRow {
    EntryRow {
        id: e.id.0,
        when: clock.datetime(e.occurred_at),
        kind: kind_label(e.kind),
        lot_id: e.lot_id.0,
        lot: lots
            .iter()
            .find(|l| l.id == e.lot_id)
            .map_or_else(|| format!("lot {}", e.lot_id), |l| l.lot_number.clone()),
        change: if e.kind == EntryKind::Count { String::new() } else { e.change.show(e.unit) },
        balance: e.on_hand_after.show(e.unit),
        recorded_by: e.recorded_by.name.clone(),
        witnesses: witnesses_line(e),
        summary: entry_summary(e),
        reversed_by: e.reversed_by.map(|r| r.0),
        can_reverse: can_record && e.reversed_by.is_none() && e.kind != EntryKind::Reversal,
        is_loss: e.kind == EntryKind::Loss,
    }
}

/// The clock of the user's first site (ledger pages span sites; times show in that zone).
async fn clock_for(st: &AppState, user: &CurrentUser, site: Option<SiteId>) -> UiResult<SiteClock> {
    let sites = super::user_sites(st, user).await?;
    Ok(site
        .and_then(|id| sites.iter().find(|s| s.id == id))
        .or(sites.first())
        .map_or_else(SiteClock::utc, SiteClock::for_site))
}

#[derive(Debug, Default, Deserialize)]
pub struct SiteParam {
    #[serde(default)]
    pub site_id: Option<String>,
}

fn site_param(s: &Option<String>) -> Option<SiteId> {
    s.as_deref().and_then(|s| s.trim().parse::<i64>().ok()).map(SiteId)
}

// ---------------------------------------------------------------------------
// The books: stock on hand and recent entries
// ---------------------------------------------------------------------------

pub struct LotRow {
    pub id: i64,
    pub site: String,
    pub product: String,
    pub ndc: String,
    pub expires: String,
    pub stock: String,
    pub empty: bool,
}

pub struct AlertRow {
    pub lot_id: i64,
    pub message: String,
    pub raised: String,
}

#[derive(Template)]
#[template(path = "ledger/books.html")]
struct BooksPage {
    chrome: Chrome,
    sites: Vec<Opt>,
    site_id: String,
    lots: Vec<LotRow>,
    alerts: Vec<AlertRow>,
    entries: Vec<EntryRow>,
    can_record: bool,
    fresh: bool,
    reauth: String,
}

/// `GET /ledger`: every lot with its balance, the open count alerts and the latest entries.
pub async fn get_books(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<SiteParam>,
) -> UiResult<Response> {
    let site = site_param(&q.site_id);
    let sites = super::user_sites(&st, &user).await?;
    let clock = clock_for(&st, &user, site).await?;
    let lots = st.store.list_lots(&user.actor, site, true).await?;
    let alerts = st.store.ledger_alerts(&user.actor, site).await?;
    let entries = st
        .store
        .list_ledger_entries(
            &user.actor,
            LedgerQuery {
                site_id: site,
                lot_id: None,
                session_id: None,
                kind: None,
                substance: None,
                // The latest entries: the last fortnight's (the lot pages and the log hold the rest).
                from: Some(st.store.now() - time::Duration::days(14)),
                to: None,
                limit: 10_000,
            },
        )
        .await?;
    let can_record = user.actor.can(Permission::RecordLedger);
    let site_name =
        |id: SiteId| sites.iter().find(|s| s.id == id).map_or_else(|| format!("site {id}"), |s| s.name.clone());
    let page = BooksPage {
        chrome: Chrome::new(&user, "Controlled-substance ledger", Area::Ledger),
        sites: sites.iter().map(|s| Opt { value: s.id.0.to_string(), label: s.name.clone() }).collect(),
        site_id: site.map(|s| s.0.to_string()).unwrap_or_default(),
        lots: lots
            .iter()
            .filter(|l| !l.on_hand.is_zero())
            .chain(lots.iter().filter(|l| l.on_hand.is_zero()))
            .map(|l| LotRow {
                id: l.id.0,
                site: site_name(l.site_id),
                product: lot_product(l),
                ndc: l.ndc.clone(),
                expires: l.expires_on.to_string(),
                stock: lot_stock(l),
                empty: l.on_hand.is_zero(),
            })
            .collect(),
        alerts: alerts
            .iter()
            .filter(|a| a.open)
            .map(|a| AlertRow { lot_id: a.lot_id.0, message: a.message.clone(), raised: clock.datetime(a.raised_at) })
            .collect(),
        entries: entries.iter().rev().take(25).map(|e| entry_row(e, &lots, &clock, can_record)).collect(),
        can_record,
        fresh: reauthenticated(&st, &user),
        reauth: reauth_href("/ledger"),
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "ledger/lot.html")]
struct LotPage {
    chrome: Chrome,
    id: i64,
    product: String,
    ndc: String,
    expires: String,
    received: String,
    stock: String,
    entries: Vec<EntryRow>,
    can_record: bool,
}

/// `GET /ledger/lots/{id}`: one lot's book, oldest first, with the balance after each entry.
pub async fn get_lot(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult<Response> {
    let lot = st.store.get_lot(&user.actor, LotId(id)).await?;
    let clock = clock_for(&st, &user, Some(lot.site_id)).await?;
    let entries = st
        .store
        .list_ledger_entries(
            &user.actor,
            LedgerQuery {
                site_id: None,
                lot_id: Some(lot.id),
                session_id: None,
                kind: None,
                substance: None,
                from: None,
                to: None,
                limit: 10_000,
            },
        )
        .await?;
    let can_record = user.actor.can(Permission::RecordLedger);
    let lots = [lot.clone()];
    let page = LotPage {
        chrome: Chrome::new(&user, format!("Lot {}", lot.lot_number), Area::Ledger),
        id,
        product: lot_product(&lot),
        ndc: lot.ndc.clone(),
        expires: lot.expires_on.to_string(),
        received: clock.datetime(lot.received_at),
        stock: lot_stock(&lot),
        entries: entries.iter().map(|e| entry_row(e, &lots, &clock, can_record)).collect(),
        can_record,
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------
// Reconciliation
// ---------------------------------------------------------------------------

pub struct Discrepancy {
    pub count_id: i64,
    pub counted: String,
    pub physical: String,
    pub expected: String,
    pub difference: String,
    pub explained: String,
    pub unexplained: String,
    pub open: bool,
}

pub struct ReconRow {
    pub lot_id: i64,
    pub product: String,
    pub received: String,
    pub administered: String,
    pub wasted: String,
    pub disposed: String,
    pub lost: String,
    pub adjusted: String,
    pub on_hand: String,
    pub last_count: String,
    pub expected_on_shelf: String,
    pub balanced: bool,
    pub flags: Vec<String>,
    pub expired: bool,
    pub discrepancies: Vec<Discrepancy>,
}

#[derive(Template)]
#[template(path = "ledger/reconciliation.html")]
struct ReconciliationPage {
    chrome: Chrome,
    sites: Vec<Opt>,
    site_id: String,
    as_of: String,
    balanced: bool,
    rows: Vec<ReconRow>,
    can_record: bool,
}

/// `GET /ledger/reconciliation`: each lot's book against its counts, with every
/// discrepancy and the ways to resolve it (a witnessed adjustment, a loss report, a recount).
pub async fn get_reconciliation(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<SiteParam>,
) -> UiResult<Response> {
    let site = site_param(&q.site_id);
    let sites = super::user_sites(&st, &user).await?;
    let clock = clock_for(&st, &user, site).await?;
    let report = st.store.ledger_reconciliation(&user.actor, site, None).await?;
    let rows = report
        .lots
        .iter()
        .map(|l| {
            let u = l.lot.unit;
            let r = &l.reconciliation;
            ReconRow {
                lot_id: l.lot.id.0,
                product: lot_product(&l.lot),
                received: r.totals.received.show(u),
                administered: r.totals.administered.show(u),
                wasted: r.totals.wasted.show(u),
                disposed: r.totals.disposed.show(u),
                lost: r.totals.lost.show(u),
                adjusted: r.totals.adjusted.show(u),
                on_hand: r.totals.on_hand.show(u),
                last_count: r.last_count.as_ref().map_or_else(
                    || "never counted".to_string(),
                    |c| format!("{} on {}", c.physical.show(u), clock.datetime(c.counted_at)),
                ),
                expected_on_shelf: r.expected_on_shelf.show(u),
                balanced: r.balanced,
                flags: r.flags.iter().map(|f| f.message.clone()).collect(),
                expired: r.flags.iter().any(|f| f.kind == keta_domain::ledger::FlagKind::ExpiredStock),
                discrepancies: r
                    .discrepancies
                    .iter()
                    .map(|d| Discrepancy {
                        count_id: d.entry_id.0,
                        counted: clock.datetime(d.counted_at),
                        physical: d.physical.show(u),
                        expected: d.expected.show(u),
                        difference: d.discrepancy.show(u),
                        explained: d.explained.show(u),
                        unexplained: d.unexplained.show(u),
                        open: !d.unexplained.is_zero(),
                    })
                    .collect(),
            }
        })
        .collect();
    let page = ReconciliationPage {
        chrome: Chrome::new(&user, "Ledger reconciliation", Area::Ledger),
        sites: sites.iter().map(|s| Opt { value: s.id.0.to_string(), label: s.name.clone() }).collect(),
        site_id: site.map(|s| s.0.to_string()).unwrap_or_default(),
        as_of: clock.datetime(report.as_of),
        balanced: report.balanced,
        rows,
        can_record: user.actor.can(Permission::RecordLedger),
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------
// Entry screens
// ---------------------------------------------------------------------------

/// The entry screens, by the kind they record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Receipt,
    Waste,
    Disposal,
    Count,
    Adjustment,
    Loss,
    Reversal,
}

impl Screen {
    fn key(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::Waste => "waste",
            Self::Disposal => "disposal",
            Self::Count => "count",
            Self::Adjustment => "adjustment",
            Self::Loss => "loss",
            Self::Reversal => "reversal",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Self::Receipt => "Record a receipt",
            Self::Waste => "Record witnessed waste",
            Self::Disposal => "Record a disposal of inventory",
            Self::Count => "Record a count",
            Self::Adjustment => "Record an adjustment",
            Self::Loss => "Report a theft or loss",
            Self::Reversal => "Void an entry",
        }
    }
    /// (witnesses shown, of which optional): the domain's rule for the kind.
    fn witnesses(self) -> (usize, bool) {
        let kind = match self {
            Self::Receipt => EntryKind::Receipt,
            Self::Waste => EntryKind::Waste,
            Self::Disposal => EntryKind::Disposal,
            Self::Count => EntryKind::Count,
            Self::Adjustment => EntryKind::Adjustment,
            Self::Loss => EntryKind::Loss,
            Self::Reversal => EntryKind::Reversal,
        };
        let (min, max) = kind.witnesses();
        (max, min == 0)
    }
    fn path(self, entry: Option<i64>) -> String {
        match self {
            Self::Reversal => format!("/ledger/entries/{}/reversal", entry.unwrap_or_default()),
            other => format!("/ledger/{}", other.key()),
        }
    }
}

#[derive(Template)]
#[template(path = "ledger/record.html")]
struct RecordPage {
    chrome: Chrome,
    kind: &'static str,
    title: &'static str,
    action: String,
    sites: Vec<Opt>,
    lots: Vec<Opt>,
    administrations: Vec<Opt>,
    substances: Vec<Opt>,
    loss_types: Vec<Opt>,
    entry: Option<EntryRow>,
    witnesses: usize,
    fresh: bool,
    reauth: String,
    form: FormData,
    errors: Errors,
}

#[derive(Debug, Default, Deserialize)]
pub struct Prefill {
    #[serde(default)]
    pub lot_id: Option<String>,
    #[serde(default)]
    pub count_id: Option<String>,
    #[serde(default)]
    pub administration_id: Option<String>,
    #[serde(default)]
    pub count_type: Option<String>,
}

async fn record_page(
    st: &AppState,
    user: &CurrentUser,
    screen: Screen,
    entry: Option<i64>,
    form: FormData,
    errors: Errors,
) -> UiResult<RecordPage> {
    let sites = super::user_sites(st, user).await?;
    let clock = clock_for(st, user, None).await?;
    let lots = st.store.list_lots(&user.actor, None, false).await?;
    let administrations = if screen == Screen::Waste {
        st.store
            .list_ledger_entries(
                &user.actor,
                LedgerQuery {
                    site_id: None,
                    lot_id: None,
                    session_id: None,
                    kind: Some(EntryKind::Administration),
                    substance: None,
                    from: Some(st.store.now() - time::Duration::days(2)),
                    to: None,
                    limit: 200,
                },
            )
            .await?
            .iter()
            .rev()
            .filter(|e| e.reversed_by.is_none())
            .map(|e| Opt {
                value: e.id.0.to_string(),
                label: format!(
                    "{} · {} · lot {} · by {}",
                    clock.datetime(e.occurred_at),
                    entry_summary(e),
                    lots.iter().find(|l| l.id == e.lot_id).map_or("?", |l| l.lot_number.as_str()),
                    e.recorded_by.name
                ),
            })
            .collect()
    } else {
        vec![]
    };
    let entry = match entry {
        Some(id) => {
            let e = st.store.get_ledger_entry(&user.actor, EntryId(id)).await?;
            let all = st.store.list_lots(&user.actor, None, true).await?;
            Some(entry_row(&e, &all, &clock, true))
        }
        None => None,
    };
    let (witnesses, _) = screen.witnesses();
    let back = screen.path(entry.as_ref().map(|e| e.id));
    let lot_hint = form.get("lot_id").to_string();
    Ok(RecordPage {
        chrome: Chrome::new(user, screen.title(), Area::Ledger),
        kind: screen.key(),
        title: screen.title(),
        action: back.clone(),
        sites: sites.iter().map(|s| Opt { value: s.id.0.to_string(), label: s.name.clone() }).collect(),
        lots: lots
            .iter()
            .map(|l| Opt { value: l.id.0.to_string(), label: format!("{} · {} left", lot_product(l), lot_stock(l)) })
            .collect(),
        administrations,
        substances: Substance::ALL.iter().map(|s| Opt { value: s.as_str().into(), label: s.label().into() }).collect(),
        loss_types: [
            LossType::NightBreakIn,
            LossType::ArmedRobbery,
            LossType::EmployeePilferage,
            LossType::CustomerTheft,
            LossType::LostInTransit,
            LossType::Other,
        ]
        .iter()
        .map(|t| Opt { value: loss_type_key(*t).into(), label: t.label().into() })
        .collect(),
        entry,
        witnesses,
        fresh: reauthenticated(st, user),
        reauth: reauth_href(&if lot_hint.is_empty() { back } else { format!("{back}?lot_id={lot_hint}") }),
        form,
        errors,
    })
}

fn loss_type_key(t: LossType) -> &'static str {
    match t {
        LossType::NightBreakIn => "night_break_in",
        LossType::ArmedRobbery => "armed_robbery",
        LossType::EmployeePilferage => "employee_pilferage",
        LossType::CustomerTheft => "customer_theft",
        LossType::LostInTransit => "lost_in_transit",
        LossType::Other => "other",
    }
}

fn prefilled(p: &Prefill) -> FormData {
    let mut f = FormData::empty();
    for (k, v) in [
        ("lot_id", &p.lot_id),
        ("count_id", &p.count_id),
        ("administration_id", &p.administration_id),
        ("count_type", &p.count_type),
    ] {
        if let Some(v) = v {
            f.set(k, v.trim());
        }
    }
    f
}

async fn show(st: AppState, user: CurrentUser, screen: Screen, entry: Option<i64>, p: Prefill) -> UiResult<Response> {
    if let Some(id) = entry {
        // A void of a void, or of an entry already voided, is refused before the form.
        let e = st.store.get_ledger_entry(&user.actor, EntryId(id)).await?;
        if e.kind == EntryKind::Reversal || e.reversed_by.is_some() {
            return Err(UiError::Store(StoreError::Conflict(format!(
                "entry {id} is {}; it cannot be voided",
                if e.kind == EntryKind::Reversal { "itself a reversal" } else { "already reversed" }
            ))));
        }
    }
    Ok(render(&record_page(&st, &user, screen, entry, prefilled(&p), Errors::new()).await?))
}

macro_rules! screens {
    ($($get:ident, $post:ident => $screen:expr;)*) => {$(
        pub async fn $get(State(st): State<AppState>, user: CurrentUser, Query(p): Query<Prefill>) -> UiResult<Response> {
            show(st, user, $screen, None, p).await
        }
        pub async fn $post(State(st): State<AppState>, user: CurrentUser, form: FormData) -> UiResult<Response> {
            post(st, user, $screen, None, form).await
        }
    )*};
}

screens! {
    get_receipt, post_receipt => Screen::Receipt;
    get_waste, post_waste => Screen::Waste;
    get_disposal, post_disposal => Screen::Disposal;
    get_count, post_count => Screen::Count;
    get_adjustment, post_adjustment => Screen::Adjustment;
    get_loss, post_loss => Screen::Loss;
}

pub async fn get_reversal(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(p): Query<Prefill>,
) -> UiResult<Response> {
    show(st, user, Screen::Reversal, Some(id), p).await
}

pub async fn post_reversal(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    post(st, user, Screen::Reversal, Some(id), form).await
}

/// The witness at `index` (0: `witness_*`, 1: `second_witness_*`), verified by their own
/// user name and password on this screen. `None` (with the error beside the field) when
/// they did not sign or their password is not right.
async fn witness_at(st: &AppState, form: &FormData, index: usize, errors: &mut Errors) -> UiResult<Option<Witness>> {
    let user_field = keta_domain::ledger::witness_field(index);
    let pass_field = if index == 0 { "witness_password" } else { "second_witness_password" };
    let username = form.get(user_field).trim();
    let password = form.get(pass_field);
    if username.is_empty() || password.is_empty() {
        errors.add(user_field, "the witness enters their own user name and password");
        return Ok(None);
    }
    match crate::auth::witness(st, username, password).await {
        Ok((actor, reauthenticated_at)) => Ok(Some(Witness { actor, reauthenticated_at })),
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            errors.add(pass_field, "that user name and password do not match; the witness enters their own");
            Ok(None)
        }
        Err(e) => {
            tracing::error!(detail = %e.detail, "witness check failed");
            Err(UiError::Internal)
        }
    }
}

fn id_field(form: &FormData, name: &str, errors: &mut Errors, required: &str) -> Option<i64> {
    match form.opt(name) {
        None if required.is_empty() => None,
        None => {
            errors.add(name, required);
            None
        }
        Some(v) => match v.parse::<i64>() {
            Ok(i) => Some(i),
            Err(_) => {
                errors.add(name, "choose one from the list");
                None
            }
        },
    }
}

/// An amount field with its unit select (`NAME_unit`: ml, mg or devices).
fn amount_field(form: &FormData, name: &str, errors: &mut Errors, required: bool) -> Option<Amount> {
    let v = form.number(name, errors);
    let Some(v) = v else {
        if required && !errors.has(name) {
            errors.add(name, "enter the amount");
        }
        return None;
    };
    match form.get(&format!("{name}_unit")) {
        "ml" => Some(Amount::Ml(v)),
        "mg" => Some(Amount::Mg(v)),
        "devices" if v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) => Some(Amount::Devices(v as u32)),
        "devices" => {
            errors.add(name, "count devices in whole numbers");
            None
        }
        _ => {
            errors.add(name, "choose the unit: mL, mg or devices");
            None
        }
    }
}

fn text(form: &FormData, name: &str) -> String {
    form.get(name).trim().to_string()
}

/// A `datetime-local` value (`2026-11-27T09:30`) read on the site's clock.
fn local_time(form: &FormData, name: &str, clock: &SiteClock, errors: &mut Errors) -> Option<OffsetDateTime> {
    let raw = form.get(name).trim();
    if raw.is_empty() {
        return None;
    }
    let parsed = raw.split_once('T').and_then(|(d, t)| Some((parse_iso_date(d)?, parse_hm(t.get(..5).unwrap_or(t))?)));
    match parsed {
        Some((d, (h, m))) => Some(clock.at_local(d, h, m)),
        None => {
            errors.add(name, "give a date and time, e.g. 2026-11-27 09:30");
            None
        }
    }
}

/// The receipt a form describes, each missing field named in `errors`.
fn receipt_entry(form: &FormData, clock: &SiteClock, errors: &mut Errors) -> Option<NewReceipt> {
    let site = id_field(form, "site_id", errors, "choose the site that received it");
    let substance = Substance::parse(form.get("substance"));
    if substance.is_none() {
        errors.add("substance", "choose the substance");
    }
    let presentation = substance.and_then(|s| presentation_field(form, s, errors));
    let containers = form.integer("containers", errors);
    let containers = match containers.map(u32::try_from) {
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => {
            errors.add("containers", "give the number of containers received");
            None
        }
        None => {
            if !errors.has("containers") {
                errors.add("containers", "give the number of containers received");
            }
            None
        }
    };
    let expires_on = parse_iso_date(form.get("expires_on"));
    if expires_on.is_none() {
        errors.add("expires_on", "give the expiry date printed on the container");
    }
    let received_at = local_time(form, "received_at", clock, errors);
    let (site, substance, presentation, containers, expires_on) =
        (site?, substance?, presentation?, containers?, expires_on?);
    Some(NewReceipt {
        site_id: SiteId(site),
        received_at,
        supplier_name: text(form, "supplier_name"),
        supplier_address: text(form, "supplier_address"),
        supplier_dea_number: text(form, "supplier_dea_number"),
        invoice_number: form.opt("invoice_number"),
        substance,
        presentation,
        containers,
        lot_number: text(form, "lot_number"),
        ndc: text(form, "ndc"),
        expires_on,
        corrects: None,
    })
}

/// A receipt's vial or nasal-device presentation.
fn presentation_field(form: &FormData, substance: Substance, errors: &mut Errors) -> Option<Presentation> {
    match substance {
        Substance::Ketamine => {
            let c = form.number("presentation.concentration_mg_per_ml", errors);
            let v = form.number("presentation.ml_per_vial", errors);
            if c.is_none() && !errors.has("presentation.concentration_mg_per_ml") {
                errors.add("presentation.concentration_mg_per_ml", "give the concentration in mg/mL (e.g. 50)");
            }
            if v.is_none() && !errors.has("presentation.ml_per_vial") {
                errors.add("presentation.ml_per_vial", "give the vial size in mL (e.g. 10)");
            }
            c.zip(v)
                .map(|(c, v)| Presentation::Vial { concentration_mg_per_ml: MgPerMl(c), ml_per_vial: Millilitres(v) })
        }
        Substance::Esketamine => {
            let mg = form.number("presentation.mg_per_device", errors);
            let per = form.integer("presentation.devices_per_package", errors);
            if mg.is_none() && !errors.has("presentation.mg_per_device") {
                errors.add("presentation.mg_per_device", "give the mg each device delivers (e.g. 28)");
            }
            if per.is_none() && !errors.has("presentation.devices_per_package") {
                errors.add("presentation.devices_per_package", "give the devices in each package (e.g. 2)");
            }
            let per = per.and_then(|p| u32::try_from(p).ok());
            mg.zip(per)
                .map(|(m, p)| Presentation::NasalSprayDevice { mg_per_device: Milligrams(m), devices_per_package: p })
        }
    }
}

/// The count a form records on lot `lot_id`.
fn count_entry(form: &FormData, lot_id: Option<LotId>, errors: &mut Errors) -> Option<NewCount> {
    let physical = amount_field(form, "physical", errors, true);
    let count_type = match form.get("count_type") {
        "" | "routine" => CountType::Routine,
        "initial" => CountType::Initial,
        "biennial" => CountType::Biennial,
        _ => {
            errors.add("count_type", "choose routine, initial or biennial");
            CountType::Routine
        }
    };
    let business_time = match form.get("business_time") {
        "opening_of_business" => Some(BusinessTime::OpeningOfBusiness),
        "close_of_business" => Some(BusinessTime::CloseOfBusiness),
        _ => None,
    };
    Some(NewCount {
        lot_id: lot_id?,
        physical: physical?,
        count_type,
        business_time,
        counted_at: None,
        estimated: form.checked("estimated"),
        reason: form.opt("reason"),
        corrects: None,
    })
}

/// The theft or loss a form reports on lot `lot_id`.
fn loss_entry(
    form: &FormData,
    clock: &SiteClock,
    lot_id: Option<LotId>,
    count_id: Option<EntryId>,
    errors: &mut Errors,
) -> Option<NewLoss> {
    let amount = amount_field(form, "amount", errors, true);
    let loss_type = [
        LossType::NightBreakIn,
        LossType::ArmedRobbery,
        LossType::EmployeePilferage,
        LossType::CustomerTheft,
        LossType::LostInTransit,
        LossType::Other,
    ]
    .into_iter()
    .find(|t| loss_type_key(*t) == form.get("loss_type"));
    if loss_type.is_none() {
        errors.add("loss_type", "choose the kind of theft or loss");
    }
    let discovered_at = local_time(form, "discovered_at", clock, errors);
    if discovered_at.is_none() && !errors.has("discovered_at") {
        errors.add("discovered_at", "give when the loss was discovered");
    }
    let dea_notified_at = local_time(form, "dea_notified_at", clock, errors);
    Some(NewLoss {
        lot_id: lot_id?,
        loss_type: loss_type?,
        amount: amount?,
        discovered_at: discovered_at?,
        circumstances: text(form, "circumstances"),
        police_report: form.opt("police_report"),
        dea_notified_at,
        form_106_filed_at: None,
        count_id,
        investigation_notes: form.opt("investigation_notes"),
        corrects: None,
    })
}

/// The waste a form records on lot `lot_id`.
fn waste_entry(form: &FormData, lot_id: Option<LotId>, errors: &mut Errors) -> Option<NewWaste> {
    let amount = amount_field(form, "amount", errors, true);
    let administration_id = id_field(form, "administration_id", errors, "").map(EntryId);
    Some(NewWaste {
        lot_id: lot_id?,
        administration_id,
        amount: amount?,
        wasted_at: None,
        method: text(form, "method"),
        reason: text(form, "reason"),
        corrects: None,
    })
}

/// The disposal through a reverse distributor a form records on lot `lot_id`.
fn disposal_entry(form: &FormData, lot_id: Option<LotId>, errors: &mut Errors) -> Option<NewDisposal> {
    let full = form.integer("full_containers", errors).unwrap_or(0);
    let full = u32::try_from(full).ok().or_else(|| {
        errors.add("full_containers", "give the number of full containers (0 or more)");
        None
    });
    let partial = amount_field(form, "partial_amount", errors, false);
    Some(NewDisposal {
        lot_id: lot_id?,
        registrant_name: text(form, "registrant_name"),
        registrant_address: text(form, "registrant_address"),
        registrant_dea_number: text(form, "registrant_dea_number"),
        full_containers: full?,
        partial_amount: partial,
        destroyed_at: None,
        method: text(form, "method"),
        location: text(form, "location"),
        reason: text(form, "reason"),
        corrects: None,
    })
}

/// The adjustment a form records on lot `lot_id`.
fn adjustment_entry(
    form: &FormData,
    lot_id: Option<LotId>,
    count_id: Option<EntryId>,
    errors: &mut Errors,
) -> Option<NewAdjustment> {
    let amount = amount_field(form, "amount", errors, true);
    let direction = match form.get("direction") {
        "increase" => Some(AdjustmentDirection::Increase),
        "decrease" => Some(AdjustmentDirection::Decrease),
        _ => {
            errors.add("direction", "choose whether the book goes up or down");
            None
        }
    };
    Some(NewAdjustment {
        lot_id: lot_id?,
        direction: direction?,
        amount: amount?,
        reason: text(form, "reason"),
        count_id,
        corrects: None,
    })
}

/// Records the entry a screen collected. Bad input re-renders the screen with each error
/// beside its field (422) and writes nothing; success goes to the lot's book.
async fn post(
    st: AppState,
    user: CurrentUser,
    screen: Screen,
    entry: Option<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let at = user.reauthenticated_at;
    if !reauthenticated(&st, &user) {
        errors.add_general(
            "Ledger entries need your password again (within the last few minutes): re-enter it, then submit again.",
        );
    }
    let clock = clock_for(&st, &user, None).await?;
    let (n, optional) = screen.witnesses();
    let mut witnesses = Vec::new();
    for i in 0..n {
        let blank = form.get(keta_domain::ledger::witness_field(i)).trim().is_empty();
        if optional && blank {
            continue;
        }
        if let Some(w) = witness_at(&st, &form, i, &mut errors).await? {
            witnesses.push(w);
        }
    }
    let lot_id = if matches!(screen, Screen::Receipt | Screen::Reversal) {
        None
    } else {
        id_field(&form, "lot_id", &mut errors, "choose the lot").map(LotId)
    };
    let count_id = id_field(&form, "count_id", &mut errors, "").map(EntryId);
    let result = match screen {
        Screen::Receipt => match (receipt_entry(&form, &clock, &mut errors), witnesses.pop()) {
            (Some(new), Some(w)) if !errors.any() => Some(st.store.record_receipt(&user.actor, at, new, w).await),
            _ => None,
        },
        Screen::Waste => match (waste_entry(&form, lot_id, &mut errors), witnesses.pop()) {
            (Some(new), Some(w)) if !errors.any() => Some(st.store.record_waste(&user.actor, at, new, w).await),
            _ => None,
        },
        Screen::Disposal => match disposal_entry(&form, lot_id, &mut errors) {
            Some(new) if witnesses.len() == 2 && !errors.any() => {
                Some(st.store.record_disposal(&user.actor, at, new, std::mem::take(&mut witnesses)).await)
            }
            _ => None,
        },
        Screen::Count => match count_entry(&form, lot_id, &mut errors) {
            Some(new) if !errors.any() => Some(st.store.record_count(&user.actor, at, new, witnesses.pop()).await),
            _ => None,
        },
        Screen::Adjustment => match (adjustment_entry(&form, lot_id, count_id, &mut errors), witnesses.pop()) {
            (Some(new), Some(w)) if !errors.any() => Some(st.store.record_adjustment(&user.actor, at, new, w).await),
            _ => None,
        },
        Screen::Loss => match loss_entry(&form, &clock, lot_id, count_id, &mut errors) {
            Some(new) if !errors.any() => Some(st.store.record_loss(&user.actor, at, new).await),
            _ => None,
        },
        Screen::Reversal => match (entry, witnesses.pop()) {
            (Some(id), Some(w)) if !errors.any() => Some(
                st.store
                    .reverse_ledger_entry(&user.actor, at, EntryId(id), Reversal { reason: text(&form, "reason") }, w)
                    .await,
            ),
            _ => None,
        },
    };
    match result {
        Some(Ok(recorded)) => {
            let anchor = format!("#entry-{}", recorded.entry.id.0);
            return Ok(see_other(format!("/ledger/lots/{}{anchor}", recorded.lot.id.0)));
        }
        Some(Err(StoreError::Forbidden(msg))) => errors.add_general(super::page::capitalise(&msg)),
        Some(Err(e)) => {
            errors.absorb(e)?;
            errors.rename("entry.lot_id", "lot_id");
        }
        None => {}
    }
    let mut form = form;
    // Passwords are never sent back into the page.
    for f in ["witness_password", "second_witness_password"] {
        form.set(f, "");
    }
    let page = record_page(&st, &user, screen, entry, form, errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}
