//! FHIR Bulk Data Access (v2) export: `$export` at system, Group and Patient level.
//!
//! * Kick-off: `GET /fhir/R4/$export`, `GET /fhir/R4/Patient/$export` or
//!   `GET /fhir/R4/Group/{site id}/$export` (a Group is a site: the patients registered there,
//!   `Group/3` being the site of `Organization/3`), with `Prefer: respond-async` (400 without),
//!   and optionally `_outputFormat` (`application/fhir+ndjson` only), `_type` and `_since`.
//!   Answers 202 with `Content-Location`: the status URL.
//! * Status: `GET /fhir/R4/$export-status/{job}`: 202 with `X-Progress` and `Retry-After`
//!   while running; 200 with the manifest when done; `DELETE` cancels and removes the files.
//! * Files: `GET /fhir/R4/$export-file/{job}/{Type}.ndjson`, one resource per line.
//!
//! Only the account or API client that kicked a job off may poll, download or cancel it. The
//! job runs on its own task and finishes whether or not anyone polls; its state is in the
//! database (`keta_store::bulk_export`) and its files under the bulk export directory, so any
//! instance sharing both answers. Patients are read in chunks by id, each resource type page
//! by page by record id, and each page is written out before the next is read: an export
//! never holds the clinic in memory. Each chunk's reads are audited together: one entry per
//! patient exported. docs/decisions/0010-bulk-export.md gives the consistency rule.

use std::io::{Read, Write};
use std::path::{Path as FsPath, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keta_domain::fhir_search::{DateFilter, parse_date_param};
use keta_domain::ids::SiteId;
use keta_store::StoreError;
use keta_store::bulk_export::{ExportFile, ExportJob, ExportLevel, ExportStatus, NewExport};
use keta_store::fhir::{DocumentKind, Keyset, ObservationFilter, ObservationSource, Search};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Caller, FhirError, ReadScope, fhir_response, operation_outcome, resources};
use crate::AppState;

/// Where export files go and how long jobs are kept; how long OAuth access tokens live.
#[derive(Debug, Clone)]
pub struct BulkSettings {
    /// The bulk export directory (shared by every instance of the clinic).
    pub dir: PathBuf,
    /// How long an export's files and record are kept after it was kicked off.
    pub retention: time::Duration,
    /// How long an access token from `POST /fhir/R4/auth/token` is accepted.
    pub access_token_lifetime: time::Duration,
}

/// Product settings, not clinical ones.
pub const DEFAULT_RETENTION_HOURS: i64 = 24;
/// SMART Backend Services recommends access tokens of at most five minutes.
pub const DEFAULT_ACCESS_TOKEN_MINUTES: i64 = 5;

impl Default for BulkSettings {
    fn default() -> Self {
        Self {
            dir: std::env::temp_dir().join("keta-bulk-export"),
            retention: time::Duration::hours(DEFAULT_RETENTION_HOURS),
            access_token_lifetime: time::Duration::minutes(DEFAULT_ACCESS_TOKEN_MINUTES),
        }
    }
}

/// The types in a patient's compartment (Patient and Group level).
pub const PATIENT_TYPES: &[&str] = &[
    "Patient",
    "Condition",
    "Encounter",
    "Observation",
    "QuestionnaireResponse",
    "MedicationAdministration",
    "MedicationStatement",
    "AdverseEvent",
    "Consent",
    "DocumentReference",
];
/// The system level adds the types outside any patient's compartment.
const SYSTEM_ONLY_TYPES: &[&str] = &["Practitioner", "Organization", "Location"];

/// Patients read per chunk (one audit batch, one heartbeat).
const PATIENT_CHUNK: u32 = 100;
/// Records read per page of one type.
const PAGE: u32 = 1000;
/// A running job whose heartbeat is older than this is taken over by the next status poll.
const STALLED_AFTER: time::Duration = time::Duration::minutes(5);
/// Seconds a client is asked to wait between polls.
const RETRY_AFTER_SECS: u32 = 2;
pub const NDJSON: &str = "application/fhir+ndjson";

fn level_types(level: ExportLevel) -> Vec<&'static str> {
    match level {
        ExportLevel::System => PATIENT_TYPES.iter().chain(SYSTEM_ONLY_TYPES).copied().collect(),
        _ => PATIENT_TYPES.to_vec(),
    }
}

fn status_url(st: &AppState, id: &str) -> String {
    format!("{}/fhir/R4/$export-status/{id}", st.reminders.public_url)
}

/// What a kick-off asks for, checked: the types and `_since` (epoch ms).
fn parse_kick_off(
    level: ExportLevel,
    scope: &ReadScope,
    pairs: &[(String, String)],
) -> Result<(Vec<String>, Option<i64>), FhirError> {
    let allowed = level_types(level);
    let mut types: Option<Vec<String>> = None;
    let mut since = None;
    let mut unknown = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "_outputFormat" => {
                if !matches!(v.as_str(), "application/fhir+ndjson" | "application/ndjson" | "ndjson") {
                    return Err(FhirError::invalid(format!(
                        "_outputFormat '{v}' is not supported: use application/fhir+ndjson"
                    )));
                }
            }
            "_type" => {
                for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !allowed.contains(&t) {
                        return Err(FhirError::invalid(format!(
                            "_type '{t}' cannot be exported here; this export offers {}",
                            allowed.join(", ")
                        )));
                    }
                    scope.require(t)?;
                    let list = types.get_or_insert_with(Vec::new);
                    if !list.iter().any(|x| x == t) {
                        list.push(t.to_string());
                    }
                }
            }
            "_since" => {
                if since.is_some() {
                    return Err(FhirError::invalid("give _since once"));
                }
                let t = OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
                    FhirError::invalid(format!(
                        "_since '{v}' is not an instant: give a date, time and offset such as 2026-01-01T00:00:00Z"
                    ))
                })?;
                since = Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
            }
            _ => unknown.push(k.clone()),
        }
    }
    if !unknown.is_empty() {
        unknown.sort();
        unknown.dedup();
        return Err(FhirError {
            status: StatusCode::BAD_REQUEST,
            code: "not-supported",
            diagnostics: format!(
                "parameter(s) {} not supported by $export; supported: _outputFormat, _type, _since",
                unknown.join(", ")
            ),
        });
    }
    let types = match types {
        Some(t) => t,
        None => allowed.iter().filter(|t| scope.allows(t)).map(|t| t.to_string()).collect(),
    };
    if types.is_empty() {
        return Err(FhirError::forbidden("the access token's scope allows none of the types this export offers"));
    }
    Ok((types, since))
}

fn wants_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split([',', ';']).any(|p| p.trim().eq_ignore_ascii_case("respond-async")))
}

async fn kick_off(
    st: AppState,
    Caller(actor, scope): Caller,
    headers: HeaderMap,
    uri: OriginalUri,
    pairs: Vec<(String, String)>,
    level: ExportLevel,
) -> Result<Response, FhirError> {
    if !wants_async(&headers) {
        return Err(FhirError::invalid(
            "send Prefer: respond-async: a bulk export runs in the background and is fetched when done",
        ));
    }
    let (types, since_ms) = parse_kick_off(level, &scope, &pairs)?;
    remove_expired(&st).await;
    let request_url = format!(
        "{}{}",
        st.reminders.public_url,
        uri.0.path_and_query().map(|p| p.as_str()).unwrap_or_else(|| uri.0.path())
    );
    let job = st.store.start_bulk_export(&actor, NewExport { level, types, since_ms, request_url }).await?;
    let location = status_url(&st, &job.id);
    spawn_runner(st, job);
    let mut r = fhir_response(
        StatusCode::ACCEPTED,
        &operation_outcome("information", "informational", "the export has started; poll the Content-Location URL"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    Ok(r)
}

/// `GET /fhir/R4/$export`
pub async fn get_export_system(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, FhirError> {
    kick_off(st, caller, headers, uri, pairs, ExportLevel::System).await
}

/// `GET /fhir/R4/Patient/$export`
pub async fn get_export_patients(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, FhirError> {
    kick_off(st, caller, headers, uri, pairs, ExportLevel::Patient).await
}

/// `GET /fhir/R4/Group/{site id}/$export`
pub async fn get_export_group(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, FhirError> {
    let site = id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| FhirError::not_found(format!("Group/{id}")))?;
    kick_off(st, caller, headers, uri, pairs, ExportLevel::Group(SiteId(site))).await
}

/// The manifest of a finished export.
fn manifest(st: &AppState, job: &ExportJob) -> Value {
    let base = format!("{}/fhir/R4/$export-file/{}", st.reminders.public_url, job.id);
    json!({
        "transactionTime": resources::instant(job.transaction_ms),
        "request": job.request_url,
        "requiresAccessToken": true,
        "output": job.output.iter().map(|f| json!({
            "type": f.resource_type,
            "url": format!("{base}/{}.ndjson", f.resource_type),
            "count": f.count,
        })).collect::<Vec<_>>(),
        "error": [],
    })
}

/// `GET /fhir/R4/$export-status/{job}`
pub async fn get_export_status(
    State(st): State<AppState>,
    Caller(actor, _): Caller,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let job = st.store.bulk_export(&actor, &id).await?;
    match job.status {
        ExportStatus::Running => {
            // The instance running it went away: this one takes it over.
            let stale = (st.store.now() - STALLED_AFTER).unix_timestamp_nanos() / 1_000_000;
            if job.heartbeat_ms < stale as i64
                && let Some(taken) = st.store.claim_stalled_bulk_export(&job.id, stale as i64).await?
            {
                tracing::warn!(job = %job.id, "a stalled bulk export is restarted");
                spawn_runner(st.clone(), taken);
            }
            let mut r = StatusCode::ACCEPTED.into_response();
            let progress = job.progress.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).collect::<String>();
            if let Ok(v) = HeaderValue::from_str(&progress) {
                r.headers_mut().insert("x-progress", v);
            }
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            Ok(r)
        }
        ExportStatus::Completed => {
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], manifest(&st, &job).to_string())
                .into_response())
        }
        ExportStatus::Failed => Err(FhirError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "exception",
            diagnostics: job.error.unwrap_or_else(|| "the export failed; kick off a new one".into()),
        }),
        ExportStatus::Cancelled => Err(FhirError::not_found(format!("bulk export {id}"))),
    }
}

/// `DELETE /fhir/R4/$export-status/{job}`: cancels the job and removes its files.
pub async fn delete_export(
    State(st): State<AppState>,
    Caller(actor, _): Caller,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let job = st.store.cancel_bulk_export(&actor, &id).await?;
    remove_dir(st.bulk.dir.join(&job.id)).await;
    Ok(fhir_response(
        StatusCode::ACCEPTED,
        &operation_outcome("information", "informational", "the export is cancelled and its files removed"),
    ))
}

/// `GET /fhir/R4/$export-file/{job}/{Type}.ndjson`: streamed from the file.
pub async fn get_export_file(
    State(st): State<AppState>,
    Caller(actor, scope): Caller,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, FhirError> {
    let job = st.store.bulk_export(&actor, &id).await?;
    let gone = || FhirError::not_found(format!("file {file} of bulk export {id}"));
    if job.status != ExportStatus::Completed {
        return Err(gone());
    }
    let out = job.output.iter().find(|o| format!("{}.ndjson", o.resource_type) == file).ok_or_else(gone)?;
    scope.require(&out.resource_type)?;
    let path = st.bulk.dir.join(&job.id).join(&out.file);
    let f = tokio::task::spawn_blocking(move || std::fs::File::open(path))
        .await
        .map_err(|_| gone())?
        .map_err(|_| gone())?;
    let stream = futures_util::stream::unfold(Some(f), |state| async move {
        let mut f = state?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let n = f.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((f, buf))
        })
        .await;
        match read {
            Ok(Ok((_, buf))) if buf.is_empty() => None,
            Ok(Ok((f, buf))) => Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some(f))),
            Ok(Err(e)) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    Ok(([(header::CONTENT_TYPE, NDJSON)], Body::from_stream(stream)).into_response())
}

async fn remove_dir(dir: PathBuf) {
    let _ = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(dir = %dir.display(), error = %e, "a bulk export folder could not be removed");
        }
        _ => {}
    })
    .await;
}

/// Removes the jobs past their retention, with their files.
async fn remove_expired(st: &AppState) {
    let before = ((st.store.now() - st.bulk.retention).unix_timestamp_nanos() / 1_000_000) as i64;
    match st.store.remove_expired_bulk_exports(before).await {
        Ok(ids) => {
            for id in ids {
                remove_dir(st.bulk.dir.join(id)).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "expired bulk exports could not be removed"),
    }
}

/// Why a run stopped short.
#[derive(Debug)]
enum RunError {
    Store(StoreError),
    Io(std::io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Store(e) => write!(f, "{e}"),
            Self::Io(e) => write!(f, "writing the file: {e}"),
        }
    }
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<std::io::Error> for RunError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// The open NDJSON files of one run, one per type, written on blocking tasks.
struct Files {
    runner: String,
    dir: PathBuf,
    open: Vec<(String, std::fs::File, u64)>,
}

impl Files {
    async fn create(dir: &FsPath, runner: &str, types: &[String]) -> Result<Self, RunError> {
        let dir = dir.to_path_buf();
        let names = types.to_vec();
        let d = dir.clone();
        let open = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&d)?;
            names
                .into_iter()
                .map(|t| {
                    let f = std::fs::File::create(d.join(format!("{t}.ndjson")))?;
                    Ok((t, f, 0u64))
                })
                .collect::<std::io::Result<Vec<_>>>()
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Self { runner: runner.to_string(), dir, open })
    }

    fn wants(&self, t: &str) -> bool {
        self.open.iter().any(|(n, _, _)| n == t)
    }

    /// Appends one page of resources of type `t`, a line each.
    async fn write(&mut self, t: &str, resources: Vec<Value>) -> Result<(), RunError> {
        if resources.is_empty() {
            return Ok(());
        }
        let Some((_, f, count)) = self.open.iter_mut().find(|(n, _, _)| n == t) else { return Ok(()) };
        let mut buf = Vec::with_capacity(resources.len() * 512);
        for r in &resources {
            serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        *count += resources.len() as u64;
        let mut file = f.try_clone()?;
        tokio::task::spawn_blocking(move || file.write_all(&buf)).await.map_err(std::io::Error::other)??;
        Ok(())
    }

    /// Syncs the files, drops the empty ones and lists the rest for the manifest.
    async fn finish(self) -> Result<Vec<ExportFile>, RunError> {
        let Files { runner, dir, open } = self;
        let files = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for (t, f, count) in open {
                f.sync_all()?;
                drop(f);
                if count == 0 {
                    std::fs::remove_file(dir.join(format!("{t}.ndjson")))?;
                } else {
                    out.push(ExportFile { file: format!("{runner}/{t}.ndjson"), resource_type: t, count });
                }
            }
            Ok::<_, std::io::Error>(out)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(files)
    }
}

/// Runs a job on its own task: it finishes whether or not anyone polls.
fn spawn_runner(st: AppState, job: ExportJob) {
    tokio::spawn(async move {
        let dir = st.bulk.dir.join(&job.id).join(&job.runner);
        match run(&st, &job, &dir).await {
            Ok(Some(files)) => match st.store.finish_bulk_export(&job.id, &job.runner, files).await {
                Ok(true) => {}
                // Cancelled meanwhile, or taken over by another run.
                Ok(false) => remove_dir(dir).await,
                Err(e) => {
                    tracing::error!(job = %job.id, error = %e, "a finished bulk export could not be recorded");
                    remove_dir(dir).await;
                }
            },
            Ok(None) => remove_dir(dir).await,
            Err(e) => {
                tracing::error!(job = %job.id, error = %e, "bulk export failed");
                let why = match &e {
                    RunError::Store(StoreError::Forbidden(m)) => m.clone(),
                    _ => "the export could not be completed; kick off a new export".to_string(),
                };
                if let Err(e2) = st.store.fail_bulk_export(&job.id, &job.runner, why).await {
                    tracing::error!(job = %job.id, error = %e2, "a failed bulk export could not be recorded");
                }
                remove_dir(dir).await;
            }
        }
    });
}

/// Writes the export; `None` when it was cancelled (or taken over) on the way.
async fn run(st: &AppState, job: &ExportJob, dir: &FsPath) -> Result<Option<Vec<ExportFile>>, RunError> {
    let mut files = Files::create(dir, &job.runner, &job.types).await?;
    let actor = &job.actor;
    let store = &st.store;
    // Resources outside any patient's compartment (system level only).
    if files.wants("Practitioner") {
        let mut offset = 0;
        loop {
            let page = store.fhir_practitioners(actor, None, PAGE, offset).await?;
            let n = page.items.len() as u32;
            files.write("Practitioner", page.items.iter().map(resources::practitioner).collect()).await?;
            if n < PAGE {
                break;
            }
            offset += n;
        }
    }
    if files.wants("Organization") || files.wants("Location") {
        let (sites, chairs) = store.fhir_sites(actor).await?;
        files.write("Organization", sites.iter().map(resources::organization).collect()).await?;
        let locations =
            sites.iter().map(resources::site_location).chain(chairs.iter().map(resources::chair_location)).collect();
        files.write("Location", locations).await?;
    }
    let since: Vec<DateFilter> = match job.since_ms {
        Some(ms) => vec![
            parse_date_param(&format!("ge{}", resources::instant(ms)))
                .map_err(|e| RunError::Store(StoreError::Corrupt(format!("_since: {e}"))))?,
        ],
        None => vec![],
    };
    let site = match job.level {
        ExportLevel::Group(s) => Some(s),
        _ => None,
    };
    let (mut after, mut done) = (0i64, 0usize);
    loop {
        let ids = store.bulk_export_patient_ids(job, after, PATIENT_CHUNK).await?;
        let (Some(&lo), Some(&hi)) = (ids.first(), ids.last()) else { break };
        let base = Search { patient_range: Some((lo, hi)), site, last_updated: since.clone(), ..Search::default() };
        // One chunk's reads are audited together: one entry per patient.
        store.batch_reads(export_chunk(st, job, &base, &mut files)).await??;
        done += ids.len();
        after = hi;
        if !store.bulk_export_progress(&job.id, &job.runner, format!("{done} patients exported")).await? {
            return Ok(None);
        }
        if ids.len() < PATIENT_CHUNK as usize {
            break;
        }
    }
    Ok(Some(files.finish().await?))
}

/// The table each Observation source is read from (for its mark).
fn observation_table(s: ObservationSource) -> &'static str {
    match s {
        ObservationSource::Score => "questionnaire_responses",
        ObservationSource::Moaas => "observations",
        _ => "vitals",
    }
}

/// Writes every requested type of one chunk of patients, page by page.
async fn export_chunk(st: &AppState, job: &ExportJob, base: &Search, files: &mut Files) -> Result<(), RunError> {
    let store = &st.store;
    let actor = &job.actor;
    // Reads `$table` page by page by record id up to its mark; `$fetch` gets the search.
    macro_rules! by_id {
        ($t:expr, $table:expr, |$q:ident| $fetch:expr, $map:expr, $rid:expr) => {{
            let mut after = 0i64;
            loop {
                let $q = Search { keyset: Some(Keyset { after, upto: job.mark($table) }), count: PAGE, ..base.clone() };
                let page = $fetch.await?;
                let full = page.items.len() as u32 == PAGE;
                let last = page.items.last().map($rid);
                files.write($t, page.items.iter().map($map).collect()).await?;
                match last {
                    Some(id) if full => after = id,
                    _ => break,
                }
            }
        }};
    }
    for t in job.types.clone() {
        match t.as_str() {
            "Patient" => {
                by_id!("Patient", "patients", |q| store.fhir_patients(actor, q), resources::patient, |p| p.id.0)
            }
            "Condition" => {
                let q = Search {
                    keyset: Some(Keyset { after: 0, upto: job.mark("patients") }),
                    count: u32::MAX,
                    ..base.clone()
                };
                let page = store.fhir_conditions(actor, q, None).await?;
                files.write("Condition", page.items.iter().map(resources::condition).collect()).await?;
            }
            "Observation" => {
                for src in ObservationSource::ALL {
                    let filter = ObservationFilter { sources: vec![src], instruments: None, only: None };
                    by_id!(
                        "Observation",
                        observation_table(src),
                        |q| store.fhir_observations(actor, q, filter.clone()),
                        resources::observation,
                        |o| o.record_id
                    );
                }
            }
            "Encounter" => {
                by_id!("Encounter", "sessions", |q| store.fhir_encounters(actor, q), resources::encounter, |e| e.id)
            }
            "QuestionnaireResponse" => by_id!(
                "QuestionnaireResponse",
                "questionnaire_responses",
                |q| store.fhir_questionnaire_responses(actor, q),
                resources::questionnaire_response,
                |e| e.id
            ),
            "MedicationAdministration" => by_id!(
                "MedicationAdministration",
                "cs_ledger",
                |q| store.fhir_administrations(actor, q),
                resources::medication_administration,
                |e| e.id
            ),
            "MedicationStatement" => by_id!(
                "MedicationStatement",
                "antidepressant_trials",
                |q| store.fhir_trials(actor, q),
                resources::medication_statement,
                |e| e.id
            ),
            "AdverseEvent" => by_id!(
                "AdverseEvent",
                "adverse_events",
                |q| store.fhir_adverse_events(actor, q),
                resources::adverse_event,
                |e| e.id
            ),
            "Consent" => by_id!("Consent", "consents", |q| store.fhir_consents(actor, q), resources::consent, |e| e.id),
            "DocumentReference" => {
                let base = format!("{}/fhir/R4", st.reminders.public_url);
                // One kind at a time: a note and a form of one session share the record id.
                for kind in DocumentKind::ALL {
                    by_id!(
                        "DocumentReference",
                        "sessions",
                        |q| store.fhir_documents(actor, q, vec![kind]),
                        |d| resources::document_reference(d, &base),
                        |d| d.session_id.0
                    );
                }
            }
            // Practitioner, Organization and Location were written before the patients.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_kick_off_takes_ndjson_known_types_and_an_instant_only() {
        let all = ReadScope::All;
        let (types, since) = parse_kick_off(ExportLevel::Patient, &all, &[]).unwrap();
        assert_eq!(types, PATIENT_TYPES);
        assert_eq!(since, None);
        let (types, since) = parse_kick_off(
            ExportLevel::System,
            &all,
            &pairs(&[
                ("_outputFormat", "application/fhir+ndjson"),
                ("_type", "Observation,Patient"),
                ("_since", "2026-11-02T00:00:00Z"),
            ]),
        )
        .unwrap();
        assert_eq!(types, ["Observation", "Patient"]);
        assert_eq!(since, Some(1_793_577_600_000));
        for bad in [
            pairs(&[("_outputFormat", "text/csv")]),
            pairs(&[("_type", "Practitioner")]),
            pairs(&[("_since", "2026-11-02")]),
            pairs(&[("_typeFilter", "Observation?code=8867-4")]),
        ] {
            assert_eq!(parse_kick_off(ExportLevel::Group(SiteId(1)), &all, &bad).unwrap_err().status, 400, "{bad:?}");
        }
        // A narrow token exports what it may read, and is refused the rest.
        let narrow = ReadScope::Types(vec!["Observation".into()]);
        assert_eq!(parse_kick_off(ExportLevel::Patient, &narrow, &[]).unwrap().0, ["Observation"]);
        assert_eq!(
            parse_kick_off(ExportLevel::Patient, &narrow, &pairs(&[("_type", "Patient")])).unwrap_err().status,
            403
        );
    }

    #[test]
    fn only_respond_async_is_accepted() {
        let mut h = HeaderMap::new();
        assert!(!wants_async(&h));
        h.insert("prefer", HeaderValue::from_static("handling=lenient, respond-async"));
        assert!(wants_async(&h));
    }
}
