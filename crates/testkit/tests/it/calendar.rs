//! The chair calendar and the course's prescription, on every backend: a chair
//! is never double-booked, a whole induction course books into free chairs, a no-show
//! follows the protocol's missed-session rule, the front desk's arrival puts the patient on
//! the board, and a session's dose is checked against the prescriber's order.

use time::Duration;
use time::macros::date;

use keta_domain::DomainError;
use keta_domain::course::{NewCourse, Route};
use keta_domain::dosing::{BagVolume, DoseAmount, DoseRequest};
use keta_domain::ids::{ChairId, CourseId, PatientId, SiteId};
use keta_domain::patient::{NewWeight, WeightType};
use keta_domain::prescription::{NewCourseOrder, NewOrderOverride, OrderDose};
use keta_domain::protocols::ProtocolLibrary;
use keta_domain::session::{NewSession, SessionAction, SessionState};
use keta_domain::units::{Kilograms, MgPerKg, Millilitres, Minutes};
use keta_store::calendar::{BookCourse, NoShow, Reschedule};
use keta_store::dosing::DoseChecker;
use keta_store::{Actor, Store, StoreError};
use keta_testkit::{ManualClock, TestDb};

use crate::fixtures::*;

const IV: &str = "iv-racemic-0.5";

fn lib() -> std::sync::Arc<ProtocolLibrary> {
    std::sync::Arc::new(ProtocolLibrary::builtin().clone())
}

async fn iv_course(s: &Store, a: SiteId, mrn: &str) -> (PatientId, CourseId) {
    let p = patient(s, a, mrn).await;
    let new = NewCourse { protocol: Some(IV.into()), ..course(Route::IvRacemic) };
    (p, s.create_course(&prescriber(&[a]), p, new).await.unwrap().id)
}

async fn chairs(s: &Store, a: SiteId) -> Vec<ChairId> {
    s.list_chairs(&Actor::system(), a).await.unwrap().into_iter().map(|c| c.id).collect()
}

fn book(time: &str, chair: Option<ChairId>) -> BookCourse {
    BookCourse { start: date!(2026 - 11 - 02), time: time.into(), chair_id: chair, every_days: None, until: None }
}

fn conflict(r: Result<impl std::fmt::Debug, StoreError>) -> String {
    match r {
        Err(StoreError::Domain(DomainError::Conflict(m))) | Err(StoreError::Conflict(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_whole_induction_course_books_into_free_chairs_and_a_chair_is_never_double_booked() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let ch = chairs(s, a).await;
        let desk = front_desk(&[a]);

        // The protocol's induction: 6 infusions, Mon/Wed/Fri, each at 10:00 in chair 1.
        let (_, c1) = iv_course(s, a, "A-1501").await;
        let booked = s.book_course(&desk, c1, lib(), book("10:00", Some(ch[0]))).await.unwrap();
        assert_eq!(booked.len(), 6, "{:?}", db.kind);
        assert!(booked.iter().all(|b| b.chair_id == Some(ch[0]) && b.state == SessionState::Scheduled));
        let days: Vec<u8> = booked.iter().map(|b| b.scheduled_for.to_offset(time::UtcOffset::UTC).day()).collect();
        assert_eq!(days, [2, 4, 6, 9, 11, 13]);
        // Booking the same course twice is refused.
        assert!(conflict(s.book_course(&desk, c1, lib(), book("10:00", None)).await).contains("already has 6"));

        // A second patient asking for chair 1 at 11:00 gets chair 2: IV holds a chair 120 min.
        let (_, c2) = iv_course(s, a, "A-1502").await;
        let second = s.book_course(&desk, c2, lib(), book("11:00", Some(ch[0]))).await.unwrap();
        assert!(second.iter().all(|b| b.chair_id == Some(ch[1])), "{:?}", db.kind);
        // A third at 10:30 finds no chair: refused as a whole, nothing booked.
        let (p3, c3) = iv_course(s, a, "A-1503").await;
        let why = conflict(s.book_course(&desk, c3, lib(), book("10:30", None)).await);
        assert!(why.contains("no chair is free for session 1 at 2026-11-02 10:30"), "{why}");
        assert_eq!(s.next_sessions_for_patient(&desk, p3, 10).await.unwrap().len(), 0);

        // Adding a session by hand into a held chair is refused too, naming the holder.
        let at = booked[0].scheduled_for + Duration::minutes(90);
        let by_hand = s
            .create_session(
                &prescriber(&[a]),
                c3,
                NewSession { scheduled_for: at, chair_id: Some(ch[0]), planned_dose_mg: None },
            )
            .await;
        let why = conflict(by_hand);
        assert!(why.contains(&format!("already booked at 2026-11-02 11:30 (session {}", booked[0].id)), "{why}");
        // At the end of the chair time it is free.
        let free_at = booked[0].scheduled_for + Duration::minutes(120);
        s.create_session(
            &prescriber(&[a]),
            c3,
            NewSession { scheduled_for: free_at, chair_id: Some(ch[0]), planned_dose_mg: None },
        )
        .await
        .unwrap();

        // Moving the second patient's first session into chair 1 at 10:00 is refused...
        let mv = Reschedule { date: date!(2026 - 11 - 02), time: "10:00".into(), chair_id: Some(ch[0]), reason: None };
        assert!(conflict(s.reschedule_session(&desk, second[0].id, mv.clone()).await).contains("already booked"));
        // ...until the session holding it is cancelled (with a reason), which frees it.
        assert!(s.cancel_session(&desk, booked[0].id, "  ".into()).await.is_err(), "a reason is required");
        let cancelled = s.cancel_session(&desk, booked[0].id, "Patient unwell, called ahead".into()).await.unwrap();
        assert_eq!(cancelled.state, SessionState::Stopped);
        let moved = s.reschedule_session(&desk, second[0].id, mv).await.unwrap();
        assert_eq!((moved.chair_id, moved.scheduled_for), (Some(ch[0]), booked[0].scheduled_for));

        // The calendar shows the week with each session's chair time and the cancellation.
        let cal = s.site_calendar(&desk, a, date!(2026 - 11 - 02), 7).await.unwrap();
        let first = cal.entries.iter().find(|e| e.session.id == booked[0].id).unwrap();
        assert_eq!((first.outcome.as_deref(), first.chair_minutes), (Some("cancelled"), 120));
        assert_eq!(first.outcome_reason.as_deref(), Some("Patient unwell, called ahead"));
        // The moved session says where it was booked before.
        let was = cal.entries.iter().find(|e| e.session.id == second[0].id).unwrap();
        assert_eq!((was.moved_from_at, was.moved_from_chair_id), (Some(second[0].scheduled_for), second[0].chair_id));
        assert_eq!((first.moved_from_at, first.moved_from_chair_id), (None, None), "never moved");
        assert_eq!(cal.chairs.len(), 2);
        // Auditors read the calendar but cannot book.
        let auditor =
            Actor::staff("audit.test", keta_domain::access::Role::Auditor, keta_store::SiteScope::Sites(vec![a]));
        assert!(matches!(s.book_course(&auditor, c3, lib(), book("15:00", None)).await, Err(StoreError::Forbidden(_))));
    }
}

#[tokio::test]
async fn a_no_show_follows_the_protocols_missed_session_rule_and_an_arrival_puts_the_patient_on_the_board() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let desk = front_desk(&[a]);
        let (_, c) = iv_course(s, a, "A-1511").await;
        let booked = s.book_course(&desk, c, lib(), book("10:00", None)).await.unwrap();

        // Not yet: a no-show is recorded once the session's time has passed.
        let early = NoShow { reason: "Did not attend".into(), make_up_on: Some(date!(2026 - 11 - 03)) };
        assert!(
            conflict(s.record_no_show(&desk, booked[0].id, lib(), early.clone()).await).contains("not started yet")
        );
        clock.advance(Duration::hours(5));
        // IV's rule (shift_following, data/protocols/iv-racemic.toml) needs a make-up date.
        let none = NoShow { reason: "Did not attend".into(), make_up_on: None };
        let why = format!("{:?}", s.record_no_show(&desk, booked[0].id, lib(), none).await.unwrap_err());
        assert!(why.contains("make_up_on"), "{why}");
        let out = s.record_no_show(&desk, booked[0].id, lib(), early).await.unwrap();
        assert_eq!(out.rule.make_up_on, Some(date!(2026 - 11 - 03)));
        assert_eq!(out.session.scheduled_for, booked[0].scheduled_for + Duration::days(1));
        assert_eq!(out.moved.len(), 5, "every later session moves a day: {:?}", out.rule);
        for (m, b) in out.moved.iter().zip(&booked[1..]) {
            assert_eq!(m.scheduled_for, b.scheduled_for + Duration::days(1));
        }
        let hist = s.calendar_history(&desk, booked[0].id).await.unwrap();
        assert_eq!(hist.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(), ["booked", "no_show"]);
        assert!(
            hist[1].1.as_deref().unwrap().starts_with("Did not attend — Session 1 missed on 2026-11-02"),
            "{hist:?}"
        );

        // The made-up session's day: arrival is for today's sessions only.
        assert!(conflict(s.mark_arrival(&desk, booked[1].id).await).contains("not today"));
        clock.set(out.session.scheduled_for - Duration::minutes(10));
        let arrived = s.mark_arrival(&desk, booked[0].id).await.unwrap();
        assert_eq!(arrived.state, SessionState::CheckedIn);
        let day_from = out.session.scheduled_for - Duration::hours(10);
        let board = s.site_board(&desk, a, day_from, day_from + Duration::days(1)).await.unwrap();
        let on_board = board.sessions.iter().find(|x| x.id == booked[0].id).expect("on the board");
        assert_eq!(on_board.state, SessionState::CheckedIn);
        // An arrived patient is no longer a booking to move or cancel.
        assert!(conflict(s.cancel_session(&desk, booked[0].id, "x".into()).await).contains("checked in"));
        // The nurse carries on from the board.
        s.act_on_session(&nurse(&[a]), booked[0].id, SessionAction::StartPreDoseChecks).await.unwrap();
        // The patient's next sessions are the moved ones.
        let next = s.next_sessions_for_patient(&desk, out.session.patient_id, 3).await.unwrap();
        assert_eq!(
            next.iter().map(|n| n.id).collect::<Vec<_>>(),
            booked[1..4].iter().map(|b| b.id).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn a_session_dose_outside_the_prescribers_order_needs_the_prescribers_documented_override() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let (p, c) = iv_course(s, a, "A-1521").await;
        s.add_weight(
            &Actor::system(),
            p,
            NewWeight {
                weight_kg: Kilograms(70.0),
                measured_on: date!(2026 - 11 - 01),
                weight_type: WeightType::Actual,
            },
        )
        .await
        .unwrap();
        let order = NewCourseOrder {
            protocol_id: IV.into(),
            dose: OrderDose::MgPerKg(MgPerKg(0.5)),
            infusion_min: Some(Minutes(40)),
            final_volume_ml: Some(Millilitres(100.0)),
            vial_mg_per_ml: None,
            titration_step: Some(0.1),
            max_dose: Some(0.7),
        };
        let iv = ProtocolLibrary::builtin().require(IV).unwrap();
        // Only a prescriber orders.
        assert!(matches!(
            s.record_course_order(&nurse(&[a]), c, iv, order.clone()).await,
            Err(StoreError::Forbidden(_))
        ));
        let o = s.record_course_order(&prescriber(&[a]), c, iv, order.clone()).await.unwrap();
        assert_eq!(s.course_order(&nurse(&[a]), c).await.unwrap().unwrap().id, o.id);
        let calc = o.order.calculate_for(iv, o.order.dose, Kilograms(70.0), None).unwrap();
        assert_eq!((calc.dose_mg.0, calc.pump.unwrap().rate_ml_per_h.0), (35.0, 150.0));

        let sess = s
            .create_session(
                &prescriber(&[a]),
                c,
                NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
            )
            .await
            .unwrap()
            .id;
        let req = |mg_per_kg: f64| DoseRequest {
            protocol: Some(IV.into()),
            bag: Some(BagVolume::FinalVolumeIncludingDrugMl(Millilitres(100.0))),
            infusion_min: Some(Minutes(40)),
            ..DoseRequest::per_kg(70.0, mg_per_kg)
        };
        let check = || DoseChecker { actor: prescriber(&[a]), verified_at: clock.now() };
        let n = nurse(&[a]);
        // 0.75 mg/kg is within the protocol's reported range but not on the order's ladder.
        let refused = s.record_dose(&n, sess, Some(iv.clone()), req(0.75), check()).await;
        let why = format!("{refused:?}");
        assert!(why.contains("outside the prescriber's order (0.5, 0.6 or 0.7 mg/kg)"), "{why}");
        // A nurse cannot override; the prescriber documents why.
        let ov = NewOrderOverride {
            dose: DoseAmount::MgPerKg(MgPerKg(0.75)),
            reason: "Partial response at 0.7; discussed".into(),
        };
        assert!(matches!(s.record_order_override(&n, sess, ov.clone()).await, Err(StoreError::Forbidden(_))));
        s.record_order_override(&prescriber(&[a]), sess, ov).await.unwrap();
        let rec = s.record_dose(&n, sess, Some(iv.clone()), req(0.75), check()).await.unwrap();
        assert!((rec.dose_mg.0 - 52.5).abs() < 1e-9);
        // Within the order needs nothing more.
        let sess2 = s
            .create_session(
                &prescriber(&[a]),
                c,
                NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
            )
            .await
            .unwrap()
            .id;
        s.record_dose(&n, sess2, Some(iv.clone()), req(0.6), check()).await.unwrap();
        assert_eq!(s.list_order_overrides(&n, sess).await.unwrap().len(), 1);

        // On the session screen, the dose given starts from the order for the patient's
        // latest weight (0.5 mg/kg × 70 kg), once the dose has started and stock is on hand.
        let sess3 = s
            .create_session(
                &prescriber(&[a]),
                c,
                NewSession { scheduled_for: T0, chair_id: None, planned_dose_mg: None },
            )
            .await
            .unwrap()
            .id;
        s.act_on_session(&n, sess3, SessionAction::CheckIn).await.unwrap();
        s.act_on_session(&n, sess3, SessionAction::StartPreDoseChecks).await.unwrap();
        let bp = keta_domain::vitals::VitalSigns {
            systolic_mmhg: Some(keta_domain::units::Mmhg(124.0)),
            diastolic_mmhg: Some(keta_domain::units::Mmhg(80.0)),
            heart_rate_bpm: Some(keta_domain::units::BeatsPerMinute(72.0)),
            spo2_pct: Some(keta_domain::units::Percent(98.0)),
            resp_rate_per_min: Some(keta_domain::units::BreathsPerMinute(14.0)),
        };
        s.record_vitals(&n, sess3, bp, None, keta_domain::records::VitalsSource::Manual).await.unwrap();
        s.act_on_session(&n, sess3, SessionAction::StartDose).await.unwrap();
        let staff = keta_testkit::seed_staff(s, &[a]).await;
        let by = |r: keta_domain::access::Role| staff.iter().find(|x| x.role == r).unwrap();
        let (rn, dr) = (by(keta_domain::access::Role::Nurse), by(keta_domain::access::Role::Prescriber));
        let app = keta_testkit::spawn_app(s.clone()).await;
        assert_eq!(app.login(rn, clock.now()).await.status(), 200);
        let site_id = a.0.to_string();
        let receipt = crate::ledger_screens::receipt(&site_id, "KX7", &dr.username, &dr.password, "order-lot");
        assert_eq!(crate::ledger_screens::post_form(&app, "/ledger/receipt", &receipt).await.status(), 303);
        let page = app.get(&format!("/sessions/{}", sess3.0)).await.text().await.unwrap();
        assert!(page.contains(r#"id="ledger_dose_mg" name="ledger_dose_mg" inputmode="decimal" value="35""#), "{page}");
        assert!(page.contains("from the order: 35 mg for 70 kg"), "{:?}", db.kind);
        let _ = SessionAction::CheckIn;
    }
}

/// Over HTTP: the front desk books a whole induction course into the calendar, a second
/// booking into the held chair is a 409 naming the holder, the prescriber's order shows the
/// issue's worked example, and the calendar page renders the sessions.
#[tokio::test]
async fn the_front_desk_books_through_the_api_and_the_calendar_page_shows_it() {
    use keta_testkit::{seed_staff, spawn_app};
    use serde_json::{Value, json};
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let s = &db.store;
    let a = site(s, "A").await;
    let staff = seed_staff(s, &[a]).await;
    let (p, c) = iv_course(s, a, "A-1531").await;
    s.add_weight(
        &Actor::system(),
        p,
        NewWeight { weight_kg: Kilograms(70.0), measured_on: date!(2026 - 11 - 01), weight_type: WeightType::Actual },
    )
    .await
    .unwrap();
    let ch = chairs(s, a).await;
    let app = spawn_app(s.clone()).await;

    // The prescriber records the order: 70 kg at 0.5 mg/kg over 40 min in 100 mL.
    assert_eq!(app.login(&staff[1], T0).await.status(), 200);
    let order = json!({"protocol_id": IV, "dose": {"mg_per_kg": 0.5}, "infusion_min": 40, "final_volume_ml": 100});
    let r = app.put_json(&format!("/api/v1/courses/{}/order", c.0), &order).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["calculation"]["dose_mg"].as_f64(), v["calculation"]["pump"]["rate_ml_per_h"].as_f64()),
        (Some(35.0), Some(150.0))
    );
    let bad =
        app.put_json(&format!("/api/v1/courses/{}/order", c.0), &json!({"protocol_id": IV, "dose": {"mg": 35}})).await;
    assert_eq!(bad.status(), 422);

    app.logout_locally();
    assert_eq!(app.login(&staff[3], T0).await.status(), 200, "front desk signs in");
    let body = json!({"start": "2026-11-02", "time": "10:00", "chair_id": ch[0].0});
    let r = app.post_json(&format!("/api/v1/courses/{}/bookings", c.0), &body).await;
    assert_eq!(r.status(), 201);
    let booked: Vec<Value> = r.json().await.unwrap();
    assert_eq!(booked.len(), 6);
    let bad_time = app
        .post_json(&format!("/api/v1/courses/{}/bookings", c.0), &json!({"start": "2026-11-02", "time": "25:00"}))
        .await;
    assert_eq!(bad_time.status(), 422);

    let (_, c2) = iv_course(s, a, "A-1532").await;
    let id = s
        .create_session(
            &prescriber(&[a]),
            c2,
            NewSession { scheduled_for: T0 + Duration::days(3), chair_id: None, planned_dose_mg: None },
        )
        .await
        .unwrap()
        .id;
    let mv = json!({"date": "2026-11-02", "time": "11:00", "chair_id": ch[0].0});
    let r = app.post_json(&format!("/api/v1/sessions/{}/reschedule", id.0), &mv).await;
    assert_eq!(r.status(), 409);
    let problem: Value = r.json().await.unwrap();
    assert!(problem.to_string().contains("already booked"), "{problem}");

    let page = app.get("/calendar?from=2026-11-02&view=week").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("10:00–12:00") && html.contains("Test-A-1531"), "the week shows the booked sessions");
    assert!(html.contains("Book a course"));
}

/// Arrivals are the front desk's, but Today's schedule sent them to the session
/// screen (403: it is clinical). Today now gives the front desk an "Arrived" button for a
/// booked session and no links into clinical pages (which still refuse them); nurses see the
/// schedule on Today and the calendar, and open the session from it.
#[tokio::test]
async fn the_front_desk_marks_an_arrival_from_todays_schedule_and_nurses_see_the_schedule() {
    use keta_testkit::{seed_staff, spawn_app};
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let staff = seed_staff(s, &[a]).await;
        let (p, c) = iv_course(s, a, "A-1541").await;
        // 15:00 in Chicago on T0's day: today's first session of the course.
        let id = s.book_course(&front_desk(&[a]), c, lib(), book("15:00", None)).await.unwrap()[0].id;
        let app = spawn_app(s.clone()).await;
        let arrival = format!(r#"action="/calendar/sessions/{}/arrival""#, id.0);
        let open = format!(r#"href="/sessions/{}""#, id.0);

        assert_eq!(app.login(&staff[3], T0).await.status(), 200, "front desk signs in");
        let today = app.get("/today").await.text().await.unwrap();
        assert!(today.contains("Test-A-1541") && today.contains(&arrival), "{:?}: an Arrived button", db.kind);
        assert!(!today.contains(&open), "no link to the session screen, which refuses the front desk");
        assert!(!today.contains(&format!(r#"href="/patients/{}""#, p.0)), "no link to the chart either");
        assert_eq!(app.get(&format!("/sessions/{}", id.0)).await.status(), 403, "the session stays clinical");

        let form = format!("csrf_token=x&form_token=arrival-{}&back=today", id.0);
        let r = app
            .request(reqwest::Method::POST, &format!("/calendar/sessions/{}/arrival", id.0))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/today", "back to Today, where the patient is now on the board");
        assert_eq!(s.get_session(&Actor::system(), id).await.unwrap().state, SessionState::CheckedIn);
        let today = app.get("/today").await.text().await.unwrap();
        assert!(today.contains("Checked in") && !today.contains(&arrival), "arrived once: no second button");

        app.logout_locally();
        assert_eq!(app.login(&staff[2], T0).await.status(), 200, "the nurse signs in");
        let today = app.get("/today").await.text().await.unwrap();
        assert!(today.contains("Test-A-1541") && today.contains(&open), "the nurse opens the session from Today");
        assert!(!today.contains(&arrival));
        let cal = app.get("/calendar?from=2026-11-02&view=day").await;
        assert_eq!(cal.status(), 200);
        assert!(cal.text().await.unwrap().contains("Test-A-1541"), "the nurse sees the schedule on the calendar");
    }
}

/// The rota: the front desk (or the administrator) sets who is on duty on a day; nurses and
/// prescribers read it but cannot set it; a name that is not an enabled nurse or prescriber at
/// the site is refused by name and nothing changes; the week and day views show it.
#[tokio::test]
async fn the_front_desk_sets_who_is_on_duty_and_the_calendar_shows_it() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let staff = keta_testkit::seed_staff(s, &[a]).await;
        let day = date!(2026 - 11 - 04);
        let desk = front_desk(&[a]);
        let names = |v: &[keta_store::rota::OnDutyStaff]| v.iter().map(|x| x.username.clone()).collect::<Vec<_>>();

        let set = s
            .set_duty_rota(&desk, a, day, vec!["nurse.test".into(), "prescriber.test".into(), " nurse.test ".into()])
            .await
            .unwrap();
        assert_eq!(names(&set), ["prescriber.test", "nurse.test"], "prescribers first, each once ({:?})", db.kind);
        // A nurse reads the rota but does not set it.
        assert!(matches!(s.set_duty_rota(&nurse(&[a]), a, day, vec![]).await, Err(StoreError::Forbidden(_))));
        // The front desk is not a clinician on duty; an unknown name is named; nothing changed.
        let refused = s.set_duty_rota(&desk, a, day, vec!["nurse.test".into(), "frontdesk.test".into()]).await;
        assert!(
            format!("{refused:?}").contains("`frontdesk.test` is not an enabled nurse or prescriber"),
            "{refused:?}"
        );
        let week = s.duty_rota(&nurse(&[a]), a, date!(2026 - 11 - 02), 7).await.unwrap();
        assert_eq!(names(&week), ["prescriber.test", "nurse.test"]);
        assert!(week.iter().all(|x| x.day == day));
        let cal = s.site_calendar(&nurse(&[a]), a, date!(2026 - 11 - 02), 7).await.unwrap();
        assert_eq!(names(&cal.on_duty), ["prescriber.test", "nurse.test"]);
        // Replacing the day's list: only the nurse now; the next day stays empty.
        s.set_duty_rota(&Actor::system(), a, day, vec!["nurse.test".into()]).await.unwrap();
        assert_eq!(names(&s.duty_rota(&desk, a, day, 2).await.unwrap()), ["nurse.test"]);

        // Over HTTP: the front desk sets it from the calendar's week view.
        let app = keta_testkit::spawn_app(s.clone()).await;
        let who = |r: keta_domain::access::Role| staff.iter().find(|x| x.role == r).unwrap();
        assert_eq!(app.login(who(keta_domain::access::Role::FrontDesk), clock.now()).await.status(), 200);
        let site_id = a.0.to_string();
        let form = [
            ("csrf_token", "from-the-header"),
            ("form_token", "rota-1"),
            ("site", site_id.as_str()),
            ("from", "2026-11-02"),
            ("view", "week"),
            ("day", "2026-11-05"),
            ("staff", "prescriber.test"),
            ("staff", "nurse.test"),
        ];
        let r = app.request(reqwest::Method::POST, "/calendar/rota").form(&form).send().await.unwrap();
        assert_eq!(r.status(), 303, "{:?}", db.kind);
        let html = app.get(&format!("/calendar?site={site_id}&from=2026-11-02&view=week")).await.text().await.unwrap();
        assert!(html.contains("<th scope=\"row\">On duty</th>"), "{html}");
        assert!(html.contains("<li>Test Prescriber (prescriber)</li>"), "{html}");
        assert!(html.contains("Set who is on duty"), "the front desk may set it");
        let day_view =
            app.get(&format!("/calendar?site={site_id}&from=2026-11-05&view=day")).await.text().await.unwrap();
        assert!(day_view.contains("<li>Test Prescriber (prescriber)</li><li>Test Nurse (nurse)</li>"), "{day_view}");
        // A nurse sees the rota without the form.
        clock.advance(Duration::seconds(31));
        assert_eq!(app.login(who(keta_domain::access::Role::Nurse), clock.now()).await.status(), 200);
        let html = app.get(&format!("/calendar?site={site_id}&from=2026-11-05&view=day")).await.text().await.unwrap();
        assert!(html.contains("<li>Test Nurse (nurse)</li>") && !html.contains("Set who is on duty"));
    }
}
