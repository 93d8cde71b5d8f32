//! One outcome definition everywhere: a maintenance course is judged against the
//! baseline of the induction it continues, and the chart (outcome label, trajectory, relapse
//! panel), the outcomes API, the clinic outcomes table, the patient's own page and the relapse
//! watch all say the same thing about it. On both backends.

use keta_domain::access::Role;
use keta_domain::course::{NewCourse, Phase, Route};
use keta_domain::ids::CourseId;
use keta_domain::records::{CompletedBy, NewQuestionnaireResponse};
use keta_store::Store;
use keta_testkit::{ManualClock, TestDb, spawn_app};
use serde_json::Value;
use time::Duration;

use crate::checkins::{Clinic, clinic, open_alerts, phq9_form, sign_in, submit};
use crate::fixtures::*;

/// A PHQ-9 on file `days_ago` days before T0, on `course`, with `total` spread over items 1-8.
async fn phq9(s: &Store, c: &Clinic, course: CourseId, days_ago: i64, total: i32) {
    let mut left = total;
    let mut answers: Vec<Option<i32>> = (0..8)
        .map(|_| {
            let a = left.min(3);
            left -= a;
            Some(a)
        })
        .collect();
    answers.push(Some(0));
    s.submit_response(
        &prescriber(&[c.site]),
        c.patient,
        NewQuestionnaireResponse {
            instrument: "phq9".into(),
            answers,
            course_id: Some(course),
            session_id: None,
            completed_at: Some(T0 - Duration::days(days_ago)),
            completed_by: CompletedBy::Patient,
        },
    )
    .await
    .unwrap();
}

/// The `<tr>` of the chart's outcome table whose course label starts with `label`.
fn outcome_row<'a>(html: &'a str, label: &str) -> &'a str {
    let table = &html[html.find("id=\"outcome-title\"").expect("the outcome card")..];
    let table = &table[..table.find("</table>").expect("the outcome table")];
    table
        .split("<tr>")
        .find(|row| row.contains(&format!("<td>{label}")))
        .unwrap_or_else(|| panic!("no outcome row for {label} in:\n{table}"))
}

#[tokio::test]
async fn a_maintenance_course_in_remission_reads_the_same_on_the_chart_the_outcomes_table_the_phone_and_the_watch() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0); // the previous backend moved it on
        let s = &db.store;
        let c = clinic(s, Route::IvRacemic, (T0 - Duration::days(60)).date(), &[]).await;
        let dr = prescriber(&[c.site]);
        let maintenance = s
            .create_course(
                &dr,
                c.patient,
                NewCourse {
                    phase: Phase::Maintenance,
                    start_date: (T0 - Duration::days(30)).date(),
                    ..course(Route::IvRacemic)
                },
            )
            .await
            .unwrap()
            .id;
        // Induction 20 → 8 (a response). Maintenance 4, 2, 3 and, from the phone, 4: in
        // remission throughout. Judged against its own first score (4) the course would read
        // "relapsed" (the 3 after the 2) and "not responding" while "in remission".
        phq9(s, &c, c.course, 59, 20).await;
        phq9(s, &c, c.course, 45, 8).await;
        for (days_ago, total) in [(25, 4), (18, 2), (10, 3)] {
            phq9(s, &c, maintenance, days_ago, total).await;
        }
        clock.advance(Duration::seconds(1));
        let link = s.issue_link(&dr, c.patient, Some(maintenance), "phq9".into()).await.unwrap();
        let app = spawn_app(s.clone()).await;

        // The patient's own page, right after the check-in: the change from the first score of
        // the treatment (20), a response and remission, as the clinic counts them.
        let (status, phone) = submit(
            &app,
            &format!("/c/{}", link.token),
            &phq9_form(["1", "1", "1", "1", "0", "0", "0", "0", "0"], "finish"),
        )
        .await;
        assert_eq!(status, 200, "{phone}");
        assert!(
            phone.contains("80 % lower than your first score of 20 — what your clinic counts as a response."),
            "{phone}"
        );
        assert!(phone.contains("what your clinic counts as remission"), "{phone}");
        assert!(!phone.contains("your first score of 4"), "never against the maintenance course's own first score");

        sign_in(&app, &clock, c.login_as(Role::Prescriber)).await;

        // The outcomes API.
        let outcomes: Vec<Value> =
            app.get(&format!("/api/v1/patients/{}/outcomes", c.patient.0)).await.json().await.unwrap();
        let m = outcomes.iter().find(|o| o["course_id"] == maintenance.0).expect("the maintenance outcome");
        assert_eq!(m["baseline_course_id"], c.course.0, "{m}");
        let o = &m["outcome"];
        assert_eq!((o["baseline"].as_i64(), o["latest"].as_i64()), (Some(20), Some(4)), "{o}");
        assert_eq!(
            (o["responded"].as_bool(), o["remitted"].as_bool(), o["relapsed"].as_bool()),
            (Some(true), Some(true), Some(false)),
            "{o}"
        );
        let i = outcomes.iter().find(|o| o["course_id"] == c.course.0).expect("the induction outcome");
        assert_eq!(i["baseline_course_id"], Value::Null);
        assert_eq!(
            (i["outcome"]["responded"].as_bool(), i["outcome"]["remitted"].as_bool()),
            (Some(true), Some(false))
        );

        // The relapse watch: no relapse alert for the maintenance course.
        let alerts = open_alerts(&app, &c).await;
        assert!(!alerts.iter().any(|a| a["rule"] == "relapse_watch_phq9"), "{:?}: {alerts:?}", db.kind);

        // The chart: the outcome label, where the baseline comes from, the trajectory's baseline
        // line and the relapse panel agree.
        let chart = app.get(&format!("/patients/{}", c.patient.0)).await.text().await.unwrap();
        let row = outcome_row(&chart, "IV ketamine · maintenance");
        for says in ["Responder", "In remission", "No relapse", "20 → 4", "baseline from IV ketamine · induction"] {
            assert!(row.contains(says), "{:?}: the outcome row should say {says:?}:\n{row}", db.kind);
        }
        assert!(!row.contains("Not responding") && !row.contains("Relapsed"), "{row}");
        assert!(chart.contains(">Baseline 20<"), "the trajectory's baseline line is the induction's");
        assert!(chart.contains(">Response ≤ 10<"), "and its response line follows from it");
        assert!(!chart.to_lowercase().contains("relapse: review"), "the relapse panel raises no flag");

        // The clinic outcomes table: both IV courses respond; one of them is in remission.
        let table = app.get("/outcomes").await.text().await.unwrap();
        let iv = &table[table.find("id=\"iv_racemic\"").expect("the IV section")..];
        let iv = &iv[..iv.find("</table>").unwrap()];
        assert!(iv.contains("100.0 % (2/2)"), "{:?}: IV response over both courses:\n{iv}", db.kind);
        assert!(iv.contains("50.0 % (1/2)"), "IV remission:\n{iv}");
        assert!(iv.contains("0.0 % (0/2)"), "no relapse after response:\n{iv}");
    }
}
