//! Concurrency conformance: many clinicians pressing the same button at the same moment.
//! Each story runs on SQLite and PostgreSQL (docs/decisions/0004-concurrency.md): N
//! parallel attempts at one change end with exactly one winner, every loser is told with a
//! typed conflict (a 409 problem over HTTP), and no update is lost.

use keta_domain::DomainError;
use keta_domain::course::Route;
use keta_domain::ids::{PatientId, SessionId, SiteId};
use keta_domain::notes::{SignNote, SignatureMeaning};
use keta_domain::records::VitalsSource;
use keta_domain::session::{NewSession, SessionAction};
use keta_domain::units::{BeatsPerMinute, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::checkins::LinkAnswers;
use keta_store::{Actor, Store, StoreError, params};
use keta_testkit::{ManualClock, TestDb, seed_staff};

use crate::fixtures::*;
use crate::ledger::{dose, vial_receipt, witness};

const N: usize = 16;

/// The typed conflict every loser must get (`StoreError::Conflict` and a domain conflict both
/// map to 409), never a database error or a 500.
fn is_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict(_) | StoreError::Domain(DomainError::Conflict(_)))
}

/// Runs `n` attempts at once and returns their results in order.
async fn at_once<T, F, Fut>(n: usize, attempt: F) -> Vec<keta_store::Result<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = keta_store::Result<T>> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(attempt(i))).collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("attempt panicked"));
    }
    out
}

/// Exactly one winner; every other attempt a typed conflict. Returns the winner's index.
fn one_winner<T: std::fmt::Debug>(kind: keta_testkit::Kind, what: &str, results: &[keta_store::Result<T>]) -> usize {
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "{kind:?} {what}: winners {winners:?} in {results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(is_conflict(r), "{kind:?} {what}: a loser must get a typed conflict, got {r:?}");
    }
    winners[0]
}

fn high_bp() -> VitalSigns {
    VitalSigns {
        systolic_mmhg: Some(Mmhg(200.0)),
        diastolic_mmhg: Some(Mmhg(125.0)),
        heart_rate_bpm: Some(BeatsPerMinute(72.0)),
        spo2_pct: Some(Percent(98.0)),
        resp_rate_per_min: None,
    }
}

async fn scheduled_session(s: &Store, site: SiteId, mrn: &str) -> (PatientId, SessionId) {
    let p = patient(s, site, mrn).await;
    let c = s.create_course(&prescriber(&[site]), p, course(Route::IvRacemic)).await.unwrap();
    let sess = s
        .create_session(
            &prescriber(&[site]),
            c.id,
            NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
        )
        .await
        .unwrap();
    (p, sess.id)
}

async fn audited(db: &TestDb, object_type: &'static str, object_id: String, action: &'static str) -> i64 {
    keta_store::testing::read(&db.store, move |c| {
        c.query_opt(
            "SELECT count(*) AS n FROM audit_log WHERE object_type = $1 AND object_id = $2 AND action = $3",
            params![object_type, object_id.as_str(), action],
        )?
        .unwrap()
        .i64("n")
    })
    .await
    .unwrap()
}

fn staff(name: String, site: SiteId) -> Actor {
    Actor { name, ..nurse(&[site]) }
}

#[tokio::test]
async fn one_alert_is_acknowledged_once_by_the_first_of_many() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        // Several rounds: the first runs while the connection pool is still filling.
        for round in 0..4 {
            let (_, sess) = scheduled_session(s, a, &format!("A-{round:04}")).await;
            s.act_on_session(&nurse(&[a]), sess, SessionAction::CheckIn).await.unwrap();
            let raised = s.record_vitals(&nurse(&[a]), sess, high_bp(), None, VitalsSource::Manual).await.unwrap();
            let alert = raised.alerts.first().expect("a BP of 200/125 raises an alert").id;

            let results = at_once(N, |i| {
                let s = s.clone();
                async move {
                    s.acknowledge_alert(&staff(format!("nurse{i}"), a), alert, Some(format!("Rechecked by nurse{i}")))
                        .await
                }
            })
            .await;
            let w = one_winner(k, "acknowledge", &results);
            // The stored acknowledgement is the winner's, whole: who, and their note.
            let (by, note) = keta_store::testing::read(s, move |c| {
                let r = c
                    .query_opt(
                        "SELECT acknowledged_by, acknowledgement_note FROM alerts WHERE id = $1",
                        params![alert.0],
                    )?
                    .unwrap();
                Ok((r.text("acknowledged_by")?, r.text("acknowledgement_note")?))
            })
            .await
            .unwrap();
            assert_eq!(
                (by.as_str(), note.as_str()),
                (format!("nurse{w}").as_str(), format!("Rechecked by nurse{w}").as_str()),
                "{k:?}"
            );
            assert_eq!(
                audited(&db, "alert", alert.to_string(), "update").await,
                1,
                "{k:?}: one acknowledgement audited"
            );
        }
    }
}

#[tokio::test]
async fn a_session_moves_one_step_once_however_many_press_it() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let (_, sess) = scheduled_session(s, a, "A-0001").await;
        let results = at_once(N, |i| {
            let s = s.clone();
            async move { s.act_on_session(&staff(format!("nurse{i}"), a), sess, SessionAction::CheckIn).await }
        })
        .await;
        one_winner(k, "check in", &results);
        assert_eq!(audited(&db, "session", sess.to_string(), "update").await, 1, "{k:?}: one check-in audited");

        // Starting the dose: one winner too, and the state is recorded once.
        s.act_on_session(&nurse(&[a]), sess, SessionAction::StartPreDoseChecks).await.unwrap();
        let results = at_once(N, |i| {
            let s = s.clone();
            async move { s.act_on_session(&staff(format!("nurse{i}"), a), sess, SessionAction::StartDose).await }
        })
        .await;
        one_winner(k, "start dose", &results);
        assert_eq!(audited(&db, "session", sess.to_string(), "update").await, 3, "{k:?}");
    }
}

#[tokio::test]
async fn a_note_edited_while_it_is_signed_keeps_the_signed_text() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        for round in 0..3 {
            let (_, sess) = scheduled_session(s, a, &format!("A-{round:04}")).await;
            s.set_session_note(&nurse(&[a]), sess, "IV ketamine; tolerated well.".into()).await.unwrap();
            let now = clock.now();
            let results = at_once(N, |i| {
                let s = s.clone();
                async move {
                    if i == N / 2 {
                        // The note's writer signs as its author (only the writer may).
                        s.sign_session_note(
                            &nurse(&[a]),
                            Some(now),
                            sess,
                            "RN Test".into(),
                            SignNote { meaning: SignatureMeaning::Author, amendment_id: None },
                        )
                        .await
                        .map(|_| ())
                    } else {
                        s.set_session_note(&nurse(&[a]), sess, format!("IV ketamine; tolerated well. Edit {i}."))
                            .await
                            .map(|_| ())
                    }
                }
            })
            .await;
            assert!(results[N / 2].is_ok(), "{k:?}: signing fails only on a real problem: {:?}", results[N / 2]);
            for r in results.iter().filter_map(|r| r.as_ref().err()) {
                assert!(is_conflict(r), "{k:?}: an edit after signing is a typed conflict, got {r:?}");
            }
            // The text stored is the text signed.
            let note = s.get_signed_note(&prescriber(&[a]), sess).await.unwrap();
            assert!(note.signed && note.verification.intact, "{k:?} round {round}: {:?}", note.verification);
        }
        let broken = keta_store::testing::verify_notes(s).await.unwrap();
        assert!(broken.is_empty(), "{k:?}: {broken:?}");
    }
}

/// A refused at-home pre-dose screen on file (written directly: how a screen comes to be
/// refused is the home stories' subject, not this one's).
async fn refused_screen(s: &Store, site: SiteId, mrn: &str) -> i64 {
    let p = patient(s, site, mrn).await;
    let c = s.create_course(&prescriber(&[site]), p, course(Route::IvRacemic)).await.unwrap();
    let link = s.issue_link(&prescriber(&[site]), p, Some(c.id), "phq9".into()).await.unwrap().link.id;
    keta_store::testing::write(s, move |conn| {
        conn.insert(
            "INSERT INTO pre_dose_screens (link_id, patient_id, site_id, course_id, answers, sitter_name, sitter_contact, outcome, refusals, submitted_at)
             VALUES ($1, $2, $3, $4, '{}', 'Sam Sitter', 'sam@example.org', 'refused', '[\"blood pressure too high\"]', $5) RETURNING id",
            params![link, p.0, site.0, c.id.0, T0.unix_timestamp() * 1000],
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_refused_screen_is_reviewed_once_by_the_first_of_many() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        for round in 0..4 {
            let screen = refused_screen(s, a, &format!("A-{round:04}")).await;
            let results = at_once(N, |i| {
                let s = s.clone();
                async move {
                    let dr = Actor { name: format!("dr{i}"), ..prescriber(&[a]) };
                    s.review_pre_dose_screen(&dr, screen, format!("Phoned the patient (dr{i})")).await
                }
            })
            .await;
            let w = one_winner(k, "review", &results);
            let (by, note) = keta_store::testing::read(s, move |c| {
                let r = c
                    .query_opt("SELECT reviewed_by, review_note FROM pre_dose_screens WHERE id = $1", params![screen])?
                    .unwrap();
                Ok((r.text("reviewed_by")?, r.text("review_note")?))
            })
            .await
            .unwrap();
            assert_eq!((by, note), (format!("dr{w}"), format!("Phoned the patient (dr{w})")), "{k:?}");
            assert_eq!(audited(&db, "pre_dose_screen", screen.to_string(), "update").await, 1, "{k:?}");
        }
    }
}

#[tokio::test]
async fn site_settings_written_at_once_keep_every_writers_change() {
    let clock = ManualClock::at(T0);
    let builtin = include_str!("../../../../data/rules/session-safety.toml");
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let dr = prescriber(&[a]);
        for round in 0..4 {
            s.set_site_pk_threshold(&dr, a, None).await.unwrap();
            s.set_site_safety_rules(&dr, a, None).await.unwrap();
            // Two writers of different keys of the same settings document, eight times each.
            let results = at_once(N, |i| {
                let (s, dr) = (s.clone(), dr.clone());
                async move {
                    if i % 2 == 0 {
                        s.set_site_pk_threshold(&dr, a, Some(100.0 + i as f64)).await
                    } else {
                        s.set_site_safety_rules(&dr, a, Some(builtin.to_string())).await
                    }
                }
            })
            .await;
            assert!(results.iter().all(Result::is_ok), "{k:?}: {results:?}");
            let settings = keta_store::testing::read(s, move |c| {
                c.query_opt("SELECT settings FROM sites WHERE id = $1", params![a.0])?.unwrap().text("settings")
            })
            .await
            .unwrap();
            let v: serde_json::Value = serde_json::from_str(&settings).unwrap();
            assert!(
                v.get(keta_store::rules::PK_THRESHOLD_KEY).is_some() && v.get(keta_store::rules::SAFETY_KEY).is_some(),
                "{k:?} round {round}: a writer's change was lost: {v}"
            );
        }
    }
}

#[tokio::test]
async fn sessions_added_at_once_take_distinct_sequence_numbers() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let p = patient(s, a, "A-0001").await;
        let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
        let results = at_once(N, |_| {
            let s = s.clone();
            async move {
                s.create_session(
                    &prescriber(&[a]),
                    c.id,
                    NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
                )
                .await
            }
        })
        .await;
        let mut seq: Vec<u32> = results.into_iter().map(|r| r.unwrap().sequence).collect();
        seq.sort_unstable();
        assert_eq!(seq, (1..=N as u32).collect::<Vec<_>>(), "{k:?}");
    }
}

#[tokio::test]
async fn doses_drawn_from_one_lot_at_once_never_take_more_than_it_holds() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let (_, sess) = scheduled_session(s, a, "A-0001").await;
        for step in [SessionAction::CheckIn, SessionAction::StartPreDoseChecks, SessionAction::StartDose] {
            s.act_on_session(&nurse(&[a]), sess, step).await.unwrap();
        }
        // One vial: 500 mg in 10 mL. Sixteen draws of 50 mg (1 mL): ten fit.
        let lot = s
            .record_receipt(&nurse(&[a]), Some(clock.now()), vial_receipt(a, 1), witness(prescriber(&[a]), &clock))
            .await
            .unwrap()
            .lot
            .id;
        let now = clock.now();
        let results = at_once(N, |_| {
            let s = s.clone();
            async move { s.record_administration(&nurse(&[a]), Some(now), dose(lot, sess, 50.0, 1.0)).await }
        })
        .await;
        let taken = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(taken, 10, "{k:?}: {results:?}");
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(matches!(e, StoreError::Domain(_)), "{k:?}: a draw past empty is refused with a reason: {e:?}");
        }
        assert_eq!(s.get_lot(&nurse(&[a]), lot).await.unwrap().on_hand.0, 0, "{k:?}");
        let v = s.verify_ledger(&Actor::system()).await.unwrap();
        assert!(v.intact, "{k:?}: {v:?}");
    }
}

#[tokio::test]
async fn a_check_in_link_is_used_once_by_many_submissions() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let p = patient(s, a, "A-0001").await;
        let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
        let link = s.issue_link(&prescriber(&[a]), p, Some(c.id), "phq9".into()).await.unwrap();
        let token = link.token.clone();
        let results = at_once(N, |i| {
            let (s, token) = (s.clone(), token.clone());
            async move {
                // Different answers from each submission (item 9 always 0): only one may be stored.
                let mut items = vec![Some((i % 3) as i32); 8];
                items.push(Some(0));
                let answers = LinkAnswers { items, ..Default::default() };
                s.complete_checkin(&token, answers).await.map(|_| ())
            }
        })
        .await;
        one_winner(k, "complete check-in", &results);
        let responses = keta_store::testing::read(s, |c| {
            c.query_opt("SELECT count(*) AS n FROM questionnaire_responses", &[])?.unwrap().i64("n")
        })
        .await
        .unwrap();
        assert_eq!(responses, 1, "{k:?}");
    }
}

#[tokio::test]
async fn a_totp_code_signs_in_once_however_many_sign_ins_race_with_it() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let nurse_login =
            seed_staff(s, &[a]).await.into_iter().find(|l| l.role == keta_domain::access::Role::Nurse).unwrap();
        let mut tokens = Vec::new();
        for _ in 0..4 {
            tokens
                .push(s.begin_sign_in(&nurse_login.username, &nurse_login.password).await.unwrap().expect("password"));
        }
        let code =
            keta_store::credentials::totp_at_step(&nurse_login.totp_secret, clock.now().unix_timestamp() / 30).unwrap();
        let results = at_once(tokens.len(), |i| {
            let (s, token, code) = (s.clone(), tokens[i].clone(), code.clone());
            async move { s.complete_second_factor(&token, &code).await }
        })
        .await;
        let passed = results.iter().filter(|r| matches!(r, Ok(true))).count();
        assert_eq!(passed, 1, "{k:?}: AC-10, a code is accepted once: {results:?}");
        assert!(results.iter().all(Result::is_ok), "{k:?}: {results:?}");
    }
}

/// A read made of several queries sees one moment: a write committed between its queries is
/// not half-seen (PostgreSQL runs reads at REPEATABLE READ, read only, as SQLite's read
/// transaction does).
#[tokio::test]
async fn a_read_of_several_queries_sees_one_snapshot() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        patient(s, a, "A-0001").await;
        let (first_done_tx, first_done_rx) = std::sync::mpsc::channel::<()>();
        let (written_tx, written_rx) = std::sync::mpsc::channel::<()>();
        let reader = {
            let s = s.clone();
            tokio::spawn(async move {
                keta_store::testing::read(&s, move |c| {
                    let count = |c: &mut dyn keta_store::testing::Conn| {
                        c.query_opt("SELECT count(*) AS n FROM patients", &[])?.unwrap().i64("n")
                    };
                    let before = count(c)?;
                    first_done_tx.send(()).unwrap();
                    written_rx.recv().unwrap();
                    Ok((before, count(c)?))
                })
                .await
            })
        };
        tokio::task::spawn_blocking(move || first_done_rx.recv().unwrap()).await.unwrap();
        patient(s, a, "A-0002").await;
        written_tx.send(()).unwrap();
        let (before, after) = reader.await.unwrap().unwrap();
        assert_eq!((before, after), (1, 1), "{k:?}: the second query saw a write the first did not");
        assert_eq!(
            keta_store::testing::read(s, |c| c.query_opt("SELECT count(*) AS n FROM patients", &[])?.unwrap().i64("n"))
                .await
                .unwrap(),
            2
        );
    }
}

/// The dose gate (no dose while an urgent alert for the patient is open and not overridden)
/// holds when the alert is raised at the same moment, from another session of the patient:
/// either the alert came first and the dose is refused, or the dose came first.
#[tokio::test]
async fn a_dose_never_starts_past_an_urgent_alert_raised_at_the_same_moment() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let n = nurse(&[a]);
        for round in 0..6 {
            let p = patient(s, a, &format!("A-{round:04}")).await;
            let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
            let new = || NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None };
            let dosing = s.create_session(&prescriber(&[a]), c.id, new()).await.unwrap().id;
            let other = s.create_session(&prescriber(&[a]), c.id, new()).await.unwrap().id;
            for step in [SessionAction::CheckIn, SessionAction::StartPreDoseChecks] {
                s.act_on_session(&n, dosing, step).await.unwrap();
            }
            s.act_on_session(&n, other, SessionAction::CheckIn).await.unwrap();
            let results = at_once(N, |i| {
                let s = s.clone();
                let n = n.clone();
                async move {
                    if i == N / 2 {
                        s.act_on_session(&n, dosing, SessionAction::StartDose).await.map(|_| ())
                    } else {
                        s.record_vitals(&n, other, high_bp(), None, VitalsSource::Monitor).await.map(|_| ())
                    }
                }
            })
            .await;
            // The order the audit trail recorded: the dose start, and the first urgent alert.
            let (dose_seq, first_alert_seq) = keta_store::testing::read(s, move |c| {
                    let dose = c
                        .query_opt(
                            "SELECT max(seq) AS max_seq FROM audit_log WHERE object_type = 'session' AND object_id = $1 AND action = 'update'",
                            params![dosing.to_string()],
                        )?
                        .unwrap()
                        .i64("max_seq")?;
                    let alert = c
                        .query_opt(
                            "SELECT min(l.seq) AS min_seq FROM audit_log l JOIN alerts x ON l.object_id = CAST(x.id AS TEXT)
                             WHERE l.object_type = 'alert' AND l.action = 'create' AND x.patient_id = $1 AND x.severity = 'urgent'",
                            params![p.0],
                        )?
                        .unwrap()
                        .opt_i64("min_seq")?;
                    Ok((dose, alert))
                })
                .await
                .unwrap();
            match &results[N / 2] {
                Ok(()) => assert!(
                    first_alert_seq.is_none_or(|a| a > dose_seq),
                    "{k:?} round {round}: the dose started although an urgent alert was raised before it ({first_alert_seq:?} < {dose_seq})"
                ),
                Err(e) => assert!(is_conflict(e), "{k:?}: the dose is refused with the reason: {e:?}"),
            }
        }
    }
}

/// A reading judged while another write holds its session sees what that write committed: the
/// session's row is locked first and the baseline read after the lock is granted, never from
/// a snapshot taken before the wait (docs/decisions/0004-concurrency.md). Here the other write
/// adds a backdated reading that becomes the session's baseline; the waiting reading is a
/// notable rise over it, though not over the baseline it would have seen before the wait.
#[tokio::test]
async fn a_reading_waiting_on_its_session_is_judged_against_what_the_holder_committed() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let (s, k) = (&db.store, db.kind);
        let a = site(s, "A").await;
        let n = nurse(&[a]);
        let (_, sess) = scheduled_session(s, a, "A-0001").await;
        s.act_on_session(&n, sess, SessionAction::CheckIn).await.unwrap();
        s.act_on_session(&n, sess, SessionAction::StartPreDoseChecks).await.unwrap();
        let bp = |sys: f64, dia: f64| VitalSigns {
            systolic_mmhg: Some(Mmhg(sys)),
            diastolic_mmhg: Some(Mmhg(dia)),
            heart_rate_bpm: Some(BeatsPerMinute(72.0)),
            spo2_pct: Some(Percent(98.0)),
            resp_rate_per_min: None,
        };
        s.record_vitals(&n, sess, bp(160.0, 95.0), None, VitalsSource::Manual).await.unwrap();
        s.act_on_session(&n, sess, SessionAction::StartDose).await.unwrap();
        clock.advance(time::Duration::minutes(10));

        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let s = s.clone();
            let earlier = (T0 - time::Duration::minutes(1)).unix_timestamp() * 1000;
            tokio::spawn(async move {
                keta_store::testing::write(&s, move |c| {
                    c.query_opt("SELECT id FROM sessions WHERE id = $1 FOR UPDATE", params![sess.0])?;
                    c.execute(
                        "INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, source)
                         SELECT id, patient_id, $2, 120, 80, 'manual' FROM sessions WHERE id = $1",
                        params![sess.0, earlier],
                    )?;
                    held_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    Ok(())
                })
                .await
            })
        };
        tokio::task::spawn_blocking(move || held_rx.recv().unwrap()).await.unwrap();
        let waiting = {
            let (s, n) = (s.clone(), n.clone());
            tokio::spawn(async move { s.record_vitals(&n, sess, bp(165.0, 97.0), None, VitalsSource::Manual).await })
        };
        // Release the holder only once the reading is waiting for it: on PostgreSQL for the
        // session's row, on SQLite in the writer's queue.
        let mut polls = 0;
        loop {
            let queued = match k {
                keta_testkit::Kind::Sqlite => s.stats().writer_queue_depth.unwrap_or(0),
                _ => keta_store::testing::read(s, |c| {
                    c.query_opt(
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                        &[],
                    )?
                    .unwrap()
                    .i64("n")
                })
                .await
                .unwrap() as u64,
            };
            if queued > 0 {
                break;
            }
            polls += 1;
            assert!(polls < 500, "{k:?}: the reading never waited for the holder");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        go_tx.send(()).unwrap();
        holder.await.unwrap().unwrap();
        let out = waiting.await.unwrap().unwrap();
        let rules: Vec<&str> = out.alerts.iter().map(|x| x.rule.as_str()).collect();
        assert_eq!(
            rules,
            ["bp_rise_from_baseline"],
            "{k:?}: judged against 120/80, the baseline committed while it waited"
        );
    }
}
