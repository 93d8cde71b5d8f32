//! Consent and REMS enrolment records: the patient's signature on one version of a
//! form, the clinician's countersignature, a withdrawal, and the documents a session needs
//! before its dose can start (`keta_domain::consent`). A consent row is never deleted and its
//! signed part never changes (the migration's triggers hold that in the database too).

use time::OffsetDateTime;

use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::consent::{ConsentKind, ConsentRecord, MissingDocument, NewConsent, WithdrawConsent};
use keta_domain::course::Route;
use keta_domain::ids::{PatientId, RecordId, SiteId};
use keta_domain::session::TreatmentSession;

use crate::audit::{self, Action, Entry};
use crate::conn::{Conn, Row};
use crate::error::{Result, StoreError};
use crate::time_codec::{date_text, from_ms, ms, opt_from_ms, parse_date};
use crate::{Actor, Store, params};

const COLS: &str = "id, patient_id, form_key, form_version, kind, route, form_title, form_text, patient_typed_name, patient_signature_svg, \
     patient_signed_at, recorded_by, countersigned_by, countersigned_at, rems_patient_id, rems_enrolled_on, withdrawn_at, withdrawn_by, withdrawal_reason, site_id";

/// Site setting (in `sites.settings`): `"inpatient"` for a certified inpatient REMS setting,
/// which does not enrol patients or file monitoring forms (product-reference §(b)). Any other
/// value, or none, is an outpatient setting: the stricter rule applies unless the site says otherwise.
pub const REMS_SETTING_KEY: &str = "rems_setting";

fn consent_from(r: &Row) -> Result<ConsentRecord> {
    let bad = |f: &str| StoreError::Corrupt(format!("consent {f}"));
    Ok(ConsentRecord {
        id: RecordId(r.i64("id")?),
        patient_id: PatientId(r.i64("patient_id")?),
        form_key: r.text("form_key")?,
        form_version: u32::try_from(r.i64("form_version")?).map_err(|_| bad("form_version"))?,
        kind: ConsentKind::parse(&r.text("kind")?).ok_or_else(|| bad("kind"))?,
        route: r.opt_text("route")?.map(|t| Route::parse(&t).ok_or_else(|| bad("route"))).transpose()?,
        form_title: r.text("form_title")?,
        form_text: r.text("form_text")?,
        patient_typed_name: r.text("patient_typed_name")?,
        patient_signature_svg: r.text("patient_signature_svg")?,
        patient_signed_at: from_ms(r.i64("patient_signed_at")?)?,
        recorded_by: r.text("recorded_by")?,
        countersigned_by: r.opt_text("countersigned_by")?,
        countersigned_at: opt_from_ms(r.opt_i64("countersigned_at")?)?,
        rems_patient_id: r.opt_text("rems_patient_id")?,
        rems_enrolled_on: r.opt_text("rems_enrolled_on")?.map(|d| parse_date(&d)).transpose()?,
        withdrawn_at: opt_from_ms(r.opt_i64("withdrawn_at")?)?,
        withdrawn_by: r.opt_text("withdrawn_by")?,
        withdrawal_reason: r.opt_text("withdrawal_reason")?,
    })
}

/// Every consent the patient signed, oldest first.
pub(crate) fn consents_for(c: &mut dyn Conn, patient: PatientId) -> Result<Vec<ConsentRecord>> {
    c.query(
        &format!("SELECT {COLS} FROM consents WHERE patient_id = $1 ORDER BY patient_signed_at, id"),
        params![patient.0],
    )?
    .iter()
    .map(consent_from)
    .collect()
}

/// One consent the actor may see, with its site; held until the transaction ends when `lock`.
fn get_consent(c: &mut dyn Conn, actor: &Actor, id: RecordId, lock: bool) -> Result<(ConsentRecord, SiteId)> {
    let sql = format!("SELECT {COLS} FROM consents WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let r = c.query_opt(&sql, params![id.0])?.ok_or_else(|| StoreError::NotFound(format!("consent {id}")))?;
    let rec = consent_from(&r)?;
    let site = SiteId(r.i64("site_id")?);
    if !actor.may_see(site, rec.patient_id) {
        return Err(StoreError::NotFound(format!("consent {id}")));
    }
    Ok((rec, site))
}

/// Whether the site is an outpatient REMS setting (see [`REMS_SETTING_KEY`]).
pub(crate) fn is_outpatient_setting(c: &mut dyn Conn, site: SiteId) -> Result<bool> {
    let s = crate::sites::get_site(c, site)?;
    Ok(s.settings.get(REMS_SETTING_KEY).and_then(|v| v.as_str()) != Some("inpatient"))
}

/// What the session needs and the patient's records lack before its dose can start.
pub(crate) fn missing_documents(c: &mut dyn Conn, s: &TreatmentSession) -> Result<Vec<MissingDocument>> {
    let records = consents_for(c, s.patient_id)?;
    let outpatient = is_outpatient_setting(c, s.site_id)?;
    Ok(keta_domain::consent::missing_for_session(s.patient_id, s.route, outpatient, &records))
}

fn entry<'a>(action: Action, id: i64, rec: &ConsentRecord, site: SiteId, fields: &'a [&'a str]) -> Entry<'a> {
    Entry {
        action,
        object_type: "consent",
        object_id: Some(id.to_string()),
        patient_id: Some(rec.patient_id),
        site_id: Some(site),
        fields,
    }
}

impl Store {
    /// Records the patient's signature (typed name and drawn signature) on the current version
    /// of a form, with the form's title and text as shown. A clinician countersigns it next.
    pub async fn record_consent(&self, actor: &Actor, patient: PatientId, new: NewConsent) -> Result<ConsentRecord> {
        actor.require(Permission::RecordSession)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let p = crate::patients::get_patient(c, &actor, patient)?;
            let zone = crate::site_time::zone(&crate::sites::get_site(c, p.site_id)?.time_zone);
            let form = new.validate(crate::site_time::local_date(&zone, now))?;
            let id = c.insert(
                "INSERT INTO consents (patient_id, site_id, form_key, form_version, kind, route, form_title, form_text, patient_typed_name,
                 patient_signature_svg, patient_signed_at, recorded_by, rems_patient_id, rems_enrolled_on)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                params![
                    patient.0, p.site_id.0, form.key.as_str(), i64::from(form.version), form.kind.as_str(), form.route.map(Route::as_str),
                    form.title.as_str(), form.text.as_str(), new.patient_typed_name.trim(), new.patient_signature_svg.trim(), ms(now),
                    actor.name.as_str(), new.rems_patient_id.as_deref().map(str::trim), new.rems_enrolled_on.map(date_text)
                ],
            )?;
            let (rec, site) = get_consent(c, &actor, RecordId(id), false)?;
            audit::record(
                c,
                &actor,
                now,
                entry(Action::Sign, id, &rec, site, &["form_key", "form_version", "patient_typed_name", "patient_signature_svg", "rems_patient_id", "rems_enrolled_on"]),
            )?;
            Ok(rec)
        })
        .await
    }

    /// A clinician countersigns a consent the patient signed; once.
    pub async fn countersign_consent(&self, actor: &Actor, id: RecordId) -> Result<ConsentRecord> {
        actor.require(Permission::SignNotes)?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let (rec, site) = get_consent(c, &actor, id, true)?;
            if let Some(by) = &rec.countersigned_by {
                return Err(DomainError::Conflict(format!("consent {id} is already countersigned by {by}")).into());
            }
            if rec.withdrawn_at.is_some() {
                return Err(DomainError::Conflict(format!(
                    "consent {id} was withdrawn; the patient signs the form again"
                ))
                .into());
            }
            c.execute(
                "UPDATE consents SET countersigned_by = $1, countersigned_at = $2 WHERE id = $3",
                params![actor.name.as_str(), ms(now), id.0],
            )?;
            audit::record(
                c,
                &actor,
                now,
                entry(Action::Sign, id.0, &rec, site, &["countersigned_by", "countersigned_at"]),
            )?;
            Ok(get_consent(c, &actor, id, false)?.0)
        })
        .await
    }

    /// The patient withdraws a consent; the record stays, marked withdrawn with the reason.
    pub async fn withdraw_consent(&self, actor: &Actor, id: RecordId, w: WithdrawConsent) -> Result<ConsentRecord> {
        actor.require(Permission::RecordSession)?;
        w.validate()?;
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let (rec, site) = get_consent(c, &actor, id, true)?;
            if rec.withdrawn_at.is_some() {
                return Err(DomainError::Conflict(format!("consent {id} is already withdrawn")).into());
            }
            c.execute(
                "UPDATE consents SET withdrawn_at = $1, withdrawn_by = $2, withdrawal_reason = $3 WHERE id = $4",
                params![ms(now), actor.name.as_str(), w.reason.trim(), id.0],
            )?;
            audit::record(
                c,
                &actor,
                now,
                entry(Action::Update, id.0, &rec, site, &["withdrawn_at", "withdrawal_reason"]),
            )?;
            Ok(get_consent(c, &actor, id, false)?.0)
        })
        .await
    }

    /// Every consent the patient signed (every version, withdrawn ones too); an audited read.
    pub async fn list_consents(&self, actor: &Actor, patient: PatientId) -> Result<Vec<ConsentRecord>> {
        self.read_patient_audited(actor, Permission::ViewClinical, patient, "consents", move |c, _| {
            consents_for(c, patient)
        })
        .await
    }

    /// What a session still needs before its dose can start (consent, REMS enrolment).
    pub async fn session_missing_documents(
        &self,
        actor: &Actor,
        session: keta_domain::ids::SessionId,
    ) -> Result<Vec<MissingDocument>> {
        self.read_record_audited(
            actor,
            Permission::ViewClinical,
            "consents",
            Some(session.to_string()),
            move |c, act| {
                let s = crate::sessions::get_session(c, act, session)?;
                Ok((s.patient_id, missing_documents(c, &s)?))
            },
        )
        .await
    }
}

/// The kind of REMS setting a site is (product-reference §(b)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemsSetting {
    /// Enrols patients and files a Patient Monitoring Form after every esketamine session.
    Outpatient,
    /// A certified inpatient setting (including emergency departments): no enrolment, no monitoring forms.
    Inpatient,
}

/// `PUT /api/v1/sites/{id}/rems-setting`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteRemsSetting {
    pub setting: RemsSetting,
}

impl Store {
    /// Records whether the site is an outpatient or an inpatient REMS setting (a prescriber,
    /// as medical director; audited). A site that never said is treated as outpatient.
    pub async fn set_site_rems_setting(
        &self,
        actor: &Actor,
        site: SiteId,
        setting: RemsSetting,
    ) -> Result<SiteRemsSetting> {
        actor.require(Permission::PlanTreatment)?;
        if !actor.scope.allows(site) {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        let now = self.now();
        let actor = actor.clone();
        self.write(move |c| {
            let value = serde_json::to_value(setting).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            crate::rules::write_site_setting(c, &actor, now, site, "site_rems_setting", REMS_SETTING_KEY, Some(value))?;
            Ok(SiteRemsSetting { setting })
        })
        .await
    }
}

/// When a consent was signed and countersigned, for the note and the chart.
pub fn signed_line(r: &ConsentRecord, zone_name: &str) -> String {
    let zone = crate::site_time::zone(zone_name);
    let at = |t: OffsetDateTime| {
        let l = crate::site_time::local(&zone, t);
        format!("{} {:02}:{:02}", l.date(), l.hour(), l.minute())
    };
    let mut s = format!(
        "{} v{}: signed by {} on {}",
        r.form_title,
        r.form_version,
        r.patient_typed_name,
        at(r.patient_signed_at)
    );
    match (&r.countersigned_by, r.countersigned_at) {
        (Some(by), Some(t)) => s.push_str(&format!(", countersigned by {by} on {}", at(t))),
        _ => s.push_str(", awaiting countersignature"),
    }
    if let Some(t) = r.withdrawn_at {
        s.push_str(&format!("; withdrawn on {}", at(t)));
    }
    s
}
