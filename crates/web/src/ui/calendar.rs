//! The chair calendar: a day or week per site, chairs down the side and days
//! across, each booked session with its time, patient, route and how long it holds the
//! chair (the route's minimum monitoring time, from the site's safety rules). The front desk
//! books a course's sessions from its protocol's schedule, moves, cancels and records
//! no-shows with a reason, and marks arrivals, which puts the patient on the board.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keta_domain::access::Role;
use keta_domain::ids::{ChairId, CourseId, SessionId};
use keta_domain::session::SessionState;
use keta_store::calendar::{BookCourse, BookableCourse, NoShow, Reschedule};
use keta_store::rota::OnDutyStaff;
use serde::Deserialize;
use time::Date;

use super::clock::{SiteClock, date_label, iso_date, parse_iso_date};
use super::page::{Area, Chrome, Errors, FormData, UiError, UiResult, render_status, see_other};
use super::user_sites;
use crate::AppState;
use crate::auth::CurrentUser;

#[derive(Debug, Default, Deserialize)]
pub struct CalendarQuery {
    pub site: Option<i64>,
    pub from: Option<String>,
    /// `day` or `week`.
    pub view: Option<String>,
}

pub(crate) struct Cell {
    pub id: i64,
    pub time: String,
    pub until: String,
    pub patient: String,
    pub mrn: String,
    pub route: &'static str,
    pub minutes: i64,
    pub sequence: u32,
    pub state: String,
    pub state_class: &'static str,
    pub outcome: Option<String>,
    /// "Moved from Tue 3 Nov 10:00, Chair 1" when the booking was moved.
    pub moved_from: Option<String>,
    pub bookable: bool,
    pub arrivable: bool,
    pub no_show_due: bool,
    pub date_iso: String,
    pub time_value: String,
}

pub(crate) struct DayColumn {
    pub label: String,
    pub today: bool,
}

pub(crate) struct ChairRow {
    pub name: String,
    /// One list of sessions per day column.
    pub days: Vec<Vec<Cell>>,
}

/// One name a day's rota may list, ticked when on duty that day.
pub(crate) struct RotaChoice {
    pub username: String,
    pub label: String,
    pub checked: bool,
}

/// Who is on duty on one day column, and the form to set it.
pub(crate) struct DutyDay {
    pub date_iso: String,
    pub label: String,
    pub staff: Vec<String>,
    pub choices: Vec<RotaChoice>,
}

pub(crate) struct SiteChoice {
    pub id: i64,
    pub name: String,
    pub selected: bool,
}

pub(crate) struct ChairChoice {
    pub id: i64,
    pub name: String,
}

#[derive(Template)]
#[template(path = "calendar/calendar.html")]
struct CalendarPage {
    chrome: Chrome,
    sites: Vec<SiteChoice>,
    site_id: i64,
    site_name: String,
    zone: String,
    week: bool,
    from_iso: String,
    prev_iso: String,
    next_iso: String,
    today_iso: String,
    columns: Vec<DayColumn>,
    rows: Vec<ChairRow>,
    unplaced: Vec<Cell>,
    chair_times: Vec<String>,
    on_duty: String,
    duty: Vec<DutyDay>,
    can_set_rota: bool,
    courses: Vec<BookableCourse>,
    chairs: Vec<ChairChoice>,
    can_book: bool,
    errors: Errors,
    done: Option<String>,
}

fn state_label(s: SessionState, outcome: Option<&str>) -> (String, &'static str) {
    match (s, outcome) {
        (_, Some("cancelled")) => ("Cancelled".into(), "st-muted"),
        (_, Some("no_show")) => ("No-show".into(), "st-stop"),
        (SessionState::Scheduled, _) => ("Booked".into(), "st-muted"),
        (SessionState::CheckedIn, _) => ("Arrived".into(), "st-good"),
        (SessionState::Discharged, _) => ("Discharged".into(), "st-good"),
        (SessionState::Stopped, _) => ("Stopped".into(), "st-stopped"),
        (other, _) => (super::page::capitalise(&other.as_str().replace('_', " ")), "st-caution"),
    }
}

async fn page(
    st: &AppState,
    user: &CurrentUser,
    q: &CalendarQuery,
    errors: Errors,
    done: Option<String>,
    status: StatusCode,
) -> UiResult<Response> {
    let sites = user_sites(st, user).await?;
    let Some(site) = q.site.and_then(|id| sites.iter().find(|s| s.id.0 == id)).or(sites.first()) else {
        return Err(UiError::NotFound("no site: ask the administrator to add a site with chairs".into()));
    };
    let clock = SiteClock::for_site(site);
    let now = st.store.now();
    let today = clock.today(now);
    let week = q.view.as_deref() != Some("day");
    let from = q.from.as_deref().and_then(parse_iso_date).unwrap_or(today);
    // The week view starts on Monday.
    let from =
        if week { from - time::Duration::days(i64::from(from.weekday().number_days_from_monday())) } else { from };
    let days: u32 = if week { 7 } else { 1 };
    let cal = st.store.site_calendar(&user.actor, site.id, from, days).await?;
    let can_book = user.actor.can(keta_domain::access::Permission::EditDemographics);
    let courses = if can_book { st.store.bookable_courses(&user.actor, site.id).await? } else { vec![] };
    // The rota: set by the administrator or the front desk, read by everyone here.
    let can_set_rota = matches!(user.actor.role, None | Some(Role::Administrator | Role::FrontDesk));
    let candidates = if can_set_rota { st.store.rota_candidates(&user.actor, site.id).await? } else { vec![] };
    let duty: Vec<DutyDay> = (0..days)
        .map(|k| {
            let d = from + time::Duration::days(i64::from(k));
            let here: Vec<&OnDutyStaff> = cal.on_duty.iter().filter(|s| s.day == d).collect();
            DutyDay {
                date_iso: iso_date(d),
                label: date_label(d),
                staff: here.iter().map(|s| format!("{} ({})", s.display_name, s.role.label().to_lowercase())).collect(),
                choices: candidates
                    .iter()
                    .map(|c| RotaChoice {
                        username: c.username.clone(),
                        label: format!("{} ({})", c.display_name, c.role.label().to_lowercase()),
                        checked: here.iter().any(|s| s.username == c.username),
                    })
                    .collect(),
            }
        })
        .collect();
    let columns: Vec<DayColumn> = (0..days)
        .map(|k| {
            let d = from + time::Duration::days(i64::from(k));
            DayColumn { label: date_label(d), today: d == today }
        })
        .collect();
    let col_of = |d: Date| (d - from).whole_days();
    let mut rows: Vec<ChairRow> = cal
        .chairs
        .iter()
        .map(|c| ChairRow { name: c.name.clone(), days: (0..days).map(|_| Vec::new()).collect() })
        .collect();
    let mut unplaced = Vec::new();
    for e in &cal.entries {
        let s = &e.session;
        let local = clock.local(s.scheduled_for);
        let (state, state_class) = state_label(s.state, e.outcome.as_deref());
        let cell = Cell {
            id: s.id.0,
            time: clock.hm(s.scheduled_for),
            until: clock.hm(e.ends_at),
            patient: e.patient_name.clone(),
            mrn: e.mrn.clone(),
            route: s.route.label(),
            minutes: e.chair_minutes,
            sequence: s.sequence,
            state,
            state_class,
            outcome: e.outcome_reason.clone(),
            moved_from: e.moved_from_at.map(|at| {
                let chair = e
                    .moved_from_chair_id
                    .and_then(|c| cal.chairs.iter().find(|x| x.id == c))
                    .map(|c| format!(", {}", c.name))
                    .unwrap_or_default();
                format!("Moved from {}{chair}", clock.datetime(at))
            }),
            bookable: s.state == SessionState::Scheduled,
            arrivable: s.state == SessionState::Scheduled && local.date() == today,
            no_show_due: s.state == SessionState::Scheduled && s.scheduled_for <= now,
            date_iso: iso_date(local.date()),
            time_value: clock.hm(s.scheduled_for),
        };
        let col = col_of(local.date());
        match (s.chair_id.and_then(|c| cal.chairs.iter().position(|x| x.id == c)), usize::try_from(col)) {
            (Some(r), Ok(c)) if c < days as usize => rows[r].days[c].push(cell),
            _ => unplaced.push(cell),
        }
    }
    let chair_times =
        cal.chair_times.iter().map(|t| format!("{}: {} min ({})", t.route.label(), t.minutes, t.source)).collect();
    let step = i64::from(days);
    let t = CalendarPage {
        chrome: Chrome::new(user, format!("Calendar · {}", site.name), Area::None),
        sites: sites
            .iter()
            .map(|s| SiteChoice { id: s.id.0, name: s.name.clone(), selected: s.id == site.id })
            .collect(),
        site_id: site.id.0,
        site_name: site.name.clone(),
        zone: site.time_zone.clone(),
        week,
        from_iso: iso_date(from),
        prev_iso: iso_date(from - time::Duration::days(step)),
        next_iso: iso_date(from + time::Duration::days(step)),
        today_iso: iso_date(today),
        columns,
        rows,
        unplaced,
        chair_times,
        on_duty: cal.prescriber_on_duty.clone().unwrap_or_else(|| "not set (the site's on-duty setting)".into()),
        duty,
        can_set_rota,
        courses,
        chairs: cal.chairs.iter().map(|c| ChairChoice { id: c.id.0, name: c.name.clone() }).collect(),
        can_book,
        errors,
        done,
    };
    Ok(render_status(status, &t))
}

pub async fn get_calendar(
    State(st): State<AppState>,
    user: CurrentUser,
    Query(q): Query<CalendarQuery>,
) -> UiResult<Response> {
    page(&st, &user, &q, Errors::new(), None, StatusCode::OK).await
}

fn back_query(form: &FormData) -> CalendarQuery {
    CalendarQuery { site: form.get("site").parse().ok(), from: form.opt("from"), view: form.opt("view") }
}

fn back_url(q: &CalendarQuery) -> String {
    format!(
        "/calendar?site={}&from={}&view={}",
        q.site.unwrap_or(0),
        q.from.clone().unwrap_or_default(),
        q.view.clone().unwrap_or_else(|| "week".into())
    )
}

async fn after(
    st: &AppState,
    user: &CurrentUser,
    form: FormData,
    r: Result<(), keta_store::StoreError>,
    field_prefix: &str,
) -> UiResult<Response> {
    let q = back_query(&form);
    match r {
        // An arrival marked from Today's schedule goes back there (the patient is on the board).
        Ok(()) if form.get("back") == "today" => Ok(see_other("/today")),
        Ok(()) => Ok(see_other(back_url(&q))),
        Err(e) => {
            let mut errors = Errors::new();
            errors.absorb(e)?;
            // Field errors become general lines: the forms are one per session on this page.
            let lines: Vec<String> = errors
                .general
                .iter()
                .cloned()
                .chain(errors.unplaced(&[]))
                .map(|m| format!("{field_prefix}{m}"))
                .collect();
            let mut shown = Errors::new();
            for l in lines {
                shown.add_general(l);
            }
            page(st, user, &q, shown, None, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// Sets who is on duty on one day at the site (the administrator or the front desk).
pub async fn post_rota(State(st): State<AppState>, user: CurrentUser, form: FormData) -> UiResult<Response> {
    let site = keta_domain::ids::SiteId(form.get("site").parse().unwrap_or(0));
    let r = match parse_iso_date(form.get("day")) {
        None => Err(keta_domain::DomainError::field("day", "give the day").into()),
        Some(day) => st.store.set_duty_rota(&user.actor, site, day, form.all("staff")).await.map(|_| ()),
    };
    after(&st, &user, form, r, "On duty: ").await
}

fn opt_chair(form: &FormData) -> Option<ChairId> {
    form.get("chair_id").parse().ok().map(ChairId)
}

pub async fn post_book(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    let r = match parse_iso_date(form.get("start")) {
        None => Err(keta_domain::DomainError::field("start", "give the first session's date").into()),
        Some(start) => {
            let req = BookCourse {
                start,
                time: form.get("time").to_string(),
                chair_id: opt_chair(&form),
                every_days: form.get("every_days").parse().ok(),
                until: parse_iso_date(form.get("until")),
            };
            st.store.book_course(&user.actor, CourseId(id), st.protocols.clone(), req).await.map(|_| ())
        }
    };
    after(&st, &user, form, r, "Booking: ").await
}

pub async fn post_reschedule(
    st: State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    post_session(st, user, id, "reschedule", form).await
}

pub async fn post_cancel(
    st: State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    post_session(st, user, id, "cancel", form).await
}

pub async fn post_no_show(
    st: State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    post_session(st, user, id, "no-show", form).await
}

pub async fn post_arrival(
    st: State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    post_session(st, user, id, "arrival", form).await
}

async fn post_session(
    State(st): State<AppState>,
    user: CurrentUser,
    id: i64,
    action: &str,
    form: FormData,
) -> UiResult<Response> {
    let sid = SessionId(id);
    let r = match action {
        "reschedule" => match parse_iso_date(form.get("date")) {
            None => Err(keta_domain::DomainError::field("date", "give the new date").into()),
            Some(date) => {
                let req = Reschedule {
                    date,
                    time: form.get("time").to_string(),
                    chair_id: opt_chair(&form),
                    reason: form.opt("reason").filter(|r| !r.trim().is_empty()),
                };
                st.store.reschedule_session(&user.actor, sid, req).await.map(|_| ())
            }
        },
        "cancel" => st.store.cancel_session(&user.actor, sid, form.get("reason").to_string()).await.map(|_| ()),
        "no-show" => {
            let req =
                NoShow { reason: form.get("reason").to_string(), make_up_on: parse_iso_date(form.get("make_up_on")) };
            st.store.record_no_show(&user.actor, sid, st.protocols.clone(), req).await.map(|_| ())
        }
        "arrival" => st.store.mark_arrival(&user.actor, sid).await.map(|_| ()),
        _ => return Err(UiError::NotFound("no such calendar action".into())),
    };
    after(&st, &user, form, r, &format!("Session {id}: ")).await
}

/// The course's order beside the session clock: what it says, and the pump rate,
/// bag concentration and volumes for the patient's latest weight, with the calculator's working.
pub(crate) struct OrderPanel {
    pub summary: String,
    pub allowed: String,
    pub dose: String,
    /// The ordered dose in mg for the patient's latest weight: the session's "Dose given"
    /// field starts from it.
    pub dose_mg: Option<f64>,
    pub pump_rate: String,
    pub concentration: String,
    pub volume: String,
    pub working: Vec<String>,
    pub note: String,
    pub href: String,
}

pub(crate) async fn order_panel(
    st: &AppState,
    user: &CurrentUser,
    course: CourseId,
    weight_kg: Option<keta_domain::units::Kilograms>,
) -> UiResult<Option<OrderPanel>> {
    let Some(o) = st.store.course_order(&user.actor, course).await? else { return Ok(None) };
    let lib = &*st.protocols;
    let n = keta_domain::dosing::fmt_num;
    let mut panel = OrderPanel {
        summary: format!("{} ({})", o.order.summary(), o.order.protocol_id),
        allowed: o.order.allowed_text(),
        dose: String::new(),
        dose_mg: None,
        pump_rate: String::new(),
        concentration: String::new(),
        volume: String::new(),
        working: vec![],
        note: format!("ordered by {}", o.ordered_by),
        href: format!("/courses/{}/order", course.0),
    };
    let calc = match (lib.get(&o.order.protocol_id), weight_kg) {
        (None, _) => {
            panel.note = format!("protocol '{}' is not in the library", o.order.protocol_id);
            return Ok(Some(panel));
        }
        (_, None) => {
            panel.note = "record the patient's weight to see the dose in mg".into();
            return Ok(Some(panel));
        }
        (Some(p), Some(w)) => o.order.calculate_for(p, o.order.dose, w, None),
    };
    match calc {
        Ok(c) => {
            panel.dose = format!("{} mg", n(c.dose_mg.0));
            panel.dose_mg = Some(c.dose_mg.0);
            if let Some(p) = &c.pump {
                panel.pump_rate = format!("{} mL/h", n(p.rate_ml_per_h_to_set.0));
            }
            if let Some(b) = &c.bag {
                panel.concentration = format!("{} mg/mL", n(b.concentration_mg_per_ml.0));
                panel.volume = format!("{} mL", n(b.final_volume_ml.0));
            } else if let Some(v) = &c.drug_volume {
                panel.volume = format!("{} mL to draw up", n(v.volume_ml_to_draw.0));
            }
            panel.working = c.steps;
        }
        Err(e) => panel.note = e.to_string(),
    }
    Ok(Some(panel))
}

#[derive(Template)]
#[template(path = "calendar/order.html")]
struct OrderPage {
    chrome: Chrome,
    course_id: i64,
    patient: String,
    patient_href: String,
    route: &'static str,
    protocols: Vec<(String, String)>,
    current: Option<OrderPanel>,
    form: FormData,
    errors: Errors,
}

async fn order_page(
    st: &AppState,
    user: &CurrentUser,
    course: CourseId,
    form: FormData,
    errors: Errors,
    status: StatusCode,
) -> UiResult<Response> {
    let c = st.store.get_course(&user.actor, course).await?;
    let p = st.store.get_patient(&user.actor, c.patient_id).await?;
    let lib = &*st.protocols;
    let current = order_panel(st, user, course, p.latest_weight_kg).await?;
    let t = OrderPage {
        chrome: Chrome::new(user, format!("Order · {}", p.display_name()), Area::Patients),
        course_id: course.0,
        patient: p.display_name(),
        patient_href: format!("/patients/{}", p.id),
        route: c.route.label(),
        protocols: lib.all().iter().filter(|x| x.route == c.route).map(|x| (x.id.clone(), x.name.clone())).collect(),
        current,
        form,
        errors,
    };
    Ok(render_status(status, &t))
}

pub async fn get_order(State(st): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> UiResult<Response> {
    order_page(&st, &user, CourseId(id), FormData::empty(), Errors::new(), StatusCode::OK).await
}

/// Records the prescriber's order from the form; every field error at once, nothing saved.
pub async fn post_order(
    State(st): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    form: FormData,
) -> UiResult<Response> {
    use keta_domain::prescription::{NewCourseOrder, OrderDose};
    use keta_domain::units::{MgPerKg, MgPerMl, Milligrams, Millilitres, Minutes};
    let mut errors = Errors::new();
    let value = form.number("dose_value", &mut errors);
    let opt = |name: &str, errors: &mut Errors| {
        if form.get(name).trim().is_empty() { None } else { form.number(name, errors) }
    };
    let infusion = opt("infusion_min", &mut errors);
    let bag = opt("final_volume_ml", &mut errors);
    let vial = opt("vial_mg_per_ml", &mut errors);
    let step = opt("titration_step", &mut errors);
    let max = opt("max_dose", &mut errors);
    let dose = match (form.get("dose_unit"), value) {
        ("mg_per_kg", Some(v)) => Some(OrderDose::MgPerKg(MgPerKg(v))),
        ("mg", Some(v)) => Some(OrderDose::Mg(Milligrams(v))),
        ("devices", Some(v)) if v.fract() == 0.0 && (1.0..=10.0).contains(&v) => Some(OrderDose::Devices(v as u32)),
        ("devices", Some(_)) => {
            errors.add("dose_value", "give a whole number of devices, 1-10");
            None
        }
        (_, Some(_)) => {
            errors.add("dose_unit", "choose mg/kg, mg or devices");
            None
        }
        _ => None,
    };
    let lib = &*st.protocols;
    let order = dose.map(|dose| NewCourseOrder {
        protocol_id: form.get("protocol_id").to_string(),
        dose,
        infusion_min: infusion.map(|m| Minutes(m.round() as i64)),
        final_volume_ml: bag.map(Millilitres),
        vial_mg_per_ml: vial.map(MgPerMl),
        titration_step: step,
        max_dose: max,
    });
    let (store, actor) = (&st.store, &user.actor);
    let record = |order: NewCourseOrder| async move {
        let protocol = lib.require(&order.protocol_id)?;
        store.record_course_order(actor, CourseId(id), protocol, order).await.map(|_| ())
    };
    if errors.submit(order, record).await?.is_some() {
        return Ok(see_other(format!("/courses/{id}/order")));
    }
    order_page(&st, &user, CourseId(id), form, errors, StatusCode::UNPROCESSABLE_ENTITY).await
}
