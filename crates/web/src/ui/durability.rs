//! Durability: how long the clinic's responders keep their response after their last
//! session, as Kaplan–Meier curves by route or by protocol, with the shares still responding
//! at 4 and 8 weeks beside the published figures of clinical-reference §5. The
//! analysis is `keta_domain::durability`; this module reads the charts, draws the chart as
//! server-side SVG (no script; colours and dash patterns are SVG presentation attributes,
//! which the CSP allows, unlike `style`) and pairs it with a table, its text alternative.
//!
//! The courses are read from every chart the user can see (`Store::patient_charts`, which
//! audits each chart read) and cached for a minute per server and site scope, and until the
//! next change published through the web layer; the JSON API (`/api/v1/outcomes/durability`)
//! shares the cache.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use keta_domain::DomainError;
use keta_domain::access::Permission;
use keta_domain::durability::{
    self, CourseSeries, DurabilityGroup, DurabilityReport, EIGHT_WEEKS_DAYS, FOUR_WEEKS_DAYS, Grouping, Share,
};
use keta_domain::outcomes::{OutcomeDefinition, ResponseRule, definition_for};
use keta_domain::relapse::{RelapseSettings, RelapseThreshold};
use keta_store::StoreError;
use serde::Deserialize;

use super::clinic_figures::FigureCache;
use super::page::{Area, Chrome, UiError, UiResult, render};
use crate::AppState;
use crate::auth::CurrentUser;

/// The instrument the curves follow: PHQ-9, the primary instrument for depression and the
/// one the published figures use (McInnes 2022 [S49]).
pub(crate) const INSTRUMENT: &str = "phq9";

/// The clinic's relapse rule (`PUT /api/v1/settings/relapse-watch`; default: loss of
/// response, the embedded outcome definitions' relapse rule). Both the page and the API read it
/// here, so the curves and the chart's relapse watch agree.
pub(crate) async fn relapse_settings(st: &AppState) -> Result<RelapseSettings, StoreError> {
    st.store.relapse_settings().await
}

/// The outcome definition that judges response for [`INSTRUMENT`].
pub(crate) fn definition() -> Result<&'static OutcomeDefinition, DomainError> {
    definition_for(INSTRUMENT).ok_or_else(|| DomainError::Conflict(format!("no outcome definition for `{INSTRUMENT}`")))
}

// ---------------------------------------------------------------------------------------
// Loading (shared with the API)

static SERIES: FigureCache<Arc<Vec<CourseSeries>>> = FigureCache::new();

/// The PHQ-9 series of every course at the user's sites, and the number of patients read.
pub(crate) async fn load(st: &AppState, user: &CurrentUser) -> Result<(usize, Arc<Vec<CourseSeries>>), StoreError> {
    SERIES
        .get(st, user, Arc::new(Vec::new()), |series, chart| {
            Arc::make_mut(series).extend(durability::course_series(chart, INSTRUMENT))
        })
        .await
}

/// The report for one grouping, over every course the user can see.
pub(crate) async fn report(
    st: &AppState,
    user: &CurrentUser,
    grouping: Grouping,
) -> Result<(usize, DurabilityReport), StoreError> {
    let (patients, series) = load(st, user).await?;
    let settings = relapse_settings(st).await?;
    let report = durability::analyse(&series, grouping, definition()?, &settings).map_err(StoreError::Domain)?;
    Ok((patients, report))
}

// ---------------------------------------------------------------------------------------
// The chart

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 330.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 186.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 48.0;
/// The x axis: days since the last session, to 13 weeks.
const X_MAX_DAYS: f64 = 91.0;
/// Under the chart: the "Number at risk" title, then one row per curve.
const RISK_TITLE: f64 = 18.0;
const RISK_ROW: f64 = 16.0;

/// Line colours (at least 4.5:1 on white, so they also serve as text colours) and dash
/// patterns; curve *i* takes colour *i* mod 8 and pattern *i* mod 5, so no two of the first
/// 40 curves look alike even without colour.
const COLOURS: [&str; 8] = ["#0a5bab", "#b3541e", "#17693a", "#6a3fb5", "#9b1c1c", "#1b1f24", "#00707a", "#7a5200"];
const DASHES: [&str; 5] = ["none", "8 4", "3 3", "10 3 2 3", "14 4"];

pub(crate) struct CurveView {
    /// The direct label at the curve's end (shortened to fit the margin).
    pub label: String,
    /// The legend's label: the full name and the number of responders on the curve.
    pub legend: String,
    pub colour: &'static str,
    pub dash: &'static str,
    pub path: String,
    pub bands: Vec<Rect>,
    pub censor_marks: Vec<String>,
    pub end_x: String,
    pub end_y: String,
    pub label_y: String,
    pub title: String,
}

pub(crate) struct Rect {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
}

pub(crate) struct Tick {
    pub pos: String,
    pub label: String,
}

pub(crate) struct Marker {
    pub x: String,
    pub y: String,
    pub title: String,
}

/// One row of the numbers at risk under the x axis: one curve's responders still followed
/// at each x tick.
pub(crate) struct RiskRow {
    pub y: String,
    pub colour: &'static str,
    pub label: String,
    pub cells: Vec<Tick>,
}

pub(crate) struct ChartView {
    pub view_box: String,
    pub risk_title_y: String,
    pub risk_rows: Vec<RiskRow>,
    pub plot_left: String,
    pub plot_right: String,
    pub plot_top: String,
    pub plot_bottom: String,
    pub label_x: String,
    pub ytick_x: String,
    pub xtick_y: String,
    pub x_title_x: String,
    pub x_title_y: String,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    /// Vertical guides at 4 and 8 weeks.
    pub guides: Vec<Tick>,
    pub half_y: String,
    pub curves: Vec<CurveView>,
    /// Published shares still responding (McInnes 2022 [S49]).
    pub published_points: Vec<Marker>,
    pub published_points_label: Option<Marker>,
    /// Published median time to relapse, drawn at 50 % (Murrough 2013 [S39]).
    pub published_medians: Vec<Marker>,
    pub published_median_label: Option<Marker>,
    pub summary: String,
}

fn f(x: f64) -> String {
    format!("{x:.1}")
}

fn x_of(days: f64) -> f64 {
    LEFT + days.clamp(0.0, X_MAX_DAYS) / X_MAX_DAYS * (WIDTH - LEFT - RIGHT)
}

fn y_of(share: f64) -> f64 {
    TOP + (1.0 - share.clamp(0.0, 1.0)) * (HEIGHT - TOP - BOTTOM)
}

fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

fn days_text(d: f64) -> String {
    if (d - d.round()).abs() < 0.05 { format!("{}", d.round() as i64) } else { format!("{d:.1}") }
}

/// Shortens a label for the chart's margin (the table has it in full).
fn short(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        format!("{}…", label.chars().take(max - 1).collect::<String>().trim_end())
    }
}

fn curve(i: usize, g: &DurabilityGroup) -> Option<CurveView> {
    // When the last ones followed all relapse, the estimate's final drop to 0 rests on them
    // alone: the curve stops at that relapse at the level before it (as `KaplanMeier::end`).
    let emptied = g.steps.last().filter(|s| s.survival == 0.0);
    let drawn_steps = &g.steps[..g.steps.len() - usize::from(emptied.is_some())];
    let end = emptied.map_or(g.max_follow_up_days?, |s| s.days).min(X_MAX_DAYS);
    let mut d = format!("M{} {}", f(x_of(0.0)), f(y_of(1.0)));
    let mut level = 1.0;
    let mut bands = Vec::new();
    for (k, s) in drawn_steps.iter().enumerate() {
        if s.days > X_MAX_DAYS {
            break;
        }
        d.push_str(&format!(" H{} V{}", f(x_of(s.days)), f(y_of(s.survival))));
        level = s.survival;
        if let (Some(lo), Some(hi)) = (s.ci_low, s.ci_high) {
            let until = drawn_steps.get(k + 1).map_or(end, |n| n.days.min(end));
            let (x0, x1) = (x_of(s.days), x_of(until));
            bands.push(Rect { x: f(x0), y: f(y_of(hi)), w: f((x1 - x0).max(0.0)), h: f(y_of(lo) - y_of(hi)) });
        }
    }
    d.push_str(&format!(" H{}", f(x_of(end))));
    let level_at = |t: f64| drawn_steps.iter().take_while(|s| s.days <= t).last().map_or(1.0, |s| s.survival);
    let censor_marks = g
        .censored_days
        .iter()
        .filter(|t| **t <= X_MAX_DAYS)
        .map(|&t| format!("M{} {} v8", f(x_of(t)), f(y_of(level_at(t)) - 4.0)))
        .collect();
    Some(CurveView {
        label: short(&g.label, 23),
        legend: format!("{} (n={})", g.label, g.followed),
        colour: COLOURS[i % COLOURS.len()],
        dash: DASHES[i % DASHES.len()],
        path: d,
        bands,
        censor_marks,
        end_x: f(x_of(end)),
        end_y: f(y_of(level)),
        label_y: String::new(),
        title: format!(
            "{}: {} responders followed, {} relapsed, {} still responding at last score{}",
            g.label,
            g.followed,
            g.relapses,
            g.censored,
            emptied.map_or(String::new(), |s| format!(
                "; the last followed relapsed at {} days (the curve stops there rather than drop to 0 %)",
                days_text(s.days)
            ))
        ),
    })
}

/// Direct labels in the right margin at each curve's end, nudged apart so none overlap.
fn place_end_labels(curves: &mut [CurveView]) {
    const GAP: f64 = 15.0;
    let mut order: Vec<usize> = (0..curves.len()).collect();
    let end_y = |c: &CurveView| c.end_y.parse::<f64>().unwrap_or(TOP);
    order.sort_by(|a, b| end_y(&curves[*a]).total_cmp(&end_y(&curves[*b])));
    let mut prev = f64::NEG_INFINITY;
    let mut at = vec![0.0; curves.len()];
    for &i in &order {
        let y = (end_y(&curves[i]) + 4.0).max(TOP + 8.0).max(prev + GAP);
        at[i] = y;
        prev = y;
    }
    let overflow = prev - (HEIGHT - 4.0);
    for (c, y) in curves.iter_mut().zip(at) {
        c.label_y = f(if overflow > 0.0 { y - overflow } else { y });
    }
}

/// The chart in words: each curve's responders, relapses and survival, then the numbers at risk.
fn summary(drawn: &[&DurabilityGroup], x_tick_days: &[f64]) -> String {
    if drawn.is_empty() {
        "No responder has been followed after their last session yet, so there is no curve to draw.".to_string()
    } else {
        let parts: Vec<String> = drawn
            .iter()
            .map(|g| {
                format!(
                    "{}: {} responders, {} relapsed, {} at 4 weeks, {} at 8 weeks",
                    g.label,
                    g.followed,
                    g.relapses,
                    g.at_4_weeks.map_or("not enough follow-up".into(), |s| pct(s.survival)),
                    g.at_8_weeks.map_or("not enough follow-up".into(), |s| pct(s.survival)),
                )
            })
            .collect();
        let risk: Vec<String> = drawn
            .iter()
            .map(|g| {
                let at: Vec<String> =
                    x_tick_days.iter().map(|&d| format!("{} at day {}", g.at_risk_at(d), days_text(d))).collect();
                format!("{}: {}", g.label, at.join(", "))
            })
            .collect();
        format!(
            "Share of responders still responding by days since their last session. {}. Numbers at risk: {}.",
            parts.join("; "),
            risk.join("; ")
        )
    }
}

fn chart(report: &DurabilityReport) -> ChartView {
    let drawn: Vec<&DurabilityGroup> = report.groups.iter().filter(|g| g.followed > 0).collect();
    let mut curves: Vec<CurveView> = drawn.iter().enumerate().filter_map(|(i, g)| curve(i, g)).collect();

    place_end_labels(&mut curves);

    // Published figures (§5), drawn where they fall on these axes.
    let mut published_points = Vec::new();
    let mut published_medians = Vec::new();
    let mut points_label = None;
    let mut median_label = None;
    for p in &report.published {
        let approx = if p.approximate { "~" } else { "" };
        for s in &p.still_responding {
            if s.days <= X_MAX_DAYS {
                published_points.push(Marker {
                    x: f(x_of(s.days)),
                    y: f(y_of(s.pct / 100.0)),
                    title: format!(
                        "{}: {approx}{:.0} % still responding at {} days ({})",
                        p.study,
                        s.pct,
                        days_text(s.days),
                        p.source
                    ),
                });
            }
        }
        if let Some(first) = p.still_responding.first().filter(|_| points_label.is_none()) {
            points_label = Some(Marker {
                x: f(x_of(first.days) + 8.0),
                y: f(y_of(first.pct / 100.0) - 8.0),
                title: format!("{} {}", study_name(&p.study), tag(&p.source)),
            });
        }
        if let Some(m) = p.median_relapse_days.filter(|m| *m <= X_MAX_DAYS) {
            published_medians.push(Marker {
                x: f(x_of(m)),
                y: f(y_of(0.5)),
                title: format!(
                    "{}: median relapse {} days after the last session ({})",
                    p.study,
                    days_text(m),
                    p.source
                ),
            });
            if median_label.is_none() {
                median_label = Some(Marker {
                    x: f(x_of(m) + 8.0),
                    y: f(y_of(0.5) + 16.0),
                    title: format!("Median {} d, {} {}", days_text(m), study_name(&p.study), tag(&p.source)),
                });
            }
        }
    }

    // Numbers at risk at each x tick, one row per curve, under the x axis title.
    let x_tick_days: Vec<f64> = (0..=6).map(|k| 14.0 * k as f64).collect();
    let risk_rows: Vec<RiskRow> = drawn
        .iter()
        .zip(&curves)
        .enumerate()
        .map(|(i, (g, c))| RiskRow {
            y: f(HEIGHT + RISK_TITLE + RISK_ROW * (i as f64 + 1.0)),
            colour: c.colour,
            label: c.label.clone(),
            cells: x_tick_days.iter().map(|&d| Tick { pos: f(x_of(d)), label: g.at_risk_at(d).to_string() }).collect(),
        })
        .collect();
    let chart_height =
        HEIGHT + if risk_rows.is_empty() { 0.0 } else { RISK_TITLE + RISK_ROW * (risk_rows.len() as f64 + 0.5) };

    let summary = summary(&drawn, &x_tick_days);

    ChartView {
        view_box: format!("0 0 {WIDTH} {chart_height}"),
        risk_title_y: f(HEIGHT + RISK_TITLE - 4.0),
        risk_rows,
        plot_left: f(LEFT),
        plot_right: f(WIDTH - RIGHT),
        plot_top: f(TOP),
        plot_bottom: f(HEIGHT - BOTTOM),
        label_x: f(WIDTH - RIGHT + 8.0),
        ytick_x: f(LEFT - 6.0),
        xtick_y: f(HEIGHT - BOTTOM + 16.0),
        x_title_x: f((LEFT + WIDTH - RIGHT) / 2.0),
        x_title_y: f(HEIGHT - 8.0),
        y_ticks: [0.0, 0.25, 0.5, 0.75, 1.0].iter().map(|&v| Tick { pos: f(y_of(v) + 4.0), label: pct(v) }).collect(),
        x_ticks: x_tick_days.iter().map(|&d| Tick { pos: f(x_of(d)), label: days_text(d) }).collect(),
        guides: [(FOUR_WEEKS_DAYS, "4 wk"), (EIGHT_WEEKS_DAYS, "8 wk")]
            .iter()
            .map(|&(d, l)| Tick { pos: f(x_of(d)), label: l.into() })
            .collect(),
        half_y: f(y_of(0.5)),
        curves,
        published_points,
        published_points_label: points_label,
        published_medians,
        published_median_label: median_label,
        summary,
    }
}

/// `McInnes 2022` from `McInnes 2022 (Osmind, 178 US clinics)`, for the chart.
fn study_name(study: &str) -> &str {
    study.split(['(', ',']).next().unwrap_or(study).trim()
}

/// `[S49]` from `clinical-reference §5 [S49]`.
fn tag(source: &str) -> &str {
    source.find('[').map_or(source, |i| &source[i..])
}

// ---------------------------------------------------------------------------------------
// The table

pub(crate) struct Row {
    pub label: String,
    pub colour: Option<&'static str>,
    pub dash: &'static str,
    pub courses: usize,
    pub responders: String,
    pub relapses: String,
    pub at_4_weeks: String,
    pub at_8_weeks: String,
    pub median: String,
}

pub(crate) struct PublishedRow {
    pub study: String,
    pub detail: String,
    pub at_4_weeks: String,
    pub at_8_weeks: String,
    pub median: String,
    pub source: String,
    pub note: String,
}

fn share_text(s: Option<Share>, followed: usize) -> String {
    match s {
        _ if followed == 0 => "—".into(),
        None => "not enough follow-up".into(),
        Some(s) => match (s.ci_low, s.ci_high) {
            (Some(lo), Some(hi)) => format!("{} ({}–{})", pct(s.survival), pct(lo).trim_end_matches(" %"), pct(hi)),
            _ => pct(s.survival),
        },
    }
}

fn rows(report: &DurabilityReport, chart: &ChartView) -> Vec<Row> {
    let mut drawn = chart.curves.iter();
    report
        .groups
        .iter()
        .map(|g| {
            let curve = if g.followed > 0 { drawn.next() } else { None };
            Row {
                label: g.label.clone(),
                colour: curve.map(|c| c.colour),
                dash: curve.map_or("none", |c| c.dash),
                courses: g.courses,
                responders: match (g.followed, g.without_follow_up) {
                    (n, 0) => n.to_string(),
                    (n, w) => format!("{n} (+{w} not yet followed after a session)"),
                },
                relapses: if g.followed == 0 { "—".into() } else { g.relapses.to_string() },
                at_4_weeks: share_text(g.at_4_weeks, g.followed),
                at_8_weeks: share_text(g.at_8_weeks, g.followed),
                median: match g.median_days {
                    _ if g.followed == 0 => "—".into(),
                    Some(d) => format!("{} days", days_text(d)),
                    None => "not reached".into(),
                },
            }
        })
        .collect()
}

fn published_rows(report: &DurabilityReport) -> Vec<PublishedRow> {
    report
        .published
        .iter()
        .map(|p| {
            let approx = if p.approximate { "~" } else { "" };
            let at = |d: f64| p.pct_at(d).map_or("—".into(), |v| format!("{approx}{v:.0} %"));
            PublishedRow {
                study: p.study.clone(),
                detail: format!("{}; {}", p.design, p.intervention),
                at_4_weeks: at(FOUR_WEEKS_DAYS),
                at_8_weeks: at(EIGHT_WEEKS_DAYS),
                median: p.median_relapse_days.map_or("—".into(), |d| format!("{approx}{} days", days_text(d))),
                source: p.source.clone(),
                note: p.note.clone().unwrap_or_default(),
            }
        })
        .collect()
}

/// The relapse rule in use, in words.
pub(crate) fn relapse_rule_text(settings: &RelapseSettings, def: &OutcomeDefinition) -> String {
    let response = match def.response.as_ref().map(|r| r.rule) {
        Some(ResponseRule::PercentReduction { min_percent }) => {
            format!("at least {min_percent} % below baseline")
        }
        Some(ResponseRule::PointReduction { min_points }) => {
            format!("at least {min_points} points below baseline")
        }
        None => "the response criterion".into(),
    };
    match settings.threshold {
        RelapseThreshold::LossOfResponse => format!(
            "loss of response: a PHQ-9 total that is no longer {response} (the default; clinical-reference gives no relapse definition, §5)"
        ),
        RelapseThreshold::TotalAtLeast { total } => {
            format!("a PHQ-9 total of {total} or more after a response (the clinic's setting)")
        }
    }
}

// ---------------------------------------------------------------------------------------
// The page

#[derive(Debug, Default, Deserialize)]
pub struct DurabilityParams {
    /// `route` (default) or `protocol`.
    #[serde(default)]
    pub by: Option<String>,
}

pub(crate) struct GroupingLink {
    pub href: &'static str,
    pub label: &'static str,
    pub current: &'static str,
}

#[derive(Template)]
#[template(path = "outcomes/durability.html")]
struct DurabilityPage {
    chrome: Chrome,
    by_label: &'static str,
    links: Vec<GroupingLink>,
    chart: ChartView,
    rows: Vec<Row>,
    published: Vec<PublishedRow>,
    relapse_rule: String,
    definition: String,
    patients: usize,
    computed_at: String,
}

pub async fn get_durability(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<DurabilityParams>,
) -> UiResult<Response> {
    user.actor.require(Permission::ViewClinical)?;
    let grouping = match q.by.as_deref().map(str::trim) {
        None | Some("") => Grouping::Route,
        Some(s) => Grouping::parse(s)
            .ok_or_else(|| UiError::BadRequest(format!("Group the curves by `route` or `protocol`, not `{s}`.")))?,
    };
    let (patients, report) = report(&st, &user, grouping).await?;
    let def = definition()?;
    let chart = chart(&report);
    let rows = rows(&report, &chart);
    let links = Grouping::ALL
        .iter()
        .map(|g| GroupingLink {
            href: match g {
                Grouping::Route => "/outcomes/durability?by=route",
                Grouping::Protocol => "/outcomes/durability?by=protocol",
            },
            label: match g {
                Grouping::Route => "By route",
                Grouping::Protocol => "By protocol",
            },
            current: if *g == grouping { "page" } else { "false" },
        })
        .collect();
    let now = st.store.now();
    Ok(render(&DurabilityPage {
        chrome: Chrome::new(&user, "Durability after response", Area::Outcomes),
        by_label: match grouping {
            Grouping::Route => "route",
            Grouping::Protocol => "protocol",
        },
        links,
        published: published_rows(&report),
        relapse_rule: relapse_rule_text(&report.settings, def),
        definition: format!("{} ({})", def.name, def.source),
        chart,
        rows,
        patients,
        computed_at: format!("{:02}:{:02} UTC", now.hour(), now.minute()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keta_domain::course::Route;
    use keta_domain::outcomes::ScorePoint;
    use time::macros::datetime;

    fn series() -> Vec<CourseSeries> {
        let t0 = datetime!(2026-01-05 09:00 UTC);
        let at = |d: i64| t0 + time::Duration::days(d);
        let c = |route, protocol: Option<&str>, scores: &[(i64, i32)]| CourseSeries {
            route,
            protocol: protocol.map(str::to_string),
            sessions: [0, 2, 4, 7, 9, 11].iter().map(|&d| at(d)).collect(),
            scores: scores.iter().map(|&(d, total)| ScorePoint { at: at(d), total }).collect(),
            baseline: None,
        };
        vec![
            c(Route::IvRacemic, Some("IV six"), &[(0, 20), (14, 9), (21, 12)]),
            c(Route::IvRacemic, Some("IV six"), &[(0, 18), (14, 8), (80, 7)]),
            c(Route::IvRacemic, None, &[(0, 22), (14, 10), (41, 16)]),
            c(Route::ImRacemic, None, &[(0, 20), (14, 16)]),
        ]
    }

    fn report(by: Grouping) -> DurabilityReport {
        durability::analyse(&series(), by, definition().unwrap(), &RelapseSettings::default()).unwrap()
    }

    #[test]
    fn chart_draws_a_curve_per_group_with_responders_and_the_published_points() {
        let r = report(Grouping::Route);
        let c = chart(&r);
        assert_eq!(c.curves.len(), 1, "IM has no responder: no curve");
        let iv = &c.curves[0];
        assert_eq!((iv.label.as_str(), iv.legend.as_str()), ("IV ketamine", "IV ketamine (n=3)"));
        // Steps at 10 and 30 days, then flat to the censored responder's 69 days.
        assert_eq!(iv.path.matches('V').count(), 2, "{}", iv.path);
        assert_eq!(iv.censor_marks.len(), 1);
        assert_eq!(iv.bands.len(), 2, "an interval after each step");
        // The curve stops at the last responder followed (69 days), at 1/3, not at 0 %.
        assert!(iv.path.ends_with(&format!(" V{} H{}", f(y_of(1.0 / 3.0)), f(x_of(69.0)))), "{}", iv.path);
        assert_eq!((iv.end_x.clone(), iv.end_y.clone()), (f(x_of(69.0)), f(y_of(1.0 / 3.0))));
        // Numbers at risk under each x tick (0, 14, …, 84 days): 3 followed; relapse at 10
        // leaves 2; relapse at 30 leaves 1, censored at 69.
        assert_eq!(c.risk_rows.len(), 1);
        let risk: Vec<&str> = c.risk_rows[0].cells.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(risk, ["3", "2", "2", "1", "1", "0", "0"]);
        assert!(c.summary.contains("Numbers at risk: IV ketamine: 3 at day 0, 2 at day 14"), "{}", c.summary);
        assert_eq!(c.published_points.len(), 2, "McInnes 4 and 8 weeks");
        assert_eq!(c.published_medians.len(), 1, "Murrough median");
        assert!(c.published_median_label.as_ref().unwrap().title.contains("[S39]"));
        assert!(c.summary.contains("IV ketamine: 3 responders, 2 relapsed"), "{}", c.summary);

        let rows = rows(&r, &c);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].colour, Some(COLOURS[0]));
        assert_eq!((rows[1].responders.as_str(), rows[1].at_4_weeks.as_str()), ("0", "—"));
        // 2/3 after day 10; S(28) = 2/3 with an interval; S(56) = 1/3.
        assert!(rows[0].at_4_weeks.starts_with("67 % ("), "{}", rows[0].at_4_weeks);
        assert!(rows[0].at_8_weeks.starts_with("33 % ("), "{}", rows[0].at_8_weeks);
        assert_eq!(rows[0].median, "30 days");
    }

    #[test]
    fn a_curve_whose_last_followed_relapse_stops_there_without_dropping_to_zero() {
        // One IV responder relapses at 10 days, the other (the last followed) at 30.
        let t0 = datetime!(2026-01-05 09:00 UTC);
        let at = |d: i64| t0 + time::Duration::days(d);
        let c = |scores: &[(i64, i32)]| CourseSeries {
            route: Route::IvRacemic,
            protocol: None,
            sessions: [0, 2, 4, 7, 9, 11].iter().map(|&d| at(d)).collect(),
            scores: scores.iter().map(|&(d, total)| ScorePoint { at: at(d), total }).collect(),
            baseline: None,
        };
        let series = [c(&[(0, 20), (14, 9), (21, 12)]), c(&[(0, 18), (14, 8), (41, 16)])];
        let r =
            durability::analyse(&series, Grouping::Route, definition().unwrap(), &RelapseSettings::default()).unwrap();
        assert_eq!(r.groups[0].steps.last().unwrap().survival, 0.0, "the estimate does reach 0");
        let iv = &chart(&r).curves[0];
        assert!(iv.path.ends_with(&format!(" V{} H{}", f(y_of(0.5)), f(x_of(30.0)))), "{}", iv.path);
        assert!(!iv.path.contains(&format!("V{}", f(y_of(0.0)))), "no drop to 0 %: {}", iv.path);
        assert!(iv.title.contains("the last followed relapsed at 30 days"), "{}", iv.title);
    }

    #[test]
    fn protocols_are_grouped_and_labelled() {
        let r = report(Grouping::Protocol);
        let labels: Vec<&str> = r.groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["IV six", durability::NO_PROTOCOL]);
        let c = chart(&r);
        assert_eq!(c.curves.len(), 2);
        assert_ne!((c.curves[0].colour, c.curves[0].dash), (c.curves[1].colour, c.curves[1].dash));
        assert_ne!(c.curves[0].dash, c.curves[1].dash, "told apart without colour too");
        assert_eq!((r.groups[0].followed, r.groups[0].relapses), (2, 1));
    }

    #[test]
    fn labels_and_rule_text() {
        assert_eq!(short("Esketamine label maintenance (weekly)", 12), "Esketamine…");
        assert_eq!(tag("clinical-reference §5 [S49]"), "[S49]");
        assert_eq!(study_name("McInnes 2022 (Osmind, 178 US clinics)"), "McInnes 2022");
        assert_eq!(study_name("Murrough 2013, Biol Psychiatry"), "Murrough 2013");
        let def = definition().unwrap();
        let t = relapse_rule_text(&RelapseSettings::default(), def);
        assert!(t.contains("no longer at least 50 % below baseline"), "{t}");
        let t = relapse_rule_text(
            &RelapseSettings { threshold: RelapseThreshold::TotalAtLeast { total: 15 }, ..Default::default() },
            def,
        );
        assert!(t.contains("15 or more"), "{t}");
    }
}
