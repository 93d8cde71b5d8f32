//! Durability after response: Kaplan–Meier curves of time from the last session to
//! relapse, by route and by protocol, over HTTP (JSON and the page), on both backends.

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use keta_domain::access::Role;
use keta_domain::course::{NewCourse, Phase, Route};
use keta_domain::ids::{CourseId, PatientId, SiteId};
use keta_domain::records::CompletedBy;
use keta_domain::session::SessionAction;
use keta_store::import::{HistoricalCheckIn, HistoricalResponse, HistoricalSession, SessionStep};
use keta_store::{Actor, SiteScope, Store};
use keta_testkit::{ManualClock, TestDb, seed_staff, spawn_app};

use crate::fixtures::*;

/// Day 0 of the synthetic history: 100 days before "now".
fn day(d: i64) -> OffsetDateTime {
    T0 - Duration::days(100) + Duration::days(d)
}

/// PHQ-9 answers with `total` spread over items 1-8 (item 9 = 0, so no safety alert).
fn phq9(total: i32) -> Vec<Option<i32>> {
    (0..9).map(|i| Some(if i == 8 { 0 } else { (total - 3 * i).clamp(0, 3) })).collect()
}

/// A depression patient with an induction course: dosed sessions on `sessions` days and
/// course-linked PHQ-9 totals.
async fn treated(
    s: &Store,
    site: SiteId,
    mrn: &str,
    route: Route,
    protocol: Option<&str>,
    sessions: &[i64],
    scores: &[(i64, i32)],
) -> (PatientId, CourseId) {
    let p = patient(s, site, mrn).await;
    let c = add_course(s, site, p, route, Phase::Induction, protocol, sessions, scores).await;
    (p, c)
}

#[allow(clippy::too_many_arguments)]
async fn add_course(
    s: &Store,
    site: SiteId,
    p: PatientId,
    route: Route,
    phase: Phase,
    protocol: Option<&str>,
    sessions: &[i64],
    scores: &[(i64, i32)],
) -> CourseId {
    let dr = prescriber(&[site]);
    let start = day(sessions.first().copied().unwrap_or(0)).date();
    let c = s
        .create_course(
            &dr,
            p,
            NewCourse { phase, protocol: protocol.map(str::to_string), start_date: start, ..course(route) },
        )
        .await
        .unwrap();
    let history = sessions
        .iter()
        .map(|&d| {
            let t = day(d);
            let mut h = HistoricalSession::new(c.id, t);
            h.steps = vec![
                SessionStep::new(SessionAction::CheckIn, t),
                SessionStep::new(SessionAction::StartPreDoseChecks, t + Duration::minutes(5)),
                SessionStep::new(SessionAction::StartDose, t + Duration::minutes(10)),
                SessionStep::new(SessionAction::EndDose, t + Duration::minutes(50)),
                SessionStep::new(SessionAction::Discharge, t + Duration::hours(3)),
            ];
            h
        })
        .collect();
    s.import_history(&dr, history).await.unwrap();
    let check_ins = scores
        .iter()
        .map(|&(d, total)| HistoricalCheckIn {
            patient_id: p,
            course_id: Some(c.id),
            response: HistoricalResponse {
                instrument: "phq9".into(),
                answers: phq9(total),
                // At the hour of a dose start (10 min into a session), so follow-up is whole days.
                completed_at: day(d) + Duration::minutes(10),
                completed_by: CompletedBy::Patient,
            },
            acknowledge_alerts: None,
        })
        .collect();
    s.import_responses(&dr, check_ins).await.unwrap();
    c.id
}

const IV: &[i64] = &[0, 2, 4, 7, 9, 11];

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 0.01)
}

/// IV "IV 0.5 mg/kg x6" (last session day 11): relapse on day 25 and day 41 (14 and 30 days
///   after it), still responding on day 60 (49 days) → S = 2/3 after the first relapse, 1/3
///   after the second; S(28) = 2/3; no 8-week figure; median 30 days.
/// IM "IM 0.5": scored, never responded — a group with no responders.
/// Esketamine, no protocol: responding 71 days after its last session → 100 % at 8 weeks.
/// Sublingual: an induction responder (baseline 20) still responding 9 days after the last
///   induction session when maintenance starts; in maintenance (sessions days 30 and 55) PHQ-9
///   6 and 9 are still responses against the induction's baseline, 12 on day 62 is a relapse 7
///   days after the last maintenance session → S = 1/2 at 7 days, median 7.
///   (Judged against its own first score, 6, maintenance would have no response at all.)
// Long on purpose: one worked example (the figures in its doc comment), read top to bottom.
#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn durability_curves_by_route_and_protocol_over_http() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let staff = seed_staff(s, &[a]).await;
        let proto = Some("IV 0.5 mg/kg x6");
        let (p1, _) = treated(s, a, "A-0601", Route::IvRacemic, proto, IV, &[(-3, 20), (14, 8), (25, 14)]).await;
        treated(s, a, "A-0602", Route::IvRacemic, proto, IV, &[(-3, 18), (14, 7), (30, 6), (60, 5)]).await;
        treated(s, a, "A-0603", Route::IvRacemic, proto, IV, &[(-3, 22), (14, 10), (41, 16)]).await;
        treated(s, a, "A-0604", Route::ImRacemic, Some("IM 0.5"), IV, &[(-3, 20), (14, 16)]).await;
        treated(s, a, "A-0605", Route::IntranasalEsketamine, None, &[0, 3, 7, 10], &[(-3, 24), (14, 6), (81, 5)]).await;
        let sl = Route::SublingualRacemic;
        let (p6, _) = treated(s, a, "A-0606", sl, Some("SL induction"), IV, &[(-3, 20), (14, 8), (20, 7)]).await;
        let maintenance = &[(30, 6), (45, 9), (62, 12)];
        add_course(s, a, p6, sl, Phase::Maintenance, Some("SL maintenance"), &[30, 55], maintenance).await;

        let app = spawn_app(s.clone()).await;
        let dr = staff.iter().find(|x| x.role == Role::Prescriber).unwrap();
        assert_eq!(app.login(dr, clock.now()).await.status(), 200);

        // JSON, by route (the default).
        let r = app.get("/api/v1/outcomes/durability").await;
        assert_eq!(r.status(), 200, "{:?}", db.kind);
        let j: Value = r.json().await.unwrap();
        assert_eq!((j["grouping"].as_str(), j["instrument"].as_str()), (Some("route"), Some("phq9")));
        assert_eq!(j["settings"]["threshold"]["kind"], "loss_of_response");
        let groups = j["groups"].as_array().unwrap();
        let keys: Vec<&str> = groups.iter().map(|g| g["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["iv_racemic", "im_racemic", "intranasal_esketamine", "sublingual_racemic"], "{:?}", db.kind);

        let iv = &groups[0];
        assert_eq!((iv["courses"].as_u64(), iv["responders"].as_u64()), (Some(3), Some(3)));
        assert_eq!(
            (iv["followed"].as_u64(), iv["relapses"].as_u64(), iv["censored"].as_u64()),
            (Some(3), Some(2), Some(1))
        );
        let steps = iv["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2);
        assert!(close(&steps[0]["days"], 14.0) && close(&steps[0]["survival"], 2.0 / 3.0), "{steps:?}");
        assert!(close(&steps[1]["days"], 30.0) && close(&steps[1]["survival"], 1.0 / 3.0), "{steps:?}");
        let w4 = &iv["at_4_weeks"];
        assert!(close(&w4["survival"], 2.0 / 3.0), "{w4}");
        assert!(w4["ci_low"].as_f64().unwrap() < 0.67 && w4["ci_high"].as_f64().unwrap() > 0.67, "{w4}");
        assert!(iv["at_8_weeks"].is_null(), "follow-up ends before 8 weeks");
        assert!(close(&iv["median_days"], 30.0));

        let im = &groups[1];
        assert_eq!((im["courses"].as_u64(), im["responders"].as_u64()), (Some(1), Some(0)));
        assert!(im["at_4_weeks"].is_null() && im["steps"].as_array().unwrap().is_empty());

        let esk = &groups[2];
        assert_eq!((esk["followed"].as_u64(), esk["relapses"].as_u64()), (Some(1), Some(0)));
        assert_eq!(esk["at_8_weeks"]["survival"].as_f64(), Some(1.0));
        assert!(esk["at_8_weeks"]["ci_low"].is_null(), "no interval at 100 %");

        let sl = &groups[3];
        assert_eq!(
            (sl["courses"].as_u64(), sl["followed"].as_u64(), sl["relapses"].as_u64()),
            (Some(2), Some(2), Some(1))
        );
        assert!(close(&sl["steps"][0]["days"], 7.0) && close(&sl["steps"][0]["survival"], 0.5), "{sl}");
        assert_eq!(sl["censored_days"].as_array().unwrap().len(), 1);
        assert!(close(&sl["censored_days"][0], 9.0));
        assert!(close(&sl["median_days"], 7.0));

        let published = j["published"].as_array().unwrap();
        let mcinnes = published.iter().find(|p| p["source"].as_str().unwrap().contains("[S49]")).unwrap();
        assert_eq!(mcinnes["still_responding"][0]["pct"].as_f64(), Some(80.0));
        assert_eq!(mcinnes["still_responding"][1]["pct"].as_f64(), Some(60.0));
        let murrough = published.iter().find(|p| p["source"].as_str().unwrap().contains("[S39]")).unwrap();
        assert_eq!(murrough["median_relapse_days"].as_f64(), Some(18.0));

        // By protocol.
        let j: Value = app.get("/api/v1/outcomes/durability?by=protocol").await.json().await.unwrap();
        let got: Vec<(&str, u64)> = j["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g["label"].as_str().unwrap(), g["followed"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("IM 0.5", 0),
                ("IV 0.5 mg/kg x6", 3),
                ("SL induction", 1),
                ("SL maintenance", 1),
                ("No protocol recorded", 1)
            ],
            "{:?}",
            db.kind
        );

        // Bad grouping: problem+json naming the parameter.
        let r = app.get("/api/v1/outcomes/durability?by=site").await;
        assert_eq!(r.status(), 400);

        // The page: chart, table and the published figures with their citations.
        let r = app.get("/outcomes/durability").await;
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(html.contains("<h1>Durability after response</h1>"));
        assert!(html.contains("role=\"img\"") && html.contains("IV ketamine (n=3)"), "a labelled curve");
        assert!(html.contains("Esketamine nasal spray (n=1)"));
        assert!(html.contains("Sublingual ketamine (n=2)"));
        assert!(!html.contains("IM ketamine (n="), "no curve without responders");
        assert!(html.contains("IM ketamine<br>"), "but a table row");
        assert!(html.contains("67 % ("), "4 weeks with its interval");
        assert!(html.contains("not enough follow-up"));
        assert!(html.contains("30 days"), "median");
        assert!(html.contains("McInnes 2022") && html.contains("[S49]") && html.contains("~80 %"));
        assert!(html.contains("Murrough 2013") && html.contains("[S39]") && html.contains("18 days"));
        assert!(html.contains("Relapse rule in use: loss of response"));
        assert!(html.contains("aria-current=\"page\">By route"));
        assert!(!html.contains("style="), "no inline style (CSP)");
        // Numbers at risk under the x axis (0, 14, …, 84 days), one row per curve, also in the
        // chart's text description; IV: relapses at 14 and 30 days, one censored at 49.
        assert!(html.contains(">At risk</text>"), "the at-risk table is drawn");
        assert!(
            html.contains(
                "Numbers at risk: IV ketamine: 3 at day 0, 3 at day 14, 2 at day 28, 1 at day 42, 0 at day 56"
            ),
            "{html}"
        );
        assert_eq!(html.matches("class=\"risk-label\"").count(), 3 * 8, "7 ticks and a label for each of 3 curves");
        assert!(html.contains(" v8\""), "censoring marks on the curves");

        let html = app.get("/outcomes/durability?by=protocol").await.text().await.unwrap();
        assert!(html.contains("aria-current=\"page\">By protocol"));
        assert!(html.contains("IV 0.5 mg/kg x6 (n=3)") && html.contains("No protocol recorded (n=1)"));
        assert!(html.contains("SL maintenance (n=1)"));
        assert_eq!(app.get("/outcomes/durability?by=site").await.status(), 400);

        // The outcomes screen links here.
        assert!(app.get("/outcomes").await.text().await.unwrap().contains("href=\"/outcomes/durability\""));

        // Reading the charts was audited, per patient.
        let auditor = Actor::staff("audit.test", Role::Auditor, SiteScope::All);
        let q = keta_store::audit::AuditQuery {
            actor: Some(dr.username.clone()),
            patient_id: Some(p1),
            limit: 100,
            ..Default::default()
        };
        let reads = s.audit_report(&auditor, q).await.unwrap();
        assert!(reads.iter().any(|e| e.object_type == "chart_summary"), "{:?}: {reads:?}", db.kind);

        // Staff without clinical access get neither.
        app.logout_locally();
        let desk = staff.iter().find(|x| x.role == Role::FrontDesk).unwrap();
        assert_eq!(app.login(desk, clock.now()).await.status(), 200);
        assert_eq!(app.get("/api/v1/outcomes/durability").await.status(), 403);
        assert_eq!(app.get("/outcomes/durability").await.status(), 403);
    }
}
