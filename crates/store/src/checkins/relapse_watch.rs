//! The relapse watch, run on every stored score.

use super::*;

/// After a scored response: if the course's watch now flags a relapse that no alert has
/// reported yet, raise a review alert suggesting the next maintenance session be brought forward.
pub(crate) fn relapse_check(
    c: &mut dyn Conn,
    actor: &Actor,
    now: OffsetDateTime,
    p: &Patient,
    r: &QuestionnaireResponse,
) -> Result<()> {
    let (Some(course), Some(_total)) = (r.course_id, r.score.total) else { return Ok(()) };
    let Some(def) = definition_for(&r.instrument) else { return Ok(()) };
    if def.response.is_none() {
        return Ok(());
    }
    // The clinic's threshold is set on PHQ-9 totals (the API validates it against PHQ-9); other
    // instruments use the default, loss of response.
    let settings = if r.instrument == RelapseSettings::INSTRUMENT {
        match relapse_settings(c) {
            Ok(s) => s,
            Err(e) => {
                // A watch that cannot run must never lose the patient's answers.
                tracing::warn!(error = %e, "relapse watch skipped: the clinic's relapse setting cannot be read");
                return Ok(());
            }
        }
    } else {
        RelapseSettings::default()
    };
    // A maintenance course is judged against the induction it continues, as on the chart.
    let responses = crate::questionnaires::responses_for(c, p.id)?;
    let courses = crate::courses::courses_for(c, p.id)?;
    let Some(judged) = keta_domain::outcomes::judge_in_chart(def, &courses, course, &responses) else { return Ok(()) };
    let points = judged.series.points;
    let sessions = crate::sessions::sessions_for_patient(c, p.id)?;
    // The last session given and the next one planned, as on the chart.
    let (last, next) = relapse::last_and_next(&sessions, course, now);
    let w = match relapse::watch(def, &points, &settings, last, next, now, &crate::site_time::calendar(c, p.site_id)?) {
        Ok(Some(w)) => w,
        Ok(None) => return Ok(()),
        Err(e) => {
            // A watch that cannot run must never lose the patient's answers.
            tracing::warn!(error = %e, instrument = %r.instrument, "relapse watch skipped");
            return Ok(());
        }
    };
    let Some(flag) = w.flag else { return Ok(()) };
    if flag.relapse_at != r.completed_at {
        return Ok(()); // Reported when that score came in.
    }
    let firing =
        BetweenSessionAlerts::builtin().relapse_watch.fire(format!("relapse_watch_{}", r.instrument), flag.message);
    crate::sessions::raise(c, actor, now, p.site_id, p.id, None, vec![firing])?;
    Ok(())
}
