//! The reads behind the FHIR R4 facade: one paged, site-scoped query per resource type.
//!
//! Each resource type is a *source*: a `SELECT` whose rows carry the same leading columns
//! (`rid` the record id, `patient_id`, `at` the clinical time in epoch ms, `updated` the
//! time it was stored or last changed) and the columns its mapper needs. A search wraps the
//! source, adds the filters (id, patient, date, `_lastUpdated`), counts the matches for
//! `Bundle.total` and reads one page, so a chart's observations are one indexed query
//! (both engines push the filters into every branch of a `UNION ALL`). Patients outside the
//! caller's sites are invisible; every patient whose data is returned is audited as read.

use keta_domain::access::Permission;
use keta_domain::fhir_search::{DateFilter, InstantBound};
use keta_domain::ids::{PatientId, SiteId};
use keta_domain::patient::Patient;

use crate::conn::{Conn, Row, Value};
use crate::error::{Result, StoreError};
use crate::patients::{PATIENT_COLS, get_patient, patient_from};
use crate::{Actor, Store};

mod documents;
pub use documents::{DocumentKind, DocumentRow};

/// The filters every FHIR search shares.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// `_id`, or the id of a read.
    pub id: Option<i64>,
    pub patient: Option<PatientId>,
    /// `date`: all must hold.
    pub date: Vec<DateFilter>,
    /// `_lastUpdated`: all must hold.
    pub last_updated: Vec<DateFilter>,
    pub count: u32,
    pub offset: u32,
    /// `_sort=-date`: newest first.
    pub newest_first: bool,
    /// Bulk export: only patients registered at this site (a Group).
    pub site: Option<SiteId>,
    /// Bulk export: only patients with ids in this inclusive range (one chunk of patients).
    pub patient_range: Option<(i64, i64)>,
    /// Bulk export: page by record id instead of by time, without counting a total.
    pub keyset: Option<Keyset>,
}

/// A page of a bulk export: records with ids after `after` and at most `upto` (the highest id
/// at the export's transaction time), in id order, so a record is read at most once and
/// records added while the export runs are left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    pub after: i64,
    pub upto: i64,
}

/// A page of results and how many matched in all.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// Where an Observation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObservationSource {
    BloodPressure,
    HeartRate,
    OxygenSaturation,
    RespiratoryRate,
    /// A questionnaire's total score (PHQ-9, GAD-7, CADSS, ...).
    Score,
    /// A MOAA/S sedation score recorded in the chair.
    Moaas,
}

impl ObservationSource {
    pub const ALL: [Self; 6] =
        [Self::BloodPressure, Self::HeartRate, Self::OxygenSaturation, Self::RespiratoryRate, Self::Score, Self::Moaas];

    /// The prefix of the resource id, e.g. `bp-17`.
    pub fn key(self) -> &'static str {
        match self {
            Self::BloodPressure => "bp",
            Self::HeartRate => "hr",
            Self::OxygenSaturation => "spo2",
            Self::RespiratoryRate => "rr",
            Self::Score => "score",
            Self::Moaas => "moaas",
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.key() == key)
    }

    fn sql(self) -> String {
        let vitals = |value: &str, second: &str, cond: &str| {
            format!(
                "SELECT '{key}' AS src, v.id AS rid, v.patient_id AS patient_id, v.session_id AS session_id, v.taken_at AS at, v.taken_at AS updated, \
                 {value} AS num1, {second} AS num2, CAST(NULL AS TEXT) AS label, CAST(NULL AS TEXT) AS note FROM vitals v WHERE {cond} AND {not_struck}",
                key = self.key(),
                not_struck = crate::monitors::NOT_STRUCK
            )
        };
        match self {
            Self::BloodPressure => vitals(
                "v.systolic_mmhg",
                "v.diastolic_mmhg",
                "(v.systolic_mmhg IS NOT NULL OR v.diastolic_mmhg IS NOT NULL)",
            ),
            Self::HeartRate => vitals("v.heart_rate_bpm", "CAST(NULL AS DOUBLE PRECISION)", "v.heart_rate_bpm IS NOT NULL"),
            Self::OxygenSaturation => vitals("v.spo2_pct", "CAST(NULL AS DOUBLE PRECISION)", "v.spo2_pct IS NOT NULL"),
            Self::RespiratoryRate => {
                vitals("v.resp_rate_per_min", "CAST(NULL AS DOUBLE PRECISION)", "v.resp_rate_per_min IS NOT NULL")
            }
            Self::Score => "SELECT 'score' AS src, q.id AS rid, q.patient_id AS patient_id, q.session_id AS session_id, q.completed_at AS at, \
                 q.completed_at AS updated, CAST(q.total AS DOUBLE PRECISION) AS num1, CAST(NULL AS DOUBLE PRECISION) AS num2, \
                 q.instrument AS label, q.severity AS note FROM questionnaire_responses q WHERE q.total IS NOT NULL"
                .into(),
            Self::Moaas => "SELECT 'moaas' AS src, o.id AS rid, o.patient_id AS patient_id, o.session_id AS session_id, o.observed_at AS at, \
                 o.observed_at AS updated, CAST(NULL AS DOUBLE PRECISION) AS num1, CAST(NULL AS DOUBLE PRECISION) AS num2, \
                 CAST(NULL AS TEXT) AS label, o.body AS note FROM observations o WHERE o.kind = 'moaas'"
                .into(),
        }
    }
}

/// Which Observations to look in: the sources, and for scores the instruments.
#[derive(Debug, Clone)]
pub struct ObservationFilter {
    pub sources: Vec<ObservationSource>,
    /// Only these questionnaire instruments (by Keta code); `None` means all.
    pub instruments: Option<Vec<String>>,
    /// A single source when reading `Observation/{id}`.
    pub only: Option<ObservationSource>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRow {
    pub source: ObservationSource,
    pub record_id: i64,
    pub patient_id: PatientId,
    pub session_id: Option<i64>,
    pub at_ms: i64,
    pub num1: Option<f64>,
    pub num2: Option<f64>,
    /// The instrument of a score.
    pub instrument: Option<String>,
    /// The severity band of a score, or a MOAA/S observation's stored body.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EncounterRow {
    pub id: i64,
    pub patient_id: PatientId,
    pub site_id: SiteId,
    pub chair_id: Option<i64>,
    pub route: String,
    pub state: String,
    pub scheduled_ms: i64,
    pub checked_in_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub stop_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoreResponseRow {
    pub id: i64,
    pub patient_id: PatientId,
    pub session_id: Option<i64>,
    pub instrument: String,
    /// The answers as stored (JSON).
    pub answers: String,
    pub completed_ms: i64,
    pub completed_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdministrationRow {
    pub id: i64,
    pub patient_id: PatientId,
    pub session_id: Option<i64>,
    pub substance: String,
    pub route: Option<String>,
    pub amount_mg: f64,
    pub lot_number: String,
    pub ndc: String,
    pub occurred_ms: i64,
    pub recorded_by: String,
    pub reversed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrialRow {
    pub id: i64,
    pub patient_id: PatientId,
    pub trial: keta_domain::eligibility::AntidepressantTrial,
    pub recorded_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdverseEventRow {
    pub id: i64,
    pub patient_id: PatientId,
    pub session_id: Option<i64>,
    pub description: String,
    pub severity: String,
    pub serious: bool,
    pub outcome: String,
    pub onset_ms: i64,
    pub recorded_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsentRow {
    pub id: i64,
    pub patient_id: PatientId,
    pub site_id: SiteId,
    pub kind: String,
    pub form_title: String,
    pub signed_ms: i64,
    pub withdrawn_ms: Option<i64>,
}

/// A diagnosis recorded on the patient (ICD-10-CM), one Condition each.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionRow {
    pub patient_id: PatientId,
    /// Its place in the patient's list; part of the resource id.
    pub index: usize,
    pub code: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PractitionerRow {
    pub id: i64,
    pub display_name: String,
    pub role: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SiteRow {
    pub id: SiteId,
    pub code: String,
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChairRow {
    pub id: i64,
    pub site_id: SiteId,
    pub name: String,
}

/// Builds `WHERE` conditions with numbered parameters.
struct Filters {
    conds: Vec<String>,
    params: Vec<Value>,
}

impl Filters {
    fn new() -> Self {
        Self { conds: vec![], params: vec![] }
    }
    fn push(&mut self, sql_with_placeholder: impl Fn(usize) -> String, v: Value) {
        self.params.push(v);
        let n = self.params.len();
        self.conds.push(sql_with_placeholder(n));
    }
    fn instant(&mut self, column: &str, f: &DateFilter) {
        for b in f.bounds() {
            match b {
                InstantBound::AtOrAfter(m) => self.push(|n| format!("{column} >= ${n}"), m.into()),
                InstantBound::Before(m) => self.push(|n| format!("{column} < ${n}"), m.into()),
                InstantBound::Outside(a, z) => {
                    self.params.push(a.into());
                    self.params.push(z.into());
                    let n = self.params.len();
                    self.conds.push(format!("({column} < ${} OR {column} >= ${n})", n - 1));
                }
            }
        }
    }
    fn sql(&self) -> String {
        if self.conds.is_empty() { "1 = 1".into() } else { self.conds.join(" AND ") }
    }
}

/// Runs a search over `source` (with the shared leading columns): the scope, the shared
/// filters, `extra` conditions; returns one page ordered by time and the total.
fn search_page(
    c: &mut dyn Conn,
    actor: &Actor,
    source: &str,
    q: &Search,
    mut f: Filters,
    tie_break: &str,
) -> Result<(Vec<Row>, i64)> {
    if let Some(p) = q.patient {
        // A patient the caller may not see matches nothing (ids cannot be probed).
        match get_patient(c, actor, p) {
            Ok(_) => f.push(|n| format!("u.patient_id = ${n}"), p.0.into()),
            Err(StoreError::NotFound(_)) => return Ok((vec![], 0)),
            Err(e) => return Err(e),
        }
    } else if actor.scope != crate::SiteScope::All {
        f.conds.push(format!("u.patient_id IN (SELECT p.id FROM patients p WHERE {})", actor.scope.sql("p.site_id")));
    }
    if let Some(site) = q.site {
        f.push(|n| format!("u.patient_id IN (SELECT p.id FROM patients p WHERE p.site_id = ${n})"), site.0.into());
    }
    if let Some((lo, hi)) = q.patient_range {
        f.push(|n| format!("u.patient_id >= ${n}"), lo.into());
        f.push(|n| format!("u.patient_id <= ${n}"), hi.into());
    }
    if let Some(id) = q.id {
        f.push(|n| format!("u.rid = ${n}"), id.into());
    }
    for d in &q.date {
        f.instant("u.at", d);
    }
    for d in &q.last_updated {
        f.instant("u.updated", d);
    }
    if let Some(k) = q.keyset {
        f.push(|n| format!("u.rid > ${n}"), k.after.into());
        f.push(|n| format!("u.rid <= ${n}"), k.upto.into());
        let wh = f.sql();
        let mut params = f.params.clone();
        params.push(i64::from(q.count).into());
        let n = params.len();
        let rows = c.query(&format!("SELECT * FROM ({source}) u WHERE {wh} ORDER BY u.rid LIMIT ${n}"), &params)?;
        let total = rows.len() as i64;
        return Ok((rows, total));
    }
    let wh = f.sql();
    let count = |c: &mut dyn Conn| -> Result<i64> {
        Ok(c.query_opt(&format!("SELECT COUNT(*) AS n FROM ({source}) u WHERE {wh}"), &f.params)?
            .map(|r| r.i64("n"))
            .transpose()?
            .unwrap_or(0))
    };
    if q.count == 0 {
        return Ok((vec![], count(c)?));
    }
    // One pass: the page and, on every row, how many matched in all (the sort reads every
    // match anyway; a separate COUNT read them all a second time).
    let dir = if q.newest_first { "DESC" } else { "ASC" };
    let mut params = f.params.clone();
    params.push(i64::from(q.count).into());
    params.push(i64::from(q.offset).into());
    let n = params.len();
    let rows = c.query(
        &format!(
            "SELECT u.*, COUNT(*) OVER () AS search_total FROM ({source}) u WHERE {wh} \
             ORDER BY u.at {dir}, {tie_break} u.rid {dir} LIMIT ${} OFFSET ${n}",
            n - 1
        ),
        &params,
    )?;
    let total = match rows.first() {
        Some(r) => r.i64("search_total")?,
        // Past the last page (or nothing matched): the total still says how many there are.
        None if q.offset > 0 => count(c)?,
        None => 0,
    };
    Ok((rows, total))
}

fn distinct_patients(ids: impl IntoIterator<Item = PatientId>) -> Vec<PatientId> {
    let mut out: Vec<PatientId> = Vec::new();
    for p in ids {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn pid(r: &Row) -> Result<PatientId> {
    Ok(PatientId(r.i64("patient_id")?))
}

impl Store {
    /// Patients by id (`_id`, a read) or all the caller's patients, paged; demographics.
    pub async fn fhir_patients(&self, actor: &Actor, q: Search) -> Result<Page<Patient>> {
        actor.require(Permission::ViewDemographics)?;
        let act = actor.clone();
        let page = self
            .read(move |c| {
                // The patient's own columns first, in the order `patient_from` reads them.
                let source = format!(
                    "SELECT {PATIENT_COLS}, p.id AS rid, p.id AS patient_id, p.created_at AS at, p.created_at AS updated FROM patients p"
                );
                let q = Search { patient: q.patient.or(q.id.map(PatientId)), ..q };
                let (rows, total) = search_page(c, &act, &source, &q, Filters::new(), "")?;
                let items = rows.iter().map(patient_from).collect::<Result<Vec<_>>>()?;
                Ok(Page { items, total })
            })
            .await?;
        self.audit_reads(actor, "fhir_patient", page.items.iter().map(|p| p.id).collect()).await?;
        Ok(page)
    }

    /// Observations: vital signs, questionnaire totals and MOAA/S, in one query.
    pub async fn fhir_observations(
        &self,
        actor: &Actor,
        q: Search,
        filter: ObservationFilter,
    ) -> Result<Page<ObservationRow>> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let page = self
            .read(move |c| {
                let mut f = Filters::new();
                let mut branches = Vec::new();
                for s in filter.sources.iter().copied().filter(|s| filter.only.is_none_or(|o| o == *s)) {
                    let mut sql = s.sql();
                    if s == ObservationSource::Score
                        && let Some(list) = &filter.instruments
                    {
                        if list.is_empty() {
                            continue;
                        }
                        let mut marks = Vec::new();
                        for i in list {
                            f.params.push(i.as_str().into());
                            marks.push(format!("${}", f.params.len()));
                        }
                        sql.push_str(&format!(" AND q.instrument IN ({})", marks.join(", ")));
                    }
                    branches.push(sql);
                }
                if branches.is_empty() {
                    return Ok(Page { items: vec![], total: 0 });
                }
                let source = branches.join(" UNION ALL ");
                let (rows, total) = search_page(c, &act, &source, &q, f, "u.src,")?;
                let items = rows
                    .iter()
                    .map(|r| {
                        Ok(ObservationRow {
                            source: ObservationSource::parse(&r.text("src")?)
                                .ok_or_else(|| StoreError::Corrupt("observation source".into()))?,
                            record_id: r.i64("rid")?,
                            patient_id: pid(r)?,
                            session_id: r.opt_i64("session_id")?,
                            at_ms: r.i64("at")?,
                            num1: r.opt_f64("num1")?,
                            num2: r.opt_f64("num2")?,
                            instrument: r.opt_text("label")?,
                            note: r.opt_text("note")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page { items, total })
            })
            .await?;
        self.audit_reads(actor, "fhir_observation", distinct_patients(page.items.iter().map(|o| o.patient_id))).await?;
        Ok(page)
    }

    /// Treatment sessions as Encounters; `date` is the scheduled time.
    pub async fn fhir_encounters(&self, actor: &Actor, q: Search) -> Result<Page<EncounterRow>> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let page = self
            .read(move |c| {
                let source = "SELECT s.id AS rid, s.patient_id AS patient_id, s.scheduled_for AS at, \
                     COALESCE(s.discharged_at, s.stopped_at, s.monitoring_started_at, s.dose_started_at, s.pre_dose_checks_at, s.checked_in_at, s.scheduled_for) AS updated, \
                     s.site_id AS site_id, s.chair_id AS chair_id, s.route AS route, s.state AS state, s.checked_in_at AS checked_in_at, \
                     COALESCE(s.discharged_at, s.stopped_at) AS ended_at, s.stop_reason AS stop_reason FROM sessions s";
                let (rows, total) = search_page(c, &act, source, &q, Filters::new(), "")?;
                let items = rows
                    .iter()
                    .map(|r| {
                        Ok(EncounterRow {
                            id: r.i64("rid")?,
                            patient_id: pid(r)?,
                            site_id: SiteId(r.i64("site_id")?),
                            chair_id: r.opt_i64("chair_id")?,
                            route: r.text("route")?,
                            state: r.text("state")?,
                            scheduled_ms: r.i64("at")?,
                            checked_in_ms: r.opt_i64("checked_in_at")?,
                            ended_ms: r.opt_i64("ended_at")?,
                            stop_reason: r.opt_text("stop_reason")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page { items, total })
            })
            .await?;
        self.audit_reads(actor, "fhir_encounter", distinct_patients(page.items.iter().map(|e| e.patient_id))).await?;
        Ok(page)
    }

    /// Completed questionnaires; `date` is the completion time.
    pub async fn fhir_questionnaire_responses(&self, actor: &Actor, q: Search) -> Result<Page<ScoreResponseRow>> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let page = self
            .read(move |c| {
                let source = "SELECT q.id AS rid, q.patient_id AS patient_id, q.completed_at AS at, q.completed_at AS updated, \
                     q.session_id AS session_id, q.instrument AS instrument, q.answers AS answers, q.completed_by AS completed_by \
                     FROM questionnaire_responses q";
                let (rows, total) = search_page(c, &act, source, &q, Filters::new(), "")?;
                let items = rows
                    .iter()
                    .map(|r| {
                        Ok(ScoreResponseRow {
                            id: r.i64("rid")?,
                            patient_id: pid(r)?,
                            session_id: r.opt_i64("session_id")?,
                            instrument: r.text("instrument")?,
                            answers: r.text("answers")?,
                            completed_ms: r.i64("at")?,
                            completed_by: r.text("completed_by")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page { items, total })
            })
            .await?;
        self.audit_reads(
            actor,
            "fhir_questionnaire_response",
            distinct_patients(page.items.iter().map(|e| e.patient_id)),
        )
        .await?;
        Ok(page)
    }

    /// Ketamine and esketamine given, from the controlled-substance ledger (with the lot).
    pub async fn fhir_administrations(&self, actor: &Actor, q: Search) -> Result<Page<AdministrationRow>> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let page = self
            .read(move |c| {
                let source = "SELECT l.id AS rid, l.patient_id AS patient_id, l.occurred_at AS at, l.recorded_at AS updated, \
                     l.session_id AS session_id, t.substance AS substance, s.route AS route, l.amount_mg AS amount_mg, \
                     t.lot_number AS lot_number, t.ndc AS ndc, l.recorded_by AS recorded_by, \
                     (SELECT COUNT(*) FROM cs_ledger r WHERE r.reverses_id = l.id) AS reversals \
                     FROM cs_ledger l JOIN cs_lots t ON t.id = l.lot_id LEFT JOIN sessions s ON s.id = l.session_id \
                     WHERE l.kind = 'administration' AND l.patient_id IS NOT NULL";
                let (rows, total) = search_page(c, &act, source, &q, Filters::new(), "")?;
                let items = rows
                    .iter()
                    .map(|r| {
                        Ok(AdministrationRow {
                            id: r.i64("rid")?,
                            patient_id: pid(r)?,
                            session_id: r.opt_i64("session_id")?,
                            substance: r.text("substance")?,
                            route: r.opt_text("route")?,
                            amount_mg: r.f64("amount_mg")?,
                            lot_number: r.text("lot_number")?,
                            ndc: r.text("ndc")?,
                            occurred_ms: r.i64("at")?,
                            recorded_by: r.text("recorded_by")?,
                            reversed: r.i64("reversals")? > 0,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page { items, total })
            })
            .await?;
        self.audit_reads(
            actor,
            "fhir_medication_administration",
            distinct_patients(page.items.iter().map(|e| e.patient_id)),
        )
        .await?;
        Ok(page)
    }

    /// Past antidepressant trials; `date` is when the trial was recorded.
    pub async fn fhir_trials(&self, actor: &Actor, q: Search) -> Result<Page<TrialRow>> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let page = self
            .read(move |c| {
                let source = "SELECT a.id AS rid, a.patient_id AS patient_id, a.recorded_at AS at, a.recorded_at AS updated, a.body AS body \
                     FROM antidepressant_trials a";
                let (rows, total) = search_page(c, &act, source, &q, Filters::new(), "")?;
                let items = rows
                    .iter()
                    .map(|r| {
                        Ok(TrialRow {
                            id: r.i64("rid")?,
                            patient_id: pid(r)?,
                            trial: crate::time_codec::from_json(&r.text("body")?)?,
                            recorded_ms: r.i64("at")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page { items, total })
            })
            .await?;
        self.audit_reads(
            actor,
            "fhir_medication_statement",
            distinct_patients(page.items.iter().map(|e| e.patient_id)),
        )
        .await?;
        Ok(page)
    }

    /// Adverse events; `date` is the onset.
    pub async fn fhir_adverse_events(&self, actor: &Actor, q: Search) -> Result<Page<AdverseEventRow>> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let page = self
            .read(move |c| {
                let source = "SELECT e.id AS rid, e.patient_id AS patient_id, e.onset_at AS at, e.recorded_at AS updated, \
                     e.session_id AS session_id, e.description AS description, e.severity AS severity, e.serious AS serious, \
                     e.outcome AS outcome FROM adverse_events e";
                let (rows, total) = search_page(c, &act, source, &q, Filters::new(), "")?;
                let items = rows
                    .iter()
                    .map(|r| {
                        Ok(AdverseEventRow {
                            id: r.i64("rid")?,
                            patient_id: pid(r)?,
                            session_id: r.opt_i64("session_id")?,
                            description: r.text("description")?,
                            severity: r.text("severity")?,
                            serious: r.bool("serious")?,
                            outcome: r.text("outcome")?,
                            onset_ms: r.i64("at")?,
                            recorded_ms: r.i64("updated")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page { items, total })
            })
            .await?;
        self.audit_reads(actor, "fhir_adverse_event", distinct_patients(page.items.iter().map(|e| e.patient_id)))
            .await?;
        Ok(page)
    }

    /// Signed consents; `date` is the patient's signature.
    pub async fn fhir_consents(&self, actor: &Actor, q: Search) -> Result<Page<ConsentRow>> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let page = self
            .read(move |c| {
                let source = "SELECT k.id AS rid, k.patient_id AS patient_id, k.patient_signed_at AS at, \
                     COALESCE(k.withdrawn_at, k.countersigned_at, k.patient_signed_at) AS updated, k.site_id AS site_id, \
                     k.kind AS kind, k.form_title AS form_title, k.withdrawn_at AS withdrawn_at FROM consents k";
                let (rows, total) = search_page(c, &act, source, &q, Filters::new(), "")?;
                let items = rows
                    .iter()
                    .map(|r| {
                        Ok(ConsentRow {
                            id: r.i64("rid")?,
                            patient_id: pid(r)?,
                            site_id: SiteId(r.i64("site_id")?),
                            kind: r.text("kind")?,
                            form_title: r.text("form_title")?,
                            signed_ms: r.i64("at")?,
                            withdrawn_ms: r.opt_i64("withdrawn_at")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page { items, total })
            })
            .await?;
        self.audit_reads(actor, "fhir_consent", distinct_patients(page.items.iter().map(|e| e.patient_id))).await?;
        Ok(page)
    }

    /// Diagnoses (one Condition per ICD-10-CM code on the patient), paged over patients'
    /// lists in patient order. `date` does not apply (no onset is recorded).
    pub async fn fhir_conditions(&self, actor: &Actor, q: Search, one: Option<usize>) -> Result<Page<ConditionRow>> {
        actor.require(Permission::ViewClinical)?;
        let act = actor.clone();
        let page = self
            .read(move |c| {
                let source = "SELECT p.id AS rid, p.id AS patient_id, p.created_at AS at, p.created_at AS updated, p.diagnoses AS diagnoses FROM patients p";
                // Every patient in scope (diagnosis lists are short); the page is cut afterwards.
                let all = Search { count: u32::MAX, offset: 0, newest_first: false, date: vec![], ..q.clone() };
                let (rows, _) = search_page(c, &act, source, &all, Filters::new(), "")?;
                let mut items = Vec::new();
                for r in &rows {
                    let codes: Vec<String> = crate::time_codec::from_json(&r.text("diagnoses")?)?;
                    for (index, code) in codes.into_iter().enumerate() {
                        if one.is_none_or(|o| o == index) {
                            items.push(ConditionRow { patient_id: pid(r)?, index, code });
                        }
                    }
                }
                let total = items.len() as i64;
                let items = items.into_iter().skip(q.offset as usize).take(q.count as usize).collect();
                Ok(Page { items, total })
            })
            .await?;
        self.audit_reads(actor, "fhir_condition", distinct_patients(page.items.iter().map(|e| e.patient_id))).await?;
        Ok(page)
    }

    /// Staff as Practitioners (name and role only; no patient data): those who work at one
    /// of the caller's sites (an account of every site sees all staff).
    pub async fn fhir_practitioners(
        &self,
        actor: &Actor,
        id: Option<i64>,
        count: u32,
        offset: u32,
    ) -> Result<Page<PractitionerRow>> {
        actor.require(Permission::ViewClinical)?;
        let scoped = (actor.scope != crate::SiteScope::All).then(|| {
            format!(
                "EXISTS (SELECT 1 FROM user_sites us WHERE us.user_id = u.id AND {})",
                actor.scope.sql("us.site_id")
            )
        });
        self.read(move |c| {
            let mut f = Filters::new();
            if let Some(scoped) = scoped {
                f.conds.push(scoped);
            }
            if let Some(id) = id {
                f.push(|n| format!("u.id = ${n}"), id.into());
            }
            let wh = f.sql();
            let total = c
                .query_opt(&format!("SELECT COUNT(*) AS n FROM users u WHERE {wh}"), &f.params)?
                .map(|r| r.i64("n"))
                .transpose()?
                .unwrap_or(0);
            let mut params = f.params.clone();
            params.push(i64::from(count).into());
            params.push(i64::from(offset).into());
            let n = params.len();
            let rows = c.query(
                &format!(
                    "SELECT u.id AS id, u.display_name AS display_name, u.role AS role, u.disabled AS disabled FROM users u WHERE {wh} ORDER BY u.id LIMIT ${} OFFSET ${n}",
                    n - 1
                ),
                &params,
            )?;
            let items = rows
                .iter()
                .map(|r| {
                    Ok(PractitionerRow {
                        id: r.i64("id")?,
                        display_name: r.text("display_name")?,
                        role: r.text("role")?,
                        active: !r.bool("disabled")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Page { items, total })
        })
        .await
    }

    /// The caller's sites (Organization, Location) and their chairs (Location).
    pub async fn fhir_sites(&self, actor: &Actor) -> Result<(Vec<SiteRow>, Vec<ChairRow>)> {
        actor.require(Permission::ViewClinical)?;
        let scope = actor.scope.sql("s.id");
        self.read(move |c| {
            let sites = c
                .query(&format!("SELECT s.id AS id, s.code AS code, s.name AS name, s.address AS address FROM sites s WHERE {scope} ORDER BY s.id"), &[])?
                .iter()
                .map(|r| Ok(SiteRow { id: SiteId(r.i64("id")?), code: r.text("code")?, name: r.text("name")?, address: r.text("address")? }))
                .collect::<Result<Vec<_>>>()?;
            let chairs = c
                .query(&format!("SELECT h.id AS id, h.site_id AS site_id, h.name AS name FROM chairs h JOIN sites s ON s.id = h.site_id WHERE {scope} ORDER BY h.id"), &[])?
                .iter()
                .map(|r| Ok(ChairRow { id: r.i64("id")?, site_id: SiteId(r.i64("site_id")?), name: r.text("name")? }))
                .collect::<Result<Vec<_>>>()?;
            Ok((sites, chairs))
        })
        .await
    }
}
