//! The chart's "Between sessions" panel through the real server, on both backends: a
//! nurse sends a check-in from the chart form and sees its URL once (never in a redirect, never
//! again), the patient answers PHQ-9 item 9 = 2 from that link, and the chart then shows the
//! safety answer first with its open alert; a new link replaces the old one.

use keta_domain::access::Role;
use keta_domain::course::Route;
use keta_testkit::{ManualClock, TestApp, TestDb, seed_staff, spawn_app};
use reqwest::{Method, StatusCode};

use crate::fixtures::*;

/// The hidden CSRF field of a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf_token\" value=\"").expect("a form with a CSRF token") + 26;
    html[at..].split('"').next().expect("token").to_string()
}

/// The token shown in the "link shown once" panel.
fn shown_token(html: &str) -> String {
    let panel = &html[html.find("id=\"issued-link\"").expect("the issued link panel")..];
    let at = panel.find("/c/").expect("a link in the panel") + 3;
    let token: String =
        panel[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    assert!(keta_domain::patient_links::is_well_formed_token(&token), "{token}");
    token
}

async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (StatusCode, Option<String>, String) {
    let r = app.request(Method::POST, path).form(form).send().await.expect("POST");
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).map(String::from);
    (r.status(), location, r.text().await.expect("body"))
}

#[tokio::test]
async fn a_nurse_sends_a_check_in_from_the_chart_and_sees_the_patients_safety_answer() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let staff = seed_staff(s, &[a]).await;
        let p = patient(s, a, "A-0611").await;
        let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
        let app = spawn_app(s.clone()).await;
        let nurse_login = staff.iter().find(|x| x.role == Role::Nurse).unwrap();
        assert_eq!(app.login(nurse_login, clock.now()).await.status(), 200);

        let chart = format!("/patients/{}", p.0);
        let html = app.get(&chart).await.text().await.unwrap();
        assert!(html.contains("Between sessions"), "the panel is on the chart");
        assert!(html.contains("none from phone check-ins"), "no safety answer yet");
        assert!(html.contains("Send a check-in now"));
        let csrf = csrf_of(&html);

        // A form that cannot go to a phone is refused next to the field.
        let (status, _, html) =
            post_form(&app, &format!("{chart}/checkins"), &[("csrf_token", &csrf), ("form", "madrs")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html.contains("cannot be sent to a phone"), "the store's reason is shown");
        assert!(!html.contains("id=\"issued-link\""));

        // Sent: the answer is the chart itself, with the URL shown once; no redirect carries it.
        let course_id = c.id.0.to_string();
        let (status, location, html) = post_form(
            &app,
            &format!("{chart}/checkins"),
            &[("csrf_token", &csrf), ("form", "phq9"), ("course_id", &course_id), ("send", "yes")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert_eq!(location, None, "the token is never put in a redirect");
        let token = shown_token(&html);
        assert_eq!(html.matches(&token).count(), 2, "the URL once (link text and its href)");
        assert!(html.contains("Shown this once"));
        assert!(html.contains("sent by text message"), "the patient has a mobile on file");
        assert!(html.contains("Waiting for the patient (1)"), "the link is listed as open");
        // Reading the chart again does not show it.
        let again = app.get(&chart).await.text().await.unwrap();
        assert!(!again.contains(&token) && !again.contains("id=\"issued-link\""), "shown once only");
        assert!(again.contains("Sent "), "the reminder is recorded on the link");

        // The patient (no account, no cookie) answers item 9 = 2 and finishes.
        let mut answers: Vec<(String, String)> = (1..=8).map(|i| (format!("q{i}"), "1".to_string())).collect();
        answers.push(("q9".into(), "2".into()));
        let r = app.client.post(app.url(&format!("/c/{token}"))).form(&answers).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Please read this first") && html.contains(r#"<a href="tel:988">988</a>"#),
            "the patient sees the crisis instructions and the site's crisis line: {html}"
        );

        // The chart shows the safety answer first, with its open alert.
        let html = app.get(&chart).await.text().await.unwrap();
        let panel = &html[html.find("id=\"between\"").unwrap()..];
        assert!(panel.contains("Safety answers from the phone (1)"), "highlighted safety answers");
        let safety = &panel[..panel.find("id=\"relapse-title\"").unwrap()];
        assert!(safety.contains("PHQ-9") && safety.contains("Item 9 ("), "the instrument and item");
        assert!(safety.contains("<strong>2 ("), "the answer");
        assert!(safety.contains("open: record what was done above"), "its alert is open");
        assert!(html.find("id=\"between\"").unwrap() < html.find("id=\"outcome-title\"").unwrap(), "before outcomes");
        assert!(html.contains("Completed and expired"), "the used link moved to the history");

        // "New link" on an open link: a new URL once; the old one stops working.
        let issued = s.issue_link(&nurse(&[a]), p, None, "gad7".into()).await.unwrap();
        let (status, location, html) = post_form(
            &app,
            &format!("{chart}/checkins/{}/reissue", issued.link.id),
            &[("csrf_token", &csrf_of(&html))],
        )
        .await;
        assert_eq!((status, location), (StatusCode::OK, None));
        let new_token = shown_token(&html);
        assert_ne!(new_token, issued.token);
        assert!(html.contains("New check-in link") && html.contains("Not sent: hand this link to the patient"));
        let old = app.client.get(app.url(&format!("/c/{}", issued.token))).send().await.unwrap();
        assert_eq!(old.status(), StatusCode::NOT_FOUND, "the old link no longer works");
        let new = app.client.get(app.url(&format!("/c/{new_token}"))).send().await.unwrap();
        assert_eq!(new.status(), StatusCode::OK);
    }
}

/// The chart form's fields for an IV course: every item of the clinic's schedule ticked at its
/// interval, except `untick`, and the given reason.
fn schedule_form(csrf: &str, untick: &str, reason: &str) -> Vec<(String, String)> {
    let base = keta_domain::checkins::schedule_for_route(Route::IvRacemic).expect("IV schedule");
    let mut form = vec![("csrf_token".to_string(), csrf.to_string()), ("reason".into(), reason.to_string())];
    for item in base.items.iter().filter(|i| i.id != untick) {
        form.push(("send".into(), item.id.clone()));
        if let keta_domain::checkins::Timing::Every { days, .. } = item.timing {
            form.push((format!("days_{}", item.id), days.to_string()));
        }
    }
    form
}

async fn post_pairs(app: &TestApp, path: &str, form: &[(String, String)]) -> (StatusCode, String) {
    let r = app.request(Method::POST, path).form(form).send().await.expect("POST");
    (r.status(), r.text().await.expect("body"))
}

async fn schedule_item_ids(app: &TestApp, course: i64) -> Vec<String> {
    let r = app.get(&format!("/api/v1/courses/{course}/checkin-schedule")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.expect("json");
    v["items"].as_array().expect("items").iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_prescriber_stops_the_weekly_gad7_from_the_chart_and_the_sweep_no_longer_sends_it() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let a = site(s, "A").await;
        let staff = seed_staff(s, &[a]).await;
        let p = patient(s, a, "A-0612").await;
        let dr = prescriber(&[a]);
        let c = s.create_course(&dr, p, course(Route::IvRacemic)).await.unwrap();
        let new_session = keta_domain::session::NewSession {
            scheduled_for: T0 + time::Duration::hours(2),
            chair_id: None,
            planned_dose_mg: None,
        };
        s.create_session(&dr, c.id, new_session).await.unwrap();
        let app = spawn_app(s.clone()).await;
        let login = |role| staff.iter().find(|x| x.role == role).unwrap();
        let chart = format!("/patients/{}", p.0);
        let action = format!("{chart}/courses/{}/checkin-schedule", c.id.0);

        // A nurse sees the schedule but may not change it.
        assert_eq!(app.login(login(Role::Nurse), clock.now()).await.status(), 200);
        let html = app.get(&chart).await.text().await.unwrap();
        assert!(html.contains("Check-in schedule: "), "the schedule is on the chart");
        assert!(
            html.contains("every 7 days at 09:00, open 72 h, until 56 days after the last session"),
            "timing in words"
        );
        assert!(!html.contains(&action) && html.contains("A prescriber changes the schedule"), "read-only");
        let (status, _) = post_pairs(&app, &action, &schedule_form(&csrf_of(&html), "gad7_weekly", "Nurse")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{:?}", db.kind);
        assert!(schedule_item_ids(&app, c.id.0).await.contains(&"gad7_weekly".to_string()), "nothing changed");

        // The prescriber's form: a blank reason and an interval of 0 are refused, nothing changes.
        assert_eq!(app.login(login(Role::Prescriber), clock.now()).await.status(), 200);
        let html = app.get(&chart).await.text().await.unwrap();
        assert!(html.contains(&action), "the form is offered");
        assert!(html.contains("name=\"send\" value=\"gad7_weekly\" checked"), "GAD-7 is sent");
        let csrf = csrf_of(&html);
        let mut bad = schedule_form(&csrf, "gad7_weekly", " ");
        for (k, v) in bad.iter_mut() {
            if *k == "days_phq9_weekly" {
                *v = "0".into();
            }
        }
        let (status, html) = post_pairs(&app, &action, &bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", db.kind);
        assert!(html.contains("must be at least 1 day") && html.contains("say why"), "field errors");
        assert!(
            html.contains(
                "name=\"days_phq9_weekly\" inputmode=\"numeric\" min=\"1\" max=\"365\" step=\"1\" value=\"0\""
            )
        );
        assert!(!html.contains("name=\"send\" value=\"gad7_weekly\" checked"), "the user's input is kept");
        assert!(!html.contains("Schedule changed"));
        assert!(schedule_item_ids(&app, c.id.0).await.contains(&"gad7_weekly".to_string()), "nothing changed");

        // Unticked with a reason: saved, and the chart says who changed it and why.
        let reason = "Anxiety is not a concern for this patient";
        let (status, html) = post_pairs(&app, &action, &schedule_form(&csrf, "gad7_weekly", reason)).await;
        assert_eq!(status, StatusCode::OK, "{:?}", db.kind);
        assert!(html.contains("Schedule changed"));
        assert!(html.contains("Changed by prescriber.test on ") && html.contains(reason));
        assert!(html.contains("name=\"send\" value=\"gad7_weekly\">"), "shown unticked");
        let ids = schedule_item_ids(&app, c.id.0).await;
        assert!(!ids.contains(&"gad7_weekly".to_string()) && ids.contains(&"phq9_weekly".to_string()), "{ids:?}");

        // A week on, at 08:00 in Chicago, nothing weekly is due yet: it opens at the schedule's
        // local hour (09:00 on the site's clock, 15:00 UTC in November).
        clock.advance(time::Duration::days(7));
        let report = s.sweep_checkins().await.unwrap();
        assert!(!report.issued.iter().any(|i| i.link.course_id == Some(c.id)), "{:?}", db.kind);
        // An hour later the sweep sends the weekly PHQ-9, opening at 09:00 local, but no GAD-7.
        clock.advance(time::Duration::hours(1));
        let report = s.sweep_checkins().await.unwrap();
        let weekly = report.issued.iter().find(|i| i.link.course_id == Some(c.id)).expect("the weekly PHQ-9");
        assert_eq!(weekly.link.opens_at, T0.date().with_hms(15, 0, 0).unwrap().assume_utc() + time::Duration::days(7));
        let forms: Vec<&str> =
            report.issued.iter().filter(|i| i.link.course_id == Some(c.id)).map(|i| i.link.form.as_str()).collect();
        assert!(forms.contains(&"phq9"), "the sweep ran for the course: {forms:?}");
        assert!(!forms.contains(&"gad7"), "{forms:?}");
    }
}
