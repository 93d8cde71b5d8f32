//! The chart's "Between sessions" panel (issue 6) through the real server, on both backends: a
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
        assert!(r.text().await.unwrap().contains("988"), "the patient sees the site's crisis line");

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
