//! The audit report and "who viewed this record" (security-reference AU-1, AU-3).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use keta_domain::ids::PatientId;
use keta_store::audit::{AuditQuery, AuditRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Json, Path, Query};

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub patient_id: Option<i64>,
    pub site_id: Option<i64>,
    /// JSON list of the field names touched (never their values).
    pub fields: String,
    pub outcome: String,
    pub row_hash: String,
    /// The request that made the entry (its `X-Request-Id`), when a request did.
    pub request_id: Option<String>,
}

impl From<AuditRecord> for AuditEntry {
    fn from(r: AuditRecord) -> Self {
        Self {
            seq: r.seq,
            occurred_at: r.occurred_at,
            actor: r.actor,
            action: r.action,
            object_type: r.object_type,
            object_id: r.object_id,
            patient_id: r.patient_id,
            site_id: r.site_id,
            fields: r.fields,
            outcome: r.outcome,
            row_hash: r.row_hash,
            request_id: r.request_id,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// User name.
    pub user: Option<String>,
    pub patient_id: Option<i64>,
    /// e.g. read, create, update, login_fail, break_glass.
    pub action: Option<String>,
    /// RFC 3339, inclusive.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// One of occurred_at, actor, action, object_type, patient_id, seq.
    #[param(pattern = "^(occurred_at|actor|action|object_type|patient_id|seq)$")]
    pub sort: Option<String>,
    /// asc (default) or desc.
    #[param(pattern = "^(asc|desc)$")]
    pub dir: Option<String>,
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
    /// json (default) or csv.
    #[param(pattern = "^(json|csv)$")]
    pub format: Option<String>,
}

fn time_param(field: &str, v: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    v.map(|s| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| {
            ApiError::bad_request(field, format!("'{s}' is not an RFC 3339 time such as 2026-11-27T00:00:00Z"))
        })
    })
    .transpose()
}

fn csv_cell(s: &str) -> String {
    // Quote every cell; neutralise spreadsheet formulas.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The audit report: filter by user, patient, action and time; sort by any column; JSON or CSV.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, description = "The entries, as JSON or (format=csv) as a spreadsheet",
        content((Vec<AuditEntry> = "application/json"), (String = "text/csv"))),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn get_audit(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<AuditParams>,
) -> ApiResult<Response> {
    let ranges = keta_domain::plausible::ranges();
    ranges.page(q.limit, None, ranges.lists.report_limit_max)?;
    let descending = match q.dir.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::bad_request("dir", "use asc or desc")),
    };
    let query = AuditQuery {
        actor: q.user,
        patient_id: q.patient_id.map(PatientId),
        action: q.action,
        from: time_param("from", q.from.as_deref())?,
        to: time_param("to", q.to.as_deref())?,
        sort: q.sort,
        descending,
        limit: q.limit.unwrap_or(500),
    };
    let rows: Vec<AuditEntry> =
        st.store.audit_report(&user.actor, query).await?.into_iter().map(AuditEntry::from).collect();
    match q.format.as_deref() {
        None | Some("json") => Ok(axum::Json(rows).into_response()),
        Some("csv") => {
            let mut out = String::from(
                "seq,occurred_at,actor,action,object_type,object_id,patient_id,site_id,fields,outcome,row_hash\n",
            );
            for r in rows {
                let cells = [
                    r.seq.to_string(),
                    r.occurred_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                    r.actor,
                    r.action,
                    r.object_type,
                    r.object_id.unwrap_or_default(),
                    r.patient_id.map(|v| v.to_string()).unwrap_or_default(),
                    r.site_id.map(|v| v.to_string()).unwrap_or_default(),
                    r.fields,
                    r.outcome,
                    r.row_hash,
                ];
                out.push_str(&cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
                out.push('\n');
            }
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (header::CONTENT_DISPOSITION, "attachment; filename=\"keta-audit.csv\""),
                ],
                out,
            )
                .into_response())
        }
        Some(_) => Err(ApiError::bad_request("format", "use json or csv")),
    }
}

/// Who viewed or changed this patient's record, newest first.
#[utoipa::path(get, path = "/api/v1/patients/{id}/access-log", tag = "audit", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<AuditEntry>), (status = 403, body = Problem)))]
pub async fn get_access_log(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let q = AuditQuery { patient_id: Some(PatientId(id)), descending: true, limit: 1000, ..Default::default() };
    Ok(Json(st.store.audit_report(&user.actor, q).await?.into_iter().map(AuditEntry::from).collect()))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ChainStatus {
    pub entries_verified: u64,
    pub intact: bool,
    /// The first entry that does not verify.
    pub first_bad_seq: Option<i64>,
    pub reason: Option<String>,
}

/// Re-verifies the audit hash chain from the start.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", responses((status = 200, body = ChainStatus), (status = 403, body = Problem)))]
pub async fn get_audit_verify(State(st): State<AppState>, user: CurrentUser) -> ApiResult<Json<ChainStatus>> {
    user.actor.require(keta_domain::access::Permission::ViewAudit)?;
    let (n, broken) = st.store.verify_audit_chain().await?;
    Ok(Json(ChainStatus {
        entries_verified: n,
        intact: broken.is_none(),
        first_bad_seq: broken.as_ref().map(|b| b.seq),
        reason: broken.map(|b| b.reason),
    }))
}
