//! One mapper per resource (and per Observation profile): Keta's records as FHIR R4 JSON.
//! Hand-written over `serde_json` (docs/decisions/0006-fhir-r4-model.md says why); CI checks
//! every emitted resource against the official R4 JSON schema and Medplum's validator.

use keta_domain::patient::{Patient, Sex};
use keta_store::fhir::{
    AdministrationRow, AdverseEventRow, ChairRow, ConditionRow, ConsentRow, DocumentKind, DocumentRow, EncounterRow,
    ObservationRow, ObservationSource, PractitionerRow, ScoreResponseRow, SiteRow, TrialRow,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::codes::{self, ICD10CM, LOINC, NDC, RXNORM, UCUM};

pub fn instant(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn meta(updated_ms: i64) -> Value {
    json!({ "lastUpdated": instant(updated_ms) })
}

fn patient_ref(p: keta_domain::ids::PatientId) -> Value {
    json!({ "reference": format!("Patient/{}", p.0) })
}

fn category(code: &str) -> Value {
    let display = match code {
        "vital-signs" => "Vital Signs",
        "survey" => "Survey",
        "exam" => "Exam",
        other => other,
    };
    json!([{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code, "display": display }] }])
}

pub fn patient(p: &Patient) -> Value {
    let gender = match p.sex {
        Sex::Female => "female",
        Sex::Male => "male",
        Sex::Other => "other",
        Sex::Unknown => "unknown",
    };
    let mut telecom = Vec::new();
    if let Some(phone) = &p.phone {
        telecom.push(json!({ "system": "phone", "value": phone }));
    }
    if let Some(email) = &p.email {
        telecom.push(json!({ "system": "email", "value": email }));
    }
    let mut r = json!({
        "resourceType": "Patient",
        "id": p.id.0.to_string(),
        "identifier": [{ "use": "usual", "system": codes::codes().identifier_mrn_system, "value": p.mrn.as_str() }],
        "active": true,
        "name": [{ "use": "official", "family": p.family_name, "given": [p.given_name] }],
        "gender": gender,
        "birthDate": p.date_of_birth.to_string(),
        "managingOrganization": { "reference": format!("Organization/{}", p.site_id.0) },
    });
    if !telecom.is_empty() {
        r["telecom"] = Value::Array(telecom);
    }
    r
}

/// Where an Observation's id comes from: `<source>-<record id>`.
pub fn observation_id(o: &ObservationRow) -> String {
    format!("{}-{}", o.source.key(), o.record_id)
}

fn quantity(value: f64, q: &codes::Quantity) -> Value {
    json!({ "value": value, "unit": q.unit_display, "system": UCUM, "code": q.unit })
}

fn absent() -> Value {
    json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-performed", "display": "Not Performed" }] })
}

pub fn observation(o: &ObservationRow) -> Value {
    let c = codes::codes();
    let vs = &c.vital_signs;
    let mut r = json!({
        "resourceType": "Observation",
        "id": observation_id(o),
        "meta": meta(o.at_ms),
        "status": "final",
        "subject": patient_ref(o.patient_id),
        "effectiveDateTime": instant(o.at_ms),
    });
    if let Some(s) = o.session_id {
        r["encounter"] = json!({ "reference": format!("Encounter/{s}") });
    }
    let vital = |r: &mut Value, code: &str, display: &str| {
        r["meta"]["profile"] = json!(["http://hl7.org/fhir/StructureDefinition/vitalsigns"]);
        r["category"] = category("vital-signs");
        r["code"] = json!({ "coding": [{ "system": LOINC, "code": code, "display": display }], "text": display });
    };
    match o.source {
        ObservationSource::BloodPressure => {
            let bp = &vs.blood_pressure;
            vital(&mut r, &bp.code, &bp.display);
            let component = |v: Option<f64>, q: &codes::Quantity| {
                let mut comp =
                    json!({ "code": { "coding": [{ "system": LOINC, "code": q.code, "display": q.display }] } });
                match v {
                    Some(v) => comp["valueQuantity"] = quantity(v, q),
                    None => comp["dataAbsentReason"] = absent(),
                }
                comp
            };
            r["component"] = json!([component(o.num1, &bp.systolic), component(o.num2, &bp.diastolic)]);
        }
        ObservationSource::HeartRate | ObservationSource::OxygenSaturation | ObservationSource::RespiratoryRate => {
            let q = match o.source {
                ObservationSource::HeartRate => &vs.heart_rate,
                ObservationSource::OxygenSaturation => &vs.oxygen_saturation,
                _ => &vs.respiratory_rate,
            };
            vital(&mut r, &q.code, &q.display);
            if let Some(v) = o.num1 {
                r["valueQuantity"] = quantity(v, q);
            }
        }
        ObservationSource::Score => {
            let instrument = o.instrument.as_deref().unwrap_or_default();
            let (system, code, display) = codes::score_code(instrument);
            r["category"] = category(&c.score.category);
            r["code"] = json!({ "coding": [{ "system": system, "code": code, "display": display }], "text": display });
            if let Some(v) = o.num1 {
                r["valueInteger"] = json!(v.round() as i64);
            }
            r["derivedFrom"] = json!([{ "reference": format!("QuestionnaireResponse/{}", o.record_id) }]);
            let band = o.note.as_deref().and_then(|code| {
                keta_domain::instruments::catalog().get(instrument)?.bands.iter().find(|b| b.code == code).cloned()
            });
            if let Some(b) = band {
                r["interpretation"] = json!([{ "text": b.label }]);
            }
        }
        ObservationSource::Moaas => {
            r["category"] = category(&c.moaas.category);
            r["code"] = json!({ "coding": [{ "system": c.local_observation_system, "code": c.moaas.code, "display": c.moaas.display }], "text": "MOAA/S" });
            let score = o
                .note
                .as_deref()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .and_then(|b| b.get("score").and_then(Value::as_i64));
            match score {
                Some(s) => r["valueInteger"] = json!(s),
                None => r["dataAbsentReason"] = absent(),
            }
        }
    }
    r
}

pub fn encounter(e: &EncounterRow) -> Value {
    let status = match e.state.as_str() {
        "scheduled" => "planned",
        "checked_in" => "arrived",
        "discharged" => "finished",
        "stopped" => {
            if e.checked_in_ms.is_some() {
                "finished"
            } else {
                "cancelled"
            }
        }
        _ => "in-progress",
    };
    let mut period = json!({ "start": instant(e.checked_in_ms.unwrap_or(e.scheduled_ms)) });
    if let Some(end) = e.ended_ms {
        period["end"] = json!(instant(end));
    }
    let mut r = json!({
        "resourceType": "Encounter",
        "id": e.id.to_string(),
        "meta": meta(e.ended_ms.or(e.checked_in_ms).unwrap_or(e.scheduled_ms)),
        "status": status,
        "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory" },
        "type": [{ "text": format!("Ketamine treatment session ({})", e.route.replace('_', " ")) }],
        "subject": patient_ref(e.patient_id),
        "period": period,
        "serviceProvider": { "reference": format!("Organization/{}", e.site_id.0) },
    });
    let mut locations = vec![json!({ "location": { "reference": format!("Location/site-{}", e.site_id.0) } })];
    if let Some(ch) = e.chair_id {
        locations.push(json!({ "location": { "reference": format!("Location/chair-{ch}") } }));
    }
    r["location"] = Value::Array(locations);
    if let Some(reason) = &e.stop_reason {
        r["reasonCode"] = json!([{ "text": format!("stopped: {reason}") }]);
    }
    r
}

pub fn questionnaire_response(q: &ScoreResponseRow) -> Value {
    let answers: Vec<Option<i64>> = serde_json::from_str(&q.answers).unwrap_or_default();
    let items: Vec<Value> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut item = json!({ "linkId": (i + 1).to_string() });
            if let Some(v) = a {
                item["answer"] = json!([{ "valueInteger": v }]);
            }
            item
        })
        .collect();
    let mut r = json!({
        "resourceType": "QuestionnaireResponse",
        "id": q.id.to_string(),
        "meta": meta(q.completed_ms),
        "questionnaire": format!("{}/{}", codes::codes().questionnaire_base, q.instrument),
        "status": "completed",
        "subject": patient_ref(q.patient_id),
        "authored": instant(q.completed_ms),
        "item": items,
    });
    if q.completed_by == "patient" {
        r["source"] = patient_ref(q.patient_id);
    }
    if let Some(s) = q.session_id {
        r["encounter"] = json!({ "reference": format!("Encounter/{s}") });
    }
    if r["item"].as_array().is_some_and(Vec::is_empty)
        && let Some(o) = r.as_object_mut()
    {
        o.remove("item");
    }
    r
}

fn medication_concept(substance: &str) -> Value {
    let c = codes::codes();
    let med = c.medications.get(substance);
    let display = med.map_or(substance, |m| m.display.as_str());
    let mut coding = vec![json!({ "system": c.local_medication_system, "code": substance, "display": display })];
    if let Some(m) = med.filter(|m| !m.rxnorm.is_empty()) {
        coding.insert(0, json!({ "system": RXNORM, "code": m.rxnorm, "display": display }));
    }
    json!({ "coding": coding, "text": display })
}

pub fn medication_administration(a: &AdministrationRow) -> Value {
    let mut concept = medication_concept(&a.substance);
    if !a.ndc.is_empty()
        && let Some(coding) = concept["coding"].as_array_mut()
    {
        coding.push(json!({ "system": NDC, "code": a.ndc }));
    }
    let mut dosage = json!({ "dose": { "value": a.amount_mg, "unit": "mg", "system": UCUM, "code": "mg" } });
    if let Some(route) = &a.route {
        let text = codes::codes().routes.get(route).cloned().unwrap_or_else(|| route.replace('_', " "));
        dosage["route"] = json!({ "text": text });
    }
    let mut r = json!({
        "resourceType": "MedicationAdministration",
        "id": a.id.to_string(),
        "meta": meta(a.occurred_ms),
        "status": if a.reversed { "entered-in-error" } else { "completed" },
        "medicationCodeableConcept": concept,
        "subject": patient_ref(a.patient_id),
        "effectiveDateTime": instant(a.occurred_ms),
        "performer": [{ "actor": { "display": a.recorded_by } }],
        "note": [{ "text": format!("Lot {}", a.lot_number) }],
        "dosage": dosage,
    });
    if let Some(s) = a.session_id {
        r["context"] = json!({ "reference": format!("Encounter/{s}") });
    }
    r
}

/// A past antidepressant trial, in the form the referral import reads back
/// (`crate::fhir_import`): the outcome as `statusReason` in Keta's outcome system, adequacy and
/// episode as Keta extensions, the duration as the dosage's `timing.repeat.boundsDuration` in
/// weeks (only the length of a trial is kept, not its dates), the daily dose in mg.
pub fn medication_statement(t: &TrialRow) -> Value {
    use crate::fhir_import::{ADEQUATE_URL, CURRENT_EPISODE_URL, TRIAL_OUTCOME_SYSTEM};
    let trial = &t.trial;
    let outcome =
        serde_json::to_value(trial.outcome).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let mut r = json!({
        "resourceType": "MedicationStatement",
        "id": t.id.to_string(),
        "meta": meta(t.recorded_ms),
        "status": "completed",
        "medicationCodeableConcept": { "text": trial.drug },
        "subject": patient_ref(t.patient_id),
        "dateAsserted": instant(t.recorded_ms),
        "note": [{ "text": format!(
            "Antidepressant trial: {} weeks, {} ({}), outcome {}",
            trial.weeks,
            if trial.adequate { "adequate dose and duration" } else { "not adequate" },
            if trial.current_episode { "current episode" } else { "earlier episode" },
            serde_json::to_value(trial.outcome).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default().replace('_', " "),
        ) }],
        "statusReason": [{ "coding": [{ "system": TRIAL_OUTCOME_SYSTEM, "code": outcome }], "text": outcome.replace('_', " ") }],
        "extension": [
            { "url": ADEQUATE_URL, "valueBoolean": trial.adequate },
            { "url": CURRENT_EPISODE_URL, "valueBoolean": trial.current_episode },
        ],
    });
    let weeks = json!({ "value": trial.weeks, "unit": "wk", "system": UCUM, "code": "wk" });
    r["dosage"] = match trial.daily_dose_mg {
        Some(d) => json!([{ "text": format!("{} mg daily for {} weeks", d.0, trial.weeks),
            "timing": { "repeat": { "boundsDuration": weeks, "frequency": 1, "period": 1, "periodUnit": "d" } },
            "doseAndRate": [{ "doseQuantity": { "value": d.0, "unit": "mg", "system": UCUM, "code": "mg" } }] }]),
        None => {
            json!([{ "text": format!("for {} weeks", trial.weeks), "timing": { "repeat": { "boundsDuration": weeks } } }])
        }
    };
    r
}

pub fn adverse_event(e: &AdverseEventRow) -> Value {
    let severity = match e.severity.as_str() {
        "mild" | "moderate" | "severe" => e.severity.as_str(),
        _ => "moderate",
    };
    let mut r = json!({
        "resourceType": "AdverseEvent",
        "id": e.id.to_string(),
        "meta": meta(e.recorded_ms),
        "actuality": "actual",
        "event": { "text": e.description },
        "subject": patient_ref(e.patient_id),
        "date": instant(e.onset_ms),
        "recordedDate": instant(e.recorded_ms),
        "severity": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/adverse-event-severity", "code": severity }] },
        "outcome": { "text": e.outcome.replace('_', " ") },
        "suspectEntity": [{ "instance": { "display": "ketamine or esketamine given in the session" } }],
    });
    if e.serious {
        r["seriousness"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness", "code": "serious", "display": "Serious" }] });
    }
    if let Some(s) = e.session_id {
        r["encounter"] = json!({ "reference": format!("Encounter/{s}") });
    }
    r
}

pub fn consent(k: &ConsentRow) -> Value {
    let (scope, category) = match k.kind.as_str() {
        "research_data_sharing" => ("research", "research"),
        _ => ("treatment", "59284-0"),
    };
    let category = if category == "59284-0" {
        json!([{ "coding": [{ "system": LOINC, "code": "59284-0", "display": "Patient Consent" }] }])
    } else {
        json!([{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/consentcategorycodes", "code": "research", "display": "Research Information Access" }] }])
    };
    json!({
        "resourceType": "Consent",
        "id": k.id.to_string(),
        "meta": meta(k.withdrawn_ms.unwrap_or(k.signed_ms)),
        "status": if k.withdrawn_ms.is_some() { "inactive" } else { "active" },
        "scope": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": scope }] },
        "category": category,
        "patient": patient_ref(k.patient_id),
        "dateTime": instant(k.signed_ms),
        "organization": [{ "reference": format!("Organization/{}", k.site_id.0) }],
        "sourceReference": { "display": k.form_title },
        "policyRule": { "text": k.form_title },
    })
}

pub fn condition_id(c: &ConditionRow) -> String {
    format!("{}-{}", c.patient_id.0, c.index)
}

pub fn condition(c: &ConditionRow) -> Value {
    json!({
        "resourceType": "Condition",
        "id": condition_id(c),
        "clinicalStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active" }] },
        "verificationStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed" }] },
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis" }] }],
        "code": { "coding": [{ "system": ICD10CM, "code": c.code }], "text": c.code },
        "subject": patient_ref(c.patient_id),
    })
}

pub fn practitioner(p: &PractitionerRow) -> Value {
    json!({
        "resourceType": "Practitioner",
        "id": p.id.to_string(),
        "active": p.active,
        "name": [{ "text": p.display_name }],
        "qualification": [{ "code": { "text": p.role.replace('_', " ") } }],
    })
}

pub fn organization(s: &SiteRow) -> Value {
    let mut r = json!({
        "resourceType": "Organization",
        "id": s.id.0.to_string(),
        "identifier": [{ "system": "http://keta.invalid/fhir/NamingSystem/site", "value": s.code }],
        "active": true,
        "name": s.name,
    });
    if !s.address.trim().is_empty() {
        r["address"] = json!([{ "text": s.address }]);
    }
    r
}

pub fn site_location(s: &SiteRow) -> Value {
    let mut r = json!({
        "resourceType": "Location",
        "id": format!("site-{}", s.id.0),
        "status": "active",
        "name": s.name,
        "mode": "instance",
        "physicalType": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "si", "display": "Site" }] },
        "managingOrganization": { "reference": format!("Organization/{}", s.id.0) },
    });
    if !s.address.trim().is_empty() {
        r["address"] = json!({ "text": s.address });
    }
    r
}

/// A signed session note or a submitted REMS form: its PDF is `Binary/<same id>` under `base`
/// (the server's `/fhir/R4`), typeset when it is read.
pub fn document_reference(d: &DocumentRow, base: &str) -> Value {
    let coding = codes::codes().documents.of(d.kind);
    let (title, description) = match d.kind {
        DocumentKind::SessionNote => (
            format!("Session {} note", d.session_id.0),
            "The session note with its signatures, amendments and the check of every hash",
        ),
        DocumentKind::RemsForm => (
            format!("Session {} REMS Patient Monitoring Form", d.session_id.0),
            "The REMS Patient Monitoring Form as submitted to the REMS",
        ),
    };
    let id = d.id();
    let mut r = json!({
        "resourceType": "DocumentReference",
        "id": id,
        "meta": meta(d.updated_ms),
        "status": "current",
        "docStatus": if d.amended { "amended" } else { "final" },
        "type": { "coding": [{ "system": coding.system, "code": coding.code, "display": coding.display }], "text": coding.display },
        "subject": patient_ref(d.patient_id),
        "date": instant(d.created_ms),
        "custodian": { "reference": format!("Organization/{}", d.site_id.0) },
        "description": description,
        "content": [{ "attachment": {
            "contentType": "application/pdf",
            "url": format!("{base}/Binary/{id}"),
            "title": title,
            "creation": instant(d.updated_ms),
        } }],
        "context": { "encounter": [{ "reference": format!("Encounter/{}", d.session_id.0) }] },
    });
    if let Some(name) = d.author_name.as_deref().filter(|n| !n.trim().is_empty()) {
        let who = match d.author_user_id {
            Some(u) => json!({ "reference": format!("Practitioner/{u}"), "display": name }),
            None => json!({ "display": name }),
        };
        r["author"] = json!([who.clone()]);
        if d.kind == DocumentKind::SessionNote {
            r["authenticator"] = who;
        }
    }
    if let Some(number) = d.reference.as_deref().filter(|n| !n.trim().is_empty()) {
        r["masterIdentifier"] =
            json!({ "system": "http://keta.invalid/fhir/NamingSystem/rems-confirmation", "value": number });
    }
    r
}

pub fn chair_location(c: &ChairRow) -> Value {
    json!({
        "resourceType": "Location",
        "id": format!("chair-{}", c.id),
        "status": "active",
        "name": c.name,
        "description": "Treatment chair",
        "mode": "instance",
        "managingOrganization": { "reference": format!("Organization/{}", c.site_id.0) },
        "partOf": { "reference": format!("Location/site-{}", c.site_id.0) },
    })
}

// ---------------------------------------------------------------------------------------------
// Vital-sign Observations written straight to bytes
// ---------------------------------------------------------------------------------------------
//
// A chart's page of Observations is mostly vital signs (four per reading), and building each as
// a `serde_json::Value` (a tree of maps, every key and string allocated, then dropped) was most
// of a search's time. These borrow everything and serialise in one pass. The fields are declared
// in the order `Value` writes them (its maps are sorted by key), so the bytes are exactly those of
// `observation(o).to_string()` (tested below).

use serde::Serialize;

#[derive(Serialize)]
struct Coding<'a> {
    code: &'a str,
    display: &'a str,
    system: &'a str,
}

#[derive(Serialize)]
struct CodingsOnly<'a> {
    coding: [Coding<'a>; 1],
}

#[derive(Serialize)]
struct CodeWithText<'a> {
    coding: [Coding<'a>; 1],
    text: &'a str,
}

#[derive(Serialize)]
struct Quantity<'a> {
    code: &'a str,
    system: &'a str,
    unit: &'a str,
    value: f64,
}

impl<'a> Quantity<'a> {
    fn of(value: f64, q: &'a codes::Quantity) -> Self {
        Self { code: &q.unit, system: UCUM, unit: &q.unit_display, value }
    }
}

#[derive(Serialize)]
struct Component<'a> {
    code: CodingsOnly<'a>,
    #[serde(rename = "dataAbsentReason", skip_serializing_if = "Option::is_none")]
    data_absent_reason: Option<CodingsOnly<'static>>,
    #[serde(rename = "valueQuantity", skip_serializing_if = "Option::is_none")]
    value_quantity: Option<Quantity<'a>>,
}

impl<'a> Component<'a> {
    fn of(v: Option<f64>, q: &'a codes::Quantity) -> Self {
        Self {
            code: CodingsOnly { coding: [Coding { code: &q.code, display: &q.display, system: LOINC }] },
            data_absent_reason: v.is_none().then_some(NOT_PERFORMED),
            value_quantity: v.map(|v| Quantity::of(v, q)),
        }
    }
}

const NOT_PERFORMED: CodingsOnly<'static> = CodingsOnly {
    coding: [Coding {
        code: "not-performed",
        display: "Not Performed",
        system: "http://terminology.hl7.org/CodeSystem/data-absent-reason",
    }],
};

const VITAL_SIGNS_CATEGORY: [CodingsOnly<'static>; 1] = [CodingsOnly {
    coding: [Coding {
        code: "vital-signs",
        display: "Vital Signs",
        system: "http://terminology.hl7.org/CodeSystem/observation-category",
    }],
}];

#[derive(Serialize)]
struct Reference {
    reference: String,
}

#[derive(Serialize)]
struct VitalMeta<'a> {
    #[serde(rename = "lastUpdated")]
    last_updated: &'a str,
    profile: [&'static str; 1],
}

#[derive(Serialize)]
struct VitalObservation<'a> {
    category: [CodingsOnly<'static>; 1],
    code: CodeWithText<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<[Component<'a>; 2]>,
    #[serde(rename = "effectiveDateTime")]
    effective_date_time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    encounter: Option<Reference>,
    id: String,
    meta: VitalMeta<'a>,
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    status: &'static str,
    subject: Reference,
    #[serde(rename = "valueQuantity", skip_serializing_if = "Option::is_none")]
    value_quantity: Option<Quantity<'a>>,
}

/// Appends the Observation's JSON to `out`: the same bytes as `observation(o).to_string()`,
/// written without building a `Value` for the vital signs.
pub fn write_observation(o: &ObservationRow, out: &mut Vec<u8>) {
    let vs = &codes::codes().vital_signs;
    let (code, display, value, component) = match o.source {
        ObservationSource::BloodPressure => {
            let bp = &vs.blood_pressure;
            let c = [Component::of(o.num1, &bp.systolic), Component::of(o.num2, &bp.diastolic)];
            (bp.code.as_str(), bp.display.as_str(), None, Some(c))
        }
        ObservationSource::HeartRate | ObservationSource::OxygenSaturation | ObservationSource::RespiratoryRate => {
            let q = match o.source {
                ObservationSource::HeartRate => &vs.heart_rate,
                ObservationSource::OxygenSaturation => &vs.oxygen_saturation,
                _ => &vs.respiratory_rate,
            };
            (q.code.as_str(), q.display.as_str(), o.num1.map(|v| Quantity::of(v, q)), None)
        }
        ObservationSource::Score | ObservationSource::Moaas => {
            serde_json::to_writer(out, &observation(o)).expect("a Value always serialises");
            return;
        }
    };
    let at = instant(o.at_ms);
    let r = VitalObservation {
        category: VITAL_SIGNS_CATEGORY,
        code: CodeWithText { coding: [Coding { code, display, system: LOINC }], text: display },
        component,
        effective_date_time: &at,
        encounter: o.session_id.map(|s| Reference { reference: format!("Encounter/{s}") }),
        id: observation_id(o),
        meta: VitalMeta { last_updated: &at, profile: ["http://hl7.org/fhir/StructureDefinition/vitalsigns"] },
        resource_type: "Observation",
        status: "final",
        subject: Reference { reference: format!("Patient/{}", o.patient_id.0) },
        value_quantity: value,
    };
    serde_json::to_writer(out, &r).expect("plain data always serialises");
}

#[cfg(test)]
mod tests {
    use keta_domain::ids::PatientId;

    use super::*;

    fn row(source: ObservationSource, num1: Option<f64>, num2: Option<f64>, session: Option<i64>) -> ObservationRow {
        ObservationRow {
            source,
            record_id: 5123,
            patient_id: PatientId(61),
            session_id: session,
            at_ms: 1_767_225_660_000,
            num1,
            num2,
            instrument: Some("phq9".into()),
            note: Some("moderate".into()),
        }
    }

    #[test]
    fn vital_signs_written_directly_are_the_bytes_of_the_value() {
        use ObservationSource::*;
        let cases = [
            row(BloodPressure, Some(111.0), Some(71.5), Some(519)),
            row(BloodPressure, None, Some(70.0), None),
            row(BloodPressure, Some(140.0), None, Some(1)),
            row(HeartRate, Some(72.0), None, Some(519)),
            row(HeartRate, None, None, None),
            row(OxygenSaturation, Some(97.0), None, Some(3)),
            row(RespiratoryRate, Some(14.25), None, None),
            row(Score, Some(12.0), None, Some(3)),
            row(Moaas, None, None, Some(3)),
        ];
        for o in cases {
            let mut fast = Vec::new();
            write_observation(&o, &mut fast);
            assert_eq!(String::from_utf8(fast).unwrap(), observation(&o).to_string(), "{o:?}");
        }
    }
}
