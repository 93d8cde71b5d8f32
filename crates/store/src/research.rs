//! The de-identified research export: the outcome data set of the patients who consented to
//! research use, as tables of text cells (the caller writes them as CSV), de-identified by
//! the rules of `keta_domain::research` (HIPAA Safe Harbor plus the clinic's k threshold).
//!
//! * Included: patients with a current (countersigned, not withdrawn, newest version)
//!   `research_data_sharing` consent, within the actor's sites.
//! * Never exported: names, contacts, MRNs, dates of birth, database ids, free text (session
//!   notes, stop reasons, adverse-event descriptions and actions, referring clinicians), site
//!   names, and the date shift itself.
//! * Each patient gets a random research id and a random non-zero date shift (±1 to 365 days)
//!   the first time they are exported, kept in `research_subjects` so later exports agree.
//! * Dates are exported as shifted calendar dates (no times of day); durations and intervals
//!   stay true. Ages are five-year bands at the first course's start, `90+` over 89.
//! * Sites with fewer exported patients than k are suppressed, then the patient table's
//!   quasi-identifiers are suppressed until each combination has at least k patients; rare
//!   protocols are suppressed likewise.
//! * The export is audited in the same transaction that assigns the research ids: one entry
//!   with its parameters, and one per exported patient.

use std::collections::HashMap;

use rand::Rng;
use time::{Date, OffsetDateTime};

use keta_domain::access::Permission;
use keta_domain::consent::ConsentKind;
use keta_domain::ids::{CourseId, PatientId, SessionId};
use keta_domain::outcomes::{definition_for, judge_in_chart};
use keta_domain::research::{ResearchSettings, SUPPRESSED, age_band, shift_date, suppress_rare, suppress_to_k};

use crate::audit::{self, Action, Entry};
use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::time_codec::{from_ms, json, ms};
use crate::{Actor, Store, params};

/// Key of the clinic's research-export settings in `clinic_settings`.
pub const SETTINGS_KEY: &str = "research_export";

/// Largest date shift in days, either way.
pub const MAX_SHIFT_DAYS: i64 = 365;

/// One exported table: its file stem, columns and rows of text cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResearchTable {
    pub name: &'static str,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

/// The de-identified data set and what was done to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResearchExport {
    pub tables: Vec<ResearchTable>,
    pub k_threshold: u32,
    pub patients: usize,
    pub suppressed_cells: usize,
}

impl ResearchExport {
    pub fn table(&self, name: &str) -> Option<&ResearchTable> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// Every exported column with its meaning and its de-identification, for the data dictionary.
pub const DICTIONARY: &[(&str, &str, &str, &str)] = &[
    // (table, column, meaning, de-identification)
    (
        "patients",
        "research_id",
        "Random identifier of the patient in research exports",
        "random; not derived from any chart data",
    ),
    (
        "patients",
        "site",
        "Treating site as site_N",
        "pseudonym; suppressed for sites with fewer than k exported patients",
    ),
    (
        "patients",
        "age_band",
        "Age at the first course's start (or at export) in five-year bands",
        "ages over 89 are 90+; may be suppressed (k)",
    ),
    ("patients", "sex", "female, male, other or unknown", "may be suppressed (k)"),
    ("patients", "indication", "depression, anxiety, ptsd or chronic_pain", "may be suppressed (k)"),
    ("patients", "diagnoses", "ICD-10-CM codes, ';'-separated", "may be suppressed (k)"),
    ("courses", "research_id", "The patient", ""),
    ("courses", "course_no", "1-based number of the course within the patient", "not the database id"),
    ("courses", "route", "iv_racemic, im_racemic, intranasal_esketamine, oral_racemic or sublingual_racemic", ""),
    ("courses", "phase", "induction or maintenance", ""),
    ("courses", "indication", "The course's indication", ""),
    ("courses", "planned_sessions", "Sessions planned", ""),
    ("courses", "start_date", "Course start", "shifted by the patient's secret offset"),
    ("courses", "status", "Course status", ""),
    ("courses", "protocol", "Protocol followed", "rare protocols suppressed (k)"),
    ("sessions", "research_id", "The patient", ""),
    ("sessions", "course_no", "The course", ""),
    ("sessions", "session_no", "1-based position in the course", ""),
    ("sessions", "date", "Scheduled date (UTC)", "shifted by the patient's secret offset; no time of day"),
    ("sessions", "state", "Lifecycle state reached", ""),
    ("sessions", "route", "Route", ""),
    ("sessions", "planned_dose_mg", "Planned dose (mg)", ""),
    ("sessions", "minutes_dose_to_discharge", "Minutes from dose start to discharge", "an interval: unchanged"),
    ("sessions", "stopped", "true when the session was stopped", "the stop reason (free text) is withheld"),
    ("doses", "research_id", "The patient", ""),
    ("doses", "course_no", "The course", ""),
    ("doses", "session_no", "The session", ""),
    ("doses", "route", "Route", ""),
    ("doses", "dose_mg", "Dose (mg)", ""),
    ("doses", "dose_mg_per_kg", "Dose (mg/kg)", ""),
    ("doses", "weight_kg", "Weight the dose was calculated on (kg)", ""),
    ("scores", "research_id", "The patient", ""),
    ("scores", "course_no", "The course it counts towards (empty: none)", ""),
    ("scores", "session_no", "The session it was taken in (empty: between sessions)", ""),
    ("scores", "instrument", "Instrument code (phq9, gad7, ...)", ""),
    ("scores", "total", "Total score", ""),
    ("scores", "severity", "Severity band code", ""),
    ("scores", "date", "Completion date (UTC)", "shifted by the patient's secret offset; no time of day"),
    ("scores", "completed_by", "patient or clinician", ""),
    ("adverse_events", "research_id", "The patient", ""),
    ("adverse_events", "course_no", "The course of the session (empty: none)", ""),
    ("adverse_events", "session_no", "The session (empty: none)", ""),
    ("adverse_events", "severity", "Severity", "description, action taken and outcome (free text) withheld"),
    ("adverse_events", "serious", "Serious per the regulatory definition", ""),
    ("adverse_events", "onset_date", "Onset date (UTC)", "shifted by the patient's secret offset"),
    ("outcomes", "research_id", "The patient", ""),
    ("outcomes", "course_no", "The course", ""),
    ("outcomes", "instrument", "The indication's primary instrument", ""),
    ("outcomes", "definition", "Outcome definition id (data/rules/outcome-definitions.toml)", ""),
    ("outcomes", "assessments", "Scores judged", ""),
    ("outcomes", "baseline", "Baseline total", ""),
    ("outcomes", "latest", "Latest total", ""),
    ("outcomes", "change", "latest - baseline", ""),
    ("outcomes", "percent_change", "change / baseline x 100 (empty when the baseline is 0)", ""),
    ("outcomes", "responded", "Latest score meets the response criterion", ""),
    ("outcomes", "remitted", "Latest score meets the remission criterion", ""),
    ("outcomes", "relapsed", "Lost response after a response", ""),
    ("outcomes", "days_to_first_response", "Days from baseline to the first response", "an interval: unchanged"),
];

/// The clinic's research settings, or the defaults.
pub(crate) fn settings(c: &mut dyn Conn) -> Result<ResearchSettings> {
    match c.query_opt("SELECT value FROM clinic_settings WHERE key = $1", params![SETTINGS_KEY])? {
        Some(r) => {
            serde_json::from_str(&r.text("value")?).map_err(|_| StoreError::Corrupt("research_export setting".into()))
        }
        None => Ok(ResearchSettings::default()),
    }
}

/// The secret research id and date shift of a patient, created on first export.
fn subject(c: &mut dyn Conn, patient: PatientId, now: OffsetDateTime) -> Result<(String, i64)> {
    if let Some(r) = c.query_opt(
        "SELECT research_id, date_offset_days FROM research_subjects WHERE patient_id = $1",
        params![patient.0],
    )? {
        return Ok((r.text("research_id")?, r.i64("date_offset_days")?));
    }
    let (id, offset) = {
        let mut rng = rand::rng();
        let magnitude = rng.random_range(1..=MAX_SHIFT_DAYS);
        let offset = if rng.random_bool(0.5) { magnitude } else { -magnitude };
        let id: String = (0..12).map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)])).collect();
        (format!("R{id}"), offset)
    };
    c.execute(
        "INSERT INTO research_subjects (patient_id, research_id, date_offset_days, created_at) VALUES ($1, $2, $3, $4)",
        params![patient.0, id.as_str(), offset, ms(now)],
    )?;
    Ok((id, offset))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn utc_date(t: OffsetDateTime) -> Date {
    t.to_offset(time::UtcOffset::UTC).date()
}

struct Included {
    patient: keta_domain::patient::Patient,
    research_id: String,
    offset: i64,
}

impl Store {
    /// The clinic's research-export settings (researchers and administrators).
    pub async fn research_settings(&self, actor: &Actor) -> Result<ResearchSettings> {
        if !actor.can(Permission::ExportResearch) {
            actor.require(Permission::ManageUsers)?;
        }
        self.read(settings).await
    }

    /// Sets the clinic's k threshold (administrators of every site), audited.
    pub async fn set_research_settings(&self, actor: &Actor, new: ResearchSettings) -> Result<ResearchSettings> {
        actor.require(Permission::ManageUsers)?;
        new.validate()?;
        if actor.scope != crate::SiteScope::All && actor.role.is_some() {
            return Err(StoreError::Forbidden(
                "clinic-wide settings apply to every site; ask an administrator of all sites".into(),
            ));
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO clinic_settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                params![SETTINGS_KEY, json(&new), ms(now), actor.name.as_str()],
            )?;
            audit::record(
                c,
                &actor,
                now,
                Entry {
                    action: Action::Update,
                    object_type: "clinic_setting",
                    object_id: Some(SETTINGS_KEY.into()),
                    patient_id: None,
                    site_id: None,
                    fields: &["k_threshold"],
                },
            )?;
            Ok(new)
        })
        .await
    }

    /// Builds the de-identified research data set (see the module docs) and audits it.
    /// `destination` says where it goes (a folder, or `download`) and is recorded with the
    /// other parameters.
    pub async fn export_research(&self, actor: &Actor, destination: &str) -> Result<ResearchExport> {
        actor.require(Permission::ExportResearch)?;
        let now = self.now();
        let actor = actor.clone();
        let destination: String = destination.chars().filter(|c| !c.is_control()).take(200).collect();
        self.write(move |c| build(c, &actor, now, &destination)).await
    }
}

// Long on purpose: one export read in one pass: the consenting cohort, its site pseudonyms,
// one loop filling every table patient by patient, then k-anonymity over the patient table.
#[allow(clippy::too_many_lines)]
fn build(c: &mut dyn Conn, actor: &Actor, now: OffsetDateTime, destination: &str) -> Result<ResearchExport> {
    let cfg = settings(c)?;
    let k = cfg.k_threshold as usize;
    let scope = actor.scope.sql("p.site_id");
    let candidates: Vec<PatientId> = c
        .query(
            &format!(
                "SELECT p.id AS id FROM patients p WHERE {scope} AND EXISTS (SELECT 1 FROM consents k WHERE k.patient_id = p.id AND k.kind = $1 AND k.withdrawn_at IS NULL) ORDER BY p.id"
            ),
            params![ConsentKind::ResearchDataSharing.as_str()],
        )?
        .iter()
        .map(|r| r.i64("id").map(PatientId))
        .collect::<Result<_>>()?;
    let mut included = Vec::new();
    for id in candidates {
        let consented = crate::consents::consents_for(c, id)?
            .iter()
            .any(|r| r.kind == ConsentKind::ResearchDataSharing && r.is_current());
        if !consented {
            continue;
        }
        let patient = crate::patients::get_patient(c, actor, id)?;
        let (research_id, offset) = subject(c, id, now)?;
        included.push(Included { patient, research_id, offset });
    }

    // Sites as pseudonyms, suppressed when fewer than k exported patients are treated there.
    let mut per_site: HashMap<i64, usize> = HashMap::new();
    for p in &included {
        *per_site.entry(p.patient.site_id.0).or_default() += 1;
    }
    let mut site_ids: Vec<i64> = per_site.keys().copied().collect();
    site_ids.sort_unstable();
    let site_name: HashMap<i64, String> = site_ids
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, if per_site[s] < k { SUPPRESSED.to_string() } else { format!("site_{}", i + 1) }))
        .collect();

    let mut patients = Vec::new();
    let mut courses_t = Vec::new();
    let mut sessions_t = Vec::new();
    let mut doses_t = Vec::new();
    let mut scores_t = Vec::new();
    let mut aes_t = Vec::new();
    let mut outcomes_t = Vec::new();
    let mut protocols: Vec<String> = Vec::new();
    for inc in &included {
        let p = &inc.patient;
        let rid = inc.research_id.clone();
        let courses = crate::courses::courses_for(c, p.id)?;
        let course_no: HashMap<CourseId, usize> = courses.iter().enumerate().map(|(i, c)| (c.id, i + 1)).collect();
        let sessions = crate::sessions::sessions_for_patient(c, p.id)?;
        let session_no: HashMap<SessionId, (usize, u32)> =
            sessions.iter().map(|s| (s.id, (course_no.get(&s.course_id).copied().unwrap_or(0), s.sequence))).collect();
        let age_on = courses.iter().map(|c| c.start_date).min().unwrap_or_else(|| utc_date(now));
        patients.push(vec![
            rid.clone(),
            site_name[&p.site_id.0].clone(),
            age_band(p.age_on(age_on)),
            p.sex.as_str().to_string(),
            p.indication.as_str().to_string(),
            {
                let mut d = p.diagnoses.clone();
                d.sort();
                d.join(";")
            },
        ]);
        for (i, course) in courses.iter().enumerate() {
            courses_t.push(vec![
                rid.clone(),
                (i + 1).to_string(),
                course.route.as_str().to_string(),
                course.phase.as_str().to_string(),
                course.indication.as_str().to_string(),
                course.planned_sessions.to_string(),
                shift_date(course.start_date, inc.offset).to_string(),
                course.status.as_str().to_string(),
            ]);
            protocols.push(course.protocol.clone().unwrap_or_default());
        }
        for s in &sessions {
            let (cn, sn) = session_no[&s.id];
            let minutes = match (s.dose_started_at, s.discharged_at) {
                (Some(a), Some(b)) => Some((b - a).whole_minutes()),
                _ => None,
            };
            sessions_t.push(vec![
                rid.clone(),
                cn.to_string(),
                sn.to_string(),
                shift_date(utc_date(s.scheduled_for), inc.offset).to_string(),
                s.state.as_str().to_string(),
                s.route.as_str().to_string(),
                opt(s.planned_dose_mg.map(|d| d.0)),
                opt(minutes),
                s.stopped_at.is_some().to_string(),
            ]);
        }
        for r in c.query(
            "SELECT session_id, route, dose_mg, dose_mg_per_kg, weight_kg FROM dose_records WHERE patient_id = $1 ORDER BY calculated_at, id",
            params![p.id.0],
        )? {
            let (cn, sn) = session_no.get(&SessionId(r.i64("session_id")?)).copied().unwrap_or((0, 0));
            doses_t.push(vec![
                rid.clone(),
                cn.to_string(),
                sn.to_string(),
                r.text("route")?,
                r.f64("dose_mg")?.to_string(),
                format!("{:.3}", r.f64("dose_mg_per_kg")?),
                r.f64("weight_kg")?.to_string(),
            ]);
        }
        let responses = crate::questionnaires::responses_for(c, p.id)?;
        for q in &responses {
            scores_t.push(vec![
                rid.clone(),
                opt(q.course_id.and_then(|id| course_no.get(&id))),
                opt(q.session_id.and_then(|id| session_no.get(&id)).map(|(_, sn)| *sn)),
                q.instrument.clone(),
                opt(q.score.total),
                opt(q.score.severity.as_ref().map(|b| b.code.clone())),
                shift_date(utc_date(q.completed_at), inc.offset).to_string(),
                q.completed_by.as_str().to_string(),
            ]);
        }
        for r in c.query(
            "SELECT session_id, severity, serious, onset_at FROM adverse_events WHERE patient_id = $1 ORDER BY onset_at, id",
            params![p.id.0],
        )? {
            let at = r.opt_i64("session_id")?.and_then(|s| session_no.get(&SessionId(s)).copied());
            aes_t.push(vec![
                rid.clone(),
                opt(at.map(|x| x.0)),
                opt(at.map(|x| x.1)),
                r.text("severity")?,
                r.bool("serious")?.to_string(),
                shift_date(utc_date(from_ms(r.i64("onset_at")?)?), inc.offset).to_string(),
            ]);
        }
        for (i, course) in courses.iter().enumerate() {
            let Some(def) = definition_for(course.indication.primary_instrument()) else { continue };
            let Some(j) = judge_in_chart(def, &courses, course.id, &responses) else { continue };
            let o = &j.outcome;
            outcomes_t.push(vec![
                rid.clone(),
                (i + 1).to_string(),
                o.instrument.clone(),
                def.id.clone(),
                o.assessments.to_string(),
                o.baseline.to_string(),
                o.latest.to_string(),
                o.change.to_string(),
                opt(o.percent_change.map(|x| format!("{x:.1}"))),
                opt(o.responded),
                opt(o.remitted),
                opt(o.relapsed),
                opt(o.first_response_at.map(|t| (t - o.baseline_at).whole_days())),
            ]);
        }
    }

    // k-anonymity over the patient table's quasi-identifiers (every column but the research id).
    let mut qi: Vec<Vec<String>> = patients.iter().map(|r| r[1..].to_vec()).collect();
    let mut suppressed = site_name.values().filter(|v| *v == SUPPRESSED).count();
    suppressed += suppress_to_k(&mut qi, k);
    for (row, q) in patients.iter_mut().zip(qi) {
        row.truncate(1);
        row.extend(q);
    }
    suppressed += suppress_rare(&mut protocols, k);
    for (row, p) in courses_t.iter_mut().zip(protocols) {
        row.push(p);
    }

    let tables = vec![
        table("patients", patients),
        table("courses", courses_t),
        table("sessions", sessions_t),
        table("doses", doses_t),
        table("scores", scores_t),
        table("adverse_events", aes_t),
        table("outcomes", outcomes_t),
    ];
    let params_text = format!(
        "k={k};format=csv;tables={};patients={};to={destination}",
        tables.iter().map(|t| t.name).collect::<Vec<_>>().join(","),
        included.len()
    );
    audit::record(
        c,
        actor,
        now,
        Entry {
            action: Action::Export,
            object_type: "research_export",
            object_id: Some(params_text),
            patient_id: None,
            site_id: None,
            fields: &["k_threshold", "format", "tables", "patients", "destination"],
        },
    )?;
    for inc in &included {
        audit::record(
            c,
            actor,
            now,
            Entry {
                action: Action::Export,
                object_type: "research_export",
                object_id: None,
                patient_id: Some(inc.patient.id),
                site_id: Some(inc.patient.site_id),
                fields: &["courses", "sessions", "doses", "scores", "adverse_events", "outcomes"],
            },
        )?;
    }
    Ok(ResearchExport { tables, k_threshold: cfg.k_threshold, patients: included.len(), suppressed_cells: suppressed })
}

fn table(name: &'static str, rows: Vec<Vec<String>>) -> ResearchTable {
    let columns = DICTIONARY.iter().filter(|d| d.0 == name).map(|d| d.1).collect();
    ResearchTable { name, columns, rows }
}

/// Writes one table as RFC 4180 CSV (cells with a comma, quote or line break are quoted).
pub fn to_csv(t: &ResearchTable) -> String {
    fn cell(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
    }
    let mut out = t.columns.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",");
    out.push('\n');
    for r in &t.rows {
        out.push_str(&r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// The data dictionary as CSV (table, column, meaning, de-identification).
pub fn dictionary_csv(k: u32) -> String {
    let t = ResearchTable {
        name: "data_dictionary",
        columns: vec!["table", "column", "meaning", "de_identification"],
        rows: DICTIONARY
            .iter()
            .map(|(t, c, m, d)| {
                vec![t.to_string(), c.to_string(), m.to_string(), d.replace("k)", &format!("k = {k})"))]
            })
            .collect(),
    };
    to_csv(&t)
}
