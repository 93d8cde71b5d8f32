//! What is recorded during a session: vitals, MOAA/S, CADSS-6, side effects, interventions,
//! adverse events and the dose given in the controlled-substance ledger.

use super::*;

pub async fn post_vitals(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let v = VitalSigns {
        systolic_mmhg: form.number("systolic_mmhg", &mut errors).map(Mmhg),
        diastolic_mmhg: form.number("diastolic_mmhg", &mut errors).map(Mmhg),
        heart_rate_bpm: form.number("heart_rate_bpm", &mut errors).map(BeatsPerMinute),
        spo2_pct: form.number("spo2_pct", &mut errors).map(Percent),
        resp_rate_per_min: form.number("resp_rate_per_min", &mut errors).map(BreathsPerMinute),
    };
    let confirmed = form.checked("confirm_duplicate");
    let record = |v| st.store.record_vitals_entry(&user.actor, SessionId(id), v, None, VitalsSource::Manual, confirmed);
    match errors.submit(Some(v), record).await? {
        Some(r) if !r.alerts.is_empty() => return done(&st, &user, id, "#alerts").await,
        Some(_) => return done(&st, &user, id, "#vitals").await,
        None => {}
    }
    rejected(&st, &user, id, form, errors, "vitals").await
}

pub async fn post_moaas(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let score = form.integer("moaas_score", &mut errors);
    if score.is_none() && !errors.any() {
        errors.add("moaas_score", "choose the MOAA/S level");
    }
    let body = score.map(|score| ObservationBody::Moaas { score: score as i32 });
    if errors.submit(body, |b| st.store.record_observation(&user.actor, SessionId(id), b, None)).await?.is_some() {
        return done(&st, &user, id, "#observations").await;
    }
    errors.rename("score", "moaas_score");
    rejected(&st, &user, id, form, errors, "moaas").await
}

pub async fn post_cadss(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let s = st.store.get_session(&user.actor, SessionId(id)).await?;
    let n = catalog().get("cadss6").map_or(6, |i| i.items.len());
    let mut answers = Vec::with_capacity(n);
    for i in 1..=n {
        let name = format!("cadss_{i}");
        match form.integer(&name, &mut errors) {
            Some(v) => answers.push(Some(v as i32)),
            None => {
                if !errors.has(&name) {
                    errors.add(&name, "choose a rating");
                }
                answers.push(None);
            }
        }
    }
    let new = NewQuestionnaireResponse {
        instrument: "cadss6".into(),
        answers,
        course_id: Some(s.course_id),
        session_id: Some(s.id),
        completed_at: None,
        completed_by: CompletedBy::Staff,
    };
    if errors.submit(Some(new), |new| st.store.submit_response(&user.actor, s.patient_id, new)).await?.is_some() {
        return done(&st, &user, id, "#observations").await;
    }
    for i in 0..n {
        errors.rename(&format!("answers[{i}]"), &format!("cadss_{}", i + 1));
    }
    rejected(&st, &user, id, form, errors, "cadss").await
}

pub async fn post_side_effects(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let symptoms = form.all("symptom");
    if symptoms.is_empty() {
        errors.add("symptom", "tick at least one side effect");
    }
    let note = form.opt("side_effect_note");
    if !errors.any() {
        for symptom in symptoms {
            if let Err(e) = st
                .store
                .record_observation(
                    &user.actor,
                    SessionId(id),
                    ObservationBody::SideEffect { symptom, note: note.clone() },
                    None,
                )
                .await
            {
                errors.absorb(e)?;
                errors.rename("note", "side_effect_note");
                return rejected(&st, &user, id, form, errors, "side_effects").await;
            }
        }
        return done(&st, &user, id, "#alerts").await;
    }
    rejected(&st, &user, id, form, errors, "side_effects").await
}

pub async fn post_intervention(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let dose = form.number("dose_mg", &mut errors);
    if dose.is_none() && !errors.has("dose_mg") {
        errors.add("dose_mg", "enter the dose in mg");
    }
    let body = dose.map(|dose| ObservationBody::Intervention {
        drug: form.get("drug").trim().into(),
        dose_mg: Milligrams(dose),
        route: form.get("given_route").trim().into(),
    });
    if errors.submit(body, |b| st.store.record_observation(&user.actor, SessionId(id), b, None)).await?.is_some() {
        return done(&st, &user, id, "#observations").await;
    }
    errors.rename("route", "given_route");
    rejected(&st, &user, id, form, errors, "intervention").await
}

pub async fn post_adverse_event(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let s = st.store.get_session(&user.actor, SessionId(id)).await?;
    let severity = AeSeverity::parse(form.get("ae_severity"));
    if severity.is_none() {
        errors.add("ae_severity", "choose mild, moderate or severe");
    }
    let now = st.store.now();
    let onset = match form.opt("onset") {
        None => Some(now),
        Some(t) => match parse_hm(&t) {
            Some((h, m)) => {
                let sites = st.store.list_sites(&user.actor).await?;
                let clock = sites.iter().find(|x| x.id == s.site_id).map_or_else(SiteClock::utc, SiteClock::for_site);
                Some(clock.at_local(clock.today(now), h, m))
            }
            None => {
                errors.add("onset", "enter the time it started, e.g. 10:40, or leave it empty for now");
                None
            }
        },
    };
    let new = severity.zip(onset).map(|(severity, onset)| NewAdverseEvent {
        description: form.get("description").trim().into(),
        severity,
        serious: form.checked("serious"),
        action_taken: form.get("action_taken").trim().into(),
        outcome: form.get("ae_outcome").trim().into(),
        onset_at: onset,
    });
    let record = |new| st.store.record_adverse_event(&user.actor, s.patient_id, Some(s.id), new);
    if errors.submit(new, record).await?.is_some() {
        return done(&st, &user, id, "#observations").await;
    }
    errors.rename("outcome", "ae_outcome");
    errors.rename("onset_at", "onset");
    rejected(&st, &user, id, form, errors, "adverse_event").await
}

/// Records the dose given in the controlled-substance ledger (needs a recent password
/// re-entry, as every ledger entry does). The volume (vials) or devices (nasal spray)
/// default to what the dose takes.
pub async fn post_ledger(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let mut errors = Errors::new();
    let s = st.store.get_session(&user.actor, SessionId(id)).await?;
    let lots = st.store.list_lots(&user.actor, Some(s.site_id), false).await?;
    let lot = form.get("ledger_lot").parse::<i64>().ok().and_then(|l| lots.into_iter().find(|x| x.id.0 == l));
    if lot.is_none() {
        errors.add("ledger_lot", "choose the lot the dose was drawn from");
    }
    let dose = form.number("ledger_dose_mg", &mut errors);
    if dose.is_none() && !errors.has("ledger_dose_mg") {
        errors.add("ledger_dose_mg", "enter the dose given in mg");
    }
    let volume = form.number("ledger_volume_ml", &mut errors);
    let devices = form.integer("ledger_devices", &mut errors);
    if let (Some(lot), Some(dose), false) = (lot, dose, errors.any()) {
        let (volume_ml, devices_used) = match lot.product.presentation {
            Presentation::Vial { concentration_mg_per_ml, .. } => (
                Some(Millilitres(volume.unwrap_or_else(|| (dose / concentration_mg_per_ml.0 * 100.0).round() / 100.0))),
                None,
            ),
            Presentation::NasalSprayDevice { mg_per_device, .. } => {
                (None, Some(devices.map_or_else(|| (dose / mg_per_device.0).ceil() as u32, |d| d.max(0) as u32)))
            }
        };
        let new = NewAdministration {
            lot_id: LotId(lot.id.0),
            session_id: s.id,
            dose_mg: Milligrams(dose),
            volume_ml,
            devices_used,
            administered_at: s.dose_started_at,
            ended_at: s.monitoring_started_at,
            ordering_prescriber: None,
            corrects: None,
        };
        match st.store.record_administration(&user.actor, user.reauthenticated_at, new).await {
            Ok(_) => return done(&st, &user, id, "#ledger").await,
            Err(StoreError::Forbidden(msg)) => errors.add_general(crate::ui::page::capitalise(&msg)),
            Err(e) => {
                errors.absorb(e)?;
                for (from, to) in [
                    ("lot_id", "ledger_lot"),
                    ("dose_mg", "ledger_dose_mg"),
                    ("volume_ml", "ledger_volume_ml"),
                    ("devices_used", "ledger_devices"),
                ] {
                    errors.rename(from, to);
                }
            }
        }
    }
    rejected(&st, &user, id, form, errors, "ledger").await
}
