//! Storage conformance: the same stories on every backend. A story that passes on
//! SQLite but not PostgreSQL (or the reverse) is a bug in one of them.

use keta_domain::alerts::SafetyRules;
use keta_domain::course::Route;
use keta_domain::ids::{PatientId, SessionId};
use keta_domain::records::{AlertLevel, CompletedBy, NewEligibilityAssessment, NewQuestionnaireResponse, VitalsSource};
use keta_domain::session::{NewSession, ObservationBody, SessionAction, SessionState};
use keta_domain::units::{BeatsPerMinute, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::alerts::AlertQuery;
use keta_store::patients::PatientQuery;
use keta_store::{Actor, StoreError, params};
use keta_testkit::{Kind, ManualClock, TestDb};

use crate::fixtures::*;

fn bp(sys: f64, dia: f64) -> VitalSigns {
    VitalSigns {
        systolic_mmhg: Some(Mmhg(sys)),
        diastolic_mmhg: Some(Mmhg(dia)),
        heart_rate_bpm: Some(BeatsPerMinute(72.0)),
        spo2_pct: Some(Percent(98.0)),
        resp_rate_per_min: None,
    }
}

async fn count(db: &TestDb, table: &'static str) -> i64 {
    keta_store::testing::read(&db.store, move |c| {
        c.query_opt(&format!("SELECT count(*) AS n FROM {table}"), &[])?.unwrap().i64("n")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn postgres_suite_is_configured_in_ci() {
    // CI must exercise both backends; a silently skipped PostgreSQL suite would hide bugs.
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        assert!(keta_testkit::postgres_url().is_some(), "CI=true but {} is not set", keta_testkit::POSTGRES_ENV);
    }
}

#[tokio::test]
async fn patients_are_created_found_and_scoped_by_site() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (a, b) = (site(&db.store, "A").await, site(&db.store, "B").await);
        let p = patient(&db.store, a, "A-0001").await;
        patient(&db.store, b, "B-0001").await;

        let got = db.store.get_patient(&nurse(&[a]), p).await.unwrap();
        assert_eq!((got.mrn.as_str(), got.site_id), ("A-0001", a), "{:?}", db.kind);
        // A nurse of site B cannot see site A's patient; it is reported as not found.
        assert!(matches!(db.store.get_patient(&nurse(&[b]), p).await, Err(StoreError::NotFound(_))), "{:?}", db.kind);
        let listed =
            db.store.list_patients(&nurse(&[b]), PatientQuery { limit: 50, ..Default::default() }).await.unwrap();
        assert_eq!(listed.iter().map(|p| p.mrn.as_str()).collect::<Vec<_>>(), ["B-0001"], "{:?}", db.kind);
        // Search by MRN prefix and by family name, case-insensitively.
        let all = Actor::system();
        let q = |s: &str| PatientQuery { search: Some(s.into()), limit: 50, ..Default::default() };
        assert_eq!(db.store.list_patients(&all, q("a-00")).await.unwrap().len(), 1, "{:?}", db.kind);
        assert_eq!(db.store.list_patients(&all, q("test-")).await.unwrap().len(), 2, "{:?}", db.kind);
        assert_eq!(
            db.store.list_patients(&all, q("%")).await.unwrap().len(),
            0,
            "a literal % matches nothing ({:?})",
            db.kind
        );
    }
}

#[tokio::test]
async fn roles_limit_what_each_user_can_do() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let desk = front_desk(&[a]);
        // The front desk registers patients and sees the schedule but not the chart.
        let p = db.store.create_patient(&desk, new_patient(a, "A-0009")).await.unwrap().id;
        assert!(db.store.get_patient(&desk, p).await.is_ok());
        assert!(matches!(db.store.patient_chart(&desk, p).await, Err(StoreError::Forbidden(_))), "{:?}", db.kind);
        assert!(matches!(db.store.list_responses(&desk, p, None).await, Err(StoreError::Forbidden(_))));
        let audits = count(&db, "audit_log").await;
        assert!(matches!(
            db.store.create_course(&desk, p, course(Route::IvRacemic)).await,
            Err(StoreError::Forbidden(_))
        ));
        assert_eq!(count(&db, "audit_log").await, audits, "a refused write changes nothing");
        assert!(db.store.patient_chart(&prescriber(&[a]), p).await.is_ok());
    }
}

#[tokio::test]
async fn rejected_writes_change_nothing() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        patient(&db.store, a, "A-0001").await;
        let before = (count(&db, "patients").await, count(&db, "audit_log").await);

        let dup = db.store.create_patient(&Actor::system(), new_patient(a, "A-0001")).await;
        assert!(matches!(&dup, Err(StoreError::Conflict(m)) if m.contains("MRN")), "{:?}: {dup:?}", db.kind);
        let mut bad = new_patient(a, "A-0002");
        bad.diagnoses = vec!["sad".into()];
        assert!(matches!(db.store.create_patient(&Actor::system(), bad).await, Err(StoreError::Domain(_))));
        // A course for a patient that does not exist fails before anything is written.
        assert!(db.store.create_course(&Actor::system(), PatientId(999_999), course(Route::IvRacemic)).await.is_err());

        assert_eq!((count(&db, "patients").await, count(&db, "audit_log").await), before, "{:?}", db.kind);
        assert_eq!(count(&db, "courses").await, 0);
    }
}

#[tokio::test]
async fn a_hard_stop_blocks_planning_that_route_only() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        let p = patient(&db.store, a, "A-0001").await;
        let sys = Actor::system();
        let assessment = db
            .store
            .assess_eligibility(
                &sys,
                p,
                NewEligibilityAssessment {
                    route: Route::IntranasalEsketamine,
                    maudsley: None,
                    contraindications_present: vec!["intracerebral_haemorrhage_history".into()],
                },
            )
            .await
            .unwrap();
        assert!(assessment.blocked, "{:?}", db.kind);
        let refused = db.store.create_course(&sys, p, course(Route::IntranasalEsketamine)).await;
        let Err(StoreError::Domain(e)) = refused else { panic!("{:?}: expected refusal, got {refused:?}", db.kind) };
        assert!(e.to_string().contains("hard stop"), "{e}");
        assert_eq!(count(&db, "courses").await, 0);
        // An unknown contraindication code is an error naming it, and stores nothing.
        let unknown = db
            .store
            .assess_eligibility(
                &sys,
                p,
                NewEligibilityAssessment {
                    route: Route::IvRacemic,
                    maudsley: None,
                    contraindications_present: vec!["broken_leg".into()],
                },
            )
            .await;
        assert!(unknown.unwrap_err().to_string().contains("broken_leg"));
        assert_eq!(count(&db, "eligibility_assessments").await, 1);
    }
}

#[tokio::test]
async fn an_iv_session_runs_from_check_in_to_discharge() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let p = patient(s, a, "A-0001").await;
        let n = nurse(&[a]);
        // Nurses record in the chair but do not plan treatment.
        assert!(matches!(s.create_course(&n, p, course(Route::IvRacemic)).await, Err(StoreError::Forbidden(_))));
        let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
        let sess = s
            .create_session(
                &prescriber(&[a]),
                c.id,
                NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
            )
            .await
            .unwrap();
        assert_eq!(sess.sequence, 1);

        // Nothing can be recorded before check-in.
        assert!(matches!(
            s.record_vitals(&n, sess.id, bp(120.0, 80.0), None, VitalsSource::Manual).await,
            Err(StoreError::Conflict(_))
        ));
        s.act_on_session(&n, sess.id, SessionAction::CheckIn).await.unwrap();
        s.act_on_session(&n, sess.id, SessionAction::StartPreDoseChecks).await.unwrap();
        let pre = s.record_vitals(&n, sess.id, bp(128.0, 82.0), None, VitalsSource::Manual).await.unwrap();
        assert!(pre.alerts.is_empty(), "{:?}: {:?}", db.kind, pre.alerts);
        s.act_on_session(&n, sess.id, SessionAction::StartDose).await.unwrap();

        clock.advance(time::Duration::minutes(20));
        // +42 mmHg systolic from the pre-dose baseline: the rise rule fires.
        let high = s.record_vitals(&n, sess.id, bp(170.0, 95.0), None, VitalsSource::Manual).await.unwrap();
        let rules: Vec<&str> = high.alerts.iter().map(|a| a.rule.as_str()).collect();
        assert!(rules.contains(&"bp_rise_from_baseline"), "{:?}: {rules:?}", db.kind);
        assert!(high.alerts.iter().all(|a| a.source.contains("clinical-reference")), "every alert names its source");
        assert_eq!(high.record.minutes_since_dose, Some(20));

        s.record_observation(&n, sess.id, ObservationBody::Moaas { score: 4 }, None).await.unwrap();
        clock.advance(time::Duration::minutes(20));
        s.act_on_session(&n, sess.id, SessionAction::EndDose).await.unwrap();

        // Refused: too early, and an alert is open. The session does not change.
        let min = SafetyRules::builtin().minimum_monitoring(Route::IvRacemic);
        let refused = s.act_on_session(&n, sess.id, SessionAction::Discharge).await.unwrap_err().to_string();
        assert!(refused.contains("minimum") && refused.contains("alert"), "{refused}");
        assert_eq!(s.get_session(&n, sess.id).await.unwrap().state, SessionState::Monitoring);

        for alert in high.alerts {
            let acked = s.acknowledge_alert(&n, alert.id, Some("rechecked, settling".into())).await.unwrap();
            assert_eq!(acked.acknowledged_by.as_deref(), Some("nurse.test"));
            // The first acknowledgement is never overwritten.
            assert!(matches!(
                s.acknowledge_alert(&Actor::system(), alert.id, None).await,
                Err(StoreError::Conflict(_))
            ));
        }
        // CS-1: no discharge until the dose is in the controlled-substance ledger.
        clock.advance(time::Duration::minutes(min.0 - 40));
        // Discharge is judged from the record, so the record has it: the clinic's
        // settings, a full set of vitals near the end, sedation and dissociation resolved.
        s.set_site_discharge_settings(
            &prescriber(&[a]),
            a,
            keta_domain::discharge::DischargeSettings {
                vitals_within_minutes: Some(keta_domain::units::Minutes(15)),
                dissociation: Some(keta_domain::discharge::DissociationSetting {
                    instrument: "cadss6".into(),
                    resolved_at_or_below: 2,
                }),
            },
        )
        .await
        .unwrap();
        let end = VitalSigns { resp_rate_per_min: Some(keta_domain::units::BreathsPerMinute(14.0)), ..bp(132.0, 84.0) };
        s.record_vitals(&n, sess.id, end, None, VitalsSource::Manual).await.unwrap();
        s.record_observation(&n, sess.id, ObservationBody::Moaas { score: 5 }, None).await.unwrap();
        let cadss = NewQuestionnaireResponse {
            instrument: "cadss6".into(),
            answers: vec![Some(0); 6],
            course_id: Some(c.id),
            session_id: Some(sess.id),
            completed_at: None,
            completed_by: CompletedBy::Staff,
        };
        s.submit_response(&n, p, cadss).await.unwrap();
        let refused = s.act_on_session(&n, sess.id, SessionAction::Discharge).await.unwrap_err().to_string();
        assert!(refused.contains("ledger"), "{refused}");
        let lot = s
            .record_receipt(
                &n,
                Some(clock.now()),
                crate::ledger::vial_receipt(a, 2),
                crate::ledger::witness(prescriber(&[a]), &clock),
            )
            .await
            .unwrap()
            .lot
            .id;
        s.record_administration(&n, Some(clock.now()), crate::ledger::dose(lot, sess.id, 35.0, 0.7)).await.unwrap();
        clock.advance(time::Duration::minutes(-1));
        assert!(s.act_on_session(&n, sess.id, SessionAction::Discharge).await.is_err(), "one minute short");
        clock.advance(time::Duration::minutes(1));
        let done = s.act_on_session(&n, sess.id, SessionAction::Discharge).await.unwrap();
        assert_eq!(done.state, SessionState::Discharged);
        assert_eq!(done.discharged_at, Some(clock.now()));
        assert_eq!(
            s.list_vitals(&n, sess.id).await.unwrap().len(),
            3,
            "pre-dose, the rise, and the set before leaving"
        );
        // A discharged session takes no more records.
        assert!(s.record_vitals(&n, sess.id, bp(120.0, 80.0), None, VitalsSource::Manual).await.is_err());
    }
}

#[tokio::test]
async fn a_positive_phq9_item_9_raises_an_urgent_alert_and_outcomes_follow_scores() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let p = patient(s, a, "A-0001").await;
        let sys = Actor::system();
        let c = s.create_course(&sys, p, course(Route::IvRacemic)).await.unwrap();
        let phq = |answers: [i32; 9]| NewQuestionnaireResponse {
            instrument: "phq9".into(),
            answers: answers.iter().map(|&v| Some(v)).collect(),
            course_id: Some(c.id),
            session_id: None,
            completed_at: None,
            completed_by: CompletedBy::Patient,
        };
        let baseline = s.submit_response(&sys, p, phq([3, 3, 2, 2, 2, 2, 2, 2, 2])).await.unwrap();
        assert_eq!(baseline.score.total, Some(20));
        let alerts = s
            .list_alerts(&sys, AlertQuery { patient_id: Some(p), open_only: true, limit: 50, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(alerts.len(), 1, "{:?}", db.kind);
        assert_eq!(alerts[0].level, AlertLevel::Urgent);

        clock.advance(time::Duration::days(14));
        s.submit_response(&sys, p, phq([1, 1, 0, 1, 0, 0, 1, 0, 0])).await.unwrap();
        let chart = s.patient_chart(&sys, p).await.unwrap();
        let o = chart.outcomes.iter().find(|o| o.outcome.instrument == "phq9").expect("phq9 outcome");
        assert_eq!((o.outcome.baseline, o.outcome.latest), (20, 4));
        assert_eq!(o.outcome.responded, Some(true));
        assert_eq!(o.outcome.remitted, Some(true), "4 < 5 is remission by the default definition");
        assert_eq!(chart.open_alerts.len(), 1);
        assert_eq!(chart.responses.len(), 2);

        // Out-of-range answers are refused and nothing is stored.
        let bad = s.submit_response(&sys, p, phq([1, 1, 0, 1, 0, 0, 1, 0, 7])).await.unwrap_err().to_string();
        assert!(bad.contains("item 9"), "{bad}");
        assert_eq!(count(&db, "questionnaire_responses").await, 2);
    }
}

#[tokio::test]
async fn concurrent_writers_are_all_acknowledged_and_failures_stay_alone() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = db.store.clone();
        let a = site(&s, "A").await;
        let p = patient(&s, a, "A-0001").await;
        let sys = Actor::system();
        let c = s.create_course(&sys, p, course(Route::IvRacemic)).await.unwrap();
        let sess = s
            .create_session(&sys, c.id, NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None })
            .await
            .unwrap();
        s.act_on_session(&sys, sess.id, SessionAction::CheckIn).await.unwrap();

        // 16 writers x 20 readings, every fifth aimed at a session that does not exist.
        let mut tasks = Vec::new();
        for w in 0..16 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0;
                for i in 0..20 {
                    let target = if (w + i) % 5 == 0 { SessionId(987_654) } else { sess.id };
                    match s.record_vitals(&Actor::system(), target, bp(118.0, 76.0), None, VitalsSource::Monitor).await
                    {
                        Ok(_) => ok += 1,
                        Err(StoreError::NotFound(_)) => {}
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                ok
            }));
        }
        let mut acknowledged = 0;
        for t in tasks {
            acknowledged += t.await.unwrap();
        }
        assert_eq!(acknowledged, 16 * 20 - 64, "{:?}", db.kind);
        assert_eq!(count(&db, "vitals").await, acknowledged, "every acknowledged write is stored ({:?})", db.kind);
        // Seal first, as `keta audit verify` does: on PostgreSQL the sealer chains committed
        // entries within about a second, so the tail may still be unsealed here.
        let (n, broken) = s.verify_audit_chain().await.unwrap();
        assert!(broken.is_none(), "{:?}: {broken:?}", db.kind);
        assert!(n as i64 >= acknowledged);
    }
}

#[tokio::test]
async fn the_audit_chain_detects_an_edit_made_outside_keta() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let a = site(&db.store, "A").await;
        for i in 0..4 {
            db.store.create_patient(&Actor::system(), new_patient(a, &format!("A-{i:04}"))).await.unwrap();
        }
        // The chain covers what the sealer has chained (at once on SQLite, within a second on
        // PostgreSQL): seal now, as `keta audit verify` does.
        db.store.seal_audit_chain().await.unwrap();
        let (n, broken) = keta_store::testing::verify_audit_chain_as_stored(&db.store).await.unwrap();
        assert_eq!((n, broken), (5, None), "{:?}", db.kind);
        // Keta itself cannot change or delete audit rows (append-only triggers).
        let refused = keta_store::testing::write(&db.store, |c| {
            c.execute("UPDATE audit_log SET actor = $1 WHERE seq = $2", params!["mallory", 3i64])
        })
        .await;
        assert!(refused.is_err(), "{:?}: the app role updated the audit log", db.kind);
        assert!(
            keta_store::testing::write(&db.store, |c| c.execute("DELETE FROM audit_log WHERE seq = 2", &[]))
                .await
                .is_err()
        );
        // Someone with the database shell disables the guard and edits row 3.
        let kind = db.kind;
        keta_store::testing::write(&db.store, move |c| {
            match kind {
                Kind::Sqlite => c.execute("DROP TRIGGER audit_log_no_update", &[])?,
                Kind::Postgres => c.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update", &[])?,
            };
            c.execute("UPDATE audit_log SET actor = $1 WHERE seq = $2", params!["mallory", 3i64])
        })
        .await
        .unwrap();
        let (_, broken) = keta_store::testing::verify_audit_chain_as_stored(&db.store).await.unwrap();
        assert_eq!(broken.map(|b| b.seq), Some(3), "{:?}", db.kind);
    }
}

#[tokio::test]
async fn acknowledged_sqlite_writes_survive_reopening() {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    assert_eq!(db.kind, Kind::Sqlite);
    let a = site(&db.store, "A").await;
    patient(&db.store, a, "A-0001").await;
    let again = keta_store::Store::open(&db.url).await.unwrap();
    let found = again.list_patients(&Actor::system(), PatientQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(found.len(), 1);
}

#[tokio::test]
async fn a_site_can_replace_its_safety_rules_and_bad_rules_are_refused() {
    let clock = ManualClock::at(T0);
    let builtin = include_str!("../../../../data/rules/session-safety.toml");
    assert!(builtin.contains("below_pct = 92"), "the test edits the SpO2 floor");
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let p = patient(s, a, "A-0001").await;
        let dr = prescriber(&[a]);
        let c = s.create_course(&dr, p, course(Route::IvRacemic)).await.unwrap();
        let sess = s
            .create_session(&dr, c.id, NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None })
            .await
            .unwrap();
        s.act_on_session(&dr, sess.id, SessionAction::CheckIn).await.unwrap();
        let spo2 = |v: f64| VitalSigns { spo2_pct: Some(Percent(v)), ..Default::default() };

        let before = s.record_vitals(&dr, sess.id, spo2(94.0), None, VitalsSource::Manual).await.unwrap();
        assert!(before.alerts.is_empty(), "94 % is above the built-in floor");

        let bad = s
            .set_site_safety_rules(&dr, a, Some(builtin.replace("below_pct = 92", "below_pct = \"high\"")))
            .await
            .unwrap_err()
            .to_string();
        assert!(bad.contains("spo2_floor"), "{bad}");
        assert!(matches!(
            s.set_site_safety_rules(&nurse(&[a]), a, Some(builtin.into())).await,
            Err(StoreError::Forbidden(_))
        ));

        s.set_site_safety_rules(&dr, a, Some(builtin.replace("below_pct = 92", "below_pct = 95"))).await.unwrap();
        let after = s.record_vitals(&dr, sess.id, spo2(94.0), None, VitalsSource::Manual).await.unwrap();
        assert_eq!(
            after.alerts.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(),
            ["spo2_below_floor"],
            "{:?}",
            db.kind
        );
        let (_, overridden) = s.site_safety_rules(&dr, a).await.unwrap();
        assert!(overridden);
        s.set_site_safety_rules(&dr, a, None).await.unwrap();
        assert!(!s.site_safety_rules(&dr, a).await.unwrap().1);
    }
}

#[tokio::test]
async fn a_damaged_sqlite_file_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keta.db");
    let url = format!("sqlite://{}", path.display());
    {
        let store = keta_store::Store::open(&url).await.unwrap();
        let a = site(&store, "A").await;
        for i in 0..40 {
            patient(&store, a, &format!("A-{i:04}")).await;
        }
    }
    // Closing the last connection folds the WAL into the file.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let healthy = keta_store::Store::open(&url).await;
    assert!(healthy.is_ok(), "the intact file opens");
    drop(healthy);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192, "{}", bytes.len());
    for b in &mut bytes[4096..8192] {
        *b = 0xA5;
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::write(&path, bytes).unwrap();
    let opened = keta_store::Store::open(&url).await;
    assert!(opened.is_err(), "a damaged file must not be served");
}

#[tokio::test]
async fn list_screens_read_many_charts_in_one_snapshot_and_audit_each_patient() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (a, b) = (site(&db.store, "A").await, site(&db.store, "B").await);
        let p1 = patient(&db.store, a, "A-0001").await;
        let p2 = patient(&db.store, a, "A-0002").await;
        let other = patient(&db.store, b, "B-0001").await;
        let dr = prescriber(&[a]);
        let before = count(&db, "audit_log").await;
        let charts = db.store.patient_charts(&dr, vec![p1, other, p2]).await.unwrap();
        let ids: Vec<PatientId> = charts.iter().map(|c| c.patient.id).collect();
        assert_eq!(ids, [p1, p2], "{:?}: another site's patient is left out", db.kind);
        assert_eq!(count(&db, "audit_log").await, before + 2, "one read entry per patient shown");
        assert!(matches!(db.store.patient_charts(&front_desk(&[a]), vec![p1]).await, Err(StoreError::Forbidden(_))));
    }
}
