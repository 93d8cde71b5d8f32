//! Clinic settings the links read: contact details, relapse watch, at-home pre-dose.

use super::*;

/// What a site tells its patients between sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientContactSettings {
    /// Shown with the site's crisis line when a safety answer is positive.
    pub crisis_instructions: String,
    /// The clinic's phone number for patients (shown on refused links and in the patient view).
    #[serde(default)]
    pub clinic_phone: Option<String>,
}

impl PatientContactSettings {
    pub fn validate(&self) -> std::result::Result<(), DomainError> {
        let mut v = keta_domain::error::Validator::new();
        let n = self.crisis_instructions.trim().chars().count();
        v.check((20..=2000).contains(&n), "crisis_instructions", "write between 20 and 2000 characters");
        if let Some(p) = &self.clinic_phone {
            v.check(
                (3..=40).contains(&p.trim().len()) && !p.contains(['\r', '\n']),
                "clinic_phone",
                "give a phone number of 3 to 40 characters",
            );
        }
        v.finish()
    }
}

/// What the phone page shows a patient of a site.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SiteForPatients {
    pub site_name: String,
    pub time_zone: String,
    pub crisis_line: String,
    pub crisis_instructions: String,
    pub clinic_phone: Option<String>,
}

pub(super) fn site_for_patients(c: &mut dyn Conn, site: SiteId) -> Result<SiteForPatients> {
    let s = crate::sites::get_site(c, site)?;
    let row = c.query_opt(
        "SELECT crisis_instructions, clinic_phone FROM site_patient_settings WHERE site_id = $1",
        params![site.0],
    )?;
    let (crisis_instructions, clinic_phone) = match row {
        Some(r) => (r.text("crisis_instructions")?, r.opt_text("clinic_phone")?),
        None => (RemoteSafetyPolicy::builtin().default_crisis_instructions.clone(), None),
    };
    Ok(SiteForPatients {
        site_name: s.name,
        time_zone: s.time_zone,
        crisis_line: s.crisis_line,
        crisis_instructions,
        clinic_phone,
    })
}

/// Keys of `clinic_settings`.
pub const RELAPSE_SETTINGS: &str = "relapse_watch";
pub const HOME_PRE_DOSE_SETTINGS: &str = "home_pre_dose";

pub(crate) fn clinic_setting<T: serde::de::DeserializeOwned>(c: &mut dyn Conn, key: &str) -> Result<Option<T>> {
    c.query_opt("SELECT value FROM clinic_settings WHERE key = $1", params![key])?
        .map(|r| from_json(&r.text("value")?))
        .transpose()
}

pub(crate) fn relapse_settings(c: &mut dyn Conn) -> Result<RelapseSettings> {
    Ok(clinic_setting(c, RELAPSE_SETTINGS)?.unwrap_or_default())
}
