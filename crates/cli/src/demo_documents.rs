//! The PDF downloads over HTTP from the demo clinic: every document renders from its data, its
//! text (read back with poppler's `pdftotext`) holds what the screen shows and who produced it,
//! its page count matches its footer (`pdfinfo`), producing it is audited as a print, a role
//! that may not read the screen gets 403 and nothing printed, a progress letter holds no other
//! patient's identifiers, and the clinic's template folder replaces a built-in template.
//!
//! Needs poppler-utils (`apt-get install -y poppler-utils`; `.ci/run` installs it).

use std::process::Command;
use std::sync::Arc;

use keta_domain::access::Role;
use keta_domain::ids::{SessionId, SiteId};
use keta_domain::ledger::{Amount, LossType, LotId, NewLoss};
use keta_domain::notes::{NewAmendment, SignNote, SignatureMeaning};
use keta_domain::outcomes::definition_for;
use keta_store::admin::DeaRegistration;
use keta_store::{Actor, SiteScope, Store};
use keta_testkit::{StaffLogin, TestApp, spawn_app_with_state};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::demo_accounts::{DEMO_PASSWORD, demo_totp_key};

fn login(username: &str, role: Role) -> StaffLogin {
    StaffLogin { username: username.into(), password: DEMO_PASSWORD.into(), totp_secret: demo_totp_key(role), role }
}

/// Runs a poppler tool on the PDF; a missing tool fails the test with what to install.
fn poppler(tool: &str, pdf: &[u8], extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new(tool)
        .args(extra)
        .arg(&path)
        .args(if tool == "pdftotext" { &["-"][..] } else { &[][..] })
        .output()
        .unwrap_or_else(|e| panic!("{tool} is needed to read the PDFs back: apt-get install -y poppler-utils ({e})"));
    assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The PDF's text with every run of white space as one space (lines wrap where they fit).
fn text_of(pdf: &[u8]) -> String {
    poppler("pdftotext", pdf, &["-enc", "UTF-8"]).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn pages_of(pdf: &[u8]) -> usize {
    poppler("pdfinfo", pdf, &[])
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("pdfinfo gives the page count")
}

/// Downloads a PDF and checks it is one, with its footer on every page.
async fn download(app: &TestApp, path: &str, producer: &str) -> String {
    let r = app.get(path).await;
    assert_eq!(r.status(), 200, "{path}");
    assert_eq!(r.headers()["content-type"], "application/pdf", "{path}");
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "{path}");
    let pages = pages_of(&bytes);
    let text = text_of(&bytes);
    assert!(pages >= 1, "{path}");
    assert!(text.contains(&format!("Page {pages} of {pages}")), "{path}: the footer counts the pages: {text}");
    assert_eq!(text.matches(&format!("Produced by {producer}")).count(), pages, "{path}: every page's footer: {text}");
    text
}

async fn one_i64(store: &Store, sql: impl Into<String>) -> i64 {
    let sql = sql.into();
    keta_store::testing::read(store, move |c| {
        c.query_opt(&sql, &[])?.unwrap_or_else(|| panic!("no row: {sql}")).i64("id")
    })
    .await
    .unwrap()
}

async fn prints(store: &Store) -> Vec<String> {
    keta_store::testing::read(store, |c| {
        c.query("SELECT object_type FROM audit_log WHERE action = 'print' ORDER BY seq", &[])?
            .iter()
            .map(|r| r.text("object_type"))
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// One story over every document of one demo clinic: building the clinic is the slow part.
#[allow(clippy::too_many_lines)]
async fn every_document_prints_from_the_demo_clinic_for_the_roles_that_may_read_it() {
    let now: OffsetDateTime = datetime!(2026-11-27 16:20 UTC);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let store = Store::open_with_clock(&url, Arc::new(move || now)).await.unwrap();
    crate::demo::ensure(&store, crate::demo::DEFAULT_SEED).await.unwrap();
    crate::demo_accounts::ensure(&store).await.unwrap();
    crate::demo_ledger::ensure(&store).await.unwrap();
    let dr = Actor::staff("dr.demo", Role::Prescriber, SiteScope::All);
    let rn = Actor::staff("rn.demo", Role::Nurse, SiteScope::All);
    let admin = Actor::staff("admin.demo", Role::Administrator, SiteScope::All);

    // A signed and amended note on a session that has one.
    let noted = SessionId(
        one_i64(
            &store,
            "SELECT id FROM sessions WHERE note IS NOT NULL AND state = 'discharged' AND route <> 'intranasal_esketamine' ORDER BY id LIMIT 1",
        )
        .await,
    );
    let text = "Tolerated well; recheck before discharge.".to_string();
    store.set_session_note(&dr, noted, text).await.unwrap();
    let sign = SignNote { meaning: SignatureMeaning::Author, amendment_id: None };
    store.sign_session_note(&dr, Some(now), noted, "Demo Prescriber".into(), sign).await.unwrap();
    let amendment = NewAmendment { reason: "Time of the recheck".into(), text: "Recheck was at 40 minutes.".into() };
    store.amend_session_note(&dr, Some(now), noted, "Demo Prescriber".into(), amendment).await.unwrap();

    // A loss from a ketamine vial lot, at a site given a DEA registration; the other site has none.
    let lot = one_i64(&store, "SELECT id FROM cs_lots WHERE substance = 'ketamine' ORDER BY id LIMIT 1").await;
    let lot_site = SiteId(
        keta_store::testing::read(&store, move |c| {
            c.query_opt("SELECT site_id FROM cs_lots WHERE id = $1", keta_store::params![lot])?.unwrap().i64("site_id")
        })
        .await
        .unwrap(),
    );
    let reg = DeaRegistration { number: "AB1234563".into(), address: "1 Registered Way, Austin TX".into() };
    store.set_site_dea_registration(&admin, lot_site, reg).await.unwrap();
    let loss = NewLoss {
        lot_id: LotId(lot),
        loss_type: LossType::Other,
        amount: Amount::Ml(1.0),
        discovered_at: now,
        circumstances: "Vial dropped and broken while drawing up".into(),
        police_report: None,
        dea_notified_at: None,
        form_106_filed_at: None,
        count_id: None,
        investigation_notes: None,
        corrects: None,
    };
    let loss = store.record_loss(&rn, Some(now), loss).await.unwrap().entry.id;

    // An esketamine session with a monitoring form.
    let mut rems = None;
    let candidates: Vec<i64> = keta_store::testing::read(&store, |c| {
        c.query(
            "SELECT id FROM sessions WHERE route = 'intranasal_esketamine' AND dose_started_at IS NOT NULL ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| r.i64("id"))
        .collect()
    })
    .await
    .unwrap();
    for id in candidates {
        if store.rems_form(&dr, SessionId(id)).await.is_ok() {
            rems = Some(id);
            break;
        }
    }
    let rems = rems.expect("the demo clinic has an esketamine session with a REMS form");

    // Patient A has the most PHQ-9 scores; patient B is someone else.
    let a = one_i64(
        &store,
        "SELECT patient_id AS id FROM questionnaire_responses WHERE instrument = 'phq9' GROUP BY patient_id ORDER BY count(*) DESC, patient_id LIMIT 1",
    )
    .await;
    let names = |id: i64| {
        let store = store.clone();
        async move {
            keta_store::testing::read(&store, move |c| {
                let r = c
                    .query_opt(
                        "SELECT given_name, family_name, mrn FROM patients WHERE id = $1",
                        keta_store::params![id],
                    )?
                    .unwrap();
                Ok((
                    format!("{} {}", r.text("given_name")?, r.text("family_name")?),
                    r.text("mrn")?,
                    r.text("family_name")?,
                ))
            })
            .await
            .unwrap()
        }
    };
    let (a_name, a_mrn, _) = names(a).await;
    let b = one_i64(
        &store,
        format!(
            "SELECT id FROM patients WHERE id <> {a} AND family_name <> (SELECT family_name FROM patients WHERE id = {a}) ORDER BY id DESC LIMIT 1"
        ),
    )
    .await;
    let (b_name, b_mrn, b_family) = names(b).await;
    assert_ne!(a, b);
    assert_ne!(a_name, b_name);
    // The note's and the form's own patients, to check that neither names patient B.
    let patient_of = |session: i64| {
        let store = store.clone();
        async move {
            keta_store::testing::read(&store, move |c| {
                c.query_opt("SELECT patient_id FROM sessions WHERE id = $1", keta_store::params![session])?
                    .unwrap()
                    .i64("patient_id")
            })
            .await
            .unwrap()
        }
    };
    let (note_patient, form_patient) = (patient_of(noted.0).await, patient_of(rems).await);
    assert!(note_patient != b && form_patient != b, "patient B is another patient than the note's and the form's");
    let (note_name, note_mrn, _) = names(note_patient).await;

    let app = spawn_app_with_state(keta_web::AppState::new(store.clone())).await;
    assert_eq!(app.login(&login("dr.demo", Role::Prescriber), now).await.status(), 200);
    let me = "Demo Prescriber (dr.demo)";

    let note = download(&app, &format!("/sessions/{}/note/pdf", noted.0), me).await;
    for want in ["Session note", "Demo Prescriber", "Amendment 1", "Time of the recheck", "Recheck was at 40 minutes."]
    {
        assert!(note.contains(want), "note: {want}: {note}");
    }
    assert!(note.contains(&note_name) && note.contains(&note_mrn), "the note names its patient: {note}");
    for other in [b_name.as_str(), b_mrn.as_str(), b_family.as_str()] {
        assert!(!note.contains(other), "session {}'s note names patient {b}: {other}", noted.0);
    }

    let form = download(&app, &format!("/sessions/{rems}/rems/pdf"), me).await;
    for want in ["REMS Patient Monitoring Form", "Concomitant medications", "Blood pressure"] {
        assert!(form.contains(want), "REMS form: {want}: {form}");
    }
    for other in [b_name.as_str(), b_mrn.as_str(), b_family.as_str()] {
        assert!(!form.contains(other), "session {rems}'s REMS form names patient {b}: {other}");
    }

    let letter = download(&app, &format!("/patients/{a}/progress-letter/pdf"), me).await;
    let phq9 = definition_for("phq9").expect("PHQ-9 has an outcome definition");
    for want in
        ["Treatment progress letter", a_name.as_str(), a_mrn.as_str(), "PHQ-9 over treatment", phq9.name.as_str()]
    {
        assert!(letter.contains(want), "letter: {want}: {letter}");
    }
    for other in [b_name.as_str(), b_mrn.as_str(), b_family.as_str()] {
        assert!(!letter.contains(other), "patient {a}'s letter names patient {b}: {other}");
    }

    let outcomes = download(&app, "/outcomes/pdf", me).await;
    assert!(outcomes.contains("Clinic outcomes") && outcomes.contains("Published trials"), "{outcomes}");
    let trial = first_benchmark_word();
    assert!(outcomes.contains(trial.as_str()), "outcomes: {trial}");

    // One day of the books (the whole demo history is dozens of pages), every site.
    let log =
        download(&app, "/ledger/print/dispensing-log/pdf?substance=ketamine&from=2026-11-27&to=2026-11-27", me).await;
    for want in [
        "Controlled-substance dispensing log",
        "DEA registration number: AB1234563",
        "1 Registered Way",
        "DEA registration number: not set",
        "Loss",
    ] {
        assert!(log.contains(want), "dispensing log: {want}: {log}");
    }
    let bad = app.get("/ledger/print/dispensing-log/pdf?from=2026-02-01&to=2026-01-01").await;
    assert_eq!(bad.status(), 400, "wrong filters give the page with the error, not a PDF");

    let inventory =
        download(&app, &format!("/ledger/print/inventory/pdf?count_type=initial&site_id={}", lot_site.0), me).await;
    for want in ["Initial inventory of controlled substances", "DEA registration number: AB1234563", "Counted by"] {
        assert!(inventory.contains(want), "inventory: {want}: {inventory}");
    }

    let f106 = download(&app, &format!("/ledger/entries/{}/form-106/pdf", loss.0), me).await;
    for want in ["DEA Form 106 draft", "AB1234563", "Vial dropped and broken while drawing up", "7285"] {
        assert!(f106.contains(want), "Form 106: {want}: {f106}");
    }

    assert_eq!(
        prints(&store).await,
        [
            "session-note",
            "rems-form",
            "progress-letter",
            "outcomes-report",
            "dispensing-log",
            "inventory",
            "dea-form-106"
        ],
        "each PDF is one print entry"
    );

    // The front desk may not read clinical records or the books: 403, and nothing printed.
    app.logout_locally();
    assert_eq!(app.login(&login("desk.demo", Role::FrontDesk), now).await.status(), 200);
    for path in [
        format!("/patients/{a}/progress-letter/pdf"),
        format!("/sessions/{}/note/pdf", noted.0),
        format!("/sessions/{rems}/rems/pdf"),
        "/outcomes/pdf".to_string(),
        "/ledger/print/dispensing-log/pdf".to_string(),
        format!("/ledger/entries/{}/form-106/pdf", loss.0),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 403, "front desk: {path}");
        assert_ne!(r.headers().get("content-type").map(|v| v.to_str().unwrap()), Some("application/pdf"));
    }
    assert_eq!(prints(&store).await.len(), 7, "a refused download prints nothing");

    // The clinic's template folder: an edited template replaces the built-in one; a broken one
    // is a 500 that prints nothing.
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join("outcomes-report.typ"),
        "#import \"common.typ\": *\n#let d = json(\"data.json\")\n#show: keta-document.with(d, title: \"Our outcomes\")\nWritten by the clinic for #d.patients patients.\n",
    )
    .unwrap();
    std::fs::write(templates.path().join("inventory.typ"), "#let d = json(\"data.json\")\n#d.no_such_field\n").unwrap();
    let state = keta_web::AppState::new(store.clone())
        .with_documents(keta_web::ui::print::Documents::from_dir(Some(templates.path().to_path_buf())));
    let edited = spawn_app_with_state(state).await;
    // (A nurse: the prescriber's one-time code of this minute is spent.)
    assert_eq!(edited.login(&login("rn.demo", Role::Nurse), now).await.status(), 200);
    let ours = download(&edited, "/outcomes/pdf", "Demo Nurse (rn.demo)").await;
    assert!(ours.contains("Our outcomes") && ours.contains("Written by the clinic for"), "{ours}");
    assert!(!ours.contains("Published trials"), "{ours}");
    let broken = edited.get("/ledger/print/inventory/pdf").await;
    assert_eq!(broken.status(), 500);
    assert_eq!(prints(&store).await.len(), 8, "only the edited outcomes report was printed");
}

/// The first word of the first published trial the outcomes report shows (data/benchmarks.toml).
fn first_benchmark_word() -> String {
    let toml: toml::Value = toml::from_str(include_str!("../../../data/benchmarks.toml")).unwrap();
    let study = toml["benchmarks"][0]["study"].as_str().unwrap();
    study.split(|c: char| c.is_whitespace() || c == '-' || c == '(').next().unwrap().to_string()
}
