//! Urgent alerts escalate: an urgent alert nobody acknowledged within the clinic's
//! time is escalated once, recorded and audited, sent to the prescriber on duty and marked on
//! the site's board; with the time unset nothing escalates. Time is passed in (ManualClock);
//! the sweep is called as `keta serve` calls it. On both backends.

use keta_domain::access::Role;
use keta_domain::course::Route;
use keta_domain::ids::AlertId;
use keta_domain::records::{CompletedBy, NewQuestionnaireResponse};
use keta_store::Store;
use keta_testkit::{ManualClock, TestDb, spawn_app};
use keta_web::escalation::{EscalationSummary, escalate_and_send};
use keta_web::reminders::Reminders;
use serde_json::{Value, json};
use time::Duration;

use crate::checkins::{Clinic, clinic, open_alerts, sign_in};
use crate::fixtures::*;

/// A PHQ-9 entered by staff with item 9 answered 2: an urgent alert, raised now.
async fn item9_alert(s: &Store, c: &Clinic) -> AlertId {
    s.submit_response(
        &prescriber(&[c.site]),
        c.patient,
        NewQuestionnaireResponse {
            instrument: "phq9".into(),
            answers: [1, 1, 1, 1, 1, 1, 1, 1, 2].map(Some).to_vec(),
            course_id: Some(c.course),
            session_id: None,
            completed_at: None,
            completed_by: CompletedBy::Staff,
        },
    )
    .await
    .unwrap();
    let alerts = s
        .list_alerts(
            &prescriber(&[c.site]),
            keta_store::alerts::AlertQuery {
                patient_id: Some(c.patient),
                open_only: true,
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    alerts.iter().filter(|a| a.level == keta_domain::records::AlertLevel::Urgent).map(|a| a.id).max().expect("urgent")
}

async fn audit_count(s: &Store, alert: AlertId) -> i64 {
    keta_store::testing::read(s, move |c| {
        c.query_opt(
            "SELECT count(*) AS n FROM audit_log WHERE object_type = 'alert_escalation' AND object_id = $1",
            keta_store::params![alert.0.to_string()],
        )?
        .unwrap()
        .i64("n")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_unacknowledged_urgent_alert_escalates_once_to_the_prescriber_on_duty_and_heads_the_board() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        let app = spawn_app(s.clone()).await;
        let reminders = Reminders::log_only(app.url(""));
        let outbox = reminders.outbox.clone().expect("log-only keeps an outbox");
        let sweep = || escalate_and_send(s, &reminders);

        // Unset (the reference gives no time): shown as unset, and nothing escalates, however old.
        let first = item9_alert(s, &c).await;
        sign_in(&app, &clock, c.login_as(Role::Administrator)).await;
        let v: Value = app.get("/api/v1/settings/alert-escalation").await.json().await.unwrap();
        assert_eq!(v, json!({"escalate_after_minutes": null}));
        clock.set(T0 + Duration::hours(3));
        assert_eq!(sweep().await.unwrap(), EscalationSummary::default(), "{:?}", db.kind);
        sign_in(&app, &clock, c.login_as(Role::Nurse)).await;
        let board = app.get("/today").await.text().await.unwrap();
        assert!(board.contains("not set by the clinic"), "the board says the rule is unset");
        assert!(!board.contains("board-escalated"));
        // Acknowledged before the rule exists: it never escalates.
        let r = app
            .post_json(
                &format!("/api/v1/alerts/{}/acknowledge", first.0),
                &json!({"note": "Phoned; safety plan reviewed"}),
            )
            .await;
        assert_eq!(r.status(), 200);

        // The administrator sets the time and who is on duty; bad input names what to fix.
        sign_in(&app, &clock, c.login_as(Role::Administrator)).await;
        let r = app.put_json("/api/v1/settings/alert-escalation", &json!({"escalate_after_minutes": 0})).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("escalate_after_minutes"));
        let r = app.put_json("/api/v1/settings/alert-escalation", &json!({"escalate_after_minutes": 15})).await;
        assert_eq!(r.status(), 200);
        let duty = format!("/api/v1/sites/{}/on-duty", c.site.0);
        let nurse = c.login_as(Role::Nurse).username.clone();
        let r = app.put_json(&duty, &json!({"prescriber": nurse, "contact_email": "on.call@clinic.example"})).await;
        assert_eq!(r.status(), 422, "only a prescriber can be on duty");
        assert!(r.text().await.unwrap().contains("is not a prescriber"));
        let dr = c.login_as(Role::Prescriber).username.clone();
        let r = app.put_json(&duty, &json!({"prescriber": dr, "alert_sound": true})).await;
        assert_eq!(r.status(), 422, "a prescriber on duty needs a contact");
        let r = app
            .put_json(&duty, &json!({"prescriber": dr, "contact_email": "on.call@clinic.example", "alert_sound": true}))
            .await;
        assert_eq!(r.status(), 200);
        let v: Value = app.get(&duty).await.json().await.unwrap();
        assert_eq!(v["prescriber"], dr.as_str());

        // A new urgent alert: not escalated at 14:59, escalated at 15:00, and only once.
        let raised = clock.now();
        let alert = item9_alert(s, &c).await;
        clock.set(raised + Duration::minutes(15) - Duration::seconds(1));
        assert_eq!(sweep().await.unwrap().escalated, 0, "{:?}: not yet", db.kind);
        assert!(outbox.sent().is_empty());
        clock.set(raised + Duration::minutes(15));
        assert_eq!(sweep().await.unwrap(), EscalationSummary { escalated: 1, sent: 1 }, "{:?}", db.kind);
        clock.set(raised + Duration::minutes(30));
        assert_eq!(sweep().await.unwrap(), EscalationSummary::default(), "once per alert");

        let sent = outbox.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to, "on.call@clinic.example");
        assert_eq!(sent[0].subject, "Clinic A: urgent alert not acknowledged for 15 min");
        assert!(sent[0].text.contains(&format!("/patients/{}#alerts", c.patient.0)), "{}", sent[0].text);
        assert!(
            !sent[0].text.contains("PHQ-9") && !sent[0].text.contains("Rowan"),
            "no finding, no name: {}",
            sent[0].text
        );
        // Recorded (escalation, then its delivery) and audited.
        assert_eq!(audit_count(s, alert).await, 2);
        assert_eq!(audit_count(s, first).await, 0);

        sign_in(&app, &clock, c.login_as(Role::Nurse)).await;
        let esc: Vec<Value> =
            app.get(&format!("/api/v1/sites/{}/alert-escalations", c.site.0)).await.json().await.unwrap();
        assert_eq!(esc.len(), 1, "{esc:?}");
        assert_eq!(esc[0]["alert_id"], alert.0);
        assert_eq!((esc[0]["notified_user"].as_str(), esc[0]["delivered"].as_bool()), (Some(dr.as_str()), Some(true)));
        assert_eq!(esc[0]["after_minutes"], 15);

        // Every board at the site marks it, with the site's alarm sound on.
        let board = app.get("/today").await.text().await.unwrap();
        let banner = &board[board.find("class=\"board-escalated\"").expect("the escalated banner")..];
        let banner = &banner[..banner.find("</div>").unwrap()];
        assert!(banner.contains(&format!("data-escalated=\"{}\"", alert.0)), "{banner}");
        assert!(banner.contains("data-sound=\"on\"") && banner.contains("role=\"alert\""), "{banner}");
        assert!(banner.contains(&format!("after 15 min unacknowledged to {dr}")), "{banner}");
        assert!(board.contains("data-sound-allow"), "the screen offers to allow the sound");

        // Acknowledged: off the banner.
        let r = app
            .post_json(
                &format!("/api/v1/alerts/{}/acknowledge", alert.0),
                &json!({"note": "Seen in clinic; plan agreed"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert!(open_alerts(&app, &c).await.iter().all(|a| a["level"] != "urgent"));
        let board = app.get("/today").await.text().await.unwrap();
        assert!(!board.contains("class=\"board-escalated\""), "{:?}", db.kind);
    }
}

#[tokio::test]
async fn with_nobody_on_duty_an_escalation_still_heads_the_board_and_says_nobody_was_sent_it() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, T0.date(), &[]).await;
        s.set_escalation_settings(
            &keta_store::Actor::system(),
            keta_domain::escalation::EscalationSettings { escalate_after_minutes: Some(10) },
        )
        .await
        .unwrap();
        let app = spawn_app(s.clone()).await;
        let reminders = Reminders::log_only(app.url(""));
        let alert = item9_alert(s, &c).await;
        clock.set(T0 + Duration::minutes(10));
        assert_eq!(escalate_and_send(s, &reminders).await.unwrap(), EscalationSummary { escalated: 1, sent: 0 });
        assert!(reminders.outbox.as_ref().unwrap().sent().is_empty());
        sign_in(&app, &clock, c.login_as(Role::Nurse)).await;
        let esc: Vec<Value> =
            app.get(&format!("/api/v1/sites/{}/alert-escalations", c.site.0)).await.json().await.unwrap();
        assert_eq!((esc[0]["alert_id"].as_i64(), esc[0]["delivered"].as_bool()), (Some(alert.0), Some(false)));
        assert!(esc[0]["delivery_detail"].as_str().unwrap().contains("no prescriber on duty"), "{esc:?}");
        let board = app.get("/today").await.text().await.unwrap();
        assert!(board.contains("nobody on duty to send it to"), "{:?}", db.kind);
        assert!(!board.contains("data-sound=\"on\""), "sound is off until the site turns it on");
    }
}
