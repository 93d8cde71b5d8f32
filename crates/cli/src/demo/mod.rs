//! The synthetic demo clinic (all data invented).
//!
//! Two sites (Austin and Denver) and 60 patients across the four ways Keta's clinics give
//! ketamine: IV racemic infusions, IM injections, esketamine nasal spray and oral or
//! sublingual doses at home. Each patient has an intake (weight, antidepressant history,
//! Maudsley staging, a contraindication check for the chosen route), an induction course
//! and, for many responders, a maintenance course; complete sessions with vitals every few
//! minutes, MOAA/S, CADSS-6, side effects, BP alerts that were acknowledged, adverse events;
//! and questionnaires before each session and between sessions.
//!
//! Outcomes are drawn by quota so the clinic resembles the real-world cohorts of
//! clinical-reference §5: IV induction PHQ-9 response ≈54 % and remission ≈29 % (McInnes
//! 2022, with ≈8 % worsening and responders relapsing in follow-up), at-home sublingual
//! ≈63 %/33 % (Hull 2022), IM ≈50 %/20 % (Oliver 2022), esketamine ≈59 %/36 % (pooled
//! TRANSFORM). Outcomes are what [`keta_domain::records::course_outcomes`] computes from the
//! responses linked to each induction course (baseline = first, outcome = latest score).
//! A few stories are placed on purpose: exactly one serious adverse event, one patient
//! with a hard stop for esketamine treated by IV (and one with a hard stop for racemic
//! ketamine treated with esketamine), and one positive PHQ-9 item 9 from yesterday's
//! check-in whose urgent alert is still open.
//!
//! Determinism: everything is drawn up front from a ChaCha RNG seeded with `seed`, placed
//! relative to today's date at each site, so the same seed on the same day gives the same
//! clinic. Only today's board (a session discharged earlier, one in monitoring, one checked
//! in, three scheduled, at each site) is placed relative to the current time.
//!
//! Speed: the writes run in stages (sites, patients, intake, courses, history, today),
//! each stage's writes concurrently so the SQLite writer commits them in groups, and the
//! history goes through the batch import (one transaction per patient).

mod plan;
mod synthesis;
mod writing;

use keta_store::{Actor, Store};

pub(crate) use keta_store::site_time::SiteClock;
pub(crate) use synthesis::{
    Physiology, Questionnaires, SessionEvent, SessionSpec, answers_for, normal, phq9_answers, synth_session,
};
use writing::build;

pub const DEFAULT_SEED: u64 = 20261127;

/// Builds the demo clinic unless the database already has sites, then describes it in one line.
pub async fn ensure(store: &Store, seed: u64) -> anyhow::Result<String> {
    let actor = Actor::system();
    if store.list_sites(&actor).await?.is_empty() {
        build(store, seed).await?;
    }
    summary(store).await
}

/// "60 patients at 2 sites (Austin, Denver), 812 sessions".
pub async fn summary(store: &Store) -> anyhow::Result<String> {
    let sites = store.list_sites(&Actor::system()).await?;
    let counts = store.record_counts().await?;
    let (patients, sessions) = (counts.patients, counts.sessions);
    let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
    Ok(format!(
        "{patients} patients at {} site{} ({}), {sessions} sessions",
        sites.len(),
        if sites.len() == 1 { "" } else { "s" },
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keta_domain::course::Phase;
    use keta_domain::patient::Indication;
    use keta_domain::records::AlertLevel;
    use keta_domain::session::SessionState;
    use keta_store::alerts::AlertQuery;
    use keta_store::params;
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    use super::synthesis::demo_discharge_settings;
    use super::*;

    async fn fresh(dir: &tempfile::TempDir, name: &str, now: OffsetDateTime) -> Store {
        let url = format!("sqlite://{}", dir.path().join(name).display());
        Store::open_with_clock(&url, Arc::new(move || now)).await.expect("open")
    }

    /// Everything clinically meaningful, without database ids.
    async fn fingerprint(store: &Store) -> (Vec<String>, Vec<String>, String) {
        keta_store::testing::read(store, |c| {
                let patients = c
                    .query("SELECT s.code, p.mrn, p.given_name, p.family_name, p.date_of_birth, p.indication FROM patients p JOIN sites s ON s.id = p.site_id ORDER BY p.mrn", &[])?
                    .iter()
                    .map(|r| Ok(format!("{} {} {} {} {} {}", r.text("code")?, r.text("mrn")?, r.text("given_name")?, r.text("family_name")?, r.text("date_of_birth")?, r.text("indication")?)))
                    .collect::<keta_store::Result<Vec<_>>>()?;
                let scores = c
                    .query(
                        "SELECT p.mrn, q.instrument, q.completed_at, q.total FROM questionnaire_responses q JOIN patients p ON p.id = q.patient_id
                         ORDER BY p.mrn, q.completed_at, q.instrument, q.total",
                        &[],
                    )?
                    .iter()
                    .map(|r| Ok(format!("{} {} {} {:?}", r.text("mrn")?, r.text("instrument")?, r.i64("completed_at")?, r.opt_i64("total")?)))
                    .collect::<keta_store::Result<Vec<_>>>()?;
                let v = c.query_opt("SELECT count(*) AS n, sum(systolic_mmhg) AS sum_systolic_mmhg, sum(heart_rate_bpm) AS sum_heart_rate_bpm, count(DISTINCT session_id) AS count_session_id FROM vitals", &[])?.expect("row");
                Ok((patients, scores, format!("{} {:?} {:?} {}", v.i64("n")?, v.opt_f64("sum_systolic_mmhg")?, v.opt_f64("sum_heart_rate_bpm")?, v.i64("count_session_id")?)))
            })
            .await
            .expect("read")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_seed_same_clinic_with_every_feature() {
        let now = datetime!(2026-11-27 16:20 UTC);
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (fresh(&dir, "a.db", now).await, fresh(&dir, "b.db", now).await);
        let started = std::time::Instant::now();
        let summary = ensure(&a, DEFAULT_SEED).await.unwrap();
        eprintln!("demo built in {:?}: {summary}", started.elapsed());
        ensure(&b, DEFAULT_SEED).await.unwrap();
        let (fa, fb) = (fingerprint(&a).await, fingerprint(&b).await);
        assert_eq!(fa.0.len(), 60);
        assert!(fa.1.len() > 1000, "{} responses", fa.1.len());
        assert_eq!(fa, fb, "the same seed must give the same clinic");
        // Reusing the database leaves it as it is.
        assert_eq!(ensure(&a, 1).await.unwrap(), summary);
        assert!(summary.starts_with("60 patients at 2 sites (Austin, Denver), "), "{summary}");

        let all = Actor::system();
        let sites = a.list_sites(&all).await.unwrap();
        assert_eq!(sites.len(), 2);
        let (routes, serious) = keta_store::testing::read(&a, |c| {
            let routes = c
                .query("SELECT DISTINCT route FROM courses ORDER BY route", &[])?
                .iter()
                .map(|r| r.text("route"))
                .collect::<keta_store::Result<Vec<_>>>()?;
            let serious = c
                .query_opt("SELECT count(*) AS n FROM adverse_events WHERE serious = $1", params![true])?
                .expect("row")
                .i64("n")?;
            Ok((routes, serious))
        })
        .await
        .unwrap();
        for r in ["im_racemic", "intranasal_esketamine", "iv_racemic", "sublingual_racemic"] {
            assert!(routes.iter().any(|x| x == r), "{r} missing from {routes:?}");
        }
        assert_eq!(serious, 1, "exactly one serious adverse event");
        let open =
            a.list_alerts(&all, AlertQuery { open_only: true, limit: 1000, ..Default::default() }).await.unwrap();
        assert!(
            open.iter().any(|x| x.rule == "phq9_phq9_item9" && x.level == AlertLevel::Urgent && x.session_id.is_none()),
            "{open:?}"
        );
        let acked = a.list_alerts(&all, AlertQuery { limit: 1000, ..Default::default() }).await.unwrap();
        assert!(
            acked.iter().any(|x| x.acknowledged_at.is_some()
                && (x.rule.starts_with("pre_dose_bp") || x.rule == "bp_rise_from_baseline"))
        );

        // Every discharged session's record satisfies the discharge rules, judged at
        // the time it was discharged with the site's (demo) settings.
        let mut judged = 0;
        for site in &sites {
            let settings = a.site_discharge_settings(&all, site.id).await.unwrap();
            assert_eq!(settings, demo_discharge_settings());
            let sessions =
                a.sessions_at_site(&all, site.id, now - Duration::days(400), now + Duration::days(60)).await.unwrap();
            for x in sessions.iter().filter(|x| x.state == SessionState::Discharged) {
                let vitals = a.list_vitals(&all, x.id).await.unwrap();
                let obs = a.list_observations(&all, x.id).await.unwrap();
                let responses: Vec<_> = a
                    .list_responses(&all, x.patient_id, None)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|r| r.session_id == Some(x.id))
                    .collect();
                let record = keta_domain::discharge::DischargeRecord {
                    rules: keta_domain::discharge::DischargeRules::builtin(),
                    safety: keta_domain::alerts::SafetyRules::builtin(),
                    settings: &settings,
                    vitals: &vitals,
                    observations: &obs,
                    responses: &responses,
                    bp_decisions: &[],
                };
                let blockers = record.blockers(x.dose_started_at.unwrap(), x.discharged_at.unwrap());
                assert!(blockers.is_empty(), "session {}: {blockers:?}", x.id);
                judged += 1;
            }
        }
        assert!(judged > 500, "{judged} discharged sessions judged");

        // Today's board at each site.
        for s in &sites {
            let today =
                a.sessions_at_site(&all, s.id, now - Duration::hours(8), now + Duration::hours(8)).await.unwrap();
            let states: Vec<SessionState> = today.iter().map(|x| x.state).collect();
            for want in
                [SessionState::Scheduled, SessionState::CheckedIn, SessionState::Monitoring, SessionState::Discharged]
            {
                assert!(states.contains(&want), "{}: {want:?} missing from {states:?}", s.name);
            }
        }

        // Outcomes: responders and non-responders, at rates like the §5 cohorts.
        let ids: Vec<i64> = keta_store::testing::read(&a, |c| {
            c.query("SELECT id FROM patients ORDER BY id", &[])?.iter().map(|r| r.i64("id")).collect()
        })
        .await
        .unwrap();
        let (mut n, mut responded, mut remitted, mut relapsed, mut worse) = (0, 0, 0, 0, 0);
        for id in ids {
            let chart = a.patient_chart(&all, keta_domain::ids::PatientId(id)).await.unwrap();
            let Some(induction) = chart.courses.iter().find(|c| c.phase == Phase::Induction) else { continue };
            for o in chart.outcomes.iter().filter(|o| o.course_id == induction.id && o.outcome.instrument == "phq9") {
                if chart.patient.indication != Indication::Depression {
                    continue;
                }
                n += 1;
                responded += usize::from(o.outcome.responded == Some(true));
                remitted += usize::from(o.outcome.remitted == Some(true));
                relapsed += usize::from(o.outcome.relapsed == Some(true));
                worse += usize::from(o.outcome.change > 0);
            }
        }
        let rate = |k: usize| k as f64 / n as f64;
        eprintln!(
            "depression induction: n={n} response {:.2} remission {:.2} relapsed {relapsed} worse {worse}",
            rate(responded),
            rate(remitted)
        );
        assert_eq!(n, 46);
        assert!((0.5..0.65).contains(&rate(responded)), "response {}", rate(responded));
        assert!((0.25..0.4).contains(&rate(remitted)), "remission {}", rate(remitted));
        assert!(relapsed >= 3 && worse >= 2 && responded < n);
    }
}
