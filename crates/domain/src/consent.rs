//! Consent and REMS enrolment as records.
//!
//! Consent forms are versioned data (`data/consents/forms.toml`): a treatment consent per
//! route, the SPRAVATO REMS patient enrolment, and data sharing for research. The patient
//! signs on the tablet (typed name plus a drawn signature, kept as SVG path data) and a
//! clinician countersigns; the record keeps the exact title and text of the version signed.
//!
//! A consent is *current* when it is countersigned, not withdrawn, and signed on the newest
//! version of its form. A session cannot start without a current treatment consent for its
//! route, and an esketamine session at an outpatient site cannot start without a current REMS
//! enrolment (clinical-reference §4.1: "enrol patient before first treatment").

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::course::Route;
use crate::error::{DomainError, Validator};
use crate::ids::{PatientId, RecordId};

const EMBEDDED: &str = include_str!("../../../data/consents/forms.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentKind {
    /// Consent to treatment by one route.
    Treatment,
    /// SPRAVATO REMS patient enrolment (esketamine).
    RemsEnrolment,
    /// Sharing de-identified data for research (optional; gates nothing).
    ResearchDataSharing,
}

impl ConsentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Treatment => "treatment",
            Self::RemsEnrolment => "rems_enrolment",
            Self::ResearchDataSharing => "research_data_sharing",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Treatment, Self::RemsEnrolment, Self::ResearchDataSharing].into_iter().find(|k| k.as_str() == s)
    }
}

/// One version of one consent form, as the patient sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentForm {
    pub key: String,
    pub version: u32,
    pub kind: ConsentKind,
    #[serde(default)]
    pub route: Option<Route>,
    pub title: String,
    /// The reference section the form's clinical statements come from.
    pub source: String,
    pub text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormsFile {
    form: Vec<ConsentForm>,
}

/// Parses and checks a forms file: every (key, version) once, a key keeps its kind and
/// route, a treatment form names its route, every route has one treatment form, and the
/// REMS enrolment form exists.
pub fn parse_forms(text: &str) -> Result<Vec<ConsentForm>, String> {
    let file: FormsFile = toml::from_str(text).map_err(|e| format!("consent forms: {e}"))?;
    let forms = file.form;
    for (i, f) in forms.iter().enumerate() {
        if f.key.trim().is_empty() || f.title.trim().is_empty() || f.text.trim().is_empty() || f.version == 0 {
            return Err(format!("consent form {}: key, title, text and a version of 1 or more are needed", f.key));
        }
        if f.kind == ConsentKind::Treatment && f.route.is_none() {
            return Err(format!("consent form {}: a treatment consent names its route", f.key));
        }
        for g in &forms[..i] {
            if g.key == f.key && g.version == f.version {
                return Err(format!("consent form {} version {} appears twice", f.key, f.version));
            }
            if g.key == f.key && (g.kind != f.kind || g.route != f.route) {
                return Err(format!("consent form {}: every version keeps the same kind and route", f.key));
            }
            if g.key != f.key && f.kind != ConsentKind::ResearchDataSharing && g.kind == f.kind && g.route == f.route {
                return Err(format!("consent forms {} and {} are both the {} form", g.key, f.key, f.kind.as_str()));
            }
        }
    }
    for r in Route::ALL {
        if !forms.iter().any(|f| f.kind == ConsentKind::Treatment && f.route == Some(r)) {
            return Err(format!("no treatment consent form for route {}", r.as_str()));
        }
    }
    if !forms.iter().any(|f| f.kind == ConsentKind::RemsEnrolment) {
        return Err("no REMS enrolment form".into());
    }
    Ok(forms)
}

/// Every version of every form shipped in `data/consents/forms.toml`.
pub fn consent_forms() -> &'static [ConsentForm] {
    static FORMS: OnceLock<Vec<ConsentForm>> = OnceLock::new();
    FORMS.get_or_init(|| parse_forms(EMBEDDED).expect("data/consents/forms.toml is valid"))
}

/// The newest version of each form, in file order.
pub fn current_forms() -> Vec<&'static ConsentForm> {
    let mut out: Vec<&ConsentForm> = Vec::new();
    for f in consent_forms() {
        if out.iter().any(|g| g.key == f.key) {
            continue;
        }
        out.push(current_form(&f.key).expect("the key exists"));
    }
    out
}

/// The newest version of the form `key`.
pub fn current_form(key: &str) -> Option<&'static ConsentForm> {
    consent_forms().iter().filter(|f| f.key == key).max_by_key(|f| f.version)
}

/// One version of one form.
pub fn form_version(key: &str, version: u32) -> Option<&'static ConsentForm> {
    consent_forms().iter().find(|f| f.key == key && f.version == version)
}

/// The treatment consent form for a route.
pub fn treatment_form(route: Route) -> &'static ConsentForm {
    current_forms()
        .into_iter()
        .find(|f| f.kind == ConsentKind::Treatment && f.route == Some(route))
        .expect("parse_forms checks every route has a treatment form")
}

/// The REMS enrolment form.
pub fn rems_form() -> &'static ConsentForm {
    current_forms()
        .into_iter()
        .find(|f| f.kind == ConsentKind::RemsEnrolment)
        .expect("parse_forms checks the REMS form exists")
}

/// Longest drawn signature kept (SVG path data); a drawn signature is a few kilobytes.
pub const SIGNATURE_MAX_CHARS: usize = 200_000;

/// The patient's signature on the tablet, as the API receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConsent {
    /// The form's key, e.g. `treatment_iv_racemic`.
    #[schema(max_length = 64)]
    pub form_key: String,
    /// The version the patient was shown; must be the form's current version.
    #[schema(minimum = 1, maximum = 1000)]
    pub form_version: u32,
    /// The patient's name as they typed it.
    #[schema(min_length = 1, max_length = 200)]
    pub patient_typed_name: String,
    /// The drawn signature as SVG path data (`M x y L x y ...`), in a 0-10000 box.
    #[schema(min_length = 1, max_length = 200000)]
    pub patient_signature_svg: String,
    /// REMS enrolment only: the patient's REMS id as the REMS issued it.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub rems_patient_id: Option<String>,
    /// REMS enrolment only: the date the REMS enrolment was made.
    #[serde(default)]
    pub rems_enrolled_on: Option<Date>,
}

/// True for SVG path data drawn from the tablet: move/line/curve commands and numbers only.
pub fn is_signature_path(s: &str) -> bool {
    let s = s.trim();
    let draws = s.chars().filter(|c| matches!(c, 'L' | 'l' | 'C' | 'c' | 'Q' | 'q')).count();
    s.starts_with(['M', 'm'])
        && draws >= 1
        && s.len() <= SIGNATURE_MAX_CHARS
        && s.chars().all(|c| c.is_ascii_digit() || " .,-MmLlCcQqZz\n".contains(c))
        && s.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter(|n| !n.is_empty())
            .all(|n| n.parse::<f64>().is_ok_and(|v| (-1.0..=10_000.0).contains(&v)))
}

impl NewConsent {
    /// Checks the signature against the form it names; `today` is the site's local date.
    pub fn validate(&self, today: Date) -> Result<&'static ConsentForm, DomainError> {
        let Some(current) = current_form(&self.form_key) else {
            let keys: Vec<&str> = current_forms().iter().map(|f| f.key.as_str()).collect();
            return Err(DomainError::field(
                "form_key",
                format!("no consent form '{}'; forms: {}", self.form_key, keys.join(", ")),
            ));
        };
        let mut v = Validator::new();
        v.check(
            self.form_version == current.version,
            "form_version",
            format!(
                "version {} is not the current version of {} (version {}): show the patient the current form",
                self.form_version, current.key, current.version
            ),
        );
        let name = self.patient_typed_name.trim();
        v.check(
            !name.is_empty() && name.chars().count() <= 200,
            "patient_typed_name",
            "the patient types their name (1-200 characters)",
        );
        v.check(
            is_signature_path(&self.patient_signature_svg),
            "patient_signature_svg",
            "draw the signature: SVG path data (M, L, C, Q, Z and numbers 0-10000), at least one stroke",
        );
        if current.kind == ConsentKind::RemsEnrolment {
            let id = self.rems_patient_id.as_deref().map(str::trim).unwrap_or_default();
            v.check(
                !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "rems_patient_id",
                "give the REMS patient id the REMS issued (letters, digits and '-', up to 64)",
            );
            match self.rems_enrolled_on {
                None => v.push("rems_enrolled_on", "give the date the patient was enrolled in the REMS"),
                Some(d) if d > today => v.push("rems_enrolled_on", "the enrolment date cannot be in the future"),
                Some(_) => {}
            }
        } else {
            v.check(
                self.rems_patient_id.is_none() && self.rems_enrolled_on.is_none(),
                "rems_patient_id",
                "REMS id and enrolment date belong only on the REMS enrolment form",
            );
        }
        v.finish()?;
        Ok(current)
    }
}

/// A signed consent as kept: the version signed, its text, both signatures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentRecord {
    pub id: RecordId,
    pub patient_id: PatientId,
    pub form_key: String,
    pub form_version: u32,
    pub kind: ConsentKind,
    pub route: Option<Route>,
    /// The title and text exactly as the patient was shown them.
    pub form_title: String,
    pub form_text: String,
    pub patient_typed_name: String,
    pub patient_signature_svg: String,
    #[serde(with = "time::serde::rfc3339")]
    pub patient_signed_at: OffsetDateTime,
    /// The staff account that handed the tablet to the patient.
    pub recorded_by: String,
    pub countersigned_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub countersigned_at: Option<OffsetDateTime>,
    pub rems_patient_id: Option<String>,
    pub rems_enrolled_on: Option<Date>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub withdrawn_at: Option<OffsetDateTime>,
    pub withdrawn_by: Option<String>,
    pub withdrawal_reason: Option<String>,
}

impl ConsentRecord {
    /// Countersigned, not withdrawn, and on the newest version of its form.
    pub fn is_current(&self) -> bool {
        self.countersigned_at.is_some()
            && self.withdrawn_at.is_none()
            && current_form(&self.form_key).is_some_and(|f| f.version == self.form_version)
    }
}

/// A document a session needs and the record lacks: what is missing and where to sign it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MissingDocument {
    pub form_key: String,
    pub message: String,
    /// The page where the form is signed.
    pub link: String,
}

impl MissingDocument {
    /// The refusal line: the fact and where to sign.
    pub fn line(&self) -> String {
        format!("{} [sign it: {}]", self.message, self.link)
    }
}

/// The page where the patient signs a form.
pub fn form_link(patient: PatientId, form_key: &str) -> String {
    format!("/patients/{patient}/consents?form={form_key}")
}

/// Why the best record for `form` is not current, or `None` when one is.
fn why_not_current(form: &ConsentForm, records: &[ConsentRecord], what: &str) -> Option<String> {
    let mine: Vec<&ConsentRecord> = records.iter().filter(|r| r.form_key == form.key).collect();
    if mine.iter().any(|r| r.is_current()) {
        return None;
    }
    let latest = mine.iter().max_by_key(|r| (r.patient_signed_at, r.id));
    Some(match latest {
        None => format!("no {what} on file"),
        Some(r) if r.withdrawn_at.is_some() => format!(
            "the {what} was withdrawn{}",
            r.withdrawal_reason.as_deref().map(|w| format!(" ({w})")).unwrap_or_default()
        ),
        Some(r) if r.form_version != form.version => format!(
            "the {what} on file is version {}; the current form is version {}: the patient signs the current version",
            r.form_version, form.version
        ),
        Some(_) => format!("the {what} signed by the patient waits for a clinician's countersignature"),
    })
}

/// What a session of `route` at a site needs and the patient's records lack. `outpatient`
/// is whether the site is an outpatient REMS setting (inpatient settings do not enrol
/// patients: product-reference §(b)).
pub fn missing_for_session(
    patient: PatientId,
    route: Route,
    outpatient: bool,
    records: &[ConsentRecord],
) -> Vec<MissingDocument> {
    let mut out = Vec::new();
    let treatment = treatment_form(route);
    if let Some(m) = why_not_current(treatment, records, &format!("consent to treatment for {}", route.label())) {
        out.push(MissingDocument {
            form_key: treatment.key.clone(),
            message: m,
            link: form_link(patient, &treatment.key),
        });
    }
    if route == Route::IntranasalEsketamine && outpatient {
        let rems = rems_form();
        if let Some(m) = why_not_current(rems, records, "SPRAVATO REMS enrolment (enrolment date and REMS patient id)")
        {
            out.push(MissingDocument { form_key: rems.key.clone(), message: m, link: form_link(patient, &rems.key) });
        }
    }
    out
}

/// A withdrawal, as the API receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawConsent {
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl WithdrawConsent {
    pub fn validate(&self) -> Result<(), DomainError> {
        let r = self.reason.trim();
        if r.is_empty() || r.len() > 500 {
            return Err(DomainError::field("reason", "say why the consent is withdrawn (1-500 characters)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    const SIG: &str = "M 10 10 L 200 40 L 400 20";

    fn signed(form: &ConsentForm, countersigned: bool) -> ConsentRecord {
        ConsentRecord {
            id: RecordId(1),
            patient_id: PatientId(7),
            form_key: form.key.clone(),
            form_version: form.version,
            kind: form.kind,
            route: form.route,
            form_title: form.title.clone(),
            form_text: form.text.clone(),
            patient_typed_name: "Rowan Test".into(),
            patient_signature_svg: SIG.into(),
            patient_signed_at: datetime!(2026-11-01 10:00 UTC),
            recorded_by: "nurse".into(),
            countersigned_by: countersigned.then(|| "dr".into()),
            countersigned_at: countersigned.then_some(datetime!(2026-11-01 10:05 UTC)),
            rems_patient_id: None,
            rems_enrolled_on: None,
            withdrawn_at: None,
            withdrawn_by: None,
            withdrawal_reason: None,
        }
    }

    #[test]
    fn the_shipped_forms_parse_and_cover_every_route() {
        for r in Route::ALL {
            assert_eq!(treatment_form(r).route, Some(r));
        }
        assert_eq!(rems_form().route, Some(Route::IntranasalEsketamine));
    }

    #[test]
    fn a_forms_file_missing_a_route_or_repeating_a_version_is_refused() {
        let one = "[[form]]\nkey='a'\nversion=1\nkind='rems_enrolment'\ntitle='t'\nsource='s'\ntext='x'\n";
        assert!(parse_forms(one).unwrap_err().contains("no treatment consent form"));
        let twice = format!("{}{}", one, one);
        assert!(parse_forms(&twice).unwrap_err().contains("appears twice"));
    }

    #[test]
    fn each_missing_fact_is_named_with_its_link() {
        let p = PatientId(7);
        let m = missing_for_session(p, Route::IntranasalEsketamine, true, &[]);
        assert_eq!(m.len(), 2);
        assert!(m[0].message.contains("no consent to treatment for Esketamine"), "{m:?}");
        assert_eq!(m[0].link, "/patients/7/consents?form=treatment_intranasal_esketamine");
        assert!(m[1].message.contains("REMS enrolment"), "{m:?}");
        // Inpatient settings do not enrol patients.
        assert_eq!(missing_for_session(p, Route::IntranasalEsketamine, false, &[]).len(), 1);
        // Not yet countersigned, then withdrawn.
        let mut rec = signed(treatment_form(Route::IvRacemic), false);
        let m = missing_for_session(p, Route::IvRacemic, true, std::slice::from_ref(&rec));
        assert!(m[0].message.contains("countersignature"), "{m:?}");
        rec.countersigned_at = Some(datetime!(2026-11-01 10:05 UTC));
        assert!(missing_for_session(p, Route::IvRacemic, true, std::slice::from_ref(&rec)).is_empty());
        rec.withdrawn_at = Some(datetime!(2026-11-02 10:05 UTC));
        rec.withdrawal_reason = Some("changed mind".into());
        let m = missing_for_session(p, Route::IvRacemic, true, std::slice::from_ref(&rec));
        assert!(m[0].message.contains("withdrawn (changed mind)"), "{m:?}");
        // An old version does not count.
        let mut old = signed(treatment_form(Route::IvRacemic), true);
        old.form_version = 0;
        let m = missing_for_session(p, Route::IvRacemic, true, &[old]);
        assert!(m[0].message.contains("version 0; the current form is version 1"), "{m:?}");
        // A consent for another route does not count.
        let other = signed(treatment_form(Route::ImRacemic), true);
        assert_eq!(missing_for_session(p, Route::IvRacemic, true, &[other]).len(), 1);
    }

    #[test]
    fn a_signature_must_be_drawn_and_the_rems_form_needs_its_id_and_date() {
        let today = date!(2026 - 11 - 02);
        let ok = NewConsent {
            form_key: "treatment_iv_racemic".into(),
            form_version: 1,
            patient_typed_name: "Rowan Test".into(),
            patient_signature_svg: SIG.into(),
            rems_patient_id: None,
            rems_enrolled_on: None,
        };
        assert!(ok.validate(today).is_ok());
        for bad in ["", "M 1 1", "<script>", "M 1 1 L 2 2 javascript:", "M 1 1 L 1e400 2", "M 1 1 L 20000 2"] {
            let e = NewConsent { patient_signature_svg: bad.into(), ..ok.clone() }.validate(today).unwrap_err();
            assert!(format!("{e}").contains("patient_signature_svg"), "{bad}: {e}");
        }
        let stale = NewConsent { form_version: 2, ..ok.clone() }.validate(today).unwrap_err();
        assert!(format!("{stale}").contains("not the current version"));
        let rems = NewConsent { form_key: "rems_enrolment".into(), ..ok.clone() };
        let e = format!("{}", rems.validate(today).unwrap_err());
        assert!(e.contains("rems_patient_id") && e.contains("rems_enrolled_on"), "{e}");
        let future = NewConsent {
            rems_patient_id: Some("R-1".into()),
            rems_enrolled_on: Some(date!(2026 - 11 - 03)),
            ..rems.clone()
        };
        assert!(format!("{}", future.validate(today).unwrap_err()).contains("future"));
        let good = NewConsent { rems_enrolled_on: Some(today), ..future };
        assert_eq!(good.validate(today).unwrap().kind, ConsentKind::RemsEnrolment);
        let misplaced = NewConsent { rems_patient_id: Some("R-1".into()), ..ok };
        assert!(misplaced.validate(today).is_err());
    }
}
