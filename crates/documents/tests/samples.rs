//! Every template renders from sample data (the shapes the web layer sends), the same input
//! gives the same bytes, and a template error names the template and line.

#![recursion_limit = "256"]

use keta_documents::{Document, DocumentError, Renderer};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// 2026-12-07 14:30 UTC.
fn at() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_796_653_800).expect("a valid time")
}

fn produced() -> Value {
    json!({"by": "Dr Demo (dr.demo)", "at": "2026-12-07 09:30 (America/New_York)", "clinic": "Keta demo clinic"})
}

fn signature(name: &str) -> Value {
    json!({"printed_name": name, "signer": "dr.demo", "meaning": "author", "signed_at": "2026-12-01 11:02",
           "content_sha256": "ab".repeat(32), "signature_sha256": "cd".repeat(32)})
}

fn sample(doc: Document) -> Value {
    let p = produced();
    match doc {
        Document::SessionNote => json!({
            "produced": p,
            "patient": {"id": 7, "name": "Ada Sample", "mrn": "MRN-7", "date_of_birth": "1980-02-03"},
            "session": {"id": 41, "date": "2026-12-01", "route": "Intranasal esketamine", "site": "Main"},
            "note": {"text": "Tolerated well. BP settled by 90 min.", "content_sha256": "ab".repeat(32), "signed": true,
                     "signatures": [signature("Dr Demo")],
                     "amendments": [{"printed_name": "Dr Demo", "author": "dr.demo", "created_at": "2026-12-02 08:00",
                                     "reason": "Lot number typo", "text": "Lot is L123.", "previous_sha256": "ab".repeat(32),
                                     "content_sha256": "ef".repeat(32), "signatures": [signature("Dr Demo")]}],
                     "verification": {"intact": true, "problems": []}}
        }),
        Document::RemsForm => json!({
            "produced": p, "session_id": 41, "due_on": "2026-12-08", "status": "due",
            "confirmation_number": null, "submitted_on": null,
            "form": {"first_name": "Ada", "middle_initial": null, "last_name": "Sample", "date_of_birth": "1980-02-03",
                "sex": "female", "first_treatment": false, "enrolled": true, "rems_patient_id": "R-1", "enrolled_on": "2026-11-01",
                "benzodiazepines": false, "non_benzodiazepine_sedative_hypnotics": false, "psychostimulants": true,
                "maois": false, "opioids": false, "monitor_first_name": "Nora", "monitor_last_name": "Nurse",
                "monitor_phone": "555-0100", "monitor_email": "nora@example.org", "setting_name": "Main",
                "setting_address_1": "1 Main St", "setting_address_2": null, "setting_city": "Springfield",
                "setting_state": "IL", "setting_zip": "62701", "treatment_date": "2026-12-01", "dose_mg": 84,
                "devices": 3, "lot_numbers": ["L123"], "total_treatment_minutes": 125, "ready_to_leave_after_minutes": 90,
                "vitals_acceptable_before": true, "vitals_acceptable_end": true,
                "bp_before": {"systolic_mmhg": 128.0, "diastolic_mmhg": 82.0, "minutes_after_dose": -10},
                "bp_after_40_min": {"systolic_mmhg": 146.0, "diastolic_mmhg": 90.0, "minutes_after_dose": 41},
                "bp_end": null,
                "sedation": {"experienced": true, "resolved": true}, "dissociation": {"experienced": false, "resolved": null},
                "respiratory_depression": null, "serious_adverse_events": [],
                "missing": [{"field": "respiratory_depression", "question": "Did the patient experience respiratory depression?"}]}
        }),
        Document::ProgressLetter => json!({
            "produced": p,
            "patient": {"name": "Ada Sample", "date_of_birth": "1980-02-03", "mrn": "MRN-7", "indication": "Treatment-resistant depression",
                        "diagnoses": ["F33.2"], "referring_clinician": "Dr Referrer"},
            "maudsley": {"total": 9, "band": "moderate", "assessed_on": "2026-10-01"},
            "trials": [{"drug": "sertraline", "dose": "150 mg", "weeks": 8, "adequate": true, "outcome": "no response", "current_episode": true}],
            "sessions": {"given": 6, "by_route": [{"route": "IV racemic ketamine", "given": 6}], "first": "2026-10-05", "last": "2026-10-24"},
            "phq9": {"points": [{"date": "2026-10-05", "day": 0, "total": 21}, {"date": "2026-10-12", "day": 7, "total": 14},
                                {"date": "2026-10-24", "day": 19, "total": 4}],
                     "min": 0, "max": 27, "baseline": 21, "response_line": 10.5, "remission_line": 5,
                     "definition": {"name": "PHQ-9: response ≥ 50 % reduction; remission total < 5", "source": "clinical-reference §1.2",
                                    "response": "a fall of at least 50 % from baseline", "remission": "a total below 5"},
                     "outcome": "Responded; in remission at the latest score."}
        }),
        Document::OutcomesReport => json!({
            "produced": p, "patients": 40,
            "sections": [{"route": "IV racemic ketamine",
                "rates": [{"instrument": "PHQ-9", "courses": 12, "response": "50.0 % (6/12)", "remission": "25.0 % (3/12)",
                           "relapse": "—", "definitions": ["PHQ-9 (§1.2)"]}],
                "benchmarks": [{"study": "Trial A", "design": "RCT", "instrument": "MADRS", "intervention": "0.5 mg/kg",
                    "time_point": "24 h", "response": "50.0 %", "remission": "—", "comparator": "", "definition": "≥50 %",
                    "source": "§5", "note": ""}]}]
        }),
        Document::DispensingLog => json!({
            "produced": p, "site": "Main", "dea": ["DEA registration number: not set; registered address: not set"],
            "substance": "Ketamine", "from": "2026-11-01", "to": "2026-12-07",
            "entries": [{"id": 1, "occurred_at": "2026-11-02 09:00", "kind": "receipt", "lot": "L123 ketamine 50 mg/mL",
                "change": "+10 vials", "amount": "5000 mg", "balance_after": "10 vials", "recorded_by": "rn.demo",
                "witnesses": "dr.demo", "patient": "", "reason": null, "reversed": false}]
        }),
        Document::Inventory => json!({
            "produced": p, "site": "Main", "dea": ["DEA registration number: AB1234563; registered address: 1 Main St"],
            "kind": "biennial", "title": "Biennial inventory",
            "lots": [{"taken": "2026-12-07 09:30", "business_time": "Opening of business", "substance": "Ketamine",
                      "product": "injection 50 mg/mL, 10 mL vial", "ndc": "0000-0000-00", "lot_number": "L123",
                      "count": "9 vials", "count_mg": "4500 mg", "estimated": false, "counted_by": "rn.demo", "witness": "dr.demo"}]
        }),
        Document::Form106 => json!({
            "produced": p, "site": "Main", "dea": ["DEA registration number: not set; registered address: not set"],
            "loss": {"entry_id": 9, "loss_type": "Breakage", "discovered_at": "2026-12-01 10:00", "substance": "Ketamine",
                "dea_drug_code": "7285", "strength": "50 mg/mL", "form": "injection", "ndc": "0000-0000-00", "lot_number": "L123",
                "quantity": "1 vial", "quantity_mg": "500", "circumstances": "Vial dropped.", "police_report": null,
                "dea_notified_at": null, "form_106_filed_at": null, "investigation": null, "recorded": "rn.demo on 2026-12-01 10:05",
                "reversed_by": null,
                "outstanding": ["Notify the DEA in writing within one business day"]}
        }),
    }
}

#[test]
fn every_template_renders_from_sample_data_and_the_same_input_gives_the_same_bytes() {
    let r = Renderer::embedded();
    for doc in Document::ALL {
        let data = sample(doc);
        let pdf = r.render(doc, &data, at()).unwrap_or_else(|e| panic!("{}: {e}", doc.template()));
        assert!(pdf.starts_with(b"%PDF-"), "{}", doc.template());
        // To look at the pages while editing a template: KETA_DOCUMENTS_DUMP=/some/dir.
        if let Some(dir) = std::env::var_os("KETA_DOCUMENTS_DUMP") {
            std::fs::write(std::path::Path::new(&dir).join(format!("{}.pdf", doc.slug())), &pdf).unwrap();
        }
        assert_eq!(pdf, r.render(doc, &data, at()).unwrap(), "{} is not reproducible", doc.template());
    }
}

#[test]
fn a_template_error_names_the_template_and_the_line() {
    let dir = std::env::temp_dir().join(format!("keta-doc-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("inventory.typ"), "#let d = json(\"data.json\")\n\n#d.no_such_field\n").unwrap();
    let r = Renderer::new(Some(dir.clone()));
    let err = r.render(Document::Inventory, &sample(Document::Inventory), at()).unwrap_err();
    let DocumentError::Template { template, message } = err else { panic!("{err}") };
    assert_eq!(template, "inventory.typ");
    assert!(message.contains("inventory.typ:3"), "{message}");
    // The other templates still come from the embedded set.
    assert!(r.render(Document::Form106, &sample(Document::Form106), at()).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn text_from_the_data_is_set_as_text_never_run_as_markup() {
    let r = Renderer::embedded();
    let mut data = sample(Document::SessionNote);
    // Were these evaluated, the first would fail the render and the others would read or
    // change the document; as text they are printed as typed.
    data["patient"]["name"] = json!("#panic(\"injected\")");
    data["note"]["text"] = json!("#read(\"/etc/passwd\") ]) #set page(width: 1cm) $x$ *bold* `raw`");
    let pdf = r.render(Document::SessionNote, &data, at()).expect("data is never evaluated as markup");
    assert!(pdf.starts_with(b"%PDF-"));
    let plain = r.render(Document::SessionNote, &sample(Document::SessionNote), at()).unwrap();
    assert_ne!(pdf, plain, "the typed text is in the document");
}
