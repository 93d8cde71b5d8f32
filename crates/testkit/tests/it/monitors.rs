//! Bedside monitors on every backend: readings from a registered monitor go to the session
//! in its chair through the typed-vitals path (same alerts, once per episode), a
//! retransmission is recorded once, and whatever cannot be attached lands in the review list,
//! never in a chart.

use time::{Duration, OffsetDateTime};

use keta_domain::access::Role;
use keta_domain::course::Route;
use keta_domain::ids::{ChairId, SessionId, SiteId};
use keta_domain::records::VitalsSource;
use keta_domain::session::{NewSession, SessionAction};
use keta_domain::units::{BeatsPerMinute, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::alerts::AlertQuery;
use keta_store::monitors::{InboundMonitorMessage, MonitorOutcome};
use keta_store::{Actor, SiteScope, Store, StoreError};
use keta_testkit::{ManualClock, TestDb};

use crate::fixtures::*;

fn admin(sites: &[SiteId]) -> Actor {
    Actor::staff("administrator.test", Role::Administrator, SiteScope::Sites(sites.to_vec()))
}

fn reading(spo2: f64) -> VitalSigns {
    VitalSigns {
        systolic_mmhg: Some(Mmhg(124.0)),
        diastolic_mmhg: Some(Mmhg(78.0)),
        heart_rate_bpm: Some(BeatsPerMinute(70.0)),
        spo2_pct: Some(Percent(spo2)),
        ..Default::default()
    }
}

fn message(identifier: &str, control: &str, readings: Vec<(OffsetDateTime, VitalSigns)>) -> InboundMonitorMessage {
    InboundMonitorMessage {
        identifier: identifier.into(),
        control_id: control.into(),
        peer: "127.0.0.1".into(),
        raw: format!("MSH|^~\\&|MON|GW|||x||ORU^R01|{control}|P|2.6\r"),
        readings: Ok(readings),
    }
}

async fn chair_of(s: &Store, a: SiteId, n: usize) -> ChairId {
    s.list_chairs(&admin(&[a]), a).await.unwrap()[n].id
}

/// A patient checked in to `chair`, with a typed pre-dose baseline.
async fn seated(s: &Store, a: SiteId, chair: ChairId, mrn: &str, at: OffsetDateTime) -> SessionId {
    let p = patient(s, a, mrn).await;
    let c = s.create_course(&prescriber(&[a]), p, course(Route::IvRacemic)).await.unwrap();
    let sess = s
        .create_session(
            &prescriber(&[a]),
            c.id,
            NewSession { scheduled_for: at, chair_id: Some(chair), planned_dose_mg: None },
        )
        .await
        .unwrap();
    s.act_on_session(&nurse(&[a]), sess.id, SessionAction::CheckIn).await.unwrap();
    sess.id
}

async fn open_alerts(s: &Store, a: SiteId, session: SessionId) -> Vec<keta_domain::records::Alert> {
    s.list_alerts(
        &nurse(&[a]),
        AlertQuery { session_id: Some(session), open_only: true, limit: 50, ..Default::default() },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn monitor_readings_reach_the_chairs_session_once_and_alert_once_per_episode() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let chair = chair_of(s, a, 0).await;
        let dev = s.register_monitor(&admin(&[a]), chair, "INFUSION^^CHAIR-1", "Monitor 1").await.unwrap();
        assert_eq!((dev.site_id, dev.chair_id), (a, chair));
        let sess = seated(s, a, chair, "A-MON1", T0).await;

        let out =
            s.record_monitor_message(message("INFUSION^^CHAIR-1", "M1", vec![(T0, reading(97.0))])).await.unwrap();
        assert_eq!(out, MonitorOutcome::Recorded { site: a, session: sess, readings: 1, alerts: 0 });
        let vitals = s.list_vitals(&nurse(&[a]), sess).await.unwrap();
        assert_eq!(vitals.len(), 1);
        assert_eq!(vitals[0].source, VitalsSource::Monitor);
        assert_eq!(vitals[0].taken_at, T0, "at the observation time, not the arrival time");

        // The same control id again: acknowledged as recorded, stored once.
        let again =
            s.record_monitor_message(message("INFUSION^^CHAIR-1", "M1", vec![(T0, reading(97.0))])).await.unwrap();
        assert_eq!(again, MonitorOutcome::Duplicate { recorded: true, reason: None });
        assert_eq!(s.list_vitals(&nurse(&[a]), sess).await.unwrap().len(), 1);

        // A desaturation streamed every 5 s: one alert for the episode, not one per reading.
        let mut alerts = 0;
        for i in 0..6 {
            clock.advance(Duration::seconds(5));
            let out = s
                .record_monitor_message(message(
                    "INFUSION^^CHAIR-1",
                    &format!("D{i}"),
                    vec![(clock.now(), reading(86.0))],
                ))
                .await
                .unwrap();
            let MonitorOutcome::Recorded { alerts: n, .. } = out else { panic!("{out:?}") };
            alerts += n;
        }
        assert_eq!(alerts, 1);
        let open = open_alerts(s, a, sess).await;
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].rule, "spo2_below_floor", "the same rule as a typed reading raises");
        // Acknowledged, the episode ends: the next low reading starts a new one.
        s.acknowledge_alert(&nurse(&[a]), open[0].id, Some("Airway repositioned".into())).await.unwrap();
        clock.advance(Duration::seconds(5));
        let out = s
            .record_monitor_message(message("INFUSION^^CHAIR-1", "D9", vec![(clock.now(), reading(85.0))]))
            .await
            .unwrap();
        assert!(matches!(out, MonitorOutcome::Recorded { alerts: 1, .. }), "{out:?}");
        assert_eq!(s.list_vitals(&nurse(&[a]), sess).await.unwrap().len(), 8);

        // A message of several readings is recorded whole.
        let t = clock.now();
        let out = s
            .record_monitor_message(message(
                "INFUSION^^CHAIR-1",
                "B1",
                vec![(t - Duration::seconds(10), reading(96.0)), (t - Duration::seconds(5), reading(95.0))],
            ))
            .await
            .unwrap();
        assert!(matches!(out, MonitorOutcome::Recorded { readings: 2, .. }), "{out:?}");
        assert_eq!(s.list_vitals(&nurse(&[a]), sess).await.unwrap().len(), 10);
    }
}

#[tokio::test]
async fn what_cannot_be_attached_goes_to_review_never_to_a_chart() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let (c1, c2) = (chair_of(s, a, 0).await, chair_of(s, a, 1).await);
        s.register_monitor(&admin(&[a]), c1, "BED-1", "Monitor 1").await.unwrap();
        s.register_monitor(&admin(&[a]), c2, "BED-2", "Monitor 2").await.unwrap();
        let sess = seated(s, a, c1, "A-MON2", T0).await;

        // Unknown device.
        let out = s.record_monitor_message(message("BED-9", "U1", vec![(T0, reading(97.0))])).await.unwrap();
        assert!(
            matches!(&out, MonitorOutcome::Review { site: None, reason } if reason.contains("unknown device")),
            "{out:?}"
        );
        // A registered monitor in an empty chair.
        let out = s.record_monitor_message(message("BED-2", "E1", vec![(T0, reading(97.0))])).await.unwrap();
        assert!(
            matches!(&out, MonitorOutcome::Review { site: Some(x), reason } if *x == a && reason.contains("no session")),
            "{out:?}"
        );
        // Readings the mapping refused (implausible, far from now...).
        let mut refused = message("BED-1", "R1", vec![]);
        refused.readings = Err("implausible reading: spo2_pct".into());
        let out = s.record_monitor_message(refused.clone()).await.unwrap();
        assert!(matches!(&out, MonitorOutcome::Review { reason, .. } if reason.contains("implausible")), "{out:?}");
        // Resent: the same answer, nothing added.
        let again = s.record_monitor_message(refused).await.unwrap();
        assert_eq!(
            again,
            MonitorOutcome::Duplicate { recorded: false, reason: Some("implausible reading: spo2_pct".into()) }
        );

        assert!(s.list_vitals(&nurse(&[a]), sess).await.unwrap().is_empty(), "nothing attached to the chart");
        let review = s.monitor_review_list(&nurse(&[a])).await.unwrap();
        assert_eq!(review.len(), 3);
        let empty_chair = review.iter().find(|r| r.device_identifier == "BED-2").unwrap();
        assert_eq!(empty_chair.chair_id, Some(c2));
        assert_eq!(empty_chair.reading, Some(reading(97.0)));
        assert_eq!(empty_chair.observed_at, Some(T0));
        // Another site's nurse does not see this site's items (only the unknown device's).
        let b = site(s, "B").await;
        let other = s.monitor_review_list(&nurse(&[b])).await.unwrap();
        assert_eq!(other.iter().map(|r| r.device_identifier.as_str()).collect::<Vec<_>>(), vec!["BED-9"]);

        // Frames Keta could not read are kept too; raw text is cleared after the retention period.
        s.record_rejected_monitor_frame("127.0.0.1".into(), "garbage".into(), "not HL7".into()).await.unwrap();
        assert_eq!(s.purge_monitor_raw(Duration::days(30)).await.unwrap(), 0);
        clock.advance(Duration::days(31));
        assert_eq!(s.purge_monitor_raw(Duration::days(30)).await.unwrap(), 4);
        // The control ids stay: a late retransmission is still recognised.
        let late = s.record_monitor_message(message("BED-9", "U1", vec![])).await.unwrap();
        assert!(matches!(late, MonitorOutcome::Duplicate { recorded: false, .. }), "{late:?}");
    }
}

#[tokio::test]
async fn only_an_administrator_registers_a_monitor_once_to_a_chair_of_their_site() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        let s = &db.store;
        let a = site(s, "A").await;
        let b = site(s, "B").await;
        let ca = chair_of(s, a, 0).await;
        let cb = chair_of(s, b, 0).await;
        assert!(matches!(s.register_monitor(&nurse(&[a]), ca, "X", "x").await, Err(StoreError::Forbidden(_))));
        let e = s.register_monitor(&admin(&[a]), cb, "X", "x").await.unwrap_err();
        assert!(e.to_string().contains("chair"), "{e}");
        let e = s.register_monitor(&admin(&[a]), ca, " ", "x").await.unwrap_err();
        assert!(e.to_string().contains("identifier"), "{e}");
        s.register_monitor(&admin(&[a]), ca, "X", "x").await.unwrap();
        assert!(matches!(s.register_monitor(&admin(&[a]), ca, "X", "y").await, Err(StoreError::Conflict(_))));
        let listed = s.list_monitors(&admin(&[a]), a).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].registered_by, "administrator.test");
    }
}
