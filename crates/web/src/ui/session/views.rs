//! The session screen's view models and the labels they show.

use super::*;

pub(crate) struct CheckView {
    pub code: String,
    pub label: String,
    pub source: String,
    pub checked: bool,
}

pub(crate) struct TimerView {
    pub label: String,
    pub detail: String,
    pub seconds: i64,
    pub overdue: bool,
    pub source: String,
}

pub(crate) struct VitalsRow {
    pub time: String,
    pub since: String,
    pub bp: String,
    pub hr: String,
    pub spo2: String,
    pub rr: String,
    /// Why the BP is abnormal (the alert rules' messages); empty when it is not.
    pub bp_flag: String,
    /// Why the SpO2 is abnormal; empty when it is not.
    pub spo2_flag: String,
    /// Streamed by the chair's bedside monitor (not typed).
    pub from_monitor: bool,
}

/// Which readings the site's session-safety rules flag (the same evaluation that raises the
/// alerts: `SafetyRules::evaluate_vitals`, baseline = the session's first BP), as
/// (BP reason, SpO2 reason) per reading. Heart and breathing rates have no rule in
/// `data/rules/session-safety.toml`, so they are never flagged here.
pub(super) fn vitals_flags(rules: &SafetyRules, readings: &[VitalsRecord]) -> Vec<(String, String)> {
    let baseline = readings.iter().filter(|r| r.vitals.systolic_mmhg.is_some()).min_by_key(|r| (r.taken_at, r.id.0));
    let bp_rules = [&rules.pre_dose_bp.code, &rules.bp_rise_from_baseline.code, &rules.severe_hypertension.code];
    readings
        .iter()
        .map(|r| {
            let phase = match r.minutes_since_dose {
                Some(m) if m >= 0 => DosePhase::PostDose { minutes_since_dose: m },
                _ => DosePhase::PreDose,
            };
            let base = baseline.filter(|b| b.id != r.id).map(|b| &b.vitals);
            let firings = rules.evaluate_vitals(phase, &r.vitals, base);
            let why = |codes: &[&String]| {
                firings
                    .iter()
                    .filter(|f| codes.contains(&&f.rule))
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            (why(&bp_rules), why(&[&rules.spo2_floor.code]))
        })
        .collect()
}

pub(crate) struct AckView {
    pub level: &'static str,
    pub message: String,
    pub by: String,
    pub at: String,
    pub note: String,
}

pub(crate) struct ObsRow {
    pub time: String,
    pub text: String,
}

pub(crate) struct Pick {
    pub value: String,
    pub label: String,
    pub emergency: bool,
}

pub(crate) struct LotChoice {
    pub value: String,
    pub label: String,
}

pub(crate) struct CadssItem {
    pub name: String,
    pub label: String,
}

/// One fact discharge still needs, with a link to where it is recorded.
pub(crate) struct BlockerView {
    pub code: &'static str,
    pub message: String,
    pub href: String,
    pub link: &'static str,
}

/// The last reading of each vital and its age, shown beside the empty entry boxes.
#[derive(Default)]
pub(crate) struct LastReadings {
    pub systolic_mmhg: String,
    pub diastolic_mmhg: String,
    pub heart_rate_bpm: String,
    pub spo2_pct: String,
    pub resp_rate_per_min: String,
}

/// The one step the session can take next.
pub(crate) struct Step {
    pub action: &'static str,
    pub label: &'static str,
}

/// A reading or amount as people write it: "128", "0.72", "36.5".
pub(super) fn fmt_num(x: Option<f64>) -> String {
    x.map_or_else(
        || "—".into(),
        |v| {
            if v.fract() == 0.0 {
                format!("{}", v as i64)
            } else {
                format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
            }
        },
    )
}

/// A refusal without its " [record it: ...]" / " [set it: ...]" pointers.
pub(super) fn without_links(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(at) = rest.find(" [") {
        let tail = &rest[at + 2..];
        match tail.find(']') {
            Some(end) if tail.starts_with("record it: ") || tail.starts_with("set it: ") => {
                out.push_str(&rest[..at]);
                rest = &tail[end + 1..];
            }
            _ => {
                out.push_str(&rest[..at + 2]);
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// "12 min ago", "just now", "2 h 5 min ago".
pub(super) fn age_label(minutes: i64) -> String {
    match minutes {
        m if m < 1 => "just now".into(),
        m if m < 60 => format!("{m} min ago"),
        m => format!("{} h {} min ago", m / 60, m % 60),
    }
}

pub(super) fn hms(secs: i64) -> String {
    let s = secs.abs();
    format!("{}{}:{:02}:{:02}", if secs < 0 { "-" } else { "" }, s / 3600, (s % 3600) / 60, s % 60)
}

pub(super) fn next_step(state: SessionState) -> Option<Step> {
    Some(match state {
        SessionState::Scheduled => Step { action: "check_in", label: "Check in" },
        SessionState::CheckedIn => Step { action: "start_pre_dose_checks", label: "Start pre-dose checks" },
        SessionState::PreDoseChecks => Step { action: "start_dose", label: "Start dose" },
        SessionState::Dosing => Step { action: "end_dose", label: "End dose (start monitoring)" },
        SessionState::Monitoring => Step { action: "discharge", label: "Discharge" },
        SessionState::Discharged | SessionState::Stopped => return None,
    })
}

/// Stock that may be given on this route: racemic ketamine vials for IV and IM,
/// esketamine devices for the nasal spray.
pub(super) fn lot_fits(route: Route, lot: &Lot) -> bool {
    matches!(
        (route, lot.product.substance),
        (Route::IvRacemic | Route::ImRacemic, Substance::Ketamine)
            | (Route::IntranasalEsketamine, Substance::Esketamine)
    )
}

pub(super) fn lot_label(l: &Lot) -> String {
    let stock = match (l.on_hand_ml, l.on_hand_devices) {
        (Some(ml), _) => format!("{} mL left", fmt_num(Some(ml.0))),
        (None, Some(d)) => format!("{} devices left", fmt_num(Some(d))),
        _ => format!("{} mg left", fmt_num(Some(l.on_hand_mg.0))),
    };
    format!("{} {} · lot {} · expires {} · {stock}", l.strength, l.container, l.lot_number, l.expires_on)
}
