//! Consent and REMS enrolment as records, on every backend: a session cannot
//! start without a current consent for its route, nor an esketamine session at an outpatient
//! site without REMS enrolment; each refusal names what is missing and links to the form; the
//! version signed is kept forever.

use serde_json::{Value, json};

use keta_domain::DomainError;
use keta_domain::access::Role;
use keta_domain::consent::{NewConsent, WithdrawConsent};
use keta_domain::course::Route;
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::records::VitalsSource;
use keta_domain::session::{NewSession, SessionAction, SessionState};
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::consents::RemsSetting;
use keta_store::{Actor, Store, StoreError};
use keta_testkit::{ManualClock, TestDb, seed_staff, spawn_app};
use time::macros::date;

use crate::fixtures::*;

fn bp() -> VitalSigns {
    VitalSigns {
        systolic_mmhg: Some(Mmhg(124.0)),
        diastolic_mmhg: Some(Mmhg(80.0)),
        heart_rate_bpm: Some(BeatsPerMinute(72.0)),
        spo2_pct: Some(Percent(98.0)),
        resp_rate_per_min: Some(BreathsPerMinute(14.0)),
    }
}

/// A patient with nothing signed.
async fn unsigned_patient(s: &Store, a: SiteId, mrn: &str) -> PatientId {
    s.create_patient(&Actor::system(), new_patient(a, mrn)).await.unwrap().id
}

/// A session of `route` taken to its pre-dose checks with a BP recorded: the next step is the dose.
async fn ready_to_dose(s: &Store, a: SiteId, p: PatientId, route: Route) -> SessionId {
    let c = s.create_course(&prescriber(&[a]), p, course(route)).await.unwrap();
    let sess = s
        .create_session(
            &prescriber(&[a]),
            c.id,
            NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
        )
        .await
        .unwrap();
    let n = nurse(&[a]);
    s.act_on_session(&n, sess.id, SessionAction::CheckIn).await.unwrap();
    s.act_on_session(&n, sess.id, SessionAction::StartPreDoseChecks).await.unwrap();
    s.record_vitals(&n, sess.id, bp(), None, VitalsSource::Manual).await.unwrap();
    sess.id
}

async fn dose_refusal(s: &Store, a: SiteId, sess: SessionId) -> String {
    match s.act_on_session(&nurse(&[a]), sess, SessionAction::StartDose).await {
        Err(StoreError::Domain(DomainError::Conflict(m))) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn signature(form_key: &str) -> NewConsent {
    let form = keta_domain::consent::current_form(form_key).unwrap();
    NewConsent {
        form_key: form_key.into(),
        form_version: form.version,
        patient_typed_name: "Rowan Test".into(),
        patient_signature_svg: SIGNATURE.into(),
        rems_patient_id: None,
        rems_enrolled_on: None,
    }
}

async fn count(db: &TestDb, sql: &'static str) -> i64 {
    keta_store::testing::read(&db.store, move |c| c.query_opt(sql, &[])?.unwrap().i64("n")).await.unwrap()
}

#[tokio::test]
async fn a_session_cannot_start_without_a_current_consent_for_its_route() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let (n, dr) = (nurse(&[a]), prescriber(&[a]));
        let p = unsigned_patient(s, a, "A-1201").await;
        let sess = ready_to_dose(s, a, p, Route::IvRacemic).await;

        let refused = dose_refusal(s, a, sess).await;
        assert!(refused.contains("no consent to treatment for IV ketamine on file"), "{refused}");
        assert!(refused.contains(&format!("[sign it: /patients/{p}/consents?form=treatment_iv_racemic]")), "{refused}");
        assert!(!refused.contains("REMS"), "IV needs no REMS enrolment: {refused}");
        assert_eq!(s.get_session(&n, sess).await.unwrap().state, SessionState::PreDoseChecks, "{:?}", db.kind);
        assert_eq!(s.session_missing_documents(&n, sess).await.unwrap().len(), 1);

        // A consent for another route does not count.
        let im = s.record_consent(&n, p, signature("treatment_im_racemic")).await.unwrap();
        s.countersign_consent(&dr, im.id).await.unwrap();
        assert!(dose_refusal(s, a, sess).await.contains("no consent to treatment for IV ketamine"));

        // Bad input changes nothing: a stale version, no drawn signature, no typed name.
        let stale = NewConsent { form_version: 7, ..signature("treatment_iv_racemic") };
        assert!(matches!(s.record_consent(&n, p, stale).await, Err(StoreError::Domain(DomainError::Invalid(_)))));
        let blank = NewConsent {
            patient_signature_svg: "".into(),
            patient_typed_name: " ".into(),
            ..signature("treatment_iv_racemic")
        };
        let e = s.record_consent(&n, p, blank).await.unwrap_err().to_string();
        assert!(e.contains("patient_signature_svg") && e.contains("patient_typed_name"), "{e}");
        // The front desk does not take consent.
        assert!(matches!(
            s.record_consent(&front_desk(&[a]), p, signature("treatment_iv_racemic")).await,
            Err(StoreError::Forbidden(_))
        ));
        assert_eq!(s.list_consents(&n, p).await.unwrap().len(), 1, "only the IM consent is on file");

        // Signed by the patient but not countersigned: still refused, saying so.
        let iv = s.record_consent(&n, p, signature("treatment_iv_racemic")).await.unwrap();
        assert_eq!(iv.form_text, keta_domain::consent::current_form("treatment_iv_racemic").unwrap().text);
        assert!(dose_refusal(s, a, sess).await.contains("waits for a clinician's countersignature"));
        let signed = s.countersign_consent(&dr, iv.id).await.unwrap();
        assert_eq!(signed.countersigned_by.as_deref(), Some("dr.test"));
        assert!(matches!(s.countersign_consent(&dr, iv.id).await, Err(StoreError::Domain(DomainError::Conflict(_)))));

        let started = s.act_on_session(&n, sess, SessionAction::StartDose).await.unwrap();
        assert_eq!(started.state, SessionState::Dosing, "{:?}", db.kind);
        // Signing and countersigning are audited in the same transaction as the record.
        let signs =
            count(&db, "SELECT count(*) AS n FROM audit_log WHERE object_type = 'consent' AND action = 'sign'").await;
        assert_eq!(signs, 4, "{:?}", db.kind);
    }
}

#[tokio::test]
async fn esketamine_at_an_outpatient_site_needs_rems_enrolment_with_its_date_and_id() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let (n, dr) = (nurse(&[a]), prescriber(&[a]));
        let p = unsigned_patient(s, a, "A-1202").await;
        let sess = ready_to_dose(s, a, p, Route::IntranasalEsketamine).await;
        let refused = dose_refusal(s, a, sess).await;
        assert!(refused.contains("no consent to treatment for Esketamine nasal spray"), "{refused}");
        assert!(
            refused.contains("no SPRAVATO REMS enrolment (enrolment date and REMS patient id) on file"),
            "{refused}"
        );
        assert!(refused.contains(&format!("/patients/{p}/consents?form=rems_enrolment")), "{refused}");

        sign_consent(s, p, "treatment_intranasal_esketamine").await;
        let refused = dose_refusal(s, a, sess).await;
        assert!(!refused.contains("consent to treatment") && refused.contains("REMS enrolment"), "{refused}");

        // The enrolment needs the REMS patient id and the date; a date to come is refused.
        let e = s.record_consent(&n, p, signature("rems_enrolment")).await.unwrap_err().to_string();
        assert!(e.contains("rems_patient_id") && e.contains("rems_enrolled_on"), "{e}");
        let future = NewConsent {
            rems_patient_id: Some("R-88".into()),
            rems_enrolled_on: Some(date!(2026 - 11 - 03)),
            ..signature("rems_enrolment")
        };
        assert!(s.record_consent(&n, p, future).await.unwrap_err().to_string().contains("future"));
        let enrol = NewConsent {
            rems_patient_id: Some("R-88".into()),
            rems_enrolled_on: Some(date!(2026 - 11 - 01)),
            ..signature("rems_enrolment")
        };
        let r = s.record_consent(&n, p, enrol).await.unwrap();
        assert_eq!((r.rems_patient_id.as_deref(), r.rems_enrolled_on), (Some("R-88"), Some(date!(2026 - 11 - 01))));
        s.countersign_consent(&dr, r.id).await.unwrap();
        s.act_on_session(&n, sess, SessionAction::StartDose).await.unwrap();

        // A certified inpatient setting does not enrol patients (product-reference §(b)).
        let b = site(s, "B").await;
        assert!(matches!(
            s.set_site_rems_setting(&nurse(&[b]), b, RemsSetting::Inpatient).await,
            Err(StoreError::Forbidden(_))
        ));
        s.set_site_rems_setting(&prescriber(&[b]), b, RemsSetting::Inpatient).await.unwrap();
        let q = unsigned_patient(s, b, "B-1203").await;
        sign_consent(s, q, "treatment_intranasal_esketamine").await;
        let inpatient = ready_to_dose(s, b, q, Route::IntranasalEsketamine).await;
        s.act_on_session(&nurse(&[b]), inpatient, SessionAction::StartDose).await.unwrap();
    }
}

#[tokio::test]
async fn a_withdrawn_or_superseded_consent_stops_the_next_session_and_the_signed_version_is_kept() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let n = nurse(&[a]);
        let p = unsigned_patient(s, a, "A-1204").await;
        let iv = sign_consent(s, p, "treatment_iv_racemic").await;
        assert!(s.withdraw_consent(&n, iv.id, WithdrawConsent { reason: " ".into() }).await.is_err());
        let w = s
            .withdraw_consent(&n, iv.id, WithdrawConsent { reason: "Patient changed their mind".into() })
            .await
            .unwrap();
        assert!(w.withdrawn_at.is_some());
        assert!(s.withdraw_consent(&n, iv.id, WithdrawConsent { reason: "again".into() }).await.is_err());
        let sess = ready_to_dose(s, a, p, Route::IvRacemic).await;
        let refused = dose_refusal(s, a, sess).await;
        assert!(refused.contains("was withdrawn (Patient changed their mind)"), "{refused}");
        // Signing again makes a new record; the withdrawn one stays, as signed.
        sign_consent(s, p, "treatment_iv_racemic").await;
        s.act_on_session(&n, sess, SessionAction::StartDose).await.unwrap();
        let all = s.list_consents(&n, p).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].patient_signature_svg, SIGNATURE);

        // A form revised since: the old signature no longer counts (the database holds the
        // version signed; a row claiming an older version stands in for a revision here).
        let old = iv.id.0;
        let res = keta_store::testing::write(s, move |c| {
            c.execute("UPDATE consents SET form_version = 0 WHERE id = $1", keta_store::params![old])?;
            Ok(())
        })
        .await;
        assert!(res.is_err(), "the signed part of a consent cannot be changed ({:?})", db.kind);
        let res = keta_store::testing::write(s, move |c| {
            c.execute("DELETE FROM consents WHERE id = $1", keta_store::params![old])?;
            Ok(())
        })
        .await;
        assert!(res.is_err(), "a consent cannot be deleted ({:?})", db.kind);
        assert_eq!(s.list_consents(&n, p).await.unwrap().len(), 2);
        // Listing is an audited read.
        let reads =
            count(&db, "SELECT count(*) AS n FROM audit_log WHERE object_type = 'consents' AND action = 'read'").await;
        assert!(reads >= 2, "{reads}");
    }
}

#[tokio::test]
async fn the_api_takes_a_signature_a_countersignature_and_names_what_a_session_lacks() {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let a = site(&db.store, "A").await;
    let staff = seed_staff(&db.store, &[a]).await;
    let app = spawn_app(db.store.clone()).await;
    let p = unsigned_patient(&db.store, a, "A-1205").await;
    let sess = ready_to_dose(&db.store, a, p, Route::IntranasalEsketamine).await;
    let nurse_login = staff.iter().find(|u| u.role == Role::Nurse).unwrap();
    assert_eq!(app.login(nurse_login, clock.now()).await.status(), 200);

    let forms: Value = app.get("/api/v1/consent-forms").await.json().await.unwrap();
    assert!(forms.as_array().unwrap().iter().any(|f| f["key"] == "rems_enrolment" && f["version"] == 1));
    let missing: Value = app.get(&format!("/api/v1/sessions/{sess}/missing-documents")).await.json().await.unwrap();
    assert_eq!(missing.as_array().unwrap().len(), 2, "{missing}");
    let r = app.post_json(&format!("/api/v1/sessions/{sess}/actions"), &json!({"action": "start_dose"})).await;
    assert_eq!(r.status(), 409);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("consents?form=rems_enrolment"), "{problem}");

    let body = json!({
        "form_key": "rems_enrolment", "form_version": 1, "patient_typed_name": "Rowan Test",
        "patient_signature_svg": SIGNATURE, "rems_patient_id": "R-1205", "rems_enrolled_on": "2026-11-01"
    });
    let r = app.post_json(&format!("/api/v1/patients/{p}/consents"), &json!({"form_key": "rems_enrolment", "form_version": 99999999999u64, "patient_typed_name": "x", "patient_signature_svg": SIGNATURE})).await;
    assert_eq!(r.status(), 422, "a version out of range is refused");
    let r = app.post_json(&format!("/api/v1/patients/{p}/consents"), &body).await;
    assert_eq!(r.status(), 201);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["countersigned_by"], Value::Null);
    let r = app.post_json(&format!("/api/v1/consents/{}/countersign", rec["id"]), &json!({})).await;
    assert_eq!(r.status(), 200);
    let missing: Value = app.get(&format!("/api/v1/sessions/{sess}/missing-documents")).await.json().await.unwrap();
    assert_eq!(missing.as_array().unwrap().len(), 1, "the treatment consent is still missing: {missing}");
    assert_eq!(missing[0]["form_key"], "treatment_intranasal_esketamine");

    // The consent page links from the refusal and renders the form to sign.
    let page = app.get(&format!("/patients/{p}/consents?form=treatment_intranasal_esketamine")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Consent to treatment: esketamine nasal spray") && html.contains("signature-pad"));
    assert!(html.contains("REMS patient id R-1205"), "the enrolment is on file");
}
