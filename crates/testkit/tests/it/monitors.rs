//! Bedside monitors on every backend: readings from a registered monitor go to the session
//! in its chair through the typed-vitals path (same alerts, once per episode), a
//! retransmission is recorded once, and whatever cannot be attached lands in the review list,
//! never in a chart.

use time::{Duration, OffsetDateTime};

use keta_domain::access::Role;
use keta_domain::course::Route;
use keta_domain::device_readings::{DeviceReadingDecision, DeviceReadingStatus};
use keta_domain::ids::{ChairId, SessionId, SiteId};
use keta_domain::records::VitalsSource;
use keta_domain::session::{NewSession, SessionAction};
use keta_domain::units::{BeatsPerMinute, Mmhg, Percent};
use keta_domain::vitals::VitalSigns;
use keta_store::alerts::AlertQuery;
use keta_store::monitors::{InboundMonitorMessage, MonitorOutcome, MonitorReading};
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
        readings: Ok(readings
            .into_iter()
            .map(|(observed_at, vitals)| MonitorReading { observed_at, vitals, mean_mmhg: None })
            .collect()),
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

fn with_mean(observed_at: OffsetDateTime, spo2: f64, mean: f64) -> MonitorReading {
    MonitorReading { observed_at, vitals: reading(spo2), mean_mmhg: Some(Mmhg(mean)) }
}

#[tokio::test]
async fn a_nurse_confirms_or_strikes_a_monitor_reading_and_a_struck_one_no_longer_counts() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let chair = chair_of(s, a, 0).await;
        s.register_monitor(&admin(&[a]), chair, "BED-1", "Monitor 1").await.unwrap();
        let sess = seated(s, a, chair, "A-MON3", T0).await;
        let n = nurse(&[a]);

        let mut m = message("BED-1", "S1", vec![]);
        m.readings = Ok(vec![
            with_mean(T0 - Duration::seconds(10), 97.0, 93.0),
            with_mean(T0 - Duration::seconds(5), 96.0, 94.0),
        ]);
        let out = s.record_monitor_message(m).await.unwrap();
        assert!(matches!(out, MonitorOutcome::Recorded { readings: 2, .. }), "{out:?}");

        // Both listed, newest first, with the mean pressure the monitor sent, not yet reviewed.
        let listed = s.device_readings(&n, sess).await.unwrap();
        assert_eq!(listed.iter().map(|d| d.mean_mmhg).collect::<Vec<_>>(), vec![Some(Mmhg(94.0)), Some(Mmhg(93.0))]);
        assert!(listed.iter().all(|d| d.status == DeviceReadingStatus::Unreviewed && d.reviewed_by.is_none()));
        let (newer, older) = (listed[0].record.id, listed[1].record.id);

        // Only staff who may record vitals review; a strike needs a reason; nothing changes otherwise.
        let e = s
            .review_device_reading(&front_desk(&[a]), sess, newer, DeviceReadingDecision::Strike, Some("x".into()))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Forbidden(_)), "{e:?}");
        let e = s
            .review_device_reading(&n, sess, newer, DeviceReadingDecision::Strike, Some("  ".into()))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("reason"), "{e}");
        assert_eq!(s.device_readings(&n, sess).await.unwrap()[0].status, DeviceReadingStatus::Unreviewed);

        // Confirmed once; struck with its reason; a struck reading stays struck.
        let c = s.review_device_reading(&n, sess, older, DeviceReadingDecision::Confirm, None).await.unwrap();
        assert_eq!((c.status, c.reviewed_by.as_deref()), (DeviceReadingStatus::Confirmed, Some("nurse.test")));
        let again = s.review_device_reading(&n, sess, older, DeviceReadingDecision::Confirm, None).await;
        assert!(again.as_ref().is_err_and(|e| e.to_string().contains("already confirmed")), "{again:?}");
        let struck = s
            .review_device_reading(&n, sess, newer, DeviceReadingDecision::Strike, Some(" cuff moved ".into()))
            .await
            .unwrap();
        assert_eq!((struck.status, struck.reason.as_deref()), (DeviceReadingStatus::Struck, Some("cuff moved")));
        let again = s.review_device_reading(&n, sess, newer, DeviceReadingDecision::Confirm, None).await;
        assert!(again.is_err(), "{again:?}");

        // The struck reading stays listed, marked, with who and why ...
        let listed = s.device_readings(&n, sess).await.unwrap();
        assert_eq!(listed[0].status, DeviceReadingStatus::Struck);
        assert_eq!(listed[0].reason.as_deref(), Some("cuff moved"));
        assert_eq!(listed[0].reviewed_at, Some(T0));
        // ... but no longer counts: not in the session's vitals (alerts' baseline, discharge,
        // board, REMS form and the API read these), not in FHIR.
        let vitals = s.list_vitals(&n, sess).await.unwrap();
        assert_eq!(vitals.iter().map(|v| v.id).collect::<Vec<_>>(), vec![older]);
        let board = s.site_board(&n, a, T0 - Duration::hours(8), T0 + Duration::hours(16)).await.unwrap();
        assert_eq!(board.latest_vitals.get(&sess).map(|v| v.id), Some(older), "the board's last reading counts");
        let patient = s.get_session(&n, sess).await.unwrap().patient_id;
        let bp = s
            .fhir_observations(
                &n,
                keta_store::fhir::Search { patient: Some(patient), count: 50, ..Default::default() },
                keta_store::fhir::ObservationFilter {
                    sources: vec![keta_store::fhir::ObservationSource::BloodPressure],
                    instruments: None,
                    only: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(bp.items.iter().map(|o| o.record_id).collect::<Vec<_>>(), vec![older.0]);

        // Each review is audited in its own entry, by the nurse, on the patient.
        let auditor = Actor::staff("audit.test", Role::Auditor, SiteScope::All);
        let q = keta_store::audit::AuditQuery {
            actor: Some("nurse.test".into()),
            patient_id: Some(patient),
            limit: 200,
            ..Default::default()
        };
        let entries = s.audit_report(&auditor, q).await.unwrap();
        let reviews: Vec<_> = entries.iter().filter(|e| e.object_type == "device_reading").collect();
        assert_eq!(reviews.len(), 2, "{:?}: {reviews:?}", db.kind);
        assert!(reviews.iter().all(|e| e.action == "update"), "{reviews:?}");

        // Not a reading of this session: not found. After the session ends: refused.
        let other = seated(s, a, chair_of(s, a, 1).await, "A-MON4", T0).await;
        let e = s.review_device_reading(&n, other, older, DeviceReadingDecision::Strike, Some("x".into())).await;
        assert!(matches!(e, Err(StoreError::NotFound(_))), "{e:?}");
        s.act_on_session(&n, sess, SessionAction::Stop { reason: "Patient asked to stop".into() }).await.unwrap();
        let e = s.review_device_reading(&n, sess, older, DeviceReadingDecision::Strike, Some("late".into())).await;
        assert!(matches!(e, Err(StoreError::Conflict(_))), "{e:?}");
    }
}

#[tokio::test]
async fn a_struck_baseline_no_longer_anchors_the_rise_from_baseline_rule() {
    // The first blood pressure of a session is the baseline the rise rule compares with. When
    // the nurse strikes it as an artefact, the next counted reading takes its place.
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let chair = chair_of(s, a, 0).await;
        s.register_monitor(&admin(&[a]), chair, "BED-1", "Monitor 1").await.unwrap();
        let sess = seated(s, a, chair, "A-MON5", T0).await;
        let n = nurse(&[a]);
        s.act_on_session(&n, sess, SessionAction::StartPreDoseChecks).await.unwrap();
        let bp = |sys: f64, dia: f64| VitalSigns {
            systolic_mmhg: Some(Mmhg(sys)),
            diastolic_mmhg: Some(Mmhg(dia)),
            ..Default::default()
        };
        // A cuff artefact first (96/60), struck; then the real pre-dose reading.
        s.record_monitor_message(message("BED-1", "B1", vec![(T0, bp(96.0, 60.0))])).await.unwrap();
        let first = s.device_readings(&n, sess).await.unwrap()[0].record.id;
        s.review_device_reading(&n, sess, first, DeviceReadingDecision::Strike, Some("cuff loose".into()))
            .await
            .unwrap();
        clock.advance(Duration::seconds(30));
        s.record_monitor_message(message("BED-1", "B2", vec![(clock.now(), bp(128.0, 82.0))])).await.unwrap();
        s.act_on_session(&n, sess, SessionAction::StartDose).await.unwrap();

        // 10 min after the dose, 140/86: +44/+26 over the struck artefact, +12/+4 over the
        // counted baseline. No rise alert.
        clock.advance(Duration::minutes(10));
        let out = s.record_monitor_message(message("BED-1", "B3", vec![(clock.now(), bp(140.0, 86.0))])).await.unwrap();
        assert!(matches!(out, MonitorOutcome::Recorded { alerts: 0, .. }), "{out:?}");
        assert!(open_alerts(s, a, sess).await.iter().all(|x| x.rule != "bp_rise_from_baseline"));
        // The rule itself still works against the counted baseline (128/82 + 40).
        clock.advance(Duration::minutes(1));
        let out = s.record_monitor_message(message("BED-1", "B4", vec![(clock.now(), bp(170.0, 90.0))])).await.unwrap();
        assert!(matches!(out, MonitorOutcome::Recorded { alerts: 1, .. }), "{out:?}");
        assert!(open_alerts(s, a, sess).await.iter().any(|x| x.rule == "bp_rise_from_baseline"));
    }
}

fn hl7_time(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An ORU^R01 from the monitor at PV1-3 `bed`, one OBR per (time, SpO2) with a full set of
/// MDC-coded vitals, the blood pressure in kPa.
fn oru(control: &str, bed: &str, readings: &[(OffsetDateTime, f64)]) -> String {
    let mut m = format!(
        "MSH|^~\\&|GW|FAC|KETA|CLINIC|{}||ORU^R01^ORU_R01|{control}|P|2.6\rPID|||SYNTH-1^^^SIM^MR\rPV1||O|{bed}\r",
        hl7_time(readings[0].0)
    );
    for (i, (at, spo2)) in readings.iter().enumerate() {
        let t = hl7_time(*at);
        m.push_str(&format!("OBR|{}|||182777000^monitoring of patient^SNOMED-CT|||{t}\r", i + 1));
        m.push_str("OBX|1|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC||17.6|kPa^kilopascal^UCUM|||||R\r");
        m.push_str("OBX|2|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC||10.9|kPa^kilopascal^UCUM|||||R\r");
        m.push_str("OBX|3|NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC||13.1|kPa^kilopascal^UCUM|||||R\r");
        m.push_str("OBX|4|NM|147842^MDC_ECG_HEART_RATE^MDC||72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R\r");
        m.push_str(&format!("OBX|5|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R\r"));
        m.push_str("OBX|6|NM|151562^MDC_RESP_RATE^MDC||14|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R\r");
    }
    m
}

/// Sends one framed message and reads its ACK's MSA-1 and MSA-2.
async fn exchange(conn: &mut tokio::net::TcpStream, message: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut frame = vec![0x0b];
    frame.extend_from_slice(message.as_bytes());
    frame.extend_from_slice(&[0x1c, 0x0d]);
    conn.write_all(&frame).await.unwrap();
    let mut got = Vec::new();
    while !got.ends_with(&[0x1c, 0x0d]) {
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "the listener closed the connection before the ACK");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let msa = text.split('\r').find(|s| s.starts_with("MSA|")).unwrap_or_else(|| panic!("no MSA in {text:?}"));
    let f: Vec<&str> = msa.split('|').collect();
    (f[1].to_string(), f.get(2).unwrap_or(&"").to_string())
}

#[tokio::test]
async fn over_mllp_the_ack_follows_the_commit_a_resend_is_recorded_once_and_a_batch_is_whole_or_nothing() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let chair = chair_of(s, a, 0).await;
        s.register_monitor(&admin(&[a]), chair, "INFUSION^^CHAIR-1", "Monitor 1").await.unwrap();
        let sess = seated(s, a, chair, "A-MON6", T0).await;
        let n = nurse(&[a]);
        let (addr, _) = keta_web::monitors::spawn_listener(
            "127.0.0.1:0".parse().unwrap(),
            s.clone(),
            keta_web::monitors::MonitorSettings::default(),
        )
        .await
        .unwrap();
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();

        // AA, and the reading is already stored when the ACK arrives (the ACK follows the
        // commit): converted from kPa, typed, at the observation time, with its mean pressure.
        let at = T0 - Duration::seconds(20);
        let one = oru("C-1", "INFUSION^^CHAIR-1", &[(at, 97.0)]);
        assert_eq!(exchange(&mut conn, &one).await, ("AA".into(), "C-1".into()));
        let stored = s.device_readings(&n, sess).await.unwrap();
        assert_eq!(stored.len(), 1);
        let r = &stored[0];
        assert_eq!(r.record.taken_at, at);
        assert_eq!(r.record.source, VitalsSource::Monitor);
        assert_eq!(r.record.vitals.systolic_mmhg, Some(Mmhg(132.0)), "17.6 kPa");
        assert_eq!(r.record.vitals.diastolic_mmhg, Some(Mmhg(81.8)), "10.9 kPa");
        assert_eq!(r.mean_mmhg, Some(Mmhg(98.3)), "13.1 kPa");
        assert_eq!(r.record.vitals.heart_rate_bpm, Some(BeatsPerMinute(72.0)));
        assert_eq!(r.record.vitals.spo2_pct, Some(Percent(97.0)));
        assert_eq!(r.record.vitals.resp_rate_per_min, Some(keta_domain::units::BreathsPerMinute(14.0)));

        // The same control id again: AA again, recorded once.
        assert_eq!(exchange(&mut conn, &one).await, ("AA".into(), "C-1".into()));
        assert_eq!(s.list_vitals(&n, sess).await.unwrap().len(), 1);

        // A batch of two observation times with one implausible reading: AE, none attached,
        // kept for review.
        let batch = oru("C-2", "INFUSION^^CHAIR-1", &[(T0 - Duration::seconds(10), 96.0), (T0, 960.0)]);
        assert_eq!(exchange(&mut conn, &batch).await.0, "AE");
        assert_eq!(s.list_vitals(&n, sess).await.unwrap().len(), 1);
        // A good batch of two: both attached.
        let batch = oru("C-3", "INFUSION^^CHAIR-1", &[(T0 - Duration::seconds(10), 96.0), (T0, 95.0)]);
        assert_eq!(exchange(&mut conn, &batch).await, ("AA".into(), "C-3".into()));
        assert_eq!(s.list_vitals(&n, sess).await.unwrap().len(), 3);

        // Refused readings go to the review list with their mean pressure, never to a chart.
        let far = oru("C-4", "INFUSION^^CHAIR-1", &[(T0 - Duration::hours(2), 97.0)]);
        assert_eq!(exchange(&mut conn, &far).await.0, "AE");
        let unknown = oru("C-5", "INFUSION^^CHAIR-9", &[(T0, 97.0)]);
        assert_eq!(exchange(&mut conn, &unknown).await.0, "AE");
        assert_eq!(s.list_vitals(&n, sess).await.unwrap().len(), 3);
        let review = s.monitor_review_list(&n).await.unwrap();
        assert!(review.iter().any(|r| r.device_identifier == "INFUSION^^CHAIR-9" && r.mean_mmhg == Some(Mmhg(98.3))));
        assert!(review.iter().any(|r| r.reason.contains("outside the accepted window")), "{review:?}");
    }
}

/// The next whole server-sent event of a stream (keep-alive comments skipped).
async fn next_event(r: &mut reqwest::Response) -> String {
    let mut text = String::new();
    loop {
        if let Some(end) = text.find("\n\n") {
            let event = text[..end].to_string();
            if event.starts_with(':') {
                text.drain(..end + 2);
                continue;
            }
            return event;
        }
        let chunk = r.chunk().await.unwrap().expect("the stream ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_session_screen_streams_the_monitors_readings_and_the_nurse_strikes_one_with_a_reason() {
    let clock = ManualClock::at(T0);
    for db in TestDb::all(&clock).await {
        clock.set(T0);
        let s = &db.store;
        let a = site(s, "A").await;
        let chair = chair_of(s, a, 0).await;
        s.register_monitor(&admin(&[a]), chair, "BED-1", "Monitor 1").await.unwrap();
        let sess = seated(s, a, chair, "A-MON7", T0).await;
        let staff = keta_testkit::seed_staff(s, &[a]).await;
        let app = keta_testkit::spawn_app(s.clone()).await;
        let rn = staff.iter().find(|x| x.role == Role::Nurse).unwrap();
        assert_eq!(app.login(rn, T0).await.status(), 200);
        let mut m = message("BED-1", "W1", vec![]);
        m.readings = Ok(vec![with_mean(T0 - Duration::seconds(5), 88.0, 93.0)]);
        s.record_monitor_message(m).await.unwrap();
        let id = sess.0;

        // The session screen hooks the live panel; the stream's first event is the panel,
        // marked as monitor readings, with the mean pressure.
        let page = app.get(&format!("/sessions/{id}")).await.text().await.unwrap();
        assert!(page.contains(&format!(r#"sse-connect="/sessions/{id}/device-readings/events""#)), "{:?}", db.kind);
        let mut events = app.get(&format!("/sessions/{id}/device-readings/events")).await;
        assert_eq!(events.status(), 200);
        let first = next_event(&mut events).await;
        assert!(first.starts_with("event: device-readings"), "{first}");
        assert!(
            first.contains(">monitor</span>") && first.contains("<td>93</td>") && first.contains("<td>88</td>"),
            "{first}"
        );
        assert!(first.contains("Strike as artefact"), "{first}");

        // A new reading arrives: the stream sends the panel again with it.
        clock.advance(Duration::seconds(5));
        let mut m = message("BED-1", "W2", vec![]);
        m.readings = Ok(vec![with_mean(clock.now(), 91.0, 95.0)]);
        s.record_monitor_message(m).await.unwrap();
        keta_web::ui::live::publish(Some(a));
        let next = next_event(&mut events).await;
        assert!(next.contains("<td>95</td>") && next.contains("<td>91</td>"), "{next}");
        drop(events);

        // Strike without a reason: refused beside the field, nothing changed.
        let reading = s.device_readings(&nurse(&[a]), sess).await.unwrap()[1].record.id.0;
        let path = format!("/sessions/{id}/device-readings/{reading}");
        let form = |token: &'static str, reason: &'static str| {
            vec![("csrf_token", "from-the-header"), ("form_token", token), ("decision", "strike"), ("reason", reason)]
        };
        let r = app.request(reqwest::Method::POST, &path).form(&form("t-1", "")).send().await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("say why the reading is an artefact"));
        assert_eq!(s.device_readings(&nurse(&[a]), sess).await.unwrap()[1].status, DeviceReadingStatus::Unreviewed);
        // With a reason: struck, back to the session; a resubmitted form records once.
        let r =
            app.request(reqwest::Method::POST, &path).form(&form("t-2", "probe off the finger")).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let r =
            app.request(reqwest::Method::POST, &path).form(&form("t-2", "probe off the finger")).send().await.unwrap();
        assert_eq!(r.status(), 303, "the same form again replays its first answer");
        let panel = app.get(&format!("/sessions/{id}/device-readings")).await.text().await.unwrap();
        assert!(panel.contains("Struck by nurse.test") && panel.contains("probe off the finger"), "{panel}");
        let api: serde_json::Value =
            app.get(&format!("/api/v1/sessions/{id}/device-readings")).await.json().await.unwrap();
        assert_eq!(api[1]["status"], "struck");
        assert_eq!(api[1]["mean_mmhg"], 93.0);
        let vitals: serde_json::Value = app.get(&format!("/api/v1/sessions/{id}/vitals")).await.json().await.unwrap();
        assert_eq!(vitals.as_array().unwrap().len(), 1, "the struck reading is not among the session's vitals");

        // The API review: confirm the other one; the front desk may not.
        let other = api[0]["record"]["id"].as_i64().unwrap();
        let r = app
            .post_json(
                &format!("/api/v1/sessions/{id}/device-readings/{other}/review"),
                &serde_json::json!({"decision": "confirm"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let desk = staff.iter().find(|x| x.role == Role::FrontDesk).unwrap();
        assert_eq!(app.login(desk, T0).await.status(), 200);
        let r = app
            .post_json(
                &format!("/api/v1/sessions/{id}/device-readings/{other}/review"),
                &serde_json::json!({"decision": "strike", "reason": "x"}),
            )
            .await;
        assert_eq!(r.status(), 403);
    }
}
