//! The SPRAVATO REMS Patient Monitoring Form: filled from the session record
//! (`keta_domain::rems`) for every esketamine session with a dose started at an outpatient
//! site, the clinician's answers for what the record lacks, the 7-day queue, and marking a
//! form submitted with its confirmation number (audited).

use time::{Date, OffsetDateTime};

use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::consent::ConsentKind;
use keta_domain::course::Route;
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::rems::{MarkSubmitted, QueueStatus, RemsAnswers, RemsForm, SessionRecord};
use keta_domain::session::TreatmentSession;
use keta_domain::units::Milligrams;

use crate::audit::{self, Action, Entry};
use crate::conn::Conn;
use crate::error::{Result, StoreError};
use crate::time_codec::{date_text, from_json, json, ms, opt_from_ms, parse_date};
use crate::{Actor, Store, params};

/// Site setting (in `sites.settings`): days before the due date from which an unsubmitted
/// form is "due soon". No default: the reference gives only the 7-day limit.
pub const DUE_SOON_KEY: &str = "rems_due_soon_within_days";

/// A form with where it stands.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RemsFormView {
    pub session_id: SessionId,
    pub patient_id: PatientId,
    pub site_id: SiteId,
    pub status: QueueStatus,
    pub due_on: Date,
    pub form: RemsForm,
    pub answers: RemsAnswers,
    pub confirmation_number: Option<String>,
    pub submitted_on: Option<Date>,
    pub submitted_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub submitted_at: Option<OffsetDateTime>,
}

/// One line of the queue.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RemsQueueItem {
    pub session_id: SessionId,
    pub patient_id: PatientId,
    pub patient_name: String,
    pub treatment_date: Date,
    pub due_on: Date,
    pub status: QueueStatus,
    /// Fields still to be answered.
    pub missing: usize,
    pub confirmation_number: Option<String>,
}

struct Stored {
    answers: RemsAnswers,
    confirmation_number: Option<String>,
    submitted_on: Option<Date>,
    submitted_by: Option<String>,
    submitted_at: Option<OffsetDateTime>,
}

fn stored(c: &mut dyn Conn, session: SessionId) -> Result<Option<Stored>> {
    let Some(r) = c.query_opt(
        "SELECT answers, confirmation_number, submitted_on, submitted_by, submitted_at FROM rems_forms WHERE session_id = $1",
        params![session.0],
    )?
    else {
        return Ok(None);
    };
    Ok(Some(Stored {
        answers: from_json(&r.text("answers")?)?,
        confirmation_number: r.opt_text("confirmation_number")?,
        submitted_on: r.opt_text("submitted_on")?.map(|d| parse_date(&d)).transpose()?,
        submitted_by: r.opt_text("submitted_by")?,
        submitted_at: opt_from_ms(r.opt_i64("submitted_at")?)?,
    }))
}

/// Whether the session needs a monitoring form: esketamine, dose started, outpatient site.
pub(crate) fn needs_form(c: &mut dyn Conn, s: &TreatmentSession) -> Result<bool> {
    Ok(s.route == Route::IntranasalEsketamine
        && s.dose_started_at.is_some()
        && crate::consents::is_outpatient_setting(c, s.site_id)?)
}

/// Total mg given from the ledger for the session, the devices that makes, and the lots.
fn ledger_facts(c: &mut dyn Conn, session: SessionId) -> Result<(Option<Milligrams>, Option<u32>, Vec<String>)> {
    let rows = c.query(
        "SELECT e.amount_mg, l.lot_number, l.presentation FROM cs_ledger e JOIN cs_lots l ON l.id = e.lot_id
         WHERE e.session_id = $1 AND e.kind = 'administration'
         AND NOT EXISTS (SELECT 1 FROM cs_ledger r WHERE r.reverses_id = e.id) ORDER BY e.id",
        params![session.0],
    )?;
    let mut total = 0.0;
    let mut devices = Some(0.0);
    let mut lots: Vec<String> = Vec::new();
    for r in &rows {
        let mg = r.f64("amount_mg")?;
        total += mg;
        let lot = r.text("lot_number")?;
        if !lots.contains(&lot) {
            lots.push(lot);
        }
        let p: serde_json::Value = serde_json::from_str(&r.text("presentation")?).unwrap_or_default();
        devices = match (devices, p.get("mg_per_device").and_then(|v| v.as_f64())) {
            (Some(d), Some(per)) if per > 0.0 => Some(d + mg / per),
            _ => None,
        };
    }
    if rows.is_empty() {
        return Ok((None, None, lots));
    }
    Ok((Some(Milligrams(total)), devices.map(|d| d.round() as u32), lots))
}

fn due_soon_days(c: &mut dyn Conn, site: SiteId) -> Result<Option<i64>> {
    Ok(crate::sites::get_site(c, site)?.settings.get(DUE_SOON_KEY).and_then(|v| v.as_i64()))
}

/// The form for a session, or `None` when the session needs none.
pub(crate) fn view(
    c: &mut dyn Conn,
    actor: &Actor,
    s: &TreatmentSession,
    now: OffsetDateTime,
) -> Result<Option<RemsFormView>> {
    if !needs_form(c, s)? {
        return Ok(None);
    }
    let patient = crate::patients::get_patient(c, actor, s.patient_id)?;
    let site = crate::sites::get_site(c, s.site_id)?;
    let zone = crate::site_time::zone(&site.time_zone);
    let dose_at = s.dose_started_at.expect("needs_form checks the dose started");
    let treatment_date = crate::site_time::local_date(&zone, dose_at);
    let today = crate::site_time::local_date(&zone, now);
    let consents = crate::consents::consents_for(c, s.patient_id)?;
    let enrolment = consents.iter().find(|r| r.kind == ConsentKind::RemsEnrolment && r.is_current());
    let earlier = crate::sessions::sessions_for_patient(c, s.patient_id)?.iter().any(|o| {
        o.id != s.id && o.route == Route::IntranasalEsketamine && o.dose_started_at.is_some_and(|t| t < dose_at)
    });
    let medications = crate::medications::medications_for(c, s.patient_id)?;
    let (dose_mg, devices, lot_numbers) = ledger_facts(c, s.id)?;
    let vitals = crate::sessions::vitals_for(c, s)?;
    let adverse_events: Vec<_> = c
        .query(
            &format!(
                "SELECT {} FROM adverse_events WHERE session_id = $1 ORDER BY onset_at, id",
                crate::sessions::AE_COLS
            ),
            params![s.id.0],
        )?
        .iter()
        .map(crate::sessions::ae_from)
        .collect::<Result<_>>()?;
    let st = stored(c, s.id)?;
    let answers = st.as_ref().map(|x| x.answers.clone()).unwrap_or_default();
    let record = SessionRecord {
        patient: &patient,
        session: s,
        setting_name: &site.name,
        treatment_date,
        enrolment,
        earlier_esketamine_session: earlier,
        medications: &medications,
        dose_mg,
        devices,
        lot_numbers,
        vitals: &vitals,
        adverse_events: &adverse_events,
    };
    let form = RemsForm::fill(&record, &answers);
    let submitted = st.as_ref().is_some_and(|x| x.submitted_at.is_some());
    Ok(Some(RemsFormView {
        session_id: s.id,
        patient_id: s.patient_id,
        site_id: s.site_id,
        status: keta_domain::rems::queue_status(treatment_date, submitted, today, due_soon_days(c, s.site_id)?),
        due_on: keta_domain::rems::due_on(treatment_date),
        form,
        answers,
        confirmation_number: st.as_ref().and_then(|x| x.confirmation_number.clone()),
        submitted_on: st.as_ref().and_then(|x| x.submitted_on),
        submitted_by: st.as_ref().and_then(|x| x.submitted_by.clone()),
        submitted_at: st.as_ref().and_then(|x| x.submitted_at),
    }))
}

/// Refuses signing a session note while its monitoring form lacks a field, naming each.
pub(crate) fn note_sign_gate(c: &mut dyn Conn, actor: &Actor, s: &TreatmentSession, now: OffsetDateTime) -> Result<()> {
    let Some(v) = view(c, actor, s, now)? else { return Ok(()) };
    if v.form.missing.is_empty() {
        return Ok(());
    }
    let asks: Vec<&str> = v.form.missing.iter().map(|m| m.question.as_str()).collect();
    Err(DomainError::Conflict(format!(
        "the REMS Patient Monitoring Form lacks fields, answer them before signing the note: {} [answer them: /sessions/{}/rems]",
        asks.join("; "),
        s.id
    ))
    .into())
}

impl Store {
    /// The session's monitoring form, filled from the record (an audited read). Not found
    /// when the session needs none (not esketamine, no dose, or an inpatient site).
    pub async fn rems_form(&self, actor: &Actor, session: SessionId) -> Result<RemsFormView> {
        actor.require(Permission::ViewClinical)?;
        let now = self.now();
        let act = actor.clone();
        let out = self
            .read(move |c| {
                let s = crate::sessions::get_session(c, &act, session)?;
                view(c, &act, &s, now)?.ok_or_else(|| {
                    StoreError::NotFound(format!("a REMS monitoring form for session {session} (only esketamine sessions with a dose given at an outpatient site have one)"))
                })
            })
            .await?;
        self.audit_read(actor, "rems_form", Some(session.to_string()), Some(out.patient_id)).await?;
        Ok(out)
    }

    /// Saves the clinician's answers (all of them, replacing the last); refused once submitted.
    pub async fn save_rems_answers(
        &self,
        actor: &Actor,
        session: SessionId,
        answers: RemsAnswers,
    ) -> Result<RemsFormView> {
        actor.require(Permission::RecordSession)?;
        answers.validate()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let s = crate::sessions::get_session_for_update(c, &actor, session)?;
            if !needs_form(c, &s)? {
                return Err(StoreError::NotFound(format!("a REMS monitoring form for session {session}")));
            }
            match stored(c, session)? {
                Some(st) if st.submitted_at.is_some() => {
                    return Err(DomainError::Conflict("the form was submitted to the REMS; it is no longer changed".into()).into());
                }
                Some(_) => {
                    c.execute(
                        "UPDATE rems_forms SET answers = $1, updated_at = $2, updated_by = $3 WHERE session_id = $4",
                        params![json(&answers), ms(now), actor.name.as_str(), session.0],
                    )?;
                }
                None => {
                    c.execute(
                        "INSERT INTO rems_forms (session_id, patient_id, site_id, answers, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6)",
                        params![session.0, s.patient_id.0, s.site_id.0, json(&answers), ms(now), actor.name.as_str()],
                    )?;
                }
            }
            audit::record(c, &actor, now, Entry {
                action: Action::Update, object_type: "rems_form", object_id: Some(session.to_string()),
                patient_id: Some(s.patient_id), site_id: Some(s.site_id), fields: &["answers"],
            })?;
            Ok(view(c, &actor, &s, now)?.expect("checked above"))
        })
        .await
    }

    /// Marks the form submitted to the REMS with its confirmation number and date (audited);
    /// refused while a field is missing, and once already submitted.
    pub async fn mark_rems_submitted(
        &self,
        actor: &Actor,
        session: SessionId,
        m: MarkSubmitted,
    ) -> Result<RemsFormView> {
        actor.require(Permission::RecordSession)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let s = crate::sessions::get_session_for_update(c, &actor, session)?;
            let v = view(c, &actor, &s, now)?
                .ok_or_else(|| StoreError::NotFound(format!("a REMS monitoring form for session {session}")))?;
            if v.submitted_at.is_some() {
                return Err(DomainError::Conflict(format!("the form was already marked submitted ({})", v.confirmation_number.unwrap_or_default())).into());
            }
            if !v.form.missing.is_empty() {
                let asks: Vec<&str> = v.form.missing.iter().map(|x| x.question.as_str()).collect();
                return Err(DomainError::Conflict(format!("the form is not complete: {}", asks.join("; "))).into());
            }
            let today = crate::site_time::today(c, s.site_id, now)?;
            m.validate(v.form.treatment_date, today)?;
            if stored(c, session)?.is_none() {
                c.execute(
                    "INSERT INTO rems_forms (session_id, patient_id, site_id, answers, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6)",
                    params![session.0, s.patient_id.0, s.site_id.0, json(&v.answers), ms(now), actor.name.as_str()],
                )?;
            }
            c.execute(
                "UPDATE rems_forms SET confirmation_number = $1, submitted_on = $2, submitted_by = $3, submitted_at = $4 WHERE session_id = $5",
                params![m.confirmation_number.trim(), date_text(m.submitted_on), actor.name.as_str(), ms(now), session.0],
            )?;
            audit::record(c, &actor, now, Entry {
                action: Action::Update, object_type: "rems_form", object_id: Some(session.to_string()),
                patient_id: Some(s.patient_id), site_id: Some(s.site_id), fields: &["confirmation_number", "submitted_on"],
            })?;
            Ok(view(c, &actor, &s, now)?.expect("checked above"))
        })
        .await
    }

    /// The form as CSV for the REMS portal; an audited export.
    pub async fn rems_form_csv(&self, actor: &Actor, session: SessionId) -> Result<String> {
        let v = self.rems_form(actor, session).await?;
        let now = self.now();
        let a = actor.clone();
        self.write(move |c| {
            audit::record(
                c,
                &a,
                now,
                Entry {
                    action: Action::Export,
                    object_type: "rems_form",
                    object_id: Some(session.to_string()),
                    patient_id: Some(v.patient_id),
                    site_id: Some(v.site_id),
                    fields: &["csv"],
                },
            )?;
            Ok(csv(&v))
        })
        .await
    }

    /// Every esketamine session at the site with a dose given from `from` on, with where its
    /// form stands against the 7-day limit; one audited read per patient.
    pub async fn rems_queue(&self, actor: &Actor, site: SiteId, from: OffsetDateTime) -> Result<Vec<RemsQueueItem>> {
        actor.require(Permission::ViewClinical)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        let now = self.now();
        let act = actor.clone();
        let out = self
            .read(move |c| {
                let rows = c.query(
                    &format!(
                        "SELECT {} FROM sessions WHERE site_id = $1 AND route = 'intranasal_esketamine' AND dose_started_at IS NOT NULL AND dose_started_at >= $2 ORDER BY dose_started_at, id",
                        crate::sessions::COLS
                    ),
                    params![site.0, ms(from)],
                )?;
                let mut out = Vec::new();
                for r in &rows {
                    let s = crate::sessions::session_from(r)?;
                    if let Some(v) = view(c, &act, &s, now)? {
                        out.push(RemsQueueItem {
                            session_id: s.id,
                            patient_id: s.patient_id,
                            patient_name: format!("{} {}", v.form.first_name, v.form.last_name),
                            treatment_date: v.form.treatment_date,
                            due_on: v.due_on,
                            status: v.status,
                            missing: v.form.missing.len(),
                            confirmation_number: v.confirmation_number,
                        });
                    }
                }
                Ok(out)
            })
            .await?;
        let mut patients: Vec<PatientId> = out.iter().map(|i| i.patient_id).collect();
        patients.sort();
        patients.dedup();
        self.audit_reads(actor, "rems_forms", patients).await?;
        Ok(out)
    }
}

/// The form as one CSV row (header first) for the REMS portal; every field of product-reference §(b).
pub fn csv(v: &RemsFormView) -> String {
    let f = &v.form;
    let yn = |b: bool| if b { "Y" } else { "N" };
    let oyn = |b: Option<bool>| b.map_or("", yn);
    let bp = |b: &Option<keta_domain::rems::FormBp>| {
        b.as_ref().map_or(String::new(), |b| format!("{:.0}/{:.0}", b.systolic_mmhg, b.diastolic_mmhg))
    };
    let exp = |e: Option<keta_domain::rems::Experienced>| match e {
        None => (String::new(), String::new()),
        Some(e) => (yn(e.experienced).to_string(), e.resolved.map_or(String::new(), |r| yn(r).to_string())),
    };
    let (sed, sed_r) = exp(f.sedation);
    let (dis, dis_r) = exp(f.dissociation);
    let (resp, resp_r) = exp(f.respiratory_depression);
    let o = |s: &Option<String>| s.clone().unwrap_or_default();
    let fields: Vec<(&str, String)> = vec![
        ("first_name", f.first_name.clone()),
        ("middle_initial", o(&f.middle_initial)),
        ("last_name", f.last_name.clone()),
        ("date_of_birth", f.date_of_birth.to_string()),
        ("sex", f.sex.clone()),
        ("first_treatment", yn(f.first_treatment).into()),
        ("enrolled_in_rems", yn(f.enrolled).into()),
        ("rems_patient_id", o(&f.rems_patient_id)),
        ("benzodiazepines", yn(f.benzodiazepines).into()),
        ("non_benzodiazepine_sedative_hypnotics", yn(f.non_benzodiazepine_sedative_hypnotics).into()),
        ("psychostimulants", yn(f.psychostimulants).into()),
        ("maois", yn(f.maois).into()),
        ("opioids", yn(f.opioids).into()),
        ("monitor_first_name", o(&f.monitor_first_name)),
        ("monitor_last_name", o(&f.monitor_last_name)),
        ("monitor_phone", o(&f.monitor_phone)),
        ("monitor_email", o(&f.monitor_email)),
        ("setting_name", f.setting_name.clone()),
        ("setting_address_1", o(&f.setting_address_1)),
        ("setting_address_2", o(&f.setting_address_2)),
        ("setting_city", o(&f.setting_city)),
        ("setting_state", o(&f.setting_state)),
        ("setting_zip", o(&f.setting_zip)),
        ("treatment_date", f.treatment_date.to_string()),
        ("dose_mg", f.dose_mg.map_or(String::new(), |d| format!("{}", d.0))),
        ("devices", f.devices.map_or(String::new(), |d| d.to_string())),
        ("lot_numbers", f.lot_numbers.join(" ")),
        ("total_treatment_minutes", f.total_treatment_minutes.map_or(String::new(), |m| m.to_string())),
        ("ready_to_leave_after_minutes", f.ready_to_leave_after_minutes.map_or(String::new(), |m| m.to_string())),
        ("vitals_acceptable_before", oyn(f.vitals_acceptable_before).into()),
        ("vitals_acceptable_end", oyn(f.vitals_acceptable_end).into()),
        ("bp_before", bp(&f.bp_before)),
        ("bp_40_min", bp(&f.bp_after_40_min)),
        ("bp_end", bp(&f.bp_end)),
        ("sedation", sed),
        ("sedation_resolved", sed_r),
        ("dissociation", dis),
        ("dissociation_resolved", dis_r),
        ("respiratory_depression", resp),
        ("respiratory_depression_resolved", resp_r),
        (
            "serious_adverse_events",
            f.serious_adverse_events
                .iter()
                .map(|e| format!("{} (outcome: {})", e.description, e.outcome))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    ];
    let cell = |s: &str| {
        // Quote every cell; a leading formula character is neutralised for spreadsheets.
        let s = if s.starts_with(['=', '+', '-', '@']) && s.parse::<f64>().is_err() {
            format!("'{s}")
        } else {
            s.to_string()
        };
        format!("\"{}\"", s.replace('"', "\"\""))
    };
    let header: Vec<String> = fields.iter().map(|(k, _)| cell(k)).collect();
    let row: Vec<String> = fields.iter().map(|(_, v)| cell(v)).collect();
    format!("{}\r\n{}\r\n", header.join(","), row.join(","))
}
