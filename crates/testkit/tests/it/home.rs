//! The at-home programme over HTTP on both backends: the pre-dose screen from the
//! reminder's link, a refusal with its reason, the sitter's own link through the SMTP sink,
//! the dose log, reconciliation against dispenses, and the supply hold.

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

use keta_domain::access::Role;
use keta_domain::between_alerts::BetweenSessionAlerts;
use keta_domain::checkins::ScheduleOverride;
use keta_domain::course::Route;
use keta_domain::home_dosing::{self, PreDoseRules};
use keta_testkit::smtp_sink::{ReceivedMail, SmtpSink};
use keta_testkit::{ManualClock, TestApp, TestDb, smtp_reminders, spawn_app_with};

use crate::checkins::{
    Clinic, PATIENT_EMAIL, WAIT, clinic, events_of, link_in, open_alerts, overview, page, phq9_form, sign_in, submit,
};
use crate::fixtures::*;

const SITTER_EMAIL: &str = "sam.sitter@example.org";

fn screen<'a>(systolic: &'a str, diastolic: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("action", "screen"),
        ("systolic", systolic),
        ("diastolic", diastolic),
        ("alcohol", "no"),
        ("sedatives", "no"),
        ("food", "no"),
        ("liquids", "no"),
        ("driving", "yes"),
        ("sitter_name", "Sam"),
        ("sitter_contact", SITTER_EMAIL),
    ]
}

/// The reminder whose subject contains `what`, among those sent to `to`.
fn mail_about<'a>(mails: &'a [ReceivedMail], to: &str, what: &str) -> Vec<&'a ReceivedMail> {
    mails.iter().filter(|m| m.recipients == [to] && m.subject().is_some_and(|s| s.contains(what))).collect()
}

async fn programme(app: &TestApp, c: &Clinic) -> Value {
    let r = app.get(&format!("/api/v1/patients/{}/home-programme", c.patient.0)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["programmes"][0].clone()
}

async fn dispense(app: &TestApp, c: &Clinic) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/courses/{}/home-dispenses", c.course.0),
        &json!({"units": 10, "unit_strength_mg": 100.0}),
    )
    .await
}

// Long on purpose: one home dose from screen to log, read top to bottom.
#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn a_home_dose_goes_from_screen_through_sitter_to_log_and_the_supply_is_held_until_up_to_date() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        // Doses planned an hour from now and the same time tomorrow.
        let doses = [T0 + Duration::hours(1), T0 + Duration::days(1) + Duration::hours(1)];
        let c = clinic(s, Route::OralRacemic, T0.date(), &doses).await;
        let sink = SmtpSink::start().await;
        let app = spawn_app_with(s.clone(), |url| smtp_reminders(&sink, url)).await;
        let (admin, dr, nurse) =
            (c.login_as(Role::Administrator), c.login_as(Role::Prescriber), c.login_as(Role::Nurse));

        // The sweep issues today's pre-dose screen (and the PHQ-9 before the dose).
        sign_in(&app, &clock, admin).await;
        let r = app.post_json("/api/v1/checkins/sweep", &json!({})).await;
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"issued": 2, "sent": 2, "expired": 0, "failed": 0}),
            "{:?}",
            db.kind
        );
        let mails = sink.wait_for(2, WAIT).await;
        let pre = mail_about(&mails, PATIENT_EMAIL, "safety check before today's dose");
        assert_eq!(pre.len(), 1, "{:?}", mails.iter().map(|m| m.subject()).collect::<Vec<_>>());
        let first = link_in(pre[0], &app);

        // Until the clinic sets its intervals the page says not to take the dose.
        let (status, html) = page(&app, &first).await;
        assert_eq!(status, 200);
        assert!(html.contains("Do not take your dose yet") && html.contains("not finished setting up"), "{html}");
        let r = app
            .put_json("/api/v1/settings/home-pre-dose", &json!({"alcohol_free_hours": 24, "sedative_free_hours": 12}))
            .await;
        assert_eq!(r.status(), 200);
        let (_, html) = page(&app, &first).await;
        assert!(html.contains("in the last 24 hours") && html.contains(r#"name="systolic""#), "{html}");

        // The first supply needs nothing before it.
        sign_in(&app, &clock, nurse).await;
        assert_eq!(dispense(&app, &c).await.status(), StatusCode::CREATED);

        // High blood pressure: refused with the reason, the link used, the clinician alerted.
        let (status, html) = submit(&app, &first, &screen("150", "95")).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("Do not take your dose today") && html.contains("blood pressure"), "{html}");
        assert_eq!(page(&app, &first).await.0, StatusCode::GONE);
        assert_eq!(sink.messages().len(), 2, "no sitter link for a refused screen");
        sign_in(&app, &clock, dr).await;
        let alerts = open_alerts(&app, &c).await;
        assert_eq!(alerts.iter().filter(|a| a["rule"] == "home_pre_dose_refused").count(), 1, "{alerts:?}");
        let p = programme(&app, &c).await;
        assert_eq!(p["screens"][0]["outcome"], "refused", "{p}");
        assert_eq!(p["unreviewed_refusals"], 1);
        let screen_id = p["screens"][0]["id"].as_i64().unwrap();

        // A new supply is held while the refusal is unreviewed.
        sign_in(&app, &clock, nurse).await;
        let r = dispense(&app, &c).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let detail = r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains("refused pre-dose screen"), "{detail}");
        sign_in(&app, &clock, dr).await;
        let r = app
            .post_json(
                &format!("/api/v1/pre-dose-screens/{screen_id}/review"),
                &json!({"note": "Phoned; BP rechecked 132/84; dose moved to tomorrow"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        // The review closes the refusal's alert, with the review's note.
        let alerts = open_alerts(&app, &c).await;
        assert!(!alerts.iter().any(|a| a["rule"] == "home_pre_dose_refused"), "still open: {alerts:?}");
        // The chart shows what was done about it, and how to reach the sitter.
        let chart = app.get(&format!("/patients/{}", c.patient.0)).await.text().await.unwrap();
        assert!(chart.contains("Recently acknowledged alerts"), "{chart}");
        assert!(chart.contains("Refused pre-dose screen reviewed: Phoned; BP rechecked 132/84"), "{chart}");
        assert!(chart.contains(SITTER_EMAIL), "the sitter's contact is on the chart");
        // Who dispensed the latest supply, and when.
        let p = programme(&app, &c).await;
        assert_eq!(p["last_dispensed_by"].as_str(), Some(nurse.username.as_str()), "{p}");
        assert!(chart.contains("(1 supply); the latest on "), "{chart}");
        assert!(chart.contains(&format!(" by {}", nurse.username)), "{chart}");

        // Tomorrow: today's PHQ-9 was missed, tomorrow's links go out.
        clock.advance(Duration::days(1));
        sign_in(&app, &clock, admin).await;
        let r = app.post_json("/api/v1/checkins/sweep", &json!({})).await;
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"issued": 2, "sent": 2, "expired": 1, "failed": 0}),
            "{:?}",
            db.kind
        );
        let mails = sink.wait_for(4, WAIT).await;
        let pre = mail_about(&mails, PATIENT_EMAIL, "safety check before today's dose");
        assert_eq!(pre.len(), 2);
        let second = link_in(pre[1], &app);
        let phq = mail_about(&mails, PATIENT_EMAIL, "your check-in");
        assert_eq!(phq.len(), 2);
        let phq9 = link_in(phq[1], &app);
        sign_in(&app, &clock, dr).await;
        let alerts = open_alerts(&app, &c).await;
        assert_eq!(alerts.iter().filter(|a| a["rule"] == "home_checkin_missed").count(), 1, "{alerts:?}");
        let p = programme(&app, &c).await;
        assert_eq!(p["missed_checkins"], 1, "{p}");

        // The patient answers today's check-in: up to date again.
        assert_eq!(submit(&app, &phq9, &phq9_form(["0"; 9], "finish")).await.0, 200);
        let p = programme(&app, &c).await;
        assert_eq!(p["missed_checkins"], 0, "a later check-in done clears the missed one: {p}");

        // A good screen: the sitter gets their own link; the dose waits for them.
        let (status, html) = submit(&app, &second, &screen("128", "82")).await;
        assert_eq!(status, 200, "{html}");
        assert!(
            html.contains("Waiting for Sam to confirm") && html.contains("We have sent Sam their own link"),
            "{html}"
        );
        let mails = sink.wait_for(5, WAIT).await;
        let to_sitter = mail_about(&mails, SITTER_EMAIL, "confirm you are with your friend");
        assert_eq!(
            to_sitter.len(),
            1,
            "{:?}",
            mails.iter().map(|m| (m.recipients.clone(), m.subject())).collect::<Vec<_>>()
        );
        assert!(!to_sitter[0].body_text().contains("Rowan"));
        let sitter = link_in(to_sitter[0], &app);
        let (_, html) = page(&app, &second).await;
        assert!(html.contains("Waiting for Sam") && !html.contains("You can take your dose now"), "{html}");
        let (status, html) = submit(&app, &second, &[("action", "log"), ("units", "1"), ("units_left", "9")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no log before the sitter confirms: {html}");

        // The sitter confirms from their own link, once.
        let (status, html) = page(&app, &sitter).await;
        assert_eq!(status, 200);
        assert!(html.contains("Please confirm you are there"), "{html}");
        let (status, html) = submit(&app, &sitter, &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(html.contains("Tick the box"), "{html}");
        let (status, html) = submit(&app, &sitter, &[("present", "on")]).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("Your confirmation is recorded"), "{html}");
        assert_eq!(page(&app, &sitter).await.0, StatusCode::GONE);

        // Now the patient may take it, and logs it with the count left.
        let (_, html) = page(&app, &second).await;
        assert!(html.contains("You can take your dose now"), "{html}");
        let (status, html) = submit(&app, &second, &[("action", "log"), ("units", "1"), ("units_left", "9")]).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("your dose is logged"), "{html}");
        // Emergency services first for a medical emergency, the crisis line for a
        // mental-health crisis (it used to offer the crisis line first for both).
        assert!(
            html.contains("cannot stay awake), call your local emergency number now. If you feel unsafe"),
            "{html}"
        );
        assert_eq!(page(&app, &second).await.0, StatusCode::GONE);

        let p = programme(&app, &c).await;
        assert_eq!(p["doses_logged"], 1, "{p}");
        let rec = &p["reconciliation"];
        assert_eq!((rec["dispensed_units"].as_u64(), rec["logged_units"].as_u64()), (Some(10), Some(1)), "{rec}");
        assert_eq!(rec["expected_on_hand_units"], 9);
        assert_eq!(rec["counted_on_hand_units"], 9);
        assert_eq!(p["supply_hold"], json!([]), "{p}");
        assert_eq!(p["screens"][0]["outcome"], "cleared");
        assert!(p["screens"][0]["sitter_confirmed_at"].is_string());
        let o = overview(s, &c).await;
        let second_id = o.links.iter().find(|l| l.result_kind.as_deref() == Some("home_dose_log")).unwrap().id;
        let ev = events_of(&o, second_id);
        for want in ["issued", "reminder_sent", "opened", "screen_awaiting_sitter", "screen_cleared", "completed"] {
            assert!(ev.iter().any(|e| e == want), "{want} missing from {ev:?}");
        }

        // Up to date: the next supply may go out.
        sign_in(&app, &clock, nurse).await;
        let r = dispense(&app, &c).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    }
}

#[tokio::test]
async fn a_dose_log_that_does_not_reconcile_holds_the_supply() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let c = clinic(s, Route::SublingualRacemic, T0.date(), &[T0 + Duration::hours(1)]).await;
        let sink = SmtpSink::start().await;
        let app = spawn_app_with(s.clone(), |url| smtp_reminders(&sink, url)).await;
        let mails = set_up_and_sweep(&app, &clock, &c, &sink).await;
        let link = link_in(mail_about(&mails, PATIENT_EMAIL, "safety check")[0], &app);
        sign_in(&app, &clock, c.login_as(Role::Nurse)).await;
        assert_eq!(dispense(&app, &c).await.status(), StatusCode::CREATED);
        screen_and_sitter_confirms(&app, &sink, &link).await;
        // One taken but only 5 left of 10: 4 unaccounted for.
        let (status, html) = submit(&app, &link, &[("action", "log"), ("units", "1"), ("units_left", "5")]).await;
        assert_eq!(status, 200, "{html}");

        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        let alerts = open_alerts(&app, &c).await;
        assert_eq!(alerts.iter().filter(|a| a["rule"] == "home_dose_log_unreconciled").count(), 1, "{alerts:?}");
        sign_in(&app, &clock, c.login_as(Role::Nurse)).await;
        let r = dispense(&app, &c).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let detail = r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains("does not reconcile"), "{detail}");
    }
}

#[tokio::test]
async fn a_sitter_who_never_confirms_is_reported_once_as_the_patients_missed_screen() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::OralRacemic, T0.date(), &[T0 + Duration::hours(1)]).await;
        let sink = SmtpSink::start().await;
        let app = spawn_app_with(s.clone(), |url| smtp_reminders(&sink, url)).await;
        let mails = set_up_and_sweep(&app, &clock, &c, &sink).await;
        let link = link_in(mail_about(&mails, PATIENT_EMAIL, "safety check")[0], &app);
        screen_passes(&app, &sink, &link).await;

        // The window closes with the sitter silent and the PHQ-9 before the dose unanswered.
        clock.advance(Duration::hours(6));
        sign_in(&app, &clock, c.login_as(Role::Administrator)).await;
        let r = app.post_json("/api/v1/checkins/sweep", &json!({})).await;
        assert_eq!(r.json::<Value>().await.unwrap()["expired"], 3, "{:?}", db.kind);
        assert_eq!(page(&app, &link).await.0, StatusCode::GONE);
        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        let missed: Vec<String> = open_alerts(&app, &c)
            .await
            .iter()
            .filter(|a| a["rule"] == "home_checkin_missed")
            .map(|a| a["message"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(missed.len(), 2, "the PHQ-9 and the pre-dose screen, not the sitter's link: {missed:?}");
        assert!(missed.iter().all(|m| !m.contains("sitter")), "{missed:?}");
        assert_eq!(programme(&app, &c).await["missed_checkins"], 2);
    }
}

#[tokio::test]
async fn a_sitter_link_that_cannot_be_sent_tells_the_patient_to_contact_the_clinic() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::OralRacemic, T0.date(), &[T0 + Duration::hours(1)]).await;
        let sink = SmtpSink::start().await;
        // E-mail only: no text-message provider is configured.
        let app = spawn_app_with(s.clone(), |url| smtp_reminders(&sink, url)).await;
        let mails = set_up_and_sweep(&app, &clock, &c, &sink).await;
        let link = link_in(mail_about(&mails, PATIENT_EMAIL, "safety check")[0], &app);

        let mut form = screen("120", "80");
        form.retain(|(k, _)| *k != "sitter_contact");
        form.push(("sitter_contact", "+1 555 010 0199"));
        let (status, html) = submit(&app, &link, &form).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("We could not send Sam their link") && html.contains("contact the clinic"), "{html}");
        assert!(!html.contains("has their own link") && !html.contains("We have sent Sam"), "{html}");
        let o = overview(s, &c).await;
        let sitter = o.links.iter().find(|l| l.form == "sitter_confirmation").expect("sitter link issued");
        assert!(events_of(&o, sitter.id).contains(&"reminder_failed".to_string()), "{:?}", o.events);
        assert_eq!(sink.messages().len(), 2);

        // Coming back to the page ("Check again") still says so: it is read from the link.
        let (status, html) = page(&app, &link).await;
        assert_eq!(status, 200);
        assert!(html.contains("We could not send Sam their link"), "{html}");
        assert!(!html.contains("You can take your dose now"), "{html}");
        // And the clinic is told to call the patient.
        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        let alerts = open_alerts(&app, &c).await;
        let not_reached: Vec<_> = alerts.iter().filter(|a| a["rule"] == "home_sitter_not_reached").collect();
        assert_eq!(not_reached.len(), 1, "{alerts:?}");
        assert_eq!(not_reached[0]["level"], "warning", "as the shipped rules say");
        assert_eq!(not_reached[0]["level"], BetweenSessionAlerts::builtin().home_sitter_not_reached.severity.as_str());
        assert!(not_reached[0]["message"].as_str().unwrap().contains("call them"), "{not_reached:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Regression tests from the review of the at-home programme.

/// A screen that passes at `link`; returns the sitter's link from the reminder they were sent.
async fn screen_passes(app: &TestApp, sink: &SmtpSink, link: &str) -> String {
    assert_eq!(submit(app, link, &screen("120", "80")).await.0, 200);
    let mails = sink.wait_for(3, WAIT).await;
    link_in(mail_about(&mails, SITTER_EMAIL, "confirm")[0], app)
}

/// A screen that passes at `link`, then the sitter confirms from the link they were sent.
async fn screen_and_sitter_confirms(app: &TestApp, sink: &SmtpSink, link: &str) {
    let sitter = screen_passes(app, sink, link).await;
    assert_eq!(submit(app, &sitter, &[("present", "on")]).await.0, 200);
}

/// Sets the clinic's alcohol- and sedative-free intervals, sweeps, and returns the reminders
/// (the pre-dose screen and the PHQ-9 before the dose).
async fn set_up_and_sweep(app: &TestApp, clock: &ManualClock, c: &Clinic, sink: &SmtpSink) -> Vec<ReceivedMail> {
    sign_in(app, clock, c.login_as(Role::Administrator)).await;
    let r = app
        .put_json("/api/v1/settings/home-pre-dose", &json!({"alcohol_free_hours": 24, "sedative_free_hours": 12}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.post_json("/api/v1/checkins/sweep", &json!({})).await.status(), 200);
    sink.wait_for(2, WAIT).await
}

#[tokio::test]
async fn an_open_urgent_alert_refuses_the_home_dose_until_a_clinician_records_what_was_done() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let doses = [T0 + Duration::hours(1), T0 + Duration::days(1) + Duration::hours(1)];
        let c = clinic(s, Route::OralRacemic, T0.date(), &doses).await;
        let sink = SmtpSink::start().await;
        let app = spawn_app_with(s.clone(), |url| smtp_reminders(&sink, url)).await;
        let mails = set_up_and_sweep(&app, &clock, &c, &sink).await;
        let first = link_in(mail_about(&mails, PATIENT_EMAIL, "safety check before today's dose")[0], &app);
        let phq9 = link_in(mail_about(&mails, PATIENT_EMAIL, "your check-in")[0], &app);

        // Item 9 positive from the phone: an urgent alert is open.
        let (status, html) = submit(&app, &phq9, &phq9_form(["1"; 9], "finish")).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("Please read this first"), "{html}");

        // Every other answer is fine, yet the dose is refused, and no sitter is asked.
        let refusal = home_dosing::open_urgent_alert_refusal(PreDoseRules::builtin());
        assert_eq!(refusal.code, "open_urgent_alert");
        assert_eq!(refusal.source.section, "§4.3");
        let (status, html) = submit(&app, &first, &screen("120", "80")).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("Do not take your dose today") && html.contains(&refusal.reason), "{html}");
        assert!(!html.contains("Waiting for Sam"), "{html}");
        assert_eq!(sink.messages().len(), 2, "no sitter link while the alert is open");
        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        let p = programme(&app, &c).await;
        assert_eq!(p["screens"][0]["outcome"], "refused", "{:?}: {p}", db.kind);
        assert_eq!(p["screens"][0]["refusals"], json!([refusal.reason]), "the only rule that failed: {p}");

        // A clinician records what was done; the next screen can clear.
        let urgent: Vec<Value> = open_alerts(&app, &c).await.into_iter().filter(|a| a["level"] == "urgent").collect();
        assert_eq!(urgent.len(), 1, "{urgent:?}");
        let r = app
            .post_json(
                &format!("/api/v1/alerts/{}/acknowledge", urgent[0]["id"]),
                &json!({"note": "Phoned; safe, safety plan reviewed; home dosing may resume"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        clock.advance(Duration::days(1));
        sign_in(&app, &clock, c.login_as(Role::Administrator)).await;
        assert_eq!(app.post_json("/api/v1/checkins/sweep", &json!({})).await.status(), 200);
        let mails = sink.wait_for(4, WAIT).await;
        let pre = mail_about(&mails, PATIENT_EMAIL, "safety check before today's dose");
        assert_eq!(pre.len(), 2);
        let second = link_in(pre[1], &app);
        let (status, html) = submit(&app, &second, &screen("120", "80")).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("Waiting for Sam to confirm") && !html.contains(&refusal.reason), "{html}");
    }
}

#[tokio::test]
async fn a_sitters_link_is_never_reissued_to_the_patient() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::OralRacemic, T0.date(), &[T0 + Duration::hours(1)]).await;
        let sink = SmtpSink::start().await;
        let app = spawn_app_with(s.clone(), |url| smtp_reminders(&sink, url)).await;
        let mails = set_up_and_sweep(&app, &clock, &c, &sink).await;
        let link = link_in(mail_about(&mails, PATIENT_EMAIL, "safety check")[0], &app);
        let sitter_path = screen_passes(&app, &sink, &link).await;
        let sitter = overview(s, &c).await.links.into_iter().find(|l| l.form == "sitter_confirmation").unwrap();

        sign_in(&app, &clock, c.login_as(Role::Nurse)).await;
        let r = app.post_json(&format!("/api/v1/checkin-links/{}/reissue", sitter.id), &json!({"send": true})).await;
        assert_eq!(r.status(), StatusCode::CONFLICT, "{:?}", db.kind);
        let detail = r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains("sitter"), "{detail}");
        assert_eq!(sink.messages().len(), 3, "nothing sent to the patient");
        assert!(!events_of(&overview(s, &c).await, sitter.id).contains(&"reissued".to_string()));
        assert_eq!(page(&app, &sitter_path).await.0, 200, "the sitter's own link still works");
    }
}

async fn count(s: &keta_store::Store, sql: &'static str) -> i64 {
    keta_store::testing::read(s, move |c| c.query_opt(sql, &[])?.unwrap().i64("n")).await.unwrap()
}

#[tokio::test]
async fn a_missed_at_home_check_in_raises_one_alert_when_its_expiry_is_noticed_twice() {
    // The links sent on demand (the weekly check-ins the sweep issues meanwhile are not counted).
    const MISSED: &str =
        "SELECT count(*) AS n FROM alerts WHERE rule = 'home_checkin_missed' AND message LIKE '%(on_demand:%'";
    const EXPIRED: &str = "SELECT count(*) AS n FROM checkin_events e JOIN checkin_links l ON l.id = e.link_id
                           WHERE e.event = 'expired' AND l.item_key LIKE 'on_demand:%'";
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::OralRacemic, T0.date(), &[]).await;
        let app = keta_testkit::spawn_app(s.clone()).await;
        let dr = prescriber(&[c.site]);
        // Only the links sent on demand: no weekly check-ins expiring in the same sweeps.
        let weekly = ["phq9_weekly", "gad7_weekly", "urinary_monthly"].map(String::from).to_vec();
        let o = ScheduleOverride { remove: weekly, upsert: vec![], reason: "Scores taken in clinic".into() };
        s.set_checkin_override(&dr, c.course, o).await.expect("override");
        let issue = async || {
            clock.advance(Duration::seconds(1)); // one on-demand link per form per millisecond
            s.issue_link(&dr, c.patient, Some(c.course), "phq9".into()).await.expect("link").token
        };

        // A page visit notices the expiry first; the sweep after it records nothing more.
        let token = issue().await;
        clock.advance(Duration::hours(73));
        let (status, html) = page(&app, &format!("/c/{token}")).await;
        assert_eq!(status, StatusCode::GONE, "{html}");
        assert_eq!(count(s, MISSED).await, 1, "{:?}", db.kind);
        s.sweep_checkins().await.unwrap();
        assert_eq!((count(s, MISSED).await, count(s, EXPIRED).await), (1, 1), "{:?}", db.kind);

        // The sweep and two visits to each of several links expiring together, all at the same
        // moment (PostgreSQL runs them side by side): the sweep records each expiry in its own
        // transaction, so nothing deadlocks and nothing is counted twice.
        let mut total = 1;
        for _ in 0..7 {
            let tokens = [issue().await, issue().await, issue().await];
            clock.advance(Duration::hours(73));
            let visits = futures::future::join_all(tokens.iter().flat_map(|t| [s.open_link(t), s.open_link(t)]));
            let (swept, opened) = tokio::join!(s.sweep_checkins(), visits);
            assert!(swept.is_ok() && opened.iter().all(Result::is_ok), "{:?}", db.kind);
            total += 3;
        }
        assert_eq!(count(s, MISSED).await, total, "one alert per missed check-in: {:?}", db.kind);
        assert_eq!(count(s, EXPIRED).await, total, "one expiry per link: {:?}", db.kind);
    }
}

#[tokio::test]
async fn a_dose_logged_above_the_plan_raises_an_urgent_alert_and_the_page_shows_the_planned_dose() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let c = clinic(s, Route::SublingualRacemic, T0.date(), &[]).await;
        let dr = prescriber(&[c.site]);
        s.create_session(
            &dr,
            c.course,
            keta_domain::session::NewSession {
                scheduled_for: T0 + Duration::hours(1),
                chair_id: None,
                planned_dose_mg: Some(keta_domain::units::Milligrams(100.0)),
            },
        )
        .await
        .expect("session");
        let sink = SmtpSink::start().await;
        let app = spawn_app_with(s.clone(), |url| smtp_reminders(&sink, url)).await;
        let mails = set_up_and_sweep(&app, &clock, &c, &sink).await;
        let link = link_in(mail_about(&mails, PATIENT_EMAIL, "safety check")[0], &app);
        sign_in(&app, &clock, c.login_as(Role::Nurse)).await;
        assert_eq!(dispense(&app, &c).await.status(), StatusCode::CREATED); // 10 x 100 mg
        // The patient cannot name themselves as the sitter: refused, nothing stored.
        let mut own = screen("120", "80");
        own.retain(|(k, _)| *k != "sitter_contact");
        own.push(("sitter_contact", PATIENT_EMAIL));
        let (status, html) = submit(&app, &link, &own).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(html.contains("this is your own address or number"), "{html}");
        assert_eq!(sink.messages().len(), 2, "no sitter link went out");
        screen_and_sitter_confirms(&app, &sink, &link).await;
        let (_, html) = page(&app, &link).await;
        assert!(
            html.contains("Your planned dose today is 100 mg: 1 of your 100 mg tablets or troches."),
            "the patient is told the planned dose before logging: {html}"
        );

        // Two taken instead of one; the count is honest, so the log reconciles.
        let (status, html) = submit(&app, &link, &[("action", "log"), ("units", "2"), ("units_left", "8")]).await;
        assert_eq!(status, 200, "{html}");
        // Not a plain thank-you: what was taken against the plan, what to do, and
        // that the clinic was told.
        assert!(html.contains("more than planned") && html.contains("You logged 200 mg"), "{html}");
        assert!(html.contains("Do not take any more today") && html.contains("Your care team has been told"), "{html}");
        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        let alerts = open_alerts(&app, &c).await;
        let more: Vec<_> = alerts.iter().filter(|a| a["rule"] == "home_dose_more_than_planned").collect();
        assert_eq!(more.len(), 1, "{alerts:?}");
        assert_eq!(more[0]["level"], "urgent", "as the shipped rules say");
        assert_eq!(more[0]["level"], BetweenSessionAlerts::builtin().home_dose_more_than_planned.severity.as_str());
        let msg = more[0]["message"].as_str().unwrap();
        assert!(msg.contains("200 mg") && msg.contains("100 mg"), "{msg}");
        assert!(!alerts.iter().any(|a| a["rule"] == "home_dose_log_unreconciled"), "{alerts:?}");
        let p = programme(&app, &c).await;
        assert_eq!(p["reconciliation"]["issues"], json!([]), "{p}");
        // While that urgent alert is open no new supply goes out.
        let hold = p["supply_hold"].as_array().unwrap();
        assert!(hold.iter().any(|h| h.as_str().unwrap().contains("urgent alert")), "{p}");
        sign_in(&app, &clock, c.login_as(Role::Nurse)).await;
        assert_eq!(dispense(&app, &c).await.status(), StatusCode::CONFLICT);
    }
}
