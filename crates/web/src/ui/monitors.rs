//! Monitor readings to review: what bedside monitors sent that Keta did not attach to a
//! chart (unknown monitor, empty chair, implausible value, time far from now), newest first,
//! so a nurse can see it and act (register the monitor, check the patient in, re-take the
//! reading by hand).

use askama::Template;
use axum::extract::State;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::ui::clock::SiteClock;
use crate::ui::page::{Area, Chrome, UiResult, render};

pub(crate) struct ReviewRow {
    pub received: String,
    pub observed: String,
    pub device: String,
    pub chair: String,
    pub reading: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "monitors/review.html")]
struct ReviewPage {
    chrome: Chrome,
    rows: Vec<ReviewRow>,
}

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "—".into(), |v| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") })
}

pub async fn get_review(State(st): State<AppState>, user: CurrentUser) -> UiResult {
    let items = st.store.monitor_review_list(&user.actor).await?;
    let mut chair_names = std::collections::HashMap::new();
    for site in st.store.list_sites(&user.actor).await? {
        for c in st.store.list_chairs(&user.actor, site.id).await? {
            chair_names.insert(c.id, format!("{} - {}", site.code, c.name));
        }
    }
    let clock = SiteClock::utc();
    let rows = items
        .into_iter()
        .map(|i| ReviewRow {
            received: clock.datetime(i.received_at),
            observed: i.observed_at.map_or_else(|| "—".into(), |t| clock.datetime(t)),
            device: i.device_identifier,
            chair: i.chair_id.and_then(|c| chair_names.get(&c).cloned()).unwrap_or_else(|| "—".into()),
            reading: match i.reading {
                None => "—".into(),
                Some(v) => format!(
                    "BP {}/{} (mean {}) · HR {} · SpO₂ {} · RR {}",
                    num(v.systolic_mmhg.map(|x| x.0)),
                    num(v.diastolic_mmhg.map(|x| x.0)),
                    num(i.mean_mmhg.map(|x| x.0)),
                    num(v.heart_rate_bpm.map(|x| x.0)),
                    num(v.spo2_pct.map(|x| x.0)),
                    num(v.resp_rate_per_min.map(|x| x.0)),
                ),
            },
            reason: i.reason,
        })
        .collect();
    Ok(render(&ReviewPage { chrome: Chrome::new(&user, "Monitor readings to review", Area::Today), rows }))
}
