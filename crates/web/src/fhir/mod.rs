//! FHIR R4 (4.0.1) read and search under `/fhir/R4`: a view over the same store operations,
//! accounts, roles, site scoping and read audit as the rest of Keta.
//!
//! * `GET /fhir/R4/metadata`: the CapabilityStatement (public, as FHIR clients expect).
//! * `GET /fhir/R4/{type}/{id}` and `GET /fhir/R4/{type}?...`: a resource, or a `searchset`
//!   Bundle with `total`, `self` and `next` links (`_count`, `_offset`).
//! * Errors are `OperationOutcome`s; every body is `application/fhir+json`.
//! * Search parameters Keta does not support are refused (400) rather than silently ignored,
//!   so a client never mistakes an unfiltered result for a filtered one.

pub mod binary;
pub mod bulk;
pub mod codes;
pub mod oauth;
pub mod resources;

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keta_domain::fhir_search::{self, DateFilter};
use keta_domain::ids::PatientId;
use keta_store::fhir::{DocumentKind, ObservationFilter, ObservationSource, Search};
use keta_store::{Actor, StoreError};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{AuthRejection, CurrentUser};

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
/// `_count` when the client sends none, and the most one page holds.
pub const DEFAULT_COUNT: u32 = 50;
pub const MAX_COUNT: u32 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metadata", get(get_metadata))
        .route("/.well-known/smart-configuration", get(oauth::get_smart_configuration))
        .route("/auth/token", axum::routing::post(oauth::post_token))
        .route("/$export", get(bulk::get_export_system))
        .route("/Patient/$export", get(bulk::get_export_patients))
        .route("/Group/{id}/$export", get(bulk::get_export_group))
        .route("/$export-status/{job}", get(bulk::get_export_status).delete(bulk::delete_export))
        .route("/$export-file/{job}/{file}", get(bulk::get_export_file))
        .route("/Binary/{id}", get(binary::read_binary))
        .route("/{resource_type}", get(search_resources))
        .route("/{resource_type}/{id}", get(read_resource))
}

/// An error as an OperationOutcome.
#[derive(Debug)]
pub struct FhirError {
    pub status: StatusCode,
    /// The issue type (`invalid`, `not-found`, `forbidden`, `login`, `not-supported`, ...).
    pub code: &'static str,
    pub diagnostics: String,
}

impl FhirError {
    pub(crate) fn forbidden(msg: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, code: "forbidden", diagnostics: msg.into() }
    }
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "invalid", diagnostics: msg.into() }
    }
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: "not-found", diagnostics: format!("{} not found", what.into()) }
    }
}

pub fn operation_outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": severity, "code": code, "diagnostics": diagnostics }],
    })
}

pub(crate) fn fhir_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response()
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let mut res = fhir_response(self.status, &operation_outcome("error", self.code, &self.diagnostics));
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(keta_store::BUSY_RETRY_AFTER_SECS));
        }
        res
    }
}

impl From<StoreError> for FhirError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Forbidden(m) => Self { status: StatusCode::FORBIDDEN, code: "forbidden", diagnostics: m },
            StoreError::Domain(d) => Self::invalid(d.to_string()),
            StoreError::Busy { .. } | StoreError::DiskFull => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "transient",
                diagnostics: "the database is busy; try again shortly".into(),
            },
            other => {
                tracing::error!(error = %other, "FHIR request failed");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "exception",
                    diagnostics: "an internal error occurred".into(),
                }
            }
        }
    }
}

/// Which resource types a caller may read: all of them (staff, a client's own credential), or
/// those an access token's scopes name (`system/Observation.read`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadScope {
    All,
    Types(Vec<String>),
}

impl ReadScope {
    pub fn allows(&self, resource_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Types(t) => t.iter().any(|x| x == resource_type),
        }
    }

    /// A stored scope: a client's own `fhir.read`, or an access token's granted scopes.
    fn from_stored(scope: &str) -> Self {
        oauth::parse_scope(scope).unwrap_or(Self::Types(vec![]))
    }

    /// Refuses a type outside the scope.
    pub fn require(&self, resource_type: &str) -> Result<(), FhirError> {
        if self.allows(resource_type) {
            Ok(())
        } else {
            Err(FhirError::forbidden(format!(
                "the access token's scope does not include {resource_type}: ask for system/{resource_type}.read"
            )))
        }
    }
}

/// Who is calling: an API client (`Authorization: Bearer keta_fhir_...`, or an access token
/// from `POST /fhir/R4/auth/token`; read-only, its sites only) or a signed-in staff member
/// (session cookie), and which types it may read.
pub struct Caller(pub Actor, pub ReadScope);

impl FromRequestParts<AppState> for Caller {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
            let token = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .map(str::trim)
                .unwrap_or_default();
            return match st.store.resolve_api_token(token).await? {
                Some((actor, scope)) => Ok(Caller(actor, ReadScope::from_stored(&scope))),
                None => Err(FhirError {
                    status: StatusCode::UNAUTHORIZED,
                    code: "login",
                    diagnostics: "the bearer token is unknown or revoked; an administrator issues API client tokens under Administration".into(),
                }),
            };
        }
        match CurrentUser::from_request_parts(parts, st).await {
            Ok(u) => Ok(Caller(u.actor, ReadScope::All)),
            Err(AuthRejection::Api(e)) if e.status == StatusCode::FORBIDDEN => {
                Err(FhirError { status: StatusCode::FORBIDDEN, code: "forbidden", diagnostics: e.detail })
            }
            Err(AuthRejection::Api(e)) if e.status != StatusCode::UNAUTHORIZED => {
                Err(FhirError { status: e.status, code: "exception", diagnostics: e.detail })
            }
            Err(AuthRejection::Kiosk { .. }) => Err(FhirError {
                status: StatusCode::FORBIDDEN,
                code: "forbidden",
                diagnostics: "this session is showing a patient's kiosk".into(),
            }),
            Err(_) => Err(FhirError {
                status: StatusCode::UNAUTHORIZED,
                code: "login",
                diagnostics: "sign in first (POST /api/v1/auth/login) and send the session cookie".into(),
            }),
        }
    }
}

/// The resource types served, each with its search parameters beyond the common ones.
pub(crate) const TYPES: &[(&str, &[(&str, &str)])] = &[
    ("Patient", &[]),
    ("Practitioner", &[]),
    ("Organization", &[]),
    ("Location", &[]),
    ("Condition", &[("patient", "reference"), ("subject", "reference"), ("code", "token")]),
    ("Encounter", &[("patient", "reference"), ("subject", "reference"), ("date", "date")]),
    (
        "Observation",
        &[
            ("patient", "reference"),
            ("subject", "reference"),
            ("date", "date"),
            ("code", "token"),
            ("category", "token"),
        ],
    ),
    ("QuestionnaireResponse", &[("patient", "reference"), ("subject", "reference"), ("authored", "date")]),
    ("MedicationAdministration", &[("patient", "reference"), ("subject", "reference"), ("effective-time", "date")]),
    ("MedicationStatement", &[("patient", "reference"), ("subject", "reference")]),
    ("AdverseEvent", &[("subject", "reference"), ("patient", "reference"), ("date", "date")]),
    ("Consent", &[("patient", "reference"), ("date", "date")]),
    ("DocumentReference", &[("patient", "reference"), ("subject", "reference"), ("date", "date"), ("type", "token")]),
];

/// Parameters every type accepts.
const COMMON: &[(&str, &str)] =
    &[("_id", "token"), ("_lastUpdated", "date"), ("_count", "number"), ("_offset", "number"), ("_sort", "special")];

fn type_params(t: &str) -> Option<&'static [(&'static str, &'static str)]> {
    TYPES.iter().find(|(n, _)| *n == t).map(|(_, p)| *p)
}

async fn get_metadata(State(st): State<AppState>) -> Response {
    let resources: Vec<Value> = TYPES
        .iter()
        .map(|(t, params)| {
            let mut sp: Vec<Value> =
                COMMON.iter().chain(params.iter()).map(|(n, ty)| json!({ "name": n, "type": ty })).collect();
            sp.dedup();
            let mut r = json!({
                "type": t,
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": sp,
            });
            if params.iter().any(|(n, _)| *n == "patient" || *n == "subject") {
                r["searchInclude"] = json!([format!("{t}:patient"), format!("{t}:subject")]);
            }
            r
        })
        .chain(std::iter::once(json!({
            "type": "Binary",
            "interaction": [{ "code": "read" }],
            "documentation": "The PDF of a DocumentReference (same id): the PDF itself, or a Binary resource when only application/fhir+json is accepted.",
        })))
        .collect();
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-07",
        "publisher": "Keta",
        "kind": "instance",
        "software": { "name": "Keta", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "Keta FHIR R4 read and search", "url": format!("{}/fhir/R4", st.reminders.public_url) },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read-only. Sign in as staff (session cookie), or as an API client with its bearer token or an access token from the token endpoint (OAuth2 client credentials); results are limited to the caller's sites and every patient read is audited. Bulk Data export ($export, system, Patient and Group level; a Group is a site).",
            "security": {
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{ "url": "token", "valueUri": oauth::token_url(&st) }],
                }],
                "service": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR" }] }],
                "description": "OAuth2 client credentials (client_secret_basic or client_secret_post) at the token endpoint; scopes system/*.read or narrower. See .well-known/smart-configuration.",
            },
            "resource": resources,
            "operation": [
                { "name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export" },
            ],
        }],
    });
    fhir_response(StatusCode::OK, &body)
}

/// A search, parsed and checked.
struct Parsed {
    search: Search,
    codes: Vec<String>,
    categories: Vec<String>,
    include_patient: bool,
}

fn parse_patient_ref(v: &str) -> Result<PatientId, FhirError> {
    let id = v.strip_prefix("Patient/").unwrap_or(v);
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(PatientId)
        .ok_or_else(|| FhirError::invalid(format!("patient '{v}' is not a patient reference such as Patient/12 or 12")))
}

fn parse_search(rtype: &str, pairs: &[(String, String)]) -> Result<Parsed, FhirError> {
    let own = type_params(rtype).unwrap_or(&[]);
    let mut p = Parsed {
        search: Search { count: DEFAULT_COUNT, ..Search::default() },
        codes: vec![],
        categories: vec![],
        include_patient: false,
    };
    let mut unknown = BTreeSet::new();
    for (k, v) in pairs {
        let allowed = COMMON.iter().chain(own.iter()).find(|(n, _)| n == k).map(|(_, t)| *t);
        match (k.as_str(), allowed) {
            ("_format" | "_pretty", _) => {}
            ("_include", _) if own.iter().any(|(n, _)| *n == "patient" || *n == "subject") => {
                if v == &format!("{rtype}:patient") || v == &format!("{rtype}:subject") {
                    p.include_patient = true;
                } else {
                    return Err(FhirError::invalid(format!(
                        "_include '{v}' is not supported here: use {rtype}:patient"
                    )));
                }
            }
            (_, None) => {
                unknown.insert(k.clone());
            }
            ("_count", _) => {
                p.search.count =
                    fhir_search::parse_count(Some(v.as_str()), DEFAULT_COUNT, MAX_COUNT).map_err(FhirError::invalid)?
            }
            ("_offset", _) => {
                p.search.offset = v.parse::<u32>().map_err(|_| {
                    FhirError::invalid(format!("_offset '{v}' is not a whole number (follow the Bundle's next link)"))
                })?
            }
            ("_sort", _) => match v.as_str() {
                "date" | "_lastUpdated" => p.search.newest_first = false,
                "-date" | "-_lastUpdated" => p.search.newest_first = true,
                other => {
                    return Err(FhirError::invalid(format!("_sort '{other}' is not supported: use date or -date")));
                }
            },
            ("_id", _) => {
                p.search.id = Some(
                    parse_id(rtype, v)?
                        .ok_or_else(|| FhirError::invalid(format!("_id '{v}' is not an id of a {rtype}")))?,
                )
            }
            ("patient" | "subject", _) => {
                let id = parse_patient_ref(v)?;
                if p.search.patient.is_some_and(|q| q != id) {
                    return Err(FhirError::invalid("give one patient per search"));
                }
                p.search.patient = Some(id);
            }
            ("_lastUpdated", _) => p.search.last_updated.push(date(k, v)?),
            (_, Some("date")) => p.search.date.push(date(k, v)?),
            ("code" | "type", _) => p.codes.extend(v.split(',').map(str::to_string)),
            ("category", _) => p.categories.extend(v.split(',').map(str::to_string)),
            _ => {
                unknown.insert(k.clone());
            }
        }
    }
    if !unknown.is_empty() {
        let supported: Vec<&str> = COMMON.iter().chain(own.iter()).map(|(n, _)| *n).collect();
        return Err(FhirError {
            status: StatusCode::BAD_REQUEST,
            code: "not-supported",
            diagnostics: format!(
                "search parameter(s) {} not supported for {rtype}; supported: {}",
                unknown.into_iter().collect::<Vec<_>>().join(", "),
                supported.join(", ")
            ),
        });
    }
    Ok(p)
}

fn date(name: &str, v: &str) -> Result<DateFilter, FhirError> {
    if v.contains(',') {
        return Err(FhirError::invalid(format!(
            "{name}: give one date per parameter (repeat the parameter to combine)"
        )));
    }
    fhir_search::parse_date_param(v).map_err(|e| FhirError::invalid(format!("{name}: {e}")))
}

/// The record id inside a resource id, for the types whose ids are plain numbers; `None`
/// for an id that cannot exist.
fn parse_id(rtype: &str, id: &str) -> Result<Option<i64>, FhirError> {
    let tail = match rtype {
        "Observation" | "DocumentReference" => id.split_once('-').map(|(_, n)| n).unwrap_or(""),
        "Location" => id.split_once('-').map(|(_, n)| n).unwrap_or(""),
        "Condition" => id.split_once('-').map(|(p, _)| p).unwrap_or(""),
        _ => id,
    };
    Ok(tail.parse::<i64>().ok().filter(|n| *n > 0))
}

/// Whether a token search value (`code`, `system|code`, or `|code`) names this coding.
fn token_matches(token: &str, system: &str, code: &str) -> bool {
    match token.split_once('|') {
        Some((sys, c)) => (sys.is_empty() || sys == system) && c == code,
        None => token == code,
    }
}

/// Observation `code` and `category` tokens -> which sources and instruments to read.
fn observation_filter(p: &Parsed) -> Result<ObservationFilter, FhirError> {
    let c = codes::codes();
    let vs = &c.vital_signs;
    let mut sources: Vec<ObservationSource> = ObservationSource::ALL.to_vec();
    let mut instruments: Option<Vec<String>> = None;
    if !p.categories.is_empty() {
        let mut keep = Vec::new();
        for cat in &p.categories {
            let code = cat.rsplit('|').next().unwrap_or(cat);
            match code {
                "vital-signs" => keep.extend([
                    ObservationSource::BloodPressure,
                    ObservationSource::HeartRate,
                    ObservationSource::OxygenSaturation,
                    ObservationSource::RespiratoryRate,
                ]),
                x if x == c.score.category => keep.push(ObservationSource::Score),
                x if x == c.moaas.category => keep.push(ObservationSource::Moaas),
                _ => {}
            }
        }
        sources.retain(|s| keep.contains(s));
    }
    if !p.codes.is_empty() {
        let mut keep = Vec::new();
        let mut insts = Vec::new();
        for token in &p.codes {
            for (src, want) in [
                (ObservationSource::BloodPressure, vs.blood_pressure.code.as_str()),
                (ObservationSource::HeartRate, vs.heart_rate.code.as_str()),
                (ObservationSource::OxygenSaturation, vs.oxygen_saturation.code.as_str()),
                (ObservationSource::RespiratoryRate, vs.respiratory_rate.code.as_str()),
            ] {
                if token_matches(token, codes::LOINC, want) {
                    keep.push(src);
                }
            }
            if token_matches(token, &c.local_observation_system, &c.moaas.code) {
                keep.push(ObservationSource::Moaas);
            }
            for inst in keta_domain::instruments::catalog().all() {
                let (sys, want, _) = codes::score_code(&inst.code);
                if token_matches(token, &sys, &want) {
                    keep.push(ObservationSource::Score);
                    insts.push(inst.code.clone());
                }
            }
        }
        sources.retain(|s| keep.contains(s));
        instruments = Some(insts);
    }
    Ok(ObservationFilter { sources, instruments, only: None })
}

/// DocumentReference `type` tokens (and a read's id prefix) -> which documents to read.
fn document_kinds(p: &Parsed, only_id: Option<&str>) -> Vec<DocumentKind> {
    let docs = &codes::codes().documents;
    DocumentKind::ALL
        .into_iter()
        .filter(|k| only_id.is_none_or(|id| DocumentKind::parse_id(id).is_some_and(|(want, _)| want == *k)))
        .filter(|k| {
            let c = docs.of(*k);
            p.codes.is_empty() || p.codes.iter().any(|t| token_matches(t, &c.system, &c.code))
        })
        .collect()
}

/// The searchset's `self` and (when there are more) `next` links.
fn links(st: &AppState, rtype: &str, pairs: &[(String, String)], p: &Parsed, total: i64) -> Vec<Value> {
    let base = format!("{}/fhir/R4", st.reminders.public_url);
    let query = |offset: Option<u32>| {
        let mut q: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| offset.is_none() || k != "_offset")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        if let Some(o) = offset {
            q.push(format!("_offset={o}"));
        }
        if q.is_empty() { format!("{base}/{rtype}") } else { format!("{base}/{rtype}?{}", q.join("&")) }
    };
    let mut links = vec![json!({ "relation": "self", "url": query(None) })];
    let next = u64::from(p.search.offset) + u64::from(p.search.count);
    if p.search.count > 0 && (next as i64) < total {
        links.push(json!({ "relation": "next", "url": query(Some(next as u32)) }));
    }
    links
}

fn bundle(
    st: &AppState,
    rtype: &str,
    pairs: &[(String, String)],
    p: &Parsed,
    total: i64,
    entries: Vec<Value>,
    included: Vec<Value>,
) -> Value {
    let base = format!("{}/fhir/R4", st.reminders.public_url);
    let links = links(st, rtype, pairs, p, total);
    let entry: Vec<Value> = entries
        .into_iter()
        .map(|r| (r, "match"))
        .chain(included.into_iter().map(|r| (r, "include")))
        .map(|(r, mode)| {
            json!({
                "fullUrl": format!("{base}/{}/{}", r["resourceType"].as_str().unwrap_or_default(), r["id"].as_str().unwrap_or_default()),
                "resource": r,
                "search": { "mode": mode },
            })
        })
        .collect();
    let mut b = json!({ "resourceType": "Bundle", "type": "searchset", "total": total, "link": links });
    if !entry.is_empty() {
        b["entry"] = Value::Array(entry);
    }
    b
}

/// A resource already serialised, for [`bundle_bytes`].
struct Written {
    rtype: &'static str,
    id: String,
    json: Vec<u8>,
}

/// The same bytes as `bundle(...).to_string()`, with the matches already serialised (an
/// Observation page is written without building a `Value` per resource; see
/// `resources::write_observation`). Keys in the order `Value` writes them.
fn bundle_bytes(
    st: &AppState,
    rtype: &str,
    pairs: &[(String, String)],
    p: &Parsed,
    total: i64,
    entries: Vec<Written>,
    included: Vec<Value>,
) -> Vec<u8> {
    let base = format!("{}/fhir/R4", st.reminders.public_url);
    let links = links(st, rtype, pairs, p, total);
    let size: usize = entries.iter().map(|e| e.json.len() + base.len() + e.id.len() + 80).sum();
    let mut out = Vec::with_capacity(size + 512);
    let string = |out: &mut Vec<u8>, s: &str| serde_json::to_writer(out, s).expect("a string always serialises");
    let mut first = true;
    let mut entry = |out: &mut Vec<u8>, rtype: &str, id: &str, json: &[u8], mode: &str| {
        out.extend_from_slice(if first { &b"{\"entry\":["[..] } else { &b","[..] });
        first = false;
        out.extend_from_slice(b"{\"fullUrl\":");
        string(out, &format!("{base}/{rtype}/{id}"));
        out.extend_from_slice(b",\"resource\":");
        out.extend_from_slice(json);
        out.extend_from_slice(b",\"search\":{\"mode\":");
        string(out, mode);
        out.extend_from_slice(b"}}");
    };
    for e in &entries {
        entry(&mut out, e.rtype, &e.id, &e.json, "match");
    }
    for r in &included {
        let json = serde_json::to_vec(r).expect("a Value always serialises");
        entry(
            &mut out,
            r["resourceType"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default(),
            &json,
            "include",
        );
    }
    let any = !first;
    out.extend_from_slice(if any { &b"],\"link\":"[..] } else { &b"{\"link\":"[..] });
    serde_json::to_writer(&mut out, &links).expect("links always serialise");
    out.extend_from_slice(b",\"resourceType\":\"Bundle\",\"total\":");
    out.extend_from_slice(total.to_string().as_bytes());
    out.extend_from_slice(b",\"type\":\"searchset\"}");
    out
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs a parsed search; returns the matching resources, the total and the patients to include.
async fn run(
    st: &AppState,
    actor: &Actor,
    rtype: &str,
    p: &Parsed,
    only_id: Option<&str>,
) -> Result<(Vec<Value>, i64, Vec<PatientId>), FhirError> {
    let store = &st.store;
    let q = p.search.clone();
    macro_rules! simple {
        ($call:expr, $map:expr) => {{
            let page = $call.await?;
            let pats = page.items.iter().map(|x| x.patient_id).collect();
            (page.items.iter().map($map).collect(), page.total, pats)
        }};
    }
    let out = match rtype {
        "Patient" => {
            let page = store.fhir_patients(actor, q).await?;
            (page.items.iter().map(resources::patient).collect(), page.total, vec![])
        }
        "Observation" => {
            let mut filter = observation_filter(p)?;
            if let Some(id) = only_id {
                filter.only = id.split_once('-').and_then(|(k, _)| ObservationSource::parse(k));
                if filter.only.is_none() {
                    return Ok((vec![], 0, vec![]));
                }
            }
            simple!(store.fhir_observations(actor, q, filter), resources::observation)
        }
        "Encounter" => simple!(store.fhir_encounters(actor, q), resources::encounter),
        "QuestionnaireResponse" => {
            simple!(store.fhir_questionnaire_responses(actor, q), resources::questionnaire_response)
        }
        "MedicationAdministration" => {
            simple!(store.fhir_administrations(actor, q), resources::medication_administration)
        }
        "MedicationStatement" => simple!(store.fhir_trials(actor, q), resources::medication_statement),
        "AdverseEvent" => simple!(store.fhir_adverse_events(actor, q), resources::adverse_event),
        "Consent" => simple!(store.fhir_consents(actor, q), resources::consent),
        "DocumentReference" => {
            let kinds = document_kinds(p, only_id);
            let base = format!("{}/fhir/R4", st.reminders.public_url);
            simple!(store.fhir_documents(actor, q, kinds), |d| resources::document_reference(d, &base))
        }
        "Condition" => {
            let one = only_id.and_then(|id| id.split_once('-')).map(|(_, i)| i.parse::<usize>().unwrap_or(usize::MAX));
            let mut page = store.fhir_conditions(actor, q, one).await?;
            if !p.codes.is_empty() {
                page.items.retain(|c| p.codes.iter().any(|t| t.rsplit('|').next() == Some(c.code.as_str())));
                page.total = page.items.len() as i64;
            }
            let pats = page.items.iter().map(|x| x.patient_id).collect();
            (page.items.iter().map(resources::condition).collect(), page.total, pats)
        }
        "Practitioner" => {
            let page = store.fhir_practitioners(actor, q.id, q.count, q.offset).await?;
            (page.items.iter().map(resources::practitioner).collect(), page.total, vec![])
        }
        "Organization" | "Location" => {
            let (sites, chairs) = store.fhir_sites(actor).await?;
            let mut all: Vec<Value> = if rtype == "Organization" {
                sites.iter().map(resources::organization).collect()
            } else {
                sites.iter().map(resources::site_location).chain(chairs.iter().map(resources::chair_location)).collect()
            };
            if let Some(id) = only_id {
                all.retain(|r| r["id"] == id);
            } else if let Some(id) = q.id {
                all.retain(|r| r["id"].as_str().is_some_and(|s| s.rsplit('-').next() == Some(id.to_string().as_str())));
            }
            let total = all.len() as i64;
            (all.into_iter().skip(q.offset as usize).take(q.count as usize).collect(), total, vec![])
        }
        other => {
            return Err(FhirError {
                status: StatusCode::NOT_FOUND,
                code: "not-supported",
                diagnostics: format!(
                    "resource type '{other}' is not served; see /fhir/R4/metadata for the types Keta serves"
                ),
            });
        }
    };
    Ok(out)
}

async fn search_resources(
    State(st): State<AppState>,
    Caller(actor, scope): Caller,
    Path(rtype): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, FhirError> {
    if type_params(&rtype).is_some() {
        scope.require(&rtype)?;
    }
    if type_params(&rtype).is_none() {
        return Err(FhirError {
            status: StatusCode::NOT_FOUND,
            code: "not-supported",
            diagnostics: format!(
                "resource type '{rtype}' is not served; see /fhir/R4/metadata for the types Keta serves"
            ),
        });
    }
    let p = parse_search(&rtype, &pairs)?;
    if p.include_patient {
        scope.require("Patient")?;
    }
    // An `_id` that cannot exist matches nothing.
    if pairs.iter().any(|(k, _)| k == "_id") && p.search.id.is_none() {
        return Ok(fhir_response(StatusCode::OK, &bundle(&st, &rtype, &pairs, &p, 0, vec![], vec![])));
    }
    if rtype == "Observation" {
        // The chart's hot path: written straight to bytes.
        let page = st.store.fhir_observations(&actor, p.search.clone(), observation_filter(&p)?).await?;
        let patients = page.items.iter().map(|x| x.patient_id).collect();
        let entries = page
            .items
            .iter()
            .map(|o| {
                let mut json = Vec::with_capacity(900);
                resources::write_observation(o, &mut json);
                Written { rtype: "Observation", id: resources::observation_id(o), json }
            })
            .collect();
        let included = included_patients(&st, &actor, &p, patients).await?;
        let body = bundle_bytes(&st, &rtype, &pairs, &p, page.total, entries, included);
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, FHIR_JSON)], body).into_response());
    }
    let (entries, total, patients) = run(&st, &actor, &rtype, &p, None).await?;
    let included = included_patients(&st, &actor, &p, patients).await?;
    Ok(fhir_response(StatusCode::OK, &bundle(&st, &rtype, &pairs, &p, total, entries, included)))
}

/// `_include=...:patient`: each patient of the matches once.
async fn included_patients(
    st: &AppState,
    actor: &Actor,
    p: &Parsed,
    patients: Vec<PatientId>,
) -> Result<Vec<Value>, FhirError> {
    let mut included = Vec::new();
    if p.include_patient {
        let mut seen: Vec<PatientId> = Vec::new();
        for pid in patients {
            if seen.contains(&pid) {
                continue;
            }
            seen.push(pid);
            let page = st.store.fhir_patients(actor, Search { id: Some(pid.0), count: 1, ..Search::default() }).await?;
            included.extend(page.items.iter().map(resources::patient));
        }
    }
    Ok(included)
}

async fn read_resource(
    State(st): State<AppState>,
    Caller(actor, scope): Caller,
    Path((rtype, id)): Path<(String, String)>,
) -> Result<Response, FhirError> {
    if type_params(&rtype).is_some() {
        scope.require(&rtype)?;
    }
    if type_params(&rtype).is_none() {
        return Err(FhirError {
            status: StatusCode::NOT_FOUND,
            code: "not-supported",
            diagnostics: format!(
                "resource type '{rtype}' is not served; see /fhir/R4/metadata for the types Keta serves"
            ),
        });
    }
    let gone = || FhirError::not_found(format!("{rtype}/{id}"));
    let record = parse_id(&rtype, &id)?.ok_or_else(gone)?;
    let p = Parsed {
        search: Search { id: Some(record), count: 2, ..Search::default() },
        codes: vec![],
        categories: vec![],
        include_patient: false,
    };
    let (entries, _, _) = run(&st, &actor, &rtype, &p, Some(&id)).await?;
    let found = entries.into_iter().find(|r| r["id"].as_str() == Some(id.as_str())).ok_or_else(gone)?;
    Ok(fhir_response(StatusCode::OK, &found))
}
