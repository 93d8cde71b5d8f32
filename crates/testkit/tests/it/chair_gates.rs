//! Safety gates in the chair, on every backend: discharge judged from the record,
//! no dose while an urgent alert is open, a session belongs to its day, and vitals entry
//! never re-records a stale value.

use serde_json::{Value, json};
use time::Duration;

use keta_domain::DomainError;
use keta_domain::access::Role;
use keta_domain::course::Route;
use keta_domain::discharge::{DischargeSettings, DissociationSetting};
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::records::{AlertLevel, CompletedBy, NewQuestionnaireResponse, VitalsSource};
use keta_domain::session::{DecisionKind, NewDecision, NewSession, ObservationBody, SessionAction, SessionState};
use keta_domain::units::{BeatsPerMinute, BreathsPerMinute, Minutes, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::alerts::AlertQuery;
use keta_store::{Store, StoreError};
use keta_testkit::{ManualClock, TestDb, seed_staff, spawn_app};

use crate::fixtures::*;

fn full(sys: f64, dia: f64, spo2: f64) -> VitalSigns {
    VitalSigns {
        systolic_mmhg: Some(Mmhg(sys)),
        diastolic_mmhg: Some(Mmhg(dia)),
        heart_rate_bpm: Some(BeatsPerMinute(76.0)),
        spo2_pct: Some(Percent(spo2)),
        resp_rate_per_min: Some(BreathsPerMinute(14.0)),
    }
}

fn demo_settings() -> DischargeSettings {
    DischargeSettings {
        vitals_within_minutes: Some(Minutes(15)),
        dissociation: Some(DissociationSetting { instrument: "cadss6".into(), resolved_at_or_below: 2 }),
    }
}

fn cadss6(session: SessionId, answers: [i32; 6]) -> NewQuestionnaireResponse {
    NewQuestionnaireResponse {
        instrument: "cadss6".into(),
        answers: answers.into_iter().map(Some).collect(),
        course_id: None,
        session_id: Some(session),
        completed_at: None,
        completed_by: CompletedBy::Staff,
    }
}

/// An IV session at `at`, checked in with a full pre-dose reading and dosed at the clock's now.
async fn dosed_session(s: &Store, a: SiteId, mrn: &str, at: time::OffsetDateTime) -> (PatientId, SessionId) {
    let p = patient(s, a, mrn).await;
    let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
    let sess = s
        .create_session(
            &prescriber(&[a]),
            c.id,
            NewSession { scheduled_for: at, chair_id: None, planned_dose_mg: None },
        )
        .await
        .unwrap();
    let n = nurse(&[a]);
    s.act_on_session(&n, sess.id, SessionAction::CheckIn).await.unwrap();
    s.act_on_session(&n, sess.id, SessionAction::StartPreDoseChecks).await.unwrap();
    s.record_vitals(&n, sess.id, full(128.0, 82.0, 98.0), None, VitalsSource::Manual).await.unwrap();
    s.act_on_session(&n, sess.id, SessionAction::StartDose).await.unwrap();
    (p, sess.id)
}

async fn ack_all(s: &Store, a: SiteId, session: SessionId) {
    let open = s
        .list_alerts(
            &nurse(&[a]),
            AlertQuery { session_id: Some(session), open_only: true, limit: 50, ..Default::default() },
        )
        .await
        .unwrap();
    for al in open {
        s.acknowledge_alert(&nurse(&[a]), al.id, Some("Re-checked; prescriber informed".into())).await.unwrap();
    }
}

async fn given_in_ledger(s: &Store, a: SiteId, session: SessionId, clock: &ManualClock) {
    let lot = s
        .record_receipt(
            &nurse(&[a]),
            Some(clock.now()),
            crate::ledger::vial_receipt(a, 2),
            crate::ledger::witness(prescriber(&[a]), clock),
        )
        .await
        .unwrap()
        .lot
        .id;
    s.record_administration(&nurse(&[a]), Some(clock.now()), crate::ledger::dose(lot, session, 35.0, 0.7))
        .await
        .unwrap();
}

async fn discharge_refusal(s: &Store, a: SiteId, session: SessionId) -> String {
    match s.act_on_session(&nurse(&[a]), session, SessionAction::Discharge).await {
        Err(StoreError::Domain(DomainError::Conflict(m))) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn discharge_is_refused_for_each_fact_missing_from_the_record_and_allowed_when_it_is_complete() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let (_, sess) = dosed_session(s, a, "A-1801", T0).await;
        let n = nurse(&[a]);

        // The case: one post-dose BP of 182/112 at 40 min, no sedation or dissociation score.
        clock.advance(Duration::minutes(40));
        s.record_vitals(&n, sess, full(182.0, 112.0, 97.0), None, VitalsSource::Manual).await.unwrap();
        s.act_on_session(&n, sess, SessionAction::EndDose).await.unwrap();
        ack_all(s, a, sess).await;
        clock.advance(Duration::minutes(80));
        given_in_ledger(s, a, sess, &clock).await;

        // No clinic settings yet: discharge names them and where to set them; nothing is defaulted.
        let refused = discharge_refusal(s, a, sess).await;
        assert!(refused.contains("vitals_within_minutes") && refused.contains("dissociation"), "{refused}");
        assert!(refused.contains(&format!("[set it: PUT /api/v1/sites/{a}/discharge-settings]")), "{refused}");
        assert!(refused.contains("182/112") && refused.contains(&format!("[record it: /sessions/{sess}#vitals]")));
        assert!(refused.contains("sedation not scored") && refused.contains(&format!("/sessions/{sess}#moaas")));
        assert_eq!(s.get_session(&n, sess).await.unwrap().state, SessionState::Monitoring, "{:?}", db.kind);

        // The medical director sets them; a nurse cannot, and a bad value changes nothing.
        assert!(matches!(s.set_site_discharge_settings(&n, a, demo_settings()).await, Err(StoreError::Forbidden(_))));
        let bad = DischargeSettings { vitals_within_minutes: Some(Minutes(0)), ..demo_settings() };
        assert!(s.set_site_discharge_settings(&prescriber(&[a]), a, bad).await.is_err());
        assert_eq!(s.site_discharge_settings(&n, a).await.unwrap(), DischargeSettings::default());
        s.set_site_discharge_settings(&prescriber(&[a]), a, demo_settings()).await.unwrap();

        let refused = discharge_refusal(s, a, sess).await;
        assert!(refused.contains("80 min old") && refused.contains("within 15 min"), "{refused}");
        assert!(refused.contains("182/112"), "{refused}");
        assert!(refused.contains("sedation not scored"), "{refused}");
        assert!(refused.contains("dissociation not scored") && refused.contains(&"#cadss".to_string()), "{refused}");

        // Each fact recorded in turn; what is still missing is named each time.
        s.record_vitals(&n, sess, full(136.0, 86.0, 97.0), None, VitalsSource::Manual).await.unwrap();
        s.record_observation(&n, sess, ObservationBody::Moaas { score: 4 }, None).await.unwrap();
        let refused = discharge_refusal(s, a, sess).await;
        assert!(!refused.contains("min old") && !refused.contains("BP"), "{refused}");
        assert!(refused.contains("latest MOAA/S is 4"), "{refused}");
        s.record_observation(&n, sess, ObservationBody::Moaas { score: 5 }, None).await.unwrap();
        s.submit_response(&n, s.get_session(&n, sess).await.unwrap().patient_id, cadss6(sess, [1, 1, 1, 0, 0, 0]))
            .await
            .unwrap();
        let refused = discharge_refusal(s, a, sess).await;
        assert!(refused.contains("CADSS-6 total is 3") && refused.contains("2 or below"), "{refused}");
        assert!(!refused.contains("MOAA/S"), "{refused}");
        let p = s.get_session(&n, sess).await.unwrap().patient_id;
        s.submit_response(&n, p, cadss6(sess, [1, 0, 0, 0, 0, 0])).await.unwrap();
        assert_eq!(s.discharge_blockers(&n, sess).await.unwrap(), vec![], "{:?}", db.kind);
        let done = s.act_on_session(&n, sess, SessionAction::Discharge).await.unwrap();
        assert_eq!(done.state, SessionState::Discharged);
    }
}

#[tokio::test]
async fn a_high_bp_at_discharge_needs_a_prescribers_decision_naming_the_reading_and_spo2_its_floor() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        s.set_site_discharge_settings(&prescriber(&[a]), a, demo_settings()).await.unwrap();
        let (p, sess) = dosed_session(s, a, "A-1802", T0).await;
        let n = nurse(&[a]);
        clock.advance(Duration::minutes(40));
        s.act_on_session(&n, sess, SessionAction::EndDose).await.unwrap();
        clock.advance(Duration::minutes(75));
        given_in_ledger(s, a, sess, &clock).await;
        s.record_observation(&n, sess, ObservationBody::Moaas { score: 5 }, None).await.unwrap();
        s.submit_response(&n, p, cadss6(sess, [0; 6])).await.unwrap();
        // Still in the severe range at 2 h, and SpO2 under the floor.
        let floor = keta_domain::alerts::SafetyRules::builtin().spo2_floor.below_pct.0;
        let high =
            s.record_vitals(&n, sess, full(184.0, 104.0, floor - 2.0), None, VitalsSource::Manual).await.unwrap();
        ack_all(s, a, sess).await;
        clock.advance(Duration::minutes(6));
        let codes: Vec<&str> = s.discharge_blockers(&n, sess).await.unwrap().iter().map(|b| b.code).collect();
        assert_eq!(codes, ["bp_above_threshold", "spo2_below_floor"], "{:?}", db.kind);

        // A nurse cannot document the decision; a prescriber can, naming the reading.
        let decide = NewDecision::DischargeDespiteBp {
            vitals_id: high.record.id,
            reason: "Asymptomatic; GP to follow up BP tomorrow".into(),
        };
        assert!(matches!(s.record_session_decision(&n, sess, decide.clone()).await, Err(StoreError::Forbidden(_))));
        let short = NewDecision::DischargeDespiteBp { vitals_id: high.record.id, reason: " ".into() };
        assert!(matches!(s.record_session_decision(&prescriber(&[a]), sess, short).await, Err(StoreError::Domain(_))));
        let d = s.record_session_decision(&prescriber(&[a]), sess, decide).await.unwrap();
        assert_eq!((d.len(), d[0].kind, d[0].vitals_id), (1, DecisionKind::DischargeDespiteBp, Some(high.record.id)));
        let codes: Vec<&str> = s.discharge_blockers(&n, sess).await.unwrap().iter().map(|b| b.code).collect();
        assert_eq!(codes, ["spo2_below_floor"], "the decision covers the BP only");

        // A newer reading is a new fact: the decision named the old one. SpO2 back at the floor.
        s.record_vitals(&n, sess, full(183.0, 103.0, floor), None, VitalsSource::Manual).await.unwrap();
        ack_all(s, a, sess).await;
        let codes: Vec<&str> = s.discharge_blockers(&n, sess).await.unwrap().iter().map(|b| b.code).collect();
        assert_eq!(codes, ["bp_above_threshold"]);
        s.record_vitals(&n, sess, full(150.0, 92.0, floor), None, VitalsSource::Manual).await.unwrap();
        ack_all(s, a, sess).await;
        assert_eq!(s.discharge_blockers(&n, sess).await.unwrap(), vec![]);
        let done = s.act_on_session(&n, sess, SessionAction::Discharge).await.unwrap();
        assert!(done.note.unwrap_or_default().contains("Prescriber decision: discharge with BP 184/104"));
        let audited = keta_store::testing::read(&db.store, |c| {
            c.query_opt("SELECT count(*) AS n FROM audit_log WHERE object_type = 'session_decision'", &[])?
                .unwrap()
                .i64("n")
        })
        .await
        .unwrap();
        assert_eq!(audited, 1);
    }
}

#[tokio::test]
async fn a_dose_is_refused_while_an_urgent_alert_is_open_unless_a_prescriber_overrides_it() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let p = patient(s, a, "A-1803").await;
        let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
        let n = nurse(&[a]);
        // A PHQ-9 with item 9 answered above 0 before the session: an urgent alert for the patient.
        let phq = NewQuestionnaireResponse {
            instrument: "phq9".into(),
            answers: [2, 2, 2, 1, 1, 1, 1, 1, 2].into_iter().map(Some).collect(),
            course_id: Some(c.id),
            session_id: None,
            completed_at: None,
            completed_by: CompletedBy::Patient,
        };
        s.submit_response(&n, p, phq).await.unwrap();
        let urgent = s
            .list_alerts(&n, AlertQuery { patient_id: Some(p), open_only: true, limit: 50, ..Default::default() })
            .await
            .unwrap();
        assert!(urgent.iter().any(|x| x.level == AlertLevel::Urgent), "{:?}", db.kind);

        let mut sessions = Vec::new();
        for _ in 0..2 {
            let sess = s
                .create_session(
                    &prescriber(&[a]),
                    c.id,
                    NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
                )
                .await
                .unwrap();
            s.act_on_session(&n, sess.id, SessionAction::CheckIn).await.unwrap();
            s.act_on_session(&n, sess.id, SessionAction::StartPreDoseChecks).await.unwrap();
            s.record_vitals(&n, sess.id, full(124.0, 80.0, 98.0), None, VitalsSource::Manual).await.unwrap();
            sessions.push(sess.id);
        }
        let sess = sessions[0];
        let refused = match s.act_on_session(&n, sess, SessionAction::StartDose).await {
            Err(StoreError::Domain(DomainError::Conflict(m))) => m,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(refused.contains("urgent alert") && refused.contains("prescriber records an override"), "{refused}");
        assert_eq!(s.get_session(&n, sess).await.unwrap().state, SessionState::PreDoseChecks);

        // Nurses cannot override; a prescriber must give a reason.
        let over = NewDecision::DoseDespiteUrgentAlert {
            reason: "Passive ideation only, safety plan reviewed with the patient".into(),
        };
        assert!(matches!(s.record_session_decision(&n, sess, over.clone()).await, Err(StoreError::Forbidden(_))));
        let none = NewDecision::DoseDespiteUrgentAlert { reason: "".into() };
        assert!(s.record_session_decision(&prescriber(&[a]), sess, none).await.is_err());
        let d = s.record_session_decision(&prescriber(&[a]), sess, over).await.unwrap();
        assert_eq!(
            d.iter().map(|x| x.alert_id).collect::<Vec<_>>(),
            urgent.iter().filter(|x| x.level == AlertLevel::Urgent).map(|x| Some(x.id)).collect::<Vec<_>>()
        );
        let started = s.act_on_session(&n, sess, SessionAction::StartDose).await.unwrap();
        assert_eq!(started.state, SessionState::Dosing);
        assert!(started.note.unwrap_or_default().contains("Prescriber override: dose may start"), "{:?}", db.kind);
        let listed = s.list_session_decisions(&n, sess).await.unwrap();
        assert!(listed.iter().all(|x| x.decided_by == "dr.test" && x.kind == DecisionKind::DoseDespiteUrgentAlert));

        // The override belongs to its session: the other one is still held until the alert is acknowledged.
        assert!(s.act_on_session(&n, sessions[1], SessionAction::StartDose).await.is_err());
        for al in urgent.iter().filter(|x| x.level == AlertLevel::Urgent) {
            s.acknowledge_alert(&n, al.id, Some("Phoned patient; safety plan reviewed".into())).await.unwrap();
        }
        s.act_on_session(&n, sessions[1], SessionAction::StartDose).await.unwrap();
    }
}

#[tokio::test]
async fn a_session_of_another_day_needs_a_reason_and_an_active_chair_is_never_free() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let n = nurse(&[a]);
        let chairs = s.list_chairs(&n, a).await.unwrap();
        let p = patient(s, a, "A-1804").await;
        let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
        let at = |h: i64, chair: usize| NewSession {
            scheduled_for: T0 + Duration::hours(h),
            chair_id: Some(chairs[chair].id),
            planned_dose_mg: None,
        };
        // T0 is 08:00 in Chicago: +14 h is 22:00 the same local day (04:00 UTC the next), +24 h is tomorrow.
        let late = s.create_session(&prescriber(&[a]), c.id, at(14, 0)).await.unwrap();
        let tomorrow = s.create_session(&prescriber(&[a]), c.id, at(24, 0)).await.unwrap();
        s.act_on_session(&n, late.id, SessionAction::CheckIn).await.unwrap();
        s.act_on_session(&n, late.id, SessionAction::Stop { reason: "Test of the local day".into() }).await.unwrap();

        let refused = s.act_on_session(&n, tomorrow.id, SessionAction::CheckIn).await.unwrap_err().to_string();
        assert!(refused.contains("2026-11-03") && refused.contains("confirm_other_day"), "{refused}");
        assert_eq!(s.get_session(&n, tomorrow.id).await.unwrap().state, SessionState::Scheduled);
        let why = "Patient came a day early; prescriber agreed";
        let s2 = s.act_on_session_confirmed(&n, tomorrow.id, SessionAction::CheckIn, Some(why.into())).await.unwrap();
        assert!(s2.note.unwrap_or_default().contains(why));
        let d = s.list_session_decisions(&n, tomorrow.id).await.unwrap();
        assert_eq!(
            (d[0].kind, d[0].step.as_deref(), d[0].reason.as_str()),
            (DecisionKind::OtherDay, Some("check_in"), why)
        );
        s.act_on_session(&n, tomorrow.id, SessionAction::StartPreDoseChecks).await.unwrap();
        s.record_vitals(&n, tomorrow.id, full(124.0, 80.0, 98.0), None, VitalsSource::Manual).await.unwrap();
        // Starting the dose is a day decision of its own.
        assert!(s.act_on_session(&n, tomorrow.id, SessionAction::StartDose).await.is_err());
        s.act_on_session_confirmed(&n, tomorrow.id, SessionAction::StartDose, Some(why.into())).await.unwrap();

        // The infusion runs past midnight: the next day, the board still shows the chair occupied.
        clock.advance(Duration::hours(20));
        // The board's read for a day with nothing scheduled still carries the session under way.
        let (from, to) = (clock.now() - Duration::days(30), clock.now() - Duration::days(29));
        let board = s.site_board(&n, a, from, to).await.unwrap();
        assert_eq!(board.sessions.iter().map(|x| x.id).collect::<Vec<_>>(), [tomorrow.id], "{:?}", db.kind);
        let staff = seed_staff(s, &[a]).await;
        let app = spawn_app(s.clone()).await;
        assert_eq!(app.login(staff.iter().find(|x| x.role == Role::Nurse).unwrap(), clock.now()).await.status(), 200);
        let html = app.get("/today").await.text().await.unwrap();
        let chair1 = html.find("<span class=\"chair-name\">Chair 1</span>").expect("chair 1 on the board");
        let card = &html[chair1..html[chair1..].find("</li>").map_or(html.len(), |e| chair1 + e)];
        assert!(card.contains(&format!("href=\"/sessions/{}\"", tomorrow.id)), "{card}");
        assert!(!card.contains("chair-free"), "a chair with an infusion running is never free ({:?})", db.kind);
    }
}

#[tokio::test]
async fn the_board_snapshot_carries_each_chairs_last_reading_and_bp_times_and_audits_the_vitals_read() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let (a, b) = (site(s, "A").await, site(s, "B").await);
        let n = nurse(&[a]);
        // Two dosed at T0 (their pre-dose reading at T0), one checked in without a reading, one
        // scheduled for later today, and one dosed at another site.
        let (p1, s1) = dosed_session(s, a, "A-1901", T0).await;
        let (p2, s2) = dosed_session(s, a, "A-1902", T0).await;
        let p3 = patient(s, a, "A-1903").await;
        let c3 = s.create_course(&prescriber(&[a]), p3, course(Route::IvRacemic)).await.unwrap();
        let later = NewSession { scheduled_for: T0 + Duration::hours(2), chair_id: None, planned_dose_mg: None };
        let s3 = s.create_session(&prescriber(&[a]), c3.id, later.clone()).await.unwrap().id;
        s.act_on_session(&n, s3, SessionAction::CheckIn).await.unwrap();
        let p4 = patient(s, a, "A-1904").await;
        let c4 = s.create_course(&prescriber(&[a]), p4, course(Route::IvRacemic)).await.unwrap();
        s.create_session(&prescriber(&[a]), c4.id, later).await.unwrap();
        let (pb, _) = dosed_session(s, b, "B-1905", T0).await;

        // After the dose: s1 at +10 and +20 min, then an SpO2-only reading at +25 (the latest,
        // with no blood pressure); s2 twice at the same instant (the one stored last is the latest).
        let at = |m: i64| Some(T0 + Duration::minutes(m));
        clock.set(T0 + Duration::minutes(30));
        for m in [10, 20] {
            s.record_vitals(&n, s1, full(130.0, 84.0, 97.0), at(m), VitalsSource::Manual).await.unwrap();
        }
        let spo2_only = VitalSigns { spo2_pct: Some(Percent(95.0)), ..VitalSigns::default() };
        s.record_vitals(&n, s1, spo2_only, at(25), VitalsSource::Manual).await.unwrap();
        s.record_vitals(&n, s2, full(126.0, 80.0, 98.0), at(15), VitalsSource::Manual).await.unwrap();
        let last2 = s.record_vitals(&n, s2, full(127.0, 81.0, 99.0), at(15), VitalsSource::Manual).await.unwrap();

        let reads = |actor: &'static str| {
            keta_store::testing::read(s, move |c| {
                c.query_opt(
                    "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'read' AND object_type = 'vitals' AND actor = $1",
                    keta_store::params![actor],
                )?
                .unwrap()
                .i64("n")
            })
        };
        let (from, to) = (T0 - Duration::hours(8), T0 + Duration::hours(16));
        let before = reads("nurse.test").await.unwrap();
        let board = s.site_board(&n, a, from, to).await.unwrap();
        let latest = |sess| board.latest_vitals.get(&sess).map(|v| (v.id, v.taken_at, v.vitals));
        assert_eq!(latest(s1).map(|v| (v.1, v.2)), Some((T0 + Duration::minutes(25), spo2_only)), "{:?}", db.kind);
        assert_eq!(latest(s2).map(|v| v.0), Some(last2.record.id));
        assert_eq!(latest(s3), None, "no reading yet");
        assert_eq!(board.latest_vitals.len(), 2);
        assert_eq!(board.bp_taken_minutes.get(&s1), Some(&vec![0, 10, 20]), "BP times only");
        assert_eq!(board.bp_taken_minutes.get(&s2), Some(&vec![0, 15, 15]));
        assert_eq!(board.bp_taken_minutes.get(&s3), None, "not dosed");
        let mut named: Vec<PatientId> = board.patients.iter().map(|p| p.id).collect();
        named.sort();
        assert_eq!(named, vec![p1, p2, p3, p4], "the board's patients, not another site's ({pb})");
        // One vitals read entry per patient in a chair, with or without a reading.
        assert_eq!(reads("nurse.test").await.unwrap() - before, 3, "{:?}", db.kind);

        // The front desk sees the same board and BP times, without any reading, and reads no vitals.
        let desk = s.site_board(&front_desk(&[a]), a, from, to).await.unwrap();
        assert!(desk.latest_vitals.is_empty() && desk.alerts.is_empty());
        assert_eq!(desk.bp_taken_minutes, board.bp_taken_minutes);
        assert_eq!(desk.patients.len(), 4);
        assert_eq!(reads("desk.test").await.unwrap(), 0);
    }
}

#[tokio::test]
async fn an_identical_reading_moments_after_the_last_is_stored_only_when_confirmed() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let (_, sess) = dosed_session(s, a, "A-1805", T0).await;
        let n = nurse(&[a]);
        let window = keta_domain::discharge::DischargeRules::builtin().vitals_entry.duplicate_within_seconds;
        let v = full(142.0, 88.0, 97.0);
        s.record_vitals_entry(&n, sess, v, None, VitalsSource::Manual, false).await.unwrap();
        clock.advance(Duration::seconds(window));
        let e = s.record_vitals_entry(&n, sess, v, None, VitalsSource::Manual, false).await.unwrap_err();
        match e {
            StoreError::Domain(DomainError::Invalid(errs)) => {
                assert_eq!(errs[0].field, "confirm_duplicate");
                assert!(errs[0].message.contains(&format!("{window} s ago")), "{}", errs[0].message);
            }
            other => panic!("expected the double entry to be refused, got {other:?}"),
        }
        assert_eq!(s.list_vitals(&n, sess).await.unwrap().len(), 2, "nothing stored ({:?})", db.kind);
        s.record_vitals_entry(&n, sess, v, None, VitalsSource::Manual, true).await.unwrap();
        // Past the window, or from a monitor, an identical reading is just a reading.
        clock.advance(Duration::seconds(window + 1));
        s.record_vitals_entry(&n, sess, v, None, VitalsSource::Manual, false).await.unwrap();
        s.record_vitals_entry(&n, sess, v, None, VitalsSource::Monitor, false).await.unwrap();
        assert_eq!(s.list_vitals(&n, sess).await.unwrap().len(), 5);
    }
}

#[tokio::test]
async fn the_api_and_the_session_screen_name_what_is_missing_and_where_to_record_it() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let staff = seed_staff(s, &[a]).await;
        let app = spawn_app(s.clone()).await;
        let by_role = |r: Role| staff.iter().find(|x| x.role == r).unwrap();
        assert_eq!(app.login(by_role(Role::Nurse), clock.now()).await.status(), 200);

        let (_, sess) = dosed_session(s, a, "A-1806", T0).await;
        clock.advance(Duration::minutes(5));
        let r = app
            .post_json(&format!("/api/v1/sessions/{sess}/vitals"), &json!({"systolic_mmhg": 150, "diastolic_mmhg": 90, "heart_rate_bpm": 84, "spo2_pct": 97, "resp_rate_per_min": 16}))
            .await;
        assert_eq!(r.status(), 201);
        let again = json!({"systolic_mmhg": 150, "diastolic_mmhg": 90, "heart_rate_bpm": 84, "spo2_pct": 97, "resp_rate_per_min": 16});
        let r = app.post_json(&format!("/api/v1/sessions/{sess}/vitals"), &again).await;
        assert_eq!(r.status(), 422);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], "confirm_duplicate", "{body}");
        let mut confirmed = again.clone();
        confirmed["confirm_duplicate"] = json!(true);
        assert_eq!(app.post_json(&format!("/api/v1/sessions/{sess}/vitals"), &confirmed).await.status(), 201);

        // The screen: empty boxes, with the last reading and its age beside them.
        clock.advance(Duration::minutes(12));
        let html = app.get(&format!("/sessions/{sess}")).await.text().await.unwrap();
        assert!(html.contains("BP 150/90, 12 min ago") && html.contains("SpO₂ 97%, 12 min ago"), "last readings shown");
        assert!(
            html.contains(
                "id=\"systolic_mmhg\" name=\"systolic_mmhg\" inputmode=\"numeric\" class=\"big-input\" value=\"\""
            ),
            "the form starts empty"
        );

        // Discharge over the API: 409 naming each missing fact with where to record it.
        let r = app.post_json(&format!("/api/v1/sessions/{sess}/actions"), &json!({"action": "end_dose"})).await;
        assert_eq!(r.status(), 200);
        let r = app.post_json(&format!("/api/v1/sessions/{sess}/actions"), &json!({"action": "discharge"})).await;
        assert_eq!(r.status(), 409);
        let detail = r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_string();
        assert!(
            detail.contains(&format!("/sessions/{sess}#moaas")) && detail.contains("discharge-settings"),
            "{detail}"
        );
        let blockers: Value =
            app.get(&format!("/api/v1/sessions/{sess}/discharge-blockers")).await.json().await.unwrap();
        let anchors: Vec<&str> = blockers.as_array().unwrap().iter().map(|b| b["anchor"].as_str().unwrap()).collect();
        assert!(
            anchors.contains(&"moaas") && anchors.contains(&"settings") && anchors.contains(&"clock"),
            "{blockers}"
        );
        let html = app.get(&format!("/sessions/{sess}")).await.text().await.unwrap();
        assert!(html.contains("data-blocker=\"sedation_not_scored\"") && html.contains("href=\"#moaas\""));
        assert!(
            !html.contains("value=\"vitals_acceptable\"") && !html.contains("value=\"effects_resolved\""),
            "no ticks for what Keta judges"
        );
        assert!(html.contains("value=\"escort_home\""), "the escort is still confirmed by hand");

        // Decisions and settings are a prescriber's.
        let r = app
            .post_json(
                &format!("/api/v1/sessions/{sess}/decisions"),
                &json!({"kind": "dose_despite_urgent_alert", "reason": "because"}),
            )
            .await;
        assert_eq!(r.status(), 403);
        let r =
            app.put_json(&format!("/api/v1/sites/{a}/discharge-settings"), &json!({"vitals_within_minutes": 15})).await;
        assert_eq!(r.status(), 403);
        app.logout_locally();
        assert_eq!(app.login(by_role(Role::Prescriber), clock.now()).await.status(), 200);
        // The session screen offers the prescriber the missing settings; a bad value is named.
        let html = app.get(&format!("/sessions/{sess}")).await.text().await.unwrap();
        assert!(html.contains("id=\"settings\""), "{:?}", db.kind);
        let csrf = csrf_of(&html);
        let (status, html) = post_form(
            &app,
            &format!("/sessions/{sess}/discharge-settings"),
            &[
                ("csrf_token", &csrf),
                ("vitals_within_minutes", "15"),
                ("dissociation_instrument", "cadss6"),
                ("resolved_at_or_below", "99"),
            ],
        )
        .await;
        assert_eq!(status, 422);
        assert!(html.contains("must be within the 0-24 range"), "the cut-off is checked against CADSS-6");
        assert_eq!(s.site_discharge_settings(&nurse(&[a]), a).await.unwrap(), DischargeSettings::default());
        let r = app.put_json(&format!("/api/v1/sites/{a}/discharge-settings"), &json!({"vitals_within_minutes": 15, "dissociation": {"instrument": "phq9", "resolved_at_or_below": 2}})).await;
        assert_eq!(r.status(), 422);
        let r = app.put_json(&format!("/api/v1/sites/{a}/discharge-settings"), &json!({"vitals_within_minutes": 15, "dissociation": {"instrument": "cadss6", "resolved_at_or_below": 2}})).await;
        assert_eq!(r.status(), 200);
        let got: Value = app.get(&format!("/api/v1/sites/{a}/discharge-settings")).await.json().await.unwrap();
        assert_eq!(got["vitals_within_minutes"], 15);

        // A session of another day over the API: refused, then a reason is required, then allowed.
        let p = patient(s, a, "A-1807").await;
        let c = s.create_course(&prescriber(&[a]), p, course(Route::IntranasalEsketamine)).await.unwrap();
        let next = s
            .create_session(
                &prescriber(&[a]),
                c.id,
                NewSession { scheduled_for: T0 + Duration::days(2), chair_id: None, planned_dose_mg: None },
            )
            .await
            .unwrap();
        let path = format!("/api/v1/sessions/{}/actions", next.id);
        assert_eq!(app.post_json(&path, &json!({"action": "check_in"})).await.status(), 409);
        let r = app.post_json(&path, &json!({"action": "check_in", "confirm_other_day": true})).await;
        assert_eq!(r.status(), 422);
        assert_eq!(r.json::<Value>().await.unwrap()["errors"][0]["field"], "reason");
        let r = app
            .post_json(
                &path,
                &json!({"action": "check_in", "confirm_other_day": true, "reason": "Rebooked from Wednesday"}),
            )
            .await;
        assert_eq!(r.status(), 200, "{:?}", db.kind);
    }
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf_token\" value=\"").expect("a form with a CSRF token") + 26;
    html[at..].split('"').next().expect("token").to_string()
}

async fn post_form(app: &keta_testkit::TestApp, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = app.request(reqwest::Method::POST, path).form(form).send().await.expect("POST");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[tokio::test]
async fn the_session_screen_asks_for_a_reason_on_another_day_and_takes_a_prescribers_override() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let staff = seed_staff(s, &[a]).await;
        let app = spawn_app(s.clone()).await;
        let by_role = |r: Role| staff.iter().find(|x| x.role == r).unwrap();
        let p = patient(s, a, "A-1808").await;
        let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
        let sess = s
            .create_session(
                &prescriber(&[a]),
                c.id,
                NewSession { scheduled_for: T0 + Duration::days(1), chair_id: None, planned_dose_mg: None },
            )
            .await
            .unwrap();
        let page = format!("/sessions/{}", sess.id);
        let step = format!("{page}/step");

        // A nurse opens tomorrow's session today: the step asks for confirmation and a reason.
        assert_eq!(app.login(by_role(Role::Nurse), clock.now()).await.status(), 200);
        let html = app.get(&page).await.text().await.unwrap();
        assert!(html.contains("id=\"other-day\"") && html.contains("not today"), "{:?}", db.kind);
        let csrf = csrf_of(&html);
        let (status, html) = post_form(&app, &step, &[("csrf_token", &csrf), ("action", "check_in")]).await;
        assert_eq!(status, 422);
        assert!(html.contains("confirm_other_day") || html.contains("not today"));
        let (status, html) =
            post_form(&app, &step, &[("csrf_token", &csrf), ("action", "check_in"), ("confirm_other_day", "yes")])
                .await;
        assert_eq!(status, 422);
        assert!(html.contains("say why this session is taken today"));
        assert_eq!(s.get_session(&nurse(&[a]), sess.id).await.unwrap().state, SessionState::Scheduled);
        let (status, _) = post_form(
            &app,
            &step,
            &[
                ("csrf_token", &csrf),
                ("action", "check_in"),
                ("confirm_other_day", "yes"),
                ("other_day_reason", "Rebooked at the patient's request"),
            ],
        )
        .await;
        assert_eq!(status, 303);
        assert_eq!(s.get_session(&nurse(&[a]), sess.id).await.unwrap().state, SessionState::CheckedIn);
        s.act_on_session(&nurse(&[a]), sess.id, SessionAction::StartPreDoseChecks).await.unwrap();

        // An urgent alert for the patient holds the dose; the nurse sees no override form.
        let phq = NewQuestionnaireResponse {
            instrument: "phq9".into(),
            answers: [1, 1, 1, 1, 1, 1, 1, 1, 1].into_iter().map(Some).collect(),
            course_id: Some(c.id),
            session_id: None,
            completed_at: None,
            completed_by: CompletedBy::Patient,
        };
        s.submit_response(&nurse(&[a]), p, phq).await.unwrap();
        let html = app.get(&page).await.text().await.unwrap();
        assert!(html.contains("id=\"urgent-open\"") && !html.contains("id=\"decision\""), "{:?}", db.kind);
        let (status, _) = post_form(
            &app,
            &format!("{page}/decisions"),
            &[("csrf_token", &csrf), ("kind", "dose_despite_urgent_alert"), ("decision_reason", "nurse tries")],
        )
        .await;
        assert_eq!(status, 403, "nurses cannot override");

        // The prescriber records the override with a reason; it is in the note and listed.
        app.logout_locally();
        assert_eq!(app.login(by_role(Role::Prescriber), clock.now()).await.status(), 200);
        let html = app.get(&page).await.text().await.unwrap();
        assert!(html.contains("id=\"decision\""));
        let csrf = csrf_of(&html);
        let (status, _) = post_form(
            &app,
            &format!("{page}/decisions"),
            &[
                ("csrf_token", &csrf),
                ("kind", "dose_despite_urgent_alert"),
                ("decision_reason", "Reviewed with the patient; no plan or intent"),
            ],
        )
        .await;
        assert_eq!(status, 303);
        let html = app.get(&page).await.text().await.unwrap();
        assert!(!html.contains("id=\"urgent-open\""), "the override covers the open alert");
        assert!(html.contains("Dose override with an urgent alert open by prescriber.test"), "{:?}", db.kind);
        let note = s.get_session(&nurse(&[a]), sess.id).await.unwrap().note.unwrap_or_default();
        assert!(note.contains("Rebooked at the patient's request") && note.contains("Prescriber override"), "{note}");
    }
}

/// The session screen's vitals table highlights the readings the site's safety
/// rules flag (the alerts' own thresholds), and only those.
#[tokio::test]
async fn the_vitals_table_highlights_the_readings_the_safety_rules_flag() {
    let rules = keta_domain::alerts::SafetyRules::builtin();
    let (sys, dia) = (rules.pre_dose_bp.systolic_above_mmhg.0, rules.pre_dose_bp.diastolic_above_mmhg.0);
    let floor = rules.spo2_floor.below_pct.0;
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let staff = seed_staff(s, &[a]).await;
        let app = spawn_app(s.clone()).await;
        assert_eq!(app.login(staff.iter().find(|x| x.role == Role::Nurse).unwrap(), clock.now()).await.status(), 200);
        let (_, sess) = dosed_session(s, a, "A-1807", T0).await;
        for spo2 in [floor, floor - 1.0] {
            clock.advance(Duration::minutes(5));
            let v = json!({"systolic_mmhg": sys, "diastolic_mmhg": dia, "spo2_pct": spo2});
            assert_eq!(app.post_json(&format!("/api/v1/sessions/{sess}/vitals"), &v).await.status(), 201);
        }
        let html = app.get(&format!("/sessions/{sess}")).await.text().await.unwrap();
        assert_eq!(html.matches("class=\"vital-abnormal\"").count(), 1, "{:?}: only the low SpO2", db.kind);
        assert!(
            html.contains("abnormal: SpO2") && html.contains("below the floor"),
            "the reason is said, not only coloured"
        );
    }
}

/// The `chair-check` line of each chair on a rendered board, in board order.
fn chair_checks(html: &str) -> Vec<(String, Option<String>)> {
    html.split("<li class=\"chair ")
        .skip(1)
        .map(|card| {
            let card = &card[..card.find("</li>").unwrap_or(card.len())];
            let name = card.split("<span class=\"chair-name\">").nth(1).and_then(|x| x.split('<').next()).unwrap_or("");
            let check = card.split("<p class=\"chair-check").nth(1).and_then(|x| x.split("</p>").next());
            (name.to_string(), check.map(str::to_string))
        })
        .collect()
}

#[tokio::test]
async fn the_front_desk_board_flags_the_same_bp_checks_as_the_prescribers() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let n = nurse(&[a]);
        let chairs = s.list_chairs(&n, a).await.unwrap();
        // Two IV sessions dosed now, one in each chair.
        let mut sessions = Vec::new();
        for (i, chair) in chairs.iter().take(2).enumerate() {
            let p = patient(s, a, &format!("A-19{i:02}")).await;
            let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
            let new = NewSession { scheduled_for: T0, chair_id: Some(chair.id), planned_dose_mg: None };
            let sess = s.create_session(&prescriber(&[a]), c.id, new).await.unwrap();
            s.act_on_session(&n, sess.id, SessionAction::CheckIn).await.unwrap();
            s.act_on_session(&n, sess.id, SessionAction::StartPreDoseChecks).await.unwrap();
            s.record_vitals(&n, sess.id, full(126.0 + i as f64, 80.0, 98.0), None, VitalsSource::Manual).await.unwrap();
            s.act_on_session(&n, sess.id, SessionAction::StartDose).await.unwrap();
            sessions.push(sess.id);
        }
        // Chair 1's BP is re-checked at 38 min (inside the 40-min check's window); chair 2's is not.
        clock.advance(Duration::minutes(38));
        s.record_vitals(&n, sessions[0], full(132.0, 84.0, 97.0), None, VitalsSource::Manual).await.unwrap();
        clock.advance(Duration::minutes(14)); // 52 min after the dose: chair 2's check is overdue

        let staff = seed_staff(s, &[a]).await;
        let mut boards = Vec::new();
        for role in [Role::Prescriber, Role::FrontDesk] {
            let app = spawn_app(s.clone()).await;
            clock.advance(Duration::seconds(31)); // a fresh TOTP step per sign-in
            assert_eq!(app.login(staff.iter().find(|x| x.role == role).unwrap(), clock.now()).await.status(), 200);
            let html = app.get("/today").await.text().await.unwrap();
            boards.push((role, html));
        }
        let (prescriber_board, desk_board) = (chair_checks(&boards[0].1), chair_checks(&boards[1].1));
        assert_eq!(prescriber_board.len(), 2, "{:?}", db.kind);
        let chair1 = &prescriber_board[0];
        assert_eq!(chair1.0, "Chair 1");
        assert_eq!(chair1.1, None, "re-checked at 38 min: nothing due on the prescriber's board");
        let chair2 = prescriber_board[1].1.as_deref().unwrap_or("");
        assert!(chair2.contains("overdue"), "chair 2 was never re-checked: {chair2}");
        assert_eq!(desk_board, prescriber_board, "the front desk sees the same flags ({:?})", db.kind);
        // The front desk still sees no readings.
        assert!(!boards[1].1.contains("BP 132/84") && boards[0].1.contains("BP 132/84"));
    }
}
