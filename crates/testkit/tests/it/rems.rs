//! The SPRAVATO REMS Patient Monitoring Form, on every backend: filled from the
//! session, missing fields asked before the note can be signed, the 7-day queue, marking a
//! form submitted (audited) and its CSV.

use time::Duration;
use time::macros::date;

use keta_domain::DomainError;
use keta_domain::course::Route;
use keta_domain::ids::{SessionId, SiteId};
use keta_domain::ledger::{NewAdministration, NewReceipt, Presentation, Substance};
use keta_domain::medications::NewMedication;
use keta_domain::records::VitalsSource;
use keta_domain::rems::{Experienced, MarkSubmitted, QueueStatus, RemsAnswers};
use keta_domain::session::{NewSession, SessionAction};
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Milligrams, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::{Store, StoreError};
use keta_testkit::{ManualClock, TestDb};

use crate::fixtures::*;

fn bp(sys: f64, dia: f64) -> VitalSigns {
    VitalSigns {
        systolic_mmhg: Some(Mmhg(sys)),
        diastolic_mmhg: Some(Mmhg(dia)),
        heart_rate_bpm: Some(BeatsPerMinute(72.0)),
        spo2_pct: Some(Percent(98.0)),
        resp_rate_per_min: Some(BreathsPerMinute(14.0)),
    }
}

fn spray_receipt(site: SiteId) -> NewReceipt {
    NewReceipt {
        substance: Substance::Esketamine,
        presentation: Presentation::NasalSprayDevice { mg_per_device: Milligrams(28.0), devices_per_package: 2 },
        containers: 4,
        lot_number: "SP0042".into(),
        ndc: "50458-028-02".into(),
        ..crate::ledger::vial_receipt(site, 1)
    }
}

/// An esketamine session dosed at T0 (56 mg, two devices, from lot SP0042), BPs before, at
/// 41 min and at 2 h, stopped (end of monitoring) at 2 h 5 min.
pub(crate) async fn esketamine_session(s: &Store, a: SiteId, clock: &ManualClock, mrn: &str) -> SessionId {
    let p = patient(s, a, mrn).await;
    s.add_medication(
        &nurse(&[a]),
        p,
        NewMedication { drug: "lorazepam".into(), dose: None, daily_dose_mg: None, started_on: None },
    )
    .await
    .unwrap();
    let c = s.create_course(&prescriber(&[a]), p, course(Route::IntranasalEsketamine)).await.unwrap();
    let sess = s
        .create_session(
            &prescriber(&[a]),
            c.id,
            NewSession { scheduled_for: clock.now(), chair_id: None, planned_dose_mg: None },
        )
        .await
        .unwrap()
        .id;
    let n = nurse(&[a]);
    s.act_on_session(&n, sess, SessionAction::CheckIn).await.unwrap();
    s.act_on_session(&n, sess, SessionAction::StartPreDoseChecks).await.unwrap();
    s.record_vitals(&n, sess, bp(132.0, 84.0), None, VitalsSource::Manual).await.unwrap();
    s.act_on_session(&n, sess, SessionAction::StartDose).await.unwrap();
    let lot = s
        .record_receipt(&n, Some(clock.now()), spray_receipt(a), crate::ledger::witness(prescriber(&[a]), clock))
        .await
        .unwrap()
        .lot
        .id;
    let given = NewAdministration {
        lot_id: lot,
        session_id: sess,
        dose_mg: Milligrams(56.0),
        volume_ml: None,
        devices_used: Some(2),
        administered_at: None,
        ended_at: None,
        ordering_prescriber: Some("Dr Test".into()),
        corrects: None,
    };
    s.record_administration(&n, Some(clock.now()), given).await.unwrap();
    clock.advance(Duration::minutes(41));
    s.record_vitals(&n, sess, bp(150.0, 92.0), None, VitalsSource::Manual).await.unwrap();
    s.act_on_session(&n, sess, SessionAction::EndDose).await.unwrap();
    clock.advance(Duration::minutes(79));
    s.record_vitals(&n, sess, bp(128.0, 80.0), None, VitalsSource::Manual).await.unwrap();
    clock.advance(Duration::minutes(5));
    s.act_on_session(&n, sess, SessionAction::Stop { reason: "End of monitoring (test)".into() }).await.unwrap();
    sess
}

pub(crate) fn answers() -> RemsAnswers {
    let no = Some(Experienced { experienced: false, resolved: None });
    RemsAnswers {
        middle_initial: Some(String::new()),
        monitor_first_name: Some("Nora".into()),
        monitor_last_name: Some("Test".into()),
        monitor_phone: Some("+1 555 0101".into()),
        monitor_email: Some("nora@clinic.example".into()),
        setting_address_1: Some("1 Main St".into()),
        setting_address_2: None,
        setting_city: Some("Austin".into()),
        setting_state: Some("TX".into()),
        setting_zip: Some("78701".into()),
        ready_to_leave_after_minutes: Some(90),
        vitals_acceptable_before: Some(true),
        vitals_acceptable_end: Some(true),
        sedation: Some(Experienced { experienced: true, resolved: Some(true) }),
        dissociation: no,
        respiratory_depression: no,
    }
}

#[tokio::test]
async fn the_form_is_filled_from_the_session_and_asks_for_the_rest_before_the_note_is_signed() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let n = nurse(&[a]);
        let sess = esketamine_session(s, a, &clock, "A-1301").await;

        let v = s.rems_form(&n, sess).await.unwrap();
        let f = &v.form;
        assert_eq!((f.first_name.as_str(), f.date_of_birth), ("Rowan", date!(1984 - 03 - 09)));
        assert!(f.first_treatment && f.enrolled, "{:?}", db.kind);
        assert_eq!(f.rems_patient_id.as_deref(), Some(format!("REMS-{}", v.patient_id).as_str()));
        assert!(f.benzodiazepines && !f.opioids && !f.psychostimulants && !f.maois);
        assert_eq!(
            (f.dose_mg, f.devices, f.lot_numbers.clone()),
            (Some(Milligrams(56.0)), Some(2), vec!["SP0042".to_string()])
        );
        assert_eq!(f.total_treatment_minutes, Some(125));
        let b = |x: &Option<keta_domain::rems::FormBp>| x.as_ref().map(|b| (b.systolic_mmhg, b.minutes_after_dose));
        assert_eq!(
            (b(&f.bp_before), b(&f.bp_after_40_min), b(&f.bp_end)),
            (Some((132.0, 0)), Some((150.0, 41)), Some((128.0, 120)))
        );
        let asked: Vec<&str> = f.missing.iter().map(|m| m.field.as_str()).collect();
        assert!(
            asked.contains(&"ready_to_leave_after_minutes")
                && asked.contains(&"sedation")
                && asked.contains(&"monitor_name"),
            "{asked:?}"
        );
        assert!(
            !asked.contains(&"dose_mg") && !asked.contains(&"bp_before") && !asked.contains(&"ledger"),
            "{asked:?}"
        );

        // The note cannot be signed while the form lacks a field.
        s.set_session_note(&prescriber(&[a]), sess, "Esketamine 56 mg; tolerated.".into()).await.unwrap();
        let sign =
            keta_domain::notes::SignNote { amendment_id: None, meaning: keta_domain::notes::SignatureMeaning::Author };
        let refused =
            s.sign_session_note(&prescriber(&[a]), Some(clock.now()), sess, "Dr Test".into(), sign.clone()).await;
        match refused {
            Err(StoreError::Domain(DomainError::Conflict(m))) => {
                assert!(
                    m.contains("REMS Patient Monitoring Form") && m.contains(&format!("/sessions/{sess}/rems")),
                    "{m}"
                )
            }
            other => panic!("expected a refusal, got {other:?}"),
        }

        // Bad answers change nothing; good ones complete the form.
        let bad = RemsAnswers { setting_zip: Some("7870".into()), ..answers() };
        assert!(matches!(s.save_rems_answers(&n, sess, bad).await, Err(StoreError::Domain(DomainError::Invalid(_)))));
        assert!(!s.rems_form(&n, sess).await.unwrap().form.missing.is_empty());
        let v = s.save_rems_answers(&n, sess, answers()).await.unwrap();
        assert_eq!(v.form.missing, vec![], "{:?}", db.kind);
        s.sign_session_note(&prescriber(&[a]), Some(clock.now()), sess, "Dr Test".into(), sign).await.unwrap();

        // CSV for the portal: every field, one row.
        let csv = s.rems_form_csv(&n, sess).await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains("\"bp_40_min\"") && lines[1].contains("\"150/92\"") && lines[1].contains("\"SP0042\""),
            "{csv}"
        );
    }
}

#[tokio::test]
async fn the_queue_runs_against_seven_days_and_submission_is_recorded_once() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let n = nurse(&[a]);
        let sess = esketamine_session(s, a, &clock, "A-1302").await;
        let queue = s.rems_queue(&n, a, T0 - Duration::days(30)).await.unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!((queue[0].status, queue[0].due_on), (QueueStatus::Due, date!(2026 - 11 - 09)), "{:?}", db.kind);

        // Incomplete forms cannot be marked submitted.
        let m = MarkSubmitted { confirmation_number: "SPR-778899".into(), submitted_on: date!(2026 - 11 - 02) };
        assert!(matches!(
            s.mark_rems_submitted(&n, sess, m.clone()).await,
            Err(StoreError::Domain(DomainError::Conflict(_)))
        ));
        s.save_rems_answers(&n, sess, answers()).await.unwrap();

        clock.advance(Duration::days(8));
        assert_eq!(s.rems_queue(&n, a, T0 - Duration::days(30)).await.unwrap()[0].status, QueueStatus::Overdue);
        let future = MarkSubmitted { submitted_on: date!(2026 - 12 - 30), ..m.clone() };
        assert!(matches!(
            s.mark_rems_submitted(&n, sess, future).await,
            Err(StoreError::Domain(DomainError::Invalid(_)))
        ));
        let done = s.mark_rems_submitted(&n, sess, m.clone()).await.unwrap();
        assert_eq!(done.confirmation_number.as_deref(), Some("SPR-778899"));
        assert_eq!(done.status, QueueStatus::Submitted);
        assert!(s.mark_rems_submitted(&n, sess, m).await.is_err(), "once");
        assert!(s.save_rems_answers(&n, sess, answers()).await.is_err(), "a submitted form is not changed");
        let audited = keta_store::testing::read(s, |c| {
            c.query_opt(
                "SELECT count(*) AS n FROM audit_log WHERE object_type = 'rems_form' AND action = 'update'",
                &[],
            )?
            .unwrap()
            .i64("n")
        })
        .await
        .unwrap();
        assert_eq!(audited, 2, "the answers and the submission: {:?}", db.kind);

        // An IV session has no form.
        assert!(matches!(s.rems_form(&n, SessionId(sess.0 + 1000)).await, Err(StoreError::NotFound(_))));
    }
}
