//! Between sessions: check-in links end to end over HTTP, on both backends. A reminder
//! goes through the local SMTP sink, the patient opens the link with no account, answers (or
//! saves and finishes later), and the care team sees the response, the link's events, the
//! audit trail, safety alerts and the relapse watch.

use std::time::Duration as StdDuration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use keta_domain::access::Role;
use keta_domain::course::{NewCourse, Route};
use keta_domain::ids::{CourseId, PatientId, SiteId};
use keta_domain::patient::NewPatient;
use keta_domain::records::{CompletedBy, NewQuestionnaireResponse};
use keta_domain::session::{NewSession, SessionAction};
use keta_store::accounts::NewUser;
use keta_store::checkins::{CheckinOverview, HOME_PRE_DOSE_SETTINGS, LinkRecord};
use keta_store::{Actor, Store, params};
use keta_testkit::smtp_sink::{ReceivedMail, SmtpSink};
use keta_testkit::{
    ManualClock, StaffLogin, TEST_PASSWORD, TestApp, TestDb, seed_staff, smtp_reminders, spawn_app, spawn_app_with,
};
use keta_web::reminders::{Reminders, deliver, sweep_and_send};

use crate::fixtures::*;

pub(crate) const WAIT: StdDuration = StdDuration::from_secs(10);
pub(crate) const PATIENT_EMAIL: &str = "rowan.patient@example.org";

/// A site with one account per role, and a patient (with an e-mail address) on a course of
/// `route` with sessions at `sessions`.
pub(crate) struct Clinic {
    pub site: SiteId,
    pub patient: PatientId,
    pub course: CourseId,
    pub staff: Vec<StaffLogin>,
}

impl Clinic {
    pub fn login_as(&self, role: Role) -> &StaffLogin {
        self.staff.iter().find(|s| s.role == role).expect("one account per role")
    }
}

pub(crate) async fn clinic(s: &Store, route: Route, start: time::Date, sessions: &[OffsetDateTime]) -> Clinic {
    let site = site(s, "A").await;
    let staff = seed_staff(s, &[site]).await;
    let dr = prescriber(&[site]);
    let patient = s
        .create_patient(
            &keta_store::Actor::system(),
            keta_domain::patient::NewPatient { email: Some(PATIENT_EMAIL.into()), ..new_patient(site, "A-0601") },
        )
        .await
        .expect("patient")
        .id;
    let course =
        s.create_course(&dr, patient, NewCourse { start_date: start, ..course(route) }).await.expect("course").id;
    for &at in sessions {
        s.create_session(&dr, course, NewSession { scheduled_for: at, chair_id: None, planned_dose_mg: None })
            .await
            .expect("session");
    }
    Clinic { site, patient, course, staff }
}

/// Signs `who` in. Each sign-in needs a TOTP code from a new 30-second step (a code is never
/// accepted twice), so the clock moves on first.
pub(crate) async fn sign_in(app: &TestApp, clock: &ManualClock, who: &StaffLogin) {
    clock.advance(Duration::seconds(31));
    assert_eq!(app.login(who, clock.now()).await.status(), 200, "{} signs in", who.username);
}

/// The `/c/{token}` path of the single link in a reminder, checked to point at `app`.
pub(crate) fn link_in(mail: &ReceivedMail, app: &TestApp) -> String {
    let body = mail.body_text();
    let base = app.url("/c/");
    let start = body.find(&base).unwrap_or_else(|| panic!("no link to {base} in:\n{body}"));
    let url: String = body[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    assert_eq!(body.matches("/c/").count(), 1, "one link per reminder:\n{body}");
    let path = url.strip_prefix(&app.url("")).expect("same origin").to_string();
    assert!(keta_domain::patient_links::is_well_formed_token(&path["/c/".len()..]), "{path}");
    path
}

/// A page as a phone sees it: no cookies, no CSRF token.
pub(crate) async fn page(app: &TestApp, path: &str) -> (StatusCode, String) {
    let r = app.client.get(app.url(path)).send().await.expect("GET");
    (r.status(), r.text().await.expect("body"))
}

pub(crate) async fn submit(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let r = app.client.post(app.url(path)).form(form).send().await.expect("POST");
    (r.status(), r.text().await.expect("body"))
}

/// PHQ-9 answers as the phone form sends them (`q1`..`q9`).
pub(crate) fn phq9_form(answers: [&'static str; 9], action: &'static str) -> Vec<(&'static str, &'static str)> {
    const NAMES: [&str; 9] = ["q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9"];
    let mut v: Vec<(&str, &str)> = NAMES.iter().copied().zip(answers).filter(|(_, a)| !a.is_empty()).collect();
    v.push(("action", action));
    v
}

pub(crate) async fn overview(s: &Store, c: &Clinic) -> CheckinOverview {
    s.checkin_overview(&prescriber(&[c.site]), c.patient).await.expect("overview")
}

/// A link's events, oldest first.
pub(crate) fn events_of(o: &CheckinOverview, link: i64) -> Vec<String> {
    let mut v: Vec<String> = o.events.iter().filter(|e| e.link_id == link).map(|e| e.event.clone()).collect();
    v.reverse();
    v
}

/// The patient's open alerts over the API (as the signed-in clinician).
pub(crate) async fn open_alerts(app: &TestApp, c: &Clinic) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/alerts?patient_id={}", c.patient.0)).await;
    assert_eq!(r.status(), 200);
    r.json::<Vec<Value>>().await.unwrap()
}

/// A link sent on demand by the care team. The clock moves on a second first: a second link for
/// the same form in the same millisecond is refused as a double submission.
async fn issue(s: &Store, clock: &ManualClock, c: &Clinic, form: &str) -> (i64, String) {
    clock.advance(Duration::seconds(1));
    let l = s.issue_link(&prescriber(&[c.site]), c.patient, Some(c.course), form.into()).await.expect("link");
    (l.link.id, format!("/c/{}", l.token))
}

async fn response_count(s: &Store) -> i64 {
    keta_store::testing::read(s, |c| {
        c.query_opt("SELECT count(*) AS n FROM questionnaire_responses", &[])?.unwrap().i64("n")
    })
    .await
    .unwrap()
}

/// A session 12 hours ahead: the PHQ-9 before it is due now, and nothing else is.
fn in_clinic_session() -> OffsetDateTime {
    T0 + Duration::hours(12)
}

#[tokio::test]
async fn a_reminder_goes_through_smtp_and_the_patient_completes_the_check_in_from_its_link() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[in_clinic_session()]).await;
        let sink = SmtpSink::start().await;
        let app = spawn_app_with(s.clone(), |url| smtp_reminders(&sink, url)).await;

        // The sweep (as the server runs it every few minutes) issues the due link and mails it.
        sign_in(&app, &clock, c.login_as(Role::Administrator)).await;
        let r = app.post_json("/api/v1/checkins/sweep", &json!({})).await;
        assert_eq!(r.status(), 200, "{:?}", db.kind);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"issued": 1, "sent": 1, "expired": 0, "failed": 0}),
            "{:?}",
            db.kind
        );
        let mails = sink.wait_for(1, WAIT).await;
        assert_eq!(mails.len(), 1);
        let mail = &mails[0];
        assert_eq!(mail.recipients, vec![PATIENT_EMAIL.to_string()]);
        assert!(
            mail.subject().is_some_and(|s| s.contains("Clinic A") && s.contains("check-in")),
            "{:?}",
            mail.subject()
        );
        let body = mail.body_text();
        // Nothing identifying: the message may be read by someone else.
        assert!(!body.contains("Rowan") && !body.contains("A-0601"), "{body}");
        assert!(body.contains("works once"), "{body}");
        // The patient's next booked session, in the clinic's time.
        assert!(body.contains("Your next session at Clinic A: "), "{body}");
        let path = link_in(mail, &app);
        // A second sweep issues nothing new: one link per occurrence.
        let r = app.post_json("/api/v1/checkins/sweep", &json!({})).await;
        assert_eq!(r.json::<Value>().await.unwrap()["issued"], 0);

        // The phone opens it with no account.
        let (status, html) = page(&app, &path).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("PHQ-9") && html.contains(r#"name="q1""#) && html.contains(r#"name="q9""#), "{html}");
        assert!(!html.contains("Rowan") && !html.contains("A-0601"), "the page names no one before answering");
        let (status, html) =
            submit(&app, &path, &phq9_form(["1", "0", "0", "0", "0", "0", "0", "0", "0"], "finish")).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("Thank you") && html.contains("Your scores over time"), "{html}");
        assert!(!html.contains("Please read this first"), "no crisis panel without a safety answer");

        // The care team sees the response, from the patient, on the course.
        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        let r = app.get(&format!("/api/v1/patients/{}/responses", c.patient.0)).await;
        let rs: Vec<Value> = r.json().await.unwrap();
        assert_eq!(rs.len(), 1, "{rs:?}");
        assert_eq!(rs[0]["instrument"], "phq9");
        assert_eq!(rs[0]["completed_by"], "patient");
        assert_eq!(rs[0]["course_id"], c.course.0);
        assert_eq!(rs[0]["answers"][0], 1);

        // The link's life, over the API.
        let r = app.get(&format!("/api/v1/patients/{}/checkins", c.patient.0)).await;
        assert_eq!(r.status(), 200);
        let o: Value = r.json().await.unwrap();
        let link = &o["links"][0];
        assert_eq!(link["form"], "phq9");
        assert_eq!(link["result_kind"], "questionnaire_response");
        assert_eq!(link["result_id"], rs[0]["id"]);
        assert!(link["completed_at"].is_string() && link["first_opened_at"].is_string());
        assert!(link.get("token").is_none() && link.get("token_hash").is_none(), "{link}");
        let id = link["id"].as_i64().unwrap();
        let ev = events_of(&overview(s, &c).await, id);
        for want in ["issued", "reminder_sent", "opened", "completed"] {
            assert!(ev.iter().any(|e| e == want), "{want} missing from {ev:?}");
        }
        assert_eq!(ev.first().map(String::as_str), Some("issued"));
        assert_eq!(ev.last().map(String::as_str), Some("completed"));

        // The audit trail names the link as the actor for what the patient did.
        let actor = format!("patient-link:{id}");
        let rows: Vec<(String, String)> = keta_store::testing::read(s, move |c| {
            c.query("SELECT action, object_type FROM audit_log WHERE actor = $1 ORDER BY seq", params![actor])?
                .iter()
                .map(|r| Ok((r.text("action")?, r.text("object_type")?)))
                .collect()
        })
        .await
        .unwrap();
        for want in ["checkin_link", "questionnaire_response"] {
            assert!(rows.iter().any(|(_, t)| t == want), "no {want} entry by the link: {rows:?}");
        }
        assert!(s.verify_audit_chain().await.unwrap().1.is_none(), "{:?}", db.kind);

        // The care team sends a check-in on demand: the URL it is shown is the one mailed.
        let r = app
            .post_json(
                &format!("/api/v1/patients/{}/checkin-links", c.patient.0),
                &json!({"form": "gad7", "send": true}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["sent"], true);
        let mails = sink.wait_for(2, WAIT).await;
        assert_eq!(mails[1].recipients, vec![PATIENT_EMAIL.to_string()]);
        assert_eq!(v["url"].as_str().unwrap(), app.url(&link_in(&mails[1], &app)));
        let (status, html) = page(&app, &link_in(&mails[1], &app)).await;
        assert_eq!(status, 200);
        assert!(html.contains("GAD-7"), "{html}");
    }
}

#[tokio::test]
async fn a_link_works_once_and_only_inside_its_window() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let app = spawn_app(s.clone()).await;
        let zeros = phq9_form(["0"; 9], "finish");

        // Used: refused with what to do next, and a second POST stores nothing.
        let (used_id, used) = issue(s, &clock, &c, "phq9").await;
        assert_eq!(submit(&app, &used, &zeros).await.0, 200);
        let (status, html) = page(&app, &used).await;
        assert_eq!(status, StatusCode::GONE, "{html}");
        assert!(html.contains("already done") && html.contains("works once"), "{html}");
        let (status, html) = submit(&app, &used, &phq9_form(["3"; 9], "finish")).await;
        assert_eq!(status, StatusCode::GONE, "{html}");
        assert_eq!(response_count(s).await, 1, "{:?}", db.kind);
        let ev = events_of(&overview(s, &c).await, used_id);
        assert!(ev.contains(&"refused_used".to_string()), "{ev:?}");
        assert_eq!(ev.iter().filter(|e| *e == "completed").count(), 1, "{ev:?}");

        // Expired: its window (72 h for a link sent on demand) passed unanswered.
        let (late_id, late) = issue(s, &clock, &c, "phq9").await;
        let (swept_id, swept) = issue(s, &clock, &c, "gad7").await;
        clock.advance(Duration::hours(73));
        let (status, html) = page(&app, &late).await;
        assert_eq!(status, StatusCode::GONE, "{html}");
        assert!(html.contains("expired") && html.contains("new link"), "{html}");
        let (status, _) = submit(&app, &late, &zeros).await;
        assert_eq!(status, StatusCode::GONE);
        assert_eq!(response_count(s).await, 1);
        let ev = events_of(&overview(s, &c).await, late_id);
        assert_eq!(ev.iter().filter(|e| *e == "expired").count(), 1, "{ev:?}");
        assert!(ev.contains(&"refused_expired".to_string()), "{ev:?}");

        // The sweep records the expiry of links nobody opened.
        let report = s.sweep_checkins().await.unwrap();
        assert_eq!(report.expired, 1, "{:?}", db.kind);
        let o = overview(s, &c).await;
        assert!(o.links.iter().find(|l| l.id == swept_id).unwrap().expired_at.is_some());
        assert_eq!(events_of(&o, swept_id), ["issued", "expired"]);
        assert_eq!(page(&app, &swept).await.0, StatusCode::GONE);
        assert_eq!(s.sweep_checkins().await.unwrap().expired, 0, "an expiry is recorded once");

        // Unknown and malformed tokens: 404 with the helpful text, on GET and POST.
        let unknown = format!("/c/{}", "A".repeat(43));
        for path in [unknown.as_str(), "/c/abc", "/c/not-a-token-at-all%20"] {
            let (status, html) = page(&app, path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {html}");
            assert!(html.contains("could not find this check-in") && html.contains("whole link"), "{html}");
            let (status, _) = submit(&app, path, &zeros).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }
}

#[tokio::test]
async fn the_patient_can_save_and_finish_later_from_the_same_link() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let app = spawn_app(s.clone()).await;
        let (id, path) = issue(s, &clock, &c, "phq9").await;

        let (status, html) = submit(&app, &path, &phq9_form(["2", "1", "", "", "", "", "", "", ""], "save")).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("Your answers are saved"), "{html}");
        assert_eq!(response_count(s).await, 0);
        // The care team sees on the chart's check-ins that the patient began and when.
        let saved = overview(s, &c).await.links.iter().find(|l| l.id == id).unwrap().progress_saved_at;
        assert_eq!(saved, Some(clock.now()), "{:?}", db.kind);
        let staff = spawn_app(s.clone()).await;
        sign_in(&staff, &clock, c.login_as(Role::Nurse)).await;
        let chart = staff.get(&format!("/patients/{}", c.patient.0)).await.text().await.unwrap();
        assert!(chart.contains("<strong>Answers saved "), "the check-ins list says answers were saved");
        assert!(chart.contains(", not yet sent</strong>"));

        // Later, the same link shows what was saved.
        clock.advance(Duration::hours(5));
        let (status, html) = page(&app, &path).await;
        assert_eq!(status, 200);
        assert!(html.contains(r#"id="q1-2" name="q1" value="2" checked"#), "{html}");
        assert!(html.contains(r#"id="q2-1" name="q2" value="1" checked"#), "{html}");
        assert!(!html.contains(r#"name="q3" value="0" checked"#), "{html}");

        // Finishing with answers missing keeps them and names the missing ones.
        let (status, html) = submit(&app, &path, &phq9_form(["2", "1", "1", "", "", "", "", "", ""], "finish")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(html.contains(r#"class="p-q p-invalid" id="q4""#), "{html}");
        assert!(html.contains(r#"id="q3-1" name="q3" value="1" checked"#), "{html}");
        assert_eq!(response_count(s).await, 0);

        let (status, html) =
            submit(&app, &path, &phq9_form(["2", "1", "1", "0", "0", "0", "0", "0", "0"], "finish")).await;
        assert_eq!(status, 200, "{html}");
        let rs = s.list_responses(&prescriber(&[c.site]), c.patient, None).await.unwrap();
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].score.total, Some(4));
        assert_eq!(rs[0].completed_by, CompletedBy::Patient);
        let ev = events_of(&overview(s, &c).await, id);
        assert!(ev.contains(&"saved".to_string()) && ev.last().map(String::as_str) == Some("completed"), "{ev:?}");
        let done = overview(s, &c).await.links.iter().find(|l| l.id == id).unwrap().progress_saved_at;
        assert_eq!(done, None, "finished: nothing is waiting to be sent");
        let chart = staff.get(&format!("/patients/{}", c.patient.0)).await.text().await.unwrap();
        assert!(!chart.contains("not yet sent</strong>"));
    }
}

#[tokio::test]
async fn a_positive_item_9_shows_the_crisis_line_and_opens_one_urgent_alert_at_once() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let app = spawn_app(s.clone()).await;
        const INSTRUCTIONS: &str = "Call the Clinic A duty line or go to your nearest emergency department now.";
        sign_in(&app, &clock, c.login_as(Role::Administrator)).await;
        let r = app
            .put_json(
                &format!("/api/v1/sites/{}/patient-contact", c.site.0),
                &json!({"crisis_instructions": INSTRUCTIONS, "clinic_phone": "555 0100"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let (id, path) = issue(s, &clock, &c, "phq9").await;

        // Saved for later, with another answer unreadable and the rest missing: the safety
        // answer is still stored and alerted before anything else.
        let form = phq9_form(["x", "", "", "", "", "", "", "", "1"], "save");
        let (status, html) = submit(&app, &path, &form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(html.contains("Please read this first") && html.contains(INSTRUCTIONS), "{html}");
        assert!(html.contains(r#"<a href="tel:988">988</a>"#), "{html}");

        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        let alerts = open_alerts(&app, &c).await;
        let urgent: Vec<&Value> = alerts.iter().filter(|a| a["level"] == "urgent").collect();
        assert_eq!(urgent.len(), 1, "{alerts:?}");
        assert!(urgent[0]["message"].as_str().unwrap().contains("from their phone"), "{}", urgent[0]);
        let o = overview(s, &c).await;
        assert_eq!(o.safety_answers.len(), 1, "{:?}", db.kind);
        assert_eq!((o.safety_answers[0].item, o.safety_answers[0].answer), (9, 1));
        assert_eq!(o.safety_answers[0].link_id, id);
        assert_eq!(o.safety_answers[0].alert_id, urgent[0]["id"].as_i64().unwrap());
        assert_eq!(response_count(s).await, 0, "nothing else was stored");

        // Saving again, and then finishing, raise nothing new; the panel stays up.
        let (status, html) = submit(&app, &path, &phq9_form(["1", "", "", "", "", "", "", "", "1"], "save")).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("Please read this first"), "{html}");
        let (status, html) = page(&app, &path).await;
        assert_eq!(status, 200);
        assert!(html.contains("Please read this first"), "{html}");
        let (status, html) =
            submit(&app, &path, &phq9_form(["1", "1", "1", "1", "1", "1", "1", "1", "1"], "finish")).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("Please read this first") && html.contains(INSTRUCTIONS), "{html}");
        let alerts = open_alerts(&app, &c).await;
        assert_eq!(alerts.iter().filter(|a| a["level"] == "urgent").count(), 1, "{alerts:?}");
        assert_eq!(overview(s, &c).await.safety_answers.len(), 1);

        // It stays open until a clinician records what was done.
        let alert = urgent[0]["id"].as_i64().unwrap();
        let ack = format!("/api/v1/alerts/{alert}/acknowledge");
        let r = app.post_json(&ack, &json!({})).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("note"));
        let r = app.post_json(&ack, &json!({"note": "Phoned patient; safety plan reviewed"})).await;
        assert_eq!(r.status(), 200);
        assert!(open_alerts(&app, &c).await.iter().all(|a| a["level"] != "urgent"));
    }
}

/// A PHQ-9 the patient completed `days_ago` days before T0, on `course`.
async fn phq9_on_file(s: &Store, c: &Clinic, course: CourseId, days_ago: i64, answers: [i32; 9]) {
    s.submit_response(
        &prescriber(&[c.site]),
        c.patient,
        NewQuestionnaireResponse {
            instrument: "phq9".into(),
            answers: answers.map(Some).to_vec(),
            course_id: Some(course),
            session_id: None,
            completed_at: Some(T0 - Duration::days(days_ago)),
            completed_by: CompletedBy::Patient,
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_score_back_past_losing_response_flags_the_relapse_watch() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let start = (T0 - Duration::days(30)).date();
        let sessions: Vec<OffsetDateTime> = [28, 26, 24, 21, 19, 17].iter().map(|d| T0 - Duration::days(*d)).collect();
        let c = clinic(s, Route::IvRacemic, start, &sessions).await;
        for (days_ago, answers) in [(29, [3, 3, 3, 2, 2, 2, 2, 3, 0]), (10, [1, 1, 1, 1, 1, 1, 1, 1, 0])] {
            phq9_on_file(s, &c, c.course, days_ago, answers).await;
        }
        let app = spawn_app(s.clone()).await;
        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        assert!(open_alerts(&app, &c).await.is_empty(), "20 then 8 is a response, nothing to flag");

        let (_, path) = issue(s, &clock, &c, "phq9").await;
        let (status, html) =
            submit(&app, &path, &phq9_form(["2", "2", "2", "2", "2", "2", "2", "2", "0"], "finish")).await;
        assert_eq!(status, 200, "{html}");
        let alerts = open_alerts(&app, &c).await;
        let relapse: Vec<&Value> = alerts.iter().filter(|a| a["rule"] == "relapse_watch_phq9").collect();
        assert_eq!(relapse.len(), 1, "{alerts:?}");
        assert_eq!(relapse[0]["level"], "warning");
        let msg = relapse[0]["message"].as_str().unwrap();
        assert!(msg.contains("bringing the next maintenance session forward") && msg.contains("16"), "{msg}");

        // A later score that is still past the threshold reports no second relapse.
        let (_, path) = issue(s, &clock, &c, "phq9").await;
        clock.advance(Duration::days(1));
        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        let (status, _) =
            submit(&app, &path, &phq9_form(["2", "2", "2", "2", "2", "2", "2", "3", "0"], "finish")).await;
        assert_eq!(status, 200);
        let n = open_alerts(&app, &c).await.iter().filter(|a| a["rule"] == "relapse_watch_phq9").count();
        assert_eq!(n, 1, "{:?}", db.kind);
    }
}

/// A maintenance course is judged against the baseline of the induction it continues: a
/// patient in remission whose score moves by a point is not "relapsing".
#[tokio::test]
async fn the_relapse_watch_judges_maintenance_against_the_induction_baseline() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, (T0 - Duration::days(60)).date(), &[]).await;
        let dr = prescriber(&[c.site]);
        let maintenance = s
            .create_course(
                &dr,
                c.patient,
                NewCourse {
                    phase: keta_domain::course::Phase::Maintenance,
                    start_date: (T0 - Duration::days(30)).date(),
                    ..course(Route::IvRacemic)
                },
            )
            .await
            .unwrap()
            .id;
        // Induction: 20 at baseline. Maintenance: 3, then 1, both in remission.
        let scores = [(c.course, 59, [3, 3, 3, 2, 2, 2, 2, 3, 0]), (maintenance, 25, [1, 1, 1, 0, 0, 0, 0, 0, 0])];
        for (course_id, days_ago, answers) in scores.into_iter().chain([(maintenance, 10, [1, 0, 0, 0, 0, 0, 0, 0, 0])])
        {
            phq9_on_file(s, &c, course_id, days_ago, answers).await;
        }
        // From the phone: 2. Against the maintenance course's own first score (3) that would be
        // a lost response; against the induction's 20 it is still remission.
        clock.advance(Duration::seconds(1));
        let l = s.issue_link(&dr, c.patient, Some(maintenance), "phq9".into()).await.unwrap();
        let app = spawn_app(s.clone()).await;
        let (status, html) = submit(
            &app,
            &format!("/c/{}", l.token),
            &phq9_form(["1", "1", "0", "0", "0", "0", "0", "0", "0"], "finish"),
        )
        .await;
        assert_eq!(status, 200, "{html}");
        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        let alerts = open_alerts(&app, &c).await;
        assert!(!alerts.iter().any(|a| a["rule"] == "relapse_watch_phq9"), "{:?}: {alerts:?}", db.kind);
        let chart = app.get(&format!("/patients/{}", c.patient.0)).await.text().await.unwrap();
        assert!(!chart.to_lowercase().contains("relapse flag"), "the chart agrees: no flag");
    }
}

#[tokio::test]
async fn a_question_set_check_in_validates_its_answers_and_flags_haematuria() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let app = spawn_app(s.clone()).await;
        let (id, path) = issue(s, &clock, &c, "urinary_symptoms").await;

        let (status, html) = page(&app, &path).await;
        assert_eq!(status, 200);
        assert!(html.contains("Bladder check") && html.contains(r#"name="f_haematuria""#), "{html}");

        // Saved for later: the same link shows the answers again.
        let (status, html) = submit(&app, &path, &[("f_frequency", "yes"), ("action", "save")]).await;
        assert_eq!(status, 200, "{html}");
        let (_, html) = page(&app, &path).await;
        assert!(html.contains(r#"id="f_frequency-yes" name="f_frequency" value="yes" checked"#), "{html}");

        // Required answers missing: re-rendered with the errors on those questions, answers kept.
        let (status, html) = submit(&app, &path, &[("f_dysuria", "no"), ("action", "finish")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(html.contains(r#"class="p-q p-invalid" id="f_haematuria""#), "{html}");
        assert!(html.contains("this question needs an answer"), "{html}");
        assert!(!html.contains(r#"class="p-q p-invalid" id="f_dysuria""#), "{html}");
        assert!(html.contains(r#"value="no" checked"#), "{html}");

        let (status, html) = submit(
            &app,
            &path,
            &[
                ("f_dysuria", "no"),
                ("f_frequency", "no"),
                ("f_urgency", "no"),
                ("f_haematuria", "yes"),
                ("f_other_bladder_concerns", "Pink once on Monday."),
                ("action", "finish"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("Thank you"), "{html}");
        assert!(!html.contains("Please read this first"));

        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        let alerts = open_alerts(&app, &c).await;
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0]["rule"], "urinary_haematuria");
        assert_eq!(alerts[0]["level"], "warning");
        let r = app.get(&format!("/api/v1/patients/{}/home-programme", c.patient.0)).await;
        let h: Value = r.json().await.unwrap();
        let qs = &h["question_sets"];
        assert_eq!(qs.as_array().unwrap().len(), 1, "{h}");
        assert_eq!(qs[0]["set_code"], "urinary_symptoms");
        assert_eq!(qs[0]["answers"]["other_bladder_concerns"], json!("Pink once on Monday."), "{h}");
        let o = overview(s, &c).await;
        let link = o.links.iter().find(|l| l.id == id).unwrap();
        assert_eq!(link.result_kind.as_deref(), Some("question_set_response"));
        assert_eq!(page(&app, &path).await.0, StatusCode::GONE);
    }
}

#[tokio::test]
async fn tokens_are_random_base64url_kept_only_as_hashes_and_reissue_replaces_them() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let dr = prescriber(&[c.site]);
        let a = s.issue_link(&dr, c.patient, None, "phq9".into()).await.unwrap();
        let b = s.issue_link(&dr, c.patient, None, "gad7".into()).await.unwrap();
        for t in [&a.token, &b.token] {
            assert_eq!(t.len(), 43);
            assert!(t.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-' || x == b'_'), "{t}");
        }
        assert_ne!(a.token, b.token);
        let stored: Vec<String> = keta_store::testing::read(s, |c| {
            c.query("SELECT token_hash FROM checkin_links", &[])?.iter().map(|r| r.text("token_hash")).collect()
        })
        .await
        .unwrap();
        assert_eq!(stored.len(), 2);
        // Exactly the SHA-256 of each token, in hex, and never the token itself.
        let mut want =
            vec![keta_store::credentials::token_hash(&a.token), keta_store::credentials::token_hash(&b.token)];
        let mut got = stored.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        assert!(got.iter().all(|h| h.len() == 64), "SHA-256 in hex: {got:?}");
        for t in [&a.token, &b.token] {
            assert!(!stored.iter().any(|x| x.contains(t.as_str())));
        }
        // Nowhere else either: not in the audit trail nor the events.
        let (ta, tb) = (a.token.clone(), b.token.clone());
        let leaks: i64 = keta_store::testing::read(s, move |c| {
            let mut n = 0;
            for t in [ta, tb] {
                let pat = format!("%{t}%");
                for q in [
                    "SELECT count(*) AS n FROM audit_log WHERE fields LIKE $1 OR object_id LIKE $1 OR actor LIKE $1",
                    "SELECT count(*) AS n FROM checkin_events WHERE detail LIKE $1",
                ] {
                    n += c.query_opt(q, params![pat.as_str()])?.unwrap().i64("n")?;
                }
            }
            Ok(n)
        })
        .await
        .unwrap();
        assert_eq!(leaks, 0);

        // A reissued link has a new token; the old one is unknown from then on.
        let app = spawn_app(s.clone()).await;
        sign_in(&app, &clock, c.login_as(Role::Nurse)).await;
        let r = app.post_json(&format!("/api/v1/checkin-links/{}/reissue", a.link.id), &json!({})).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let url = v["url"].as_str().unwrap();
        assert!(!url.contains(&a.token));
        assert_eq!(page(&app, &format!("/c/{}", a.token)).await.0, StatusCode::NOT_FOUND);
        let new_path = &url[url.find("/c/").unwrap()..];
        assert_eq!(page(&app, new_path).await.0, 200);
    }
}

#[tokio::test]
async fn a_safety_answer_sent_after_the_form_was_shown_is_never_dropped() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let app = spawn_app(s.clone()).await;

        // The form was on the phone while the link was open; the answers arrive after it closed.
        let (late_id, late) = issue(s, &clock, &c, "phq9").await;
        assert_eq!(page(&app, &late).await.0, 200);
        clock.advance(Duration::hours(73));
        let (status, html) =
            submit(&app, &late, &phq9_form(["1", "1", "1", "1", "1", "1", "1", "1", "2"], "finish")).await;
        assert_eq!(status, StatusCode::GONE, "{html}");
        assert!(html.contains("Please read this first") && html.contains(r#"<a href="tel:988">988</a>"#), "{html}");
        assert_eq!(response_count(s).await, 0, "the check-in itself stays closed");

        // Sent twice: the second time with item 9 changed (back button, then "Send" again).
        let (done_id, done) = issue(s, &clock, &c, "phq9").await;
        assert_eq!(submit(&app, &done, &phq9_form(["0"; 9], "finish")).await.0, 200);
        let (status, html) =
            submit(&app, &done, &phq9_form(["0", "0", "0", "0", "0", "0", "0", "0", "1"], "finish")).await;
        assert_eq!(status, StatusCode::GONE, "{html}");
        assert!(html.contains("Please read this first"), "{html}");
        assert_eq!(response_count(s).await, 1);

        // A link nobody opened (its form was never shown) takes no answers at all.
        let (unseen_id, unseen) = issue(s, &clock, &c, "phq9").await;
        clock.advance(Duration::hours(73));
        let (status, html) =
            submit(&app, &unseen, &phq9_form(["0", "0", "0", "0", "0", "0", "0", "0", "3"], "finish")).await;
        assert_eq!(status, StatusCode::GONE, "{html}");

        let o = overview(s, &c).await;
        let links: Vec<i64> = o.safety_answers.iter().map(|a| a.link_id).collect();
        assert_eq!(links.len(), 2, "{:?}: {:?}", db.kind, o.safety_answers);
        assert!(links.contains(&late_id) && links.contains(&done_id) && !links.contains(&unseen_id));
        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;
        let urgent = open_alerts(&app, &c).await.into_iter().filter(|a| a["level"] == "urgent").count();
        assert_eq!(urgent, 2);
    }
}

#[tokio::test]
async fn a_reminder_the_mail_server_refuses_is_recorded_as_not_sent() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[in_clinic_session()]).await;
        let sink = SmtpSink::start().await;
        sink.refuse_recipient(PATIENT_EMAIL);
        let app = spawn_app_with(s.clone(), |url| smtp_reminders(&sink, url)).await;
        sign_in(&app, &clock, c.login_as(Role::Administrator)).await;
        let r = app.post_json("/api/v1/checkins/sweep", &json!({})).await;
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"issued": 1, "sent": 0, "expired": 0, "failed": 0}),
            "{:?}",
            db.kind
        );
        assert!(sink.messages().is_empty());
        let o = overview(s, &c).await;
        let failed: Vec<_> = o.events.iter().filter(|e| e.event == "reminder_failed").collect();
        assert_eq!(failed.len(), 1, "{:?}", o.events);
        assert!(failed[0].detail.as_deref().is_some_and(|d| !d.is_empty() && !d.contains("/c/")), "{failed:?}");
        assert!(!o.events.iter().any(|e| e.event == "reminder_sent"));
    }
}

// ---------------------------------------------------------------------------------------------
// Regression tests from the review of check-in links.

/// The sweep as the server runs it ([`sweep_and_send`]), keeping each token so a test can try
/// it: (link, token, whether the reminder went out).
async fn sweep_keeping_tokens(s: &Store, r: &Reminders) -> Vec<(LinkRecord, String, bool)> {
    let report = s.sweep_checkins().await.expect("sweep");
    let mut out = Vec::new();
    for i in &report.issued {
        let sent = deliver(s, r, i, i.email.as_deref(), i.phone.as_deref()).await;
        out.push((i.link.clone(), i.token.clone(), sent));
    }
    out
}

/// A patient with no e-mail address and no mobile number, on an IV course with a session 12 hours
/// ahead (so the PHQ-9 before it is due now).
async fn patient_without_contact(s: &Store, site: SiteId, mrn: &str) -> PatientId {
    let p = s
        .create_patient(&Actor::system(), NewPatient { email: None, phone: None, ..new_patient(site, mrn) })
        .await
        .expect("patient")
        .id;
    let dr = prescriber(&[site]);
    let co = s.create_course(&dr, p, NewCourse { start_date: T0.date(), ..course(Route::IvRacemic) }).await.unwrap().id;
    s.create_session(&dr, co, NewSession { scheduled_for: in_clinic_session(), chair_id: None, planned_dose_mg: None })
        .await
        .expect("session");
    p
}

const RETRY_DETAIL: &str = "reminder not sent yet; trying again";

fn retries(o: &CheckinOverview, link: i64) -> usize {
    o.events
        .iter()
        .filter(|e| e.link_id == link && e.event == "reissued" && e.detail.as_deref() == Some(RETRY_DETAIL))
        .count()
}

#[tokio::test]
async fn a_scheduled_reminder_the_mail_server_refused_goes_again_with_a_new_link_three_times_at_most() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[in_clinic_session()]).await;
        let sink = SmtpSink::start().await;
        sink.refuse_recipient(PATIENT_EMAIL);
        let app = spawn_app_with(s.clone(), |url| smtp_reminders(&sink, url)).await;
        let reminders = smtp_reminders(&sink, &app.url(""));

        // First try: refused by the mail server.
        let first = sweep_keeping_tokens(s, &reminders).await;
        assert_eq!(first.len(), 1, "{:?}", db.kind);
        let (link, t1, sent) = first[0].clone();
        assert!(!sent);

        // Not again before 30 minutes have passed.
        assert_eq!(sweep_and_send(s, &reminders).await.unwrap().issued, 0, "{:?}", db.kind);
        clock.advance(Duration::minutes(29));
        assert_eq!(sweep_and_send(s, &reminders).await.unwrap().issued, 0, "{:?}", db.kind);

        // Second try: the same link with a new token; the old URL stops working.
        clock.advance(Duration::minutes(1));
        let second = sweep_keeping_tokens(s, &reminders).await;
        assert_eq!(second.len(), 1, "{:?}", db.kind);
        let (again, t2, sent) = second[0].clone();
        assert_eq!(again.id, link.id, "the same check-in, not a new one");
        assert_ne!(t2, t1);
        assert!(!sent);
        assert_eq!(page(&app, &format!("/c/{t1}")).await.0, StatusCode::NOT_FOUND);
        let o = overview(s, &c).await;
        assert_eq!(o.links.len(), 1);
        assert_eq!(retries(&o, link.id), 1, "{:?}", o.events);

        // Third try, then no more.
        clock.advance(Duration::minutes(30));
        let third = sweep_and_send(s, &reminders).await.unwrap();
        assert_eq!((third.issued, third.sent), (1, 0), "{:?}", db.kind);
        assert_eq!(page(&app, &format!("/c/{t2}")).await.0, StatusCode::NOT_FOUND);
        for wait in [Duration::minutes(30), Duration::hours(3)] {
            clock.advance(wait);
            assert_eq!(sweep_and_send(s, &reminders).await.unwrap().issued, 0, "stops after 3 tries: {:?}", db.kind);
        }
        let o = overview(s, &c).await;
        let ev = events_of(&o, link.id);
        assert_eq!(ev.iter().filter(|e| *e == "reminder_failed").count(), 3, "{ev:?}");
        assert_eq!(ev.iter().filter(|e| *e == "reissued").count(), 2, "{ev:?}");
        assert_eq!(retries(&o, link.id), 2);
        assert!(o.links[0].expired_at.is_none() && o.links[0].completed_at.is_none(), "the link itself stays open");
        assert!(sink.messages().is_empty());
    }
}

#[tokio::test]
async fn the_sweep_never_replaces_a_link_that_was_opened_handed_over_by_staff_or_sent_on_demand() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let opened = patient_without_contact(s, c.site, "A-0611").await;
        let handed = patient_without_contact(s, c.site, "A-0612").await;
        let unsent = patient_without_contact(s, c.site, "A-0613").await;
        let app = spawn_app(s.clone()).await;
        let reminders = Reminders::log_only(app.url(""));

        // Nobody has a contact on file: every reminder fails.
        let issued = sweep_keeping_tokens(s, &reminders).await;
        assert_eq!(issued.len(), 3, "{:?}", db.kind);
        assert!(issued.iter().all(|(_, _, sent)| !sent));
        let of = |p: PatientId| issued.iter().find(|(l, _, _)| l.patient_id == p).cloned().expect("a link each");
        let (opened_link, opened_token, _) = of(opened);
        let (handed_link, _, _) = of(handed);
        let (unsent_link, unsent_token, _) = of(unsent);
        let on_demand = s.issue_link(&prescriber(&[c.site]), unsent, None, "gad7".into()).await.unwrap();
        assert!(!deliver(s, &reminders, &on_demand, None, None).await);
        assert!(on_demand.link.item_key.starts_with("on_demand:"), "{}", on_demand.link.item_key);

        // The patient opened one anyway (the token reached them); staff handed another over.
        assert_eq!(page(&app, &format!("/c/{opened_token}")).await.0, 200);
        let handed_over = s.reissue_link(&nurse(&[c.site]), handed_link.id).await.unwrap();

        clock.advance(Duration::minutes(31));
        let summary = sweep_and_send(s, &reminders).await.unwrap();
        assert_eq!((summary.issued, summary.sent), (1, 0), "only the unsent scheduled link: {:?}", db.kind);

        let dr = prescriber(&[c.site]);
        let o = s.checkin_overview(&dr, unsent).await.unwrap();
        assert_eq!(retries(&o, unsent_link.id), 1, "{:?}", o.events);
        assert_eq!(retries(&o, on_demand.link.id), 0, "{:?}", o.events);
        assert_eq!(page(&app, &format!("/c/{unsent_token}")).await.0, StatusCode::NOT_FOUND);
        assert_eq!(page(&app, &format!("/c/{}", on_demand.token)).await.0, 200, "the on-demand link still works");
        let o = s.checkin_overview(&dr, opened).await.unwrap();
        assert_eq!(retries(&o, opened_link.id), 0, "{:?}", o.events);
        assert_eq!(page(&app, &format!("/c/{opened_token}")).await.0, 200, "the opened link still works");
        let o = s.checkin_overview(&dr, handed).await.unwrap();
        assert_eq!(retries(&o, handed_link.id), 0, "{:?}", o.events);
        assert_eq!(page(&app, &format!("/c/{}", handed_over.token)).await.0, 200, "the link staff handed over works");
    }
}

#[tokio::test]
async fn a_before_session_check_in_belongs_to_its_session_when_an_earlier_one_is_stopped_or_one_is_added() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let dr = prescriber(&[c.site]);
        let at = |h: i64| NewSession { scheduled_for: T0 + Duration::hours(h), chair_id: None, planned_dose_mg: None };
        let first = s.create_session(&dr, c.course, at(12)).await.unwrap();
        let later = s.create_session(&dr, c.course, at(36)).await.unwrap();
        let app = spawn_app(s.clone()).await;
        let zeros = phq9_form(["0"; 9], "finish");

        // The PHQ-9 before the first session, answered.
        let r = s.sweep_checkins().await.unwrap();
        assert_eq!(r.issued.len(), 1, "{:?}", db.kind);
        let l1 = &r.issued[0];
        assert_eq!(l1.link.session_id, Some(first.id));
        assert_eq!(l1.link.item_key, format!("phq9_before_session:session:{}", first.id.0));
        assert_eq!(submit(&app, &format!("/c/{}", l1.token), &zeros).await.0, 200);

        // The first session is stopped; the later one still gets its own check-in.
        s.act_on_session(
            &nurse(&[c.site]),
            first.id,
            SessionAction::Stop { reason: "Patient unwell; rebooked".into() },
        )
        .await
        .unwrap();
        clock.advance(Duration::hours(13));
        let r = s.sweep_checkins().await.unwrap();
        assert_eq!(r.issued.len(), 1, "the later session's PHQ-9 is not taken for the stopped one's: {:?}", db.kind);
        let l2 = &r.issued[0];
        assert_eq!(l2.link.session_id, Some(later.id));
        assert_ne!(l2.link.id, l1.link.id);
        assert_eq!(page(&app, &format!("/c/{}", l2.token)).await.0, 200);
        assert_eq!(submit(&app, &format!("/c/{}", l2.token), &zeros).await.0, 200);

        // A session added before the later one gets its own link; the later one is not asked again.
        let added = s.create_session(&dr, c.course, at(35)).await.unwrap();
        let r = s.sweep_checkins().await.unwrap();
        let sessions: Vec<_> = r.issued.iter().map(|i| i.link.session_id).collect();
        assert_eq!(sessions, [Some(added.id)], "{:?}", db.kind);
        assert_eq!(page(&app, &format!("/c/{}", r.issued[0].token)).await.0, 200);
    }
}

#[tokio::test]
async fn clinic_wide_settings_need_an_administrator_of_every_site() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let other = site(s, "B").await;
        let app = spawn_app(s.clone()).await;
        let relapse = |total: i32| json!({"threshold": {"kind": "total_at_least", "total": total}});
        let home = |hours: u32| json!({"alcohol_free_hours": hours, "sedative_free_hours": 12});

        // The administrator of site A only.
        sign_in(&app, &clock, c.login_as(Role::Administrator)).await;
        let r = app.put_json("/api/v1/settings/relapse-watch", &relapse(15)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{:?}", db.kind);
        let r = app.put_json("/api/v1/settings/home-pre-dose", &home(24)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{:?}", db.kind);
        let v: Value = app.get("/api/v1/settings/relapse-watch").await.json().await.unwrap();
        assert_eq!(v["threshold"]["kind"], "loss_of_response", "unchanged: {v}");

        // An administrator of both sites, twice each (the second replaces the first).
        let secret = keta_store::credentials::base32_encode(b"keta-test-secret-all");
        s.create_user(
            &Actor::system(),
            NewUser {
                username: "all.sites".into(),
                display_name: "Administrator of every site".into(),
                role: Role::Administrator,
                password: TEST_PASSWORD.into(),
                site_ids: vec![c.site, other],
                can_break_glass: false,
                totp_secret: Some(secret.clone()),
            },
        )
        .await
        .expect("user");
        let all = StaffLogin {
            username: "all.sites".into(),
            password: TEST_PASSWORD.into(),
            totp_secret: secret,
            role: Role::Administrator,
        };
        sign_in(&app, &clock, &all).await;
        for total in [15, 12] {
            let r = app.put_json("/api/v1/settings/relapse-watch", &relapse(total)).await;
            assert_eq!(r.status(), 200, "{:?}: {}", db.kind, r.text().await.unwrap());
        }
        let v: Value = app.get("/api/v1/settings/relapse-watch").await.json().await.unwrap();
        assert_eq!(v["threshold"]["total"], 12, "{v}");
        for hours in [24, 48] {
            let r = app.put_json("/api/v1/settings/home-pre-dose", &home(hours)).await;
            assert_eq!(r.status(), 200, "{:?}: {}", db.kind, r.text().await.unwrap());
        }
        let rows: Vec<String> = keta_store::testing::read(s, |c| {
            c.query("SELECT value FROM clinic_settings WHERE key = $1", params![HOME_PRE_DOSE_SETTINGS])?
                .iter()
                .map(|r| r.text("value"))
                .collect()
        })
        .await
        .unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].contains("48"), "{rows:?}");
    }
}

#[tokio::test]
async fn a_finished_link_keeps_no_saved_answers_and_an_expired_one_says_the_care_team_can_see_it() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let app = spawn_app(s.clone()).await;

        let (id, path) = issue(s, &clock, &c, "phq9").await;
        let (status, html) = submit(&app, &path, &phq9_form(["2", "1", "", "", "", "", "", "", ""], "save")).await;
        assert_eq!(status, 200, "{html}");
        let progress = |o: &CheckinOverview| o.links.iter().find(|l| l.id == id).unwrap().progress.clone();
        assert!(progress(&overview(s, &c).await).is_some(), "saved for later");
        let (status, html) =
            submit(&app, &path, &phq9_form(["2", "1", "1", "0", "0", "0", "0", "0", "0"], "finish")).await;
        assert_eq!(status, 200, "{html}");
        assert_eq!(progress(&overview(s, &c).await), None, "{:?}: the answers live in the response now", db.kind);

        let (_, late) = issue(s, &clock, &c, "phq9").await;
        clock.advance(Duration::hours(73));
        let (status, html) = page(&app, &late).await;
        assert_eq!(status, StatusCode::GONE, "{html}");
        assert!(html.contains("Your care team can see that it was missed"), "{html}");
        assert!(!html.contains("The clinic has been told"), "{html}");
    }
}

#[tokio::test]
async fn stopping_a_session_closes_its_unanswered_check_in_quietly() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        // At home, where a missed check-in would alert the clinician.
        let c = clinic(s, Route::OralRacemic, T0.date(), &[]).await;
        let dr = prescriber(&[c.site]);
        let session = s
            .create_session(
                &dr,
                c.course,
                NewSession { scheduled_for: T0 + Duration::hours(12), chair_id: None, planned_dose_mg: None },
            )
            .await
            .unwrap();
        let app = spawn_app(s.clone()).await;
        let r = s.sweep_checkins().await.unwrap();
        assert_eq!(r.issued.len(), 1, "{:?}", db.kind);
        let link = &r.issued[0];
        assert_eq!(link.link.session_id, Some(session.id));

        s.act_on_session(
            &nurse(&[c.site]),
            session.id,
            SessionAction::Stop { reason: "Clinic closed; rebooking".into() },
        )
        .await
        .unwrap();
        clock.advance(Duration::minutes(5));
        let r = s.sweep_checkins().await.unwrap();
        assert!(r.issued.is_empty(), "{:?}", db.kind);
        // The link is closed now, not at the session's time, and nobody is told it was missed.
        let (status, _) = page(&app, &format!("/c/{}", link.token)).await;
        assert_eq!(status, StatusCode::GONE, "{:?}", db.kind);
        let superseded: i64 = keta_store::testing::read(s, |c| {
            c.query_opt("SELECT count(*) AS n FROM checkin_events WHERE event = 'superseded'", &[])?.unwrap().i64("n")
        })
        .await
        .unwrap();
        assert_eq!(superseded, 1, "{:?}", db.kind);
        clock.advance(Duration::hours(24));
        s.sweep_checkins().await.unwrap();
        let missed: i64 = keta_store::testing::read(s, |c| {
            c.query_opt("SELECT count(*) AS n FROM alerts WHERE rule = 'home_checkin_missed'", &[])?.unwrap().i64("n")
        })
        .await
        .unwrap();
        assert_eq!(missed, 0, "{:?}", db.kind);
    }
}

/// The outbox lists every patient's working link: clinical staff only, and only where the
/// reminders are kept for it (the demo); a server that logs reminders keeps none to show.
#[tokio::test]
async fn the_outbox_is_for_clinical_staff_and_only_where_reminders_are_kept() {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let s = &db.store;
    let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
    let app = spawn_app(s.clone()).await; // log-only with an outbox, as in the demo
    let menu_link = r#"<a href="/outbox""#;
    sign_in(&app, &clock, c.login_as(Role::FrontDesk)).await;
    assert_eq!(app.get("/outbox").await.status(), StatusCode::FORBIDDEN);
    assert!(!app.get("/today").await.text().await.unwrap().contains(menu_link), "front desk: no outbox in the menu");
    for role in [Role::Prescriber, Role::Nurse] {
        sign_in(&app, &clock, c.login_as(role)).await;
        assert_eq!(app.get("/outbox").await.status(), StatusCode::OK);
        // The demo's outbox is reachable from the menu on every page, not only by typing its address.
        assert!(app.get("/today").await.text().await.unwrap().contains(menu_link), "{role:?}: outbox in the menu");
    }
    let outbox = app.get("/outbox").await.text().await.unwrap();
    assert!(outbox.contains(r#"<a href="/outbox" aria-current="page""#), "the menu marks the outbox as current");

    let serving =
        spawn_app_with(s.clone(), |url| Reminders::with_delivery(keta_notify::Delivery::log_only(), url.to_string()))
            .await;
    sign_in(&serving, &clock, c.login_as(Role::Prescriber)).await;
    assert_eq!(serving.get("/outbox").await.status(), StatusCode::NOT_FOUND);
    assert!(!serving.get("/today").await.text().await.unwrap().contains(menu_link), "no outbox, no menu link");
}

#[tokio::test]
async fn the_clinics_check_in_schedules_are_readable_by_clinical_staff_only() {
    let clock = ManualClock::at(T0);
    let db = TestDb::sqlite(clock.as_clock()).await;
    let c = clinic(&db.store, Route::IvRacemic, T0.date(), &[]).await;
    let app = spawn_app(db.store.clone()).await;
    sign_in(&app, &clock, c.login_as(Role::Nurse)).await;
    let r = app.get("/checkins/schedules").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("<h1>Check-in schedules</h1>"));
    for s in keta_domain::checkins::builtin_schedules() {
        assert!(html.contains(&s.name), "{} listed", s.name);
    }
    assert!(html.contains("<th scope=\"row\">PHQ-9</th><td>24 h before each session</td>"), "{html}");
    // The chart's check-in section links to it.
    let chart = app.get(&format!("/patients/{}", c.patient.0)).await.text().await.unwrap();
    assert!(chart.contains("href=\"/checkins/schedules\""));
    sign_in(&app, &clock, c.login_as(Role::FrontDesk)).await;
    assert_eq!(app.get("/checkins/schedules").await.status(), 403);
}
