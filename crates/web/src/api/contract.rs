//! What the OpenAPI document promises beyond each handler's own annotation, added in one
//! place so that every operation, including ones added later, says it:
//!
//! * errors are `application/problem+json` (RFC 9457), as [`crate::error`] sends them;
//! * the errors the middleware and the store can answer on any operation are documented
//!   (400 unreadable path or query, 401/403 sign-in, role and CSRF, 404 unknown ids,
//!   409 conflicts with stored data, 413/415/422 for request bodies);
//! * the plausible ranges of inputs come from the domain ([`keta_domain::plausible`]), so the
//!   document and the server refuse the same values.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Schema};

use crate::access_rules::{API_RULES, Access};

pub struct Contract;

impl utoipa::Modify for Contract {
    fn modify(&self, doc: &mut OpenApi) {
        open_flattened_parts(doc);
        close_unions(doc);
        plausible_ranges(doc);
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in [
                ("GET", item.get.as_mut()),
                ("PUT", item.put.as_mut()),
                ("POST", item.post.as_mut()),
                ("DELETE", item.delete.as_mut()),
                ("PATCH", item.patch.as_mut()),
            ] {
                if let Some(op) = op {
                    document_errors(path, method, op);
                }
            }
        }
    }
}

/// A record that flattens an input type (`#[serde(flatten)]`: a vitals record carries its
/// `VitalSigns`, a trial record its `AntidepressantTrial`) is documented as `allOf` that type
/// plus the record's own fields. The input type refuses unknown fields
/// (`additionalProperties: false`), which under `allOf` would make every record invalid; the
/// record gets its own copy without that restriction.
fn open_flattened_parts(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else { return };
    let closed: std::collections::BTreeMap<String, Schema> = components
        .schemas
        .iter()
        .filter_map(|(name, s)| match s {
            RefOr::T(Schema::Object(o)) if o.additional_properties.is_some() => {
                let mut open = o.clone();
                open.additional_properties = None;
                Some((format!("#/components/schemas/{name}"), Schema::Object(open)))
            }
            _ => None,
        })
        .collect();
    for s in components.schemas.values_mut() {
        if let RefOr::T(Schema::AllOf(all)) = s {
            for part in all.items.iter_mut() {
                if let RefOr::Ref(r) = part
                    && let Some(open) = closed.get(&r.ref_location)
                {
                    *part = RefOr::T(open.clone());
                }
            }
        }
    }
}

/// Internally tagged enums whose Rust type refuses unknown fields
/// (`#[serde(tag = .., deny_unknown_fields)]`); utoipa leaves their variants open.
pub const CLOSED_TAGGED_UNIONS: &[&str] = &[
    "SessionAction",
    "ObservationBody",
    "Presentation",
    "Timing",
    "QuestionKind",
    "FlagRule",
    "ResponseRule",
    "RelapseThreshold",
];

/// Says what serde enforces on enums: an externally tagged enum (`{"ml": 2.5}`) is an object
/// with exactly one of its keys, and the listed internally tagged ones take no other fields.
/// Left open, the document allowed `{"ml": 2, "mg": false}`, which the server refuses.
fn close_unions(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else { return };
    for (name, s) in components.schemas.iter_mut() {
        let RefOr::T(Schema::OneOf(one)) = s else { continue };
        let externally_tagged = !one.items.is_empty()
            && one.items.iter().all(|v| {
                matches!(v, RefOr::T(Schema::Object(o))
                    if o.properties.len() == 1 && o.required.len() == 1 && o.properties.contains_key(&o.required[0]))
            });
        if !(externally_tagged || CLOSED_TAGGED_UNIONS.contains(&name.as_str())) {
            continue;
        }
        for v in one.items.iter_mut() {
            // A unit variant of an internally tagged enum (`{"kind": "loss_of_response"}`) is
            // not closed by serde's deny_unknown_fields; only say what the server enforces.
            if let RefOr::T(Schema::Object(o)) = v
                && (externally_tagged || o.properties.len() > 1)
            {
                o.additional_properties =
                    Some(Box::new(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

/// The bounds of [`keta_domain::plausible`] written into the request schemas, so the
/// document and the server refuse the same values. (Date windows move with today, so they
/// are described, not encoded.)
fn plausible_ranges(doc: &mut OpenApi) {
    use keta_domain::plausible::Quantity;
    use serde_json::json;
    let r = keta_domain::plausible::ranges();
    // A name: not blank, no control characters (what `PlausibleRanges::name` refuses).
    let name = |max: usize| json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"});
    let weight = json!({"type": "number", "minimum": r.body_weight.min_kg, "maximum": r.body_weight.max_kg,
        "description": format!("Kilograms; {}", r.body_weight.source)});
    // A positive (or non-negative) quantity up to its plausible maximum, in its unit.
    let quantity = |q: Quantity, zero_ok: bool| {
        let low = if zero_ok { "minimum" } else { "exclusiveMinimum" };
        let mut s = json!({"type": "number", "maximum": r.quantity_max(q),
            "description": format!("{}; {}", q.unit(), r.quantities.source)});
        s[low] = json!(0);
        s
    };
    let nullable = |mut s: serde_json::Value| {
        s["type"] = json!(["number", "null"]);
        s
    };
    let patches: Vec<(&str, &str, serde_json::Value)> = vec![
        ("NewWeight", "weight_kg", weight.clone()),
        ("PkSimulateRequest", "weight_kg", weight),
        ("NewDispense", "unit_strength_mg", quantity(Quantity::Mg, false)),
        ("PkSimulateRequest", "until_min", quantity(Quantity::Minutes, true)),
        ("PkSimulateRequest", "step_min", quantity(Quantity::Minutes, false)),
        ("AbsorptionInput", "ka_per_min", nullable(quantity(Quantity::PerMin, false))),
        ("AbsorptionInput", "tmax_min", nullable(quantity(Quantity::Minutes, false))),
        ("AbsorptionInput", "lag_min", nullable(quantity(Quantity::Minutes, true))),
        (
            "AbsorptionInput",
            "bioavailability",
            json!({"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1}),
        ),
        ("AssumedCv", "cv_percent", quantity(Quantity::CvPercent, false)),
        ("NewCourseOrder", "final_volume_ml", nullable(quantity(Quantity::Ml, false))),
        ("NewCourseOrder", "vial_mg_per_ml", nullable(quantity(Quantity::MgPerMl, false))),
        (
            "NewCourseOrder",
            "titration_step",
            json!({"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": r.planned_dose_max().0,
            "description": "In the dose's unit; at most the planned-dose ceiling in mg (lower for mg/kg and devices)"}),
        ),
        (
            "NewCourseOrder",
            "max_dose",
            json!({"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": r.planned_dose_max().0,
            "description": "In the dose's unit; at least the dose; at most the planned-dose ceiling in mg (lower for mg/kg and devices)"}),
        ),
        (
            "NewSession",
            "planned_dose_mg",
            json!({"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": r.planned_dose_max().0,
            "description": format!("Milligrams; at most the highest dose the references report at the heaviest plausible weight ({})", r.planned_dose.source)}),
        ),
        (
            "NewSession",
            "scheduled_for",
            json!({"type": "string", "format": "date-time",
            "description": format!("At most {} days back and {} days ahead of now ({})", r.scheduling.past_days, r.scheduling.future_days, r.scheduling.source)}),
        ),
        (
            "NewCourse",
            "start_date",
            json!({"type": "string", "format": "date",
            "description": format!("At most {} days back and {} days ahead of today ({})", r.scheduling.past_days, r.scheduling.future_days, r.scheduling.source)}),
        ),
        (
            "NewPatient",
            "date_of_birth",
            json!({"type": "string", "format": "date",
            "description": format!("From {} to today ({})", r.date_of_birth.earliest_year, r.date_of_birth.source)}),
        ),
        ("NewPatient", "given_name", name(r.text.name_max)),
        ("NewPatient", "family_name", name(r.text.name_max)),
        (
            "NewPatient",
            "diagnoses",
            json!({"type": "array", "maxItems": r.lists.diagnoses_max,
            "items": {"type": "string", "pattern": "^[A-Z][0-9][0-9A-Z](\\.[0-9A-Za-z]{1,4})?$"}, "description": "ICD-10-CM codes, e.g. F33.2"}),
        ),
        ("NewPatient", "mrn", json!({"type": "string", "pattern": "^[A-Za-z0-9-]{1,32}$"})),
        ("NewSiteWithChairs", "name", name(r.text.name_max)),
        (
            "NewSiteWithChairs",
            "chairs",
            json!({"type": "array", "maxItems": r.lists.chairs_max, "uniqueItems": true, "items": name(r.text.name_max)}),
        ),
        // Line breaks and tabs are fine in a note; other control characters are refused.
        (
            "SessionNote",
            "note",
            json!({"type": "string", "maxLength": r.text.note_max,
            "pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"}),
        ),
    ];
    let Some(components) = doc.components.as_mut() else { return };
    for (schema, property, patch) in patches {
        let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut(schema) else { continue };
        let Some(p) = o.properties.get_mut(property) else { continue };
        if let Ok(s) = serde_json::from_value::<RefOr<Schema>>(patch) {
            *p = s;
        }
    }
}

const PROBLEM: &str = "application/problem+json";

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(PROBLEM, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
            .build(),
    )
}

fn is_problem(c: &utoipa::openapi::Content) -> bool {
    matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
}

fn access_of(path: &str, method: &str) -> Option<Access> {
    API_RULES.iter().find(|(m, p, _)| *m == method && *p == path).map(|(_, _, a)| *a)
}

fn document_errors(path: &str, method: &str, op: &mut Operation) {
    // Errors are sent as problem+json; annotations say `body = Problem`, which utoipa files
    // under application/json.
    for (code, resp) in op.responses.responses.iter_mut() {
        if (code.starts_with('4') || code.starts_with('5'))
            && let RefOr::T(r) = resp
            && r.content.get("application/json").is_some_and(is_problem)
            && let Some(c) = r.content.shift_remove("application/json")
        {
            r.content.insert(PROBLEM.to_string(), c);
        }
    }
    let mutating = method != "GET";
    // Routes outside the API's access table (health) need no sign-in either.
    let public = matches!(access_of(path, method), None | Some(Access::Public));
    let has_body = op.request_body.is_some();
    let has_path_params = path.contains('{');
    let has_query =
        op.parameters.as_ref().is_some_and(|ps| ps.iter().any(|p| matches!(p.parameter_in, ParameterIn::Query)));
    let mut add = |code: &str, description: &str| {
        op.responses.responses.entry(code.to_string()).or_insert_with(|| problem(description));
    };
    if has_path_params || has_query || has_body {
        add("400", "The path, query or JSON body could not be read; `errors` names what to fix");
    }
    if !public {
        add("401", "Not signed in, or the session has ended");
    }
    if !public || mutating {
        add("403", "Not allowed for this role, or (for a change) the CSRF token or origin is wrong");
    }
    // Ids come in the path, the query or the body (a site, a chair, a lot).
    if has_path_params || !public {
        add("404", "No such record, or not one the caller may see");
    }
    if mutating && !public {
        add("409", "Conflicts with stored data or with the record's current state");
    }
    if has_body {
        add("413", "The body is over the size limit");
        add("415", "The body is not sent as application/json");
        add("422", "Some fields need correcting; `errors` names each and what to fix");
    } else if has_query {
        add("422", "A parameter is outside its plausible range; `errors` names it");
    }
}
