//! Building the panel from the store.

use super::*;

/// Reads the patient's check-ins, relapse settings and at-home programme and builds the panel.
pub(crate) async fn build(
    st: &AppState,
    user: &CurrentUser,
    chart: &PatientChart,
    clock: &SiteClock,
    now: OffsetDateTime,
    input: &mut BetweenInput,
) -> UiResult<BetweenView> {
    let actor = &user.actor;
    let id = chart.patient.id;
    let b = st.store.between_sessions(actor, id).await?;
    let (overview, programmes, sets, settings) = (b.checkins, b.programmes, b.question_sets, b.relapse_settings);
    let changes = b.schedule_changes;

    let mut links_current = Vec::new();
    let mut links_past = Vec::new();
    for l in &overview.links {
        let row = link_row(clock, l, &overview, &chart.courses, now);
        match l.state(now) {
            LinkState::Open | LinkState::NotYetOpen { .. } => links_current.push((l.expires_at, row)),
            _ => links_past.push(row),
        }
    }
    links_current.sort_by_key(|(t, _)| *t);

    let review = input.review.take();
    let dispense = input.dispense.take();
    let home = programmes
        .iter()
        .map(|p| {
            let r = &p.reconciliation;
            let (dispense_form, dispense_errors) = match &dispense {
                Some((c, f, e)) if *c == p.course_id.0 => (f.clone(), e.clone()),
                _ => (FormData::empty(), Errors::new()),
            };
            HomeView {
                course_id: p.course_id.0,
                course: chart
                    .courses
                    .iter()
                    .find(|c| c.id == p.course_id)
                    .map_or_else(|| format!("Course {}", p.course_id), course_label),
                may_dispense_note: if p.dispenses == 0 {
                    "No supply yet: the first one is not held."
                } else {
                    "The patient is up to date."
                },
                hold: if p.dispenses == 0 { vec![] } else { p.supply_hold.clone() },
                missing_settings: missing_settings(&p.missing_settings),
                dispensed: match p.dispenses {
                    0 => "None yet".into(),
                    1 => format!("{} (1 supply)", units_mg(r.dispensed_units, r.dispensed_mg.0)),
                    n => format!("{} ({n} supplies)", units_mg(r.dispensed_units, r.dispensed_mg.0)),
                } + &match (p.last_dispensed_at, &p.last_dispensed_by) {
                    (Some(at), Some(by)) => format!("; the latest on {} by {by}", clock.datetime(at)),
                    _ => String::new(),
                },
                logged: match p.doses_logged {
                    0 => "None yet".into(),
                    1 => format!("{} (1 dose)", units_mg(r.logged_units, r.logged_mg.0)),
                    n => format!("{} ({n} doses)", units_mg(r.logged_units, r.logged_mg.0)),
                },
                on_hand: on_hand(r),
                issues: r.issues.iter().map(|i| reconciliation_issue(clock, i)).collect(),
                missed: match (p.missed_checkins, p.dispenses) {
                    (1, 0) => "1 check-in".into(),
                    (n, 0) => format!("{n} check-ins"),
                    (1, _) => "1 check-in since the last supply".into(),
                    (n, _) => format!("{n} check-ins since the last supply"),
                },
                screens: p
                    .screens
                    .iter()
                    .map(|s| {
                        let form = review.as_ref().filter(|(id, _, _)| *id == s.id).map(|(_, f, e)| (f, e));
                        screen_row(clock, s, form)
                    })
                    .collect(),
                dispense_form,
                dispense_errors,
            }
        })
        .collect();

    let mut schedule_input = input.schedule.take();
    let schedules = chart
        .courses
        .iter()
        .rev()
        .filter(|c| c.status != CourseStatus::Stopped)
        .filter_map(|c| {
            let base = checkins::schedule_for_route(c.route)?;
            let change = changes.iter().find(|o| o.course_id == c.id);
            let mine = schedule_input.take_if(|(id, _)| *id == c.id.0).map(|(_, f)| f);
            Some(schedule_view(clock, c, base, change, mine))
        })
        .collect();

    let (send_form, send_errors) = input.send.take().unwrap_or_default();
    let send_checked = !send_errors.any() || send_form.checked("send");
    Ok(BetweenView {
        zone: clock.zone.clone(),
        safety: overview.safety_answers.iter().map(|s| safety_row(clock, s, &chart.open_alerts)).collect(),
        relapse: relapse_views(chart, &settings, clock, now),
        links_current: links_current.into_iter().map(|(_, r)| r).collect(),
        links_past,
        question_sets: sets.iter().map(|r| question_set_row(clock, r)).collect(),
        home,
        can_send: actor.can(Permission::EnterQuestionnaire),
        can_review: actor.can(Permission::PlanTreatment),
        can_dispense: actor.can(Permission::RecordLedger),
        forms: sendable_forms(),
        courses: chart
            .courses
            .iter()
            .rev()
            .filter(|c| c.status != CourseStatus::Stopped)
            .map(|c| Choice { value: c.id.0.to_string(), label: course_label(c) })
            .collect(),
        send_form,
        send_errors,
        send_checked,
        schedules,
        can_plan: actor.can(Permission::PlanTreatment),
    })
}
