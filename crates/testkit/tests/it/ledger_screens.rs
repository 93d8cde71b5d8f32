//! The controlled-substance books in the browser, over HTTP on every backend: a receipt with
//! bad input comes back with each error beside its field and writes nothing; a witness signs
//! with their own password on the same screen; a double-submitted form records once; the
//! recorder cannot witness their own waste; the reconciliation, the lot's running balance and
//! the dispensing log show the entries; the front desk has no ledger.

use keta_domain::access::Role;
use keta_testkit::{ManualClock, TestApp, TestDb, seed_staff, spawn_app};

use crate::fixtures::*;

pub(crate) async fn post_form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let mut all = vec![("csrf_token", "from-the-header")];
    all.extend_from_slice(fields);
    app.request(reqwest::Method::POST, path).form(&all).send().await.unwrap()
}

pub(crate) fn receipt<'a>(
    site: &'a str,
    lot: &'a str,
    witness: &'a str,
    password: &'a str,
    token: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("form_token", token),
        ("site_id", site),
        ("supplier_name", "Example Wholesale"),
        ("supplier_address", "1 Depot Rd"),
        ("supplier_dea_number", "PS1234563"),
        ("substance", "ketamine"),
        ("presentation.concentration_mg_per_ml", "50"),
        ("presentation.ml_per_vial", "10"),
        ("containers", "2"),
        ("lot_number", lot),
        ("ndc", "0409-2051-05"),
        ("expires_on", "2027-06-30"),
        ("witness_username", witness),
        ("witness_password", password),
    ]
}

fn waste<'a>(token: &'a str, lot: &'a str, witness: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("form_token", token),
        ("lot_id", lot),
        ("amount", "1.5"),
        ("amount_unit", "ml"),
        ("method", "Drug-waste container"),
        ("reason", "Vial damaged on opening"),
        ("witness_username", witness),
        ("witness_password", password),
    ]
}

async fn entries(db: &TestDb) -> i64 {
    keta_store::testing::read(&db.store, |c| c.query_opt("SELECT count(*) AS n FROM cs_ledger", &[])?.unwrap().i64("n"))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_ledger_screens_record_with_a_witness_once_and_refuse_bad_input_beside_the_field() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let staff = seed_staff(&db.store, &[a]).await;
        let app = spawn_app(db.store.clone()).await;
        let by = |r: Role| staff.iter().find(|s| s.role == r).unwrap();
        let (rn, dr) = (by(Role::Nurse), by(Role::Prescriber));
        assert_eq!(app.login(rn, T0).await.status(), 200);
        let site_id = a.0.to_string();

        // The menu links the ledger for the nurse; the page lists the entry screens.
        let books = app.get("/ledger").await.text().await.unwrap();
        assert!(books.contains(r#"<a href="/ledger" aria-current="page">Ledger</a>"#), "{:?}", db.kind);
        assert!(books.contains(r#"href="/ledger/receipt""#));

        // Bad input: no lot number, a wrong witness password. Each error is beside its
        // field, the typed values come back, the password does not, and nothing is written.
        let mut bad = receipt(&site_id, "", &dr.username, "not the password", "t-bad");
        bad.retain(|(k, _)| *k != "expires_on");
        let r = post_form(&app, "/ledger/receipt", &bad).await;
        assert_eq!(r.status(), 422, "{:?}", db.kind);
        let page = r.text().await.unwrap();
        assert!(page.contains(r#"id="witness_password-error""#), "{page}");
        assert!(page.contains(r#"id="expires_on-error""#), "{page}");
        assert!(page.contains(r#"value="Example Wholesale""#));
        assert!(!page.contains("not the password"));
        assert_eq!(entries(&db).await, 0);

        // The domain's own checks land beside their fields too (no lot number).
        let r = post_form(&app, "/ledger/receipt", &receipt(&site_id, "", &dr.username, &dr.password, "t-nolot")).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains(r#"id="lot_number-error""#));
        assert_eq!(entries(&db).await, 0, "{:?}", db.kind);

        // A good receipt, submitted twice with the same form token: recorded once.
        let good = receipt(&site_id, "KX9", &dr.username, &dr.password, "t-good");
        let first = post_form(&app, "/ledger/receipt", &good).await;
        assert_eq!(first.status(), 303, "{:?}", db.kind);
        let to = first.headers()["location"].to_str().unwrap().to_string();
        assert!(to.starts_with("/ledger/lots/"), "{to}");
        let again = post_form(&app, "/ledger/receipt", &good).await;
        assert_eq!(again.status(), 303);
        assert_eq!(again.headers()["location"].to_str().unwrap(), to);
        assert_eq!(entries(&db).await, 1, "{:?}: a double submit records once", db.kind);
        let lot_id = to.trim_start_matches("/ledger/lots/").split('#').next().unwrap().to_string();

        // The recorder cannot witness their own waste.
        let own = waste("w-own", &lot_id, &rn.username, &rn.password);
        let r = post_form(&app, "/ledger/waste", &own).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("different person from the one recording"));
        assert_eq!(entries(&db).await, 1);
        let ok = waste("w-ok", &lot_id, &dr.username, &dr.password);
        assert_eq!(post_form(&app, "/ledger/waste", &ok).await.status(), 303, "{:?}", db.kind);

        // A count short of the book, with its reason: the reconciliation shows the discrepancy.
        let count = [
            ("form_token", "c-1"),
            ("lot_id", lot_id.as_str()),
            ("physical", "18"),
            ("physical_unit", "ml"),
            ("count_type", "routine"),
            ("reason", "Half a millilitre short"),
        ];
        assert_eq!(post_form(&app, "/ledger/count", &count).await.status(), 303);
        let lot = app.get(&format!("/ledger/lots/{lot_id}")).await.text().await.unwrap();
        assert!(lot.contains(r#"<dd id="lot-on-hand">18.5 mL (925 mg)</dd>"#), "{lot}");
        let recon = app.get("/ledger/reconciliation").await.text().await.unwrap();
        assert!(recon.contains("Not balanced"), "{:?}", db.kind);
        assert!(recon.contains(&format!("/ledger/adjustment?lot_id={lot_id}&amp;count_id=")), "a way to resolve it");

        let log = app.get("/ledger/print/dispensing-log?substance=ketamine").await.text().await.unwrap();
        for kind in ["Receipt", "Waste", "Count"] {
            assert!(log.contains(&format!("<td>{kind}</td>")), "{kind} in the log");
        }
        assert!(log.contains("Produced by Test Nurse (nurse.test)"));
        let bad_range = app.get("/ledger/print/dispensing-log?from=2026-02-01&to=2026-01-01").await;
        assert_eq!(bad_range.status(), 400);

        // The front desk has no ledger.
        app.logout_locally();
        assert_eq!(app.login(by(Role::FrontDesk), T0).await.status(), 200);
        assert_eq!(app.get("/ledger").await.status(), 403);
        assert!(!app.get("/today").await.text().await.unwrap().contains(r#"href="/ledger""#));
    }
}
