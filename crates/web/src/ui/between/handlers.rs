//! The panel's form handlers.

use super::*;

/// Sends (when asked) and describes a freshly issued link for the show-once panel.
pub(super) async fn issued_view(st: &AppState, issued: &IssuedLink, send: bool, reissued: bool) -> IssuedView {
    let delivered = send
        && crate::reminders::deliver(
            &st.store,
            &st.reminders,
            issued,
            issued.email.as_deref(),
            issued.phone.as_deref(),
        )
        .await;
    if delivered {
        crate::ui::live::publish(Some(issued.link.site_id));
    }
    let delivery = match (send, delivered, issued.email.is_some(), issued.phone.is_some()) {
        (false, _, _, _) => "Not sent: hand this link to the patient.".to_string(),
        (true, true, true, _) => "Also sent to the patient's e-mail address on file.".to_string(),
        (true, true, false, _) => "Also sent by text message to the patient's mobile on file.".to_string(),
        (true, false, false, false) => {
            "Not sent: the patient has no e-mail address or mobile number on file. Hand this link to the patient."
                .to_string()
        }
        (true, false, _, _) => {
            "Sending failed (the reason is in the check-in list). Hand this link to the patient, or try again."
                .to_string()
        }
    };
    let until = match st.store.link_site_for_patients(issued.link.site_id).await {
        Ok(s) => {
            let c = SiteClock::named(&s.time_zone);
            c.datetime(issued.link.expires_at)
        }
        Err(_) => SiteClock::utc().datetime(issued.link.expires_at),
    };
    IssuedView {
        url: st.reminders.link_url(&issued.token),
        form: form_label(&issued.link.form),
        until,
        delivery,
        delivered,
        reissued,
    }
}

/// `POST /patients/{id}/checkins`: issue a check-in link now (and send it, when asked). The
/// answer is the chart with the link shown once.
pub async fn post_checkin(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let code = form.opt("form");
    if code.is_none() {
        errors.add("form", "choose what to send");
    }
    let course = match form.opt("course_id") {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(c) => Some(CourseId(c)),
            Err(_) => {
                errors.add("course_id", "choose a course from the list");
                None
            }
        },
    };
    if let Some(issued) =
        errors.submit(code, |code| st.store.issue_link(&user.actor, PatientId(id), course, code)).await?
    {
        let view = issued_view(&st, &issued, form.checked("send"), false).await;
        let input = BetweenInput { issued: Some(view), ..Default::default() };
        return render_chart(&st, &user, PatientId(id), StatusCode::OK, input).await;
    }
    let input = BetweenInput { send: Some((form, errors)), ..Default::default() };
    render_chart(&st, &user, PatientId(id), StatusCode::UNPROCESSABLE_ENTITY, input).await
}

/// `POST /patients/{id}/checkins/{link}/reissue`: a new token for an open link; the old one
/// stops working. The answer is the chart with the new link shown once.
pub async fn post_reissue(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, link)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    // The link must be this patient's (the store checks the site; this keeps URLs honest).
    // A sitter's link is refused by the store: it would reach the patient, not the sitter.
    let overview = st.store.checkin_overview(&user.actor, PatientId(id)).await?;
    if !overview.links.iter().any(|l| l.id == link) {
        return Err(StoreError::NotFound(format!("check-in link {link}")).into());
    }
    match st.store.reissue_link(&user.actor, link).await {
        Ok(issued) => {
            let view = issued_view(&st, &issued, form.checked("send"), true).await;
            let input = BetweenInput { issued: Some(view), ..Default::default() };
            render_chart(&st, &user, PatientId(id), StatusCode::OK, input).await
        }
        Err(e) => {
            let mut errors = Errors::new();
            errors.absorb(e)?;
            let input = BetweenInput { notice: Some(errors.general.join(" ")), ..Default::default() };
            render_chart(&st, &user, PatientId(id), StatusCode::CONFLICT, input).await
        }
    }
}

/// `POST /patients/{id}/pre-dose-screens/{screen}/review`: what was done about a refused screen.
pub async fn post_review(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, screen)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    let (programmes, _) = st.store.home_overview(&user.actor, PatientId(id)).await?;
    if !programmes.iter().any(|p| p.screens.iter().any(|s| s.id == screen)) {
        return Err(StoreError::NotFound(format!("pre-dose screen {screen}")).into());
    }
    let mut errors = Errors::new();
    let note = form.get("note").to_string();
    if errors.submit(Some(note), |note| st.store.review_pre_dose_screen(&user.actor, screen, note)).await?.is_some() {
        return Ok(see_other(format!("/patients/{id}#home")));
    }
    if !errors.general.is_empty() {
        // Already reviewed (or not refused): its form is no longer on the page.
        let input = BetweenInput { notice: Some(errors.general.join(" ")), ..Default::default() };
        return render_chart(&st, &user, PatientId(id), StatusCode::CONFLICT, input).await;
    }
    let input = BetweenInput { review: Some((screen, form, errors)), ..Default::default() };
    render_chart(&st, &user, PatientId(id), StatusCode::UNPROCESSABLE_ENTITY, input).await
}

/// `POST /patients/{id}/courses/{course}/dispenses`: a supply handed to the patient; refused
/// with the hold reasons while the patient is not up to date.
pub async fn post_dispense(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, course)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    let co = st.store.get_course(&user.actor, CourseId(course)).await?;
    if co.patient_id != PatientId(id) || !co.route.is_home() {
        return Err(StoreError::NotFound(format!("at-home course {course}")).into());
    }
    let mut errors = Errors::new();
    let units = form.integer("units", &mut errors);
    let strength = form.number("unit_strength_mg", &mut errors);
    if units.is_none() && !errors.has("units") {
        errors.add("units", "enter how many units are handed over");
    }
    if strength.is_none() && !errors.has("unit_strength_mg") {
        errors.add("unit_strength_mg", "enter the strength of one unit in mg");
    }
    let units = match units.map(u32::try_from) {
        Some(Ok(u)) => Some(u),
        Some(Err(_)) => {
            errors.add("units", "must be 1 to 1000 units");
            None
        }
        None => None,
    };
    let new = units.zip(strength).map(|(units, unit_strength_mg)| NewDispense { units, unit_strength_mg });
    if errors.submit(new, |new| st.store.record_dispense(&user.actor, CourseId(course), new)).await?.is_some() {
        return Ok(see_other(format!("/patients/{id}#home")));
    }
    let input = BetweenInput { dispense: Some((course, form, errors)), ..Default::default() };
    render_chart(&st, &user, PatientId(id), StatusCode::UNPROCESSABLE_ENTITY, input).await
}

/// `POST /patients/{id}/courses/{course}/checkin-schedule`: change which check-ins this patient's
/// course sends and how often. The change is built from the clinic's schedule each time, so it
/// replaces the previous one; the answer is the chart ("Schedule changed", or the form again
/// with its errors and nothing changed).
pub async fn post_schedule(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, course)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    let co = st.store.get_course(&user.actor, CourseId(course)).await?;
    let Some(base) = checkins::schedule_for_route(co.route).filter(|_| co.patient_id == PatientId(id)) else {
        return Err(StoreError::NotFound(format!("check-in schedule of course {course}")).into());
    };
    let current = match st.store.checkin_schedule(&user.actor, co.id).await {
        Ok(Some(s)) => s,
        // A stored change that no longer applies: the form starts again from the clinic's.
        Ok(None) | Err(StoreError::Domain(_)) => base.clone(),
        Err(e) => return Err(e.into()),
    };
    let (change, mut errors) = match build_override(base, &current, &form) {
        Ok(o) => (Some(o), Errors::new()),
        Err(errors) => (None, errors),
    };
    if errors.submit(change, |o| st.store.set_checkin_override(&user.actor, co.id, o)).await?.is_some() {
        let input = BetweenInput { schedule: Some((course, None)), ..Default::default() };
        return render_chart(&st, &user, PatientId(id), StatusCode::OK, input).await;
    }
    let input = BetweenInput { schedule: Some((course, Some((form, errors)))), ..Default::default() };
    render_chart(&st, &user, PatientId(id), StatusCode::UNPROCESSABLE_ENTITY, input).await
}
