//! What `keta bench` and `keta crash-trials` need from a database that holds synthetic data
//! only (each makes its own fresh database): a bare durable commit to measure against, a
//! read without its audit entry beside the audited one, bulk fixtures, the markers a crash
//! trial wrote, and the engine's own integrity check. The SQL lives here, with the rest of
//! Keta's SQL; the CLI passes typed values. No permission and no audit entry where a method
//! says so: none of this runs against a clinic's records.

use keta_domain::ids::{CourseId, PatientId, SessionId, SiteId};
use keta_domain::ledger::LotId;
use keta_domain::records::VitalsRecord;
use time::Duration;

use crate::conn::Backend;
use crate::error::{Result, StoreError};
use crate::time_codec::ms;
use crate::{Actor, Store, params};

/// A course of the benchmark clinic, with its patient and site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CourseRef {
    pub course: CourseId,
    pub patient: PatientId,
    pub site: SiteId,
}

/// Where a crash trial records: an open session (or a scheduled one to check in), its
/// patient, and a vial lot (mL) at its site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialTarget {
    pub session: SessionId,
    /// The session's state as stored (`scheduled`, `checked_in`, ...).
    pub session_state: String,
    pub patient: PatientId,
    pub lot: LotId,
}

/// What a crash trial finds after the kill, to compare with what the server acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrialMarkers {
    /// `taken_at` (epoch ms) of the session's vitals from the trial's start.
    pub vitals_taken_at_ms: Vec<i64>,
    /// `completed_at` (epoch ms) of the patient's questionnaire responses from the start.
    pub responses_completed_at_ms: Vec<i64>,
    /// The reasons of the lot's count entries that start with the trial's prefix.
    pub ledger_count_reasons: Vec<String>,
    /// SQLite's `PRAGMA integrity_check` lines (`["ok"]` when sound); `None` on PostgreSQL.
    pub sqlite_integrity: Option<Vec<String>>,
}

impl Store {
    /// Creates the table the bare-commit baseline writes to (a benchmark database only).
    pub async fn bench_create_baseline_table(&self) -> Result<()> {
        self.write(|c| c.execute("CREATE TABLE bench_baseline (writer BIGINT NOT NULL, n BIGINT NOT NULL)", &[]))
            .await
            .map(|_| ())
    }

    /// On PostgreSQL, refreshes the query planner's statistics (`ANALYZE`), as autovacuum would
    /// have done long before a clinic's database held this much: without them, a benchmark run
    /// straight after loading measures plans no running clinic gets. Not on SQLite, which has
    /// no autovacuum and which Keta never analyzes: its clinics run without statistics, and
    /// the benchmark measures what they get (with them, the vitals write is slower: see
    /// docs/benchmarks.md, "The PostgreSQL ceiling").
    pub async fn bench_analyze(&self) -> Result<()> {
        if !matches!(self.backend(), crate::conn::Backend::Postgres) {
            return Ok(());
        }
        self.write(|c| c.execute("ANALYZE", &[])).await.map(|_| ())
    }

    /// One bare durable commit (a row of the baseline table, no audit entry): what any write
    /// costs before Keta's checks, on the same writer path.
    pub async fn bench_baseline_commit(&self, writer: i64, n: i64) -> Result<()> {
        self.write(move |c| c.execute("INSERT INTO bench_baseline (writer, n) VALUES ($1, $2)", params![writer, n]))
            .await
            .map(|_| ())
    }

    /// Up to `limit` sessions that have vitals, by id.
    pub async fn bench_sessions_with_vitals(&self, limit: i64) -> Result<Vec<SessionId>> {
        self.read(move |c| {
            c.query("SELECT DISTINCT session_id FROM vitals ORDER BY session_id LIMIT $1", params![limit])?
                .iter()
                .map(|r| r.i64("session_id").map(SessionId))
                .collect()
        })
        .await
    }

    /// The session's vitals through the same site check and query as
    /// [`Store::list_vitals`], without its permission check and audit entry: the baseline
    /// the audited read is measured against.
    pub async fn bench_vitals_unaudited(&self, actor: &Actor, session: SessionId) -> Result<Vec<VitalsRecord>> {
        let actor = actor.clone();
        self.read(move |c| {
            let s = crate::sessions::get_session(c, &actor, session)?;
            crate::sessions::vitals_for(c, &s)
        })
        .await
    }

    /// Every course with its patient and site, by id.
    pub async fn bench_courses(&self) -> Result<Vec<CourseRef>> {
        self.read(|c| {
            c.query("SELECT id, patient_id, site_id FROM courses ORDER BY id", &[])?
                .iter()
                .map(|r| {
                    Ok(CourseRef {
                        course: CourseId(r.i64("id")?),
                        patient: PatientId(r.i64("patient_id")?),
                        site: SiteId(r.i64("site_id")?),
                    })
                })
                .collect()
        })
        .await
    }

    /// Adds `per_patient` past weekly check-in links to every course, as a clinic has after
    /// months of them: most completed, one in five expired, each with its events. Bulk
    /// fixture rows: no audit entries. On PostgreSQL the two tables' statistics are refreshed
    /// afterwards (autovacuum would soon; a clinic accumulating links week by week never
    /// reads them cold).
    pub async fn bench_add_past_links(&self, per_patient: usize) -> Result<()> {
        let courses = self.bench_courses().await?;
        let now = self.now();
        let day_ms = 86_400_000_i64;
        for chunk in courses.chunks(200) {
            let chunk = chunk.to_vec();
            self.write(move |c| {
                for CourseRef { course, patient, site } in chunk {
                    for k in 0..per_patient {
                        let opens = ms(now - Duration::days(7 * (k as i64 + 1)));
                        let closes = opens + 3 * day_ms;
                        let completed = k % 5 != 0;
                        let id = c.insert(
                            "INSERT INTO checkin_links (token_hash, purpose, patient_id, site_id, course_id, item_key, form, form_kind, opens_at, expires_at, created_at, created_by, completed_at, expired_at)
                             VALUES ($1, 'checkin', $2, $3, $4, $5, 'phq9', 'instrument', $6, $7, $6, 'bench', $8, $9) RETURNING id",
                            params![
                                format!("bench-{}-{k}", course.0),
                                patient.0,
                                site.0,
                                course.0,
                                format!("bench_past:{k}"),
                                opens,
                                closes,
                                completed.then_some(opens + day_ms),
                                (!completed).then_some(closes)
                            ],
                        )?;
                        let last = if completed { "completed" } else { "expired" };
                        for (event, at) in [("issued", opens), ("reminder_sent", opens), (last, opens + day_ms)] {
                            c.execute(
                                "INSERT INTO checkin_events (link_id, event, at) VALUES ($1, $2, $3)",
                                params![id, event, at],
                            )?;
                        }
                    }
                }
                Ok(())
            })
            .await?;
        }
        self.write(|c| {
            if c.backend() == Backend::Postgres {
                c.execute("ANALYZE checkin_links", &[])?;
                c.execute("ANALYZE checkin_events", &[])?;
            }
            Ok(())
        })
        .await
    }

    /// The crash trials' target in the demo clinic: the first open session (one under way
    /// before a scheduled one) and the first mL vial lot at its site.
    pub async fn crash_trial_target(&self) -> Result<TrialTarget> {
        self.read(|c| {
            let s = c
                .query_opt(
                    "SELECT id, patient_id, site_id, state FROM sessions
                     WHERE state NOT IN ('discharged', 'stopped')
                     ORDER BY CASE WHEN state = 'scheduled' THEN 1 ELSE 0 END, id LIMIT 1",
                    params![],
                )?
                .ok_or_else(|| StoreError::Backend("the demo clinic has no open session".into()))?;
            let site = s.i64("site_id")?;
            let lot = c
                .query_opt(
                    "SELECT id FROM cs_lots WHERE site_id = $1 AND unit = 'mL' ORDER BY id LIMIT 1",
                    params![site],
                )?
                .ok_or_else(|| StoreError::Backend("the demo ledger has no vial lot".into()))?;
            Ok(TrialTarget {
                session: SessionId(s.i64("id")?),
                session_state: s.text("state")?,
                patient: PatientId(s.i64("patient_id")?),
                lot: LotId(lot.i64("id")?),
            })
        })
        .await
    }

    /// What survived a crash trial's kill: the session's vitals and the patient's responses from `since_ms`
    /// (epoch ms),
    /// the lot's count entries whose reason starts with `count_reason_prefix`, and (SQLite)
    /// the engine's integrity check.
    pub async fn crash_trial_markers(
        &self,
        (session, patient, lot): (SessionId, PatientId, LotId),
        since_ms: i64,
        count_reason_prefix: &str,
    ) -> Result<TrialMarkers> {
        let since = since_ms;
        let like = format!("{}%", count_reason_prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        self.read(move |c| {
            let mut m = TrialMarkers::default();
            for r in c.query(
                "SELECT taken_at FROM vitals WHERE session_id = $1 AND taken_at >= $2",
                params![session.0, since],
            )? {
                m.vitals_taken_at_ms.push(r.i64("taken_at")?);
            }
            for r in c.query(
                "SELECT completed_at FROM questionnaire_responses WHERE patient_id = $1 AND completed_at >= $2",
                params![patient.0, since],
            )? {
                m.responses_completed_at_ms.push(r.i64("completed_at")?);
            }
            for r in c.query(
                "SELECT reason FROM cs_ledger WHERE lot_id = $1 AND kind = 'count' AND reason LIKE $2 ESCAPE '\\'",
                params![lot.0, like],
            )? {
                m.ledger_count_reasons.push(r.text("reason")?);
            }
            if c.backend() == Backend::Sqlite {
                let rows = c.query("PRAGMA integrity_check", params![])?;
                m.sqlite_integrity = Some(rows.iter().map(|r| r.text("integrity_check")).collect::<Result<_>>()?);
            }
            Ok(m)
        })
        .await
    }
}

/// Creates an empty PostgreSQL database `name` (letters, digits and `_`) on the server at
/// `server_url`, for a benchmark run of its own.
pub async fn create_postgres_database(server_url: &str, name: &str) -> Result<()> {
    server_admin(server_url, format!("CREATE DATABASE {}", database_name(name)?)).await
}

/// Drops the PostgreSQL database `name` made by [`create_postgres_database`], closing its
/// connections.
pub async fn drop_postgres_database(server_url: &str, name: &str) -> Result<()> {
    server_admin(server_url, format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database_name(name)?)).await
}

fn database_name(name: &str) -> Result<&str> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(name)
    } else {
        Err(StoreError::Backend(format!("'{name}' is not a database name: use letters, digits and _")))
    }
}

async fn server_admin(server_url: &str, sql: String) -> Result<()> {
    let server = server_url.to_string();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut c =
            postgres::Client::connect(&server, postgres::NoTls).map_err(|e| StoreError::Backend(e.to_string()))?;
        c.batch_execute(&sql).map_err(|e| StoreError::Backend(e.to_string()))
    })
    .await
    .map_err(|e| StoreError::Backend(e.to_string()))?
}
