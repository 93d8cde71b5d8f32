//! The session's "Predicted concentration" panel.

use super::*;

/// The "Predicted concentration" panel: the session's dose (last record, else the
/// planned dose) under the route's model, the observed scores, and the fall below the
/// level from `?below=` or the site's `pk_threshold_ng_ml` setting (never a default).
#[allow(clippy::too_many_arguments)]
pub(super) async fn pk_view(
    st: &AppState,
    user: &CurrentUser,
    s: &keta_domain::session::TreatmentSession,
    course: &keta_domain::course::Course,
    patient: &keta_domain::patient::Patient,
    obs: &[keta_domain::records::ObservationRecord],
    responses: &[keta_domain::records::QuestionnaireResponse],
    sites: &[keta_domain::site::Site],
    clock: &SiteClock,
    below: Option<&str>,
) -> UiResult<PkPanel> {
    let mut p = PkPanel::default();
    let site_level = sites.iter().find(|x| x.id == s.site_id).and_then(|x| pk_panel::site_threshold(&x.settings));
    let (threshold, source) = match pk_panel::parse_below(below) {
        Ok(Some(v)) => (Some(v), "the level entered here".to_string()),
        other => {
            if let Err(e) = other {
                p.below_error = e;
            }
            (site_level, format!("the clinic's setting {}", pk_panel::THRESHOLD_SETTING))
        }
    };
    p.below_value = below.map_or_else(|| threshold.map(pk_panel::num).unwrap_or_default(), |b| b.trim().to_string());
    if threshold.is_some() {
        p.below_set = true;
        p.below_source = source;
    } else {
        p.below = "Set a level to see when the concentration falls below it.".into();
    }

    let records = st.store.list_session_doses(&user.actor, s.id).await?;
    let protocol = course.protocol.as_deref().and_then(|id| st.protocols.get(id));
    let Some(dose) = pk_panel::DoseInput::from_records(
        s.route,
        &records,
        s.planned_dose_mg.map(|d| d.0),
        patient.latest_weight_kg.map(|w| w.0),
        protocol,
    ) else {
        p.unavailable =
            "No dose to predict yet: record the dose calculation (or a planned dose and the patient's weight).".into();
        return Ok(p);
    };
    let age = f64::from(patient.age_on(clock.today(st.store.now())));
    let req = match pk_panel::request_for(&dose, Some(age), threshold) {
        Ok(r) => r,
        Err(e) => {
            p.unavailable = crate::ui::page::capitalise(&e);
            return Ok(p);
        }
    };
    let sim = match pk_panel::simulate_cached(req).await {
        Ok(x) => x,
        Err(e) => {
            p.unavailable = crate::ui::page::capitalise(&e);
            return Ok(p);
        }
    };
    let moaas: Vec<pk_panel::Observed> = obs
        .iter()
        .filter_map(|o| match o.body {
            ObservationBody::Moaas { score } => Some(pk_panel::Observed { at: o.observed_at, score }),
            _ => None,
        })
        .collect();
    let cadss: Vec<pk_panel::Observed> = responses
        .iter()
        .filter(|r| r.session_id == Some(s.id) && matches!(r.instrument.as_str(), "cadss" | "cadss6"))
        .filter_map(|r| Some(pk_panel::Observed { at: r.completed_at, score: r.score.total? }))
        .collect();
    pk_panel::build(
        &mut p,
        pk_panel::PanelInput {
            sim: &sim,
            basis: dose.basis,
            dose_started_at: s.dose_started_at,
            moaas: &moaas,
            cadss: &cadss,
            // The scale's top: the largest total of the CADSS forms recorded (CADSS-6's if none yet).
            cadss_max: responses
                .iter()
                .filter(|r| r.session_id == Some(s.id) && matches!(r.instrument.as_str(), "cadss" | "cadss6"))
                .map(|r| r.instrument.as_str())
                .chain(["cadss6"])
                .filter_map(|code| catalog().get(code).and_then(|inst| inst.max_total))
                .max()
                .unwrap_or(0),
            clock,
        },
    );
    Ok(p)
}
