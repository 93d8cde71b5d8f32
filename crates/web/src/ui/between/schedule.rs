//! A course's check-in schedule on the chart: its rows, and the form that changes it.

use super::*;

/// "24 h", or whole days from four days up ("7 days").
pub(super) fn hours(h: u32) -> String {
    if h >= 96 && h.is_multiple_of(24) { days(i64::from(h / 24)) } else { format!("{h} h") }
}

/// When a check-in item is sent, in words: "24 h before each session", "every 7 days at 09:00,
/// open 72 h, until 56 days after the last session" (periodic items open at `local_hour` on the
/// site's clock).
pub(crate) fn timing_words(item: &CheckInItem, local_hour: u8) -> String {
    let mut out = match item.timing {
        Timing::BeforeEachSession { opens_hours_before } => {
            format!("{} before each session", hours(opens_hours_before))
        }
        Timing::AfterEachSession { after_hours, open_hours } => {
            format!("{} after each session, open {}", hours(after_hours), hours(open_hours))
        }
        Timing::AroundEachSession { opens_hours_before, closes_hours_after } => {
            format!("from {} before to {} after each session", hours(opens_hours_before), hours(closes_hours_after))
        }
        Timing::Every { days: 1, open_hours } => format!("every day at {local_hour:02}:00, open {}", hours(open_hours)),
        Timing::Every { days: n, open_hours } => {
            format!("every {} at {local_hour:02}:00, open {}", days(i64::from(n)), hours(open_hours))
        }
    };
    if let Some(d) = item.follow_up_days_after_last_session {
        out.push_str(&format!(", until {} after the last session", days(i64::from(d))));
    }
    if let Some(d) = item.for_days {
        out.push_str(&format!(", within {} of the course start", days(i64::from(d))));
    }
    out
}

/// The form field of an `every` item's interval.
pub(crate) fn interval_field(item_id: &str) -> String {
    format!("days_{item_id}")
}

/// The longest interval a clinician may set, in days.
pub(super) const MAX_INTERVAL_DAYS: u32 = 365;

/// The clinic's items (in its order), then the ones added for this patient, each with the item
/// as the course follows it now (`None`: removed for this patient).
pub(super) fn schedule_items<'a>(
    base: &'a CheckInSchedule,
    current: &'a CheckInSchedule,
) -> Vec<(&'a CheckInItem, Option<&'a CheckInItem>, bool)> {
    let now = |id: &str| current.items.iter().find(|i| i.id == id);
    let mut out: Vec<_> = base.items.iter().map(|b| (b, now(&b.id), false)).collect();
    out.extend(current.items.iter().filter(|c| !base.items.iter().any(|b| b.id == c.id)).map(|c| (c, Some(c), true)));
    out
}

/// The change a submitted schedule form asks for, always built from the clinic's schedule:
/// `remove` lists its items left unticked, `upsert` the ticked items that differ from it (a new
/// interval, keeping the item's other fields) and the ticked items added for this patient. So a
/// later save replaces an earlier one cleanly. Field errors name the form's fields.
pub(crate) fn build_override(
    base: &CheckInSchedule,
    current: &CheckInSchedule,
    form: &FormData,
) -> Result<ScheduleOverride, Errors> {
    let mut errors = Errors::new();
    let mut o = ScheduleOverride { reason: form.get("reason").trim().to_string(), ..Default::default() };
    if o.reason.is_empty() {
        errors.add("reason", "say why this patient's schedule differs from the clinic's");
    }
    for (template, now, added) in schedule_items(base, current) {
        if !form.has_value("send", &template.id) {
            if !added {
                o.remove.push(template.id.clone());
            }
            continue;
        }
        let mut item = now.unwrap_or(template).clone();
        if let Timing::Every { days: d, open_hours } = &mut item.timing {
            let field = interval_field(&item.id);
            let raw = form.get(&field).trim();
            match raw.parse::<u32>() {
                _ if raw.is_empty() => errors.add(&field, "enter the interval in days"),
                Err(_) => errors.add(&field, format!("'{raw}' is not a whole number of days")),
                Ok(0) => errors.add(&field, "must be at least 1 day"),
                Ok(n) if n > MAX_INTERVAL_DAYS => {
                    errors.add(&field, format!("must be at most {MAX_INTERVAL_DAYS} days"))
                }
                Ok(n) if u64::from(n) * 24 < u64::from(*open_hours) => errors.add(
                    &field,
                    format!(
                        "must be at least {}: each check-in stays open {}",
                        days(i64::from(open_hours.div_ceil(24))),
                        hours(*open_hours)
                    ),
                ),
                Ok(n) => *d = n,
            }
        }
        if added || Some(&item) != base.items.iter().find(|b| b.id == item.id) {
            o.upsert.push(item);
        }
    }
    if errors.any() { Err(errors) } else { Ok(o) }
}

/// One course's schedule for the panel: the clinic's schedule with the latest change applied,
/// and the form's state (the stored schedule, or the user's input after an error).
pub(crate) fn schedule_view(
    clock: &SiteClock,
    course: &Course,
    base: &CheckInSchedule,
    change: Option<&OverrideInfo>,
    input: Option<Option<(FormData, Errors)>>,
) -> ScheduleView {
    let (current, warning) = match change.map(|o| checkins::apply_override(base, &o.change)) {
        None => (base.clone(), None),
        Some(Ok(s)) => (s, None),
        Some(Err(e)) => (
            base.clone(),
            Some(format!(
                "The saved change no longer fits the clinic's schedule ({e}). The clinic's schedule is shown; save the change again."
            )),
        ),
    };
    let saved = matches!(input, Some(None));
    let (form, errors) = input.flatten().map_or((None, Errors::new()), |(f, e)| (Some(f), e));
    let rows = schedule_items(base, &current)
        .into_iter()
        .map(|(template, now, added)| {
            let shown = now.unwrap_or(template);
            let field = interval_field(&template.id);
            ScheduleRow {
                id: template.id.clone(),
                form: form_label(&template.form),
                timing: timing_words(shown, current.periodic_opens_local_hour),
                current: now.is_some(),
                send: form.as_ref().map_or(now.is_some(), |f| f.has_value("send", &template.id)),
                interval: match shown.timing {
                    Timing::Every { days: d, .. } => {
                        Some(form.as_ref().map_or_else(|| d.to_string(), |f| f.get(&field).to_string()))
                    }
                    _ => None,
                },
                added,
                error: errors.get(&field).unwrap_or_default(),
            }
        })
        .collect();
    ScheduleView {
        course_id: course.id.0,
        course: course_label(course),
        name: base.name.clone(),
        changed: change
            .map(|o| format!("Changed by {} on {}: {}", o.set_by, clock.date(o.set_at), o.change.reason.trim())),
        warning,
        rows,
        reason: form.as_ref().map(|f| f.get("reason").to_string()).unwrap_or_default(),
        errors,
        saved,
    }
}
