//! The controlled-substance ledger (security-reference §2.4, §3) over JSON.
//!
//! Entries are append-only: there is no PUT or DELETE. A mistake is corrected by
//! posting the right entry with `"corrects": {"entry_id", "reason"}` (the original is
//! reversed and stays), or voided with `POST /ledger/entries/{id}/reversal`.
//!
//! Every entry needs the caller to have re-entered their password recently
//! (`POST /api/v1/auth/reauth`); otherwise 403. Witnessed entries (receipt check,
//! waste, disposal, adjustment, reversal, optionally a count) wrap the entry as
//! `{"entry": {...}, "witness_username": ..., "witness_password": ...}`: the witness
//! enters their own credentials on the same screen.

use axum::extract::State;
use axum::http::StatusCode;
use keta_domain::ids::{SessionId, SiteId};
use keta_domain::ledger::{
    EntryId, EntryKind, LedgerAlert, LedgerEntry, LedgerVerification, LossWorksheet, Lot, LotId, NewAdjustment,
    NewAdministration, NewCount, NewDisposal, NewLoss, NewReceipt, NewWaste, ReconciliationReport, RecordedEntry,
    Reversal, Substance,
};
use keta_store::ledger::{LedgerQuery, Witness};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Path, Query};

const WHAT: &str = "record a controlled-substance entry";

/// Refuses early (before any witness's password is checked) when the caller has not
/// re-entered their password recently; the store checks again.
fn fresh(st: &AppState, user: &CurrentUser) -> ApiResult<()> {
    st.store.require_reauthentication(WHAT, user.reauthenticated_at)?;
    Ok(())
}

async fn witness(st: &AppState, field: &str, username: &str, password: &str) -> ApiResult<Witness> {
    if username.trim().is_empty() || password.is_empty() {
        return Err(ApiError::invalid(vec![keta_domain::FieldError::new(
            field,
            "the witness enters their own user name and password",
        )]));
    }
    let (actor, reauthenticated_at) = crate::auth::witness(st, username, password).await?;
    Ok(Witness { actor, reauthenticated_at })
}

type Recorded = ApiResult<(StatusCode, Json<RecordedEntry>)>;

fn created(r: RecordedEntry) -> Recorded {
    Ok((StatusCode::CREATED, Json(r)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    pub entry: NewReceipt,
    /// The person who checked the delivery against the invoice.
    pub witness_username: String,
    pub witness_password: String,
}

/// Records a delivery from a supplier (one invoice line), creating a stock lot. A second
/// person checks it. 422 without the supplier's DEA number or a quantity.
#[utoipa::path(post, path = "/api/v1/ledger/receipts", tag = "ledger", request_body = ReceiptRequest,
    responses((status = 201, body = RecordedEntry), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_receipt(State(st): State<AppState>, user: CurrentUser, Json(r): Json<ReceiptRequest>) -> Recorded {
    fresh(&st, &user)?;
    let w = witness(&st, "witness_username", &r.witness_username, &r.witness_password).await?;
    created(st.store.record_receipt(&user.actor, user.reauthenticated_at, r.entry, w).await?)
}

/// Records a dose given in a treatment session by the caller. The dose in mg must match
/// the volume (vials) or the devices opened (nasal spray). 409 if the lot does not hold it.
#[utoipa::path(post, path = "/api/v1/ledger/administrations", tag = "ledger", request_body = NewAdministration,
    responses((status = 201, body = RecordedEntry), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_administration(
    State(st): State<AppState>,
    user: CurrentUser,
    Json(new): Json<NewAdministration>,
) -> Recorded {
    fresh(&st, &user)?;
    created(st.store.record_administration(&user.actor, user.reauthenticated_at, new).await?)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WasteRequest {
    pub entry: NewWaste,
    /// Someone other than the recorder and the clinician who gave the dose.
    pub witness_username: String,
    pub witness_password: String,
}

/// Records what was left after a dose, destroyed in front of a witness. 422 when the
/// witness is the recorder or the administering clinician.
#[utoipa::path(post, path = "/api/v1/ledger/waste", tag = "ledger", request_body = WasteRequest,
    responses((status = 201, body = RecordedEntry), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_waste(State(st): State<AppState>, user: CurrentUser, Json(r): Json<WasteRequest>) -> Recorded {
    fresh(&st, &user)?;
    let w = witness(&st, "witness_username", &r.witness_username, &r.witness_password).await?;
    created(st.store.record_waste(&user.actor, user.reauthenticated_at, r.entry, w).await?)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisposalRequest {
    pub entry: NewDisposal,
    pub witness_username: String,
    pub witness_password: String,
    /// The second witness: a different person from the first.
    pub second_witness_username: String,
    pub second_witness_password: String,
}

/// Records the destruction of inventory (DEA Form 41 fields) before two witnesses.
#[utoipa::path(post, path = "/api/v1/ledger/disposals", tag = "ledger", request_body = DisposalRequest,
    responses((status = 201, body = RecordedEntry), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_disposal(State(st): State<AppState>, user: CurrentUser, Json(r): Json<DisposalRequest>) -> Recorded {
    fresh(&st, &user)?;
    let first = witness(&st, "witness_username", &r.witness_username, &r.witness_password).await?;
    let second =
        witness(&st, "second_witness_username", &r.second_witness_username, &r.second_witness_password).await?;
    created(st.store.record_disposal(&user.actor, user.reauthenticated_at, r.entry, vec![first, second]).await?)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    pub entry: NewCount,
    /// A second counter, if one counted too.
    #[serde(default)]
    pub witness_username: Option<String>,
    #[serde(default)]
    pub witness_password: Option<String>,
}

/// Records a physical count. A count that differs from the ledger needs a reason and
/// raises a ledger alert.
#[utoipa::path(post, path = "/api/v1/ledger/counts", tag = "ledger", request_body = CountRequest,
    responses((status = 201, body = RecordedEntry), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn post_count(State(st): State<AppState>, user: CurrentUser, Json(r): Json<CountRequest>) -> Recorded {
    fresh(&st, &user)?;
    let w = match (&r.witness_username, &r.witness_password) {
        (None, None) => None,
        (u, p) => Some(witness(&st, "witness_username", u.as_deref().unwrap_or(""), p.as_deref().unwrap_or("")).await?),
    };
    created(st.store.record_count(&user.actor, user.reauthenticated_at, r.entry, w).await?)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    pub entry: NewAdjustment,
    pub witness_username: String,
    pub witness_password: String,
}

/// Records a witnessed adjustment of the book (e.g. vial overfill found at a count).
#[utoipa::path(post, path = "/api/v1/ledger/adjustments", tag = "ledger", request_body = AdjustmentRequest,
    responses((status = 201, body = RecordedEntry), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_adjustment(
    State(st): State<AppState>,
    user: CurrentUser,
    Json(r): Json<AdjustmentRequest>,
) -> Recorded {
    fresh(&st, &user)?;
    let w = witness(&st, "witness_username", &r.witness_username, &r.witness_password).await?;
    created(st.store.record_adjustment(&user.actor, user.reauthenticated_at, r.entry, w).await?)
}

/// Records a theft or significant loss; see `GET /ledger/entries/{id}/form-106` for the worksheet.
#[utoipa::path(post, path = "/api/v1/ledger/losses", tag = "ledger", request_body = NewLoss,
    responses((status = 201, body = RecordedEntry), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_loss(State(st): State<AppState>, user: CurrentUser, Json(new): Json<NewLoss>) -> Recorded {
    fresh(&st, &user)?;
    created(st.store.record_loss(&user.actor, user.reauthenticated_at, new).await?)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalRequest {
    /// Why the entry is void.
    pub reason: String,
    pub witness_username: String,
    pub witness_password: String,
}

/// Voids an entry with a witnessed reversal. The entry stays in the ledger, marked
/// `reversed_by`. 409 if already reversed or if stock would go below zero.
#[utoipa::path(post, path = "/api/v1/ledger/entries/{id}/reversal", tag = "ledger", params(("id" = i64, Path)), request_body = ReversalRequest,
    responses((status = 201, body = RecordedEntry), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_reversal(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Json(r): Json<ReversalRequest>,
) -> Recorded {
    fresh(&st, &user)?;
    let w = witness(&st, "witness_username", &r.witness_username, &r.witness_password).await?;
    created(
        st.store
            .reverse_ledger_entry(&user.actor, user.reauthenticated_at, EntryId(id), Reversal { reason: r.reason }, w)
            .await?,
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LotParams {
    pub site_id: Option<i64>,
    /// Include lots with nothing left (default false).
    #[serde(default)]
    pub include_empty: bool,
}

/// Stock lots with their on-hand by the ledger.
#[utoipa::path(get, path = "/api/v1/ledger/lots", tag = "ledger", params(LotParams),
    responses((status = 200, body = Vec<Lot>), (status = 404, body = Problem)))]
pub async fn get_lots(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<LotParams>,
) -> ApiResult<Json<Vec<Lot>>> {
    Ok(Json(st.store.list_lots(&user.actor, q.site_id.map(SiteId), q.include_empty).await?))
}

#[utoipa::path(get, path = "/api/v1/ledger/lots/{id}", tag = "ledger", params(("id" = i64, Path)),
    responses((status = 200, body = Lot), (status = 404, body = Problem)))]
pub async fn get_lot(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> ApiResult<Json<Lot>> {
    Ok(Json(st.store.get_lot(&user.actor, LotId(id)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EntryParams {
    pub site_id: Option<i64>,
    pub lot_id: Option<i64>,
    pub session_id: Option<i64>,
    pub kind: Option<EntryKind>,
    pub substance: Option<Substance>,
    /// Entries that occurred at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Entries that occurred before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// At most this many (default 1000, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

fn parse_time(field: &str, s: &Option<String>) -> ApiResult<Option<OffsetDateTime>> {
    s.as_deref()
        .map(|s| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| {
                ApiError::bad_request(field, format!("'{s}' is not an RFC 3339 time such as 2026-11-27T09:00:00Z"))
            })
        })
        .transpose()
}

/// Ledger entries, oldest first, by site, lot, session, kind, substance and date range
/// (printable per substance and date range, CS-7).
#[utoipa::path(get, path = "/api/v1/ledger/entries", tag = "ledger", params(EntryParams),
    responses((status = 200, body = Vec<LedgerEntry>), (status = 400, body = Problem)))]
pub async fn get_entries(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<EntryParams>,
) -> ApiResult<Json<Vec<LedgerEntry>>> {
    let ranges = keta_domain::plausible::ranges();
    ranges.page(q.limit, None, ranges.lists.report_limit_max)?;
    let query = LedgerQuery {
        site_id: q.site_id.map(SiteId),
        lot_id: q.lot_id.map(LotId),
        session_id: q.session_id.map(SessionId),
        kind: q.kind,
        substance: q.substance,
        from: parse_time("from", &q.from)?,
        to: parse_time("to", &q.to)?,
        limit: q.limit.unwrap_or(1000),
    };
    Ok(Json(st.store.list_ledger_entries(&user.actor, query).await?))
}

#[utoipa::path(get, path = "/api/v1/ledger/entries/{id}", tag = "ledger", params(("id" = i64, Path)),
    responses((status = 200, body = LedgerEntry), (status = 404, body = Problem)))]
pub async fn get_entry(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<LedgerEntry>> {
    Ok(Json(st.store.get_ledger_entry(&user.actor, EntryId(id)).await?))
}

/// A loss entry as a DEA Form 106 worksheet, with what is still outstanding.
#[utoipa::path(get, path = "/api/v1/ledger/entries/{id}/form-106", tag = "ledger", params(("id" = i64, Path)),
    responses((status = 200, body = LossWorksheet), (status = 404, body = Problem)))]
pub async fn get_form_106(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<LossWorksheet>> {
    Ok(Json(st.store.loss_worksheet(&user.actor, EntryId(id)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationParams {
    pub site_id: Option<i64>,
    /// The ledger as it stood at this time (RFC 3339); default now.
    #[param(format = DateTime)]
    pub as_of: Option<String>,
}

/// On-hand against expected per lot: the book, the last count, every discrepancy, and
/// flags for anything unexplained or expired.
#[utoipa::path(get, path = "/api/v1/ledger/reconciliation", tag = "ledger", params(ReconciliationParams),
    responses((status = 200, body = ReconciliationReport), (status = 400, body = Problem)))]
pub async fn get_reconciliation(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ReconciliationParams>,
) -> ApiResult<Json<ReconciliationReport>> {
    let as_of = parse_time("as_of", &q.as_of)?;
    Ok(Json(st.store.ledger_reconciliation(&user.actor, q.site_id.map(SiteId), as_of).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    pub site_id: Option<i64>,
}

/// Count discrepancies, newest first; `open` until explained or superseded by a matching count.
#[utoipa::path(get, path = "/api/v1/ledger/alerts", tag = "ledger", params(AlertParams),
    responses((status = 200, body = Vec<LedgerAlert>)))]
pub async fn get_ledger_alerts(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<AlertParams>,
) -> ApiResult<Json<Vec<LedgerAlert>>> {
    Ok(Json(st.store.ledger_alerts(&user.actor, q.site_id.map(SiteId)).await?))
}

/// Re-checks every entry's SHA-256, the hash chain and each lot's running on-hand.
#[utoipa::path(get, path = "/api/v1/ledger/verify", tag = "ledger", responses((status = 200, body = LedgerVerification)))]
pub async fn get_ledger_verify(State(st): State<AppState>, user: CurrentUser) -> ApiResult<Json<LedgerVerification>> {
    Ok(Json(st.store.verify_ledger(&user.actor).await?))
}
