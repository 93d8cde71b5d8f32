//! FHIR Bulk Data export jobs (`$export`): their state, kept in the database so that every
//! instance can answer a status poll, a download or a cancel, whichever ran the job.
//!
//! * Kicking off records the job with its *transaction time* and, in the same transaction,
//!   the highest record id of every exported table (`marks`). The export then reads each table
//!   by id up to its mark, so it holds the records that existed at the transaction time, each
//!   at most once, however many are written while it runs (docs/decisions/0010-bulk-export.md).
//! * Only the account or API client that kicked a job off may see, download or cancel it.
//! * The reads themselves go through the FHIR reads (`crate::fhir`), with their permission,
//!   site scoping and read audit.

use std::collections::BTreeMap;

use keta_domain::access::{Permission, Role};
use keta_domain::ids::SiteId;
use serde::{Deserialize, Serialize};

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::time_codec::{from_json, json, ms};
use crate::{Actor, SiteScope, Store, params};

/// The tables an export reads, each up to its mark.
pub const EXPORT_TABLES: &[&str] = &[
    "patients",
    "vitals",
    "questionnaire_responses",
    "observations",
    "sessions",
    "cs_ledger",
    "antidepressant_trials",
    "adverse_events",
    "consents",
];

/// Which patients an export covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportLevel {
    /// `GET /fhir/R4/$export`: everything the caller may see.
    System,
    /// `GET /fhir/R4/Patient/$export`: every patient the caller may see.
    Patient,
    /// `GET /fhir/R4/Group/{site}/$export`: the patients registered at one site.
    Group(SiteId),
}

impl ExportLevel {
    fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Patient => "patient",
            Self::Group(_) => "group",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl ExportStatus {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(StoreError::Corrupt(format!("bulk export status '{other}'"))),
        })
    }
}

/// What a kick-off asks for (already checked by the caller for form).
#[derive(Debug, Clone)]
pub struct NewExport {
    pub level: ExportLevel,
    /// Resource types, in the order their files are listed.
    pub types: Vec<String>,
    /// `_since`: only resources stored or changed at or after this time (epoch ms).
    pub since_ms: Option<i64>,
    /// The kick-off request's URL, echoed in the manifest.
    pub request_url: String,
}

/// One NDJSON file of a finished export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFile {
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The file's name inside the job's folder.
    pub file: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportJob {
    /// Random and unguessable; names the status URL and the job's folder.
    pub id: String,
    pub requested_by: String,
    /// Who the job reads as: the requester's role and sites (break-glass grants do not apply).
    pub actor: Actor,
    pub request_url: String,
    pub level: ExportLevel,
    pub types: Vec<String>,
    pub since_ms: Option<i64>,
    /// Highest record id per table at the transaction time.
    pub marks: BTreeMap<String, i64>,
    pub transaction_ms: i64,
    pub status: ExportStatus,
    /// A short note of how far the job has got (`X-Progress`).
    pub progress: String,
    pub output: Vec<ExportFile>,
    pub error: Option<String>,
    pub created_ms: i64,
    pub heartbeat_ms: i64,
    /// The run writing the job now (a new one when a stalled job is taken over); only it may
    /// note progress or finish the job, and its files are in its own folder.
    pub runner: String,
    pub finished_ms: Option<i64>,
}

impl ExportJob {
    /// The mark of `table` (0 when it was empty).
    pub fn mark(&self, table: &str) -> i64 {
        self.marks.get(table).copied().unwrap_or(0)
    }
}

const JOB_COLS: &str = "id, requested_by, role, site_ids, request_url, level, site_id, types, since_at, marks, transaction_at, \
     status, progress, output, error, created_at, heartbeat_at, runner, finished_at";

fn job_from(r: &Row) -> Result<ExportJob> {
    let role =
        r.opt_text("role")?.map(|x| Role::parse(&x).ok_or_else(|| StoreError::Corrupt("bulk export role".into())));
    let sites: Option<Vec<i64>> = from_json(&r.text("site_ids")?)?;
    let scope = match sites {
        None => SiteScope::All,
        Some(s) => SiteScope::Sites(s.into_iter().map(SiteId).collect()),
    };
    let name = r.text("requested_by")?;
    let actor = Actor { name: name.clone(), scope, role: role.transpose()?, user_id: None, break_glass: vec![] };
    let level = match (r.text("level")?.as_str(), r.opt_i64("site_id")?) {
        ("system", _) => ExportLevel::System,
        ("patient", _) => ExportLevel::Patient,
        ("group", Some(s)) => ExportLevel::Group(SiteId(s)),
        _ => return Err(StoreError::Corrupt("bulk export level".into())),
    };
    Ok(ExportJob {
        id: r.text("id")?,
        requested_by: name,
        actor,
        request_url: r.text("request_url")?,
        level,
        types: from_json(&r.text("types")?)?,
        since_ms: r.opt_i64("since_at")?,
        marks: from_json(&r.text("marks")?)?,
        transaction_ms: r.i64("transaction_at")?,
        status: ExportStatus::parse(&r.text("status")?)?,
        progress: r.text("progress")?,
        output: match r.opt_text("output")? {
            Some(t) => from_json(&t)?,
            None => vec![],
        },
        error: r.opt_text("error")?,
        created_ms: r.i64("created_at")?,
        heartbeat_ms: r.i64("heartbeat_at")?,
        runner: r.text("runner")?,
        finished_ms: r.opt_i64("finished_at")?,
    })
}

fn load(c: &mut dyn Conn, id: &str) -> Result<Option<ExportJob>> {
    c.query_opt(&format!("SELECT {JOB_COLS} FROM bulk_exports WHERE id = $1"), params![id])?
        .map(|r| job_from(&r))
        .transpose()
}

/// The job, if `actor` kicked it off; anyone else is told it does not exist.
fn own(c: &mut dyn Conn, actor: &Actor, id: &str) -> Result<ExportJob> {
    match load(c, id)? {
        Some(j) if j.requested_by == actor.name && j.status != ExportStatus::Cancelled => Ok(j),
        _ => Err(StoreError::NotFound(format!("bulk export {id}"))),
    }
}

impl Store {
    /// Records a new export job for `actor`: its transaction time and the marks, in one
    /// transaction, audited as an export. A Group the actor may not see does not exist.
    pub async fn start_bulk_export(&self, actor: &Actor, new: NewExport) -> Result<ExportJob> {
        actor.require(Permission::ViewDemographics)?;
        actor.require(Permission::ViewClinical)?;
        let site = match new.level {
            ExportLevel::Group(s) => {
                if !actor.scope.allows(s) {
                    return Err(StoreError::NotFound(format!("Group/{s}")));
                }
                Some(s)
            }
            _ => None,
        };
        let id = crate::credentials::new_token();
        let runner = crate::credentials::new_token()[..16].to_string();
        let act = actor.clone();
        let clock = self.clock.clone();
        self.write(move |c| {
            // The transaction time is read inside the transaction that reads the marks: a
            // record under a mark was written before it, one written after is over its mark.
            let now = ms(clock());
            if let Some(s) = site {
                crate::sites::get_site(c, s).map_err(|_| StoreError::NotFound(format!("Group/{s}")))?;
            }
            let mut marks = BTreeMap::new();
            for t in EXPORT_TABLES {
                let n = c
                    .query_opt(&format!("SELECT COALESCE(MAX(id), 0) AS n FROM {t}"), &[])?
                    .map(|r| r.i64("n"))
                    .transpose()?
                    .unwrap_or(0);
                marks.insert((*t).to_string(), n);
            }
            let sites = match &act.scope {
                SiteScope::All => "null".to_string(),
                SiteScope::Sites(s) => json(&s.iter().map(|x| x.0).collect::<Vec<_>>()),
            };
            c.execute(
                "INSERT INTO bulk_exports (id, requested_by, role, site_ids, request_url, level, site_id, types, since_at, marks, \
                 transaction_at, status, progress, created_at, heartbeat_at, runner) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'running', 'queued', $11, $11, $12)",
                params![
                    id.as_str(),
                    act.name.as_str(),
                    act.role.map(|r| r.as_str()),
                    sites.as_str(),
                    new.request_url.as_str(),
                    new.level.as_str(),
                    site.map(|s| s.0),
                    json(&new.types).as_str(),
                    new.since_ms,
                    json(&marks).as_str(),
                    now,
                    runner.as_str()
                ],
            )?;
            audit::record(
                c,
                &act,
                crate::time_codec::from_ms(now)?,
                Entry {
                    action: Action::Export,
                    object_type: "bulk_export",
                    object_id: Some(id.clone()),
                    patient_id: None,
                    site_id: site,
                    fields: &["level", "types", "since"],
                },
            )?;
            load(c, &id)?.ok_or_else(|| StoreError::NotFound("bulk export".into()))
        })
        .await
    }

    /// A job `actor` kicked off (status, manifest, download).
    pub async fn bulk_export(&self, actor: &Actor, id: &str) -> Result<ExportJob> {
        let act = actor.clone();
        let id = id.to_string();
        self.read(move |c| own(c, &act, &id)).await
    }

    /// A job by id, for the runner (no caller to check).
    pub async fn bulk_export_job(&self, id: &str) -> Result<Option<ExportJob>> {
        let id = id.to_string();
        self.read(move |c| load(c, &id)).await
    }

    /// Notes progress and beats the job's heartbeat; `false` when the job is no longer
    /// running (cancelled, or removed), so the runner stops.
    pub async fn bulk_export_progress(&self, id: &str, runner: &str, progress: String) -> Result<bool> {
        let now = ms(self.now());
        let id = id.to_string();
        let runner = runner.to_string();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE bulk_exports SET progress = $1, heartbeat_at = $2 WHERE id = $3 AND runner = $4 AND status = 'running'",
                params![progress.as_str(), now, id.as_str(), runner.as_str()],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// Marks a running job completed with its files; `false` if it was cancelled meanwhile.
    pub async fn finish_bulk_export(&self, id: &str, runner: &str, output: Vec<ExportFile>) -> Result<bool> {
        let now = ms(self.now());
        let id = id.to_string();
        let runner = runner.to_string();
        let output = json(&output);
        self.write(move |c| {
            let n = c.execute(
                "UPDATE bulk_exports SET status = 'completed', progress = 'completed', output = $1, finished_at = $2, heartbeat_at = $2 \
                 WHERE id = $3 AND runner = $4 AND status = 'running'",
                params![output.as_str(), now, id.as_str(), runner.as_str()],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// Marks a running job failed; the reason is kept for the status answer.
    pub async fn fail_bulk_export(&self, id: &str, runner: &str, error: String) -> Result<()> {
        let now = ms(self.now());
        let id = id.to_string();
        let runner = runner.to_string();
        self.write(move |c| {
            c.execute(
                "UPDATE bulk_exports SET status = 'failed', progress = 'failed', error = $1, finished_at = $2 WHERE id = $3 AND runner = $4 AND status = 'running'",
                params![error.as_str(), now, id.as_str(), runner.as_str()],
            )?;
            Ok(())
        })
        .await
    }

    /// Cancels a job (running or finished) that `actor` kicked off; audited. Its files are the
    /// caller's to remove.
    pub async fn cancel_bulk_export(&self, actor: &Actor, id: &str) -> Result<ExportJob> {
        let now = self.now();
        let act = actor.clone();
        let id = id.to_string();
        self.write(move |c| {
            let job = own(c, &act, &id)?;
            c.execute(
                "UPDATE bulk_exports SET status = 'cancelled', progress = 'cancelled', finished_at = $1 WHERE id = $2 AND status <> 'cancelled'",
                params![ms(now), id.as_str()],
            )?;
            audit::record(
                c,
                &act,
                now,
                Entry {
                    action: Action::Delete,
                    object_type: "bulk_export",
                    object_id: Some(id.clone()),
                    patient_id: None,
                    site_id: None,
                    fields: &["status"],
                },
            )?;
            Ok(job)
        })
        .await
    }

    /// Removes the records of jobs created before `before_ms` (retention) and returns their
    /// ids, so the caller removes their folders.
    pub async fn remove_expired_bulk_exports(&self, before_ms: i64) -> Result<Vec<String>> {
        self.write(move |c| {
            let ids = c
                .query(
                    "SELECT id FROM bulk_exports WHERE created_at < $1 AND status <> 'running' ORDER BY created_at",
                    params![before_ms],
                )?
                .iter()
                .map(|r| r.text("id"))
                .collect::<Result<Vec<_>>>()?;
            for id in &ids {
                c.execute("DELETE FROM bulk_exports WHERE id = $1", params![id.as_str()])?;
            }
            Ok(ids)
        })
        .await
    }

    /// Takes over a running job whose runner has stopped beating (its instance went away):
    /// the job with its new runner for the one caller that wins it, `None` for the others.
    pub async fn claim_stalled_bulk_export(&self, id: &str, stale_before_ms: i64) -> Result<Option<ExportJob>> {
        let now = ms(self.now());
        let id = id.to_string();
        let runner = crate::credentials::new_token()[..16].to_string();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE bulk_exports SET heartbeat_at = $1, progress = 'restarted', runner = $2 \
                 WHERE id = $3 AND status = 'running' AND heartbeat_at < $4",
                params![now, runner.as_str(), id.as_str(), stale_before_ms],
            )?;
            if n == 0 {
                return Ok(None);
            }
            load(c, &id)
        })
        .await
    }

    /// The ids of the next patients of an export after `after` (within the requester's sites,
    /// the Group's site, and the mark), at most `limit`: the chunks the runner reads in turn.
    /// Ids only; the reads of their data are audited where they happen.
    pub async fn bulk_export_patient_ids(&self, job: &ExportJob, after: i64, limit: u32) -> Result<Vec<i64>> {
        let scope = job.actor.scope.sql("p.site_id");
        // Site ids are integers from our own types, inlined like the scope's.
        let site = match job.level {
            ExportLevel::Group(s) => format!("p.site_id = {}", s.0),
            _ => "1 = 1".to_string(),
        };
        let upto = job.mark("patients");
        self.read(move |c| {
            c.query(
                &format!(
                    "SELECT p.id AS id FROM patients p WHERE p.id > $1 AND p.id <= $2 AND {scope} AND {site} \
                     ORDER BY p.id LIMIT $3"
                ),
                params![after, upto, i64::from(limit)],
            )?
            .iter()
            .map(|r| r.i64("id"))
            .collect()
        })
        .await
    }
}
