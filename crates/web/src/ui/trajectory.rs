//! Score trajectories as server-side SVG: one chart per instrument with its severity
//! bands, the baseline, the response and remission lines of the outcome definition in
//! use, session markers, and the scores joined in time order.
//!
//! The chart is a view model rendered by an askama template (no string-built markup),
//! styled by classes only (the CSP allows no inline style), and paired with a data table
//! for screen readers.

use keta_domain::instruments::Instrument;
use keta_domain::outcomes::{OutcomeDefinition, ResponseRule, Threshold};
use time::OffsetDateTime;

use super::clock::SiteClock;

pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 270.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 40.0;

pub struct BandRect {
    pub y: String,
    pub h: String,
    pub class: String,
    pub label: String,
    pub label_y: String,
}

pub struct RefLine {
    pub y: String,
    pub label_y: String,
    pub bg_x: String,
    pub bg_y: String,
    pub bg_w: String,
    pub class: &'static str,
    pub label: String,
}

pub struct Point {
    pub x: String,
    pub y: String,
    pub title: String,
}

pub struct Tick {
    pub pos: String,
    pub label: String,
}

pub struct DataRow {
    pub date: String,
    pub total: i32,
    pub severity: String,
}

pub struct Trajectory {
    pub id: String,
    pub title: String,
    pub summary: String,
    pub view_box: String,
    pub plot_left: String,
    pub plot_right: String,
    pub plot_top: String,
    pub plot_bottom: String,
    pub label_x: String,
    pub plot_width: String,
    pub ytick_x: String,
    pub xtick_y: String,
    pub ref_x: String,
    pub bands: Vec<BandRect>,
    pub lines: Vec<RefLine>,
    pub sessions: Vec<String>,
    pub session_top: String,
    pub points: Vec<Point>,
    pub path: String,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub rows: Vec<DataRow>,
    pub definition: Option<String>,
}

/// One scored response.
pub struct Score {
    pub at: OffsetDateTime,
    pub total: i32,
    pub band: Option<String>,
}

fn f(x: f64) -> String {
    format!("{x:.1}")
}

/// Builds the chart. `baseline` is the baseline of the course being judged (the first
/// score when there is none); `sessions` are dosing times.
// Long on purpose: one chart drawn in one place: every line, band and label uses the scale closures set at the top.
#[allow(clippy::too_many_lines)]
pub fn build(
    inst: &Instrument,
    scores: &[Score],
    sessions: &[OffsetDateTime],
    definition: Option<&OutcomeDefinition>,
    baseline: Option<i32>,
    clock: &SiteClock,
) -> Option<Trajectory> {
    let first = scores.first()?;
    let (lo, hi) =
        (inst.min_total.unwrap_or(0) as f64, inst.max_total.unwrap_or(scores.iter().map(|s| s.total).max()?) as f64);
    let hi = if hi <= lo { lo + 1.0 } else { hi };
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let y = |v: f64| TOP + (hi - v.clamp(lo, hi)) / (hi - lo) * ph;

    let last = scores.last()?;
    let in_range: Vec<OffsetDateTime> = sessions
        .iter()
        .copied()
        .filter(|t| *t >= first.at - time::Duration::days(14) && *t <= last.at + time::Duration::days(14))
        .collect();
    let t0 = in_range.iter().copied().chain([first.at]).min()?;
    let t1 = in_range.iter().copied().chain([last.at]).max()?;
    let span = (t1 - t0).as_seconds_f64();
    let x = |t: OffsetDateTime| {
        if span <= 0.0 { LEFT + pw / 2.0 } else { LEFT + pw * 0.03 + (t - t0).as_seconds_f64() / span * pw * 0.94 }
    };

    let n = inst.bands.len().max(1);
    let bands = inst
        .bands
        .iter()
        .enumerate()
        .map(|(i, b)| {
            // A band covers [min, max]; draw it from min-0.5 to max+0.5 so adjacent bands meet.
            let top = y((b.max as f64 + 0.5).min(hi));
            let bottom = y((b.min as f64 - 0.5).max(lo));
            BandRect {
                y: f(top),
                h: f((bottom - top).max(0.0)),
                class: format!("band sev-{}", if n <= 1 { 0 } else { i * 4 / (n - 1) }),
                label: b.label.clone(),
                label_y: f((top + bottom) / 2.0 + 4.0),
            }
        })
        .collect();

    let base = baseline.unwrap_or(first.total);
    // (line y, class, label)
    let mut raw: Vec<(f64, &'static str, String)> = vec![(y(base as f64), "baseline", format!("Baseline {base}"))];
    if let Some(def) = definition {
        if let Some(r) = &def.response {
            let v = match r.rule {
                ResponseRule::PercentReduction { min_percent } => base as f64 * (100.0 - min_percent as f64) / 100.0,
                ResponseRule::PointReduction { min_points } => (base - min_points) as f64,
            };
            if base > 0 {
                raw.push((y(v), "response", format!("Response ≤ {}", trim(v))));
            }
        }
        if let Some(r) = &def.remission {
            let (v, label) = match r.threshold {
                Threshold::Below(v) => (v as f64 - 0.5, format!("Remission < {v}")),
                Threshold::AtMost(v) => (v as f64 + 0.5, format!("Remission ≤ {v}")),
            };
            raw.push((y(v), "remission", label));
        }
    }
    // Labels sit at the right end of their line, nudged apart so none overlap.
    const GAP: f64 = 15.0;
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.sort_by(|a, b| raw[*a].0.total_cmp(&raw[*b].0));
    let mut label_y = vec![0.0; raw.len()];
    let mut prev = f64::NEG_INFINITY;
    for &i in &order {
        let want = (raw[i].0 - 4.0).max(TOP + 11.0);
        let at = want.max(prev + GAP);
        label_y[i] = at;
        prev = at;
    }
    let overflow = prev - (HEIGHT - BOTTOM - 2.0);
    if overflow > 0.0 {
        for v in &mut label_y {
            *v -= overflow;
        }
    }
    let lines: Vec<RefLine> = raw
        .into_iter()
        .zip(label_y)
        .map(|((ly, class, label), at)| {
            let w = label.chars().count() as f64 * 7.0 + 8.0;
            RefLine {
                y: f(ly),
                label_y: f(at),
                bg_x: f(WIDTH - RIGHT - 4.0 - w),
                bg_y: f(at - 11.5),
                bg_w: f(w),
                class,
                label,
            }
        })
        .collect();

    let points: Vec<Point> = scores
        .iter()
        .map(|s| Point {
            x: f(x(s.at)),
            y: f(y(s.total as f64)),
            title: format!(
                "{}: {}{}",
                clock.date(s.at),
                s.total,
                s.band.as_ref().map(|b| format!(" ({b})")).unwrap_or_default()
            ),
        })
        .collect();
    let path = points.iter().map(|p| format!("{},{}", p.x, p.y)).collect::<Vec<_>>().join(" ");

    let mut x_ticks = vec![Tick { pos: f(x(t0)), label: clock.short_date(t0) }];
    if span > 0.0 {
        for k in 1..=3 {
            let t = t0 + time::Duration::seconds_f64(span * k as f64 / 3.0);
            x_ticks.push(Tick { pos: f(x(t)), label: clock.short_date(t) });
        }
    }
    let mut y_ticks: Vec<Tick> =
        inst.bands.iter().map(|b| Tick { pos: f(y(b.min as f64) + 4.0), label: b.min.to_string() }).collect();
    y_ticks.push(Tick { pos: f(y(hi) + 4.0), label: trim(hi) });
    y_ticks.dedup_by(|a, b| a.label == b.label);

    let change = last.total - base;
    let summary = format!(
        "{} scores from {} to {}: baseline {base}, latest {} ({}{change}). {} session{} marked.",
        scores.len(),
        clock.date(first.at),
        clock.date(last.at),
        last.total,
        if change > 0 { "+" } else { "" },
        in_range.len(),
        if in_range.len() == 1 { "" } else { "s" },
    );

    Some(Trajectory {
        id: format!("traj-{}", inst.code),
        title: inst.short_name.clone(),
        summary,
        view_box: format!("0 0 {WIDTH} {HEIGHT}"),
        plot_left: f(LEFT),
        plot_right: f(WIDTH - RIGHT),
        plot_top: f(TOP),
        plot_bottom: f(HEIGHT - BOTTOM),
        label_x: f(WIDTH - RIGHT + 6.0),
        plot_width: f(pw),
        ytick_x: f(LEFT - 6.0),
        xtick_y: f(HEIGHT - BOTTOM + 18.0),
        ref_x: f(WIDTH - RIGHT - 8.0),
        bands,
        lines,
        sessions: in_range.iter().map(|t| f(x(*t))).collect(),
        session_top: f(HEIGHT - BOTTOM - 10.0),
        points,
        path,
        x_ticks,
        y_ticks,
        rows: scores
            .iter()
            .map(|s| DataRow { date: clock.date(s.at), total: s.total, severity: s.band.clone().unwrap_or_default() })
            .collect(),
        definition: definition.map(|d| format!("{} ({})", d.name, d.source)),
    })
}

fn trim(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 { format!("{}", v.round() as i64) } else { format!("{v:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keta_domain::instruments::catalog;
    use keta_domain::outcomes::definition_for;
    use time::macros::datetime;

    #[test]
    fn phq9_chart_has_bands_lines_and_points() {
        let inst = catalog().get("phq9").unwrap();
        let t = datetime!(2026-10-01 15:00 UTC);
        let scores: Vec<Score> = [20, 14, 8, 4]
            .iter()
            .enumerate()
            .map(|(i, &total)| Score { at: t + time::Duration::weeks(i as i64), total, band: None })
            .collect();
        let c = build(inst, &scores, &[t + time::Duration::days(2)], definition_for("phq9"), None, &SiteClock::utc())
            .unwrap();
        assert_eq!(c.bands.len(), inst.bands.len());
        assert_eq!(c.points.len(), 4);
        let labels: Vec<&str> = c.lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["Baseline 20", "Response ≤ 10", "Remission < 5"]);
        assert_eq!(c.sessions.len(), 1);
        // Higher scores sit higher on the chart (smaller y).
        let y: Vec<f64> = c.points.iter().map(|p| p.y.parse().unwrap()).collect();
        assert!(y.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn no_scores_no_chart() {
        assert!(build(catalog().get("gad7").unwrap(), &[], &[], None, None, &SiteClock::utc()).is_none());
    }
}
