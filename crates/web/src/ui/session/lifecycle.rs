//! The session's steps (check-in to discharge, or stop), a prescriber's decisions, the site's
//! discharge settings, alert acknowledgement and the note.

use super::*;

pub async fn post_step(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let sid = SessionId(id);
    let s = st.store.get_session(&user.actor, sid).await?;
    let mut errors = Errors::new();
    let (action, confirmed): (SessionAction, Option<String>) = match form.get("action") {
        "check_in" => (SessionAction::CheckIn, None),
        "start_pre_dose_checks" => (SessionAction::StartPreDoseChecks, None),
        "start_dose" => {
            let items = pre_dose_checklist(s.route);
            let missing: Vec<&str> =
                items.iter().filter(|i| !form.has_value("predose", &i.code)).map(|i| i.label.as_str()).collect();
            if !missing.is_empty() {
                errors.add(
                    "predose",
                    format!("confirm every pre-dose check first; not yet confirmed: {}", missing.join("; ")),
                );
            }
            let vitals = st.store.list_vitals(&user.actor, sid).await?;
            if !vitals.iter().any(|v| v.vitals.systolic_mmhg.is_some()) {
                errors.add("predose", "record the pre-dose blood pressure before starting the dose");
            }
            (
                SessionAction::StartDose,
                Some(format!(
                    "Pre-dose checks confirmed: {}.",
                    items.iter().map(|i| i.label.as_str()).collect::<Vec<_>>().join("; ")
                )),
            )
        }
        "end_dose" => (SessionAction::EndDose, None),
        "discharge" => {
            let items = discharge_checklist(s.route);
            let missing: Vec<&str> =
                items.iter().filter(|i| !form.has_value("discharge", &i.code)).map(|i| i.label.as_str()).collect();
            if !missing.is_empty() {
                errors.add(
                    "discharge",
                    format!("confirm every discharge check first; not yet confirmed: {}", missing.join("; ")),
                );
            }
            (
                SessionAction::Discharge,
                Some(format!(
                    "Discharge checks confirmed: {}.",
                    items.iter().map(|i| i.label.as_str()).collect::<Vec<_>>().join("; ")
                )),
            )
        }
        "stop" => (SessionAction::Stop { reason: form.get("reason").trim().to_string() }, None),
        other => return Err(crate::ui::page::UiError::BadRequest(format!("unknown step '{other}'"))),
    };
    let failed = match &action {
        SessionAction::Stop { .. } => "stop",
        SessionAction::Discharge => "discharge",
        SessionAction::StartDose => "predose",
        _ => "step",
    };
    let other_day_reason = if form.checked("confirm_other_day") {
        match form.opt("other_day_reason") {
            Some(r) => Some(r),
            None => {
                errors.add("other_day_reason", "say why this session is taken today");
                None
            }
        }
    } else {
        None
    };
    if errors.any() {
        return rejected(&st, &user, id, form, errors, failed).await;
    }
    match st.store.act_on_session_confirmed(&user.actor, sid, action, other_day_reason).await {
        Ok(_) => {
            if let Some(line) = confirmed {
                append_note(&st, &user, sid, line).await?;
            }
            done(&st, &user, id, "").await
        }
        // The API's refusal carries where to record each fact; the screen lists them with links.
        Err(StoreError::Domain(keta_domain::DomainError::Conflict(msg))) => {
            errors.add_general(crate::ui::page::capitalise(&without_links(&msg)));
            rejected(&st, &user, id, form, errors, failed).await
        }
        Err(e) => {
            errors.absorb(e)?;
            errors.rename("reason", "stop_reason");
            rejected(&st, &user, id, form, errors, failed).await
        }
    }
}

/// A prescriber's decision: let the dose start with an urgent alert open, or discharge with
/// a named BP reading above the thresholds (stored, audited, written in the note).
pub async fn post_decision(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let reason = form.get("decision_reason").trim().to_string();
    let decision = match form.get("kind") {
        "dose_despite_urgent_alert" => NewDecision::DoseDespiteUrgentAlert { reason },
        "discharge_despite_bp" => match form.get("vitals_id").parse::<i64>() {
            Ok(v) => NewDecision::DischargeDespiteBp { vitals_id: keta_domain::ids::RecordId(v), reason },
            Err(_) => return Err(crate::ui::page::UiError::BadRequest("which reading? vitals_id is missing".into())),
        },
        other => return Err(crate::ui::page::UiError::BadRequest(format!("unknown decision '{other}'"))),
    };
    match st.store.record_session_decision(&user.actor, SessionId(id), decision).await {
        Ok(_) => done(&st, &user, id, "").await,
        Err(StoreError::Conflict(msg)) | Err(StoreError::Forbidden(msg)) => {
            errors.add_general(crate::ui::page::capitalise(&msg));
            rejected(&st, &user, id, form, errors, "decision").await
        }
        Err(e) => {
            errors.absorb(e)?;
            errors.rename("reason", "decision_reason");
            rejected(&st, &user, id, form, errors, "decision").await
        }
    }
}

/// The medical director fills the site's discharge settings from the session screen (the
/// same store operation as `PUT /api/v1/sites/{id}/discharge-settings`).
pub async fn post_discharge_settings(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let s = st.store.get_session(&user.actor, SessionId(id)).await?;
    let minutes = form.integer("vitals_within_minutes", &mut errors);
    let cutoff = form.integer("resolved_at_or_below", &mut errors);
    if minutes.is_none() && !errors.has("vitals_within_minutes") {
        errors.add("vitals_within_minutes", "enter the minutes");
    }
    if cutoff.is_none() && !errors.has("resolved_at_or_below") {
        errors.add("resolved_at_or_below", "enter the total that counts as resolved");
    }
    if let (Some(m), Some(t), false) = (minutes, cutoff, errors.any()) {
        let settings = keta_domain::discharge::DischargeSettings {
            vitals_within_minutes: Some(keta_domain::units::Minutes(m)),
            dissociation: Some(keta_domain::discharge::DissociationSetting {
                instrument: form.get("dissociation_instrument").to_string(),
                resolved_at_or_below: t as i32,
            }),
        };
        match st.store.set_site_discharge_settings(&user.actor, s.site_id, settings).await {
            Ok(_) => return done(&st, &user, id, "").await,
            Err(StoreError::Forbidden(msg)) => errors.add_general(crate::ui::page::capitalise(&msg)),
            Err(e) => {
                errors.absorb(e)?;
                errors.rename("dissociation.instrument", "dissociation_instrument");
                errors.rename("dissociation.resolved_at_or_below", "resolved_at_or_below");
            }
        }
    }
    rejected(&st, &user, id, form, errors, "settings").await
}

pub async fn post_acknowledge(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, alert)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    // A conflict (already acknowledged) is absorbed as a message at the top of the form.
    let note = form.opt("note");
    if errors.submit(Some(note), |note| st.store.acknowledge_alert(&user.actor, AlertId(alert), note)).await?.is_some()
    {
        return done(&st, &user, id, "#alerts").await;
    }
    rejected(&st, &user, id, form, errors, "alerts").await
}

pub async fn post_note(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let note = form.get("note").to_string();
    if errors.submit(Some(note), |note| st.store.set_session_note(&user.actor, SessionId(id), note)).await?.is_some() {
        return done(&st, &user, id, "#note").await;
    }
    rejected(&st, &user, id, form, errors, "note").await
}

/// Signs the note as its author, after the password was re-entered (security-reference
/// SIG-1): the signature locks the note. A refusal (nothing written yet, the REMS form still
/// lacking answers, the password not re-entered) is shown above the note, which is unchanged.
pub async fn post_sign_note(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    if !crate::ui::ledger::reauthenticated(&st, &user) {
        errors.add_general("Signing needs your password again (within the last few minutes): re-enter it, then sign.");
    }
    let sign =
        keta_domain::notes::SignNote { meaning: keta_domain::notes::SignatureMeaning::Author, amendment_id: None };
    let signed = errors
        .submit(Some(sign), |sign| {
            st.store.sign_session_note(
                &user.actor,
                user.reauthenticated_at,
                SessionId(id),
                user.display_name.clone(),
                sign,
            )
        })
        .await?;
    if signed.is_some() {
        return done(&st, &user, id, "#note").await;
    }
    rejected(&st, &user, id, form, errors, "sign").await
}
