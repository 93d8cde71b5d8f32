//! The session screen's bedside-monitor panel: the readings the chair's monitor wrote into
//! the session, newest first, as they arrive (a server-sent-event stream re-renders the panel
//! when the site's data changes), each marked as a monitor reading with its mean pressure and
//! its review. The nurse confirms a reading in one click, or opens it to strike it as an
//! artefact with a reason (`Store::review_device_reading`, audited): a struck reading stays
//! listed here, struck through, and no longer counts anywhere else.
//!
//! The strike form is on its own page rather than in the live panel, so a new reading
//! arriving every few seconds never wipes a reason being typed.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};

use keta_domain::access::Permission;
use keta_domain::device_readings::{DeviceReadingDecision, DeviceReadingStatus};
use keta_domain::ids::{RecordId, SessionId};
use keta_domain::session::TreatmentSession;
use keta_store::StoreError;
use keta_store::monitors::DeviceReading;

use super::clock::SiteClock;
use super::page::{Area, Chrome, Errors, FormData, UiResult, render, render_status, see_other};
use crate::AppState;
use crate::auth::CurrentUser;

pub(crate) struct DeviceRow {
    pub id: i64,
    pub time: String,
    pub since: String,
    pub bp: String,
    pub mean: String,
    pub hr: String,
    pub spo2: String,
    pub rr: String,
    pub status: &'static str,
    pub struck: bool,
    pub confirmed: bool,
    /// "Struck by rn.demo at 10:42: cuff moved", empty while unreviewed.
    pub review: String,
}

#[derive(Template)]
#[template(path = "session/device_readings_partial.html")]
struct DevicePanel {
    session_id: i64,
    csrf_token: String,
    /// The nurse may review (role) and the session is still open.
    can_review: bool,
    rows: Vec<DeviceRow>,
}

impl DevicePanel {
    /// A one-time token per form, as `Chrome::form_token` mints them.
    fn form_token(&self) -> String {
        keta_store::credentials::new_token()[..32].to_string()
    }
}

#[derive(Template)]
#[template(path = "session/device_reading.html")]
struct ReviewPage {
    chrome: Chrome,
    session_id: i64,
    row: DeviceRow,
    can_review: bool,
    form: FormData,
    errors: Errors,
}

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "—".into(), |v| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") })
}

fn status_label(s: DeviceReadingStatus) -> &'static str {
    match s {
        DeviceReadingStatus::Unreviewed => "not reviewed",
        DeviceReadingStatus::Confirmed => "confirmed",
        DeviceReadingStatus::Struck => "struck: artefact",
    }
}

fn row(clock: &SiteClock, d: &DeviceReading) -> DeviceRow {
    let v = &d.record.vitals;
    let review = match (&d.reviewed_by, d.reviewed_at) {
        (Some(by), Some(at)) => {
            let verb = if d.status == DeviceReadingStatus::Struck { "Struck" } else { "Confirmed" };
            let mut s = format!("{verb} by {by} at {}", clock.hm(at));
            if let Some(r) = &d.reason {
                s.push_str(&format!(": {r}"));
            }
            s
        }
        _ => String::new(),
    };
    DeviceRow {
        id: d.record.id.0,
        time: clock.hm(d.record.taken_at),
        since: d
            .record
            .minutes_since_dose
            .map_or_else(|| "pre-dose".into(), |m| if m < 0 { "pre-dose".into() } else { format!("{m} min") }),
        bp: match v.blood_pressure() {
            Some((s, d)) => format!("{}/{}", num(Some(s.0)), num(Some(d.0))),
            None => "—".into(),
        },
        mean: num(d.mean_mmhg.map(|m| m.0)),
        hr: num(v.heart_rate_bpm.map(|x| x.0)),
        spo2: num(v.spo2_pct.map(|x| x.0)),
        rr: num(v.resp_rate_per_min.map(|x| x.0)),
        status: status_label(d.status),
        struck: d.status == DeviceReadingStatus::Struck,
        confirmed: d.status == DeviceReadingStatus::Confirmed,
        review,
    }
}

async fn clock_for(st: &AppState, user: &CurrentUser, s: &TreatmentSession) -> UiResult<SiteClock> {
    let sites = st.store.list_sites(&user.actor).await?;
    Ok(sites.iter().find(|x| x.id == s.site_id).map_or_else(SiteClock::utc, SiteClock::for_site))
}

fn may_review(user: &CurrentUser, s: &TreatmentSession) -> bool {
    user.actor.can(Permission::RecordSession) && !s.state.is_terminal()
}

/// The panel's data and a fingerprint of it (without the forms' one-time tokens), so the live
/// stream sends only when something shown changed.
async fn panel(st: &AppState, user: &CurrentUser, id: SessionId) -> UiResult<(DevicePanel, String)> {
    let s = st.store.get_session(&user.actor, id).await?;
    let readings = st.store.device_readings(&user.actor, id).await?;
    let clock = clock_for(st, user, &s).await?;
    let can_review = may_review(user, &s);
    let fingerprint = format!("{can_review}{readings:?}");
    let rows = readings.iter().map(|d| row(&clock, d)).collect();
    Ok((DevicePanel { session_id: id.0, csrf_token: user.csrf_token.clone(), can_review, rows }, fingerprint))
}

/// `GET /sessions/{id}/device-readings`: the panel (a fragment).
pub async fn get_panel(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult<Response> {
    Ok(render(&panel(&st, &user, SessionId(id)).await?.0))
}

/// A stream ends after this long and the browser reconnects (as the board's does).
const STREAM_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// `GET /sessions/{id}/device-readings/events`: the panel, re-rendered when the session's
/// site changes (a monitor's message, a review), as `device-readings` events.
pub async fn get_events(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = SessionId(id);
    let site = st.store.get_session(&user.actor, id).await?.site_id;
    struct Live {
        st: AppState,
        user: CurrentUser,
        rx: tokio::sync::broadcast::Receiver<super::live::Change>,
        last: Option<String>,
        until: tokio::time::Instant,
        stopping: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        _client: crate::metrics::SseClient,
    }
    let live = Live {
        rx: super::live::subscribe(),
        stopping: Box::pin(st.observe.stopping()),
        st,
        user,
        last: None,
        until: tokio::time::Instant::now() + STREAM_LIFETIME,
        _client: crate::metrics::SseClient::open(),
    };
    let s = stream::unfold(live, move |mut l| async move {
        loop {
            if l.last.is_some() {
                use tokio::sync::broadcast::error::RecvError;
                tokio::select! {
                    r = l.rx.recv() => match r {
                        Ok(Some(changed)) if changed != site => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    },
                    _ = tokio::time::sleep_until(l.until) => return None,
                    _ = &mut l.stopping => return None,
                }
            }
            let (p, fingerprint) = match panel(&l.st, &l.user, id).await {
                Ok(x) => x,
                // The session went out of reach (or the store failed): end; the browser retries.
                Err(_) => return None,
            };
            if l.last.as_deref() == Some(fingerprint.as_str()) {
                continue;
            }
            let Ok(html) = p.render() else { return None };
            l.last = Some(fingerprint);
            return Some((Ok(Event::default().event("device-readings").data(html)), l));
        }
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

async fn review_page(
    st: &AppState,
    user: &CurrentUser,
    id: SessionId,
    reading: i64,
    form: FormData,
    errors: Errors,
) -> UiResult<ReviewPage> {
    let s = st.store.get_session(&user.actor, id).await?;
    let readings = st.store.device_readings(&user.actor, id).await?;
    let d = readings
        .iter()
        .find(|d| d.record.id.0 == reading)
        .ok_or_else(|| StoreError::NotFound(format!("monitor reading {reading} in session {id}")))?;
    let clock = clock_for(st, user, &s).await?;
    Ok(ReviewPage {
        chrome: Chrome::new(user, "Monitor reading", Area::Today),
        session_id: id.0,
        row: row(&clock, d),
        can_review: may_review(user, &s) && d.status != DeviceReadingStatus::Struck,
        form,
        errors,
    })
}

/// `GET /sessions/{id}/device-readings/{reading}`: one reading, with the form to strike it as
/// an artefact (reason required) or confirm it.
pub async fn get_reading(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, reading)): Path<(i64, i64)>,
) -> UiResult<Response> {
    Ok(render(&review_page(&st, &user, SessionId(id), reading, FormData::empty(), Errors::new()).await?))
}

/// `POST /sessions/{id}/device-readings/{reading}`: `decision` = `confirm` or `strike`, with
/// `reason` (required to strike).
pub async fn post_reading(
    State(st): State<AppState>,
    user: CurrentUser,
    Path((id, reading)): Path<(i64, i64)>,
    form: FormData,
) -> UiResult<Response> {
    let sid = SessionId(id);
    let mut errors = Errors::new();
    match DeviceReadingDecision::parse(form.get("decision")) {
        None => errors.add("decision", "choose to confirm the reading or strike it as an artefact"),
        Some(decision) => {
            match st
                .store
                .review_device_reading(&user.actor, sid, RecordId(reading), decision, form.opt("reason"))
                .await
            {
                Ok(_) => {
                    if let Ok(s) = st.store.get_session(&user.actor, sid).await {
                        super::live::publish(Some(s.site_id));
                    }
                    return Ok(see_other(format!("/sessions/{id}#device-readings")));
                }
                Err(e) => errors.absorb(e)?,
            }
        }
    }
    let page = review_page(&st, &user, sid, reading, form, errors).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}
