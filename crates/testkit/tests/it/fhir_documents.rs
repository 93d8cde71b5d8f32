//! FHIR `DocumentReference` and `Binary`: a session note becomes a document once its author
//! signs it, a REMS monitoring form once it is submitted; each points at its PDF, typeset on
//! read, site-scoped and audited like the screen's download.

use serde_json::Value;
use time::macros::date;
use time::{Duration, OffsetDateTime};

use keta_domain::access::Role;
use keta_domain::fhir_search::parse_date_param;
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::notes::{NewAmendment, SignNote, SignatureMeaning};
use keta_domain::rems::MarkSubmitted;
use keta_store::Store;
use keta_store::fhir::{DocumentKind, Search};
use keta_testkit::{ManualClock, TestDb, seed_staff, spawn_app};

use crate::fhir::charted_patient;
use crate::fixtures::*;
use crate::rems::{answers, esketamine_session};

fn author() -> SignNote {
    SignNote { meaning: SignatureMeaning::Author, amendment_id: None }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Site A: an IV session whose note is written but not signed, and an esketamine session
/// whose note is signed and whose form is submitted. Site B: a signed note.
struct Documents {
    unsigned: SessionId,
    other_site: SessionId,
    esk: SessionId,
    pesk: PatientId,
    signed_at: OffsetDateTime,
}

async fn documents(s: &Store, clock: &ManualClock, a: SiteId, b: SiteId) -> Documents {
    let dr = prescriber(&[a, b]);
    let n = nurse(&[a]);
    let (_, unsigned) = charted_patient(s, clock, a, "A-8802").await;
    s.set_session_note(&dr, unsigned, "Draft, not signed".into()).await.unwrap();
    let (_, other_site) = charted_patient(s, clock, b, "B-8803").await;
    s.set_session_note(&dr, other_site, "Site B note".into()).await.unwrap();
    s.sign_session_note(&dr, Some(clock.now()), other_site, "Dr Test".into(), author()).await.unwrap();
    clock.set(T0);
    let esk = esketamine_session(s, a, clock, "A-8801").await;
    let pesk = s.get_session(&n, esk).await.unwrap().patient_id;
    s.save_rems_answers(&n, esk, answers()).await.unwrap();
    s.set_session_note(&dr, esk, "Esketamine 56 mg; tolerated.".into()).await.unwrap();
    s.sign_session_note(&dr, Some(clock.now()), esk, "Dr Test".into(), author()).await.unwrap();
    let signed_at = clock.now();
    clock.advance(Duration::minutes(30));
    let m = MarkSubmitted { confirmation_number: "SPR-8801".into(), submitted_on: date!(2026 - 11 - 02) };
    s.mark_rems_submitted(&n, esk, m).await.unwrap();
    Documents { unsigned, other_site, esk, pesk, signed_at }
}

#[tokio::test]
async fn only_signed_notes_and_submitted_forms_of_the_callers_sites_are_documents() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let (a, b) = (site(s, "A").await, site(s, "B").await);
        let dr = prescriber(&[a, b]);
        let n = nurse(&[a]);
        let Documents { esk, signed_at, .. } = documents(s, &clock, a, b).await;

        // The store: only the signed note and the submitted form of the caller's site.
        let all = |q: Search, kinds: Vec<DocumentKind>| {
            let n = &n;
            async move { s.fhir_documents(n, q, kinds).await.unwrap() }
        };
        let page = all(Search { count: 50, ..Search::default() }, DocumentKind::ALL.to_vec()).await;
        assert_eq!(page.total, 2, "{:?}", db.kind);
        assert_eq!(
            sorted(page.items.iter().map(|d| d.id()).collect()),
            sorted(vec![format!("note-{}", esk.0), format!("rems-{}", esk.0)])
        );
        let note = page.items.iter().find(|d| d.kind == DocumentKind::SessionNote).unwrap();
        assert_eq!((note.author_name.as_deref(), note.amended), (Some("Dr Test"), false));
        assert_eq!(note.created_ms, signed_at.unix_timestamp() * 1000);
        let form = page.items.iter().find(|d| d.kind == DocumentKind::RemsForm).unwrap();
        assert_eq!((form.reference.as_deref(), form.author_name.as_deref()), (Some("SPR-8801"), Some("nurse.test")));
        let forms = all(Search { count: 50, ..Search::default() }, vec![DocumentKind::RemsForm]).await;
        assert_eq!(forms.total, 1);
        let later = Search {
            count: 50,
            date: vec![parse_date_param(&format!("gt{}", (signed_at + Duration::minutes(1)).date())).unwrap()],
            ..Search::default()
        };
        assert_eq!(all(later, DocumentKind::ALL.to_vec()).await.total, 0, "a date after both matches none");
        let everyone = s.fhir_documents(&dr, Search { count: 50, ..Search::default() }, DocumentKind::ALL.to_vec());
        assert_eq!(everyone.await.unwrap().total, 3, "the prescriber works at both sites");

        // An amendment makes the note "amended" and moves its last change.
        clock.advance(Duration::minutes(10));
        let amendment = NewAmendment { reason: "Late entry".into(), text: "BP rechecked at 2 h: 126/80.".into() };
        s.amend_session_note(&dr, Some(clock.now()), esk, "Dr Test".into(), amendment).await.unwrap();
        let q = Search { id: Some(esk.0), count: 5, ..Search::default() };
        let amended = all(q, vec![DocumentKind::SessionNote]).await;
        assert!(amended.items[0].amended);
        assert_eq!(amended.items[0].updated_ms, clock.now().unix_timestamp() * 1000);
    }
}

#[tokio::test]
async fn document_references_point_at_pdfs_read_as_audited_prints() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let (a, b) = (site(s, "A").await, site(s, "B").await);
        let staff = seed_staff(s, &[a]).await;
        let Documents { unsigned, other_site, esk, pesk, .. } = documents(s, &clock, a, b).await;

        // Over HTTP, as a nurse of site A.
        let app = spawn_app(s.clone()).await;
        let login = |role: Role| staff.iter().find(|u| u.role == role).unwrap();
        assert_eq!(app.login(login(Role::Nurse), clock.now()).await.status(), 200);
        let bundle: Value =
            app.get(&format!("/fhir/R4/DocumentReference?patient={}", pesk.0)).await.json().await.unwrap();
        assert_eq!(bundle["total"], 2, "{bundle}");
        let entry = |id: String| {
            bundle["entry"].as_array().unwrap().iter().find(|e| e["resource"]["id"] == id.as_str()).unwrap()["resource"]
                .clone()
        };
        let doc = entry(format!("note-{}", esk.0));
        assert_eq!((doc["docStatus"].as_str(), doc["status"].as_str()), (Some("final"), Some("current")));
        assert_eq!(doc["author"][0]["display"], "Dr Test");
        assert_eq!(doc["type"]["coding"][0]["code"], "session-note");
        assert_eq!(doc["subject"]["reference"], format!("Patient/{}", pesk.0));
        assert_eq!(doc["context"]["encounter"][0]["reference"], format!("Encounter/{}", esk.0));
        let attachment = &doc["content"][0]["attachment"];
        assert_eq!(attachment["contentType"], "application/pdf");
        let url = attachment["url"].as_str().unwrap();
        assert!(url.ends_with(&format!("/fhir/R4/Binary/note-{}", esk.0)), "{url}");
        assert_eq!(entry(format!("rems-{}", esk.0))["masterIdentifier"]["value"], "SPR-8801");

        // `type` narrows by the configured code; an unknown code matches nothing.
        let forms: Value = app.get("/fhir/R4/DocumentReference?type=rems-monitoring-form").await.json().await.unwrap();
        assert_eq!(forms["total"], 1);
        let none: Value =
            app.get("/fhir/R4/DocumentReference?type=http://loinc.org|11506-3").await.json().await.unwrap();
        assert_eq!(none["total"], 0);

        // The PDF itself, and as a Binary resource when only FHIR JSON is accepted.
        let r = app.get(&format!("/fhir/R4/Binary/note-{}", esk.0)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/pdf");
        assert!(r.bytes().await.unwrap().starts_with(b"%PDF-"));
        let r = app
            .request(reqwest::Method::GET, &format!("/fhir/R4/Binary/rems-{}", esk.0))
            .header("accept", "application/fhir+json")
            .send()
            .await
            .unwrap();
        let bin: Value = r.json().await.unwrap();
        assert_eq!(
            (bin["resourceType"].as_str(), bin["contentType"].as_str()),
            (Some("Binary"), Some("application/pdf"))
        );
        assert!(bin["data"].as_str().unwrap().starts_with("JVBERi0"), "base64 of %PDF-");

        // Nothing that is not a document, nothing of another site, nothing made up.
        for path in [
            format!("/fhir/R4/DocumentReference/note-{}", unsigned.0),
            format!("/fhir/R4/Binary/note-{}", unsigned.0),
            format!("/fhir/R4/Binary/note-{}", other_site.0),
            format!("/fhir/R4/Binary/rems-{}", unsigned.0),
            "/fhir/R4/Binary/letter-1".to_string(),
        ] {
            assert_eq!(app.get(&path).await.status(), 404, "{path}");
        }
        let read: Value = app.get(&format!("/fhir/R4/DocumentReference/rems-{}", esk.0)).await.json().await.unwrap();
        assert_eq!(read["id"], format!("rems-{}", esk.0));

        // Each PDF read is audited as a print of that document for that patient.
        let prints = keta_store::testing::read(s, move |c| {
            c.query_opt(
                "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'print' AND actor = 'nurse.test' AND patient_id = $1 AND object_type IN ('session-note', 'rems-form')",
                keta_store::params![pesk.0],
            )?
            .unwrap()
            .i64("n")
        })
        .await
        .unwrap();
        assert_eq!(prints, 2, "{:?}", db.kind);

        // The front desk reads no clinical documents.
        assert_eq!(app.login(login(Role::FrontDesk), clock.now()).await.status(), 200);
        assert_eq!(app.get("/fhir/R4/DocumentReference").await.status(), 403);
        assert_eq!(app.get(&format!("/fhir/R4/Binary/note-{}", esk.0)).await.status(), 403);
    }
}
