//! The clinic's check-in schedules, read-only: which questionnaires go to patients and when,
//! for every group of routes (the schedules in `data/checkins/`, as loaded). Clinical staff
//! read it to answer "when will my patient be asked?"; a change for one patient is made on
//! the patient's chart (its reason kept), a change for the clinic by replacing the file.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use keta_domain::access::Permission;
use keta_domain::checkins::{self, CheckInSchedule};

use super::between::{form_label, timing_words};
use super::page::{Area, Chrome, UiResult, render};
use crate::AppState;
use crate::auth::CurrentUser;

pub(crate) struct ItemRow {
    pub form: String,
    pub when: String,
    pub source: String,
}

pub(crate) struct ScheduleView {
    pub id: String,
    pub name: String,
    pub routes: String,
    pub opens_at: String,
    pub source: String,
    pub items: Vec<ItemRow>,
}

fn view(s: &CheckInSchedule) -> ScheduleView {
    ScheduleView {
        id: s.id.clone(),
        name: s.name.clone(),
        routes: s.routes.iter().map(|r| r.label()).collect::<Vec<_>>().join(", "),
        opens_at: format!("{:02}:00", s.periodic_opens_local_hour),
        source: s.source.to_string(),
        items: s
            .items
            .iter()
            .map(|i| ItemRow {
                form: form_label(&i.form),
                when: timing_words(i, s.periodic_opens_local_hour),
                source: i.source.to_string(),
            })
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "checkins/schedules.html")]
struct SchedulesPage {
    chrome: Chrome,
    schedules: Vec<ScheduleView>,
}

pub async fn get_schedules(State(_st): State<AppState>, user: CurrentUser) -> UiResult<Response> {
    user.actor.require(Permission::ViewClinical)?;
    let schedules = checkins::builtin_schedules().iter().map(view).collect();
    Ok(render(&SchedulesPage { chrome: Chrome::new(&user, "Check-in schedules", Area::None), schedules }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_schedule_is_listed_with_its_items_in_words() {
        let views: Vec<ScheduleView> = checkins::builtin_schedules().iter().map(view).collect();
        assert_eq!(views.len(), checkins::builtin_schedules().len());
        let clinic = views.iter().find(|v| v.id == "in_clinic").expect("the in-clinic schedule");
        assert!(clinic.routes.contains("IV ketamine"), "{}", clinic.routes);
        assert_eq!(clinic.opens_at, "09:00");
        let phq9 = clinic.items.iter().find(|i| i.when == "24 h before each session").expect("PHQ-9 before sessions");
        assert_eq!(phq9.form, "PHQ-9");
        assert!(phq9.source.contains("§4.3"), "{}", phq9.source);
    }
}
