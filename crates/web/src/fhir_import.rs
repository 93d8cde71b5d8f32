//! Referral import: `POST /fhir/R4` with a FHIR R4 `transaction` or `collection` Bundle of one
//! Patient with Conditions (diagnoses), MedicationStatements (past antidepressant trials) and
//! Observations (prior questionnaire totals, e.g. PHQ-9 LOINC 44261-6) creates the patient with
//! that history (`Store::import_referral`), through the forms' own validation, all or nothing.
//!
//! A bad Bundle is refused whole with an `OperationOutcome` whose issues name each bad element
//! by a FHIRPath-like expression (`Bundle.entry[2].resource.effectiveDateTime`): problems of form
//! are found here, problems of content by the domain rules, whose field names are mapped back
//! to the element they came from.
//!
//! Codes are read from `data/fhir/referral-codes.toml` (a clinic list; see the file) and, for
//! questionnaire totals, from the instruments' LOINC codes (`data/instruments/*.toml`).
//!
//! Keta-specific elements (no standard element carries them):
//! * the trial's outcome: `MedicationStatement.statusReason` coded in [`TRIAL_OUTCOME_SYSTEM`]
//!   (`no_response`, `partial_response`, `response`, `intolerance`), or that word as its text;
//! * the trial's length, when its dates are not known: `dosage[0].timing.repeat.boundsDuration`
//!   (UCUM `wk`, `d` or `mo`), as Keta itself exports trials;
//! * whether the trial was adequate and in the current episode: extensions [`ADEQUATE_URL`] and
//!   [`CURRENT_EPISODE_URL`] with `valueBoolean`; when absent, `false`, so a referral's trial
//!   counts towards treatment resistance only once a clinician has judged it.
//!
//! The site is `?site=ID`, or the user's only site.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::Date;

use keta_domain::DomainError;
use keta_domain::eligibility::{AntidepressantTrial, TrialOutcome};
use keta_domain::ids::SiteId;
use keta_domain::patient::{Indication, NewPatient, Sex};
use keta_domain::referral::{NewReferral, PriorScore, ReferralCodes};
use keta_domain::units::Milligrams;
use keta_store::StoreError;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;

/// Keta's code system for an antidepressant trial's outcome.
pub const TRIAL_OUTCOME_SYSTEM: &str = "urn:keta:fhir:trial-outcome";
/// Extension (valueBoolean): the clinician judged dose and duration adequate.
pub const ADEQUATE_URL: &str = "urn:keta:fhir:adequate-trial";
/// Extension (valueBoolean): the trial was in the current depressive episode.
pub const CURRENT_EPISODE_URL: &str = "urn:keta:fhir:current-episode";

const FHIR_JSON: &str = "application/fhir+json";

/// One problem with the Bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// FHIR issue type: `invalid`, `required`, `value`, `not-supported`, `duplicate`, ...
    pub code: &'static str,
    pub expression: String,
    pub diagnostics: String,
}

/// A Bundle turned into a referral, with where each domain field came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReferral {
    pub referral: NewReferral,
    /// Domain field (`patient.mrn`, `trials[0].weeks`) → Bundle element.
    pub paths: HashMap<String, String>,
    /// Per Bundle entry: what it became (`Patient`, `trial i`, `score i`, `diagnosis`).
    pub entries: Vec<EntryKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Patient,
    Diagnosis,
    Trial(usize),
    Score(usize),
}

#[derive(Default)]
struct Ctx {
    issues: Vec<Issue>,
    paths: HashMap<String, String>,
}

impl Ctx {
    fn issue(&mut self, code: &'static str, at: impl Into<String>, msg: impl Into<String>) {
        self.issues.push(Issue { code, expression: at.into(), diagnostics: msg.into() });
    }
    fn path(&mut self, field: impl Into<String>, at: impl Into<String>) {
        self.paths.insert(field.into(), at.into());
    }
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A FHIR `date` or `dateTime`'s calendar date; a partial date (year or year-month) is refused.
fn fhir_date(text: &str) -> Option<Date> {
    let d = text.get(..10)?;
    if text.len() > 10 && !text[10..].starts_with('T') {
        return None;
    }
    Date::parse(d, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// Parses a Bundle; `site` is where the patient is registered.
// Long on purpose: the Bundle's resources mapped field by field, each field with its own issue.
#[allow(clippy::too_many_lines)]
pub fn parse_bundle(body: &Value, site: SiteId, codes: &ReferralCodes) -> Result<ParsedReferral, Vec<Issue>> {
    let mut cx = Ctx::default();
    if !body.is_object() {
        cx.issue("structure", "Bundle", "send a FHIR R4 Bundle (a JSON object)");
        return Err(cx.issues);
    }
    if s(body, "resourceType") != Some("Bundle") {
        cx.issue("invalid", "Bundle.resourceType", "the resource must be a Bundle");
        return Err(cx.issues);
    }
    let kind = s(body, "type").unwrap_or("");
    if !matches!(kind, "transaction" | "collection") {
        cx.issue("value", "Bundle.type", "send a transaction or collection Bundle");
    }
    let entries = arr(body, "entry");
    if entries.is_empty() {
        cx.issue("required", "Bundle.entry", "the Bundle has no entries; send one Patient and their history");
        return Err(cx.issues);
    }
    // Find the one Patient first: every other resource must refer to it.
    let mut patient_at: Option<usize> = None;
    for (i, e) in entries.iter().enumerate() {
        if e.get("resource").and_then(|r| s(r, "resourceType")) == Some("Patient") {
            if patient_at.is_some() {
                cx.issue(
                    "not-supported",
                    format!("Bundle.entry[{i}].resource"),
                    "a referral is for one patient; send one Patient per Bundle",
                );
            } else {
                patient_at = Some(i);
            }
        }
    }
    let Some(pi) = patient_at else {
        cx.issue("required", "Bundle.entry", "the Bundle has no Patient");
        return Err(cx.issues);
    };
    let mut refs: Vec<String> = Vec::new();
    if let Some(u) = s(&entries[pi], "fullUrl") {
        refs.push(u.to_string());
    }
    if let Some(id) = entries[pi].get("resource").and_then(|r| s(r, "id")) {
        refs.push(format!("Patient/{id}"));
    }

    let mut diagnoses: Vec<String> = Vec::new();
    let mut indication: Option<Indication> = None;
    let mut trials = Vec::new();
    let mut scores = Vec::new();
    let mut kinds = Vec::new();
    let mut patient: Option<NewPatient> = None;
    for (i, e) in entries.iter().enumerate() {
        let base = format!("Bundle.entry[{i}].resource");
        if kind == "transaction" {
            let m = e.get("request").and_then(|r| s(r, "method"));
            if m != Some("POST") {
                cx.issue("value", format!("Bundle.entry[{i}].request.method"), "a referral only creates: use POST");
            }
        }
        let Some(r) = e.get("resource").filter(|r| r.is_object()) else {
            cx.issue("required", format!("Bundle.entry[{i}].resource"), "each entry carries a resource");
            kinds.push(EntryKind::Diagnosis);
            continue;
        };
        let rt = s(r, "resourceType").unwrap_or("");
        if rt != "Patient" && matches!(rt, "Condition" | "MedicationStatement" | "Observation") {
            let reference = r.get("subject").and_then(|x| s(x, "reference"));
            if !reference.is_some_and(|x| refs.iter().any(|p| p == x)) {
                cx.issue(
                    "invalid",
                    format!("{base}.subject.reference"),
                    "refer to the Bundle's Patient (its fullUrl, or Patient/<id>)",
                );
            }
        }
        match rt {
            "Patient" if i == pi => {
                patient = patient_from(&mut cx, &base, r, site);
                kinds.push(EntryKind::Patient);
            }
            "Patient" => kinds.push(EntryKind::Patient),
            "Condition" => {
                condition(&mut cx, &base, r, codes, &mut diagnoses, &mut indication);
                kinds.push(EntryKind::Diagnosis);
            }
            "MedicationStatement" => {
                let n = trials.len();
                if let Some(t) = trial(&mut cx, &base, r, codes, n) {
                    trials.push(t);
                    kinds.push(EntryKind::Trial(n));
                } else {
                    kinds.push(EntryKind::Diagnosis);
                }
            }
            "Observation" => {
                let n = scores.len();
                if let Some(sc) = score(&mut cx, &base, r, codes, n) {
                    scores.push(sc);
                    kinds.push(EntryKind::Score(n));
                } else {
                    kinds.push(EntryKind::Diagnosis);
                }
            }
            other => {
                cx.issue(
                    "not-supported",
                    format!("{base}.resourceType"),
                    format!("'{other}' is not part of a referral; send Patient, Condition, MedicationStatement and Observation"),
                );
                kinds.push(EntryKind::Diagnosis);
            }
        }
    }
    if indication.is_none() {
        cx.issue(
            "required",
            "Bundle.entry",
            "no Condition gives an indication Keta treats: send a Condition coded in ICD-10-CM (e.g. F33.2) or a listed SNOMED CT concept",
        );
    }
    if !cx.issues.is_empty() {
        return Err(cx.issues);
    }
    let (Some(mut patient), Some(indication)) = (patient, indication) else {
        return Err(cx.issues);
    };
    patient.indication = indication;
    patient.diagnoses = diagnoses;
    Ok(ParsedReferral {
        referral: NewReferral { patient, trials, prior_scores: scores },
        paths: cx.paths,
        entries: kinds,
    })
}

fn patient_from(cx: &mut Ctx, base: &str, r: &Value, site: SiteId) -> Option<NewPatient> {
    let ids = arr(r, "identifier");
    let mr = ids.iter().position(|id| {
        id.get("type").map(|t| arr(t, "coding").iter().any(|c| s(c, "code") == Some("MR"))).unwrap_or(false)
    });
    let mrn = match mr.or(if ids.is_empty() { None } else { Some(0) }) {
        Some(j) => match s(&ids[j], "value") {
            Some(v) => {
                cx.path("patient.mrn", format!("{base}.identifier[{j}].value"));
                Some(v.to_string())
            }
            None => {
                cx.issue("required", format!("{base}.identifier[{j}].value"), "give the identifier's value");
                None
            }
        },
        None => {
            cx.issue(
                "required",
                format!("{base}.identifier"),
                "give the patient's medical record number (an identifier of type MR)",
            );
            None
        }
    };
    let names = arr(r, "name");
    let nj = names.iter().position(|n| s(n, "use") == Some("official")).unwrap_or(0);
    let (given, family) = match names.get(nj) {
        Some(n) => {
            let given: Vec<&str> = arr(n, "given").iter().filter_map(Value::as_str).collect();
            cx.path("patient.given_name", format!("{base}.name[{nj}].given"));
            cx.path("patient.family_name", format!("{base}.name[{nj}].family"));
            (given.join(" "), s(n, "family").unwrap_or("").to_string())
        }
        None => {
            cx.issue("required", format!("{base}.name"), "give the patient's name (given and family)");
            (String::new(), String::new())
        }
    };
    let dob = match s(r, "birthDate") {
        Some(t) => {
            cx.path("patient.date_of_birth", format!("{base}.birthDate"));
            let d = fhir_date(t);
            if d.is_none() {
                cx.issue("value", format!("{base}.birthDate"), "give the full date of birth as YYYY-MM-DD");
            }
            d
        }
        None => {
            cx.issue("required", format!("{base}.birthDate"), "give the date of birth");
            None
        }
    };
    let sex = match s(r, "gender") {
        None => Some(Sex::Unknown),
        Some(g) => {
            let x = Sex::parse(g);
            if x.is_none() {
                cx.issue("value", format!("{base}.gender"), "use male, female, other or unknown");
            }
            x
        }
    };
    let (mut phone, mut email) = (None, None);
    for (j, t) in arr(r, "telecom").iter().enumerate() {
        match s(t, "system") {
            Some("phone") if phone.is_none() => {
                phone = s(t, "value").map(str::to_string);
                cx.path("patient.phone", format!("{base}.telecom[{j}].value"));
            }
            Some("email") if email.is_none() => {
                email = s(t, "value").map(str::to_string);
                cx.path("patient.email", format!("{base}.telecom[{j}].value"));
            }
            _ => {}
        }
    }
    let referring = arr(r, "generalPractitioner").first().and_then(|g| s(g, "display")).map(str::to_string);
    cx.path("patient.referring_clinician", format!("{base}.generalPractitioner[0].display"));
    cx.path("patient.site_id", "Bundle");
    Some(NewPatient {
        site_id: site,
        mrn: mrn?,
        given_name: given,
        family_name: family,
        date_of_birth: dob?,
        sex: sex?,
        phone,
        email,
        indication: Indication::Depression, // set from the Conditions
        diagnoses: vec![],
        referring_clinician: referring,
    })
}

fn condition(
    cx: &mut Ctx,
    base: &str,
    r: &Value,
    codes: &ReferralCodes,
    diagnoses: &mut Vec<String>,
    indication: &mut Option<Indication>,
) {
    let Some(code) = r.get("code") else {
        cx.issue("required", format!("{base}.code"), "code the diagnosis (ICD-10-CM or SNOMED CT)");
        return;
    };
    let codings = arr(code, "coding");
    if let Some((j, c)) =
        codings.iter().enumerate().find(|(_, c)| s(c, "system").is_some_and(|x| codes.is_icd10_system(x)))
    {
        let Some(value) = s(c, "code") else {
            cx.issue("required", format!("{base}.code.coding[{j}].code"), "give the ICD-10-CM code");
            return;
        };
        cx.path(format!("patient.diagnoses[{}]", diagnoses.len()), format!("{base}.code.coding[{j}].code"));
        diagnoses.push(value.to_string());
        if indication.is_none() {
            *indication = codes.indication_for_icd10(value);
        }
        return;
    }
    if let Some(concept) = codings
        .iter()
        .filter(|c| s(c, "system") == Some(codes.snomed_system.as_str()))
        .find_map(|c| s(c, "code").and_then(|k| codes.snomed(k)))
    {
        if indication.is_none() {
            *indication = Some(concept.indication);
        }
        return;
    }
    cx.issue(
        "code-invalid",
        format!("{base}.code"),
        "code the diagnosis in ICD-10-CM (http://hl7.org/fhir/sid/icd-10-cm) or with a SNOMED CT concept listed in data/fhir/referral-codes.toml",
    );
}

// Long on purpose: one MedicationStatement mapped field by field, each field with its own issue.
#[allow(clippy::too_many_lines)]
fn trial(cx: &mut Ctx, base: &str, r: &Value, codes: &ReferralCodes, n: usize) -> Option<AntidepressantTrial> {
    let f = |x: &str| format!("trials[{n}].{x}");
    let mut ok = true;
    let drug = match r.get("medicationCodeableConcept") {
        None => {
            cx.issue(
                "required",
                format!("{base}.medicationCodeableConcept"),
                "name the antidepressant (a coded concept; references are not supported)",
            );
            ok = false;
            String::new()
        }
        Some(m) => {
            cx.path(f("drug"), format!("{base}.medicationCodeableConcept"));
            let rx = arr(m, "coding")
                .iter()
                .filter(|c| s(c, "system") == Some(codes.rxnorm_system.as_str()))
                .find_map(|c| s(c, "code").and_then(|k| codes.rxnorm(k)))
                .map(|c| c.name.clone());
            let named = rx
                .or_else(|| s(m, "text").map(str::to_string))
                .or_else(|| arr(m, "coding").iter().find_map(|c| s(c, "display")).map(str::to_string));
            match named {
                Some(d) => d,
                None => {
                    cx.issue(
                        "required",
                        format!("{base}.medicationCodeableConcept"),
                        "name the antidepressant: a RxNorm code listed in data/fhir/referral-codes.toml, or the concept's text",
                    );
                    ok = false;
                    String::new()
                }
            }
        }
    };
    // The trial's length: its dates, or (as Keta exports it) the dosage's bounding duration.
    let bounds = arr(r, "dosage")
        .first()
        .and_then(|d| d.get("timing"))
        .and_then(|t| t.get("repeat"))
        .and_then(|rep| rep.get("boundsDuration"));
    let weeks = match (r.get("effectivePeriod"), bounds) {
        (None, Some(b)) => {
            let at = format!("{base}.dosage[0].timing.repeat.boundsDuration");
            cx.path(f("weeks"), at.clone());
            let days_per = match s(b, "code").or_else(|| s(b, "unit")) {
                Some("wk") => Some(7.0),
                Some("d") => Some(1.0),
                _ => None,
            };
            match (b.get("value").and_then(Value::as_f64), days_per) {
                (Some(v), Some(k)) if v >= 0.0 && v * k < 36_500.0 => ((v * k) / 7.0).floor() as u32,
                _ => {
                    cx.issue("value", at, "give the trial's length as a duration in weeks (UCUM wk) or days (d)");
                    ok = false;
                    0
                }
            }
        }
        (None, None) => {
            cx.issue(
                "required",
                format!("{base}.effectivePeriod"),
                "give the trial's start and end dates (effectivePeriod), or its length as dosage[0].timing.repeat.boundsDuration",
            );
            ok = false;
            0
        }
        (Some(p), _) => {
            let start = s(p, "start").and_then(fhir_date);
            let end = s(p, "end").and_then(fhir_date);
            if start.is_none() {
                cx.issue("value", format!("{base}.effectivePeriod.start"), "give the start date as YYYY-MM-DD");
            }
            if end.is_none() {
                cx.issue("value", format!("{base}.effectivePeriod.end"), "give the end date as YYYY-MM-DD");
            }
            cx.path(f("weeks"), format!("{base}.effectivePeriod"));
            match (start, end) {
                (Some(a), Some(b)) if b >= a => u32::try_from((b - a).whole_days() / 7).unwrap_or(u32::MAX),
                (Some(_), Some(_)) => {
                    cx.issue("value", format!("{base}.effectivePeriod.end"), "the end is before the start");
                    ok = false;
                    0
                }
                _ => {
                    ok = false;
                    0
                }
            }
        }
    };
    let mut daily_dose_mg = None;
    if let Some(dosage) = arr(r, "dosage").first()
        && let Some(q) = arr(dosage, "doseAndRate").first().and_then(|d| d.get("doseQuantity"))
    {
        let at = format!("{base}.dosage[0].doseAndRate[0].doseQuantity");
        let unit = s(q, "code").or_else(|| s(q, "unit"));
        let per_day = match dosage.get("timing").and_then(|t| t.get("repeat")) {
            None => Some(1.0),
            Some(rep) => {
                let freq = rep.get("frequency").and_then(Value::as_f64).unwrap_or(1.0);
                let period = rep.get("period").and_then(Value::as_f64).unwrap_or(1.0);
                if s(rep, "periodUnit") == Some("d") && period > 0.0 { Some(freq / period) } else { None }
            }
        };
        match (q.get("value").and_then(Value::as_f64), unit, per_day) {
            (Some(v), Some("mg"), Some(k)) => {
                daily_dose_mg = Some(Milligrams(v * k));
                cx.path(f("daily_dose_mg"), format!("{at}.value"));
            }
            (None, _, _) => {
                cx.issue("value", format!("{at}.value"), "give the dose as a number");
                ok = false;
            }
            (_, _, None) => {
                cx.issue(
                    "value",
                    format!("{base}.dosage[0].timing.repeat"),
                    "give the timing per day (periodUnit d), or leave the timing out for a daily dose",
                );
                ok = false;
            }
            _ => {
                cx.issue("value", format!("{at}.code"), "give the dose in mg (UCUM code mg)");
                ok = false;
            }
        }
    }
    let outcome_word = arr(r, "statusReason").iter().find_map(|sr| {
        arr(sr, "coding")
            .iter()
            .find(|c| s(c, "system") == Some(TRIAL_OUTCOME_SYSTEM))
            .and_then(|c| s(c, "code"))
            .or_else(|| s(sr, "text"))
    });
    let outcome = match outcome_word {
        Some("no_response") => Some(TrialOutcome::NoResponse),
        Some("partial_response") => Some(TrialOutcome::PartialResponse),
        Some("response") => Some(TrialOutcome::Response),
        Some("intolerance") => Some(TrialOutcome::Intolerance),
        _ => None,
    };
    if outcome.is_none() {
        cx.issue(
            if outcome_word.is_some() { "value" } else { "required" },
            format!("{base}.statusReason"),
            format!("give the trial's outcome in statusReason ({TRIAL_OUTCOME_SYSTEM}: no_response, partial_response, response or intolerance)"),
        );
        ok = false;
    }
    let flag = |url: &str, cx: &mut Ctx, field: &str| -> bool {
        match arr(r, "extension").iter().enumerate().find(|(_, e)| s(e, "url") == Some(url)) {
            None => false,
            Some((j, e)) => {
                cx.path(f(field), format!("{base}.extension[{j}].valueBoolean"));
                match e.get("valueBoolean").and_then(Value::as_bool) {
                    Some(b) => b,
                    None => {
                        cx.issue("value", format!("{base}.extension[{j}].valueBoolean"), "give true or false");
                        false
                    }
                }
            }
        }
    };
    let adequate = flag(ADEQUATE_URL, cx, "adequate");
    let current_episode = flag(CURRENT_EPISODE_URL, cx, "current_episode");
    if !ok {
        return None;
    }
    Some(AntidepressantTrial { drug, daily_dose_mg, weeks, adequate, outcome: outcome?, current_episode })
}

fn score(cx: &mut Ctx, base: &str, r: &Value, codes: &ReferralCodes, n: usize) -> Option<PriorScore> {
    let f = |x: &str| format!("prior_scores[{n}].{x}");
    let mut ok = true;
    if !matches!(s(r, "status"), Some("final" | "amended" | "corrected")) {
        cx.issue("value", format!("{base}.status"), "only a final (or amended, corrected) score is imported");
        ok = false;
    }
    let loinc = r
        .get("code")
        .map(|c| arr(c, "coding"))
        .unwrap_or(&[])
        .iter()
        .filter(|c| s(c, "system") == Some(codes.loinc_system.as_str()))
        .filter_map(|c| s(c, "code"))
        .find_map(|code| {
            keta_domain::instruments::catalog()
                .all()
                .iter()
                .find(|i| i.loinc.as_ref().and_then(|l| l.total.as_deref()) == Some(code))
        });
    let instrument = match loinc {
        Some(i) => {
            cx.path(f("instrument"), format!("{base}.code"));
            i.code.clone()
        }
        None => {
            let known: Vec<String> = keta_domain::instruments::catalog()
                .all()
                .iter()
                .filter_map(|i| {
                    i.loinc.as_ref().and_then(|l| l.total.clone()).map(|t| format!("{t} ({})", i.short_name))
                })
                .collect();
            cx.issue(
                "code-invalid",
                format!("{base}.code"),
                format!("code the score with a LOINC total Keta knows: {}", known.join(", ")),
            );
            ok = false;
            String::new()
        }
    };
    let total = if let Some(v) = r.get("valueInteger") {
        cx.path(f("total"), format!("{base}.valueInteger"));
        v.as_i64().and_then(|x| i32::try_from(x).ok())
    } else if let Some(q) = r.get("valueQuantity") {
        cx.path(f("total"), format!("{base}.valueQuantity.value"));
        q.get("value").and_then(Value::as_f64).filter(|x| x.fract() == 0.0 && x.abs() < 1e6).map(|x| x as i32)
    } else {
        None
    };
    if total.is_none() {
        let at = if r.get("valueQuantity").is_some() { "valueQuantity.value" } else { "valueInteger" };
        cx.issue("value", format!("{base}.{at}"), "give the total as a whole number");
        ok = false;
    }
    let observed_on = match s(r, "effectiveDateTime") {
        Some(t) => {
            cx.path(f("observed_on"), format!("{base}.effectiveDateTime"));
            let d = fhir_date(t);
            if d.is_none() {
                cx.issue(
                    "value",
                    format!("{base}.effectiveDateTime"),
                    "give the date the score was taken (YYYY-MM-DD or a dateTime)",
                );
                ok = false;
            }
            d
        }
        None => {
            cx.issue("required", format!("{base}.effectiveDateTime"), "give the date the score was taken");
            ok = false;
            None
        }
    };
    if !ok {
        return None;
    }
    Some(PriorScore { instrument, total: total?, observed_on: observed_on? })
}

/// Where a domain field came from: its own element, else its resource, else the Bundle.
fn locate(paths: &HashMap<String, String>, field: &str) -> String {
    if let Some(p) = paths.get(field) {
        return p.clone();
    }
    // `trials[0].drug` → whatever `trials[0].*` came from, cut to its resource.
    let head = field.split('.').next().unwrap_or(field);
    paths
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{head}.")))
        .filter_map(|(_, v)| v.find(".resource").map(|i| v[..i + ".resource".len()].to_string()))
        .min()
        .unwrap_or_else(|| "Bundle".into())
}

/// An `OperationOutcome` with one issue per problem.
pub fn operation_outcome(status: StatusCode, issues: &[Issue]) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": issues.iter().map(|i| json!({
            "severity": "error",
            "code": i.code,
            "diagnostics": i.diagnostics,
            "expression": [i.expression],
        })).collect::<Vec<_>>(),
    });
    fhir_response(status, &body)
}

fn fhir_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

fn store_error(e: StoreError, paths: &HashMap<String, String>) -> Response {
    match e {
        StoreError::Domain(DomainError::Invalid(errs)) => {
            let issues: Vec<Issue> = errs
                .iter()
                .map(|fe| Issue {
                    code: "invariant",
                    expression: locate(paths, &fe.field),
                    diagnostics: fe.message.clone(),
                })
                .collect();
            operation_outcome(StatusCode::UNPROCESSABLE_ENTITY, &issues)
        }
        StoreError::Conflict(m) => operation_outcome(
            StatusCode::CONFLICT,
            &[Issue { code: "duplicate", expression: locate(paths, "patient.mrn"), diagnostics: m }],
        ),
        other => {
            let api = ApiError::from(other);
            let code = match api.status {
                StatusCode::FORBIDDEN => "forbidden",
                StatusCode::NOT_FOUND => "not-found",
                StatusCode::SERVICE_UNAVAILABLE => "transient",
                _ => "exception",
            };
            operation_outcome(api.status, &[Issue { code, expression: "Bundle".into(), diagnostics: api.detail }])
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct ImportQuery {
    /// The site to register the patient at (default: the user's only site).
    pub site: Option<i64>,
}

/// `POST /fhir/R4`: imports a referral Bundle; 201 with a `transaction-response` Bundle.
pub async fn post_bundle(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Response {
    let site = match (q.site, user.site_ids.as_slice()) {
        (Some(id), _) => SiteId(id),
        (None, [only]) => *only,
        (None, _) => {
            return operation_outcome(
                StatusCode::UNPROCESSABLE_ENTITY,
                &[Issue {
                    code: "required",
                    expression: "Bundle".into(),
                    diagnostics: "say which site registers the patient: POST /fhir/R4?site=ID".into(),
                }],
            );
        }
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return operation_outcome(
                StatusCode::BAD_REQUEST,
                &[Issue {
                    code: "structure",
                    expression: "Bundle".into(),
                    diagnostics: format!("the body is not JSON: {e}"),
                }],
            );
        }
    };
    let parsed = match parse_bundle(&value, site, keta_domain::referral::codes()) {
        Ok(p) => p,
        Err(issues) => return operation_outcome(StatusCode::UNPROCESSABLE_ENTITY, &issues),
    };
    let created = match st.store.import_referral(&user.actor, parsed.referral, "fhir referral").await {
        Ok(c) => c,
        Err(e) => return store_error(e, &parsed.paths),
    };
    let patient = format!("Patient/{}", created.patient_id);
    let entries: Vec<Value> = parsed
        .entries
        .iter()
        .map(|k| {
            let location = match k {
                EntryKind::Patient => Some(patient.clone()),
                EntryKind::Trial(i) => created.trials.get(*i).map(|id| format!("MedicationStatement/{id}")),
                EntryKind::Diagnosis | EntryKind::Score(_) => None,
            };
            json!({"response": match location {
                Some(l) => json!({"status": "201 Created", "location": l}),
                None => json!({"status": "201 Created"}),
            }})
        })
        .collect();
    let mut r = fhir_response(
        StatusCode::CREATED,
        &json!({"resourceType": "Bundle", "type": "transaction-response", "entry": entries}),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("/fhir/R4/{patient}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Value {
        json!({
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": "urn:uuid:p1", "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "REF-1"}],
                    "name": [{"given": ["Ada"], "family": "Example"}],
                    "birthDate": "1980-01-02", "gender": "female"}},
                {"resource": {"resourceType": "Condition", "subject": {"reference": "urn:uuid:p1"},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F33.2"}]}}},
                {"resource": {"resourceType": "MedicationStatement", "status": "completed", "subject": {"reference": "urn:uuid:p1"},
                    "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "36437"}]},
                    "effectivePeriod": {"start": "2025-01-01", "end": "2025-03-01"},
                    "dosage": [{"doseAndRate": [{"doseQuantity": {"value": 100, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}]}],
                    "statusReason": [{"coding": [{"system": TRIAL_OUTCOME_SYSTEM, "code": "no_response"}]}]}},
                {"resource": {"resourceType": "Observation", "status": "final", "subject": {"reference": "urn:uuid:p1"},
                    "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                    "valueInteger": 19, "effectiveDateTime": "2025-04-01"}}
            ]
        })
    }

    #[test]
    fn a_referral_bundle_becomes_a_patient_with_history() {
        let p = parse_bundle(&bundle(), SiteId(1), keta_domain::referral::codes()).unwrap();
        let r = &p.referral;
        assert_eq!(r.patient.mrn, "REF-1");
        assert_eq!(r.patient.indication, Indication::Depression);
        assert_eq!(r.patient.diagnoses, ["F33.2"]);
        assert_eq!(r.trials[0].drug, "sertraline");
        assert_eq!(r.trials[0].weeks, 8);
        assert_eq!(r.trials[0].daily_dose_mg, Some(Milligrams(100.0)));
        assert!(!r.trials[0].adequate && !r.trials[0].current_episode, "adequacy is the clinician's to judge");
        assert_eq!(r.prior_scores[0].instrument, "phq9");
        assert_eq!(r.prior_scores[0].total, 19);
        assert_eq!(p.paths["prior_scores[0].observed_on"], "Bundle.entry[3].resource.effectiveDateTime");
    }

    #[test]
    fn every_bad_element_is_named() {
        let mut b = bundle();
        b["entry"][3]["resource"]["effectiveDateTime"] = json!("yesterday");
        b["entry"][2]["resource"]["statusReason"] = json!([]);
        b["entry"][1]["resource"]["subject"]["reference"] = json!("Patient/other");
        let issues = parse_bundle(&b, SiteId(1), keta_domain::referral::codes()).unwrap_err();
        let at: Vec<&str> = issues.iter().map(|i| i.expression.as_str()).collect();
        assert!(at.contains(&"Bundle.entry[3].resource.effectiveDateTime"), "{at:?}");
        assert!(at.contains(&"Bundle.entry[2].resource.statusReason"), "{at:?}");
        assert!(at.contains(&"Bundle.entry[1].resource.subject.reference"), "{at:?}");
    }

    #[test]
    fn a_domain_error_is_located_at_its_element() {
        let p = parse_bundle(&bundle(), SiteId(1), keta_domain::referral::codes()).unwrap();
        assert_eq!(locate(&p.paths, "patient.mrn"), "Bundle.entry[0].resource.identifier[0].value");
        assert_eq!(locate(&p.paths, "trials[0].weeks"), "Bundle.entry[2].resource.effectivePeriod");
        assert_eq!(locate(&p.paths, "trials[0].outcome"), "Bundle.entry[2].resource");
        assert_eq!(locate(&p.paths, "nothing"), "Bundle");
    }

    #[test]
    fn a_trial_as_keta_exports_it_reads_back_the_same() {
        use keta_store::fhir::TrialRow;
        let p = parse_bundle(&bundle(), SiteId(1), keta_domain::referral::codes()).unwrap();
        for (dose, outcome) in
            [(Some(Milligrams(150.0)), TrialOutcome::PartialResponse), (None, TrialOutcome::Intolerance)]
        {
            let trial = AntidepressantTrial {
                drug: "venlafaxine".into(),
                daily_dose_mg: dose,
                weeks: 9,
                adequate: true,
                outcome,
                current_episode: true,
            };
            let row =
                TrialRow { id: 4, patient_id: keta_domain::ids::PatientId(1), trial: trial.clone(), recorded_ms: 0 };
            let mut b = bundle();
            let mut statement = crate::fhir::resources::medication_statement(&row);
            statement["subject"] = json!({"reference": "urn:uuid:p1"});
            b["entry"][2]["resource"] = statement;
            let back = parse_bundle(&b, SiteId(1), keta_domain::referral::codes()).unwrap();
            assert_eq!(back.referral.trials, vec![trial]);
            assert_eq!(back.referral.patient, p.referral.patient);
        }
    }

    #[test]
    fn partial_dates_and_other_bundles_are_refused() {
        assert_eq!(fhir_date("2025-04-01T10:00:00Z"), Some(time::macros::date!(2025 - 04 - 01)));
        assert_eq!(fhir_date("2025-04"), None);
        assert_eq!(fhir_date("2025-04-01x"), None);
        let mut b = bundle();
        b["type"] = json!("searchset");
        assert!(parse_bundle(&b, SiteId(1), keta_domain::referral::codes()).is_err());
        assert!(parse_bundle(&json!([1]), SiteId(1), keta_domain::referral::codes()).is_err());
    }
}
