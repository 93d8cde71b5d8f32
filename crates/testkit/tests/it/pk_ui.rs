//! The session screen's "Predicted concentration" panel and the chart's course doses and
//! cumulative exposure ("In the product"), through the real server.

use time::Duration;
use time::macros::date;

use keta_domain::access::Role;
use keta_domain::course::{NewCourse, Route};
use keta_domain::dosing::{BagVolume, DoseRequest};
use keta_domain::patient::{NewWeight, WeightType};
use keta_domain::protocols::ProtocolLibrary;
use keta_domain::records::{CompletedBy, NewQuestionnaireResponse};
use keta_domain::session::{NewSession, ObservationBody, SessionAction};
use keta_domain::units::{Kilograms, Millilitres, Minutes};
use keta_store::Actor;
use keta_store::dosing::DoseChecker;
use keta_testkit::{ManualClock, TestDb, seed_staff, spawn_app};

use crate::fixtures::*;

#[tokio::test]
async fn the_session_screen_predicts_the_concentration_and_the_chart_shows_doses_and_exposure() {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let a = site(&db.store, "A").await;
    let staff = seed_staff(&db.store, &[a]).await;
    let app = spawn_app(db.store.clone()).await;
    let s = &db.store;

    // A 70 kg patient on an IV course; 0.5 mg/kg over 40 min = 35 mg, checked by a second person.
    let p = patient(s, a, "A-0901").await;
    s.add_weight(
        &Actor::system(),
        p,
        NewWeight { weight_kg: Kilograms(70.0), measured_on: date!(2026 - 11 - 01), weight_type: WeightType::Actual },
    )
    .await
    .unwrap();
    let c = s
        .create_course(
            &prescriber(&[a]),
            p,
            NewCourse { protocol: Some("iv-racemic-0.5".into()), ..course(Route::IvRacemic) },
        )
        .await
        .unwrap();
    let sess = s
        .create_session(
            &prescriber(&[a]),
            c.id,
            NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
        )
        .await
        .unwrap();
    let req = DoseRequest {
        protocol: Some("iv-racemic-0.5".into()),
        bag: Some(BagVolume::FinalVolumeIncludingDrugMl(Millilitres(100.0))),
        infusion_min: Some(Minutes(40)),
        ..DoseRequest::per_kg(70.0, 0.5)
    };
    let protocol = ProtocolLibrary::builtin().get("iv-racemic-0.5").unwrap().clone();
    s.record_dose(
        &nurse(&[a]),
        sess.id,
        Some(protocol),
        req,
        DoseChecker { actor: prescriber(&[a]), verified_at: clock.now() },
    )
    .await
    .unwrap();
    for step in [SessionAction::CheckIn, SessionAction::StartPreDoseChecks, SessionAction::StartDose] {
        s.act_on_session(&nurse(&[a]), sess.id, step).await.unwrap();
    }
    // Observed scores 20 and 30 minutes into the dose.
    clock.advance(Duration::minutes(20));
    s.record_observation(&nurse(&[a]), sess.id, ObservationBody::Moaas { score: 4 }, None).await.unwrap();
    clock.advance(Duration::minutes(10));
    s.submit_response(
        &nurse(&[a]),
        p,
        NewQuestionnaireResponse {
            instrument: "cadss6".into(),
            answers: vec![Some(1), Some(2), Some(0), Some(1), Some(0), Some(1)],
            course_id: Some(c.id),
            session_id: Some(sess.id),
            completed_at: None,
            completed_by: CompletedBy::Staff,
        },
    )
    .await
    .unwrap();

    let nurse_login = staff.iter().find(|x| x.role == Role::Nurse).unwrap();
    assert_eq!(app.login(nurse_login, clock.now()).await.status(), 200);

    let r = app.get(&format!("/sessions/{}", sess.id)).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Predicted concentration"), "no panel");
    assert!(html.contains("Model: Domino"), "the model is named");
    assert!(html.contains("35 mg over 40 min"), "the regimen is the recorded dose");
    let panel = &html[html.find("id=\"pk\"").unwrap()..];
    assert!(panel.contains("<svg") && panel.contains("class=\"series pk-plasma\""), "the curve is drawn");
    assert!(panel.contains("class=\"pk-effect\""), "Domino has an effect site");
    assert!(panel.contains("No published variability for this model"), "no band is invented");
    assert!(!panel.contains("class=\"pk-band\""));
    assert!(panel.contains("class=\"point pk-moaas\"") && panel.contains("MOAA/S 4 at"), "MOAA/S on the time axis");
    assert!(panel.contains("class=\"point pk-cadss\"") && panel.contains("CADSS 5 at"), "CADSS on the time axis");
    assert!(panel.contains("Set a level to see when the concentration falls below it."), "no default level");
    assert!(!panel.contains("Predicted to fall below"));

    let html = app.get(&format!("/sessions/{}?below=50", sess.id)).await.text().await.unwrap();
    let panel = &html[html.find("id=\"pk\"").unwrap()..];
    assert!(panel.contains("Predicted to fall below 50 ng/mL (plasma) at "), "the fall below is predicted");
    assert!(panel.contains("min after the dose started"));
    assert!(panel.contains("class=\"ref pk-threshold\""), "the level is drawn");
    assert!(panel.contains("value=\"50\""), "the form keeps the level");

    // The clinic's own level, set once for the site, applies without a query parameter.
    assert!(matches!(
        s.set_site_pk_threshold(&nurse(&[a]), a, Some(60.0)).await,
        Err(keta_store::StoreError::Forbidden(_))
    ));
    assert!(
        s.set_site_pk_threshold(&prescriber(&[a]), a, Some(-3.0)).await.is_err(),
        "a level must be a positive ng/mL"
    );
    s.set_site_pk_threshold(&prescriber(&[a]), a, Some(60.0)).await.unwrap();
    let html = app.get(&format!("/sessions/{}", sess.id)).await.text().await.unwrap();
    let panel = &html[html.find("id=\"pk\"").unwrap()..];
    assert!(panel.contains("Predicted to fall below 60 ng/mL (plasma) at "), "the site's level is used");
    s.set_site_pk_threshold(&prescriber(&[a]), a, None).await.unwrap();

    // A level that is not a number is refused with the reason, never guessed.
    let r = app.get(&format!("/sessions/{}?below=%3Cb%3Elots", sess.id)).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("is not a level"));
    assert!(
        !html.contains("<b>lots") && (html.contains("&lt;b&gt;lots") || html.contains("&#60;b&#62;lots")),
        "escaped"
    );

    // The chart: the course's dose and pump settings, and the cumulative exposure.
    let html = app.get(&format!("/patients/{p}")).await.text().await.unwrap();
    assert!(html.contains("0.5 mg/kg = 35 mg at 70 kg"), "the course's dose");
    assert!(html.contains("mL/h") && html.contains("52.5 mg/h"), "the pump settings");
    assert!(html.contains("Cumulative exposure"));
    let exposure = &html[html.find("exposure-table").unwrap()..];
    assert!(exposure.contains("racemic ketamine") && exposure.contains("<td>35 mg</td>"), "lifetime, 7 and 30 days");
}
