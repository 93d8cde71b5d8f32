//! Writing the plan through the store, in stages whose writes run concurrently.

use anyhow::Context;
use futures::future::try_join_all;
use time::{Date, Duration, OffsetDateTime};

use keta_domain::course::Route;
use keta_domain::ids::{ChairId, CourseId, SiteId};
use keta_domain::patient::Patient;
use keta_domain::records::{CompletedBy, NewQuestionnaireResponse};
use keta_domain::session::{NewSession, SessionAction};
use keta_domain::site::NewSite;
use keta_domain::units::Milligrams;
use keta_store::import::{HistoricalCheckIn, HistoricalSession};
use keta_store::{Actor, Store};

use super::plan::*;
use super::synthesis::*;

pub(super) async fn build(store: &Store, seed: u64) -> anyhow::Result<()> {
    let actor = Actor::system();
    let now = store.now();
    let plan = plan(seed, now);
    let (site_ids, chairs) = create_sites(store, &actor).await?;
    // Patients, then their intake, then courses: each stage's writes run together.
    let patients = try_join_all(plan.patients.iter().map(|p| {
        let mut new = p.new.clone();
        new.site_id = site_ids[p.site];
        store.create_patient(&actor, new)
    }))
    .await
    .context("creating patients")?;
    record_intake(store, &actor, &plan, &patients).await?;
    let courses = create_courses(store, &actor, &plan, &patients).await?;

    // Consent (and REMS enrolment for esketamine) for every route a patient is treated by,
    // signed on the tablet and countersigned, so today's sessions can start.
    try_join_all(plan.patients.iter().zip(&patients).map(|(p, pat)| {
        let routes: Vec<(Route, Date)> = p.courses.iter().map(|c| (c.route, c.start_date)).collect();
        consent_demo_patient(store, pat, routes, now)
    }))
    .await
    .context("recording consents")?;

    import_history(store, &actor, &plan, &patients, &courses, &chairs).await?;
    book_today(store, &actor, &plan, &patients, &courses, &chairs, now).await
}

/// The sites and their chairs (chairs in the order the plan names them).
async fn create_sites(store: &Store, actor: &Actor) -> anyhow::Result<(Vec<SiteId>, Vec<Vec<ChairId>>)> {
    let mut site_ids = Vec::new();
    let mut chairs: Vec<Vec<ChairId>> = Vec::new();
    for def in &SITES {
        let site = store
            .create_site(
                actor,
                NewSite {
                    code: def.code.into(),
                    name: def.name.into(),
                    time_zone: def.zone.into(),
                    crisis_line: "988".into(),
                },
                def.chairs.iter().map(|c| c.to_string()).collect(),
            )
            .await
            .with_context(|| format!("creating site {}", def.name))?;
        // Demo values (see DEMO_VITALS_WITHIN_MINUTES): a real site starts without them.
        store
            .set_site_discharge_settings(actor, site.id, demo_discharge_settings())
            .await
            .with_context(|| format!("setting the demo discharge settings of {}", def.name))?;
        let mut cs = store.list_chairs(actor, site.id).await?;
        cs.sort_by_key(|c| def.chairs.iter().position(|n| *n == c.name));
        chairs.push(cs.into_iter().map(|c| c.id).collect());
        site_ids.push(site.id);
    }
    Ok((site_ids, chairs))
}

/// Each patient's intake (weights, trials, medications, allergies, pregnancy status,
/// eligibility), all patients' writes together.
async fn record_intake(store: &Store, actor: &Actor, plan: &Plan, patients: &[Patient]) -> anyhow::Result<()> {
    try_join_all(plan.patients.iter().zip(patients).map(|(p, pat)| async move {
        for w in &p.weights {
            store.add_weight(actor, pat.id, w.clone()).await?;
        }
        for t in &p.trials {
            store.add_antidepressant_trial(actor, pat.id, t.clone()).await?;
        }
        for m in &p.medications {
            store.add_medication(actor, pat.id, m.clone()).await?;
        }
        for a in &p.allergies {
            store.add_allergy(actor, pat.id, a.clone()).await?;
        }
        if let Some(s) = &p.pregnancy {
            store.record_pregnancy_status(actor, pat.id, s.clone()).await?;
        }
        for a in &p.assessments {
            store.assess_eligibility(actor, pat.id, a.clone()).await?;
        }
        Ok::<(), keta_store::StoreError>(())
    }))
    .await
    .context("recording intake")?;
    Ok(())
}

/// Each patient's courses, all patients' writes together; their ids in plan order.
async fn create_courses(
    store: &Store,
    actor: &Actor,
    plan: &Plan,
    patients: &[Patient],
) -> anyhow::Result<Vec<Vec<CourseId>>> {
    let courses: Vec<Vec<CourseId>> = try_join_all(plan.patients.iter().zip(patients).map(|(p, pat)| async move {
        let mut ids = Vec::new();
        for c in &p.courses {
            ids.push(store.create_course(actor, pat.id, c.clone()).await?.id);
        }
        Ok::<_, keta_store::StoreError>(ids)
    }))
    .await
    .context("creating courses")?;
    Ok(courses)
}

/// The history: one import transaction per patient for sessions, one for check-ins.
async fn import_history(
    store: &Store,
    actor: &Actor,
    plan: &Plan,
    patients: &[Patient],
    courses: &[Vec<CourseId>],
    chairs: &[Vec<ChairId>],
) -> anyhow::Result<()> {
    let mut history = Vec::new();
    let mut check_ins = Vec::new();
    for ((p, pat), ids) in plan.patients.iter().zip(patients).zip(courses) {
        let mut batch: Vec<HistoricalSession> = p
            .sessions
            .iter()
            .map(|ps| {
                let mut s = ps.session.clone();
                s.course_id = ids[ps.slot];
                s.chair_id = ps.chair.map(|c| chairs[p.site][c]);
                s
            })
            .collect();
        batch.sort_by_key(|s| s.scheduled_for);
        history.push(batch);
        check_ins.push(
            p.check_ins
                .iter()
                .map(|c| HistoricalCheckIn {
                    patient_id: pat.id,
                    course_id: c.slot.map(|s| ids[s]),
                    response: c.response.clone(),
                    acknowledge_alerts: c.ack.clone(),
                })
                .collect::<Vec<_>>(),
        );
    }
    let imports = history.into_iter().map(|b| store.import_history(actor, b));
    let responses = check_ins.into_iter().map(|b| store.import_responses(actor, b));
    let (a, b) = futures::join!(try_join_all(imports), try_join_all(responses));
    a.context("importing session history")?;
    b.context("importing check-ins")?;
    Ok(())
}

/// Today's board: the sessions discharged earlier and in monitoring imported, the rest booked
/// (and the checked-in one checked in with its PHQ-9).
async fn book_today(
    store: &Store,
    actor: &Actor,
    plan: &Plan,
    patients: &[Patient],
    courses: &[Vec<CourseId>],
    chairs: &[Vec<ChairId>],
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    try_join_all(plan.patients.iter().zip(patients).zip(courses).filter_map(|((p, pat), ids)| {
        let b = p.board.as_ref()?;
        let course = *ids.last().expect("a course");
        let chair = chairs[p.site][b.chair % chairs[p.site].len()];
        Some(async move {
            if let Some(s) = &b.import {
                let mut s = s.clone();
                s.course_id = course;
                s.chair_id = Some(chair);
                store.import_history(actor, vec![s]).await?;
                return Ok::<(), keta_store::StoreError>(());
            }
            let session = store
                .create_session(
                    actor,
                    course,
                    NewSession {
                        scheduled_for: b.scheduled_for,
                        chair_id: Some(chair),
                        planned_dose_mg: Some(Milligrams(b.dose_mg)),
                    },
                )
                .await?;
            if b.role == BoardRole::CheckedIn {
                store
                    .submit_response(
                        actor,
                        pat.id,
                        NewQuestionnaireResponse {
                            instrument: "phq9".into(),
                            answers: b.phq9.clone(),
                            course_id: Some(course),
                            session_id: Some(session.id),
                            completed_at: Some(now - mins(14)),
                            completed_by: CompletedBy::Patient,
                        },
                    )
                    .await?;
                // Scheduled ten minutes ago, which just after local midnight is yesterday: the
                // reason is recorded only then.
                let why = "Demo: scheduled just before local midnight";
                store.act_on_session_confirmed(actor, session.id, SessionAction::CheckIn, Some(why.into())).await?;
            }
            Ok(())
        })
    }))
    .await
    .context("scheduling today's sessions")?;
    Ok(())
}

/// Signs every consent a demo patient's courses need: the treatment consent per route and,
/// for esketamine, the REMS enrolment (dated the course start or yesterday, whichever is
/// earlier; the REMS id is synthetic), recorded by the demo nurse and countersigned by the
/// demo prescriber. Three patients in four also consent to research use of their
/// de-identified data (the research export's population).
pub(super) async fn consent_demo_patient(
    store: &Store,
    pat: &keta_domain::patient::Patient,
    mut routes: Vec<(Route, Date)>,
    now: OffsetDateTime,
) -> Result<(), keta_store::StoreError> {
    use keta_domain::access::Role;
    use keta_domain::consent::{NewConsent, rems_form, treatment_form};
    use keta_store::SiteScope;
    let nurse = Actor::staff("rn.demo", Role::Nurse, SiteScope::All);
    let prescriber = Actor::staff("dr.demo", Role::Prescriber, SiteScope::All);
    routes.sort_by_key(|(r, d)| (r.as_str(), *d));
    routes.dedup_by_key(|(r, _)| *r);
    let name = format!("{} {}", pat.given_name, pat.family_name);
    // A synthetic signature: two strokes that differ by patient.
    let k = pat.id.0 % 97;
    let signature = format!(
        "M 400 {} L 1800 900 L 3200 {} L 4600 700 M 5200 1500 L {} 1300",
        1800 + k * 4,
        2200 - k * 3,
        7000 + k * 20
    );
    let yesterday = (now - Duration::days(1)).date();
    let mut all_forms = Vec::new();
    for (route, start) in routes {
        all_forms.push((treatment_form(route), None));
        if route == Route::IntranasalEsketamine {
            all_forms.push((rems_form(), Some(start.min(yesterday))));
        }
    }
    if pat.id.0 % 4 != 0 {
        all_forms.push((
            keta_domain::consent::current_form("research_data_sharing").expect("the research consent form ships"),
            None,
        ));
    }
    for (form, enrolled) in all_forms {
        let new = NewConsent {
            form_key: form.key.clone(),
            form_version: form.version,
            patient_typed_name: name.clone(),
            patient_signature_svg: signature.clone(),
            rems_patient_id: enrolled.map(|_| format!("DEMO-{:06}", pat.id.0)),
            rems_enrolled_on: enrolled,
        };
        let rec = store.record_consent(&nurse, pat.id, new).await?;
        store.countersign_consent(&prescriber, rec.id).await?;
    }
    Ok(())
}
