//! The ledger's printable documents, laid out for paper (print CSS hides the navigation):
//! the dispensing log per substance and date range, the initial or biennial inventory, and
//! a DEA Form 106 draft from a loss entry. Each shows who produced it and when. The data
//! are the store's ledger views (`LedgerEntry`, `LossWorksheet`), the same ones the JSON
//! API serves.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use keta_domain::ids::SiteId;
use keta_domain::ledger::{BusinessTime, CountType, EntryDetail, EntryId, EntryKind, Substance};
use keta_store::ledger::LedgerQuery;
use serde::Deserialize;

use super::clock::{SiteClock, parse_iso_date};
use super::ledger::{Opt, entry_summary, kind_label, num, witnesses_line};
use super::page::{Area, Chrome, Errors, UiResult, render, render_status};
use crate::AppState;
use crate::auth::CurrentUser;

#[derive(Debug, Default, Deserialize)]
pub struct LogParams {
    #[serde(default)]
    pub site_id: Option<String>,
    #[serde(default)]
    pub substance: Option<String>,
    /// First day, inclusive (YYYY-MM-DD on the site's clock).
    #[serde(default)]
    pub from: Option<String>,
    /// Last day, inclusive.
    #[serde(default)]
    pub to: Option<String>,
    /// For the inventory: initial or biennial.
    #[serde(default)]
    pub count_type: Option<String>,
}

pub struct LogRow {
    pub id: i64,
    pub when: String,
    pub kind: &'static str,
    pub lot: String,
    pub change: String,
    pub amount_mg: String,
    pub balance: String,
    pub patient: String,
    pub recorded_by: String,
    pub witnesses: String,
    pub summary: String,
    pub reversed_by: Option<i64>,
}

#[derive(Template)]
#[template(path = "ledger/print_log.html")]
struct LogPage {
    chrome: Chrome,
    sites: Vec<Opt>,
    site_id: String,
    substance: String,
    from: String,
    to: String,
    registrant: String,
    dea: Vec<String>,
    produced: String,
    rows: Vec<LogRow>,
    errors: Errors,
    pdf_query: String,
}

fn site_of(p: &Option<String>) -> Option<SiteId> {
    p.as_deref().and_then(|s| s.trim().parse::<i64>().ok()).map(SiteId)
}

/// The registrant named on a document: the chosen site (or all the user's sites), its DEA
/// registration as set on the administration screen, and the site's clock.
pub(crate) struct Registrant {
    pub name: String,
    /// One line per site: "DEA registration number: …; registered address: …" ("not set"
    /// when the administrator has not set them).
    pub dea: Vec<String>,
    pub clock: SiteClock,
    pub sites: Vec<Opt>,
}

const NOT_SET: &str = "not set";

async fn registrant(st: &AppState, user: &CurrentUser, site: Option<SiteId>) -> UiResult<Registrant> {
    let sites = super::user_sites(st, user).await?;
    let opts = sites.iter().map(|s| Opt { value: s.id.0.to_string(), label: s.name.clone() }).collect();
    let chosen = site.and_then(|id| sites.iter().find(|s| s.id == id));
    let name = match chosen {
        Some(s) => s.name.clone(),
        None => sites.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
    };
    let mut dea = Vec::new();
    let named: Vec<_> = match chosen {
        Some(s) => vec![s],
        None => sites.iter().collect(),
    };
    for s in &named {
        let reg = st.store.site_dea_registration(&user.actor, s.id).await?;
        let number = if reg.number.is_empty() { NOT_SET } else { reg.number.as_str() };
        let address = if reg.address.is_empty() { NOT_SET } else { reg.address.as_str() };
        let line = format!("DEA registration number: {number}; registered address: {address}");
        dea.push(if named.len() > 1 { format!("{}: {line}", s.name) } else { line });
    }
    let clock = chosen.or(sites.first()).map_or_else(SiteClock::utc, SiteClock::for_site);
    Ok(Registrant { name, dea, clock, sites: opts })
}

/// "Dr Demo (dr.demo) on 7 Dec 2026 09:30": who produced a document and when.
pub(crate) fn produced_by(st: &AppState, user: &CurrentUser, clock: &SiteClock) -> String {
    format!("{} ({}) on {}", user.display_name, user.username, clock.datetime(st.store.now()))
}

/// The dispensing log's data, for the page and the PDF.
pub(crate) struct LogData {
    pub reg: Registrant,
    pub site: Option<SiteId>,
    pub substance: Option<Substance>,
    pub from: Option<time::Date>,
    pub to: Option<time::Date>,
    pub rows: Vec<LogRow>,
    pub errors: Errors,
    pub produced: String,
}

/// Every entry of a substance in a date range, oldest first, with the balance after each
/// (the ledger's perpetual inventory).
pub(crate) async fn dispensing_log(st: &AppState, user: &CurrentUser, q: &LogParams) -> UiResult<LogData> {
    let site = site_of(&q.site_id);
    let reg = registrant(st, user, site).await?;
    let clock = &reg.clock;
    let mut errors = Errors::new();
    let substance = match q.substance.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => match Substance::parse(s) {
            Some(s) => Some(s),
            None => {
                errors.add("substance", "choose ketamine or esketamine");
                None
            }
        },
    };
    let mut day = |field: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => match parse_iso_date(s) {
            Some(d) => Some(d),
            None => {
                errors.add(field, "give a date as YYYY-MM-DD");
                None
            }
        },
    };
    let from = day("from", &q.from);
    let to = day("to", &q.to);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        errors.add("to", "the last day cannot be before the first");
    }
    let mut rows = Vec::new();
    if !errors.any() {
        let lots = st.store.list_lots(&user.actor, site, true).await?;
        let entries = st
            .store
            .list_ledger_entries(
                &user.actor,
                LedgerQuery {
                    site_id: site,
                    lot_id: None,
                    session_id: None,
                    kind: None,
                    substance,
                    from: from.map(|d| clock.day_bounds(d).0),
                    to: to.map(|d| clock.day_bounds(d).1),
                    limit: keta_domain::plausible::ranges().lists.report_limit_max,
                },
            )
            .await?;
        rows = entries
            .iter()
            .map(|e| LogRow {
                id: e.id.0,
                when: clock.datetime(e.occurred_at),
                kind: kind_label(e.kind),
                lot: lots
                    .iter()
                    .find(|l| l.id == e.lot_id)
                    .map_or_else(|| e.lot_id.to_string(), |l| format!("{} (NDC {})", l.lot_number, l.ndc)),
                change: if e.kind == EntryKind::Count { String::new() } else { e.change.show(e.unit) },
                amount_mg: if e.kind == EntryKind::Count {
                    String::new()
                } else {
                    format!("{} mg", num(e.amount_mg.0))
                },
                balance: e.on_hand_after.show(e.unit),
                patient: e.patient_id.map(|p| format!("patient {p}")).unwrap_or_default(),
                recorded_by: e.recorded_by.name.clone(),
                witnesses: witnesses_line(e),
                summary: entry_summary(e),
                reversed_by: e.reversed_by.map(|r| r.0),
            })
            .collect();
    }
    let produced = produced_by(st, user, clock);
    Ok(LogData { reg, site, substance, from, to, rows, errors, produced })
}

/// The query string that gives the same document as PDF.
fn pdf_query(q: &LogParams) -> String {
    let pairs: Vec<String> = [
        ("site_id", &q.site_id),
        ("substance", &q.substance),
        ("from", &q.from),
        ("to", &q.to),
        ("count_type", &q.count_type),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(|v| (k, v)))
    .map(|(k, v)| format!("{k}={}", v.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>()))
    .collect();
    if pairs.is_empty() { String::new() } else { format!("?{}", pairs.join("&")) }
}

/// `GET /ledger/print/dispensing-log`.
pub async fn get_dispensing_log(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<LogParams>,
) -> UiResult<Response> {
    Ok(log_page(&user, dispensing_log(&st, &user, &q).await?, pdf_query(&q)))
}

/// The dispensing log page (also the PDF route's answer when the filters are wrong).
pub(crate) fn log_page(user: &CurrentUser, d: LogData, pdf_query: String) -> Response {
    let status = if d.errors.any() { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
    let page = LogPage {
        chrome: Chrome::new(user, "Dispensing log", Area::Ledger),
        sites: d.reg.sites,
        site_id: d.site.map(|s| s.0.to_string()).unwrap_or_default(),
        substance: d.substance.map(|s| s.as_str().to_string()).unwrap_or_default(),
        from: d.from.map(|d| d.to_string()).unwrap_or_default(),
        to: d.to.map(|d| d.to_string()).unwrap_or_default(),
        registrant: d.reg.name,
        dea: d.reg.dea,
        produced: d.produced,
        rows: d.rows,
        errors: d.errors,
        pdf_query,
    };
    render_status(status, &page)
}

pub struct InventoryRow {
    pub taken: String,
    pub business_time: &'static str,
    pub substance: String,
    pub product: String,
    pub ndc: String,
    pub lot: String,
    pub count: String,
    pub count_mg: String,
    pub estimated: bool,
    pub counted_by: String,
    pub witness: String,
}

#[derive(Template)]
#[template(path = "ledger/print_inventory.html")]
struct InventoryPage {
    chrome: Chrome,
    sites: Vec<Opt>,
    site_id: String,
    count_type: &'static str,
    title: &'static str,
    registrant: String,
    dea: Vec<String>,
    produced: String,
    rows: Vec<InventoryRow>,
    pdf_query: String,
}

/// `GET /ledger/print/inventory?count_type=initial|biennial`: the inventory's counts (each
/// lot's standing count of that type, newest inventory first), as 21 CFR 1304.11 asks:
/// the drug, its form and strength, the container, the count, and whether it was taken at
/// the opening or close of business.
pub async fn get_inventory(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<LogParams>,
) -> UiResult<Response> {
    let d = inventory(&st, &user, &q).await?;
    let page = InventoryPage {
        chrome: Chrome::new(&user, d.title, Area::Ledger),
        sites: d.reg.sites,
        site_id: d.site.map(|s| s.0.to_string()).unwrap_or_default(),
        count_type: d.count_type,
        title: d.title,
        registrant: d.reg.name,
        dea: d.reg.dea,
        produced: d.produced,
        rows: d.rows,
        pdf_query: pdf_query(&q),
    };
    Ok(render(&page))
}

/// The inventory's data, for the page and the PDF.
pub(crate) struct InventoryData {
    pub reg: Registrant,
    pub site: Option<SiteId>,
    /// `initial` or `biennial`.
    pub count_type: &'static str,
    pub title: &'static str,
    pub rows: Vec<InventoryRow>,
    pub produced: String,
}

pub(crate) async fn inventory(st: &AppState, user: &CurrentUser, q: &LogParams) -> UiResult<InventoryData> {
    let site = site_of(&q.site_id);
    let reg = registrant(st, user, site).await?;
    let clock = &reg.clock;
    let (count_type, key, title) = match q.count_type.as_deref() {
        Some("initial") => (CountType::Initial, "initial", "Initial inventory"),
        _ => (CountType::Biennial, "biennial", "Biennial inventory"),
    };
    let lots = st.store.list_lots(&user.actor, site, true).await?;
    let entries = st
        .store
        .list_ledger_entries(
            &user.actor,
            LedgerQuery {
                site_id: site,
                lot_id: None,
                session_id: None,
                kind: Some(EntryKind::Count),
                substance: None,
                from: None,
                to: None,
                limit: keta_domain::plausible::ranges().lists.report_limit_max,
            },
        )
        .await?;
    let mut rows: Vec<InventoryRow> = entries
        .iter()
        .rev()
        .filter(|e| e.reversed_by.is_none())
        .filter_map(|e| match &e.detail {
            EntryDetail::Count(c) if c.count_type == count_type => Some((e, c)),
            _ => None,
        })
        .map(|(e, c)| {
            let lot = lots.iter().find(|l| l.id == e.lot_id);
            let physical = e.count.map(|r| r.physical).unwrap_or_default();
            InventoryRow {
                taken: clock.datetime(e.occurred_at),
                business_time: match c.business_time {
                    Some(BusinessTime::OpeningOfBusiness) => "Opening of business",
                    Some(BusinessTime::CloseOfBusiness) => "Close of business",
                    None => "",
                },
                substance: lot.map(|l| l.product.substance.label().to_string()).unwrap_or_default(),
                product: lot.map(|l| format!("{} {}, {}", l.form, l.strength, l.container)).unwrap_or_default(),
                ndc: lot.map(|l| l.ndc.clone()).unwrap_or_default(),
                lot: lot.map_or_else(|| e.lot_id.to_string(), |l| l.lot_number.clone()),
                count: physical.show(e.unit),
                count_mg: lot.map(|l| format!("{} mg", num(l.product.mg_in(physical).0))).unwrap_or_default(),
                estimated: c.estimated,
                counted_by: e.recorded_by.name.clone(),
                witness: witnesses_line(e),
            }
        })
        .collect();
    // One line per lot: its latest inventory count of this type.
    let mut seen = std::collections::HashSet::new();
    rows.retain(|r| seen.insert((r.lot.clone(), r.ndc.clone(), r.product.clone())));
    let produced = produced_by(st, user, clock);
    Ok(InventoryData { reg, site, count_type: key, title, rows, produced })
}

#[derive(Template)]
#[template(path = "ledger/print_form106.html")]
pub(crate) struct Form106Page {
    chrome: Chrome,
    pub entry_id: i64,
    pub site_id: SiteId,
    pub registrant: String,
    pub dea: Vec<String>,
    pub loss_type: String,
    pub discovered: String,
    pub substance: String,
    pub drug_code: String,
    pub strength: String,
    pub form: String,
    pub ndc: String,
    pub lot_number: String,
    pub quantity: String,
    pub quantity_mg: String,
    pub circumstances: String,
    pub police_report: String,
    pub dea_notified: String,
    pub filed: String,
    pub investigation: String,
    pub recorded: String,
    pub reversed_by: Option<i64>,
    pub outstanding: Vec<String>,
    pub produced: String,
}

/// `GET /ledger/entries/{id}/form-106`: a loss entry as a DEA Form 106 draft, with what
/// the registrant still has to do. A draft for the online form, not a filing.
pub async fn get_form_106(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult<Response> {
    Ok(render(&form_106(&st, &user, id).await?))
}

/// The Form 106 draft's data, for the page and the PDF.
pub(crate) async fn form_106(st: &AppState, user: &CurrentUser, id: i64) -> UiResult<Form106Page> {
    let w = st.store.loss_worksheet(&user.actor, EntryId(id)).await?;
    let reg = registrant(st, user, Some(w.site_id)).await?;
    let clock = &reg.clock;
    Ok(Form106Page {
        chrome: Chrome::new(user, format!("DEA Form 106 draft: entry {id}"), Area::Ledger),
        entry_id: id,
        site_id: w.site_id,
        registrant: reg.name.clone(),
        dea: reg.dea.clone(),
        loss_type: w.loss_type_label.clone(),
        discovered: clock.datetime(w.discovered_at),
        substance: w.substance.clone(),
        drug_code: w.dea_drug_code.clone(),
        strength: w.strength.clone(),
        form: w.form.clone(),
        ndc: w.ndc.clone(),
        lot_number: w.lot_number.clone(),
        quantity: w.quantity_lost.show(w.unit),
        quantity_mg: format!(
            "{} mg{}",
            num(w.quantity_lost_mg.0),
            w.quantity_lost_devices.map(|d| format!(", {} devices", num(d))).unwrap_or_default()
        ),
        circumstances: w.circumstances.clone(),
        police_report: w.police_report.clone().unwrap_or_default(),
        dea_notified: w.dea_notified_at.map(|t| clock.datetime(t)).unwrap_or_default(),
        filed: w.form_106_filed_at.map(|t| clock.datetime(t)).unwrap_or_default(),
        investigation: w.investigation_notes.clone().unwrap_or_default(),
        recorded: format!("{} on {}", w.recorded_by.name, clock.datetime(w.recorded_at)),
        reversed_by: w.reversed_by.map(|r| r.0),
        outstanding: w.outstanding.clone(),
        produced: produced_by(st, user, clock),
    })
}
