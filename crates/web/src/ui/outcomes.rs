//! Clinic outcomes: response and remission rates per route and instrument over every
//! course the user can see, each with the outcome definition that produced it, beside
//! the benchmark trials of clinical-reference §5 (`data/benchmarks.toml`).
//!
//! The figures are derived from every chart, so they are cached for a minute and until
//! the next change published through the web layer.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use keta_domain::course::Route;
use keta_domain::instruments::catalog;
use keta_domain::records::PatientChart;
use serde::Deserialize;

use super::clinic_figures::FigureCache;
use super::page::{Area, Chrome, UiResult, render};
use crate::AppState;
use crate::auth::CurrentUser;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    pub study: String,
    pub design: String,
    pub route: Route,
    pub instrument: String,
    pub intervention: String,
    pub time_point: String,
    #[serde(default)]
    pub response_pct: Option<f64>,
    #[serde(default)]
    pub remission_pct: Option<f64>,
    #[serde(default)]
    pub definition: Option<String>,
    #[serde(default)]
    pub comparator: Option<String>,
    #[serde(default)]
    pub comparator_response_pct: Option<f64>,
    #[serde(default)]
    pub comparator_remission_pct: Option<f64>,
    pub source: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BenchmarksFile {
    benchmarks: Vec<Benchmark>,
    /// Durability figures: read and checked by `keta_domain::durability::published`.
    #[serde(default, rename = "durability")]
    _durability: Vec<toml::Value>,
}

const BENCHMARKS_TOML: &str = include_str!("../../../../data/benchmarks.toml");

pub fn benchmarks() -> &'static [Benchmark] {
    static B: OnceLock<Vec<Benchmark>> = OnceLock::new();
    B.get_or_init(|| {
        toml::from_str::<BenchmarksFile>(BENCHMARKS_TOML)
            .unwrap_or_else(|e| panic!("embedded data/benchmarks.toml is invalid: {e}"))
            .benchmarks
    })
}

/// Our figures for one route and instrument.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClinicRate {
    pub instrument: String,
    pub courses: usize,
    pub assessable: usize,
    pub responders: usize,
    pub remission_assessable: usize,
    pub remitters: usize,
    pub relapsed: usize,
    pub ever_responded: usize,
    pub definitions: Vec<String>,
}

impl ClinicRate {
    pub fn response(&self) -> String {
        pct(self.responders, self.assessable)
    }
    pub fn remission(&self) -> String {
        pct(self.remitters, self.remission_assessable)
    }
    pub fn relapse(&self) -> String {
        pct(self.relapsed, self.ever_responded)
    }
}

fn pct(n: usize, d: usize) -> String {
    if d == 0 { "—".into() } else { format!("{:.1} % ({n}/{d})", n as f64 * 100.0 / d as f64) }
}

fn opt_pct(x: Option<f64>) -> String {
    x.map_or_else(|| "—".into(), |v| format!("{v:.1} %"))
}

pub(crate) struct BenchRow {
    pub study: String,
    pub design: String,
    pub instrument: String,
    pub intervention: String,
    pub time_point: String,
    pub response: String,
    pub remission: String,
    pub comparator: String,
    pub definition: String,
    pub source: String,
    pub note: String,
}

pub(crate) struct RouteSection {
    pub id: &'static str,
    pub route: &'static str,
    pub rates: Vec<ClinicRate>,
    pub benchmarks: Vec<BenchRow>,
}

#[derive(Template)]
#[template(path = "outcomes/outcomes.html")]
struct OutcomesPage {
    chrome: Chrome,
    sections: Vec<RouteSection>,
    patients: usize,
    computed_at: String,
}

fn instrument_name(code: &str) -> String {
    match code {
        "hamd" => "HAM-D".into(),
        "caps5" => "CAPS-5".into(),
        "unspecified" => "not named".into(),
        c => catalog().get(c).map_or_else(|| c.to_string(), |i| i.short_name.clone()),
    }
}

type Rates = BTreeMap<(Route, String), ClinicRate>;

static RATES: FigureCache<Rates> = FigureCache::new();

/// The clinic's rates by route and instrument, and the number of patients read.
async fn compute(st: &AppState, user: &CurrentUser) -> UiResult<(usize, Rates)> {
    Ok(RATES.get(st, user, Rates::new(), add_chart).await?)
}

fn add_chart(rates: &mut Rates, chart: &PatientChart) {
    for o in &chart.outcomes {
        let Some(course) = chart.courses.iter().find(|c| c.id == o.course_id) else { continue };
        let out = &o.outcome;
        let r = rates
            .entry((course.route, out.instrument.clone()))
            .or_insert_with(|| ClinicRate { instrument: instrument_name(&out.instrument), ..Default::default() });
        r.courses += 1;
        if let Some(x) = out.responded {
            r.assessable += 1;
            r.responders += usize::from(x);
        }
        if let Some(x) = out.remitted {
            r.remission_assessable += 1;
            r.remitters += usize::from(x);
        }
        if out.ever_responded == Some(true) {
            r.ever_responded += 1;
            r.relapsed += usize::from(out.relapsed == Some(true));
        }
        let d = format!("{} ({})", out.definition.name, out.definition.source);
        if !r.definitions.contains(&d) {
            r.definitions.push(d);
        }
    }
}

/// The clinic's rates per route beside the benchmark trials, and the number of patients
/// read: for the page and the PDF.
pub(crate) async fn sections(st: &AppState, user: &CurrentUser) -> UiResult<(usize, Vec<RouteSection>)> {
    user.actor.require(keta_domain::access::Permission::ViewClinical)?;
    let (patients, rates) = compute(st, user).await?;
    let sections = Route::ALL
        .iter()
        .map(|r| RouteSection {
            id: r.as_str(),
            route: r.label(),
            rates: rates.iter().filter(|((route, _), _)| route == r).map(|(_, v)| v.clone()).collect(),
            benchmarks: benchmarks()
                .iter()
                .filter(|b| b.route == *r)
                .map(|b| BenchRow {
                    study: b.study.clone(),
                    design: b.design.clone(),
                    instrument: instrument_name(&b.instrument),
                    intervention: b.intervention.clone(),
                    time_point: b.time_point.clone(),
                    response: opt_pct(b.response_pct),
                    remission: opt_pct(b.remission_pct),
                    comparator: match &b.comparator {
                        Some(c) => format!(
                            "{c}: response {}, remission {}",
                            opt_pct(b.comparator_response_pct),
                            opt_pct(b.comparator_remission_pct)
                        ),
                        None => String::new(),
                    },
                    definition: b.definition.clone().unwrap_or_default(),
                    source: b.source.clone(),
                    note: b.note.clone().unwrap_or_default(),
                })
                .collect(),
        })
        .collect();
    Ok((patients, sections))
}

pub async fn get_outcomes(State(st): State<AppState>, user: CurrentUser) -> UiResult<Response> {
    let (patients, sections) = sections(&st, &user).await?;
    let now = st.store.now();
    Ok(render(&OutcomesPage {
        chrome: Chrome::new(&user, "Clinic outcomes", Area::Outcomes),
        sections,
        patients,
        computed_at: format!("{:02}:{:02} UTC", now.hour(), now.minute()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmarks_load_with_sources_and_figures() {
        let b = benchmarks();
        assert!(b.len() >= 10);
        for x in b {
            assert!(x.source.contains('§'), "{}", x.study);
            assert!(x.response_pct.is_some() || x.remission_pct.is_some(), "{}", x.study);
            for v in [x.response_pct, x.remission_pct, x.comparator_response_pct, x.comparator_remission_pct]
                .into_iter()
                .flatten()
            {
                assert!((0.0..=100.0).contains(&v), "{}", x.study);
            }
        }
        let t2 = b.iter().find(|x| x.study.starts_with("TRANSFORM-2")).unwrap();
        assert_eq!((t2.response_pct, t2.remission_pct), (Some(69.3), Some(52.5)));
    }
}
